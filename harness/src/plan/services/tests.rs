use std::path::Path;

use rstest::rstest;

use super::*;
use crate::plan::testing::{assert_edits_stay_located, assert_one_error, ip, plan};
use crate::plan::{Expect, FlowService, Plan, ServiceVia, Target, load_str};

const FILE: &str = "cases/s.yaml";

/// Two nodes; b (node2) and c (node1, not ready) carry `app: web`.
const PODS: &str = "nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, labels: { app: web }, listen: [8080, { port: 53, protocol: udp, name: dns }] }
  - { name: c, node: node1, labels: { app: web }, ready: false, listen: [8080] }
";

fn cluster_ips(plan: &Plan) -> Vec<(String, Option<Ipv4Addr>)> {
    plan.services
        .iter()
        .map(|s| (s.name.clone(), s.cluster_ip))
        .collect()
}

fn port_endpoints(plan: &Plan, service: usize, port: usize) -> Vec<(Option<&str>, String, bool)> {
    plan.services[service].ports[port]
        .endpoints
        .iter()
        .map(|e| (e.pod.as_deref(), format!("{}:{}", e.ip, e.port), e.ready))
        .collect()
}

// --- allocation ----------------------------------------------------------------------

#[test]
fn cluster_ips_skip_the_first_host_dot_ten_and_fixed_ones() {
    let services: String = (1..=10)
        .map(|i| match i {
            3 => "  - { name: s3, clusterIP: 10.96.0.3, ports: [{ port: 80 }] }\n".to_owned(),
            5 => "  - { name: s5, clusterIP: None }\n".to_owned(),
            7 => "  - { name: s7, clusterIP: 10.96.0.10, ports: [{ port: 53 }] }\n".to_owned(),
            _ => format!("  - {{ name: s{i}, ports: [{{ port: 80 }}] }}\n"),
        })
        .collect();
    let plan = plan(FILE, &format!("nodes: [node1]\nservices:\n{services}"));
    let got: Vec<String> = cluster_ips(&plan)
        .into_iter()
        .map(|(name, ip)| {
            format!(
                "{name}={}",
                ip.map_or("None".to_owned(), |ip| ip.to_string())
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "s1=10.96.0.2",
            "s2=10.96.0.4",
            "s3=10.96.0.3",
            "s4=10.96.0.5",
            "s5=None",
            "s6=10.96.0.6",
            "s7=10.96.0.10",
            "s8=10.96.0.7",
            "s9=10.96.0.8",
            "s10=10.96.0.9",
            "kubernetes=10.96.0.1",
        ]
    );
    assert_eq!(plan.service_cidr, "10.96.0.0/12".parse().unwrap());
}

#[test]
fn cluster_ips_go_past_dot_ten_and_follow_the_service_cidr() {
    let services: String = (1..=10)
        .map(|i| format!("  - {{ name: s{i}, ports: [{{ port: 80 }}] }}\n"))
        .collect();
    let plan = plan(
        FILE,
        &format!("cluster: {{ serviceCIDR: 10.32.0.0/24 }}\nnodes: [node1]\nservices:\n{services}"),
    );
    let ips: Vec<Ipv4Addr> = plan.services.iter().filter_map(|s| s.cluster_ip).collect();
    assert_eq!(ips[0], ip("10.32.0.2"));
    assert_eq!(ips[7], ip("10.32.0.9"));
    assert_eq!(ips[8], ip("10.32.0.11"));
    assert_eq!(ips[9], ip("10.32.0.12"));
    assert_eq!(plan.proxy[0].service_cidr, "10.32.0.0/24".parse().unwrap());
}

#[test]
fn the_smallest_service_cidr_holds_one_service() {
    let plan = plan(
        FILE,
        "cluster: { serviceCIDR: 10.96.0.0/30 }\nnodes: [node1]\nservices: [{ name: s, ports: [{ port: 80 }] }]\n",
    );
    assert_eq!(plan.services[0].cluster_ip, Some(ip("10.96.0.2")));
}

#[test]
fn node_ports_count_from_30000_skip_fixed_ones_and_are_shared_by_port_number() {
    let plan = plan(
            FILE,
            "nodes: [node1]
services:
  - { name: a, type: NodePort, ports: [{ port: 80 }] }
  - { name: b, type: NodePort, ports: [{ port: 80, nodePort: 30001 }] }
  - name: dns
    type: NodePort
    ports:
      - { name: udp, port: 53, protocol: UDP }
      - { name: tcp, port: 53, protocol: TCP, nodePort: 30002 }
      - { name: metrics, port: 9153 }
  - { name: c, ports: [{ port: 80 }] }
  - { name: d, type: NodePort, ports: [{ name: x, port: 80 }, { name: y, port: 80, protocol: UDP }] }
",
        );
    let node_ports: Vec<(String, Option<u16>)> = plan
        .services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(move |p| (format!("{}/{}", s.name, p.label()), p.node_port))
        })
        .collect();
    let expected: Vec<(String, Option<u16>)> = [
        ("a/80/TCP", Some(30000)),
        ("b/80/TCP", Some(30001)),
        ("dns/udp 53/UDP", Some(30002)),
        ("dns/tcp 53/TCP", Some(30002)),
        ("dns/metrics 9153/TCP", Some(30003)),
        ("c/80/TCP", None),
        ("d/x 80/TCP", Some(30004)),
        ("d/y 80/UDP", Some(30004)),
        ("kubernetes/https 443/TCP", None),
    ]
    .into_iter()
    .map(|(name, port)| (name.to_owned(), port))
    .collect();
    assert_eq!(node_ports, expected);
}

// --- endpoints -----------------------------------------------------------------------

#[test]
fn selectors_pick_ready_and_not_ready_pods_of_their_namespace_with_every_label() {
    let plan = plan(
        FILE,
        "nodes: [node1, node2]
pods:
  - { name: a, node: node1, labels: { app: web, tier: front } }
  - { name: b, node: node2, labels: { app: web } }
  - { name: c, node: node1, labels: { app: web, tier: front }, ready: false }
  - { name: d, node: node2, namespace: shop, labels: { app: web, tier: front } }
  - { name: e, node: node2, labels: { app: api, tier: front } }
services:
  - { name: web, selector: { app: web, tier: front }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: web, namespace: shop, selector: { app: web }, ports: [{ port: 80 }] }
  - { name: all, selector: { app: web }, ports: [{ port: 80 }] }
",
    );
    assert_eq!(
        port_endpoints(&plan, 0, 0),
        [
            (Some("a"), "10.244.1.2:8080".to_owned(), true),
            (Some("c"), "10.244.1.3:8080".to_owned(), false),
        ]
    );
    assert_eq!(
        port_endpoints(&plan, 1, 0),
        [(Some("d"), "10.244.2.3:80".to_owned(), true)]
    );
    let all: Vec<&str> = plan.services[2]
        .endpoints
        .iter()
        .filter_map(|e| e.pod.as_deref())
        .collect();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(
        plan.services[0].endpoints[1],
        ServiceEndpoint {
            pod: Some("c".into()),
            ip: ip("10.244.1.3"),
            node: Some("node1".into()),
            ready: false,
        }
    );
}

#[test]
fn named_target_ports_resolve_per_pod_and_protocol_and_skip_pods_without_them() {
    let plan = plan(
            FILE,
            "nodes: [node1]
pods:
  - { name: a, node: node1, labels: { app: web }, listen: [{ port: 8080, name: http }, { port: 53, protocol: udp, name: dns }] }
  - { name: b, node: node1, labels: { app: web }, listen: [{ port: 9090, protocol: tcp, name: http }, 8080] }
  - { name: c, node: node1, labels: { app: web }, listen: [8080, { port: 53, protocol: tcp, name: dns }] }
services:
  - name: web
    selector: { app: web }
    ports:
      - { name: http, port: 80, targetPort: http }
      - { name: dns, port: 53, protocol: UDP, targetPort: dns }
      - { name: plain, port: 81, targetPort: 8080 }
",
        );
    assert_eq!(
        port_endpoints(&plan, 0, 0),
        [
            (Some("a"), "10.244.1.2:8080".to_owned(), true),
            (Some("b"), "10.244.1.3:9090".to_owned(), true),
        ]
    );
    // c names 53/tcp `dns`, but the Service port is UDP.
    assert_eq!(
        port_endpoints(&plan, 0, 1),
        [(Some("a"), "10.244.1.2:53".to_owned(), true)]
    );
    assert_eq!(port_endpoints(&plan, 0, 2).len(), 3);
    assert_eq!(plan.services[0].endpoints.len(), 3);
    assert_eq!(
        plan.services[0].ports[0].target_port,
        TargetPort::Name("http".into())
    );
}

#[test]
fn services_without_selector_use_the_listed_endpoints() {
    let plan = plan(FILE, &format!(
            "{PODS}services:
  - {{ name: ext, endpoints: [b, c, {{ ip: 192.0.2.10, node: node1 }}], ports: [{{ port: 80, targetPort: 8080 }}] }}
  - {{ name: one, endpoints: [{{ ip: 192.0.2.10, port: 9000 }}], ports: [{{ port: 80 }}] }}
  - {{ name: named, endpoints: [b, c], ports: [{{ port: 53, protocol: UDP, targetPort: dns }}] }}
  - {{ name: none, ports: [{{ port: 80 }}] }}
"
        ));
    let ext = &plan.services[0];
    assert_eq!(ext.selector, None);
    assert_eq!(
        ext.endpoints[2],
        ServiceEndpoint {
            pod: None,
            ip: ip("192.0.2.10"),
            node: Some("node1".into()),
            ready: true,
        }
    );
    assert_eq!(ext.endpoints.len(), 3);
    assert_eq!(
        port_endpoints(&plan, 0, 0),
        [
            (Some("b"), "10.244.2.2:8080".to_owned(), true),
            (Some("c"), "10.244.1.3:8080".to_owned(), false),
            (None, "192.0.2.10:8080".to_owned(), true),
        ]
    );
    assert_eq!(
        port_endpoints(&plan, 1, 0),
        [(None, "192.0.2.10:9000".to_owned(), true)]
    );
    assert_eq!(
        port_endpoints(&plan, 2, 0),
        [(Some("b"), "10.244.2.2:53".to_owned(), true)]
    );
    assert!(plan.services[3].ports[0].endpoints.is_empty());
}

#[test]
fn an_address_endpoint_of_a_pod_is_that_pod() {
    let plan = plan(
        FILE,
        &format!(
            "{PODS}services: [{{ name: ext, endpoints: [{{ ip: 10.244.1.3 }}], ports: [{{ port: 80 }}] }}]\n"
        ),
    );
    assert_eq!(
        plan.services[0].endpoints[0],
        ServiceEndpoint {
            pod: Some("c".into()),
            ip: ip("10.244.1.3"),
            node: Some("node1".into()),
            ready: false,
        }
    );
}

#[test]
fn service_settings_are_kept() {
    let plan = plan(FILE, &format!(
            "{PODS}services:
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    externalTrafficPolicy: Local
    internalTrafficPolicy: Local
    ports: [{{ port: 80, targetPort: 8080, nodePort: 31000 }}]
  - {{ name: short, sessionAffinity: ClientIP, sessionAffinityTimeout: 60, ports: [{{ port: 80 }}] }}
  - {{ name: plain, sessionAffinity: None, internalTrafficPolicy: Cluster, ports: [{{ port: 80 }}] }}
"
        ));
    let web = &plan.services[0];
    assert_eq!(web.service_type, ServiceType::NodePort);
    assert_eq!(web.session_affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
    assert_eq!(web.external_traffic_policy, TrafficPolicy::Local);
    assert_eq!(web.internal_traffic_policy, TrafficPolicy::Local);
    assert_eq!(web.ports[0].node_port, Some(31000));
    assert_eq!(web.location, Location { line: 7, column: 5 });
    assert_eq!(plan.services[1].session_affinity, Some(60));
    assert_eq!(plan.services[2].session_affinity, None);
    assert_eq!(plan.services[2].service_type, ServiceType::ClusterIp);
    assert_eq!(
        plan.services[2].internal_traffic_policy,
        TrafficPolicy::Cluster
    );
}

// --- service tables ------------------------------------------------------------------

#[test]
fn every_node_gets_a_service_table_with_one_service_port_per_port() {
    let plan = plan(
        FILE,
        &format!(
            "{PODS}services:
  - {{ name: hl, clusterIP: None, selector: {{ app: web }}, ports: [{{ port: 80 }}] }}
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    internalTrafficPolicy: Local
    ports:
      - {{ name: http, port: 80, targetPort: 8080 }}
      - {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}
"
        ),
    );
    assert_eq!(plan.proxy.len(), 2);
    let ep = |ip: &str, port: u16, node: &str, ready: bool| Endpoint {
        ip: ip.parse().unwrap(),
        port,
        node_name: Some(node.to_owned()),
        ready,
        serving: ready,
        terminating: false,
    };
    let http = ServicePort {
        namespace: "default".into(),
        name: "web".into(),
        port_name: "http".into(),
        protocol: Proto::Tcp,
        cluster_ip: Some(ip("10.96.0.2")),
        port: 80,
        node_port: Some(30000),
        affinity_timeout: Some(10800),
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Local,
        endpoints: vec![
            ep("10.244.2.2", 8080, "node2", true),
            ep("10.244.1.3", 8080, "node1", false),
        ],
    };
    let dns = ServicePort {
        port_name: "dns".into(),
        protocol: Proto::Udp,
        port: 53,
        node_port: Some(30001),
        endpoints: vec![ep("10.244.2.2", 53, "node2", true)],
        ..http.clone()
    };
    // The API's default/kubernetes comes last in every table; the case's Services before it.
    let mut plan = plan;
    for table in &mut plan.proxy {
        let api = table.services.pop().unwrap();
        assert_eq!(
            (api.name.as_str(), api.cluster_ip, api.port),
            ("kubernetes", Some(ip("10.96.0.1")), 443)
        );
    }
    assert_eq!(
        plan.proxy[0],
        ServiceTable {
            node_name: "node1".into(),
            node_ips: vec![ip("172.18.0.2")],
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            services: vec![http.clone(), dns.clone()],
        }
    );
    assert_eq!(plan.proxy[1].node_name, "node2");
    assert_eq!(plan.proxy[1].node_ips, [ip("172.18.0.3")]);
    assert_eq!(plan.proxy[1].services, [http.clone(), dns]);
    assert_eq!(http.port_name_string(), "default/web:http");
}

#[test]
fn an_unnamed_port_has_an_empty_port_name_and_a_case_without_services_empty_tables() {
    let plan = plan(
        FILE,
        &format!(
            "{PODS}services: [{{ name: web, selector: {{ app: web }}, ports: [{{ port: 80 }}] }}]\n"
        ),
    );
    assert_eq!(plan.proxy[0].services[0].port_name, "");
    // kube-proxy's ServicePortName of an unnamed port has no colon.
    assert_eq!(plan.proxy[0].services[0].port_name_string(), "default/web");
    let plan = super::super::load_str(Path::new(FILE), PODS).unwrap();
    assert_eq!(plan.proxy.len(), 2);
    assert!(plan.proxy.iter().all(|t| t.services.is_empty()));
    assert!(plan.services.is_empty());
}

// --- flows ---------------------------------------------------------------------------

#[test]
fn flows_to_services_resolve_to_cluster_ips_and_node_ports() {
    let plan = plan(FILE, &format!(
            "{PODS}  - {{ name: d, node: node2, namespace: shop, labels: {{ app: web }}, listen: [8080] }}
services:
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    ports:
      - {{ name: http, port: 80, targetPort: 8080 }}
      - {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}
  - {{ name: web, namespace: shop, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}
flows:
  - {{ name: by-name, from: a, to: svc/web:80, expect: {{ reach: b }} }}
  - {{ name: other-ns, from: a, to: svc/shop/web:80, expect: {{ reach: d, seenSource: a }} }}
  - {{ name: in-own-ns, from: d, to: svc/web:80, expect: {{ reach: d }} }}
  - {{ name: by-ip, from: a, to: 10.96.0.2:53, attempts: 3, expect: {{ reach: b, sticky: true }} }}
  - {{ name: node-port, from: a, to: node2:30000, attempts: 2, expect: {{ reach: [b], seenSource: node1 }} }}
  - {{ name: node-port-udp, from: a, to: 172.18.0.2:30001, expect: {{ reach: b }} }}
  - {{ name: other-port, from: a, to: 10.96.0.2:81, expect: {{ fail: timeout }} }}
  - {{ name: ping, from: a, to: node2, expect: {{ fail: timeout }} }}
"
        ));
    let flows = &plan.flows;
    let svc = |service: usize, port: usize, ns: &str, via: ServiceVia| {
        Some(FlowService {
            service,
            port,
            namespace: ns.into(),
            name: "web".into(),
            via,
        })
    };
    let node2 = ServiceVia::NodePort {
        node: "node2".into(),
    };
    assert_eq!(
        flows[0].target,
        Target::Tcp("10.96.0.2:80".parse().unwrap())
    );
    assert_eq!(flows[0].target_label, "svc/web:80");
    assert_eq!(
        flows[0].service,
        svc(0, 0, "default", ServiceVia::ClusterIp)
    );
    assert_eq!((flows[0].attempts, flows[0].sticky), (1, false));
    assert_eq!(
        flows[1].target,
        Target::Tcp("10.96.0.3:80".parse().unwrap())
    );
    assert_eq!(flows[1].service, svc(1, 0, "shop", ServiceVia::ClusterIp));
    // `svc/web` is looked up in the namespace of `from`.
    assert_eq!(flows[2].service, svc(1, 0, "shop", ServiceVia::ClusterIp));
    // A UDP-only Service port makes the flow udp.
    assert_eq!(
        flows[3].target,
        Target::Udp("10.96.0.2:53".parse().unwrap())
    );
    assert_eq!(
        flows[3].service,
        svc(0, 1, "default", ServiceVia::ClusterIp)
    );
    assert_eq!((flows[3].attempts, flows[3].sticky), (3, true));
    assert!(!flows[3].each_reach_pod_answers());
    assert_eq!(
        flows[4].target,
        Target::Tcp("172.18.0.3:30000".parse().unwrap())
    );
    assert_eq!(flows[4].service, svc(0, 0, "default", node2));
    assert!(flows[4].each_reach_pod_answers());
    assert_eq!(
        flows[5].service,
        svc(
            0,
            1,
            "default",
            ServiceVia::NodePort {
                node: "node1".into()
            }
        )
    );
    assert_eq!(
        flows[5].target,
        Target::Udp("172.18.0.2:30001".parse().unwrap())
    );
    assert_eq!(flows[6].service, None);
    assert_eq!(
        flows[6].target,
        Target::Tcp("10.96.0.2:81".parse().unwrap())
    );
    assert_eq!(flows[7].target, Target::Icmp(ip("172.18.0.3")));
    assert_eq!(flows[7].service, None);
    assert_eq!(
        flows[7].expect,
        Expect::Fail(crate::plan::FailKind::Timeout)
    );
}

#[test]
fn the_plan_renders_services_and_flows_to_them() {
    let plan = plan(FILE, &format!(
            "{PODS}services:
  - {{ name: web, type: NodePort, selector: {{ app: web }}, sessionAffinity: ClientIP, ports: [{{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }}, {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}] }}
  - {{ name: ext, internalTrafficPolicy: Local, endpoints: [{{ ip: 192.0.2.1, port: 9000 }}], ports: [{{ port: 80 }}] }}
  - {{ name: hl, clusterIP: None, selector: {{ app: web }} }}
  - {{ name: empty, selector: {{ app: none }}, ports: [{{ port: 80 }}] }}
flows:
  - {{ name: f, from: a, to: svc/web:80, attempts: 4, expect: {{ reach: b }} }}
  - {{ name: g, from: a, to: node1:30080, attempts: 3, expect: {{ reach: b, sticky: true }} }}
"
        ));
    let text = plan.to_string();
    let services = &text[text.find("service default/web").unwrap()..];
    assert_eq!(
            services,
            "service default/web NodePort 10.96.0.2 (line 7)
  selector   app=web
  affinity   ClientIP 10800s
  policy     external Cluster, internal Cluster
  port       http 80/TCP nodePort 30080 -> targetPort 8080
    endpoint 10.244.2.2:8080 b on node2
    endpoint 10.244.1.3:8080 c on node1 (not ready)
  port       dns 53/UDP nodePort 30000 -> targetPort dns
    endpoint 10.244.2.2:53 b on node2
service default/ext ClusterIP 10.96.0.3 (line 8)
  selector   none (endpoints listed)
  policy     internal Local
  port       80/TCP -> targetPort 80
    endpoint 192.0.2.1:9000
service default/hl ClusterIP None (headless) (line 9)
  selector   app=web
  endpoint   10.244.2.2 b on node2
  endpoint   10.244.1.3 c on node1 (not ready)
service default/empty ClusterIP 10.96.0.4 (line 10)
  selector   app=none
  port       80/TCP -> targetPort 80
    no endpoints
service default/kubernetes ClusterIP 10.96.0.1 (the served API's, declared by podpath)
  selector   none (endpoints listed)
  port       https 443/TCP -> targetPort 6443
    endpoint 172.18.255.254:6443
flow f (line 12): a -> tcp 10.96.0.2:80 (Service default/web port http 80/TCP), timeout 2s, 4 attempts
  expect reach b, each of them at least once
flow g (line 13): a -> tcp 172.18.0.2:30080 (node1's NodePort to Service default/web port http 80/TCP), timeout 2s, 3 attempts
  expect reach b, every attempt answered by the same pod
"
        );
}

/// Deterministic mutations of a valid case with Services must never panic, and whatever
/// they break must be reported with a location.
#[test]
fn mutated_service_cases_never_panic() {
    let valid = "cluster: { serviceCIDR: 10.96.0.0/24 }
nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, labels: { app: web }, listen: [{ port: 8080, name: http }, { port: 53, protocol: udp, name: dns }] }
  - { name: c, node: node1, labels: { app: web }, ready: false, listen: [{ port: 8080, name: http }] }
services:
  - name: web
    type: NodePort
    selector: { app: web }
    sessionAffinity: ClientIP
    sessionAffinityTimeout: 30
    externalTrafficPolicy: Local
    ports: [{ name: http, port: 80, targetPort: http, nodePort: 30080 }, { name: dns, port: 53, protocol: UDP, targetPort: dns }]
  - { name: ext, clusterIP: 10.96.0.50, endpoints: [b, { ip: 192.0.2.1, port: 8080, node: node1 }], ports: [{ port: 80 }] }
  - { name: hl, clusterIP: None, selector: { app: web } }
flows:
  - { name: f, from: a, to: svc/web:80, attempts: 3, expect: { reach: c } }
  - { name: g, from: a, to: node2:30080, attempts: 2, expect: { reach: b, sticky: true } }
  - { name: h, from: a, to: svc/default/ext:80, protocol: tcp, expect: { fail: refused } }
";
    // c is not ready: the first flow is an error, the rest plans.
    assert!(load_str(Path::new(FILE), valid).is_err());
    let valid = valid.replace("reach: c", "reach: [b]");
    plan(FILE, &valid);
    let pieces = [
        ":", "{", "}", "[", "]", "-", ",", "\n", " ", "0", "99999", "a", "~", "/", ".", "svc/",
        "None", "NodePort", "UDP", "b", "node1", "30080", "http",
    ];
    assert_edits_stay_located(&valid, &pieces, 0x05e4_1ce5, 3000);
}

#[test]
fn the_example_of_the_case_format_plans() {
    let doc = include_str!("../../../../docs/case-format.md");
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let plan = plan(FILE, &doc[start..end]);
    assert_eq!(
        plan.services.len(),
        3,
        "two Services and default/kubernetes"
    );
    assert_eq!(plan.services[1].ports[0].node_port, Some(30000));
    assert_eq!(plan.services[1].ports[0].endpoints[0].port, 8443);
    let node_port = plan.flows.iter().find(|f| f.name == "node-port").unwrap();
    assert_eq!(
        node_port.target,
        Target::Tcp("172.18.0.20:30000".parse().unwrap())
    );
    let from_outside = plan
        .flows
        .iter()
        .find(|f| f.name == "from-outside")
        .unwrap();
    assert_eq!(from_outside.from, "external");
    assert_eq!(from_outside.service, node_port.service);
    let to_outside = plan.flows.iter().find(|f| f.name == "to-outside").unwrap();
    assert_eq!(
        to_outside.target,
        Target::Tcp("172.18.0.1:8080".parse().unwrap())
    );
}

#[test]
fn every_service_error_of_a_file_is_reported_in_file_order() {
    let yaml = format!(
            "{PODS}services:
  - {{ name: web, type: NodePort, clusterIP: 10.200.0.1, ports: [{{ port: 80, protocol: tcp, nodePort: 99 }}] }}
  - {{ name: Api, selector: {{}}, ports: [{{ port: 0 }}] }}
flows:
  - {{ name: f, from: a, to: svc/nope:80, attempts: 0, expect: {{ reach: b, sticky: true }} }}
"
        );
    let err = load_str(Path::new(FILE), &yaml).unwrap_err();
    let got: Vec<String> = err
        .diagnostics()
        .iter()
        .map(|d| {
            let at = d.location.unwrap();
            format!("{}:{}", at.line, at.column)
        })
        .collect();
    assert_eq!(
        got,
        [
            "7:45", "7:87", "7:102", "8:13", "8:28", "8:48", "10:29", "10:52"
        ],
        "{err}"
    );
}

// --- validation ----------------------------------------------------------------------

/// One mistake, one diagnostic, at the offending value. `cluster` (when given) goes in
/// `cluster: { .. }` on line 1, followed by [`PODS`] and `rest` from line 7; without it,
/// `rest` is the whole case.
#[rstest]
#[case::service_cidr_syntax(
    Some("serviceCIDR: 10.96.0.0/33"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    25,
    "serviceCIDR `10.96.0.0/33` is not an IPv4 CIDR"
)]
#[case::service_cidr_too_large(
    Some("serviceCIDR: 10.0.0.0/8"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    25,
    "serviceCIDR 10.0.0.0/8 is too large: Kubernetes accepts at most a /12"
)]
#[case::service_cidr_too_small(
    Some("serviceCIDR: 10.96.0.0/31"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    25,
    "serviceCIDR 10.96.0.0/31 is too small"
)]
#[case::service_cidr_overlaps_pod_cidr(
    Some("serviceCIDR: 10.244.0.0/20"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    25,
    "serviceCIDR 10.244.0.0/20 overlaps podCIDR 10.244.0.0/16"
)]
#[case::service_cidr_overlaps_node_cidr(
    Some("serviceCIDR: 172.18.0.0/24"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    25,
    "serviceCIDR 172.18.0.0/24 overlaps nodeCIDR 172.18.0.0/16"
)]
#[case::default_service_cidr_overlaps_pod_cidr(
    Some("podCIDR: 10.100.0.0/16"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
    1,
    21,
    "the default serviceCIDR 10.96.0.0/12 overlaps podCIDR 10.100.0.0/16: set serviceCIDR"
)]
#[case::service_name_invalid(
    Some(""),
    "services:\n  - { name: Web, selector: { app: web }, ports: [{ port: 80 }] }\n",
    8,
    13,
    "Service name `Web` is not a DNS-1123 label"
)]
#[case::service_name_starts_with_digit(
    Some(""),
    "services:\n  - { name: 1web, selector: { app: web }, ports: [{ port: 80 }] }\n",
    8,
    13,
    "Service name `1web` is not a DNS-1035 label"
)]
#[case::service_without_name(
    Some(""),
    "services:\n  - { selector: { app: web }, ports: [{ port: 80 }] }\n",
    8,
    5,
    "Service has no `name`"
)]
#[case::service_duplicate(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n  - { name: web, ports: [{ port: 81 }] }\n",
    9,
    13,
    "duplicate Service default/web, first declared at 8:13"
)]
#[case::service_namespace_invalid(
    Some(""),
    "services:\n  - { name: web, namespace: Shop, ports: [{ port: 80 }] }\n",
    8,
    29,
    "namespace `Shop` is not a DNS-1123 label"
)]
#[case::service_type_unknown(
    Some(""),
    "services:\n  - { name: web, type: LoadBalancer, ports: [{ port: 80 }] }\n",
    8,
    24,
    "unknown Service type `LoadBalancer` (not supported by podpath): expected ClusterIP or NodePort"
)]
#[case::cluster_ip_not_an_address(
    Some(""),
    "services:\n  - { name: web, clusterIP: none, ports: [{ port: 80 }] }\n",
    8,
    29,
    "clusterIP `none` is not an IPv4 address or None"
)]
#[case::cluster_ip_outside(
    Some(""),
    "services:\n  - { name: web, clusterIP: 10.200.0.5, ports: [{ port: 80 }] }\n",
    8,
    29,
    "clusterIP 10.200.0.5 is outside serviceCIDR 10.96.0.0/12"
)]
#[case::cluster_ip_network(
    Some(""),
    "services:\n  - { name: web, clusterIP: 10.96.0.0, ports: [{ port: 80 }] }\n",
    8,
    29,
    "clusterIP 10.96.0.0 is the network address of serviceCIDR 10.96.0.0/12"
)]
#[case::cluster_ip_broadcast(
    Some(""),
    "services:\n  - { name: web, clusterIP: 10.111.255.255, ports: [{ port: 80 }] }\n",
    8,
    29,
    "clusterIP 10.111.255.255 is the broadcast address of serviceCIDR"
)]
#[case::cluster_ip_duplicate(
    Some(""),
    "services:\n  - { name: web, clusterIP: 10.96.0.20, ports: [{ port: 80 }] }\n  - { name: api, clusterIP: 10.96.0.20, ports: [{ port: 80 }] }\n",
    9,
    29,
    "duplicate clusterIP 10.96.0.20: Service default/web has it too"
)]
#[case::cluster_ips_exhausted(
    Some("serviceCIDR: 10.96.0.0/30"),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n  - { name: api, ports: [{ port: 80 }] }\n",
    9,
    5,
    "serviceCIDR 10.96.0.0/30 has no address left for Service default/api"
)]
#[case::headless_node_port(
    Some(""),
    "services:\n  - { name: web, type: NodePort, clusterIP: None, ports: [{ port: 80 }] }\n",
    8,
    45,
    "clusterIP may not be None for a NodePort Service"
)]
#[case::headless_with_node_port(
    Some(""),
    "services:\n  - { name: web, clusterIP: None, ports: [{ port: 80, nodePort: 30080 }] }\n",
    8,
    65,
    "nodePort is only for type NodePort (this Service is ClusterIP)"
)]
#[case::selector_empty(
    Some(""),
    "services:\n  - { name: web, selector: {}, ports: [{ port: 80 }] }\n",
    8,
    28,
    "`selector` is empty"
)]
#[case::selector_and_endpoints(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, endpoints: [b], ports: [{ port: 80 }] }\n",
    8,
    53,
    "`endpoints` is for Services without a `selector`"
)]
#[case::ports_missing(
    Some(""),
    "services:\n  - { name: web, selector: { app: web } }\n",
    8,
    5,
    "a Service needs at least one port in `ports`"
)]
#[case::ports_empty(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [] }\n",
    8,
    49,
    "a Service needs at least one port in `ports`"
)]
#[case::port_name_missing(
    Some(""),
    "services:\n  - { name: web, ports: [{ name: http, port: 80 }, { port: 81 }] }\n",
    8,
    52,
    "port has no `name`: every port of a Service with several ports needs one"
)]
#[case::port_name_duplicate(
    Some(""),
    "services:\n  - { name: web, ports: [{ name: http, port: 80 }, { name: http, port: 81 }] }\n",
    8,
    60,
    "duplicate port name `http`, first declared at 8:34"
)]
#[case::port_name_invalid(
    Some(""),
    "services:\n  - { name: web, ports: [{ name: Http, port: 80 }] }\n",
    8,
    34,
    "port name `Http` is not a DNS-1123 label"
)]
#[case::port_protocol_lowercase(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 80, protocol: tcp }] }\n",
    8,
    48,
    "unknown protocol `tcp`: expected TCP or UDP (Kubernetes spells protocols in capitals)"
)]
#[case::port_protocol_unknown(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 80, protocol: SCTP }] }\n",
    8,
    48,
    "unknown protocol `SCTP`: expected TCP or UDP"
)]
#[case::port_missing(
    Some(""),
    "services:\n  - { name: web, ports: [{ targetPort: 8080 }] }\n",
    8,
    26,
    "port has no `port`"
)]
#[case::port_out_of_range(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 65536 }] }\n",
    8,
    34,
    "port `65536` is out of range 1..=65535"
)]
#[case::port_duplicate(
    Some(""),
    "services:\n  - { name: web, ports: [{ name: a, port: 80 }, { name: b, port: 80, protocol: TCP }] }\n",
    8,
    66,
    "duplicate port 80/TCP, first declared at 8:43"
)]
#[case::target_port_invalid_name(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 80, targetPort: web_http }] }\n",
    8,
    50,
    "targetPort `web_http` is not a port number, and is not a port name"
)]
#[case::target_port_zero(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 80, targetPort: 0 }] }\n",
    8,
    50,
    "targetPort `0` is out of range 1..=65535"
)]
#[case::node_port_on_cluster_ip(
    Some(""),
    "services:\n  - { name: web, ports: [{ port: 80, nodePort: 30080 }] }\n",
    8,
    48,
    "nodePort is only for type NodePort (this Service is ClusterIP)"
)]
#[case::node_port_out_of_range(
    Some(""),
    "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: 8080 }] }\n",
    8,
    64,
    "nodePort 8080 is out of range 30000-32767"
)]
#[case::node_port_not_a_number(
    Some(""),
    "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: high }] }\n",
    8,
    64,
    "nodePort `high` is not a whole number"
)]
#[case::node_port_duplicate_in_service(
    Some(""),
    "services:\n  - { name: web, type: NodePort, ports: [{ name: a, port: 80, nodePort: 30080 }, { name: b, port: 81, nodePort: 30080 }] }\n",
    8,
    113,
    "duplicate nodePort 30080/TCP, first declared at 8:73"
)]
#[case::node_port_taken(
    Some(""),
    "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: 30080 }] }\n  - { name: api, type: NodePort, ports: [{ port: 80, nodePort: 30080 }] }\n",
    9,
    64,
    "nodePort 30080 is already allocated to Service default/web"
)]
#[case::session_affinity_unknown(
    Some(""),
    "services:\n  - { name: web, sessionAffinity: Cookie, ports: [{ port: 80 }] }\n",
    8,
    35,
    "unknown sessionAffinity `Cookie`: expected None or ClientIP"
)]
#[case::session_affinity_timeout_without_client_ip(
    Some(""),
    "services:\n  - { name: web, sessionAffinityTimeout: 60, ports: [{ port: 80 }] }\n",
    8,
    42,
    "`sessionAffinityTimeout` goes with `sessionAffinity: ClientIP`"
)]
#[case::session_affinity_timeout_zero(
    Some(""),
    "services:\n  - { name: web, sessionAffinity: ClientIP, sessionAffinityTimeout: 0, ports: [{ port: 80 }] }\n",
    8,
    69,
    "sessionAffinityTimeout 0 is out of range 1..=86400"
)]
#[case::session_affinity_timeout_too_long(
    Some(""),
    "services:\n  - { name: web, sessionAffinity: ClientIP, sessionAffinityTimeout: 86401, ports: [{ port: 80 }] }\n",
    8,
    69,
    "sessionAffinityTimeout 86401 is out of range 1..=86400"
)]
#[case::external_policy_on_cluster_ip(
    Some(""),
    "services:\n  - { name: web, externalTrafficPolicy: Local, ports: [{ port: 80 }] }\n",
    8,
    41,
    "externalTrafficPolicy may only be set for externally-accessible Services"
)]
#[case::external_policy_unknown(
    Some(""),
    "services:\n  - { name: web, type: NodePort, externalTrafficPolicy: Global, ports: [{ port: 80 }] }\n",
    8,
    57,
    "unknown externalTrafficPolicy `Global`: expected Cluster or Local"
)]
#[case::internal_policy_unknown(
    Some(""),
    "services:\n  - { name: web, internalTrafficPolicy: local, ports: [{ port: 80 }] }\n",
    8,
    41,
    "unknown internalTrafficPolicy `local`: expected Cluster or Local"
)]
#[case::endpoint_unknown_pod(
    Some(""),
    "services:\n  - { name: web, endpoints: [b, zz], ports: [{ port: 80 }] }\n",
    8,
    33,
    "unknown pod `zz` in `endpoints` (pods: a, b, c)"
)]
#[case::endpoint_without_ip(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ port: 80 }], ports: [{ port: 80 }] }\n",
    8,
    30,
    "endpoint has no `ip`"
)]
#[case::endpoint_ip_syntax(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.300 }], ports: [{ port: 80 }] }\n",
    8,
    36,
    "endpoint ip `192.0.2.300` is not an IPv4 address"
)]
#[case::endpoint_ip_loopback(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 127.0.0.1 }], ports: [{ port: 80 }] }\n",
    8,
    36,
    "endpoint ip 127.0.0.1 is in the loopback range"
)]
#[case::endpoint_ip_link_local(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 169.254.1.1 }], ports: [{ port: 80 }] }\n",
    8,
    36,
    "endpoint ip 169.254.1.1 is in the link-local range"
)]
#[case::endpoint_unknown_node(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, node: node9 }], ports: [{ port: 80 }] }\n",
    8,
    53,
    "unknown node `node9` (nodes: node1, node2)"
)]
#[case::endpoint_node_is_not_the_pods(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 10.244.2.2, node: node1 }], ports: [{ port: 80 }] }\n",
    8,
    54,
    "endpoint 10.244.2.2 is pod b's address, and it runs on node2, not node1"
)]
#[case::endpoint_port_with_several_ports(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, port: 8080 }], ports: [{ name: a, port: 80 }, { name: b, port: 81 }] }\n",
    8,
    53,
    "an endpoint `port` is only for a Service with one port"
)]
#[case::endpoint_port_out_of_range(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, port: 0 }], ports: [{ port: 80 }] }\n",
    8,
    53,
    "endpoint port `0` is out of range 1..=65535"
)]
#[case::endpoint_duplicate(
    Some(""),
    "services:\n  - { name: web, endpoints: [b, { ip: 10.244.2.2 }], ports: [{ port: 80 }] }\n",
    8,
    33,
    "duplicate endpoint 10.244.2.2, first listed at 8:30"
)]
#[case::endpoint_needs_port_for_named_target(
    Some(""),
    "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1 }], ports: [{ port: 80, targetPort: http }] }\n",
    8,
    30,
    "endpoint 192.0.2.1 needs a `port`: the targetPort of port 80/TCP is the name `http`, and only pods have named ports"
)]
#[case::flow_unknown_service(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/api:80, expect: { reach: b } }\n",
    10,
    29,
    "unknown Service `default/api` in `to` (Services: default/web, default/kubernetes)"
)]
#[case::the_api_service_name_is_taken(
    Some(""),
    "services:\n  - { name: kubernetes, selector: { app: web }, ports: [{ port: 80 }] }\n",
    8,
    13,
    "Service default/kubernetes is the API's, which podpath declares itself (its ClusterIP is the service CIDR's first host); name yours otherwise"
)]
#[case::the_api_cluster_ip_is_taken(
    Some(""),
    "services:\n  - { name: web, clusterIP: 10.96.0.1, ports: [{ port: 80 }] }\n",
    8,
    29,
    "clusterIP 10.96.0.1 is the kubernetes API Service's (default/kubernetes, the service CIDR's first host)"
)]
#[case::flow_unknown_service_namespace(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/shop/web:80, expect: { reach: b } }\n",
    10,
    29,
    "unknown Service `shop/web` in `to`"
)]
#[case::flow_service_without_port(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web, expect: { fail: timeout } }\n",
    10,
    29,
    "a flow to a Service needs a port: write svc/default/web:PORT"
)]
#[case::flow_service_unknown_port(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:81, expect: { fail: timeout } }\n",
    10,
    29,
    "Service default/web has no port 81/TCP (ports: 80/TCP); to send to a port it does not have, target its ClusterIP 10.96.0.2:81"
)]
#[case::flow_service_wrong_protocol(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, protocol: udp, expect: { fail: timeout } }\n",
    10,
    29,
    "Service default/web has no port 80/UDP"
)]
#[case::flow_headless_service(
    Some(""),
    "services:\n  - { name: web, clusterIP: None, selector: { app: web } }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
    10,
    29,
    "Service default/web is headless (clusterIP: None)"
)]
#[case::flow_reach_not_an_endpoint(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: [b, a] } }\n",
    10,
    62,
    "`reach` names a, which is not an endpoint of Service default/web port 80/TCP (ready endpoints: b)"
)]
#[case::flow_reach_not_ready(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: [b, c] } }\n",
    10,
    62,
    "`reach` names c, an endpoint of Service default/web port 80/TCP that is not ready: it gets no traffic"
)]
#[case::flow_reach_named_port_missing(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 53, protocol: UDP, targetPort: dns }] }\nflows:\n  - { name: f, from: a, to: 10.96.0.2:53, expect: { reach: c } }\n",
    10,
    60,
    "`reach` names c, which is not an endpoint of Service default/web port 53/UDP (ready endpoints: b)"
)]
#[case::flow_reach_internal_policy_local(
    Some(""),
    "services:\n  - { name: web, internalTrafficPolicy: Local, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
    10,
    58,
    "`reach` names b, which runs on node2, but default/web has internalTrafficPolicy Local: only its endpoints on node1 (the node of `from`) answer"
)]
#[case::flow_reach_not_listening_on_target_port(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 9090 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
    10,
    58,
    "b does not listen on 9090/tcp, its target port for Service default/web port 80/TCP, so it could never answer"
)]
#[case::flow_node_port_reach_not_an_endpoint(
    Some(""),
    "services:\n  - { name: web, type: NodePort, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: node2:30000, expect: { reach: a } }\n",
    10,
    59,
    "`reach` names a, which is not an endpoint of Service default/web port 80/TCP"
)]
#[case::flow_attempts_zero(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: 0, expect: { reach: b } }\n",
    10,
    51,
    "attempts 0 is out of range 1..=100"
)]
#[case::flow_attempts_too_many(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: 101, expect: { reach: b } }\n",
    10,
    51,
    "attempts 101 is out of range 1..=100"
)]
#[case::flow_attempts_not_a_number(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: many, expect: { reach: b } }\n",
    10,
    51,
    "attempts `many` is not a whole number"
)]
#[case::flow_sticky_with_one_attempt(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b, sticky: true } }\n",
    10,
    69,
    "`sticky` needs `attempts` of 2 or more"
)]
#[case::flow_sticky_with_fail(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: 10.96.0.2:81, attempts: 3, expect: { fail: timeout, sticky: true } }\n",
    10,
    89,
    "`sticky` goes with `reach`"
)]
#[case::flow_attempts_fewer_than_reach(
    Some(""),
    "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: 192.0.2.1:80, attempts: 2, expect: { reach: [a, b, c] } }\n",
    10,
    53,
    "attempts 2 is fewer than the 3 pods of `reach`, each of which must answer at least once"
)]
#[case::listener_without_port(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ name: http }] }\n",
    3,
    38,
    "listener has no `port`"
)]
#[case::listener_port_invalid(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: http }] }\n",
    3,
    46,
    "listener port `http` is not a port number"
)]
#[case::listener_protocol_invalid(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, protocol: TCP }] }\n",
    3,
    60,
    "listener protocol `TCP` is not tcp or udp"
)]
#[case::listener_name_invalid(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: my_http }] }\n",
    3,
    56,
    "listener name `my_http` is not a port name"
)]
#[case::listener_name_too_long(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: a-very-long-port-name }] }\n",
    3,
    56,
    "listener name `a-very-long-port-name` is 21 characters long, more than 15"
)]
#[case::listener_name_duplicate(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: http }, { port: 81, name: http }] }\n",
    3,
    82,
    "duplicate listener name `http` in this pod"
)]
#[case::listener_duplicate_mapping(
    None,
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [80, { port: 80, name: http }] }\n",
    3,
    42,
    "duplicate listener 80/tcp"
)]
#[case::flow_from_unknown_skips_service_lookup(
    None,
    "nodes: [node1]\nservices: [{ name: web, ports: [{ port: 80 }] }]\nflows: [{ name: f, from: zz, to: svc/web:80, expect: { fail: timeout } }]\n",
    3,
    26,
    "unknown pod `zz` in `from`"
)]
fn service_errors_are_located(
    #[case] cluster: Option<&str>,
    #[case] rest: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    let yaml = match cluster {
        Some(cluster) => format!("cluster: {{ {cluster} }}\n{PODS}{rest}"),
        None => rest.to_owned(),
    };
    assert_one_error(FILE, &yaml, line, column, message);
}
