//! What each built-in layer accepts, and reading its arguments into an `Op`.

use super::values::{self, Env};
use crate::diag::{Diagnostic, Result, Span};
use crate::ir::*;
use crate::syntax::ast::{Arg, Ident, Value, ValueKind};

/// Built-in layers and their signatures, shown in hints.
pub const LAYERS: &[(&str, &str)] = &[
    (
        "conv",
        "conv KxK|kernel=K FILTERS [/STRIDE] [same|valid] [groups=G] [relu] [nobias] [decay]",
    ),
    (
        "dwconv",
        "dwconv KxK [/STRIDE] [same|valid] [mult=M] [relu] [nobias] [decay]",
    ),
    ("maxpool", "maxpool KxK [/STRIDE] [same|valid]"),
    (
        "avgpool",
        "avgpool KxK [/STRIDE] [same|valid]  or  avgpool global",
    ),
    (
        "lrn",
        "lrn [radius=4] [bias=1.0] [alpha=0.001/9] [beta=0.75]",
    ),
    ("fc", "fc UNITS [relu] [nobias] [decay]"),
    ("dropout", "dropout [RATE]"),
    ("batchnorm", "batchnorm [relu] [eps=0.001] [momentum=0.99]"),
    ("bn", "bn [relu] [eps=0.001] [momentum=0.99]"),
    ("relu", "relu"),
    ("identity", "identity"),
];

pub fn signature(op: &str) -> Option<&'static str> {
    LAYERS.iter().find(|(n, _)| *n == op).map(|(_, s)| *s)
}

/// The arguments of one layer statement, sorted by kind.
pub struct Args<'a> {
    op: &'a Ident,
    sig: &'static str,
    sizes: Vec<&'a Value>,
    strides: Vec<&'a Value>,
    numbers: Vec<&'a Value>,
    flags: Vec<&'a Value>,
    keywords: Vec<(&'a Ident, &'a Value)>,
}

impl<'a> Args<'a> {
    /// `flags` are the bare words this layer understands; any other bare word
    /// must be a block parameter, and counts as a number.
    pub fn new(op: &'a Ident, args: &'a [Arg], flags: &[&str], env: &Env) -> Result<Self> {
        let sig = signature(&op.name).unwrap_or("");
        let mut out = Args {
            op,
            sig,
            sizes: vec![],
            strides: vec![],
            numbers: vec![],
            flags: vec![],
            keywords: vec![],
        };
        for arg in args {
            if let Some(key) = &arg.key {
                if let Some((prev, _)) = out.keywords.iter().find(|(k, _)| k.name == key.name) {
                    return Err(
                        Diagnostic::new(key.span, format!("`{}` given twice", key.name))
                            .label("second value")
                            .note(prev.span, "first value"),
                    );
                }
                out.keywords.push((key, &arg.value));
                continue;
            }
            let v = &arg.value;
            match &v.kind {
                ValueKind::Size(_) => out.sizes.push(v),
                ValueKind::Stride(_) => out.strides.push(v),
                ValueKind::Number(_) | ValueKind::Ratio(..) => out.numbers.push(v),
                ValueKind::Ident(name) if flags.contains(&name.as_str()) => out.flags.push(v),
                ValueKind::Ident(name) if env.contains_key(name) => out.numbers.push(v),
                ValueKind::Ident(name) => {
                    let d =
                        Diagnostic::new(v.span, format!("`{}` does not take `{name}`", op.name))
                            .label("not a flag of this layer nor a block parameter");
                    let hint = match values::closest(name, flags.iter().copied()) {
                        Some(f) => format!("did you mean `{f}`? usage: {sig}"),
                        None => values::unbound(v, name, env)
                            .help
                            .map_or(format!("usage: {sig}"), |h| format!("{h}; usage: {sig}")),
                    };
                    return Err(d.help(hint));
                }
            }
        }
        Ok(out)
    }

    fn too_many(&self, extra: &Value, what: &str) -> Diagnostic {
        Diagnostic::new(extra.span, format!("`{}` takes one {what}", self.op.name))
            .label(format!("a second {what}"))
            .help(format!("usage: {}", self.sig))
    }

    fn missing(&self, what: &str, span: Span) -> Diagnostic {
        Diagnostic::new(span, format!("`{}` needs {what}", self.op.name))
            .label(format!("{what} missing"))
            .help(format!("usage: {}", self.sig))
    }

    fn unexpected(&self, v: &Value, what: &str) -> Diagnostic {
        Diagnostic::new(v.span, format!("`{}` takes no {what}", self.op.name))
            .label(format!("unexpected {}", values::describe(v)))
            .help(format!("usage: {}", self.sig))
    }

    fn at_most_one(&self, list: &[&'a Value], what: &str) -> Result<Option<&'a Value>> {
        match list {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            [_, extra, ..] => Err(self.too_many(extra, what)),
        }
    }

    pub fn none_of(&self, sizes: bool, strides: bool, numbers: bool) -> Result<()> {
        let checks = [
            (sizes, &self.sizes, "size"),
            (strides, &self.strides, "stride"),
            (numbers, &self.numbers, "number"),
        ];
        for (forbid, list, what) in checks {
            if forbid {
                if let Some(v) = list.first() {
                    return Err(self.unexpected(v, what));
                }
            }
        }
        Ok(())
    }

    /// `KxK`, or `kernel=K` for a square kernel whose side may be a block parameter.
    pub fn kernel(&self, stmt: Span, env: &Env) -> Result<([u64; 2], Option<String>)> {
        if let Some(v) = self.keyword("kernel") {
            if let Some(size) = self.sizes.first() {
                return Err(self.too_many(size, "kernel size"));
            }
            let k = values::int(v, env, "the kernel size")?;
            return Ok(([k.value, k.value], k.param));
        }
        let v = self
            .at_most_one(&self.sizes, "kernel size")?
            .ok_or_else(|| self.missing("a kernel size such as 3x3", stmt))?;
        let k = values::size(v, 2, "a kernel size")?;
        Ok(([k[0], k[1]], None))
    }

    pub fn stride(&self, default: [u64; 2], env: &Env) -> Result<([u64; 2], Option<String>)> {
        match self.at_most_one(&self.strides, "stride")? {
            None => Ok((default, None)),
            Some(Value {
                kind: ValueKind::Stride(inner),
                ..
            }) => {
                let s = values::int(inner, env, "a stride")?;
                Ok(([s.value, s.value], s.param))
            }
            Some(v) => Err(self.unexpected(v, "stride")),
        }
    }

    pub fn number(&self, env: &Env, what: &str) -> Result<Option<Int>> {
        self.at_most_one(&self.numbers, what)?
            .map(|v| values::int(v, env, what))
            .transpose()
    }

    pub fn rate(&self, what: &str) -> Result<Option<f64>> {
        self.at_most_one(&self.numbers, what)?
            .map(|v| values::real_in(v, what, 0.0, 1.0))
            .transpose()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags
            .iter()
            .any(|v| matches!(&v.kind, ValueKind::Ident(n) if n == name))
    }

    /// The padding flags, with `same` as the default (as in the TensorFlow tutorial).
    pub fn padding(&self) -> Result<Padding> {
        match (self.flag("same"), self.flag("valid")) {
            (true, true) => Err(
                Diagnostic::new(self.op.span, "both `same` and `valid` given")
                    .label("choose one padding")
                    .help("`same` keeps the size (divided by the stride); `valid` uses no padding"),
            ),
            (_, true) => Ok(Padding::Valid),
            _ => Ok(Padding::Same),
        }
    }

    /// The value of keyword `key`, refusing any keyword not in `allowed`.
    pub fn keywords(&self, allowed: &[&str]) -> Result<()> {
        for (key, _) in &self.keywords {
            if !allowed.contains(&key.name.as_str()) {
                let hint = match values::closest(&key.name, allowed.iter().copied()) {
                    Some(k) => format!("did you mean `{k}`? usage: {}", self.sig),
                    None => format!("usage: {}", self.sig),
                };
                return Err(Diagnostic::new(
                    key.span,
                    format!("`{}` has no parameter `{}`", self.op.name, key.name),
                )
                .label("unknown parameter")
                .help(hint));
            }
        }
        Ok(())
    }

    pub fn keyword(&self, key: &str) -> Option<&'a Value> {
        self.keywords
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| *v)
    }
}

const CONV_FLAGS: &[&str] = &["same", "valid", "relu", "linear", "nobias", "decay"];
const POOL_FLAGS: &[&str] = &["same", "valid"];

/// Reads one built-in layer. `None` when `op` names no built-in layer.
pub fn read(
    op: &Ident,
    args: &[Arg],
    stmt: Span,
    env: &Env,
    settings: &Settings,
) -> Result<Option<Op<()>>> {
    let layer = match op.name.as_str() {
        "conv" | "dwconv" => {
            let a = Args::new(op, args, CONV_FLAGS, env)?;
            let depthwise = op.name == "dwconv";
            a.keywords(if depthwise {
                &["mult", "kernel"]
            } else {
                &["groups", "kernel"]
            })?;
            let (kernel, kernel_param) = a.kernel(stmt, env)?;
            let (stride, stride_param) = a.stride([1, 1], env)?;
            let channels = if depthwise {
                a.none_of(false, false, true)?;
                let multiplier = match a.keyword("mult") {
                    Some(v) => values::int(v, env, "a depth multiplier")?,
                    None => Int::lit(1),
                };
                Channels::Depthwise { multiplier }
            } else {
                let filters = a
                    .number(env, "the number of filters")?
                    .ok_or_else(|| a.missing("the number of filters", stmt))?;
                Channels::Filters(filters)
            };
            let groups = match a.keyword("groups") {
                Some(v) => values::int(v, env, "the number of groups")?,
                None => Int::lit(1),
            };
            Op::Conv(Conv {
                window: Window {
                    kernel,
                    stride,
                    padding: a.padding()?,
                    kernel_param,
                    stride_param,
                },
                channels,
                groups,
                bias: !a.flag("nobias"),
                relu: a.flag("relu"),
                decay: a.flag("decay"),
            })
        }
        "maxpool" | "avgpool" => {
            let a = Args::new(op, args, &[POOL_FLAGS, &["global"]].concat(), env)?;
            a.keywords(&["kernel"])?;
            a.none_of(false, false, true)?;
            let kind = if op.name == "maxpool" {
                PoolKind::Max
            } else {
                PoolKind::Avg
            };
            if a.flag("global") {
                if kind == PoolKind::Max {
                    return Err(
                        Diagnostic::new(op.span, "global pooling is average pooling")
                            .label("`maxpool global` is not supported")
                            .help("write `avgpool global`"),
                    );
                }
                a.none_of(true, true, true)?;
                Op::GlobalAvgPool
            } else {
                let (kernel, kernel_param) = a.kernel(stmt, env)?;
                let (stride, stride_param) = a.stride(kernel, env)?;
                Op::Pool(Pool {
                    kind,
                    window: Window {
                        kernel,
                        stride,
                        padding: a.padding()?,
                        kernel_param,
                        stride_param,
                    },
                })
            }
        }
        "lrn" => {
            let a = Args::new(op, args, &[], env)?;
            a.keywords(&["radius", "bias", "alpha", "beta"])?;
            a.none_of(true, true, true)?;
            let real = |key: &str, default: f64| -> Result<f64> {
                a.keyword(key)
                    .map_or(Ok(default), |v| values::real(v, &format!("`{key}`")))
            };
            Op::Lrn(Lrn {
                radius: match a.keyword("radius") {
                    Some(v) => values::int(v, env, "the radius")?.value,
                    None => 4,
                },
                bias: real("bias", 1.0)?,
                alpha: real("alpha", 0.001 / 9.0)?,
                beta: real("beta", 0.75)?,
            })
        }
        "fc" => {
            let a = Args::new(op, args, &["relu", "linear", "nobias", "decay"], env)?;
            a.keywords(&[])?;
            a.none_of(true, true, false)?;
            let units = a
                .number(env, "the number of units")?
                .ok_or_else(|| a.missing("the number of units", stmt))?;
            Op::Fc(Fc {
                units,
                bias: !a.flag("nobias"),
                relu: a.flag("relu"),
                decay: a.flag("decay"),
            })
        }
        "dropout" => {
            let a = Args::new(op, args, &[], env)?;
            a.keywords(&[])?;
            a.none_of(true, true, false)?;
            Op::Dropout {
                rate: a.rate("the dropout rate")?.unwrap_or(settings.dropout),
            }
        }
        "batchnorm" | "bn" => {
            let a = Args::new(op, args, &["relu"], env)?;
            a.keywords(&["eps", "momentum"])?;
            a.none_of(true, true, true)?;
            Op::BatchNorm(BatchNorm {
                epsilon: match a.keyword("eps") {
                    Some(v) => values::real_in(v, "`eps`", f64::MIN_POSITIVE, 1.0)?,
                    None => 1e-3,
                },
                momentum: match a.keyword("momentum") {
                    Some(v) => values::real_in(v, "`momentum`", 0.0, 1.0)?,
                    None => 0.99,
                },
                relu: a.flag("relu"),
            })
        }
        "relu" | "identity" => {
            let a = Args::new(op, args, &[], env)?;
            a.keywords(&[])?;
            a.none_of(true, true, true)?;
            if op.name == "relu" {
                Op::Relu
            } else {
                Op::Identity
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(layer))
}

/// The base of a layer's automatic name (`conv` gives conv1, conv2, ...).
pub fn auto_name(op: &Op<()>) -> &'static str {
    match op {
        Op::Conv(c) if matches!(c.channels, Channels::Depthwise { .. }) => "dwconv",
        Op::Conv(_) => "conv",
        Op::Pool(_) | Op::GlobalAvgPool => "pool",
        Op::Lrn(_) => "lrn",
        Op::Fc(_) => "fc",
        Op::Dropout { .. } => "dropout",
        Op::BatchNorm(_) => "bn",
        Op::Relu => "relu",
        Op::Identity => "identity",
        Op::Concat(_) => "concat",
        Op::Add(_) => "add",
        Op::Block(_) => "block",
    }
}
