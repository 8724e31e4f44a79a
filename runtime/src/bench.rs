//! Speed of a model on its backend: training and inference throughput,
//! batch-1 latency, peak memory. Random inputs: data loading and
//! augmentation are left out, so the figures are the model's own.

use crate::{Net, Result};
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub model: String,
    pub batch_size: usize,
    pub threads: usize,
    pub train_examples_per_second: f64,
    pub infer_examples_per_second: f64,
    pub latency_ms_median: f64,
    pub latency_ms_p95: f64,
    /// The process's peak resident memory (Linux), when known.
    pub peak_memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub batch_size: usize,
    pub steps: usize,
    pub latency_runs: usize,
}

fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Reads a tensor back, so the time includes finishing the work.
fn sync<B: Backend, const D: usize>(t: Tensor<B, D>) {
    let _ = t.into_data();
}

pub fn run<B, M>(
    name: &str,
    input: [usize; 3],
    classes: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<Bench>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
{
    let [h, w, c] = input;
    let n = plan.batch_size;
    B::seed(device, 1);
    let mut model = M::init(device);
    let mut optim = SgdConfig::new().init::<B, M>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let x = Tensor::<B, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), device);
    let y = Tensor::<B, 1, Int>::from_data(
        TensorData::new(
            (0..n).map(|i| (i % classes) as i64).collect::<Vec<_>>(),
            [n],
        ),
        device,
    );
    let mut step = |model: M| -> M {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(0.01, model, grads);
        sync(model.forward(x.clone().narrow(0, 0, 1)));
        model
    };
    // One step to warm caches and allocators, then the timed ones.
    model = step(model);
    let start = Instant::now();
    for _ in 0..plan.steps {
        model = step(model);
    }
    let train = (plan.steps * n) as f64 / start.elapsed().as_secs_f64();

    let inner = model.valid();
    let xi = x.inner();
    sync(inner.forward(xi.clone()));
    let start = Instant::now();
    for _ in 0..plan.steps {
        sync(inner.forward(xi.clone()));
    }
    let infer = (plan.steps * n) as f64 / start.elapsed().as_secs_f64();

    let one = xi.narrow(0, 0, 1);
    sync(inner.forward(one.clone()));
    let mut times: Vec<f64> = (0..plan.latency_runs.max(1))
        .map(|_| {
            let t = Instant::now();
            sync(inner.forward(one.clone()));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(Bench {
        model: name.to_string(),
        batch_size: n,
        // burn's CPU backend and netc's kernels work on rayon's pool
        // (RAYON_NUM_THREADS, or every core).
        threads: rayon::current_num_threads(),
        train_examples_per_second: train,
        infer_examples_per_second: infer,
        latency_ms_median: percentile(&times, 0.5),
        latency_ms_p95: percentile(&times, 0.95),
        peak_memory_bytes: peak_memory(),
    })
}
