//! Side-by-side speed: a netc program's `bench` figures beside PyTorch's for
//! the same model (the emitted module, and the model written by hand), with
//! the ratio netc / best PyTorch of each figure, as Markdown and JSON.

use crate::machine::{infer_flop_per_example, train_flop_per_example, Machine};
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

/// netc / the best PyTorch side for each figure. Throughput: above 1 is netc
/// ahead; latency and memory: below 1 is netc ahead. Each time ratio is the
/// median of the rounds' ratios, netc against the side whose median figure
/// is best, both measured in the same round: on a machine whose speed drifts
/// from minute to minute, a pair taken close together says more than two
/// medians taken over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratios {
    pub train: f64,
    pub infer: f64,
    pub latency_median: f64,
    pub latency_p95: f64,
    /// Medians over the whole run: memory does not drift.
    pub peak_memory: Option<f64>,
    pub rounds: RoundRatios,
}

/// Each time figure's ratio round by round, and the side it was taken against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRatios {
    pub train: Paired,
    pub infer: Paired,
    pub latency_median: Paired,
    pub latency_p95: Paired,
}

/// One figure's ratios, one per round, against one PyTorch side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub against: String,
    pub rounds: Vec<f64>,
}

impl Paired {
    /// netc's runs against the side whose median of `figure` is best
    /// (highest when `up`), round by round.
    fn new(netc: &[Figures], sides: &[Side], figure: fn(&Figures) -> f64, up: bool) -> Paired {
        let better = |a: &&Side, b: &&Side| {
            let (a, b) = (figure(&a.figures), figure(&b.figures));
            if up {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        };
        let side = sides.iter().max_by(better).expect("at least one side");
        Paired {
            against: side.name.clone(),
            rounds: netc
                .iter()
                .zip(&side.runs)
                .map(|(n, p)| figure(n) / figure(p))
                .collect(),
        }
    }

    /// The lowest and highest round, when there are two or more.
    fn range(&self) -> Option<(f64, f64)> {
        (self.rounds.len() > 1).then(|| {
            let lo = self.rounds.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = self
                .rounds
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        })
    }
}

/// The PyTorch sides, in the table's order: the module netc emits (eager
/// and channels-last), and the model written by hand as a PyTorch user would
/// (`handwritten.py`), eager, channels-last and compiled.
pub const EMITTED: &str = "emitted module";
pub const EMITTED_CHANNELS_LAST: &str = "emitted, channels-last";
pub const HANDWRITTEN: &str = "hand-written";
pub const CHANNELS_LAST: &str = "hand-written, channels-last";
pub const COMPILED: &str = "hand-written, torch.compile";
pub const SIDES: [&str; 5] = [
    EMITTED,
    EMITTED_CHANNELS_LAST,
    HANDWRITTEN,
    CHANNELS_LAST,
    COMPILED,
];

/// The sides most likely to be the best PyTorch, first: channels-last is
/// the fastest layout on CPUs (it was the best side in every bench so far),
/// and a compiled model may beat it.
const CLOSEST: [&str; 5] = [
    CHANNELS_LAST,
    EMITTED_CHANNELS_LAST,
    COMPILED,
    HANDWRITTEN,
    EMITTED,
];

/// The turns of round `round` (from 1): None for netc, Some(i) for
/// `sides[i]`. Each ratio pairs netc's run with one side's run of the same
/// round, so the sides likeliest to be the best run next to netc, one just
/// before it and one just after (the two channels-last sides), the others
/// further out; even rounds run the order backwards, so a drift of the
/// machine's speed favours each of a pair in turn. (Before 2026-11-29 netc
/// ran first or last, and the emitted channels-last side, the best in some
/// runs, three turns away from it.)
pub fn turns(sides: &[&str], round: usize) -> Vec<Option<usize>> {
    let rank = |name: &str| {
        CLOSEST
            .iter()
            .position(|c| *c == name)
            .unwrap_or(CLOSEST.len())
    };
    let mut ranked: Vec<usize> = (0..sides.len()).collect();
    ranked.sort_by_key(|&i| rank(sides[i]));
    let mut order = std::collections::VecDeque::from([None]);
    for (r, i) in ranked.into_iter().enumerate() {
        match r % 2 {
            0 => order.push_back(Some(i)),
            _ => order.push_front(Some(i)),
        }
    }
    let mut order: Vec<_> = order.into();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// One PyTorch variant's figures: the median of its runs, and the runs, one
/// per round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub name: String,
    pub figures: Figures,
    pub runs: Vec<Figures>,
}

impl Side {
    /// None when the side was never measured.
    pub fn new(name: &str, runs: Vec<Figures>) -> Option<Side> {
        Some(Side {
            name: name.to_string(),
            figures: median(&runs)?,
            runs,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    /// Multiply-accumulates of one example's forward pass, as `check` counts.
    pub macs: u64,
    /// The median of netc's runs, and the runs, one per round.
    pub netc: Figures,
    pub netc_runs: Vec<Figures>,
    pub pytorch: Vec<Side>,
    /// Each figure's best over the PyTorch sides.
    pub best: Option<Figures>,
    pub ratio: Option<Ratios>,
}

/// The best of each figure over several sides: the highest throughput,
/// the lowest latency and memory.
fn best(sides: &[Side]) -> Option<Figures> {
    let first = &sides.first()?.figures;
    let all = || sides.iter().map(|s| &s.figures);
    let most = |f: &dyn Fn(&Figures) -> f64| all().map(f).fold(f64::NEG_INFINITY, f64::max);
    let least = |f: &dyn Fn(&Figures) -> f64| all().map(f).fold(f64::INFINITY, f64::min);
    Some(Figures {
        threads: first.threads,
        train_examples_per_second: most(&|f| f.train_examples_per_second),
        infer_examples_per_second: most(&|f| f.infer_examples_per_second),
        latency_ms_median: least(&|f| f.latency_ms_median),
        latency_ms_p95: least(&|f| f.latency_ms_p95),
        peak_memory_bytes: all().filter_map(|f| f.peak_memory_bytes).min(),
    })
}

impl Row {
    /// None when netc was never measured. `netc[i]` and each side's
    /// `runs[i]` are round i's.
    pub fn new(model: &str, macs: u64, netc: Vec<Figures>, pytorch: Vec<Side>) -> Option<Row> {
        let ours = median(&netc)?;
        let best = best(&pytorch);
        let ratio = best.as_ref().map(|p| {
            let paired = |figure, up| Paired::new(&netc, &pytorch, figure, up);
            let rounds = RoundRatios {
                train: paired(|f| f.train_examples_per_second, true),
                infer: paired(|f| f.infer_examples_per_second, true),
                latency_median: paired(|f| f.latency_ms_median, false),
                latency_p95: paired(|f| f.latency_ms_p95, false),
            };
            let mid = |p: &Paired| middle(p.rounds.clone());
            Ratios {
                train: mid(&rounds.train),
                infer: mid(&rounds.infer),
                latency_median: mid(&rounds.latency_median),
                latency_p95: mid(&rounds.latency_p95),
                peak_memory: ours
                    .peak_memory_bytes
                    .zip(p.peak_memory_bytes)
                    .map(|(a, b)| a as f64 / b as f64),
                rounds,
            }
        });
        Some(Row {
            model: model.to_string(),
            macs,
            netc: ours,
            netc_runs: netc,
            pytorch,
            best,
            ratio,
        })
    }

    fn side(&self, name: &str) -> Option<&Figures> {
        self.pytorch
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.figures)
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
    /// The processor, and its nominal FLOP limit.
    pub machine: Machine,
    /// Why there is no PyTorch column, when there is none.
    pub pytorch_missing: Option<String>,
    /// The allocator settings every side started with (`KEY=value ...`, the
    /// environment's own values where it set them); None with
    /// --plain-allocator, glibc's defaults.
    pub allocator: Option<String>,
    pub rows: Vec<Row>,
}

/// The median; of an even count, the mean of the middle two. NaN when empty.
fn middle(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each figure's median over several measurements of one side.
pub fn median(runs: &[Figures]) -> Option<Figures> {
    let first = runs.first()?;
    let mid = |f: &dyn Fn(&Figures) -> f64| middle(runs.iter().map(f).collect());
    let memory: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.peak_memory_bytes)
        .map(|b| b as f64)
        .collect();
    Some(Figures {
        threads: first.threads,
        train_examples_per_second: mid(&|r| r.train_examples_per_second),
        infer_examples_per_second: mid(&|r| r.infer_examples_per_second),
        latency_ms_median: mid(&|r| r.latency_ms_median),
        latency_ms_p95: mid(&|r| r.latency_ms_p95),
        peak_memory_bytes: (!memory.is_empty()).then(|| middle(memory) as u64),
    })
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
}

/// `ratio` and whether it puts netc ahead (higher is better when `up`),
/// then the lowest and highest round's ratio when there are several.
fn judged(ratio: Option<f64>, up: bool, rounds: Option<&Paired>) -> String {
    match ratio {
        Some(r) if r.is_finite() => {
            let ahead = if up { r >= 1.0 } else { r <= 1.0 };
            let mut s = format!("{r:.2} {}", if ahead { "✓" } else { "✗" });
            if let Some((lo, hi)) = rounds.and_then(Paired::range) {
                s += &format!(" ({lo:.2}-{hi:.2})");
            }
            s
        }
        _ => "-".into(),
    }
}

/// One figure: its name, how to print it, its ratio and rounds, whether
/// higher is better.
struct Line {
    name: &'static str,
    show: fn(&Figures) -> String,
    ratio: fn(&Ratios) -> Option<f64>,
    rounds: fn(&Ratios) -> Option<&Paired>,
    up: bool,
}

const LINES: [Line; 5] = [
    Line {
        name: "training, examples/s",
        show: |f| format!("{:.1}", f.train_examples_per_second),
        ratio: |r| Some(r.train),
        rounds: |r| Some(&r.rounds.train),
        up: true,
    },
    Line {
        name: "inference, examples/s",
        show: |f| format!("{:.1}", f.infer_examples_per_second),
        ratio: |r| Some(r.infer),
        rounds: |r| Some(&r.rounds.infer),
        up: true,
    },
    Line {
        name: "latency median, ms",
        show: |f| format!("{:.2}", f.latency_ms_median),
        ratio: |r| Some(r.latency_median),
        rounds: |r| Some(&r.rounds.latency_median),
        up: false,
    },
    Line {
        name: "latency p95, ms",
        show: |f| format!("{:.2}", f.latency_ms_p95),
        ratio: |r| Some(r.latency_p95),
        rounds: |r| Some(&r.rounds.latency_p95),
        up: false,
    },
    Line {
        name: "peak memory, MiB",
        show: |f| mib(f.peak_memory_bytes),
        ratio: |r| r.peak_memory,
        rounds: |_| None,
        up: false,
    },
];

pub fn markdown(b: &Bench) -> String {
    let mut s = format!(
        "# netc against PyTorch\n\nBatch {} for throughput, batch 1 for latency; {} timed steps; {} thread{};\n\
         {} rounds, each side measured once per round in turns (the channels-last sides\n\
         next to netc, the order reversed in even rounds); each figure the median of its rounds.\n\
         PyTorch runs the module netc emits and, for the seed's models, the same model written\n\
         by hand with stock modules (eager, channels-last, compiled where asked). The ratio is\n\
         netc / the PyTorch side with the best median figure, taken round by round: the median\n\
         of the rounds' ratios, then the lowest and highest round in brackets. Above 1 is better\n\
         for examples per second, below 1 for milliseconds and memory (✓ where netc is ahead).\n\n",
        b.batch_size,
        b.steps,
        b.threads,
        if b.threads == 1 { "" } else { "s" },
        b.rounds
    );
    s += &format!("CPU: {}.\n\n", b.machine.cpu);
    s += &match &b.allocator {
        None => "Memory: every side with glibc's allocator as it comes (--plain-allocator).\n\n"
            .to_string(),
        Some(settings) => format!(
            "Memory: every side started with `{settings}`, so that a step's freed memory serves \
             the next (docs/performance.md).\n\n"
        ),
    };
    if let Some(why) = &b.pytorch_missing {
        s += &format!("No PyTorch column: {why}.\n\n");
    }
    let sides: Vec<&str> = SIDES
        .into_iter()
        .filter(|name| b.rows.iter().any(|r| r.side(name).is_some()))
        .collect();
    s += "| model | figure | netc |";
    for side in &sides {
        s += &format!(" {side} |");
    }
    s += " netc / best |\n|---|---|---:|";
    s += &"---:|".repeat(sides.len() + 1);
    s += "\n";
    for r in &b.rows {
        for (i, line) in LINES.iter().enumerate() {
            let model = if i == 0 { r.model.as_str() } else { "" };
            s += &format!("| {model} | {} | {} |", line.name, (line.show)(&r.netc));
            for side in &sides {
                let shown = r.side(side).map_or("-".into(), line.show);
                s += &format!(" {shown} |");
            }
            let ratio = r.ratio.as_ref().and_then(line.ratio);
            let rounds = r.ratio.as_ref().and_then(line.rounds);
            s += &format!(" {} |\n", judged(ratio, line.up, rounds));
        }
    }
    s + &flop_share(b)
}

/// Achieved FLOP/s as a share of the nominal limit, netc beside the best
/// PyTorch side: how far each model is from the hardware.
fn flop_share(b: &Bench) -> String {
    let m = &b.machine;
    let Some(peak) = m.peak_flops(b.threads) else {
        return format!(
            "\nNo share of the FLOP limit: the clock of this CPU ({}) is unknown.\n",
            m.cpu
        );
    };
    let mut s = format!(
        "\n## Share of the FLOP limit\n\nLimit: {} thread{} x {} fp32 FLOP per cycle ({}, {} vector units{}) x {:.2} GHz{} \
         = {:.1} GFLOP/s. Work per example: training 6 x MACs, inference 2 x MACs.\n\n\
         | model | MMACs | netc training | netc inference | best PyTorch training | best PyTorch inference |\n\
         |---|---:|---:|---:|---:|---:|\n",
        b.threads,
        if b.threads == 1 { "" } else { "s" },
        m.flop_per_cycle(),
        m.vector,
        crate::machine::VECTOR_UNITS,
        if m.fma { ", fused multiply-add" } else { "" },
        m.ghz.unwrap_or(0.0),
        match (m.clock_measured, m.reported_ghz) {
            (true, Some(r)) => format!(
                " (measured with every thread busy; the kernel reports {r:.2} GHz)"
            ),
            (true, None) => " (measured with every thread busy)".into(),
            (false, _) => " (as the kernel reports it)".into(),
        },
        peak / 1e9,
    );
    let pct = |rate: f64, flop: f64| format!("{:.1} %", 100.0 * rate * flop / peak);
    for r in &b.rows {
        let (train, infer) = (
            train_flop_per_example(r.macs),
            infer_flop_per_example(r.macs),
        );
        let best = |f: fn(&Figures) -> f64, flop: f64| {
            r.best.as_ref().map_or("-".into(), |p| pct(f(p), flop))
        };
        s += &format!(
            "| {} | {:.1} | {} | {} | {} | {} |\n",
            r.model,
            r.macs as f64 / 1e6,
            pct(r.netc.train_examples_per_second, train),
            pct(r.netc.infer_examples_per_second, infer),
            best(|f| f.train_examples_per_second, train),
            best(|f| f.infer_examples_per_second, infer),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channels_last_sides_run_next_to_netc_one_on_each_side() {
        let names = |order: &[Option<usize>], sides: &[&str]| -> Vec<String> {
            let name = |t: &Option<usize>| t.map_or("netc".to_string(), |i| sides[i].to_string());
            order.iter().map(name).collect()
        };
        let four = [EMITTED, EMITTED_CHANNELS_LAST, HANDWRITTEN, CHANNELS_LAST];
        assert_eq!(
            names(&turns(&four, 1), &four),
            [
                EMITTED,
                EMITTED_CHANNELS_LAST,
                "netc",
                CHANNELS_LAST,
                HANDWRITTEN
            ]
        );
        assert_eq!(
            names(&turns(&four, 2), &four),
            [
                HANDWRITTEN,
                CHANNELS_LAST,
                "netc",
                EMITTED_CHANNELS_LAST,
                EMITTED
            ]
        );
        assert_eq!(turns(&four, 3), turns(&four, 1));
        let all = SIDES;
        let odd = names(&turns(&all, 1), &all);
        assert_eq!(odd[1..4], [EMITTED_CHANNELS_LAST, "netc", CHANNELS_LAST]);
        assert_eq!(odd.len(), 6);
        let two = [EMITTED, EMITTED_CHANNELS_LAST];
        assert_eq!(
            names(&turns(&two, 1), &two),
            [EMITTED, "netc", EMITTED_CHANNELS_LAST]
        );
        assert_eq!(turns(&[], 2), [None]);
    }

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

    fn machine() -> Machine {
        Machine {
            cpu: "Test CPU".into(),
            vector: "avx2+fma".into(),
            lanes: 8,
            fma: true,
            ghz: Some(2.5),
            reported_ghz: Some(2.0),
            clock_measured: true,
        }
    }

    /// A side measured once.
    fn side(name: &str, f: Figures) -> Side {
        Side::new(name, vec![f]).unwrap()
    }

    fn row(netc: Figures, sides: Vec<Side>) -> Row {
        Row::new("tuto", 1_000_000, vec![netc], sides).unwrap()
    }

    #[test]
    fn ratios_are_netc_over_the_best_pytorch_figure() {
        let mut slow_but_lean = figures(150.0, 8.0);
        slow_but_lean.peak_memory_bytes = Some(50 << 20);
        let row = row(
            figures(300.0, 2.0),
            vec![
                side(EMITTED, slow_but_lean),
                side(CHANNELS_LAST, figures(200.0, 4.0)),
            ],
        );
        let r = row.ratio.unwrap();
        assert_eq!(r.train, 1.5);
        assert_eq!(r.infer, 1.5);
        assert_eq!(r.latency_median, 0.5);
        assert_eq!(r.peak_memory, Some(2.0));
        assert_eq!(r.rounds.train.against, CHANNELS_LAST);
        assert!(Row::new("tuto", 1, vec![figures(1.0, 1.0)], vec![])
            .unwrap()
            .ratio
            .is_none());
        assert!(Row::new("tuto", 1, vec![], vec![]).is_none());
        assert!(Side::new(EMITTED, vec![]).is_none());
    }

    #[test]
    fn ratios_pair_the_runs_of_each_round() {
        // The machine slows down and speeds up; each round's pair moves together.
        let netc = vec![
            figures(100.0, 2.0),
            figures(50.0, 4.0),
            figures(80.0, 2.5),
            figures(90.0, 2.2),
        ];
        let fast = vec![
            figures(125.0, 1.0),
            figures(40.0, 5.0),
            figures(100.0, 2.0),
            figures(100.0, 2.0),
        ];
        // Slower by its median, faster than netc in its one good round.
        let other = vec![
            figures(10.0, 9.0),
            figures(200.0, 9.0),
            figures(10.0, 9.0),
            figures(10.0, 9.0),
        ];
        let row = Row::new(
            "tuto",
            1,
            netc,
            vec![
                Side::new(EMITTED, other).unwrap(),
                Side::new(CHANNELS_LAST, fast).unwrap(),
            ],
        )
        .unwrap();
        // Medians: netc 85 ex/s, fast 100, other 10 (upper pair 10, 10).
        assert_eq!(row.netc.train_examples_per_second, 85.0);
        let r = row.ratio.unwrap();
        let train = &r.rounds.train;
        assert_eq!(train.against, CHANNELS_LAST);
        assert_eq!(train.rounds, vec![0.8, 1.25, 0.8, 0.9]);
        // The median of the rounds' ratios, not 85 / 100.
        assert!((r.train - 0.85).abs() < 1e-12, "{}", r.train);
        assert_eq!(train.range(), Some((0.8, 1.25)));
        assert_eq!(r.rounds.latency_median.against, CHANNELS_LAST);
        assert_eq!(r.rounds.latency_median.rounds, vec![2.0, 0.8, 1.25, 1.1]);
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
        let two = median(&runs[..2]).unwrap();
        assert_eq!(two.train_examples_per_second, 200.0);
    }

    /// The Markdown of a bench at batch 128 on 2 threads of `machine()`.
    fn table(rounds: usize, rows: Vec<Row>) -> String {
        markdown(&Bench {
            batch_size: 128,
            steps: 10,
            rounds,
            threads: 2,
            machine: machine(),
            pytorch_missing: None,
            allocator: Some("MALLOC_TRIM_THRESHOLD_=1 THP_MEM_ALLOC_ENABLE=1".into()),
            rows,
        })
    }

    #[test]
    fn the_table_marks_where_netc_is_ahead() {
        let md = table(
            1,
            vec![
                row(
                    figures(100.0, 2.0),
                    vec![
                        side(EMITTED, figures(150.0, 5.0)),
                        side(HANDWRITTEN, figures(200.0, 4.0)),
                    ],
                ),
                Row::new(
                    "mine",
                    1_000_000,
                    vec![figures(100.0, 2.0)],
                    vec![side(EMITTED, figures(50.0, 1.0))],
                )
                .unwrap(),
            ],
        );
        assert!(
            md.contains("| model | figure | netc | emitted module | hand-written | netc / best |"),
            "{md}"
        );
        assert!(
            md.contains("| tuto | training, examples/s | 100.0 | 150.0 | 200.0 | 0.50 ✗ |"),
            "{md}"
        );
        assert!(
            md.contains("|  | latency median, ms | 2.00 | 5.00 | 4.00 | 0.50 ✓ |"),
            "{md}"
        );
        assert!(
            md.contains("| mine | training, examples/s | 100.0 | 50.0 | - | 2.00 ✓ |"),
            "{md}"
        );
        // 2 threads x 32 FLOP/cycle x 2.5 GHz = 160 GFLOP/s; tuto's 1 MMAC
        // trains at 100 ex/s x 6 MFLOP = 0.6 GFLOP/s = 0.375 %, infers at
        // 200 x 2 MFLOP = 0.25 %; the best PyTorch trains at 200 ex/s.
        assert!(md.contains("CPU: Test CPU."), "{md}");
        assert!(
            md.contains(
                "every side started with `MALLOC_TRIM_THRESHOLD_=1 THP_MEM_ALLOC_ENABLE=1`"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "x 2.50 GHz (measured with every thread busy; the kernel reports 2.00 GHz) = 160.0 GFLOP/s"
            ),
            "{md}"
        );
        assert!(
            md.contains("| tuto | 1.0 | 0.4 % | 0.2 % | 0.8 % | 0.5 % |"),
            "{md}"
        );
    }

    #[test]
    fn with_several_rounds_the_table_gives_their_range() {
        let netc = vec![figures(100.0, 2.0), figures(90.0, 2.0)];
        let theirs = vec![figures(80.0, 4.0), figures(100.0, 1.0)];
        let sides = vec![Side::new(CHANNELS_LAST, theirs).unwrap()];
        let md = table(2, vec![Row::new("tuto", 1, netc, sides).unwrap()]);
        // Training: rounds 1.25 and 0.90, median 1.075; latency 0.5 and 2.0.
        assert!(
            md.contains("| tuto | training, examples/s | 95.0 | 90.0 | 1.07 ✓ (0.90-1.25) |"),
            "{md}"
        );
        assert!(
            md.contains("|  | latency median, ms | 2.00 | 2.50 | 1.25 ✗ (0.50-2.00) |"),
            "{md}"
        );
        assert!(
            md.contains("|  | peak memory, MiB | 100 | 100 | 1.00 ✓ |"),
            "{md}"
        );
    }

    /// One model measured once on 2 threads of `machine`, netc alone.
    fn alone(machine: Machine) -> Bench {
        Bench {
            batch_size: 128,
            steps: 10,
            rounds: 1,
            threads: 2,
            machine,
            pytorch_missing: None,
            allocator: None,
            rows: vec![Row::new("tuto", 1, vec![figures(100.0, 2.0)], vec![]).unwrap()],
        }
    }

    #[test]
    fn a_clock_the_kernel_reported_is_named_so() {
        let bench = alone(Machine {
            clock_measured: false,
            ..machine()
        });
        let md = markdown(&bench);
        assert!(
            md.contains("x 2.50 GHz (as the kernel reports it) = 160.0 GFLOP/s"),
            "{md}"
        );
        let unreported = Machine {
            reported_ghz: None,
            ..machine()
        };
        let md = markdown(&Bench {
            machine: unreported,
            ..bench
        });
        assert!(
            md.contains("x 2.50 GHz (measured with every thread busy) = 160.0 GFLOP/s"),
            "{md}"
        );
    }

    #[test]
    fn without_pytorch_the_table_says_why() {
        let bench = Bench {
            threads: 1,
            pytorch_missing: Some("python3 cannot import torch".into()),
            ..alone(Machine {
                ghz: None,
                clock_measured: false,
                ..machine()
            })
        };
        let md = markdown(&bench);
        assert!(
            md.contains("No PyTorch column: python3 cannot import torch."),
            "{md}"
        );
        assert!(
            md.contains("every side with glibc's allocator as it comes"),
            "{md}"
        );
        assert!(
            md.contains("| tuto | training, examples/s | 100.0 | - |"),
            "{md}"
        );
        assert!(
            md.contains("the clock of this CPU (Test CPU) is unknown"),
            "{md}"
        );
    }
}
