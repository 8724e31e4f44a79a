//! How sparse a model's weights are: non-zero parameters, and the bytes of
//! the weights stored densely (float32) beside stored sparsely. The sparse
//! size counts, per tensor, a bitmask (one bit per value, rounded up to
//! whole bytes) plus the non-zero values as float32, or the dense bytes
//! where those are fewer: a dense tensor costs no more than dense.

use crate::proc::layout::Layout;
use crate::proc::sizes;
use crate::weights::{Tensor, Weights};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Density {
    /// Trainable parameters (batch norm's running statistics left out, as
    /// `netc check` counts them) and how many are not zero.
    pub params: u64,
    pub nonzero: u64,
    /// Every tensor, statistics included, as float32.
    pub dense_bytes: u64,
    /// The same, each tensor as a bitmask plus its non-zero values where
    /// that is smaller.
    pub sparse_bytes: u64,
}

/// The bytes of `t` stored the smaller way: dense, or bitmask + non-zero values.
pub fn tensor_bytes(t: &Tensor) -> (u64, u64) {
    let n = t.values.len() as u64;
    let nonzero = t.values.iter().filter(|v| **v != 0.0).count() as u64;
    let dense = 4 * n;
    (dense, dense.min(n.div_ceil(8) + 4 * nonzero))
}

/// The density of `weights`, which `Weights::fit` has checked against `layout`.
pub fn density(weights: &Weights, layout: &Layout) -> Density {
    let mut d = Density::default();
    for (name, _) in sizes::tensors(layout) {
        let t = weights.get(&name);
        let statistic = name.ends_with("running_mean") || name.ends_with("running_var");
        if !statistic {
            d.params += t.values.len() as u64;
            d.nonzero += t.values.iter().filter(|v| **v != 0.0).count() as u64;
        }
        let (dense, sparse) = tensor_bytes(t);
        d.dense_bytes += dense;
        d.sparse_bytes += sparse;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_costs_the_smaller_of_dense_and_bitmask_plus_values() {
        let t = |values: Vec<f32>| Tensor {
            shape: vec![values.len()],
            values,
        };
        // 16 values, 2 non-zero: 2 bytes of bits + 8 bytes of values.
        let mut v = vec![0.0; 16];
        v[3] = 1.0;
        v[9] = -2.0;
        assert_eq!(tensor_bytes(&t(v)), (64, 10));
        // Dense: never more than 4 bytes a value.
        assert_eq!(tensor_bytes(&t(vec![1.0; 16])), (64, 64));
    }
}
