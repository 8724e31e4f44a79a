//! Int8 post-training quantization and int8 inference.
//!
//! The model runs here through an interpreter of its concrete graph, which
//! the compiler computes from the typed IR (`compiler/src/proc/graph.rs`)
//! and every generated program carries as JSON (`Spec::graph`): the same
//! interpreter runs the float model to calibrate (and is tested equal to
//! burn's forward, which checks the graph too), then the int8 model on
//! netc's int8 kernels (`kernels/int8.rs`).
//!
//! Weights: symmetric, one scale per output channel. Activations:
//! symmetric, one scale per tensor, from the ranges seen on N training
//! images (min-max, or the 99.99th percentile of magnitudes).

pub mod bench;
pub mod graph;
pub mod interp;
pub mod observe;
pub mod qmodel;

use crate::augment;
use crate::data::Dataset;
use crate::kernels::int8::Isa;
use crate::params::Tensors;
use crate::{Result, Spec};
pub use graph::Graph;
use interp::Mode;
pub use observe::{Method, Observers};
pub use qmodel::QModel;

/// The model's graph, from the program's `Spec`.
pub fn graph(spec: &Spec) -> Result<Graph> {
    if spec.graph.is_empty() {
        return Err(format!(
            "this program of `{}` carries no graph (int8 and weight averaging read it); rebuild it with this netc (`netc build {}`)",
            spec.name, spec.file
        ));
    }
    serde_json::from_str(spec.graph).map_err(|e| {
        format!("the graph built into this program is unreadable ({e}); rebuild it with `netc build {}`", spec.file)
    })
}

/// Examples `indices` of `data` as N x C x H x W central crops, as evaluation sees them.
pub fn images(data: &Dataset, indices: impl Iterator<Item = usize>, hw: [usize; 2]) -> Vec<f32> {
    let [h, w] = hw;
    let mut x = Vec::new();
    for i in indices {
        augment::to_chw(&augment::eval_example(data.image(i), h, w), h, w, &mut x);
    }
    x
}

/// `n` training examples spread evenly over the set (every class, not the
/// first few hundred images of one file), or an error naming what is wrong.
pub fn calibration_set(data: &Dataset, n: usize, dir: &std::path::Path) -> Result<Vec<usize>> {
    let dir = dir.display();
    if data.is_empty() {
        return Err(format!("{dir} has no training images to calibrate with"));
    }
    if n == 0 {
        return Err(
            "--calibrate needs at least 1 image (a few hundred to a thousand is usual)".into(),
        );
    }
    if n > data.len() {
        return Err(format!(
            "--calibrate {n} asks for more images than the {} training images of {dir}",
            data.len()
        ));
    }
    Ok((0..n).map(|i| i * data.len() / n).collect())
}

/// Calibrates and quantizes: float weights `tensors` and the ranges their
/// activations take on `examples` of `data`.
pub fn quantize(
    spec: &Spec,
    graph: &Graph,
    tensors: &Tensors,
    data: &Dataset,
    examples: &[usize],
    method: Method,
) -> Result<QModel> {
    let hw = [spec.input[0], spec.input[1]];
    let mut obs = Observers::new(graph.all().len() + 1);
    let passes = if method == Method::Percentile { 2 } else { 1 };
    for pass in 0..passes {
        if pass == 1 {
            obs.start_histograms();
        }
        for chunk in examples.chunks(100) {
            let x = images(data, chunk.iter().copied(), hw);
            let mut mode = Mode::Float {
                tensors,
                observe: Some(&mut obs),
            };
            interp::forward(graph, &mut mode, x, chunk.len())?;
        }
    }
    QModel::new(
        spec.name,
        graph,
        tensors,
        &obs.ranges(method),
        method,
        examples.len(),
    )
}

/// Class scores of `x` (n images) from the int8 model.
pub fn logits(graph: &Graph, model: &QModel, x: Vec<f32>, n: usize) -> Result<Vec<f32>> {
    let mut mode = Mode::Int8 {
        model,
        isa: Isa::detect(),
    };
    interp::forward(graph, &mut mode, x, n)
}

/// The predicted class of every example of `data`, by the int8 model.
pub fn predict(
    graph: &Graph,
    model: &QModel,
    data: &Dataset,
    hw: [usize; 2],
    classes: usize,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let end = (start + 500).min(data.len());
        let y = logits(graph, model, images(data, start..end, hw), end - start)?;
        out.extend(y.chunks_exact(classes).map(argmax));
        start = end;
    }
    Ok(out)
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}
