//! The burn back end: one Rust struct per block variant and per model, with
//! `#[derive(Module)]`, a constructor and a `forward`, rendered by tera from
//! the layout (`proc::layout`), named by `proc::namer`.

mod layers;

use super::forward::{self, Syntax};
use crate::diag::{Result, Span};
use crate::ir::Typed;
use crate::proc::expr::{Expr, Var};
use crate::proc::layout::{self, JoinKind, Layer, Layout, Step, StepKind, Struct};
use crate::proc::namer::{camel_case, rust_field, struct_names, variables, Namer};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
struct FieldOut {
    name: String,
    ty: String,
    comment: String,
    init: String,
}

#[derive(Debug, Clone, Serialize)]
struct StructOut {
    name: String,
    doc: String,
    params: String,
    fields: Vec<FieldOut>,
    input_rank: u8,
    output_rank: u8,
    forward: Vec<String>,
    /// `forward_pool`'s lines, where a caller pools the output (`Struct::pooled`).
    pooled: Option<Vec<String>>,
    /// No field holds a tensor: the backend parameter needs a marker, in this field.
    phantom: Option<String>,
    /// The model's weights under decay, as field paths.
    decay: Vec<String>,
}

/// The Rust type name of every struct of a layout.
pub fn type_names(layout: &Layout) -> Vec<String> {
    struct_names(layout, Namer::rust_types())
}

/// Where a struct's source statements are: `// tuto.net:7  conv1: conv 5x5 64 relu`.
struct Source<'a> {
    /// Indexed once: a comment per layer stays cheap in a 100,000-layer model.
    lines: crate::diag::Lines<'a>,
    file: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Span) -> String {
        let (line, _) = self.lines.line_col(span.start);
        let text = self.lines.line(line).trim();
        format!("{}:{line}  {text}", self.file)
    }
}

/// The names of one struct's code.
struct Names<'a> {
    types: &'a [String],
    vars: HashMap<Var, String>,
    /// How weights start (`train init=`).
    init: crate::ir::Init,
}

impl Names<'_> {
    fn var(&self, v: &Var) -> String {
        self.vars[v].clone()
    }

    fn expr(&self, e: &Expr) -> String {
        e.rust(&|v| self.var(v))
    }
}

struct Rust<'a> {
    source: &'a Source<'a>,
}

/// A joined step's convolutions as `conv_concat`'s parts: `(&self.e1x1, true), ...`.
fn conv_parts(s: &Struct, convs: &[Step]) -> String {
    let parts: Vec<String> = convs
        .iter()
        .map(|c| match c.kind {
            StepKind::Apply { field, relu } => {
                format!("(&self.{}, {relu})", rust_field(&s.fields[field].label))
            }
            _ => unreachable!("a concatenation's step joins convolutions"),
        })
        .collect();
    parts.join(", ")
}

impl Syntax for Rust<'_> {
    fn step(&self, s: &Struct, step: &StepKind, input: String) -> String {
        let relu = |e: String, on: bool| if on { format!("relu({e})") } else { e };
        match step {
            StepKind::Apply { field, relu: r } => {
                let f = &s.fields[*field];
                let name = rust_field(&f.label);
                match f.layer {
                    // netc's kernels, with TensorFlow's padding, rather than Conv2d::forward.
                    Layer::Conv { .. } if *r => format!("conv_relu(&self.{name}, {input})"),
                    Layer::Conv { .. } => format!("conv(&self.{name}, {input})"),
                    // netc's kernels rather than Linear::forward: every thread at batch 1.
                    Layer::Dense { .. } if *r => format!("dense_relu(&self.{name}, {input})"),
                    Layer::Dense { .. } => format!("dense(&self.{name}, {input})"),
                    _ => relu(format!("self.{name}.forward({input})"), *r),
                }
            }
            StepKind::ConvPool { conv, relu, .. } | StepKind::ConvPoolArg { conv, relu } => {
                let call = if *relu { "conv_relu_pool" } else { "conv_pool" };
                let conv = rust_field(&s.fields[*conv].label);
                // A field, or the pooling the caller passed to `forward_pool`.
                let pool = match step {
                    StepKind::ConvPool { pool, .. } => {
                        format!("&self.{}", rust_field(&s.fields[*pool].label))
                    }
                    _ => "pool".to_string(),
                };
                format!("{call}(&self.{conv}, {pool}, {input})")
            }
            StepKind::BlockPool { block, pool, .. } => {
                let block = rust_field(&s.fields[*block].label);
                let pool = rust_field(&s.fields[*pool].label);
                format!("self.{block}.forward_pool({input}, &self.{pool})")
            }
            // Each convolution writes its channels of the joined output.
            StepKind::ConvConcat { convs, .. } => {
                format!("conv_concat(&[{}], {input})", conv_parts(s, convs))
            }
            // A field, or the pooling the caller passed to `forward_pool`.
            StepKind::ConvConcatPool { convs, pool, .. } => {
                let pool = match pool {
                    Some((pool, _)) => format!("&self.{}", rust_field(&s.fields[*pool].label)),
                    None => "pool".to_string(),
                };
                let parts = conv_parts(s, convs);
                format!("conv_concat_pool(&[{parts}], {pool}, {input})")
            }
            StepKind::Relu => format!("relu({input})"),
            StepKind::GlobalAvgPool => format!("{input}.mean_dim(2).mean_dim(3)"),
            StepKind::Flatten => format!("{input}.flatten::<2>(1, 3)"),
            StepKind::Identity | StepKind::Join { .. } => input,
        }
    }

    fn join(&self, join: JoinKind, maps: bool, parts: Vec<String>) -> String {
        match (join, maps) {
            // Feature maps through netc's kernel; vectors through burn.
            (JoinKind::Concat, true) => format!("concat(vec![{}])", parts.join(", ")),
            (JoinKind::Concat, false) => format!("Tensor::cat(vec![{}], 1)", parts.join(", ")),
            (JoinKind::Add, _) => parts.join(" + "),
        }
    }

    fn assign(&self, var: &str, expr: &str) -> String {
        format!("let {var} = {expr};")
    }

    fn comment(&self, span: Span) -> String {
        format!("// {}", self.source.line(span))
    }

    fn read(&self, var: &str, moved: bool) -> String {
        if moved {
            var.to_string()
        } else {
            format!("{var}.clone()")
        }
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

fn render_struct(layout: &Layout, index: usize, types: &[String], source: &Source) -> StructOut {
    let s = &layout.structs[index];
    let mut locals = Namer::rust_values();
    let vars = variables(&s.params, &mut locals);
    let names = Names {
        types,
        vars,
        init: layout.init,
    };
    let fields: Vec<FieldOut> = s
        .fields
        .iter()
        .map(|f| FieldOut {
            name: rust_field(&f.label),
            ty: layers::ty(&f.layer, &names),
            comment: source.line(f.span),
            init: layers::init(&f.layer, &names),
        })
        .collect();
    let phantom = (!s.fields.iter().any(|f| layers::holds_tensors(&f.layer))).then(|| {
        let taken = |n: &str| fields.iter().any(|f| f.name == n);
        let mut name = "backend".to_string();
        let mut n = 2;
        while taken(&name) {
            name = format!("backend_{n}");
            n += 1;
        }
        name
    });
    let params: String = s
        .params
        .iter()
        .map(|v| format!("{}: usize, ", names.var(v)))
        .collect();
    // `forward_pool` names its pooling `pool`: no local of its may take it.
    let mut pooled_locals = locals.clone();
    pooled_locals.reserve("pool");
    let forward = finish(forward::lines(&Rust { source }, s, &mut locals));
    let pooled = s.pooled.as_ref().map(|steps| {
        finish(forward::lines_of(
            &Rust { source },
            s,
            steps,
            &mut pooled_locals,
        ))
    });
    let what = if s.is_model { "Model" } else { "Block" };
    let decay = if s.is_model {
        layout
            .decay
            .iter()
            .map(|path| {
                let fields: Vec<String> = path.iter().map(|l| rust_field(l)).collect();
                format!("{}.weight", fields.join("."))
            })
            .collect()
    } else {
        Vec::new()
    };
    StructOut {
        name: types[index].clone(),
        doc: format!("{what} `{}` from {}.", s.label, source.file),
        params,
        fields,
        input_rank: if s.input_map { 4 } else { 2 },
        output_rank: if s.output_map { 4 } else { 2 },
        forward,
        pooled,
        phantom,
        decay,
    }
}

/// Every file of a generated crate: (path inside the crate, contents).
/// `package` names the crate and its program (the driver makes it unique).
pub fn crate_files(
    model: &Typed,
    source: &str,
    file: &str,
    runtime: &str,
    package: &str,
) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("Cargo.toml".into(), cargo_toml(package, runtime)),
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

/// The generated `model.rs` of a model.
pub fn model_rs(model: &Typed, source: &str, file: &str) -> Result<String> {
    // netc's CPU kernels pool a convolution's output in the same pass, and
    // write joined convolutions into their channels of the joined output.
    let layout = crate::proc::fuse::conv_pool(&layout::layout(model)?);
    let layout = crate::proc::fuse::conv_concat(&layout);
    let types = type_names(&layout);
    let shown = super::shown_path(file);
    let src = Source {
        lines: crate::diag::Lines::new(source),
        file: &shown,
    };
    let structs: Vec<StructOut> = (0..layout.structs.len())
        .map(|i| render_struct(&layout, i, &types, &src))
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("file", &shown);
    ctx.insert("model", &model.name);
    ctx.insert("structs", &structs);
    ctx.insert("imports", &layers::imports(&layout));
    Ok(render("model.rs", &ctx))
}

/// The generated program's `main.rs`.
pub fn main_rs(model: &Typed, file: &str) -> String {
    let s = &model.settings;
    let [h, w, c] = model.input.hwc();
    let (ty, decayed, graph) = match layout::layout(model) {
        Ok(l) => (
            type_names(&l).pop().expect("the model's struct"),
            l.decay
                .iter()
                .map(|path| format!("{:?}", format!("{}.weight", path.join("."))))
                .collect(),
            serde_json::to_string(&crate::proc::graph::graph(&l, [h, w, c]))
                .expect("a graph serializes"),
        ),
        // `model_rs` reports the error; this name is never compiled.
        Err(_) => (camel_case(&model.name, "Model"), Vec::new(), String::new()),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("file", &super::shown_path(file));
    // Debug formatting writes a Rust string literal: the path exactly.
    ctx.insert("file_literal", &format!("{file:?}"));
    ctx.insert("model", &model.name);
    ctx.insert("ty", &ty);
    ctx.insert("input", &[h, w, c]);
    ctx.insert("decay", &format!("{:?}", s.decay));
    ctx.insert("augment", &s.augment);
    ctx.insert("average", &s.average);
    ctx.insert("lr", &format!("{:?}", s.learning_rate));
    ctx.insert("batch", &s.batch_size);
    ctx.insert("steps", &s.steps);
    ctx.insert("classes", &s.classes);
    // The runtime's variants are the names, capitalized: `adamw` -> `Adamw`.
    let variant = |name: &str| name[..1].to_uppercase() + &name[1..];
    ctx.insert("optimizer", &variant(s.optimizer.name()));
    ctx.insert("schedule", &variant(s.schedule.name()));
    for (key, v) in [
        ("momentum", s.momentum),
        ("beta1", s.beta1),
        ("beta2", s.beta2),
        ("epsilon", s.epsilon),
        ("lr_factor", s.lr_factor),
        ("lr_min", s.lr_min),
        ("smoothing", s.smoothing),
    ] {
        ctx.insert(key, &format!("{v:?}"));
    }
    ctx.insert("lr_every", &s.lr_every);
    ctx.insert("warmup", &s.warmup);
    ctx.insert("decayed", &decayed);
    // Debug formatting writes a Rust string literal of the JSON.
    ctx.insert("graph", &format!("{graph:?}"));
    render("main.rs", &ctx)
}

/// The generated crate's `Cargo.toml`: one name for its package and program.
pub fn cargo_toml(package: &str, runtime: &str) -> String {
    let mut ctx = tera::Context::new();
    ctx.insert("package", package);
    ctx.insert("binary", package);
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
