//! Back ends: what netc produces from a typed graph.

pub mod burn;
pub mod graph;
pub mod summary;
