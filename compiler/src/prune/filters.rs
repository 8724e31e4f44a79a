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
//! A convolution qualifies when its filter count can be rewritten: a number
//! in one of the model's own statements, or, inside a block called from the
//! model, a block parameter that sizes nothing else (the call's argument is
//! rewritten; every copy of a repeated statement must keep one count). Its
//! channels are followed to every layer that reads them ([`follow`]):
//! through pooling, ReLU, dropout and batch norm (whose tensors shrink),
//! into block bodies and out of them, into every branch of a concat and out
//! of it at the branch's offset, to each `conv` (one group) or `fc` that
//! reads them, which loses those inputs. Refused with the reason: LRN mixes
//! neighbouring channels, an `add` needs equal widths, grouped and
//! depthwise convolutions tie filters to inputs, a count written inside a
//! block is shared by its calls, and a last convolution's filters are the
//! model's outputs.

use crate::diag::Span;
use crate::ir::{Channels, Io, Node, Op, Typed};
use crate::syntax::ast::{find_stmt, repeat_of, File, ModelDef, Stmt, StmtKind, Value, ValueKind};
use crate::weights::Tensor;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Plans the pruning of `model` (from `source`) with `weights` (by `.net`
/// path); the new model is named `name`.
pub fn plan(
    source: &str,
    model: &Typed,
    weights: &HashMap<String, Tensor>,
    request: &Request,
    name: &str,
) -> Result<Plan, String> {
    let ast = crate::syntax::parse(source).map_err(|d| d.message)?;
    let def = ast
        .models
        .iter()
        .find(|m| m.name.name == model.name)
        .expect("the model was checked from this source");
    let mut stack = vec![Frame {
        seq: &model.body,
        next: 0,
        prefix: String::new(),
        exit: Exit::Model,
        call: None,
    }];
    let mut all = Vec::new();
    places(&mut stack, &mut all);
    // Each convolution to prune, with its readers and where its count is
    // written, found once.
    let choose = |place, fraction| choose(&ast, def, place, fraction);
    let wanted: Vec<Chosen> = match request {
        Request::Each(list) => list
            .iter()
            .enumerate()
            .map(|(i, (layer, f))| {
                if list[..i].iter().any(|(l, _)| l == layer) {
                    return Err(format!("--filters: `{layer}` is named twice"));
                }
                let place = all
                    .iter()
                    .find(|p| &p.path == layer)
                    .ok_or_else(|| nowhere(model, layer))?;
                choose(place, *f)
            })
            .collect::<Result<_, String>>()?,
        Request::All(f) => {
            // Every convolution that qualifies, leaving out a repeated
            // statement some of whose copies do not (they share one count).
            let qualified: Vec<Chosen> = all.iter().filter_map(|p| choose(p, *f).ok()).collect();
            let found = |span: Span| qualified.iter().filter(|c| c.span == span).count() as u64;
            let whole: Vec<bool> = qualified
                .iter()
                .map(|c| found(c.span) == c.copies)
                .collect();
            let fit: Vec<Chosen> = qualified
                .into_iter()
                .zip(whole)
                .filter_map(|(c, whole)| whole.then_some(c))
                .collect();
            if fit.is_empty() {
                return Err(format!(
                    "model {}: no convolution qualifies for filter pruning (see docs/compression.md)",
                    model.name
                ));
            }
            fit
        }
    };
    // What each tensor loses, along which dimension, in the original's
    // indices: a tensor can read several pruned layers (a concat's parts).
    let mut cuts: BTreeMap<(String, usize), (usize, BTreeSet<usize>, bool)> = BTreeMap::new();
    let mut cut =
        |tensor: String, dim: usize, group: usize, at: usize, removed: &[usize], reader: bool| {
            let e = cuts
                .entry((tensor, dim))
                .or_insert((group, BTreeSet::new(), reader));
            e.1.extend(removed.iter().map(|r| at + r));
        };
    let mut edits: BTreeMap<usize, Edit> = BTreeMap::new();
    let mut layers = Vec::new();
    for Chosen {
        place,
        fraction,
        reads,
        span,
        copies,
    } in wanted
    {
        let conv = &place.path;
        let w = weights
            .get(&format!("{conv}.weight"))
            .ok_or_else(|| format!("the weights hold no `{conv}.weight`"))?;
        let filters = w.shape[0];
        let per = w.values.len() / filters;
        // Filters by L1 norm of the original weights, smallest removed
        // first; ties to the lower index; at least one is kept.
        let mut order: Vec<(f32, usize)> = (0..filters)
            .map(|f| {
                let l1 = w.values[f * per..(f + 1) * per]
                    .iter()
                    .map(|v| v.abs())
                    .sum();
                (l1, f)
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let n = ((fraction * filters as f64).round() as usize).min(filters - 1);
        let removed: Vec<usize> = order[..n].iter().map(|(_, f)| *f).collect();
        let kept = filters - n;
        for t in ["weight", "bias"] {
            cut(format!("{conv}.{t}"), 0, 1, 0, &removed, false);
        }
        for read in reads {
            match read {
                Read::Norm(bn, at) => {
                    for t in ["gamma", "beta", "running_mean", "running_var"] {
                        cut(format!("{bn}.{t}"), 0, 1, at, &removed, false);
                    }
                }
                // A conv's weight is filters x inputs x kH x kW.
                Read::Conv(c, at) => cut(format!("{c}.weight"), 1, 1, at, &removed, true),
                // An fc's is inputs x units, a channel `per` rows.
                Read::Fc(f, at, per) => cut(format!("{f}.weight"), 0, per, at, &removed, true),
            }
        }
        let edit = edits.entry(span.start).or_insert(Edit {
            span,
            filters: kept,
            copies,
            paths: Vec::new(),
        });
        if edit.filters != kept {
            return Err(format!(
                "--filters: `{}` and `{conv}` share one statement in the source and would keep \
                 {} and {kept} filters; give them one percentage",
                edit.paths[0], edit.filters
            ));
        }
        edit.paths.push(conv.clone());
        layers.push((conv.clone(), filters, kept));
    }
    for e in edits.values() {
        if (e.paths.len() as u64) < e.copies {
            return Err(format!(
                "--filters: `{}` is one of {} copies of a repeated statement (`* N`), which \
                 share one filter count; name every copy with one percentage, or give one \
                 percentage for every layer (`--filters 25%`)",
                e.paths[0], e.copies
            ));
        }
    }
    let mut pruned: BTreeMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut masked = pruned.clone();
    for ((tensor, dim), (group, removed, reader)) in &cuts {
        let Some(t) = pruned.get(tensor) else {
            continue;
        };
        let n = t.shape[*dim] / group;
        let kept: Vec<usize> = (0..n).filter(|i| !removed.contains(i)).collect();
        slice(&mut pruned, tensor, *dim, &kept, *group);
        if *reader {
            let removed: Vec<usize> = removed.iter().copied().collect();
            zero(&mut masked, tensor, *dim, &removed, *group);
        }
    }
    Ok(Plan {
        source: rewrite(source, def, &edits, &layers, name),
        weights: pruned,
        masked,
        layers,
    })
}

/// A convolution to prune: how much, who reads its channels, and where its
/// filter count is written (with how many convolutions that statement makes).
struct Chosen<'a> {
    place: &'a Place<'a>,
    fraction: f64,
    reads: Vec<Read>,
    span: Span,
    copies: u64,
}

fn choose<'a>(
    ast: &File,
    def: &ModelDef,
    place: &'a Place<'a>,
    fraction: f64,
) -> Result<Chosen<'a>, String> {
    let reads = route(place)?;
    let (span, copies) = written(ast, def, place)?;
    Ok(Chosen {
        place,
        fraction,
        reads,
        span,
        copies,
    })
}

/// One filter count in the source and the convolutions it sizes.
struct Edit {
    span: Span,
    filters: usize,
    /// How many convolutions the statement makes (`* N`, nested repeats).
    copies: u64,
    paths: Vec<String>,
}

fn nowhere(model: &Typed, layer: &str) -> String {
    let mut all = Vec::new();
    crate::ir::leaves(&model.body, "", &mut all);
    if all.iter().any(|(path, _)| path == layer) {
        format!("--filters: cannot prune `{layer}`: it is not a convolution")
    } else {
        format!("--filters: model {} has no layer `{layer}`", model.name)
    }
}

/// Where the filter count of `place` is written: the value's span and how
/// many convolutions that statement makes. In the model's own statements,
/// the layer's count; inside a block called from the model, the call's
/// argument for the block parameter that is the count and sizes nothing
/// else.
fn written(ast: &File, def: &ModelDef, place: &Place) -> Result<(Span, u64), String> {
    let path = &place.path;
    let calls: Vec<&Frame> = place
        .stack
        .iter()
        .filter(|f| matches!(f.exit, Exit::Block))
        .collect();
    let statement = |span: Span| {
        find_stmt(&def.body, span, 1)
            .ok_or_else(|| format!("--filters: `{path}` has no statement of its own"))
    };
    let Op::Conv(conv) = &place.node.op else {
        unreachable!("places are convolutions")
    };
    let Channels::Filters(count) = &conv.channels else {
        unreachable!("route refuses depthwise convolutions")
    };
    match calls[..] {
        [] => {
            let (stmt, outer) = statement(place.node.span)?;
            let StmtKind::Layer { args, .. } = &stmt.kind else {
                unreachable!("a convolution is a layer statement")
            };
            let value = args
                .iter()
                .find(|a| a.key.is_none() && matches!(a.value.kind, ValueKind::Number(_)))
                .ok_or_else(|| {
                    format!("--filters: `{path}`'s filter count is not a number in the source")
                })?;
            Ok((value.value.span, outer * repeat_of(stmt).unwrap_or(1)))
        }
        [frame] => {
            let node = frame.call.expect("a block frame has its call");
            let Op::Block(call) = &node.op else {
                unreachable!("a block frame comes from a call")
            };
            let block = &call.block;
            let Some(param) = &count.param else {
                return Err(format!(
                    "--filters: cannot prune `{path}`: its filter count is written in block \
                     `{block}`, so every call shares it; make it a parameter of the block"
                ));
            };
            let body = &ast
                .blocks
                .iter()
                .find(|b| &b.name.name == block)
                .expect("the model was checked from this source")
                .body;
            if uses(body, param) != 1 {
                return Err(format!(
                    "--filters: cannot prune `{path}`: parameter `{param}` of block `{block}` \
                     sizes other layers too"
                ));
            }
            // Copies: the call's, times the layer's own inside the block.
            let inner = find_stmt(body, place.node.span, 1)
                .map_or(1, |(s, outer)| outer * repeat_of(s).unwrap_or(1));
            let (stmt, outer) = statement(node.span)?;
            let StmtKind::Call { args, .. } = &stmt.kind else {
                unreachable!("a block call is a call statement")
            };
            let i = call
                .params
                .iter()
                .position(|p| p == param)
                .expect("a parameter");
            match args.get(i) {
                Some(v) if matches!(v.kind, ValueKind::Number(_)) => {
                    Ok((v.span, outer * repeat_of(stmt).unwrap_or(1) * inner))
                }
                _ => Err(format!(
                    "--filters: `{path}`'s filter count (`{param}` of `{}`) is not a number in the source",
                    node.name
                )),
            }
        }
        _ => Err(format!(
            "--filters: cannot prune `{path}`: it is inside a block called from a block; \
             netc prune rewrites the arguments of the model's own calls"
        )),
    }
}

/// How many times `param` is written in `stmts`.
fn uses(stmts: &[Stmt], param: &str) -> usize {
    fn value(v: &Value, param: &str) -> usize {
        match &v.kind {
            ValueKind::Ident(x) => usize::from(x == param),
            ValueKind::Size(parts) => parts.iter().filter(|x| *x == param).count(),
            ValueKind::Stride(inner) => value(inner, param),
            ValueKind::Number(_) | ValueKind::Ratio(..) => 0,
        }
    }
    stmts
        .iter()
        .map(|s| {
            let own = match &s.kind {
                StmtKind::Layer { args, .. } => args.iter().map(|a| value(&a.value, param)).sum(),
                StmtKind::Call { args, .. } => args.iter().map(|a| value(a, param)).sum(),
                StmtKind::Group { branches, .. } => uses(branches, param),
                StmtKind::Seq(body) => uses(body, param),
            };
            own + s.repeat.as_ref().map_or(0, |r| value(r, param))
        })
        .sum()
}

/// Where a sequence being walked came from, and where its end leads.
#[derive(Clone, Copy)]
enum Exit {
    /// The model's own sequence: its end is the model's output.
    Model,
    /// A block's body: its end goes on after the call.
    Block,
    /// A branch of a concat, after `offset` channels of earlier branches;
    /// or of an add, which cannot lose channels from one branch only.
    Branch { offset: usize, add: bool },
}

/// A sequence being walked: the nodes left start at `next`.
#[derive(Clone)]
struct Frame<'a> {
    seq: &'a [Node<Io>],
    next: usize,
    /// The path of the sequence's nodes (`fire2.` inside a call of fire2).
    prefix: String,
    exit: Exit,
    /// The block call whose body this is.
    call: Option<&'a Node<Io>>,
}

/// A convolution of the model, with the sequences around it, each
/// positioned after it.
struct Place<'a> {
    path: String,
    node: &'a Node<Io>,
    stack: Vec<Frame<'a>>,
}

/// Every convolution of `seq` and of the blocks and branches in it.
fn places<'a>(stack: &mut Vec<Frame<'a>>, out: &mut Vec<Place<'a>>) {
    let top = stack.len() - 1;
    let (seq, prefix) = (stack[top].seq, stack[top].prefix.clone());
    for (i, node) in seq.iter().enumerate() {
        stack[top].next = i + 1;
        let (branches, add) = match &node.op {
            Op::Conv(_) => {
                out.push(Place {
                    path: format!("{prefix}{}", node.name),
                    node,
                    stack: stack.clone(),
                });
                continue;
            }
            Op::Block(call) => {
                stack.push(Frame {
                    seq: &call.body,
                    next: 0,
                    prefix: format!("{prefix}{}.", node.name),
                    exit: Exit::Block,
                    call: Some(node),
                });
                places(stack, out);
                stack.pop();
                continue;
            }
            Op::Concat(b) => (b, false),
            Op::Add(b) => (b, true),
            _ => continue,
        };
        let mut offset = 0;
        for b in branches {
            let call = stack[top].call;
            stack.push(Frame {
                seq: b,
                next: 0,
                prefix: prefix.clone(),
                exit: Exit::Branch { offset, add },
                call,
            });
            places(stack, out);
            stack.pop();
            offset += width(b, node);
        }
    }
}

/// The channels a branch of `join` gives: its last layer's, or the join's
/// input when the branch is empty.
fn width(branch: &[Node<Io>], join: &Node<Io>) -> usize {
    let shape = branch.last().map_or(join.ty.input, |n| n.ty.output);
    shape.hwc()[2] as usize
}

/// A layer that reads a pruned convolution's channels, at `offset` within
/// its input's channels.
enum Read {
    /// A batch norm on the way (its tensors lose the channels).
    Norm(String, usize),
    /// A convolution (its weight loses input channels).
    Conv(String, usize),
    /// An `fc` after a map: its rows run channel by channel, `per` a channel.
    Fc(String, usize, usize),
}

/// Where the channels of `place`, a convolution, are read; or why they
/// cannot be removed.
fn route(place: &Place) -> Result<Vec<Read>, String> {
    let name = &place.path;
    match &place.node.op {
        Op::Conv(c) if matches!(c.channels, Channels::Filters(_)) && c.groups.value == 1 => {}
        Op::Conv(_) => {
            return Err(format!(
                "--filters: cannot prune `{name}`: it is grouped or depthwise: its filters are tied to its input channels"
            ))
        }
        _ => return Err(format!("--filters: cannot prune `{name}`: it is not a convolution")),
    }
    let mut reads = Vec::new();
    follow(place.stack.clone(), 0, &mut reads)
        .map_err(|why| format!("--filters: cannot prune `{name}`: {why}"))?;
    Ok(reads)
}

/// Follows channels at `offset` from where `stack` stands to every layer
/// that reads them, into branches, block bodies and out again.
fn follow(mut stack: Vec<Frame>, mut offset: usize, reads: &mut Vec<Read>) -> Result<(), String> {
    loop {
        let Some(top) = stack.last_mut() else {
            unreachable!("the model's frame ends every walk")
        };
        let Some(n) = top.seq.get(top.next) else {
            let done = stack.pop().expect("a frame");
            match done.exit {
                Exit::Model => {
                    return Err(
                        "its channels reach the model's output without a conv or fc \
                                reading them: its filters are (part of) the model's outputs"
                            .into(),
                    )
                }
                Exit::Block => continue,
                Exit::Branch { add: true, .. } => {
                    return Err(
                        "its output goes into an `add`, whose branches must keep equal widths"
                            .into(),
                    )
                }
                Exit::Branch { offset: o, .. } => {
                    offset += o;
                    continue;
                }
            }
        };
        top.next += 1;
        let path = format!("{}{}", top.prefix, n.name);
        match &n.op {
            Op::Pool(_) | Op::GlobalAvgPool | Op::Relu | Op::Identity | Op::Dropout { .. } => {}
            Op::BatchNorm(_) => reads.push(Read::Norm(path, offset)),
            Op::Conv(c) if matches!(c.channels, Channels::Filters(_)) && c.groups.value == 1 => {
                reads.push(Read::Conv(path, offset));
                return Ok(());
            }
            Op::Conv(_) => {
                return Err(format!("`{path}`, which reads it, is grouped or depthwise"))
            }
            Op::Fc(_) => {
                let [h, w, _] = n.ty.input.hwc();
                reads.push(Read::Fc(path, offset, (h * w) as usize));
                return Ok(());
            }
            Op::Lrn(_) => {
                return Err(format!(
                    "its output goes through LRN `{path}`, which normalizes each channel by its \
                     neighbours: removing one would change the others"
                ))
            }
            Op::Add(_) => {
                return Err(format!(
                    "its output goes into `{path}`, an add, whose branches must keep equal widths"
                ))
            }
            Op::Concat(branches) => {
                // Every branch reads the whole input; a branch that passes
                // the channels on puts them after the earlier branches'.
                let (prefix, call) = (top.prefix.clone(), top.call);
                let mut before = 0;
                for b in branches {
                    let mut inner = stack.clone();
                    inner.push(Frame {
                        seq: b,
                        next: 0,
                        prefix: prefix.clone(),
                        exit: Exit::Branch {
                            offset: before,
                            add: false,
                        },
                        call,
                    });
                    follow(inner, offset, reads)?;
                    before += width(b, n);
                }
                return Ok(());
            }
            Op::Block(call) => {
                let prefix = format!("{path}.");
                stack.push(Frame {
                    seq: &call.body,
                    next: 0,
                    prefix,
                    exit: Exit::Block,
                    call: Some(n),
                });
            }
        }
    }
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

/// `source` with the model renamed and each filter count written in.
fn rewrite(
    source: &str,
    def: &ModelDef,
    edits: &BTreeMap<usize, Edit>,
    layers: &[(String, usize, usize)],
    name: &str,
) -> String {
    let mut all: Vec<(Span, String)> = vec![(def.name.span, name.to_string())];
    all.extend(edits.values().map(|e| (e.span, e.filters.to_string())));
    all.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = source.to_string();
    for (span, text) in all {
        out.replace_range(span.start..span.end, &text);
    }
    let what: Vec<String> = layers
        .iter()
        .map(|(l, _, kept)| format!("{l} {kept}"))
        .collect();
    format!(
        "# {name}: model {} with filters removed by L1 norm (netc prune --filters): {}\n{out}",
        def.name.name,
        what.join(", ")
    )
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
