//! netns-runtime: builds, drives and observes a Kubernetes-style cluster network made of Linux
//! network namespaces, on the real kernel datapath.

pub mod netlink;
pub mod topology;
