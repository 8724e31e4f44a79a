//! The layout of a model's generated code, computed once for every back end.
//!
//! After shape inference, this pass decides what each target prints: one
//! struct (or class) for the model and one per block variant, with its
//! constructor parameters, its fields as a typed [`Field`], symbolic sizes
//! ([`Expr`]), and its `forward` as a tree of [`Step`]s. The symbolic shape
//! walk exists here only; the burn and PyTorch back ends render the layout.
//!
//! Inside a block, sizes are expressions of the block's parameters and
//! input shape, so one struct serves every call. Calls whose code would
//! still differ (a parameter that changes a size the code spells out) get
//! one struct per variant, so every program that `check` accepts builds.

use super::expr::{self, Expr, Var};
use crate::diag::{Result, Span};
use crate::ir::{BlockCall, Channels, Int, Io, Node, Op, Padding, PoolKind, Shape, Typed};
use std::collections::BTreeSet;

/// A symbolic activation shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Sym {
    Map { h: Expr, w: Expr, c: Expr },
    Vector(Expr),
}

impl Sym {
    fn channels(&self) -> Expr {
        match self {
            Sym::Map { c, .. } => c.clone(),
            Sym::Vector(n) => n.clone(),
        }
    }

    /// Height, width and channels; a vector is a 1x1 map.
    fn hwc(&self) -> [Expr; 3] {
        match self {
            Sym::Map { h, w, c } => [h.clone(), w.clone(), c.clone()],
            Sym::Vector(n) => [Expr::Lit(1), Expr::Lit(1), n.clone()],
        }
    }

    fn literal(shape: Shape) -> Sym {
        match shape {
            Shape::Map { h, w, c } => Sym::Map {
                h: Expr::Lit(h),
                w: Expr::Lit(w),
                c: Expr::Lit(c),
            },
            Shape::Vector(n) => Sym::Vector(Expr::Lit(n)),
        }
    }

    fn subst(&self, f: &dyn Fn(&Var) -> Expr) -> Sym {
        match self {
            Sym::Map { h, w, c } => Sym::Map {
                h: h.subst(f),
                w: w.subst(f),
                c: c.subst(f),
            },
            Sym::Vector(n) => Sym::Vector(n.subst(f)),
        }
    }

    fn is_map(&self) -> bool {
        matches!(self, Sym::Map { .. })
    }
}

/// A layer a struct holds, with its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    Conv {
        inputs: Expr,
        filters: Expr,
        kernel: [Expr; 2],
        stride: [Expr; 2],
        same: bool,
        groups: Expr,
        bias: bool,
    },
    MaxPool {
        kernel: [Expr; 2],
        stride: [Expr; 2],
        same: bool,
    },
    AvgPool {
        kernel: [Expr; 2],
        stride: [Expr; 2],
        same: bool,
    },
    Lrn {
        radius: u64,
        bias: Real,
        alpha: Real,
        beta: Real,
    },
    Dense {
        inputs: Expr,
        units: Expr,
        bias: bool,
    },
    BatchNorm {
        channels: Expr,
        epsilon: Real,
        momentum: Real,
    },
    Dropout {
        rate: Real,
    },
    /// An instance of another generated struct (`layout.structs[def]`),
    /// with the values of its constructor parameters.
    Block {
        def: usize,
        args: Vec<Expr>,
    },
}

/// A real number, compared by its bits so that layouts can be compared.
#[derive(Debug, Clone, Copy)]
pub struct Real(pub f64);

impl PartialEq for Real {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Real {}

/// A field of a generated struct: the layer labelled `label` in the `.net`
/// file, at `span`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: String,
    pub span: Span,
    pub layer: Layer,
}

/// One step of `forward`, reading the activation `x` and giving the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The `.net` statement it comes from; none for the model's final flatten.
    pub span: Option<Span>,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// `fields[field]` applied to `x`, then a ReLU when `relu`.
    Apply {
        field: usize,
        relu: bool,
    },
    Relu,
    /// Mean over height and width, keeping a 1x1 map.
    GlobalAvgPool,
    /// A feature map to a vector.
    Flatten,
    /// A layer that leaves `x` as it is.
    Identity,
    /// A convolution (`fields[conv]`, then a ReLU when `relu`) and the max
    /// pooling (`fields[pool]`, from the statement at `pool_span`) that
    /// alone reads its output, as one step: made by `proc::fuse` for back
    /// ends with a kernel that does both in one pass; `layout` never makes it.
    ConvPool {
        conv: usize,
        relu: bool,
        pool: usize,
        pool_span: Option<Span>,
    },
    /// A convolution (`fields[conv]`, then a ReLU when `relu`) pooled
    /// through the max pooling that the struct's caller passes in: the last
    /// step of a block's `pooled` forward (`Struct::pooled`), made by
    /// `proc::fuse`.
    ConvPoolArg {
        conv: usize,
        relu: bool,
    },
    /// A block (`fields[block]`, whose struct ends with a convolution) and
    /// the max pooling (`fields[pool]`, from the statement at `pool_span`)
    /// that alone reads its output, as one step: the block's `pooled`
    /// forward, given the pooling. Made by `proc::fuse`, as `ConvPool`.
    BlockPool {
        block: usize,
        pool: usize,
        pool_span: Option<Span>,
    },
    /// A `Join` of feature maps along channels (`Concat`, `label`) whose
    /// every branch is one convolution: each step of `convs` applies one (a
    /// `Conv` field, then a ReLU when its `relu` says so) and names its
    /// statement. The convolutions write their channels of the joined
    /// output. Made by `proc::fuse` for back ends with such a kernel;
    /// `layout` never makes it.
    ConvConcat {
        label: String,
        convs: Vec<Step>,
    },
    /// A `ConvConcat` and the max pooling that alone reads its joined
    /// output, as one step: `pool` is that pooling's field and the
    /// statement it comes from, when it follows in the same sequence; None
    /// for the pooling the struct's caller passes in (the last step of a
    /// block's `pooled` forward, as `ConvPoolArg`). Made by `proc::fuse`.
    ConvConcatPool {
        label: String,
        convs: Vec<Step>,
        pool: Option<(usize, Option<Span>)>,
    },
    /// Every branch reads `x`; outputs are joined along channels (`Concat`)
    /// or summed. `maps` when the outputs are feature maps, not vectors.
    Join {
        join: JoinKind,
        label: String,
        maps: bool,
        branches: Vec<Vec<Step>>,
    },
}

impl StepKind {
    /// The steps a joined step (`ConvPool`, `BlockPool`, `ConvConcat`,
    /// `ConvConcatPool` with its pooling) was made of, as `layout` made
    /// them, for back ends that run them apart.
    pub fn unfused(&self) -> Option<Vec<StepKind>> {
        let pooled = |pool| StepKind::Apply {
            field: pool,
            relu: false,
        };
        let concat = |label: &String, convs: &Vec<Step>| StepKind::Join {
            join: JoinKind::Concat,
            label: label.clone(),
            maps: true,
            branches: convs.iter().map(|c| vec![c.clone()]).collect(),
        };
        match self {
            &StepKind::ConvPool {
                conv, relu, pool, ..
            } => Some(vec![StepKind::Apply { field: conv, relu }, pooled(pool)]),
            &StepKind::BlockPool { block, pool, .. } => Some(vec![
                StepKind::Apply {
                    field: block,
                    relu: false,
                },
                pooled(pool),
            ]),
            StepKind::ConvConcat { label, convs } => Some(vec![concat(label, convs)]),
            StepKind::ConvConcatPool {
                label,
                convs,
                pool: Some((pool, _)),
            } => Some(vec![concat(label, convs), pooled(*pool)]),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Concat,
    Add,
}

/// A generated struct (Rust) or class (Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Struct {
    /// The `.net` name of the block or model.
    pub label: String,
    pub is_model: bool,
    /// Constructor parameters: input sizes, then block parameters, as used.
    pub params: Vec<Var>,
    pub fields: Vec<Field>,
    pub forward: Vec<Step>,
    /// `forward` with its last step, a convolution or a concatenation of
    /// convolutions, pooled through a max pooling that the caller passes in
    /// (`ConvPoolArg`, `ConvConcatPool` without a field): for callers whose
    /// next step pools the block's output (`BlockPool`). Made by
    /// `proc::fuse`; `layout` leaves it None.
    pub pooled: Option<Vec<Step>>,
    /// Whether `forward` takes and gives feature maps (rank 4) or vectors.
    pub input_map: bool,
    pub output_map: bool,
}

/// Everything the back ends print for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Block structs first, in order of first use; the model's last.
    pub structs: Vec<Struct>,
    /// The `.net` paths of the weights under weight decay, label by label
    /// (`["fire2", "squeeze"]` for `fire2.squeeze.weight`).
    pub decay: Vec<Vec<String>>,
    /// The `.net` paths of every dense (`fc`) layer, label by label: the
    /// PyTorch back end holds their weights as nn.Linear does, the
    /// transpose of netc's files.
    pub dense: Vec<Vec<String>>,
    /// How every weight starts (`train init=`).
    pub init: crate::ir::Init,
}

impl Layout {
    pub fn model(&self) -> &Struct {
        self.structs.last().expect("the model's struct")
    }

    /// Every layer in every struct.
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.structs
            .iter()
            .flat_map(|s| s.fields.iter().map(|f| &f.layer))
    }

    /// Every step in every struct, branches and `pooled` forwards included.
    pub fn steps(&self) -> Vec<(&Struct, &Step)> {
        fn walk<'a>(s: &'a Struct, steps: &'a [Step], out: &mut Vec<(&'a Struct, &'a Step)>) {
            for step in steps {
                out.push((s, step));
                if let StepKind::Join { branches, .. } = &step.kind {
                    for b in branches {
                        walk(s, b, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for s in &self.structs {
            walk(s, &s.forward, &mut out);
            if let Some(pooled) = &s.pooled {
                walk(s, pooled, &mut out);
            }
        }
        out
    }

    /// The variant number of each struct among the structs of its block (0
    /// for the first), for the namer.
    pub fn variant(&self, index: usize) -> usize {
        let label = &self.structs[index].label;
        self.structs[..index]
            .iter()
            .filter(|s| !s.is_model && &s.label == label)
            .count()
    }
}

/// Computes the layout of a typed model. Every refusal of code generation
/// happens here, so `netc check` runs it too.
pub fn layout(model: &Typed) -> Result<Layout> {
    let mut pass = Pass {
        structs: Vec::new(),
    };
    let mut scope = Scope::new(false);
    let input = Sym::literal(model.input);
    let output = pass.seq(&model.body, input, &mut scope)?;
    if output.is_map() {
        scope.forward.push(Step {
            span: None,
            kind: StepKind::Flatten,
        });
    }
    pass.structs.push(Struct {
        label: model.name.clone(),
        is_model: true,
        params: Vec::new(),
        fields: scope.fields,
        forward: scope.forward,
        pooled: None,
        input_map: true,
        output_map: false,
    });
    let mut decay = Vec::new();
    paths(&model.body, &mut Vec::new(), &mut decay, &|op| match op {
        Op::Conv(c) => c.decay,
        Op::Fc(f) => f.decay,
        _ => false,
    });
    let mut dense = Vec::new();
    paths(&model.body, &mut Vec::new(), &mut dense, &|op| {
        matches!(op, Op::Fc(_))
    });
    Ok(Layout {
        structs: pass.structs,
        decay,
        dense,
        init: model.settings.init,
    })
}

struct Pass {
    structs: Vec<Struct>,
}

/// The struct being laid out.
struct Scope {
    /// In a block, sizes from parameters are the parameters.
    in_block: bool,
    fields: Vec<Field>,
    forward: Vec<Step>,
}

impl Scope {
    fn new(in_block: bool) -> Self {
        Scope {
            in_block,
            fields: Vec::new(),
            forward: Vec::new(),
        }
    }

    /// A whole number: the block parameter it came from, or its value.
    fn int(&self, i: &Int) -> Expr {
        match &i.param {
            Some(p) if self.in_block => Expr::param(p),
            _ => Expr::Lit(i.value),
        }
    }

    /// A square kernel or stride: from a block parameter, or its values.
    fn pair(&self, v: [u64; 2], param: &Option<String>) -> [Expr; 2] {
        match param {
            Some(p) if self.in_block => [Expr::param(p), Expr::param(p)],
            _ => v.map(Expr::Lit),
        }
    }

    fn field(&mut self, node: &Node<Io>, layer: Layer) -> usize {
        self.fields.push(Field {
            label: node.name.clone(),
            span: node.span,
            layer,
        });
        self.fields.len() - 1
    }
}

fn step(node: &Node<Io>, kind: StepKind) -> Step {
    Step {
        span: Some(node.span),
        kind,
    }
}

impl Pass {
    /// Lays out `nodes` into `scope`'s fields and the steps returned.
    fn seq(&mut self, nodes: &[Node<Io>], mut x: Sym, scope: &mut Scope) -> Result<Sym> {
        for node in nodes {
            x = self.node(node, x, scope)?;
        }
        Ok(x)
    }

    fn node(&mut self, node: &Node<Io>, x: Sym, scope: &mut Scope) -> Result<Sym> {
        let apply = |field: usize, relu: bool| step(node, StepKind::Apply { field, relu });
        let out = match &node.op {
            Op::Conv(conv) => {
                let inputs = x.channels();
                let (filters, groups) = match &conv.channels {
                    Channels::Filters(f) => (scope.int(f), scope.int(&conv.groups)),
                    Channels::Depthwise { multiplier } => (
                        Expr::product(vec![inputs.clone(), scope.int(multiplier)]),
                        inputs.clone(),
                    ),
                };
                let win = &conv.window;
                let layer = Layer::Conv {
                    inputs,
                    filters: filters.clone(),
                    kernel: scope.pair(win.kernel, &win.kernel_param),
                    stride: scope.pair(win.stride, &win.stride_param),
                    same: win.padding == Padding::Same,
                    groups,
                    bias: conv.bias,
                };
                let f = scope.field(node, layer);
                scope.forward.push(apply(f, conv.relu));
                let Sym::Map { h, w, .. } = &x else {
                    unreachable!("shape inference puts windows on maps only")
                };
                let (h, w) = expr::window(h, w, win);
                Sym::Map { h, w, c: filters }
            }
            Op::Pool(pool) => {
                let win = &pool.window;
                let kernel = scope.pair(win.kernel, &win.kernel_param);
                let stride = scope.pair(win.stride, &win.stride_param);
                let same = win.padding == Padding::Same;
                let layer = match pool.kind {
                    PoolKind::Max => Layer::MaxPool {
                        kernel,
                        stride,
                        same,
                    },
                    PoolKind::Avg => Layer::AvgPool {
                        kernel,
                        stride,
                        same,
                    },
                };
                let f = scope.field(node, layer);
                scope.forward.push(apply(f, false));
                let Sym::Map { h, w, c } = &x else {
                    unreachable!("shape inference puts windows on maps only")
                };
                let (h, w) = expr::window(h, w, win);
                Sym::Map { h, w, c: c.clone() }
            }
            Op::GlobalAvgPool => {
                scope.forward.push(step(node, StepKind::GlobalAvgPool));
                Sym::Map {
                    h: Expr::Lit(1),
                    w: Expr::Lit(1),
                    c: x.channels(),
                }
            }
            Op::Lrn(l) => {
                let layer = Layer::Lrn {
                    radius: l.radius,
                    bias: Real(l.bias),
                    alpha: Real(l.alpha),
                    beta: Real(l.beta),
                };
                let f = scope.field(node, layer);
                scope.forward.push(apply(f, false));
                x
            }
            Op::Fc(fc) => {
                let inputs = match &x {
                    Sym::Map { h, w, c } => {
                        scope.forward.push(step(node, StepKind::Flatten));
                        Expr::product(vec![c.clone(), h.clone(), w.clone()])
                    }
                    Sym::Vector(n) => n.clone(),
                };
                let units = scope.int(&fc.units);
                let layer = Layer::Dense {
                    inputs,
                    units: units.clone(),
                    bias: fc.bias,
                };
                let f = scope.field(node, layer);
                scope.forward.push(apply(f, fc.relu));
                Sym::Vector(units)
            }
            Op::Dropout { rate } => {
                let f = scope.field(node, Layer::Dropout { rate: Real(*rate) });
                scope.forward.push(apply(f, false));
                x
            }
            Op::BatchNorm(bn) => {
                let layer = Layer::BatchNorm {
                    channels: x.channels(),
                    epsilon: Real(bn.epsilon),
                    momentum: Real(bn.momentum),
                };
                let f = scope.field(node, layer);
                scope.forward.push(apply(f, bn.relu));
                x
            }
            Op::Relu => {
                scope.forward.push(step(node, StepKind::Relu));
                x
            }
            Op::Identity => {
                scope.forward.push(step(node, StepKind::Identity));
                x
            }
            Op::Concat(branches) | Op::Add(branches) => {
                let mut outs = Vec::new();
                let mut steps = Vec::new();
                for branch in branches {
                    let outer = std::mem::take(&mut scope.forward);
                    outs.push(self.seq(branch, x.clone(), scope)?);
                    steps.push(std::mem::replace(&mut scope.forward, outer));
                }
                let join = match node.op {
                    Op::Concat(_) => JoinKind::Concat,
                    _ => JoinKind::Add,
                };
                let first = outs.first().cloned().unwrap_or(x);
                scope.forward.push(step(
                    node,
                    StepKind::Join {
                        join,
                        label: node.name.clone(),
                        maps: first.is_map(),
                        branches: steps,
                    },
                ));
                match join {
                    JoinKind::Add => first,
                    JoinKind::Concat => {
                        let c = Expr::sum(outs.iter().map(Sym::channels).collect());
                        match first {
                            Sym::Map { h, w, .. } => Sym::Map { h, w, c },
                            Sym::Vector(_) => Sym::Vector(c),
                        }
                    }
                }
            }
            Op::Block(call) => {
                let (def, output) = self.block(call, &x)?;
                // A variable of the block's code, as this scope writes it.
                let input = x.hwc();
                let in_block = scope.in_block;
                let bind = |v: &Var| bind(v, &input, call, in_block);
                let args = self.structs[def].params.iter().map(bind).collect();
                let f = scope.field(node, Layer::Block { def, args });
                scope.forward.push(apply(f, false));
                output.subst(&bind)
            }
        };
        Ok(out)
    }

    /// The struct of a block call (an existing one when its code is the
    /// same) and the call's output in the block's variables.
    fn block(&mut self, call: &BlockCall<Io>, x: &Sym) -> Result<(usize, Sym)> {
        let mut scope = Scope::new(true);
        let input = match x {
            Sym::Map { .. } => Sym::Map {
                h: Expr::input(0),
                w: Expr::input(1),
                c: Expr::input(2),
            },
            Sym::Vector(_) => Sym::Vector(Expr::input(2)),
        };
        let output = self.seq(&call.body, input.clone(), &mut scope)?;
        let mut used = BTreeSet::new();
        for f in &scope.fields {
            layer_vars(&f.layer, &mut used);
        }
        // Input sizes first, then parameters in declaration order.
        let params = (0..3)
            .map(Var::Input)
            .chain(call.params.iter().map(|p| Var::Param(p.clone())))
            .filter(|v| used.contains(v))
            .collect();
        let me = Struct {
            label: call.block.clone(),
            is_model: false,
            params,
            fields: scope.fields,
            forward: scope.forward,
            pooled: None,
            input_map: input.is_map(),
            output_map: output.is_map(),
        };
        let def = match self.structs.iter().position(|s| *s == me) {
            Some(i) => i,
            None => {
                self.structs.push(me);
                self.structs.len() - 1
            }
        };
        Ok((def, output))
    }
}

/// The variables a layer's sizes read.
fn layer_vars(layer: &Layer, out: &mut BTreeSet<Var>) {
    let exprs: Vec<&Expr> = match layer {
        Layer::Conv {
            inputs,
            filters,
            kernel,
            stride,
            groups,
            ..
        } => [inputs, filters, groups]
            .into_iter()
            .chain(kernel)
            .chain(stride)
            .collect(),
        Layer::MaxPool { kernel, stride, .. } | Layer::AvgPool { kernel, stride, .. } => {
            kernel.iter().chain(stride).collect()
        }
        Layer::Dense { inputs, units, .. } => vec![inputs, units],
        Layer::BatchNorm { channels, .. } => vec![channels],
        Layer::Block { args, .. } => args.iter().collect(),
        Layer::Lrn { .. } | Layer::Dropout { .. } => Vec::new(),
    };
    for e in exprs {
        e.vars(out);
    }
}

/// A variable of a block's code as its caller writes it: an input size
/// (`input` is the caller's height, width, channels) or the argument given
/// for a block parameter (the caller's own parameter, in a block).
fn bind<T>(var: &Var, input: &[Expr; 3], call: &BlockCall<T>, in_block: bool) -> Expr {
    match var {
        Var::Input(d) => input[*d].clone(),
        Var::Param(p) => {
            let i = call
                .params
                .iter()
                .position(|q| q == p)
                .expect("a parameter of the block");
            match &call.args[i].param {
                Some(q) if in_block => Expr::param(q),
                _ => Expr::Lit(call.args[i].value),
            }
        }
    }
}

/// The label paths of the layers that `pick` chooses, blocks and branches
/// included, in source order.
fn paths(
    nodes: &[Node<Io>],
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    pick: &dyn Fn(&Op<Io>) -> bool,
) {
    for node in nodes {
        match &node.op {
            Op::Concat(branches) | Op::Add(branches) => {
                for b in branches {
                    paths(b, path, out, pick);
                }
            }
            Op::Block(call) => {
                path.push(node.name.clone());
                paths(&call.body, path, out, pick);
                path.pop();
            }
            op if pick(op) => out.push([&path[..], std::slice::from_ref(&node.name)].concat()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of(source: &str) -> Layout {
        let c = crate::check(source).unwrap_or_else(|d| panic!("{}", d.message));
        layout(&c[0].model).unwrap()
    }

    #[test]
    fn one_struct_serves_calls_that_differ_only_in_sizes() {
        let l = layout_of(
            "block fire(s, e) {\n squeeze: conv 1x1 s relu\n concat {\n a: conv 1x1 e\n b: conv 3x3 e\n }\n}\n\
             model m {\n input 8x8x3\n fire(4, 8)\n fire(8, 16)\n avgpool global\n out: fc 10\n}\n",
        );
        assert_eq!(l.structs.len(), 2);
        let fire = &l.structs[0];
        assert_eq!(
            fire.params,
            [
                Var::Input(2),
                Var::Param("s".into()),
                Var::Param("e".into())
            ]
        );
        let Layer::Block { args, .. } = &l.model().fields[1].layer else {
            panic!()
        };
        // The second call reads the first call's 16 output channels.
        assert_eq!(args, &[Expr::Lit(16), Expr::Lit(8), Expr::Lit(16)]);
    }

    #[test]
    fn calls_whose_code_differs_get_a_struct_each() {
        // The kernel comes from `k`, and the fc's inputs depend on it.
        let l = layout_of(
            "block b(k) {\n c: conv kernel=k 8 valid\n f: fc 4\n}\n\
             model m {\n input 12x12x3\n concat {\n b(3)\n b(5)\n b(3)\n }\n out: fc 10\n}\n",
        );
        let labels: Vec<&str> = l.structs.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["b", "b", "m"]);
        assert_eq!((l.variant(0), l.variant(1)), (0, 1));
        let defs: Vec<usize> = l
            .model()
            .fields
            .iter()
            .map(|f| match f.layer {
                Layer::Block { def, .. } => def,
                _ => usize::MAX,
            })
            .collect();
        assert_eq!(defs[..3], [0, 1, 0]);
    }

    #[test]
    fn decayed_weights_are_listed_by_path() {
        let l = layout_of(
            "block b() {\n c: conv 3x3 8 decay\n}\n\
             model m {\n input 8x8x3\n b()\n out: fc 10 decay\n}\n",
        );
        assert_eq!(l.decay, [vec!["b1", "c"], vec!["out"]]);
    }
}
