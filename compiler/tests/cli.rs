//! The `netc` binary: exit codes, streams and JSON.

mod common;
use common::synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs")
}

fn zoo() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("zoo"))
        .unwrap()
        .map(|e| format!("zoo/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".net"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_of_the_whole_zoo_succeeds() {
    let files = zoo();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = netc(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["tuto", "alex4", "nin2", "squeeze1", "xception"] {
        assert!(text.contains(&format!("model {name} ")), "{name} missing");
    }
    assert!(
        text.lines().all(|l| l.chars().count() <= 100),
        "a line is over 100 columns"
    );
}

#[test]
fn json_lists_every_model_with_totals_and_layers() {
    let files = zoo();
    let mut args = vec!["check", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = netc(&args);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let models = json.as_array().unwrap();
    assert_eq!(models.len(), files.len());
    let tuto = models.iter().find(|m| m["model"] == "tuto").unwrap();
    assert_eq!(tuto["params"], 1_068_298);
    assert_eq!(tuto["ops"], 37_745_098);
    assert_eq!(tuto["weight_bytes"], 4 * 1_068_298);
    assert_eq!(tuto["layers"][0]["name"], "conv1");
    assert_eq!(tuto["layers"][0]["output"], serde_json::json!([24, 24, 64]));
}

#[test]
fn a_bad_file_exits_1_with_the_place_on_stderr() {
    let out = netc(&["check", "tests/bad/unknown_layer.net", "zoo/tuto.net"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tests/bad/unknown_layer.net:3:5"), "{err}");
    assert!(err.contains("did you mean `conv`?"), "{err}");
    // The good file is still checked.
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("model tuto "));
}

#[test]
fn a_missing_file_exits_1_naming_it() {
    let out = netc(&["check", "zoo/no_such_model.net"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot read zoo/no_such_model.net"), "{err}");
}

#[test]
fn emit_pytorch_prints_a_module_and_refuses_unknown_targets() {
    let out = netc(&["emit", "--target", "pytorch", "zoo/squeeze1.net"]);
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap();
    assert!(code.contains("class Fire(nn.Module):"), "{code}");
    assert!(code.contains("Model = Squeeze1"), "{code}");
    let out = netc(&["emit", "--target", "tensorflow", "zoo/squeeze1.net"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("targets are burn, main, pytorch and pytorch-train"),
        "{err}"
    );
}

#[test]
fn bench_of_a_missing_file_fails_and_keeps_earlier_results() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().display().to_string();
    let out = netc(&["bench", "zoo/nosuch.net", "--out", &out_dir]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot read zoo/nosuch.net"), "{err}");
    assert!(err.contains("no model was measured"), "{err}");
    assert!(!dir.path().join("bench.md").exists());
}

/// `--out DIR` gets a crate per model, named and namespaced after it, which
/// links the checkout's runtime (this netc was built in the checkout). cargo
/// is replaced by a command that does not exist: only the writing is tested.
#[test]
fn build_writes_a_crate_per_model_under_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.net");
    std::fs::write(
        &file,
        "model netc {\n    input 8x8x3\n    logits: fc 10\n}\n\
         model deps {\n    input 8x8x3\n    logits: fc 10\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("build")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("crates"))
        .env("CARGO", dir.path().join("no-cargo"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot run cargo"), "{err}");
    for model in ["netc", "deps"] {
        let manifest = dir.path().join("crates").join(model).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"netc-model-{model}-")),
            "{text}"
        );
        let runtime = root().join("runtime").canonicalize().unwrap();
        assert!(
            text.contains(&format!("path = \"{}\"", runtime.display())),
            "{text}"
        );
    }
}

/// `netc train --engine torch` writes the engine's script beside the model's
/// crate and trains with it (the flag may come after the program's flags);
/// `eval` and `infer` refuse the flag, since netc's program reads any run.
#[test]
fn train_with_the_torch_engine_writes_its_script_and_makes_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synthetic(&data);
    let net = dir.path().join("tiny.net");
    std::fs::write(
        &net,
        "model tiny {\n input 8x8x3\n train steps=3 batch=4\n c: conv 3x3 4 relu\n out: fc 10\n}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("netc runs")
    };
    let out = run(&[
        "train", "tiny.net", "--data", "data", "--quiet", "--engine", "torch",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["engine"], "torch");
    assert_eq!(outcome["steps"], 3);
    let script = dir.path().join("target/netc/tiny/train.py");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("class Tiny(nn.Module):") && text.contains("def train(a):"));
    assert!(dir
        .path()
        .join("runs/tiny/1/checkpoint.safetensors")
        .is_file());

    for (args, want) in [
        (
            vec![
                "eval",
                "tiny.net",
                "--engine",
                "torch",
                "--run",
                "runs/tiny/1",
            ],
            "--engine torch trains",
        ),
        (
            vec!["train", "tiny.net", "--engine", "jax"],
            "unknown engine `jax`",
        ),
        (
            vec![
                "train",
                "tiny.net",
                "--engine",
                "torch",
                "--python",
                "no-such-python",
            ],
            "cannot run no-such-python",
        ),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A weight file for `source`'s first model: every tensor it needs, by
/// `.net` path, zeros except `keep_out` left out; the raw names only.
fn zero_weights(source: &str, path: &Path, keep_out: &str) {
    use safetensors::tensor::{Dtype, TensorView};
    let c = netc::check(source).unwrap().remove(0);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = netc::proc::sizes::tensors(&c.layout)
        .into_iter()
        .filter(|(name, _)| name != keep_out)
        .map(|(name, shape)| {
            let bytes = vec![0u8; 4 * shape.iter().product::<usize>()];
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn export_writes_an_onnx_file_or_an_error_and_nothing() {
    use onnx_protobuf::Message;
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let source = std::fs::read_to_string(root().join("zoo/squeeze1.net")).unwrap();
    zero_weights(&source, &dir.path().join("w.safetensors"), "");
    let out = netc(&[
        "export",
        "zoo/squeeze1.net",
        "--weights",
        &p("w.safetensors"),
        "-o",
        &p("squeeze1.onnx"),
        "--with-preprocessing",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("squeeze1.onnx: model squeeze1 with the raw weights of"),
        "{stdout}"
    );
    let bytes = std::fs::read(dir.path().join("squeeze1.onnx")).unwrap();
    let model = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
    assert_eq!(model.graph.input[0].name, "images");
    assert_eq!(model.graph.output[0].name, "logits");
    assert!(model
        .graph
        .initializer
        .iter()
        .any(|t| t.name == "fire2.e3x3.weight"));

    // A tensor missing: exit 1, the file and the tensor named, nothing written.
    zero_weights(&source, &dir.path().join("part.safetensors"), "conv2.bias");
    let out = netc(&[
        "export",
        "zoo/squeeze1.net",
        "--weights",
        &p("part.safetensors"),
        "-o",
        &p("part.onnx"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: ")
            && stderr
                .contains("part.safetensors: does not fit model squeeze1: no tensor `conv2.bias`"),
        "{stderr}"
    );
    // An output folder that does not exist.
    let out = netc(&[
        "export",
        "zoo/squeeze1.net",
        "--weights",
        &p("w.safetensors"),
        "-o",
        &p("missing/x.onnx"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["part.safetensors", "squeeze1.onnx", "w.safetensors"]);

    // Weights are required, from one place.
    let out = netc(&["export", "zoo/squeeze1.net", "-o", &p("y.onnx")]);
    assert_eq!(out.status.code(), Some(2));
    let out = netc(&[
        "export",
        "zoo/squeeze1.net",
        "--run",
        &p("."),
        "--weights",
        &p("w.safetensors"),
        "-o",
        &p("y.onnx"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("y.onnx").exists());
}
