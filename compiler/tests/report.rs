//! `netc report` on fixture runs made here: the table matches its snapshot,
//! plots are written, and damaged files cost only their own columns.

use std::path::Path;
use std::process::Command;

/// `settings`: the `settings` object of the run's settings.json.
fn run_dir(root: &Path, model: &str, n: u32, settings: &str, log: &str, checkpoint: bool) {
    let dir = root.join(model).join(n.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../zoo/{model}.net")),
    )
    .unwrap();
    std::fs::write(dir.join("model.net"), source).unwrap();
    std::fs::write(
        dir.join("settings.json"),
        format!("{{\"model\": \"{model}\", \"settings\": {settings}}}"),
    )
    .unwrap();
    std::fs::write(dir.join("log.jsonl"), log).unwrap();
    if checkpoint {
        std::fs::write(dir.join("checkpoint.safetensors"), vec![0u8; 1234]).unwrap();
    }
}

#[test]
fn report_of_fixture_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    run_dir(
        &runs,
        "tuto",
        1,
        // Written before the optimizer settings existed: the seed's recipe.
        r#"{"augment": true, "average": true, "batch_size": 128, "decay": 500.0,
            "learning_rate": 0.1, "steps": 12000}"#,
        "{\"step\": 100, \"loss\": 2.0, \"examples_per_second\": 180.0}\n\
         {\"step\": 5000, \"test_accuracy\": 0.70}\n\
         {\"step\": 10000, \"test_accuracy\": 0.80, \"averaged\": true}\n\
         {\"step\": 12000, \"loss\": 0.9, \"examples_per_second\": 190.0}\n\
         {\"step\": 12000, \"test_accuracy\": 0.81}\n",
        true,
    );
    run_dir(
        &runs,
        "squeeze1",
        1,
        r#"{"augment": true, "average": false, "batch_size": 64, "decay": 0.0,
            "learning_rate": 0.001, "optimizer": "adamw", "beta1": 0.9, "beta2": 0.99,
            "schedule": "cosine", "lr_min": 0.0001, "warmup": 500, "smoothing": 0.1}"#,
        "{\"step\": 100, \"loss\": 2.0, \"examples_per_second\": 150.0}\nnot json at all\n{\"step\": 2000, \"test_accuracy\": 0.60}\n",
        false,
    );
    let out_dir = dir.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "report",
            runs.to_str().unwrap(),
            "--no-latency",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 damaged lines skipped"), "{stderr}");
    assert!(stderr.contains("checkpoint.safetensors"), "{stderr}");
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    insta::assert_snapshot!("report_csv", csv);
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let md = md.replace(&dir.path().display().to_string(), "<tmp>");
    insta::assert_snapshot!("report_md", md);
    for plot in ["accuracy_vs_steps", "accuracy_vs_ops"] {
        let svg = std::fs::read_to_string(out_dir.join(format!("{plot}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("tuto/1"));
        let png = std::fs::read(out_dir.join(format!("{plot}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

#[test]
fn no_runs_is_an_error_that_says_what_a_run_is() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["report", dir.path().to_str().unwrap(), "--no-latency"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.jsonl"));
}
