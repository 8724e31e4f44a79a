//! Batch norm's running statistics measured for the averaged weights.
//!
//! The moving average covers the trained tensors only, as the seed's
//! TensorFlow did; batch norm's running statistics follow the live weights.
//! Evaluated with the average, the network then meets statistics of other
//! weights: xception's test accuracy swung by a point between evaluations and
//! its final checkpoint lost 1.9 points (docs/xception.md). So before each
//! evaluation and save of a run that averages, the statistics are measured
//! for the averaged weights: in training mode, the plain mean over
//! [`BATCHES`] training batches of their own, as SWA's `update_bn` does. The
//! torch engine does the same (`measure_statistics` in its script).

use crate::batches::{self, make_batch, Plan, Sampler};
use crate::data::Dataset;
use crate::params::{self, is_statistic, Named, Tensors};
use crate::quant::graph::{Graph, Op};
use crate::Net;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Batches measured: 5,120 images at the seed's batch of 128. Over 1,280,
/// 5,120 and 12,800 images xception's final checkpoint scored 84.03, 84.07
/// and 84.12 % (82.26 % with the live weights' statistics), evaluated by
/// the torch engine (`bench/torch/bn_stats.py`).
pub const BATCHES: u64 = 40;

/// The seed of the measuring batches' sampler, augmentation and dropout:
/// the same images at every measurement of a run, in both engines' schemes.
pub fn seed(run_seed: u64) -> u64 {
    run_seed ^ 0x5EED_0B47
}

/// The model's batch norms: their `.net` paths and the share of a new batch
/// in their running statistics (burn's momentum, one minus TensorFlow's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Norms(Vec<(String, f64)>);

impl Norms {
    pub fn of(graph: &Graph) -> Self {
        let norms = graph.all().into_iter().filter_map(|op| match op {
            Op::BatchNorm { path, momentum, .. } => Some((path.clone(), 1.0 - momentum)),
            _ => None,
        });
        Norms(norms.collect())
    }

    /// `averaged` (every tensor of the model, by name) with its running
    /// statistics measured for its own trained tensors on `data`. The
    /// measuring plan is the run's, with [`seed`]'s seed.
    pub fn measure<B: AutodiffBackend, M: Net<B> + AutodiffModule<B>>(
        &self,
        model: &M,
        averaged: &Tensors,
        data: &Dataset,
        plan: Plan,
        device: &B::Device,
    ) -> Tensors {
        let mut out = averaged.clone();
        if self.0.is_empty() {
            return out;
        }
        // Each batch starts from zero statistics, so after it they hold
        // exactly `share` times the batch's own.
        let zeros: Tensors = averaged
            .iter()
            .filter(|(n, _)| is_statistic(n))
            .map(|(n, t)| {
                let zero = Named {
                    shape: t.shape.clone(),
                    values: vec![0.0; t.values.len()],
                };
                (n.clone(), zero)
            })
            .collect();
        // A copy of its own: a clone would share the running statistics
        // (burn keeps them behind shared pointers) and write into the live
        // model's. Training mode is the autodiff backend's forward; without
        // gradients it records no graph (burn frees graphs only in
        // `backward`, so 40 of them would stay until the next step).
        let mut m = M::from_inner(model.valid()).no_grad();
        m = params::replace(m, averaged, &|_| true)
            .expect("the average holds every tensor of the model it was made from");
        let mut sums: Vec<(String, f64, Vec<f64>)> = self
            .0
            .iter()
            .flat_map(|(path, share)| {
                ["running_mean", "running_var"].map(|s| {
                    let name = format!("{path}.{s}");
                    let n = zeros[&name].values.len();
                    (name, *share, vec![0.0; n])
                })
            })
            .collect();
        let mut sampler = Sampler::new(data.len(), plan.seed);
        let [h, w] = [plan.height, plan.width];
        for k in 0..BATCHES {
            m = params::replace(m, &zeros, &|n| is_statistic(n))
                .expect("zeros for every statistic of the model");
            let idx = sampler.indices(k, plan.batch_size);
            let batch = make_batch(data, &idx, &plan, k);
            // Dropout before a batch norm draws from a stream of its own.
            B::seed(device, batches::dropout_seed(plan.seed, k));
            let n = batch.labels.len();
            let x = Tensor::<B, 4>::from_data(TensorData::new(batch.images, [n, 3, h, w]), device);
            drop(m.forward(x));
            let now = params::collect_trained(&m);
            for (name, share, sum) in &mut sums {
                for (s, v) in sum.iter_mut().zip(&now[name.as_str()].values) {
                    *s += f64::from(*v) / *share;
                }
            }
        }
        for (name, _, sum) in sums {
            let t = out.get_mut(&name).expect("a statistic of the model");
            t.values = sum.iter().map(|s| (s / BATCHES as f64) as f32).collect();
        }
        out
    }
}
