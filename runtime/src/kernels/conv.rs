//! 2-D convolution on the CPU, N x C x H x W: im2col and one matrix product
//! per group for a tile of images side by side (small feature maps make
//! thin matrices otherwise, where gemm runs far below its peak), tiles
//! spread over the threads. The backward pass is the same shape of work: the
//! weight gradient is dy times the columns transposed, summed over tiles
//! (on CPUs with AVX-512 or AVX2, for one group where dx needs no col2im,
//! in `wgrad.rs`'s tiles);
//! the input gradient is the weights transposed times dy, folded back from
//! columns onto the images (for stride 1 on `panel.rs`, a convolution).

use super::cpu::{self, assume_written, slots, written, written_pair, zeroed, zeros};
use super::cpu::{Pooling, Window};
use super::{panel, wgrad};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::slice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// Columns a matrix product should have at least. Measured on the zoo
/// (2 cores): 256 helps the 6x6 maps of squeeze1 a little; 2048 and more
/// make the column matrices outgrow the cache and train 20-50 % slower.
const COLUMNS: usize = 256;

/// Output maps at least this large (12 x 12 and up), unless their tiles
/// are ordered (`Ordered`), get a matrix product
/// per image, written straight into the output onto the bias (filled in
/// first, per image, while in cache): a product of 128 columns or more runs
/// near gemm's peak, and the copy from a tile's product into N x C x H x W
/// is gone. The bias now enters gemm's sum first, so outputs may differ in
/// the last bits from builds before this; each build gives the same bits on
/// every call. Smaller maps (6 x 6) still share a product per tile.
const DIRECT: usize = 128;

/// A convolution's sizes. `pad` is (top, bottom, left, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub groups: usize,
}

impl Geometry {
    pub fn out(&self) -> (usize, usize) {
        let win = Window {
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
        };
        win.out(self.h, self.w)
    }

    /// Rows of a group's column matrix: its input channels times the kernel.
    fn k(&self) -> usize {
        self.cin / self.groups * self.kernel[0] * self.kernel[1]
    }

    pub(crate) fn ohw(&self) -> usize {
        let (oh, ow) = self.out();
        oh * ow
    }

    /// 1x1, stride 1, no padding: an image's group slice is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0; 4]
    }

    /// Images per matrix product: enough for about `COLUMNS` columns, while
    /// every thread still gets a tile.
    fn tile(&self) -> usize {
        let threads = rayon::current_num_threads();
        COLUMNS
            .div_ceil(self.ohw())
            .min(self.n.div_ceil(threads))
            .max(1)
    }

    /// Tiles in parallel when there are enough of them; else threads inside
    /// each matrix product (batch-1 latency).
    fn parallelism(&self) -> Parallelism {
        if self.n.div_ceil(self.tile()) >= rayon::current_num_threads() {
            Parallelism::None
        } else {
            Parallelism::Rayon(0)
        }
    }
}

/// The output columns `ox` whose input column `ox * stride + j - left` lies
/// inside `0..w`.
fn valid_columns(ow: usize, w: usize, stride: usize, j: usize, left: usize) -> (usize, usize) {
    let first = left.saturating_sub(j).div_ceil(stride).min(ow);
    let last = if w + left > j {
        ((w + left - j - 1) / stride + 1).min(ow)
    } else {
        0
    };
    (first, last.max(first))
}

/// One group's columns of one image, into the column matrix of a tile whose
/// rows are `ld` long, at column `at`: `col[k][at + p]` is the input cell
/// that kernel offset k sees at output position p (0 in padding).
fn im2col(x: &[f32], g: &Geometry, group: usize, col: &mut [f32], ld: usize, at: usize) {
    let (oh, ow) = g.out();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let (top, left) = (g.pad[0], g.pad[2]);
    let cg = g.cin / g.groups;
    for c in 0..cg {
        let plane = &x[(group * cg + c) * g.h * g.w..][..g.h * g.w];
        if g.pointwise() {
            col[c * ld + at..][..oh * ow].copy_from_slice(plane);
            continue;
        }
        for i in 0..kh {
            for j in 0..kw {
                let (first, last) = valid_columns(ow, g.w, sw, j, left);
                let row = &mut col[((c * kh + i) * kw + j) * ld + at..][..oh * ow];
                if let Some(shift) = Shift::new(g, (i, j), (first, last)) {
                    shift.copy(plane, row);
                    continue;
                }
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = oy * sh + i;
                    if iy < top || iy - top >= g.h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(iy - top) * g.w..][..g.w];
                    out[..first].fill(0.0);
                    out[last..].fill(0.0);
                    let start = first * sw + j - left;
                    if sw == 1 {
                        out[first..last].copy_from_slice(&src[start..start + last - first]);
                    } else {
                        for (o, v) in out[first..last]
                            .iter_mut()
                            .zip(src[start..].iter().step_by(sw))
                        {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// Kernel offset (i, j) of a stride-1 convolution whose output is as wide
/// as its input (`same` padding, the usual case): its row of the column
/// matrix is the plane shifted, `row[p] = plane[p + d]` for `p` in `lo..hi`
/// and 0 elsewhere, except in the columns `..first` and `last..` of each
/// image row, which wrapped around from the neighbouring image row and
/// belong to the padding. The row is copied (forward) or added back
/// (backward) in one pass instead of one per output row: on 12 x 12 maps
/// those were a `memcpy` call per dozen values. `panel.rs` reads the same
/// rows from the plane without copying them.
pub(super) struct Shift {
    pub(super) d: isize,
    pub(super) lo: usize,
    pub(super) hi: usize,
    w: usize,
    pub(super) first: usize,
    pub(super) last: usize,
}

impl Shift {
    /// None where the convolution's rows are not shifted planes.
    fn new(g: &Geometry, (i, j): (usize, usize), (first, last): (usize, usize)) -> Option<Shift> {
        let (oh, ow) = g.out();
        if g.stride != [1, 1] || ow != g.w {
            return None;
        }
        let n = (oh * ow) as isize;
        let (dy, dx) = (
            i as isize - g.pad[0] as isize,
            j as isize - g.pad[2] as isize,
        );
        let d = dy * g.w as isize + dx;
        // The p with 0 <= p + d < h * w, clipped to the row.
        let lo = (-d).clamp(0, n);
        let hi = ((g.h * g.w) as isize - d).clamp(lo, n);
        Some(Shift {
            d,
            lo: lo as usize,
            hi: hi as usize,
            w: g.w,
            first,
            last,
        })
    }

    /// Where the run `lo..hi` starts in the plane (`lo + d`, at least 0).
    fn src(&self) -> usize {
        (self.lo as isize + self.d).max(0) as usize
    }

    /// Zeros in the wrapped-around columns of every image row of `row`.
    fn clear_wrapped(&self, row: &mut [f32]) {
        if self.first > 0 || self.last < self.w {
            for r in row.chunks_exact_mut(self.w) {
                r[..self.first].fill(0.0);
                r[self.last..].fill(0.0);
            }
        }
    }

    /// The row of the column matrix, from the plane.
    fn copy(&self, plane: &[f32], row: &mut [f32]) {
        let (lo, hi) = (self.lo, self.hi);
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
        if hi > lo {
            row[lo..hi].copy_from_slice(&plane[self.src()..][..hi - lo]);
        }
        self.clear_wrapped(row);
    }

    /// The adjoint of `copy`: adds the row back onto the plane. `row` is
    /// scratch; its padding entries are zeroed first, since the one pass
    /// would add them onto the neighbouring image row's cells.
    fn add(&self, row: &mut [f32], plane: &mut [f32]) {
        self.clear_wrapped(row);
        let (lo, hi) = (self.lo, self.hi);
        if hi > lo {
            let dst = &mut plane[self.src()..][..hi - lo];
            dst.iter_mut().zip(&row[lo..hi]).for_each(|(a, b)| *a += b);
        }
    }
}

/// Where `panel.rs` reads a convolution's columns from (`gemm` reads a
/// column matrix written by `im2col`).
enum Columns {
    /// The image itself (1x1 convolutions).
    InPlace,
    /// The input planes under each kernel offset's shift.
    Shifted(Arc<panel::Shifts>),
    /// Gathered from the input, for a tile of images (small maps) or for
    /// one image (strided convolutions and the like).
    Gathered(Arc<panel::Gathers>),
    /// Gathered for a tile of images in an order that leaves out taps in
    /// the padding (`Ordered`).
    Ordered(Arc<Ordered>),
}

/// The columns of a tile of images gathered in the order `order` makes,
/// so that blocks of 48 share the kernel offsets (taps) that fall in the
/// padding and leave them out (`panel::Gathers::skipping`): oneDNN leaves
/// out the padding's taps, and where they are a fifth of the work (nin2's
/// 5 x 5 layer on 12 x 12 maps, its 3 x 3 on 6 x 6) multiplying their
/// zeros cost netc a third of the layer's time. `cols[q]` is the column
/// (`i * ohw + p`: image i's output position p) that the product's
/// column q makes.
struct Ordered {
    gathers: panel::Gathers,
    cols: Vec<usize>,
}

/// Maps at most this large (16 x 16) may be ordered to skip their
/// padding's taps; larger maps have too few of them (under 6 % for 5 x 5
/// from 32 x 32 on) to pay for gathering their columns.
const ORDERED: usize = 256;

/// The least share of a layer's taps that ordering must leave out for a
/// layer to be ordered: where its tiles were gathered anyway (maps under
/// 128 positions), and where they would be products per image (shifted
/// planes, or for strided layers gathered per image), written straight
/// into the output. Ordering costs masked loads or gathers in
/// place of shifted rows, and stores scattered over the images. On 12 x
/// 12 maps (Zen 4, batch 128, with each tile's product then still copied
/// into the images), nin2's 5 x 5 layer ran 4 % slower ordered in tiles
/// of 2 images (6.7 % of its taps left out), 5 % faster in tiles of 4
/// (11.7 %) and 6 % in 8 (15.0 %); squeeze1's 3 x 3 expand, 9 % of its
/// taps left out, 6-10 % slower, and with the stores scattered, at 8.3 %
/// in tiles of 8 (a least of 8 %), still 5-10 % slower.
const SKIPPED: [f64; 2] = [0.05, 0.10];

/// The columns of a tile of `images` images, in an order where the
/// positions whose kernel rows reach into the padding (the map's top and
/// bottom rows) come first, row by row; then those whose kernel columns
/// do (the left and right columns of the other rows), column by column;
/// then the rest: each group's columns share the taps left out. Within a
/// group, image after image.
fn order(g: &Geometry, images: usize) -> Vec<usize> {
    let (oh, ow) = g.out();
    let full = |o: usize, stride: usize, before: usize, size: usize, kernel: usize| {
        // Kernel rows (or columns) `lo..hi` fall inside the map.
        let at = o * stride;
        let lo = before.saturating_sub(at);
        let hi = (size + before).saturating_sub(at).min(kernel);
        lo == 0 && hi == kernel
    };
    let mut cols: Vec<usize> = (0..images * oh * ow).collect();
    cols.sort_by_key(|&col| {
        let (i, p) = (col / (oh * ow), col % (oh * ow));
        let (y, x) = (p / ow, p % ow);
        if !full(y, g.stride[0], g.pad[0], g.h, g.kernel[0]) {
            (0, y, i, x)
        } else if !full(x, g.stride[1], g.pad[2], g.w, g.kernel[1]) {
            (1, x, i, y)
        } else {
            (2, 0, i, p)
        }
    });
    cols
}

/// Whether `g`'s tiles may be ordered (`Ordered`): on `panel.rs`'s
/// products with packed weights (a tile per thread, 8 channels or more
/// per group), small maps, some depth, and no 1x1 kernel (a padded one
/// would meet nothing but padding). `tiling` and `Plan::new` both ask.
fn orderable(g: &Geometry) -> bool {
    panel::available()
        && matches!(g.parallelism(), Parallelism::None)
        && g.cout / g.groups >= panel::ROWS
        && g.kernel != [1, 1]
        && g.k() > 0
        && g.ohw() <= ORDERED
}

static ORDERS: LazyLock<Cache<Option<Arc<Ordered>>>> = LazyLock::new(Default::default);

/// `g`'s tile of `images` images ordered to skip its padding's taps, made
/// once; None where ordering leaves out under `SKIPPED` of the taps.
fn ordered(g: &Geometry, images: usize) -> Option<Arc<Ordered>> {
    cached(&ORDERS, Geometry { n: images, ..*g }, || {
        let cols = order(g, images);
        let at = gather_at(g);
        let per = g.kernel[0] * g.kernel[1];
        let gathers = panel::Gathers::skipping(per, cols.len(), |q, s| at(cols[q], s));
        let least = SKIPPED[usize::from(g.ohw() >= DIRECT)];
        (gathers.skipped() >= least).then(|| Arc::new(Ordered { gathers, cols }))
    })
}

/// Images per tile for `g`'s forward pass: `g.tile()`, or where the tiles
/// can be ordered to skip the padding's taps (small maps, several images
/// per thread), the smallest among 1, 2, 4 and 8 times as many that
/// leaves out within 2 points of the most, up to 2,304 columns, with
/// every thread given as many tiles (or at least 4).
fn tiling(g: &Geometry) -> usize {
    let base = g.tile();
    let threads = rayon::current_num_threads();
    if !orderable(g) {
        return base;
    }
    let image = g.cin * g.h * g.w;
    let balanced = |t: usize| {
        let tiles = g.n.div_ceil(t);
        tiles >= threads && (tiles.is_multiple_of(threads) || tiles >= 4 * threads)
    };
    let skipped = |t: usize| ordered(g, t).map_or(0.0, |o| o.gathers.skipped());
    let tiles: Vec<(usize, f64)> = [1, 2, 4, 8]
        .into_iter()
        .map(|times| base * times)
        .filter(|&t| t == base || (balanced(t) && t * g.ohw() <= 2304))
        .filter(|&t| t * image <= i32::MAX as usize)
        .map(|t| (t, skipped(t)))
        .collect();
    let most = tiles.iter().map(|&(_, s)| s).fold(0.0, f64::max);
    // The smallest tile within 2 points of the most: nin2's 5 x 5 layer
    // ran as fast on 8 images (15.0 %) as on 16 (15.4 %), with half the
    // scratch.
    tiles
        .into_iter()
        .find(|&(_, s)| s > 0.0 && s >= most - 0.02)
        .map_or(base, |(t, _)| t)
}

/// Lane masks and gather indices depend on a layer's sizes only, so they
/// are made once per layer and kept: made on every call, they were 5 % of
/// alex4's batch-1 time. The key is the layer's geometry with `n` set to
/// the images the columns span (0 for shifts, which are per image).
type Cache<T> = Mutex<HashMap<Geometry, T>>;

fn cached<T: Clone>(cache: &Cache<T>, key: Geometry, make: impl FnOnce() -> T) -> T {
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    // A program has a few dozen layers; a process that runs many shapes
    // (the tests) starts over rather than grow without bound.
    if map.len() >= 256 {
        map.clear();
    }
    map.entry(key).or_insert_with(make).clone()
}

static SHIFTS: LazyLock<Cache<Option<Arc<panel::Shifts>>>> = LazyLock::new(Default::default);
static GATHERS: LazyLock<Cache<Arc<panel::Gathers>>> = LazyLock::new(Default::default);

/// `shifts` of the layer, made once.
fn shifted(g: &Geometry) -> Option<Arc<panel::Shifts>> {
    cached(&SHIFTS, Geometry { n: 0, ..*g }, || shifts(g).map(Arc::new))
}

/// Every kernel offset's shift, in im2col's row order, where every row of
/// the column matrix is a shifted plane; else None.
fn shifts(g: &Geometry) -> Option<panel::Shifts> {
    let (oh, ow) = g.out();
    let [kh, kw] = g.kernel;
    (0..kh * kw)
        .map(|ij| {
            let (i, j) = (ij / kw, ij % kw);
            Shift::new(g, (i, j), valid_columns(ow, g.w, 1, j, g.pad[2]))
        })
        .collect::<Option<_>>()
        .map(|shifts| panel::Shifts::new(shifts, oh * ow, g.w))
}

/// `gather` of the layer for tiles of `images` images, made once.
fn gathers(g: &Geometry, images: usize) -> Arc<panel::Gathers> {
    cached(&GATHERS, Geometry { n: images, ..*g }, || {
        gather(g, images).into()
    })
}

/// Where each column of a tile of `images` images reads under each kernel
/// offset, as offsets from the tile's first plane (what `im2col` copies).
fn gather(g: &Geometry, images: usize) -> panel::Gathers {
    let [kh, kw] = g.kernel;
    panel::Gathers::new(kh * kw, images * g.ohw(), gather_at(g))
}

/// The offset from a tile's first plane that column `col` (image `col /
/// ohw`'s output position `col % ohw`) reads under kernel offset s; None
/// in the padding.
fn gather_at(g: &Geometry) -> impl Fn(usize, usize) -> Option<usize> + '_ {
    let (oh, ow) = g.out();
    let kw = g.kernel[1];
    let image = g.cin * g.h * g.w;
    move |col, s| {
        let (i, p) = (col / (oh * ow), col % (oh * ow));
        let iy = (p / ow * g.stride[0] + s / kw).checked_sub(g.pad[0])?;
        let ix = (p % ow * g.stride[1] + s % kw).checked_sub(g.pad[2])?;
        (iy < g.h && ix < g.w).then_some(i * image + iy * g.w + ix)
    }
}

/// The adjoint of `im2col`: adds each column entry back onto its input cell.
/// `col` is scratch: entries that fell in the padding may be zeroed.
fn col2im(col: &mut [f32], g: &Geometry, group: usize, dx: &mut [f32], ld: usize, at: usize) {
    let (oh, ow) = g.out();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let (top, left) = (g.pad[0], g.pad[2]);
    let cg = g.cin / g.groups;
    for c in 0..cg {
        let plane = &mut dx[(group * cg + c) * g.h * g.w..][..g.h * g.w];
        if g.pointwise() {
            let src = &col[c * ld + at..][..oh * ow];
            plane.iter_mut().zip(src).for_each(|(d, v)| *d += v);
            continue;
        }
        for i in 0..kh {
            for j in 0..kw {
                let (first, last) = valid_columns(ow, g.w, sw, j, left);
                let row = &mut col[((c * kh + i) * kw + j) * ld + at..][..oh * ow];
                if let Some(shift) = Shift::new(g, (i, j), (first, last)) {
                    shift.add(row, plane);
                    continue;
                }
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let iy = oy * sh + i;
                    if iy < top || iy - top >= g.h || first == last {
                        continue;
                    }
                    let dst = &mut plane[(iy - top) * g.w..][..g.w];
                    let start = first * sw + j - left;
                    for (d, v) in dst[start..].iter_mut().step_by(sw).zip(&src[first..last]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// dst (m x n, row-major) = [dst +] a (m x k) * b (k x n); each operand given
/// with its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    par: Parallelism,
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: the slices hold every element the strides reach (checked by
    // the callers' shapes); dst does not overlap a or b.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

static PANEL: AtomicBool = AtomicBool::new(false);

/// Sends the convolutions that `lanes.rs` would take (small maps, on
/// AVX-512) to `panel.rs` instead (true), for the whole process: to
/// measure one against the other (`examples/layers.rs --panel`).
pub fn prefer_panel(yes: bool) {
    PANEL.store(yes, Ordering::Relaxed);
}

/// Whether `lanes.rs` may take a convolution (`prefer_panel`).
#[cfg(target_arch = "x86_64")]
pub(super) fn lanes_allowed() -> bool {
    !PANEL.load(Ordering::Relaxed)
}

/// y = conv(x, weight) + bias, weight as cout x cin/groups x kH x kW; then
/// max(y, 0) when `relu`.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
) -> Vec<f32> {
    convolve(x, weight, bias, g, relu, None).0
}

/// `forward`, then max pooling through `win`, as `cpu::max_pool` computes
/// it (the same bits). Where the tiles of images are spread over the
/// threads, each tile's output is pooled while it is in the thread's
/// cache: the convolution's whole output is never written to memory and
/// read back (alex4's pool1 read 28 MB at batch 128).
pub fn forward_pooled(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
    win: Window,
) -> Vec<f32> {
    convolve(x, weight, bias, g, relu, Some((win, false))).0
}

/// `forward_pooled` that also keeps the convolution's output, which the
/// backward passes of the pooling and of the fused ReLU need: (pooled,
/// convolved). Training pools each tile of images while its output is in
/// cache, as inference does, instead of reading the whole output back from
/// memory in a pass of its own.
pub fn forward_and_pooled(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
    win: Window,
) -> (Vec<f32>, Vec<f32>) {
    match convolve(x, weight, bias, g, relu, Some((win, true))) {
        (pooled, Some(y)) => (pooled, y),
        (_, None) => unreachable!("convolve keeps the output when asked"),
    }
}

/// Where a tile's output goes: image i of the tile at `i * stride`, its
/// channels from channel `at` on. A convolution alone fills whole images
/// (`stride` is its output image, `at` 0); a part of a concatenation
/// (`forward_joined`) fills its own channels of the joined images.
#[derive(Debug, Clone, Copy)]
struct Place {
    stride: usize,
    at: usize,
}

/// One convolution's call, made ready: the packed weights and where the
/// products read their columns from, for `run` to convolve tile after tile.
struct Plan<'a> {
    x: &'a [f32],
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    g: &'a Geometry,
    relu: bool,
    packed: Vec<panel::Weights<'a>>,
    source: Option<Columns>,
    /// Matrix products per image rather than per tile (small maps and
    /// ordered tiles).
    direct: bool,
    tile: usize,
    par: Parallelism,
    /// Sizes of the scratch: the column matrix `gemm` reads, and a tile's
    /// product (for ordered plans, the last, smaller tile's alone).
    columns: usize,
    products: usize,
    /// Where an ordered tile's columns go in its images (`Place::stride`
    /// apart, the same on every call of a plan).
    scatter: OnceLock<(usize, panel::Scatter)>,
}

impl<'a> Plan<'a> {
    fn new(
        x: &'a [f32],
        weight: &'a [f32],
        bias: Option<&'a [f32]>,
        g: &'a Geometry,
        relu: bool,
        tile: usize,
    ) -> Plan<'a> {
        // Each group's channels are cout / groups, and `run` writes those
        // of every group: all the output's, which `tiles` hands out
        // unwritten.
        assert!(g.groups > 0 && g.cout.is_multiple_of(g.groups) && g.cin.is_multiple_of(g.groups));
        let ohw = g.ohw();
        let (k, cog) = (g.k(), g.cout / g.groups);
        let image = g.cin * g.h * g.w;
        let par = g.parallelism();
        // On CPUs with AVX-512 or AVX2 the per-image products of large maps are netc's
        // own (`panel.rs`), with each group's weights packed once for the call;
        // and where the column matrix's rows are shifted planes, they are read
        // from the input where they lie, and no column matrix is written.
        // Every group or none: a group left to gemm would find no column matrix.
        // Fewer than 8 channels per group (depthwise layers) would fill a
        // fraction of each 8-channel tile: those keep gemm.
        // Threads inside each product (batch 1): each image's product reads
        // the weights where they lie; else they are packed once for the call.
        let parallel = !matches!(par, Parallelism::None);
        // A pass of the product covers whole input channels: `per` rows of k each.
        let per = g.kernel[0] * g.kernel[1];
        let mut packed: Vec<panel::Weights> = if cog >= panel::ROWS {
            (0..g.groups)
                .map(|group| {
                    let w = &weight[group * cog * k..][..cog * k];
                    match parallel {
                        true => panel::Weights::raw(w, cog, k, per),
                        false => panel::Weights::pack(w, cog, k, per),
                    }
                })
                .collect::<Option<_>>()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        // Small maps whose tiles can be ordered to leave out the padding's
        // taps (`Ordered`) are, with each set of taps' weights packed too.
        let fits = tile * image <= i32::MAX as usize;
        let ordered = (!packed.is_empty() && fits && orderable(g))
            .then(|| ordered(g, tile))
            .flatten();
        if let Some(o) = &ordered {
            let groups = packed.drain(..).enumerate();
            packed = groups
                .map(|(group, w)| w.skipping(&weight[group * cog * k..][..cog * k], &o.gathers))
                .collect();
        }
        let direct = ohw >= DIRECT && ordered.is_none();
        // Ordered tiles go straight into the images; a last, smaller tile
        // is gathered in the plain order, into a product of its own.
        let products = match (direct, &ordered) {
            (true, _) => 0,
            (false, Some(_)) => cog * (g.n % tile) * ohw,
            (false, None) => cog * tile * ohw,
        };
        // A 1x1 convolution's column matrix is the image itself: read in place
        // as a matrix. Through the lane masks of one shift nin2's 1x1 layers
        // ran 5-10 % slower than with gemm; in place, within 8 % of gemm
        // either way (`examples/layers.rs`). Small maps take their columns
        // from a tile of images, gathered; gathers index the whole tile with
        // i32s.
        let source = if packed.is_empty() || !fits {
            None
        } else if let Some(o) = ordered {
            Some(Columns::Ordered(o))
        } else if !direct {
            Some(Columns::Gathered(gathers(g, tile)))
        } else if g.pointwise() {
            Some(Columns::InPlace)
        } else {
            Some(shifted(g).map_or_else(|| Columns::Gathered(gathers(g, 1)), Columns::Shifted))
        };
        let columns = if source.is_none() { k * tile * ohw } else { 0 };
        Plan {
            x,
            weight,
            bias,
            g,
            relu,
            packed,
            source,
            direct,
            tile,
            par,
            columns,
            products,
            scatter: OnceLock::new(),
        }
    }

    fn scratch(&self) -> (Vec<f32>, Vec<f32>) {
        (vec![0.0f32; self.columns], vec![0.0f32; self.products])
    }

    /// Tile `t`'s output into `y`, laid out as `place` says: every value
    /// of the place's channels of each image is written, none read.
    fn run(
        &self,
        (col, out): &mut (Vec<f32>, Vec<f32>),
        t: usize,
        y: &mut [MaybeUninit<f32>],
        place: Place,
    ) {
        let Plan {
            g, bias, relu, par, ..
        } = *self;
        let (ohw, k, cog) = (g.ohw(), g.k(), g.cout / g.groups);
        let (image, stride, direct) = (g.cin * g.h * g.w, place.stride, self.direct);
        let images = y.len() / stride;
        let ld = images * ohw;
        let x = &self.x[t * self.tile * image..][..images * image];
        for group in 0..g.groups {
            // This group's channels of each image of the tile.
            let at = (place.at + group * cog) * ohw;
            if let (Some(packed), Some(source)) = (self.packed.get(group), &self.source) {
                let parallel = !matches!(par, Parallelism::None);
                let (hw, cg) = (g.h * g.w, g.cin / g.groups);
                let b = bias.map(|b| &b[group * cog..][..cog]);
                if let (Columns::Gathered(_) | Columns::Ordered(_), false) = (source, direct) {
                    // One product for the tile, then each image's rows
                    // into its place. The last tile may hold fewer images:
                    // its gathers, in the plain order, come from the same
                    // cache.
                    let planes = &x[group * cg * hw..];
                    if let (Columns::Ordered(o), true) = (source, images == self.tile) {
                        // Straight into the images: the product's column
                        // q (image i's position p) of this group's channel
                        // r at `at + r * ohw + i * stride + p`.
                        let (_, scatter) = self.scatter.get_or_init(|| {
                            let to = o.cols.iter().map(|&col| {
                                let place = col / ohw * stride + col % ohw;
                                // As `panel::Scatter` takes them.
                                let place =
                                    i32::try_from(place).expect("a tile's outputs fit an i32");
                                place as u32
                            });
                            (stride, panel::Scatter::new(ohw, to.collect()))
                        });
                        assert_eq!(self.scatter.get().map(|s| s.0), Some(stride));
                        let gathers = &o.gathers;
                        let cols = panel::Cols::Gathered {
                            planes,
                            hw,
                            gathers,
                        };
                        panel::product_scattered(packed, cols, b, relu, &mut y[at..], scatter);
                        continue;
                    }
                    let gathers = &gathers(g, images);
                    let cols = panel::Cols::Gathered {
                        planes,
                        hw,
                        gathers,
                    };
                    panel::product(packed, cols, ld, b, relu, out, parallel);
                    for (i, y) in y.chunks_exact_mut(stride).enumerate() {
                        let y = &mut y[at..][..cog * ohw];
                        for (y, out) in y.chunks_exact_mut(ohw).zip(out.chunks_exact(ld)) {
                            put(y, &out[i * ohw..][..ohw]);
                        }
                    }
                    continue;
                }
                for (i, y) in y.chunks_exact_mut(stride).enumerate() {
                    let y = &mut y[at..][..cog * ohw];
                    let planes = &x[i * image + group * cg * hw..][..cg * hw];
                    let cols = match source {
                        Columns::Shifted(shifts) => panel::Cols::Shifted { planes, hw, shifts },
                        Columns::InPlace => panel::Cols::Matrix {
                            data: planes,
                            ld: hw,
                        },
                        Columns::Gathered(gathers) => panel::Cols::Gathered {
                            planes,
                            hw,
                            gathers,
                        },
                        Columns::Ordered(_) => unreachable!("ordered tiles are not direct"),
                    };
                    panel::product_into(packed, cols, ohw, b, relu, y, parallel);
                }
                continue;
            }
            for (i, x) in x.chunks_exact(image).enumerate() {
                im2col(x, g, group, col, ld, i * ohw);
            }
            let w = &self.weight[group * cog * k..][..cog * k];
            if direct {
                // Each image's product straight into its output, onto the
                // bias, then the ReLU while the image is in cache.
                for (i, y) in y.chunks_exact_mut(stride).enumerate() {
                    let y = zeroed(&mut y[at..][..cog * ohw]);
                    if let Some(b) = bias {
                        for (y, &b) in y.chunks_exact_mut(ohw).zip(&b[group * cog..]) {
                            y.fill(b);
                        }
                    }
                    let cols = (&col[i * ohw..], ld, 1);
                    matmul((cog, ohw, k), y, bias.is_some(), (w, k, 1), cols, par);
                    if relu {
                        y.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                }
                continue;
            }
            matmul((cog, ld, k), out, false, (w, k, 1), (col, ld, 1), par);
            // Back to N x C x H x W, adding the bias and applying the ReLU.
            for (i, y) in y.chunks_exact_mut(stride).enumerate() {
                for o in 0..cog {
                    let b = bias.map_or(0.0, |b| b[group * cog + o]);
                    let src = &out[o * ld + i * ohw..][..ohw];
                    let dst = &mut y[at + o * ohw..][..ohw];
                    if relu {
                        dst.iter_mut()
                            .zip(src)
                            .for_each(|(d, v)| _ = d.write((v + b).max(0.0)));
                    } else {
                        dst.iter_mut()
                            .zip(src)
                            .for_each(|(d, v)| _ = d.write(v + b));
                    }
                }
            }
        }
    }
}

/// The convolution, then with `pool` its max pooling: (the last output,
/// the convolution's own when the pooling's `bool` asks to keep it).
fn convolve(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
    pool: Option<(Window, bool)>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    // Small maps with images in the vector lanes (AVX-512): every
    // padding tap left out, no columns packed.
    #[cfg(target_arch = "x86_64")]
    if super::lanes::applies(g) {
        let y = super::lanes::forward(x, weight, bias, g, relu);
        return then_pooled(y, g, relu, pool);
    }
    let plan = Plan::new(x, weight, bias, g, relu, tiling(g));
    let out_image = g.cout * g.ohw();
    let tile = plan.tile;
    let whole = Place {
        stride: out_image,
        at: 0,
    };
    let (oh, ow) = g.out();
    match (plan.par, pool) {
        (Parallelism::None, None) => (
            tiles(slice::from_ref(&plan), &[whole], g.n, tile, plan.par),
            None,
        ),
        (Parallelism::None, Some((win, false))) => {
            let pooling = pooling(oh, ow, win, relu);
            let plans = slice::from_ref(&plan);
            (pooled_tiles(plans, &[whole], g.n, tile, &pooling), None)
        }
        (Parallelism::None, Some((win, true))) => {
            let pooling = pooling(oh, ow, win, relu);
            let pooled = g.cout * pooling.out();
            let sizes = (g.n * out_image, g.n * pooled);
            let init = || (plan.scratch(), pooling.scratch());
            let chunks = (tile * out_image, tile * pooled);
            let fill =
                |(s, row): &mut (_, Vec<f32>), t, conv: &mut [MaybeUninit<f32>], y: &mut _| {
                    plan.run(s, t, conv, whole);
                    // SAFETY: `run` wrote every value of the tile's images.
                    pooling.run(unsafe { assume_written(conv) }, y, row);
                };
            // SAFETY: `run` writes every value of the tile's images, the
            // pooling every value of its planes.
            let (conv, y) = unsafe { written_pair(sizes, chunks, init, fill) };
            (y, Some(conv))
        }
        // Threads inside each product (batch 1): the output whole, then
        // pooled by all threads.
        (par, pool) => {
            let y = tiles(slice::from_ref(&plan), &[whole], g.n, tile, par);
            then_pooled(y, g, relu, pool)
        }
    }
}

/// A convolution's whole output `y`, then with `pool` pooled by all
/// threads: (the last output, `y` too when the pooling's `bool` asks).
fn then_pooled(
    y: Vec<f32>,
    g: &Geometry,
    relu: bool,
    pool: Option<(Window, bool)>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (oh, ow) = g.out();
    match pool {
        None => (y, None),
        Some((win, keep)) => (
            cpu::pool(&y, &pooling(oh, ow, win, relu)),
            keep.then_some(y),
        ),
    }
}

/// The pooling of a convolution's output maps (`oh` x `ow`): one that holds
/// no NaN where the ReLU is fused.
fn pooling(oh: usize, ow: usize, win: Window, relu: bool) -> Pooling {
    let pooling = Pooling::new(oh, ow, win);
    match relu {
        true => pooling.without_nan(),
        false => pooling,
    }
}

/// `n` images made as `tiles` makes them, spread over the threads, each
/// tile pooled while it is in the thread's cache: the pooled images alone,
/// the whole output never written to memory.
fn pooled_tiles(
    plans: &[Plan],
    places: &[Place],
    n: usize,
    tile: usize,
    pooling: &Pooling,
) -> Vec<f32> {
    let stride = places.first().map_or(0, |place| place.stride);
    let pooled = plans.iter().map(|plan| plan.g.cout).sum::<usize>() * pooling.out();
    let init = || {
        let scratch: Vec<_> = plans.iter().map(Plan::scratch).collect();
        (scratch, vec![0.0f32; tile * stride], pooling.scratch())
    };
    let fill = |(s, out, row): &mut (Vec<_>, Vec<f32>, Vec<f32>), t, y: &mut [MaybeUninit<f32>]| {
        let out = &mut out[..y.len() / pooled * stride];
        for ((plan, &place), s) in plans.iter().zip(places).zip(s.iter_mut()) {
            // SAFETY: `run` writes only f32 values.
            plan.run(s, t, unsafe { slots(out) }, place);
        }
        pooling.run(out, y, row);
    };
    // SAFETY: the pooling writes every value of its planes, the tile's.
    unsafe { written(n * pooled, tile * pooled, init, fill) }
}

/// `n` images made tile by tile (`tile` images each), each plan writing
/// its place in them (`places`, as many): spread over the threads, or,
/// with threads inside each product (batch 1), one tile after another.
fn tiles(plans: &[Plan], places: &[Place], n: usize, tile: usize, par: Parallelism) -> Vec<f32> {
    let stride = places.first().map_or(0, |place| place.stride);
    let scratch = || plans.iter().map(Plan::scratch).collect::<Vec<_>>();
    let fill = |s: &mut Vec<(Vec<f32>, Vec<f32>)>, t, y: &mut [MaybeUninit<f32>]| {
        for ((plan, &place), s) in plans.iter().zip(places).zip(s) {
            plan.run(s, t, y, place);
        }
    };
    // The places cover each image: the channels of each plan, side by
    // side, maps of one size.
    let ohw = plans.first().map_or(0, |plan| plan.g.ohw());
    let channels = places.iter().zip(plans).try_fold(0, |at, (place, plan)| {
        let next = place.at == at && place.stride == stride && plan.g.ohw() == ohw;
        next.then_some(at + plan.g.cout)
    });
    assert!(plans.len() == places.len() && channels.map(|c| c * ohw) == Some(stride));
    if let Parallelism::None = par {
        // SAFETY: each plan's `run` writes every value of its place in each
        // image of the tile's chunk, and the places cover the images.
        return unsafe { written(n * stride, tile * stride, scratch, fill) };
    }
    let mut y = zeros(n * stride);
    let mut s = scratch();
    y.chunks_mut((tile * stride).max(1))
        .enumerate()
        // SAFETY: `run` writes only f32 values.
        .for_each(|(t, y)| fill(&mut s, t, unsafe { slots(y) }));
    y
}

/// `src` into the slots of `dst`, as long.
fn put(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

/// One convolution of `forward_joined`: weights, bias, sizes, fused ReLU.
pub type Part<'a> = (&'a [f32], Option<&'a [f32]>, Geometry, bool);

/// Convolutions of one input joined along channels, in order (a fire
/// module's expand layers): each writes its channels of the joined output
/// tile by tile, so no convolution has an output of its own that a
/// concatenation then copies (squeeze1's four joins copied 28 MB a batch
/// of 128). The same bits as `forward` of each, then `cpu::concat`. Each
/// part is (weights, bias, sizes, fused ReLU); every part must read the
/// same input and make maps of the same size, which share their tiles;
/// else None.
pub fn forward_joined(x: &[f32], parts: &[Part]) -> Option<Vec<f32>> {
    let (plans, places, g0) = joined_plans(x, parts)?;
    Some(tiles(
        &plans,
        &places,
        g0.n,
        plans[0].tile,
        g0.parallelism(),
    ))
}

/// `forward_joined`, then max pooling through `win`, as `cpu::max_pool`
/// computes it (the same bits). Where the tiles of images are spread over
/// the threads, each tile's joined output is pooled while it is in the
/// thread's cache, as `forward_pooled` does for one convolution: the
/// joined output is never written to memory and read back (squeeze1's
/// pool2 read 9.4 MB at batch 128).
pub fn forward_joined_pooled(x: &[f32], parts: &[Part], win: Window) -> Option<Vec<f32>> {
    let (plans, places, g0) = joined_plans(x, parts)?;
    let (oh, ow) = g0.out();
    // A ReLU on every part: the joined output holds no NaN.
    let pooling = pooling(oh, ow, win, parts.iter().all(|p| p.3));
    Some(match (plans[0].tile, g0.parallelism()) {
        (tile, Parallelism::None) => pooled_tiles(&plans, &places, g0.n, tile, &pooling),
        // Threads inside each product (batch 1): the output whole, then
        // pooled by all threads.
        (tile, par) => cpu::pool(&tiles(&plans, &places, g0.n, tile, par), &pooling),
    })
}

/// The plans of `forward_joined`'s parts, each part's place in the joined
/// images, and the first part's sizes; None where the parts do not read
/// the same input or make maps of one size.
fn joined_plans<'a>(
    x: &'a [f32],
    parts: &'a [Part<'a>],
) -> Option<(Vec<Plan<'a>>, Vec<Place>, Geometry)> {
    let (first, _) = parts.split_first()?;
    let g0 = first.2;
    // The same input and output sizes give the same tiles and threads.
    let same =
        |g: &Geometry| (g.n, g.cin, g.h, g.w, g.out()) == (g0.n, g0.cin, g0.h, g0.w, g0.out());
    if !parts.iter().all(|p| same(&p.2)) || x.len() != g0.n * g0.cin * g0.h * g0.w {
        return None;
    }
    let stride = parts.iter().map(|p| p.2.cout).sum::<usize>() * g0.ohw();
    // One tile for every part: the one that suits the most.
    let tile = parts.iter().map(|p| tiling(&p.2)).max().unwrap_or(1);
    let plans: Vec<Plan> = parts
        .iter()
        .map(|(w, b, g, relu)| Plan::new(x, w, *b, g, *relu, tile))
        .collect();
    // Each part's place in the joined images: its first channel.
    let places: Vec<Place> = parts
        .iter()
        .scan(0, |at, p| {
            let place = Place { stride, at: *at };
            *at += p.2.cout;
            Some(place)
        })
        .collect();
    Some((plans, places, g0))
}

/// The sum of `v` in 8 running sums, added together at the end. A single
/// running sum is a chain of dependent additions, one per output value,
/// that the compiler may not reorder; 8 sums vectorize. The order is fixed,
/// so the same call still gives the same bits.
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (l, x) in lanes.iter_mut().zip(chunk) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Gradients of a convolution: (input, when asked; weight; bias).
pub struct Grads {
    pub x: Option<Vec<f32>>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Per-thread partial sums of the weight and bias gradients, and scratch.
struct Partial {
    dw: Vec<f32>,
    db: Vec<f32>,
    col: Vec<f32>,
    dcol: Vec<f32>,
    /// The tile's dy (after the fused ReLU's mask), channels by columns.
    dyt: Vec<f32>,
}

impl Partial {
    fn add(mut self, other: Partial) -> Partial {
        self.dw.iter_mut().zip(&other.dw).for_each(|(a, b)| *a += b);
        self.db.iter_mut().zip(&other.db).for_each(|(a, b)| *a += b);
        self
    }
}

/// With `relu_out`, the layer's output after a fused ReLU: the gradient
/// passes only where it is positive.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    g: &Geometry,
    want_x: bool,
) -> Grads {
    // On CPUs with AVX-512 or AVX2 a stride-1 convolution's input gradient is
    // itself a convolution: of dy, through the weights flipped and
    // transposed, padded on the other sides (`transposed`). That runs on
    // `panel.rs` like the forward pass, and no column matrix is written
    // or folded back (`col2im`).
    let transposed = want_x.then(|| transposed(g)).flatten();
    // Where dx needs no column matrix, dW and db need none either: they
    // run on `panel.rs`'s tiles too (`wgrad.rs`), when it takes the layer.
    let own = !want_x || transposed.is_some();
    let masked: Cow<[f32]> = match (relu_out, &transposed) {
        (Some(y), Some(_)) => Cow::Owned(relu_mask(dy, y)),
        _ => Cow::Borrowed(dy),
    };
    let dx = |t: Geometry| forward(&masked, &flipped(weight, g), None, &t, false);
    if own {
        // dy is masked already where dx needed it so; else in the packing.
        let gates = relu_out.filter(|_| transposed.is_none());
        if let Some((dw, db)) = wgrad::weight_gradient(x, &masked, gates, g) {
            return Grads {
                x: transposed.map(dx),
                weight: dw,
                bias: db,
            };
        }
    }
    let (dy, relu_out) = match &transposed {
        Some(_) => (&masked[..], None),
        None => (dy, relu_out),
    };
    let mut grads = gradients(x, weight, dy, relu_out, g, want_x && transposed.is_none());
    if let Some(t) = transposed {
        grads.x = Some(dx(t));
    }
    grads
}

/// dy where the layer's fused ReLU let the value through (`y > 0`), else 0.
/// Each value is written once, into memory not zeroed first (a pass over
/// 47 MB for one of nin2's 24 x 24 layers at batch 128).
fn relu_mask(dy: &[f32], y: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), y.len());
    const CHUNK: usize = 1 << 14;
    let mut out: Vec<f32> = Vec::with_capacity(dy.len());
    out.spare_capacity_mut()[..dy.len()]
        .par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(out, (dy, y))| {
            for ((o, &d), &y) in out.iter_mut().zip(dy).zip(y) {
                o.write(if y > 0.0 { d } else { 0.0 });
            }
        });
    // SAFETY: the three are chunked alike and are as long (asserted), so
    // every value was written.
    unsafe { out.set_len(dy.len()) };
    out
}

/// The convolution that maps dy onto dx, for stride-1 convolutions on CPUs
/// with AVX-512 or AVX2: cin and cout swap, and each side's padding becomes the
/// kernel's size less one less the other side's. None elsewhere (and
/// where a padding outgrows the kernel).
fn transposed(g: &Geometry) -> Option<Geometry> {
    if g.stride != [1, 1] || !panel::available() {
        return None;
    }
    let [kh, kw] = g.kernel;
    let [top, bottom, left, right] = g.pad;
    let (oh, ow) = g.out();
    Some(Geometry {
        n: g.n,
        cin: g.cout,
        h: oh,
        w: ow,
        cout: g.cin,
        kernel: g.kernel,
        stride: [1, 1],
        pad: [
            (kh - 1).checked_sub(top)?,
            (kh - 1).checked_sub(bottom)?,
            (kw - 1).checked_sub(left)?,
            (kw - 1).checked_sub(right)?,
        ],
        groups: g.groups,
    })
}

/// The weights of `transposed(g)`: W'[c][o][i][j] = W[o][c][kh-1-i][kw-1-j]
/// within each group.
fn flipped(weight: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (cog, cg, taps) = (g.cout / g.groups, g.cin / g.groups, kh * kw);
    let mut out = vec![0.0f32; weight.len()];
    for group in 0..g.groups {
        for o in 0..cog {
            for c in 0..cg {
                let src = &weight[((group * cog + o) * cg + c) * taps..][..taps];
                let dst = &mut out[((group * cg + c) * cog + o) * taps..][..taps];
                dst.iter_mut()
                    .zip(src.iter().rev())
                    .for_each(|(d, s)| *d = *s);
            }
        }
    }
    out
}

/// The gradients through gemm: dW and db always, dx from columns folded
/// back onto the images when `want_x`.
fn gradients(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    g: &Geometry,
    want_x: bool,
) -> Grads {
    let ohw = g.ohw();
    let (k, cog) = (g.k(), g.cout / g.groups);
    let (image, out_image) = (g.cin * g.h * g.w, g.cout * ohw);
    let (tile, par) = (g.tile(), g.parallelism());
    let fresh = || Partial {
        dw: vec![0.0; weight.len()],
        db: vec![0.0; g.cout],
        col: vec![0.0; k * tile * ohw],
        dcol: vec![0.0; if want_x { k * tile * ohw } else { 0 }],
        dyt: vec![0.0; g.cout * tile * ohw],
    };
    // Tile `t` (images `first..first + images`), its dx when wanted.
    let one = |mut acc: Partial, t: usize, images: usize, dx: Option<&mut [f32]>| -> Partial {
        let first = t * tile;
        let ld = images * ohw;
        let x = &x[first * image..][..images * image];
        for i in 0..images {
            let n = first + i;
            let dy = &dy[n * out_image..][..out_image];
            let y = relu_out.map(|y| &y[n * out_image..][..out_image]);
            for c in 0..g.cout {
                let dst = &mut acc.dyt[c * ld + i * ohw..][..ohw];
                let src = &dy[c * ohw..][..ohw];
                match y {
                    Some(y) => {
                        let y = &y[c * ohw..][..ohw];
                        for ((d, &v), &y) in dst.iter_mut().zip(src).zip(y) {
                            *d = if y > 0.0 { v } else { 0.0 };
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
                acc.db[c] += sum(dst);
            }
        }
        let mut dx = dx;
        for group in 0..g.groups {
            for (i, x) in x.chunks_exact(image).enumerate() {
                im2col(x, g, group, &mut acc.col, ld, i * ohw);
            }
            let dyg = &acc.dyt[group * cog * ld..][..cog * ld];
            // dW_g += dy_g (cog x ld) * cols^T (ld x k)
            let dw = &mut acc.dw[group * cog * k..][..cog * k];
            matmul((cog, k, ld), dw, true, (dyg, ld, 1), (&acc.col, 1, ld), par);
            if let Some(dx) = dx.as_deref_mut() {
                // dcols (k x ld) = W_g^T (k x cog) * dy_g (cog x ld)
                let w = &weight[group * cog * k..][..cog * k];
                matmul(
                    (k, ld, cog),
                    &mut acc.dcol,
                    false,
                    (w, 1, k),
                    (dyg, ld, 1),
                    par,
                );
                for (i, dx) in dx.chunks_exact_mut(image).enumerate() {
                    col2im(&mut acc.dcol, g, group, dx, ld, i * ohw);
                }
            }
        }
        acc
    };
    let tiles = g.n.div_ceil(tile);
    let images = |t: usize| tile.min(g.n - t * tile);
    let mut dx = want_x.then(|| zeros(g.n * image));
    let parallel = matches!(par, Parallelism::None);
    // Each thread sums a fixed, contiguous run of tiles, and the runs' sums
    // are added in order: the float additions then happen in the same order
    // on every call with the same thread count. (rayon's fold-and-reduce
    // splits work as threads come free, so a loaded machine summed dW in
    // another order, and a resumed run drifted from an uninterrupted one.)
    let per = if parallel {
        tiles.div_ceil(rayon::current_num_threads()).max(1)
    } else {
        tiles.max(1)
    };
    let run = |r: usize, dx: Option<&mut [f32]>| -> Partial {
        let ts = r * per..((r + 1) * per).min(tiles);
        match dx {
            Some(dx) => ts
                .zip(dx.chunks_mut(tile * image))
                .fold(fresh(), |acc, (t, dx)| one(acc, t, images(t), Some(dx))),
            None => ts.fold(fresh(), |acc, t| one(acc, t, images(t), None)),
        }
    };
    let runs: Vec<Partial> = match (&mut dx, parallel) {
        (Some(dx), true) => dx
            .par_chunks_mut(per * tile * image)
            .enumerate()
            .map(|(r, dx)| run(r, Some(dx)))
            .collect(),
        (None, true) => (0..tiles.div_ceil(per))
            .into_par_iter()
            .map(|r| run(r, None))
            .collect(),
        (Some(dx), false) => vec![run(0, Some(dx))],
        (None, false) => vec![run(0, None)],
    };
    let total = runs.into_iter().reduce(Partial::add).unwrap_or_else(fresh);
    Grads {
        x: dx,
        weight: total.dw,
        bias: total.db,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight gradient is summed over tiles in one fixed order, so the
    /// same call gives the same bits however the threads were scheduled:
    /// what a resumed run needs to end where an uninterrupted one does.
    #[test]
    fn the_weight_gradient_has_the_same_bits_on_every_call() {
        let g = Geometry {
            n: 512,
            cin: 8,
            h: 4,
            w: 4,
            cout: 16,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1, 1, 1],
            groups: 1,
        };
        let mut seed = 1u64;
        let mut noise = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        };
        let x = noise(g.n * g.cin * g.h * g.w);
        let weight = noise(g.cout * g.cin * 9);
        let dy = noise(g.n * g.cout * g.ohw());
        // More threads than this machine has cores: work is stolen in a
        // different pattern on every call.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .unwrap();
        let first = pool.install(|| backward(&x, &weight, &dy, None, &g, true));
        for _ in 0..30 {
            let again = pool.install(|| backward(&x, &weight, &dy, None, &g, true));
            assert!(again.weight == first.weight, "dW changed between calls");
            assert!(again.bias == first.bias, "db changed between calls");
        }
    }

    /// Two threads, as the tiles are spread in the tests below; None (and
    /// says so) where the CPU has neither AVX-512 nor AVX2, which never
    /// orders a tile.
    fn two_threads() -> Option<rayon::ThreadPool> {
        if !panel::available() {
            eprintln!("this CPU has neither AVX-512 nor AVX2: no ordered tiles");
            return None;
        }
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        )
    }

    /// `forward` of the batch, asserting that each image has the bits of
    /// its convolution alone (batch 1).
    fn each_image_alone(g: &Geometry, x: &[f32], w: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
        let y = forward(x, w, Some(b), g, relu);
        let (image, out) = (g.cin * g.h * g.w, g.cout * g.ohw());
        let alone = Geometry { n: 1, ..*g };
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (j, y) in y.chunks_exact(out).enumerate() {
            let want = forward(&x[j * image..][..image], w, Some(b), &alone, relu);
            assert!(
                bits(y) == bits(&want),
                "{g:?}, tiles of {}: image {j}",
                tiling(g)
            );
        }
        y
    }

    /// A tile ordered to leave out its padding's taps (`Ordered`) gives
    /// each image the bits of that image's convolution alone (batch 1:
    /// columns in the plain order, every tap summed, the weights read
    /// where they lie): the taps left out add only zeros. Small maps and
    /// 12 x 12 ones (shifted planes at batch 1), a last tile smaller than
    /// the rest (gathered in the plain order), a stride of 2, deeper than
    /// one pass of k (the tiles resume from their scattered outputs), bias
    /// and ReLU; on two threads.
    #[test]
    fn ordered_tiles_give_each_image_its_own_bits() {
        let Some(pool) = two_threads() else { return };
        let noise = |n: usize, seed: u64| super::super::noise(n, seed);
        // (n, cin, h, cout, kernel, stride, ordered)
        let cases = [
            (16, 5, 6, 12, 3, 1, true),
            (17, 5, 6, 12, 3, 1, true),
            (8, 6, 12, 10, 5, 1, true),
            (16, 4, 13, 9, 3, 2, false),
            (16, 300, 6, 9, 3, 1, true),
        ];
        for (i, (n, cin, h, cout, k, stride, want)) in cases.into_iter().enumerate() {
            let p = (k - 1) / 2;
            let g = Geometry {
                n,
                cin,
                h,
                w: h,
                cout,
                kernel: [k, k],
                stride: [stride, stride],
                pad: [p, k - 1 - p, p, k - 1 - p],
                groups: 1,
            };
            let (x, w, b) = (
                noise(n * cin * h * h, 1 + i as u64),
                noise(cout * cin * k * k, 2),
                noise(cout, 3),
            );
            let relu = i % 2 == 0;
            pool.install(|| {
                let tile = tiling(&g);
                if want {
                    let o = ordered(&g, tile).expect("an ordered tile");
                    assert!(o.gathers.skipped() > 0.05, "{g:?}");
                }
                each_image_alone(&g, &x, &w, &b, relu);
            });
        }
    }

    /// Paddings a compiled program never has but `forward` takes: as wide
    /// as the kernel (blocks of columns that meet nothing but padding run
    /// no taps at all: their bias), and a padded 1x1 kernel (never
    /// ordered). Each image the bits of its convolution alone.
    #[test]
    fn blocks_all_in_the_padding_give_the_bias() {
        let Some(pool) = two_threads() else { return };
        for (kernel, pad, ordered_too) in [(3, 3, true), (1, 1, false)] {
            let g = Geometry {
                n: 16,
                cin: 5,
                h: 6,
                w: 6,
                cout: 12,
                kernel: [kernel, kernel],
                stride: [1, 1],
                pad: [pad; 4],
                groups: 1,
            };
            let noise = |n: usize, seed: u64| super::super::noise(n, seed);
            let x = noise(g.n * g.cin * 36, 4);
            let (w, b) = (noise(g.cout * g.cin * kernel * kernel, 5), noise(g.cout, 6));
            pool.install(|| {
                let plan = Plan::new(&x, &w, Some(&b), &g, false, tiling(&g));
                let is_ordered = matches!(plan.source, Some(Columns::Ordered(_)));
                assert_eq!(is_ordered, ordered_too, "{g:?}");
                let y = each_image_alone(&g, &x, &w, &b, false);
                // Each image's corner meets no input: its bias.
                for (j, y) in y.chunks_exact(g.cout * g.ohw()).enumerate() {
                    assert_eq!(y[0], b[0], "{g:?}: image {j}");
                }
            });
        }
    }

    /// The order puts a tile's top rows first, row by row, then its left
    /// and right columns, then the rest, each image after the other:
    /// every column once.
    #[test]
    fn the_order_groups_columns_by_the_padding_they_meet() {
        let g = Geometry {
            n: 4,
            cin: 1,
            h: 4,
            w: 4,
            cout: 8,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1, 1, 1],
            groups: 1,
        };
        let cols = order(&g, 2);
        let mut sorted = cols.clone();
        sorted.sort();
        assert_eq!(sorted, (0..32).collect::<Vec<_>>());
        // Row 0 of images 0 and 1, then row 3 of each.
        assert_eq!(cols[..8], [0, 1, 2, 3, 16, 17, 18, 19]);
        assert_eq!(cols[8..16], [12, 13, 14, 15, 28, 29, 30, 31]);
        // Column 0 of rows 1 and 2, image after image; then column 3.
        assert_eq!(cols[16..20], [4, 8, 20, 24]);
        assert_eq!(cols[20..24], [7, 11, 23, 27]);
        // The middle.
        assert_eq!(cols[24..], [5, 6, 9, 10, 21, 22, 25, 26]);
    }
}
