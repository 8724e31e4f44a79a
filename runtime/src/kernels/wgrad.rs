//! A convolution's weight gradient on CPUs with AVX-512 or AVX2, in
//! `panel.rs`'s register tiles: dW (cout x K) = dy (cout x P) x cols^T
//! (P x K), summed over the P output positions of the images, where K
//! runs over the kernel rows, then the kernel columns, then the input
//! channels. Laid out that way, the K values one output position sees in
//! a kernel row are one run of memory in the image stored channels-last
//! and padded (`Chunk::image`), for any stride: a block of 48 of them is
//! one copy per kernel row it touches (one, where a row's run is 48 or
//! more). dy is packed output position by position, 8 channels at a
//! time, like `panel.rs`'s weights. Through `gemm` (im2col, then a product
//! per tile of two images at nin2's 12 x 12 maps) the weight gradient took
//! 1.5 to 2 times the forward product's time for the same multiply-adds.
//! No column matrix is written, and `gemm` no longer packs both operands
//! for every tile. With AVX2 the packing transposes 8 x 8 blocks and the
//! tiles are `panel.rs`'s 4 x 24: dW's bits are AVX-512's. (Its first
//! version there packed value by value and was slower than `gemm` on every
//! layer.)

use super::conv::Geometry;
use super::panel::{self, Isa, Line, COLS, DEPTH, ROWS};
use super::transpose;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A chunk's sources: the layer's input, dy, and its output after a fused
/// ReLU, if any.
type Inputs<'a> = (&'a [f32], &'a [f32], Option<&'a [f32]>);

/// Output positions per chunk of images, at least: the chunk's dy and
/// its padded images are packed once and stay in the L2 cache while every
/// block of K passes over them.
const POSITIONS: usize = 256;

/// (dW as cout x cin x kH x kW, db) for a convolution with one group,
/// from its input `x` and its output's gradient `dy`; with `relu_out`,
/// its output after a fused ReLU, through which dy passes where that is
/// above 0. None where this CPU has neither AVX-512 nor AVX2 with FMA
/// (or `gemm` is preferred), where the convolution has groups, and
/// where there is nothing to sum (no image, no input value): `conv.rs` then
/// uses `gemm`. Each thread sums a fixed run of images and the runs are
/// added in order: the same bits on every call with the same threads.
pub fn weight_gradient(
    x: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    g: &Geometry,
) -> Option<(Vec<f32>, Vec<f32>)> {
    weight_gradient_on(panel::isa()?, x, dy, relu_out, g)
}

/// `weight_gradient` with `isa`'s transposes and tiles; this CPU must have
/// it.
fn weight_gradient_on(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    g: &Geometry,
) -> Option<(Vec<f32>, Vec<f32>)> {
    assert!(panel::has(isa));
    let (oh, ow) = g.out();
    if g.groups != 1 || g.n * oh * ow * g.cin * g.h * g.w == 0 {
        return None;
    }
    let k = g.cin * g.kernel[0] * g.kernel[1];
    assert!(x.len() == g.n * g.cin * g.h * g.w && dy.len() == g.n * g.cout * oh * ow);
    assert!(relu_out.is_none_or(|y| y.len() == dy.len()));
    let per = g.n.div_ceil(rayon::current_num_threads()).max(1);
    let runs: Vec<(Vec<f32>, Vec<f32>)> = (0..g.n.div_ceil(per))
        .into_par_iter()
        .map(|r| {
            let images = r * per..((r + 1) * per).min(g.n);
            let mut sums = (vec![0.0f32; g.cout * k], vec![0.0f32; g.cout]);
            let chunk = POSITIONS.div_ceil(oh * ow).max(1);
            let mut scratch = Chunk::new(g, chunk.min(images.len()));
            for first in images.clone().step_by(chunk) {
                let count = chunk.min(images.end - first);
                scratch.load(isa, (x, dy, relu_out), (first, count), &mut sums.1);
                scratch.accumulate(isa, &mut sums.0);
            }
            sums
        })
        .collect();
    let (dw, db) = runs.into_iter().reduce(|(mut dw, mut db), (w, b)| {
        dw.iter_mut().zip(&w).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
        (dw, db)
    })?;
    Some((reordered(&dw, g), db))
}

/// dW from K's order (kernel row, kernel column, channel) into netc's
/// (channel, kernel row, kernel column).
fn reordered(dw: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (k, taps) = (g.cin * kh * kw, kh * kw);
    let mut out = vec![0.0f32; dw.len()];
    for (src, dst) in dw.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        for (tap, run) in src.chunks_exact(g.cin).enumerate() {
            for (c, &v) in run.iter().enumerate() {
                dst[c * taps + tap] = v;
            }
        }
    }
    out
}

/// One thread's scratch for a chunk of images: the images channels-last
/// and padded, dy packed, and a block of K's values per position.
struct Chunk<'g> {
    g: &'g Geometry,
    /// Images of the chunk.
    count: usize,
    /// `[image][row][column][channel]`, the padding 0.
    image: Vec<f32>,
    /// dy in passes of `DEPTH` positions, each pass in panels of `ROWS`
    /// channels, position-major within a panel (channels past cout 0).
    dy: Vec<f32>,
    block: Vec<Line>,
}

impl<'g> Chunk<'g> {
    fn new(g: &'g Geometry, images: usize) -> Chunk<'g> {
        let (hp, wp) = padded(g);
        let (oh, ow) = g.out();
        Chunk {
            g,
            count: 0,
            image: vec![0.0; images * hp * wp * g.cin],
            dy: vec![0.0; g.cout.div_ceil(ROWS) * ROWS * images * oh * ow],
            block: vec![Line([0.0; 16]); DEPTH * COLS / 16],
        }
    }

    /// Images `first..first + count`: their inputs, and dy (through the
    /// gates `relu_out`, where given), whose sums per channel are added to
    /// `db`.
    fn load(
        &mut self,
        isa: Isa,
        (x, dy, relu_out): Inputs,
        (first, count): (usize, usize),
        db: &mut [f32],
    ) {
        let g = self.g;
        let (hw, ohw) = (g.h * g.w, g.out().0 * g.out().1);
        self.count = count;
        let x = &x[first * g.cin * hw..][..count * g.cin * hw];
        let dy = &dy[first * g.cout * ohw..][..count * g.cout * ohw];
        let relu_out = relu_out.map(|y| &y[first * g.cout * ohw..][..count * g.cout * ohw]);
        let mut sums = vec![0.0f32; g.cout];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `weight_gradient_on` runs only where this CPU has `isa`;
        // the slices above hold the chunk's images.
        unsafe {
            match isa {
                Isa::Avx512 => {
                    self.channels_last(x);
                    self.pack_dy(dy, relu_out, &mut sums);
                }
                Isa::Avx2 => {
                    self.channels_last8(x);
                    self.pack_dy8(dy, relu_out, &mut sums);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "AVX-512 or AVX2 only: {:?}",
            (isa, x.len(), dy.len(), relu_out.is_some())
        );
        db.iter_mut().zip(&sums).for_each(|(d, s)| *d += s);
    }

    /// The chunk's images into `image`, 16 channels by 16 positions at a
    /// time: each position's channels side by side. Only the interior is
    /// written, so the padding stays 0 from `new`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` holds the chunk's images.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn channels_last(&mut self, x: &[f32]) {
        let g = self.g;
        let ((hp, wp), hw) = (padded(g), g.h * g.w);
        let (top, left) = (g.pad[0], g.pad[2]);
        for (x, out) in x
            .chunks_exact(g.cin * hw)
            .zip(self.image.chunks_exact_mut(hp * wp * g.cin))
        {
            for c0 in (0..g.cin).step_by(16) {
                let count = 16.min(g.cin - c0);
                let channels = ((1u32 << count) - 1) as u16;
                for p0 in (0..hw).step_by(16) {
                    let rows = std::array::from_fn(|r| x.as_ptr().wrapping_add((c0 + r) * hw + p0));
                    transpose::fetch(x.as_ptr().wrapping_add((c0 + 16) * hw + p0 * 16), 16);
                    let n = 16.min(hw - p0);
                    transpose::block(&rows, None, (count, n), |j, v| {
                        let (r, col) = ((p0 + j) / g.w, (p0 + j) % g.w);
                        let at = ((r + top) * wp + left + col) * g.cin + c0;
                        assert!(at + count <= out.len());
                        _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), channels, v);
                    });
                }
            }
        }
    }

    /// dy into `self.dy`, through the gates, 16 channels (two panels) by
    /// 16 positions at a time; its sums per channel into `sums`, in the
    /// fixed order in which `transpose::block` hands out the positions.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `dy` (and `relu_out`) hold the chunk's images.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_dy(&mut self, dy: &[f32], relu_out: Option<&[f32]>, sums: &mut [f32]) {
        let g = self.g;
        let ohw = g.out().0 * g.out().1;
        let positions = self.count * ohw;
        let panels = g.cout.div_ceil(ROWS);
        let out = &mut self.dy[..panels * ROWS * positions];
        for c0 in (0..g.cout).step_by(16) {
            let count = 16.min(g.cout - c0);
            let mut sum = _mm512_setzero_ps();
            for i in 0..self.count {
                let at = |q: usize| move |r: usize| (i * g.cout + c0 + r) * ohw + q;
                for q0 in (0..ohw).step_by(16) {
                    let rows = std::array::from_fn(|r| dy.as_ptr().wrapping_add(at(q0)(r)));
                    let gates: Option<[*const f32; 16]> = relu_out
                        .map(|y| std::array::from_fn(|r| y.as_ptr().wrapping_add(at(q0)(r))));
                    let n = 16.min(ohw - q0);
                    let next = at(q0 * 16)(16);
                    transpose::fetch(dy.as_ptr().wrapping_add(next), 16);
                    if let Some(y) = relu_out {
                        transpose::fetch(y.as_ptr().wrapping_add(next), 16);
                    }
                    transpose::block(&rows, gates.as_ref(), (count, n), |j, v| {
                        sum = _mm512_add_ps(sum, v);
                        let p = i * ohw + q0 + j;
                        let (p0, d) = pass(p, positions);
                        let panel = c0 / ROWS;
                        let at = p0 * panels * ROWS + (panel * d + p - p0) * ROWS;
                        assert!(at + ROWS <= out.len());
                        let halves = _mm512_castps_pd(v);
                        _mm256_storeu_pd(
                            out.as_mut_ptr().add(at).cast(),
                            _mm512_castpd512_pd256(halves),
                        );
                        if count > ROWS {
                            let at = at + d * ROWS;
                            assert!(at + ROWS <= out.len());
                            let high = _mm512_extractf64x4_pd::<1>(halves);
                            _mm256_storeu_pd(out.as_mut_ptr().add(at).cast(), high);
                        }
                    });
                }
            }
            let mut lanes = [0.0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), sum);
            sums[c0..][..count].copy_from_slice(&lanes[..count]);
        }
    }

    /// `channels_last` with AVX2: 8 channels by 8 positions at a time.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` holds the chunk's images.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn channels_last8(&mut self, x: &[f32]) {
        let g = self.g;
        let ((hp, wp), hw) = (padded(g), g.h * g.w);
        let (top, left) = (g.pad[0], g.pad[2]);
        for (x, out) in x
            .chunks_exact(g.cin * hw)
            .zip(self.image.chunks_exact_mut(hp * wp * g.cin))
        {
            for c0 in (0..g.cin).step_by(8) {
                let count = 8.min(g.cin - c0);
                for p0 in (0..hw).step_by(8) {
                    let rows = std::array::from_fn(|r| x.as_ptr().wrapping_add((c0 + r) * hw + p0));
                    transpose::fetch(x.as_ptr().wrapping_add((c0 + 8) * hw + p0 * 8), 4);
                    let n = 8.min(hw - p0);
                    // A short block (a plane's last) reads 8 values where
                    // they lie in the image `x`: all but its last channels'.
                    let whole = (c0 + count - 1) * hw + p0 + 8 <= x.len();
                    transpose::block8(&rows, None, (count, n, whole), |j, v| {
                        let (r, col) = ((p0 + j) / g.w, (p0 + j) % g.w);
                        let at = ((r + top) * wp + left + col) * g.cin + c0;
                        let out = &mut out[at..at + count];
                        if count == 8 {
                            _mm256_storeu_ps(out.as_mut_ptr(), v);
                        } else {
                            // The next position's channels follow: only
                            // this one's are written.
                            let mut lanes = [0.0f32; 8];
                            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                            out.copy_from_slice(&lanes[..count]);
                        }
                    });
                }
            }
        }
    }

    /// `pack_dy` with AVX2: 8 channels (one panel) by 8 positions at a
    /// time; each channel's sum runs over the positions in order.
    ///
    /// # Safety
    /// The CPU has AVX2; `dy` (and `relu_out`) hold the chunk's images.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn pack_dy8(&mut self, dy: &[f32], relu_out: Option<&[f32]>, sums: &mut [f32]) {
        let g = self.g;
        let ohw = g.out().0 * g.out().1;
        let positions = self.count * ohw;
        let panels = g.cout.div_ceil(ROWS);
        let out = &mut self.dy[..panels * ROWS * positions];
        for c0 in (0..g.cout).step_by(ROWS) {
            let count = ROWS.min(g.cout - c0);
            let mut sum = _mm256_setzero_ps();
            for i in 0..self.count {
                let at = |q: usize| move |r: usize| (i * g.cout + c0 + r) * ohw + q;
                for q0 in (0..ohw).step_by(8) {
                    let rows = std::array::from_fn(|r| dy.as_ptr().wrapping_add(at(q0)(r)));
                    let gates: Option<[*const f32; 8]> = relu_out
                        .map(|y| std::array::from_fn(|r| y.as_ptr().wrapping_add(at(q0)(r))));
                    let n = 8.min(ohw - q0);
                    let whole = at(q0)(count - 1) + 8 <= dy.len();
                    let next = at(q0 * 8)(8);
                    transpose::fetch(dy.as_ptr().wrapping_add(next), 4);
                    if let Some(y) = relu_out {
                        transpose::fetch(y.as_ptr().wrapping_add(next), 4);
                    }
                    transpose::block8(&rows, gates.as_ref(), (count, n, whole), |j, v| {
                        sum = _mm256_add_ps(sum, v);
                        let p = i * ohw + q0 + j;
                        let (p0, d) = pass(p, positions);
                        let at = p0 * panels * ROWS + (c0 / ROWS * d + p - p0) * ROWS;
                        _mm256_storeu_ps(out[at..at + ROWS].as_mut_ptr(), v);
                    });
                }
            }
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
            sums[c0..][..count].copy_from_slice(&lanes[..count]);
        }
    }

    /// Adds the chunk's dy x cols^T to `dw` (cout x K): for each block of
    /// 48 values of K and each pass of positions, the block is packed and
    /// every panel of 8 channels of dy meets it.
    fn accumulate(&mut self, isa: Isa, dw: &mut [f32]) {
        let g = self.g;
        let [kh, kw] = g.kernel;
        let (k, run) = (g.cin * kh * kw, g.cin * kw);
        let positions = self.count * g.out().0 * g.out().1;
        let panels = g.cout.div_ceil(ROWS);
        let mut block = std::mem::take(&mut self.block);
        for k0 in (0..k).step_by(COLS) {
            let width = COLS.min(k - k0);
            for p0 in (0..positions).step_by(DEPTH) {
                let d = pass(p0, positions).1;
                let block = &mut block[..d * COLS / 16];
                self.pack(block, (k0, width), (p0, d), run);
                let dy = &self.dy[p0 * panels * ROWS..][..panels * ROWS * d];
                for (panel, a) in dy.chunks_exact(ROWS * d).enumerate() {
                    let rows = ROWS.min(g.cout - panel * ROWS);
                    let y = &mut dw[panel * ROWS * k + k0..];
                    panel::accumulate(isa, (a, rows), (block, width), y, k);
                }
            }
        }
        self.block = block;
    }

    /// Values `k0..k0 + width` of K at positions `p0..p0 + d`, 48 a
    /// position (lanes past `width` 0): K's values in kernel row i are
    /// the `run` values from the padded image's cell (oy * stride + i, ox *
    /// stride). The pieces of the block are the same at every position,
    /// so they are worked out once.
    fn pack(
        &self,
        block: &mut [Line],
        (k0, width): (usize, usize),
        (p0, d): (usize, usize),
        run: usize,
    ) {
        let g = self.g;
        let (hp, wp) = padded(g);
        let (oh, ow) = g.out();
        let [sh, sw] = g.stride;
        // (offset from the position's cell, offset in the block, length).
        let mut pieces = [(0, 0, 0); COLS];
        let mut count = 0;
        let mut kk = k0;
        while kk < k0 + width {
            let (row, s) = (kk / run, kk % run);
            let len = (run - s).min(k0 + width - kk);
            pieces[count] = (row * wp * g.cin + s, kk - k0, len);
            count += 1;
            kk += len;
        }
        let pieces = &pieces[..count];
        // SAFETY: a Line is 16 f32 and nothing else (`repr(C)`, 64 bytes).
        let out = unsafe {
            std::slice::from_raw_parts_mut(block.as_mut_ptr().cast::<f32>(), block.len() * 16)
        };
        // The position's image, output row and column, stepped along.
        let (mut i, at) = (p0 / (oh * ow), p0 % (oh * ow));
        let (mut oy, mut ox) = (at / ow, at % ow);
        for line in out.chunks_exact_mut(COLS).take(d) {
            let base = (i * hp * wp + oy * sh * wp + ox * sw) * g.cin;
            match pieces {
                // A whole line from one place: a fixed-size copy, three
                // vector moves (a call to `memcpy` otherwise).
                &[(from, 0, COLS)] => {
                    let src: &[f32; COLS] = self.image[base + from..][..COLS].try_into().unwrap();
                    *<&mut [f32; COLS]>::try_from(line).unwrap() = *src;
                }
                _ => {
                    for &(from, to, len) in pieces {
                        line[to..][..len].copy_from_slice(&self.image[base + from..][..len]);
                    }
                    line[width..].fill(0.0);
                }
            }
            ox += 1;
            if ox == ow {
                (ox, oy) = (0, oy + 1);
                if oy == oh {
                    (oy, i) = (0, i + 1);
                }
            }
        }
    }
}

/// The passes of positions start every `DEPTH`: (the pass's first
/// position, its length) for position `p` of `positions`.
fn pass(p: usize, positions: usize) -> (usize, usize) {
    let p0 = p / DEPTH * DEPTH;
    (p0, DEPTH.min(positions - p0))
}

/// An image's padded height and width.
fn padded(g: &Geometry) -> (usize, usize) {
    let [top, bottom, left, right] = g.pad;
    (g.h + top + bottom, g.w + left + right)
}

#[cfg(test)]
mod tests {
    use super::super::noise;
    use super::*;

    /// dW and db by their definition, in f64.
    fn definition(
        x: &[f32],
        dy: &[f32],
        gates: Option<&[f32]>,
        g: &Geometry,
    ) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = g.out();
        let [kh, kw] = g.kernel;
        let (top, left) = (g.pad[0] as isize, g.pad[2] as isize);
        let mut dw = vec![0.0f64; g.cout * g.cin * kh * kw];
        let mut db = vec![0.0f64; g.cout];
        for n in 0..g.n {
            for o in 0..g.cout {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let at = ((n * g.cout + o) * oh + oy) * ow + ox;
                    if !gates.is_none_or(|y| y[at] > 0.0) {
                        continue;
                    }
                    let d = dy[at] as f64;
                    db[o] += d;
                    for (c, i, j) in (0..g.cin)
                        .flat_map(|c| (0..kh).flat_map(move |i| (0..kw).map(move |j| (c, i, j))))
                    {
                        let r = (oy * g.stride[0] + i) as isize - top;
                        let s = (ox * g.stride[1] + j) as isize - left;
                        if r < 0 || s < 0 || r >= g.h as isize || s >= g.w as isize {
                            continue;
                        }
                        let v = x[((n * g.cin + c) * g.h + r as usize) * g.w + s as usize];
                        dw[((o * g.cin + c) * kh + i) * kw + j] += d * v as f64;
                    }
                }
            }
        }
        (dw, db)
    }

    /// Against the definition, on three threads and on one (a run of
    /// several chunks, the last shorter: 9 images of 12 x 12 make chunks of
    /// 2), through a fused ReLU's gates and without:
    /// K past one block of 48 and not a multiple of it, channels that fill
    /// neither a panel of 8 nor a transposed block of 16, chunks deeper
    /// than one pass of positions, strides, uneven padding, 1x1 kernels.
    #[test]
    fn the_weight_gradient_is_its_definition() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|&isa| panel::has(isa))
            .collect();
        if isas.is_empty() {
            eprintln!("neither AVX-512 nor AVX2 on this CPU: this path does not run here");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let cases = [
            // n, cin, (h, w), cout, kernel, stride, pad
            (5, 5, (12, 12), 20, [5, 5], [1, 1], [2, 2, 2, 2]),
            (4, 3, (25, 25), 10, [3, 3], [2, 2], [0, 1, 0, 1]),
            (3, 17, (7, 9), 9, [3, 2], [1, 2], [1, 1, 0, 1]),
            (4, 40, (6, 6), 33, [1, 1], [1, 1], [0, 0, 0, 0]),
            (2, 64, (5, 5), 16, [3, 3], [1, 1], [1, 1, 1, 1]),
            (1, 2, (3, 4), 3, [2, 3], [1, 1], [0, 0, 0, 0]),
            (9, 5, (12, 12), 20, [5, 5], [1, 1], [2, 2, 2, 2]),
        ];
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for (case, (n, cin, (h, w), cout, kernel, stride, pad)) in cases.into_iter().enumerate() {
            let g = Geometry {
                n,
                cin,
                h,
                w,
                cout,
                kernel,
                stride,
                pad,
                groups: 1,
            };
            let (oh, ow) = g.out();
            let seed = 10 * case as u64;
            let x = noise(n * cin * h * w, seed);
            let dy = noise(n * cout * oh * ow, seed + 1);
            // A third of the gates closed, one of them by a NaN.
            let mut y = noise(dy.len(), seed + 2);
            y.iter_mut().for_each(|v| *v += 0.17);
            y[dy.len() / 2] = f32::NAN;
            let runs = [None, Some(&y[..])].into_iter();
            for (gates, pool) in runs.flat_map(|gates| [(gates, &pool), (gates, &one)]) {
                let mut first_dw: Option<Vec<f32>> = None;
                for &isa in &isas {
                    let (dw, db) = pool
                        .install(|| weight_gradient_on(isa, &x, &dy, gates, &g))
                        .expect("a layer it takes");
                    let again = pool.install(|| weight_gradient_on(isa, &x, &dy, gates, &g));
                    assert!(
                        again == Some((dw.clone(), db.clone())),
                        "{g:?}, {isa:?}: another call, other bits"
                    );
                    // The tiles add each value's products in the same order
                    // on both (db's sums are ordered by each transpose).
                    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    match &first_dw {
                        None => first_dw = Some(dw.clone()),
                        Some(first) => assert_eq!(bits(&dw), bits(first), "{g:?}, {isa:?}"),
                    }
                    let (want_w, want_b) = definition(&x, &dy, gates, &g);
                    let close = |got: &[f32], want: &[f64], what: &str| {
                        assert_eq!(got.len(), want.len());
                        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
                            assert!(
                                (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                                "{g:?}, {isa:?}, gates {}: {what}[{i}] {a} against {b}",
                                gates.is_some()
                            );
                        }
                    };
                    close(&dw, &want_w, "dW");
                    close(&db, &want_b, "db");
                }
            }
        }
    }

    /// A layer with groups goes to `gemm`, and so does a call with nothing
    /// to sum (no image, or images of no rows that padding gives outputs),
    /// which `gemm`'s path answers with zeros.
    #[test]
    fn a_layer_with_groups_or_nothing_to_sum_steps_aside() {
        let g = Geometry {
            n: 1,
            cin: 4,
            h: 3,
            w: 3,
            cout: 4,
            kernel: [1, 1],
            stride: [1, 1],
            pad: [0; 4],
            groups: 2,
        };
        let (x, dy) = (noise(36, 1), noise(36, 2));
        assert!(weight_gradient(&x, &dy, None, &g).is_none());
        let empty = Geometry {
            n: 0,
            groups: 1,
            ..g
        };
        assert!(weight_gradient(&[], &[], None, &empty).is_none());
        let rowless = Geometry {
            h: 0,
            pad: [1, 1, 0, 0],
            groups: 1,
            ..g
        };
        assert_eq!(rowless.out(), (2, 3));
        assert!(weight_gradient(&[], &noise(24, 3), None, &rowless).is_none());
    }
}
