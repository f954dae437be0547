//! podpath: the case format, the planner, the runner and the CLI over `netns-runtime`.

pub mod api_objects;
pub mod builtin_suite;
pub mod case;
pub mod cause;
pub mod compare;
pub mod diag;
pub mod hop_match;
pub mod implementations;
pub mod journey_render;
pub mod plan;
pub mod plan_json;
pub mod plan_warnings;
pub mod report;
pub mod run_output;
pub mod snapshot;
pub mod stack;
pub mod strict;
pub mod suite;
pub mod suite_root;
pub mod verdict;
