//! Pure tests of the nftables renderer. Expected lines come from kube-proxy's own test
//! expectations (`pkg/proxy/nftables/proxier_test.go`, `TestOverallNFTablesRules`, and the
//! kube-proxy dumps in knftables' tests), in the setting those tests use: node `test-node`
//! (192.168.0.2), pod CIDR 10.0.0.0/8, service CIDR 172.30.0.0/16.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rstest::rstest;

use super::*;
use crate::proxy::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};
use crate::topology::Proto;

const NODE: &str = "test-node";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn table(services: Vec<ServicePort>) -> ServiceTable {
    ServiceTable {
        node_name: NODE.into(),
        node_ips: vec![ip("192.168.0.2")],
        cluster_cidr: "10.0.0.0/8".parse().unwrap(),
        service_cidr: "172.30.0.0/16".parse().unwrap(),
        services,
    }
}

fn svc(ns: &str, name: &str, port_name: &str, cluster_ip: &str, port: u16) -> ServicePort {
    ServicePort {
        namespace: ns.into(),
        name: name.into(),
        port_name: port_name.into(),
        protocol: Proto::Tcp,
        cluster_ip: Some(ip(cluster_ip)),
        port,
        node_port: None,
        affinity_timeout: None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        endpoints: Vec::new(),
    }
}

fn ep(addr: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        node_name: None,
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn on(node: &str, mut e: Endpoint) -> Endpoint {
    e.node_name = Some(node.into());
    e
}

fn terminating(mut e: Endpoint, serving: bool) -> Endpoint {
    e.ready = false;
    e.serving = serving;
    e.terminating = true;
    e
}

fn with_eps(mut s: ServicePort, eps: Vec<Endpoint>) -> ServicePort {
    s.endpoints = eps;
    s
}

/// The rendered lines that are kube-proxy's (without podpath's comment and reset prefix).
fn body(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# kube-proxy v1.33 nftables mode"));
    assert_eq!(
        lines[1..4],
        [
            r#"add table ip kube-proxy { comment "rules for kube-proxy" ; }"#,
            "delete table ip kube-proxy",
            r#"add table ip kube-proxy { comment "rules for kube-proxy" ; }"#,
        ]
    );
    lines[3..].iter().map(|l| l.to_string()).collect()
}

fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The rules of each chain, in order.
fn rules_by_chain(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("add rule ip kube-proxy ") {
            let (chain, rule) = rest.split_once(' ').unwrap();
            out.entry(chain.into()).or_default().push(rule.into());
        }
    }
    out
}

/// Same lines (as sets, like kube-proxy's own comparison) and same rule order in every chain.
fn assert_same_ruleset(rendered: &str, expected: &str) {
    let got = body(rendered);
    let want = lines_of(expected);
    let got_set: BTreeSet<&String> = got.iter().collect();
    let want_set: BTreeSet<&String> = want.iter().collect();
    let missing: Vec<_> = want_set.difference(&got_set).collect();
    let extra: Vec<_> = got_set.difference(&want_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing:\n{missing:#?}\nunexpected:\n{extra:#?}\nrendered:\n{rendered}"
    );
    assert_eq!(got.len(), want.len(), "duplicate lines in\n{rendered}");
    assert_eq!(rules_by_chain(&got), rules_by_chain(&want));
}

const BASE: &str = r#"
add table ip kube-proxy { comment "rules for kube-proxy" ; }

add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }

add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }

add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }
add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }
add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }
add chain ip kube-proxy filter-output-post-dnat { type filter hook output priority -90 ; }
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check

add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"
add rule ip kube-proxy filter-prerouting ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump firewall-check
add rule ip kube-proxy filter-output-post-dnat ct state new jump cluster-ips-check
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000
add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x00004000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports

add element ip kube-proxy nodeport-ips { 192.168.0.2 }
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
"#;

#[rstest]
#[case::kube_proxy_test_svc1("ns1", "svc1", "tcp", "p80", "ULMVA6XW-ns1/svc1/tcp/p80")]
#[case::kube_proxy_test_svc2("ns2", "svc2", "tcp", "p80", "42NFTM6N-ns2/svc2/tcp/p80")]
#[case::kube_proxy_test_svc3("ns3", "svc3", "tcp", "p80", "4AT6LBPK-ns3/svc3/tcp/p80")]
#[case::kube_proxy_test_svc4("ns4", "svc4", "tcp", "p80", "LAUZTJTB-ns4/svc4/tcp/p80")]
#[case::kube_proxy_test_svc5("ns5", "svc5", "tcp", "p80", "HVFWP5L3-ns5/svc5/tcp/p80")]
#[case::apiserver(
    "default",
    "kubernetes",
    "tcp",
    "https",
    "2QRHZV4L-default/kubernetes/tcp/https"
)]
#[case::kube_dns_udp(
    "kube-system",
    "kube-dns",
    "udp",
    "dns",
    "FY5PMXPG-kube-system/kube-dns/udp/dns"
)]
#[case::unnamed_port(
    "riset",
    "hellopod-np-svc",
    "tcp",
    "",
    "P6J77WGM-riset/hellopod-np-svc/tcp/"
)]
fn service_chain_names(
    #[case] ns: &str,
    #[case] name: &str,
    #[case] proto: &str,
    #[case] port_name: &str,
    #[case] base: &str,
) {
    let mut s = svc(ns, name, port_name, "172.30.0.1", 80);
    s.protocol = if proto == "udp" {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    assert_eq!(service_chain_base(&s), base);
}

#[rstest]
#[case::kube_proxy_test_svc1(
    "ns1",
    "svc1",
    "p80",
    "10.180.0.1",
    80,
    "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
)]
#[case::kube_proxy_test_svc2(
    "ns2",
    "svc2",
    "p80",
    "10.180.0.2",
    80,
    "SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80"
)]
#[case::kube_proxy_test_svc3(
    "ns3",
    "svc3",
    "p80",
    "10.180.0.3",
    80,
    "UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80"
)]
#[case::kube_proxy_test_svc4a(
    "ns4",
    "svc4",
    "p80",
    "10.180.0.4",
    80,
    "UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80"
)]
#[case::kube_proxy_test_svc4b(
    "ns4",
    "svc4",
    "p80",
    "10.180.0.5",
    80,
    "5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"
)]
#[case::kube_proxy_test_svc5(
    "ns5",
    "svc5",
    "p80",
    "10.180.0.3",
    80,
    "GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
)]
#[case::apiserver(
    "default",
    "kubernetes",
    "https",
    "10.34.4.142",
    6443,
    "MIBO4EMV-default/kubernetes/tcp/https__10.34.4.142/6443"
)]
fn endpoint_chain_names(
    #[case] ns: &str,
    #[case] name: &str,
    #[case] port_name: &str,
    #[case] addr: &str,
    #[case] port: u16,
    #[case] base: &str,
) {
    let s = svc(ns, name, port_name, "172.30.0.1", 80);
    assert_eq!(endpoint_chain_base(&s, ip(addr), port), base);
}

#[test]
fn long_names_are_hashed_then_cut_to_240() {
    let name = "n".repeat(300);
    let out = hash_and_truncate(&name);
    assert_eq!(out.len(), 240);
    assert!(out.ends_with("..."));
    assert_eq!(&out[8..9], "-");
    // The longest real name (63-character namespace, name and port, "sctp") is never cut.
    let s = svc(
        &"a".repeat(63),
        &"b".repeat(63),
        &"c".repeat(63),
        "172.30.0.1",
        80,
    );
    assert_eq!(service_chain_base(&s).len(), 8 + 1 + 63 * 3 + 3 + 3);
}

#[test]
fn service_port_names_follow_kube_proxy() {
    assert_eq!(
        service_port_name(&svc("ns", "web", "http", "172.30.0.1", 80)),
        "ns/web:http"
    );
    assert_eq!(
        service_port_name(&svc("ns", "web", "", "172.30.0.1", 80)),
        "ns/web"
    );
}

#[rstest]
#[case::one(1, "numgen random mod 1 vmap { 0 : goto e0 }")]
#[case::two(2, "numgen random mod 2 vmap { 0 : goto e0 , 1 : goto e1 }")]
#[case::three(
    3,
    "numgen random mod 3 vmap { 0 : goto e0 , 1 : goto e1 , 2 : goto e2 }"
)]
fn numgen_vmaps(#[case] n: usize, #[case] rule: &str) {
    let targets: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    assert_eq!(numgen_rule(&targets), rule);
}

#[rstest]
#[case::one(&["10.180.0.1"])]
#[case::two(&["10.180.0.1", "10.180.0.2"])]
#[case::three(&["10.180.0.1", "10.180.0.2", "10.180.0.3"])]
fn numgen_in_service_chain(#[case] addrs: &[&str]) {
    let s = with_eps(
        svc("ns1", "svc1", "p80", "172.30.0.41", 80),
        addrs.iter().map(|a| ep(a, 80)).collect(),
    );
    let out = render(&table(vec![s.clone()]));
    let targets: Vec<String> = addrs
        .iter()
        .map(|a| format!("endpoint-{}", endpoint_chain_base(&s, ip(a), 80)))
        .collect();
    let line = format!(
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 {}",
        numgen_rule(&targets)
    );
    assert!(out.lines().any(|l| l == line), "{line}\nnot in\n{out}");
}

#[test]
fn empty_table_is_kube_proxy_base_ruleset() {
    assert_same_ruleset(&render(&table(vec![])), BASE);
}

#[test]
fn headless_renders_nothing() {
    let mut s = with_eps(
        svc("ns1", "db", "", "172.30.0.9", 5432),
        vec![ep("10.180.0.1", 5432)],
    );
    s.cluster_ip = None;
    assert_eq!(render(&table(vec![s])), render(&table(vec![])));
}

/// kube-proxy's `TestOverallNFTablesRules`, less what the model lacks (LoadBalancer ingress,
/// externalIPs, source ranges): the lines for those are left out of the expectation.
#[test]
fn kube_proxy_overall_rules() {
    let mut svc2 = with_eps(
        svc("ns2", "svc2", "p80", "172.30.0.42", 80),
        vec![ep("10.180.0.2", 80)],
    );
    svc2.node_port = Some(3001);
    svc2.external_traffic_policy = TrafficPolicy::Local;
    let mut svc3 = with_eps(
        svc("ns3", "svc3", "p80", "172.30.0.43", 80),
        vec![ep("10.180.0.3", 80)],
    );
    svc3.node_port = Some(3003);
    let svc4 = with_eps(
        svc("ns4", "svc4", "p80", "172.30.0.44", 80),
        vec![ep("10.180.0.4", 80), on(NODE, ep("10.180.0.5", 80))],
    );
    let mut svc5 = with_eps(
        svc("ns5", "svc5", "p80", "172.30.0.45", 80),
        vec![ep("10.180.0.3", 80)],
    );
    svc5.node_port = Some(3002);
    svc5.affinity_timeout = Some(10800);
    let services = vec![
        with_eps(
            svc("ns1", "svc1", "p80", "172.30.0.41", 80),
            vec![ep("10.180.0.1", 80)],
        ),
        svc2,
        svc3,
        svc4,
        svc5,
        svc("ns6", "svc6", "p80", "172.30.0.46", 80),
    ];
    let expected = BASE.to_string()
        + r#"
# svc1
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }

# svc2
add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }

# svc3
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80
add chain ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80 }

# svc4
add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
add chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 ip saddr 10.180.0.5 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 meta l4proto tcp dnat to 10.180.0.5:80
add chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80
add element ip kube-proxy cluster-ips { 172.30.0.44 }
add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }

# svc5
add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80
add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.45 }
add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }

# svc6
add element ip kube-proxy cluster-ips { 172.30.0.46 }
add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
"#;
    let rendered = render(&table(services));
    assert_same_ruleset(&rendered, &expected);
    check_references(&rendered);
}

/// The lines of `text` that mention `needle`.
fn grep<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line\n{line}\nin\n{text}"
    );
}

fn lacks(text: &str, needle: &str) {
    assert!(
        grep(text, needle).is_empty(),
        "unexpected {needle}: {:#?}",
        grep(text, needle)
    );
}

#[test]
fn cluster_ip_with_three_endpoints() {
    let s = with_eps(
        svc("default", "web", "http", "172.30.1.20", 80),
        vec![
            ep("10.0.2.6", 8080),
            ep("10.0.1.10", 8080),
            ep("10.0.3.4", 8080),
        ],
    );
    let out = render(&table(vec![s.clone()]));
    let base = service_chain_base(&s);
    // Sorted by the ip:port string.
    let eps: Vec<String> = ["10.0.1.10", "10.0.2.6", "10.0.3.4"]
        .iter()
        .map(|a| format!("endpoint-{}", endpoint_chain_base(&s, ip(a), 8080)))
        .collect();
    has(
        &out,
        &format!(
            "add rule ip kube-proxy service-{base} {}",
            numgen_rule(&eps)
        ),
    );
    for (e, a) in eps.iter().zip(["10.0.1.10", "10.0.2.6", "10.0.3.4"]) {
        has(&out, &format!("add chain ip kube-proxy {e}"));
        has(
            &out,
            &format!("add rule ip kube-proxy {e} ip saddr {a} jump mark-for-masquerade"),
        );
        has(
            &out,
            &format!("add rule ip kube-proxy {e} meta l4proto tcp dnat to {a}:8080"),
        );
    }
    has(
        &out,
        &format!(
            "add element ip kube-proxy service-ips {{ 172.30.1.20 . tcp . 80 : goto service-{base} }}"
        ),
    );
    lacks(&out, "external-");
    lacks(&out, "add element ip kube-proxy no-endpoint-services");
    check_references(&out);
}

#[test]
fn endpoints_sort_by_ip_port_string_and_dedupe() {
    let s = with_eps(
        svc("ns", "s", "", "172.30.0.5", 80),
        vec![
            ep("10.0.0.2", 80),
            ep("10.0.0.10", 80),
            terminating(ep("10.0.0.2", 80), true),
        ],
    );
    let out = render(&table(vec![s.clone()]));
    let first = endpoint_chain_base(&s, ip("10.0.0.10"), 80);
    let second = endpoint_chain_base(&s, ip("10.0.0.2"), 80);
    let numgen = grep(&out, "numgen");
    assert_eq!(numgen.len(), 1);
    assert!(numgen[0].contains(&format!(
        "{{ 0 : goto endpoint-{first} , 1 : goto endpoint-{second} }}"
    )));
}

#[test]
fn no_endpoints_rejects_cluster_ip_and_nodeport() {
    let mut s = svc("ns", "empty", "web", "172.30.0.7", 80);
    s.node_port = Some(30080);
    // Not ready and not serving: no usable endpoint.
    s.endpoints = vec![terminating(ep("10.0.0.3", 80), false)];
    let out = render(&table(vec![s]));
    has(
        &out,
        r#"add element ip kube-proxy no-endpoint-services { 172.30.0.7 . tcp . 80 comment "ns/empty:web" : goto reject-chain }"#,
    );
    has(
        &out,
        r#"add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment "ns/empty:web" : goto reject-chain }"#,
    );
    has(&out, "add element ip kube-proxy cluster-ips { 172.30.0.7 }");
    lacks(&out, "add element ip kube-proxy service-ips");
    lacks(&out, "add element ip kube-proxy service-nodeports");
    // No per-service or per-endpoint chain: their names are the only ones with a '/'.
    assert!(
        declared_objects(&out)["chain"]
            .iter()
            .all(|c| !c.contains('/')),
        "{out}"
    );
    check_references(&out);
}

#[test]
fn serving_terminating_endpoints_are_the_fallback() {
    let s = with_eps(
        svc("ns", "s", "p", "172.30.0.8", 80),
        vec![
            terminating(ep("10.0.0.3", 80), true),
            terminating(ep("10.0.0.4", 80), false),
        ],
    );
    let out = render(&table(vec![s.clone()]));
    let only = endpoint_chain_base(&s, ip("10.0.0.3"), 80);
    has(
        &out,
        &format!(
            "add rule ip kube-proxy service-{} numgen random mod 1 vmap {{ 0 : goto endpoint-{only} }}",
            service_chain_base(&s)
        ),
    );
    lacks(&out, "10.0.0.4");
}

#[test]
fn nodeport_cluster_policy() {
    let mut s = with_eps(
        svc("ns", "np", "http", "172.30.0.9", 80),
        vec![ep("10.0.0.3", 8080)],
    );
    s.node_port = Some(30080);
    let out = render(&table(vec![s.clone()]));
    let base = service_chain_base(&s);
    assert_eq!(
        rules_by_chain(&lines_of(&out))[&format!("external-{base}")],
        vec![
            "jump mark-for-masquerade".to_string(),
            format!("goto service-{base}")
        ]
    );
    has(
        &out,
        &format!(
            "add element ip kube-proxy service-nodeports {{ tcp . 30080 : goto external-{base} }}"
        ),
    );
    lacks(&out, "add element ip kube-proxy no-endpoint-nodeports");
    check_references(&out);
}

#[test]
fn nodeport_on_every_local_address_without_node_ips() {
    let mut s = with_eps(
        svc("ns", "np", "http", "172.30.0.9", 80),
        vec![ep("10.0.0.3", 8080)],
    );
    s.node_port = Some(30080);
    let mut t = table(vec![s]);
    t.node_ips.clear();
    let out = render(&t);
    lacks(&out, "nodeport-ips");
    has(
        &out,
        "add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    );
    has(
        &out,
        "add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",
    );
    check_references(&out);
}

#[test]
fn loopback_node_ips_are_not_nodeport_addresses() {
    let mut t = table(vec![]);
    t.node_ips = vec![ip("127.0.0.1"), ip("192.168.0.2")];
    let out = render(&t);
    assert_eq!(
        grep(&out, "add element ip kube-proxy nodeport-ips"),
        ["add element ip kube-proxy nodeport-ips { 192.168.0.2 }"]
    );
}

#[test]
fn etp_local_with_a_local_endpoint() {
    let mut s = with_eps(
        svc("ns", "lb", "http", "172.30.0.10", 80),
        vec![ep("10.0.2.5", 8080), on(NODE, ep("10.0.1.5", 8080))],
    );
    s.node_port = Some(30081);
    s.external_traffic_policy = TrafficPolicy::Local;
    let out = render(&table(vec![s.clone()]));
    let base = service_chain_base(&s);
    let local_ep = format!("endpoint-{}", endpoint_chain_base(&s, ip("10.0.1.5"), 8080));
    let remote_ep = format!("endpoint-{}", endpoint_chain_base(&s, ip("10.0.2.5"), 8080));
    let rules = rules_by_chain(&lines_of(&out));
    assert_eq!(
        rules[&format!("external-{base}")],
        vec![
            format!(
                "ip saddr 10.0.0.0/8 goto service-{base} comment \"short-circuit pod traffic\""
            ),
            "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""
                .to_string(),
            format!(
                "fib saddr type local goto service-{base} comment \"short-circuit local traffic\""
            ),
            format!("goto local-{base}"),
        ]
    );
    // The local chain has only the local endpoint and no masquerade rule (ClusterIP traffic
    // uses the cluster chain).
    assert_eq!(
        rules[&format!("local-{base}")],
        vec![format!(
            "numgen random mod 1 vmap {{ 0 : goto {local_ep} }}"
        )]
    );
    assert_eq!(
        rules[&format!("service-{base}")],
        vec![
            format!(
                "ip daddr 172.30.0.10 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
            ),
            format!("numgen random mod 2 vmap {{ 0 : goto {local_ep} , 1 : goto {remote_ep} }}"),
        ]
    );
    lacks(&out, "add element ip kube-proxy no-endpoint-nodeports");
    check_references(&out);
}

#[test]
fn itp_local_with_and_without_local_endpoints() {
    let mut with_local = with_eps(
        svc("ns", "itp", "", "172.30.0.11", 53),
        vec![ep("10.0.2.5", 53), on(NODE, ep("10.0.1.5", 53))],
    );
    with_local.internal_traffic_policy = TrafficPolicy::Local;
    let out = render(&table(vec![with_local.clone()]));
    let base = service_chain_base(&with_local);
    let local_ep = format!(
        "endpoint-{}",
        endpoint_chain_base(&with_local, ip("10.0.1.5"), 53)
    );
    let rules = rules_by_chain(&lines_of(&out));
    assert_eq!(
        rules[&format!("local-{base}")],
        vec![
            "ip daddr 172.30.0.11 tcp dport 53 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
                .to_string(),
            format!("numgen random mod 1 vmap {{ 0 : goto {local_ep} }}"),
        ]
    );
    has(
        &out,
        &format!(
            "add element ip kube-proxy service-ips {{ 172.30.0.11 . tcp . 53 : goto local-{base} }}"
        ),
    );
    // Only the local endpoint is reachable from this node; no cluster chain at all.
    lacks(&out, "10.0.2.5");
    lacks(&out, &format!("service-{base}"));
    check_references(&out);

    let mut remote_only = with_local.clone();
    remote_only.endpoints = vec![ep("10.0.2.5", 53)];
    let out = render(&table(vec![remote_only]));
    has(
        &out,
        r#"add element ip kube-proxy no-endpoint-services { 172.30.0.11 . tcp . 53 comment "ns/itp" : drop }"#,
    );
    lacks(&out, "add chain ip kube-proxy local-");
    lacks(&out, "add chain ip kube-proxy endpoint-");
    check_references(&out);
}

#[test]
fn session_affinity_sets_and_rules() {
    let mut s = with_eps(
        svc("ns", "sticky", "http", "172.30.0.12", 80),
        vec![ep("10.0.1.5", 80), ep("10.0.2.5", 80)],
    );
    s.affinity_timeout = Some(300);
    let out = render(&table(vec![s.clone()]));
    let base = service_chain_base(&s);
    let rules = rules_by_chain(&lines_of(&out));
    let mut expected = vec![format!(
        "ip daddr 172.30.0.12 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"
    )];
    let mut targets = Vec::new();
    for a in ["10.0.1.5", "10.0.2.5"] {
        let e = endpoint_chain_base(&s, ip(a), 80);
        has(
            &out,
            &format!(
                "add set ip kube-proxy affinity-{e} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 300s ; }}"
            ),
        );
        expected.push(format!("ip saddr @affinity-{e} goto endpoint-{e}"));
        assert_eq!(
            rules[&format!("endpoint-{e}")],
            vec![
                format!("ip saddr {a} jump mark-for-masquerade"),
                format!("update @affinity-{e} {{ ip saddr }}"),
                format!("meta l4proto tcp dnat to {a}:80"),
            ]
        );
        targets.push(format!("endpoint-{e}"));
    }
    expected.push(numgen_rule(&targets));
    assert_eq!(rules[&format!("service-{base}")], expected);
    check_references(&out);
}

#[test]
fn udp_service() {
    let mut s = with_eps(
        svc("kube-system", "kube-dns", "dns", "172.30.0.10", 53),
        vec![ep("10.0.1.2", 53)],
    );
    s.protocol = Proto::Udp;
    let out = render(&table(vec![s]));
    let e = "endpoint-S4FSIJI2-kube-system/kube-dns/udp/dns__10.42.0.171/53";
    // The hash of kube-dns' UDP endpoint from a real cluster, for another address.
    let real = svc("kube-system", "kube-dns", "dns", "10.43.0.10", 53);
    let mut real = real;
    real.protocol = Proto::Udp;
    assert_eq!(
        format!(
            "endpoint-{}",
            endpoint_chain_base(&real, ip("10.42.0.171"), 53)
        ),
        e
    );
    has(
        &out,
        "add rule ip kube-proxy service-FY5PMXPG-kube-system/kube-dns/udp/dns ip daddr 172.30.0.10 udp dport 53 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
    );
    has(
        &out,
        "add element ip kube-proxy service-ips { 172.30.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns }",
    );
    assert_eq!(grep(&out, "dnat to").len(), 1);
    assert!(grep(&out, "dnat to")[0].ends_with("meta l4proto udp dnat to 10.0.1.2:53"));
}

#[test]
fn multi_port_service() {
    let dns_udp = {
        let mut s = with_eps(
            svc("kube-system", "kube-dns", "dns", "172.30.0.10", 53),
            vec![ep("10.0.1.2", 53)],
        );
        s.protocol = Proto::Udp;
        s
    };
    let dns_tcp = with_eps(
        svc("kube-system", "kube-dns", "dns-tcp", "172.30.0.10", 53),
        vec![ep("10.0.1.2", 53)],
    );
    let metrics = with_eps(
        svc("kube-system", "kube-dns", "metrics", "172.30.0.10", 9153),
        vec![ep("10.0.1.2", 9153)],
    );
    let out = render(&table(vec![dns_udp, dns_tcp, metrics]));
    assert_eq!(
        grep(&out, "add element ip kube-proxy service-ips"),
        [
            "add element ip kube-proxy service-ips { 172.30.0.10 . tcp . 53 : goto service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp }",
            "add element ip kube-proxy service-ips { 172.30.0.10 . tcp . 9153 : goto service-AS2KJYAD-kube-system/kube-dns/tcp/metrics }",
            "add element ip kube-proxy service-ips { 172.30.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns }",
        ]
    );
    assert_eq!(
        grep(&out, "add element ip kube-proxy cluster-ips"),
        ["add element ip kube-proxy cluster-ips { 172.30.0.10 }"]
    );
    assert_eq!(grep(&out, "add chain ip kube-proxy endpoint-").len(), 3);
    check_references(&out);
}

#[test]
fn rendering_is_deterministic_and_order_independent() {
    let a = with_eps(
        svc("ns", "a", "", "172.30.0.21", 80),
        vec![ep("10.0.1.1", 80), ep("10.0.2.1", 80)],
    );
    let mut b = with_eps(
        svc("ns", "b", "", "172.30.0.22", 80),
        vec![ep("10.0.1.2", 80)],
    );
    b.node_port = Some(30001);
    let one = render(&table(vec![a.clone(), b.clone()]));
    assert_eq!(one, render(&table(vec![a.clone(), b.clone()])));
    let mut a_rev = a.clone();
    a_rev.endpoints.reverse();
    assert_eq!(one, render(&table(vec![b, a_rev])));
}

/// The layout the module documents: reset prefix, then chains, sets, maps (each sorted by
/// name), rules grouped by chain in chain-name order, elements.
#[test]
fn layout_is_sorted_by_kind_then_name() {
    let mut s = with_eps(
        svc("ns", "a", "", "172.30.0.21", 80),
        vec![ep("10.0.1.1", 80)],
    );
    s.affinity_timeout = Some(60);
    s.node_port = Some(30002);
    let out = render(&table(vec![s, svc("ns", "z", "", "172.30.0.2", 80)]));
    let lines = body(&out);
    let kind = |l: &str| -> usize {
        [
            "add table",
            "add chain",
            "add set",
            "add map",
            "add rule",
            "add element",
        ]
        .iter()
        .position(|p| l.starts_with(p))
        .unwrap_or_else(|| panic!("unexpected line {l}"))
    };
    let kinds: Vec<usize> = lines.iter().map(|l| kind(l)).collect();
    assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{out}");
    for k in ["add chain", "add set", "add map"] {
        let names: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(4).unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
    let rule_chains: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("add rule"))
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert!(rule_chains.windows(2).all(|w| w[0] <= w[1]));
    // Elements sorted by address within a set.
    assert_eq!(
        grep(&out, "add element ip kube-proxy cluster-ips"),
        [
            "add element ip kube-proxy cluster-ips { 172.30.0.2 }",
            "add element ip kube-proxy cluster-ips { 172.30.0.21 }",
        ]
    );
}

/// A table with every shape at once.
fn every_shape() -> ServiceTable {
    let mut services = Vec::new();
    let mut np = with_eps(
        svc("ns", "np", "http", "172.30.0.31", 80),
        vec![ep("10.0.2.1", 80), on(NODE, ep("10.0.1.1", 80))],
    );
    np.node_port = Some(30031);
    services.push(np.clone());
    let mut etp = np.clone();
    etp.name = "etp".into();
    etp.cluster_ip = Some(ip("172.30.0.32"));
    etp.node_port = Some(30032);
    etp.external_traffic_policy = TrafficPolicy::Local;
    etp.affinity_timeout = Some(10);
    services.push(etp.clone());
    let mut etp_remote = etp.clone();
    etp_remote.name = "etp-remote".into();
    etp_remote.cluster_ip = Some(ip("172.30.0.33"));
    etp_remote.node_port = Some(30033);
    etp_remote.endpoints = vec![ep("10.0.2.1", 80)];
    services.push(etp_remote);
    let mut itp = etp.clone();
    itp.name = "itp".into();
    itp.cluster_ip = Some(ip("172.30.0.34"));
    itp.node_port = None;
    itp.external_traffic_policy = TrafficPolicy::Cluster;
    itp.internal_traffic_policy = TrafficPolicy::Local;
    services.push(itp.clone());
    let mut itp_np = itp.clone();
    itp_np.name = "itp-np".into();
    itp_np.cluster_ip = Some(ip("172.30.0.35"));
    itp_np.node_port = Some(30035);
    itp_np.endpoints = vec![
        ep("10.0.2.1", 80),
        terminating(on(NODE, ep("10.0.1.1", 80)), true),
    ];
    services.push(itp_np);
    let mut udp = svc("ns", "udp", "", "172.30.0.36", 53);
    udp.protocol = Proto::Udp;
    udp.endpoints = vec![ep("10.0.1.1", 53)];
    services.push(udp);
    let mut empty = svc("ns", "empty", "", "172.30.0.37", 80);
    empty.node_port = Some(30037);
    services.push(empty);
    table(services)
}

#[test]
fn every_shape_references_only_declared_objects() {
    check_references(&render(&every_shape()));
}

/// Every chain a rule is added to, every `jump`/`goto` target (in rules and in map elements)
/// and every `@set` is declared in the file, and every element's set or map too.
fn check_references(text: &str) {
    let declared = declared_objects(text);
    let chains: BTreeSet<&str> = declared["chain"].iter().map(String::as_str).collect();
    let containers: BTreeSet<&str> = declared["set"]
        .iter()
        .chain(&declared["map"])
        .map(String::as_str)
        .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // Quoted comments are text, not references.
        let unquoted: String = line.split('"').step_by(2).collect::<Vec<_>>().join("\"\"");
        let words: Vec<&str> = unquoted.split_whitespace().collect();
        match (words[0], words[1]) {
            ("add", "rule") => assert!(chains.contains(words[4]), "undeclared chain: {line}"),
            ("add", "element") => {
                assert!(containers.contains(words[4]), "undeclared set: {line}")
            }
            _ => {}
        }
        for (i, w) in words.iter().enumerate() {
            if matches!(*w, "jump" | "goto") {
                let target = words[i + 1];
                assert!(
                    chains.contains(target),
                    "undeclared target {target}: {line}"
                );
            }
            if let Some(set) = w.strip_prefix('@') {
                assert!(containers.contains(set), "undeclared set {set}: {line}");
            }
        }
    }
}
