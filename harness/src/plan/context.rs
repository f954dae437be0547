//! What every section of the planner shares: the [`Planner`] that collects diagnostics, and
//! the drafts of the cluster, its nodes, pods and external host that later sections read.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::stack::Attachment;
use netns_runtime::topology::{HostPort, Listener, Mac};

use crate::diag::Diagnostics;

pub(super) type YamlLocation = serde_saphyr::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overlay {
    Vxlan,
    HostGw,
    None,
}

/// Cluster settings; `None` where the written value is invalid (already reported), so that
/// checks depending on it are skipped instead of piling up consequences of one mistake.
pub(super) struct ClusterParams {
    pub(super) pod_cidr: Option<Ipv4Net>,
    pub(super) service_cidr: Option<Ipv4Net>,
    pub(super) subnet_len: Option<u8>,
    pub(super) node_cidr: Option<Ipv4Net>,
    pub(super) overlay: Option<Overlay>,
    pub(super) mtu: Option<u32>,
    /// The proxy modes the case runs in; empty: no service proxy.
    pub(super) proxy_modes: Vec<ProxyMode>,
}

pub(super) struct NodeDraft {
    pub(super) name: Option<String>,
    pub(super) at: YamlLocation,
    pub(super) subnet: Option<Ipv4Net>,
    /// The written `podCIDR`, or the node entry when it was allocated.
    pub(super) subnet_at: YamlLocation,
    pub(super) subnet_fixed: bool,
    pub(super) address: Option<Ipv4Addr>,
    pub(super) address_at: YamlLocation,
    pub(super) address_fixed: bool,
}

#[derive(Clone)]
pub(super) struct PodDraft {
    pub(super) name: Option<String>,
    pub(super) at: YamlLocation,
    pub(super) namespace: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) ready: bool,
    /// Listener (container port) names, for Services' named `targetPort`.
    pub(super) port_names: Vec<(String, Listener)>,
    pub(super) node: Option<usize>,
    pub(super) fixed_ip: Option<Ipv4Addr>,
    /// The address the case itself fixes (`ip:`), kept apart from what binding fixes.
    pub(super) requested_ip: Option<Ipv4Addr>,
    /// The MAC the case fixes (`mac:`).
    pub(super) requested_mac: Option<Mac>,
    pub(super) ip: Option<Ipv4Addr>,
    pub(super) host_veth: String,
    pub(super) listeners: Vec<Listener>,
    /// Its listeners published on its node (`hostPort`), passed to CNI as `portMappings`.
    pub(super) host_ports: Vec<HostPort>,
    /// What the pod answers on, for validation: its listeners, and 53/udp and 53/tcp for the
    /// cluster DNS pod (whose DNS server the runtime runs).
    pub(super) serves: Vec<Listener>,
    /// `hostname` and `subdomain`, when valid.
    pub(super) hostname: Option<String>,
    pub(super) subdomain: Option<String>,
    /// What the stack's pod attach decided for this pod, when the plan is bound to it.
    pub(super) learned: Option<Attachment>,
}

/// The external host as declared.
pub(super) struct ExternalDraft {
    /// The underlay gateway; `None` when `nodeCIDR` is invalid (reported).
    pub(super) addr: Option<Ipv4Addr>,
    pub(super) listeners: Vec<Listener>,
}

pub(super) struct Planner {
    pub(super) found: Diagnostics,
    pub(super) file: PathBuf,
    /// What the implementation decided for each pod, by pod name: empty while planning what
    /// the case decides, filled when binding the plan to a built cluster.
    pub(super) learned: BTreeMap<String, Attachment>,
    /// What the stack's drivers declare the datapath does.
    pub(super) datapath: super::Datapath,
}

impl Planner {
    pub(super) fn new(file: &Path) -> Planner {
        Planner {
            found: Diagnostics::new(file),
            file: file.to_path_buf(),
            learned: BTreeMap::new(),
            datapath: super::Datapath::BUILTIN,
        }
    }

    pub(super) fn error(&mut self, at: YamlLocation, message: impl Into<String>) {
        self.found.error(at, message);
    }
}
