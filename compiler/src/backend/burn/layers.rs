//! One built-in layer: its field (type and constructor) and its line in `forward`.

use super::{Field, Scope, StructOut, Sym};
use crate::backend::expr::Expr;
use crate::diag::Result;
use crate::ir::{Channels, Int, Io, Node, Op, Padding, PoolKind, Window};
use std::collections::BTreeSet;

/// A whole number: the block parameter it came from, or its value.
pub fn int(i: &Int, in_block: bool) -> Expr {
    match &i.param {
        Some(p) if in_block => Expr::var(p),
        _ => Expr::Lit(i.value),
    }
}

fn window_out(x: &Sym, win: &Window) -> Sym {
    let Sym::Map { h, w, c } = x else {
        unreachable!("shape inference puts windows on maps only")
    };
    let (h, w) = crate::backend::expr::window(h, w, win);
    Sym::Map { h, w, c: c.clone() }
}

fn pair(v: [u64; 2]) -> String {
    format!("[{}, {}]", v[0], v[1])
}

/// A kernel or stride: `[k, k]` when it came from a block parameter.
fn sized(v: [u64; 2], param: &Option<String>, in_block: bool) -> String {
    match param {
        Some(p) if in_block => format!("[{p}, {p}]"),
        _ => pair(v),
    }
}

fn padding(p: Padding) -> &'static str {
    match p {
        Padding::Same => "\n.with_padding(PaddingConfig2d::Same)",
        Padding::Valid => "",
    }
}

fn strides(method: &str, win: &Window, default: [u64; 2], in_block: bool) -> String {
    if win.stride == default && (win.stride_param.is_none() || !in_block) {
        String::new()
    } else {
        format!(
            "\n.{method}({})",
            sized(win.stride, &win.stride_param, in_block)
        )
    }
}

/// The end of a weighted layer's constructor: the seed's initialization,
/// Xavier-normal weights and zero biases (or no bias).
fn initialized(bias: bool) -> String {
    if bias {
        "\n.with_initializer(XAVIER)\n.init(device)\n.zero_bias()".into()
    } else {
        "\n.with_bias(false)\n.with_initializer(XAVIER)\n.init(device)".into()
    }
}

fn used(scope: &mut Scope, exprs: &[&Expr]) {
    for e in exprs {
        e.vars(&mut scope.used);
    }
}

/// Marks the block parameters a window's kernel or stride came from as used.
fn used_window(scope: &mut Scope, win: &Window) {
    if scope.in_block {
        let params = [&win.kernel_param, &win.stride_param];
        scope.used.extend(params.into_iter().flatten().cloned());
    }
}

/// The field and forward line of a leaf layer; returns the shape after it.
pub fn layer(
    node: &Node<Io>,
    x: Sym,
    scope: &mut Scope,
    indent: &str,
) -> Result<(Sym, Vec<String>)> {
    let name = &node.name;
    let call = format!("self.{name}.forward(x)");
    let relu = |e: String, on: bool| if on { format!("relu({e})") } else { e };
    let mut lines = Vec::new();
    let field = |ty: &str, init: String, scope: &mut Scope| {
        scope.fields.push(Field {
            name: name.clone(),
            ty: ty.to_string(),
            comment: String::new(),
            init,
        });
    };
    let out = match &node.op {
        Op::Conv(conv) => {
            let cin = x.channels();
            let filters = match &conv.channels {
                Channels::Filters(f) => int(f, scope.in_block),
                Channels::Depthwise { multiplier } => {
                    Expr::product(vec![cin.clone(), int(multiplier, scope.in_block)])
                }
            };
            let groups = match conv.channels {
                Channels::Filters(_) => int(&conv.groups, scope.in_block),
                Channels::Depthwise { .. } => cin.clone(),
            };
            used(scope, &[&cin, &filters, &groups]);
            let b = scope.in_block;
            used_window(scope, &conv.window);
            let mut init = format!(
                "Conv2dConfig::new([{cin}, {filters}], {}){}{}",
                sized(conv.window.kernel, &conv.window.kernel_param, b),
                strides("with_stride", &conv.window, [1, 1], b),
                padding(conv.window.padding)
            );
            if groups != Expr::Lit(1) {
                init += &format!("\n.with_groups({groups})");
            }
            init += &initialized(conv.bias);
            field("Conv2d<B>", init, scope);
            // netc's kernels, with TensorFlow's padding, rather than Conv2d::forward.
            let f = if conv.relu { "conv_relu" } else { "conv" };
            lines.push(format!("{indent}let x = {f}(&self.{name}, x);"));
            let Sym::Map { h, w, .. } = window_out(&x, &conv.window) else {
                unreachable!()
            };
            Sym::Map { h, w, c: filters }
        }
        Op::Pool(pool) => {
            let b = scope.in_block;
            used_window(scope, &pool.window);
            let k = sized(pool.window.kernel, &pool.window.kernel_param, b);
            let s = sized(pool.window.stride, &pool.window.stride_param, b);
            match (pool.kind, pool.window.padding) {
                (PoolKind::Max, p) => field(
                    "MaxPool",
                    format!(
                        "MaxPool {{ kernel: {k}, stride: {s}, same: {} }}",
                        p == Padding::Same
                    ),
                    scope,
                ),
                (PoolKind::Avg, Padding::Valid) => field(
                    "AvgPool2d",
                    format!(
                        "AvgPool2dConfig::new({k}){}\n.init()",
                        strides("with_strides", &pool.window, pool.window.kernel, b)
                    ),
                    scope,
                ),
                (PoolKind::Avg, Padding::Same) => field(
                    "AvgPoolSame",
                    format!("AvgPoolSame {{ kernel: {k}, stride: {s} }}"),
                    scope,
                ),
            }
            lines.push(format!("{indent}let x = {call};"));
            window_out(&x, &pool.window)
        }
        Op::GlobalAvgPool => {
            lines.push(format!("{indent}let x = x.mean_dim(2).mean_dim(3);"));
            Sym::Map {
                h: Expr::Lit(1),
                w: Expr::Lit(1),
                c: x.channels(),
            }
        }
        Op::Lrn(l) => {
            field(
                "Lrn",
                format!(
                    "Lrn {{ radius: {}, bias: {:?}, alpha: {:?}, beta: {:?} }}",
                    l.radius, l.bias, l.alpha, l.beta
                ),
                scope,
            );
            lines.push(format!("{indent}let x = {call};"));
            x
        }
        Op::Fc(fc) => {
            let features = match &x {
                Sym::Map { h, w, c } => {
                    lines.push(format!("{indent}let x = x.flatten::<2>(1, 3);"));
                    Expr::product(vec![c.clone(), h.clone(), w.clone()])
                }
                Sym::Vector(n) => n.clone(),
            };
            let units = int(&fc.units, scope.in_block);
            used(scope, &[&features, &units]);
            let mut init = format!("LinearConfig::new({features}, {units})");
            init += &initialized(fc.bias);
            field("Linear<B>", init, scope);
            lines.push(format!("{indent}let x = {};", relu(call, fc.relu)));
            Sym::Vector(units)
        }
        Op::Dropout { rate } => {
            field(
                "Dropout",
                format!("DropoutConfig::new({rate:?}).init()"),
                scope,
            );
            lines.push(format!("{indent}let x = {call};"));
            x
        }
        Op::BatchNorm(bn) => {
            let c = x.channels();
            used(scope, &[&c]);
            // TensorFlow keeps `momentum` of the old average; burn takes the new batch's share.
            field(
                "BatchNorm<B>",
                format!(
                    "BatchNormConfig::new({c})\n.with_epsilon({:?})\n.with_momentum({:?})\n.init(device)",
                    bn.epsilon,
                    round(1.0 - bn.momentum)
                ),
                scope,
            );
            lines.push(format!("{indent}let x = {};", relu(call, bn.relu)));
            x
        }
        Op::Relu => {
            lines.push(format!("{indent}let x = relu(x);"));
            x
        }
        Op::Identity => x,
        Op::Concat(_) | Op::Add(_) | Op::Block(_) => unreachable!("handled by the generator"),
    };
    Ok((out, lines))
}

/// 1 - 0.99 without the float noise: 0.01.
fn round(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// The `use` lines the generated structs need.
pub fn imports(structs: &[StructOut]) -> Vec<String> {
    let types: BTreeSet<&str> = structs
        .iter()
        .flat_map(|s| s.code.fields.iter().map(|f| f.ty.as_str()))
        .collect();
    let forward: String = structs
        .iter()
        .flat_map(|s| s.code.forward.iter().map(String::as_str))
        .collect();
    let has = |t: &str| types.contains(t);
    let mut uses = Vec::new();
    if has("Conv2d<B>") {
        uses.push("burn::nn::conv::{Conv2d, Conv2dConfig}".to_string());
    }
    let mut pools = Vec::new();
    if has("AvgPool2d") {
        pools.extend(["AvgPool2d", "AvgPool2dConfig"]);
    }
    if !pools.is_empty() {
        uses.push(format!("burn::nn::pool::{{{}}}", pools.join(", ")));
    }
    let mut nn = Vec::new();
    if has("BatchNorm<B>") {
        nn.extend(["BatchNorm", "BatchNormConfig"]);
    }
    if has("Dropout") {
        nn.extend(["Dropout", "DropoutConfig"]);
    }
    if has("Linear<B>") {
        nn.extend(["Linear", "LinearConfig"]);
    }
    let same = structs
        .iter()
        .flat_map(|s| s.code.fields.iter())
        .any(|f| f.init.contains("PaddingConfig2d"));
    if same {
        nn.push("PaddingConfig2d");
    }
    if !nn.is_empty() {
        uses.push(format!("burn::nn::{{{}}}", nn.join(", ")));
    }
    uses.push("burn::prelude::*".to_string());
    if forward.contains("relu(") {
        uses.push("burn::tensor::activation::relu".to_string());
    }
    let mut rt = Vec::new();
    if has("AvgPoolSame") {
        rt.push("AvgPoolSame");
    }
    if structs.iter().any(|s| !s.decay.is_empty()) {
        rt.push("decay_term");
    }
    if forward.contains(" conv(&") || forward.contains("(conv(&") {
        rt.push("conv");
    }
    if forward.contains("concat(vec!") {
        rt.push("concat");
    }
    if forward.contains("conv_relu(&") {
        rt.push("conv_relu");
    }
    if has("Lrn") {
        rt.push("Lrn");
    }
    if has("MaxPool") {
        rt.push("MaxPool");
    }
    let inits = structs
        .iter()
        .flat_map(|s| s.code.fields.iter())
        .any(|f| f.init.contains("XAVIER"));
    if inits {
        rt.push("XAVIER");
    }
    if structs
        .iter()
        .flat_map(|s| s.code.fields.iter())
        .any(|f| f.init.contains("zero_bias"))
    {
        rt.push("ZeroBias");
    }
    if !rt.is_empty() {
        uses.push(format!("netc_runtime::nn::{{{}}}", rt.join(", ")));
    }
    uses.push("netc_runtime::{Kernels, Net}".to_string());
    uses
}
