//! The broadcast kernel: int8 convolutions and dense layers as tiles of
//! 16 filters by 6 output positions, an activation pair broadcast against
//! 8 filters' weight pairs per `vpmaddwd`. It reads a channels-last copy of
//! the image where it lies (no column matrix), so short rows (tuto's conv1
//! has 3 channels) cost no copying; the weights are packed once per layer.

use super::{Emit, Isa, Job, Tile, Weights};
use crate::kernels::conv::Geometry;
use std::ops::Range;

/// The broadcast kernel's shape: a tile is `PANEL` filters (or units) by
/// `TILE` output positions (or images), 12 accumulators of 8 lanes.
pub const PANEL: usize = 16;
pub(super) const TILE: usize = 6;

/// How the broadcast kernel walks a filter: row by row of the kernel (`kh`
/// rows), and along a row its `kw` taps' `cin` channels, which lie side by
/// side in a channels-last image, two by two (a row's values rounded up to
/// even). A dense layer is one row of one tap of all its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taps {
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
}

impl Taps {
    /// An ungrouped convolution's.
    pub fn conv(g: &Geometry) -> Taps {
        Taps {
            cin: g.cin,
            kh: g.kernel[0],
            kw: g.kernel[1],
        }
    }

    /// A dense layer's, of rows of `k` values.
    pub fn dense(k: usize) -> Taps {
        Taps {
            cin: k,
            kh: 1,
            kw: 1,
        }
    }

    /// Pairs of values along one kernel row.
    pub(super) fn pairs(&self) -> usize {
        (self.kw * self.cin).div_ceil(2)
    }

    /// Values in one panel.
    pub(super) fn panel_len(&self) -> usize {
        PANEL * 2 * self.pairs() * self.kh
    }
}

/// Weights in the broadcast kernel's order. The rows (a row: `cin x kh x
/// kw` values, the checkpoint's order, then anything up to `k`) go in
/// panels of `PANEL` rows, the last one filled with zero rows; a panel runs
/// kernel row by kernel row and, along one, pair by pair of its (tap,
/// channel) values, holding the pair of each of its rows side by side: one
/// 16-lane load is 8 rows' pairs. A kernel row of odd length ends in a
/// zero, which meets the next pixel's first channel.
pub fn pack(values: &[i16], rows: usize, k: usize, t: Taps) -> Vec<i16> {
    let (np, taps) = (t.pairs(), t.kh * t.kw);
    let mut out = vec![0i16; rows.div_ceil(PANEL) * t.panel_len()];
    for (r, row) in values.chunks_exact(k).take(rows).enumerate() {
        let base = (r / PANEL) * t.panel_len() + (r % PANEL) * 2;
        for (i, &v) in row[..t.cin * taps].iter().enumerate() {
            let (c, dy, dx) = (i / taps, i % taps / t.kw, i % t.kw);
            let along = dx * t.cin + c;
            out[base + (dy * np + along / 2) * PANEL * 2 + along % 2] = v;
        }
    }
    out
}

/// Whether `conv`/`dense` use the broadcast kernel: it needs AVX2, and at
/// least half a panel of filters (a depthwise convolution's single filter
/// per group would waste 15 of 16 lanes); grouped convolutions keep the
/// column-matrix path.
pub(super) fn broadcast(isa: Isa, rows: usize, groups: usize) -> bool {
    isa == Isa::Avx2 && groups == 1 && rows >= PANEL / 2
}

/// One image as the broadcast kernel reads it: channels last, widened to
/// i16, with the convolution's padding as zero borders, so that every
/// window lies inside and a kernel row's values are contiguous; one zero
/// more at the end for a last row of odd length, read in pairs. Returns the
/// values and the padded width.
#[inline(always)]
pub(super) fn channels_last(x: &[i8], g: &Geometry) -> (Vec<i16>, usize) {
    let (hp, wp, c) = (g.h + g.pad[0] + g.pad[1], g.w + g.pad[2] + g.pad[3], g.cin);
    let mut out = vec![0i16; hp * wp * c + 1];
    for (ch, plane) in x.chunks_exact(g.h * g.w).enumerate() {
        for (y, line) in plane.chunks_exact(g.w).enumerate() {
            let row = ((y + g.pad[0]) * wp + g.pad[2]) * c + ch;
            for (i, &v) in line.iter().enumerate() {
                out[row + i * c] = v as i16;
            }
        }
    }
    (out, wp)
}

/// The filters `rows` of one image with the broadcast kernel, into `y`
/// (those filters' output planes), from the image in `channels_last` order
/// (`xp`, of padded width `wp`). No column matrix: a window's values are
/// read where they lie, row by row of the kernel.
#[cfg(target_arch = "x86_64")]
pub(super) struct ConvTiles<'a, T> {
    pub(super) xp: &'a [i16],
    pub(super) wp: usize,
    pub(super) g: &'a Geometry,
    pub(super) w: &'a Weights<'a>,
    pub(super) packed: &'a [i16],
    pub(super) t: Taps,
    pub(super) rows: Range<usize>,
    pub(super) y: &'a mut [T],
}

#[cfg(target_arch = "x86_64")]
impl<T: Emit> Job for ConvTiles<'_, T> {
    #[inline(always)]
    fn run(self) {
        let ConvTiles {
            xp,
            wp,
            g,
            w,
            packed,
            t,
            rows,
            y,
        } = self;
        let (oh, ow) = g.out();
        let ohw = oh * ow;
        let ce = g.cin;
        // A kernel row's values lie side by side (its taps' channels one after
        // the other), so the kernel walks whole rows: tuto's conv1 (3 channels)
        // would otherwise spend its time starting taps of 2 pairs each.
        let taps: Vec<usize> = (0..t.kh).map(|dy| dy * wp * ce).collect();
        let window = |p: usize| ((p / ow) * g.stride[0] * wp + (p % ow) * g.stride[1]) * ce;
        let panels = rows.start / PANEL..rows.end.div_ceil(PANEL);
        let scales: Vec<_> = panels.clone().map(|panel| panel_scales(w, panel)).collect();
        let mut acc = [[0i32; PANEL]; TILE];
        for p0 in (0..ohw).step_by(TILE) {
            let at = p0..(p0 + TILE).min(ohw);
            // Past the last position, the last one again (its sums unused).
            let starts = std::array::from_fn(|i| window((p0 + i).min(ohw - 1)));
            for (panel, (bias, m)) in panels.clone().zip(&scales) {
                let weights = &packed[panel * t.panel_len()..][..t.panel_len()];
                // SAFETY: `broadcast` chose this path, which needs AVX2.
                unsafe { avx2::tile(xp, &starts, &taps, t.pairs(), weights, &mut acc) };
                let values = T::emit_tile(&acc, bias, m, w.relu);
                for r in 0..PANEL {
                    let f = panel * PANEL + r;
                    if f < rows.start || f >= rows.end {
                        continue;
                    }
                    let out = &mut y[(f - rows.start) * ohw..][at.clone()];
                    for (o, v) in out.iter_mut().zip(&values) {
                        *o = v[r];
                    }
                }
            }
        }
    }
}

/// A panel's biases and multipliers, zero past the last row.
pub(super) fn panel_scales(w: &Weights, panel: usize) -> ([i32; PANEL], [f32; PANEL]) {
    let at = |r: usize| (panel * PANEL + r < w.rows).then_some(panel * PANEL + r);
    (
        std::array::from_fn(|r| at(r).map_or(0, |f| w.bias[f])),
        std::array::from_fn(|r| at(r).map_or(0.0, |f| w.multiplier[f])),
    )
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    /// One tile: the sums of `TILE` windows of `x` (starting at the
    /// offsets `at`) with one panel of packed weights; `acc[p][r]` is window
    /// p's sum with row r. A window is runs of `pairs` pairs of values, at
    /// the offsets `taps` from its start. Per pair: two loads of weights,
    /// six broadcasts of an activation pair, and 12 `vpmaddwd` with their
    /// adds, in 15 registers.
    #[target_feature(enable = "avx2")]
    pub unsafe fn tile(
        x: &[i16],
        at: &[usize; super::TILE],
        taps: &[usize],
        pairs: usize,
        panel: &[i16],
        acc: &mut [[i32; super::PANEL]; super::TILE],
    ) {
        const T: usize = super::TILE;
        let last = at.iter().max().copied().unwrap_or(0) + taps.iter().max().copied().unwrap_or(0);
        assert!(last + 2 * pairs <= x.len() && panel.len() >= taps.len() * pairs * 32);
        let mut w = panel.as_ptr();
        let mut c = [[_mm256_setzero_si256(); 2]; T];
        for &tap in taps {
            let rows = at.map(|a| x.as_ptr().add(a + tap) as *const i32);
            for j in 0..pairs {
                let w0 = _mm256_loadu_si256(w as *const __m256i);
                let w1 = _mm256_loadu_si256(w.add(16) as *const __m256i);
                w = w.add(32);
                for (c, row) in c.iter_mut().zip(&rows) {
                    // Two i16 values, read as one i32 and repeated 8 times.
                    let x = _mm256_set1_epi32(row.add(j).read_unaligned());
                    c[0] = _mm256_add_epi32(c[0], _mm256_madd_epi16(x, w0));
                    c[1] = _mm256_add_epi32(c[1], _mm256_madd_epi16(x, w1));
                }
            }
        }
        for (c, acc) in c.iter().zip(acc.iter_mut()) {
            _mm256_storeu_si256(acc.as_mut_ptr() as *mut __m256i, c[0]);
            _mm256_storeu_si256(acc.as_mut_ptr().add(8) as *mut __m256i, c[1]);
        }
    }

    /// `Emit for i8` on a tile, eight lanes at a time, bit for bit as the
    /// scalar code: the same f32 product, half away from zero, and a clamp
    /// to +-128 before truncating (so nothing overflows the conversion).
    #[target_feature(enable = "avx2")]
    pub unsafe fn emit_i8(
        acc: &super::Tile<i32>,
        bias: &[i32; super::PANEL],
        m: &[f32; super::PANEL],
        relu: bool,
    ) -> super::Tile<i8> {
        let (half, sign) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.0));
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(128.0));
        let ilo = _mm256_set1_epi32(if relu { 0 } else { -127 });
        let ihi = _mm256_set1_epi32(127);
        let mut out = [[0i8; super::PANEL]; super::TILE];
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            for h in [0, 8] {
                let a = _mm256_loadu_si256(acc.as_ptr().add(h) as *const __m256i);
                let b = _mm256_loadu_si256(bias.as_ptr().add(h) as *const __m256i);
                let v = _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_add_epi32(a, b)),
                    _mm256_loadu_ps(m.as_ptr().add(h)),
                );
                let r = _mm256_add_ps(v, _mm256_or_ps(half, _mm256_and_ps(v, sign)));
                let r = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
                let r = _mm256_min_epi32(_mm256_max_epi32(r, ilo), ihi);
                let mut lanes = [0i32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, r);
                for (o, &v) in out[h..h + 8].iter_mut().zip(&lanes) {
                    *o = v as i8;
                }
            }
        }
        out
    }
}
