//! `netc check --graph`: the model as a Graphviz DOT graph. One box per
//! layer with its output shape and parameters; branches fan out and meet at
//! their `concat` or `add`; block calls are boxed clusters.
//! Render with `dot -Tsvg model.dot > model.svg`.

use crate::analysis::counts;
use crate::backend::summary::thousands;
use crate::ir::{Io, Node, Op, Typed};
use std::fmt::Write;

struct Dot {
    out: String,
    /// Edges go after every node: an edge written inside a cluster would
    /// pull both its ends into it.
    edges: Vec<String>,
    next: usize,
}

impl Dot {
    fn node(&mut self, label: &str, style: &str, indent: usize) -> String {
        self.next += 1;
        let id = format!("n{}", self.next);
        let pad = "  ".repeat(indent);
        let _ = writeln!(
            self.out,
            "{pad}{id} [label=\"{}\"{style}];",
            label.replace('"', "'")
        );
        id
    }

    fn edge(&mut self, from: &str, to: &str) {
        self.edges.push(format!("  {from} -> {to};"));
    }

    /// Draws `nodes` after `from`; returns the last node drawn.
    fn seq(&mut self, nodes: &[Node<Io>], mut from: String, prefix: &str, indent: usize) -> String {
        for n in nodes {
            from = self.one(n, from, prefix, indent);
        }
        from
    }

    fn one(&mut self, n: &Node<Io>, from: String, prefix: &str, indent: usize) -> String {
        let path = n.path(prefix);
        match &n.op {
            Op::Concat(branches) | Op::Add(branches) => {
                let ends: Vec<String> = branches
                    .iter()
                    .map(|b| self.seq(b, from.clone(), prefix, indent))
                    .collect();
                let label = format!("{}\\n{}", counts::describe(n), n.ty.output);
                let join = self.node(&label, ", shape=ellipse", indent);
                for e in ends {
                    self.edge(&e, &join);
                }
                join
            }
            Op::Block(call) => {
                self.next += 1;
                let pad = "  ".repeat(indent);
                let _ = writeln!(self.out, "{pad}subgraph cluster_{} {{", self.next);
                let _ = writeln!(
                    self.out,
                    "{pad}  label=\"{path}: {}\"; style=rounded; color=gray50;",
                    counts::describe(n)
                );
                let last = self.seq(&call.body, from, &path, indent + 1);
                let _ = writeln!(self.out, "{pad}}}");
                last
            }
            _ => {
                let c = counts::layer(n);
                let params = if c.params > 0 {
                    format!("\\n{} params", thousands(c.params))
                } else {
                    String::new()
                };
                let label = format!("{path}\\n{}\\n{}{params}", counts::describe(n), n.ty.output);
                let id = self.node(&label, "", indent);
                self.edge(&from, &id);
                id
            }
        }
    }
}

pub fn dot(model: &Typed) -> String {
    let mut d = Dot {
        out: String::new(),
        edges: Vec::new(),
        next: 0,
    };
    let _ = writeln!(d.out, "digraph \"{}\" {{", model.name);
    let _ = writeln!(d.out, "  rankdir=TB; fontname=\"Helvetica\"; node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];");
    let input = d.node(&format!("input\\n{}", model.input), ", shape=oval", 1);
    let last = d.seq(&model.body, input, "", 1);
    let out = d.node(
        &format!("{} class scores", model.settings.classes),
        ", shape=oval",
        1,
    );
    d.edge(&last, &out);
    for e in std::mem::take(&mut d.edges) {
        d.out.push_str(&e);
        d.out.push('\n');
    }
    d.out.push_str("}\n");
    d.out
}
