//! `netc emit`, `netc build`, and `netc train|eval|infer`, which build then
//! run the generated program.

use netc::backend::burn;
use netc::driver;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(clap::Args)]
pub struct EmitArgs {
    /// The .net file
    file: PathBuf,
    /// Which model of the file (default: the first)
    #[arg(long)]
    model: Option<String>,
    /// What to print: the model code (`burn`) or the whole program's main.rs (`main`)
    #[arg(long, default_value = "burn")]
    target: String,
}

#[derive(clap::Args, Clone)]
pub struct BuildArgs {
    /// .net files; every model in them is built
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to write the crate (default: target/netc/<model>/)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Build with burn's CUDA backend (needs the CUDA toolkit)
    #[arg(long)]
    cuda: bool,
}

/// A checked model of a file, or a printed error.
fn checked(path: &Path, wanted: Option<&str>) -> Option<(String, netc::Checked)> {
    let source = super::read_source(path)?;
    let name = path.display().to_string();
    match netc::check(&source) {
        Ok(models) => {
            let found = models
                .into_iter()
                .find(|c| wanted.is_none_or(|w| c.model.name == w));
            if found.is_none() {
                eprintln!("error: {name} has no model named {}", wanted.unwrap_or("?"));
            }
            found.map(|c| (source, c))
        }
        Err(d) => {
            eprint!("{}", d.render(&name, &source, super::color()));
            None
        }
    }
}

pub fn emit(args: &EmitArgs) -> bool {
    let Some((source, c)) = checked(&args.file, args.model.as_deref()) else {
        return false;
    };
    let file = args.file.display().to_string();
    let code = match args.target.as_str() {
        "burn" => match burn::model_rs(&c.model, &source, &file) {
            Ok(code) => code,
            Err(d) => {
                eprint!("{}", d.render(&file, &source, super::color()));
                return false;
            }
        },
        "main" => burn::main_rs(&c.model, &file),
        other => {
            eprintln!("error: unknown target `{other}`; targets are burn and main");
            return false;
        }
    };
    print!("{}", burn::rustfmt(&code));
    true
}

/// Writes the crate of one model and compiles it; returns the program's path.
fn build_one(
    file: &Path,
    source: &str,
    c: &netc::Checked,
    args: &BuildArgs,
) -> Result<PathBuf, String> {
    let build = driver::Build {
        out: args
            .out
            .clone()
            .unwrap_or_else(|| driver::default_out(&c.model.name)),
        target: driver::target_dir(),
        cuda: args.cuda,
    };
    driver::build(&file.display().to_string(), source, c, &build)
}

pub fn build(args: &BuildArgs) -> bool {
    let mut ok = true;
    for file in &args.files {
        let Some(source) = super::read_source(file) else {
            ok = false;
            continue;
        };
        let name = file.display().to_string();
        let models = match netc::check(&source) {
            Ok(m) => m,
            Err(d) => {
                eprint!("{}", d.render(&name, &source, super::color()));
                ok = false;
                continue;
            }
        };
        for c in &models {
            match build_one(file, &source, c, args) {
                Ok(binary) => println!("{}", binary.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    ok = false;
                }
            }
        }
    }
    ok
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The .net file
    file: PathBuf,
    /// Which model of the file (default: the first)
    #[arg(long)]
    model: Option<String>,
    /// Build with CUDA (then pass --device cuda)
    #[arg(long)]
    cuda: bool,
    /// Arguments of the generated program, such as --data DIR --steps 10000
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Builds the model if needed, then runs `command` of its program.
pub fn run(command: &str, args: &RunArgs) -> ExitCode {
    let Some((source, c)) = checked(&args.file, args.model.as_deref()) else {
        return ExitCode::FAILURE;
    };
    let build = BuildArgs {
        files: vec![args.file.clone()],
        out: None,
        cuda: args.cuda,
    };
    let binary = match build_one(&args.file, &source, &c, &build) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Command::new(&binary).arg(command).args(&args.args).status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", binary.display());
            ExitCode::FAILURE
        }
    }
}
