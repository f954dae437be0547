//! The implementation under test, one driver per layer: how pods get their interface (pod
//! attach), how pods of different nodes reach each other (node network), how Services are
//! programmed ([`crate::proxy::driver::ServiceProxy`]) and who answers cluster DNS.
//!
//! Each layer is a trait with a builtin driver (the reference: what a kubeadm cluster with
//! flannel and kube-proxy lays out), an `exec` driver (a command of the user's, run inside the
//! sandbox) and `none`. A driver declares what the rest of podpath needs to know of it (the
//! interfaces it makes, whether it masquerades, its encapsulation, its rule tables), so the
//! observers and snapshots never hard-code one implementation's facts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::netlink::{Netlink, NetlinkError};
use crate::netns::Netns;
use crate::tool::ToolError;
use crate::topology::{Node, Pod, Topology};

pub mod attach;
pub mod calico;
pub mod cni;
pub mod daemon;
pub mod dns_exec;
pub mod exec;
pub mod network;

pub use attach::{Attachment, BridgeAttach, Detach, ExecAttach, NoAttach, PodAttach};
pub use cni::{CniAttach, ConfList};
pub use dns_exec::ExecDns;
pub use network::{ExecNetwork, FlannelNetwork, NoNetwork, NodeNetwork};

/// What a driver failed at.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("namespace {netns}: {source}")]
    Netlink { netns: String, source: NetlinkError },
    #[error("namespace {netns}: {what} names unknown device {dev}")]
    UnknownDevice {
        netns: String,
        what: String,
        dev: String,
    },
    #[error("node {node}: {what}: {source}")]
    Tool {
        node: String,
        what: String,
        source: ToolError,
    },
    /// A user's command did not do its job: it failed, hung or said something unusable.
    #[error("{layer} `{program}` for {subject}: {problem}")]
    Exec {
        layer: &'static str,
        program: String,
        subject: String,
        problem: String,
    },
}

/// How a cluster's layers are built: one driver each.
pub struct Drivers {
    pub attach: Box<dyn PodAttach>,
    pub network: Box<dyn NodeNetwork>,
    /// Whether the builtin cluster DNS responder answers in the DNS pod.
    pub dns: DnsDriver,
}

impl Drivers {
    /// The builtin stack: the bridge attach, flannel as the topology lays it out, the builtin
    /// DNS responder.
    pub fn builtin() -> Drivers {
        Drivers {
            attach: Box::new(BridgeAttach),
            network: Box::new(FlannelNetwork),
            dns: DnsDriver::Builtin,
        }
    }
}

/// The cluster DNS layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsDriver {
    /// The CoreDNS-like responder serving the plan's records.
    Builtin,
    /// A DNS server command of the user's in the DNS pod ([`dns_exec`]).
    Exec(ExecDns),
    /// Nothing answers on the DNS pod's port 53.
    None,
}

/// An encapsulation a node network puts on the wire between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    Vxlan { vni: u32, port: u16 },
}

/// A rule table a layer programs, and how a snapshot dumps it. Every snapshot shows the node's
/// whole `iptables-save`; nftables tables are dumped by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTable {
    /// The iptables tables (`iptables-save`), legacy or nft-compat.
    IptablesSave,
    /// One nftables table, `nft list table FAMILY NAME`, under the heading `# HEADING`.
    Nft {
        family: String,
        name: String,
        heading: String,
    },
}

/// A command of the user's: its argv (placeholders already known to the driver), the
/// directory it runs in, and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// The directory relative program paths are taken from (the stack file's).
    pub dir: PathBuf,
    pub timeout: Duration,
    /// Extra environment from the stack file.
    pub env: BTreeMap<String, String>,
}

/// One node while it is built: its plan, its namespace and a netlink socket inside it.
pub struct NodeContext<'a> {
    pub topology: &'a Topology,
    pub node: &'a Node,
    pub netns: &'a Netns,
    pub netlink: &'a mut Netlink,
    /// What every namespace name of this cluster starts with.
    pub prefix: &'a str,
}

/// One pod while it is attached: its plan, its node's and its own namespace and sockets.
pub struct PodContext<'a> {
    pub topology: &'a Topology,
    pub pod: &'a Pod,
    pub node: &'a Node,
    pub node_netns: &'a Netns,
    pub node_netlink: &'a mut Netlink,
    pub pod_netns: &'a Netns,
    pub pod_netlink: &'a mut Netlink,
    pub prefix: &'a str,
}

pub(crate) fn nl_err(netns: &str) -> impl Fn(NetlinkError) -> DriverError + '_ {
    move |source| DriverError::Netlink {
        netns: netns.to_string(),
        source,
    }
}
