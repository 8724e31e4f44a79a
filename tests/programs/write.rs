//! Writing the syntax tree as `.net` source.

use super::ast::*;
use super::gen::Gen;
use super::rng::Rng;
use super::{ModelOut, Program};
use std::fmt::Write;

pub(crate) fn v(v: V, params: &[Param]) -> String {
    match v {
        V::Lit(n) => n.to_string(),
        V::Param(i) => params[i].name.clone(),
    }
}

pub(crate) fn window_args(win: &Window, params: &[Param], args: &mut Vec<String>) {
    args.push(match &win.kernel {
        Kernel::Size(a, b) => format!("{a}x{b}"),
        Kernel::Square(k) => format!("kernel={}", v(*k, params)),
    });
    if let Some(s) = win.stride {
        args.push(format!("/{}", v(s, params)));
    }
    if win.pad_word {
        args.push(if win.valid { "valid" } else { "same" }.into());
    }
}

/// Writes one statement; arguments come in a random order, as the language allows.
pub(crate) fn write_stmt(
    out: &mut Vec<String>,
    s: &Stmt,
    params: &[Param],
    blocks: &[Block],
    depth: usize,
    rng: &mut Rng,
) {
    let pad = "    ".repeat(depth);
    let label = s.label.as_ref().map_or(String::new(), |l| format!("{l}: "));
    let repeat = s
        .repeat
        .map_or(String::new(), |r| format!(" * {}", v(r, params)));
    let open = |out: &mut Vec<String>, head: &str, body: &[Stmt], rng: &mut Rng| {
        out.push(format!("{pad}{label}{head}{{"));
        for b in body {
            write_stmt(out, b, params, blocks, depth + 1, rng);
        }
        out.push(format!("{pad}}}{repeat}"));
    };
    let (op, mut args): (&str, Vec<String>) = match &s.kind {
        Kind::Group { concat, branches } => {
            let head = if *concat { "concat " } else { "add " };
            return open(out, head, branches, rng);
        }
        Kind::Seq(body) => return open(out, "", body, rng),
        Kind::Call { block, args } => {
            let b = &blocks[*block];
            let args: Vec<String> = args.iter().map(|a| v(*a, params)).collect();
            out.push(format!(
                "{pad}{label}{}({}){repeat}",
                b.name,
                args.join(", ")
            ));
            return;
        }
        Kind::Conv {
            win,
            filters,
            groups,
            flags,
        } => {
            let mut a = vec![v(*filters, params)];
            window_args(win, params, &mut a);
            if let Some(g) = groups {
                a.push(format!("groups={}", v(*g, params)));
            }
            a.extend(flags.iter().map(|f| f.to_string()));
            ("conv", a)
        }
        Kind::DwConv { win, mult, flags } => {
            let mut a = Vec::new();
            window_args(win, params, &mut a);
            if let Some(m) = mult {
                a.push(format!("mult={}", v(*m, params)));
            }
            a.extend(flags.iter().map(|f| f.to_string()));
            ("dwconv", a)
        }
        Kind::Pool { max, win } => {
            let mut a = Vec::new();
            window_args(win, params, &mut a);
            (if *max { "maxpool" } else { "avgpool" }, a)
        }
        Kind::Global => ("avgpool", vec!["global".into()]),
        Kind::Lrn { args, radius } => {
            let mut a = args.clone();
            if let Some(r) = radius {
                a.push(format!("radius={}", v(*r, params)));
            }
            ("lrn", a)
        }
        Kind::Fc { units, flags } => {
            let mut a = vec![v(*units, params)];
            a.extend(flags.iter().map(|f| f.to_string()));
            ("fc", a)
        }
        Kind::Dropout(rate) => ("dropout", rate.iter().map(|r| r.to_string()).collect()),
        Kind::BatchNorm { word, args } => (*word, args.clone()),
        Kind::Relu => ("relu", vec![]),
        Kind::Identity => ("identity", vec![]),
    };
    rng.shuffle(&mut args);
    let args: String = args.iter().map(|a| format!(" {a}")).collect();
    out.push(format!("{pad}{label}{op}{args}{repeat}"));
}

pub(crate) fn render(mut g: Gen, models: Vec<ModelOut>, seed: u64) -> Program {
    let mut src = String::new();
    let _ = writeln!(src, "# random program, seed {seed}");
    let mut r = std::mem::replace(&mut g.rng, Rng::new(0));
    // Blocks may be defined after the models that call them.
    let blocks_first = r.chance(70);
    let mut block_text = String::new();
    for b in &g.blocks {
        let params: Vec<&str> = b.params.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(block_text, "block {}({}) {{", b.name, params.join(", "));
        let mut lines = Vec::new();
        for s in &b.body {
            write_stmt(&mut lines, s, &b.params, &g.blocks, 1, &mut r);
        }
        for l in lines {
            let _ = writeln!(block_text, "{l}");
        }
        let _ = writeln!(block_text, "}}\n");
    }
    if blocks_first {
        src += &block_text;
    }
    for m in &models {
        let _ = writeln!(src, "model {} {{", m.name);
        for l in &m.lines {
            let _ = writeln!(src, "{l}");
        }
        let _ = writeln!(src, "}}\n");
    }
    if !blocks_first {
        src += &block_text;
    }
    Program {
        seed,
        source: src,
        models: models.into_iter().map(|m| m.name).collect(),
        calls_differ: g.vary,
    }
}
