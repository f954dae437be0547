//! One flow's path, merged from captures, netfilter trace events and conntrack entries.
//!
//! ## Conversations
//!
//! Every IPv4 packet captured while a flow ran is keyed by its [`Tuple`]. Packets of one
//! connection carry different tuples on the way (DNAT rewrites the destination, SNAT the
//! source, and replies reverse both); the conntrack entries of the nodes tell which tuples are
//! the same connection: an entry's original tuple, its reply tuple, and their reversals are all
//! one conversation. Tuples no entry joins (a pod-to-pod flow without NAT) are one
//! conversation with their own reversal. ICMP errors belong to the conversation of the packet
//! they quote.
//!
//! A conversation's first packet is its *forward* direction; a packet whose tuple is a
//! forward tuple (the original, or the original as NAT rewrote it) goes [`Way::Forward`], a
//! packet with a reversed one [`Way::Reply`].
//!
//! ## Order
//!
//! Captures are ordered by kernel timestamp (see [`crate::capture`]). Netfilter trace events
//! carry no timestamp: each packet's walk through a namespace's hooks (one trace id) is pinned
//! right after the capture of that packet entering the namespace (same conversation, same
//! addresses at that point, same IPv4 identification), and events of one namespace keep the
//! kernel's order. Address rewrites are seen as a packet leaving a node with other addresses than
//! it came in with; they become [`StepKind::Nat`] steps, placed before the packet leaves.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::Tuple;
use super::conntrack::Entry;
use super::nftrace::RuleEvent;
use crate::capture::decode::{Packet, Transport};
use crate::capture::{CapturePoint, Captured};

/// Everything observed while a flow ran.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Every frame captured, ordered by kernel timestamp, with namespaces named as cases name
    /// them (pod, node, `underlay`, `external`).
    pub captures: Vec<Captured>,
    /// Where captures listened.
    pub points: Vec<CapturePoint>,
    /// Netfilter trace events of the nodes, in each node's order.
    pub rules: Vec<RuleEvent>,
    /// Each node's conntrack entries after the flow.
    pub conntrack: Vec<(String, Vec<Entry>)>,
    /// What went wrong observing (frames the kernel dropped, trace overruns), so a report can
    /// say its picture may be incomplete.
    pub problems: Vec<String>,
    /// Nodes (namespaces that route and NAT): rewrites are only looked for there.
    pub nodes: Vec<String>,
}

/// What a conversation is to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The flow's own traffic.
    Main,
    /// A question to the cluster DNS (and its answer) while resolving the flow's name.
    Dns,
    /// Anything else seen meanwhile.
    Other,
}

/// Direction within a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    Forward,
    Reply,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Way::Forward => "forward",
            Way::Reply => "reply",
        })
    }
}

/// One connection (or datagram exchange) seen in the captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub role: Role,
    /// Its first packet's addresses, as first captured.
    pub first: Tuple,
}

/// One step of a journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Kernel timestamp: the packet's, or for trace and NAT steps the packet's they belong to.
    pub ts: Duration,
    /// Namespace, as cases name it.
    pub netns: String,
    /// Index into [`Journey::conversations`], when the step belongs to one.
    pub conversation: Option<usize>,
    pub way: Option<Way>,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A frame on an interface.
    Packet(PacketStep),
    /// A netfilter rule (or chain policy) met by the packet.
    Rule(RuleEvent),
    /// The node rewrote the packet's addresses.
    Nat(NatStep),
}

/// A frame seen on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketStep {
    pub iface: String,
    /// Sent by the interface, rather than received.
    pub outgoing: bool,
    /// The (inner, for VXLAN) IPv4 packet's addresses; none for ARP and the like.
    pub tuple: Option<Tuple>,
    /// IPv4 identification of the (inner) packet.
    pub ip_id: Option<u16>,
    /// TCP flags, `[S]`, `[S.]`..., for TCP.
    pub tcp_flags: Option<String>,
    /// The encapsulation, when the frame is VXLAN.
    pub vxlan: Option<VxlanSeen>,
    /// The one-line summary of the frame.
    pub summary: String,
    /// What a DNS message (UDP or TCP, port 53, not encapsulated) says:
    /// `query A web.default.svc.cluster.local.`, `answer NOERROR ... A 10.96.0.2`.
    pub dns: Option<String>,
    /// Index of the frame in [`Observation::captures`].
    pub capture: usize,
}

/// The outer headers of a VXLAN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanSeen {
    pub vni: u32,
    pub outer_src: SocketAddrV4,
    pub outer_dst: SocketAddrV4,
}

/// What a node's NAT did to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Destination rewritten on the forward way.
    Dnat,
    /// Source rewritten on the forward way.
    Snat,
    /// Source restored on the reply way (the reverse of a DNAT).
    UnDnat,
    /// Destination restored on the reply way (the reverse of an SNAT).
    UnSnat,
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatKind::Dnat => "DNAT",
            NatKind::Snat => "SNAT",
            NatKind::UnDnat => "un-DNAT",
            NatKind::UnSnat => "un-SNAT",
        })
    }
}

/// An address rewrite: the packet came into the node as `before` and left as `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatStep {
    pub kind: NatKind,
    pub before: Tuple,
    pub after: Tuple,
    /// The node's conntrack entry of the connection, when it still had one.
    pub entry: Option<Entry>,
}

impl NatStep {
    /// The address rewritten from and to: `(10.96.0.20:80, 10.244.2.3:8080)` for a DNAT.
    pub fn rewrite(&self) -> (SocketAddrV4, SocketAddrV4) {
        let dst = |t: &Tuple| SocketAddrV4::new(t.dst, t.dport);
        let src = |t: &Tuple| SocketAddrV4::new(t.src, t.sport);
        match self.kind {
            NatKind::Dnat | NatKind::UnSnat => (dst(&self.before), dst(&self.after)),
            NatKind::Snat | NatKind::UnDnat => (src(&self.before), src(&self.after)),
        }
    }
}

/// A flow's journey: its conversations and every step, in order.
#[derive(Debug, Clone, Default)]
pub struct Journey {
    pub conversations: Vec<Conversation>,
    pub steps: Vec<Step>,
}

/// What the assembly needs to know about the flow.
#[derive(Debug, Clone, Default)]
pub struct FlowHints {
    /// The namespace the flow starts in.
    pub client: String,
    /// The cluster DNS address the client's resolver asks, when the flow resolves a name:
    /// conversations from the client to it on port 53 are [`Role::Dns`].
    pub dns_server: Option<Ipv4Addr>,
}

/// The tuple of a decoded packet (the inner one of VXLAN), the way conntrack keys it, and
/// whether it is an ICMP error (whose conversation is that of the quoted packet).
fn tuple_of(p: &Packet) -> Option<(Tuple, Option<Tuple>)> {
    let ip = p.ipv4()?;
    let (sport, dport) = match &ip.transport {
        Transport::Icmp(icmp) => {
            if let Some(echo) = icmp.echo {
                (echo.id, echo.id)
            } else if let Some(q) = &icmp.quoted {
                let (qs, qd) = q.ports().unwrap_or((0, 0));
                let quoted = Tuple {
                    proto: q.protocol,
                    src: q.src,
                    dst: q.dst,
                    sport: qs,
                    dport: qd,
                };
                let own = Tuple {
                    proto: ip.protocol,
                    src: ip.src,
                    dst: ip.dst,
                    sport: 0,
                    dport: 0,
                };
                return Some((own, Some(quoted)));
            } else {
                (0, 0)
            }
        }
        _ => ip.ports().unwrap_or((0, 0)),
    };
    Some((
        Tuple {
            proto: ip.protocol,
            src: ip.src,
            dst: ip.dst,
            sport,
            dport,
        },
        None,
    ))
}

/// A conversation key: the same for a tuple and its reversal.
fn undirected(t: Tuple) -> Tuple {
    t.min(t.reversed())
}

/// Union-find over undirected tuples.
#[derive(Default)]
struct Joins {
    parent: HashMap<Tuple, Tuple>,
}

impl Joins {
    fn find(&mut self, t: Tuple) -> Tuple {
        let t = undirected(t);
        let mut root = t;
        while let Some(&p) = self.parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        // Path compression.
        let mut at = t;
        while at != root {
            let next = self.parent.get(&at).copied().unwrap_or(root);
            self.parent.insert(at, root);
            at = next;
        }
        self.parent.entry(root).or_insert(root);
        root
    }

    fn join(&mut self, a: Tuple, b: Tuple) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra.max(rb), ra.min(rb));
        }
    }
}

/// The tuples of a conversation in each direction.
#[derive(Default)]
struct Ways {
    forward: Vec<Tuple>,
}

impl Ways {
    fn way_of(&self, t: &Tuple) -> Option<Way> {
        if self.forward.contains(t) {
            Some(Way::Forward)
        } else if self.forward.iter().any(|f| f.reversed() == *t) {
            Some(Way::Reply)
        } else {
            None
        }
    }
}

/// Merges an observation into a journey (see the module documentation).
pub fn assemble(obs: &Observation, hints: &FlowHints) -> Journey {
    let mut joins = Joins::default();
    let entries = || obs.conntrack.iter().flat_map(|(_, e)| e.iter());
    for e in entries() {
        joins.join(e.orig, e.reply);
    }
    // Decode once.
    let decoded: Vec<Option<(Packet, Tuple, Option<Tuple>)>> = obs
        .captures
        .iter()
        .map(|c| {
            let p = c.decode().ok()?;
            let (t, quoted) = tuple_of(p.innermost())?;
            Some((p, t, quoted))
        })
        .collect();

    // Conversations in order of first appearance.
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut ways: Vec<Ways> = Vec::new();
    let mut by_root: HashMap<Tuple, usize> = HashMap::new();
    let mut of_capture: Vec<Option<(usize, Option<Way>)>> = vec![None; obs.captures.len()];
    for (i, d) in decoded.iter().enumerate() {
        let Some((_, t, quoted)) = d else { continue };
        let key = quoted.unwrap_or(*t);
        let root = joins.find(key);
        let conv = match by_root.get(&root) {
            Some(&c) => c,
            None if quoted.is_some() => continue,
            None => {
                let role = role_of(t, &obs.captures[i], hints);
                conversations.push(Conversation { role, first: *t });
                let mut w = Ways { forward: vec![*t] };
                for e in entries() {
                    if joins.find(e.orig) == root {
                        for f in [e.orig, e.reply.reversed()] {
                            if !w.forward.contains(&f) {
                                w.forward.push(f);
                            }
                        }
                    }
                }
                // The entries are keyed from the node's view; the client's first packet may be
                // either way round of them (an entry made by a reply-first flow is unusual, but
                // the first packet decides).
                if w.way_of(t) == Some(Way::Reply) {
                    w.forward = w.forward.iter().map(|f| f.reversed()).collect();
                }
                ways.push(w);
                by_root.insert(root, conversations.len() - 1);
                conversations.len() - 1
            }
        };
        let way = if quoted.is_some() {
            // An ICMP error goes back to whoever sent the packet it quotes.
            ways[conv].way_of(&key).map(|w| match w {
                Way::Forward => Way::Reply,
                Way::Reply => Way::Forward,
            })
        } else {
            ways[conv].way_of(t)
        };
        of_capture[i] = Some((conv, way));
    }

    // Packet steps.
    let mut steps: Vec<Step> = Vec::with_capacity(obs.captures.len());
    for (i, c) in obs.captures.iter().enumerate() {
        let (conversation, way) = match of_capture[i] {
            Some((conv, way)) => (Some(conv), way),
            None => (None, None),
        };
        let (summary, tuple, ip_id, tcp_flags, vxlan) = match &decoded[i] {
            Some((p, t, _)) => {
                let inner = p.innermost();
                let vxlan = p.vxlan().and_then(|v| {
                    let ip = p.ipv4()?;
                    let udp = p.udp()?;
                    Some(VxlanSeen {
                        vni: v.vni,
                        outer_src: SocketAddrV4::new(ip.src, udp.src_port),
                        outer_dst: SocketAddrV4::new(ip.dst, udp.dst_port),
                    })
                });
                (
                    p.to_string(),
                    Some(*t),
                    inner.ipv4().map(|ip| ip.id),
                    inner.tcp().map(|t| t.flags.to_string()),
                    vxlan,
                )
            }
            None => (
                c.decode()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|e| e.to_string()),
                None,
                None,
                None,
                None,
            ),
        };
        steps.push(Step {
            ts: c.ts,
            netns: c.netns.clone(),
            conversation,
            way,
            kind: StepKind::Packet(PacketStep {
                iface: c.iface.clone(),
                outgoing: c.outgoing,
                tuple,
                ip_id,
                tcp_flags,
                vxlan,
                dns: dns_of(&c.frame),
                summary,
                capture: i,
            }),
        });
    }

    let nats = rewrites(obs, &steps);
    let rules = pin_rules(obs, &steps, &mut joins, &by_root, &ways);
    // Insert: NAT steps before their packet, rule walks after theirs.
    let mut before: BTreeMap<usize, Vec<Step>> = BTreeMap::new();
    let mut after: BTreeMap<usize, Vec<Step>> = BTreeMap::new();
    for (at, step) in nats {
        before.entry(at).or_default().push(step);
    }
    let mut unpinned = Vec::new();
    for (at, step) in rules {
        match at {
            Some(at) => after.entry(at).or_default().push(step),
            None => unpinned.push(step),
        }
    }
    let mut merged = Vec::with_capacity(steps.len() + before.len() + after.len());
    for (i, step) in steps.into_iter().enumerate() {
        if let Some(b) = before.remove(&i) {
            merged.extend(b);
        }
        merged.push(step);
        if let Some(a) = after.remove(&i) {
            merged.extend(a);
        }
    }
    merged.extend(unpinned);
    Journey {
        conversations,
        steps: merged,
    }
}

/// The DNS message a frame carries: IPv4 over Ethernet, UDP or TCP to or from port 53 (a TCP
/// segment holding a whole length-prefixed message).
fn dns_of(frame: &[u8]) -> Option<String> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = ip.get(ihl..)?;
    let ports = |l4: &[u8]| -> Option<bool> {
        let (s, d) = (
            u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
            u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        );
        Some(s == 53 || d == 53)
    };
    match ip.get(9)? {
        17 if ports(l4)? => crate::dns::wire::summary(l4.get(8..)?),
        6 if ports(l4)? => {
            let data = l4.get(usize::from(l4.get(12)? >> 4) * 4..)?;
            let len = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
            crate::dns::wire::summary(data.get(2..2 + len)?)
        }
        _ => None,
    }
}

fn role_of(t: &Tuple, first: &Captured, hints: &FlowHints) -> Role {
    let from_client = first.netns == hints.client;
    match hints.dns_server {
        Some(dns) if t.dst == dns && t.dport == 53 && matches!(t.proto, 6 | 17) => Role::Dns,
        _ if from_client => Role::Main,
        _ => Role::Other,
    }
}

/// Address rewrites: a packet of a conversation seen in a node with other addresses than the
/// same packet (same IPv4 identification) had when the node last saw it: leaving with other
/// addresses than it came in with, or, when the bridge's netfilter hooks rewrote it on a
/// bridge port, climbing to the bridge with other addresses than the port saw. Returns (index
/// of the step that shows the new addresses, NAT step).
fn rewrites(obs: &Observation, steps: &[Step]) -> Vec<(usize, Step)> {
    // Last tuple seen in each node, per (conversation, way, IP id).
    let mut seen: HashMap<(String, usize, Way, Option<u16>), Tuple> = HashMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let StepKind::Packet(p) = &step.kind else {
            continue;
        };
        let (Some(conv), Some(way), Some(tuple)) = (step.conversation, step.way, p.tuple) else {
            continue;
        };
        if !obs.nodes.contains(&step.netns) || p.vxlan.is_some() {
            continue;
        }
        let key = (step.netns.clone(), conv, way, p.ip_id);
        let Some(before) = seen.insert(key, tuple) else {
            continue;
        };
        if before == tuple {
            continue;
        }
        let entry = obs
            .conntrack
            .iter()
            .filter(|(node, _)| *node == step.netns)
            .flat_map(|(_, e)| e.iter())
            .find(|e| [e.orig, e.reply, e.orig.reversed(), e.reply.reversed()].contains(&before))
            .cloned();
        let dst_changed = (before.dst, before.dport) != (tuple.dst, tuple.dport);
        let src_changed = (before.src, before.sport) != (tuple.src, tuple.sport);
        let mut kinds = Vec::new();
        match way {
            Way::Forward => {
                if dst_changed {
                    kinds.push(NatKind::Dnat);
                }
                if src_changed {
                    kinds.push(NatKind::Snat);
                }
            }
            Way::Reply => {
                if src_changed {
                    kinds.push(NatKind::UnDnat);
                }
                if dst_changed {
                    kinds.push(NatKind::UnSnat);
                }
            }
        }
        for kind in kinds {
            out.push((
                i,
                Step {
                    ts: step.ts,
                    netns: step.netns.clone(),
                    conversation: Some(conv),
                    way: Some(way),
                    kind: StepKind::Nat(NatStep {
                        kind,
                        before,
                        after: tuple,
                        entry: entry.clone(),
                    }),
                },
            ));
        }
    }
    out
}

/// Pins each trace event after the capture of its packet entering the namespace (or, for a
/// packet the namespace sent itself, before it leaves). Returns (step index to follow, step);
/// `None` when no capture could be found for it.
fn pin_rules(
    obs: &Observation,
    steps: &[Step],
    joins: &mut Joins,
    by_root: &HashMap<Tuple, usize>,
    ways: &[Ways],
) -> Vec<(Option<usize>, Step)> {
    // Group consecutive events of one namespace with one trace id: one packet's walk.
    let mut walks: Vec<Vec<&RuleEvent>> = Vec::new();
    for e in &obs.rules {
        match walks.last_mut() {
            Some(w) if w[0].netns == e.netns && w[0].id == e.id => w.push(e),
            _ => walks.push(vec![e]),
        }
    }
    let mut used: Vec<bool> = vec![false; steps.len()];
    // Per namespace, captures are only searched from after the last one used (kernel order).
    let mut cursor: HashMap<String, usize> = HashMap::new();
    // The anchor of each packet's walk so far, by namespace and trace id, and the trace ids
    // of each namespace's walks in order.
    let mut walked: HashMap<(String, u32), usize> = HashMap::new();
    let mut recent: HashMap<String, Vec<u32>> = HashMap::new();
    let mut out = Vec::new();
    for walk in walks {
        let first = walk[0];
        let tuple = walk.iter().find_map(|e| e.packet);
        let ip_id = walk.iter().find_map(|e| e.ip_id);
        let iif = walk.iter().find_map(|e| e.iif.clone());
        let conv = tuple.and_then(|t| by_root.get(&joins.find(t)).copied());
        let way = match (conv, tuple) {
            (Some(c), Some(t)) => ways[c].way_of(&t),
            _ => None,
        };
        // A walk interrupted by another (a REJECT sends its ICMP error, traced through the
        // output hook, before its own verdict is reported): the same packet's walk goes on
        // after the same anchor.
        let history = recent.entry(first.netns.clone()).or_default();
        let resumed = (history.len() >= 2
            && history[history.len() - 2] == first.id
            && history[history.len() - 1] != first.id)
            .then(|| walked.get(&(first.netns.clone(), first.id)).copied())
            .flatten();
        history.push(first.id);
        let start = cursor.get(&first.netns).copied().unwrap_or(0);
        let candidate = |i: usize, s: &Step, incoming: bool| -> bool {
            let StepKind::Packet(p) = &s.kind else {
                return false;
            };
            !used[i]
                && s.netns == first.netns
                && p.outgoing != incoming
                && p.vxlan.is_none()
                && (tuple.is_none() || p.tuple == tuple)
                && (ip_id.is_none() || p.ip_id == ip_id)
        };
        let anchor = if resumed.is_some() {
            resumed
        } else if iif.is_some() {
            // The packet as it came in: the last capture of it on the way up (bridge port,
            // then bridge), so that the walk follows both.
            let mut found = None;
            for (i, s) in steps.iter().enumerate().skip(start) {
                if candidate(i, s, true) {
                    found = Some(i);
                    // Same frame climbing a stacked device: same timestamp.
                    let ts = s.ts;
                    for (j, t) in steps.iter().enumerate().skip(i + 1) {
                        if t.ts != ts {
                            break;
                        }
                        if candidate(j, t, true) {
                            found = Some(j);
                        }
                    }
                    break;
                }
            }
            found
        } else {
            // Sent by the namespace itself: before its first capture leaving.
            steps
                .iter()
                .enumerate()
                .skip(start)
                .find(|(i, s)| candidate(*i, s, false))
                .map(|(i, _)| i.saturating_sub(1))
        };
        if let Some(a) = anchor
            && resumed.is_none()
        {
            used[a] = true;
            cursor.insert(first.netns.clone(), a);
        }
        if let Some(a) = anchor {
            walked.insert((first.netns.clone(), first.id), a);
        }
        let ts = anchor.map(|a| steps[a].ts).unwrap_or_default();
        for e in walk {
            out.push((
                anchor,
                Step {
                    ts,
                    netns: e.netns.clone(),
                    conversation: conv,
                    way,
                    kind: StepKind::Rule(e.clone()),
                },
            ));
        }
    }
    out
}

impl Journey {
    /// The steps of one conversation role and way, in order.
    pub fn steps_of(&self, role: Role, way: Way) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| {
            s.way == Some(way)
                && s.conversation
                    .is_some_and(|c| self.conversations[c].role == role)
        })
    }

    /// The conversation of the flow's own traffic, if any was seen.
    pub fn main(&self) -> Option<usize> {
        self.conversations.iter().position(|c| c.role == Role::Main)
    }
}

impl fmt::Display for Step {
    /// `node1/cni0 in  10.244.1.2:40000 > 10.96.0.20:80 tcp [S]`,
    /// `node1 ip nat KUBE-SEP-X rule accept`, `node1 DNAT 10.96.0.20:80 -> 10.244.2.3:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StepKind::Packet(p) => {
                write!(
                    f,
                    "{}/{} {:<3} {}",
                    self.netns,
                    p.iface,
                    if p.outgoing { "out" } else { "in" },
                    p.summary
                )?;
                match &p.dns {
                    Some(dns) => write!(f, " [DNS {dns}]"),
                    None => Ok(()),
                }
            }
            StepKind::Rule(e) => {
                write!(f, "{} {} {} {}", self.netns, e.family, e.table, e.chain)?;
                match (&e.kind, &e.verdict) {
                    (super::nftrace::TraceKind::Policy, Some(v)) => write!(f, " policy {v}"),
                    (super::nftrace::TraceKind::Return, _) => write!(f, " return"),
                    (_, Some(v)) => write!(f, " {v}"),
                    (_, None) => Ok(()),
                }
            }
            StepKind::Nat(n) => {
                let (from, to) = n.rewrite();
                write!(f, "{} {} {from} -> {to}", self.netns, n.kind)
            }
        }
    }
}

/// A made-up but faithful observation, for tests of what consumes journeys: pod-a
/// (10.244.1.2, node1) connects to the ClusterIP 10.96.0.20:80, node1 DNATs it to pod-b
/// (10.244.2.3:8080, node2) over flannel's VXLAN, and the SYN-ACK comes back un-DNATed.
#[doc(hidden)]
pub mod example {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::Observation;
    use crate::capture::Captured;
    use crate::capture::decode::{ETHERTYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP, build};
    use crate::topology::Mac;
    use crate::trace::Tuple;
    use crate::trace::conntrack::Entry;
    use crate::trace::nftrace::{RuleEvent, TraceKind};

    pub const POD_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
    pub const POD_B: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 3);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
    pub const NODE1: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
    pub const NODE2: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);

    const M: Mac = Mac([2, 0, 0, 0, 0, 1]);

    fn tcp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8) -> Vec<u8> {
        let seg = build::tcp(src.1, dst.1, 1, 0, flags, b"");
        build::ethernet(
            M,
            M,
            ETHERTYPE_IPV4,
            &build::ipv4(src.0, dst.0, IPPROTO_TCP, 64, &seg),
        )
    }

    fn vxlan_frame(inner: &[u8]) -> Vec<u8> {
        let udp = build::udp(40123, 8472, &build::vxlan(1, inner));
        build::ethernet(
            M,
            M,
            ETHERTYPE_IPV4,
            &build::ipv4(NODE1, NODE2, IPPROTO_UDP, 64, &udp),
        )
    }

    fn vxlan_back(inner: &[u8]) -> Vec<u8> {
        let udp = build::udp(40999, 8472, &build::vxlan(1, inner));
        build::ethernet(
            M,
            M,
            ETHERTYPE_IPV4,
            &build::ipv4(NODE2, NODE1, IPPROTO_UDP, 64, &udp),
        )
    }

    fn at(netns: &str, iface: &str, us: u64, outgoing: bool, frame: Vec<u8>) -> Captured {
        Captured {
            netns: netns.into(),
            iface: iface.into(),
            ts: Duration::from_micros(1_000_000 + us),
            outgoing,
            orig_len: frame.len(),
            frame,
        }
    }

    fn rule(seq: u64, chain: &str, verdict: &str, kind: TraceKind, t: Tuple) -> RuleEvent {
        RuleEvent {
            netns: "node1".into(),
            seq,
            id: 77,
            family: "ip".into(),
            table: "nat".into(),
            chain: chain.into(),
            handle: Some(seq + 10),
            kind,
            verdict: Some(verdict.into()),
            iif: Some("cni0".into()),
            oif: None,
            mark: None,
            packet: Some(t),
            ip_id: Some(0x1234),
            rule: None,
        }
    }

    pub fn service_over_vxlan() -> Observation {
        let a = (POD_A, 40000);
        let vip = (VIP, 80);
        let b = (POD_B, 8080);
        let syn_vip = tcp_frame(a, vip, 0x02);
        let syn_b = tcp_frame(a, b, 0x02);
        let synack_b = tcp_frame(b, a, 0x12);
        let synack_vip = tcp_frame(vip, a, 0x12);
        let captures = vec![
            at("pod-a", "eth0", 0, true, syn_vip.clone()),
            at("node1", "veth-a", 10, false, syn_vip.clone()),
            at("node1", "cni0", 10, false, syn_vip.clone()),
            at("node1", "flannel.1", 20, true, syn_b.clone()),
            at("node1", "eth0", 21, true, vxlan_frame(&syn_b)),
            at("underlay", "node1", 22, false, vxlan_frame(&syn_b)),
            at("underlay", "node2", 23, true, vxlan_frame(&syn_b)),
            at("node2", "eth0", 24, false, vxlan_frame(&syn_b)),
            at("node2", "flannel.1", 24, false, syn_b.clone()),
            at("node2", "veth-b", 30, true, syn_b.clone()),
            at("pod-b", "eth0", 31, false, syn_b),
            at("pod-b", "eth0", 40, true, synack_b.clone()),
            at("node2", "veth-b", 41, false, synack_b.clone()),
            at("node2", "cni0", 41, false, synack_b.clone()),
            at("node2", "flannel.1", 45, true, synack_b.clone()),
            at("node2", "eth0", 46, true, vxlan_back(&synack_b)),
            at("node1", "eth0", 48, false, vxlan_back(&synack_b)),
            at("node1", "flannel.1", 48, false, synack_b),
            at("node1", "cni0", 50, true, synack_vip.clone()),
            at("node1", "veth-a", 50, true, synack_vip.clone()),
            at("pod-a", "eth0", 51, false, synack_vip),
        ];
        let t = |s: (Ipv4Addr, u16), d: (Ipv4Addr, u16)| Tuple {
            proto: 6,
            src: s.0,
            dst: d.0,
            sport: s.1,
            dport: d.1,
        };
        let rules = vec![
            rule(
                0,
                "PREROUTING",
                "jump KUBE-SERVICES",
                TraceKind::Rule,
                t(a, vip),
            ),
            rule(
                1,
                "KUBE-SERVICES",
                "jump KUBE-SVC-XPGD46QRK7WJZT7O",
                TraceKind::Rule,
                t(a, vip),
            ),
            rule(
                2,
                "KUBE-SVC-XPGD46QRK7WJZT7O",
                "jump KUBE-SEP-SXIVWICOYRO3J4NJ",
                TraceKind::Rule,
                t(a, vip),
            ),
            rule(
                3,
                "KUBE-SEP-SXIVWICOYRO3J4NJ",
                "accept",
                TraceKind::Rule,
                t(a, vip),
            ),
        ];
        let entry = |orig: Tuple, reply: Tuple, status: u32| Entry {
            orig,
            reply,
            status,
            tcp_state: Some("SYN_RECV".into()),
            timeout: Some(60),
            mark: None,
            zone: None,
            id: None,
            orig_icmp: None,
            reply_icmp: None,
            use_count: None,
        };
        Observation {
            captures,
            points: Vec::new(),
            rules,
            conntrack: vec![
                ("node1".into(), vec![entry(t(a, vip), t(b, a), 0x1aa)]),
                ("node2".into(), vec![entry(t(a, b), t(b, a), 0x18a)]),
            ],
            problems: Vec::new(),
            nodes: vec!["node1".into(), "node2".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::example::*;
    use super::*;

    fn hints() -> FlowHints {
        FlowHints {
            client: "pod-a".into(),
            dns_server: None,
        }
    }

    fn lines(j: &Journey) -> Vec<String> {
        j.steps
            .iter()
            .map(|s| format!("{} {}", s.way.map_or("-".into(), |w| w.to_string()), s))
            .collect()
    }

    #[test]
    fn one_conversation_across_dnat_and_vxlan() {
        let j = assemble(&service_over_vxlan(), &hints());
        assert_eq!(j.conversations.len(), 1);
        assert_eq!(j.conversations[0].role, Role::Main);
        assert_eq!(j.conversations[0].first.dst, VIP);
        // Every step belongs to it, going the right way.
        assert!(
            j.steps.iter().all(|s| s.conversation == Some(0)),
            "{:#?}",
            lines(&j)
        );
        let l = lines(&j);
        let pos = |needle: &str| {
            l.iter()
                .position(|x| x.contains(needle))
                .unwrap_or_else(|| panic!("{needle} not in {l:#?}"))
        };
        // The walk through nat follows the packet into cni0; the DNAT comes before flannel.1.
        assert!(pos("forward node1/cni0") < pos("forward node1 ip nat PREROUTING"));
        assert!(pos("KUBE-SEP-SXIVWICOYRO3J4NJ accept") < pos("forward node1 DNAT"));
        assert!(
            pos("forward node1 DNAT 10.96.0.20:80 -> 10.244.2.3:8080")
                < pos("forward node1/flannel.1")
        );
        // Back: the source is restored before the SYN-ACK leaves by cni0.
        assert!(
            pos("reply node1 un-DNAT 10.244.2.3:8080 -> 10.96.0.20:80")
                < pos("reply node1/cni0 out")
        );
        assert!(pos("reply pod-a/eth0") > pos("reply node1/cni0 out"));
        // Exactly one rewrite each way, none on node2.
        let nats: Vec<_> = l.iter().filter(|x| x.contains("NAT")).collect();
        assert_eq!(nats.len(), 2, "{nats:#?}");
        // The encapsulated frames are the same conversation, with their outer headers.
        let vx = j
            .steps
            .iter()
            .find_map(|s| match &s.kind {
                StepKind::Packet(p) if s.netns == "node1" && p.iface == "eth0" => p.vxlan,
                _ => None,
            })
            .expect("vxlan on node1/eth0");
        assert_eq!(vx.vni, 1);
        assert_eq!(vx.outer_dst, SocketAddrV4::new(NODE2, 8472));
        assert_eq!(vx.outer_src.ip(), &NODE1);
    }

    #[test]
    fn dns_and_other_roles() {
        let mut obs = service_over_vxlan();
        // Pretend the flow resolved a name at the VIP on port 80: it is then a DNS exchange only
        // when the port is 53; here it stays the main flow.
        let j = assemble(
            &obs,
            &FlowHints {
                client: "pod-a".into(),
                dns_server: Some(VIP),
            },
        );
        assert_eq!(j.conversations[0].role, Role::Main);
        // A flow from another namespace makes the conversation someone else's.
        let j = assemble(
            &obs,
            &FlowHints {
                client: "pod-z".into(),
                dns_server: None,
            },
        );
        assert_eq!(j.conversations[0].role, Role::Other);
        // Without conntrack, tuples are not joined: the DNATed packets are a second
        // conversation, seen first at node1.
        obs.conntrack.clear();
        let j = assemble(&obs, &hints());
        assert_eq!(j.conversations.len(), 2);
    }

    #[test]
    fn a_walk_interrupted_by_another_goes_on_after_its_packet() {
        let mut obs = service_over_vxlan();
        // As a REJECT does: another packet's walk (the ICMP error, from the output hook) is
        // reported between the first events of a packet's walk and its verdict.
        let mut icmp = obs.rules[0].clone();
        icmp.id = 99;
        icmp.seq = 4;
        icmp.iif = None;
        icmp.packet = None;
        icmp.ip_id = None;
        let mut verdict = obs.rules[3].clone();
        verdict.seq = 5;
        verdict.table = "filter".into();
        verdict.chain = "KUBE-SERVICES".into();
        verdict.verdict = Some("drop".into());
        verdict.packet = None;
        verdict.ip_id = None;
        obs.rules.push(icmp);
        obs.rules.push(verdict);
        let j = assemble(&obs, &hints());
        let l = lines(&j);
        let drop = l
            .iter()
            .position(|x| x.contains("ip filter KUBE-SERVICES drop"))
            .expect("the verdict is in the journey");
        let sep = l
            .iter()
            .position(|x| x.contains("KUBE-SEP-SXIVWICOYRO3J4NJ accept"))
            .unwrap();
        let out = l
            .iter()
            .position(|x| x.contains("node1/flannel.1 out"))
            .unwrap();
        assert!(sep < drop && drop < out, "{l:#?}");
        assert_eq!(j.steps[drop].ts, j.steps[sep].ts);
    }

    #[test]
    fn empty_observation() {
        let j = assemble(&Observation::default(), &hints());
        assert!(j.steps.is_empty() && j.conversations.is_empty());
    }
}
