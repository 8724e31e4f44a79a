//! Passes shared by every back end, after shape inference (naga's `proc`):
//! the layout of the generated code, and the names each target gives it.

pub mod expr;
pub mod layout;
pub mod namer;
