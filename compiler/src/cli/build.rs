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
    /// a PyTorch module with netc's parameter names (`pytorch`), or that module
    /// with netc's torch training engine, a script that trains it (`pytorch-train`)
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
        "pytorch" | "pytorch-train" => match python(&args.target, &c.model, &source, &file) {
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
            errln!("error: unknown target `{other}`; targets are burn, main, pytorch and pytorch-train");
            return Ok(false);
        }
    };
    out!("{}", burn::rustfmt(&code))?;
    Ok(true)
}

/// The Python module of a model, alone or with the training engine.
fn python(
    target: &str,
    model: &netc::ir::Typed,
    source: &str,
    file: &str,
) -> netc::diag::Result<String> {
    use netc::backend::pytorch;
    match target {
        "pytorch-train" => pytorch::train_py(model, source, file),
        _ => pytorch::module_py(model, source, file),
    }
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
    /// Who trains: netc's own program (`burn`), or PyTorch running the script
    /// `netc emit --target pytorch-train` writes (`torch`; it adds --nproc N,
    /// --device, --channels-last, --bf16)
    #[arg(long, value_name = "ENGINE")]
    engine: Option<String>,
    /// The Python that has torch, for --engine torch [default: $NETC_PYTHON or python3]
    #[arg(long)]
    python: Option<String>,
    /// Arguments of the generated program, such as --data DIR --steps 10000
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `--engine` taken out of the program's arguments too, where clap left it
/// once they began (`netc train f.net --data d --engine torch`).
fn engine(args: &RunArgs) -> Result<(bool, Vec<String>), String> {
    let mut engine = args.engine.clone();
    let mut rest = Vec::new();
    let mut it = args.args.iter();
    while let Some(a) = it.next() {
        if a == "--engine" {
            engine = Some(
                it.next()
                    .cloned()
                    .ok_or("--engine needs a value: burn or torch")?,
            );
        } else if let Some(v) = a.strip_prefix("--engine=") {
            engine = Some(v.to_string());
        } else {
            rest.push(a.clone());
        }
    }
    match engine.as_deref() {
        None | Some("burn") => Ok((false, rest)),
        Some("torch") => Ok((true, rest)),
        Some(other) => Err(format!(
            "unknown engine `{other}`; engines are burn and torch"
        )),
    }
}

/// Builds the model if needed, then runs `command` of its program; with
/// `--engine torch`, writes the training script and runs it with Python.
pub fn run(command: &str, args: &RunArgs) -> ExitCode {
    let Some((source, c)) = checked(&args.file, args.model.as_deref()) else {
        return ExitCode::FAILURE;
    };
    let (torch, program_args) = match engine(args) {
        Ok(e) => e,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if torch {
        return run_torch(command, args, &source, &c, &program_args);
    }
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
    status(
        Command::new(&binary).arg(command).args(&program_args),
        &binary.display().to_string(),
    )
}

/// The exit status of a child, passed on.
fn status(cmd: &mut Command, what: &str) -> ExitCode {
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            errln!("error: cannot run {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `netc train --engine torch`: writes `target/netc/<model>/train.py` (the
/// module and the engine) and runs it; the run it makes is an ordinary netc
/// run, which `eval` and `infer` read with netc's program.
fn run_torch(
    command: &str,
    args: &RunArgs,
    source: &str,
    c: &netc::Checked,
    program_args: &[String],
) -> ExitCode {
    if command != "train" {
        errln!(
            "error: --engine torch trains; `netc {command}` reads any run with netc's program: leave --engine out"
        );
        return ExitCode::FAILURE;
    }
    if args.cuda {
        errln!(
            "error: --cuda builds netc's CUDA program; the torch engine uses a GPU when PyTorch sees one (--device cuda)"
        );
        return ExitCode::FAILURE;
    }
    let file = args.file.display().to_string();
    let script = match netc::backend::pytorch::train_py(&c.model, source, &file) {
        Ok(s) => s,
        Err(d) => {
            err!("{}", d.render(&file, source, super::color()));
            return ExitCode::FAILURE;
        }
    };
    let dir = driver::default_out(&c.model.name);
    let path = dir.join("train.py");
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| driver::write_atomic(&path, script.as_bytes()));
    if let Err(e) = written {
        errln!("error: {}: cannot write: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var("NETC_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let mut cmd = Command::new(&python);
    cmd.arg(&path).args(program_args);
    // A step's freed activations kept for the next (netc::allocator).
    netc::allocator::apply(&mut cmd);
    status(
        &mut cmd,
        &format!("{python} (the Python with torch; --python or NETC_PYTHON chooses another)"),
    )
}
