//! Back ends: what netc produces from a typed graph.

pub mod summary;
