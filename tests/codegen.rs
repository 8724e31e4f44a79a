//! The burn and PyTorch code generated for every zoo model matches its snapshot.

use netc_tests::net_files;

#[test]
fn generated_code_matches_snapshots() {
    for (stem, path, source) in net_files("zoo") {
        for c in netc::check(&source).unwrap() {
            let code = netc::backend::burn::model_rs(&c.model, &source, &path).unwrap();
            insta::assert_snapshot!(format!("{stem}_burn"), netc::backend::burn::rustfmt(&code));
        }
    }
}

#[test]
fn generated_pytorch_matches_snapshots() {
    for (stem, path, source) in net_files("zoo") {
        for c in netc::check(&source).unwrap() {
            let code = netc::backend::pytorch::module_py(&c.model, &source, &path).unwrap();
            insta::assert_snapshot!(format!("{stem}_pytorch"), code);
        }
    }
}

#[test]
fn generated_main_names_the_model_and_its_settings() {
    let source = std::fs::read_to_string(netc_tests::root().join("zoo/tuto.net")).unwrap();
    let c = &netc::check(&source).unwrap()[0];
    let main = netc::backend::burn::main_rs(&c.model, "zoo/tuto.net");
    assert!(main.contains("name: \"tuto\""));
    assert!(main.contains("decay: 500.0"));
    assert!(main.contains("input: [24, 24, 3]"));
}

/// A block whose calls would need different code (here a kernel size that
/// changes the output size under `valid`) is refused by both back ends, at
/// the second call.
#[test]
fn both_back_ends_refuse_block_calls_that_differ_in_structure() {
    let source = "\
block b(k) {
    c: conv kernel=k 8 valid
}
model m {
    input 12x12x3
    b(3)
    b(5)
    out: fc 10
}
";
    let c = &netc::check(source).unwrap()[0];
    let second_call = source.find("b(5)").unwrap();
    let burn = netc::backend::burn::model_rs(&c.model, source, "differ.net").unwrap_err();
    let pytorch = netc::backend::pytorch::module_py(&c.model, source, "differ.net").unwrap_err();
    for (d, unit) in [
        (burn, "one struct per block"),
        (pytorch, "one class per block"),
    ] {
        assert_eq!(d.span.start, second_call);
        assert!(
            d.message.contains("calls of block `b` differ"),
            "{}",
            d.message
        );
        assert!(
            d.help.as_deref().unwrap_or("").contains(unit),
            "{:?}",
            d.help
        );
    }
}
