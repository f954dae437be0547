//! The `nodes:` section: names, pod subnets and underlay addresses.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netns_runtime::topology::{EXTERNAL_HOST, UNDERLAY_NETNS};
use serde_saphyr::Spanned;

use super::context::{ClusterParams, NodeDraft, Planner, YamlLocation};
use super::parse::{at_text, dns_label_problem, node_label, quoted};
use super::topology::underlay_gateway;
use crate::case::{Case, NodeEntry};

/// Longest node name: it also names the node's port on the underlay bridge (IFNAMSIZ - 1).
pub const MAX_NODE_NAME: usize = 15;

impl Planner {
    pub(super) fn nodes(
        &mut self,
        case: &Case,
        cluster: &ClusterParams,
        root: YamlLocation,
    ) -> Vec<NodeDraft> {
        let entries = match &case.nodes {
            None => {
                self.error(root, "`nodes` is missing: a case needs at least one node");
                return Vec::new();
            }
            Some(entries) if entries.value.is_empty() => {
                self.error(
                    entries.referenced,
                    "`nodes` is empty: a case needs at least one node",
                );
                return Vec::new();
            }
            Some(entries) => &entries.value,
        };

        let mut drafts = Vec::with_capacity(entries.len());
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            // Node i (1-based) takes the i-th subnet and host i+1 of the underlay.
            let ordinal = index as u64 + 1;
            let spec = NodeEntry::spec(entry);
            let name = match &spec.name {
                None => {
                    self.error(entry.referenced, "node has no `name`");
                    None
                }
                Some(name) => {
                    self.node_name(name, &mut names);
                    Some(name.value.clone())
                }
            };
            let label = name.clone().unwrap_or_else(|| format!("node {ordinal}"));

            let (subnet, subnet_at, subnet_fixed) = match &spec.pod_cidr {
                Some(v) => (self.node_subnet(v, cluster), v.referenced, true),
                None => (
                    self.nth_subnet(ordinal, &label, cluster, entry.referenced),
                    entry.referenced,
                    false,
                ),
            };
            let (address, address_at, address_fixed) = match &spec.address {
                Some(v) => (self.node_address(v, cluster), v.referenced, true),
                None => (
                    self.nth_address(ordinal, &label, cluster, entry.referenced),
                    entry.referenced,
                    false,
                ),
            };
            drafts.push(NodeDraft {
                name,
                at: entry.referenced,
                subnet,
                subnet_at,
                subnet_fixed,
                address,
                address_at,
                address_fixed,
            });
        }

        self.node_collisions(&drafts);
        drafts
    }

    fn node_name(&mut self, name: &Spanned<String>, seen: &mut HashMap<String, YamlLocation>) {
        let text = &name.value;
        if let Some(problem) = dns_label_problem(text, MAX_NODE_NAME) {
            self.name_error(
                name,
                MAX_NODE_NAME,
                format!("node name {} {problem} (a node name also names its port on the underlay bridge)", quoted(text)),
            );
        } else if text == UNDERLAY_NETNS {
            self.error(
                name.referenced,
                format!(
                    "node name {} is reserved for the underlay network namespace",
                    quoted(text)
                ),
            );
        } else if text == EXTERNAL_HOST {
            self.error(
                name.referenced,
                format!(
                    "node name {} is reserved for the external host (`external:`), whether the case declares it or not",
                    quoted(text)
                ),
            );
        }
        if let Some(first) = seen.get(text) {
            self.error(
                name.referenced,
                format!(
                    "duplicate node name {}, first declared at {}",
                    quoted(text),
                    at_text(*first)
                ),
            );
        } else {
            seen.insert(text.clone(), name.referenced);
        }
    }

    fn node_subnet(&mut self, value: &Spanned<String>, cluster: &ClusterParams) -> Option<Ipv4Net> {
        let subnet = self.cidr("node podCIDR", value)?;
        if let Some(pods) = cluster.pod_cidr
            && !(pods.contains(&subnet.network()) && subnet.prefix_len() >= pods.prefix_len())
        {
            self.error(
                value.referenced,
                format!("node podCIDR {subnet} is outside the cluster podCIDR {pods}"),
            );
            return None;
        }
        if let Some(len) = cluster.subnet_len
            && subnet.prefix_len() != len
        {
            self.error(
                value.referenced,
                format!(
                    "node podCIDR {subnet} is a /{}, but subnetLen is {len}",
                    subnet.prefix_len()
                ),
            );
            return None;
        }
        Some(subnet)
    }

    fn nth_subnet(
        &mut self,
        ordinal: u64,
        label: &str,
        cluster: &ClusterParams,
        at: YamlLocation,
    ) -> Option<Ipv4Net> {
        let (pods, len) = (cluster.pod_cidr?, cluster.subnet_len?);
        let count = 1u64 << (len - pods.prefix_len());
        let size = 1u64 << (32 - len);
        if ordinal >= count {
            self.error(
                at,
                format!(
                    "podCIDR {pods} has no /{len} subnet left for {label}: it holds {count}, the first is never allocated, and node i takes the i-th; give the node a podCIDR or widen the cluster podCIDR"
                ),
            );
            return None;
        }
        let network = u64::from(u32::from(pods.network())) + ordinal * size;
        let network = Ipv4Addr::from(u32::try_from(network).ok()?);
        Ipv4Net::new(network, len).ok()
    }

    fn node_address(
        &mut self,
        value: &Spanned<String>,
        cluster: &ClusterParams,
    ) -> Option<Ipv4Addr> {
        let addr = self.address("node address", value)?;
        let nodes = cluster.node_cidr?;
        let problem = if !nodes.contains(&addr) {
            "is outside"
        } else if addr == nodes.network() {
            "is the network address of"
        } else if addr == nodes.broadcast() {
            "is the broadcast address of"
        } else if addr == underlay_gateway(nodes) {
            "is the underlay gateway (the nodes' default route) of"
        } else {
            return Some(addr);
        };
        self.error(
            value.referenced,
            format!("node address {addr} {problem} nodeCIDR {nodes}"),
        );
        None
    }

    fn nth_address(
        &mut self,
        ordinal: u64,
        label: &str,
        cluster: &ClusterParams,
        at: YamlLocation,
    ) -> Option<Ipv4Addr> {
        let nodes = cluster.node_cidr?;
        let addr = u64::from(u32::from(nodes.network())) + ordinal + 1;
        if addr >= u64::from(u32::from(nodes.broadcast())) {
            self.error(
                at,
                format!("nodeCIDR {nodes} has no address left for {label} (node i gets host i+1); give the node an address or widen nodeCIDR"),
            );
            return None;
        }
        Some(Ipv4Addr::from(u32::try_from(addr).ok()?))
    }

    /// Two nodes with one subnet or one address. Reported at the value that was written when
    /// only one of the two was, since that is the one to change; otherwise at the later node.
    fn node_collisions(&mut self, drafts: &[NodeDraft]) {
        let mut subnets: HashMap<Ipv4Net, usize> = HashMap::new();
        let mut addresses: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (index, node) in drafts.iter().enumerate() {
            if let Some(subnet) = node.subnet {
                // All subnets have subnetLen's prefix by now, so overlapping means equal.
                match subnets.get(&subnet) {
                    Some(&first) => {
                        let earlier = &drafts[first];
                        let (at, other) = if earlier.subnet_fixed && !node.subnet_fixed {
                            (earlier.subnet_at, node)
                        } else {
                            (node.subnet_at, earlier)
                        };
                        self.error(
                            at,
                            format!(
                                "pod subnet {subnet} is also {}'s (node i gets the i-th subnet of podCIDR unless it sets podCIDR)",
                                node_label(other)
                            ),
                        );
                    }
                    None => {
                        subnets.insert(subnet, index);
                    }
                }
            }
            if let Some(address) = node.address {
                match addresses.get(&address) {
                    Some(&first) => {
                        let earlier = &drafts[first];
                        let (at, other) = if earlier.address_fixed && !node.address_fixed {
                            (earlier.address_at, node)
                        } else {
                            (node.address_at, earlier)
                        };
                        self.error(
                            at,
                            format!(
                                "duplicate node address {address}: {} has it too (node i gets host i+1 of nodeCIDR unless it sets address)",
                                node_label(other)
                            ),
                        );
                    }
                    None => {
                        addresses.insert(address, index);
                    }
                }
            }
        }
    }
}
