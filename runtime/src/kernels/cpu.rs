//! netc's CPU kernels on plain slices, N x C x H x W, row-major. burn's
//! generic pooling walks every window with bounds checks and keeps an index
//! per cell even in inference; netc's LRN as pooling over channels pays for
//! a reshape, a pooling pass and five element-wise passes. These do each job
//! in one or two passes, parallel over images or channel planes.

use super::panel::Isa;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A zeroed buffer for a kernel's output, zeroed by all threads: one
/// thread zeroing (and faulting in) a large buffer while the others wait
/// was a tenth of a squeeze1 training step.
pub fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    if n < 1 << 16 {
        v.resize(n, 0.0);
    } else {
        v.par_extend(rayon::iter::repeat_n(0.0f32, n));
    }
    v
}

/// A kernel's output of `n` values, made chunk by chunk on every thread:
/// `fill(state, i, chunk)` computes the i-th `len`-long chunk (the last may
/// be shorter), with `init()` making each thread's scratch `state`. Each
/// chunk is zeroed just before `fill` gets it, while it is in the thread's
/// cache, rather than the whole buffer in a pass of its own beforehand:
/// that pass wrote every output to memory once more than the kernel did.
pub fn filled<S, I, F>(n: usize, len: usize, init: I, fill: F) -> Vec<f32>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [f32]) + Sync + Send,
{
    let fill = |state: &mut S, i, chunk: &mut [MaybeUninit<f32>]| fill(state, i, zeroed(chunk));
    // SAFETY: `zeroed` writes every value of each chunk.
    unsafe { written(n, len, init, fill) }
}

/// `y` zeroed, as values.
pub(crate) fn zeroed(y: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    y.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was written just above; MaybeUninit<f32> has
    // f32's layout.
    unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `job(state, i, item)` for each item of `items`, each item a job of its
/// own that an idle thread can take, with `init()` making a thread's
/// scratch `state` once per call. With `for_each_init`, rayon ran runs of
/// items (a quarter of a layer's tiles with 2 threads) as one job that no
/// other thread could share, and called `init` once per run: at the end
/// of each layer one thread finished its run while the other slept, 4-10 %
/// of the second thread's time in squeeze1's AVX2 inference, 4-5 % after
/// (`perf` sched events, docs/performance.md). One job per item left
/// `init` once per item, and a pooled tile's scratch is a whole output
/// tile; so each thread keeps its state in a slot of its own.
fn each_job<P, S, I, J>(items: P, init: I, job: J)
where
    P: IndexedParallelIterator,
    S: Send,
    I: Fn() -> S + Sync + Send,
    J: Fn(&mut S, usize, P::Item) + Sync + Send,
{
    let slots: Vec<Mutex<Option<S>>> = (0..rayon::current_num_threads())
        .map(|_| Mutex::new(None))
        .collect();
    items.with_max_len(1).enumerate().for_each(|(i, item)| {
        // A thread that waits inside `job` may take another item of
        // this call while its slot is held: that one gets a fresh state.
        let slot = rayon::current_thread_index()
            .and_then(|t| slots.get(t))
            .and_then(|slot| slot.try_lock().ok());
        match slot {
            Some(mut slot) => job(slot.get_or_insert_with(&init), i, item),
            None => job(&mut init(), i, item),
        }
    });
}

/// `filled` for a kernel that writes every value of its chunk itself (the
/// products of `panel.rs`): no zeroing first, which was 5-8 % of
/// squeeze1's inference. With `poison_new_outputs(true)` (tests) each
/// chunk holds NaNs when `fill` gets it, so that a value left unwritten
/// shows.
///
/// # Safety
/// `fill(state, i, chunk)` writes every value of `chunk`.
pub(crate) unsafe fn written<S, I, F>(n: usize, len: usize, init: I, fill: F) -> Vec<f32>
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
{
    let poison = poisoned();
    let mut v: Vec<f32> = Vec::with_capacity(n);
    let chunks = v.spare_capacity_mut()[..n].par_chunks_mut(len.max(1));
    each_job(chunks, init, |state, i, chunk| {
        poison(chunk);
        fill(state, i, chunk)
    });
    // SAFETY: the chunks cover 0..n, and `fill` wrote each whole (the
    // caller's promise).
    unsafe { v.set_len(n) };
    v
}

static POISON: AtomicBool = AtomicBool::new(false);

/// What `written` and `written_pair` do to a new chunk before their
/// kernel gets it: with `poison_new_outputs(true)`, fill it with NaNs;
/// else nothing.
pub(super) fn poisoned() -> impl Fn(&mut [MaybeUninit<f32>]) + Sync {
    let on = POISON.load(Ordering::Relaxed);
    move |chunk| {
        if on {
            chunk.fill(MaybeUninit::new(f32::NAN));
        }
    }
}

/// Whether `written` and `written_pair` fill each new chunk with NaNs
/// before its kernel writes it: for tests, which then see any value a
/// kernel leaves unwritten, whatever the allocator hands out.
pub fn poison_new_outputs(yes: bool) {
    POISON.store(yes, Ordering::Relaxed);
}

/// `y` as the values written into it.
///
/// # Safety
/// Every value of `y` was written.
pub(crate) unsafe fn assume_written(y: &[MaybeUninit<f32>]) -> &[f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the values are
    // initialized (the caller's promise).
    unsafe { &*(y as *const [MaybeUninit<f32>] as *const [f32]) }
}

/// `y` as slots to write into.
///
/// # Safety
/// Only f32 values are written through the result (never
/// `MaybeUninit::uninit()`), so `y` still holds values after.
pub(crate) unsafe fn slots(y: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(y as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Two outputs made together, as `written` makes one: chunk i of each
/// (`len.0` and `len.1` values, the last ones shorter) goes to `fill(state,
/// i, a, b)`, which writes every value of both (no zeros first: zeroing
/// squeeze1's first convolution's output and its pooling took a pass over
/// 24 MB a training step). Both must have as many chunks: a convolution's
/// output and its pooling, image tile by image tile. With
/// `poison_new_outputs(true)` (tests) each chunk holds NaNs when `fill`
/// gets it.
///
/// # Safety
/// `fill(state, i, a, b)` writes every value of `a` and of `b`.
pub(crate) unsafe fn written_pair<S, I, F>(
    n: (usize, usize),
    len: (usize, usize),
    init: I,
    fill: F,
) -> (Vec<f32>, Vec<f32>)
where
    S: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]) + Sync + Send,
{
    let poison = poisoned();
    let len = (len.0.max(1), len.1.max(1));
    assert_eq!(n.0.div_ceil(len.0), n.1.div_ceil(len.1), "as many chunks");
    let (mut a, mut b): (Vec<f32>, Vec<f32>) = (Vec::with_capacity(n.0), Vec::with_capacity(n.1));
    let chunks = a.spare_capacity_mut()[..n.0]
        .par_chunks_mut(len.0)
        .zip(b.spare_capacity_mut()[..n.1].par_chunks_mut(len.1));
    each_job(chunks, init, |state, i, (a, b)| {
        poison(a);
        poison(b);
        fill(state, i, a, b)
    });
    // SAFETY: the chunks of each cover it (as many of them, asserted) and
    // `fill` wrote each whole (the caller's promise).
    unsafe {
        a.set_len(n.0);
        b.set_len(n.1);
    }
    (a, b)
}

/// An output of `n` values made of copies, `len` values a chunk on every
/// thread: chunk i is the two slices `parts(i)` one after the other, which
/// fill it. Each value is written once: `filled` zeroes a chunk before its
/// kernel writes it, a pass that copies do not need (in squeeze1's
/// training, its concatenations and their gradients' splits).
pub fn copied<'a, P>(n: usize, len: usize, parts: P) -> Vec<f32>
where
    P: Fn(usize) -> [&'a [f32]; 2] + Sync + Send,
{
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(len.max(1))
        .enumerate()
        .for_each(|(i, chunk)| {
            let [a, b] = parts(i);
            assert_eq!(a.len() + b.len(), chunk.len(), "the parts fill the chunk");
            let (to_a, to_b) = chunk.split_at_mut(a.len());
            for (to, from) in [(to_a, a), (to_b, b)] {
                // SAFETY: `to` holds `from.len()` values (split above),
                // MaybeUninit<f32> has f32's layout, and a new buffer
                // overlaps no source. (`memcpy`: an element loop ran in
                // 16-byte moves.)
                unsafe {
                    std::ptr::copy_nonoverlapping(from.as_ptr(), to.as_mut_ptr().cast(), from.len())
                };
            }
        });
    // SAFETY: the chunks cover 0..n and each was written whole (asserted).
    unsafe { v.set_len(n) };
    v
}

/// A pooling window with its padding (top, bottom, left, right), in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4],
}

impl Window {
    /// Output height and width for an input plane of `h` x `w`.
    pub fn out(&self, h: usize, w: usize) -> (usize, usize) {
        let [top, bottom, left, right] = self.pad;
        (
            (h + top + bottom - self.kernel[0]) / self.stride[0] + 1,
            (w + left + right - self.kernel[1]) / self.stride[1] + 1,
        )
    }

    /// The input rows (or columns) a window starting at output `o` covers,
    /// clipped to the input: padding holds -inf, so it never wins.
    pub(crate) fn span(
        o: usize,
        stride: usize,
        kernel: usize,
        pad: usize,
        size: usize,
    ) -> (usize, usize) {
        let start = (o * stride) as isize - pad as isize;
        let end = (start + kernel as isize).min(size as isize);
        (start.max(0) as usize, end.max(0) as usize)
    }
}

/// `v` if it beats `best`; a NaN always wins, so that it is not hidden.
/// Chosen with a bit mask, not a branch, so that loops of it need no
/// branch per value.
#[inline]
pub(super) fn larger(best: f32, v: f32) -> f32 {
    let take = (v > best) | v.is_nan();
    let mask = (take as u32).wrapping_neg();
    f32::from_bits((v.to_bits() & mask) | (best.to_bits() & !mask))
}

/// Each output row's (or column's) first and end input row (or column).
type Spans = Vec<(usize, usize)>;

/// Max pooling of planes `h` x `w` through one window, planned once per
/// call: the input rows and columns each output row and column covers, and
/// which row loop runs. The convolution that feeds a pooling layer
/// (`conv::forward_pooled`) pools each tile of its output with it while
/// the tile is in cache.
pub(crate) struct Pooling {
    h: usize,
    w: usize,
    win: Window,
    rows: Spans,
    cols: Spans,
    /// Which loop takes each output row.
    vectors: Rows,
    /// Whether the input may hold a NaN. A fused ReLU's output holds none
    /// (`without_nan`): there a vector maximum alone gives `larger`'s bits,
    /// and the registers' loops leave out the NaN's compare and blend (one
    /// instruction for each value instead of three).
    nan: bool,
}

/// How a pooling's output rows are computed. For strides across of 1 and
/// 2: on CPUs with AVX-512, in `maxpool512.rs` (forward: planes up to 32
/// wide in registers, wider ones through scratch rows padded with -inf;
/// the gradient a plane's output row at a time on the planes kept in
/// registers, else searching 16 windows at once); on CPUs with AVX2 only,
/// in `maxpool256.rs`, 8 values a step (planes 8 to 32 wide in registers,
/// split into even and odd columns for windows 2 apart, whose gradient
/// takes an output row at a time, the others through scratch rows).
/// Else in two passes here, down the
/// window's rows into `best` and then across (the gradient: a window at a
/// time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    Portable,
    Avx2,
    Avx512,
}

impl Pooling {
    pub(crate) fn new(h: usize, w: usize, win: Window) -> Pooling {
        let (oh, ow) = win.out(h, w);
        let rows = (0..oh)
            .map(|i| Window::span(i, win.stride[0], win.kernel[0], win.pad[0], h))
            .collect();
        let cols = (0..ow)
            .map(|j| Window::span(j, win.stride[1], win.kernel[1], win.pad[2], w))
            .collect();
        let vectors = match (super::panel::vectors(), win.stride[1]) {
            (Some(Isa::Avx512), 1 | 2) => Rows::Avx512,
            (Some(Isa::Avx2), 1 | 2) => Rows::Avx2,
            _ => Rows::Portable,
        };
        Pooling {
            h,
            w,
            win,
            rows,
            cols,
            vectors,
            nan: true,
        }
    }

    /// The pooling of an input that holds no NaN: a ReLU's output, where
    /// every NaN became 0 (`f32::max`, `_mm*_max_ps` with 0 second).
    pub(crate) fn without_nan(self) -> Pooling {
        Pooling { nan: false, ..self }
    }

    /// Output values per plane.
    pub(crate) fn out(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// The window's width, left padding and stride across.
    fn across(&self) -> (usize, usize, usize) {
        (self.win.kernel[1], self.win.pad[2], self.win.stride[1])
    }

    /// A thread's scratch for `run`: none for the rows in registers; for the
    /// other vector loops, a row per output row of a plane; for the
    /// portable loop, one row of the plane.
    pub(crate) fn scratch(&self) -> Vec<f32> {
        match self.vectors {
            _ if self.in_registers() => Vec::new(),
            Rows::Avx512 | Rows::Avx2 => {
                vec![f32::NEG_INFINITY; self.rows.len() * self.scratch_row()]
            }
            Rows::Portable => vec![0.0f32; self.w],
        }
    }

    /// Whether `run` keeps each plane's rows in registers
    /// (`maxpool512::planes`, `maxpool256::planes`).
    fn in_registers(&self) -> bool {
        let (kw, ..) = self.across();
        let (w, ow) = (self.w, self.cols.len());
        match self.vectors {
            Rows::Avx512 => super::maxpool512::in_registers(w, ow, kw),
            Rows::Avx2 => {
                super::maxpool256::in_registers(w, ow, kw)
                    || super::maxpool256::in_pairs(w, ow, self.across())
            }
            Rows::Portable => false,
        }
    }

    /// The length of each of the vector loops' scratch rows.
    fn scratch_row(&self) -> usize {
        let (kw, left, sw) = self.across();
        super::maxpool512::scratch_row(self.w, left, self.cols.len(), kw, sw)
    }

    /// The planes of `x` pooled into `y`, plane after plane: every value
    /// of `y` written (whole planes), so `y` needs no zeros first.
    pub(crate) fn run(&self, x: &[f32], y: &mut [MaybeUninit<f32>], scratch: &mut [f32]) {
        let (h, w, ow) = (self.h, self.w, self.cols.len());
        // Whole planes, each with its input: every loop below writes each.
        let out = self.out();
        assert!(y.len().is_multiple_of(out) && x.len() / (h * w) >= y.len() / out.max(1));
        #[cfg(target_arch = "x86_64")]
        if self.vectors != Rows::Portable {
            let (kw, left, sw) = self.across();
            if self.in_registers() {
                // SAFETY: `new` chose these rows for this CPU and stride,
                // and `in_registers` holds.
                unsafe {
                    match self.nan {
                        true => self.in_registers_run::<true>(x, y),
                        false => self.in_registers_run::<false>(x, y),
                    }
                };
                return;
            }
            let len = self.scratch_row();
            assert!(
                scratch.len() >= self.rows.len() * len,
                "a scratch row per output row"
            );
            for (plane, y) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(self.out())) {
                // Every row down, then every row across: a row read right
                // after its stores would wait for them.
                for (row, &rows) in scratch.chunks_exact_mut(len).zip(&self.rows) {
                    // SAFETY: `new` chose these rows for this CPU; the
                    // scratch rows are `scratch_row` long; the rows lie in
                    // the plane.
                    unsafe {
                        match self.vectors {
                            Rows::Avx512 => super::maxpool512::down(plane, w, rows, left, row),
                            _ => super::maxpool256::down(plane, w, rows, left, row),
                        }
                    };
                }
                for (row, y) in scratch.chunks_exact(len).zip(y.chunks_exact_mut(ow)) {
                    // SAFETY: as above, and the stride is 1 or 2.
                    unsafe {
                        match self.vectors {
                            Rows::Avx512 => super::maxpool512::across(row, (kw, sw), y),
                            _ => super::maxpool256::across(row, (kw, sw), y),
                        }
                    };
                }
            }
            return;
        }
        for (plane, y) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(self.out())) {
            for (y, &(r0, r1)) in y.chunks_exact_mut(ow).zip(&self.rows) {
                let best = &mut scratch[..w];
                best.fill(f32::NEG_INFINITY);
                for row in plane[r0 * w..r1 * w].chunks_exact(w) {
                    for (b, &v) in best.iter_mut().zip(row) {
                        *b = larger(*b, v);
                    }
                }
                across(best, y, &self.cols);
            }
        }
    }

    /// The planes of `x` pooled into `y` in registers, with or without the
    /// NaN blend.
    ///
    /// # Safety
    /// The CPU has `self.vectors`' ISA, and `in_registers` holds.
    #[cfg(target_arch = "x86_64")]
    unsafe fn in_registers_run<const NAN: bool>(&self, x: &[f32], y: &mut [MaybeUninit<f32>]) {
        use super::{maxpool256 as avx2, maxpool512 as avx512};
        let (h, w, ow) = (self.h, self.w, self.cols.len());
        let (kw, left, sw) = self.across();
        let (rows, cols, across) = (&self.rows, (left, ow), (kw, sw));
        // SAFETY: the caller's; the spans lie in the plane.
        unsafe {
            match self.vectors {
                Rows::Avx512 => avx512::planes::<NAN>(x, (h, w), rows, cols, across, y),
                _ if avx2::in_pairs(w, ow, (kw, left, sw)) => {
                    avx2::pairs::<NAN>(x, (h, w), rows, cols, kw, y)
                }
                _ => avx2::planes::<NAN>(x, (h, w), rows, cols, across, y),
            }
        }
    }

    /// The gradient of the planes of `x` (`y` and `dy` their outputs) into
    /// `dx`, as long as `x`: each plane's `backward` onto zeros, then with
    /// `relu` the gradient of the fused ReLU whose output `x` is
    /// (`relu_gate`). Planes whose rows fit in registers go to one call of
    /// the vector kernels, which route each output row's gradients with
    /// each row of its windows loaded once, and make their tables once for
    /// all the planes.
    fn backward_planes(
        &self,
        x: &[f32],
        (y, dy): (&[f32], &[f32]),
        dx: &mut [MaybeUninit<f32>],
        relu: bool,
    ) {
        let (hw, out) = (self.h * self.w, self.out());
        assert!(x.len().is_multiple_of(hw) && dx.len() == x.len());
        assert!(y.len() == x.len() / hw * out && dy.len() == y.len());
        #[cfg(target_arch = "x86_64")]
        {
            let (w, ow) = (self.w, self.cols.len());
            let (kw, left, sw) = self.across();
            let (hw, rows, cols) = ((self.h, w), &self.rows[..], (left, ow));
            // SAFETY: `new` chose these rows for this CPU and stride (1 or
            // 2); each one's sizes hold; the rows lie in the planes, `y`
            // and `dy` are their outputs and `dx` as long as `x`.
            match self.vectors {
                Rows::Avx512 if super::maxpool512::in_registers(w, ow, kw) => {
                    use super::maxpool512::planes_backward;
                    let (across, outputs) = ((kw, sw), (y, dy));
                    match kw {
                        3 => unsafe {
                            planes_backward::<3>(x, hw, rows, cols, across, outputs, dx, relu)
                        },
                        _ => unsafe {
                            planes_backward::<0>(x, hw, rows, cols, across, outputs, dx, relu)
                        },
                    }
                    return;
                }
                Rows::Avx2 if super::maxpool256::in_pairs(w, ow, (kw, left, sw)) => {
                    use super::maxpool256::pairs_backward;
                    unsafe { pairs_backward(x, hw, rows, cols, kw, (y, dy), dx, relu) };
                    return;
                }
                _ => {}
            }
        }
        let planes = x.chunks_exact(hw).zip(dx.chunks_exact_mut(hw));
        let outputs = y.chunks_exact(out).zip(dy.chunks_exact(out));
        for ((plane, dx), outputs) in planes.zip(outputs) {
            let dx = zeroed(dx);
            self.backward(plane, outputs, dx);
            if relu {
                relu_gate(plane, dx);
            }
        }
    }

    /// One plane's gradient, row by row: each output's (`y`, `dy`) added
    /// to `dx` at the first cell of its window, row by row, that holds the
    /// output's value.
    fn backward(&self, plane: &[f32], (y, dy): (&[f32], &[f32]), dx: &mut [f32]) {
        let (w, ow) = (self.w, self.cols.len());
        for (i, &(r0, r1)) in self.rows.iter().enumerate() {
            let row = (&y[i * ow..][..ow], &dy[i * ow..][..ow]);
            #[cfg(target_arch = "x86_64")]
            if self.vectors != Rows::Portable {
                let (kw, left, sw) = self.across();
                let rows = (r0, r1);
                // SAFETY: `new` chose these rows for this CPU and stride;
                // the rows lie in the plane and in its gradient.
                unsafe {
                    match self.vectors {
                        Rows::Avx512 => {
                            super::maxpool512::backward_row(plane, w, rows, left, (kw, sw), row, dx)
                        }
                        _ => {
                            super::maxpool256::backward_row(plane, w, rows, left, (kw, sw), row, dx)
                        }
                    }
                };
                continue;
            }
            backward_row(plane, w, (r0, r1), &self.cols, row, dx);
        }
    }
}

/// How many planes a thread takes at a time: about 64 KiB of output, whole
/// planes (a plane is a few hundred values, too little work to hand to a
/// thread), and a share for every thread at batch 1.
fn per_thread(out: usize, planes: usize) -> usize {
    let threads = rayon::current_num_threads();
    ((1 << 14) / out.max(1)).clamp(1, planes.div_ceil(threads).max(1))
}

/// Max pooling of the planes (`h` x `w` each) of `x`. Two passes per output
/// row: down the window's rows for every column at once (this vectorizes),
/// then across each window's columns.
pub fn max_pool(x: &[f32], h: usize, w: usize, win: Window) -> Vec<f32> {
    pool(x, &Pooling::new(h, w, win))
}

/// `max_pool` as `pooling` plans it.
pub(crate) fn pool(x: &[f32], pooling: &Pooling) -> Vec<f32> {
    let (h, w) = (pooling.h, pooling.w);
    let (planes, out) = (x.len() / (h * w), pooling.out());
    let per = per_thread(out, planes);
    let fill = |scratch: &mut Vec<f32>, chunk, y: &mut [MaybeUninit<f32>]| {
        pooling.run(&x[chunk * per * h * w..], y, scratch)
    };
    // SAFETY: `run` writes every value of each chunk (whole planes).
    unsafe { written(planes * out, per * out, || pooling.scratch(), fill) }
}

/// The maximum of each window's columns in `best`, one row of outputs.
/// 3-wide windows, the usual ones, are unrolled rather than folded over a
/// slice of each window.
fn across(best: &[f32], y: &mut [MaybeUninit<f32>], cols: &[(usize, usize)]) {
    for (y, &(c0, c1)) in y.iter_mut().zip(cols) {
        y.write(if c1 - c0 == 3 {
            let w = &best[c0..c0 + 3];
            larger(larger(w[0], w[1]), w[2])
        } else {
            best[c0..c1]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| larger(m, v))
        });
    }
}

/// The gradient of max pooling: each output's gradient goes to the first
/// cell of its window (row by row) that holds the output's value.
pub fn max_pool_backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    h: usize,
    w: usize,
    win: Window,
) -> Vec<f32> {
    max_pool_relu_backward(x, (y, dy), (h, w), win, false)
}

/// `max_pool_backward`, then with `relu` the gradient of the fused ReLU
/// whose output `x` is: 0 wherever `x` is not positive, as
/// `conv::relu_mask` passes it (the same bits). Each plane is masked just
/// after its gradient is made, while in cache, instead of in a pass of
/// its own over the whole gradient (which read the gradient and the maps
/// and wrote the masked gradient: 21 MB for alex4's conv2 at batch 128).
pub fn max_pool_relu_backward(
    x: &[f32],
    (y, dy): (&[f32], &[f32]),
    (h, w): (usize, usize),
    win: Window,
    relu: bool,
) -> Vec<f32> {
    let pooling = Pooling::new(h, w, win);
    let out = pooling.out();
    // Whole planes: `backward_planes` writes every value of each.
    assert!(x.len().is_multiple_of(h * w) && y.len() == x.len() / (h * w) * out);
    let per = per_thread(out, x.len() / (h * w));
    let fill = |_: &mut (), chunk, dx: &mut [MaybeUninit<f32>]| {
        let (first, planes) = (chunk * per, dx.len() / (h * w));
        let x = &x[first * h * w..][..planes * h * w];
        let outputs = (
            &y[first * out..][..planes * out],
            &dy[first * out..][..planes * out],
        );
        pooling.backward_planes(x, outputs, dx, relu);
    };
    // SAFETY: `backward_planes` writes every value of each chunk (whole
    // planes, asserted).
    unsafe { written(x.len(), per * h * w, || (), fill) }
}

/// The vector searches' scatter: `dy[l]` added to `dx` at `cells[l]` for
/// each lane `l` set in `found`, lowest first, so in the order of the
/// outputs (the portable loop's order, hence its bits).
///
/// # Safety
/// For each set lane, `l` lies in `dy` and `cells[l]` in `dx`.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn add_found(dx: &mut [f32], cells: &[i32], mut found: u32, dy: &[f32]) {
    while found != 0 {
        let l = found.trailing_zeros() as usize;
        // SAFETY: the caller's.
        unsafe { *dx.get_unchecked_mut(*cells.get_unchecked(l) as usize) += *dy.get_unchecked(l) };
        found &= found - 1;
    }
}

/// The gradient of a fused ReLU whose output is `x`, applied to `dx`: 0
/// wherever `x` is not positive (a NaN included), as `conv::relu_mask`
/// passes it.
pub(crate) fn relu_gate(x: &[f32], dx: &mut [f32]) {
    for (d, &x) in dx.iter_mut().zip(x) {
        *d = if x > 0.0 { *d } else { 0.0 };
    }
}

/// One output row's share of `max_pool_backward`, a window at a time.
fn backward_row(
    plane: &[f32],
    w: usize,
    (r0, r1): (usize, usize),
    cols: &[(usize, usize)],
    (y, dy): (&[f32], &[f32]),
    dx: &mut [f32],
) {
    for ((&top, &dy), &(c0, c1)) in y.iter().zip(dy).zip(cols) {
        let won = |v: f32| v == top || (top.is_nan() && v.is_nan());
        'window: for r in r0..r1 {
            for c in c0..c1 {
                if won(plane[r * w + c]) {
                    dx[r * w + c] += dy;
                    break 'window;
                }
            }
        }
    }
}

/// TensorFlow's local response normalization over channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    pub radius: usize,
    pub bias: f32,
    pub alpha: f32,
    pub beta: f32,
}

impl Lrn {
    /// s^-beta, with a fast path for the usual beta of 0.75.
    #[inline]
    pub(crate) fn pow_neg_beta(&self, s: f32) -> f32 {
        if self.beta == 0.75 {
            let r = s.sqrt();
            1.0 / (r * r.sqrt())
        } else {
            s.powf(-self.beta)
        }
    }
}

/// Sums `sq` over the channels within `radius` of each channel, one image.
fn window_sums(sq: &[f32], c: usize, hw: usize, radius: usize, out: &mut [f32]) {
    for ch in 0..c {
        let o = &mut out[ch * hw..(ch + 1) * hw];
        o.fill(0.0);
        for k in ch.saturating_sub(radius)..(ch + radius + 1).min(c) {
            for (a, b) in o.iter_mut().zip(&sq[k * hw..(k + 1) * hw]) {
                *a += b;
            }
        }
    }
}

/// LRN of `x` (images of `c` x `hw`): returns y and the scale
/// s = bias + alpha * window sum of x^2, which the backward pass needs.
pub fn lrn(x: &[f32], c: usize, hw: usize, p: Lrn) -> (Vec<f32>, Vec<f32>) {
    let mut y = zeros(x.len());
    let mut s = zeros(x.len());
    y.par_chunks_mut(c * hw)
        .zip(s.par_chunks_mut(c * hw))
        .zip(x.par_chunks(c * hw))
        .for_each(|((y, s), x)| {
            let sq: Vec<f32> = x.iter().map(|v| v * v).collect();
            window_sums(&sq, c, hw, p.radius, s);
            for ((y, s), x) in y.iter_mut().zip(s.iter_mut()).zip(x) {
                *s = p.bias + p.alpha * *s;
                *y = x * p.pow_neg_beta(*s);
            }
        });
    (y, s)
}

/// The gradient of LRN, from its input, its scale and the output's gradient:
/// dx_c = dy_c s_c^-b - 2 a b x_c sum over the window of dy_j x_j s_j^(-b-1).
pub fn lrn_backward(x: &[f32], s: &[f32], dy: &[f32], c: usize, hw: usize, p: Lrn) -> Vec<f32> {
    let mut dx = zeros(x.len());
    let n = c * hw;
    dx.par_chunks_mut(n).enumerate().for_each(|(i, dx)| {
        let (x, s, dy) = (&x[i * n..][..n], &s[i * n..][..n], &dy[i * n..][..n]);
        // s^-beta once per cell: both terms need it.
        let f: Vec<f32> = s.iter().map(|&s| p.pow_neg_beta(s)).collect();
        let q: Vec<f32> = (0..n).map(|k| dy[k] * x[k] * f[k] / s[k]).collect();
        let mut sums = vec![0.0f32; n];
        window_sums(&q, c, hw, p.radius, &mut sums);
        let k2 = 2.0 * p.alpha * p.beta;
        for k in 0..n {
            dx[k] = dy[k] * f[k] - k2 * x[k] * sums[k];
        }
    });
    dx
}

/// Two N x C x H x W tensors side by side along channels: `a` holds `ca`
/// channels, `b` `cb`, `hw` cells per channel.
pub fn concat(a: &[f32], b: &[f32], ca: usize, cb: usize, hw: usize) -> Vec<f32> {
    let (ia, ib) = (ca * hw, cb * hw);
    copied(a.len() + b.len(), ia + ib, |n| {
        [&a[n * ia..][..ia], &b[n * ib..][..ib]]
    })
}

/// A concatenation's gradient `dy` split back into its parts, each part
/// (`c` channels, `hw` cells each) as its own tensor; where a part's flag
/// says its channels came through a ReLU, each value is kept only where the
/// joined output `y` is positive: the gradient through that ReLU, in the
/// same pass (`conv::backward` masks with `y > 0` as this does).
pub fn split_masked(dy: &[f32], y: &[f32], parts: &[(usize, bool)], hw: usize) -> Vec<Vec<f32>> {
    assert_eq!(dy.len(), y.len());
    let stride = parts.iter().map(|p| p.0).sum::<usize>() * hw;
    let n = dy.len().checked_div(stride).unwrap_or(0);
    let mut at = 0;
    let mut out = Vec::with_capacity(parts.len());
    for &(c, relu) in parts {
        let len = c * hw;
        let mut v: Vec<f32> = Vec::with_capacity(n * len);
        v.spare_capacity_mut()[..n * len]
            .par_chunks_mut(len.max(1))
            .enumerate()
            .for_each(|(i, to)| {
                let from = &dy[i * stride + at..][..len];
                let y = &y[i * stride + at..][..len];
                for ((to, &d), &y) in to.iter_mut().zip(from).zip(y) {
                    to.write(if !relu || y > 0.0 { d } else { 0.0 });
                }
            });
        // SAFETY: the image chunks cover 0..n * len, and each value of a
        // chunk was written (`from` is as long).
        unsafe { v.set_len(n * len) };
        out.push(v);
        at += len;
    }
    out
}

/// `b` added to `a`, value by value, on every thread.
pub fn add_into(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    const CHUNK: usize = 1 << 14;
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// The inverse of `concat`: the first `ca` channels of each image, and the rest.
pub fn split(y: &[f32], ca: usize, cb: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let (ia, ib) = (ca * hw, cb * hw);
    let n = y.len() / (ia + ib);
    let part =
        |at: usize, len: usize| copied(n * len, len, |i| [&y[i * (ia + ib) + at..][..len], &[]]);
    (part(0, ia), part(ia, ib))
}

#[cfg(test)]
mod tests {
    use super::{each_job, larger, max_pool, max_pool_backward, slots, Isa, Rows, Window};
    use crate::kernels::panel::has;
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every item once, with its index; each thread's state made once and
    /// kept across its items, unless a job that waits inside takes another
    /// item of the same call, which then gets a state of its own.
    #[test]
    fn each_job_runs_every_item_once_with_one_state_per_thread() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = vec![0usize; 997];
            let inits = AtomicUsize::new(0);
            let init = || {
                inits.fetch_add(1, Ordering::Relaxed);
                Vec::<usize>::new()
            };
            each_job(out.par_chunks_mut(1), init, |seen, i, chunk| {
                seen.push(i);
                chunk[0] += i + 1;
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i + 1));
            assert!((1..=3).contains(&inits.load(Ordering::Relaxed)));

            // Jobs that fork while holding their state.
            let inits = AtomicUsize::new(0);
            let mut out = vec![0usize; 64];
            let init = || inits.fetch_add(1, Ordering::Relaxed);
            each_job(out.par_chunks_mut(2), init, |_, i, chunk| {
                let (a, b) = rayon::join(|| 2 * i, || 2 * i + 1);
                chunk.copy_from_slice(&[a, b]);
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i));
            assert!(inits.load(Ordering::Relaxed) >= 1);
        });
    }

    /// A NaN in a window is its maximum, and its gradient goes to the first
    /// NaN of the window, row by row.
    #[test]
    fn max_pooling_passes_a_nan_on_and_routes_its_gradient_to_the_first() {
        let nan = f32::NAN;
        let x = [1.0, 2.0, nan, nan, 5.0, 6.0, 7.0, 8.0, 9.0];
        let win = Window {
            kernel: [3, 3],
            stride: [1, 1],
            pad: [0; 4],
        };
        let y = max_pool(&x, 3, 3, win);
        assert!(y.len() == 1 && y[0].is_nan(), "{y:?}");
        let dx = max_pool_backward(&x, &y, &[1.0], 3, 3, win);
        assert_eq!(dx, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// The AVX-512 rows choose as `larger` does, bit for bit: on a tie of
    /// 0.0 and -0.0 the first of the window stays, and a NaN wins.
    #[test]
    fn max_pooling_keeps_the_first_zero_of_a_tie() {
        let win = Window {
            kernel: [1, 2],
            stride: [1, 2],
            pad: [0; 4],
        };
        let y = max_pool(&[0.0, -0.0, -0.0, 0.0, 1.0, f32::NAN], 1, 6, win);
        assert_eq!(y[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(y[1].to_bits(), (-0.0f32).to_bits());
        assert!(y[2].is_nan());
    }

    /// Planes full of ties (a few levels, zeros of both signs, NaNs, -inf)
    /// and windows over them: 6 fixed and 300 of random sizes, planes 1-70
    /// wide, windows up to 4 x 8, padding short of a whole window, with
    /// padding on the left and a last, shorter vector of outputs.
    fn tied_planes() -> Vec<(usize, usize, Window, Vec<f32>)> {
        let levels = [0.0, -0.0, 1.0, f32::NAN, f32::NEG_INFINITY, 2.0, 1.0, 0.0];
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let window = |kernel, stride, pad| super::Window {
            kernel,
            stride,
            pad,
        };
        let mut cases = vec![
            (9, 37, window([3, 3], [2, 2], [0, 1, 0, 1])),
            (8, 20, window([3, 3], [2, 2], [1, 1, 1, 1])),
            (5, 33, window([2, 3], [1, 1], [0, 1, 1, 1])),
            (6, 7, window([3, 2], [1, 2], [0; 4])),
            // AVX2's `pairs` on a row of one vector.
            (3, 8, window([1, 3], [1, 2], [0, 0, 1, 1])),
            // A first window wholly in the left padding (AVX2's `pairs`).
            (3, 31, window([1, 2], [1, 2], [0, 0, 2, 0])),
        ];
        // And 300 of random sizes: planes 1-70 wide, windows up to 4 x 8,
        // padding short of a whole window.
        for _ in 0..300 {
            let (kh, kw) = (1 + next() % 4, 1 + next() % 8);
            let stride = [1 + next() % 3, 1 + next() % 2];
            let pad = [next() % kh, next() % kh, next() % kw, next() % kw];
            let h = (1 + next() % 9).max(kh.saturating_sub(pad[0] + pad[1]));
            let w = (1 + next() % 70).max(kw.saturating_sub(pad[2] + pad[3]));
            cases.push((h, w, window([kh, kw], stride, pad)));
        }
        cases
            .into_iter()
            .map(|(h, w, win)| {
                let x = (0..h * w).map(|_| levels[next() % levels.len()]).collect();
                (h, w, win, x)
            })
            .collect()
    }

    /// The AVX-512 and AVX2 rows pool as the portable loop does, bit for
    /// bit, on `tied_planes` (whose strides across are all 1 or 2), each
    /// where the CPU has it: registers on the planes up to 32 wide
    /// (AVX2's: 8 to 32, up to 16 outputs a row), scratch rows on the
    /// others.
    #[test]
    fn the_vector_rows_pool_as_the_portable_loop() {
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let planes = tied_planes();
        let mut compared = 0;
        for (h, w, win, x) in &planes {
            let (h, w, win) = (*h, *w, *win);
            // And the plane without its NaNs, pooled as a ReLU's output
            // is (`without_nan`): the loops leave out the NaN's blend.
            let finite: Vec<f32> = x
                .iter()
                .map(|&v| if v.is_nan() { 3.0 } else { v })
                .collect();
            for (x, nan) in [(x, true), (&finite, false)] {
                let pool = |vectors| {
                    let mut pooling = super::Pooling::new(h, w, win);
                    if !nan {
                        pooling = pooling.without_nan();
                    }
                    pooling.vectors = vectors;
                    // A NaN no pooling makes: an output left unwritten shows.
                    let mut y = vec![f32::from_bits(0x7fc0_dead); pooling.out()];
                    // SAFETY: `run` writes only values.
                    pooling.run(x, unsafe { slots(&mut y) }, &mut pooling.scratch());
                    bits(&y)
                };
                let portable = pool(Rows::Portable);
                // The vector rows take only these.
                assert!(win.stride[1] == 1 || win.stride[1] == 2);
                for (rows, cpu_has) in [
                    (Rows::Avx512, has(Isa::Avx512)),
                    (Rows::Avx2, has(Isa::Avx2)),
                ] {
                    if cpu_has {
                        let ours = pool(rows);
                        assert_eq!(ours, portable, "{rows:?}, NaN {nan}: {h} x {w}, {win:?}");
                        compared += 1;
                    }
                }
            }
        }
        // Not a quiet pass on a CPU with neither.
        eprintln!("{compared} comparisons on {} planes", planes.len());
        assert!(compared >= planes.len() || !has(Isa::Avx2));
    }

    /// A window wholly in the top padding (pooling code outside the
    /// compiler's checks may ask for one) gives -inf on every loop.
    #[test]
    fn a_window_wholly_in_the_padding_gives_minus_infinity() {
        let win = Window {
            kernel: [2, 3],
            stride: [1, 1],
            pad: [2, 0, 1, 1],
        };
        let x: Vec<f32> = (0..20).map(|v| v as f32).collect();
        for vectors in [Rows::Portable, Rows::Avx512, Rows::Avx2] {
            if vectors == Rows::Avx512 && !has(Isa::Avx512)
                || vectors == Rows::Avx2 && !has(Isa::Avx2)
            {
                continue;
            }
            let mut pooling = super::Pooling::new(4, 5, win);
            pooling.vectors = vectors;
            let mut y = vec![0.0; pooling.out()];
            // SAFETY: `run` writes only values.
            pooling.run(&x, unsafe { slots(&mut y) }, &mut pooling.scratch());
            assert_eq!(y.len(), 25, "{vectors:?}");
            assert!(
                y[..5].iter().all(|&v| v == f32::NEG_INFINITY),
                "{vectors:?}: {y:?}"
            );
            assert_eq!(&y[5..10], &[1.0, 2.0, 3.0, 4.0, 4.0], "{vectors:?}");
        }
    }

    /// The AVX-512 and AVX2 searches (whole planes, or rows) route every
    /// gradient where the portable loop does, bit for bit, on `tied_planes`,
    /// each where the CPU has it: each plane followed by four more, the
    /// plane without its NaNs, the two reversed, and the plane again (one
    /// call's tables serve all five; AVX-512 takes planes up to 16 wide
    /// with up to 8 outputs a row two at a time, the fifth alone), with
    /// and without a fused ReLU's mask. (That they read nothing outside
    /// the planes: `tests/kernels.rs`, `pooling_reads_only_its_planes`.)
    #[test]
    fn the_vector_gradient_rows_route_as_the_portable_loop() {
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let planes = tied_planes();
        let mut compared = 0;
        for (h, w, win, x) in &planes {
            let (h, w, win) = (*h, *w, *win);
            let finite = x.iter().map(|&v| if v.is_nan() { 3.0 } else { v });
            let finite: Vec<f32> = finite.collect();
            let reversed = |p: &[f32]| p.iter().rev().copied().collect::<Vec<f32>>();
            let five = [
                x.clone(),
                finite.clone(),
                reversed(x),
                reversed(&finite),
                x.clone(),
            ]
            .concat();
            let y = max_pool(&five, h, w, win);
            // Halves, whose sums are exact (for the count below), and
            // thirds, whose sums round: a cell that three or more outputs
            // found must get their gradients in the outputs' order.
            let halves: Vec<f32> = (0..y.len()).map(|i| 0.5 + i as f32).collect();
            let thirds: Vec<f32> = (0..y.len()).map(|i| (1 + i % 97) as f32 / 3.0).collect();
            let route = |vectors, relu, dy: &[f32]| {
                let mut pooling = super::Pooling::new(h, w, win);
                pooling.vectors = vectors;
                // A NaN no gradient makes: a value left unwritten shows.
                let mut dx =
                    vec![std::mem::MaybeUninit::new(f32::from_bits(0x7fc0_dead)); 5 * h * w];
                pooling.backward_planes(&five, (&y, dy), &mut dx, relu);
                // SAFETY: every value was written (`MaybeUninit::new`).
                dx.iter()
                    .map(|v| unsafe { v.assume_init() })
                    .collect::<Vec<f32>>()
            };
            for (dy, name) in [(&halves, "halves"), (&thirds, "thirds")] {
                // The portable loop's gradient with and without the mask.
                let portables = [false, true].map(|relu| route(Rows::Portable, relu, dy));
                for (relu, portable) in [false, true].into_iter().zip(&portables) {
                    for (rows, cpu_has) in [
                        (Rows::Avx512, has(Isa::Avx512)),
                        (Rows::Avx2, has(Isa::Avx2)),
                    ] {
                        if cpu_has {
                            let ours = route(rows, relu, dy);
                            let what = format!("{rows:?}, ReLU {relu}, {name}: {h} x {w}, {win:?}");
                            assert_eq!(bits(&ours), bits(portable), "{what}");
                            compared += 1;
                        }
                    }
                }
            }
            // The first plane's gradient.
            let dy = &halves[..halves.len() / 5];
            let portable = &route(Rows::Portable, false, &halves)[..h * w];
            // Every output's gradient lands in its window, but for a window
            // wholly in the padding, which holds no cell to land in.
            let pooling = super::Pooling::new(h, w, win);
            let ow = pooling.cols.len();
            let landed: f64 = dy
                .iter()
                .enumerate()
                .filter(|&(o, _)| {
                    let ((r0, r1), (c0, c1)) = (pooling.rows[o / ow], pooling.cols[o % ow]);
                    r0 < r1 && c0 < c1
                })
                .map(|(_, &d)| d as f64)
                .sum();
            let sum: f64 = portable.iter().map(|&v| v as f64).sum();
            assert_eq!(sum, landed, "{h} x {w}, {win:?}");
        }
        // Not a quiet pass on a CPU with neither.
        eprintln!("{compared} comparisons on {} planes", planes.len());
        assert!(compared >= 2 * planes.len() || !has(Isa::Avx2));
    }

    #[test]
    fn the_larger_value_wins_and_a_nan_on_either_side_is_kept() {
        assert_eq!(larger(1.0, 2.0), 2.0);
        assert_eq!(larger(2.0, 1.0), 2.0);
        assert_eq!(larger(f32::NEG_INFINITY, -3.0), -3.0);
        assert!(larger(1.0, f32::NAN).is_nan());
        assert!(larger(f32::NAN, 1.0).is_nan());
    }
}
