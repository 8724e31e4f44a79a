//! int8 inference kernels on the CPU: convolution, dense, max pooling and
//! LRN on symmetric int8 activations (zero point 0, values in -127..=127),
//! with integer products summed in i32 and the bias, ReLU and
//! requantization fused into the pass that writes the output.
//!
//! The products are the widen-to-i16 pattern: operands are held as i16
//! (int8 values), so AVX2's `vpmaddwd` multiplies 16 pairs and adds them in
//! pairs into 8 i32 lanes, exactly; nothing saturates since |a b| <= 127^2.
//! (`vpmaddubsw` would do 32 pairs but needs unsigned activations and
//! saturates in i16.) Sums stay exact below 2^31 / 127^2 = 133,000 terms per
//! output, far above any layer of the zoo.
//!
//! Two ways to the same integers: the broadcast kernel (`broadcast.rs`),
//! which runs every ungrouped convolution and batched dense layer where the
//! CPU has AVX2, and a column-matrix path with dot products here, for
//! grouped and depthwise convolutions, a batch of one through a dense
//! layer, and CPUs without AVX2 (its scalar form). Both give bit-identical
//! outputs; the tests check it.

mod broadcast;
mod planes;

pub use broadcast::{pack, Taps, PANEL};
pub use planes::{lrn, max_pool};

use super::conv::Geometry;
use broadcast::TILE;
#[cfg(target_arch = "x86_64")]
use broadcast::{broadcast, channels_last, panel_scales, ConvTiles};
use rayon::prelude::*;
use std::borrow::Cow;

/// Which instructions compute the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
}

impl Isa {
    /// The best this CPU has, checked at run time.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
        Isa::Scalar
    }
}

/// Work compiled twice, for baseline x86-64 and for AVX2, the second run
/// where the CPU has it. The crate is built for baseline x86-64 (SSE2),
/// where the int8 layers' elementwise loops (byte maxima, rounding to int8)
/// become compare-and-blend sequences and scalar conversions; compiled for
/// AVX2 they take 32 bytes at a time. Every job's `run` is
/// `#[inline(always)]`, so that it is compiled into `run_avx2` (a closure
/// is not reliably inlined there, hence a trait).
trait Job {
    fn run(self);
}

#[inline(always)]
fn dispatch(job: impl Job) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect() == Isa::Avx2 {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { run_avx2(job) };
    }
    job.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2(job: impl Job) {
    job.run()
}

/// The nearest integer, halves away from zero, saturating. `f32::round`
/// is a call to libm's `roundf` on baseline x86-64 (no SSE4.1), a tenth of
/// an int8 layer's time; this is two instructions.
#[inline]
fn round(v: f32) -> i32 {
    (v + 0.5f32.copysign(v)) as i32
}

/// `v` rounded to the nearest integer in -127..=127 (halves away from
/// zero, as `round`), in a form that vectorizes: the clamp comes first, so
/// the conversion needs no saturation, and turns a NaN into -127.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps a NaN, which the conversion must not meet
fn to_i8(v: f32) -> i8 {
    let r = (v + 0.5f32.copysign(v)).max(-127.0).min(127.0);
    // SAFETY: r is finite and within -127..=127 (`max` drops a NaN).
    unsafe { r.to_int_unchecked::<i32>() as i8 }
}

/// x / scale rounded to the nearest integer in -127..=127.
#[inline]
pub fn quantize_one(x: f32, inv_scale: f32) -> i8 {
    round(x * inv_scale).clamp(-127, 127) as i8
}

/// A row length for the products: `k` rounded up to whole 16-lane steps,
/// so that no scalar tail runs (conv1 of tuto has k = 75: the tail of 11
/// cost more than the 4 vector steps). The extra values are zeros.
pub fn padded(k: usize) -> usize {
    k.div_ceil(16) * 16
}

pub fn quantize(x: &[f32], scale: f32) -> Vec<i8> {
    let inv = 1.0 / scale;
    x.par_iter().map(|&v| quantize_one(v, inv)).collect()
}

pub fn dequantize(x: &[i8], scale: f32) -> Vec<f32> {
    x.par_iter().map(|&v| v as f32 * scale).collect()
}

/// What a layer writes for an i32 sum: an int8 value (the sum times its
/// channel's multiplier s_in s_w / s_out, rounded) or a float (the sum times
/// s_in s_w), the ReLU applied either way.
pub trait Emit: Copy + Send + Sync + Default {
    fn emit(acc: i32, multiplier: f32, relu: bool) -> Self;

    /// The same for a broadcast tile's sums (positions by rows), with each
    /// row's bias and multiplier.
    fn emit_tile(acc: &Tile<i32>, bias: &[i32; PANEL], m: &[f32; PANEL], relu: bool) -> Tile<Self> {
        emit_each(acc, bias, m, relu)
    }
}

/// `Emit::emit` on each of a tile's sums.
fn emit_each<T: Emit>(
    acc: &Tile<i32>,
    bias: &[i32; PANEL],
    m: &[f32; PANEL],
    relu: bool,
) -> Tile<T> {
    std::array::from_fn(|p| std::array::from_fn(|r| T::emit(acc[p][r] + bias[r], m[r], relu)))
}

/// A broadcast tile's values: `TILE` positions by `PANEL` rows.
pub type Tile<T> = [[T; PANEL]; TILE];

impl Emit for i8 {
    #[inline]
    fn emit(acc: i32, multiplier: f32, relu: bool) -> i8 {
        let lo = if relu { 0 } else { -127 };
        round(acc as f32 * multiplier).clamp(lo, 127) as i8
    }

    fn emit_tile(acc: &Tile<i32>, bias: &[i32; PANEL], m: &[f32; PANEL], relu: bool) -> Tile<i8> {
        // Eight values per instruction: with short rows (tuto's conv1 sums
        // 75 products per output) the scalar rounding took longer than the
        // products. Only the broadcast kernel, which needs AVX2, calls this.
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx2 {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { broadcast::avx2::emit_i8(acc, bias, m, relu) };
        }
        emit_each(acc, bias, m, relu)
    }
}

impl Emit for f32 {
    #[inline]
    fn emit(acc: i32, multiplier: f32, relu: bool) -> f32 {
        let y = acc as f32 * multiplier;
        if relu {
            y.max(0.0)
        } else {
            y
        }
    }
}

/// A layer's quantized weights: `rows` filters (or units) of `k` int8
/// values each (a row may end in zeros past the layer's own length, see
/// `padded`), held as i16 for the products, with an i32 bias in units of
/// s_in s_w and the multiplier of each row's output (both depend on the
/// input's scale, so a caller makes them per call; they are small).
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    pub rows: usize,
    pub k: usize,
    pub values: &'a [i16],
    pub bias: Vec<i32>,
    pub multiplier: Vec<f32>,
    pub relu: bool,
    /// The same values in the broadcast kernel's panels (`pack`) for the
    /// layer's `Taps`, when the caller keeps them packed; otherwise a call
    /// packs its own.
    pub packed: Option<(Taps, &'a [i16])>,
}

impl Weights<'_> {
    /// The weights in the broadcast kernel's panels for `t`: the caller's,
    /// or packed now.
    fn panels(&self, t: Taps) -> Cow<'_, [i16]> {
        match self.packed {
            Some((packed_for, p)) => {
                // Panels packed for another shape would be read as garbage.
                assert_eq!(packed_for, t, "weights packed for other taps");
                Cow::Borrowed(p)
            }
            None => Cow::Owned(pack(self.values, self.rows, self.k, t)),
        }
    }
}

/// out[i][j] = sum over k of a[i][k] b[j][k], for `a` (m x k) and `b`
/// (rows x k), row-major; `out` is m x rows.
pub fn products(a: &[i16], b: &[i16], k: usize, isa: Isa, out: &mut [i32]) {
    let (m, n) = (a.len() / k.max(1), b.len() / k.max(1));
    debug_assert_eq!(out.len(), m * n);
    if k == 0 {
        out.fill(0);
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `Isa::Avx2` is only chosen where the CPU has AVX2
            // (`Isa::detect`, or a test that checked it first).
            unsafe { avx2::products(a, b, k, m, n, out) }
        }
        _ => {
            for (i, out) in out.chunks_exact_mut(n).enumerate() {
                let a = &a[i * k..][..k];
                for (j, o) in out.iter_mut().enumerate() {
                    let b = &b[j * k..][..k];
                    *o = a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum();
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Blocks of 2 rows of `a` by 4 rows of `b`: 8 accumulators, 6 loads
    /// for 8 products of 16 pairs; the edges in smaller blocks.
    #[target_feature(enable = "avx2")]
    pub unsafe fn products(a: &[i16], b: &[i16], k: usize, m: usize, n: usize, out: &mut [i32]) {
        let mut i = 0;
        while i < m {
            let r = if m - i >= 2 { 2 } else { 1 };
            let mut j = 0;
            while j < n {
                let c = if n - j >= 4 { 4 } else { 1 };
                match (r, c) {
                    (2, 4) => block::<2, 4>(a, b, k, i, j, n, out),
                    (1, 4) => block::<1, 4>(a, b, k, i, j, n, out),
                    (2, _) => block::<2, 1>(a, b, k, i, j, n, out),
                    _ => block::<1, 1>(a, b, k, i, j, n, out),
                }
                j += c;
            }
            i += r;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block<const R: usize, const C: usize>(
        a: &[i16],
        b: &[i16],
        k: usize,
        i: usize,
        j: usize,
        n: usize,
        out: &mut [i32],
    ) {
        let pa = a.as_ptr().add(i * k);
        let pb = b.as_ptr().add(j * k);
        let mut acc = [[_mm256_setzero_si256(); C]; R];
        let mut t = 0;
        while t + 16 <= k {
            let mut bv = [_mm256_setzero_si256(); C];
            for (c, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(pb.add(c * k + t) as *const __m256i);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_si256(pa.add(r * k + t) as *const __m256i);
                for (acc, bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(av, *bv));
                }
            }
            t += 16;
        }
        for (r, acc) in acc.iter().enumerate() {
            // Four sums reduced together: three horizontal adds and one
            // add of the halves, where one at a time takes four each (a
            // third of the time of a layer with short rows, as tuto's conv1).
            let mut sums = [0i32; C];
            if C == 4 {
                let ab = _mm256_hadd_epi32(acc[0], acc[1]);
                let cd = _mm256_hadd_epi32(acc[2], acc[3]);
                let abcd = _mm256_hadd_epi32(ab, cd);
                let v = _mm_add_epi32(
                    _mm256_castsi256_si128(abcd),
                    _mm256_extracti128_si256(abcd, 1),
                );
                _mm_storeu_si128(sums.as_mut_ptr() as *mut __m128i, v);
            } else {
                for (s, a) in sums.iter_mut().zip(acc) {
                    *s = hsum(*a);
                }
            }
            for (c, &sum) in sums.iter().enumerate() {
                let mut s = sum;
                for u in t..k {
                    s += *pa.add(r * k + u) as i32 * *pb.add(c * k + u) as i32;
                }
                out[(i + r) * n + j + c] = s;
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_hadd_epi32(s, s);
        let s = _mm_hadd_epi32(s, s);
        _mm_cvtsi128_si32(s)
    }
}

/// One group's column matrix of one image, patch-major: a row of `ld`
/// values per output position holding its input channels x kernel taps
/// (the weights' order), zero where the window meets padding; the values
/// past the taps are left as they are (zero).
fn im2col(x: &[i8], g: &Geometry, group: usize, cols: &mut [i16], ld: usize) {
    let (oh, ow) = g.out();
    let cg = g.cin / g.groups;
    let [kh, kw] = g.kernel;
    let (top, left) = (g.pad[0] as isize, g.pad[2] as isize);
    for oy in 0..oh {
        let y0 = (oy * g.stride[0]) as isize - top;
        for ox in 0..ow {
            let row = &mut cols[(oy * ow + ox) * ld..][..cg * kh * kw];
            let x0 = (ox * g.stride[1]) as isize - left;
            let inside_x = x0 >= 0 && x0 as usize + kw <= g.w;
            let mut taps = row.chunks_exact_mut(kw);
            for ci in 0..cg {
                let plane = &x[(group * cg + ci) * g.h * g.w..][..g.h * g.w];
                for dy in 0..kh as isize {
                    let out = taps.next().expect("a row per channel and kernel row");
                    let yy = y0 + dy;
                    if yy < 0 || yy as usize >= g.h {
                        out.fill(0);
                        continue;
                    }
                    let line = &plane[yy as usize * g.w..][..g.w];
                    if inside_x {
                        let src = &line[x0 as usize..][..kw];
                        for (o, &v) in out.iter_mut().zip(src) {
                            *o = v as i16;
                        }
                    } else {
                        for (dx, o) in out.iter_mut().enumerate() {
                            let xx = x0 + dx as isize;
                            *o = if xx >= 0 && (xx as usize) < g.w {
                                line[xx as usize] as i16
                            } else {
                                0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// An int8 convolution of `x` (N x Cin x H x W), weights as cout x
/// cin/groups x kH x kW flattened per filter; output N x Cout x OH x OW.
/// Images are spread over the threads; a single image spreads its output
/// channels instead.
pub fn conv<T: Emit>(x: &[i8], g: &Geometry, w: &Weights, isa: Isa) -> Vec<T> {
    let (oh, ow) = g.out();
    let ohw = oh * ow;
    let cog = g.cout / g.groups;
    let k = w.k;
    assert!(w.rows == g.cout && k >= g.cin / g.groups * g.kernel[0] * g.kernel[1]);
    let image = g.cin * g.h * g.w;
    let mut y = vec![T::default(); g.n * g.cout * ohw];
    #[cfg(target_arch = "x86_64")]
    if broadcast(isa, g.cout, g.groups) {
        let t = Taps::conv(g);
        let packed = &*w.panels(t);
        if g.n == 1 {
            // One image: whole panels of filters per task.
            let (xp, wp) = channels_last(x, g);
            let chunk = g
                .cout
                .div_ceil(2 * rayon::current_num_threads())
                .next_multiple_of(PANEL);
            y.par_chunks_mut(chunk * ohw)
                .enumerate()
                .for_each(|(c, y)| {
                    let rows = c * chunk..c * chunk + y.len() / ohw;
                    dispatch(ConvTiles {
                        xp: &xp,
                        wp,
                        g,
                        w,
                        packed,
                        t,
                        rows,
                        y,
                    });
                });
        } else {
            y.par_chunks_mut(g.cout * ohw)
                .zip(x.par_chunks(image))
                .for_each(|(y, x)| {
                    let (xp, wp) = channels_last(x, g);
                    dispatch(ConvTiles {
                        xp: &xp,
                        wp,
                        g,
                        w,
                        packed,
                        t,
                        rows: 0..g.cout,
                        y,
                    });
                });
        }
        return y;
    }
    let one_image = |x: &[i8], y: &mut [T], split: bool| {
        let mut cols = vec![0i16; ohw * k];
        for group in 0..g.groups {
            im2col(x, g, group, &mut cols, k);
            let filters = group * cog..(group + 1) * cog;
            // Output channels in chunks of a few filters each.
            let chunk = if split {
                cog.div_ceil(4 * rayon::current_num_threads()).max(4)
            } else {
                cog
            };
            let y = &mut y[group * cog * ohw..(group + 1) * cog * ohw];
            let work = |(c, y): (usize, &mut [T])| {
                let first = filters.start + c * chunk;
                let rows = y.len() / ohw;
                let wv = &w.values[first * k..(first + rows) * k];
                // Filters by positions, so that the output pass reads
                // each channel's sums in a row.
                let mut acc = vec![0i32; ohw * rows];
                products(wv, &cols, k, isa, &mut acc);
                for (o, (y, acc)) in y
                    .chunks_exact_mut(ohw)
                    .zip(acc.chunks_exact(ohw))
                    .enumerate()
                {
                    let f = first + o;
                    let (b, m) = (w.bias[f], w.multiplier[f]);
                    for (y, &a) in y.iter_mut().zip(acc) {
                        *y = T::emit(a + b, m, w.relu);
                    }
                }
            };
            if split {
                y.par_chunks_mut(chunk * ohw).enumerate().for_each(work);
            } else {
                y.chunks_mut(chunk * ohw).enumerate().for_each(work);
            }
        }
    };
    if g.n == 1 {
        one_image(x, &mut y, true);
    } else {
        y.par_chunks_mut(g.cout * ohw)
            .zip(x.par_chunks(image))
            .for_each(|(y, x)| one_image(x, y, false));
    }
    y
}

/// An int8 dense layer: `x` is N x `inputs`, `w` holds one row per unit.
pub fn dense<T: Emit>(x: &[i8], inputs: usize, w: &Weights, isa: Isa) -> Vec<T> {
    let k = w.k;
    assert!(k >= inputs);
    let n = x.len() / inputs;
    let mut y = vec![T::default(); n * w.rows];
    let emit =
        |y: &mut T, u: usize, acc: i32| *y = T::emit(acc + w.bias[u], w.multiplier[u], w.relu);
    #[cfg(target_arch = "x86_64")]
    if n >= TILE && broadcast(isa, w.rows, 1) {
        // One tap of all the inputs, each image a window.
        let t = Taps::dense(k);
        let packed = &*w.panels(t);
        let ld = 2 * t.pairs();
        let starts = std::array::from_fn(|i| i * ld);
        // A tile of images per task, against every panel of units.
        y.par_chunks_mut(TILE * w.rows)
            .zip(x.par_chunks(TILE * inputs))
            .for_each(|(y, x)| {
                let mut xs = vec![0i16; TILE * ld];
                for (xs, x) in xs.chunks_exact_mut(ld).zip(x.chunks_exact(inputs)) {
                    xs.iter_mut().zip(x).for_each(|(d, &v)| *d = v as i16);
                }
                let mut acc = [[0i32; PANEL]; TILE];
                for (panel, weights) in packed.chunks_exact(t.panel_len()).enumerate() {
                    // SAFETY: `broadcast` chose this path, which needs AVX2.
                    unsafe {
                        broadcast::avx2::tile(&xs, &starts, &[0], t.pairs(), weights, &mut acc)
                    };
                    let (bias, m) = panel_scales(w, panel);
                    let values = T::emit_tile(&acc, &bias, &m, w.relu);
                    let units = panel * PANEL..(panel * PANEL + PANEL).min(w.rows);
                    for (y, v) in y.chunks_exact_mut(w.rows).zip(&values) {
                        y[units.clone()].copy_from_slice(&v[..units.len()]);
                    }
                }
            });
        return y;
    }
    let rows_per_task = 8;
    y.par_chunks_mut(rows_per_task * w.rows)
        .zip(x.par_chunks(rows_per_task * inputs))
        .for_each(|(y, x)| {
            let mut xs = vec![0i16; x.len() / inputs * k];
            for (xs, x) in xs.chunks_exact_mut(k).zip(x.chunks_exact(inputs)) {
                xs.iter_mut().zip(x).for_each(|(d, &v)| *d = v as i16);
            }
            let mut acc = vec![0i32; y.len()];
            // A batch of one spreads its units over the threads instead.
            if xs.len() == k && w.rows >= 64 {
                let part = w.rows.div_ceil(rayon::current_num_threads() * 2);
                acc.par_chunks_mut(part)
                    .zip(w.values.par_chunks(part * k))
                    .for_each(|(acc, wv)| products(&xs, wv, k, isa, acc));
            } else {
                products(&xs, w.values, k, isa, &mut acc);
            }
            for (y, acc) in y.chunks_exact_mut(w.rows).zip(acc.chunks_exact(w.rows)) {
                for (u, (y, &a)) in y.iter_mut().zip(acc).enumerate() {
                    emit(y, u, a);
                }
            }
        });
    y
}
