//! Warnings about a plan that is valid but will not say what its author means: hops that
//! depend on which endpoint a Service picks. Pure: a function of the [`Plan`], no I/O (but
//! [`eprint`], for the command line and the test targets).
//!
//! A flow whose `expect.reach` lists several pods may be answered by any of them (a Service
//! balances each connection anew). A hop that names one of them (its interface, the host end
//! of its veth pair, its address in `src`, `dst`, `dnat`, `snat`, `undnat` or `unsnat`) or one
//! endpoint's own chain (`KUBE-SEP-X`, `endpoint-X`, without `*`) is only observed when that
//! one is picked: the flow passes or fails by chance. Such a hop gets a warning at its entry.

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
        let all: Vec<&str> = candidates.iter().map(|(name, _)| name.as_str()).collect();
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
                let Some(named) = names(plan, hop, &candidates) else {
                    continue;
                };
                let what = match &named {
                    Named::Pods(pods) => pods.iter().cloned().collect::<Vec<_>>().join(" and "),
                    Named::Chain(chain) => format!("one endpoint's chain {chain}"),
                };
                let when = match (&named, avoided) {
                    (Named::Pods(_), false) => format!("it is observed only when {what} answers"),
                    (Named::Pods(_), true) => format!("the flow fails whenever {what} answers"),
                    (Named::Chain(_), false) => {
                        "it is observed only when that endpoint answers".into()
                    }
                    (Named::Chain(_), true) => {
                        "the flow fails whenever that endpoint answers".into()
                    }
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

/// The pods the flow may be answered by, when `expect.reach` lists several: name and `eth0`
/// address (the external host is no endpoint).
fn may_reach(plan: &Plan, flow: &FlowPlan) -> Vec<(String, Ipv4Addr)> {
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
        .map(|p| (p.name.clone(), p.eth0.addr.addr()))
        .collect()
}

enum Named {
    /// Some of the candidates, not all.
    Pods(BTreeSet<String>),
    /// An endpoint's own chain.
    Chain(String),
}

/// What a hop names that only some of the candidates give, if anything.
fn names(plan: &Plan, hop: &HopPlan, candidates: &[(String, Ipv4Addr)]) -> Option<Named> {
    let mut named = BTreeSet::new();
    let by_addr = |named: &mut BTreeSet<String>, m: Option<&AddrMatch>| {
        for (name, ip) in candidates {
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
            for (name, _) in candidates {
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
