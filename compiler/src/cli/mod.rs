//! Command-line interface: one function per subcommand.
//!
//! Commands print through `out!`/`outln!`, never `print!`: `print!` panics
//! when the reader of a pipe has gone (`netc check x.net | head -1`) or the
//! disk is full, while these return the error, which `run` turns into a quiet
//! exit or a message. Messages go to standard error through `err!`/`errln!`,
//! which cannot fail.

/// `write!` to standard output; an `io::Result` for the command to pass up.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `writeln!` to standard output; an `io::Result` for the command to pass up.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` that ignores a failing standard error (a closed pipe, a full
/// disk): there is nowhere left to report it, and the exit code still tells.
macro_rules! errln {
    ($($arg:tt)*) => {
        netc::diag::note(format_args!($($arg)*))
    };
}

/// `eprint!` that ignores a failing standard error, like `errln!`.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod bench;
mod build;
mod check;
mod export;
mod prune;
mod report;
mod sweep;

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
    /// Build if needed, then quantize a run to int8:
    /// netc quantize FILE --run RUN --data DIR --calibrate N [--method minmax|percentile]
    Quantize(build::RunArgs),
    /// Freeze a model and its weights into ONNX: netc export FILE --run RUN -o model.onnx
    Export(export::Args),
    /// Train variants of a model, one change at a time: netc sweep FILE --vary conv1.filters=32,96 --data DIR
    Sweep(sweep::Args),
    /// Prune a trained run: netc prune FILE --run RUN --sparsity 50,75,90 --steps-per-round N
    Prune(prune::Args),
}

/// The exit status when the reader of standard output has gone: the status a
/// shell reports for a tool that SIGPIPE ended (128 + 13), as `cat` or `grep`
/// would give. Not 0: the command stopped before finishing its work.
const CLOSED_PIPE: u8 = 141;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Emit(args) => build::emit(&args),
        Command::Data(args) => data(&args),
        Command::Report(args) => report::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Build(args) => build::build(&args),
        Command::Train(args) => return build::run("train", &args),
        Command::Eval(args) => return build::run("eval", &args),
        Command::Infer(args) => return build::run("infer", &args),
        Command::Quantize(args) => return build::run("quantize", &args),
    };
    // Standard output is line-buffered: a last line without a newline fails
    // only here, and unflushed output at exit would be lost without a word.
    let done = done.and_then(|ok| std::io::Write::flush(&mut std::io::stdout()).map(|()| ok));
    match done {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Like `head` closing the pipe: the reader wants no more; say nothing.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(CLOSED_PIPE),
        Err(e) => {
            errln!("error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
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

fn data(args: &DataArgs) -> std::io::Result<bool> {
    if args.dataset != "cifar10" {
        errln!(
            "error: unknown data set `{}`; netc knows cifar10",
            args.dataset
        );
        return Ok(false);
    }
    match netc::data::cifar10(&args.dir, args.from.as_deref()) {
        Ok(dir) => {
            outln!(
                "CIFAR-10 is in {}; train with --data {}",
                dir.display(),
                dir.display()
            )?;
            Ok(true)
        }
        Err(e) => {
            errln!("error: {e}");
            Ok(false)
        }
    }
}

/// A source file read from disk, or a printed error naming it.
pub fn read_source(path: &std::path::Path) -> Option<String> {
    use std::io::Read as _;
    // One byte past the limit is enough to refuse a file: never read a huge
    // one into memory.
    let limit = netc::syntax::MAX_SOURCE_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes));
    if let Err(e) = read {
        errln!("error: cannot read {}: {e}", path.display());
        return None;
    }
    match netc::syntax::decode(&bytes) {
        Ok(source) => Some(source),
        Err(d) => {
            let text = String::from_utf8_lossy(&bytes);
            err!("{}", d.render(&path.display().to_string(), &text, color()));
            None
        }
    }
}

pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
