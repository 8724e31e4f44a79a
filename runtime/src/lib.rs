//! The runtime every netc-generated program links: CIFAR-10 data, the seed's
//! augmentation, training with weight decay and weight averaging,
//! checkpoints, evaluation and inference.
//!
//! A generated model implements [`Net`]; its `main` hands a [`Spec`] and the
//! model type to [`cli::run`].

pub mod augment;
pub mod batches;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod ema;
pub mod eval;
pub mod infer;
pub mod kernels;
pub mod masks;
pub mod memory;
pub mod nn;
pub mod optim;
pub mod params;
pub mod quant;
pub mod run;
pub mod sparse;
pub mod spec;
pub mod statistics;
pub mod train;

pub use burn;
pub use kernels::Kernels;
pub use optim::{Optimizer, Recipe, Schedule};
pub use spec::{Net, Settings, Spec};

/// Errors a user can act on: what went wrong, naming the file when there is one.
pub type Error = String;
pub type Result<T> = std::result::Result<T, Error>;
