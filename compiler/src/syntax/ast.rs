//! The abstract syntax tree: what the user wrote, with byte spans, before any
//! name is resolved or any shape is known.

use crate::diag::Span;

#[derive(Debug, Clone)]
pub struct File {
    pub blocks: Vec<BlockDef>,
    pub models: Vec<ModelDef>,
}

#[derive(Debug, Clone)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct BlockDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct ModelDef {
    pub name: Ident,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub label: Option<Ident>,
    pub kind: StmtKind,
    pub repeat: Option<Value>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `conv 3x3 64 relu`
    Layer { op: Ident, args: Vec<Arg> },
    /// `fire(16, 64, 64)`
    Call { block: Ident, args: Vec<Value> },
    /// `concat { ... }` or `add { ... }`: one branch per statement.
    Group { op: GroupOp, branches: Vec<Stmt> },
    /// `{ ... }`: a sequence used as one branch.
    Seq(Vec<Stmt>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOp {
    Concat,
    Add,
}

/// A layer argument: positional (`64`, `3x3`, `/2`, `relu`) or keyword (`groups=4`).
#[derive(Debug, Clone)]
pub struct Arg {
    pub key: Option<Ident>,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ValueKind {
    /// A number as written; integers are read later, where the range is known.
    Number(String),
    /// `5x5`, `24x24x3`
    Size(Vec<String>),
    /// `/2` or `/s`
    Stride(Box<Value>),
    /// `0.001/9`
    Ratio(String, String),
    Ident(String),
}

/// The statement written at `span`, searched through groups and sequences,
/// with the product of the repetitions around it.
pub fn find_stmt(stmts: &[Stmt], span: Span, outer: u64) -> Option<(&Stmt, u64)> {
    for s in stmts {
        if s.span == span {
            return Some((s, outer));
        }
        let times = outer * repeat_of(s).unwrap_or(2);
        let inner = match &s.kind {
            StmtKind::Group { branches, .. } => find_stmt(branches, span, times),
            StmtKind::Seq(body) => find_stmt(body, span, times),
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
    }
    None
}

/// A statement's literal repetition count (1 without `* N`).
pub fn repeat_of(s: &Stmt) -> Option<u64> {
    match &s.repeat {
        None => Some(1),
        Some(v) => match &v.kind {
            ValueKind::Number(n) => n.parse().ok(),
            _ => None,
        },
    }
}
