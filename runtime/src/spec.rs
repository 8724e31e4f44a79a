//! What a generated model tells the runtime about itself.

use crate::optim::Recipe;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Training settings, from the model's `train` line, overridable by flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Weight-decay factor (0 turns decay off).
    pub decay: f64,
    pub augment: bool,
    /// Evaluate the exponential moving average of the weights.
    pub average: bool,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub steps: u64,
    pub classes: usize,
    /// Optimizer, learning-rate schedule and label smoothing; flattened in
    /// `settings.json`, where a run made before they existed lacks them.
    #[serde(flatten)]
    pub recipe: Recipe,
}

/// A model as netc compiled it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    /// The `.net` file it came from, and its exact text.
    pub file: &'static str,
    pub source: &'static str,
    /// Input height, width, channels.
    pub input: [usize; 3],
    pub settings: Settings,
    /// The `.net` names of the weights of layers marked `decay` (AdamW
    /// decays them in its update rather than through the loss).
    pub decayed: &'static [&'static str],
    /// The concrete graph as JSON (`quant::graph::Graph`): what the int8
    /// interpreter runs, and where training finds the batch norms whose
    /// statistics it measures for the averaged weights.
    pub graph: &'static str,
}

/// A generated network.
pub trait Net<B: Backend>: Module<B> {
    /// Xavier-normal weights, zero biases, as in the seed.
    fn init(device: &B::Device) -> Self;
    /// Images N x C x H x W to class scores N x classes.
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;
    /// For every layer marked `decay`: sum(w^2) / 2 / (number of its weights),
    /// summed; `None` when no layer is marked.
    fn decay_loss(&self) -> Option<Tensor<B, 1>>;
}
