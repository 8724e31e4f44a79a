//! The burn back end: one Rust struct per block and per model, with
//! `#[derive(Module)]`, a constructor and a `forward`, rendered by tera.
//!
//! Inside a block, sizes are Rust expressions of the block's parameters and
//! input shape, so one struct serves every call; in a model they are numbers.

mod layers;

use super::expr::{bind, block_args, calls_differ, Expr, INPUTS};
use crate::diag::{Diagnostic, Result};
use crate::ir::{Io, Node, Op, Shape, Typed};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// A symbolic activation shape.
#[derive(Debug, Clone, PartialEq)]
enum Sym {
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

    fn rank(&self) -> u8 {
        match self {
            Sym::Map { .. } => 4,
            Sym::Vector(_) => 2,
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

    fn subst(&self, f: &dyn Fn(&str) -> Expr) -> Sym {
        match self {
            Sym::Map { h, w, c } => Sym::Map {
                h: h.subst(f),
                w: w.subst(f),
                c: c.subst(f),
            },
            Sym::Vector(n) => Sym::Vector(n.subst(f)),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Field {
    name: String,
    ty: String,
    comment: String,
    init: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Struct {
    name: String,
    doc: String,
    params: String,
    fields: Vec<Field>,
    input_rank: u8,
    output_rank: u8,
    forward: Vec<String>,
    /// No field holds a tensor: the backend parameter needs a marker.
    phantom: bool,
}

/// What a caller needs to know of a generated block struct.
#[derive(Debug, Clone)]
struct Signature {
    ty: String,
    /// Constructor arguments: `in_height`, `in_width`, `in_channels` or a block parameter.
    args: Vec<String>,
    output: Sym,
    code: Struct,
}

/// The state of the struct being generated.
struct Scope {
    /// In a block, sizes from parameters are written as the parameters' names.
    in_block: bool,
    fields: Vec<Field>,
    used: BTreeSet<String>,
}

pub struct Generator<'a> {
    source: &'a str,
    file: &'a str,
    blocks: Vec<Signature>,
    by_name: HashMap<String, usize>,
}

/// `fire` -> `Fire`, `squeeze1` -> `Squeeze1`, `my_block` -> `MyBlock`.
pub fn type_name(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect()
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
    "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "unsafe", "use", "where", "while", "yield", "abstract", "become", "do", "final",
    "macro", "override", "priv", "typeof", "unsized", "virtual", "x", "device",
];

impl<'a> Generator<'a> {
    pub fn new(source: &'a str, file: &'a str) -> Self {
        Generator {
            source,
            file,
            blocks: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// `// tuto.net:7  conv1: conv 5x5 64 relu`
    fn comment(&self, node: &Node<Io>) -> String {
        let (line, _) = crate::diag::line_col(self.source, node.span.start);
        let text = self.source.lines().nth(line - 1).unwrap_or("").trim();
        format!("{}:{line}  {text}", self.file)
    }

    /// The model's struct and every block struct it needs, blocks first.
    pub fn model(mut self, model: &Typed) -> Result<Vec<StructOut>> {
        let mut scope = Scope {
            in_block: false,
            fields: Vec::new(),
            used: BTreeSet::new(),
        };
        let input = Sym::literal(model.input);
        let (output, mut forward) = self.seq(&model.body, input, &mut scope, "")?;
        if let Sym::Map { .. } = output {
            forward.push("// 1x1xC class scores to a vector".into());
            forward.push("let x = x.flatten(1, 3);".into());
        }
        let forward = finish(forward);
        let me = Struct {
            name: type_name(&model.name),
            doc: format!("Model `{}` from {}.", model.name, self.file),
            params: String::new(),
            fields: scope.fields,
            input_rank: 4,
            output_rank: 2,
            forward,
            phantom: false,
        };
        let me = Struct {
            phantom: !me.fields.iter().any(|f| f.ty.ends_with("<B>")),
            ..me
        };
        let mut out: Vec<StructOut> = self
            .blocks
            .into_iter()
            .map(|b| StructOut {
                code: b.code,
                decay: Vec::new(),
            })
            .collect();
        let mut decay = Vec::new();
        decayed(&model.body, "", &mut decay);
        out.push(StructOut { code: me, decay });
        Ok(out)
    }

    /// Generates the statements of `nodes`, returning the shape they leave.
    fn seq(
        &mut self,
        nodes: &[Node<Io>],
        mut x: Sym,
        scope: &mut Scope,
        indent: &str,
    ) -> Result<(Sym, Vec<String>)> {
        let mut lines = Vec::new();
        for node in nodes {
            if KEYWORDS.contains(&node.name.as_str()) {
                return Err(Diagnostic::new(
                    node.span,
                    format!("`{}` is a Rust keyword", node.name),
                )
                .label("cannot name a field of the generated code")
                .help("give the layer another name"));
            }
            lines.push(format!("{indent}// {}", self.comment(node)));
            let (out, stmts) = self.node(node, x, scope, indent)?;
            lines.extend(stmts);
            x = out;
        }
        Ok((x, lines))
    }

    fn node(
        &mut self,
        node: &Node<Io>,
        x: Sym,
        scope: &mut Scope,
        indent: &str,
    ) -> Result<(Sym, Vec<String>)> {
        let name = &node.name;
        match &node.op {
            Op::Concat(branches) | Op::Add(branches) => {
                let mut lines = Vec::new();
                let mut outs = Vec::new();
                let mut vars = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    let var = format!("{name}_{}", i + 1);
                    let take = if i + 1 == branches.len() {
                        "x"
                    } else {
                        "x.clone()"
                    };
                    let inner = format!("{indent}    ");
                    let (out, body) = self.seq(branch, x.clone(), scope, &inner)?;
                    let code: Vec<&String> = body
                        .iter()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .collect();
                    let single = match code.as_slice() {
                        [] => Some(take.to_string()),
                        [line] => line
                            .trim()
                            .strip_prefix("let x = ")
                            .and_then(|e| e.strip_suffix(';'))
                            .map(|e| with_input(e, take)),
                        _ => None,
                    };
                    if let Some(expr) = single {
                        lines.extend(
                            body.iter()
                                .filter(|l| l.trim_start().starts_with("//"))
                                .map(|l| format!("{indent}{}", l.trim_start())),
                        );
                        lines.push(format!("{indent}let {var} = {expr};"));
                    } else {
                        lines.push(format!("{indent}let {var} = {{"));
                        if take != "x" {
                            lines.push(format!("{inner}let x = {take};"));
                        }
                        let mut body =
                            finish(body.iter().map(|l| l.trim_start().to_string()).collect());
                        if let Some(last) = body.last_mut() {
                            *last = format!("{inner}{last}");
                        }
                        lines.extend(body.iter().map(|l| {
                            if l.starts_with(' ') {
                                l.clone()
                            } else {
                                format!("{inner}{l}")
                            }
                        }));
                        lines.push(format!("{indent}}};"));
                    }
                    outs.push(out);
                    vars.push(var);
                }
                let out = if matches!(node.op, Op::Concat(_)) {
                    // Feature maps through netc's kernel; vectors through burn.
                    let join = match outs[0] {
                        Sym::Map { .. } => format!("concat(vec![{}])", vars.join(", ")),
                        Sym::Vector(_) => format!("Tensor::cat(vec![{}], 1)", vars.join(", ")),
                    };
                    lines.push(format!("{indent}let x = {join};"));
                    let c = Expr::sum(outs.iter().map(Sym::channels).collect());
                    match &outs[0] {
                        Sym::Map { h, w, .. } => Sym::Map {
                            h: h.clone(),
                            w: w.clone(),
                            c,
                        },
                        Sym::Vector(_) => Sym::Vector(c),
                    }
                } else {
                    lines.push(format!("{indent}let x = {};", vars.join(" + ")));
                    outs[0].clone()
                };
                Ok((out, lines))
            }
            Op::Block(call) => {
                let sig = self.block(node, x.clone())?;
                // A variable of the block's code, as the caller's expression.
                let in_block = scope.in_block;
                let input = [sym_part(&x, 0), sym_part(&x, 1), x.channels()];
                let bind = |v: &str| bind(v, input.clone(), call, in_block);
                let args: Vec<String> = sig
                    .args
                    .iter()
                    .map(|a| {
                        let e = bind(a);
                        e.vars(&mut scope.used);
                        e.to_string()
                    })
                    .collect();
                scope.fields.push(Field {
                    name: name.clone(),
                    ty: format!("{}<B>", sig.ty),
                    comment: self.comment(node),
                    init: format!("{}::new({}, device)", sig.ty, args.join(", ")),
                });
                let output = sig.output.subst(&bind);
                Ok((
                    output,
                    vec![format!("{indent}let x = self.{name}.forward(x);")],
                ))
            }
            _ => {
                let before = scope.fields.len();
                let out = layers::layer(node, x, scope, indent)?;
                if let Some(f) = scope.fields.get_mut(before) {
                    f.comment = self.comment(node);
                }
                Ok(out)
            }
        }
    }

    /// The struct of the block `node` calls, generated on its first call.
    fn block(&mut self, node: &Node<Io>, x: Sym) -> Result<Signature> {
        let Op::Block(call) = &node.op else {
            unreachable!("only called on block calls")
        };
        let mut scope = Scope {
            in_block: true,
            fields: Vec::new(),
            used: BTreeSet::new(),
        };
        let input = match x {
            Sym::Map { .. } => Sym::Map {
                h: Expr::var(INPUTS[0]),
                w: Expr::var(INPUTS[1]),
                c: Expr::var(INPUTS[2]),
            },
            Sym::Vector(_) => Sym::Vector(Expr::var(INPUTS[2])),
        };
        let (output, forward) = self.seq(&call.body, input.clone(), &mut scope, "")?;
        let forward = finish(forward);
        let args = block_args(&scope.used, &call.params);
        let params: Vec<String> = args.iter().map(|a| format!("{a}: usize")).collect();
        let ty = type_name(&call.block);
        let phantom = !scope.fields.iter().any(|f| f.ty.ends_with("<B>"));
        let code = Struct {
            name: ty.clone(),
            doc: format!("Block `{}` from {}.", call.block, self.file),
            params: params.iter().map(|p| format!("{p}, ")).collect(),
            fields: scope.fields,
            input_rank: input.rank(),
            output_rank: output.rank(),
            phantom,
            forward,
        };
        if let Some(&i) = self.by_name.get(&call.block) {
            let known = &self.blocks[i];
            if known.code != code || known.output != output {
                return Err(calls_differ(node.span, &call.block, "struct"));
            }
            return Ok(known.clone());
        }
        let sig = Signature {
            ty,
            args,
            output,
            code,
        };
        self.by_name.insert(call.block.clone(), self.blocks.len());
        self.blocks.push(sig.clone());
        Ok(sig)
    }
}

/// `expr` reading `take` instead of `x`: `relu(self.a.forward(x))` becomes
/// `relu(self.a.forward(x.clone()))`, and `conv(&self.a, x)` `conv(&self.a, x.clone())`.
fn with_input(expr: &str, take: &str) -> String {
    let replaced = expr
        .replace("(x)", &format!("({take})"))
        .replace(", x)", &format!(", {take})"));
    match replaced.strip_prefix("x.") {
        Some(rest) => format!("{take}.{rest}"),
        None => replaced,
    }
}

/// Ends `forward` with its last expression rather than `let x = ...; x`.
fn finish(mut lines: Vec<String>) -> Vec<String> {
    let last = lines
        .last()
        .and_then(|l| l.strip_prefix("let x = "))
        .and_then(|e| e.strip_suffix(';'))
        .map(str::to_string);
    match last {
        Some(e) => {
            lines.pop();
            lines.push(e);
        }
        None => lines.push("x".into()),
    }
    lines
}

fn sym_part(x: &Sym, i: usize) -> Expr {
    match x {
        Sym::Map { h, w, .. } => [h, w][i].clone(),
        Sym::Vector(_) => Expr::Lit(1),
    }
}

/// Field paths of the weights under weight decay (`fc1.weight`).
fn decayed(nodes: &[Node<Io>], prefix: &str, out: &mut Vec<String>) {
    let mut leaves = Vec::new();
    crate::ir::leaves(nodes, prefix, &mut leaves);
    for (path, node) in leaves {
        let decay = match &node.op {
            Op::Conv(c) => c.decay,
            Op::Fc(f) => f.decay,
            _ => false,
        };
        if decay {
            out.push(format!("{path}.weight"));
        }
    }
}

/// Every file of a generated crate: (path inside the crate, contents).
pub fn crate_files(
    model: &Typed,
    source: &str,
    file: &str,
    runtime: &str,
) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("Cargo.toml".into(), cargo_toml(&model.name, runtime)),
        ("model.net".into(), source.to_string()),
        ("src/main.rs".into(), rustfmt(&main_rs(model, file))),
        (
            "src/model.rs".into(),
            rustfmt(&model_rs(model, source, file)?),
        ),
    ])
}

/// Formats generated code with rustfmt when it is installed (it comes with
/// rustup's default profile); unformatted code compiles the same.
pub fn rustfmt(code: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return code.to_string();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(code.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            String::from_utf8(out.stdout).unwrap_or_else(|_| code.to_string())
        }
        _ => code.to_string(),
    }
}

/// A generated struct, with the weights its model decays.
#[derive(Debug, Clone, Serialize)]
pub struct StructOut {
    code: Struct,
    decay: Vec<String>,
}

/// The generated `model.rs` of a model.
pub fn model_rs(model: &Typed, source: &str, file: &str) -> Result<String> {
    let structs = Generator::new(source, file).model(model)?;
    let mut ctx = tera::Context::new();
    ctx.insert("file", file);
    ctx.insert("model", &model.name);
    ctx.insert("structs", &structs);
    ctx.insert("imports", &layers::imports(&structs));
    Ok(render("model.rs", &ctx))
}

/// The generated program's `main.rs`.
pub fn main_rs(model: &Typed, file: &str) -> String {
    let s = &model.settings;
    let [h, w, c] = model.input.hwc();
    let mut ctx = tera::Context::new();
    ctx.insert("file", file);
    ctx.insert("model", &model.name);
    ctx.insert("ty", &type_name(&model.name));
    ctx.insert("input", &[h, w, c]);
    ctx.insert("decay", &format!("{:?}", s.decay));
    ctx.insert("augment", &s.augment);
    ctx.insert("average", &s.average);
    ctx.insert("lr", &format!("{:?}", s.learning_rate));
    ctx.insert("batch", &s.batch_size);
    ctx.insert("steps", &s.steps);
    ctx.insert("classes", &s.classes);
    render("main.rs", &ctx)
}

/// The name of a model's package and program: namespaced, so that a model
/// named `netc`, `burn` or `std` clashes with neither the compiler in the
/// shared target directory nor a crate the program uses. Case and
/// underscores are kept: `my_net` and `myNet` are two programs.
pub fn program_name(model: &str) -> String {
    format!("netc-model-{model}")
}

/// The generated crate's `Cargo.toml`.
pub fn cargo_toml(model: &str, runtime: &str) -> String {
    let mut ctx = tera::Context::new();
    ctx.insert("package", &program_name(model));
    ctx.insert("binary", &program_name(model));
    ctx.insert("runtime", runtime);
    render("Cargo.toml", &ctx)
}

fn render(name: &str, ctx: &tera::Context) -> String {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates([
        (
            "model.rs",
            include_str!("../../../templates/burn/model.rs.tera"),
        ),
        (
            "main.rs",
            include_str!("../../../templates/burn/main.rs.tera"),
        ),
        (
            "Cargo.toml",
            include_str!("../../../templates/burn/Cargo.toml.tera"),
        ),
    ])
    .expect("the built-in templates parse");
    tera.autoescape_on(vec![]);
    tera.render(name, ctx)
        .expect("the built-in templates render")
}
