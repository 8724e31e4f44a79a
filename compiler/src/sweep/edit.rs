//! Variants are written by editing the base's text at the spans the parser
//! recorded, so a variant differs from its base only where it must: its
//! comments, layout and every other line stay as written.

use super::target::{find_arg, ArgSpec, Resolver, Target, What};
use crate::syntax::ast::repeat_of;
use crate::syntax::ast::{Stmt, StmtKind, ValueKind};

/// Replace `start..end` of the base with `text`. `value` marks the text as
/// the value a KEY asked for: an error of `check` inside it is the value's.
#[derive(Debug, Clone)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub value: bool,
}

impl Edit {
    fn new(start: usize, end: usize, text: impl Into<String>, value: bool) -> Self {
        Edit {
            start,
            end,
            text: text.into(),
            value,
        }
    }
}

/// Applies edits that do not overlap; returns the new text and where the
/// edits marked `value` landed in it.
pub fn apply(source: &str, mut edits: Vec<Edit>) -> Result<(String, Vec<(usize, usize)>), String> {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(source.len() + 64);
    let mut at = 0;
    let mut regions = Vec::new();
    for e in &edits {
        if e.start < at {
            return Err("two of its changes edit the same text".into());
        }
        out.push_str(&source[at..e.start]);
        if e.value {
            regions.push((out.len(), out.len() + e.text.len()));
        }
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&source[at..]);
    Ok((out, regions))
}

fn is_whole(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

fn is_number(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(f64::is_finite)
        || v.split_once('/')
            .is_some_and(|(a, b)| a.parse::<f64>().is_ok() && b.parse::<f64>().is_ok())
}

/// A value a `train` setting can hold: one token of the language.
fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+/".contains(&b))
}

/// Whether `value` is of the kind `target` takes; the message lists what it takes.
pub fn validate(r: &Resolver, t: &Target, value: &str) -> Result<(), String> {
    let (ok, takes) = match &t.what {
        What::Setting => (is_token(value), "one value such as 0.05, 128 or on"),
        What::Remove => (
            value == "off" || value == "on",
            "off (remove the layer) or on (keep it, as the base)",
        ),
        What::CallArg(_) => (is_whole(value), "a whole number, such as 64"),
        What::Arg(spec) => (
            match spec {
                ArgSpec::Number(n) if n == "rate" => is_number(value),
                ArgSpec::Number(_) | ArgSpec::Stride => is_whole(value),
                ArgSpec::Kernel => value.split('x').count() <= 2 && value.split('x').all(is_whole),
                ArgSpec::Padding => value == "same" || value == "valid",
                ArgSpec::Keyword(_) => is_number(value),
                ArgSpec::Flag { .. } => value == "on" || value == "off",
            },
            spec.takes(),
        ),
    };
    if ok {
        Ok(())
    } else {
        let place = t
            .stmt
            .map(|s| format!(" at {}", r.at(s.span)))
            .unwrap_or_default();
        Err(format!(
            "`{}={value}`: `{}` takes {takes} (the base has {}{place})",
            t.key, t.key, t.base
        ))
    }
}

/// The edits that give `target` the value `value` (already validated), in
/// the base's coordinates. A change to one copy of a repeated statement is
/// an edit inside the statement; `split` writes the copies out.
pub fn edits(r: &Resolver, t: &Target, value: &str) -> Result<Vec<Edit>, String> {
    let source = r.source;
    let Some(stmt) = t.stmt else {
        return Ok(vec![setting(r, &t.key, value)]);
    };
    Ok(match (&t.what, &stmt.kind) {
        (What::Remove, _) => {
            if value == "on" {
                vec![]
            } else if t.count > 1 {
                // Removing one copy: `split` leaves it out.
                vec![Edit::new(stmt.span.start, stmt.span.end, "", false)]
            } else {
                vec![remove_line(source, stmt.span.start, stmt.span.end)]
            }
        }
        (What::CallArg(i), StmtKind::Call { args, .. }) => {
            let v = &args[*i];
            vec![Edit::new(v.span.start, v.span.end, value, true)]
        }
        (What::Arg(spec), StmtKind::Layer { op, args }) => {
            let end = args.last().map_or(op.span.end, |a| a.value.span.end);
            let found = find_arg(spec, args);
            match spec {
                ArgSpec::Flag { word, inverted } => {
                    let want = (value == "on") != *inverted;
                    match (found, want) {
                        (Some(_), true) | (None, false) => vec![],
                        (Some(a), false) => {
                            vec![remove_token(source, a.value.span.start, a.value.span.end)]
                        }
                        (None, true) => vec![Edit::new(end, end, format!(" {word}"), true)],
                    }
                }
                ArgSpec::Padding => match found {
                    Some(a) => vec![Edit::new(a.value.span.start, a.value.span.end, value, true)],
                    None if value == "same" => vec![],
                    None => vec![Edit::new(end, end, format!(" {value}"), true)],
                },
                ArgSpec::Kernel => {
                    let keyword = found.is_some_and(|a| a.key.is_some());
                    let square = value.split_once('x').is_none_or(|(a, b)| a == b);
                    let text = match (keyword, value.split_once('x')) {
                        (true, Some((a, _))) if square => a.to_string(),
                        (true, Some(_)) => {
                            return Err(format!(
                                "`{}={value}`: this layer writes its kernel as `kernel=K`, a square; give one side",
                                t.key
                            ))
                        }
                        (true, None) => value.to_string(),
                        (false, Some(_)) => value.to_string(),
                        (false, None) => format!("{value}x{value}"),
                    };
                    match found {
                        Some(a) => {
                            vec![Edit::new(a.value.span.start, a.value.span.end, text, true)]
                        }
                        None => vec![Edit::new(end, end, format!(" {text}"), true)],
                    }
                }
                ArgSpec::Stride => match found {
                    Some(a) => match &a.value.kind {
                        ValueKind::Stride(inner) => {
                            vec![Edit::new(inner.span.start, inner.span.end, value, true)]
                        }
                        _ => unreachable!("find_arg returns a stride"),
                    },
                    None => vec![Edit::new(end, end, format!(" /{value}"), true)],
                },
                ArgSpec::Number(_) => match found {
                    Some(a) => vec![Edit::new(a.value.span.start, a.value.span.end, value, true)],
                    None => vec![Edit::new(end, end, format!(" {value}"), true)],
                },
                ArgSpec::Keyword(k) => match found {
                    Some(a) => vec![Edit::new(a.value.span.start, a.value.span.end, value, true)],
                    None => vec![Edit::new(end, end, format!(" {k}={value}"), true)],
                },
            }
        }
        _ => return Err(format!("`{}`: not an argument of this statement", t.key)),
    })
}

/// `key=value` on the model's `train` line (the last one, which wins), or a
/// new `train` line after `input`.
fn setting(r: &Resolver, key: &str, value: &str) -> Edit {
    let lines = r.train_lines();
    for s in lines.iter().rev() {
        if let StmtKind::Layer { args, .. } = &s.kind {
            if let Some(a) = args
                .iter()
                .rev()
                .find(|a| a.key.as_ref().is_some_and(|k| k.name == key))
            {
                return Edit::new(a.value.span.start, a.value.span.end, value, true);
            }
        }
    }
    if let Some(s) = lines.last() {
        return Edit::new(s.span.end, s.span.end, format!(" {key}={value}"), true);
    }
    // No `train` line: one after `input`, indented as it is.
    let input = r
        .model
        .body
        .iter()
        .find(|s| matches!(&s.kind, StmtKind::Layer { op, .. } if op.name == "input"))
        .expect("a checked model has an input");
    let indent = indent_of(r.source, input.span.start);
    Edit::new(
        input.span.end,
        input.span.end,
        format!("\n{indent}train {key}={value}"),
        true,
    )
}

fn line_start(source: &str, at: usize) -> usize {
    source[..at].rfind('\n').map_or(0, |i| i + 1)
}

fn indent_of(source: &str, at: usize) -> &str {
    let start = line_start(source, at);
    let line = &source[start..at];
    &line[..line.len() - line.trim_start().len()]
}

/// Deletes a statement: its whole line when it is alone there (a comment
/// after it goes too), else the statement and a `;` after it.
fn remove_line(source: &str, start: usize, end: usize) -> Edit {
    let ls = line_start(source, start);
    let le = source[end..].find('\n').map_or(source.len(), |i| end + i);
    let after = source[end..le].trim();
    if source[ls..start].trim().is_empty() && (after.is_empty() || after.starts_with('#')) {
        return Edit::new(ls, (le + 1).min(source.len()), "", false);
    }
    let rest = &source[end..];
    let skip = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let skip = if rest[skip..].starts_with(';') {
        skip + 1
    } else {
        0
    };
    Edit::new(start, end + skip, "", false)
}

/// Deletes a bare word and the blanks before it.
fn remove_token(source: &str, start: usize, end: usize) -> Edit {
    let before = &source[..start];
    let s = before.trim_end_matches([' ', '\t']).len();
    Edit::new(s, end, "", false)
}

/// Writes a repeated statement (`x: conv 3x3 8 * 3`, `fire(16, 64, 64) * 2`)
/// as its copies, one a line, each with the edits meant for it; a copy whose
/// edit is an empty replacement of the whole statement is left out. The copies
/// keep the names the repetition gave them (`x1`, `x2`...; automatic names
/// count on as before).
pub fn split(source: &str, stmt: &Stmt, per_copy: &[Vec<Edit>]) -> Result<Edit, String> {
    let count = repeat_of(stmt).unwrap_or(1) as usize;
    let star = stmt.repeat.as_ref().map_or(stmt.span.end, |v| {
        source[..v.span.start].rfind('*').unwrap_or(v.span.start)
    });
    let body_start = match &stmt.label {
        Some(l) => {
            let colon = source[l.span.end..]
                .find(':')
                .map_or(l.span.end, |i| l.span.end + i + 1);
            colon + (source[colon..].len() - source[colon..].trim_start().len())
        }
        None => stmt.span.start,
    };
    let body_end = source[..star].trim_end().len();
    let body = &source[body_start..body_end];
    let indent = indent_of(source, stmt.span.start);
    let mut copies = Vec::new();
    for i in 0..count {
        let edits = per_copy.get(i).cloned().unwrap_or_default();
        if edits
            .iter()
            .any(|e| e.start == stmt.span.start && e.end == stmt.span.end && e.text.is_empty())
        {
            continue;
        }
        let mut rel = Vec::new();
        for e in edits {
            if e.start < body_start || e.end > body_end {
                return Err("a change reaches outside the repeated statement".into());
            }
            rel.push(Edit {
                start: e.start - body_start,
                end: e.end - body_start,
                ..e
            });
        }
        let (text, _) = apply(body, rel)?;
        copies.push(match &stmt.label {
            Some(l) => format!("{}{}: {text}", l.name, i + 1),
            None => text,
        });
    }
    let joined = copies.join(&format!("\n{indent}"));
    if copies.is_empty() {
        return Ok(remove_line(source, stmt.span.start, stmt.span.end));
    }
    Ok(Edit::new(stmt.span.start, stmt.span.end, joined, false))
}
