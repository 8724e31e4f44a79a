//! Sizes as expressions: literals in a model, variables in a block.
//!
//! A variable is an input size of the block or one of its parameters; the
//! back ends name them (see [`super::namer`]) and print the expression in
//! their language with [`Expr::rust`] and [`Expr::python`].

use crate::ir::{Padding, Window};
use std::collections::BTreeSet;

/// A size variable of a block's code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Var {
    /// The block input's height (0), width (1) or channels (2).
    Input(usize),
    /// A parameter of the block, by its `.net` name.
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Lit(u64),
    Var(Var),
    Sum(Vec<Expr>),
    Product(Vec<Expr>),
    /// TensorFlow `same`: ceil(x / stride)
    DivCeil(Box<Expr>, u64),
    /// TensorFlow `valid`: (x - kernel) / stride + 1
    Valid(Box<Expr>, u64, u64),
}

/// Height and width after a window.
pub fn window(h: &Expr, w: &Expr, win: &Window) -> (Expr, Expr) {
    let [kh, kw] = win.kernel;
    let [sh, sw] = win.stride;
    match win.padding {
        Padding::Same => (h.clone().div_ceil(sh), w.clone().div_ceil(sw)),
        Padding::Valid => (h.clone().valid(kh, sh), w.clone().valid(kw, sw)),
    }
}

impl Expr {
    pub fn param(name: &str) -> Expr {
        Expr::Var(Var::Param(name.to_string()))
    }

    pub fn input(dim: usize) -> Expr {
        Expr::Var(Var::Input(dim))
    }

    pub fn sum(terms: Vec<Expr>) -> Expr {
        let lit: u64 = terms
            .iter()
            .filter_map(Expr::lit)
            .fold(0, u64::saturating_add);
        let mut rest: Vec<Expr> = terms.into_iter().filter(|t| t.lit().is_none()).collect();
        if rest.is_empty() {
            return Expr::Lit(lit);
        }
        if lit > 0 {
            rest.push(Expr::Lit(lit));
        }
        if rest.len() == 1 {
            rest.pop().expect("one term")
        } else {
            Expr::Sum(rest)
        }
    }

    pub fn product(factors: Vec<Expr>) -> Expr {
        let lit: u64 = factors
            .iter()
            .filter_map(Expr::lit)
            .fold(1, u64::saturating_mul);
        let mut rest: Vec<Expr> = factors.into_iter().filter(|t| t.lit().is_none()).collect();
        if rest.is_empty() || lit == 0 {
            return Expr::Lit(lit);
        }
        if lit != 1 {
            rest.push(Expr::Lit(lit));
        }
        if rest.len() == 1 {
            rest.pop().expect("one factor")
        } else {
            Expr::Product(rest)
        }
    }

    pub fn div_ceil(self, stride: u64) -> Expr {
        match self {
            _ if stride == 1 => self,
            Expr::Lit(n) => Expr::Lit(n.div_ceil(stride)),
            e => Expr::DivCeil(Box::new(e), stride),
        }
    }

    pub fn valid(self, kernel: u64, stride: u64) -> Expr {
        match self {
            Expr::Lit(n) => Expr::Lit((n.saturating_sub(kernel)) / stride + 1),
            e => Expr::Valid(Box::new(e), kernel, stride),
        }
    }

    pub fn lit(&self) -> Option<u64> {
        match self {
            Expr::Lit(n) => Some(*n),
            _ => None,
        }
    }

    /// The expression with variables replaced by `f`'s choice.
    pub fn subst(&self, f: &dyn Fn(&Var) -> Expr) -> Expr {
        match self {
            Expr::Lit(n) => Expr::Lit(*n),
            Expr::Var(v) => f(v),
            Expr::Sum(ts) => Expr::sum(ts.iter().map(|t| t.subst(f)).collect()),
            Expr::Product(ts) => Expr::product(ts.iter().map(|t| t.subst(f)).collect()),
            Expr::DivCeil(e, s) => e.subst(f).div_ceil(*s),
            Expr::Valid(e, k, s) => e.subst(f).valid(*k, *s),
        }
    }

    pub fn vars(&self, out: &mut BTreeSet<Var>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Var(v) => {
                out.insert(v.clone());
            }
            Expr::Sum(ts) | Expr::Product(ts) => ts.iter().for_each(|t| t.vars(out)),
            Expr::DivCeil(e, _) | Expr::Valid(e, _, _) => e.vars(out),
        }
    }

    /// The expression in Rust, variables named by `name`.
    pub fn rust(&self, name: &dyn Fn(&Var) -> String) -> String {
        let paren = |e: &Expr| match e {
            Expr::Lit(_) | Expr::Var(_) | Expr::DivCeil(..) => e.rust(name),
            e => format!("({})", e.rust(name)),
        };
        match self {
            Expr::Lit(n) => n.to_string(),
            Expr::Var(v) => name(v),
            Expr::Sum(ts) => self.join(ts, " + ", &|t| t.rust(name)),
            Expr::Product(ts) => self.join(ts, " * ", &|t| t.rust(name)),
            Expr::DivCeil(e, s) => format!("{}.div_ceil({s})", paren(e)),
            Expr::Valid(e, k, 1) => format!("{} - {}", paren(e), k - 1),
            Expr::Valid(e, k, s) => format!("({} - {k}) / {s} + 1", paren(e)),
        }
    }

    /// The expression in Python: ceil division is `-(-x // s)`.
    pub fn python(&self, name: &dyn Fn(&Var) -> String) -> String {
        match self {
            Expr::Lit(n) => n.to_string(),
            Expr::Var(v) => name(v),
            Expr::Sum(ts) => self.join(ts, " + ", &|t| t.python(name)),
            Expr::Product(ts) => self.join(ts, " * ", &|t| t.python(name)),
            Expr::DivCeil(e, s) => format!("-(-({}) // {s})", e.python(name)),
            Expr::Valid(e, k, s) => format!("(({}) - {k}) // {s} + 1", e.python(name)),
        }
    }

    /// Terms joined by `op`, parenthesized where they end with a lower
    /// precedence than a product: sums, and `valid`'s `... + 1`.
    fn join(&self, ts: &[Expr], op: &str, print: &dyn Fn(&Expr) -> String) -> String {
        ts.iter()
            .map(|t| match t {
                Expr::Sum(_) | Expr::Valid(..) => format!("({})", print(t)),
                _ => print(t),
            })
            .collect::<Vec<_>>()
            .join(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &Var) -> String {
        match v {
            Var::Input(d) => ["h", "w", "c"][*d].to_string(),
            Var::Param(p) => p.clone(),
        }
    }

    #[test]
    fn literals_fold() {
        assert_eq!(
            Expr::sum(vec![Expr::Lit(64), Expr::Lit(64)]),
            Expr::Lit(128)
        );
        assert_eq!(Expr::Lit(24).div_ceil(2), Expr::Lit(12));
        assert_eq!(Expr::Lit(24).valid(5, 1), Expr::Lit(20));
        assert_eq!(
            Expr::product(vec![Expr::Lit(6), Expr::Lit(6), Expr::Lit(64)]),
            Expr::Lit(2304)
        );
    }

    #[test]
    fn names_render_in_both_languages() {
        let e = Expr::sum(vec![Expr::param("e1"), Expr::param("e3")]);
        assert_eq!(e.rust(&plain), "e1 + e3");
        let p = Expr::product(vec![Expr::input(2), Expr::Lit(2)]);
        assert_eq!(p.rust(&plain), "c * 2");
        let h = Expr::input(0);
        assert_eq!(h.clone().div_ceil(2).rust(&plain), "h.div_ceil(2)");
        assert_eq!(h.clone().valid(3, 2).rust(&plain), "(h - 3) / 2 + 1");
        assert_eq!(h.clone().div_ceil(2).python(&plain), "-(-(h) // 2)");
        assert_eq!(h.clone().valid(3, 2).python(&plain), "((h) - 3) // 2 + 1");
        // A size after `valid`, multiplied: the fc after a valid convolution.
        let area = Expr::product(vec![h.clone().valid(3, 1), h.valid(5, 2), Expr::Lit(8)]);
        assert_eq!(area.rust(&plain), "(h - 2) * ((h - 5) / 2 + 1) * 8");
        assert_eq!(
            area.python(&plain),
            "(((h) - 3) // 1 + 1) * (((h) - 5) // 2 + 1) * 8"
        );
        let mut vars = BTreeSet::new();
        e.vars(&mut vars);
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            [Var::Param("e1".into()), Var::Param("e3".into())]
        );
    }
}
