//! The sweep's sensitivity table (Markdown and CSV): for each variant, what
//! it changed, its accuracy, size, operations and latency, and the
//! difference from the base; and one plot per KEY, accuracy against value.

use super::{describe, Change};
use crate::report::plot;
use crate::report::Run;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of the table: a variant, its run if it has one, or why not.
pub struct Row {
    pub name: String,
    pub changes: Vec<Change>,
    pub run: Option<Run>,
    /// Why there is no accuracy or latency (refused by check, failed...).
    pub note: Option<String>,
}

const COLUMNS: [&str; 10] = [
    "variant",
    "key",
    "value",
    "accuracy",
    "params",
    "operations",
    "latency (ms)",
    "Δ accuracy (points)",
    "Δ params",
    "Δ operations",
];

fn key_value(row: &Row, base_values: &[Change]) -> (String, String) {
    if row.changes.is_empty() {
        return ("base".into(), describe(base_values));
    }
    let keys: Vec<&str> = row.changes.iter().map(|c| c.key.as_str()).collect();
    let values: Vec<&str> = row.changes.iter().map(|c| c.value.as_str()).collect();
    (keys.join(", "), values.join(", "))
}

fn cells(row: &Row, base: Option<&Run>, base_values: &[Change], human: bool) -> Vec<String> {
    let (key, value) = key_value(row, base_values);
    let run = row.run.as_ref();
    let acc = run.and_then(Run::last_accuracy);
    let base_acc = base.and_then(Run::last_accuracy);
    let params = run.and_then(|r| r.params);
    let ops = run.and_then(|r| r.ops);
    let latency = run.and_then(|r| r.latency_ms);
    let diff_u = |v: Option<u64>, b: Option<u64>| match (v, b) {
        (Some(v), Some(b)) => {
            let d = v as i128 - b as i128;
            if human {
                format!("{:+.1} %", 100.0 * d as f64 / b.max(1) as f64)
            } else {
                d.to_string()
            }
        }
        _ => String::new(),
    };
    let why = row.note.clone().unwrap_or_default();
    let mut out = vec![row.name.clone(), key, value];
    if human {
        out.push(acc.map_or_else(|| why.clone(), |a| format!("{:.2} %", 100.0 * a)));
        out.push(params.map_or("-".into(), crate::backend::summary::millions));
        out.push(ops.map_or("-".into(), crate::backend::summary::millions));
        out.push(latency.map_or("-".into(), |l| format!("{l:.3}")));
        out.push(match (acc, base_acc) {
            (Some(a), Some(b)) => format!("{:+.2}", 100.0 * (a - b)),
            _ => "-".into(),
        });
    } else {
        out.push(acc.map_or(String::new(), |a| format!("{a:.4}")));
        out.push(params.map_or(String::new(), |v| v.to_string()));
        out.push(ops.map_or(String::new(), |v| v.to_string()));
        out.push(latency.map_or(String::new(), |l| format!("{l:.3}")));
        out.push(match (acc, base_acc) {
            (Some(a), Some(b)) => format!("{:.4}", a - b),
            _ => String::new(),
        });
    }
    out.push(diff_u(params, base.and_then(|r| r.params)));
    out.push(diff_u(ops, base.and_then(|r| r.ops)));
    if !human {
        out.push(why);
    }
    out
}

/// The table in Markdown; `latency` says why latency is missing, if it is.
pub fn markdown(rows: &[Row], base_values: &[Change], latency: Option<&str>) -> String {
    let base = rows.first().and_then(|r| r.run.as_ref());
    let mut s = format!("| {} |\n", COLUMNS.join(" | "));
    s.push_str(&format!("|{}\n", "---|".repeat(COLUMNS.len())));
    for row in rows {
        let cells = cells(row, base, base_values, true);
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if let Some(why) = latency {
        s.push_str(&format!("\nLatency not measured: {why}.\n"));
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(rows: &[Row], base_values: &[Change]) -> String {
    let base = rows.first().and_then(|r| r.run.as_ref());
    let mut header: Vec<&str> = COLUMNS.to_vec();
    header[7] = "delta accuracy";
    header[8] = "delta params";
    header[9] = "delta operations";
    header.push("note");
    let mut s = header.join(",") + "\n";
    for row in rows {
        let cells = cells(row, base, base_values, false);
        s.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    s
}

/// Accuracy against the values of `key`: the base's value and every
/// variant's, in the order given (values are categories: `on`, `3x5`...).
pub fn plot_key(key: &str, base_value: &str, rows: &[Row]) -> Result<(String, Vec<u8>), String> {
    let mut points: Vec<(String, f64)> = Vec::new();
    for row in rows {
        let value = match row.changes.iter().find(|c| c.key == key) {
            Some(c) => c.value.clone(),
            None if row.changes.is_empty() => base_value.to_string(),
            None => continue,
        };
        if let Some(a) = row.run.as_ref().and_then(Run::last_accuracy) {
            points.push((value, 100.0 * a));
        }
    }
    if points.is_empty() {
        return Err("no run of this key has an accuracy".into());
    }
    Ok((
        plot::svg(|a| chart(a, key, &points))?,
        plot::png(|a| chart(a, key, &points))?,
    ))
}

fn chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    key: &str,
    points: &[(String, f64)],
) -> Result<(), String> {
    let err = plot::err;
    root.fill(&WHITE).map_err(err)?;
    let mut labels: Vec<String> = Vec::new();
    for (v, _) in points {
        if !labels.contains(v) {
            labels.push(v.clone());
        }
    }
    // Numbers in order; other values (on, off, 3x5) as given.
    if labels.iter().all(|l| l.parse::<f64>().is_ok()) {
        labels.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse().unwrap_or(0.0))
        });
    }
    let n = labels.len() as f64;
    let mut c = ChartBuilder::on(&root)
        .caption(format!("Test accuracy against {key}"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..100f64)
        .map_err(err)?;
    let names = labels.clone();
    c.configure_mesh()
        .x_labels(labels.len().max(2))
        .x_label_formatter(&move |x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(key)
        .y_desc("test accuracy at the last evaluation (%)")
        .draw()
        .map_err(err)?;
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|(v, a)| (labels.iter().position(|l| l == v).unwrap_or(0) as f64, *a))
        .collect();
    let color = Palette99::pick(0).to_rgba();
    c.draw_series(xy.iter().map(|&p| Circle::new(p, 5, color.filled())))
        .map_err(err)?;
    c.draw_series(
        xy.iter()
            .map(|&(x, y)| Text::new(format!("{y:.1}"), (x, y + 2.5), ("sans-serif", 14))),
    )
    .map_err(err)?;
    root.present().map_err(err)
}
