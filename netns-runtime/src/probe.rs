//! Real traffic from inside a pod: TCP connections, UDP datagrams and ICMP echoes, and what came
//! of them.
//!
//! The probe functions create their sockets on the calling thread, so they must run on a thread
//! inside the client's namespace (see [`crate::netns::run_in`]).

use std::fmt;
use std::io::{self, Read as _};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::echo::{EchoAnswer, parse_answer};

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeTarget {
    Tcp(SocketAddrV4),
    Udp(SocketAddrV4),
    Icmp(Ipv4Addr),
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeTarget::Tcp(a) => write!(f, "tcp {a}"),
            ProbeTarget::Udp(a) => write!(f, "udp {a}"),
            ProbeTarget::Icmp(a) => write!(f, "icmp {a}"),
        }
    }
}

/// What came of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer came back. For TCP and UDP, from a builtin echo server, which said who it is
    /// and whom it saw; for ICMP, an echo reply from `from`.
    Answered {
        echo: Option<EchoAnswer>,
        from: SocketAddrV4,
        elapsed: Duration,
    },
    /// Actively refused: a TCP reset or an ICMP port unreachable (a REJECT looks like this).
    Refused { elapsed: Duration },
    /// Nothing came back in time (a DROP looks like this).
    Timeout { elapsed: Duration },
    /// The network said there is no way there (no route, or an ICMP host/net unreachable).
    Unreachable { detail: String, elapsed: Duration },
    /// Something answered, but not in a way podpath understands, or the probe itself failed.
    Error { detail: String },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answered {
                echo: Some(e),
                from,
                elapsed,
            } => write!(
                f,
                "answered by {} (from {from}, it saw {}) in {:.1?}",
                e.pod, e.peer, elapsed
            ),
            Outcome::Answered {
                echo: None,
                from,
                elapsed,
            } => write!(f, "echo reply from {} in {:.1?}", from.ip(), elapsed),
            Outcome::Refused { elapsed } => write!(f, "refused in {elapsed:.1?}"),
            Outcome::Timeout { elapsed } => write!(f, "timed out after {elapsed:.1?}"),
            Outcome::Unreachable { detail, elapsed } => {
                write!(f, "unreachable ({detail}) in {elapsed:.1?}")
            }
            Outcome::Error { detail } => write!(f, "error: {detail}"),
        }
    }
}

/// Sends one probe and waits at most `timeout` for its outcome.
pub fn probe(target: ProbeTarget, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = match target {
        ProbeTarget::Tcp(addr) => tcp(addr, timeout, start),
        ProbeTarget::Udp(addr) => udp(addr, timeout, start),
        ProbeTarget::Icmp(addr) => icmp(addr, timeout, start),
    };
    result.unwrap_or_else(|e| classify(e, start))
}

fn classify(e: io::Error, start: Instant) -> Outcome {
    let elapsed = start.elapsed();
    match e.raw_os_error() {
        Some(nix::libc::ECONNREFUSED) => Outcome::Refused { elapsed },
        Some(nix::libc::ETIMEDOUT | nix::libc::EAGAIN) => Outcome::Timeout { elapsed },
        Some(nix::libc::EHOSTUNREACH) => Outcome::Unreachable {
            detail: "host unreachable".into(),
            elapsed,
        },
        Some(nix::libc::ENETUNREACH) => Outcome::Unreachable {
            detail: "network unreachable".into(),
            elapsed,
        },
        _ if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            Outcome::Timeout { elapsed }
        }
        _ => Outcome::Error {
            detail: e.to_string(),
        },
    }
}

fn remaining(start: Instant, timeout: Duration) -> io::Result<Duration> {
    timeout
        .checked_sub(start.elapsed())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}

fn echo_outcome(text: &[u8], from: SocketAddr, start: Instant) -> Outcome {
    let text = String::from_utf8_lossy(text);
    let SocketAddr::V4(from) = from else {
        return Outcome::Error {
            detail: format!("answer from a non-IPv4 address {from}"),
        };
    };
    match parse_answer(&text) {
        Some(echo) => Outcome::Answered {
            echo: Some(echo),
            from,
            elapsed: start.elapsed(),
        },
        None => Outcome::Error {
            detail: format!("{from} answered {text:?}, not a podpath echo answer"),
        },
    }
}

fn tcp(addr: SocketAddrV4, timeout: Duration, start: Instant) -> io::Result<Outcome> {
    let mut stream = TcpStream::connect_timeout(&addr.into(), timeout)?;
    stream.set_read_timeout(Some(remaining(start, timeout)?))?;
    let mut buf = Vec::with_capacity(128);
    stream.read_to_end(&mut buf)?;
    Ok(echo_outcome(&buf, addr.into(), start))
}

fn udp(addr: SocketAddrV4, timeout: Duration, start: Instant) -> io::Result<Outcome> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(addr)?;
    socket.send(b"podpath-probe\n")?;
    socket.set_read_timeout(Some(remaining(start, timeout)?))?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf)?;
    Ok(echo_outcome(&buf[..n], addr.into(), start))
}

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;

static ICMP_SEQ: AtomicU16 = AtomicU16::new(1);

fn icmp(dst: Ipv4Addr, timeout: Duration, start: Instant) -> io::Result<Outcome> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let ident = (std::process::id() as u16) ^ 0x5050;
    let seq = ICMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let request = echo_request(ident, seq, b"podpath-probe");
    socket.send_to(&request, &SockAddr::from(SocketAddrV4::new(dst, 0)))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        socket.set_read_timeout(Some(remaining(start, timeout)?))?;
        let (n, _) = socket.recv_from(&mut buf)?;
        // SAFETY: recv_from initialised the first `n` bytes.
        let packet: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        match parse_icmp_reply(&packet, ident, seq) {
            Some(IcmpEvent::Reply(from)) => {
                return Ok(Outcome::Answered {
                    echo: None,
                    from: SocketAddrV4::new(from, 0),
                    elapsed: start.elapsed(),
                });
            }
            Some(IcmpEvent::Unreachable { from, code }) => {
                return Ok(Outcome::Unreachable {
                    detail: format!("{} from {from}", unreach_name(code)),
                    elapsed: start.elapsed(),
                });
            }
            None => continue,
        }
    }
}

fn unreach_name(code: u8) -> &'static str {
    match code {
        0 => "net unreachable",
        1 => "host unreachable",
        3 => "port unreachable",
        9 | 10 | 13 => "administratively prohibited",
        _ => "destination unreachable",
    }
}

/// Builds an ICMP echo request with a correct checksum.
pub fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![ICMP_ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let sum = inet_checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[derive(Debug, PartialEq, Eq)]
enum IcmpEvent {
    Reply(Ipv4Addr),
    Unreachable { from: Ipv4Addr, code: u8 },
}

/// Interprets a received IPv4 packet (raw ICMP sockets include the IP header) as an event about
/// our echo request, or `None` when it is about something else.
fn parse_icmp_reply(packet: &[u8], ident: u16, seq: u16) -> Option<IcmpEvent> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let src = Ipv4Addr::new(
        *packet.get(12)?,
        *packet.get(13)?,
        *packet.get(14)?,
        *packet.get(15)?,
    );
    let icmp = packet.get(ihl..)?;
    let (ty, code) = (*icmp.first()?, *icmp.get(1)?);
    let id_seq = |m: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*m.get(4)?, *m.get(5)?]),
            u16::from_be_bytes([*m.get(6)?, *m.get(7)?]),
        ))
    };
    match ty {
        ICMP_ECHO_REPLY if id_seq(icmp)? == (ident, seq) => Some(IcmpEvent::Reply(src)),
        ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED => {
            // The error quotes our IP header and the first 8 bytes of our ICMP request.
            let inner = icmp.get(8..)?;
            let inner_ihl = usize::from(inner.first()? & 0x0f) * 4;
            let quoted = inner.get(inner_ihl..)?;
            if *quoted.first()? == ICMP_ECHO_REQUEST && id_seq(quoted)? == (ident, seq) {
                Some(IcmpEvent::Unreachable { from: src, code })
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_request_verifies() {
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(inet_checksum(&p), 0);
    }

    fn ip_header(src: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&[10, 244, 1, 2]);
        h
    }

    #[test]
    fn echo_reply_matches_ident_and_seq() {
        let mut pkt = ip_header([10, 244, 2, 2]);
        let mut reply = echo_request(0x1234, 7, b"x");
        reply[0] = ICMP_ECHO_REPLY;
        pkt.extend_from_slice(&reply);
        assert_eq!(
            parse_icmp_reply(&pkt, 0x1234, 7),
            Some(IcmpEvent::Reply(Ipv4Addr::new(10, 244, 2, 2)))
        );
        assert_eq!(parse_icmp_reply(&pkt, 0x1234, 8), None);
    }

    #[test]
    fn unreachable_quoting_our_request_is_recognised() {
        let mut pkt = ip_header([10, 244, 1, 1]);
        pkt.extend_from_slice(&[ICMP_DEST_UNREACH, 1, 0, 0, 0, 0, 0, 0]);
        pkt.extend_from_slice(&ip_header([10, 244, 1, 2]));
        pkt.extend_from_slice(&echo_request(9, 3, b"")[..8]);
        assert_eq!(
            parse_icmp_reply(&pkt, 9, 3),
            Some(IcmpEvent::Unreachable {
                from: Ipv4Addr::new(10, 244, 1, 1),
                code: 1
            })
        );
    }

    #[test]
    fn truncated_packets_are_ignored() {
        assert_eq!(parse_icmp_reply(&[0x45, 0, 0], 1, 1), None);
        assert_eq!(parse_icmp_reply(&[], 1, 1), None);
    }
}
