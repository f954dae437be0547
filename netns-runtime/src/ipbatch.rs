//! The same cluster as iproute2 batch scripts: the kernel floor [`crate::Cluster::build`] is
//! measured against.
//!
//! [`render`] is pure: it turns a [`Topology`] into the scripts that make exactly the kernel
//! objects `Cluster::build` makes (namespaces, links with their MACs and MTUs, bridge ports with
//! hairpin mode, addresses, routes, neighbours, FDB entries), in an order that works:
//!
//! 1. [`IpBatch::global`], `ip -batch FILE` in the caller's namespace: every `netns add`;
//! 2. [`IpBatch::sysctls`], written by the caller from inside each namespace (see below);
//! 3. [`IpBatch::scripts`], in order, each `ip -n NS -batch FILE` or `bridge -n NS -batch FILE`:
//!    the underlay (`br0` and every node's veth, whose `eth0` end is created directly in the
//!    node), then per node its own objects and its pods' veths (whose `eth0` ends are created
//!    directly in the pods), then its FDB entries (`bridge fdb` is another binary), then per pod
//!    its address and routes;
//! 4. [`IpBatch::teardown`], `ip -batch FILE`: every `netns del`, pods first, as
//!    `Cluster::teardown` does.
//!
//! `ip -batch` has no per-line namespace, so the floor is one `ip` process per namespace, one
//! more creating them all, and one `bridge` process per node with FDB entries.
//!
//! Sysctls cannot be written by `ip`: they are files under `/proc/sys/net` that show the network
//! namespace of the process opening them. The only `ip` way is `ip netns exec NS sysctl -w ...`,
//! one more fork, exec and mount namespace per namespace, which would make the floor slower than
//! it is. So the renderer hands them over as data ([`NetnsSysctls`]), and the caller writes them
//! the way `Cluster::build` does, from a thread inside the namespace, after step 1 and before
//! step 3: before any interface but `lo` exists in the namespace, so that the IPv6-off defaults
//! apply to every interface, as in `Cluster::build`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::cluster::{IPV6_OFF, UNDERLAY_BRIDGE_MAC};
use crate::topology::{Iface, Mac, Node, Pod, Route, Topology};

/// A cluster as iproute2 batch scripts, in the order they must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBatch {
    /// For `ip -batch`, in the caller's namespace: creates every namespace.
    pub global: String,
    /// Sysctls to write inside each namespace, after [`IpBatch::global`] and before any script.
    pub sysctls: Vec<NetnsSysctls>,
    /// Per-namespace scripts, to run one after the other in this order.
    pub scripts: Vec<NetnsScript>,
    /// For `ip -batch`, in the caller's namespace: deletes every namespace.
    pub teardown: String,
}

/// The sysctls of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsSysctls {
    pub netns: String,
    pub sysctls: Vec<Sysctl>,
}

/// One sysctl, as a path below `/proc/sys` (`net/ipv4/ip_forward`) and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
    /// Skipped when the file does not exist (the IPv6 switches on a kernel without IPv6), as
    /// `Cluster::build` does.
    pub optional: bool,
}

/// Which iproute2 binary runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ip,
    Bridge,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Ip => "ip",
            Tool::Bridge => "bridge",
        }
    }
}

/// A batch script for one namespace: `<tool> -n <netns> -batch FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsScript {
    pub tool: Tool,
    pub netns: String,
    pub script: String,
}

impl NetnsScript {
    /// The arguments after the program name, given the file holding [`NetnsScript::script`].
    pub fn args(&self, file: &str) -> [String; 4] {
        [
            "-n".into(),
            self.netns.clone(),
            "-batch".into(),
            file.into(),
        ]
    }
}

/// Renders `topo` as iproute2 batch scripts making the kernel objects `Cluster::build` makes.
pub fn render(topo: &Topology) -> IpBatch {
    let u = &topo.underlay;
    let mut global = String::new();
    let mut teardown = String::new();
    let mut sysctls = Vec::with_capacity(1 + topo.nodes.len() + topo.pods.len());
    let ipv6_off = || -> Vec<Sysctl> {
        IPV6_OFF
            .iter()
            .map(|(k, v)| Sysctl {
                key: (*k).into(),
                value: (*v).into(),
                optional: true,
            })
            .collect()
    };
    let node_sysctls = topo.nodes.iter().map(|n| (n.name.as_str(), &n.sysctls[..]));
    let namespaces = std::iter::once((u.netns.as_str(), &[][..]))
        .chain(node_sysctls)
        .chain(topo.pods.iter().map(|p| (p.name.as_str(), &[][..])));
    for (name, own) in namespaces {
        let _ = writeln!(global, "netns add {name}");
        let mut list = ipv6_off();
        list.extend(own.iter().map(|(k, v)| Sysctl {
            key: k.clone(),
            value: v.clone(),
            optional: false,
        }));
        sysctls.push(NetnsSysctls {
            netns: name.into(),
            sysctls: list,
        });
    }
    let teardown_names = topo
        .pods
        .iter()
        .map(|p| p.name.as_str())
        .chain(topo.nodes.iter().map(|n| n.name.as_str()))
        .chain(std::iter::once(u.netns.as_str()));
    for name in teardown_names {
        let _ = writeln!(teardown, "netns del {name}");
    }

    let mut scripts = Vec::with_capacity(1 + 2 * topo.nodes.len() + topo.pods.len());
    let mut s = String::new();
    let _ = writeln!(s, "link set dev lo up");
    let _ = writeln!(
        s,
        "link add {} address {UNDERLAY_BRIDGE_MAC} mtu {} type bridge",
        u.bridge, u.mtu
    );
    let _ = writeln!(s, "link set dev {} up", u.bridge);
    for node in &topo.nodes {
        veth(
            &mut s,
            &node.underlay_port,
            &node.eth0,
            &node.name,
            &u.bridge,
        );
        let _ = writeln!(s, "link set dev {} up", node.underlay_port);
    }
    scripts.push(NetnsScript {
        tool: Tool::Ip,
        netns: u.netns.clone(),
        script: s,
    });

    for (index, node) in topo.nodes.iter().enumerate() {
        let pods = topo.pods.iter().filter(|p| p.node == index);
        scripts.push(NetnsScript {
            tool: Tool::Ip,
            netns: node.name.clone(),
            script: node_script(node, pods),
        });
        if !node.network.fdb.is_empty() {
            let mut b = String::new();
            for f in &node.network.fdb {
                let _ = writeln!(
                    b,
                    "fdb append {} dev {} dst {} self permanent",
                    f.mac, f.dev, f.dst
                );
            }
            scripts.push(NetnsScript {
                tool: Tool::Bridge,
                netns: node.name.clone(),
                script: b,
            });
        }
    }
    for pod in &topo.pods {
        scripts.push(NetnsScript {
            tool: Tool::Ip,
            netns: pod.name.clone(),
            script: pod_script(pod),
        });
    }
    IpBatch {
        global,
        sysctls,
        scripts,
        teardown,
    }
}

/// A veth pair whose `peer` end is created directly inside `netns` (with its MAC), and whose
/// local end (kernel-random MAC) joins `master`. Both ends get the peer's MTU.
fn veth(s: &mut String, local: &str, peer: &Iface, netns: &str, master: &str) {
    let _ = writeln!(
        s,
        "link add {local} mtu {mtu} type veth peer name {} address {} mtu {mtu} netns {netns}",
        peer.name,
        peer.mac,
        mtu = peer.mtu
    );
    let _ = writeln!(s, "link set dev {local} master {master}");
}

fn node_script<'a>(node: &Node, pods: impl Iterator<Item = &'a Pod>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "link set dev lo up");
    addr(&mut s, node.eth0.addr, &node.eth0.name);
    let _ = writeln!(s, "link set dev {} up", node.eth0.name);
    let b = &node.bridge;
    bridge(&mut s, &b.name, b.mac, b.mtu);
    addr(&mut s, b.addr, &b.name);
    let _ = writeln!(s, "link set dev {} up", b.name);
    if let Some(v) = &node.network.vxlan {
        let _ = writeln!(
            s,
            "link add {} address {} mtu {} type vxlan id {} local {} dev {} dstport {} {}",
            v.name,
            v.mac,
            v.mtu,
            v.vni,
            v.local,
            v.underlay_dev,
            v.port,
            if v.learning { "learning" } else { "nolearning" }
        );
        addr(&mut s, v.addr, &v.name);
        let _ = writeln!(s, "link set dev {} up", v.name);
    }
    for n in &node.network.neighbours {
        let _ = writeln!(
            s,
            "neigh replace {} lladdr {} dev {} nud permanent",
            n.ip, n.mac, n.dev
        );
    }
    for r in node.network.routes.iter().chain(&node.routes) {
        route(&mut s, r);
    }
    for pod in pods {
        veth(&mut s, &pod.host_veth, &pod.eth0, &pod.name, &b.name);
        let _ = writeln!(
            s,
            "link set dev {} type bridge_slave hairpin on",
            pod.host_veth
        );
        let _ = writeln!(s, "link set dev {} up", pod.host_veth);
    }
    s
}

fn pod_script(pod: &Pod) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "link set dev lo up");
    addr(&mut s, pod.eth0.addr, &pod.eth0.name);
    let _ = writeln!(s, "link set dev {} up", pod.eth0.name);
    for r in &pod.routes {
        route(&mut s, r);
    }
    s
}

fn bridge(s: &mut String, name: &str, mac: Mac, mtu: u32) {
    let _ = writeln!(s, "link add {name} address {mac} mtu {mtu} type bridge");
}

/// As `Netlink::add_addr`: scope global, the broadcast address below /31.
fn addr(s: &mut String, addr: Ipv4Net, dev: &str) {
    if addr.prefix_len() < 31 {
        let _ = writeln!(
            s,
            "address add {addr} broadcast {} dev {dev}",
            addr.broadcast()
        );
    } else {
        let _ = writeln!(s, "address add {addr} dev {dev}");
    }
}

/// As `Netlink::add_route`: `ip route add` defaults to proto boot, and to scope link without a
/// gateway, universe with one.
fn route(s: &mut String, r: &Route) {
    let dst = if r.dst.prefix_len() == 0 && r.dst.addr() == Ipv4Addr::UNSPECIFIED {
        "default".to_string()
    } else {
        r.dst.to_string()
    };
    let _ = write!(s, "route add {dst}");
    if let Some(via) = r.via {
        let _ = write!(s, " via {via}");
    }
    let _ = write!(s, " dev {}", r.dev);
    if r.onlink {
        let _ = write!(s, " onlink");
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{FdbEntry, Neighbour, Underlay, Vxlan};
    use rstest::rstest;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Two nodes, one pod each, flannel VXLAN or host-gw between them.
    fn topology(vxlan: bool) -> Topology {
        let node = |i: u8| {
            let addr = Ipv4Addr::new(172, 18, 0, 1 + i);
            let peer_i = 3 - i;
            let peer_addr = Ipv4Addr::new(172, 18, 0, 1 + peer_i);
            let peer_subnet = Ipv4Net::new(Ipv4Addr::new(10, 244, peer_i, 0), 24).unwrap();
            let peer_vtep = Mac::from_ip([0x0e, 0x2a], peer_addr);
            let (vx, routes, neighbours, fdb) = if vxlan {
                (
                    Some(Vxlan {
                        name: "flannel.1".into(),
                        vni: 1,
                        port: 8472,
                        mac: Mac::from_ip([0x0e, 0x2a], addr),
                        addr: Ipv4Net::new(Ipv4Addr::new(10, 244, i, 0), 32).unwrap(),
                        mtu: 1450,
                        local: addr,
                        underlay_dev: "eth0".into(),
                        learning: false,
                    }),
                    vec![Route {
                        dst: peer_subnet,
                        via: Some(peer_subnet.addr()),
                        dev: "flannel.1".into(),
                        onlink: true,
                    }],
                    vec![Neighbour {
                        dev: "flannel.1".into(),
                        ip: peer_subnet.addr(),
                        mac: peer_vtep,
                    }],
                    vec![FdbEntry {
                        dev: "flannel.1".into(),
                        mac: peer_vtep,
                        dst: peer_addr,
                    }],
                )
            } else {
                (
                    None,
                    vec![Route {
                        dst: peer_subnet,
                        via: Some(peer_addr),
                        dev: "eth0".into(),
                        onlink: false,
                    }],
                    vec![],
                    vec![],
                )
            };
            let gw = Ipv4Addr::new(10, 244, i, 1);
            Node {
                name: format!("node{i}"),
                eth0: Iface {
                    name: "eth0".into(),
                    mac: Mac::from_ip([0x02, 0x42], addr),
                    addr: Ipv4Net::new(addr, 16).unwrap(),
                    mtu: 1500,
                },
                underlay_port: format!("node{i}"),
                pod_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, i, 0), 24).unwrap(),
                bridge: Iface {
                    name: "cni0".into(),
                    mac: Mac::from_ip([0x0a, 0x58], gw),
                    addr: Ipv4Net::new(gw, 24).unwrap(),
                    mtu: if vxlan { 1450 } else { 1500 },
                },
                network: crate::topology::NetworkLayout {
                    vxlan: vx,
                    routes,
                    neighbours,
                    fdb,
                    masquerade: None,
                },
                routes: Vec::new(),
                sysctls: vec![("net/ipv4/ip_forward".into(), "1".into())],
            }
        };
        let pod = |name: &str, node: usize, a: &str| {
            let addr = net(a);
            let gw = Ipv4Addr::new(10, 244, node as u8 + 1, 1);
            Pod {
                name: name.into(),
                namespace: "default".into(),
                node,
                eth0: Iface {
                    name: "eth0".into(),
                    mac: Mac::from_ip([0x0a, 0x58], addr.addr()),
                    addr,
                    mtu: if vxlan { 1450 } else { 1500 },
                },
                host_veth: format!("veth{name}"),
                requested_ip: None,
                requested_mac: None,
                routes: vec![Route {
                    dst: net("0.0.0.0/0"),
                    via: Some(gw),
                    dev: "eth0".into(),
                    onlink: false,
                }],
                listeners: vec![],
                host_ports: Vec::new(),
                resolv_conf: None,
                hosts: None,
            }
        };
        Topology {
            cluster_cidr: net("10.244.0.0/16"),
            underlay: Underlay {
                netns: "underlay".into(),
                bridge: "br0".into(),
                cidr: net("172.18.0.0/16"),
                mtu: 1500,
            },
            nodes: vec![node(1), node(2)],
            pods: vec![pod("a", 0, "10.244.1.2/24"), pod("b", 1, "10.244.2.2/24")],
            external: None,
            dns: None,
        }
    }

    #[test]
    fn vxlan_cluster_renders_every_object() {
        let b = render(&topology(true));
        assert_eq!(
            b.global,
            "netns add underlay\nnetns add node1\nnetns add node2\nnetns add a\nnetns add b\n"
        );
        assert_eq!(
            b.teardown,
            "netns del a\nnetns del b\nnetns del node1\nnetns del node2\nnetns del underlay\n"
        );
        let order: Vec<(Tool, &str)> = b
            .scripts
            .iter()
            .map(|s| (s.tool, s.netns.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (Tool::Ip, "underlay"),
                (Tool::Ip, "node1"),
                (Tool::Bridge, "node1"),
                (Tool::Ip, "node2"),
                (Tool::Bridge, "node2"),
                (Tool::Ip, "a"),
                (Tool::Ip, "b"),
            ]
        );
        assert_eq!(
            b.scripts[0].script,
            "\
link set dev lo up
link add br0 address 02:50:50:00:00:01 mtu 1500 type bridge
link set dev br0 up
link add node1 mtu 1500 type veth peer name eth0 address 02:42:ac:12:00:02 mtu 1500 netns node1
link set dev node1 master br0
link set dev node1 up
link add node2 mtu 1500 type veth peer name eth0 address 02:42:ac:12:00:03 mtu 1500 netns node2
link set dev node2 master br0
link set dev node2 up
"
        );
        assert_eq!(
            b.scripts[1].script,
            "\
link set dev lo up
address add 172.18.0.2/16 broadcast 172.18.255.255 dev eth0
link set dev eth0 up
link add cni0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge
address add 10.244.1.1/24 broadcast 10.244.1.255 dev cni0
link set dev cni0 up
link add flannel.1 address 0e:2a:ac:12:00:02 mtu 1450 type vxlan id 1 local 172.18.0.2 dev eth0 dstport 8472 nolearning
address add 10.244.1.0/32 dev flannel.1
link set dev flannel.1 up
neigh replace 10.244.2.0 lladdr 0e:2a:ac:12:00:03 dev flannel.1 nud permanent
route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
link add vetha mtu 1450 type veth peer name eth0 address 0a:58:0a:f4:01:02 mtu 1450 netns a
link set dev vetha master cni0
link set dev vetha type bridge_slave hairpin on
link set dev vetha up
"
        );
        assert_eq!(
            b.scripts[2].script,
            "fdb append 0e:2a:ac:12:00:03 dev flannel.1 dst 172.18.0.3 self permanent\n"
        );
        assert_eq!(
            b.scripts[5].script,
            "\
link set dev lo up
address add 10.244.1.2/24 broadcast 10.244.1.255 dev eth0
link set dev eth0 up
route add default via 10.244.1.1 dev eth0
"
        );
    }

    #[rstest]
    #[case::underlay("underlay", false)]
    #[case::node("node2", true)]
    #[case::pod("b", false)]
    fn every_namespace_turns_ipv6_off_and_nodes_forward(
        #[case] netns: &str,
        #[case] forwards: bool,
    ) {
        let b = render(&topology(true));
        let s = b.sysctls.iter().find(|s| s.netns == netns).unwrap();
        let keys: Vec<(&str, &str, bool)> = s
            .sysctls
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str(), s.optional))
            .collect();
        let mut expected = vec![
            ("net/ipv6/conf/all/disable_ipv6", "1", true),
            ("net/ipv6/conf/default/disable_ipv6", "1", true),
        ];
        if forwards {
            expected.push(("net/ipv4/ip_forward", "1", false));
        }
        assert_eq!(keys, expected);
        // One entry per namespace, in creation order.
        let order: Vec<&str> = b.sysctls.iter().map(|s| s.netns.as_str()).collect();
        assert_eq!(order, ["underlay", "node1", "node2", "a", "b"]);
    }

    #[test]
    fn host_gw_needs_no_bridge_tool_and_routes_via_the_peer() {
        let b = render(&topology(false));
        assert!(b.scripts.iter().all(|s| s.tool == Tool::Ip));
        let node1 = &b.scripts[1];
        assert_eq!(node1.netns, "node1");
        assert!(!node1.script.contains("vxlan"));
        assert!(!node1.script.contains("neigh"));
        assert!(
            node1
                .script
                .contains("route add 10.244.2.0/24 via 172.18.0.3 dev eth0\n")
        );
    }

    #[rstest]
    #[case::slash24("10.0.0.1/24", "address add 10.0.0.1/24 broadcast 10.0.0.255 dev x\n")]
    #[case::slash30("10.0.0.1/30", "address add 10.0.0.1/30 broadcast 10.0.0.3 dev x\n")]
    #[case::slash31("10.0.0.1/31", "address add 10.0.0.1/31 dev x\n")]
    #[case::slash32("10.0.0.1/32", "address add 10.0.0.1/32 dev x\n")]
    fn broadcast_only_below_31(#[case] a: &str, #[case] line: &str) {
        let mut s = String::new();
        addr(&mut s, net(a), "x");
        assert_eq!(s, line);
    }

    #[rstest]
    #[case::default_via(
        "0.0.0.0/0",
        Some("10.0.0.1"),
        false,
        "route add default via 10.0.0.1 dev x\n"
    )]
    #[case::connected("10.1.0.0/16", None, false, "route add 10.1.0.0/16 dev x\n")]
    #[case::onlink(
        "10.1.2.0/24",
        Some("10.1.2.0"),
        true,
        "route add 10.1.2.0/24 via 10.1.2.0 dev x onlink\n"
    )]
    fn routes(
        #[case] dst: &str,
        #[case] via: Option<&str>,
        #[case] onlink: bool,
        #[case] line: &str,
    ) {
        let mut s = String::new();
        route(
            &mut s,
            &Route {
                dst: net(dst),
                via: via.map(ip),
                dev: "x".into(),
                onlink,
            },
        );
        assert_eq!(s, line);
    }

    #[test]
    fn scripts_run_as_n_netns_batch_file() {
        let b = render(&topology(true));
        assert_eq!(b.scripts[2].tool.program(), "bridge");
        assert_eq!(
            b.scripts[2].args("/tmp/f"),
            ["-n", "node1", "-batch", "/tmp/f"]
        );
    }
}
