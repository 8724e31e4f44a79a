//! `netc sweep`: the seed's method, "changing one model parameter at a time
//! to see how it contributes to the overall accuracy", as one command. This
//! module plans a sweep: it resolves each KEY in the base model
//! (`target.rs`), writes each variant as a real `.net` text by editing the
//! base at its spans (`edit.rs`), and checks it with the normal pipeline.
//! Running the variants and keeping the manifest is `cli/sweep.rs`'s; the
//! sensitivity table and plots are `table.rs`'s.

mod edit;
pub mod manifest;
pub mod table;
mod target;

use crate::diag::Diagnostic;
use crate::syntax::ast::ModelDef;
use target::{Resolver, Target};

pub use target::arg_specs;

/// One `--vary KEY=V1,V2,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    pub key: String,
    pub values: Vec<String>,
}

impl std::str::FromStr for Vary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (key, values) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: write KEY=V1,V2,... such as conv1.filters=32,64"))?;
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            return Err(format!(
                "`{s}`: write KEY=V1,V2,... such as conv1.filters=32,64"
            ));
        }
        Ok(Vary {
            key: key.trim().to_string(),
            values,
        })
    }
}

/// One change of a variant: KEY=VALUE.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub key: String,
    pub value: String,
}

/// A model of the sweep: the base (no changes) or a variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Its model's name, also its file's and run's: unique, since generated
    /// programs are keyed by model name.
    pub name: String,
    pub changes: Vec<Change>,
    /// The whole `.net` text.
    pub source: String,
    /// Why `netc check` refused it, if it did.
    pub refused: Option<Diagnostic>,
}

/// A planned sweep: the base first, then its variants.
#[derive(Debug)]
pub struct Plan {
    pub model: String,
    pub variants: Vec<Variant>,
    /// Every KEY with its value in the base, as written (or `default`).
    pub base_values: Vec<Change>,
}

/// Plans the sweep of `model` (default: the file's first) in `source`, read
/// from `file`. Errors name what exists: the keys of the model, or the
/// values a key takes; a variant that `check` refuses is kept, with why.
pub fn plan(
    file: &str,
    source: &str,
    model: Option<&str>,
    vary: &[Vary],
    grid: bool,
) -> Result<Plan, String> {
    crate::check(source).map_err(|d| d.one_line(file, source))?;
    let ast = crate::syntax::parse(source).map_err(|d| d.one_line(file, source))?;
    let lowered = crate::lower::lower(&ast).map_err(|d| d.one_line(file, source))?;
    let index = match model {
        None => 0,
        Some(m) => ast
            .models
            .iter()
            .position(|d| d.name.name == m)
            .ok_or_else(|| {
                format!(
                    "{file} has no model `{m}`; its models: {}",
                    ast.models
                        .iter()
                        .map(|d| d.name.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let def: &ModelDef = &ast.models[index];
    let r = Resolver::new(file, source, def, &lowered[index].body, &ast.blocks);
    if vary.is_empty() {
        return Err(format!(
            "nothing to vary: give --vary KEY=V1,V2,...; the keys of model `{}`:\n  {}",
            def.name.name,
            r.listing()
        ));
    }
    let mut targets: Vec<(Target, &Vary)> = Vec::new();
    for v in vary {
        if targets.iter().any(|(t, _)| t.key == v.key) {
            return Err(format!(
                "`{}` is varied twice: give all its values in one --vary",
                v.key
            ));
        }
        let t = r.resolve(&v.key)?;
        for value in &v.values {
            edit::validate(&r, &t, value)?;
        }
        targets.push((t, v));
    }
    let base_values = targets
        .iter()
        .map(|(t, _)| Change {
            key: t.key.clone(),
            value: t.base.clone(),
        })
        .collect();

    // The combinations: one key at a time, or every key crossed.
    let mut combos: Vec<Vec<(usize, &str)>> = Vec::new();
    if grid {
        combos.push(vec![]);
        for (i, (_, v)) in targets.iter().enumerate() {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    v.values.iter().map(move |value| {
                        let mut c = c.clone();
                        c.push((i, value.as_str()));
                        c
                    })
                })
                .collect();
        }
    } else {
        for (i, (_, v)) in targets.iter().enumerate() {
            for value in &v.values {
                combos.push(vec![(i, value.as_str())]);
            }
        }
    }

    let base_name = def.name.name.clone();
    let mut variants = vec![Variant {
        name: base_name.clone(),
        changes: vec![],
        source: source.to_string(),
        refused: None,
    }];
    for combo in combos {
        // A value equal to the base's is the base: no second run of it.
        let combo: Vec<(usize, &str)> = combo
            .into_iter()
            .filter(|(i, v)| targets[*i].0.base != *v)
            .collect();
        if combo.is_empty() {
            continue;
        }
        let changes: Vec<Change> = combo
            .iter()
            .map(|(i, v)| Change {
                key: targets[*i].0.key.clone(),
                value: v.to_string(),
            })
            .collect();
        if variants.iter().any(|v| v.changes == changes) {
            continue;
        }
        let mut name = format!("{base_name}_{}", slug(&changes));
        let mut n = 2;
        while variants.iter().any(|v| v.name == name) {
            name = format!("{base_name}_{}_{n}", slug(&changes));
            n += 1;
        }
        let text = write_variant(&r, &targets, &combo, &name)
            .map_err(|e| format!("{file}: {}: {e}", describe(&changes)))?;
        // Values written otherwise than in the base but meaning the same
        // (`3` for `3x3`) change nothing either.
        let span = def.name.span;
        let renamed = format!("{}{name}{}", &source[..span.start], &source[span.end..]);
        if text.0 == renamed {
            continue;
        }
        let refused = match crate::check(&text.0) {
            Ok(_) => None,
            Err(d) => {
                // An error inside a value a KEY asked for is the value's fault.
                if text
                    .1
                    .iter()
                    .any(|&(a, b)| d.span.start >= a && d.span.end <= b)
                {
                    return Err(format!(
                        "{file}: `{}`: {}{}",
                        describe(&changes),
                        d.message,
                        d.help.map(|h| format!(" ({h})")).unwrap_or_default()
                    ));
                }
                Some(d)
            }
        };
        variants.push(Variant {
            name,
            changes,
            source: text.0,
            refused,
        });
    }
    Ok(Plan {
        model: base_name,
        variants,
        base_values,
    })
}

/// The text of one variant: the base with every change, its model renamed.
fn write_variant(
    r: &Resolver,
    targets: &[(Target, &Vary)],
    combo: &[(usize, &str)],
    name: &str,
) -> Result<(String, Vec<(usize, usize)>), String> {
    let mut plain = Vec::new();
    // Changes to one copy of a repeated statement, by statement.
    let mut repeated: Vec<(&crate::syntax::ast::Stmt, Vec<Vec<edit::Edit>>)> = Vec::new();
    for &(i, value) in combo {
        let t = &targets[i].0;
        let edits = edit::edits(r, t, value)?;
        match t.stmt {
            Some(stmt) if t.count > 1 => {
                let slot = match repeated.iter().position(|(s, _)| std::ptr::eq(*s, stmt)) {
                    Some(p) => p,
                    None => {
                        repeated.push((stmt, vec![vec![]; t.count]));
                        repeated.len() - 1
                    }
                };
                repeated[slot].1[t.instance].extend(edits);
            }
            _ => plain.extend(edits),
        }
    }
    for (stmt, per_copy) in repeated {
        plain.push(edit::split(r.source, stmt, &per_copy)?);
    }
    let span = r.model.name.span;
    plain.push(edit::Edit {
        start: span.start,
        end: span.end,
        text: name.to_string(),
        value: false,
    });
    edit::apply(r.source, plain)
}

/// `conv1.filters=32, lr=0.05`
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "base".into();
    }
    changes
        .iter()
        .map(|c| format!("{}={}", c.key, c.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name-safe form of the changes: `conv1_filters_32_lr_0_05`.
fn slug(changes: &[Change]) -> String {
    let raw = changes
        .iter()
        .map(|c| format!("{}_{}", c.key, c.value))
        .collect::<Vec<_>>()
        .join("_");
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_end_matches('_').to_string()
}
