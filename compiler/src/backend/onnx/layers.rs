//! The layout's `forward` steps as ONNX nodes, block calls expanded with
//! each call's numbers, activations N x C x H x W.
//!
//! ONNX pads are explicit (begin and end per axis), so TensorFlow's `same`
//! padding, whose odd extra row and column go after, is written as it is.
//! ONNX's own rules match netc's where they matter: max pooling never takes
//! a padded cell, average pooling with `count_include_pad=0` divides by the
//! real cells only, `Flatten` keeps channel, row, column order.

use super::graph::{float, int, ints, Graph};
use super::trim;
use crate::ir::Shape;
use crate::proc::expr::Expr;
use crate::proc::layout::{JoinKind, Layer, Layout, Step, StepKind, Struct};
use crate::proc::sizes::{layer_tensors, Bindings};
use crate::shape::same_pads;
use crate::weights::Weights;

/// A value of the graph and its shape (a map is C x H x W after the batch).
#[derive(Clone)]
pub struct Value {
    pub name: String,
    pub shape: Shape,
}

pub struct Writer<'a> {
    pub graph: Graph,
    pub layout: &'a Layout,
    pub weights: &'a Weights,
}

/// A window's output size on one axis, TensorFlow's rules.
fn window_out(size: u64, kernel: u64, stride: u64, same: bool) -> u64 {
    if same {
        size.div_ceil(stride)
    } else {
        (size - kernel) / stride + 1
    }
}

/// A window layer (convolution, pooling) on its input: kernel, strides,
/// ONNX pads (top, left, bottom, right) and the output's height and width.
struct Window {
    kernel: [u64; 2],
    stride: [u64; 2],
    pads: [u64; 4],
    h: u64,
    w: u64,
}

impl Window {
    fn new(x: &Shape, kernel: [u64; 2], stride: [u64; 2], same: bool) -> Window {
        let Shape::Map { h, w, .. } = *x else {
            unreachable!("shape inference puts windows on maps only")
        };
        let pads = if same {
            let (t, b) = same_pads(h, kernel[0], stride[0]);
            let (l, r) = same_pads(w, kernel[1], stride[1]);
            [t, l, b, r]
        } else {
            [0; 4]
        };
        Window {
            kernel,
            stride,
            pads,
            h: window_out(h, kernel[0], stride[0], same),
            w: window_out(w, kernel[1], stride[1], same),
        }
    }

    fn attrs(&self) -> Vec<onnx_protobuf::AttributeProto> {
        let i = |v: u64| v as i64;
        vec![
            ints("kernel_shape", &self.kernel.map(i)),
            ints("strides", &self.stride.map(i)),
            ints("pads", &self.pads.map(i)),
        ]
    }
}

impl Writer<'_> {
    /// `steps` of struct `s` in the call bound by `b`, whose fields' paths
    /// start with `prefix`, applied to `x`.
    pub fn steps(
        &mut self,
        s: &Struct,
        b: &Bindings,
        prefix: &str,
        steps: &[Step],
        mut x: Value,
    ) -> Value {
        for step in steps {
            x = self.step(s, b, prefix, step, x);
        }
        x
    }

    fn step(&mut self, s: &Struct, b: &Bindings, prefix: &str, step: &Step, x: Value) -> Value {
        match &step.kind {
            StepKind::Apply { field, relu } => {
                let f = &s.fields[*field];
                let path = format!("{prefix}{}", f.label);
                let y = self.layer(&f.layer, b, &path, x);
                if *relu {
                    self.relu(&format!("{path}/relu"), y)
                } else {
                    y
                }
            }
            // Only `pooled` forwards hold it, and only the burn back end prints those.
            StepKind::ConvPoolArg { .. } | StepKind::ConvConcatPool { pool: None, .. } => {
                unreachable!("a pooled forward's step in `forward`")
            }
            kind @ (StepKind::ConvPool { .. }
            | StepKind::BlockPool { .. }
            | StepKind::ConvConcat { .. }
            | StepKind::ConvConcatPool { .. }) => {
                kind.unfused().into_iter().flatten().fold(x, |x, kind| {
                    let part = Step {
                        span: step.span,
                        kind,
                    };
                    self.step(s, b, prefix, &part, x)
                })
            }
            StepKind::Relu => {
                let name = format!("{prefix}relu");
                self.relu(&name, x)
            }
            StepKind::GlobalAvgPool => {
                let name = self.graph.node(
                    "GlobalAveragePool",
                    &format!("{prefix}avgpool"),
                    vec![x.name],
                    vec![],
                );
                Value {
                    name,
                    shape: Shape::Map {
                        h: 1,
                        w: 1,
                        c: x.shape.channels(),
                    },
                }
            }
            StepKind::Flatten => {
                // Channel, row, column order: what netc's `fc` reads.
                let name = self.graph.node(
                    "Flatten",
                    &format!("{prefix}flatten"),
                    vec![x.name],
                    vec![int("axis", 1)],
                );
                Value {
                    name,
                    shape: Shape::Vector(x.shape.elements()),
                }
            }
            StepKind::Identity => x,
            StepKind::Join {
                join,
                label,
                branches,
                ..
            } => {
                let outs: Vec<Value> = branches
                    .iter()
                    .map(|branch| self.steps(s, b, prefix, branch, x.clone()))
                    .collect();
                let path = format!("{prefix}{label}");
                self.join(*join, &path, outs)
            }
        }
    }

    fn relu(&mut self, name: &str, x: Value) -> Value {
        let name = self.graph.node("Relu", name, vec![x.name], vec![]);
        Value {
            name,
            shape: x.shape,
        }
    }

    fn join(&mut self, join: JoinKind, path: &str, outs: Vec<Value>) -> Value {
        let first = outs[0].shape;
        match join {
            JoinKind::Concat => {
                let c = outs.iter().map(|o| o.shape.channels()).sum();
                let shape = match first {
                    Shape::Map { h, w, .. } => Shape::Map { h, w, c },
                    Shape::Vector(_) => Shape::Vector(c),
                };
                let inputs = outs.into_iter().map(|o| o.name).collect();
                let name = self
                    .graph
                    .node("Concat", path, inputs, vec![int("axis", 1)]);
                Value { name, shape }
            }
            // Left to right, as `a + b + c` in the other back ends.
            JoinKind::Add => {
                let mut it = outs.into_iter();
                let mut sum = it.next().expect("a join has branches");
                for o in it {
                    let name = self.graph.node("Add", path, vec![sum.name, o.name], vec![]);
                    sum = Value { name, shape: first };
                }
                sum
            }
        }
    }

    /// The initializers of a layer's tensors, by path, in the order of
    /// `layer_tensors` (weight then bias; gamma, beta, mean, variance).
    fn tensors(&mut self, layer: &Layer, b: &Bindings, path: &str) -> Vec<String> {
        layer_tensors(layer, b)
            .into_iter()
            .map(|(t, shape)| {
                let name = format!("{path}.{t}");
                let values = &self.weights.get(&name).values;
                self.graph.floats(&name, &shape, values)
            })
            .collect()
    }

    /// The weight `name` with only the taps `rows` and `cols` (see `trim`),
    /// in place of the initializer `tensors` wrote.
    fn trimmed(
        &mut self,
        name: &str,
        rows: (u64, u64, u64, u64),
        cols: (u64, u64, u64, u64),
    ) -> String {
        let weight = self.weights.get(name);
        let values = trim::slice(
            &weight.values,
            &weight.shape,
            (rows.0, rows.1),
            (cols.0, cols.1),
        );
        let init = self
            .graph
            .initializers
            .iter_mut()
            .find(|t| t.name == name)
            .expect("`tensors` wrote the weight");
        init.dims[2] = rows.1 as i64;
        init.dims[3] = cols.1 as i64;
        init.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        init.doc_string = "the taps of the checkpoint's tensor that meet the map: \
                           the others only multiply padding"
            .into();
        name.to_string()
    }

    fn layer(&mut self, layer: &Layer, b: &Bindings, path: &str, x: Value) -> Value {
        let n = |e: &Expr| b.eval(e);
        let pair = |v: &[Expr; 2]| [n(&v[0]), n(&v[1])];
        match layer {
            Layer::Conv {
                filters,
                kernel,
                stride,
                same,
                groups,
                ..
            } => {
                let mut win = Window::new(&x.shape, pair(kernel), pair(stride), *same);
                let mut inputs = vec![x.name];
                inputs.extend(self.tensors(layer, b, path));
                let [h, w, _] = x.shape.hwc();
                let [t, l, bottom, r] = win.pads;
                if trim::needed(h, t, bottom) || trim::needed(w, l, r) {
                    let rows = trim::taps(h, win.kernel[0], win.stride[0], t, win.h);
                    let cols = trim::taps(w, win.kernel[1], win.stride[1], l, win.w);
                    inputs[1] = self.trimmed(&format!("{path}.weight"), rows, cols);
                    win.kernel = [rows.1, cols.1];
                    win.pads = [rows.2, cols.2, rows.3, cols.3];
                }
                let mut attrs = win.attrs();
                attrs.push(int("group", n(groups) as i64));
                let name = self.graph.node("Conv", path, inputs, attrs);
                let shape = Shape::Map {
                    h: win.h,
                    w: win.w,
                    c: n(filters),
                };
                Value { name, shape }
            }
            Layer::MaxPool {
                kernel,
                stride,
                same,
            }
            | Layer::AvgPool {
                kernel,
                stride,
                same,
            } => {
                let win = Window::new(&x.shape, pair(kernel), pair(stride), *same);
                let mut attrs = win.attrs();
                let op = match layer {
                    // Padded cells never win: ONNX pools over real cells only.
                    Layer::MaxPool { .. } => "MaxPool",
                    _ => {
                        attrs.push(int("count_include_pad", 0));
                        "AveragePool"
                    }
                };
                let name = self.graph.node(op, path, vec![x.name], attrs);
                let shape = Shape::Map {
                    h: win.h,
                    w: win.w,
                    c: x.shape.channels(),
                };
                Value { name, shape }
            }
            Layer::Lrn {
                radius,
                bias,
                alpha,
                beta,
            } => {
                // TensorFlow sums 2r+1 channels; ONNX divides alpha by the size.
                let size = 2 * radius + 1;
                let attrs = vec![
                    int("size", size as i64),
                    float("alpha", (alpha.0 * size as f64) as f32),
                    float("beta", beta.0 as f32),
                    float("bias", bias.0 as f32),
                ];
                let name = self.graph.node("LRN", path, vec![x.name], attrs);
                Value { name, ..x }
            }
            Layer::Dense { units, .. } => {
                // netc's weight is inputs x units: Gemm's B as it is.
                let mut inputs = vec![x.name];
                inputs.extend(self.tensors(layer, b, path));
                let name = self.graph.node("Gemm", path, inputs, vec![]);
                let shape = Shape::Vector(n(units));
                Value { name, shape }
            }
            Layer::BatchNorm { epsilon, .. } => {
                let mut inputs = vec![x.name];
                inputs.extend(self.tensors(layer, b, path));
                let attrs = vec![float("epsilon", epsilon.0 as f32)];
                let name = self.graph.node("BatchNormalization", path, inputs, attrs);
                Value { name, ..x }
            }
            // Inference: dropout passes its input through.
            Layer::Dropout { .. } => x,
            Layer::Block { def, args } => {
                let callee = &self.layout.structs[*def];
                let inner = b.call(callee, args);
                let prefix = format!("{path}.");
                self.steps(callee, &inner, &prefix, &callee.forward, x)
            }
        }
    }
}
