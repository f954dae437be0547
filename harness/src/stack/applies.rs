//! Which cases and flows a stack can answer for. A case that needs what the stack cannot give
//! is reported ignored with the reason, never passed: a builtin proxy mode the stack lacks, a
//! case about unconnected nodes on a stack that connects them, a name on a stack without
//! cluster DNS, a hop naming an interface or an encapsulation only the builtin stack makes, a
//! flow to the external host on a stack that does not masquerade, a source address only
//! flannel's VXLAN device has.

use netns_runtime::stack::calico::{self, CalicoMode};
use netns_runtime::stack::{Drivers, Encapsulation};

use crate::plan::hops::{HopKind, HopPlan};
use crate::plan::{Expect, FlowPlan, Plan, Target};
use crate::stack::{AttachLayer, DnsLayer, NetworkLayer, Stack};
use netns_runtime::topology::Proto;

/// Whether the case chose the builtin node network `none` (`cluster.overlay: none`): nodes
/// whose pods the others cannot reach.
fn builtin_overlay_is_none(plan: &Plan) -> bool {
    plan.topology.nodes.len() > 1
        && plan
            .topology
            .nodes
            .iter()
            .all(|n| n.network.vxlan.is_none() && n.network.masquerade.is_none())
}

/// Why none of a case's trials can run on `stack`, if so.
pub fn run_ignored(plan: &Plan, stack: &Stack) -> Option<String> {
    if let NetworkLayer::Calico(CalicoMode::Ipip) = stack.network
        && let Err(reason) = calico::ipip_support()
    {
        return Some(format!(
            "stack {}'s node network is Calico IP-in-IP, and {reason}",
            stack.name
        ));
    }
    if let Some(reason) = wildcard_case_ignored(plan, stack) {
        return Some(reason);
    }
    if builtin_overlay_is_none(plan)
        && matches!(
            stack.network,
            NetworkLayer::Exec { .. } | NetworkLayer::Calico(_)
        )
    {
        return Some(format!(
            "the case is about nodes that nothing connects (`cluster.overlay: none`), and stack {}'s node network connects them",
            stack.name
        ));
    }
    if let AttachLayer::Cni { conflist, .. } = &stack.attach
        && !conflist.declares("ips")
        && let Some(pod) = plan.topology.pods.iter().find(|p| p.requested_ip.is_some())
    {
        return Some(format!(
            "the case fixes pod {}'s address, and no plugin of stack {}'s conflist {} declares the `ips` capability a runtime passes it by",
            pod.name,
            stack.name,
            conflist.file.display()
        ));
    }
    None
}

/// Why `flow` cannot run on `stack`, if it cannot.
pub fn flow_ignored(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    if let Some(reason) = after_steps_ignored(flow, stack) {
        return Some(reason);
    }
    let needs_dns = flow.dns_name.is_some() || (flow.exec.is_some() && plan.topology.dns.is_some());
    if needs_dns && stack.dns == DnsLayer::None {
        return Some(format!(
            "the flow needs cluster DNS, and stack {} has none (clusterDns: none)",
            stack.name
        ));
    }
    if let Some(reason) = host_port_ignored(plan, flow, stack) {
        return Some(reason);
    }
    let hops = &flow.hops;
    let mut all = hops.forward.iter().chain(&hops.reply);
    // Built once for the flow, not once per hop.
    let drivers = &stack.drivers();
    if stack.is_builtin() {
        // The builtin stack makes every interface the planner knows of; only a wildcard (the
        // Calico cases' `cali*`) can name what it does not make.
        return all
            .filter(|hop| {
                matches!(&hop.kind, HopKind::Iface { iface, .. }
                    if iface.ends_with('*') || calico::DEVICES.contains(&iface.as_str()))
            })
            .find_map(|hop| hop_ignored(plan, hop, stack, drivers));
    }
    leaves_unmasqueraded(plan, flow, stack)
        .or_else(|| source_only_flannel_gives(plan, flow, stack))
        .or_else(|| all.find_map(|hop| hop_ignored(plan, hop, stack, drivers)))
        .or_else(|| avoid_vxlan_ignored(plan, flow, stack))
        .or_else(|| seen_source_ignored(plan, flow, stack))
}

/// A flow to a node's address at a port a pod of that node publishes (`hostPort`) needs a pod
/// attach that publishes it: a CNI chain with a plugin declaring the `portMappings` capability
/// (portmap). The builtin attaches, like the bridge plugin alone, publish nothing
/// (docs/case-format.md, "hostPort").
fn host_port_ignored(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    let (ip, port, proto) = match flow.target {
        Target::Tcp(a) => (*a.ip(), a.port(), Proto::Tcp),
        Target::Udp(a) => (*a.ip(), a.port(), Proto::Udp),
        Target::Icmp(_) => return None,
    };
    if flow.service.is_some() {
        return None;
    }
    let node = plan
        .topology
        .nodes
        .iter()
        .position(|n| n.eth0.addr.addr() == ip)?;
    let (pod, h) = plan.topology.pods.iter().find_map(|p| {
        let h = p
            .host_ports
            .iter()
            .find(|h| p.node == node && h.host_port == port && h.proto == proto)?;
        Some((p, h))
    })?;
    let publishes = matches!(&stack.attach, AttachLayer::Cni { conflist, .. } if conflist.declares("portMappings"));
    (!publishes).then(|| {
        format!(
            "the flow goes to {}'s hostPort {}/{} (pod {}), which only a CNI chain with portmap publishes (a plugin declaring the `portMappings` capability), and stack {}'s pod attach ({}) publishes no hostPort",
            plan.topology.nodes[node].name,
            h.host_port,
            h.proto,
            pod.name,
            stack.name,
            stack.drivers().attach.name()
        )
    })
}

/// Whether a case is one of the Calico cases: its hops name `cali*` host-side veths.
pub fn is_calico_case(plan: &Plan) -> bool {
    plan.flows.iter().any(|flow| {
        let h = &flow.hops;
        h.forward.iter().chain(&h.reply).chain(&h.avoid).any(|hop| {
            matches!(&hop.kind, HopKind::Iface { iface, .. }
                if iface.starts_with(calico::VETH_PREFIX) && iface.ends_with('*'))
        })
    })
}

/// Why a case whose hops name interfaces by a wildcard (`node1/cali*`) is about another
/// dataplane than the stack's: no interface the stack makes on that node matches it. All its
/// trials are then ignored, `exec` flows and snapshots included.
fn wildcard_case_ignored(plan: &Plan, stack: &Stack) -> Option<String> {
    let drivers = &stack.drivers();
    plan.flows.iter().find_map(|flow| {
        let h = &flow.hops;
        h.forward.iter().chain(&h.reply).chain(&h.avoid).find_map(|hop| {
            let HopKind::Iface { netns, iface, .. } = &hop.kind else {
                return None;
            };
            let pattern = iface.strip_suffix('*')?;
            let index = plan.topology.nodes.iter().position(|n| &n.name == netns)?;
            let made = interfaces_on(plan, index, stack, drivers);
            (!made.iter().any(|m| m.starts_with(pattern))).then(|| {
                format!(
                    "the case is about another dataplane: hop `{}` ({}:{}) names {netns}/{iface}, and stack {}'s drivers make no such interface on {netns} (they make: {})",
                    hop.label,
                    plan.file.display(),
                    hop.location,
                    stack.name,
                    made.join(", ")
                )
            })
        })
    })
}

/// Why a flow between pods of different nodes that must not be encapsulated (`avoid` names
/// VXLAN) cannot hold on a stack whose node network declares VXLAN: it is about an
/// unencapsulated node network (Calico's BGP-routed one, flannel's host-gw).
fn avoid_vxlan_ignored(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    let topology = &plan.topology;
    let hop = flow
        .hops
        .avoid
        .iter()
        .find(|h| matches!(h.kind, HopKind::Vxlan { .. }))?;
    let from = topology.pod(&flow.from)?.node;
    let Expect::Reach { pods, .. } = &flow.expect else {
        return None;
    };
    let cross_node = !pods.is_empty()
        && pods
            .iter()
            .all(|p| topology.pod(p).is_some_and(|p| p.node != from));
    let node = topology.nodes.first()?;
    let Some(Encapsulation::Vxlan { vni, port }) = stack.drivers().network.encapsulation(node)
    else {
        return None;
    };
    cross_node.then(|| {
        format!(
            "the flow is about an unencapsulated node network: it crosses nodes and must avoid VXLAN (hop `{}`, {}:{}), and stack {}'s node network declares VXLAN (VNI {vni}, port {port})",
            hop.label,
            plan.file.display(),
            hop.location,
            stack.name
        )
    })
}

/// Why a flow's `seenSource`, an address only the builtin drivers give a node (its `cni0`
/// gateway, its `flannel.1` address), cannot be seen on a Calico stack, which gives its nodes
/// other addresses (`eth0`'s, the tunnel address).
fn seen_source_ignored(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    if !stack.is_calico() {
        return None;
    }
    let Expect::Reach {
        seen_source: Some(seen),
        ..
    } = &flow.expect
    else {
        return None;
    };
    let topology = &plan.topology;
    let (node, what) = topology.nodes.iter().find_map(|n| {
        if n.bridge.addr.addr() == seen.addr {
            Some((n, format!("{}'s {} address", n.name, n.bridge.name)))
        } else {
            n.network
                .vxlan
                .as_ref()
                .filter(|v| v.addr.addr() == seen.addr)
                .map(|v| (n, format!("{}'s {} address", n.name, v.name)))
        }
    })?;
    let has = calico::node_addresses(topology, stack.calico_mode(), &node.name);
    (!has.contains(&seen.addr)).then(|| {
        format!(
            "the flow expects seenSource {} ({}:{}), {what} on the builtin stack, which stack {} does not give (its addresses on {} are {})",
            seen.addr,
            plan.file.display(),
            flow.location,
            stack.name,
            node.name,
            has.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Whether interface `name` is what `pattern` names (`cali*`: any interface starting `cali`).
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Why a flow from a pod to the external host cannot be answered on `stack`: the external
/// host has no route to the pods, so its answer comes back only when the node masquerades the
/// flow as it leaves the cluster (flannel's `--ip-masq`), and the stack's node network says it
/// does not (`masquerade: false`, or no node network).
fn leaves_unmasqueraded(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    let external = plan.topology.external.as_ref()?;
    let outward = flow.exec.is_none()
        && flow.from != external.name
        && flow.target.ip() == external.eth0.addr.addr();
    if !outward || stack.drivers().network.masquerades() {
        return None;
    }
    let said = match stack.network {
        NetworkLayer::None => "is none (nodeNetwork: none)",
        _ => "does not masquerade (masquerade: false)",
    };
    Some(format!(
        "the flow leaves the cluster for the external host, which has no route to the pods and answers only a masqueraded flow, and stack {}'s node network {said}",
        stack.name
    ))
}

/// Why a flow's `seenSource` cannot be seen on `stack`: it is a node's `flannel.1` address
/// (its subnet's `.0`), the source a node's masquerade picks when the packet leaves by the
/// builtin VXLAN device, and an `exec` node network makes no such device that podpath knows of.
fn source_only_flannel_gives(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    if !matches!(stack.network, NetworkLayer::Exec { .. }) {
        return None;
    }
    let crate::plan::Expect::Reach {
        seen_source: Some(source),
        ..
    } = &flow.expect
    else {
        return None;
    };
    let (node, vxlan) = plan.topology.nodes.iter().find_map(|n| {
        let v = n.network.vxlan.as_ref()?;
        (v.addr.addr() == source.addr).then_some((n, v))
    })?;
    Some(format!(
        "the flow expects source {} ({}:{}), {}'s {} address, which only the builtin node network assigns; stack {}'s node network masquerades with the address of the device it leaves by",
        source.addr,
        plan.file.display(),
        flow.location,
        node.name,
        vxlan.name,
        stack.name
    ))
}

/// Why a hop the flow expects to see cannot be seen on `stack`: it names what only the
/// builtin drivers make.
fn hop_ignored(plan: &Plan, hop: &HopPlan, stack: &Stack, drivers: &Drivers) -> Option<String> {
    let at = format!("{}:{}", plan.file.display(), hop.location);
    match &hop.kind {
        HopKind::Iface { netns, iface, .. } => {
            let (index, node) = plan
                .topology
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| &n.name == netns)?;
            let made = interfaces_on(plan, index, stack, drivers);
            (!made.iter().any(|m| iface_matches(iface, m))).then(|| {
                format!(
                    "hop `{}` ({at}) names {netns}/{iface}, which stack {}'s drivers do not make on {} (they make: {})",
                    hop.label,
                    stack.name,
                    node.name,
                    made.join(", ")
                )
            })
        }
        HopKind::Vxlan {
            vni,
            port,
            at: iface,
            ..
        } => {
            if let Some((netns, name)) = iface
                && let Some(index) = plan.topology.nodes.iter().position(|n| &n.name == netns)
                && !interfaces_on(plan, index, stack, drivers).contains(name)
            {
                return Some(format!(
                    "hop `{}` ({at}) names {netns}/{name}, which stack {}'s drivers do not make",
                    hop.label, stack.name
                ));
            }
            let node = plan.topology.nodes.first()?;
            match drivers.network.encapsulation(node) {
                None => Some(format!(
                    "hop `{}` ({at}) expects VXLAN, and stack {}'s node network declares no encapsulation",
                    hop.label, stack.name
                )),
                Some(Encapsulation::Vxlan { vni: v, port: p }) => {
                    let differs =
                        vni.is_some_and(|want| want != v) || port.is_some_and(|want| want != p);
                    differs.then(|| {
                        format!(
                            "hop `{}` ({at}) expects the builtin stack's VXLAN, and stack {}'s node network declares VNI {v} on port {p}",
                            hop.label, stack.name
                        )
                    })
                }
            }
        }
        _ => None,
    }
}

/// The interfaces on node `index` that the stack makes and observation captures: `eth0`, the
/// attach's and the node network's declared interfaces, and the pods' host sides where the
/// builtin attach names them.
fn interfaces_on(plan: &Plan, index: usize, stack: &Stack, drivers: &Drivers) -> Vec<String> {
    let node = &plan.topology.nodes[index];
    let mut made = vec![node.eth0.name.clone()];
    made.extend(drivers.attach.node_interfaces(node));
    // The pods' host sides, as `POD/host-side` hops name them: Calico's `cali...` names, or the
    // planned ones, which a bound plan replaces by what the attach reported; an attach that
    // reports none makes none.
    if stack.attach == AttachLayer::Calico {
        made.extend(calico::host_veths(&plan.topology, index));
    } else if drivers.attach.reports_host_side() {
        made.extend(
            plan.topology
                .pods
                .iter()
                .filter(|p| p.node == index)
                .map(|p| p.host_veth.clone()),
        );
    }
    made.extend(drivers.network.interfaces(node));
    made
}

/// Why a flow that runs after the case's steps changed the cluster cannot run on a stack whose
/// service proxy is not re-rendered by podpath: a restored ruleset is what was captured, and a
/// proxy command gets the change from the served API, but podpath does not wait for it to
/// follow (readiness is checked once).
fn after_steps_ignored(flow: &FlowPlan, stack: &Stack) -> Option<String> {
    if flow.revision == 0 {
        return None;
    }
    let why = match &stack.proxy {
        crate::stack::ProxyLayer::Restore { .. } => {
            "its service proxy restores a captured ruleset, which no step changes"
        }
        crate::stack::ProxyLayer::Exec { .. } => {
            "podpath does not yet wait for its proxy command to follow a step (readiness is checked once, when the case starts)"
        }
        _ if matches!(stack.dns, DnsLayer::Exec { .. }) && flow.dns_name.is_some() => {
            "podpath does not yet wait for its DNS command to follow a step (its zone files are the first revision's; readiness is checked once)"
        }
        _ => return None,
    };
    Some(format!(
        "the flow runs after the case's steps changed the cluster (revision {}), and on stack {} {why}",
        flow.revision, stack.name
    ))
}
