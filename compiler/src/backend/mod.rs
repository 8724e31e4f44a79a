//! Back ends: what netc produces from a typed graph.

pub mod burn;
pub mod summary;
