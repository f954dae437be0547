//! The wire format of nf_tables trace events (`NFT_MSG_TRACE` on `NFNLGRP_NFTRACE`), decoded
//! by hand: a netlink header, the `nfgenmsg` header, then `NFTA_TRACE_*` attributes (see
//! `<linux/netfilter/nf_tables.h>`).
//!
//! Pure and total: any byte string decodes to events, to [`Malformed`], or to nothing, never a
//! panic. Netlink headers and attribute headers are in host byte order; attribute values of
//! nf_tables are in network byte order.

use std::fmt;
use std::net::Ipv4Addr;

use super::TraceKind;
#[cfg(test)]
use crate::netlink::frame::NLA_HDR_LEN;
use crate::netlink::frame::{self, AttrError, FrameError, NLMSG_HDR_LEN};
use crate::trace::Tuple;

/// `NFNL_SUBSYS_NFTABLES`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_TRACE`.
const NFT_MSG_TRACE: u16 = 17;
/// The netlink message type of a trace event.
pub const TRACE_MSG_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;

const NFGENMSG_LEN: usize = 4;

// enum nft_trace_attributes
const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
const NFTA_TRACE_IIF: u16 = 10;
const NFTA_TRACE_OIF: u16 = 12;
const NFTA_TRACE_MARK: u16 = 14;
const NFTA_TRACE_NFPROTO: u16 = 15;
const NFTA_TRACE_POLICY: u16 = 16;

// enum nft_verdict_attributes
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

// enum nft_trace_types
const NFT_TRACETYPE_POLICY: u32 = 1;
const NFT_TRACETYPE_RETURN: u32 = 2;
const NFT_TRACETYPE_RULE: u32 = 3;

/// One trace event as the kernel sent it, before its interfaces are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceMessage {
    /// `nfgen_family`: the table's family (`NFPROTO_*`).
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub id: u32,
    pub handle: Option<u64>,
    pub kind: TraceKind,
    /// The rule's verdict (rule and return events) or the chain's policy (policy events).
    pub verdict: Option<Verdict>,
    pub iif: Option<u32>,
    pub oif: Option<u32>,
    pub mark: Option<u32>,
    /// The protocol family of the hook (`NFPROTO_IPV4` for an IPv4 packet in an `inet` table).
    pub nfproto: Option<u32>,
    /// The IPv4 packet's addresses, when the network header is IPv4.
    pub packet: Option<Tuple>,
    pub ip_id: Option<u16>,
}

/// A netfilter or nf_tables verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The code as sent: `NF_*` (the low byte; the rest carries a queue number or an errno)
    /// or a negative `NFT_*`.
    pub code: i32,
    /// The target of `jump` and `goto`.
    pub chain: Option<String>,
}

impl fmt::Display for Verdict {
    /// `accept`, `drop`, `stolen`, `queue`, `repeat`, `continue`, `break`, `jump CHAIN`,
    /// `goto CHAIN`, `return`, or `verdict N` for a code this does not know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            c if c >= 0 => match c & 0xff {
                0 => "drop",
                1 => "accept",
                2 => "stolen",
                3 => "queue",
                4 => "repeat",
                _ => return write!(f, "verdict {}", self.code),
            },
            -1 => "continue",
            -2 => "break",
            -3 => "jump",
            -4 => "goto",
            -5 => "return",
            _ => return write!(f, "verdict {}", self.code),
        };
        match &self.chain {
            Some(chain) if matches!(self.code, -3 | -4) => write!(f, "{name} {chain}"),
            _ => f.write_str(name),
        }
    }
}

/// Input that is not a well-formed trace event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("netlink message of {len} bytes at offset {at} overruns the {total}-byte datagram")]
    Message { at: usize, len: usize, total: usize },
    #[error("trace message of {len} bytes is shorter than its headers")]
    Headers { len: usize },
    #[error("attribute {kind} of {len} bytes at offset {at} overruns its message")]
    Attribute { at: usize, kind: u16, len: usize },
    #[error("attribute {kind} holds {len} bytes, expected {want}")]
    Size { kind: u16, len: usize, want: usize },
    #[error("trace message without {0}")]
    Missing(&'static str),
}

/// Decodes every netlink message of one datagram read from an `NFNLGRP_NFTRACE` socket.
///
/// Control messages and messages other than trace events are skipped; a malformed trace
/// event is returned as an error in its place, and a header that overruns the datagram ends it.
pub fn parse_datagram(buf: &[u8]) -> Vec<Result<TraceMessage, Malformed>> {
    frame::messages(buf)
        .filter_map(|m| match m {
            Ok(m) => (m.ty == TRACE_MSG_TYPE).then(|| parse_trace(m.payload)),
            Err(FrameError { at, len, total }) => Some(Err(Malformed::Message { at, len, total })),
        })
        .collect()
}

/// Decodes the payload of one `NFT_MSG_TRACE` message: `nfgenmsg` and attributes.
pub fn parse_trace(payload: &[u8]) -> Result<TraceMessage, Malformed> {
    if payload.len() < NFGENMSG_LEN {
        return Err(Malformed::Headers {
            len: payload.len() + NLMSG_HDR_LEN,
        });
    }
    let family = payload[0];
    let mut table = None;
    let mut chain = None;
    let mut id = None;
    let mut handle = None;
    let mut kind = None;
    let mut verdict = None;
    let mut policy = None;
    let mut iif = None;
    let mut oif = None;
    let mut mark = None;
    let mut nfproto = None;
    let mut network = None;
    let mut transport = None;
    for attr in attributes(&payload[NFGENMSG_LEN..]) {
        let (kind_, value) = attr?;
        match kind_ {
            NFTA_TRACE_TABLE => table = Some(string(value)),
            NFTA_TRACE_CHAIN => chain = Some(string(value)),
            NFTA_TRACE_RULE_HANDLE => handle = Some(be64(kind_, value)?),
            NFTA_TRACE_TYPE => kind = Some(be32(kind_, value)?),
            NFTA_TRACE_VERDICT => verdict = Some(parse_verdict(value)?),
            NFTA_TRACE_ID => id = Some(be32(kind_, value)?),
            NFTA_TRACE_NETWORK_HEADER => network = Some(value),
            NFTA_TRACE_TRANSPORT_HEADER => transport = Some(value),
            NFTA_TRACE_IIF => iif = Some(be32(kind_, value)?),
            NFTA_TRACE_OIF => oif = Some(be32(kind_, value)?),
            NFTA_TRACE_MARK => mark = Some(be32(kind_, value)?),
            NFTA_TRACE_NFPROTO => nfproto = Some(be32(kind_, value)?),
            NFTA_TRACE_POLICY => {
                policy = Some(Verdict {
                    code: be32(kind_, value)? as i32,
                    chain: None,
                })
            }
            _ => {}
        }
    }
    let kind = match kind.ok_or(Malformed::Missing("NFTA_TRACE_TYPE"))? {
        NFT_TRACETYPE_RULE => TraceKind::Rule,
        NFT_TRACETYPE_RETURN => TraceKind::Return,
        NFT_TRACETYPE_POLICY => TraceKind::Policy,
        n => TraceKind::Other(n),
    };
    let (packet, ip_id) = match network.and_then(ipv4_header) {
        Some(ip) => (Some(ip.tuple(transport.unwrap_or_default())), Some(ip.id)),
        None => (None, None),
    };
    Ok(TraceMessage {
        family,
        table: table.ok_or(Malformed::Missing("NFTA_TRACE_TABLE"))?,
        chain: chain.ok_or(Malformed::Missing("NFTA_TRACE_CHAIN"))?,
        id: id.ok_or(Malformed::Missing("NFTA_TRACE_ID"))?,
        handle,
        verdict: if kind == TraceKind::Policy {
            policy.or(verdict)
        } else {
            verdict
        },
        kind,
        iif,
        oif,
        mark,
        nfproto,
        packet,
        ip_id,
    })
}

/// `ip`, `inet`, `arp`, `netdev`, `bridge`, `ip6`, or the number.
pub fn family_name(family: u8) -> String {
    match family {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        n => n.to_string(),
    }
}

fn parse_verdict(nested: &[u8]) -> Result<Verdict, Malformed> {
    let mut code = None;
    let mut chain = None;
    for attr in attributes(nested) {
        match attr? {
            (NFTA_VERDICT_CODE, v) => code = Some(be32(NFTA_VERDICT_CODE, v)? as i32),
            (NFTA_VERDICT_CHAIN, v) => chain = Some(string(v)),
            _ => {}
        }
    }
    Ok(Verdict {
        code: code.ok_or(Malformed::Missing("NFTA_VERDICT_CODE"))?,
        chain,
    })
}

/// The `(type, value)` pairs of a run of netlink attributes, flags masked off the type.
fn attributes(run: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    frame::attrs(run)
        .map(|a| a.map_err(|AttrError { at, kind, len }| Malformed::Attribute { at, kind, len }))
}

/// A string attribute: up to its first NUL (the kernel includes one).
fn string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

fn be32(kind: u16, value: &[u8]) -> Result<u32, Malformed> {
    let b: [u8; 4] = value.try_into().map_err(|_| Malformed::Size {
        kind,
        len: value.len(),
        want: 4,
    })?;
    Ok(u32::from_be_bytes(b))
}

fn be64(kind: u16, value: &[u8]) -> Result<u64, Malformed> {
    let b: [u8; 8] = value.try_into().map_err(|_| Malformed::Size {
        kind,
        len: value.len(),
        want: 8,
    })?;
    Ok(u64::from_be_bytes(b))
}

/// What of an IPv4 header a trace event needs.
struct Ipv4Header {
    proto: u8,
    id: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The fragment offset is not 0: no transport header in this packet.
    later_fragment: bool,
}

/// The IPv4 header at the start of `net` (the kernel sends at most 40 bytes of it), if it is
/// one.
fn ipv4_header(net: &[u8]) -> Option<Ipv4Header> {
    if net.len() < 20 || net[0] >> 4 != 4 {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(net[at], net[at + 1], net[at + 2], net[at + 3]);
    Some(Ipv4Header {
        proto: net[9],
        id: u16::from_be_bytes([net[4], net[5]]),
        src: addr(12),
        dst: addr(16),
        later_fragment: u16::from_be_bytes([net[6], net[7]]) & 0x1fff != 0,
    })
}

impl Ipv4Header {
    /// The tuple with the ports (or ICMP echo id) from the transport header, when it holds
    /// them; 0 otherwise.
    fn tuple(&self, transport: &[u8]) -> Tuple {
        let be16 = |at: usize| {
            transport
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let (sport, dport) = match self.proto {
            _ if self.later_fragment => (0, 0),
            // TCP, UDP, UDP-Lite, SCTP, DCCP: the ports come first.
            6 | 17 | 136 | 132 | 33 => match (be16(0), be16(2)) {
                (Some(s), Some(d)) => (s, d),
                _ => (0, 0),
            },
            // ICMP echo reply and request: the identifier, as conntrack keys them.
            1 if matches!(transport.first(), Some(0 | 8)) => {
                let id = be16(4).unwrap_or(0);
                (id, id)
            }
            _ => (0, 0),
        };
        Tuple {
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            sport,
            dport,
        }
    }
}

/// Builders of trace messages for tests (here and in the parent module).
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = (NLA_HDR_LEN + value.len()) as u16;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    pub fn str_attr(kind: u16, s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        attr(kind, &v)
    }

    pub fn message(msg_type: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let len = (NLMSG_HDR_LEN + NFGENMSG_LEN + body.len()) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&msg_type.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes()); // flags
        out.extend_from_slice(&0u32.to_ne_bytes()); // seq
        out.extend_from_slice(&0u32.to_ne_bytes()); // pid
        out.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version, res_id
        out.extend_from_slice(&body);
        out
    }

    pub fn verdict(code: i32, chain: Option<&str>) -> Vec<u8> {
        let mut inner = attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(c) = chain {
            inner.extend(str_attr(NFTA_VERDICT_CHAIN, c));
        }
        attr(NFTA_TRACE_VERDICT | 0x8000, &inner)
    }

    pub fn ipv4(proto: u8, id: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 60];
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    /// A rule event of `ip nat KUBE-SERVICES`, handle 10, `jump KUBE-SVC-X`, for a TCP SYN
    /// 10.244.1.2:40000 > 10.96.0.20:80 entering on ifindex 3.
    pub fn rule_event() -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&40000u16.to_be_bytes());
        tcp.extend_from_slice(&80u16.to_be_bytes());
        tcp.extend_from_slice(&[0; 16]);
        message(
            TRACE_MSG_TYPE,
            2,
            &[
                attr(NFTA_TRACE_ID, &0xdead_beefu32.to_be_bytes()),
                str_attr(NFTA_TRACE_TABLE, "nat"),
                str_attr(NFTA_TRACE_CHAIN, "KUBE-SERVICES"),
                attr(NFTA_TRACE_RULE_HANDLE | 0x4000, &10u64.to_be_bytes()),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
                verdict(-3, Some("KUBE-SVC-X")),
                attr(NFTA_TRACE_NFPROTO, &2u32.to_be_bytes()),
                attr(NFTA_TRACE_IIF, &3u32.to_be_bytes()),
                attr(11, &1u16.to_be_bytes()), // NFTA_TRACE_IIFTYPE: ignored
                attr(NFTA_TRACE_MARK, &0x4000u32.to_be_bytes()),
                attr(7, &[0xaa; 14]), // NFTA_TRACE_LL_HEADER: ignored
                attr(
                    NFTA_TRACE_NETWORK_HEADER,
                    &ipv4(6, 0x1234, [10, 244, 1, 2], [10, 96, 0, 20]),
                ),
                attr(NFTA_TRACE_TRANSPORT_HEADER, &tcp),
                attr(99, b"from a future kernel"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn one(buf: &[u8]) -> TraceMessage {
        let mut all = parse_datagram(buf);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0).expect("a trace message")
    }

    #[test]
    fn rule_event_with_every_field() {
        let m = one(&rule_event());
        assert_eq!(
            m,
            TraceMessage {
                family: 2,
                table: "nat".into(),
                chain: "KUBE-SERVICES".into(),
                id: 0xdead_beef,
                handle: Some(10),
                kind: TraceKind::Rule,
                verdict: Some(Verdict {
                    code: -3,
                    chain: Some("KUBE-SVC-X".into())
                }),
                iif: Some(3),
                oif: None,
                mark: Some(0x4000),
                nfproto: Some(2),
                packet: Some(Tuple {
                    proto: 6,
                    src: Ipv4Addr::new(10, 244, 1, 2),
                    dst: Ipv4Addr::new(10, 96, 0, 20),
                    sport: 40000,
                    dport: 80,
                }),
                ip_id: Some(0x1234),
            }
        );
        assert_eq!(m.verdict.unwrap().to_string(), "jump KUBE-SVC-X");
    }

    #[test]
    fn policy_event_takes_the_policy() {
        let buf = message(
            TRACE_MSG_TYPE,
            1,
            &[
                attr(NFTA_TRACE_ID, &7u32.to_be_bytes()),
                str_attr(NFTA_TRACE_TABLE, "filter"),
                str_attr(NFTA_TRACE_CHAIN, "FORWARD"),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_POLICY.to_be_bytes()),
                attr(NFTA_TRACE_POLICY, &0u32.to_be_bytes()),
                attr(NFTA_TRACE_OIF, &4u32.to_be_bytes()),
            ],
        );
        let m = one(&buf);
        assert_eq!(m.kind, TraceKind::Policy);
        assert_eq!(m.handle, None);
        assert_eq!(m.verdict.unwrap().to_string(), "drop");
        assert_eq!((m.iif, m.oif), (None, Some(4)));
        assert_eq!(family_name(m.family), "inet");
        assert_eq!(m.packet, None);
    }

    #[test]
    fn icmp_echo_id_goes_to_both_ports_and_udp_ports_are_read() {
        let icmp = |ty: u8| {
            let mut attrs = vec![
                attr(NFTA_TRACE_ID, &1u32.to_be_bytes()),
                str_attr(NFTA_TRACE_TABLE, "t"),
                str_attr(NFTA_TRACE_CHAIN, "c"),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RETURN.to_be_bytes()),
                verdict(-1, None),
                attr(
                    NFTA_TRACE_NETWORK_HEADER,
                    &ipv4(1, 9, [10, 0, 0, 1], [10, 0, 0, 2]),
                ),
            ];
            attrs.push(attr(
                NFTA_TRACE_TRANSPORT_HEADER,
                &[ty, 0, 0xab, 0xcd, 0x42, 0x42, 0, 1],
            ));
            one(&message(TRACE_MSG_TYPE, 2, &attrs))
        };
        let echo = icmp(8);
        assert_eq!(echo.kind, TraceKind::Return);
        assert_eq!(echo.verdict.unwrap().to_string(), "continue");
        let p = echo.packet.unwrap();
        assert_eq!((p.sport, p.dport), (0x4242, 0x4242));
        let unreachable = icmp(3).packet.unwrap();
        assert_eq!((unreachable.sport, unreachable.dport), (0, 0));

        let udp = one(&message(
            TRACE_MSG_TYPE,
            2,
            &[
                attr(NFTA_TRACE_ID, &1u32.to_be_bytes()),
                str_attr(NFTA_TRACE_TABLE, "t"),
                str_attr(NFTA_TRACE_CHAIN, "c"),
                attr(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
                verdict(1, None),
                attr(
                    NFTA_TRACE_NETWORK_HEADER,
                    &ipv4(17, 9, [10, 0, 0, 1], [10, 0, 0, 2]),
                ),
                // Only the first bytes of the header: enough for the ports.
                attr(NFTA_TRACE_TRANSPORT_HEADER, &[0x0f, 0xa0, 0x13, 0x88]),
            ],
        ))
        .packet
        .unwrap();
        assert_eq!(udp.to_string(), "10.0.0.1:4000 > 10.0.0.2:5000 udp");
    }

    #[test]
    fn verdict_names() {
        let v = |code: i32, chain: Option<&str>| {
            Verdict {
                code,
                chain: chain.map(String::from),
            }
            .to_string()
        };
        assert_eq!(v(0, None), "drop");
        // NF_DROP_ERR(-EPERM) and NF_QUEUE_NR(3) keep their names.
        assert_eq!(v(1 << 16, None), "drop");
        assert_eq!(v((3 << 16) | 3, None), "queue");
        assert_eq!(v(1, None), "accept");
        assert_eq!(v(2, None), "stolen");
        assert_eq!(v(4, None), "repeat");
        assert_eq!(v(-1, None), "continue");
        assert_eq!(v(-2, None), "break");
        assert_eq!(v(-3, Some("X")), "jump X");
        assert_eq!(v(-4, Some("Y")), "goto Y");
        assert_eq!(v(-5, None), "return");
        assert_eq!(v(-9, None), "verdict -9");
        assert_eq!(v(5, None), "verdict 5");
    }

    #[test]
    fn other_messages_are_skipped_and_several_are_read() {
        let mut buf = message((NFNL_SUBSYS_NFTABLES << 8) | 6, 2, &[]); // NFT_MSG_NEWRULE
        buf.extend(message(3, 0, &[])); // NLMSG_DONE
        buf.extend(rule_event());
        buf.extend(rule_event());
        let all = parse_datagram(&buf);
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .all(|m| m.as_ref().is_ok_and(|m| m.chain == "KUBE-SERVICES"))
        );
    }

    #[test]
    fn missing_and_wrong_sized_attributes_are_errors() {
        let no_type = message(
            TRACE_MSG_TYPE,
            2,
            &[
                attr(NFTA_TRACE_ID, &1u32.to_be_bytes()),
                str_attr(NFTA_TRACE_TABLE, "t"),
                str_attr(NFTA_TRACE_CHAIN, "c"),
            ],
        );
        assert_eq!(
            parse_datagram(&no_type),
            vec![Err(Malformed::Missing("NFTA_TRACE_TYPE"))]
        );
        let short_id = message(TRACE_MSG_TYPE, 2, &[attr(NFTA_TRACE_ID, &[1, 2])]);
        assert_eq!(
            parse_datagram(&short_id),
            vec![Err(Malformed::Size {
                kind: NFTA_TRACE_ID,
                len: 2,
                want: 4
            })]
        );
    }

    /// Every prefix, every single-byte corruption and a few thousand random byte strings:
    /// errors or events, never a panic.
    #[test]
    fn malformed_input_never_panics() {
        let good = rule_event();
        for n in 0..good.len() {
            let _ = parse_datagram(&good[..n]);
            let _ = parse_trace(&good[..n]);
        }
        for i in 0..good.len() {
            for b in [0u8, 1, 3, 4, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = parse_datagram(&bad);
            }
        }
        // xorshift: reproducible without a dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let len = (next() % 256) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half of them with a plausible header, so the attribute walk is reached.
            if next() % 2 == 0 && buf.len() >= 20 {
                buf[..4].copy_from_slice(&(len as u32).to_ne_bytes());
                buf[4..6].copy_from_slice(&TRACE_MSG_TYPE.to_ne_bytes());
            }
            let _ = parse_datagram(&buf);
            let _ = parse_trace(&buf);
        }
    }

    /// Not an assertion: how fast events parse (`cargo test -- --nocapture` shows it).
    #[test]
    fn parse_rate() {
        let buf = rule_event();
        let n = 200_000;
        let start = std::time::Instant::now();
        let mut ok = 0;
        for _ in 0..n {
            ok += parse_datagram(std::hint::black_box(&buf))
                .iter()
                .filter(|m| m.is_ok())
                .count();
        }
        let t = start.elapsed();
        assert_eq!(ok, n);
        eprintln!(
            "nftrace parse: {n} events in {t:?}: {:.2} M events/s",
            n as f64 / t.as_secs_f64() / 1e6
        );
    }
}
