//! Max pooling's output rows on CPUs with AVX2 but not AVX-512 (AMD's Zen
//! 3, say): `maxpool512::down` and `across` 8 values a step, through the
//! same scratch rows padded with -inf, with the same bits. On the Xeon run
//! as an AVX2 CPU (`examples/layers.rs --avx2`), alex4's first pooling at
//! batch 128 took 3.05 ms on these rows and 3.9-4.1 on the portable loop
//! (AVX-512's rows: 2.6). Planes 8 to 32 wide with up to 16 outputs a row
//! (every pooling of the zoo) keep their rows in registers instead
//! (`planes`). The gradient searches 8 windows at a time, as
//! `maxpool512::backward_row` searches 16.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One output row's maximum down the plane's rows `r0..r1` (each `w`
/// wide), as `maxpool512::down` takes it, into the scratch row's columns
/// `left..left + w`. A NaN always wins, as in `cpu::larger`. No read or
/// write leaves the plane or the scratch row: the last columns go one at
/// a time rather than masked (AMD's manual leaves faults on masked-out
/// lanes to the implementation).
///
/// # Safety
/// The CPU has AVX2; `row` must be `maxpool512::scratch_row` long for
/// the same sizes; `plane` must hold the rows `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn down(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    left: usize,
    row: &mut [f32],
) {
    assert!(plane.len() >= r1 * w && left + w <= row.len());
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
}

/// One output row from its scratch row (`down`'s): the maximum of each
/// window of `kernel` columns, windows `stride` apart, as
/// `maxpool512::across` takes it, 8 values a step. No write leaves `y`.
///
/// # Safety
/// The CPU has AVX2; the stride across is 1 or 2; `row` must be
/// `maxpool512::scratch_row` long for the same sizes, -inf outside the
/// plane's columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn across(row: &[f32], (kernel, stride): (usize, usize), y: &mut [f32]) {
    assert!(y.len() * stride + kernel + 32 <= row.len());
    assert!(kernel > 0 && (stride == 1 || stride == 2));
    // The maximum of each window of `kernel` columns starting at every
    // column (8 at a time), then every `stride`-th of them. The scratch
    // row holds 32 values past the last window's: every read lies in it
    // (asserted above).
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
        store(&mut y[j..], v);
    }
}

/// The first lanes of `v` into `y`, as many as it holds, up to 8: no
/// write leaves `y`, and no masked store (slow on AMD's cores).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store(y: &mut [f32], v: __m256) {
    if y.len() >= 8 {
        // SAFETY: `y` holds 8 values from its start.
        unsafe { _mm256_storeu_ps(y.as_mut_ptr(), v) };
        return;
    }
    // The last outputs: 4 from the low half, then one at a time.
    let mut half = _mm256_castps256_ps128(v);
    let mut at = 0;
    if y.len() >= 4 {
        // SAFETY: `y` holds 4 values from its start.
        unsafe { _mm_storeu_ps(y.as_mut_ptr(), half) };
        (half, at) = (_mm256_extractf128_ps::<1>(v), 4);
    }
    for y in &mut y[at..] {
        *y = _mm_cvtss_f32(half);
        half = _mm_castsi128_ps(_mm_srli_si128::<4>(_mm_castps_si128(half)));
    }
}

/// Whether `planes` takes these sizes: a plane's row in up to 4 vectors
/// (8 to 32 columns), an output row in up to 2, windows up to 8 columns
/// wide (every pooling of the zoo: 24- and 12-wide planes, 3 x 3 windows).
pub fn in_registers(w: usize, ow: usize, kernel: usize) -> bool {
    (8..=32).contains(&w) && ow <= 16 && (1..=8).contains(&kernel)
}

/// The planes of `x` (`h` x `w` each) pooled into `y`, as many as `y`
/// holds, as `down` and `across` pool each row, bit for bit, with `rows`
/// each output row's input rows: down the window's rows into up to four
/// vectors (columns 0-7, 8-15, 16-23, and the row's last 8, which may
/// overlap the one before), then across: each tap of each output vector
/// picks its columns out of those vectors with one 8-lane permute per
/// vector it reads and a blend, from -inf (the padding). AVX2 has no
/// two-vector permute, hence the blends; but the rows never go through
/// memory, and a plane is one call instead of two per output row. On the
/// Xeon run as an AVX2 CPU, 6 rounds in turns at batch 128: squeeze1's
/// second pooling (12-wide planes) 0.75-0.89 of the scratch rows' time,
/// its first (24-wide) 0.84-0.99 (PyTorch, channels-last: 0.6 ms for the
/// second; these, 0.9-1.5). No load leaves its row of the plane.
///
/// # Safety
/// The CPU has AVX2; `in_registers(w, ow, kernel)`; `rows` lie in 0..h (a
/// span may be empty).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn planes(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    (kernel, stride): (usize, usize),
    y: &mut [f32],
) {
    assert!(in_registers(w, ow, kernel) && stride > 0);
    assert!(rows.iter().all(|&(r0, r1)| r0 <= r1 && r1 <= h));
    let oh = rows.len();
    // The vectors of a row: where each starts, the last at w - 8.
    let count = w.div_ceil(8);
    let starts: [usize; 4] = std::array::from_fn(|q| (8 * q).min(w - 8));
    // Which vector and lane hold column c.
    let source = |c: usize| match c < 8 * (count - 1) {
        true => (c / 8, c % 8),
        false => (count - 1, c - (w - 8)),
    };
    // Each output vector's taps: for each vector of the row, the lanes it
    // gives (all ones) and their index in it; lanes given by none (the
    // padding, or past the last output) stay -inf.
    let zero = _mm256_setzero_si256();
    let mut taps = [[[(zero, zero); 4]; 8]; 2];
    let mut used = [[0u8; 8]; 2];
    for o in 0..ow.div_ceil(8) {
        for t in 0..kernel {
            let (mut idx, mut from) = ([[0i32; 8]; 4], [[0i32; 8]; 4]);
            for l in 0..8 {
                let (j, col) = (8 * o + l, (8 * o + l) * stride + t);
                if j < ow && col >= left && col - left < w {
                    let (q, lane) = source(col - left);
                    (idx[q][l], from[q][l]) = (lane as i32, -1);
                    used[o][t] |= 1 << q;
                }
            }
            for q in 0..count {
                taps[o][t][q] = (
                    _mm256_loadu_si256(idx[q].as_ptr().cast()),
                    _mm256_loadu_si256(from[q].as_ptr().cast()),
                );
            }
        }
    }
    let none = _mm256_set1_ps(f32::NEG_INFINITY);
    for (plane, y) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (y, &(r0, r1)) in y.chunks_exact_mut(ow).zip(rows) {
            let at = |r: usize, q: usize| _mm256_loadu_ps(plane[r * w + starts[q]..][..8].as_ptr());
            // The first row as it is (the same bits as its maximum with
            // -inf); -inf for a window wholly in the padding.
            let mut v = [none; 4];
            if r0 < r1 {
                for (q, v) in v.iter_mut().enumerate().take(count) {
                    *v = at(r0, q);
                }
            }
            for r in r0 + 1..r1 {
                for (q, v) in v.iter_mut().enumerate().take(count) {
                    *v = larger(*v, at(r, q));
                }
            }
            for o in 0..ow.div_ceil(8) {
                let tap = |t: usize| {
                    let mut value = none;
                    for (q, &(idx, from)) in taps[o][t].iter().enumerate().take(count) {
                        if used[o][t] & 1 << q != 0 {
                            let picked = _mm256_permutevar8x32_ps(v[q], idx);
                            value = _mm256_blendv_ps(value, picked, _mm256_castsi256_ps(from));
                        }
                    }
                    value
                };
                let mut best = tap(0);
                for t in 1..kernel {
                    best = larger(best, tap(t));
                }
                store(&mut y[8 * o..], best);
            }
        }
    }
}

/// The gradient of one output row, as `maxpool512::backward_row` routes
/// it, bit for bit: each output's (`y`, `dy`) goes to the first cell of its
/// window, row by row, that holds the output's value (`==`, or both NaN).
/// The search takes 8 outputs at a time, reading each cell of their
/// windows as `across` reads its rows (one load for stride 1; two and a
/// shuffle for stride 2), with the lanes whose column lies outside the
/// plane left out of the match; the gradients are then added one by one,
/// in the order of the outputs. As in `down`, no read leaves the plane: a
/// vector that would goes lane by lane.
///
/// # Safety
/// The CPU has AVX2; the stride across is 1 or 2; `plane` and `dx` must
/// hold the rows `r0..r1` (each `w` wide), and `y` and `dy` the same number
/// of values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn backward_row(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    left: usize,
    (kernel, stride): (usize, usize),
    (y, dy): (&[f32], &[f32]),
    dx: &mut [f32],
) {
    assert!(plane.len() >= r1 * w && dx.len() >= r1 * w && y.len() == dy.len());
    assert!((stride == 1 || stride == 2) && r1 * w <= i32::MAX as usize);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let step = _mm256_mullo_epi32(lane, _mm256_set1_epi32(stride as i32));
    let plus = |v: __m256i, k: isize| _mm256_add_epi32(v, _mm256_set1_epi32(k as i32));
    // Lanes whose column lies in 0..w: padding never holds the value.
    let (none, width) = (_mm256_set1_epi32(-1), _mm256_set1_epi32(w as i32));
    let within = |col: __m256i| {
        _mm256_and_si256(
            _mm256_cmpgt_epi32(col, none),
            _mm256_cmpgt_epi32(width, col),
        )
    };
    // 8 values from column `first` of row `r`: those whose column lies in
    // 0..w, the others whatever the plane holds there (or 0 at its ends).
    let fetch = |r: usize, first: isize| {
        let row = plane.as_ptr().add(r * w);
        let at = (r * w) as isize + first;
        if at >= 0 && at as usize + 8 <= plane.len() {
            _mm256_loadu_ps(plane.as_ptr().add(at as usize))
        } else {
            let lanes: [f32; 8] = std::array::from_fn(|i| {
                let col = first + i as isize;
                match col >= 0 && (col as usize) < w {
                    true => *row.offset(col),
                    false => 0.0,
                }
            });
            _mm256_loadu_ps(lanes.as_ptr())
        }
    };
    let (mut tops, mut cells) = ([0.0f32; 8], [0i32; 8]);
    for j in (0..y.len()).step_by(8) {
        let count = (y.len() - j).min(8);
        tops[..count].copy_from_slice(&y[j..j + count]);
        let top = _mm256_loadu_ps(tops.as_ptr());
        let top_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(top, top);
        let mut open = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), lane);
        let mut cell = _mm256_setzero_si256();
        for r in r0..r1 {
            for t in 0..kernel {
                // Column of cell t of the first window of the 8, and of
                // each lane's window.
                let first = (j * stride + t) as isize - left as isize;
                let col = plus(step, first);
                let v = if stride == 1 {
                    fetch(r, first)
                } else {
                    // The even columns of 16, as `across` picks its windows.
                    let (lo, hi) = (fetch(r, first), fetch(r, first + 8));
                    let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                        even,
                    )))
                };
                let same = _mm256_or_ps(
                    _mm256_cmp_ps::<_CMP_EQ_OQ>(v, top),
                    _mm256_and_ps(top_nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v)),
                );
                let hit = _mm256_and_si256(
                    _mm256_and_si256(open, within(col)),
                    _mm256_castps_si256(same),
                );
                cell = _mm256_blendv_epi8(cell, plus(col, (r * w) as isize), hit);
                open = _mm256_andnot_si256(hit, open);
            }
        }
        _mm256_storeu_si256(cells.as_mut_ptr().cast(), cell);
        let waiting = _mm256_movemask_ps(_mm256_castsi256_ps(open)) as u32;
        let mut found = ((1u32 << count) - 1) & !waiting;
        while found != 0 {
            let l = found.trailing_zeros() as usize;
            dx[cells[l] as usize] += dy[j + l];
            found &= found - 1;
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
