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

/// Larger sources are refused before parsing: pest holds every token of a
/// file at once, and no model needs a megabyte of text (`* N` and blocks
/// repeat layers).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The byte order mark some editors write first. It means nothing in UTF-8.
const BOM: char = '\u{feff}';

/// The text of a `.net` file's bytes: its size checked, UTF-8, without the
/// byte order mark some editors write first (skipped, so that columns are
/// the ones an editor shows). An error's span is in
/// `String::from_utf8_lossy(bytes)`, the text to render it against.
pub fn decode(bytes: &[u8]) -> Result<String> {
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(too_large(&String::from_utf8_lossy(bytes)));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            let bad = &bytes[at..at + e.error_len().unwrap_or(bytes.len() - at)];
            let shown = bad
                .iter()
                .map(|b| format!("0x{b:02X}"))
                .collect::<Vec<_>>()
                .join(" ");
            let utf16 = bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]);
            // The replacement character that stands for the bad bytes.
            let end = at + char::REPLACEMENT_CHARACTER.len_utf8();
            return Err(
                Diagnostic::new(Span::new(at, end), "the file is not UTF-8 text")
                    .label(match bad.len() {
                        1 => format!("byte {shown} is not UTF-8"),
                        _ => format!("bytes {shown} are not UTF-8"),
                    })
                    .help(if utf16 {
                        "the file is UTF-16: save it as UTF-8"
                    } else {
                        "save the file as UTF-8 (another encoding, such as Latin-1, \
                         writes letters like `é` as bytes UTF-8 does not use)"
                    }),
            );
        }
    };
    Ok(text.strip_prefix(BOM).unwrap_or(text).to_string())
}

fn too_large(source: &str) -> Diagnostic {
    let mut at = MAX_SOURCE_BYTES.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    Diagnostic::new(Span::new(at, at), "file too large")
        .label(format!("netc reads at most {} MiB", MAX_SOURCE_BYTES >> 20))
        .help("repeat layers with `* N` and blocks instead of writing each one, or split the models into several files")
}

pub fn parse(source: &str) -> Result<File> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(too_large(source));
    }
    check_text(source)?;
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

/// What the grammar cannot say well, found before parsing: nesting deep
/// enough to exhaust the parser's stack, and characters outside ASCII, which
/// only comments may hold (a `é` in a name, a no-break space, a Cyrillic
/// letter that looks Latin).
fn check_text(source: &str) -> Result<()> {
    let mut depth = 0usize;
    let mut comment = false;
    for (i, c) in source.char_indices() {
        match c {
            '\n' | '\r' => comment = false,
            _ if comment => {}
            '#' => comment = true,
            '{' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(Span::new(i, i + 1), "nesting too deep")
                        .label(format!("more than {MAX_NESTING} levels of braces"))
                        .help(format!(
                            "netc reads at most {MAX_NESTING} levels: flatten the groups, or call blocks one after another"
                        )));
                }
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            // A byte order mark first is skipped by the grammar.
            BOM if i == 0 => {}
            c if !c.is_ascii() => return Err(not_ascii(source, i, c)),
            _ => {}
        }
    }
    Ok(())
}

/// A character outside ASCII where the language allows none.
fn not_ascii(source: &str, at: usize, c: char) -> Diagnostic {
    let span = Span::new(at, at + c.len_utf8());
    let code = format!("U+{:04X}", c as u32);
    let (message, help) = match c {
        BOM => (
            format!("invisible zero-width no-break space ({code})"),
            "delete it: as a byte order mark it belongs only at the very start of a file",
        ),
        '\u{00D7}' => (
            format!("multiplication sign `×` ({code}) instead of the letter x"),
            "write sizes with the letter x: `3x3`",
        ),
        '\u{2010}'..='\u{2015}' | '\u{2212}' => (
            format!("dash `{c}` ({code}) instead of `-`"),
            "write a minus as the ASCII hyphen `-`",
        ),
        c if c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}') => (
            format!("{} ({code}) instead of an ordinary space", space_name(c)),
            "replace it with an ordinary space (an editor shows both alike)",
        ),
        c if c.is_alphanumeric() => (
            format!(
                "non-ASCII letter `{c}` ({code}) in `{}`",
                word_around(source, at)
            ),
            "names are ASCII letters, digits and `_`: retype the name in ASCII \
             (a Cyrillic or Greek letter can look like a Latin one)",
        ),
        c => (
            format!("non-ASCII character `{c}` ({code})"),
            "remove it, or retype it in ASCII",
        ),
    };
    Diagnostic::new(span, message)
        .label("outside comments, .net files are ASCII")
        .help(help)
}

fn space_name(c: char) -> &'static str {
    match c {
        '\u{00A0}' => "no-break space",
        '\u{202F}' => "narrow no-break space",
        '\u{2009}' => "thin space",
        '\u{3000}' => "ideographic space",
        '\u{200B}' => "zero-width space",
        '\u{200C}' | '\u{200D}' | '\u{2060}' => "zero-width joiner",
        _ => "non-ASCII space",
    }
}

/// The name (letters, digits, `_`, any script) around byte `at`.
fn word_around(source: &str, at: usize) -> &str {
    let part = |c: char| c.is_alphanumeric() || c == '_';
    let start = source[..at]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| part(c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = source[at..]
        .char_indices()
        .find(|&(_, c)| !part(c))
        .map_or(source.len(), |(i, _)| at + i);
    &source[start..end]
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
