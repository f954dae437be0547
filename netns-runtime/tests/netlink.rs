//! The netlink socket against the real kernel.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network. Every trial then runs on a thread of its own that unshares once more, so
//! trials running in parallel do not see each other's links. The `ip` and `bridge` tools,
//! started from that thread, inherit its network namespace and check what the kernel did.

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use libtest_mimic::Failed;
use netns_runtime::netlink::{LinkInfo, NTF_SELF, Netlink, NetlinkError, RTNH_F_ONLINK};
use netns_runtime::topology::{Mac, Vxlan};
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};

mod support;

use support::{Test, TestResult};

/// How long an `ip` or `bridge` call may take before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        (
            "lookup_loopback_and_missing_link",
            lookup_loopback_and_missing_link,
        ),
        (
            "bridge_and_veth_into_second_netns",
            bridge_and_veth_into_second_netns,
        ),
        (
            "veth_with_random_macs_in_one_netns",
            veth_with_random_macs_in_one_netns,
        ),
        (
            "flannel_vxlan_routes_neighbours_fdb",
            flannel_vxlan_routes_neighbours_fdb,
        ),
        (
            "error_paths_name_the_operation",
            error_paths_name_the_operation,
        ),
        ("socket_stays_in_its_netns", socket_stays_in_its_netns),
        (
            "bulk_dumps_span_many_datagrams",
            bulk_dumps_span_many_datagrams,
        ),
    ];
    support::run_trials(tests, || Ok(()));
}

type Job = Box<dyn FnOnce() + Send>;

/// A second network namespace, held by a dedicated thread that created it with `unshare` and
/// runs jobs inside it (so child processes it starts live there too). The thread ends, rather
/// than returning to another namespace, when this is dropped.
struct PeerNetns {
    fd: OwnedFd,
    /// A socket opened inside the namespace, on its thread.
    nl: Netlink,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PeerNetns {
    fn spawn() -> Result<Self, Failed> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let thread = thread::spawn(move || {
            let setup = (|| -> Result<(OwnedFd, Netlink), String> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare netns: {e}"))?;
                let fd = File::open("/proc/thread-self/ns/net")
                    .map_err(|e| format!("open /proc/thread-self/ns/net: {e}"))?;
                let nl = Netlink::open().map_err(|e| e.to_string())?;
                Ok((fd.into(), nl))
            })();
            let ok = setup.is_ok();
            let _ = ready_tx.send(setup);
            if ok {
                for job in jobs_rx {
                    job();
                }
            }
        });
        let (fd, nl) = ready_rx.recv().map_err(|e| e.to_string())??;
        Ok(PeerNetns {
            fd,
            nl,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the namespace's thread.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        match rx.recv().unwrap() {
            Ok(v) => v,
            Err(panic) => resume_unwind(panic),
        }
    }
}

impl Drop for PeerNetns {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a tool (`ip`, `bridge`), given as one line of words, in the calling thread's network
/// namespace.
fn tool(cmd: &str) -> Result<String, Failed> {
    support::tool(&cmd.split_whitespace().collect::<Vec<_>>(), TOOL_TIMEOUT)
}

/// Checks that `haystack` (the output of `what`) contains every one of `needles`.
fn expect_contains(what: &str, haystack: &str, needles: &[&str]) -> TestResult {
    for n in needles {
        if !haystack.contains(n) {
            return Err(format!("`{what}` lacks {n:?}:\n{haystack}").into());
        }
    }
    Ok(())
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

fn expect_err<T: std::fmt::Debug>(
    r: Result<T, NetlinkError>,
    errno: Errno,
    prefix: &str,
) -> Result<NetlinkError, Failed> {
    let err = match r {
        Ok(v) => return Err(format!("expected {prefix}... to fail, got {v:?}").into()),
        Err(e) => e,
    };
    let msg = err.to_string();
    expect(err.errno() == Some(errno as i32), || {
        format!("expected {errno}, got {:?}: {msg}", err.errno())
    })?;
    expect(msg.starts_with(prefix), || {
        format!("error message {msg:?} should start with {prefix:?}")
    })?;
    expect(
        msg.contains(&std::io::Error::from_raw_os_error(errno as i32).to_string()),
        || format!("error message {msg:?} should contain the errno text"),
    )?;
    Ok(err)
}

fn link<'a>(links: &'a [LinkInfo], name: &str) -> Result<&'a LinkInfo, Failed> {
    links
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| format!("no link {name} in {links:#?}").into())
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(last: u8) -> Mac {
    Mac([0x0a, 0x58, 0x0a, 0xf4, 0x01, last])
}

// ---- trials ---------------------------------------------------------------------------------

fn lookup_loopback_and_missing_link() -> TestResult {
    let mut nl = Netlink::open()?;
    expect(nl.link_index("lo")? == 1, || "lo is not ifindex 1".into())?;
    expect(nl.link_name(1)? == "lo", || "ifindex 1 is not lo".into())?;
    expect_err(
        nl.link_index("nope0"),
        Errno::ENODEV,
        "look up link \"nope0\": No such device (os error 19)",
    )?;
    let links = nl.links()?;
    let lo = link(&links, "lo")?;
    expect(lo.kind.is_none() && lo.mtu == 65536 && !lo.up, || {
        format!("unexpected lo: {lo:?}")
    })?;
    Ok(())
}

fn bridge_and_veth_into_second_netns() -> TestResult {
    let mut nl = Netlink::open()?;
    let mut pod = PeerNetns::spawn()?;
    let (br_mac, host_mac, pod_mac) = (mac(1), Mac([0x6e, 0, 0, 0, 0, 2]), mac(2));

    let br = nl.add_bridge("cni0", br_mac, 1450)?;
    let host = nl.add_veth(
        "veth1a2b",
        Some(host_mac),
        "eth0",
        Some(pod_mac),
        Some(pod.fd.as_fd()),
        1450,
    )?;
    expect(nl.link_index("cni0")? == br, || "add_bridge index".into())?;
    expect(nl.link_index("veth1a2b")? == host, || {
        "add_veth index".into()
    })?;
    nl.set_master(host, br)?;
    nl.set_hairpin(host, true)?;
    nl.add_addr(br, net("10.244.1.1/24"))?;
    nl.set_up(br)?;
    nl.set_up(host)?;

    // Our dump.
    let links = nl.links()?;
    let b = link(&links, "cni0")?;
    expect(
        b.index == br
            && b.kind.as_deref() == Some("bridge")
            && b.mac == Some(br_mac)
            && b.mtu == 1450
            && b.up,
        || format!("unexpected bridge {b:?}"),
    )?;
    let h = link(&links, "veth1a2b")?;
    expect(
        h.index == host
            && h.kind.as_deref() == Some("veth")
            && h.mac == Some(host_mac)
            && h.mtu == 1450
            && h.master == Some(br)
            && h.up
            && h.hairpin == Some(true)
            && h.link_netnsid.is_some(),
        || format!("unexpected host veth {h:?}"),
    )?;
    expect(!links.iter().any(|l| l.name == "eth0"), || {
        "the peer was created in this netns".into()
    })?;
    let addrs = nl.addrs()?;
    expect(
        addrs.iter().any(|a| {
            a.ifindex == br
                && a.addr == net("10.244.1.1/24")
                && a.broadcast == Some(ip("10.244.1.255"))
        }),
        || format!("cni0 address missing: {addrs:?}"),
    )?;

    // The tools' view.
    expect_contains(
        "ip -d link show cni0",
        &tool("ip -d link show cni0")?,
        &[
            "mtu 1450",
            &format!("link/ether {br_mac}"),
            "bridge forward_delay",
        ],
    )?;
    expect_contains(
        "ip -d link show veth1a2b",
        &tool("ip -d link show veth1a2b")?,
        &[
            "veth1a2b@if",
            "mtu 1450",
            "master cni0",
            &format!("link/ether {host_mac}"),
            "link-netnsid",
            "veth",
            "bridge_slave",
            "hairpin on",
        ],
    )?;
    expect_contains(
        "bridge -d link show dev veth1a2b",
        &tool("bridge -d link show dev veth1a2b")?,
        &["master cni0", "hairpin on"],
    )?;
    expect_contains(
        "ip addr show cni0",
        &tool("ip addr show cni0")?,
        &["inet 10.244.1.1/24 brd 10.244.1.255 scope global cni0"],
    )?;

    // The pod side, through the socket opened inside the pod's netns (used from this thread).
    let eth0 = pod.nl.link_index("eth0")?;
    let pod_links = pod.nl.links()?;
    let e = link(&pod_links, "eth0")?;
    expect(
        e.kind.as_deref() == Some("veth")
            && e.mac == Some(pod_mac)
            && e.mtu == 1450
            && !e.up
            && e.link == Some(host),
        || format!("unexpected pod eth0 {e:?}"),
    )?;
    pod.nl.set_up(eth0)?;
    pod.nl.add_addr(eth0, net("10.244.1.2/24"))?;
    pod.nl
        .add_route(net("0.0.0.0/0"), Some(ip("10.244.1.1")), eth0, false)?;
    let routes = pod.nl.routes()?;
    expect(
        routes.iter().any(|r| {
            r.dst == net("0.0.0.0/0")
                && r.gateway == Some(ip("10.244.1.1"))
                && r.oif == Some(eth0)
                && r.protocol == 3
                && r.scope == 0
                && !r.onlink()
        }),
        || format!("pod default route missing: {routes:#?}"),
    )?;
    let (link_out, route_out, addr_out) = pod.run(|| {
        (
            tool("ip -d link show eth0"),
            tool("ip -d route show"),
            tool("ip addr show eth0"),
        )
    });
    expect_contains(
        "ip -d link show eth0 (pod)",
        &link_out?,
        &[
            "eth0@if",
            &format!("link/ether {pod_mac}"),
            "mtu 1450",
            "veth",
        ],
    )?;
    expect_contains(
        "ip -d route show (pod)",
        &route_out?,
        &["default via 10.244.1.1 dev eth0 proto boot scope global"],
    )?;
    expect_contains(
        "ip addr show eth0 (pod)",
        &addr_out?,
        &["inet 10.244.1.2/24 brd 10.244.1.255 scope global eth0"],
    )?;

    // The datapath works: a datagram from the pod reaches the gateway through veth and bridge.
    let gw = UdpSocket::bind("10.244.1.1:0").map_err(|e| format!("bind gateway: {e}"))?;
    gw.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let to = gw.local_addr().map_err(|e| e.to_string())?;
    pod.run(move || -> std::io::Result<()> {
        UdpSocket::bind("10.244.1.2:0")?.send_to(b"hello", to)?;
        Ok(())
    })
    .map_err(|e| format!("send from pod: {e}"))?;
    let mut buf = [0u8; 16];
    let (n, from) = gw
        .recv_from(&mut buf)
        .map_err(|e| format!("gateway received nothing from the pod: {e}"))?;
    expect(
        &buf[..n] == b"hello" && from.ip() == ip("10.244.1.2"),
        || format!("unexpected datagram from {from}"),
    )?;

    // Hairpin off and link down again.
    nl.set_hairpin(host, false)?;
    nl.set_down(host)?;
    let h = nl.links()?.into_iter().find(|l| l.index == host).unwrap();
    expect(h.hairpin == Some(false) && !h.up, || {
        format!("hairpin/down not applied: {h:?}")
    })?;
    let out = tool("bridge -d link show dev veth1a2b")?;
    expect_contains("bridge -d link show dev veth1a2b", &out, &["hairpin off"])?;
    expect(!tool("ip link show veth1a2b")?.contains(",UP"), || {
        "veth1a2b still up".into()
    })?;
    Ok(())
}

fn veth_with_random_macs_in_one_netns() -> TestResult {
    let mut nl = Netlink::open()?;
    let a = nl.add_veth("a0", None, "a1", None, None, 1500)?;
    let b = nl.link_index("a1")?;
    let links = nl.links()?;
    let (la, lb) = (link(&links, "a0")?, link(&links, "a1")?);
    expect(
        la.index == a
            && la.link == Some(b)
            && lb.link == Some(a)
            && la.link_netnsid.is_none()
            && la.mac.is_some()
            && lb.mac.is_some()
            && la.mac != lb.mac
            && la.mtu == 1500,
        || format!("unexpected pair {la:?} {lb:?}"),
    )?;
    // Deleting one end deletes both.
    nl.del_link(a)?;
    expect_err(nl.link_index("a1"), Errno::ENODEV, "look up link \"a1\"")?;
    Ok(())
}

fn flannel_vxlan_routes_neighbours_fdb() -> TestResult {
    let mut nl = Netlink::open()?;
    let eth0 = nl.add_veth("eth0", Some(mac(10)), "u-node1", None, None, 1500)?;
    let port = nl.link_index("u-node1")?;
    nl.set_up(port)?;
    nl.set_up(eth0)?;
    nl.add_addr(eth0, net("192.168.50.2/24"))?;

    let v = Vxlan {
        name: "flannel.1".into(),
        vni: 1,
        port: 8472,
        mac: Mac([0x0e, 0x1f, 0, 0, 0, 1]),
        addr: net("10.244.1.0/32"),
        mtu: 1450,
        local: ip("192.168.50.2"),
        underlay_dev: "eth0".into(),
        learning: false,
    };
    let vx = nl.add_vxlan(&v, eth0)?;
    nl.add_addr(vx, v.addr)?;
    nl.set_up(vx)?;

    let links = nl.links()?;
    let l = link(&links, "flannel.1")?;
    let info = l.vxlan.clone().unwrap_or_default();
    expect(
        l.index == vx
            && l.kind.as_deref() == Some("vxlan")
            && l.mac == Some(v.mac)
            && l.mtu == 1450
            && l.up
            && info.vni == 1
            && info.local == Some(v.local)
            && info.underlay == Some(eth0)
            && info.port == 8472
            && !info.learning,
        || format!("unexpected vxlan {l:?}"),
    )?;
    expect_contains(
        "ip -d link show flannel.1",
        &tool("ip -d link show flannel.1")?,
        &[
            "mtu 1450",
            &format!("link/ether {}", v.mac),
            "vxlan id 1 local 192.168.50.2 dev eth0",
            "dstport 8472",
            "nolearning",
        ],
    )?;
    expect_contains(
        "ip addr show flannel.1",
        &tool("ip addr show flannel.1")?,
        &["inet 10.244.1.0/32 scope global flannel.1"],
    )?;

    // What flannel programs for a peer node 192.168.50.3 owning 10.244.2.0/24.
    let peer_vtep = Mac([0x0e, 0x1f, 0, 0, 0, 2]);
    let peer_net = net("10.244.2.0/24");
    let peer_gw = ip("10.244.2.0");
    let peer_node = ip("192.168.50.3");
    nl.add_route(peer_net, Some(peer_gw), vx, true)?;
    nl.add_neighbour(vx, peer_gw, peer_vtep)?;
    nl.add_neighbour(vx, peer_gw, peer_vtep)?; // replace is idempotent
    nl.add_fdb(vx, peer_vtep, peer_node)?;

    let routes = nl.routes()?;
    expect(
        routes.iter().any(|r| {
            r.dst == peer_net
                && r.gateway == Some(peer_gw)
                && r.oif == Some(vx)
                && r.onlink()
                && r.flags & RTNH_F_ONLINK != 0
                && r.protocol == 3
                && r.scope == 0
                && r.kind == 1
                && r.table == 254
        }),
        || format!("onlink route missing: {routes:#?}"),
    )?;
    expect_contains(
        "ip -d route show",
        &tool("ip -d route show")?,
        &["unicast 10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto boot scope global onlink"],
    )?;
    let neigh = nl.neighbours()?;
    expect(
        neigh
            .iter()
            .filter(|n| n.ip == peer_gw)
            .eq([&netns_runtime::netlink::NeighbourInfo {
                ifindex: vx,
                ip: peer_gw,
                mac: Some(peer_vtep),
                state: netns_runtime::netlink::NUD_PERMANENT,
                flags: 0,
            }]),
        || format!("neighbour missing: {neigh:#?}"),
    )?;
    expect_contains(
        "ip neigh show dev flannel.1",
        &tool("ip neigh show dev flannel.1")?,
        &[&format!("10.244.2.0 lladdr {peer_vtep} PERMANENT")],
    )?;
    let fdb = nl.fdb(vx)?;
    expect(
        fdb.iter().any(|f| {
            f.ifindex == vx
                && f.mac == peer_vtep
                && f.dst == Some(peer_node)
                && f.permanent()
                && f.flags & NTF_SELF != 0
        }),
        || format!("fdb entry missing: {fdb:#?}"),
    )?;
    expect(fdb.iter().all(|f| f.ifindex == vx), || {
        format!("fdb of other devices: {fdb:#?}")
    })?;
    expect_contains(
        "bridge fdb show dev flannel.1",
        &tool("bridge fdb show dev flannel.1")?,
        &[&format!("{peer_vtep} dst 192.168.50.3 self permanent")],
    )?;

    // Re-adding fails with EEXIST, and the message says exactly what was being done.
    let err = expect_err(
        nl.add_route(peer_net, Some(peer_gw), vx, true),
        Errno::EEXIST,
        "add route 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink: File exists (os error 17)",
    )?;
    expect(err.is_exists(), || "is_exists".into())?;
    expect_err(
        nl.add_fdb(vx, peer_vtep, peer_node),
        Errno::EEXIST,
        "append fdb 0e:1f:00:00:00:02 dev flannel.1 dst 192.168.50.3 self permanent: File exists",
    )?;
    expect_err(
        nl.add_addr(vx, v.addr),
        Errno::EEXIST,
        "add address 10.244.1.0/32 dev flannel.1: File exists",
    )?;
    expect_err(
        nl.add_vxlan(&v, eth0),
        Errno::EEXIST,
        "add vxlan flannel.1 id 1 local 192.168.50.2 dev eth0 dstport 8472 nolearning",
    )?;

    // The flood entry takes several destinations (bridge fdb append 00:00:00:00:00:00 ...).
    let zero = Mac([0; 6]);
    nl.add_fdb(vx, zero, ip("192.168.50.3"))?;
    nl.add_fdb(vx, zero, ip("192.168.50.4"))?;
    let flood: Vec<_> = nl.fdb(vx)?.into_iter().filter(|f| f.mac == zero).collect();
    expect(flood.len() == 2, || format!("flood entries: {flood:#?}"))?;

    // Deletion.
    nl.del_route(peer_net, Some(peer_gw), vx)?;
    expect(!nl.routes()?.iter().any(|r| r.dst == peer_net), || {
        "route still there".into()
    })?;
    expect(!tool("ip route")?.contains("10.244.2.0/24"), || {
        "ip route still shows the route".into()
    })?;
    expect_err(
        nl.del_route(peer_net, Some(peer_gw), vx),
        Errno::ESRCH,
        "delete route 10.244.2.0/24 via 10.244.2.0 dev flannel.1: No such process",
    )?;
    nl.del_fdb(vx, peer_vtep, peer_node)?;
    expect(!nl.fdb(vx)?.iter().any(|f| f.mac == peer_vtep), || {
        "fdb entry still there".into()
    })?;
    expect(
        !tool("bridge fdb show dev flannel.1")?.contains(&peer_vtep.to_string()),
        || "bridge fdb still shows the entry".into(),
    )?;
    nl.del_neighbour(vx, peer_gw)?;
    expect(
        !nl.neighbours()?
            .iter()
            .any(|n| n.ip == peer_gw && n.permanent()),
        || "neighbour still there".into(),
    )?;
    Ok(())
}

fn error_paths_name_the_operation() -> TestResult {
    let mut nl = Netlink::open()?;
    let br = nl.add_bridge("cni0", mac(1), 1500)?;
    expect_err(
        nl.add_bridge("cni0", mac(1), 1500),
        Errno::EEXIST,
        "add bridge cni0 address 0a:58:0a:f4:01:01 mtu 1500: File exists (os error 17)",
    )?;
    let v = nl.add_veth("v0", None, "v1", None, None, 1500)?;
    expect_err(
        nl.add_veth("v0", None, "v9", None, None, 1500),
        Errno::EEXIST,
        "add veth v0 peer v9 mtu 1500: File exists",
    )?;
    // Hairpin needs a bridge port.
    expect_err(
        nl.set_hairpin(v, true),
        Errno::EOPNOTSUPP,
        "set hairpin on on bridge port v0: Operation not supported",
    )?;
    // Unknown devices are named by index.
    expect_err(
        nl.add_route(net("10.9.0.0/16"), None, 4242, false),
        Errno::ENODEV,
        "add route 10.9.0.0/16 dev ifindex 4242: No such device",
    )?;
    expect_err(
        nl.set_up(4242),
        Errno::ENODEV,
        "set dev ifindex 4242 up: No such device",
    )?;
    // A gateway that is not reachable without onlink.
    nl.set_up(br)?;
    let err = nl
        .add_route(net("10.9.0.0/16"), Some(ip("10.10.0.1")), br, false)
        .unwrap_err();
    expect(
        err.to_string()
            .starts_with("add route 10.9.0.0/16 via 10.10.0.1 dev cni0: "),
        || format!("unexpected message {err}"),
    )?;
    // A prefix with host bits.
    expect_err(
        nl.add_route(net("10.9.1.0/16"), None, br, false),
        Errno::EINVAL,
        "add route 10.9.1.0/16 dev cni0: Invalid argument",
    )?;
    // The socket is still in sync after errors.
    expect(nl.link_index("cni0")? == br, || "out of sync".into())?;
    Ok(())
}

fn socket_stays_in_its_netns() -> TestResult {
    let mut here = Netlink::open()?;
    // A socket opened on the other netns' thread, used from this thread.
    let mut other = PeerNetns::spawn()?;
    let there = &mut other.nl;
    let idx = there.add_bridge("elsewhere0", mac(3), 1500)?;
    expect(there.link_index("elsewhere0")? == idx, || {
        "not created".into()
    })?;
    expect_err(
        here.link_index("elsewhere0"),
        Errno::ENODEV,
        "look up link \"elsewhere0\"",
    )?;
    expect(tool("ip link show elsewhere0").is_err(), || {
        "created in the caller's netns".into()
    })?;
    let out = other.run(|| tool("ip link show elsewhere0"))?;
    expect_contains(
        "ip link show elsewhere0 (other netns)",
        &out,
        &["elsewhere0"],
    )?;
    Ok(())
}

fn bulk_dumps_span_many_datagrams() -> TestResult {
    const PAIRS: usize = 150;
    const ENTRIES: u32 = 2000;
    let mut nl = Netlink::open()?;
    let br = nl.add_bridge("br0", mac(1), 1500)?;
    nl.set_up(br)?;

    let t = Instant::now();
    for i in 0..PAIRS {
        let a = nl.add_veth(&format!("h{i}"), None, &format!("p{i}"), None, None, 1500)?;
        nl.set_master(a, br)?;
        nl.set_hairpin(a, true)?;
        nl.set_up(a)?;
    }
    let veths = t.elapsed();

    let t = Instant::now();
    for i in 0..ENTRIES {
        let n = Ipv4Addr::from(0x0a00_0000 + (i << 8));
        nl.add_route(Ipv4Net::new(n, 24).unwrap(), None, br, false)?;
    }
    let routes_t = t.elapsed();
    let t = Instant::now();
    for i in 0..ENTRIES {
        let n = Ipv4Addr::from(0x0b00_0000 + i);
        nl.add_neighbour(br, n, Mac::from_ip([0x0a, 0x58], n))?;
    }
    let neigh_t = t.elapsed();
    eprintln!(
        "  {PAIRS} veth pairs (add, master, hairpin, up): {veths:?}; \
         {ENTRIES} routes: {routes_t:?}; {ENTRIES} neighbours: {neigh_t:?}"
    );

    let t = Instant::now();
    let links = nl.links()?;
    let routes = nl.routes()?;
    let neigh = nl.neighbours()?;
    let fdb = nl.fdb(br)?;
    eprintln!("  dumps: {:?}", t.elapsed());

    let ip_links = tool("ip -o link show")?.lines().count();
    expect(
        links.len() == 2 * PAIRS + 2 && links.len() == ip_links,
        || format!("{} links, ip shows {ip_links}", links.len()),
    )?;
    expect(
        links
            .iter()
            .filter(|l| l.master == Some(br) && l.hairpin == Some(true) && l.up)
            .count()
            == PAIRS,
        || "not every port is an up hairpin port of br0".into(),
    )?;
    let ip_routes = tool("ip route show")?.lines().count();
    expect(
        routes.len() == ip_routes
            && routes.iter().filter(|r| r.oif == Some(br)).count() == ENTRIES as usize,
        || format!("{} routes, ip shows {ip_routes}", routes.len()),
    )?;
    // Only the permanent entries on br0 are compared: the kernel adds NOARP entries for the
    // multicast groups the bridge joins (224.0.0.22) whenever it likes, racing the two dumps.
    let ip_neigh = tool("ip -4 neigh show nud permanent dev br0")?
        .lines()
        .count();
    let ours = neigh
        .iter()
        .filter(|n| n.permanent() && n.ifindex == br)
        .count();
    expect(ip_neigh == ours && ours == ENTRIES as usize, || {
        format!("{ours} permanent neighbours on br0, ip shows {ip_neigh}")
    })?;
    let bridge_fdb = tool("bridge fdb show dev br0")?.lines().count();
    expect(fdb.len() == bridge_fdb, || {
        format!(
            "{} fdb entries for br0, bridge shows {bridge_fdb}",
            fdb.len()
        )
    })?;
    Ok(())
}
