//! The service proxy: what kube-proxy knows on one node, and pure renderers that turn it into
//! the exact rules kube-proxy would program (iptables mode, nftables mode).
//!
//! Rendering is a function of data ([`ServiceTable`] -> rule text); applying the text
//! (`iptables-restore`, `nft -f`) is I/O and lives elsewhere.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::topology::Proto;

pub mod cleanup;
pub mod driver;
pub mod exec;
pub mod iptables;
pub mod nftables;
pub mod normalise;
pub mod restore;

/// Everything kube-proxy on one node knows: the node, the cluster, and every Service port with
/// its endpoints (as EndpointSlices give them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTable {
    /// The node this table is for.
    pub node_name: String,
    /// The node's own addresses (for NodePorts and `--dst-type LOCAL`).
    pub node_ips: Vec<Ipv4Addr>,
    /// kube-proxy's `--cluster-cidr`: traffic to a Service from outside it is masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// The Service CIDR (nftables mode rejects unknown ports on it).
    pub service_cidr: Ipv4Net,
    /// Every Service port, in the order the case declared them.
    pub services: Vec<ServicePort>,
}

/// One port of one Service: kube-proxy's unit (`ServicePortName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name; empty for an unnamed single port.
    pub port_name: String,
    pub protocol: Proto,
    /// `None` for headless Services (they get no rules).
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    pub external_traffic_policy: TrafficPolicy,
    pub internal_traffic_policy: TrafficPolicy,
    /// Endpoints from the EndpointSlices, ready or not.
    pub endpoints: Vec<Endpoint>,
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The node the endpoint runs on (`nodeName`), for `Local` policies.
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl ServicePort {
    /// kube-proxy's `ServicePortName` string: `namespace/name:portname`, or `namespace/name`
    /// for an unnamed port (kube-proxy adds the colon only before a non-empty port name; this
    /// string is hashed into the iptables chain names and written into rule comments).
    pub fn port_name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// Whether an endpoint is local to `node`.
    pub fn is_local(&self, ep: &Endpoint, node: &str) -> bool {
        ep.node_name.as_deref() == Some(node)
    }
}
