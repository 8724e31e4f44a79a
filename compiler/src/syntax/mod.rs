//! Front end: `.net` source text to the AST, with pest and `grammar/net.pest`.

pub mod ast;

use crate::diag::{Diagnostic, Result, Span};
use ast::*;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/net.pest"]
struct NetParser;

/// Deeper nesting than this is refused before parsing, so that no input can
/// exhaust the parser's stack.
const MAX_NESTING: usize = 64;

pub fn parse(source: &str) -> Result<File> {
    check_nesting(source)?;
    let mut pairs = NetParser::parse(Rule::file, source).map_err(|e| syntax_error(e, source))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    let mut out = File {
        blocks: Vec::new(),
        models: Vec::new(),
    };
    for item in file.into_inner() {
        match item.as_rule() {
            Rule::block_def => out.blocks.push(block_def(item)),
            Rule::model_def => out.models.push(model_def(item)),
            _ => {}
        }
    }
    Ok(out)
}

fn check_nesting(source: &str) -> Result<()> {
    let mut depth = 0usize;
    for (i, c) in source.char_indices() {
        match c {
            '{' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(Span::new(i, i + 1), "nesting too deep")
                        .label(format!("more than {MAX_NESTING} levels of braces"))
                        .help("move the inner part into a named block"));
                }
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            '\n' if depth == 0 => {}
            _ => {}
        }
    }
    Ok(())
}

fn syntax_error(e: pest::error::Error<Rule>, source: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match e.location {
        InputLocation::Pos(p) => Span::new(p, p + 1),
        InputLocation::Span((a, b)) => Span::new(a, b),
    };
    // At the end of the file, point at the last thing written instead.
    let trimmed = source.trim_end().len();
    if span.start >= trimmed {
        let last = source[..trimmed]
            .chars()
            .next_back()
            .map_or(0, char::len_utf8);
        return Diagnostic::new(Span::new(trimmed - last, trimmed), "unexpected end of file")
            .label("the file ends here")
            .help("a `{` is not closed: every block, model and branch group ends with `}`");
    }
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => describe(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::new(span, "syntax error")
        .label(format!("expected {expected}"))
        .help("a layer is one line: `conv 3x3 64 relu`; blocks and models hold layers in braces: `model m { ... }`")
}

fn describe(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules
        .iter()
        .map(|r| match r {
            Rule::block_def => "`block`",
            Rule::model_def => "`model`",
            Rule::ident | Rule::label => "a name",
            Rule::stmt | Rule::layer | Rule::call | Rule::group | Rule::seq => "a layer",
            Rule::params => "parameter names",
            Rule::args | Rule::size | Rule::number | Rule::float | Rule::int => "a value",
            Rule::stride => "a stride like `/2`",
            Rule::ratio => "a ratio like `0.001/9`",
            Rule::kwarg => "an argument",
            Rule::body => "`{`",
            Rule::repeat => "`* N`",
            Rule::EOI => "end of file",
            _ => "something else",
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => "something else".into(),
        1 => names[0].into(),
        n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span_of(&pair),
    }
}

fn block_def(pair: Pair<Rule>) -> BlockDef {
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("block name"));
    let mut params = Vec::new();
    let mut body = Vec::new();
    for p in inner {
        match p.as_rule() {
            Rule::params => params = p.into_inner().map(ident).collect(),
            Rule::body => body = stmts(p),
            _ => {}
        }
    }
    BlockDef { name, params, body }
}

fn model_def(pair: Pair<Rule>) -> ModelDef {
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("model name"));
    let body = inner.next().map(stmts).unwrap_or_default();
    ModelDef { name, body }
}

fn stmts(body: Pair<Rule>) -> Vec<Stmt> {
    body.into_inner().map(stmt).collect()
}

fn stmt(pair: Pair<Rule>) -> Stmt {
    let span = span_of(&pair);
    let mut label = None;
    let mut kind = None;
    let mut repeat = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::label => label = Some(ident(p)),
            Rule::repeat => repeat = p.into_inner().next().map(value),
            Rule::group => kind = Some(group(p)),
            Rule::seq => {
                kind = Some(StmtKind::Seq(stmts(
                    p.into_inner().next().expect("seq body"),
                )))
            }
            Rule::call => kind = Some(call(p)),
            Rule::layer => kind = Some(layer(p)),
            _ => {}
        }
    }
    Stmt {
        label,
        kind: kind.expect("the grammar requires a statement kind"),
        repeat,
        span,
    }
}

fn group(pair: Pair<Rule>) -> StmtKind {
    let mut inner = pair.into_inner();
    let op = match inner.next().expect("group op").as_str() {
        "concat" => GroupOp::Concat,
        _ => GroupOp::Add,
    };
    let branches = inner.next().map(stmts).unwrap_or_default();
    StmtKind::Group { op, branches }
}

fn call(pair: Pair<Rule>) -> StmtKind {
    let mut inner = pair.into_inner();
    let block = ident(inner.next().expect("call name"));
    let args = inner
        .next()
        .map(|a| a.into_inner().map(value).collect())
        .unwrap_or_default();
    StmtKind::Call { block, args }
}

fn layer(pair: Pair<Rule>) -> StmtKind {
    let mut inner = pair.into_inner();
    let op = ident(inner.next().expect("layer name"));
    let args = inner
        .map(|p| {
            if p.as_rule() == Rule::kwarg {
                let mut kv = p.into_inner();
                let key = ident(kv.next().expect("key"));
                let value = value(kv.next().expect("value"));
                Arg {
                    key: Some(key),
                    value,
                }
            } else {
                Arg {
                    key: None,
                    value: value(p),
                }
            }
        })
        .collect();
    StmtKind::Layer { op, args }
}

fn value(pair: Pair<Rule>) -> Value {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::size => ValueKind::Size(pair.as_str().split('x').map(str::to_string).collect()),
        Rule::stride => ValueKind::Stride(Box::new(value(
            pair.into_inner().next().expect("stride value"),
        ))),
        Rule::ratio => {
            let (a, b) = pair.as_str().split_once('/').expect("ratio has a slash");
            ValueKind::Ratio(a.to_string(), b.to_string())
        }
        Rule::ident => ValueKind::Ident(pair.as_str().to_string()),
        _ => ValueKind::Number(pair.as_str().to_string()),
    };
    Value { kind, span }
}
