//! int8 against float in one run: the same random batch through netc's
//! float program (burn's modules on its CPU kernels), through the int8
//! interpreter, and through the float program with burn's own weight
//! quantization (int8 storage, per tensor; burn 0.21 dequantizes the weights
//! and computes in float: the baseline), in rotating rounds so that a
//! machine that slows down or speeds up during the run weighs on all alike.

use super::{logits, Graph, QModel};
use crate::bench::Plan;
use crate::{Net, Result, Spec};
use burn::module::Quantizer;
use burn::prelude::*;
use burn::tensor::ops::QuantizedTensor;
use burn::tensor::quantization::{
    Calibration, QTensorPrimitive, QuantLevel, QuantParam, QuantValue,
};
use burn::tensor::Distribution;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub batch_size: usize,
    pub rounds: usize,
    pub float_examples_per_second: f64,
    pub int8_examples_per_second: f64,
    /// int8's throughput over float's.
    pub speedup: f64,
    /// The float program with burn's weight quantization.
    pub burn_int8_examples_per_second: f64,
    pub burn_int8_speedup: f64,
    pub float_latency_ms_median: f64,
    pub int8_latency_ms_median: f64,
    pub float_latency_ms_p95: f64,
    pub int8_latency_ms_p95: f64,
    pub burn_int8_latency_ms_median: f64,
}

fn median_and_p95(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

/// Seconds each of `runs` took, `rounds` times, after one untimed run of
/// each; which goes first rotates from round to round.
fn rotate(rounds: usize, runs: &mut [&mut dyn FnMut() -> Result<()>]) -> Result<Vec<Vec<f64>>> {
    for run in runs.iter_mut() {
        run()?;
    }
    let mut times = vec![Vec::new(); runs.len()];
    for r in 0..rounds.max(1) {
        for i in 0..runs.len() {
            let i = (r + i) % runs.len();
            let t = Instant::now();
            runs[i]()?;
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

pub fn compare<B: Backend, M: Net<B>>(
    spec: &Spec,
    graph: &Graph,
    q: &QModel,
    plan: Plan,
    device: &B::Device,
) -> Result<Comparison> {
    let [h, w, c] = spec.input;
    let n = plan.batch_size;
    B::seed(device, 2);
    // Random weights: the float model's speed does not depend on them.
    let model = M::init(device);
    let x = Tensor::<B, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), device);
    let xv: Vec<f32> = x
        .clone()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default();
    let per = c * h * w;
    let float = |model: &M, x: &Tensor<B, 4>| {
        let _ = model.forward(x.clone()).into_data();
        Ok(())
    };
    let scheme = <QuantizedTensor<B> as QTensorPrimitive>::default_scheme()
        .with_value(QuantValue::Q8S)
        .with_level(QuantLevel::Tensor)
        .with_param(QuantParam::F32);
    let burn_int8 = model.clone().quantize_weights(&mut Quantizer {
        calibration: Calibration::MinMax,
        scheme,
    });
    let int8 = |x: &[f32], n: usize| logits(graph, q, x.to_vec(), n).map(|_| ());
    let t = rotate(
        plan.steps,
        &mut [&mut || float(&model, &x), &mut || int8(&xv, n), &mut || {
            float(&burn_int8, &x)
        }],
    )?;
    let one = x.clone().narrow(0, 0, 1);
    let l = rotate(
        plan.latency_runs,
        &mut [
            &mut || float(&model, &one),
            &mut || int8(&xv[..per], 1),
            &mut || float(&burn_int8, &one),
        ],
    )?;
    let rate = |t: &[f64]| (t.len() * n) as f64 / t.iter().sum::<f64>();
    let ms = |t: &[f64]| median_and_p95(t.iter().map(|s| s * 1e3).collect());
    let ((fl, fl95), (il, il95), (bl, _)) = (ms(&l[0]), ms(&l[1]), ms(&l[2]));
    Ok(Comparison {
        batch_size: n,
        rounds: plan.steps.max(1),
        float_examples_per_second: rate(&t[0]),
        int8_examples_per_second: rate(&t[1]),
        speedup: rate(&t[1]) / rate(&t[0]),
        burn_int8_examples_per_second: rate(&t[2]),
        burn_int8_speedup: rate(&t[2]) / rate(&t[0]),
        float_latency_ms_median: fl,
        int8_latency_ms_median: il,
        float_latency_ms_p95: fl95,
        int8_latency_ms_p95: il95,
        burn_int8_latency_ms_median: bl,
    })
}
