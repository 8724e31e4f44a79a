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
