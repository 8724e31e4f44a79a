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
    /// What to print: the burn model code (`burn`), the program's main.rs (`main`),
    /// or a PyTorch module with netc's parameter names (`pytorch`)
    #[arg(long, default_value = "burn")]
    target: String,
}

#[derive(clap::Args, Clone)]
pub struct BuildArgs {
    /// .net files; every model in them is built
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to write the crates: one folder per model, DIR/<model>/ (default: target/netc/)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build with burn's CUDA backend (needs the CUDA toolkit)
    #[arg(long)]
    cuda: bool,
}

/// A checked model of a file, or a printed error.
pub(super) fn checked(path: &Path, wanted: Option<&str>) -> Option<(String, netc::Checked)> {
    let source = super::read_source(path)?;
    let name = path.display().to_string();
    match netc::check(&source) {
        Ok(models) => {
            let found = models
                .into_iter()
                .find(|c| wanted.is_none_or(|w| c.model.name == w));
            if found.is_none() {
                errln!("error: {name} has no model named {}", wanted.unwrap_or("?"));
            }
            found.map(|c| (source, c))
        }
        Err(d) => {
            err!("{}", d.render(&name, &source, super::color()));
            None
        }
    }
}

pub fn emit(args: &EmitArgs) -> std::io::Result<bool> {
    let Some((source, c)) = checked(&args.file, args.model.as_deref()) else {
        return Ok(false);
    };
    let file = args.file.display().to_string();
    let code = match args.target.as_str() {
        "burn" => match burn::model_rs(&c.model, &source, &file) {
            Ok(code) => code,
            Err(d) => {
                err!("{}", d.render(&file, &source, super::color()));
                return Ok(false);
            }
        },
        "main" => burn::main_rs(&c.model, &file),
        "pytorch" => match netc::backend::pytorch::module_py(&c.model, &source, &file) {
            Ok(code) => {
                out!("{code}")?;
                return Ok(true);
            }
            Err(d) => {
                err!("{}", d.render(&file, &source, super::color()));
                return Ok(false);
            }
        },
        other => {
            errln!("error: unknown target `{other}`; targets are burn, main and pytorch");
            return Ok(false);
        }
    };
    out!("{}", burn::rustfmt(&code))?;
    Ok(true)
}

/// Writes the crate of one model and compiles it; returns the program's path.
pub(super) fn build_one(
    file: &Path,
    source: &str,
    c: &netc::Checked,
    args: &BuildArgs,
) -> Result<PathBuf, String> {
    let build = driver::Build {
        // A folder per model: a file's models never overwrite each other.
        out: args.out.as_ref().map_or_else(
            || driver::default_out(&c.model.name),
            |dir| dir.join(&c.model.name),
        ),
        target: driver::target_dir(),
        cuda: args.cuda,
    };
    driver::build(&file.display().to_string(), source, c, &build)
}

/// Every checked model of a file with its source, or a printed error.
pub(super) fn checked_all(file: &Path) -> Option<(String, Vec<netc::Checked>)> {
    let source = super::read_source(file)?;
    match netc::check(&source) {
        Ok(models) => Some((source, models)),
        Err(d) => {
            let name = file.display().to_string();
            err!("{}", d.render(&name, &source, super::color()));
            None
        }
    }
}

impl BuildArgs {
    /// A CPU build of `file` into the default place.
    pub(super) fn plain(file: &Path) -> BuildArgs {
        BuildArgs {
            files: vec![file.to_path_buf()],
            out: None,
            cuda: false,
        }
    }
}

pub fn build(args: &BuildArgs) -> std::io::Result<bool> {
    let mut ok = true;
    for file in &args.files {
        let Some((source, models)) = checked_all(file) else {
            ok = false;
            continue;
        };
        for c in &models {
            match build_one(file, &source, c, args) {
                Ok(binary) => outln!("{}", binary.display())?,
                Err(e) => {
                    errln!("error: {e}");
                    ok = false;
                }
            }
        }
    }
    Ok(ok)
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
            errln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Command::new(&binary).arg(command).args(&args.args).status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            errln!("error: cannot run {}: {e}", binary.display());
            ExitCode::FAILURE
        }
    }
}
