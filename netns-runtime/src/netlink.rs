//! A small synchronous, typed rtnetlink (`NETLINK_ROUTE`) socket.
//!
//! [`Netlink`] speaks to the kernel of the network namespace it was opened in, one request at a
//! time: every request carries `NLM_F_REQUEST|NLM_F_ACK` and waits for its acknowledgement, and
//! every failure names what was being done (`add route 10.244.2.0/24 via 10.244.2.0 dev
//! flannel.1 onlink: File exists (os error 17)`).
//!
//! Messages are built with `netlink-packet-route`'s types and serialized into one reusable send
//! buffer; replies are read into one reusable receive buffer and only the dumps are fully
//! decoded. The framing (sequence numbers, multipart dumps followed until `NLMSG_DONE`, errors
//! and acks) is [`socket::NlSocket`]'s, shared with the netfilter families; dumps are restarted
//! here when the kernel flags them as interrupted (`NLM_F_DUMP_INTR`).

pub mod frame;
pub mod socket;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use ipnet::Ipv4Net;
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST, NetlinkSerializable, Parseable,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, InfoVxlan, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkHeader, LinkInfo as NlLinkInfo, LinkMessage,
    LinkProtoInfoBridge,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::sys::socket::SockProtocol;

use self::frame::ReplyError;
use self::socket::{NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NlSocket};

use crate::topology::{Mac, Vxlan};

// rtnetlink message types (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNEIGH: u16 = 28;

// Attribute numbers not (usefully) modelled by netlink-packet-route.
const IFLA_IFNAME: u16 = 3;
/// `IFLA_BRPORT_MODE`: hairpin mode of a bridge port, nested in `IFLA_PROTINFO`.
const IFLA_BRPORT_MODE: u16 = 4;

/// `NUD_PERMANENT` (linux/neighbour.h).
pub const NUD_PERMANENT: u16 = 0x80;
/// `NUD_NOARP` (linux/neighbour.h).
pub const NUD_NOARP: u16 = 0x40;
/// `NTF_SELF`: the entry lives in the device's own FDB (linux/neighbour.h).
pub const NTF_SELF: u8 = 0x02;
/// `NTF_MASTER`: the entry lives in the FDB of the device's master bridge.
pub const NTF_MASTER: u8 = 0x04;
/// `RTNH_F_ONLINK` (linux/rtnetlink.h).
pub const RTNH_F_ONLINK: u32 = 0x04;

/// How often an interrupted dump is restarted before giving up.
const DUMP_RETRIES: usize = 8;

/// A failed netlink operation. The message always starts with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel refused the request with `errno`; `extack` is its extended-ack message, if any.
    #[error("{op}: {}", frame::kernel_text(*.errno, .extack.as_deref()))]
    Kernel {
        op: String,
        errno: i32,
        extack: Option<String>,
    },
    /// The socket itself failed (open, send, receive).
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The kernel's reply could not be understood.
    #[error("{op}: {msg}")]
    Decode { op: String, msg: String },
}

impl NetlinkError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            NetlinkError::Decode { .. } => None,
        }
    }

    /// Whether the object being created already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(nix::libc::EEXIST)
    }

    /// The operation that failed, as in the message.
    pub fn op(&self) -> &str {
        match self {
            NetlinkError::Kernel { op, .. }
            | NetlinkError::Io { op, .. }
            | NetlinkError::Decode { op, .. } => op,
        }
    }
}

/// A failure before we know how to describe the operation.
#[derive(Debug)]
enum Raw {
    Kernel {
        errno: i32,
        extack: Option<String>,
    },
    Io(io::Error),
    Decode(String),
    /// A dump was interrupted by a concurrent change (`NLM_F_DUMP_INTR`); it must be restarted.
    Interrupted,
}

impl From<socket::RequestError> for Raw {
    fn from(e: socket::RequestError) -> Raw {
        match e {
            socket::RequestError::Io(e) => Raw::Io(e),
            socket::RequestError::Reply(ReplyError::Kernel { errno, extack }) => {
                Raw::Kernel { errno, extack }
            }
            socket::RequestError::Reply(ReplyError::Interrupted) => Raw::Interrupted,
            other => Raw::Decode(other.to_string()),
        }
    }
}

impl Raw {
    fn with_op(self, op: String) -> NetlinkError {
        match self {
            Raw::Kernel { errno, extack } => NetlinkError::Kernel { op, errno, extack },
            Raw::Io(source) => NetlinkError::Io { op, source },
            Raw::Decode(msg) => NetlinkError::Decode { op, msg },
            Raw::Interrupted => NetlinkError::Decode {
                op,
                msg: format!("dump interrupted by concurrent changes {DUMP_RETRIES} times"),
            },
        }
    }
}

/// A link, as dumped by [`Netlink::links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: `veth`, `bridge`, `vxlan`...; `None` for `lo` and physical devices.
    pub kind: Option<String>,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Index of the master device (the bridge a port is attached to).
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (`IFLA_OPERSTATE` is `UP`): the kernel's link watcher has seen its
    /// carrier and given it a real queue, so it sends what it is handed.
    pub oper_up: bool,
    /// `IFLA_LINK`: for a veth, the peer's index (in [`LinkInfo::link_netnsid`]'s netns if set).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the netns id of [`LinkInfo::link`], when it is another netns.
    pub link_netnsid: Option<i32>,
    /// Hairpin mode, when the link is a bridge port.
    pub hairpin: Option<bool>,
    /// VXLAN parameters, when the link is a vxlan device.
    pub vxlan: Option<VxlanInfo>,
}

/// The VXLAN parameters of a link, as dumped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
    /// Index of the underlay device.
    pub underlay: Option<u32>,
    pub port: u16,
    pub learning: bool,
}

/// An IPv4 address, as dumped by [`Netlink::addrs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub ifindex: u32,
    pub addr: Ipv4Net,
    pub broadcast: Option<Ipv4Addr>,
}

/// An IPv4 route of the main table, as dumped by [`Netlink::routes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// Output device index.
    pub oif: Option<u32>,
    /// `rtm_flags` (`RTNH_F_ONLINK` is [`RTNH_F_ONLINK`]).
    pub flags: u32,
    /// `rtm_protocol` (2 = kernel, 3 = boot).
    pub protocol: u8,
    /// `rtm_scope` (0 = universe, 253 = link, 254 = host).
    pub scope: u8,
    /// `rtm_type` (1 = unicast).
    pub kind: u8,
    pub table: u32,
    pub prefsrc: Option<Ipv4Addr>,
}

impl RouteInfo {
    pub fn onlink(&self) -> bool {
        self.flags & RTNH_F_ONLINK != 0
    }
}

/// An IPv4 neighbour (ARP) entry, as dumped by [`Netlink::neighbours`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourInfo {
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub mac: Option<Mac>,
    /// `ndm_state`: a combination of `NUD_*` bits ([`NUD_PERMANENT`]...).
    pub state: u16,
    /// `ndm_flags`: `NTF_*` bits.
    pub flags: u8,
}

impl NeighbourInfo {
    pub fn permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

/// A forwarding-database entry, as dumped by [`Netlink::fdb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbInfo {
    pub ifindex: u32,
    pub mac: Mac,
    /// Remote VTEP (`NDA_DST`), for entries of vxlan devices.
    pub dst: Option<Ipv4Addr>,
    /// `ndm_state`: `NUD_*` bits ([`NUD_PERMANENT`]...).
    pub state: u16,
    /// `ndm_flags`: `NTF_*` bits ([`NTF_SELF`], [`NTF_MASTER`]...).
    pub flags: u8,
    /// The bridge holding the entry (`NDA_MASTER`), for entries of bridge ports.
    pub master: Option<u32>,
    pub vlan: Option<u16>,
}

impl FdbInfo {
    pub fn permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

/// A synchronous `NETLINK_ROUTE` socket bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Netlink {
    socket: NlSocket,
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace. The socket stays bound
    /// to that netns forever, whatever thread uses it later.
    pub fn open() -> Result<Self, NetlinkError> {
        let op = || "open NETLINK_ROUTE socket".to_string();
        let io = |source| NetlinkError::Io { op: op(), source };
        let socket = NlSocket::open(SockProtocol::NetlinkRoute).map_err(io)?;
        // Best effort: error strings from the kernel, acks without a copy of the request, and
        // strict header checking so that dump filters (fdb by device, routes by table) apply.
        for option in [NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK] {
            let _ = socket.set_flag(option, true);
        }
        Ok(Netlink { socket })
    }

    /// Index of the link called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.lookup_index(name)
            .map_err(|e| e.with_op(format!("look up link {name:?}")))
    }

    /// Name of the link with index `ifindex`.
    pub fn link_name(&mut self, ifindex: u32) -> Result<String, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut name = None;
        let r = self.exchange(
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            &mut |ty, payload| {
                if ty == RTM_NEWLINK && name.is_none() {
                    name = link_attr(payload, IFLA_IFNAME).map(c_string);
                }
                Ok(())
            },
        );
        let op = || format!("look up link index {ifindex}");
        r.map_err(|e| e.with_op(op()))?;
        name.ok_or_else(|| Raw::Decode("no link in reply".into()).with_op(op()))
    }

    /// veth pair: `name` in this socket's netns, `peer` created directly inside `peer_netns`
    /// (`IFLA_NET_NS_FD` on the peer) or here when `None`. Sets MACs (`None` = kernel random)
    /// and MTU on both ends. Returns the ifindex of `name`.
    pub fn add_veth(
        &mut self,
        name: &str,
        mac: Option<Mac>,
        peer: &str,
        peer_mac: Option<Mac>,
        peer_netns: Option<BorrowedFd<'_>>,
        mtu: u32,
    ) -> Result<u32, NetlinkError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.into()));
        if let Some(m) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(m.0.to_vec()));
        }
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(fd) = peer_netns {
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        let msg = new_link_msg(
            name,
            mac,
            mtu,
            vec![
                NlLinkInfo::Kind(InfoKind::Veth),
                NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ],
        );
        let netns_fd = peer_netns.map(|fd| fd.as_raw_fd());
        self.new_link(msg, name).map_err(|e| {
            let ns = match netns_fd {
                Some(fd) => format!(" netns fd {fd}"),
                None => String::new(),
            };
            e.with_op(format!(
                "add veth {name}{} peer {peer}{}{ns} mtu {mtu}",
                opt_mac(mac),
                opt_mac(peer_mac)
            ))
        })
    }

    /// Bridge `name` with a fixed MAC (so it does not follow its ports') and an MTU.
    pub fn add_bridge(&mut self, name: &str, mac: Mac, mtu: u32) -> Result<u32, NetlinkError> {
        let msg = new_link_msg(
            name,
            Some(mac),
            mtu,
            vec![NlLinkInfo::Kind(InfoKind::Bridge)],
        );
        self.new_link(msg, name)
            .map_err(|e| e.with_op(format!("add bridge {name} address {mac} mtu {mtu}")))
    }

    /// VXLAN exactly like flannel's: VNI, local, dev (underlay ifindex), dst port, learning per
    /// `v.learning`, MAC, MTU.
    pub fn add_vxlan(&mut self, v: &Vxlan, underlay_ifindex: u32) -> Result<u32, NetlinkError> {
        let msg = new_link_msg(
            &v.name,
            Some(v.mac),
            v.mtu,
            vec![
                NlLinkInfo::Kind(InfoKind::Vxlan),
                NlLinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(v.vni),
                    InfoVxlan::Link(underlay_ifindex),
                    InfoVxlan::Local(v.local),
                    InfoVxlan::Port(v.port),
                    InfoVxlan::Learning(v.learning),
                ])),
            ],
        );
        let r = self.new_link(msg, &v.name);
        self.ctx(r, |nl| {
            format!(
                "add vxlan {} id {} local {} dev {} dstport {} {}learning address {} mtu {}",
                v.name,
                v.vni,
                v.local,
                nl.dev(underlay_ifindex),
                v.port,
                if v.learning { "" } else { "no" },
                v.mac,
                v.mtu
            )
        })
    }

    /// Deletes a link (and, for a veth, its peer).
    pub fn del_link(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let r = self.ack(RouteNetlinkMessage::DelLink(msg), 0);
        self.ctx(r, |nl| format!("delete link {}", nl.dev(ifindex)))
    }

    /// Attaches `ifindex` to the bridge `master`.
    pub fn set_master(&mut self, ifindex: u32, master: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes.push(LinkAttribute::Controller(master));
        let r = self.ack(RouteNetlinkMessage::SetLink(msg), 0);
        self.ctx(r, |nl| {
            format!("set dev {} master {}", nl.dev(ifindex), nl.dev(master))
        })
    }

    pub fn set_up(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        self.set_flags(ifindex, true)
    }

    pub fn set_down(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        self.set_flags(ifindex, false)
    }

    fn set_flags(&mut self, ifindex: u32, up: bool) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        let r = self.ack(RouteNetlinkMessage::SetLink(msg), 0);
        self.ctx(r, |nl| {
            format!(
                "set dev {} {}",
                nl.dev(ifindex),
                if up { "up" } else { "down" }
            )
        })
    }

    /// Sets the MTU of a link.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        let r = self.ack(RouteNetlinkMessage::SetLink(msg), 0);
        self.ctx(r, |nl| format!("set dev {} mtu {mtu}", nl.dev(ifindex)))
    }

    /// Bridge port hairpin mode, as `bridge link set dev X hairpin on` does it: `RTM_SETLINK`,
    /// family `AF_BRIDGE`, `IFLA_PROTINFO` (nested) holding `IFLA_BRPORT_MODE`.
    pub fn set_hairpin(&mut self, ifindex: u32, on: bool) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = ifindex;
        // netlink-packet-route 0.34 only models IFLA_BRPORT_NEIGH_FORWARD_GRAT in the bridge
        // IFLA_PROTINFO; the mode goes in as a raw u8 attribute.
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![u8::from(on)])),
        ]));
        let r = self.ack(RouteNetlinkMessage::SetLink(msg), 0);
        self.ctx(r, |nl| {
            format!(
                "set hairpin {} on bridge port {}",
                if on { "on" } else { "off" },
                nl.dev(ifindex)
            )
        })
    }

    /// Adds an IPv4 address (scope global; broadcast computed like the CNI plugins do).
    pub fn add_addr(&mut self, ifindex: u32, addr: Ipv4Net) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = addr.prefix_len();
        msg.header.scope = AddressScope::Universe;
        msg.header.index = ifindex;
        let ip = IpAddr::V4(addr.addr());
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if addr.prefix_len() < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(addr.broadcast()));
        }
        let r = self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        self.ctx(r, |nl| {
            format!("add address {addr} dev {}", nl.dev(ifindex))
        })
    }

    /// Route in the main table; `onlink` sets `RTNH_F_ONLINK`; proto boot, scope link when there
    /// is no gateway, universe otherwise.
    pub fn add_route(
        &mut self,
        dst: Ipv4Net,
        via: Option<Ipv4Addr>,
        ifindex: u32,
        onlink: bool,
    ) -> Result<(), NetlinkError> {
        let mut msg = route_msg(dst, via, ifindex);
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if via.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.header.kind = RouteType::Unicast;
        if onlink {
            msg.header.flags = RouteFlags::Onlink;
        }
        let r = self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        self.ctx(r, |nl| {
            format!(
                "add route {}{}",
                describe_route(dst, via, &nl.dev(ifindex)),
                if onlink { " onlink" } else { "" }
            )
        })
    }

    /// Deletes a route of the main table (matching any protocol, scope and type).
    pub fn del_route(
        &mut self,
        dst: Ipv4Net,
        via: Option<Ipv4Addr>,
        ifindex: u32,
    ) -> Result<(), NetlinkError> {
        let mut msg = route_msg(dst, via, ifindex);
        msg.header.scope = RouteScope::NoWhere;
        let r = self.ack(RouteNetlinkMessage::DelRoute(msg), 0);
        self.ctx(r, |nl| {
            format!(
                "delete route {}",
                describe_route(dst, via, &nl.dev(ifindex))
            )
        })
    }

    /// Permanent neighbour entry (`ip neigh replace IP lladdr MAC dev X nud permanent`).
    pub fn add_neighbour(
        &mut self,
        ifindex: u32,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        let r = self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        );
        self.ctx(r, |nl| {
            format!(
                "replace neighbour {ip} lladdr {mac} dev {} nud permanent",
                nl.dev(ifindex)
            )
        })
    }

    /// Deletes a neighbour entry.
    pub fn del_neighbour(&mut self, ifindex: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = ifindex;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        let r = self.ack(RouteNetlinkMessage::DelNeighbour(msg), 0);
        self.ctx(r, |nl| {
            format!("delete neighbour {ip} dev {}", nl.dev(ifindex))
        })
    }

    /// Permanent FDB entry on a vxlan device (`bridge fdb append MAC dev X dst IP self
    /// permanent`): family `AF_BRIDGE`, `NTF_SELF`, `NUD_PERMANENT`, `NDA_LLADDR`, `NDA_DST`.
    ///
    /// A unicast MAC that already has an entry fails with `EEXIST` (rather than silently keeping
    /// the old destination); the all-zeros and multicast MACs get one more destination appended.
    pub fn add_fdb(&mut self, ifindex: u32, mac: Mac, dst: Ipv4Addr) -> Result<(), NetlinkError> {
        let msg = fdb_msg(ifindex, mac, dst);
        let flood = mac.0 == [0; 6] || mac.0[0] & 1 == 1;
        let flags = if flood {
            NLM_F_CREATE | NLM_F_APPEND
        } else {
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_APPEND
        };
        let r = self.ack(RouteNetlinkMessage::NewNeighbour(msg), flags);
        self.ctx(r, |nl| {
            format!(
                "append fdb {mac} dev {} dst {dst} self permanent",
                nl.dev(ifindex)
            )
        })
    }

    /// Deletes the FDB entry `mac` -> `dst` of a vxlan device (`bridge fdb del ... self`).
    pub fn del_fdb(&mut self, ifindex: u32, mac: Mac, dst: Ipv4Addr) -> Result<(), NetlinkError> {
        let msg = fdb_msg(ifindex, mac, dst);
        let r = self.ack(RouteNetlinkMessage::DelNeighbour(msg), 0);
        self.ctx(r, |nl| {
            format!("delete fdb {mac} dev {} dst {dst} self", nl.dev(ifindex))
        })
    }

    /// Every link of the netns.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut out = Vec::new();
        let r = self.dump(
            || {
                let mut msg = LinkMessage::default();
                msg.attributes
                    .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
                RouteNetlinkMessage::GetLink(msg)
            },
            &mut out,
            |ty, payload, out| {
                if ty == RTM_NEWLINK {
                    let msg = LinkMessage::parse(payload).map_err(|e| e.to_string())?;
                    out.push(link_info(msg));
                }
                Ok(())
            },
        );
        r.map_err(|e| e.with_op("dump links".into()))?;
        Ok(out)
    }

    /// Every IPv4 address of the netns.
    pub fn addrs(&mut self) -> Result<Vec<AddrInfo>, NetlinkError> {
        let mut out = Vec::new();
        let r = self.dump(
            || {
                let mut msg = AddressMessage::default();
                msg.header.family = AddressFamily::Inet;
                RouteNetlinkMessage::GetAddress(msg)
            },
            &mut out,
            |ty, payload, out| {
                if ty == RTM_NEWADDR {
                    let msg = AddressMessage::parse(payload).map_err(|e| e.to_string())?;
                    if let Some(a) = addr_info(msg) {
                        out.push(a);
                    }
                }
                Ok(())
            },
        );
        r.map_err(|e| e.with_op("dump addresses".into()))?;
        Ok(out)
    }

    /// The IPv4 routes of the main table (what `ip route` shows).
    pub fn routes(&mut self) -> Result<Vec<RouteInfo>, NetlinkError> {
        let mut out = Vec::new();
        let r = self.dump(
            || {
                let mut msg = RouteMessage::default();
                msg.header.address_family = AddressFamily::Inet;
                msg.header.table = RouteHeader::RT_TABLE_MAIN;
                RouteNetlinkMessage::GetRoute(msg)
            },
            &mut out,
            |ty, payload, out| {
                if ty == RTM_NEWROUTE {
                    let msg = RouteMessage::parse(payload).map_err(|e| e.to_string())?;
                    if let Some(r) = route_info(msg)
                        && r.table == u32::from(RouteHeader::RT_TABLE_MAIN)
                    {
                        out.push(r);
                    }
                }
                Ok(())
            },
        );
        r.map_err(|e| e.with_op("dump routes".into()))?;
        Ok(out)
    }

    /// Every IPv4 neighbour (ARP) entry of the netns.
    pub fn neighbours(&mut self) -> Result<Vec<NeighbourInfo>, NetlinkError> {
        let mut out = Vec::new();
        let r = self.dump(
            || {
                let mut msg = NeighbourMessage::default();
                msg.header.family = AddressFamily::Inet;
                RouteNetlinkMessage::GetNeighbour(msg)
            },
            &mut out,
            |ty, payload, out| {
                if ty == RTM_NEWNEIGH {
                    let msg = NeighbourMessage::parse(payload).map_err(|e| e.to_string())?;
                    if let Some(n) = neighbour_info(msg) {
                        out.push(n);
                    }
                }
                Ok(())
            },
        );
        r.map_err(|e| e.with_op("dump neighbours".into()))?;
        Ok(out)
    }

    /// The FDB entries of one device (`bridge fdb show dev X`): for a vxlan device its own
    /// (`self`) entries, for a bridge port also those its bridge holds for it.
    pub fn fdb(&mut self, ifindex: u32) -> Result<Vec<FdbInfo>, NetlinkError> {
        let mut out = Vec::new();
        let r = self.dump(
            || {
                let mut msg = NeighbourMessage::default();
                msg.header.family = AddressFamily::Bridge;
                // With strict checking the kernel filters on this; without, we do below.
                msg.header.ifindex = ifindex;
                RouteNetlinkMessage::GetNeighbour(msg)
            },
            &mut out,
            |ty, payload, out| {
                if ty == RTM_NEWNEIGH {
                    let msg = NeighbourMessage::parse(payload).map_err(|e| e.to_string())?;
                    if let Some(f) = fdb_info(msg)
                        && f.ifindex == ifindex
                    {
                        out.push(f);
                    }
                }
                Ok(())
            },
        );
        self.ctx(r, |nl| format!("dump fdb of dev {}", nl.dev(ifindex)))?;
        Ok(out)
    }

    // ---- plumbing -------------------------------------------------------------------------

    /// Turns a raw failure into an error naming the operation; `op` may look up device names.
    fn ctx<T>(
        &mut self,
        r: Result<T, Raw>,
        op: impl FnOnce(&mut Self) -> String,
    ) -> Result<T, NetlinkError> {
        match r {
            Ok(v) => Ok(v),
            Err(raw) => {
                let op = op(self);
                Err(raw.with_op(op))
            }
        }
    }

    /// A device's name for error messages (`ifindex N` when it cannot be found).
    fn dev(&mut self, ifindex: u32) -> String {
        self.link_name(ifindex)
            .unwrap_or_else(|_| format!("ifindex {ifindex}"))
    }

    fn lookup_index(&mut self, name: &str) -> Result<u32, Raw> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut index = None;
        self.exchange(
            RouteNetlinkMessage::GetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            &mut |ty, payload| {
                if ty == RTM_NEWLINK && index.is_none() {
                    index = Some(LinkHeader::parse(payload).map_err(|e| e.to_string())?.index);
                }
                Ok(())
            },
        )?;
        index.ok_or_else(|| Raw::Decode("no link in reply".into()))
    }

    /// Creates a link and returns its index, taken from the kernel's echo of the new link
    /// (`NLM_F_ECHO`, kernel >= 6.1), or looked up by name when the kernel does not echo.
    fn new_link(&mut self, msg: LinkMessage, name: &str) -> Result<u32, Raw> {
        let mut index = None;
        self.exchange(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            &mut |ty, payload| {
                if ty == RTM_NEWLINK
                    && index.is_none()
                    && link_attr(payload, IFLA_IFNAME).map(c_str) == Some(name.as_bytes())
                {
                    index = Some(LinkHeader::parse(payload).map_err(|e| e.to_string())?.index);
                }
                Ok(())
            },
        )?;
        match index {
            Some(i) => Ok(i),
            None => self.lookup_index(name),
        }
    }

    /// Sends a request expecting only an ack.
    fn ack(&mut self, msg: RouteNetlinkMessage, extra_flags: u16) -> Result<(), Raw> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags, &mut |_, _| {
            Ok(())
        })
    }

    /// Dumps, restarting when the kernel reports the dump as interrupted.
    fn dump<T>(
        &mut self,
        mut make: impl FnMut() -> RouteNetlinkMessage,
        out: &mut Vec<T>,
        mut each: impl FnMut(u16, &[u8], &mut Vec<T>) -> Result<(), String>,
    ) -> Result<(), Raw> {
        for _ in 0..DUMP_RETRIES {
            out.clear();
            match self.exchange(make(), NLM_F_REQUEST | NLM_F_DUMP, &mut |ty, payload| {
                each(ty, payload, out)
            }) {
                Err(Raw::Interrupted) => continue,
                r => return r,
            }
        }
        Err(Raw::Interrupted)
    }

    /// Sends one request and reads replies until its ack (or, for a dump, `NLMSG_DONE`),
    /// handing every data message carrying its sequence number to `on_msg`.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        on_msg: frame::OnMessage<'_>,
    ) -> Result<(), Raw> {
        let (ty, len) = (msg.message_type(), msg.buffer_len());
        self.socket
            .request(ty, flags, len, |buf| msg.serialize(buf), on_msg)
            .map_err(Raw::from)
    }
}

/// A top-level attribute of an `ifinfomsg` payload, without decoding the rest.
fn link_attr(payload: &[u8], kind: u16) -> Option<&[u8]> {
    const IFINFOMSG_LEN: usize = 16;
    frame::attrs(payload.get(IFINFOMSG_LEN..)?)
        .map_while(Result::ok)
        .find(|(k, _)| *k == kind)
        .map(|(_, value)| value)
}

fn c_str(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or(b)
}

fn c_string(b: &[u8]) -> String {
    String::from_utf8_lossy(c_str(b)).into_owned()
}

fn opt_mac(mac: Option<Mac>) -> String {
    mac.map(|m| format!(" address {m}")).unwrap_or_default()
}

fn describe_route(dst: Ipv4Net, via: Option<Ipv4Addr>, dev: &str) -> String {
    match via {
        Some(gw) => format!("{dst} via {gw} dev {dev}"),
        None => format!("{dst} dev {dev}"),
    }
}

fn new_link_msg(name: &str, mac: Option<Mac>, mtu: u32, info: Vec<NlLinkInfo>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    if let Some(m) = mac {
        msg.attributes.push(LinkAttribute::Address(m.0.to_vec()));
    }
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    msg
}

fn route_msg(dst: Ipv4Net, via: Option<Ipv4Addr>, ifindex: u32) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(dst.addr())));
    if let Some(gw) = via {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    }
    msg.attributes.push(RouteAttribute::Oif(ifindex));
    msg
}

fn fdb_msg(ifindex: u32, mac: Mac, dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own; // NTF_SELF
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    msg
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    Some(Mac(bytes.try_into().ok()?))
}

fn link_info(msg: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        oper_up: false,
        link: None,
        link_netnsid: None,
        hairpin: None,
        vxlan: None,
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n,
            LinkAttribute::Address(a) => info.mac = mac_of(&a),
            LinkAttribute::Mtu(m) => info.mtu = m,
            LinkAttribute::OperState(state) => {
                info.oper_up = state == netlink_packet_route::link::State::Up;
            }
            LinkAttribute::Controller(m) => info.master = Some(m),
            LinkAttribute::Link(l) => info.link = Some(l),
            LinkAttribute::LinkNetNsId(id) => info.link_netnsid = Some(id),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        NlLinkInfo::Kind(k) => info.kind = Some(k.to_string()),
                        NlLinkInfo::Data(InfoData::Vxlan(v)) => {
                            info.vxlan = Some(vxlan_info(v));
                        }
                        NlLinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                            info.hairpin = p.iter().find_map(|a| match a {
                                InfoBridgePort::HairpinMode(on) => Some(*on),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    info
}

fn vxlan_info(attrs: Vec<InfoVxlan>) -> VxlanInfo {
    let mut v = VxlanInfo::default();
    for a in attrs {
        match a {
            InfoVxlan::Id(id) => v.vni = id,
            InfoVxlan::Local(l) => v.local = Some(l),
            InfoVxlan::Link(l) => v.underlay = Some(l),
            InfoVxlan::Port(p) => v.port = p,
            InfoVxlan::Learning(l) => v.learning = l,
            _ => {}
        }
    }
    v
}

fn addr_info(msg: AddressMessage) -> Option<AddrInfo> {
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(a),
            AddressAttribute::Broadcast(b) => broadcast = Some(b),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    Some(AddrInfo {
        ifindex: msg.header.index,
        addr: Ipv4Net::new(ip, msg.header.prefix_len).ok()?,
        broadcast,
    })
}

fn route_info(msg: RouteMessage) -> Option<RouteInfo> {
    let h = &msg.header;
    let mut info = RouteInfo {
        dst: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, h.destination_prefix_length).ok()?,
        gateway: None,
        oif: None,
        flags: h.flags.bits(),
        protocol: h.protocol.into(),
        scope: h.scope.into(),
        kind: h.kind.into(),
        table: u32::from(h.table),
        prefsrc: None,
    };
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                info.dst = Ipv4Net::new(d, h.destination_prefix_length).ok()?;
            }
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => info.gateway = Some(g),
            RouteAttribute::PrefSource(RouteAddress::Inet(p)) => info.prefsrc = Some(p),
            RouteAttribute::Oif(o) => info.oif = Some(o),
            RouteAttribute::Table(t) => info.table = t,
            _ => {}
        }
    }
    Some(info)
}

fn neighbour_info(msg: NeighbourMessage) -> Option<NeighbourInfo> {
    let mut ip = None;
    let mut mac = None;
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(a),
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(&l),
            _ => {}
        }
    }
    Some(NeighbourInfo {
        ifindex: msg.header.ifindex,
        ip: ip?,
        mac,
        state: msg.header.state.into(),
        flags: msg.header.flags.bits(),
    })
}

fn fdb_info(msg: NeighbourMessage) -> Option<FdbInfo> {
    let mut mac = None;
    let mut dst = None;
    let mut master = None;
    let mut vlan = None;
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(l) => mac = mac_of(&l),
            // In AF_BRIDGE messages netlink-packet-route leaves NDA_DST undecoded.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                dst = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from);
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(a),
            NeighbourAttribute::Controller(m) => master = Some(m),
            NeighbourAttribute::Vlan(v) => vlan = Some(v),
            _ => {}
        }
    }
    Some(FdbInfo {
        ifindex: msg.header.ifindex,
        mac: mac?,
        dst,
        state: msg.header.state.into(),
        flags: msg.header.flags.bits(),
        master,
        vlan,
    })
}

#[cfg(test)]
mod tests {
    use super::frame::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR, Reply, encode};
    use super::*;

    #[test]
    fn kernel_errors_name_the_operation_and_the_extack() {
        let mut payload = (-17i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0u8; frame::NLMSG_HDR_LEN]);
        payload.extend_from_slice(&17u16.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes()); // NLMSGERR_ATTR_MSG
        payload.extend_from_slice(b"Route exists\0");
        let mut d = Vec::new();
        encode(
            &mut d,
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            4,
            payload.len(),
            |b| b.copy_from_slice(&payload),
        );
        let Some(Err(e)) = Reply::default().feed(&d, 4, &mut |_, _| Ok(())) else {
            panic!("expected an error")
        };
        let err =
            Raw::from(socket::RequestError::from(e)).with_op("add route 10.0.0.0/8 dev x".into());
        assert_eq!(err.errno(), Some(17));
        assert!(err.is_exists());
        assert_eq!(
            err.to_string(),
            "add route 10.0.0.0/8 dev x: File exists (os error 17): Route exists"
        );
    }
}
