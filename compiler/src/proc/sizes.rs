//! The layout with numbers: a block call's size variables bound to that
//! call's values, and every tensor the model holds, by `.net` path.
//!
//! The code back ends print a block's sizes as expressions, once per struct;
//! a back end that writes the network itself (ONNX) needs each call's
//! numbers, and so does reading a weight file for it.

use super::expr::{Expr, Var};
use super::layout::{Layer, Layout, Struct};
use std::collections::HashMap;

/// The values of a struct's size variables in one call.
#[derive(Debug, Clone, Default)]
pub struct Bindings(HashMap<Var, u64>);

impl Bindings {
    /// The model's: its sizes are numbers already.
    pub fn model() -> Self {
        Bindings::default()
    }

    /// A size with this call's numbers.
    pub fn eval(&self, e: &Expr) -> u64 {
        let lit = e.subst(&|v| Expr::Lit(self.0[v]));
        lit.lit()
            .expect("every variable of a struct is bound by its call")
    }

    /// The bindings inside a call of `callee` with `args` (the layout's
    /// `Layer::Block` arguments, in the caller's variables).
    pub fn call(&self, callee: &Struct, args: &[Expr]) -> Bindings {
        Bindings(
            callee
                .params
                .iter()
                .zip(args)
                .map(|(p, a)| (p.clone(), self.eval(a)))
                .collect(),
        )
    }
}

/// The tensors of one layer: the name after its path (`weight`,
/// `running_mean`) and the shape, as docs/checkpoints.md lays them out.
pub fn layer_tensors(layer: &Layer, b: &Bindings) -> Vec<(&'static str, Vec<usize>)> {
    let n = |e: &Expr| b.eval(e) as usize;
    match layer {
        Layer::Conv {
            inputs,
            filters,
            kernel,
            groups,
            bias,
            ..
        } => {
            let f = n(filters);
            let weight = vec![f, n(inputs) / n(groups), n(&kernel[0]), n(&kernel[1])];
            let mut out = vec![("weight", weight)];
            if *bias {
                out.push(("bias", vec![f]));
            }
            out
        }
        Layer::Dense {
            inputs,
            units,
            bias,
        } => {
            let mut out = vec![("weight", vec![n(inputs), n(units)])];
            if *bias {
                out.push(("bias", vec![n(units)]));
            }
            out
        }
        Layer::BatchNorm { channels, .. } => ["gamma", "beta", "running_mean", "running_var"]
            .into_iter()
            .map(|t| (t, vec![n(channels)]))
            .collect(),
        Layer::MaxPool { .. }
        | Layer::AvgPool { .. }
        | Layer::Lrn { .. }
        | Layer::Dropout { .. }
        | Layer::Block { .. } => Vec::new(),
    }
}

/// Every tensor of the model, by `.net` path (`fire2.e3x3.weight`), with
/// its shape, in the order of the layout's fields.
pub fn tensors(layout: &Layout) -> Vec<(String, Vec<usize>)> {
    fn walk(
        layout: &Layout,
        s: &Struct,
        b: &Bindings,
        prefix: &str,
        out: &mut Vec<(String, Vec<usize>)>,
    ) {
        for f in &s.fields {
            let path = format!("{prefix}{}", f.label);
            if let Layer::Block { def, args } = &f.layer {
                let callee = &layout.structs[*def];
                walk(
                    layout,
                    callee,
                    &b.call(callee, args),
                    &format!("{path}."),
                    out,
                );
            }
            for (t, shape) in layer_tensors(&f.layer, b) {
                out.push((format!("{path}.{t}"), shape));
            }
        }
    }
    let mut out = Vec::new();
    walk(layout, layout.model(), &Bindings::model(), "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_calls_get_their_own_numbers() {
        let c = crate::check(
            "block fire(s, e) {\n squeeze: conv 1x1 s relu\n concat {\n a: conv 1x1 e\n b: conv 3x3 e\n }\n}\n\
             model m {\n input 8x8x3\n fire(4, 8)\n fire(8, 16)\n bn: batchnorm\n avgpool global\n out: fc 10 nobias\n}\n",
        )
        .unwrap();
        let t: HashMap<String, Vec<usize>> = tensors(&c[0].layout).into_iter().collect();
        assert_eq!(t["fire1.squeeze.weight"], [4, 3, 1, 1]);
        assert_eq!(t["fire2.squeeze.weight"], [8, 16, 1, 1]);
        assert_eq!(t["fire2.b.weight"], [16, 8, 3, 3]);
        assert_eq!(t["fire2.b.bias"], [16]);
        assert_eq!(t["bn.running_var"], [32]);
        assert_eq!(t["out.weight"], [32, 10]);
        assert!(!t.contains_key("out.bias"));
        assert_eq!(t.len(), 3 * 2 * 2 + 4 + 1);
    }
}
