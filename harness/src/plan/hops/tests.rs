use rstest::rstest;

use super::*;
use crate::diag::Diagnostic;
use crate::plan::testing::{
    assert_edits_stay_located, assert_one_error, diagnostics, locations, plan,
};

const FILE: &str = "cases/hops.yaml";

/// Two nodes (vxlan), the external host, the cluster DNS, a Service and a headless one;
/// flows start on line 12.
const BASE: &str = "nodes: [node1, node2]
external: { listen: [8080] }
dns: { node: node1 }
pods:
  - { name: pod-a, node: node1 }
  - { name: pod-b, node: node2, labels: { app: myapp }, listen: [8080] }
  - { name: db-0, node: node2, labels: { app: db }, listen: [5432] }
services:
  - { name: myapp, selector: { app: myapp }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
  - { name: db, clusterIP: None, selector: { app: db }, ports: [{ port: 5432 }] }
flows:
";

fn with_flows(flows: &str) -> String {
    format!("{BASE}{flows}")
}

fn ips(texts: &[&str]) -> Vec<Ipv4Addr> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

fn addr(label: &str, addrs: &[&str], port: Option<u16>) -> AddrMatch {
    AddrMatch {
        addrs: ips(addrs),
        port,
        label: label.into(),
    }
}

fn iface(netns: &str, iface: &str) -> HopKind {
    HopKind::Iface {
        netns: netns.into(),
        iface: iface.into(),
        dir: None,
        src: None,
        dst: None,
    }
}

fn hop(kind: HopKind, label: &str, line: u64, column: u64) -> HopPlan {
    HopPlan {
        kind,
        conversation: Conversation::Main,
        proxy: None,
        label: label.into(),
        location: Location { line, column },
    }
}

fn dns(hop: HopPlan) -> HopPlan {
    HopPlan {
        conversation: Conversation::Dns,
        ..hop
    }
}

const NODE1: [&str; 3] = ["172.18.0.2", "10.244.1.1", "10.244.1.0"];
const NODE2: [&str; 3] = ["172.18.0.3", "10.244.2.1", "10.244.2.0"];

#[test]
fn undnat_and_unsnat_resolve_and_need_a_node() {
    let plan = plan(
        FILE,
        &with_flows(
            "  - name: f
    from: pod-a
    to: 'svc/myapp:80'
    expect:
      reach: pod-b
      reply: [{ node: node1, undnat: 'svc/myapp:80' }, { node: node1, unsnat: pod-a }]
",
        ),
    );
    assert_eq!(
        plan.flows[0].hops.reply,
        [
            hop(
                HopKind::UnDnat {
                    node: "node1".into(),
                    to: addr("svc/myapp:80", &["10.96.0.2"], Some(80)),
                },
                "node1 undnat svc/myapp:80",
                17,
                15
            ),
            hop(
                HopKind::UnSnat {
                    node: "node1".into(),
                    to: addr("pod-a", &["10.244.1.2"], None),
                },
                "node1 unsnat pod-a",
                17,
                56
            ),
        ]
    );
    let errors = diagnostics(
        FILE,
        &with_flows(
            "  - { name: f, from: pod-a, to: 'svc/myapp:80', expect: { reach: pod-b, reply: [{ undnat: pod-b }, { node: node1, undnat: pod-b, unsnat: pod-a }] } }\n",
        ),
    );
    let messages: Vec<String> = errors.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        messages,
        [
            "an `undnat` hop needs `node`: the node that rewrites the reply's source",
            "an `undnat` hop and an `unsnat` hop are two hops: write each as its own entry",
        ],
        "{errors:?}"
    );
}

#[test]
fn every_hop_kind_resolves_to_addresses() {
    let plan = plan(FILE, &with_flows(
            "  - name: f
    from: pod-a
    to: 'myapp:80'
    expect:
      reach: pod-b
      hops:
        - pod-a/eth0
        - { iface: node1/cni0, dir: in, src: pod-a, dst: 'svc/myapp:http' }
        - { node: node1, dnat: 'pod-b:8080' }
        - { node: node1, snat: node1 }
        - { node: node1, chain: 'KUBE-SVC-*', table: nat, verdict: ACCEPT, proxy: iptables }
        - { iface: node1/eth0, vxlan: { vni: 1, port: 8472, outer: node1 -> node2 } }
        - dns: [pod-a/eth0, { node: node1, dnat: 'coredns:53' }]
      reply: [pod-b/eth0, { iface: underlay/node2, dir: out, src: 172.18.0.3, dst: 'external:8080' }]
      avoid: [{ vxlan: {} }, { node: node2, chain: FLANNEL-POSTRTG, verdict: 'Jump KUBE-MARK-*' }, external/eth0]
",
        ));
    let hops = &plan.flows[0].hops;
    assert_eq!(
        hops.forward,
        [
            hop(iface("pod-a", "eth0"), "pod-a/eth0", 18, 11),
            hop(
                HopKind::Iface {
                    netns: "node1".into(),
                    iface: "cni0".into(),
                    dir: Some(Dir::In),
                    src: Some(addr("pod-a", &["10.244.1.2"], None)),
                    dst: Some(addr("svc/myapp:http", &["10.96.0.2"], Some(80))),
                },
                "node1/cni0 in src=pod-a dst=svc/myapp:http",
                19,
                11
            ),
            hop(
                HopKind::Dnat {
                    node: "node1".into(),
                    to: addr("pod-b:8080", &["10.244.2.2"], Some(8080)),
                },
                "node1 dnat pod-b:8080",
                20,
                11
            ),
            hop(
                HopKind::Snat {
                    node: "node1".into(),
                    to: addr("node1", &NODE1, None),
                },
                "node1 snat node1",
                21,
                11
            ),
            HopPlan {
                proxy: Some(ProxyMode::Iptables),
                ..hop(
                    HopKind::Rule {
                        node: "node1".into(),
                        table: Some("nat".into()),
                        chain: "KUBE-SVC-*".into(),
                        verdict: Some("accept".into()),
                    },
                    "node1 table nat chain KUBE-SVC-* verdict accept [iptables]",
                    22,
                    11
                )
            },
            hop(
                HopKind::Vxlan {
                    at: Some(("node1".into(), "eth0".into())),
                    vni: Some(1),
                    port: Some(8472),
                    outer: Some((addr("node1", &NODE1, None), addr("node2", &NODE2, None))),
                },
                "node1/eth0 vxlan vni=1 port=8472 outer=node1->node2",
                23,
                11
            ),
            dns(hop(iface("pod-a", "eth0"), "dns: pod-a/eth0", 24, 17)),
            dns(hop(
                HopKind::Dnat {
                    node: "node1".into(),
                    to: addr("coredns:53", &["10.244.1.3"], Some(53)),
                },
                "dns: node1 dnat coredns:53",
                24,
                29
            )),
        ]
    );
    assert_eq!(
        hops.reply,
        [
            hop(iface("pod-b", "eth0"), "pod-b/eth0", 25, 15),
            hop(
                HopKind::Iface {
                    netns: "underlay".into(),
                    iface: "node2".into(),
                    dir: Some(Dir::Out),
                    src: Some(addr("172.18.0.3", &["172.18.0.3"], None)),
                    dst: Some(addr("external:8080", &["172.18.0.1"], Some(8080))),
                },
                "underlay/node2 out src=172.18.0.3 dst=external:8080",
                25,
                27
            ),
        ]
    );
    assert_eq!(
        hops.avoid,
        [
            hop(
                HopKind::Vxlan {
                    at: None,
                    vni: None,
                    port: None,
                    outer: None
                },
                "vxlan",
                26,
                15
            ),
            hop(
                HopKind::Rule {
                    node: "node2".into(),
                    table: None,
                    chain: "FLANNEL-POSTRTG".into(),
                    verdict: Some("jump KUBE-MARK-*".into()),
                },
                "node2 chain FLANNEL-POSTRTG verdict jump KUBE-MARK-*",
                26,
                30
            ),
            hop(iface("external", "eth0"), "external/eth0", 26, 100),
        ]
    );
}

#[test]
fn addresses_are_literal_external_or_services_in_any_namespace() {
    let plan = plan(
        FILE,
        &with_flows(
            "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node2, dnat: '10.0.0.9:53' }, { node: node2, snat: external }, { node: node1, dnat: 'svc/kube-system/kube-dns:dns-tcp' }, { node: node1, dnat: 'svc/myapp' }] } }\n",
        ),
    );
    let to = |h: &HopPlan| match &h.kind {
        HopKind::Dnat { to, .. } | HopKind::Snat { to, .. } => to.clone(),
        other => panic!("not a rewrite: {other:?}"),
    };
    let got: Vec<AddrMatch> = plan.flows[0].hops.forward.iter().map(to).collect();
    assert_eq!(
        got,
        [
            addr("10.0.0.9:53", &["10.0.0.9"], Some(53)),
            addr("external", &["172.18.0.1"], None),
            addr(
                "svc/kube-system/kube-dns:dns-tcp",
                &["10.96.0.10"],
                Some(53)
            ),
            addr("svc/myapp", &["10.96.0.2"], None),
        ]
    );
}

#[test]
fn the_interfaces_are_those_of_the_planned_topology() {
    let plan = plan(FILE, &with_flows(""));
    let topology = &plan.topology;
    let veth = |pod: &str| topology.pod(pod).unwrap().host_veth.as_str();
    assert_eq!(
        interfaces(topology, "node1").unwrap(),
        ["eth0", "cni0", "flannel.1", veth("pod-a"), veth("coredns")]
    );
    assert_eq!(
        interfaces(topology, "node2").unwrap(),
        ["eth0", "cni0", "flannel.1", veth("pod-b"), veth("db-0")]
    );
    assert_eq!(interfaces(topology, "pod-b").unwrap(), ["eth0"]);
    assert_eq!(interfaces(topology, "coredns").unwrap(), ["eth0"]);
    assert_eq!(
        interfaces(topology, "underlay").unwrap(),
        ["br0", "node1", "node2", "external"]
    );
    assert_eq!(interfaces(topology, "external").unwrap(), ["eth0"]);
    assert_eq!(interfaces(topology, "node3"), None);
    assert_eq!(addresses(topology, "node2").unwrap(), ips(&NODE2));
    assert_eq!(addresses(topology, "db-0").unwrap(), ips(&["10.244.2.3"]));
    assert_eq!(addresses(topology, "underlay"), None);

    // A host veth is a hop like any interface.
    let flows = format!(
        "  - {{ name: f, from: pod-a, to: 'pod-b:8080', expect: {{ reach: pod-b, hops: [node1/{}, {{ iface: node2/{}, dir: out }}] }} }}\n",
        veth("pod-a"),
        veth("pod-b")
    );
    let with_veths = self::plan(FILE, &with_flows(&flows));
    let labels: Vec<&str> = with_veths.flows[0]
        .hops
        .forward
        .iter()
        .map(|h| h.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            format!("node1/{}", veth("pod-a")),
            format!("node2/{} out", veth("pod-b"))
        ]
    );
}

#[test]
fn without_vxlan_a_node_has_no_flannel_device_and_two_addresses() {
    let plan = plan(
            FILE,
            "cluster: { overlay: host-gw }
nodes: [node1, node2]
pods: [{ name: a, node: node1 }, { name: b, node: node2, listen: [80] }]
flows:
  - { name: f, from: a, to: 'b:80', expect: { reach: b, hops: [{ node: node1, snat: node1 }], avoid: [{ vxlan: {} }] } }
",
        );
    let hops = &plan.flows[0].hops;
    assert_eq!(
        hops.forward[0].kind,
        HopKind::Snat {
            node: "node1".into(),
            to: addr("node1", &["172.18.0.2", "10.244.1.1"], None)
        }
    );
    assert_eq!(hops.avoid[0].label, "vxlan");
    let found = diagnostics(
        FILE,
        "cluster: { overlay: host-gw }
nodes: [node1, node2]
pods: [{ name: a, node: node1 }, { name: b, node: node2, listen: [80] }]
flows:
  - { name: f, from: a, to: 'b:80', expect: { reach: b, hops: [node1/flannel.1, { vxlan: {} }] } }
",
    );
    let got: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    let veth_a = &plan.topology.pods[0].host_veth;
    assert_eq!(
        got,
        [
            format!(
                "{FILE}:5:64: unknown interface `flannel.1` of node1 (known: eth0, cni0, {veth_a})"
            ),
            format!(
                "{FILE}:5:90: the overlay is not vxlan, so nothing is encapsulated in VXLAN and this hop could never be seen in `hops` (`avoid` may list it)"
            ),
        ]
    );
}

#[test]
fn hops_go_with_failures_rule_hits_without_a_proxy_and_names_only_resolved() {
    let plan = plan(
            FILE,
            "nodes: [node1]
pods: [{ name: a, node: node1 }]
flows:
  - { name: f, from: a, to: '192.0.2.1:80', expect: { fail: timeout, hops: [a/eth0, { node: node1, chain: FLANNEL-POSTRTG }] } }
",
        );
    assert_eq!(
        plan.flows[0].hops.forward[1].label,
        "node1 chain FLANNEL-POSTRTG"
    );
    let plan = self::plan(
        FILE,
        &with_flows(
            "  - { name: f, from: pod-a, to: 'myapp:80', expect: { dns: svc/myapp, hops: [{ dns: [pod-a/eth0, coredns/eth0] }], reply: [{ dns: [coredns/eth0] }] } }\n",
        ),
    );
    let hops = &plan.flows[0].hops;
    let labels: Vec<&str> = hops.forward.iter().map(|h| h.label.as_str()).collect();
    assert_eq!(labels, ["dns: pod-a/eth0", "dns: coredns/eth0"]);
    assert!(
        hops.forward
            .iter()
            .chain(&hops.reply)
            .all(|h| h.conversation == Conversation::Dns)
    );
}

/// One mistake, one diagnostic, at the value that is wrong.
#[rstest]
#[case::unknown_node_iface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [node1/cni1] } }\n",
    12,
    78,
    "unknown interface `cni1` of node1 (known: eth0, cni0, flannel.1, veth"
)]
#[case::unknown_pod_iface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [pod-a/eth1] } }\n",
    12,
    78,
    "unknown interface `eth1` of pod-a (known: eth0)"
)]
#[case::unknown_underlay_port(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [underlay/node3] } }\n",
    12,
    78,
    "unknown interface `node3` of underlay (known: br0, node1, node2, external)"
)]
#[case::unknown_namespace(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [pod-z/eth0] } }\n",
    12,
    78,
    "unknown namespace `pod-z` in `hops` (pods: pod-a, pod-b, db-0, coredns; nodes: node1, node2; also underlay, external)"
)]
#[case::not_an_interface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [pod-a] } }\n",
    12,
    78,
    "`pod-a` in `hops` is not an interface: write NETNS/IFACE"
)]
#[case::empty_iface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: node1/ }] } }\n",
    12,
    87,
    "`node1/` in `iface` is not an interface"
)]
#[case::unknown_dir(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, dir: up }] } }\n",
    12,
    104,
    "unknown dir `up`: expected in (received by the interface) or out (sent by it)"
)]
#[case::unknown_src(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, src: pod-z }] } }\n",
    12,
    104,
    "unknown pod or node `pod-z` in `src` (pods: pod-a, pod-b, db-0, coredns; nodes: node1, node2); also svc/NAME, svc/NAMESPACE/NAME, external or an IPv4 address"
)]
#[case::unknown_service(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, dst: 'svc/nope:80' }] } }\n",
    12,
    104,
    "unknown Service `default/nope` in `dst` (Services: default/myapp, default/db, kube-system/kube-dns, default/kubernetes)"
)]
#[case::headless_service(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, dst: svc/db }] } }\n",
    12,
    104,
    "Service default/db in `dst` is headless (clusterIP: None): no packet carries its address; name its pods"
)]
#[case::service_port_number(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, dst: 'svc/myapp:8080' }] } }\n",
    12,
    104,
    "Service default/myapp has no port `8080` (ports: http 80/TCP)"
)]
#[case::service_port_name(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, dst: 'svc/myapp:https' }] } }\n",
    12,
    104,
    "Service default/myapp has no port `https` (ports: http 80/TCP)"
)]
#[case::pod_port(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node2, dnat: 'pod-b:http' }] } }\n",
    12,
    99,
    "port `http` in `dnat` is not a port number"
)]
#[case::pod_port_range(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node2, dnat: 'pod-b:65536' }] } }\n",
    12,
    99,
    "port `65536` in `dnat` is out of range 1..=65535"
)]
#[case::dnat_without_node(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ dnat: 'pod-b:8080' }] } }\n",
    12,
    78,
    "a `dnat` hop needs `node`: the node that rewrites the destination"
)]
#[case::snat_without_node(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ snat: node1 }] } }\n",
    12,
    78,
    "a `snat` hop needs `node`: the node that rewrites the source"
)]
#[case::chain_without_node(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ chain: FLANNEL-POSTRTG }] } }\n",
    12,
    78,
    "a `chain` hop needs `node`: the node whose rules are hit"
)]
#[case::unknown_node(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: pod-a, snat: node1 }] } }\n",
    12,
    86,
    "unknown node `pod-a` in `node` (nodes: node1, node2)"
)]
#[case::node_on_iface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: node1/eth0, node: node1 }] } }\n",
    12,
    105,
    "`node` does not go with an interface hop: it names where NAT or a rule hit happens; an interface names its namespace in `iface` (node1/eth0)"
)]
#[case::iface_on_dnat(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, iface: node1/eth0, dnat: pod-b }] } }\n",
    12,
    100,
    "`iface` does not go with a `dnat` hop: NAT and rule hits happen in a node, named by `node`"
)]
#[case::dir_on_chain(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: KUBE-SVC-*, dir: in }] } }\n",
    12,
    117,
    "`dir` does not go with a `chain` hop: it is the direction a packet crosses an interface"
)]
#[case::src_on_vxlan(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: {}, src: pod-a }] } }\n",
    12,
    96,
    "`src` does not go with a `vxlan` hop: it is the source of the packet seen on an interface"
)]
#[case::table_on_snat(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, snat: node1, table: nat }] } }\n",
    12,
    113,
    "`table` does not go with a `snat` hop: it is the table of the chain a `chain` hop hits"
)]
#[case::verdict_on_iface(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, verdict: accept }] } }\n",
    12,
    108,
    "`verdict` does not go with an interface hop: it is the verdict of the rule a `chain` hop hits"
)]
#[case::two_hops_in_one(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, dnat: pod-b, chain: KUBE-SEP-* }] } }\n",
    12,
    113,
    "a `dnat` hop and a `chain` hop are two hops: write each as its own entry"
)]
#[case::no_kind(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ dir: in }] } }\n",
    12,
    78,
    "a hop needs `iface` (an interface, like node1/cni0), `dnat`, `snat`, `chain` or `vxlan`"
)]
#[case::chain_star_inside(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: 'KUBE-*-X' }] } }\n",
    12,
    100,
    "chain `KUBE-*-X` may hold `*` only once, at its end (a prefix, like KUBE-SVC-*)"
)]
#[case::chain_blank(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: 'KUBE SVC' }] } }\n",
    12,
    100,
    "chain `KUBE SVC` is not a chain name: it may not hold blanks"
)]
#[case::bad_table(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: POSTROUTING, table: 'ip nat' }] } }\n",
    12,
    120,
    "table `ip nat` is not a table name"
)]
#[case::unknown_verdict(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: POSTROUTING, verdict: masquerade }] } }\n",
    12,
    122,
    "unknown verdict `masquerade`: expected accept, drop, continue, return, queue, stolen, break, jump CHAIN or goto CHAIN"
)]
#[case::jump_without_chain(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ node: node1, chain: KUBE-SERVICES, verdict: JUMP }] } }\n",
    12,
    124,
    "verdict `jump` needs the chain: jump CHAIN"
)]
#[case::unknown_proxy(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ iface: pod-a/eth0, proxy: ipvs }] } }\n",
    12,
    106,
    "unknown proxy mode `ipvs` in `proxy`: expected iptables or nftables"
)]
#[case::vni_range(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { vni: 16777216 } }] } }\n",
    12,
    94,
    "vni 16777216 is out of range 0..=16777215 (24 bits)"
)]
#[case::vni_not_a_number(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { vni: one } }] } }\n",
    12,
    94,
    "vni `one` is not a whole number"
)]
#[case::vxlan_port(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { port: 0 } }] } }\n",
    12,
    95,
    "vxlan port `0` is out of range 1..=65535"
)]
#[case::outer_one_end(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { outer: node1 } }] } }\n",
    12,
    96,
    "outer `node1` is not SRC -> DST (the outer addresses, like node1 -> node2)"
)]
#[case::outer_port(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { outer: 'node1 -> node2:8472' } }] } }\n",
    12,
    96,
    "`node2:8472` in `outer` has a port, but `outer` names addresses only (the VXLAN port is `port`)"
)]
#[case::outer_unknown(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ vxlan: { outer: node1->node7 } }] } }\n",
    12,
    96,
    "unknown pod or node `node7` in `outer`"
)]
#[case::dns_without_a_name(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ dns: [pod-a/eth0] }] } }\n",
    12,
    85,
    "`dns:` lists the hops of the flow's name resolution, but `to` is not a DNS name: there is no DNS exchange to follow"
)]
#[case::dns_in_dns(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { reach: pod-b, hops: [{ dns: [{ dns: [pod-a/eth0] }] }] } }\n",
    12,
    91,
    "a `dns:` list cannot hold another: its entries are hops"
)]
#[case::dns_with_other_keys(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { reach: pod-b, hops: [{ dns: [pod-a/eth0], iface: pod-a/eth0 }] } }\n",
    12,
    104,
    "`dns` takes no other key: it lists the hops of the flow's DNS exchange, each its own entry (`iface` belongs in one of them)"
)]
#[case::dns_empty(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { reach: pod-b, hops: [{ dns: [] }] } }\n",
    12,
    83,
    "`dns` lists no hop: leave it out"
)]
#[case::dns_inner_error(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { reach: pod-b, hops: [{ dns: [pod-a/eth0, coredns/eth1] }] } }\n",
    12,
    96,
    "unknown interface `eth1` of coredns (known: eth0)"
)]
#[case::dns_in_avoid(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { reach: pod-b, avoid: [{ dns: [pod-a/eth0] }] } }\n",
    12,
    84,
    "`avoid` takes no `dns:` list"
)]
#[case::hops_empty(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [] } }\n",
    12,
    77,
    "`hops` lists no hop: leave it out"
)]
#[case::reply_empty(
    "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, reply: [] } }\n",
    12,
    78,
    "`reply` lists no hop: leave it out"
)]
#[case::exec_hops(
    "  - { name: f, from: pod-a, exec: [true], expect: { hops: [pod-a/eth0] } }\n",
    12,
    59,
    "`hops` is for flows with `to`: an exec flow expects `exit`, `output` and `outputMatches`"
)]
#[case::exec_avoid(
    "  - { name: f, from: pod-a, exec: [true], expect: { avoid: [pod-a/eth0] } }\n",
    12,
    60,
    "`avoid` is for flows with `to`"
)]
#[case::resolves_only(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { dns: svc/myapp, hops: [{ dns: [pod-a/eth0] }, pod-a/eth0] } }\n",
    12,
    101,
    "this flow only resolves its name (its `expect` has `dns` alone) and sends nothing else, so `hops` can only hold `dns:` hops"
)]
#[case::resolves_only_avoid(
    "  - { name: f, from: pod-a, to: 'myapp:80', expect: { dns: svc/myapp, avoid: [pod-a/eth0] } }\n",
    12,
    79,
    "this flow only resolves its name (its `expect` has `dns` alone) and sends nothing else, so it has nothing to `avoid`"
)]
fn hop_errors_are_located(
    #[case] flows: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    assert_one_error(FILE, &with_flows(flows), line, column, message);
}

#[rstest]
#[case::mode_not_run(
    "cluster: { proxy: iptables }\nnodes: [n1]\npods: [{ name: a, node: n1 }]\nservices: [{ name: s, ports: [{ port: 80 }] }]\nflows:\n  - { name: f, from: a, to: 'svc/s:80', expect: { fail: timeout, hops: [{ iface: a/eth0, proxy: nftables }] } }\n",
    6,
    97,
    "`proxy: nftables` keeps the hop to nftables mode, but the case only runs in iptables, so it would never be checked"
)]
#[case::no_proxy(
    "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows:\n  - { name: f, from: a, to: 'a', expect: { reach: a, avoid: [{ node: n1, chain: KUBE-SERVICES, proxy: iptables }] } }\n",
    4,
    103,
    "`proxy: iptables` keeps the hop to iptables mode, but the case runs no service proxy, so it would never be checked"
)]
#[case::no_external_iface(
    "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows:\n  - { name: f, from: a, to: 'a', expect: { reach: a, reply: [external/eth0] } }\n",
    4,
    62,
    "`reply` names the external host, but the case declares no external host"
)]
#[case::no_external_address(
    "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows:\n  - { name: f, from: a, to: 'a', expect: { reach: a, hops: [{ iface: a/eth0, dst: external }] } }\n",
    4,
    83,
    "`dst` names the external host, but the case declares no external host"
)]
fn hop_errors_that_depend_on_the_case_are_located(
    #[case] yaml: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    assert_one_error(FILE, yaml, line, column, message);
}

#[test]
fn every_hop_error_of_a_file_is_reported_in_file_order() {
    let found = diagnostics(
        FILE,
        &with_flows(
            "  - name: f
    from: pod-a
    to: 'pod-b:9999'
    expect:
      reach: pod-b
      hops:
        - node1/cni1
        - { iface: pod-a/eth0, dir: up, src: nobody }
      reply: [{ node: node9, dnat: pod-b }]
      avoid: [{ vxlan: { vni: x } }]
  - { name: g, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [{ snat: node1 }] } }
",
        ),
    );
    assert_eq!(
        locations(&found),
        [
            (14, 9),
            (18, 11),
            (19, 37),
            (19, 46),
            (20, 23),
            (21, 31),
            (22, 78)
        ],
        "{found:#?}"
    );
    assert!(found[0].message.contains("does not listen on 9999/tcp"));
}

#[test]
fn hops_are_checked_against_the_cluster_only_when_it_can_be_planned() {
    // The pod's node is unknown: the cluster cannot be planned, so which interfaces exist is
    // not known and only the hop's own syntax is checked.
    let found = diagnostics(
        FILE,
        "nodes: [node1]
pods: [{ name: a, node: node9 }]
flows:
  - { name: f, from: a, to: 'a', expect: { reach: a, hops: [a/eth9, { iface: a/eth0, dir: up }] } }
",
    );
    let got: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    assert_eq!(
        got,
        [
            format!("{FILE}:2:25: unknown node `node9` (nodes: node1)"),
            format!(
                "{FILE}:4:91: unknown dir `up`: expected in (received by the interface) or out (sent by it)"
            ),
        ]
    );
}

#[test]
fn the_plan_lists_each_flows_hops() {
    let plan = plan(FILE, &with_flows(
            "  - name: f
    from: pod-a
    to: 'myapp:80'
    expect:
      reach: pod-b
      hops: [pod-a/eth0, { dns: [coredns/eth0] }, { node: node1, dnat: 'pod-b:8080', proxy: nftables }]
      reply: [node2/cni0]
      avoid: [node1/flannel.1]
  - { name: g, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b } }
",
        ));
    let text = plan.to_string();
    let flows = &text[text.find("flow f").unwrap()..];
    assert_eq!(
            flows,
            "flow f (line 12): pod-a -> myapp:80 (tcp) = tcp 10.96.0.2:80 (Service default/myapp port http 80/TCP), resolved as myapp.default.svc.cluster.local., timeout 2s
  asks       myapp.default.svc.cluster.local.
  expect reach pod-b
  hop        pod-a/eth0
  hop        dns: coredns/eth0
  hop        node1 dnat pod-b:8080 [nftables]
  reply      node2/cni0
  avoid      node1/flannel.1
flow g (line 20): pod-a -> tcp 10.244.2.2:8080 (pod-b), timeout 2s
  expect reach pod-b
"
        );
}

#[test]
fn the_example_of_the_case_format_plans() {
    let doc = include_str!("../../../../docs/case-format.md");
    let section = &doc[doc.find("## Hops").unwrap()..];
    let start = section.find("```yaml\nflows:\n").unwrap() + "```yaml\nflows:\n".len();
    let end = start + section[start..].find("```").unwrap();
    let example = plan(FILE, &with_flows(&section[start..end]));
    let labels = |flow: usize, list: fn(&HopsExpect) -> &Vec<HopPlan>| -> Vec<String> {
        list(&example.flows[flow].hops)
            .iter()
            .map(|h| h.label.clone())
            .collect()
    };
    assert_eq!(
        labels(0, |h| &h.forward),
        [
            "pod-a/eth0",
            "node1/cni0 in src=pod-a dst=svc/myapp:80",
            "node1 table nat chain KUBE-SVC-* [iptables]",
            "node1 dnat pod-b:8080",
            "node1/eth0 vxlan vni=1 port=8472 outer=node1->node2",
            "node2/cni0 out dst=pod-b:8080",
        ]
    );
    assert_eq!(
        labels(0, |h| &h.reply),
        ["pod-b/eth0", "node2/flannel.1", "pod-a/eth0"]
    );
    assert_eq!(labels(0, |h| &h.avoid), ["underlay/external"]);
    assert_eq!(
        labels(1, |h| &h.forward),
        [
            "dns: pod-a/eth0",
            "dns: node1 dnat coredns:53",
            "dns: coredns/eth0",
            "node1 dnat pod-b:8080",
        ]
    );
}

/// Deterministic mutations of a case with hops never panic, and whatever they break is
/// reported with a location.
#[test]
fn mutated_hop_cases_never_panic() {
    let valid = with_flows(
        "  - name: f
    from: pod-a
    to: 'myapp:80'
    expect:
      reach: pod-b
      hops:
        - pod-a/eth0
        - { iface: node1/cni0, dir: in, src: pod-a, dst: 'svc/myapp:http' }
        - { node: node1, dnat: 'pod-b:8080', proxy: iptables }
        - { node: node1, chain: 'KUBE-SVC-*', table: nat, verdict: jump KUBE-SEP-X }
        - { iface: node1/eth0, vxlan: { vni: 1, port: 8472, outer: node1 -> node2 } }
        - dns: [pod-a/eth0, { node: node1, dnat: 'coredns:53' }]
      reply: [pod-b/eth0, { node: node2, snat: node2 }]
      avoid: [underlay/external, { vxlan: {} }]
  - { name: g, from: pod-a, to: '10.1.1.1:80', expect: { fail: timeout, hops: [pod-a/eth0] } }
",
    );
    plan(FILE, &valid);
    let pieces = [
        ":", "{", "}", "[", "]", ",", "'", "/", "->", "-", "*", "\n", " ", "0", "dns: ", "svc/",
        "node1", "pod-a", "eth0", "vxlan: ", "dir: ", "proxy: ", "external", ":80",
    ];
    assert_edits_stay_located(&valid, &pieces, 0x40b5, 2000);
}

#[test]
fn host_side_names_the_node_end_of_a_pods_link_by_its_role() {
    let text = with_flows(
        "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [pod-b/host-side] } }\n",
    );
    let p = plan(FILE, &text);
    let pod_b = p.topology.pod("pod-b").unwrap();
    match &p.flows[0].hops.forward[0].kind {
        HopKind::Iface { netns, iface, .. } => {
            assert_eq!(
                (netns.as_str(), iface.as_str()),
                ("node2", pod_b.host_veth.as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    // A node has no host side: that is an unknown interface of the node, located.
    let text = with_flows(
        "  - { name: f, from: pod-a, to: 'pod-b:8080', expect: { reach: pod-b, hops: [node2/host-side] } }\n",
    );
    let found = diagnostics(FILE, &text);
    assert!(
        found.iter().any(
            |d| d.message.contains("unknown interface `host-side` of node2")
                || d.message.contains("unknown interface host-side of node2")
        ),
        "{found:?}"
    );
}
