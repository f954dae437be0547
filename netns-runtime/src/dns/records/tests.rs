//! The record table against what CoreDNS's kubernetes plugin answers (its handler tests and
//! source), one record kind at a time.

use std::net::{IpAddr, Ipv4Addr};

use rstest::rstest;

use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn port(name: &str, protocol: Proto, number: u16) -> Port {
    Port {
        name: name.into(),
        protocol,
        port: number,
    }
}

fn ep(addr: &str, ready: bool, ports: Vec<Port>) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        hostname: None,
        pod: None,
        ready,
        ports,
    }
}

fn svc(
    ns: &str,
    name: &str,
    cluster_ip: Option<&str>,
    ports: Vec<Port>,
    eps: Vec<Endpoint>,
) -> Service {
    Service {
        namespace: ns.into(),
        name: name.into(),
        cluster_ip: cluster_ip.map(ip),
        ports,
        endpoints: eps,
    }
}

/// A small cluster with every shape of Service the table knows.
fn cluster() -> ClusterDns {
    let http80 = port("http", Proto::Tcp, 80);
    let http8080 = port("http", Proto::Tcp, 8080);
    let dns_ports = [
        port("dns", Proto::Udp, 53),
        port("dns-tcp", Proto::Tcp, 53),
        port("metrics", Proto::Tcp, 9153),
    ];
    let mut web0 = ep("10.244.1.10", true, vec![http8080.clone()]);
    web0.pod = Some("web-0".into());
    let mut named = ep("10.244.2.13", true, vec![http8080.clone()]);
    named.hostname = Some("db-primary".into());
    ClusterDns {
        services: vec![
            svc(
                "default",
                "myapp",
                Some("10.96.1.20"),
                vec![http80.clone()],
                vec![
                    ep("10.244.2.6", true, vec![http8080.clone()]),
                    ep("10.244.1.7", false, vec![http8080.clone()]),
                ],
            ),
            svc(
                "default",
                "multi",
                Some("10.96.1.30"),
                vec![http80.clone(), port("https", Proto::Tcp, 443)],
                vec![],
            ),
            svc(
                "default",
                "web",
                None,
                vec![http80.clone()],
                vec![
                    web0,
                    ep("10.244.2.11", true, vec![http8080.clone()]),
                    ep("10.244.2.12", false, vec![http8080.clone()]),
                    named,
                ],
            ),
            svc(
                "default",
                "empty",
                None,
                vec![http80.clone()],
                vec![ep("10.244.2.20", false, vec![])],
            ),
            svc(
                "default",
                "portless",
                None,
                vec![],
                vec![ep("10.244.2.21", true, vec![])],
            ),
            svc(
                "kube-system",
                "kube-dns",
                Some("10.96.0.10"),
                dns_ports.to_vec(),
                vec![ep("10.244.1.5", true, dns_ports.to_vec())],
            ),
        ],
        pods: vec![
            Pod {
                namespace: "default".into(),
                name: "web-0".into(),
                ip: ip("10.244.1.10"),
                hostname: Some("web-0".into()),
                subdomain: Some("web".into()),
            },
            Pod {
                namespace: "apps".into(),
                name: "lonely".into(),
                ip: ip("10.244.1.30"),
                hostname: Some("lonely".into()),
                subdomain: Some("nothing".into()),
            },
        ],
        server_ips: vec![ip("10.244.1.5")],
        ..ClusterDns::default()
    }
}

fn table() -> RecordTable {
    RecordTable::new(&cluster())
}

const SOA: &str =
    "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30";
const SOA_V4: &str =
    "in-addr.arpa. 30 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1 7200 1800 86400 30";

fn nxdomain() -> Vec<String> {
    lines(&["NXDOMAIN aa", ";; AUTHORITY", SOA])
}

fn nodata() -> Vec<String> {
    lines(&["NOERROR aa", ";; AUTHORITY", SOA])
}

fn answer(records: &[&str]) -> Vec<String> {
    let mut out = lines(&["NOERROR aa", ";; ANSWER"]);
    out.extend(lines(records));
    out
}

fn with_additional(mut out: Vec<String>, records: &[&str]) -> Vec<String> {
    out.push(";; ADDITIONAL".into());
    out.extend(lines(records));
    out
}

fn lines(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn ask(name: &str, qtype: &str) -> String {
    table().lookup(name, qtype.parse().unwrap()).to_string()
}

#[rstest]
#[case::cluster_ip("myapp.default.svc.cluster.local.", answer(&["myapp.default.svc.cluster.local. 30 IN A 10.96.1.20"]))]
#[case::without_trailing_dot("myapp.default.svc.cluster.local", answer(&["myapp.default.svc.cluster.local. 30 IN A 10.96.1.20"]))]
#[case::mixed_case_keeps_the_question_s_case("MyApp.Default.SVC.Cluster.Local.", answer(&["MyApp.Default.SVC.Cluster.Local. 30 IN A 10.96.1.20"]))]
#[case::headless_ready_endpoints_only("web.default.svc.cluster.local.", answer(&[
    "web.default.svc.cluster.local. 30 IN A 10.244.1.10",
    "web.default.svc.cluster.local. 30 IN A 10.244.2.11",
    "web.default.svc.cluster.local. 30 IN A 10.244.2.13",
]))]
#[case::hostname_from_pod_subdomain("web-0.web.default.svc.cluster.local.", answer(&["web-0.web.default.svc.cluster.local. 30 IN A 10.244.1.10"]))]
#[case::hostname_of_the_endpoint("db-primary.web.default.svc.cluster.local.", answer(&["db-primary.web.default.svc.cluster.local. 30 IN A 10.244.2.13"]))]
#[case::endpoint_without_hostname_by_dashed_ip("10-244-2-11.web.default.svc.cluster.local.", answer(&["10-244-2-11.web.default.svc.cluster.local. 30 IN A 10.244.2.11"]))]
#[case::endpoint_with_hostname_not_by_dashed_ip(
    "10-244-1-10.web.default.svc.cluster.local.",
    nxdomain()
)]
#[case::not_ready_endpoint("10-244-2-12.web.default.svc.cluster.local.", nxdomain())]
#[case::endpoint_of_a_cluster_ip_service("10-244-2-6.myapp.default.svc.cluster.local.", answer(&["10-244-2-6.myapp.default.svc.cluster.local. 30 IN A 10.244.2.6"]))]
#[case::headless_without_ready_endpoints("empty.default.svc.cluster.local.", nxdomain())]
#[case::headless_portless("portless.default.svc.cluster.local.", answer(&["portless.default.svc.cluster.local. 30 IN A 10.244.2.21"]))]
#[case::portless_endpoint("10-244-2-21.portless.default.svc.cluster.local.", answer(&["10-244-2-21.portless.default.svc.cluster.local. 30 IN A 10.244.2.21"]))]
#[case::unknown_service("nosuch.default.svc.cluster.local.", nxdomain())]
#[case::unknown_namespace("myapp.nosuch.svc.cluster.local.", nxdomain())]
#[case::existing_namespace_is_nodata("default.svc.cluster.local.", nodata())]
#[case::namespace_known_only_by_a_pod("apps.svc.cluster.local.", nodata())]
#[case::svc_apex("svc.cluster.local.", nodata())]
#[case::pod_apex("pod.cluster.local.", nodata())]
#[case::zone_apex("cluster.local.", nodata())]
#[case::neither_svc_nor_pod("foo.cluster.local.", nxdomain())]
#[case::too_long("a.b.c.myapp.default.svc.cluster.local.", nxdomain())]
#[case::pod_subdomain_without_its_service("lonely.nothing.apps.svc.cluster.local.", nxdomain())]
#[case::schema_name_has_no_a("dns-version.cluster.local.", nxdomain())]
// CoreDNS dropped wildcard labels in 1.9.0: `*` is just a name that does not exist.
#[case::no_wildcards("*.default.svc.cluster.local.", nxdomain())]
#[case::no_wildcard_namespace("myapp.*.svc.cluster.local.", nxdomain())]
#[case::name_server("ns.dns.cluster.local.", answer(&["ns.dns.cluster.local. 30 IN A 10.96.0.10"]))]
fn a_records(#[case] name: &str, #[case] expected: Vec<String>) {
    assert_eq!(ask(name, "A"), expected.join("\n"));
}

#[rstest]
#[case::ipv4_service_is_nodata("myapp.default.svc.cluster.local.", "AAAA", nodata())]
#[case::missing_service_is_nxdomain("nosuch.default.svc.cluster.local.", "AAAA", nxdomain())]
#[case::other_type_on_existing_name("myapp.default.svc.cluster.local.", "MX", nodata())]
#[case::unknown_type_on_existing_name("myapp.default.svc.cluster.local.", "TYPE13", nodata())]
#[case::unknown_type_on_missing_name("nosuch.default.svc.cluster.local.", "TYPE13", nxdomain())]
#[case::cname_on_cluster_ip_service("myapp.default.svc.cluster.local.", "CNAME", nodata())]
#[case::any("web.default.svc.cluster.local.", "ANY", nodata())]
#[case::soa_below_the_apex_is_nodata_even_when_missing(
    "nosuch.default.svc.cluster.local.",
    "SOA",
    nodata()
)]
#[case::soa_at_the_apex("cluster.local.", "SOA", answer(&[SOA]))]
#[case::ns_below_the_apex("svc.cluster.local.", "NS", nodata())]
#[case::ns_below_the_apex_missing("foo.svc.cluster.local.", "NS", nxdomain())]
fn nodata_and_nxdomain(#[case] name: &str, #[case] qtype: &str, #[case] expected: Vec<String>) {
    assert_eq!(ask(name, qtype), expected.join("\n"));
}

#[test]
fn negative_answers_carry_the_soa_in_the_question_s_case() {
    assert_eq!(
        ask("not-a-service.default.svc.ClUsTeR.lOcAl.", "A"),
        [
            "NXDOMAIN aa",
            ";; AUTHORITY",
            "ClUsTeR.lOcAl. 30 IN SOA ns.dns.ClUsTeR.lOcAl. hostmaster.ClUsTeR.lOcAl. 1 7200 1800 86400 30",
        ]
        .join("\n")
    );
}

#[test]
fn soa_follows_ttl_serial_and_zone() {
    let dns = ClusterDns {
        zone: "Example.Test.".into(),
        ttl: 5,
        serial: 1499347823,
        ..ClusterDns::default()
    };
    let table = RecordTable::new(&dns);
    assert_eq!(table.zone(), "example.test.");
    assert_eq!(
        table
            .lookup("nothing.example.test", RecordType::A)
            .authority[0]
            .to_string(),
        "example.test. 5 IN SOA ns.dns.example.test. hostmaster.example.test. 1499347823 7200 1800 86400 5"
    );
    // The SOA's own TTL is capped at 300 s; its minimum is the ttl option.
    let slow = RecordTable::new(&ClusterDns {
        ttl: 3600,
        ..ClusterDns::default()
    });
    let soa = &slow.lookup("cluster.local", RecordType::Soa).answers[0];
    assert_eq!(soa.ttl, 300);
    assert!(soa.to_string().ends_with(" 86400 3600"), "{soa}");
}

#[rstest]
#[case::cluster_ip_named_port("_http._tcp.myapp.default.svc.cluster.local.", with_additional(
    answer(&["_http._tcp.myapp.default.svc.cluster.local. 30 IN SRV 0 100 80 myapp.default.svc.cluster.local."]),
    &["myapp.default.svc.cluster.local. 30 IN A 10.96.1.20"],
))]
#[case::underscores_are_optional("http.tcp.myapp.default.svc.cluster.local.", with_additional(
    answer(&["http.tcp.myapp.default.svc.cluster.local. 30 IN SRV 0 100 80 myapp.default.svc.cluster.local."]),
    &["myapp.default.svc.cluster.local. 30 IN A 10.96.1.20"],
))]
#[case::target_keeps_the_zone_s_case("_HTTP._TCP.MyApp.Default.svc.Cluster.Local.", with_additional(
    answer(&["_HTTP._TCP.MyApp.Default.svc.Cluster.Local. 30 IN SRV 0 100 80 myapp.default.svc.Cluster.Local."]),
    &["myapp.default.svc.Cluster.Local. 30 IN A 10.96.1.20"],
))]
#[case::every_port_of_the_service_share_the_weight("multi.default.svc.cluster.local.", with_additional(
    answer(&[
        "multi.default.svc.cluster.local. 30 IN SRV 0 50 80 multi.default.svc.cluster.local.",
        "multi.default.svc.cluster.local. 30 IN SRV 0 50 443 multi.default.svc.cluster.local.",
    ]),
    &["multi.default.svc.cluster.local. 30 IN A 10.96.1.30"],
))]
// A bare underscore strips to an empty port name, which CoreDNS matches with any port.
#[case::empty_port_label_matches_every_port("_._tcp.multi.default.svc.cluster.local.", with_additional(
    answer(&[
        "_._tcp.multi.default.svc.cluster.local. 30 IN SRV 0 50 80 multi.default.svc.cluster.local.",
        "_._tcp.multi.default.svc.cluster.local. 30 IN SRV 0 50 443 multi.default.svc.cluster.local.",
    ]),
    &["multi.default.svc.cluster.local. 30 IN A 10.96.1.30"],
))]
#[case::udp_port_by_protocol("_dns._udp.kube-dns.kube-system.svc.cluster.local.", with_additional(
    answer(&["_dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."]),
    &["kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10"],
))]
#[case::wrong_protocol("_dns._tcp.kube-dns.kube-system.svc.cluster.local.", nxdomain())]
#[case::unknown_port("_nope._tcp.myapp.default.svc.cluster.local.", nxdomain())]
#[case::headless_one_per_ready_endpoint_at_the_target_port("_http._tcp.web.default.svc.cluster.local.", with_additional(
    answer(&[
        "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 33 8080 web-0.web.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 33 8080 10-244-2-11.web.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 33 8080 db-primary.web.default.svc.cluster.local.",
    ]),
    &[
        "web-0.web.default.svc.cluster.local. 30 IN A 10.244.1.10",
        "10-244-2-11.web.default.svc.cluster.local. 30 IN A 10.244.2.11",
        "db-primary.web.default.svc.cluster.local. 30 IN A 10.244.2.13",
    ],
))]
#[case::headless_endpoint_name("web-0.web.default.svc.cluster.local.", with_additional(
    answer(&["web-0.web.default.svc.cluster.local. 30 IN SRV 0 100 8080 web-0.web.default.svc.cluster.local."]),
    &["web-0.web.default.svc.cluster.local. 30 IN A 10.244.1.10"],
))]
#[case::portless_headless_is_nodata("portless.default.svc.cluster.local.", nodata())]
#[case::headless_without_ready_endpoints("_http._tcp.empty.default.svc.cluster.local.", nxdomain())]
#[case::pod("10-244-1-10.default.pod.cluster.local.", with_additional(
    answer(&["10-244-1-10.default.pod.cluster.local. 30 IN SRV 0 100 0 10-244-1-10.default.pod.cluster.local."]),
    &["10-244-1-10.default.pod.cluster.local. 30 IN A 10.244.1.10"],
))]
fn srv_records(#[case] name: &str, #[case] expected: Vec<String>) {
    assert_eq!(ask(name, "SRV"), expected.join("\n"));
}

#[rstest]
#[case(1, 100)]
#[case(2, 50)]
#[case(3, 33)]
#[case(6, 16)]
#[case(101, 1)]
#[case(500, 1)]
fn srv_weight_is_coredns_s(#[case] n: usize, #[case] weight: u16) {
    assert_eq!(srv_weight(n), weight);
}

#[rstest]
#[case::cluster_ip("20.1.96.10.in-addr.arpa.", &["myapp.default.svc.cluster.local."])]
#[case::endpoint_with_hostname("10.1.244.10.in-addr.arpa.", &["web-0.web.default.svc.cluster.local."])]
#[case::endpoint_without_hostname("11.2.244.10.in-addr.arpa.", &["10-244-2-11.web.default.svc.cluster.local."])]
#[case::endpoint_of_a_cluster_ip_service("6.2.244.10.in-addr.arpa.", &["10-244-2-6.myapp.default.svc.cluster.local."])]
#[case::upper_case("20.1.96.10.IN-ADDR.ARPA.", &["myapp.default.svc.cluster.local."])]
// Go's net.IP prints ::ffff:10.96.1.20 as 10.96.1.20, so CoreDNS finds the IPv4 Service.
#[case::ipv4_mapped_ipv6("4.1.1.0.0.6.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", &["myapp.default.svc.cluster.local."])]
fn ptr_records(#[case] name: &str, #[case] targets: &[&str]) {
    let got = table().lookup(name, RecordType::Ptr);
    let expected: Vec<String> = targets
        .iter()
        .map(|t| format!("{name} 30 IN PTR {t}"))
        .collect();
    assert_eq!(
        got.to_string(),
        answer(&expected.iter().map(String::as_str).collect::<Vec<_>>()).join("\n")
    );
}

#[rstest]
#[case::not_ready_endpoint("12.2.244.10.in-addr.arpa.")]
#[case::pod_that_is_no_endpoint("30.1.244.10.in-addr.arpa.")]
#[case::leading_zero("020.1.96.10.in-addr.arpa.")]
#[case::partial("96.10.in-addr.arpa.")]
#[case::ipv6("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.")]
fn ptr_nxdomain(#[case] name: &str) {
    let got = table().lookup(name, RecordType::Ptr);
    assert_eq!(got.rcode, Rcode::NxDomain, "{got}");
    assert!(got.answers.is_empty());
    let zone = if name.ends_with("ip6.arpa.") {
        "ip6.arpa."
    } else {
        "in-addr.arpa."
    };
    assert_eq!(got.authority[0].name, zone);
}

#[test]
fn ptr_in_reverse_zone_apex_and_in_cluster_zone() {
    assert_eq!(
        ask("in-addr.arpa.", "PTR"),
        lines(&["NOERROR aa", ";; AUTHORITY", SOA_V4]).join("\n")
    );
    assert_eq!(
        ask("myapp.default.svc.cluster.local.", "PTR"),
        nodata().join("\n")
    );
    assert_eq!(
        ask("nosuch.default.svc.cluster.local.", "PTR"),
        nxdomain().join("\n")
    );
    // A reverse name asked for another type is NXDOMAIN, in the reverse zone.
    assert_eq!(
        ask("20.1.96.10.in-addr.arpa.", "A"),
        lines(&["NXDOMAIN aa", ";; AUTHORITY", SOA_V4]).join("\n")
    );
}

#[test]
fn reverse_lists_every_service_an_endpoint_belongs_to() {
    let mut dns = cluster();
    let http = port("http", Proto::Tcp, 8080);
    dns.services.push(svc(
        "default",
        "other",
        None,
        vec![],
        vec![ep("10.244.2.11", true, vec![http])],
    ));
    let table = RecordTable::new(&dns);
    assert_eq!(
        table.reverse(IpAddr::V4(ip("10.244.2.11"))),
        vec![
            "10-244-2-11.web.default.svc.cluster.local.".to_string(),
            "10-244-2-11.other.default.svc.cluster.local.".to_string(),
        ]
    );
    assert_eq!(
        table.reverse(IpAddr::V4(ip("10.96.1.20"))),
        vec!["myapp.default.svc.cluster.local.".to_string()]
    );
    assert!(table.reverse(IpAddr::V4(ip("10.244.2.12"))).is_empty());
    assert!(table.reverse("::1".parse().unwrap()).is_empty());
}

#[rstest]
#[case::any_dashed_ipv4("1-2-3-4.default.pod.cluster.local.", "A", answer(&["1-2-3-4.default.pod.cluster.local. 30 IN A 1.2.3.4"]))]
#[case::a_pod("10-244-1-10.default.pod.cluster.local.", "A", answer(&["10-244-1-10.default.pod.cluster.local. 30 IN A 10.244.1.10"]))]
#[case::upper_case("10-244-1-10.DEFAULT.POD.cluster.local.", "A", answer(&["10-244-1-10.DEFAULT.POD.cluster.local. 30 IN A 10.244.1.10"]))]
#[case::namespace_known_only_by_a_pod("1-2-3-4.apps.pod.cluster.local.", "A", answer(&["1-2-3-4.apps.pod.cluster.local. 30 IN A 1.2.3.4"]))]
// CoreDNS reads the address from the label before the namespace and ignores any other.
#[case::extra_label_is_ignored("x.1-2-3-4.default.pod.cluster.local.", "A", answer(&["x.1-2-3-4.default.pod.cluster.local. 30 IN A 1.2.3.4"]))]
#[case::unknown_namespace("1-2-3-4.nosuch.pod.cluster.local.", "A", nxdomain())]
#[case::not_an_address("blah.default.pod.cluster.local.", "A", nxdomain())]
#[case::leading_zero("01-2-3-4.default.pod.cluster.local.", "A", nxdomain())]
#[case::out_of_range("1-2-3-400.default.pod.cluster.local.", "A", nxdomain())]
#[case::ipv4_pod_has_no_aaaa("1-2-3-4.default.pod.cluster.local.", "AAAA", nodata())]
#[case::dashed_ipv6("fd00--1.default.pod.cluster.local.", "AAAA", answer(&["fd00--1.default.pod.cluster.local. 30 IN AAAA fd00::1"]))]
#[case::dashed_ipv6_has_no_a("fd00--1.default.pod.cluster.local.", "A", nodata())]
#[case::namespace("default.pod.cluster.local.", "A", nodata())]
#[case::other_type("1-2-3-4.default.pod.cluster.local.", "TYPE13", nodata())]
#[case::missing_other_type("blah.default.pod.cluster.local.", "TYPE13", nxdomain())]
fn pod_records(#[case] name: &str, #[case] qtype: &str, #[case] expected: Vec<String>) {
    assert_eq!(ask(name, qtype), expected.join("\n"));
}

#[rstest]
#[case::schema_version("dns-version.cluster.local.", answer(&["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]))]
#[case::schema_version_any_case("DNS-Version.Cluster.Local.", answer(&["DNS-Version.Cluster.Local. 28800 IN TXT \"1.1.0\""]))]
#[case::existing_name("myapp.default.svc.cluster.local.", nodata())]
#[case::missing_name("nosuch.default.svc.cluster.local.", nxdomain())]
// CoreDNS: TXT on a name that exists but has no records (a namespace) is NXDOMAIN.
#[case::namespace("default.svc.cluster.local.", nxdomain())]
fn txt_records(#[case] name: &str, #[case] expected: Vec<String>) {
    assert_eq!(ask(name, "TXT"), expected.join("\n"));
}

#[test]
fn ns_at_the_apex_names_the_dns_service() {
    assert_eq!(
        ask("cluster.local.", "NS"),
        with_additional(
            answer(&["cluster.local. 30 IN NS kube-dns.kube-system.svc.cluster.local."]),
            &["kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10"],
        )
        .join("\n")
    );
    assert_eq!(
        ask("Cluster.Local.", "NS").lines().nth(2),
        Some("Cluster.Local. 30 IN NS kube-dns.kube-system.svc.Cluster.Local.")
    );
}

#[test]
fn ns_without_a_dns_service_is_the_server_itself() {
    let table = RecordTable::new(&ClusterDns {
        server_ips: vec![ip("127.0.0.1")],
        ..ClusterDns::default()
    });
    assert_eq!(
        table.lookup("cluster.local", RecordType::Ns).to_string(),
        with_additional(
            answer(&["cluster.local. 30 IN NS ns.dns.cluster.local."]),
            &["ns.dns.cluster.local. 30 IN A 127.0.0.1"],
        )
        .join("\n")
    );
    assert_eq!(
        table
            .lookup("ns.dns.cluster.local", RecordType::A)
            .to_string(),
        answer(&["ns.dns.cluster.local. 30 IN A 127.0.0.1"]).join("\n")
    );
    // No addresses at all: nothing to name.
    let empty = RecordTable::new(&ClusterDns::default());
    assert!(empty.lookup("cluster.local", RecordType::Ns).is_nodata());
}

#[rstest]
#[case::outside_every_zone("example.com.", RecordType::A)]
#[case::root(".", RecordType::Ns)]
#[case::suffix_but_not_subdomain("xcluster.local.", RecordType::A)]
#[case::zone_transfer("cluster.local.", RecordType::Axfr)]
#[case::incremental_zone_transfer("cluster.local.", RecordType::Ixfr)]
fn refused(#[case] name: &str, #[case] qtype: RecordType) {
    let got = table().lookup(name, qtype);
    assert_eq!(got.rcode, Rcode::Refused);
    assert!(!got.authoritative);
    assert!(got.answers.is_empty() && got.authority.is_empty() && got.additional.is_empty());
}

#[test]
fn endpoint_hostname_needs_subdomain_equal_to_the_service() {
    let mut dns = cluster();
    // web-0's subdomain is `web`: under another Service it is only its dashed address.
    let mut other = ep("10.244.1.10", true, vec![]);
    other.pod = Some("web-0".into());
    dns.services
        .push(svc("default", "other", None, vec![], vec![other]));
    let table = RecordTable::new(&dns);
    assert_eq!(
        table
            .lookup("web-0.other.default.svc.cluster.local", RecordType::A)
            .rcode,
        Rcode::NxDomain
    );
    assert_eq!(
        table
            .lookup("10-244-1-10.other.default.svc.cluster.local", RecordType::A)
            .answers
            .len(),
        1
    );
}

#[rstest]
#[case("A", RecordType::A)]
#[case("aaaa", RecordType::Aaaa)]
#[case("Srv", RecordType::Srv)]
#[case("TYPE13", RecordType::Other(13))]
#[case("TYPE33", RecordType::Srv)]
fn record_types_parse(#[case] text: &str, #[case] t: RecordType) {
    assert_eq!(text.parse::<RecordType>().unwrap(), t);
    assert_eq!(RecordType::from(u16::from(t)), t);
}

#[test]
fn labels_split_at_unescaped_dots() {
    assert_eq!(split_labels("a.b\\.c.d."), vec!["a", "b\\.c", "d"]);
    assert_eq!(split_labels("."), Vec::<&str>::new());
    assert_eq!(split_labels("x"), vec!["x"]);
}

#[test]
fn zone_transfer_lists_the_zone() {
    let text: Vec<String> = table()
        .zone_transfer()
        .iter()
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(text.join("\n"));
}
