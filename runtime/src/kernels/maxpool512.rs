//! Max pooling's output rows on CPUs with AVX-512, for horizontal strides
//! of 1 and 2 (every pooling layer of the zoo). The portable loop in
//! `cpu::max_pool` takes the maximum down the window's rows vectorized but
//! across each window's columns one output at a time; here both passes
//! take 16 values a step, the second from a row padded with -inf so that
//! every window is whole.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether `Row::run` may be called: the CPU has AVX-512 and the stride
/// across is 1 or 2.
pub fn available(stride: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (stride == 1 || stride == 2) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = stride;
        false
    }
}

/// A scratch row for a plane `w` wide, padded by `left` on the left, for
/// `ow` outputs of windows `kernel` wide, `stride` apart: -inf outside the
/// plane's columns, which `run` rewrites for every output row, and 32
/// values to spare for whole-vector reads past the last window.
pub fn scratch(w: usize, left: usize, ow: usize, kernel: usize, stride: usize) -> Vec<f32> {
    let len = (left + w).max(ow * stride + kernel) + 48;
    vec![f32::NEG_INFINITY; len]
}

/// One output row: the maximum over the plane's rows `r0..r1` (each `w`
/// wide) and over each window's `kernel` columns, windows `stride` apart
/// from column `-left`. A NaN always wins, as in `cpu::larger`.
///
/// # Safety
/// `available(stride)` must be true; `row` must come from `scratch` with
/// the same sizes; `plane` must hold the rows `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn run(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    left: usize,
    (kernel, stride): (usize, usize),
    row: &mut [f32],
    y: &mut [f32],
) {
    assert!(plane.len() >= r1 * w && y.len() * stride + kernel + 32 <= row.len());
    assert!(left + w <= row.len() && kernel > 0);
    let lanes = |left: usize| ((1u32 << left.min(16)) - 1) as __mmask16;
    // Down the rows, 16 columns at a time, into the row's columns `left..`.
    let out = row.as_mut_ptr().add(left);
    for c in (0..w).step_by(16) {
        let mask = lanes(w - c);
        let mut best = _mm512_set1_ps(f32::NEG_INFINITY);
        for r in r0..r1 {
            let v = _mm512_maskz_loadu_ps(mask, plane.as_ptr().add(r * w + c));
            best = larger(best, v);
        }
        _mm512_mask_storeu_ps(out.add(c), mask, best);
    }
    // Across: the maximum of each window of `kernel` columns starting at
    // every column (16 at a time), then every `stride`-th of them.
    let row = row.as_ptr();
    let window = |at: usize| {
        let mut best = _mm512_loadu_ps(row.add(at));
        for t in 1..kernel {
            best = larger(best, _mm512_loadu_ps(row.add(at + t)));
        }
        best
    };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for j in (0..y.len()).step_by(16) {
        let v = if stride == 1 {
            window(j)
        } else {
            let (lo, hi) = (window(2 * j), window(2 * j + 16));
            _mm512_permutex2var_ps(lo, even, hi)
        };
        _mm512_mask_storeu_ps(y.as_mut_ptr().add(j), lanes(y.len() - j), v);
    }
}

/// `v` where it beats `best` or is a NaN; else `best`, as `cpu::larger`
/// chooses, bit for bit (on a tie of 0.0 and -0.0 the earlier stays).
/// `_mm512_max_ps` returns its second operand on a tie or a NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn larger(best: __m512, v: __m512) -> __m512 {
    let max = _mm512_max_ps(v, best);
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    _mm512_mask_mov_ps(max, nan, v)
}
