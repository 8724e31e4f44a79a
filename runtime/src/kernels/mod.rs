//! netc's backend extension: the layers for which netc brings its own CPU
//! kernels. Every backend has the version composed of burn's ops; burn's CPU
//! backend (`Flex`) and its autodiff wrapper run `cpu.rs` instead, with
//! hand-written backward passes (`flex.rs`).

pub mod conv;
pub mod cpu;
pub mod dense;
pub mod dropout;
mod flex;
pub mod int8;
#[cfg(target_arch = "x86_64")]
mod lanes;
mod maxpool256;
mod maxpool512;
pub mod panel;
mod transpose;
pub mod wgrad;

use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

pub use cpu::{Lrn, Window};

/// How a convolution slides: stride, padding (top, bottom, left, right),
/// groups; and whether a ReLU follows, fused into the same pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub groups: usize,
    pub relu: bool,
}

/// One convolution of `Kernels::conv_concat`: weights, bias, how it slides.
pub type ConvPart<B> = (FloatTensor<B>, Option<FloatTensor<B>>, ConvSpec);

/// A backend that can run netc's layers. Models are generic over it.
pub trait Kernels: Backend {
    fn lrn(x: FloatTensor<Self>, p: Lrn) -> FloatTensor<Self> {
        primitive(composed::lrn::<Self>(tensor(x), p))
    }

    fn max_pool(x: FloatTensor<Self>, win: Window) -> FloatTensor<Self> {
        primitive(composed::max_pool::<Self>(tensor(x), win))
    }

    /// In training (autodiff), values of `x` set to 0 with probability
    /// `prob` and the rest scaled by 1 / (1 - prob); else `x`. burn's
    /// `Dropout` by default; burn's CPU backend draws its own mask
    /// (`dropout.rs`).
    fn dropout<const D: usize>(x: Tensor<Self, D>, prob: f64) -> Tensor<Self, D> {
        burn::nn::DropoutConfig::new(prob).init().forward(x)
    }

    /// x (rows x k) times weight (k x units), plus bias, then the ReLU if
    /// `relu`: a fully connected layer. burn's `linear` by default; burn's
    /// CPU backend runs a few rows (batch-1 inference) on every thread
    /// (`dense.rs`).
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        relu: bool,
    ) -> FloatTensor<Self> {
        primitive(composed::dense::<Self>(
            tensor(x),
            tensor(weight),
            bias.map(tensor),
            relu,
        ))
    }

    /// Two feature maps joined along channels.
    fn concat(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        primitive(Tensor::cat(vec![tensor::<Self, 4>(a), tensor(b)], 1))
    }

    /// Convolutions of `x` (weights, bias, how each slides), their outputs
    /// joined along channels in order. burn's CPU backend writes each
    /// convolution into its channels of the joined output
    /// (`conv::forward_joined`; in training, two parts as one operation);
    /// the others convolve, then concatenate.
    fn conv_concat(x: FloatTensor<Self>, parts: Vec<ConvPart<Self>>) -> FloatTensor<Self> {
        conv_then_concat::<Self>(x, parts)
    }

    /// `conv_concat`, then `max_pool` of the joined output. burn's CPU
    /// backend pools each tile of images while its joined output is in
    /// cache (`conv::forward_joined_pooled`); the others, and autodiff,
    /// run the two operations.
    fn conv_concat_pool(
        x: FloatTensor<Self>,
        parts: Vec<ConvPart<Self>>,
        win: Window,
    ) -> FloatTensor<Self> {
        Self::max_pool(Self::conv_concat(x, parts), win)
    }

    /// x (N x Cin x H x W) with weight (Cout x Cin/groups x kH x kW), plus bias.
    fn conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let bias = bias.map(tensor);
        primitive(composed::conv::<Self>(
            tensor(x),
            tensor(weight),
            bias,
            spec,
        ))
    }

    /// `conv`, then `max_pool` of its output. Backends that can pool the
    /// convolution's output while it is in cache (burn's CPU backend, and
    /// autodiff over it, which keeps that output for the backward passes)
    /// do both in one pass; the others run the two layers.
    fn conv_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
        win: Window,
    ) -> FloatTensor<Self> {
        Self::max_pool(Self::conv(x, weight, bias, spec), win)
    }
}

/// `Kernels::conv_concat` as two kinds of operations: each convolution,
/// then the concatenations.
fn conv_then_concat<B: Kernels>(x: FloatTensor<B>, parts: Vec<ConvPart<B>>) -> FloatTensor<B> {
    parts
        .into_iter()
        .map(|(weight, bias, spec)| B::conv(x.clone(), weight, bias, spec))
        .reduce(B::concat)
        .expect("a concatenation joins at least one convolution")
}

/// Reproducible values in [-0.5, 0.5) for the kernels' tests.
#[cfg(test)]
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A backend's float primitive as a tensor, and back: kernels take primitives.
pub(crate) fn tensor<B: Backend, const D: usize>(x: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(x))
}

pub(crate) fn primitive<B: Backend, const D: usize>(x: Tensor<B, D>) -> FloatTensor<B> {
    x.into_primitive().tensor()
}

/// The layers in burn's ops: what every backend without kernels runs, and
/// the reference the kernels are tested against.
pub mod composed {
    use super::*;

    pub fn lrn<B: Backend>(x: Tensor<B, 4>, p: Lrn) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let window = 2 * p.radius + 1;
        // Channels become a spatial axis so that a pooling window sums them.
        let squares = x.clone().powi_scalar(2).reshape([n, 1, c, h * w]);
        let mean = avg_pool2d(squares, [window, 1], [1, 1], [p.radius, 0], true, false);
        let sum = mean.mul_scalar(window as f64).reshape([n, c, h, w]);
        x / sum
            .mul_scalar(p.alpha)
            .add_scalar(p.bias)
            .powf_scalar(p.beta)
    }

    pub fn conv<B: Backend>(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        spec: ConvSpec,
    ) -> Tensor<B, 4> {
        let [top, bottom, left, right] = spec.pad;
        let (x, padding) = if top == bottom && left == right {
            (x, [top, left])
        } else {
            (x.pad((left, right, top, bottom), 0.0), [0, 0])
        };
        let options = ConvOptions::new(spec.stride, padding, [1, 1], spec.groups);
        let y = conv2d(x, weight, bias, options);
        if spec.relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }

    pub fn dense<B: Backend>(
        x: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        relu: bool,
    ) -> Tensor<B, 2> {
        let y = burn::tensor::module::linear(x, weight, bias);
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }

    pub fn max_pool<B: Backend>(x: Tensor<B, 4>, win: Window) -> Tensor<B, 4> {
        let [top, bottom, left, right] = win.pad;
        let x = if win.pad == [0; 4] {
            x
        } else {
            x.pad((left, right, top, bottom), f32::NEG_INFINITY)
        };
        max_pool2d(x, win.kernel, win.stride, [0, 0], [1, 1], false)
    }
}

#[cfg(feature = "cuda")]
impl Kernels for burn::backend::Cuda {}

#[cfg(feature = "cuda")]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<burn::backend::Cuda, C>
{
}
