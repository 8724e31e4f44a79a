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
    // The concrete graph for the int8 interpreter, as a string literal.
    assert!(
        main.contains(r#"graph: "{\"input\":[3,24,24],\"ops\":[{\"op\":\"conv\""#),
        "{main}"
    );
}

/// A block whose calls would need different code (here a kernel size that
/// changes the fc's inputs under `valid`) gets one struct per variant, in
/// both back ends: every program `check` accepts generates.
#[test]
fn block_calls_that_differ_in_structure_get_a_struct_each() {
    let source = "\
block blk(k) {
    c: conv kernel=k 8 valid
    f: fc 4
}
model m {
    input 12x12x3
    concat {
        blk(3)
        blk(5)
        blk(3)
    }
    out: fc 10
}
";
    let c = &netc::check(source).unwrap()[0];
    let burn = netc::backend::burn::model_rs(&c.model, source, "differ.net").unwrap();
    let pytorch = netc::backend::pytorch::module_py(&c.model, source, "differ.net").unwrap();
    for want in ["pub blk1: Blk<B>", "pub blk2: Blk2<B>", "pub blk3: Blk<B>"] {
        assert!(burn.contains(want), "no `{want}` in\n{burn}");
    }
    for want in [
        "class Blk(nn.Module)",
        "class Blk2(nn.Module)",
        "self.blk3 = Blk(",
    ] {
        assert!(pytorch.contains(want), "no `{want}` in\n{pytorch}");
    }
}

/// Every import of the generated Rust is used: nin2 and squeeze1 fuse their
/// ReLUs into convolutions and once imported burn's `relu` all the same.
#[test]
fn generated_rust_imports_only_what_it_uses() {
    for (stem, path, source) in net_files("zoo") {
        let c = &netc::check(&source).unwrap()[0];
        let code = netc::backend::burn::model_rs(&c.model, &source, &path).unwrap();
        let body: String = code.lines().filter(|l| !l.starts_with("use ")).collect();
        for line in code.lines().filter(|l| l.starts_with("use ")) {
            let names = line
                .trim_start_matches("use ")
                .trim_end_matches(';')
                .rsplit("::")
                .next()
                .unwrap()
                .trim_matches(['{', '}']);
            for name in names.split(", ").filter(|n| *n != "*") {
                // A trait is used through its method.
                let name = if name == "ZeroBias" {
                    ".zero_bias()"
                } else {
                    name
                };
                let used = body
                    .match_indices(name)
                    .any(|(i, _)| !body[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                assert!(used, "{stem}: `{name}` imported, never used");
            }
        }
    }
}

/// The PyTorch module reads like PyTorch: branches do not reassign `x`,
/// arguments equal to the defaults are left out, reals print as written.
#[test]
fn generated_pytorch_is_idiomatic() {
    let squeeze = zoo_module_py("squeeze1");
    assert!(
        squeeze.contains(
            "return torch.cat([F.relu(self.e1x1(x), inplace=True), F.relu(self.e3x3(x), inplace=True)], 1)"
        ),
        "{squeeze}"
    );
    assert!(!squeeze.contains("concat1_in"));
    assert!(squeeze.contains("self.pool1 = MaxPool(3, 2)"));
    assert!(squeeze.contains("self.conv1 = Conv2d(3, 64, 3)"));
    let classes = &squeeze[squeeze.find("class Fire(").unwrap()..];
    for default in [
        "groups=1",
        "same=True",
        "bias=True",
        "stride=(1, 1)",
        "kernel=",
    ] {
        assert!(!classes.contains(default), "{default}");
    }
    let tuto = zoo_module_py("tuto");
    assert!(!tuto.contains("0.00011111111111111112"));
    assert!(tuto.contains("self.norm1 = Lrn()"), "{tuto}");
    // Dense layers are nn.Linear; netc's files hold their weights transposed.
    assert!(tuto.contains("class Dense(nn.Linear):"));
    assert!(tuto.contains(r#"LINEAR = {"fc1.weight", "fc2.weight", "logits.weight"}"#));
    assert!(squeeze.contains("LINEAR = set()"));
    assert_eq!(netc::backend::pytorch::real(0.001 / 9.0), "0.001 / 9");
}

/// The PyTorch module of zoo/`name`.net.
fn zoo_module_py(name: &str) -> String {
    let path = format!("zoo/{name}.net");
    let source = std::fs::read_to_string(netc_tests::root().join(&path)).unwrap();
    let c = &netc::check(&source).unwrap()[0];
    netc::backend::pytorch::module_py(&c.model, &source, &path).unwrap()
}

/// Names from Rust, Python and netc's own generated code, and names equal
/// after CamelCase: both targets compile, with as many parameters as `check`
/// counts (the Python module is instantiated when torch is installed).
#[test]
fn hostile_names_compile_in_both_targets() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("programs/hostile.net"));
    let source = &text.unwrap();
    let c = &netc::check(source).unwrap_or_else(|d| panic!("{}", d.message))[0];
    let rust = netc::backend::burn::model_rs(&c.model, source, "hostile.net").unwrap();
    for want in [
        "pub struct MyBlock<B: Backend>",
        "pub struct MyBlock2<B: Backend>",
        "pub struct Fire<B: Backend>",
        "pub struct Fire2<B: Backend>",
        "pub struct Fire3<B: Backend>",
        "pub fn new(in_channels: usize, device_: usize, self_: usize, device: &B::Device)",
        "pub r#type: Conv2d<B>",
        "pub self_: Conv2d<B>",
        "pub __: MaxPool",
        "decay_term(&self.my_block1.r#type.weight)",
    ] {
        assert!(rust.contains(want), "no `{want}` in\n{rust}");
    }
    parses_as_rust(&rust);

    let python = netc::backend::pytorch::module_py(&c.model, source, "hostile.net").unwrap();
    for want in [
        "class MyBlock2(nn.Module)",
        "def __init__(self, in_channels, device, self_):",
        "self.parameters_ = Conv2d(",
        "NETC_NAMES = {\"parameters_\": \"parameters\"}",
    ] {
        assert!(python.contains(want), "no `{want}` in\n{python}");
    }
    python_params(&python, c.summary.total.params);
}

/// The module's `Model` instantiates, with `params` parameters (torch is
/// required: the test fails, saying how to install it, where it is missing).
fn python_params(module: &str, params: u64) {
    let script = "import sys, types\n\
        m = types.ModuleType('m'); exec(compile(sys.stdin.read(), 'module.py', 'exec'), m.__dict__)\n\
        print(sum(p.numel() for p in m.Model().parameters()))";
    let python = netc_tests::python_with_torch();
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(module.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}\n{module}");
    let count: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(count, params, "parameters of the PyTorch module");
}

/// `code` is a Rust file `syn` parses.
fn parses_as_rust(code: &str) {
    if let Err(e) = syn::parse_file(code) {
        panic!("generated Rust does not parse: {e}\n{code}");
    }
}

#[test]
fn file_paths_with_backslashes_and_quotes_stay_inside_strings_and_comments() {
    let source = "model m {\n    input 8x8x3\n    conv1: conv 3x3 4\n    fc 10\n}\n";
    let c = &netc::check(source).unwrap()[0];
    let file = r#"C:\Users\me\my"nets\m.net"#;
    parses_as_rust(&netc::backend::burn::model_rs(&c.model, source, file).unwrap());
    let main = netc::backend::burn::main_rs(&c.model, file);
    parses_as_rust(&main);
    // The program keeps the path exactly, as a string literal.
    assert!(
        main.contains(r#"file: "C:\\Users\\me\\my\"nets\\m.net","#),
        "{main}"
    );
    let module = netc::backend::pytorch::module_py(&c.model, source, file).unwrap();
    python_params(&module, c.summary.total.params);
}

/// The emitted modules of the seed's models ask PyTorch for the work of the
/// hand-written ones (`bench/torch/same_ops.py`): every ATen call of a
/// training step and of inference, with its shapes, strides and arguments,
/// eager and channels-last, is a call of the hand-written model, in the same
/// order (which may make a few more). So no device can run the emitted module
/// slower than the hand-written one but by Python's cost of the calls: issue
/// 11's "as fast as hand-written" on every device, checked on the CPU.
#[test]
fn emitted_pytorch_makes_the_hand_written_calls() {
    let root = netc_tests::root();
    let dir = tempfile::tempdir().unwrap();
    let models = ["tuto", "alex4", "squeeze1", "nin2"];
    for name in models {
        std::fs::write(dir.path().join(format!("{name}.py")), zoo_module_py(name)).unwrap();
    }
    let out = std::process::Command::new(netc_tests::python_with_torch())
        .arg(root.join("bench/torch/same_ops.py"))
        .arg("--modules")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2 * models.len(), "{text}");
    for row in &rows {
        assert_eq!(row["same"], true, "{row}");
        assert!(row["emitted_calls"].as_u64().unwrap() > 50, "{row}");
    }
}

/// `same_ops.py` fails, naming the first call that differs, where an
/// emitted module asks for work of its own: here alex4 with TensorFlow's
/// `same` pooling as a padded copy (the module before ceil_mode pooling).
#[test]
fn same_ops_fails_on_a_module_that_pads_before_pooling() {
    let root = netc_tests::root();
    let dir = tempfile::tempdir().unwrap();
    let module = zoo_module_py("alex4");
    let ceil = "if top == left == 0 and ceil_fits(x, self.kernel, self.stride):";
    assert!(module.contains(ceil), "{module}");
    let padded = module.replace(ceil, "if False:");
    std::fs::write(dir.path().join("alex4.py"), padded).unwrap();
    let out = std::process::Command::new(netc_tests::python_with_torch())
        .arg(root.join("bench/torch/same_ops.py"))
        .args(["--models", "alex4", "--modules"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in &rows {
        assert_eq!(row["same"], false, "{row}");
        let call = row["emitted"].as_str().unwrap();
        assert!(call.starts_with("aten.constant_pad_nd"), "{row}");
    }
}
