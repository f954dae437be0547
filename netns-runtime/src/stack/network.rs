//! The node network: what makes the pods of one node reachable from the others.
//!
//! - [`FlannelNetwork`], builtin: flannel as the topology lays it out (VXLAN: `flannel.1`, VNI 1,
//!   UDP 8472, one permanent neighbour, FDB entry and `onlink` route per peer; host-gw: a route
//!   per peer via its address), with flanneld's `--ip-masq` rules;
//! - [`ExecNetwork`]: a command of the user's run in every node's namespace;
//! - [`NoNetwork`]: nothing, so pods of different nodes cannot reach each other.

use std::collections::BTreeMap;

use crate::stack::exec::{self};
use crate::stack::{DriverError, Encapsulation, ExecSpec, NodeContext, RuleTable, nl_err};
use crate::topology::{Node, Topology};

/// Makes pods of other nodes reachable from a node, and says what it made.
pub trait NodeNetwork: Send + Sync {
    /// How reports and trial reasons name it (`flannel`, `exec ./host-gw.sh`, `none`).
    fn name(&self) -> String;
    /// Whether this is the builtin node network (cases may then choose it per case).
    fn is_builtin(&self) -> bool {
        false
    }
    /// Programs `ctx.node`, after its `eth0` is up and before its pods are attached.
    fn setup(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError>;
    /// The interfaces it makes on `node`, which observation captures.
    fn interfaces(&self, node: &Node) -> Vec<String>;
    /// What it puts on the wire between nodes, if anything.
    fn encapsulation(&self, node: &Node) -> Option<Encapsulation>;
    /// Whether it masquerades pod traffic that leaves the cluster network (flannel's
    /// `--ip-masq`).
    fn masquerades(&self) -> bool;
    /// Whether it connects nodes at all.
    fn connects_nodes(&self) -> bool {
        true
    }
    /// The rule tables it programs, for snapshots.
    fn rule_tables(&self) -> Vec<RuleTable> {
        Vec::new()
    }
}

/// flannel, as the topology lays it out for the case's `cluster.overlay`.
pub struct FlannelNetwork;

impl NodeNetwork for FlannelNetwork {
    fn name(&self) -> String {
        "flannel".into()
    }

    fn is_builtin(&self) -> bool {
        true
    }

    fn setup(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        let node = ctx.node;
        let layout = &node.network;
        let nl = &mut *ctx.netlink;
        let err = nl_err(&node.name);
        let device = |nl: &mut crate::netlink::Netlink, dev: &str, what: &dyn Fn() -> String| {
            nl.link_index(dev).map_err(|_| DriverError::UnknownDevice {
                netns: node.name.clone(),
                what: what(),
                dev: dev.to_string(),
            })
        };
        if let Some(v) = &layout.vxlan {
            let underlay = device(nl, &v.underlay_dev, &|| format!("vxlan {}", v.name))?;
            let dev = nl.add_vxlan(v, underlay).map_err(&err)?;
            nl.add_addr(dev, v.addr).map_err(&err)?;
            nl.set_up(dev).map_err(&err)?;
        }
        for n in &layout.neighbours {
            let ifindex = device(nl, &n.dev, &|| format!("neighbour {}", n.ip))?;
            nl.add_neighbour(ifindex, n.ip, n.mac).map_err(&err)?;
        }
        for f in &layout.fdb {
            let ifindex = device(nl, &f.dev, &|| format!("fdb entry {}", f.mac))?;
            nl.add_fdb(ifindex, f.mac, f.dst).map_err(&err)?;
        }
        for r in &layout.routes {
            let ifindex = device(nl, &r.dev, &|| format!("route {}", r.dst))?;
            nl.add_route(r.dst, r.via, ifindex, r.onlink)
                .map_err(&err)?;
        }
        if let Some(cidr) = layout.masquerade {
            let rules = crate::flannel::ip_masq_rules(cidr, node.pod_cidr);
            crate::tool::run(
                ctx.netns,
                "iptables-restore",
                &["-w", "5", "--noflush"],
                Some(rules.as_bytes()),
                crate::tool::DEFAULT_TIMEOUT,
            )
            .map_err(|source| DriverError::Tool {
                node: node.name.clone(),
                what: "flannel's masquerade rules".into(),
                source,
            })?;
        }
        Ok(())
    }

    fn interfaces(&self, node: &Node) -> Vec<String> {
        node.network.vxlan.iter().map(|v| v.name.clone()).collect()
    }

    fn encapsulation(&self, node: &Node) -> Option<Encapsulation> {
        node.network.vxlan.as_ref().map(|v| Encapsulation::Vxlan {
            vni: v.vni,
            port: v.port,
        })
    }

    fn masquerades(&self) -> bool {
        true
    }

    fn connects_nodes(&self) -> bool {
        true
    }
}

/// No node network: each node's pods are reachable from that node only.
pub struct NoNetwork;

impl NodeNetwork for NoNetwork {
    fn name(&self) -> String {
        "none".into()
    }

    fn setup(&self, _ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn interfaces(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }

    fn encapsulation(&self, _node: &Node) -> Option<Encapsulation> {
        None
    }

    fn masquerades(&self) -> bool {
        false
    }

    fn connects_nodes(&self) -> bool {
        false
    }
}

/// A command of the user's, run once in every node's namespace after the node's `eth0` is up
/// and before its pods are attached; it must program the node and exit 0. It learns the node
/// and its peers from its environment (see [`ExecNetwork::environment`]) and from the
/// placeholders `{node}`, `{nodeIP}`, `{podCIDR}`, `{clusterCIDR}` in its arguments.
pub struct ExecNetwork {
    pub spec: ExecSpec,
    /// The interfaces it makes on every node (for observation), as the stack file says.
    pub interfaces: Vec<String>,
    pub encapsulation: Option<Encapsulation>,
    pub masquerade: bool,
}

impl ExecNetwork {
    /// What the command is told: `PODPATH_NODE`, `PODPATH_NODE_IP`, `PODPATH_POD_CIDR` (the
    /// node's), `PODPATH_CLUSTER_CIDR`, `PODPATH_UNDERLAY_DEV`, `PODPATH_MTU` and
    /// `PODPATH_PEERS`: every other node as `name,address,podCIDR`, separated by spaces.
    pub fn environment(topology: &Topology, node: &Node) -> BTreeMap<String, String> {
        let peers: Vec<String> = topology
            .nodes
            .iter()
            .filter(|n| n.name != node.name)
            .map(|n| format!("{},{},{}", n.name, n.eth0.addr.addr(), n.pod_cidr))
            .collect();
        BTreeMap::from([
            ("PODPATH_NODE".to_string(), node.name.clone()),
            (
                "PODPATH_NODE_IP".to_string(),
                node.eth0.addr.addr().to_string(),
            ),
            ("PODPATH_POD_CIDR".to_string(), node.pod_cidr.to_string()),
            (
                "PODPATH_CLUSTER_CIDR".to_string(),
                topology.cluster_cidr.to_string(),
            ),
            ("PODPATH_UNDERLAY_DEV".to_string(), node.eth0.name.clone()),
            ("PODPATH_MTU".to_string(), node.eth0.mtu.to_string()),
            ("PODPATH_PEERS".to_string(), peers.join(" ")),
        ])
    }
}

impl NodeNetwork for ExecNetwork {
    fn name(&self) -> String {
        format!("exec {}", self.spec.argv.join(" "))
    }

    fn setup(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        let env = ExecNetwork::environment(ctx.topology, ctx.node);
        let values = BTreeMap::from([
            ("node", ctx.node.name.clone()),
            ("nodeIP", ctx.node.eth0.addr.addr().to_string()),
            ("podCIDR", ctx.node.pod_cidr.to_string()),
            ("clusterCIDR", ctx.topology.cluster_cidr.to_string()),
        ]);
        exec::run(
            &self.spec,
            "node network",
            &format!("node {}", ctx.node.name),
            ctx.netns,
            &env,
            &values,
        )
        .map(drop)
    }

    fn interfaces(&self, _node: &Node) -> Vec<String> {
        self.interfaces.clone()
    }

    fn encapsulation(&self, _node: &Node) -> Option<Encapsulation> {
        self.encapsulation
    }

    fn masquerades(&self) -> bool {
        self.masquerade
    }
}
