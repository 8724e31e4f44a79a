//! Steps joined for back ends whose kernels do two layers in one pass.
//!
//! A max pooling right after a convolution, in the same sequence, is the
//! only reader of the convolution's output: netc's CPU kernel pools each
//! tile of that output while it is still in cache instead of writing the
//! whole map to memory and reading it back (`Kernels::conv_pool`). The burn
//! back end prints the joined step; PyTorch and ONNX keep the two layers.

use super::layout::{Field, Layer, Layout, Step, StepKind};

/// `layout` with every convolution followed by a max pooling (one without
/// a ReLU of its own) as one `StepKind::ConvPool`.
pub fn conv_pool(layout: &Layout) -> Layout {
    let mut fused = layout.clone();
    for s in &mut fused.structs {
        s.forward = seq(&s.fields, std::mem::take(&mut s.forward));
    }
    fused
}

fn seq(fields: &[Field], steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for mut step in steps {
        if let StepKind::Join { branches, .. } = &mut step.kind {
            *branches = std::mem::take(branches)
                .into_iter()
                .map(|b| seq(fields, b))
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
            if let StepKind::Apply { field: conv, relu } = *last {
                let conv_then_pool = matches!(fields[conv].layer, Layer::Conv { .. })
                    && matches!(fields[*pool].layer, Layer::MaxPool { .. });
                if conv_then_pool {
                    *last = StepKind::ConvPool {
                        conv,
                        relu,
                        pool: *pool,
                        pool_span: step.span,
                    };
                    continue;
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
}
