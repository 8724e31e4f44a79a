//! Back ends: what netc produces from a typed graph.

pub mod burn;
pub mod forward;
pub mod graph;
pub mod pytorch;
pub mod summary;
