//! Batch-1 latency of zoo models in three runtimes, side by side in one run:
//! netc's program (its `bench` command), and the file `netc export` writes
//! in onnxruntime (`tests/onnx_latency.py`) and in tract. The table of
//! docs/export.md:
//!
//! ```sh
//! cargo run --release -p netc-tests --example export_latency -- zoo/tuto.net zoo/alex4.net zoo/nin2.net zoo/squeeze1.net
//! ```
//!
//! Each model gets its program's initial weights (the numbers do not change
//! the time). The three are measured in turns, `ROUNDS` times, each round
//! the median of `RUNS` runs after a warm-up; the table shows the median
//! of the rounds, as `netc bench` does on this shared machine.

// Shared with tests/onnx.rs, which uses all of it; this uses less.
#[allow(dead_code)]
#[path = "built.rs"]
mod built;

use netc::export::{export, Export, Source};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tract_onnx::prelude::*;

const RUNS: usize = 200;
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn netc_ms(program: &built::Program) -> f64 {
    let runs = RUNS.to_string();
    let out = built::ok(
        &program.binary,
        &[
            "bench",
            "--batch-size",
            "1",
            "--steps",
            "1",
            "--latency-runs",
            &runs,
        ],
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    json["latency_ms_median"].as_f64().unwrap()
}

fn onnxruntime_ms(onnx: &Path) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx_latency.py");
    let out = Command::new(netc_tests::python_with_onnx())
        .arg(script)
        .arg(onnx)
        .arg(RUNS.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["median_ms"].as_f64().unwrap()
}

fn tract_ms(onnx: &Path, [h, w, c]: [usize; 3]) -> f64 {
    let model = tract_onnx::onnx()
        .model_for_path(onnx)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap();
    let x: Tensor = tract_ndarray::Array4::from_shape_vec((1, c, h, w), built::noise(1, c * h * w))
        .unwrap()
        .into();
    for _ in 0..20 {
        model.run(tvec!(x.clone().into())).unwrap();
    }
    let times = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            model.run(tvec!(x.clone().into())).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(times)
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    assert!(!files.is_empty(), "usage: export_latency FILE.net...");
    let dir = tempfile::tempdir().unwrap();
    let programs = dir.path().join("crates");
    println!("| model | netc's program, ms | onnxruntime, ms | tract, ms |");
    println!("|---|---:|---:|---:|");
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let program = built::build(&programs, file, &source);
        let name = program.checked.model.name.clone();
        let work = dir.path().join(&name);
        std::fs::create_dir_all(&work).unwrap();
        let weights = work.join("weights.safetensors");
        program.weights(&work, &weights);
        let onnx = work.join(format!("{name}.onnx"));
        let request = Export {
            weights: Source::File(weights),
            raw: false,
            preprocessing: false,
            out: onnx.clone(),
        };
        export(file, &source, &program.checked, &request).unwrap();
        let input = program.checked.model.input.hwc().map(|v| v as usize);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            a.push(netc_ms(&program));
            b.push(onnxruntime_ms(&onnx));
            c.push(tract_ms(&onnx, input));
        }
        let (a, b, c) = (median(a), median(b), median(c));
        println!("| {name} | {a:.2} | {b:.2} | {c:.2} |");
    }
}
