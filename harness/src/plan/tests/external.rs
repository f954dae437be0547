use super::*;

// --- the external host ---------------------------------------------------------------

#[rstest]
#[case::absent("nodes: [node1]\n", None)]
#[case::empty(
        "external: {}\nnodes: [node1]\n",
        Some(("172.18.0.1/16", "02:42:ac:12:00:01", 1500, ""))
    )]
#[case::null(
        "nodes: [node1]\nexternal:\n",
        Some(("172.18.0.1/16", "02:42:ac:12:00:01", 1500, ""))
    )]
#[case::listeners_sorted_and_other_underlay(
        "cluster: { nodeCIDR: 192.168.10.0/24, mtu: 9000 }\nexternal: { listen: [8080/tcp, 53/udp, { port: 443, name: https }] }\nnodes: [node1]\n",
        Some(("192.168.10.1/24", "02:42:c0:a8:0a:01", 9000, "53/udp 443/tcp 8080/tcp"))
    )]
fn the_external_host_sits_at_the_underlay_gateway(
    #[case] yaml: &str,
    #[case] expected: Option<(&str, &str, u32, &str)>,
) {
    let plan = plan(FILE, yaml);
    let mac = expected.map(|(_, mac, _, _)| mac);
    let expected = expected.map(|(addr, _, mtu, listen)| External {
        name: "external".into(),
        eth0: Iface {
            name: "eth0".into(),
            mac: Mac::from_ip([0x02, 0x42], cidr(addr).addr()),
            addr: addr.parse().unwrap(),
            mtu,
        },
        underlay_port: "external".into(),
        listeners: listen
            .split_whitespace()
            .map(|l| {
                let (port, proto) = l.split_once('/').unwrap();
                Listener {
                    port: port.parse().unwrap(),
                    proto: if proto == "udp" {
                        Proto::Udp
                    } else {
                        Proto::Tcp
                    },
                }
            })
            .collect(),
    });
    assert_eq!(plan.topology.external, expected);
    if let Some(external) = &plan.topology.external {
        assert_eq!(Some(external.eth0.mac.to_string().as_str()), mac);
        // The nodes' default route points at it.
        let default = plan.topology.nodes[0].routes.last().unwrap();
        assert_eq!(default.via, Some(external.eth0.addr.addr()));
    }
}

#[test]
fn flows_go_from_and_to_the_external_host() {
    let plan = plan(
            FILE,
            "external: { listen: [8080/tcp, 53/udp] }
nodes: [node1, node2]
pods:
  - { name: a, node: node1, namespace: shop }
  - { name: web, node: node2, labels: { app: web }, listen: [8080] }
services:
  - { name: web, type: NodePort, selector: { app: web }, ports: [{ port: 80, targetPort: 8080, nodePort: 30100 }] }
  - { name: local, type: NodePort, externalTrafficPolicy: Local, selector: { app: web }, ports: [{ port: 80, targetPort: 8080, nodePort: 30200 }] }
  - { name: outside, endpoints: [{ ip: 172.18.0.1, port: 8080 }], ports: [{ port: 80 }] }
flows:
  - { name: node-port, from: external, to: node2:30100, expect: { reach: web, seenSource: 10.244.2.1 } }
  - { name: local, from: external, to: node2:30200, expect: { reach: web, seenSource: external } }
  - { name: by-svc, from: external, to: svc/web:80, expect: { fail: unreachable } }
  - { name: out, from: a, to: external:8080, expect: { reach: external, seenSource: node1 } }
  - { name: out-udp, from: a, to: external:53, protocol: udp, expect: { reach: [external] } }
  - { name: ping, from: a, to: external, expect: { reach: external } }
  - { name: by-address, from: a, to: 172.18.0.1:8080, expect: { reach: external } }
  - { name: closed, from: a, to: external:9090, expect: { fail: refused } }
  - { name: via-service, from: a, to: svc/default/outside:80, expect: { reach: external, seenSource: node1 } }
  - { name: pod-local, from: a, to: node2:30200, expect: { reach: web, seenSource: node1 } }
  - { name: to-itself, from: external, to: external:8080, expect: { reach: external } }
",
        );
    let flows = &plan.flows;
    let reach = |who: &str, seen: Option<(&str, &str)>| Expect::Reach {
        pods: vec![who.into()],
        seen_source: seen.map(|(name, addr)| SeenSource {
            name: name.into(),
            addr: ip(addr),
        }),
    };
    let node_port = |service: usize, name: &str| {
        Some(FlowService {
            service,
            port: 0,
            namespace: "default".into(),
            name: name.into(),
            via: ServiceVia::NodePort {
                node: "node2".into(),
            },
        })
    };
    assert_eq!(flows[0].from, "external");
    assert_eq!(
        flows[0].target,
        Target::Tcp("172.18.0.3:30100".parse().unwrap())
    );
    assert_eq!(flows[0].service, node_port(0, "web"));
    assert_eq!(
        flows[0].expect,
        reach("web", Some(("10.244.2.1", "10.244.2.1")))
    );
    assert_eq!(flows[1].service, node_port(1, "local"));
    assert_eq!(
        flows[1].expect,
        reach("web", Some(("external", "172.18.0.1")))
    );
    // From the external host, `svc/web` is looked up in `default`.
    assert_eq!(
        flows[2].target,
        Target::Tcp("10.96.0.2:80".parse().unwrap())
    );
    assert_eq!(flows[2].service.as_ref().unwrap().namespace, "default");
    assert_eq!(
        flows[3].target,
        Target::Tcp("172.18.0.1:8080".parse().unwrap())
    );
    assert_eq!(flows[3].service, None);
    assert_eq!(
        flows[3].expect,
        reach("external", Some(("node1", "172.18.0.2")))
    );
    assert_eq!(flows[3].target_label, "external:8080");
    assert_eq!(
        flows[4].target,
        Target::Udp("172.18.0.1:53".parse().unwrap())
    );
    assert_eq!(flows[4].expect, reach("external", None));
    assert_eq!(flows[5].target, Target::Icmp(ip("172.18.0.1")));
    assert_eq!(
        flows[6].target,
        Target::Tcp("172.18.0.1:8080".parse().unwrap())
    );
    assert_eq!(flows[7].expect, Expect::Fail(FailKind::Refused));
    assert_eq!(
        flows[8].target,
        Target::Tcp("10.96.0.4:80".parse().unwrap())
    );
    assert_eq!(
        flows[8].expect,
        reach("external", Some(("node1", "172.18.0.2")))
    );
    assert_eq!(flows[9].expect, reach("web", Some(("node1", "172.18.0.2"))));
    assert_eq!(flows[10].from, "external");
    assert_eq!(flows.len(), 11);
}

#[test]
fn external_traffic_policy_local_narrows_flows_from_outside_the_cluster_only() {
    // web runs on node1: a NodePort of node2 with externalTrafficPolicy Local cannot send
    // outside traffic to it, but a pod's traffic to its own node's NodePort goes anywhere;
    // without an overlay flannel does not masquerade, so a pod's traffic stays pod traffic.
    let case = |overlay: &str| {
        format!(
                "cluster: {{ overlay: {overlay} }}
external: {{}}
nodes: [node1, node2]
pods:
  - {{ name: a, node: node2 }}
  - {{ name: b, node: node1 }}
  - {{ name: web, node: node1, labels: {{ app: web }}, listen: [8080] }}
services:
  - {{ name: local, type: NodePort, externalTrafficPolicy: Local, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}
flows:
  - {{ name: own-node, from: a, to: node2:30000, expect: {{ reach: web }} }}
  - {{ name: from-outside-local, from: external, to: node1:30000, expect: {{ reach: web }} }}
  - {{ name: other-node-local, from: a, to: node1:30000, expect: {{ reach: web }} }}
  - {{ name: from-outside, from: external, to: node2:30000, expect: {{ fail: timeout }} }}
  - {{ name: other-node, from: b, to: 172.18.0.3:30000, expect: {{ fail: timeout }} }}
"
            )
    };
    assert_eq!(plan(FILE, &case("vxlan")).flows.len(), 5);
    let reach_web = |text: String, flow: &str| {
        let old = format!("{flow}, expect: {{ fail: timeout }}");
        text.replace(&old, &format!("{flow}, expect: {{ reach: web }}"))
    };
    let from_b = "from: b, to: 172.18.0.3:30000";
    assert_eq!(plan(FILE, &reach_web(case("none"), from_b)).flows.len(), 5);
    let found = diagnostics(
        FILE,
        &reach_web(
            reach_web(case("vxlan"), from_b),
            "from: external, to: node2:30000",
        ),
    );
    let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    assert_eq!(
        all,
        [
            "cases/t.yaml:14:77: `reach` names web, which runs on node1, but default/local has externalTrafficPolicy Local: traffic from outside the cluster to node2's NodePort only goes to its endpoints on node2",
            "cases/t.yaml:15:73: `reach` names web, which runs on node1, but default/local has externalTrafficPolicy Local, and traffic from node1 (the node of `from`) to node2's NodePort comes from outside the cluster (the node network masquerades it to node1's address): only its endpoints on node2 answer",
        ]
    );
}

/// Each mistake about the external host: one diagnostic, at the offending value.
#[rstest]
#[case::node_named_external(
    "nodes: [node1, external]\n",
    1,
    16,
    "node name `external` is reserved for the external host"
)]
#[case::node_named_external_when_declared(
    "external: {}\nnodes: [external]\n",
    2,
    9,
    "node name `external` is reserved for the external host"
)]
#[case::pod_named_external(
    "nodes: [node1]\npods: [{ name: external, node: node1 }]\n",
    2,
    16,
    "pod name `external` is reserved for the external host"
)]
#[case::from_external_undeclared(
    "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: external, to: a, expect: { fail: timeout } }]\n",
    3,
    26,
    "`from` names the external host, but the case declares no external host"
)]
#[case::to_external_undeclared(
    "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:8080, expect: { fail: timeout } }]\n",
    3,
    33,
    "`to` names the external host, but the case declares no external host"
)]
#[case::ping_external_undeclared(
    "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external, expect: { fail: timeout } }]\n",
    3,
    33,
    "the case declares no external host"
)]
#[case::reach_external_undeclared(
    "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 192.0.2.1:80, expect: { reach: external } }]\n",
    3,
    64,
    "`reach` names the external host, but the case declares no external host"
)]
#[case::seen_source_external_undeclared(
    "nodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: a, to: a:80, expect: { reach: a, seenSource: external } }]\n",
    3,
    71,
    "`seenSource` names the external host, but the case declares no external host"
)]
#[case::external_not_listening(
    "external: { listen: [8080] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:9090, expect: { reach: external } }]\n",
    4,
    33,
    "external does not listen on 9090/tcp, so it could never answer"
)]
#[case::external_not_listening_udp(
    "external: { listen: [8080] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:8080, protocol: udp, expect: { reach: external } }]\n",
    4,
    33,
    "external does not listen on 8080/udp"
)]
#[case::external_address_not_listening(
    "external: {}\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 172.18.0.1:80, expect: { reach: external } }]\n",
    4,
    33,
    "external does not listen on 80/tcp"
)]
#[case::reach_pod_for_external_target(
    "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: a, to: external:80, expect: { reach: a } }]\n",
    4,
    63,
    "`reach` names a, but the flow goes straight to external: only external can answer"
)]
#[case::reach_external_for_pod_target(
    "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: external, to: a:80, expect: { reach: external } }]\n",
    4,
    63,
    "`reach` names external, but the flow goes straight to a: only a can answer"
)]
#[case::external_listener_duplicate(
    "external: { listen: [80, 80/tcp] }\nnodes: [node1]\n",
    1,
    26,
    "duplicate listener 80/tcp"
)]
#[case::external_listener_bad(
    "external:\n  listen: [http]\nnodes: [node1]\n",
    2,
    12,
    "listener `http` is not a port number"
)]
#[case::unknown_reach_mentions_external(
    "external: {}\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 192.0.2.1:80, expect: { reach: extern } }]\n",
    4,
    64,
    "unknown pod `extern` in `reach` (pods: a; or external, the external host)"
)]
#[case::external_not_an_endpoint(
    "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, labels: { app: a }, listen: [80] }]\nservices: [{ name: s, selector: { app: a }, ports: [{ port: 80 }] }]\nflows: [{ name: f, from: a, to: svc/s:80, expect: { reach: external } }]\n",
    5,
    60,
    "`reach` names external, which is not an endpoint of Service default/s port 80/TCP (ready endpoints: a)"
)]
#[case::external_endpoint_not_listening(
    "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nservices: [{ name: s, endpoints: [{ ip: 172.18.0.1, port: 8080 }], ports: [{ port: 80 }] }]\nflows: [{ name: f, from: a, to: svc/s:80, expect: { reach: external } }]\n",
    5,
    60,
    "external does not listen on 8080/tcp, its target port for Service default/s port 80/TCP"
)]
#[case::external_with_a_bad_node_cidr(
    "cluster: { nodeCIDR: 172.18.0.1/16 }\nexternal: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:80, expect: { reach: external, seenSource: a } }]\n",
    1,
    22,
    "nodeCIDR 172.18.0.1/16 has host bits set"
)]

fn external_host_errors_are_located(
    #[case] yaml: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    assert_one_saying(&diagnostics(FILE, yaml), line, column, message);
}
