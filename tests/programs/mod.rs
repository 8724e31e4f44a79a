//! A generator of random valid `.net` programs, for tests that feed every
//! back end with what the language allows rather than what the zoo happens
//! to use: every layer kind and argument form, blocks with parameters
//! calling blocks, `concat` and `add` branches (nested, sequences, vectors),
//! repetition, training settings, and names taken from the keywords of Rust
//! and Python, their builtins, and the names netc's generated code uses.
//!
//! `generate(seed)` is deterministic: a failing program is reproduced from
//! its seed alone. The generator tracks every shape (its own small copy of
//! the shape rules) so that what it writes is valid; a program `netc check`
//! refuses is a bug of the generator or of `check`, and the tests say so.
//!
//! Blocks are called so that one generated struct or class serves every
//! call: parameters that change the structure of a block (strides, kernels
//! of `valid` windows and of pooling without an explicit stride, LRN radii,
//! repetition counts) take the same value at every call; filter counts,
//! units, multipliers, groups and `same` convolution kernels vary. One
//! program in ten breaks that rule ([`Program::calls_differ`]).

mod ast;
mod gen;
mod names;
mod rng;
mod shape;
mod write;

pub use names::{
    CASE_COLLISIONS, NETC_NAMES, ORDINARY, PYTHON_BUILTINS, PYTHON_KEYWORDS, RUST_KEYWORDS,
};
pub use rng::Rng;

use ast::*;
use gen::{Gen, Scope};
use names::{any_name, unique_names};
use std::collections::HashSet;
use write::{render, write_stmt};

/// One model's source lines, and what `check` must find.
pub(crate) struct ModelOut {
    pub(crate) name: String,
    pub(crate) lines: Vec<String>,
}

/// A generated program: its source, and its models' names.
pub struct Program {
    pub seed: u64,
    pub source: String,
    pub models: Vec<String>,
    /// The calls of a block may differ in structure (a stride or a `valid`
    /// kernel from a parameter, say): `check` may refuse such a program,
    /// but what it accepts every back end must accept.
    pub calls_differ: bool,
}

/// Where the names of a program come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Mostly keywords, builtins, netc's own names and case collisions.
    Hostile,
    /// Only ordinary names: for telling a naming bug from another.
    Plain,
}

/// The program of `seed`, with hostile names.
pub fn generate(seed: u64) -> Program {
    generate_with(seed, Names::Hostile)
}

/// The program of `seed`: up to three blocks, one or two models.
pub fn generate_with(seed: u64, names: Names) -> Program {
    let mut rng = Rng::new(seed);
    let vary = rng.chance(10);
    let mut g = Gen {
        rng,
        blocks: Vec::new(),
        called: HashSet::new(),
        names,
        vary,
    };
    let mut block_names = HashSet::new();
    for _ in 0..g.rng.range(0, 3) {
        let x = if g.rng.chance(85) {
            Shape::Map {
                h: g.rng.range(1, 12),
                w: g.rng.range(1, 12),
                c: g.rng.range(1, 16),
            }
        } else {
            Shape::Vector(g.rng.range(1, 32))
        };
        if let Some(b) = g.block(x, &mut block_names) {
            g.blocks.push(b);
        }
    }
    let mut model_names = HashSet::new();
    let mut models = Vec::new();
    let count = if g.rng.chance(25) { 2 } else { 1 };
    for _ in 0..count {
        let name = loop {
            // Now and then a block's name, or another spelling of it.
            let n = match g.blocks.first() {
                Some(b) if names == Names::Hostile && g.rng.chance(15) => b.name.clone(),
                _ => any_name(&mut g.rng, g.names),
            };
            let clashes = names == Names::Plain && block_names.contains(&n);
            if !clashes && model_names.insert(n.clone()) {
                break n;
            }
        };
        models.push(model(&mut g, name));
    }
    render(g, models, seed)
}

pub(crate) fn model(g: &mut Gen, name: String) -> ModelOut {
    let (h, w, c) = (g.rng.range(1, 14), g.rng.range(1, 14), g.rng.range(1, 8));
    let mut sc = Scope {
        params: Vec::new(),
        env: Vec::new(),
        in_block: false,
        labels: HashSet::new(),
        callable: g.blocks.len(),
    };
    let mut x = Shape::Map { h, w, c };
    let (mut body, out) = g.seq(&mut sc, x, 0, 7).unwrap_or((Vec::new(), x));
    x = out;
    let classes = if g.rng.chance(30) {
        g.rng.range(1, 12)
    } else {
        10
    };
    // The class scores: a vector, or a 1x1 map.
    let fc = |g: &mut Gen| Kind::Fc {
        units: V::Lit(classes),
        flags: g.flags(&["relu", "nobias", "decay"]),
    };
    let conv1x1 = |g: &mut Gen| Kind::Conv {
        win: Window {
            kernel: Kernel::Size(1, 1),
            stride: None,
            valid: false,
            pad_word: false,
        },
        filters: V::Lit(classes),
        groups: None,
        flags: g.flags(&["relu", "nobias"]),
    };
    let tail = match x {
        Shape::Vector(n) if n == classes && g.rng.chance(50) => vec![],
        Shape::Vector(_) => vec![fc(g)],
        Shape::Map { h: 1, w: 1, c } if c == classes && g.rng.chance(50) => vec![],
        Shape::Map { .. } => match g.rng.range(0, 2) {
            0 => vec![fc(g)],
            1 => vec![conv1x1(g), Kind::Global],
            _ => vec![Kind::Global, conv1x1(g)],
        },
    };
    for kind in tail {
        let mut s = Stmt::new(kind);
        s.label = g.label(&mut sc, 30);
        body.push(s);
    }
    unique_names(&mut body, &g.blocks, &[]);
    let mut lines = vec![format!("input {h}x{w}x{c}")];
    let mut settings = Vec::new();
    if classes != 10 || g.rng.chance(10) {
        settings.push(format!("classes={classes}"));
    }
    for (key, values) in [
        ("decay", &["0", "0.004", "500"][..]),
        ("dropout", &["0.5", "0.1"][..]),
        ("augment", &["on", "off", "true", "no"][..]),
        ("average", &["on", "off"][..]),
        ("lr", &["0.1", "0.01", "1e-3"][..]),
        ("batch", &["1", "32", "128"][..]),
        ("steps", &["1", "100"][..]),
    ] {
        if g.rng.chance(15) {
            settings.push(format!("{key}={}", g.rng.pick(values)));
        }
    }
    let mut r = std::mem::replace(&mut g.rng, Rng::new(0));
    let mut body_lines = Vec::new();
    // Where each top-level statement starts, and the end.
    let mut starts = Vec::new();
    for s in &body {
        starts.push(body_lines.len());
        write_stmt(&mut body_lines, s, &[], &g.blocks, 1, &mut r);
    }
    starts.push(body_lines.len());
    g.rng = r;
    // `train` lines may sit anywhere at the model's top level after `input`.
    let mut at = vec![];
    for setting in settings {
        at.push((*g.rng.pick(&starts), setting));
    }
    at.sort_by_key(|a| std::cmp::Reverse(a.0));
    for (i, setting) in at {
        body_lines.insert(i, format!("    train {setting}"));
    }
    lines.iter_mut().for_each(|l| *l = format!("    {l}"));
    lines.extend(body_lines);
    ModelOut { name, lines }
}
