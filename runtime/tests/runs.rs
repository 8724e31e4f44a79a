//! Run directories under stress: resuming with contradicting flags, after a
//! kill before the first checkpoint, without the `--init-from` file, from a
//! damaged checkpoint, twice at once; weights that are not numbers; and
//! checkpoints that are the same bytes for the same run.

mod common;

use common::*;
use netc_runtime::checkpoint::Checkpoint;
use netc_runtime::params::Named;
use netc_runtime::run::{self, RunSettings};
use netc_runtime::train::{self, Outcome};
use netc_runtime::Result;
use std::path::{Path, PathBuf};

fn train(o: &netc_runtime::train::Options) -> Result<Outcome> {
    train_tiny(&SPEC, o, &Default::default())
}

/// A finished run of `steps` steps in `dir/runs`, on data in `dir`.
fn short_run(dir: &Path, steps: u64) -> PathBuf {
    train(&with(dir, &dir.join("runs"), |o| {
        o.asked.steps = Some(steps)
    }))
    .unwrap()
    .run
}

fn resume(
    dir: &Path,
    run: &Path,
    f: impl FnOnce(&mut netc_runtime::train::Options),
) -> Result<Outcome> {
    train(&with(dir, &dir.join("runs"), |o| {
        o.resume = Some(run.to_path_buf());
        f(o)
    }))
}

fn log_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(train::LOG))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The whole lines of a log, as a run that was not killed wrote them.
fn log_lines_lossy(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(train::LOG))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn settings(run: &Path) -> RunSettings {
    serde_json::from_str(&std::fs::read_to_string(run.join(train::SETTINGS)).unwrap()).unwrap()
}

#[test]
fn resuming_with_flags_that_contradict_the_run_is_refused_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let e = resume(dir.path(), &run, |o| {
        o.asked.learning_rate = Some(0.05);
        o.asked.seed = Some(9);
        o.asked.augment = Some(true);
        o.asked.steps = Some(4);
        o.asked.optimizer = Some(netc_runtime::Optimizer::Adam);
        o.asked.warmup = Some(5);
    })
    .unwrap_err();
    assert!(
        e.contains("--lr 0.05 (the run uses 0.1)")
            && e.contains("--seed 9 (the run uses 5)")
            && e.contains("--augment on (the run uses off)")
            && e.contains("--optimizer adam (the run uses sgd)")
            && e.contains("--warmup 5 (the run uses 0)"),
        "{e}"
    );
    assert_eq!(settings(&run).settings.steps, 2, "nothing changed");
    // Other data is refused too, while the run's own data is there.
    let other = tempfile::tempdir().unwrap();
    synthetic(other.path(), 100);
    let e = resume(dir.path(), &run, |o| {
        o.asked.data = Some(other.path().into())
    })
    .unwrap_err();
    assert!(e.contains("--data") && e.contains("the run uses"), "{e}");
}

#[test]
fn resuming_with_more_steps_extends_the_run_and_settings_say_so() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    // The same values as the run's are no contradiction.
    let out = resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap();
    assert_eq!(out.steps, 4);
    assert_eq!(settings(&run).settings.steps, 4);
    let steps: Vec<u64> = log_lines(&run)
        .iter()
        .filter(|l| l["loss"].is_number())
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
}

#[test]
fn resuming_before_the_first_checkpoint_cuts_the_log_and_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 3);
    // As if killed before the first checkpoint, in the middle of a line.
    std::fs::remove_file(run.join(train::CHECKPOINT)).unwrap();
    let log = run.join(train::LOG);
    let mut text = std::fs::read(&log).unwrap();
    text.extend(br#"{"step":4,"lo"#);
    std::fs::write(&log, text).unwrap();
    let before = log_lines_lossy(&run);
    resume(dir.path(), &run, |_| {}).unwrap();
    // Every line whole (log_lines parses each), each logged once.
    let after = log_lines(&run);
    let results = |lines: &[serde_json::Value]| -> Vec<String> {
        let keep =
            |l: &serde_json::Value| format!("{} {} {}", l["step"], l["loss"], l["test_accuracy"]);
        lines.iter().map(keep).collect()
    };
    assert_eq!(results(&after), results(&before));
    let steps: Vec<u64> = after
        .iter()
        .filter(|l| l["loss"].is_number())
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3]);
}

#[test]
fn resuming_needs_no_init_from_file_once_a_checkpoint_exists() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let first = short_run(dir.path(), 1);
    let weights = dir.path().join("start.safetensors");
    std::fs::copy(first.join(train::CHECKPOINT), &weights).unwrap();
    let run = train(&with(dir.path(), &dir.path().join("runs"), |o| {
        o.asked.steps = Some(2);
        o.asked.init_from = Some(weights.clone());
    }))
    .unwrap()
    .run;
    std::fs::remove_file(&weights).unwrap();
    let out = resume(dir.path(), &run, |o| o.asked.steps = Some(3)).unwrap();
    assert_eq!(out.steps, 3);
}

#[test]
fn a_checkpoint_without_a_valid_step_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let path = run.join(train::CHECKPOINT);
    let mut ck = Checkpoint::load(&path).unwrap();
    ck.metadata.insert("step".into(), "2x".into());
    ck.save(&path).unwrap();
    let lines = log_lines(&run).len();
    let e = resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap_err();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("`step` = \"2x\""),
        "{e}"
    );
    assert_eq!(log_lines(&run).len(), lines, "the log is kept");
}

#[test]
fn a_run_is_trained_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let held = run::resume(&SPEC, &run, &Default::default()).unwrap();
    let e = resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap_err();
    assert!(e.contains("another process is training this run"), "{e}");
    drop(held);
    resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap();
}

#[test]
fn a_temporary_file_left_by_a_crash_goes_when_the_run_reopens() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let stale = [".checkpoint.safetensors.tmp", ".settings.json.tmp"].map(|n| run.join(n));
    for f in &stale {
        std::fs::write(f, b"half a file").unwrap();
    }
    resume(dir.path(), &run, |_| {}).unwrap();
    for f in &stale {
        assert!(!f.exists(), "{} is left", f.display());
    }
}

#[test]
fn identical_runs_write_identical_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let a = short_run(dir.path(), 3);
    let b = short_run(dir.path(), 3);
    assert_ne!(a, b);
    let read = |run: &Path| std::fs::read(run.join(train::CHECKPOINT)).unwrap();
    assert!(read(&a) == read(&b), "the checkpoints' bytes differ");
}

/// A copy of a run's checkpoint with one value of `name` made `value`.
fn poisoned(from: &Path, to: &Path, name: &str, value: f32) {
    let mut ck = Checkpoint::load(from).unwrap();
    let t: &mut Named = match name.strip_prefix("ema/") {
        Some(inner) => ck.averaged.as_mut().unwrap().get_mut(inner).unwrap(),
        None => ck.raw.get_mut(name).unwrap(),
    };
    t.values[1] = value;
    ck.save(to).unwrap();
}

#[test]
fn weights_that_are_not_numbers_are_refused_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let checkpoint = run.join(train::CHECKPOINT);
    let bad = dir.path().join("nan.safetensors");
    poisoned(&checkpoint, &bad, "fc.weight", f32::NAN);
    let e = train(&with(dir.path(), &dir.path().join("runs"), |o| {
        o.asked.steps = Some(0);
        o.asked.init_from = Some(bad.clone());
    }))
    .unwrap_err();
    assert!(
        e.contains("nan.safetensors") && e.contains("`fc.weight` (1 of 640)"),
        "{e}"
    );
    assert!(!e.contains("last good checkpoint"), "{e}");
    // A resumed run's average with an infinity.
    poisoned(
        &checkpoint.clone(),
        &checkpoint,
        "ema/conv.bias",
        f32::INFINITY,
    );
    let e = resume(dir.path(), &run, |o| o.asked.steps = Some(3)).unwrap_err();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("`ema/conv.bias`"),
        "{e}"
    );
}

#[test]
fn an_unreadable_test_set_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let test = dir.path().join("test_batch.bin");
    std::fs::write(&test, &std::fs::read(&test).unwrap()[..5000]).unwrap();
    let runs = dir.path().join("runs");
    let e = train(&with(dir.path(), &runs, |o| o.asked.steps = Some(2))).unwrap_err();
    assert!(e.contains("test_batch.bin"), "{e}");
    assert!(!runs.join("tiny/1").exists(), "no run was started");
}

#[test]
fn a_resumed_run_whose_data_moved_is_told_where_it_went() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic(&data, 100);
    let runs = dir.path().join("runs");
    let run = train(&with(&data, &runs, |o| o.asked.steps = Some(2)))
        .unwrap()
        .run;
    let moved = dir.path().join("moved");
    std::fs::rename(&data, &moved).unwrap();
    let again = |data: Option<PathBuf>| {
        train(&with(&moved, &runs, |o| {
            o.resume = Some(run.clone());
            o.asked.data = data;
            o.asked.steps = Some(3);
        }))
    };
    let e = again(None).unwrap_err();
    assert!(e.contains("is gone") && e.contains("--data"), "{e}");
    again(Some(moved.clone())).unwrap();
    assert_eq!(settings(&run).data, moved);
    assert_eq!(settings(&run).settings.steps, 3);
}

#[test]
fn a_run_saves_its_data_and_weights_from_the_root() {
    // Resumed from another directory, the run must find the same files,
    // not whatever `data` means there.
    let asked = run::Asked {
        init_from: Some(PathBuf::from("weights.safetensors")),
        ..run::Asked::default()
    };
    let s = RunSettings::new(&SPEC, &asked, Path::new("data"));
    let here = std::env::current_dir().unwrap();
    assert_eq!(s.data, here.join("data"));
    assert_eq!(s.init_from, Some(here.join("weights.safetensors")));
}

/// A run whose settings.json predates the optimizer settings resumes with
/// the seed's recipe, and a bad value is refused before a run is made.
#[test]
fn old_settings_resume_as_the_seeds_recipe_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = short_run(dir.path(), 2);
    let path = run.join(train::SETTINGS);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let inner = json["settings"].as_object_mut().unwrap();
    for key in [
        "optimizer",
        "momentum",
        "schedule",
        "warmup",
        "smoothing",
        "lr_every",
    ] {
        assert!(inner.remove(key).is_some(), "{key} is saved");
    }
    std::fs::write(&path, json.to_string()).unwrap();
    resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap();
    assert_eq!(settings(&run).settings.recipe, netc_runtime::Recipe::SEED);
    let e = train(&with(dir.path(), &dir.path().join("runs"), |o| {
        o.asked.smoothing = Some(1.0);
    }))
    .unwrap_err();
    assert!(e.contains("--smoothing 1 is not in [0, 1)"), "{e}");
}

/// A momentum run's checkpoint that lost some or all of its optimizer state
/// is refused on resume, naming what is missing: continuing without it
/// would not be the run.
#[test]
fn a_checkpoint_without_its_optimizer_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let run = train(&with(dir.path(), &dir.path().join("runs"), |o| {
        o.asked.steps = Some(2);
        o.asked.optimizer = Some(netc_runtime::Optimizer::Momentum);
    }))
    .unwrap()
    .run;
    let path = run.join(train::CHECKPOINT);
    let mut ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.metadata["optimizer"], "momentum");
    assert!(ck.optimizer.remove("momentum/fc.bias").is_some());
    ck.save(&path).unwrap();
    let e = resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap_err();
    assert!(
        e.contains("lacks or misshapes `optim/momentum/fc.bias`"),
        "{e}"
    );
    ck.optimizer.clear();
    ck.save(&path).unwrap();
    let e = resume(dir.path(), &run, |o| o.asked.steps = Some(4)).unwrap_err();
    assert!(e.contains("holds no Momentum optimizer state"), "{e}");
}
