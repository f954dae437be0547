//! A flow's journey for people: the terminal walk-through `podpath trace` prints, and the
//! Markdown (with a mermaid `sequenceDiagram`) kept in reports. Pure: no I/O.
//!
//! Each conversation is shown as its first packet's way there and the first answer's way back
//! (for TCP: the SYN and the SYN-ACK), step by step; the packets after those are counted, not
//! shown (they are all in the pcapng).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use netns_runtime::trace::Tuple;
use netns_runtime::trace::assembly::{Journey, Observation, Role, Step, StepKind, Way};
use netns_runtime::trace::nftrace::TraceKind;

use crate::hop_match::shown;
use crate::plan::{FlowPlan, Plan};
use crate::verdict::target_text;

/// Names of the cluster's addresses: pods, nodes (and which of their interfaces), Services,
/// the external host.
pub struct Names {
    map: HashMap<Ipv4Addr, String>,
}

impl Names {
    pub fn new(plan: &Plan) -> Names {
        let mut map = HashMap::new();
        let topo = &plan.topology;
        for n in &topo.nodes {
            map.insert(n.eth0.addr.addr(), n.name.clone());
            map.insert(
                n.bridge.addr.addr(),
                format!("{} {}", n.name, n.bridge.name),
            );
            if let Some(v) = &n.network.vxlan {
                map.insert(v.addr.addr(), format!("{} {}", n.name, v.name));
            }
        }
        for p in &topo.pods {
            map.insert(p.eth0.addr.addr(), p.name.clone());
        }
        if let Some(e) = &topo.external {
            map.insert(e.eth0.addr.addr(), e.name.clone());
        }
        for s in &plan.services {
            if let Some(ip) = s.cluster_ip {
                let name = if s.namespace == "default" {
                    format!("svc/{}", s.name)
                } else {
                    format!("svc/{}/{}", s.namespace, s.name)
                };
                map.insert(ip, name);
            }
        }
        Names { map }
    }

    /// `pod-b` for a pod's address, `None` for an unknown one.
    pub fn of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.map.get(&ip).map(String::as_str)
    }

    /// `10.244.2.3:8080 (pod-b)`.
    pub fn endpoint(&self, ip: Ipv4Addr, port: Option<u16>) -> String {
        let addr = match port {
            Some(p) => format!("{ip}:{p}"),
            None => ip.to_string(),
        };
        match self.of(ip) {
            Some(name) => format!("{addr} ({name})"),
            None => addr,
        }
    }

    /// `10.244.1.2:40000 (pod-a) > 10.96.0.20:80 (svc/myapp) tcp`.
    pub fn tuple(&self, t: &Tuple) -> String {
        let ports = matches!(t.proto, 6 | 17 | 132);
        let p = |port: u16| ports.then_some(port);
        format!(
            "{} > {} {}",
            self.endpoint(t.src, p(t.sport)),
            self.endpoint(t.dst, p(t.dport)),
            t.proto_name()
        )
    }
}

/// One line of a walk-through.
struct Line {
    ts: Option<std::time::Duration>,
    netns: String,
    text: String,
    /// For the diagram.
    event: Event,
}

enum Event {
    /// A packet left `netns` by an interface.
    Sent,
    /// A packet entered `netns`.
    Received { summary: String },
    /// Something happened inside `netns`.
    Inside(String),
}

/// The sections of a journey: per conversation, its first packet there and its first answer
/// back, then how many packets followed.
struct Section {
    title: String,
    lines: Vec<Line>,
}

fn packet_text(names: &Names, step: &Step) -> (String, String) {
    let StepKind::Packet(p) = &step.kind else {
        return (String::new(), String::new());
    };
    let dir = if p.outgoing { "out" } else { "in " };
    let what = match (&p.tuple, &p.vxlan) {
        (Some(t), Some(v)) => format!(
            "VXLAN vni {} {} > {} carrying {}{}",
            v.vni,
            v.outer_src,
            v.outer_dst,
            names.tuple(t),
            flags(p.tcp_flags.as_deref())
        ),
        // ICMP: what kind (echo, port unreachable...) and the packet an error quotes.
        (Some(t), None) if t.proto == 1 => format!(
            "{} > {} {}",
            names.endpoint(t.src, None),
            names.endpoint(t.dst, None),
            p.summary.find("icmp").map_or("icmp", |at| &p.summary[at..])
        ),
        (Some(t), None) => format!("{}{}", names.tuple(t), flags(p.tcp_flags.as_deref())),
        _ => p.summary.clone(),
    };
    let what = match &p.dns {
        Some(dns) => format!("{what} [DNS {dns}]"),
        None => what,
    };
    (format!("{:<10} {dir} {what}", p.iface), what)
}

fn flags(f: Option<&str>) -> String {
    f.map(|f| format!(" {f}")).unwrap_or_default()
}

/// A run of trace events of one packet's walk through one table, as one line:
/// `ip nat PREROUTING > KUBE-SERVICES > KUBE-SVC-X > KUBE-SEP-Y: accept`.
fn walk_text(events: &[&Step]) -> Option<String> {
    let mut chains: Vec<&str> = Vec::new();
    let mut verdict = None;
    let mut rule = None;
    let mut table = String::new();
    for s in events {
        let StepKind::Rule(e) = &s.kind else { continue };
        table = format!("{} {}", e.family, e.table);
        if !chains.contains(&e.chain.as_str()) {
            chains.push(&e.chain);
        }
        if shown(s) {
            if let Some(v) = &e.verdict
                && !v.starts_with("jump")
                && !v.starts_with("goto")
            {
                verdict = Some(match e.kind {
                    TraceKind::Policy => format!("policy {v}"),
                    _ => v.clone(),
                });
            }
            // The rule that decided, or none when the chain's policy did.
            rule = match e.kind {
                TraceKind::Rule => e.rule.clone(),
                _ => None,
            };
        }
    }
    if chains.is_empty() {
        return None;
    }
    let mut text = format!("{table} {}", chains.join(" > "));
    if let Some(v) = verdict {
        text += &format!(": {v}");
    }
    if let Some(r) = rule {
        text += &format!("  [{r}]");
    }
    Some(text)
}

/// What a namespace did between a packet's previous capture in it and this one leaving: a
/// routing decision, or its bridge forwarding the frame to a port.
fn decision(prev: Option<&(String, bool)>, netns: &str, iface: &str) -> Option<String> {
    let (prev_iface, prev_out) = prev?;
    if prev_iface == iface && !prev_out {
        return None; // In and out by the same port: a hairpin, shown by its rewrites.
    }
    let bridge = if netns == netns_runtime::topology::UNDERLAY_NETNS {
        netns_runtime::topology::UNDERLAY_BRIDGE
    } else {
        "cni0"
    };
    let is_port = iface.starts_with("veth") || netns == netns_runtime::topology::UNDERLAY_NETNS;
    if is_port && iface != bridge {
        Some(format!("bridge {bridge} forwards it to its port {iface}"))
    } else if !prev_out {
        Some(format!("routing: out by {iface}"))
    } else {
        None
    }
}

fn lines_of(names: &Names, steps: &[&Step], narrate: bool) -> Vec<Line> {
    let mut out = Vec::new();
    // Per namespace, the interface and direction of the packet's last capture there.
    let mut last: HashMap<String, (String, bool)> = HashMap::new();
    let mut i = 0;
    while i < steps.len() {
        let step = steps[i];
        match &step.kind {
            StepKind::Packet(p) => {
                if narrate
                    && p.outgoing
                    && let Some(text) = decision(last.get(&step.netns), &step.netns, &p.iface)
                {
                    out.push(Line {
                        ts: None,
                        netns: step.netns.clone(),
                        text: text.clone(),
                        event: Event::Inside(text),
                    });
                }
                last.insert(step.netns.clone(), (p.iface.clone(), p.outgoing));
                let (text, summary) = packet_text(names, step);
                out.push(Line {
                    ts: Some(step.ts),
                    netns: step.netns.clone(),
                    text,
                    event: if p.outgoing {
                        Event::Sent
                    } else {
                        Event::Received { summary }
                    },
                });
                i += 1;
            }
            StepKind::Nat(n) => {
                let (from, to) = n.rewrite();
                let text = format!(
                    "{} {} -> {}",
                    n.kind,
                    names.endpoint(*from.ip(), Some(from.port())),
                    names.endpoint(*to.ip(), Some(to.port()))
                );
                out.push(Line {
                    ts: None,
                    netns: step.netns.clone(),
                    text: text.clone(),
                    event: Event::Inside(text),
                });
                i += 1;
            }
            StepKind::Rule(first) => {
                // One line per table walked by this packet in this namespace.
                let mut j = i;
                while j < steps.len()
                    && matches!(&steps[j].kind, StepKind::Rule(e)
                        if e.netns == first.netns && e.table == first.table && e.family == first.family && e.id == first.id)
                {
                    j += 1;
                }
                if let Some(text) = walk_text(&steps[i..j]) {
                    out.push(Line {
                        ts: None,
                        netns: step.netns.clone(),
                        text: text.clone(),
                        event: Event::Inside(text),
                    });
                }
                i = j.max(i + 1);
            }
        }
    }
    out
}

fn sections(journey: &Journey, names: &Names, narrate: bool) -> (Vec<Section>, Vec<String>) {
    let mut sections = Vec::new();
    let mut tails = Vec::new();
    for (c, conv) in journey.conversations.iter().enumerate() {
        if conv.role == Role::Other {
            continue;
        }
        let steps: Vec<&Step> = journey
            .steps
            .iter()
            .filter(|s| s.conversation == Some(c))
            .collect();
        // The first packet there: forward steps before the first reply step; the answer: reply
        // steps from there to the next forward packet.
        let first_reply = steps
            .iter()
            .position(|s| s.way == Some(Way::Reply))
            .unwrap_or(steps.len());
        let next_forward = steps[first_reply..]
            .iter()
            .position(|s| s.way == Some(Way::Forward) && matches!(s.kind, StepKind::Packet(_)))
            .map_or(steps.len(), |p| first_reply + p);
        let what = match conv.role {
            Role::Dns => "DNS question",
            _ => "flow",
        };
        let there: Vec<&Step> = steps[..first_reply]
            .iter()
            .copied()
            .filter(|s| s.way == Some(Way::Forward))
            .collect();
        let back: Vec<&Step> = steps[first_reply..next_forward]
            .iter()
            .copied()
            .filter(|s| s.way == Some(Way::Reply))
            .collect();
        sections.push(Section {
            title: format!("{what} {}: there", names.tuple(&conv.first)),
            lines: lines_of(names, &there, narrate),
        });
        if back.is_empty() {
            sections.push(Section {
                title: format!("{what}: no answer came back"),
                lines: Vec::new(),
            });
        } else {
            sections.push(Section {
                title: format!("{what}: back"),
                lines: lines_of(names, &back, narrate),
            });
        }
        let later = steps[next_forward..]
            .iter()
            .filter(|s| matches!(&s.kind, StepKind::Packet(p) if p.outgoing && s.netns == conv_client(journey, c)))
            .count();
        let later_back = steps[next_forward..]
            .iter()
            .filter(|s| s.way == Some(Way::Reply) && matches!(&s.kind, StepKind::Packet(p) if !p.outgoing && s.netns == conv_client(journey, c)))
            .count();
        if later + later_back > 0 {
            tails.push(format!(
                "{what} {}: then {later} more packets sent and {later_back} received by {} (all in the capture)",
                names.tuple(&conv.first),
                conv_client(journey, c)
            ));
        }
    }
    (sections, tails)
}

/// The namespace a conversation's first packet was captured in.
fn conv_client(journey: &Journey, c: usize) -> String {
    journey
        .steps
        .iter()
        .find(|s| s.conversation == Some(c) && matches!(s.kind, StepKind::Packet(_)))
        .map(|s| s.netns.clone())
        .unwrap_or_default()
}

fn header(plan: &Plan, flow: &FlowPlan, mode: Option<&str>) -> String {
    let mut s = format!(
        "{} :: {}: {} -> {} ({})",
        plan.name,
        flow.name,
        flow.from,
        flow.target_label,
        target_text(&flow.target)
    );
    if let Some(m) = mode {
        s += &format!(", proxy {m}");
    }
    s
}

/// The journey for a terminal: one line per step, times from the first packet.
pub fn text(
    plan: &Plan,
    flow: &FlowPlan,
    mode: Option<&str>,
    journey: &Journey,
    obs: &Observation,
) -> String {
    let names = Names::new(plan);
    let (sections, tails) = sections(journey, &names, false);
    let t0 = journey
        .steps
        .iter()
        .map(|s| s.ts)
        .filter(|t| !t.is_zero())
        .min()
        .unwrap_or_default();
    let width = journey
        .steps
        .iter()
        .map(|s| s.netns.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = header(plan, flow, mode) + "\n";
    if journey.conversations.iter().all(|c| c.role == Role::Other) {
        out += "\nno packet of the flow was captured\n";
    }
    for section in &sections {
        let _ = writeln!(out, "\n{}", section.title);
        for line in &section.lines {
            let time = match line.ts {
                Some(ts) => {
                    let dt = ts.saturating_sub(t0);
                    format!("+{}.{:06}", dt.as_secs(), dt.subsec_micros())
                }
                None => String::new(),
            };
            let _ = writeln!(out, "  {time:>9}  {:<width$}  {}", line.netns, line.text);
        }
    }
    if !tails.is_empty() {
        out += "\n";
        for t in tails {
            let _ = writeln!(out, "{t}");
        }
    }
    if obs.conntrack.iter().any(|(_, e)| !e.is_empty()) {
        out += "\nconntrack (entries of this flow)\n";
        for (node, line) in flow_entries(journey, obs) {
            let _ = writeln!(out, "  {node:<width$}  {line}");
        }
    }
    for p in &obs.problems {
        let _ = writeln!(out, "warning: {p}");
    }
    out
}

/// The conntrack entries of the journey's conversations, per node.
fn flow_entries(journey: &Journey, obs: &Observation) -> Vec<(String, String)> {
    let tuples: Vec<Tuple> = journey
        .steps
        .iter()
        .filter(|s| {
            s.conversation
                .is_some_and(|c| journey.conversations[c].role != Role::Other)
        })
        .filter_map(|s| match &s.kind {
            StepKind::Packet(p) => p.tuple,
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (node, entries) in &obs.conntrack {
        for e in entries {
            if tuples.iter().any(|t| {
                *t == e.orig || *t == e.reply || t.reversed() == e.orig || t.reversed() == e.reply
            }) {
                out.push((node.clone(), e.to_string()));
            }
        }
    }
    out
}

/// The journey as Markdown: a walk-through per conversation, a mermaid `sequenceDiagram`, and
/// the conntrack entries of the flow.
pub fn markdown(
    plan: &Plan,
    flow: &FlowPlan,
    mode: Option<&str>,
    journey: &Journey,
    obs: &Observation,
    verdict: Option<&str>,
) -> String {
    let names = Names::new(plan);
    let (sections, tails) = sections(journey, &names, true);
    let mut out = format!("# {}\n\n", header(plan, flow, mode));
    if let Some(v) = verdict {
        let _ = writeln!(out, "```text\n{}\n```\n", v.trim_end());
    }
    for section in &sections {
        let _ = writeln!(out, "## {}\n", section.title);
        for (n, line) in section.lines.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. **{}** {}",
                n + 1,
                line.netns,
                md_escape(&line.text)
            );
        }
        out += "\n";
    }
    for t in &tails {
        let _ = writeln!(out, "{t}\n");
    }
    out += "## Sequence\n\n```mermaid\nsequenceDiagram\n";
    let mut participants: Vec<String> = Vec::new();
    for section in &sections {
        for line in &section.lines {
            if !participants.contains(&line.netns) {
                participants.push(line.netns.clone());
            }
        }
    }
    for p in &participants {
        let _ = writeln!(out, "    participant {} as {p}", mermaid_id(p));
    }
    for section in &sections {
        let _ = writeln!(
            out,
            "    Note over {}: {}",
            mermaid_id(&participants.first().cloned().unwrap_or_default()),
            mermaid_text(&section.title)
        );
        let mut sent_from: Option<String> = None;
        for line in &section.lines {
            match &line.event {
                Event::Sent => sent_from = Some(line.netns.clone()),
                Event::Received { summary } => {
                    if let Some(from) = sent_from.take()
                        && from != line.netns
                    {
                        let _ = writeln!(
                            out,
                            "    {}->>{}: {}",
                            mermaid_id(&from),
                            mermaid_id(&line.netns),
                            mermaid_text(summary)
                        );
                    }
                }
                Event::Inside(text) => {
                    let _ = writeln!(
                        out,
                        "    Note over {}: {}",
                        mermaid_id(&line.netns),
                        mermaid_text(text)
                    );
                }
            }
        }
    }
    out += "```\n";
    let entries = flow_entries(journey, obs);
    if !entries.is_empty() {
        out += "\n## Conntrack\n\n```text\n";
        for (node, e) in entries {
            let _ = writeln!(out, "{node}: {e}");
        }
        out += "```\n";
    }
    if !obs.problems.is_empty() {
        out += "\n## Observation problems\n\n";
        for p in &obs.problems {
            let _ = writeln!(out, "- {p}");
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

/// A participant id mermaid accepts: letters, digits and underscores.
fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Message text without what mermaid would read as syntax.
fn mermaid_text(s: &str) -> String {
    s.replace(';', ",").replace('#', "").replace(" > ", " → ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use netns_runtime::trace::assembly::example::service_over_vxlan;
    use netns_runtime::trace::assembly::{FlowHints, assemble};

    use super::*;

    const CASE: &str = "\
cluster: { overlay: vxlan }
nodes: [node1, node2]
pods:
  - { name: pod-a, node: node1 }
  - { name: other, node: node2 }
  - { name: pod-b, node: node2, labels: { app: myapp }, listen: [8080/tcp] }
services:
  - { name: myapp, clusterIP: 10.96.0.20, selector: { app: myapp }, ports: [{ port: 80, targetPort: 8080 }] }
flows:
  - { name: by-service, from: pod-a, to: 'svc/myapp:80', expect: { reach: pod-b } }
";

    fn fixture() -> (Plan, Journey, Observation) {
        let plan = crate::plan::load_str(Path::new("journey.yaml"), CASE).expect("plans");
        let obs = service_over_vxlan();
        let journey = assemble(
            &obs,
            &FlowHints {
                client: "pod-a".into(),
                dns_server: None,
            },
        );
        (plan, journey, obs)
    }

    #[test]
    fn the_terminal_walk_names_every_address_and_step() {
        let (plan, journey, obs) = fixture();
        let text = text(&plan, &plan.flows[0], Some("iptables"), &journey, &obs);
        for want in [
            "journey :: by-service: pod-a -> svc/myapp:80 (10.96.0.20:80/tcp), proxy iptables",
            "flow 10.244.1.2:40000 (pod-a) > 10.96.0.20:80 (svc/myapp) tcp: there",
            "pod-a     eth0       out 10.244.1.2:40000 (pod-a) > 10.96.0.20:80 (svc/myapp) tcp S",
            "ip nat PREROUTING > KUBE-SERVICES > KUBE-SVC-XPGD46QRK7WJZT7O > KUBE-SEP-SXIVWICOYRO3J4NJ: accept",
            "node1     DNAT 10.96.0.20:80 (svc/myapp) -> 10.244.2.3:8080 (pod-b)",
            "node1     eth0       out VXLAN vni 1 172.18.0.2:40123 > 172.18.0.3:8472 carrying 10.244.1.2:40000 (pod-a) > 10.244.2.3:8080 (pod-b) tcp S",
            "flow: back",
            "node1     un-DNAT 10.244.2.3:8080 (pod-b) -> 10.96.0.20:80 (svc/myapp)",
            "pod-a     eth0       in  10.96.0.20:80 (svc/myapp) > 10.244.1.2:40000 (pod-a) tcp S.",
            "conntrack (entries of this flow)",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        // Way there before way back, DNAT before the packet leaves node1.
        let at = |s: &str| text.find(s).unwrap();
        assert!(at("node1     DNAT") < at("node1     flannel.1  out"));
        assert!(at("flow: back") < at("un-DNAT"));
    }

    #[test]
    fn the_markdown_has_the_walk_and_a_sequence_diagram() {
        let (plan, journey, obs) = fixture();
        let md = markdown(
            &plan,
            &plan.flows[0],
            None,
            &journey,
            &obs,
            Some("verdict: pass"),
        );
        for want in [
            "# journey :: by-service",
            "```text\nverdict: pass\n```",
            "1. **pod-a** eth0       out 10.244.1.2:40000 (pod-a) > 10.96.0.20:80 (svc/myapp) tcp S",
            "```mermaid\nsequenceDiagram\n",
            "    participant pod_a as pod-a\n",
            "    participant underlay as underlay\n",
            "    pod_a->>node1: 10.244.1.2:40000 (pod-a) → 10.96.0.20:80 (svc/myapp) tcp S\n",
            "    Note over node1: DNAT 10.96.0.20:80 (svc/myapp) -> 10.244.2.3:8080 (pod-b)\n",
            "    node1->>underlay: VXLAN vni 1",
            "    node1->>pod_a: 10.96.0.20:80 (svc/myapp) → 10.244.1.2:40000 (pod-a) tcp S.\n",
            "## Conntrack",
            "**node1** routing: out by flannel.1",
            "**underlay** bridge br0 forwards it to its port node2",
            "**node2** bridge cni0 forwards it to its port veth-b",
        ] {
            assert!(md.contains(want), "{want:?} missing from:\n{md}");
        }
    }
}
