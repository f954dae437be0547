use super::*;

// --- validation ----------------------------------------------------------------------

/// One mistake, one diagnostic, at the offending value.
#[rstest]
#[case::syntax("nodes: [node1\n", 1, 8, "unclosed bracket")]
#[case::top_level_list("- node1\n", 1, 1, "expected a mapping")]
#[case::wrong_type(
    "nodes: [node1, node2]\ncluster: { mtu: [1] }\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    2,
    17,
    "expected a single value"
)]
#[case::unknown_key(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b }, via: x }\n",
    6,
    57,
    "unknown field `via`"
)]
#[case::missing_nodes("pods: []\n", 1, 1, "`nodes` is missing")]
#[case::empty_nodes("nodes: []\n", 1, 8, "`nodes` is empty")]
#[case::node_name_invalid(
    "nodes: [node1, Node_2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: Node_2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    16,
    "node name `Node_2` is not a DNS-1123 label"
)]
#[case::node_name_too_long(
    "nodes: [node1, averyveryverylongname]\n",
    1,
    16,
    "is 21 characters long, more than 15"
)]
#[case::node_name_reserved("nodes: [underlay]\n", 1, 9, "reserved for the underlay")]
#[case::node_name_duplicate(
    "nodes: [node1, node1]\n",
    1,
    16,
    "duplicate node name `node1`, first declared at 1:9"
)]
#[case::node_without_name("nodes:\n  - { address: 172.18.0.9 }\n", 2, 5, "node has no `name`")]
#[case::pod_name_invalid(
    "nodes: [node1, node2]\npods:\n  - { name: A_1, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: A_1, to: b:80, expect: { reach: b } }\n",
    3,
    13,
    "pod name `A_1` is not a DNS-1123 label"
)]
#[case::pod_name_is_node_name(
    "nodes: [node1]\npods:\n  - { name: node1, node: node1 }\n",
    3,
    13,
    "is also a node name"
)]
#[case::pod_name_reserved(
    "nodes: [node1]\npods:\n  - { name: underlay, node: node1 }\n",
    3,
    13,
    "reserved for the underlay"
)]
#[case::pod_name_duplicate(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: a, node: node2 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    13,
    "duplicate pod name `a`, first declared at 3:13"
)]
#[case::pod_unknown_node(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node9, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    22,
    "unknown node `node9` (nodes: node1, node2)"
)]
#[case::pod_without_node("nodes: [node1]\npods:\n  - { name: a }\n", 3, 5, "pod has no `node`")]
#[case::namespace_invalid(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, namespace: Default }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    40,
    "namespace `Default` is not a DNS-1123 label"
)]
#[case::flow_name_duplicate(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    7,
    13,
    "duplicate flow name `f`, first declared at 6:13"
)]
#[case::flow_name_invalid(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: \"a b\", from: a, to: b:80, expect: { reach: b } }\n",
    6,
    13,
    "flow name `a b` may only hold"
)]
#[case::from_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: x, to: b:80, expect: { reach: b } }\n",
    6,
    22,
    "unknown pod `x` in `from` (pods: a, b)"
)]
#[case::to_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: zz:80, expect: { reach: b } }\n",
    6,
    29,
    "unknown pod `zz` in `to`"
)]
#[case::to_port_zero(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:0, expect: { fail: refused } }\n",
    6,
    29,
    "port `0` in `to` is out of range 1..=65535"
)]
#[case::reach_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: 10.96.0.1:80, expect: { reach: [b, zz] } }\n",
    6,
    64,
    "unknown pod `zz` in `reach`"
)]
#[case::reach_other_pod(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [b, a] } }\n",
    6,
    56,
    "`reach` names a, but the flow goes straight to b: only b can answer"
)]
#[case::reach_empty(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [] } }\n",
    6,
    52,
    "`reach` names no pod"
)]
#[case::reach_twice(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [b, b] } }\n",
    6,
    56,
    "`b` is named twice"
)]
#[case::seen_source_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b, seenSource: nobody } }\n",
    6,
    67,
    "unknown pod or node `nobody` in `seenSource`"
)]
#[case::seen_source_with_fail(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:81, expect: { fail: refused, seenSource: a } }\n",
    6,
    72,
    "`seenSource` goes with `reach`"
)]
#[case::seen_source_with_icmp(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, expect: { reach: b, seenSource: a } }\n",
    6,
    64,
    "`seenSource` is for tcp and udp flows"
)]
#[case::not_listening_tcp(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:8080, expect: { reach: b } }\n",
    6,
    29,
    "b does not listen on 8080/tcp, so it could never answer"
)]
#[case::not_listening_udp(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: udp, expect: { reach: b } }\n",
    6,
    29,
    "b does not listen on 80/udp, so it could never answer"
)]
#[case::not_listening_by_address(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: 10.244.2.2:8080, expect: { reach: b } }\n",
    6,
    29,
    "b does not listen on 8080/tcp"
)]
#[case::icmp_with_port(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: icmp, expect: { reach: b } }\n",
    6,
    29,
    "an icmp flow has no port, but `to` names port 80"
)]
#[case::tcp_without_port(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, protocol: tcp, expect: { reach: b } }\n",
    6,
    29,
    "a tcp flow needs a port: write `b`:PORT"
)]
#[case::protocol_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: sctp, expect: { reach: b } }\n",
    6,
    45,
    "unknown protocol `sctp`: expected tcp, udp or icmp"
)]
#[case::expect_both(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b, fail: refused } }\n",
    6,
    43,
    "`expect` has both `reach` and `fail`"
)]
#[case::expect_neither(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: {} }\n",
    6,
    43,
    "`expect` needs `reach: POD` or `fail:"
)]
#[case::expect_missing(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80 }\n",
    6,
    5,
    "flow has no `expect`"
)]
#[case::fail_unknown(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:81, expect: { fail: dropped } }\n",
    6,
    51,
    "unknown failure `dropped`: expected refused, timeout or unreachable"
)]
#[case::icmp_refused(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, expect: { fail: refused } }\n",
    6,
    48,
    "an icmp flow cannot be refused"
)]
#[case::timeout_unparsable(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 2m, expect: { reach: b } }\n",
    6,
    44,
    "timeout `2m` is not a duration"
)]
#[case::timeout_zero(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 0ms, expect: { reach: b } }\n",
    6,
    44,
    "timeout `0ms` must be more than zero"
)]
#[case::timeout_too_long(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 61s, expect: { reach: b } }\n",
    6,
    44,
    "timeout `61s` is longer than the maximum, 60s"
)]
#[case::cidr_syntax(
    "cluster: { podCIDR: 10.244.0.0/33 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR `10.244.0.0/33` is not an IPv4 CIDR"
)]
#[case::cidr_host_bits(
    "cluster: { nodeCIDR: 172.18.0.1/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    22,
    "nodeCIDR 172.18.0.1/16 has host bits set: did you mean 172.18.0.0/16?"
)]
#[case::pod_cidr_overlaps_node_cidr(
    "cluster: { podCIDR: 172.18.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 172.18.0.0/16 overlaps nodeCIDR 172.18.0.0/16"
)]
#[case::node_cidr_overlaps_pod_cidr(
    "cluster: { nodeCIDR: 10.0.0.0/8 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    22,
    "podCIDR 10.244.0.0/16 overlaps nodeCIDR 10.0.0.0/8"
)]
#[case::subnet_len_not_longer(
    "cluster: { subnetLen: 16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    23,
    "subnetLen 16 must be longer than the podCIDR prefix /16"
)]
#[case::subnet_len_too_long(
    "cluster: { subnetLen: 31 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    23,
    "subnetLen 31 is too long: at most 30"
)]
#[case::overlay_unknown(
    "cluster: { overlay: calico }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "unknown overlay `calico`: expected vxlan, host-gw or none"
)]
#[case::mtu_not_a_number(
    "cluster: { mtu: abc }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    17,
    "mtu `abc` is not a whole number"
)]
#[case::mtu_too_small(
    "cluster: { mtu: 500 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    17,
    "mtu 500 is out of range 576..=9000"
)]
#[case::mtu_too_big(
    "cluster: { mtu: 99999999999999999999999 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    17,
    "is out of range 576..=9000"
)]
#[case::mtu_too_small_for_vxlan(
    "cluster: { mtu: 600 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    17,
    "mtu 600 is too small for vxlan: pods would get 600 - 50 = 550"
)]
#[case::node_pod_cidr_outside(
    "nodes: [node1, { name: node2, podCIDR: 10.245.2.0/24 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node podCIDR 10.245.2.0/24 is outside the cluster podCIDR 10.244.0.0/16"
)]
#[case::node_pod_cidr_prefix(
    "nodes: [node1, { name: node2, podCIDR: 10.244.2.0/25 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node podCIDR 10.244.2.0/25 is a /25, but subnetLen is 24"
)]
#[case::node_pod_cidr_overlap(
    "nodes: [node1, { name: node2, podCIDR: 10.244.1.0/24 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "pod subnet 10.244.1.0/24 is also node1's"
)]
#[case::node_subnets_exhausted(
    "cluster: { podCIDR: 10.244.0.0/23 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    2,
    16,
    "podCIDR 10.244.0.0/23 has no /24 subnet left for node2"
)]
#[case::pod_cidr_loopback(
    "cluster: { podCIDR: 127.0.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 127.0.0.0/16 is in the loopback range 127.0.0.0/8: the kernel delivers"
)]
#[case::pod_cidr_multicast(
    "cluster: { podCIDR: 224.1.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 224.1.0.0/16 is in the multicast range 224.0.0.0/4"
)]
#[case::pod_cidr_this_network(
    "cluster: { podCIDR: 0.0.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 0.0.0.0/16 is in the \"this network\" range 0.0.0.0/8"
)]
#[case::pod_cidr_reserved(
    "cluster: { podCIDR: 255.255.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 255.255.0.0/16 is in the reserved range (with the broadcast address 255.255.255.255) 240.0.0.0/4"
)]
#[case::pod_cidr_contains_loopback(
    "cluster: { podCIDR: 96.0.0.0/3 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    21,
    "podCIDR 96.0.0.0/3 contains the loopback range 127.0.0.0/8"
)]
#[case::node_cidr_loopback(
    "cluster: { nodeCIDR: 127.18.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    22,
    "nodeCIDR 127.18.0.0/16 is in the loopback range 127.0.0.0/8"
)]
#[case::node_cidr_link_local(
    "cluster: { nodeCIDR: 169.254.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    22,
    "nodeCIDR 169.254.0.0/16 is in the link-local range 169.254.0.0/16"
)]
#[case::service_cidr_loopback(
    "cluster: { serviceCIDR: 127.96.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    25,
    "serviceCIDR 127.96.0.0/16 is in the loopback range 127.0.0.0/8"
)]
#[case::service_cidr_multicast(
    "cluster: { serviceCIDR: 239.0.0.0/12 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    25,
    "serviceCIDR 239.0.0.0/12 is in the multicast range 224.0.0.0/4"
)]
#[case::service_cidr_overlaps_pod_cidr(
    "cluster: { serviceCIDR: 10.244.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    25,
    "serviceCIDR 10.244.0.0/16 overlaps podCIDR 10.244.0.0/16"
)]
#[case::service_cidr_overlaps_node_cidr(
    "cluster: { serviceCIDR: 172.16.0.0/12 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    25,
    "serviceCIDR 172.16.0.0/12 overlaps nodeCIDR 172.18.0.0/16"
)]
#[case::pod_ip_loopback(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 127.0.0.5 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip 127.0.0.5 is in the loopback range 127.0.0.0/8"
)]
#[case::node_address_multicast(
    "nodes: [node1, { name: node2, address: 224.0.0.9 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address 224.0.0.9 is in the multicast range 224.0.0.0/4"
)]
#[case::pods_without_nodes(
    "pods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    1,
    "`nodes` is missing"
)]
#[case::pods_with_empty_nodes(
    "nodes: []\npods:\n  - { name: a, node: node1 }\n",
    1,
    8,
    "`nodes` is empty"
)]
#[case::node_name_non_ascii(
    "nodes: [node1, nöde2]\n",
    1,
    17,
    "node name `nöde2` is not a DNS-1123 label: use lowercase letters, digits and '-' (the non-ASCII character `ö` is not one)"
)]
#[case::node_name_non_ascii_quoted(
    "nodes: [node1, \"node-ż\"]\n",
    1,
    22,
    "(the non-ASCII character `ż` is not one)"
)]
#[case::pod_name_non_ascii(
    "nodes: [node1]\npods:\n  - { name: pöd, node: node1 }\n",
    3,
    14,
    "pod name `pöd` is not a DNS-1123 label"
)]
#[case::namespace_non_ascii(
    "nodes: [node1]\npods:\n  - { name: a, node: node1, namespace: tëst }\n",
    3,
    41,
    "namespace `tëst` is not a DNS-1123 label"
)]
#[case::node_address_syntax(
    "nodes: [node1, { name: node2, address: 172.18.0.300 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address `172.18.0.300` is not an IPv4 address"
)]
#[case::node_address_outside(
    "nodes: [node1, { name: node2, address: 10.0.0.1 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address 10.0.0.1 is outside nodeCIDR 172.18.0.0/16"
)]
#[case::node_address_network(
    "nodes: [node1, { name: node2, address: 172.18.0.0 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address 172.18.0.0 is the network address of nodeCIDR"
)]
#[case::node_address_broadcast(
    "nodes: [node1, { name: node2, address: 172.18.255.255 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address 172.18.255.255 is the broadcast address of nodeCIDR"
)]
#[case::node_address_gateway(
    "nodes: [node1, { name: node2, address: 172.18.0.1 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "node address 172.18.0.1 is the underlay gateway (the nodes' default route) of nodeCIDR"
)]
#[case::node_address_duplicate(
    "nodes: [node1, { name: node2, address: 172.18.0.2 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    40,
    "duplicate node address 172.18.0.2: node1 has it too"
)]
#[case::node_addresses_exhausted(
    "cluster: { nodeCIDR: 172.18.0.0/30 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    2,
    16,
    "nodeCIDR 172.18.0.0/30 has no address left for node2"
)]
#[case::pod_ip_syntax(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.5/24 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip `10.244.1.5/24` is not an IPv4 address (an address, without a prefix length)"
)]
#[case::pod_ip_outside(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.2.5 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip 10.244.2.5 is outside node1's pod subnet 10.244.1.0/24"
)]
#[case::pod_ip_network(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.0 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip 10.244.1.0 is the network address of node1's pod subnet"
)]
#[case::pod_ip_gateway(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip 10.244.1.1 is node1's gateway"
)]
#[case::pod_ip_broadcast(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.255 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    33,
    "pod ip 10.244.1.255 is the broadcast address of node1's pod subnet"
)]
#[case::pod_ip_duplicate(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.5 }\n  - { name: c, node: node1, ip: 10.244.1.5 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    33,
    "duplicate pod ip 10.244.1.5: a has it too"
)]
#[case::pod_mac_not_a_mac(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, mac: 02:00:00:00:01 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    34,
    "pod mac `02:00:00:00:01`: expected six pairs of hex digits"
)]
#[case::pod_mac_group(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, mac: \"01:00:5e:00:00:01\" }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    3,
    34,
    "pod mac 01:00:5e:00:00:01 is a group address"
)]
#[case::pod_mac_duplicate(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, mac: \"02:00:00:00:00:01\" }\n  - { name: c, node: node1, mac: \"02:00:00:00:00:01\" }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    34,
    "duplicate pod mac 02:00:00:00:00:01: a has it too"
)]
#[case::pod_subnet_full(
    "cluster: { subnetLen: 30 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: c, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    5,
    5,
    "node1's pod subnet 10.244.0.4/30 has no free address left for c: it holds 1 pod addresses"
)]
#[case::listener_port_zero(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 0] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    42,
    "listener `0` is out of range 1..=65535"
)]
#[case::listener_port_too_big(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 70000/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    42,
    "listener `70000/udp` is out of range 1..=65535"
)]
#[case::listener_not_a_port(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, http] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    42,
    "listener `http` is not a port number"
)]
#[case::listener_protocol(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/sctp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    42,
    "listener protocol `sctp` is not tcp or udp"
)]
#[case::listener_duplicate(
    "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 80/tcp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    42,
    "duplicate listener 80/tcp"
)]
#[case::host_port_not_a_port(
    "nodes: [node1]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node1, listen: [{ port: 80, hostPort: 99999 }] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    60,
    "hostPort `99999` is out of range 1..=65535"
)]
#[case::host_port_twice_on_a_node(
    "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 81, hostPort: 8080 }] }\n  - { name: b, node: node1, listen: [{ port: 80, hostPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    4,
    60,
    "hostPort 8080/tcp is published by a on the same node already"
)]
#[case::name_empty(
    "name: \"\"\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
    1,
    7,
    "`name` is empty"
)]
fn validation_errors_are_located(
    #[case] yaml: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    assert_one_error(FILE, yaml, line, column, message);
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let found = diagnostics(
        FILE,
        "cluster: { mtu: 100 }
nodes: [node1, Bad]
pods:
  - { name: a, node: node9, listen: [0] }
flows:
  - { name: f, from: zz, to: a:80, timeout: 1h, expect: { fail: sometimes } }
",
    );
    assert_eq!(
        locations(&found),
        [
            (1, 17),
            (2, 16),
            (4, 22),
            (4, 38),
            (6, 22),
            (6, 45),
            (6, 65)
        ],
        "{found:#?}"
    );
}

#[rstest]
#[case::empty("")]
#[case::blank("\n\n")]
#[case::comment("# nothing\n")]
#[case::null("~\n")]
#[case::scalar("42\n")]
#[case::word("nodes\n")]
#[case::list("[]\n")]
#[case::list_of_names("- node1\n- node2\n")]
#[case::nodes_scalar("nodes: 7\n")]
#[case::nodes_nested("nodes: [[]]\n")]
#[case::nodes_empty_mapping("nodes: [{}]\n")]
#[case::nodes_null_entry("nodes: [~]\n")]
#[case::pods_mapping("nodes: [node1]\npods: { a: 1 }\n")]
#[case::pod_scalar("nodes: [node1]\npods: [7]\n")]
#[case::flow_scalar("nodes: [node1]\nflows: [x]\n")]
#[case::cluster_list("cluster: []\nnodes: [node1]\n")]
#[case::huge_mtu("cluster: { mtu: 18446744073709551616 }\nnodes: [node1]\n")]
#[case::huge_subnet_len("cluster: { subnetLen: 99999999999999999999 }\nnodes: [node1]\n")]
#[case::negative_mtu("cluster: { mtu: -1500 }\nnodes: [node1]\n")]
#[case::float_mtu("cluster: { mtu: 1.5e3 }\nnodes: [node1]\n")]
#[case::odd_listeners(
    "nodes: [node1]\npods: [{ name: a, node: node1, listen: [99999999999999999999999, -1, 1e99, .nan, true, 0x50, '', /, 80/] }]\n"
)]
#[case::labels_list("nodes: [node1]\npods: [{ name: a, node: node1, labels: [1] }]\n")]
#[case::ready_string("nodes: [node1]\npods: [{ name: a, node: node1, ready: maybe }]\n")]
#[case::all_ones_ip("nodes: [node1]\npods: [{ name: a, node: node1, ip: 255.255.255.255 }]\n")]
#[case::top_subnet(
    "cluster: { podCIDR: 255.255.255.0/24, subnetLen: 30, nodeCIDR: 10.0.0.0/30 }\nnodes: [node1, node2, { name: node3, podCIDR: 255.255.255.252/30 }]\npods: [{ name: a, node: node3 }, { name: b, node: node3 }]\n"
)]
#[case::empty_values(
    "nodes: [node1]\nflows: [{ name: , from: , to: , protocol: , timeout: , expect: { reach: , fail: , seenSource: } }]\n"
)]
#[case::empty_strings(
    "nodes: ['']\npods: [{ name: '', node: '', namespace: '', ip: '' }]\nflows: [{ name: '', from: '', to: '', protocol: '', timeout: '', expect: { reach: '', seenSource: '' } }]\n"
)]
#[case::colons("nodes: [node1]\nflows: [{ name: f, from: a, to: ':::', expect: { reach: a } }]\n")]
#[case::binary_garbage("\0\u{1}\u{7f}\u{fffd}\u{202e}garbage")]
#[case::control_characters("name: \"\\u0007\\n\\u001b[31m\"\nnodes: [\"\\n\"]\n")]
#[case::unknown_node_among_control_names(
    "nodes: [\"\\n\", \"\\t\"]\npods: [{ name: a, node: \"\\n0x\" }]\n"
)]
#[case::tab_indent("nodes:\n\t- node1\n")]
#[case::unknown_anchor("nodes: *missing\n")]
#[case::recursive_alias("a: &a [*a]\n")]
#[case::two_documents("nodes: [node1]\n---\nnodes: [node2]\n")]
#[case::binary_tag("nodes: !!binary AAAA\n")]
#[case::unterminated("{ nodes: [node1\n")]
#[case::bom_only("\u{feff}")]
fn malformed_inputs_are_located_errors(#[case] yaml: &str) {
    let err = load_str(Path::new(FILE), yaml).expect_err("a malformed case must not plan");
    let found = err.diagnostics();
    assert!(!found.is_empty(), "{err}");
    for d in found {
        assert!(d.location.is_some(), "unlocated: {d}");
        assert!(!d.message.contains('\n'), "multi-line message: {d:?}");
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_errors() {
    let deep = format!("nodes: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n\
                      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n\
                      nodes: [*g]\n";
    for yaml in [deep.as_str(), laughs] {
        let err = load_str(Path::new(FILE), yaml).unwrap_err();
        assert!(
            err.diagnostics().iter().all(|d| d.location.is_some()),
            "{err}"
        );
    }
}

/// Deterministic mutations of a valid case (cut, insert, duplicate) must never panic, and
/// whatever they break must be reported with a location.
#[test]
fn mutated_cases_never_panic() {
    let valid = "name: sample
cluster: { podCIDR: 10.244.0.0/16, subnetLen: 24, nodeCIDR: 172.18.0.0/16, overlay: vxlan, mtu: 1500 }
nodes:
  - node1
  - { name: node2, podCIDR: 10.244.7.0/24, address: 172.18.0.20 }
pods:
  - { name: a, node: node1, ip: 10.244.1.9, labels: { app: x }, ready: true }
  - name: b
    node: node2
    namespace: default
    listen: [8080/tcp, 5353/udp, 9000]
external: { listen: [80, { port: 53, protocol: udp }] }
flows:
  - { name: f, from: a, to: b:8080, protocol: tcp, timeout: 2s, expect: { reach: b, seenSource: a } }
  - { name: g, from: a, to: b:9999, expect: { fail: refused } }
  - { name: h, from: external, to: node2:30000, expect: { fail: timeout } }
  - { name: i, from: b, to: external:80, expect: { reach: external, seenSource: node2 } }
";
    plan(FILE, valid);
    let pieces = [
        ":",
        "{",
        "}",
        "[",
        "]",
        "-",
        ",",
        "&x",
        "*x",
        "!",
        "|",
        ">",
        "'",
        "\"",
        "#",
        "\n",
        " ",
        "\t",
        "0",
        "9999999999999999999999",
        "a",
        "~",
        "/",
        ".",
        "node1",
        "b:",
        "  - ",
    ];
    assert_edits_stay_located(valid, &pieces, 0x5eed, 3000);
}
