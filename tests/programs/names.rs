//! The names programs are written with, and netc's naming of a scope.

use super::ast::{Block, Kind, Stmt};
use super::rng::Rng;
use super::shape::Sim;
use super::Names;
use std::collections::{HashMap, HashSet};

/// Keywords of Rust: strict, reserved and weak, every edition.
#[rustfmt::skip]
pub const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
    "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
    "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while",
    "yield", "abstract", "become", "do", "final", "macro", "override", "priv", "union",
    "macro_rules", "raw", "safe", "auto", "default",
];

/// Keywords and soft keywords of Python.
pub const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type", "_",
];

/// Python builtins and special names a generated module could shadow.
#[rustfmt::skip]
pub const PYTHON_BUILTINS: &[&str] = &[
    "print", "len", "range", "list", "dict", "object", "super", "int", "float", "str", "id", "map",
    "filter", "min", "max", "sum", "abs", "all", "any", "bool", "iter", "next", "open", "format",
    "hash", "vars", "dir", "locals", "globals", "compile", "exec", "eval", "tuple", "set",
    "Exception", "ValueError", "__import__", "__name__", "__init__", "__class__", "__dict__",
    "__call__", "__x",
];

/// Names netc's generated Rust and Python use themselves: variables,
/// parameters, methods, helper classes, imports, modules and types.
#[rustfmt::skip]
pub const NETC_NAMES: &[&str] = &[
    "x", "device", "in_channels", "in_height", "in_width", "self", "forward", "training",
    "parameters", "F", "nn", "torch", "np", "json", "B", "Module", "Tensor", "Backend", "MaxPool",
    "Conv2d", "Conv2dConfig", "Lrn", "Dense", "BatchNorm", "AvgPool", "AvgPoolSame", "AvgPool2d",
    "Linear", "Dropout", "relu", "concat", "conv", "conv_relu", "conv_concat", "conv_concat_pool",
    "XAVIER", "ZeroBias", "Kernels",
    "Net", "Model", "INPUT", "CLASSES", "same_padding", "window_padding", "read_safetensors",
    "load_netc", "netc_layout", "LINEAR", "ceil_fits", "new", "init", "main", "model", "std", "core", "burn", "netc_runtime", "Vec",
    "Option", "Some", "None", "Ok", "Err", "Result", "String", "Box", "usize", "f32", "u64",
    "backend", "PhantomData", "state_dict", "modules", "children", "to", "eval", "apply",
    "buffers", "decay_term", "decay_loss", "images", "PaddingConfig2d", "kernel", "stride",
    "groups", "mult", "radius", "weight", "bias", "gamma", "beta", "running_mean", "cli", "run",
    "Cli", "Device", "Settings", "Spec", "SPEC", "ExitCode", "Autodiff", "Flex", "Config",
];

/// Names that collide once converted to a type name (`my_block`, `myBlock`
/// and `MyBlock` all give `MyBlock`), or to a helper's or the module's name.
#[rustfmt::skip]
pub const CASE_COLLISIONS: &[&str] = &[
    "my_block", "myBlock", "MyBlock", "fire", "Fire", "FIRE", "a__b", "a_b", "a_b_", "_a_b", "A_b",
    "conv2d", "conv_2d", "max_pool", "maxPool", "avg_pool_same", "lrn_", "dense", "f", "b", "net",
    "Net_", "batch_norm", "tensor", "module", "linear", "x1", "x_1", "_", "__", "___", "_x",
    "self_", "in_channels_", "x_in", "x_2",
];

/// Names nobody would object to.
pub const ORDINARY: &[&str] = &[
    "stem", "head", "trunk", "squeeze", "expand", "e1", "e3", "s", "k", "n", "w", "h", "a", "c",
    "left", "right", "tower", "shortcut", "skip", "body", "fire2", "mix", "reduce", "logits",
    "features", "stage1", "stage2",
];

/// Built-in layer names: never block names.
#[rustfmt::skip]
pub(crate) const LAYER_NAMES: &[&str] = &[
    "conv", "dwconv", "maxpool", "avgpool", "lrn", "fc", "dropout", "batchnorm", "bn", "relu",
    "identity",
];

/// Words netc reserves for block and parameter names.
pub(crate) const RESERVED: &[&str] = &[
    "relu", "linear", "same", "valid", "nobias", "decay", "global", "input", "train", "concat",
    "add", "on", "off", "true", "false", "yes", "no",
];

/// A randomly drawn name: hostile (keywords, builtins, netc's own names,
/// case collisions) more often than not.
pub(crate) fn any_name(rng: &mut Rng, names: Names) -> String {
    if names == Names::Plain {
        return rng.pick(ORDINARY).to_string();
    }
    let pool = match rng.range(0, 9) {
        0 | 1 => RUST_KEYWORDS,
        2 | 3 => PYTHON_KEYWORDS,
        4 => PYTHON_BUILTINS,
        5 | 6 => NETC_NAMES,
        7 => CASE_COLLISIONS,
        _ => ORDINARY,
    };
    rng.pick(pool).to_string()
}

/// A name for a block or a block parameter: not a layer, not reserved.
pub(crate) fn definable_name(rng: &mut Rng, names: Names) -> String {
    loop {
        let n = any_name(rng, names);
        if !LAYER_NAMES.contains(&n.as_str()) && !RESERVED.contains(&n.as_str()) {
            return n;
        }
    }
}

/// netc's naming of one scope (labels, numbered repetitions, automatic
/// names), to keep every name unique: `x: conv * 2` gives `x1` and `x2`,
/// which may meet a label `x1` or an automatic `conv1`.
pub(crate) fn names_unique(body: &[Stmt], blocks: &[Block], env: &[u64]) -> bool {
    pub(crate) fn labels(s: &Stmt, out: &mut Vec<String>) {
        out.extend(s.label.clone());
        match &s.kind {
            Kind::Group { branches, .. } => branches.iter().for_each(|b| labels(b, out)),
            Kind::Seq(body) => body.iter().for_each(|b| labels(b, out)),
            _ => {}
        }
    }
    struct Names<'a> {
        taken: HashSet<String>,
        counters: HashMap<String, u64>,
        seen: HashSet<String>,
        blocks: &'a [Block],
        env: &'a [u64],
    }
    impl Names<'_> {
        fn stmt(&mut self, s: &Stmt) -> bool {
            let count = s.repeat.map_or(1, |v| Sim::val(v, self.env));
            for i in 1..=count {
                if let Kind::Seq(body) = &s.kind {
                    if !body.iter().all(|b| self.stmt(b)) {
                        return false;
                    }
                    continue;
                }
                let name = match &s.label {
                    Some(l) if count == 1 => l.clone(),
                    Some(l) => format!("{l}{i}"),
                    None => {
                        let base = match &s.kind {
                            Kind::Conv { .. } => "conv".to_string(),
                            Kind::DwConv { .. } => "dwconv".into(),
                            Kind::Pool { .. } | Kind::Global => "pool".into(),
                            Kind::Lrn { .. } => "lrn".into(),
                            Kind::Fc { .. } => "fc".into(),
                            Kind::Dropout(_) => "dropout".into(),
                            Kind::BatchNorm { .. } => "bn".into(),
                            Kind::Relu => "relu".into(),
                            Kind::Identity => "identity".into(),
                            Kind::Group { concat: true, .. } => "concat".into(),
                            Kind::Group { concat: false, .. } => "add".into(),
                            Kind::Call { block, .. } => self.blocks[*block].name.clone(),
                            Kind::Seq(_) => unreachable!(),
                        };
                        loop {
                            let n = self.counters.entry(base.clone()).or_insert(0);
                            *n += 1;
                            let name = format!("{base}{n}");
                            if self.taken.insert(name.clone()) {
                                break name;
                            }
                        }
                    }
                };
                if !self.seen.insert(name) {
                    return false;
                }
                if let Kind::Group { branches, .. } = &s.kind {
                    if !branches.iter().all(|b| self.stmt(b)) {
                        return false;
                    }
                }
            }
            true
        }
    }
    let mut all = Vec::new();
    body.iter().for_each(|s| labels(s, &mut all));
    let taken: HashSet<String> = all.iter().cloned().collect();
    if taken.len() != all.len() {
        return false;
    }
    let mut names = Names {
        taken,
        counters: HashMap::new(),
        seen: HashSet::new(),
        blocks,
        env,
    };
    body.iter().all(|s| names.stmt(s))
}

/// Drops the labels that make two names of a scope equal: first those of
/// repeated statements and inside them, then every label.
pub(crate) fn unique_names(body: &mut [Stmt], blocks: &[Block], env: &[u64]) {
    pub(crate) fn strip(s: &mut Stmt, all: bool) {
        let inside = all || s.repeat.is_some();
        if inside {
            s.label = None;
        }
        match &mut s.kind {
            Kind::Group { branches, .. } => branches.iter_mut().for_each(|b| strip(b, inside)),
            Kind::Seq(body) => body.iter_mut().for_each(|b| strip(b, inside)),
            _ => {}
        }
    }
    if names_unique(body, blocks, env) {
        return;
    }
    body.iter_mut().for_each(|s| strip(s, false));
    if names_unique(body, blocks, env) {
        return;
    }
    body.iter_mut().for_each(|s| strip(s, true));
    assert!(
        names_unique(body, blocks, env),
        "unlabelled names are unique"
    );
}
