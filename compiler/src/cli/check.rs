//! `netc check FILE...`

use netc::backend::summary;
use netc::prune::sparse::{self, Density};
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
    /// A weight file of the (one) model: also print its non-zero parameters
    /// and its bytes dense and sparse (docs/compression.md)
    #[arg(long, value_name = "W", conflicts_with = "graph")]
    weights: Option<PathBuf>,
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
                let density = match (&args.weights, checked.as_slice()) {
                    (None, _) => None,
                    (Some(w), [c]) => match weights(w, c) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            errln!("error: {e}");
                            ok = false;
                            continue;
                        }
                    },
                    (Some(_), _) => {
                        errln!(
                            "error: {name}: --weights measures one model; this file has {}",
                            checked.len()
                        );
                        ok = false;
                        continue;
                    }
                };
                for c in checked {
                    if args.graph {
                        out!("{}", netc::backend::graph::dot(&c.model))?;
                    } else if args.json {
                        let mut m = summary::json(&c.model, &c.summary, &name, &source);
                        if let Some((path, d)) = &density {
                            m["weights"] = serde_json::json!({"file": path, "params": d.params,
                                "nonzero": d.nonzero, "dense_bytes": d.dense_bytes, "sparse_bytes": d.sparse_bytes});
                        }
                        models.push(m);
                    } else {
                        outln!("{}", summary::table(&c.model, &c.summary, &name))?;
                        if let Some((path, d)) = &density {
                            outln!("{}", line(path, d))?;
                        }
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

/// The density of weight file `w` for `c`, checked to fit it.
fn weights(w: &std::path::Path, c: &netc::Checked) -> Result<(String, Density), String> {
    let read = netc::weights::Weights::read(w, false)?;
    read.fit(&c.layout, w)?;
    let which = if read.averaged { " (averaged)" } else { "" };
    Ok((
        format!("{}{which}", w.display()),
        sparse::density(&read, &c.layout),
    ))
}

fn line(path: &str, d: &Density) -> String {
    use summary::thousands;
    format!(
        "weights {path}: {} of {} parameters non-zero ({:.1} %); {} bytes dense, {} sparse \
         (per tensor: a bit per value plus the non-zero float32 values, where smaller)",
        thousands(d.nonzero),
        thousands(d.params),
        100.0 * d.nonzero as f64 / d.params.max(1) as f64,
        thousands(d.dense_bytes),
        thousands(d.sparse_bytes)
    )
}
