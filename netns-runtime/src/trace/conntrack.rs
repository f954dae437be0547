//! A namespace's connection tracking table over ctnetlink.
//!
//! [`dump`] asks the kernel of one network namespace for its IPv4 conntrack entries
//! (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` on a `NETLINK_NETFILTER` socket opened inside it) and
//! decodes each answer with [`parse_entry`], a pure function over the message bytes. An
//! [`Entry`]'s two tuples say what NAT did to the connection ([`Entry::dnat`], [`Entry::snat`])
//! and which packets belong to it ([`Entry::matches`]); its `Display` is the line `conntrack -L`
//! prints for it.
//!
//! Conntrack tables are per namespace, and the kernel only starts tracking in a namespace once
//! something there needs it (an nftables `ct` expression or NAT chain, an iptables `conntrack`
//! match or `nat` table). Until then the table is empty, and so is the dump: a namespace where
//! conntrack never ran gives an empty list, not an error.
//!
//! The messages are netlink-packet-netfilter's: it emits the dump request and decodes each
//! entry's attributes (both tuples' addresses, protocol and ports, `CTA_STATUS`,
//! `CTA_PROTOINFO_TCP`, `CTA_TIMEOUT`, `CTA_MARK`). What `conntrack -L` also shows and the
//! crate (0.4) leaves as an undecoded `Other(DefaultNla)` is read here from that attribute's
//! value: `CTA_USE` (`use=`), `CTA_ZONE` (`zone=`), `CTA_ID`, and inside the tuples
//! `CTA_PROTO_ICMP_ID`, `CTA_PROTO_ICMP_TYPE` and `CTA_PROTO_ICMP_CODE` (`id=`, `type=`,
//! `code=`). The checks that an entry has what podpath needs (both tuples, a status, IPv4
//! addresses, a protocol number) are podpath's. The socket, the sequence numbers, multipart
//! replies, errors and restarting an interrupted dump stay [`NlSocket`]'s, shared with
//! rtnetlink and the nf_tables trace: the crate has no socket layer of its own.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::BorrowedFd;

use netlink_packet_core::{
    DefaultNla, Emitable, NLA_TYPE_MASK, NetlinkSerializable, Nla, NlasIterator, Parseable,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple,
    Tuple as CtTuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use nix::sys::socket::SockProtocol;

use super::Tuple;
use crate::netlink::frame::{self, NLM_F_DUMP, NLM_F_REQUEST, ReplyError};
#[cfg(test)]
use crate::netlink::frame::{
    NLA_HDR_LEN, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDR_LEN, NLMSG_NOOP, Reply,
};
use crate::netlink::socket::{Datagram, NlSocket, RECV_BUF_LEN, RequestError};
use crate::netns;

/// `IPS_*` status bits (`linux/netfilter/nf_conntrack_common.h`).
pub const IPS_EXPECTED: u32 = 1 << 0;
pub const IPS_SEEN_REPLY: u32 = 1 << 1;
pub const IPS_ASSURED: u32 = 1 << 2;
pub const IPS_CONFIRMED: u32 = 1 << 3;
pub const IPS_SRC_NAT: u32 = 1 << 4;
pub const IPS_DST_NAT: u32 = 1 << 5;
pub const IPS_SEQ_ADJUST: u32 = 1 << 6;
pub const IPS_SRC_NAT_DONE: u32 = 1 << 7;
pub const IPS_DST_NAT_DONE: u32 = 1 << 8;
pub const IPS_DYING: u32 = 1 << 9;
pub const IPS_FIXED_TIMEOUT: u32 = 1 << 10;
pub const IPS_TEMPLATE: u32 = 1 << 11;
pub const IPS_UNTRACKED: u32 = 1 << 12;
pub const IPS_HELPER: u32 = 1 << 13;
pub const IPS_OFFLOAD: u32 = 1 << 14;
pub const IPS_HW_OFFLOAD: u32 = 1 << 15;

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
    /// The connection mark (`ct mark`).
    pub mark: Option<u32>,
    /// The conntrack zone; the kernel only reports zones other than the default 0.
    pub zone: Option<u16>,
    /// The kernel's id of the entry (`conntrack -L -o id`).
    pub id: Option<u32>,
    /// ICMP type and code of the original tuple (echo request: 8/0), for ICMP entries.
    pub orig_icmp: Option<IcmpKind>,
    /// ICMP type and code of the reply tuple (echo reply: 0/0), for ICMP entries.
    pub reply_icmp: Option<IcmpKind>,
    /// How many references the kernel holds on the entry (`use=` of `conntrack -L`).
    pub use_count: Option<u32>,
}

/// The ICMP type and code conntrack keys an ICMP tuple with, besides the echo identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IcmpKind {
    pub kind: u8,
    pub code: u8,
}

/// Which way a packet of a connection travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that opened the connection.
    Original,
    /// Back towards it.
    Reply,
}

/// An address and port (for ICMP, the echo identifier).
pub type Endpoint = (Ipv4Addr, u16);

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;

impl Entry {
    /// Whether every bit of `flags` (`IPS_*`) is set.
    pub fn has_status(&self, flags: u32) -> bool {
        self.status & flags == flags
    }

    /// The destination rewrite, `(before, after)`, when the connection's destination was
    /// changed: the original destination against the reply's source. For ICMP only the address
    /// counts (the echo identifier is one field for both ends, rewritten by SNAT if at all).
    pub fn dnat(&self) -> Option<(Endpoint, Endpoint)> {
        let before = (self.orig.dst, self.orig.dport);
        let after = (self.reply.src, self.reply.sport);
        let changed = if self.orig.proto == IPPROTO_ICMP {
            before.0 != after.0
        } else {
            before != after
        };
        changed.then_some((before, after))
    }

    /// The source rewrite, `(before, after)`, when the connection's source was changed (SNAT,
    /// masquerade): the original source against the reply's destination.
    pub fn snat(&self) -> Option<(Endpoint, Endpoint)> {
        let before = (self.orig.src, self.orig.sport);
        let after = (self.reply.dst, self.reply.dport);
        (before != after).then_some((before, after))
    }

    /// Whether a packet with tuple `t` belongs to this connection, and which way it travels.
    ///
    /// A packet is seen in one of these forms, depending on where it is looked at (with `V`
    /// the address the client asked for, `B` the DNAT target, `A` the client and `S` its SNAT
    /// address; each with its port):
    ///
    /// - original direction before NAT, as the client sent it: `A > V`, [`Entry::orig`];
    /// - original direction after NAT, as the server gets it: `S > B`, `reply.reversed()`;
    /// - reply direction before NAT, as the server sent it: `B > S`, [`Entry::reply`];
    /// - reply direction after NAT, as the client gets it: `V > A`, `orig.reversed()`.
    ///
    /// When both ends are rewritten, the namespace doing it also sees each packet half-way:
    /// DNAT comes first in the original direction (prerouting/output, SNAT only in
    /// postrouting/input) and the SNAT is undone first in the reply direction, so a forwarded
    /// packet is `A > B` going and `B > A` coming back; both match too. Without NAT the forms
    /// coincide.
    pub fn matches(&self, t: &Tuple) -> Option<Direction> {
        if t.proto != self.orig.proto {
            return None;
        }
        let halfway = Tuple {
            dst: self.reply.src,
            dport: self.reply.sport,
            ..self.orig
        };
        if *t == self.orig || *t == self.reply.reversed() || *t == halfway {
            Some(Direction::Original)
        } else if *t == self.reply || *t == self.orig.reversed() || *t == halfway.reversed() {
            Some(Direction::Reply)
        } else {
            None
        }
    }
}

/// `tcp`, `udp`, `icmp`... as `conntrack -L` names layer-4 protocols (`unknown` for the rest).
fn l4_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

/// The name `conntrack -L` prints for a TCP conntrack state (`TCP_CONNTRACK_*`).
pub fn tcp_state_name(state: u8) -> Option<&'static str> {
    const NAMES: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];
    NAMES.get(usize::from(state)).copied()
}

fn write_tuple(f: &mut fmt::Formatter<'_>, t: &Tuple, icmp: Option<IcmpKind>) -> fmt::Result {
    write!(f, " src={} dst={}", t.src, t.dst)?;
    match t.proto {
        6 | 17 | 33 | 132 | 136 => write!(f, " sport={} dport={}", t.sport, t.dport),
        1 => {
            if let Some(k) = icmp {
                write!(f, " type={} code={}", k.kind, k.code)?;
            }
            write!(f, " id={}", t.sport)
        }
        _ => Ok(()),
    }
}

impl fmt::Display for Entry {
    /// The line `conntrack -L` prints, in its field order, without the trailing space:
    /// `tcp      6 117 TIME_WAIT src=10.244.1.2 dst=10.96.0.20 sport=40000 dport=80
    /// src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1`.
    /// Counters, timestamps, labels and security contexts are not dumped so not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = self.orig.proto;
        write!(f, "{:<8} {proto}", l4_name(proto))?;
        if let Some(t) = self.timeout {
            write!(f, " {t}")?;
        }
        if let Some(s) = &self.tcp_state {
            write!(f, " {s}")?;
        }
        write_tuple(f, &self.orig, self.orig_icmp)?;
        if !self.has_status(IPS_SEEN_REPLY) {
            f.write_str(" [UNREPLIED]")?;
        }
        write_tuple(f, &self.reply, self.reply_icmp)?;
        for (bit, label) in [
            (IPS_ASSURED, " [ASSURED]"),
            (IPS_OFFLOAD, " [OFFLOAD]"),
            (IPS_HW_OFFLOAD, " [HW_OFFLOAD]"),
        ] {
            if self.has_status(bit) {
                f.write_str(label)?;
            }
        }
        if let Some(m) = self.mark {
            write!(f, " mark={m}")?;
        }
        if let Some(z) = self.zone {
            write!(f, " zone={z}")?;
        }
        if let Some(u) = self.use_count {
            write!(f, " use={u}")?;
        }
        Ok(())
    }
}

/// The entries as `conntrack -L` lines, one per entry, sorted by original tuple, then reply
/// tuple, zone, id and finally the line itself, so that the same table always renders the same
/// whatever order the kernel listed it in.
pub fn render(entries: &[Entry]) -> String {
    let mut lines: Vec<_> = entries
        .iter()
        .map(|e| ((e.orig, e.reply, e.zone, e.id), e.to_string()))
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, line)| line + "\n").collect()
}

/// Dumps the IPv4 conntrack table of the namespace `netns`, from a thread inside it.
///
/// A namespace where conntrack never ran gives an empty list (see the module documentation).
/// Fails when the namespace cannot be entered, when the kernel refuses the dump (for example
/// without `CAP_NET_ADMIN` over the namespace, or without ctnetlink) or when an answer cannot
/// be decoded.
pub fn dump(netns: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    netns::run_in(netns, dump_here)?
}

/// How often an interrupted dump is started again before giving up.
const DUMP_RETRIES: u32 = 3;

/// Dumps the conntrack table of the calling thread's namespace.
fn dump_here() -> io::Result<Vec<Entry>> {
    let ctx =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let mut socket = NlSocket::open(SockProtocol::NetlinkNetFilter)
        .map_err(ctx("open NETLINK_NETFILTER socket"))?;
    let request = dump_message();
    for _ in 0..DUMP_RETRIES {
        let mut entries = Vec::new();
        let done = socket.request(
            NetlinkSerializable::message_type(&request),
            NLM_F_REQUEST | NLM_F_DUMP,
            Emitable::buffer_len(&request),
            |b| request.emit(b),
            &mut on_entry(&mut entries),
        );
        match done {
            Ok(()) => return Ok(entries),
            // Interrupted by a concurrent change: started again.
            Err(RequestError::Reply(e)) => match stop(e) {
                None => continue,
                Some(stop) => return Err(stop.into_io()),
            },
            Err(RequestError::Io(e)) => return Err(ctx("ctnetlink dump")(e)),
            Err(e @ RequestError::Truncated { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("ctnetlink dump: {e}"),
                ));
            }
        }
    }
    Err(io::Error::other(format!(
        "ctnetlink dump: interrupted by concurrent changes {DUMP_RETRIES} times in a row"
    )))
}

/// Decodes a dump's entry messages into `entries`, skipping those that are not IPv4.
fn on_entry(entries: &mut Vec<Entry>) -> impl FnMut(u16, &[u8]) -> Result<(), String> + '_ {
    |ty, payload| {
        if ty == CT_NEW
            && let Some(entry) = parse_entry(payload).map_err(|e| e.0)?
        {
            entries.push(entry);
        }
        Ok(())
    }
}

const NFGENMSG_LEN: usize = 4;
#[cfg(test)]
const AF_INET: u8 = 2;
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
/// The message type of an entry (a dump's answer, or an event).
const CT_NEW: u16 = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW;

#[cfg(test)]
use netlink_packet_core::{NLA_F_NESTED, NLA_F_NET_BYTEORDER};

// enum ctattr_type: the attributes netlink-packet-netfilter leaves as `Other`, and (for the
// tests' hand-built messages) those it decodes.
#[cfg(test)]
const CTA_TUPLE_ORIG: u16 = 1;
#[cfg(test)]
const CTA_TUPLE_REPLY: u16 = 2;
#[cfg(test)]
const CTA_STATUS: u16 = 3;
#[cfg(test)]
const CTA_PROTOINFO: u16 = 4;
#[cfg(test)]
const CTA_TIMEOUT: u16 = 7;
#[cfg(test)]
const CTA_MARK: u16 = 8;
const CTA_USE: u16 = 11;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple
#[cfg(test)]
const CTA_TUPLE_IP: u16 = 1;
#[cfg(test)]
const CTA_TUPLE_PROTO: u16 = 2;
// enum ctattr_ip
#[cfg(test)]
const CTA_IP_V4_SRC: u16 = 1;
#[cfg(test)]
const CTA_IP_V4_DST: u16 = 2;
#[cfg(test)]
const CTA_IP_V6_SRC: u16 = 3;
#[cfg(test)]
const CTA_IP_V6_DST: u16 = 4;
// enum ctattr_l4proto
#[cfg(test)]
const CTA_PROTO_NUM: u16 = 1;
#[cfg(test)]
const CTA_PROTO_SRC_PORT: u16 = 2;
#[cfg(test)]
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
// enum ctattr_protoinfo, ctattr_protoinfo_tcp
#[cfg(test)]
const CTA_PROTOINFO_TCP: u16 = 1;
#[cfg(test)]
const CTA_PROTOINFO_TCP_STATE: u16 = 1;

/// The request for a dump of the IPv4 conntrack table: an `IPCTNL_MSG_CT_GET` with no
/// attributes after its `nfgenmsg` (AF_INET, NFNETLINK_V0, res_id 0).
fn dump_message() -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv4, NFNETLINK_V0, 0),
        ConntrackMessage::Get(Vec::new()),
    )
}

/// The request for a dump of the IPv4 conntrack table, as [`dump`] sends it.
#[cfg(test)]
fn dump_request(seq: u32) -> Vec<u8> {
    let msg = dump_message();
    let mut m = Vec::new();
    frame::encode(
        &mut m,
        NetlinkSerializable::message_type(&msg),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        Emitable::buffer_len(&msg),
        |b| msg.emit(b),
    );
    m
}

/// A ctnetlink message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ctnetlink message: {0}")]
pub struct DecodeError(pub String);

fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// Why a dump stopped before `NLMSG_DONE`.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The kernel answered with an error (a positive errno).
    Kernel(i32),
    Malformed(DecodeError),
}

impl Stop {
    fn into_io(self) -> io::Error {
        match self {
            Stop::Kernel(errno) => {
                let e = io::Error::from_raw_os_error(errno);
                let hint = if errno == nix::libc::EOPNOTSUPP {
                    " (is ctnetlink, nf_conntrack_netlink, in this kernel?)"
                } else {
                    ""
                };
                io::Error::new(e.kind(), format!("ctnetlink dump: {e}{hint}"))
            }
            Stop::Malformed(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// Why a dump's reply failed, as [`dump`] tells it; `None` when it was only interrupted by a
/// concurrent change (and is started again).
fn stop(e: ReplyError) -> Option<Stop> {
    match e {
        ReplyError::Interrupted => None,
        ReplyError::Kernel { errno, .. } => Some(Stop::Kernel(errno)),
        ReplyError::Refused(why) => Some(Stop::Malformed(malformed(why))),
        other => Some(Stop::Malformed(malformed(other.to_string()))),
    }
}

/// Progress of a dump across datagrams.
#[cfg(test)]
#[derive(Debug, Default)]
struct DumpState {
    entries: Vec<Entry>,
    /// The kernel flagged a message `NLM_F_DUMP_INTR`: the dump may be inconsistent.
    interrupted: bool,
    reply: Reply,
}

/// Walks one datagram of a dump's answer as [`dump`] does. Returns `Some` once the answer for
/// `seq` is complete (`NLMSG_DONE`) or failed, `None` when more datagrams are needed.
#[cfg(test)]
fn read_datagram(buf: &[u8], seq: u32, state: &mut DumpState) -> Option<Result<(), Stop>> {
    let done = state
        .reply
        .feed(buf, seq, &mut on_entry(&mut state.entries))?;
    Some(match done {
        Ok(()) => Ok(()),
        Err(e) => match stop(e) {
            None => {
                state.interrupted = true;
                Ok(())
            }
            Some(stop) => Err(stop),
        },
    })
}

/// The value of an attribute netlink-packet-netfilter keeps undecoded, with its type (the
/// `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` flags masked off).
fn other(nla: &DefaultNla) -> (u16, Vec<u8>) {
    let mut value = vec![0; nla.value_len()];
    nla.emit_value(&mut value);
    (nla.kind() & NLA_TYPE_MASK, value)
}

/// A netlink-packet-core error as one line, outermost context first: `invalid CTA_STATUS
/// value: Invalid number. Expected 4 bytes, received 3 bytes`.
fn crate_text(e: &netlink_packet_core::DecodeError) -> String {
    e.to_string()
        .split(" caused by ")
        .filter(|part| *part != "failed to parse NLAs")
        .collect::<Vec<_>>()
        .join(": ")
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    v.try_into()
        .map_err(|_| malformed(format!("{what}: {} bytes, expected {N}", v.len())))
}

fn be16(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    fixed::<2>(v, what).map(u16::from_be_bytes)
}

fn be32(v: &[u8], what: &str) -> Result<u32, DecodeError> {
    fixed::<4>(v, what).map(u32::from_be_bytes)
}

fn byte(v: &[u8], what: &str) -> Result<u8, DecodeError> {
    fixed::<1>(v, what).map(|[b]| b)
}

/// Decodes one ctnetlink entry message (an `IPCTNL_MSG_CT_NEW` payload: `struct nfgenmsg`,
/// then the `CTA_*` attributes). Returns `None` for an entry that is not IPv4. Never panics:
/// any input that does not decode is an error.
///
/// Each top-level attribute is decoded on its own by netlink-packet-netfilter (rather than the
/// whole message at once) so that an error says which one failed: `original tuple: invalid
/// SourceAddress value: ...` rather than only `invalid SourceAddress value`.
pub fn parse_entry(msg: &[u8]) -> Result<Option<Entry>, DecodeError> {
    let header = NetfilterHeader::parse(msg).map_err(|_| {
        malformed(format!(
            "conntrack message of {} bytes has no nfgenmsg",
            msg.len()
        ))
    })?;
    if header.family != NetfilterProtoFamily::IPv4 {
        return Ok(None);
    }
    let (mut orig, mut reply, mut status, mut tcp_state) = (None, None, None, None);
    let (mut timeout, mut mark, mut use_count, mut id, mut zone) = (None, None, None, None, None);
    for nla in NlasIterator::new(&msg[NFGENMSG_LEN..]) {
        let nla = nla.map_err(|e| malformed(crate_text(&e)))?;
        let attr = ConntrackAttribute::parse(&nla).map_err(|e| {
            let text = crate_text(&e);
            malformed(match attr_name(nla.kind()) {
                Some(name) if !text.contains(name) => format!("{name}: {text}"),
                _ => text,
            })
        })?;
        match attr {
            ConntrackAttribute::CtaTupleOrig(t) => orig = Some(tuple(&t, "original tuple")?),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(tuple(&t, "reply tuple")?),
            ConntrackAttribute::CtaStatus(s) => status = Some(s.bits()),
            ConntrackAttribute::CtaProtoInfo(p) => tcp_state = tcp_state_of(&p).or(tcp_state),
            ConntrackAttribute::CtaTimeout(t) => timeout = Some(t),
            ConntrackAttribute::CtaMark(m) => mark = Some(m),
            ConntrackAttribute::Other(nla) => match other(&nla) {
                (CTA_USE, v) => use_count = Some(be32(&v, "CTA_USE")?),
                (CTA_ID, v) => id = Some(be32(&v, "CTA_ID")?),
                (CTA_ZONE, v) => zone = Some(be16(&v, "CTA_ZONE")?),
                _ => {}
            },
            _ => {}
        }
    }
    let orig = orig.ok_or_else(|| malformed("entry without CTA_TUPLE_ORIG"))?;
    let reply = reply.ok_or_else(|| malformed("entry without CTA_TUPLE_REPLY"))?;
    let status = status.ok_or_else(|| malformed("entry without CTA_STATUS"))?;
    let (Some((orig, orig_icmp)), Some((reply, reply_icmp))) = (orig, reply) else {
        return Ok(None);
    };
    let icmp = orig.proto == IPPROTO_ICMP;
    let tcp_state = tcp_state
        .filter(|_| orig.proto == IPPROTO_TCP)
        .map(|s| tcp_state_name(s).map_or_else(|| s.to_string(), String::from));
    Ok(Some(Entry {
        orig,
        reply,
        status,
        tcp_state,
        timeout,
        mark,
        zone,
        id,
        orig_icmp: orig_icmp.filter(|_| icmp),
        reply_icmp: reply_icmp.filter(|_| icmp),
        use_count,
    }))
}

/// How an error names the top-level attribute it is in.
fn attr_name(kind: u16) -> Option<&'static str> {
    Some(match kind {
        1 => "original tuple",
        2 => "reply tuple",
        3 => "CTA_STATUS",
        4 => "CTA_PROTOINFO",
        7 => "CTA_TIMEOUT",
        8 => "CTA_MARK",
        _ => return None,
    })
}

/// A decoded `CTA_TUPLE_*` nest as podpath's tuple; `None` when its addresses are not IPv4.
/// For ICMP both ports are the echo identifier (which, with the ICMP type and code,
/// netlink-packet-netfilter leaves undecoded).
fn tuple(nlas: &[CtTuple], what: &str) -> Result<Option<(Tuple, Option<IcmpKind>)>, DecodeError> {
    let (mut src, mut dst, mut ipv6) = (None, None, false);
    let (mut proto, mut sport, mut dport) = (None, 0, 0);
    let (mut icmp_id, mut icmp_type, mut icmp_code) = (None, None, None);
    for nla in nlas {
        match nla {
            CtTuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(IpAddr::V4(a)) => src = Some(*a),
                        IPTuple::DestinationAddress(IpAddr::V4(a)) => dst = Some(*a),
                        IPTuple::SourceAddress(IpAddr::V6(_))
                        | IPTuple::DestinationAddress(IpAddr::V6(_)) => ipv6 = true,
                        _ => {}
                    }
                }
            }
            CtTuple::Proto(protos) => {
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(p) => proto = Some(u8::from(*p)),
                        ProtoTuple::SourcePort(p) => sport = *p,
                        ProtoTuple::DestinationPort(p) => dport = *p,
                        ProtoTuple::Other(nla) => match other(nla) {
                            (CTA_PROTO_ICMP_ID, v) => {
                                icmp_id = Some(be16(&v, "CTA_PROTO_ICMP_ID")?)
                            }
                            (CTA_PROTO_ICMP_TYPE, v) => {
                                icmp_type = Some(byte(&v, "CTA_PROTO_ICMP_TYPE")?)
                            }
                            (CTA_PROTO_ICMP_CODE, v) => {
                                icmp_code = Some(byte(&v, "CTA_PROTO_ICMP_CODE")?)
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return if ipv6 {
            Ok(None)
        } else {
            Err(malformed(format!("{what} without addresses")))
        };
    };
    let proto = proto.ok_or_else(|| malformed(format!("{what} without CTA_PROTO_NUM")))?;
    let icmp = icmp_type.map(|kind| IcmpKind {
        kind,
        code: icmp_code.unwrap_or(0),
    });
    if proto == IPPROTO_ICMP {
        let id = icmp_id.unwrap_or(0);
        (sport, dport) = (id, id);
    }
    Ok(Some((
        Tuple {
            proto,
            src,
            dst,
            sport,
            dport,
        },
        icmp,
    )))
}

/// The TCP state number of a `CTA_PROTOINFO` nest, if it holds one.
fn tcp_state_of(info: &[ProtoInfo]) -> Option<u8> {
    let mut state = None;
    for i in info {
        if let ProtoInfo::TCP(tcp) = i {
            for t in tcp {
                if let ProtoInfoTCP::State(s) = t {
                    state = Some(*s);
                }
            }
        }
    }
    state
}

#[cfg(test)]
mod tests;

// ---- events ---------------------------------------------------------------------------------

/// `NFNLGRP_CONNTRACK_NEW` and `NFNLGRP_CONNTRACK_UPDATE`.
const NFNLGRP_CONNTRACK_NEW: u32 = 1;
const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
/// Receive buffer asked for per event socket.
const EVENT_RCVBUF: usize = 1 << 20;

/// The conntrack entries that namespaces create or change while it listens: each entry as its
/// latest event shows it. Cheaper than a [`dump`] (which walks the whole table, shared by all
/// namespaces: ~9 ms) and limited to what happened meanwhile.
pub struct EventSet {
    sockets: Vec<(String, NlSocket)>,
}

impl EventSet {
    /// Subscribes to the conntrack events of every `(name, netns)`; when it returns, every
    /// entry created or updated from then on is reported.
    pub fn start(points: &[(&str, BorrowedFd<'_>)]) -> io::Result<EventSet> {
        let mut sockets = Vec::with_capacity(points.len());
        for (name, fd) in points {
            let socket = netns::run_in(*fd, || -> io::Result<NlSocket> {
                let s = NlSocket::open(SockProtocol::NetlinkNetFilter)?;
                s.join(NFNLGRP_CONNTRACK_NEW)?;
                s.join(NFNLGRP_CONNTRACK_UPDATE)?;
                s.set_rcvbuf(EVENT_RCVBUF);
                Ok(s)
            })?
            .map_err(|e| io::Error::new(e.kind(), format!("conntrack events of {name}: {e}")))?;
            sockets.push((name.to_string(), socket));
        }
        Ok(EventSet { sockets })
    }

    /// Reads every queued event and stops listening. Returns each namespace's entries (the
    /// latest state of each, in order of first appearance) and what went wrong reading them.
    pub fn stop(self) -> (Vec<(String, Vec<Entry>)>, Vec<String>) {
        let mut out = Vec::with_capacity(self.sockets.len());
        let mut problems = Vec::new();
        let mut buf = vec![0u8; RECV_BUF_LEN];
        for (name, socket) in self.sockets {
            let mut entries: Vec<Entry> = Vec::new();
            let drained = socket.drain(&mut buf, |datagram| match datagram {
                Datagram::Data(d) => {
                    for e in event_entries(d) {
                        match entries.iter_mut().find(|x| x.orig == e.orig) {
                            Some(old) => *old = e,
                            None => entries.push(e),
                        }
                    }
                }
                Datagram::Truncated(len) => problems.push(format!(
                    "conntrack events of {name}: a datagram of {len} bytes did not fit the buffer"
                )),
                Datagram::Overrun => problems.push(format!(
                    "conntrack events of {name}: {}",
                    io::Error::from_raw_os_error(nix::libc::ENOBUFS)
                )),
            });
            if let Err(e) = drained {
                problems.push(format!("conntrack events of {name}: {e}"));
            }
            out.push((name, entries));
        }
        (out, problems)
    }
}

/// The IPv4 entries of a datagram of conntrack events; messages that do not decode (an update
/// without the attributes an entry needs) are skipped.
fn event_entries(buf: &[u8]) -> Vec<Entry> {
    frame::messages(buf)
        .map_while(Result::ok)
        .filter(|m| m.ty == CT_NEW)
        .filter_map(|m| parse_entry(m.payload).ok().flatten())
        .collect()
}
