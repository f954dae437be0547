//! Cluster DNS throughput: how many A queries per second the builtin CoreDNS-like responder
//! answers for one client pod, and the same load against dnsmasq serving the same records in
//! the same topology.
//!
//! ```sh
//! cargo bench -p podpath --bench dns
//! ```
//!
//! One cluster (two nodes, flannel VXLAN, kube-proxy in iptables mode) with 50 Services, the
//! builtin responder in the `coredns` pod on node1 behind the kube-dns ClusterIP, and dnsmasq
//! (Debian's `dnsmasq-base`) in a `dnsmasq` pod on node1 answering the same 50 A records from a
//! hosts file. A client pod on node1 keeps a fixed number of queries in flight on one UDP socket
//! (distinct ids), rotating over the Service names, for a fixed time, and checks every answer
//! carries the Service's ClusterIP. Targets: the kube-dns ClusterIP (DNAT to the responder),
//! dnsmasq's pod address (no DNAT) and a `dnsmasq` Service's ClusterIP (the same DNAT path as
//! kube-dns). Everything happens inside podpath's sandbox and namespaces.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netns_runtime::Cluster;
use netns_runtime::proxy::driver::ProxyMode;

mod support;

/// How many Services (and A records) the cluster has.
const SERVICES: usize = 50;
/// How long each measurement sends.
const DURATION: Duration = Duration::from_secs(3);
/// Queries kept in flight.
const WINDOWS: [usize; 3] = [1, 16, 64];
/// A query unanswered for this long is counted lost and replaced.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
const ZONE: &str = "cluster.local";

fn main() {
    let Some((_sandbox, _)) = support::bench_start("dns") else {
        return;
    };
    if let Err(e) = run() {
        eprintln!("dns bench failed: {e}");
        std::process::exit(1);
    }
}

fn case_yaml() -> String {
    let mut yaml = String::from(
        "name: cluster DNS throughput\n\
         dns: { node: node1 }\n\
         nodes: [node1, node2]\n\
         pods:\n\
         \x20 - { name: client, node: node1 }\n\
         \x20 - { name: dnsmasq, node: node1, labels: { app: dnsmasq } }\n\
         \x20 - { name: web, node: node2, labels: { app: web }, listen: [8080/tcp] }\n\
         services:\n",
    );
    for i in 0..SERVICES {
        yaml.push_str(&format!(
            "  - {{ name: svc-{i:02}, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}\n"
        ));
    }
    yaml.push_str(
        "  - { name: dnsmasq, selector: { app: dnsmasq }, ports: [{ port: 53, protocol: UDP }] }\n",
    );
    yaml
}

/// The names asked and the address each must answer.
struct Records {
    names: Vec<(String, Ipv4Addr)>,
}

fn run() -> Result<(), String> {
    let yaml = case_yaml();
    let plan = podpath::plan::load_str(Path::new("bench/dns.yaml"), &yaml)
        .map_err(|e| format!("planning the bench case: {e}"))?;
    let cluster_ip = |ns: &str, name: &str| {
        plan.services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .and_then(|s| s.cluster_ip)
            .ok_or_else(|| format!("no ClusterIP for {ns}/{name}"))
    };
    let kube_dns = cluster_ip("kube-system", "kube-dns")?;
    let dnsmasq_svc = cluster_ip("default", "dnsmasq")?;
    let records = Records {
        names: (0..SERVICES)
            .map(|i| {
                let name = format!("svc-{i:02}");
                Ok((
                    format!("{name}.default.svc.{ZONE}"),
                    cluster_ip("default", &name)?,
                ))
            })
            .collect::<Result<_, String>>()?,
    };
    let pod_ip = |name: &str| {
        plan.topology
            .pods
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.eth0.addr.addr())
            .ok_or_else(|| format!("no pod {name}"))
    };
    let dnsmasq_ip = pod_ip("dnsmasq")?;

    let cluster =
        Cluster::build(&plan.topology).map_err(|e| format!("building the cluster: {e}"))?;
    let result = (|| {
        cluster
            .apply_proxy(ProxyMode::Iptables.builtin().as_ref(), &plan.proxy)
            .map_err(|e| format!("programming Services: {e}"))?;
        let mut dnsmasq = start_dnsmasq(&cluster, dnsmasq_ip, &records)?;
        let measured = measure_all(&cluster, &records, kube_dns, dnsmasq_ip, dnsmasq_svc);
        let _ = dnsmasq.kill();
        let _ = dnsmasq.wait();
        measured
    })();
    if let Err(errors) = cluster.teardown() {
        for e in errors {
            eprintln!("teardown: {e}");
        }
    }
    result
}

fn start_dnsmasq(cluster: &Cluster, ip: Ipv4Addr, records: &Records) -> Result<Child, String> {
    let dir = std::env::temp_dir().join(format!("podpath-dns-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let hosts = dir.join("hosts");
    let text: String = records
        .names
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect();
    std::fs::write(&hosts, text).map_err(|e| format!("{}: {e}", hosts.display()))?;
    let ns = cluster.pod_netns("dnsmasq").ok_or("no dnsmasq pod")?;
    let mut cmd = netns_runtime::netns::command_in(ns, "dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--user=root",
        "--log-facility=-",
        "--port=53",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
    ])
    .arg(format!("--listen-address={ip}"))
    .arg(format!("--addn-hosts={}", hosts.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; dnsmasq dies with this process (and with the
    // sandbox's PID namespace anyway).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting dnsmasq (apt-get install dnsmasq-base): {e}"))?;
    // Ready when it answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    let target = SocketAddrV4::new(ip, 53);
    let (name, want) = &records.names[0];
    loop {
        let ok = netns_runtime::netns::run_in(
            cluster.pod_netns("client").ok_or("no client pod")?.as_fd(),
            || ask_once(target, name, *want),
        )
        .map_err(|e| e.to_string())?;
        if ok {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = io::Read::read_to_string(&mut s, &mut err);
            }
            return Err(format!("dnsmasq exited ({status}): {err}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("dnsmasq did not answer within 5 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

fn ask_once(target: SocketAddrV4, name: &str, want: Ipv4Addr) -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let q = query(0x4242, name);
    if sock.send_to(&q, target).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    match sock.recv(&mut buf) {
        Ok(n) => check(&buf[..n], 0x4242, want) == Check::Right,
        Err(_) => false,
    }
}

struct Figures {
    qps: f64,
    answered: u64,
    wrong: u64,
    lost: u64,
    p50: Duration,
    p99: Duration,
}

fn measure_all(
    cluster: &Cluster,
    records: &Records,
    kube_dns: Ipv4Addr,
    dnsmasq_ip: Ipv4Addr,
    dnsmasq_svc: Ipv4Addr,
) -> Result<(), String> {
    let client = cluster.pod_netns("client").ok_or("no client pod")?;
    let targets = [
        ("builtin via kube-dns ClusterIP", kube_dns),
        ("dnsmasq via dnsmasq ClusterIP", dnsmasq_svc),
        ("dnsmasq at its pod address", dnsmasq_ip),
    ];
    println!(
        "cluster DNS bench: {SERVICES} Services, A queries from pod `client` (node1), UDP, \
         {} s per run, iptables mode",
        DURATION.as_secs()
    );
    println!(
        "{:<32} {:>8} {:>10} {:>10} {:>6} {:>6} {:>9} {:>9}",
        "target", "inflight", "qps", "answered", "wrong", "lost", "p50 us", "p99 us"
    );
    let mut results: HashMap<(usize, usize), f64> = HashMap::new();
    let mut bad = 0;
    for &window in &WINDOWS {
        for (t, (label, ip)) in targets.iter().enumerate() {
            let target = SocketAddrV4::new(*ip, 53);
            let f = netns_runtime::netns::run_in(client.as_fd(), || {
                load(target, records, window, DURATION)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{label}: {e}"))?;
            println!(
                "{:<32} {:>8} {:>10.0} {:>10} {:>6} {:>6} {:>9} {:>9}",
                label,
                window,
                f.qps,
                f.answered,
                f.wrong,
                f.lost,
                f.p50.as_micros(),
                f.p99.as_micros()
            );
            let _ = io::stdout().flush();
            bad += f.wrong;
            results.insert((window, t), f.qps);
        }
    }
    println!();
    for &window in &WINDOWS {
        let builtin = results[&(window, 0)];
        println!(
            "in flight {window:>2}: builtin / dnsmasq = {:.2} (same DNAT path), {:.2} (dnsmasq direct)",
            builtin / results[&(window, 1)],
            builtin / results[&(window, 2)],
        );
    }
    if bad > 0 {
        return Err(format!("{bad} wrong answers"));
    }
    Ok(())
}

/// Keeps `window` queries in flight against `target` for `duration`, on one socket.
fn load(
    target: SocketAddrV4,
    records: &Records,
    window: usize,
    duration: Duration,
) -> io::Result<Figures> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    sock.connect(SocketAddr::V4(target))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    // id -> (sent at, index of the name)
    let mut inflight: HashMap<u16, (Instant, usize)> = HashMap::with_capacity(window * 2);
    let mut next_id: u16 = 1;
    let mut next_name = 0usize;
    let mut latencies: Vec<Duration> = Vec::with_capacity(1 << 20);
    let (mut answered, mut wrong, mut lost) = (0u64, 0u64, 0u64);
    let queries: Vec<Vec<u8>> = records.names.iter().map(|(n, _)| query(0, n)).collect();
    let start = Instant::now();
    let end = start + duration;
    let mut send = |inflight: &mut HashMap<u16, (Instant, usize)>| -> io::Result<()> {
        while inflight.contains_key(&next_id) || next_id == 0 {
            next_id = next_id.wrapping_add(1);
        }
        let idx = next_name;
        next_name = (next_name + 1) % queries.len();
        let mut q = queries[idx].clone();
        q[..2].copy_from_slice(&next_id.to_be_bytes());
        sock.send(&q)?;
        inflight.insert(next_id, (Instant::now(), idx));
        next_id = next_id.wrapping_add(1);
        Ok(())
    };
    for _ in 0..window {
        send(&mut inflight)?;
    }
    let mut buf = [0u8; 1500];
    let mut last_expiry = Instant::now();
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(n) if n >= 2 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                if let Some((sent, idx)) = inflight.remove(&id) {
                    match check(&buf[..n], id, records.names[idx].1) {
                        Check::Right => {
                            answered += 1;
                            latencies.push(sent.elapsed());
                        }
                        Check::Wrong => wrong += 1,
                    }
                    send(&mut inflight)?;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if now.duration_since(last_expiry) > Duration::from_millis(50) {
            last_expiry = now;
            let expired: Vec<u16> = inflight
                .iter()
                .filter(|(_, (sent, _))| now.duration_since(*sent) > QUERY_TIMEOUT)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                inflight.remove(&id);
                lost += 1;
                send(&mut inflight)?;
            }
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
        }
    };
    Ok(Figures {
        qps: answered as f64 / elapsed.as_secs_f64(),
        answered,
        wrong,
        lost,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

/// An A query for `name`, RD set, no EDNS.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[derive(PartialEq, Eq)]
enum Check {
    Right,
    Wrong,
}

/// Right when the reply is a NOERROR response with id `id` whose first answer is A `want`.
fn check(msg: &[u8], id: u16, want: Ipv4Addr) -> Check {
    fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *msg.get(at)? as usize;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Some(at + 2);
            }
            at += 1 + len;
        }
    }
    let ok = (|| {
        if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id {
            return None;
        }
        let (flags, rcode) = (msg[2], msg[3] & 0x0f);
        let (qd, an) = (
            u16::from_be_bytes([msg[4], msg[5]]),
            u16::from_be_bytes([msg[6], msg[7]]),
        );
        if flags & 0x80 == 0 || rcode != 0 || qd != 1 || an == 0 {
            return None;
        }
        let mut at = skip_name(msg, 12)? + 4;
        for _ in 0..an {
            at = skip_name(msg, at)?;
            let rr = msg.get(at..at + 10)?;
            let (rtype, rdlen) = (
                u16::from_be_bytes([rr[0], rr[1]]),
                u16::from_be_bytes([rr[8], rr[9]]) as usize,
            );
            let data = msg.get(at + 10..at + 10 + rdlen)?;
            if rtype == 1 && rdlen == 4 {
                return Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]) == want);
            }
            at += 10 + rdlen;
        }
        None
    })();
    if ok == Some(true) {
        Check::Right
    } else {
        Check::Wrong
    }
}
