//! An ONNX graph being written: nodes, initializers and value names, over
//! onnx-protobuf's message types (no protobuf by hand).
//!
//! Every value, node and initializer name is unique: an initializer keeps
//! its tensor's `.net` path (`fire2.e3x3.weight`, as in checkpoints), a
//! value is named after the layer that makes it, with a suffix where two
//! would meet.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{self, Value};
use onnx_protobuf::{
    AttributeProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::collections::HashSet;

/// The name of the dynamic batch dimension.
pub const BATCH: &str = "N";

#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    /// Value and initializer names in use.
    names: HashSet<String>,
    node_names: HashSet<String>,
}

/// A free name: `hint`, else `hint_2`, `hint_3`...
fn fresh(taken: &mut HashSet<String>, hint: &str) -> String {
    let mut name = hint.to_string();
    let mut n = 1;
    while taken.contains(&name) {
        n += 1;
        name = format!("{hint}_{n}");
    }
    taken.insert(name.clone());
    name
}

impl Graph {
    /// Keeps `name` for a graph input or output.
    pub fn reserve(&mut self, name: &str) {
        self.names.insert(name.to_string());
    }

    /// A node `op` named after `name`, reading `inputs`; returns its output.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let output = fresh(&mut self.names, name);
        let mut node = NodeProto::new();
        node.op_type = op.to_string();
        node.name = fresh(&mut self.node_names, name);
        node.input = inputs;
        node.output = vec![output.clone()];
        node.attribute = attribute;
        self.nodes.push(node);
        output
    }

    /// A float32 initializer named `name`, which must be free: tensor names
    /// (`conv1.weight`) never meet layer names (`conv1`) in a checked model.
    pub fn floats(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, DataType::FLOAT, dims, raw)
    }

    /// An int64 initializer (crop bounds, axes).
    pub fn ints(&mut self, name: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, DataType::INT64, &[values.len()], raw)
    }

    fn initializer(&mut self, name: &str, ty: DataType, dims: &[usize], raw: Vec<u8>) -> String {
        assert!(self.names.insert(name.to_string()), "`{name}` is taken");
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.data_type = ty as i32;
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.raw_data = raw;
        self.initializers.push(t);
        name.to_string()
    }

    /// Renames the output `from` of a node to `to` (the graph's output).
    pub fn rename_output(&mut self, from: &str, to: &str) -> bool {
        for node in self.nodes.iter_mut().rev() {
            if let Some(o) = node.output.iter_mut().find(|o| *o == from) {
                *o = to.to_string();
                return true;
            }
        }
        false
    }
}

/// A dimension of a value's type: a number, or the batch.
pub enum Dim {
    Batch,
    Size(usize),
}

/// A typed graph input or output.
pub fn value_info(name: &str, ty: DataType, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims
        .iter()
        .map(|d| {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                Dim::Batch => dimension::Value::DimParam(BATCH.to_string()),
                Dim::Size(n) => dimension::Value::DimValue(*n as i64),
            });
            dim
        })
        .collect();
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = ty as i32;
    tensor.shape = Some(shape).into();
    let mut t = TypeProto::new();
    t.value = Some(Value::TensorType(tensor));
    let mut info = ValueInfoProto::new();
    info.name = name.to_string();
    info.type_ = Some(t).into();
    info
}

fn attribute(name: &str, ty: AttributeType) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    a.type_ = ty.into();
    a
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    let mut a = attribute(name, AttributeType::INT);
    a.i = v;
    a
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = attribute(name, AttributeType::INTS);
    a.ints = v.to_vec();
    a
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    let mut a = attribute(name, AttributeType::FLOAT);
    a.f = v;
    a
}
