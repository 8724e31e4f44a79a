//! `netc check FILE...`

use netc::backend::summary;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// .net files to check
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (an array with one object per model) instead of tables
    #[arg(long)]
    json: bool,
    /// Print each model as a Graphviz DOT graph (render with `dot -Tsvg`)
    #[arg(long, conflicts_with = "json")]
    graph: bool,
}

/// Checks every file, printing what it can; false if any file had an error.
pub fn run(args: &Args) -> std::io::Result<bool> {
    let mut ok = true;
    let mut models = Vec::new();
    for path in &args.files {
        let Some(source) = super::read_source(path) else {
            ok = false;
            continue;
        };
        let name = path.display().to_string();
        match netc::check(&source) {
            Ok(checked) => {
                for c in checked {
                    if args.graph {
                        out!("{}", netc::backend::graph::dot(&c.model))?;
                    } else if args.json {
                        models.push(summary::json(&c.model, &c.summary, &name, &source));
                    } else {
                        outln!("{}", summary::table(&c.model, &c.summary, &name))?;
                    }
                }
            }
            Err(d) => {
                err!("{}", d.render(&name, &source, super::color()));
                ok = false;
            }
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&models).expect("JSON values always serialize")
        )?;
    }
    Ok(ok)
}
