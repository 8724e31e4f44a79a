//! 16 x 16 blocks of f32 transposed in AVX-512 registers: the packing
//! that turns rows of a feature map (a channel's positions) into columns
//! (a position's channels) for `wgrad.rs`. Element by element, the same
//! packing took longer than the product it fed for nin2's 1x1 layers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Up to 16 rows of up to 16 values (row r from `rows[r]`, the first
/// `count` rows, the first `n` values of each), transposed: `column(j,
/// v)` for j < n, lane r of `v` holding row r's value j (0 past `count`).
/// With `gates`, a value passes only where the gate's (same place in rows
/// of their own) is above 0, else it is 0: a fused ReLU's mask. Reads
/// nothing past the `n` values of the `count` rows.
///
/// # Safety
/// The CPU has AVX-512F; each of the first `count` pointers, and gates,
/// has `n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn block(
    rows: &[*const f32; 16],
    gates: Option<&[*const f32; 16]>,
    (count, n): (usize, usize),
    mut column: impl FnMut(usize, __m512),
) {
    let lanes = ((1u32 << n.min(16)) - 1) as __mmask16;
    let zero = _mm512_setzero_ps();
    let r: [__m512; 16] = std::array::from_fn(|i| match (i < count, gates) {
        (false, _) => zero,
        (true, None) => _mm512_maskz_loadu_ps(lanes, rows[i]),
        (true, Some(gates)) => {
            let gate = _mm512_maskz_loadu_ps(lanes, gates[i]);
            let open = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(lanes, gate, zero);
            _mm512_maskz_loadu_ps(open, rows[i])
        }
    });
    // Pairs of rows interleaved, then pairs of pairs (64-bit halves), then
    // the 128-bit quarters of each set of four rows exchanged: t[4g + c]
    // holds, in quarter q, column 4q + c of rows 4g..4g + 4.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        match i & 1 {
            0 => _mm512_unpacklo_ps(a, b),
            _ => _mm512_unpackhi_ps(a, b),
        }
    });
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (g, c) = (i / 4, i % 4);
        let a = _mm512_castps_pd(t[4 * g + c / 2]);
        let b = _mm512_castps_pd(t[4 * g + c / 2 + 2]);
        _mm512_castpd_ps(match c % 2 {
            0 => _mm512_unpacklo_pd(a, b),
            _ => _mm512_unpackhi_pd(a, b),
        })
    });
    for c in 0..4 {
        let [a, b, cc, d] = [t[c], t[4 + c], t[8 + c], t[12 + c]];
        let x0 = _mm512_shuffle_f32x4::<0x44>(a, b);
        let x1 = _mm512_shuffle_f32x4::<0xEE>(a, b);
        let y0 = _mm512_shuffle_f32x4::<0x44>(cc, d);
        let y1 = _mm512_shuffle_f32x4::<0xEE>(cc, d);
        let out = [
            _mm512_shuffle_f32x4::<0x88>(x0, y0),
            _mm512_shuffle_f32x4::<0xDD>(x0, y0),
            _mm512_shuffle_f32x4::<0x88>(x1, y1),
            _mm512_shuffle_f32x4::<0xDD>(x1, y1),
        ];
        for (q, v) in out.into_iter().enumerate() {
            if 4 * q + c < n {
                column(4 * q + c, v);
            }
        }
    }
}

/// Fetches the 16 cache lines from `at` on into the L2 cache: a caller
/// that transposes 16 rows of a block of memory fetches the next block
/// this way, one run of lines per 16 x 16 block. Read 16 rows at a time,
/// nin2's 150 MB of 1x1 layer sources came from memory at half the rate
/// of one stream.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn fetch(at: *const f32) {
    for line in 0..16 {
        _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(16 * line).cast());
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn a_block_comes_out_transposed() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: nothing to check");
            return;
        }
        let m: Vec<f32> = (0..16 * 20).map(|i| i as f32).collect();
        // Every third value's gate closed (0, or a NaN).
        let gate: Vec<f32> = (0..m.len()).map(|i| [1.0, 0.0, f32::NAN][i % 3]).collect();
        let cases = [(16, 16), (3, 16), (16, 5), (7, 12), (1, 1)];
        for ((count, n), gated) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let rows: [*const f32; 16] = std::array::from_fn(|r| m[r * 20..].as_ptr());
            let gates: [*const f32; 16] = std::array::from_fn(|r| gate[r * 20..].as_ptr());
            let mut seen = vec![];
            // SAFETY: checked above; every row has 20 values.
            unsafe {
                block(&rows, gated.then_some(&gates), (count, n), |j, v| {
                    let mut lanes = [0.0f32; 16];
                    _mm512_storeu_ps(lanes.as_mut_ptr(), v);
                    seen.push((j, lanes));
                })
            };
            seen.sort_by_key(|s| s.0);
            assert_eq!(seen.len(), n);
            for (j, lanes) in seen {
                for (r, &v) in lanes.iter().enumerate() {
                    let open = !gated || gate[r * 20 + j] > 0.0;
                    let want = if r < count && open {
                        m[r * 20 + j]
                    } else {
                        0.0
                    };
                    assert_eq!(v, want, "count {count}, n {n}: row {r}, column {j}");
                }
            }
        }
    }
}
