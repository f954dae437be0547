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
    let dns = topology.dns.as_ref().map(|d| &d.records);
    // An endpoint's hostname and pod, as the EndpointSlice controller writes them: the DNS
    // records know them.
    let endpoint_of = |ns: &str, svc: &str, ip: Ipv4Addr| -> (Option<String>, Option<String>) {
        let Some(dns) = dns else { return (None, None) };
        let Some(s) = dns
            .services
            .iter()
            .find(|s| s.namespace == ns && s.name == svc)
        else {
            return (None, None);
        };
        let Some(ep) = s.endpoints.iter().find(|e| e.ip == ip) else {
            return (None, None);
        };
        let pod = ep
            .pod
            .as_ref()
            .and_then(|p| dns.pods.iter().find(|x| &x.name == p && x.namespace == ns));
        let hostname = ep.hostname.clone().or_else(|| {
            pod.filter(|p| p.subdomain.as_deref() == Some(svc))
                .and_then(|p| p.hostname.clone())
        });
        (hostname, ep.pod.clone())
    };
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
    let empty = ServiceTable {
        node_name: String::new(),
        node_ips: Vec::new(),
        cluster_cidr: topology.cluster_cidr,
        service_cidr: "10.96.0.0/12".parse().expect("a CIDR"),
        services: Vec::new(),
    };
    let table = tables.first().unwrap_or(&empty);
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
                    let (hostname, pod) = endpoint_of(ns, name, e.ip);
                    if let Some(h) = hostname {
                        ep["hostname"] = json!(h);
                    }
                    if let Some(p) = pod {
                        ep["targetRef"] = json!({ "kind": "Pod", "namespace": ns, "name": p });
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
    // Services the DNS records know that no proxy table lists (headless ones: kube-proxy
    // programs nothing for them), with their endpoints as the records give them.
    for svc in dns.map(|d| d.services.as_slice()).unwrap_or_default() {
        if services
            .iter()
            .any(|(ns, n)| *ns == svc.namespace && *n == svc.name)
        {
            continue;
        }
        namespaces.insert(svc.namespace.clone());
        let ip = svc
            .cluster_ip
            .map_or_else(|| "None".to_string(), |ip| ip.to_string());
        let ports: Vec<Value> = svc
            .ports
            .iter()
            .map(|p| json!({ "name": p.name, "protocol": proto(p.protocol), "port": p.port }))
            .collect();
        let v = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": svc.name, "namespace": svc.namespace },
            "spec": { "type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
                      "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack" },
        });
        if let Ok(s) = serde_json::from_value(v) {
            out.push(Object::Service(s));
        }
        let endpoints: Vec<Value> = svc
            .endpoints
            .iter()
            .map(|e| {
                let (hostname, pod) = endpoint_of(&svc.namespace, &svc.name, e.ip);
                let mut ep = json!({
                    "addresses": [e.ip.to_string()],
                    "conditions": { "ready": e.ready, "serving": e.ready, "terminating": false },
                });
                if let Some(h) = hostname {
                    ep["hostname"] = json!(h);
                }
                if let Some(p) = pod {
                    ep["targetRef"] =
                        json!({ "kind": "Pod", "namespace": svc.namespace, "name": p });
                }
                ep
            })
            .collect();
        let slice_ports: Vec<Value> = svc
            .endpoints
            .first()
            .map(|e| {
                e.ports
                    .iter()
                    .map(|p| json!({ "name": p.name, "protocol": proto(p.protocol), "port": p.port }))
                    .collect()
            })
            .unwrap_or_default();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{}-podpath", svc.name), "namespace": svc.namespace,
                "labels": { "kubernetes.io/service-name": svc.name }
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
