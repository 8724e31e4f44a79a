//! int8 against float in one run: the same random batch through netc's
//! float program (burn's modules on its CPU kernels) and through the int8
//! interpreter, in alternating rounds so that a machine that slows down or
//! speeds up during the run weighs on both alike.

use super::{logits, Graph, QModel};
use crate::bench::Plan;
use crate::{Net, Result, Spec};
use burn::prelude::*;
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
    pub float_latency_ms_median: f64,
    pub int8_latency_ms_median: f64,
    pub float_latency_ms_p95: f64,
    pub int8_latency_ms_p95: f64,
}

fn median_and_p95(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

/// Seconds each of `a` and `b` took, run alternately `rounds` times (which
/// goes first alternates too), after one untimed run of each.
fn alternate(
    rounds: usize,
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for r in 0..rounds.max(1) {
        for first in [r % 2 == 0, r % 2 != 0] {
            let t = Instant::now();
            if first {
                a()?;
                ta.push(t.elapsed().as_secs_f64());
            } else {
                b()?;
                tb.push(t.elapsed().as_secs_f64());
            }
        }
    }
    Ok((ta, tb))
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
    let float = |x: &Tensor<B, 4>| {
        let _ = model.forward(x.clone()).into_data();
        Ok(())
    };
    let int8 = |x: &[f32], n: usize| logits(graph, q, x.to_vec(), n).map(|_| ());
    let (tf, ti) = alternate(plan.steps, || float(&x), || int8(&xv, n))?;
    let one = x.clone().narrow(0, 0, 1);
    let (lf, li) = alternate(plan.latency_runs, || float(&one), || int8(&xv[..per], 1))?;
    let rate = |t: &[f64]| (t.len() * n) as f64 / t.iter().sum::<f64>();
    let ms = |t: Vec<f64>| median_and_p95(t.into_iter().map(|s| s * 1e3).collect());
    let (fl, fl95) = ms(lf);
    let (il, il95) = ms(li);
    Ok(Comparison {
        batch_size: n,
        rounds: plan.steps.max(1),
        float_examples_per_second: rate(&tf),
        int8_examples_per_second: rate(&ti),
        speedup: rate(&ti) / rate(&tf),
        float_latency_ms_median: fl,
        int8_latency_ms_median: il,
        float_latency_ms_p95: fl95,
        int8_latency_ms_p95: il95,
    })
}
