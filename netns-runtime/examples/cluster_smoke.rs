use netns_runtime::topology::*;
use netns_runtime::{Cluster, ProbeTarget};
use std::net::Ipv4Addr;
use std::time::Duration;

fn main() {
    netns_runtime::sandbox::enter().expect("sandbox");
    let n = |i: u8| -> Node {
        let ip = Ipv4Addr::new(172, 18, 0, 1 + i);
        let peer = 3 - i;
        Node {
            name: format!("node{i}"),
            eth0: Iface {
                name: "eth0".into(),
                mac: Mac::from_ip([2, 0x42], ip),
                addr: format!("{ip}/16").parse().unwrap(),
                mtu: 1500,
            },
            underlay_port: format!("node{i}"),
            pod_cidr: format!("10.244.{i}.0/24").parse().unwrap(),
            bridge: Iface {
                name: "cni0".into(),
                mac: Mac::from_ip([0x0a, 0x58], Ipv4Addr::new(10, 244, i, 1)),
                addr: format!("10.244.{i}.1/24").parse().unwrap(),
                mtu: 1450,
            },
            vxlan: Some(Vxlan {
                name: "flannel.1".into(),
                vni: 1,
                port: 8472,
                mac: Mac::from_ip([0x0e, 0x2a], ip),
                addr: format!("10.244.{i}.0/32").parse().unwrap(),
                mtu: 1450,
                local: ip,
                underlay_dev: "eth0".into(),
                learning: false,
            }),
            routes: vec![Route {
                dst: format!("10.244.{peer}.0/24").parse().unwrap(),
                via: Some(Ipv4Addr::new(10, 244, peer, 0)),
                dev: "flannel.1".into(),
                onlink: true,
            }],
            neighbours: vec![Neighbour {
                dev: "flannel.1".into(),
                ip: Ipv4Addr::new(10, 244, peer, 0),
                mac: Mac::from_ip([0x0e, 0x2a], Ipv4Addr::new(172, 18, 0, 1 + peer)),
            }],
            fdb: vec![FdbEntry {
                dev: "flannel.1".into(),
                mac: Mac::from_ip([0x0e, 0x2a], Ipv4Addr::new(172, 18, 0, 1 + peer)),
                dst: Ipv4Addr::new(172, 18, 0, 1 + peer),
            }],
            sysctls: vec![("net/ipv4/ip_forward".into(), "1".into())],
        }
    };
    let p = |name: &str, node: usize, i: u8| -> Pod {
        let ip = Ipv4Addr::new(10, 244, node as u8 + 1, i);
        Pod {
            name: name.into(),
            namespace: "default".into(),
            node,
            eth0: Iface {
                name: "eth0".into(),
                mac: Mac::from_ip([0x0a, 0x58], ip),
                addr: format!("{ip}/24").parse().unwrap(),
                mtu: 1450,
            },
            host_veth: format!("veth{name}"),
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                via: Some(Ipv4Addr::new(10, 244, node as u8 + 1, 1)),
                dev: "eth0".into(),
                onlink: false,
            }],
            listeners: vec![
                Listener {
                    port: 8080,
                    proto: Proto::Tcp,
                },
                Listener {
                    port: 5353,
                    proto: Proto::Udp,
                },
            ],
        }
    };
    let topo = Topology {
        underlay: Underlay {
            netns: "underlay".into(),
            bridge: "br0".into(),
            cidr: "172.18.0.0/16".parse().unwrap(),
            mtu: 1500,
        },
        nodes: vec![n(1), n(2)],
        pods: vec![p("a", 0, 2), p("b", 1, 2), p("c", 0, 3)],
    };
    let t = std::time::Instant::now();
    let c = Cluster::build(&topo).expect("build");
    println!("built in {:?}", t.elapsed());
    for (from, target) in [
        ("a", ProbeTarget::Tcp("10.244.2.2:8080".parse().unwrap())),
        ("a", ProbeTarget::Udp("10.244.2.2:5353".parse().unwrap())),
        ("a", ProbeTarget::Icmp("10.244.2.2".parse().unwrap())),
        ("a", ProbeTarget::Tcp("10.244.1.3:8080".parse().unwrap())),
        ("a", ProbeTarget::Tcp("10.244.1.3:9999".parse().unwrap())),
        ("a", ProbeTarget::Udp("10.244.1.3:9999".parse().unwrap())),
        ("a", ProbeTarget::Tcp("10.244.9.3:9999".parse().unwrap())),
        ("a", ProbeTarget::Icmp("10.244.9.3".parse().unwrap())),
    ] {
        println!(
            "{from} -> {target}: {}",
            c.probe(from, target, Duration::from_secs(2))
        );
    }
    let out = std::process::Command::new("sh").arg("-c").arg("ip netns exec node1 ip -d link show flannel.1; ip netns exec node1 bridge fdb show dev flannel.1; ip netns exec node1 ip neigh; ip netns exec node1 ip route; ip netns exec node1 bridge -d link show | grep -i hairpin | head -2").output().unwrap();
    println!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::time::Instant::now();
    c.teardown().unwrap();
    println!("torn down in {:?}", t.elapsed());
}
