//! Command-line interface: one function per subcommand.

mod check;

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
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Check(args) => check::run(&args),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
