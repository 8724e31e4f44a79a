//! netc's CPU kernels on plain slices, N x C x H x W, row-major. burn's
//! generic pooling walks every window with bounds checks and keeps an index
//! per cell even in inference; netc's LRN as pooling over channels pays for
//! a reshape, a pooling pass and five element-wise passes. These do each job
//! in one or two passes, parallel over images or channel planes.

use rayon::prelude::*;

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
#[inline]
fn larger(best: f32, v: f32) -> f32 {
    if v > best || v.is_nan() {
        v
    } else {
        best
    }
}

/// Max pooling of the planes (`h` x `w` each) of `x`. Two passes per output
/// row: down the window's rows for every column at once (this vectorizes),
/// then across each window's columns.
pub fn max_pool(x: &[f32], h: usize, w: usize, win: Window) -> Vec<f32> {
    let (oh, ow) = win.out(h, w);
    let mut y = zeros(x.len() / (h * w) * oh * ow);
    y.par_chunks_mut(oh * ow).enumerate().for_each_init(
        || vec![0.0f32; w],
        |best, (p, y)| {
            let plane = &x[p * h * w..(p + 1) * h * w];
            for (i, y) in y.chunks_exact_mut(ow).enumerate() {
                let (r0, r1) = Window::span(i, win.stride[0], win.kernel[0], win.pad[0], h);
                best.fill(f32::NEG_INFINITY);
                for row in plane[r0 * w..r1 * w].chunks_exact(w) {
                    for (b, &v) in best.iter_mut().zip(row) {
                        *b = larger(*b, v);
                    }
                }
                for (j, y) in y.iter_mut().enumerate() {
                    let (c0, c1) = Window::span(j, win.stride[1], win.kernel[1], win.pad[2], w);
                    *y = best[c0..c1]
                        .iter()
                        .fold(f32::NEG_INFINITY, |m, &v| larger(m, v));
                }
            }
        },
    );
    y
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
    let (oh, ow) = win.out(h, w);
    let mut dx = zeros(x.len());
    dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dx)| {
        let plane = &x[p * h * w..(p + 1) * h * w];
        let (y, dy) = (&y[p * oh * ow..][..oh * ow], &dy[p * oh * ow..][..oh * ow]);
        for i in 0..oh {
            let (r0, r1) = Window::span(i, win.stride[0], win.kernel[0], win.pad[0], h);
            for j in 0..ow {
                let (c0, c1) = Window::span(j, win.stride[1], win.kernel[1], win.pad[2], w);
                let top = y[i * ow + j];
                let won = |&k: &usize| plane[k] == top || (top.is_nan() && plane[k].is_nan());
                let mut cells = (r0..r1).flat_map(|r| (c0..c1).map(move |c| r * w + c));
                if let Some(k) = cells.find(won) {
                    dx[k] += dy[i * ow + j];
                }
            }
        }
    });
    dx
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
    let mut y = zeros(a.len() + b.len());
    y.par_chunks_mut(ia + ib).enumerate().for_each(|(n, y)| {
        y[..ia].copy_from_slice(&a[n * ia..][..ia]);
        y[ia..].copy_from_slice(&b[n * ib..][..ib]);
    });
    y
}

/// The inverse of `concat`: the first `ca` channels of each image, and the rest.
pub fn split(y: &[f32], ca: usize, cb: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let (ia, ib) = (ca * hw, cb * hw);
    let n = y.len() / (ia + ib);
    let mut a = zeros(n * ia);
    let mut b = zeros(n * ib);
    a.par_chunks_mut(ia.max(1))
        .zip(b.par_chunks_mut(ib.max(1)))
        .zip(y.par_chunks(ia + ib))
        .for_each(|((a, b), y)| {
            a.copy_from_slice(&y[..ia]);
            b.copy_from_slice(&y[ia..]);
        });
    (a, b)
}
