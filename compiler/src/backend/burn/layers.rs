//! One layer of the layout as burn code: its field's type and constructor,
//! and the `use` lines the layers of a model need.

use super::Names;
use crate::ir::Init;
use crate::proc::expr::Expr;
use crate::proc::layout::{JoinKind, Layer, Layout, StepKind};

/// Whether the field holds tensors (else the struct needs a `PhantomData<B>`).
pub fn holds_tensors(layer: &Layer) -> bool {
    matches!(
        layer,
        Layer::Conv { .. } | Layer::Dense { .. } | Layer::BatchNorm { .. } | Layer::Block { .. }
    )
}

pub fn ty(layer: &Layer, names: &Names) -> String {
    match layer {
        Layer::Conv { .. } => "Conv2d<B>".into(),
        Layer::MaxPool { .. } => "MaxPool".into(),
        Layer::AvgPool { same: false, .. } => "AvgPool2d".into(),
        Layer::AvgPool { same: true, .. } => "AvgPoolSame".into(),
        Layer::Lrn { .. } => "Lrn".into(),
        Layer::Dense { .. } => "Linear<B>".into(),
        Layer::BatchNorm { .. } => "BatchNorm<B>".into(),
        Layer::Dropout { .. } => "Dropout".into(),
        Layer::Block { def, .. } => format!("{}<B>", names.types[*def]),
    }
}

fn pair(names: &Names, v: &[Expr; 2]) -> String {
    format!("[{}, {}]", names.expr(&v[0]), names.expr(&v[1]))
}

fn ones() -> [Expr; 2] {
    [Expr::Lit(1), Expr::Lit(1)]
}

/// The runtime's initializer for `train init=`: `XAVIER`, the seed's, or `HE`.
fn initializer(init: Init) -> &'static str {
    match init {
        Init::Xavier => "XAVIER",
        Init::He => "HE",
    }
}

/// The end of a weighted layer's constructor: the model's initializer for
/// the weights and zero biases (or no bias).
fn initialized(bias: bool, init: Init) -> String {
    let init = initializer(init);
    if bias {
        format!("\n.with_initializer({init})\n.init(device)\n.zero_bias()")
    } else {
        format!("\n.with_bias(false)\n.with_initializer({init})\n.init(device)")
    }
}

/// The field's constructor expression.
pub fn init(layer: &Layer, names: &Names) -> String {
    match layer {
        Layer::Conv {
            inputs,
            filters,
            kernel,
            stride,
            same,
            groups,
            bias,
        } => {
            let mut init = format!(
                "Conv2dConfig::new([{}, {}], {})",
                names.expr(inputs),
                names.expr(filters),
                pair(names, kernel)
            );
            if *stride != ones() {
                init += &format!("\n.with_stride({})", pair(names, stride));
            }
            if *same {
                init += "\n.with_padding(PaddingConfig2d::Same)";
            }
            if *groups != Expr::Lit(1) {
                init += &format!("\n.with_groups({})", names.expr(groups));
            }
            init + &initialized(*bias, names.init)
        }
        Layer::MaxPool {
            kernel,
            stride,
            same,
        } => format!(
            "MaxPool {{ kernel: {}, stride: {}, same: {same} }}",
            pair(names, kernel),
            pair(names, stride)
        ),
        Layer::AvgPool {
            kernel,
            stride,
            same: false,
        } => {
            let strides = if stride == kernel {
                String::new()
            } else {
                format!("\n.with_strides({})", pair(names, stride))
            };
            format!(
                "AvgPool2dConfig::new({}){strides}\n.init()",
                pair(names, kernel)
            )
        }
        Layer::AvgPool {
            kernel,
            stride,
            same: true,
        } => format!(
            "AvgPoolSame {{ kernel: {}, stride: {} }}",
            pair(names, kernel),
            pair(names, stride)
        ),
        Layer::Lrn {
            radius,
            bias,
            alpha,
            beta,
        } => format!(
            "Lrn {{ radius: {radius}, bias: {:?}, alpha: {:?}, beta: {:?} }}",
            bias.0, alpha.0, beta.0
        ),
        Layer::Dense {
            inputs,
            units,
            bias,
        } => format!(
            "LinearConfig::new({}, {}){}",
            names.expr(inputs),
            names.expr(units),
            initialized(*bias, names.init)
        ),
        // TensorFlow keeps `momentum` of the old average; burn takes the new batch's share.
        Layer::BatchNorm {
            channels,
            epsilon,
            momentum,
        } => format!(
            "BatchNormConfig::new({})\n.with_epsilon({:?})\n.with_momentum({:?})\n.init(device)",
            names.expr(channels),
            epsilon.0,
            round(1.0 - momentum.0)
        ),
        // netc's, whose mask is drawn on every thread (`Kernels::dropout`).
        Layer::Dropout { rate } => format!("Dropout {{ prob: {:?} }}", rate.0),
        Layer::Block { def, args } => {
            let args: String = args.iter().map(|a| names.expr(a) + ", ").collect();
            format!("{}::new({args}device)", names.types[*def])
        }
    }
}

/// 1 - 0.99 without the float noise: 0.01.
fn round(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// The `use` lines a model's code needs, from what its layout holds.
pub fn imports(layout: &Layout) -> Vec<String> {
    let layers: Vec<&Layer> = layout.layers().collect();
    let has = |f: &dyn Fn(&Layer) -> bool| layers.iter().any(|l| f(l));
    let steps = layout.steps();
    // What the forward steps call: netc's convolutions, burn's relu, netc's concat.
    let mut conv = false;
    let mut conv_relu = false;
    let mut conv_pool = false;
    let mut conv_relu_pool = false;
    let mut dense = false;
    let mut dense_relu = false;
    let mut relu = false;
    let mut concat = false;
    let mut conv_concat = false;
    let mut conv_concat_pool = false;
    for (s, step) in &steps {
        match &step.kind {
            StepKind::Apply { field, relu: r } => match (&s.fields[*field].layer, r) {
                (Layer::Conv { .. }, true) => conv_relu = true,
                (Layer::Conv { .. }, false) => conv = true,
                (Layer::Dense { .. }, true) => dense_relu = true,
                (Layer::Dense { .. }, false) => dense = true,
                (_, true) => relu = true,
                _ => {}
            },
            StepKind::ConvPool { relu: true, .. } | StepKind::ConvPoolArg { relu: true, .. } => {
                conv_relu_pool = true
            }
            StepKind::ConvPool { relu: false, .. } | StepKind::ConvPoolArg { relu: false, .. } => {
                conv_pool = true
            }
            StepKind::ConvConcat { .. } => conv_concat = true,
            StepKind::ConvConcatPool { .. } => conv_concat_pool = true,
            StepKind::Relu => relu = true,
            StepKind::Join {
                join: JoinKind::Concat,
                maps: true,
                ..
            } => concat = true,
            _ => {}
        }
    }
    let mut uses = Vec::new();
    if has(&|l| matches!(l, Layer::Conv { .. })) {
        uses.push("burn::nn::conv::{Conv2d, Conv2dConfig}".to_string());
    }
    if has(&|l| matches!(l, Layer::AvgPool { same: false, .. })) {
        uses.push("burn::nn::pool::{AvgPool2d, AvgPool2dConfig}".to_string());
    }
    let mut nn = Vec::new();
    if has(&|l| matches!(l, Layer::BatchNorm { .. })) {
        nn.extend(["BatchNorm", "BatchNormConfig"]);
    }
    if has(&|l| matches!(l, Layer::Dense { .. })) {
        nn.extend(["Linear", "LinearConfig"]);
    }
    if has(&|l| matches!(l, Layer::Conv { same: true, .. })) {
        nn.push("PaddingConfig2d");
    }
    if !nn.is_empty() {
        uses.push(format!("burn::nn::{{{}}}", nn.join(", ")));
    }
    uses.push("burn::prelude::*".to_string());
    if relu {
        uses.push("burn::tensor::activation::relu".to_string());
    }
    let mut rt = Vec::new();
    if has(&|l| matches!(l, Layer::AvgPool { same: true, .. })) {
        rt.push("AvgPoolSame");
    }
    if !layout.decay.is_empty() {
        rt.push("decay_term");
    }
    if conv {
        rt.push("conv");
    }
    if concat {
        rt.push("concat");
    }
    if conv_concat {
        rt.push("conv_concat");
    }
    if conv_concat_pool {
        rt.push("conv_concat_pool");
    }
    if conv_relu {
        rt.push("conv_relu");
    }
    if conv_pool {
        rt.push("conv_pool");
    }
    if conv_relu_pool {
        rt.push("conv_relu_pool");
    }
    if dense {
        rt.push("dense");
    }
    if dense_relu {
        rt.push("dense_relu");
    }
    if has(&|l| matches!(l, Layer::Dropout { .. })) {
        rt.push("Dropout");
    }
    if has(&|l| matches!(l, Layer::Lrn { .. })) {
        rt.push("Lrn");
    }
    if has(&|l| matches!(l, Layer::MaxPool { .. })) {
        rt.push("MaxPool");
    }
    let weighted = |l: &Layer| matches!(l, Layer::Conv { .. } | Layer::Dense { .. });
    if has(&weighted) {
        rt.push(initializer(layout.init));
    }
    let biased = |l: &Layer| {
        matches!(
            l,
            Layer::Conv { bias: true, .. } | Layer::Dense { bias: true, .. }
        )
    };
    if has(&biased) {
        rt.push("ZeroBias");
    }
    if !rt.is_empty() {
        uses.push(format!("netc_runtime::nn::{{{}}}", rt.join(", ")));
    }
    uses.push("netc_runtime::{Kernels, Net}".to_string());
    uses
}
