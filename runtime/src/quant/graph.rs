//! The model's concrete graph as the compiler computed it
//! (`compiler/src/proc/graph.rs`, which writes these same types as JSON into
//! every generated program's `Spec::graph`).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Graph {
    /// Channels, height, width of the input.
    pub input: [u64; 3],
    pub ops: Vec<Op>,
}

impl Graph {
    /// Every operation, those in a join's branches before the join: the
    /// order in which they run and are numbered (from 1; 0 is the input).
    pub fn all(&self) -> Vec<&Op> {
        fn walk<'g>(ops: &'g [Op], out: &mut Vec<&'g Op>) {
            for op in ops {
                if let Op::Join { branches, .. } = op {
                    branches.iter().for_each(|b| walk(b, out));
                }
                out.push(op);
            }
        }
        let mut out = Vec::new();
        walk(&self.ops, &mut out);
        out
    }
}

/// One operation on the activation. Maps are C x H x W; `h` and `w` are the
/// input's; pads are (top, bottom, left, right).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    Concat,
    Add,
}
