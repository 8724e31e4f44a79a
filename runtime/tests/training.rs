//! Training end to end on synthetic data, with a small hand-written network:
//! the loss falls, checkpoints reload exactly, resuming repeats the
//! uninterrupted run, and a NaN stops the run with the checkpoint kept.

mod common;

use burn::backend::Flex;
use burn::prelude::*;
use common::*;
use netc_runtime::checkpoint::Checkpoint;
use netc_runtime::train;
use netc_runtime::{burn, params, Net, Settings, Spec};
use std::time::Duration;

#[test]
fn the_loss_falls_and_the_run_directory_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let out = train_tiny(
        &SPEC,
        &options(dir.path(), &dir.path().join("runs")),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(out.run, dir.path().join("runs/tiny/1"));
    let l = losses(&out.run);
    assert_eq!(l.len(), 40);
    let first: f64 = l[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = l[35..].iter().sum::<f64>() / 5.0;
    assert!(last < first * 0.85, "loss went from {first} to {last}");
    for f in [train::SOURCE, train::SETTINGS, train::CHECKPOINT] {
        assert!(out.run.join(f).exists(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(out.run.join(train::SOURCE)).unwrap(),
        SPEC.source
    );
    assert!(out.test_accuracy.is_some());
    // A second run gets the next number.
    let again = train_tiny(
        &SPEC,
        &with(dir.path(), &dir.path().join("runs"), |o| {
            o.asked.steps = Some(1);
        }),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(again.run, dir.path().join("runs/tiny/2"));
}

/// A training forward pass updates batch norm's running statistics; burn
/// keeps that update pending, which `collect` does not see and
/// `collect_trained` (what checkpoints are made from) does.
#[test]
fn checkpoints_see_the_last_update_of_the_running_statistics() {
    let _turn = one_at_a_time();
    let device = Default::default();
    let model = Tiny::<B>::init(&device);
    let x = Tensor::<B, 4>::random([4, 3, 8, 8], burn::tensor::Distribution::Default, &device);
    drop(model.forward(x));
    let stale = params::collect(&model)["bn.running_mean"].values.clone();
    let trained = params::collect_trained(&model)["bn.running_mean"]
        .values
        .clone();
    assert_eq!(stale, vec![0.0; 4], "burn now shows the update to visitors");
    assert!(trained.iter().all(|v| *v != 0.0), "{trained:?}");
}

#[test]
fn a_checkpoint_reloads_to_identical_outputs() {
    let _turn = one_at_a_time();
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let model = Tiny::<Flex>::init(&device);
    let path = dir.path().join("w.safetensors");
    Checkpoint {
        raw: params::collect(&model),
        ..Default::default()
    }
    .save(&path)
    .unwrap();
    let names: Vec<String> = {
        let mut n: Vec<String> = params::collect(&model).into_keys().collect();
        n.sort();
        n
    };
    assert_eq!(
        names,
        [
            "bn.beta",
            "bn.gamma",
            "bn.running_mean",
            "bn.running_var",
            "conv.bias",
            "conv.weight",
            "fc.bias",
            "fc.weight"
        ]
    );
    let fresh = Tiny::<Flex>::init(&device);
    let loaded = params::replace(fresh, &Checkpoint::load(&path).unwrap().raw, &|_| true).unwrap();
    let x = Tensor::<Flex, 4>::random([2, 3, 8, 8], burn::tensor::Distribution::Default, &device);
    let a: Vec<f32> = model.forward(x.clone()).into_data().to_vec().unwrap();
    let b: Vec<f32> = loaded.forward(x).into_data().to_vec().unwrap();
    assert_eq!(a, b);
}

/// For the seed's SGD, Nesterov momentum with a step schedule and warm-up,
/// and AdamW with warm-up and label smoothing: the optimizer's state travels
/// in the checkpoint, so the resumed run ends bit for bit where the
/// uninterrupted one does. (A cosine schedule ends at the run's last step, so
/// moving that end with `--steps` changes the rates after the checkpoint.)
#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    use netc_runtime::{Optimizer, Schedule};
    let recipes: [fn(&mut train::Options); 3] = [
        |_| {},
        |o| {
            o.asked.optimizer = Some(Optimizer::Nesterov);
            o.asked.schedule = Some(Schedule::Step);
            o.asked.lr_every = Some(7);
            o.asked.warmup = Some(3);
        },
        |o| {
            o.asked.optimizer = Some(Optimizer::Adamw);
            o.asked.learning_rate = Some(0.01);
            o.asked.warmup = Some(12);
            o.asked.smoothing = Some(0.1);
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    for (i, recipe) in recipes.iter().enumerate() {
        let runs = dir.path().join(format!("runs{i}"));
        let full = train_tiny(
            &SPEC,
            &with(dir.path(), &runs, |o| {
                o.asked.steps = Some(20);
                recipe(o);
            }),
            &Default::default(),
        )
        .unwrap();
        let half = train_tiny(
            &SPEC,
            &with(dir.path(), &runs, |o| {
                o.asked.steps = Some(10);
                recipe(o);
            }),
            &Default::default(),
        )
        .unwrap();
        let resumed = train_tiny(
            &SPEC,
            &with(dir.path(), &runs, |o| {
                o.asked.steps = Some(20);
                o.resume = Some(half.run.clone());
            }),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(resumed.run, half.run);
        let a = Checkpoint::load(&full.run.join(train::CHECKPOINT)).unwrap();
        let b = Checkpoint::load(&resumed.run.join(train::CHECKPOINT)).unwrap();
        assert_eq!(a.metadata["step"], "20");
        assert_eq!(b.metadata["step"], "20");
        let differ: Vec<_> = a.raw.keys().filter(|k| a.raw[*k] != b.raw[*k]).collect();
        assert!(a.raw == b.raw, "recipe {i}: the weights differ: {differ:?}");
        assert!(a.averaged == b.averaged, "recipe {i}: the averages differ");
        assert!(a.optimizer == b.optimizer, "recipe {i}: the states differ");
        // Plain SGD has no state; momentum one buffer, Adam two, per trained tensor.
        assert_eq!(a.optimizer.len(), [0, 6, 12][i], "recipe {i}");
        assert_eq!(losses(&half.run).len(), 20, "the log holds each step once");
    }
}

#[test]
fn a_diverging_run_stops_and_keeps_a_finite_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let opts = with(dir.path(), &runs, |o| {
        o.asked.steps = Some(30);
        o.asked.learning_rate = Some(1e30);
        o.checkpoint_every = Duration::ZERO;
    });
    let e = train_tiny(&SPEC, &opts, &Default::default()).unwrap_err();
    assert!(e.contains("Lower --lr"), "{e}");
    let path = runs.join("tiny/1").join(train::CHECKPOINT);
    if path.exists() {
        let ck = Checkpoint::load(&path).unwrap();
        assert!(ck
            .raw
            .values()
            .all(|t| t.values.iter().all(|v| v.is_finite())));
    }
    let log = std::fs::read_to_string(runs.join("tiny/1").join(train::LOG)).unwrap();
    assert!(log.contains("error"), "the log records why the run stopped");
}

#[test]
fn init_from_starts_with_the_given_weights() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let first = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(5);
        }),
        &Default::default(),
    )
    .unwrap();
    let weights = first.run.join(train::CHECKPOINT);
    let second = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(0);
            o.asked.seed = Some(77);
            o.asked.init_from = Some(weights.clone());
        }),
        &Default::default(),
    )
    .unwrap();
    let a = Checkpoint::load(&weights).unwrap().raw;
    let b = Checkpoint::load(&second.run.join(train::CHECKPOINT))
        .unwrap()
        .raw;
    assert_eq!(a, b);
}

#[test]
fn bench_measures_positive_speeds() {
    // `bench::run` seeds burn's generator and draws from it: between a
    // training's seed and its draws, it made a resumed run differ from an
    // uninterrupted one in about 1 run of the binary's tests in 15.
    let _turn = one_at_a_time();
    let plan = netc_runtime::bench::Plan {
        batch_size: 8,
        steps: 2,
        latency_runs: 3,
    };
    let before = if cfg!(target_os = "linux") {
        proc_status("VmHWM:")
    } else {
        0
    };
    let b =
        netc_runtime::bench::run::<B, Tiny<B>>("tiny", [8, 8, 3], 10, plan, &Default::default())
            .unwrap();
    assert!(b.train_examples_per_second > 0.0 && b.infer_examples_per_second > 0.0);
    assert!(b.latency_ms_median > 0.0 && b.latency_ms_p95 >= b.latency_ms_median);
    // The kernel's high-water mark only rises: the peak reported lies
    // between its values before and after the bench, in bytes. Within a
    // MiB: the kernel sums each CPU's count of resident pages only
    // approximately, and a read once came out 168 KiB above the next.
    if cfg!(target_os = "linux") {
        let peak = b.peak_memory_bytes.expect("Linux reports peak memory");
        let after = proc_status("VmHWM:");
        let slack = 1 << 20;
        assert!(
            before <= peak + slack && peak <= after + slack && peak > 0,
            "peak {peak} bytes, high-water mark {before} before and {after} after"
        );
    } else {
        assert_eq!(b.peak_memory_bytes, None);
    }
}

/// A `/proc/self/status` field in bytes.
fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn weights_of_another_model_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let wrong = dir.path().join("wrong.safetensors");
    let t = netc_runtime::params::Named {
        shape: vec![2, 2],
        values: vec![0.0; 4],
    };
    Checkpoint {
        raw: [("fc.weight".to_string(), t)].into(),
        ..Default::default()
    }
    .save(&wrong)
    .unwrap();
    let e = train_tiny(
        &SPEC,
        &with(dir.path(), &dir.path().join("runs"), |o| {
            o.asked.steps = Some(1);
            o.asked.init_from = Some(wrong);
        }),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        e.contains("wrong.safetensors") && e.contains("does not fit"),
        "{e}"
    );
    assert!(
        e.contains("no tensor `conv.weight`") && e.contains("`fc.weight` has shape [2, 2]"),
        "{e}"
    );
}

#[test]
fn resuming_after_the_source_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let run = train_tiny(
        &SPEC,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(2);
        }),
        &Default::default(),
    )
    .unwrap();
    let edited = Spec {
        source: "model tiny { input 8x8x3 }\n# edited\n",
        ..SPEC
    };
    let e = train_tiny(
        &edited,
        &with(dir.path(), &runs, |o| {
            o.asked.steps = Some(4);
            o.resume = Some(run.run.clone());
        }),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.contains("source changed"), "{e}");
}

#[test]
fn data_with_other_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let seven = Spec {
        settings: Settings {
            classes: 7,
            ..SPEC.settings
        },
        ..SPEC
    };
    let e = train_tiny(
        &seven,
        &options(dir.path(), &dir.path().join("runs")),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.contains("10 classes") && e.contains("7 scores"), "{e}");
}

/// An averaging run reads the program's graph (its batch norms) before it
/// makes a run directory; a program without a readable one is refused.
#[test]
fn a_program_without_a_readable_graph_cannot_average() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    for (graph, want) in [("", "carries no graph"), ("{", "unreadable")] {
        let spec = Spec { graph, ..SPEC };
        let e = train_tiny(&spec, &options(dir.path(), &runs), &Default::default()).unwrap_err();
        assert!(e.contains(want) && e.contains("netc build tiny.net"), "{e}");
    }
    assert!(!runs.exists(), "a run directory was made");
    let plain = with(dir.path(), &runs, |o| o.asked.average = Some(false));
    let spec = Spec { graph: "", ..SPEC };
    train_tiny(&spec, &plain, &Default::default()).unwrap();
}

#[test]
fn inputs_cifar_cannot_fill_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let gray = Spec {
        input: [8, 8, 1],
        ..SPEC
    };
    let e = train_tiny(&gray, &options(dir.path(), &runs), &Default::default()).unwrap_err();
    assert!(e.contains("1 channels"), "{e}");
    let big = Spec {
        input: [40, 40, 3],
        ..SPEC
    };
    let e = train_tiny(&big, &options(dir.path(), &runs), &Default::default()).unwrap_err();
    assert!(e.contains("40x40") && e.contains("32x32"), "{e}");
}
