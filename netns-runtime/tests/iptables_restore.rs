//! The kube-proxy iptables renderer against the real `iptables-restore`, with both backends
//! (`iptables-restore`, nf_tables; `iptables-legacy-restore`, x_tables).
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's rules. Every trial then runs on a thread of its own that unshares once more: each
//! trial gets an empty ruleset, and the two backends never share a namespace. The iptables
//! tools started from that thread inherit its namespace.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use netns_runtime::proxy::iptables::{self, Options};
use netns_runtime::proxy::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};
use netns_runtime::topology::Proto;

mod support;

use support::TestResult;

/// One iptables backend: its restore and save commands.
#[derive(Clone, Copy)]
struct Backend {
    name: &'static str,
    restore: &'static str,
    save: &'static str,
}

const NFT: Backend = Backend {
    name: "nft",
    restore: "iptables-restore",
    save: "iptables-save",
};
const LEGACY: Backend = Backend {
    name: "legacy",
    restore: "iptables-legacy-restore",
    save: "iptables-legacy-save",
};

type Test = fn(Backend) -> TestResult;

fn main() {
    // Before anything else, and before any thread exists: leave the host's network namespace.
    let isolation = support::isolate();
    let args = Arguments::from_args();
    let tests: [(&str, Test); 4] = [
        ("render_restores_every_chain", render_restores_every_chain),
        ("sync_reapplies_idempotently", sync_reapplies_idempotently),
        ("services_dnat_and_reject", services_dnat_and_reject),
        ("nfacct_rules_restore", nfacct_rules_restore),
    ];
    let mut trials = Vec::new();
    for backend in [NFT, LEGACY] {
        for (name, test) in tests {
            let name = format!("{}::{name}", backend.name);
            let missing = [backend.restore, backend.save]
                .into_iter()
                .find(|tool| !on_path(tool));
            trials.push(match (&isolation, missing) {
                (Ok(()), None) => {
                    Trial::test(name, move || support::in_new_netns(|| test(backend)))
                }
                (Err(reason), _) => support::ignored(name, reason.clone()),
                (_, Some(tool)) => support::ignored(name, format!("{tool} is not installed")),
            });
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = fs::remove_file(lock_file());
    conclusion.exit();
}

/// The legacy backend's `-w` lock file: this process's own, not the host's /run/xtables.lock
/// (which a rootless run could not open, and which guards a ruleset this namespace does not
/// share).
fn lock_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("podpath-xtables-{}.lock", std::process::id()))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).is_file())
}

/// Runs a tool in the calling thread's network namespace, feeding it `stdin`, with a timeout.
fn tool(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Failed> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("XTABLES_LOCKFILE", lock_file())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes())
            .map_err(|e| format!("{what}: writing stdin: {e}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: timed out").into());
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn restore(backend: Backend, input: &str) -> TestResult {
    tool(backend.restore, &["-w", "--noflush"], Some(input))
        .map(drop)
        .map_err(|e| {
            let msg = e.message().map(str::to_string).unwrap_or_default();
            format!("{msg}\ninput:\n{}", numbered(input)).into()
        })
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:4} {l}\n", i + 1))
        .collect()
}

/// A chain and its rules, as `iptables-save` prints them, in order.
type SavedChain = (String, Vec<String>);

/// `iptables-save` parsed: per table, its chains.
#[derive(Debug, Default, PartialEq, Eq)]
struct Saved {
    tables: Vec<(String, Vec<SavedChain>)>,
}

impl Saved {
    fn read(backend: Backend) -> Result<Saved, Failed> {
        let text = tool(backend.save, &[], None)?;
        let mut saved = Saved::default();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix('*') {
                saved.tables.push((t.to_string(), Vec::new()));
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap().to_string();
                let chains = &mut saved.tables.last_mut().unwrap().1;
                chains.push((name, Vec::new()));
            } else if line.starts_with("-A ") {
                let chain = line.split_whitespace().nth(1).unwrap();
                let chains = &mut saved.tables.last_mut().unwrap().1;
                let entry = chains
                    .iter_mut()
                    .find(|(c, _)| c == chain)
                    .ok_or_else(|| format!("rule in undeclared chain: {line}"))?;
                entry.1.push(line.to_string());
            }
        }
        Ok(saved)
    }

    fn chain(&self, table: &str, chain: &str) -> Option<&Vec<String>> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)?
            .1
            .iter()
            .find(|(c, _)| c == chain)
            .map(|(_, r)| r)
    }

    fn rules(&self, table: &str, chain: &str) -> Result<&Vec<String>, Failed> {
        self.chain(table, chain)
            .ok_or_else(|| format!("no chain {chain} in table {table}:\n{self:#?}").into())
    }
}

/// The rendered input: per table, chain -> number of `-A` rules, and the `-I` lines.
fn rendered_counts(input: &str) -> Vec<(String, String, usize)> {
    let mut table = String::new();
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for line in input.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap().to_string();
            out.push((table.clone(), name, 0));
        } else if line.starts_with("-A ") || line.starts_with("-I ") {
            let chain = line.split_whitespace().nth(1).unwrap();
            match out.iter_mut().find(|(t, c, _)| t == &table && c == chain) {
                Some(e) => e.2 += 1,
                None => out.push((table.clone(), chain.to_string(), 1)),
            }
        }
    }
    out
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ep(addr: &str, port: u16, node: &str) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        node_name: Some(node.into()),
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn svc(name: &str, port_name: &str, proto: Proto, cip: &str, port: u16) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: port_name.into(),
        protocol: proto,
        cluster_ip: Some(ip(cip)),
        port,
        node_port: None,
        affinity_timeout: None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        endpoints: vec![],
    }
}

/// Every Service shape, on node1 (whose pods are 10.244.1.0/24).
fn table() -> ServiceTable {
    let mut dns = svc("kube-dns", "dns", Proto::Udp, "10.96.0.10", 53);
    dns.endpoints = vec![ep("10.244.1.2", 53, "node1"), ep("10.244.2.2", 53, "node2")];
    let mut dns_tcp = svc("kube-dns", "dns-tcp", Proto::Tcp, "10.96.0.10", 53);
    dns_tcp.endpoints = dns.endpoints.clone();
    let mut myapp = svc("myapp", "", Proto::Tcp, "10.96.1.20", 80);
    myapp.endpoints = vec![ep("10.244.1.10", 8080, "node1")];
    let mut three = svc("three", "", Proto::Tcp, "10.96.1.21", 80);
    three.endpoints = vec![
        ep("10.244.1.11", 8080, "node1"),
        ep("10.244.2.11", 8080, "node2"),
        ep("10.244.3.11", 8080, "node3"),
    ];
    let mut web = svc("web", "http", Proto::Tcp, "10.96.1.30", 80);
    web.node_port = Some(30080);
    web.endpoints = vec![ep("10.244.1.10", 8080, "node1")];
    let mut etp = svc("etp-local", "", Proto::Tcp, "10.96.1.40", 80);
    etp.node_port = Some(30040);
    etp.external_traffic_policy = TrafficPolicy::Local;
    etp.endpoints = vec![
        ep("10.244.1.12", 8080, "node1"),
        ep("10.244.2.12", 8080, "node2"),
    ];
    let mut etp_remote = svc("etp-remote", "", Proto::Udp, "10.96.1.41", 5353);
    etp_remote.node_port = Some(30041);
    etp_remote.external_traffic_policy = TrafficPolicy::Local;
    etp_remote.endpoints = vec![ep("10.244.2.13", 5353, "node2")];
    let mut itp = svc("itp-local", "", Proto::Tcp, "10.96.1.50", 80);
    itp.internal_traffic_policy = TrafficPolicy::Local;
    itp.endpoints = vec![
        ep("10.244.1.14", 8080, "node1"),
        ep("10.244.2.14", 8080, "node2"),
    ];
    let mut sticky = svc("sticky", "", Proto::Tcp, "10.96.1.60", 80);
    sticky.affinity_timeout = Some(10800);
    sticky.endpoints = vec![
        ep("10.244.1.10", 8080, "node1"),
        ep("10.244.2.15", 8080, "node2"),
    ];
    let mut empty = svc("empty", "", Proto::Tcp, "10.96.1.70", 80);
    empty.node_port = Some(30070);
    let mut headless = svc("headless", "", Proto::Tcp, "10.96.1.80", 80);
    headless.cluster_ip = None;
    headless.endpoints = vec![ep("10.244.1.16", 80, "node1")];
    ServiceTable {
        node_name: "node1".into(),
        node_ips: vec![ip("172.18.0.2")],
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        services: vec![
            dns, dns_tcp, myapp, three, web, etp, etp_remote, itp, sticky, empty, headless,
        ],
    }
}

/// Checks that `saved` holds every chain of `input` with as many rules, and nothing more in
/// kube-proxy's chains.
fn expect_matches(saved: &Saved, input: &str, builtin_jumps: usize) -> TestResult {
    for (table, chain, n) in rendered_counts(input) {
        let rules = saved.rules(&table, &chain)?;
        let builtin = chain.chars().all(|c| c.is_ascii_uppercase()) && !chain.contains('-');
        if builtin {
            // Only our jumps are in the builtin chains of a fresh namespace.
            expect(rules.len() == n * builtin_jumps, || {
                format!(
                    "{table}/{chain}: {} rules, expected {n}: {rules:#?}",
                    rules.len()
                )
            })?;
        } else {
            expect(rules.len() == n, || {
                format!(
                    "{table}/{chain}: {} rules, expected {n}: {rules:#?}",
                    rules.len()
                )
            })?;
        }
    }
    Ok(())
}

// ---- trials ---------------------------------------------------------------------------------

fn render_restores_every_chain(backend: Backend) -> TestResult {
    let input = iptables::render(&table());
    restore(backend, &input)?;
    let saved = Saved::read(backend)?;
    expect_matches(&saved, &input, 1)?;

    // The jumps, in the order kube-proxy's prepends leave them.
    let targets = |table: &str, chain: &str| -> Result<Vec<String>, Failed> {
        Ok(saved
            .rules(table, chain)?
            .iter()
            .map(|r| r.rsplit(" -j ").next().unwrap().to_string())
            .collect())
    };
    expect(
        targets("filter", "INPUT")?
            == [
                "KUBE-FIREWALL",
                "KUBE-PROXY-FIREWALL",
                "KUBE-NODEPORTS",
                "KUBE-EXTERNAL-SERVICES",
            ],
        || format!("filter INPUT: {:#?}", saved.rules("filter", "INPUT")),
    )?;
    expect(
        targets("filter", "FORWARD")?
            == [
                "KUBE-PROXY-FIREWALL",
                "KUBE-FORWARD",
                "KUBE-SERVICES",
                "KUBE-EXTERNAL-SERVICES",
            ],
        || format!("filter FORWARD: {:#?}", saved.rules("filter", "FORWARD")),
    )?;
    expect(
        targets("filter", "OUTPUT")? == ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"],
        || format!("filter OUTPUT: {:#?}", saved.rules("filter", "OUTPUT")),
    )?;
    for (chain, target) in [
        ("PREROUTING", "KUBE-SERVICES"),
        ("OUTPUT", "KUBE-SERVICES"),
        ("POSTROUTING", "KUBE-POSTROUTING"),
    ] {
        expect(targets("nat", chain)? == [target], || {
            format!("nat {chain}: {:#?}", saved.rules("nat", chain))
        })?;
    }
    for t in ["mangle", "filter", "nat"] {
        expect(saved.chain(t, "KUBE-PROXY-CANARY").is_some(), || {
            format!("no canary in {t}")
        })?;
    }

    // A few rules as iptables prints them back.
    let has = |table: &str, chain: &str, needle: &str| -> TestResult {
        let rules = saved.rules(table, chain)?;
        expect(rules.iter().any(|r| r == needle), || {
            format!("{table}/{chain} lacks\n  {needle}\nhas {rules:#?}")
        })
    };
    has(
        "nat",
        "KUBE-MARK-MASQ",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
    )?;
    has(
        "nat",
        "KUBE-POSTROUTING",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
    )?;
    has(
        "nat",
        "KUBE-SERVICES",
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    )?;
    let three = &table().services[3];
    let svc = iptables::svc_chain(three);
    let rules = saved.rules("nat", &svc)?;
    expect(
        rules[1].contains("-m statistic --mode random --probability 0.33333333349")
            && rules[2].contains("-m statistic --mode random --probability 0.50000000000")
            && !rules[3].contains("statistic"),
        || format!("{svc}: {rules:#?}"),
    )?;
    expect(
        rules[0].contains("! -s 10.244.0.0/16") && rules[0].ends_with("-j KUBE-MARK-MASQ"),
        || format!("{svc}: {rules:#?}"),
    )?;
    let sticky = &table().services[8];
    let sep = iptables::sep_chain(sticky, &sticky.endpoints[0]);
    has(
        "nat",
        &sep,
        &format!(
            "-A {sep} -p tcp -m comment --comment \"default/sticky\" -m recent --set --name {sep} --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.10:8080"
        ),
    )?;
    Ok(())
}

fn sync_reapplies_idempotently(backend: Backend) -> TestResult {
    let t = table();
    let input = iptables::render(&t);
    restore(backend, &input)?;
    let first = Saved::read(backend)?;
    // A kube-proxy sync, twice: it flushes and refills its chains, and leaves the jumps.
    restore(backend, &iptables::render_sync(&t))?;
    restore(backend, &iptables::render_sync(&t))?;
    let again = Saved::read(backend)?;
    expect(first == again, || {
        format!("re-syncing changed the ruleset:\n{first:#?}\n{again:#?}")
    })?;

    // A sync with one endpoint fewer replaces the Service's rules.
    let mut fewer = t.clone();
    fewer.services[3].endpoints.pop();
    restore(backend, &iptables::render_sync(&fewer))?;
    let saved = Saved::read(backend)?;
    let svc = iptables::svc_chain(&fewer.services[3]);
    expect(saved.rules("nat", &svc)?.len() == 3, || {
        format!("{svc}: {:#?}", saved.rules("nat", &svc))
    })?;
    // Applying the whole render again duplicates only the jumps (documented).
    restore(backend, &input)?;
    let twice = Saved::read(backend)?;
    expect_matches(&twice, &input, 2)
}

/// The rules do what kube-proxy's do: connections to a ClusterIP and to a NodePort are DNATed to
/// an endpoint, session affinity keeps a client on one endpoint, and a Service without endpoints
/// refuses.
fn services_dnat_and_reject(backend: Backend) -> TestResult {
    // This namespace plays node1: 10.244.1.1 is its pod gateway, 10.244.1.10 and 10.244.1.20
    // two local pods, and Service traffic is routed towards the pods.
    for cmd in [
        "link set lo up",
        "link add v0 type veth peer name v1",
        "addr add 10.244.1.1/24 dev v0",
        "addr add 10.244.1.10/32 dev v1",
        "addr add 10.244.1.20/32 dev v1",
        "link set v0 up",
        "link set v1 up",
        "route add 10.96.0.0/12 dev v0 src 10.244.1.1",
    ] {
        tool("ip", &cmd.split_whitespace().collect::<Vec<_>>(), None)?;
    }
    let mut myapp = svc("myapp", "", Proto::Tcp, "10.96.1.20", 80);
    myapp.endpoints = vec![ep("10.244.1.10", 8080, "node1")];
    let mut web = svc("web", "http", Proto::Tcp, "10.96.1.30", 80);
    web.node_port = Some(30080);
    web.endpoints = vec![ep("10.244.1.20", 8080, "node1")];
    let mut sticky = svc("sticky", "", Proto::Tcp, "10.96.1.60", 80);
    sticky.affinity_timeout = Some(10800);
    sticky.endpoints = vec![
        ep("10.244.1.10", 8080, "node1"),
        ep("10.244.1.20", 8080, "node1"),
    ];
    let empty = svc("empty", "", Proto::Tcp, "10.96.1.70", 80);
    let mut t = table();
    t.services = vec![myapp, web, sticky, empty];
    restore(backend, &iptables::render(&t))?;

    let listeners = ["10.244.1.10:8080", "10.244.1.20:8080"]
        .map(|a| TcpListener::bind(a).map_err(|e| format!("bind {a}: {e}")));
    let listeners: Vec<TcpListener> = listeners.into_iter().collect::<Result<_, _>>()?;
    for l in &listeners {
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    // Connects to `to`, exchanges a message, and says which endpoint answered.
    let connect = |to: &str| -> Result<SocketAddr, Failed> {
        let to: SocketAddr = to.parse().unwrap();
        let mut client = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .map_err(|e| format!("connect {to}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let (mut server, at) = loop {
            if let Some(found) = listeners
                .iter()
                .find_map(|l| l.accept().ok().map(|(s, _)| (s, l.local_addr().unwrap())))
            {
                break found;
            }
            if Instant::now() > deadline {
                return Err(format!("{to}: connected, but no endpoint accepted").into());
            }
            thread::sleep(Duration::from_millis(5));
        };
        expect(client.peer_addr().map_err(|e| e.to_string())? == to, || {
            format!("{to}: the client should see the Service address")
        })?;
        server.set_nonblocking(false).map_err(|e| e.to_string())?;
        server.write_all(b"pong").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        client.read_exact(&mut buf).map_err(|e| e.to_string())?;
        expect(&buf == b"pong", || format!("{to}: read {buf:?}"))?;
        Ok(at)
    };

    let at = connect("10.96.1.20:80")?;
    expect(at == "10.244.1.10:8080".parse().unwrap(), || {
        format!("ClusterIP reached {at}")
    })?;
    let at = connect("10.244.1.1:30080")?;
    expect(at == "10.244.1.20:8080".parse().unwrap(), || {
        format!("NodePort reached {at}")
    })?;
    let first = connect("10.96.1.60:80")?;
    for _ in 0..10 {
        let at = connect("10.96.1.60:80")?;
        expect(at == first, || {
            format!("affinity: first {first}, then {at}")
        })?;
    }

    let refused =
        TcpStream::connect_timeout(&"10.96.1.70:80".parse().unwrap(), Duration::from_secs(2));
    match refused {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        other => Err(format!("a Service without endpoints should refuse: {other:?}").into()),
    }
}

/// With nfacct counters (which kube-proxy creates over nfnetlink before it restores), the rules
/// that count through them restore too.
fn nfacct_rules_restore(backend: Backend) -> TestResult {
    for name in [
        "ct_state_invalid_dropped_pkts",
        "localhost_nps_accepted_pkts",
    ] {
        if let Err(e) = nfacct_add(name) {
            return Err(format!("creating nfacct counter {name}: {e}").into());
        }
    }
    let opts = Options {
        nfacct: true,
        ..Options::default()
    };
    let input = iptables::render_with(&table(), &opts);
    restore(backend, &input)?;
    let saved = Saved::read(backend)?;
    expect_matches(&saved, &input, 1)?;
    let forward = saved.rules("filter", "KUBE-FORWARD")?;
    expect(
        // iptables prints the name behind two spaces.
        forward[0].contains("-m nfacct --nfacct-name")
            && forward[0].contains(" ct_state_invalid_dropped_pkts ")
            && forward[0].ends_with("-j DROP"),
        || format!("KUBE-FORWARD: {forward:#?}"),
    )?;
    let nodeports = saved.rules("nat", "KUBE-NODEPORTS")?;
    expect(
        nodeports
            .iter()
            .filter(|r| r.contains("-d 127.0.0.0/8") && r.contains("localhost_nps_accepted_pkts"))
            .count()
            == 3,
        || format!("KUBE-NODEPORTS: {nodeports:#?}"),
    )
}

/// Creates an nfacct object the way kube-proxy does: NFNL_MSG_ACCT_NEW over NETLINK_NETFILTER.
fn nfacct_add(name: &str) -> Result<(), String> {
    use netns_runtime::netlink::frame::{NLM_F_ACK, NLM_F_REQUEST};
    use netns_runtime::netlink::socket::NlSocket;
    const NFNL_SUBSYS_ACCT: u16 = 7;
    const NFNL_MSG_ACCT_NEW: u16 = 0;
    const NFACCT_NAME: u16 = 1;
    const NLM_F_CREATE: u16 = 0x400;

    let mut attr_value = name.as_bytes().to_vec();
    attr_value.push(0);
    let attr_len = 4 + attr_value.len();
    let mut payload = vec![0, 0, 0, 0]; // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0
    payload.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    payload.extend_from_slice(&NFACCT_NAME.to_ne_bytes());
    payload.extend_from_slice(&attr_value);
    payload.resize(payload.len().next_multiple_of(4), 0);

    let mut sock = NlSocket::open(nix::sys::socket::SockProtocol::NetlinkNetFilter)
        .map_err(|e| e.to_string())?;
    sock.request(
        (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        payload.len(),
        |b| b.copy_from_slice(&payload),
        &mut |_, _| Ok(()),
    )
    .map_err(|e| e.to_string())
}
