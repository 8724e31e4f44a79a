//! Steps joined for back ends whose kernels do several layers in one pass.
//!
//! A max pooling right after a convolution, in the same sequence, is the
//! only reader of the convolution's output: netc's CPU kernel pools each
//! tile of that output while it is still in cache instead of writing the
//! whole map to memory and reading it back (`Kernels::conv_pool`). So is a
//! max pooling right after a block whose last step is a convolution (nin2's
//! `nin1` and `pool1`): the block's struct gets a second forward, `pooled`,
//! whose last convolution pools through the caller's pooling. And the
//! convolutions of a concatenation whose branches are each one convolution
//! (squeeze1's fire modules) write their channels of the joined output,
//! without outputs of their own to copy (`Kernels::conv_concat`); a max
//! pooling after such a concatenation, or after a block that ends with one
//! (squeeze1's `fire2` and `pool2`), pools each tile of the joined output
//! while it is in cache (`Kernels::conv_concat_pool`). The burn back end
//! prints the joined steps; PyTorch and ONNX keep the layers apart.

use super::layout::{Field, JoinKind, Layer, Layout, Step, StepKind, Struct};

/// `layout` with every convolution followed by a max pooling (one without
/// a ReLU of its own) as one `StepKind::ConvPool`, every concatenation of
/// convolutions followed by one as one `StepKind::ConvConcatPool`, and
/// every block call followed by one, where the block ends with a
/// convolution or such a concatenation, as one `StepKind::BlockPool`.
pub fn conv_pool(layout: &Layout) -> Layout {
    let mut fused = layout.clone();
    // Blocks that end with a convolution or a concatenation of them (one
    // that a max pooling follows ends with that pooling, joined or not).
    let ends: Vec<bool> = fused
        .structs
        .iter()
        .map(|s| ends_pooled(s).is_some())
        .collect();
    for s in &mut fused.structs {
        s.forward = seq(&s.fields, std::mem::take(&mut s.forward), &ends);
    }
    // The blocks some caller now pools: they get a `pooled` forward.
    let mut wanted = vec![false; fused.structs.len()];
    for (s, step) in fused.steps() {
        if let StepKind::BlockPool { block, .. } = step.kind {
            if let Layer::Block { def, .. } = s.fields[block].layer {
                wanted[def] = true;
            }
        }
    }
    for (s, wanted) in fused.structs.iter_mut().zip(wanted) {
        if let (Some(last), true) = (ends_pooled(s), wanted) {
            let mut steps = s.forward.clone();
            steps[last].kind = match &steps[last].kind {
                &StepKind::Apply { field, relu } => StepKind::ConvPoolArg { conv: field, relu },
                join => {
                    let (label, convs) = concat_of_convs(&s.fields, join)
                        .expect("`ends_pooled` found a convolution or a concatenation of them");
                    StepKind::ConvConcatPool {
                        label,
                        convs,
                        pool: None,
                    }
                }
            };
            s.pooled = Some(steps);
        }
    }
    fused
}

/// A concatenation of feature maps whose branches are each one convolution
/// (and no other step but `Identity`), at least two: its label and the
/// convolutions' steps.
fn concat_of_convs(fields: &[Field], kind: &StepKind) -> Option<(String, Vec<Step>)> {
    let StepKind::Join {
        join: JoinKind::Concat,
        label,
        maps: true,
        branches,
    } = kind
    else {
        return None;
    };
    let conv = |b: &Vec<Step>| {
        let mut real = b.iter().filter(|s| s.kind != StepKind::Identity);
        match (real.next(), real.next()) {
            (
                Some(
                    c @ Step {
                        kind: StepKind::Apply { field, .. },
                        ..
                    },
                ),
                None,
            ) if matches!(fields[*field].layer, Layer::Conv { .. }) => Some(c.clone()),
            _ => None,
        }
    };
    let convs: Vec<Step> = branches.iter().map(conv).collect::<Option<_>>()?;
    (convs.len() >= 2).then(|| (label.clone(), convs))
}

/// `layout` with every concatenation of feature maps whose branches are
/// each one convolution (a fire module's expand layers) as one
/// `StepKind::ConvConcat`: netc's CPU kernel writes each convolution into
/// its channels of the joined output, where the layers apart would write
/// each output, then copy both into the joined one.
pub fn conv_concat(layout: &Layout) -> Layout {
    let mut fused = layout.clone();
    for s in &mut fused.structs {
        let fields = &s.fields;
        s.forward = joined(fields, std::mem::take(&mut s.forward));
        s.pooled = s.pooled.take().map(|p| joined(fields, p));
    }
    fused
}

fn joined(fields: &[Field], steps: Vec<Step>) -> Vec<Step> {
    steps
        .into_iter()
        .map(|mut step| {
            let StepKind::Join { branches, .. } = &mut step.kind else {
                return step;
            };
            *branches = std::mem::take(branches)
                .into_iter()
                .map(|b| joined(fields, b))
                .collect();
            match concat_of_convs(fields, &step.kind) {
                Some((label, convs)) => Step {
                    span: step.span,
                    kind: StepKind::ConvConcat { label, convs },
                },
                None => step,
            }
        })
        .collect()
}

/// Where a block's last step is, when it applies a convolution or is a
/// concatenation of convolutions: what a caller's pooling can join.
fn ends_pooled(s: &Struct) -> Option<usize> {
    if s.is_model {
        return None;
    }
    let last = s
        .forward
        .iter()
        .rposition(|step| step.kind != StepKind::Identity)?;
    match &s.forward[last].kind {
        StepKind::Apply { field, .. } => {
            matches!(s.fields[*field].layer, Layer::Conv { .. }).then_some(last)
        }
        join => concat_of_convs(&s.fields, join).map(|_| last),
    }
}

/// `steps` with each convolution, and each call of a block that ends with
/// one (`ends[def]`), joined to the max pooling right after it.
fn seq(fields: &[Field], steps: Vec<Step>, ends: &[bool]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for mut step in steps {
        if let StepKind::Join { branches, .. } = &mut step.kind {
            *branches = std::mem::take(branches)
                .into_iter()
                .map(|b| seq(fields, b, ends))
                .collect();
        }
        let last = out.last_mut().map(|s| &mut s.kind);
        if let (
            Some(last),
            StepKind::Apply {
                field: pool,
                relu: false,
            },
        ) = (last, &step.kind)
        {
            let pool = *pool;
            if matches!(fields[pool].layer, Layer::MaxPool { .. }) {
                if let Some((label, convs)) = concat_of_convs(fields, last) {
                    *last = StepKind::ConvConcatPool {
                        label,
                        convs,
                        pool: Some((pool, step.span)),
                    };
                    continue;
                }
                if let StepKind::Apply { field, relu } = *last {
                    let joined = match fields[field].layer {
                        Layer::Conv { .. } => Some(StepKind::ConvPool {
                            conv: field,
                            relu,
                            pool,
                            pool_span: step.span,
                        }),
                        // A ReLU after the block would come before the pooling.
                        Layer::Block { def, .. } if !relu && ends[def] => {
                            Some(StepKind::BlockPool {
                                block: field,
                                pool,
                                pool_span: step.span,
                            })
                        }
                        _ => None,
                    };
                    if let Some(joined) = joined {
                        *last = joined;
                        continue;
                    }
                }
            }
        }
        out.push(step);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward steps of the model's struct, fused, as (kind, fields).
    fn fused(source: &str) -> Vec<StepKind> {
        let c = crate::check(source).unwrap_or_else(|d| panic!("{}", d.message));
        let layout = super::super::layout::layout(&c[0].model).unwrap();
        conv_pool(&layout)
            .model()
            .forward
            .iter()
            .map(|s| s.kind.clone())
            .collect()
    }

    fn branches(step: &StepKind) -> Vec<Vec<StepKind>> {
        let StepKind::Join { branches, .. } = step else {
            panic!("a join: {step:?}")
        };
        branches
            .iter()
            .map(|b| b.iter().map(|s| s.kind.clone()).collect())
            .collect()
    }

    #[test]
    fn a_max_pooling_right_after_a_convolution_joins_it() {
        let steps = fused(
            "model m {\n input 12x12x3\n c1: conv 3x3 8 relu\n p1: maxpool 3x3 /2\n \
             c2: conv 3x3 8\n p2: maxpool 2x2 /2\n out: fc 10\n}\n",
        );
        let joined = |conv, relu, pool| {
            matches!(steps.iter().find(|k| matches!(k, StepKind::ConvPool { conv: c, .. } if *c == conv)),
            Some(StepKind::ConvPool { relu: r, pool: p, pool_span: Some(_), .. }) if *r == relu && *p == pool)
        };
        assert!(joined(0, true, 1), "{steps:?}");
        assert!(joined(2, false, 3), "{steps:?}");
        assert_eq!(
            steps.len(),
            4,
            "two joined steps, the flatten, fc: {steps:?}"
        );
    }

    #[test]
    fn other_layers_and_readers_keep_the_steps_apart() {
        // A pooling after an average pooling, after a join (it reads both
        // branches), and a convolution whose output a join's branches read.
        let steps = fused(
            "model m {\n input 12x12x3\n a: avgpool 2x2 /1\n p0: maxpool 2x2 /1\n \
             c1: conv 1x1 8\n concat {\n b1: maxpool 3x3 /1\n b2: conv 1x1 8\n }\n \
             p1: maxpool 2x2 /2\n out: fc 10\n}\n",
        );
        assert!(
            steps
                .iter()
                .all(|k| !matches!(k, StepKind::ConvPool { .. })),
            "{steps:?}"
        );
        let join = steps
            .iter()
            .find(|k| matches!(k, StepKind::Join { .. }))
            .unwrap();
        for branch in branches(join) {
            assert!(
                branch.iter().all(|k| matches!(k, StepKind::Apply { .. })),
                "{branch:?}"
            );
        }
    }

    #[test]
    fn a_second_pooling_stays_apart() {
        // c1's ReLU is a statement of its own; p3 reads p2's output.
        let steps = fused(
            "model m {\n input 12x12x3\n c1: conv 3x3 8\n relu\n p1: maxpool 2x2 /1\n \
             c2: conv 3x3 8 relu\n p2: maxpool 2x2 /1\n p3: maxpool 2x2 /1\n dropout\n \
             out: fc 10\n}\n",
        );
        let joined: Vec<usize> = steps
            .iter()
            .filter_map(|k| match k {
                StepKind::ConvPool { pool, .. } => Some(*pool),
                _ => None,
            })
            .collect();
        let p2 = 3; // c1, p1, c2, p2, p3: fields 0-4
        assert!(joined.contains(&p2), "{steps:?}");
        assert!(!joined.contains(&4), "p3 joined: {steps:?}");
        let apart = |f: usize| {
            steps
                .iter()
                .any(|k| matches!(k, StepKind::Apply { field, relu: false } if *field == f))
        };
        assert!(apart(4), "p3 is its own step: {steps:?}");
    }

    #[test]
    fn branches_are_fused_inside() {
        let steps = fused(
            "model m {\n input 12x12x3\n concat {\n a: conv 3x3 8 relu\n \
             {\n b: conv 3x3 8\n bp: maxpool 3x3 /1\n }\n }\n out: fc 10\n}\n",
        );
        let join = steps
            .iter()
            .find(|k| matches!(k, StepKind::Join { .. }))
            .unwrap();
        let b = branches(join);
        assert!(matches!(b[0][..], [StepKind::Apply { .. }]), "{b:?}");
        assert!(
            matches!(b[1][..], [StepKind::ConvPool { relu: false, .. }]),
            "{b:?}"
        );
    }

    /// The model's forward steps with joined convolutions fused.
    fn concat_fused(source: &str) -> Vec<StepKind> {
        let c = crate::check(source).unwrap_or_else(|d| panic!("{}", d.message));
        let layout = super::super::layout::layout(&c[0].model).unwrap();
        conv_concat(&conv_pool(&layout))
            .model()
            .forward
            .iter()
            .map(|s| s.kind.clone())
            .collect()
    }

    #[test]
    fn a_concatenation_of_convolutions_becomes_one_step() {
        // A fire module's expand layers; three convolutions with and
        // without ReLUs; a join nested in a branch, whose outer join has a
        // pooled branch and stays a join.
        let steps = concat_fused(
            "model m {\n input 12x12x3\n s: conv 1x1 4 relu\n concat {\n e1: conv 1x1 8 relu\n \
             e3: conv 3x3 8 relu\n }\n concat {\n a: conv 1x1 4\n b: conv 3x3 4 relu\n \
             c: conv 5x5 4\n }\n concat {\n p: maxpool 3x3 /1\n concat {\n d: conv 1x1 4\n \
             e: conv 3x3 4\n }\n }\n out: fc 10\n}\n",
        );
        let convs = |k: &StepKind| match k {
            StepKind::ConvConcat { convs, .. } => convs
                .iter()
                .map(|c| match c.kind {
                    StepKind::Apply { field, relu } if c.span.is_some() => (field, relu),
                    _ => panic!("{c:?}"),
                })
                .collect::<Vec<_>>(),
            _ => panic!("a ConvConcat: {k:?}"),
        };
        assert_eq!(convs(&steps[1]), [(1, true), (2, true)], "{steps:?}");
        assert_eq!(convs(&steps[2]), [(3, false), (4, true), (5, false)]);
        let inner = branches(&steps[3]);
        assert!(matches!(inner[0][..], [StepKind::Apply { field: 6, .. }]));
        assert_eq!(convs(&inner[1][0]), [(7, false), (8, false)]);
        // Run apart, the step is the join it came from.
        let unfused = steps[1].unfused().unwrap();
        let kinds = branches(&unfused[0]);
        assert_eq!(
            kinds,
            [
                vec![StepKind::Apply {
                    field: 1,
                    relu: true
                }],
                vec![StepKind::Apply {
                    field: 2,
                    relu: true
                }]
            ]
        );
    }

    #[test]
    fn joins_with_other_branches_or_of_vectors_or_sums_stay_joins() {
        // A branch of two steps, a pooled convolution, a sum of
        // convolutions, a concatenation of fully connected layers.
        let steps = concat_fused(
            "model m {\n input 12x12x3\n concat {\n a: conv 1x1 4\n {\n b: conv 1x1 4\n \
             b2: conv 3x3 4\n }\n }\n concat {\n c: conv 1x1 4\n {\n d: conv 3x3 4\n \
             dp: maxpool 3x3 /1\n }\n }\n add {\n e: conv 1x1 4\n f: conv 3x3 4\n }\n \
             concat {\n g: fc 5\n h: fc 5\n }\n}\n",
        );
        assert!(
            steps
                .iter()
                .all(|k| !matches!(k, StepKind::ConvConcat { .. })),
            "{steps:?}"
        );
        assert_eq!(
            steps
                .iter()
                .filter(|k| matches!(k, StepKind::Join { .. }))
                .count(),
            4,
            "{steps:?}"
        );
    }

    /// The whole fused layout of a checked source.
    fn layout(source: &str) -> Layout {
        let c = crate::check(source).unwrap_or_else(|d| panic!("{}", d.message));
        conv_pool(&super::super::layout::layout(&c[0].model).unwrap())
    }

    #[test]
    fn a_max_pooling_after_a_block_that_ends_with_a_convolution_joins_it() {
        // nin2's shape: the block called, pooled, called again, pooled
        // through another window, and called a third time unpooled.
        let fused = layout(
            "block nin(f) {\n c: conv 3x3 f relu\n m: conv 1x1 f\n}\n\
             model m {\n input 12x12x3\n b1: nin(8)\n p1: maxpool 3x3 /2\n \
             b2: nin(8)\n p2: maxpool 2x2 /2\n b3: nin(8)\n out: fc 10\n}\n",
        );
        let steps: Vec<&StepKind> = fused.model().forward.iter().map(|s| &s.kind).collect();
        let pooled: Vec<(usize, usize)> = steps
            .iter()
            .filter_map(|k| match k {
                StepKind::BlockPool {
                    block,
                    pool,
                    pool_span: Some(_),
                } => Some((*block, *pool)),
                _ => None,
            })
            .collect();
        assert_eq!(pooled, [(0, 1), (2, 3)], "{steps:?}");
        assert!(
            matches!(steps[2], StepKind::Apply { field: 4, .. }),
            "b3 unpooled: {steps:?}"
        );
        // The block keeps its forward, and gains one whose last convolution
        // (m, without a ReLU) pools through the caller's pooling.
        let block = &fused.structs[0];
        let kinds = |steps: &[Step]| steps.iter().map(|s| s.kind.clone()).collect::<Vec<_>>();
        let pooled = kinds(block.pooled.as_ref().expect("a pooled forward"));
        let mut forward = kinds(&block.forward);
        assert_eq!(
            forward.pop(),
            Some(StepKind::Apply {
                field: 1,
                relu: false
            })
        );
        assert_eq!(pooled[..forward.len()], forward[..]);
        assert_eq!(
            pooled[forward.len()..],
            [StepKind::ConvPoolArg {
                conv: 1,
                relu: false
            }]
        );
    }

    #[test]
    fn a_max_pooling_after_a_concatenation_of_convolutions_joins_it() {
        // squeeze1's shape: a block that ends with the concatenation, called
        // twice, then pooled; and a concatenation pooled in the model's own
        // sequence.
        let fused = conv_concat(&layout(
            "block fire(e) {\n s: conv 1x1 4 relu\n concat {\n e1: conv 1x1 e relu\n \
             e3: conv 3x3 e relu\n }\n}\n\
             model m {\n input 12x12x3\n f1: fire(8)\n f2: fire(8)\n p1: maxpool 3x3 /2\n \
             concat {\n a: conv 1x1 4\n b: conv 3x3 4 relu\n }\n p2: maxpool 2x2 /2\n \
             out: fc 10\n}\n",
        ));
        let steps: Vec<&StepKind> = fused.model().forward.iter().map(|s| &s.kind).collect();
        assert!(
            matches!(steps[0], StepKind::Apply { field: 0, .. }),
            "{steps:?}"
        );
        assert!(
            matches!(
                steps[1],
                StepKind::BlockPool {
                    block: 1,
                    pool: 2,
                    pool_span: Some(_)
                }
            ),
            "{steps:?}"
        );
        let convs = |convs: &[Step]| {
            convs
                .iter()
                .map(|c| match c.kind {
                    StepKind::Apply { field, relu } if c.span.is_some() => (field, relu),
                    _ => panic!("{c:?}"),
                })
                .collect::<Vec<_>>()
        };
        let StepKind::ConvConcatPool {
            convs: own,
            pool: Some((5, Some(_))),
            ..
        } = steps[2]
        else {
            panic!("the model's concatenation pooled by p2: {steps:?}");
        };
        assert_eq!(convs(own), [(3, false), (4, true)]);
        // Run apart, the model's step is the join, then the pooling.
        let unfused = steps[2].unfused().unwrap();
        assert_eq!(branches(&unfused[0]).len(), 2);
        assert_eq!(
            unfused[1],
            StepKind::Apply {
                field: 5,
                relu: false
            }
        );
        // The block keeps its forward (the convolutions joined, not
        // pooled) and gains one that pools through the caller's pooling.
        let block = &fused.structs[0];
        assert!(matches!(
            block.forward.last().map(|s| &s.kind),
            Some(StepKind::ConvConcat { .. })
        ));
        let pooled = block.pooled.as_ref().expect("a pooled forward");
        assert_eq!(pooled.len(), block.forward.len());
        assert_eq!(pooled[0], block.forward[0]);
        let Some(StepKind::ConvConcatPool {
            convs: last,
            pool: None,
            ..
        }) = pooled.last().map(|s| &s.kind)
        else {
            panic!("{pooled:?}");
        };
        assert_eq!(convs(last), [(1, true), (2, true)]);
        assert_eq!(pooled.last().unwrap().kind.unfused(), None);
    }

    #[test]
    fn a_block_that_ends_otherwise_or_is_not_pooled_keeps_one_forward() {
        // `j` ends with a join that is not only convolutions, `u` is never
        // followed by a max pooling, and `a`'s call by an average pooling.
        let fused = layout(
            "block j() {\n concat {\n c: conv 1x1 4\n d: maxpool 3x3 /1\n }\n}\n\
             block u() {\n c: conv 1x1 4\n}\n\
             block a() {\n c: conv 1x1 4\n}\n\
             model m {\n input 12x12x3\n j()\n p1: maxpool 2x2 /1\n u()\n \
             a()\n p2: avgpool 2x2 /1\n out: fc 10\n}\n",
        );
        for s in &fused.structs {
            assert!(s.pooled.is_none(), "{}: {:?}", s.label, s.pooled);
        }
        assert!(
            fused
                .steps()
                .iter()
                .all(|(_, s)| !matches!(s.kind, StepKind::BlockPool { .. })),
            "{:?}",
            fused.model().forward
        );
    }
}
