//! `podpath plan --format json`: a hand-written JSON view of a plan (the plan's types stay free
//! of serialisation): the cluster's addressing, nodes, pods, Services and flows as values, and
//! the full human rendering (routes, neighbours, FDB entries, proxy tables) as `text`.

use serde_json::{Value, json};

use crate::plan::Plan;
use crate::verdict::target_text;

/// The plan as one JSON object.
pub fn plan_json(plan: &Plan) -> Value {
    let topo = &plan.topology;
    let nodes: Vec<Value> = topo
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "address": n.eth0.addr.to_string(),
                "podCIDR": n.pod_cidr.to_string(),
                "bridge": { "name": n.bridge.name, "address": n.bridge.addr.to_string() },
            })
        })
        .collect();
    let pods: Vec<Value> = topo
        .pods
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "namespace": p.namespace,
                "node": topo.nodes.get(p.node).map(|n| n.name.as_str()),
                "address": p.eth0.addr.to_string(),
                "mac": p.eth0.mac.to_string(),
                "listen": p.listeners.iter()
                    .map(|l| format!("{}/{}", l.port, format!("{:?}", l.proto).to_lowercase()))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let services: Vec<Value> = plan
        .services
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "namespace": s.namespace,
                "type": format!("{:?}", s.service_type),
                "clusterIP": s.cluster_ip.map(|a| a.to_string()),
                "selector": s.selector,
                "ports": s.ports.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
                "sessionAffinityTimeout": s.session_affinity,
            })
        })
        .collect();
    let flows: Vec<Value> = plan
        .flows
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "from": f.from,
                "to": f.target_label,
                "target": target_text(&f.target),
                "attempts": f.attempts,
                "timeoutMs": f.timeout.as_millis() as u64,
                "expect": format!("{:?}", f.expect),
                "revision": f.revision,
            })
        })
        .collect();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            json!({
                "change": s.change.to_string(),
                "line": s.location.line,
                "column": s.location.column,
                "revision": s.revision,
            })
        })
        .collect();
    json!({
        "name": plan.name,
        "file": plan.file.display().to_string(),
        "clusterCIDR": topo.cluster_cidr.to_string(),
        "serviceCIDR": plan.service_cidr.to_string(),
        "underlay": { "cidr": topo.underlay.cidr.to_string(), "mtu": topo.underlay.mtu },
        "proxyModes": plan.proxy_modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "nodes": nodes,
        "pods": pods,
        "services": services,
        "flows": flows,
        "steps": steps,
        "text": plan.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plan_as_json_names_its_nodes_pods_and_flows() {
        let text = "nodes: [node1]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node1, listen: [8080/tcp] }\nflows:\n  - { name: tcp, from: a, to: b:8080, expect: { reach: b } }\n";
        let plan = crate::plan::load_str(std::path::Path::new("x.yaml"), text).unwrap();
        let v = super::plan_json(&plan);
        assert_eq!(v["nodes"][0]["name"], "node1");
        assert_eq!(v["pods"][1]["listen"][0], "8080/tcp");
        assert_eq!(v["flows"][0]["name"], "tcp");
        assert_eq!(v["flows"][0]["to"], "b:8080");
        assert!(v["text"].as_str().unwrap().contains("node1"));
    }
}
