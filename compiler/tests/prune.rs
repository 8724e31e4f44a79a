//! `netc prune`: iterative magnitude pruning into new runs whose masked
//! weights stay zero through fine-tuning, the sensitivity table, and the
//! errors of a bad request.

mod common;
use common::synthetic;

use netc::weights::Weights;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KERNELS: [&str; 3] = ["c.weight", "h.weight", "out.weight"];

/// The masks of a pruned run.
fn m3_of(run: &Path) -> std::collections::HashMap<String, netc::weights::Tensor> {
    Weights::read(&run.join("masks.safetensors"), true)
        .unwrap()
        .tensors
}

/// Zeros and size of the kernels of a weight file.
fn zeros(path: &Path, raw: bool) -> (usize, usize) {
    let w = Weights::read(path, raw).unwrap();
    KERNELS.iter().fold((0, 0), |(z, n), k| {
        let t = &w.tensors[*k];
        (
            z + t.values.iter().filter(|v| **v == 0.0).count(),
            n + t.values.len(),
        )
    })
}

#[test]
fn prune_makes_a_fine_tuned_run_per_level_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(&dir.path().join("data"));
    std::fs::write(
        dir.path().join("prunecli.net"),
        "model prunecli {\n input 8x8x3\n train batch=4\n c: conv 3x3 4 relu\n h: fc 16 relu decay\n out: fc 10\n}\n",
    )
    .unwrap();
    let netc = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("netc runs")
    };
    let ok = |args: &[&str]| -> String {
        let out = netc(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&[
        "train",
        "prunecli.net",
        "--data",
        "data",
        "--steps",
        "4",
        "--quiet",
    ]);
    let table = ok(&[
        "prune",
        "prunecli.net",
        "--run",
        "runs/prunecli/1",
        "--sparsity",
        "50,75",
        "--steps-per-round",
        "3",
        "--",
        "--quiet",
    ]);
    assert!(
        table.contains("runs/prunecli/2") && table.contains("runs/prunecli/3"),
        "{table}"
    );
    let run = |n: u32| dir.path().join(format!("runs/prunecli/{n}"));
    for (n, level) in [(2, 0.5), (3, 0.75)] {
        let masks = zeros(&run(n).join("masks.safetensors"), true);
        assert_eq!(
            masks.0,
            (level * masks.1 as f64).round() as usize,
            "run {n}: one global threshold prunes {level} of the kernels"
        );
        let ck = run(n).join("checkpoint.safetensors");
        let steps = Weights::read(&ck, true).unwrap().metadata["step"].clone();
        assert_eq!(steps, "3", "run {n} fine-tuned");
        // Raw and averaged weights keep at least the masked zeros.
        assert!(zeros(&ck, true).0 >= masks.0, "run {n} raw");
        assert!(zeros(&ck, false).0 >= masks.0, "run {n} average");
    }
    // Pruned kernels are stored sparsely: the file is smaller on disk.
    let size = |p: PathBuf| std::fs::metadata(p).unwrap().len();
    let (dense, sparse) = (
        size(run(1).join("checkpoint.safetensors")),
        size(run(3).join("checkpoint.safetensors")),
    );
    assert!(2 * sparse < dense, "{sparse} bytes pruned, {dense} dense");
    // The second level keeps the first one's zeros.
    let (m2, m3) = (
        Weights::read(&run(2).join("masks.safetensors"), true).unwrap(),
        Weights::read(&run(3).join("masks.safetensors"), true).unwrap(),
    );
    for k in KERNELS {
        let kept_again = m2.tensors[k]
            .values
            .iter()
            .zip(&m3.tensors[k].values)
            .all(|(a, b)| b <= a);
        assert!(kept_again, "{k}");
    }

    // The torch engine keeps the masks too: resuming a pruned run, and
    // starting one from a file that carries `mask/` tensors.
    ok(&[
        "train",
        "prunecli.net",
        "--engine",
        "torch",
        "--resume",
        "runs/prunecli/3",
        "--steps",
        "5",
        "--quiet",
    ]);
    let ck3 = run(3).join("checkpoint.safetensors");
    let masked3 = zeros(&run(3).join("masks.safetensors"), true).0;
    assert_eq!(Weights::read(&ck3, true).unwrap().metadata["step"], "5");
    assert!(zeros(&ck3, true).0 >= masked3 && zeros(&ck3, false).0 >= masked3);
    let with_masks = dir.path().join("with-masks.safetensors");
    let start: std::collections::BTreeMap<_, _> =
        Weights::read(&run(1).join("checkpoint.safetensors"), false)
            .unwrap()
            .tensors
            .into_iter()
            .collect();
    let masks: std::collections::BTreeMap<_, _> = m3_of(&run(3)).into_iter().collect();
    netc::prune::write(
        &with_masks,
        &netc::prune::masked(&start.clone().into_iter().collect(), &masks),
        &masks,
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
    ok(&[
        "train",
        "prunecli.net",
        "--engine",
        "torch",
        "--init-from",
        "with-masks.safetensors",
        "--data",
        "data",
        "--steps",
        "3",
        "--quiet",
    ]);
    let ck4 = run(4).join("checkpoint.safetensors");
    assert!(run(4).join("masks.safetensors").is_file());
    assert!(zeros(&ck4, true).0 >= masked3 && zeros(&ck4, false).0 >= masked3);

    // `check --weights` counts them: every masked zero, the biases' too.
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "check",
        "--json",
        "prunecli.net",
        "--weights",
        "runs/prunecli/3/checkpoint.safetensors",
    ]))
    .unwrap();
    let w = &json[0]["weights"];
    let (params, nonzero) = (
        w["params"].as_u64().unwrap(),
        w["nonzero"].as_u64().unwrap(),
    );
    let (masked, kernels) = zeros(&run(3).join("masks.safetensors"), true);
    assert_eq!(params, kernels as u64 + 4 + 16 + 10, "kernels and biases");
    assert!(nonzero <= params - masked as u64, "{w}");
    assert!(
        w["sparse_bytes"].as_u64() < w["dense_bytes"].as_u64(),
        "{w}"
    );
    let table = ok(&[
        "check",
        "prunecli.net",
        "--weights",
        "runs/prunecli/3/checkpoint.safetensors",
    ]);
    assert!(table.contains("parameters non-zero"), "{table}");
    // So does `netc report`.
    ok(&["report", "runs/prunecli/3", "--no-latency", "--out", "rep"]);
    let csv = std::fs::read_to_string(dir.path().join("rep/report.csv")).unwrap();
    let (head, row) = (csv.lines().next().unwrap(), csv.lines().nth(1).unwrap());
    let at = head.split(',').position(|c| c == "nonzero_params").unwrap();
    assert_eq!(
        row.split(',').nth(at),
        Some(nonzero.to_string().as_str()),
        "{csv}"
    );

    // Sensitivity: each kernel alone, without fine-tuning.
    ok(&[
        "prune",
        "prunecli.net",
        "--run",
        "runs/prunecli/1",
        "--sensitivity",
        "50,90",
        "--out",
        "rep",
    ]);
    let csv = std::fs::read_to_string(dir.path().join("rep/sensitivity.csv")).unwrap();
    for k in ["c,", "h,", "out,"] {
        assert_eq!(csv.lines().filter(|l| l.starts_with(k)).count(), 2, "{csv}");
    }
    assert!(dir.path().join("rep/sensitivity.md").is_file());

    // Bad requests: exit 1, said plainly, no new run.
    let copy = |to: &str, edit: &dyn Fn(&Path)| {
        let to = dir.path().join(to);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["settings.json", "checkpoint.safetensors", "model.net"] {
            std::fs::copy(run(1).join(f), to.join(f)).unwrap();
        }
        edit(&to);
    };
    copy("other/1", &|d| {
        let s = std::fs::read_to_string(d.join("settings.json")).unwrap();
        let s = s.replace("\"model\": \"prunecli\"", "\"model\": \"other\"");
        std::fs::write(d.join("settings.json"), s).unwrap();
    });
    copy("bare/1", &|d| {
        std::fs::remove_file(d.join("checkpoint.safetensors")).unwrap()
    });
    for (run, sparsity, want) in [
        ("runs/prunecli/1", "50,150", "150 % is outside 0-100"),
        ("runs/prunecli/1", "75,50", "levels must rise"),
        ("other/1", "50", "a run of model other, not prunecli"),
        ("bare/1", "50", "the run has no checkpoint.safetensors yet"),
    ] {
        let out = netc(&[
            "prune",
            "prunecli.net",
            "--run",
            run,
            "--sparsity",
            sparsity,
            "--steps-per-round",
            "1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{run} {sparsity}: {err}");
        assert!(err.contains(want), "{run} {sparsity}: {err}");
    }
    assert!(!run(5).exists(), "a refused request makes no run");
}

/// Runs netc in `dir`.
fn netc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs")
}

/// Runs netc in `dir`, which must succeed; its standard output.
fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = netc_in(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `dir/<model>.net` and trains it `steps` steps on the synthetic
/// data in `dir/data`, into runs/<model>/1.
fn trained(dir: &Path, model: &str, source: &str, steps: &str) {
    std::fs::write(dir.join(format!("{model}.net")), source).unwrap();
    let net = format!("{model}.net");
    ok_in(
        dir,
        &["train", &net, "--data", "data", "--steps", steps, "--quiet"],
    );
}

/// Checks that the run `netc prune --filters REQUEST` wrote for `small`
/// holds the library's plan, and that its program's logits on random input
/// equal the original program's with the plan's masked weights (and differ
/// from the unmasked original's). `source` is `dir/<model>.net`, trained
/// into runs/<model>/1.
fn computes_the_masked_model(
    dir: &Path,
    source: &str,
    request: &str,
    small: &str,
    input: [usize; 3],
) {
    use netc::prune::filters;
    let c = netc::check(source).unwrap().remove(0);
    let model = &c.model.name;
    let original = Weights::read(
        &dir.join(format!("runs/{model}/1/checkpoint.safetensors")),
        false,
    )
    .unwrap();
    let request = filters::request(request).unwrap();
    let plan = filters::plan(source, &c.model, &original.tensors, &request, small).unwrap();
    let small_ck = dir.join(format!("runs/{small}/1/checkpoint.safetensors"));
    let pruned = Weights::read(&small_ck, false).unwrap();
    assert!(pruned.averaged);
    for (name, t) in &plan.weights {
        assert_eq!(&pruned.tensors[name], t, "{name}");
    }
    let none = std::collections::BTreeMap::new();
    let no_meta = std::collections::BTreeMap::new();
    let masked = dir.join("masked.safetensors");
    netc::prune::write(&masked, &plan.masked, &none, &no_meta).unwrap();
    let plain = dir.join("original.safetensors");
    let all: std::collections::BTreeMap<_, _> = original.tensors.clone().into_iter().collect();
    netc::prune::write(&plain, &all, &none, &no_meta).unwrap();
    // Random input, N x C x H x W.
    let [c_in, h, w] = input;
    let mut state = 12345u64;
    let x: Vec<f32> = (0..2 * c_in * h * w)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    let input = dir.join("x.safetensors");
    let xs = [(
        "input".to_string(),
        netc::weights::Tensor {
            shape: vec![2, c_in, h, w],
            values: x,
        },
    )]
    .into();
    netc::prune::write(&input, &xs, &none, &no_meta).unwrap();
    let logits = |net: &str, weights: &Path| -> Vec<f32> {
        let binary = ok_in(dir, &["build", net]);
        let out = dir.join("y.safetensors");
        let status = Command::new(binary.trim())
            .arg("forward")
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .arg("--weights")
            .arg(weights)
            .status()
            .unwrap();
        assert!(status.success());
        Weights::read(&out, true).unwrap().tensors["logits"]
            .values
            .clone()
    };
    let ours = logits(&format!("{small}.net"), &small_ck);
    let cut = logits(&format!("{model}.net"), &masked);
    let whole = logits(&format!("{model}.net"), &plain);
    let gap = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(gap(&ours, &cut) <= 1e-5, "{ours:?} vs {cut:?}");
    assert!(
        gap(&ours, &whole) > 1e-4,
        "removing filters changed nothing"
    );
}

/// Filter pruning through block calls and concatenations: a convolution in
/// a block is resized through its call's argument (every copy of a repeated
/// call alike), a concat's readers lose the channels at the concat's
/// offsets, a branch that passes channels on moves them along, and a batch
/// norm on the way shrinks; the smaller model computes the masked original.
#[test]
fn filter_pruning_rewrites_block_arguments_and_concat_widths() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(&dir.path().join("data"));
    let source = "block fire(s, e1, e3) {\n squeeze: conv 1x1 s relu\n concat {\n  e1x1: conv 1x1 e1 relu\n  \
                  e3x3: conv 3x3 e3 relu\n }\n}\n\
                  block fixed() {\n c: conv 1x1 4 relu\n}\n\
                  block twin(e) {\n concat {\n  x: conv 1x1 e relu\n  y: conv 3x3 e relu\n }\n}\n\
                  block pair(s) {\n c: conv 1x1 s relu * 2\n}\n\
                  model prunecat {\n input 8x8x3\n train batch=4\n c1: conv 3x3 8 relu\n fire(4, 6, 5) * 2\n \
                  p: maxpool 3x3 /2\n bn: batchnorm\n concat {\n  a: conv 1x1 6 relu\n  b: maxpool 3x3 /1\n }\n \
                  fixed()\n twin(3)\n pair(4)\n out: fc 10\n}\n";
    trained(dir.path(), "prunecat", source, "3");
    let netc = |args: &[&str]| netc_in(dir.path(), args);
    let ok = |args: &[&str]| ok_in(dir.path(), args);
    let said = ok(&[
        "prune",
        "prunecat.net",
        "--run",
        "runs/prunecat/1",
        "--filters",
        "50%",
        "--name",
        "prunecat_small",
    ]);
    for line in [
        "c1: 4 of 8 filters kept",
        "fire1.squeeze: 2 of 4 filters kept",
        "fire2.e1x1: 3 of 6 filters kept",
        "a: 3 of 6 filters kept",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    // The block's own counts and the other blocks' stay as they were.
    assert!(
        !said.contains("fixed1.c") && !said.contains("twin1"),
        "{said}"
    );
    let small = std::fs::read_to_string(dir.path().join("prunecat_small.net")).unwrap();
    assert!(small.contains(" fire(2, 3, 2) * 2\n"), "{small}");
    // pair's parameter sizes both copies of its repeated layer.
    assert!(small.contains(" pair(2)\n"), "{small}");
    assert!(small.contains("a: conv 1x1 3 relu"), "{small}");
    assert!(
        small.contains("c: conv 1x1 4 relu") && small.contains(" twin(3)\n"),
        "{small}"
    );
    ok(&["check", "prunecat_small.net"]);
    computes_the_masked_model(dir.path(), source, "50%", "prunecat_small", [3, 8, 8]);

    // What cannot be rewritten is refused with the reason.
    for (spec, want) in [
        (
            "fire1.e1x1=50%",
            "`fire1.e1x1` is one of 2 copies of a repeated statement",
        ),
        (
            "fire1.e1x1=50%,fire2.e1x1=25%",
            "would keep 3 and 4 filters",
        ),
        (
            "fixed1.c=50%",
            "its filter count is written in block `fixed`",
        ),
        (
            "twin1.x=50%",
            "parameter `e` of block `twin` sizes other layers too",
        ),
        (
            "fire2.e1x1=50%,bn=50%",
            "cannot prune `bn`: it is not a convolution",
        ),
        (
            "pair1.c1=50%",
            "`pair1.c1` is one of 2 copies of a repeated statement",
        ),
        ("c1=50%,c1=50%", "`c1` is named twice"),
    ] {
        let out = netc(&[
            "prune",
            "prunecat.net",
            "--run",
            "runs/prunecat/1",
            "--filters",
            spec,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(err.contains(want), "{spec}: {err}");
    }

    // `--filters 50%` leaves out a repeated statement whose copies do not
    // all qualify: after an LRN, the second fire's expand layers cannot
    // lose filters, so neither copy's e1 and e3 change; their squeeze does.
    let lrn = source
        .replace("prunecat", "prunelrn")
        .replace(" fire(4, 6, 5) * 2\n", " fire(4, 6, 5) * 2\n n: lrn\n");
    trained(dir.path(), "prunelrn", &lrn, "1");
    ok(&[
        "prune",
        "prunelrn.net",
        "--run",
        "runs/prunelrn/1",
        "--filters",
        "50%",
    ]);
    let small = std::fs::read_to_string(dir.path().join("prunelrn_pruned.net")).unwrap();
    assert!(small.contains(" fire(2, 6, 5) * 2\n"), "{small}");
}

/// `--filters` writes a smaller `.net` that passes `check`, and a run with
/// its weights whose logits equal the original's with the removed channels
/// cut off; the new run evaluates and fine-tunes like any other.
#[test]
fn filter_pruning_writes_a_smaller_model_that_computes_the_masked_one() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(&dir.path().join("data"));
    let source = "model prunefp {\n input 8x8x3\n train batch=4\n c1: conv 3x3 8 relu\n \
                  p1: maxpool 3x3 /2\n bn: batchnorm\n c2: conv 3x3 6 relu\n h: fc 16 relu\n out: fc 10\n}\n";
    trained(dir.path(), "prunefp", source, "3");
    let netc = |args: &[&str]| netc_in(dir.path(), args);
    let ok = |args: &[&str]| ok_in(dir.path(), args);
    let said = ok(&[
        "prune",
        "prunefp.net",
        "--run",
        "runs/prunefp/1",
        "--filters",
        "c1=50%,c2=50%",
        "--name",
        "prunefp_small",
    ]);
    assert!(said.contains("c1: 4 of 8 filters kept"), "{said}");
    let table = ok(&["check", "prunefp_small.net"]);
    assert!(
        table.contains("4x4x3") && table.contains("1,185"),
        "{table}"
    );
    computes_the_masked_model(
        dir.path(),
        source,
        "c1=50%,c2=50%",
        "prunefp_small",
        [3, 8, 8],
    );

    // Like any run: evaluated, and fine-tuned by resuming it.
    ok(&[
        "eval",
        "prunefp_small.net",
        "--data",
        "data",
        "--run",
        "runs/prunefp_small/1",
    ]);
    ok(&[
        "train",
        "prunefp_small.net",
        "--resume",
        "runs/prunefp_small/1",
        "--steps",
        "2",
        "--quiet",
    ]);

    // Refusals name the layer and the reason.
    for (spec, want) in [
        ("h=50%", "cannot prune `h`: it is not a convolution"),
        ("nope=50%", "has no layer `nope`"),
        ("c1=150%", "outside 0-100"),
    ] {
        let out = netc(&[
            "prune",
            "prunefp.net",
            "--run",
            "runs/prunefp/1",
            "--filters",
            spec,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(err.contains(want), "{spec}: {err}");
    }
}
