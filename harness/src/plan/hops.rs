//! `expect.hops`, `expect.reply` and `expect.avoid`: the path a flow's packets must (or must
//! not) take, resolved against the plan. Matching them against what was observed is in
//! [`crate::hop_match`].
//!
//! The planner checks every hop against the planned [`Topology`] (which interfaces exist in
//! which namespace, which addresses a name stands for) and the Services; the syntax is in
//! `docs/case-format.md` ("Hops").

use std::fmt;
use std::net::Ipv4Addr;

use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::topology::{EXTERNAL_HOST, Topology};
use serde_saphyr::Spanned;

use super::context::{Planner, YamlLocation};
use super::parse::{known_names, parse_port, quoted};
use super::refs::{Destination, Refs};
use crate::case::{ExpectSpec, HopEntry, HopSpec};
use crate::diag::Location;

/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// The verdicts of a rule hit, as the netfilter trace names them, besides `jump CHAIN` and
/// `goto CHAIN`.
pub const VERDICTS: [&str; 7] = [
    "accept", "drop", "continue", "return", "queue", "stolen", "break",
];

/// How a hop names the node end of a pod's link by its role: `POD/host-side`.
pub const HOST_SIDE: &str = "host-side";

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
    /// The hop in canonical words, for reports, addresses as the case writes them:
    /// `pod-a/eth0`, `node1/cni0 in src=pod-a dst=svc/myapp:80`, `node1 dnat pod-b:8080`,
    /// `node1 snat node1`, `node1 table nat chain KUBE-SVC-* verdict accept`,
    /// `node1/eth0 vxlan vni=1 port=8472 outer=node1->node2`; with ` [iptables]` after a hop
    /// restricted to a proxy mode, and `dns: ` before one of the DNS exchange.
    pub label: String,
    /// Where the hop's entry is written.
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
    /// `*` matches any suffix) was hit in the node, in this table and with this verdict when
    /// given. The verdict is one of [`VERDICTS`], or `jump CHAIN` / `goto CHAIN`: its word
    /// lower-cased, as the netfilter trace reports it, the chain as written (a trailing `*`
    /// again matches any suffix).
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
    /// As written (surrounding blanks trimmed).
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

/// The interfaces a case may name in `<netns>`, by the name cases use: a pod's `eth0`; a
/// node's `eth0`, `cni0`, `flannel.1` (with the vxlan overlay) and the host ends of its pods'
/// veth pairs; the underlay's bridge and its ports (one per node, and one for the external
/// host); the external host's `eth0`. `None` when `netns` is none of these.
pub fn interfaces<'t>(topology: &'t Topology, netns: &str) -> Option<Vec<&'t str>> {
    if netns == topology.underlay.netns {
        let mut names = vec![topology.underlay.bridge.as_str()];
        names.extend(topology.nodes.iter().map(|n| n.underlay_port.as_str()));
        names.extend(topology.external.iter().map(|e| e.underlay_port.as_str()));
        return Some(names);
    }
    if let Some(external) = topology.external.as_ref().filter(|e| e.name == netns) {
        return Some(vec![external.eth0.name.as_str()]);
    }
    if let Some(pod) = topology.pod(netns) {
        return Some(vec![pod.eth0.name.as_str()]);
    }
    let index = topology.nodes.iter().position(|n| n.name == netns)?;
    let node = &topology.nodes[index];
    let mut names = vec![node.eth0.name.as_str(), node.bridge.name.as_str()];
    names.extend(node.network.vxlan.iter().map(|v| v.name.as_str()));
    names.extend(
        topology
            .pods
            .iter()
            .filter(|p| p.node == index)
            .map(|p| p.host_veth.as_str()),
    );
    Some(names)
}

/// The addresses a pod, node or the external host has, by name: a pod's and the external
/// host's `eth0` address; every address of a node (`eth0`, `cni0`, `flannel.1`). `None` for
/// any other name.
pub fn addresses(topology: &Topology, name: &str) -> Option<Vec<Ipv4Addr>> {
    if let Some(pod) = topology.pod(name) {
        return Some(vec![pod.eth0.addr.addr()]);
    }
    if let Some(external) = topology.external.as_ref().filter(|e| e.name == name) {
        return Some(vec![external.eth0.addr.addr()]);
    }
    let node = topology.node(name)?;
    let mut addrs = vec![node.eth0.addr.addr(), node.bridge.addr.addr()];
    addrs.extend(node.network.vxlan.iter().map(|v| v.addr.addr()));
    Some(addrs)
}

/// What a flow's hops are checked against, besides the cluster.
pub(super) struct HopFlow<'a> {
    /// Where `svc/name` is looked up: the namespace of `from` (`default` for the external
    /// host); `None` when `from` is unknown (reported).
    pub(super) from_ns: Option<&'a str>,
    /// `to` is a DNS name, so the flow has a DNS exchange for `dns:` lists to follow.
    pub(super) to_name: bool,
    /// The flow only resolves its name (`expect` has `dns` alone): it sends nothing else.
    pub(super) resolves_only: bool,
}

/// Which list of `expect` a hop is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HopList {
    Hops,
    Reply,
    Avoid,
}

impl HopList {
    fn key(self) -> &'static str {
        match self {
            HopList::Hops => "hops",
            HopList::Reply => "reply",
            HopList::Avoid => "avoid",
        }
    }
}

/// What a hop mapping describes, from the keys it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Iface,
    Dnat,
    Snat,
    UnDnat,
    UnSnat,
    Chain,
    Vxlan,
}

impl Shape {
    fn what(self) -> &'static str {
        match self {
            Shape::Iface => "an interface hop",
            Shape::Dnat => "a `dnat` hop",
            Shape::Snat => "a `snat` hop",
            Shape::UnDnat => "an `undnat` hop",
            Shape::UnSnat => "an `unsnat` hop",
            Shape::Chain => "a `chain` hop",
            Shape::Vxlan => "a `vxlan` hop",
        }
    }
}

/// A value that may be left out: `None` when written but invalid (reported), `Some(None)` when
/// not written.
type Optional<T> = Option<Option<T>>;

impl Planner {
    /// `expect.hops`, `expect.reply` and `expect.avoid` of a flow with `to`. `None` when one
    /// of them is invalid (reported); every entry is checked either way.
    pub(super) fn flow_hops(
        &mut self,
        expect: Option<&Spanned<ExpectSpec>>,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<HopsExpect> {
        let Some(spec) = expect.map(|e| &e.value) else {
            return Some(HopsExpect::default());
        };
        let forward = self.hop_list(HopList::Hops, spec.hops.as_ref(), flow, refs);
        let reply = self.hop_list(HopList::Reply, spec.reply.as_ref(), flow, refs);
        let avoid = self.hop_list(HopList::Avoid, spec.avoid.as_ref(), flow, refs);
        Some(HopsExpect {
            forward: forward?,
            reply: reply?,
            avoid: avoid?,
        })
    }

    fn hop_list(
        &mut self,
        list: HopList,
        value: Option<&Spanned<Vec<Spanned<HopEntry>>>>,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<Vec<HopPlan>> {
        let Some(value) = value else {
            return Some(Vec::new());
        };
        if value.value.is_empty() {
            self.error(
                value.referenced,
                format!("`{}` lists no hop: leave it out", list.key()),
            );
            return None;
        }
        let mut hops = Vec::new();
        let mut complete = true;
        for entry in &value.value {
            match self.hop_entry(entry, list, Conversation::Main, flow, refs) {
                Some(found) => hops.extend(found),
                None => complete = false,
            }
        }
        complete.then_some(hops)
    }

    /// One entry of a list: a hop, or the hops of a `dns:` list.
    fn hop_entry(
        &mut self,
        entry: &Spanned<HopEntry>,
        list: HopList,
        conversation: Conversation,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<Vec<HopPlan>> {
        if let HopEntry::Spec(spec) = &entry.value
            && let Some(dns) = &spec.dns
        {
            return self.dns_hops(spec, dns, list, conversation, flow, refs);
        }
        if conversation == Conversation::Main && flow.resolves_only {
            let so = match list {
                HopList::Avoid => "so it has nothing to `avoid`".to_owned(),
                _ => format!(
                    "so `{}` can only hold `dns:` hops, those of the name's resolution",
                    list.key()
                ),
            };
            self.error(
                entry.referenced,
                format!("this flow only resolves its name (its `expect` has `dns` alone) and sends nothing else, {so}"),
            );
            return None;
        }
        let hop = match &entry.value {
            HopEntry::Iface(text) => {
                let value = Spanned::new(text.clone(), entry.referenced, entry.defined);
                let (netns, iface) = self.hop_iface(&value, list.key(), refs)?;
                Some((
                    HopKind::Iface {
                        netns,
                        iface,
                        dir: None,
                        src: None,
                        dst: None,
                    },
                    None,
                ))
            }
            HopEntry::Spec(spec) => self.hop_spec(entry, spec, list, flow, refs),
        };
        let (kind, proxy) = hop?;
        let mut label = kind.label();
        if let Some(mode) = proxy {
            label.push_str(&format!(" [{}]", mode.name()));
        }
        if conversation == Conversation::Dns {
            label.insert_str(0, "dns: ");
        }
        Some(vec![HopPlan {
            kind,
            conversation,
            proxy,
            label,
            location: Location::from_yaml(entry.referenced)
                .unwrap_or(Location { line: 0, column: 0 }),
        }])
    }

    /// A `dns:` list: the hops of the flow's DNS exchange, in order.
    fn dns_hops(
        &mut self,
        spec: &HopSpec,
        dns: &Spanned<Vec<Spanned<HopEntry>>>,
        list: HopList,
        conversation: Conversation,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<Vec<HopPlan>> {
        let mut complete = true;
        for (key, at) in hop_keys(spec) {
            if key != "dns"
                && let Some(at) = at
            {
                self.error(
                    at,
                    format!("`dns` takes no other key: it lists the hops of the flow's DNS exchange, each its own entry (`{key}` belongs in one of them)"),
                );
                complete = false;
            }
        }
        let problem = if list == HopList::Avoid {
            Some("`avoid` takes no `dns:` list: what must never be seen is listed hop by hop, and applies to the flow's own packets".to_owned())
        } else if conversation == Conversation::Dns {
            Some("a `dns:` list cannot hold another: its entries are hops".to_owned())
        } else if !flow.to_name {
            Some("`dns:` lists the hops of the flow's name resolution, but `to` is not a DNS name: there is no DNS exchange to follow".to_owned())
        } else if dns.value.is_empty() {
            Some("`dns` lists no hop: leave it out".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(dns.referenced, problem);
            return None;
        }
        let mut hops = Vec::new();
        for entry in &dns.value {
            match self.hop_entry(entry, list, Conversation::Dns, flow, refs) {
                Some(found) => hops.extend(found),
                None => complete = false,
            }
        }
        complete.then_some(hops)
    }

    /// A hop written as a mapping (not `dns:`), and its `proxy`.
    fn hop_spec(
        &mut self,
        entry: &Spanned<HopEntry>,
        spec: &HopSpec,
        list: HopList,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<(HopKind, Option<ProxyMode>)> {
        let vxlan = spec.vxlan();
        let shapes: Vec<(Shape, YamlLocation)> = [
            (Shape::Dnat, spec.dnat.as_ref().map(|v| v.referenced)),
            (Shape::Snat, spec.snat.as_ref().map(|v| v.referenced)),
            (Shape::UnDnat, spec.undnat.as_ref().map(|v| v.referenced)),
            (Shape::UnSnat, spec.unsnat.as_ref().map(|v| v.referenced)),
            (Shape::Chain, spec.chain.as_ref().map(|v| v.referenced)),
            (Shape::Vxlan, vxlan.as_ref().map(|v| v.referenced)),
        ]
        .into_iter()
        .filter_map(|(shape, at)| Some((shape, at?)))
        .collect();
        if let [(first, _), (second, at), ..] = shapes.as_slice() {
            self.error(
                *at,
                format!(
                    "{} and {} are two hops: write each as its own entry",
                    first.what(),
                    second.what()
                ),
            );
            return None;
        }
        let shape = shapes.first().map_or(Shape::Iface, |(shape, _)| *shape);
        if shape == Shape::Iface && spec.iface.is_none() {
            self.error(
                entry.referenced,
                "a hop needs `iface` (an interface, like node1/cni0), `dnat`, `snat`, `chain` or `vxlan` (with `node` for the three first), or is a `dns:` list",
            );
            return None;
        }
        let at = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.referenced);
        let placement: [(&str, Option<YamlLocation>, &[Shape], &str); 7] = [
            (
                "iface",
                at(&spec.iface),
                &[Shape::Iface, Shape::Vxlan],
                "NAT and rule hits happen in a node, named by `node`",
            ),
            (
                "node",
                at(&spec.node),
                &[
                    Shape::Dnat,
                    Shape::Snat,
                    Shape::UnDnat,
                    Shape::UnSnat,
                    Shape::Chain,
                ],
                "it names where NAT or a rule hit happens; an interface names its namespace in `iface` (node1/eth0)",
            ),
            (
                "dir",
                at(&spec.dir),
                &[Shape::Iface],
                "it is the direction a packet crosses an interface",
            ),
            (
                "src",
                at(&spec.src),
                &[Shape::Iface],
                "it is the source of the packet seen on an interface",
            ),
            (
                "dst",
                at(&spec.dst),
                &[Shape::Iface],
                "it is the destination of the packet seen on an interface",
            ),
            (
                "table",
                at(&spec.table),
                &[Shape::Chain],
                "it is the table of the chain a `chain` hop hits",
            ),
            (
                "verdict",
                at(&spec.verdict),
                &[Shape::Chain],
                "it is the verdict of the rule a `chain` hop hits",
            ),
        ];
        let mut misplaced = false;
        for (key, at, shapes, why) in placement {
            if let Some(at) = at
                && !shapes.contains(&shape)
            {
                self.error(
                    at,
                    format!("`{key}` does not go with {}: {why}", shape.what()),
                );
                misplaced = true;
            }
        }
        if misplaced {
            return None;
        }

        let proxy = match &spec.proxy {
            None => Some(None),
            Some(v) => self.hop_proxy(v, refs).map(Some),
        };
        let kind = match shape {
            Shape::Iface => self.iface_hop(spec, flow, refs),
            Shape::Dnat | Shape::Snat | Shape::UnDnat | Shape::UnSnat => {
                let (key, to, what) = match shape {
                    Shape::Dnat => ("dnat", spec.dnat.as_ref(), "destination"),
                    Shape::Snat => ("snat", spec.snat.as_ref(), "source"),
                    Shape::UnDnat => ("undnat", spec.undnat.as_ref(), "reply's source"),
                    _ => ("unsnat", spec.unsnat.as_ref(), "reply's destination"),
                };
                let node = self.hop_node(entry, spec, key, what, refs);
                let to = to.and_then(|to| self.hop_addr(to, &to.value, key, true, flow, refs));
                let (node, to) = (node?, to?);
                Some(match shape {
                    Shape::Dnat => HopKind::Dnat { node, to },
                    Shape::Snat => HopKind::Snat { node, to },
                    Shape::UnDnat => HopKind::UnDnat { node, to },
                    _ => HopKind::UnSnat { node, to },
                })
            }
            Shape::Chain => self.rule_hop(entry, spec, refs),
            Shape::Vxlan => {
                let vxlan = vxlan?;
                self.vxlan_hop(spec, &vxlan, list, flow, refs)
            }
        };
        Some((kind?, proxy?))
    }

    /// `{ iface, dir, src, dst }`.
    fn iface_hop(
        &mut self,
        spec: &HopSpec,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<HopKind> {
        let at = spec
            .iface
            .as_ref()
            .and_then(|v| self.hop_iface(v, "iface", refs));
        let dir: Optional<Dir> = match &spec.dir {
            None => Some(None),
            Some(v) => match v.value.as_str() {
                "in" => Some(Some(Dir::In)),
                "out" => Some(Some(Dir::Out)),
                other => {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown dir {}: expected in (received by the interface) or out (sent by it)",
                            quoted(other)
                        ),
                    );
                    None
                }
            },
        };
        let addr = |this: &mut Planner, key: &str, v: &Option<Spanned<String>>| match v {
            None => Some(None),
            Some(v) => this.hop_addr(v, &v.value, key, true, flow, refs).map(Some),
        };
        let src = addr(self, "src", &spec.src);
        let dst = addr(self, "dst", &spec.dst);
        let (netns, iface) = at?;
        Some(HopKind::Iface {
            netns,
            iface,
            dir: dir?,
            src: src?,
            dst: dst?,
        })
    }

    /// `{ node, chain, table, verdict }`.
    fn rule_hop(
        &mut self,
        entry: &Spanned<HopEntry>,
        spec: &HopSpec,
        refs: &Refs<'_>,
    ) -> Option<HopKind> {
        let node = self.hop_node(entry, spec, "chain", "rules are hit", refs);
        let chain = spec.chain.as_ref().and_then(|v| {
            let problem = chain_problem(&v.value);
            if let Some(problem) = problem {
                self.error(
                    v.referenced,
                    format!("chain {} {problem}", quoted(&v.value)),
                );
                return None;
            }
            Some(v.value.clone())
        });
        let table: Optional<String> = match &spec.table {
            None => Some(None),
            Some(v) => {
                let ok = !v.value.is_empty()
                    && v.value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if ok {
                    Some(Some(v.value.clone()))
                } else {
                    self.error(
                        v.referenced,
                        format!(
                            "table {} is not a table name (like nat, filter or kube-proxy: letters, digits, '-', '_' and '.')",
                            quoted(&v.value)
                        ),
                    );
                    None
                }
            }
        };
        let verdict: Optional<String> = match &spec.verdict {
            None => Some(None),
            Some(v) => self.verdict(v).map(Some),
        };
        Some(HopKind::Rule {
            node: node?,
            table: table?,
            chain: chain?,
            verdict: verdict?,
        })
    }

    /// `{ iface, vxlan: { vni, port, outer } }`.
    fn vxlan_hop(
        &mut self,
        spec: &HopSpec,
        vxlan: &Spanned<crate::case::VxlanHopSpec>,
        list: HopList,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<HopKind> {
        let at: Optional<(String, String)> = match &spec.iface {
            None => Some(None),
            Some(v) => self.hop_iface(v, "iface", refs).map(Some),
        };
        // Expecting to see what the cluster never sends is a mistake in the case; avoiding it
        // is merely always true, and harmless.
        let mut complete = true;
        if list != HopList::Avoid
            && let Some(topology) = refs.topology
            && topology.nodes.iter().all(|n| n.network.vxlan.is_none())
        {
            self.error(
                vxlan.referenced,
                format!(
                    "the overlay is not vxlan, so nothing is encapsulated in VXLAN and this hop could never be seen in `{}` (`avoid` may list it)",
                    list.key()
                ),
            );
            complete = false;
        }
        let spec = &vxlan.value;
        let vni: Optional<u32> = match &spec.vni {
            None => Some(None),
            Some(v) => self.number("vni", v).and_then(|n| match u32::try_from(n) {
                Ok(vni) if vni <= MAX_VNI => Some(Some(vni)),
                _ => {
                    self.error(
                        v.referenced,
                        format!("vni {n} is out of range 0..={MAX_VNI} (24 bits)"),
                    );
                    None
                }
            }),
        };
        let port: Optional<u16> = match &spec.port {
            None => Some(None),
            Some(v) => match parse_port(&v.value) {
                Ok(port) => Some(Some(port)),
                Err(problem) => {
                    self.error(
                        v.referenced,
                        format!("vxlan port {} {problem}", quoted(&v.value)),
                    );
                    None
                }
            },
        };
        let outer: Optional<(AddrMatch, AddrMatch)> = match &spec.outer {
            None => Some(None),
            Some(v) => match v.value.split_once("->") {
                Some((src, dst)) if !src.trim().is_empty() && !dst.trim().is_empty() => {
                    let src = self.hop_addr(v, src, "outer", false, flow, refs);
                    let dst = self.hop_addr(v, dst, "outer", false, flow, refs);
                    Some(Some((src?, dst?)))
                }
                _ => {
                    self.error(
                        v.referenced,
                        format!(
                            "outer {} is not SRC -> DST (the outer addresses, like node1 -> node2)",
                            quoted(&v.value)
                        ),
                    );
                    None
                }
            },
        };
        if !complete {
            return None;
        }
        Some(HopKind::Vxlan {
            at: at?,
            vni: vni?,
            port: port?,
            outer: outer?,
        })
    }

    /// `node` of a `dnat`, `snat` or `chain` hop: a node.
    fn hop_node(
        &mut self,
        entry: &Spanned<HopEntry>,
        spec: &HopSpec,
        key: &str,
        what: &str,
        refs: &Refs<'_>,
    ) -> Option<String> {
        let Some(node) = &spec.node else {
            let whose = match key {
                "chain" => "the node whose rules are hit".to_owned(),
                _ => format!("the node that rewrites the {what}"),
            };
            let article = if key.starts_with('u') { "an" } else { "a" };
            self.error(
                entry.referenced,
                format!("{article} `{key}` hop needs `node`: {whose}"),
            );
            return None;
        };
        let topology = refs.topology?;
        if topology.node(&node.value).is_none() {
            let known = known_names(topology.nodes.iter().map(|n| n.name.as_str()));
            self.error(
                node.referenced,
                format!(
                    "unknown node {} in `node` (nodes: {known})",
                    quoted(&node.value)
                ),
            );
            return None;
        }
        Some(node.value.clone())
    }

    /// `<netns>/<iface>` (in `field`): an interface the cluster has.
    fn hop_iface(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        refs: &Refs<'_>,
    ) -> Option<(String, String)> {
        let text = value.value.as_str();
        let Some((netns, iface)) = text
            .split_once('/')
            .filter(|(netns, iface)| !netns.is_empty() && !iface.is_empty())
        else {
            self.error(
                value.referenced,
                format!(
                    "{} in `{field}` is not an interface: write NETNS/IFACE, like pod-a/eth0 or node1/cni0",
                    quoted(text)
                ),
            );
            return None;
        };
        if netns == EXTERNAL_HOST && refs.external.is_none() {
            self.external_ref(value, field, refs);
            return None;
        }
        let topology = refs.topology?;
        // `POD/host-side`: the node end of the pod's link, whatever the pod attach names it
        // (with a stack whose attach decides, the plan bound to it resolves this again).
        if iface == HOST_SIDE
            && let Some(pod) = topology.pod(netns)
        {
            let node = topology.node_of(pod);
            return Some((node.name.clone(), pod.host_veth.clone()));
        }
        let Some(known) = interfaces(topology, netns) else {
            let pods = known_names(topology.pods.iter().map(|p| p.name.as_str()));
            let nodes = known_names(topology.nodes.iter().map(|n| n.name.as_str()));
            let external = if topology.external.is_some() {
                ", external"
            } else {
                ""
            };
            self.error(
                value.referenced,
                format!(
                    "unknown namespace {} in `{field}` (pods: {pods}; nodes: {nodes}; also {}{external})",
                    quoted(netns),
                    topology.underlay.netns
                ),
            );
            return None;
        };
        // A trailing `*` names every interface the stack makes whose name starts so (the
        // Calico cases' `cali*`): what it names depends on the stack's pod attach, so it is
        // checked against the stack's interfaces when the run starts, not here.
        let wildcard = iface
            .strip_suffix('*')
            .is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('*'));
        // The devices of podpath's Calico node networks are known to the planner, for the
        // Calico cases: a stack that does not make them has the hop ignored, with the reason.
        let driver_device = netns_runtime::stack::calico::DEVICES.contains(&iface);
        if !wildcard && !driver_device && !known.contains(&iface) {
            self.error(
                value.referenced,
                format!(
                    "unknown interface {} of {netns} (known: {})",
                    quoted(iface),
                    known_names(known.into_iter())
                ),
            );
            return None;
        }
        Some((netns.to_owned(), iface.to_owned()))
    }

    /// An address reference in `field` (`text` is all or part of `value`): a pod, a node, the
    /// external host, `svc/[namespace/]name` or an IPv4 address, each with `:port` when
    /// `ports` allows it (a Service's port by number or name).
    fn hop_addr(
        &mut self,
        value: &Spanned<String>,
        text: &str,
        field: &str,
        ports: bool,
        flow: &HopFlow<'_>,
        refs: &Refs<'_>,
    ) -> Option<AddrMatch> {
        let text = text.trim();
        let label = text.to_owned();
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(AddrMatch {
                addrs: vec![ip],
                port: None,
                label,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some(_) if !ports => {
                self.error(
                    value.referenced,
                    format!(
                        "{} in `{field}` has a port, but `{field}` names addresses only (the VXLAN port is `port`)",
                        quoted(text)
                    ),
                );
                return None;
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if let Some(service) = host.strip_prefix("svc/") {
            let Destination::Service(s) =
                self.service_ref(value, field, service, flow.from_ns, refs)?
            else {
                return None;
            };
            return self.service_addr(value, field, s, port, label, refs);
        }
        let port = match port {
            None => None,
            Some(port) => match parse_port(port) {
                Ok(port) => Some(port),
                Err(problem) => {
                    self.error(
                        value.referenced,
                        format!("port {} in `{field}` {problem}", quoted(port)),
                    );
                    return None;
                }
            },
        };
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(AddrMatch {
                addrs: vec![ip],
                port,
                label,
            });
        }
        if host == EXTERNAL_HOST {
            self.external_ref(value, field, refs)?;
        }
        let topology = refs.topology?;
        let Some(addrs) = addresses(topology, host) else {
            let pods = known_names(topology.pods.iter().map(|p| p.name.as_str()));
            let nodes = known_names(topology.nodes.iter().map(|n| n.name.as_str()));
            let external = if topology.external.is_some() {
                ", external"
            } else {
                ""
            };
            self.error(
                value.referenced,
                format!(
                    "unknown pod or node {} in `{field}` (pods: {pods}; nodes: {nodes}); also svc/NAME, svc/NAMESPACE/NAME{external} or an IPv4 address, with :PORT when it matters",
                    quoted(host)
                ),
            );
            return None;
        };
        Some(AddrMatch { addrs, port, label })
    }

    /// A Service's ClusterIP, and one of its ports by number or name.
    fn service_addr(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        service: usize,
        port: Option<&str>,
        label: String,
        refs: &Refs<'_>,
    ) -> Option<AddrMatch> {
        let draft = &refs.services[service];
        if !draft.complete {
            return None;
        }
        let plan = &draft.plan;
        let Some(ip) = plan.cluster_ip else {
            self.error(
                value.referenced,
                format!(
                    "Service {} in `{field}` is headless (clusterIP: None): no packet carries its address; name its pods",
                    plan.id()
                ),
            );
            return None;
        };
        let port = match port {
            None => None,
            Some(port) => {
                let found = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                    plan.ports
                        .iter()
                        .find(|p| port.parse::<u16>().is_ok_and(|n| n == p.port))
                } else {
                    plan.ports
                        .iter()
                        .find(|p| !p.name.is_empty() && p.name == port)
                };
                match found {
                    Some(p) => Some(p.port),
                    None => {
                        let ports: Vec<String> = plan.ports.iter().map(|p| p.label()).collect();
                        self.error(
                            value.referenced,
                            format!(
                                "Service {} has no port {} (ports: {}): give one of its ports by number or name",
                                plan.id(),
                                quoted(port),
                                ports.join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        Some(AddrMatch {
            addrs: vec![ip],
            port,
            label,
        })
    }

    /// `proxy`: a mode the case runs in.
    fn hop_proxy(&mut self, value: &Spanned<String>, refs: &Refs<'_>) -> Option<ProxyMode> {
        let Some(mode) = ProxyMode::parse(&value.value) else {
            self.error(
                value.referenced,
                format!(
                    "unknown proxy mode {} in `proxy`: expected iptables or nftables",
                    quoted(&value.value)
                ),
            );
            return None;
        };
        if !refs.proxy_modes.contains(&mode) {
            let runs = if refs.proxy_modes.is_empty() {
                "the case runs no service proxy".to_owned()
            } else {
                let modes: Vec<&str> = refs.proxy_modes.iter().map(|m| m.name()).collect();
                format!("the case only runs in {}", modes.join(" and "))
            };
            self.error(
                value.referenced,
                format!(
                    "`proxy: {}` keeps the hop to {} mode, but {runs}, so it would never be checked",
                    mode.name(),
                    mode.name()
                ),
            );
            return None;
        }
        Some(mode)
    }

    /// `verdict`: one of [`VERDICTS`], or `jump CHAIN` / `goto CHAIN`; the word lower-cased,
    /// the chain as written.
    fn verdict(&mut self, value: &Spanned<String>) -> Option<String> {
        let text = value.value.trim();
        let (word, chain) = match text.split_once(char::is_whitespace) {
            Some((word, chain)) => (word.to_ascii_lowercase(), Some(chain.trim())),
            None => (text.to_ascii_lowercase(), None),
        };
        match (word.as_str(), chain) {
            (word, None) if VERDICTS.contains(&word) => Some(word.to_owned()),
            ("jump" | "goto", Some(chain)) => match chain_problem(chain) {
                None => Some(format!("{word} {chain}")),
                Some(problem) => {
                    self.error(
                        value.referenced,
                        format!("the chain of verdict {} {problem}", quoted(text)),
                    );
                    None
                }
            },
            ("jump" | "goto", None) => {
                self.error(
                    value.referenced,
                    format!("verdict `{word}` needs the chain: {word} CHAIN"),
                );
                None
            }
            _ => {
                self.error(
                    value.referenced,
                    format!(
                        "unknown verdict {}: expected {}, jump CHAIN or goto CHAIN",
                        quoted(text),
                        VERDICTS.join(", ")
                    ),
                );
                None
            }
        }
    }
}

/// Every key of a hop mapping, with its location when written.
fn hop_keys(spec: &HopSpec) -> [(&'static str, Option<YamlLocation>); 15] {
    let at = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.referenced);
    [
        ("iface", at(&spec.iface)),
        ("dir", at(&spec.dir)),
        ("src", at(&spec.src)),
        ("dst", at(&spec.dst)),
        ("node", at(&spec.node)),
        ("dnat", at(&spec.dnat)),
        ("snat", at(&spec.snat)),
        ("undnat", at(&spec.undnat)),
        ("unsnat", at(&spec.unsnat)),
        ("chain", at(&spec.chain)),
        ("table", at(&spec.table)),
        ("verdict", at(&spec.verdict)),
        ("proxy", at(&spec.proxy)),
        ("vxlan", spec.vxlan.as_ref().map(|v| v.referenced)),
        ("dns", spec.dns.as_ref().map(|v| v.referenced)),
    ]
}

/// Why `chain` is not a chain name or prefix, if it is not: empty, with blanks, or with `*`
/// anywhere but at its end.
fn chain_problem(chain: &str) -> Option<&'static str> {
    if chain.is_empty() {
        return Some("is empty");
    }
    if chain.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("is not a chain name: it may not hold blanks");
    }
    if chain.trim_end_matches('*').contains('*') || chain.ends_with("**") {
        return Some("may hold `*` only once, at its end (a prefix, like KUBE-SVC-*)");
    }
    None
}

impl HopKind {
    /// The hop in canonical words, for reports (without `proxy` and the `dns: ` prefix).
    fn label(&self) -> String {
        match self {
            HopKind::Iface {
                netns,
                iface,
                dir,
                src,
                dst,
            } => {
                let mut label = format!("{netns}/{iface}");
                match dir {
                    Some(Dir::In) => label.push_str(" in"),
                    Some(Dir::Out) => label.push_str(" out"),
                    None => {}
                }
                if let Some(src) = src {
                    label.push_str(&format!(" src={src}"));
                }
                if let Some(dst) = dst {
                    label.push_str(&format!(" dst={dst}"));
                }
                label
            }
            HopKind::Dnat { node, to } => format!("{node} dnat {to}"),
            HopKind::Snat { node, to } => format!("{node} snat {to}"),
            HopKind::UnDnat { node, to } => format!("{node} undnat {to}"),
            HopKind::UnSnat { node, to } => format!("{node} unsnat {to}"),
            HopKind::Rule {
                node,
                table,
                chain,
                verdict,
            } => {
                let mut label = node.clone();
                if let Some(table) = table {
                    label.push_str(&format!(" table {table}"));
                }
                label.push_str(&format!(" chain {chain}"));
                if let Some(verdict) = verdict {
                    label.push_str(&format!(" verdict {verdict}"));
                }
                label
            }
            HopKind::Vxlan {
                at,
                vni,
                port,
                outer,
            } => {
                let mut label = match at {
                    Some((netns, iface)) => format!("{netns}/{iface} vxlan"),
                    None => "vxlan".to_owned(),
                };
                if let Some(vni) = vni {
                    label.push_str(&format!(" vni={vni}"));
                }
                if let Some(port) = port {
                    label.push_str(&format!(" port={port}"));
                }
                if let Some((src, dst)) = outer {
                    label.push_str(&format!(" outer={src}->{dst}"));
                }
                label
            }
        }
    }
}

/// A flow's hops in `podpath plan`, one line each.
pub(super) fn write_hops(f: &mut fmt::Formatter<'_>, hops: &HopsExpect) -> fmt::Result {
    for (key, list) in [
        ("hop", &hops.forward),
        ("reply", &hops.reply),
        ("avoid", &hops.avoid),
    ] {
        for hop in list {
            writeln!(f, "  {key:<10} {hop}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
