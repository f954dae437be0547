//! The served API for `exec` drivers, until the cluster serves it from the underlay (issue 11
//! item 1, branch `apiserver`: [`crate::apiserver`] is its server; the objects from the plan,
//! the address on the underlay and the `default/kubernetes` Service are built there): one
//! [`ApiServer`] per namespace that runs a program under test (each node, for an `exec`
//! proxy; the DNS pod, for an `exec` DNS), listening on `127.0.0.1:6443` inside it, serving
//! the same objects, built here from the nodes' Service tables and the DNS records. Each gets a
//! kubeconfig file, `/run/podpath/api/<netns>/kubeconfig` on the sandbox's private `/run`.
//!
//! Read-only for the case's life: the objects are what the bound plan says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::AsFd;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::apiserver::{API_PORT, ApiServer, Object};
use crate::netns::{self, Netns};
use crate::proxy::{ServiceTable, TrafficPolicy};
use crate::topology::{Proto, Topology};

/// The servers and each namespace's kubeconfig.
#[derive(Default)]
pub struct LocalApis {
    servers: Vec<ApiServer>,
    kubeconfigs: BTreeMap<String, PathBuf>,
}

impl LocalApis {
    /// Each served namespace's kubeconfig, by its name in the topology (`node1`, `coredns`).
    pub fn kubeconfigs(&self) -> &BTreeMap<String, PathBuf> {
        &self.kubeconfigs
    }

    /// Starts one server in each of `namespaces` (name in the topology, namespace), serving
    /// `objects`. `prefix` keeps concurrently built clusters' files apart.
    pub fn start(
        namespaces: &[(&str, &Netns)],
        objects: &[Object],
        cluster_ip: Ipv4Addr,
        prefix: &str,
    ) -> Result<LocalApis, String> {
        let mut apis = LocalApis::default();
        for (name, ns) in namespaces {
            let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, API_PORT);
            let listener = netns::run_in(ns.as_fd(), || TcpListener::bind(address))
                .and_then(|r| r)
                .map_err(|e| format!("{name}: cannot listen on {address}: {e}"))?;
            let server = ApiServer::start(listener, address, cluster_ip, objects.to_vec())
                .map_err(|e| format!("{name}: {e}"))?;
            let dir = PathBuf::from("/run/podpath/api").join(format!("{prefix}{name}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
            let file = dir.join("kubeconfig");
            std::fs::write(&file, server.kubeconfig(&format!("system:node:{name}")))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            apis.kubeconfigs.insert(name.to_string(), file);
            apis.servers.push(server);
        }
        Ok(apis)
    }

    /// Stops every server.
    pub fn stop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
        self.servers.clear();
    }
}

fn proto(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
    }
}

fn policy(p: TrafficPolicy) -> &'static str {
    match p {
        TrafficPolicy::Cluster => "Cluster",
        TrafficPolicy::Local => "Local",
    }
}

/// The cluster as API objects: its Nodes, Namespaces, and the Services and EndpointSlices of
/// the node Service tables (every node's table lists the same Services).
pub fn objects(topology: &Topology, tables: &[ServiceTable]) -> Vec<Object> {
    let mut out = Vec::new();
    let mut namespaces: BTreeSet<String> =
        ["default", "kube-node-lease", "kube-public", "kube-system"]
            .into_iter()
            .map(String::from)
            .collect();
    for node in &topology.nodes {
        let v = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": node.name, "labels": { "kubernetes.io/hostname": node.name } },
            "spec": { "podCIDR": node.pod_cidr.to_string(), "podCIDRs": [node.pod_cidr.to_string()] },
            "status": {
                "addresses": [
                    { "type": "InternalIP", "address": node.eth0.addr.addr().to_string() },
                    { "type": "Hostname", "address": node.name }
                ],
                "conditions": [{ "type": "Ready", "status": "True" }]
            }
        });
        if let Ok(n) = serde_json::from_value(v) {
            out.push(Object::Node(n));
        }
    }
    for pod in &topology.pods {
        namespaces.insert(pod.namespace.clone());
    }
    // Services and their ports, in the table's order.
    let mut services: Vec<(String, String)> = Vec::new();
    let Some(table) = tables.first() else {
        return finish(out, namespaces);
    };
    for sp in &table.services {
        let key = (sp.namespace.clone(), sp.name.clone());
        if !services.contains(&key) {
            services.push(key);
        }
        namespaces.insert(sp.namespace.clone());
    }
    for (ns, name) in &services {
        let ports: Vec<_> = table
            .services
            .iter()
            .filter(|p| &p.namespace == ns && &p.name == name)
            .collect();
        let first = ports[0];
        let node_port = ports.iter().any(|p| p.node_port.is_some());
        let cluster_ip = first
            .cluster_ip
            .map_or_else(|| "None".to_string(), |ip| ip.to_string());
        let mut spec = json!({
            "type": if node_port { "NodePort" } else { "ClusterIP" },
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": policy(first.internal_traffic_policy),
            "sessionAffinity": if first.affinity_timeout.is_some() { "ClientIP" } else { "None" },
            "ports": ports.iter().map(|p| {
                let target = p.endpoints.first().map_or(p.port, |e| e.port);
                let mut port = json!({
                    "protocol": proto(p.protocol), "port": p.port, "targetPort": target
                });
                if !p.port_name.is_empty() {
                    port["name"] = json!(p.port_name);
                }
                if let Some(np) = p.node_port {
                    port["nodePort"] = json!(np);
                }
                port
            }).collect::<Vec<Value>>(),
        });
        if node_port {
            spec["externalTrafficPolicy"] = json!(policy(first.external_traffic_policy));
        }
        if let Some(t) = first.affinity_timeout {
            spec["sessionAffinityConfig"] = json!({ "clientIP": { "timeoutSeconds": t } });
        }
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": ns, "uid": format!("svc-{ns}-{name}") },
            "spec": spec,
        });
        if let Ok(s) = serde_json::from_value(svc) {
            out.push(Object::Service(s));
        }
        // One EndpointSlice: every endpoint address, the ports by name with target ports.
        let mut endpoints: Vec<Value> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in &ports {
            for e in &p.endpoints {
                if seen.insert(e.ip) {
                    let mut ep = json!({
                        "addresses": [e.ip.to_string()],
                        "conditions": { "ready": e.ready, "serving": e.serving, "terminating": e.terminating },
                    });
                    if let Some(n) = &e.node_name {
                        ep["nodeName"] = json!(n);
                    }
                    endpoints.push(ep);
                }
            }
        }
        let slice_ports: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({
                    "name": p.port_name,
                    "protocol": proto(p.protocol),
                    "port": p.endpoints.first().map_or(p.port, |e| e.port),
                })
            })
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-podpath"), "namespace": ns,
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
                }
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": slice_ports,
        });
        if let Ok(s) = serde_json::from_value(slice) {
            out.push(Object::EndpointSlice(s));
        }
    }
    finish(out, namespaces)
}

fn finish(mut out: Vec<Object>, namespaces: BTreeSet<String>) -> Vec<Object> {
    for ns in namespaces {
        let v = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns },
                        "status": { "phase": "Active" } });
        if let Ok(n) = serde_json::from_value(v) {
            out.push(Object::Namespace(n));
        }
    }
    out
}
