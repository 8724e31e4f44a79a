//! Checkpoints: one safetensors file holding the raw weights under their
//! layer names (`conv1.weight`) and the averaged ones under `ema/`
//! (`ema/conv1.weight`), the optimizer's state under `optim/`
//! (`optim/m/conv1.weight`), with the step and settings as metadata. Written to a
//! temporary file, then renamed: a crash never leaves a broken checkpoint.
//! The same tensors and metadata always give the same bytes.

use crate::params::{Named, Tensors};
use crate::sparse;
use crate::Result;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const AVERAGED: &str = "ema/";
/// The optimizer's state: `optim/<slot>/<tensor>`.
pub const OPTIMIZER: &str = "optim/";

#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub raw: Tensors,
    pub averaged: Option<Tensors>,
    /// The optimizer's state by `<slot>/<tensor>` (`m/conv1.weight`); empty
    /// for the seed's SGD and for weight files.
    pub optimizer: Tensors,
    /// Sorted, so that identical runs write identical files.
    pub metadata: BTreeMap<String, String>,
}

/// The temporary file `write_atomic` writes before renaming it to `path`.
pub fn temporary(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes_of = |t: &Named| {
            t.values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut metadata = self.metadata.clone();
        let all = self.raw.iter().map(|(n, t)| (n.clone(), t)).chain(
            self.averaged
                .iter()
                .flatten()
                .map(|(n, t)| (format!("{AVERAGED}{n}"), t)),
        );
        for (name, t) in all {
            if sparse::worth(&name, t) {
                // A pruned kernel: a bitmask and its other values.
                let (bits, values) = sparse::encode(t);
                let shape = serde_json::to_string(&t.shape).expect("a shape serializes");
                metadata.insert(format!("{}{name}", sparse::SHAPE), shape);
                let n = values.len();
                let values = Named {
                    shape: vec![n],
                    values,
                };
                owned.push((
                    format!("{}{name}", sparse::BITS),
                    Dtype::U8,
                    vec![bits.len()],
                    bits,
                ));
                owned.push((
                    format!("{}{name}", sparse::VALUES),
                    Dtype::F32,
                    vec![n],
                    bytes_of(&values),
                ));
            } else {
                owned.push((name, Dtype::F32, t.shape.clone(), bytes_of(t)));
            }
        }
        for (name, t) in &self.optimizer {
            owned.push((
                format!("{OPTIMIZER}{name}"),
                Dtype::F32,
                t.shape.clone(),
                bytes_of(t),
            ));
        }
        owned.sort_by(|a, b| a.0.cmp(&b.0));
        let views = owned
            .iter()
            .map(|(n, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| format!("tensor {n}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        // safetensors writes its metadata map in hash order, which differs
        // from run to run: encode without it, then put it in sorted.
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| format!("{}: cannot encode: {e}", path.display()))?;
        write_atomic(path, &with_metadata(&bytes, &metadata))
    }

    /// Weights to compute with: `load`, refusing any tensor that is not all
    /// finite numbers, since a model with one computes nothing meaningful.
    pub fn load_weights(path: &Path) -> Result<Self> {
        let ck = Self::load(path)?;
        let all = ck
            .raw
            .iter()
            .map(|(n, t)| (n.clone(), t))
            .chain(
                ck.averaged
                    .iter()
                    .flatten()
                    .map(|(n, t)| (format!("{AVERAGED}{n}"), t)),
            )
            .chain(
                ck.optimizer
                    .iter()
                    .map(|(n, t)| (format!("{OPTIMIZER}{n}"), t)),
            );
        let mut bad: Vec<String> = all
            .filter_map(|(name, t)| {
                let n = t.values.iter().filter(|v| !v.is_finite()).count();
                (n > 0).then(|| format!("`{name}` ({n} of {})", t.values.len()))
            })
            .collect();
        if bad.is_empty() {
            return Ok(ck);
        }
        bad.sort();
        Err(format!(
            "{}: tensors hold NaN or infinite values: {}. These weights come from a run that \
             diverged or a broken export; use an earlier checkpoint or retrain",
            path.display(),
            bad.join(", ")
        ))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let bad = |e: String| format!("{}: not a valid safetensors file: {e}", path.display());
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut out = Checkpoint {
            metadata: meta
                .metadata()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Checkpoint::default()
        };
        let mut bits = HashMap::new();
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if let Some(inner) = name.strip_prefix(sparse::BITS) {
                if view.dtype() != Dtype::U8 {
                    return Err(bad(format!(
                        "tensor `{name}` is {:?}, not U8",
                        view.dtype()
                    )));
                }
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
            tensors.push((
                name,
                Named {
                    shape: view.shape().to_vec(),
                    values,
                },
            ));
        }
        // Sparse kernels back to dense ones; their shapes leave the metadata.
        let mut sparse_shapes: BTreeMap<String, String> = BTreeMap::new();
        out.metadata
            .retain(|k, v| match k.strip_prefix(sparse::SHAPE) {
                Some(name) => {
                    sparse_shapes.insert(name.to_string(), v.clone());
                    false
                }
                None => true,
            });
        let mut values: HashMap<String, Named> = HashMap::new();
        tensors.retain(|(name, t)| match name.strip_prefix(sparse::VALUES) {
            Some(inner) => {
                values.insert(inner.to_string(), t.clone());
                false
            }
            None => true,
        });
        for (name, shape) in sparse_shapes {
            let damaged = |why: String| bad(format!("sparse tensor `{name}`: {why}"));
            let shape: Vec<usize> = serde_json::from_str(&shape)
                .map_err(|e| damaged(format!("shape {shape:?}: {e}")))?;
            let (Some(b), Some(v)) = (bits.remove(&name), values.remove(&name)) else {
                return Err(damaged("its bits or values are missing".into()));
            };
            let dense = sparse::decode(&shape, &b, &v.values).map_err(damaged)?;
            tensors.push((
                name,
                Named {
                    shape,
                    values: dense,
                },
            ));
        }
        if let Some(name) = bits.keys().chain(values.keys()).next() {
            return Err(bad(format!(
                "sparse tensor `{name}` has no shape in the metadata"
            )));
        }
        for (name, t) in tensors {
            if let Some(inner) = name.strip_prefix(AVERAGED) {
                out.averaged
                    .get_or_insert_with(HashMap::new)
                    .insert(inner.to_string(), t);
            } else if let Some(inner) = name.strip_prefix(OPTIMIZER) {
                out.optimizer.insert(inner.to_string(), t);
            } else {
                out.raw.insert(name, t);
            }
        }
        Ok(out)
    }
}

/// A safetensors file `encoded` without metadata, with `metadata` added as
/// the header's first entry in sorted order; tensor offsets count from the
/// end of the header, so they stay valid.
pub(crate) fn with_metadata(encoded: &[u8], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    if metadata.is_empty() {
        return encoded.to_vec();
    }
    let n = u64::from_le_bytes(encoded[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&encoded[8..8 + n])
        .expect("safetensors writes a UTF-8 header")
        .trim_end();
    let tensors = header
        .strip_prefix('{')
        .and_then(|h| h.strip_suffix('}'))
        .expect("safetensors writes a JSON object");
    let meta = serde_json::to_string(metadata).expect("strings serialize");
    let mut header = match tensors {
        "" => format!("{{\"__metadata__\":{meta}}}"),
        t => format!("{{\"__metadata__\":{meta},{t}}}"),
    };
    // The data that follows starts 8-byte aligned, as safetensors does it.
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + encoded.len() - 8 - n);
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(&encoded[8 + n..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_gives_the_same_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let t = |v: Vec<f32>, shape: Vec<usize>| Named { shape, values: v };
        let ck = Checkpoint {
            raw: [(
                "conv1.weight".to_string(),
                t(vec![1., 2., 3., 4.], vec![1, 1, 2, 2]),
            )]
            .into(),
            averaged: Some(
                [(
                    "conv1.weight".to_string(),
                    t(vec![0.5; 4], vec![1, 1, 2, 2]),
                )]
                .into(),
            ),
            metadata: [("step".to_string(), "7".to_string())].into(),
            optimizer: [(
                "m/conv1.weight".to_string(),
                t(vec![0.25; 4], vec![1, 1, 2, 2]),
            )]
            .into(),
        };
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.raw, ck.raw);
        assert_eq!(back.averaged, ck.averaged);
        assert_eq!(back.optimizer, ck.optimizer);
        assert_eq!(back.metadata["step"], "7");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn pruned_kernels_are_stored_sparsely_and_load_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (dense, sparse) = (
            dir.path().join("d.safetensors"),
            dir.path().join("s.safetensors"),
        );
        let kernel = |pruned: bool| Named {
            shape: vec![16, 16],
            values: (0..256)
                .map(|i| {
                    if pruned && i % 4 != 0 {
                        0.0
                    } else {
                        i as f32 - 100.5
                    }
                })
                .collect(),
        };
        let ck = |pruned: bool| Checkpoint {
            raw: [("fc.weight".to_string(), kernel(pruned))].into(),
            averaged: Some([("fc.weight".to_string(), kernel(pruned))].into()),
            metadata: [("step".to_string(), "3".to_string())].into(),
            ..Checkpoint::default()
        };
        ck(false).save(&dense).unwrap();
        ck(true).save(&sparse).unwrap();
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(
            size(&sparse) * 2 < size(&dense),
            "{} vs {}",
            size(&sparse),
            size(&dense)
        );
        let back = Checkpoint::load(&sparse).unwrap();
        assert_eq!(back.raw, ck(true).raw);
        assert_eq!(back.averaged, ck(true).averaged);
        assert_eq!(
            back.metadata,
            ck(true).metadata,
            "the shapes leave the metadata"
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not safetensors at all").unwrap();
        let e = Checkpoint::load(&path).unwrap_err();
        assert!(e.contains("bad.safetensors"), "{e}");
    }

    #[test]
    fn the_same_checkpoint_is_always_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let bytes: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                let ck = Checkpoint {
                    raw: (0..6)
                        .map(|i| {
                            let t = Named {
                                shape: vec![2],
                                values: vec![i as f32, 1.0],
                            };
                            (format!("layer{i}.weight"), t)
                        })
                        .collect(),
                    averaged: None,
                    optimizer: Tensors::new(),
                    metadata: (0..8).map(|i| (format!("key{i}"), i.to_string())).collect(),
                };
                ck.save(&path).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        assert!(bytes.iter().all(|b| *b == bytes[0]));
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.metadata.len(), 8);
        assert_eq!(back.raw["layer3.weight"].values, [3.0, 1.0]);
        // The header is padded so the data stays 8-byte aligned.
        let n = u64::from_le_bytes(bytes[0][..8].try_into().unwrap());
        assert_eq!(n % 8, 0);
    }

    #[test]
    fn weights_that_are_not_numbers_name_the_file_and_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = |values: Vec<f32>| Named {
            shape: vec![values.len()],
            values,
        };
        Checkpoint {
            raw: [
                ("a".to_string(), t(vec![1.0, f32::NAN])),
                ("b".to_string(), t(vec![1.0])),
            ]
            .into(),
            averaged: Some([("b".to_string(), t(vec![f32::NEG_INFINITY]))].into()),
            metadata: BTreeMap::new(),
            optimizer: Tensors::new(),
        }
        .save(&path)
        .unwrap();
        assert!(Checkpoint::load(&path).is_ok());
        let e = Checkpoint::load_weights(&path).unwrap_err();
        assert!(
            e.contains("w.safetensors") && e.contains("`a` (1 of 2), `ema/b` (1 of 1)"),
            "{e}"
        );
    }
}
