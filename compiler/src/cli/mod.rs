//! Command-line interface: one function per subcommand.

mod bench;
mod build;
mod check;
mod report;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "netc",
    version,
    about = "Compile .net model descriptions: check shapes and counts, generate burn code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check models and print each layer's shape, parameters, MACs and operations.
    Check(check::Args),
    /// Print the burn code generated for a model
    Emit(build::EmitArgs),
    /// Write a model's program crate and compile it (target/netc/<model>/)
    Build(build::BuildArgs),
    /// Measure speed beside PyTorch: netc bench zoo/tuto.net zoo/squeeze1.net
    Bench(bench::Args),
    /// Compare runs: Markdown and CSV table, accuracy plots, report.md
    Report(report::Args),
    /// Get CIFAR-10: netc data cifar10 DIR [--from cifar-10-binary.tar.gz]
    Data(DataArgs),
    /// Build if needed, then train: netc train FILE --data DIR [--steps N ...]
    Train(build::RunArgs),
    /// Build if needed, then evaluate: netc eval FILE --data DIR --run RUN
    Eval(build::RunArgs),
    /// Build if needed, then label images: netc infer FILE --run RUN IMAGE...
    Infer(build::RunArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Emit(args) => build::emit(&args),
        Command::Data(args) => data(&args),
        Command::Report(args) => report::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Build(args) => build::build(&args),
        Command::Train(args) => return build::run("train", &args),
        Command::Eval(args) => return build::run("eval", &args),
        Command::Infer(args) => return build::run("infer", &args),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[derive(clap::Args)]
struct DataArgs {
    /// The data set; netc knows `cifar10`
    dataset: String,
    /// Where to put it (training then takes --data DIR)
    dir: std::path::PathBuf,
    /// A local archive instead of downloading (the official cifar-10-binary.tar.gz is checked by MD5)
    #[arg(long)]
    from: Option<std::path::PathBuf>,
}

fn data(args: &DataArgs) -> bool {
    if args.dataset != "cifar10" {
        eprintln!(
            "error: unknown data set `{}`; netc knows cifar10",
            args.dataset
        );
        return false;
    }
    match netc::data::cifar10(&args.dir, args.from.as_deref()) {
        Ok(dir) => {
            println!(
                "CIFAR-10 is in {}; train with --data {}",
                dir.display(),
                dir.display()
            );
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// A source file read from disk, or a printed error naming it.
pub fn read_source(path: &std::path::Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            None
        }
    }
}

pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
