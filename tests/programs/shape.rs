//! Shape inference over the generator's statements: its own small copy of
//! netc's rules, so that every program it writes is valid.

use super::ast::{Block, Class, Kernel, Kind, Shape, Stmt, Window, V};

/// The window's output size along one dimension, or `None` when it does not fit.
pub(crate) fn window_out(size: u64, kernel: u64, stride: u64, valid: bool) -> Option<u64> {
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
pub(crate) struct Sim<'a> {
    pub(crate) blocks: &'a [Block],
    /// Calls may give a block's fixed parameters other values.
    pub(crate) vary: bool,
}

impl Sim<'_> {
    pub(crate) fn val(v: V, env: &[u64]) -> u64 {
        match v {
            V::Lit(n) => n,
            V::Param(i) => env[i],
        }
    }

    pub(crate) fn window(
        win: &Window,
        x: Shape,
        env: &[u64],
        default_stride: bool,
    ) -> Option<(u64, u64)> {
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

    pub(crate) fn stmts(&self, stmts: &[Stmt], mut x: Shape, env: &[u64]) -> Option<Shape> {
        for s in stmts {
            x = self.stmt(s, x, env)?;
        }
        Some(x)
    }

    pub(crate) fn stmt(&self, s: &Stmt, mut x: Shape, env: &[u64]) -> Option<Shape> {
        let count = s.repeat.map_or(1, |v| Self::val(v, env));
        for _ in 0..count {
            x = self.kind(&s.kind, x, env)?;
            if x.too_big() {
                return None;
            }
        }
        Some(x)
    }

    pub(crate) fn kind(&self, kind: &Kind, x: Shape, env: &[u64]) -> Option<Shape> {
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
