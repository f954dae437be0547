//! The resolved topology: pure data describing every kernel object a cluster is made of.
//!
//! A [`Topology`] is computed without privileges (by the harness's planner) and turned into
//! kernel objects by [`crate::cluster::Cluster::build`]. Every address, MAC, route, neighbour and
//! FDB entry is decided here, so two builds of the same topology are identical and the plan can
//! be printed, diffed and snapshotted before anything is built.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Name of the network namespace that holds the underlay L2 segment.
pub const UNDERLAY_NETNS: &str = "underlay";
/// Name of the bridge inside [`UNDERLAY_NETNS`] that every node's `eth0` is attached to.
pub const UNDERLAY_BRIDGE: &str = "br0";

/// A whole cluster network: one underlay segment, its nodes and their pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub underlay: Underlay,
    /// The cluster's pod network (`podCIDR`), every node's subnet inside it.
    pub cluster_cidr: Ipv4Net,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    /// A host on the underlay outside the cluster, at the nodes' default gateway: the client
    /// of NodePorts from outside and the server pods reach when they leave the cluster.
    pub external: Option<External>,
    /// The cluster DNS server, when the case has one: which pod runs it and what it serves.
    pub dns: Option<ClusterDnsServer>,
}

/// The builtin cluster DNS (CoreDNS-like): a responder on UDP and TCP port 53 in one pod (the
/// `coredns` pod behind the `kube-dns` Service), serving the records of the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDnsServer {
    /// The pod the responder runs in (its netns); that pod runs no echo server on port 53.
    pub pod: String,
    /// What it serves.
    pub records: crate::dns::ClusterDns,
}

/// Name of the external host's network namespace, and how cases refer to it.
pub const EXTERNAL_HOST: &str = "external";

/// A host outside the cluster, on the underlay segment. It does not forward: it is the end of
/// the line for anything sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// Always [`EXTERNAL_HOST`]; also the name of its network namespace.
    pub name: String,
    /// Its interface on the underlay.
    pub eth0: Iface,
    /// Name of the other end of `eth0`'s veth pair, a port of the underlay bridge.
    pub underlay_port: String,
    /// Echo servers it runs.
    pub listeners: Vec<Listener>,
}

/// The L2 segment joining every node's `eth0` (a bridge in its own namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub netns: String,
    pub bridge: String,
    pub cidr: Ipv4Net,
    pub mtu: u32,
}

/// A Kubernetes node: a network namespace with forwarding on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node name; also the name of its network namespace.
    pub name: String,
    /// The node's underlay interface (`eth0`), one end of a veth pair.
    pub eth0: Iface,
    /// Name of the other end of `eth0`'s veth pair, a port of the underlay bridge.
    pub underlay_port: String,
    /// The pod subnet this node allocates from (flannel's per-node lease).
    pub pod_cidr: Ipv4Net,
    /// The `cni0` bridge holding the gateway address of [`Node::pod_cidr`]: what the builtin
    /// pod attach makes on the node.
    pub bridge: Iface,
    /// What the builtin node network (flannel) programs on the node; the stack's node network
    /// decides whether it is used.
    pub network: NetworkLayout,
    /// Routes podpath itself adds in the node's main table, besides the connected ones and the
    /// node network's: the default route via the underlay gateway, as a real node has.
    pub routes: Vec<Route>,
    /// Sysctls written inside the node, as (`net/ipv4/ip_forward`, `1`).
    pub sysctls: Vec<(String, String)>,
}

/// flannel's objects on one node, as the builtin node network programs them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkLayout {
    /// The flannel VXLAN device, when the overlay is `vxlan`.
    pub vxlan: Option<Vxlan>,
    /// Routes to the peers' pod subnets.
    pub routes: Vec<Route>,
    /// Permanent neighbour entries (flannel: peer subnet `.0` -> peer VTEP MAC).
    pub neighbours: Vec<Neighbour>,
    /// Permanent FDB entries on overlay devices (flannel: peer VTEP MAC -> peer node address).
    pub fdb: Vec<FdbEntry>,
    /// flannel's `--ip-masq`: masquerade pod traffic leaving the cluster network (`Some(cluster
    /// pod CIDR)`), as flanneld's FLANNEL-POSTRTG and FLANNEL-FWD chains do.
    pub masquerade: Option<Ipv4Net>,
}

/// A pod: a network namespace whose `eth0` is one end of a veth pair into its node's `cni0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Pod name; also the name of its network namespace.
    pub name: String,
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// Index into [`Topology::nodes`].
    pub node: usize,
    /// The pod's `eth0`.
    pub eth0: Iface,
    /// Name of the node-side end of the veth pair, a port of `cni0` with hairpin mode on.
    pub host_veth: String,
    /// The address the case fixes for the pod (`ip:`), which any pod attach must give it (as a
    /// runtime asks a CNI plugin with the `ips` capability); `None`: the attach chooses.
    pub requested_ip: Option<Ipv4Addr>,
    /// The MAC the case fixes for the pod's `eth0` (`mac:`), which a CNI runtime passes to
    /// plugins with the `mac` capability; `None`: the attach chooses.
    pub requested_mac: Option<Mac>,
    /// Routes inside the pod (the default route via the node's `cni0` address).
    pub routes: Vec<Route>,
    /// Echo servers the pod runs.
    pub listeners: Vec<Listener>,
    /// The node ports a container port of the pod is published on (`hostPort`), which a
    /// runtime passes to CNI plugins as `runtimeConfig.portMappings`.
    pub host_ports: Vec<HostPort>,
    /// The pod's `/etc/resolv.conf` as the kubelet writes it (`None`: the cluster has no DNS,
    /// the pod sees the host's).
    pub resolv_conf: Option<String>,
    /// The pod's `/etc/hosts` as the kubelet writes it.
    pub hosts: Option<String>,
}

/// An interface with its one IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: Mac,
    /// Address with its prefix length, as assigned to the interface.
    pub addr: Ipv4Net,
    pub mtu: u32,
}

/// A flannel-style VXLAN device (`flannel.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    pub name: String,
    pub vni: u32,
    /// UDP destination port (flannel: 8472).
    pub port: u16,
    pub mac: Mac,
    /// The node subnet's `.0` as a /32.
    pub addr: Ipv4Net,
    pub mtu: u32,
    /// Local VTEP address: the node's underlay address.
    pub local: Ipv4Addr,
    /// Name of the underlay device the VTEP is bound to.
    pub underlay_dev: String,
    /// flannel turns learning off: peers are programmed explicitly.
    pub learning: bool,
}

/// A route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Option<Ipv4Addr>,
    pub dev: String,
    pub onlink: bool,
}

/// A permanent neighbour (ARP) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub dev: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// A permanent forwarding-database entry on a VXLAN device (`bridge fdb append ... dst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub dev: String,
    pub mac: Mac,
    pub dst: Ipv4Addr,
}

/// A transport protocol an echo server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A pod's container port published on its node (`hostPort`), as CNI's `portMappings` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// A builtin echo server: answers every connection or datagram with who it is and who it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A locally administered unicast MAC: two prefix bytes followed by an IPv4 address, the
    /// way the CNI bridge plugin (`0a:58:<ip>`) and Docker (`02:42:<ip>`) derive theirs.
    pub fn from_ip(prefix: [u8; 2], ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([prefix[0], prefix[1], o[0], o[1], o[2], o[3]])
    }
}

impl Mac {
    /// `aa:bb:cc:dd:ee:ff`, six pairs of hex digits, nothing else.
    pub fn parse(text: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut out {
            let part = parts.next()?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// Whether it is a group (multicast or broadcast) address, which no interface can have.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Topology {
    /// The node a pod runs on.
    pub fn node_of(&self, pod: &Pod) -> &Node {
        &self.nodes[pod.node]
    }

    /// Finds a pod by name.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.name == name)
    }

    /// Finds a node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The pod, node or external host owning an address, by name.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<&str> {
        if let Some(p) = self.pods.iter().find(|p| p.eth0.addr.addr() == ip) {
            return Some(&p.name);
        }
        if let Some(e) = self.external.as_ref().filter(|e| e.eth0.addr.addr() == ip) {
            return Some(&e.name);
        }
        self.nodes
            .iter()
            .find(|n| {
                n.eth0.addr.addr() == ip
                    || n.bridge.addr.addr() == ip
                    || n.network
                        .vxlan
                        .as_ref()
                        .is_some_and(|v| v.addr.addr() == ip)
            })
            .map(|n| n.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_from_ip_is_cni_style() {
        let mac = Mac::from_ip([0x0a, 0x58], Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(mac.to_string(), "0a:58:0a:f4:01:02");
    }
}
