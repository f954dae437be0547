//! The netfilter trace of a set of namespaces (to be written).

pub mod rules;
pub mod wire;

pub use rules::RuleBook;

use super::Tuple;

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
