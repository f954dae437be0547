//! Warnings about a plan that is valid but will not say what its author means: hops that
//! depend on which endpoint a Service picks. Pure: a function of the [`Plan`], no I/O (but
//! [`eprint`], for the command line and the test targets).
//!
//! A flow whose `expect.reach` lists several pods may be answered by any of them (a Service
//! balances each connection anew). A hop that names one of them (its interface, the host end
//! of its veth pair, its address in `src`, `dst`, `dnat`, `snat`, `undnat` or `unsnat`), one
//! endpoint's own chain (`KUBE-SEP-X`, `endpoint-X`, without `*`), a node other than the
//! flow's first that some of them run on but not all, or VXLAN while some run on the flow's
//! first node and some do not, is only observed when such a one is picked: the flow passes or
//! fails by chance. Such a hop gets a warning at its entry.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::diag::Location;
use crate::plan::hops::{AddrMatch, Conversation, HopKind, HopPlan};
use crate::plan::{Expect, FlowPlan, Plan};

/// One warning, where its cause is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Warning {
    /// `cases/x.yaml:31:11: warning: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}",
            self.file.display(),
            self.location,
            self.message
        )
    }
}

/// Every warning of `plan`, in the order of the flows and their hops (`hops`, `reply`,
/// `avoid`).
pub fn warnings(plan: &Plan) -> Vec<Warning> {
    let mut out = Vec::new();
    for flow in &plan.flows {
        let candidates = may_reach(plan, flow);
        if candidates.len() < 2 {
            continue;
        }
        let all: Vec<&str> = candidates.iter().map(|(name, ..)| name.as_str()).collect();
        let entry = entry_node(plan, flow);
        let picker = match &flow.service {
            Some(s) => format!("Service {}/{}", s.namespace, s.name),
            None => "the flow's target".to_string(),
        };
        for (list, avoided) in [
            (&flow.hops.forward, false),
            (&flow.hops.reply, false),
            (&flow.hops.avoid, true),
        ] {
            for hop in list.iter().filter(|h| h.conversation == Conversation::Main) {
                let Some(named) = names(plan, hop, &candidates)
                    .or_else(|| names_node(plan, hop, &candidates, entry.as_deref()))
                else {
                    continue;
                };
                let join = |pods: &BTreeSet<String>| {
                    pods.iter().cloned().collect::<Vec<_>>().join(" and ")
                };
                let (what, who) = match &named {
                    Named::Pods(pods) => (join(pods), join(pods)),
                    Named::Chain(chain) => (
                        format!("one endpoint's chain {chain}"),
                        "that endpoint".to_string(),
                    ),
                    Named::Node(node, pods) => (
                        format!("{node}, where only {} of them runs", join(pods)),
                        join(pods),
                    ),
                    Named::Overlay(pods) => (
                        "the overlay, crossed only to reach a pod on another node than the \
                         flow's first"
                            .to_string(),
                        join(pods),
                    ),
                };
                let when = if avoided {
                    format!("the flow fails whenever {who} answers")
                } else {
                    format!("it is observed only when {who} answers")
                };
                out.push(Warning {
                    file: plan.file.clone(),
                    location: hop.location,
                    message: format!(
                        "flow `{}`: hop `{}` depends on the endpoint {picker} picks: it names \
                         {what}, while the flow may reach {}; {when} (name no single endpoint \
                         in the hop, or write one flow per endpoint)",
                        flow.name,
                        hop.label,
                        all.join(" or "),
                    ),
                });
            }
        }
    }
    out
}

/// Prints every warning of `plan` to stderr.
pub fn eprint(plan: &Plan) {
    for w in warnings(plan) {
        eprintln!("{w}");
    }
}

/// A pod the flow may be answered by: name, `eth0` address, node.
type Candidate = (String, Ipv4Addr, String);

/// The pods the flow may be answered by, when `expect.reach` lists several (the external host
/// is no endpoint).
fn may_reach(plan: &Plan, flow: &FlowPlan) -> Vec<Candidate> {
    if flow.exec.is_some() || !flow.sends_traffic() {
        return Vec::new();
    }
    let Expect::Reach { pods, .. } = &flow.expect else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    pods.iter()
        .filter(|p| seen.insert(p.as_str()))
        .filter_map(|p| plan.topology.pod(p))
        .map(|p| {
            let node = plan.topology.nodes[p.node].name.clone();
            (p.name.clone(), p.eth0.addr.addr(), node)
        })
        .collect()
}

enum Named {
    /// Some of the candidates, not all.
    Pods(BTreeSet<String>),
    /// An endpoint's own chain.
    Chain(String),
    /// A node some of the candidates run on, not all, that the flow does not start on.
    Node(String, BTreeSet<String>),
    /// VXLAN, while some candidates run on the flow's first node and some do not: the
    /// candidates off it.
    Overlay(BTreeSet<String>),
}

/// The node a flow's packets enter the cluster by: the node of its pod, or the node of the
/// NodePort a flow from the external host goes to.
fn entry_node(plan: &Plan, flow: &FlowPlan) -> Option<String> {
    if let Some(pod) = plan.topology.pod(&flow.from) {
        return Some(plan.topology.nodes[pod.node].name.clone());
    }
    match &flow.service.as_ref()?.via {
        crate::plan::ServiceVia::NodePort { node } => Some(node.clone()),
        crate::plan::ServiceVia::ClusterIp => None,
    }
}

/// What a node-scoped hop names that only some candidates' answers cross: a node other than
/// the flow's first one that some of them run on, not all; or the overlay, when some run on
/// the first node and some do not.
fn names_node(
    plan: &Plan,
    hop: &HopPlan,
    candidates: &[Candidate],
    entry: Option<&str>,
) -> Option<Named> {
    let entry = entry?;
    let is_node = |n: &str| plan.topology.nodes.iter().any(|node| node.name == n);
    let on = |n: &str| -> BTreeSet<String> {
        candidates
            .iter()
            .filter(|(_, _, node)| node == n)
            .map(|(name, ..)| name.clone())
            .collect()
    };
    let mut nodes: Vec<String> = Vec::new();
    let node_of_addr = |m: &AddrMatch| {
        plan.topology
            .nodes
            .iter()
            .find(|n| m.addrs.contains(&n.eth0.addr.addr()))
            .map(|n| n.name.clone())
    };
    match &hop.kind {
        HopKind::Iface { netns, iface, .. } => {
            if is_node(netns) {
                nodes.push(netns.clone());
            } else if netns == "underlay" && is_node(iface) {
                nodes.push(iface.clone());
            }
        }
        HopKind::Dnat { node, .. }
        | HopKind::Snat { node, .. }
        | HopKind::UnDnat { node, .. }
        | HopKind::UnSnat { node, .. }
        | HopKind::Rule { node, .. } => nodes.push(node.clone()),
        HopKind::Vxlan { at, outer, .. } => {
            if let Some((ns, _)) = at.as_ref().filter(|(ns, _)| is_node(ns)) {
                nodes.push(ns.clone());
            }
            if let Some((a, b)) = outer {
                nodes.extend(node_of_addr(a));
                nodes.extend(node_of_addr(b));
            }
            let off: BTreeSet<String> = candidates
                .iter()
                .filter(|(_, _, node)| node != entry)
                .map(|(name, ..)| name.clone())
                .collect();
            if !off.is_empty() && off.len() < candidates.len() {
                return Some(Named::Overlay(off));
            }
        }
    }
    nodes.into_iter().filter(|n| n != entry).find_map(|n| {
        let pods = on(&n);
        (!pods.is_empty() && pods.len() < candidates.len()).then_some(Named::Node(n, pods))
    })
}

/// What a hop names that only some of the candidates give, if anything.
fn names(plan: &Plan, hop: &HopPlan, candidates: &[Candidate]) -> Option<Named> {
    let mut named = BTreeSet::new();
    let by_addr = |named: &mut BTreeSet<String>, m: Option<&AddrMatch>| {
        for (name, ip, _) in candidates {
            if m.is_some_and(|m| m.addrs.contains(ip)) {
                named.insert(name.clone());
            }
        }
    };
    match &hop.kind {
        HopKind::Iface {
            netns,
            iface,
            src,
            dst,
            ..
        } => {
            for (name, ..) in candidates {
                let veth = plan.topology.pod(name).is_some_and(|p| {
                    plan.topology.nodes[p.node].name == *netns && p.host_veth == *iface
                });
                if netns == name || veth {
                    named.insert(name.clone());
                }
            }
            by_addr(&mut named, src.as_ref());
            by_addr(&mut named, dst.as_ref());
        }
        HopKind::Dnat { to, .. }
        | HopKind::Snat { to, .. }
        | HopKind::UnDnat { to, .. }
        | HopKind::UnSnat { to, .. } => by_addr(&mut named, Some(to)),
        HopKind::Rule { chain, .. } => {
            let endpoint_chain = !chain.ends_with('*')
                && (chain.starts_with("KUBE-SEP-") || chain.starts_with("endpoint-"));
            return endpoint_chain.then(|| Named::Chain(chain.clone()));
        }
        HopKind::Vxlan { .. } => {}
    }
    (!named.is_empty() && named.len() < candidates.len()).then_some(Named::Pods(named))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CASE: &str = "\
name: balanced
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
  - { name: api-1, node: node1, labels: { app: api }, listen: [8080/tcp] }
  - { name: api-2, node: node2, labels: { app: api }, listen: [8080/tcp] }
services:
  - name: api
    selector: { app: api }
    ports: [{ port: 80, targetPort: 8080 }]
flows:
  - name: either
    from: client
    to: svc/api:80
    expect:
      reach: [api-1, api-2]
      hops:
        - { iface: client/eth0, dst: svc/api:80 }
        - { node: node1, dnat: api-1:8080 }
        - { node: node1, chain: KUBE-SEP-*, proxy: iptables }
        - { node: node1, chain: KUBE-SEP-ABCDEFGHIJKLMNOP, proxy: iptables }
        - api-2/eth0
      reply: [{ iface: client/eth0, src: svc/api:80 }]
      avoid: [{ iface: node1/eth0, src: api-1 }]
  - name: one
    from: client
    to: svc/api:80
    expect:
      reach: api-1
      hops: [{ node: node1, dnat: api-1:8080 }, api-1/eth0]
";

    fn plan(text: &str) -> Plan {
        crate::plan::load_str(Path::new("cases/balanced.yaml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hops_naming_one_of_several_endpoints_are_warned_at_their_entry() {
        let w: Vec<String> = warnings(&plan(CASE))
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(w.len(), 4, "{w:#?}");
        assert_eq!(
            w[0],
            "cases/balanced.yaml:19:11: warning: flow `either`: hop `node1 dnat api-1:8080` \
             depends on the endpoint Service default/api picks: it names api-1, while the flow \
             may reach api-1 or api-2; it is observed only when api-1 answers (name no single \
             endpoint in the hop, or write one flow per endpoint)"
        );
        assert!(w[1].starts_with("cases/balanced.yaml:21:11: warning: flow `either`: hop `node1 chain KUBE-SEP-ABCDEFGHIJKLMNOP"), "{}", w[1]);
        assert!(
            w[1].contains("it names one endpoint's chain KUBE-SEP-ABCDEFGHIJKLMNOP"),
            "{}",
            w[1]
        );
        assert!(
            w[2].starts_with("cases/balanced.yaml:22:11: warning: flow `either`: hop `api-2/eth0`"),
            "{}",
            w[2]
        );
        assert!(w[2].contains("it names api-2,"), "{}", w[2]);
        assert!(
            w[3].starts_with("cases/balanced.yaml:24:15: warning:"),
            "{}",
            w[3]
        );
        assert!(
            w[3].contains("the flow fails whenever api-1 answers"),
            "{}",
            w[3]
        );
    }

    #[test]
    fn a_host_veth_of_one_endpoint_and_every_endpoint_named() {
        let p = plan(CASE);
        let veth = p.topology.pod("api-2").unwrap().host_veth.clone();
        let text = CASE.replace("- api-2/eth0", &format!("- node2/{veth}"));
        let w = warnings(&plan(&text));
        assert!(
            w.iter()
                .any(|w| w.message.contains(&format!("hop `node2/{veth}`"))
                    && w.message.contains("names api-2,")),
            "{w:#?}"
        );
        // A hop every candidate satisfies is no warning: the client's interface, the ClusterIP.
        assert!(
            !w.iter().any(|w| w.message.contains("client/eth0")),
            "{w:#?}"
        );
    }

    #[test]
    fn hops_on_a_node_only_some_endpoints_run_on_and_the_overlay_are_warned() {
        let text = CASE.replace(
            "        - api-2/eth0\n",
            "        - { iface: node2/cni0, dir: out }\n        - { iface: node1/eth0, vxlan: { vni: 1 } }\n        - { iface: node1/cni0, dir: in }\n",
        );
        let w: Vec<String> = warnings(&plan(&text))
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(w.len(), 5, "{w:#?}");
        assert!(
            w[2].starts_with(
                "cases/balanced.yaml:22:11: warning: flow `either`: hop `node2/cni0 out`"
            ),
            "{}",
            w[2]
        );
        assert!(
            w[2].contains("it names node2, where only api-2 of them runs, while the flow may reach api-1 or api-2; it is observed only when api-2 answers"),
            "{}",
            w[2]
        );
        assert!(w[3].contains("hop `node1/eth0 vxlan vni=1`"), "{}", w[3]);
        assert!(w[3].contains("it names the overlay"), "{}", w[3]);
        assert!(w[3].contains("only when api-2 answers"), "{}", w[3]);
        // The client's node is crossed whichever answers.
        assert!(!w.iter().any(|w| w.contains("node1/cni0")), "{w:#?}");
    }

    #[test]
    fn one_reachable_pod_or_the_cases_of_the_suite_give_none() {
        let p = plan(CASE);
        let one = p.flows.iter().find(|f| f.name == "one").unwrap();
        assert!(
            !warnings(&p)
                .iter()
                .any(|w| w.message.contains(&format!("flow `{}`", one.name)))
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
        for file in crate::plan::discover(&root).unwrap() {
            let p = crate::plan::load(&file).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(warnings(&p), Vec::new(), "{}", file.display());
        }
    }
}
