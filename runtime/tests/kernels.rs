//! netc's CPU kernels against burn's reference ops (`kernels::composed`):
//! the same outputs and the same input gradients on random tensors of odd
//! sizes, strides and TensorFlow `same` paddings.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Distribution, TensorPrimitive};
use netc_runtime::kernels::{composed, Kernels, Lrn, Window};
use netc_runtime::nn::same_padding;

type B = Autodiff<Flex>;

fn close(a: Tensor<Flex, 4>, b: Tensor<Flex, 4>, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{what}: element {i}: kernel {x}, reference {y}"
        );
    }
}

/// Output and input gradient of `f` on `x`, the gradient taken of
/// sum(output * weights) so that every output cell counts differently.
fn run(
    x: &Tensor<Flex, 4>,
    f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    weights: &Tensor<Flex, 4>,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4>) {
    let x = Tensor::<B, 4>::from_inner(x.clone()).require_grad();
    let y = f(x.clone());
    let loss = (y.clone() * Tensor::from_inner(weights.clone())).sum();
    let grads = loss.backward();
    (y.inner(), x.grad(&grads).expect("a gradient"))
}

fn kernel<F>(x: Tensor<B, 4>, f: F) -> Tensor<B, 4>
where
    F: Fn(FloatTensor<B>) -> FloatTensor<B>,
{
    Tensor::from_primitive(TensorPrimitive::Float(f(x.into_primitive().tensor())))
}

fn random(shape: [usize; 4], seed: u64) -> Tensor<Flex, 4> {
    let device = Default::default();
    Flex::seed(&device, seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device)
}

#[test]
fn max_pooling_matches_burn_on_odd_shapes_strides_and_paddings() {
    let cases = [
        // (n, c, h, w), kernel, stride, same
        ([2, 3, 24, 24], [3, 3], [2, 2], true),
        ([1, 2, 7, 5], [3, 3], [2, 2], true),
        ([3, 1, 9, 11], [2, 3], [1, 2], true),
        ([2, 4, 8, 8], [2, 2], [2, 2], false),
        ([1, 3, 13, 6], [3, 2], [3, 1], false),
        ([2, 2, 5, 5], [5, 5], [1, 1], true),
        ([1, 1, 1, 1], [3, 3], [2, 2], true),
    ];
    for (i, (shape, kernel, stride, same)) in cases.into_iter().enumerate() {
        let pad = if same {
            let (t, b) = same_padding(shape[2], kernel[0], stride[0]);
            let (l, r) = same_padding(shape[3], kernel[1], stride[1]);
            [t, b, l, r]
        } else {
            [0; 4]
        };
        let win = Window {
            kernel,
            stride,
            pad,
        };
        let x = random(shape, i as u64);
        let (oh, ow) = win.out(shape[2], shape[3]);
        let weights = random([shape[0], shape[1], oh, ow], 100 + i as u64);
        let what = format!("case {i}: {shape:?} kernel {kernel:?} stride {stride:?} same {same}");
        let (y, dx) = run(&x, |x| kernel_pool(x, win), &weights);
        let (y_ref, dx_ref) = run(&x, |x| composed::max_pool(x, win), &weights);
        close(y, y_ref, &format!("{what}, output"));
        close(dx, dx_ref, &format!("{what}, gradient"));
        // Inference runs the forward kernel of the inner backend.
        let inner = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(Flex::max_pool(
            x.clone().into_primitive().tensor(),
            win,
        )));
        close(
            inner,
            composed::max_pool(x, win),
            &format!("{what}, inference"),
        );
    }
}

fn kernel_pool(x: Tensor<B, 4>, win: Window) -> Tensor<B, 4> {
    kernel(x, |p| B::max_pool(p, win))
}

#[test]
fn lrn_matches_burn_for_several_radii_and_channel_counts() {
    let cases = [
        ([2, 64, 12, 12], 4, 1.0, 0.001 / 9.0, 0.75),
        ([3, 5, 3, 7], 2, 2.0, 0.1, 0.75),
        ([1, 3, 4, 4], 4, 1.0, 0.5, 0.5),
        ([2, 1, 5, 2], 1, 0.5, 1.0, 1.0),
    ];
    for (i, (shape, radius, bias, alpha, beta)) in cases.into_iter().enumerate() {
        let p = Lrn {
            radius,
            bias,
            alpha,
            beta,
        };
        let x = random(shape, 7 + i as u64);
        let weights = random(shape, 70 + i as u64);
        let what = format!("case {i}: {shape:?} {p:?}");
        let (y, dx) = run(&x, |x| kernel(x, |t| B::lrn(t, p)), &weights);
        let (y_ref, dx_ref) = run(&x, |x| composed::lrn(x, p), &weights);
        close(y, y_ref, &format!("{what}, output"));
        close(dx, dx_ref, &format!("{what}, gradient"));
        let inner = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(Flex::lrn(
            x.clone().into_primitive().tensor(),
            p,
        )));
        close(inner, composed::lrn(x, p), &format!("{what}, inference"));
    }
}
