//! int8 layers that work plane by plane: max pooling (rounding keeps the
//! order, so the scale is unchanged) and TensorFlow's LRN, int8 in and out.

use super::{dispatch, to_i8, Job};
use crate::kernels::cpu::{Lrn, Window};
use rayon::prelude::*;

/// Max pooling of int8 planes (`h` x `w` each): padding never wins, as in
/// the float kernel, and the scale is unchanged since rounding keeps order.
/// Down each window's rows for a whole output row at once, then across
/// the columns, both passes over whole rows (they vectorize).
pub fn max_pool(x: &[i8], h: usize, w: usize, win: Window) -> Vec<i8> {
    let (oh, ow) = win.out(h, w);
    let rows: Vec<_> = (0..oh)
        .map(|i| Window::span(i, win.stride[0], win.kernel[0], win.pad[0], h))
        .collect();
    // The rows' maxima with the left padding in front and the right after,
    // as i8::MIN (never the maximum of a window, which always holds a real
    // value); then the windows across, for every column at once.
    let (left, kw) = (win.pad[2], win.kernel[1]);
    let wide = ((ow - 1) * win.stride[1] + kw).max(left + w);
    let mut y = vec![0i8; x.len() / (h * w) * oh * ow];
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each_init(
            || (vec![i8::MIN; wide], vec![i8::MIN; wide]),
            |(best, across), (y, plane)| {
                dispatch(PoolPlane {
                    plane,
                    y,
                    best,
                    across,
                    rows: &rows,
                    w,
                    left,
                    kw,
                    stride: win.stride[1],
                })
            },
        );
    y
}

/// One plane of `max_pool`.
struct PoolPlane<'a> {
    plane: &'a [i8],
    y: &'a mut [i8],
    best: &'a mut [i8],
    across: &'a mut [i8],
    rows: &'a [(usize, usize)],
    w: usize,
    left: usize,
    kw: usize,
    stride: usize,
}

impl Job for PoolPlane<'_> {
    #[inline(always)]
    fn run(self) {
        let PoolPlane {
            plane,
            y,
            best,
            across,
            rows,
            w,
            left,
            kw,
            stride,
        } = self;
        let ow = y.len() / rows.len();
        let span = best.len() + 1 - kw;
        for (y, &(r0, r1)) in y.chunks_exact_mut(ow).zip(rows) {
            let inner = &mut best[left..left + w];
            inner.fill(i8::MIN);
            for row in plane[r0 * w..r1 * w].chunks_exact(w) {
                for (b, &v) in inner.iter_mut().zip(row) {
                    *b = (*b).max(v);
                }
            }
            across[..span].copy_from_slice(&best[..span]);
            for dx in 1..kw {
                for (a, &b) in across[..span].iter_mut().zip(&best[dx..]) {
                    *a = (*a).max(b);
                }
            }
            for (j, y) in y.iter_mut().enumerate() {
                *y = across[j * stride];
            }
        }
    }
}

/// TensorFlow's local response normalization on int8 values of scale `sx`
/// (images of `c` channels x `hw`), giving int8 of scale `sy`:
/// y = x (bias + alpha sum of x^2 over the channel window)^-beta. The
/// window sums of the squared integers are exact (a running sum down the
/// channels, two operations a value where the float kernel adds the whole
/// window); only the factor is float, and it folds the scales in.
pub fn lrn(x: &[i8], sx: f32, sy: f32, c: usize, hw: usize, p: Lrn) -> Vec<i8> {
    let (alpha, ratio) = (p.alpha * sx * sx, sx / sy);
    let mut y = vec![0i8; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each_init(
            || (vec![0i32; hw], vec![0f32; hw]),
            |(sums, factor), (y, x)| {
                dispatch(LrnImage {
                    x,
                    y,
                    sums,
                    factor,
                    p,
                    alpha,
                    ratio,
                })
            },
        );
    y
}

/// One image of `lrn`.
struct LrnImage<'a> {
    x: &'a [i8],
    y: &'a mut [i8],
    sums: &'a mut [i32],
    factor: &'a mut [f32],
    p: Lrn,
    alpha: f32,
    ratio: f32,
}

/// s += sign x^2, value by value.
#[inline(always)]
fn add_squares(s: &mut [i32], x: &[i8], sign: i32) {
    for (s, &v) in s.iter_mut().zip(x) {
        *s += sign * (v as i32 * v as i32);
    }
}

impl Job for LrnImage<'_> {
    #[inline(always)]
    fn run(self) {
        let LrnImage {
            x,
            y,
            sums,
            factor,
            p,
            alpha,
            ratio,
        } = self;
        let hw = sums.len();
        let c = x.len() / hw;
        let plane = |ch: usize| &x[ch * hw..(ch + 1) * hw];
        sums.fill(0);
        for ch in 0..p.radius.min(c) {
            add_squares(sums, plane(ch), 1);
        }
        for (ch, y) in y.chunks_exact_mut(hw).enumerate() {
            // The window of channel ch: ch - radius ..= ch + radius.
            if ch + p.radius < c {
                add_squares(sums, plane(ch + p.radius), 1);
            }
            if ch > p.radius {
                add_squares(sums, plane(ch - p.radius - 1), -1);
            }
            // The factor in a loop of its own, so that it vectorizes.
            let scaled = factor.iter_mut().zip(sums.iter());
            if p.beta == 0.75 {
                for (f, &s) in scaled {
                    let r = (p.bias + alpha * s as f32).sqrt();
                    *f = ratio / (r * r.sqrt());
                }
            } else {
                for (f, &s) in scaled {
                    *f = ratio * p.pow_neg_beta(p.bias + alpha * s as f32);
                }
            }
            for ((y, &q), &f) in y.iter_mut().zip(plane(ch)).zip(factor.iter()) {
                *y = to_i8(q as f32 * f);
            }
        }
    }
}
