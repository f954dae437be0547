//! Tests of whole plans, grouped by what they check: allocation, topology (interfaces and
//! overlays), flows, the external host, validation, files and rendering.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use netns_runtime::topology::{
    External, FdbEntry, Iface, Listener, Mac, Neighbour, Proto, Route, Underlay, Vxlan,
};
use rstest::rstest;

use super::parse::parse_timeout;
use super::testing::{
    assert_edits_stay_located, assert_one_error, assert_one_saying, diagnostics, ip, locations,
    plan,
};
use super::topology::{fnv1a32, host_veth_name};
use crate::diag::{CaseError, Diagnostic, Location};
use crate::plan::{
    Expect, FailKind, FlowPlan, FlowService, Plan, SeenSource, ServiceVia, Target, discover, load,
    load_str,
};

const FILE: &str = "cases/t.yaml";

fn cidr(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn pod_ips(plan: &Plan) -> Vec<(String, Ipv4Net)> {
    plan.topology
        .pods
        .iter()
        .map(|p| (p.name.clone(), p.eth0.addr))
        .collect()
}

fn named(pairs: &[(&str, &str)]) -> Vec<(String, Ipv4Net)> {
    pairs
        .iter()
        .map(|(name, net)| (name.to_string(), cidr(net)))
        .collect()
}

mod allocation;
mod binding;
mod display;
mod external;
mod files;
mod flows;
mod topology;
mod validation;
