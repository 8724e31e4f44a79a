//! The PyTorch back end: one `nn.Module` class per block variant and model,
//! with netc's parameter names and layouts, so a netc checkpoint loads as it
//! is. It renders the layout (`proc::layout`) with `proc::namer`'s names.
//!
//! It is the speed reference of `netc bench`, the numerical cross-check of the
//! burn back end, and a way to take a model to Python. Sizes inside a block
//! are Python expressions of the block's parameters.

use super::forward::{self, Syntax};
use crate::diag::{Lines, Result, Span};
use crate::ir::Typed;
use crate::proc::expr::{Expr, Var};
use crate::proc::layout::{self, JoinKind, Layer, Layout, Real, Step, StepKind, Struct};
use crate::proc::namer::{struct_names, variables, Namer};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
struct Class {
    name: String,
    doc: String,
    /// Constructor parameters after `self`.
    params: Vec<String>,
    /// Attributes renamed for Python, with their `.net` labels (`{"type_": "type"}`).
    renamed: Vec<(String, String)>,
    init: Vec<String>,
    forward: Vec<String>,
}

struct Python<'a> {
    lines: &'a Lines<'a>,
    file: &'a str,
    /// The attribute of each field of the class being written.
    attrs: Vec<String>,
}

impl Python<'_> {
    /// A joined step's convolutions, each applied to `input`, concatenated.
    fn concat(&self, convs: &[Step], input: String) -> String {
        let parts = convs.iter().map(|c| match c.kind {
            StepKind::Apply { field, relu } => self.apply(field, relu, input.clone()),
            _ => unreachable!("a concatenation's step joins convolutions"),
        });
        self.join(JoinKind::Concat, true, parts.collect())
    }

    /// `fields[field]` applied to `input`, then a ReLU when `relu`.
    fn apply(&self, field: usize, relu: bool, input: String) -> String {
        let call = format!("self.{}({input})", self.attrs[field]);
        if relu {
            // The layer's output is a new tensor that nothing else
            // reads (conv, fc and batch norm keep their inputs for
            // backward, not their outputs): in place saves a copy.
            format!("F.relu({call}, inplace=True)")
        } else {
            call
        }
    }
}

impl Syntax for Python<'_> {
    fn step(&self, _: &Struct, step: &StepKind, input: String) -> String {
        match step {
            StepKind::Apply { field, relu } => self.apply(*field, *relu, input),
            // Made only for the burn back end: the two layers here.
            StepKind::ConvPool {
                conv, relu, pool, ..
            } => self.apply(*pool, false, self.apply(*conv, *relu, input)),
            StepKind::BlockPool { block, pool, .. } => {
                self.apply(*pool, false, self.apply(*block, false, input))
            }
            StepKind::ConvConcat { convs, .. } => self.concat(convs, input),
            StepKind::ConvConcatPool {
                convs,
                pool: Some((pool, _)),
                ..
            } => self.apply(*pool, false, self.concat(convs, input)),
            // Only `pooled` forwards hold them, which this back end never prints.
            StepKind::ConvPoolArg { .. } | StepKind::ConvConcatPool { pool: None, .. } => {
                unreachable!("a pooled forward's step in `forward`")
            }
            StepKind::Relu => format!("F.relu({input})"),
            StepKind::GlobalAvgPool => format!("{input}.mean((2, 3), keepdim=True)"),
            StepKind::Flatten => format!("{input}.flatten(1)"),
            StepKind::Identity | StepKind::Join { .. } => input,
        }
    }

    fn join(&self, join: JoinKind, _: bool, parts: Vec<String>) -> String {
        match join {
            JoinKind::Concat => format!("torch.cat([{}], 1)", parts.join(", ")),
            JoinKind::Add => parts.join(" + "),
        }
    }

    fn assign(&self, var: &str, expr: &str) -> String {
        format!("{var} = {expr}")
    }

    fn comment(&self, span: Span) -> String {
        let (line, _) = self.lines.line_col(span.start);
        let text = self.lines.line(line).trim();
        format!("# {}:{line}  {text}", self.file)
    }

    fn read(&self, var: &str, _: bool) -> String {
        var.to_string()
    }
}

/// A real number as a person writes it: the shortest text that reads back
/// as the same number, a fraction such as `0.001 / 9` where that is shorter.
pub fn real(x: f64) -> String {
    let plain = format!("{x:?}");
    let short = |s: &str| s.trim_start_matches('-').len() <= 5;
    let fraction = (2..=1000u32).find_map(|d| {
        let n = format!("{:?}", x * f64::from(d));
        let back: f64 = n.parse().ok()?;
        (short(&n) && back / f64::from(d) == x).then(|| format!("{n} / {d}"))
    });
    match fraction {
        Some(f) if f.len() < plain.len() => f,
        _ => plain,
    }
}

/// A kernel or stride: `3` when square, else `(3, 5)`.
fn size(v: &[Expr; 2], expr: &dyn Fn(&Expr) -> String) -> String {
    if v[0] == v[1] {
        expr(&v[0])
    } else {
        format!("({}, {})", expr(&v[0]), expr(&v[1]))
    }
}

/// The constructor call of a field, leaving out arguments equal to the
/// helper's defaults (netc's).
fn init(layer: &Layer, expr: &dyn Fn(&Expr) -> String) -> String {
    let one = [Expr::Lit(1), Expr::Lit(1)];
    let mut args = Vec::new();
    let class = match layer {
        Layer::Conv {
            inputs,
            filters,
            kernel,
            stride,
            same,
            groups,
            bias,
        } => {
            args.extend([expr(inputs), expr(filters), size(kernel, expr)]);
            if *stride != one {
                args.push(format!("stride={}", size(stride, expr)));
            }
            if !same {
                args.push("padding=\"valid\"".into());
            }
            if *groups != Expr::Lit(1) {
                args.push(format!("groups={}", expr(groups)));
            }
            if !bias {
                args.push("bias=False".into());
            }
            "Conv2d".to_string()
        }
        Layer::MaxPool {
            kernel,
            stride,
            same,
        }
        | Layer::AvgPool {
            kernel,
            stride,
            same,
        } => {
            args.push(size(kernel, expr));
            if stride != kernel {
                args.push(size(stride, expr));
            }
            if !same {
                args.push("padding=\"valid\"".into());
            }
            match layer {
                Layer::MaxPool { .. } => "MaxPool",
                _ => "AvgPool",
            }
            .to_string()
        }
        Layer::Lrn {
            radius,
            bias,
            alpha,
            beta,
        } => {
            if *radius != 4 {
                args.push(format!("radius={radius}"));
            }
            let defaults = [
                ("bias", bias, 1.0),
                ("alpha", alpha, 0.001 / 9.0),
                ("beta", beta, 0.75),
            ];
            for (key, v, default) in defaults {
                if *v != Real(default) {
                    args.push(format!("{key}={}", real(v.0)));
                }
            }
            "Lrn".to_string()
        }
        Layer::Dense {
            inputs,
            units,
            bias,
        } => {
            args.extend([expr(inputs), expr(units)]);
            if !bias {
                args.push("bias=False".into());
            }
            "Dense".to_string()
        }
        Layer::BatchNorm {
            channels,
            epsilon,
            momentum,
        } => {
            args.push(expr(channels));
            if *epsilon != Real(0.001) {
                args.push(format!("epsilon={}", real(epsilon.0)));
            }
            if *momentum != Real(0.99) {
                args.push(format!("momentum={}", real(momentum.0)));
            }
            "BatchNorm".to_string()
        }
        Layer::Dropout { rate } => {
            if *rate != Real(0.5) {
                args.push(real(rate.0));
            }
            "nn.Dropout".to_string()
        }
        Layer::Block { .. } => unreachable!("`class` writes block instances"),
    };
    format!("{class}({})", args.join(", "))
}

fn class(layout: &Layout, index: usize, types: &[String], lines: &Lines, file: &str) -> Class {
    let s = &layout.structs[index];
    let (mut locals, vars) = params(s, types);
    let expr = |e: &Expr| e.python(&|v| vars[v].clone());
    // Labels Python can take keep their spelling; the others get a suffix.
    let mut attrs = Namer::python_attributes();
    // `__x` in a class body becomes `_Class__x`, and `__x__` belongs to
    // Python (`__dict__`, `__call__`, `__class__`).
    let fine = |l: &str| !l.starts_with("__");
    let keep: Vec<bool> = s
        .fields
        .iter()
        .map(|f| attrs.is_free(&f.label) && fine(&f.label))
        .collect();
    for (f, keep) in s.fields.iter().zip(&keep) {
        if *keep {
            attrs.reserve(&f.label);
        }
    }
    let names: Vec<String> = s
        .fields
        .iter()
        .zip(&keep)
        .map(|(f, keep)| {
            if *keep {
                f.label.clone()
            } else {
                attrs.call(&f.label)
            }
        })
        .collect();
    let renamed = s
        .fields
        .iter()
        .zip(&names)
        .filter(|(f, n)| f.label != **n)
        .map(|(f, n)| (n.clone(), f.label.clone()))
        .collect();
    let syntax = Python {
        lines,
        file,
        attrs: names.clone(),
    };
    let mut init_lines = Vec::new();
    for (f, name) in s.fields.iter().zip(&names) {
        init_lines.push(syntax.comment(f.span));
        let call = match &f.layer {
            Layer::Block { def, args } => {
                let wanted = &layout.structs[*def].params;
                let (_, callee) = params(&layout.structs[*def], types);
                let args: Vec<String> = wanted
                    .iter()
                    .zip(args)
                    .map(|(p, a)| format!("{}={}", callee[p], expr(a)))
                    .collect();
                format!("{}({})", types[*def], args.join(", "))
            }
            layer => init(layer, &expr),
        };
        init_lines.push(format!("self.{name} = {call}"));
    }
    let mut forward = forward::lines(&syntax, s, &mut locals);
    // `x = E` then `return x` reads better as `return E`.
    match forward.last().and_then(|l| l.strip_prefix("x = ")) {
        Some(e) => {
            let ret = format!("return {e}");
            forward.pop();
            forward.push(ret);
        }
        None => forward.push("return x".into()),
    }
    let what = if s.is_model { "Model" } else { "Block" };
    Class {
        name: types[index].clone(),
        doc: format!("{what} `{}` from {file}.", s.label),
        params: s.params.iter().map(|v| vars[v].clone()).collect(),
        renamed,
        init: init_lines,
        forward,
    }
}

/// The Python names of a class's constructor parameters, and the namer of
/// its methods' variables.
fn params(s: &Struct, types: &[String]) -> (Namer, HashMap<Var, String>) {
    let mut locals = Namer::python_values();
    for t in types {
        locals.reserve(t);
    }
    let vars = variables(&s.params, &mut locals);
    (locals, vars)
}

/// The Python class name of every struct of a layout.
pub fn class_names(layout: &Layout) -> Vec<String> {
    struct_names(layout, Namer::python_types())
}

/// The generated Python module of a model: helper layers, one class per
/// block variant, the model's class, and a loader for netc's weight files.
pub fn module_py(model: &Typed, source: &str, file: &str) -> Result<String> {
    render(model, source, file, None)
}

/// The module followed by netc's torch training engine: one script that
/// trains the model as netc's runtime does (`netc train --engine torch`).
pub fn train_py(model: &Typed, source: &str, file: &str) -> Result<String> {
    let layout = layout::layout(model)?;
    let s = &model.settings;
    let decayed = weight_names(&layout.decay);
    // The runtime's settings (`Settings` in runtime/src/spec.rs), as the
    // burn program's `main.rs` gives them.
    let netc = serde_json::json!({
        "model": model.name,
        "file": file,
        "source": source,
        "settings": {
            "decay": s.decay,
            "augment": s.augment,
            "average": s.average,
            "learning_rate": s.learning_rate,
            "batch_size": s.batch_size,
            "steps": s.steps,
            "classes": s.classes,
            "optimizer": s.optimizer.name(),
            "momentum": s.momentum,
            "beta1": s.beta1,
            "beta2": s.beta2,
            "epsilon": s.epsilon,
            "schedule": s.schedule.name(),
            "lr_every": s.lr_every,
            "lr_factor": s.lr_factor,
            "lr_min": s.lr_min,
            "warmup": s.warmup,
            "smoothing": s.smoothing,
        },
        "decayed": decayed,
    });
    // A JSON string is a Python string literal, whatever the source holds.
    let literal = serde_json::to_string(&netc.to_string()).expect("strings serialize");
    let engine = include_str!("../../templates/pytorch/train.py");
    let head = "# What netc knows of the model: its source, its training settings and\n\
                # the weights under weight decay, by .net name.";
    render(
        model,
        source,
        file,
        Some(format!("{head}\nNETC = json.loads({literal})\n{engine}")),
    )
}

/// The `.net` names of the weights of the layers at `paths` (`fire2.squeeze.weight`).
fn weight_names(paths: &[Vec<String>]) -> Vec<String> {
    paths
        .iter()
        .map(|path| format!("{}.weight", path.join(".")))
        .collect()
}

fn render(model: &Typed, source: &str, file: &str, engine: Option<String>) -> Result<String> {
    let layout = layout::layout(model)?;
    let types = class_names(&layout);
    // Indexed once: a comment per layer stays cheap in a 100,000-layer model.
    let lines = Lines::new(source);
    let shown = super::shown_path(file);
    let classes: Vec<Class> = (0..layout.structs.len())
        .map(|i| class(&layout, i, &types, &lines, &shown))
        .collect();
    let [h, w, c] = model.input.hwc();
    let mut ctx = tera::Context::new();
    ctx.insert("file", &shown);
    ctx.insert("model", &model.name);
    ctx.insert("classes", &classes);
    ctx.insert("input", &[c, h, w]);
    ctx.insert("classes_out", &model.settings.classes);
    ctx.insert("engine", &engine.is_some());
    ctx.insert("he", &(layout.init == crate::ir::Init::He));
    ctx.insert("linear", &weight_names(&layout.dense));
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "module.py",
        include_str!("../../templates/pytorch/module.py.tera"),
    )
    .expect("the built-in template parses");
    tera.autoescape_on(vec![]);
    let module = tera
        .render("module.py", &ctx)
        .expect("the built-in template renders");
    Ok(match engine {
        None => module,
        Some(engine) => format!("{module}\n\n{engine}"),
    })
}

#[cfg(test)]
mod tests {
    use super::real;

    #[test]
    fn reals_print_as_written() {
        assert_eq!(real(0.001 / 9.0), "0.001 / 9");
        assert_eq!(real(0.75), "0.75");
        assert_eq!(real(1.0), "1.0");
        assert_eq!(real(0.5), "0.5");
        assert_eq!(real(1e-5), "1e-5");
        assert_eq!(real(1.0 / 3.0), "1.0 / 3");
        for x in [0.001 / 9.0, 0.1, 2.0 / 7.0, 1e-5, 0.99, 123.456] {
            let text = real(x);
            let back = match text.split_once(" / ") {
                Some((n, d)) => n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap(),
                None => text.parse().unwrap(),
            };
            assert_eq!(back, x, "{text}");
        }
    }
}
