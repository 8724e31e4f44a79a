//! The sweep's manifest, `sweep.json` in its directory: what was asked and
//! where each variant stands, rewritten whole (a temporary file, then a
//! rename) after every change, so an interrupted sweep knows where it stopped.

use super::Change;
use std::path::Path;

pub const FILE: &str = "sweep.json";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not started.
    Pending,
    /// Started; if the sweep stops now, its run is resumed next time.
    Running,
    /// Trained to the end.
    Done,
    /// Its training failed (the error says why).
    Failed,
    /// `netc check` refused it (the error says why); never run.
    Refused,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The variant's model name, file stem and run folder.
    pub name: String,
    /// Its `.net` file, relative to the sweep directory.
    pub file: String,
    /// Empty for the base.
    pub changes: Vec<Change>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its run directory, relative to the sweep directory, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// How many times it was resumed after an interruption.
    #[serde(default)]
    pub resumed: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The base `.net` file as given.
    pub base: String,
    pub model: String,
    /// Each `--vary`, as given.
    pub vary: Vec<String>,
    pub grid: bool,
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Every KEY with its value in the base.
    pub base_values: Vec<Change>,
    pub variants: Vec<Entry>,
}

/// The manifest in `dir`, if there is one.
pub fn read(dir: &Path) -> Result<Option<Manifest>, String> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "{}: damaged ({e}); remove it to start the sweep again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn write(dir: &Path, m: &Manifest) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(m).map_err(|e| e.to_string())?;
    text.push('\n');
    crate::report::write_file(&dir.join(FILE), text.as_bytes())
}
