//! `AF_PACKET` capture sockets, one per capture point.
//!
//! Each socket is created on a thread inside its point's namespace ([`netns::run_in`]) and
//! stays in that namespace wherever it is read. It is created with protocol 0, so it receives
//! nothing until it is bound with `ETH_P_ALL` to its interface: nothing from another interface
//! is ever queued. `SO_TIMESTAMPNS` makes the kernel hand over its own timestamp of every frame,
//! and `sll_pkttype` says whether the interface sent it (`PACKET_OUTGOING`) or received it.
//! Frames wait in the socket's receive buffer (raised as far as allowed) until
//! [`CaptureSet::drain`], [`CaptureSet::settle`] or [`CaptureSet::stop`] read them; frames that
//! did not fit are counted by the kernel ([`PointStats::dropped`]), never lost silently.
//!
//! ## Order
//!
//! Frames are ordered by kernel timestamp. The kernel stamps a frame once when it enters a
//! namespace (or when a tap sees it, for frames leaving) and keeps the stamp while the frame
//! climbs stacked devices of that namespace: a frame entering a bridge port and then the bridge
//! carries one timestamp to both captures, as does a VXLAN packet on the underlay device and
//! its decapsulated frame on the VXLAN device. Such ties are broken by the stacking: a frame
//! received by a lower device (a bridge port, the underlay) comes before the same timestamp on a
//! stacked device (bridge, VXLAN, VLAN, bond, tunnel), and the other way round for frames sent.
//! Stamps are only taken on the way while the kernel's timestamping is on, which
//! [`keep_timestamps_on`] sees to; a frame stamped only when read is counted
//! ([`PointStats::unstamped`]).
//!
//! ## Cost
//!
//! Opening and binding a socket is a few system calls (ten points in six namespaces: about
//! 0.5 ms, a thread per namespace included); each frame costs the kernel a clone per socket
//! (~0.3 µs) and us a `recvmsg` (~1.5 µs). Closing a packet socket waits for an RCU grace
//! period (~10 ms), so [`CaptureSet::stop`] first attaches a filter that drops everything, then
//! reads what is queued and leaves the closing to other threads. An mmap'ed `TPACKET_V3` ring
//! would read faster but costs a grace period to set up and two to tear down, per socket.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::libc;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockType, recvmsg,
    setsockopt, socket, sockopt,
};

use super::{CapturePoint, Captured};
use crate::{netns, settle};

/// Bytes read of each frame: a whole GSO packet of the default 64 KiB maximum, with its
/// Ethernet and two VLAN headers. Longer frames are cut (and [`Captured::orig_len`] says so).
const SNAPLEN: usize = 65536 + 14 + 8;

/// Asked-for receive buffer per socket (the kernel doubles it for bookkeeping). Beyond
/// `net.core.rmem_max` only root in the initial user namespace gets it (`SO_RCVBUFFORCE`).
const RCVBUF: usize = 4 << 20;

/// Drivers of devices stacked on others, which see a received frame after (and a sent frame
/// before) the device under them, with the same kernel timestamp.
const STACKED_DRIVERS: &[&str] = &[
    "bridge",
    "vxlan",
    "geneve",
    "802.1Q VLAN Support",
    "macvlan",
    "ipvlan",
    "bonding",
    "team",
    "ipip",
    "ip_gre",
    "ip_vti",
    "sit",
    "wireguard",
    "openvswitch",
];

/// Frames captured on a set of interfaces, from [`CaptureSet::start`] to [`CaptureSet::stop`].
pub struct CaptureSet {
    points: Vec<Point>,
    scratch: Vec<u8>,
    cmsg: Vec<u8>,
}

struct Point {
    point: CapturePoint,
    ifindex: u32,
    driver: String,
    stacked: bool,
    rcvbuf: usize,
    fd: OwnedFd,
    frames: Vec<Frame>,
    dropped: u32,
    unstamped: usize,
    error: Option<String>,
}

struct Frame {
    ts: Duration,
    outgoing: bool,
    orig_len: usize,
    data: Vec<u8>,
}

/// How a capture point fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointStats {
    pub point: CapturePoint,
    pub ifindex: u32,
    /// The interface's driver (`veth`, `bridge`, `vxlan`), as ethtool reports it.
    pub driver: String,
    /// The receive buffer the kernel granted, in bytes.
    pub rcvbuf: usize,
    pub captured: usize,
    /// Frames the kernel dropped because the socket's buffer was full.
    pub dropped: u32,
    /// Frames the kernel had not timestamped, whose time is when they were read (only when
    /// kernel timestamps could not be switched on beforehand: see [`CaptureSet::start`]).
    pub unstamped: usize,
    /// A read error other than "nothing more to read", if one happened.
    pub error: Option<String>,
}

impl CaptureSet {
    /// Starts capturing on every `(netns name, netns, interface)`. When this returns, every
    /// socket is bound: any frame from then on is captured.
    ///
    /// The sockets of one namespace are opened together on one thread inside it.
    ///
    /// The first call in a process also makes sure the kernel timestamps frames from then on
    /// (see [`keep_timestamps_on`]), which takes a throwaway namespace and a millisecond or so.
    pub fn start(points: &[(&str, BorrowedFd<'_>, &str)]) -> io::Result<CaptureSet> {
        // Best effort: without it frames may be stamped when read, which stats report.
        let _ = keep_timestamps_on();
        let mut groups: Vec<(BorrowedFd<'_>, Vec<usize>)> = Vec::new();
        let mut by_ns: HashMap<(&str, i32), usize> = HashMap::new();
        for (i, (name, fd, _)) in points.iter().enumerate() {
            let g = *by_ns.entry((name, fd.as_raw_fd())).or_insert_with(|| {
                groups.push((*fd, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let mut opened: Vec<Option<Point>> = (0..points.len()).map(|_| None).collect();
        // On failure, whatever was opened is closed the quick way.
        let abandon = |opened: Vec<Option<Point>>| {
            close_in_background(opened.into_iter().flatten().map(|p| p.fd).collect());
        };
        for (fd, members) in groups {
            let sockets = netns::run_in(fd, || {
                let mut group = Vec::with_capacity(members.len());
                for &i in &members {
                    match open(points[i].0, points[i].2) {
                        Ok(p) => group.push(Some(p)),
                        Err(e) => {
                            abandon(group);
                            return Err(e);
                        }
                    }
                }
                Ok(group)
            })
            .map_err(|e| {
                let (name, _, iface) = points[members[0]];
                context(e, &format!("capture on {name}/{iface}"))
            })
            .and_then(|r| r);
            match sockets {
                Ok(sockets) => {
                    for (i, p) in members.into_iter().zip(sockets) {
                        opened[i] = p;
                    }
                }
                Err(e) => {
                    abandon(opened);
                    return Err(e);
                }
            }
        }
        Ok(CaptureSet {
            points: opened.into_iter().flatten().collect(),
            scratch: vec![0; SNAPLEN],
            cmsg: nix::cmsg_space!(nix::sys::time::TimeSpec),
        })
    }

    /// The capture points, in the order given to [`CaptureSet::start`].
    pub fn points(&self) -> Vec<CapturePoint> {
        self.points.iter().map(|p| p.point.clone()).collect()
    }

    /// Reads every frame queued so far, without waiting. Returns how many were read.
    ///
    /// Only needed for long captures, so that the kernel's buffers do not fill up.
    pub fn drain(&mut self) -> usize {
        let (scratch, cmsg) = (&mut self.scratch, &mut self.cmsg);
        self.points.iter_mut().map(|p| p.drain(scratch, cmsg)).sum()
    }

    /// Reads frames until none has arrived for `quiet` (or `max` has passed): for the tail of
    /// a flow (a FIN, a late retransmission) to be in the capture before it stops.
    pub fn settle(&mut self, quiet: Duration, max: Duration) -> usize {
        settle::until_quiet(self, quiet, max, Self::drain, |set| {
            set.points.iter().map(|p| p.fd.as_fd()).collect()
        })
    }

    /// Reads what is left, closes every socket, and returns every frame ordered by kernel
    /// timestamp (see the module documentation for ties).
    pub fn stop(self) -> Vec<Captured> {
        self.stop_with_stats().0
    }

    /// [`CaptureSet::stop`], with how each capture point fared.
    pub fn stop_with_stats(mut self) -> (Vec<Captured>, Vec<PointStats>) {
        // Nothing is queued from here on; then what was queued is read.
        for p in &self.points {
            drop_everything(p.fd.as_fd());
        }
        self.drain();
        let points = std::mem::take(&mut self.points);
        let mut stats = Vec::with_capacity(points.len());
        let mut keyed = Vec::new();
        let mut fds = Vec::with_capacity(points.len());
        for (index, p) in points.into_iter().enumerate() {
            let dropped = p.dropped.saturating_add(read_drops(&p.fd));
            stats.push(PointStats {
                point: p.point.clone(),
                ifindex: p.ifindex,
                driver: p.driver.clone(),
                rcvbuf: p.rcvbuf,
                captured: p.frames.len(),
                dropped,
                unstamped: p.unstamped,
                error: p.error.clone(),
            });
            fds.push(p.fd);
            for (seq, f) in p.frames.into_iter().enumerate() {
                // Lower before stacked for received frames, stacked before lower for sent ones.
                let rank = u8::from(p.stacked != f.outgoing);
                keyed.push((
                    (f.ts, rank, index, seq),
                    Captured {
                        netns: p.point.netns.clone(),
                        iface: p.point.iface.clone(),
                        ts: f.ts,
                        outgoing: f.outgoing,
                        orig_len: f.orig_len,
                        frame: f.data,
                    },
                ));
            }
        }
        close_in_background(fds);
        keyed.sort_unstable_by_key(|(k, _)| *k);
        (keyed.into_iter().map(|(_, c)| c).collect(), stats)
    }
}

impl Drop for CaptureSet {
    fn drop(&mut self) {
        close_in_background(
            std::mem::take(&mut self.points)
                .into_iter()
                .map(|p| p.fd)
                .collect(),
        );
    }
}

/// Closes capture sockets off the caller's path, all at once.
///
/// Closing a packet socket waits for an RCU grace period (`synchronize_net` in
/// `packet_release`), some 10 ms each: ten sockets closed one after the other take over 100 ms.
/// Closed together on threads of their own, they share one grace period, and nobody waits for
/// it. (Their filters already drop everything, so nothing is captured meanwhile.)
fn close_in_background(fds: Vec<OwnedFd>) {
    if fds.is_empty() {
        return;
    }
    // If no thread can be made, the closure is dropped and the sockets are closed right here.
    let _ = std::thread::Builder::new()
        .name("podpath-capture-close".into())
        .spawn(move || {
            std::thread::scope(|s| {
                for fd in fds {
                    // Likewise: a thread that cannot be made closes its socket in this one.
                    let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(fd));
                }
            })
        });
}

/// Attaches a classic BPF filter that accepts nothing (`ret #0`): the socket stays open but
/// nothing more is queued. Swapping a filter is cheap, unlike unbinding or closing.
fn drop_everything(fd: BorrowedFd<'_>) {
    let mut insn = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: insn.as_mut_ptr(),
    };
    // SAFETY: `prog` points at one valid instruction, alive for the call; the kernel copies it.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        );
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

static TIMESTAMP_KEEPER: OnceLock<Result<OwnedFd, TimestampError>> = OnceLock::new();

/// Why frames could not be made to carry the kernel's timestamp of their passing. Cloned:
/// every later call gives the first one's error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TimestampError {
    #[error("cannot switch kernel timestamps on: {what}: {source}")]
    Io {
        what: &'static str,
        source: Arc<io::Error>,
    },
    #[error("cannot switch kernel timestamps on: {0}")]
    Netlink(Arc<crate::netlink::NetlinkError>),
    #[error("cannot switch kernel timestamps on: the thread panicked")]
    Panicked,
    #[error("cannot switch kernel timestamps on: frames were still stamped when read after 2 s")]
    StampedOnRead,
}

/// The error of the step `what` of switching timestamps on.
fn ts_err<E: Into<io::Error>>(what: &'static str) -> impl FnOnce(E) -> TimestampError {
    move |e| TimestampError::Io {
        what,
        source: Arc::new(e.into()),
    }
}

/// Makes sure the kernel timestamps every frame as it passes, for as long as the process lives.
///
/// The kernel stamps frames on their way (on receive, and as a tap sees them leave) only while
/// some socket in the system asks for timestamps; the first such socket switches stamping on
/// through a work queue, a little later, and the last one to close switches it off again. A
/// frame that passed meanwhile is stamped only when read, long after the fact. So once per
/// process this opens a UDP socket with `SO_TIMESTAMPNS` in a throwaway namespace (the socket
/// keeps it alive; it holds nothing but `lo`), keeps it open for good, and sends itself
/// datagrams until one comes back stamped before it was read: from then on every frame is
/// stamped on its way, whatever other sockets come and go.
pub fn keep_timestamps_on() -> Result<(), TimestampError> {
    TIMESTAMP_KEEPER
        .get_or_init(|| {
            std::thread::scope(|s| {
                std::thread::Builder::new()
                    .name("podpath-tstamp".into())
                    .spawn_scoped(s, timestamp_keeper)
                    .map_err(ts_err("spawning its thread"))?
                    .join()
                    .unwrap_or(Err(TimestampError::Panicked))
            })
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// Runs on a thread of its own, which it moves into a new namespace and which ends with it.
fn timestamp_keeper() -> Result<OwnedFd, TimestampError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(ts_err("unshare(CLONE_NEWNET)"))?;
    crate::netlink::Netlink::open()
        .and_then(|mut nl| nl.set_up(1))
        .map_err(|e| TimestampError::Netlink(Arc::new(e)))?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(ts_err("bind"))?;
    let fd = OwnedFd::from(socket);
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true).map_err(ts_err("SO_TIMESTAMPNS"))?;
    let socket = std::net::UdpSocket::from(fd);
    socket
        .connect(socket.local_addr().map_err(ts_err("getsockname"))?)
        .map_err(ts_err("connect"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(ts_err("SO_RCVTIMEO"))?;
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        socket.send(b"t").map_err(ts_err("send"))?;
        // Delivery over lo is done when send returns; give it a moment in any case.
        std::thread::sleep(Duration::from_micros(50));
        let before = now();
        let mut buf = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let stamp = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(ts_err("recvmsg"))?
        .cmsgs()
        .map_err(ts_err("recvmsg control messages"))?
        .find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(t) => {
                Some(Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
            }
            _ => None,
        });
        if stamp.is_some_and(|t| t < before) {
            return Ok(socket.into());
        }
        if Instant::now() > deadline {
            return Err(TimestampError::StampedOnRead);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens the capture socket of `iface` in the calling thread's namespace.
fn open(netns: &str, iface: &str) -> io::Result<Point> {
    let what = format!("capture on {netns}/{iface}");
    let ctx = |op: &'static str| {
        let what = &what;
        move |e: nix::Error| context(e.into(), &format!("{what}: {op}"))
    };
    // Protocol 0: nothing is queued before the bind below names the interface.
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(ctx("socket(AF_PACKET, SOCK_RAW)"))?;
    let ifindex = if_index(fd.as_fd(), iface)
        .map_err(|e| context(e, &format!("{what}: no such interface")))?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true).map_err(ctx("SO_TIMESTAMPNS"))?;
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
    }
    let rcvbuf = nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf).unwrap_or(0);
    let driver = driver_name(fd.as_fd(), iface).unwrap_or_default();
    bind_all(fd.as_fd(), ifindex).map_err(|e| context(e, &format!("{what}: bind")))?;
    // Counters start at the bind.
    let _ = read_drops(&fd);
    Ok(Point {
        point: CapturePoint {
            netns: netns.to_string(),
            iface: iface.to_string(),
        },
        ifindex,
        stacked: STACKED_DRIVERS.contains(&driver.as_str()),
        driver,
        rcvbuf,
        fd,
        frames: Vec::new(),
        dropped: 0,
        unstamped: 0,
        error: None,
    })
}

/// Binds a packet socket to every protocol (`ETH_P_ALL`) on interface `ifindex`.
fn bind_all(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An `ifreq` naming `iface`.
fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= ifr.ifr_name.len() || name.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// The index of `iface` in the namespace of `fd` (`SIOCGIFINDEX`, asked through the capture
/// socket itself rather than a socket made for it as `if_nametoindex` does).
fn if_index(fd: BorrowedFd<'_>, iface: &str) -> io::Result<u32> {
    let mut ifr = ifreq(iface)?;
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into `ifr`, a valid ifreq.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut ifr) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel filled in the index member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
}

/// `struct ethtool_drvinfo` of `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// The driver of `iface` (`ETHTOOL_GDRVINFO`, which needs no privilege), asked through any
/// socket of its namespace.
fn driver_name(fd: BorrowedFd<'_>, iface: &str) -> io::Result<String> {
    // SAFETY: plain old data; all-zeroes is a valid value.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut ifr = ifreq(iface)?;
    ifr.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO writes at most one ethtool_drvinfo into the
    // buffer `ifru_data` points at, which lives until the call returns.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Frames dropped since the last call (`PACKET_STATISTICS` resets the kernel's counters).
fn read_drops(fd: &OwnedFd) -> u32 {
    // SAFETY: plain old data.
    let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` is a tpacket_stats and `len` its size.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if r == 0 { st.tp_drops } else { 0 }
}

impl Point {
    /// Reads every queued frame. Returns how many.
    #[allow(
        clippy::ptr_arg,
        reason = "nix's recvmsg takes the control buffer as a Vec"
    )]
    fn drain(&mut self, scratch: &mut [u8], cmsg: &mut Vec<u8>) -> usize {
        let mut n = 0;
        loop {
            let before = now();
            let mut iov = [IoSliceMut::new(scratch)];
            let got = recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(cmsg),
                MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
            );
            let (len, outgoing, ts) = match got {
                Ok(msg) => {
                    let outgoing = msg
                        .address
                        .is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING);
                    let ts = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmTimestampns(t) => {
                                Some(Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
                            }
                            _ => None,
                        })
                    });
                    (msg.bytes, outgoing, ts)
                }
                Err(nix::errno::Errno::EAGAIN) => return n,
                Err(nix::errno::Errno::EINTR) => continue,
                // The interface went away (reported once); what was queued is still there.
                Err(nix::errno::Errno::ENETDOWN) if self.error.is_none() => {
                    self.error = Some("interface went down".into());
                    continue;
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    return n;
                }
            };
            // A frame the kernel did not stamp on its way is stamped when read: its time says
            // nothing about the path (see [`keep_timestamps_on`]).
            let ts = match ts {
                Some(ts) if ts < before => ts,
                other => {
                    self.unstamped += 1;
                    other.unwrap_or_else(now)
                }
            };
            self.frames.push(Frame {
                ts,
                outgoing,
                orig_len: len,
                data: scratch[..len.min(scratch.len())].to_vec(),
            });
            n += 1;
        }
    }
}
