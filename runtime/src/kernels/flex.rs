//! The kernels on burn's CPU backend: forward passes for inference, and
//! autodiff operations whose backward passes are netc's own.

use super::{cpu, Kernels, Lrn, Window};
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{TensorData, TensorMetadata};
use std::borrow::Cow;
use std::sync::Arc;

/// The tensor's values in row-major order (copied only if strided).
fn values(x: &FlexTensor) -> Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            x.to_contiguous()
                .as_slice::<f32>()
                .expect("netc's models compute in f32")
                .to_vec(),
        ),
    }
}

fn dims(x: &FlexTensor) -> [usize; 4] {
    x.shape().dims::<4>()
}

fn flex(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn pooled_shape(x: [usize; 4], win: Window) -> [usize; 4] {
    let (oh, ow) = win.out(x[2], x[3]);
    [x[0], x[1], oh, ow]
}

impl Kernels for Flex {
    fn lrn(x: FloatTensor<Self>, p: Lrn) -> FloatTensor<Self> {
        let [n, c, h, w] = dims(&x);
        let (y, _) = cpu::lrn(&values(&x), c, h * w, p);
        flex(y, [n, c, h, w])
    }

    fn max_pool(x: FloatTensor<Self>, win: Window) -> FloatTensor<Self> {
        let shape = dims(&x);
        let (y, _) = cpu::max_pool(&values(&x), shape[2], shape[3], win);
        flex(y, pooled_shape(shape, win))
    }
}

#[derive(Debug)]
struct LrnBackward;

impl Backward<Flex, 1> for LrnBackward {
    /// The input, the scale the forward pass computed, the layer.
    type State = (FlexTensor, Arc<Vec<f32>>, Lrn);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, scale, p) = ops.state;
        if let Some(parent) = parent {
            let shape = dims(&x);
            let [_, c, h, w] = shape;
            let dx = cpu::lrn_backward(&values(&x), &scale, &values(&dy), c, h * w, p);
            grads.register::<Flex>(parent.id, flex(dx, shape));
        }
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The input's shape, the output's, and the winning cell of each output.
    type State = ([usize; 4], [usize; 4], Arc<Vec<u32>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (input, output, arg) = ops.state;
        if let Some(parent) = parent {
            let out = output[2] * output[3];
            let dx = cpu::max_pool_backward(&values(&dy), &arg, out, input[2], input[3]);
            grads.register::<Flex>(parent.id, flex(dx, input));
        }
    }
}

impl<C: CheckpointStrategy> Kernels for Autodiff<Flex, C> {
    fn lrn(x: FloatTensor<Self>, p: Lrn) -> FloatTensor<Self> {
        let shape = dims(&x.primitive);
        let [_, c, h, w] = shape;
        let (y, scale) = cpu::lrn(&values(&x.primitive), c, h * w, p);
        match LrnBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x.primitive, Arc::new(scale), p), flex(y, shape))
            }
            OpsKind::UnTracked(prep) => prep.finish(flex(y, shape)),
        }
    }

    fn max_pool(x: FloatTensor<Self>, win: Window) -> FloatTensor<Self> {
        let shape = dims(&x.primitive);
        let (y, arg) = cpu::max_pool(&values(&x.primitive), shape[2], shape[3], win);
        let out = pooled_shape(shape, win);
        match MaxPoolBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((shape, out, Arc::new(arg)), flex(y, out)),
            OpsKind::UnTracked(prep) => prep.finish(flex(y, out)),
        }
    }
}
