//! The `train key=value ...` lines of a model: every training setting, its
//! range, and the checks between settings (a step schedule needs its
//! interval). `TRAIN_KEYS` is the one list of the keys; `netc sweep` accepts
//! exactly these as training settings to vary.

use super::values::{self, Env};
use crate::diag::{Diagnostic, Result, Span};
use crate::ir::{Init, Optimizer, Schedule, Settings};
use crate::syntax::ast::{self, Value, ValueKind};
use std::collections::HashMap;

/// Every key of a `train` line, in the order docs/language.md lists them.
pub const TRAIN_KEYS: &[&str] = &[
    "decay",
    "dropout",
    "augment",
    "average",
    "lr",
    "batch",
    "steps",
    "classes",
    "optimizer",
    "momentum",
    "beta1",
    "beta2",
    "epsilon",
    "schedule",
    "lr_every",
    "lr_factor",
    "lr_min",
    "warmup",
    "smoothing",
    "init",
];

/// What a model's `train` lines say, read one line at a time.
#[derive(Default)]
pub struct Train {
    pub settings: Settings,
    /// `augment=` when given; otherwise the input size decides.
    pub augment: Option<bool>,
    /// Where each key was last given, for the checks between keys.
    spans: HashMap<&'static str, Span>,
}

impl Train {
    /// Reads one `train key=value ...` line.
    pub fn read(&mut self, args: &[ast::Arg]) -> Result<()> {
        for arg in args {
            let Some(key) = &arg.key else {
                return Err(
                    Diagnostic::new(arg.value.span, "`train` takes key=value settings")
                        .label("a bare value")
                        .help(format!("settings: {}", TRAIN_KEYS.join(", "))),
                );
            };
            let Some(known) = TRAIN_KEYS.iter().find(|k| **k == key.name) else {
                let hint = match values::closest(&key.name, TRAIN_KEYS.iter().copied()) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("settings: {}", TRAIN_KEYS.join(", ")),
                };
                return Err(
                    Diagnostic::new(key.span, format!("unknown setting `{}`", key.name))
                        .label("not a training setting")
                        .help(hint),
                );
            };
            self.set(known, &arg.value)?;
            self.spans.insert(known, arg.value.span);
        }
        Ok(())
    }

    fn set(&mut self, key: &str, v: &Value) -> Result<()> {
        let s = &mut self.settings;
        let env = Env::new();
        match key {
            "decay" => s.decay = values::real_in(v, "the decay factor", 0.0, f64::MAX)?,
            "dropout" => s.dropout = values::real_in(v, "the dropout rate", 0.0, 1.0)?,
            "augment" => self.augment = Some(values::switch(v, "augment")?),
            "average" => s.average = values::switch(v, "average")?,
            "lr" => s.learning_rate = values::real_in(v, "the learning rate", 0.0, 1e6)?,
            "batch" => s.batch_size = values::int(v, &env, "the batch size")?.value,
            "steps" => s.steps = values::int(v, &env, "the number of steps")?.value,
            "classes" => s.classes = values::int(v, &env, "the number of classes")?.value,
            "optimizer" => {
                s.optimizer = word(v, "optimizer", &Optimizer::ALL.map(Optimizer::name))
                    .map(|i| Optimizer::ALL[i])?
            }
            "momentum" => s.momentum = values::real_in(v, "the momentum", 0.0, 1.0)?,
            "beta1" => s.beta1 = values::real_in(v, "beta1", 0.0, 1.0)?,
            "beta2" => s.beta2 = values::real_in(v, "beta2", 0.0, 1.0)?,
            "epsilon" => s.epsilon = positive(v, "epsilon")?,
            "schedule" => {
                s.schedule = word(v, "schedule", &Schedule::ALL.map(Schedule::name))
                    .map(|i| Schedule::ALL[i])?
            }
            "lr_every" => s.lr_every = values::int(v, &env, "lr_every")?.value,
            "lr_factor" => s.lr_factor = positive(v, "lr_factor")?,
            "lr_min" => s.lr_min = values::real_in(v, "lr_min", 0.0, 1e6)?,
            "warmup" => s.warmup = count_or_zero(v, "the warm-up steps")?,
            "smoothing" => s.smoothing = values::real_in(v, "the label smoothing", 0.0, 1.0)?,
            "init" => s.init = word(v, "init", &Init::ALL.map(Init::name)).map(|i| Init::ALL[i])?,
            _ => unreachable!("every key of TRAIN_KEYS is read"),
        }
        Ok(())
    }

    /// The checks between settings, once every `train` line is read.
    pub fn finish(self) -> Result<(Settings, Option<bool>)> {
        let s = &self.settings;
        if s.schedule == Schedule::Step && s.lr_every == 0 {
            return Err(Diagnostic::new(
                self.spans["schedule"],
                "the step schedule needs its interval",
            )
            .label("lr_every is not given")
            .help(format!(
                "add lr_every=N: the learning rate is multiplied by lr_factor ({}) every N steps",
                s.lr_factor
            )));
        }
        if s.lr_min > s.learning_rate {
            return Err(
                Diagnostic::new(self.spans["lr_min"], "lr_min is above the learning rate")
                    .label(format!("{} > lr {}", s.lr_min, s.learning_rate))
                    .help("the cosine schedule falls from lr to lr_min; give an lr_min below lr"),
            );
        }
        Ok((self.settings, self.augment))
    }
}

/// One of `names`, as its index.
fn word(v: &Value, key: &str, names: &[&str]) -> Result<usize> {
    let found = match &v.kind {
        ValueKind::Ident(name) => names.iter().position(|n| n == name),
        _ => None,
    };
    found.ok_or_else(|| {
        let label = match &v.kind {
            ValueKind::Ident(name) => format!("`{name}` is not one of them"),
            _ => format!("found {}", values::describe(v)),
        };
        let mut d =
            Diagnostic::new(v.span, format!("{key} is one of {}", names.join(", "))).label(label);
        let near = match &v.kind {
            ValueKind::Ident(name) => values::closest(name, names.iter().copied()),
            _ => None,
        };
        d = match near {
            Some(near) => d.help(format!("did you mean `{key}={near}`?")),
            None => d.help(format!(
                "write one of {}",
                names
                    .iter()
                    .map(|n| format!("`{key}={n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        d
    })
}

/// A number above 0.
fn positive(v: &Value, what: &str) -> Result<f64> {
    let x = values::real(v, what)?;
    if x > 0.0 {
        return Ok(x);
    }
    Err(Diagnostic::new(v.span, format!("{what} must be above 0"))
        .label(format!("{x} is not above 0"))
        .help(format!("write {what} as a positive number such as 0.1")))
}

/// A whole number, 0 allowed (0 turns the setting off).
fn count_or_zero(v: &Value, what: &str) -> Result<u64> {
    match &v.kind {
        ValueKind::Number(t) if t == "0" => Ok(0),
        _ => Ok(values::int(v, &Env::new(), what)?.value),
    }
}
