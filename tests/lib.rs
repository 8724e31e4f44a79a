//! Shared helpers of netc's integration tests, and the generator of random
//! valid programs.

pub mod programs;

#[path = "../runtime/tests/common/synthetic.rs"]
mod synthetic;
pub use synthetic::{synthetic_cifar, synthetic_value};

use std::path::PathBuf;
use std::process::Command;

/// Every layer kind, TensorFlow's asymmetric `same` padding, blocks and branches.
pub const KITCHEN: &str = "\
# Every kind of layer netc knows, in one small model.
block mix(f) {
    a: conv 1x1 f relu
    concat {
        b: conv 3x3 f relu
        {
            c: dwconv 3x3 nobias
            d: conv 1x1 f nobias
            bn1: batchnorm relu
        }
        e: avgpool 3x3 /1
    }
}

model kitchen {
    input 15x15x3
    train steps=30 batch=16 augment=off decay=1

    stem: conv 4x4 8 /2 relu
    pool: maxpool 3x3 /2
    norm: lrn radius=2
    mix(4)
    add {
        identity
        g: conv 3x3 12 groups=4
    }
    avg: avgpool 3x3 /2
    drop: dropout 0.5
    fc1: fc 16 relu decay
    logits: fc 10
}
";

/// The repository's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Every `.net` file in a folder of the repository, sorted, as (stem, path, source).
pub fn net_files(folder: &str) -> Vec<(String, String, String)> {
    let dir = root().join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let rel = format!("{folder}/{}", p.file_name().unwrap().to_string_lossy());
            let source = std::fs::read_to_string(&p).expect("readable test file");
            (stem, rel, source)
        })
        .collect()
}

/// `python3`, once it is known to import torch and numpy. The PyTorch checks
/// are part of the suite: where they cannot run, the test fails and says
/// what to install (`.ci/run` installs them), rather than passing unseen.
pub fn python_with_torch() -> &'static str {
    let out = Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output();
    match out {
        Ok(o) if o.status.success() => "python3",
        Ok(o) => panic!(
            "python3 cannot import torch and numpy, which the PyTorch checks need: \
             pip install torch numpy (bash .ci/run installs them)\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run python3, which the PyTorch checks need: {e}"),
    }
}

/// `python3`, once it is known to import onnx, onnxruntime and numpy, which
/// the checks of `netc export` use (`onnx.checker`, onnxruntime's CPU run).
/// Like the PyTorch checks, they fail where these are missing, saying what
/// to install (`.ci/run` installs them).
pub fn python_with_onnx() -> &'static str {
    let out = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output();
    match out {
        Ok(o) if o.status.success() => "python3",
        Ok(o) => panic!(
            "python3 cannot import onnx, onnxruntime and numpy, which the ONNX checks need: \
             pip install onnx onnxruntime numpy (bash .ci/run installs them)\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run python3, which the ONNX checks need: {e}"),
    }
}
