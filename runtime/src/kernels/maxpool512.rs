//! Max pooling's output rows on CPUs with AVX-512, for horizontal strides
//! of 1 and 2 (every pooling layer of the zoo). The portable loop in
//! `cpu::max_pool` takes the maximum down the window's rows vectorized but
//! across each window's columns one output at a time; here both passes
//! take 16 values a step. Planes up to 32 wide (the zoo's) stay in
//! registers (`planes`); wider ones go through a scratch row per output
//! row padded with -inf so that every window is whole (`down`, `across`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
#[cfg(target_arch = "x86_64")]
use std::mem::MaybeUninit;

/// The length of a scratch row for a plane `w` wide, padded by `left` on
/// the left, for `ow` outputs of windows `kernel` wide, `stride` apart:
/// -inf outside the plane's columns, which `down` rewrites, and 32 values
/// to spare for whole-vector reads past the last window.
pub fn scratch_row(w: usize, left: usize, ow: usize, kernel: usize, stride: usize) -> usize {
    (left + w).max(ow * stride + kernel) + 48
}

/// One output row's maximum down the plane's rows `r0..r1` (each `w`
/// wide) into the scratch row's columns `left..left + w`. A NaN always
/// wins, as in `cpu::larger`. `Pooling::run` takes every output row of a
/// plane down before it takes any across: a row read back right after its
/// stores waits for them (no store-to-load forwarding at these offsets).
///
/// # Safety
/// The CPU has AVX-512; `row` must be `scratch_row` long for the same
/// sizes; `plane` must hold the rows `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn down(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    left: usize,
    row: &mut [f32],
) {
    assert!(plane.len() >= r1 * w && left + w <= row.len());
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
}

/// One output row from its scratch row (`down`'s): the maximum of each
/// window of `kernel` columns, windows `stride` apart from column `-left`
/// (the row holds -inf there), 16 values a step.
///
/// # Safety
/// The CPU has AVX-512; the stride across is 1 or 2; `row` must be
/// `scratch_row` long for the same sizes, -inf outside the plane's
/// columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn across(row: &[f32], (kernel, stride): (usize, usize), y: &mut [MaybeUninit<f32>]) {
    assert!(y.len() * stride + kernel + 32 <= row.len());
    assert!(kernel > 0 && (stride == 1 || stride == 2));
    // The maximum of each window of `kernel` columns starting at every
    // column (16 at a time), then every `stride`-th of them.
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
        _mm512_mask_storeu_ps(y.as_mut_ptr().add(j).cast(), lanes(y.len() - j), v);
    }
}

/// Whether `planes` takes these sizes: a plane's row in two vectors, an
/// output row in two, windows up to 8 columns wide (every pooling of the
/// zoo: 24- and 12-wide planes, 3 x 3 windows).
pub fn in_registers(w: usize, ow: usize, kernel: usize) -> bool {
    w <= 32 && ow <= 32 && (1..=8).contains(&kernel)
}

/// The planes of `x` (`h` x `w` each) pooled into `y`, as many as `y`
/// holds, as `down` and `across` pool
/// each row, bit for bit, with `rows` each output row's input rows: down
/// the window's rows into two vectors (the plane's row, up to 32
/// columns), then across with a two-vector permute per column of the
/// window, whose index vector holds -inf where a window lies in the
/// padding (`_mm512_mask2_permutex2var_ps` copies the index there). No
/// scratch row: when `down` and `across` took each output row in turn,
/// the reads of a row just written waited for its stores to finish (no
/// store-to-load forwarding at unaligned offsets), and that wait was most
/// of squeeze1's pooling time.
///
/// With `NAN` false, `x` holds no NaN (else a NaN may be lost).
///
/// # Safety
/// The CPU has AVX-512; `in_registers(w, ow, kernel)`; the stride across
/// is 1 or 2; `rows` lie in 0..h (a span may be empty).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn planes<const NAN: bool>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    (kernel, stride): (usize, usize),
    y: &mut [MaybeUninit<f32>],
) {
    assert!(in_registers(w, ow, kernel) && (stride == 1 || stride == 2));
    assert!(rows.iter().all(|&(r0, r1)| r0 <= r1 && r1 <= h));
    let oh = rows.len();
    // Each output vector's column of each tap: -inf's bits where the tap
    // lies in the padding (or past the last output).
    let mut taps = [[(_mm512_setzero_si512(), 0 as __mmask16); 8]; 2];
    for (o, taps) in taps.iter_mut().enumerate().take(ow.div_ceil(16)) {
        for (t, tap) in taps.iter_mut().enumerate().take(kernel) {
            let mut idx = [f32::NEG_INFINITY.to_bits() as i32; 16];
            let mut valid = 0u32;
            for (l, idx) in idx.iter_mut().enumerate() {
                let (j, col) = (16 * o + l, (16 * o + l) * stride + t);
                if j < ow && col >= left && col - left < w {
                    *idx = (col - left) as i32;
                    valid |= 1 << l;
                }
            }
            *tap = (_mm512_loadu_si512(idx.as_ptr().cast()), valid as __mmask16);
        }
    }
    let taps = &taps[..ow.div_ceil(16)];
    let (m0, m1) = (lanes(w), lanes(w.saturating_sub(16)));
    for (plane, y) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (y, &(r0, r1)) in y.chunks_exact_mut(ow).zip(rows) {
            // Masked-out lanes read nothing: the second vector's address
            // may lie past the plane.
            let at = |r: usize| plane.as_ptr().add(r * w);
            // The first row as it is (the same bits as its maximum with
            // -inf); -inf for a window wholly in the padding.
            let (mut v0, mut v1) = match r0 < r1 {
                true => (
                    _mm512_maskz_loadu_ps(m0, at(r0)),
                    _mm512_maskz_loadu_ps(m1, at(r0).wrapping_add(16)),
                ),
                false => (
                    _mm512_set1_ps(f32::NEG_INFINITY),
                    _mm512_set1_ps(f32::NEG_INFINITY),
                ),
            };
            for r in r0 + 1..r1 {
                v0 = pick::<NAN>(v0, _mm512_maskz_loadu_ps(m0, at(r)));
                v1 = pick::<NAN>(v1, _mm512_maskz_loadu_ps(m1, at(r).wrapping_add(16)));
            }
            for (o, taps) in taps.iter().enumerate() {
                let tap = |(idx, valid): (__m512i, __mmask16)| {
                    _mm512_mask2_permutex2var_ps(v0, idx, valid, v1)
                };
                let mut best = tap(taps[0]);
                for &t in &taps[1..kernel] {
                    best = pick::<NAN>(best, tap(t));
                }
                let out = y.as_mut_ptr().add(16 * o).cast();
                _mm512_mask_storeu_ps(out, lanes(ow - 16 * o), best);
            }
        }
    }
}

/// The gradient of the planes of `planes` (`x`, and its outputs `y`) into
/// `dx`, as `backward_row` routes it, bit for bit: each output's (`y`,
/// `dy`) goes to the first cell of its window, row by row, that holds the
/// output's value (`==`, or both NaN), added in the order of the outputs,
/// onto zeros; then with `relu` the gradient of the fused ReLU whose
/// output `x` is (`cpu::relu_gate`). Each row of a window is loaded once,
/// into two vectors, for every output of the output row; each tap of 16
/// outputs is then one two-vector permute, as in `planes`, matched with
/// the lanes whose column lies outside the plane left out (`backward_row`
/// loads, and for stride 2 permutes, the row again for each tap). The
/// outputs that found their cell at a tap are then moved to their cells'
/// columns with one more permute (the tap's inverse) and added to that
/// row's gradient, kept whole in an aligned scratch row: no scalar scatter
/// through memory (each added value waited for the index just stored
/// beside it, and squeeze1's 12 x 12 planes took 900 cycles each, most of
/// them there). Taps are added last to first: a cell that several outputs
/// of one row found (the later an output, the earlier its tap there: with
/// stride 2, a window's last column is the next one's first) gets their
/// gradients in the outputs' order. Cells no output found get +0.0, which
/// changes no sum (a gradient here is never -0.0: it starts at +0.0). The
/// ReLU's gate and the planes' zeros are applied as the scratch rows are
/// stored, once per plane.
///
/// # Safety
/// The CPU has AVX-512; `in_registers(w, ow, kernel)`; the stride across
/// is 1 or 2; `rows` lie in 0..h; `dx` holds as many planes as `x`, and
/// `y` and `dy` their outputs; `KERNEL` is 0 or `kernel`.
///
/// With `KERNEL` the window's width as a constant (0: `kernel`, read at
/// run time), the taps' loops unroll and their masks stay in registers:
/// at run time they went through the stack, and squeeze1's pool1 took
/// 3.4 ms at batch 128 where it takes 2.4 (every pooling of the zoo is 3
/// wide).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn planes_backward<const KERNEL: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    (kernel, stride): (usize, usize),
    (y, dy): (&[f32], &[f32]),
    dx: &mut [MaybeUninit<f32>],
    relu: bool,
) {
    let (hw, cols, across) = ((h, w), (left, ow), (kernel, stride));
    if w <= 16 && ow <= 8 {
        // Two planes at a time, the last one alone if their count is odd.
        let (plane, out) = (h * w, rows.len() * ow);
        let paired = x.len() / plane.max(1) / 2 * 2;
        let (x, last) = x.split_at(paired * plane);
        let (dx, dx_last) = dx.split_at_mut(paired * plane);
        let ((y, y_last), (dy, dy_last)) = (y.split_at(paired * out), dy.split_at(paired * out));
        if !x.is_empty() {
            planes_backward_of::<1, 2, true, KERNEL>(x, hw, rows, cols, across, (y, dy), dx, relu);
        }
        if !last.is_empty() {
            let outputs = (y_last, dy_last);
            planes_backward_of::<1, 1, false, KERNEL>(
                last, hw, rows, cols, across, outputs, dx_last, relu,
            );
        }
        return;
    }
    let outputs = (y, dy);
    // The vectors of an output row and of a plane's row as constants, so
    // that the compiler keeps them in registers.
    match (ow > 16, w > 16) {
        (false, false) => {
            planes_backward_of::<1, 1, false, KERNEL>(x, hw, rows, cols, across, outputs, dx, relu)
        }
        (false, true) => {
            planes_backward_of::<1, 2, false, KERNEL>(x, hw, rows, cols, across, outputs, dx, relu)
        }
        (true, false) => {
            planes_backward_of::<2, 1, false, KERNEL>(x, hw, rows, cols, across, outputs, dx, relu)
        }
        (true, true) => {
            planes_backward_of::<2, 2, false, KERNEL>(x, hw, rows, cols, across, outputs, dx, relu)
        }
    }
}

/// `planes_backward` with `OUTS` vectors of outputs a row and `CELLS`
/// vectors of a plane's row; with `PAIR`, two planes at a time, each at
/// most 16 wide with at most 8 outputs a row (squeeze1's and alex4's
/// second poolings: 12 x 12 planes, 6 outputs a row), as one row of two
/// vectors: the first plane's row, then the second's, and their outputs
/// in lanes 0-7 and 8-15. Alone, such a plane filled 12 of a vector's 16
/// lanes and its outputs 6: pairs take half the steps.
///
/// # Safety
/// As for `planes_backward`, with `OUTS` = `ow.div_ceil(16)` and `CELLS` =
/// `w.div_ceil(16)`; with `PAIR`, `OUTS` 1 and `CELLS` 2, `w` at most 16,
/// `ow` at most 8 and an even number of planes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn planes_backward_of<
    const OUTS: usize,
    const CELLS: usize,
    const PAIR: bool,
    const KERNEL: usize,
>(
    x: &[f32],
    (h, w): (usize, usize),
    rows: &[(usize, usize)],
    (left, ow): (usize, usize),
    (kernel, stride): (usize, usize),
    (y, dy): (&[f32], &[f32]),
    dx: &mut [MaybeUninit<f32>],
    relu: bool,
) {
    assert!(in_registers(w, ow, kernel) && (stride == 1 || stride == 2));
    assert!(KERNEL == 0 || KERNEL == kernel);
    let kernel = if KERNEL > 0 { KERNEL } else { kernel };
    assert!(rows.iter().all(|&(r0, r1)| r0 <= r1 && r1 <= h));
    assert!(match PAIR {
        true => OUTS == 1 && CELLS == 2 && w <= 16 && ow <= 8,
        false => ow.div_ceil(16) == OUTS && w.div_ceil(16) == CELLS,
    });
    let (oh, hw, planes) = (rows.len(), h * w, 1 + PAIR as usize);
    assert!(y.len() == dy.len() && y.len() / (oh * ow) == x.len() / hw && dx.len() == x.len());
    assert!((x.len() / hw).is_multiple_of(planes));
    // Output lane `l` of vector `o`: its plane of the pair (0 alone) and
    // its output in that plane's row.
    let output = |o: usize, l: usize| match PAIR {
        true => (l / 8, l % 8),
        false => (0, 16 * o + l),
    };
    // Each output vector's column of each tap (in the pair's two vectors),
    // and the lanes whose output exists and whose column lies in the plane
    // (padding never holds the value).
    let mut taps = [[(_mm512_setzero_si512(), 0 as __mmask16); 8]; OUTS];
    // Each tap's inverse, for each vector of a plane's row (of each plane
    // of a pair): the output lane (of the two vectors of outputs) whose
    // tap lies at each column, and the columns where one does.
    let mut cells = [[(_mm512_setzero_si512(), 0 as __mmask16); CELLS]; 8];
    for t in 0..kernel {
        for (o, taps) in taps.iter_mut().enumerate() {
            let mut idx = [0i32; 16];
            let mut valid = 0u32;
            for (l, idx) in idx.iter_mut().enumerate() {
                let (p, j) = output(o, l);
                let col = j * stride + t;
                if j < ow && col >= left && col - left < w {
                    *idx = (16 * p + col - left) as i32;
                    valid |= 1 << l;
                }
            }
            taps[t] = (_mm512_loadu_si512(idx.as_ptr().cast()), valid as __mmask16);
        }
        for (v, cells) in cells[t].iter_mut().enumerate() {
            let mut idx = [0i32; 16];
            let mut valid = 0u32;
            for (l, idx) in idx.iter_mut().enumerate() {
                // The column of lane l, and the first output lane of its plane.
                let (c, first) = if PAIR { (l, 8 * v) } else { (16 * v + l, 0) };
                let col = c + left;
                if c < w && col >= t && (col - t).is_multiple_of(stride) {
                    let j = (col - t) / stride;
                    if j < ow {
                        *idx = (first + j) as i32;
                        valid |= 1 << l;
                    }
                }
            }
            *cells = (_mm512_loadu_si512(idx.as_ptr().cast()), valid as __mmask16);
        }
    }
    // Where a row's second vector lies from its first (the next plane's
    // row, or the row's columns 16..), and the lanes each holds.
    let (second, m0) = (if PAIR { hw } else { 16 }, lanes(w));
    let m1 = if PAIR {
        m0
    } else {
        lanes(w.saturating_sub(16))
    };
    let row_lanes = [m0, m1];
    // Each row's gradient, whole vectors, while its plane is routed.
    let mut sums = vec![[_mm512_setzero_ps(); CELLS]; h];
    let chunks = x
        .chunks_exact(planes * hw)
        .zip(dx.chunks_exact_mut(planes * hw));
    let out = planes * oh * ow;
    let outputs = y.chunks_exact(out).zip(dy.chunks_exact(out));
    for ((plane, dx), (y, dy)) in chunks.zip(outputs) {
        sums.fill([_mm512_setzero_ps(); CELLS]);
        for (i, &(r0, r1)) in rows.iter().enumerate() {
            // Each output vector's values, their gradients, their NaNs and
            // the outputs still searching. Gradients (and below, the
            // outputs found) come in two vectors, the second 0 for one
            // vector of outputs, as the inverse permutes read them.
            let mut top = [_mm512_setzero_ps(); OUTS];
            let mut grad = [_mm512_setzero_ps(); 2];
            let (mut nan, mut open) = ([0 as __mmask16; OUTS], [0 as __mmask16; OUTS]);
            for o in 0..OUTS {
                let at = i * ow + 16 * o;
                open[o] = lanes(ow - 16 * o);
                top[o] = _mm512_maskz_loadu_ps(open[o], y.as_ptr().add(at));
                grad[o] = _mm512_maskz_loadu_ps(open[o], dy.as_ptr().add(at));
                if PAIR {
                    // The second plane's outputs into lanes 8..: masked-out
                    // lanes read nothing, so the address may lie before.
                    let (high, next) = (open[o] << 8, (oh * ow + at).wrapping_sub(8));
                    top[o] = _mm512_mask_loadu_ps(top[o], high, y.as_ptr().wrapping_add(next));
                    grad[o] = _mm512_mask_loadu_ps(grad[o], high, dy.as_ptr().wrapping_add(next));
                    open[o] |= high;
                }
                nan[o] = _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(open[o], top[o], top[o]);
            }
            // Not `enumerate().take().skip()`: `Skip::next` stayed a call.
            for (r, sum) in (r0..r1).zip(&mut sums[r0..r1]) {
                // Masked-out lanes read nothing: the second vector's address
                // may lie past the plane.
                let at = plane.as_ptr().add(r * w);
                let v0 = _mm512_maskz_loadu_ps(m0, at);
                let v1 = _mm512_maskz_loadu_ps(m1, at.wrapping_add(second));
                // The outputs that find their cell at each tap of this row.
                let mut found = [[0 as __mmask16; 2]; 8];
                for t in 0..kernel {
                    for o in 0..OUTS {
                        let (idx, valid) = taps[o][t];
                        let v = _mm512_permutex2var_ps(v0, idx, v1);
                        let searching = open[o] & valid;
                        let mut same = _mm512_mask_cmp_ps_mask::<_CMP_EQ_OQ>(searching, v, top[o]);
                        if nan[o] != 0 {
                            same |=
                                nan[o] & _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(searching, v, v);
                        }
                        found[t][o] = same;
                        open[o] &= !same;
                    }
                }
                for t in (0..kernel).rev() {
                    let g0 = _mm512_maskz_mov_ps(found[t][0], grad[0]);
                    let g1 = _mm512_maskz_mov_ps(found[t][1], grad[1]);
                    for (s, &(idx, valid)) in sum.iter_mut().zip(&cells[t]) {
                        let moved = _mm512_maskz_permutex2var_ps(valid, g0, idx, g1);
                        *s = _mm512_add_ps(*s, moved);
                    }
                }
            }
        }
        for (r, sum) in sums.iter().enumerate() {
            let (from, to) = (plane.as_ptr().add(r * w), dx.as_mut_ptr().add(r * w));
            // Masked-out lanes touch nothing: the second vector may lie
            // past the plane.
            for (v, (&s, &lanes)) in sum.iter().zip(&row_lanes).enumerate() {
                let at = v * second;
                let s = match relu {
                    // 0 wherever `x` is not positive, a NaN included.
                    true => {
                        let x = _mm512_maskz_loadu_ps(lanes, from.wrapping_add(at));
                        let open = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps());
                        _mm512_maskz_mov_ps(open, s)
                    }
                    false => s,
                };
                _mm512_mask_storeu_ps(to.wrapping_add(at).cast(), lanes, s);
            }
        }
    }
}

/// The gradient of one output row `y` (`dy` its gradient) into `dx`, the
/// plane's gradient: each output's goes to the first cell of its window,
/// row by row, that holds the output's value (`==`, or both NaN), as
/// `cpu::max_pool_backward` routes it, bit for bit. The search takes 16
/// outputs at a time: for each cell of the window, the 16 inputs are read
/// as `across` reads its scratch row (one load for stride 1; two and a permute
/// for stride 2; masked at the plane's edges, where padding never holds
/// the value); the gradients are then added one by one, in the order of
/// the outputs.
///
/// # Safety
/// The CPU has AVX-512; the stride across is 1 or 2; `plane` and `dx` must hold the rows
/// `r0..r1` (each `w` wide), and `y` and `dy` the same number of values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
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
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let step = _mm512_mullo_epi32(lane, _mm512_set1_epi32(stride as i32));
    let plus = |v: __m512i, k: isize| _mm512_add_epi32(v, _mm512_set1_epi32(k as i32));
    // Lanes whose column lies in 0..w: padding never holds the value.
    let within = |col: __m512i| -> __mmask16 {
        _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512())
            & _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32(w as i32))
    };
    let mut cells = [0i32; 16];
    for j in (0..y.len()).step_by(16) {
        let lanes = lanes(y.len() - j);
        let top = _mm512_maskz_loadu_ps(lanes, y.as_ptr().add(j));
        let top_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(top, top);
        let mut open = lanes;
        let mut cell = _mm512_setzero_si512();
        for r in r0..r1 {
            let row = plane.as_ptr().add(r * w);
            for t in 0..kernel {
                // Column of cell t of the first window of the 16, and of
                // each lane's window.
                let first = (j * stride + t) as isize - left as isize;
                let col = plus(step, first);
                let ok = within(col);
                // Masked lanes read nothing, so the address may lie
                // outside the row.
                let at = |k: isize| row.wrapping_offset(first + k);
                let v = if stride == 1 {
                    _mm512_maskz_loadu_ps(ok, at(0))
                } else {
                    let lo = _mm512_maskz_loadu_ps(within(plus(lane, first)), at(0));
                    let hi = _mm512_maskz_loadu_ps(within(plus(lane, first + 16)), at(16));
                    _mm512_permutex2var_ps(lo, even, hi)
                };
                let same = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, top)
                    | (top_nan & _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v));
                let hit = open & ok & same;
                cell = _mm512_mask_mov_epi32(cell, hit, plus(col, (r * w) as isize));
                open &= !hit;
            }
        }
        _mm512_storeu_si512(cells.as_mut_ptr().cast(), cell);
        let mut found = lanes & !open;
        while found != 0 {
            let l = found.trailing_zeros() as usize;
            dx[cells[l] as usize] += dy[j + l];
            found &= found - 1;
        }
    }
}

/// The first `n` of 16 lanes.
#[cfg(target_arch = "x86_64")]
fn lanes(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
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

/// `larger` where the values may hold a NaN (`NAN`); else the vector
/// maximum alone, which gives `larger`'s bits whenever `v` is not a NaN
/// (it keeps `best` on a tie, as `larger` does, zeros of either sign
/// included).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn pick<const NAN: bool>(best: __m512, v: __m512) -> __m512 {
    match NAN {
        true => larger(best, v),
        false => _mm512_max_ps(v, best),
    }
}
