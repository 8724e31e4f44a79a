//! Training as the seed did it: plain SGD on softmax cross-entropy, the
//! per-layer weight decay, and an exponential moving average of the weights.
//! Every run gets a directory with its source, settings, log and checkpoint.

use crate::batches::{self, Batches, Plan};
use crate::checkpoint::{write_atomic, Checkpoint};
use crate::data::{self, Dataset, Split};
use crate::ema::Ema;
use crate::{eval, params, Net, Result, Settings, Spec};
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const LOG: &str = "log.jsonl";
pub const SETTINGS: &str = "settings.json";
pub const SOURCE: &str = "model.net";

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub data: PathBuf,
    pub runs: PathBuf,
    pub resume: Option<PathBuf>,
    pub init_from: Option<PathBuf>,
    pub steps: Option<u64>,
    pub learning_rate: Option<f64>,
    pub batch_size: Option<usize>,
    pub seed: u64,
    pub augment: Option<bool>,
    pub decay: Option<bool>,
    pub average: Option<bool>,
    pub checkpoint_every: Duration,
    pub eval_every: u64,
    pub log_every: u64,
    pub progress: bool,
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
    fn new(spec: &Spec, o: &Options) -> Self {
        let mut s = spec.settings.clone();
        s.steps = o.steps.unwrap_or(s.steps);
        s.learning_rate = o.learning_rate.unwrap_or(s.learning_rate);
        s.batch_size = o.batch_size.unwrap_or(s.batch_size);
        s.augment = o.augment.unwrap_or(s.augment);
        s.average = o.average.unwrap_or(s.average);
        if o.decay == Some(false) {
            s.decay = 0.0;
        }
        RunSettings {
            model: spec.name.to_string(),
            file: spec.file.to_string(),
            settings: s,
            seed: o.seed,
            data: o.data.clone(),
            eval_every: o.eval_every,
            log_every: o.log_every.max(1),
            init_from: o.init_from.clone(),
        }
    }
}

/// The next free `runs/<model>/<n>/`, created.
fn new_run_dir(runs: &Path, model: &str) -> Result<PathBuf> {
    let base = runs.join(model);
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
            Ok(()) => return Ok(dir),
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

/// The log, cut back to the lines at or before `step`: what a resumed run
/// repeats must not appear twice.
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}

struct Log(std::fs::File);

impl Log {
    fn open(path: &Path) -> Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Log)
            .map_err(|e| format!("{}: cannot open: {e}", path.display()))
    }

    fn write(&mut self, line: serde_json::Value) -> Result<()> {
        writeln!(self.0, "{line}").map_err(|e| format!("{LOG}: cannot write: {e}"))
    }
}

/// The outcome of a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub run: PathBuf,
    pub steps: u64,
    pub loss: f64,
    pub examples_per_second: f64,
    pub test_accuracy: Option<f64>,
}

/// Trains `M` for the run `options` describes, writing into its run directory.
pub fn train<B, M>(spec: &Spec, options: &Options, device: &B::Device) -> Result<Outcome>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
{
    // A run is its directory: a new one, or the one being resumed.
    let (dir, run, resumed) = match &options.resume {
        Some(dir) => {
            let mut run: RunSettings = read_json(&dir.join(SETTINGS))?;
            if run.model != spec.name {
                return Err(format!(
                    "{}: a run of model {}, not {}",
                    dir.display(),
                    run.model,
                    spec.name
                ));
            }
            let saved = std::fs::read_to_string(dir.join(SOURCE)).unwrap_or_default();
            if saved != spec.source {
                return Err(format!(
                    "{}: the model's .net source changed since this run started; start a new run instead",
                    dir.display()
                ));
            }
            if let Some(steps) = options.steps {
                run.settings.steps = steps;
            }
            (dir.clone(), run, true)
        }
        None => {
            let run = RunSettings::new(spec, options);
            let dir = new_run_dir(&options.runs, spec.name)?;
            write_atomic(&dir.join(SOURCE), spec.source.as_bytes())?;
            let json = serde_json::to_string_pretty(&run).expect("settings serialize");
            write_atomic(&dir.join(SETTINGS), json.as_bytes())?;
            (dir, run, false)
        }
    };
    let s = &run.settings;
    let [h, w, c] = spec.input;
    if c != 3 {
        return Err(format!(
            "{}: the input has {c} channels; CIFAR-10 images have 3",
            spec.file
        ));
    }
    if h > data::SIDE || w > data::SIDE {
        return Err(format!(
            "{}: the input is {h}x{w}; CIFAR-10 images are 32x32",
            spec.file
        ));
    }
    let train_data = Arc::new(data::load(&run.data, Split::Train)?);
    check_classes(&train_data, s, &run.data)?;
    let test_data = data::load(&run.data, Split::Test).ok();

    B::seed(device, run.seed);
    let mut model = M::init(device);
    if let Some(path) = &run.init_from {
        model = params::load(model, &Checkpoint::load(path)?.raw, path)?;
    }
    let mut ema = Ema::new(&model);
    let mut step = 0u64;
    let checkpoint_path = dir.join(CHECKPOINT);
    if resumed && checkpoint_path.exists() {
        let ck = Checkpoint::load(&checkpoint_path)?;
        model = params::load(model, &ck.raw, &checkpoint_path)?;
        ema.shadow = ck.averaged.unwrap_or(ck.raw);
        step = ck
            .metadata
            .get("step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        truncate_log(&dir.join(LOG), step)?;
    }
    let mut log = Log::open(&dir.join(LOG))?;

    let plan = Plan {
        batch_size: s.batch_size,
        height: h,
        width: w,
        augment: s.augment,
        seed: run.seed,
    };
    let batches = Batches::spawn(train_data.clone(), plan, step);
    let mut optim = SgdConfig::new().init::<B, M>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let bar = progress(options.progress, s.steps, step);

    let save = |model: &M, ema: &Ema, step: u64| -> Result<()> {
        let raw = params::collect(model);
        if raw
            .values()
            .any(|t| t.values.iter().any(|v| !v.is_finite()))
        {
            return Err(format!(
                "the weights stopped being finite numbers at step {step}; training stopped and the last \
                 good checkpoint is kept in {}. Lower --lr or the decay factor",
                checkpoint_path.display()
            ));
        }
        let mut metadata = std::collections::HashMap::new();
        metadata.insert("step".to_string(), step.to_string());
        metadata.insert("model".to_string(), spec.name.to_string());
        metadata.insert("seed".to_string(), run.seed.to_string());
        Checkpoint {
            raw,
            averaged: s.average.then(|| ema.shadow.clone()),
            metadata,
        }
        .save(&checkpoint_path)
    };
    let evaluate = |model: &M, ema: &Ema| -> Option<f64> {
        let data = test_data.as_ref()?;
        let inner = model.valid();
        let inner = if s.average { ema.apply(inner) } else { inner };
        Some(eval::evaluate(&inner, data, [h, w], 500, device).accuracy)
    };

    let mut last_save = Instant::now();
    let mut window = (Instant::now(), 0usize);
    let mut outcome = Outcome {
        run: dir.clone(),
        steps: step,
        loss: f64::NAN,
        examples_per_second: 0.0,
        test_accuracy: None,
    };
    let mut rates = Vec::new();
    while step < s.steps {
        let batch = batches.next();
        debug_assert_eq!(batch.step, step);
        // Dropout draws from a stream of its own per step, so resuming repeats it.
        B::seed(device, batches::stream(run.seed, 3, step).next_u64_seed());
        let n = batch.labels.len();
        let x = Tensor::<B, 4>::from_data(TensorData::new(batch.images, [n, 3, h, w]), device);
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(batch.labels, [n]), device);
        let logits = model.forward(x);
        let mut loss = loss_fn.forward(logits.clone(), y.clone());
        if s.decay > 0.0 {
            if let Some(d) = model.decay_loss() {
                loss = loss + d.mul_scalar(s.decay);
            }
        }
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            bar.abandon();
            let kept = if checkpoint_path.exists() {
                format!(
                    "the last good checkpoint is kept in {}",
                    checkpoint_path.display()
                )
            } else {
                "no checkpoint was written yet".to_string()
            };
            log.write(
                serde_json::json!({"step": step, "loss": null, "error": "loss is not a number"}),
            )?;
            return Err(format!(
                "the loss became {loss_value} at step {step}; training stopped and {kept}. Lower --lr or the decay factor"
            ));
        }
        let correct: i64 = logits
            .argmax(1)
            .squeeze::<1>()
            .equal(y)
            .int()
            .sum()
            .into_scalar()
            .elem();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(s.learning_rate, model, grads);
        step += 1;
        if s.average {
            ema.update(&params::collect(&model), step);
        }
        window.1 += n;
        bar.set_position(step);
        if step.is_multiple_of(run.log_every) || step == s.steps {
            let rate = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
            rates.push(rate);
            window = (Instant::now(), 0);
            let accuracy = correct as f64 / n as f64;
            bar.set_message(format!(
                "loss {loss_value:.3}  acc {:.0} %  {rate:.0} ex/s",
                100.0 * accuracy
            ));
            log.write(serde_json::json!({
                "step": step, "loss": loss_value, "accuracy": accuracy, "examples_per_second": rate,
            }))?;
        }
        outcome.loss = loss_value;
        if (run.eval_every > 0 && step.is_multiple_of(run.eval_every)) || step == s.steps {
            if let Some(acc) = evaluate(&model, &ema) {
                log.write(
                    serde_json::json!({"step": step, "test_accuracy": acc, "averaged": s.average}),
                )?;
                bar.println(format!("step {step}: test accuracy {:.2} %", 100.0 * acc));
                outcome.test_accuracy = Some(acc);
            }
        }
        if last_save.elapsed() >= options.checkpoint_every && step < s.steps {
            if let Err(e) = save(&model, &ema, step) {
                bar.abandon();
                log.write(serde_json::json!({"step": step, "error": e}))?;
                return Err(e);
            }
            last_save = Instant::now();
        }
    }
    bar.finish();
    if let Err(e) = save(&model, &ema, step) {
        log.write(serde_json::json!({"step": step, "error": e}))?;
        return Err(e);
    }
    outcome.steps = step;
    // The first window includes start-up; the median is the steady rate.
    rates.sort_by(f64::total_cmp);
    outcome.examples_per_second = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    Ok(outcome)
}

fn check_classes(data: &Dataset, s: &Settings, dir: &Path) -> Result<()> {
    if data.classes.len() != s.classes {
        return Err(format!(
            "{}: the data has {} classes, the model outputs {} scores",
            dir.display(),
            data.classes.len(),
            s.classes
        ));
    }
    Ok(())
}

fn progress(show: bool, total: u64, at: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} step {pos}/{len}  {msg}  {elapsed} elapsed, {eta} left",
        )
        .expect("the template is valid"),
    );
    bar.set_position(at);
    bar
}

trait SeedFromStream {
    fn next_u64_seed(self) -> u64;
}

impl SeedFromStream for rand::rngs::StdRng {
    fn next_u64_seed(mut self) -> u64 {
        rand::RngCore::next_u64(&mut self)
    }
}
