//! Pruning (`netc prune`): magnitude masks (Han et al. 2015) computed from a
//! run's weights, and the weight files that carry them to the runtime,
//! which keeps them applied through fine-tuning (`runtime/src/masks.rs`).
//!
//! Only kernels are pruned: the `weight` of `conv`, `dwconv` and `fc`
//! layers; biases and batch norm's tensors stay dense.

pub mod filters;
pub mod sparse;

use crate::weights::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where a weight file carries masks (the runtime's `masks::PREFIX`).
pub const MASK: &str = "mask/";

/// How thresholds are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// One threshold over every kernel: layers with small weights lose more.
    Global,
    /// The same fraction of every kernel.
    Layer,
}

/// True for the tensors pruning masks: kernels of `conv`, `dwconv`, `fc`.
pub fn prunable(name: &str) -> bool {
    name == "weight" || name.ends_with(".weight")
}

/// Reads `50,75,90`: percentages above 0 and below 100, rising.
pub fn levels(text: &str) -> Result<Vec<f64>, String> {
    let mut out: Vec<f64> = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let v: f64 = p.parse().map_err(|_| {
            format!("--sparsity {text}: `{p}` is not a number; give percentages such as 50,75,90")
        })?;
        if !(v > 0.0 && v < 100.0) {
            return Err(format!(
                "--sparsity {text}: {p} % is outside 0-100; a level is the percentage of \
                 kernel weights set to zero, above 0 and below 100"
            ));
        }
        if out.last().is_some_and(|last| v <= *last) {
            return Err(format!(
                "--sparsity {text}: levels must rise, since each round prunes the previous one's \
                 weights further"
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// Masks (1 keeps, 0 prunes) of the tensors `names` of `weights` that set
/// `sparsity` percent of their values to zero, the smallest in magnitude
/// first: over all of them at once (`Global`) or in each (`Layer`). Weights
/// already zero are the smallest, so a higher level keeps a lower one's
/// zeros. Ties go to the earlier name and position: the same weights always
/// give the same masks.
pub fn magnitude(
    weights: &HashMap<String, Tensor>,
    names: &[String],
    sparsity: f64,
    scope: Scope,
) -> BTreeMap<String, Tensor> {
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    let groups: Vec<Vec<&String>> = match scope {
        Scope::Global => vec![names],
        Scope::Layer => names.into_iter().map(|n| vec![n]).collect(),
    };
    let mut out = BTreeMap::new();
    for group in groups {
        let mut all: Vec<(f32, usize, usize)> = group
            .iter()
            .enumerate()
            .flat_map(|(g, n)| {
                weights[*n]
                    .values
                    .iter()
                    .enumerate()
                    .map(move |(i, v)| (v.abs(), g, i))
            })
            .collect();
        let cut = ((sparsity / 100.0) * all.len() as f64).round() as usize;
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut masks: Vec<Tensor> = group
            .iter()
            .map(|n| Tensor {
                shape: weights[*n].shape.clone(),
                values: vec![1.0; weights[*n].values.len()],
            })
            .collect();
        for &(_, g, i) in &all[..cut] {
            masks[g].values[i] = 0.0;
        }
        for (n, m) in group.into_iter().zip(masks) {
            out.insert(n.clone(), m);
        }
    }
    out
}

/// `weights` with `masks` applied.
pub fn masked(
    weights: &HashMap<String, Tensor>,
    masks: &BTreeMap<String, Tensor>,
) -> BTreeMap<String, Tensor> {
    weights
        .iter()
        .map(|(n, t)| {
            let mut t = t.clone();
            if let Some(m) = masks.get(n) {
                for (v, k) in t.values.iter_mut().zip(&m.values) {
                    if *k == 0.0 {
                        *v = 0.0;
                    }
                }
            }
            (n.clone(), t)
        })
        .collect()
}

/// Writes a safetensors file of `tensors` (float32, names sorted) and
/// `masks` under `mask/`, atomically.
pub fn write(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    masks: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), String> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = |t: &Tensor| -> Vec<u8> { t.values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), bytes(t)))
        .chain(
            masks
                .iter()
                .map(|(n, t)| (format!("{MASK}{n}"), t.shape.clone(), bytes(t))),
        )
        .collect();
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| format!("tensor {n}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let encoded = safetensors::serialize(views, Some(meta))
        .map_err(|e| format!("{}: cannot encode: {e}", path.display()))?;
    crate::driver::write_atomic(path, &encoded)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Zeros among `t`'s values.
pub fn zeros(t: &Tensor) -> usize {
    t.values.iter().filter(|v| **v == 0.0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32]) -> Tensor {
        Tensor {
            shape: vec![values.len()],
            values: values.to_vec(),
        }
    }

    #[test]
    fn levels_are_rising_percentages_inside_0_100() {
        assert_eq!(levels("50, 75,90").unwrap(), [50.0, 75.0, 90.0]);
        for (bad, want) in [
            ("150", "outside 0-100"),
            ("0", "outside 0-100"),
            ("100", "outside 0-100"),
            ("-5", "outside 0-100"),
            ("75,50", "must rise"),
            ("half", "not a number"),
        ] {
            let e = levels(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn global_and_per_layer_thresholds() {
        let w: HashMap<String, Tensor> = [
            ("a.weight".to_string(), t(&[0.1, -0.2, 0.3, -0.4])),
            ("b.weight".to_string(), t(&[1.0, -2.0, 3.0, 0.0])),
        ]
        .into();
        let names: Vec<String> = w.keys().cloned().collect();
        // Four of eight: b's zero and a's three smallest.
        let g = magnitude(&w, &names, 50.0, Scope::Global);
        assert_eq!(g["a.weight"].values, [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(g["b.weight"].values, [1.0, 1.0, 1.0, 0.0]);
        let l = magnitude(&w, &names, 50.0, Scope::Layer);
        assert_eq!(l["a.weight"].values, [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(l["b.weight"].values, [0.0, 1.0, 1.0, 0.0]);
        // A higher level keeps the lower one's zeros.
        let once: HashMap<String, Tensor> = masked(&w, &l).into_iter().collect();
        let again = magnitude(&once, &names, 75.0, Scope::Layer);
        for n in &names {
            for (a, b) in l[n].values.iter().zip(&again[n].values) {
                assert!(*b <= *a, "{n}");
            }
            assert_eq!(zeros(&again[n]), 3);
        }
    }

    #[test]
    fn only_kernels_are_pruned() {
        assert!(prunable("conv1.weight") && prunable("fire2.e1x1.weight"));
        assert!(!prunable("conv1.bias") && !prunable("bn.gamma") && !prunable("bn.running_var"));
    }
}
