//! An exponential moving average of every trainable tensor, with
//! TensorFlow's rule: decay = min(0.9999, (1 + step) / (10 + step)).

use crate::params::{self, is_statistic, Tensors};
use burn::prelude::*;

pub const MAX_DECAY: f64 = 0.9999;

pub fn decay(step: u64) -> f64 {
    MAX_DECAY.min((1.0 + step as f64) / (10.0 + step as f64))
}

#[derive(Debug, Clone)]
pub struct Ema {
    pub shadow: Tensors,
}

impl Ema {
    /// Starts from the model's current values, as TensorFlow does.
    pub fn new<B: Backend, M: Module<B>>(model: &M) -> Self {
        Ema {
            shadow: params::collect(model),
        }
    }

    /// shadow = decay * shadow + (1 - decay) * value, for step `step`.
    pub fn update(&mut self, current: &Tensors, step: u64) {
        let d = decay(step) as f32;
        for (name, value) in current {
            match self.shadow.get_mut(name) {
                Some(s) if !is_statistic(name) && s.shape == value.shape => {
                    for (a, b) in s.values.iter_mut().zip(&value.values) {
                        *a = d * *a + (1.0 - d) * b;
                    }
                }
                // Running statistics are not averaged: they follow the model
                // (and are measured for the average when it is used: statistics.rs).
                _ => {
                    self.shadow.insert(name.clone(), value.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Named;

    #[test]
    fn decay_follows_tensorflow() {
        assert!((decay(0) - 0.1).abs() < 1e-12);
        assert!((decay(90) - 0.91).abs() < 1e-12);
        assert_eq!(decay(1_000_000), MAX_DECAY);
    }

    #[test]
    fn update_moves_toward_the_value() {
        let t = |v: f32| Named {
            shape: vec![1],
            values: vec![v],
        };
        let mut ema = Ema {
            shadow: [
                ("w".to_string(), t(0.0)),
                ("bn.running_mean".to_string(), t(0.0)),
            ]
            .into(),
        };
        let now: Tensors = [
            ("w".to_string(), t(10.0)),
            ("bn.running_mean".to_string(), t(5.0)),
        ]
        .into();
        ema.update(&now, 0); // decay 0.1
        assert!((ema.shadow["w"].values[0] - 9.0).abs() < 1e-6);
        assert_eq!(ema.shadow["bn.running_mean"].values[0], 5.0);
        ema.update(&now, 90); // decay 0.91: 0.91 * 9 + 0.09 * 10
        assert!((ema.shadow["w"].values[0] - 9.09).abs() < 1e-5);
    }
}
