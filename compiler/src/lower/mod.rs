//! Lowering: AST to the untyped IR. Resolves block calls and their
//! parameters, expands repetitions, reads every layer's arguments and gives
//! every node a unique name in its scope.

mod layers;
pub mod settings;
pub mod values;

use crate::diag::{Diagnostic, Result, Span};
use crate::ir::{self, BlockCall, Int, Node, Op, Settings, Shape, Untyped};
use crate::syntax::ast::{self, BlockDef, GroupOp, Stmt, StmtKind, Value, ValueKind};
use std::collections::{HashMap, HashSet};
use values::Env;

/// Expansion stops past this many layers in a file, so `* 1000000` cannot
/// hang netc. Counted as layers are made, not after.
pub const MAX_LAYERS: usize = 100_000;

/// Block calls and branch groups nest at most this deep. Every later pass
/// (shape inference, counts, back ends) recurses through this nesting, so
/// bounding it here bounds their stack, even on a thread's small one.
pub const MAX_DEPTH: usize = 64;

pub use layers::LAYERS;
pub use settings::TRAIN_KEYS;

pub fn lower(file: &ast::File) -> Result<Vec<Untyped>> {
    let mut blocks: HashMap<&str, &BlockDef> = HashMap::new();
    for block in &file.blocks {
        check_block_def(block)?;
        if let Some(prev) = blocks.insert(&block.name.name, block) {
            return Err(duplicate("block", &block.name, prev.name.span));
        }
    }
    let mut seen: HashMap<&str, Span> = HashMap::new();
    let mut models = Vec::new();
    // Shared by the models: a file of many models is bounded too.
    let mut layers = 0;
    for model in &file.models {
        if let Some(prev) = seen.insert(&model.name.name, model.name.span) {
            return Err(duplicate("model", &model.name, prev));
        }
        models.push(lower_model(model, &blocks, &mut layers)?);
    }
    Ok(models)
}

fn duplicate(what: &str, name: &ast::Ident, first: Span) -> Diagnostic {
    Diagnostic::new(
        name.span,
        format!("{what} `{}` is defined twice", name.name),
    )
    .label("second definition")
    .note(first, "first defined here")
    .help(format!("rename one of the two {what}s"))
}

fn check_block_def(block: &BlockDef) -> Result<()> {
    if layers::signature(&block.name.name).is_some() || is_reserved(&block.name.name) {
        return Err(Diagnostic::new(
            block.name.span,
            format!("`{}` is a built-in name", block.name.name),
        )
        .label("cannot name a block")
        .help("choose another name for the block"));
    }
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for p in &block.params {
        if is_reserved(&p.name) {
            return Err(
                Diagnostic::new(p.span, format!("`{}` is a reserved word", p.name))
                    .label("cannot be a parameter name")
                    .help("flags such as relu, same, valid, nobias and decay cannot be parameters"),
            );
        }
        if let Some(prev) = seen.insert(&p.name, p.span) {
            return Err(duplicate("parameter", p, prev));
        }
    }
    Ok(())
}

fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "relu"
            | "linear"
            | "same"
            | "valid"
            | "nobias"
            | "decay"
            | "global"
            | "input"
            | "train"
            | "concat"
            | "add"
            | "on"
            | "off"
            | "true"
            | "false"
            | "yes"
            | "no"
    )
}

fn lower_model(
    model: &ast::ModelDef,
    blocks: &HashMap<&str, &BlockDef>,
    layers_before: &mut usize,
) -> Result<Untyped> {
    let mut input = None;
    let mut train = settings::Train::default();
    let mut layers = Vec::new();
    for stmt in &model.body {
        match &stmt.kind {
            StmtKind::Layer { op, args } if op.name == "input" => {
                if input.is_some() {
                    return Err(Diagnostic::new(stmt.span, "second `input`")
                        .label("a model has one input")
                        .help("remove this line"));
                }
                if !layers.is_empty() {
                    return Err(Diagnostic::new(stmt.span, "`input` must come first")
                        .label("layers are already defined above")
                        .help("move `input` to the top of the model"));
                }
                input = Some(read_input(args, stmt.span)?);
            }
            StmtKind::Layer { op, args } if op.name == "train" => {
                train.read(args)?;
            }
            _ => layers.push(stmt),
        }
    }
    let Some(input) = input else {
        return Err(Diagnostic::new(
            model.name.span,
            format!("model `{}` has no input", model.name.name),
        )
        .label("no `input` line")
        .help("start the model with its input shape, such as `input 24x24x3`"));
    };
    let (mut settings, explicit_augment) = train.finish()?;
    // Without an explicit choice, a model smaller than CIFAR-10's 32x32 images
    // trains on random crops, as the seed's 24x24 models did.
    settings.augment = explicit_augment.unwrap_or(match input {
        Shape::Map { h, w, .. } => h < 32 || w < 32,
        Shape::Vector(_) => false,
    });
    let mut cx = Lowerer {
        blocks,
        settings: &settings,
        stack: Vec::new(),
        trace: Vec::new(),
        depth: 0,
        layers_before: *layers_before,
        layers: 0,
    };
    let body = cx.scope(&layers, &Env::new())?;
    *layers_before += cx.layers;
    if body.is_empty() {
        return Err(Diagnostic::new(
            model.name.span,
            format!("model `{}` has no layers", model.name.name),
        )
        .label("empty model")
        .help("add layers after `input`, ending with the class scores, such as `fc 10`"));
    }
    Ok(ir::Model {
        name: model.name.name.clone(),
        span: model.name.span,
        input,
        settings,
        body,
    })
}

fn read_input(args: &[ast::Arg], span: Span) -> Result<Shape> {
    let [arg] = args else {
        return Err(Diagnostic::new(span, "`input` takes one shape")
            .label(format!("{} arguments given", args.len()))
            .help("write `input HxWxC`, such as `input 24x24x3`"));
    };
    if let Some(key) = &arg.key {
        return Err(Diagnostic::new(key.span, "`input` takes no parameters")
            .label("unexpected")
            .help("write `input HxWxC`, such as `input 24x24x3`"));
    }
    let d = values::size(&arg.value, 3, "the input shape")?;
    Ok(Shape::Map {
        h: d[0],
        w: d[1],
        c: d[2],
    })
}

struct Lowerer<'a> {
    blocks: &'a HashMap<&'a str, &'a BlockDef>,
    settings: &'a Settings,
    /// Blocks being expanded, outermost first, to refuse recursion.
    stack: Vec<(&'a str, Span)>,
    /// Call sites of the blocks being expanded, for error notes.
    trace: Vec<Span>,
    /// Block calls and branch groups around the statement being lowered.
    depth: usize,
    /// Layers of the file's earlier models.
    layers_before: usize,
    layers: usize,
}

/// Names in one scope: a model body or a block body, branches included.
#[derive(Default)]
struct Names {
    taken: HashSet<String>,
    counters: HashMap<String, u64>,
}

impl Names {
    fn auto(&mut self, base: &str) -> String {
        loop {
            let n = self.counters.entry(base.to_string()).or_insert(0);
            *n += 1;
            let name = format!("{base}{n}");
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}

impl<'a> Lowerer<'a> {
    /// Lowers the statements of one naming scope.
    fn scope(&mut self, stmts: &[&'a Stmt], env: &Env) -> Result<Vec<Node<()>>> {
        let mut names = Names::default();
        let mut labels: HashMap<String, Span> = HashMap::new();
        for stmt in stmts {
            collect_labels(stmt, &mut labels)?;
        }
        names.taken.extend(labels.into_keys());
        let mut out = Vec::new();
        for stmt in stmts {
            self.stmt(stmt, env, &mut names, &mut out)?;
        }
        check_unique(&out, &mut HashMap::new())?;
        Ok(out)
    }

    fn stmt(
        &mut self,
        stmt: &'a Stmt,
        env: &Env,
        names: &mut Names,
        out: &mut Vec<Node<()>>,
    ) -> Result<()> {
        let count = match &stmt.repeat {
            None => 1,
            Some(v) => values::int(v, env, "the repetition count")?.value,
        };
        for i in 1..=count {
            if let StmtKind::Seq(body) = &stmt.kind {
                let before = out.len();
                for s in body {
                    self.stmt(s, env, names, out)?;
                }
                // A sequence that made nothing once makes nothing every
                // time: `{ {} * 1000000 } * 1000000` must not loop 10^12 times.
                if out.len() == before {
                    break;
                }
                continue;
            }
            let op = self.op(stmt, env, names)?;
            let name = match &stmt.label {
                Some(l) if count == 1 => l.name.clone(),
                Some(l) => format!("{}{i}", l.name),
                None => names.auto(match &op {
                    Op::Block(call) => &call.block,
                    other => layers::auto_name(other),
                }),
            };
            self.layers += 1;
            if self.layers > MAX_LAYERS {
                return Err(Diagnostic::new(stmt.span, "model too large")
                    .label(format!("expands to more than {MAX_LAYERS} layers"))
                    .help("lower the repetition counts"));
            }
            if self.layers_before + self.layers > MAX_LAYERS {
                return Err(Diagnostic::new(stmt.span, "file too large")
                    .label(format!(
                        "the models of this file expand to more than {MAX_LAYERS} layers"
                    ))
                    .help("lower the repetition counts, or split the models into several files"));
            }
            out.push(Node {
                name,
                span: stmt.span,
                trace: self.trace.clone(),
                op,
                ty: (),
            });
        }
        Ok(())
    }

    fn op(&mut self, stmt: &'a Stmt, env: &Env, names: &mut Names) -> Result<Op<()>> {
        match &stmt.kind {
            StmtKind::Layer { op, args } => {
                if let Some(layer) = layers::read(op, args, stmt.span, env, self.settings)? {
                    return Ok(layer);
                }
                Err(self.unknown_layer(op))
            }
            StmtKind::Call { block, args } => self.call(stmt, block, args, env),
            StmtKind::Group { op, branches } => {
                if branches.is_empty() {
                    return Err(Diagnostic::new(stmt.span, "empty branch group")
                        .label("no branches")
                        .help("write one branch per line inside the braces"));
                }
                self.enter(stmt.span, "this branch group")?;
                let lowered = self.branches(branches, env, names);
                self.depth -= 1;
                let lowered = lowered?;
                Ok(match op {
                    GroupOp::Concat => Op::Concat(lowered),
                    GroupOp::Add => Op::Add(lowered),
                })
            }
            StmtKind::Seq(_) => unreachable!("sequences are inlined by `stmt`"),
        }
    }

    fn branches(
        &mut self,
        branches: &'a [Stmt],
        env: &Env,
        names: &mut Names,
    ) -> Result<Vec<Vec<Node<()>>>> {
        let mut lowered = Vec::new();
        for b in branches {
            let mut branch = Vec::new();
            self.stmt(b, env, names, &mut branch)?;
            if branch.is_empty() {
                return Err(Diagnostic::new(b.span, "empty branch")
                    .label("this branch has no layers")
                    .help("write `identity` for a branch that passes its input through"));
            }
            lowered.push(branch);
        }
        Ok(lowered)
    }

    /// Goes one level deeper (into a block call or a branch group), or
    /// refuses if that passes `MAX_DEPTH`, naming the chain of block calls.
    fn enter(&mut self, span: Span, what: &str) -> Result<()> {
        if self.depth == MAX_DEPTH {
            let names: Vec<&str> = self.stack.iter().map(|(b, _)| *b).collect();
            let chain = if names.len() > 6 {
                format!(
                    "{} → … → {}",
                    names[..3].join(" → "),
                    names[names.len() - 3..].join(" → ")
                )
            } else {
                names.join(" → ")
            };
            let groups = MAX_DEPTH - names.len();
            let mut d = Diagnostic::new(
                span,
                format!("blocks and branch groups nested more than {MAX_DEPTH} deep"),
            )
            .label(format!("{what} would be level {}", MAX_DEPTH + 1))
            .help(format!(
                "netc accepts at most {MAX_DEPTH} levels of block calls and branch groups, \
                 one inside the other; call blocks one after another rather than each from \
                 the last, or repeat a call with `* N`"
            ));
            if let Some((_, first)) = self.stack.first() {
                d = d.note(
                    *first,
                    format!(
                        "the chain of {} block calls{} starts here: {chain}",
                        names.len(),
                        match groups {
                            0 => String::new(),
                            1 => " and 1 branch group".into(),
                            n => format!(" and {n} branch groups"),
                        }
                    ),
                );
            }
            return Err(d);
        }
        self.depth += 1;
        Ok(())
    }

    fn unknown_layer(&self, op: &ast::Ident) -> Diagnostic {
        let d = Diagnostic::new(op.span, format!("unknown layer `{}`", op.name));
        match op.name.as_str() {
            "input" | "train" => d
                .label(format!("`{}` belongs at the top of a model", op.name))
                .help("move it out of the block or group"),
            "concat" | "add" => d.label("a branch group needs braces").help(format!(
                "write `{} {{` and one branch per line, then `}}`",
                op.name
            )),
            name if self.blocks.contains_key(name) => d
                .label("this is a block")
                .help(format!("call it with parentheses: `{name}(...)`")),
            name => {
                let builtin = LAYERS.iter().map(|(n, _)| *n);
                let mut candidates: Vec<&str> = builtin.collect();
                candidates.extend(["concat", "add", "input", "train"]);
                let hint = match values::closest(name, candidates) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!(
                        "layers are: {}",
                        LAYERS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                d.label("no such layer").help(hint)
            }
        }
    }

    fn call(
        &mut self,
        stmt: &'a Stmt,
        name: &ast::Ident,
        args: &[Value],
        env: &Env,
    ) -> Result<Op<()>> {
        let Some(def) = self.blocks.get(name.name.as_str()).copied() else {
            let hint = match values::closest(&name.name, self.blocks.keys().copied()) {
                Some(b) => format!("did you mean `{b}`?"),
                None if layers::signature(&name.name).is_some() => {
                    format!("`{}` is a layer: write it without parentheses", name.name)
                }
                None => "define it with `block NAME(params) { ... }`".into(),
            };
            return Err(
                Diagnostic::new(name.span, format!("unknown block `{}`", name.name))
                    .label("no block of this name")
                    .help(hint),
            );
        };
        if let Some((_, first)) = self.stack.iter().find(|(b, _)| *b == name.name) {
            return Err(
                Diagnostic::new(name.span, format!("block `{}` calls itself", name.name))
                    .label("recursive call")
                    .note(*first, "the block is first called here")
                    .help("blocks cannot be recursive; repeat a call with `* N` instead"),
            );
        }
        if args.len() != def.params.len() {
            return Err(Diagnostic::new(
                stmt.span,
                format!(
                    "block `{}` takes {} argument{}, {} given",
                    name.name,
                    def.params.len(),
                    if def.params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
            )
            .label("wrong number of arguments")
            .note(def.name.span, "block defined here")
            .help(format!(
                "call it as {}({})",
                def.name.name,
                def.params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut inner = Env::new();
        let mut call_args = Vec::new();
        for (param, arg) in def.params.iter().zip(args) {
            let v = match &arg.kind {
                ValueKind::Ident(n) => env
                    .get(n)
                    .cloned()
                    .ok_or_else(|| values::unbound(arg, n, env))?,
                _ => values::int(arg, env, &format!("argument `{}`", param.name))?,
            };
            inner.insert(
                param.name.clone(),
                Int {
                    value: v.value,
                    param: Some(param.name.clone()),
                },
            );
            call_args.push(v);
        }
        self.enter(stmt.span, &format!("this call of `{}`", def.name.name))?;
        self.stack.push((&def.name.name, stmt.span));
        self.trace.push(stmt.span);
        let body: Vec<&Stmt> = def.body.iter().collect();
        let lowered = self.scope(&body, &inner);
        self.stack.pop();
        self.trace.pop();
        self.depth -= 1;
        let body = lowered?;
        if body.is_empty() {
            return Err(Diagnostic::new(
                def.name.span,
                format!("block `{}` is empty", def.name.name),
            )
            .label("no layers")
            .help("add layers to the block or remove it"));
        }
        Ok(Op::Block(BlockCall {
            block: def.name.name.clone(),
            args: call_args,
            params: def.params.iter().map(|p| p.name.clone()).collect(),
            body,
        }))
    }
}

/// Labels written in one scope (branches included, block bodies not).
fn collect_labels(stmt: &Stmt, seen: &mut HashMap<String, Span>) -> Result<()> {
    if let Some(l) = &stmt.label {
        if let Some(prev) = seen.insert(l.name.clone(), l.span) {
            return Err(
                Diagnostic::new(l.span, format!("layer name `{}` is used twice", l.name))
                    .label("second use")
                    .note(prev, "first used here")
                    .help("names must be unique within a model or block"),
            );
        }
    }
    match &stmt.kind {
        StmtKind::Group { branches, .. } => {
            branches.iter().try_for_each(|b| collect_labels(b, seen))
        }
        StmtKind::Seq(body) => body.iter().try_for_each(|b| collect_labels(b, seen)),
        _ => Ok(()),
    }
}

/// Repetition can give two nodes of one scope the same name (`x: conv` repeated
/// next to a label `x1`, or a labelled layer inside a repeated group).
fn check_unique(nodes: &[Node<()>], seen: &mut HashMap<String, Span>) -> Result<()> {
    for node in nodes {
        if let Some(prev) = seen.insert(node.name.clone(), node.span) {
            return Err(Diagnostic::new(
                node.span,
                format!("layer name `{}` is used twice", node.name),
            )
            .label("a repetition gives this statement the same name as another")
            .note(prev, "first use")
            .help("rename the label, or move the repeated layers into a block"));
        }
        if let Op::Concat(branches) | Op::Add(branches) = &node.op {
            for b in branches {
                check_unique(b, seen)?;
            }
        }
    }
    Ok(())
}
