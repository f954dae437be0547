//! Trace listeners: one `NETLINK_NETFILTER` socket per namespace, in `NFNLGRP_NFTRACE`.
//!
//! Each socket is made on a thread inside its namespace ([`netns::run_in`]) and so hears the
//! trace of that namespace only, wherever it is read. The kernel queues an event on every
//! listening socket as the traced packet is evaluated (synchronously, in the packet's path), so
//! once a packet has been handled its events are waiting. Events that do not fit the socket's
//! receive buffer are lost, and the next read says so (`ENOBUFS`): such overruns are counted
//! ([`TraceStats::overruns`]), never passed over silently.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::libc;
use nix::sys::socket::SockProtocol;

use super::RuleEvent;
use super::wire::{self, TraceMessage};
use crate::netlink::socket::{Datagram, NlSocket, RECV_BUF_LEN};
use crate::{netns, settle};

/// `NFNLGRP_NFTRACE` of `<linux/netfilter/nfnetlink.h>`.
const NFNLGRP_NFTRACE: u32 = 9;

/// Asked-for receive buffer per socket (the kernel doubles it for bookkeeping). A trace event
/// takes about 1 KiB of buffer, and a packet makes a few to a few dozen of them.
const RCVBUF: usize = 8 << 20;

/// The netfilter trace of a set of namespaces, from [`TraceSet::start`] to [`TraceSet::stop`].
///
/// Only packets marked for tracing make events: see [`super::enable`].
pub struct TraceSet {
    points: Vec<Point>,
    buf: Vec<u8>,
}

struct Point {
    netns: String,
    socket: NlSocket,
    rcvbuf: usize,
    /// Interface names by index, read when the listener started; completed as events name
    /// interfaces made later.
    names: HashMap<u32, String>,
    walks: Walks,
    events: Vec<RuleEvent>,
    overruns: u32,
    malformed: usize,
    error: Option<String>,
}

/// How the listener of one namespace fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStats {
    pub netns: String,
    /// The receive buffer the kernel granted, in bytes.
    pub rcvbuf: usize,
    pub events: usize,
    /// Reads that failed with `ENOBUFS`: events were lost (at least one each) because the
    /// socket's buffer was full.
    pub overruns: u32,
    /// Messages that were not well-formed trace events (or did not fit the read buffer).
    pub malformed: usize,
    /// The first read error other than an overrun or "nothing more to read", if any.
    pub error: Option<String>,
}

impl TraceStats {
    /// Nothing lost, nothing unreadable.
    pub fn complete(&self) -> bool {
        self.overruns == 0 && self.malformed == 0 && self.error.is_none()
    }
}

impl TraceSet {
    /// Starts listening to the trace of every `(netns name, netns)`; give each namespace once.
    /// When this returns, every socket is in the group: any event from then on is kept.
    pub fn start(points: &[(&str, BorrowedFd<'_>)]) -> io::Result<TraceSet> {
        let mut opened = Vec::with_capacity(points.len());
        for (name, fd) in points {
            let point = netns::run_in(*fd, || open(name))
                .and_then(|r| r)
                .map_err(|e| io::Error::new(e.kind(), format!("nftrace in {name}: {e}")))?;
            opened.push(point);
        }
        Ok(TraceSet {
            points: opened,
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// The namespaces listened to, in the order given to [`TraceSet::start`].
    pub fn netns(&self) -> Vec<String> {
        self.points.iter().map(|p| p.netns.clone()).collect()
    }

    /// Reads every event queued so far, without waiting. Returns how many were read.
    ///
    /// Only needed for long traces, so that the kernel's buffers do not overflow.
    pub fn drain(&mut self) -> usize {
        let buf = &mut self.buf;
        self.points.iter_mut().map(|p| p.drain(buf)).sum()
    }

    /// Reads events until none has arrived for `quiet` (or `max` has passed).
    pub fn settle(&mut self, quiet: Duration, max: Duration) -> usize {
        settle::until_quiet(self, quiet, max, Self::drain, |set| {
            set.points.iter().map(|p| p.socket.as_fd()).collect()
        })
    }

    /// Reads what is left and closes every socket. Returns the events grouped by namespace, in
    /// the order given to [`TraceSet::start`], each namespace's in the kernel's order
    /// ([`RuleEvent::seq`]).
    pub fn stop(self) -> Vec<RuleEvent> {
        self.stop_with_stats().0
    }

    /// [`TraceSet::stop`], with how each namespace's listener fared.
    pub fn stop_with_stats(mut self) -> (Vec<RuleEvent>, Vec<TraceStats>) {
        // Leaving the group stops the queueing; what was queued stays to be read.
        for p in &self.points {
            let _ = p.socket.leave(NFNLGRP_NFTRACE);
        }
        self.drain();
        let mut events = Vec::new();
        let mut stats = Vec::with_capacity(self.points.len());
        for p in std::mem::take(&mut self.points) {
            stats.push(TraceStats {
                netns: p.netns,
                rcvbuf: p.rcvbuf,
                events: p.events.len(),
                overruns: p.overruns,
                malformed: p.malformed,
                error: p.error,
            });
            events.extend(p.events);
        }
        (events, stats)
    }
}

/// Opens the trace listener of the calling thread's namespace.
fn open(netns: &str) -> io::Result<Point> {
    let socket = NlSocket::open(SockProtocol::NetlinkNetFilter)?;
    let rcvbuf = socket.set_rcvbuf(RCVBUF);
    socket
        .join(NFNLGRP_NFTRACE)
        .map_err(|e| io::Error::new(e.kind(), format!("{e} NFNLGRP_NFTRACE")))?;
    let names = nix::net::if_::if_nameindex()
        .map(|all| {
            all.iter()
                .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Point {
        netns: netns.to_string(),
        socket,
        rcvbuf,
        names,
        walks: Walks::default(),
        events: Vec::new(),
        overruns: 0,
        malformed: 0,
        error: None,
    })
}

/// What the kernel sends only once per walk of a packet through a base chain (with the walk's
/// first event): the packet's headers and its interfaces. Later events of the walk (same trace
/// id) get them from the first.
///
/// Within a walk the addresses do not change: NAT rewrites the packet after the chain. A walk
/// whose first event was lost to an overrun would take them from the packet's previous walk.
#[derive(Debug, Default)]
struct Walks {
    by_id: HashMap<u32, Dumped>,
}

#[derive(Debug, Clone)]
struct Dumped {
    packet: Option<crate::trace::Tuple>,
    ip_id: Option<u16>,
    iif: Option<u32>,
    oif: Option<u32>,
}

/// Walks remembered at most; walks are short, so only the last few matter.
const WALKS_KEPT: usize = 4096;

impl Walks {
    fn complete(&mut self, m: &mut TraceMessage) {
        let dumped = m.packet.is_some() || m.iif.is_some() || m.oif.is_some();
        if dumped {
            if self.by_id.len() >= WALKS_KEPT {
                self.by_id.clear();
            }
            self.by_id.insert(
                m.id,
                Dumped {
                    packet: m.packet,
                    ip_id: m.ip_id,
                    iif: m.iif,
                    oif: m.oif,
                },
            );
        } else if let Some(d) = self.by_id.get(&m.id) {
            m.packet = d.packet;
            m.ip_id = d.ip_id;
            m.iif = d.iif;
            m.oif = d.oif;
        }
    }
}

/// The name of interface `index` in the namespace of `fd` (`SIOCGIFNAME`, which any socket of
/// that namespace answers).
fn if_name(fd: BorrowedFd<'_>, index: u32) -> Option<String> {
    // SAFETY: ifreq is plain old data; all-zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_ifru.ifru_ifindex = i32::try_from(index).ok()?;
    // SAFETY: SIOCGIFNAME reads the index and writes a NUL-terminated name into `ifr`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFNAME as _, &mut ifr) };
    if r != 0 {
        return None;
    }
    let name: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&name).into_owned())
}

impl Point {
    /// Reads every queued datagram. Returns how many events they held.
    fn drain(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        let Point {
            netns,
            socket,
            names,
            walks,
            events,
            overruns,
            malformed,
            error,
            ..
        } = self;
        let drained = socket.drain(buf, |datagram| match datagram {
            Datagram::Data(d) => {
                for message in wire::parse_datagram(d) {
                    match message {
                        Ok(mut m) => {
                            walks.complete(&mut m);
                            let seq = events.len() as u64;
                            let event = RuleEvent::from_message(netns, seq, m, |index| {
                                name(names, socket.as_fd(), index)
                            });
                            events.push(event);
                            n += 1;
                        }
                        Err(_) => *malformed += 1,
                    }
                }
            }
            Datagram::Truncated(_) => *malformed += 1,
            // Events were lost; the ones after are still there to read.
            Datagram::Overrun => *overruns += 1,
        });
        if let Err(e) = drained {
            error.get_or_insert_with(|| e.to_string());
        }
        n
    }
}

/// The name of interface `index`: known, or asked of the kernel through `fd` (interfaces made
/// after the listener started), or `#index` when it is gone.
fn name(names: &mut HashMap<u32, String>, fd: BorrowedFd<'_>, index: u32) -> String {
    if let Some(name) = names.get(&index) {
        return name.clone();
    }
    match if_name(fd, index) {
        Some(name) => {
            names.insert(index, name.clone());
            name
        }
        None => format!("#{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::nftrace::wire::{self, build};

    #[test]
    fn later_events_of_a_walk_get_the_packet_of_its_first() {
        let first = wire::parse_datagram(&build::rule_event())
            .remove(0)
            .unwrap();
        let later = |id: u32| TraceMessage {
            id,
            handle: None,
            iif: None,
            oif: None,
            packet: None,
            ip_id: None,
            ..first.clone()
        };
        let mut walks = Walks::default();
        let mut m = first.clone();
        walks.complete(&mut m);
        assert_eq!(m, first);
        let mut same = later(first.id);
        walks.complete(&mut same);
        assert_eq!(
            (same.packet, same.ip_id, same.iif, same.oif, same.handle),
            (first.packet, first.ip_id, first.iif, None, None)
        );
        let mut other = later(first.id + 1);
        walks.complete(&mut other);
        assert_eq!((other.packet, other.iif), (None, None));
    }
}
