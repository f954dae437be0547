//! podpath: the case format, the planner, the runner and the CLI over `netns-runtime`.

pub mod case;
pub mod diag;
pub mod hop_match;
pub mod implementations;
pub mod journey_render;
pub mod plan;
pub mod plan_warnings;
pub mod report;
pub mod stack;
pub mod suite;
pub mod verdict;
