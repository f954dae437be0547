//! The `pods:` section: names, nodes, labels, listeners, hostnames, and their addresses.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use netns_runtime::topology::{EXTERNAL_HOST, HostPort, Listener, Mac, Proto, UNDERLAY_NETNS};
use serde_saphyr::Spanned;

use super::context::{NodeDraft, Planner, PodDraft, YamlLocation};
use super::parse::{
    MAX_NAME, at_text, dns_label_problem, iana_svc_name_problem, known_names, node_label,
    parse_port, quoted,
};
use super::topology::{POD_BRIDGE, gateway, host_veth_name};
use crate::case::{ListenEntry, ListenSpec, PodSpec};

/// A pod's listeners, the names given to some, and those published on its node (`hostPort`)
/// with where each was written.
type Listeners = (
    Vec<Listener>,
    Vec<(String, Listener)>,
    Vec<(HostPort, YamlLocation)>,
);

/// One listener mapping: the listener, its name, its hostPort with its location.
type ListenerSpec = (
    Option<Listener>,
    Option<Spanned<String>>,
    Option<(u16, YamlLocation)>,
);

impl Planner {
    pub(super) fn pods(
        &mut self,
        specs: &[Spanned<PodSpec>],
        nodes: &[NodeDraft],
    ) -> Vec<PodDraft> {
        let node_index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.name.as_deref()?, i)))
            .collect();
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, String> = HashMap::new();
        let mut macs: HashMap<Mac, String> = HashMap::new();
        let mut host_ports_taken: HashMap<(Option<usize>, u16, Proto), String> = HashMap::new();
        let mut drafts = Vec::with_capacity(specs.len());

        for entry in specs {
            let spec = &entry.value;
            let name = match &spec.name {
                None => {
                    self.error(entry.referenced, "pod has no `name`");
                    None
                }
                Some(name) => {
                    self.pod_name(name, &node_index, &mut names);
                    Some(name.value.clone())
                }
            };
            let label = name.clone().unwrap_or_else(|| "this pod".to_owned());

            let node = match &spec.node {
                None => {
                    self.error(entry.referenced, "pod has no `node`");
                    None
                }
                Some(node) => match node_index.get(node.value.as_str()) {
                    Some(&index) => Some(index),
                    // No node at all: the missing or empty `nodes` is the one error.
                    None if nodes.is_empty() => None,
                    None => {
                        let known = known_names(nodes.iter().filter_map(|n| n.name.as_deref()));
                        self.error(
                            node.referenced,
                            format!("unknown node {} (nodes: {known})", quoted(&node.value)),
                        );
                        None
                    }
                },
            };

            let namespace = match &spec.namespace {
                None => "default".to_owned(),
                Some(ns) => {
                    if let Some(problem) = dns_label_problem(&ns.value, MAX_NAME) {
                        self.name_error(
                            ns,
                            MAX_NAME,
                            format!("namespace {} {problem}", quoted(&ns.value)),
                        );
                    }
                    ns.value.clone()
                }
            };

            let fixed_ip = spec.ip.as_ref().and_then(|ip| {
                let addr = self.pod_ip(ip, node.and_then(|i| nodes.get(i)))?;
                if let Some(other) = ips.get(&addr) {
                    self.error(
                        ip.referenced,
                        format!("duplicate pod ip {addr}: {other} has it too"),
                    );
                    return None;
                }
                ips.insert(addr, label.clone());
                Some(addr)
            });

            let requested_mac = spec.mac.as_ref().and_then(|m| {
                let Some(mac) = Mac::parse(&m.value) else {
                    self.error(
                        m.referenced,
                        format!(
                            "pod mac {}: expected six pairs of hex digits, as 0a:58:0a:f4:01:02",
                            quoted(&m.value)
                        ),
                    );
                    return None;
                };
                if mac.is_group() || mac == Mac([0; 6]) {
                    self.error(
                        m.referenced,
                        format!(
                            "pod mac {mac} is a {} address: an interface needs a unicast one \
                             (the first octet even)",
                            if mac.is_group() { "group" } else { "zero" }
                        ),
                    );
                    return None;
                }
                if let Some(other) = macs.get(&mac) {
                    self.error(
                        m.referenced,
                        format!("duplicate pod mac {mac}: {other} has it too"),
                    );
                    return None;
                }
                macs.insert(mac, label.clone());
                Some(mac)
            });

            let (listeners, port_names, published) =
                self.listeners(spec.listen.as_deref().unwrap_or_default());
            let mut host_ports = Vec::new();
            for (h, at) in published {
                let key = (node, h.host_port, h.proto);
                match node.and_then(|_| host_ports_taken.get(&key)) {
                    Some(other) => self.error(
                        at,
                        format!(
                            "hostPort {}/{} is published by {other} on the same node already",
                            h.host_port, h.proto
                        ),
                    ),
                    None => {
                        host_ports_taken.insert(key, label.clone());
                        host_ports.push(h);
                    }
                }
            }
            let hostname = spec
                .hostname
                .as_ref()
                .and_then(|v| self.pod_dns_label("hostname", v));
            let subdomain = spec
                .subdomain
                .as_ref()
                .and_then(|v| self.pod_dns_label("subdomain", v));
            drafts.push(PodDraft {
                name,
                at: entry.referenced,
                namespace,
                labels: spec
                    .labels
                    .as_ref()
                    .map(|l| l.value.clone())
                    .unwrap_or_default(),
                ready: spec.ready.as_ref().is_none_or(|r| r.value),
                port_names,
                node,
                fixed_ip,
                requested_ip: fixed_ip,
                requested_mac,
                ip: None,
                host_veth: String::new(),
                serves: listeners.clone(),
                listeners,
                host_ports,
                hostname,
                subdomain,
                learned: None,
            });
        }
        drafts
    }

    fn pod_name(
        &mut self,
        name: &Spanned<String>,
        nodes: &HashMap<&str, usize>,
        seen: &mut HashMap<String, YamlLocation>,
    ) {
        let text = &name.value;
        let shown = quoted(text);
        if let Some(problem) = dns_label_problem(text, MAX_NAME) {
            self.name_error(name, MAX_NAME, format!("pod name {shown} {problem}"));
        } else if text == UNDERLAY_NETNS {
            self.error(
                name.referenced,
                format!("pod name {shown} is reserved for the underlay network namespace"),
            );
        } else if text == EXTERNAL_HOST {
            self.error(
                name.referenced,
                format!("pod name {shown} is reserved for the external host (`external:`), whether the case declares it or not"),
            );
        } else if nodes.contains_key(text.as_str()) {
            self.error(
                name.referenced,
                format!("pod name {shown} is also a node name: both name network namespaces, so they must differ"),
            );
        }
        if let Some(first) = seen.get(text) {
            self.error(
                name.referenced,
                format!("duplicate pod name {shown}, first declared at {} (pod names are unique across namespaces: each names a network namespace)", at_text(*first)),
            );
        } else {
            seen.insert(text.clone(), name.referenced);
        }
    }

    fn pod_ip(&mut self, value: &Spanned<String>, node: Option<&NodeDraft>) -> Option<Ipv4Addr> {
        let addr = self.address("pod ip", value)?;
        let Some((node, subnet)) = node.and_then(|n| Some((n, n.subnet?))) else {
            return Some(addr);
        };
        let owner = node_label(node);
        let problem = if !subnet.contains(&addr) {
            format!("is outside {owner}'s pod subnet {subnet}")
        } else if addr == subnet.network() {
            format!("is the network address of {owner}'s pod subnet {subnet}")
        } else if addr == gateway(subnet) {
            format!("is {owner}'s gateway (the {POD_BRIDGE} address of pod subnet {subnet})")
        } else if addr == subnet.broadcast() {
            format!("is the broadcast address of {owner}'s pod subnet {subnet}")
        } else {
            return Some(addr);
        };
        self.error(value.referenced, format!("pod ip {addr} {problem}"));
        None
    }

    /// A pod's listeners, sorted, and the names given to some of them.
    pub(super) fn listeners(&mut self, entries: &[Spanned<ListenEntry>]) -> Listeners {
        let mut listeners: Vec<Listener> = Vec::with_capacity(entries.len());
        let mut names: Vec<(String, Listener)> = Vec::new();
        let mut published = Vec::new();
        for entry in entries {
            let (listener, name, host_port) = match &entry.value {
                ListenEntry::Text(text) => (
                    self.listener(&Spanned::new(text.clone(), entry.referenced, entry.defined)),
                    None,
                    None,
                ),
                ListenEntry::Spec(spec) => self.listener_spec(spec, entry.referenced),
            };
            let Some(listener) = listener else {
                continue;
            };
            if listeners.contains(&listener) {
                self.error(entry.referenced, format!("duplicate listener {listener}"));
                continue;
            }
            listeners.push(listener);
            if let Some((port, at)) = host_port {
                published.push((
                    HostPort {
                        host_port: port,
                        container_port: listener.port,
                        proto: listener.proto,
                    },
                    at,
                ));
            }
            if let Some(name) = name {
                if names.iter().any(|(n, _)| *n == name.value) {
                    self.error(
                        name.referenced,
                        format!(
                            "duplicate listener name {} in this pod (like container port names, listener names are unique in a pod)",
                            quoted(&name.value)
                        ),
                    );
                } else {
                    names.push((name.value.clone(), listener));
                }
            }
        }
        listeners.sort();
        (listeners, names, published)
    }

    /// `{ port: 8080, protocol: tcp, name: http }`; the name is checked here and returned
    /// only when valid.
    fn listener_spec(&mut self, spec: &ListenSpec, at: YamlLocation) -> ListenerSpec {
        let port = match &spec.port {
            None => {
                self.error(at, "listener has no `port`");
                None
            }
            Some(v) => match parse_port(&v.value) {
                Ok(port) => Some(port),
                Err(problem) => {
                    self.error(
                        v.referenced,
                        format!("listener port {} {problem}", quoted(&v.value)),
                    );
                    None
                }
            },
        };
        let proto = match &spec.protocol {
            None => Some(Proto::Tcp),
            Some(v) => match v.value.as_str() {
                "tcp" => Some(Proto::Tcp),
                "udp" => Some(Proto::Udp),
                other => {
                    self.error(
                        v.referenced,
                        format!("listener protocol {} is not tcp or udp", quoted(other)),
                    );
                    None
                }
            },
        };
        let name = spec
            .name
            .as_ref()
            .and_then(|name| match iana_svc_name_problem(&name.value) {
                Some(problem) => {
                    self.error(
                        name.referenced,
                        format!("listener name {} {problem}", quoted(&name.value)),
                    );
                    None
                }
                None => Some(name.clone()),
            });
        let host_port = spec
            .host_port
            .as_ref()
            .and_then(|v| match parse_port(&v.value) {
                Ok(port) => Some((port, v.referenced)),
                Err(problem) => {
                    self.error(
                        v.referenced,
                        format!("hostPort {} {problem}", quoted(&v.value)),
                    );
                    None
                }
            });
        let listener = match (port, proto) {
            (Some(port), Some(proto)) => Some(Listener { port, proto }),
            _ => None,
        };
        (listener, name, host_port)
    }

    fn listener(&mut self, entry: &Spanned<String>) -> Option<Listener> {
        let text = entry.value.as_str();
        let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
        let proto = match proto {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            other => {
                self.error(
                    entry.referenced,
                    format!("listener protocol {} is not tcp or udp", quoted(other)),
                );
                None
            }
        };
        let port = match parse_port(port) {
            Ok(port) => Some(port),
            Err(problem) => {
                self.error(
                    entry.referenced,
                    format!(
                        "listener {} {problem} (write 8080, 8080/tcp or 5353/udp)",
                        quoted(text)
                    ),
                );
                None
            }
        };
        Some(Listener {
            port: port?,
            proto: proto?,
        })
    }

    /// Gives every pod its address and host-side veth name, node by node in declared order.
    pub(super) fn allocate(&mut self, pods: &mut [PodDraft], nodes: &[NodeDraft]) {
        let mut learned_ips: std::collections::HashMap<Ipv4Addr, String> = Default::default();
        for (index, node) in nodes.iter().enumerate() {
            let on_node: Vec<usize> = (0..pods.len())
                .filter(|&p| pods[p].node == Some(index))
                .collect();

            let mut veths: HashSet<String> = HashSet::new();
            for &p in &on_node {
                let pod = &mut pods[p];
                let key = format!(
                    "{}/{}",
                    pod.namespace,
                    pod.name.as_deref().unwrap_or_default()
                );
                pod.host_veth = host_veth_name(&key, &veths);
                veths.insert(pod.host_veth.clone());
                pod.learned = pod
                    .name
                    .as_ref()
                    .and_then(|name| self.learned.get(name))
                    .cloned();
                if let Some(host) = pod.learned.as_ref().and_then(|a| a.host_iface.clone()) {
                    pod.host_veth = host;
                }
            }

            let Some(subnet) = node.subnet else {
                continue;
            };
            // What the pod attach gave a pod is as fixed as an address the case gives.
            for &p in &on_node {
                if let Some(addr) = pods[p].learned.as_ref().map(|a| a.addr.addr())
                    && let Some(other) =
                        learned_ips.insert(addr, pods[p].name.clone().unwrap_or_default())
                {
                    let at = pods[p].at;
                    self.error(
                        at,
                        format!(
                            "the pod attach gave {} the address {addr}, which it gave {other} too",
                            pods[p].name.as_deref().unwrap_or_default()
                        ),
                    );
                }
                let pod = &mut pods[p];
                let Some(addr) = pod.learned.as_ref().map(|a| a.addr.addr()) else {
                    continue;
                };
                if !subnet.contains(&addr) {
                    let label = pod.name.clone().unwrap_or_default();
                    let at = pod.at;
                    self.error(
                        at,
                        format!(
                            "the pod attach gave {label} the address {addr}, outside {}'s pod subnet {subnet}",
                            node_label(node)
                        ),
                    );
                }
                pod.fixed_ip = Some(addr);
            }
            let fixed: HashSet<Ipv4Addr> =
                on_node.iter().filter_map(|&p| pods[p].fixed_ip).collect();
            let mut next = u32::from(subnet.network()).saturating_add(2);
            let last = u32::from(subnet.broadcast());
            for &p in &on_node {
                let pod = &mut pods[p];
                if pod.fixed_ip.is_some() {
                    pod.ip = pod.fixed_ip;
                    continue;
                }
                while next < last && fixed.contains(&Ipv4Addr::from(next)) {
                    next += 1;
                }
                if next >= last {
                    let capacity =
                        last.saturating_sub(u32::from(subnet.network()).saturating_add(2));
                    let label = pod.name.clone().unwrap_or_else(|| "this pod".to_owned());
                    let at = pod.at;
                    self.error(
                        at,
                        format!(
                            "{}'s pod subnet {subnet} has no free address left for {label}: it holds {capacity} pod addresses (.1 is the gateway)",
                            node_label(node)
                        ),
                    );
                    break;
                }
                pod.ip = Some(Ipv4Addr::from(next));
                next += 1;
            }
        }
    }

    /// `hostname` or `subdomain` of a pod: a DNS-1123 label.
    fn pod_dns_label(&mut self, what: &str, value: &Spanned<String>) -> Option<String> {
        match dns_label_problem(&value.value, super::MAX_NAME) {
            Some(problem) => {
                self.error(
                    value.referenced,
                    format!("{what} {} {problem}", quoted(&value.value)),
                );
                None
            }
            None => Some(value.value.clone()),
        }
    }
}
