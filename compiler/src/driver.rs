//! Building generated programs: write a model's crate, then compile it with
//! cargo, sharing the netc workspace's lock file and target directory so
//! burn is compiled once for every model.

use crate::backend::burn;
use crate::Checked;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The netc repository this compiler was built from.
pub fn repo() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// The runtime crate generated programs link (`NETC_RUNTIME` overrides).
pub fn runtime_path() -> PathBuf {
    std::env::var_os("NETC_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("runtime"))
}

/// One target directory for every generated crate (`CARGO_TARGET_DIR` overrides).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// Where `netc build` writes a model's crate by default.
pub fn default_out(model: &str) -> PathBuf {
    PathBuf::from("target/netc").join(model)
}

pub struct Build {
    pub out: PathBuf,
    pub target: PathBuf,
    pub cuda: bool,
}

/// Writes the crate of `checked` (from `file`) into `build.out`.
pub fn write_crate(file: &str, source: &str, checked: &Checked, out: &Path) -> Result<(), String> {
    let runtime = runtime_path();
    let files = burn::crate_files(&checked.model, source, file, &runtime.display().to_string())
        .map_err(|d| d.render(file, source, false))?;
    std::fs::create_dir_all(out.join("src"))
        .map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    for (rel, text) in files {
        let path = out.join(rel);
        // Unchanged files keep their timestamps, so cargo rebuilds nothing.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    // The workspace's lock file pins the versions its build of burn used.
    let lock = repo().join("Cargo.lock");
    if lock.exists() && !out.join("Cargo.lock").exists() {
        std::fs::copy(&lock, out.join("Cargo.lock"))
            .map_err(|e| format!("{}: cannot copy: {e}", lock.display()))?;
    }
    Ok(())
}

/// Compiles the crate in `build.out`; returns the program's path.
pub fn compile(model: &str, build: &Build) -> Result<PathBuf, String> {
    let start = Instant::now();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--release", "--manifest-path"])
        .arg(build.out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &build.target);
    if build.cuda {
        cargo.args(["--features", "cuda"]);
    }
    let status = cargo
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo could not build {}", build.out.display()));
    }
    let binary = build.target.join("release").join(model);
    eprintln!(
        "built {} in {:.1} s",
        binary.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(binary)
}

/// Writes and compiles one model's program.
pub fn build(
    file: &str,
    source: &str,
    checked: &Checked,
    build: &Build,
) -> Result<PathBuf, String> {
    write_crate(file, source, checked, &build.out)?;
    eprintln!(
        "building {} in {} (target {})",
        checked.model.name,
        build.out.display(),
        build.target.display()
    );
    compile(&checked.model.name, build)
}
