//! Side-by-side speed: a netc program's `bench` figures beside PyTorch's for
//! the same model, with the ratio netc / PyTorch of each, as Markdown and JSON.

use serde::{Deserialize, Serialize};

/// One side's measurements, as both `bench` commands print them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub threads: usize,
    pub train_examples_per_second: f64,
    pub infer_examples_per_second: f64,
    pub latency_ms_median: f64,
    pub latency_ms_p95: f64,
    pub peak_memory_bytes: Option<u64>,
}

/// netc / PyTorch for each figure. Throughput: above 1 is netc ahead;
/// latency and memory: below 1 is netc ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratios {
    pub train: f64,
    pub infer: f64,
    pub latency_median: f64,
    pub latency_p95: f64,
    pub peak_memory: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub netc: Figures,
    pub pytorch: Option<Figures>,
    pub ratio: Option<Ratios>,
}

impl Row {
    pub fn new(model: &str, netc: Figures, pytorch: Option<Figures>) -> Row {
        let ratio = pytorch.as_ref().map(|p| Ratios {
            train: netc.train_examples_per_second / p.train_examples_per_second,
            infer: netc.infer_examples_per_second / p.infer_examples_per_second,
            latency_median: netc.latency_ms_median / p.latency_ms_median,
            latency_p95: netc.latency_ms_p95 / p.latency_ms_p95,
            peak_memory: netc
                .peak_memory_bytes
                .zip(p.peak_memory_bytes)
                .map(|(a, b)| a as f64 / b as f64),
        });
        Row {
            model: model.to_string(),
            netc,
            pytorch,
            ratio,
        }
    }
}

/// The whole measurement: its settings and one row per model.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub batch_size: usize,
    pub steps: usize,
    /// Measurements per side; each figure is their median.
    pub rounds: usize,
    pub threads: usize,
    /// Why there is no PyTorch column, when there is none.
    pub pytorch_missing: Option<String>,
    pub rows: Vec<Row>,
}

/// Each figure's median over several measurements of one side.
pub fn median(runs: &[Figures]) -> Option<Figures> {
    let first = runs.first()?;
    let mid = |f: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut memory: Vec<u64> = runs.iter().filter_map(|r| r.peak_memory_bytes).collect();
    memory.sort_unstable();
    Some(Figures {
        threads: first.threads,
        train_examples_per_second: mid(&|r| r.train_examples_per_second),
        infer_examples_per_second: mid(&|r| r.infer_examples_per_second),
        latency_ms_median: mid(&|r| r.latency_ms_median),
        latency_ms_p95: mid(&|r| r.latency_ms_p95),
        peak_memory_bytes: memory.get(memory.len() / 2).copied(),
    })
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
}

/// `ratio` and whether it puts netc ahead (higher is better when `up`).
fn judged(ratio: Option<f64>, up: bool) -> String {
    match ratio {
        Some(r) if r.is_finite() => {
            let ahead = if up { r >= 1.0 } else { r <= 1.0 };
            format!("{r:.2} {}", if ahead { "✓" } else { "✗" })
        }
        _ => "-".into(),
    }
}

/// One figure's row: name, netc, PyTorch, ratio, whether higher is better.
struct Line(&'static str, String, Option<String>, Option<f64>, bool);

pub fn markdown(b: &Bench) -> String {
    let mut s = format!(
        "# netc against PyTorch\n\nBatch {} for throughput, batch 1 for latency; {} timed steps; {} thread{};\n\
         each figure the median of {} measurements per side, taken in turns.\n\
         Ratio is netc / PyTorch: above 1 is better for examples per second, below 1 for\n\
         milliseconds and memory (✓ where netc is ahead).\n\n",
        b.batch_size,
        b.steps,
        b.threads,
        if b.threads == 1 { "" } else { "s" },
        b.rounds
    );
    if let Some(why) = &b.pytorch_missing {
        s += &format!("No PyTorch column: {why}.\n\n");
    }
    s += "| model | figure | netc | PyTorch | ratio |\n|---|---|---:|---:|---:|\n";
    for r in &b.rows {
        let p = r.pytorch.as_ref();
        let q = r.ratio.as_ref();
        let lines: [Line; 5] = [
            Line(
                "training, examples/s",
                format!("{:.1}", r.netc.train_examples_per_second),
                p.map(|p| format!("{:.1}", p.train_examples_per_second)),
                q.map(|q| q.train),
                true,
            ),
            Line(
                "inference, examples/s",
                format!("{:.1}", r.netc.infer_examples_per_second),
                p.map(|p| format!("{:.1}", p.infer_examples_per_second)),
                q.map(|q| q.infer),
                true,
            ),
            Line(
                "latency median, ms",
                format!("{:.2}", r.netc.latency_ms_median),
                p.map(|p| format!("{:.2}", p.latency_ms_median)),
                q.map(|q| q.latency_median),
                false,
            ),
            Line(
                "latency p95, ms",
                format!("{:.2}", r.netc.latency_ms_p95),
                p.map(|p| format!("{:.2}", p.latency_ms_p95)),
                q.map(|q| q.latency_p95),
                false,
            ),
            Line(
                "peak memory, MiB",
                mib(r.netc.peak_memory_bytes),
                p.map(|p| mib(p.peak_memory_bytes)),
                q.and_then(|q| q.peak_memory),
                false,
            ),
        ];
        for (i, Line(figure, ours, theirs, ratio, up)) in lines.into_iter().enumerate() {
            let model = if i == 0 { r.model.as_str() } else { "" };
            s += &format!(
                "| {model} | {figure} | {ours} | {} | {} |\n",
                theirs.unwrap_or_else(|| "-".into()),
                judged(ratio, up)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(train: f64, latency: f64) -> Figures {
        Figures {
            threads: 2,
            train_examples_per_second: train,
            infer_examples_per_second: 2.0 * train,
            latency_ms_median: latency,
            latency_ms_p95: latency * 1.5,
            peak_memory_bytes: Some(100 << 20),
        }
    }

    #[test]
    fn ratios_are_netc_over_pytorch() {
        let row = Row::new("tuto", figures(300.0, 2.0), Some(figures(200.0, 4.0)));
        let r = row.ratio.unwrap();
        assert_eq!(r.train, 1.5);
        assert_eq!(r.infer, 1.5);
        assert_eq!(r.latency_median, 0.5);
        assert_eq!(r.peak_memory, Some(1.0));
    }

    #[test]
    fn the_median_is_taken_figure_by_figure() {
        let runs = [
            figures(100.0, 9.0),
            figures(300.0, 1.0),
            figures(200.0, 5.0),
        ];
        let m = median(&runs).unwrap();
        assert_eq!(m.train_examples_per_second, 200.0);
        assert_eq!(m.latency_ms_median, 5.0);
        assert!(median(&[]).is_none());
    }

    #[test]
    fn the_table_marks_where_netc_is_ahead() {
        let bench = Bench {
            batch_size: 128,
            steps: 10,
            rounds: 3,
            threads: 2,
            pytorch_missing: None,
            rows: vec![Row::new(
                "tuto",
                figures(100.0, 2.0),
                Some(figures(200.0, 4.0)),
            )],
        };
        let md = markdown(&bench);
        assert!(
            md.contains("| tuto | training, examples/s | 100.0 | 200.0 | 0.50 ✗ |"),
            "{md}"
        );
        assert!(
            md.contains("|  | latency median, ms | 2.00 | 4.00 | 0.50 ✓ |"),
            "{md}"
        );
    }

    #[test]
    fn without_pytorch_the_table_says_why() {
        let bench = Bench {
            batch_size: 128,
            steps: 10,
            rounds: 1,
            threads: 1,
            pytorch_missing: Some("python3 cannot import torch".into()),
            rows: vec![Row::new("tuto", figures(100.0, 2.0), None)],
        };
        let md = markdown(&bench);
        assert!(
            md.contains("No PyTorch column: python3 cannot import torch."),
            "{md}"
        );
        assert!(
            md.contains("| tuto | training, examples/s | 100.0 | - | - |"),
            "{md}"
        );
    }
}
