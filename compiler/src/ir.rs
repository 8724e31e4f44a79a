//! The one intermediate representation: a tree of named layers.
//!
//! Lowering produces `Node<()>` (names resolved, blocks expanded, arguments
//! read); shape inference turns it into `Node<Io>`, the typed graph every
//! analysis and back end reads. Branches (`concat`, `add`) and block calls
//! stay nested so that back ends can mirror the source's structure.

use crate::diag::Span;
use serde::Serialize;
use std::fmt;

/// An activation's shape: a feature map (height x width x channels) or a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Shape {
    Map { h: u64, w: u64, c: u64 },
    Vector(u64),
}

impl Shape {
    pub fn elements(&self) -> u64 {
        match *self {
            Shape::Map { h, w, c } => h.saturating_mul(w).saturating_mul(c),
            Shape::Vector(n) => n,
        }
    }

    pub fn channels(&self) -> u64 {
        match *self {
            Shape::Map { c, .. } => c,
            Shape::Vector(n) => n,
        }
    }

    /// Height, width and channels; a vector is a 1x1 map of its length.
    pub fn hwc(&self) -> [u64; 3] {
        match *self {
            Shape::Map { h, w, c } => [h, w, c],
            Shape::Vector(n) => [1, 1, n],
        }
    }

    pub fn dims(&self) -> Vec<u64> {
        match *self {
            Shape::Map { h, w, c } => vec![h, w, c],
            Shape::Vector(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { h, w, c } => write!(f, "{h}x{w}x{c}"),
            Shape::Vector(n) => write!(f, "{n}"),
        }
    }
}

/// The input and output shape of a typed node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Io {
    pub input: Shape,
    pub output: Shape,
}

/// A whole number as written: its value and, inside a block, the block
/// parameter it came from (so generated code can keep the parameter's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Int {
    pub value: u64,
    pub param: Option<String>,
}

impl Int {
    pub fn lit(value: u64) -> Self {
        Int { value, param: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// TensorFlow's SAME: out = ceil(in / stride), odd padding at the bottom and right.
    Same,
    /// No padding: out = floor((in - k) / stride) + 1.
    Valid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub kernel: [u64; 2],
    pub stride: [u64; 2],
    pub padding: Padding,
    /// The block parameters a square kernel or a stride came from, if any.
    pub kernel_param: Option<String>,
    pub stride_param: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Channels {
    /// `conv 3x3 64`
    Filters(Int),
    /// `dwconv 3x3 mult=2`: one group per input channel, `mult` filters each.
    Depthwise { multiplier: Int },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conv {
    pub window: Window,
    pub channels: Channels,
    /// Ignored for depthwise convolutions, whose groups are their input channels.
    pub groups: Int,
    pub bias: bool,
    pub relu: bool,
    pub decay: bool,
}

impl Conv {
    pub fn filters(&self, in_channels: u64) -> u64 {
        match &self.channels {
            Channels::Filters(f) => f.value,
            Channels::Depthwise { multiplier } => in_channels.saturating_mul(multiplier.value),
        }
    }

    pub fn group_count(&self, in_channels: u64) -> u64 {
        match self.channels {
            Channels::Filters(_) => self.groups.value,
            Channels::Depthwise { .. } => in_channels,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    pub kind: PoolKind,
    pub window: Window,
}

/// Local response normalization, TensorFlow's definition:
/// out = x / (bias + alpha * sum over 2r+1 channels of x^2) ^ beta.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lrn {
    pub radius: u64,
    pub bias: f64,
    pub alpha: f64,
    pub beta: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fc {
    pub units: Int,
    pub bias: bool,
    pub relu: bool,
    pub decay: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchNorm {
    pub epsilon: f64,
    pub momentum: f64,
    pub relu: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockCall<T> {
    pub block: String,
    pub args: Vec<Int>,
    /// The block's parameter names, in order.
    pub params: Vec<String>,
    pub body: Vec<Node<T>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op<T> {
    Conv(Conv),
    Pool(Pool),
    GlobalAvgPool,
    Lrn(Lrn),
    Fc(Fc),
    Dropout {
        rate: f64,
    },
    BatchNorm(BatchNorm),
    Relu,
    Identity,
    /// Every branch sees the same input; outputs are joined along channels.
    Concat(Vec<Vec<Node<T>>>),
    /// Every branch sees the same input; outputs are summed.
    Add(Vec<Vec<Node<T>>>),
    Block(BlockCall<T>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node<T> {
    /// Unique within its block or model (`e3x3`); paths join them (`fire2.e3x3`).
    pub name: String,
    pub span: Span,
    /// The block calls this node was expanded through, innermost last.
    pub trace: Vec<Span>,
    pub op: Op<T>,
    pub ty: T,
}

/// Per-model training settings (`train decay=500 dropout=0.5 ...`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Multiplies each decayed layer's L2 penalty; 0 turns weight decay off.
    pub decay: f64,
    /// The rate of `dropout` layers written without one.
    pub dropout: f64,
    /// Random crop, flip, brightness and contrast while training.
    pub augment: bool,
    pub learning_rate: f64,
    pub batch_size: u64,
    pub steps: u64,
    pub classes: u64,
    /// Exponential moving average of the weights, evaluated instead of the raw ones.
    pub average: bool,
    pub optimizer: Optimizer,
    /// Of `momentum` and `nesterov`.
    pub momentum: f64,
    /// Of `adam` and `adamw`.
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub schedule: Schedule,
    /// Steps between the `step` schedule's decays (0: not given).
    pub lr_every: u64,
    /// What the `step` schedule multiplies the rate by.
    pub lr_factor: f64,
    /// Where the `cosine` schedule ends.
    pub lr_min: f64,
    /// Steps of linear warm-up.
    pub warmup: u64,
    /// Label smoothing.
    pub smoothing: f64,
    /// How weights start.
    pub init: Init,
}

/// How a convolution's or a dense layer's weights are drawn at the start
/// (biases start at zero either way). Xavier-normal is the seed's: it keeps
/// a linear layer's variance, and a ReLU halves it, so deep ReLU stacks
/// without normalization start with a faded signal. He-normal (std
/// sqrt(2 / fan-in), He et al. 2015) keeps it through ReLUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Xavier,
    He,
}

impl Init {
    pub const ALL: [Init; 2] = [Init::Xavier, Init::He];
    /// The name in `train init=...`.
    pub fn name(self) -> &'static str {
        match self {
            Init::Xavier => "xavier",
            Init::He => "he",
        }
    }
}

/// How the weights move; the runtime's `optim::Optimizer`, by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
}

/// The learning-rate schedule; the runtime's `optim::Schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Step,
    Cosine,
}

impl Optimizer {
    pub const ALL: [Optimizer; 5] = [
        Optimizer::Sgd,
        Optimizer::Momentum,
        Optimizer::Nesterov,
        Optimizer::Adam,
        Optimizer::Adamw,
    ];
    /// The name in `train optimizer=...`, `--optimizer` and `settings.json`.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum => "momentum",
            Optimizer::Nesterov => "nesterov",
            Optimizer::Adam => "adam",
            Optimizer::Adamw => "adamw",
        }
    }
}

impl Schedule {
    pub const ALL: [Schedule; 3] = [Schedule::Constant, Schedule::Step, Schedule::Cosine];
    /// The name in `train schedule=...`, `--schedule` and `settings.json`.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step => "step",
            Schedule::Cosine => "cosine",
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            decay: 0.0,
            dropout: 0.5,
            augment: true,
            learning_rate: 0.1,
            batch_size: 128,
            steps: 10_000,
            classes: 10,
            average: true,
            // The seed's recipe: plain SGD at a constant rate.
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
            init: Init::Xavier,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model<T> {
    pub name: String,
    pub span: Span,
    pub input: Shape,
    pub settings: Settings,
    pub body: Vec<Node<T>>,
}

pub type Untyped = Model<()>;
pub type Typed = Model<Io>;

impl Typed {
    pub fn output(&self) -> Shape {
        self.body.last().map_or(self.input, |n| n.ty.output)
    }
}

impl<T> Node<T> {
    /// The node's dotted path under `prefix` (the path of its block call, or "").
    pub fn path(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            self.name.clone()
        } else {
            format!("{prefix}.{}", self.name)
        }
    }
}

/// Every leaf layer under `nodes`, with its dotted path, in execution order.
pub fn leaves<'a, T>(nodes: &'a [Node<T>], prefix: &str, out: &mut Vec<(String, &'a Node<T>)>) {
    for node in nodes {
        let path = node.path(prefix);
        match &node.op {
            Op::Concat(branches) | Op::Add(branches) => {
                for branch in branches {
                    leaves(branch, prefix, out);
                }
            }
            Op::Block(call) => leaves(&call.body, &path, out),
            _ => out.push((path, node)),
        }
    }
}
