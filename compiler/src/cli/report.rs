//! `netc report RUN_DIR...`

use netc::driver;
use netc::report;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Run directories, or folders holding them (such as runs/)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where to write report.md, report.csv and the plots
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Skip measuring batch-1 inference latency (which builds each model)
    #[arg(long)]
    no_latency: bool,
}

/// Median batch-1 latency of the model in `run`, measured by its program.
pub(super) fn latency(run: &Path, model: &str) -> Result<f64, String> {
    let source_path = run.join("model.net");
    let source = std::fs::read_to_string(&source_path)
        .map_err(|e| format!("{}: {e}", source_path.display()))?;
    let checked = netc::check(&source)
        .map_err(|d| d.one_line(&source_path.display().to_string(), &source))?;
    let c = checked
        .iter()
        .find(|c| c.model.name == model)
        .or(checked.first())
        .ok_or("no model")?;
    let build = driver::Build {
        out: driver::default_out(&c.model.name),
        target: driver::target_dir(),
        cuda: false,
    };
    let binary = driver::build(&source_path.display().to_string(), &source, c, &build)?;
    let out = Command::new(&binary)
        .args([
            "bench",
            "--batch-size",
            "1",
            "--steps",
            "1",
            "--latency-runs",
            "30",
        ])
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "{} bench: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    v["latency_ms_median"]
        .as_f64()
        .ok_or_else(|| "no latency in the bench output".into())
}

pub fn run(args: &Args) -> std::io::Result<bool> {
    let dirs = report::find_runs(&args.paths);
    if dirs.is_empty() {
        errln!(
            "error: no runs found under {}; a run directory holds log.jsonl and settings.json (netc train writes runs/<model>/<n>/)",
            args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return Ok(false);
    }
    let mut warnings = Vec::new();
    let mut runs = Vec::new();
    for dir in &dirs {
        let mut run = report::read_run(dir, &mut warnings);
        if !args.no_latency {
            match latency(dir, &run.model) {
                Ok(ms) => run.latency_ms = Some(ms),
                Err(e) => warnings.push(format!("{}: latency not measured: {e}", dir.display())),
            }
        }
        runs.push(run);
    }
    for w in &warnings {
        errln!("warning: {w}");
    }
    match report::write(&runs, &warnings, &args.out) {
        Ok(files) => {
            for f in files {
                outln!("{}", f.display())?;
            }
            Ok(true)
        }
        Err(e) => {
            errln!("error: {e}");
            Ok(false)
        }
    }
}
