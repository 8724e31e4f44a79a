//! Checkpoints: one safetensors file holding the raw weights under their
//! layer names (`conv1.weight`) and the averaged ones under `ema/`
//! (`ema/conv1.weight`), with the step and settings as metadata. Written to a
//! temporary file, then renamed: a crash never leaves a broken checkpoint.

use crate::params::{Named, Tensors};
use crate::Result;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const AVERAGED: &str = "ema/";

#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub raw: Tensors,
    pub averaged: Option<Tensors>,
    pub metadata: HashMap<String, String>,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
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
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, t) in &self.raw {
            owned.push((name.clone(), t.shape.clone(), bytes_of(t)));
        }
        for (name, t) in self.averaged.iter().flatten() {
            owned.push((format!("{AVERAGED}{name}"), t.shape.clone(), bytes_of(t)));
        }
        owned.sort_by(|a, b| a.0.cmp(&b.0));
        let views = owned
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| format!("tensor {n}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, Some(self.metadata.clone()))
            .map_err(|e| format!("{}: cannot encode: {e}", path.display()))?;
        write_atomic(path, &bytes)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let bad = |e: String| format!("{}: not a valid safetensors file: {e}", path.display());
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut out = Checkpoint {
            metadata: meta.metadata().clone().unwrap_or_default(),
            ..Checkpoint::default()
        };
        for (name, view) in st.tensors() {
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
            let t = Named {
                shape: view.shape().to_vec(),
                values,
            };
            match name.strip_prefix(AVERAGED) {
                Some(inner) => {
                    out.averaged
                        .get_or_insert_with(HashMap::new)
                        .insert(inner.to_string(), t);
                }
                None => {
                    out.raw.insert(name, t);
                }
            }
        }
        Ok(out)
    }
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
        };
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.raw, ck.raw);
        assert_eq!(back.averaged, ck.averaged);
        assert_eq!(back.metadata["step"], "7");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not safetensors at all").unwrap();
        let e = Checkpoint::load(&path).unwrap_err();
        assert!(e.contains("bad.safetensors"), "{e}");
    }
}
