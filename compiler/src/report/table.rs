//! The report's table as Markdown and CSV, and `report.md`.

use super::{Run, MILESTONES};
use crate::backend::summary::{millions, thousands};
use std::fmt::Write;

const COLUMNS: [&str; 16] = [
    "run",
    "model",
    "recipe",
    "steps",
    "accuracy",
    "at 10k",
    "at 50k",
    "at 100k",
    "at 300k",
    "params",
    "checkpoint bytes",
    "non-zero params",
    "sparse bytes",
    "operations",
    "MACs",
    "train ex/s",
];

fn pct(a: Option<f64>) -> String {
    a.map_or("-".into(), |a| format!("{:.2} %", 100.0 * a))
}

fn cells(run: &Run, human: bool) -> Vec<String> {
    let n = |v: Option<u64>, f: fn(u64) -> String| v.map_or("-".to_string(), f);
    let mut row = vec![
        run.name.clone(),
        run.model.clone(),
        run.recipe
            .clone()
            .unwrap_or(if human { "-" } else { "" }.into()),
        run.steps.to_string(),
    ];
    if human {
        row.push(pct(run.last_accuracy()));
        row.extend(MILESTONES.iter().map(|&m| pct(run.accuracy_at(m))));
        row.push(n(run.params, millions));
        row.push(n(run.checkpoint_bytes, thousands));
        row.push(n(run.nonzero, millions));
        row.push(n(run.sparse_bytes, thousands));
        row.push(n(run.ops, millions));
        row.push(n(run.macs, millions));
        row.push(
            run.examples_per_second
                .map_or("-".into(), |r| format!("{r:.0}")),
        );
        row.push(run.latency_ms.map_or("-".into(), |l| format!("{l:.2}")));
    } else {
        let f = |a: Option<f64>| a.map_or(String::new(), |a| format!("{a:.4}"));
        let u = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        row.push(f(run.last_accuracy()));
        row.extend(MILESTONES.iter().map(|&m| f(run.accuracy_at(m))));
        row.push(u(run.params));
        row.push(u(run.checkpoint_bytes));
        row.push(u(run.nonzero));
        row.push(u(run.sparse_bytes));
        row.push(u(run.ops));
        row.push(u(run.macs));
        row.push(
            run.examples_per_second
                .map_or(String::new(), |r| format!("{r:.1}")),
        );
        row.push(run.latency_ms.map_or(String::new(), |l| format!("{l:.3}")));
    }
    row
}

pub fn markdown(runs: &[Run]) -> String {
    let mut out = String::new();
    let mut header: Vec<&str> = COLUMNS.to_vec();
    header.push("latency (ms)");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for run in runs {
        let _ = writeln!(out, "| {} |", cells(run, true).join(" | "));
    }
    out
}

pub fn csv(runs: &[Run]) -> String {
    let mut out = String::from(
        "run,model,recipe,steps,accuracy,accuracy_10k,accuracy_50k,accuracy_100k,accuracy_300k,params,checkpoint_bytes,nonzero_params,sparse_bytes,ops,macs,train_examples_per_second,latency_ms\n",
    );
    for run in runs {
        let row: Vec<String> = cells(run, false)
            .into_iter()
            .map(|c| {
                if c.contains(',') || c.contains('"') {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c
                }
            })
            .collect();
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

pub fn report_md(runs: &[Run], warnings: &[String], plots: &[String]) -> String {
    let mut out = String::from("# Model comparison\n\n");
    let _ = writeln!(
        out,
        "{} runs. Accuracy is on the test set with the averaged weights, at the last evaluation and \
         at the seed's milestones where a run reached them; operations are the seed's count per image; \
         latency is batch-1 inference on this machine, measured when the report was made.\n",
        runs.len()
    );
    out.push_str(&markdown(runs));
    out.push_str("\nThe same table: [report.csv](report.csv).\n\n");
    for p in plots {
        let title = if p.starts_with("accuracy_vs_steps") {
            "Test accuracy during training"
        } else {
            "Accuracy against operations"
        };
        let _ = writeln!(out, "## {title}\n\n![{title}]({p})\n");
    }
    if !warnings.is_empty() {
        out.push_str("## Missing or damaged files\n\n");
        for w in warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    out
}
