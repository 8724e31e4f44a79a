//! The kernels on burn's CPU backend: forward passes for inference, and
//! autodiff operations whose backward passes are netc's own.

use super::conv::{self, Geometry};
use super::{
    composed, conv_then_concat, cpu, dense, dropout, primitive, tensor, ConvPart, ConvSpec,
    Kernels, Lrn, Window,
};
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Distribution, Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// The tensor's values in row-major order. Views (a channel slice of a
/// concatenation's gradient, say) are copied run by run of contiguous values.
fn values(x: &FlexTensor) -> Cow<'_, [f32]> {
    if let Some(s) = x.as_slice::<f32>() {
        return Cow::Borrowed(s);
    }
    let layout = x.layout();
    if !layout.has_positive_strides() {
        let x = x.to_contiguous();
        return Cow::Owned(
            x.as_slice::<f32>()
                .expect("netc's models compute in f32")
                .to_vec(),
        );
    }
    let storage = x.storage::<f32>();
    let blocks = layout.strided_blocks();
    let len = blocks.block_len();
    let starts: Vec<usize> = blocks.block_starts().collect();
    let mut out = cpu::zeros(layout.num_elements());
    out.par_chunks_mut(len)
        .zip(starts)
        .for_each(|(out, start)| out.copy_from_slice(&storage[start..start + len]));
    Cow::Owned(out)
}

fn dims(x: &FlexTensor) -> [usize; 4] {
    x.shape().dims::<4>()
}

fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn pooled_shape(x: [usize; 4], win: Window) -> [usize; 4] {
    let (oh, ow) = win.out(x[2], x[3]);
    [x[0], x[1], oh, ow]
}

fn geometry(x: [usize; 4], w: [usize; 4], spec: ConvSpec) -> Geometry {
    Geometry {
        n: x[0],
        cin: x[1],
        h: x[2],
        w: x[3],
        cout: w[0],
        kernel: [w[2], w[3]],
        stride: spec.stride,
        pad: spec.pad,
        groups: spec.groups,
    }
}

fn conv_output(g: &Geometry) -> [usize; 4] {
    let (oh, ow) = g.out();
    [g.n, g.cout, oh, ow]
}

/// A convolution's output, max pooled through `win` in the same pass when
/// there is one.
fn convolved(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    spec: ConvSpec,
    win: Option<Window>,
) -> FlexTensor {
    let g = geometry(dims(&x), dims(&weight), spec);
    let bias = bias.as_ref().map(values);
    let (x, w, b) = (values(&x), values(&weight), bias.as_deref());
    match win {
        None => flex(conv::forward(&x, &w, b, &g, spec.relu), conv_output(&g)),
        Some(win) => {
            let y = conv::forward_pooled(&x, &w, b, &g, spec.relu, win);
            flex(y, pooled_shape(conv_output(&g), win))
        }
    }
}

/// `conv::forward_joined` on tensors (with `pool`, `forward_joined_pooled`):
/// the joined output of the parts (weights, bias, how each slides), pooled
/// through `pool` if given, and each part's sizes; None where their maps
/// differ in size.
fn joined(
    x: &FlexTensor,
    parts: &[(&FlexTensor, Option<&FlexTensor>, ConvSpec)],
    pool: Option<Window>,
) -> Option<(FlexTensor, Vec<Geometry>)> {
    let shape = dims(x);
    let geometries: Vec<Geometry> = parts
        .iter()
        .map(|(w, _, spec)| geometry(shape, dims(w), *spec))
        .collect();
    let values_of: Vec<_> = parts
        .iter()
        .map(|(w, b, _)| (values(w), b.map(values)))
        .collect();
    let joined: Vec<conv::Part> = values_of
        .iter()
        .zip(&geometries)
        .zip(parts)
        .map(|(((w, b), g), (_, _, spec))| (&w[..], b.as_deref(), *g, spec.relu))
        .collect();
    let [n, _, oh, ow] = conv_output(&geometries[0]);
    let c = geometries.iter().map(|g| g.cout).sum::<usize>();
    let y = match pool {
        None => flex(conv::forward_joined(&values(x), &joined)?, [n, c, oh, ow]),
        Some(win) => flex(
            conv::forward_joined_pooled(&values(x), &joined, win)?,
            pooled_shape([n, c, oh, ow], win),
        ),
    };
    Some((y, geometries))
}

/// The parts of `conv_concat`, borrowed as `joined` reads them.
fn refs(parts: &[ConvPart<Flex>]) -> Vec<(&FlexTensor, Option<&FlexTensor>, ConvSpec)> {
    parts
        .iter()
        .map(|(w, b, spec)| (w, b.as_ref(), *spec))
        .collect()
}

impl Kernels for Flex {
    fn concat(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let [n, ca, h, w] = dims(&a);
        let cb = dims(&b)[1];
        let y = cpu::concat(&values(&a), &values(&b), ca, cb, h * w);
        flex(y, [n, ca + cb, h, w])
    }

    fn conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        convolved(x, weight, bias, spec, None)
    }

    fn conv_concat(x: FloatTensor<Self>, parts: Vec<ConvPart<Self>>) -> FloatTensor<Self> {
        match joined(&x, &refs(&parts), None) {
            Some((y, _)) => y,
            // Parts whose maps differ in size: the concatenation refuses them.
            None => conv_then_concat::<Self>(x, parts),
        }
    }

    fn conv_concat_pool(
        x: FloatTensor<Self>,
        parts: Vec<ConvPart<Self>>,
        win: Window,
    ) -> FloatTensor<Self> {
        match joined(&x, &refs(&parts), Some(win)) {
            Some((y, _)) => y,
            None => Self::max_pool(conv_then_concat::<Self>(x, parts), win),
        }
    }

    fn conv_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
        win: Window,
    ) -> FloatTensor<Self> {
        convolved(x, weight, bias, spec, Some(win))
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let [rows, _] = x.shape().dims::<2>();
        if rows == 0 || rows > dense::FEW {
            let (x, weight, bias) = (tensor(x), tensor(weight), bias.map(tensor));
            return primitive(composed::dense::<Self>(x, weight, bias, relu));
        }
        let units = weight.shape().dims::<2>()[1];
        let bias = bias.as_ref().map(values);
        let y = dense::forward(
            &values(&x),
            rows,
            &values(&weight),
            units,
            bias.as_deref(),
            relu,
        );
        flex(y, [rows, units])
    }

    fn lrn(x: FloatTensor<Self>, p: Lrn) -> FloatTensor<Self> {
        let [n, c, h, w] = dims(&x);
        let (y, _) = cpu::lrn(&values(&x), c, h * w, p);
        flex(y, [n, c, h, w])
    }

    fn max_pool(x: FloatTensor<Self>, win: Window) -> FloatTensor<Self> {
        let shape = dims(&x);
        let y = cpu::max_pool(&values(&x), shape[2], shape[3], win);
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
    /// The input, the output, the window: the backward pass finds the winners
    /// again, so that the forward pass stays a plain maximum.
    type State = (FlexTensor, FlexTensor, Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, y, win) = ops.state;
        if let Some(parent) = parent {
            let shape = dims(&x);
            let dx = cpu::max_pool_backward(
                &values(&x),
                &values(&y),
                &values(&dy),
                shape[2],
                shape[3],
                win,
            );
            grads.register::<Flex>(parent.id, flex(dx, shape));
        }
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    /// The mask, which the backward pass makes again from its seed.
    type State = dropout::Mask;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            let dx = ops.state.apply(&values(&dy));
            grads.register::<Flex>(parent.id, flex(dx, dy.shape()));
        }
    }
}

#[derive(Debug)]
struct ConcatBackward;

impl Backward<Flex, 2> for ConcatBackward {
    /// The shapes of the two parts.
    type State = ([usize; 4], [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [pa, pb] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (a, b) = ops.state;
        let (da, db) = cpu::split(&values(&dy), a[1], b[1], a[2] * a[3]);
        if let Some(p) = pa {
            grads.register::<Flex>(p.id, flex(da, a));
        }
        if let Some(p) = pb {
            grads.register::<Flex>(p.id, flex(db, b));
        }
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    /// The input, the weights, the output when a ReLU is fused, the sizes.
    type State = (FlexTensor, FlexTensor, Option<FlexTensor>, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, relu_out, g) = ops.state;
        let relu_out = relu_out.as_ref().map(values);
        let dy = values(&dy);
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let dx = conv_gradients(parents, grads, (&x, &w), &dy, relu_out.as_deref(), &g);
        register_input(grads, parents[0], dx, &g);
    }
}

/// The convolution's gradients from dy: the weights' and bias's registered
/// for their parents (where those need one), the input's returned (where
/// its parent needs one: `register_input`).
fn conv_gradients(
    [px, pw, pb]: [Option<NodeId>; 3],
    grads: &mut Gradients,
    (x, w): (&FlexTensor, &FlexTensor),
    dy: &[f32],
    relu_out: Option<&[f32]>,
    g: &Geometry,
) -> Option<Vec<f32>> {
    let d = conv::backward(&values(x), &values(w), dy, relu_out, g, px.is_some());
    if let Some(p) = pw {
        grads.register::<Flex>(p, flex(d.weight, dims(w)));
    }
    if let Some(p) = pb {
        let bias = TensorData::new(d.bias, [g.cout]);
        grads.register::<Flex>(p, FlexTensor::from_data(bias));
    }
    d.x
}

/// The input's gradient `dx` (of `conv_gradients`), registered for its
/// parent.
fn register_input(grads: &mut Gradients, px: Option<NodeId>, dx: Option<Vec<f32>>, g: &Geometry) {
    if let (Some(p), Some(dx)) = (px, dx) {
        grads.register::<Flex>(p, flex(dx, [g.n, g.cin, g.h, g.w]));
    }
}

#[derive(Debug)]
struct ConvPoolBackward;

impl Backward<Flex, 3> for ConvPoolBackward {
    /// The input, the weights, the convolution's output (the pooling's
    /// input) and the pooled output, whether a ReLU is fused, the sizes and
    /// the window: the pooling's gradient, then the convolution's.
    type State = (
        FlexTensor,
        FlexTensor,
        FlexTensor,
        FlexTensor,
        bool,
        Geometry,
        Window,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, conv_out, y, relu, g, win) = ops.state;
        let (oh, ow) = g.out();
        let conv_out = values(&conv_out);
        let (y, dy) = (values(&y), values(&dy));
        // With a fused ReLU, its gradient too, plane by plane in cache: the
        // convolution's gradients then get dy masked already.
        let dconv = cpu::max_pool_relu_backward(&conv_out, (&y, &dy), (oh, ow), win, relu);
        let parents = ops.parents.map(|p| p.map(|p| p.id));
        let dx = conv_gradients(parents, grads, (&x, &w), &dconv, None, &g);
        register_input(grads, parents[0], dx, &g);
    }
}

#[derive(Debug)]
struct ConvConcatBackward;

impl Backward<Flex, 5> for ConvConcatBackward {
    /// The input, each convolution's weights, sizes and fused ReLU, and the
    /// joined output, whose signs are the ReLUs' masks.
    type State = (FlexTensor, [(FlexTensor, Geometry, bool); 2], FlexTensor);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, parts, y) = ops.state;
        let [px, pw0, pb0, pw1, pb1] = ops.parents.map(|p| p.map(|p| p.id));
        let channels = parts.each_ref().map(|(_, g, relu)| (g.cout, *relu));
        let dys = cpu::split_masked(&values(&dy), &values(&y), &channels, parts[0].1.ohw());
        // The input's gradient is the sum of the two, added here on every
        // thread: `register` would add them on this thread alone while the
        // others wait (1 % of squeeze1's training). Where the input has a
        // gradient from another reader too, `register` adds it to this sum
        // (it added each part in turn before).
        let mut dx: Option<Vec<f32>> = None;
        for (((w, g, _), dy), parents) in
            parts.iter().zip(&dys).zip([[px, pw0, pb0], [px, pw1, pb1]])
        {
            let part = conv_gradients(parents, grads, (&x, w), dy, None, g);
            dx = match (dx, part) {
                (Some(mut sum), Some(part)) => {
                    cpu::add_into(&mut sum, &part);
                    Some(sum)
                }
                (sum, part) => sum.or(part),
            };
        }
        register_input(grads, px, dx, &parts[0].1);
    }
}

/// A convolution's bias values, and the bias as its operation's third
/// parent: without a bias, a constant stands in.
fn bias_parent<C: CheckpointStrategy>(
    bias: Option<FloatTensor<Autodiff<Flex, C>>>,
    cout: usize,
) -> (Option<Vec<f32>>, FloatTensor<Autodiff<Flex, C>>) {
    let values = bias.as_ref().map(|b| values(&b.primitive).into_owned());
    let bias = bias.unwrap_or_else(|| {
        let zeros = Tensor::<Autodiff<Flex, C>, 1>::zeros([cout], &Default::default());
        zeros.into_primitive().tensor()
    });
    (values, bias)
}

impl<C: CheckpointStrategy> Kernels for Autodiff<Flex, C> {
    fn concat(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let (sa, sb) = (dims(&a.primitive), dims(&b.primitive));
        let y = Flex::concat(a.primitive.clone(), b.primitive.clone());
        match ConcatBackward
            .prepare::<C>([a.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((sa, sb), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let g = geometry(dims(&x.primitive), dims(&weight.primitive), spec);
        let (bias_values, bias) = bias_parent::<C>(bias, g.cout);
        let y = conv::forward(
            &values(&x.primitive),
            &values(&weight.primitive),
            bias_values.as_deref(),
            &g,
            spec.relu,
        );
        let y = flex(y, conv_output(&g));
        match ConvBackward
            .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let relu_out = spec.relu.then(|| y.clone());
                prep.finish((x.primitive, weight.primitive, relu_out, g), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    /// Two convolutions joined (a fire module's) as one operation: each
    /// writes its channels of the joined output, as in inference, and the
    /// backward pass splits the joined gradient through each ReLU in one
    /// pass (where the layers apart copy the outputs into the joined one,
    /// then split its gradient, then mask each part). Other numbers of
    /// parts run apart.
    fn conv_concat(x: FloatTensor<Self>, parts: Vec<ConvPart<Self>>) -> FloatTensor<Self> {
        let parts: [ConvPart<Self>; 2] = match parts.try_into() {
            Ok(parts) => parts,
            Err(parts) => return conv_then_concat::<Self>(x, parts),
        };
        let refs = parts
            .each_ref()
            .map(|(w, b, spec)| (&w.primitive, b.as_ref().map(|b| &b.primitive), *spec));
        let Some((y, g)) = joined(&x.primitive, &refs, None) else {
            return conv_then_concat::<Self>(x, parts.into());
        };
        let [(w0, b0, s0), (w1, b1, s1)] = parts;
        let (_, b0) = bias_parent::<C>(b0, g[0].cout);
        let (_, b1) = bias_parent::<C>(b1, g[1].cout);
        let nodes = [&x, &w0, &b0, &w1, &b1].map(|t| t.node.clone());
        match ConvConcatBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let parts = [(w0.primitive, g[0], s0.relu), (w1.primitive, g[1], s1.relu)];
                prep.finish((x.primitive, parts, y.clone()), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    /// The convolution and its pooling as one operation: each tile of
    /// images is pooled while its output is in cache (as in inference), and
    /// the output is kept for the two backward passes.
    fn conv_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: ConvSpec,
        win: Window,
    ) -> FloatTensor<Self> {
        let g = geometry(dims(&x.primitive), dims(&weight.primitive), spec);
        let (bias_values, bias) = bias_parent::<C>(bias, g.cout);
        let b = bias_values.as_deref();
        let pooled = |y| flex(y, pooled_shape(conv_output(&g), win));
        match ConvPoolBackward
            .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.primitive, weight.primitive);
                let (y, conv_out) =
                    conv::forward_and_pooled(&values(&x), &values(&w), b, &g, spec.relu, win);
                let (y, conv_out) = (pooled(y), flex(conv_out, conv_output(&g)));
                prep.finish((x, w, conv_out, y.clone(), spec.relu, g, win), y)
            }
            // Nothing to differentiate: the convolution's output is not
            // kept, as in inference.
            OpsKind::UnTracked(prep) => {
                let (x, w) = (values(&x.primitive), values(&weight.primitive));
                prep.finish(pooled(conv::forward_pooled(&x, &w, b, &g, spec.relu, win)))
            }
        }
    }

    fn dropout<const D: usize>(x: Tensor<Self, D>, prob: f64) -> Tensor<Self, D> {
        // The seed from the backend's generator, which every training step
        // seeds: the same masks on a resumed run.
        let draws = Tensor::<Flex, 1>::random([4], Distribution::Uniform(0.0, 1.0), &x.device());
        let mask = dropout::Mask::new(
            dropout::Mask::seed(&draws.into_data().to_vec::<f32>().expect("f32 draws")),
            prob,
        );
        let x = x.into_primitive().tensor();
        let y = flex(mask.apply(&values(&x.primitive)), x.primitive.shape());
        let y = match DropoutBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(mask, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }

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
        let y = cpu::max_pool(&values(&x.primitive), shape[2], shape[3], win);
        let y = flex(y, pooled_shape(shape, win));
        match MaxPoolBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive, y.clone(), win), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
