//! The PyTorch back end: one `nn.Module` class per block and model, with
//! netc's parameter names and layouts, so a netc checkpoint loads as it is.
//!
//! It is the speed reference of `netc bench`, the numerical cross-check of the
//! burn back end, and a way to take a model to Python. Sizes inside a block
//! are Python expressions of the block's parameters, as in the burn back end.

use super::expr::{bind, block_args, calls_differ, Expr, INPUTS};
use crate::diag::Result;
use crate::ir::{Channels, Int, Io, Node, Op, Padding, PoolKind, Shape, Typed, Window};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// A symbolic activation shape: (height, width, channels), or a vector.
#[derive(Debug, Clone, PartialEq)]
enum Sym {
    Map([Expr; 3]),
    Vector(Expr),
}

impl Sym {
    fn channels(&self) -> Expr {
        match self {
            Sym::Map([_, _, c]) => c.clone(),
            Sym::Vector(n) => n.clone(),
        }
    }

    fn subst(&self, f: &dyn Fn(&str) -> Expr) -> Sym {
        match self {
            Sym::Map(d) => Sym::Map(d.clone().map(|e| e.subst(f))),
            Sym::Vector(n) => Sym::Vector(n.subst(f)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Class {
    name: String,
    doc: String,
    /// Constructor parameters after `self`.
    params: Vec<String>,
    init: Vec<String>,
    forward: Vec<String>,
}

#[derive(Debug, Clone)]
struct Signature {
    class: Class,
    output: Sym,
}

struct Generator<'a> {
    source: &'a str,
    file: &'a str,
    blocks: Vec<Class>,
    by_name: HashMap<String, Signature>,
}

/// The class being written: its lines and the size variables they read.
#[derive(Default)]
struct Body {
    in_block: bool,
    init: Vec<String>,
    forward: Vec<String>,
    used: BTreeSet<String>,
}

impl Body {
    fn size(&mut self, e: &Expr) -> String {
        e.vars(&mut self.used);
        e.python()
    }

    /// A whole number: the block parameter it came from, or its value.
    fn int_expr(&mut self, i: &Int) -> Expr {
        match &i.param {
            Some(p) if self.in_block => {
                self.used.insert(p.clone());
                Expr::var(p)
            }
            _ => Expr::Lit(i.value),
        }
    }

    /// `(5, 5)`, or `(k, k)` when a block parameter gave the size.
    fn pair(&mut self, v: [u64; 2], param: &Option<String>) -> String {
        match param {
            Some(p) if self.in_block => {
                self.used.insert(p.clone());
                format!("({p}, {p})")
            }
            _ => format!("({}, {})", v[0], v[1]),
        }
    }
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn window_out(x: &Sym, win: &Window) -> Sym {
    let Sym::Map([h, w, c]) = x else {
        unreachable!("shape inference puts windows on maps only")
    };
    let (h, w) = super::expr::window(h, w, win);
    Sym::Map([h, w, c.clone()])
}

impl Generator<'_> {
    /// `# tuto.net:7  conv1: conv 5x5 64 relu`
    fn comment(&self, node: &Node<Io>) -> String {
        let (line, _) = crate::diag::line_col(self.source, node.span.start);
        let text = self.source.lines().nth(line - 1).unwrap_or("").trim();
        format!("# {}:{line}  {text}", self.file)
    }

    fn seq(&mut self, nodes: &[Node<Io>], mut x: Sym, body: &mut Body) -> Result<Sym> {
        for node in nodes {
            body.forward.push(self.comment(node));
            x = self.node(node, x, body)?;
        }
        Ok(x)
    }

    fn node(&mut self, node: &Node<Io>, x: Sym, body: &mut Body) -> Result<Sym> {
        let name = &node.name;
        let comment = self.comment(node);
        let field = |body: &mut Body, init: String| {
            body.init.push(comment.clone());
            body.init.push(format!("self.{name} = {init}"));
        };
        // `x = self.name(x)`, through a ReLU when `relu`.
        let apply = |relu: bool| {
            if relu {
                format!("x = F.relu(self.{name}(x))")
            } else {
                format!("x = self.{name}(x)")
            }
        };
        let out = match &node.op {
            Op::Conv(conv) => {
                let cin = x.channels();
                let (filters, groups) = match &conv.channels {
                    Channels::Filters(f) => (body.int_expr(f), body.int_expr(&conv.groups)),
                    Channels::Depthwise { multiplier } => (
                        Expr::product(vec![cin.clone(), body.int_expr(multiplier)]),
                        cin.clone(),
                    ),
                };
                let init = format!(
                    "Conv2d({}, {}, kernel={}, stride={}, same={}, groups={}, bias={})",
                    body.size(&cin),
                    body.size(&filters),
                    body.pair(conv.window.kernel, &conv.window.kernel_param),
                    body.pair(conv.window.stride, &conv.window.stride_param),
                    python_bool(conv.window.padding == Padding::Same),
                    body.size(&groups),
                    python_bool(conv.bias),
                );
                field(body, init);
                body.forward.push(apply(conv.relu));
                let Sym::Map([h, w, _]) = window_out(&x, &conv.window) else {
                    unreachable!()
                };
                Sym::Map([h, w, filters])
            }
            Op::Pool(pool) => {
                let class = match pool.kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Avg => "AvgPool",
                };
                let init = format!(
                    "{class}(kernel={}, stride={}, same={})",
                    body.pair(pool.window.kernel, &pool.window.kernel_param),
                    body.pair(pool.window.stride, &pool.window.stride_param),
                    python_bool(pool.window.padding == Padding::Same),
                );
                field(body, init);
                body.forward.push(apply(false));
                window_out(&x, &pool.window)
            }
            Op::GlobalAvgPool => {
                body.forward.push("x = x.mean((2, 3), keepdim=True)".into());
                Sym::Map([Expr::Lit(1), Expr::Lit(1), x.channels()])
            }
            Op::Lrn(l) => {
                let init = format!(
                    "Lrn(radius={}, bias={:?}, alpha={:?}, beta={:?})",
                    l.radius, l.bias, l.alpha, l.beta
                );
                field(body, init);
                body.forward.push(apply(false));
                x
            }
            Op::Fc(fc) => {
                let features = match &x {
                    Sym::Map([h, w, c]) => {
                        body.forward.push("x = x.flatten(1)".into());
                        Expr::product(vec![c.clone(), h.clone(), w.clone()])
                    }
                    Sym::Vector(n) => n.clone(),
                };
                let units = body.int_expr(&fc.units);
                let init = format!(
                    "Dense({}, {}, bias={})",
                    body.size(&features),
                    body.size(&units),
                    python_bool(fc.bias)
                );
                field(body, init);
                body.forward.push(apply(fc.relu));
                Sym::Vector(units)
            }
            Op::Dropout { rate } => {
                field(body, format!("nn.Dropout({rate:?})"));
                body.forward.push(apply(false));
                x
            }
            Op::BatchNorm(bn) => {
                let init = format!(
                    "BatchNorm({}, epsilon={:?}, momentum={:?})",
                    body.size(&x.channels()),
                    bn.epsilon,
                    bn.momentum
                );
                field(body, init);
                body.forward.push(apply(bn.relu));
                x
            }
            Op::Relu => {
                body.forward.push("x = F.relu(x)".into());
                x
            }
            Op::Identity => x,
            Op::Concat(branches) | Op::Add(branches) => {
                body.forward.push(format!("{name}_in = x"));
                let mut outs = Vec::new();
                let mut vars = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        body.forward.push(format!("x = {name}_in"));
                    }
                    outs.push(self.seq(branch, x.clone(), body)?);
                    let var = format!("{name}_{}", i + 1);
                    body.forward.push(format!("{var} = x"));
                    vars.push(var);
                }
                if matches!(node.op, Op::Concat(_)) {
                    body.forward
                        .push(format!("x = torch.cat([{}], 1)", vars.join(", ")));
                    let c = Expr::sum(outs.iter().map(Sym::channels).collect());
                    match &outs[0] {
                        Sym::Map([h, w, _]) => Sym::Map([h.clone(), w.clone(), c]),
                        Sym::Vector(_) => Sym::Vector(c),
                    }
                } else {
                    body.forward.push(format!("x = {}", vars.join(" + ")));
                    outs.swap_remove(0)
                }
            }
            Op::Block(call) => {
                let sig = self.block(node)?;
                let in_block = body.in_block;
                let input = match &x {
                    Sym::Map(d) => d.clone(),
                    Sym::Vector(n) => [Expr::Lit(1), Expr::Lit(1), n.clone()],
                };
                let bind = |v: &str| bind(v, input.clone(), call, in_block);
                let args: Vec<String> = sig
                    .class
                    .params
                    .iter()
                    .map(|p| format!("{p}={}", body.size(&bind(p))))
                    .collect();
                field(body, format!("{}({})", sig.class.name, args.join(", ")));
                body.forward.push(apply(false));
                sig.output.subst(&bind)
            }
        };
        Ok(out)
    }

    /// The class of the block `node` calls, written on its first call.
    fn block(&mut self, node: &Node<Io>) -> Result<Signature> {
        let Op::Block(call) = &node.op else {
            unreachable!("only called on block calls")
        };
        let mut body = Body {
            in_block: true,
            ..Body::default()
        };
        let input = match node.ty.input {
            Shape::Map { .. } => Sym::Map(INPUTS.map(Expr::var)),
            Shape::Vector(_) => Sym::Vector(Expr::var(INPUTS[2])),
        };
        let output = self.seq(&call.body, input, &mut body)?;
        let params = block_args(&body.used, &call.params);
        let class = Class {
            name: super::burn::type_name(&call.block),
            doc: format!("Block `{}` from {}.", call.block, self.file),
            params,
            init: body.init,
            forward: body.forward,
        };
        if let Some(known) = self.by_name.get(&call.block) {
            if known.class != class || known.output != output {
                return Err(calls_differ(node.span, &call.block, "class"));
            }
            return Ok(known.clone());
        }
        let sig = Signature { class, output };
        self.by_name.insert(call.block.clone(), sig.clone());
        self.blocks.push(sig.class.clone());
        Ok(sig)
    }
}

/// The generated Python module of a model: helper layers, one class per
/// block, the model's class, and a loader for netc's weight files.
pub fn module_py(model: &Typed, source: &str, file: &str) -> Result<String> {
    let mut gen = Generator {
        source,
        file,
        blocks: Vec::new(),
        by_name: HashMap::new(),
    };
    let mut body = Body::default();
    let input = match model.input {
        Shape::Map { h, w, c } => Sym::Map([h, w, c].map(Expr::Lit)),
        Shape::Vector(n) => Sym::Vector(Expr::Lit(n)),
    };
    if let Sym::Map(_) = gen.seq(&model.body, input, &mut body)? {
        body.forward.push("x = x.flatten(1)".into());
    }
    let me = Class {
        name: super::burn::type_name(&model.name),
        doc: format!("Model `{}` from {}.", model.name, file),
        params: Vec::new(),
        init: body.init,
        forward: body.forward,
    };
    let mut classes = gen.blocks;
    classes.push(me);
    let [h, w, c] = model.input.hwc();
    let mut ctx = tera::Context::new();
    ctx.insert("file", file);
    ctx.insert("model", &model.name);
    ctx.insert("classes", &classes);
    ctx.insert("input", &[c, h, w]);
    ctx.insert("classes_out", &model.settings.classes);
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "module.py",
        include_str!("../../templates/pytorch/module.py.tera"),
    )
    .expect("the built-in template parses");
    tera.autoescape_on(vec![]);
    Ok(tera
        .render("module.py", &ctx)
        .expect("the built-in template renders"))
}
