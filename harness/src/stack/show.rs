//! What a stack's drivers will make of a plan, for `podpath plan --stack`: the Calico drivers'
//! layout is a pure function of the topology, so it is printed without privileges.

use netns_runtime::stack::calico;

use crate::plan::Plan;
use crate::stack::{AttachLayer, NetworkLayer, Stack};

/// The stack's layout for `plan`, after a heading naming the stack.
pub fn layout(stack: &Stack, plan: &Plan) -> String {
    let mut out = format!("\n# {}\n", stack.describe());
    let calico =
        stack.attach == AttachLayer::Calico || matches!(stack.network, NetworkLayer::Calico(_));
    if !calico {
        out.push_str(
            "(the plan above is what this stack's builtin drivers make; exec drivers decide for themselves)\n",
        );
        return out;
    }
    match calico::describe(&plan.topology, stack.calico_mode()) {
        Ok(text) => out.push_str(&text),
        Err(e) => out.push_str(&format!("calico IPAM cannot place the pods: {e}\n")),
    }
    if stack.attach == AttachLayer::Calico {
        out.push_str(
            "(pod addresses, host-side veths and everything planned from them above are bound to these when the cluster is built)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use netns_runtime::stack::calico::{self, CalicoMode};

    use crate::plan::testing::plan;
    use crate::stack::Stack;

    const CASE: &str = "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: fixed, node: node1, ip: 10.244.1.2 }\n  - { name: far, node: node1, ip: 10.244.1.200 }\n  - { name: a2, node: node1 }\n  - { name: b, node: node2 }\n";

    #[test]
    fn ipam_gives_the_tunnel_the_first_address_and_honours_fixed_ones() {
        let p = plan("c.yaml", CASE);
        let ipam = calico::ipam(&p.topology, CalicoMode::Vxlan).unwrap();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(ipam.nodes[0].tunnel, Some(ip("10.244.1.0")));
        // `a2` skips the address `fixed` asks for; `far` claims the block holding its own.
        assert_eq!(
            ipam.pods,
            [
                ip("10.244.1.1"),
                ip("10.244.1.2"),
                ip("10.244.1.200"),
                ip("10.244.1.3"),
                ip("10.244.2.1")
            ]
        );
        let blocks: Vec<String> = ipam.nodes[0]
            .blocks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(blocks, ["10.244.1.0/26", "10.244.1.192/26"]);
        // Routed: no tunnel, the pods start at the block's first address.
        let routed = calico::ipam(&p.topology, CalicoMode::Routed).unwrap();
        assert_eq!(routed.pods[0], ip("10.244.1.0"));
    }

    #[test]
    fn plan_shows_the_calico_layout_unprivileged() {
        let p = plan("c.yaml", CASE);
        let stack = Stack::load_str(
            Path::new("calico-vxlan.yaml"),
            "podAttach: calico\nnodeNetwork: calico-vxlan\n",
        )
        .unwrap();
        let text = super::layout(&stack, &p);
        for want in [
            "ip link add vxlan.calico address 66:6b:0a:f4:01:00 mtu 1450 type vxlan id 4096 dstport 4789",
            "ip route add 10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink",
            "ip route add 10.244.1.192/26 via 10.244.1.0 dev vxlan.calico onlink",
            "ip route add blackhole 10.244.2.0/26",
            "address ee:ee:ee:ee:ee:ee, proxy_arp 1",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
