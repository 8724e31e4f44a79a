//! A model's tensors by name: `fire2.e3x3.weight`, the path of module fields.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use std::collections::HashMap;

/// A tensor's shape and values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub type Tensors = HashMap<String, Named>;

/// True for state that is measured, not trained (batch norm's running statistics).
pub fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The `.net` name of a generated field: netc writes a layer whose name is a
/// Rust keyword as a raw identifier (`r#type`), and `self`, `Self`, `super`,
/// `crate` and `_` with one `_` more (`self_`, and then `self__` for a layer
/// named `self_`); this undoes both, so tensors keep the names of the `.net`
/// file (the compiler's `proc::namer::rust_field` is the other half).
pub fn label(field: &str) -> &str {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let base = field.trim_end_matches('_');
    let escaped = matches!(base, "self" | "Self" | "super" | "crate" | "");
    if field != base && escaped {
        &field[..field.len() - 1]
    } else {
        field
    }
}

#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(label(name).to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0.join(".")
    }
}

struct Collect {
    path: Path,
    out: Tensors,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        self.out.insert(self.path.name(), Named { shape, values });
    }
}

/// Every float tensor of `model`, by name.
pub fn collect<B: Backend, M: Module<B>>(model: &M) -> Tensors {
    let mut v = Collect {
        path: Path::default(),
        out: HashMap::new(),
    };
    model.visit(&mut v);
    v.out
}

/// Every tensor of a model in training, batch norm's running statistics as
/// its last forward pass left them. burn holds that update pending until the
/// statistics are next read for a forward pass or by `valid`; a visitor
/// (`collect`) sees the value before it, so a checkpoint taken with
/// `collect` would resume one update behind.
pub fn collect_trained<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> Tensors {
    collect(&model.valid())
}

struct Replace<'a> {
    path: Path,
    from: &'a Tensors,
    /// Only tensors whose name passes are replaced.
    keep: &'a dyn Fn(&str) -> bool,
    errors: Vec<String>,
    replaced: usize,
}

impl<B: Backend> ModuleMapper<B> for Replace<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.name();
        if !(self.keep)(&name) {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let new = match self.from.get(&name) {
            None => {
                self.errors.push(format!("no tensor `{name}`"));
                tensor
            }
            Some(t) if t.shape != dims => {
                self.errors.push(format!(
                    "`{name}` has shape {:?}, the model needs {:?}",
                    t.shape, dims
                ));
                tensor
            }
            Some(t) => {
                self.replaced += 1;
                let data = TensorData::new(t.values.clone(), dims);
                // A loaded tensor must stay trainable where the old one was.
                let trainable = tensor.is_require_grad();
                Tensor::from_data(data, &tensor.device()).set_require_grad(trainable)
            }
        };
        Param::from_mapped_value(id, new, mapper)
    }
}

/// `model` with the tensors of `from` put in by name, for those whose name
/// passes `keep`. Fails, listing them, if any is missing or of another shape.
pub fn replace<B: Backend, M: Module<B>>(
    model: M,
    from: &Tensors,
    keep: &dyn Fn(&str) -> bool,
) -> Result<M, Vec<String>> {
    let mut r = Replace {
        path: Path::default(),
        from,
        keep,
        errors: Vec::new(),
        replaced: 0,
    };
    let model = model.map(&mut r);
    if r.errors.is_empty() {
        Ok(model)
    } else {
        Err(r.errors)
    }
}

/// `model` with every tensor taken from `tensors`, read from the file `from`;
/// the error names the file and lists every missing or misshapen tensor.
pub fn load<B: Backend, M: Module<B>>(
    model: M,
    tensors: &Tensors,
    from: &std::path::Path,
) -> crate::Result<M> {
    replace(model, tensors, &|_| true).map_err(|errors| {
        format!(
            "{}: does not fit this model: {}. Weights are named after the .net layers (see docs/checkpoints.md)",
            from.display(),
            errors.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn generated_field_names_map_back_to_net_names() {
        for (field, net) in [
            ("conv1", "conv1"),
            ("r#type", "type"),
            ("self_", "self"),
            ("self__", "self_"),
            ("crate_", "crate"),
            ("__", "_"),
            ("___", "__"),
            ("x_", "x_"),
            ("weight", "weight"),
        ] {
            assert_eq!(label(field), net);
        }
    }
}
