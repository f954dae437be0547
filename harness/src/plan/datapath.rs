//! What a Kubernetes datapath does to a flow, as a function of what the stack's drivers
//! declare, so that validation reasons from the implementation under test and not from
//! flannel's facts. The planner asks it; the stack ([`crate::stack::Stack::datapath`]) fills
//! it from its drivers' declarations.

use super::context::Overlay;

/// What the stack's drivers declare about the datapath, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Datapath {
    /// Whether the node network masquerades pod traffic that leaves the pod network (flannel's
    /// `--ip-masq`). `None`: the builtin node network, which does with the `vxlan` and
    /// `host-gw` overlays a case chooses, and not with `none`.
    pub node_network_masquerades: Option<bool>,
}

impl Datapath {
    /// The builtin stack's datapath: what each case's `cluster.overlay` makes of it.
    pub const BUILTIN: Datapath = Datapath {
        node_network_masquerades: None,
    };

    /// Whether pod traffic leaving the pod network is masqueraded to its node's address, on
    /// a cluster whose case chose `overlay`.
    pub(super) fn masquerades(&self, overlay: Option<Overlay>) -> bool {
        self.node_network_masquerades
            .unwrap_or(matches!(overlay, Some(Overlay::Vxlan | Overlay::HostGw)))
    }

    /// Whether a pod's traffic to another node's address arrives there from outside the
    /// cluster (from its node's address, so `externalTrafficPolicy: Local` applies to it): when
    /// the node network masquerades what leaves the pod network. A pod's traffic to its own
    /// node stays pod traffic.
    pub(super) fn arrives_from_outside(
        &self,
        overlay: Option<Overlay>,
        from_node: &str,
        to_node: &str,
    ) -> bool {
        self.masquerades(overlay) && from_node != to_node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_follows_the_overlay_and_a_declaration_wins() {
        let builtin = Datapath::BUILTIN;
        assert!(builtin.masquerades(Some(Overlay::Vxlan)));
        assert!(builtin.masquerades(Some(Overlay::HostGw)));
        assert!(!builtin.masquerades(Some(Overlay::None)));
        let plain = Datapath {
            node_network_masquerades: Some(false),
        };
        assert!(!plain.masquerades(Some(Overlay::Vxlan)));
        assert!(!plain.arrives_from_outside(Some(Overlay::Vxlan), "node1", "node2"));
        assert!(builtin.arrives_from_outside(Some(Overlay::Vxlan), "node1", "node2"));
        assert!(!builtin.arrives_from_outside(Some(Overlay::Vxlan), "node1", "node1"));
    }
}
