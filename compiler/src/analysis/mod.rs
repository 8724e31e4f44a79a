//! Analyses of the typed graph.

pub mod counts;
