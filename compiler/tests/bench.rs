//! `netc bench` end to end on a tiny model: netc and the emitted module's
//! PyTorch sides measured in turns (netc between the two, the channels-last
//! side after it in the first round and before it in the second), the JSON
//! holding every round's figures and ratios taken round by round; and a
//! side that fails left out. Needs python3 with torch (`.ci/run` installs
//! it): without it the test fails rather than measure netc alone unseen.

use std::process::Command;

/// A model name of its own: programs are keyed by model name.
const TINY: &str = "# the bench test's model\nmodel benchtiny {\n    input 8x8x3\n    train steps=10 batch=4\n    c: conv 3x3 4 relu\n    p: maxpool 3x3 /2\n    out: fc 10\n}\n";

#[test]
fn bench_pairs_netc_with_each_pytorch_side_round_by_round() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("tiny.net"), TINY).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["bench", "tiny.net", "--steps", "2", "--latency-runs", "3"])
        .args(["--batch-size", "4", "--rounds", "2", "--threads", "1"])
        .args(["--out", "out"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("PyTorch not measured"),
        "python3 needs torch and numpy for this test (pip install torch numpy): {err}"
    );

    // The turns: the eager module, netc, the channels-last module; then
    // the other way round.
    let turns: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("benchtiny: round "))
        .collect();
    let want = [
        "round 1/2: PyTorch, emitted module (",
        "round 1/2: netc",
        "round 1/2: PyTorch, emitted, channels-last",
        "round 2/2: PyTorch, emitted, channels-last",
        "round 2/2: netc",
        "round 2/2: PyTorch, emitted module (",
    ];
    assert_eq!(turns.len(), want.len(), "{err}");
    for (turn, want) in turns.iter().zip(want) {
        assert!(turn.contains(want), "{turn} is not {want}: {err}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/bench.json")).unwrap())
            .unwrap();
    let row = &json["rows"][0];
    assert_eq!(row["model"], "benchtiny");
    let train = |f: &serde_json::Value| f["train_examples_per_second"].as_f64().unwrap();
    let netc = row["netc_runs"].as_array().unwrap();
    assert_eq!(netc.len(), 2);
    let sides = row["pytorch"].as_array().unwrap();
    assert_eq!(
        sides.len(),
        2,
        "the emitted module, eager and channels-last"
    );
    for side in sides {
        assert_eq!(side["runs"].as_array().unwrap().len(), 2);
    }
    // Each round's ratio pairs that round's runs, against the side whose
    // median is best; the ratio is their median.
    let paired = &row["ratio"]["rounds"]["train"];
    let against = sides
        .iter()
        .find(|s| s["name"] == paired["against"])
        .expect("the reference is one of the sides");
    assert!(sides
        .iter()
        .all(|s| train(&s["figures"]) <= train(&against["figures"])));
    let rounds: Vec<f64> = paired["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    for (i, r) in rounds.iter().enumerate() {
        let want = train(&netc[i]) / train(&against["runs"][i]);
        assert!((r - want).abs() <= 1e-9 * want, "round {i}: {r} != {want}");
    }
    let ratio = row["ratio"]["train"].as_f64().unwrap();
    assert!((ratio - (rounds[0] + rounds[1]) / 2.0).abs() <= 1e-9 * ratio);

    let md = std::fs::read_to_string(dir.join("out/bench.md")).unwrap();
    let line = md
        .lines()
        .find(|l| l.starts_with("| benchtiny | training, examples/s |"))
        .expect("a training line");
    let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(line.ends_with(&format!("({lo:.2}-{hi:.2}) |")), "{line}");
}

/// A PyTorch side that fails, here the one that runs before netc in the
/// first round, is left out, and netc and the other side are measured in
/// every round: the exit status says something failed, the table has the
/// rest.
#[test]
fn a_failing_pytorch_side_is_left_out_and_the_rest_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tiny = TINY.replace("benchtiny", "benchfail");
    std::fs::write(dir.join("tiny.net"), tiny).unwrap();
    // python3, except for the eager emitted module's bench, which fails.
    let python = dir.join("python");
    std::fs::write(
        &python,
        "#!/bin/sh\ncase \" $* \" in\n*\" --channels-last \"*|*\" --count \"*|*\" -c \"*) exec python3 \"$@\" ;;\nesac\necho boom >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["bench", "tiny.net", "--steps", "2", "--latency-runs", "3"])
        .args(["--batch-size", "4", "--rounds", "2", "--threads", "1"])
        .args(["--out", "out", "--python"])
        .arg(&python)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("boom"), "{err}");
    assert!(
        err.contains("benchfail: emitted module is left out"),
        "{err}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/bench.json")).unwrap())
            .unwrap();
    let row = &json["rows"][0];
    assert_eq!(row["model"], "benchfail");
    assert_eq!(row["netc_runs"].as_array().unwrap().len(), 2, "{err}");
    let sides = row["pytorch"].as_array().unwrap();
    assert_eq!(sides.len(), 1, "{err}");
    assert_eq!(sides[0]["name"], "emitted, channels-last");
    assert_eq!(sides[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(
        row["ratio"]["rounds"]["train"]["rounds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
