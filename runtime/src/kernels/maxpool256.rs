//! Max pooling's output rows on CPUs with AVX2 but not AVX-512 (AMD's Zen
//! 3, say): `maxpool512::run` 8 values a step, through the same scratch
//! row padded with -inf, with the same bits. On the Xeon run as an AVX2
//! CPU (`examples/layers.rs --avx2`), alex4's first pooling at batch 128
//! took 3.05 ms on these rows and 3.9-4.1 on the portable loop (AVX-512's
//! rows: 2.6). The gradient keeps the portable loop.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One output row, as `maxpool512::run` computes it: the maximum over the
/// plane's rows `r0..r1` (each `w` wide) and over each window's `kernel`
/// columns, windows `stride` apart from column `-left`. A NaN always wins,
/// as in `cpu::larger`. No read or write leaves the plane, the scratch row
/// or `y`: the last columns go one at a time rather than masked (AMD's
/// manual leaves faults on masked-out lanes to the implementation).
///
/// # Safety
/// The CPU has AVX2; the stride across is 1 or 2; `row` must come from
/// `maxpool512::scratch` with the same sizes; `plane` must hold the rows
/// `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
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
    assert!(left + w <= row.len() && kernel > 0 && (stride == 1 || stride == 2));
    // Down the rows, 8 columns at a time, into the row's columns `left..`;
    // then 4 (12-wide planes: alex4's second pooling, squeeze1's), then
    // one at a time, so the -inf past them stays.
    let out = &mut row[left..left + w];
    let (eights, fours) = (w - w % 8, w - w % 4);
    for c in (0..eights).step_by(8) {
        let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
        for r in r0..r1 {
            best = larger(best, _mm256_loadu_ps(plane[r * w + c..][..8].as_ptr()));
        }
        _mm256_storeu_ps(out[c..][..8].as_mut_ptr(), best);
    }
    if fours > eights {
        let mut best = _mm_set1_ps(f32::NEG_INFINITY);
        for r in r0..r1 {
            best = larger4(best, _mm_loadu_ps(plane[r * w + eights..][..4].as_ptr()));
        }
        _mm_storeu_ps(out[eights..][..4].as_mut_ptr(), best);
    }
    for (c, out) in out.iter_mut().enumerate().skip(fours) {
        *out = (r0..r1).fold(f32::NEG_INFINITY, |m, r| {
            super::cpu::larger(m, plane[r * w + c])
        });
    }
    // Across: the maximum of each window of `kernel` columns starting at
    // every column (8 at a time), then every `stride`-th of them. The
    // scratch row holds 32 values past the last window's: every read lies
    // in it (asserted above).
    let row = row.as_ptr();
    let window = |at: usize| {
        let mut best = _mm256_loadu_ps(row.add(at));
        for t in 1..kernel {
            best = larger(best, _mm256_loadu_ps(row.add(at + t)));
        }
        best
    };
    for j in (0..y.len()).step_by(8) {
        let v = if stride == 1 {
            window(j)
        } else {
            // Windows 2j, 2j + 2, ... from two vectors of windows: the even
            // lanes of each 128-bit half, then the halves in order.
            let (lo, hi) = (window(2 * j), window(2 * j + 8));
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                even,
            )))
        };
        let y = &mut y[j..];
        if y.len() >= 8 {
            _mm256_storeu_ps(y.as_mut_ptr(), v);
            continue;
        }
        // The last outputs: 4 from the low half, then one at a time.
        let mut half = _mm256_castps256_ps128(v);
        let mut at = 0;
        if y.len() >= 4 {
            _mm_storeu_ps(y.as_mut_ptr(), half);
            (half, at) = (_mm256_extractf128_ps::<1>(v), 4);
        }
        for y in &mut y[at..] {
            *y = _mm_cvtss_f32(half);
            half = _mm_castsi128_ps(_mm_srli_si128::<4>(_mm_castps_si128(half)));
        }
    }
}

/// `v` where it beats `best` or is a NaN; else `best`, as `cpu::larger`
/// chooses, bit for bit. `_mm256_max_ps` returns its second operand on a
/// tie or a NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn larger(best: __m256, v: __m256) -> __m256 {
    let max = _mm256_max_ps(v, best);
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
    _mm256_blendv_ps(max, v, nan)
}

/// `larger` on 4 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn larger4(best: __m128, v: __m128) -> __m128 {
    let max = _mm_max_ps(v, best);
    let nan = _mm_cmpunord_ps(v, v);
    _mm_blendv_ps(max, v, nan)
}
