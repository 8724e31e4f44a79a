//! Kernel taps that only ever meet padding, left out of a convolution.
//!
//! A kernel larger than its map (`conv 4x4` on a 4x1 map) pads wider than
//! the map. tract 0.22 corrupts its memory on such convolutions (found by
//! the random-program test of tests/onnx.rs; a `Pad` node does not help, as
//! tract folds it back into the convolution). The taps that never reach a
//! real cell only multiply zeros, so the convolution without them, and with
//! the padding they needed taken off, gives the same numbers; its pads are
//! then narrower than the map. Other convolutions are written as they are.

/// The taps of one axis that meet the input: (first, count), and the new
/// (before, after) padding. `size` is the input's length on the axis,
/// `before` the `same` padding before it, `out` the output's length.
pub fn taps(size: u64, kernel: u64, stride: u64, before: u64, out: u64) -> (u64, u64, u64, u64) {
    // Tap k reads input cells k - before .. (out - 1) * stride + k - before.
    let first = before.saturating_sub((out - 1) * stride);
    let last = (kernel - 1).min(size - 1 + before);
    let count = last - first + 1;
    let new_before = before - first;
    let new_after = ((out - 1) * stride + count).saturating_sub(size + new_before);
    (first, count, new_before, new_after)
}

/// Whether an axis pads wider than its input.
pub fn needed(size: u64, before: u64, after: u64) -> bool {
    before.max(after) > size
}

/// A filters x channels x kH x kW weight cut to rows `rows` and columns
/// `cols` (first, count).
pub fn slice(weight: &[f32], shape: &[usize], rows: (u64, u64), cols: (u64, u64)) -> Vec<f32> {
    let [f, c, kh, kw] = shape else {
        unreachable!("a convolution's weight has four dimensions")
    };
    let (r0, rn) = (rows.0 as usize, rows.1 as usize);
    let (c0, cn) = (cols.0 as usize, cols.1 as usize);
    let mut out = Vec::with_capacity(f * c * rn * cn);
    for plane in weight.chunks_exact(kh * kw) {
        for r in r0..r0 + rn {
            out.extend(&plane[r * kw + c0..r * kw + c0 + cn]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_taps_that_meet_the_input_stay() {
        // Width 1, kernel 4, `same`: pads (1, 2); only tap 1 meets the cell.
        assert_eq!(taps(1, 4, 1, 1, 1), (1, 1, 0, 0));
        // Width 2, kernel 6: pads (2, 3); taps 1 to 3 meet it, pads (1, 1).
        assert_eq!(taps(2, 6, 1, 2, 2), (1, 3, 1, 1));
        // A kernel that fits keeps every tap and its pads.
        assert_eq!(taps(4, 4, 1, 1, 4), (0, 4, 1, 2));
        assert!(needed(1, 1, 2) && !needed(4, 1, 2));
        let w: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        // Two planes of 3 x 4, rows 1..3, column 1.
        assert_eq!(slice(&w, &[2, 1, 3, 4], (1, 2), (1, 1)), [5., 9., 17., 21.]);
    }
}
