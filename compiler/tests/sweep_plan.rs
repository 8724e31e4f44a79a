//! `netc sweep`'s variants: every kind of KEY written into a real `.net`
//! text (shown as a diff from the base, which must hold only the change and
//! the model's new name), and the errors of KEYs that name nothing or values
//! of the wrong kind, which list what exists.

use netc::sweep::{plan, Plan, Vary};

const BASE: &str = "\
# A test model: a tutorial-like stem and two fire modules.
block fire(s, e1, e3) {
    squeeze: conv 1x1 s relu
    concat {
        e1x1: conv 1x1 e1 relu
        e3x3: conv 3x3 e3 relu
    }
}

model base {
    input 24x24x3
    train decay=500 augment=on

    conv1: conv 5x5 64 relu   # the stem
    pool1: maxpool 3x3 /2
    norm1: lrn
    fire(16, 32, 32) * 2
    x: conv 3x3 32 relu * 2
    conv2: conv kernel=3 48 valid
    drop: dropout
    fc1: fc 384 relu decay
    logits: fc 10
}
";

const NO_TRAIN: &str = "model small {\n    input 8x8x3\n    c: conv 3x3 4 relu\n    fc 10\n}\n";

fn vary(args: &[&str]) -> Vec<Vary> {
    args.iter().map(|a| a.parse().unwrap()).collect()
}

/// The lines a variant removes (`-`) and adds (`+`), by a longest common
/// subsequence of lines.
fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out += &format!("+{}\n", b[j]);
            j += 1;
        } else {
            out += &format!("-{}\n", a[i]);
            i += 1;
        }
    }
    out
}

fn show(base: &str, p: &Plan) -> String {
    let mut s = String::new();
    for v in &p.variants[1..] {
        s += &format!("== {} ({})\n", v.name, netc::sweep::describe(&v.changes));
        s += &diff(base, &v.source);
        if let Some(d) = &v.refused {
            s += &format!(
                "refused: {}\n",
                d.one_line(&format!("{}.net", v.name), &v.source)
            );
        }
    }
    s
}

fn variants(source: &str, args: &[&str]) -> String {
    let p = plan("base.net", source, None, &vary(args), false).unwrap();
    assert_eq!(
        p.variants[0].source, source,
        "the base comes first, unchanged"
    );
    show(source, &p)
}

#[test]
fn settings() {
    insta::assert_snapshot!(variants(BASE, &["lr=0.05,0.2", "augment=off", "decay=0"]));
    // No `train` line: one is added after `input`.
    insta::assert_snapshot!(variants(NO_TRAIN, &["batch=64"]));
}

#[test]
fn layer_arguments() {
    insta::assert_snapshot!(variants(
        BASE,
        &[
            "conv1.filters=32,96",
            "conv1.kernel=3,3x5",
            "conv1.stride=2",
            "conv1.relu=off",
            "conv1.bias=off",
            "conv1.padding=valid",
            "conv1.groups=2",
            "conv2.kernel=5",
            "conv2.padding=same",
            "pool1.stride=1",
            "norm1.radius=2",
            "drop.rate=0.3",
            "fc1.units=192",
            "fc1.decay=off",
            "logits.relu=on",
        ]
    ));
}

#[test]
fn block_call_arguments_and_repeated_statements() {
    // fire1 and fire2 come from one `* 2` statement: varying fire2 writes
    // the copies out, keeping their names.
    insta::assert_snapshot!(variants(
        BASE,
        &["fire2.e3=64", "fire1.s=8", "x2.filters=16"]
    ));
}

#[test]
fn removal() {
    insta::assert_snapshot!(variants(
        BASE,
        &["norm1=off,on", "drop=off", "x1=off", "fire2=off"]
    ));
}

#[test]
fn grid_crosses_the_keys() {
    let p = plan(
        "base.net",
        BASE,
        None,
        &vary(&["conv1.filters=32,64", "lr=0.05,0.1"]),
        true,
    )
    .unwrap();
    // 2 x 2 combinations; conv1.filters=64 with lr=0.1 is not the base (lr
    // is not written in it), conv1.filters=64 alone changes nothing.
    let names: Vec<&str> = p.variants.iter().map(|v| v.name.as_str()).collect();
    insta::assert_snapshot!(names.join("\n"));
    insta::assert_snapshot!(show(BASE, &p));
}

#[test]
fn a_variant_that_check_refuses_is_kept_with_its_error() {
    // A 9x9 valid window does not fit the 5x5 map left at conv2.
    let p = plan("base.net", BASE, None, &vary(&["conv2.kernel=3,30"]), false).unwrap();
    let refused: Vec<_> = p.variants.iter().filter(|v| v.refused.is_some()).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].changes[0].value, "30");
    insta::assert_snapshot!(show(BASE, &p));
}

fn error(source: &str, args: &[&str]) -> String {
    plan("base.net", source, None, &vary(args), false).unwrap_err()
}

#[test]
fn keys_that_name_nothing_list_what_exists() {
    insta::assert_snapshot!(error(BASE, &["conv9.filters=3"]));
    insta::assert_snapshot!(error(BASE, &["conv1.width=3"]));
    insta::assert_snapshot!(error(BASE, &["fire2.e5=3"]));
    insta::assert_snapshot!(error(BASE, &["fire2.squeeze=3"]));
    insta::assert_snapshot!(error(BASE, &["norm1.filters=3"]));
}

#[test]
fn values_of_the_wrong_kind_say_what_the_key_takes() {
    insta::assert_snapshot!(error(BASE, &["conv1.filters=abc"]));
    insta::assert_snapshot!(error(BASE, &["conv1.relu=maybe"]));
    insta::assert_snapshot!(error(BASE, &["norm1=3"]));
    insta::assert_snapshot!(error(BASE, &["conv1.padding=full"]));
    insta::assert_snapshot!(error(BASE, &["fire1.e3=1.5"]));
    // Settings are judged by the compiler itself, at the value.
    insta::assert_snapshot!(error(BASE, &["augment=5"]));
    insta::assert_snapshot!(error(BASE, &["lr=fast"]));
    insta::assert_snapshot!(error(BASE, &["drop.rate=2"]));
}

#[test]
fn malformed_vary() {
    assert!("conv1.filters".parse::<Vary>().is_err());
    assert!("conv1.filters=".parse::<Vary>().is_err());
    let v: Vary = "conv1.filters=32, 64".parse().unwrap();
    assert_eq!(v.values, ["32", "64"]);
}

/// The sensitivity table from runs: the base first, differences from it,
/// and a variant without a run saying why.
#[test]
fn sensitivity_table() {
    use netc::report::Run;
    use netc::sweep::{table, Change};
    let run = |name: &str, acc: f64, params: u64, ops: u64| Run {
        name: name.into(),
        model: name.into(),
        steps: 1000,
        evaluations: vec![(1000, acc)],
        params: Some(params),
        ops: Some(ops),
        latency_ms: Some(0.5),
        ..Run::default()
    };
    let change = |k: &str, v: &str| Change {
        key: k.into(),
        value: v.into(),
    };
    let rows = vec![
        table::Row {
            name: "base".into(),
            changes: vec![],
            run: Some(run("base", 0.75, 1_000_000, 40_000_000)),
            note: None,
        },
        table::Row {
            name: "base_conv1_filters_32".into(),
            changes: vec![change("conv1.filters", "32")],
            run: Some(run("base_conv1_filters_32", 0.73, 900_000, 30_000_000)),
            note: None,
        },
        table::Row {
            name: "base_conv2_kernel_30".into(),
            changes: vec![change("conv2.kernel", "30")],
            run: None,
            note: Some("refused by check".into()),
        },
    ];
    let base = [change("conv1.filters", "64"), change("conv2.kernel", "3")];
    insta::assert_snapshot!(table::markdown(&rows, &base, None));
    insta::assert_snapshot!(table::csv(&rows, &base));
}
