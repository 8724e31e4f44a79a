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
