//! The conntrack dump against the real kernel: a client, a router doing DNAT (and, for one
//! flow, masquerade) with nftables, and a server, each in its own namespace; what
//! `trace::conntrack::dump` reads from the router's table, compared with `conntrack -L`.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network. Each trial then makes its own namespaces (by `unshare` on short-lived
//! threads, held by their fds) and configures them over netlink from threads inside them.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use netns_runtime::netns;
use netns_runtime::trace::Tuple;
use netns_runtime::trace::conntrack::{
    self, Direction, Entry, IPS_ASSURED, IPS_DST_NAT, IPS_SEEN_REPLY, IPS_SRC_NAT, IcmpKind,
};

mod support;

use support::{Ns, TOOL_TIMEOUT, Test, TestResult, ping};

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        ("dnat_masquerade_and_echo", dnat_masquerade_and_echo),
        (
            "untracked_namespaces_are_empty",
            untracked_namespaces_are_empty,
        ),
        ("dump_cost", dump_cost),
        (
            "events_report_what_happened_while_listening",
            events_report_what_happened_while_listening,
        ),
    ];
    support::run_trials(tests, || {
        for tool in ["nft", "conntrack"] {
            support::tool(&[tool, "--version"], TOOL_TIMEOUT).map_err(|e| {
                format!("{tool} is not usable: {}", e.message().unwrap_or_default())
            })?;
        }
        Ok(())
    });
}

/// The address clients ask for; the router DNATs it to the server.
const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const ROUTER_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const ECHO_ID: u16 = 0x5151;

/// TCP to the service's port 80 goes to the server's 8080 with the client's address kept; UDP
/// to its port 53 goes to the server's 5353 and leaves masqueraded as the router.
const ROUTER_RULES: &str = "table ip podpath {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr 10.96.0.1 tcp dport 80 dnat to 10.0.2.2:8080
        ip daddr 10.96.0.1 udp dport 53 dnat to 10.0.2.2:5353
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip daddr 10.0.2.2 udp dport 5353 masquerade
    }
}
";

/// What `trace::conntrack::dump` reads from `ns`'s table.
fn dump(ns: &Ns) -> Result<Vec<Entry>, Failed> {
    conntrack::dump(ns.fd.as_fd()).map_err(|e| format!("dump {}: {e}", ns.name).into())
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

fn net(addr: Ipv4Addr, len: u8) -> ipnet::Ipv4Net {
    ipnet::Ipv4Net::new(addr, len).unwrap()
}

/// client (c0) -- (r0) router (r1) -- (s0) server, the router forwarding and running
/// [`ROUTER_RULES`].
struct Path {
    client: Ns,
    router: Ns,
    server: Ns,
}

fn path() -> Result<Path, Failed> {
    let (client, router, server) = (Ns::new("client")?, Ns::new("router")?, Ns::new("server")?);
    let mut nlc = client.netlink()?;
    let mut nlr = router.netlink()?;
    let mut nls = server.netlink()?;
    let c0 = nlc.add_veth("c0", None, "r0", None, Some(router.fd.as_fd()), 1500)?;
    let r1 = nlr.add_veth("r1", None, "s0", None, Some(server.fd.as_fd()), 1500)?;
    let r0 = nlr.link_index("r0")?;
    let s0 = nls.link_index("s0")?;
    nlc.add_addr(c0, net(CLIENT, 24))?;
    nlr.add_addr(r0, net(ROUTER_CLIENT_SIDE, 24))?;
    nlr.add_addr(r1, net(ROUTER_SERVER_SIDE, 24))?;
    nls.add_addr(s0, net(SERVER, 24))?;
    nlc.set_up(c0)?;
    nlr.set_up(r0)?;
    nlr.set_up(r1)?;
    nls.set_up(s0)?;
    nlc.add_route(
        net(Ipv4Addr::UNSPECIFIED, 0),
        Some(ROUTER_CLIENT_SIDE),
        c0,
        false,
    )?;
    nls.add_route(
        net(Ipv4Addr::UNSPECIFIED, 0),
        Some(ROUTER_SERVER_SIDE),
        s0,
        false,
    )?;
    router.run(|| netns::write_sysctl("net/ipv4/ip_forward", "1"))?;
    router.tool("nft", &["-f", "-"], Some(ROUTER_RULES))?;
    client.wait_ready("c0")?;
    router.wait_ready("r0")?;
    router.wait_ready("r1")?;
    server.wait_ready("s0")?;
    Ok(Path {
        client,
        router,
        server,
    })
}

fn v4(addr: SocketAddr) -> Result<SocketAddrV4, Failed> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => Err(format!("an IPv6 address: {a}").into()),
    }
}

/// The tuple of a packet from `from` to `to`.
fn tuple(proto: u8, from: SocketAddrV4, to: SocketAddrV4) -> Tuple {
    Tuple {
        proto,
        src: *from.ip(),
        dst: *to.ip(),
        sport: from.port(),
        dport: to.port(),
    }
}

/// The one entry whose original tuple is `orig`.
fn find<'a>(entries: &'a [Entry], orig: &Tuple) -> Result<&'a Entry, Failed> {
    let found: Vec<&Entry> = entries.iter().filter(|e| e.orig == *orig).collect();
    match found[..] {
        [e] => Ok(e),
        _ => Err(format!(
            "{} entries for {orig} in\n{}",
            found.len(),
            conntrack::render(entries)
        )
        .into()),
    }
}

/// `conntrack -L`'s line for `e` (found by its original tuple) has the same fields as `e`'s
/// `Display`; the timeout (the third field) may have ticked between the two reads.
fn expect_same_as_conntrack_tool(e: &Entry, listing: &str) -> TestResult {
    let ours = e.to_string();
    let mine: Vec<&str> = ours.split_whitespace().collect();
    // The original tuple's fields (from the first `src=` to the second) identify the line.
    let orig_fields: Vec<&str> = mine
        .iter()
        .skip_while(|f| !f.starts_with("src="))
        .enumerate()
        .take_while(|(i, f)| *i == 0 || !f.starts_with("src="))
        .map(|(_, f)| *f)
        .filter(|f| !f.starts_with('['))
        .collect();
    let orig_fields = format!(" {} ", orig_fields.join(" "));
    let line = listing
        .lines()
        .find(|l| l.contains(&orig_fields))
        .ok_or_else(|| format!("no line with{orig_fields:?}in conntrack -L:\n{listing}"))?;
    let theirs: Vec<&str> = line.split_whitespace().collect();
    let timeouts_close = |a: &str, b: &str| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 2,
        _ => false,
    };
    let same = mine.len() == theirs.len()
        && mine
            .iter()
            .zip(&theirs)
            .enumerate()
            .all(|(i, (m, t))| m == t || (i == 2 && timeouts_close(m, t)));
    expect(same, || {
        format!("fields differ:\n  ours:      {ours}\n  conntrack: {line}")
    })
}

fn dnat_masquerade_and_echo() -> TestResult {
    let p = path()?;
    let service = |port| SocketAddrV4::new(SERVICE, port);

    // TCP through the DNAT: a few bytes each way, the connection kept open.
    let listener = p.server.run(|| TcpListener::bind((SERVER, 8080)))?;
    let mut client_tcp = p
        .client
        .run(|| TcpStream::connect_timeout(&service(80).into(), Duration::from_secs(3)))
        .map_err(|e| format!("connect to {}: {e}", service(80)))?;
    client_tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let (mut server_tcp, seen_by_server) = listener.accept()?;
    server_tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
    client_tcp.write_all(b"ping")?;
    let mut got = [0u8; 4];
    server_tcp.read_exact(&mut got)?;
    server_tcp.write_all(b"pong")?;
    client_tcp.read_exact(&mut got)?;
    expect(&got == b"pong", || format!("client got {got:?}"))?;
    let tcp_client = v4(client_tcp.local_addr()?)?;
    let tcp_server_peer = v4(seen_by_server)?;
    let tcp_server = v4(server_tcp.local_addr()?)?;

    // UDP through the DNAT and the masquerade.
    let server_udp = p.server.run(|| UdpSocket::bind((SERVER, 5353)))?;
    server_udp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let client_udp = p.client.run(|| UdpSocket::bind((CLIENT, 0)))?;
    client_udp.set_read_timeout(Some(Duration::from_secs(3)))?;
    client_udp.send_to(b"query", service(53))?;
    let mut buf = [0u8; 64];
    let (_, udp_seen_by_server) = server_udp.recv_from(&mut buf)?;
    let udp_seen_by_server = v4(udp_seen_by_server)?;
    server_udp.send_to(b"answer", udp_seen_by_server)?;
    let (_, answered_by) = client_udp.recv_from(&mut buf)?;
    expect(v4(answered_by)? == service(53), || {
        format!("the answer came from {answered_by}, not {}", service(53))
    })?;
    let udp_client = v4(client_udp.local_addr()?)?;
    expect(*udp_seen_by_server.ip() == ROUTER_SERVER_SIDE, || {
        format!("the server saw the query from {udp_seen_by_server}, not masqueraded")
    })?;

    // ICMP echo, not translated.
    p.client.run(|| ping(SERVER, ECHO_ID, 1))?;
    // UDP nobody answers (the port unreachable error does not count as a reply).
    client_udp.send_to(b"lost", (SERVER, 9))?;

    let entries = dump(&p.router)?;
    println!("{}", conntrack::render(&entries));

    // TCP: DNAT only.
    let tcp = find(&entries, &tuple(6, tcp_client, service(80)))?;
    expect(
        tcp.reply == tuple(6, SocketAddrV4::new(SERVER, 8080), tcp_client),
        || format!("reply tuple of {tcp}"),
    )?;
    expect(
        tcp.has_status(IPS_DST_NAT | IPS_SEEN_REPLY | IPS_ASSURED) && !tcp.has_status(IPS_SRC_NAT),
        || format!("status {:#x} of {tcp}", tcp.status),
    )?;
    expect(tcp.tcp_state.as_deref() == Some("ESTABLISHED"), || {
        format!("state of {tcp}")
    })?;
    expect(
        tcp.dnat() == Some(((SERVICE, 80), (SERVER, 8080))) && tcp.snat().is_none(),
        || format!("dnat {:?} snat {:?} of {tcp}", tcp.dnat(), tcp.snat()),
    )?;
    expect(
        tcp.timeout.is_some_and(|t| t > 300) && tcp.id.is_some(),
        || format!("timeout {:?} id {:?}", tcp.timeout, tcp.id),
    )?;
    // The packets as each end saw them belong to the connection, each in its direction.
    for (packet, want, what) in [
        (
            tuple(6, tcp_client, service(80)),
            Direction::Original,
            "sent by the client",
        ),
        (
            tuple(6, tcp_server_peer, tcp_server),
            Direction::Original,
            "received by the server",
        ),
        (
            tuple(6, tcp_server, tcp_server_peer),
            Direction::Reply,
            "sent by the server",
        ),
        (
            tuple(6, service(80), tcp_client),
            Direction::Reply,
            "received by the client",
        ),
    ] {
        expect(tcp.matches(&packet) == Some(want), || {
            format!(
                "{packet} ({what}) gives {:?} for {tcp}",
                tcp.matches(&packet)
            )
        })?;
    }

    // UDP: DNAT and masquerade.
    let udp = find(&entries, &tuple(17, udp_client, service(53)))?;
    expect(
        udp.has_status(IPS_DST_NAT | IPS_SRC_NAT | IPS_SEEN_REPLY),
        || format!("status {:#x} of {udp}", udp.status),
    )?;
    expect(
        udp.dnat() == Some(((SERVICE, 53), (SERVER, 5353)))
            && udp.snat()
                == Some((
                    (CLIENT, udp_client.port()),
                    (ROUTER_SERVER_SIDE, udp_seen_by_server.port()),
                )),
        || format!("dnat {:?} snat {:?} of {udp}", udp.dnat(), udp.snat()),
    )?;
    let udp_server = SocketAddrV4::new(SERVER, 5353);
    for (packet, want) in [
        (
            tuple(17, udp_seen_by_server, udp_server),
            Direction::Original,
        ),
        (tuple(17, udp_server, udp_seen_by_server), Direction::Reply),
        (tuple(17, service(53), udp_client), Direction::Reply),
    ] {
        expect(udp.matches(&packet) == Some(want), || {
            format!("{packet} gives {:?} for {udp}", udp.matches(&packet))
        })?;
    }
    expect(
        tcp.matches(&tuple(17, udp_client, service(53))).is_none(),
        || format!("the UDP query matches {tcp}"),
    )?;

    // ICMP echo: the echo id in both "ports", request and reply types.
    let echo = |from, to| Tuple {
        proto: 1,
        src: from,
        dst: to,
        sport: ECHO_ID,
        dport: ECHO_ID,
    };
    let icmp = find(&entries, &echo(CLIENT, SERVER))?;
    expect(
        icmp.reply == echo(SERVER, CLIENT)
            && icmp.orig_icmp == Some(IcmpKind { kind: 8, code: 0 })
            && icmp.reply_icmp == Some(IcmpKind { kind: 0, code: 0 })
            && icmp.has_status(IPS_SEEN_REPLY)
            && icmp.dnat().is_none()
            && icmp.snat().is_none(),
        || format!("{icmp:?}"),
    )?;

    let unanswered = find(
        &entries,
        &tuple(17, udp_client, SocketAddrV4::new(SERVER, 9)),
    )?;
    expect(!unanswered.has_status(IPS_SEEN_REPLY), || {
        format!("{unanswered} was answered")
    })?;

    // The same entries as conntrack-tools lists them.
    let listing = p.router.tool("conntrack", &["-L"], None)?;
    for e in [tcp, udp, icmp, unanswered] {
        expect_same_as_conntrack_tool(e, &listing)?;
    }
    let counted = listing.lines().count();
    expect(counted == entries.len(), || {
        format!(
            "conntrack -L lists {counted} entries, the dump {}:\n{listing}\n---\n{}",
            entries.len(),
            conntrack::render(&entries)
        )
    })?;
    drop((client_tcp, server_tcp));
    Ok(())
}

/// The event listener sees the connections made while it listens, with their NAT, and nothing
/// from before.
fn events_report_what_happened_while_listening() -> TestResult {
    let p = path()?;
    let service = |port| SocketAddrV4::new(SERVICE, port);
    let server_udp = p.server.run(|| UdpSocket::bind((SERVER, 5353)))?;
    server_udp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let client_udp = p.client.run(|| UdpSocket::bind((CLIENT, 0)))?;
    let mut buf = [0u8; 64];
    // Before listening: tracked, but not reported.
    client_udp.send_to(b"before", service(53))?;
    server_udp.recv_from(&mut buf)?;
    let events = conntrack::EventSet::start(&[("router", p.router.fd.as_fd())])?;
    let late = p.client.run(|| UdpSocket::bind((CLIENT, 0)))?;
    late.send_to(b"during", service(53))?;
    let (_, seen) = server_udp.recv_from(&mut buf)?;
    server_udp.send_to(b"answer", seen)?;
    late.set_read_timeout(Some(Duration::from_secs(3)))?;
    late.recv_from(&mut buf)?;
    let (tables, problems) = events.stop();
    expect(problems.is_empty(), || format!("{problems:?}"))?;
    expect(tables.len() == 1 && tables[0].0 == "router", || {
        format!("{tables:?}")
    })?;
    let entries = &tables[0].1;
    let during = tuple(17, v4(late.local_addr()?)?, service(53));
    let e = find(entries, &during)?;
    expect(
        e.dnat() == Some(((SERVICE, 53), (SERVER, 5353)))
            && e.snat().is_some_and(|(_, to)| to.0 == ROUTER_SERVER_SIDE),
        || format!("dnat {:?} snat {:?} of {e}", e.dnat(), e.snat()),
    )?;
    expect(e.has_status(IPS_SEEN_REPLY), || {
        format!("the answer's update was not reported: {e}")
    })?;
    let before = tuple(17, v4(client_udp.local_addr()?)?, service(53));
    expect(entries.iter().all(|e| e.orig != before), || {
        format!("an entry from before listening was reported: {entries:?}")
    })?;
    Ok(())
}

fn untracked_namespaces_are_empty() -> TestResult {
    // Never used by anything.
    let quiet = Ns::new("quiet")?;
    let entries = dump(&quiet)?;
    expect(entries.is_empty(), || conntrack::render(&entries))?;
    // Traffic went through the client, but nothing there asked for connection tracking.
    let p = path()?;
    p.client.run(|| ping(SERVER, ECHO_ID, 1))?;
    let router = dump(&p.router)?;
    expect(router.iter().any(|e| e.orig.proto == 1), || {
        format!(
            "the router tracked no echo:\n{}",
            conntrack::render(&router)
        )
    })?;
    let client = dump(&p.client)?;
    expect(client.is_empty(), || conntrack::render(&client))?;
    // Something that is not a namespace.
    let not_a_netns = std::fs::File::open("/")?;
    expect(conntrack::dump(not_a_netns.as_fd()).is_err(), || {
        "a dump through a directory's fd worked".into()
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times a dump of 1 and of 1000 entries (reported, not asserted).
fn dump_cost() -> TestResult {
    let p = path()?;
    let sender = p.client.run(|| UdpSocket::bind((CLIENT, 0)))?;
    let time_dumps = |want: usize| -> Result<Duration, Failed> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while dump(&p.router)?.len() < want {
            if Instant::now() > deadline {
                return Err(format!("the router never had {want} entries").into());
            }
            thread::sleep(Duration::from_millis(10));
        }
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let n = dump(&p.router)?.len();
            times.push(t.elapsed());
            expect(n >= want, || format!("{n} entries, expected {want}"))?;
        }
        Ok(median(times))
    };
    sender.send_to(b"x", (SERVER, 20000))?;
    let one = time_dumps(1)?;
    for port in 20001..21000 {
        sender.send_to(b"x", (SERVER, port))?;
    }
    let thousand = time_dumps(1000)?;
    // What of it is the thread entering the namespace.
    let enter = median(
        (0..21)
            .map(|_| {
                let t = Instant::now();
                p.router.run(|| ());
                t.elapsed()
            })
            .collect(),
    );
    let t = Instant::now();
    let listed = p.router.tool("conntrack", &["-L"], None)?.lines().count();
    let tool_took = t.elapsed();
    println!(
        "dump_cost: median of 21 dumps: 1 entry {one:.1?}, 1000 entries {thousand:.1?} \
         (of which a thread entering the namespace: {enter:.1?}); \
         `conntrack -L` of {listed} entries (one process) {tool_took:.1?}"
    );
    Ok(())
}
