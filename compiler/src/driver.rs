//! Building generated programs: write a model's crate, then compile it with
//! cargo into one target directory shared by every model, so burn is
//! compiled once per machine.
//!
//! Where the runtime, the lock file and the target directory come from:
//! - a netc run from its own checkout's build (`target/release/netc`, the
//!   tests) uses the checkout: `runtime/`, `Cargo.lock` and `target/`, so an
//!   edit of the runtime is built at once and the tests share the workspace's
//!   build of burn;
//! - any other netc (`cargo install --path compiler`) writes the runtime and
//!   lock file embedded in it (`build.rs`) to `<cache>/<version>-<hash>/` on
//!   first use and builds into `<cache>/target`, where `<cache>` is
//!   `NETC_CACHE`, else the user's cache directory's `netc/`.
//!
//! `NETC_RUNTIME` (a runtime crate) and `CARGO_TARGET_DIR` override either.

use crate::backend::burn;
use crate::Checked;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The checkout this netc was built from, when the running executable was
/// built there (and so can be rebuilt from it); `None` for an installed netc.
pub fn checkout() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .canonicalize()
        .ok()?;
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    (exe.starts_with(&repo) && repo.join("runtime/Cargo.toml").is_file()).then_some(repo)
}

/// netc's own cache directory: `NETC_CACHE`, else `netc/` in the user's
/// cache directory (`$XDG_CACHE_HOME`, `~/.cache`, `~/Library/Caches`...).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("NETC_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("netc")))
        .unwrap_or_else(|| std::env::temp_dir().join("netc-cache"))
}

/// One target directory for every generated crate (`CARGO_TARGET_DIR` overrides).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| checkout().map(|repo| repo.join("target")))
        .unwrap_or_else(|| cache_dir().join("target"))
}

/// The name of the package and program of the crate in `out`:
/// `netc-model-<model>-<tag>`. The prefix keeps a model named `netc`, `burn`
/// or `std` from clashing with the compiler in the shared target directory or
/// a crate the program uses; case and underscores are kept (`my_net` and
/// `myNet` are two programs). The tag, from the crate's folder, keeps two
/// models of one name apart (a sweep's variants, two projects sharing the
/// installed netc's target): cargo keys its record of what is built by
/// package name and finds the sources of the first one fresh, so without it
/// the second model would silently run the first one's program.
pub fn program_name(model: &str, out: &Path) -> String {
    use md5::{Digest, Md5};
    let folder = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    let folder = folder.canonicalize().unwrap_or(folder);
    let hash = Md5::digest(folder.as_os_str().as_encoded_bytes());
    let tag: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("netc-model-{model}-{tag}")
}

/// The path of the program of the crate in `out`, once compiled into
/// `target`: the one place that knows it.
pub fn program(target: &Path, model: &str, out: &Path) -> PathBuf {
    target.join("release").join(format!(
        "{}{}",
        program_name(model, out),
        std::env::consts::EXE_SUFFIX
    ))
}

/// The runtime crate generated programs link, and the lock file that pins
/// the versions it was built with.
pub struct Runtime {
    pub path: PathBuf,
    pub lock: PathBuf,
}

/// The runtime generated programs link: `NETC_RUNTIME`, the checkout's, or
/// the embedded one written to the cache.
pub fn runtime() -> Result<Runtime, String> {
    if let Some(path) = std::env::var_os("NETC_RUNTIME").map(PathBuf::from) {
        // The runtime's workspace pins its dependencies, when it has one;
        // a netc built without an embedded runtime must still work here.
        let beside = path.join("..").join("Cargo.lock");
        let lock = match checkout() {
            _ if beside.is_file() => beside,
            Some(repo) => repo.join("Cargo.lock"),
            None if !embedded::RUNTIME.is_empty() => unpacked()?.join("Cargo.lock"),
            None => beside,
        };
        return Ok(Runtime { path, lock });
    }
    let dir = match checkout() {
        Some(repo) => repo,
        None => unpacked()?,
    };
    Ok(Runtime {
        path: dir.join("runtime"),
        lock: dir.join("Cargo.lock"),
    })
}

/// The embedded runtime and lock file, written once per version to
/// `<cache>/<version>-<hash>/`.
/// The file that says an unpacked runtime is whole.
const COMPLETE: &str = ".complete";

fn unpacked() -> Result<PathBuf, String> {
    if embedded::RUNTIME.is_empty() {
        return Err(
            "this netc was built without its runtime (the package had no ../runtime); \
             set NETC_RUNTIME to a netc-runtime crate"
                .into(),
        );
    }
    let cache = cache_dir();
    let dir = cache.join(format!("{}-{}", env!("CARGO_PKG_VERSION"), embedded::HASH));
    // The marker is written last, after every file is on disk: a folder
    // without it is what a power cut left, and is written again.
    if dir.join(COMPLETE).is_file() {
        return Ok(dir);
    }
    // Checked again: a whole folder only ever appears, marker and all, by a
    // rename, so one without the marker now is broken, not half-renamed.
    if dir.is_dir() && !dir.join(COMPLETE).is_file() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Written beside, then renamed: a process that stops half-way, or two
    // netc writing at once, never leave a half-written runtime in `dir`.
    let tmp = cache.join(format!(
        ".{}-{}.tmp-{}",
        env!("CARGO_PKG_VERSION"),
        embedded::HASH,
        std::process::id()
    ));
    let write = |rel: &str, bytes: &[u8]| -> Result<(), String> {
        let path = tmp.join(rel);
        std::fs::create_dir_all(path.parent().unwrap())
            .and_then(|()| {
                let mut file = std::fs::File::create(&path)?;
                file.write_all(bytes)?;
                file.sync_all()
            })
            .map_err(|e| {
                format!(
                    "{}: cannot write netc's runtime: {e} (set NETC_CACHE to a writable folder)",
                    path.display()
                )
            })
    };
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, bytes) in embedded::RUNTIME {
        write(&format!("runtime/{rel}"), bytes)?;
    }
    write("Cargo.lock", embedded::LOCK)?;
    write(COMPLETE, b"")?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another netc may have written the same files first.
        if !dir.join(COMPLETE).is_file() {
            return Err(format!("{}: cannot create: {e}", dir.display()));
        }
    }
    Ok(dir)
}

/// Writes `bytes` to `path` through a temporary file beside it and a
/// rename: a reader, or another netc writing the same file, never sees half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
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
    let runtime = runtime()?;
    // The folder first: the program's name comes from its real path.
    std::fs::create_dir_all(out.join("src"))
        .map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let files = burn::crate_files(
        &checked.model,
        source,
        file,
        &toml_string(&runtime.path.display().to_string()),
        &program_name(&checked.model.name, out),
    )
    .map_err(|d| d.render(file, source, false))?;
    for (rel, text) in files {
        let path = out.join(rel);
        // Unchanged files keep their timestamps, so cargo rebuilds nothing.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    // The lock file pins the versions the runtime's build of burn used.
    if runtime.lock.exists() && !out.join("Cargo.lock").exists() {
        std::fs::copy(&runtime.lock, out.join("Cargo.lock"))
            .map_err(|e| format!("{}: cannot copy: {e}", runtime.lock.display()))?;
    }
    Ok(())
}

/// `text` as it stands inside a TOML basic string (the template adds the
/// quotes): a Windows path's backslashes or a quote in a folder's name
/// would otherwise end or break the string. JSON's escapes are TOML's.
fn toml_string(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
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
    let binary = program(&build.target, model, &build.out);
    crate::diag::note(format_args!(
        "built {} in {:.1} s",
        binary.display(),
        start.elapsed().as_secs_f64()
    ));
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
    crate::diag::note(format_args!(
        "building {} in {} (target {})",
        checked.model.name,
        build.out.display(),
        build.target.display()
    ));
    compile(&checked.model.name, build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_cut_short_in_the_cache_is_written_again() {
        let cache = tempfile::tempdir().unwrap();
        // The only test that sets NETC_CACHE; nothing else in this binary reads it.
        std::env::set_var("NETC_CACHE", cache.path());
        let dir = unpacked().unwrap();
        assert!(dir.starts_with(cache.path()) && dir.join(COMPLETE).is_file());
        let manifest = dir.join("runtime/Cargo.toml");
        let whole = std::fs::read(&manifest).unwrap();
        assert!(!whole.is_empty());
        // What a power cut after the rename could leave: a file cut short, no marker.
        std::fs::write(&manifest, b"").unwrap();
        std::fs::remove_file(dir.join(COMPLETE)).unwrap();
        assert_eq!(unpacked().unwrap(), dir);
        assert_eq!(std::fs::read(&manifest).unwrap(), whole);
        std::env::remove_var("NETC_CACHE");
    }
}
