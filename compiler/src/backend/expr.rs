//! Sizes as expressions: literals in a model, parameter names in a block.
//! `Display` writes them as Rust; [`Expr::python`] as Python.

use crate::diag::{Diagnostic, Span};
use crate::ir::{BlockCall, Padding, Window};
use std::collections::BTreeSet;
use std::fmt;

/// The names a block's code gives its input's height, width and channels.
pub const INPUTS: [&str; 3] = ["in_height", "in_width", "in_channels"];

/// A block's constructor arguments: the inputs its sizes read, then the
/// block parameters they read, in declaration order.
pub fn block_args(used: &BTreeSet<String>, params: &[String]) -> Vec<String> {
    let inputs = INPUTS.iter().map(|v| v.to_string());
    inputs
        .chain(params.iter().cloned())
        .filter(|v| used.contains(v))
        .collect()
}

/// A variable of a block's code as its caller writes it: an input size
/// (`input` is the caller's height, width, channels) or the argument given
/// for a block parameter (a name, when the caller is itself a block).
pub fn bind<T>(var: &str, input: [Expr; 3], call: &BlockCall<T>, in_block: bool) -> Expr {
    if let Some(i) = INPUTS.iter().position(|v| *v == var) {
        return input[i].clone();
    }
    let i = call
        .params
        .iter()
        .position(|q| q == var)
        .expect("a parameter of the block");
    match &call.args[i].param {
        Some(q) if in_block => Expr::var(q),
        _ => Expr::Lit(call.args[i].value),
    }
}

/// The error for a block whose calls would need different generated code.
pub fn calls_differ(span: Span, block: &str, unit: &str) -> Diagnostic {
    Diagnostic::new(span, format!("calls of block `{block}` differ in structure"))
        .label("this call gives the block another layout")
        .help(format!("generated code has one {unit} per block: pass only filter counts, units and groups as parameters, or write two blocks"))
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

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(u64),
    Var(String),
    Sum(Vec<Expr>),
    Product(Vec<Expr>),
    /// TensorFlow `same`: ceil(x / stride)
    DivCeil(Box<Expr>, u64),
    /// TensorFlow `valid`: (x - kernel) / stride + 1
    Valid(Box<Expr>, u64, u64),
}

impl Expr {
    pub fn var(name: &str) -> Expr {
        Expr::Var(name.to_string())
    }

    pub fn sum(terms: Vec<Expr>) -> Expr {
        let lit: u64 = terms.iter().filter_map(Expr::lit).sum();
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
        let lit: u64 = factors.iter().filter_map(Expr::lit).product();
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
    pub fn subst(&self, f: &dyn Fn(&str) -> Expr) -> Expr {
        match self {
            Expr::Lit(n) => Expr::Lit(*n),
            Expr::Var(v) => f(v),
            Expr::Sum(ts) => Expr::sum(ts.iter().map(|t| t.subst(f)).collect()),
            Expr::Product(ts) => Expr::product(ts.iter().map(|t| t.subst(f)).collect()),
            Expr::DivCeil(e, s) => e.subst(f).div_ceil(*s),
            Expr::Valid(e, k, s) => e.subst(f).valid(*k, *s),
        }
    }

    /// The expression in Python: ceil division is `-(-x // s)`.
    pub fn python(&self) -> String {
        let join = |ts: &[Expr], op: &str| {
            ts.iter()
                .map(|t| match t {
                    Expr::Sum(_) => format!("({})", t.python()),
                    _ => t.python(),
                })
                .collect::<Vec<_>>()
                .join(op)
        };
        match self {
            Expr::Lit(n) => n.to_string(),
            Expr::Var(v) => v.clone(),
            Expr::Sum(ts) => join(ts, " + "),
            Expr::Product(ts) => join(ts, " * "),
            Expr::DivCeil(e, s) => format!("-(-({}) // {s})", e.python()),
            Expr::Valid(e, k, s) => format!("(({}) - {k}) // {s} + 1", e.python()),
        }
    }

    pub fn vars(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Var(v) => {
                out.insert(v.clone());
            }
            Expr::Sum(ts) | Expr::Product(ts) => ts.iter().for_each(|t| t.vars(out)),
            Expr::DivCeil(e, _) | Expr::Valid(e, _, _) => e.vars(out),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, ts: &[Expr], op: &str| -> fmt::Result {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                match t {
                    Expr::Sum(_) => write!(f, "({t})")?,
                    _ => write!(f, "{t}")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::Lit(n) => write!(f, "{n}"),
            Expr::Var(v) => write!(f, "{v}"),
            Expr::Sum(ts) => join(f, ts, "+"),
            Expr::Product(ts) => join(f, ts, "*"),
            Expr::DivCeil(e, s) => write!(f, "{}.div_ceil({s})", Paren(e)),
            Expr::Valid(e, k, s) if *s == 1 => write!(f, "{} - {}", Paren(e), k - 1),
            Expr::Valid(e, k, s) => write!(f, "({} - {k}) / {s} + 1", Paren(e)),
        }
    }
}

struct Paren<'a>(&'a Expr);

impl fmt::Display for Paren<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Lit(_) | Expr::Var(_) | Expr::DivCeil(..) => write!(f, "{}", self.0),
            e => write!(f, "({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn names_render_as_rust() {
        let e = Expr::sum(vec![Expr::var("e1"), Expr::var("e3")]);
        assert_eq!(e.to_string(), "e1 + e3");
        let p = Expr::product(vec![Expr::var("in_channels"), Expr::Lit(2)]);
        assert_eq!(p.to_string(), "in_channels * 2");
        assert_eq!(Expr::var("h").div_ceil(2).to_string(), "h.div_ceil(2)");
        assert_eq!(Expr::var("h").valid(3, 2).to_string(), "(h - 3) / 2 + 1");
        assert_eq!(Expr::var("h").div_ceil(2).python(), "-(-(h) // 2)");
        assert_eq!(Expr::var("h").valid(3, 2).python(), "((h) - 3) // 2 + 1");
        let mut vars = BTreeSet::new();
        e.vars(&mut vars);
        assert_eq!(vars.into_iter().collect::<Vec<_>>(), ["e1", "e3"]);
    }
}
