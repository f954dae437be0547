//! Decoding captured Ethernet frames: Ethernet (with 802.1Q tags skipped), ARP, IPv4, TCP, UDP,
//! ICMP (echo, and the quoted header of errors) and VXLAN with its inner frame.
//!
//! Pure and total: any byte string decodes to something, never a panic. A frame too short for
//! an Ethernet header is an [`Err`]; anything wrong further in is recorded where it happens
//! ([`Net::Malformed`], [`Transport::Truncated`], [`Transport::Malformed`], `inner: None`), so
//! the outer headers of a strange packet are still there to see.
//!
//! The headers are read through etherparse's header slices (`Ethernet2HeaderSlice`,
//! `SingleVlanHeaderSlice`, `ArpPacketSlice`, `Ipv4HeaderSlice`, `TcpHeaderSlice`,
//! `UdpHeaderSlice`, `Icmpv4Slice`); which layer comes next, and what a broken header is
//! called, is decided here. Not through its whole-packet slicers (`SlicedPacket`,
//! `LaxSlicedPacket`), because podpath shows what they drop:
//!
//! - the transport header of a first fragment (more fragments, offset 0): they stop at any
//!   fragment, and that one carries the ports a flow is matched on;
//! - the ports of a TCP or UDP header cut short (the 8 bytes of a TCP header an ICMP error
//!   quotes): they keep no part of a header that does not fit;
//! - an IPv4 total length below the header length, which `LaxSlicedPacket` silently reads as
//!   "the rest of the buffer" (here it is malformed; 0, GSO "BIG TCP", is the buffer);
//! - more than three VLAN tags;
//! - VXLAN, which etherparse does not parse at all: its 8-byte header is read here and the
//!   inner frame decoded again from its Ethernet header, with the nesting bounded.
//!
//! [`Net::Malformed`] and [`Transport::Malformed`] keep podpath's short fixed reasons
//! (`ipv4 header length below 20`, `tcp data offset below 5`...), each chosen from the
//! etherparse error, so that the types stay `&'static str`. A header etherparse finds cut short
//! is [`Transport::Truncated`] as a whole: a TCP header whose options are missing, and an ICMP
//! timestamp message shorter than its 20 bytes.

use std::fmt;
use std::net::Ipv4Addr;

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{
    ArpHardwareId, ArpPacketSlice, EtherType, Ethernet2HeaderSlice, IcmpEchoHeader, Icmpv4Slice,
    Icmpv4Type, Ipv4Header, Ipv4HeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use crate::topology::Mac;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// flannel's VXLAN port (the Linux default before IANA assigned one).
pub const VXLAN_PORT_LINUX: u16 = 8472;
/// The IANA VXLAN port.
pub const VXLAN_PORT_IANA: u16 = 4789;

/// How deep VXLAN-in-VXLAN and ICMP-error-quoting-ICMP-error nest before decoding stops (a
/// crafted frame could otherwise nest a thousand levels deep).
const MAX_DEPTH: u8 = 8;

/// A frame too short to hold an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooShort {
    pub len: usize,
}

impl fmt::Display for TooShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-byte frame, shorter than an Ethernet header",
            self.len
        )
    }
}

impl std::error::Error for TooShort {}

/// A decoded Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    /// The VLAN id of the outermost 802.1Q tag, if any (further tags are skipped).
    pub vlan: Option<u16>,
    /// The ethertype after any VLAN tags.
    pub ethertype: u16,
    /// Length of the frame as given to [`decode`].
    pub len: usize,
    pub net: Net,
}

/// What the frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    Ipv4(Ipv4),
    Arp(Arp),
    /// An ethertype this decoder does not look into (IPv6, LLDP, ...).
    Other,
    /// The header of a known ethertype is cut short or inconsistent.
    Malformed(&'static str),
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 = request, 2 = reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

/// An IPv4 header and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub id: u16,
    pub tos: u8,
    /// The total length field (0 for a GSO "BIG TCP" packet, whose length is the buffer's).
    pub total_len: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
    pub transport: Transport,
}

impl Ipv4 {
    /// A fragment, first or not.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }
}

/// The transport header of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    /// A fragment other than the first: it carries no transport header.
    Fragment,
    /// A protocol this decoder does not look into.
    Other,
    /// The header is cut short: a short capture, or the 8 bytes of a TCP header an ICMP error
    /// quotes. The ports when at least 4 bytes are there (TCP and UDP).
    Truncated {
        ports: Option<(u16, u16)>,
    },
    /// The header is inconsistent (a TCP data offset below 5, a UDP length below 8).
    Malformed(&'static str),
}

/// TCP flag bits as in the header's 13th byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

impl fmt::Display for TcpFlags {
    /// tcpdump's letters, in tcpdump's order: `S`, `S.` (SYN-ACK), `.` (ACK), `P.`, `F.`, `R`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LETTERS: [(u8, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        if self.0 == 0 {
            return f.write_str("none");
        }
        for (bit, c) in LETTERS {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Header length in bytes (data offset × 4).
    pub header_len: u8,
    /// Payload bytes present in the capture.
    pub payload_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    /// The length field (header included).
    pub length: u16,
    /// Payload bytes present in the capture.
    pub payload_len: usize,
    /// Decoded when the destination port is a VXLAN port and 8 payload bytes are there.
    pub vxlan: Option<Vxlan>,
}

/// A VXLAN header and the frame it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    pub flags: u8,
    pub vni: u32,
    /// The inner Ethernet frame; `None` when fewer than 14 bytes follow the header (or
    /// encapsulation nests deeper than the decoder follows).
    pub inner: Option<Box<Packet>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    pub ty: u8,
    pub code: u8,
    /// Identifier and sequence number of an echo request or reply.
    pub echo: Option<IcmpEcho>,
    /// The next-hop MTU of a "fragmentation needed" error.
    pub next_hop_mtu: Option<u16>,
    /// The IPv4 header (and the start of its transport header) quoted by an error: destination
    /// unreachable, time exceeded, parameter problem, redirect, source quench.
    pub quoted: Option<Box<Ipv4>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpEcho {
    pub id: u16,
    pub seq: u16,
}

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_SOURCE_QUENCH: u8 = 4;
pub const ICMP_REDIRECT: u8 = 5;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAM_PROBLEM: u8 = 12;

/// Decodes an Ethernet frame.
pub fn decode(frame: &[u8]) -> Result<Packet, TooShort> {
    decode_at(frame, 0)
}

fn decode_at(frame: &[u8], depth: u8) -> Result<Packet, TooShort> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| TooShort { len: frame.len() })?;
    let mut ethertype = eth.ether_type().0;
    let mut rest = &frame[eth.slice().len()..];
    let mut vlan = None;
    // Every tag is skipped, however many (etherparse's packet slicers stop after three).
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        let Ok(tag) = SingleVlanHeaderSlice::from_slice(rest) else {
            return Ok(packet(
                &eth,
                vlan,
                ethertype,
                frame.len(),
                Net::Malformed("802.1Q tag truncated"),
            ));
        };
        vlan.get_or_insert(tag.vlan_identifier().value());
        ethertype = tag.ether_type().0;
        rest = &rest[tag.slice().len()..];
    }
    let net = match ethertype {
        ETHERTYPE_IPV4 => match decode_ipv4(rest, depth) {
            Ok(ip) => Net::Ipv4(ip),
            Err(why) => Net::Malformed(why),
        },
        ETHERTYPE_ARP => match decode_arp(rest) {
            Ok(arp) => Net::Arp(arp),
            Err(why) => Net::Malformed(why),
        },
        _ => Net::Other,
    };
    Ok(packet(&eth, vlan, ethertype, frame.len(), net))
}

fn packet(
    eth: &Ethernet2HeaderSlice<'_>,
    vlan: Option<u16>,
    ethertype: u16,
    len: usize,
    net: Net,
) -> Packet {
    Packet {
        dst_mac: Mac(eth.destination()),
        src_mac: Mac(eth.source()),
        vlan,
        ethertype,
        len,
        net,
    }
}

fn decode_arp(p: &[u8]) -> Result<Arp, &'static str> {
    /// Hardware type Ethernet, protocol type IPv4.
    const ETHERNET_IPV4: [u8; 4] = [0, 1, 8, 0];
    /// The header and two MAC and IPv4 address pairs.
    const ETHERNET_IPV4_LEN: usize = 8 + 2 * 6 + 2 * 4;
    let arp = ArpPacketSlice::from_slice(p).map_err(|e| match e.required_len {
        ..=8 => "arp header truncated",
        // etherparse checks the length the address sizes ask for before anything else; what
        // is not IPv4 over Ethernet is said so even when cut short.
        ETHERNET_IPV4_LEN if p.starts_with(&ETHERNET_IPV4) => "arp addresses truncated",
        _ => "arp for other than ipv4 over ethernet",
    })?;
    if arp.hw_addr_type() != ArpHardwareId::ETHERNET
        || arp.proto_addr_type() != EtherType::IPV4
        || arp.hw_addr_size() != 6
        || arp.proto_addr_size() != 4
    {
        return Err("arp for other than ipv4 over ethernet");
    }
    // The sizes are checked above, so the conversions cannot fail.
    let mac = |b: &[u8]| Mac(b.try_into().unwrap_or_default());
    let ip = |b: &[u8]| Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap_or_default());
    Ok(Arp {
        op: arp.operation().0,
        sender_mac: mac(arp.sender_hw_addr()),
        sender_ip: ip(arp.sender_protocol_addr()),
        target_mac: mac(arp.target_hw_addr()),
        target_ip: ip(arp.target_protocol_addr()),
    })
}

fn decode_ipv4(p: &[u8], depth: u8) -> Result<Ipv4, &'static str> {
    use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
    let head = Ipv4HeaderSlice::from_slice(p).map_err(|e| match e {
        HeaderSliceError::Len(l) if l.required_len > Ipv4Header::MIN_LEN => {
            "ipv4 options truncated"
        }
        HeaderSliceError::Len(_) => "ipv4 header truncated",
        HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => "ip version is not 4",
        HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { .. }) => {
            "ipv4 header length below 20"
        }
    })?;
    let ihl = head.slice().len();
    let total_len = head.total_len();
    // What the header says is there, cut to what the capture holds (Ethernet padding goes; a
    // quoted header or a short capture keeps what there is). etherparse's lax slicer would
    // take a total length below the header's as "use the buffer"; podpath calls it malformed,
    // and keeps 0 (GSO "BIG TCP") as "use the buffer".
    let end = match usize::from(total_len) {
        0 => p.len(),
        n if n < ihl => return Err("ipv4 total length below header length"),
        n => n.min(p.len()),
    };
    let protocol = head.protocol().0;
    let frag_offset = head.fragments_offset().value() * 8;
    let l4 = &p[ihl..end];
    // A first fragment (more fragments, offset 0) still carries the transport header.
    let transport = if frag_offset != 0 {
        Transport::Fragment
    } else {
        match protocol {
            IPPROTO_TCP => decode_tcp(l4),
            IPPROTO_UDP => decode_udp(l4, depth),
            IPPROTO_ICMP => decode_icmp(l4, depth),
            _ => Transport::Other,
        }
    };
    Ok(Ipv4 {
        src: head.source_addr(),
        dst: head.destination_addr(),
        protocol,
        ttl: head.ttl(),
        id: head.identification(),
        tos: head.dcp().value() << 2 | head.ecn().value(),
        total_len,
        dont_fragment: head.dont_fragment(),
        more_fragments: head.more_fragments(),
        frag_offset,
        transport,
    })
}

/// The ports of a TCP or UDP header too short for etherparse (at least the 4 bytes of ports).
fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    match l4 {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

fn decode_tcp(l4: &[u8]) -> Transport {
    use etherparse::err::tcp::HeaderSliceError;
    let head = match TcpHeaderSlice::from_slice(l4) {
        Ok(head) => head,
        // Cut short, options included: the 8 bytes of a TCP header an ICMP error quotes.
        Err(HeaderSliceError::Len(_)) => return Transport::Truncated { ports: ports(l4) },
        Err(HeaderSliceError::Content(_)) => {
            return Transport::Malformed("tcp data offset below 5");
        }
    };
    let header_len = head.slice().len();
    Transport::Tcp(Tcp {
        src_port: head.source_port(),
        dst_port: head.destination_port(),
        seq: head.sequence_number(),
        ack: head.acknowledgment_number(),
        flags: TcpFlags(head.slice()[13]),
        window: head.window_size(),
        // At most 15 × 4 = 60.
        header_len: header_len as u8,
        payload_len: l4.len() - header_len,
    })
}

fn decode_udp(l4: &[u8], depth: u8) -> Transport {
    let Ok(head) = UdpHeaderSlice::from_slice(l4) else {
        return Transport::Truncated { ports: ports(l4) };
    };
    let (src_port, dst_port, length) = (head.source_port(), head.destination_port(), head.length());
    if length < 8 {
        return Transport::Malformed("udp length below 8");
    }
    let payload = &l4[8..usize::from(length).min(l4.len())];
    let vxlan = if dst_port == VXLAN_PORT_LINUX || dst_port == VXLAN_PORT_IANA {
        decode_vxlan(payload, depth)
    } else {
        None
    };
    Transport::Udp(Udp {
        src_port,
        dst_port,
        length,
        payload_len: payload.len(),
        vxlan,
    })
}

/// The VXLAN header (RFC 7348: flags, 24 reserved bits, the VNI, 8 reserved bits), which
/// etherparse does not know, then the inner frame through [`decode_at`] again.
fn decode_vxlan(payload: &[u8], depth: u8) -> Option<Vxlan> {
    let (head, inner) = payload.split_first_chunk::<8>()?;
    Some(Vxlan {
        flags: head[0],
        vni: u32::from_be_bytes([0, head[4], head[5], head[6]]),
        inner: (depth < MAX_DEPTH)
            .then(|| decode_at(inner, depth + 1).ok())
            .flatten()
            .map(Box::new),
    })
}

fn decode_icmp(l4: &[u8], depth: u8) -> Transport {
    let Ok(icmp) = Icmpv4Slice::from_slice(l4) else {
        return Transport::Truncated { ports: None };
    };
    let (ty, code) = (icmp.type_u8(), icmp.code_u8());
    let rest = icmp.bytes5to8();
    // The echo identifier and sequence whatever the code (etherparse only reads them for code
    // 0), and the MTU of "fragmentation needed".
    let echo = matches!(ty, ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY).then(|| {
        let e = IcmpEchoHeader::from_bytes(rest);
        IcmpEcho {
            id: e.id,
            seq: e.seq,
        }
    });
    let next_hop_mtu = match icmp.icmp_type() {
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu,
        }) => Some(next_hop_mtu),
        _ => None,
    };
    let is_error = matches!(
        ty,
        ICMP_DEST_UNREACH
            | ICMP_SOURCE_QUENCH
            | ICMP_REDIRECT
            | ICMP_TIME_EXCEEDED
            | ICMP_PARAM_PROBLEM
    );
    // The quoted header follows the 8-byte ICMP header (an error's payload, as etherparse
    // slices it).
    let quoted = if is_error && depth < MAX_DEPTH {
        decode_ipv4(icmp.payload(), depth + 1).ok().map(Box::new)
    } else {
        None
    };
    Transport::Icmp(Icmp {
        ty,
        code,
        echo,
        next_hop_mtu,
        quoted,
    })
}

// ---- accessors ------------------------------------------------------------------------------

impl Packet {
    pub fn ipv4(&self) -> Option<&Ipv4> {
        match &self.net {
            Net::Ipv4(ip) => Some(ip),
            _ => None,
        }
    }

    pub fn arp(&self) -> Option<&Arp> {
        match &self.net {
            Net::Arp(arp) => Some(arp),
            _ => None,
        }
    }

    pub fn tcp(&self) -> Option<&Tcp> {
        match &self.ipv4()?.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    pub fn udp(&self) -> Option<&Udp> {
        match &self.ipv4()?.transport {
            Transport::Udp(u) => Some(u),
            _ => None,
        }
    }

    pub fn icmp(&self) -> Option<&Icmp> {
        match &self.ipv4()?.transport {
            Transport::Icmp(i) => Some(i),
            _ => None,
        }
    }

    /// The VXLAN header when this frame is VXLAN-encapsulated traffic.
    pub fn vxlan(&self) -> Option<&Vxlan> {
        self.udp()?.vxlan.as_ref()
    }

    /// The frame a VXLAN packet carries, recursively; the frame itself otherwise.
    pub fn innermost(&self) -> &Packet {
        match self.vxlan().and_then(|v| v.inner.as_deref()) {
            Some(inner) => inner.innermost(),
            None => self,
        }
    }
}

impl Ipv4 {
    /// Source and destination ports of TCP and UDP (also from a truncated header).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp(u) => Some((u.src_port, u.dst_port)),
            Transport::Truncated { ports } => *ports,
            _ => None,
        }
    }
}

// ---- one-line rendering ---------------------------------------------------------------------

fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        IPPROTO_ICMP => Some("icmp"),
        _ => None,
    }
}

struct Proto(u8);

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match proto_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "proto {}", self.0),
        }
    }
}

impl fmt::Display for Packet {
    /// `10.244.1.2:40000 > 10.96.0.20:80 tcp [S]`,
    /// `vxlan vni 1 172.18.0.2:51234 > 172.18.0.3:8472 | 10.244.1.2:40000 > 10.244.2.2:8080 tcp [S]`,
    /// `arp who-has 10.244.1.1 tell 10.244.1.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(vlan) = self.vlan {
            write!(f, "vlan {vlan} ")?;
        }
        match &self.net {
            Net::Ipv4(ip) => ip.fmt(f),
            Net::Arp(arp) => arp.fmt(f),
            Net::Other => write!(
                f,
                "{} > {} ethertype 0x{:04x} length {}",
                self.src_mac, self.dst_mac, self.ethertype, self.len
            ),
            Net::Malformed(why) => write!(
                f,
                "{} > {} ethertype 0x{:04x} malformed: {why}",
                self.src_mac, self.dst_mac, self.ethertype
            ),
        }
    }
}

impl fmt::Display for Arp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            ARP_REQUEST => write!(f, "arp who-has {} tell {}", self.target_ip, self.sender_ip),
            ARP_REPLY => write!(f, "arp reply {} is-at {}", self.sender_ip, self.sender_mac),
            op => write!(
                f,
                "arp op {op} {} ({}) > {} ({})",
                self.sender_ip, self.sender_mac, self.target_ip, self.target_mac
            ),
        }
    }
}

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (src, dst) = (self.src, self.dst);
        match &self.transport {
            Transport::Tcp(t) => {
                write!(
                    f,
                    "{src}:{} > {dst}:{} tcp [{}]",
                    t.src_port, t.dst_port, t.flags
                )?;
                if t.payload_len > 0 {
                    write!(f, " length {}", t.payload_len)?;
                }
                Ok(())
            }
            Transport::Udp(u) => match &u.vxlan {
                Some(v) => {
                    write!(
                        f,
                        "vxlan vni {} {src}:{} > {dst}:{} | ",
                        v.vni, u.src_port, u.dst_port
                    )?;
                    match &v.inner {
                        Some(inner) => inner.fmt(f),
                        None => f.write_str("(inner frame truncated)"),
                    }
                }
                None => write!(
                    f,
                    "{src}:{} > {dst}:{} udp length {}",
                    u.src_port, u.dst_port, u.payload_len
                ),
            },
            Transport::Icmp(i) => {
                write!(f, "{src} > {dst} icmp ")?;
                i.fmt(f)
            }
            Transport::Fragment => write!(
                f,
                "{src} > {dst} {} fragment id {} offset {}",
                Proto(self.protocol),
                self.id,
                self.frag_offset
            ),
            Transport::Other => write!(f, "{src} > {dst} {}", Proto(self.protocol)),
            Transport::Truncated {
                ports: Some((sp, dp)),
            } => write!(
                f,
                "{src}:{sp} > {dst}:{dp} {} (truncated)",
                Proto(self.protocol)
            ),
            Transport::Truncated { ports: None } => {
                write!(f, "{src} > {dst} {} (truncated)", Proto(self.protocol))
            }
            Transport::Malformed(why) => {
                write!(f, "{src} > {dst} {} malformed: {why}", Proto(self.protocol))
            }
        }
    }
}

impl fmt::Display for Icmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ty, self.code) {
            (ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY, _) => {
                let what = if self.ty == ICMP_ECHO_REQUEST {
                    "request"
                } else {
                    "reply"
                };
                write!(f, "echo {what}")?;
                if let Some(e) = self.echo {
                    write!(f, " id {} seq {}", e.id, e.seq)?;
                }
            }
            (ICMP_DEST_UNREACH, code) => {
                let what = match code {
                    0 => "net unreachable",
                    1 => "host unreachable",
                    2 => "protocol unreachable",
                    3 => "port unreachable",
                    4 => "fragmentation needed",
                    9 | 10 | 13 => "administratively prohibited",
                    _ => "unreachable",
                };
                write!(f, "{what}")?;
                if code > 4 && !matches!(code, 9 | 10 | 13) {
                    write!(f, " code {code}")?;
                }
                if let Some(mtu) = self.next_hop_mtu {
                    write!(f, " mtu {mtu}")?;
                }
            }
            (ICMP_TIME_EXCEEDED, 0) => f.write_str("time exceeded in transit")?,
            (ICMP_TIME_EXCEEDED, 1) => f.write_str("time exceeded in reassembly")?,
            (ty, code) => write!(f, "type {ty} code {code}")?,
        }
        if let Some(q) = &self.quoted {
            write!(f, " [{q}]")?;
        }
        Ok(())
    }
}

// ---- frame building, for tests --------------------------------------------------------------

/// Builders for well-formed frames (checksums left zero) and for frames as captured, for tests
/// here and elsewhere.
pub mod build {
    use std::time::Duration;

    use super::*;
    use crate::capture::Captured;

    pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, protocol, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    pub fn tcp(
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let mut p = Vec::with_capacity(20 + data.len());
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(data);
        p
    }

    pub fn udp(src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(8 + data.len());
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(data);
        p
    }

    pub fn vxlan(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
        let v = vni.to_be_bytes();
        let mut p = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
        p.extend_from_slice(inner_frame);
        p
    }

    pub fn icmp(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
        let mut p = vec![ty, code, 0, 0];
        p.extend_from_slice(&rest);
        p.extend_from_slice(data);
        p
    }

    pub fn arp(op: u16, sender: (Mac, Ipv4Addr), target: (Mac, Ipv4Addr)) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&sender.0.0);
        p.extend_from_slice(&sender.1.octets());
        p.extend_from_slice(&target.0.0);
        p.extend_from_slice(&target.1.octets());
        p
    }

    /// `frame`, whole, as captured at `netns`/`iface` `ns` nanoseconds after the epoch.
    pub fn captured(netns: &str, iface: &str, ns: u64, outgoing: bool, frame: Vec<u8>) -> Captured {
        Captured {
            netns: netns.into(),
            iface: iface.into(),
            ts: Duration::from_nanos(ns),
            outgoing,
            orig_len: frame.len(),
            frame,
        }
    }

    /// [`captured`] of one UDP datagram, 10.244.1.2:40001 > 10.244.2.2:5353 carrying `hi`
    /// (Ethernet 02:00:00:00:00:01 > 02:00:00:00:00:02).
    pub fn captured_udp(netns: &str, iface: &str, ns: u64, outgoing: bool) -> Captured {
        let udp = udp(40001, 5353, b"hi");
        let frame = ethernet(
            Mac([2, 0, 0, 0, 0, 2]),
            Mac([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_IPV4,
            &ipv4(
                Ipv4Addr::new(10, 244, 1, 2),
                Ipv4Addr::new(10, 244, 2, 2),
                IPPROTO_UDP,
                64,
                &udp,
            ),
        );
        captured(netns, iface, ns, outgoing, frame)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const A: Mac = Mac([0x0a, 0x58, 10, 244, 1, 2]);
    const B: Mac = Mac([0x0a, 0x58, 10, 244, 1, 1]);
    const N1: Mac = Mac([0x02, 0x42, 172, 18, 0, 2]);
    const N2: Mac = Mac([0x02, 0x42, 172, 18, 0, 3]);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn syn() -> Vec<u8> {
        let tcp = tcp(40000, 8080, 1000, 0, TcpFlags::SYN, b"");
        ethernet(
            B,
            A,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.2"), ip("10.244.2.2"), IPPROTO_TCP, 64, &tcp),
        )
    }

    fn vxlan_syn() -> Vec<u8> {
        let udp = udp(51234, VXLAN_PORT_LINUX, &vxlan(1, &syn()));
        ethernet(
            N2,
            N1,
            ETHERTYPE_IPV4,
            &ipv4(ip("172.18.0.2"), ip("172.18.0.3"), IPPROTO_UDP, 64, &udp),
        )
    }

    fn udp_frame() -> Vec<u8> {
        let udp = udp(40001, 5353, b"podpath-probe\n");
        let mut f = ethernet(
            B,
            A,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.2"), ip("10.244.2.2"), IPPROTO_UDP, 64, &udp),
        );
        // Ethernet padding after a short packet must not count as payload.
        f.resize(f.len().max(60) + 4, 0xee);
        f
    }

    fn port_unreachable() -> Vec<u8> {
        let quoted_udp = udp(40001, 9999, b"podpath-probe\n");
        let quoted = ipv4(
            ip("10.244.1.2"),
            ip("10.244.2.2"),
            IPPROTO_UDP,
            63,
            &quoted_udp,
        );
        let icmp = icmp(ICMP_DEST_UNREACH, 3, [0; 4], &quoted);
        ethernet(
            A,
            B,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.2.2"), ip("10.244.1.2"), IPPROTO_ICMP, 64, &icmp),
        )
    }

    fn echo_request() -> Vec<u8> {
        let icmp = icmp(ICMP_ECHO_REQUEST, 0, [0x12, 0x34, 0, 7], b"podpath-probe");
        ethernet(
            B,
            A,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.2"), ip("10.96.0.20"), IPPROTO_ICMP, 64, &icmp),
        )
    }

    fn arp_request() -> Vec<u8> {
        ethernet(
            Mac([0xff; 6]),
            A,
            ETHERTYPE_ARP,
            &arp(
                ARP_REQUEST,
                (A, ip("10.244.1.2")),
                (Mac([0; 6]), ip("10.244.1.1")),
            ),
        )
    }

    fn valid_frames() -> Vec<Vec<u8>> {
        vec![
            syn(),
            vxlan_syn(),
            udp_frame(),
            port_unreachable(),
            echo_request(),
            arp_request(),
        ]
    }

    #[test]
    fn tcp_syn() {
        let p = decode(&syn()).unwrap();
        assert_eq!((p.src_mac, p.dst_mac, p.ethertype), (A, B, ETHERTYPE_IPV4));
        let ip4 = p.ipv4().unwrap();
        assert_eq!(
            (ip4.src, ip4.dst, ip4.protocol, ip4.ttl, ip4.id),
            (ip("10.244.1.2"), ip("10.244.2.2"), IPPROTO_TCP, 64, 0x1234)
        );
        assert!(ip4.dont_fragment && !ip4.is_fragment());
        let t = p.tcp().unwrap();
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack, t.flags, t.payload_len),
            (40000, 8080, 1000, 0, TcpFlags(TcpFlags::SYN), 0)
        );
        assert_eq!(p.to_string(), "10.244.1.2:40000 > 10.244.2.2:8080 tcp [S]");
    }

    #[test]
    fn tcp_flags_render_like_tcpdump() {
        let f = |bits| TcpFlags(bits).to_string();
        assert_eq!(f(TcpFlags::SYN | TcpFlags::ACK), "S.");
        assert_eq!(f(TcpFlags::ACK), ".");
        assert_eq!(f(TcpFlags::PSH | TcpFlags::ACK), "P.");
        assert_eq!(f(TcpFlags::FIN | TcpFlags::ACK), "F.");
        assert_eq!(f(TcpFlags::RST | TcpFlags::ACK), "R.");
        assert_eq!(f(0), "none");
    }

    #[test]
    fn tcp_with_data_and_service_address() {
        let tcp = tcp(40000, 80, 1, 2, TcpFlags::PSH | TcpFlags::ACK, b"hello");
        let f = ethernet(
            B,
            A,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.2"), ip("10.96.0.20"), IPPROTO_TCP, 64, &tcp),
        );
        assert_eq!(
            decode(&f).unwrap().to_string(),
            "10.244.1.2:40000 > 10.96.0.20:80 tcp [P.] length 5"
        );
    }

    #[test]
    fn vxlan_inner_frame() {
        let p = decode(&vxlan_syn()).unwrap();
        let u = p.udp().unwrap();
        assert_eq!((u.src_port, u.dst_port), (51234, 8472));
        let v = p.vxlan().unwrap();
        assert_eq!((v.flags, v.vni), (0x08, 1));
        let inner = v.inner.as_deref().unwrap();
        assert_eq!(inner, &decode(&syn()).unwrap());
        assert_eq!(p.innermost(), inner);
        assert_eq!(
            p.to_string(),
            "vxlan vni 1 172.18.0.2:51234 > 172.18.0.3:8472 | 10.244.1.2:40000 > 10.244.2.2:8080 tcp [S]"
        );
    }

    #[test]
    fn vxlan_on_the_iana_port_with_a_large_vni() {
        let udp = udp(1, VXLAN_PORT_IANA, &vxlan(0xabcdef, &arp_request()));
        let f = ethernet(
            N2,
            N1,
            ETHERTYPE_IPV4,
            &ipv4(ip("1.1.1.1"), ip("2.2.2.2"), IPPROTO_UDP, 1, &udp),
        );
        let p = decode(&f).unwrap();
        assert_eq!(p.vxlan().unwrap().vni, 0xabcdef);
        assert_eq!(
            p.to_string(),
            "vxlan vni 11259375 1.1.1.1:1 > 2.2.2.2:4789 | arp who-has 10.244.1.1 tell 10.244.1.2"
        );
    }

    #[test]
    fn udp_ignores_ethernet_padding() {
        let p = decode(&udp_frame()).unwrap();
        let u = p.udp().unwrap();
        assert_eq!((u.length, u.payload_len, u.vxlan.is_none()), (22, 14, true));
        assert_eq!(
            p.to_string(),
            "10.244.1.2:40001 > 10.244.2.2:5353 udp length 14"
        );
    }

    #[test]
    fn icmp_echo_and_error_with_quoted_header() {
        let p = decode(&echo_request()).unwrap();
        let i = p.icmp().unwrap();
        assert_eq!(
            (i.ty, i.code, i.echo),
            (8, 0, Some(IcmpEcho { id: 0x1234, seq: 7 }))
        );
        assert_eq!(
            p.to_string(),
            "10.244.1.2 > 10.96.0.20 icmp echo request id 4660 seq 7"
        );

        let p = decode(&port_unreachable()).unwrap();
        let i = p.icmp().unwrap();
        let q = i.quoted.as_deref().unwrap();
        assert_eq!(
            (q.src, q.dst, q.ttl),
            (ip("10.244.1.2"), ip("10.244.2.2"), 63)
        );
        assert_eq!(q.ports(), Some((40001, 9999)));
        assert_eq!(
            p.to_string(),
            "10.244.2.2 > 10.244.1.2 icmp port unreachable [10.244.1.2:40001 > 10.244.2.2:9999 udp length 14]"
        );
    }

    #[test]
    fn icmp_error_quoting_eight_bytes_of_tcp() {
        let tcp = tcp(40000, 80, 5, 0, TcpFlags::SYN, b"");
        let mut quoted = ipv4(ip("10.244.1.2"), ip("10.96.0.20"), IPPROTO_TCP, 1, &tcp);
        quoted.truncate(28);
        let icmp = icmp(ICMP_TIME_EXCEEDED, 0, [0; 4], &quoted);
        let f = ethernet(
            A,
            B,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.1"), ip("10.244.1.2"), IPPROTO_ICMP, 64, &icmp),
        );
        let p = decode(&f).unwrap();
        assert_eq!(
            p.to_string(),
            "10.244.1.1 > 10.244.1.2 icmp time exceeded in transit [10.244.1.2:40000 > 10.96.0.20:80 tcp (truncated)]"
        );
        // Fragmentation needed carries the MTU.
        let icmp = icmp_frag_needed(1450, &quoted);
        let p = decode(&icmp).unwrap();
        assert_eq!(p.icmp().unwrap().next_hop_mtu, Some(1450));
        assert!(p.to_string().contains("fragmentation needed mtu 1450"));
    }

    fn icmp_frag_needed(mtu: u16, quoted: &[u8]) -> Vec<u8> {
        let m = mtu.to_be_bytes();
        let icmp = icmp(ICMP_DEST_UNREACH, 4, [0, 0, m[0], m[1]], quoted);
        ethernet(
            A,
            B,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.1"), ip("10.244.1.2"), IPPROTO_ICMP, 64, &icmp),
        )
    }

    #[test]
    fn arp_request_and_reply() {
        let p = decode(&arp_request()).unwrap();
        let a = p.arp().unwrap();
        assert_eq!(
            (a.op, a.sender_ip, a.sender_mac, a.target_ip),
            (ARP_REQUEST, ip("10.244.1.2"), A, ip("10.244.1.1"))
        );
        assert_eq!(p.to_string(), "arp who-has 10.244.1.1 tell 10.244.1.2");
        let reply = ethernet(
            A,
            B,
            ETHERTYPE_ARP,
            &arp(ARP_REPLY, (B, ip("10.244.1.1")), (A, ip("10.244.1.2"))),
        );
        assert_eq!(
            decode(&reply).unwrap().to_string(),
            "arp reply 10.244.1.1 is-at 0a:58:0a:f4:01:01"
        );
    }

    #[test]
    fn vlan_tag_is_skipped() {
        let inner = syn();
        let mut f = inner[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        f.extend_from_slice(&inner[12..]);
        let p = decode(&f).unwrap();
        assert_eq!((p.vlan, p.ethertype), (Some(100), ETHERTYPE_IPV4));
        assert!(p.to_string().starts_with("vlan 100 10.244.1.2:40000"));
    }

    #[test]
    fn fragments_and_other_protocols() {
        let mut ipp = ipv4(ip("1.1.1.1"), ip("2.2.2.2"), IPPROTO_UDP, 9, &[0; 16]);
        ipp[6] = 0x00;
        ipp[7] = 185; // offset 185 * 8 = 1480
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &ipp)).unwrap();
        let i = p.ipv4().unwrap();
        assert_eq!((i.frag_offset, &i.transport), (1480, &Transport::Fragment));
        assert_eq!(
            p.to_string(),
            "1.1.1.1 > 2.2.2.2 udp fragment id 4660 offset 1480"
        );
        let sctp = ipv4(ip("1.1.1.1"), ip("2.2.2.2"), 132, 9, &[0; 16]);
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &sctp)).unwrap();
        assert_eq!(p.to_string(), "1.1.1.1 > 2.2.2.2 proto 132");
        let p = decode(&ethernet(B, A, 0x86dd, &[0x60; 40])).unwrap();
        assert_eq!(p.net, Net::Other);
        assert_eq!(
            p.to_string(),
            "0a:58:0a:f4:01:02 > 0a:58:0a:f4:01:01 ethertype 0x86dd length 54"
        );
    }

    #[test]
    fn malformed_headers_are_reported_not_guessed() {
        let mut ipp = ipv4(ip("1.1.1.1"), ip("2.2.2.2"), IPPROTO_TCP, 9, &[0; 20]);
        ipp[0] = 0x44;
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &ipp)).unwrap();
        assert_eq!(p.net, Net::Malformed("ipv4 header length below 20"));
        ipp[0] = 0x65;
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &ipp)).unwrap();
        assert_eq!(p.net, Net::Malformed("ip version is not 4"));
        let tcp = ipv4(ip("1.1.1.1"), ip("2.2.2.2"), IPPROTO_TCP, 9, &[0; 20]);
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &tcp)).unwrap();
        assert_eq!(
            p.ipv4().unwrap().transport,
            Transport::Malformed("tcp data offset below 5")
        );
        assert_eq!(decode(&[0; 13]), Err(TooShort { len: 13 }));
    }

    #[test]
    fn a_tcp_header_whose_options_are_cut_is_truncated() {
        // A data offset of 6 (24 bytes) with only the 20 fixed bytes there: etherparse's
        // TcpHeaderSlice refuses it, so the ports are all that is shown (podpath used to show
        // the flags of such a header as if it were whole).
        let mut seg = tcp(40000, 8080, 1, 0, TcpFlags::SYN, b"");
        seg[12] = 0x60;
        let f = ethernet(
            B,
            A,
            ETHERTYPE_IPV4,
            &ipv4(ip("10.244.1.2"), ip("10.244.2.2"), IPPROTO_TCP, 64, &seg),
        );
        let p = decode(&f).unwrap();
        assert_eq!(
            p.ipv4().unwrap().transport,
            Transport::Truncated {
                ports: Some((40000, 8080))
            }
        );
        assert_eq!(
            p.to_string(),
            "10.244.1.2:40000 > 10.244.2.2:8080 tcp (truncated)"
        );
    }

    #[test]
    fn arp_that_is_not_ipv4_over_ethernet_says_so_even_cut_short() {
        let mut a = arp(
            ARP_REQUEST,
            (A, ip("10.244.1.2")),
            (Mac([0; 6]), ip("10.244.1.1")),
        );
        a[4] = 8; // 8-byte hardware addresses: etherparse asks for 32 address bytes
        let p = decode(&ethernet(Mac([0xff; 6]), A, ETHERTYPE_ARP, &a)).unwrap();
        assert_eq!(
            p.net,
            Net::Malformed("arp for other than ipv4 over ethernet")
        );
        let a = arp(ARP_REPLY, (B, ip("10.244.1.1")), (A, ip("10.244.1.2")));
        let p = decode(&ethernet(A, B, ETHERTYPE_ARP, &a[..20])).unwrap();
        assert_eq!(p.net, Net::Malformed("arp addresses truncated"));
        let p = decode(&ethernet(A, B, ETHERTYPE_ARP, &a[..7])).unwrap();
        assert_eq!(p.net, Net::Malformed("arp header truncated"));
    }

    #[test]
    fn many_vlan_tags_are_all_skipped() {
        // Four tags: more than etherparse's packet slicers follow (three).
        let inner = syn();
        let mut f = inner[..12].to_vec();
        for id in [100u16, 200, 300, 400] {
            f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&inner[12..]);
        let p = decode(&f).unwrap();
        assert_eq!((p.vlan, p.ethertype), (Some(100), ETHERTYPE_IPV4));
        assert_eq!(p.tcp().unwrap().dst_port, 8080);
        // A tag cut short.
        let p = decode(&f[..16]).unwrap();
        assert_eq!(p.net, Net::Malformed("802.1Q tag truncated"));
    }

    #[test]
    fn a_first_fragment_keeps_its_transport_header() {
        // More fragments, offset 0: etherparse's packet slicers stop at any fragment.
        let mut ipp = ipv4(
            ip("1.1.1.1"),
            ip("2.2.2.2"),
            IPPROTO_UDP,
            9,
            &udp(1, 2, b"x"),
        );
        ipp[6] = 0x20;
        let p = decode(&ethernet(B, A, ETHERTYPE_IPV4, &ipp)).unwrap();
        let i = p.ipv4().unwrap();
        assert!(i.more_fragments && i.is_fragment());
        assert_eq!(i.ports(), Some((1, 2)));
    }

    #[test]
    fn big_tcp_total_length_zero_uses_the_buffer() {
        let mut f = syn();
        f[14 + 2] = 0;
        f[14 + 3] = 0;
        f.extend_from_slice(&[7; 100]);
        assert_eq!(decode(&f).unwrap().tcp().unwrap().payload_len, 100);
    }

    #[test]
    fn nesting_depth_is_bounded() {
        // VXLAN in VXLAN, 200 levels deep: decoding stops at MAX_DEPTH without blowing the stack.
        let mut frame = syn();
        for _ in 0..200 {
            let udp = udp(1, VXLAN_PORT_LINUX, &vxlan(1, &frame));
            frame = ethernet(
                N2,
                N1,
                ETHERTYPE_IPV4,
                &ipv4(ip("1.1.1.1"), ip("2.2.2.2"), IPPROTO_UDP, 1, &udp),
            );
        }
        let p = decode(&frame).unwrap();
        let mut levels = 0;
        let mut cur = &p;
        while let Some(inner) = cur.vxlan().and_then(|v| v.inner.as_deref()) {
            cur = inner;
            levels += 1;
        }
        assert!(levels <= usize::from(MAX_DEPTH), "{levels}");
        let _ = p.to_string();
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn every_truncation_of_valid_frames_decodes() {
        for frame in valid_frames() {
            for n in 0..=frame.len() {
                match decode(&frame[..n]) {
                    Ok(p) => {
                        let _ = p.to_string();
                        assert!(n >= 14);
                    }
                    Err(e) => assert!(n < 14, "{e}"),
                }
            }
        }
    }

    #[test]
    fn random_bytes_and_mutations_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(200);
            let f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok(p) = decode(&f) {
                let _ = p.to_string();
            }
        }
        // Valid frames with random bytes flipped reach deep into every decoder.
        let frames = valid_frames();
        for _ in 0..50_000 {
            let mut f = frames[rng.below(frames.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(f.len());
                f[at] = rng.next() as u8;
            }
            let cut = rng.below(f.len() + 1);
            f.truncate(f.len() - cut / 4);
            if let Ok(p) = decode(&f) {
                let _ = p.to_string();
            }
        }
    }
}
