//! The `netc` binary on streams that fail: a reader that has gone (`netc
//! check x.net | head -1`) ends netc quietly with status 141, as SIGPIPE ends
//! `cat`; a full disk is an error that says so, exit status 1. Never a panic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every command that prints to standard output, on a zoo model.
const COMMANDS: &[&[&str]] = &[
    &["check", "zoo/tuto.net", "zoo/squeeze1.net"],
    &["check", "--json", "zoo/tuto.net"],
    &["check", "--graph", "zoo/tuto.net"],
    &["emit", "zoo/squeeze1.net"],
    &["emit", "--target", "main", "zoo/tuto.net"],
    &["emit", "--target", "pytorch", "zoo/squeeze1.net"],
];

fn netc(args: &[&str], stdout: Stdio, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("netc starts")
}

/// The writing end of a pipe whose reader has already gone.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn no_panic(args: &[&str], out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "netc {args:?} panicked:\n{err}");
    assert_ne!(out.status.code(), Some(101), "netc {args:?}: {err}");
    err
}

#[test]
fn a_closed_pipe_ends_netc_quietly() {
    for args in COMMANDS {
        // The reader is gone before netc writes a byte: every write fails.
        let out = netc(args, closed_pipe(), Stdio::piped())
            .wait_with_output()
            .unwrap();
        let err = no_panic(args, &out);
        assert_eq!(out.status.code(), Some(141), "netc {args:?}: {err}");
        assert_eq!(err, "", "netc {args:?} should say nothing");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_error_that_says_so() {
    for args in COMMANDS {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = netc(args, full.into(), Stdio::piped())
            .wait_with_output()
            .unwrap();
        let err = no_panic(args, &out);
        assert_eq!(out.status.code(), Some(1), "netc {args:?}: {err}");
        assert!(
            err.contains("error: cannot write the output: No space left on device"),
            "netc {args:?}: {err}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_or_closed_stderr_leaves_the_exit_status_alone() {
    let args = ["check", "tests/bad/unknown_layer.net"];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = netc(&args, Stdio::null(), full.into())
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut child = netc(&args, Stdio::null(), closed_pipe());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn a_byte_order_mark_is_skipped_and_other_bytes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let tuto = std::fs::read(root().join("zoo/tuto.net")).unwrap();
    let bom = dir.path().join("bom.net");
    std::fs::write(&bom, [b"\xEF\xBB\xBF".as_slice(), &tuto].concat()).unwrap();
    let latin1 = dir.path().join("latin1.net");
    std::fs::write(&latin1, b"model m\xE9 {\n}\n").unwrap();
    let big = dir.path().join("big.net");
    std::fs::write(&big, vec![b'\n'; (1 << 20) + 1]).unwrap();
    let run = |path: &Path| {
        let out = netc(
            &["check", path.to_str().unwrap()],
            Stdio::piped(),
            Stdio::piped(),
        )
        .wait_with_output()
        .unwrap();
        let err = no_panic(&["check"], &out);
        (out.status.code(), err)
    };
    assert_eq!(run(&bom), (Some(0), String::new()));
    let (code, err) = run(&latin1);
    assert_eq!(code, Some(1));
    assert!(err.contains("the file is not UTF-8 text"), "{err}");
    assert!(err.contains("latin1.net:1:8"), "{err}");
    assert!(err.contains("byte 0xE9"), "{err}");
    let (code, err) = run(&big);
    assert_eq!(code, Some(1));
    assert!(err.contains("file too large"), "{err}");
}
