//! Stride-1 convolutions of small maps on AVX-512, with sixteen images in
//! each vector's lanes. A block is one output position of up to 48 images
//! (three vectors) by 8 output channels, summed in registers over exactly
//! the taps that fall inside the input, as oneDNN sums them: where the
//! padding holds a fifth of the taps (5 x 5 kernels on 12 x 12 maps, 3 x 3
//! on 6 x 6), `panel.rs`'s blocks of 48 positions (`conv::Ordered`) leave
//! out only the taps all 48 share (15 % of nin2's 5 x 5 layer's taps, of
//! 19 %). And no columns are packed: the input is laid out once per call
//! so that a tap's images lie side by side (`lay_out`), and a step of k
//! reads them with one aligned load per vector. The outputs are staged in
//! the same layout and turned into N x C x H x W images at the end
//! (`images`).
//!
//! Each output starts from its bias and adds its taps' products in
//! im2col's order (input channel, kernel row, kernel column) with fused
//! multiply-adds, the padding's taps left out: as `panel.rs` adds them,
//! whose padding's products add exactly 0 for finite weights, so the same
//! bits, but for the sign of a sum that is exactly 0 (-0 stays -0 where
//! adding a padding tap's +0 makes it +0; `panel::Gathers::skipping` leaves
//! taps out the same way).
//!
//! Zen 4, batch 128, `examples/layers.rs`, in turns with `panel.rs`'s
//! products (docs/performance.md): nin2's 5 x 5 layer 64.9-65.4 ms against
//! 71.7-72.2, tuto's conv2 15.3-15.5 against 17.4, nin2's 3 x 3 on 6 x 6
//! 12.4-12.9 against 13.2-13.5; alex4's conv2 (3 x 3 on 12 x 12, 10.8 % of
//! its taps in the padding) 14.8-14.9 against 14.3, which stays there.

use super::conv::Geometry;
use super::cpu;
use super::panel::{self, Isa};
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Images per vector.
const LANES: usize = 16;
/// Vectors of images per block: 3 x 8 accumulators, as `panel.rs`'s tiles.
const VECTORS: usize = 3;
/// Output channels per block: one broadcast weight each per step of k.
const ROWS: usize = panel::ROWS;
/// Output maps of at most this many positions (16 x 16): larger ones have
/// few padding taps (under 6 % for 5 x 5 from 32 x 32 on), and `panel.rs`
/// reads their columns as shifted planes, unpacked.
const LARGEST: usize = 256;
/// The least share of the taps in the padding for a layer to run here:
/// 19-21 % (5 x 5 on 12 x 12, 3 x 3 on 6 x 6) ran 4-12 % faster than on
/// `panel.rs`, 10.8 % (3 x 3 on 12 x 12) 3-4 % slower.
const SKIPPED: f64 = 0.15;

/// Sixteen images' values of one input cell.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Lane([f32; LANES]);

/// Whether `g` runs here: AVX-512 (and products sent neither to `gemm`
/// nor to `panel.rs`: `conv::prefer_panel`), a
/// stride-1 convolution of one group, a small map whose padding holds at
/// least `SKIPPED` of the taps, and at least two vectors of images (a
/// batch of 1 runs on `panel.rs`, threads inside each product).
pub(super) fn applies(g: &Geometry) -> bool {
    panel::isa() == Some(Isa::Avx512)
        && super::conv::lanes_allowed()
        && g.stride == [1, 1]
        && g.groups == 1
        && g.kernel[0] * g.kernel[1] > 0
        && g.cin > 0
        && g.cout > 0
        && g.ohw() > 0
        && g.ohw() <= LARGEST
        && g.n >= 2 * LANES
        && skipped(g) >= SKIPPED
}

/// The kernel rows (or columns) `lo..hi` that output row (or column) `o`
/// reads inside the input, `size` long with `before` rows of padding.
fn inside(o: usize, before: usize, size: usize, kernel: usize) -> Range<usize> {
    let lo = before.saturating_sub(o).min(kernel);
    let hi = (size + before).saturating_sub(o).min(kernel).max(lo);
    lo..hi
}

/// The taps of each output position that fall inside the input: (kernel
/// rows, kernel columns).
fn taps(g: &Geometry) -> Vec<(Range<usize>, Range<usize>)> {
    let (oh, ow) = g.out();
    let rows: Vec<_> = (0..oh)
        .map(|o| inside(o, g.pad[0], g.h, g.kernel[0]))
        .collect();
    let cols: Vec<_> = (0..ow)
        .map(|o| inside(o, g.pad[2], g.w, g.kernel[1]))
        .collect();
    rows.iter()
        .flat_map(|r| cols.iter().map(move |c| (r.clone(), c.clone())))
        .collect()
}

/// The share of the taps that fall in the padding.
fn skipped(g: &Geometry) -> f64 {
    let run: usize = taps(g).iter().map(|(r, c)| r.len() * c.len()).sum();
    1.0 - run as f64 / (g.ohw() * g.kernel[0] * g.kernel[1]) as f64
}

thread_local! {
    /// The images' copy and the staged outputs, kept for the next call:
    /// allocated (and zeroed) anew, their 7 and 14 MB for nin2's 5 x 5
    /// layer at batch 128 were written once more than the kernel needs.
    /// A thread that calls `forward` (a program's main thread) keeps the
    /// largest layer's for its life: 21 MB for nin2 at batch 128.
    static COPY: Cell<Vec<Lane>> = const { Cell::new(Vec::new()) };
    static STAGED: Cell<Vec<Lane>> = const { Cell::new(Vec::new()) };
}

/// y = conv(x, weight) + bias, then max(y, 0) when `relu`, as
/// `conv::forward` computes it (the same bits), for a `g` that `applies`.
pub(super) fn forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
) -> Vec<f32> {
    // What the reads below rely on (`applies` also asks process-wide
    // switches, which another thread may turn meanwhile).
    assert!(panel::has(Isa::Avx512) && g.stride == [1, 1] && g.groups == 1);
    let (hw, ohw, k) = (g.h * g.w, g.ohw(), g.cin * g.kernel[0] * g.kernel[1]);
    assert!(x.len() >= g.n * g.cin * hw && weight.len() >= g.cout * k);
    let groups = g.n.div_ceil(LANES);
    let sets = groups.div_ceil(VECTORS);
    let vectors = |set: usize| VECTORS.min(groups - set * VECTORS);
    let mut copy = COPY.take();
    copy.resize(groups * g.cin * hw, Lane([0.0; LANES]));
    lay_out(x, g, sets, vectors, &mut copy);
    let panels = panel::Weights::whole(Isa::Avx512, weight, g.cout, k);
    let mut staged = STAGED.take();
    staged.resize(groups * g.cout * ohw, Lane([0.0; LANES]));
    // Each item: one position of one set of up to three vectors of
    // images, every output channel, into its own run of the staged
    // outputs (the set's, position after position, channel after channel,
    // a channel's vectors side by side). Stored straight into the images,
    // a scatter a vector, they took 10 % of nin2's 5 x 5 layer: each
    // item's outputs lie on 9,216 lines (48 images x 192 channels).
    let mut items = Vec::with_capacity(sets * ohw);
    let mut rest = &mut staged[..];
    for set in 0..sets {
        for p in 0..ohw {
            let (run, after) = rest.split_at_mut(g.cout * vectors(set));
            items.push((set, p, run));
            rest = after;
        }
    }
    let (taps, ow) = (taps(g), g.out().1);
    // In runs of up to 4 items: rayon's halves of the range (sets of
    // three vectors on one thread, a last set of two on the other) kept
    // one thread waiting for a quarter of nin2's 5 x 5 layer at batch 128.
    items
        .into_par_iter()
        .with_max_len(4)
        .for_each(|(set, p, run)| {
            let (rows, cols) = &taps[p];
            let (oy, ox) = (p / ow, p % ow);
            let (first, vectors) = (set * VECTORS, vectors(set));
            // The first tap's cell; none (and no reads) for a position all in
            // the padding.
            let at = match rows.is_empty() || cols.is_empty() {
                true => 0,
                false => {
                    let (iy, ix) = (oy + rows.start - g.pad[0], ox + cols.start - g.pad[2]);
                    first * g.cin * hw + (iy * g.w + ix) * g.cin * vectors
                }
            };
            let steps = Steps {
                cin: g.cin,
                kh: g.kernel[0],
                kw: g.kernel[1],
                row: g.w * g.cin * vectors,
                cell: g.cin * vectors,
                vectors,
                rows: rows.clone(),
                cols: cols.clone(),
            };
            for (q, panel) in panels.chunks_exact(k * ROWS).enumerate() {
                let o = q * ROWS;
                let channels = ROWS.min(g.cout - o);
                let start: [f32; ROWS] = std::array::from_fn(|r| {
                    bias.and_then(|b| b.get(o + r).copied()).unwrap_or(0.0)
                });
                let out = &mut run[o * vectors..][..channels * vectors];
                let (w, s) = (panel.as_ptr(), &steps);
                // SAFETY: this CPU has AVX-512 (`applies`); the panel holds
                // k steps of 8 weights, and every tap's cell of every channel
                // and vector lies in the copy (`taps`, `lay_out`).
                unsafe {
                    let x = copy.as_ptr().add(at).cast::<f32>();
                    match vectors {
                        3 => put(block::<3>(w, x, s, start), out, relu),
                        2 => put(block::<2>(w, x, s, start), out, relu),
                        _ => put(block::<1>(w, x, s, start), out, relu),
                    }
                }
            }
        });
    COPY.set(copy);
    let y = images(&staged, g, vectors);
    STAGED.set(staged);
    y
}

/// `x` into `copy`: each set of up to three vectors of images (48) cell
/// after cell, channel after channel within a cell, a cell's vectors side
/// by side (images past n 0). A step of k reads its vectors as one run of
/// 192 bytes, and a block's taps lie in runs of whole channels, each
/// within a page or two; channel after channel (a plane apart), a block
/// reached 5 x 96 pages for nin2's 5 x 5 layer, and ran 3 % slower.
fn lay_out(
    x: &[f32],
    g: &Geometry,
    sets: usize,
    vectors: impl Fn(usize) -> usize,
    copy: &mut [Lane],
) {
    let mut rows = Vec::with_capacity(sets * g.h);
    let mut rest = copy;
    for set in 0..sets {
        for y in 0..g.h {
            let (row, after) = rest.split_at_mut(vectors(set) * g.cin * g.w);
            rows.push((set * VECTORS, y, row));
            rest = after;
        }
    }
    let (image, plane) = (g.cin * g.h * g.w, g.h * g.w);
    rows.into_par_iter().for_each(|(first, y, row)| {
        let vectors = row.len() / (g.cin * g.w);
        for c in 0..g.cin {
            for v in 0..vectors {
                let images = g.n.saturating_sub((first + v) * LANES).min(LANES);
                for x0 in (0..g.w).step_by(LANES) {
                    let width = LANES.min(g.w - x0);
                    // Row y of channel c of each image, columns x0 on.
                    let from = |l: usize| {
                        let i = (first + v) * LANES + l;
                        &x[i * image + c * plane + y * g.w + x0..][..width]
                    };
                    let from: [&[f32]; LANES] =
                        std::array::from_fn(|l| if l < images { from(l) } else { &[] });
                    let cells = (0..width).map(|j| ((x0 + j) * g.cin + c) * vectors + v);
                    // SAFETY: this CPU has AVX-512 (`applies`).
                    unsafe { turn(from, width, row, cells) };
                }
            }
        }
    });
}

/// Up to 16 rows of `width` values (`from`, empty for rows of 0) turned:
/// column j's values into the lanes of `out[cells[j]]`.
///
/// # Safety
/// This CPU has AVX-512.
#[target_feature(enable = "avx512f")]
unsafe fn turn(
    from: [&[f32]; LANES],
    width: usize,
    out: &mut [Lane],
    cells: impl Iterator<Item = usize>,
) {
    let mask = ((1u32 << width) - 1) as u16;
    let mut m: [__m512; LANES] = std::array::from_fn(|l| match from[l].len() {
        // SAFETY: the row holds `width` values, the lanes loaded.
        n if n >= width => unsafe { _mm512_maskz_loadu_ps(mask, from[l].as_ptr()) },
        _ => _mm512_setzero_ps(),
    });
    transpose(&mut m);
    for (j, at) in cells.enumerate().take(width) {
        _mm512_store_ps(out[at].0.as_mut_ptr(), m[j]);
    }
}

/// A 16 x 16 block of values transposed in registers: `m[i]`'s lane j
/// becomes `m[j]`'s lane i.
#[target_feature(enable = "avx512f")]
fn transpose(m: &mut [__m512; LANES]) {
    // Pairs of rows interleaved by 1 value, then 2, then 4 (128-bit
    // quarters), then 8.
    let t: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (m[i & !1], m[i | 1]);
        match i % 2 {
            0 => _mm512_unpacklo_ps(a, b),
            _ => _mm512_unpackhi_ps(a, b),
        }
    });
    let u: [__m512; LANES] = std::array::from_fn(|i| {
        // u 4q + s holds, in each quarter c, column 4c + s of rows 4q..:
        // from t 4q and 4q + 2 (s = 0, 1), or 4q + 1 and 4q + 3.
        let (q, s) = (i / 4 * 4, (i % 4) / 2);
        let (a, b) = (_mm512_castps_pd(t[q + s]), _mm512_castps_pd(t[q + 2 + s]));
        _mm512_castpd_ps(match i % 2 {
            0 => _mm512_unpacklo_pd(a, b),
            _ => _mm512_unpackhi_pd(a, b),
        })
    });
    let v: [__m512; LANES] = std::array::from_fn(|i| {
        // Quarters 0 and 2 (or 1 and 3) of u 8h + r and 8h + 4 + r.
        let (h, r) = (i / 8 * 8, i % 4);
        let (a, b) = (u[h + r], u[h + 4 + r]);
        match (i % 8) / 4 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        }
    });
    *m = std::array::from_fn(|i| {
        let (a, b) = (v[i % 8], v[8 + i % 8]);
        match i / 8 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        }
    });
}

/// The staged outputs into N x C x H x W images: each vector of images
/// (16) on a thread, channel after channel, 16 positions at a time turned
/// in registers. Copied value by value, the 16 images' rows lie 4 KiB
/// apart times a whole number (nin2's 192 x 144 values an image) and
/// evicted each other from the L1 cache: 5 ms of the 5 x 5 layer's 68.
fn images(staged: &[Lane], g: &Geometry, vectors: impl Fn(usize) -> usize + Sync) -> Vec<f32> {
    let ohw = g.ohw();
    let image = g.cout * ohw;
    let len = g.n * image;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = &mut y.spare_capacity_mut()[..len];
    cpu::poisoned()(out);
    out.par_chunks_mut(LANES * image)
        .enumerate()
        .for_each(|(gv, out)| {
            let (set, v) = (gv / VECTORS, gv % VECTORS);
            let vectors = vectors(set);
            let base = set * VECTORS * g.cout * ohw;
            let images = out.len() / image;
            for c in 0..g.cout {
                for p0 in (0..ohw).step_by(LANES) {
                    let width = LANES.min(ohw - p0);
                    let cell = |j: usize| &staged[base + ((p0 + j) * g.cout + c) * vectors + v];
                    let from: [&[f32]; LANES] =
                        std::array::from_fn(|j| if j < width { &cell(j).0[..] } else { &[] });
                    // SAFETY: this CPU has AVX-512 (`applies`).
                    unsafe { untangle(from, width, images, out, c * ohw + p0, image) };
                }
            }
        });
    // SAFETY: each image's every channel and position was written above.
    unsafe { y.set_len(len) };
    y
}

/// Up to 16 cells' lanes (`from`, empty for none) turned: lane l's values
/// into `out` from `at + l * stride` on, `width` of them, for the first
/// `images` lanes.
///
/// # Safety
/// This CPU has AVX-512.
#[target_feature(enable = "avx512f")]
unsafe fn untangle(
    from: [&[f32]; LANES],
    width: usize,
    images: usize,
    out: &mut [MaybeUninit<f32>],
    at: usize,
    stride: usize,
) {
    let mut m: [__m512; LANES] = std::array::from_fn(|j| match from[j].len() {
        // SAFETY: a cell holds 16 values.
        LANES => unsafe { _mm512_loadu_ps(from[j].as_ptr()) },
        _ => _mm512_setzero_ps(),
    });
    transpose(&mut m);
    let mask = ((1u32 << width) - 1) as u16;
    for (l, &row) in m.iter().enumerate().take(images) {
        let to = &mut out[at + l * stride..][..width];
        // SAFETY: the row's `width` values lie in `to`.
        unsafe { _mm512_mask_storeu_ps(to.as_mut_ptr().cast::<f32>(), mask, row) };
    }
}

/// A block's steps of k in the copy (`lay_out`): `cin` input channels
/// side by side, each of `vectors` lanes; the taps `rows` x `cols` of a
/// kernel `kh` x `kw`, whose cells lie `row` lanes apart from kernel row
/// to row and `cell` apart from column to column.
struct Steps {
    cin: usize,
    kh: usize,
    kw: usize,
    row: usize,
    cell: usize,
    vectors: usize,
    rows: Range<usize>,
    cols: Range<usize>,
}

/// 8 output channels (`w`, the panel) by `V` vectors of 16 images at one
/// position: `start`, then each tap's products. `x` is the first tap's
/// cell in the first vector's first channel.
///
/// # Safety
/// This CPU has AVX-512; the panel holds `cin * kw * kernel rows` steps of
/// 8 weights; every tap's cell of every channel and vector lies in the
/// copy that `x` points into.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn block<const V: usize>(
    w: *const f32,
    x: *const f32,
    s: &Steps,
    start: [f32; ROWS],
) -> [[__m512; V]; ROWS] {
    let mut acc: [[__m512; V]; ROWS] = std::array::from_fn(|r| [_mm512_set1_ps(start[r]); V]);
    for c in 0..s.cin {
        for (di, i) in s.rows.clone().enumerate() {
            let x = x.add((c * s.vectors + di * s.row) * LANES);
            // Step (c, i, j) of k: `(c * kh + i) * kw + j`.
            let w = w.add(((c * s.kh + i) * s.kw + s.cols.start) * ROWS);
            for dj in 0..s.cols.len() {
                let (x, w) = (x.add(dj * s.cell * LANES), w.add(dj * ROWS));
                let a: [__m512; V] = std::array::from_fn(|v| _mm512_load_ps(x.add(v * LANES)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(*w.add(r));
                    for (acc, &a) in acc.iter_mut().zip(&a) {
                        *acc = _mm512_fmadd_ps(b, a, *acc);
                    }
                }
            }
        }
    }
    acc
}

/// A block's sums (8 channels by `V` vectors) into `out`, channel after
/// channel, through the ReLU when `relu`: the first `out.len() / V`
/// channels.
///
/// # Safety
/// This CPU has AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn put<const V: usize>(acc: [[__m512; V]; ROWS], out: &mut [Lane], relu: bool) {
    let zero = _mm512_setzero_ps();
    for (row, out) in acc.iter().zip(out.chunks_exact_mut(V)) {
        for (&value, out) in row.iter().zip(out) {
            // A NaN becomes 0, as `f32::max(v, 0.0)` makes it.
            let value = if relu {
                _mm512_max_ps(value, zero)
            } else {
                value
            };
            _mm512_store_ps(out.0.as_mut_ptr(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::{forward as conv_forward, Geometry};
    use super::*;

    /// `transpose` turns a 16 x 16 block: lane j of row i to lane i of
    /// row j.
    #[test]
    fn the_transpose_turns_a_block() {
        if panel::isa() != Some(Isa::Avx512) {
            eprintln!("this CPU has no AVX-512: nothing runs here");
            return;
        }
        let values: Vec<f32> = (0..256).map(|v| v as f32).collect();
        // SAFETY: this CPU has AVX-512 (checked above).
        let rows = unsafe {
            let mut m: [__m512; LANES] =
                std::array::from_fn(|i| _mm512_loadu_ps(values[i * 16..].as_ptr()));
            transpose(&mut m);
            m.map(|row| {
                let mut out = [0.0f32; 16];
                _mm512_storeu_ps(out.as_mut_ptr(), row);
                out
            })
        };
        for (i, row) in rows.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, (j * 16 + i) as f32, "row {i}, lane {j}");
            }
        }
    }

    /// Each image of a batch that runs here gets the bits of its
    /// convolution alone (batch 1: `panel.rs`, every tap summed, the
    /// padding's included): odd batches (a last vector part empty, a last
    /// set of one vector and of two), channels past a multiple of 8, maps
    /// not square, one wider than a vector (laid out 16 columns at a
    /// time), kernels neither square nor odd with TensorFlow's extra row
    /// at the bottom and right, padding as wide as the kernel (positions
    /// that meet nothing but padding: their bias), with and without bias
    /// and ReLU; on two threads.
    #[test]
    fn each_image_gets_the_bits_of_its_convolution_alone() {
        if panel::isa() != Some(Isa::Avx512) {
            eprintln!("this CPU has no AVX-512: nothing runs here");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Turned off again when the test ends, even by a panic.
        struct Poisoned;
        impl Drop for Poisoned {
            fn drop(&mut self) {
                cpu::poison_new_outputs(false);
            }
        }
        let _poisoned = Poisoned;
        cpu::poison_new_outputs(true);
        // (n, cin, h, w, cout, kernel, pad, bias, relu)
        let cases = [
            (33, 5, 6, 6, 12, [3, 3], [1, 1, 1, 1], true, true),
            (48, 6, 12, 12, 10, [5, 5], [2, 2, 2, 2], true, false),
            (80, 3, 5, 7, 9, [3, 5], [1, 1, 2, 2], false, true),
            (40, 4, 6, 6, 8, [2, 2], [0, 1, 0, 1], true, true),
            (32, 5, 6, 6, 16, [3, 3], [3, 3, 3, 3], true, false),
            (35, 130, 6, 6, 8, [3, 3], [1, 1, 1, 1], true, true),
            (64, 5, 6, 6, 12, [3, 3], [1, 1, 1, 1], true, true),
            (32, 3, 4, 20, 9, [3, 5], [1, 1, 2, 2], true, false),
        ];
        for (i, (n, cin, h, w, cout, kernel, pad, has_bias, relu)) in cases.into_iter().enumerate()
        {
            let g = Geometry {
                n,
                cin,
                h,
                w,
                cout,
                kernel,
                stride: [1, 1],
                pad,
                groups: 1,
            };
            let noise = |n: usize, seed: u64| super::super::noise(n, seed);
            let x = noise(n * cin * h * w, 1 + i as u64);
            let weight = noise(cout * cin * kernel[0] * kernel[1], 2);
            let b = noise(cout, 3);
            let bias = has_bias.then_some(&b[..]);
            pool.install(|| {
                assert!(applies(&g), "{g:?}");
                let y = conv_forward(&x, &weight, bias, &g, relu);
                let (image, out) = (cin * h * w, cout * g.ohw());
                assert_eq!(y.len(), n * out);
                let alone = Geometry { n: 1, ..g };
                assert!(!applies(&alone));
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                for (j, y) in y.chunks_exact(out).enumerate() {
                    let want = conv_forward(&x[j * image..][..image], &weight, bias, &alone, relu);
                    assert!(bits(y) == bits(&want), "{g:?}: image {j}");
                }
            });
        }
    }
}
