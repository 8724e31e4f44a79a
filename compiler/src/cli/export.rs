//! `netc export FILE (--run RUN | --weights W) -o model.onnx`

use netc::export::{self, Export, Source};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["run", "weights"])))]
pub struct Args {
    /// The .net file
    file: PathBuf,
    /// Which model of the file (default: the first)
    #[arg(long)]
    model: Option<String>,
    /// A run directory of the model (runs/<model>/<n>/): its checkpoint
    #[arg(long, value_name = "RUN")]
    run: Option<PathBuf>,
    /// A safetensors file with netc's tensor names (docs/checkpoints.md)
    #[arg(long, value_name = "W")]
    weights: Option<PathBuf>,
    /// The raw weights, not their average (`ema/`), which is the default where the file has it
    #[arg(long)]
    raw: bool,
    /// Take uint8 N x 32 x 32 x 3 images and do the central crop and per-image
    /// standardization in the graph, so the file alone labels a raw image
    #[arg(long)]
    with_preprocessing: bool,
    /// The ONNX file to write
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: &Args) -> std::io::Result<bool> {
    let Some((source, c)) = super::build::checked(&args.file, args.model.as_deref()) else {
        return Ok(false);
    };
    let weights = match (&args.run, &args.weights) {
        (Some(run), _) => Source::Run(run.clone()),
        (None, Some(w)) => Source::File(w.clone()),
        (None, None) => unreachable!("clap requires --run or --weights"),
    };
    let request = Export {
        weights,
        raw: args.raw,
        preprocessing: args.with_preprocessing,
        out: args.out.clone(),
    };
    let file = args.file.display().to_string();
    match export::export(&file, &source, &c, &request) {
        Ok(w) => {
            let which = if w.averaged { "averaged" } else { "raw" };
            outln!(
                "{}: model {} with the {which} weights of {} ({} bytes, ONNX opset {})",
                args.out.display(),
                c.model.name,
                w.weights.display(),
                w.bytes,
                netc::backend::onnx::OPSET
            )?;
            Ok(true)
        }
        Err(e) => {
            errln!("error: {e}");
            Ok(false)
        }
    }
}
