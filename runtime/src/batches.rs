//! Training batches, made on a background thread so the model never waits.
//!
//! Batch `s` depends only on the seed and `s`: examples are drawn in the
//! order of a per-epoch shuffle, and each step's augmentation has its own
//! random stream. A resumed run therefore sees exactly the batches an
//! uninterrupted one would.

use crate::augment;
use crate::data::Dataset;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

pub struct Batch {
    pub step: u64,
    /// N x C x H x W
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub batch_size: usize,
    pub height: usize,
    pub width: usize,
    pub augment: bool,
    pub seed: u64,
}

/// A random stream for one purpose at one step.
pub fn stream(seed: u64, purpose: u64, index: u64) -> StdRng {
    let mix = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(purpose.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(index);
    StdRng::seed_from_u64(mix)
}

/// The seed of dropout's draws at step `step`: a stream of its own per
/// step, so a resumed run (or a measurement between steps) repeats them.
pub fn dropout_seed(seed: u64, step: u64) -> u64 {
    rand::RngCore::next_u64(&mut stream(seed, 3, step))
}

/// Which examples batch `step` holds.
pub struct Sampler {
    n: usize,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut s = Sampler {
            n,
            seed,
            epoch: u64::MAX,
            order: Vec::new(),
        };
        s.shuffle(0);
        s
    }

    fn shuffle(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.order = (0..self.n).collect();
            self.order.shuffle(&mut stream(self.seed, 1, epoch));
            self.epoch = epoch;
        }
    }

    pub fn indices(&mut self, step: u64, batch: usize) -> Vec<usize> {
        let n = self.n as u64;
        (0..batch as u64)
            .map(|j| {
                let i = step * batch as u64 + j;
                self.shuffle(i / n);
                self.order[(i % n) as usize]
            })
            .collect()
    }
}

pub fn make_batch(data: &Dataset, indices: &[usize], plan: &Plan, step: u64) -> Batch {
    let mut rng = stream(plan.seed, 2, step);
    let mut images = Vec::with_capacity(indices.len() * plan.height * plan.width * 3);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let x = augment::train_example(
            data.image(i),
            plan.height,
            plan.width,
            plan.augment,
            &mut rng,
        );
        augment::to_chw(&x, plan.height, plan.width, &mut images);
        labels.push(i64::from(data.labels[i]));
    }
    Batch {
        step,
        images,
        labels,
    }
}

pub struct Batches {
    rx: Receiver<Batch>,
}

impl Batches {
    /// Starts making batches for steps `start`, `start + 1`, ...
    pub fn spawn(data: Arc<Dataset>, plan: Plan, start: u64) -> Self {
        let (tx, rx) = sync_channel(4);
        std::thread::spawn(move || {
            let mut sampler = Sampler::new(data.len(), plan.seed);
            for step in start.. {
                let idx = sampler.indices(step, plan.batch_size);
                if tx.send(make_batch(&data, &idx, &plan, step)).is_err() {
                    break;
                }
            }
        });
        Batches { rx }
    }

    pub fn next(&self) -> Batch {
        self.rx
            .recv()
            .expect("the batch thread runs as long as its receiver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_example_once() {
        let mut s = Sampler::new(10, 7);
        let mut seen: Vec<usize> = (0..5).flat_map(|step| s.indices(step, 2)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_step_gives_the_same_batch_whatever_came_before() {
        let mut a = Sampler::new(100, 3);
        let mut b = Sampler::new(100, 3);
        for step in 0..37 {
            a.indices(step, 16);
        }
        assert_eq!(a.indices(37, 16), b.indices(37, 16));
    }
}
