//! netc's weight files read by the compiler (`netc export`): the
//! safetensors checkpoints of docs/checkpoints.md, raw weights under `.net`
//! paths and their average under `ema/`, checked against a model.
//!
//! The runtime reads the same files with burn (`runtime/src/checkpoint.rs`);
//! this side only needs the numbers, and refuses what the runtime refuses:
//! a missing or misshapen tensor, values that are not finite.

use crate::proc::layout::Layout;
use crate::proc::sizes;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where the averaged weights live in a checkpoint.
pub const AVERAGED: &str = "ema/";
/// Pruned kernels stored sparsely (the runtime's `sparse.rs`): bits, values,
/// and the shape in the metadata.
const SPARSE_BITS: &str = "sparse/bits/";
const SPARSE_VALUES: &str = "sparse/values/";
const SPARSE: &str = "sparse/";

/// A tensor's shape and values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The weights chosen from one file.
#[derive(Debug, Clone)]
pub struct Weights {
    /// By `.net` path, without `ema/`.
    pub tensors: HashMap<String, Tensor>,
    /// Whether they are the averaged ones (`ema/`).
    pub averaged: bool,
    /// The file's metadata (`step`, `model`, `seed` for a run's checkpoint).
    pub metadata: BTreeMap<String, String>,
}

impl Weights {
    /// Reads `path`: the averaged weights when the file has them and `raw`
    /// is off, as `netc eval` and `netc infer` do, else the raw ones.
    pub fn read(path: &Path, raw: bool) -> Result<Weights, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let bad = |e: String| format!("{}: not a valid safetensors file: {e}", path.display());
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut metadata: BTreeMap<String, String> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (mut bits, mut stored) = (HashMap::new(), HashMap::new());
        let mut all = Vec::new();
        for (name, view) in st.tensors() {
            if let Some(inner) = name.strip_prefix(SPARSE_BITS) {
                bits.insert(inner.to_string(), view.data().to_vec());
                continue;
            }
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => {
                    return Err(bad(format!(
                        "tensor `{name}` is {other:?}; netc reads F32 and F64"
                    )))
                }
            };
            match name.strip_prefix(SPARSE_VALUES) {
                Some(inner) => {
                    stored.insert(inner.to_string(), values);
                }
                None => all.push((
                    name,
                    Tensor {
                        shape: view.shape().to_vec(),
                        values,
                    },
                )),
            }
        }
        // Pruned kernels stored sparsely (runtime/src/sparse.rs) back to dense.
        let shapes: Vec<(String, String)> = metadata
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(SPARSE)?.to_string(), v.clone())))
            .collect();
        for (name, shape) in shapes {
            metadata.remove(&format!("{SPARSE}{name}"));
            let damaged = |why: &str| bad(format!("sparse tensor `{name}`: {why}"));
            let shape: Vec<usize> =
                serde_json::from_str(&shape).map_err(|_| damaged("bad shape"))?;
            let (Some(b), Some(v)) = (bits.remove(&name), stored.remove(&name)) else {
                return Err(damaged("its bits or values are missing"));
            };
            let n: usize = shape.iter().product();
            if b.len() != n.div_ceil(8) {
                return Err(damaged("its bits do not fit its shape"));
            }
            let mut values = vec![0.0; n];
            let mut next = v.into_iter();
            for (i, x) in values.iter_mut().enumerate() {
                if b[i / 8] >> (i % 8) & 1 == 1 {
                    *x = next
                        .next()
                        .ok_or_else(|| damaged("fewer values than bits"))?;
                }
            }
            if next.next().is_some() {
                return Err(damaged("more values than bits"));
            }
            all.push((name, Tensor { shape, values }));
        }
        let averaged = !raw && all.iter().any(|(n, _)| n.starts_with(AVERAGED));
        let mut tensors = HashMap::new();
        for (name, t) in all {
            let inner = match name.strip_prefix(AVERAGED) {
                Some(inner) if averaged => inner.to_string(),
                None if !averaged => name.clone(),
                _ => continue,
            };
            tensors.insert(inner, t);
        }
        Ok(Weights {
            tensors,
            averaged,
            metadata,
        })
    }

    /// Checks that these weights, read from `path`, hold every tensor of the
    /// model with its shape and finite values; the error names the file and
    /// lists every problem. Extra tensors are ignored, as the runtime does.
    pub fn fit(&self, layout: &Layout, path: &Path) -> Result<(), String> {
        let which = if self.averaged { AVERAGED } else { "" };
        let mut problems = Vec::new();
        for (name, shape) in sizes::tensors(layout) {
            match self.tensors.get(&name) {
                None => problems.push(format!("no tensor `{which}{name}`")),
                Some(t) if t.shape != shape => problems.push(format!(
                    "`{which}{name}` has shape {:?}, the model needs {shape:?}",
                    t.shape
                )),
                Some(t) => {
                    let bad = t.values.iter().filter(|v| !v.is_finite()).count();
                    if bad > 0 {
                        problems.push(format!(
                            "`{which}{name}` holds {bad} NaN or infinite values of {}",
                            t.values.len()
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{}: does not fit model {}: {}. Weights are named after the .net layers \
             (see docs/checkpoints.md)",
            path.display(),
            layout.model().label,
            problems.join("; ")
        ))
    }

    /// A tensor the model holds; `fit` has checked that it is here.
    pub fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` was checked by Weights::fit"))
    }
}
