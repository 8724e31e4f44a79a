//! `--with-preprocessing`: the graph takes uint8 N x 32 x 32 x 3 images, as
//! CIFAR-10 stores them, and does what netc's programs do before a model
//! sees an image at evaluation (`runtime/src/augment.rs`, `eval_example`):
//! the central H x W crop, then per-image standardization
//! `(x - mean) / max(stddev, 1 / sqrt(N))` over the crop's N = H x W x 3
//! values, then channels first. The file alone labels a raw image, as the
//! seed's frozen graphs did with `label_image`.

use super::graph::{int, ints, Graph};
use crate::ir::{Shape, Typed};
use onnx_protobuf::tensor_proto::DataType;

/// The side of the images the graph takes (CIFAR-10's).
pub const SIDE: u64 = 32;

/// Why this model cannot take the preprocessing, if it cannot: the crop
/// needs an RGB input no larger than the images.
pub fn refusal(model: &Typed) -> Option<String> {
    let [h, w, c] = model.input.hwc();
    (c != 3 || h > SIDE || w > SIDE).then(|| {
        format!(
            "--with-preprocessing crops {SIDE}x{SIDE}x3 images, and model {} takes {}: \
             its input must be at most {SIDE}x{SIDE} with 3 channels",
            model.name, model.input
        )
    })
}

/// How the input is made, for the model's metadata.
pub fn description(model: &Typed, inside: bool) -> String {
    let [h, w, c] = model.input.hwc();
    let steps = format!(
        "the central {h}x{w} crop of a {SIDE}x{SIDE}x3 RGB image (values 0 to 255), \
         standardized per image as (x - mean) / max(stddev, 1 / sqrt({})) over its \
         {h}x{w}x{c} values, channels first",
        h * w * c
    );
    if inside {
        format!("in the graph: input `images` is uint8 N x {SIDE} x {SIDE} x 3; the graph takes {steps}")
    } else {
        format!("not in the graph: input `input` is float32 N x {c} x {h} x {w}, {steps}")
    }
}

/// Writes the preprocessing, reading the graph input `images`; returns the
/// model's input, float32 N x 3 x H x W.
pub fn write(g: &mut Graph, model: &Typed, images: &str) -> String {
    let Shape::Map { h, w, .. } = model.input else {
        unreachable!("a model's input is a feature map")
    };
    let p = |s: &str| format!("preprocess/{s}");
    let x = g.node(
        "Cast",
        &p("float"),
        vec![images.to_string()],
        vec![int("to", DataType::FLOAT as i64)],
    );
    let (top, left) = ((SIDE - h) / 2, (SIDE - w) / 2);
    let starts = g.ints(&p("crop_starts"), &[top as i64, left as i64]);
    let ends = g.ints(&p("crop_ends"), &[(top + h) as i64, (left + w) as i64]);
    let axes = g.ints(&p("crop_axes"), &[1, 2]);
    let x = g.node("Slice", &p("crop"), vec![x, starts, ends, axes], vec![]);
    // Mean and variance over each image's height, width and channels.
    let reduce = || vec![ints("axes", &[1, 2, 3]), int("keepdims", 1)];
    let mean = g.node("ReduceMean", &p("mean"), vec![x.clone()], reduce());
    let centered = g.node("Sub", &p("centered"), vec![x, mean], vec![]);
    let squares = g.node(
        "Mul",
        &p("squares"),
        vec![centered.clone(), centered.clone()],
        vec![],
    );
    let variance = g.node("ReduceMean", &p("variance"), vec![squares], reduce());
    let stddev = g.node("Sqrt", &p("stddev"), vec![variance], vec![]);
    // The floor as the runtime computes it, in f32.
    let n = (h * w * 3) as f32;
    let floor = g.floats(&p("floor"), &[], &[1.0 / n.sqrt()]);
    let scale = g.node("Max", &p("scale"), vec![stddev, floor], vec![]);
    let x = g.node("Div", &p("standardized"), vec![centered, scale], vec![]);
    g.node(
        "Transpose",
        &p("channels_first"),
        vec![x],
        vec![ints("perm", &[0, 3, 1, 2])],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_rgb_inputs_that_fit_the_images_take_it() {
        let model = |input: &str| {
            let src = format!("model m {{\n input {input}\n fc 10\n}}\n");
            crate::check(&src).unwrap().remove(0).model
        };
        assert!(super::refusal(&model("24x24x3")).is_none());
        assert!(super::refusal(&model("32x32x3")).is_none());
        let e = super::refusal(&model("40x32x3")).unwrap();
        assert!(e.contains("model m takes 40x32x3"), "{e}");
        assert!(super::refusal(&model("24x24x1")).is_some());
    }
}
