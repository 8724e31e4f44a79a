//! Test accuracy, per-class accuracy and the confusion matrix.

use crate::augment;
use crate::data::Dataset;
use crate::Net;
use burn::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub examples: usize,
    pub accuracy: f64,
    pub classes: Vec<String>,
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<u64>>,
}

/// Images `indices` of `data` as one N x C x H x W tensor of central crops.
pub fn eval_batch<B: Backend>(
    data: &Dataset,
    indices: std::ops::Range<usize>,
    hw: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 4> {
    let [h, w] = hw;
    let n = indices.len();
    let mut x = Vec::with_capacity(n * 3 * h * w);
    for i in indices {
        augment::to_chw(&augment::eval_example(data.image(i), h, w), h, w, &mut x);
    }
    Tensor::from_data(TensorData::new(x, [n, 3, h, w]), device)
}

/// Predicted class of every example, in order.
pub fn predict<B: Backend, M: Net<B>>(
    model: &M,
    data: &Dataset,
    hw: [usize; 2],
    batch: usize,
    device: &B::Device,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch).min(data.len());
        let logits = model.forward(eval_batch::<B>(data, start..end, hw, device));
        let pred = logits.argmax(1).into_data().convert::<i64>();
        out.extend(pred.iter::<i64>().map(|p| p as usize));
        start = end;
    }
    out
}

pub fn evaluate<B: Backend, M: Net<B>>(
    model: &M,
    data: &Dataset,
    hw: [usize; 2],
    batch: usize,
    device: &B::Device,
) -> Evaluation {
    score(predict(model, data, hw, batch, device), data)
}

/// The evaluation of predictions `preds` (one per example of `data`, in order).
pub fn score(preds: Vec<usize>, data: &Dataset) -> Evaluation {
    let k = data.classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (pred, &label) in preds.into_iter().zip(&data.labels) {
        confusion[usize::from(label)][pred.min(k - 1)] += 1;
    }
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: u64 = row.iter().sum();
            if total == 0 {
                0.0
            } else {
                row[c] as f64 / total as f64
            }
        })
        .collect();
    Evaluation {
        examples: data.len(),
        accuracy: if data.is_empty() {
            0.0
        } else {
            correct as f64 / data.len() as f64
        },
        classes: data.classes.clone(),
        per_class,
        confusion,
    }
}

impl Evaluation {
    /// Accuracy, per-class accuracy and the confusion matrix as text.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "test accuracy {:.2} % on {} images",
            100.0 * self.accuracy,
            self.examples
        );
        let _ = writeln!(
            out,
            "\n{:<12} {:>8}   confusion (rows: true class, columns: predicted)",
            "class", "accuracy"
        );
        for (c, name) in self.classes.iter().enumerate() {
            let row: Vec<String> = self.confusion[c]
                .iter()
                .map(|n| format!("{n:>5}"))
                .collect();
            let _ = writeln!(
                out,
                "{name:<12} {:>7.1} %  {}",
                100.0 * self.per_class[c],
                row.join("")
            );
        }
        out
    }
}
