//! netc installed as a user installs it: `cargo install --path compiler`
//! into a temporary root, then run from an empty folder outside the
//! checkout, with a home and cache of its own and cargo offline. Its models
//! are named after what a program must not clash with: the compiler's own
//! binary in the shared target directory (`netc`), a crate the program uses
//! (`burn`) and cargo's own folders there (`deps`, which cargo refuses as a
//! binary's name).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Instant, SystemTime};

const NETS: &str = "\
model netc {
    input 8x8x3
    train steps=2 batch=4
    conv1: conv 3x3 4 relu
    pool: maxpool 2x2 /2
    logits: fc 10
}

model burn {
    input 8x8x3
    logits: fc 10
}

model deps {
    input 8x8x3
    logits: fc 10
}
";

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or("cargo".into(), PathBuf::from)
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// When and how large a file was, to see that nothing wrote it.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[test]
fn an_installed_netc_builds_and_trains_from_an_empty_folder() {
    let repo = netc_tests::root();
    let tmp = tempfile::tempdir().unwrap();
    let (root, home, cache, work) = (
        tmp.path().join("root"),
        tmp.path().join("home"),
        tmp.path().join("cache"),
        tmp.path().join("work"),
    );
    for dir in [&home, &cache, &work] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // The workspace's target directory already holds netc's dependencies and
    // the burn that the other tests' programs link: pointing both the install
    // and the generated programs at it keeps this test from compiling burn
    // again (minutes on CI's two cores). It is also the shared target where a
    // model named `netc` once overwrote the compiler.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
    let compiler_in_target = target.join("release/netc");

    // A user's environment: not the variables cargo sets for this test
    // (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`... which would also make
    // cargo rebuild ring, whose build script watches them), a home and
    // cache of its own, cargo offline. cargo and rustup keep their homes
    // and toolchain while HOME moves.
    let real_home = std::env::var_os("HOME").map(PathBuf::from);
    let keep = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| real_home.as_ref().map(|h| h.join(default)))
            .map(|dir| (var.to_string(), dir.into_os_string()))
    };
    let mut kept: Vec<_> = ["PATH", "RUSTUP_TOOLCHAIN", "RUSTFLAGS", "TMPDIR"]
        .into_iter()
        .filter_map(|var| Some((var.to_string(), std::env::var_os(var)?)))
        .collect();
    kept.extend(keep("CARGO_HOME", ".cargo"));
    kept.extend(keep("RUSTUP_HOME", ".rustup"));
    let user = |cmd: &mut Command| {
        cmd.current_dir(&work)
            .env_clear()
            .envs(kept.iter().map(|(k, v)| (k, v)))
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", &cache)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true")
            .env("NO_COLOR", "1");
    };

    let start = Instant::now();
    let mut install = Command::new(cargo());
    install
        .args(["install", "--locked", "--offline", "--quiet", "--path"])
        .arg(repo.join("compiler"))
        .arg("--root")
        .arg(&root);
    user(&mut install);
    ok("cargo install", install.output().unwrap());
    let netc = root
        .join("bin")
        .join(format!("netc{}", std::env::consts::EXE_SUFFIX));
    eprintln!(
        "installed {} in {:.0} s",
        netc.display(),
        start.elapsed().as_secs_f64()
    );

    let run = |args: &[&str]| {
        let mut cmd = Command::new(&netc);
        cmd.args(args);
        user(&mut cmd);
        ok(&format!("netc {args:?}"), cmd.output().unwrap())
    };
    std::fs::write(work.join("nets.net"), NETS).unwrap();
    netc_tests::synthetic_cifar(&work.join("data"), 20);

    assert!(run(&["check", "nets.net"]).contains("model netc"));
    let before = stamp(&compiler_in_target);
    let start = Instant::now();
    let built = run(&["build", "nets.net"]);
    eprintln!("built 3 models in {:.0} s", start.elapsed().as_secs_f64());

    // Each model has a program of its own, namespaced in the shared target.
    let programs: Vec<&str> = built.lines().collect();
    assert_eq!(programs.len(), 3, "{built}");
    for (program, model) in programs.iter().zip(["netc", "burn", "deps"]) {
        let path = Path::new(program);
        assert_eq!(path.parent(), Some(target.join("release").as_path()));
        let stem = path.file_stem().unwrap().to_string_lossy();
        assert!(
            stem.starts_with(&format!("netc-model-{model}-")),
            "{stem}: not netc-model-{model}-<folder tag>"
        );
        assert!(path.is_file(), "{program} was not built");
    }
    assert_eq!(
        stamp(&compiler_in_target),
        before,
        "building a model named netc wrote {}",
        compiler_in_target.display()
    );

    // The runtime came from the installed binary, unpacked into the cache:
    // nothing of the checkout is used.
    let manifest = std::fs::read_to_string(work.join("target/netc/netc/Cargo.toml")).unwrap();
    let runtime_line = manifest
        .lines()
        .find(|l| l.starts_with("netc-runtime"))
        .unwrap();
    let unpacked = std::fs::read_dir(cache.join("netc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("runtime/Cargo.toml").is_file())
        .expect("the runtime is unpacked in the cache");
    assert!(
        runtime_line.contains(&unpacked.join("runtime").display().to_string()),
        "{runtime_line}"
    );
    assert!(!runtime_line.contains(&repo.display().to_string()));

    // The program trains and evaluates from there.
    let start = Instant::now();
    run(&[
        "train",
        "nets.net",
        "--data",
        "data",
        "--steps",
        "2",
        "--quiet",
        "--eval-every",
        "0",
    ]);
    let log = std::fs::read_to_string(work.join("runs/netc/1/log.jsonl")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"step\":2")), "{log}");
    let eval = run(&[
        "eval",
        "nets.net",
        "--data",
        "data",
        "--run",
        "runs/netc/1",
        "--json",
    ]);
    let eval: serde_json::Value = serde_json::from_str(&eval).unwrap();
    assert!((0.0..=1.0).contains(&eval["accuracy"].as_f64().unwrap()));
    eprintln!(
        "trained and evaluated in {:.0} s",
        start.elapsed().as_secs_f64()
    );
}
