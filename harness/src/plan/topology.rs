//! Building the [`Topology`] from validated drafts, and the facts of how the cluster is wired
//! (flannel's VXLAN device, the CNI bridge, interface names and MAC prefixes) that the
//! sections check against.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netns_runtime::topology::{
    ClusterDnsServer, EXTERNAL_HOST, External, FdbEntry, Iface, Mac, Neighbour, NetworkLayout,
    Node, Pod, Route, Topology, UNDERLAY_BRIDGE, UNDERLAY_NETNS, Underlay, Vxlan,
};

use super::context::{ClusterParams, ExternalDraft, NodeDraft, Overlay, PodDraft};
use super::dns::{self, DNS_POD, hosts_file, resolv_conf};

/// What flannel's VXLAN encapsulation costs (outer IPv4, UDP, VXLAN and Ethernet headers).
pub const VXLAN_OVERHEAD: u32 = 50;

/// Name of a node's and a pod's primary interface.
pub const ETH0: &str = "eth0";
/// Name of the bridge pods attach to in every node.
pub const POD_BRIDGE: &str = "cni0";
/// Name of flannel's VXLAN device.
pub const VXLAN_DEV: &str = "flannel.1";
/// flannel's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// flannel's VXLAN UDP port (the Linux default, not IANA's 4789).
pub const VXLAN_PORT: u16 = 8472;

/// MAC prefixes: Docker's for node interfaces (and the external host's, kind's docker host),
/// the CNI bridge plugin's for pods and gateways, and a locally administered one for VTEPs.
const NODE_MAC: [u8; 2] = [0x02, 0x42];
const POD_MAC: [u8; 2] = [0x0a, 0x58];
const VTEP_MAC: [u8; 2] = [0x0e, 0x2a];

/// The underlay's gateway, the first host of nodeCIDR (kind's docker network gateway): every
/// node's default route points at it.
pub fn underlay_gateway(node_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(node_cidr.network()).saturating_add(1))
}

/// The first host of a subnet: the node's `cni0` address, the pods' gateway.
pub(super) fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// FNV-1a, 32 bits: small, stable across releases and platforms (unlike `DefaultHasher`).
pub(super) fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `veth` and 8 hex digits of the hash of `namespace/name`; on a clash with a name already
/// taken in the node, of `namespace/name#1`, `#2`, and so on.
pub(super) fn host_veth_name(key: &str, taken: &HashSet<String>) -> String {
    let mut name = format!("veth{:08x}", fnv1a32(key.as_bytes()));
    let mut counter = 0u32;
    while taken.contains(&name) {
        counter += 1;
        name = format!("veth{:08x}", fnv1a32(format!("{key}#{counter}").as_bytes()));
    }
    name
}

/// What a node's kernel is set to: forwarding on; with a service proxy, bridged traffic through
/// netfilter too (`br_netfilter`, a kubeadm prerequisite), so the proxy's rules see traffic
/// between pods of one node.
fn node_sysctls(cluster: &ClusterParams) -> Vec<(String, String)> {
    let mut sysctls = vec![("net/ipv4/ip_forward".to_owned(), "1".to_owned())];
    if !cluster.proxy_modes.is_empty() {
        sysctls.push((
            "net/bridge/bridge-nf-call-iptables".to_owned(),
            "1".to_owned(),
        ));
    }
    sysctls
}

pub(super) fn build_topology(
    cluster: &ClusterParams,
    nodes: &[NodeDraft],
    pods: &[PodDraft],
    external: Option<&ExternalDraft>,
    dns: Option<&dns::DnsDraft>,
) -> Option<Topology> {
    let node_cidr = cluster.node_cidr?;
    let subnet_len = cluster.subnet_len?;
    let overlay = cluster.overlay?;
    let mtu = cluster.mtu?;
    let pod_mtu = match overlay {
        Overlay::Vxlan => mtu - VXLAN_OVERHEAD,
        Overlay::HostGw | Overlay::None => mtu,
    };

    // (name, subnet, address) of every node, all known after validation.
    let resolved: Vec<(String, Ipv4Net, Ipv4Addr)> = nodes
        .iter()
        .map(|n| Some((n.name.clone()?, n.subnet?, n.address?)))
        .collect::<Option<_>>()?;

    let mut topo_nodes = Vec::with_capacity(resolved.len());
    for (index, (name, subnet, address)) in resolved.iter().enumerate() {
        let gw = gateway(*subnet);
        let peers = resolved
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, peer)| peer);
        let mut routes = Vec::new();
        let mut neighbours = Vec::new();
        let mut fdb = Vec::new();
        let vxlan = match overlay {
            Overlay::Vxlan => {
                for (_, peer_subnet, peer_address) in peers {
                    let peer_vtep = Mac::from_ip(VTEP_MAC, *peer_address);
                    neighbours.push(Neighbour {
                        dev: VXLAN_DEV.to_owned(),
                        ip: peer_subnet.network(),
                        mac: peer_vtep,
                    });
                    fdb.push(FdbEntry {
                        dev: VXLAN_DEV.to_owned(),
                        mac: peer_vtep,
                        dst: *peer_address,
                    });
                    routes.push(Route {
                        dst: *peer_subnet,
                        via: Some(peer_subnet.network()),
                        dev: VXLAN_DEV.to_owned(),
                        onlink: true,
                    });
                }
                Some(Vxlan {
                    name: VXLAN_DEV.to_owned(),
                    vni: VXLAN_VNI,
                    port: VXLAN_PORT,
                    mac: Mac::from_ip(VTEP_MAC, *address),
                    addr: Ipv4Net::new(subnet.network(), 32).ok()?,
                    mtu: mtu - VXLAN_OVERHEAD,
                    local: *address,
                    underlay_dev: ETH0.to_owned(),
                    learning: false,
                })
            }
            Overlay::HostGw => {
                for (_, peer_subnet, peer_address) in peers {
                    routes.push(Route {
                        dst: *peer_subnet,
                        via: Some(*peer_address),
                        dev: ETH0.to_owned(),
                        onlink: false,
                    });
                }
                None
            }
            Overlay::None => None,
        };
        // Every node has a default route, as a real one does: pod traffic nothing else claims
        // (a Service port no rule matches, a peer subnet without an overlay) leaves by it.
        let default_route = Route {
            dst: Ipv4Net::default(),
            via: Some(underlay_gateway(node_cidr)),
            dev: ETH0.to_owned(),
            onlink: false,
        };
        topo_nodes.push(Node {
            name: name.clone(),
            eth0: Iface {
                name: ETH0.to_owned(),
                mac: Mac::from_ip(NODE_MAC, *address),
                addr: Ipv4Net::new(*address, node_cidr.prefix_len()).ok()?,
                mtu,
            },
            underlay_port: name.clone(),
            pod_cidr: *subnet,
            bridge: Iface {
                name: POD_BRIDGE.to_owned(),
                mac: Mac::from_ip(POD_MAC, gw),
                addr: Ipv4Net::new(gw, subnet.prefix_len()).ok()?,
                mtu: pod_mtu,
            },
            network: NetworkLayout {
                vxlan,
                routes,
                neighbours,
                fdb,
                // flannel's backends run with --ip-masq (its default manifest); no overlay, no
                // flannel.
                masquerade: match overlay {
                    Overlay::Vxlan | Overlay::HostGw => Some(cluster.pod_cidr?),
                    Overlay::None => None,
                },
            },
            routes: vec![default_route],
            sysctls: node_sysctls(cluster),
        });
    }

    // With a cluster DNS, its records, every pod's nameserver and the cluster domain.
    let dns = match dns {
        Some(dns) => Some((
            dns,
            dns.records.clone()?,
            dns.nameserver?,
            dns.zone.clone()?,
        )),
        None => None,
    };
    let mut topo_pods = Vec::with_capacity(pods.len());
    for (index, pod) in pods.iter().enumerate() {
        let node = pod.node?;
        let ip = pod.ip?;
        let name = pod.name.clone()?;
        let (_, subnet, _) = resolved.get(node)?;
        // The kubelet writes both files; the DNS pod itself has `dnsPolicy: Default` (kubeadm's
        // CoreDNS manifest): the node's resolv.conf, which podpath leaves alone.
        let (resolv_conf, hosts) = match &dns {
            Some((draft, _, nameserver, zone)) => (
                (draft.pod != Some(index)).then(|| resolv_conf(*nameserver, &pod.namespace, zone)),
                Some(hosts_file(
                    ip,
                    &name,
                    pod.hostname.as_deref(),
                    pod.subdomain.as_deref(),
                    &pod.namespace,
                    zone,
                )),
            ),
            None => (None, None),
        };
        // Bound to a built cluster: the pod's interface as its attach made it.
        let learned = pod.learned.as_ref();
        let eth0 = match learned {
            Some(a) => Iface {
                name: a.iface.clone(),
                mac: a
                    .mac
                    .or(pod.requested_mac)
                    .unwrap_or_else(|| Mac::from_ip(POD_MAC, ip)),
                addr: a.addr,
                mtu: pod_mtu,
            },
            None => Iface {
                name: ETH0.to_owned(),
                mac: pod
                    .requested_mac
                    .unwrap_or_else(|| Mac::from_ip(POD_MAC, ip)),
                addr: Ipv4Net::new(ip, subnet_len).ok()?,
                mtu: pod_mtu,
            },
        };
        let via = match learned {
            Some(a) => a.gateway,
            None => Some(gateway(*subnet)),
        };
        topo_pods.push(Pod {
            name,
            namespace: pod.namespace.clone(),
            node,
            host_veth: pod.host_veth.clone(),
            requested_ip: pod.requested_ip,
            requested_mac: pod.requested_mac,
            routes: via
                .map(|via| Route {
                    dst: Ipv4Net::default(),
                    via: Some(via),
                    dev: eth0.name.clone(),
                    onlink: false,
                })
                .into_iter()
                .collect(),
            eth0,
            listeners: pod.listeners.clone(),
            host_ports: pod.host_ports.clone(),
            resolv_conf,
            hosts,
        });
    }

    Some(Topology {
        cluster_cidr: cluster.pod_cidr?,
        underlay: Underlay {
            netns: UNDERLAY_NETNS.to_owned(),
            bridge: UNDERLAY_BRIDGE.to_owned(),
            cidr: node_cidr,
            mtu,
        },
        nodes: topo_nodes,
        pods: topo_pods,
        external: match external {
            Some(e) => Some(external_host(e, node_cidr, mtu)?),
            None => None,
        },
        dns: dns.map(|(draft, records, _, _)| ClusterDnsServer {
            pod: draft
                .pod
                .and_then(|p| pods.get(p)?.name.clone())
                .unwrap_or_else(|| DNS_POD.to_owned()),
            records,
        }),
    })
}

/// The external host: on the underlay at its gateway (kind's docker host), with a
/// Docker-style MAC like the nodes'.
pub(super) fn external_host(
    draft: &ExternalDraft,
    node_cidr: Ipv4Net,
    mtu: u32,
) -> Option<External> {
    let addr = draft.addr?;
    Some(External {
        name: EXTERNAL_HOST.to_owned(),
        eth0: Iface {
            name: ETH0.to_owned(),
            mac: Mac::from_ip(NODE_MAC, addr),
            addr: Ipv4Net::new(addr, node_cidr.prefix_len()).ok()?,
            mtu,
        },
        underlay_port: EXTERNAL_HOST.to_owned(),
        listeners: draft.listeners.clone(),
    })
}
