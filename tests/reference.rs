//! A reference implementation of netc's layers, written plainly from their
//! definitions (TensorFlow's padding rules included), to check generated
//! code against. One image at a time, channels x height x width.

use netc::ir::{Channels, Io, Node, Op, Padding, PoolKind, Typed, Window};
use std::collections::HashMap;

/// A tensor's shape and values, as read from a safetensors file.
pub type Weights = HashMap<String, (Vec<usize>, Vec<f32>)>;

#[derive(Debug, Clone)]
pub struct Image {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Image {
    fn zeros(c: usize, h: usize, w: usize) -> Self {
        Image {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }
    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
    fn set(&mut self, c: usize, y: usize, x: usize, v: f32) {
        self.data[(c * self.h + y) * self.w + x] = v;
    }
}

fn get<'a>(w: &'a Weights, name: &str) -> &'a [f32] {
    &w.get(name).unwrap_or_else(|| panic!("no weight {name}")).1
}

/// Top and left padding, and output size, of a window over one dimension.
fn geometry(size: usize, k: usize, s: usize, p: Padding) -> (usize, usize) {
    match p {
        // TensorFlow's SAME padding: the odd extra cell goes after.
        Padding::Same => {
            let out = size.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(size);
            (total / 2, out)
        }
        Padding::Valid => (0, (size - k) / s + 1),
    }
}

/// Cells of the window at (oy, ox) that fall inside the image.
fn window(x: &Image, win: &Window, oy: usize, ox: usize) -> Vec<(usize, usize)> {
    let [kh, kw] = [win.kernel[0] as usize, win.kernel[1] as usize];
    let [sh, sw] = [win.stride[0] as usize, win.stride[1] as usize];
    let (top, _) = geometry(x.h, kh, sh, win.padding);
    let (left, _) = geometry(x.w, kw, sw, win.padding);
    let mut cells = Vec::new();
    for ky in 0..kh {
        for kx in 0..kw {
            let y = (oy * sh + ky) as isize - top as isize;
            let xx = (ox * sw + kx) as isize - left as isize;
            if y >= 0 && xx >= 0 && (y as usize) < x.h && (xx as usize) < x.w {
                cells.push((y as usize, xx as usize));
            }
        }
    }
    cells
}

fn out_size(x: &Image, win: &Window) -> (usize, usize) {
    let (_, oh) = geometry(
        x.h,
        win.kernel[0] as usize,
        win.stride[0] as usize,
        win.padding,
    );
    let (_, ow) = geometry(
        x.w,
        win.kernel[1] as usize,
        win.stride[1] as usize,
        win.padding,
    );
    (oh, ow)
}

fn relu(x: &mut Image) {
    x.data.iter_mut().for_each(|v| *v = v.max(0.0));
}

fn node(n: &Node<Io>, x: Image, prefix: &str, w: &Weights) -> Image {
    let path = |leaf: &str| format!("{}.{leaf}", n.path(prefix));
    match &n.op {
        Op::Conv(conv) => {
            let groups = conv.group_count(x.c as u64) as usize;
            let filters = match &conv.channels {
                Channels::Filters(f) => f.value as usize,
                Channels::Depthwise { multiplier } => x.c * multiplier.value as usize,
            };
            let (oh, ow) = out_size(&x, &conv.window);
            let (kh, kw) = (
                conv.window.kernel[0] as usize,
                conv.window.kernel[1] as usize,
            );
            let weight = get(w, &path("weight"));
            let bias = conv.bias.then(|| get(w, &path("bias")));
            let cin = x.c / groups;
            let per_group = filters / groups;
            let (top, _) = geometry(x.h, kh, conv.window.stride[0] as usize, conv.window.padding);
            let (left, _) = geometry(x.w, kw, conv.window.stride[1] as usize, conv.window.padding);
            let mut out = Image::zeros(filters, oh, ow);
            for f in 0..filters {
                let g = f / per_group;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = bias.map_or(0.0, |b| b[f]);
                        for ci in 0..cin {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let y = (oy * conv.window.stride[0] as usize + ky) as isize
                                        - top as isize;
                                    let xx = (ox * conv.window.stride[1] as usize + kx) as isize
                                        - left as isize;
                                    if y < 0 || xx < 0 || y as usize >= x.h || xx as usize >= x.w {
                                        continue;
                                    }
                                    let wv = weight[((f * cin + ci) * kh + ky) * kw + kx];
                                    sum += wv * x.at(g * cin + ci, y as usize, xx as usize);
                                }
                            }
                        }
                        out.set(f, oy, ox, sum);
                    }
                }
            }
            if conv.relu {
                relu(&mut out);
            }
            out
        }
        Op::Pool(pool) => {
            let (oh, ow) = out_size(&x, &pool.window);
            let mut out = Image::zeros(x.c, oh, ow);
            for c in 0..x.c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let cells = window(&x, &pool.window, oy, ox);
                        let vals = cells.iter().map(|&(y, xx)| x.at(c, y, xx));
                        let v = match pool.kind {
                            PoolKind::Max => vals.fold(f32::NEG_INFINITY, f32::max),
                            PoolKind::Avg => vals.sum::<f32>() / cells.len() as f32,
                        };
                        out.set(c, oy, ox, v);
                    }
                }
            }
            out
        }
        Op::GlobalAvgPool => {
            let mut out = Image::zeros(x.c, 1, 1);
            for c in 0..x.c {
                let s: f32 = x.data[c * x.h * x.w..(c + 1) * x.h * x.w].iter().sum();
                out.set(c, 0, 0, s / (x.h * x.w) as f32);
            }
            out
        }
        Op::Lrn(l) => {
            let mut out = x.clone();
            let r = l.radius as isize;
            for c in 0..x.c {
                for y in 0..x.h {
                    for xx in 0..x.w {
                        let mut sq = 0.0f64;
                        for d in -r..=r {
                            let cc = c as isize + d;
                            if cc >= 0 && (cc as usize) < x.c {
                                sq += f64::from(x.at(cc as usize, y, xx)).powi(2);
                            }
                        }
                        let v = f64::from(x.at(c, y, xx)) / (l.bias + l.alpha * sq).powf(l.beta);
                        out.set(c, y, xx, v as f32);
                    }
                }
            }
            out
        }
        Op::Fc(fc) => {
            let d = x.data.len();
            let units = fc.units.value as usize;
            let weight = get(w, &path("weight")); // d x units
            let bias = fc.bias.then(|| get(w, &path("bias")));
            let mut out = Image::zeros(units, 1, 1);
            for j in 0..units {
                let mut s = bias.map_or(0.0, |b| b[j]);
                for i in 0..d {
                    s += x.data[i] * weight[i * units + j];
                }
                out.data[j] = s;
            }
            if fc.relu {
                relu(&mut out);
            }
            out
        }
        Op::BatchNorm(bn) => {
            let (g, b) = (get(w, &path("gamma")), get(w, &path("beta")));
            let (m, v) = (get(w, &path("running_mean")), get(w, &path("running_var")));
            let mut out = x.clone();
            let per = x.h * x.w;
            for (i, val) in out.data.iter_mut().enumerate() {
                let c = i / per;
                *val = (*val - m[c]) / (v[c] + bn.epsilon as f32).sqrt() * g[c] + b[c];
            }
            if bn.relu {
                relu(&mut out);
            }
            out
        }
        Op::Relu => {
            let mut out = x;
            relu(&mut out);
            out
        }
        Op::Dropout { .. } | Op::Identity => x,
        Op::Concat(branches) => {
            let outs: Vec<Image> = branches
                .iter()
                .map(|b| seq(b, x.clone(), prefix, w))
                .collect();
            let c = outs.iter().map(|o| o.c).sum();
            let mut data = Vec::new();
            for o in &outs {
                data.extend_from_slice(&o.data);
            }
            Image {
                c,
                h: outs[0].h,
                w: outs[0].w,
                data,
            }
        }
        Op::Add(branches) => {
            let outs: Vec<Image> = branches
                .iter()
                .map(|b| seq(b, x.clone(), prefix, w))
                .collect();
            let mut sum = outs[0].clone();
            for o in &outs[1..] {
                sum.data.iter_mut().zip(&o.data).for_each(|(a, b)| *a += b);
            }
            sum
        }
        Op::Block(call) => seq(&call.body, x, &n.path(prefix), w),
    }
}

fn seq(nodes: &[Node<Io>], mut x: Image, prefix: &str, w: &Weights) -> Image {
    for n in nodes {
        x = node(n, x, prefix, w);
    }
    x
}

/// The class scores of one image.
pub fn forward(model: &Typed, image: Image, weights: &Weights) -> Vec<f32> {
    seq(&model.body, image, "", weights).data
}
