//! `netc prune FILE --run RUN --sparsity 50,75,90 --steps-per-round N`:
//! iterative magnitude pruning (prune, fine-tune, repeat), one new run per
//! level, each started from the previous level's weights with masks the
//! program keeps applied; or `--sensitivity 50,75,90`: each layer alone
//! pruned at each level, evaluated without fine-tuning.

use netc::prune::{self, filters, Scope};
use netc::weights::Weights;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["sparsity", "sensitivity", "filters"])))]
pub struct Args {
    /// The .net file
    file: PathBuf,
    /// Which model of the file (default: the first)
    #[arg(long)]
    model: Option<String>,
    /// The trained run to start from (runs/<model>/<n>/)
    #[arg(long, value_name = "RUN")]
    run: PathBuf,
    /// Percentages of kernel weights to zero, rising: one fine-tuned run per level
    #[arg(long, value_name = "LEVELS", requires = "steps_per_round")]
    sparsity: Option<String>,
    /// Fine-tuning steps after each pruning (0: prune only)
    #[arg(long, value_name = "N")]
    steps_per_round: Option<u64>,
    /// One magnitude threshold over all kernels (global) or the same fraction of each (layer)
    #[arg(long, value_enum, default_value_t = Scope::Global)]
    scope: Scope,
    /// Instead of pruning: the test accuracy with each layer alone pruned at
    /// each level, without fine-tuning, written to OUT/sensitivity.md and .csv
    #[arg(long, value_name = "LEVELS", conflicts_with = "sparsity")]
    sensitivity: Option<String>,
    /// Instead: remove whole convolution filters by L1 norm (conv1=25%,conv2=50%,
    /// or 30% of every convolution that allows it) and write a smaller .net
    /// and its weights as a new run
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["sparsity", "sensitivity"])]
    filters: Option<String>,
    /// The filter-pruned model's name [default: <model>_pruned]
    #[arg(long)]
    name: Option<String>,
    /// Where --filters writes the smaller .net [default: <name>.net]
    #[arg(long, value_name = "FILE")]
    net: Option<PathBuf>,
    /// Where --sensitivity writes its tables
    #[arg(long, value_name = "OUT", default_value = "report")]
    out: PathBuf,
    /// The data (default: the run's)
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Where the new runs go
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Fine-tuning learning rate (default: the run's)
    #[arg(long)]
    lr: Option<f64>,
    /// Start from the raw weights, not their average
    #[arg(long)]
    raw: bool,
    /// More flags for the program's `train`, after `--` (--eval-every 0 --quiet ...)
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(args: &Args) -> std::io::Result<bool> {
    let Some((source, c)) = super::build::checked(&args.file, args.model.as_deref()) else {
        return Ok(false);
    };
    match prune_or_measure(args, &source, &c) {
        Ok(()) => Ok(true),
        Err(e) => {
            errln!("error: {e}");
            Ok(false)
        }
    }
}

/// A fine-tuned level: its run and accuracies.
struct Round {
    level: f64,
    run: PathBuf,
    kept: usize,
    pruned_accuracy: f64,
    tuned_accuracy: Option<f64>,
}

fn prune_or_measure(args: &Args, source: &str, c: &netc::Checked) -> Result<(), String> {
    let request = args.filters.as_deref().map(filters::request).transpose()?;
    let levels = match (&args.sparsity, &args.sensitivity) {
        (Some(s), _) | (None, Some(s)) => prune::levels(s)?,
        (None, None) => Vec::new(),
    };
    let settings = netc::export::run_of(&args.run, &c.model.name)?;
    let checkpoint = args.run.join("checkpoint.safetensors");
    if !checkpoint.is_file() {
        return Err(format!(
            "{}: the run has no checkpoint.safetensors yet; train it first (or wait for its first checkpoint)",
            args.run.display()
        ));
    }
    let weights = Weights::read(&checkpoint, args.raw)?;
    weights.fit(&c.layout, &checkpoint)?;
    if let Some(request) = request {
        return smaller(args, source, c, &weights, &settings, &request);
    }
    let data = match (&args.data, settings["data"].as_str()) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => {
            return Err(format!(
                "{}: names no data; give --data DIR",
                args.run.display()
            ))
        }
    };
    let kernels: Vec<String> = netc::proc::sizes::tensors(&c.layout)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| prune::prunable(n))
        .collect();
    let binary = super::build::build_one(
        &args.file,
        source,
        c,
        &super::build::BuildArgs::plain(&args.file),
    )?;
    let program = Program { binary, data };
    let base = args.runs.join(&c.model.name);
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("{}: cannot create: {e}", base.display()))?;
    let scratch =
        |what: &str| base.join(format!(".prune-{}-{what}.safetensors", std::process::id()));
    let total: usize = kernels.iter().map(|n| weights.get(n).values.len()).sum();

    if args.sensitivity.is_some() {
        return sensitivity(
            args,
            &program,
            &weights,
            &kernels,
            &levels,
            &scratch("layer"),
            c,
        );
    }
    let dense = program.evaluate(&checkpoint)?;
    let mut current = weights.tensors.clone();
    let mut rounds = Vec::new();
    for &level in &levels {
        let masks = prune::magnitude(&current, &kernels, level, args.scope);
        let init = scratch(&format!("{level}"));
        let meta = [
            ("pruned_from".to_string(), checkpoint.display().to_string()),
            ("sparsity".to_string(), level.to_string()),
        ]
        .into();
        prune::write(&init, &prune::masked(&current, &masks), &masks, &meta)?;
        let pruned_accuracy = program.evaluate(&init)?;
        let outcome = program.fine_tune(args, &settings, &init, level);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                return Err(format!(
                    "{e}\nthe pruned weights it started from stay in {}",
                    init.display()
                ))
            }
        };
        // The run holds its weights and masks now.
        let _ = std::fs::remove_file(&init);
        let run = PathBuf::from(outcome["run"].as_str().unwrap_or_default());
        let ck = run.join("checkpoint.safetensors");
        current = Weights::read(&ck, args.raw)?.tensors;
        let kept = kernels
            .iter()
            .map(|n| current[n].values.len() - prune::zeros(&current[n]))
            .sum();
        errln!(
            "{level} %: {} ({} of {total} kernel weights kept), test accuracy {:.2} % pruned, {} fine-tuned",
            run.display(),
            kept,
            100.0 * pruned_accuracy,
            outcome["test_accuracy"].as_f64().map_or("-".into(), |a| format!("{:.2} %", 100.0 * a)),
        );
        rounds.push(Round {
            level,
            run,
            kept,
            pruned_accuracy,
            tuned_accuracy: outcome["test_accuracy"].as_f64(),
        });
    }
    outln!(
        "{:>8}  {:28}  {:>22}  {:>9}  {:>10}",
        "sparsity",
        "run",
        "kernel weights kept",
        "pruned",
        "fine-tuned"
    )
    .map_err(|e| e.to_string())?;
    let pct = |a: f64| format!("{:.2} %", 100.0 * a);
    outln!(
        "{:>8}  {:28}  {:>22}  {:>9}  {:>10}",
        "0 %",
        args.run.display().to_string(),
        total,
        pct(dense),
        "-"
    )
    .map_err(|e| e.to_string())?;
    for r in &rounds {
        outln!(
            "{:>8}  {:28}  {:>22}  {:>9}  {:>10}",
            format!("{} %", r.level),
            r.run.display().to_string(),
            r.kept,
            pct(r.pruned_accuracy),
            r.tuned_accuracy.map_or("-".into(), pct)
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The model's program and the data it evaluates on.
struct Program {
    binary: PathBuf,
    data: PathBuf,
}

impl Program {
    /// Test accuracy of a weight file (its average where it has one).
    fn evaluate(&self, weights: &Path) -> Result<f64, String> {
        let out = self.output(
            Command::new(&self.binary)
                .arg("eval")
                .arg("--data")
                .arg(&self.data)
                .arg("--weights")
                .arg(weights)
                .arg("--json"),
        )?;
        out["accuracy"]
            .as_f64()
            .ok_or_else(|| format!("{}: eval printed no accuracy", self.binary.display()))
    }

    /// Trains a new run from `init` with the source run's settings; its
    /// outcome (run, test_accuracy).
    fn fine_tune(
        &self,
        args: &Args,
        settings: &serde_json::Value,
        init: &Path,
        level: f64,
    ) -> Result<serde_json::Value, String> {
        let s = &settings["settings"];
        let on = |b: bool| if b { "on" } else { "off" };
        let mut flags: Vec<(&str, String)> = vec![
            ("--data", self.data.display().to_string()),
            ("--init-from", init.display().to_string()),
            ("--steps", args.steps_per_round.unwrap_or(0).to_string()),
            ("--runs", args.runs.display().to_string()),
        ];
        if let Some(lr) = args.lr.or(s["learning_rate"].as_f64()) {
            flags.push(("--lr", lr.to_string()));
        }
        if let Some(b) = s["batch_size"].as_u64() {
            flags.push(("--batch-size", b.to_string()));
        }
        if let Some(seed) = settings["seed"].as_u64() {
            flags.push(("--seed", seed.to_string()));
        }
        for (flag, key) in [("--augment", "augment"), ("--average", "average")] {
            if let Some(b) = s[key].as_bool() {
                flags.push((flag, on(b).into()));
            }
        }
        if let Some(d) = s["decay"].as_f64() {
            flags.push(("--decay", on(d > 0.0).into()));
        }
        let mut cmd = Command::new(&self.binary);
        cmd.arg("train");
        for (flag, value) in flags {
            // What the user gave after `--` wins.
            let given = args
                .args
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
            if !given || flag == "--init-from" {
                cmd.arg(flag).arg(value);
            }
        }
        cmd.args(&args.args);
        errln!("pruned to {level} %: fine-tuning a new run");
        self.output(&mut cmd)
    }

    /// Runs `cmd`, its messages passed on, and reads the JSON it prints last.
    fn output(&self, cmd: &mut Command) -> Result<serde_json::Value, String> {
        let what = self.binary.display();
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{what} failed (its message is above)"));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .or_else(|_| serde_json::from_str(text.lines().last().unwrap_or_default()))
            .map_err(|e| format!("{what}: unexpected output ({e}): {text}"))
    }
}

/// The sensitivity table: each kernel alone pruned at each level.
fn sensitivity(
    args: &Args,
    program: &Program,
    weights: &Weights,
    kernels: &[String],
    levels: &[f64],
    scratch: &Path,
    c: &netc::Checked,
) -> Result<(), String> {
    let dense = program.evaluate(&args.run.join("checkpoint.safetensors"))?;
    let mut rows: Vec<(String, usize, Vec<f64>)> = Vec::new();
    for name in kernels {
        let mut accs = Vec::new();
        for &level in levels {
            let masks = prune::magnitude(
                &weights.tensors,
                std::slice::from_ref(name),
                level,
                Scope::Layer,
            );
            let pruned = prune::masked(&weights.tensors, &masks);
            // Only the chosen weights: plain names, no average, no masks.
            prune::write(scratch, &pruned, &BTreeMap::new(), &BTreeMap::new())?;
            let acc = program.evaluate(scratch);
            let _ = std::fs::remove_file(scratch);
            accs.push(acc?);
            errln!("{name} at {level} %: {:.2} %", 100.0 * accs[accs.len() - 1]);
        }
        rows.push((name.clone(), weights.get(name).values.len(), accs));
    }
    let layer = |n: &str| n.strip_suffix(".weight").unwrap_or(n).to_string();
    let mut csv = String::from("layer,weights,sparsity,accuracy\n");
    let mut md = format!(
        "# Pruning sensitivity of {} ({})\n\nTest accuracy with one layer's kernel pruned by magnitude, \
         no fine-tuning; the unpruned model: {:.2} %.\n\n| layer | weights |",
        c.model.name,
        args.run.display(),
        100.0 * dense
    );
    for l in levels {
        md.push_str(&format!(" {l} % |"));
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|".repeat(levels.len()));
    md.push('\n');
    csv.push_str(&format!("(none),0,0,{dense}\n"));
    for (name, n, accs) in &rows {
        md.push_str(&format!("| {} | {n} |", layer(name)));
        for (l, a) in levels.iter().zip(accs) {
            md.push_str(&format!(" {:.2} |", 100.0 * a));
            csv.push_str(&format!("{},{n},{l},{a}\n", layer(name)));
        }
        md.push('\n');
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    for (file, text) in [("sensitivity.md", &md), ("sensitivity.csv", &csv)] {
        let path = args.out.join(file);
        netc::driver::write_atomic(&path, text.as_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    outln!("{md}").map_err(|e| e.to_string())?;
    Ok(())
}

/// `--filters`: the smaller model's `.net` and a new run holding its weights.
fn smaller(
    args: &Args,
    source: &str,
    c: &netc::Checked,
    weights: &Weights,
    settings: &serde_json::Value,
    request: &filters::Request,
) -> Result<(), String> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_pruned", c.model.name));
    let plan = filters::plan(source, &c.model, &weights.tensors, request, &name)?;
    let net = args
        .net
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.net")));
    let file = net.display().to_string();
    // The new source must pass every check before anything is written.
    let small = netc::check(&plan.source)
        .map_err(|d| d.render(&file, &plan.source, super::color()))?
        .into_iter()
        .find(|m| m.model.name == name)
        .ok_or_else(|| format!("{file}: the rewritten source lost model {name}"))?;
    let tensors: std::collections::HashMap<String, netc::weights::Tensor> = plan
        .weights
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Weights {
        tensors,
        averaged: false,
        metadata: BTreeMap::new(),
    }
    .fit(&small.layout, &net)?;
    let base = args.runs.join(&name);
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("{}: cannot create: {e}", base.display()))?;
    let dir = new_run(&base)?;
    netc::driver::write_atomic(&net, plan.source.as_bytes())
        .map_err(|e| format!("{}: cannot write: {e}", net.display()))?;
    let write = |f: &str, bytes: &[u8]| {
        let path = dir.join(f);
        netc::driver::write_atomic(&path, bytes)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    };
    write("model.net", plan.source.as_bytes())?;
    let mut run = settings.clone();
    run["model"] = name.clone().into();
    run["file"] = file.clone().into();
    run["settings"]["steps"] = 0.into();
    run["init_from"] = serde_json::Value::Null;
    write(
        "settings.json",
        serde_json::to_string_pretty(&run)
            .expect("JSON serializes")
            .as_bytes(),
    )?;
    // Raw and averaged alike, so a resumed run (fine-tuning) finds both.
    let mut all = plan.weights.clone();
    if settings["settings"]["average"].as_bool().unwrap_or(true) {
        for (k, v) in &plan.weights {
            all.insert(format!("ema/{k}"), v.clone());
        }
    }
    let meta = [
        ("step", "0".to_string()),
        ("model", name.clone()),
        ("seed", settings["seed"].as_u64().unwrap_or(1).to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    prune::write(
        &dir.join("checkpoint.safetensors"),
        &all,
        &BTreeMap::new(),
        &meta,
    )?;
    let e = |err: std::io::Error| err.to_string();
    for (layer, before, after) in &plan.layers {
        outln!("{layer}: {after} of {before} filters kept").map_err(e)?;
    }
    let (a, b) = (&c.summary, &small.summary);
    outln!(
        "{file}: model {name}, {} parameters ({} before), {} operations ({} before); weights in {}",
        b.total.params,
        a.total.params,
        b.total.ops,
        a.total.ops,
        dir.display()
    )
    .map_err(e)?;
    Ok(())
}

/// A new numbered run directory under `base`.
fn new_run(base: &Path) -> Result<PathBuf, String> {
    let taken = std::fs::read_dir(base)
        .map_err(|e| format!("{}: cannot list: {e}", base.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    for n in taken + 1.. {
        let dir = base.join(n.to_string());
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: cannot create: {e}", dir.display())),
        }
    }
    unreachable!("some run number is free")
}
