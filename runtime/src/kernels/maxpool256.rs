//! Max pooling's output rows on CPUs with AVX2 but not AVX-512 (AMD's Zen
//! 3, say): `maxpool512::down` and `across` 8 values a step, through the
//! same scratch rows padded with -inf, with the same bits. On the Xeon run
//! as an AVX2 CPU (`examples/layers.rs --avx2`), alex4's first pooling at
//! batch 128 took 3.05 ms on these rows and 3.9-4.1 on the portable loop
//! (AVX-512's rows: 2.6). Planes 8 to 32 wide with up to 16 outputs a row
//! (every pooling of the zoo) keep their rows in registers instead
//! (`planes`), and those whose windows are 2 columns apart (every pooling
//! of the zoo again) split each row into its even and odd columns
//! (`pairs`). The gradient of those planes takes a plane's output row at
//! a time (`pairs_backward`); on other planes it searches 8 windows at a
//! time, as `maxpool512::backward_row` searches 16.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
#[cfg(target_arch = "x86_64")]
use std::mem::MaybeUninit;

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
pub unsafe fn across(row: &[f32], (kernel, stride): (usize, usize), y: &mut [MaybeUninit<f32>]) {
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
fn store(y: &mut [MaybeUninit<f32>], v: __m256) {
    if y.len() >= 8 {
        // SAFETY: `y` holds 8 values from its start.
        unsafe { _mm256_storeu_ps(y.as_mut_ptr().cast(), v) };
        return;
    }
    // The last outputs: 4 from the low half, then one at a time.
    let mut half = _mm256_castps256_ps128(v);
    let mut at = 0;
    if y.len() >= 4 {
        // SAFETY: `y` holds 4 values from its start.
        unsafe { _mm_storeu_ps(y.as_mut_ptr().cast(), half) };
        (half, at) = (_mm256_extractf128_ps::<1>(v), 4);
    }
    for y in &mut y[at..] {
        y.write(_mm_cvtss_f32(half));
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
/// With `NAN` false, `x` holds no NaN (else a NaN may be lost).
///
/// # Safety
/// The CPU has AVX2; `in_registers(w, ow, kernel)`; `rows` lie in 0..h (a
/// span may be empty).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn planes<const NAN: bool>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    (kernel, stride): (usize, usize),
    y: &mut [MaybeUninit<f32>],
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
            let v = down_in_registers::<NAN>(plane, w, (r0, r1), &starts[..count]);
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
                    best = pick::<NAN>(best, tap(t));
                }
                store(&mut y[8 * o..], best);
            }
        }
    }
}

/// The maximum down the rows `r0..r1` of a plane (each `w` wide) of the
/// vectors of 8 columns from each of `starts`, -inf past them: the first
/// row as it is (the same bits as its maximum with -inf); -inf for a
/// window wholly in the padding.
///
/// # Safety
/// The CPU has AVX2; up to 4 starts, each at most `w - 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn down_in_registers<const NAN: bool>(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    starts: &[usize],
) -> [__m256; 4] {
    let at = |r: usize, q: usize| _mm256_loadu_ps(plane[r * w + starts[q]..][..8].as_ptr());
    let mut v = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
    if r0 < r1 {
        for (q, v) in v.iter_mut().enumerate().take(starts.len()) {
            *v = at(r0, q);
        }
    }
    for r in r0 + 1..r1 {
        for (q, v) in v.iter_mut().enumerate().take(starts.len()) {
            *v = pick::<NAN>(*v, at(r, q));
        }
    }
    v
}

/// Whether `pairs` takes these sizes: stride 2 across, a plane's row in
/// up to 4 vectors (8 to 32 columns), up to 16 outputs a row, and taps
/// that lie at most one pair of columns left or right of the output's
/// own (`t - left` in -2..=3: windows up to 3 wide with any padding the
/// compiler makes, up to 4 with none on the left).
pub fn in_pairs(w: usize, ow: usize, (kernel, left, stride): (usize, usize, usize)) -> bool {
    stride == 2
        && (8..=32).contains(&w)
        && ow <= 16
        && kernel > 0
        && left <= 2
        && kernel <= 4 + left
}

/// `planes` for windows 2 columns apart (every pooling of the zoo), bit
/// for bit: down the window's rows as `planes` goes, then the row split
/// into its even and its odd columns (two shuffles and two lane permutes
/// per 16 columns), so that each tap of 8 outputs is one of those vectors,
/// or one moved a lane left or right (a permute and a blend). `planes`
/// picked each tap's lanes out of every vector of the row with a permute
/// and a variable blend, and read its tables from memory on every row. On
/// the Xeon as an AVX2 CPU (`examples/layers.rs --avx2`, batch 4 so that
/// the planes stay in cache, 6 rounds in turns, NaNs possible), the zoo's
/// poolings took 0.56-0.75 of `planes`' time (medians of the rounds' ratios:
/// 24-wide planes 0.56 and 0.67, 12-wide 0.73 and 0.75).
///
/// With `NAN` false, `x` holds no NaN (else a NaN may be lost).
///
/// # Safety
/// The CPU has AVX2; `in_pairs(w, ow, (kernel, left, 2))`; `rows` lie in
/// 0..h (a span may be empty).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn pairs<const NAN: bool>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    kernel: usize,
    y: &mut [MaybeUninit<f32>],
) {
    assert!(in_pairs(w, ow, (kernel, left, 2)));
    assert!(rows.iter().all(|&(r0, r1)| r0 <= r1 && r1 <= h));
    // The row's vectors as a constant, so that the compiler keeps them in
    // registers (with their count a variable, it kept them on the stack:
    // the zoo's poolings took about 1.3 times as long).
    let cols = (left, ow);
    match w.div_ceil(8) {
        1 => pairs_of::<NAN, 1>(x, (h, w), rows, cols, kernel, y),
        2 => pairs_of::<NAN, 2>(x, (h, w), rows, cols, kernel, y),
        3 => pairs_of::<NAN, 3>(x, (h, w), rows, cols, kernel, y),
        _ => pairs_of::<NAN, 4>(x, (h, w), rows, cols, kernel, y),
    }
}

/// What `pairs` and `pairs_backward` make of a plane's sizes, once per
/// call: where a row's vectors are loaded, how the last one is moved into
/// place, and where each tap's values lie among the even and odd columns.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Pairs<const COUNT: usize> {
    /// Where each vector of a row is loaded: the last at w - 8 (no load
    /// leaves the row); that one is then moved to start at its column 8
    /// (COUNT - 1), with -inf past the row's end.
    starts: [usize; 4],
    shift: usize,
    to_place: __m256i,
    past: __m256,
    /// Each tap's source: the even (0) or odd (1) columns, moved by -1, 0
    /// or 1 lanes: column 2j + t - left is (2 (j + s) + p).
    taps: [(usize, isize); 8],
    /// Vectors of even (and of odd) columns that hold any of the row's.
    real: usize,
    rotate: __m256i,
    back: __m256i,
    none: __m256,
}

#[cfg(target_arch = "x86_64")]
impl<const COUNT: usize> Pairs<COUNT> {
    #[target_feature(enable = "avx2")]
    fn new(w: usize, left: usize) -> Self {
        assert!(w.div_ceil(8) == COUNT && w >= 8);
        let shift = 8 * COUNT - w;
        let lanes: [i32; 8] = std::array::from_fn(|l| (l + shift).min(7) as i32);
        Pairs {
            starts: std::array::from_fn(|q| (8 * q).min(w - 8)),
            shift,
            // SAFETY: `lanes` holds 8 values.
            to_place: unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) },
            past: _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                _mm256_set1_epi32((7 - shift) as i32),
            )),
            taps: std::array::from_fn(|t| {
                let u = t as isize - left as isize;
                (u.rem_euclid(2) as usize, u.div_euclid(2))
            }),
            real: COUNT.div_ceil(2),
            rotate: _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0),
            back: _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6),
            none: _mm256_set1_ps(f32::NEG_INFINITY),
        }
    }

    /// A row's vectors (`down_in_registers`'), the last moved into place,
    /// split into their even and odd columns: 8 each from every pair of
    /// vectors (two shuffles and two lane permutes), -inf past the row.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn columns(self, mut v: [__m256; 4]) -> [[__m256; 2]; 2] {
        // (A window wholly in the padding stays -inf.)
        if self.shift > 0 {
            let last = &mut v[COUNT - 1];
            *last = _mm256_blendv_ps(
                _mm256_permutevar8x32_ps(*last, self.to_place),
                self.none,
                self.past,
            );
        }
        let split = |a: __m256, b: __m256| {
            let order = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            (
                order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)),
                order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)),
            )
        };
        let (e0, o0) = split(v[0], v[1]);
        let (e1, o1) = match self.real > 1 {
            true => split(v[2], v[3]),
            false => (self.none, self.none),
        };
        [[e0, e1], [o0, o1]]
    }

    /// Output vector `o`'s values of tap (p, s): lanes 8o + s.. of the
    /// columns p, -inf outside them (from vector `real` on: nothing to
    /// move).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn tap(self, columns: &[[__m256; 2]; 2], o: usize, (p, s): (usize, isize)) -> __m256 {
        let c = &columns[p];
        let next = |i: usize| c.get(i).copied().unwrap_or(self.none);
        match s {
            0 => next(o),
            1 => _mm256_blend_ps::<0x80>(
                _mm256_permutevar8x32_ps(next(o), self.rotate),
                match o + 1 < self.real {
                    true => _mm256_permutevar8x32_ps(next(o + 1), self.rotate),
                    false => self.none,
                },
            ),
            _ => _mm256_blend_ps::<0x01>(
                _mm256_permutevar8x32_ps(next(o), self.back),
                match o {
                    0 => self.none,
                    _ => _mm256_permutevar8x32_ps(next(o - 1), self.back),
                },
            ),
        }
    }
}

/// `pairs` on rows of `COUNT` vectors.
///
/// # Safety
/// As for `pairs`, with `COUNT` = `w.div_ceil(8)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pairs_of<const NAN: bool, const COUNT: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    kernel: usize,
    y: &mut [MaybeUninit<f32>],
) {
    assert!(in_pairs(w, ow, (kernel, left, 2)) && w.div_ceil(8) == COUNT);
    let oh = rows.len();
    let pairs = Pairs::<COUNT>::new(w, left);
    let (taps, starts) = (&pairs.taps[..kernel], &pairs.starts[..COUNT]);
    for (plane, y) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (y, &(r0, r1)) in y.chunks_exact_mut(ow).zip(rows) {
            let v = down_in_registers::<NAN>(plane, w, (r0, r1), starts);
            let columns = pairs.columns(v);
            for o in 0..ow.div_ceil(8) {
                let mut best = pairs.tap(&columns, o, taps[0]);
                for &t in &taps[1..] {
                    best = pick::<NAN>(best, pairs.tap(&columns, o, t));
                }
                store(&mut y[8 * o..], best);
            }
        }
    }
}

/// The gradient of the planes of `pairs` (`x`, and its outputs `y`) into
/// `dx`, as `backward_row` routes it, bit for bit: each output's (`y`,
/// `dy`) goes to the first cell of its window, row by row, that holds the
/// output's value (`==`, or both NaN), added in the order of the outputs,
/// onto zeros; then with `relu` the gradient of the fused ReLU whose
/// output `x` is (`cpu::relu_gate`), while the plane is in cache. Each row
/// of a window is read once for all the outputs of an output row, and
/// split into its even and odd columns as `pairs` splits it; each tap is
/// then one of those vectors, or one moved a lane, matched against the
/// outputs with the lanes whose column lies outside the plane left out.
/// `backward_row` read two vectors and shuffled them for each tap of each
/// row, once per vector of outputs. The tables are made once per call,
/// for all its planes. The zoo's poolings on the Xeon as an AVX2 CPU, at
/// batch 128, ReLU-like maps (half zeros), in turns with `backward_row` in
/// one process (a probe with a switch between the two, 20 rounds, two
/// runs): 0.52-0.62 of its time (0.72-0.78 with the tables made per
/// plane).
///
/// # Safety
/// The CPU has AVX2; `in_pairs(w, ow, (kernel, left, 2))`; `rows` lie in
/// 0..h; `dx` holds as many planes as `x`, and `y` and `dy` their outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn pairs_backward(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    kernel: usize,
    (y, dy): (&[f32], &[f32]),
    dx: &mut [MaybeUninit<f32>],
    relu: bool,
) {
    assert!(in_pairs(w, ow, (kernel, left, 2)));
    assert!(rows.iter().all(|&(r0, r1)| r0 <= r1 && r1 <= h));
    let (cols, outputs) = ((left, ow), (y, dy));
    // The vectors of a row and of its outputs as constants, so that the
    // compiler keeps them in registers, as in `pairs`.
    match (w.div_ceil(8), ow > 8) {
        (1, false) => pairs_backward_of::<1, 1>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (1, true) => pairs_backward_of::<1, 2>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (2, false) => pairs_backward_of::<2, 1>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (2, true) => pairs_backward_of::<2, 2>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (3, false) => pairs_backward_of::<3, 1>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (3, true) => pairs_backward_of::<3, 2>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (_, false) => pairs_backward_of::<4, 1>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
        (_, true) => pairs_backward_of::<4, 2>(x, (h, w), rows, cols, kernel, outputs, dx, relu),
    }
}

/// `pairs_backward` on rows of `COUNT` vectors and `OUTS` vectors of
/// outputs.
///
/// # Safety
/// As for `pairs_backward`, with `COUNT` = `w.div_ceil(8)` and `OUTS` =
/// `ow.div_ceil(8)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn pairs_backward_of<const COUNT: usize, const OUTS: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    kernel: usize,
    (y, dy): (&[f32], &[f32]),
    dx: &mut [MaybeUninit<f32>],
    relu: bool,
) {
    assert!(in_pairs(w, ow, (kernel, left, 2)));
    assert!(w.div_ceil(8) == COUNT && ow.div_ceil(8) == OUTS);
    let (oh, hw) = (rows.len(), h * w);
    assert!(y.len() == dy.len() && y.len() / (oh * ow) == x.len() / hw && dx.len() == x.len());
    assert!(hw <= i32::MAX as usize);
    let pairs = Pairs::<COUNT>::new(w, left);
    let (taps, starts) = (&pairs.taps[..kernel], &pairs.starts[..COUNT]);
    let outs = OUTS;
    // For each tap and output vector: the lanes whose output exists and
    // whose column lies in the plane (padding never holds the value), and
    // each lane's column.
    let zero = _mm256_setzero_si256();
    let (mut valid, mut column) = ([[zero; 2]; 8], [[zero; 2]; 8]);
    for t in 0..kernel {
        for o in 0..outs {
            let (mut ok, mut col) = ([0i32; 8], [0i32; 8]);
            for l in 0..8 {
                let c = (2 * (8 * o + l) + t) as isize - left as isize;
                ok[l] = match 8 * o + l < ow && (0..w as isize).contains(&c) {
                    true => -1,
                    false => 0,
                };
                col[l] = c as i32;
            }
            valid[t][o] = _mm256_loadu_si256(ok.as_ptr().cast());
            column[t][o] = _mm256_loadu_si256(col.as_ptr().cast());
        }
    }
    let planes = x.chunks_exact(hw).zip(dx.chunks_exact_mut(hw));
    let outputs = y.chunks_exact(oh * ow).zip(dy.chunks_exact(oh * ow));
    let (mut tops, mut cells) = ([0.0f32; 8], [0i32; 8]);
    let all = y;
    let none = _mm256_set1_epi32(-1);
    for ((plane, dx), (y, dy)) in planes.zip(outputs) {
        // Zeroed just before the plane's gradients are added, in cache.
        let dx = super::cpu::zeroed(dx);
        for ((y, dy), &(r0, r1)) in y.chunks_exact(ow).zip(dy.chunks_exact(ow)).zip(rows) {
            // Each output vector's values, whether any is a NaN, the
            // outputs still searching and the cells found.
            let mut top = [_mm256_setzero_ps(); OUTS];
            let mut top_nan = top;
            let mut nan = false;
            let (mut open, mut cell) = ([none; OUTS], [zero; OUTS]);
            for o in 0..outs {
                let count = (ow - 8 * o).min(8);
                // Loaded where they lie when 8 values lie there (lanes past
                // `count` belong to the next outputs and are left out
                // below): copied first, the load waited for the copy's
                // stores to retire.
                let at = y[8 * o..].as_ptr();
                top[o] = match at.offset_from(all.as_ptr()) as usize + 8 <= all.len() {
                    true => _mm256_loadu_ps(at),
                    false => {
                        tops[..count].copy_from_slice(&y[8 * o..][..count]);
                        _mm256_loadu_ps(tops.as_ptr())
                    }
                };
                top_nan[o] = _mm256_cmp_ps::<_CMP_UNORD_Q>(top[o], top[o]);
                nan |= _mm256_movemask_ps(top_nan[o]) & ((1 << count) - 1) != 0;
            }
            for r in r0..r1 {
                let v = down_in_registers::<true>(plane, w, (r, r + 1), starts);
                let columns = pairs.columns(v);
                let at = _mm256_set1_epi32((r * w) as i32);
                for (t, &tap) in taps.iter().enumerate() {
                    for o in 0..outs {
                        let v = pairs.tap(&columns, o, tap);
                        let mut same = _mm256_cmp_ps::<_CMP_EQ_OQ>(v, top[o]);
                        if nan {
                            let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
                            same = _mm256_or_ps(same, _mm256_and_ps(top_nan[o], v_nan));
                        }
                        let hit = _mm256_and_si256(
                            _mm256_and_si256(open[o], valid[t][o]),
                            _mm256_castps_si256(same),
                        );
                        let here = _mm256_add_epi32(column[t][o], at);
                        cell[o] = _mm256_blendv_epi8(cell[o], here, hit);
                        open[o] = _mm256_andnot_si256(hit, open[o]);
                    }
                }
            }
            for o in 0..outs {
                let count = (ow - 8 * o).min(8);
                _mm256_storeu_si256(cells.as_mut_ptr().cast(), cell[o]);
                let waiting = _mm256_movemask_ps(_mm256_castsi256_ps(open[o])) as u32;
                let found = ((1u32 << count) - 1) & !waiting;
                let dy = &dy[8 * o..][..count];
                // SAFETY: a lane is found only at a cell of the plane
                // (`valid`: its column in 0..w, its row in r0..r1 <= h),
                // and only for lanes under `count`.
                unsafe { super::cpu::add_found(dx, &cells, found, dy) };
            }
        }
        if relu {
            super::cpu::relu_gate(plane, dx);
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

/// `larger` where the values may hold a NaN (`NAN`); else the vector
/// maximum alone, which gives `larger`'s bits whenever `v` is not a NaN
/// (it keeps `best` on a tie, as `larger` does, zeros of either sign
/// included).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn pick<const NAN: bool>(best: __m256, v: __m256) -> __m256 {
    match NAN {
        true => larger(best, v),
        false => _mm256_max_ps(v, best),
    }
}
