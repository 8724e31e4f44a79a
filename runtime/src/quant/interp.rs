//! The graph interpreter: runs a model's concrete graph on plain slices,
//! either in float (from a checkpoint's tensors, watching every activation
//! for calibration) or in int8 (from a quantized model).
//!
//! An activation carries its values, float or int8, and the scale it is
//! quantized with: the calibrated range of the operation that made it.
//! Convolutions and dense layers take int8 and give int8 (or float logits,
//! for the model's last layer); max pooling, ReLU and flatten keep whatever
//! they get, since rounding keeps order; the layers without an int8 form
//! (LRN, average pooling, batch norm that follows no convolution, the sum
//! of an `add`) compute in float between a dequantize and the next
//! quantize. Operations are numbered in the order the walk meets them (a
//! join after its branches' operations), which is how scales are stored.

use super::graph::{Graph, Join, Op};
use super::observe::Observers;
use super::qmodel::QModel;
use crate::kernels::conv::{self, Geometry};
use crate::kernels::cpu::{self, Lrn, Window};
use crate::kernels::int8::{self, Isa, Taps};
use crate::params::Tensors;
use crate::Result;
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub enum Values {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

/// A batch of activations: `n` examples of `per` values each.
#[derive(Debug, Clone)]
pub struct Act {
    pub n: usize,
    pub values: Values,
    /// The scale to quantize it with (0 where nothing was calibrated).
    pub scale: f32,
}

impl Act {
    fn per(&self) -> usize {
        let len = match &self.values {
            Values::F32(v) => v.len(),
            Values::I8(v) => v.len(),
        };
        len / self.n.max(1)
    }

    pub fn into_f32(self) -> Vec<f32> {
        match self.values {
            Values::F32(v) => v,
            Values::I8(v) => int8::dequantize(&v, self.scale),
        }
    }

    fn into_i8(self) -> Vec<i8> {
        match self.values {
            Values::I8(v) => v,
            Values::F32(v) => int8::quantize(&v, self.scale),
        }
    }

    fn float(n: usize, v: Vec<f32>, scale: f32) -> Act {
        Act {
            n,
            values: Values::F32(v),
            scale,
        }
    }
}

/// What the interpreter computes with.
pub enum Mode<'a> {
    /// Float, from a checkpoint's tensors; `observe` watches every output.
    Float {
        tensors: &'a Tensors,
        observe: Option<&'a mut Observers>,
    },
    Int8 {
        model: &'a QModel,
        isa: Isa,
    },
}

struct Run<'a, 'm> {
    mode: &'a mut Mode<'m>,
    /// The number of the next operation.
    next: usize,
    /// The number of the model's last operation, whose output is the logits.
    last: usize,
}

/// The class scores of `x` (N x C x H x W images).
pub fn forward(graph: &Graph, mode: &mut Mode, x: Vec<f32>, n: usize) -> Result<Vec<f32>> {
    let [c, h, w] = graph.input.map(|v| v as usize);
    if x.len() != n * c * h * w {
        return Err(format!(
            "the model takes {n} inputs of {c} x {h} x {w}; got {} values",
            x.len()
        ));
    }
    let last = graph.all().len();
    let scale = match mode {
        Mode::Int8 { model, .. } => model.input_scale,
        Mode::Float { observe, .. } => {
            if let Some(o) = observe {
                o.see(0, &x);
            }
            0.0
        }
    };
    let mut run = Run {
        mode,
        next: 1,
        last,
    };
    let y = run.seq(&graph.ops, Act::float(n, x, scale))?;
    Ok(y.into_f32())
}

fn tensor<'t>(tensors: &'t Tensors, name: &str) -> Result<&'t [f32]> {
    tensors
        .get(name)
        .map(|t| t.values.as_slice())
        .ok_or_else(|| format!("the weights have no tensor `{name}`"))
}

fn geometry(op: &Op, n: usize) -> Geometry {
    let Op::Conv {
        cin,
        h,
        w,
        cout,
        kernel,
        stride,
        pad,
        groups,
        ..
    } = *op
    else {
        unreachable!("a convolution")
    };
    let u = |v: u64| v as usize;
    Geometry {
        n,
        cin: u(cin),
        h: u(h),
        w: u(w),
        cout: u(cout),
        kernel: kernel.map(u),
        stride: stride.map(u),
        pad: pad.map(u),
        groups: u(groups),
    }
}

impl Run<'_, '_> {
    fn seq(&mut self, ops: &[Op], mut x: Act) -> Result<Act> {
        for op in ops {
            x = self.op(op, x)?;
        }
        Ok(x)
    }

    /// The scale of operation `id`'s output, in int8 mode.
    fn scale(&self, id: usize) -> f32 {
        match &*self.mode {
            Mode::Int8 { model, .. } => model.scales[id],
            Mode::Float { .. } => 0.0,
        }
    }

    fn op(&mut self, op: &Op, x: Act) -> Result<Act> {
        if let Op::Join { kind, branches } = op {
            let mut outs = Vec::with_capacity(branches.len());
            for b in branches {
                outs.push(self.seq(b, x.clone())?);
            }
            let id = self.take();
            let y = self.join(*kind, outs, id);
            return Ok(self.observed(id, y));
        }
        let id = self.take();
        let n = x.n;
        let y = match op {
            Op::Conv { .. } | Op::Dense { .. } => self.linear(op, id, x)?,
            Op::MaxPool {
                h,
                w,
                kernel,
                stride,
                pad,
                ..
            } => {
                let u = |v: u64| v as usize;
                let win = Window {
                    kernel: kernel.map(u),
                    stride: stride.map(u),
                    pad: pad.map(u),
                };
                let (h, w) = (u(*h), u(*w));
                let values = match x.values {
                    Values::F32(v) => Values::F32(cpu::max_pool(&v, h, w, win)),
                    Values::I8(v) => Values::I8(int8::max_pool(&v, h, w, win)),
                };
                Act { values, ..x }
            }
            Op::Relu => {
                let values = match x.values {
                    Values::F32(v) => Values::F32(v.into_iter().map(|v| v.max(0.0)).collect()),
                    Values::I8(v) => Values::I8(v.into_iter().map(|v| v.max(0)).collect()),
                };
                Act { values, ..x }
            }
            Op::Flatten => x,
            Op::AvgPool {
                h,
                w,
                kernel,
                stride,
                pad,
                ..
            } => {
                let u = |v: u64| v as usize;
                let v = avg_pool(
                    &x.into_f32(),
                    u(*h),
                    u(*w),
                    kernel.map(u),
                    stride.map(u),
                    pad.map(u),
                );
                Act::float(n, v, self.scale(id))
            }
            Op::GlobalAvgPool { h, w, .. } => {
                let hw = (*h * *w) as usize;
                let v = x
                    .into_f32()
                    .chunks_exact(hw)
                    .map(|p| p.iter().sum::<f32>() / hw as f32)
                    .collect();
                Act::float(n, v, self.scale(id))
            }
            Op::Lrn {
                c,
                h,
                w,
                radius,
                bias,
                alpha,
                beta,
            } => {
                let p = Lrn {
                    radius: *radius as usize,
                    bias: *bias as f32,
                    alpha: *alpha as f32,
                    beta: *beta as f32,
                };
                let (c, hw) = (*c as usize, (*h * *w) as usize);
                match (x.values, &*self.mode) {
                    // Between int8 layers, in int8: no float copy of the
                    // activations on the way.
                    (Values::I8(v), Mode::Int8 { .. }) => {
                        let scale = self.scale(id);
                        Act {
                            n,
                            values: Values::I8(int8::lrn(&v, x.scale, scale, c, hw, p)),
                            scale,
                        }
                    }
                    (values, _) => {
                        let x = Act { values, ..x };
                        let v = cpu::lrn(&x.into_f32(), c, hw, p).0;
                        Act::float(n, v, self.scale(id))
                    }
                }
            }
            Op::BatchNorm {
                path,
                c,
                h,
                w,
                epsilon,
                ..
            } => {
                let folded = match &*self.mode {
                    Mode::Int8 { model, .. } => model.folded.contains(&id),
                    Mode::Float { .. } => false,
                };
                if folded {
                    // Folded into the convolution before it, which gave
                    // this operation's scale already.
                    x
                } else {
                    let stats = self.batch_norm(path)?;
                    let v = batch_norm(
                        x.into_f32(),
                        &stats,
                        *c as usize,
                        (*h * *w) as usize,
                        *epsilon,
                    );
                    Act::float(n, v, self.scale(id))
                }
            }
            Op::Join { .. } => unreachable!("joins are handled above"),
        };
        Ok(self.observed(id, y))
    }

    fn take(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    fn observed(&mut self, id: usize, y: Act) -> Act {
        if let Mode::Float {
            observe: Some(o), ..
        } = self.mode
        {
            if let Values::F32(v) = &y.values {
                o.see(id, v);
            }
        }
        y
    }

    /// gamma, beta, mean and variance of a batch norm.
    fn batch_norm(&self, path: &str) -> Result<[Vec<f32>; 4]> {
        let get = |t: &str| -> Result<Vec<f32>> {
            let name = format!("{path}.{t}");
            match &*self.mode {
                Mode::Float { tensors, .. } => tensor(tensors, &name).map(|v| v.to_vec()),
                Mode::Int8 { model, .. } => model.float(&name).map(|v| v.to_vec()),
            }
        };
        Ok([
            get("gamma")?,
            get("beta")?,
            get("running_mean")?,
            get("running_var")?,
        ])
    }

    fn linear(&mut self, op: &Op, id: usize, x: Act) -> Result<Act> {
        let n = x.n;
        let (path, relu) = match op {
            Op::Conv { path, relu, .. } | Op::Dense { path, relu, .. } => (path, *relu),
            _ => unreachable!("a convolution or a dense layer"),
        };
        let out_scale = self.scale(id);
        let logits = id == self.last;
        match &mut self.mode {
            Mode::Float { tensors, .. } => {
                let w = tensor(tensors, &format!("{path}.weight"))?;
                let bias = match op {
                    Op::Conv { bias: true, .. } | Op::Dense { bias: true, .. } => {
                        Some(tensor(tensors, &format!("{path}.bias"))?)
                    }
                    _ => None,
                };
                let x = x.into_f32();
                let v = match op {
                    Op::Conv { .. } => conv::forward(&x, w, bias, &geometry(op, n), relu),
                    Op::Dense { inputs, units, .. } => {
                        dense(&x, w, bias, *inputs as usize, *units as usize, relu)
                    }
                    _ => unreachable!(),
                };
                Ok(Act::float(n, v, 0.0))
            }
            Mode::Int8 { model, isa } => {
                let layer = model.layer(id)?;
                let sx = x.scale;
                // The shapes `int8::conv` and `int8::dense` pack for.
                let taps = match *op {
                    Op::Conv { groups: 1, .. } => Some(Taps::conv(&geometry(op, n))),
                    Op::Conv { .. } => None,
                    _ => Some(Taps::dense(int8::padded(layer.k))),
                };
                let out = if logits { None } else { Some(out_scale) };
                let weights = layer.prepared(sx, out, taps);
                let xq = x.into_i8();
                let inputs = xq.len() / n.max(1);
                Ok(match (op, logits) {
                    (Op::Conv { .. }, false) => Act {
                        n,
                        values: Values::I8(int8::conv::<i8>(&xq, &geometry(op, n), &weights, *isa)),
                        scale: out_scale,
                    },
                    (Op::Conv { .. }, true) => Act::float(
                        n,
                        int8::conv::<f32>(&xq, &geometry(op, n), &weights, *isa),
                        0.0,
                    ),
                    (_, false) => Act {
                        n,
                        values: Values::I8(int8::dense::<i8>(&xq, inputs, &weights, *isa)),
                        scale: out_scale,
                    },
                    (_, true) => {
                        Act::float(n, int8::dense::<f32>(&xq, inputs, &weights, *isa), 0.0)
                    }
                })
            }
        }
    }

    fn join(&self, kind: Join, outs: Vec<Act>, id: usize) -> Act {
        let n = outs[0].n;
        let scale = self.scale(id);
        match kind {
            Join::Add => {
                let mut it = outs.into_iter();
                let mut sum = it.next().expect("a join has branches").into_f32();
                for o in it {
                    for (s, v) in sum.iter_mut().zip(o.into_f32()) {
                        *s += v;
                    }
                }
                Act::float(n, sum, scale)
            }
            Join::Concat => {
                let same = outs
                    .iter()
                    .all(|o| matches!(o.values, Values::I8(_)) && o.scale == outs[0].scale);
                let pers: Vec<usize> = outs.iter().map(Act::per).collect();
                let total: usize = pers.iter().sum();
                if same {
                    let scale = outs[0].scale;
                    let parts: Vec<Vec<i8>> = outs.into_iter().map(Act::into_i8).collect();
                    let mut v = Vec::with_capacity(n * total);
                    for i in 0..n {
                        for (p, &per) in parts.iter().zip(&pers) {
                            v.extend_from_slice(&p[i * per..(i + 1) * per]);
                        }
                    }
                    Act {
                        n,
                        values: Values::I8(v),
                        scale,
                    }
                } else {
                    let parts: Vec<Vec<f32>> = outs.into_iter().map(Act::into_f32).collect();
                    let mut v = Vec::with_capacity(n * total);
                    for i in 0..n {
                        for (p, &per) in parts.iter().zip(&pers) {
                            v.extend_from_slice(&p[i * per..(i + 1) * per]);
                        }
                    }
                    Act::float(n, v, scale)
                }
            }
        }
    }
}

/// x (N x inputs) times w (inputs x units, netc's layout), plus the bias.
pub fn dense(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    inputs: usize,
    units: usize,
    relu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len() / inputs * units];
    y.par_chunks_mut(units)
        .zip(x.par_chunks(inputs))
        .for_each(|(y, x)| {
            if let Some(b) = bias {
                y.copy_from_slice(b);
            }
            for (i, &v) in x.iter().enumerate() {
                if v != 0.0 {
                    for (y, w) in y.iter_mut().zip(&w[i * units..(i + 1) * units]) {
                        *y += v * w;
                    }
                }
            }
            if relu {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        });
    y
}

/// Average pooling that counts only the real cells of each window.
fn avg_pool(
    x: &[f32],
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
) -> Vec<f32> {
    let win = Window {
        kernel,
        stride,
        pad,
    };
    let (oh, ow) = win.out(h, w);
    let mut y = vec![0f32; x.len() / (h * w) * oh * ow];
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(y, plane)| {
            for i in 0..oh {
                let (r0, r1) = Window::span(i, stride[0], kernel[0], pad[0], h);
                for j in 0..ow {
                    let (c0, c1) = Window::span(j, stride[1], kernel[1], pad[2], w);
                    let mut s = 0.0;
                    for r in r0..r1 {
                        s += plane[r * w + c0..r * w + c1].iter().sum::<f32>();
                    }
                    y[i * ow + j] = s / ((r1 - r0) * (c1 - c0)).max(1) as f32;
                }
            }
        });
    y
}

fn batch_norm(
    mut x: Vec<f32>,
    [gamma, beta, mean, var]: &[Vec<f32>; 4],
    c: usize,
    hw: usize,
    eps: f64,
) -> Vec<f32> {
    for (i, v) in x.iter_mut().enumerate() {
        let ch = i / hw % c;
        *v = (*v - mean[ch]) / (var[ch] + eps as f32).sqrt() * gamma[ch] + beta[ch];
    }
    x
}
