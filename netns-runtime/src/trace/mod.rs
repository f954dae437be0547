//! Hop tracing: what the kernel did with a flow's packets, beyond what captures show.
//!
//! - [`nftrace`] listens to the netfilter trace (`NFNLGRP_NFTRACE`) of a set of namespaces and
//!   returns every rule evaluation of traced packets: table, chain, rule, verdict, interfaces,
//!   and the packet's addresses at that point. It covers nftables and iptables-nft rules alike.
//! - [`conntrack`] dumps a namespace's connection tracking table over ctnetlink: each entry's
//!   original and reply tuples (which tell what DNAT and SNAT rewrote) and its status.
//! - [`assembly`] merges captures, trace events and conntrack entries of one flow into one
//!   ordered path, following the flow's packets across DNAT, SNAT and encapsulation.

pub mod assembly;
pub mod conntrack;
pub mod nftrace;
pub mod observe;

use std::fmt;
use std::net::Ipv4Addr;

/// The addresses of one IPv4 packet as conntrack keys it: protocol, addresses and ports. For
/// ICMP echo both ports hold the echo identifier (conntrack keys echo request and reply by it);
/// for other protocols without ports both are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    /// The same connection seen from the other end.
    pub fn reversed(self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }

    /// `tcp`, `udp`, `icmp` or the protocol number.
    pub fn proto_name(&self) -> String {
        proto_name(self.proto)
    }
}

/// `tcp`, `udp`, `icmp` or the protocol number.
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

impl fmt::Display for Tuple {
    /// `10.244.1.2:40000 > 10.96.0.20:80 tcp`; ICMP: `10.244.1.2 > 10.244.2.2 icmp id 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            6 | 17 | 132 => write!(
                f,
                "{}:{} > {}:{} {}",
                self.src,
                self.sport,
                self.dst,
                self.dport,
                self.proto_name()
            ),
            1 => write!(f, "{} > {} icmp id {}", self.src, self.dst, self.sport),
            _ => write!(f, "{} > {} {}", self.src, self.dst, self.proto_name()),
        }
    }
}
