//! The nftables renderer against the real kernel and the real `nft`.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network. Every trial then runs on a thread of its own that unshares once more, so
//! trials running in parallel do not see each other's tables. `nft` and `ip`, started from that
//! thread, inherit its network namespace.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use netns_runtime::proxy::nftables::{declared_objects, render};
use netns_runtime::proxy::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};
use netns_runtime::topology::Proto;

mod support;

use support::{Test, TestResult};

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        ("apply_twice_is_idempotent", apply_twice_is_idempotent),
        (
            "reapply_replaces_a_different_table",
            reapply_replaces_a_different_table,
        ),
        ("datapath_on_the_output_path", datapath_on_the_output_path),
    ];
    support::run_trials(tests, || {
        tool(&["nft", "--version"])
            .map(|_| ())
            .map_err(|e| format!("nft is not usable: {}", e.message().unwrap_or_default()))
    });
}

/// How long an `nft` or `ip` call may take before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a tool in the calling thread's network namespace, killed after [`TOOL_TIMEOUT`].
fn tool(argv: &[&str]) -> Result<String, Failed> {
    support::tool(argv, TOOL_TIMEOUT)
}

/// Writes `text` to a private file and runs `nft -f` on it.
fn nft_apply(text: &str) -> TestResult {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "podpath-nft-{}-{}.nft",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let result = tool(&["nft", "-f", path.to_str().unwrap()]);
    let _ = fs::remove_file(&path);
    result.map(|_| ()).map_err(|e| {
        format!(
            "{}\n--- the file ---\n{text}",
            e.message().unwrap_or_default()
        )
        .into()
    })
}

fn list_table() -> Result<String, Failed> {
    tool(&["nft", "list", "table", "ip", "kube-proxy"])
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn svc(name: &str, cluster_ip: &str, port: u16, eps: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: "http".into(),
        protocol: Proto::Tcp,
        cluster_ip: Some(ip(cluster_ip)),
        port,
        node_port: None,
        affinity_timeout: None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        endpoints: eps,
    }
}

fn ep(addr: &str, port: u16, node: Option<&str>) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        node_name: node.map(String::from),
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn node_table(services: Vec<ServicePort>) -> ServiceTable {
    ServiceTable {
        node_name: "node1".into(),
        node_ips: vec![ip("172.18.0.2")],
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        services,
    }
}

/// Every Service shape the renderer knows, on one node.
fn every_shape() -> ServiceTable {
    let local = Some("node1");
    let two = || {
        vec![
            ep("10.244.2.6", 8080, Some("node2")),
            ep("10.244.1.10", 8080, local),
        ]
    };
    let mut np = svc("np", "10.96.1.1", 80, two());
    np.node_port = Some(30001);
    let mut etp = svc("etp", "10.96.1.2", 80, two());
    etp.node_port = Some(30002);
    etp.external_traffic_policy = TrafficPolicy::Local;
    etp.affinity_timeout = Some(10800);
    let mut etp_remote = svc("etp-remote", "10.96.1.3", 80, two()[..1].to_vec());
    etp_remote.node_port = Some(30003);
    etp_remote.external_traffic_policy = TrafficPolicy::Local;
    let mut itp = svc("itp", "10.96.1.4", 80, two());
    itp.internal_traffic_policy = TrafficPolicy::Local;
    let mut itp_remote = svc("itp-remote", "10.96.1.5", 80, two()[..1].to_vec());
    itp_remote.internal_traffic_policy = TrafficPolicy::Local;
    let mut dns = svc(
        "kube-dns",
        "10.96.0.10",
        53,
        vec![ep("10.244.1.2", 53, local)],
    );
    dns.protocol = Proto::Udp;
    dns.port_name = "dns".into();
    let mut dns_tcp = svc(
        "kube-dns",
        "10.96.0.10",
        53,
        vec![ep("10.244.1.2", 53, local)],
    );
    dns_tcp.port_name = "dns-tcp".into();
    let mut empty = svc("empty", "10.96.1.6", 80, vec![]);
    empty.node_port = Some(30006);
    let mut headless = svc("headless", "10.96.1.7", 80, two());
    headless.cluster_ip = None;
    let three = svc(
        "three",
        "10.96.1.8",
        80,
        vec![
            ep("10.244.1.11", 8080, local),
            ep("10.244.2.7", 8080, None),
            ep("10.244.3.4", 8080, None),
        ],
    );
    node_table(vec![
        np, etp, etp_remote, itp, itp_remote, dns, dns_tcp, empty, headless, three,
    ])
}

/// `nft list` shows every chain, set and map the file declares.
fn expect_declared_in_listing(rendered: &str, listing: &str) -> TestResult {
    let declared = declared_objects(rendered);
    let mut count = 0;
    for (kind, names) in &declared {
        for name in names {
            count += 1;
            // nft quotes names that are not plain identifiers (ours contain '/').
            let plain = format!("\t{kind} {name} {{");
            let quoted = format!("\t{kind} \"{name}\" {{");
            if !listing.contains(&plain) && !listing.contains(&quoted) {
                return Err(format!("{kind} {name} is not in\n{listing}").into());
            }
        }
    }
    if count < 30 {
        return Err(format!("only {count} objects declared in\n{rendered}").into());
    }
    for needle in [
        "type filter hook prerouting priority dstnat - 10; policy accept;",
        "type filter hook output priority -90; policy accept;",
        "type nat hook postrouting priority srcnat; policy accept;",
        "numgen random mod 3 vmap {",
        "flags dynamic,timeout",
        "timeout 3h",
        "update @affinity-",
        "fib saddr type local",
        "ip daddr 10.96.0.0/12 drop comment \"Drop traffic to unallocated ClusterIPs\"",
        "masquerade fully-random",
    ] {
        if !listing.contains(needle) {
            return Err(format!("{needle:?} is not in\n{listing}").into());
        }
    }
    Ok(())
}

fn apply_twice_is_idempotent() -> TestResult {
    let rendered = render(&every_shape());
    nft_apply(&rendered)?;
    let first = list_table()?;
    expect_declared_in_listing(&rendered, &first)?;
    nft_apply(&rendered)?;
    let second = list_table()?;
    if first != second {
        return Err(format!("re-applying changed the table:\n{first}\n---\n{second}").into());
    }
    Ok(())
}

fn reapply_replaces_a_different_table() -> TestResult {
    let small = node_table(vec![svc(
        "web",
        "10.96.2.1",
        80,
        vec![ep("10.244.1.5", 8080, None)],
    )]);
    nft_apply(&render(&small))?;
    let alone = list_table()?;
    tool(&["nft", "delete", "table", "ip", "kube-proxy"])?;

    nft_apply(&render(&every_shape()))?;
    nft_apply(&render(&small))?;
    let after = list_table()?;
    if alone != after {
        return Err(format!(
            "stale objects survived a full apply:\nexpected\n{alone}\n---\ngot\n{after}"
        )
        .into());
    }
    Ok(())
}

/// The rules doing their job for a host process (the output path): DNAT of a ClusterIP and a
/// NodePort to a host-network endpoint, reject of unknown ports and of Services without
/// endpoints, drop of unallocated ClusterIPs.
fn datapath_on_the_output_path() -> TestResult {
    for cmd in [
        "ip link set lo up",
        "ip link add d0 type veth peer name d1",
        "ip link set d0 up",
        "ip link set d1 up",
        "ip addr add 172.18.0.2/24 dev d0",
        "ip route add 10.96.0.0/12 dev d0",
    ] {
        tool(&cmd.split_whitespace().collect::<Vec<_>>())?;
    }
    let endpoint = ep("172.18.0.2", 8080, Some("node1"));
    let mut web = svc("web", "10.96.0.50", 80, vec![endpoint]);
    web.node_port = Some(30080);
    let mut empty = svc("empty", "10.96.0.60", 80, vec![]);
    empty.node_port = Some(30081);
    nft_apply(&render(&node_table(vec![web, empty])))?;

    let server = TcpListener::bind("172.18.0.2:8080").map_err(|e| e.to_string())?;
    // Something listens on the no-endpoints NodePort too: only the rules can refuse it.
    let _squatter = TcpListener::bind("172.18.0.2:30081").map_err(|e| e.to_string())?;
    server.set_nonblocking(true).map_err(|e| e.to_string())?;

    let connect = |to: &str| {
        let addr: SocketAddr = to.parse().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_millis(500))
    };
    let accepted = |what: &str| -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match server.accept() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(format!("{what}: the endpoint accepted nothing ({e})").into()),
            }
        }
    };

    connect("10.96.0.50:80").map_err(|e| format!("ClusterIP 10.96.0.50:80: {e}"))?;
    accepted("ClusterIP")?;
    connect("172.18.0.2:30080").map_err(|e| format!("NodePort 30080: {e}"))?;
    accepted("NodePort")?;

    for (to, want, why) in [
        (
            "10.96.0.50:81",
            ErrorKind::ConnectionRefused,
            "an undefined port of a ClusterIP is rejected",
        ),
        (
            "10.96.0.60:80",
            ErrorKind::ConnectionRefused,
            "a ClusterIP without endpoints is rejected",
        ),
        (
            "172.18.0.2:30081",
            ErrorKind::ConnectionRefused,
            "a NodePort without endpoints is rejected",
        ),
        (
            "10.96.0.99:80",
            ErrorKind::TimedOut,
            "an unallocated ClusterIP is dropped",
        ),
    ] {
        match connect(to) {
            Err(e) if e.kind() == want => {}
            other => return Err(format!("{to}: {why}, but got {other:?}").into()),
        }
    }
    Ok(())
}
