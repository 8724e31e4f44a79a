//! 2-D convolution on the CPU, N x C x H x W: im2col and one matrix product
//! per image and group, images spread over the threads. The backward pass is
//! the same shape of work: the weight gradient is dy times the columns
//! transposed, summed over images; the input gradient is the weights
//! transposed times dy, folded back from columns onto the image.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// A convolution's sizes. `pad` is (top, bottom, left, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        let [top, bottom, left, right] = self.pad;
        (
            (self.h + top + bottom - self.kernel[0]) / self.stride[0] + 1,
            (self.w + left + right - self.kernel[1]) / self.stride[1] + 1,
        )
    }

    /// Rows of a group's column matrix: its input channels times the kernel.
    fn k(&self) -> usize {
        self.cin / self.groups * self.kernel[0] * self.kernel[1]
    }

    fn ohw(&self) -> usize {
        let (oh, ow) = self.out();
        oh * ow
    }

    /// 1x1, stride 1, no padding: an image's group slice is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0; 4]
    }

    /// Images in parallel when there are enough of them; else threads inside
    /// each matrix product (batch-1 latency).
    fn parallelism(&self) -> Parallelism {
        if self.n >= rayon::current_num_threads() {
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

/// One group's columns of one image: `col[k][p]` is the input cell that
/// kernel offset k sees at output position p (0 in padding).
fn im2col(x: &[f32], g: &Geometry, group: usize, col: &mut [f32]) {
    let (oh, ow) = g.out();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let (top, left) = (g.pad[0], g.pad[2]);
    let cg = g.cin / g.groups;
    for c in 0..cg {
        let plane = &x[(group * cg + c) * g.h * g.w..][..g.h * g.w];
        for i in 0..kh {
            for j in 0..kw {
                let (first, last) = valid_columns(ow, g.w, sw, j, left);
                let row = &mut col[((c * kh + i) * kw + j) * oh * ow..][..oh * ow];
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

/// The adjoint of `im2col`: adds each column entry back onto its input cell.
fn col2im(col: &[f32], g: &Geometry, group: usize, dx: &mut [f32]) {
    let (oh, ow) = g.out();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let (top, left) = (g.pad[0], g.pad[2]);
    let cg = g.cin / g.groups;
    for c in 0..cg {
        let plane = &mut dx[(group * cg + c) * g.h * g.w..][..g.h * g.w];
        for i in 0..kh {
            for j in 0..kw {
                let (first, last) = valid_columns(ow, g.w, sw, j, left);
                let row = &col[((c * kh + i) * kw + j) * oh * ow..][..oh * ow];
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

/// y = conv(x, weight) + bias, weight as cout x cin/groups x kH x kW; then
/// max(y, 0) when `relu`.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    relu: bool,
) -> Vec<f32> {
    let ohw = g.ohw();
    let (k, cog) = (g.k(), g.cout / g.groups);
    let image = g.cin * g.h * g.w;
    let par = g.parallelism();
    let mut y = vec![0.0f32; g.n * g.cout * ohw];
    let one = |(n, y): (usize, &mut [f32]), col: &mut Vec<f32>| {
        let x = &x[n * image..][..image];
        for group in 0..g.groups {
            let cols: &[f32] = if g.pointwise() {
                &x[group * k * ohw..][..k * ohw]
            } else {
                im2col(x, g, group, col);
                col
            };
            let w = &weight[group * cog * k..][..cog * k];
            let out = &mut y[group * cog * ohw..][..cog * ohw];
            matmul((cog, ohw, k), out, false, (w, k, 1), (cols, ohw, 1), par);
        }
        if let Some(b) = bias {
            for (plane, b) in y.chunks_mut(ohw).zip(b) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    };
    let scratch = || vec![0.0f32; if g.pointwise() { 0 } else { k * ohw }];
    if matches!(par, Parallelism::None) {
        y.par_chunks_mut(g.cout * ohw)
            .enumerate()
            .for_each_with(scratch(), |col, item| one(item, col));
    } else {
        let mut col = scratch();
        y.chunks_mut(g.cout * ohw)
            .enumerate()
            .for_each(|item| one(item, &mut col));
    }
    y
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
    /// dy where the fused ReLU let the value through, else 0.
    masked: Vec<f32>,
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
    let ohw = g.ohw();
    let (k, cog) = (g.k(), g.cout / g.groups);
    let image = g.cin * g.h * g.w;
    let par = g.parallelism();
    let pointwise = g.pointwise();
    let fresh = || Partial {
        dw: vec![0.0; weight.len()],
        db: vec![0.0; g.cout],
        col: vec![0.0; if pointwise { 0 } else { k * ohw }],
        dcol: vec![0.0; if want_x { k * ohw } else { 0 }],
        masked: vec![0.0; if relu_out.is_some() { g.cout * ohw } else { 0 }],
    };
    let one = |mut acc: Partial, n: usize, dx: Option<&mut [f32]>| -> Partial {
        let x = &x[n * image..][..image];
        let mut dy = &dy[n * g.cout * ohw..][..g.cout * ohw];
        if let Some(y) = relu_out {
            let y = &y[n * g.cout * ohw..][..g.cout * ohw];
            for ((m, &d), &y) in acc.masked.iter_mut().zip(dy).zip(y) {
                *m = if y > 0.0 { d } else { 0.0 };
            }
            dy = &acc.masked;
        }
        for (db, plane) in acc.db.iter_mut().zip(dy.chunks(ohw)) {
            *db += plane.iter().sum::<f32>();
        }
        let mut dx = dx;
        for group in 0..g.groups {
            let dyg = &dy[group * cog * ohw..][..cog * ohw];
            if !pointwise {
                im2col(x, g, group, &mut acc.col);
            }
            let cols: &[f32] = if pointwise {
                &x[group * k * ohw..][..k * ohw]
            } else {
                &acc.col
            };
            // dW_g += dy_g (cog x ohw) * cols^T (ohw x k)
            let dw = &mut acc.dw[group * cog * k..][..cog * k];
            matmul((cog, k, ohw), dw, true, (dyg, ohw, 1), (cols, 1, ohw), par);
            if let Some(dx) = dx.as_deref_mut() {
                // dcols (k x ohw) = W_g^T (k x cog) * dy_g (cog x ohw)
                let w = &weight[group * cog * k..][..cog * k];
                if pointwise {
                    let dst = &mut dx[group * k * ohw..][..k * ohw];
                    matmul((k, ohw, cog), dst, false, (w, 1, k), (dyg, ohw, 1), par);
                } else {
                    matmul(
                        (k, ohw, cog),
                        &mut acc.dcol,
                        false,
                        (w, 1, k),
                        (dyg, ohw, 1),
                        par,
                    );
                    col2im(&acc.dcol, g, group, dx);
                }
            }
        }
        acc
    };
    let mut dx = want_x.then(|| vec![0.0f32; g.n * image]);
    let parallel = matches!(par, Parallelism::None);
    let total = match (&mut dx, parallel) {
        (Some(dx), true) => dx
            .par_chunks_mut(image)
            .enumerate()
            .fold(fresh, |acc, (n, dxn)| one(acc, n, Some(dxn)))
            .reduce(fresh, Partial::add),
        (None, true) => (0..g.n)
            .into_par_iter()
            .fold(fresh, |acc, n| one(acc, n, None))
            .reduce(fresh, Partial::add),
        (Some(dx), false) => dx
            .chunks_mut(image)
            .enumerate()
            .fold(fresh(), |acc, (n, dxn)| one(acc, n, Some(dxn))),
        (None, false) => (0..g.n).fold(fresh(), |acc, n| one(acc, n, None)),
    };
    Grads {
        x: dx,
        weight: total.dw,
        bias: total.db,
    }
}
