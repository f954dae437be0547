//! podpath: the case format, the planner, the runner and the CLI over `netns-runtime`.

pub mod case;
pub mod diag;
pub mod hops;
pub mod implementations;
pub mod journey;
pub mod plan;
pub mod report;
pub mod suite;
pub mod verdict;
