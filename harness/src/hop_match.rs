//! Matching a flow's expected hops against its observed journey. Pure: no I/O.
//!
//! `expect.hops` must appear, in order, along the walk of one packet going forward (see
//! [`walks`]): one packet of the DNS exchange for a run of hops under `dns:`, one of the
//! flow's own traffic otherwise, each run after the one before it; `expect.reply` likewise
//! along one packet going back; `expect.avoid` nowhere, on any packet. Greedy earliest
//! matching finds an ordered embedding in a packet's walk whenever one exists.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::trace::assembly::{Journey, NatKind, Role, Step, StepKind, Way};
use netns_runtime::trace::nftrace::TraceKind;

use crate::plan::hops::{Conversation, Dir, HopKind, HopPlan, HopsExpect};

/// Whether `step` is what `hop` describes (direction and conversation aside).
pub fn hop_matches(hop: &HopKind, step: &Step) -> bool {
    match (hop, &step.kind) {
        (
            HopKind::Iface {
                netns,
                iface,
                dir,
                src,
                dst,
            },
            StepKind::Packet(p),
        ) => {
            let Some(t) = p.tuple else { return false };
            let ports = matches!(t.proto, 6 | 17 | 132);
            let port = |port: u16| ports.then_some(port);
            step.netns == *netns
                && glob(iface, &p.iface)
                && match dir {
                    Some(Dir::In) => !p.outgoing,
                    Some(Dir::Out) => p.outgoing,
                    None => true,
                }
                && src.as_ref().is_none_or(|m| m.matches(t.src, port(t.sport)))
                && dst.as_ref().is_none_or(|m| m.matches(t.dst, port(t.dport)))
        }
        (HopKind::Dnat { node, to }, StepKind::Nat(n)) => {
            step.netns == *node
                && n.kind == NatKind::Dnat
                && to.matches(n.after.dst, Some(n.after.dport))
        }
        (HopKind::Snat { node, to }, StepKind::Nat(n)) => {
            step.netns == *node
                && n.kind == NatKind::Snat
                && to.matches(n.after.src, Some(n.after.sport))
        }
        (HopKind::UnDnat { node, to }, StepKind::Nat(n)) => {
            step.netns == *node
                && n.kind == NatKind::UnDnat
                && to.matches(n.after.src, Some(n.after.sport))
        }
        (HopKind::UnSnat { node, to }, StepKind::Nat(n)) => {
            step.netns == *node
                && n.kind == NatKind::UnSnat
                && to.matches(n.after.dst, Some(n.after.dport))
        }
        (
            HopKind::Rule {
                node,
                table,
                chain,
                verdict,
            },
            StepKind::Rule(e),
        ) => {
            step.netns == *node
                && table.as_ref().is_none_or(|t| *t == e.table)
                && glob(chain, &e.chain)
                && verdict
                    .as_ref()
                    .is_none_or(|v| e.verdict.as_ref().is_some_and(|got| glob(v, got)))
                && !matches!(e.kind, TraceKind::Return)
        }
        (
            HopKind::Vxlan {
                at,
                vni,
                port,
                outer,
            },
            StepKind::Packet(p),
        ) => {
            let Some(v) = p.vxlan else { return false };
            at.as_ref()
                .is_none_or(|(ns, iface)| step.netns == *ns && glob(iface, &p.iface))
                && vni.is_none_or(|n| n == v.vni)
                && port.is_none_or(|n| n == v.outer_dst.port())
                && outer.as_ref().is_none_or(|(a, b)| {
                    a.matches(*v.outer_src.ip(), None) && b.matches(*v.outer_dst.ip(), None)
                })
        }
        _ => false,
    }
}

/// `KUBE-SVC-*` matches any chain starting `KUBE-SVC-` (and `jump KUBE-SVC-*` any jump to
/// one); otherwise the names must be equal.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn role_of(c: Conversation) -> Role {
    match c {
        Conversation::Main => Role::Main,
        Conversation::Dns => Role::Dns,
    }
}

fn applies(hop: &HopPlan, mode: Option<ProxyMode>) -> bool {
    hop.proxy.is_none_or(|want| Some(want) == mode)
}

/// The conversation role of a step, if it belongs to one.
fn step_role(journey: &Journey, step: &Step) -> Option<Role> {
    step.conversation.map(|c| journey.conversations[c].role)
}

/// Which packet a step is about: its conversation, its way, and the (inner) packet's IPv4
/// identification, which no node, NAT or VXLAN changes.
type PacketKey = (usize, Way, Option<u16>);

/// One packet's walk: the steps of one IPv4 packet of a conversation going one way (its
/// captures on every interface, inside VXLAN too, the rewrites of it and its walks through the
/// nodes' rules), in journey order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    pub conversation: usize,
    pub way: Way,
    /// The packet's IPv4 identification.
    pub ip_id: Option<u16>,
    /// Indices into [`Journey::steps`], increasing.
    pub steps: Vec<usize>,
}

/// Splits a journey into packet walks, ordered by their first step.
///
/// A capture belongs to the packet with its conversation, way and IPv4 identification. The
/// kernel reuses identifications (Linux sends a SYN-ACK, and every datagram of an unconnected
/// UDP socket, with identification 0), so one that shows up again at a capture point (an
/// interface and a direction) its packet already crossed is a new packet: the capture joins
/// the most recent packet with that key that has not crossed that point yet, or starts one.
/// A rewrite belongs to the packet of the capture that shows it (the step after it); a rule
/// walk to the packet with its identification last captured in its node (or, when the trace
/// gave no identification, to the capture it follows).
pub fn walks(journey: &Journey) -> Vec<Walk> {
    let mut walks: Vec<Walk> = Vec::new();
    let mut crossed: Vec<HashSet<(&str, &str, bool)>> = Vec::new();
    let mut by_key: HashMap<PacketKey, Vec<usize>> = HashMap::new();
    let mut last_in_node: HashMap<(PacketKey, &str), usize> = HashMap::new();
    let mut last_packet: Option<(PacketKey, usize)> = None;
    let mut rewrites: Vec<usize> = Vec::new();
    let new_walk = |walks: &mut Vec<Walk>, crossed: &mut Vec<_>, key: PacketKey| {
        walks.push(Walk {
            conversation: key.0,
            way: key.1,
            ip_id: key.2,
            steps: Vec::new(),
        });
        crossed.push(HashSet::new());
        walks.len() - 1
    };
    for (i, step) in journey.steps.iter().enumerate() {
        let (Some(conv), Some(way)) = (step.conversation, step.way) else {
            continue;
        };
        match &step.kind {
            StepKind::Packet(p) => {
                let key = (conv, way, p.ip_id);
                let point = (step.netns.as_str(), p.iface.as_str(), p.outgoing);
                let list = by_key.entry(key).or_default();
                let w = match list.iter().rev().find(|&&w| !crossed[w].contains(&point)) {
                    Some(&w) => w,
                    None => {
                        let w = new_walk(&mut walks, &mut crossed, key);
                        list.push(w);
                        w
                    }
                };
                crossed[w].insert(point);
                for r in rewrites.drain(..) {
                    if journey.steps[r].conversation == Some(conv)
                        && journey.steps[r].way == Some(way)
                    {
                        walks[w].steps.push(r);
                    }
                }
                walks[w].steps.push(i);
                last_in_node.insert((key, step.netns.as_str()), w);
                last_packet = Some((key, w));
            }
            StepKind::Nat(_) => rewrites.push(i),
            StepKind::Rule(e) => {
                let w = match e.ip_id {
                    Some(id) => {
                        let key = (conv, way, Some(id));
                        match last_in_node.get(&(key, step.netns.as_str())) {
                            Some(&w) => w,
                            None => match by_key.get(&key).and_then(|l| l.last()) {
                                Some(&w) => w,
                                None => {
                                    let w = new_walk(&mut walks, &mut crossed, key);
                                    by_key.entry(key).or_default().push(w);
                                    w
                                }
                            },
                        }
                    }
                    None => match last_packet {
                        Some(((c, wy, _), w)) if c == conv && wy == way => w,
                        _ => continue,
                    },
                };
                walks[w].steps.push(i);
            }
        }
    }
    for w in &mut walks {
        w.steps.sort_unstable();
    }
    walks.retain(|w| !w.steps.is_empty());
    walks.sort_by_key(|w| w.steps[0]);
    walks
}

/// The packet a run of hops was looked for along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketUsed {
    pub conversation: Conversation,
    /// Its steps (indices into [`Journey::steps`]).
    pub steps: Vec<usize>,
    /// Its place among the packets of its conversations going that way (1 is the first), and
    /// how many there were.
    pub nth: usize,
    pub of: usize,
    pub ip_id: Option<u16>,
}

/// The result of matching one list of hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// For each applicable hop, the index of the step it matched, if it did.
    pub hops: Vec<(HopPlan, Option<usize>)>,
    /// For each run of consecutive hops of one conversation that was looked for (up to the
    /// first that failed), the packet it was matched along: the one that matched it, or, for
    /// the run that failed, the one that matched the most of it.
    pub packets: Vec<PacketUsed>,
}

impl Matched {
    pub fn first_missing(&self) -> Option<&HopPlan> {
        self.hops.iter().find(|(_, m)| m.is_none()).map(|(h, _)| h)
    }
}

/// Greedy earliest embedding of `hops` into the steps of `walk` after step `after`: the step
/// each hop matched, up to the first that matched none.
fn embed(hops: &[&HopPlan], walk: &Walk, after: Option<usize>, journey: &Journey) -> Vec<usize> {
    let mut steps = walk
        .steps
        .iter()
        .copied()
        .filter(|&i| after.is_none_or(|a| i > a));
    let mut out = Vec::new();
    for hop in hops {
        match steps.find(|&i| hop_matches(&hop.kind, &journey.steps[i])) {
            Some(i) => out.push(i),
            None => break,
        }
    }
    out
}

/// Matches `hops` in order against the steps going `way`: each run of consecutive hops of one
/// conversation along one packet of it (see [`walks`]), the first packet that has them all
/// (the one whose last matched step comes first), each run after the steps the run before it
/// matched.
pub fn match_path(
    hops: &[HopPlan],
    way: Way,
    mode: Option<ProxyMode>,
    journey: &Journey,
) -> Matched {
    let applicable: Vec<&HopPlan> = hops.iter().filter(|h| applies(h, mode)).collect();
    let walks = walks(journey);
    let mut after: Option<usize> = None;
    let mut out = Vec::new();
    let mut packets = Vec::new();
    let mut lost = false;
    for run in applicable.chunk_by(|a, b| a.conversation == b.conversation) {
        if lost {
            out.extend(run.iter().map(|h| ((*h).clone(), None)));
            continue;
        }
        let conversation = run[0].conversation;
        let role = role_of(conversation);
        let candidates: Vec<&Walk> = walks
            .iter()
            .filter(|w| w.way == way && journey.conversations[w.conversation].role == role)
            .collect();
        // (matched steps, candidate index): complete embeddings ending first, otherwise the
        // longest partial one, the earliest packet on ties.
        let mut best: Option<(Vec<usize>, usize)> = None;
        for (n, w) in candidates.iter().enumerate() {
            let got = embed(run, w, after, journey);
            let better = match &best {
                None => true,
                Some((b, _)) => {
                    let (done, best_done) = (got.len() == run.len(), b.len() == run.len());
                    match (done, best_done) {
                        (true, true) => got.last() < b.last(),
                        (true, false) => true,
                        (false, true) => false,
                        (false, false) => got.len() > b.len(),
                    }
                }
            };
            if better {
                best = Some((got, n));
            }
        }
        let got = match best {
            Some((got, n)) => {
                let w = candidates[n];
                packets.push(PacketUsed {
                    conversation,
                    steps: w.steps.clone(),
                    nth: n + 1,
                    of: candidates.len(),
                    ip_id: w.ip_id,
                });
                got
            }
            None => Vec::new(),
        };
        for (k, hop) in run.iter().enumerate() {
            out.push(((*hop).clone(), got.get(k).copied()));
        }
        if got.len() < run.len() {
            lost = true;
        } else {
            after = got.last().copied().or(after);
        }
    }
    Matched { hops: out, packets }
}

/// Checks every hop expectation; `None` when all hold, otherwise the failure for people: the
/// expected and observed paths side by side, where the packet was last seen and the last rule
/// it hit.
pub fn check(expect: &HopsExpect, mode: Option<ProxyMode>, journey: &Journey) -> Option<String> {
    let mut out = String::new();
    for (hops, way, what) in [
        (&expect.forward, Way::Forward, "expect.hops"),
        (&expect.reply, Way::Reply, "expect.reply"),
    ] {
        let matched = match_path(hops, way, mode, journey);
        if let Some(missing) = matched.first_missing() {
            let _ = writeln!(
                out,
                "{what}: `{}` (line {}, column {}) was not observed{}",
                missing.label,
                missing.location.line,
                missing.location.column,
                match matched.hops.iter().rev().find_map(|(h, m)| m.map(|_| h)) {
                    Some(prev) if prev.conversation == missing.conversation => {
                        format!(" after `{}` on the same packet", prev.label)
                    }
                    Some(prev) => format!(" after `{}`", prev.label),
                    None => String::new(),
                }
            );
            out += &side_by_side(&matched, way, journey);
            out += &last_seen(journey, way);
        }
    }
    for hop in expect.avoid.iter().filter(|h| applies(h, mode)) {
        if let Some(step) = journey.steps.iter().find(|s| {
            step_role(journey, s).is_some_and(|r| r != Role::Other) && hop_matches(&hop.kind, s)
        }) {
            let _ = writeln!(
                out,
                "expect.avoid: `{}` (line {}, column {}) was observed: {step}",
                hop.label, hop.location.line, hop.location.column
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether a step is worth a line in a path shown to people: packets and rewrites, and rules
/// that decided something (not `continue`, not a jump to another chain, not a chain's return).
pub fn shown(step: &Step) -> bool {
    match &step.kind {
        StepKind::Packet(_) | StepKind::Nat(_) => true,
        StepKind::Rule(e) => match e.kind {
            TraceKind::Rule => e.verdict.as_deref().is_some_and(|v| {
                v != "continue" && !v.starts_with("jump ") && !v.starts_with("goto ")
            }),
            TraceKind::Policy => true,
            _ => false,
        },
    }
}

/// Most observed lines shown side by side.
const MAX_ROWS: usize = 60;

fn side_by_side(matched: &Matched, way: Way, journey: &Journey) -> String {
    let t0 = journey.steps.first().map(|s| s.ts).unwrap_or_default();
    // Observed rows: the steps of the packets the hops were looked for along.
    let mut rows: Vec<usize> = matched
        .packets
        .iter()
        .flat_map(|p| p.steps.iter().copied())
        .filter(|&i| shown(&journey.steps[i]) || matched.hops.iter().any(|(_, m)| *m == Some(i)))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    let packets: Vec<String> = matched
        .packets
        .iter()
        .map(|p| {
            format!(
                "{}packet {} of {}{}",
                match p.conversation {
                    Conversation::Dns => "dns ",
                    Conversation::Main => "",
                },
                p.nth,
                p.of,
                p.ip_id
                    .map(|id| format!(" (IPv4 id {id:#06x})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let along = if packets.is_empty() {
        String::new()
    } else {
        format!(", along one packet: {}", packets.join(", "))
    };
    let width = matched
        .hops
        .iter()
        .map(|(h, _)| h.label.chars().count() + 2)
        .max()
        .unwrap_or(0)
        .clamp(10, 48);
    let mut out = String::new();
    let _ = writeln!(out, "  {:<width$}   observed ({way}){along}", "expected");
    let mut pending = matched.hops.iter().peekable();
    let mut printed = 0;
    for &i in &rows {
        // Hops matched at this step go on its line; unmatched hops wait for the end.
        let mut left = String::new();
        while let Some((h, Some(m))) = pending.peek() {
            if *m > i {
                break;
            }
            let mark = format!("✓ {}", h.label);
            if *m == i {
                left = mark;
                pending.next();
                break;
            }
            pending.next();
        }
        if printed >= MAX_ROWS {
            continue;
        }
        let step = &journey.steps[i];
        let dt = step.ts.saturating_sub(t0);
        let _ = writeln!(
            out,
            "  {left:<width$} | +{}.{:06} {step}",
            dt.as_secs(),
            dt.subsec_micros()
        );
        printed += 1;
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "  {:<width$} | ... {} more steps",
            "",
            rows.len() - MAX_ROWS
        );
    }
    let mut first_missing = true;
    for (h, m) in pending {
        // The first hop not seen is the failure; those after it were not looked for.
        let mark = match m {
            Some(_) => "✓",
            None if first_missing => {
                first_missing = false;
                "✗"
            }
            None => "·",
        };
        let _ = writeln!(out, "  {mark} {:<w$} |", h.label, w = width - 2);
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  {:<width$} | (nothing observed going this way)", "");
    }
    out
}

/// Where the flow's packet (going `way`) was last seen, and the last rule it hit.
pub fn last_seen(journey: &Journey, way: Way) -> String {
    let mine = |s: &&Step| s.way == Some(way) && step_role(journey, s) == Some(Role::Main);
    let mut out = String::new();
    match journey
        .steps
        .iter()
        .rev()
        .filter(mine)
        .find(|s| matches!(s.kind, StepKind::Packet(_)))
    {
        Some(s) => {
            let _ = writeln!(out, "last seen:     {s}");
        }
        None => {
            let _ = writeln!(
                out,
                "last seen:     on no observed hop (no packet of the flow was seen going {way}: what ended it happened in the sending namespace, before its first hop)"
            );
        }
    }
    let last_rule = journey
        .steps
        .iter()
        .rev()
        .filter(mine)
        .filter(|s| shown(s))
        .find_map(|s| match &s.kind {
            StepKind::Rule(e) if e.kind != TraceKind::Return => Some((s, e)),
            _ => None,
        });
    if let Some((s, e)) = last_rule {
        let _ = writeln!(out, "last rule hit: {s}");
        if let Some(rule) = &e.rule {
            let _ = writeln!(out, "               {rule}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use netns_runtime::capture::Captured;
    use netns_runtime::capture::decode::{IPPROTO_TCP, IPPROTO_UDP};
    use netns_runtime::trace::assembly::example::*;
    use netns_runtime::trace::assembly::{FlowHints, assemble};

    use super::*;
    use crate::diag::Location;
    use crate::plan::hops::AddrMatch;

    fn journey() -> Journey {
        assemble(
            &service_over_vxlan(),
            &FlowHints {
                client: "pod-a".into(),
                dns_server: None,
            },
        )
    }

    fn hop(kind: HopKind, label: &str) -> HopPlan {
        HopPlan {
            kind,
            conversation: Conversation::Main,
            proxy: None,
            label: label.into(),
            location: Location { line: 7, column: 9 },
        }
    }

    fn iface(netns: &str, name: &str) -> HopPlan {
        hop(
            HopKind::Iface {
                netns: netns.into(),
                iface: name.into(),
                dir: None,
                src: None,
                dst: None,
            },
            &format!("{netns}/{name}"),
        )
    }

    fn addr(ip: std::net::Ipv4Addr, port: Option<u16>, label: &str) -> AddrMatch {
        AddrMatch {
            addrs: vec![ip],
            port,
            label: label.into(),
        }
    }

    fn dnat(node: &str, port: u16) -> HopPlan {
        hop(
            HopKind::Dnat {
                node: node.into(),
                to: addr(POD_B, Some(port), "pod-b"),
            },
            &format!("{node} dnat pod-b:{port}"),
        )
    }

    fn vxlan(vni: u32) -> HopPlan {
        hop(
            HopKind::Vxlan {
                at: Some(("node1".into(), "eth0".into())),
                vni: Some(vni),
                port: Some(8472),
                outer: Some((addr(NODE1, None, "node1"), addr(NODE2, None, "node2"))),
            },
            &format!("node1/eth0 vxlan vni={vni}"),
        )
    }

    fn forward(dnat_hop: HopPlan, vxlan_hop: HopPlan) -> HopsExpect {
        HopsExpect {
            forward: vec![
                iface("pod-a", "eth0"),
                iface("node1", "cni0"),
                dnat_hop,
                vxlan_hop,
                iface("node2", "flannel.1"),
                iface("pod-b", "eth0"),
            ],
            reply: vec![
                iface("pod-b", "eth0"),
                hop(
                    HopKind::UnDnat {
                        node: "node1".into(),
                        to: addr(VIP, Some(80), "svc/myapp:80"),
                    },
                    "node1 undnat svc/myapp:80",
                ),
                hop(
                    HopKind::Iface {
                        netns: "pod-a".into(),
                        iface: "eth0".into(),
                        dir: Some(Dir::In),
                        src: Some(addr(VIP, Some(80), "svc/myapp:80")),
                        dst: None,
                    },
                    "pod-a/eth0 in src=svc/myapp:80",
                ),
            ],
            avoid: Vec::new(),
        }
    }

    #[test]
    fn the_path_taken_matches() {
        let j = journey();
        assert_eq!(
            check(&forward(dnat("node1", 8080), vxlan(1)), None, &j),
            None
        );
    }

    #[test]
    fn a_wrong_vni_fails_side_by_side() {
        let failure = check(&forward(dnat("node1", 8080), vxlan(2)), None, &journey())
            .expect("vni 2 was never seen");
        assert!(
            failure.starts_with(
                "expect.hops: `node1/eth0 vxlan vni=2` (line 7, column 9) was not observed after `node1 dnat pod-b:8080`"
            ),
            "{failure}"
        );
        assert!(failure.contains("✓ node1 dnat pod-b:8080"), "{failure}");
        assert!(failure.contains("✗ node1/eth0 vxlan vni=2"), "{failure}");
        assert!(failure.contains("· pod-b/eth0"), "{failure}");
        assert!(
            failure.contains("| +0.000021 node1/eth0 out vxlan vni 1"),
            "{failure}"
        );
        assert!(
            failure.contains("last seen:     pod-b/eth0 in"),
            "{failure}"
        );
        assert!(
            failure.contains("last rule hit: node1 ip nat KUBE-SEP-SXIVWICOYRO3J4NJ accept"),
            "{failure}"
        );
    }

    #[test]
    fn a_wrong_dnat_target_or_node_fails() {
        let j = journey();
        let f = check(&forward(dnat("node1", 9090), vxlan(1)), None, &j).expect("wrong port");
        assert!(f.contains("`node1 dnat pod-b:9090`"), "{f}");
        let f = check(&forward(dnat("node2", 8080), vxlan(1)), None, &j).expect("wrong node");
        assert!(f.contains("`node2 dnat pod-b:8080`"), "{f}");
    }

    #[test]
    fn order_matters() {
        let mut e = forward(dnat("node1", 8080), vxlan(1));
        e.forward.swap(0, 5);
        assert!(check(&e, None, &journey()).is_some());
    }

    /// The frame with its (inner, for VXLAN) IPv4 identification set to `id`, its TCP flags
    /// (for TCP) to `flags`, `us` microseconds later.
    fn later(mut c: Captured, id: u16, flags: u8, us: u64) -> Captured {
        let vxlan = c.frame[23] == IPPROTO_UDP && c.frame[36..38] == 8472u16.to_be_bytes();
        let ip = if vxlan { 14 + 20 + 8 + 8 + 14 } else { 14 };
        c.frame[ip + 4..ip + 6].copy_from_slice(&id.to_be_bytes());
        if c.frame[ip + 9] == IPPROTO_TCP {
            c.frame[ip + 20 + 13] = flags;
        }
        c.ts += Duration::from_micros(us);
        c
    }

    /// The connection of [`service_over_vxlan`], with the client's ACK (IPv4 id 0x1235) taking
    /// the same way 100 µs after the SYN: every hop of the forward path is seen twice, the
    /// rules of nat once (for the first packet only, as conntrack does).
    fn tcp_with_a_later_packet() -> Journey {
        let mut obs = service_over_vxlan();
        let ack: Vec<Captured> = obs.captures[..11]
            .iter()
            .cloned()
            .map(|c| later(c, 0x1235, 0x10, 100))
            .collect();
        obs.captures.extend(ack);
        assemble(
            &obs,
            &FlowHints {
                client: "pod-a".into(),
                dns_server: None,
            },
        )
    }

    #[test]
    fn tcp_hops_out_of_order_fail_though_a_later_packet_has_them() {
        let j = tcp_with_a_later_packet();
        assert_eq!(walks(&j).len(), 3, "SYN, SYN-ACK, ACK");
        // In order, along the SYN: passes, the rules of nat included.
        let mut e = forward(dnat("node1", 8080), vxlan(1));
        e.forward.insert(
            2,
            hop(
                HopKind::Rule {
                    node: "node1".into(),
                    table: None,
                    chain: "KUBE-SEP-*".into(),
                    verdict: Some("accept".into()),
                },
                "node1 chain KUBE-SEP-*",
            ),
        );
        assert_eq!(check(&e, None, &j), None);
        // pod-b/eth0 before the VXLAN hops: the SYN reaches pod-b before the ACK is
        // encapsulated, but no one packet was seen in that order.
        let mut e = forward(dnat("node1", 8080), vxlan(1));
        let pod_b = e.forward.remove(5);
        e.forward.insert(3, pod_b);
        let f = check(&e, None, &j).expect("out of order");
        assert!(
            f.starts_with(
                "expect.hops: `node1/eth0 vxlan vni=1` (line 7, column 9) was not observed after `pod-b/eth0` on the same packet\n"
            ),
            "{f}"
        );
        assert!(f.contains("✓ pod-b/eth0"), "{f}");
        assert!(f.contains("✗ node1/eth0 vxlan vni=1"), "{f}");
        assert!(f.contains("· node2/flannel.1"), "{f}");
        assert!(
            f.contains("observed (forward), along one packet: packet 1 of 2 (IPv4 id 0x1234)"),
            "{f}"
        );
        // The rows are the SYN's: the ACK's captures are not shown.
        assert!(f.contains("| +0.000021 node1/eth0 out vxlan"), "{f}");
        assert!(!f.contains("| +0.0001"), "{f}");
        // The same hops along the ACK alone still fail: order is per packet, not per flow.
        let mut e = forward(dnat("node1", 8080), vxlan(1));
        e.forward.swap(0, 5);
        assert!(check(&e, None, &j).is_some());
    }

    /// pod-a sends two datagrams to pod-b:5353 over VXLAN from an unconnected socket (IPv4 id
    /// 0 both), the second after the first has arrived, and gets one answer to each.
    fn udp_two_datagrams() -> Journey {
        use netns_runtime::capture::decode::{ETHERTYPE_IPV4, build};
        let m = netns_runtime::topology::Mac([2, 0, 0, 0, 0, 1]);
        let frame = |src: (std::net::Ipv4Addr, u16), dst: (std::net::Ipv4Addr, u16)| {
            let mut ip = build::ipv4(
                src.0,
                dst.0,
                IPPROTO_UDP,
                64,
                &build::udp(src.1, dst.1, b"x"),
            );
            ip[4..6].copy_from_slice(&[0, 0]);
            build::ethernet(m, m, ETHERTYPE_IPV4, &ip)
        };
        let vx = |inner: &[u8], from, to| {
            let udp = build::udp(40123, 8472, &build::vxlan(1, inner));
            build::ethernet(
                m,
                m,
                ETHERTYPE_IPV4,
                &build::ipv4(from, to, IPPROTO_UDP, 64, &udp),
            )
        };
        let at = |netns: &str, iface: &str, us: u64, outgoing: bool, frame: Vec<u8>| Captured {
            netns: netns.into(),
            iface: iface.into(),
            ts: Duration::from_micros(1_000_000 + us),
            outgoing,
            orig_len: frame.len(),
            frame,
        };
        let (a, b) = ((POD_A, 40001), (POD_B, 5353));
        let (there, back) = (frame(a, b), frame(b, a));
        let mut captures = Vec::new();
        for base in [0, 100] {
            captures.extend([
                at("pod-a", "eth0", base, true, there.clone()),
                at("node1", "veth-a", base + 1, false, there.clone()),
                at("node1", "cni0", base + 1, false, there.clone()),
                at("node1", "flannel.1", base + 2, true, there.clone()),
                at("node1", "eth0", base + 3, true, vx(&there, NODE1, NODE2)),
                at("node2", "eth0", base + 4, false, vx(&there, NODE1, NODE2)),
                at("node2", "flannel.1", base + 4, false, there.clone()),
                at("node2", "veth-b", base + 5, true, there.clone()),
                at("pod-b", "eth0", base + 6, false, there.clone()),
                at("pod-b", "eth0", base + 10, true, back.clone()),
                at("node2", "veth-b", base + 11, false, back.clone()),
                at("node2", "cni0", base + 11, false, back.clone()),
                at("node2", "flannel.1", base + 12, true, back.clone()),
                at("node2", "eth0", base + 13, true, vx(&back, NODE2, NODE1)),
                at("node1", "eth0", base + 14, false, vx(&back, NODE2, NODE1)),
                at("node1", "flannel.1", base + 14, false, back.clone()),
                at("node1", "veth-a", base + 15, true, back.clone()),
                at("pod-a", "eth0", base + 16, false, back.clone()),
            ]);
        }
        let obs = netns_runtime::trace::assembly::Observation {
            captures,
            nodes: vec!["node1".into(), "node2".into()],
            ..Default::default()
        };
        assemble(
            &obs,
            &FlowHints {
                client: "pod-a".into(),
                dns_server: None,
            },
        )
    }

    #[test]
    fn udp_hops_out_of_order_fail_though_a_later_datagram_has_them() {
        let j = udp_two_datagrams();
        assert_eq!(j.conversations.len(), 1);
        // Four datagrams, though all have IPv4 id 0: each crosses pod-a/eth0 once.
        let w = walks(&j);
        assert_eq!(w.len(), 4, "{w:#?}");
        assert!(w.iter().all(|w| w.steps.len() == 9), "{w:#?}");
        let in_order = HopsExpect {
            forward: vec![iface("pod-a", "eth0"), vxlan(1), iface("pod-b", "eth0")],
            reply: vec![iface("pod-b", "eth0"), iface("pod-a", "eth0")],
            avoid: Vec::new(),
        };
        assert_eq!(check(&in_order, None, &j), None);
        let mut e = in_order.clone();
        e.forward.swap(1, 2);
        let f = check(&e, None, &j).expect("out of order");
        assert!(
            f.starts_with("expect.hops: `node1/eth0 vxlan vni=1` (line 7, column 9) was not observed after `pod-b/eth0` on the same packet"),
            "{f}"
        );
        assert!(
            f.contains("along one packet: packet 1 of 2 (IPv4 id 0x0000)"),
            "{f}"
        );
        let mut e = in_order;
        e.reply.swap(0, 1);
        let f = check(&e, None, &j).expect("reply out of order");
        assert!(f.starts_with("expect.reply: `pod-b/eth0`"), "{f}");
    }

    #[test]
    fn avoid_and_rules_and_modes() {
        let j = journey();
        let mut e = HopsExpect {
            avoid: vec![hop(
                HopKind::Vxlan {
                    at: None,
                    vni: None,
                    port: None,
                    outer: None,
                },
                "vxlan",
            )],
            ..HopsExpect::default()
        };
        let f = check(&e, None, &j).expect("vxlan was seen");
        assert!(
            f.starts_with(
                "expect.avoid: `vxlan` (line 7, column 9) was observed: node1/eth0 out vxlan vni 1"
            ),
            "{f}"
        );
        e.avoid = vec![iface("underlay", "br0")];
        assert_eq!(check(&e, None, &j), None);

        let chain = |pattern: &str, verdict: &str| {
            hop(
                HopKind::Rule {
                    node: "node1".into(),
                    table: Some("nat".into()),
                    chain: pattern.into(),
                    verdict: Some(verdict.into()),
                },
                pattern,
            )
        };
        e.avoid.clear();
        e.forward = vec![
            chain("KUBE-SERVICES", "jump KUBE-SVC-*"),
            chain(
                "KUBE-SVC-XPGD46QRK7WJZT7O",
                "jump KUBE-SEP-SXIVWICOYRO3J4NJ",
            ),
            chain("KUBE-SEP-*", "accept"),
        ];
        assert_eq!(check(&e, None, &j), None);
        e.forward = vec![chain("KUBE-SEP-*", "drop")];
        assert!(check(&e, None, &j).is_some());
        // A hop of the other proxy mode is not checked.
        e.forward[0].proxy = Some(ProxyMode::Nftables);
        assert_eq!(check(&e, Some(ProxyMode::Iptables), &j), None);
        assert!(check(&e, Some(ProxyMode::Nftables), &j).is_some());
    }

    #[test]
    fn dns_hops_need_a_dns_conversation() {
        let mut e = HopsExpect {
            forward: vec![iface("pod-a", "eth0")],
            ..HopsExpect::default()
        };
        e.forward[0].conversation = Conversation::Dns;
        let f = check(&e, None, &journey()).expect("no DNS exchange");
        assert!(f.contains("`pod-a/eth0`"), "{f}");
    }
}
