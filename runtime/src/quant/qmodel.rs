//! A quantized model: int8 weights with one scale per output channel
//! (symmetric), float biases, the calibrated scale of every activation, and
//! the batch norms folded into the convolution before them. It is one
//! safetensors file (`netc quantize` writes `RUN/int8.safetensors`):
//!
//! - `PATH.weight`: I8, a convolution's as in the checkpoint (cout x cin/groups
//!   x kH x kW), a dense layer's transposed to units x inputs (a row per
//!   output, as the kernels read it);
//! - `PATH.weight_scale`: F32, one per output channel; `PATH.bias`: F32;
//! - the float tensors of batch norms that could not be folded;
//! - metadata: `format` = `netc-int8`, `model`, `method`, `calibration` (the
//!   number of images), `operations` (the graph's count) and `scales`, a
//!   JSON list of activation scales by operation number (0: the input).

use super::graph::{Graph, Op};
use super::observe::Method;
use crate::checkpoint::{with_metadata, write_atomic};
use crate::kernels::int8::{self, Taps, Weights};
use crate::params::{Named, Tensors};
use crate::Result;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

pub const FORMAT: &str = "netc-int8";

/// A convolution's or dense layer's quantized weights.
#[derive(Debug, Clone)]
pub struct QLayer {
    pub path: String,
    /// The saved shape of the weight.
    pub shape: Vec<usize>,
    pub rows: usize,
    pub k: usize,
    pub values: Vec<i8>,
    /// The same values, widened once for the kernels.
    wide: Vec<i16>,
    /// And in the broadcast kernel's panels, packed at the first call
    /// (packing needs the layer's taps, which the graph holds).
    packed: OnceLock<(Taps, Vec<i16>)>,
    pub weight_scale: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub relu: bool,
}

impl QLayer {
    fn new(
        path: &str,
        shape: Vec<usize>,
        rows: usize,
        w: &[f32],
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> QLayer {
        let k = w.len() / rows;
        let mut values = Vec::with_capacity(w.len());
        let mut weight_scale = Vec::with_capacity(rows);
        for row in w.chunks_exact(k) {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            let inv = 1.0 / s;
            values.extend(row.iter().map(|&v| int8::quantize_one(v, inv)));
            weight_scale.push(s);
        }
        QLayer::from_values(path.into(), shape, rows, values, weight_scale, bias, relu)
    }

    fn from_values(
        path: String,
        shape: Vec<usize>,
        rows: usize,
        values: Vec<i8>,
        weight_scale: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> QLayer {
        let k = values.len() / rows;
        let kp = int8::padded(k);
        let mut wide = vec![0i16; rows * kp];
        for (w, v) in wide.chunks_exact_mut(kp).zip(values.chunks_exact(k)) {
            w.iter_mut().zip(v).for_each(|(w, &v)| *w = v as i16);
        }
        QLayer {
            path,
            shape,
            rows,
            k,
            wide,
            packed: OnceLock::new(),
            values,
            weight_scale,
            bias,
            relu,
        }
    }

    /// The kernels' weights for an input of scale `sx`, writing int8 of
    /// scale `out` or, without one, float; `taps`, the layer's shape where
    /// the broadcast kernel can run it (its weights are packed once).
    pub fn prepared(&self, sx: f32, out: Option<f32>, taps: Option<Taps>) -> Weights<'_> {
        let bias = (0..self.rows)
            .map(|r| {
                let b = self.bias.as_ref().map_or(0.0, |b| b[r]);
                (b as f64 / (sx as f64 * self.weight_scale[r] as f64)).round() as i32
            })
            .collect();
        let multiplier = self
            .weight_scale
            .iter()
            .map(|&s| match out {
                Some(o) => sx * s / o,
                None => sx * s,
            })
            .collect();
        Weights {
            rows: self.rows,
            k: int8::padded(self.k),
            values: &self.wide,
            bias,
            multiplier,
            relu: self.relu,
            packed: taps.map(|t| {
                let k = int8::padded(self.k);
                let (packed_for, values) = self
                    .packed
                    .get_or_init(|| (t, int8::pack(&self.wide, self.rows, k, t)));
                (*packed_for, values.as_slice())
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QModel {
    pub model: String,
    pub method: Method,
    pub calibration: usize,
    pub input_scale: f32,
    /// The scale of each operation's output, by number (0: the input).
    pub scales: Vec<f32>,
    layers: HashMap<usize, QLayer>,
    /// Batch norms folded into their convolution, by number.
    pub folded: HashSet<usize>,
    /// Float tensors of the batch norms left in float.
    floats: Tensors,
}

/// Every operation with its number and the one after it in its sequence.
fn numbered<'g>(ops: &'g [Op], next: &mut usize, out: &mut Vec<(usize, &'g Op, Option<&'g Op>)>) {
    for (i, op) in ops.iter().enumerate() {
        if let Op::Join { branches, .. } = op {
            for b in branches {
                numbered(b, next, out);
            }
        }
        out.push((*next, op, ops.get(i + 1)));
        *next += 1;
    }
}

fn operations(graph: &Graph) -> Vec<(usize, &Op, Option<&Op>)> {
    let mut out = Vec::new();
    numbered(&graph.ops, &mut 1, &mut out);
    out
}

fn get<'t>(t: &'t Tensors, name: &str) -> Result<&'t [f32]> {
    t.get(name)
        .map(|n| n.values.as_slice())
        .ok_or_else(|| format!("the weights have no tensor `{name}`"))
}

impl QModel {
    /// Quantizes float weights `tensors` with activation ranges `ranges`
    /// (by operation number, from calibration).
    pub fn new(
        model: &str,
        graph: &Graph,
        tensors: &Tensors,
        ranges: &[f32],
        method: Method,
        calibration: usize,
    ) -> Result<QModel> {
        let mut scales: Vec<f32> = ranges
            .iter()
            .map(|&r| if r > 0.0 { r / 127.0 } else { 1.0 })
            .collect();
        let mut layers = HashMap::new();
        let mut folded = HashSet::new();
        let mut floats = Tensors::new();
        let ops = operations(graph);
        for &(id, op, next) in &ops {
            match op {
                Op::Conv {
                    path,
                    cin,
                    cout,
                    kernel,
                    groups,
                    bias,
                    relu,
                    ..
                } => {
                    let (cout, k) = (
                        *cout as usize,
                        (*cin / *groups * kernel[0] * kernel[1]) as usize,
                    );
                    let mut w = get(tensors, &format!("{path}.weight"))?.to_vec();
                    let mut b = if *bias {
                        Some(get(tensors, &format!("{path}.bias"))?.to_vec())
                    } else {
                        None
                    };
                    // conv then batch norm: the norm is a per-channel affine
                    // map, which goes into the weights and bias.
                    if let (
                        false,
                        Some(Op::BatchNorm {
                            path: bn, epsilon, ..
                        }),
                    ) = (*relu, next)
                    {
                        let g = get(tensors, &format!("{bn}.gamma"))?;
                        let beta = get(tensors, &format!("{bn}.beta"))?;
                        let mean = get(tensors, &format!("{bn}.running_mean"))?;
                        let var = get(tensors, &format!("{bn}.running_var"))?;
                        let mut nb = vec![0.0; cout];
                        for c in 0..cout {
                            let f = g[c] / (var[c] + *epsilon as f32).sqrt();
                            w[c * k..(c + 1) * k].iter_mut().for_each(|v| *v *= f);
                            nb[c] = (b.as_ref().map_or(0.0, |b| b[c]) - mean[c]) * f + beta[c];
                        }
                        b = Some(nb);
                        folded.insert(id + 1);
                        scales[id] = scales[id + 1];
                    }
                    let shape = vec![
                        cout,
                        (*cin / *groups) as usize,
                        kernel[0] as usize,
                        kernel[1] as usize,
                    ];
                    layers.insert(id, QLayer::new(path, shape, cout, &w, b, *relu));
                }
                Op::Dense {
                    path,
                    inputs,
                    units,
                    bias,
                    relu,
                } => {
                    let (i, u) = (*inputs as usize, *units as usize);
                    let w = get(tensors, &format!("{path}.weight"))?;
                    let mut t = vec![0.0; i * u];
                    for r in 0..i {
                        for c in 0..u {
                            t[c * i + r] = w[r * u + c];
                        }
                    }
                    let b = if *bias {
                        Some(get(tensors, &format!("{path}.bias"))?.to_vec())
                    } else {
                        None
                    };
                    layers.insert(id, QLayer::new(path, vec![u, i], u, &t, b, *relu));
                }
                Op::BatchNorm { path, .. } if !folded.contains(&id) => {
                    for t in ["gamma", "beta", "running_mean", "running_var"] {
                        let name = format!("{path}.{t}");
                        let v = tensors
                            .get(&name)
                            .ok_or_else(|| format!("the weights have no tensor `{name}`"))?;
                        floats.insert(name, v.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(QModel {
            model: model.into(),
            method,
            calibration,
            input_scale: scales[0],
            scales,
            layers,
            folded,
            floats,
        })
    }

    pub fn layer(&self, id: usize) -> Result<&QLayer> {
        self.layers
            .get(&id)
            .ok_or_else(|| format!("the int8 model has no layer for operation {id}"))
    }

    pub fn float(&self, name: &str) -> Result<&[f32]> {
        get(&self.floats, name)
    }

    /// Writes the model to `path` (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for l in self.layers.values() {
            owned.push((
                format!("{}.weight", l.path),
                Dtype::I8,
                l.shape.clone(),
                l.values.iter().map(|&v| v as u8).collect(),
            ));
            owned.push((
                format!("{}.weight_scale", l.path),
                Dtype::F32,
                vec![l.rows],
                f32s(&l.weight_scale),
            ));
            if let Some(b) = &l.bias {
                owned.push((
                    format!("{}.bias", l.path),
                    Dtype::F32,
                    vec![l.rows],
                    f32s(b),
                ));
            }
        }
        for (name, t) in &self.floats {
            owned.push((name.clone(), Dtype::F32, t.shape.clone(), f32s(&t.values)));
        }
        owned.sort_by(|a, b| a.0.cmp(&b.0));
        let views = owned
            .iter()
            .map(|(n, d, shape, bytes)| {
                TensorView::new(*d, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| format!("tensor {n}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| format!("{}: cannot encode: {e}", path.display()))?;
        let mut folded: Vec<usize> = self.folded.iter().copied().collect();
        folded.sort();
        let meta: BTreeMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("model", self.model.clone()),
            ("method", self.method.name().to_string()),
            ("calibration", self.calibration.to_string()),
            ("operations", (self.scales.len() - 1).to_string()),
            (
                "scales",
                serde_json::to_string(&self.scales).expect("numbers serialize"),
            ),
            (
                "folded",
                serde_json::to_string(&folded).expect("numbers serialize"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        write_atomic(path, &with_metadata(&bytes, &meta))
    }

    /// Reads an int8 model of `model` (whose graph is `graph`) from `path`,
    /// checking that it is one and that it fits the graph.
    pub fn load(path: &Path, model: &str, graph: &Graph) -> Result<QModel> {
        let file = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
        let bad = |e: String| format!("{file}: not a valid safetensors file: {e}");
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let m = |k: &str| meta.get(k).cloned().unwrap_or_default();
        if m("format") != FORMAT {
            return Err(format!(
                "{file} is not an int8 model (no `format: {FORMAT}` in its metadata); make one with \
                 `netc quantize FILE --run RUN --data DIR --calibrate N`"
            ));
        }
        if m("model") != model {
            return Err(format!(
                "{file} is an int8 model of `{}`, not of `{model}`; quantize a run of `{model}`",
                m("model")
            ));
        }
        let ops = graph.all().len();
        let scales: Vec<f32> = serde_json::from_str(&m("scales"))
            .map_err(|e| bad(format!("metadata `scales`: {e}")))?;
        let folded: Vec<usize> = serde_json::from_str(&m("folded"))
            .map_err(|e| bad(format!("metadata `folded`: {e}")))?;
        // A scale divides and multiplies every value of its tensor: zero, a
        // negative or a non-number would turn the outputs into nonsense.
        if let Some((i, s)) = scales
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(format!(
                "{file}: metadata `scales`: operation {i} has scale {s}, not a positive number; quantize the run again"
            ));
        }
        if scales.len() != ops + 1 || m("operations") != ops.to_string() {
            return Err(format!(
                "{file} was quantized from another version of `{model}` ({} operations, this one has {ops}); \
                 quantize again",
                scales.len().saturating_sub(1)
            ));
        }
        let method = match m("method").as_str() {
            "minmax" => Method::MinMax,
            "percentile" => Method::Percentile,
            other => return Err(bad(format!("unknown method `{other}`"))),
        };
        let tensor = |name: &str, want: Dtype| -> Result<(Vec<usize>, Vec<u8>)> {
            let v = st
                .tensor(name)
                .map_err(|_| format!("{file}: no tensor `{name}`; quantize the run again"))?;
            if v.dtype() != want {
                return Err(format!(
                    "{file}: tensor `{name}` is {:?}, expected {want:?}",
                    v.dtype()
                ));
            }
            Ok((v.shape().to_vec(), v.data().to_vec()))
        };
        let floats_of = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let mut layers = HashMap::new();
        let mut floats = Tensors::new();
        let folded: HashSet<usize> = folded.into_iter().collect();
        for (id, op, _) in operations(graph) {
            let (path, rows, shape, relu, bias) = match op {
                Op::Conv {
                    path,
                    cin,
                    cout,
                    kernel,
                    groups,
                    relu,
                    bias,
                    ..
                } => (
                    path,
                    *cout as usize,
                    vec![
                        *cout as usize,
                        (*cin / *groups) as usize,
                        kernel[0] as usize,
                        kernel[1] as usize,
                    ],
                    *relu,
                    *bias || folded.contains(&(id + 1)),
                ),
                Op::Dense {
                    path,
                    inputs,
                    units,
                    relu,
                    bias,
                } => (
                    path,
                    *units as usize,
                    vec![*units as usize, *inputs as usize],
                    *relu,
                    *bias,
                ),
                Op::BatchNorm { path, .. } if !folded.contains(&id) => {
                    for t in ["gamma", "beta", "running_mean", "running_var"] {
                        let name = format!("{path}.{t}");
                        let (shape, b) = tensor(&name, Dtype::F32)?;
                        floats.insert(
                            name,
                            Named {
                                shape,
                                values: floats_of(&b),
                            },
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            let (s, values) = tensor(&format!("{path}.weight"), Dtype::I8)?;
            if s != shape {
                return Err(format!("{file}: `{path}.weight` is {s:?}, the model needs {shape:?}; quantize the run again"));
            }
            let (_, ws) = tensor(&format!("{path}.weight_scale"), Dtype::F32)?;
            let bias = if bias {
                Some(floats_of(&tensor(&format!("{path}.bias"), Dtype::F32)?.1))
            } else {
                None
            };
            let weight_scale = floats_of(&ws);
            if weight_scale.len() != rows || bias.as_ref().is_some_and(|b| b.len() != rows) {
                return Err(format!("{file}: `{path}` has scales or biases of the wrong size; quantize the run again"));
            }
            if weight_scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
                || bias.iter().flatten().any(|b| !b.is_finite())
            {
                return Err(format!(
                    "{file}: `{path}` has a weight scale that is not a positive number or a bias that is not a number; quantize the run again"
                ));
            }
            let values = values.into_iter().map(|b| b as i8).collect();
            layers.insert(
                id,
                QLayer::from_values(path.clone(), shape, rows, values, weight_scale, bias, relu),
            );
        }
        Ok(QModel {
            model: model.into(),
            method,
            calibration: m("calibration").parse().unwrap_or(0),
            input_scale: scales[0],
            scales,
            layers,
            folded,
            floats,
        })
    }
}

/// Whether the safetensors file at `path` is an int8 model, for commands
/// that take float weights to refuse it clearly.
pub fn is_int8(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .is_some_and(|m| m.get("format").map(String::as_str) == Some(FORMAT))
}
