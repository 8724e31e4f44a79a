//! The generator's own syntax tree of a program: what it writes, as it writes it.

use super::rng::Rng;

/// An activation's shape, as netc's shape inference computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Map { h: u64, w: u64, c: u64 },
    Vector(u64),
}

impl Shape {
    pub(crate) fn channels(self) -> u64 {
        match self {
            Shape::Map { c, .. } => c,
            Shape::Vector(n) => n,
        }
    }

    pub(crate) fn is_map(self) -> bool {
        matches!(self, Shape::Map { .. })
    }

    /// Too big to keep the test fast: refused by the generator, not by netc.
    pub(crate) fn too_big(self) -> bool {
        match self {
            Shape::Map { h, w, c } => c > 48 || h * w * c > 4096,
            Shape::Vector(n) => n > 64,
        }
    }
}

/// A whole number as written: a literal, or a parameter of the enclosing block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum V {
    Lit(u64),
    Param(usize),
}

/// What a block parameter stands for, which fixes the values it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Class {
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
    pub(crate) fn draw(self, rng: &mut Rng) -> u64 {
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
pub(crate) enum Kernel {
    /// `KxK` (or `KxL`).
    Size(u64, u64),
    /// `kernel=K`.
    Square(V),
}

#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) kernel: Kernel,
    pub(crate) stride: Option<V>,
    /// `None`: the default (same), written or not.
    pub(crate) valid: bool,
    pub(crate) pad_word: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
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
pub(crate) struct Stmt {
    pub(crate) label: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) repeat: Option<V>,
}

impl Stmt {
    pub(crate) fn new(kind: Kind) -> Stmt {
        Stmt {
            label: None,
            kind,
            repeat: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) class: Class,
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) name: String,
    pub(crate) params: Vec<Param>,
    pub(crate) body: Vec<Stmt>,
    /// Blocks take a feature map, or a vector, at every call.
    pub(crate) takes_map: bool,
}
