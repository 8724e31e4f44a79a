//! `netc export`: the ONNX file of every zoo model and of two models that
//! hold every layer kind, run by tract (pure Rust) and by onnxruntime
//! (Python, after `onnx.checker`), gives netc's program's logits on the
//! same weights and inputs; the preprocessing graph labels raw images as
//! `netc infer` does, with a run's averaged or raw weights; bad requests
//! get errors naming the file, and write nothing.

mod built;

use built::{noise, ok, Program, Tensors};
use netc::export::{export, Export, Source};
use netc_tests::programs;
use safetensors::tensor::Dtype;
use std::path::{Path, PathBuf};
use std::process::Command;
use tract_onnx::prelude::*;

/// What KITCHEN leaves out: a non-square kernel and stride with odd sizes,
/// a depthwise multiplier, valid pooling, `same` average pooling with its
/// extra column after, LRN with every parameter set, a kernel larger than
/// its 2x3 map (padding wider than the map), batch norm, concat and add on
/// vectors, a ReLU line, a number of classes other than 10.
const ODDS: &str = "\
model odds {
    input 13x11x3
    train classes=6

    a: conv 3x5 8 /2 relu
    b: dwconv 3x3 mult=2 nobias
    n: lrn radius=1 bias=2 alpha=0.1 beta=0.5
    m: maxpool 2x2 /1 valid
    p: avgpool 2x2 /2
    q: avgpool 2x1 /1 valid
    wide: conv 6x6 8 relu
    f1: fc 12
    bn: batchnorm relu
    concat {
        g: fc 5
        {
            h: fc 3
            relu
        }
    }
    add {
        identity
        k: fc 8
    }
    drop: dropout
    out: fc 6
}
";

/// A folder for the tests' program crates. A temporary one: cargo keys a
/// program by its model's name, not its folder, so crates left in a fixed
/// folder would make another test's model of the same name (tests/torch_engine.rs
/// has its own `kitchen`) look built already.
fn programs() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs an ONNX file with tract on one input; the logits, row-major.
fn tract_try(path: &Path, input: Tensor) -> Result<Vec<f32>, String> {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract cannot load {}: {e:?}", path.display()))?;
    let out = model
        .run(tvec!(input.into()))
        .map_err(|e| format!("tract cannot run {}: {e:?}", path.display()))?;
    let logits = out[0].to_array_view::<f32>().map_err(|e| e.to_string())?;
    Ok(logits.iter().copied().collect())
}

fn tract_run(path: &Path, input: Tensor) -> Vec<f32> {
    tract_try(path, input).unwrap_or_else(|e| panic!("{e}"))
}

/// The largest difference between `got` and `want`, relative to the
/// largest logit; fails above 1e-4. The logits must be worth comparing:
/// not all near zero, and not the same for every image.
fn close(what: &str, got: &[f32], want: &[f32], classes: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        scale >= 0.1,
        "{what}: the logits are all near zero: {want:?}"
    );
    if want.len() > classes {
        let spread = want[..classes]
            .iter()
            .zip(&want[classes..])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            spread >= 1e-3 * scale,
            "{what}: every image gets the same logits"
        );
    }
    let worst = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(
        worst <= 1e-4,
        "{what}: differs by {worst:e} of the largest logit\n got {got:?}\nwant {want:?}"
    );
    worst
}

fn export_ok(program: &Program, source: &str, request: &Export) {
    let name = &program.checked.model.name;
    export(&format!("{name}.net"), source, &program.checked, request)
        .unwrap_or_else(|e| panic!("export of {name}: {e}"));
}

/// Every model: tract's logits match the program's; then the same files
/// through `onnx.checker` and onnxruntime.
#[test]
fn exported_models_give_the_programs_logits_in_tract_and_onnxruntime() {
    let mut models = netc_tests::net_files("zoo");
    models.push((
        "kitchen".into(),
        "kitchen.net".into(),
        netc_tests::KITCHEN.into(),
    ));
    models.push(("odds".into(), "odds.net".into(), ODDS.into()));
    let out = tempfile::tempdir().unwrap();
    let crates = programs();
    let mut python_args = Vec::new();
    for (stem, file, source) in &models {
        let program = built::build(crates.path(), file, source);
        let dir = out.path().join(stem);
        std::fs::create_dir_all(&dir).unwrap();
        let weights = dir.join("weights.safetensors");
        program.weights(&dir, &weights);
        let [h, w, c] = program.checked.model.input.hwc().map(|v| v as usize);
        let n = 3;
        let input: Vec<f32> = noise(7, n * c * h * w).iter().map(|v| 1.7 * v).collect();
        let want = program.forward(&dir, &weights, &input, n);

        let onnx = dir.join(format!("{stem}.onnx"));
        let request = Export {
            weights: Source::File(weights.clone()),
            raw: false,
            preprocessing: false,
            out: onnx.clone(),
        };
        export_ok(&program, source, &request);
        let x = tract_ndarray::Array4::from_shape_vec((n, c, h, w), input.clone()).unwrap();
        let got = tract_run(&onnx, x.into());
        let classes = program.checked.model.settings.classes as usize;
        let worst = close(&format!("{stem} in tract"), &got, &want, classes);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        eprintln!("{stem}: tract within {worst:.1e} of netc's program's largest logit, {scale:.2}");
        // A batch of one: the batch dimension is free.
        let one = tract_ndarray::Array4::from_shape_vec((1, c, h, w), input[..c * h * w].to_vec());
        close(
            &format!("{stem} in tract, batch 1"),
            &tract_run(&onnx, one.unwrap().into()),
            &want[..classes],
            classes,
        );
        for f in [
            &onnx,
            &dir.join("input.safetensors"),
            &dir.join("logits.safetensors"),
        ] {
            python_args.push(f.display().to_string());
        }
    }
    let python = netc_tests::python_with_onnx();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx_check.py");
    let run = Command::new(python)
        .arg(script)
        .args(&python_args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "onnxruntime differs:\n{text}");
    assert_eq!(text.matches(" ok: ").count(), models.len(), "{text}");
    eprintln!("{}", text.trim());
}

/// A 32 x 32 RGB image, as bytes and as a PNG file.
fn image(dir: &Path, name: &str, pixels: Vec<u8>) -> PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_raw(32, 32, pixels)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// The five likeliest classes `netc infer` gives for `png`.
fn infer(program: &Program, run: &Path, png: &Path, raw: bool) -> Vec<(String, f64)> {
    let (run, png) = (run.display().to_string(), png.display().to_string());
    let mut args = vec!["infer", "--run", &run, "--json"];
    if raw {
        args.push("--raw");
    }
    args.push(&png);
    let labels: serde_json::Value = serde_json::from_str(&ok(&program.binary, &args)).unwrap();
    labels[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().to_string(), t[1].as_f64().unwrap()))
        .collect()
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// Runs a preprocessing export with tract on a uint8 image.
fn tract_image(onnx: &Path, pixels: &[u8]) -> Vec<f32> {
    let x = tract_ndarray::Array4::from_shape_vec((1, 32, 32, 3), pixels.to_vec()).unwrap();
    tract_run(onnx, x.into())
}

/// A trained run exported with `--with-preprocessing` labels raw images as
/// `netc infer` labels the same images as PNG files (the central crop and
/// standardization of the runtime's evaluation), with the averaged weights
/// by default and the raw ones with `--raw`; then bad requests.
#[test]
fn preprocessing_and_run_weights_match_netc_infer_and_bad_requests_write_nothing() {
    let source = netc_tests::KITCHEN;
    let crates = programs();
    let program = built::build(crates.path(), "kitchen.net", source);
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    netc_tests::synthetic_cifar(&dir.path().join("data"), 100);
    ok(
        &program.binary,
        &[
            "train",
            "--data",
            &p("data"),
            "--runs",
            &p("runs"),
            "--steps",
            "8",
            "--eval-every",
            "0",
            "--quiet",
        ],
    );
    let run = dir.path().join("runs/kitchen/1");

    let random: Vec<u8> = noise(3, 32 * 32 * 3)
        .iter()
        .map(|v| ((v + 1.0) * 127.9) as u8)
        .collect();
    // A flat image: its standard deviation is 0, so the floor 1/sqrt(N) divides.
    let flat = vec![90u8; 32 * 32 * 3];
    for raw in [false, true] {
        let onnx = dir.path().join(format!("kitchen-raw-{raw}.onnx"));
        let request = Export {
            weights: Source::Run(run.clone()),
            raw,
            preprocessing: true,
            out: onnx.clone(),
        };
        let written = export("kitchen.net", source, &program.checked, &request).unwrap();
        assert_eq!(written.averaged, !raw);
        for (name, pixels) in [("random.png", &random), ("flat.png", &flat)] {
            let png = image(dir.path(), name, pixels.clone());
            let want = infer(&program, &run, &png, raw);
            let probs = softmax(&tract_image(&onnx, pixels));
            let classes = netc::backend::onnx::class_names(10);
            let mut worst = 0.0f64;
            for (class, p) in &want {
                let i = classes.iter().position(|c| c == class).unwrap();
                worst = worst.max((probs[i] - p).abs());
                assert!(
                    (probs[i] - p).abs() <= 1e-6,
                    "{name}, raw {raw}: {class} is {} in tract, {p} in netc infer",
                    probs[i]
                );
            }
            eprintln!("{name}, raw {raw}: tract within {worst:.1e} of netc infer: {want:?}");
        }
    }
    // The averaged and the raw weights of a short run differ.
    let a = tract_image(&dir.path().join("kitchen-raw-false.onnx"), &random);
    let b = tract_image(&dir.path().join("kitchen-raw-true.onnx"), &random);
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4));

    bad_requests(&program, &run, dir.path());
}

/// Nothing in `dir` but what was there before.
fn unchanged(dir: &Path, before: &[String]) {
    let mut now: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    now.sort();
    assert_eq!(now, before, "a failed export left files behind");
}

fn bad_requests(kitchen: &Program, run: &Path, dir: &Path) {
    let out = dir.join("model.onnx");
    let listing = || {
        let mut l: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        l.sort();
        l
    };
    let before = listing();
    let request = |weights: Source| Export {
        weights,
        raw: false,
        preprocessing: false,
        out: out.clone(),
    };
    let odds = netc::check(ODDS).unwrap().remove(0);

    // A run of another model.
    let e = export(
        "odds.net",
        ODDS,
        &odds,
        &request(Source::Run(run.to_path_buf())),
    )
    .unwrap_err();
    assert!(
        e.contains(&run.display().to_string()) && e.contains("a run of model kitchen, not odds"),
        "{e}"
    );
    unchanged(dir, &before);

    // That run's checkpoint given as a file: every missing tensor is named.
    let ck = run.join("checkpoint.safetensors");
    let e = export("odds.net", ODDS, &odds, &request(Source::File(ck.clone()))).unwrap_err();
    assert!(e.contains(&ck.display().to_string()), "{e}");
    assert!(e.contains("does not fit model odds"), "{e}");
    assert!(
        e.contains("no tensor `ema/a.weight`") && e.contains("no tensor `ema/out.bias`"),
        "{e}"
    );
    unchanged(dir, &before);

    // Weights with a tensor missing and one of another shape.
    let mut tensors: Tensors = built::read(&ck)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("ema/"))
        .collect();
    tensors.remove("mix1.bn1.running_var");
    tensors.get_mut("logits.weight").unwrap().0 = vec![10, 16];
    let broken = dir.join("broken.safetensors");
    built::write(&broken, &tensors);
    let before = listing();
    let e = export(
        "kitchen.net",
        netc_tests::KITCHEN,
        &kitchen.checked,
        &request(Source::File(broken.clone())),
    )
    .unwrap_err();
    assert!(e.contains(&broken.display().to_string()), "{e}");
    assert!(e.contains("no tensor `mix1.bn1.running_var`"), "{e}");
    assert!(
        e.contains("`logits.weight` has shape [10, 16], the model needs [16, 10]"),
        "{e}"
    );
    unchanged(dir, &before);

    // A file that is not safetensors, and one that holds integers.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a weight file").unwrap();
    let ints = dir.join("ints.safetensors");
    built::write_raw(&ints, &[("a".into(), Dtype::I32, vec![1], vec![0; 4])]);
    let before = listing();
    for (bad, why) in [
        (&junk, "not a valid safetensors file"),
        (&ints, "netc reads F32 and F64"),
    ] {
        let e = export(
            "kitchen.net",
            netc_tests::KITCHEN,
            &kitchen.checked,
            &request(Source::File(bad.clone())),
        )
        .unwrap_err();
        assert!(
            e.contains(&bad.display().to_string()) && e.contains(why),
            "{e}"
        );
    }
    unchanged(dir, &before);

    // A folder that is not a run.
    let e = export(
        "kitchen.net",
        netc_tests::KITCHEN,
        &kitchen.checked,
        &request(Source::Run(dir.join("data"))),
    )
    .unwrap_err();
    assert!(e.contains("not a run directory"), "{e}");

    // An output path in a missing folder: nothing is created, not even the folder.
    let missing = dir.join("no/such/folder/model.onnx");
    let mut r = request(Source::Run(run.to_path_buf()));
    r.out = missing.clone();
    let e = export("kitchen.net", netc_tests::KITCHEN, &kitchen.checked, &r).unwrap_err();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("does not exist"),
        "{e}"
    );
    assert!(!dir.join("no").exists());
    unchanged(dir, &before);

    // An output that cannot be written (a folder stands there): no temporary file stays.
    let blocked = dir.join("blocked.onnx");
    std::fs::create_dir(&blocked).unwrap();
    let before = listing();
    let mut r = request(Source::Run(run.to_path_buf()));
    r.out = blocked.clone();
    let e = export("kitchen.net", netc_tests::KITCHEN, &kitchen.checked, &r).unwrap_err();
    assert!(
        e.contains(&blocked.display().to_string()) && e.contains("cannot write"),
        "{e}"
    );
    unchanged(dir, &before);

    // A model whose input the preprocessing cannot crop from 32 x 32 images.
    let big = netc::check("model big {\n input 40x40x3\n avgpool global\n fc 10\n}\n")
        .unwrap()
        .remove(0);
    let mut r = request(Source::File(junk.clone()));
    r.preprocessing = true;
    let e = export("big.net", "", &big, &r).unwrap_err();
    assert!(e.contains("model big takes 40x40x3"), "{e}");
    unchanged(dir, &before);
}

/// Weights for any checked model, by `.net` path: noise at the scale that
/// keeps activations' size (1 / fan-in variance), variances positive.
fn random_weights(layout: &netc::proc::layout::Layout, seed: usize) -> Tensors {
    netc::proc::sizes::tensors(layout)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n: usize = shape.iter().product();
            let v = noise(seed * 1000 + i, n);
            let fan_in = match (name.rsplit('.').next().unwrap(), shape.len()) {
                ("weight", 4) => shape[1..].iter().product::<usize>(),
                ("weight", _) => shape[0],
                _ => 3,
            };
            let scale = (3.0 / fan_in as f32).sqrt();
            let values = match name.rsplit('.').next().unwrap() {
                "running_var" => v.iter().map(|r| 0.5 + r.abs()).collect(),
                "gamma" => v.iter().map(|r| 1.0 + 0.2 * r).collect(),
                _ => v.iter().map(|r| r * scale).collect(),
            };
            (name, (shape, values))
        })
        .collect()
}

/// Random valid programs (`netc_tests::programs`: every layer kind, blocks,
/// branches, repetition, hostile names) export to files that tract runs,
/// that pass `onnx.checker`, and that give tract's logits in onnxruntime
/// and in the PyTorch module `netc emit --target pytorch` writes, loaded
/// with the same weights. `NETC_RANDOM_ONNX=N` runs N programs (default
/// 60) from seed `NETC_RANDOM_SEED` (default 1).
#[test]
fn random_valid_programs_run_alike_in_tract_onnxruntime_and_pytorch() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map_or(default, |v| v.parse().expect("a whole number"))
    };
    let count = env("NETC_RANDOM_ONNX", 60);
    let base = env("NETC_RANDOM_SEED", 1);
    let python = netc_tests::python_with_onnx();
    netc_tests::python_with_torch();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    let mut failures = Vec::new();
    let mut sources = std::collections::HashMap::new();
    let mut models = 0;
    for seed in base..base + count {
        let program = programs::generate_with(seed, programs::Names::Hostile);
        let source = &program.source;
        let Ok(checked) = netc::check(source) else {
            // Block calls that differ in structure may be refused; the
            // random-program test checks that nothing else is.
            continue;
        };
        for (j, c) in checked.iter().enumerate() {
            models += 1;
            let id = format!("s{seed}_m{j}");
            let p = |ext: &str| dir.path().join(format!("{id}.{ext}"));
            let weights = random_weights(&c.layout, seed as usize);
            built::write(&p("weights.safetensors"), &weights);
            let request = Export {
                weights: Source::File(p("weights.safetensors")),
                raw: false,
                preprocessing: false,
                out: p("onnx"),
            };
            if let Err(e) = export("random.net", source, c, &request) {
                failures.push(format!("seed {seed}, model {}: export: {e}", c.model.name));
                continue;
            }
            let [h, w, ch] = c.model.input.hwc().map(|v| v as usize);
            let input = noise(seed as usize, ch * h * w);
            let x = tract_ndarray::Array4::from_shape_vec((1, ch, h, w), input.clone()).unwrap();
            let logits = match tract_try(&p("onnx"), x.into()) {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("seed {seed}, model {}: {e}", c.model.name));
                    continue;
                }
            };
            let classes = c.model.settings.classes as usize;
            if logits.len() != classes || logits.iter().any(|v| !v.is_finite()) {
                failures.push(format!("seed {seed}: tract gives {logits:?}"));
                continue;
            }
            let t = |name: &str, shape: Vec<usize>, v: Vec<f32>| -> Tensors {
                [(name.to_string(), (shape, v))].into()
            };
            built::write(
                &p("input.safetensors"),
                &t("input", vec![1, ch, h, w], input),
            );
            built::write(
                &p("logits.safetensors"),
                &t("logits", vec![1, classes], logits),
            );
            let module = netc::backend::pytorch::module_py(&c.model, source, "random.net").unwrap();
            std::fs::write(p("py"), module).unwrap();
            let s = |ext: &str| p(ext).display().to_string();
            let entry = serde_json::json!({
                "id": id, "onnx": s("onnx"), "module": s("py"), "weights": s("weights.safetensors"),
                "input": s("input.safetensors"), "logits": s("logits.safetensors"),
            });
            manifest += &format!("{entry}\n");
            sources.insert(id, (seed, source.clone()));
        }
    }
    let list = dir.path().join("manifest.jsonl");
    std::fs::write(&list, &manifest).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx_random.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&list)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut answered = 0;
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        answered += 1;
        let (seed, source) = &sources[v["id"].as_str().unwrap()];
        let bad = match (v["onnxruntime"].as_f64(), v["pytorch"].as_f64()) {
            (Some(a), Some(b)) if a <= 1e-4 && b <= 1e-4 => continue,
            (Some(a), Some(b)) => format!("onnxruntime differs by {a:e}, PyTorch by {b:e}"),
            _ => v["error"].to_string(),
        };
        failures.push(format!("seed {seed}: {bad}\n{source}"));
    }
    assert_eq!(answered, sources.len(), "Python answered for every file");
    eprintln!(
        "{count} random programs, {models} models: {} exported and compared",
        sources.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {models} models fail (reproduce one with NETC_RANDOM_ONNX=1 NETC_RANDOM_SEED=<seed>):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        sources.len() * 2 >= models.max(1),
        "most models were compared"
    );
}
