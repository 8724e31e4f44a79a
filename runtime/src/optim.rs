//! How the weights move at each step beyond the seed's plain SGD: momentum
//! (and Nesterov's), Adam and AdamW, a learning-rate schedule with an
//! optional linear warm-up, and label smoothing. The torch engine
//! (`compiler/templates/pytorch/train.py`) uses the same formulas in the same
//! order; docs/training.md writes them out.
//!
//! The optimizer's state (momentum buffers, Adam's moments) is kept by the
//! `.net` name of each tensor, so that a checkpoint stores it under names
//! (`optim/m/conv1.weight`) and a resumed run continues bit for bit.

use crate::params::{self, Named, Tensors};
use crate::Result;
use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// w -= lr * g (the seed's)
    Sgd,
    /// b = momentum * b + g; w -= lr * b
    Momentum,
    /// b = momentum * b + g; w -= lr * (g + momentum * b)
    Nesterov,
    /// Adam with bias correction; weight decay stays in the loss
    Adam,
    /// Adam with decoupled weight decay of the layers marked `decay`
    Adamw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// lr at every step (the seed's)
    Constant,
    /// lr * lr_factor ^ floor(step / lr_every), TensorFlow's staircase decay
    Step,
    /// From lr at step 0 to lr_min at the run's last step, along a half cosine
    Cosine,
}

/// The names of the command line and the `train` line: `adamw`, `cosine`.
macro_rules! display_as_flag {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                use clap::ValueEnum;
                let v = self.to_possible_value().expect("every value has a name");
                f.write_str(v.get_name())
            }
        }
    )*};
}
display_as_flag!(Optimizer, Schedule);

fn seed_optimizer() -> Optimizer {
    Optimizer::Sgd
}
fn seed_schedule() -> Schedule {
    Schedule::Constant
}
fn momentum() -> f64 {
    Recipe::SEED.momentum
}
fn beta1() -> f64 {
    Recipe::SEED.beta1
}
fn beta2() -> f64 {
    Recipe::SEED.beta2
}
fn epsilon() -> f64 {
    Recipe::SEED.epsilon
}
fn lr_factor() -> f64 {
    Recipe::SEED.lr_factor
}

/// The optimizer, schedule and smoothing of a run. A `settings.json` written
/// before these existed lacks them: each missing field is the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    #[serde(default = "seed_optimizer")]
    pub optimizer: Optimizer,
    /// Of `momentum` and `nesterov`.
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// Of `adam` and `adamw`: the moments' decay rates and the denominator's epsilon.
    #[serde(default = "beta1")]
    pub beta1: f64,
    #[serde(default = "beta2")]
    pub beta2: f64,
    #[serde(default = "epsilon")]
    pub epsilon: f64,
    #[serde(default = "seed_schedule")]
    pub schedule: Schedule,
    /// Steps between the `step` schedule's decays (0: not given).
    #[serde(default)]
    pub lr_every: u64,
    /// What the `step` schedule multiplies the rate by.
    #[serde(default = "lr_factor")]
    pub lr_factor: f64,
    /// Where the `cosine` schedule ends.
    #[serde(default)]
    pub lr_min: f64,
    /// Steps of linear warm-up: step t < warmup uses (t + 1) / warmup of the rate.
    #[serde(default)]
    pub warmup: u64,
    /// Label smoothing: the loss is (1 - s) * cross-entropy + s * mean over classes of -log p.
    #[serde(default)]
    pub smoothing: f64,
}

impl Recipe {
    /// The seed's: plain SGD at a constant rate, no smoothing.
    pub const SEED: Recipe = Recipe {
        optimizer: Optimizer::Sgd,
        momentum: 0.9,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        schedule: Schedule::Constant,
        lr_every: 0,
        lr_factor: 0.1,
        lr_min: 0.0,
        warmup: 0,
        smoothing: 0.0,
    };

    /// Refuses values no run can use, naming the flag (the `.net` file's
    /// were checked by `netc check` under their key names).
    pub fn check(&self, lr: f64) -> Result<()> {
        let mut bad = Vec::new();
        let mut unit = |flag: &str, v: f64| {
            if !(0.0..1.0).contains(&v) {
                bad.push(format!("{flag} {v} is not in [0, 1)"));
            }
        };
        unit("--momentum", self.momentum);
        unit("--beta1", self.beta1);
        unit("--beta2", self.beta2);
        unit("--smoothing", self.smoothing);
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            bad.push(format!(
                "--epsilon {} is not a positive number",
                self.epsilon
            ));
        }
        if !(self.lr_factor.is_finite() && self.lr_factor > 0.0) {
            bad.push(format!(
                "--lr-factor {} is not a positive number",
                self.lr_factor
            ));
        }
        if !(self.lr_min.is_finite() && self.lr_min >= 0.0 && self.lr_min <= lr) {
            bad.push(format!(
                "--lr-min {} is not between 0 and the learning rate {lr}",
                self.lr_min
            ));
        }
        if self.schedule == Schedule::Step && self.lr_every == 0 {
            bad.push(
                "the step schedule needs the steps between decays: give --lr-every N \
                 (or lr_every=N on the model's train line)"
                    .to_string(),
            );
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("bad training settings: {}", bad.join("; ")))
        }
    }

    /// The learning rate of the update made at step `t` (updates done
    /// before it) of a run of `steps` steps with base rate `lr`.
    pub fn lr_at(&self, lr: f64, t: u64, steps: u64) -> f64 {
        let base = match self.schedule {
            Schedule::Constant => lr,
            Schedule::Step => lr * self.lr_factor.powi((t / self.lr_every.max(1)) as i32),
            Schedule::Cosine => {
                let done = t.min(steps) as f64 / steps.max(1) as f64;
                self.lr_min + (lr - self.lr_min) * (1.0 + (std::f64::consts::PI * done).cos()) / 2.0
            }
        };
        if t < self.warmup {
            base * (t + 1) as f64 / self.warmup as f64
        } else {
            base
        }
    }

    /// Whether the layers marked `decay` are decayed by the update (AdamW)
    /// rather than through the loss.
    pub fn decoupled_decay(&self) -> bool {
        self.optimizer == Optimizer::Adamw
    }

    /// The state tensors of each weight: checkpoint names `optim/<slot>/<name>`.
    pub fn slots(&self) -> &'static [&'static str] {
        match self.optimizer {
            Optimizer::Sgd => &[],
            Optimizer::Momentum | Optimizer::Nesterov => &["momentum"],
            Optimizer::Adam | Optimizer::Adamw => &["m", "v"],
        }
    }
}

/// Softmax cross-entropy, with label smoothing `s`: (1 - s) * -log p(label)
/// + s * mean over classes of -log p (PyTorch's `label_smoothing`).
pub fn cross_entropy<B: Backend>(smoothing: f64, device: &B::Device) -> CrossEntropyLoss<B> {
    CrossEntropyLossConfig::new()
        .with_smoothing((smoothing > 0.0).then_some(smoothing as f32))
        .init(device)
}

/// The optimizer of a run: the recipe, and the state of every trained tensor.
pub struct Optim<B: Backend> {
    recipe: Recipe,
    /// AdamW's decoupled decay per tensor: the factor of `train decay=`
    /// divided by the tensor's size, the gradient the L2 term would give.
    decay: HashMap<String, f64>,
    /// By slot, then tensor name; flattened.
    state: HashMap<&'static str, HashMap<String, Tensor<B, 1>>>,
}

impl<B: Backend> Optim<B> {
    /// A fresh optimizer. `decayed` names the weights of layers marked
    /// `decay` (their size is looked up when first updated) and `factor` is
    /// the decay factor (0: off).
    pub fn new(recipe: Recipe, decayed: &[&str], factor: f64) -> Self {
        let decay = if recipe.decoupled_decay() && factor > 0.0 {
            decayed.iter().map(|n| (n.to_string(), factor)).collect()
        } else {
            HashMap::new()
        };
        Optim {
            recipe,
            decay,
            state: HashMap::new(),
        }
    }

    /// Takes a checkpoint's state (names `<slot>/<tensor>`). A checkpoint
    /// without it (written by plain SGD, or before netc saved it) is refused
    /// once steps were made with state, since resuming would not continue.
    pub fn load(
        &mut self,
        saved: &Tensors,
        model: &Tensors,
        step: u64,
        device: &B::Device,
        from: &std::path::Path,
    ) -> Result<()> {
        let slots = self.recipe.slots();
        if slots.is_empty() {
            return Ok(());
        }
        // Every trained tensor has its state in every slot, in its size, or
        // none has (a checkpoint of step 0).
        if !saved.is_empty() {
            let mut bad: Vec<String> = Vec::new();
            for slot in slots {
                for (name, t) in model.iter().filter(|(n, _)| !params::is_statistic(n)) {
                    let key = format!("{slot}/{name}");
                    if saved
                        .get(&key)
                        .is_none_or(|s| s.values.len() != t.values.len())
                    {
                        bad.push(format!("`optim/{key}`"));
                    }
                }
            }
            if !bad.is_empty() {
                bad.sort();
                return Err(format!(
                    "{}: damaged: the optimizer state lacks or misshapes {}; restore it from a \
                     backup or start a new run",
                    from.display(),
                    bad.join(", ")
                ));
            }
        }
        for (key, t) in saved {
            let Some((slot, name)) = key.split_once('/') else {
                continue;
            };
            if let Some(slot) = slots.iter().find(|s| **s == slot) {
                let n = t.values.len();
                let tensor = Tensor::from_data(TensorData::new(t.values.clone(), [n]), device);
                self.state
                    .entry(slot)
                    .or_default()
                    .insert(name.to_string(), tensor);
            }
        }
        if step > 0 && saved.is_empty() {
            return Err(format!(
                "{}: holds no {:?} optimizer state (tensors `optim/{}/...`) although the run is at \
                 step {step}; it was not written by this run's optimizer. Start a new run",
                from.display(),
                self.recipe.optimizer,
                slots[0]
            ));
        }
        Ok(())
    }

    /// The state as checkpoint tensors `<slot>/<name>`, in the weights' shapes.
    pub fn save(&self, shapes: &Tensors) -> Tensors {
        let mut out = Tensors::new();
        for (slot, tensors) in &self.state {
            for (name, t) in tensors {
                let shape = shapes
                    .get(name)
                    .map_or_else(|| vec![t.dims()[0]], |s| s.shape.clone());
                let values = t
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap_or_default();
                out.insert(format!("{slot}/{name}"), Named { shape, values });
            }
        }
        out
    }
}

impl<B: Backend> Optim<B> {
    /// One update of every tensor that has a gradient, at learning rate
    /// `lr`, as the `step`-th update (0 for the first).
    pub fn step<A, M>(&mut self, lr: f64, step: u64, model: M, grads: GradientsParams) -> M
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<A>,
    {
        let mut mapper = Mapper::<A> {
            optim: self,
            grads,
            lr,
            t: step + 1,
            path: Vec::new(),
        };
        model.map(&mut mapper)
    }

    /// The new value of one weight `w` (flattened) with gradient `g`.
    fn update(
        &mut self,
        name: &str,
        w: Tensor<B, 1>,
        g: Tensor<B, 1>,
        lr: f64,
        t: u64,
    ) -> Tensor<B, 1> {
        let r = self.recipe;
        let n = w.dims()[0];
        let device = w.device();
        let mut slot = |s: &'static str| {
            self.state
                .entry(s)
                .or_default()
                .remove(name)
                .unwrap_or_else(|| Tensor::zeros([n], &device))
        };
        match r.optimizer {
            Optimizer::Sgd => w - g.mul_scalar(lr),
            Optimizer::Momentum | Optimizer::Nesterov => {
                let b = slot("momentum").mul_scalar(r.momentum) + g.clone();
                let step = if r.optimizer == Optimizer::Nesterov {
                    g + b.clone().mul_scalar(r.momentum)
                } else {
                    b.clone()
                };
                self.keep("momentum", name, b);
                w - step.mul_scalar(lr)
            }
            Optimizer::Adam | Optimizer::Adamw => {
                let (m, v) = (slot("m"), slot("v"));
                let m = m.mul_scalar(r.beta1) + g.clone().mul_scalar(1.0 - r.beta1);
                let v = v.mul_scalar(r.beta2) + (g.clone() * g).mul_scalar(1.0 - r.beta2);
                let correction1 = 1.0 - r.beta1.powi(t as i32);
                let correction2 = 1.0 - r.beta2.powi(t as i32);
                // AdamW decays first, from the weight before the update, as PyTorch does.
                let w = match self.decay.get(name) {
                    Some(f) => w.clone().sub(w.mul_scalar(lr * f / n as f64)),
                    None => w,
                };
                let denom = v
                    .clone()
                    .sqrt()
                    .div_scalar(correction2.sqrt())
                    .add_scalar(r.epsilon);
                let step = m.clone().div(denom).mul_scalar(lr / correction1);
                self.keep("m", name, m);
                self.keep("v", name, v);
                w - step
            }
        }
    }

    fn keep(&mut self, slot: &'static str, name: &str, t: Tensor<B, 1>) {
        self.state
            .entry(slot)
            .or_default()
            .insert(name.to_string(), t);
    }
}

struct Mapper<'a, B: AutodiffBackend> {
    optim: &'a mut Optim<B::InnerBackend>,
    grads: GradientsParams,
    lr: f64,
    t: u64,
    path: Vec<String>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Mapper<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(params::label(name).to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let dims = tensor.dims();
        let n = dims.iter().product::<usize>();
        let name = self.path.join(".");
        let w = tensor.inner().reshape([n]);
        let new = self
            .optim
            .update(&name, w, grad.reshape([n]), self.lr, self.t)
            .reshape(dims);
        let mut new = Tensor::from_inner(new);
        if require_grad {
            new = new.require_grad();
        }
        Param::from_mapped_value(id, new, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type A = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct One<B: Backend> {
        w: Param<Tensor<B, 1>>,
    }

    /// The weight after steps of `recipe` from w = 1 with gradient 0.5 at lr
    /// 0.1; `w` decayed by AdamW with factor 0.5.
    fn run(recipe: Recipe, steps: u64) -> f32 {
        let device = Default::default();
        let mut model = One::<A> {
            w: Param::from_tensor(Tensor::from_floats([1.0], &device)),
        };
        let mut optim = Optim::<Flex>::new(recipe, &["w"], 0.5);
        for t in 0..steps {
            // d/dw of 0.5 * w is 0.5.
            let loss = model.w.val().mul_scalar(0.5).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1, t, model, grads);
        }
        model.w.val().into_data().to_vec::<f32>().unwrap()[0]
    }

    fn with(optimizer: Optimizer) -> Recipe {
        Recipe {
            optimizer,
            ..Recipe::SEED
        }
    }

    fn close(got: f32, want: f64) {
        assert!((got as f64 - want).abs() < 1e-6, "{got} != {want}");
    }

    /// The hand-computed updates that tests/torch_engine.rs checks the torch
    /// engine against too.
    #[test]
    fn one_step_of_each_optimizer_is_the_hand_computed_one() {
        // w - lr * g
        close(run(with(Optimizer::Sgd), 1), 0.95);
        // b = g = 0.5; then b = 0.9 * 0.5 + 0.5 = 0.95: 1 - 0.05 - 0.095
        close(run(with(Optimizer::Momentum), 1), 0.95);
        close(run(with(Optimizer::Momentum), 2), 0.855);
        // b = 0.5; w -= 0.1 * (0.5 + 0.9 * 0.5)
        close(run(with(Optimizer::Nesterov), 1), 0.905);
        // m^ = 0.5, v^ = 0.25: w -= 0.1 * 0.5 / (0.5 + 1e-8)
        close(
            run(with(Optimizer::Adam), 1),
            1.0 - 0.1 * 0.5 / (0.5 + 1e-8),
        );
        // Second step: m = 0.095, v = 0.0004975; m^ = 0.5, v^ = 0.25 again.
        close(
            run(with(Optimizer::Adam), 2),
            1.0 - 0.2 * 0.5 / (0.5 + 1e-8),
        );
        // AdamW decays first: 1 * (1 - 0.1 * 0.5 / 1), then Adam's step.
        close(
            run(with(Optimizer::Adamw), 1),
            0.95 - 0.1 * 0.5 / (0.5 + 1e-8),
        );
    }

    #[test]
    fn schedules_give_the_hand_computed_rates() {
        let at = |r: Recipe, t: u64| r.lr_at(0.1, t, 100);
        let step = Recipe {
            schedule: Schedule::Step,
            lr_every: 30,
            ..Recipe::SEED
        };
        for (t, want) in [(0, 0.1), (29, 0.1), (30, 0.01), (60, 0.001), (99, 0.0001)] {
            assert!((at(step, t) - want).abs() < 1e-12, "step at {t}");
        }
        let cosine = Recipe {
            schedule: Schedule::Cosine,
            lr_min: 0.01,
            ..Recipe::SEED
        };
        for (t, want) in [(0, 0.1), (50, 0.055), (100, 0.01), (150, 0.01)] {
            assert!((at(cosine, t) - want).abs() < 1e-12, "cosine at {t}");
        }
        let warm = Recipe {
            warmup: 10,
            ..cosine
        };
        // (t + 1) / 10 of the schedule's rate, then the schedule alone.
        for (t, want) in [(0, 0.01), (4, 0.5 * at(cosine, 4)), (10, at(cosine, 10))] {
            assert!(
                (at(warm, t) - want).abs() < 1e-12,
                "warm-up at {t}: {}",
                at(warm, t)
            );
        }
        assert_eq!(at(Recipe::SEED, 77), 0.1);
    }

    #[test]
    fn smoothing_gives_the_hand_computed_loss() {
        let device = Default::default();
        // p = 0.25, 0.5, 0.25; label 0: -log p = ln 4, the mean of -log p is 5/3 ln 2.
        let logits = Tensor::<Flex, 2>::from_floats([[0.0, 2f32.ln(), 0.0]], &device);
        let y = Tensor::<Flex, 1, Int>::from_ints([0], &device);
        let loss = |s: f64| -> f64 {
            let l: f32 = cross_entropy(s, &device)
                .forward(logits.clone(), y.clone())
                .into_scalar();
            l as f64
        };
        let ln2 = 2f64.ln();
        assert!((loss(0.0) - 2.0 * ln2).abs() < 1e-6);
        assert!(
            (loss(0.1) - (0.9 * 2.0 * ln2 + 0.1 * 5.0 / 3.0 * ln2)).abs() < 1e-6,
            "{}",
            loss(0.1)
        );
    }

    #[test]
    fn bad_values_name_their_flags() {
        let bad = Recipe {
            momentum: 1.5,
            schedule: Schedule::Step,
            ..Recipe::SEED
        };
        let e = bad.check(0.1).unwrap_err();
        assert!(e.contains("--momentum 1.5 is not in [0, 1)"), "{e}");
        assert!(e.contains("give --lr-every N"), "{e}");
        assert!(Recipe::SEED.check(0.1).is_ok());
    }

    #[test]
    fn settings_without_the_recipe_mean_the_seeds() {
        let old: Recipe = serde_json::from_str("{}").unwrap();
        assert_eq!(old, Recipe::SEED);
        let adam: Recipe = serde_json::from_str(r#"{"optimizer": "adamw", "warmup": 5}"#).unwrap();
        assert_eq!((adam.optimizer, adam.warmup), (Optimizer::Adamw, 5));
    }
}
