//! `expect.hops`, `expect.reply` and `expect.avoid`: the path a flow's packets must (or must
//! not) take, resolved against the plan. Matching them against what was observed is in
//! [`crate::hops`].

use std::fmt;
use std::net::Ipv4Addr;

use netns_runtime::proxy::driver::ProxyMode;

use crate::diag::Location;

/// The hop expectations of one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopsExpect {
    /// `expect.hops`: the forward path, an ordered subsequence of what was observed.
    pub forward: Vec<HopPlan>,
    /// `expect.reply`: the return path, an ordered subsequence of what was observed.
    pub reply: Vec<HopPlan>,
    /// `expect.avoid`: hops that must not be observed at all, in either direction.
    pub avoid: Vec<HopPlan>,
}

impl HopsExpect {
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty() && self.reply.is_empty() && self.avoid.is_empty()
    }
}

/// Which exchange of a flow a hop belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// The flow's own traffic (the connection, datagram or echo).
    Main,
    /// The resolution of the flow's name: the pod's query to the cluster DNS and its answer
    /// (hops listed under `dns:`).
    Dns,
}

/// One expected hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopPlan {
    pub kind: HopKind,
    pub conversation: Conversation,
    /// `proxy: iptables`: the hop only applies when the case runs in that proxy mode.
    pub proxy: Option<ProxyMode>,
    /// As the case writes it, for reports: `node1/cni0`, `node1 dnat pod-b:8080`.
    pub label: String,
    pub location: Location,
}

/// Packet direction at a capture point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Received by the interface.
    In,
    /// Sent by the interface.
    Out,
}

/// What a hop is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopKind {
    /// A packet of the flow seen on an interface: `pod-a/eth0`, `{ iface: node1/cni0, dir: in,
    /// src: pod-a, dst: svc/myapp:80 }`.
    Iface {
        /// The namespace as cases name it: a pod, a node, `underlay` or `external`.
        netns: String,
        iface: String,
        dir: Option<Dir>,
        src: Option<AddrMatch>,
        dst: Option<AddrMatch>,
    },
    /// `{ node: node1, dnat: pod-b:8080 }`: the node rewrote the destination to this.
    Dnat { node: String, to: AddrMatch },
    /// `{ node: node1, snat: node1 }`: the node rewrote the source to this.
    Snat { node: String, to: AddrMatch },
    /// `{ node: node1, undnat: svc/myapp:80 }` (in `reply`): the node restored the reply's
    /// source to this, undoing its DNAT.
    UnDnat { node: String, to: AddrMatch },
    /// `{ node: node1, unsnat: pod-a }` (in `reply`): the node restored the reply's destination
    /// to this, undoing its SNAT.
    UnSnat { node: String, to: AddrMatch },
    /// `{ node: node1, chain: KUBE-SVC-*, verdict: accept }`: a rule of this chain (a trailing
    /// `*` matches any suffix) was hit in the node, with this verdict when given.
    Rule {
        node: String,
        table: Option<String>,
        chain: String,
        verdict: Option<String>,
    },
    /// `{ iface: node1/eth0, vxlan: { vni: 1, port: 8472, outer: node1 -> node2 } }`: the flow's
    /// packet seen encapsulated in VXLAN (anywhere, when no interface is given).
    Vxlan {
        at: Option<(String, String)>,
        vni: Option<u32>,
        port: Option<u16>,
        outer: Option<(AddrMatch, AddrMatch)>,
    },
}

/// An address (one of several: a node has one per interface) and maybe a port, as a case
/// refers to it: `pod-b:8080`, `svc/myapp:80`, `node1`, `external`, `10.0.0.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrMatch {
    /// Any of these addresses matches.
    pub addrs: Vec<Ipv4Addr>,
    pub port: Option<u16>,
    /// As written.
    pub label: String,
}

impl AddrMatch {
    pub fn matches(&self, ip: Ipv4Addr, port: Option<u16>) -> bool {
        self.addrs.contains(&ip)
            && match (self.port, port) {
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

impl fmt::Display for AddrMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl fmt::Display for HopPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
