//! The builtin cluster DNS server against the real `dig`, over UDP and TCP.
//!
//! `main` first moves the whole process into a private network namespace (as root with
//! `unshare(CLONE_NEWNET)`, otherwise inside a new user namespace), so nothing here can touch
//! the host's network. Every trial then runs on a thread of its own that unshares once more,
//! brings `lo` up, binds 127.0.0.1:53 (UDP and TCP) and serves a record table there; `dig`,
//! started from that thread, inherits its network namespace. Every answer `dig` prints is
//! compared with what [`RecordTable::lookup`] says, so the wire path adds nothing and loses
//! nothing, except where truncation must cut.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::time::Duration;

use libtest_mimic::Failed;
use netns_runtime::dns::{
    Answer, ClusterDns, DnsServer, Endpoint, Pod, Port, Rcode, RecordTable, RecordType, Service,
    SharedTable,
};
use netns_runtime::topology::Proto;

mod support;

use support::{Test, TestResult};

/// Endpoints of the headless Service whose A answer cannot fit 512 bytes, nor 1232.
const BIG: u8 = 120;

fn main() {
    let tests: Vec<(&str, Test)> = vec![
        ("answers_match_the_table_over_udp", answers_match_over_udp),
        ("answers_match_the_table_over_tcp", answers_match_over_tcp),
        ("reverse_lookups_with_dig_x", reverse_lookups),
        (
            "big_answer_is_truncated_over_udp",
            big_answer_is_truncated_over_udp,
        ),
        ("dig_retries_truncated_over_tcp", dig_retries_over_tcp),
        ("swapped_table_answers_at_once", swapped_table_answers),
    ];
    support::run_trials(tests, || {
        tool(&["dig", "-v"])
            .map(|_| ())
            .map_err(|e| format!("dig is not usable: {}", e.message().unwrap_or_default()))
    });
}

/// How long a `dig` or `ip` call may take before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a tool in the calling thread's network namespace, killed after [`TOOL_TIMEOUT`]; when it
/// fails, the error shows its standard output after its standard error (`dig` explains itself
/// there).
fn tool(argv: &[&str]) -> Result<String, Failed> {
    let done = support::run(argv, TOOL_TIMEOUT)?;
    if done.code != Some(0) {
        return Err(support::failed(
            argv,
            &done,
            &format!("{}{}", done.stderr, done.stdout),
        ));
    }
    Ok(done.stdout)
}

// --- the cluster ------------------------------------------------------------------------------

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn cluster() -> ClusterDns {
    let http = |port| Port {
        name: "http".into(),
        protocol: Proto::Tcp,
        port,
    };
    let ep = |addr: Ipv4Addr, ready| Endpoint {
        ip: addr,
        hostname: None,
        pod: None,
        ready,
        ports: vec![http(8080)],
    };
    let mut web0 = ep(ip("10.244.1.10"), true);
    web0.pod = Some("web-0".into());
    let dns_ports = vec![
        Port {
            name: "dns".into(),
            protocol: Proto::Udp,
            port: 53,
        },
        Port {
            name: "dns-tcp".into(),
            protocol: Proto::Tcp,
            port: 53,
        },
    ];
    ClusterDns {
        services: vec![
            Service {
                namespace: "default".into(),
                name: "myapp".into(),
                cluster_ip: Some(ip("10.96.1.20")),
                ports: vec![http(80)],
                endpoints: vec![ep(ip("10.244.2.6"), true), ep(ip("10.244.1.7"), false)],
            },
            Service {
                namespace: "default".into(),
                name: "web".into(),
                cluster_ip: None,
                ports: vec![http(80)],
                endpoints: vec![
                    web0,
                    ep(ip("10.244.2.11"), true),
                    ep(ip("10.244.2.12"), false),
                ],
            },
            Service {
                namespace: "default".into(),
                name: "big".into(),
                cluster_ip: None,
                ports: vec![http(80)],
                endpoints: (0..BIG)
                    .map(|i| ep(Ipv4Addr::new(10, 244, 3, i + 1), true))
                    .collect(),
            },
            Service {
                namespace: "kube-system".into(),
                name: "kube-dns".into(),
                cluster_ip: Some(ip("10.96.0.10")),
                ports: dns_ports.clone(),
                endpoints: vec![Endpoint {
                    ip: ip("10.244.1.5"),
                    hostname: None,
                    pod: None,
                    ready: true,
                    ports: dns_ports,
                }],
            },
        ],
        pods: vec![Pod {
            namespace: "default".into(),
            name: "web-0".into(),
            ip: ip("10.244.1.10"),
            hostname: Some("web-0".into()),
            subdomain: Some("web".into()),
        }],
        server_ips: vec![ip("10.244.1.5")],
        ..ClusterDns::default()
    }
}

/// Brings `lo` up in the calling thread's namespace and serves `dns` on 127.0.0.1:53.
fn serve(dns: &ClusterDns) -> Result<DnsServer, Failed> {
    tool(&["ip", "link", "set", "lo", "up"])?;
    let udp = UdpSocket::bind("127.0.0.1:53").map_err(|e| format!("bind udp :53: {e}"))?;
    let tcp = TcpListener::bind("127.0.0.1:53").map_err(|e| format!("bind tcp :53: {e}"))?;
    let table = SharedTable::new(RecordTable::new(dns));
    Ok(DnsServer::serve(table, udp, tcp).map_err(|e| format!("serve: {e}"))?)
}

// --- dig --------------------------------------------------------------------------------------

/// What `dig` printed: the status, the header flags and the sections, one record a line with
/// single spaces.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    /// dig said it got TC and asked again over TCP.
    retried_over_tcp: bool,
}

fn dig(args: &[&str]) -> Result<Dig, Failed> {
    let mut argv = vec!["dig", "@127.0.0.1", "-p", "53", "+time=2", "+tries=1"];
    argv.extend_from_slice(args);
    let out = tool(&argv)?;
    parse_dig(&out).ok_or_else(|| format!("`{}` printed no header:\n{out}", argv.join(" ")).into())
}

fn parse_dig(out: &str) -> Option<Dig> {
    let mut dig = Dig::default();
    let mut section: Option<&mut Vec<String>> = None;
    let mut seen_header = false;
    for line in out.lines() {
        if line.contains("Truncated, retrying in TCP mode") {
            dig.retried_over_tcp = true;
        }
        if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
            dig.status = rest.split(',').next()?.trim().to_string();
            seen_header = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            dig.flags = rest
                .split(';')
                .next()?
                .split_whitespace()
                .map(String::from)
                .collect();
            continue;
        }
        match line {
            ";; ANSWER SECTION:" => section = Some(&mut dig.answer),
            ";; AUTHORITY SECTION:" => section = Some(&mut dig.authority),
            ";; ADDITIONAL SECTION:" => section = Some(&mut dig.additional),
            "" => section = None,
            l if l.starts_with(';') => {}
            l => {
                if let Some(s) = section.as_mut() {
                    s.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
    }
    seen_header.then_some(dig)
}

/// What `dig` should print for the table's answer.
fn expected(answer: &Answer) -> Dig {
    let lines = |rs: &[netns_runtime::dns::Record]| rs.iter().map(ToString::to_string).collect();
    let mut flags = vec!["qr".to_string()];
    if answer.authoritative {
        flags.push("aa".into());
    }
    flags.push("rd".into());
    Dig {
        status: answer.rcode.to_string(),
        flags,
        answer: lines(&answer.answers),
        authority: lines(&answer.authority),
        additional: lines(&answer.additional),
        retried_over_tcp: false,
    }
}

/// Questions covering every record kind and both negative answers.
const QUESTIONS: &[(&str, &str)] = &[
    ("myapp.default.svc.cluster.local", "A"),
    ("MyApp.Default.SVC.Cluster.Local", "A"),
    ("web.default.svc.cluster.local", "A"),
    ("web-0.web.default.svc.cluster.local", "A"),
    ("10-244-2-11.web.default.svc.cluster.local", "A"),
    ("10-244-2-12.web.default.svc.cluster.local", "A"),
    ("myapp.default.svc.cluster.local", "AAAA"),
    ("nosuch.default.svc.cluster.local", "A"),
    ("nosuch.default.svc.cluster.local", "AAAA"),
    ("default.svc.cluster.local", "A"),
    ("_http._tcp.myapp.default.svc.cluster.local", "SRV"),
    ("_http._tcp.web.default.svc.cluster.local", "SRV"),
    ("_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV"),
    ("_http._udp.myapp.default.svc.cluster.local", "SRV"),
    ("10-244-1-10.default.pod.cluster.local", "A"),
    ("blah.default.pod.cluster.local", "A"),
    ("dns-version.cluster.local", "TXT"),
    ("cluster.local", "SOA"),
    ("cluster.local", "NS"),
    ("20.1.96.10.in-addr.arpa", "PTR"),
    ("12.2.244.10.in-addr.arpa", "PTR"),
    ("example.com", "A"),
];

fn answers_match(transport: &[&str]) -> TestResult {
    let dns = cluster();
    let table = RecordTable::new(&dns);
    let _server = serve(&dns)?;
    let mut wrong = Vec::new();
    for (name, qtype) in QUESTIONS {
        let mut args = transport.to_vec();
        args.extend_from_slice(&[name, qtype]);
        let got = dig(&args)?;
        let want = expected(&table.lookup(name, qtype.parse::<RecordType>()?));
        if got != want {
            wrong.push(format!(
                "{name} {qtype}:\n  dig:   {got:?}\n  table: {want:?}"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

fn answers_match_over_udp() -> TestResult {
    answers_match(&[])
}

fn answers_match_over_tcp() -> TestResult {
    answers_match(&["+tcp"])
}

fn reverse_lookups() -> TestResult {
    let _server = serve(&cluster())?;
    for (addr, target) in [
        ("10.96.1.20", "myapp.default.svc.cluster.local."),
        ("10.244.1.10", "web-0.web.default.svc.cluster.local."),
        ("10.244.2.11", "10-244-2-11.web.default.svc.cluster.local."),
        ("10.244.2.6", "10-244-2-6.myapp.default.svc.cluster.local."),
    ] {
        for transport in ["+notcp", "+tcp"] {
            let got = dig(&[transport, "-x", addr])?;
            let reversed: Vec<&str> = addr.split('.').rev().collect();
            let want = format!("{}.in-addr.arpa. 30 IN PTR {target}", reversed.join("."));
            if got.status != "NOERROR" || got.answer != [want.clone()] {
                return Err(format!("dig {transport} -x {addr}: {got:?}, want {want}").into());
            }
        }
    }
    let got = dig(&["-x", "10.244.2.12"])?;
    if got.status != "NXDOMAIN"
        || got.authority.len() != 1
        || !got.authority[0].starts_with("in-addr.arpa. 30 IN SOA ns.dns.in-addr.arpa. ")
    {
        return Err(format!("not-ready endpoint's PTR: {got:?}").into());
    }
    Ok(())
}

fn big_answer_is_truncated_over_udp() -> TestResult {
    let _server = serve(&cluster())?;
    let name = "big.default.svc.cluster.local";
    // Without EDNS the limit is 512 bytes; with dig's default EDNS buffer, 1232.
    for edns in ["+noedns", "+edns=0"] {
        let got = dig(&["+ignore", edns, name, "A"])?;
        let fits = got.answer.len();
        if !got.flags.contains(&"tc".to_string()) || fits == 0 || fits >= usize::from(BIG) {
            return Err(
                format!("dig +ignore {edns}: want TC and a partial answer: {got:?}").into(),
            );
        }
        if got.status != "NOERROR" {
            return Err(format!("dig +ignore {edns}: status {}", got.status).into());
        }
    }
    let got = dig(&["+tcp", name, "A"])?;
    if got.flags.contains(&"tc".to_string()) || got.answer.len() != usize::from(BIG) {
        return Err(format!(
            "over TCP: want all {BIG} records and no TC, got {} records, flags {:?}",
            got.answer.len(),
            got.flags
        )
        .into());
    }
    Ok(())
}

fn dig_retries_over_tcp() -> TestResult {
    let _server = serve(&cluster())?;
    let got = dig(&["+noedns", "big.default.svc.cluster.local", "A"])?;
    if !got.retried_over_tcp || got.answer.len() != usize::from(BIG) {
        return Err(format!(
            "want dig to retry over TCP and get all {BIG} records: retried {}, {} records",
            got.retried_over_tcp,
            got.answer.len()
        )
        .into());
    }
    Ok(())
}

fn swapped_table_answers() -> TestResult {
    let mut dns = cluster();
    let server = serve(&dns)?;
    let before = dig(&["late.default.svc.cluster.local", "A"])?;
    if before.status != Rcode::NxDomain.to_string() {
        return Err(format!("before the swap: {before:?}").into());
    }
    dns.services.push(Service {
        namespace: "default".into(),
        name: "late".into(),
        cluster_ip: Some(ip("10.96.9.9")),
        ports: vec![],
        endpoints: vec![],
    });
    dns.serial += 1;
    server.table().store(RecordTable::new(&dns));
    let after = dig(&["late.default.svc.cluster.local", "A"])?;
    if after.answer != ["late.default.svc.cluster.local. 30 IN A 10.96.9.9"] {
        return Err(format!("after the swap: {after:?}").into());
    }
    let soa = dig(&["cluster.local", "SOA"])?;
    if !soa
        .answer
        .first()
        .is_some_and(|s| s.contains(" 2 7200 1800 86400 30"))
    {
        return Err(format!("the serial did not follow: {soa:?}").into());
    }
    Ok(())
}
