//! Pruning masks (`netc prune`): tensors of 0 and 1 by `.net` name, kept
//! applied through training. A pruned run starts from a weight file that
//! carries them under `mask/` (`mask/fc1.weight`) beside the weights; the run
//! copies them once into its own `masks.safetensors`, which a resume reads,
//! so the run needs the file it started from no more than it needs
//! `--init-from` for its weights.
//!
//! After every optimizer step the masked weights are set back to zero, and so
//! are their moving averages: a pruned weight stays exactly 0 through the
//! gradient, the weight decay and the average.

use crate::checkpoint::Checkpoint;
use crate::params::{label, Tensors};
use crate::Result;
use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use std::path::Path;

/// The run's copy of its masks.
pub const MASKS: &str = "masks.safetensors";
/// Where a weight file carries masks.
pub const PREFIX: &str = "mask/";

/// Masks by tensor name; empty for an unpruned run, which then costs nothing.
#[derive(Debug, Clone, Default)]
pub struct Masks(pub Tensors);

impl Masks {
    /// The masks of the run in `dir`: its own copy, or else the ones its
    /// `init_from` file carries, copied into the run. Each must match a
    /// tensor of `model` in shape and hold only 0 and 1.
    pub fn of_run(dir: &Path, init_from: Option<&Path>, model: &Tensors) -> Result<Masks> {
        let own = dir.join(MASKS);
        if own.exists() {
            let masks = Masks(Checkpoint::load(&own)?.raw);
            masks.check(model, &own)?;
            return Ok(masks);
        }
        // The copy is made before the first checkpoint: a run with a
        // checkpoint and no copy was not pruned, and its --init-from file
        // may be gone.
        let Some(path) = init_from.filter(|_| !dir.join(crate::run::CHECKPOINT).exists()) else {
            return Ok(Masks::default());
        };
        let masks = Masks(carried(Checkpoint::load(path)?.raw));
        masks.check(model, path)?;
        if !masks.0.is_empty() {
            masks.save(&own)?;
        }
        Ok(masks)
    }

    /// Refuses masks that name no tensor of the model, have its shape
    /// wrong, or hold anything but 0 and 1.
    pub fn check(&self, model: &Tensors, from: &Path) -> Result<()> {
        let mut bad: Vec<String> = self
            .0
            .iter()
            .filter_map(|(name, m)| match model.get(name) {
                None => Some(format!("`{PREFIX}{name}` masks no tensor of the model")),
                Some(t) if t.shape != m.shape => Some(format!(
                    "`{PREFIX}{name}` has shape {:?}, the tensor {:?}",
                    m.shape, t.shape
                )),
                Some(_) if m.values.iter().any(|v| *v != 0.0 && *v != 1.0) => {
                    Some(format!("`{PREFIX}{name}` holds values other than 0 and 1"))
                }
                Some(_) => None,
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        bad.sort();
        Err(format!(
            "{}: the pruning masks do not fit this model: {}",
            from.display(),
            bad.join("; ")
        ))
    }

    /// Writes the masks under their plain names (`fc1.weight`), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Checkpoint {
            raw: self.0.clone(),
            ..Checkpoint::default()
        }
        .save(path)
    }

    /// `model` with its masked weights set to zero.
    pub fn apply<B: Backend, M: Module<B>>(&self, model: M) -> M {
        if self.0.is_empty() {
            return model;
        }
        model.map(&mut Zero {
            path: Vec::new(),
            masks: self,
        })
    }

    /// The same on tensors by name (the moving average, a weight file).
    pub fn apply_to(&self, tensors: &mut Tensors) {
        for (name, m) in &self.0 {
            if let Some(t) = tensors.get_mut(name) {
                for (v, keep) in t.values.iter_mut().zip(&m.values) {
                    if *keep == 0.0 {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

/// The tensors of `file` under `mask/`, by the name they mask.
pub fn carried(file: Tensors) -> Tensors {
    file.into_iter()
        .filter_map(|(n, t)| Some((n.strip_prefix(PREFIX)?.to_string(), t)))
        .collect()
}

struct Zero<'a> {
    path: Vec<String>,
    masks: &'a Masks,
}

impl<B: Backend> ModuleMapper<B> for Zero<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(label(name).to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(mask) = self.masks.0.get(&self.path.join(".")) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let trainable = tensor.is_require_grad();
        let device = tensor.device();
        let keep =
            Tensor::<B, D>::from_data(TensorData::new(mask.values.clone(), tensor.dims()), &device);
        // Filled, not multiplied: +0.0 exactly, never -0.0. A new leaf: the
        // result must not carry the old step's graph.
        let new = tensor
            .mask_fill(keep.equal_elem(0.0), 0.0)
            .detach()
            .set_require_grad(trainable);
        Param::from_mapped_value(id, new, mapper)
    }
}
