//! `netc sweep` end to end on tiny synthetic data: a sweep killed in the
//! middle of a run and started again keeps its finished runs as they are,
//! resumes the one cut short from its checkpoint and trains no step twice;
//! a third start trains nothing. Also the command's refusals, which train
//! nothing.

mod common;
use common::synthetic;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const STEPS: u64 = 5000;

/// A model name of its own: programs are keyed by model name.
const TINY: &str = "# the sweep test's model\nmodel sweeptiny {\n    input 8x8x3\n    train steps=5000 batch=4\n    c: conv 3x3 4 relu\n    out: fc 10\n}\n";

fn netc(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netc"));
    c.current_dir(dir).env("NO_COLOR", "1");
    c
}

const SWEEP: &[&str] = &[
    "sweep",
    "tiny.net",
    "--vary",
    "lr=0.05",
    "--data",
    "data",
    "--out",
    "sw",
    "--no-latency",
    "--checkpoint-secs",
    "0",
    "--",
    "--log-every",
    "1",
];

fn manifest(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("sw/sweep.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The steps of a run's training log lines, in order.
fn steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn an_interrupted_sweep_trains_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    synthetic(&dir.join("data"));
    std::fs::write(dir.join("tiny.net"), TINY).unwrap();
    let base = dir.join("sw/runs/sweeptiny/1");
    let variant = dir.join("sw/runs/sweeptiny_lr_0_05/1");

    // Killed, with its run, once the base is done and the variant has a
    // checkpoint and a few steps: what a power cut or `kill -9` leaves.
    let mut child = netc(dir)
        .args(SWEEP)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "the sweep never reached its second run"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before it could be interrupted");
        }
        let m = manifest(dir);
        let ready = m.is_some_and(|m| {
            m["variants"][0]["status"] == "done" && m["variants"][1]["status"] == "running"
        }) && variant.join("checkpoint.safetensors").is_file()
            && std::fs::read_to_string(variant.join("log.jsonl"))
                .is_ok_and(|l| l.lines().count() >= 10);
        if ready {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The sweep's children (its training run), by pid, from every thread's
    // list in /proc; then the sweep, then them.
    let mut runs = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let list =
            std::fs::read_to_string(task.unwrap().path().join("children")).unwrap_or_default();
        runs.extend(list.split_whitespace().map(str::to_string));
    }
    assert!(
        !runs.is_empty(),
        "the variant's run is not a child of the sweep"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in &runs {
        Command::new("kill").args(["-KILL", pid]).status().unwrap();
    }
    // The killed run's lock goes with it; wait until it has.
    std::thread::sleep(Duration::from_millis(500));
    let cut = steps(&variant);
    assert!(
        *cut.last().unwrap() < STEPS,
        "the variant's run finished before the kill ({:?} after the start)",
        start.elapsed()
    );
    let base_log = std::fs::read(base.join("log.jsonl")).unwrap();
    let base_weights = std::fs::read(base.join("checkpoint.safetensors")).unwrap();

    // Started again: the base is kept, the variant resumed.
    let err = ok(&netc(dir).args(SWEEP).output().unwrap());
    assert!(err.contains("lr=0.05: training"), "{err}");
    assert!(err.contains("resumed from step"), "{err}");
    assert!(!err.contains("base: training"), "{err}");
    assert_eq!(std::fs::read(base.join("log.jsonl")).unwrap(), base_log);
    assert_eq!(
        std::fs::read(base.join("checkpoint.safetensors")).unwrap(),
        base_weights
    );
    let after = steps(&variant);
    let expected: Vec<u64> = (1..=STEPS).collect();
    assert_eq!(after, expected, "every step once, in order");
    let m = manifest(dir).unwrap();
    assert_eq!(m["variants"][1]["status"], "done");
    assert_eq!(m["variants"][1]["resumed"], 1);
    assert_eq!(m["variants"][0]["resumed"], 0);

    // A third start trains nothing and writes the tables again.
    let variant_log = std::fs::read(variant.join("log.jsonl")).unwrap();
    let err = ok(&netc(dir).args(SWEEP).output().unwrap());
    assert!(!err.contains("training"), "{err}");
    assert_eq!(
        std::fs::read(variant.join("log.jsonl")).unwrap(),
        variant_log
    );
    let table = std::fs::read_to_string(dir.join("sw/sensitivity.csv")).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[1].starts_with("sweeptiny,base,lr=default,"), "{table}");
    assert!(rows[2].starts_with("sweeptiny_lr_0_05,lr,0.05,"), "{table}");
    assert!(dir.join("sw/report/report.md").is_file());
    let diff = std::fs::read_to_string(dir.join("sw/sweeptiny_lr_0_05.net")).unwrap();
    assert_eq!(
        diff,
        TINY.replace("model sweeptiny", "model sweeptiny_lr_0_05")
            .replace("batch=4", "batch=4 lr=0.05")
    );
}

#[test]
fn refusals_train_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("tiny.net"), TINY).unwrap();
    let run = |args: &[&str]| {
        let out = netc(dir).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A KEY that names nothing: the keys that exist.
    let (code, err) = run(&["sweep", "tiny.net", "--vary", "conv9=off", "--data", "d"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("`conv9` names nothing in model `sweeptiny` (tiny.net:2:7)"),
        "{err}"
    );
    assert!(
        err.contains("c (line 5): c=off, c.kernel, c.filters"),
        "{err}"
    );
    // A value of the wrong kind.
    let (code, err) = run(&["sweep", "tiny.net", "--vary", "c.relu=2"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("`c.relu` takes on or off"), "{err}");
    // --dry-run writes and checks the variants: one is refused, with its error.
    let (code, err) = run(&[
        "sweep",
        "tiny.net",
        "--vary",
        "c.kernel=3,5,30",
        "--vary",
        "c.padding=valid",
        "--grid",
        "--dry-run",
        "--out",
        "dry",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("skipped, `netc check` refuses it"), "{err}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dry/sweep.json")).unwrap())
            .unwrap();
    // c.kernel=3 (written 3x3 in the base) with valid padding, 5, 30.
    let names: Vec<&str> = m["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sweeptiny",
            "sweeptiny_c_kernel_3_c_padding_valid",
            "sweeptiny_c_kernel_5_c_padding_valid",
            "sweeptiny_c_kernel_30_c_padding_valid"
        ]
    );
    assert_eq!(m["variants"][2]["status"], "pending");
    assert_eq!(m["variants"][3]["status"], "refused");
    assert!(dir
        .join("dry/sweeptiny_c_kernel_30_c_padding_valid.net")
        .is_file());
    // Without data, nothing can train.
    let (code, err) = run(&["sweep", "tiny.net", "--vary", "lr=0.05", "--out", "nodata"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("give the data with --data DIR"), "{err}");
    // Another request in the same directory is refused.
    let (code, err) = run(&["sweep", "tiny.net", "--vary", "lr=0.2", "--out", "nodata"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("holds another sweep"), "{err}");
}
