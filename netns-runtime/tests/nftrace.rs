//! The netfilter trace against the real kernel: a client, a router and a server namespace in a
//! row, an nft DNAT rule and an iptables-nft FORWARD rule in the router, and what the trace of
//! each namespace shows of a TCP connection and a UDP datagram crossing it.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network or rules. Each trial then makes its own namespaces (by `unshare` on
//! short-lived threads, held by their fds) and configures them from threads inside them.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use netns_runtime::netns;
use netns_runtime::trace::Tuple;
use netns_runtime::trace::nftrace::{
    self, RuleBook, RuleEvent, TRACE_TABLE, TraceKind, TraceSet, TraceStats,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod support;

use support::{Ns, Test, TestResult};

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        (
            "dnat_and_forward_through_a_router",
            dnat_and_forward_through_a_router,
        ),
        (
            "enable_is_idempotent_and_disable_stops_the_trace",
            enable_is_idempotent_and_disable_stops_the_trace,
        ),
        (
            "overruns_are_counted_or_nothing_is_lost",
            overruns_are_counted_or_nothing_is_lost,
        ),
        ("overhead", overhead),
    ];
    support::run_trials(tests, can_trace);
}

/// Whether the tools are there and the kernel has nf_tables tracing; otherwise every trial is
/// ignored with the reason. Only what the kernel or the machine may lack is checked here: that
/// events then arrive is for the trials to show.
fn can_trace() -> Result<(), String> {
    for tool in ["nft", "iptables-restore"] {
        support::run(&[tool, "--version"], Duration::from_secs(10))
            .map_err(|e| format!("{tool} is not usable: {}", e.message().unwrap_or_default()))?;
    }
    let probe = Ns::new("probe").map_err(|e| e.message().unwrap_or_default().to_string())?;
    nftrace::enable(probe.fd.as_fd())
        .map_err(|e| format!("the kernel or nft cannot set nftrace: {e}"))?;
    TraceSet::start(&[("probe", probe.fd.as_fd())])
        .map(drop)
        .map_err(|e| format!("the kernel has no nf_tables trace group: {e}"))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

/// `client` (10.0.1.2 on `veth-c`) — (`veth-r1` 10.0.1.1) `router` (`veth-r2` 10.0.2.1) —
/// `server` (10.0.2.2 on `veth-s`); the router forwards, the ends route through it.
struct Row {
    client: Ns,
    router: Ns,
    server: Ns,
}

fn row() -> Result<Row, Failed> {
    let (client, router, server) = (Ns::new("client")?, Ns::new("router")?, Ns::new("server")?);
    let net = |s: &str| -> ipnet::Ipv4Net { s.parse().unwrap() };
    let mut nlr = router.netlink()?;
    let r1 = nlr.add_veth(
        "veth-r1",
        None,
        "veth-c",
        None,
        Some(client.fd.as_fd()),
        1500,
    )?;
    let r2 = nlr.add_veth(
        "veth-r2",
        None,
        "veth-s",
        None,
        Some(server.fd.as_fd()),
        1500,
    )?;
    nlr.add_addr(r1, net("10.0.1.1/24"))?;
    nlr.add_addr(r2, net("10.0.2.1/24"))?;
    nlr.set_up(r1)?;
    nlr.set_up(r2)?;
    router.run(|| netns::write_sysctl("net/ipv4/ip_forward", "1"))?;
    for (ns, iface, addr, gw) in [
        (&client, "veth-c", "10.0.1.2/24", "10.0.1.1"),
        (&server, "veth-s", "10.0.2.2/24", "10.0.2.1"),
    ] {
        let mut nl = ns.netlink()?;
        let index = nl.link_index(iface)?;
        nl.add_addr(index, net(addr))?;
        nl.set_up(index)?;
        nl.add_route(net("0.0.0.0/0"), Some(ip(gw)), index, false)?;
    }
    for (ns, iface) in [
        (&client, "veth-c"),
        (&router, "veth-r1"),
        (&router, "veth-r2"),
        (&server, "veth-s"),
    ] {
        ns.wait_ready(iface)?;
    }
    Ok(Row {
        client,
        router,
        server,
    })
}

/// A Service-like DNAT in nft syntax, in a table of its own.
const DNAT: &str = "table ip t {
    chain pre {
        type nat hook prerouting priority -100; policy accept;
        ip daddr 10.96.0.1 tcp dport 80 dnat to 10.0.2.2:8080
    }
}
";

/// iptables-nft rules: FORWARD drops unless the second rule accepts (the first one matches
/// nothing here, so an off-by-one pairing with iptables-save would show).
const FORWARD: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 9 -j DROP
-A FORWARD -m comment --comment x -j ACCEPT
COMMIT
";

const FORWARD_ACCEPT: &str = "-A FORWARD -m comment --comment x -j ACCEPT";

/// A TCP connection from client 10.0.1.2:40000 to the Service 10.96.0.1:80, accepted by the
/// server on 10.0.2.2:8080 (which needs the DNAT and the FORWARD rule), then closed.
fn connect_through(row: &Row) -> TestResult {
    let listener = row.server.run(|| TcpListener::bind("10.0.2.2:8080"))?;
    let mut client = row.client.run(|| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(SocketAddrV4::new(ip("10.0.1.2"), 40000)))?;
        s.connect_timeout(
            &SockAddr::from(SocketAddrV4::new(ip("10.96.0.1"), 80)),
            Duration::from_secs(3),
        )?;
        Ok(s)
    })?;
    client.write_all(b"hi")?;
    let (conn, from) = listener.accept()?;
    expect(from.to_string() == "10.0.1.2:40000", || {
        format!("server saw {from}")
    })?;
    drop(conn);
    Ok(())
}

/// One UDP datagram client 10.0.1.2:4000 > server 10.0.2.2:5000, received.
fn datagram_through(row: &Row) -> TestResult {
    let server = row.server.run(|| UdpSocket::bind("10.0.2.2:5000"))?;
    server.set_read_timeout(Some(Duration::from_secs(3)))?;
    row.client.run(|| -> std::io::Result<()> {
        UdpSocket::bind("10.0.1.2:4000")?.send_to(b"hello", "10.0.2.2:5000")?;
        Ok(())
    })?;
    let mut buf = [0u8; 16];
    let (n, _) = server.recv_from(&mut buf)?;
    expect(&buf[..n] == b"hello", || {
        format!("server got {:?}", &buf[..n])
    })
}

fn tuple(proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    Tuple {
        proto,
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
    }
}

/// The first event of `events` that `pred` picks, or an error showing them all.
fn find<'a>(
    events: &'a [RuleEvent],
    what: &str,
    pred: impl Fn(&RuleEvent) -> bool,
) -> Result<&'a RuleEvent, Failed> {
    events
        .iter()
        .find(|e| pred(e))
        .ok_or_else(|| format!("no event {what} among:\n{}", nftrace::render(events)).into())
}

fn expect_complete(stats: &[TraceStats]) -> TestResult {
    expect(stats.iter().all(TraceStats::complete), || {
        format!("{stats:#?}")
    })
}

// ---- trials ---------------------------------------------------------------------------------

fn dnat_and_forward_through_a_router() -> TestResult {
    let row = row()?;
    row.router.tool("nft", &["-f", "-"], Some(DNAT))?;
    row.router
        .tool("iptables-restore", &["-w", "5"], Some(FORWARD))?;
    nftrace::enable(row.client.fd.as_fd())?;
    nftrace::enable(row.router.fd.as_fd())?;
    // The server is left untraced: what reaches it was traced in the router, but the mark
    // does not cross the veth.
    let mut set = TraceSet::start(&[
        ("client", row.client.fd.as_fd()),
        ("router", row.router.fd.as_fd()),
        ("server", row.server.fd.as_fd()),
    ])?;
    connect_through(&row)?;
    datagram_through(&row)?;
    set.settle(Duration::from_millis(50), Duration::from_secs(2));
    let (mut events, stats) = set.stop_with_stats();
    expect_complete(&stats)?;
    RuleBook::read(row.router.fd.as_fd())?.annotate_in("router", &mut events);
    println!("{}", nftrace::render(&events));

    // Per namespace, in order and numbered from 0.
    for ns in ["client", "router"] {
        let seqs: Vec<u64> = events
            .iter()
            .filter(|e| e.netns == ns)
            .map(|e| e.seq)
            .collect();
        expect(
            !seqs.is_empty() && seqs.iter().enumerate().all(|(i, &s)| s == i as u64),
            || format!("{ns}: seq {seqs:?}"),
        )?;
    }
    let server = stats
        .iter()
        .find(|s| s.netns == "server")
        .ok_or("no server stats")?;
    expect(
        server.events == 0 && !events.iter().any(|e| e.netns == "server"),
        || format!("the untraced server namespace has events: {server:?}"),
    )?;
    let netns_order: Vec<&str> = events.iter().map(|e| e.netns.as_str()).collect();
    expect(netns_order.is_sorted_by_key(|n| n != &"client"), || {
        "events are not grouped in the order the namespaces were given".into()
    })?;

    let syn_before = tuple(6, "10.0.1.2", 40000, "10.96.0.1", 80);
    let syn_after = tuple(6, "10.0.1.2", 40000, "10.0.2.2", 8080);
    let udp = tuple(17, "10.0.1.2", 4000, "10.0.2.2", 5000);
    let router: Vec<RuleEvent> = events
        .iter()
        .filter(|e| e.netns == "router")
        .cloned()
        .collect();
    // The kernel sends the packet with the first event of a walk through a base chain only;
    // the later ones get it from there.
    let bare: Vec<&RuleEvent> = router
        .iter()
        .filter(|e| e.packet.is_none() || e.iif.is_none())
        .collect();
    expect(bare.is_empty(), || {
        format!("router events without packet or iif: {bare:#?}")
    })?;

    // The DNAT rule, met by the SYN as it arrived: before the rewrite.
    let dnat = find(&router, "ip t pre rule accept", |e| {
        e.family == "ip" && e.table == "t" && e.chain == "pre" && e.kind == TraceKind::Rule
    })?;
    expect(
        dnat.verdict.as_deref() == Some("accept")
            && dnat.packet == Some(syn_before)
            && dnat.iif.as_deref() == Some("veth-r1")
            && dnat.oif.is_none()
            && dnat.handle.is_some()
            && dnat.rule.as_deref()
                == Some("ip daddr 10.96.0.1 tcp dport 80 dnat to 10.0.2.2:8080"),
        || format!("DNAT event: {dnat:#?}"),
    )?;
    // The trace table saw the SYN first, on the same walk through prerouting.
    let first = find(&router, "of the trace table", |e| e.table == TRACE_TABLE)?;
    expect(
        first.chain == "prerouting" && first.packet == Some(syn_before) && first.id == dnat.id,
        || format!("first router event: {first}\nDNAT event: {dnat}"),
    )?;

    // The iptables-nft FORWARD rule, with its iptables-save text, met after the rewrite.
    let forward = |t: Tuple| {
        find(
            &router,
            &format!("ip filter FORWARD accept of {t}"),
            move |e| e.table == "filter" && e.chain == "FORWARD" && e.packet == Some(t),
        )
    };
    for t in [syn_after, udp] {
        let e = forward(t)?;
        expect(
            e.family == "ip"
                && e.kind == TraceKind::Rule
                && e.verdict.as_deref() == Some("accept")
                && e.iif.as_deref() == Some("veth-r1")
                && e.oif.as_deref() == Some("veth-r2")
                && e.rule.as_deref() == Some(FORWARD_ACCEPT),
            || format!("FORWARD event: {e:#?}"),
        )?;
    }
    // The server's answer is traced too, as it enters from the other side (conntrack undoes
    // the DNAT later, in postrouting).
    find(&router, "of the SYN-ACK", |e| {
        e.table == TRACE_TABLE
            && e.packet == Some(syn_after.reversed())
            && e.iif.as_deref() == Some("veth-r2")
    })?;

    // The client traces its own output: the SYN leaving, addressed to the Service.
    let out = find(&events, "client output", |e| {
        e.netns == "client"
            && e.table == TRACE_TABLE
            && e.chain == "output"
            && e.packet == Some(syn_before)
    })?;
    expect(out.iif.is_none(), || {
        format!("client output event: {out:#?}")
    })?;
    Ok(())
}

fn enable_is_idempotent_and_disable_stops_the_trace() -> TestResult {
    let row = row()?;
    let router = row.router.fd.as_fd();
    nftrace::enable(router)?;
    nftrace::enable(router)?;
    let book = RuleBook::read(router)?;
    let rules: Vec<Option<&str>> = (1..10)
        .map(|h| {
            ["prerouting", "output"]
                .iter()
                .find_map(|c| book.rule("ip", TRACE_TABLE, c, h))
        })
        .filter(Option::is_some)
        .collect();
    expect(rules == [Some("meta nftrace set 1"); 2], || {
        format!("trace table rules after enabling twice: {rules:?}\n{book:#?}")
    })?;

    let mut set = TraceSet::start(&[("router", router)])?;
    datagram_through(&row)?;
    set.settle(Duration::from_millis(20), Duration::from_secs(1));
    let (traced, stats) = set.stop_with_stats();
    expect_complete(&stats)?;
    expect(!traced.is_empty(), || "no events while enabled".into())?;

    nftrace::disable(router)?;
    nftrace::disable(router)?;
    let mut set = TraceSet::start(&[("router", router)])?;
    datagram_through(&row)?;
    set.settle(Duration::from_millis(20), Duration::from_secs(1));
    let after = set.stop();
    expect(after.is_empty(), || {
        format!("events after disable:\n{}", nftrace::render(&after))
    })?;
    let left = row.router.tool("nft", &["list", "ruleset"], None)?;
    expect(!left.contains(TRACE_TABLE), || {
        format!("left behind:\n{left}")
    })
}

/// A burst of datagrams through the router, more than the socket's buffer holds the events of
/// (some 4 events of under 1 KiB each per datagram, against a 16 MiB buffer): every one's
/// FORWARD event is there, or the listener says events were lost.
fn overruns_are_counted_or_nothing_is_lost() -> TestResult {
    let row = row()?;
    row.router
        .tool("iptables-restore", &["-w", "5"], Some(FORWARD))?;
    nftrace::enable(row.router.fd.as_fd())?;
    let set = TraceSet::start(&[("router", row.router.fd.as_fd())])?;
    let n = 30_000;
    let _sink = row.server.run(|| UdpSocket::bind("10.0.2.2:5000"))?;
    row.client.run(|| -> std::io::Result<()> {
        let s = UdpSocket::bind("10.0.1.2:4000")?;
        for _ in 0..n {
            s.send_to(b"x", "10.0.2.2:5000")?;
        }
        Ok(())
    })?;
    // Nothing was read while sending: the socket buffer held it all, or overflowed.
    let (events, stats) = set.stop_with_stats();
    let forwarded = events
        .iter()
        .filter(|e| e.chain == "FORWARD" && e.kind == TraceKind::Rule)
        .count();
    eprintln!(
        "burst of {n}: {} events, {forwarded} FORWARD, rcvbuf {} B, {} overruns",
        events.len(),
        stats[0].rcvbuf,
        stats[0].overruns
    );
    expect(stats[0].malformed == 0 && stats[0].error.is_none(), || {
        format!("{stats:#?}")
    })?;
    expect(
        forwarded == n || (forwarded < n && stats[0].overruns > 0),
        || format!("{forwarded} of {n} FORWARD events and no overrun reported: {stats:#?}"),
    )
}

/// Not assertions: what starting and stopping five listeners costs, and how fast events are
/// read and decoded.
fn overhead() -> TestResult {
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let nss: Vec<Ns> = names.iter().map(|n| Ns::new(n)).collect::<Result<_, _>>()?;
    let points: Vec<(&str, _)> = nss.iter().map(|ns| (ns.name, ns.fd.as_fd())).collect();
    let mut start = Duration::MAX;
    let mut stop = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let set = TraceSet::start(&points)?;
        start = start.min(t.elapsed());
        let t = Instant::now();
        let (_, stats) = set.stop_with_stats();
        stop = stop.min(t.elapsed());
        expect_complete(&stats)?;
    }
    let t = Instant::now();
    for ns in &nss {
        nftrace::enable(ns.fd.as_fd())?;
    }
    let enable = t.elapsed() / nss.len() as u32;
    eprintln!(
        "nftrace: start {start:?}, stop {stop:?} for {} namespaces (best of 5); enable \
         {enable:?} per namespace",
        nss.len()
    );

    // Read-and-decode rate, against a full buffer.
    let row = row()?;
    row.router
        .tool("iptables-restore", &["-w", "5"], Some(FORWARD))?;
    let _sink = row.server.run(|| UdpSocket::bind("10.0.2.2:5000"))?;
    let send = |n: usize| -> Result<Duration, Failed> {
        Ok(row.client.run(|| -> std::io::Result<Duration> {
            let s = UdpSocket::bind("10.0.1.2:0")?;
            let t = Instant::now();
            for _ in 0..n {
                s.send_to(b"x", "10.0.2.2:5000")?;
            }
            Ok(t.elapsed())
        })?)
    };
    let n = 1000;
    let plain = send(n)?;
    nftrace::enable(row.router.fd.as_fd())?;
    let set = TraceSet::start(&[("router", row.router.fd.as_fd())])?;
    let traced = send(n)?;
    let t = Instant::now();
    let (events, stats) = set.stop_with_stats();
    let read = t.elapsed();
    expect_complete(&stats)?;
    eprintln!(
        "nftrace: {n} datagrams through a traced router: sending {traced:?} (untraced \
         {plain:?}); {} events read and decoded in {read:?}: {:.0} k events/s",
        events.len(),
        events.len() as f64 / read.as_secs_f64() / 1e3
    );
    Ok(())
}
