use super::*;

// --- interfaces ----------------------------------------------------------------------

#[test]
fn node_interfaces_follow_kind_cni_and_flannel() {
    let plan = plan(FILE, "nodes: [node1, node2]\n");
    let topo = &plan.topology;
    assert_eq!(
        topo.underlay,
        Underlay {
            netns: "underlay".into(),
            bridge: "br0".into(),
            cidr: cidr("172.18.0.0/16"),
            mtu: 1500,
        }
    );
    let node = &topo.nodes[0];
    assert_eq!(node.name, "node1");
    assert_eq!(node.underlay_port, "node1");
    assert_eq!(
        node.eth0,
        Iface {
            name: "eth0".into(),
            mac: Mac([0x02, 0x42, 172, 18, 0, 2]),
            addr: cidr("172.18.0.2/16"),
            mtu: 1500,
        }
    );
    assert_eq!(
        node.bridge,
        Iface {
            name: "cni0".into(),
            mac: Mac([0x0a, 0x58, 10, 244, 1, 1]),
            addr: cidr("10.244.1.1/24"),
            mtu: 1450,
        }
    );
    assert_eq!(
        node.network.vxlan,
        Some(Vxlan {
            name: "flannel.1".into(),
            vni: 1,
            port: 8472,
            mac: Mac([0x0e, 0x2a, 172, 18, 0, 2]),
            addr: cidr("10.244.1.0/32"),
            mtu: 1450,
            local: ip("172.18.0.2"),
            underlay_dev: "eth0".into(),
            learning: false,
        })
    );
    assert_eq!(
        node.sysctls,
        [("net/ipv4/ip_forward".to_owned(), "1".to_owned())]
    );
}

#[test]
fn pod_interfaces_routes_and_listeners() {
    let plan = plan(
        FILE,
        "nodes: [node1]\n\
             pods: [{ name: a, node: node1, namespace: shop, listen: [9000, 5353/udp, 8080/tcp, 53/udp] }]\n",
    );
    let pod = &plan.topology.pods[0];
    assert_eq!(pod.namespace, "shop");
    assert_eq!(
        pod.eth0,
        Iface {
            name: "eth0".into(),
            mac: Mac([0x0a, 0x58, 10, 244, 1, 2]),
            addr: cidr("10.244.1.2/24"),
            mtu: 1450,
        }
    );
    assert_eq!(
        pod.routes,
        [Route {
            dst: cidr("0.0.0.0/0"),
            via: Some(ip("10.244.1.1")),
            dev: "eth0".into(),
            onlink: false,
        }]
    );
    let listeners: Vec<String> = pod.listeners.iter().map(Listener::to_string).collect();
    assert_eq!(listeners, ["53/udp", "5353/udp", "8080/tcp", "9000/tcp"]);
    assert_eq!(pod.host_veth, format!("veth{:08x}", fnv1a32(b"shop/a")));
}

#[test]
fn fnv1a32_matches_the_reference_vectors() {
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

#[test]
fn host_veth_names_rehash_on_a_clash() {
    let first = host_veth_name("default/a", &HashSet::new());
    assert_eq!(first, format!("veth{:08x}", fnv1a32(b"default/a")));
    let taken: HashSet<String> = [first.clone()].into();
    let second = host_veth_name("default/a", &taken);
    assert_eq!(second, format!("veth{:08x}", fnv1a32(b"default/a#1")));
    let taken: HashSet<String> = [first, second.clone()].into();
    assert_eq!(
        host_veth_name("default/a", &taken),
        format!("veth{:08x}", fnv1a32(b"default/a#2"))
    );
}

#[test]
fn host_veth_names_are_unique_within_a_node() {
    let pods: String = (0..300)
        .map(|i| format!("  - {{ name: p{i}, node: node1 }}\n"))
        .collect();
    let plan = plan(
        FILE,
        &format!("cluster: {{ subnetLen: 22 }}\nnodes: [node1]\npods:\n{pods}"),
    );
    let veths: HashSet<&str> = plan
        .topology
        .pods
        .iter()
        .map(|p| p.host_veth.as_str())
        .collect();
    assert_eq!(veths.len(), 300);
    assert!(veths.iter().all(|v| v.len() == 12 && v.starts_with("veth")));
}

// --- overlays ------------------------------------------------------------------------

#[test]
fn flannel_programs_one_neighbour_fdb_entry_and_route_per_peer() {
    let plan = plan(FILE, "nodes: [node1, node2, node3]\n");
    let nodes = &plan.topology.nodes;
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.network.neighbours.len(), 2, "{}", node.name);
        assert_eq!(node.network.fdb.len(), 2, "{}", node.name);
        // One route per peer, then the default route via the underlay gateway.
        assert_eq!(node.network.routes.len(), 2, "{}", node.name);
        assert_eq!(node.routes, [default_route()], "{}", node.name);
        for (j, peer) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            let peer_ip = peer.eth0.addr.addr();
            let peer_vtep = Mac::from_ip([0x0e, 0x2a], peer_ip);
            assert_eq!(peer.network.vxlan.as_ref().unwrap().mac, peer_vtep);
            let neigh = Neighbour {
                dev: "flannel.1".into(),
                ip: peer.pod_cidr.network(),
                mac: peer_vtep,
            };
            let fdb = FdbEntry {
                dev: "flannel.1".into(),
                mac: peer_vtep,
                dst: peer_ip,
            };
            let route = Route {
                dst: peer.pod_cidr,
                via: Some(peer.pod_cidr.network()),
                dev: "flannel.1".into(),
                onlink: true,
            };
            assert_eq!(
                node.network
                    .neighbours
                    .iter()
                    .filter(|n| **n == neigh)
                    .count(),
                1
            );
            assert_eq!(node.network.fdb.iter().filter(|e| **e == fdb).count(), 1);
            assert_eq!(
                node.network.routes.iter().filter(|r| **r == route).count(),
                1
            );
            assert_eq!(peer.pod_cidr, cidr(&format!("10.244.{}.0/24", j + 1)));
        }
    }
    // Spelled out once, for node1.
    assert_eq!(
        nodes[0].network.routes[1],
        Route {
            dst: cidr("10.244.3.0/24"),
            via: Some(ip("10.244.3.0")),
            dev: "flannel.1".into(),
            onlink: true,
        }
    );
    assert_eq!(
        nodes[0].network.fdb[1],
        FdbEntry {
            dev: "flannel.1".into(),
            mac: Mac([0x0e, 0x2a, 172, 18, 0, 4]),
            dst: ip("172.18.0.4"),
        }
    );
    assert_eq!(nodes[0].network.neighbours[1].ip, ip("10.244.3.0"));
}

#[test]
fn host_gw_routes_each_peer_subnet_via_the_peer_address() {
    let plan = plan(
        FILE,
        "cluster: { overlay: host-gw }\nnodes: [node1, node2, node3]\n",
    );
    let node = &plan.topology.nodes[1];
    assert_eq!(node.network.vxlan, None);
    assert!(node.network.neighbours.is_empty() && node.network.fdb.is_empty());
    assert_eq!(node.routes, [default_route()]);
    assert_eq!(
        node.network.routes,
        [
            Route {
                dst: cidr("10.244.1.0/24"),
                via: Some(ip("172.18.0.2")),
                dev: "eth0".into(),
                onlink: false,
            },
            Route {
                dst: cidr("10.244.3.0/24"),
                via: Some(ip("172.18.0.4")),
                dev: "eth0".into(),
                onlink: false,
            },
        ]
    );
}

fn default_route() -> Route {
    Route {
        dst: cidr("0.0.0.0/0"),
        via: Some(ip("172.18.0.1")),
        dev: "eth0".into(),
        onlink: false,
    }
}

#[test]
fn overlay_none_programs_nothing() {
    let plan = plan(FILE, "cluster: { overlay: none }\nnodes: [node1, node2]\n");
    for node in &plan.topology.nodes {
        assert_eq!(node.network.vxlan, None);
        assert_eq!(node.routes, [default_route()]);
        assert!(node.network.neighbours.is_empty() && node.network.fdb.is_empty());
    }
}

#[rstest]
#[case::vxlan_default("", 1500, 1450, Some(1450))]
#[case::vxlan_jumbo("overlay: vxlan, mtu: 9000", 9000, 8950, Some(8950))]
#[case::vxlan_smallest("mtu: 626", 626, 576, Some(576))]
#[case::host_gw("overlay: host-gw", 1500, 1500, None)]
#[case::none_small("overlay: none, mtu: 600", 600, 600, None)]
fn mtus(#[case] cluster: &str, #[case] eth0: u32, #[case] pods: u32, #[case] vxlan: Option<u32>) {
    let plan = plan(
        FILE,
        &format!("cluster: {{ {cluster} }}\nnodes: [node1]\npods: [{{ name: a, node: node1 }}]\n"),
    );
    let node = &plan.topology.nodes[0];
    assert_eq!(plan.topology.underlay.mtu, eth0);
    assert_eq!(node.eth0.mtu, eth0);
    assert_eq!(node.bridge.mtu, pods);
    assert_eq!(node.network.vxlan.as_ref().map(|v| v.mtu), vxlan);
    assert_eq!(plan.topology.pods[0].eth0.mtu, pods);
}
