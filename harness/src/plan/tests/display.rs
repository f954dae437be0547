use super::*;

// --- rendering -----------------------------------------------------------------------

#[test]
fn the_plan_renders_every_kernel_object_and_flow() {
    let plan = plan(
        FILE,
        "name: demo
nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, listen: [8080, 53/udp] }
flows:
  - { name: f, from: a, to: b:8080, expect: { reach: b, seenSource: a } }
  - { name: g, from: a, to: b:53, protocol: udp, timeout: 500ms, expect: { fail: timeout } }
",
    );
    let veth_a = &plan.topology.pods[0].host_veth;
    let veth_b = &plan.topology.pods[1].host_veth;
    let expected = format!(
            "case demo (cases/t.yaml)
underlay netns underlay bridge br0 172.18.0.0/16 mtu 1500
node node1 (pod subnet 10.244.1.0/24)
  eth0       172.18.0.2/16 02:42:ac:12:00:02 mtu 1500 (underlay port node1)
  cni0       10.244.1.1/24 0a:58:0a:f4:01:01 mtu 1450
  flannel.1  10.244.1.0/32 0e:2a:ac:12:00:02 mtu 1450 vni 1 port 8472 local 172.18.0.2 dev eth0 learning off
  route      10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
  route      default via 172.18.0.1 dev eth0
  neigh      10.244.2.0 lladdr 0e:2a:ac:12:00:03 dev flannel.1
  fdb        0e:2a:ac:12:00:03 dst 172.18.0.3 dev flannel.1
  sysctl     net/ipv4/ip_forward=1
node node2 (pod subnet 10.244.2.0/24)
  eth0       172.18.0.3/16 02:42:ac:12:00:03 mtu 1500 (underlay port node2)
  cni0       10.244.2.1/24 0a:58:0a:f4:02:01 mtu 1450
  flannel.1  10.244.2.0/32 0e:2a:ac:12:00:03 mtu 1450 vni 1 port 8472 local 172.18.0.3 dev eth0 learning off
  route      10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
  route      default via 172.18.0.1 dev eth0
  neigh      10.244.1.0 lladdr 0e:2a:ac:12:00:02 dev flannel.1
  fdb        0e:2a:ac:12:00:02 dst 172.18.0.2 dev flannel.1
  sysctl     net/ipv4/ip_forward=1
pod a (namespace default) on node1
  eth0       10.244.1.2/24 0a:58:0a:f4:01:02 mtu 1450
  host veth  {veth_a} (port of node1's cni0)
  route      default via 10.244.1.1 dev eth0
pod b (namespace default) on node2
  eth0       10.244.2.2/24 0a:58:0a:f4:02:02 mtu 1450
  host veth  {veth_b} (port of node2's cni0)
  route      default via 10.244.2.1 dev eth0
  listen     53/udp 8080/tcp
flow f (line 7): a -> tcp 10.244.2.2:8080 (b), timeout 2s
  expect reach b, seen source a (10.244.1.2)
flow g (line 8): a -> udp 10.244.2.2:53 (b), timeout 500ms
  expect fail: timeout
"
        );
    assert_eq!(plan.to_string(), expected);
}

#[test]
fn the_plan_renders_the_external_host_and_flows_from_it() {
    let plan = plan(
        FILE,
        "external: { listen: [8080, 53/udp] }
nodes: [node1]
pods:
  - { name: a, node: node1, listen: [80] }
flows:
  - { name: in, from: external, to: node1:30000, expect: { fail: refused } }
  - { name: out, from: a, to: external:8080, expect: { reach: external, seenSource: node1 } }
",
    );
    let text = plan.to_string();
    let external = &text[text.find("external (").unwrap()..text.find("pod a").unwrap()];
    assert_eq!(
        external,
        "external (a host outside the cluster, at the underlay gateway)
  eth0       172.18.0.1/16 02:42:ac:12:00:01 mtu 1500 (underlay port external)
  listen     53/udp 8080/tcp
"
    );
    let flows = &text[text.find("flow in").unwrap()..];
    assert_eq!(
        flows,
        "flow in (line 6): external -> tcp 172.18.0.2:30000 (node1), timeout 2s
  expect fail: refused
flow out (line 7): a -> tcp 172.18.0.1:8080 (external), timeout 2s
  expect reach external, seen source node1 (172.18.0.2)
"
    );
}
