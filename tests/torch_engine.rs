//! netc's torch training engine (`netc emit --target pytorch-train`), run for
//! real on synthetic data: data parallelism that does not change results,
//! resumes that end where an uninterrupted run does, runs that netc's own
//! program reads, and bad input that gets a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Convolution, pooling, LRN, `fc` with weight decay: no batch norm or
/// dropout, whose per-process statistics and masks differ by design.
const SMALL: &str = "\
model small {
    input 12x12x3
    train steps=6 batch=7 decay=2
    conv1: conv 3x3 8 relu
    pool1: maxpool 3x3 /2
    norm1: lrn radius=2
    conv2: conv 3x3 8 /2 relu decay
    avg: avgpool 2x2 /1
    fc1: fc 16 relu decay
    logits: fc 10
}
";

use netc_tests::KITCHEN;

fn checked(source: &str) -> netc::Checked {
    netc::check(source)
        .unwrap_or_else(|d| panic!("{}", d.render("test.net", source, false)))
        .remove(0)
}

/// netc's own program for `source`, its crate in `dir/crates`.
fn program(dir: &Path, source: &str) -> (netc::Checked, PathBuf) {
    let c = checked(source);
    let build = netc::driver::Build {
        out: dir.join("crates").join(&c.model.name),
        target: netc::driver::target_dir(),
        cuda: false,
    };
    let binary = netc::driver::build("test.net", source, &c, &build).unwrap();
    (c, binary)
}

/// The engine's script for `source`, written into `dir`.
fn script(dir: &Path, source: &str) -> PathBuf {
    let c = checked(source);
    let text = netc::backend::pytorch::train_py(&c.model, source, "test.net").unwrap();
    let path = dir.join(format!("train_{}.py", c.model.name));
    std::fs::write(&path, text).unwrap();
    path
}

fn python(script: &Path, args: &[&str]) -> Output {
    Command::new(netc_tests::python_with_torch())
        .arg(script)
        .args(args)
        .output()
        .expect("python runs")
}

/// Runs the script, which must succeed; returns the run directory it reports.
fn train(script: &Path, args: &[&str]) -> PathBuf {
    let out = python(script, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the outcome is one JSON object");
    PathBuf::from(outcome["run"].as_str().unwrap())
}

type Tensors = BTreeMap<String, Vec<f32>>;

fn tensors(path: &Path) -> (Tensors, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let values = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect();
    let meta = meta.metadata().clone().unwrap_or_default();
    (values, meta.into_iter().collect())
}

/// The log's records, without the rate, which no two runs share.
fn log(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("examples_per_second");
            v
        })
        .collect()
}

fn data(dir: &Path) -> String {
    let data = dir.join("data");
    netc_tests::synthetic_cifar(&data, 60);
    data.display().to_string()
}

/// A 2-process Gloo run (loopback) ends with the weights of a 1-process run
/// with the same global batch and seed: each process takes its share of
/// every global batch, and its loss is weighted so that the mean of the
/// gradients is the global batch's. The batch of 7 splits unevenly, 4 and 3.
#[test]
fn two_processes_end_with_the_weights_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), SMALL);
    let data = data(dir.path());
    let runs = dir.path().join("runs").display().to_string();
    let common = [
        "--data",
        &data,
        "--runs",
        &runs,
        "--quiet",
        "--eval-every",
        "3",
    ];
    let one = train(&script, &[&common[..], &["--log-every", "1"]].concat());
    let two = train(
        &script,
        &[&common[..], &["--log-every", "1", "--nproc", "2"]].concat(),
    );
    let (a, meta_a) = tensors(&one.join("checkpoint.safetensors"));
    let (b, meta_b) = tensors(&two.join("checkpoint.safetensors"));
    assert_eq!(meta_a, meta_b);
    assert_eq!(meta_a["step"], "6");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.contains_key("ema/fc1.weight") && a.contains_key("conv2.bias"));
    let mut worst = 0f32;
    for (name, x) in &a {
        for (p, q) in x.iter().zip(&b[name]) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(worst <= 1e-5, "the runs differ by {worst}");
    // The weights moved: the comparison is not of two untrained models.
    let (init, _) = tensors(&one.join("checkpoint.safetensors"));
    assert!(init["conv1.weight"] != init["ema/conv1.weight"]);
    // Loss and accuracy are the global batch's, on both.
    let (la, lb) = (log(&one), log(&two));
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(x["step"], y["step"]);
        assert_eq!(x["accuracy"], y["accuracy"]);
        assert_eq!(x["test_accuracy"], y["test_accuracy"]);
        if let (Some(p), Some(q)) = (x["loss"].as_f64(), y["loss"].as_f64()) {
            assert!((p - q).abs() < 1e-5, "loss {p} vs {q}");
        }
    }
}

/// A run stopped at step 3 and resumed to step 6 writes the bytes an
/// uninterrupted run writes, and its log holds each line once: with Adam
/// (warm-up, label smoothing) and with Nesterov momentum (step schedule),
/// whose state the checkpoint carries. (The seed's SGD: the SIGKILL test.)
#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    for recipe in [
        &[
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--warmup",
            "4",
            "--smoothing",
            "0.1",
        ][..],
        &[
            "--optimizer",
            "nesterov",
            "--schedule",
            "step",
            "--lr-every",
            "2",
        ][..],
    ] {
        resumes_exactly(recipe);
    }
}

fn resumes_exactly(recipe: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), SMALL);
    let data = data(dir.path());
    let runs = dir.path().join("runs").display().to_string();
    let common = [
        &[
            "--data",
            &data,
            "--runs",
            &runs,
            "--quiet",
            "--log-every",
            "1",
        ][..],
        recipe,
    ]
    .concat();
    let whole = train(&script, &[&common[..], &["--eval-every", "2"]].concat());
    let part = train(
        &script,
        &[&common[..], &["--eval-every", "2", "--steps", "3"]].concat(),
    );
    let part_str = part.display().to_string();
    let resumed = train(&script, &["--resume", &part_str, "--steps", "6", "--quiet"]);
    assert_eq!(resumed, part);
    assert_eq!(
        std::fs::read(whole.join("checkpoint.safetensors")).unwrap(),
        std::fs::read(part.join("checkpoint.safetensors")).unwrap()
    );
    // The end-of-run evaluation at step 3 stays: it is the part's own.
    let mut want = log(&whole);
    let at3 = log(&part)
        .into_iter()
        .find(|v| v["step"] == 3 && v.get("test_accuracy").is_some())
        .unwrap();
    want.insert(
        want.iter().position(|v| v["step"] == 4).unwrap(),
        at3.clone(),
    );
    assert_eq!(log(&part), want);
    // Settings name the engine; the burn program ignores the field.
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["engine"], "torch");
    assert_eq!(settings["settings"]["steps"], 6);
    assert_eq!(settings["settings"]["optimizer"].as_str(), Some(recipe[1]));
    // The state is in the checkpoint, under netc's names.
    let (ck, meta) = tensors(&part.join("checkpoint.safetensors"));
    assert_eq!(meta["optimizer"], recipe[1]);
    let slot = if recipe[1] == "adam" { "m" } else { "momentum" };
    assert!(
        ck.contains_key(&format!("optim/{slot}/conv1.weight")),
        "{:?}",
        ck.keys()
    );
}

/// One step of each optimizer, the schedules' rates and smoothing's loss in
/// the torch engine: the hand-computed values that runtime/src/optim.rs
/// checks netc's own program against.
#[test]
fn optimizers_schedules_and_smoothing_give_the_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), SMALL);
    let out = Command::new(netc_tests::python_with_torch())
        .args(["-c", HAND_COMPUTED])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "checked 15");
}

const HAND_COMPUTED: &str = r#"
import importlib.util, math, sys
import torch
spec = importlib.util.spec_from_file_location("engine", sys.argv[1])
e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e)
checked = 0

def close(got, want, what):
    global checked
    assert abs(got - want) < 1e-6, f"{what}: {got} != {want}"
    checked += 1

class One(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0]))

def run(optimizer, steps):
    # From w = 1 with gradient 0.5 at lr 0.1; AdamW decays w with factor 0.5.
    s = dict(e.SEED_RECIPE, optimizer=optimizer, learning_rate=0.1, decay=0.5, steps=100)
    m = One()
    opt = e.make_optimizer(m, s, [m.w])
    for t in range(steps):
        opt.zero_grad()
        (m.w * 0.5).sum().backward()
        for g in opt.param_groups:
            g["lr"] = e.lr_at(s, t)
        opt.step()
    return m.w.item()

close(run("sgd", 1), 0.95, "sgd")
close(run("momentum", 1), 0.95, "momentum")
close(run("momentum", 2), 0.855, "momentum, 2 steps")
close(run("nesterov", 1), 0.905, "nesterov")
close(run("adam", 1), 1 - 0.1 * 0.5 / (0.5 + 1e-8), "adam")
close(run("adam", 2), 1 - 0.2 * 0.5 / (0.5 + 1e-8), "adam, 2 steps")
close(run("adamw", 1), 0.95 - 0.1 * 0.5 / (0.5 + 1e-8), "adamw")

base = dict(e.SEED_RECIPE, learning_rate=0.1, steps=100)
step = dict(base, schedule="step", lr_every=30)
for t, want in ((0, 0.1), (30, 0.01), (99, 0.0001)):
    close(e.lr_at(step, t), want, f"step at {t}")
cosine = dict(base, schedule="cosine", lr_min=0.01)
for t, want in ((50, 0.055), (100, 0.01)):
    close(e.lr_at(cosine, t), want, f"cosine at {t}")
warm = dict(cosine, warmup=10)
close(e.lr_at(warm, 0), 0.01, "warm-up at 0")
close(e.lr_at(warm, 4), 0.5 * e.lr_at(cosine, 4), "warm-up at 4")

# p = 0.25, 0.5, 0.25; label 0: -log p = ln 4, the mean of -log p is 5/3 ln 2.
logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
y = torch.tensor([0])
ln2 = math.log(2.0)
close(e.cross_entropy(logits, y, dict(base, smoothing=0.1)).item(),
      0.9 * 2 * ln2 + 0.1 * 5 / 3 * ln2, "smoothing")
print("checked", checked)
"#;

/// A torch-engine run is an ordinary netc run: netc's own program evaluates
/// its checkpoint to the accuracy the engine reported, for a model with
/// every layer kind (batch norm and dropout too) trained by two processes,
/// and for a model whose names Python and Rust reserve; and it resumes the
/// run with the AdamW state the engine saved.
#[test]
fn netc_programs_read_torch_runs_and_agree_on_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let runs = dir.path().join("runs").display().to_string();
    let hostile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/hostile.net"))
            .unwrap();
    for (source, nproc) in [(KITCHEN, "2"), (hostile.as_str(), "1")] {
        let script = script(dir.path(), source);
        let run = train(
            &script,
            &[
                "--data",
                &data,
                "--runs",
                &runs,
                "--quiet",
                "--steps",
                "4",
                "--nproc",
                nproc,
                "--batch-size",
                "16",
                "--augment",
                "on",
                // Its state, under .net names (keywords too), goes on in netc's program.
                "--optimizer",
                "adamw",
                "--lr",
                "0.01",
            ],
        );
        let reported = log(&run)
            .iter()
            .rev()
            .find_map(|v| v["test_accuracy"].as_f64())
            .unwrap();
        let (c, program) = program(dir.path(), source);
        let out = Command::new(&program)
            .args(["eval", "--data", &data, "--json", "--run"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            eval["accuracy"].as_f64().unwrap(),
            reported,
            "{}: netc's program and the torch engine disagree",
            c.model.name
        );
        // And it goes on training with netc's program, from the checkpoint.
        let out = Command::new(&program)
            .args(["train", "--quiet", "--steps", "5", "--resume"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A run killed with SIGKILL while it checkpoints every step loses nothing
/// but the step it was in: resumed, it writes the bytes of a run never
/// killed (checkpoints and the log are written whole or not at all).
#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), SMALL);
    let data = data(dir.path());
    let runs = dir.path().join("runs").display().to_string();
    let common = [
        "--data",
        &data,
        "--runs",
        &runs,
        "--quiet",
        "--steps",
        "60",
        "--log-every",
        "1",
        "--checkpoint-secs",
        "0",
        "--threads",
        "1",
    ];
    let whole = train(&script, &common);
    let mut child = Command::new(netc_tests::python_with_torch())
        .arg(&script)
        .args(common)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed = Path::new(&runs).join("small/2");
    let start = std::time::Instant::now();
    // Killed once a few steps are done, in the middle of the run.
    while std::fs::read_to_string(killed.join("log.jsonl")).map_or(0, |l| l.lines().count()) < 15 {
        assert!(start.elapsed().as_secs() < 300, "the run made no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, meta) = tensors(&killed.join("checkpoint.safetensors"));
    let at: u64 = meta["step"].parse().unwrap();
    assert!(at < 60, "the run ended before it was killed");
    let killed_str = killed.display().to_string();
    train(
        &script,
        &["--resume", &killed_str, "--quiet", "--threads", "1"],
    );
    assert_eq!(
        std::fs::read(whole.join("checkpoint.safetensors")).unwrap(),
        std::fs::read(killed.join("checkpoint.safetensors")).unwrap()
    );
    assert_eq!(log(&whole), log(&killed));
    let leftovers: Vec<_> = std::fs::read_dir(&killed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The GPU options run on a CPU too: channels-last activations and bfloat16
/// autocast train and write float32 weights under the same names.
#[test]
fn channels_last_and_bf16_write_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), KITCHEN);
    let data = data(dir.path());
    let runs = dir.path().join("runs").display().to_string();
    let common = ["--data", &data, "--runs", &runs, "--quiet", "--steps", "2"];
    let plain = train(&script, &common);
    let fast = train(
        &script,
        &[&common[..], &["--channels-last", "--bf16"]].concat(),
    );
    let (a, _) = tensors(&plain.join("checkpoint.safetensors"));
    let (b, _) = tensors(&fast.join("checkpoint.safetensors"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, x) in &a {
        assert_eq!(x.len(), b[name].len(), "{name}");
        assert!(b[name].iter().all(|v| v.is_finite()), "{name}");
    }
}

fn fails(out: &Output, want: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for w in want {
        assert!(err.contains(w), "no `{w}` in: {err}");
    }
    assert!(!err.contains("Traceback"), "{err}");
}

/// Bad data, runs and settings are refused with netc's messages, naming the
/// file, and with exit status 1; nothing is left half-made.
#[test]
fn bad_input_gets_netc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), SMALL);
    let data = data(dir.path());
    let runs = dir.path().join("runs");
    let runs_str = runs.display().to_string();
    let run = |args: &[&str]| python(&script, &[&["--runs", &runs_str][..], args].concat());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &run(&["--data", &empty.display().to_string()]),
        &["empty: no CIFAR-10 data found", "netc data cifar10"],
    );
    // A batch file cut short, and a label past the classes.
    let cut = dir.path().join("cut");
    netc_tests::synthetic_cifar(&cut, 20);
    let bytes = std::fs::read(cut.join("data_batch_2.bin")).unwrap();
    std::fs::write(cut.join("data_batch_2.bin"), &bytes[..bytes.len() - 5]).unwrap();
    fails(
        &run(&["--data", &cut.display().to_string()]),
        &[
            "data_batch_2.bin",
            "not a whole number of 3073-byte records",
        ],
    );
    let mut bytes = bytes;
    bytes[3073 * 4] = 12;
    std::fs::write(cut.join("data_batch_2.bin"), &bytes).unwrap();
    fails(
        &run(&["--data", &cut.display().to_string()]),
        &["data_batch_2.bin: record 4 has label 12, but there are 10 classes"],
    );
    // Image folders whose splits hold different classes.
    let folders = dir.path().join("folders");
    for (split, class) in [("train", "cat"), ("train", "dog"), ("test", "cat")] {
        let d = folders.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        image::RgbImage::new(32, 32).save(d.join("0.png")).unwrap();
    }
    fails(
        &run(&["--data", &folders.display().to_string()]),
        &["hold different classes", "test lacks dog"],
    );
    assert!(!runs.exists(), "a run was made for data that failed");

    // More processes than examples in a batch.
    fails(
        &run(&["--data", &data, "--batch-size", "1", "--nproc", "2"]),
        &["the batch of 1 is smaller than the 2 processes"],
    );
    // A run of another model, and flags that contradict a run.
    let good = train(&script, &["--data", &data, "--runs", &runs_str, "--quiet"]);
    let other = script_of_another_model(dir.path());
    let good_str = good.display().to_string();
    fails(
        &python(&other, &["--resume", &good_str]),
        &["a run of model small, not tuto"],
    );
    fails(
        &run(&[
            "--resume",
            &good_str,
            "--lr",
            "0.5",
            "--augment",
            "off",
            "--optimizer",
            "adam",
        ]),
        &[
            "--lr 0.5 (the run uses 0.1)",
            "--augment off (the run uses on)",
            "--optimizer adam (the run uses sgd)",
        ],
    );
    // A settings.json from before the optimizer settings means the seed's recipe.
    let saved = good.join("settings.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    for key in ["optimizer", "momentum", "schedule", "warmup", "smoothing"] {
        assert!(json["settings"]
            .as_object_mut()
            .unwrap()
            .remove(key)
            .is_some());
    }
    std::fs::write(&saved, json.to_string()).unwrap();
    train(&script, &["--resume", &good_str, "--quiet", "--steps", "7"]);
    // Values no run can use, with the messages of netc's program.
    fails(
        &run(&["--data", &data, "--momentum", "1.5", "--schedule", "step"]),
        &["--momentum 1.5 is not in [0, 1)", "give --lr-every N"],
    );
    // Weights that are not numbers.
    let ck = good.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let bad = dir.path().join("nan.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    fails(
        &run(&["--data", &data, "--init-from", &bad.display().to_string()]),
        &["nan.safetensors: tensors hold NaN or infinite values"],
    );
    // Usage errors are argparse's: status 2.
    let out = run(&["--data", &data, "--nproc", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nproc must be at least 1"));
}

fn script_of_another_model(dir: &Path) -> PathBuf {
    let source = std::fs::read_to_string(netc_tests::root().join("zoo/tuto.net")).unwrap();
    script(dir, &source)
}

/// A run that averages its weights evaluates and saves them with batch
/// norm's statistics measured for them (runtime/src/statistics.rs, and
/// `measure_statistics` in the torch engine), not the live weights' ones.
/// Both engines must give the statistics of the averaged `conv1`'s outputs,
/// computed here by hand:
/// - with a batch of the whole training set, every measuring batch holds
///   every image: the mean, and the variance as each engine's training keeps
///   it (netc's program divides by the count, PyTorch by the count less one);
/// - with a batch of 60, the 40 measuring batches cover the 300 images 8
///   times over, so only a plain mean of their means gives the data's mean,
///   and their variances average to at most the data's.
#[test]
fn averaged_weights_get_batch_norm_statistics_measured_for_them() {
    const SOURCE: &str = "model bnstat {\n    input 8x8x3\n    \
        train steps=3 batch=300 augment=off\n    \
        conv1: conv 1x1 4\n    bn: batchnorm\n    logits: fc 10\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let images = 300; // data() writes its 60 images into each of 5 training files
    let script = script(dir.path(), SOURCE);
    let torch_runs = dir.path().join("torch-runs").display().to_string();
    let (_, program) = program(dir.path(), SOURCE);
    let runs = dir.path().join("netc-runs");
    let ok = |args: &[&str]| {
        let out = Command::new(&program).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        String::from_utf8(out.stdout).unwrap()
    };
    // The standardized inputs: the synthetic images are flat per channel.
    let pixels: Vec<[f64; 3]> = (0..images)
        .map(|i| {
            let v = [0u8, 1, 2].map(|p| f64::from(netc_tests::synthetic_value(i % 60, p)));
            let mean = v.iter().sum::<f64>() / 3.0;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
            v.map(|x| (x - mean) / std.max(1.0 / 192f64.sqrt()))
        })
        .collect();
    for (n, batch) in [(1, "300"), (2, "60")] {
        let flags = ["--data", &data, "--quiet", "--batch-size", batch];
        let torch_run = train(&script, &[&flags[..], &["--runs", &torch_runs]].concat());
        ok(&[&["train"][..], &flags, &["--runs", runs.to_str().unwrap()]].concat()[..]);
        let netc_run = runs.join(format!("bnstat/{n}"));
        // netc's evaluation of the saved run gives the accuracy its training logged.
        let eval: serde_json::Value = serde_json::from_str(&ok(&[
            "eval",
            "--data",
            &data,
            "--json",
            "--run",
            netc_run.to_str().unwrap(),
        ]))
        .unwrap();
        let logged = log(&netc_run)
            .iter()
            .rev()
            .find_map(|v| v["test_accuracy"].as_f64())
            .unwrap();
        assert_eq!(eval["accuracy"].as_f64().unwrap(), logged);

        for (engine, run, unbiased) in [("torch", &torch_run, true), ("netc", &netc_run, false)] {
            let (t, _) = tensors(&run.join("checkpoint.safetensors"));
            let (w, b) = (&t["ema/conv1.weight"], &t["ema/conv1.bias"]);
            let mut apart = 0.0f64;
            for ch in 0..4 {
                let out: Vec<f64> = pixels
                    .iter()
                    .map(|x| {
                        let sum = (0..3).map(|p| f64::from(w[ch * 3 + p]) * x[p]);
                        f64::from(b[ch]) + sum.sum::<f64>()
                    })
                    .collect();
                let mean = out.iter().sum::<f64>() / images as f64;
                let mut var = out.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / images as f64;
                let what = format!("{engine}, batch {batch}, channel {ch}");
                let got = |stat: &str| f64::from(t[&format!("ema/bn.{stat}")][ch]);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
                assert!(
                    close(got("running_mean"), mean),
                    "{what}: mean {}, the averaged weights give {mean}",
                    got("running_mean")
                );
                let count = (batch.parse::<usize>().unwrap() * 64) as f64;
                if unbiased {
                    var *= count / (count - 1.0);
                }
                let v = got("running_var");
                if batch == "300" {
                    assert!(close(v, var), "{what}: variance {v}, want {var}");
                } else {
                    assert!(
                        v <= var * (1.0 + 1e-4) && v > 0.5 * var,
                        "{what}: variance {v}, data's {var}"
                    );
                }
                for (stat, want) in [("running_mean", mean), ("running_var", var)] {
                    let live = f64::from(t[&format!("bn.{stat}")][ch]);
                    apart = apart.max((live - want).abs());
                }
            }
            // Three steps at TensorFlow's momentum 0.99 leave the live ones
            // near their start (0 and 1), far from the measured ones.
            assert!(
                apart > 1e-2,
                "{engine}: the live statistics are the measured ones"
            );
        }
    }
}
