//! Matching a flow's expected hops against its observed journey. Pure: no I/O.
//!
//! `expect.hops` must appear, in order, among the forward steps of the flow's conversations
//! (the DNS exchange for hops under `dns:`, the flow's own traffic otherwise); `expect.reply`
//! likewise among the reply steps; `expect.avoid` nowhere. Greedy earliest matching finds an
//! ordered embedding whenever one exists.

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
                && p.iface == *iface
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
                .is_none_or(|(ns, iface)| step.netns == *ns && p.iface == *iface)
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

/// The result of matching one list of hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// For each applicable hop, the index of the step it matched, if it did.
    pub hops: Vec<(HopPlan, Option<usize>)>,
}

impl Matched {
    pub fn first_missing(&self) -> Option<&HopPlan> {
        self.hops.iter().find(|(_, m)| m.is_none()).map(|(h, _)| h)
    }
}

/// Matches `hops` in order against the steps going `way`.
pub fn match_path(
    hops: &[HopPlan],
    way: Way,
    mode: Option<ProxyMode>,
    journey: &Journey,
) -> Matched {
    let mut at = 0;
    let mut out = Vec::new();
    let mut lost = false;
    for hop in hops.iter().filter(|h| applies(h, mode)) {
        if lost {
            out.push((hop.clone(), None));
            continue;
        }
        let role = role_of(hop.conversation);
        let found = journey.steps[at..].iter().position(|s| {
            s.way == Some(way) && step_role(journey, s) == Some(role) && hop_matches(&hop.kind, s)
        });
        match found {
            Some(i) => {
                out.push((hop.clone(), Some(at + i)));
                at += i + 1;
            }
            None => {
                out.push((hop.clone(), None));
                lost = true;
            }
        }
    }
    Matched { hops: out }
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
    let roles: Vec<Role> = matched
        .hops
        .iter()
        .map(|(h, _)| role_of(h.conversation))
        .collect();
    let t0 = journey.steps.first().map(|s| s.ts).unwrap_or_default();
    // Observed rows: the steps of this way in the conversations the hops are about.
    let rows: Vec<usize> = journey
        .steps
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            s.way == Some(way)
                && step_role(journey, s).is_some_and(|r| roles.contains(&r) || roles.is_empty())
                && (shown(s) || matched.hops.iter().any(|(_, m)| *m == Some(*i)))
        })
        .map(|(i, _)| i)
        .collect();
    let width = matched
        .hops
        .iter()
        .map(|(h, _)| h.label.chars().count() + 2)
        .max()
        .unwrap_or(0)
        .clamp(10, 48);
    let mut out = String::new();
    let _ = writeln!(out, "  {:<width$}   observed ({way})", "expected");
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
                "last seen:     nowhere (no packet of the flow went {way})"
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
