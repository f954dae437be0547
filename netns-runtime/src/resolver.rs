//! A pod's stub resolver: resolves a name the way glibc's resolver does with the pod's
//! resolv.conf (search list, `ndots`, UDP with a TCP retry on truncation), and keeps every
//! question it asked and what came back, so a flow can show its DNS exchange.
//!
//! It runs on the calling thread, which must be inside the pod's namespace
//! ([`crate::netns::run_in`]): the queries leave from the pod, to the nameserver of its
//! resolv.conf (the kube-dns ClusterIP), and take the same DNAT path as any pod traffic.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::{Name, RData, RecordType};

/// The parts of resolv.conf the resolver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<Ipv4Addr>,
    pub search: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    /// Parses resolv.conf text (glibc's defaults where a line is missing: ndots 1).
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") => conf.search = words.map(str::to_string).collect(),
                Some("domain") => {
                    conf.search = words
                        .next()
                        .map(|d| vec![d.to_string()])
                        .unwrap_or_default()
                }
                Some("options") => {
                    for opt in words {
                        if let Some(n) = opt.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            conf.ndots = std::cmp::min(n, 15);
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The names glibc tries for `name`, in order: as given first when it has at least `ndots`
    /// dots (or ends with one), else each search domain first and the name as given last.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![format!("{absolute}.")];
        }
        let as_is = format!("{name}.");
        let searched = self
            .search
            .iter()
            .map(|d| format!("{name}.{}.", d.trim_end_matches('.')));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(as_is).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(as_is)).collect()
        }
    }
}

/// One question asked and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub name: String,
    pub server: SocketAddrV4,
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, ... or `TIMEOUT` when nothing came back.
    pub rcode: String,
    pub answers: Vec<Ipv4Addr>,
    /// Whether the answer came over TCP (after a truncated UDP one).
    pub tcp: bool,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} A? -> {}", self.name, self.rcode)?;
        if !self.answers.is_empty() {
            let a: Vec<String> = self.answers.iter().map(Ipv4Addr::to_string).collect();
            write!(f, " {}", a.join(" "))?;
        }
        write!(
            f,
            " (from {}{})",
            self.server,
            if self.tcp { ", tcp" } else { "" }
        )
    }
}

/// The outcome of resolving one name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    pub exchanges: Vec<Exchange>,
}

impl Resolution {
    /// The answering exchange: the first with addresses.
    pub fn answered(&self) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| !e.answers.is_empty())
    }

    /// The addresses the name resolved to (empty when it did not).
    pub fn addresses(&self) -> &[Ipv4Addr] {
        self.answered().map_or(&[], |e| &e.answers)
    }

    /// The rcode the application sees: NOERROR with addresses; otherwise NOERROR when some
    /// candidate existed without an A record (NODATA), else the last one's.
    pub fn rcode(&self) -> String {
        if self.answered().is_some() || self.exchanges.iter().any(|e| e.rcode == "NOERROR") {
            return "NOERROR".into();
        }
        self.exchanges
            .last()
            .map_or_else(|| "NOERROR".into(), |e| e.rcode.clone())
    }
}

/// Resolves `name` (A records) as glibc would with `conf`, spending at most `timeout`.
pub fn resolve(conf: &ResolvConf, name: &str, timeout: Duration) -> Resolution {
    let start = Instant::now();
    let mut resolution = Resolution::default();
    let Some(&server) = conf.nameservers.first() else {
        return resolution;
    };
    let server = SocketAddrV4::new(server, 53);
    for (i, candidate) in conf.candidates(name).into_iter().enumerate() {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let exchange = ask(server, &candidate, left, i as u16);
        let stop = !exchange.answers.is_empty()
            || !matches!(exchange.rcode.as_str(), "NXDOMAIN" | "NOERROR");
        resolution.exchanges.push(exchange);
        if stop {
            break;
        }
    }
    resolution
}

fn ask(server: SocketAddrV4, name: &str, timeout: Duration, salt: u16) -> Exchange {
    let mut exchange = Exchange {
        name: name.to_string(),
        server,
        rcode: "TIMEOUT".into(),
        answers: Vec::new(),
        tcp: false,
    };
    let Ok(request) = query_bytes(name, salt) else {
        exchange.rcode = "BADNAME".into();
        return exchange;
    };
    let reply = udp_exchange(server, &request, timeout).and_then(|reply| {
        if reply.truncated() {
            exchange.tcp = true;
            tcp_exchange(server, &request, timeout)
        } else {
            Some(reply)
        }
    });
    if let Some(reply) = reply {
        exchange.rcode = crate::dns::wire::rcode_name(reply.response_code());
        exchange.answers = reply
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
    }
    exchange
}

fn query_bytes(name: &str, salt: u16) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut message = Message::new();
    message
        .set_id((std::process::id() as u16) ^ 0x2a2a ^ salt.wrapping_mul(7919))
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(HQuery::query(Name::from_ascii(name)?, RecordType::A));
    message.to_vec()
}

fn udp_exchange(server: SocketAddrV4, request: &[u8], timeout: Duration) -> Option<Message> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(server).ok()?;
    let start = Instant::now();
    // glibc's default: two attempts, the time shared between them.
    for attempt in 0..2u32 {
        socket.send(request).ok()?;
        let per_try = timeout.saturating_sub(start.elapsed()) / (2 - attempt);
        if per_try.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(per_try)).ok()?;
        let mut buf = [0u8; 4096];
        match socket.recv(&mut buf) {
            Ok(n) => {
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && m.id() == u16::from_be_bytes([request[0], request[1]])
                {
                    return Some(m);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return None,
            Err(_) => continue,
        }
    }
    None
}

fn tcp_exchange(server: SocketAddrV4, request: &[u8], timeout: Duration) -> Option<Message> {
    let mut stream = TcpStream::connect_timeout(&server.into(), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).ok()?;
    Message::from_vec(&buf).ok()
}

/// Asks `server` one question (`name`, of type `qtype` by number, recursion not desired) over
/// UDP, then TCP when truncated, and gives the whole answer as text for comparing servers:
/// the rcode, the AA flag, and each section's records sorted (servers may shuffle them), one a
/// line as `dig` prints them. `None`: no answer within `timeout`.
pub fn ask_all(server: SocketAddrV4, name: &str, qtype: u16, timeout: Duration) -> Option<String> {
    let mut message = Message::new();
    message
        .set_id((std::process::id() as u16) ^ 0x5a5a ^ qtype)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(HQuery::query(
            Name::from_ascii(name).ok()?,
            RecordType::from(qtype),
        ));
    let request = message.to_vec().ok()?;
    let reply = udp_exchange(server, &request, timeout)?;
    let reply = if reply.truncated() {
        tcp_exchange(server, &request, timeout)?
    } else {
        reply
    };
    let mut out = crate::dns::wire::rcode_name(reply.response_code());
    if reply.authoritative() {
        out.push_str(" aa");
    }
    for (title, records) in [
        ("ANSWER", reply.answers()),
        ("AUTHORITY", reply.name_servers()),
        ("ADDITIONAL", reply.additionals()),
    ] {
        let mut lines: Vec<String> = records
            .iter()
            .map(|r| {
                r.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        if !lines.is_empty() {
            out.push_str(&format!("\n;; {title}\n{}", lines.join("\n")));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET: &str = "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";

    #[test]
    fn parses_what_the_kubelet_writes() {
        let conf = ResolvConf::parse(KUBELET);
        assert_eq!(conf.nameservers, [Ipv4Addr::new(10, 96, 0, 10)]);
        assert_eq!(conf.search.len(), 3);
        assert_eq!(conf.ndots, 5);
    }

    #[test]
    fn short_names_go_through_the_search_list_first() {
        let conf = ResolvConf::parse(KUBELET);
        assert_eq!(
            conf.candidates("myapp"),
            [
                "myapp.default.svc.cluster.local.",
                "myapp.svc.cluster.local.",
                "myapp.cluster.local.",
                "myapp."
            ]
        );
        // Four dots are still fewer than ndots:5: the search list comes first even for an
        // FQDN written without its trailing dot, as in a real pod.
        assert_eq!(
            conf.candidates("myapp.default.svc.cluster.local")[0],
            "myapp.default.svc.cluster.local.default.svc.cluster.local."
        );
        assert_eq!(conf.candidates("myapp.default.svc.cluster.local.").len(), 1);
    }

    #[test]
    fn many_dots_are_tried_as_given_first() {
        let conf = ResolvConf::parse("nameserver 10.96.0.10\nsearch a.b\noptions ndots:1\n");
        assert_eq!(conf.candidates("x.y"), ["x.y.", "x.y.a.b."]);
    }

    #[test]
    fn the_application_sees_nodata_over_nxdomain() {
        let ex = |rcode: &str| Exchange {
            name: "n.".into(),
            server: "10.96.0.10:53".parse().unwrap(),
            rcode: rcode.into(),
            answers: vec![],
            tcp: false,
        };
        let r = Resolution {
            exchanges: vec![ex("NXDOMAIN"), ex("NOERROR"), ex("NXDOMAIN")],
        };
        assert_eq!(r.rcode(), "NOERROR");
        assert!(r.addresses().is_empty());
        let r = Resolution {
            exchanges: vec![ex("NXDOMAIN"), ex("NXDOMAIN")],
        };
        assert_eq!(r.rcode(), "NXDOMAIN");
    }
}
