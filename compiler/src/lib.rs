//! netc: a compiler for a small language that describes convolutional networks.
//!
//! The pipeline, one module per stage:
//! source --[`syntax`]--> AST --[`lower`]--> IR --[`shape`]--> typed graph
//! --[`analysis`]--> counts, --[`proc`]--> layout --[`backend`]--> tables, JSON, code.

pub mod allocator;
pub mod analysis;
pub mod backend;
pub mod bench;
pub mod data;
pub mod diag;
pub mod driver;
pub mod export;
pub mod ir;
pub mod lower;
pub mod machine;
pub mod proc;
pub mod prune;
pub mod report;
pub mod shape;
pub mod sweep;
pub mod syntax;
pub mod weights;

use analysis::counts::{summarize, Summary};
use diag::Result;
use ir::Typed;

/// A model that passed every check, with its counts and the layout every
/// back end renders.
pub struct Checked {
    pub model: Typed,
    pub summary: Summary,
    pub layout: proc::layout::Layout,
}

/// Runs the front half of the pipeline on one source file.
pub fn check(source: &str) -> Result<Vec<Checked>> {
    let ast = syntax::parse(source)?;
    let models = lower::lower(&ast)?;
    if models.is_empty() {
        return Err(
            diag::Diagnostic::new(diag::Span::new(0, 0), "no model in this file")
                .label("nothing to check")
                .help("define one with `model NAME { input 24x24x3 ... }`"),
        );
    }
    models
        .iter()
        .map(|m| {
            let model = shape::infer(m)?;
            let summary = summarize(&model);
            // Code generation refuses nothing that passes here.
            let layout = proc::layout::layout(&model)?;
            Ok(Checked {
                model,
                summary,
                layout,
            })
        })
        .collect()
}
