//! Int8 quantization of a generated program, for real: the graph
//! interpreter in float gives burn's logits (which proves the compiler's
//! graph right), a trained run quantizes with both calibration methods, the
//! int8 model evaluates, labels and benches close to the float one, and bad
//! requests get clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kitchen() -> String {
    // Its own name: generated programs are keyed by model name.
    netc_tests::KITCHEN.replace("model kitchen {", "model kitchen_int8 {")
}

fn build(dir: &Path, source: &str) -> PathBuf {
    let c = netc::check(source).unwrap().into_iter().next().unwrap();
    let build = netc::driver::Build {
        out: dir.join(&c.model.name),
        target: netc::driver::target_dir(),
        cuda: false,
    };
    netc::driver::build("kitchen_int8.net", source, &c, &build).unwrap()
}

fn run(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .output()
        .expect("the program runs")
}

fn ok(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(bin: &Path, args: &[&str], says: &str) {
    let out = run(bin, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {err}");
    assert!(err.contains(says), "{args:?}: expected `{says}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn logits(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Deterministic values in [-1, 1).
fn noise(n: usize) -> Vec<f32> {
    let mut s = 12345u64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn write_input(path: &Path, n: usize) {
    use safetensors::tensor::{Dtype, TensorView};
    let values = noise(n * 3 * 15 * 15);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![n, 3, 15, 15], &bytes).unwrap();
    std::fs::write(
        path,
        safetensors::serialize([("input", view)], None).unwrap(),
    )
    .unwrap();
}

/// CIFAR-10 binary batches of `n` images of noise around a color per
/// class: learnable in a few steps, and with activations as varied as the
/// random inputs `forward` is given (plain colors would calibrate ranges
/// that noise overflows).
fn noisy_cifar(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let noise = noise(n * 3072);
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = (i % 10) as u8;
        bytes.push(label);
        for plane in 0..3usize {
            let base = (label as usize * 25 + plane * 80) % 256;
            for p in 0..1024 {
                let v = base as f32 + 60.0 * noise[i * 3072 + plane * 1024 + p];
                bytes.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    // Five files of n / 5 images each.
    for (i, part) in bytes.chunks(n / 5 * 3073).enumerate() {
        std::fs::write(dir.join(format!("data_batch_{}.bin", i + 1)), part).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[test]
fn a_run_quantizes_to_int8_and_evaluates_labels_and_benches_like_float() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), &kitchen());
    let p = |name: &str| dir.path().join(name).display().to_string();

    // The interpreter in float gives burn's logits on random weights: every
    // layer kind, asymmetric padding, depthwise, groups, concat, add.
    write_input(&dir.path().join("input.safetensors"), 3);
    let input = p("input.safetensors");
    let forward = |extra: &[&str], out: &str| {
        let mut args = vec!["forward", "--input", &input];
        let out = p(out);
        args.extend(["--output", &out]);
        args.extend(extra);
        ok(&bin, &args);
        logits(Path::new(&out))
    };
    let burn = forward(
        &["--save-weights", &p("random.safetensors")],
        "burn.safetensors",
    );
    let interp = forward(
        &["--weights", &p("random.safetensors"), "--interpreter"],
        "interp.safetensors",
    );
    assert_eq!(burn.len(), 30);
    for (a, b) in interp.iter().zip(&burn) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "interpreter {a}, burn {b}"
        );
    }

    // A trained run.
    noisy_cifar(&dir.path().join("data"), 300);
    ok(
        &bin,
        &[
            "train",
            "--data",
            &p("data"),
            "--runs",
            &p("runs"),
            "--eval-every",
            "0",
            "--quiet",
            "--augment",
            "off",
            "--steps",
            "40",
        ],
    );
    let run_dir = p("runs/kitchen_int8/1");
    let checkpoint = format!("{run_dir}/checkpoint.safetensors");

    // Both calibrations; the raw weights, to compare with `forward`'s.
    let summary: serde_json::Value = serde_json::from_str(&ok(
        &bin,
        &[
            "quantize",
            "--run",
            &run_dir,
            "--raw",
            "--data",
            &p("data"),
            "--calibrate",
            "100",
            "--method",
            "minmax",
        ],
    ))
    .unwrap();
    assert_eq!(summary["calibration_images"], 100);
    assert_eq!(summary["method"], "minmax");
    let int8 = format!("{run_dir}/int8.safetensors");
    let meta = {
        let bytes = std::fs::read(&int8).unwrap();
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        m.metadata().clone().unwrap()
    };
    assert_eq!(meta["format"], "netc-int8");
    assert_eq!(meta["method"], "minmax");
    let pct = p("pct.safetensors");
    ok(
        &bin,
        &[
            "quantize",
            "--run",
            &run_dir,
            "--raw",
            "--data",
            &p("data"),
            "--calibrate",
            "300",
            "--output",
            &pct,
        ],
    );
    // The int8 file: a byte per weight, plus scales, biases and the header
    // (which weigh a lot in a model this small: tuto's is 3.9x smaller).
    let float_bytes = summary["float_weight_bytes"].as_u64().unwrap();
    let int8_bytes = summary["int8_bytes"].as_u64().unwrap();
    assert!(int8_bytes < float_bytes, "{int8_bytes} vs {float_bytes}");

    // int8 logits near float ones, for both files.
    let float = forward(&["--weights", &checkpoint], "float.safetensors");
    let top = max_abs(&float);
    for file in [&int8, &pct] {
        let q = forward(&["--weights", &checkpoint, "--int8", file], "q.safetensors");
        let err = float
            .iter()
            .zip(&q)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            err <= 0.1 * top,
            "{file}: int8 logits {q:?}, float {float:?}"
        );
        assert!(err > 0.0, "int8 gave the float logits exactly: not int8");
    }

    // Evaluation: int8 accuracy close to float's.
    let data = p("data");
    let acc = |extra: &[&str]| {
        let mut args = vec![
            "eval", "--data", &data, "--run", &run_dir, "--raw", "--json",
        ];
        args.extend(extra);
        let v: serde_json::Value = serde_json::from_str(&ok(&bin, &args)).unwrap();
        v["accuracy"].as_f64().unwrap()
    };
    let (af, aq) = (acc(&[]), acc(&["--int8", &int8]));
    assert!((af - aq).abs() <= 0.05, "float {af}, int8 {aq}");

    // Labelling an image.
    let png = dir.path().join("red.png");
    image::RgbImage::from_pixel(40, 40, image::Rgb([200, 30, 30]))
        .save(&png)
        .unwrap();
    let labels: serde_json::Value = serde_json::from_str(&ok(
        &bin,
        &[
            "infer",
            "--int8",
            &int8,
            "--json",
            &png.display().to_string(),
        ],
    ))
    .unwrap();
    let total: f64 = labels[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[1].as_f64().unwrap())
        .sum();
    assert!(total > 0.5 && total <= 1.0 + 1e-6);

    // Bench: int8, float and burn's weight quantization side by side.
    let b: serde_json::Value = serde_json::from_str(&ok(
        &bin,
        &[
            "bench",
            "--batch-size",
            "8",
            "--steps",
            "2",
            "--latency-runs",
            "3",
            "--int8",
            &int8,
        ],
    ))
    .unwrap();
    assert!(b["int8"]["speedup"].as_f64().unwrap() > 0.0);
    assert!(b["int8"]["int8_latency_ms_median"].as_f64().unwrap() > 0.0);
    assert!(b["int8"]["burn_int8_speedup"].as_f64().unwrap() > 0.0);
    assert!(b["int8"]["burn_int8_latency_ms_median"].as_f64().unwrap() > 0.0);

    // Bad requests.
    fails(
        &bin,
        &[
            "train",
            "--data",
            &data,
            "--runs",
            &p("runs"),
            "--init-from",
            &int8,
        ],
        "is an int8 model",
    );
    fails(
        &bin,
        &["eval", "--data", &data, "--weights", &int8],
        "--int8",
    );
    fails(
        &bin,
        &[
            "eval",
            "--data",
            &data,
            "--run",
            &run_dir,
            "--int8",
            &checkpoint,
        ],
        "not an int8 model",
    );
    // An int8 file whose activation scale is zero (edited by hand, or
    // damaged) is refused when read, not run into nonsense.
    let zero = p("zero-scale.safetensors");
    {
        let bytes = std::fs::read(&int8).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut meta = meta.clone();
        let mut scales: Vec<f32> = serde_json::from_str(&meta["scales"]).unwrap();
        scales[1] = 0.0;
        meta.insert("scales".into(), serde_json::to_string(&scales).unwrap());
        std::fs::write(
            &zero,
            safetensors::serialize(st.tensors(), Some(meta)).unwrap(),
        )
        .unwrap();
    }
    fails(
        &bin,
        &["eval", "--data", &data, "--run", &run_dir, "--int8", &zero],
        "operation 1 has scale 0, not a positive number",
    );
    // And one whose first layer's weight scale is zero.
    let zero_w = p("zero-weight-scale.safetensors");
    {
        let bytes = std::fs::read(&int8).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(name, t)| (name, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        owned.sort_by(|a, b| a.0.cmp(&b.0));
        let scale = owned
            .iter_mut()
            .find(|t| t.0.ends_with(".weight_scale"))
            .expect("a layer's weight scales");
        scale.3[..4].copy_from_slice(&0f32.to_le_bytes());
        let layer = scale.0.trim_end_matches(".weight_scale").to_string();
        let views: Vec<_> = owned
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        std::fs::write(
            &zero_w,
            safetensors::serialize(views, Some(meta.clone())).unwrap(),
        )
        .unwrap();
        fails(
            &bin,
            &[
                "eval", "--data", &data, "--run", &run_dir, "--int8", &zero_w,
            ],
            &format!("`{layer}` has a weight scale that is not a positive number"),
        );
    }
    for (n, says) in [
        ("0", "at least 1"),
        ("301", "more images than the 300 training images"),
    ] {
        fails(
            &bin,
            &[
                "quantize",
                "--run",
                &run_dir,
                "--data",
                &data,
                "--calibrate",
                n,
            ],
            says,
        );
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("train/cat")).unwrap();
    std::fs::create_dir_all(empty.join("test/cat")).unwrap();
    let out = run(
        &bin,
        &[
            "quantize",
            "--run",
            &run_dir,
            "--data",
            &empty.display().to_string(),
            "--calibrate",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
