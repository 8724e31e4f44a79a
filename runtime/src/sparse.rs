//! Sparse storage of pruned kernels in safetensors files: a kernel whose
//! values are at least half +0.0 (only pruning makes such a kernel) is
//! written as a bitmask and its other values, so a pruned checkpoint is
//! smaller on disk. For a tensor `NAME` (`fc1.weight`, `ema/fc1.weight`):
//!
//! - `sparse/bits/NAME`: U8, one bit per value in row-major order, least
//!   significant bit first; 1 where the value is stored;
//! - `sparse/values/NAME`: F32, the stored values in order;
//! - metadata `sparse/NAME`: the shape, as JSON (`[2304,384]`).
//!
//! Every reader of netc's weight files decodes it: the runtime
//! (`checkpoint.rs`), the compiler (`weights.rs`) and the Python readers
//! (`read_safetensors`). Decoding is exact: -0.0 is stored, not dropped.

use crate::params::Named;

pub const BITS: &str = "sparse/bits/";
pub const VALUES: &str = "sparse/values/";
pub const SHAPE: &str = "sparse/";

/// Whether `name` is stored sparsely: a kernel, at least half +0.0.
pub fn worth(name: &str, t: &Named) -> bool {
    let zeros = t.values.iter().filter(|v| v.to_bits() == 0).count();
    (name == "weight" || name.ends_with(".weight"))
        && t.values.len() >= 64
        && 2 * zeros >= t.values.len()
}

/// The bitmask and the stored values of `t`.
pub fn encode(t: &Named) -> (Vec<u8>, Vec<f32>) {
    let mut bits = vec![0u8; t.values.len().div_ceil(8)];
    let mut values = Vec::new();
    for (i, v) in t.values.iter().enumerate() {
        if v.to_bits() != 0 {
            bits[i / 8] |= 1 << (i % 8);
            values.push(*v);
        }
    }
    (bits, values)
}

/// The tensor of `shape` that `bits` and `values` encode, or why they do not fit.
pub fn decode(shape: &[usize], bits: &[u8], values: &[f32]) -> Result<Vec<f32>, String> {
    let n: usize = shape.iter().product();
    if bits.len() != n.div_ceil(8) {
        return Err(format!("{} bytes of bits for {n} values", bits.len()));
    }
    let mut out = vec![0.0; n];
    let mut next = values.iter();
    for (i, v) in out.iter_mut().enumerate() {
        if bits[i / 8] >> (i % 8) & 1 == 1 {
            *v = *next.next().ok_or("fewer values than bits")?;
        }
    }
    if next.next().is_some() {
        return Err("more values than bits".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_exactly() {
        let mut values = vec![0.0f32; 100];
        values[3] = 1.5;
        values[64] = -0.0;
        values[99] = -2.0;
        let t = Named {
            shape: vec![10, 10],
            values: values.clone(),
        };
        assert!(worth("fc1.weight", &t) && !worth("fc1.bias", &t));
        let (bits, stored) = encode(&t);
        assert_eq!((bits.len(), stored.len()), (13, 3));
        let back = decode(&[10, 10], &bits, &stored).unwrap();
        assert!(back
            .iter()
            .zip(&values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(decode(&[10, 10], &bits, &stored[..2]).is_err());
        assert!(decode(&[10, 11], &bits, &stored).is_err());
    }
}
