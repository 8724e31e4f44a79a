//! 16 x 16 blocks of f32 transposed in AVX-512 registers (8 x 8 in AVX2's):
//! the packing that turns rows of a feature map (a channel's positions)
//! into columns (a position's channels) for `wgrad.rs`. Element by
//! element, the same packing took longer than the product it fed for
//! nin2's 1x1 layers.

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

/// Up to 8 rows of up to 8 values transposed in AVX2's registers, as
/// `block` does 16: `column(j, v)` for j < n, lane r of `v` holding row
/// r's value j (0 past `count`, and where a gate is not above 0). With
/// `whole`, each row is read as 8 values even where `n` is fewer (the
/// values past `n` go only to columns not handed out); without, nothing
/// past the `n` values of the `count` rows is read: a short row goes value
/// by value rather than through a masked load (AMD's manual leaves faults
/// on masked-out lanes to the implementation).
///
/// # Safety
/// The CPU has AVX2; each of the first `count` pointers, and gates, has
/// `n` values, or 8 with `whole`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn block8(
    rows: &[*const f32; 8],
    gates: Option<&[*const f32; 8]>,
    (count, n, whole): (usize, usize, bool),
    mut column: impl FnMut(usize, __m256),
) {
    let zero = _mm256_setzero_ps();
    let load = |p: *const f32| match whole || n >= 8 {
        true => _mm256_loadu_ps(p),
        false => {
            let lanes: [f32; 8] = std::array::from_fn(|j| if j < n { *p.add(j) } else { 0.0 });
            _mm256_loadu_ps(lanes.as_ptr())
        }
    };
    // Loops, not `std::array::from_fn`: `from_fn` is built without AVX2,
    // so it cannot inline a closure that uses it, and called it value by
    // value, each vector returned through memory (3 % of squeeze1's
    // training as an AVX2 CPU).
    let mut r = [zero; 8];
    for (i, r) in r.iter_mut().enumerate().take(count) {
        *r = match gates {
            None => load(rows[i]),
            // A closed gate's value is 0 (+0.0, whatever dy holds there,
            // as `block`'s masked load gives).
            Some(gates) => {
                let open = _mm256_cmp_ps::<_CMP_GT_OQ>(load(gates[i]), zero);
                _mm256_and_ps(open, load(rows[i]))
            }
        };
    }
    // Pairs of rows interleaved, then pairs of pairs, then the 128-bit
    // halves exchanged: the usual 8 x 8 transpose.
    let mut t = [zero; 8];
    for (i, t) in t.iter_mut().enumerate() {
        let (a, b) = (r[i & !1], r[i | 1]);
        *t = match i & 1 {
            0 => _mm256_unpacklo_ps(a, b),
            _ => _mm256_unpackhi_ps(a, b),
        };
    }
    let mut u = [zero; 8];
    for (i, u) in u.iter_mut().enumerate() {
        let (g, c) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + c / 2], t[4 * g + c / 2 + 2]);
        *u = match c % 2 {
            0 => _mm256_shuffle_ps::<0x44>(a, b),
            _ => _mm256_shuffle_ps::<0xEE>(a, b),
        };
    }
    for j in 0..n.min(8) {
        let (a, b) = (u[j % 4], u[4 + j % 4]);
        column(
            j,
            match j < 4 {
                true => _mm256_permute2f128_ps::<0x20>(a, b),
                false => _mm256_permute2f128_ps::<0x31>(a, b),
            },
        );
    }
}

/// Fetches the `lines` cache lines from `at` on into the L2 cache: a
/// caller that transposes rows of a block of memory fetches the next block
/// this way, one run of lines per block (16 for `block`, 4 for `block8`).
/// Read 16 rows at a time, nin2's 150 MB of 1x1 layer sources came from
/// memory at half the rate of one stream.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn fetch(at: *const f32, lines: usize) {
    for line in 0..lines {
        // SAFETY: a prefetch reads nothing and never faults, wherever it
        // points.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(16 * line).cast()) };
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

    #[test]
    fn a_block_of_8_comes_out_transposed() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: nothing to check");
            return;
        }
        let m: Vec<f32> = (0..8 * 11).map(|i| i as f32 + 0.5).collect();
        let gate: Vec<f32> = (0..m.len()).map(|i| [1.0, 0.0, f32::NAN][i % 3]).collect();
        let cases = [(8, 8), (3, 8), (8, 5), (7, 6), (1, 1)];
        let cases = cases
            .into_iter()
            .flat_map(|(c, n)| [(c, n, false), (c, n, true)]);
        for ((count, n, whole), gated) in cases.flat_map(|c| [(c, false), (c, true)]) {
            let rows: [*const f32; 8] = std::array::from_fn(|r| m[r * 11..].as_ptr());
            let gates: [*const f32; 8] = std::array::from_fn(|r| gate[r * 11..].as_ptr());
            let mut seen = vec![];
            // SAFETY: checked above; every row has 11 values.
            unsafe {
                block8(&rows, gated.then_some(&gates), (count, n, whole), |j, v| {
                    let mut lanes = [0.0f32; 8];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                    seen.push((j, lanes));
                })
            };
            assert_eq!(
                seen.iter().map(|s| s.0).collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            for (j, lanes) in seen {
                for (r, &v) in lanes.iter().enumerate() {
                    let open = !gated || gate[r * 11 + j] > 0.0;
                    let want = if r < count && open {
                        m[r * 11 + j]
                    } else {
                        0.0
                    };
                    assert_eq!(
                        v.to_bits(),
                        want.to_bits(),
                        "count {count}, n {n}: row {r}, column {j}"
                    );
                }
            }
        }
    }
}
