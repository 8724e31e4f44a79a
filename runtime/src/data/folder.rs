//! Image folders: `<split>/<class>/*.png|jpg`, class index = sorted folder name.

use super::{Dataset, PIXELS, SIDE};
use crate::Result;
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    Ok(out)
}

/// The largest side and memory one data set image may claim: a damaged
/// header must not make loading allocate gigabytes.
const MAX_SIDE: u32 = 4096;
const MAX_BYTES: u64 = 64 << 20;

/// Decodes one image to 32 x 32 RGB bytes, resizing any other size.
pub fn decode(path: &Path) -> Result<Vec<u8>> {
    let unreadable =
        |e: &dyn std::fmt::Display| format!("{}: unreadable image: {e}", path.display());
    let mut reader = image::ImageReader::open(path).map_err(|e| unreadable(&e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| unreadable(&e))?;
    let rgb = img.to_rgb8();
    let rgb = if rgb.dimensions() == (SIDE as u32, SIDE as u32) {
        rgb
    } else {
        image::imageops::resize(&rgb, SIDE as u32, SIDE as u32, FilterType::Triangle)
    };
    Ok(rgb.into_raw())
}

/// The class folders of `split`, sorted: their order gives the labels.
fn class_dirs(split: &Path) -> Result<Vec<PathBuf>> {
    if !split.is_dir() {
        return Err(format!("{}: no such folder", split.display()));
    }
    Ok(sorted_entries(split)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The class names of `split`, in label order.
pub fn class_names(split: &Path) -> Result<Vec<String>> {
    Ok(class_dirs(split)?.iter().map(|d| name(d)).collect())
}

pub fn read_folder(split: &Path) -> Result<Dataset> {
    let class_dirs = class_dirs(split)?;
    if class_dirs.is_empty() {
        return Err(format!(
            "{}: no class folders; expected {}/<class>/*.png",
            split.display(),
            split.display()
        ));
    }
    let mut files = Vec::new();
    let mut classes = Vec::new();
    for (label, dir) in class_dirs.iter().enumerate() {
        let images: Vec<PathBuf> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        if images.is_empty() {
            return Err(format!(
                "{}: empty class, no .png or .jpg files",
                dir.display()
            ));
        }
        if label > usize::from(u8::MAX) {
            return Err(format!("{}: more than 256 classes", split.display()));
        }
        classes.push(name(dir));
        files.extend(images.into_iter().map(|p| (p, label as u8)));
    }
    let mut images = vec![0u8; files.len() * PIXELS];
    // Decoding dominates loading: split it across the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let jobs: Vec<_> = files
            .chunks(per)
            .zip(images.chunks_mut(per * PIXELS))
            .map(|(chunk, out)| {
                s.spawn(move || -> Result<()> {
                    for ((path, _), dst) in chunk.iter().zip(out.chunks_mut(PIXELS)) {
                        dst.copy_from_slice(&decode(path)?);
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .unwrap_or_else(|_| Err("image decoding panicked".into()))
        })
    })?;
    Ok(Dataset {
        images,
        labels: files.iter().map(|(_, l)| *l).collect(),
        classes,
    })
}
