//! Shared helpers of netc's integration tests, and the generator of random
//! valid programs.

pub mod programs;

use std::path::PathBuf;

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
