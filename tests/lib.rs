//! Shared helpers of netc's integration tests, and the generator of random
//! valid programs.

pub mod programs;

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// CIFAR-10 binary batches (`data_batch_1..5.bin`, `test_batch.bin`) of `n`
/// 32x32 images in `dir`: 10 classes told apart by color, easy to learn in a
/// few dozen steps.
pub fn synthetic_cifar(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = (i % 10) as u8;
        bytes.push(label);
        for plane in 0..3u8 {
            let v = label
                .wrapping_mul(25)
                .wrapping_add(plane * 80)
                .wrapping_add((i % 7) as u8);
            bytes.extend(std::iter::repeat_n(v, 1024));
        }
    }
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes[..n.min(100) * 3073]).unwrap();
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
