use std::net::SocketAddrV4;

use rstest::rstest;

use super::*;
use crate::diag::Diagnostic;
use crate::plan::testing::{
    assert_edits_stay_located, assert_one_at, assert_one_saying, diagnostics, ip, plan,
};
use crate::plan::{DnsAnswer, DnsExpect, ExecPlan, Expect, ProxyMode, ServiceVia, Target};

const FILE: &str = "cases/d.yaml";

/// node1 runs the DNS pod; a client, a ClusterIP Service `web` (web-1), a headless `db`
/// (db-0 and db-1 with hostnames, db-2 not ready) and `web` again in namespace `other`.
const CLUSTER: &str = "dns: { node: node1 }
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
  - { name: web-1, node: node2, labels: { app: web }, listen: [8080] }
  - { name: db-0, node: node1, hostname: db-0, subdomain: db, labels: { app: db }, listen: [5432] }
  - { name: db-1, node: node2, hostname: db-1, subdomain: db, labels: { app: db }, listen: [5432] }
  - { name: db-2, node: node2, hostname: db-2, subdomain: db, labels: { app: db }, ready: false, listen: [5432] }
  - { name: o, node: node2, namespace: other, labels: { app: web }, listen: [8080] }
services:
  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: web, namespace: other, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: db, clusterIP: None, selector: { app: db }, ports: [{ name: pg, port: 5432 }] }
";

fn with_flows(flows: &str) -> String {
    format!("{CLUSTER}flows:\n{flows}")
}

// --- the DNS pod and Service -----------------------------------------------------------

#[test]
fn the_dns_pod_comes_after_the_case_pods_and_kube_dns_at_the_tenth_address() {
    let plan = plan(FILE, CLUSTER);
    let topo = &plan.topology;
    let names: Vec<&str> = topo.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["client", "web-1", "db-0", "db-1", "db-2", "o", "coredns"]
    );
    let coredns = topo.pod("coredns").unwrap();
    assert_eq!(coredns.namespace, "kube-system");
    assert_eq!(topo.nodes[coredns.node].name, "node1");
    // client .2 and db-0 .3 keep theirs: the DNS pod takes the next one on node1.
    assert_eq!(coredns.eth0.addr.addr(), ip("10.244.1.4"));
    assert!(coredns.listeners.is_empty(), "no echo server on 53");
    assert_eq!(
        topo.pod("client").unwrap().eth0.addr.addr(),
        ip("10.244.1.2")
    );

    // kube-dns is the last of the case's Services; the API's default/kubernetes follows.
    let kube_dns = &plan.services[plan.services.len() - 2];
    assert_eq!(plan.services.last().unwrap().id(), "default/kubernetes");
    assert_eq!(kube_dns.id(), "kube-system/kube-dns");
    assert_eq!(kube_dns.cluster_ip, Some(ip("10.96.0.10")));
    assert_eq!(
        kube_dns.selector,
        Some(BTreeMap::from([("k8s-app".into(), "kube-dns".into())]))
    );
    let ports: Vec<(String, Proto, u16, String)> = kube_dns
        .ports
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.protocol,
                p.port,
                p.target_port.to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), Proto::Udp, 53, "53".into()),
            ("dns-tcp".into(), Proto::Tcp, 53, "53".into())
        ]
    );
    for port in &kube_dns.ports {
        let endpoints: Vec<(Option<&str>, Ipv4Addr, u16, bool)> = port
            .endpoints
            .iter()
            .map(|e| (e.pod.as_deref(), e.ip, e.port, e.ready))
            .collect();
        assert_eq!(endpoints, [(Some("coredns"), ip("10.244.1.4"), 53, true)]);
    }
    // The case's Services are allocated as without DNS (.2, .3; .10 is skipped anyway).
    assert_eq!(plan.services[0].cluster_ip, Some(ip("10.96.0.2")));
    assert_eq!(plan.services[1].cluster_ip, Some(ip("10.96.0.3")));
    // kube-proxy gets the kube-dns Service like any other.
    let dns_ports: Vec<u16> = plan.proxy[0]
        .services
        .iter()
        .filter(|p| p.name == "kube-dns")
        .map(|p| p.port)
        .collect();
    assert_eq!(dns_ports, [53, 53]);
    assert_eq!(topo.dns.as_ref().unwrap().pod, "coredns");
}

#[rstest]
#[case::default_cidr("dns: { node: n1 }\n", "10.96.0.10")]
#[case::other_cidr(
    "cluster: { serviceCIDR: 10.100.0.0/24 }\ndns: { node: n1 }\n",
    "10.100.0.10"
)]
#[case::fixed("dns: { node: n1, clusterIP: 10.96.0.53 }\n", "10.96.0.53")]
fn the_kube_dns_address_is_the_tenth_host_unless_fixed(#[case] head: &str, #[case] expected: &str) {
    let plan = plan(
        FILE,
        &format!(
            "{head}nodes: [n1]\npods: [{{ name: a, node: n1 }}]\nservices: [{{ name: s, selector: {{ x: y }}, ports: [{{ port: 1 }}] }}]\n"
        ),
    );
    let dns = plan.services.iter().find(|s| s.name == "kube-dns").unwrap();
    assert_eq!(dns.cluster_ip, Some(ip(expected)));
    let resolv = plan.topology.pods[0].resolv_conf.as_deref().unwrap();
    assert!(
        resolv.starts_with(&format!("nameserver {expected}\n")),
        "{resolv}"
    );
    // A fixed kube-dns address is never allocated to another Service.
    assert_ne!(plan.services[0].cluster_ip, Some(ip(expected)));
}

#[test]
fn without_dns_nothing_changes() {
    let plan = plan(
        FILE,
        "nodes: [n1]\npods: [{ name: a, node: n1, hostname: h, subdomain: s }]\n",
    );
    assert_eq!(plan.topology.dns, None);
    assert_eq!(plan.topology.pods.len(), 1);
    assert_eq!(plan.topology.pods[0].resolv_conf, None);
    assert_eq!(plan.topology.pods[0].hosts, None);
    assert!(plan.services.is_empty());
    assert!(plan.proxy_modes.is_empty());
}

#[test]
fn dns_brings_the_service_proxy_and_works_without_overlay_changes() {
    let with = plan(
        FILE,
        "cluster: { overlay: host-gw }\ndns: { node: n2 }\nnodes: [n1, n2]\n",
    );
    assert_eq!(with.proxy_modes, ProxyMode::ALL.to_vec());
    assert_eq!(
        with.topology.pod("coredns").unwrap().eth0.addr.addr(),
        ip("10.244.2.2")
    );
    // flannel is untouched: the same routes as without DNS.
    let without = plan(FILE, "cluster: { overlay: host-gw }\nnodes: [n1, n2]\n");
    assert_eq!(
        with.topology.nodes[0].routes,
        without.topology.nodes[0].routes
    );
}

// --- resolv.conf and hosts -----------------------------------------------------------

#[test]
fn every_pod_gets_the_kubelet_resolv_conf_and_hosts_file() {
    let plan = plan(FILE, CLUSTER);
    let topo = &plan.topology;
    let client = topo.pod("client").unwrap();
    assert_eq!(
        client.resolv_conf.as_deref(),
        Some(
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        )
    );
    assert_eq!(
        client.hosts.as_deref(),
        Some(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.1.2\tclient\n"
        )
    );
    let db0 = topo.pod("db-0").unwrap();
    assert!(db0.hosts.as_deref().unwrap().ends_with(
        "fe00::2\tip6-allrouters\n10.244.1.3\tdb-0.db.default.svc.cluster.local\tdb-0\n"
    ));
    let other = topo.pod("o").unwrap();
    assert_eq!(
        other.resolv_conf.as_deref(),
        Some(
            "nameserver 10.96.0.10\nsearch other.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        )
    );
    // The DNS pod has dnsPolicy Default (kubeadm's manifest): the node's resolv.conf.
    let coredns = topo.pod("coredns").unwrap();
    assert_eq!(coredns.resolv_conf, None);
    assert!(
        coredns
            .hosts
            .as_deref()
            .unwrap()
            .ends_with("\n10.244.1.4\tcoredns\n")
    );
}

#[rstest]
#[case::name(None, None, "10.0.0.1\tp\n")]
#[case::hostname(Some("h"), None, "10.0.0.1\th\n")]
#[case::subdomain(None, Some("s"), "10.0.0.1\tp.s.ns.svc.example.org\tp\n")]
#[case::both(Some("h"), Some("s"), "10.0.0.1\th.s.ns.svc.example.org\th\n")]
fn the_hosts_entry_follows_the_kubelet(
    #[case] hostname: Option<&str>,
    #[case] subdomain: Option<&str>,
    #[case] last: &str,
) {
    let text = hosts_file(
        ip("10.0.0.1"),
        "p",
        hostname,
        subdomain,
        "ns",
        "example.org",
    );
    assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
    assert!(
        text.ends_with(&format!("fe00::2\tip6-allrouters\n{last}")),
        "{text}"
    );
}

#[test]
fn a_custom_domain_is_in_search_lists_hosts_and_records() {
    let plan = plan(
        FILE,
        "dns: { node: n1, domain: corp.example }\nnodes: [n1]\npods: [{ name: a, node: n1, hostname: h, subdomain: s }]\n",
    );
    let a = plan.topology.pod("a").unwrap();
    assert_eq!(
        a.resolv_conf.as_deref(),
        Some(
            "nameserver 10.96.0.10\nsearch default.svc.corp.example svc.corp.example corp.example\noptions ndots:5\n"
        )
    );
    assert!(
        a.hosts
            .as_deref()
            .unwrap()
            .ends_with("\th.s.default.svc.corp.example\th\n")
    );
    assert_eq!(
        plan.topology.dns.as_ref().unwrap().records.zone,
        "corp.example"
    );
}

// --- the records ---------------------------------------------------------------------

#[test]
fn the_records_hold_every_service_endpoint_and_pod() {
    let plan = plan(FILE, CLUSTER);
    let records = &plan.topology.dns.as_ref().unwrap().records;
    assert_eq!(records.zone, "cluster.local");
    assert_eq!((records.ttl, records.serial), (30, 1));
    assert_eq!(
        records.namespaces,
        [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "other"
        ]
    );
    assert_eq!(records.server_ips, [ip("10.244.1.4")]);
    let ids: Vec<(String, Option<Ipv4Addr>)> = records
        .services
        .iter()
        .map(|s| (format!("{}/{}", s.namespace, s.name), s.cluster_ip))
        .collect();
    assert_eq!(
        ids,
        [
            ("default/web".into(), Some(ip("10.96.0.2"))),
            ("other/web".into(), Some(ip("10.96.0.3"))),
            ("default/db".into(), None),
            ("kube-system/kube-dns".into(), Some(ip("10.96.0.10"))),
            ("default/kubernetes".into(), Some(ip("10.96.0.1"))),
        ]
    );
    let web = &records.services[0];
    assert_eq!(
        web.ports,
        [dns::Port {
            name: String::new(),
            protocol: Proto::Tcp,
            port: 80
        }]
    );
    assert_eq!(
        web.endpoints,
        [dns::Endpoint {
            ip: ip("10.244.2.2"),
            hostname: None,
            pod: Some("web-1".into()),
            ready: true,
            ports: vec![dns::Port {
                name: String::new(),
                protocol: Proto::Tcp,
                port: 8080
            }],
        }]
    );
    // Headless: every selected pod, hostnames from the pods whose subdomain is `db`, the
    // not-ready one kept (CoreDNS drops it itself).
    let db = &records.services[2];
    let endpoints: Vec<(Ipv4Addr, Option<&str>, Option<&str>, bool)> = db
        .endpoints
        .iter()
        .map(|e| (e.ip, e.hostname.as_deref(), e.pod.as_deref(), e.ready))
        .collect();
    assert_eq!(
        endpoints,
        [
            (ip("10.244.1.3"), Some("db-0"), Some("db-0"), true),
            (ip("10.244.2.3"), Some("db-1"), Some("db-1"), true),
            (ip("10.244.2.4"), Some("db-2"), Some("db-2"), false),
        ]
    );
    assert_eq!(
        db.endpoints[0].ports,
        [dns::Port {
            name: "pg".into(),
            protocol: Proto::Tcp,
            port: 5432
        }]
    );
    let kube_dns = &records.services[3];
    assert_eq!(kube_dns.endpoints.len(), 1);
    assert_eq!(
        kube_dns.endpoints[0].ports,
        [
            dns::Port {
                name: "dns".into(),
                protocol: Proto::Udp,
                port: 53
            },
            dns::Port {
                name: "dns-tcp".into(),
                protocol: Proto::Tcp,
                port: 53
            }
        ]
    );
    assert_eq!(records.pods.len(), 7);
    assert_eq!(
        records.pods[2],
        dns::Pod {
            namespace: "default".into(),
            name: "db-0".into(),
            ip: ip("10.244.1.3"),
            hostname: Some("db-0".into()),
            subdomain: Some("db".into()),
        }
    );
    assert_eq!(
        (records.pods[6].name.as_str(), records.pods[6].ip),
        ("coredns", ip("10.244.1.4"))
    );
}

#[test]
fn a_hostname_names_an_endpoint_only_under_the_service_of_its_subdomain() {
    let plan = plan(
        FILE,
        "dns: { node: n1 }
nodes: [n1]
pods:
  - { name: a, node: n1, hostname: ha, subdomain: other, labels: { app: x } }
  - { name: b, node: n1, hostname: hb, labels: { app: x } }
  - { name: c, node: n1, subdomain: x, labels: { app: x } }
services:
  - { name: x, clusterIP: None, selector: { app: x } }
",
    );
    let records = &plan.topology.dns.as_ref().unwrap().records;
    let hostnames: Vec<Option<&str>> = records.services[0]
        .endpoints
        .iter()
        .map(|e| e.hostname.as_deref())
        .collect();
    assert_eq!(hostnames, [None, None, None]);
    assert!(records.services[0].ports.is_empty());
}

// --- names in flows --------------------------------------------------------------------

#[rstest]
#[case::bare(
    "client",
    "web:80",
    Some("web.default.svc.cluster.local."),
    "10.96.0.2"
)]
#[case::other_namespace(
    "client",
    "web.other:80",
    Some("web.other.svc.cluster.local."),
    "10.96.0.3"
)]
#[case::bare_from_other_namespace("o", "web:80", Some("web.other.svc.cluster.local."), "10.96.0.3")]
#[case::fqdn(
    "client",
    "web.default.svc.cluster.local:80",
    Some("web.default.svc.cluster.local."),
    "10.96.0.2"
)]
#[case::fqdn_with_dot(
    "client",
    "web.default.svc.cluster.local.:80",
    Some("web.default.svc.cluster.local."),
    "10.96.0.2"
)]
#[case::endpoint_hostname(
    "client",
    "db-1.db:5432",
    Some("db-1.db.default.svc.cluster.local."),
    "10.244.2.3"
)]
#[case::pod_record(
    "client",
    "10-244-2-2.default.pod:8080",
    Some("10-244-2-2.default.pod.cluster.local."),
    "10.244.2.2"
)]
#[case::kube_dns(
    "client",
    "kube-dns.kube-system:53",
    Some("kube-dns.kube-system.svc.cluster.local."),
    "10.96.0.10"
)]
#[case::headless_with_several(
    "client",
    "db:5432",
    Some("db.default.svc.cluster.local."),
    "0.0.0.0"
)]
#[case::nothing("client", "nosuch:80", None, "0.0.0.0")]
fn names_resolve_with_the_search_list_of_from(
    #[case] from: &str,
    #[case] to: &str,
    #[case] fqdn: Option<&str>,
    #[case] addr: &str,
) {
    let expect = if fqdn.is_some() {
        "dns: { rcode: NOERROR }"
    } else {
        "dns: { rcode: REFUSED }"
    };
    let plan = plan(
        FILE,
        &with_flows(&format!(
            "  - {{ name: f, from: {from}, to: '{to}', protocol: {}, expect: {{ {expect} }} }}\n",
            if to.ends_with(":53") { "udp" } else { "tcp" }
        )),
    );
    let flow = &plan.flows[0];
    let (host, port) = to.rsplit_once(':').unwrap();
    assert_eq!(flow.dns_name.as_deref(), Some(host));
    let resolution = flow.resolution.as_ref().unwrap();
    assert_eq!(resolution.fqdn.as_deref(), fqdn);
    assert_eq!(flow.target.ip(), ip(addr));
    assert_eq!(
        flow.target.to_string().rsplit_once(':').unwrap().1,
        port,
        "the port is kept"
    );
    assert!(!flow.sends_traffic(), "dns alone");
}

#[test]
fn the_search_order_is_the_resolvers() {
    let plan = plan(FILE, &with_flows(
            "  - { name: a, from: client, to: 'web.other:80', expect: { reach: o } }
  - { name: b, from: client, to: 'nosuch:80', expect: { dns: { rcode: REFUSED } } }
  - { name: c, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NXDOMAIN } } }
  - { name: d, from: client, to: 'a.b.c.d.e.f:80', expect: { dns: { rcode: REFUSED } } }
  - { name: e, from: client, to: 'default.svc.cluster.local.:80', expect: { dns: { rcode: NOERROR } } }
",
        ));
    let asked = |i: usize| plan.flows[i].resolution.as_ref().unwrap().asked.clone();
    assert_eq!(
        asked(0),
        [
            "web.other.default.svc.cluster.local.",
            "web.other.svc.cluster.local."
        ]
    );
    assert_eq!(
        asked(1),
        [
            "nosuch.default.svc.cluster.local.",
            "nosuch.svc.cluster.local.",
            "nosuch.cluster.local.",
            "nosuch."
        ]
    );
    // NXDOMAIN throughout, the name itself last.
    assert_eq!(asked(2).len(), 4);
    assert_eq!(plan.flows[2].resolution.as_ref().unwrap().rcode, "NXDOMAIN");
    // Five dots or more: the name as is first; it is outside the zone, and REFUSED ends
    // the search.
    assert_eq!(asked(3), ["a.b.c.d.e.f."]);
    // A namespace exists without addresses: NOERROR, NODATA.
    let nodata = plan.flows[4].resolution.as_ref().unwrap();
    assert_eq!((nodata.rcode.as_str(), nodata.addrs.len()), ("NOERROR", 0));
}

#[test]
fn a_name_of_a_service_is_a_flow_to_its_service_port() {
    let plan = plan(FILE, &with_flows(
            "  - { name: f, from: client, to: 'web:80', attempts: 2, expect: { reach: web-1, seenSource: client, dns: [svc/web] } }
  - { name: g, from: client, to: 'kube-dns.kube-system:53', protocol: udp, expect: { fail: timeout } }
  - { name: h, from: client, to: 'db:5432', expect: { reach: [db-0, db-1], dns: [svc/db] } }
  - { name: i, from: client, to: 'db-0.db:5432', expect: { reach: db-0, dns: [db-0] } }
",
        ));
    let f = &plan.flows[0];
    assert_eq!(
        f.target,
        Target::Tcp(SocketAddrV4::new(ip("10.96.0.2"), 80))
    );
    let service = f.service.as_ref().unwrap();
    assert_eq!(
        (service.namespace.as_str(), service.name.as_str()),
        ("default", "web")
    );
    assert_eq!(service.via, ServiceVia::ClusterIp);
    assert_eq!(f.target_label, "web:80");
    assert_eq!(
        f.expect_dns,
        Some(DnsExpect {
            rcode: "NOERROR".into(),
            answers: vec![DnsAnswer {
                label: "svc/web".into(),
                addrs: vec![ip("10.96.0.2")],
            }],
        })
    );
    assert!(f.each_reach_pod_answers());
    let g = &plan.flows[1];
    assert_eq!(
        g.target,
        Target::Udp(SocketAddrV4::new(ip("10.96.0.10"), 53))
    );
    assert_eq!(g.service.as_ref().unwrap().port, 0, "the dns port, UDP");
    let h = &plan.flows[2];
    assert_eq!(h.target.ip(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(h.service, None);
    assert_eq!(
        h.expect_dns.as_ref().unwrap().addrs(),
        [ip("10.244.1.3"), ip("10.244.2.3")]
    );
    assert_eq!(plan.flows[3].target.ip(), ip("10.244.1.3"));
}

#[test]
fn a_flow_that_only_resolves_needs_no_service_port_or_listener() {
    let plan = plan(
        FILE,
        &with_flows(
            "  - { name: f, from: client, to: web, expect: { dns: svc/web } }
  - { name: g, from: client, to: 'web:9999', expect: { dns: svc/web } }
  - { name: h, from: client, to: 'db-0.db:1', expect: { dns: db-0 } }
",
        ),
    );
    assert_eq!(plan.flows[0].target, Target::Icmp(ip("10.96.0.2")));
    assert_eq!(plan.flows[1].service, None);
    assert_eq!(plan.flows[2].target.ip(), ip("10.244.1.3"));
    assert!(plan.flows.iter().all(|f| !f.sends_traffic()));
}

// --- exec ------------------------------------------------------------------------------

#[test]
fn exec_flows_run_a_command_with_their_expectations() {
    let plan = plan(
        FILE,
        &with_flows(
            "  - name: dig
    from: client
    exec: [dig, +short, web.default.svc.cluster.local, 53]
    expect: { exit: 0, output: [10.96.0.2], outputMatches: ['^10\\.96\\.', 'x|y'] }
  - { name: plain, from: client, exec: ['true'] }
  - { name: fails, from: external, exec: [sh, -c, exit 3], timeout: 30s, expect: { exit: 3 } }
external: {}
",
        ),
    );
    let dig = &plan.flows[0];
    assert_eq!(
        dig.exec,
        Some(ExecPlan {
            argv: vec![
                "dig".into(),
                "+short".into(),
                "web.default.svc.cluster.local".into(),
                "53".into()
            ],
            exit: 0,
            output: vec!["10.96.0.2".into()],
            output_matches: vec!["^10\\.96\\.".into(), "x|y".into()],
        })
    );
    assert_eq!(dig.timeout, DEFAULT_EXEC_TIMEOUT);
    assert_eq!(dig.target, Target::Icmp(Ipv4Addr::UNSPECIFIED));
    assert_eq!(
        dig.expect,
        Expect::Reach {
            pods: vec![],
            seen_source: None
        }
    );
    assert_eq!(
        dig.target_label,
        "dig +short web.default.svc.cluster.local 53"
    );
    assert!(!dig.sends_traffic());
    assert!(!dig.each_reach_pod_answers());
    assert_eq!((dig.dns_name.clone(), dig.expect_dns.clone()), (None, None));
    let plain = plan.flows[1].exec.as_ref().unwrap();
    assert_eq!((plain.exit, plain.output.len()), (0, 0));
    let fails = &plan.flows[2];
    assert_eq!(fails.from, "external");
    assert_eq!(fails.exec.as_ref().unwrap().exit, 3);
    assert_eq!(fails.timeout, Duration::from_secs(30));
}

#[test]
fn exec_needs_no_dns() {
    let plan = plan(
        FILE,
        "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, exec: [ip, route] }]\n",
    );
    assert_eq!(plan.flows[0].exec.as_ref().unwrap().argv, ["ip", "route"]);
}

// --- rendering -----------------------------------------------------------------------

#[test]
fn the_plan_shows_the_dns_server_resolv_conf_names_and_commands() {
    let plan = plan(FILE, &with_flows(
            "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, dns: [svc/web] } }
  - { name: g, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NXDOMAIN } } }
  - { name: h, from: client, to: 'db:5432', expect: { reach: db-1 } }
  - { name: i, from: client, exec: [dig, +short, db.default.svc.cluster.local], expect: { output: [10.244.1.3] } }
",
        ));
    let text = plan.to_string();
    assert!(
        text.contains("  hosts      10.244.1.3 db-0.db.default.svc.cluster.local db-0\n"),
        "{text}"
    );
    let dns = &text[text.find("\ndns ").unwrap() + 1..text.find("flow f").unwrap()];
    assert_eq!(
            dns,
            "dns coredns (namespace kube-system) on node1 at 10.244.1.4: zone cluster.local, ttl 30, 5 Services, 7 pods
  resolv     namespace default: nameserver 10.96.0.10; search default.svc.cluster.local svc.cluster.local cluster.local; options ndots:5
  resolv     namespace other: nameserver 10.96.0.10; search other.svc.cluster.local svc.cluster.local cluster.local; options ndots:5
"
        );
    let flows = &text[text.find("flow f").unwrap()..];
    assert_eq!(
            flows,
            "flow f (line 15): client -> web:80 (tcp) = tcp 10.96.0.2:80 (Service default/web port 80/TCP), resolved as web.default.svc.cluster.local., timeout 2s
  asks       web.default.svc.cluster.local.
  expect dns NOERROR svc/web (10.96.0.2)
  expect reach web-1
flow g (line 16): client -> nosuch.default.svc.cluster.local:80 (tcp), which resolves to no address, timeout 2s
  asks       nosuch.default.svc.cluster.local.default.svc.cluster.local. nosuch.default.svc.cluster.local.svc.cluster.local. nosuch.default.svc.cluster.local.cluster.local. nosuch.default.svc.cluster.local.
  expect dns NXDOMAIN
flow h (line 17): client -> db:5432 (tcp), resolved as db.default.svc.cluster.local. 10.244.1.3 10.244.2.3, timeout 2s
  asks       db.default.svc.cluster.local.
  expect reach db-1
flow i (line 18): client runs dig +short db.default.svc.cluster.local, timeout 5s
  expect exit 0, line \"10.244.1.3\"
"
        );
}

#[test]
fn the_examples_of_the_case_format_plan() {
    let doc = include_str!("../../../../docs/case-format.md");
    let section = &doc[doc.find("## Cluster DNS").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + section[start..].find("```").unwrap();
    let example = plan(FILE, &section[start..end]);
    assert_eq!(example.flows[0].target.ip(), ip("10.96.0.2"));
    assert_eq!(example.flows[1].target.ip(), ip("10.244.2.3"));
    assert_eq!(
        example.flows[2].expect_dns.as_ref().unwrap().rcode,
        "NXDOMAIN"
    );
    assert_eq!(
        example.flows[3].exec.as_ref().unwrap().output,
        ["10.96.0.2"]
    );

    let exec = &doc[doc.find("## `exec`").unwrap()..];
    let start = exec.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + exec[start..].find("```").unwrap();
    let flow: String = exec[start..end]
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect();
    let with_exec = plan(FILE, &with_flows(&flow));
    let exec = with_exec.flows[0].exec.as_ref().unwrap();
    assert_eq!(exec.output_matches, ["^10\\.96\\."]);
}

// --- errors --------------------------------------------------------------------------

#[rstest]
#[case::no_node("dns: {}\nnodes: [n1]\n", 1, 6, "`dns` has no `node`")]
#[case::unknown_node(
    "dns: { node: n9 }\nnodes: [n1]\n",
    1,
    14,
    "unknown node `n9` (nodes: n1)"
)]
#[case::bad_domain(
    "dns: { node: n1, domain: Cluster.Local }\nnodes: [n1]\n",
    1,
    26,
    "dns domain `Cluster.Local` has a label `Cluster`"
)]
#[case::empty_domain_label(
    "dns: { node: n1, domain: 'a..b' }\nnodes: [n1]\n",
    1,
    26,
    "has a label `` that is empty"
)]
#[case::headless_dns(
    "dns: { node: n1, clusterIP: None }\nnodes: [n1]\n",
    1,
    29,
    "dns clusterIP may not be None"
)]
#[case::dns_ip_syntax(
    "dns: { node: n1, clusterIP: 10.96.0 }\nnodes: [n1]\n",
    1,
    29,
    "clusterIP `10.96.0` is not an IPv4 address"
)]
#[case::dns_ip_outside(
    "dns: { node: n1, clusterIP: 10.0.0.10 }\nnodes: [n1]\n",
    1,
    29,
    "clusterIP 10.0.0.10 is outside serviceCIDR 10.96.0.0/12"
)]
#[case::dns_ip_taken(
    "dns: { node: n1 }\nnodes: [n1]\nservices: [{ name: s, clusterIP: 10.96.0.10, selector: { a: b }, ports: [{ port: 1 }] }]\n",
    1,
    6,
    "duplicate clusterIP 10.96.0.10: Service default/s has it too"
)]
#[case::no_tenth_address(
    "cluster: { serviceCIDR: 10.96.0.0/29 }\ndns: { node: n1 }\nnodes: [n1]\n",
    2,
    6,
    "serviceCIDR 10.96.0.0/29 has no 10th address"
)]
#[case::proxy_none(
    "cluster: { proxy: none }\ndns: { node: n1 }\nnodes: [n1]\n",
    1,
    19,
    "the cluster DNS is reached through the kube-dns Service, which needs a service proxy"
)]
#[case::pod_named_coredns(
    "dns: { node: n1 }\nnodes: [n1]\npods: [{ name: coredns, node: n1 }]\n",
    3,
    16,
    "pod name `coredns` is reserved for the cluster DNS pod"
)]
#[case::node_named_coredns(
    "dns: { node: n1 }\nnodes: [n1, coredns]\n",
    2,
    13,
    "node name `coredns` is the cluster DNS pod's"
)]
#[case::kube_dns_service(
    "dns: { node: n1 }\nnodes: [n1]\nservices: [{ name: kube-dns, namespace: kube-system, clusterIP: None }]\n",
    3,
    20,
    "Service kube-system/kube-dns is reserved for the cluster DNS"
)]
#[case::hostname(
    "nodes: [n1]\npods: [{ name: a, node: n1, hostname: A_1 }]\n",
    2,
    39,
    "hostname `A_1` is not a DNS-1123 label"
)]
#[case::subdomain(
    "nodes: [n1]\npods: [{ name: a, node: n1, subdomain: -x }]\n",
    2,
    40,
    "subdomain `-x` is not a DNS-1123 label"
)]
#[case::name_without_dns(
    "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, to: 'web.default:80', expect: { fail: timeout } }]\n",
    3,
    33,
    "names are resolved by the cluster DNS, which this case does not declare (add dns: { node: ... })"
)]
#[case::bare_name_without_dns(
    "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, to: 'web:80', expect: { fail: timeout } }]\n",
    3,
    33,
    "unknown pod `web` in `to` (pods: a; nodes: n1): it is not a pod; names are resolved by the cluster DNS"
)]
fn dns_errors_are_located(
    #[case] yaml: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    assert_one_saying(&diagnostics(FILE, yaml), line, column, message);
}

#[rstest]
#[case::from_external(
    "  - { name: f, from: external, to: 'web:80', expect: { fail: timeout } }\nexternal: {}\n",
    "names are resolved by a pod's resolver"
)]
#[case::bad_name(
    "  - { name: f, from: client, to: 'we b.x:80', expect: { fail: timeout } }\n",
    "as a DNS name it is not a DNS name"
)]
#[case::empty_label(
    "  - { name: f, from: client, to: 'web..x:80', expect: { fail: timeout } }\n",
    "has an empty label"
)]
#[case::dns_on_a_pod_flow(
    "  - { name: f, from: client, to: 'web-1:8080', expect: { reach: web-1, dns: [web-1] } }\n",
    "`dns` is for flows whose `to` is a DNS name"
)]
#[case::unknown_rcode(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: { rcode: NOTFOUND } } }\n",
    "unknown rcode `NOTFOUND`: expected NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED"
)]
#[case::answers_with_nxdomain(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: { rcode: NXDOMAIN, answers: [svc/web] } } }\n",
    "`answers` go with rcode NOERROR"
)]
#[case::unknown_service_answer(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/nope] } }\n",
    "unknown Service `default/nope` in `dns`"
)]
#[case::unknown_pod_answer(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [nope] } }\n",
    "unknown pod `nope` in `dns`"
)]
#[case::twice(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web, svc/web] } }\n",
    "`svc/web` is named twice in `dns`"
)]
#[case::wrong_answer(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/other/web] } }\n",
    "`dns` expects NOERROR svc/other/web (10.96.0.3), but the cluster DNS answers `web` with web.default.svc.cluster.local. 10.96.0.2"
)]
#[case::wrong_rcode(
    "  - { name: f, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NOERROR } } }\n",
    "but the cluster DNS answers `nosuch.default.svc.cluster.local` with NXDOMAIN"
)]
#[case::reach_nowhere(
    "  - { name: f, from: client, to: 'nosuch:80', expect: { reach: web-1 } }\n",
    "`nosuch` resolves to no address (REFUSED, asked nosuch.default.svc.cluster.local."
)]
#[case::fail_nowhere(
    "  - { name: f, from: client, to: 'nosuch:80', expect: { fail: timeout, dns: { rcode: REFUSED } } }\n",
    "so there is nothing to send to: drop `fail`"
)]
#[case::reach_not_behind_the_name(
    "  - { name: f, from: client, to: 'db:5432', expect: { reach: [db-0, web-1] } }\n",
    "`reach` names web-1, but `db` resolves to 10.244.1.3 (db-0), 10.244.2.3 (db-1): only those can answer"
)]
#[case::not_an_endpoint(
    "  - { name: f, from: client, to: 'web:80', expect: { reach: o } }\n",
    "`reach` names o, which is not an endpoint of Service default/web port 80/TCP"
)]
#[case::not_listening(
    "  - { name: f, from: client, to: 'db:5433', expect: { reach: db-0 } }\n",
    "db-0 does not listen on 5433/tcp"
)]
#[case::a_service_name_needs_a_port(
    "  - { name: f, from: client, to: web, expect: { fail: timeout } }\n",
    "a flow to a Service needs a port: write web:PORT"
)]
#[case::reach_coredns(
    "  - { name: f, from: client, to: 'kube-dns.kube-system:53', protocol: udp, expect: { reach: coredns } }\n",
    "`reach` names coredns, the cluster DNS pod"
)]
#[case::dns_only_with_seen_source(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web], seenSource: client } }\n",
    "`seenSource` goes with `reach`: with `dns` alone"
)]
#[case::exit_on_a_to_flow(
    "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, exit: 0 } }\n",
    "`exit` is for flows that run a command (`exec`)"
)]
#[case::exec_and_to(
    "  - { name: f, from: client, to: 'web:80', exec: [true] }\n",
    "a flow has `to` or `exec`, not both"
)]
#[case::exec_protocol(
    "  - { name: f, from: client, protocol: udp, exec: [true] }\n",
    "`protocol` is for flows with `to`"
)]
#[case::exec_attempts(
    "  - { name: f, from: client, attempts: 2, exec: [true] }\n",
    "`attempts` is for flows with `to`"
)]
#[case::exec_empty("  - { name: f, from: client, exec: [] }\n", "`exec` is empty")]
#[case::exec_empty_command(
    "  - { name: f, from: client, exec: ['', x] }\n",
    "the command of `exec` is empty"
)]
#[case::exec_reach(
    "  - { name: f, from: client, exec: [true], expect: { reach: web-1 } }\n",
    "`reach` is for flows with `to`: an exec flow expects `exit`, `output` and `outputMatches`"
)]
#[case::exec_dns(
    "  - { name: f, from: client, exec: [true], expect: { dns: [svc/web] } }\n",
    "`dns` is for flows with `to`"
)]
#[case::exit_range(
    "  - { name: f, from: client, exec: [true], expect: { exit: 256 } }\n",
    "exit 256 is out of range 0..=255"
)]
#[case::exit_not_a_number(
    "  - { name: f, from: client, exec: [true], expect: { exit: -1 } }\n",
    "exit `-1` is not a whole number"
)]
#[case::bad_regex(
    "  - { name: f, from: client, exec: [true], expect: { outputMatches: ['a(b'] } }\n",
    "outputMatches `a(b` is not a regular expression: unclosed group"
)]
#[case::exec_timeout(
    "  - { name: f, from: client, exec: [true], timeout: 61s }\n",
    "timeout `61s` is longer than the maximum, 60s"
)]
#[case::exec_from_unknown(
    "  - { name: f, from: nobody, exec: [true] }\n",
    "unknown pod `nobody` in `from`"
)]
fn flow_dns_and_exec_errors(#[case] flows: &str, #[case] message: &str) {
    let found = diagnostics(FILE, &with_flows(flows));
    let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    assert_eq!(found.len(), 1, "{all:#?}");
    assert!(found[0].message.contains(message), "{all:#?}");
    assert!(found[0].location.is_some_and(|l| l.line >= 15), "{all:#?}");
}

/// Where the errors of flows point: at the value that is wrong.
#[rstest]
#[case::name(
    "  - { name: f, from: client, to: 'nosuch:80', expect: { reach: web-1 } }\n",
    15,
    64
)]
#[case::dns(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/db] } }\n",
    15,
    59
)]
#[case::regex(
    "  - { name: f, from: client, exec: [x], expect: { outputMatches: [ok, '['] } }\n",
    15,
    71
)]
#[case::exec_value("  - { name: f, from: client, exec: [] }\n", 15, 36)]
#[case::answer(
    "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web, nope] } }\n",
    15,
    69
)]
fn flow_errors_point_at_the_value(#[case] flows: &str, #[case] line: u64, #[case] column: u64) {
    assert_one_at(&diagnostics(FILE, &with_flows(flows)), line, column);
}

/// Deterministic mutations of a valid DNS case never panic, and whatever they break is
/// reported with a location.
#[test]
fn mutated_dns_cases_never_panic() {
    let valid = with_flows(
            "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, dns: [svc/web] } }
  - { name: g, from: client, to: 'nosuch.x:80', expect: { dns: { rcode: REFUSED, answers: [] } } }
  - { name: h, from: client, exec: [dig, +short, db], timeout: 3s, expect: { exit: 0, output: [a], outputMatches: ['^1'] } }
",
        );
    plan(FILE, &valid);
    let pieces = [
        ":",
        "{",
        "}",
        "[",
        "]",
        ",",
        "'",
        ".",
        "\n",
        " ",
        "0",
        "svc/",
        "dns",
        "None",
        "(",
        "coredns",
        "kube-dns",
        "kube-system",
    ];
    assert_edits_stay_located(&valid, &pieces, 0xd115, 1500);
}
