//! A run directory: `model.net`, `settings.json`, `log.jsonl` and
//! `checkpoint.safetensors`. Opening one takes its lock, so one process at a
//! time trains it; resuming one keeps its settings, refusing flags that
//! contradict them, and cuts its log back to the checkpoint.

use crate::checkpoint::write_atomic;
use crate::optim::{Optimizer, Schedule};
use crate::{Result, Settings, Spec};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const LOG: &str = "log.jsonl";
pub const SETTINGS: &str = "settings.json";
pub const SOURCE: &str = "model.net";
/// Held locked by the process training the run.
pub const LOCK: &str = ".lock";

pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_EVAL_EVERY: u64 = 1000;
pub const DEFAULT_LOG_EVERY: u64 = 10;

/// What the command line asked for; `None` where a flag was left out.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub data: Option<PathBuf>,
    pub init_from: Option<PathBuf>,
    pub steps: Option<u64>,
    pub learning_rate: Option<f64>,
    pub batch_size: Option<usize>,
    pub seed: Option<u64>,
    pub augment: Option<bool>,
    pub decay: Option<bool>,
    pub average: Option<bool>,
    pub eval_every: Option<u64>,
    pub log_every: Option<u64>,
    pub optimizer: Option<Optimizer>,
    pub momentum: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub epsilon: Option<f64>,
    pub schedule: Option<Schedule>,
    pub lr_every: Option<u64>,
    pub lr_factor: Option<f64>,
    pub lr_min: Option<f64>,
    pub warmup: Option<u64>,
    pub smoothing: Option<f64>,
}

/// Everything that decides a run's results, saved in `settings.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    pub model: String,
    pub file: String,
    pub settings: Settings,
    pub seed: u64,
    pub data: PathBuf,
    pub eval_every: u64,
    pub log_every: u64,
    pub init_from: Option<PathBuf>,
}

impl RunSettings {
    /// A new run's settings: the model's, overridden by the flags given.
    pub fn new(spec: &Spec, a: &Asked, data: &Path) -> Self {
        let mut s = spec.settings.clone();
        s.steps = a.steps.unwrap_or(s.steps);
        s.learning_rate = a.learning_rate.unwrap_or(s.learning_rate);
        s.batch_size = a.batch_size.unwrap_or(s.batch_size);
        s.augment = a.augment.unwrap_or(s.augment);
        s.average = a.average.unwrap_or(s.average);
        if a.decay == Some(false) {
            s.decay = 0.0;
        }
        let r = &mut s.recipe;
        r.optimizer = a.optimizer.unwrap_or(r.optimizer);
        r.momentum = a.momentum.unwrap_or(r.momentum);
        r.beta1 = a.beta1.unwrap_or(r.beta1);
        r.beta2 = a.beta2.unwrap_or(r.beta2);
        r.epsilon = a.epsilon.unwrap_or(r.epsilon);
        r.schedule = a.schedule.unwrap_or(r.schedule);
        r.lr_every = a.lr_every.unwrap_or(r.lr_every);
        r.lr_factor = a.lr_factor.unwrap_or(r.lr_factor);
        r.lr_min = a.lr_min.unwrap_or(r.lr_min);
        r.warmup = a.warmup.unwrap_or(r.warmup);
        r.smoothing = a.smoothing.unwrap_or(r.smoothing);
        RunSettings {
            model: spec.name.to_string(),
            file: spec.file.to_string(),
            settings: s,
            seed: a.seed.unwrap_or(DEFAULT_SEED),
            data: absolute(data),
            eval_every: a.eval_every.unwrap_or(DEFAULT_EVAL_EVERY),
            log_every: a.log_every.unwrap_or(DEFAULT_LOG_EVERY).max(1),
            init_from: a.init_from.as_deref().map(absolute),
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("settings serialize");
        write_atomic(&dir.join(SETTINGS), json.as_bytes())
    }
}

/// An open run directory; the lock lasts as long as this value.
pub struct Run {
    pub dir: PathBuf,
    pub settings: RunSettings,
    pub resumed: bool,
    /// What a resume changed in the settings, not yet saved or said.
    notes: Vec<String>,
    _lock: File,
}

impl Run {
    /// Saves the settings a resume changed and says what changed.
    pub fn commit(&self) -> Result<()> {
        if !self.notes.is_empty() {
            self.settings.save(&self.dir)?;
            for n in &self.notes {
                eprintln!("note: {}: {n}", self.dir.display());
            }
        }
        Ok(())
    }
}

/// Takes the run's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let file =
        File::create(&path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{}: another process is training this run; wait for it to finish or stop it first",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("{}: cannot lock: {e}", path.display()))
        }
    }
}

/// A new run in the next free `runs/<model>/<n>/`, locked.
pub fn create(spec: &Spec, runs: &Path, settings: &RunSettings) -> Result<Run> {
    let base = runs.join(spec.name);
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("{}: cannot create: {e}", base.display()))?;
    let taken = std::fs::read_dir(&base)
        .map_err(|e| format!("{}: cannot list: {e}", base.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    for n in taken + 1.. {
        let dir = base.join(n.to_string());
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let lock = lock(&dir)?;
                write_atomic(&dir.join(SOURCE), spec.source.as_bytes())?;
                settings.save(&dir)?;
                return Ok(Run {
                    dir,
                    settings: settings.clone(),
                    resumed: false,
                    notes: Vec::new(),
                    _lock: lock,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: cannot create: {e}", dir.display())),
        }
    }
    unreachable!("some run number is free")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: damaged: {e}", path.display()))
}

/// `path` from the root: a run resumed from another directory must find the
/// same data and weights, not whatever `data` means there.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn same_place(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Reopens the run in `dir` for `spec`, locked, with its saved settings;
/// `--steps` may change where it ends, and `--data` where its data now is.
/// Flags that would change anything else are refused, all listed.
pub fn resume(spec: &Spec, dir: &Path, asked: &Asked) -> Result<Run> {
    if !dir.join(SETTINGS).is_file() {
        return Err(format!(
            "{}: not a run directory (no {SETTINGS}); runs are runs/<model>/<n>/",
            dir.display()
        ));
    }
    let lock = lock(dir)?;
    let mut saved: RunSettings = read_json(&dir.join(SETTINGS))?;
    if saved.model != spec.name {
        return Err(format!(
            "{}: a run of model {}, not {}",
            dir.display(),
            saved.model,
            spec.name
        ));
    }
    let source = std::fs::read_to_string(dir.join(SOURCE)).unwrap_or_default();
    if source != spec.source {
        return Err(format!(
            "{}: the model's .net source changed since this run started; start a new run instead",
            dir.display()
        ));
    }
    let wanted = RunSettings::new(spec, asked, asked.data.as_deref().unwrap_or(&saved.data));
    let (was, now) = (&saved.settings, &wanted.settings);
    let mut contradictions = Vec::new();
    let mut differs = |given: bool, flag: &str, asked: String, used: String| {
        if given && asked != used {
            contradictions.push(format!("{flag} {asked} (the run uses {used})"));
        }
    };
    let on = |b: bool| if b { "on" } else { "off" }.to_string();
    differs(
        asked.learning_rate.is_some(),
        "--lr",
        now.learning_rate.to_string(),
        was.learning_rate.to_string(),
    );
    differs(
        asked.batch_size.is_some(),
        "--batch-size",
        now.batch_size.to_string(),
        was.batch_size.to_string(),
    );
    differs(
        asked.seed.is_some(),
        "--seed",
        wanted.seed.to_string(),
        saved.seed.to_string(),
    );
    differs(
        asked.augment.is_some(),
        "--augment",
        on(now.augment),
        on(was.augment),
    );
    differs(
        asked.average.is_some(),
        "--average",
        on(now.average),
        on(was.average),
    );
    differs(
        asked.decay.is_some(),
        "--decay",
        on(asked.decay == Some(true) && now.decay > 0.0),
        on(was.decay > 0.0),
    );
    let (rw, rn) = (&was.recipe, &now.recipe);
    differs(
        asked.optimizer.is_some(),
        "--optimizer",
        rn.optimizer.to_string(),
        rw.optimizer.to_string(),
    );
    differs(
        asked.schedule.is_some(),
        "--schedule",
        rn.schedule.to_string(),
        rw.schedule.to_string(),
    );
    for (given, flag, a, b) in [
        (
            asked.momentum.is_some(),
            "--momentum",
            rn.momentum,
            rw.momentum,
        ),
        (asked.beta1.is_some(), "--beta1", rn.beta1, rw.beta1),
        (asked.beta2.is_some(), "--beta2", rn.beta2, rw.beta2),
        (asked.epsilon.is_some(), "--epsilon", rn.epsilon, rw.epsilon),
        (
            asked.lr_factor.is_some(),
            "--lr-factor",
            rn.lr_factor,
            rw.lr_factor,
        ),
        (asked.lr_min.is_some(), "--lr-min", rn.lr_min, rw.lr_min),
        (
            asked.smoothing.is_some(),
            "--smoothing",
            rn.smoothing,
            rw.smoothing,
        ),
    ] {
        differs(given, flag, a.to_string(), b.to_string());
    }
    for (given, flag, a, b) in [
        (
            asked.lr_every.is_some(),
            "--lr-every",
            rn.lr_every,
            rw.lr_every,
        ),
        (asked.warmup.is_some(), "--warmup", rn.warmup, rw.warmup),
    ] {
        differs(given, flag, a.to_string(), b.to_string());
    }
    differs(
        asked.eval_every.is_some(),
        "--eval-every",
        wanted.eval_every.to_string(),
        saved.eval_every.to_string(),
    );
    differs(
        asked.log_every.is_some(),
        "--log-every",
        wanted.log_every.to_string(),
        saved.log_every.to_string(),
    );
    if let Some(init) = &asked.init_from {
        let same = saved
            .init_from
            .as_deref()
            .is_some_and(|s| same_place(s, init));
        let used = saved
            .init_from
            .as_ref()
            .map_or("no --init-from".to_string(), |p| p.display().to_string());
        differs(!same, "--init-from", init.display().to_string(), used);
    }
    let mut notes = Vec::new();
    match &asked.data {
        Some(d) if !same_place(d, &saved.data) => {
            if saved.data.exists() {
                differs(
                    true,
                    "--data",
                    d.display().to_string(),
                    saved.data.display().to_string(),
                );
            } else {
                notes.push(format!(
                    "the run's data {} is gone; using {} from now on",
                    saved.data.display(),
                    d.display()
                ));
                saved.data = absolute(d);
            }
        }
        None if !saved.data.exists() => {
            return Err(format!(
                "{}: the run's data {} is gone; give its new place with --data",
                dir.display(),
                saved.data.display()
            ))
        }
        _ => {}
    }
    if !contradictions.is_empty() {
        return Err(format!(
            "{}: a resumed run keeps its own settings, and these flags contradict them: {}. \
             Leave them out to continue the run, or start a new run without --resume",
            dir.display(),
            contradictions.join(", ")
        ));
    }
    if let Some(steps) = asked.steps.filter(|&s| s != was.steps) {
        notes.push(format!(
            "the run now ends at step {steps} instead of {}",
            was.steps
        ));
        saved.settings.steps = steps;
    }
    remove_stale_temporaries(dir);
    Ok(Run {
        dir: dir.to_path_buf(),
        settings: saved,
        resumed: true,
        notes,
        _lock: lock,
    })
}

/// Temporary files a crashed writer left (`write_atomic` names them
/// `.<name>.tmp`): nothing else writes in a locked run, so each is garbage.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.path().is_file() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The log, cut back to the whole lines at or before `step`: what a resumed
/// run repeats must not appear twice, and a line cut short by a kill goes.
pub fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let whole = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    let kept: Vec<u8> = whole
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| {
            serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .flatten()
        .copied()
        .collect();
    if kept.len() == bytes.len() {
        return Ok(());
    }
    write_atomic(path, &kept)
}

/// `log.jsonl`, appended one whole line per `write` call, so a kill never
/// leaves half a line that the next one merges with.
pub struct Log {
    file: File,
    path: PathBuf,
}

impl Log {
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|file| Log {
                file,
                path: path.to_path_buf(),
            })
            .map_err(|e| format!("{}: cannot open: {e}", path.display()))
    }

    pub fn write(&mut self, line: serde_json::Value) -> Result<()> {
        let line = format!("{line}\n");
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", self.path.display()))
    }
}
