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

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// program on every machine and every version of every crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next_u64() as usize % items.len()]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.next_u64() as usize % (i + 1);
            items.swap(i, j);
        }
    }
}

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
    "Linear", "Dropout", "relu", "concat", "conv", "conv_relu", "XAVIER", "ZeroBias", "Kernels",
    "Net", "Model", "INPUT", "CLASSES", "same_padding", "window_padding", "read_safetensors",
    "load_netc", "new", "init", "main", "model", "std", "core", "burn", "netc_runtime", "Vec",
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
const LAYER_NAMES: &[&str] = &[
    "conv", "dwconv", "maxpool", "avgpool", "lrn", "fc", "dropout", "batchnorm", "bn", "relu",
    "identity",
];

/// Words netc reserves for block and parameter names.
const RESERVED: &[&str] = &[
    "relu", "linear", "same", "valid", "nobias", "decay", "global", "input", "train", "concat",
    "add", "on", "off", "true", "false", "yes", "no",
];

/// A randomly drawn name: hostile (keywords, builtins, netc's own names,
/// case collisions) more often than not.
fn any_name(rng: &mut Rng, names: Names) -> String {
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
fn definable_name(rng: &mut Rng, names: Names) -> String {
    loop {
        let n = any_name(rng, names);
        if !LAYER_NAMES.contains(&n.as_str()) && !RESERVED.contains(&n.as_str()) {
            return n;
        }
    }
}

/// An activation's shape, as netc's shape inference computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Map { h: u64, w: u64, c: u64 },
    Vector(u64),
}

impl Shape {
    fn channels(self) -> u64 {
        match self {
            Shape::Map { c, .. } => c,
            Shape::Vector(n) => n,
        }
    }

    fn is_map(self) -> bool {
        matches!(self, Shape::Map { .. })
    }

    /// Too big to keep the test fast: refused by the generator, not by netc.
    fn too_big(self) -> bool {
        match self {
            Shape::Map { h, w, c } => c > 48 || h * w * c > 4096,
            Shape::Vector(n) => n > 64,
        }
    }
}

/// A whole number as written: a literal, or a parameter of the enclosing block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V {
    Lit(u64),
    Param(usize),
}

/// What a block parameter stands for, which fixes the values it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// Filters and units.
    Count,
    /// `mult=`.
    Mult,
    /// `groups=`.
    Groups,
    /// The kernel of a `same` convolution, or of a pooling with an explicit
    /// stride and `same` padding: the output size does not depend on it.
    Kernel,
    /// Strides, `valid` kernels, radii and repetition counts: one value at
    /// every call, so that every call has the same structure.
    Fixed(u64),
}

impl Class {
    fn draw(self, rng: &mut Rng) -> u64 {
        match self {
            Class::Count => rng.range(1, 16),
            Class::Mult => rng.range(1, 3),
            Class::Groups => *rng.pick(&[1, 1, 2, 2, 3, 4]),
            Class::Kernel => rng.range(1, 5),
            Class::Fixed(v) => v,
        }
    }
}

#[derive(Debug, Clone)]
enum Kernel {
    /// `KxK` (or `KxL`).
    Size(u64, u64),
    /// `kernel=K`.
    Square(V),
}

#[derive(Debug, Clone)]
struct Window {
    kernel: Kernel,
    stride: Option<V>,
    /// `None`: the default (same), written or not.
    valid: bool,
    pad_word: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Conv {
        win: Window,
        filters: V,
        groups: Option<V>,
        flags: Vec<&'static str>,
    },
    DwConv {
        win: Window,
        mult: Option<V>,
        flags: Vec<&'static str>,
    },
    Pool {
        max: bool,
        win: Window,
    },
    Global,
    Lrn {
        args: Vec<String>,
        radius: Option<V>,
    },
    Fc {
        units: V,
        flags: Vec<&'static str>,
    },
    Dropout(Option<&'static str>),
    BatchNorm {
        word: &'static str,
        args: Vec<String>,
    },
    Relu,
    Identity,
    Group {
        concat: bool,
        branches: Vec<Stmt>,
    },
    Seq(Vec<Stmt>),
    Call {
        block: usize,
        args: Vec<V>,
    },
}

#[derive(Debug, Clone)]
struct Stmt {
    label: Option<String>,
    kind: Kind,
    repeat: Option<V>,
}

impl Stmt {
    fn new(kind: Kind) -> Stmt {
        Stmt {
            label: None,
            kind,
            repeat: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    class: Class,
}

#[derive(Debug, Clone)]
struct Block {
    name: String,
    params: Vec<Param>,
    body: Vec<Stmt>,
    /// Blocks take a feature map, or a vector, at every call.
    takes_map: bool,
}

/// The window's output size along one dimension, or `None` when it does not fit.
fn window_out(size: u64, kernel: u64, stride: u64, valid: bool) -> Option<u64> {
    if !valid {
        Some(size.div_ceil(stride))
    } else if kernel <= size {
        Some((size - kernel) / stride + 1)
    } else {
        None
    }
}

/// Shape inference over the generator's own statements; `env` holds the
/// values of the enclosing block's parameters.
struct Sim<'a> {
    blocks: &'a [Block],
    /// Calls may give a block's fixed parameters other values.
    vary: bool,
}

impl Sim<'_> {
    fn val(v: V, env: &[u64]) -> u64 {
        match v {
            V::Lit(n) => n,
            V::Param(i) => env[i],
        }
    }

    fn window(win: &Window, x: Shape, env: &[u64], default_stride: bool) -> Option<(u64, u64)> {
        let Shape::Map { h, w, .. } = x else {
            return None;
        };
        let (kh, kw) = match win.kernel {
            Kernel::Size(a, b) => (a, b),
            Kernel::Square(v) => (Self::val(v, env), Self::val(v, env)),
        };
        let (sh, sw) = match win.stride {
            Some(v) => (Self::val(v, env), Self::val(v, env)),
            None if default_stride => (kh, kw),
            None => (1, 1),
        };
        Some((
            window_out(h, kh, sh, win.valid)?,
            window_out(w, kw, sw, win.valid)?,
        ))
    }

    fn stmts(&self, stmts: &[Stmt], mut x: Shape, env: &[u64]) -> Option<Shape> {
        for s in stmts {
            x = self.stmt(s, x, env)?;
        }
        Some(x)
    }

    fn stmt(&self, s: &Stmt, mut x: Shape, env: &[u64]) -> Option<Shape> {
        let count = s.repeat.map_or(1, |v| Self::val(v, env));
        for _ in 0..count {
            x = self.kind(&s.kind, x, env)?;
            if x.too_big() {
                return None;
            }
        }
        Some(x)
    }

    fn kind(&self, kind: &Kind, x: Shape, env: &[u64]) -> Option<Shape> {
        let val = |v: V| Self::val(v, env);
        match kind {
            Kind::Conv {
                win,
                filters,
                groups,
                ..
            } => {
                let c = x.channels();
                let f = val(*filters);
                let g = groups.map_or(1, val);
                if !c.is_multiple_of(g) || !f.is_multiple_of(g) {
                    return None;
                }
                let (h, w) = Self::window(win, x, env, false)?;
                Some(Shape::Map { h, w, c: f })
            }
            Kind::DwConv { win, mult, .. } => {
                let c = x.channels() * mult.map_or(1, val);
                let (h, w) = Self::window(win, x, env, false)?;
                Some(Shape::Map { h, w, c })
            }
            Kind::Pool { win, .. } => {
                let (h, w) = Self::window(win, x, env, true)?;
                Some(Shape::Map {
                    h,
                    w,
                    c: x.channels(),
                })
            }
            Kind::Global => x.is_map().then_some(Shape::Map {
                h: 1,
                w: 1,
                c: x.channels(),
            }),
            Kind::Lrn { .. } => x.is_map().then_some(x),
            Kind::Fc { units, .. } => Some(Shape::Vector(val(*units))),
            Kind::Dropout(_) | Kind::BatchNorm { .. } | Kind::Relu | Kind::Identity => Some(x),
            Kind::Seq(body) => self.stmts(body, x, env),
            Kind::Group { concat, branches } => {
                let outs: Vec<Shape> = branches
                    .iter()
                    .map(|b| self.stmt(b, x, env))
                    .collect::<Option<_>>()?;
                let first = outs[0];
                if !concat {
                    return outs.iter().all(|o| *o == first).then_some(first);
                }
                let c = outs.iter().map(|o| o.channels()).sum();
                match first {
                    Shape::Map { h, w, .. } => outs
                        .iter()
                        .all(|o| matches!(o, Shape::Map { h: h2, w: w2, .. } if *h2 == h && *w2 == w))
                        .then_some(Shape::Map { h, w, c }),
                    Shape::Vector(_) => outs
                        .iter()
                        .all(|o| !o.is_map())
                        .then_some(Shape::Vector(c)),
                }
            }
            Kind::Call { block, args } => {
                let b = &self.blocks[*block];
                if b.takes_map != x.is_map() {
                    return None;
                }
                let inner: Vec<u64> = args.iter().map(|a| val(*a)).collect();
                for (p, v) in b.params.iter().zip(&inner) {
                    if let Class::Fixed(f) = p.class {
                        assert!(self.vary || f == *v, "a fixed parameter takes one value");
                    }
                }
                self.stmts(&b.body, x, &inner)
            }
        }
    }
}

/// The scope a statement is generated in: a model, or a block being defined.
struct Scope {
    /// The parameters of the block being defined (empty in a model).
    params: Vec<Param>,
    /// Their values for the call the block is defined against.
    env: Vec<u64>,
    in_block: bool,
    /// Labels used in this scope, branches included.
    labels: HashSet<String>,
    /// Blocks that may be called: those defined before.
    callable: usize,
}

/// The generator of one program.
struct Gen {
    rng: Rng,
    blocks: Vec<Block>,
    /// Blocks called so far: the others are called first.
    called: HashSet<usize>,
    names: Names,
    /// Calls may give a block's strides, `valid` kernels, radii and
    /// repetition counts other values than at its other calls.
    vary: bool,
}

/// The slot a number fills, which decides the parameter class it may use.
#[derive(Clone, Copy)]
enum Slot {
    Count,
    Mult,
    Groups,
    Kernel,
    Fixed { lo: u64, hi: u64 },
}

impl Gen {
    /// A number for `slot`: a literal, or (in a block) a parameter, new or reused.
    fn value(&mut self, slot: Slot, sc: &mut Scope) -> V {
        let class = match slot {
            Slot::Count => Class::Count,
            Slot::Mult => Class::Mult,
            Slot::Groups => Class::Groups,
            Slot::Kernel => Class::Kernel,
            Slot::Fixed { lo, hi } => Class::Fixed(self.rng.range(lo, hi)),
        };
        if sc.in_block && self.rng.chance(45) {
            let fits = |c: Class| match (slot, c) {
                (Slot::Fixed { lo, hi }, Class::Fixed(v)) => (lo..=hi).contains(&v),
                (_, c) => c == class,
            };
            let reuse: Vec<usize> = (0..sc.params.len())
                .filter(|&i| fits(sc.params[i].class))
                .collect();
            if !reuse.is_empty() && self.rng.chance(50) {
                return V::Param(*self.rng.pick(&reuse));
            }
            if sc.params.len() < 5 {
                let name = loop {
                    let n = definable_name(&mut self.rng, self.names);
                    if !sc.params.iter().any(|p| p.name == n) {
                        break n;
                    }
                };
                sc.params.push(Param { name, class });
                let v = class.draw(&mut self.rng);
                sc.env.push(v);
                return V::Param(sc.params.len() - 1);
            }
        }
        V::Lit(class.draw(&mut self.rng))
    }

    /// Some of `choices`; `linear` (the default) never with `relu`.
    fn flags(&mut self, choices: &[&'static str]) -> Vec<&'static str> {
        let mut flags: Vec<&'static str> = choices
            .iter()
            .copied()
            .filter(|_| self.rng.chance(30))
            .collect();
        if flags.contains(&"relu") {
            flags.retain(|f| *f != "linear");
        }
        flags
    }

    /// A window; `pool` windows default their stride to the kernel.
    fn window(&mut self, sc: &mut Scope, pool: bool, stride: Option<u64>) -> Window {
        let valid = self.rng.chance(25);
        let explicit = stride.is_some() || self.rng.chance(50);
        // The output size depends on the kernel with `valid` padding, and
        // on a pooling's kernel when its stride defaults to it.
        let fixed_kernel = valid || (pool && !explicit);
        let kernel = if self.rng.chance(35) {
            let slot = if fixed_kernel {
                Slot::Fixed { lo: 1, hi: 3 }
            } else {
                Slot::Kernel
            };
            Kernel::Square(self.value(slot, sc))
        } else if self.rng.chance(80) {
            let k = self.rng.range(1, 5);
            Kernel::Size(k, k)
        } else {
            Kernel::Size(self.rng.range(1, 4), self.rng.range(1, 4))
        };
        let stride = match stride {
            Some(s) => Some(V::Lit(s)),
            None if explicit => Some(self.value(Slot::Fixed { lo: 1, hi: 3 }, sc)),
            None => None,
        };
        Window {
            kernel,
            stride,
            valid,
            pad_word: valid || self.rng.chance(20),
        }
    }

    /// One layer (no group, no call), possibly with a stride forced.
    fn leaf(&mut self, sc: &mut Scope, x: Shape, stride: Option<u64>) -> Kind {
        let spatial = x.is_map();
        let choice = if stride.is_some() {
            *self.rng.pick(&[0, 0, 1, 2])
        } else if spatial {
            *self.rng.pick(&[0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9])
        } else {
            *self.rng.pick(&[5, 6, 7, 8, 9])
        };
        match choice {
            0 => {
                let win = self.window(sc, false, stride);
                let c = x.channels();
                let (filters, groups) = match self.rng.range(0, 3) {
                    // Groups that fit: a divisor of the channels, filters a multiple of it.
                    0 if c > 1 => {
                        let divisors: Vec<u64> = (2..=c).filter(|g| c.is_multiple_of(*g)).collect();
                        let g = *self.rng.pick(&divisors);
                        let filters = g * self.rng.range(1, (16 / g).max(1));
                        (V::Lit(filters), Some(V::Lit(g)))
                    }
                    1 => {
                        let groups = self.value(Slot::Groups, sc);
                        (self.value(Slot::Count, sc), Some(groups))
                    }
                    _ => (self.value(Slot::Count, sc), None),
                };
                Kind::Conv {
                    win,
                    filters,
                    groups,
                    flags: self.flags(&["relu", "nobias", "decay", "linear"]),
                }
            }
            1 => {
                let win = self.window(sc, false, stride);
                Kind::DwConv {
                    win,
                    mult: self.rng.chance(50).then(|| self.value(Slot::Mult, sc)),
                    flags: self.flags(&["relu", "nobias", "decay"]),
                }
            }
            2 => {
                let max = self.rng.chance(50);
                let win = self.window(sc, true, stride);
                Kind::Pool { max, win }
            }
            3 => {
                if self.rng.chance(30) {
                    Kind::Global
                } else {
                    Kind::Relu
                }
            }
            4 => {
                let mut args = Vec::new();
                let mut radius = None;
                if self.rng.chance(40) {
                    radius = Some(self.value(Slot::Fixed { lo: 1, hi: 5 }, sc));
                }
                for (key, values) in [
                    ("bias", &["1.0", "2", "0.5"][..]),
                    ("alpha", &["0.001/9", "1e-4", "0.0001"][..]),
                    ("beta", &["0.75", "0.5"][..]),
                ] {
                    if self.rng.chance(30) {
                        args.push(format!("{key}={}", self.rng.pick(values)));
                    }
                }
                Kind::Lrn { args, radius }
            }
            5 => Kind::Fc {
                units: self.value(Slot::Count, sc),
                flags: self.flags(&["relu", "nobias", "decay", "linear"]),
            },
            6 => Kind::Dropout(
                self.rng
                    .chance(50)
                    .then(|| *self.rng.pick(&["0.5", "0.25", "0", "0.9"])),
            ),
            7 => {
                let mut args = Vec::new();
                if self.rng.chance(30) {
                    args.push("relu".to_string());
                }
                if self.rng.chance(25) {
                    args.push(format!("eps={}", self.rng.pick(&["1e-5", "0.001", "0.01"])));
                }
                if self.rng.chance(25) {
                    args.push(format!(
                        "momentum={}",
                        self.rng.pick(&["0.9", "0.99", "0.5", "0"])
                    ));
                }
                Kind::BatchNorm {
                    word: if self.rng.chance(50) {
                        "bn"
                    } else {
                        "batchnorm"
                    },
                    args,
                }
            }
            8 => Kind::Relu,
            _ => Kind::Identity,
        }
    }

    /// A block call fitting `x`, with arguments that keep it valid.
    fn call(&mut self, sc: &mut Scope, x: Shape) -> Option<Kind> {
        let mut candidates: Vec<usize> = (0..sc.callable)
            .filter(|&b| self.blocks[b].takes_map == x.is_map())
            .collect();
        let fresh: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|b| !self.called.contains(b))
            .collect();
        if !fresh.is_empty() && self.rng.chance(80) {
            candidates = fresh;
        }
        if candidates.is_empty() {
            return None;
        }
        let block = *self.rng.pick(&candidates);
        for _ in 0..8 {
            let params = self.blocks[block].params.clone();
            let args: Vec<V> = params
                .iter()
                .map(|p| {
                    // Pass a parameter of the caller of the same class, or a literal.
                    let same: Vec<usize> = (0..sc.params.len())
                        .filter(|&i| sc.params[i].class == p.class)
                        .collect();
                    if !same.is_empty() && self.rng.chance(40) {
                        V::Param(*self.rng.pick(&same))
                    } else if self.vary && matches!(p.class, Class::Fixed(_)) && self.rng.chance(50)
                    {
                        // A call with another structure.
                        V::Lit(self.rng.range(1, 3))
                    } else {
                        V::Lit(p.class.draw(&mut self.rng))
                    }
                })
                .collect();
            let kind = Kind::Call { block, args };
            let sim = Sim {
                blocks: &self.blocks,
                vary: self.vary,
            };
            if sim.kind(&kind, x, &sc.env).is_some() {
                self.called.insert(block);
                return Some(kind);
            }
        }
        None
    }

    fn label(&mut self, sc: &mut Scope, percent: u64) -> Option<String> {
        if !self.rng.chance(percent) {
            return None;
        }
        let name = any_name(&mut self.rng, self.names);
        sc.labels.insert(name.clone()).then_some(name)
    }

    /// One statement valid on `x`; `depth` bounds the nesting of groups.
    fn stmt(&mut self, sc: &mut Scope, x: Shape, depth: u32) -> Option<(Stmt, Shape)> {
        for _ in 0..20 {
            let uncalled = (0..sc.callable)
                .any(|b| !self.called.contains(&b) && self.blocks[b].takes_map == x.is_map());
            let roll = if uncalled && self.rng.chance(40) {
                20
            } else {
                self.rng.range(0, 99)
            };
            let kind = if roll < 14 && depth < 3 {
                self.group(sc, x, depth)
            } else if roll < 30 {
                self.call(sc, x)
            } else if roll < 34 && depth < 3 {
                let (body, _) = self.seq(sc, x, depth + 1, 2)?;
                Some(Kind::Seq(body))
            } else {
                Some(self.leaf(sc, x, None))
            };
            let Some(kind) = kind else { continue };
            let mut s = Stmt::new(kind);
            if self.rng.chance(15) {
                s.repeat = Some(self.value(Slot::Fixed { lo: 1, hi: 3 }, sc));
            }
            if !matches!(s.kind, Kind::Seq(_)) {
                s.label = self.label(sc, 40);
            }
            let sim = Sim {
                blocks: &self.blocks,
                vary: self.vary,
            };
            if let Some(out) = sim.stmt(&s, x, &sc.env) {
                return Some((s, out));
            }
        }
        None
    }

    /// Up to `max` statements valid one after another on `x`.
    fn seq(
        &mut self,
        sc: &mut Scope,
        mut x: Shape,
        depth: u32,
        max: u64,
    ) -> Option<(Vec<Stmt>, Shape)> {
        let n = self.rng.range(1, max);
        let mut body = Vec::new();
        for _ in 0..n {
            if let Some((s, out)) = self.stmt(sc, x, depth) {
                body.push(s);
                x = out;
            }
        }
        (!body.is_empty()).then_some((body, x))
    }

    /// A branch: starts with a layer of stride `stride` (on maps), then a few more.
    fn branch(
        &mut self,
        sc: &mut Scope,
        x: Shape,
        depth: u32,
        stride: u64,
    ) -> Option<(Stmt, Shape)> {
        if stride == 1 || !x.is_map() {
            if self.rng.chance(50) {
                return self.stmt(sc, x, depth + 1);
            }
            let (body, out) = self.seq(sc, x, depth + 1, 3)?;
            return Some((one_or_seq(body), out));
        }
        let mut first = Stmt::new(self.leaf(sc, x, Some(stride)));
        first.label = self.label(sc, 30);
        let sim = Sim {
            blocks: &self.blocks,
            vary: self.vary,
        };
        let mid = sim.stmt(&first, x, &sc.env)?;
        let mut body = vec![first];
        let mut out = mid;
        if self.rng.chance(50) {
            if let Some((s, o)) = self.stmt(sc, mid, depth + 1) {
                // Keep the height and width: only layers that do.
                if matches!((o, mid), (Shape::Map { h, w, .. }, Shape::Map { h: h2, w: w2, .. }) if h == h2 && w == w2)
                {
                    body.push(s);
                    out = o;
                }
            }
        }
        Some((one_or_seq(body), out))
    }

    /// A `concat` or `add` group on `x`.
    fn group(&mut self, sc: &mut Scope, x: Shape, depth: u32) -> Option<Kind> {
        let concat = self.rng.chance(55);
        let stride = if x.is_map() && self.rng.chance(25) {
            2
        } else {
            1
        };
        let n = *self.rng.pick(&[1, 2, 2, 2, 3, 3]);
        let mut branches = Vec::new();
        let mut first: Option<Shape> = None;
        for _ in 0..20 {
            if branches.len() as u64 == n {
                break;
            }
            let (mut b, mut out) = if stride == 1 && self.rng.chance(25) {
                (Stmt::new(Kind::Identity), x)
            } else {
                match self.branch(sc, x, depth, stride) {
                    Some(b) => b,
                    None => continue,
                }
            };
            if let Some(want) = first {
                if !concat && out != want {
                    // A 1x1 convolution (or a dense layer) restores the first branch's shape.
                    let (fix, fixed) = match (out, want) {
                        (Shape::Map { h, w, .. }, Shape::Map { h: h2, w: w2, c })
                            if h == h2 && w == w2 =>
                        {
                            let win = Window {
                                kernel: Kernel::Size(1, 1),
                                stride: None,
                                valid: false,
                                pad_word: false,
                            };
                            let fix = Kind::Conv {
                                win,
                                filters: V::Lit(c),
                                groups: None,
                                flags: vec![],
                            };
                            (fix, want)
                        }
                        (Shape::Vector(_), Shape::Vector(n)) => (
                            Kind::Fc {
                                units: V::Lit(n),
                                flags: vec![],
                            },
                            want,
                        ),
                        _ => continue,
                    };
                    let mut body = match b {
                        Stmt {
                            kind: Kind::Seq(body),
                            repeat: None,
                            ..
                        } => body,
                        b => vec![b],
                    };
                    body.push(Stmt::new(fix));
                    b = Stmt::new(Kind::Seq(body));
                    out = fixed;
                }
                let joins = match (out, want) {
                    (Shape::Map { h, w, .. }, Shape::Map { h: h2, w: w2, .. }) => {
                        h == h2 && w == w2
                    }
                    (Shape::Vector(_), Shape::Vector(_)) => true,
                    _ => false,
                };
                if !joins || (!concat && out != want) {
                    continue;
                }
            }
            first.get_or_insert(out);
            branches.push(b);
        }
        (!branches.is_empty()).then_some(Kind::Group { concat, branches })
    }

    /// A block, defined against input `x` and called later.
    fn block(&mut self, x: Shape, names: &mut HashSet<String>) -> Option<Block> {
        let name = loop {
            let n = definable_name(&mut self.rng, self.names);
            if names.insert(n.clone()) {
                break n;
            }
        };
        let mut sc = Scope {
            params: Vec::new(),
            env: Vec::new(),
            in_block: true,
            labels: HashSet::new(),
            callable: self.blocks.len(),
        };
        let (mut body, _) = self.seq(&mut sc, x, 1, 4)?;
        if self.rng.chance(20) && sc.params.len() < 5 {
            // A parameter the body never reads.
            let unused = definable_name(&mut self.rng, self.names);
            if !sc.params.iter().any(|p| p.name == unused) {
                sc.params.push(Param {
                    name: unused,
                    class: Class::Count,
                });
            }
        }
        unique_names(&mut body, &self.blocks, &sc.env);
        Some(Block {
            name,
            params: sc.params,
            body,
            takes_map: x.is_map(),
        })
    }
}

fn one_or_seq(mut body: Vec<Stmt>) -> Stmt {
    if body.len() == 1 {
        body.pop().expect("one statement")
    } else {
        Stmt::new(Kind::Seq(body))
    }
}

/// netc's naming of one scope (labels, numbered repetitions, automatic
/// names), to keep every name unique: `x: conv * 2` gives `x1` and `x2`,
/// which may meet a label `x1` or an automatic `conv1`.
fn names_unique(body: &[Stmt], blocks: &[Block], env: &[u64]) -> bool {
    fn labels(s: &Stmt, out: &mut Vec<String>) {
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
fn unique_names(body: &mut [Stmt], blocks: &[Block], env: &[u64]) {
    fn strip(s: &mut Stmt, all: bool) {
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

/// One model's source lines, and what `check` must find.
struct ModelOut {
    name: String,
    lines: Vec<String>,
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

fn model(g: &mut Gen, name: String) -> ModelOut {
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

fn v(v: V, params: &[Param]) -> String {
    match v {
        V::Lit(n) => n.to_string(),
        V::Param(i) => params[i].name.clone(),
    }
}

fn window_args(win: &Window, params: &[Param], args: &mut Vec<String>) {
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
fn write_stmt(
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

fn render(mut g: Gen, models: Vec<ModelOut>, seed: u64) -> Program {
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
