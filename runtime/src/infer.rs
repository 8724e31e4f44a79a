//! Labelling image files, like the seed's `label_image`: top five classes
//! with probabilities, and the time it took.

use crate::augment;
use crate::data::SIDE;
use crate::{Net, Result};
use burn::prelude::*;
use image::imageops::FilterType;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Label {
    pub image: String,
    /// (class, probability), most likely first.
    pub top: Vec<(String, f64)>,
    pub milliseconds: f64,
}

/// Any image as 32 x 32 RGB bytes: the shorter side scaled to 32, then the
/// center cut out, as CIFAR-10 images were made.
pub fn load_image(path: &Path) -> Result<Vec<u8>> {
    let img = image::open(path)
        .map_err(|e| format!("{}: unreadable image: {e}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let scale = SIDE as f64 / f64::from(w.min(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(SIDE as u32),
        ((f64::from(h) * scale).round() as u32).max(SIDE as u32),
    );
    let resized = image::imageops::resize(&img, nw, nh, FilterType::Triangle);
    let (x, y) = ((nw - SIDE as u32) / 2, (nh - SIDE as u32) / 2);
    Ok(
        image::imageops::crop_imm(&resized, x, y, SIDE as u32, SIDE as u32)
            .to_image()
            .into_raw(),
    )
}

pub fn label<B: Backend, M: Net<B>>(
    model: &M,
    path: &Path,
    input: [usize; 3],
    classes: &[String],
    device: &B::Device,
) -> Result<Label> {
    let [h, w, _] = input;
    label_with(path, input, classes, |x| {
        let x = Tensor::<B, 4>::from_data(TensorData::new(x, [1, 3, h, w]), device);
        let logits = model.forward(x);
        Ok(logits
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default())
    })
}

/// `label` with any model: `logits` maps one image (C x H x W) to class scores.
pub fn label_with(
    path: &Path,
    input: [usize; 3],
    classes: &[String],
    logits: impl FnOnce(Vec<f32>) -> Result<Vec<f32>>,
) -> Result<Label> {
    let [h, w, _] = input;
    let pixels = load_image(path)?;
    let start = Instant::now();
    let mut x = Vec::with_capacity(3 * h * w);
    augment::to_chw(&augment::eval_example(&pixels, h, w), h, w, &mut x);
    let scores = logits(x)?;
    let top = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exp: Vec<f32> = scores.iter().map(|&v| (v - top).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let probs: Vec<f32> = exp.iter().map(|e| e / sum).collect();
    let milliseconds = start.elapsed().as_secs_f64() * 1e3;
    let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top = ranked
        .into_iter()
        .take(5)
        .map(|(c, p)| {
            let name = classes
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"));
            (name, f64::from(p))
        })
        .collect();
    Ok(Label {
        image: path.display().to_string(),
        top,
        milliseconds,
    })
}
