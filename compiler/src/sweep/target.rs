//! What a sweep KEY names in the base model: a training setting, a layer (to
//! remove it), one argument of a layer, or one argument of a block call.
//! The argument names come from the layer table of `lower/layers.rs` (the
//! signatures the compiler's own hints print), so the two cannot drift.

use crate::diag::{line_col, Span};
use crate::ir::{Node, Op};
use crate::lower::{LAYERS, TRAIN_KEYS};
use crate::syntax::ast::{find_stmt, repeat_of, Arg, ModelDef, Stmt, StmtKind, ValueKind};

/// How one argument of a layer is written.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgSpec {
    /// The layer's positional number: `FILTERS`, `UNITS`, `RATE`.
    Number(String),
    /// `KxK`, or `kernel=K`.
    Kernel,
    /// `/S`.
    Stride,
    /// `same` or `valid`.
    Padding,
    /// `key=value`.
    Keyword(String),
    /// A bare word switched on or off: `relu`, `decay`; `bias` is `nobias`
    /// written the other way round.
    Flag { word: String, inverted: bool },
}

impl ArgSpec {
    pub fn name(&self) -> String {
        match self {
            ArgSpec::Number(n) | ArgSpec::Keyword(n) => n.clone(),
            ArgSpec::Kernel => "kernel".into(),
            ArgSpec::Stride => "stride".into(),
            ArgSpec::Padding => "padding".into(),
            ArgSpec::Flag { word, inverted } => {
                if *inverted {
                    word.trim_start_matches("no").to_string()
                } else {
                    word.clone()
                }
            }
        }
    }

    /// What values this argument takes, for messages.
    pub fn takes(&self) -> &'static str {
        match self {
            ArgSpec::Number(n) if n == "rate" => "a rate between 0 and 1, such as 0.5",
            ArgSpec::Number(_) => "a whole number, such as 64",
            ArgSpec::Kernel => "a kernel side, such as 3, or a size such as 3x5",
            ArgSpec::Stride => "a whole number, such as 2",
            ArgSpec::Padding => "same or valid",
            ArgSpec::Keyword(_) => "a number, such as 4 or 0.75",
            ArgSpec::Flag { .. } => "on or off",
        }
    }
}

/// The arguments of built-in layer `op`, read from its signature in
/// `LAYERS` (`conv KxK|kernel=K FILTERS [/STRIDE] [same|valid] ...`).
pub fn arg_specs(op: &str) -> Vec<ArgSpec> {
    let Some((_, sig)) = LAYERS.iter().find(|(n, _)| *n == op) else {
        return vec![];
    };
    let mut out = Vec::new();
    // `avgpool KxK ... or avgpool global`: the first form names the arguments.
    for token in sig.split_whitespace().skip(1).take_while(|t| *t != "or") {
        let t = token.trim_start_matches('[').trim_end_matches(']');
        let spec = if t.contains("kernel=") || t == "KxK" {
            ArgSpec::Kernel
        } else if t == "same|valid" {
            ArgSpec::Padding
        } else if t.starts_with('/') {
            ArgSpec::Stride
        } else if let Some((key, _)) = t.split_once('=') {
            ArgSpec::Keyword(key.to_string())
        } else if t.chars().all(|c| c.is_ascii_uppercase()) {
            ArgSpec::Number(t.to_ascii_lowercase())
        } else {
            ArgSpec::Flag {
                word: t.to_string(),
                inverted: t.starts_with("no"),
            }
        };
        out.push(spec);
    }
    out
}

/// What a KEY changes.
#[derive(Debug, Clone)]
pub enum What {
    Setting,
    Remove,
    Arg(ArgSpec),
    /// The call argument at this index, named by the block's parameter.
    CallArg(usize),
}

/// A KEY resolved in the base model.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub key: String,
    pub what: What,
    /// The statement changed (none for a setting).
    pub stmt: Option<&'a Stmt>,
    /// Which of the statement's `* N` copies (0-based) and how many there are.
    pub instance: usize,
    pub count: usize,
    /// The value in the base, as written (or `default`).
    pub base: String,
}

/// A layer of the model's own scope (branches included), by name.
struct Named<'a> {
    name: String,
    span: Span,
    op: &'a Op<()>,
}

fn named<'a>(nodes: &'a [Node<()>], out: &mut Vec<Named<'a>>) {
    for n in nodes {
        out.push(Named {
            name: n.name.clone(),
            span: n.span,
            op: &n.op,
        });
        if let Op::Concat(branches) | Op::Add(branches) = &n.op {
            for b in branches {
                named(b, out);
            }
        }
    }
}

/// Resolves every KEY against the base, or an error saying what exists.
pub struct Resolver<'a> {
    pub file: &'a str,
    pub source: &'a str,
    pub model: &'a ModelDef,
    nodes: Vec<Named<'a>>,
    blocks: &'a [crate::syntax::ast::BlockDef],
}

impl<'a> Resolver<'a> {
    pub fn new(
        file: &'a str,
        source: &'a str,
        model: &'a ModelDef,
        lowered: &'a [Node<()>],
        blocks: &'a [crate::syntax::ast::BlockDef],
    ) -> Self {
        let mut nodes = Vec::new();
        named(lowered, &mut nodes);
        Resolver {
            file,
            source,
            model,
            nodes,
            blocks,
        }
    }

    pub fn at(&self, span: Span) -> String {
        let (l, c) = line_col(self.source, span.start);
        format!("{}:{l}:{c}", self.file)
    }

    /// Every key this model offers, for error messages.
    pub fn listing(&self) -> String {
        let mut lines = vec![format!("training settings: {}", TRAIN_KEYS.join(", "))];
        for n in &self.nodes {
            let keys = self.keys_of(n);
            let (line, _) = line_col(self.source, n.span.start);
            lines.push(if keys.is_empty() {
                format!("{} (line {line}): remove it with {}=off", n.name, n.name)
            } else {
                format!(
                    "{} (line {line}): {}=off, {}",
                    n.name,
                    n.name,
                    keys.iter()
                        .map(|k| format!("{}.{k}", n.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        lines.join("\n  ")
    }

    fn keys_of(&self, n: &Named) -> Vec<String> {
        match n.op {
            Op::Block(call) => call.params.clone(),
            _ => match self.stmt_of(n).map(|(s, _)| &s.kind) {
                Some(StmtKind::Layer { op, .. }) => {
                    arg_specs(&op.name).iter().map(ArgSpec::name).collect()
                }
                _ => vec![],
            },
        }
    }

    fn stmt_of(&self, n: &Named) -> Option<(&'a Stmt, u64)> {
        find_stmt(&self.model.body, n.span, 1)
    }

    pub fn resolve(&self, key: &str) -> Result<Target<'a>, String> {
        if TRAIN_KEYS.contains(&key) {
            return Ok(Target {
                key: key.into(),
                what: What::Setting,
                stmt: None,
                instance: 0,
                count: 1,
                base: self.setting_base(key),
            });
        }
        let mut parts = key.splitn(2, '.');
        let layer = parts.next().unwrap_or("");
        let rest = parts.next();
        let same: Vec<&Named> = self.nodes.iter().filter(|n| n.name == layer).collect();
        let Some(node) = same.first() else {
            return Err(format!(
                "`{key}` names nothing in model `{}` ({}): keys are\n  {}",
                self.model.name.name,
                self.at(self.model.name.span),
                self.listing()
            ));
        };
        let Some((stmt, outer)) = self.stmt_of(node) else {
            return Err(format!("`{key}`: cannot find the statement of `{layer}`"));
        };
        let copies: Vec<&Named> = self.nodes.iter().filter(|n| n.span == node.span).collect();
        let instance = copies.iter().position(|n| n.name == layer).unwrap_or(0);
        let count = copies.len();
        if outer != 1 || repeat_of(stmt) != Some(count as u64) {
            return Err(format!(
                "`{key}`: `{layer}` ({}) is one copy of a repeated group; write the group's copies out to vary one of them",
                self.at(stmt.span)
            ));
        }
        let mk = |what: What, base: String| Target {
            key: key.into(),
            what,
            stmt: Some(stmt),
            instance,
            count,
            base,
        };
        let Some(arg) = rest else {
            return Ok(mk(What::Remove, "on".into()));
        };
        match (&stmt.kind, node.op) {
            (StmtKind::Call { args, .. }, Op::Block(call)) => {
                if let Some(i) = call.params.iter().position(|p| p == arg) {
                    let base = args
                        .get(i)
                        .map(|v| self.text(v.span).to_string())
                        .unwrap_or_default();
                    return Ok(mk(What::CallArg(i), base));
                }
                let def = self.blocks.iter().find(|b| b.name.name == call.block);
                let inside = arg.split('.').next().unwrap_or(arg);
                let is_layer = call.body.iter().any(|n| n.name == inside);
                let place = def.map(|d| self.at(d.name.span)).unwrap_or_default();
                let params = call
                    .params
                    .iter()
                    .map(|p| format!("{layer}.{p}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if is_layer {
                    Err(format!(
                        "`{key}` is inside block `{}` ({place}), which every call of it shares; vary this call's arguments instead: {params}",
                        call.block
                    ))
                } else {
                    Err(format!(
                        "`{key}`: block call `{layer}` ({}) has no parameter `{arg}`; its parameters: {params}",
                        self.at(stmt.span)
                    ))
                }
            }
            (StmtKind::Layer { op, args }, _) => {
                let specs = arg_specs(&op.name);
                match specs.into_iter().find(|s| s.name() == arg) {
                    Some(spec) => {
                        let base = self.arg_base(&spec, args);
                        Ok(mk(What::Arg(spec), base))
                    }
                    None => {
                        let names: Vec<String> = arg_specs(&op.name)
                            .iter()
                            .map(|s| format!("{layer}.{}", s.name()))
                            .collect();
                        Err(format!(
                            "`{key}`: `{layer}` ({}, `{}`) has no argument `{arg}`; {}",
                            self.at(stmt.span),
                            op.name,
                            if names.is_empty() {
                                format!("it takes none: only {layer}=off removes it")
                            } else {
                                format!("its arguments: {}", names.join(", "))
                            }
                        ))
                    }
                }
            }
            _ => Err(format!(
                "`{key}`: `{layer}` ({}) is a branch group; vary the layers inside it, or remove it with {layer}=off",
                self.at(stmt.span)
            )),
        }
    }

    pub fn text(&self, span: Span) -> &'a str {
        &self.source[span.start..span.end]
    }

    /// The `train` lines of the model, in order.
    pub fn train_lines(&self) -> Vec<&'a Stmt> {
        self.model
            .body
            .iter()
            .filter(|s| matches!(&s.kind, StmtKind::Layer { op, .. } if op.name == "train"))
            .collect()
    }

    fn setting_base(&self, key: &str) -> String {
        let mut base = "default".to_string();
        for s in self.train_lines() {
            if let StmtKind::Layer { args, .. } = &s.kind {
                for a in args {
                    if a.key.as_ref().is_some_and(|k| k.name == key) {
                        base = self.text(a.value.span).to_string();
                    }
                }
            }
        }
        base
    }

    fn arg_base(&self, spec: &ArgSpec, args: &[Arg]) -> String {
        match find_arg(spec, args) {
            Some(a) => match spec {
                ArgSpec::Flag { inverted, .. } => if *inverted { "off" } else { "on" }.into(),
                ArgSpec::Stride => self.text(a.value.span)[1..].to_string(),
                _ => self.text(a.value.span).to_string(),
            },
            None => match spec {
                ArgSpec::Flag { inverted, .. } => if *inverted { "on" } else { "off" }.into(),
                ArgSpec::Padding => "same".into(),
                _ => "default".into(),
            },
        }
    }
}

/// The argument of a layer statement that `spec` describes, if written.
pub fn find_arg<'a>(spec: &ArgSpec, args: &'a [Arg]) -> Option<&'a Arg> {
    args.iter().find(|a| match (spec, &a.key, &a.value.kind) {
        (ArgSpec::Keyword(k), Some(key), _) => key.name == *k,
        (ArgSpec::Kernel, Some(key), _) => key.name == "kernel",
        (ArgSpec::Kernel, None, ValueKind::Size(_)) => true,
        (ArgSpec::Stride, None, ValueKind::Stride(_)) => true,
        (ArgSpec::Number(_), None, ValueKind::Number(_) | ValueKind::Ratio(..)) => true,
        (ArgSpec::Padding, None, ValueKind::Ident(w)) => w == "same" || w == "valid",
        (ArgSpec::Flag { word, .. }, None, ValueKind::Ident(w)) => w == word,
        _ => false,
    })
}
