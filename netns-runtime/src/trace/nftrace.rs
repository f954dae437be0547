//! The netfilter trace of a set of namespaces: every nf_tables rule a traced packet met, with
//! its verdict, the interfaces, and the packet's addresses at that point.
//!
//! - [`enable`] installs the table `ip podpath-trace` in a namespace: base chains on the
//!   `prerouting` and `output` hooks at priority -350 (before raw, conntrack, mangle and NAT)
//!   that set `meta nftrace` on every IPv4 packet entering or leaving from there. The kernel
//!   then reports each rule evaluation of those packets in every nf_tables chain of the
//!   namespace, iptables-nft chains included. The mark does not survive a crossing into
//!   another namespace (a veth clears it), so each namespace to trace needs its own table.
//! - [`TraceSet`] listens to the trace (`NFNLGRP_NFTRACE`) of each namespace on a socket of its
//!   own and turns the kernel's messages ([`wire`]) into [`RuleEvent`]s.
//! - [`RuleBook`] maps the rule handles events carry to the rules' text: `iptables-save` lines
//!   for the tables iptables-nft made, `nft` syntax otherwise.
//!
//! The trace table's own chains are traced too: their `rule continue` and `policy accept`
//! events (table [`TRACE_TABLE`]) mark where a packet entered the namespace's netfilter, before
//! any rewriting; filter them out by table when they are noise.
//!
//! Cost: see `tests/nftrace.rs`, which prints what starting, tracing and stopping take.

pub mod rules;
mod socket;
pub mod wire;

use std::fmt;
use std::os::fd::BorrowedFd;

pub use rules::RuleBook;
pub use socket::{TraceSet, TraceStats};

use super::Tuple;
use crate::tool::{self, ToolError};

/// The table [`enable`] installs, in family `ip`.
pub const TRACE_TABLE: &str = "podpath-trace";

/// What kind of trace event: a rule matched, a chain returned, or a base chain's policy applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceKind {
    Rule,
    Return,
    Policy,
    Other(u32),
}

/// One event of the netfilter trace: a traced packet met a rule (or a chain's end) in one
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEvent {
    /// Name of the namespace (as given to the tracer).
    pub netns: String,
    /// Arrival order within the namespace's trace (the kernel's order of evaluation).
    pub seq: u64,
    /// The kernel's trace id: the same for every event of one packet's walk through one hook.
    pub id: u32,
    /// `ip`, `inet`, `bridge`, `arp`, `netdev` or the number.
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The rule's handle (none for a policy event).
    pub handle: Option<u64>,
    pub kind: TraceKind,
    /// `accept`, `drop`, `continue`, `return`, `jump CHAIN`, `goto CHAIN`, `queue`, `stolen`,
    /// `break`, or none.
    pub verdict: Option<String>,
    /// Input and output interfaces, by name in the event's namespace.
    ///
    /// The kernel sends interfaces and headers with the first event of a packet's walk through
    /// a base chain only; [`TraceSet`] gives the later events of the walk (same `id`) the same.
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: Option<u32>,
    /// The packet's addresses at that point (after any NAT already done to it).
    pub packet: Option<Tuple>,
    /// The IPv4 header's identification field.
    pub ip_id: Option<u16>,
    /// The rule as its ruleset shows it (iptables-save syntax for iptables-nft tables, nft
    /// syntax otherwise), when known.
    pub rule: Option<String>,
}

impl RuleEvent {
    /// The event of trace message `m` of namespace `netns`, `seq`-th of its trace, with its
    /// interfaces named by `name` and no rule text yet.
    pub fn from_message(
        netns: &str,
        seq: u64,
        m: wire::TraceMessage,
        mut name: impl FnMut(u32) -> String,
    ) -> RuleEvent {
        RuleEvent {
            netns: netns.to_string(),
            seq,
            id: m.id,
            family: wire::family_name(m.family),
            table: m.table,
            chain: m.chain,
            handle: m.handle,
            kind: m.kind,
            verdict: m.verdict.map(|v| v.to_string()),
            iif: m.iif.map(&mut name),
            oif: m.oif.map(&mut name),
            mark: m.mark,
            packet: m.packet,
            ip_id: m.ip_id,
            rule: None,
        }
    }
}

impl fmt::Display for TraceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceKind::Rule => f.write_str("rule"),
            TraceKind::Return => f.write_str("return"),
            TraceKind::Policy => f.write_str("policy"),
            TraceKind::Other(n) => write!(f, "type {n}"),
        }
    }
}

impl fmt::Display for RuleEvent {
    /// One line: where, what, then (after two spaces) the packet, then (after `  # `) the rule:
    ///
    /// `node1 ip nat KUBE-SERVICES rule jump KUBE-SVC-X  iif cni0 10.244.1.2:40000 > 10.96.0.20:80 tcp  # -A KUBE-SERVICES ...`
    ///
    /// Interfaces, mark and packet appear when known; `# handle N` stands for a rule whose text
    /// is not known. A rule event without a handle (the verdict a chain ended with) shows as
    /// `verdict`, as `nft monitor trace` has it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A rule event without a rule is the verdict a chain ended with; `nft monitor trace`
        // calls it so too.
        let kind = match (&self.kind, self.handle) {
            (TraceKind::Rule, None) => "verdict".to_string(),
            (kind, _) => kind.to_string(),
        };
        write!(
            f,
            "{} {} {} {} {}",
            self.netns, self.family, self.table, self.chain, kind
        )?;
        if let Some(v) = &self.verdict {
            write!(f, " {v}")?;
        }
        let mut sep = "  ";
        let mut part = |f: &mut fmt::Formatter<'_>, text: fmt::Arguments<'_>| {
            let r = write!(f, "{sep}{text}");
            sep = " ";
            r
        };
        if let Some(i) = &self.iif {
            part(f, format_args!("iif {i}"))?;
        }
        if let Some(o) = &self.oif {
            part(f, format_args!("oif {o}"))?;
        }
        if let Some(m) = self.mark {
            part(f, format_args!("mark {m:#x}"))?;
        }
        if let Some(p) = &self.packet {
            part(f, format_args!("{p}"))?;
        }
        match (&self.rule, self.handle) {
            (Some(rule), _) => write!(f, "  # {rule}"),
            (None, Some(h)) => write!(f, "  # handle {h}"),
            (None, None) => Ok(()),
        }
    }
}

/// The events, one line each (see [`RuleEvent`]'s `Display`).
pub fn render(events: &[RuleEvent]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// The ruleset [`enable`] loads: makes the trace table hold exactly its two chains and their
/// rules whatever state it was in (adding it first makes the flush valid when it is absent), in
/// one transaction. Flushing rather than deleting the table: a transaction that deletes a table
/// waits for an RCU grace period (about 20 ms against 6 ms, docs/performance.md).
fn enable_ruleset() -> String {
    let chain = |name: &str, hook: &str| {
        format!(
            "\tchain {name} {{\n\t\ttype filter hook {hook} priority -350; policy accept;\n\
             \t\tmeta nftrace set 1\n\t}}\n"
        )
    };
    format!(
        "add table ip {TRACE_TABLE}\nflush table ip {TRACE_TABLE}\ntable ip {TRACE_TABLE} {{\n{}{}}}\n",
        chain("prerouting", "prerouting"),
        chain("output", "output"),
    )
}

/// Marks every IPv4 packet entering or sent from `netns` for tracing (see the module
/// documentation). Idempotent.
pub fn enable(netns: BorrowedFd<'_>) -> Result<(), ToolError> {
    nft_batch(netns, &enable_ruleset())
}

/// Removes what [`enable`] installed; harmless when it is not there.
pub fn disable(netns: BorrowedFd<'_>) -> Result<(), ToolError> {
    nft_batch(
        netns,
        &format!("add table ip {TRACE_TABLE}\ndelete table ip {TRACE_TABLE}\n"),
    )
}

fn nft_batch(netns: BorrowedFd<'_>, text: &str) -> Result<(), ToolError> {
    tool::run(
        &netns,
        "nft",
        &["-f", "-"],
        Some(text.as_bytes()),
        tool::DEFAULT_TIMEOUT,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn event() -> RuleEvent {
        RuleEvent {
            netns: "node1".into(),
            seq: 3,
            id: 7,
            family: "ip".into(),
            table: "nat".into(),
            chain: "KUBE-SERVICES".into(),
            handle: Some(10),
            kind: TraceKind::Rule,
            verdict: Some("jump KUBE-SVC-XPGD46QRK7WJZT7O".into()),
            iif: Some("cni0".into()),
            oif: None,
            mark: None,
            packet: Some(Tuple {
                proto: 6,
                src: Ipv4Addr::new(10, 244, 1, 2),
                dst: Ipv4Addr::new(10, 96, 0, 20),
                sport: 40000,
                dport: 80,
            }),
            ip_id: Some(1),
            rule: None,
        }
    }

    #[test]
    fn one_line_per_event() {
        let mut e = event();
        assert_eq!(
            e.to_string(),
            "node1 ip nat KUBE-SERVICES rule jump KUBE-SVC-XPGD46QRK7WJZT7O  iif cni0 \
             10.244.1.2:40000 > 10.96.0.20:80 tcp  # handle 10"
        );
        e.rule = Some("-A KUBE-SERVICES -j KUBE-SVC-XPGD46QRK7WJZT7O".into());
        e.oif = Some("eth0".into());
        e.mark = Some(0x4000);
        assert_eq!(
            e.to_string(),
            "node1 ip nat KUBE-SERVICES rule jump KUBE-SVC-XPGD46QRK7WJZT7O  iif cni0 oif eth0 \
             mark 0x4000 10.244.1.2:40000 > 10.96.0.20:80 tcp  # -A KUBE-SERVICES -j \
             KUBE-SVC-XPGD46QRK7WJZT7O"
        );
        let policy = RuleEvent {
            kind: TraceKind::Policy,
            verdict: Some("accept".into()),
            handle: None,
            iif: None,
            packet: None,
            ..event()
        };
        assert_eq!(
            policy.to_string(),
            "node1 ip nat KUBE-SERVICES policy accept"
        );
        assert_eq!(render(&[policy.clone(), policy]).lines().count(), 2);
        let end = RuleEvent {
            verdict: Some("continue".into()),
            handle: None,
            iif: None,
            packet: None,
            ..event()
        };
        assert_eq!(
            end.to_string(),
            "node1 ip nat KUBE-SERVICES verdict continue"
        );
    }

    #[test]
    fn the_enable_ruleset_replaces_the_table_in_one_go() {
        let text = enable_ruleset();
        assert!(text.starts_with(
            "add table ip podpath-trace\nflush table ip podpath-trace\ntable ip podpath-trace {"
        ));
        for hook in ["prerouting", "output"] {
            assert!(
                text.contains(&format!(
                    "type filter hook {hook} priority -350; policy accept;\n\t\tmeta nftrace set 1"
                )),
                "{text}"
            );
        }
    }

    /// An event from the wire, named and annotated, as the listener and the book make it.
    #[test]
    fn wire_to_display() {
        let m = wire::parse_datagram(&wire::build::rule_event())
            .remove(0)
            .unwrap();
        let e = RuleEvent::from_message("node1", 0, m, |i| match i {
            3 => "cni0".into(),
            _ => format!("#{i}"),
        });
        assert_eq!(
            e.to_string(),
            "node1 ip nat KUBE-SERVICES rule jump KUBE-SVC-X  iif cni0 mark 0x4000 \
             10.244.1.2:40000 > 10.96.0.20:80 tcp  # handle 10"
        );
    }
}
