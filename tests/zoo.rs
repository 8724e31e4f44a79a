//! Every zoo model checks, its summary matches its snapshot, and the seed's
//! published figures come out exactly.

use netc::backend::summary;
use netc_tests::net_files;

#[test]
fn zoo_tables_and_json_match_snapshots() {
    let files = net_files("zoo");
    assert!(
        files.len() >= 6,
        "the zoo has tuto, tuto32, alex4, nin2, squeeze1, xception"
    );
    for (stem, path, source) in files {
        let checked =
            netc::check(&source).unwrap_or_else(|d| panic!("{}", d.render(&path, &source, false)));
        for c in checked {
            insta::assert_snapshot!(
                format!("{stem}_table"),
                summary::table(&c.model, &c.summary, &path)
            );
            insta::assert_json_snapshot!(
                format!("{stem}_json"),
                summary::json(&c.model, &c.summary, &path, &source)
            );
        }
    }
}

/// (file, millions of parameters, millions of operations) as the seed prints them.
const SEED: &[(&str, &str, &str)] = &[
    ("tuto", "1.07", "37.75"),
    ("tuto32", "1.76", "66.98"),
    ("alex4", "1.49", "35.20"),
    ("nin2", "0.97", "251.36"),
    ("squeeze1", "0.15", "22.84"),
];

#[test]
fn counts_reproduce_the_seed() {
    for (name, params, ops) in SEED {
        let path = netc_tests::root().join(format!("zoo/{name}.net"));
        let source = std::fs::read_to_string(&path).unwrap();
        let c = &netc::check(&source).unwrap()[0];
        let t = c.summary.total;
        assert_eq!(
            format!("{:.2}", t.params as f64 / 1e6),
            *params,
            "{name} parameters"
        );
        assert_eq!(
            format!("{:.2}", t.ops as f64 / 1e6),
            *ops,
            "{name} operations"
        );
    }
}

#[test]
fn xception_is_smaller_and_cheaper_than_the_tutorial() {
    let count = |name: &str| {
        let source =
            std::fs::read_to_string(netc_tests::root().join(format!("zoo/{name}.net"))).unwrap();
        netc::check(&source).unwrap()[0].summary.total
    };
    let (x, tuto) = (count("xception"), count("tuto"));
    assert!(x.params < 1_000_000, "xception has {} parameters", x.params);
    assert!(
        x.ops < tuto.ops,
        "xception {} ops, tuto {}",
        x.ops,
        tuto.ops
    );
}

#[test]
fn layer_rows_add_up_to_the_totals() {
    for (_, _, source) in net_files("zoo") {
        for c in netc::check(&source).unwrap() {
            let json = summary::json(&c.model, &c.summary, "x", &source);
            let layers = json["layers"].as_array().unwrap();
            for key in ["params", "macs", "ops", "weight_bytes"] {
                let sum: u64 = layers.iter().map(|l| l[key].as_u64().unwrap()).sum();
                assert_eq!(sum, json[key].as_u64().unwrap(), "{} {key}", c.model.name);
            }
        }
    }
}

#[test]
fn graphs_show_every_layer_and_join() {
    for (stem, _, source) in net_files("zoo") {
        for c in netc::check(&source).unwrap() {
            let dot = netc::backend::graph::dot(&c.model);
            let layers = c
                .summary
                .rows
                .iter()
                .filter(|r| r.kind == netc::analysis::counts::RowKind::Layer)
                .count();
            let joins = c
                .summary
                .rows
                .iter()
                .filter(|r| {
                    matches!(
                        r.kind,
                        netc::analysis::counts::RowKind::Concat
                            | netc::analysis::counts::RowKind::Add
                    )
                })
                .count();
            // Input, every layer, every join, the output.
            assert_eq!(dot.matches("[label=").count(), layers + joins + 2, "{stem}");
            if stem == "squeeze1" {
                insta::assert_snapshot!("squeeze1_dot", dot);
            }
        }
    }
}
