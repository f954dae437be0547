use super::*;

// --- allocation ----------------------------------------------------------------------

#[test]
fn nodes_get_positional_subnets_and_addresses_unless_set() {
    let plan = plan(
        FILE,
        "nodes: [node1, node2, { name: node3, podCIDR: 10.244.7.0/24, address: 172.18.0.20 }]\n",
    );
    let nodes = &plan.topology.nodes;
    let subnets: Vec<Ipv4Net> = nodes.iter().map(|n| n.pod_cidr).collect();
    assert_eq!(
        subnets,
        [
            cidr("10.244.1.0/24"),
            cidr("10.244.2.0/24"),
            cidr("10.244.7.0/24")
        ]
    );
    let eth0: Vec<Ipv4Net> = nodes.iter().map(|n| n.eth0.addr).collect();
    assert_eq!(
        eth0,
        [
            cidr("172.18.0.2/16"),
            cidr("172.18.0.3/16"),
            cidr("172.18.0.20/16")
        ]
    );
    assert_eq!(plan.name, "t");
    assert_eq!(plan.stem, "t");
    assert_eq!(plan.file, Path::new(FILE));
}

#[test]
fn cluster_settings_change_subnets_and_addresses() {
    let plan = plan(
        FILE,
        "cluster: { podCIDR: 10.100.0.0/16, subnetLen: 26, nodeCIDR: 192.168.50.0/24 }\n\
             nodes: [node1, node2]\n\
             pods: [{ name: a, node: node2 }]\n",
    );
    let nodes = &plan.topology.nodes;
    assert_eq!(nodes[0].pod_cidr, cidr("10.100.0.64/26"));
    assert_eq!(nodes[1].pod_cidr, cidr("10.100.0.128/26"));
    assert_eq!(nodes[1].bridge.addr, cidr("10.100.0.129/26"));
    assert_eq!(nodes[1].eth0.addr, cidr("192.168.50.3/24"));
    assert_eq!(pod_ips(&plan), named(&[("a", "10.100.0.130/26")]));
    assert_eq!(plan.topology.underlay.cidr, cidr("192.168.50.0/24"));
}

#[test]
fn pods_get_the_next_free_address_per_node_in_declared_order() {
    let plan = plan(
        FILE,
        "nodes: [node1, node2]\n\
             pods:\n\
             - { name: a, node: node1 }\n\
             - { name: b, node: node2 }\n\
             - { name: c, node: node1 }\n",
    );
    assert_eq!(
        pod_ips(&plan),
        named(&[
            ("a", "10.244.1.2/24"),
            ("b", "10.244.2.2/24"),
            ("c", "10.244.1.3/24")
        ])
    );
    assert_eq!(plan.topology.pods[1].node, 1);
}

#[test]
fn fixed_pod_addresses_are_kept_and_skipped() {
    let plan = plan(
        FILE,
        "nodes: [node1]\n\
             pods:\n\
             - { name: a, node: node1 }\n\
             - { name: b, node: node1, ip: 10.244.1.2 }\n\
             - { name: c, node: node1 }\n\
             - { name: d, node: node1, ip: 10.244.1.4 }\n\
             - { name: e, node: node1 }\n",
    );
    assert_eq!(
        pod_ips(&plan),
        named(&[
            ("a", "10.244.1.3/24"),
            ("b", "10.244.1.2/24"),
            ("c", "10.244.1.5/24"),
            ("d", "10.244.1.4/24"),
            ("e", "10.244.1.6/24")
        ])
    );
}

#[test]
fn a_full_subnet_takes_exactly_its_capacity() {
    // A /29 holds .2 to .6: five pods.
    let pods: String = (1..=5)
        .map(|i| format!("  - {{ name: p{i}, node: node1 }}\n"))
        .collect();
    let plan = plan(
        FILE,
        &format!("cluster: {{ subnetLen: 29 }}\nnodes: [node1]\npods:\n{pods}"),
    );
    assert_eq!(plan.topology.pods[4].eth0.addr, cidr("10.244.0.14/29"));
}
