//! The official binary format: records of one label byte and 3,072 pixel
//! bytes (the red plane, then green, then blue, each row-major).

use super::{CIFAR10_CLASSES, PIXELS, SIDE};
use crate::Result;
use std::path::Path;

pub const RECORD: usize = 1 + PIXELS;

/// Class names from `batches.meta.txt` when present, else CIFAR-10's.
pub fn class_names(dir: &Path) -> Vec<String> {
    let from_meta = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .ok()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|names| !names.is_empty());
    from_meta.unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
}

/// Reads one batch file into images (32 x 32 x 3, interleaved) and labels.
pub fn read_batch(path: &Path, classes: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "{}: {} bytes is not a whole number of {RECORD}-byte records (1 label + 3072 pixels); \
             the file is truncated or not a CIFAR-10 batch",
            path.display(),
            bytes.len()
        ));
    }
    let n = bytes.len() / RECORD;
    let mut images = vec![0u8; n * PIXELS];
    let mut labels = Vec::with_capacity(n);
    let plane = SIDE * SIDE;
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        if usize::from(label) >= classes {
            return Err(format!(
                "{}: record {i} has label {label}, but there are {classes} classes",
                path.display()
            ));
        }
        labels.push(label);
        let pixels = &record[1..];
        let out = &mut images[i * PIXELS..(i + 1) * PIXELS];
        for p in 0..plane {
            for c in 0..3 {
                out[p * 3 + c] = pixels[c * plane + p];
            }
        }
    }
    Ok((images, labels))
}
