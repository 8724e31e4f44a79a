//! The ONNX back end: a model and its weights frozen into one `.onnx` file,
//! the ecosystem's format (onnxruntime, TensorRT, OpenVINO, tract, Netron),
//! as the seed froze its graphs for `label_image`.
//!
//! It renders the layout (`proc::layout`) with each block call's numbers
//! (`proc::sizes`): `layers.rs` writes the network, `preprocess.rs` the
//! optional image preprocessing, `graph.rs` holds the graph being written,
//! `trim.rs` leaves out kernel taps that only meet padding.
//! Like the other back ends it refuses nothing that `netc check` accepts;
//! the weights are checked against the model before (`Weights::fit`).
//!
//! Operator set 13 (IR version 7): old enough for every runtime that reads
//! ONNX today, new enough for `Slice` with inputs and `Gemm` without a bias.

mod graph;
mod layers;
pub mod preprocess;
mod trim;

use crate::ir::Typed;
use crate::proc::layout::Layout;
use crate::proc::sizes::Bindings;
use crate::weights::Weights;
use graph::{value_info, Dim, Graph};
use layers::{Value, Writer};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{GraphProto, Message, ModelProto, OperatorSetIdProto, StringStringEntryProto};

pub const OPSET: i64 = 13;
pub const IR_VERSION: i64 = 7;

/// The graph's input without preprocessing (float32 N x C x H x W), with
/// it (uint8 N x 32 x 32 x 3), and its output (N x classes).
pub const INPUT: &str = "input";
pub const IMAGES: &str = "images";
pub const OUTPUT: &str = "logits";

/// The CIFAR-10 class names, in label order: a 10-class model's classes,
/// as the runtime names them (`runtime/src/data/mod.rs`).
const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The names of a model's classes, as netc's programs print them.
pub fn class_names(classes: u64) -> Vec<String> {
    if classes == CIFAR10.len() as u64 {
        CIFAR10.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|c| format!("class {c}")).collect()
    }
}

/// What goes into the file besides the model.
pub struct Options<'a> {
    /// The `.net` source and its file name, kept in the metadata.
    pub source: &'a str,
    pub file: &'a str,
    /// Where the weights came from, for the metadata.
    pub weights_from: &'a str,
    /// Take uint8 images and preprocess them in the graph.
    pub preprocessing: bool,
}

/// The model's ONNX file: the network with `weights` (checked by
/// `Weights::fit`), and metadata naming its source, classes, preprocessing
/// and weights. With `preprocessing`, `preprocess::refusal` must be `None`.
pub fn model(model: &Typed, layout: &Layout, weights: &Weights, options: &Options) -> Vec<u8> {
    let mut writer = Writer {
        graph: Graph::default(),
        layout,
        weights,
    };
    let g = &mut writer.graph;
    for name in [INPUT, IMAGES, OUTPUT] {
        g.reserve(name);
    }
    let [h, w, c] = model.input.hwc().map(|v| v as usize);
    let (input, x) = if options.preprocessing {
        let side = preprocess::SIDE as usize;
        let dims = [Dim::Batch, Dim::Size(side), Dim::Size(side), Dim::Size(3)];
        let x = preprocess::write(g, model, IMAGES);
        (value_info(IMAGES, DataType::UINT8, &dims), x)
    } else {
        let dims = [Dim::Batch, Dim::Size(c), Dim::Size(h), Dim::Size(w)];
        (value_info(INPUT, DataType::FLOAT, &dims), INPUT.to_string())
    };
    let start = Value {
        name: x,
        shape: model.input,
    };
    let s = layout.model();
    let out = writer.steps(s, &Bindings::model(), "", &s.forward, start);
    let mut g = writer.graph;
    if !g.rename_output(&out.name, OUTPUT) {
        // Only a node's output can be renamed; a graph output that is
        // another value needs a node of its own.
        g.node("Identity", OUTPUT, vec![out.name], vec![]);
    }
    let classes = out.shape.elements() as usize;
    let output = value_info(OUTPUT, DataType::FLOAT, &[Dim::Batch, Dim::Size(classes)]);

    let mut graph = GraphProto::new();
    graph.name = model.name.clone();
    graph.node = g.nodes;
    graph.initializer = g.initializers;
    graph.input = vec![input];
    graph.output = vec![output];
    let mut opset = OperatorSetIdProto::new();
    opset.domain = String::new();
    opset.version = OPSET;

    let mut m = ModelProto::new();
    m.ir_version = IR_VERSION;
    m.opset_import = vec![opset];
    m.producer_name = "netc".into();
    m.producer_version = env!("CARGO_PKG_VERSION").into();
    m.doc_string = format!(
        "Model `{}` from {}, exported by netc: class scores (logits) for {} classes.",
        model.name, options.file, classes
    );
    m.graph = Some(graph).into();
    m.metadata_props = metadata(model, weights, options);
    m.write_to_bytes()
        .expect("onnx-protobuf encodes every message it builds")
}

/// `netc.*` entries: the `.net` source and file, the class names (a JSON
/// array), the preprocessing, and which weights were frozen.
fn metadata(model: &Typed, weights: &Weights, options: &Options) -> Vec<StringStringEntryProto> {
    let classes =
        serde_json::to_string(&class_names(model.settings.classes)).expect("strings serialize");
    let which = if weights.averaged {
        "averaged (ema/)"
    } else {
        "raw"
    };
    let mut entries = vec![
        ("netc.model", model.name.clone()),
        ("netc.file", options.file.to_string()),
        ("netc.source", options.source.to_string()),
        ("netc.classes", classes),
        (
            "netc.preprocessing",
            preprocess::description(model, options.preprocessing),
        ),
        (
            "netc.weights",
            format!("{which} weights of {}", options.weights_from),
        ),
    ];
    if let Some(step) = weights.metadata.get("step") {
        entries.push(("netc.step", step.clone()));
    }
    entries
        .into_iter()
        .map(|(k, v)| {
            let mut e = StringStringEntryProto::new();
            e.key = k.to_string();
            e.value = v;
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Tensor;
    use onnx_protobuf::NodeProto;

    /// The decoded file of the first model of `source`, with zero weights.
    fn export(source: &str, preprocessing: bool) -> ModelProto {
        let c = crate::check(source).unwrap().remove(0);
        let tensors = crate::proc::sizes::tensors(&c.layout)
            .into_iter()
            .map(|(name, shape)| {
                let values = vec![0.0; shape.iter().product()];
                (name, Tensor { shape, values })
            })
            .collect();
        let weights = Weights {
            tensors,
            averaged: false,
            metadata: [("step".to_string(), "12".to_string())].into(),
        };
        let options = Options {
            source,
            file: "m.net",
            weights_from: "w.safetensors",
            preprocessing,
        };
        let bytes = model(&c.model, &c.layout, &weights, &options);
        ModelProto::parse_from_bytes(&bytes).unwrap()
    }

    fn node<'a>(m: &'a ModelProto, name: &str) -> &'a NodeProto {
        m.graph.node.iter().find(|n| n.name == name).unwrap()
    }

    fn ints(n: &NodeProto, key: &str) -> Vec<i64> {
        n.attribute
            .iter()
            .find(|a| a.name == key)
            .unwrap()
            .ints
            .clone()
    }

    fn float(n: &NodeProto, key: &str) -> f32 {
        n.attribute.iter().find(|a| a.name == key).unwrap().f
    }

    const SOURCE: &str = "block b(f) {\n c: conv 3x3 f\n}\n\
        model m {\n input 15x15x3\n train classes=4\n stem: conv 4x4 8 /2 relu\n\
        pool: maxpool 3x3 /2\n avg: avgpool 2x2 /2 valid\n norm: lrn radius=2\n\
        b(6)\n b(5)\n out: fc 4\n}\n";

    #[test]
    fn tensorflow_padding_and_lrn_become_onnx_attributes() {
        let m = export(SOURCE, false);
        // 15 to 8 with a 4x4 kernel and stride 2: 3 cells of padding, the odd one after.
        assert_eq!(ints(node(&m, "stem"), "pads"), [1, 1, 2, 2]);
        // 8 to 4 with 3x3 and stride 2: 1 cell, after.
        assert_eq!(ints(node(&m, "pool"), "pads"), [0, 0, 1, 1]);
        assert_eq!(ints(node(&m, "avg"), "pads"), [0, 0, 0, 0]);
        let avg = node(&m, "avg");
        assert_eq!(avg.op_type, "AveragePool");
        let lrn = node(&m, "norm");
        assert_eq!(
            lrn.attribute.iter().find(|a| a.name == "size").unwrap().i,
            5
        );
        assert_eq!(float(lrn, "alpha"), (0.001 / 9.0 * 5.0) as f32);
        assert_eq!(float(lrn, "beta"), 0.75);
        // Each call of a block gets its own weights, named by path.
        assert_eq!(node(&m, "b2.c").input, ["b1.c", "b2.c.weight", "b2.c.bias"]);
        let init = |name: &str| m.graph.initializer.iter().find(|t| t.name == name).unwrap();
        assert_eq!(init("b1.c.weight").dims, [6, 8, 3, 3]);
        assert_eq!(init("b2.c.weight").dims, [5, 6, 3, 3]);
        assert_eq!(init("out.weight").dims, [2 * 2 * 5, 4]);
        // The flatten before `out`, then the class scores as the output.
        assert_eq!(node(&m, "flatten").op_type, "Flatten");
        assert_eq!(node(&m, "out").output, [OUTPUT]);
        assert_eq!(m.graph.input[0].name, INPUT);
        assert_eq!(m.opset_import[0].version, OPSET);
    }

    #[test]
    fn metadata_carries_source_classes_preprocessing_and_weights() {
        let m = export(SOURCE, true);
        let meta: std::collections::HashMap<_, _> = m
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(meta["netc.source"], SOURCE);
        assert_eq!(
            meta["netc.classes"],
            r#"["class 0","class 1","class 2","class 3"]"#
        );
        assert!(meta["netc.preprocessing"].starts_with("in the graph: input `images` is uint8"));
        assert!(meta["netc.preprocessing"].contains("central 15x15 crop"));
        assert_eq!(meta["netc.weights"], "raw weights of w.safetensors");
        assert_eq!(meta["netc.step"], "12");
        assert_eq!(m.graph.input[0].name, IMAGES);
        // The crop starts at (32 - 15) / 2 = 8.
        let starts = m
            .graph
            .initializer
            .iter()
            .find(|t| t.name == "preprocess/crop_starts")
            .unwrap();
        assert_eq!(starts.raw_data, [8i64, 8].map(i64::to_le_bytes).concat());
        assert_eq!(class_names(10)[3], "cat");
    }
}
