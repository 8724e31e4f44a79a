//! `netc export`: a checked model and a weight file in, one ONNX file out.
//!
//! Everything that can be wrong with the request is found before a byte is
//! written (the output's folder, the run's model, every tensor), and the
//! file is written beside its place then renamed: a failed export leaves
//! nothing, not half a file.

use crate::backend::onnx::{self, preprocess};
use crate::weights::Weights;
use crate::Checked;
use std::path::{Path, PathBuf};

/// The weights to freeze.
#[derive(Debug, Clone)]
pub enum Source {
    /// A run directory (`runs/<model>/<n>/`): its checkpoint, once its
    /// `settings.json` says it trained this model.
    Run(PathBuf),
    /// Any safetensors file with netc's names.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Export {
    pub weights: Source,
    /// The raw weights even where the file has averaged ones.
    pub raw: bool,
    /// Take uint8 32 x 32 x 3 images and preprocess them in the graph.
    pub preprocessing: bool,
    pub out: PathBuf,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub weights: PathBuf,
    pub averaged: bool,
    pub bytes: usize,
}

/// Exports `checked` (model of `file`, whose text is `source`).
pub fn export(file: &str, source: &str, checked: &Checked, e: &Export) -> Result<Written, String> {
    let model = &checked.model;
    let folder = match e.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "{}: cannot write: the folder {} does not exist",
            e.out.display(),
            folder.display()
        ));
    }
    if e.preprocessing {
        if let Some(why) = preprocess::refusal(model) {
            return Err(why);
        }
    }
    let path = match &e.weights {
        Source::Run(dir) => {
            run_of(dir, &model.name)?;
            dir.join(RUN_CHECKPOINT)
        }
        Source::File(path) => path.clone(),
    };
    let weights = Weights::read(&path, e.raw)?;
    weights.fit(&checked.layout, &path)?;
    let options = onnx::Options {
        source,
        file,
        weights_from: &path.display().to_string(),
        preprocessing: e.preprocessing,
    };
    let bytes = onnx::model(model, &checked.layout, &weights, &options);
    crate::driver::write_atomic(&e.out, &bytes)
        .map_err(|err| format!("{}: cannot write: {err}", e.out.display()))?;
    Ok(Written {
        weights: path,
        averaged: weights.averaged,
        bytes: bytes.len(),
    })
}

/// The files of a run directory (the runtime's `run.rs` names them).
const RUN_SETTINGS: &str = "settings.json";
const RUN_CHECKPOINT: &str = "checkpoint.safetensors";

/// Checks that `dir` is a run of `model`; its settings.
pub fn run_of(dir: &Path, model: &str) -> Result<serde_json::Value, String> {
    let settings = dir.join(RUN_SETTINGS);
    let text = std::fs::read_to_string(&settings).map_err(|_| {
        format!(
            "{}: not a run directory (no {RUN_SETTINGS}); runs are runs/<model>/<n>/",
            dir.display()
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| format!("{}: not valid JSON: {err}", settings.display()))?;
    match json["model"].as_str() {
        Some(m) if m == model => Ok(json),
        Some(m) => Err(format!(
            "{}: a run of model {m}, not {model}; give the .net file that defines {m}",
            dir.display()
        )),
        None => Err(format!(
            "{}: names no model; is {} a netc run?",
            settings.display(),
            dir.display()
        )),
    }
}
