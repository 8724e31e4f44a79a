//! Printing a struct's `forward` from its layout, in either language.
//!
//! A branch of one layer is written inline in the join
//! (`torch.cat([self.a(x), self.b(x)], 1)`); a longer branch gets its own
//! variable, so `x` is never reassigned through a branch.

use crate::diag::Span;
use crate::proc::layout::{JoinKind, Step, StepKind, Struct};
use crate::proc::namer::Namer;

/// What differs between the languages.
pub trait Syntax {
    /// One step that is not a join, applied to the expression `input`.
    fn step(&self, s: &Struct, step: &StepKind, input: String) -> String;
    /// Branch outputs joined.
    fn join(&self, join: JoinKind, maps: bool, parts: Vec<String>) -> String;
    /// `let var = expr;` or `var = expr`.
    fn assign(&self, var: &str, expr: &str) -> String;
    /// The comment naming a statement of the `.net` file.
    fn comment(&self, span: Span) -> String;
    /// A use of the variable `var`; `moved` when nothing reads it afterwards
    /// (Rust clones it otherwise).
    fn read(&self, var: &str, moved: bool) -> String;
}

/// A value a sequence of steps starts from: a variable, which the sequence
/// may move at its last read when `last`.
#[derive(Clone)]
struct Input {
    var: String,
    last: bool,
}

/// The lines of `forward`, leaving the result in `x`.
pub fn lines(syntax: &dyn Syntax, s: &Struct, locals: &mut Namer) -> Vec<String> {
    lines_of(syntax, s, &s.forward, locals)
}

/// The lines of `steps`, one of `s`'s forwards, leaving the result in `x`.
pub fn lines_of(
    syntax: &dyn Syntax,
    s: &Struct,
    steps: &[Step],
    locals: &mut Namer,
) -> Vec<String> {
    let mut p = Printer {
        syntax,
        s,
        locals,
        lines: Vec::new(),
    };
    let input = Input {
        var: "x".into(),
        last: true,
    };
    let out = p.seq(steps, &input, "x");
    if out != "x" {
        let line = syntax.assign("x", &out);
        p.lines.push(line);
    }
    p.lines
}

struct Printer<'a> {
    syntax: &'a dyn Syntax,
    s: &'a Struct,
    locals: &'a mut Namer,
    lines: Vec<String>,
}

fn real(steps: &[Step]) -> Vec<&Step> {
    steps
        .iter()
        .filter(|s| s.kind != StepKind::Identity)
        .collect()
}

impl Printer<'_> {
    /// The comments naming the statements `step` comes from: a joined
    /// step (`ConvPool`, `ConvConcat`) comes from several.
    fn comment(&mut self, step: &Step, last: &mut Option<Span>) {
        let joined = match &step.kind {
            StepKind::ConvPool { pool_span, .. } | StepKind::BlockPool { pool_span, .. } => {
                vec![*pool_span]
            }
            StepKind::ConvConcat { convs, .. } => convs.iter().map(|c| c.span).collect(),
            StepKind::ConvConcatPool { convs, pool, .. } => {
                let pool = pool.and_then(|(_, span)| span);
                convs.iter().map(|c| c.span).chain([pool]).collect()
            }
            _ => Vec::new(),
        };
        for span in std::iter::once(step.span).chain(joined).flatten() {
            if *last != Some(span) {
                self.lines.push(self.syntax.comment(span));
            }
            *last = Some(span);
        }
    }

    /// Writes `steps` into `var`, starting from `input`; returns what holds
    /// the result (`input` itself when no step does anything).
    fn seq(&mut self, steps: &[Step], input: &Input, var: &str) -> String {
        let mut cur: Option<String> = None;
        let mut last_span = None;
        for step in steps {
            self.comment(step, &mut last_span);
            let from = match &cur {
                None => input.clone(),
                Some(v) => Input {
                    var: v.clone(),
                    last: true,
                },
            };
            let expr = match &step.kind {
                StepKind::Identity => continue,
                StepKind::Join {
                    join,
                    label,
                    maps,
                    branches,
                } => self.join(*join, label, *maps, branches, &from),
                kind => {
                    let arg = self.syntax.read(&from.var, from.last);
                    self.syntax.step(self.s, kind, arg)
                }
            };
            let line = self.syntax.assign(var, &expr);
            self.lines.push(line);
            cur = Some(var.to_string());
        }
        cur.unwrap_or_else(|| self.syntax.read(&input.var, input.last))
    }

    fn join(
        &mut self,
        join: JoinKind,
        label: &str,
        maps: bool,
        branches: &[Vec<Step>],
        input: &Input,
    ) -> String {
        // One layer (or none) inline; longer branches and joins as statements.
        let inline: Vec<bool> = branches
            .iter()
            .map(|b| match real(b).as_slice() {
                [] => true,
                [one] => !matches!(one.kind, StepKind::Join { .. }),
                _ => false,
            })
            .collect();
        // Statements run first, then the join reads the inline branches in order.
        let last_use = match inline.iter().rposition(|i| *i) {
            Some(i) => i,
            None => branches.len().saturating_sub(1),
        };
        let mut parts = vec![String::new(); branches.len()];
        for (i, branch) in branches.iter().enumerate() {
            if inline[i] {
                continue;
            }
            let var = self.locals.call(&format!("{label}_{}", i + 1));
            let from = Input {
                var: input.var.clone(),
                last: input.last && i == last_use,
            };
            parts[i] = self.seq(branch, &from, &var);
        }
        for (i, branch) in branches.iter().enumerate() {
            if !inline[i] {
                continue;
            }
            let mut last_span = None;
            for step in branch {
                self.comment(step, &mut last_span);
            }
            let arg = self.syntax.read(&input.var, input.last && i == last_use);
            parts[i] = match real(branch).first() {
                None => arg,
                Some(step) => self.syntax.step(self.s, &step.kind, arg),
            };
        }
        self.syntax.join(join, maps, parts)
    }
}
