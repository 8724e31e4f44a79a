//! The command line of every generated program: `train`, `eval`, `infer`.

use crate::checkpoint::Checkpoint;
use crate::data::{self, Split, CIFAR10_CLASSES};
use crate::optim::{Optimizer, Schedule};
use crate::quant::{self, Method, QModel};
use crate::run::Asked;
use crate::train::{self, Options, CHECKPOINT};
use crate::{eval, infer, params, Net, Result, Spec};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand, ValueEnum};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Train, evaluate and run a model compiled by netc")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Where to run: cpu (burn's flex backend) or cuda
    #[arg(long, global = true, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        self == Switch::On
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train on CIFAR-10 (binary batches or image folders)
    Train {
        /// Data directory: cifar-10-batches-bin/ or train/<class>/ and test/<class>/
        /// (a resumed run uses its own)
        #[arg(long, required_unless_present = "resume")]
        data: Option<PathBuf>,
        /// Steps to train to (a resumed run may be given a new end)
        #[arg(long)]
        steps: Option<u64>,
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        batch_size: Option<usize>,
        /// Seed of the initial weights, batches and augmentation [default: 1]
        #[arg(long)]
        seed: Option<u64>,
        /// Random crop, flip, brightness and contrast
        #[arg(long, value_enum)]
        augment: Option<Switch>,
        /// The weight-decay loss of layers marked `decay`
        #[arg(long, value_enum)]
        decay: Option<Switch>,
        /// Evaluate the moving average of the weights
        #[arg(long, value_enum)]
        average: Option<Switch>,
        /// Optimizer, schedule and label smoothing (boxed: clap's variant stays small)
        #[command(flatten)]
        recipe: Box<RecipeFlags>,
        /// Continue the run in this directory, with its own settings: flags
        /// that contradict them are refused
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Start from the weights of this safetensors file
        #[arg(long)]
        init_from: Option<PathBuf>,
        /// Where run directories go
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Seconds between checkpoints
        #[arg(long, default_value_t = 60)]
        checkpoint_secs: u64,
        /// Steps between test-set evaluations (0: only at the end) [default: 1000]
        #[arg(long)]
        eval_every: Option<u64>,
        /// Steps between log lines [default: 10]
        #[arg(long)]
        log_every: Option<u64>,
        /// No progress bar
        #[arg(long)]
        quiet: bool,
    },
    /// Test accuracy, per-class accuracy and confusion matrix
    Eval {
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        weights: Weights,
        #[arg(long)]
        json: bool,
        /// Evaluate this int8 model (`quantize` writes it) instead of float weights
        #[arg(long, value_name = "FILE")]
        int8: Option<PathBuf>,
    },
    /// Int8 post-training quantization: calibrate activation ranges on
    /// training images, write RUN/int8.safetensors (or --output)
    Quantize {
        #[command(flatten)]
        weights: Weights,
        /// Data directory: its training images calibrate
        #[arg(long)]
        data: PathBuf,
        /// How many training images calibrate (spread over the set)
        #[arg(long)]
        calibrate: usize,
        /// How an activation's range is chosen
        #[arg(long, value_enum, default_value_t = Method::Percentile)]
        method: Method,
        /// Where to write the int8 model [default: RUN/int8.safetensors]
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Class scores of input tensors: reads `input` (N x C x H x W) from a
    /// safetensors file, writes `logits`; for checking against other tools
    #[command(hide = true)]
    Forward {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Weights to use (default: a fresh model from --seed)
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Also write the weights used to this file
        #[arg(long)]
        save_weights: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Compute with netc's graph interpreter in float (the int8 path's
        /// float twin) instead of burn's modules
        #[arg(long)]
        interpreter: bool,
        /// Compute with this int8 model
        #[arg(long, value_name = "FILE")]
        int8: Option<PathBuf>,
    },
    /// Measure speed: training and inference examples per second, batch-1 latency, peak memory (JSON)
    Bench {
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Timed training steps and inference batches
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Timed batch-1 inferences
        #[arg(long, default_value_t = 50)]
        latency_runs: usize,
        /// Also run this int8 model, alternating rounds with the float one
        #[arg(long, value_name = "FILE")]
        int8: Option<PathBuf>,
    },
    /// Label image files (PNG or JPEG, any size)
    Infer {
        #[command(flatten)]
        weights: Weights,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Label with this int8 model (`quantize` writes it) instead of float weights
        #[arg(long, value_name = "FILE")]
        int8: Option<PathBuf>,
    },
}

/// The flags of `optim::Recipe`; left out, the model's `train` line decides.
#[derive(clap::Args, Debug, Default)]
pub struct RecipeFlags {
    /// How the weights move (the seed's: sgd)
    #[arg(long, value_enum)]
    pub optimizer: Option<Optimizer>,
    /// Momentum of `momentum` and `nesterov` [default: 0.9]
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Adam's first-moment decay [default: 0.9]
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Adam's second-moment decay [default: 0.999]
    #[arg(long)]
    pub beta2: Option<f64>,
    /// Adam's epsilon [default: 1e-8]
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Learning-rate schedule (the seed's: constant)
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Steps between the step schedule's decays
    #[arg(long)]
    pub lr_every: Option<u64>,
    /// What the step schedule multiplies the rate by [default: 0.1]
    #[arg(long)]
    pub lr_factor: Option<f64>,
    /// The rate the cosine schedule ends at [default: 0]
    #[arg(long)]
    pub lr_min: Option<f64>,
    /// Steps of linear warm-up of the rate [default: 0]
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Label smoothing, in [0, 1) [default: 0]
    #[arg(long)]
    pub smoothing: Option<f64>,
}

#[derive(clap::Args, Debug)]
pub struct Weights {
    /// A run directory (its checkpoint.safetensors)
    #[arg(long, conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// A safetensors weight file
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Use the raw weights instead of their moving average
    #[arg(long)]
    raw: bool,
}

impl Weights {
    fn path(&self) -> Result<PathBuf> {
        match (&self.run, &self.weights) {
            (Some(run), _) => Ok(run.join(CHECKPOINT)),
            (None, Some(w)) => Ok(w.clone()),
            (None, None) => {
                Err("give the weights: --run runs/<model>/<n> or --weights FILE".into())
            }
        }
    }
}

/// Refuses an int8 model where float weights are needed.
fn float_weights(path: &Path, what: &str) -> Result<()> {
    if quant::qmodel::is_int8(path) {
        return Err(format!(
            "{} is an int8 model (made by `quantize`); {what} needs float weights: give it a run \
             or a checkpoint, and the int8 file to eval, infer or bench with --int8",
            path.display()
        ));
    }
    Ok(())
}

/// The float weights the user chose: averaged ones when present.
fn load_tensors(weights: &Weights) -> Result<(PathBuf, params::Tensors)> {
    let path = weights.path()?;
    float_weights(&path, "this command")?;
    let mut ck = Checkpoint::load_weights(&path)?;
    let tensors = match (ck.averaged.take(), weights.raw) {
        (Some(avg), false) => avg,
        _ => ck.raw,
    };
    Ok((path, tensors))
}

/// The model with the weights the user chose: averaged ones when present.
fn load_model<B: Backend, M: Net<B>>(weights: &Weights, device: &B::Device) -> Result<M> {
    let path = weights.path()?;
    float_weights(&path, "this command")?;
    let ck = Checkpoint::load_weights(&path)?;
    let tensors = match (&ck.averaged, weights.raw) {
        (Some(avg), false) => avg,
        _ => &ck.raw,
    };
    params::load(M::init(device), tensors, &path)
}

fn class_names(spec: &Spec) -> Vec<String> {
    if spec.settings.classes == CIFAR10_CLASSES.len() {
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..spec.settings.classes)
            .map(|c| format!("class {c}"))
            .collect()
    }
}

/// Runs one command of the generated program on backend `B` (`backend`
/// names it in messages). A panic inside the backend, such as a missing GPU
/// driver, becomes an error message and exit code 1.
pub fn run<B, M>(spec: &Spec, command: Command, device: B::Device, backend: &str) -> ExitCode
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
{
    crate::memory::keep_freed_memory();
    // This thread joins rayon's pool as one of its workers. A parallel loop
    // started from outside the pool is queued for a worker while the caller
    // sleeps, two thread switches per kernel call: at batch 1 on 2 cores
    // that was over half of squeeze1's latency (0.78 ms, against 0.35 ms on
    // one thread). Running the command on a pool thread instead (`install`)
    // moved its allocations to that thread's malloc arena, whose heaps go
    // back to the kernel when empty: alex4 trained 14 % slower. Where the
    // pool already exists, as in tests, it is used as it is. With one
    // thread there is nothing to gain, and that thread would be this one,
    // which runs the pool's queued work only from inside a parallel loop.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads > 1 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .use_current_thread()
            .build_global();
    }
    let first_panic = Arc::new(Mutex::new(None::<String>));
    let seen = first_panic.clone();
    std::panic::set_hook(Box::new(move |info| {
        let mut slot = seen.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!(" ({}:{})", l.file(), l.line()))
                .unwrap_or_default();
            *slot = Some(format!("{text}{at}"));
        }
    }));
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| execute::<B, M>(spec, command, &device)));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            let what = first_panic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            let hint = if backend == "cuda" {
                "Is an NVIDIA driver installed (libcuda.so) and a GPU visible? --device cpu runs without one."
            } else {
                "This is a bug in netc or burn; please report it with the command you ran."
            };
            eprintln!("error: the {backend} backend failed: {what}\n{hint}");
            ExitCode::FAILURE
        }
    }
}

fn execute<B, M>(spec: &Spec, command: Command, device: &B::Device) -> Result<()>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
{
    let [h, w, _] = spec.input;
    match command {
        Command::Train {
            data,
            steps,
            lr,
            batch_size,
            seed,
            augment,
            decay,
            average,
            recipe,
            resume,
            init_from,
            runs,
            checkpoint_secs,
            eval_every,
            log_every,
            quiet,
        } => {
            if let Some(p) = &init_from {
                float_weights(p, "training")?;
            }
            let options = Options {
                runs,
                resume,
                asked: Asked {
                    data,
                    init_from,
                    steps,
                    learning_rate: lr,
                    batch_size,
                    seed,
                    augment: augment.map(Switch::on),
                    decay: decay.map(Switch::on),
                    average: average.map(Switch::on),
                    eval_every,
                    log_every,
                    optimizer: recipe.optimizer,
                    momentum: recipe.momentum,
                    beta1: recipe.beta1,
                    beta2: recipe.beta2,
                    epsilon: recipe.epsilon,
                    schedule: recipe.schedule,
                    lr_every: recipe.lr_every,
                    lr_factor: recipe.lr_factor,
                    lr_min: recipe.lr_min,
                    warmup: recipe.warmup,
                    smoothing: recipe.smoothing,
                },
                checkpoint_every: Duration::from_secs(checkpoint_secs),
                progress: !quiet,
            };
            let out = train::train::<B, M>(spec, &options, device)?;
            println!(
                "{}",
                serde_json::to_string(&out).expect("outcome serializes")
            );
            Ok(())
        }
        Command::Eval {
            data: dir,
            weights,
            json,
            int8,
        } => {
            let result = if let Some(file) = int8 {
                let graph = quant::graph(spec)?;
                let q = QModel::load(&file, spec.name, &graph)?;
                let test = data::load(&dir, Split::Test)?;
                data::check_classes(&test, spec.settings.classes, &dir)?;
                let preds = quant::predict(&graph, &q, &test, [h, w], spec.settings.classes)?;
                eval::score(preds, &test)
            } else {
                let model: M::InnerModule = load_model(&weights, device)?;
                let test = data::load(&dir, Split::Test)?;
                data::check_classes(&test, spec.settings.classes, &dir)?;
                eval::evaluate(&model, &test, [h, w], 500, device)
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).expect("serializes")
                );
            } else {
                print!("{}", result.table());
            }
            Ok(())
        }
        Command::Forward {
            input,
            output,
            weights,
            save_weights,
            seed,
            interpreter,
            int8,
        } => {
            B::InnerBackend::seed(device, seed);
            let mut model = <M::InnerModule as Net<B::InnerBackend>>::init(device);
            if let Some(path) = &weights {
                float_weights(path, "forward")?;
                model = params::load(model, &Checkpoint::load_weights(path)?.raw, path)?;
            }
            if let Some(path) = &save_weights {
                Checkpoint {
                    raw: params::collect(&model),
                    ..Checkpoint::default()
                }
                .save(path)?;
            }
            let ck = Checkpoint::load(&input)?;
            let x = ck
                .raw
                .get("input")
                .ok_or_else(|| format!("{}: no tensor named `input`", input.display()))?;
            let [n, c, xh, xw] = x.shape[..] else {
                return Err(format!(
                    "{}: `input` must be N x C x H x W",
                    input.display()
                ));
            };
            let (dims, values) = if interpreter || int8.is_some() {
                let graph = quant::graph(spec)?;
                let values = match &int8 {
                    Some(file) => {
                        let q = QModel::load(file, spec.name, &graph)?;
                        quant::logits(&graph, &q, x.values.clone(), n)?
                    }
                    None => {
                        let tensors = params::collect(&model);
                        let mut mode = quant::interp::Mode::Float {
                            tensors: &tensors,
                            observe: None,
                        };
                        quant::interp::forward(&graph, &mut mode, x.values.clone(), n)?
                    }
                };
                (vec![n, values.len() / n.max(1)], values)
            } else {
                let x = Tensor::<B::InnerBackend, 4>::from_data(
                    TensorData::new(x.values.clone(), [n, c, xh, xw]),
                    device,
                );
                let logits = model.forward(x);
                let dims = logits.dims().to_vec();
                let values = logits
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap_or_default();
                (dims, values)
            };
            let mut out = Checkpoint::default();
            out.raw.insert(
                "logits".into(),
                params::Named {
                    shape: dims,
                    values,
                },
            );
            out.save(&output)
        }
        Command::Quantize {
            weights,
            data: dir,
            calibrate,
            method,
            output,
        } => {
            let graph = quant::graph(spec)?;
            let output = match (output, &weights.run) {
                (Some(o), _) => o,
                (None, Some(run)) => run.join("int8.safetensors"),
                (None, None) => return Err("give --output FILE for the int8 model (or --run RUN to write RUN/int8.safetensors)".into()),
            };
            let (path, tensors) = load_tensors(&weights)?;
            let train = data::load(&dir, Split::Train)?;
            data::check_classes(&train, spec.settings.classes, &dir)?;
            let examples = quant::calibration_set(&train, calibrate, &dir)?;
            let q = quant::quantize(spec, &graph, &tensors, &train, &examples, method)?;
            q.save(&output)?;
            let bytes = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let float: u64 = tensors.values().map(|t| 4 * t.values.len() as u64).sum();
            let summary = serde_json::json!({
                "int8": output.display().to_string(),
                "from": path.display().to_string(),
                "method": method.name(),
                "calibration_images": examples.len(),
                "int8_bytes": bytes(&output),
                "float_weight_bytes": float,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).expect("serializes")
            );
            Ok(())
        }
        Command::Bench {
            batch_size,
            steps,
            latency_runs,
            int8,
        } => {
            let plan = crate::bench::Plan {
                batch_size,
                steps,
                latency_runs,
            };
            let b = crate::bench::run::<B, M>(
                spec.name,
                spec.input,
                spec.settings.classes,
                plan,
                device,
            )?;
            let mut out = serde_json::to_value(&b).expect("serializes");
            if let Some(file) = int8 {
                let graph = quant::graph(spec)?;
                let q = QModel::load(&file, spec.name, &graph)?;
                let cmp = quant::bench::compare::<B::InnerBackend, M::InnerModule>(
                    spec, &graph, &q, plan, device,
                )?;
                out["int8"] = serde_json::to_value(&cmp).expect("serializes");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("serializes")
            );
            Ok(())
        }
        Command::Infer {
            weights,
            images,
            json,
            int8,
        } => {
            let classes = class_names(spec);
            let labels = if let Some(file) = int8 {
                let graph = quant::graph(spec)?;
                let q = QModel::load(&file, spec.name, &graph)?;
                images
                    .iter()
                    .map(|p| {
                        infer::label_with(p, spec.input, &classes, |x| {
                            quant::logits(&graph, &q, x, 1)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            } else {
                let model: M::InnerModule = load_model(&weights, device)?;
                images
                    .iter()
                    .map(|p| infer::label(&model, p, spec.input, &classes, device))
                    .collect::<Result<Vec<_>>>()?
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&labels).expect("serializes")
                );
            } else {
                for l in &labels {
                    println!("{}  ({:.1} ms)", l.image, l.milliseconds);
                    for (name, p) in &l.top {
                        println!("  {p:.4}  {name}");
                    }
                }
            }
            Ok(())
        }
    }
}

/// What a program built without the `cuda` feature says to `--device cuda`.
pub fn no_cuda(spec: &Spec) -> ExitCode {
    eprintln!(
        "error: this program was built without CUDA. Rebuild it with `netc build --cuda {}` \
         (needs the CUDA toolkit), or use --device cpu",
        Path::new(spec.file).display()
    );
    ExitCode::FAILURE
}

impl Cli {
    /// The generated program's arguments, so that it needs no clap of its own.
    pub fn parse_args() -> Self {
        Cli::parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("model").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn a_resume_needs_no_data_and_flags_left_out_stay_unset() {
        let Command::Train {
            data,
            seed,
            eval_every,
            log_every,
            ..
        } = parse(&["train", "--resume", "runs/tiny/1"]).unwrap()
        else {
            panic!("not train")
        };
        // Unset, so that a resume can tell them from values the user gave.
        assert_eq!(
            (data, seed, eval_every, log_every),
            (None, None, None, None)
        );
        let e = parse(&["train"]).unwrap_err().to_string();
        assert!(e.contains("--data"), "{e}");
    }

    #[test]
    fn recipe_flags_parse_and_bad_names_list_the_choices() {
        let Command::Train { recipe, .. } = parse(&[
            "train",
            "--data",
            "d",
            "--optimizer",
            "adamw",
            "--schedule",
            "cosine",
            "--lr-min",
            "0.001",
            "--warmup",
            "500",
            "--smoothing",
            "0.1",
        ])
        .unwrap() else {
            panic!("not train")
        };
        assert_eq!(recipe.optimizer, Some(Optimizer::Adamw));
        assert_eq!(recipe.schedule, Some(Schedule::Cosine));
        assert_eq!((recipe.warmup, recipe.smoothing), (Some(500), Some(0.1)));
        assert_eq!(recipe.momentum, None);
        let e = parse(&["train", "--data", "d", "--optimizer", "adamm"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sgd, momentum, nesterov, adam, adamw"), "{e}");
    }
}
