//! What the training tests share: a small hand-written network, its spec,
//! synthetic data it learns quickly, and the options of a short run.

#![allow(dead_code)] // each test file uses its own part

use burn::backend::{Autodiff, Flex};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use netc_runtime::nn::{decay_term, ZeroBias, XAVIER};
use netc_runtime::run::Asked;
use netc_runtime::train::{self, Options};
use netc_runtime::{burn, Net, Recipe, Settings, Spec};
use std::path::Path;
use std::time::Duration;

mod synthetic;
#[allow(unused_imports)] // readers.rs makes no data set
pub use synthetic::synthetic_cifar as synthetic;

pub type B = Autodiff<Flex>;

#[derive(Module, Debug)]
pub struct Tiny<B: Backend> {
    pub conv: Conv2d<B>,
    /// Its running statistics: kept exactly over a resume, measured for the
    /// averaged weights.
    pub bn: BatchNorm<B>,
    pub fc: Linear<B>,
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
            bn: BatchNormConfig::new(4)
                .with_epsilon(0.001)
                .with_momentum(0.01)
                .init(device),
            fc: LinearConfig::new(4 * 4 * 4, 10)
                .with_initializer(XAVIER)
                .init(device)
                .zero_bias(),
        }
    }
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = relu(self.bn.forward(self.conv.forward(x)));
        self.fc.forward(x.flatten(1, 3))
    }
    fn decay_loss(&self) -> Option<Tensor<B, 1>> {
        Some(decay_term(&self.fc.weight))
    }
}

pub const SPEC: Spec = Spec {
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
        recipe: Recipe::SEED,
    },
    decayed: &["fc.weight"],
    graph: GRAPH,
};

/// `Tiny` as the compiler would describe it (`quant::graph::Graph`).
const GRAPH: &str = r#"{"input": [3, 8, 8], "ops": [
    {"op": "conv", "path": "conv", "cin": 3, "h": 8, "w": 8, "cout": 4, "kernel": [3, 3],
     "stride": [2, 2], "pad": [0, 1, 0, 1], "groups": 1, "bias": true, "relu": false},
    {"op": "batch_norm", "path": "bn", "c": 4, "h": 4, "w": 4, "epsilon": 0.001, "momentum": 0.99},
    {"op": "relu"},
    {"op": "flatten"},
    {"op": "dense", "path": "fc", "inputs": 64, "units": 10, "bias": true, "relu": false}]}"#;

pub fn asked(data: &Path) -> Asked {
    Asked {
        data: Some(data.to_path_buf()),
        seed: Some(5),
        augment: Some(false),
        eval_every: Some(0),
        log_every: Some(1),
        ..Asked::default()
    }
}

pub fn options(data: &Path, runs: &Path) -> Options {
    Options {
        runs: runs.to_path_buf(),
        resume: None,
        asked: asked(data),
        checkpoint_every: Duration::from_secs(3600),
        progress: false,
    }
}

/// `options` with the flags `f` sets.
pub fn with(data: &Path, runs: &Path, f: impl FnOnce(&mut Options)) -> Options {
    let mut o = options(data, runs);
    f(&mut o);
    o
}

pub fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join(train::LOG))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect()
}

/// burn's backends draw random numbers (initialization, dropout) from one
/// generator per process, which `train` seeds. The tests of one binary run
/// on parallel threads, so two trainings at once would draw from each
/// other's stream, and comparisons of bit-exact runs failed now and then on
/// a loaded machine (one process trains one run in real use). Every
/// training in the tests goes through here, one at a time.
pub fn train_tiny(
    spec: &Spec,
    o: &Options,
    device: &burn::tensor::Device<B>,
) -> netc_runtime::Result<train::Outcome> {
    let _turn = one_at_a_time();
    train::train::<B, Tiny<B>>(spec, o, device)
}

/// The turn of a test that draws from burn's generator (a training, a
/// model's initialization, random inputs): held until dropped.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding the lock leaves it poisoned; the
    // others can still go on.
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
