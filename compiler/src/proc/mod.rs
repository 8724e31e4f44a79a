//! Passes shared by every back end, after shape inference (naga's `proc`):
//! the layout of the generated code, the names each target gives it, and its
//! numbers call by call.

pub mod expr;
pub mod fuse;
pub mod graph;
pub mod layout;
pub mod namer;
pub mod sizes;
