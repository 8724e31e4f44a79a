//! Filter pruning (Li et al. 2017): whole convolution filters with the
//! smallest L1 norms removed, giving a smaller model: the `.net` source with
//! the new filter counts, and its weights with every tensor that reads the
//! removed channels resized.
//!
//! A removed filter's output channel is dropped, not folded: what it fed the
//! next layer (its ReLU(bias), a constant map) is lost, as Li et al. do before
//! retraining. The pruned model therefore computes exactly what the original
//! computes with the weights that read those channels set to zero
//! ([`Plan::masked`]), which the tests check.
//!
//! A convolution qualifies when it sits in the model's own sequence (not in
//! a block, a branch or a repeat), has one group, and its output reaches the
//! next `conv` (one group) or `fc` through layers that treat channels one by
//! one: pooling, ReLU, dropout, batch norm (whose tensors are resized too).
//! Anything else is refused with the reason: LRN mixes neighbouring
//! channels, a concatenation or a block call would need its consumers'
//! offsets or arguments rewritten, and a last convolution's filters are the
//! model's outputs.

use crate::ir::{Channels, Node, Op, Typed};
use crate::syntax::ast::{StmtKind, ValueKind};
use crate::weights::Tensor;
use std::collections::{BTreeMap, HashMap};

/// Which filters to remove: a fraction of named convolutions, or of every
/// qualifying one.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Each(Vec<(String, f64)>),
    All(f64),
}

/// Reads `conv1=25%,conv2=50%` or `30%`.
pub fn request(text: &str) -> Result<Request, String> {
    let fraction = |p: &str| -> Result<f64, String> {
        let v: f64 = p.trim().trim_end_matches('%').parse().map_err(|_| {
            format!("--filters {text}: `{p}` is not a percentage; write conv1=25%,conv2=50% or 30%")
        })?;
        if !(v > 0.0 && v < 100.0) {
            return Err(format!(
                "--filters {text}: {p} is outside 0-100; give the percentage of a layer's filters to remove"
            ));
        }
        Ok(v / 100.0)
    };
    if !text.contains('=') {
        return Ok(Request::All(fraction(text)?));
    }
    text.split(',')
        .map(|part| {
            let (layer, p) = part.split_once('=').ok_or_else(|| {
                format!("--filters {text}: `{part}` names no layer; write conv1=25%")
            })?;
            Ok((layer.trim().to_string(), fraction(p)?))
        })
        .collect::<Result<_, _>>()
        .map(Request::Each)
}

/// A smaller model and its weights.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `.net` source with the new filter counts and model name.
    pub source: String,
    /// The pruned model's weights.
    pub weights: BTreeMap<String, Tensor>,
    /// The original model's weights with what reads the removed channels
    /// zeroed: the pruned model computes exactly what this computes.
    pub masked: BTreeMap<String, Tensor>,
    /// Per pruned convolution: its name, filters before, filters kept.
    pub layers: Vec<(String, usize, usize)>,
}

/// How a convolution's removed channels reach the layer that reads them.
struct Route {
    /// Batch norms on the way, by name.
    norms: Vec<String>,
    /// The layer reading the channels and, for an `fc`, the map's
    /// positions per channel (its rows run channel by channel).
    reader: String,
    per_channel: usize,
}

/// Plans the pruning of `model` (from `source`) with `weights` (by `.net`
/// path); the new model is named `name`.
pub fn plan(
    source: &str,
    model: &Typed,
    weights: &HashMap<String, Tensor>,
    request: &Request,
    name: &str,
) -> Result<Plan, String> {
    let body = &model.body;
    let wanted: Vec<(usize, f64)> = match request {
        Request::Each(list) => list
            .iter()
            .map(|(layer, f)| {
                let i = body
                    .iter()
                    .position(|n| &n.name == layer)
                    .ok_or_else(|| nowhere(model, layer))?;
                route(body, i)?;
                Ok((i, *f))
            })
            .collect::<Result<_, String>>()?,
        Request::All(f) => {
            let all: Vec<(usize, f64)> = (0..body.len())
                .filter(|&i| matches!(body[i].op, Op::Conv(_)) && route(body, i).is_ok())
                .map(|i| (i, *f))
                .collect();
            if all.is_empty() {
                return Err(format!(
                    "model {}: no convolution qualifies for filter pruning (see docs/compression.md)",
                    model.name
                ));
            }
            all
        }
    };
    let mut pruned: BTreeMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut masked = pruned.clone();
    let mut layers = Vec::new();
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for &(i, fraction) in &wanted {
        let conv = &body[i].name;
        let r = route(body, i)?;
        let w = &weights[&format!("{conv}.weight")];
        let filters = w.shape[0];
        let per = w.values.len() / filters;
        // Filters by L1 norm of the original weights, smallest removed
        // first; ties to the lower index; at least one is kept.
        let mut order: Vec<(f32, usize)> = (0..filters)
            .map(|f| {
                (
                    w.values[f * per..(f + 1) * per]
                        .iter()
                        .map(|v| v.abs())
                        .sum(),
                    f,
                )
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let cut = ((fraction * filters as f64).round() as usize).min(filters - 1);
        let mut kept: Vec<usize> = order[cut..].iter().map(|(_, f)| *f).collect();
        kept.sort();
        let removed: Vec<usize> = order[..cut].iter().map(|(_, f)| *f).collect();
        for t in ["weight", "bias"] {
            slice(&mut pruned, &format!("{conv}.{t}"), 0, &kept, 1);
        }
        for bn in &r.norms {
            for t in ["gamma", "beta", "running_mean", "running_var"] {
                slice(&mut pruned, &format!("{bn}.{t}"), 0, &kept, 1);
            }
        }
        let reader = format!("{}.weight", r.reader);
        // A conv's weight is filters x inputs x kH x kW; an fc's inputs x units.
        let dim = if r.per_channel == 0 { 1 } else { 0 };
        slice(&mut pruned, &reader, dim, &kept, r.per_channel.max(1));
        zero(&mut masked, &reader, dim, &removed, r.per_channel.max(1));
        layers.push((conv.clone(), filters, kept.len()));
        counts.push((i, kept.len()));
    }
    Ok(Plan {
        source: rewrite(source, model, &counts, name)?,
        weights: pruned,
        masked,
        layers,
    })
}

fn nowhere(model: &Typed, layer: &str) -> String {
    let mut all = Vec::new();
    crate::ir::leaves(&model.body, "", &mut all);
    if all.iter().any(|(path, _)| path == layer) {
        format!(
            "--filters: `{layer}` is inside a block call or a branch of model {}; filter pruning \
             rewrites layers of the model's own sequence only, since a block's filter count is \
             shared by its calls",
            model.name
        )
    } else {
        format!("--filters: model {} has no layer `{layer}`", model.name)
    }
}

/// Where the channels of `body[i]`, a convolution, are read; or why they
/// cannot be removed.
fn route(body: &[Node<crate::ir::Io>], i: usize) -> Result<Route, String> {
    let name = &body[i].name;
    let refuse = |why: String| Err(format!("--filters: cannot prune `{name}`: {why}"));
    match &body[i].op {
        Op::Conv(c) if matches!(c.channels, Channels::Filters(_)) && c.groups.value == 1 => {}
        Op::Conv(_) => {
            return refuse(
                "it is grouped or depthwise: its filters are tied to its input channels".into(),
            )
        }
        _ => return refuse("it is not a convolution".into()),
    }
    let mut norms = Vec::new();
    for n in &body[i + 1..] {
        match &n.op {
            Op::Pool(_) | Op::GlobalAvgPool | Op::Relu | Op::Identity | Op::Dropout { .. } => {}
            Op::BatchNorm(_) => norms.push(n.name.clone()),
            Op::Conv(c) if matches!(c.channels, Channels::Filters(_)) && c.groups.value == 1 => {
                return Ok(Route {
                    norms,
                    reader: n.name.clone(),
                    per_channel: 0,
                })
            }
            Op::Conv(_) => {
                return refuse(format!(
                    "the next convolution, `{}`, is grouped or depthwise",
                    n.name
                ))
            }
            Op::Fc(_) => {
                let [h, w, _] = n.ty.input.hwc();
                return Ok(Route {
                    norms,
                    reader: n.name.clone(),
                    per_channel: (h * w) as usize,
                });
            }
            Op::Lrn(_) => {
                return refuse(format!(
                    "its output goes through LRN `{}`, which normalizes each channel by its \
                     neighbours: removing one would change the others",
                    n.name
                ))
            }
            Op::Concat(_) | Op::Add(_) | Op::Block(_) => {
                return refuse(format!(
                    "its output goes into `{}`, a concat, add or block call, whose widths \
                     netc prune does not rewrite",
                    n.name
                ))
            }
        }
    }
    refuse("no conv or fc reads its output: its filters are the model's outputs".into())
}

/// Keeps the `kept` indices along `dim` (0 or 1) of tensor `name`, each
/// index standing for `group` consecutive slices (an fc's rows per channel).
fn slice(t: &mut BTreeMap<String, Tensor>, name: &str, dim: usize, kept: &[usize], group: usize) {
    let Some(old) = t.get(name) else { return };
    let shape = &old.shape;
    let outer: usize = shape[..dim].iter().product();
    let inner: usize = shape[dim + 1..].iter().product();
    let n = shape[dim];
    let rows: Vec<usize> = kept
        .iter()
        .flat_map(|k| k * group..(k + 1) * group)
        .collect();
    let mut values = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for r in &rows {
            let at = (o * n + r) * inner;
            values.extend_from_slice(&old.values[at..at + inner]);
        }
    }
    let mut shape = shape.clone();
    shape[dim] = rows.len();
    t.insert(name.to_string(), Tensor { shape, values });
}

/// Sets the `removed` indices along `dim` of tensor `name` to zero.
fn zero(t: &mut BTreeMap<String, Tensor>, name: &str, dim: usize, removed: &[usize], group: usize) {
    let Some(tensor) = t.get_mut(name) else {
        return;
    };
    let outer: usize = tensor.shape[..dim].iter().product();
    let inner: usize = tensor.shape[dim + 1..].iter().product();
    let n = tensor.shape[dim];
    for o in 0..outer {
        for k in removed {
            for r in k * group..(k + 1) * group {
                let at = (o * n + r) * inner;
                tensor.values[at..at + inner].fill(0.0);
            }
        }
    }
}

/// `source` with the model renamed and each pruned convolution's filter
/// count (`(index in the body, filters kept)`) written in.
fn rewrite(
    source: &str,
    model: &Typed,
    counts: &[(usize, usize)],
    name: &str,
) -> Result<String, String> {
    let ast = crate::syntax::parse(source).map_err(|d| d.message)?;
    let def = ast
        .models
        .iter()
        .find(|m| m.name.name == model.name)
        .expect("the model was checked from this source");
    let mut edits = vec![(def.name.span, name.to_string())];
    for &(i, filters) in counts {
        let node = &model.body[i];
        let stmt = def
            .body
            .iter()
            .find(|s| s.label.as_ref().is_some_and(|l| l.name == node.name))
            .ok_or_else(|| format!("--filters: `{}` has no statement of its own", node.name))?;
        if stmt.repeat.is_some() {
            return Err(format!(
                "--filters: cannot prune `{}`: it is repeated (`* N`), and its copies share one filter count",
                node.name
            ));
        }
        let StmtKind::Layer { args, .. } = &stmt.kind else {
            unreachable!("a convolution is a layer statement")
        };
        let count = args
            .iter()
            .find(|a| a.key.is_none() && matches!(a.value.kind, ValueKind::Number(_)))
            .ok_or_else(|| {
                format!(
                    "--filters: `{}`'s filter count is not a number in the source",
                    node.name
                )
            })?;
        edits.push((count.value.span, filters.to_string()));
    }
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = source.to_string();
    for (span, text) in edits {
        out.replace_range(span.start..span.end, &text);
    }
    let what: Vec<String> = counts
        .iter()
        .map(|&(i, f)| format!("{} {f}", model.body[i].name))
        .collect();
    Ok(format!(
        "# {name}: model {} with filters removed by L1 norm (netc prune --filters): {}\n{out}",
        model.name,
        what.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_layers_or_give_one_fraction() {
        assert_eq!(
            request("conv1=25%,conv2=50").unwrap(),
            Request::Each(vec![("conv1".into(), 0.25), ("conv2".into(), 0.5)])
        );
        assert_eq!(request("30%").unwrap(), Request::All(0.3));
        assert!(request("conv1=120%").unwrap_err().contains("outside 0-100"));
        assert!(request("x").unwrap_err().contains("not a percentage"));
    }

    #[test]
    fn slicing_keeps_rows_by_channel() {
        let mut t: BTreeMap<String, Tensor> = [(
            "fc.weight".to_string(),
            Tensor {
                shape: vec![6, 1],
                values: vec![0., 1., 2., 3., 4., 5.],
            },
        )]
        .into();
        // Three channels of two positions; keep channels 0 and 2.
        slice(&mut t, "fc.weight", 0, &[0, 2], 2);
        assert_eq!(t["fc.weight"].values, [0., 1., 4., 5.]);
        let mut c: BTreeMap<String, Tensor> = [(
            "c.weight".to_string(),
            Tensor {
                shape: vec![2, 3, 1, 1],
                values: vec![0., 1., 2., 3., 4., 5.],
            },
        )]
        .into();
        zero(&mut c, "c.weight", 1, &[1], 1);
        assert_eq!(c["c.weight"].values, [0., 0., 2., 3., 0., 5.]);
        slice(&mut c, "c.weight", 1, &[0, 2], 1);
        assert_eq!(c["c.weight"].values, [0., 2., 3., 5.]);
    }
}
