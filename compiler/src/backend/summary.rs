//! `netc check`'s output: a per-layer table for people, JSON for scripts.

use crate::analysis::counts::{Row, RowKind, Summary};
use crate::diag::Lines;
use crate::ir::Typed;
use serde_json::{json, Value};
use std::fmt::Write;

/// 1,234,567
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 37.75 M, the seed's way of printing counts.
pub fn millions(n: u64) -> String {
    format!("{:.2} M", n as f64 / 1e6)
}

pub fn table(model: &Typed, summary: &Summary, path: &str) -> String {
    let name_w = summary
        .rows
        .iter()
        .map(|r| r.depth * 2 + r.name.len())
        .chain([5])
        .max()
        .unwrap_or(5)
        .min(28);
    let op_w = summary
        .rows
        .iter()
        .map(|r| r.op.len())
        .chain([2])
        .max()
        .unwrap_or(2)
        .min(24);
    let mut out = String::new();
    let s = &model.settings;
    let _ = writeln!(out, "model {}  ({path})", model.name);
    let _ = writeln!(
        out,
        "input {}, {} classes; training: batch {}, lr {}, decay {}, augment {}, average {}",
        model.input,
        s.classes,
        s.batch_size,
        s.learning_rate,
        s.decay,
        on_off(s.augment),
        on_off(s.average)
    );
    let header = format!(
        "{:name_w$}  {:op_w$}  {:>10}  {:>10}  {:>13}  {:>13}",
        "layer", "op", "output", "params", "MACs", "ops"
    );
    let rule = "-".repeat(header.len());
    let _ = writeln!(out, "{header}\n{rule}");
    for row in &summary.rows {
        let _ = writeln!(out, "{}", table_row(row, name_w, op_w));
    }
    let t = summary.total;
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "{:name_w$}  {:op_w$}  {:>10}  {:>10}  {:>13}  {:>13}",
        "total",
        "",
        model.output().to_string(),
        thousands(t.params),
        thousands(t.macs),
        thousands(t.ops)
    );
    let _ = writeln!(
        out,
        "params {} ({} bytes as f32) | ops {} | MACs {} | activations {}",
        millions(t.params),
        thousands(t.weight_bytes),
        millions(t.ops),
        millions(t.macs),
        millions(summary.activations)
    );
    out
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn table_row(row: &Row, name_w: usize, op_w: usize) -> String {
    let indented = format!("{}{}", "  ".repeat(row.depth), row.name);
    let (params, macs, ops) = match row.kind {
        RowKind::Layer | RowKind::Add => (row.own.params, row.own.macs, row.own.ops),
        // Structural rows show the sum of what they hold, in brackets.
        _ => (row.counts.params, row.counts.macs, row.counts.ops),
    };
    let fmt = |n: u64| {
        if row.kind == RowKind::Layer || row.kind == RowKind::Add {
            thousands(n)
        } else {
            format!("({})", thousands(n))
        }
    };
    format!(
        "{:name_w$}  {:op_w$}  {:>10}  {:>10}  {:>13}  {:>13}",
        indented,
        row.op,
        row.output.to_string(),
        fmt(params),
        fmt(macs),
        fmt(ops)
    )
}

pub fn json(model: &Typed, summary: &Summary, path: &str, source: &str) -> Value {
    let lines = Lines::new(source);
    let layers: Vec<Value> = summary
        .rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Layer | RowKind::Add))
        .map(|r| {
            let (line, column) = lines.line_col(r.span.start);
            json!({
                "name": r.name,
                "op": r.op,
                "line": line,
                "column": column,
                "output": r.output.dims(),
                "activations": r.activations,
                "params": r.own.params,
                "macs": r.own.macs,
                "ops": r.own.ops,
                "weight_bytes": r.own.weight_bytes,
            })
        })
        .collect();
    let t = summary.total;
    json!({
        "model": model.name,
        "file": path,
        "input": model.input.dims(),
        "output": model.output().dims(),
        "settings": model.settings,
        "params": t.params,
        "macs": t.macs,
        "ops": t.ops,
        "weight_bytes": t.weight_bytes,
        "activations": summary.activations,
        "layers": layers,
    })
}
