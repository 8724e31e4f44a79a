//! Training end to end on synthetic data, with a small hand-written network:
//! the loss falls, checkpoints reload exactly, resuming repeats the
//! uninterrupted run, and a NaN stops the run with the checkpoint kept.

use burn::backend::{Autodiff, Flex};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use netc_runtime::checkpoint::Checkpoint;
use netc_runtime::nn::{decay_term, ZeroBias, XAVIER};
use netc_runtime::train::{self, Options};
use netc_runtime::{burn, params, Net, Settings, Spec};
use std::path::Path;
use std::time::Duration;

type B = Autodiff<Flex>;

#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    conv: Conv2d<B>,
    fc: Linear<B>,
}

impl<B: Backend> Net<B> for Tiny<B> {
    fn init(device: &B::Device) -> Self {
        Tiny {
            conv: Conv2dConfig::new([3, 4], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_initializer(XAVIER)
                .init(device)
                .zero_bias(),
            fc: LinearConfig::new(4 * 4 * 4, 10)
                .with_initializer(XAVIER)
                .init(device)
                .zero_bias(),
        }
    }
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = relu(self.conv.forward(x));
        self.fc.forward(x.flatten(1, 3))
    }
    fn decay_loss(&self) -> Option<Tensor<B, 1>> {
        Some(decay_term(&self.fc.weight))
    }
}

const SPEC: Spec = Spec {
    name: "tiny",
    file: "tiny.net",
    source: "model tiny { input 8x8x3 }\n",
    input: [8, 8, 3],
    settings: Settings {
        decay: 1.0,
        augment: true,
        average: true,
        learning_rate: 0.1,
        batch_size: 16,
        steps: 40,
        classes: 10,
    },
};

/// 10 classes told apart by color: easy to learn in a few dozen steps.
fn synthetic(dir: &Path, n: usize) {
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = (i % 10) as u8;
        bytes.push(label);
        for plane in 0..3u8 {
            let v = label
                .wrapping_mul(25)
                .wrapping_add(plane * 80)
                .wrapping_add((i % 7) as u8);
            bytes.extend(std::iter::repeat_n(v, 1024));
        }
    }
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes[..100 * 3073]).unwrap();
}

fn options(data: &Path, runs: &Path) -> Options {
    Options {
        data: data.to_path_buf(),
        runs: runs.to_path_buf(),
        resume: None,
        init_from: None,
        steps: None,
        learning_rate: None,
        batch_size: None,
        seed: 5,
        augment: Some(false),
        decay: None,
        average: None,
        checkpoint_every: Duration::from_secs(3600),
        eval_every: 0,
        log_every: 1,
        progress: false,
    }
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join(train::LOG))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect()
}

#[test]
fn the_loss_falls_and_the_run_directory_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let out = train::train::<B, Tiny<B>>(
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
    let again = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(1),
            ..options(dir.path(), &dir.path().join("runs"))
        },
        &Default::default(),
    )
    .unwrap();
    assert_eq!(again.run, dir.path().join("runs/tiny/2"));
}

#[test]
fn a_checkpoint_reloads_to_identical_outputs() {
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
    assert_eq!(names, ["conv.bias", "conv.weight", "fc.bias", "fc.weight"]);
    let fresh = Tiny::<Flex>::init(&device);
    let loaded = params::replace(fresh, &Checkpoint::load(&path).unwrap().raw, &|_| true).unwrap();
    let x = Tensor::<Flex, 4>::random([2, 3, 8, 8], burn::tensor::Distribution::Default, &device);
    let a: Vec<f32> = model.forward(x.clone()).into_data().to_vec().unwrap();
    let b: Vec<f32> = loaded.forward(x).into_data().to_vec().unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let full = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(20),
            ..options(dir.path(), &runs)
        },
        &Default::default(),
    )
    .unwrap();
    let half = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(10),
            ..options(dir.path(), &runs)
        },
        &Default::default(),
    )
    .unwrap();
    let resumed = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(20),
            resume: Some(half.run.clone()),
            ..options(dir.path(), &runs)
        },
        &Default::default(),
    )
    .unwrap();
    assert_eq!(resumed.run, half.run);
    let a = Checkpoint::load(&full.run.join(train::CHECKPOINT)).unwrap();
    let b = Checkpoint::load(&resumed.run.join(train::CHECKPOINT)).unwrap();
    assert_eq!(a.metadata["step"], "20");
    assert_eq!(b.metadata["step"], "20");
    for (name, t) in &a.raw {
        let u = &b.raw[name];
        let diff = t
            .values
            .iter()
            .zip(&u.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{name} differs by {diff}");
    }
    assert_eq!(losses(&half.run).len(), 20, "the log holds each step once");
}

#[test]
fn a_diverging_run_stops_and_keeps_a_finite_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let runs = dir.path().join("runs");
    let opts = Options {
        steps: Some(30),
        learning_rate: Some(1e30),
        checkpoint_every: Duration::ZERO,
        ..options(dir.path(), &runs)
    };
    let e = train::train::<B, Tiny<B>>(&SPEC, &opts, &Default::default()).unwrap_err();
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
    let first = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(5),
            ..options(dir.path(), &runs)
        },
        &Default::default(),
    )
    .unwrap();
    let weights = first.run.join(train::CHECKPOINT);
    let second = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(0),
            seed: 77,
            init_from: Some(weights.clone()),
            ..options(dir.path(), &runs)
        },
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
    let plan = netc_runtime::bench::Plan {
        batch_size: 8,
        steps: 2,
        latency_runs: 3,
    };
    let b =
        netc_runtime::bench::run::<B, Tiny<B>>("tiny", [8, 8, 3], 10, plan, &Default::default())
            .unwrap();
    assert!(b.train_examples_per_second > 0.0 && b.infer_examples_per_second > 0.0);
    assert!(b.latency_ms_median > 0.0 && b.latency_ms_p95 >= b.latency_ms_median);
    assert!(b.peak_memory_bytes.unwrap_or(1) > 0);
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
    let e = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(1),
            init_from: Some(wrong),
            ..options(dir.path(), &dir.path().join("runs"))
        },
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
    let run = train::train::<B, Tiny<B>>(
        &SPEC,
        &Options {
            steps: Some(2),
            ..options(dir.path(), &runs)
        },
        &Default::default(),
    )
    .unwrap();
    let edited = Spec {
        source: "model tiny { input 8x8x3 }\n# edited\n",
        ..SPEC
    };
    let e = train::train::<B, Tiny<B>>(
        &edited,
        &Options {
            steps: Some(4),
            resume: Some(run.run.clone()),
            ..options(dir.path(), &runs)
        },
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
    let e = train::train::<B, Tiny<B>>(
        &seven,
        &options(dir.path(), &dir.path().join("runs")),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.contains("10 classes") && e.contains("7 scores"), "{e}");
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
    let e = train::train::<B, Tiny<B>>(&gray, &options(dir.path(), &runs), &Default::default())
        .unwrap_err();
    assert!(e.contains("1 channels"), "{e}");
    let big = Spec {
        input: [40, 40, 3],
        ..SPEC
    };
    let e = train::train::<B, Tiny<B>>(&big, &options(dir.path(), &runs), &Default::default())
        .unwrap_err();
    assert!(e.contains("40x40") && e.contains("32x32"), "{e}");
}
