//! Pure tests of the kube-proxy iptables renderer: names, probabilities, the rules of every
//! Service shape, and the structure of the restore input.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rstest::rstest;

use super::*;
use crate::proxy::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};
use crate::topology::Proto;

const NODE: &str = "node1";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn table(services: Vec<ServicePort>) -> ServiceTable {
    ServiceTable {
        node_name: NODE.into(),
        node_ips: vec![ip("172.18.0.2")],
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        services,
    }
}

fn svc(ns: &str, name: &str, port_name: &str, proto: Proto, cip: &str, port: u16) -> ServicePort {
    ServicePort {
        namespace: ns.into(),
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

/// A ready endpoint on `node`.
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

fn not_ready(mut e: Endpoint) -> Endpoint {
    e.ready = false;
    e.serving = false;
    e
}

fn terminating(mut e: Endpoint) -> Endpoint {
    e.ready = false;
    e.serving = true;
    e.terminating = true;
    e
}

/// A restore input parsed the way the architecture's snapshots normalise `iptables-save`:
/// per table, the declared chains and each chain's rules in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    declared: BTreeMap<String, BTreeSet<String>>,
    rules: BTreeMap<(String, String), Vec<String>>,
    /// Every `-A`/`-I` line, with its table, in input order.
    lines: Vec<(String, String)>,
}

fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut table = String::new();
    let mut committed = true;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            assert!(committed, "table {t} starts before COMMIT");
            table = t.to_string();
            committed = false;
            p.declared.entry(table.clone()).or_default();
        } else if line == "COMMIT" {
            committed = true;
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap();
            assert_eq!(decl, format!("{name} - [0:0]"), "declaration {line}");
            assert!(
                p.declared.get_mut(&table).unwrap().insert(name.into()),
                "{name} declared twice in {table}"
            );
        } else if line.starts_with("-A ") || line.starts_with("-I ") {
            let chain = line.split_whitespace().nth(1).unwrap().to_string();
            p.rules
                .entry((table.clone(), chain))
                .or_default()
                .push(line.to_string());
            p.lines.push((table.clone(), line.to_string()));
        } else {
            panic!("unexpected line {line:?}");
        }
    }
    assert!(committed, "input ends before COMMIT");
    p
}

impl Parsed {
    fn chain(&self, table: &str, chain: &str) -> Vec<String> {
        self.rules
            .get(&(table.to_string(), chain.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn has_chain(&self, table: &str, chain: &str) -> bool {
        self.declared[table].contains(chain)
    }
}

fn nat(out: &str, chain: &str) -> Vec<String> {
    parse(out).chain("nat", chain)
}

fn filter(out: &str, chain: &str) -> Vec<String> {
    parse(out).chain("filter", chain)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Names and probabilities.

#[rstest]
// The vectors of kube-proxy's own TestOverallIPTablesRules.
#[case("ns1/svc1:p80", "tcp", "XPGD46QRK7WJZT7O")]
#[case("ns2/svc2:p80", "tcp", "GNZBNJ2PO5MGZ6GT")]
#[case("ns3/svc3:p80", "tcp", "X27LE4BHSL4DOUIK")]
#[case("ns4/svc4:p80", "tcp", "4SW47YFZTEDKD3PK")]
#[case("ns5/svc5:p80", "tcp", "NUKIZ6OKUXPJNT4C")]
// Well-known chains of every cluster (named ports) and of an unnamed port.
#[case("default/kubernetes:https", "tcp", "NPX46M4PTMTKRN6Y")]
#[case("kube-system/kube-dns:dns", "udp", "TCOU7JCQXEZGVUNU")]
#[case("default/test-svc", "tcp", "QKNQQNIN727HO3XU")]
fn port_proto_hash_matches_kube_proxy(#[case] spn: &str, #[case] proto: &str, #[case] hash: &str) {
    assert_eq!(port_proto_hash(spn, proto), hash);
}

#[test]
fn chain_names_of_the_issue_vector() {
    let mut sp = svc("ns1", "svc1", "p80", Proto::Tcp, "172.30.0.41", 80);
    let e = ep("10.180.0.1", 80, "node2");
    sp.endpoints.push(e.clone());
    assert_eq!(svc_chain(&sp), "KUBE-SVC-XPGD46QRK7WJZT7O");
    assert_eq!(sep_chain(&sp, &e), "KUBE-SEP-SXIVWICOYRO3J4NJ");
    assert_eq!(svl_chain(&sp), "KUBE-SVL-XPGD46QRK7WJZT7O");
    assert_eq!(ext_chain(&sp), "KUBE-EXT-XPGD46QRK7WJZT7O");
    assert_eq!(fw_chain(&sp), "KUBE-FW-XPGD46QRK7WJZT7O");
}

#[rstest]
#[case(
    "ns1",
    "svc1",
    "p80",
    Proto::Tcp,
    "10.180.0.1",
    80,
    "KUBE-SEP-SXIVWICOYRO3J4NJ"
)]
#[case(
    "ns2",
    "svc2",
    "p80",
    Proto::Tcp,
    "10.180.0.2",
    80,
    "KUBE-SEP-RS4RBKLTHTF2IUXJ"
)]
#[case(
    "ns3",
    "svc3",
    "p80",
    Proto::Tcp,
    "10.180.0.3",
    80,
    "KUBE-SEP-OYPFS5VJICHGATKP"
)]
#[case(
    "ns4",
    "svc4",
    "p80",
    Proto::Tcp,
    "10.180.0.4",
    80,
    "KUBE-SEP-UKSFD7AGPMPPLUHC"
)]
#[case(
    "ns4",
    "svc4",
    "p80",
    Proto::Tcp,
    "10.180.0.5",
    80,
    "KUBE-SEP-C6EBXVWJJZMIWKLZ"
)]
#[case(
    "ns5",
    "svc5",
    "p80",
    Proto::Tcp,
    "10.180.0.3",
    80,
    "KUBE-SEP-I77PXRDZVX7PMWMN"
)]
// An unnamed port: `default/test-svc`, no colon.
#[case(
    "default",
    "test-svc",
    "",
    Proto::Tcp,
    "10.244.1.3",
    80,
    "KUBE-SEP-SQEBHSRBMT4ZUBXZ"
)]
#[case(
    "default",
    "test-svc",
    "",
    Proto::Tcp,
    "10.244.2.3",
    80,
    "KUBE-SEP-SUSDB4Q4CAFDFR7F"
)]
fn endpoint_chain_names(
    #[case] ns: &str,
    #[case] name: &str,
    #[case] port_name: &str,
    #[case] proto: Proto,
    #[case] addr: &str,
    #[case] port: u16,
    #[case] chain: &str,
) {
    let sp = svc(ns, name, port_name, proto, "10.96.0.1", 80);
    assert_eq!(sep_chain(&sp, &ep(addr, port, "n")), chain);
}

#[test]
fn unnamed_port_has_no_colon() {
    let sp = svc("default", "test-svc", "", Proto::Tcp, "10.96.115.88", 80);
    assert_eq!(sp.port_name_string(), "default/test-svc");
    assert_eq!(svc_chain(&sp), "KUBE-SVC-QKNQQNIN727HO3XU");
    let named = svc(
        "default",
        "test-svc",
        "http",
        Proto::Tcp,
        "10.96.115.88",
        80,
    );
    assert_eq!(named.port_name_string(), "default/test-svc:http");
}

#[rstest]
#[case(1, "1.0000000000")]
#[case(2, "0.5000000000")]
#[case(3, "0.3333333333")]
#[case(4, "0.2500000000")]
#[case(5, "0.2000000000")]
#[case(6, "0.1666666667")]
#[case(7, "0.1428571429")]
// Exactly halfway at the eleventh decimal: Go's %0.10f and Rust both round half to even.
#[case(2048, "0.0004882812")]
fn probabilities(#[case] n: usize, #[case] p: &str) {
    assert_eq!(probability(n), p);
}

#[rstest]
#[case(1, &[])]
#[case(2, &["0.5000000000"])]
#[case(3, &["0.3333333333", "0.5000000000"])]
#[case(4, &["0.2500000000", "0.3333333333", "0.5000000000"])]
#[case(5, &["0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000"])]
fn endpoint_rules_take_one_over_remaining(#[case] n: usize, #[case] expected: &[&str]) {
    let mut sp = svc("ns", "web", "", Proto::Tcp, "10.96.0.50", 80);
    for i in 0..n {
        sp.endpoints
            .push(ep(&format!("10.244.2.{}", i + 1), 8080, "node2"));
    }
    let rules = nat(&render(&table(vec![sp.clone()])), &svc_chain(&sp));
    // The masquerade rule, then one rule per endpoint.
    assert_eq!(rules.len(), n + 1);
    let probabilities: Vec<&str> = rules
        .iter()
        .filter_map(|r| r.split("--probability ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(probabilities, expected);
    assert!(!rules.last().unwrap().contains("statistic"));
}

#[test]
fn masquerade_mark_of_the_bit() {
    assert_eq!(masquerade_mark(14), "0x4000");
    assert_eq!(masquerade_mark(0), "0x1");
}

// ---------------------------------------------------------------------------------------------
// Service shapes.

#[test]
fn cluster_ip_one_endpoint() {
    let mut sp = svc("ns1", "svc1", "p80", Proto::Tcp, "172.30.0.41", 80);
    sp.endpoints.push(ep("10.180.0.1", 80, "node2"));
    let out = render(&table(vec![sp]));
    let p = parse(&out);
    assert_eq!(
        p.chain("nat", "KUBE-SERVICES"),
        lines(
            r#"-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"#
        )
    );
    assert_eq!(
        p.chain("nat", "KUBE-SVC-XPGD46QRK7WJZT7O"),
        lines(
            r#"-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ"#
        )
    );
    assert_eq!(
        p.chain("nat", "KUBE-SEP-SXIVWICOYRO3J4NJ"),
        lines(
            r#"-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80"#
        )
    );
    // No NodePort: nothing external.
    assert!(p.chain("nat", "KUBE-NODEPORTS").is_empty());
    assert!(!p.has_chain("nat", "KUBE-EXT-XPGD46QRK7WJZT7O"));
    assert!(p.chain("filter", "KUBE-SERVICES").is_empty());
    assert!(p.chain("filter", "KUBE-EXTERNAL-SERVICES").is_empty());
}

#[test]
fn cluster_ip_three_endpoints_sorted_like_kube_proxy() {
    let mut sp = svc("default", "myapp", "", Proto::Tcp, "10.96.1.20", 80);
    // Given out of order; kube-proxy sorts by the `ip:port` string (so .10 before .2).
    sp.endpoints = vec![
        ep("10.244.2.6", 8080, "node2"),
        ep("10.244.1.10", 8080, "node1"),
        ep("10.244.3.4", 8080, "node3"),
    ];
    let out = render(&table(vec![sp.clone()]));
    let chain = svc_chain(&sp);
    let sep = |a: &str| sep_chain(&sp, &ep(a, 8080, ""));
    assert_eq!(
        nat(&out, &chain),
        vec![
            format!(
                "-A {chain} -m comment --comment \"default/myapp cluster IP\" -m tcp -p tcp -d 10.96.1.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"
            ),
            format!(
                "-A {chain} -m comment --comment \"default/myapp -> 10.244.1.10:8080\" -m statistic --mode random --probability 0.3333333333 -j {}",
                sep("10.244.1.10")
            ),
            format!(
                "-A {chain} -m comment --comment \"default/myapp -> 10.244.2.6:8080\" -m statistic --mode random --probability 0.5000000000 -j {}",
                sep("10.244.2.6")
            ),
            format!(
                "-A {chain} -m comment --comment \"default/myapp -> 10.244.3.4:8080\" -j {}",
                sep("10.244.3.4")
            ),
        ]
    );
    for a in ["10.244.1.10", "10.244.2.6", "10.244.3.4"] {
        assert_eq!(
            nat(&out, &sep(a)),
            vec![
                format!(
                    "-A {} -m comment --comment default/myapp -s {a} -j KUBE-MARK-MASQ",
                    sep(a)
                ),
                format!(
                    "-A {} -m comment --comment default/myapp -m tcp -p tcp -j DNAT --to-destination {a}:8080",
                    sep(a)
                ),
            ]
        );
    }
}

#[test]
fn no_endpoints_rejects_in_filter_and_writes_no_nat_chains() {
    let mut sp = svc("ns6", "svc6", "p80", Proto::Tcp, "172.30.0.46", 80);
    sp.node_port = Some(30046);
    // Not ready and not terminating: not usable.
    sp.endpoints.push(not_ready(ep("10.180.0.6", 80, NODE)));
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    assert_eq!(
        p.chain("filter", "KUBE-SERVICES"),
        lines(
            r#"-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT"#
        )
    );
    assert_eq!(
        p.chain("filter", "KUBE-EXTERNAL-SERVICES"),
        lines(
            r#"-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30046 -j REJECT"#
        )
    );
    let hash = sp_hash(&sp);
    assert!(
        !out.contains(&hash),
        "no chain of the Service in nat:\n{out}"
    );
    assert!(p.chain("nat", "KUBE-NODEPORTS").is_empty());
    assert_eq!(
        p.chain("nat", "KUBE-SERVICES").len(),
        1,
        "only the NodePorts jump"
    );
}

#[test]
fn node_port_cluster_policy() {
    let mut sp = svc("ns3", "svc3", "p80", Proto::Tcp, "172.30.0.43", 80);
    sp.node_port = Some(3003);
    sp.endpoints.push(ep("10.180.0.3", 80, "node2"));
    let out = render(&table(vec![sp]));
    let p = parse(&out);
    assert_eq!(
        p.chain("nat", "KUBE-NODEPORTS"),
        lines(
            "-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK"
        )
    );
    assert_eq!(
        p.chain("nat", "KUBE-EXT-X27LE4BHSL4DOUIK"),
        lines(
            r#"-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK"#
        )
    );
    assert_eq!(
        p.chain("nat", "KUBE-SVC-X27LE4BHSL4DOUIK"),
        lines(
            r#"-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP"#
        )
    );
    assert!(p.chain("filter", "KUBE-EXTERNAL-SERVICES").is_empty());
    // KUBE-NODEPORTS is reached by the last KUBE-SERVICES rule.
    assert!(
        p.chain("nat", "KUBE-SERVICES")
            .last()
            .unwrap()
            .ends_with("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    );
}

#[test]
fn external_traffic_policy_local_with_a_local_endpoint() {
    let mut sp = svc("ns2", "svc2", "p80", Proto::Tcp, "172.30.0.42", 80);
    sp.node_port = Some(3001);
    sp.external_traffic_policy = TrafficPolicy::Local;
    sp.endpoints = vec![ep("10.244.1.5", 80, NODE), ep("10.244.2.5", 80, "node2")];
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    let (svc, svl, ext) = (svc_chain(&sp), svl_chain(&sp), ext_chain(&sp));
    assert_eq!(svc, "KUBE-SVC-GNZBNJ2PO5MGZ6GT");
    assert_eq!(
        p.chain("nat", &ext),
        lines(&format!(
            r#"-A {ext} -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.244.0.0/16 -j {svc}
-A {ext} -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A {ext} -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j {svc}
-A {ext} -j {svl}"#
        ))
    );
    let local = sep_chain(&sp, &sp.endpoints[0]);
    let remote = sep_chain(&sp, &sp.endpoints[1]);
    // KUBE-SVL has only the local endpoint, and no masquerade rule.
    assert_eq!(
        p.chain("nat", &svl),
        lines(&format!(
            r#"-A {svl} -m comment --comment "ns2/svc2:p80 -> 10.244.1.5:80" -j {local}"#
        ))
    );
    // The ClusterIP still uses every endpoint.
    assert_eq!(p.chain("nat", &svc).len(), 3);
    assert!(p.has_chain("nat", &local) && p.has_chain("nat", &remote));
    assert!(p.chain("filter", "KUBE-EXTERNAL-SERVICES").is_empty());
}

#[test]
fn external_traffic_policy_local_without_local_endpoints() {
    let mut sp = svc("ns2", "svc2", "p80", Proto::Tcp, "172.30.0.42", 80);
    sp.node_port = Some(3001);
    sp.external_traffic_policy = TrafficPolicy::Local;
    sp.endpoints = vec![ep("10.180.0.2", 80, "node2")];
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    let ext = ext_chain(&sp);
    let rules = p.chain("nat", &ext);
    assert_eq!(rules.len(), 3, "short-circuit rules only: {rules:#?}");
    assert!(!p.has_chain("nat", &svl_chain(&sp)));
    assert_eq!(
        p.chain("filter", "KUBE-EXTERNAL-SERVICES"),
        lines(
            r#"-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP"#
        )
    );
    // The NodePort still leads to the EXT chain (for pods and the node itself).
    assert_eq!(p.chain("nat", "KUBE-NODEPORTS").len(), 1);
}

#[test]
fn internal_traffic_policy_local() {
    let mut sp = svc("ns", "itp", "", Proto::Tcp, "10.96.0.77", 80);
    sp.internal_traffic_policy = TrafficPolicy::Local;
    sp.endpoints = vec![ep("10.244.1.7", 80, NODE), ep("10.244.2.7", 80, "node2")];
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    let svl = svl_chain(&sp);
    let local = sep_chain(&sp, &sp.endpoints[0]);
    assert_eq!(
        p.chain("nat", "KUBE-SERVICES")[0],
        format!(
            r#"-A KUBE-SERVICES -m comment --comment "ns/itp cluster IP" -m tcp -p tcp -d 10.96.0.77 --dport 80 -j {svl}"#
        )
    );
    // The masquerade rule goes into the internal traffic chain, which is KUBE-SVL here.
    assert_eq!(
        p.chain("nat", &svl),
        lines(&format!(
            r#"-A {svl} -m comment --comment "ns/itp cluster IP" -m tcp -p tcp -d 10.96.0.77 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A {svl} -m comment --comment "ns/itp -> 10.244.1.7:80" -j {local}"#
        ))
    );
    // No Cluster chain, no chain for the remote endpoint.
    assert!(!p.has_chain("nat", &svc_chain(&sp)));
    assert!(!p.has_chain("nat", &sep_chain(&sp, &sp.endpoints[1])));
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops() {
    let mut sp = svc("ns", "itp", "", Proto::Tcp, "10.96.0.77", 80);
    sp.internal_traffic_policy = TrafficPolicy::Local;
    sp.endpoints = vec![ep("10.244.2.7", 80, "node2")];
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    assert_eq!(
        p.chain("filter", "KUBE-SERVICES"),
        lines(
            r#"-A KUBE-SERVICES -m comment --comment "ns/itp has no local endpoints" -m tcp -p tcp -d 10.96.0.77 --dport 80 -j DROP"#
        )
    );
    assert!(!out.contains(&sp_hash(&sp)));
}

#[test]
fn session_affinity_client_ip() {
    let mut sp = svc("ns5", "svc5", "p80", Proto::Tcp, "172.30.0.45", 80);
    sp.affinity_timeout = Some(10800);
    sp.endpoints = vec![ep("10.180.0.3", 80, "node2"), ep("10.180.0.4", 80, "node3")];
    let out = render(&table(vec![sp.clone()]));
    let svc = svc_chain(&sp);
    let (a, b) = (
        sep_chain(&sp, &sp.endpoints[0]),
        sep_chain(&sp, &sp.endpoints[1]),
    );
    assert_eq!(a, "KUBE-SEP-I77PXRDZVX7PMWMN");
    assert_eq!(
        nat(&out, &svc)[1..],
        lines(&format!(
            r#"-A {svc} -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name {a} --rcheck --seconds 10800 --reap -j {a}
-A {svc} -m comment --comment "ns5/svc5:p80 -> 10.180.0.4:80" -m recent --name {b} --rcheck --seconds 10800 --reap -j {b}
-A {svc} -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m statistic --mode random --probability 0.5000000000 -j {a}
-A {svc} -m comment --comment "ns5/svc5:p80 -> 10.180.0.4:80" -j {b}"#
        ))[..]
    );
    assert_eq!(
        nat(&out, &a),
        lines(&format!(
            r#"-A {a} -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A {a} -m comment --comment ns5/svc5:p80 -m recent --name {a} --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80"#
        ))
    );
}

#[test]
fn udp_service() {
    let mut sp = svc(
        "kube-system",
        "kube-dns",
        "dns",
        Proto::Udp,
        "10.96.0.10",
        53,
    );
    sp.endpoints = vec![ep("10.244.1.2", 53, NODE)];
    let out = render(&table(vec![sp.clone()]));
    let svc = svc_chain(&sp);
    assert_eq!(svc, "KUBE-SVC-TCOU7JCQXEZGVUNU");
    let sep = sep_chain(&sp, &sp.endpoints[0]);
    assert_eq!(
        nat(&out, "KUBE-SERVICES")[0],
        format!(
            r#"-A KUBE-SERVICES -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 --dport 53 -j {svc}"#
        )
    );
    assert_eq!(
        nat(&out, &sep)[1],
        format!(
            "-A {sep} -m comment --comment kube-system/kube-dns:dns -m udp -p udp -j DNAT --to-destination 10.244.1.2:53"
        )
    );
}

#[test]
fn multi_port_service_gets_a_chain_per_port() {
    let mut dns = svc(
        "kube-system",
        "kube-dns",
        "dns",
        Proto::Udp,
        "10.96.0.10",
        53,
    );
    let mut dns_tcp = svc(
        "kube-system",
        "kube-dns",
        "dns-tcp",
        Proto::Tcp,
        "10.96.0.10",
        53,
    );
    dns.endpoints = vec![ep("10.244.1.2", 53, NODE)];
    dns_tcp.endpoints = vec![ep("10.244.1.2", 53, NODE)];
    let out = render(&table(vec![dns.clone(), dns_tcp.clone()]));
    let p = parse(&out);
    assert_ne!(svc_chain(&dns), svc_chain(&dns_tcp));
    assert_ne!(
        sep_chain(&dns, &dns.endpoints[0]),
        sep_chain(&dns_tcp, &dns_tcp.endpoints[0])
    );
    let services = p.chain("nat", "KUBE-SERVICES");
    assert_eq!(services.len(), 3);
    assert!(services[0].contains("\"kube-system/kube-dns:dns cluster IP\" -m udp -p udp"));
    assert!(services[1].contains("\"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp -p tcp"));
    for sp in [&dns, &dns_tcp] {
        assert!(p.has_chain("nat", &svc_chain(sp)));
        assert!(p.has_chain("nat", &sep_chain(sp, &sp.endpoints[0])));
    }
}

#[test]
fn headless_services_get_no_rules() {
    let mut sp = svc("ns", "headless", "", Proto::Tcp, "10.96.0.1", 80);
    sp.cluster_ip = None;
    sp.endpoints = vec![ep("10.244.1.9", 80, NODE)];
    let out = render(&table(vec![sp.clone()]));
    assert!(!out.contains("headless"), "{out}");
    assert_eq!(out, render(&table(vec![])));
}

#[test]
fn not_ready_endpoints_are_left_out() {
    let mut sp = svc("ns", "web", "", Proto::Tcp, "10.96.0.60", 80);
    sp.endpoints = vec![
        ep("10.244.1.1", 80, NODE),
        not_ready(ep("10.244.1.2", 80, NODE)),
        terminating(ep("10.244.1.3", 80, NODE)),
    ];
    let out = render(&table(vec![sp.clone()]));
    let rules = nat(&out, &svc_chain(&sp));
    assert_eq!(rules.len(), 2, "{rules:#?}");
    assert!(rules[1].ends_with(&sep_chain(&sp, &sp.endpoints[0])));
    assert!(!out.contains(&sep_chain(&sp, &sp.endpoints[1])));
    assert!(!out.contains(&sep_chain(&sp, &sp.endpoints[2])));
}

#[test]
fn serving_terminating_endpoints_are_the_fallback() {
    let mut sp = svc("ns", "web", "", Proto::Tcp, "10.96.0.60", 80);
    sp.endpoints = vec![
        not_ready(ep("10.244.1.2", 80, NODE)),
        terminating(ep("10.244.1.3", 80, NODE)),
        terminating(ep("10.244.2.3", 80, "node2")),
    ];
    let out = render(&table(vec![sp.clone()]));
    let rules = nat(&out, &svc_chain(&sp));
    assert_eq!(rules.len(), 3, "{rules:#?}");
    assert!(rules[1].contains("10.244.1.3:80") && rules[1].contains("0.5000000000"));
    assert!(rules[2].contains("10.244.2.3:80"));
    assert!(!out.contains(&sep_chain(&sp, &sp.endpoints[0])));
    // Terminating but no longer serving: not even a fallback.
    sp.endpoints[1].serving = false;
    sp.endpoints[2].serving = false;
    let out = render(&table(vec![sp.clone()]));
    assert_eq!(filter(&out, "KUBE-SERVICES").len(), 1);
}

#[test]
fn local_policy_falls_back_to_local_terminating_endpoints() {
    // ETP Local: the only local endpoint is terminating, the remote one is ready. KUBE-SVC
    // gets the ready one, KUBE-SVL the terminating one, and both get endpoint chains.
    let mut sp = svc("ns", "lb", "", Proto::Tcp, "10.96.0.61", 80);
    sp.node_port = Some(30061);
    sp.external_traffic_policy = TrafficPolicy::Local;
    sp.endpoints = vec![
        terminating(ep("10.244.1.3", 80, NODE)),
        ep("10.244.2.3", 80, "node2"),
    ];
    let out = render(&table(vec![sp.clone()]));
    let p = parse(&out);
    let (local, remote) = (
        sep_chain(&sp, &sp.endpoints[0]),
        sep_chain(&sp, &sp.endpoints[1]),
    );
    assert!(p.chain("nat", &svl_chain(&sp))[0].ends_with(&local));
    assert!(p.chain("nat", &svc_chain(&sp))[1].ends_with(&remote));
    assert!(p.has_chain("nat", &local) && p.has_chain("nat", &remote));
    assert!(
        p.chain("nat", &ext_chain(&sp))
            .last()
            .unwrap()
            .ends_with(&svl_chain(&sp))
    );
}

#[test]
fn duplicate_endpoints_are_merged_preferring_the_running_one() {
    let mut sp = svc("ns", "web", "", Proto::Tcp, "10.96.0.60", 80);
    sp.endpoints = vec![
        terminating(ep("10.244.1.1", 80, NODE)),
        ep("10.244.1.1", 80, NODE),
        ep("10.244.1.1", 80, NODE),
    ];
    let out = render(&table(vec![sp.clone()]));
    let rules = nat(&out, &svc_chain(&sp));
    assert_eq!(rules.len(), 2, "{rules:#?}");
}

#[test]
fn masquerade_all_and_no_localhost_node_ports() {
    let mut sp = svc("ns1", "svc1", "p80", Proto::Tcp, "172.30.0.41", 80);
    sp.endpoints.push(ep("10.180.0.1", 80, "node2"));
    let opts = Options {
        masquerade_all: true,
        localhost_node_ports: false,
        ..Options::default()
    };
    let out = render_with(&table(vec![sp]), &opts);
    let p = parse(&out);
    assert_eq!(
        p.chain("nat", "KUBE-SVC-XPGD46QRK7WJZT7O")[0],
        r#"-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ"#
    );
    assert!(
        p.chain("nat", "KUBE-SERVICES")
            .last()
            .unwrap()
            .ends_with("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")
    );
    // KUBE-FIREWALL is not filled, but still exists and is jumped to (kube-proxy ensures it).
    assert!(p.chain("filter", KUBE_FIREWALL).is_empty());
    assert!(p.has_chain("filter", KUBE_FIREWALL));
    assert!(!render_sync_with(&table(vec![]), &opts).contains(KUBE_FIREWALL));
}

#[test]
fn large_cluster_mode_drops_endpoint_comments() {
    let mut sp = svc("ns", "big", "", Proto::Tcp, "10.96.0.99", 80);
    for i in 0..1001u32 {
        let addr = Ipv4Addr::from(u32::from(ip("10.244.0.0")) + 2 + i);
        sp.endpoints.push(ep(&addr.to_string(), 80, "node2"));
    }
    let out = render(&table(vec![sp.clone()]));
    let rules = nat(&out, &svc_chain(&sp));
    assert!(rules[0].contains("--comment \"ns/big cluster IP\""));
    assert!(rules[1..].iter().all(|r| !r.contains("--comment")));
    let sep = sep_chain(&sp, &sp.endpoints[0]);
    assert!(nat(&out, &sep).iter().all(|r| !r.contains("--comment")));
    // 1000 is not "more than 1000".
    sp.endpoints.pop();
    let out = render(&table(vec![sp.clone()]));
    assert!(
        nat(&out, &sep)
            .iter()
            .all(|r| r.contains("--comment ns/big"))
    );
}

// ---------------------------------------------------------------------------------------------
// The whole input.

/// kube-proxy's TestOverallIPTablesRules, restricted to the Service shapes the model has (its
/// ns2/svc2 without the externalIP, LoadBalancer and health check, its ns4 and ns5 left out),
/// under the fake iptables that test uses (no --random-fully, nfacct counters present). The
/// expected lines are the ones that test expects, chain by chain.
#[test]
fn matches_kube_proxy_overall_rules_test() {
    let mut ns1 = svc("ns1", "svc1", "p80", Proto::Tcp, "172.30.0.41", 80);
    ns1.endpoints = vec![Endpoint {
        node_name: None,
        ..ep("10.180.0.1", 80, "")
    }];
    let mut ns2 = svc("ns2", "svc2", "p80", Proto::Tcp, "172.30.0.42", 80);
    ns2.node_port = Some(3001);
    ns2.external_traffic_policy = TrafficPolicy::Local;
    ns2.endpoints = vec![Endpoint {
        node_name: None,
        ..ep("10.180.0.2", 80, "")
    }];
    let mut ns3 = svc("ns3", "svc3", "p80", Proto::Tcp, "172.30.0.43", 80);
    ns3.node_port = Some(3003);
    ns3.endpoints = vec![Endpoint {
        node_name: None,
        ..ep("10.180.0.3", 80, "")
    }];
    let ns6 = svc("ns6", "svc6", "p80", Proto::Tcp, "172.30.0.46", 80);
    let mut t = table(vec![ns1, ns2, ns3, ns6]);
    t.node_name = "test-node".into();
    t.cluster_cidr = "10.0.0.0/8".parse().unwrap();
    let opts = Options {
        random_fully: false,
        nfacct: true,
        ..Options::default()
    };
    let expected = r#"*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
"#;
    let got = parse(&render_sync_with(&t, &opts));
    let want = parse(expected);
    assert_eq!(got.declared, want.declared);
    assert_eq!(got.rules, want.rules);
}

/// Every table the renderer is exercised on here.
fn kitchen_sink() -> ServiceTable {
    let mut kubernetes = svc(
        "default",
        "kubernetes",
        "https",
        Proto::Tcp,
        "10.96.0.1",
        443,
    );
    kubernetes.endpoints = vec![ep("172.18.0.2", 6443, NODE)];
    let mut dns = svc(
        "kube-system",
        "kube-dns",
        "dns",
        Proto::Udp,
        "10.96.0.10",
        53,
    );
    dns.endpoints = vec![ep("10.244.1.2", 53, NODE), ep("10.244.2.2", 53, "node2")];
    let mut dns_tcp = svc(
        "kube-system",
        "kube-dns",
        "dns-tcp",
        Proto::Tcp,
        "10.96.0.10",
        53,
    );
    dns_tcp.endpoints = dns.endpoints.clone();
    let mut myapp = svc("default", "myapp", "", Proto::Tcp, "10.96.1.20", 80);
    myapp.endpoints = vec![
        ep("10.244.2.6", 8080, "node2"),
        ep("10.244.1.10", 8080, NODE),
        ep("10.244.3.4", 8080, "node3"),
        not_ready(ep("10.244.3.5", 8080, "node3")),
    ];
    let mut web = svc("default", "web", "http", Proto::Tcp, "10.96.1.30", 80);
    web.node_port = Some(30080);
    web.endpoints = vec![ep("10.244.2.7", 8080, "node2")];
    let mut etp = svc("default", "etp-local", "", Proto::Tcp, "10.96.1.40", 80);
    etp.node_port = Some(30040);
    etp.external_traffic_policy = TrafficPolicy::Local;
    etp.endpoints = vec![
        ep("10.244.1.11", 8080, NODE),
        ep("10.244.2.11", 8080, "node2"),
    ];
    let mut etp_remote = svc("default", "etp-remote", "", Proto::Udp, "10.96.1.41", 5353);
    etp_remote.node_port = Some(30041);
    etp_remote.external_traffic_policy = TrafficPolicy::Local;
    etp_remote.endpoints = vec![ep("10.244.2.12", 5353, "node2")];
    let mut itp = svc("default", "itp-local", "", Proto::Tcp, "10.96.1.50", 80);
    itp.internal_traffic_policy = TrafficPolicy::Local;
    itp.endpoints = vec![
        ep("10.244.1.13", 8080, NODE),
        ep("10.244.2.13", 8080, "node2"),
    ];
    let mut itp_remote = svc("default", "itp-remote", "", Proto::Tcp, "10.96.1.51", 80);
    itp_remote.internal_traffic_policy = TrafficPolicy::Local;
    itp_remote.endpoints = vec![ep("10.244.2.14", 8080, "node2")];
    let mut sticky = svc("default", "sticky", "", Proto::Tcp, "10.96.1.60", 80);
    sticky.affinity_timeout = Some(10800);
    sticky.endpoints = vec![
        ep("10.244.1.15", 8080, NODE),
        ep("10.244.2.15", 8080, "node2"),
    ];
    let mut empty = svc("default", "empty", "", Proto::Tcp, "10.96.1.70", 80);
    empty.node_port = Some(30070);
    let mut headless = svc("default", "headless", "", Proto::Tcp, "10.96.1.80", 80);
    headless.cluster_ip = None;
    headless.endpoints = vec![ep("10.244.1.16", 80, NODE)];
    let mut draining = svc("default", "draining", "", Proto::Tcp, "10.96.1.90", 80);
    draining.endpoints = vec![terminating(ep("10.244.2.17", 80, "node2"))];
    table(vec![
        kubernetes, dns, dns_tcp, myapp, web, etp, etp_remote, itp, itp_remote, sticky, empty,
        headless, draining,
    ])
}

const BUILTIN_CHAINS: &[(&str, &[&str])] = &[
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
];
const BUILTIN_TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "REJECT",
    "RETURN",
    "MARK",
    "MASQUERADE",
    "DNAT",
];

/// Splits a rule into words, keeping a double-quoted comment as one word.
fn words(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rule.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {rule}");
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn assert_jumps_consistent(text: &str) {
    let p = parse(text);
    for (table, rule) in &p.lines {
        let builtin = BUILTIN_CHAINS
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, c)| *c)
            .unwrap_or(&[]);
        let declared = &p.declared[table];
        let w = words(rule);
        let chain = &w[1];
        assert!(
            declared.contains(chain) || builtin.contains(&chain.as_str()),
            "{table}: rule in undeclared chain: {rule}"
        );
        if w[0] == "-I" {
            assert!(
                builtin.contains(&chain.as_str()),
                "inserts only into builtins: {rule}"
            );
        } else {
            assert!(
                declared.contains(chain),
                "appends only to our chains: {rule}"
            );
        }
        let targets: Vec<&String> = w
            .windows(2)
            .filter(|p| p[0] == "-j" || p[0] == "-g")
            .map(|p| &p[1])
            .collect();
        assert_eq!(targets.len(), 1, "one target per rule: {rule}");
        let t = targets[0];
        assert!(
            declared.contains(t) || BUILTIN_TARGETS.contains(&t.as_str()),
            "{table}: jump to undeclared chain {t}: {rule}"
        );
        // `--name` of the recent match names a real endpoint chain.
        for pair in w.windows(2).filter(|p| p[0] == "--name") {
            assert!(
                declared.contains(&pair[1]),
                "recent list of no chain: {rule}"
            );
        }
    }
    // Every declared Service chain is used by some rule.
    for (table, chains) in &p.declared {
        let per_service = |c: &&String| {
            ["KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-"]
                .iter()
                .any(|p| c.starts_with(p))
        };
        for c in chains.iter().filter(per_service) {
            let used = p.lines.iter().any(|(t, r)| {
                t == table && words(r).windows(2).any(|w| w[0] == "-j" && &w[1] == c)
            });
            assert!(used, "{table}: {c} is declared but nothing jumps to it");
        }
    }
}

#[rstest]
#[case::defaults(Options::default())]
#[case::everything_off(Options {
    masquerade_all: true,
    localhost_node_ports: false,
    random_fully: false,
    conntrack_tcp_be_liberal: true,
    ..Options::default()
})]
#[case::nfacct(Options { nfacct: true, ..Options::default() })]
fn every_jump_target_is_declared_or_builtin(#[case] opts: Options) {
    assert_jumps_consistent(&render_with(&kitchen_sink(), &opts));
    assert_jumps_consistent(&render_sync_with(&kitchen_sink(), &opts));
    assert_jumps_consistent(&render_with(&table(vec![]), &opts));
}

#[test]
fn render_is_the_sync_plus_canaries_and_jumps() {
    let t = kitchen_sink();
    let full = parse(&render(&t));
    let sync = parse(&render_sync(&t));
    for (table, chains) in &sync.declared {
        assert!(chains.is_subset(&full.declared[table]));
        assert!(full.declared[table].contains(KUBE_PROXY_CANARY));
    }
    assert!(full.declared["mangle"].contains(KUBE_PROXY_CANARY));
    for (key, rules) in &sync.rules {
        assert_eq!(&full.rules[key], rules, "{key:?}");
    }
    let inserted: Vec<&(String, String)> = full
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("-I "))
        .collect();
    assert_eq!(inserted.len(), JUMPS.len());
    // kube-proxy prepends each jump, so the last one ensured ends up first.
    assert_eq!(
        inserted[0],
        &(
            "filter".to_string(),
            r#"-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES"#
                .to_string()
        )
    );
    assert!(
        full.lines
            .iter()
            .any(|(t, l)| t == "nat"
                && l == r#"-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#)
    );
    assert!(full.lines.iter().any(|(t, l)| t == "nat"
        && l == r#"-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING"#));
}

#[test]
fn postrouting_masquerade_and_forward_rules() {
    let out = render(&table(vec![]));
    assert_eq!(
        nat(&out, KUBE_POSTROUTING),
        lines(
            r#"-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully"#
        )
    );
    assert_eq!(
        nat(&out, KUBE_MARK_MASQ),
        lines("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000")
    );
    assert_eq!(
        filter(&out, KUBE_FORWARD),
        lines(
            r#"-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"#
        )
    );
    let liberal = Options {
        conntrack_tcp_be_liberal: true,
        ..Options::default()
    };
    assert_eq!(
        filter(&render_with(&table(vec![]), &liberal), KUBE_FORWARD).len(),
        2
    );
}

#[test]
fn output_is_deterministic_and_follows_table_order() {
    let t = kitchen_sink();
    assert_eq!(render(&t), render(&t));
    let mut reversed = t.clone();
    reversed.services.reverse();
    let (a, b) = (parse(&render(&t)), parse(&render(&reversed)));
    assert_eq!(a.declared, b.declared);
    // Only KUBE-SERVICES and KUBE-NODEPORTS (and the filter chains) order Services.
    for (key, rules) in &a.rules {
        let other = &b.rules[key];
        if key.1.starts_with("KUBE-SVC-")
            || key.1.starts_with("KUBE-SVL-")
            || key.1.starts_with("KUBE-SEP-")
            || key.1.starts_with("KUBE-EXT-")
        {
            assert_eq!(rules, other, "{key:?}");
        } else {
            let (mut x, mut y) = (rules.clone(), other.clone());
            x.sort();
            y.sort();
            assert_eq!(x, y, "{key:?}");
        }
    }
}

#[test]
fn kitchen_sink_snapshot() {
    insta::assert_snapshot!(render(&kitchen_sink()));
}

#[test]
fn a_resync_deletes_the_service_chains_no_longer_used_and_inserts_no_jumps() {
    let mut web = svc("default", "web", "", Proto::Tcp, "10.96.0.2", 80);
    web.endpoints = vec![ep("10.244.1.2", 8080, "node1")];
    let t = table(vec![web]);
    let active: Vec<String> = declared_chains(&render(&t));
    let mut existing = active.clone();
    existing.extend(
        [
            "KUBE-SVC-GONEGONEGONEGONE",
            "KUBE-SEP-GONEGONEGONEGONE",
            "FLANNEL-POSTRTG",
        ]
        .map(String::from),
    );
    let out = render_resync(&t, &existing);
    let nat = out.split("*nat\n").nth(1).unwrap();
    for gone in ["KUBE-SVC-GONEGONEGONEGONE", "KUBE-SEP-GONEGONEGONEGONE"] {
        assert!(nat.contains(&format!(":{gone} - [0:0]\n")), "{out}");
        assert!(nat.contains(&format!("-X {gone}\n")), "{out}");
        // Declared (flushed) before any rule, deleted after every rule.
        let declared = nat.find(&format!(":{gone} ")).unwrap();
        let deleted = nat.find(&format!("-X {gone}")).unwrap();
        assert!(nat[..declared].lines().all(|l| l.starts_with(':')), "{out}");
        assert!(
            nat[deleted..]
                .lines()
                .all(|l| l.starts_with("-X") || l == "COMMIT"),
            "{out}"
        );
    }
    // Not kube-proxy's, and in use: left alone.
    assert!(!out.contains("FLANNEL-POSTRTG"), "{out}");
    for chain in active
        .iter()
        .filter(|c| c.starts_with("KUBE-SVC-") || c.starts_with("KUBE-SEP-"))
    {
        assert!(!out.contains(&format!("-X {chain}")), "{out}");
    }
    assert!(!out.lines().any(|l| l.starts_with("-I ")), "{out}");
    assert_eq!(render_resync(&t, &active), render_sync(&t));
}
