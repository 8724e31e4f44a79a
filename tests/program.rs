//! A generated program, built and run for real: its outputs match the
//! reference implementation on fixed weights, and it trains, evaluates and
//! labels images from synthetic data made here.

mod built;
mod reference;

use built::{build, noise, ok, read, Program};
use std::path::Path;
use std::process::Command;

use netc_tests::KITCHEN;

fn run(binary: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(binary)
        .args(args)
        .output()
        .expect("the program runs");
    out
}

/// The PyTorch back end, given the same weights and input, gives the burn
/// program's logits. Fails where Python lacks torch.
fn pytorch_matches(checked: &netc::Checked, dir: &Path, file: &str, source: &str) {
    let python = netc_tests::python_with_torch();
    let module = netc::backend::pytorch::module_py(&checked.model, source, file).unwrap();
    std::fs::write(dir.join("module.py"), module).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pytorch_check.py");
    let p = |name: &str| dir.join(name).display().to_string();
    let out = Command::new(python)
        .arg(&script)
        .args([
            p("module.py"),
            p("fixed.safetensors"),
            p("input.safetensors"),
            p("logits.safetensors"),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "PyTorch and burn differ:\n{text}");
    eprintln!("PyTorch cross-check: {}", text.trim());
}

/// A file without the model's tensors is refused by the PyTorch loader,
/// every missing one named.
fn pytorch_refuses_missing_tensors(dir: &Path) {
    let python = netc_tests::python_with_torch();
    let p = |name: &str| dir.join(name).display().to_string();

    let load = "import importlib.util, sys\n\
        spec = importlib.util.spec_from_file_location('m', sys.argv[1])\n\
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n\
        m.load_netc(m.Model(), sys.argv[2])";
    let out = Command::new(python)
        .args(["-c", load, &p("module.py"), &p("input.safetensors")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("does not fit Kitchen") && err.contains("stem.weight: missing"),
        "{err}"
    );
    assert!(err.contains("logits.bias: missing"), "{err}");
}

/// The program's weights (its own names and shapes, at its own initial
/// scale, so activations keep their size and two correct summation orders
/// agree to f32 rounding) and its logits for a fixed input, which must match
/// the reference implementation's; returns the weights' names.
fn matches_reference(program: &Program, dir: &Path) -> Vec<String> {
    let model = &program.checked.model;
    let [h, w, c] = model.input.hwc().map(|v| v as usize);
    let classes = model.settings.classes as usize;
    let size = c * h * w;
    let fixed = dir.join("fixed.safetensors");
    let weights = program.weights(dir, &fixed);
    let input = noise(99, 2 * size);
    let logits = program.forward(dir, &fixed, &input, 2);
    let scale = logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale >= 0.1, "the logits are all near zero: {logits:?}");
    let mut worst = 0.0f32;
    for n in 0..2 {
        let image = reference::Image {
            c,
            h,
            w,
            data: input[n * size..(n + 1) * size].to_vec(),
        };
        let want = reference::forward(model, image, &weights);
        for (j, (a, b)) in logits[n * classes..(n + 1) * classes]
            .iter()
            .zip(&want)
            .enumerate()
        {
            worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "image {n} class {j}: generated {a}, reference {b}"
            );
        }
    }
    eprintln!("logits up to {scale}, worst relative difference {worst:e}");
    weights.into_keys().collect()
}

#[test]
fn a_generated_program_matches_the_reference_then_trains_evaluates_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let program = build(dir.path(), "kitchen.net", KITCHEN);
    let bin = program.binary.as_path();
    let p = |name: &str| dir.path().join(name).display().to_string();
    matches_reference(&program, dir.path());
    pytorch_matches(&program.checked, dir.path(), "kitchen.net", KITCHEN);
    pytorch_refuses_missing_tensors(dir.path());

    // Training on synthetic data: the loss falls and a checkpoint is written.
    netc_tests::synthetic_cifar(&dir.path().join("data"), 300);
    let runs = p("runs");
    ok(
        bin,
        &[
            "train",
            "--data",
            &p("data"),
            "--runs",
            &runs,
            "--log-every",
            "1",
            "--eval-every",
            "0",
            "--quiet",
            "--augment",
            "off",
        ],
    );
    let run_dir = dir.path().join("runs/kitchen/1");
    let log = std::fs::read_to_string(run_dir.join("log.jsonl")).unwrap();
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    assert_eq!(losses.len(), 30);
    let (first, last) = (
        losses[..5].iter().sum::<f64>(),
        losses[25..].iter().sum::<f64>(),
    );
    assert!(last < first, "loss did not fall: {losses:?}");
    assert!(run_dir.join("checkpoint.safetensors").exists());
    let saved = read(&run_dir.join("checkpoint.safetensors"));
    assert!(saved.contains_key("mix1.bn1.gamma") && saved.contains_key("ema/fc1.weight"));

    // Evaluation prints accuracy and a 10 x 10 confusion matrix.
    let eval: serde_json::Value = serde_json::from_str(&ok(
        bin,
        &[
            "eval",
            "--data",
            &p("data"),
            "--run",
            &run_dir.display().to_string(),
            "--json",
        ],
    ))
    .unwrap();
    let acc = eval["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(eval["confusion"].as_array().unwrap().len(), 10);

    // Inference labels a PNG of another size.
    let png = dir.path().join("cat.png");
    image::RgbImage::from_pixel(50, 40, image::Rgb([200, 30, 30]))
        .save(&png)
        .unwrap();
    let labels: serde_json::Value = serde_json::from_str(&ok(
        bin,
        &[
            "infer",
            "--run",
            &run_dir.display().to_string(),
            "--json",
            &png.display().to_string(),
        ],
    ))
    .unwrap();
    let top = labels[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let total: f64 = top.iter().map(|t| t[1].as_f64().unwrap()).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-6);

    // Without the cuda feature, --device cuda explains how to get it.
    let out = run(
        bin,
        &[
            "--device",
            "cuda",
            "eval",
            "--data",
            &p("data"),
            "--run",
            &run_dir.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("netc build --cuda"));
}

/// A max pooling after a block whose last step is a convolution runs in
/// that convolution's pass (`forward_pool`, as nin2's blocks): the program
/// still matches the reference implementation and the PyTorch module, with
/// the block called pooled through two windows and unpooled, on odd maps.
#[test]
fn a_pooling_after_a_block_runs_in_its_last_convolution_and_matches_the_reference() {
    let source = "block nin(f, g) {\n    conv: conv 3x3 f relu\n    mlp: conv 1x1 g\n}\n\n\
        model pooled {\n    input 13x13x3\n\n    b1: nin(8, 12)\n    pool1: maxpool 3x3 /2\n    \
        b2: nin(8, 12)\n    pool2: maxpool 2x2 /2\n    b3: nin(8, 12)\n    logits: fc 10\n}\n";
    joined_and_matching(
        "pooled",
        source,
        &[
            "self.b1.forward_pool(x, &self.pool1)",
            "self.b2.forward_pool(x, &self.pool2)",
            "self.b3.forward(x)",
            "conv_pool(&self.mlp, pool, x)",
        ],
    );
}

/// Builds the model `name` of `source`, whose generated code must make
/// every call of `calls`, and checks its logits against the reference
/// implementation and the PyTorch module.
fn joined_and_matching(name: &str, source: &str, calls: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("{name}.net");
    let program = build(dir.path(), &file, source);
    let code = std::fs::read_to_string(dir.path().join(name).join("src/model.rs")).unwrap();
    for call in calls {
        assert!(code.contains(call), "no `{call}` in\n{code}");
    }
    matches_reference(&program, dir.path());
    pytorch_matches(&program.checked, dir.path(), &file, source);
}

/// A max pooling after a concatenation of convolutions pools each tile of
/// the joined output in the convolutions' pass (`conv_concat_pool`): after
/// a block that ends with one (squeeze1's fire2 and pool2), and in the
/// model's own sequence with a part without a ReLU, on odd maps. The
/// program still matches the reference implementation and the PyTorch
/// module.
#[test]
fn a_pooling_after_a_concatenation_of_convolutions_joins_it_and_matches_the_reference() {
    let source = "block fire(s, e) {\n    squeeze: conv 1x1 s relu\n    concat {\n        \
        e1: conv 1x1 e relu\n        e3: conv 3x3 e relu\n    }\n}\n\n\
        model firepool {\n    input 13x13x3\n\n    f1: fire(4, 6)\n    f2: fire(4, 6)\n    \
        pool1: maxpool 3x3 /2\n    concat {\n        a: conv 1x1 5\n        b: conv 3x3 7 relu\n    \
        }\n    pool2: maxpool 2x2 /1\n    logits: fc 10\n}\n";
    joined_and_matching(
        "firepool",
        source,
        &[
            "self.f1.forward(x)",
            "self.f2.forward_pool(x, &self.pool1)",
            "conv_concat_pool(&[(&self.e1, true), (&self.e3, true)], pool, x)",
            "conv_concat_pool(&[(&self.a, false), (&self.b, true)], &self.pool2, x)",
        ],
    );
}

/// Names that clash with Rust, Python and netc's generated code
/// (tests/programs/hostile.net): the program builds, its tensors keep the
/// `.net` paths, as many as `check` counts, and it matches the reference
/// implementation and the PyTorch module.
#[test]
fn a_program_with_hostile_names_builds_runs_and_keeps_its_names() {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/hostile.net"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let program = build(dir.path(), "hostile.net", &source);
    let checked = &program.checked;
    let names = matches_reference(&program, dir.path());
    for want in [
        "self.weight",
        "my_block1.type.weight",
        "my_block1.x.weight",
        "myBlock1.forward.weight",
        "myBlock1.self.weight",
        "myBlock1.crate.gamma",
        "myBlock1.training.bias",
        "fire1.parameters.weight",
        "fire2.F.weight",
        "Fire1.device.weight",
        "x.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "no `{want}` in {names:?}");
    }
    let fixed = read(&dir.path().join("fixed.safetensors"));
    let params: usize = fixed
        .iter()
        .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .map(|(_, (_, v))| v.len())
        .sum();
    assert_eq!(params as u64, checked.summary.total.params);
    pytorch_matches(checked, dir.path(), "hostile.net", &source);
}

/// Two models of one name, built from two folders (a sweep's variants, two
/// projects under the installed netc), keep two programs: each runs its own
/// model, whichever was built last. cargo keys what it has built by package
/// name, so one shared name made the second build find the first one's
/// sources fresh and run the first model.
#[test]
fn two_models_of_one_name_in_two_folders_keep_their_own_programs() {
    let dir = tempfile::tempdir().unwrap();
    let model = |classes: usize| {
        format!(
            "model twin {{\n    input 8x8x3\n    train classes={classes}\n    fc {classes}\n}}\n"
        )
    };
    let three = build(&dir.path().join("a"), "a.net", &model(3)).binary;
    let five = build(&dir.path().join("b"), "b.net", &model(5)).binary;
    assert_ne!(three, five, "two folders, one program");
    for (binary, classes) in [(&three, 3), (&five, 5)] {
        let saved = dir.path().join(format!("w{classes}.safetensors"));
        let out = Command::new(binary)
            .args([
                "forward",
                "--input",
                "/nonexistent",
                "--output",
                "/nonexistent",
            ])
            .arg("--save-weights")
            .arg(&saved)
            .output()
            .unwrap();
        assert!(!out.status.success(), "there is no input");
        let weights = read(&saved);
        let shapes: Vec<&Vec<usize>> = weights.values().map(|(s, _)| s).collect();
        assert!(
            shapes.iter().any(|s| s.last() == Some(&classes)),
            "{} holds another model: {shapes:?}",
            binary.display()
        );
    }
}

/// `train init=he` draws He-normal weights (std sqrt(2 / fan-in)) in netc's
/// program and in the PyTorch module; the default stays the seed's
/// Xavier-normal (std sqrt(2 / (fan-in + fan-out))).
#[test]
fn init_he_draws_he_normal_weights_in_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let source = |init: &str| {
        format!(
            "model initcheck_{init} {{\n    input 8x8x16\n    train init={init}\n\
             conv1: conv 3x3 64 relu\n    pool1: maxpool 2x2 /2\n    pool2: maxpool 2x2 /2\n\
             fc1: fc 96 relu\n    logits: fc 10\n}}\n"
        )
    };
    // conv1: fan-in 16 x 9, fan-out 64 x 9; fc1: 2 x 2 x 64 inputs, 96 units.
    let expected = |init: &str| match init {
        "he" => [(2.0f64 / 144.0).sqrt(), (2.0f64 / 256.0).sqrt()],
        _ => [(2.0f64 / 720.0).sqrt(), (2.0f64 / 352.0).sqrt()],
    };
    let std = |v: &[f32]| {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let python = netc_tests::python_with_torch();
    for init in ["he", "xavier"] {
        let text = source(init);
        let file = format!("initcheck_{init}.net");
        let Program {
            checked,
            binary: bin,
        } = build(dir.path(), &file, &text);
        let p = |name: &str| dir.path().join(name).display().to_string();
        let weights = p(&format!("{init}.safetensors"));
        // No input file: the program writes its initial weights, then stops.
        let forward = ["forward", "--input", &p("none"), "--output", &p("o")];
        let _ = run(
            &bin,
            &[&forward[..], &["--save-weights", &weights]].concat(),
        );
        let w = read(Path::new(&weights));
        let module = netc::backend::pytorch::module_py(&checked.model, &text, &file).unwrap();
        let module_path = dir.path().join(format!("{init}.py"));
        std::fs::write(&module_path, module).unwrap();
        let script = "import importlib.util, sys, torch\n\
            spec = importlib.util.spec_from_file_location('m', sys.argv[1])\n\
            m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n\
            torch.manual_seed(1); net = m.Model()\n\
            print(net.conv1.weight.std(unbiased=False).item(), net.fc1.weight.std(unbiased=False).item())";
        let torch: Vec<f64> = ok(
            Path::new(python),
            &["-c", script, module_path.to_str().unwrap()],
        )
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
        for (i, layer) in ["conv1", "fc1"].into_iter().enumerate() {
            let want = expected(init)[i];
            let burn = std(&w[&format!("{layer}.weight")].1);
            for (engine, got) in [("netc's program", burn), ("PyTorch", torch[i])] {
                assert!(
                    (got / want - 1.0).abs() < 0.05,
                    "init={init}: {engine}'s {layer} has std {got}, want {want}"
                );
            }
        }
    }
}
