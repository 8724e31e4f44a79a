//! Parameters, multiply-accumulates and the seed's "operations" for every layer.
//!
//! MACs follow fvcore and ptflops (one per weight use in a convolution or
//! dense layer). Operations follow the seed's own code: a multiply and an add
//! per weight use, one per bias, two per ReLU output; LRN costs
//! (1 + 1 + 1 + 2r^2 + 1) per element; pooling, concatenation and dropout cost
//! nothing.

use crate::diag::Span;
use crate::ir::*;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Trainable parameters.
    pub params: u64,
    pub macs: u64,
    pub ops: u64,
    /// Bytes of f32 weights, running statistics of batch norm included.
    pub weight_bytes: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.params = self.params.saturating_add(other.params);
        self.macs = self.macs.saturating_add(other.macs);
        self.ops = self.ops.saturating_add(other.ops);
        self.weight_bytes = self.weight_bytes.saturating_add(other.weight_bytes);
    }
}

/// One row of a model summary: a layer, or a structural node (block call,
/// concat, add) whose counts are the sum of its children plus its own.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Dotted path, such as `fire2.e3x3`.
    pub name: String,
    /// Nesting depth for indentation: 0 at the model's top level.
    pub depth: usize,
    pub op: String,
    pub kind: RowKind,
    pub span: Span,
    pub output: Shape,
    /// Output elements.
    pub activations: u64,
    #[serde(flatten)]
    pub counts: Counts,
    /// The part of `counts` this row does itself (equal to `counts` for a layer).
    #[serde(skip)]
    pub own: Counts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    Layer,
    Block,
    Concat,
    Add,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub total: Counts,
    /// Elements of every layer output together: the activations kept for backprop.
    pub activations: u64,
}

pub fn summarize(model: &Typed) -> Summary {
    let mut rows = Vec::new();
    let total = walk(&model.body, "", 0, &mut rows);
    let activations = rows
        .iter()
        .filter(|r| r.kind == RowKind::Layer)
        .fold(0u64, |acc, r| acc.saturating_add(r.activations));
    Summary {
        rows,
        total,
        activations,
    }
}

fn walk(nodes: &[Node<Io>], prefix: &str, depth: usize, rows: &mut Vec<Row>) -> Counts {
    let mut total = Counts::default();
    for node in nodes {
        let path = node.path(prefix);
        let at = rows.len();
        let (kind, children) = match &node.op {
            Op::Block(call) => (RowKind::Block, walk(&call.body, &path, depth + 1, rows)),
            Op::Concat(bs) | Op::Add(bs) => {
                let mut sum = Counts::default();
                for b in bs {
                    sum.add(walk(b, prefix, depth + 1, rows));
                }
                let kind = if matches!(node.op, Op::Concat(_)) {
                    RowKind::Concat
                } else {
                    RowKind::Add
                };
                (kind, sum)
            }
            _ => (RowKind::Layer, Counts::default()),
        };
        let own = layer(node);
        let mut counts = children;
        counts.add(own);
        total.add(counts);
        rows.insert(
            at,
            Row {
                name: path,
                depth,
                op: describe(node),
                kind,
                span: node.span,
                output: node.ty.output,
                activations: node.ty.output.elements(),
                counts,
                own,
            },
        );
    }
    total
}

/// The counts of one node alone, without its children.
pub fn layer(node: &Node<Io>) -> Counts {
    let Io { input, output } = node.ty;
    let out = output.elements();
    let m = |a: u64, b: u64| a.saturating_mul(b);
    let (params, buffers, macs, ops) = match &node.op {
        Op::Conv(conv) => {
            let c = input.channels();
            let per_group = c / conv.group_count(c).max(1);
            let [kh, kw] = conv.window.kernel;
            let taps = m(m(kh, kw), per_group);
            let bias = u64::from(conv.bias);
            let relu = if conv.relu { m(2, out) } else { 0 };
            (
                m(taps + bias, output.channels()),
                0,
                m(taps, out),
                m(m(2, taps) + bias, out).saturating_add(relu),
            )
        }
        Op::Fc(fc) => {
            let d = input.elements();
            let n = fc.units.value;
            let bias = u64::from(fc.bias);
            let relu = if fc.relu { m(2, n) } else { 0 };
            (
                m(d + bias, n),
                0,
                m(d, n),
                m(m(2, d) + bias, n).saturating_add(relu),
            )
        }
        Op::Lrn(lrn) => (
            0,
            0,
            0,
            m(4 + m(2, m(lrn.radius, lrn.radius)), input.elements()),
        ),
        Op::BatchNorm(bn) => {
            let c = input.channels();
            let relu = if bn.relu { m(2, out) } else { 0 };
            (m(2, c), m(2, c), out, m(2, out).saturating_add(relu))
        }
        Op::Relu => (0, 0, 0, m(2, out)),
        Op::Add(branches) => (0, 0, 0, m(branches.len().saturating_sub(1) as u64, out)),
        _ => (0, 0, 0, 0),
    };
    Counts {
        params,
        macs,
        ops,
        weight_bytes: m(4, params.saturating_add(buffers)),
    }
}

/// A short description of what a node does, for tables.
pub fn describe(node: &Node<Io>) -> String {
    let act = |relu: bool| if relu { " relu" } else { "" };
    let win = |w: &Window| {
        let pad = match w.padding {
            Padding::Same => "same",
            Padding::Valid => "valid",
        };
        if w.stride[0] == w.stride[1] {
            format!("{}x{}/{} {pad}", w.kernel[0], w.kernel[1], w.stride[0])
        } else {
            format!(
                "{}x{}/{}x{} {pad}",
                w.kernel[0], w.kernel[1], w.stride[0], w.stride[1]
            )
        }
    };
    match &node.op {
        Op::Conv(c) => {
            let groups = c.group_count(node.ty.input.channels());
            let kind = match c.channels {
                Channels::Depthwise { .. } => "dwconv".to_string(),
                Channels::Filters(_) if groups > 1 => format!("conv g{groups}"),
                Channels::Filters(_) => "conv".to_string(),
            };
            format!("{kind} {}{}", win(&c.window), act(c.relu))
        }
        Op::Pool(p) => {
            let kind = match p.kind {
                PoolKind::Max => "maxpool",
                PoolKind::Avg => "avgpool",
            };
            format!("{kind} {}", win(&p.window))
        }
        Op::GlobalAvgPool => "avgpool global".into(),
        Op::Lrn(l) => format!("lrn r={}", l.radius),
        Op::Fc(f) => format!("fc{}", act(f.relu)),
        Op::Dropout { rate } => format!("dropout {rate}"),
        Op::BatchNorm(b) => format!("batchnorm{}", act(b.relu)),
        Op::Relu => "relu".into(),
        Op::Identity => "identity".into(),
        Op::Concat(b) => format!("concat x{}", b.len()),
        Op::Add(b) => format!("add x{}", b.len()),
        Op::Block(call) => {
            let args: Vec<String> = call.args.iter().map(|a| a.value.to_string()).collect();
            format!("{}({})", call.block, args.join(", "))
        }
    }
}
