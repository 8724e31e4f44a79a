//! Names that always compile: what a `.net` name becomes in generated Rust
//! and Python, as naga's `proc::namer`.
//!
//! A name the target cannot take (a keyword, a name the generated code itself
//! uses, a type that CamelCase made equal to another) gets a deterministic
//! suffix, in the generated code only: tensors keep their `.net` paths
//! ([`rust_field`] is undone by the runtime, [`Namer`]'s Python attributes
//! by the module's `NETC_NAMES`).

use super::expr::Var;
use super::layout::Layout;
use std::collections::{HashMap, HashSet};

/// The names a block's code gives its input's height, width and channels
/// (reserved in both targets, so no `.net` name can take them).
pub const INPUTS: [&str; 3] = ["in_height", "in_width", "in_channels"];

/// Rust keywords of every edition, strict and reserved.
#[rustfmt::skip]
pub const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "union", "macro_rules",
    "raw", "safe",
];

/// Keywords that cannot be raw identifiers (`r#self` is an error).
#[rustfmt::skip]
const RUST_NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Names a generated `model.rs` or `main.rs` uses: std's prelude, burn's
/// prelude, what netc imports, and the generated code's own variables.
#[rustfmt::skip]
pub const RUST_RESERVED: &[&str] = &[
    // std prelude
    "Option", "Some", "None", "Result", "Ok", "Err", "Vec", "String", "Box", "ToString",
    "ToOwned", "Clone", "Copy", "Send", "Sync", "Sized", "Unpin", "Drop", "Fn", "FnMut", "FnOnce",
    "Default", "Eq", "PartialEq", "Ord", "PartialOrd", "Iterator", "IntoIterator", "Extend",
    "DoubleEndedIterator", "ExactSizeIterator", "From", "Into", "TryFrom", "TryInto",
    "FromIterator", "AsRef", "AsMut", "Debug", "Hash", "drop", "core", "std", "alloc",
    "usize", "u8", "u16", "u32", "u64", "u128", "isize", "i8", "i16", "i32", "i64", "i128",
    "f32", "f64", "bool", "char", "str",
    // burn's prelude and what netc imports from burn
    "Config", "Module", "Bool", "Device", "ElementConversion", "Float", "Int", "Shape",
    "SliceArg", "Tensor", "TensorData", "Backend", "ToElement", "DeviceOps", "burn",
    "Conv2d", "Conv2dConfig", "AvgPool2d", "AvgPool2dConfig", "BatchNorm", "BatchNormConfig",
    "Dropout", "DropoutConfig", "Linear", "LinearConfig", "PaddingConfig2d", "relu",
    "PhantomData",
    // netc's runtime
    "netc_runtime", "AvgPoolSame", "decay_term", "conv", "concat", "conv_relu", "Lrn", "MaxPool",
    "conv_pool", "conv_relu_pool", "conv_concat", "conv_concat_pool", "dense", "dense_relu",
    "XAVIER", "HE", "ZeroBias", "Kernels", "Net",
    // the generated program's main.rs
    "model", "main", "Autodiff", "Flex", "Cli", "Spec", "Settings", "ExitCode", "SPEC",
    // generated names
    "B", "x", "device", "in_height", "in_width", "in_channels", "backend", "images", "new",
    "forward", "init", "decay_loss",
];

#[rustfmt::skip]
pub const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
    "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
    "while", "with", "yield", "match", "case", "type", "_",
];

/// Names a generated Python module uses: its imports, helpers, the builtins
/// it calls, and the generated code's own variables.
#[rustfmt::skip]
pub const PYTHON_RESERVED: &[&str] = &[
    "json", "np", "torch", "F", "nn", "math", "INPUT", "CLASSES", "Model", "NETC_NAMES",
    "same_padding", "pair", "window_padding", "ceil_fits", "read_safetensors", "load_netc",
    "netc_name", "netc_layout", "file_shape", "is_linear", "LINEAR", "Conv2d",
    "MaxPool", "AvgPool", "Lrn", "Dense", "BatchNorm", "self", "x", "in_height", "in_width",
    "in_channels", "super", "object", "int", "float", "bool", "str", "tuple", "list", "dict",
    "set", "max", "min", "len", "range", "open", "print", "getattr", "setattr", "hasattr",
    "isinstance", "ValueError", "KeyError", "TypeError", "Exception", "NotImplemented",
    "Ellipsis", "__name__", "__file__", "__class__",
    // The torch engine's (templates/pytorch/train.py), which follows the
    // module in the same file: a class of that name would replace it.
    "NETC", "argparse", "fcntl", "os", "socket", "sys", "time", "Path", "dist",
    "DistributedDataParallel", "SIDE", "PIXELS", "RECORD", "CIFAR10_CLASSES", "CHECKPOINT", "LOG",
    "SETTINGS", "SOURCE", "LOCK", "AVERAGED", "MASKS", "MASK", "MAX_BRIGHTNESS", "CONTRAST",
    "MAX_DECAY", "DEFAULT_SEED", "DEFAULT_EVAL_EVERY", "DEFAULT_LOG_EVERY", "OPTIMIZER",
    "SEED_RECIPE", "OPTIMIZERS", "SCHEDULES", "SLOTS", "EVAL_BATCH", "Error", "find_layout",
    "binary_classes", "read_batch", "class_dirs", "decode", "read_folder", "Image", "same_classes",
    "load", "check_classes", "stream", "Sampler", "standardize", "crop", "train_batch", "central",
    "absolute", "write_atomic", "lock", "new_settings", "save_settings", "create_run",
    "same_place", "resume_run", "truncate_log", "Log", "tensors_of", "save_checkpoint",
    "read_weights", "read_state", "put", "is_statistic", "run_masks", "decay_rate",
    "check_recipe", "num", "lr_at", "cross_entropy", "make_optimizer", "optimizer_state",
    "load_optimizer_state", "switch", "arguments", "setup", "evaluate", "STATISTICS_BATCHES",
    "STATISTICS_SEED", "measure_statistics", "autocast", "Progress", "clock", "prune_masks",
    "prune_", "train", "free_port", "worker", "main",
];

/// What `nn.Module` itself holds: a layer cannot be an attribute of that name.
#[rustfmt::skip]
pub const TORCH_MODULE_ATTRIBUTES: &[&str] = &[
    "T_destination", "_apply", "_backward_hooks", "_backward_pre_hooks", "_buffers",
    "_call_impl", "_compiled_call_impl", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_get_name", "_is_full_backward_hook",
    "_load_from_state_dict", "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members",
    "_non_persistent_buffers_set", "_parameters", "_register_load_state_dict_pre_hook",
    "_register_state_dict_hook", "_replicate_for_data_parallel", "_save_to_state_dict",
    "_slow_forward", "_state_dict_hooks", "_state_dict_pre_hooks", "_version",
    "_wrapped_call_impl", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad", "NETC_NAMES",
];

/// The language a [`Namer`] names for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
}

/// Hands out unique names in one scope: a type namespace, a function's
/// variables, a class's attributes.
#[derive(Debug, Clone)]
pub struct Namer {
    taken: HashSet<String>,
    /// Rust types: derive(Module) also defines `{Name}Record` and `{Name}RecordItem`.
    records: bool,
}

impl Namer {
    /// A scope where `reserved` and every keyword of `lang` are taken.
    pub fn new(lang: Lang, reserved: &[&[&str]]) -> Self {
        let keywords = match lang {
            Lang::Rust => RUST_KEYWORDS,
            Lang::Python => PYTHON_KEYWORDS,
        };
        let taken = std::iter::once(keywords)
            .chain(reserved.iter().copied())
            .flatten()
            .map(|s| s.to_string())
            .collect();
        Namer {
            taken,
            records: false,
        }
    }

    /// Rust types: struct names, with the record types burn derives.
    pub fn rust_types() -> Self {
        Namer {
            records: true,
            ..Namer::new(Lang::Rust, &[RUST_RESERVED])
        }
    }

    /// Rust values: a function's parameters and variables.
    pub fn rust_values() -> Self {
        Namer::new(Lang::Rust, &[RUST_RESERVED])
    }

    /// Python module-level names: classes.
    pub fn python_types() -> Self {
        Namer::new(Lang::Python, &[PYTHON_RESERVED])
    }

    /// Python variables and parameters of a method.
    pub fn python_values() -> Self {
        Namer::new(Lang::Python, &[PYTHON_RESERVED])
    }

    /// Python attributes of an `nn.Module`.
    pub fn python_attributes() -> Self {
        Namer::new(Lang::Python, &[TORCH_MODULE_ATTRIBUTES])
    }

    /// Marks `name` as taken, as it is: a generated name, or a `.net` name
    /// that must keep its spelling.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// Whether `name` is still free (for a type, with its record types).
    pub fn is_free(&self, name: &str) -> bool {
        let forms = [
            name.to_string(),
            format!("{name}Record"),
            format!("{name}RecordItem"),
        ];
        let n = if self.records { 3 } else { 1 };
        forms[..n].iter().all(|f| !self.taken.contains(f))
    }

    fn take(&mut self, name: String) -> String {
        if self.records {
            self.taken.insert(format!("{name}Record"));
            self.taken.insert(format!("{name}RecordItem"));
        }
        self.taken.insert(name.clone());
        name
    }

    /// A free name for `base` (a valid identifier): `base` itself, or with
    /// `_` added, or with a number (`_2`, `_3`, ... for snake case, `2`, `3`,
    /// ... for CamelCase).
    pub fn call(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "unnamed" } else { base };
        // `__x` in a Python class becomes `_Class__x`, and `__x__` names
        // belong to the language (`__dict__`, `__call__`): start with one `_`.
        let base = match base.strip_prefix("__") {
            Some(rest) => format!("_{}", rest.trim_start_matches('_')),
            None => base.to_string(),
        };
        if self.is_free(&base) {
            return self.take(base);
        }
        let camel = base.chars().next().is_some_and(char::is_uppercase);
        if !camel && self.is_free(&format!("{base}_")) {
            return self.take(format!("{base}_"));
        }
        // `_` then `__` (which Python leaves alone: it ends with `__`), then
        // `_2`: `__2` would start with `__` and be mangled again.
        let sep = if camel || base == "_" { "" } else { "_" };
        let mut n = 2u64;
        loop {
            let candidate = format!("{base}{sep}{n}");
            if self.is_free(&candidate) {
                return self.take(candidate);
            }
            n += 1;
        }
    }
}

/// `fire` -> `Fire`, `squeeze1` -> `Squeeze1`, `my_block` -> `MyBlock`;
/// a name that would not start with a letter is prefixed with `prefix`.
pub fn camel_case(name: &str, prefix: &str) -> String {
    let out: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect();
    match out.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => out,
        _ => format!("{prefix}{out}"),
    }
}

/// The Rust field of the layer labelled `label`: the label itself, a raw
/// identifier for a keyword (`r#type`), and for the few names that cannot be
/// raw one `_` more (`self_`; `self_` in turn becomes `self__`).
///
/// burn names a tensor after the field path; the runtime's `params::label`
/// undoes this, so checkpoints keep the `.net` names.
pub fn rust_field(label: &str) -> String {
    let base = label.trim_end_matches('_');
    if RUST_NOT_RAW.contains(&base) || (base.is_empty() && !label.is_empty()) {
        format!("{label}_")
    } else if RUST_KEYWORDS.contains(&label) {
        format!("r#{label}")
    } else {
        label.to_string()
    }
}

/// The inverse of [`rust_field`], as the runtime applies it to burn's names.
pub fn rust_field_label(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let base = field.trim_end_matches('_');
    if field != base && (RUST_NOT_RAW.contains(&base) || base.is_empty()) {
        field[..field.len() - 1].to_string()
    } else {
        field.to_string()
    }
}

/// The type name of every struct of `layout`, in order, from `types` (a
/// target's type namespace): the `.net` label in CamelCase, made unique.
pub fn struct_names(layout: &Layout, mut types: Namer) -> Vec<String> {
    layout
        .structs
        .iter()
        .map(|s| {
            let prefix = if s.is_model { "Model" } else { "Block" };
            types.call(&camel_case(&s.label, prefix))
        })
        .collect()
}

/// The names of a struct's size variables in its code: the input sizes'
/// fixed [`INPUTS`], each block parameter as `locals` names it.
pub fn variables(params: &[Var], locals: &mut Namer) -> HashMap<Var, String> {
    params
        .iter()
        .map(|v| {
            let name = match v {
                Var::Input(d) => INPUTS[*d].to_string(),
                Var::Param(p) => locals.call(p),
            };
            (v.clone(), name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module-level name of the generated Python (the module and the
    /// torch engine after it) is reserved, so no class a block becomes can
    /// replace it (`block path` would otherwise shadow pathlib's `Path`).
    #[test]
    fn the_python_templates_names_are_reserved() {
        let templates = [
            include_str!("../../templates/pytorch/module.py.tera"),
            include_str!("../../templates/pytorch/train.py"),
        ];
        let mut missing = Vec::new();
        for line in templates.iter().flat_map(|t| t.lines()) {
            let ident = |s: &str| {
                s.trim()
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            let names: Vec<String> = if let Some(rest) = line.strip_prefix("class ") {
                vec![ident(rest)]
            } else if let Some(rest) = line.strip_prefix("def ") {
                vec![ident(rest)]
            } else if let Some(rest) = line.strip_prefix("import ") {
                vec![ident(rest.rsplit(" as ").next().unwrap_or(rest))]
            } else if let Some((_, rest)) = line
                .strip_prefix("from ")
                .and_then(|r| r.split_once(" import "))
            {
                rest.split(',').map(ident).collect()
            } else if let Some(rest) = line.trim_start().strip_prefix("global ") {
                rest.split(',').map(ident).collect()
            } else if !line.starts_with([' ', '#', '"', ')', ']', '}']) && line.contains(" = ") {
                let lhs = line.split(" = ").next().unwrap_or("");
                lhs.split(',').map(ident).collect()
            } else {
                Vec::new()
            };
            for n in names {
                if !n.is_empty()
                    && !n.contains("{{")
                    && !PYTHON_RESERVED.contains(&n.as_str())
                    && !missing.contains(&n)
                {
                    missing.push(n);
                }
            }
        }
        assert!(missing.is_empty(), "not in PYTHON_RESERVED: {missing:?}");
    }

    #[test]
    fn keywords_and_generated_names_get_a_suffix() {
        let mut rust = Namer::rust_values();
        assert_eq!(rust.call("device"), "device_");
        assert_eq!(rust.call("device"), "device_2");
        assert_eq!(rust.call("x"), "x_");
        assert_eq!(rust.call("in_channels"), "in_channels_");
        assert_eq!(rust.call("type"), "type_");
        assert_eq!(rust.call("gen"), "gen_");
        assert_eq!(rust.call("XAVIER"), "XAVIER2");
        // Labels of underscores alone never get a name Python mangles (`__2`).
        let mut py = Namer::python_attributes();
        let names: Vec<String> = ["_", "__", "___"].iter().map(|l| py.call(l)).collect();
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("__") || n.ends_with("__")),
            "{names:?}"
        );
        assert_eq!(rust.call("k"), "k");
        let mut py = Namer::python_values();
        for (name, want) in [
            ("class", "class_"),
            ("self", "self_"),
            ("F", "F2"),
            ("torch", "torch_"),
            ("super", "super_"),
            ("match", "match_"),
            ("e1", "e1"),
        ] {
            assert_eq!(py.call(name), want);
        }
        let mut attrs = Namer::python_attributes();
        for (name, want) in [
            ("forward", "forward_"),
            ("training", "training_"),
            ("parameters", "parameters_"),
            ("type", "type_"),
            ("lambda", "lambda_"),
            ("__x", "_x"),
            ("__dict__", "_dict__"),
            ("__call__", "_call__"),
            ("conv1", "conv1"),
        ] {
            assert_eq!(attrs.call(name), want);
        }
    }

    #[test]
    fn names_equal_after_case_conversion_differ_in_the_code() {
        let mut types = Namer::rust_types();
        assert_eq!(types.call(&camel_case("my_block", "B")), "MyBlock");
        assert_eq!(types.call(&camel_case("myBlock", "B")), "MyBlock2");
        assert_eq!(types.call(&camel_case("fire", "B")), "Fire");
        assert_eq!(types.call(&camel_case("Fire", "B")), "Fire2");
        assert_eq!(types.call(&camel_case("a__b", "B")), "AB");
        assert_eq!(types.call(&camel_case("a_b", "B")), "AB2");
        // burn derives `FireRecord` for `Fire`.
        assert_eq!(types.call(&camel_case("fire_record", "B")), "FireRecord2");
        // Helper and imported types, and keywords after conversion.
        assert_eq!(types.call(&camel_case("max_pool", "B")), "MaxPool2");
        assert_eq!(types.call(&camel_case("tensor", "B")), "Tensor2");
        assert_eq!(types.call(&camel_case("self", "B")), "Self2");
        assert_eq!(types.call(&camel_case("_", "B")), "B2");
        assert_eq!(types.call(&camel_case("_1", "B")), "B1");
        let mut py = Namer::python_types();
        assert_eq!(py.call(&camel_case("none", "B")), "None2");
        assert_eq!(py.call(&camel_case("dense", "B")), "Dense2");
        assert_eq!(py.call(&camel_case("model", "B")), "Model2");
        assert_eq!(py.call(&camel_case("my_block", "B")), "MyBlock");
        assert_eq!(py.call(&camel_case("myBlock", "B")), "MyBlock2");
    }

    #[test]
    fn rust_fields_keep_their_label_through_the_runtime() {
        for (label, field) in [
            ("conv1", "conv1"),
            ("type", "r#type"),
            ("gen", "r#gen"),
            ("self", "self_"),
            ("self_", "self__"),
            ("Self", "Self_"),
            ("crate", "crate_"),
            ("super", "super_"),
            ("_", "__"),
            ("__", "___"),
            ("x_", "x_"),
            ("device", "device"),
        ] {
            assert_eq!(rust_field(label), field);
            assert_eq!(rust_field_label(field), label, "{field}");
        }
    }
}
