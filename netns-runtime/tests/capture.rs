//! Captures against the real kernel: what AF_PACKET sockets in several namespaces see of UDP,
//! TCP, ICMP and ARP over a veth pair, through a bridge, and over VXLAN, and what it costs.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network. Each trial then makes its own namespaces (by `unshare` on short-lived
//! threads, held by their fds) and configures them over netlink from threads inside them.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use netns_runtime::capture::decode::{IPPROTO_UDP, Transport};
use netns_runtime::capture::{self, CaptureSet, Captured, PointStats, pcapng};
use netns_runtime::topology::{Mac, Vxlan};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod support;

use support::{Ns, Test, TestResult, ping};

/// How long switching kernel timestamps on took, and whether it worked.
static KEEPER: std::sync::OnceLock<(Duration, Result<(), String>)> = std::sync::OnceLock::new();

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        ("veth_udp_tcp_icmp_arp", veth_udp_tcp_icmp_arp),
        (
            "bridge_port_before_bridge_on_equal_stamps",
            bridge_port_before_bridge_on_equal_stamps,
        ),
        ("vxlan_underlay_and_inner", vxlan_underlay_and_inner),
        (
            "interface_errors_name_the_point",
            interface_errors_name_the_point,
        ),
        ("overhead", overhead),
    ];
    support::run_trials(tests, || {
        // Once per process (CaptureSet::start would do it too); timed for the overhead trial.
        let t = Instant::now();
        let on = capture::keep_timestamps_on().map_err(|e| e.to_string());
        let _ = KEEPER.set((t.elapsed(), on));
        Ok(())
    });
}

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

/// `netns/iface dir summary`, the form expectations are written in.
fn line(c: &Captured) -> String {
    let what = match c.decode() {
        Ok(p) => p.to_string(),
        Err(e) => e.to_string(),
    };
    format!("{}/{} {} {what}", c.netns, c.iface, c.direction())
}

/// Checks that `expected` lines occur in `packets` in this order (other packets may come in
/// between).
fn expect_subsequence(packets: &[Captured], expected: &[String]) -> TestResult {
    let lines: Vec<String> = packets.iter().map(line).collect();
    let mut at = 0;
    for (i, want) in expected.iter().enumerate() {
        match lines[at..].iter().position(|l| l == want) {
            Some(k) => at += k + 1,
            None => {
                return Err(format!(
                    "expected, in order:\n  {}\nmissing from #{i} on: {want}\ncaptured:\n{}",
                    expected.join("\n  "),
                    capture::render(packets)
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Nothing dropped, every frame stamped by the kernel on its way, no read error.
fn expect_clean(stats: &[PointStats]) -> TestResult {
    expect(
        stats
            .iter()
            .all(|s| s.dropped == 0 && s.unstamped == 0 && s.error.is_none()),
        || format!("{stats:#?}"),
    )
}

fn expect_sorted(packets: &[Captured]) -> TestResult {
    expect(packets.windows(2).all(|w| w[0].ts <= w[1].ts), || {
        format!(
            "captures not ordered by timestamp:\n{}",
            capture::render(packets)
        )
    })
}

/// On a veth pair, every frame leaving one end enters the other, byte for byte, later.
fn expect_veth_pairs(packets: &[Captured], a: (&str, &str), b: (&str, &str)) -> TestResult {
    let at = |p: (&str, &str), outgoing: bool| -> Vec<&Captured> {
        packets
            .iter()
            .filter(|c| c.netns == p.0 && c.iface == p.1 && c.outgoing == outgoing)
            .collect()
    };
    for (from, to) in [(a, b), (b, a)] {
        let (sent, received) = (at(from, true), at(to, false));
        expect(sent.len() == received.len(), || {
            format!(
                "{}/{} sent {} frames, {}/{} received {}:\n{}",
                from.0,
                from.1,
                sent.len(),
                to.0,
                to.1,
                received.len(),
                capture::render(packets)
            )
        })?;
        for (s, r) in sent.iter().zip(&received) {
            expect(s.frame == r.frame && s.ts <= r.ts, || {
                format!(
                    "sent and received frames differ or go back in time:\n  {s}\n  {r}\n{}",
                    capture::render(packets)
                )
            })?;
        }
    }
    Ok(())
}

/// Writes the capture as pcapng and has tshark list interface, source and destination of every
/// frame; skipped (with a message) when tshark is missing.
fn expect_tshark_reads(
    name: &str,
    points: &[capture::CapturePoint],
    packets: &[Captured],
) -> TestResult {
    let path = std::env::temp_dir().join(format!("podpath-{name}-{}.pcapng", std::process::id()));
    pcapng::write_file(&path, points, packets)?;
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-d",
            "udp.port==8472,vxlan",
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
        ])
        .args(["-e", "ip.src", "-e", "ip.dst"])
        .output();
    let _ = fs::remove_file(&path);
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{name}: tshark is not installed; not reading the pcapng file back");
            return Ok(());
        }
        Err(e) => return Err(format!("tshark: {e}").into()),
    };
    expect(out.status.success(), || {
        format!("tshark failed: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text.lines().collect();
    let want: Vec<String> = packets
        .iter()
        .map(|c| {
            // tshark lists every IPv4 header of a frame (outer and inner), comma-separated.
            let mut src = Vec::new();
            let mut dst = Vec::new();
            let mut p = c.decode().ok();
            while let Some(pk) = p {
                let Some(ip4) = pk.ipv4() else { break };
                src.push(ip4.src.to_string());
                dst.push(ip4.dst.to_string());
                p = pk.vxlan().and_then(|v| v.inner.as_deref()).cloned();
            }
            format!(
                "{}/{}\t{}\t{}",
                c.netns,
                c.iface,
                src.join(","),
                dst.join(",")
            )
        })
        .collect();
    expect(got == want, || {
        format!("tshark read:\n{text}\nexpected:\n{}", want.join("\n"))
    })
}

const MAC_A: Mac = Mac([0x0a, 0x58, 10, 0, 0, 1]);
const MAC_B: Mac = Mac([0x0a, 0x58, 10, 0, 0, 2]);

/// `a` (10.0.0.1 on `va`) and `b` (10.0.0.2 on `vb`) joined by a veth pair.
fn veth_pair() -> Result<(Ns, Ns), Failed> {
    let (a, b) = (Ns::new("a")?, Ns::new("b")?);
    let mut nla = a.netlink()?;
    let mut nlb = b.netlink()?;
    let va = nla.add_veth(
        "va",
        Some(MAC_A),
        "vb",
        Some(MAC_B),
        Some(b.fd.as_fd()),
        1500,
    )?;
    let vb = nlb.link_index("vb")?;
    nla.add_addr(va, net("10.0.0.1/24"))?;
    nlb.add_addr(vb, net("10.0.0.2/24"))?;
    nla.set_up(va)?;
    nlb.set_up(vb)?;
    a.wait_ready("va")?;
    b.wait_ready("vb")?;
    Ok((a, b))
}

// ---- trials ---------------------------------------------------------------------------------

fn veth_udp_tcp_icmp_arp() -> TestResult {
    let (a, b) = veth_pair()?;
    let server_udp = b.run(|| UdpSocket::bind("10.0.0.2:5000"))?;
    server_udp.set_read_timeout(Some(Duration::from_secs(2)))?;
    let listener = b.run(|| TcpListener::bind("10.0.0.2:6000"))?;

    let set = CaptureSet::start(&[("a", a.fd.as_fd(), "va"), ("b", b.fd.as_fd(), "vb")])?;
    let points = set.points();
    let mut set = set;

    // UDP (the first frame to 10.0.0.2 waits for ARP).
    a.run(|| -> std::io::Result<()> {
        let s = UdpSocket::bind("10.0.0.1:4000")?;
        s.send_to(b"hello", "10.0.0.2:5000")?;
        Ok(())
    })?;
    let mut buf = [0u8; 64];
    let (n, from) = server_udp.recv_from(&mut buf)?;
    expect(
        &buf[..n] == b"hello" && from.to_string() == "10.0.0.1:4000",
        || format!("udp server got {:?} from {from}", &buf[..n]),
    )?;

    // TCP: handshake, 4 bytes, the server closes, then the client.
    let mut client = a.run(|| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(SocketAddrV4::new(ip("10.0.0.1"), 40000)))?;
        s.connect_timeout(
            &SockAddr::from(SocketAddrV4::new(ip("10.0.0.2"), 6000)),
            Duration::from_secs(2),
        )?;
        Ok(s)
    })?;
    client.write_all(b"ping")?;
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut got = [0u8; 4];
    conn.read_exact(&mut got)?;
    drop(conn);
    client.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest)?;
    drop(client);

    // ICMP echo.
    a.run(|| ping(ip("10.0.0.2"), 0x4242, 1))?;

    set.settle(Duration::from_millis(50), Duration::from_secs(1));
    let (packets, stats) = set.stop_with_stats();
    expect_clean(&stats)?;
    expect(stats.iter().all(|s| s.driver == "veth"), || {
        format!("{stats:#?}")
    })?;
    println!("{}", capture::render(&packets));

    expect_sorted(&packets)?;
    expect_veth_pairs(&packets, ("a", "va"), ("b", "vb"))?;
    let both = |from: &str, to: &str, what: &str| {
        [format!("{from} out {what}"), format!("{to} in {what}")]
    };
    let ab = |what: &str| both("a/va", "b/vb", what);
    let ba = |what: &str| both("b/vb", "a/va", what);
    let expected: Vec<String> = [
        ab("arp who-has 10.0.0.2 tell 10.0.0.1"),
        ba(&format!("arp reply 10.0.0.2 is-at {MAC_B}")),
        ab("10.0.0.1:4000 > 10.0.0.2:5000 udp length 5"),
        ab("10.0.0.1:40000 > 10.0.0.2:6000 tcp [S]"),
        ba("10.0.0.2:6000 > 10.0.0.1:40000 tcp [S.]"),
        ab("10.0.0.1:40000 > 10.0.0.2:6000 tcp [.]"),
        ab("10.0.0.1:40000 > 10.0.0.2:6000 tcp [P.] length 4"),
        ba("10.0.0.2:6000 > 10.0.0.1:40000 tcp [F.]"),
        ab("10.0.0.1:40000 > 10.0.0.2:6000 tcp [F.]"),
        ba("10.0.0.2:6000 > 10.0.0.1:40000 tcp [.]"),
        ab("10.0.0.1 > 10.0.0.2 icmp echo request id 16962 seq 1"),
        ba("10.0.0.2 > 10.0.0.1 icmp echo reply id 16962 seq 1"),
    ]
    .into_iter()
    .flatten()
    .collect();
    expect_subsequence(&packets, &expected)?;

    // The decoded fields, not only their rendering.
    let syn = packets
        .iter()
        .find(|c| c.outgoing && c.decode().ok().and_then(|p| p.tcp().copied()).is_some())
        .ok_or("no tcp")?
        .decode()?;
    expect(
        syn.src_mac == MAC_A
            && syn.dst_mac == MAC_B
            && syn.ipv4().is_some_and(|i| i.ttl == 64 && i.dont_fragment)
            && syn.tcp().is_some_and(|t| t.ack == 0 && t.seq != 0),
        || format!("{syn:#?}"),
    )?;
    expect_tshark_reads("veth", &points, &packets)
}

fn bridge_port_before_bridge_on_equal_stamps() -> TestResult {
    // pod (10.0.0.2 on eth0) -- veth -- node: port `vpod` in bridge `br0` (10.0.0.1).
    let (pod, node) = (Ns::new("pod")?, Ns::new("node")?);
    let mut nln = node.netlink()?;
    let mut nlp = pod.netlink()?;
    let br = nln.add_bridge("br0", Mac([0x0a, 0x58, 10, 0, 0, 1]), 1500)?;
    let port = nln.add_veth(
        "vpod",
        None,
        "eth0",
        Some(MAC_B),
        Some(pod.fd.as_fd()),
        1500,
    )?;
    nln.set_master(port, br)?;
    nln.add_addr(br, net("10.0.0.1/24"))?;
    nln.set_up(br)?;
    nln.set_up(port)?;
    let eth0 = nlp.link_index("eth0")?;
    nlp.add_addr(eth0, net("10.0.0.2/24"))?;
    nlp.set_up(eth0)?;
    pod.wait_ready("eth0")?;
    node.wait_ready("vpod")?;
    // Let the bridge port reach forwarding (no STP: immediately) and ARP settle first.
    pod.run(|| ping(ip("10.0.0.1"), 7, 1))?;

    let mut set = CaptureSet::start(&[
        ("node", node.fd.as_fd(), "br0"),
        ("pod", pod.fd.as_fd(), "eth0"),
        ("node", node.fd.as_fd(), "vpod"),
    ])?;
    for seq in 2..5 {
        pod.run(|| ping(ip("10.0.0.1"), 7, seq))?;
    }
    set.settle(Duration::from_millis(20), Duration::from_secs(1));
    let (packets, stats) = set.stop_with_stats();
    println!("{}", capture::render(&packets));
    let drivers: Vec<&str> = stats.iter().map(|s| s.driver.as_str()).collect();
    expect(drivers == ["bridge", "veth", "veth"], || {
        format!("{stats:#?}")
    })?;
    expect_clean(&stats)?;
    expect_sorted(&packets)?;
    let mut expected = Vec::new();
    for seq in 2..5 {
        let req = format!("10.0.0.2 > 10.0.0.1 icmp echo request id 7 seq {seq}");
        let rep = format!("10.0.0.1 > 10.0.0.2 icmp echo reply id 7 seq {seq}");
        expected.extend([
            format!("pod/eth0 out {req}"),
            format!("node/vpod in {req}"),
            format!("node/br0 in {req}"),
            format!("node/br0 out {rep}"),
            format!("node/vpod out {rep}"),
            format!("pod/eth0 in {rep}"),
        ]);
    }
    expect_subsequence(&packets, &expected)?;
    let ties = packets
        .windows(2)
        .filter(|w| w[0].ts == w[1].ts && w[0].iface == "vpod" && w[1].iface == "br0")
        .count();
    println!("bridge port and bridge stamped alike: {ties} of 3 requests");
    Ok(())
}

fn vxlan_underlay_and_inner() -> TestResult {
    // Two nodes on one underlay link, each with a flannel-style VXLAN device (VNI 1, port 8472,
    // no learning, the peer programmed as a permanent neighbour and an FDB entry).
    let (n1, n2) = (Ns::new("node1")?, Ns::new("node2")?);
    let mut nl1 = n1.netlink()?;
    let mut nl2 = n2.netlink()?;
    let (u1, u2) = (Mac([2, 0x42, 172, 18, 0, 2]), Mac([2, 0x42, 172, 18, 0, 3]));
    let e1 = nl1.add_veth(
        "eth0",
        Some(u1),
        "eth0",
        Some(u2),
        Some(n2.fd.as_fd()),
        1500,
    )?;
    let e2 = nl2.link_index("eth0")?;
    nl1.add_addr(e1, net("172.18.0.2/24"))?;
    nl2.add_addr(e2, net("172.18.0.3/24"))?;
    nl1.set_up(e1)?;
    nl2.set_up(e2)?;
    n1.wait_ready("eth0")?;
    n2.wait_ready("eth0")?;
    let (m1, m2) = (Mac([0x0e, 0x1f, 0, 0, 0, 1]), Mac([0x0e, 0x1f, 0, 0, 0, 2]));
    let vx = |mac, addr: &str, local: &str| Vxlan {
        name: "vx0".into(),
        vni: 1,
        port: 8472,
        mac,
        addr: net(addr),
        mtu: 1450,
        local: ip(local),
        underlay_dev: "eth0".into(),
        learning: false,
    };
    for (nl, e, me, peer_mac, addr, local, peer_ip, peer_under) in [
        (
            &mut nl1,
            e1,
            m1,
            m2,
            "10.244.0.1/24",
            "172.18.0.2",
            "10.244.0.2",
            "172.18.0.3",
        ),
        (
            &mut nl2,
            e2,
            m2,
            m1,
            "10.244.0.2/24",
            "172.18.0.3",
            "10.244.0.1",
            "172.18.0.2",
        ),
    ] {
        let v = vx(me, addr, local);
        let i = nl.add_vxlan(&v, e)?;
        nl.add_addr(i, v.addr)?;
        nl.set_up(i)?;
        nl.add_neighbour(i, ip(peer_ip), peer_mac)?;
        nl.add_fdb(i, peer_mac, ip(peer_under))?;
    }
    let server = n2.run(|| UdpSocket::bind("10.244.0.2:5000"))?;
    server.set_read_timeout(Some(Duration::from_secs(2)))?;
    let listener = n2.run(|| TcpListener::bind("10.244.0.2:6000"))?;

    let set = CaptureSet::start(&[
        ("node1", n1.fd.as_fd(), "vx0"),
        ("node1", n1.fd.as_fd(), "eth0"),
        ("node2", n2.fd.as_fd(), "eth0"),
        ("node2", n2.fd.as_fd(), "vx0"),
    ])?;
    let points = set.points();
    let mut set = set;
    n1.run(|| -> std::io::Result<()> {
        UdpSocket::bind("10.244.0.1:4000")?.send_to(b"hello", "10.244.0.2:5000")?;
        Ok(())
    })?;
    let mut buf = [0u8; 16];
    let n = server.recv(&mut buf)?;
    expect(&buf[..n] == b"hello", || "udp over vxlan lost".into())?;
    let client = n1.run(|| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.bind(&SockAddr::from(SocketAddrV4::new(ip("10.244.0.1"), 40000)))?;
        s.connect_timeout(
            &SockAddr::from(SocketAddrV4::new(ip("10.244.0.2"), 6000)),
            Duration::from_secs(2),
        )?;
        Ok(s)
    })?;
    let (conn, _) = listener.accept()?;
    drop((conn, client));
    n1.run(|| ping(ip("10.244.0.2"), 9, 1))?;
    set.settle(Duration::from_millis(50), Duration::from_secs(1));
    let (packets, stats) = set.stop_with_stats();
    println!("{}", capture::render(&packets));
    let drivers: Vec<&str> = stats.iter().map(|s| s.driver.as_str()).collect();
    expect(drivers == ["vxlan", "veth", "veth", "vxlan"], || {
        format!("{stats:#?}")
    })?;
    expect_clean(&stats)?;
    expect_sorted(&packets)?;
    expect_veth_pairs(&packets, ("node1", "eth0"), ("node2", "eth0"))?;

    // Every frame the VXLAN device sends comes out of the underlay encapsulated: VNI 1, to port
    // 8472, between the nodes' addresses, carrying exactly that frame; the peer's underlay
    // receives it and its VXLAN device delivers the same inner frame.
    let sent: Vec<&Captured> = packets
        .iter()
        .filter(|c| c.netns == "node1" && c.iface == "vx0" && c.outgoing)
        .collect();
    let encapsulated: Vec<&Captured> = packets
        .iter()
        .filter(|c| c.netns == "node1" && c.iface == "eth0" && c.outgoing)
        .filter(|c| c.decode().ok().and_then(|p| p.vxlan().cloned()).is_some())
        .collect();
    let delivered: Vec<&Captured> = packets
        .iter()
        .filter(|c| c.netns == "node2" && c.iface == "vx0" && !c.outgoing)
        .collect();
    expect(
        sent.len() >= 5 && sent.len() == encapsulated.len() && sent.len() == delivered.len(),
        || {
            format!(
                "{} sent on vx0, {} encapsulated, {} delivered:\n{}",
                sent.len(),
                encapsulated.len(),
                delivered.len(),
                capture::render(&packets)
            )
        },
    )?;
    for ((s, e), d) in sent.iter().zip(&encapsulated).zip(&delivered) {
        let outer = e.decode()?;
        let ip4 = outer.ipv4().ok_or("no outer ipv4")?;
        let Transport::Udp(udp) = &ip4.transport else {
            return Err(format!("outer is not udp: {outer}").into());
        };
        let v = udp.vxlan.as_ref().ok_or("no vxlan")?;
        let inner = v.inner.as_deref().ok_or("no inner frame")?;
        expect(
            ip4.src == ip("172.18.0.2")
                && ip4.dst == ip("172.18.0.3")
                && ip4.protocol == IPPROTO_UDP
                && udp.dst_port == 8472
                && udp.src_port != 0
                && v.vni == 1
                && v.flags == 0x08
                && outer.src_mac == u1
                && outer.dst_mac == u2
                && *inner == s.decode()?
                && d.frame == s.frame
                && s.ts <= e.ts
                && e.ts <= d.ts,
            || format!("{s}\n{e}\n{d}\n{outer:#?}"),
        )?;
    }
    let under = |what: &str| format!("vxlan vni 1 172.18.0.2:{{sport}} > 172.18.0.3:8472 | {what}");
    let sport = packets
        .iter()
        .find_map(|c| {
            c.decode()
                .ok()
                .and_then(|p| p.udp().filter(|u| u.vxlan.is_some()).map(|u| u.src_port))
        })
        .ok_or("no vxlan")?;
    let path = |what: &str| {
        let outer = under(what).replace("{sport}", &sport.to_string());
        [
            format!("node1/vx0 out {what}"),
            format!("node1/eth0 out {outer}"),
            format!("node2/eth0 in {outer}"),
            format!("node2/vx0 in {what}"),
        ]
    };
    let expected: Vec<String> = [path("10.244.0.1:4000 > 10.244.0.2:5000 udp length 5")]
        .into_iter()
        .flatten()
        .collect();
    expect_subsequence(&packets, &expected)?;
    let syn = "10.244.0.1:40000 > 10.244.0.2:6000 tcp [S]";
    expect(
        packets.iter().any(|c| {
            line(c).starts_with("node1/eth0 out vxlan vni 1 172.18.0.2:")
                && line(c).ends_with(&format!("172.18.0.3:8472 | {syn}"))
        }),
        || format!("no encapsulated syn:\n{}", capture::render(&packets)),
    )?;
    let ties = packets
        .windows(2)
        .filter(|w| w[0].ts == w[1].ts && w[0].iface == "eth0" && w[1].iface == "vx0")
        .count();
    println!(
        "underlay and vxlan device stamped alike: {ties} of {} frames",
        delivered.len()
    );
    expect_tshark_reads("vxlan", &points, &packets)
}

fn interface_errors_name_the_point() -> TestResult {
    let a = Ns::new("a")?;
    let err = match CaptureSet::start(&[("a", a.fd.as_fd(), "lo"), ("a", a.fd.as_fd(), "nope0")]) {
        Ok(_) => return Err("capture on a missing interface started".into()),
        Err(e) => e.to_string(),
    };
    expect(
        err.starts_with("capture on a/nope0: no such interface"),
        || err.clone(),
    )?;
    // lo: each frame is seen sent and received.
    let mut set = CaptureSet::start(&[("a", a.fd.as_fd(), "lo")])?;
    a.run(|| -> std::io::Result<()> {
        let r = UdpSocket::bind("127.0.0.1:7000")?;
        UdpSocket::bind("127.0.0.1:0")?.send_to(b"x", "127.0.0.1:7000")?;
        r.set_read_timeout(Some(Duration::from_secs(1)))?;
        r.recv(&mut [0; 4])?;
        Ok(())
    })?;
    set.settle(Duration::from_millis(10), Duration::from_secs(1));
    let packets = set.stop();
    let dirs: Vec<bool> = packets.iter().map(|c| c.outgoing).collect();
    expect(
        dirs == [true, false] && packets[0].frame == packets[1].frame,
        || capture::render(&packets),
    )
}

// ---- overhead -------------------------------------------------------------------------------

/// `min / median` of samples: on a busy machine the least is the best estimate of the cost
/// itself, the median what a run may expect.
fn figures(v: &[Duration], per: u32) -> String {
    let mut v = v.to_vec();
    v.sort();
    let (min, med) = (v[0] / per, v[v.len() / 2] / per);
    format!("min {min:.1?} / median {med:.1?}")
}

fn overhead() -> TestResult {
    if let Some((took, on)) = KEEPER.get() {
        println!("overhead: switching kernel timestamps on, once per process: {took:.1?} ({on:?})");
    }
    let rounds = 50;
    // Ten capture points on a chain of six namespaces, one veth pair between neighbours, like a
    // path through a cluster: n0/r0 -- n1/l1, n1/r1 -- n2/l2, ... n4/r4 -- n5/l5.
    let ns: Vec<Ns> = ["n0", "n1", "n2", "n3", "n4", "n5"]
        .into_iter()
        .map(Ns::new)
        .collect::<Result<_, _>>()?;
    for i in 0..5 {
        let mut nl = ns[i].netlink()?;
        let (r, l) = (format!("r{i}"), format!("l{}", i + 1));
        let index = nl.add_veth(&r, None, &l, None, Some(ns[i + 1].fd.as_fd()), 1500)?;
        nl.set_up(index)?;
        let mut peer = ns[i + 1].netlink()?;
        let index = peer.link_index(&l)?;
        peer.set_up(index)?;
    }
    let names: Vec<String> = (0..5)
        .flat_map(|i| [format!("r{i}"), format!("l{}", i + 1)])
        .collect();
    let points: Vec<(&str, BorrowedFd<'_>, &str)> = (0..10)
        .map(|k| {
            let owner = &ns[k / 2 + k % 2];
            (owner.name, owner.fd.as_fd(), names[k].as_str())
        })
        .collect();
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let set = CaptureSet::start(&points)?;
        starts.push(t.elapsed());
        let t = Instant::now();
        let _ = set.stop();
        stops.push(t.elapsed());
    }
    println!(
        "overhead: start 10 captures in 6 namespaces: {}; stop them (nothing captured): {}",
        figures(&starts, 1),
        figures(&stops, 1)
    );
    // The same ten points, one namespace each.
    let solo: Vec<Ns> = (0..10).map(|_| Ns::new("solo")).collect::<Result<_, _>>()?;
    let solo_points: Vec<(&str, BorrowedFd<'_>, &str)> =
        solo.iter().map(|n| (n.name, n.fd.as_fd(), "lo")).collect();
    let mut starts = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let set = CaptureSet::start(&solo_points)?;
        starts.push(t.elapsed());
        drop(set);
    }
    println!(
        "overhead: start 10 captures in 10 namespaces: {}",
        figures(&starts, 1)
    );
    // What closing a packet socket costs, which stop leaves to other threads.
    let mut closes = Vec::new();
    for _ in 0..10 {
        let s = ns[0].run(|| {
            Socket::new(
                Domain::PACKET,
                Type::RAW,
                Some(Protocol::from(i32::from(
                    (nix::libc::ETH_P_ALL as u16).to_be(),
                ))),
            )
        })?;
        let t = Instant::now();
        drop(s);
        closes.push(t.elapsed());
    }
    println!(
        "overhead: closing one AF_PACKET socket (synchronize_net): {}",
        figures(&closes, 1)
    );

    // Per packet: 64-byte UDP datagrams over a veth pair, without captures, with one on each
    // end, and with five on each end; rounds interleaved so that drift hits all alike.
    let (a, b) = veth_pair()?;
    let sink = b.run(|| UdpSocket::bind("10.0.0.2:5000"))?;
    let sender = a.run(|| UdpSocket::bind("10.0.0.1:4000"))?;
    sender.connect("10.0.0.2:5000")?;
    sender.send(b"warm-up")?; // ARP
    sink.set_read_timeout(Some(Duration::from_secs(1)))?;
    sink.recv(&mut [0; 16])?;
    sink.set_nonblocking(true)?;
    let count: u32 = 2000;
    let send_all = || -> Result<Duration, Failed> {
        let payload = [0u8; 64];
        let t = Instant::now();
        for _ in 0..count {
            sender.send(&payload)?;
        }
        let took = t.elapsed();
        while sink.recv(&mut [0; 128]).is_ok() {}
        Ok(took)
    };
    let configs: [usize; 3] = [0, 1, 5];
    let mut sends = vec![Vec::new(); 3];
    let mut drains = vec![Vec::new(); 3];
    let mut stops = vec![Vec::new(); 3];
    let (mut dropped, mut unstamped) = (0, 0);
    for _ in 0..15 {
        for (c, &per_end) in configs.iter().enumerate() {
            let mut pts = Vec::new();
            for _ in 0..per_end {
                pts.push(("a", a.fd.as_fd(), "va"));
                pts.push(("b", b.fd.as_fd(), "vb"));
            }
            let mut set = CaptureSet::start(&pts)?;
            sends[c].push(send_all()?);
            let t = Instant::now();
            let n = set.drain();
            let drained = t.elapsed();
            let t = Instant::now();
            let (packets, stats) = set.stop_with_stats();
            let stopped = t.elapsed();
            if per_end > 0 {
                expect(
                    n == packets.len() && n == 2 * per_end * count as usize,
                    || format!("read {n} frames, stop returned {}", packets.len()),
                )?;
                drains[c].push(drained);
                stops[c].push(stopped);
            }
            dropped += stats.iter().map(|s| s.dropped).sum::<u32>();
            unstamped += stats.iter().map(|s| s.unstamped).sum::<usize>();
        }
    }
    println!(
        "overhead: sending a datagram without captures: {}",
        figures(&sends[0], count)
    );
    for (c, &per_end) in configs.iter().enumerate().skip(1) {
        let frames = 2 * per_end as u32 * count;
        println!(
            "overhead: with {} capture sockets: sending {}; reading each frame {}; ordering and \
             returning each frame (stop) {}",
            2 * per_end,
            figures(&sends[c], count),
            figures(&drains[c], frames),
            figures(&stops[c], frames),
        );
    }
    println!(
        "overhead: frames dropped by the kernel: {dropped}; stamped only when read: {unstamped}"
    );

    // Decoding and rendering, as hop tracing will.
    let set = CaptureSet::start(&[("a", a.fd.as_fd(), "va")])?;
    send_all()?;
    let packets = set.stop();
    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for c in &packets {
            std::hint::black_box(c.decode().map(|p| p.to_string()).ok());
        }
        took.push(t.elapsed());
    }
    println!(
        "overhead: decode + render a frame: {}",
        figures(&took, packets.len() as u32)
    );
    Ok(())
}
