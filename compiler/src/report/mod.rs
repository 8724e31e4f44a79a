//! `netc report`: the seed's comparison of models, from real runs. Reads each
//! run's settings, log, checkpoint and `.net` source; writes a Markdown table,
//! a CSV, plots (accuracy against steps and against operations) and one
//! `report.md` that puts them together. A missing or damaged file costs its
//! run a column or two, with a message, never the whole report.

pub(crate) mod plot;
mod table;

use std::path::{Path, PathBuf};

/// Steps at which the seed compared accuracies.
pub const MILESTONES: [u64; 4] = [10_000, 50_000, 100_000, 300_000];

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Run {
    /// `tuto/3`
    pub name: String,
    pub model: String,
    /// How it was trained, from `settings.json` (`recipe`).
    pub recipe: Option<String>,
    pub steps: u64,
    /// (step, test accuracy) of every evaluation, in order.
    pub evaluations: Vec<(u64, f64)>,
    pub params: Option<u64>,
    pub ops: Option<u64>,
    pub macs: Option<u64>,
    pub checkpoint_bytes: Option<u64>,
    /// Non-zero parameters of the evaluated weights, and their bytes stored
    /// sparsely (`prune::sparse`).
    pub nonzero: Option<u64>,
    pub sparse_bytes: Option<u64>,
    pub examples_per_second: Option<f64>,
    pub latency_ms: Option<f64>,
}

impl Run {
    pub fn last_accuracy(&self) -> Option<f64> {
        self.evaluations.last().map(|e| e.1)
    }

    /// Accuracy at `step`: the last evaluation at or before it, if the run got there.
    pub fn accuracy_at(&self, step: u64) -> Option<f64> {
        if self.steps < step {
            return None;
        }
        self.evaluations
            .iter()
            .rev()
            .find(|e| e.0 <= step)
            .map(|e| e.1)
    }
}

/// Every run directory under `paths`: those holding a `log.jsonl` or `settings.json`.
pub fn find_runs(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        if dir.join("log.jsonl").exists() || dir.join("settings.json").exists() {
            out.push(dir.to_path_buf());
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            walk(&d, out, depth - 1);
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, 3);
    }
    out
}

/// Reads one run; what cannot be read is left empty and explained in `warnings`.
pub fn read_run(dir: &Path, warnings: &mut Vec<String>) -> Run {
    let name = dir
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("/");
    let mut run = Run {
        name: name.clone(),
        model: name.split('/').next().unwrap_or("").to_string(),
        ..Run::default()
    };
    match std::fs::read_to_string(dir.join("settings.json")) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => {
                if let Some(m) = v["model"].as_str() {
                    run.model = m.to_string();
                }
                run.recipe = recipe(&v["settings"]);
            }
            Err(e) => warnings.push(format!(
                "{}: damaged, {e}",
                dir.join("settings.json").display()
            )),
        },
        Err(e) => warnings.push(format!("{}: {e}", dir.join("settings.json").display())),
    }
    match std::fs::read_to_string(dir.join("log.jsonl")) {
        Ok(text) => {
            let mut rates = Vec::new();
            let mut bad = 0;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    bad += 1;
                    continue;
                };
                let Some(step) = v["step"].as_u64() else {
                    bad += 1;
                    continue;
                };
                run.steps = run.steps.max(step);
                if let Some(acc) = v["test_accuracy"].as_f64() {
                    run.evaluations.push((step, acc));
                }
                if let Some(r) = v["examples_per_second"].as_f64() {
                    rates.push(r);
                }
            }
            if bad > 0 {
                warnings.push(format!(
                    "{}: {bad} damaged lines skipped",
                    dir.join("log.jsonl").display()
                ));
            }
            rates.sort_by(f64::total_cmp);
            run.examples_per_second = rates.get(rates.len() / 2).copied();
        }
        Err(e) => warnings.push(format!("{}: {e}", dir.join("log.jsonl").display())),
    }
    match std::fs::read_to_string(dir.join("model.net")) {
        Ok(source) => match crate::check(&source) {
            Ok(models) => {
                if let Some(c) = models
                    .iter()
                    .find(|c| c.model.name == run.model)
                    .or(models.first())
                {
                    // Not in settings.json: how weights start is the model's.
                    if c.model.settings.init != crate::ir::Init::Xavier {
                        let init = format!("init {}", c.model.settings.init.name());
                        run.recipe = Some(match run.recipe.take() {
                            Some(r) => format!("{r}; {init}"),
                            None => init,
                        });
                    }
                    run.params = Some(c.summary.total.params);
                    run.ops = Some(c.summary.total.ops);
                    run.macs = Some(c.summary.total.macs);
                    let ck = dir.join("checkpoint.safetensors");
                    if let Ok(w) = crate::weights::Weights::read(&ck, false) {
                        if w.fit(&c.layout, &ck).is_ok() {
                            let d = crate::prune::sparse::density(&w, &c.layout);
                            run.nonzero = Some(d.nonzero);
                            run.sparse_bytes = Some(d.sparse_bytes);
                        }
                    }
                }
            }
            Err(d) => {
                warnings.push(d.one_line(&dir.join("model.net").display().to_string(), &source))
            }
        },
        Err(e) => warnings.push(format!("{}: {e}", dir.join("model.net").display())),
    }
    match std::fs::metadata(dir.join("checkpoint.safetensors")) {
        Ok(m) => run.checkpoint_bytes = Some(m.len()),
        Err(e) => warnings.push(format!(
            "{}: {e}",
            dir.join("checkpoint.safetensors").display()
        )),
    }
    run
}

/// A run's training recipe in a few words: `sgd lr 0.1; batch 128; augment;
/// average; decay 500`, with the optimizer's, schedule's and smoothing's
/// settings where they are not the seed's. A setting missing from an older
/// `settings.json` is the seed's, as when such a run resumes.
fn recipe(s: &serde_json::Value) -> Option<String> {
    let lr = s["learning_rate"].as_f64()?;
    let num = |key: &str, default: f64| s[key].as_f64().unwrap_or(default);
    let optimizer = s["optimizer"].as_str().unwrap_or("sgd");
    let mut parts = vec![match optimizer {
        "momentum" | "nesterov" => format!("{optimizer} {} lr {lr}", num("momentum", 0.9)),
        "adam" | "adamw" => format!(
            "{optimizer} ({}/{}) lr {lr}",
            num("beta1", 0.9),
            num("beta2", 0.999)
        ),
        _ => format!("{optimizer} lr {lr}"),
    }];
    match s["schedule"].as_str().unwrap_or("constant") {
        "step" => parts.push(format!(
            "x{} every {}",
            num("lr_factor", 0.1),
            num("lr_every", 0.0)
        )),
        "cosine" => parts.push(format!("cosine to {}", num("lr_min", 0.0))),
        _ => {}
    }
    let warmup = num("warmup", 0.0);
    if warmup > 0.0 {
        parts.push(format!("warm-up {warmup}"));
    }
    if let Some(b) = s["batch_size"].as_u64() {
        parts.push(format!("batch {b}"));
    }
    for flag in ["augment", "average"] {
        if s[flag].as_bool() == Some(true) {
            parts.push(flag.into());
        }
    }
    for key in ["decay", "smoothing"] {
        let v = num(key, 0.0);
        if v > 0.0 {
            parts.push(format!("{key} {v}"));
        }
    }
    // Semicolons, not commas: the CSV cell then needs no quotes.
    Some(parts.join("; "))
}

/// Writes a file whole or not at all: a temporary file, then a rename.
/// Creates the folder if needed.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Writes every file of the report into `out`; returns the files written.
pub fn write(runs: &[Run], warnings: &[String], out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<(), String> {
        let path = out.join(name);
        write_file(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    put("report.csv", table::csv(runs).as_bytes())?;
    let mut plots = Vec::new();
    let drawn = [
        ("accuracy_vs_steps", plot::accuracy_vs_steps(runs)),
        ("accuracy_vs_ops", plot::accuracy_vs_ops(runs)),
    ];
    for (name, result) in drawn {
        match result {
            Ok((svg, png)) => {
                put(&format!("{name}.svg"), svg.as_bytes())?;
                put(&format!("{name}.png"), &png)?;
                plots.push(format!("{name}.png"));
            }
            Err(e) => crate::diag::note(format_args!("warning: plot {name} not drawn: {e}")),
        }
    }
    put(
        "report.md",
        table::report_md(runs, warnings, &plots).as_bytes(),
    )?;
    Ok(written)
}
