//! Random statements, groups, block calls and blocks, each valid where it is put.

use super::ast::*;
use super::names::{any_name, definable_name, unique_names};
use super::rng::Rng;
use super::shape::Sim;
use super::Names;
use std::collections::HashSet;

/// The scope a statement is generated in: a model, or a block being defined.
pub(crate) struct Scope {
    /// The parameters of the block being defined (empty in a model).
    pub(crate) params: Vec<Param>,
    /// Their values for the call the block is defined against.
    pub(crate) env: Vec<u64>,
    pub(crate) in_block: bool,
    /// Labels used in this scope, branches included.
    pub(crate) labels: HashSet<String>,
    /// Blocks that may be called: those defined before.
    pub(crate) callable: usize,
}

/// The generator of one program.
pub(crate) struct Gen {
    pub(crate) rng: Rng,
    pub(crate) blocks: Vec<Block>,
    /// Blocks called so far: the others are called first.
    pub(crate) called: HashSet<usize>,
    pub(crate) names: Names,
    /// Calls may give a block's strides, `valid` kernels, radii and
    /// repetition counts other values than at its other calls.
    pub(crate) vary: bool,
}

/// The slot a number fills, which decides the parameter class it may use.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    Count,
    Mult,
    Groups,
    Kernel,
    Fixed { lo: u64, hi: u64 },
}

impl Gen {
    /// A number for `slot`: a literal, or (in a block) a parameter, new or reused.
    pub(crate) fn value(&mut self, slot: Slot, sc: &mut Scope) -> V {
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
    pub(crate) fn flags(&mut self, choices: &[&'static str]) -> Vec<&'static str> {
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
    pub(crate) fn window(&mut self, sc: &mut Scope, pool: bool, stride: Option<u64>) -> Window {
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
    pub(crate) fn leaf(&mut self, sc: &mut Scope, x: Shape, stride: Option<u64>) -> Kind {
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
    pub(crate) fn call(&mut self, sc: &mut Scope, x: Shape) -> Option<Kind> {
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

    pub(crate) fn label(&mut self, sc: &mut Scope, percent: u64) -> Option<String> {
        if !self.rng.chance(percent) {
            return None;
        }
        let name = any_name(&mut self.rng, self.names);
        sc.labels.insert(name.clone()).then_some(name)
    }

    /// One statement valid on `x`; `depth` bounds the nesting of groups.
    pub(crate) fn stmt(&mut self, sc: &mut Scope, x: Shape, depth: u32) -> Option<(Stmt, Shape)> {
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
    pub(crate) fn seq(
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
    pub(crate) fn branch(
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
    pub(crate) fn group(&mut self, sc: &mut Scope, x: Shape, depth: u32) -> Option<Kind> {
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
    pub(crate) fn block(&mut self, x: Shape, names: &mut HashSet<String>) -> Option<Block> {
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

pub(crate) fn one_or_seq(mut body: Vec<Stmt>) -> Stmt {
    if body.len() == 1 {
        body.pop().expect("one statement")
    } else {
        Stmt::new(Kind::Seq(body))
    }
}
