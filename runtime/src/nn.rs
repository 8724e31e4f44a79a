//! Layers burn lacks or computes differently from TensorFlow, and the seed's
//! initialization.

use crate::kernels::{self, primitive, tensor, Kernels, Window};
use burn::module::{Initializer, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;

/// Xavier (Glorot) normal initialization, as the seed used for every weight.
pub const XAVIER: Initializer = Initializer::XavierNormal { gain: 1.0 };

/// He (Kaiming) normal initialization, std sqrt(2 / fan-in), for `train
/// init=he`: keeps the signal's variance through ReLU layers.
pub const HE: Initializer = Initializer::KaimingNormal {
    gain: std::f64::consts::SQRT_2,
    fan_out_only: false,
};

/// The seed starts biases at zero; burn's layers draw them like the weights.
pub trait ZeroBias {
    fn zero_bias(self) -> Self;
}

fn zeros_like<B: Backend>(bias: Param<Tensor<B, 1>>) -> Param<Tensor<B, 1>> {
    let t = bias.val();
    Param::from_tensor(Tensor::zeros(t.shape(), &t.device()))
}

impl<B: Backend> ZeroBias for Conv2d<B> {
    fn zero_bias(mut self) -> Self {
        self.bias = self.bias.map(zeros_like);
        self
    }
}

impl<B: Backend> ZeroBias for Linear<B> {
    fn zero_bias(mut self) -> Self {
        self.bias = self.bias.map(zeros_like);
        self
    }
}

/// Local response normalization across channels, TensorFlow's definition:
/// x / (bias + alpha * sum of x^2 over the 2r+1 nearest channels) ^ beta.
#[derive(Debug, Clone, Copy)]
pub struct Lrn {
    pub radius: usize,
    pub bias: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Lrn {
    pub fn forward<B: Kernels>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let p = kernels::Lrn {
            radius: self.radius,
            bias: self.bias as f32,
            alpha: self.alpha as f32,
            beta: self.beta as f32,
        };
        tensor(B::lrn(primitive(x), p))
    }
}

/// A convolution layer's forward pass through netc's kernels. `same` is
/// TensorFlow's padding, computed from the input's size (the odd extra row
/// and column go after).
pub fn conv<B: Kernels>(layer: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv_with(layer, false, None, x)
}

/// `conv` followed by ReLU, in one pass.
pub fn conv_relu<B: Kernels>(layer: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv_with(layer, true, None, x)
}

/// `conv`, then `pool` of its output, in one pass where the backend can
/// (`Kernels::conv_pool`): the convolution's output is pooled while it is
/// in cache.
pub fn conv_pool<B: Kernels>(layer: &Conv2d<B>, pool: &MaxPool, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv_with(layer, false, Some(pool), x)
}

/// `conv_relu`, then `pool` of its output, in one pass where the backend can.
pub fn conv_relu_pool<B: Kernels>(
    layer: &Conv2d<B>,
    pool: &MaxPool,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv_with(layer, true, Some(pool), x)
}

fn conv_with<B: Kernels>(
    layer: &Conv2d<B>,
    relu: bool,
    pool: Option<&MaxPool>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let spec = conv_spec(layer, [h, w], relu);
    let (x, weight) = (primitive(x), primitive(layer.weight.val()));
    let bias = layer.bias.as_ref().map(|b| primitive(b.val()));
    let Some(pool) = pool else {
        return tensor(B::conv(x, weight, bias, spec));
    };
    let (h, w) = conv_out(layer, &spec, [h, w]);
    tensor(B::conv_pool(x, weight, bias, spec, pool.window(h, w)))
}

/// Convolutions of `x` (each with a fused ReLU when its flag says so),
/// their outputs joined along channels in order: `concat` of each `conv`,
/// with each convolution written into its channels of the joined output
/// where the backend can (`Kernels::conv_concat`).
pub fn conv_concat<B: Kernels>(parts: &[(&Conv2d<B>, bool)], x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    tensor(B::conv_concat(primitive(x), conv_parts(parts, [h, w])))
}

/// `conv_concat`, then `pool` of the joined output, in one pass where the
/// backend can (`Kernels::conv_concat_pool`).
pub fn conv_concat_pool<B: Kernels>(
    parts: &[(&Conv2d<B>, bool)],
    pool: &MaxPool,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    // The joined maps' size: the first convolution's output (the kernel
    // runs parts whose sizes differ apart, and the concatenation refuses them).
    let ((first, _), joined) = (&parts[0], conv_parts(parts, [h, w]));
    let (oh, ow) = conv_out(first, &joined[0].2, [h, w]);
    tensor(B::conv_concat_pool(
        primitive(x),
        joined,
        pool.window(oh, ow),
    ))
}

/// The size of `layer`'s output maps, sliding as `spec` says over `h` x `w`.
fn conv_out<B: Backend>(
    layer: &Conv2d<B>,
    spec: &kernels::ConvSpec,
    [h, w]: [usize; 2],
) -> (usize, usize) {
    let conv = Window {
        kernel: layer.kernel_size,
        stride: spec.stride,
        pad: spec.pad,
    };
    conv.out(h, w)
}

/// Each layer's weight, bias and how it slides over an input of `dims`,
/// with a fused ReLU when its flag says so.
fn conv_parts<B: Kernels>(
    parts: &[(&Conv2d<B>, bool)],
    [h, w]: [usize; 2],
) -> Vec<kernels::ConvPart<B>> {
    parts
        .iter()
        .map(|(layer, relu)| {
            let bias = layer.bias.as_ref().map(|b| primitive(b.val()));
            let spec = conv_spec(layer, [h, w], *relu);
            (primitive(layer.weight.val()), bias, spec)
        })
        .collect()
}

/// How `layer` slides over an input of `dims`.
fn conv_spec<B: Backend>(layer: &Conv2d<B>, [h, w]: [usize; 2], relu: bool) -> kernels::ConvSpec {
    let pad = match layer.padding {
        PaddingConfig2d::Same => same_pads([h, w], layer.kernel_size, layer.stride),
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, bottom, left, right],
        PaddingConfig2d::Valid => [0; 4],
    };
    kernels::ConvSpec {
        stride: layer.stride,
        pad,
        groups: layer.groups,
        relu,
    }
}

/// A fully connected layer through netc's kernels: `Linear::forward` on a
/// batch of vectors.
pub fn dense<B: Kernels>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    dense_with(layer, false, x)
}

/// `dense` followed by ReLU, in one pass.
pub fn dense_relu<B: Kernels>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    dense_with(layer, true, x)
}

fn dense_with<B: Kernels>(layer: &Linear<B>, relu: bool, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let bias = layer.bias.as_ref().map(|b| primitive(b.val()));
    tensor(B::dense(
        primitive(x),
        primitive(layer.weight.val()),
        bias,
        relu,
    ))
}

/// Feature maps joined along channels, through netc's kernel (pairwise).
pub fn concat<B: Kernels>(parts: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
    parts
        .into_iter()
        .reduce(|a, b| tensor(B::concat(primitive(a), primitive(b))))
        .expect("concat joins at least one branch")
}

/// Dropout in training, through netc's kernels (`Kernels::dropout`): in
/// inference, the input as it is.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub prob: f64,
}

impl Dropout {
    pub fn forward<B: Kernels, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if !B::ad_enabled(&x.device()) || self.prob == 0.0 {
            return x;
        }
        B::dropout(x, self.prob)
    }
}

/// Max pooling; with `same`, TensorFlow's padding, which never wins.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub same: bool,
}

impl MaxPool {
    pub fn forward<B: Kernels>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        tensor(B::max_pool(primitive(x), self.window(h, w)))
    }

    /// The window over an input of `h` x `w`, with its `same` padding.
    fn window(&self, h: usize, w: usize) -> Window {
        let pad = if self.same {
            same_pads([h, w], self.kernel, self.stride)
        } else {
            [0; 4]
        };
        Window {
            kernel: self.kernel,
            stride: self.stride,
            pad,
        }
    }
}

/// Average pooling with TensorFlow's `same` padding: the odd extra row and
/// column go at the bottom and right, and padded cells are not counted.
#[derive(Debug, Clone, Copy)]
pub struct AvgPoolSame {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
}

/// (before, after) padding of TensorFlow's `same` for one dimension.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// TensorFlow's `same` padding of an `[h, w]` input: (top, bottom, left, right).
pub fn same_pads(input: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> [usize; 4] {
    let (top, bottom) = same_padding(input[0], kernel[0], stride[0]);
    let (left, right) = same_padding(input[1], kernel[1], stride[1]);
    [top, bottom, left, right]
}

impl AvgPoolSame {
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let [top, bottom, left, right] = same_pads([h, w], self.kernel, self.stride);
        let pad = (left, right, top, bottom);
        let ones = Tensor::<B, 4>::ones([1, 1, h, w], &x.device()).pad(pad, 0.0);
        let pool = |t: Tensor<B, 4>| avg_pool2d(t, self.kernel, self.stride, [0, 0], true, false);
        // Mean over the window including zeros, rescaled by the share of real cells.
        pool(x.pad(pad, 0.0)) / pool(ones)
    }
}

/// sum(w^2) / 2 / (number of weights): one layer's weight-decay term.
pub fn decay_term<B: Backend, const D: usize>(weight: &Param<Tensor<B, D>>) -> Tensor<B, 1> {
    let w = weight.val();
    let count = w.shape().num_elements() as f64;
    w.powi_scalar(2).sum().div_scalar(2.0 * count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn decay_term_is_half_the_mean_square() {
        let device = Default::default();
        let w = Param::from_tensor(Tensor::<Flex, 2>::from_floats(
            [[1.0, 2.0], [3.0, 4.0]],
            &device,
        ));
        // (1 + 4 + 9 + 16) / 2 / 4
        let v: f32 = decay_term(&w).into_scalar();
        assert!((v - 3.75).abs() < 1e-6, "{v}");
    }

    #[test]
    fn tensorflow_same_padding_puts_the_extra_cell_after() {
        assert_eq!(same_padding(4, 3, 2), (0, 1));
        assert_eq!(same_padding(5, 3, 2), (1, 1));
        assert_eq!(same_padding(15, 4, 2), (1, 2));
    }

    #[test]
    fn lrn_divides_by_the_local_energy() {
        let device = Default::default();
        // One pixel, three channels 1, 2, 3; radius 1, bias 1, alpha 1, beta 1.
        let x = Tensor::<Flex, 4>::from_floats([[[[1.0]], [[2.0]], [[3.0]]]], &device);
        let lrn = Lrn {
            radius: 1,
            bias: 1.0,
            alpha: 1.0,
            beta: 1.0,
        };
        let y: Vec<f32> = lrn.forward(x).into_data().to_vec().unwrap();
        let want = [
            1.0 / (1.0 + 1.0 + 4.0),
            2.0 / (1.0 + 1.0 + 4.0 + 9.0),
            3.0 / (1.0 + 4.0 + 9.0),
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn same_average_pooling_counts_only_real_cells() {
        let device = Default::default();
        // A 2x2 image, 2x2 window, stride 2: no padding; a 3x3 image: padding after.
        let x = Tensor::<Flex, 4>::from_floats(
            [[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]],
            &device,
        );
        let pool = AvgPoolSame {
            kernel: [2, 2],
            stride: [2, 2],
        };
        let y: Vec<f32> = pool.forward(x).into_data().to_vec().unwrap();
        // Windows: {1,2,4,5} {3,6} {7,8} {9}
        assert_eq!(y, vec![3.0, 4.5, 7.5, 9.0]);
    }
}
