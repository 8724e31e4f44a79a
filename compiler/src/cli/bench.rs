//! `netc bench`: builds each model, runs its program's `bench`, runs the same
//! measurements on the emitted PyTorch module, and writes the comparison.

use super::build::{build_one, BuildArgs};
use netc::bench::{markdown, Bench, Figures, Row, Side};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// .net files; every model in them is measured
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Timed training steps and inference batches per model
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Timed batch-1 inferences per model
    #[arg(long, default_value_t = 50)]
    latency_runs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Threads for both sides: burn's pool and torch.set_num_threads (default: every core)
    #[arg(long)]
    threads: Option<usize>,
    /// Where bench.md and bench.json go
    #[arg(long, default_value = "target/netc/bench")]
    out: PathBuf,
    /// The Python that has torch
    #[arg(long, default_value = "python3")]
    python: String,
    /// Measure netc only
    #[arg(long)]
    no_pytorch: bool,
    /// Measure each side this many times, alternating, and keep the median of
    /// each figure: a shared machine's noise then falls on both sides alike
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also measure the hand-written models under torch.compile (needs a C++
    /// compiler; compiling takes minutes)
    #[arg(long)]
    compile: bool,
    /// Start every side with glibc's allocator as it comes, without the
    /// settings that keep a step's freed memory for the next (as `netc bench`
    /// measured before 2026-11-29; see docs/performance.md)
    #[arg(long)]
    plain_allocator: bool,
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Runs a command that prints one JSON object of figures.
fn figures(cmd: &mut Command, what: &str) -> Result<Figures, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| format!("{what}: unreadable output ({e}): {text}"))
}

/// Why PyTorch cannot be measured here, if it cannot.
fn pytorch_missing(args: &Args) -> Option<String> {
    if args.no_pytorch {
        return Some("--no-pytorch".into());
    }
    let ok = Command::new(&args.python)
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        format!(
            "{} cannot import torch and numpy (pip install torch numpy)",
            args.python
        )
    })
}

/// The measurement settings both sides' `bench` take.
fn plan<'a>(cmd: &'a mut Command, args: &Args) -> &'a mut Command {
    cmd.args(["--batch-size", &args.batch_size.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--latency-runs", &args.latency_runs.to_string()])
}

/// The allocator settings every side starts with (the same for all):
/// `netc::allocator`'s, where the environment does not set them already;
/// with --plain-allocator none, the environment's left out too.
fn memory(cmd: &mut Command, args: &Args) {
    if args.plain_allocator {
        netc::allocator::remove(cmd);
    } else {
        netc::allocator::apply(cmd);
    }
}

/// Writes the model's PyTorch module, the hand-written models and the bench
/// script into the model's folder; returns the command of each PyTorch side:
/// the emitted module (eager and channels-last), and the hand-written model (eager, channels-last and,
/// with --compile, compiled) when `handwritten.py` has one with this name and
/// the same number of parameters.
fn pytorch_sides(
    args: &Args,
    threads: usize,
    c: &netc::Checked,
    file: &Path,
    source: &str,
) -> Result<Vec<(&'static str, Command)>, String> {
    use netc::bench::{CHANNELS_LAST, COMPILED, EMITTED, EMITTED_CHANNELS_LAST, HANDWRITTEN};
    let dir = args.out.join(&c.model.name);
    let path = file.display().to_string();
    let module = netc::backend::pytorch::module_py(&c.model, source, &path)
        .map_err(|d| d.one_line(&path, source))?;
    let put = |name: &str, text: &str| netc::report::write_file(&dir.join(name), text.as_bytes());
    put("model.py", &module)?;
    put("bench.py", include_str!("../../templates/pytorch/bench.py"))?;
    put(
        "handwritten.py",
        include_str!("../../templates/pytorch/handwritten.py"),
    )?;
    let bench = |extra: &[&str]| {
        let mut cmd = Command::new(&args.python);
        cmd.arg(dir.join("bench.py"))
            .args(extra)
            .args(["--threads", &threads.to_string()]);
        plan(&mut cmd, args);
        memory(&mut cmd, args);
        cmd
    };
    let name = c.model.name.as_str();
    let module = dir.join("model.py").display().to_string();
    let mut sides = vec![
        (EMITTED, bench(&[&module])),
        (EMITTED_CHANNELS_LAST, bench(&[&module, "--channels-last"])),
    ];
    let count = Command::new(&args.python)
        .arg(dir.join("bench.py"))
        .args(["--handwritten", name, "--count"])
        .output()
        .map_err(|e| format!("{}: cannot start: {e}", args.python))?;
    let count = String::from_utf8_lossy(&count.stdout).trim().to_string();
    let params = c.summary.total.params;
    match count.parse::<u64>() {
        Ok(n) if n == params => {
            sides.push((HANDWRITTEN, bench(&["--handwritten", name])));
            sides.push((
                CHANNELS_LAST,
                bench(&["--handwritten", name, "--channels-last"]),
            ));
            if args.compile {
                sides.push((COMPILED, bench(&["--handwritten", name, "--compile"])));
            }
        }
        Ok(n) => errln!(
            "note: {name}: the hand-written {name} has {n} parameters, this one {params}: \
             not the seed's model, so only the emitted module is measured"
        ),
        Err(_) => {
            errln!("note: {name}: no hand-written version; only the emitted module is measured")
        }
    }
    Ok(sides)
}

pub fn run(args: &Args) -> std::io::Result<bool> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let missing = pytorch_missing(args);
    if let Some(why) = &missing {
        errln!("note: PyTorch not measured: {why}");
    }
    let mut rows = Vec::new();
    let mut ok = true;
    for file in &args.files {
        let Some((source, models)) = super::build::checked_all(file) else {
            ok = false;
            continue;
        };
        for c in &models {
            let name = &c.model.name;
            errln!("{name}: building");
            let build = BuildArgs::plain(file);
            let binary = match build_one(file, &source, c, &build) {
                Ok(b) => b,
                Err(e) => {
                    errln!("error: {e}");
                    ok = false;
                    continue;
                }
            };
            let mut netc_bench = Command::new(&binary);
            netc_bench
                .arg("bench")
                .env("RAYON_NUM_THREADS", threads.to_string());
            plan(&mut netc_bench, args);
            memory(&mut netc_bench, args);
            let mut sides = match missing {
                Some(_) => Vec::new(),
                None => pytorch_sides(args, threads, c, file, &source).unwrap_or_else(|e| {
                    errln!("error: {e}");
                    ok = false;
                    Vec::new()
                }),
            };
            let mut ours = Vec::new();
            let mut theirs: Vec<Vec<Figures>> = vec![Vec::new(); sides.len()];
            // A PyTorch side that fails is left out from then on (and of the
            // table), netc and the other sides measured on: with sides
            // before netc in a round, stopping the rounds there would lose
            // netc's figures.
            let mut failed = vec![false; sides.len()];
            let names: Vec<&str> = sides.iter().map(|(name, _)| *name).collect();
            let rounds = args.rounds.max(1);
            let on = plural(threads, "thread");
            'rounds: for round in 1..=rounds {
                for turn in netc::bench::turns(&names, round) {
                    let Some(i) = turn else {
                        errln!("{name}: round {round}/{rounds}: netc ({on})");
                        let what = format!("{} bench", binary.display());
                        match figures(&mut netc_bench, &what) {
                            Ok(f) => ours.push(f),
                            Err(e) => {
                                errln!("error: {e}");
                                ok = false;
                                break 'rounds;
                            }
                        }
                        continue;
                    };
                    if failed[i] {
                        continue;
                    }
                    let (side, cmd) = &mut sides[i];
                    errln!("{name}: round {round}/{rounds}: PyTorch, {side} ({on})");
                    match figures(cmd, &format!("PyTorch bench of {name} ({side})")) {
                        Ok(f) => theirs[i].push(f),
                        Err(e) => {
                            errln!("error: {e}\nnote: {name}: {side} is left out");
                            ok = false;
                            failed[i] = true;
                            theirs[i].clear();
                        }
                    }
                }
            }
            // A round cut short by netc's error is left out, so that every
            // side's runs pair with netc's round by round (a side that never
            // ran, or failed, is left out of the table).
            let whole = theirs
                .iter()
                .map(Vec::len)
                .filter(|&n| n > 0)
                .fold(ours.len(), usize::min);
            ours.truncate(whole);
            let theirs = sides
                .iter()
                .zip(theirs)
                .filter_map(|((side, _), mut got)| {
                    got.truncate(whole);
                    Side::new(side, got)
                })
                .collect();
            let Some(row) = Row::new(name, c.summary.total.macs, ours, theirs) else {
                continue;
            };
            rows.push(row);
        }
    }
    if rows.is_empty() {
        // Nothing measured: keep the results of the last run that measured something.
        errln!("error: no model was measured");
        return Ok(false);
    }
    let bench = Bench {
        batch_size: args.batch_size,
        steps: args.steps,
        rounds: args.rounds.max(1),
        threads,
        machine: netc::machine::Machine::detect(threads),
        pytorch_missing: missing,
        allocator: (!args.plain_allocator)
            .then(|| netc::allocator::shown(&netc::allocator::effective())),
        rows,
    };
    let md = markdown(&bench);
    out!("{md}")?;
    let json = serde_json::to_string_pretty(&bench).expect("bench results serialize");
    for (name, text) in [("bench.md", md), ("bench.json", json + "\n")] {
        let path = args.out.join(name);
        match netc::report::write_file(&path, text.as_bytes()) {
            Ok(()) => errln!("wrote {}", path.display()),
            Err(e) => {
                errln!("error: {e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_or_garbled_bench_is_an_error_that_says_so() {
        let err = figures(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "x bench",
        )
        .unwrap_err();
        assert!(err.contains("x bench failed: boom"), "{err}");
        let err = figures(Command::new("sh").args(["-c", "echo not json"]), "x bench").unwrap_err();
        assert!(err.contains("x bench: unreadable output"), "{err}");
        let err = figures(&mut Command::new("/nonexistent/bench"), "x bench").unwrap_err();
        assert!(err.contains("x bench: cannot start"), "{err}");
    }

    #[test]
    fn a_bench_that_prints_figures_is_read() {
        let json = r#"{"threads":2,"train_examples_per_second":1.5,"infer_examples_per_second":3,"latency_ms_median":0.5,"latency_ms_p95":0.7,"peak_memory_bytes":null,"torch":"2"}"#;
        let f = figures(Command::new("echo").arg(json), "x bench").unwrap();
        assert_eq!(f.threads, 2);
        assert_eq!(f.train_examples_per_second, 1.5);
        assert_eq!(f.peak_memory_bytes, None);
    }
}
