//! Reading literal values: whole numbers, rates, sizes, switches.

use crate::diag::{Diagnostic, Result};
use crate::ir::Int;
use crate::syntax::ast::{Value, ValueKind};
use std::collections::HashMap;

/// Any size, count or channel number above this is refused: it keeps every
/// shape product far from overflow and no real network needs more.
pub const MAX_INT: u64 = 1 << 20;

/// Block parameters in scope: name to value.
pub type Env = HashMap<String, Int>;

pub fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Number(n) => format!("the number {n}"),
        ValueKind::Size(_) => "a size".into(),
        ValueKind::Stride(_) => "a stride".into(),
        ValueKind::Ratio(a, b) => format!("the ratio {a}/{b}"),
        ValueKind::Ident(n) => format!("the name `{n}`"),
    }
}

pub fn whole(text: &str, value: &Value, what: &str) -> Result<u64> {
    let n: u64 = text.parse().map_err(|_| {
        Diagnostic::new(value.span, format!("{what} must be a whole number"))
            .label(format!("`{text}` is not a whole number"))
            .help(format!("write {what} as a positive integer such as 64"))
    })?;
    if n == 0 {
        return Err(
            Diagnostic::new(value.span, format!("{what} must be at least 1"))
                .label("zero is not allowed here")
                .help("sizes, counts and strides are positive whole numbers"),
        );
    }
    if n > MAX_INT {
        return Err(Diagnostic::new(value.span, format!("{what} is too large"))
            .label(format!("{n} is more than {MAX_INT}"))
            .help(format!("netc accepts sizes and counts up to {MAX_INT}"))
            .help(format!("netc accepts sizes and counts up to {MAX_INT}")));
    }
    Ok(n)
}

/// A whole number, literal or a block parameter.
pub fn int(value: &Value, env: &Env, what: &str) -> Result<Int> {
    match &value.kind {
        ValueKind::Number(text) => Ok(Int::lit(whole(text, value, what)?)),
        ValueKind::Ident(name) => env
            .get(name)
            .cloned()
            .ok_or_else(|| unbound(value, name, env)),
        _ => Err(
            Diagnostic::new(value.span, format!("{what} must be a whole number"))
                .label(format!("found {}", describe(value))),
        ),
    }
}

pub fn unbound(value: &Value, name: &str, env: &Env) -> Diagnostic {
    let d = Diagnostic::new(value.span, format!("unknown name `{name}`"))
        .label("not a parameter of the enclosing block, nor a flag of this layer");
    if env.is_empty() {
        d.help("names stand for block parameters, and only inside a `block`; write a number here")
    } else {
        let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
        names.sort_unstable();
        d.help(format!("parameters in scope: {}", names.join(", ")))
    }
}

/// A real number: `0.5`, `1e-3`, or a ratio `0.001/9`.
pub fn real(value: &Value, what: &str) -> Result<f64> {
    let parse = |t: &str| t.parse::<f64>().ok().filter(|x| x.is_finite());
    let bad = || {
        Diagnostic::new(value.span, format!("{what} must be a number"))
            .label(format!("found {}", describe(value)))
    };
    match &value.kind {
        ValueKind::Number(t) => parse(t).ok_or_else(bad),
        ValueKind::Ratio(a, b) => match (parse(a), parse(b)) {
            (Some(a), Some(b)) if b != 0.0 => Ok(a / b),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A number in [lo, hi).
pub fn real_in(value: &Value, what: &str, lo: f64, hi: f64) -> Result<f64> {
    let x = real(value, what)?;
    if x < lo || x >= hi {
        return Err(
            Diagnostic::new(value.span, format!("{what} is out of range"))
                .label(format!("{x} is not in [{lo}, {hi})"))
                .help(format!(
                    "write {what} as a number from {lo} up to, not including, {hi}"
                )),
        );
    }
    Ok(x)
}

pub fn switch(value: &Value, what: &str) -> Result<bool> {
    match &value.kind {
        ValueKind::Ident(s) if matches!(s.as_str(), "on" | "true" | "yes") => Ok(true),
        ValueKind::Ident(s) if matches!(s.as_str(), "off" | "false" | "no") => Ok(false),
        _ => Err(Diagnostic::new(value.span, format!("{what} is a switch"))
            .label(format!("found {}", describe(value)))
            .help(format!("write {what}=on or {what}=off"))),
    }
}

/// The dimensions of a size like `5x5` or `24x24x3`, each a whole number.
pub fn size(value: &Value, dims: usize, what: &str) -> Result<Vec<u64>> {
    let ValueKind::Size(parts) = &value.kind else {
        return Err(
            Diagnostic::new(value.span, format!("{what} must be a size")).label(format!(
                "found {}, expected {}",
                describe(value),
                example(dims)
            )),
        );
    };
    if parts.len() != dims {
        return Err(
            Diagnostic::new(value.span, format!("{what} needs {dims} dimensions"))
                .label(format!("this has {}", parts.len()))
                .help(format!("write it as {}", example(dims))),
        );
    }
    parts.iter().map(|p| whole(p, value, what)).collect()
}

fn example(dims: usize) -> &'static str {
    if dims == 3 {
        "HxWxC, such as 24x24x3"
    } else {
        "HxW, such as 3x3"
    }
}

/// Edit distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}
