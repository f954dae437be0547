//! The podpath conformance suite: the case files in this directory and their snapshots in
//! `snapshots/`.
