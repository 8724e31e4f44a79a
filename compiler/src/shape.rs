//! Shape inference: gives every node its input and output shape, and refuses
//! any graph whose shapes do not fit together.

use crate::diag::{Diagnostic, Result, Span};
use crate::ir::*;

pub fn infer(model: &Untyped) -> Result<Typed> {
    let body = seq(&model.body, model.input)?;
    let typed = Model {
        name: model.name.clone(),
        span: model.span,
        input: model.input,
        settings: model.settings.clone(),
        body,
    };
    check_output(&typed)?;
    Ok(typed)
}

fn check_output(model: &Typed) -> Result<()> {
    let out = model.output();
    let last = model.body.last().map_or(model.span, |n| n.span);
    let classes = model.settings.classes;
    let scores = match out {
        Shape::Vector(n) => n,
        Shape::Map { h: 1, w: 1, c } => c,
        Shape::Map { .. } => {
            return Err(
                Diagnostic::new(last, "the output is not a vector of class scores")
                    .label(format!("the model ends with a {out} feature map"))
                    .help(format!(
                    "end with `fc {classes}`, or with `conv 1x1 {classes}` then `avgpool global`"
                )),
            );
        }
    };
    if scores != classes {
        return Err(Diagnostic::new(last, format!("the model outputs {scores} scores, not {classes}"))
            .label(format!("output {out}"))
            .help(format!(
                "the last layer needs {classes} outputs, one per class; or set `train classes={scores}`"
            )));
    }
    Ok(())
}

fn seq(nodes: &[Node<()>], mut input: Shape) -> Result<Vec<Node<Io>>> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let typed = self::node(node, input)?;
        input = typed.ty.output;
        out.push(typed);
    }
    Ok(out)
}

fn node(node: &Node<()>, input: Shape) -> Result<Node<Io>> {
    let err = |message: String| with_trace(Diagnostic::new(node.span, message), node);
    let (op, output) = match &node.op {
        Op::Conv(conv) => {
            let (h, w, c) = map(input, node, "a convolution")?;
            let groups = conv.group_count(c);
            let filters = conv.filters(c);
            if !c.is_multiple_of(groups) {
                return Err(err(format!(
                    "{c} input channels cannot be split into {groups} groups"
                ))
                .label(format!("input {input}"))
                .help("the input channels must be a multiple of `groups`"));
            }
            if !filters.is_multiple_of(groups) {
                return Err(err(format!(
                    "{filters} filters cannot be split into {groups} groups"
                ))
                .label(format!("{filters} filters, {groups} groups"))
                .help("the number of filters must be a multiple of `groups`"));
            }
            let (oh, ow) = window(&conv.window, h, w, input, node)?;
            (
                Op::Conv(conv.clone()),
                Shape::Map {
                    h: oh,
                    w: ow,
                    c: filters,
                },
            )
        }
        Op::Pool(pool) => {
            let (h, w, c) = map(input, node, "pooling")?;
            let (oh, ow) = window(&pool.window, h, w, input, node)?;
            (Op::Pool(pool.clone()), Shape::Map { h: oh, w: ow, c })
        }
        Op::GlobalAvgPool => {
            let (_, _, c) = map(input, node, "global pooling")?;
            (Op::GlobalAvgPool, Shape::Map { h: 1, w: 1, c })
        }
        Op::Lrn(lrn) => {
            map(input, node, "local response normalization")?;
            (Op::Lrn(lrn.clone()), input)
        }
        Op::Fc(fc) => (Op::Fc(fc.clone()), Shape::Vector(fc.units.value)),
        Op::Dropout { rate } => (Op::Dropout { rate: *rate }, input),
        Op::BatchNorm(bn) => (Op::BatchNorm(bn.clone()), input),
        Op::Relu => (Op::Relu, input),
        Op::Identity => (Op::Identity, input),
        Op::Concat(branches) => {
            let typed = branches_of(branches, input)?;
            let output = concat_shape(&typed, node)?;
            (Op::Concat(typed), output)
        }
        Op::Add(branches) => {
            let typed = branches_of(branches, input)?;
            let output = add_shape(&typed, node)?;
            (Op::Add(typed), output)
        }
        Op::Block(call) => {
            let body = seq(&call.body, input)?;
            let output = body.last().map_or(input, |n| n.ty.output);
            (
                Op::Block(BlockCall {
                    block: call.block.clone(),
                    args: call.args.clone(),
                    params: call.params.clone(),
                    body,
                }),
                output,
            )
        }
    };
    Ok(Node {
        name: node.name.clone(),
        span: node.span,
        trace: node.trace.clone(),
        op,
        ty: Io { input, output },
    })
}

fn with_trace(mut d: Diagnostic, node: &Node<()>) -> Diagnostic {
    for call in node.trace.iter().rev() {
        d = d.note(*call, "in this block call");
    }
    d
}

fn map(input: Shape, node: &Node<()>, what: &str) -> Result<(u64, u64, u64)> {
    match input {
        Shape::Map { h, w, c } => Ok((h, w, c)),
        Shape::Vector(n) => Err(with_trace(
            Diagnostic::new(node.span, format!("{what} needs a feature map"))
                .label(format!("the input is a vector of {n}"))
                .help("spatial layers must come before the first `fc`"),
            node,
        )),
    }
}

/// TensorFlow's `same` padding of one axis: (before, after), the odd one
/// after; the cells that give `window_out`'s size for `Padding::Same`. The
/// graph pass and the ONNX back end print them.
pub fn same_pads(size: u64, kernel: u64, stride: u64) -> (u64, u64) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Output size of a window sliding over one dimension, TensorFlow's rules.
pub fn window_out(input: u64, kernel: u64, stride: u64, padding: Padding) -> Option<u64> {
    match padding {
        Padding::Same => Some(input.div_ceil(stride)),
        Padding::Valid if kernel <= input => Some((input - kernel) / stride + 1),
        Padding::Valid => None,
    }
}

fn window(win: &Window, h: u64, w: u64, input: Shape, node: &Node<()>) -> Result<(u64, u64)> {
    let [kh, kw] = win.kernel;
    let oh = window_out(h, kh, win.stride[0], win.padding);
    let ow = window_out(w, kw, win.stride[1], win.padding);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(with_trace(
            Diagnostic::new(
                node.span,
                format!("a {kh}x{kw} window does not fit in {h}x{w}"),
            )
            .label(format!("`valid` padding, input {input}"))
            .help("use `same` padding, a smaller window, or remove a pooling layer before it"),
            node,
        )),
    }
}

fn branches_of(branches: &[Vec<Node<()>>], input: Shape) -> Result<Vec<Vec<Node<Io>>>> {
    branches.iter().map(|b| seq(b, input)).collect()
}

fn branch_outputs(branches: &[Vec<Node<Io>>]) -> Vec<(Shape, Span)> {
    branches
        .iter()
        .filter_map(|b| b.last().map(|n| (n.ty.output, n.span)))
        .collect()
}

fn concat_shape(branches: &[Vec<Node<Io>>], node: &Node<()>) -> Result<Shape> {
    let outs = branch_outputs(branches);
    let (first, first_span) = outs[0];
    let mut channels = 0u64;
    for &(shape, span) in &outs {
        let same_kind = match (first, shape) {
            (Shape::Map { h, w, .. }, Shape::Map { h: h2, w: w2, .. }) => h == h2 && w == w2,
            (Shape::Vector(_), Shape::Vector(_)) => true,
            _ => false,
        };
        if !same_kind {
            return Err(with_trace(
                Diagnostic::new(span, "concatenated branches differ in size")
                    .label(format!("this branch gives {shape}"))
                    .note(first_span, format!("the first branch gives {first}"))
                    .help("branches joined by `concat` need the same height and width; check strides and padding"),
                node,
            ));
        }
        channels += shape.channels();
    }
    Ok(match first {
        Shape::Map { h, w, .. } => Shape::Map { h, w, c: channels },
        Shape::Vector(_) => Shape::Vector(channels),
    })
}

fn add_shape(branches: &[Vec<Node<Io>>], node: &Node<()>) -> Result<Shape> {
    let outs = branch_outputs(branches);
    let (first, first_span) = outs[0];
    for &(shape, span) in &outs[1..] {
        if shape != first {
            return Err(with_trace(
                Diagnostic::new(span, "added branches differ in shape")
                    .label(format!("this branch gives {shape}"))
                    .note(first_span, format!("the first branch gives {first}"))
                    .help("a residual `add` needs equal shapes: match the filters and strides, or add a `conv 1x1` shortcut"),
                node,
            ));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed model of a one-model source, or its error message.
    fn typed(body: &str) -> std::result::Result<Typed, String> {
        let source = format!("model m {{\n{body}\n}}\n");
        let ast = crate::syntax::parse(&source).map_err(|d| d.message)?;
        let models = crate::lower::lower(&ast).map_err(|d| d.message)?;
        infer(&models[0]).map_err(|d| d.message)
    }

    fn shapes(body: &str) -> Vec<String> {
        let model = typed(body).unwrap_or_else(|e| panic!("{e}"));
        model.body.iter().map(|n| n.ty.output.to_string()).collect()
    }

    #[test]
    fn same_padding_divides_by_the_stride_rounding_up() {
        assert_eq!(window_out(24, 3, 2, Padding::Same), Some(12));
        assert_eq!(window_out(25, 3, 2, Padding::Same), Some(13));
        assert_eq!(window_out(5, 5, 1, Padding::Same), Some(5));
        assert_eq!(window_out(1, 3, 3, Padding::Same), Some(1));
    }

    #[test]
    fn valid_padding_fits_the_window_inside() {
        assert_eq!(window_out(24, 5, 1, Padding::Valid), Some(20));
        assert_eq!(window_out(24, 3, 2, Padding::Valid), Some(11));
        assert_eq!(window_out(3, 3, 1, Padding::Valid), Some(1));
        assert_eq!(window_out(2, 3, 1, Padding::Valid), None);
    }

    #[test]
    fn convolution_sets_filters_and_strides() {
        let s = shapes("input 24x24x3\nconv 5x5 64\nconv 3x3 32 /2\nconv 3x3 16 /2 valid\nfc 10");
        assert_eq!(s, ["24x24x64", "12x12x32", "5x5x16", "10"]);
    }

    #[test]
    fn depthwise_keeps_channels_times_multiplier() {
        let s = shapes("input 8x8x16\ndwconv 3x3\ndwconv 3x3 mult=2 /2\nfc 10");
        assert_eq!(s, ["8x8x16", "4x4x32", "10"]);
    }

    #[test]
    fn groups_must_divide_channels_and_filters() {
        assert!(typed("input 8x8x4\nconv 3x3 8 groups=4\nfc 10").is_ok());
        let e = typed("input 8x8x3\nconv 3x3 8 groups=2\nfc 10").unwrap_err();
        assert!(e.contains("3 input channels"), "{e}");
        let e = typed("input 8x8x4\nconv 3x3 6 groups=4\nfc 10").unwrap_err();
        assert!(e.contains("6 filters"), "{e}");
    }

    #[test]
    fn pooling_keeps_channels() {
        let s = shapes("input 24x24x8\nmaxpool 3x3 /2\navgpool 2x2\navgpool global\nfc 10");
        assert_eq!(s, ["12x12x8", "6x6x8", "1x1x8", "10"]);
    }

    #[test]
    fn valid_window_larger_than_input_is_refused() {
        let e = typed("input 4x4x3\nmaxpool 5x5 valid\nfc 10").unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn concat_sums_channels_of_equal_sizes() {
        let s = shapes("input 12x12x8\nconcat {\nconv 1x1 16\nconv 3x3 32\nidentity\n}\nfc 10");
        assert_eq!(s, ["12x12x56", "10"]);
        let e = typed("input 12x12x8\nconcat {\nconv 1x1 16\nmaxpool 2x2\n}\nfc 10").unwrap_err();
        assert!(e.contains("differ in size"), "{e}");
    }

    #[test]
    fn add_needs_equal_shapes() {
        let s = shapes("input 12x12x8\nadd {\nidentity\nconv 3x3 8\n}\nfc 10");
        assert_eq!(s, ["12x12x8", "10"]);
        let e = typed("input 12x12x8\nadd {\nidentity\nconv 3x3 9\n}\nfc 10").unwrap_err();
        assert!(e.contains("differ in shape"), "{e}");
    }

    #[test]
    fn fc_flattens_and_spatial_layers_need_maps() {
        let s = shapes("input 6x6x4\nfc 32\ndropout\nfc 10");
        assert_eq!(s, ["32", "32", "10"]);
        let e = typed("input 6x6x4\nfc 32\nconv 1x1 10").unwrap_err();
        assert!(e.contains("needs a feature map"), "{e}");
    }

    #[test]
    fn the_output_must_be_class_scores() {
        assert!(typed("input 6x6x4\nconv 1x1 10\navgpool global").is_ok());
        let e = typed("input 6x6x4\nconv 1x1 10").unwrap_err();
        assert!(e.contains("not a vector"), "{e}");
        let e = typed("input 6x6x4\nfc 7").unwrap_err();
        assert!(e.contains("7 scores"), "{e}");
        assert!(typed("input 6x6x4\ntrain classes=7\nfc 7").is_ok());
    }

    #[test]
    fn blocks_chain_their_layers() {
        let source = "block b(f) {\nconv 3x3 f\nmaxpool 2x2\n}\nmodel m {\ninput 8x8x3\nb(4) * 2\nfc 10\n}\n";
        let ast = crate::syntax::parse(source).unwrap();
        let model = infer(&crate::lower::lower(&ast).unwrap()[0]).unwrap();
        let out: Vec<String> = model.body.iter().map(|n| n.ty.output.to_string()).collect();
        assert_eq!(out, ["4x4x4", "2x2x4", "10"]);
        assert_eq!(model.body[1].name, "b2");
    }
}
