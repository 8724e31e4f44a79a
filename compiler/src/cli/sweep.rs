//! `netc sweep FILE --vary KEY=V1,V2,...`: plans the variants
//! (`netc::sweep`), writes each as a `.net` file in the sweep's directory,
//! trains every one that `check` accepts (netc's program or the torch
//! engine, `--parallel` at once), and ends with `netc report` over the runs
//! and the sensitivity table. `sweep.json` records where each variant
//! stands, so a sweep run again continues where it stopped: finished runs
//! are kept, a run cut short is resumed from its checkpoint.

use netc::driver;
use netc::report;
use netc::sweep::manifest::{self, Entry, Manifest, Status};
use netc::sweep::{self, table, Vary};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(clap::Args)]
pub struct Args {
    /// The base .net file
    file: PathBuf,
    /// KEY=V1,V2,...: a training setting (lr=0.05,0.2), a layer argument by
    /// path (conv1.filters=32,96; fire2.e3=32,64), or a layer to remove
    /// (norm1=off); repeat for several keys
    #[arg(long, value_name = "KEY=V1,V2,...", required = true)]
    vary: Vec<Vary>,
    /// Cross the keys (every combination) instead of changing one key at a time
    #[arg(long)]
    grid: bool,
    /// Which model of the file (default: the first)
    #[arg(long)]
    model: Option<String>,
    /// Training steps of every run (default: each model's `train steps=`)
    #[arg(long)]
    steps: Option<u64>,
    /// Runs trained at once; the cores are shared out between them
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Who trains: netc's own program (`burn`) or the torch engine (`torch`)
    #[arg(long, default_value = "burn")]
    engine: String,
    /// The Python that has torch, for --engine torch [default: $NETC_PYTHON or python3]
    #[arg(long)]
    python: Option<String>,
    /// The training data (as `netc train --data`)
    #[arg(long)]
    data: Option<PathBuf>,
    /// The sweep's directory [default: sweeps/<model>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds between checkpoints of each run (what an interrupted run resumes from)
    #[arg(long, default_value_t = 60)]
    checkpoint_secs: u64,
    /// Skip measuring batch-1 latency in the report
    #[arg(long)]
    no_latency: bool,
    /// Write and check the variants, train nothing
    #[arg(long)]
    dry_run: bool,
    /// More arguments for every training run, after `--` (such as --eval-every 500)
    #[arg(last = true)]
    train_args: Vec<String>,
}

/// What a worker needs to train one variant.
struct Job<'a> {
    args: &'a Args,
    dir: &'a Path,
    threads: usize,
    /// netc's program, or the torch engine's script.
    program: PathBuf,
}

pub fn run(args: &Args) -> std::io::Result<bool> {
    match sweep_all(args) {
        Ok(ok) => Ok(ok),
        Err(e) => {
            errln!("error: {e}");
            Ok(false)
        }
    }
}

fn sweep_all(args: &Args) -> Result<bool, String> {
    if args.engine != "burn" && args.engine != "torch" {
        return Err(format!(
            "unknown engine `{}`; engines are burn and torch",
            args.engine
        ));
    }
    if args.parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    let Some(source) = super::read_source(&args.file) else {
        return Ok(false);
    };
    let file = args.file.display().to_string();
    let plan = sweep::plan(&file, &source, args.model.as_deref(), &args.vary, args.grid)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("sweeps").join(&plan.model));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let vary: Vec<String> = args
        .vary
        .iter()
        .map(|v| format!("{}={}", v.key, v.values.join(",")))
        .collect();
    let old = manifest::read(&dir)?;
    if let Some(old) = &old {
        let asked = (&old.model, &old.vary, old.grid, &old.engine, old.steps);
        let now = (&plan.model, &vary, args.grid, &args.engine, args.steps);
        if asked != now {
            return Err(format!(
                "{} holds another sweep (model {}, --vary {}, grid {}, engine {}, steps {}); \
                 give the same request to continue it, or another --out",
                dir.display(),
                old.model,
                old.vary.join(" --vary "),
                old.grid,
                old.engine,
                old.steps.map_or("the models'".into(), |s| s.to_string()),
            ));
        }
    }
    let mut m = Manifest {
        base: file.clone(),
        model: plan.model.clone(),
        vary,
        grid: args.grid,
        engine: args.engine.clone(),
        steps: args.steps,
        base_values: plan.base_values.clone(),
        variants: Vec::new(),
    };
    for v in &plan.variants {
        let name = format!("{}.net", v.name);
        let path = dir.join(&name);
        let before = old
            .as_ref()
            .and_then(|o| o.variants.iter().find(|e| e.name == v.name));
        let same_text = std::fs::read_to_string(&path).is_ok_and(|t| t == v.source);
        if before.is_some_and(|b| b.status != Status::Pending) && !same_text {
            return Err(format!(
                "{} differs from the variant this sweep makes (was the base edited?); \
                 remove {} to start again, or give another --out",
                path.display(),
                dir.display()
            ));
        }
        if !same_text {
            driver::write_atomic(&path, v.source.as_bytes())
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        let mut entry = before.cloned().unwrap_or(Entry {
            name: v.name.clone(),
            file: name.clone(),
            changes: v.changes.clone(),
            status: Status::Pending,
            error: None,
            run: None,
            resumed: 0,
        });
        if let Some(d) = &v.refused {
            entry.status = Status::Refused;
            entry.error = Some(d.one_line(&path.display().to_string(), &v.source));
        } else if entry.status == Status::Failed {
            // A failed run is tried again; its error stays until then.
            entry.status = Status::Pending;
        }
        m.variants.push(entry);
    }
    manifest::write(&dir, &m)?;
    for e in &m.variants {
        let what = sweep::describe(&e.changes);
        match e.status {
            Status::Refused => errln!(
                "{}: skipped, `netc check` refuses it:\n  {}",
                what,
                e.error.as_deref().unwrap_or("")
            ),
            Status::Done => errln!("{what}: {} (done)", dir.join(&e.file).display()),
            _ => errln!("{what}: {}", dir.join(&e.file).display()),
        }
    }
    if args.dry_run {
        outln_path(&dir.join(manifest::FILE));
        return Ok(true);
    }

    let todo: Vec<usize> = (0..m.variants.len())
        .filter(|&i| matches!(m.variants[i].status, Status::Pending | Status::Running))
        .collect();
    if !todo.is_empty() && args.data.is_none() {
        return Err(format!(
            "{} runs to train: give the data with --data DIR",
            todo.len()
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / args.parallel).max(1);
    // Programs first, one at a time (cargo would queue them anyway), so a
    // build error is known before hours of training.
    let mut queue = VecDeque::new();
    let mut programs = vec![PathBuf::new(); m.variants.len()];
    for &i in &todo {
        let e = &m.variants[i];
        let path = dir.join(&e.file);
        match program(args, &path, &e.name) {
            Ok(p) => {
                programs[i] = p;
                queue.push_back(i);
            }
            Err(err) => {
                errln!("{}: cannot build: {err}", sweep::describe(&e.changes));
                m.variants[i].status = Status::Failed;
                m.variants[i].error = Some(err);
            }
        }
    }
    manifest::write(&dir, &m)?;

    let total = queue.len();
    let state = Mutex::new((m, queue));
    std::thread::scope(|s| {
        for _ in 0..args.parallel.min(total.max(1)) {
            s.spawn(|| loop {
                let next = {
                    let mut st = state.lock().expect("no worker panics");
                    st.1.pop_front().map(|i| (i, st.0.variants[i].clone()))
                };
                let Some((i, entry)) = next else { break };
                let job = Job {
                    args,
                    dir: &dir,
                    threads,
                    program: programs[i].clone(),
                };
                let done = train(&job, entry, &state, i);
                let mut st = state.lock().expect("no worker panics");
                st.0.variants[i] = done;
                if let Err(e) = manifest::write(&dir, &st.0) {
                    errln!("error: {e}");
                }
            });
        }
    });
    let (m, _) = state.into_inner().expect("no worker panics");
    finish(args, &dir, &m)
}

fn outln_path(p: &Path) {
    let _ = outln!("{}", p.display());
}

/// netc's program for a variant (built now, or already), or the torch
/// engine's script written beside its `.net` file.
fn program(args: &Args, path: &Path, name: &str) -> Result<PathBuf, String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = path.display().to_string();
    let checked = netc::check(&source).map_err(|d| d.one_line(&file, &source))?;
    let c = checked
        .iter()
        .find(|c| c.model.name == name)
        .ok_or_else(|| format!("{file} has no model {name}"))?;
    if args.engine == "torch" {
        let script = netc::backend::pytorch::train_py(&c.model, &source, &file)
            .map_err(|d| d.one_line(&file, &source))?;
        let out = path.with_extension("train.py");
        driver::write_atomic(&out, script.as_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
        return Ok(out);
    }
    let build = driver::Build {
        out: driver::default_out(name),
        target: driver::target_dir(),
        cuda: false,
    };
    driver::build(&file, &source, c, &build)
}

/// Trains one variant to its end: a new run, or the resumed one it has.
fn train(job: &Job, mut e: Entry, state: &Mutex<(Manifest, VecDeque<usize>)>, i: usize) -> Entry {
    let args = job.args;
    let what = sweep::describe(&e.changes);
    let runs = job.dir.join("runs");
    let run = runs.join(&e.name).join("1");
    let mut cmd = if args.engine == "torch" {
        let python = args
            .python
            .clone()
            .or_else(|| std::env::var("NETC_PYTHON").ok())
            .unwrap_or_else(|| "python3".into());
        let mut c = Command::new(python);
        c.arg(&job.program)
            .arg("--threads")
            .arg(job.threads.to_string());
        netc::allocator::apply(&mut c);
        c
    } else {
        let mut c = Command::new(&job.program);
        c.arg("train");
        c
    };
    cmd.env("RAYON_NUM_THREADS", job.threads.to_string())
        .env("OMP_NUM_THREADS", job.threads.to_string());
    let resume = run.join("checkpoint.safetensors").is_file();
    if resume {
        cmd.arg("--resume").arg(&run);
        e.resumed += 1;
    } else {
        // A run that saved nothing yet (stopped in its first seconds) starts over.
        if run.exists() {
            if let Err(err) = std::fs::remove_dir_all(&run) {
                e.status = Status::Failed;
                e.error = Some(format!("{}: cannot remove: {err}", run.display()));
                return e;
            }
        }
        cmd.arg("--runs").arg(&runs);
    }
    if let Some(d) = &args.data {
        cmd.arg("--data").arg(d);
    }
    if let Some(s) = args.steps {
        cmd.arg("--steps").arg(s.to_string());
    }
    cmd.arg("--checkpoint-secs")
        .arg(args.checkpoint_secs.to_string())
        .arg("--quiet")
        .args(&args.train_args);
    e.status = Status::Running;
    e.run = Some(format!("runs/{}/1", e.name));
    {
        let mut st = state.lock().expect("no worker panics");
        st.0.variants[i] = e.clone();
        if let Err(err) = manifest::write(job.dir, &st.0) {
            errln!("error: {err}");
        }
    }
    let from = if resume {
        format!(", resumed from step {}", last_step(&run).unwrap_or(0))
    } else {
        String::new()
    };
    errln!("{what}: training {}{from}", run.display());
    // Each run's messages in a file of their own: runs side by side would
    // interleave them on the terminal.
    let logs = job.dir.join("logs");
    let log = logs.join(format!("{}.txt", e.name));
    let stderr = std::fs::create_dir_all(&logs)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
        })
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let out = cmd.stdout(Stdio::piped()).stderr(stderr).output();
    match out {
        Ok(o) if o.status.success() => {
            let outcome: serde_json::Value =
                serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
            let acc = outcome["test_accuracy"]
                .as_f64()
                .map_or(String::new(), |a| format!(": {:.2} %", 100.0 * a));
            errln!("{what}: done{acc}");
            e.status = Status::Done;
            e.error = None;
        }
        Ok(o) => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            let msg = format!(
                "training failed ({}); the end of {}:\n  {}",
                o.status,
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
            );
            errln!("{what}: {msg}");
            e.status = Status::Failed;
            e.error = Some(msg);
        }
        Err(err) => {
            let msg = format!("cannot run {}: {err}", job.program.display());
            errln!("{what}: {msg}");
            e.status = Status::Failed;
            e.error = Some(msg);
        }
    }
    e
}

/// The last step a run's log reached.
fn last_step(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join("log.jsonl")).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
}

/// `netc report` over the sweep's runs, the sensitivity table and a plot per key.
fn finish(args: &Args, dir: &Path, m: &Manifest) -> Result<bool, String> {
    let mut warnings = Vec::new();
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    // Measured on netc's program whichever engine trained: a torch run is
    // an ordinary netc run.
    let latency_off = args.no_latency.then_some("--no-latency was given");
    for e in &m.variants {
        let mut row = table::Row {
            name: e.name.clone(),
            changes: e.changes.clone(),
            run: None,
            note: None,
        };
        match (&e.status, &e.run) {
            (Status::Done, Some(rel)) => {
                let run_dir = dir.join(rel);
                let mut r = report::read_run(&run_dir, &mut warnings);
                if latency_off.is_none() {
                    match super::report::latency(&run_dir, &r.model) {
                        Ok(ms) => r.latency_ms = Some(ms),
                        Err(err) => warnings.push(format!(
                            "{}: latency not measured: {err}",
                            run_dir.display()
                        )),
                    }
                }
                runs.push(r.clone());
                row.run = Some(r);
            }
            (Status::Refused, _) => row.note = Some("refused by check".into()),
            (Status::Failed, _) => row.note = Some("training failed".into()),
            _ => row.note = Some("not trained".into()),
        }
        rows.push(row);
    }
    for w in &warnings {
        errln!("warning: {w}");
    }
    if !runs.is_empty() {
        let written = report::write(&runs, &warnings, &dir.join("report"))?;
        for f in written {
            outln_path(&f);
        }
    }
    let md = table::markdown(&rows, &m.base_values, latency_off);
    let put = |name: String, bytes: &[u8]| -> Result<(), String> {
        let path = dir.join(name);
        report::write_file(&path, bytes)?;
        outln_path(&path);
        Ok(())
    };
    put("sensitivity.md".into(), md.as_bytes())?;
    put(
        "sensitivity.csv".into(),
        table::csv(&rows, &m.base_values).as_bytes(),
    )?;
    for base in &m.base_values {
        let stem: String = base
            .key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        match table::plot_key(&base.key, &base.value, &rows) {
            Ok((svg, png)) => {
                put(format!("sensitivity_{stem}.svg"), svg.as_bytes())?;
                put(format!("sensitivity_{stem}.png"), &png)?;
            }
            Err(err) => errln!("warning: plot of {} not drawn: {err}", base.key),
        }
    }
    let failed: Vec<&Entry> = m
        .variants
        .iter()
        .filter(|e| e.status == Status::Failed)
        .collect();
    for e in &failed {
        errln!(
            "error: {} failed: {}",
            sweep::describe(&e.changes),
            e.error.as_deref().unwrap_or("")
        );
    }
    Ok(failed.is_empty())
}
