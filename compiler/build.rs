//! Packs the runtime crate (`../runtime`) and the workspace's `Cargo.lock`
//! into the netc binary, so that an installed netc builds programs without
//! its checkout (`driver.rs` writes them to a cache directory on first use).
//!
//! `cargo install --path compiler` builds in place, so `../runtime` is there.
//! A copy of this package without it (a registry tarball) embeds nothing;
//! that netc then needs `NETC_RUNTIME`.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest
        .parent()
        .expect("the package has a parent")
        .to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for watched in [
        "runtime/src",
        "runtime/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }

    let runtime = repo.join("runtime");
    let code = if runtime.join("Cargo.toml").is_file() && repo.join("Cargo.lock").is_file() {
        embed(&repo, &runtime, &out)
    } else {
        "pub const RUNTIME: &[(&str, &[u8])] = &[];\n\
         pub const LOCK: &[u8] = b\"\";\n\
         pub const HASH: &str = \"\";\n"
            .to_string()
    };
    std::fs::write(out.join("embedded.rs"), code).expect("OUT_DIR is writable");
}

/// The Rust source of `RUNTIME` (every file of the runtime crate, by path
/// relative to it), `LOCK` and `HASH` (of all of them, naming the cache).
fn embed(repo: &Path, runtime: &Path, out: &Path) -> String {
    // The runtime's manifest inherits keys from the workspace, which the
    // written copy will not sit in: resolve them into a manifest of its own.
    let manifest = resolve(
        &read(&runtime.join("Cargo.toml")),
        &read(&repo.join("Cargo.toml")),
    );
    let resolved = out.join("runtime-Cargo.toml");
    std::fs::write(&resolved, &manifest).expect("OUT_DIR is writable");

    let mut files = vec![("Cargo.toml".to_string(), resolved)];
    sources(&runtime.join("src"), "src", &mut files);
    files.sort();
    let lock = repo.join("Cargo.lock");

    let mut hash = Sha256::new();
    let mut code = String::from("pub const RUNTIME: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        hash.update(format!("{name}\0{}\0", bytes.len()));
        hash.update(&bytes);
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    hash.update(read(&lock));
    let hex: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    writeln!(
        code,
        "pub const LOCK: &[u8] = include_bytes!({:?});",
        lock.display().to_string()
    )
    .unwrap();
    writeln!(code, "pub const HASH: &str = {hex:?};").unwrap();
    code
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, as (path relative to the crate, path on disk).
fn sources(dir: &Path, rel: &str, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            sources(&path, &format!("{rel}/{name}"), files);
        } else {
            files.push((format!("{rel}/{name}"), path));
        }
    }
}

/// `member` (a workspace member's Cargo.toml) with every `workspace = true`
/// key replaced by the workspace's value, and without dev-dependencies (the
/// runtime's tests are not packed).
fn resolve(member: &str, workspace: &str) -> String {
    let mut member: toml::Table = member.parse().expect("runtime/Cargo.toml parses");
    let workspace: toml::Table = workspace.parse().expect("Cargo.toml parses");
    let ws = workspace["workspace"]
        .as_table()
        .expect("a [workspace] table");
    let empty = toml::Table::new();
    let ws_package = ws
        .get("package")
        .and_then(|p| p.as_table())
        .unwrap_or(&empty);
    let ws_deps = ws
        .get("dependencies")
        .and_then(|p| p.as_table())
        .unwrap_or(&empty);

    if let Some(package) = member.get_mut("package").and_then(|p| p.as_table_mut()) {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = ws_package
                    .get(key)
                    .unwrap_or_else(|| panic!("the workspace has no package.{key}"))
                    .clone();
            }
        }
    }
    member.remove("dev-dependencies");
    if let Some(deps) = member
        .get_mut("dependencies")
        .and_then(|d| d.as_table_mut())
    {
        for (name, dep) in deps.iter_mut() {
            if !inherits(dep) {
                continue;
            }
            let mut full = match ws_deps.get(name) {
                Some(toml::Value::String(version)) => {
                    toml::Table::from_iter([("version".to_string(), version.clone().into())])
                }
                Some(toml::Value::Table(t)) => t.clone(),
                _ => panic!("the workspace has no dependency {name}"),
            };
            assert!(
                !full.contains_key("path"),
                "{name}: a path dependency cannot be embedded"
            );
            for (key, value) in dep.as_table().unwrap() {
                match (key.as_str(), full.get_mut(key)) {
                    ("workspace", _) => {}
                    ("features", Some(toml::Value::Array(features))) => {
                        features.extend(value.as_array().unwrap().iter().cloned())
                    }
                    _ => {
                        full.insert(key.clone(), value.clone());
                    }
                }
            }
            *dep = toml::Value::Table(full);
        }
    }
    format!(
        "# netc's runtime, written by netc from the copy embedded in it.\n{}",
        toml::to_string(&member).expect("a manifest serializes")
    )
}

/// Whether a manifest value is `{ workspace = true, ... }`.
fn inherits(value: &toml::Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(|w| w.as_bool())
        == Some(true)
}
