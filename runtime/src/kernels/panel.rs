//! The convolution's forward matrix product on CPUs with AVX-512 (or AVX2): y =
//! bias + W x cols, then the ReLU, in register tiles of 8 output channels by
//! 48 output positions. Each block of 48 columns is packed into an aligned
//! buffer first, so that every step of k reads three whole cache lines:
//! the product alone ran at `gemm` 0.19's rate (131-141 GFLOP/s on one
//! core of an Intel Xeon, the zoo's shapes, `examples/products.rs`)
//! reading the columns in place, 148-154 packed (the core's peak is about
//! 200, `bench/layers/fma_peak.c`). Around the product: the weights are
//! packed once per layer call (`gemm` packs them for every image); the
//! bias is the tiles' starting value and the ReLU is applied as they are
//! stored, so the output is written once; and the columns are packed
//! straight from the input, never from a column matrix: shifted planes
//! for stride-1 convolutions as wide as their input (with lane masks for
//! the padding), the image itself for 1x1 convolutions, and gathers for
//! the rest. Layer by layer on that Xeon: docs/performance.md.
//! Gathered columns whose taps fall in the padding for a whole block
//! leave those taps out (`Gathers::skipping`, with weights of those taps
//! alone), and an image row's neighbouring columns are read with a few
//! masked loads rather than a gather (`Runs`).
//! CPUs with AVX2 and FMA but not AVX-512 run the same blocks through
//! 4 x 24 tiles (`Isa::Avx2`), with the same bits; the others keep `gemm`
//! (`Weights::pack` says None).

use super::conv::Shift;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
#[cfg(target_arch = "x86_64")]
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// Output channels per tile: one broadcast weight each per step of k.
pub const ROWS: usize = 8;
/// 16-lane vectors of output positions per tile: 8 x 3 accumulators, 24
/// of the 32 vector registers.
const VECTORS: usize = 3;
pub(super) const COLS: usize = 16 * VECTORS;
/// Rows of k per pass of `wgrad.rs`'s tiles: 128 x 48 values, 24 KiB, half
/// the L1 data cache of the Xeon measured (48 KiB).
pub(super) const DEPTH: usize = 128;
/// Rows of k per pass of a product: the whole depth of every forward
/// product of the zoo (k up to 2400, 450 KiB of packed columns, in L2;
/// nin2's input gradient, k = 4800, takes two passes), so that each tile
/// sums its whole depth in registers and writes its outputs once. Passes
/// of 128 rows (24 KiB, in L1) each wrote partial sums and read them back:
/// with outputs no longer zeroed first, that cost more than streaming the
/// block from L2. Layers at batch 128 on the model-207 Xeon, 5 rounds in
/// turns, one pass against passes of 128: time 0.80-0.96 on the layers
/// deeper than 128 (nin2's 1x1 at 12 x 12 0.80, nin3.conv 0.84, alex4.conv2
/// 0.93, nin2.conv 0.94), level on the rest; as an AVX2 CPU, 0.92-1.01.
const PASS: usize = 2560;

/// One group's weights (m x k): packed, or read where they lie (row-major).
/// Packed, they lie pass by pass (`depth` rows of k each, the last pass
/// shorter), and within a pass in panels of `ROWS` channels, k-major within
/// a panel (`panel[kk * ROWS + r]`, rows past m zero). So a pass's weights,
/// which every block of columns reads tile after tile, are one run of
/// memory that the hardware prefetcher follows from tile to tile; with each
/// panel's whole k in one run, each tile's weights lay `k` rows from the
/// last one's and began a new stream.
pub struct Weights<'a> {
    panels: Panels<'a>,
    m: usize,
    k: usize,
    /// Rows of k per pass: whole input channels of `per` kernel offsets
    /// (of a set's taps, for a set's weights).
    depth: usize,
    /// The instructions every product with these weights uses.
    isa: Isa,
    /// For gathers that leave out the padding's taps (`Gathers::skipping`):
    /// for each of their sets of taps after the first (every tap), those
    /// taps and the weights of those taps alone.
    sets: Vec<(Vec<u32>, Weights<'a>)>,
}

/// The vector instructions of a product. Both add each value's products in
/// the same order with fused multiply-adds: the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 8 x 48 register tiles: 24 of the 32 vector registers.
    Avx512,
    /// AVX2 and FMA (AMD's Zen 3, say): each 8 x 48 tile as four tiles of
    /// 4 x 24, 12 accumulators of AVX2's 16 registers (`steps2`).
    Avx2,
}

enum Panels<'a> {
    Packed(Vec<f32>),
    /// For a call that reads the weights for one image only (batch 1):
    /// packing them wrote and read them once more than the product did,
    /// and with a single block of columns (nin2's 6 x 6 maps) that traffic
    /// was most of the layer's time.
    Raw(&'a [f32]),
}

impl<'a> Weights<'a> {
    /// The weights read where they lie; None without AVX-512 or AVX2, as
    /// `pack`.
    pub fn raw(w: &'a [f32], m: usize, k: usize, per: usize) -> Option<Weights<'a>> {
        Self::raw_for(isa()?, w, m, k, per)
    }

    /// For the products on `isa`, which this CPU must have.
    pub fn raw_for(isa: Isa, w: &'a [f32], m: usize, k: usize, per: usize) -> Option<Weights<'a>> {
        assert!(w.len() >= m * k && has(isa));
        Some(Weights {
            panels: Panels::Raw(w),
            m,
            k,
            depth: depth(per),
            isa,
            sets: Vec::new(),
        })
    }

    /// For products whose columns come in runs of `per` rows of k (the
    /// kernel offsets of an input channel: `Cols::Shifted` and `Gathered`;
    /// 1 for a matrix). None where this CPU has neither AVX-512 nor AVX2
    /// with FMA (the caller then uses `gemm`).
    pub fn pack(w: &[f32], m: usize, k: usize, per: usize) -> Option<Weights<'a>> {
        Self::pack_for(isa()?, w, m, k, per)
    }

    /// For the products on `isa`, which this CPU must have.
    pub fn pack_for(isa: Isa, w: &[f32], m: usize, k: usize, per: usize) -> Option<Weights<'a>> {
        Some(Self::pack_passes(isa, w, m, k, depth(per)))
    }

    /// `pack_for` in passes of `depth` rows of k.
    fn pack_passes(isa: Isa, w: &[f32], m: usize, k: usize, depth: usize) -> Weights<'a> {
        assert!(has(isa));
        assert!(w.len() >= m * k && i32::try_from(ROWS * k).is_ok());
        let count = m.div_ceil(ROWS);
        let mut panels = vec![0.0f32; count * ROWS * k];
        // Each panel of each pass: (the panel, the pass's first row of k
        // and depth, where it goes).
        // No rows (a set of no taps: a block all in the padding): no passes.
        let mut jobs = Vec::with_capacity(count * k.div_ceil(depth.max(1)));
        let mut rest = &mut panels[..];
        for k0 in (0..k).step_by(depth.max(1)) {
            let depth = depth.min(k - k0);
            let (pass, after) = rest.split_at_mut(count * ROWS * depth);
            let pass = pass.chunks_exact_mut(ROWS * depth).enumerate();
            jobs.extend(pass.map(|(p, panel)| (p, (k0, depth), panel)));
            rest = after;
        }
        let one = |(p, (k0, depth), panel): (usize, (usize, usize), &mut [f32])| {
            let rows = ROWS.min(m - p * ROWS);
            let w = &w[p * ROWS * k..][..rows * k];
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `has(isa)` said this CPU has AVX-512; the
                // panel's rows lie in `w`, its steps of k in `k0..k`, and
                // the gather's offsets (under 8 k) fit an i32 (asserted).
                Isa::Avx512 => unsafe { pack_panel(w, rows, k, (k0, depth), panel) },
                // Once per layer call, and the AVX2 CPUs' gather is slow.
                _ => {
                    for (r, w) in w.chunks_exact(k).enumerate() {
                        for (kk, &v) in w[k0..][..depth].iter().enumerate() {
                            panel[kk * ROWS + r] = v;
                        }
                    }
                }
            }
        };
        // Packed one value at a time, nin2's weights took 12 % of its
        // batch-1 latency on one thread; the gather below moves 16 a step,
        // and large layers spread their panels over the threads. From 16 K
        // weights (squeeze1's 3 x 3 expands, forward and flipped for their
        // input gradients): packed on one thread, they kept the other
        // waiting for 0.6 % of squeeze1's training.
        if m * k >= 1 << 14 {
            jobs.into_par_iter().for_each(one);
        } else {
            jobs.into_iter().for_each(one);
        }
        Weights {
            panels: Panels::Packed(panels),
            m,
            k,
            depth,
            isa,
            sets: Vec::new(),
        }
    }

    /// `w` (m x k) packed in one pass over the whole of k, for a kernel
    /// that reads the panels itself (`lanes.rs`): panel p's steps
    /// `panel[kk * ROWS + r]`, `ROWS * k` values a panel, rows past m 0.
    pub(super) fn whole(isa: Isa, w: &[f32], m: usize, k: usize) -> Vec<f32> {
        match Self::pack_passes(isa, w, m, k, k).panels {
            Panels::Packed(panels) => panels,
            Panels::Raw(_) => unreachable!("pack_passes packs"),
        }
    }

    /// These weights (`w`, packed, for runs of `gathers.per` rows) with
    /// the weights of each of `gathers`' sets of taps (`Gathers::skipping`),
    /// for the blocks of columns that leave the other taps out. Each set's
    /// passes cover the same input channels as these weights' passes.
    pub(super) fn skipping(mut self, w: &[f32], gathers: &Gathers) -> Weights<'a> {
        let (m, k, per) = (self.m, self.k, gathers.per);
        assert!(matches!(self.panels, Panels::Packed(_)) && k % per == 0);
        assert!(self.depth.is_multiple_of(per) && w.len() >= m * k);
        let channels = k / per;
        // On every thread: made on the caller's alone, nin2's 5 x 5 layer's
        // six sets were 2-3 % of its time, the other thread waiting.
        self.sets = gathers.sets[1..]
            .par_iter()
            .map(|taps| {
                let mut kept = Vec::with_capacity(m * channels * taps.len());
                for row in w[..m * k].chunks_exact(per) {
                    kept.extend(taps.iter().map(|&s| row[s as usize]));
                }
                let depth = self.depth / per * taps.len();
                let k = channels * taps.len();
                (
                    taps.clone(),
                    Self::pack_passes(self.isa, &kept, m, k, depth),
                )
            })
            .collect();
        self
    }
}

/// Rows of k per pass for columns that come in runs of `per` rows: about
/// `PASS`, whole runs, so that a pass of shifted planes starts at shift 0.
fn depth(per: usize) -> usize {
    let per = per.max(1);
    PASS.div_ceil(per) * per
}

/// One panel's steps `k0..k0 + depth`: `panel[kk * ROWS + r]` is
/// `w[r * k + k0 + kk]` for the `rows` rows of `w`, 0 for rows past them.
/// Two steps of k (16 values) per gather.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel(
    w: &[f32],
    rows: usize,
    k: usize,
    (k0, depth): (usize, usize),
    panel: &mut [f32],
) {
    let (row, step) = (k as i32, 1i32);
    let index = _mm512_setr_epi32(
        0,
        row,
        2 * row,
        3 * row,
        4 * row,
        5 * row,
        6 * row,
        7 * row,
        step,
        row + step,
        2 * row + step,
        3 * row + step,
        4 * row + step,
        5 * row + step,
        6 * row + step,
        7 * row + step,
    );
    // Lanes of rows past `rows` are not read and stay 0.
    let half = (1u16 << rows) - 1;
    let zero = _mm512_setzero_ps();
    let (out, w) = (panel.as_mut_ptr(), w.as_ptr().add(k0));
    let mut kk = 0;
    while kk + 2 <= depth {
        let v = _mm512_mask_i32gather_ps::<4>(zero, half | half << 8, index, w.add(kk));
        _mm512_storeu_ps(out.add(kk * ROWS), v);
        kk += 2;
    }
    if kk < depth {
        let v = _mm512_mask_i32gather_ps::<4>(zero, half, index, w.add(kk));
        _mm512_mask_storeu_ps(out.add(kk * ROWS), 0xff, v);
    }
}

/// Set by `prefer_gemm`: products go to `gemm` even on CPUs with AVX-512.
static GEMM: AtomicBool = AtomicBool::new(false);
/// Set by `limit_to_avx2`.
static AVX2_ONLY: AtomicBool = AtomicBool::new(false);

/// Sends the products to `gemm` (true) or back to `panel` where the CPU
/// has AVX-512 or AVX2 (false), for the whole process: so that the tests
/// check the `gemm` path on such a CPU too (CPUs with neither run only
/// that one).
pub fn prefer_gemm(yes: bool) {
    GEMM.store(yes, Ordering::Relaxed);
}

/// Runs the products and the poolings with AVX2 even on CPUs with AVX-512
/// (true), for the whole process, as a CPU without AVX-512 runs them: for
/// the tests, and to measure that path on a CPU that has both.
pub fn limit_to_avx2(yes: bool) {
    AVX2_ONLY.store(yes, Ordering::Relaxed);
}

/// Whether this CPU has `isa`'s instructions.
pub fn has(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        false
    }
}

/// The instructions `Weights::pack` and `raw` choose: `vectors()`, or None
/// where `gemm` is preferred.
pub fn isa() -> Option<Isa> {
    match GEMM.load(Ordering::Relaxed) {
        true => None,
        false => vectors(),
    }
}

/// The widest vectors netc's kernels use on this CPU: AVX-512 where it has
/// it (unless `limit_to_avx2`), else AVX2 with FMA; None where it has
/// neither (a CPU with AVX2 but no FMA, which this project has not met,
/// runs the portable loops).
pub fn vectors() -> Option<Isa> {
    let wide = !AVX2_ONLY.load(Ordering::Relaxed) && has(Isa::Avx512);
    [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .find(|&isa| has(isa) && (isa != Isa::Avx512 || wide))
}

/// Whether `Weights::pack` packs.
pub(super) fn available() -> bool {
    isa().is_some()
}

/// The shifts of a convolution's kernel offsets (`conv::Shift`: the plane
/// shifted by `d`, valid at positions `lo..hi` whose column in the image
/// row lies in `first..last`), in im2col's row order, with the lanes each
/// one reads in each block of 48 output positions: the
/// same for every image, so made once per layer call (made per image, they
/// cost more than conv1's product).
pub struct Shifts {
    shifts: Vec<Shift>,
    /// `[block * shifts + s][v]`: the positions p < n that shift s reads,
    /// in `lo..hi` with their column `p % w` in `first..last`.
    lanes: Vec<[u16; VECTORS]>,
    /// The lowest and highest shift: a block's span of each plane, for
    /// `Ahead`, without a search per block.
    span: (isize, isize),
    n: usize,
    w: usize,
}

impl Shifts {
    /// For output maps of `n` positions, `w` wide.
    pub(super) fn new(shifts: Vec<Shift>, n: usize, w: usize) -> Shifts {
        let mut lanes = Vec::new();
        for j in (0..n).step_by(COLS) {
            for s in &shifts {
                lanes.push(std::array::from_fn(|v| {
                    (0..16).fold(0u16, |mask, q| {
                        let p = j + 16 * v + q;
                        let valid = p < n
                            && (s.lo..s.hi).contains(&p)
                            && (s.first..s.last).contains(&(p % w));
                        mask | (u16::from(valid) << q)
                    })
                }));
            }
        }
        let offsets = shifts.iter().map(|s| s.d);
        let span = (
            offsets.clone().min().unwrap_or(0),
            offsets.max().unwrap_or(0),
        );
        Shifts {
            shifts,
            lanes,
            span,
            n,
            w,
        }
    }
}

/// Where each kernel offset's row of the column matrix reads, lane by
/// lane, where the rows are not shifted planes: strided convolutions, maps
/// narrower than their input, and small maps whose columns run over several
/// images. Made once per layer call, like `Shifts`.
pub struct Gathers {
    /// Kernel offsets per input channel.
    per: usize,
    /// `[block * per + s]`: for each of the block's 48 columns, the offset
    /// of the value it reads from the first channel's plane.
    index: Vec<[i32; COLS]>,
    /// `[block * per + s][v]`: the columns (of the 16 of vector v) that
    /// read a value; the others are padding, 0.
    lanes: Vec<[u16; VECTORS]>,
    /// `[block * per + s]`: the same reads as runs of neighbouring values,
    /// where each vector's lanes make at most `RUNS` of them.
    runs: Vec<Option<[Runs; VECTORS]>>,
    n: usize,
    /// One past the largest offset read.
    end: usize,
    /// The sets of kernel offsets (taps) that blocks run: the first is
    /// every tap; with `skipping`, each other set leaves out taps that
    /// fall in the padding for every column of the blocks that run it.
    sets: Vec<Vec<u32>>,
    /// Each block's set.
    blocks: Vec<usize>,
}

impl Gathers {
    /// For `n` columns and `per` kernel offsets, where `at(p, s)` is the
    /// offset that column p reads under offset s, None in the padding.
    /// Every offset must fit an i32 (the gather's index): the caller checks.
    pub(super) fn new(per: usize, n: usize, at: impl Fn(usize, usize) -> Option<usize>) -> Gathers {
        let (mut index, mut lanes, mut end) = (Vec::new(), Vec::new(), 0);
        let mut runs = Vec::new();
        for j in (0..n).step_by(COLS) {
            for s in 0..per {
                let mut offsets = [0i32; COLS];
                let mut mask = [0u16; VECTORS];
                for (q, offset) in offsets.iter_mut().enumerate() {
                    if let Some(a) = (j + q < n).then(|| at(j + q, s)).flatten() {
                        *offset = i32::try_from(a).expect("the caller keeps offsets in i32");
                        mask[q / 16] |= 1 << (q % 16);
                        end = end.max(a + 1);
                    }
                }
                runs.push(Runs::of(&offsets, mask));
                index.push(offsets);
                lanes.push(mask);
            }
        }
        // Taps fit a u32: k = per x channels fits an i32 (`pack_for`).
        let every = (0..per).map(|s| s as u32);
        Gathers {
            per,
            index,
            lanes,
            runs,
            n,
            end,
            sets: vec![every.collect()],
            blocks: vec![0; n.div_ceil(COLS)],
        }
    }

    /// `new`, and each block of 48 columns leaves out the taps that fall
    /// in the padding for all of its columns: their rows of the block are
    /// zero, and a product over them adds `0 x w`, which is exactly
    /// nothing for finite weights. (An infinite or NaN weight's product in
    /// the padding is left out where its block leaves the tap out, so
    /// which outputs turn NaN depends on the block; a sum that is exactly
    /// -0 stays -0 where the full sum would add +0.) The caller
    /// orders the columns so that blocks share their padding; the weights
    /// of each set come from `Weights::skipping`.
    pub(super) fn skipping(
        per: usize,
        n: usize,
        at: impl Fn(usize, usize) -> Option<usize>,
    ) -> Gathers {
        let mut gathers = Self::new(per, n, at);
        for (b, block) in gathers.blocks.iter_mut().enumerate() {
            let lanes = &gathers.lanes[b * per..][..per];
            let taps: Vec<u32> = (0..per)
                .filter(|&s| lanes[s] != [0; VECTORS])
                .map(|s| s as u32)
                .collect();
            if taps.len() < per {
                *block = match gathers.sets.iter().position(|set| *set == taps) {
                    Some(set) => set,
                    None => {
                        gathers.sets.push(taps);
                        gathers.sets.len() - 1
                    }
                };
            }
        }
        gathers
    }

    /// The share of the taps of all columns that the blocks leave out.
    pub(super) fn skipped(&self) -> f64 {
        let total = self.blocks.len() * self.per;
        let run: usize = self.blocks.iter().map(|&set| self.sets[set].len()).sum();
        1.0 - run as f64 / total.max(1) as f64
    }
}

/// Masked loads per vector of a gathered row, at most: `vgatherdps` reads
/// a value a cycle or slower (on AMD's Zen 4, packing small maps' columns
/// took half of squeeze1's packing time), where the columns of an image
/// row read neighbouring values that a few masked loads bring in.
const RUNS: usize = 4;

/// One vector of a gathered row as masked loads: load r brings lanes
/// `masks[r]`, lane q from `plane[bases[r] + q]`.
#[derive(Clone, Copy)]
struct Runs {
    count: u8,
    masks: [u16; RUNS],
    bases: [i32; RUNS],
}

impl Runs {
    /// The runs of each of a row's vectors (`offsets` read where `mask`
    /// says), or None where a vector takes more than `RUNS`.
    fn of(offsets: &[i32; COLS], mask: [u16; VECTORS]) -> Option<[Runs; VECTORS]> {
        let mut all = [Runs {
            count: 0,
            masks: [0; RUNS],
            bases: [0; RUNS],
        }; VECTORS];
        for (v, runs) in all.iter_mut().enumerate() {
            for q in (0..16).filter(|q| mask[v] >> q & 1 == 1) {
                let base = offsets[16 * v + q] - q as i32;
                let count = usize::from(runs.count);
                match runs.bases[..count].iter().position(|&b| b == base) {
                    Some(r) => runs.masks[r] |= 1 << q,
                    None if count < RUNS => {
                        runs.bases[count] = base;
                        runs.masks[count] = 1 << q;
                        runs.count += 1;
                    }
                    None => return None,
                }
            }
        }
        Some(all)
    }
}

/// Where the rows of the column matrix (k x n) come from.
#[derive(Clone, Copy)]
pub enum Cols<'a> {
    /// Written out, rows `ld` apart (im2col).
    Matrix { data: &'a [f32], ld: usize },
    /// Read straight from the input planes (`hw` values each): row
    /// `c * shifts + s` is plane c under shift s. No column matrix is
    /// written: for alex4's conv2 it was 864 x 144 values per image,
    /// written and read back.
    Shifted {
        planes: &'a [f32],
        hw: usize,
        shifts: &'a Shifts,
    },
    /// Gathered from the input planes (`hw` values apart): row
    /// `c * per + s` reads `planes[c * hw + index]` through the gathers'
    /// indices for offset s (with a block's set of taps, row `c * len + t`
    /// reads its t-th tap).
    Gathered {
        planes: &'a [f32],
        hw: usize,
        gathers: &'a Gathers,
    },
}

/// y (m x n, row-major) = bias + W * cols, where `cols` is k x n; then
/// max(y, 0) when `relu`. Each value's sum runs over k in order, starting
/// from the bias: the same bits on every call, on any number of threads,
/// and from either source of columns. `parallel` spreads the panels of 8
/// channels over the threads (batch 1, where the images cannot be).
pub fn product(
    w: &Weights,
    cols: Cols,
    n: usize,
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    parallel: bool,
) {
    // SAFETY: `product_into` writes only f32 values into `y`.
    let y = unsafe { super::cpu::slots(y) };
    product_into(w, cols, n, bias, relu, y, parallel);
}

/// `product` into memory that need not hold values yet (a new output):
/// every value of `y[..m * n]` is written, and none is read before it is.
/// Zeroing a convolution's output first, for the products to overwrite,
/// was 5-8 % of squeeze1's inference.
pub(super) fn product_into(
    w: &Weights,
    cols: Cols,
    n: usize,
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [MaybeUninit<f32>],
    parallel: bool,
) {
    assert!(y.len() >= w.m.saturating_mul(n));
    product_to(w, cols, n, bias, relu, (y, None), parallel);
}

/// `product_into` with each column stored where `scatter` says: column q
/// of row r at `y[r * ldy + to[q]]`, on one thread. An ordered tile's
/// product (`conv::Ordered`) goes straight into its images this way: in
/// a matrix of its own, then copied into them, the copy was 3 % of nin2's
/// 5 x 5 layer.
pub(super) fn product_scattered(
    w: &Weights,
    cols: Cols,
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [MaybeUninit<f32>],
    scatter: &Scatter,
) {
    let (m, n) = (w.m, scatter.to.len());
    assert!(w.k > 0 && (m == 0 || y.len() >= (m - 1) * scatter.ldy + scatter.end));
    product_to(w, cols, n, bias, relu, (y, Some(scatter)), false);
}

/// Where a product's columns go when they do not lie side by side in rows
/// of the output: column q of row r at `y[r * ldy + to[q]]`, every place
/// apart from the others.
pub(super) struct Scatter {
    ldy: usize,
    to: Vec<u32>,
    /// Each block's places as runs of neighbouring ones, where its vectors
    /// make at most `RUNS` each (masked stores; else lane by lane).
    runs: Vec<Option<[Runs; VECTORS]>>,
    /// One past the largest place.
    end: usize,
}

impl Scatter {
    pub(super) fn new(ldy: usize, to: Vec<u32>) -> Scatter {
        let runs = to
            .chunks(COLS)
            .map(|to| {
                let mut offsets = [0i32; COLS];
                for (o, &t) in offsets.iter_mut().zip(to) {
                    *o = i32::try_from(t).expect("places fit an i32");
                }
                Runs::of(&offsets, masks(to.len()))
            })
            .collect();
        let end = to.iter().map(|&t| t as usize + 1).max().unwrap_or(0);
        Scatter { ldy, to, runs, end }
    }
}

/// `product_into`, or `product_scattered` where `scatter` is given (the
/// output's rows then `ldy` apart).
fn product_to(
    w: &Weights,
    cols: Cols,
    n: usize,
    bias: Option<&[f32]>,
    relu: bool,
    (y, scatter): (&mut [MaybeUninit<f32>], Option<&Scatter>),
    parallel: bool,
) {
    let (m, k) = (w.m, w.k);
    assert!(bias.is_none_or(|b| b.len() >= m));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // No products: the bias (or 0), through the ReLU.
        for (r, y) in y[..m * n].chunks_exact_mut(n).enumerate() {
            let v = bias.map_or(0.0, |b| b[r]);
            y.fill(MaybeUninit::new(if relu { v.max(0.0) } else { v }));
        }
        return;
    }
    // Rows of k per pass: whole runs of `per` for shifts and gathers, so
    // that a pass starts at shift 0.
    let depth = w.depth;
    // Weights made for gathers' sets of taps, where both have sets; else
    // every block runs every tap.
    let skip = match cols {
        Cols::Gathered { gathers, .. } => gathers.sets.len() > 1 && !w.sets.is_empty(),
        _ => false,
    };
    match cols {
        Cols::Matrix { data, ld } => {
            assert!(data.len() >= (k - 1).saturating_mul(ld).saturating_add(n));
        }
        Cols::Shifted { planes, hw, shifts } => {
            let per = shifts.shifts.len();
            assert!(per > 0 && k % per == 0 && planes.len() >= (k / per).saturating_mul(hw));
            assert!(shifts.n == n);
            for s in &shifts.shifts {
                assert!(s.lo <= s.hi && s.hi <= n && s.last <= shifts.w);
                assert!(
                    s.hi == s.lo
                        || (s.lo as isize + s.d >= 0 && s.hi as isize + s.d <= hw as isize)
                );
            }
            assert!(depth.is_multiple_of(per));
        }
        Cols::Gathered {
            planes,
            hw,
            gathers,
        } => {
            let per = gathers.per;
            assert!(per > 0 && k % per == 0 && gathers.n == n);
            assert!(gathers.end == 0 || (k / per - 1) * hw + gathers.end <= planes.len());
            assert!(depth.is_multiple_of(per));
            assert!(!skip || w.sets.len() + 1 == gathers.sets.len());
            for ((taps, ws), set) in w.sets.iter().zip(&gathers.sets[1..]).filter(|_| skip) {
                let len = taps.len();
                assert!(taps == set && (ws.m, ws.isa) == (m, w.isa));
                assert!((ws.k, ws.depth) == (k / per * len, depth / per * len));
            }
        }
    }
    let ldy = scatter.map_or(n, |s| s.ldy);
    let y = match scatter {
        Some(s) => &mut y[..(m - 1) * ldy + s.end],
        None => &mut y[..m * n],
    };
    let count = m.div_ceil(ROWS);
    // Panels `first..` of `y` (its rows from `first * ROWS` on), a block
    // of `depth` rows of the columns at a time (the whole depth, up to
    // `PASS`), packed first: the block's 48 columns stay in the cache while
    // every panel of weights passes over them.
    let panels = |first: usize, y: &mut [MaybeUninit<f32>]| {
        // The thread's block from its last product: a new one per call
        // (squeeze1 makes one per image) was allocated and zeroed, 100 KiB
        // at a time, for `pack` to overwrite.
        let mut block = BLOCK.take();
        block.resize(depth.min(k) * VECTORS, Line([0.0; 16]));
        for k0 in (0..k).step_by(depth) {
            let (full, last, resume) = (depth.min(k - k0), k0 + depth >= k, k0 > 0);
            for (b, j) in (0..n).step_by(COLS).enumerate() {
                let width = COLS.min(n - j);
                // The block's set of taps (gathers that skip the padding)
                // and their weights; the pass's rows of them.
                let set = match cols {
                    Cols::Gathered { gathers, .. } if skip => gathers.blocks[b],
                    _ => 0,
                };
                let (w, (k0, depth)) = match (set, cols) {
                    (1.., Cols::Gathered { gathers, .. }) => {
                        let (taps, w) = &w.sets[set - 1];
                        let rows = |r: usize| r / gathers.per * taps.len();
                        (w, (rows(k0), rows(full)))
                    }
                    _ => (w, (k0, full)),
                };
                let block = &mut block[..depth * VECTORS];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Weights::pack` or `raw` made `w`, so this CPU
                // has `w.isa`; the asserts above keep every read in bounds.
                unsafe {
                    match w.isa {
                        Isa::Avx512 => pack(cols, (k0, depth), (b, width), set, block),
                        Isa::Avx2 => pack2(cols, (k0, depth), (b, width), set, block),
                    }
                };
                // Panel p's rows from the start of `y` on: a scattered
                // tile's places reach past them, into the rows below.
                let here = match scatter {
                    Some(_) => count,
                    None => y.len().div_ceil(ROWS * ldy),
                };
                // The next block's input (a 1x1 layer's rows of its image,
                // or each channel's span of the planes its shifts read) is
                // fetched into L2, a share per panel, while this block's
                // tiles run. Packed when its turn came, the pack waited on
                // every line (10 % of nin2's 24 x 24 1x1 layer); fetched
                // this way that layer ran 5-10 % faster; fetched into L1
                // (48 KB of rows, more than it holds), no faster.
                let ahead = Ahead::new(cols, (k0, full), j + COLS, n);
                let share = ahead.count.div_ceil(here.max(1));
                for p in first..first + here {
                    let from = (p - first) * share;
                    ahead.fetch(from..(from + share).min(ahead.count));
                    let y = &mut y[(p - first) * ROWS * ldy..];
                    let rows = ROWS.min(m - p * ROWS);
                    let mut start = [0.0f32; ROWS];
                    if let (Some(b), false) = (bias, resume) {
                        start[..rows].copy_from_slice(&b[p * ROWS..][..rows]);
                    }
                    #[cfg(target_arch = "x86_64")]
                    {
                        let a = match &w.panels {
                            Panels::Packed(panels) => {
                                let pass = &panels[k0 * count * ROWS..];
                                A::Packed(&pass[p * ROWS * depth..][..ROWS * depth])
                            }
                            // Rows past m read the panel's last row again;
                            // their sums are not stored.
                            Panels::Raw(raw) => A::Raw(std::array::from_fn(|r| {
                                &raw[(p * ROWS + r.min(rows - 1)) * w.k + k0..][..depth]
                            })),
                        };
                        let to = scatter.map(|s| (&s.to[j..][..width], s.runs[b].as_ref()));
                        let tile = Tile {
                            a,
                            b: block,
                            halves: w.isa == Isa::Avx2,
                            width,
                            rows,
                            start,
                            resume,
                            relu: relu && last,
                            to,
                        };
                        let y = if to.is_some() { y } else { &mut y[j..] };
                        // SAFETY: as for `pack`; `y` holds the tile's rows
                        // (`ldy` apart: scattered, up to `s.end` in each),
                        // and the first block of k wrote every value that
                        // a later one resumes from.
                        unsafe { tile.run_on(w.isa, y, ldy) };
                    }
                }
            }
        }
        BLOCK.set(block);
    };
    if parallel {
        assert!(scatter.is_none());
        let per = count.div_ceil(rayon::current_num_threads()).max(1);
        y.par_chunks_mut(per * ROWS * n)
            .enumerate()
            .for_each(|(i, y)| panels(i * per, y));
    } else {
        panels(0, y);
    }
}

/// y (`rows` x `width`, rows `ldy` apart) += a x b, where `a` holds `depth`
/// steps of `ROWS` values (`a[kk * ROWS + r]`, as a packed panel) and `b`
/// the `depth` packed rows of 48 values (3 lines each): one register tile,
/// for products `product` does not make (`wgrad.rs`). Values past `rows`
/// and `width` are summed but not stored.
pub(super) fn accumulate(
    isa: Isa,
    (a, rows): (&[f32], usize),
    (b, width): (&[Line], usize),
    y: &mut [f32],
    ldy: usize,
) {
    let depth = b.len() / VECTORS;
    assert!(has(isa) && b.len() == depth * VECTORS && a.len() >= depth * ROWS);
    assert!((1..=ROWS).contains(&rows) && (1..=COLS).contains(&width) && width <= ldy);
    assert!(y.len() >= (rows - 1) * ldy + width);
    #[cfg(target_arch = "x86_64")]
    {
        let tile = Tile {
            a: A::Packed(a),
            b,
            halves: false,
            width,
            rows,
            start: [0.0; ROWS],
            resume: true,
            relu: false,
            to: None,
        };
        // SAFETY: this CPU has `isa` (asserted); `a` and `b` hold `depth`
        // steps and `y` the tile's rows and columns (asserted), which hold
        // values (`resume`) and get only f32 values.
        unsafe { tile.run_on(isa, super::cpu::slots(y), ldy) }
    }
}

thread_local! {
    /// Each thread's block of packed columns for `product_into`.
    static BLOCK: std::cell::Cell<Vec<Line>> = const { std::cell::Cell::new(Vec::new()) };
}

/// 16 values on one 64-byte cache line: a packed block's rows are 3 of
/// them, read with aligned loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line(pub(super) [f32; 16]);

/// Copies rows `k0..k0 + depth` of `cols`, block `b` of its columns (48
/// from column `b * 48` on, `width` of them), into `block`, 48 values a
/// row: lanes past the last column, or in a shift's padding, are not read
/// (their pointers may lie outside the input, hence `wrapping_add`) and are
/// written as 0. A row read with unaligned loads from rows `ld` apart ran
/// the product at `gemm`'s rate; packed, each step of k reads three whole
/// cache lines.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack(cols: Cols, k: (usize, usize), block: (usize, usize), set: usize, out: &mut [Line]) {
    let mut out = out.as_mut_ptr() as *mut f32;
    let zero = _mm512_setzero_ps();
    each_row(cols, k, block, set, |source, lanes| {
        for (v, &mask) in lanes.iter().enumerate() {
            let value = match source {
                // AVX-512's masked-out lanes never fault, on any vendor's cores.
                Source::Row(row, _) => _mm512_maskz_loadu_ps(mask, row.wrapping_add(16 * v)),
                // AVX-512's masked loads, like its gathers, read only
                // their lanes: the others may lie outside the planes.
                Source::Gathered(plane, _, Some(runs)) => {
                    let runs = &runs[v];
                    let mut value = zero;
                    for r in 0..usize::from(runs.count) {
                        let at = plane.wrapping_offset(runs.bases[r] as isize);
                        value = _mm512_mask_loadu_ps(value, runs.masks[r], at);
                    }
                    value
                }
                Source::Gathered(plane, offsets, None) => {
                    let at = _mm512_loadu_si512(offsets.as_ptr().add(16 * v).cast());
                    _mm512_mask_i32gather_ps::<4>(zero, mask, at, plane)
                }
            };
            _mm512_store_ps(out.add(16 * v), value);
        }
        out = out.add(COLS);
    });
}

/// Where one row of a packed block comes from: 48 values from a row (in
/// the buffer beside it), or gathered from a plane at the offsets; in
/// either case only the lanes given beside it.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Source<'a> {
    Row(*const f32, &'a [f32]),
    /// At the offsets, or where the row makes few runs, through them.
    Gathered(*const f32, &'a [i32; COLS], Option<&'a [Runs; VECTORS]>),
}

/// Where the block of columns from `j` on reads its input, for `fetch`:
/// `count` runs of `len` values, `step` apart from `at`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Ahead {
    at: *const f32,
    step: usize,
    len: usize,
    count: usize,
}

impl Ahead {
    /// The runs the rows `k0..k0 + depth` of `cols` read for the block of
    /// 48 columns from column `j` on: a matrix's rows, or for shifted
    /// planes each channel's span (its shifts' offsets around the block);
    /// none from the last of the `n` columns on, nor for gathered columns.
    fn new(cols: Cols, (k0, depth): (usize, usize), j: usize, n: usize) -> Ahead {
        let none = Ahead {
            at: std::ptr::null(),
            step: 0,
            len: 0,
            count: 0,
        };
        match cols {
            Cols::Matrix { data, ld } if j < n => Ahead {
                at: data.as_ptr().wrapping_add(k0 * ld + j),
                step: ld,
                len: COLS,
                count: depth,
            },
            Cols::Shifted { planes, hw, shifts } if j < n => {
                let (per, (lo, hi)) = (shifts.shifts.len(), shifts.span);
                Ahead {
                    at: planes
                        .as_ptr()
                        .wrapping_add(k0 / per * hw + j)
                        .wrapping_offset(lo),
                    step: hw,
                    len: (COLS as isize + hi - lo) as usize,
                    count: depth / per,
                }
            }
            _ => none,
        }
    }

    /// Runs `runs` into L2.
    #[inline]
    fn fetch(&self, runs: std::ops::Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        for r in runs {
            let run = self.at.wrapping_add(r * self.step);
            // Every line the run touches, however it is aligned.
            let (start, end) = (run as usize & !63, run.wrapping_add(self.len) as usize);
            for line in (start..end).step_by(64) {
                // SAFETY: a prefetch reads nothing and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T1>(line as *const i8) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = runs;
    }
}

/// The walk `pack` and `pack2` share: `row(source, lanes)` for the rows
/// `k0..k0 + depth` of `cols`, in order, over block `b`'s columns (48 from
/// column `b * 48` on, `width` of them). Gathered columns run the taps of
/// the gathers' `set` of each input channel (0: every tap), and the rows
/// count those alone.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn each_row(
    cols: Cols,
    (k0, depth): (usize, usize),
    (b, width): (usize, usize),
    set: usize,
    mut row: impl FnMut(Source, [u16; VECTORS]),
) {
    let j = b * COLS;
    match cols {
        Cols::Matrix { data, ld } => {
            let lanes = masks(width);
            let mut at = data.as_ptr().wrapping_add(k0 * ld + j);
            for _ in 0..depth {
                row(Source::Row(at, data), lanes);
                at = at.wrapping_add(ld);
            }
        }
        Cols::Shifted { planes, hw, shifts } => {
            let per = shifts.shifts.len();
            let lanes = &shifts.lanes[b * per..][..per];
            for c in k0 / per..(k0 + depth) / per {
                let plane = planes.as_ptr().wrapping_add(c * hw + j);
                for (s, &lanes) in shifts.shifts.iter().zip(lanes) {
                    row(Source::Row(plane.wrapping_offset(s.d), planes), lanes);
                }
            }
        }
        Cols::Gathered {
            planes,
            hw,
            gathers,
        } => {
            let per = gathers.per;
            let index = &gathers.index[b * per..][..per];
            let lanes = &gathers.lanes[b * per..][..per];
            let runs = &gathers.runs[b * per..][..per];
            let taps = &gathers.sets[set];
            let len = taps.len().max(1);
            for c in k0 / len..(k0 + depth) / len {
                let plane = planes.as_ptr().wrapping_add(c * hw);
                for &s in taps {
                    let s = s as usize;
                    row(
                        Source::Gathered(plane, &index[s], runs[s].as_ref()),
                        lanes[s],
                    );
                }
            }
        }
    }
}

/// The lanes of each of a tile's 3 vectors that hold one of its `width`
/// columns (AVX-512's `__mmask16` is a `u16`).
fn masks(width: usize) -> [u16; VECTORS] {
    std::array::from_fn(|v| {
        let left = width.saturating_sub(16 * v).min(16);
        ((1u32 << left) - 1) as u16
    })
}

/// A tile's weights: `k` rows of 8, or 8 rows of `k`.
#[cfg(target_arch = "x86_64")]
enum A<'a> {
    Packed(&'a [f32]),
    Raw([&'a [f32]; ROWS]),
}

/// One register tile: `rows` x `cols` outputs, stored `ldy` apart.
#[cfg(target_arch = "x86_64")]
struct Tile<'a> {
    a: A<'a>,
    /// `k` rows of 48 columns; with `halves` (AVX2's own blocks, `pack2`),
    /// the `k` rows of the first 24 columns, then those of the last 24.
    b: &'a [Line],
    halves: bool,
    /// Columns of the 48 that are outputs.
    width: usize,
    rows: usize,
    start: [f32; ROWS],
    /// Start from the values in `y` (an earlier block of k) instead.
    resume: bool,
    relu: bool,
    /// Each column's place in a row of `y` where they are not side by
    /// side (`Scatter`), with the block's runs of places where it has them.
    to: Option<(&'a [u32], Option<&'a [Runs; VECTORS]>)>,
}

/// One step of k: 8 weights (`a(r)`) times the 48 columns at `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn step(acc: &mut [[__m512; VECTORS]; ROWS], b: *const f32, a: impl Fn(usize) -> f32) {
    let bv: [__m512; VECTORS] = std::array::from_fn(|v| _mm512_load_ps(b.add(16 * v)));
    for (r, row) in acc.iter_mut().enumerate() {
        let av = _mm512_set1_ps(a(r));
        for (acc, &bv) in row.iter_mut().zip(&bv) {
            *acc = _mm512_fmadd_ps(av, bv, *acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    /// `run` or `run2`, as `isa` says.
    ///
    /// # Safety
    /// This CPU has `isa`; as for `run`; with `resume`, the tile's values
    /// in `y` were written.
    #[inline]
    unsafe fn run_on(&self, isa: Isa, y: &mut [MaybeUninit<f32>], ldy: usize) {
        match isa {
            Isa::Avx512 => self.run(y, ldy),
            Isa::Avx2 => self.run2(y, ldy),
        }
    }

    /// Asks for the cache lines of the tile's outputs, to write, before
    /// the products: a new output is not in the cache, and stores that
    /// miss at the end of each tile stalled the next one (nin2's first
    /// layers ran 40-60 % slower than with the output zeroed beforehand).
    /// The lines arrive while the tile sums. A tile that resumes reads
    /// its values first, which brings their lines: no prefetch there.
    #[inline]
    fn prefetch(&self, y: &[MaybeUninit<f32>], ldy: usize) {
        // Scattered places: none. Asked for run by run, they made a
        // small map's layer (squeeze1's 3 x 3 expand on 6 x 6) 3-5 %
        // slower, and nin2's 12 x 12 layer no faster.
        if self.to.is_some() {
            return;
        }
        for r in 0..self.rows {
            let row = y[r * ldy..].as_ptr_range().start as usize;
            let end = row + 4 * self.width;
            for line in (row & !63..end).step_by(64) {
                // SAFETY: a prefetch reads nothing and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            }
        }
    }

    /// The values of the row that starts at `at` in `y`, at the tile's
    /// scattered places (0 past `width`).
    fn gathered(&self, y: &[MaybeUninit<f32>], at: usize) -> [f32; COLS] {
        let to = self.to.map_or(&[][..], |(to, _)| to);
        // SAFETY: the tile resumes from values an earlier pass wrote.
        std::array::from_fn(|c| match to.get(c) {
            Some(&t) => unsafe { y[at + t as usize].assume_init() },
            None => 0.0,
        })
    }

    /// `values`, the tile's columns from `first` on, into their scattered
    /// places in the row that starts at `at` in `y`, one by one.
    fn scatter(&self, y: &mut [MaybeUninit<f32>], at: usize, first: usize, values: &[f32]) {
        let to = self.to.map_or(&[][..], |(to, _)| to);
        for (&t, &v) in to.iter().skip(first).zip(values) {
            y[at + t as usize].write(v);
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, y: &mut [MaybeUninit<f32>], ldy: usize) {
        if !self.resume {
            self.prefetch(y, ldy);
        }
        let masks = masks(self.width);
        let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
        for (r, (row, &s)) in acc.iter_mut().zip(&self.start).enumerate() {
            *row = if self.resume && r < self.rows && self.to.is_some() {
                let values = self.gathered(y, r * ldy);
                std::array::from_fn(|v| _mm512_loadu_ps(values.as_ptr().add(16 * v)))
            } else if self.resume && r < self.rows {
                let y = y[r * ldy..].as_ptr().cast::<f32>();
                std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], y.wrapping_add(16 * v)))
            } else {
                [_mm512_set1_ps(s); VECTORS]
            };
        }
        let b = self.b.as_ptr() as *const f32;
        let depth = self.b.len() / VECTORS;
        // The same steps either way, each weight `a(kk, r)` from where it
        // lies; two loops so that each gets its own addressing.
        match &self.a {
            A::Packed(a) => {
                assert!(a.len() >= depth * ROWS);
                let a = a.as_ptr();
                for kk in 0..depth {
                    step(&mut acc, b.add(kk * COLS), |r| *a.add(kk * ROWS + r));
                }
            }
            A::Raw(rows) => {
                assert!(rows.iter().all(|row| row.len() >= depth));
                let rows: [*const f32; ROWS] = std::array::from_fn(|r| rows[r].as_ptr());
                for kk in 0..depth {
                    step(&mut acc, b.add(kk * COLS), |r| *rows[r].add(kk));
                }
            }
        }
        if self.to.is_some() {
            return self.scattered(acc, y, ldy);
        }
        let zero = _mm512_setzero_ps();
        for (r, row) in acc.iter().enumerate().take(self.rows) {
            let out = y[r * ldy..].as_mut_ptr().cast::<f32>();
            for (v, &value) in row.iter().enumerate() {
                let value = if self.relu {
                    // A NaN becomes 0, as `f32::max(v, 0.0)` makes it.
                    _mm512_max_ps(value, zero)
                } else {
                    value
                };
                _mm512_mask_storeu_ps(out.wrapping_add(16 * v), masks[v], value);
            }
        }
    }

    /// The tile's sums into their scattered places in `y`, through the
    /// ReLU. Out of line: inlined, the compiler kept their values in
    /// registers across the sums and spilled accumulators on every step
    /// (the products ran at half speed).
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    unsafe fn scattered(
        &self,
        acc: [[__m512; VECTORS]; ROWS],
        y: &mut [MaybeUninit<f32>],
        ldy: usize,
    ) {
        let zero = _mm512_setzero_ps();
        for (r, row) in acc.iter().enumerate().take(self.rows) {
            let out = y[r * ldy..].as_mut_ptr().cast::<f32>();
            let mut values = [0.0f32; COLS];
            for (v, &value) in row.iter().enumerate() {
                let value = if self.relu {
                    _mm512_max_ps(value, zero)
                } else {
                    value
                };
                match self.to {
                    // Each run of neighbouring places in one masked store;
                    // masked-out lanes are not written, wherever they lie.
                    Some((_, Some(runs))) => {
                        let runs = &runs[v];
                        for k in 0..usize::from(runs.count) {
                            let at = out.wrapping_offset(runs.bases[k] as isize);
                            _mm512_mask_storeu_ps(at, runs.masks[k], value);
                        }
                    }
                    _ => _mm512_storeu_ps(values.as_mut_ptr().add(16 * v), value),
                }
            }
            if let Some((_, None)) = self.to {
                self.scatter(y, r * ldy, 0, &values);
            }
        }
    }
}

/// The lanes of 8 whose bit is set in the low 8 bits of `bits`, as AVX2's
/// masked loads and stores take them: all ones, or 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lanes8(bits: u16) -> __m256i {
    let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let bits = _mm256_set1_epi32(i32::from(bits & 0xff));
    _mm256_cmpeq_epi32(_mm256_and_si256(bits, select), select)
}

/// AVX2's masks for the 48 lanes of a block's row, from its three 16-lane
/// masks: the same lanes read and written as `pack` reads them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn halves(masks: [u16; VECTORS]) -> [__m256i; 2 * VECTORS] {
    std::array::from_fn(|h| lanes8(masks[h / 2] >> (8 * (h % 2))))
}

/// Whether the `len` values from `p` on lie in `buffer`. AVX2's masked
/// loads and stores (`vmaskmovps`) never touch a masked-out lane on
/// Intel's cores, but AMD's manual calls faults on masked-out lanes
/// "implementation dependent"; the lanes past a row's end or in a shift's
/// padding can lie past the buffer, even on an unmapped page. So a row or
/// vector that is not wholly inside its buffer goes lane by lane
/// (`read_row`, `load8`, `store8`): no access, masked or not, leaves it.
#[cfg(target_arch = "x86_64")]
#[inline]
fn inside(p: *const f32, len: usize, buffer: &Range<usize>) -> bool {
    let at = p as usize;
    at >= buffer.start && at.checked_add(4 * len).is_some_and(|end| end <= buffer.end)
}

/// A packed row's 48 values lane by lane: those of `lanes` from `row`, 0
/// for the others, each 8 of them at `out(h)` (h = 0..6). Out of line, so
/// that the vector path stays small enough to inline into the packing loop
/// (twice as slow when it did not).
///
/// # Safety
/// Each value of `lanes` is readable; each `out(h)` holds 8 values.
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
unsafe fn read_row(row: *const f32, lanes: [u16; VECTORS], out: impl Fn(usize) -> *mut f32) {
    for h in 0..2 * VECTORS {
        let bits = (lanes[h / 2] >> (8 * (h % 2))) as u8;
        let values = read_lanes(row.wrapping_add(8 * h), bits);
        std::ptr::copy_nonoverlapping(values.as_ptr(), out(h), 8);
    }
}

/// Where `buffer` lies, as addresses for `inside`.
#[cfg(target_arch = "x86_64")]
fn bounds<T>(buffer: &[T]) -> Range<usize> {
    let range = buffer.as_ptr_range();
    range.start as usize..range.end as usize
}

/// The lanes of `p`'s 8 whose bit is set in `bits`, 0 in the others, every
/// read inside `buffer` (`inside`).
///
/// # Safety
/// The CPU has AVX2; each set lane's value lies in `buffer`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load8(p: *const f32, bits: u8, buffer: &Range<usize>) -> __m256 {
    if inside(p, 8, buffer) {
        _mm256_maskload_ps(p, lanes8(u16::from(bits)))
    } else {
        _mm256_loadu_ps(read_lanes(p, bits).as_ptr())
    }
}

/// `load8`'s edge, lane by lane, out of line: a tile's last columns only.
///
/// # Safety
/// Each set lane's value is readable.
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
unsafe fn read_lanes(p: *const f32, bits: u8) -> [f32; 8] {
    // `wrapping_add`: `p` itself may lie outside the buffer (a shift's
    // padding before the first plane), where `add` would be undefined.
    std::array::from_fn(|i| match bits >> i & 1 {
        1 => *p.wrapping_add(i),
        _ => 0.0,
    })
}

/// Writes the lanes of `v` whose bit is set in `bits` to `p`'s 8, every
/// write inside `buffer` (`inside`).
///
/// # Safety
/// The CPU has AVX2; each set lane's place lies in `buffer`, which the
/// caller may write.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store8(p: *mut f32, bits: u8, v: __m256, buffer: &Range<usize>) {
    if inside(p, 8, buffer) {
        _mm256_maskstore_ps(p, lanes8(u16::from(bits)), v);
    } else {
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        write_lanes(p, bits, &lanes);
    }
}

/// `store8`'s edge, lane by lane, out of line as `read_lanes`.
///
/// # Safety
/// Each set lane's place is writable.
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
unsafe fn write_lanes(p: *mut f32, bits: u8, lanes: &[f32; 8]) {
    for (i, &value) in lanes.iter().enumerate() {
        if bits >> i & 1 == 1 {
            *p.wrapping_add(i) = value;
        }
    }
}

/// `pack` with AVX2: 8 lanes a load, masked loads and gathers through the
/// same lanes, the same block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack2(
    cols: Cols,
    k: (usize, usize),
    block: (usize, usize),
    set: usize,
    out: &mut [Line],
) {
    // Each row's first 24 values in the first half of `out`, its last 24
    // in the second: a 4 x 24 tile then reads one run of memory, 96 bytes
    // a row, that the caches hold whole between the tiles that read it.
    let half = out.len() * 16 / 2;
    let mut out = out.as_mut_ptr() as *mut f32;
    // Vector h of a row: in the first half, or `half` values on.
    let at = |out: *mut f32, h: usize| match h < VECTORS2 {
        true => out.add(8 * h),
        false => out.add(half + 8 * (h - VECTORS2)),
    };
    let zero = _mm256_setzero_ps();
    each_row(cols, k, block, set, |source, lanes| {
        if let Source::Row(row, buffer) = source {
            if !inside(row, COLS, &bounds(buffer)) {
                read_row(row, lanes, |h| at(out, h));
                out = out.add(COLS / 2);
                return;
            }
        }
        for (h, &mask) in halves(lanes).iter().enumerate() {
            let value = match source {
                Source::Row(row, _) => _mm256_maskload_ps(row.wrapping_add(8 * h), mask),
                // A gather reads only its lanes: AMD's manual and Intel's
                // both say masked-out elements are not accessed.
                // AVX2 keeps the gathers: its masked loads may fault on
                // masked-out lanes on AMD's cores (`inside`).
                Source::Gathered(plane, offsets, _) => {
                    let at = _mm256_loadu_si256(offsets.as_ptr().add(8 * h).cast());
                    let mask = _mm256_castsi256_ps(mask);
                    _mm256_mask_i32gather_ps::<4>(zero, plane, at, mask)
                }
            };
            _mm256_store_ps(at(out, h), value);
        }
        out = out.add(COLS / 2);
    });
}

/// Rows and 8-lane vectors of an AVX2 tile.
const ROWS2: usize = 4;
const VECTORS2: usize = 3;

/// Where an AVX2 tile's 4 weights of each step of k lie: 8 apart in a
/// packed panel (from the tile's first row), or in 4 rows of their own.
#[cfg(target_arch = "x86_64")]
enum A2 {
    Packed(*const f32),
    Raw([*const f32; ROWS2]),
}

/// `depth` steps of k: 4 weights times the 24 columns at `b`, then `b`'s
/// next row (`ld` values on: 24 in `pack2`'s halves, 48 in a block of
/// whole rows). The 12 accumulators, the 3 column vectors and
/// the broadcast take all 16 of AVX2's registers: written in Rust, the
/// compiler spilled accumulators on every step, so the loop is assembly
/// with each accumulator in its own register. One core of the Xeon
/// (`examples/products.rs`, zoo shapes): 95-98 GFLOP/s, against 61-62 for
/// the same tile in Rust, 76-80 for 4 x 16 tiles in Rust, 85-89 for
/// `gemm`'s AVX2 kernel; the core's AVX2 peak is about 112 (`fma_peak.c`).
/// `vfmadd231ps acc, a, b` is `_mm256_fmadd_ps(a, b, acc)`: the same
/// multiply-adds in the same order as AVX-512's `step`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `b` holds `depth` rows of 24 values, `ld`
/// apart, 32-byte aligned; the weights hold `depth` steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn steps2(
    acc: &mut [[__m256; VECTORS2]; ROWS2],
    (b, ld): (*const f32, usize),
    a: A2,
    depth: usize,
) {
    let ld = ld * 4;
    if depth == 0 {
        return;
    }
    // One variable per accumulator, each bound to its register below.
    let [row0, row1, row2, row3] = *acc;
    let ([mut c0, mut c1, mut c2], [mut c3, mut c4, mut c5]) = (row0, row1);
    let ([mut c6, mut c7, mut c8], [mut c9, mut c10, mut c11]) = (row2, row3);
    // Each loop starts a cache line (`.p2align 6`), wherever the code
    // around it falls: between two builds that differed elsewhere, the
    // same loop ran a few per cent apart.
    match a {
        A2::Packed(a) => std::arch::asm!(
            ".p2align 6",
            "2:",
            "vmovaps ymm12, ymmword ptr [{b}]",
            "vmovaps ymm13, ymmword ptr [{b} + 32]",
            "vmovaps ymm14, ymmword ptr [{b} + 64]",
            "vbroadcastss ymm15, dword ptr [{a}]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 4]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 8]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{a} + 12]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "add {b}, {ld}",
            "add {a}, 32",
            "dec {n}",
            "jnz 2b",
            b = inout(reg) b => _,
            ld = in(reg) ld,
            a = inout(reg) a => _,
            n = inout(reg) depth => _,
            inout("ymm0") c0, inout("ymm1") c1, inout("ymm2") c2,
            inout("ymm3") c3, inout("ymm4") c4, inout("ymm5") c5,
            inout("ymm6") c6, inout("ymm7") c7, inout("ymm8") c8,
            inout("ymm9") c9, inout("ymm10") c10, inout("ymm11") c11,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        ),
        A2::Raw([r0, r1, r2, r3]) => std::arch::asm!(
            ".p2align 6",
            "2:",
            "vmovaps ymm12, ymmword ptr [{b}]",
            "vmovaps ymm13, ymmword ptr [{b} + 32]",
            "vmovaps ymm14, ymmword ptr [{b} + 64]",
            "vbroadcastss ymm15, dword ptr [{r0} + 4 * {k}]",
            "vfmadd231ps ymm0, ymm15, ymm12",
            "vfmadd231ps ymm1, ymm15, ymm13",
            "vfmadd231ps ymm2, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{r1} + 4 * {k}]",
            "vfmadd231ps ymm3, ymm15, ymm12",
            "vfmadd231ps ymm4, ymm15, ymm13",
            "vfmadd231ps ymm5, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{r2} + 4 * {k}]",
            "vfmadd231ps ymm6, ymm15, ymm12",
            "vfmadd231ps ymm7, ymm15, ymm13",
            "vfmadd231ps ymm8, ymm15, ymm14",
            "vbroadcastss ymm15, dword ptr [{r3} + 4 * {k}]",
            "vfmadd231ps ymm9, ymm15, ymm12",
            "vfmadd231ps ymm10, ymm15, ymm13",
            "vfmadd231ps ymm11, ymm15, ymm14",
            "add {b}, {ld}",
            "inc {k}",
            "cmp {k}, {n}",
            "jne 2b",
            b = inout(reg) b => _,
            ld = in(reg) ld,
            k = inout(reg) 0usize => _,
            n = in(reg) depth,
            r0 = in(reg) r0, r1 = in(reg) r1, r2 = in(reg) r2, r3 = in(reg) r3,
            inout("ymm0") c0, inout("ymm1") c1, inout("ymm2") c2,
            inout("ymm3") c3, inout("ymm4") c4, inout("ymm5") c5,
            inout("ymm6") c6, inout("ymm7") c7, inout("ymm8") c8,
            inout("ymm9") c9, inout("ymm10") c10, inout("ymm11") c11,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        ),
    }
    *acc = [[c0, c1, c2], [c3, c4, c5], [c6, c7, c8], [c9, c10, c11]];
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    /// `run` with AVX2: the tile as up to four tiles of 4 rows by 24
    /// columns, each over the whole depth, each value's products added in
    /// the same order as `run` adds them. Both row halves of a column half
    /// run one after the other, so that the second finds its columns (one
    /// run of memory, with `halves`) in L1. Squeeze1's 12 x 12 e3x3 layer
    /// ran 6 % faster with halves, and its training 8 % faster as an AVX2
    /// CPU (docs/performance.md).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run2(&self, y: &mut [MaybeUninit<f32>], ldy: usize) {
        if !self.resume {
            self.prefetch(y, ldy);
        }
        let b = self.b.as_ptr() as *const f32;
        let depth = self.b.len() / VECTORS;
        let zero = _mm256_setzero_ps();
        let within = bounds(y);
        for c0 in (0..self.width).step_by(8 * VECTORS2) {
            for r0 in (0..self.rows).step_by(ROWS2) {
                let bits: [u8; VECTORS2] = std::array::from_fn(|v| {
                    let left = (self.width - c0).saturating_sub(8 * v).min(8);
                    ((1u32 << left) - 1) as u8
                });
                let mut acc = [[zero; VECTORS2]; ROWS2];
                for (r, row) in acc.iter_mut().enumerate() {
                    let rr = r0 + r;
                    *row = if self.resume && rr < self.rows && self.to.is_some() {
                        let values = self.gathered(y, rr * ldy);
                        std::array::from_fn(|v| _mm256_loadu_ps(values.as_ptr().add(c0 + 8 * v)))
                    } else if self.resume && rr < self.rows {
                        let at = y[rr * ldy..].as_ptr().cast::<f32>().wrapping_add(c0);
                        // Whole vectors plainly, as they are stored below.
                        std::array::from_fn(|v| match c0 + 8 * (v + 1) <= self.width {
                            true => _mm256_loadu_ps(at.add(8 * v)),
                            false => load8(at.wrapping_add(8 * v), bits[v], &within),
                        })
                    } else {
                        [_mm256_set1_ps(self.start[rr]); VECTORS2]
                    };
                }
                // The tile's 24 columns, and the distance between rows.
                let b = match self.halves {
                    true => (
                        b.add(c0 / (8 * VECTORS2) * depth * 8 * VECTORS2),
                        8 * VECTORS2,
                    ),
                    false => (b.add(c0), COLS),
                };
                let a = match &self.a {
                    A::Packed(a) => {
                        assert!(a.len() >= depth * ROWS);
                        // `wrapping_add`: a set of no taps has no weights.
                        A2::Packed(a.as_ptr().wrapping_add(r0))
                    }
                    A::Raw(rows) => {
                        assert!(rows.iter().all(|row| row.len() >= depth));
                        A2::Raw(std::array::from_fn(|r| rows[r0 + r].as_ptr()))
                    }
                };
                steps2(&mut acc, b, a, depth);
                if self.to.is_some() {
                    // Scattered places: lane by lane.
                    for (r, row) in acc.iter().enumerate().take(self.rows - r0) {
                        let mut values = [0.0f32; 8 * VECTORS2];
                        for (v, &value) in row.iter().enumerate() {
                            let value = match self.relu {
                                true => _mm256_max_ps(value, zero),
                                false => value,
                            };
                            _mm256_storeu_ps(values.as_mut_ptr().add(8 * v), value);
                        }
                        self.scatter(y, (r0 + r) * ldy, c0, &values);
                    }
                    continue;
                }
                for (r, row) in acc.iter().enumerate().take(self.rows - r0) {
                    let out = y[(r0 + r) * ldy..]
                        .as_mut_ptr()
                        .cast::<f32>()
                        .wrapping_add(c0);
                    for (v, &value) in row.iter().enumerate() {
                        // A NaN becomes 0, as in `run`.
                        let value = if self.relu {
                            _mm256_max_ps(value, zero)
                        } else {
                            value
                        };
                        // Whole vectors plainly: masked stores are slow on
                        // AMD's cores.
                        if c0 + 8 * (v + 1) <= self.width {
                            _mm256_storeu_ps(out.add(8 * v), value);
                        } else {
                            store8(out.wrapping_add(8 * v), bits[v], value, &within);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::noise;
    use super::*;

    /// Against a plain triple loop, on shapes with partial tiles in both
    /// directions, a row stride wider than the product, with and without
    /// bias and ReLU, on each of AVX-512 and AVX2 this CPU has. Where it
    /// has neither there is nothing to run: the test says so rather than
    /// passing quietly.
    #[test]
    fn the_product_equals_the_definition() {
        let mut ran = 0;
        for &(m, n, k, ld) in &[
            (96, 144, 864, 144),
            (13, 50, 7, 61),
            (8, 48, 1, 48),
            (5, 17, 30, 17),
            (17, 100, 75, 130),
            (1, 1, 3, 1),
            (21, 60, 5400, 60),
        ] {
            let w = noise(m * k, 1);
            let cols = noise(k * ld, 2);
            let bias = noise(m, 3);
            for (with_bias, relu, isa) in [
                (false, false, Isa::Avx512),
                (true, false, Isa::Avx512),
                (true, true, Isa::Avx512),
                (false, false, Isa::Avx2),
                (true, true, Isa::Avx2),
            ] {
                if !has(isa) {
                    eprintln!("this CPU has no {isa:?}: panel::product not run on it");
                    continue;
                }
                // Passes of 2560 rows, or (odd m) of 2565: whole runs of
                // 9, the last one short (21 x 5400: 2565, 2565, 270).
                let per = 1 + 8 * (m % 2);
                let packed = Weights::pack_for(isa, &w, m, k, per).unwrap();
                let mut y = vec![f32::NAN; m * n];
                let b = with_bias.then_some(&bias[..]);
                product(
                    &packed,
                    Cols::Matrix { data: &cols, ld },
                    n,
                    b,
                    relu,
                    &mut y,
                    m > 8,
                );
                for r in 0..m {
                    for c in 0..n {
                        let mut want = b.map_or(0.0, |b| b[r]) as f64;
                        for kk in 0..k {
                            want += w[r * k + kk] as f64 * cols[kk * ld + c] as f64;
                        }
                        if relu {
                            want = want.max(0.0);
                        }
                        let got = y[r * n + c] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{isa:?} m {m} n {n} k {k}: y[{r}][{c}] = {got}, want {want}"
                        );
                    }
                }
                ran += 1;
            }
        }
        // 7 shapes: 3 cases each on AVX-512, 2 on AVX2, where the CPU has them.
        let cases = 3 * usize::from(has(Isa::Avx512)) + 2 * usize::from(has(Isa::Avx2));
        assert_eq!(ran, 7 * cases);
    }

    /// Weights read where they lie give the same bits as packed ones:
    /// partial panels (rows past m), several blocks of k, threads or not.
    #[test]
    fn raw_weights_give_the_packed_bits() {
        // The first and last: passes of 2560 and 2565 rows (runs of 9),
        // the last in three panels.
        for &(m, n, k, per) in &[
            (13, 50, 5300, 1),
            (8, 48, 1, 1),
            (21, 100, 75, 1),
            (21, 100, 2700, 9),
        ] {
            let (w, cols) = (noise(m * k, 4), noise(k * n, 5));
            let (Some(packed), Some(raw)) =
                (Weights::pack(&w, m, k, per), Weights::raw(&w, m, k, per))
            else {
                eprintln!("this CPU has neither AVX-512 nor AVX2: panel::product not run");
                return;
            };
            let bias = noise(m, 6);
            let run = |w: &Weights, parallel: bool| {
                let mut y = vec![f32::NAN; m * n];
                let cols = Cols::Matrix { data: &cols, ld: n };
                product(w, cols, n, Some(&bias), true, &mut y, parallel);
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(run(&packed, false), run(&raw, true), "m {m} n {n} k {k}");
            assert_eq!(run(&packed, true), run(&raw, false), "m {m} n {n} k {k}");
        }
    }

    /// AVX2 gives AVX-512's bits: partial tiles in both directions (rows
    /// past 4 and past 8, columns past 24 and 48), several blocks of k
    /// (resumed tiles), packed and raw weights, threads or not, bias and
    /// ReLU; and NaNs through the ReLU.
    #[test]
    fn avx2_gives_the_avx512_bits() {
        if !has(Isa::Avx512) || !has(Isa::Avx2) {
            eprintln!("this CPU lacks AVX-512 or AVX2: nothing to compare");
            return;
        }
        for &(m, n, k) in &[
            (13, 50, 5300),
            (8, 48, 1),
            (21, 100, 75),
            (3, 30, 2600),
            (6, 20, 9),
        ] {
            let (w, mut cols) = (noise(m * k, 7), noise(k * n, 8));
            let at = (n + 3) % cols.len();
            cols[at] = f32::NAN;
            let bias = noise(m, 9);
            for relu in [false, true] {
                let run = |isa: Isa, raw: bool, parallel: bool| {
                    let w = match raw {
                        true => Weights::raw_for(isa, &w, m, k, 1),
                        false => Weights::pack_for(isa, &w, m, k, 1),
                    };
                    let mut y = vec![f32::NAN; m * n];
                    let cols = Cols::Matrix { data: &cols, ld: n };
                    product(&w.unwrap(), cols, n, Some(&bias), relu, &mut y, parallel);
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let want = run(Isa::Avx512, false, false);
                for (raw, parallel) in [(false, false), (true, true), (false, true)] {
                    let what = format!("m {m} n {n} k {k} relu {relu} raw {raw}");
                    assert_eq!(run(Isa::Avx2, raw, parallel), want, "{what}");
                }
            }
        }
    }

    /// No rows of columns: every output is its bias, through the ReLU.
    #[test]
    fn a_product_over_nothing_is_the_bias() {
        let Some(packed) = Weights::pack(&[], 3, 0, 1) else {
            eprintln!("this CPU has neither AVX-512 nor AVX2: panel::product not run");
            return;
        };
        let mut y = [f32::NAN; 6];
        let cols = Cols::Matrix { data: &[], ld: 2 };
        product(
            &packed,
            cols,
            2,
            Some(&[1.5, -2.0, 0.25]),
            true,
            &mut y,
            false,
        );
        assert_eq!(y, [1.5, 1.5, 0.0, 0.0, 0.25, 0.25]);
    }

    #[test]
    fn a_nan_through_the_relu_becomes_zero_as_with_f32_max() {
        let Some(packed) = Weights::pack(&[f32::NAN, 1.0], 1, 2, 1) else {
            eprintln!("this CPU has neither AVX-512 nor AVX2: panel::product not run");
            return;
        };
        let mut y = [1.0f32; 3];
        let cols = Cols::Matrix {
            data: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ld: 3,
        };
        product(&packed, cols, 3, None, true, &mut y, false);
        assert_eq!(y, [f32::NAN.max(0.0); 3]);
    }
}
