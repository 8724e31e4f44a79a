//! The model's concrete graph: the layout's `forward` steps with block calls
//! expanded, every size a number, every padding explicit, every tensor named
//! by its `.net` path. Generated programs carry it (as JSON) for what runs
//! outside burn's modules: the runtime's graph interpreter, which quantizes
//! and runs the model in int8 (`runtime/src/quant/`). The runtime reads the
//! same JSON with its own copy of these types (`runtime/src/quant/graph.rs`).

use super::expr::Expr;
use super::layout::{JoinKind, Layer, Layout, Step, StepKind, Struct};
use super::sizes::Bindings;
use crate::shape::same_pads;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Channels, height, width of the input.
    pub input: [u64; 3],
    pub ops: Vec<Op>,
}

/// One operation on the activation. Maps are C x H x W; `h` and `w` are the
/// input's; pads are (top, bottom, left, right).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Conv {
        path: String,
        cin: u64,
        h: u64,
        w: u64,
        cout: u64,
        kernel: [u64; 2],
        stride: [u64; 2],
        pad: [u64; 4],
        groups: u64,
        bias: bool,
        relu: bool,
    },
    MaxPool {
        c: u64,
        h: u64,
        w: u64,
        kernel: [u64; 2],
        stride: [u64; 2],
        pad: [u64; 4],
    },
    /// Padded cells are not counted (TensorFlow's rule).
    AvgPool {
        c: u64,
        h: u64,
        w: u64,
        kernel: [u64; 2],
        stride: [u64; 2],
        pad: [u64; 4],
    },
    GlobalAvgPool {
        c: u64,
        h: u64,
        w: u64,
    },
    Lrn {
        c: u64,
        h: u64,
        w: u64,
        radius: u64,
        bias: f64,
        alpha: f64,
        beta: f64,
    },
    /// `weight` is inputs x units, as netc stores it.
    Dense {
        path: String,
        inputs: u64,
        units: u64,
        bias: bool,
        relu: bool,
    },
    BatchNorm {
        path: String,
        c: u64,
        h: u64,
        w: u64,
        epsilon: f64,
        /// TensorFlow's: the share of the running statistics kept at each
        /// training step.
        momentum: f64,
    },
    Relu,
    /// Channel, row, column order: what `fc` reads.
    Flatten,
    /// Every branch reads the activation; outputs joined along channels or summed.
    Join {
        kind: Join,
        branches: Vec<Vec<Op>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    Concat,
    Add,
}

/// An activation's shape while walking: channels, height, width (a vector
/// is C x 1 x 1).
#[derive(Debug, Clone, Copy)]
struct Chw([u64; 3]);

/// Pads and output size of a window on an `h` x `w` map.
fn window(h: u64, w: u64, kernel: [u64; 2], stride: [u64; 2], same: bool) -> ([u64; 4], u64, u64) {
    let (t, b) = if same {
        same_pads(h, kernel[0], stride[0])
    } else {
        (0, 0)
    };
    let (l, r) = if same {
        same_pads(w, kernel[1], stride[1])
    } else {
        (0, 0)
    };
    let oh = (h + t + b - kernel[0]) / stride[0] + 1;
    let ow = (w + l + r - kernel[1]) / stride[1] + 1;
    ([t, b, l, r], oh, ow)
}

/// The concrete graph of a laid-out model whose input is `input` (h, w, c).
pub fn graph(layout: &Layout, input: [u64; 3]) -> Graph {
    let [h, w, c] = input;
    let mut ops = Vec::new();
    let model = layout.model();
    steps(
        layout,
        model,
        &Bindings::model(),
        "",
        &model.forward,
        Chw([c, h, w]),
        &mut ops,
    );
    Graph {
        input: [c, h, w],
        ops,
    }
}

fn steps(
    layout: &Layout,
    s: &Struct,
    b: &Bindings,
    prefix: &str,
    list: &[Step],
    mut x: Chw,
    out: &mut Vec<Op>,
) -> Chw {
    for step in list {
        x = self::step(layout, s, b, prefix, step, x, out);
    }
    x
}

fn step(
    layout: &Layout,
    s: &Struct,
    b: &Bindings,
    prefix: &str,
    step: &Step,
    x: Chw,
    out: &mut Vec<Op>,
) -> Chw {
    let Chw([c, h, w]) = x;
    match &step.kind {
        StepKind::Apply { field, relu } => {
            let f = &s.fields[*field];
            let path = format!("{prefix}{}", f.label);
            layer(layout, &f.layer, b, &path, x, *relu, out)
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
                self::step(layout, s, b, prefix, &part, x, out)
            })
        }
        StepKind::Relu => {
            out.push(Op::Relu);
            x
        }
        StepKind::GlobalAvgPool => {
            out.push(Op::GlobalAvgPool { c, h, w });
            Chw([c, 1, 1])
        }
        StepKind::Flatten => {
            out.push(Op::Flatten);
            Chw([c * h * w, 1, 1])
        }
        StepKind::Identity => x,
        StepKind::Join { join, branches, .. } => {
            let mut ops = Vec::new();
            let mut shapes = Vec::new();
            for branch in branches {
                let mut bo = Vec::new();
                shapes.push(steps(layout, s, b, prefix, branch, x, &mut bo));
                ops.push(bo);
            }
            let first = shapes[0].0;
            let kind = match join {
                JoinKind::Concat => Join::Concat,
                JoinKind::Add => Join::Add,
            };
            out.push(Op::Join {
                kind,
                branches: ops,
            });
            match join {
                JoinKind::Concat => Chw([shapes.iter().map(|s| s.0[0]).sum(), first[1], first[2]]),
                JoinKind::Add => Chw(first),
            }
        }
    }
}

fn layer(
    layout: &Layout,
    layer: &Layer,
    b: &Bindings,
    path: &str,
    x: Chw,
    relu: bool,
    out: &mut Vec<Op>,
) -> Chw {
    let n = |e: &Expr| b.eval(e);
    let pair = |v: &[Expr; 2]| [n(&v[0]), n(&v[1])];
    let Chw([c, h, w]) = x;
    // Layers without a ReLU of their own get it as the next operation.
    let mut fused = false;
    let y = match layer {
        Layer::Conv {
            filters,
            kernel,
            stride,
            same,
            groups,
            bias,
            ..
        } => {
            let (kernel, stride) = (pair(kernel), pair(stride));
            let (pad, oh, ow) = window(h, w, kernel, stride, *same);
            let cout = n(filters);
            out.push(Op::Conv {
                path: path.into(),
                cin: c,
                h,
                w,
                cout,
                kernel,
                stride,
                pad,
                groups: n(groups),
                bias: *bias,
                relu,
            });
            fused = true;
            Chw([cout, oh, ow])
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
            let (kernel, stride) = (pair(kernel), pair(stride));
            let (pad, oh, ow) = window(h, w, kernel, stride, *same);
            out.push(if matches!(layer, Layer::MaxPool { .. }) {
                Op::MaxPool {
                    c,
                    h,
                    w,
                    kernel,
                    stride,
                    pad,
                }
            } else {
                Op::AvgPool {
                    c,
                    h,
                    w,
                    kernel,
                    stride,
                    pad,
                }
            });
            Chw([c, oh, ow])
        }
        Layer::Lrn {
            radius,
            bias,
            alpha,
            beta,
        } => {
            out.push(Op::Lrn {
                c,
                h,
                w,
                radius: *radius,
                bias: bias.0,
                alpha: alpha.0,
                beta: beta.0,
            });
            x
        }
        Layer::Dense {
            inputs,
            units,
            bias,
        } => {
            let units = n(units);
            out.push(Op::Dense {
                path: path.into(),
                inputs: n(inputs),
                units,
                bias: *bias,
                relu,
            });
            fused = true;
            Chw([units, 1, 1])
        }
        Layer::BatchNorm {
            epsilon, momentum, ..
        } => {
            out.push(Op::BatchNorm {
                path: path.into(),
                c,
                h,
                w,
                epsilon: epsilon.0,
                momentum: momentum.0,
            });
            x
        }
        Layer::Dropout { .. } => x,
        Layer::Block { def, args } => {
            let callee = &layout.structs[*def];
            let inner = b.call(callee, args);
            let prefix = format!("{path}.");
            steps(layout, callee, &inner, &prefix, &callee.forward, x, out)
        }
    };
    if relu && !fused {
        out.push(Op::Relu);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuto_has_numbers_and_paths_and_fused_relus() {
        let source =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../zoo/tuto.net"))
                .unwrap();
        let c = crate::check(&source).unwrap();
        let g = graph(&c[0].layout, c[0].model.input.hwc());
        assert_eq!(g.input, [3, 24, 24]);
        let Op::Conv {
            path,
            pad,
            relu,
            cout,
            ..
        } = &g.ops[0]
        else {
            panic!("{:?}", g.ops[0])
        };
        assert_eq!(
            (path.as_str(), *pad, *relu, *cout),
            ("conv1", [2, 2, 2, 2], true, 64)
        );
        // pool1 on 24x24 by 3x3 /2 same: 12x12, the odd padded row after.
        assert!(matches!(
            g.ops[1],
            Op::MaxPool {
                h: 24,
                pad: [0, 1, 0, 1],
                ..
            }
        ));
        assert!(g.ops.iter().any(|o| matches!(o, Op::Flatten)));
        let Op::Dense {
            inputs,
            units,
            relu,
            ..
        } = &g.ops.last().unwrap()
        else {
            panic!()
        };
        assert_eq!((*inputs, *units, *relu), (192, 10, false));
    }

    #[test]
    fn block_calls_expand_with_their_paths_and_branches() {
        let c = crate::check(
            "block fire(s, e) {\n squeeze: conv 1x1 s relu\n concat {\n a: conv 1x1 e relu\n b: conv 3x3 e relu\n }\n}\n\
             model m {\n input 8x8x3\n fire(4, 8)\n fire(8, 16)\n bn: batchnorm relu\n avgpool global\n out: fc 10 nobias\n}\n",
        )
        .unwrap();
        let g = graph(&c[0].layout, c[0].model.input.hwc());
        let json = serde_json::to_string(&g).unwrap();
        assert!(json.contains("\"path\":\"fire2.b\""), "{json}");
        let Op::Join { kind, branches } = &g.ops[3] else {
            panic!("{:?}", g.ops[3])
        };
        assert_eq!((*kind, branches.len()), (Join::Concat, 2));
        assert!(matches!(g.ops[4], Op::BatchNorm { c: 32, .. }));
        assert!(matches!(g.ops[5], Op::Relu));
        assert!(matches!(g.ops[6], Op::GlobalAvgPool { c: 32, h: 8, w: 8 }));
    }
}
