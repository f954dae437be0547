//! netns-runtime: builds, drives and observes a Kubernetes-style cluster network made of Linux
//! network namespaces, on the real kernel datapath.

pub mod apiserver;
pub mod capture;
pub mod change;
pub mod cluster;
pub mod dns;
pub mod echo;
pub mod flannel;
pub mod ipbatch;
pub mod netlink;
pub mod netns;
pub mod probe;
pub mod proxy;
pub mod resolver;
pub mod ruleset;
pub mod sandbox;
mod settle;
pub mod stack;
pub mod tool;
pub mod topology;
pub mod trace;

pub use cluster::{BuildError, Cluster, ClusterError};
pub use probe::{Outcome, ProbeTarget};
pub use sandbox::{Sandbox, SandboxError, SandboxMode};
