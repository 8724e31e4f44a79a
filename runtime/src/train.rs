//! Training as the seed did it (plain SGD on softmax cross-entropy, the
//! per-layer weight decay, an exponential moving average of the weights), or
//! with the optimizer, schedule and smoothing of `optim.rs`.
//! Every run gets a directory with its source, settings, log and checkpoint.

use crate::batches::{self, Batches, Plan};
use crate::checkpoint::Checkpoint;
use crate::data::{self, Split};
use crate::ema::Ema;
use crate::masks::Masks;
use crate::optim::Optim;
use crate::run::{self, Asked, Log};
use crate::statistics::{self, Norms};
use crate::{eval, params, Net, Result, Spec};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::run::{RunSettings, CHECKPOINT, LOG, SETTINGS, SOURCE};

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub runs: PathBuf,
    pub resume: Option<PathBuf>,
    /// The flags that decide results; on a resume, only `steps` and a moved
    /// `data` may differ from the run's.
    pub asked: Asked,
    pub checkpoint_every: Duration,
    pub progress: bool,
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
    // A run is its directory: the one being resumed, or a new one made
    // once its data has loaded.
    let (settings, resuming) = match &options.resume {
        Some(dir) => {
            let open = run::resume(spec, dir, &options.asked)?;
            (open.settings.clone(), Some(open))
        }
        None => {
            let data = options
                .asked
                .data
                .as_deref()
                .ok_or("give the training data: --data DIR")?;
            (RunSettings::new(spec, &options.asked, data), None)
        }
    };
    let s = &settings.settings;
    s.recipe.check(s.learning_rate)?;
    // Before any run is made: the batch norms whose statistics an averaging
    // run measures.
    let norms = if s.average {
        Norms::of(&crate::quant::graph(spec)?)
    } else {
        Norms::default()
    };
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
    // Both splits before any step: a test set found broken at the end
    // would cost the whole run.
    let train_data = Arc::new(data::load(&settings.data, Split::Train)?);
    data::check_classes(&train_data, s.classes, &settings.data)?;
    let test_data = data::load(&settings.data, Split::Test)?;
    data::check_classes(&test_data, s.classes, &settings.data)?;
    let open = match resuming {
        Some(open) => open,
        None => run::create(spec, &options.runs, &settings)?,
    };
    let (dir, run, resumed) = (&open.dir, &open.settings, open.resumed);

    B::seed(device, run.seed);
    let mut model = M::init(device);
    let checkpoint_path = dir.join(CHECKPOINT);
    let mut step = 0u64;
    let mut ema;
    let mut optim = Optim::<B::InnerBackend>::new(s.recipe, spec.decayed, s.decay);
    if resumed && checkpoint_path.exists() {
        // The checkpoint holds everything: the run's --init-from file is
        // needed no more.
        let ck = Checkpoint::load_weights(&checkpoint_path)?;
        step = saved_step(&ck, &checkpoint_path)?;
        model = params::load(model, &ck.raw, &checkpoint_path)?;
        optim.load(
            &ck.optimizer,
            &params::collect(&model),
            step,
            device,
            &checkpoint_path,
        )?;
        let averaged = ck.averaged.unwrap_or(ck.raw);
        same_tensors(&params::collect(&model), &averaged, &checkpoint_path)?;
        ema = Ema { shadow: averaged };
    } else {
        if let Some(path) = &run.init_from {
            model = params::load(model, &Checkpoint::load_weights(path)?.raw, path)?;
        }
        ema = Ema::new(&model);
    }
    // Pruned runs (netc prune) keep their masked weights at zero.
    let masks = Masks::of_run(dir, run.init_from.as_deref(), &params::collect(&model))?;
    model = masks.apply(model);
    masks.apply_to(&mut ema.shadow);
    if step > s.steps {
        return Err(format!(
            "{}: the checkpoint is at step {step}, past the run's end at step {}; give --steps {step} or more",
            dir.display(),
            s.steps
        ));
    }
    open.commit()?;
    if resumed {
        run::truncate_log(&dir.join(LOG), step)?;
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
    // The averaged weights, with batch norm's statistics measured for them
    // (statistics.rs); measured at most once a step, for evaluation and save.
    let measuring = Plan {
        seed: statistics::seed(run.seed),
        ..plan
    };
    let mut measured: Option<(u64, params::Tensors)> = None;
    let mut averaged = |model: &M, ema: &Ema, step: u64| -> Option<params::Tensors> {
        if !s.average {
            return None;
        }
        match &measured {
            Some((at, t)) if *at == step => {}
            _ => {
                let t = norms.measure(model, &ema.shadow, &train_data, measuring, device);
                measured = Some((step, t));
            }
        }
        measured.as_ref().map(|(_, t)| t.clone())
    };
    let loss_fn = crate::optim::cross_entropy(s.recipe.smoothing, device);
    // AdamW decays the marked layers in its update instead.
    let decay_in_loss = s.decay > 0.0 && !s.recipe.decoupled_decay();
    let bar = progress(options.progress, s.steps, step);

    // What a run that stops now leaves behind, for its message.
    let kept = || {
        if checkpoint_path.exists() {
            format!(
                "the last good checkpoint is kept in {}",
                checkpoint_path.display()
            )
        } else {
            "no checkpoint was written yet".to_string()
        }
    };
    let save = |model: &M,
                averaged: Option<params::Tensors>,
                optim: &Optim<B::InnerBackend>,
                step: u64|
     -> Result<()> {
        let raw = params::collect_trained(model);
        if raw
            .values()
            .any(|t| t.values.iter().any(|v| !v.is_finite()))
        {
            return Err(format!(
                "the weights stopped being finite numbers at step {step}; training stopped and {}. \
                 Lower --lr or the decay factor",
                kept()
            ));
        }
        let mut metadata: std::collections::BTreeMap<String, String> = [
            ("step", step.to_string()),
            ("model", spec.name.to_string()),
            ("seed", run.seed.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        // Says what the `optim/` tensors are; the seed's SGD has none.
        if !s.recipe.slots().is_empty() {
            metadata.insert("optimizer".into(), s.recipe.optimizer.to_string());
        }
        Checkpoint {
            optimizer: optim.save(&raw),
            raw,
            averaged,
            metadata,
        }
        .save(&checkpoint_path)
    };
    let evaluate = |model: &M, averaged: Option<&params::Tensors>| -> f64 {
        let inner = model.valid();
        let inner = match averaged {
            Some(t) => params::replace(inner, t, &|_| true)
                .expect("the average holds every tensor of the model it was made from"),
            None => inner,
        };
        eval::evaluate(&inner, &test_data, [h, w], 500, device).accuracy
    };

    let mut last_save = Instant::now();
    let mut window = (Instant::now(), 0usize);
    let mut outcome = Outcome {
        run: dir.to_path_buf(),
        steps: step,
        loss: f64::NAN,
        examples_per_second: 0.0,
        test_accuracy: None,
    };
    let mut rates = Vec::new();
    while step < s.steps {
        let batch = batches.next();
        debug_assert_eq!(batch.step, step);
        B::seed(device, batches::dropout_seed(run.seed, step));
        let n = batch.labels.len();
        let x = Tensor::<B, 4>::from_data(TensorData::new(batch.images, [n, 3, h, w]), device);
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(batch.labels, [n]), device);
        let logits = model.forward(x);
        let mut loss = loss_fn.forward(logits.clone(), y.clone());
        if decay_in_loss {
            if let Some(d) = model.decay_loss() {
                loss = loss + d.mul_scalar(s.decay);
            }
        }
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            bar.abandon();
            let kept = kept();
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
        let lr = s.recipe.lr_at(s.learning_rate, step, s.steps);
        model = masks.apply(optim.step(lr, step, model, grads));
        step += 1;
        if s.average {
            ema.update(&params::collect_trained(&model), step);
            masks.apply_to(&mut ema.shadow);
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
            let acc = evaluate(&model, averaged(&model, &ema, step).as_ref());
            log.write(
                serde_json::json!({"step": step, "test_accuracy": acc, "averaged": s.average}),
            )?;
            bar.println(format!("step {step}: test accuracy {:.2} %", 100.0 * acc));
            outcome.test_accuracy = Some(acc);
        }
        if last_save.elapsed() >= options.checkpoint_every && step < s.steps {
            if let Err(e) = save(&model, averaged(&model, &ema, step), &optim, step) {
                bar.abandon();
                log.write(serde_json::json!({"step": step, "error": e}))?;
                return Err(e);
            }
            last_save = Instant::now();
        }
    }
    bar.finish();
    if let Err(e) = save(&model, averaged(&model, &ema, step), &optim, step) {
        log.write(serde_json::json!({"step": step, "error": e}))?;
        return Err(e);
    }
    outcome.steps = step;
    // The first window includes start-up; the median is the steady rate.
    rates.sort_by(f64::total_cmp);
    outcome.examples_per_second = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    Ok(outcome)
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

/// The step a checkpoint was written at; a checkpoint without one is
/// damaged, and starting over would wipe the run's log.
fn saved_step(ck: &Checkpoint, path: &Path) -> Result<u64> {
    let raw = ck.metadata.get("step");
    raw.and_then(|s| s.parse().ok()).ok_or_else(|| {
        format!(
            "{}: damaged: its metadata holds {} instead of the step it was written at; \
             restore it from a backup or start a new run",
            path.display(),
            raw.map_or("no `step`".to_string(), |s| format!("`step` = {s:?}"))
        )
    })
}

/// Refuses an average that does not hold every tensor of the model, each
/// in the model's shape.
fn same_tensors(model: &params::Tensors, averaged: &params::Tensors, path: &Path) -> Result<()> {
    let mut bad: Vec<String> = model
        .iter()
        .filter(|(name, t)| averaged.get(*name).is_none_or(|a| a.shape != t.shape))
        .map(|(name, _)| format!("`{}{name}`", crate::checkpoint::AVERAGED))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    Err(format!(
        "{}: damaged: the averaged weights lack or misshape {}; restore it from a backup or start a new run",
        path.display(),
        bad.join(", ")
    ))
}
