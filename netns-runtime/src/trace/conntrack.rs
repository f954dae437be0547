//! A namespace's connection tracking table over ctnetlink (to be written).

use super::Tuple;

/// One conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tuple of the connection's first packet, as it arrived (before NAT).
    pub orig: Tuple,
    /// The tuple replies are expected with (after NAT: its source is the DNAT target, its
    /// destination the SNAT address).
    pub reply: Tuple,
    /// `IPS_*` status bits.
    pub status: u32,
    /// The TCP state (`ESTABLISHED`, `TIME_WAIT`...), for TCP entries.
    pub tcp_state: Option<String>,
    /// Seconds left.
    pub timeout: Option<u32>,
    pub mark: Option<u32>,
    pub zone: Option<u16>,
    pub id: Option<u32>,
}
// TEMPORARY
impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.orig, self.reply)
    }
}
