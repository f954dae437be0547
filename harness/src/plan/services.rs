//! Services: validation, deterministic ClusterIP and NodePort allocation, endpoint selection
//! (labels, readiness, named target ports), and the per-node [`ServiceTable`] the kube-proxy
//! renderers consume. Pure, like the rest of the planner; the rules are in
//! `docs/case-format.md` ("Services").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netns_runtime::proxy::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};
use netns_runtime::topology::{Proto, Topology};
use serde_saphyr::Spanned;

use super::{
    ClusterParams, NodeDraft, Planner, PodDraft, YamlLocation, at_text, dns_label_problem,
    iana_svc_name_problem, known_names, parse_port, quoted,
};
use crate::case::{EndpointEntry, EndpointSpec, ServicePortSpec, ServiceSpec};
use crate::diag::Location;

/// The NodePort range (kube-apiserver's default `--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;
/// `sessionAffinity: ClientIP` timeout when none is given (Kubernetes' default, 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// Longest `sessionAffinityTimeout` Kubernetes accepts (one day).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86400;
/// Host offsets of the service CIDR never allocated: the `kubernetes` API Service's (.1) and
/// the one kube-dns conventionally takes (.10).
pub const RESERVED_SERVICE_HOSTS: [u32; 2] = [1, 10];

/// A Service, resolved: its address, its ports and their endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    /// `None` for a headless Service (`clusterIP: None`): no proxy rules.
    pub cluster_ip: Option<Ipv4Addr>,
    /// The label selector; `None` for a Service whose endpoints are listed.
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<ServicePortPlan>,
    /// The `sessionAffinity: ClientIP` timeout in seconds; `None` without affinity.
    pub session_affinity: Option<u32>,
    /// `Cluster` unless the Service is a NodePort one that says `Local`.
    pub external_traffic_policy: TrafficPolicy,
    pub internal_traffic_policy: TrafficPolicy,
    /// Every endpoint address, whichever ports it serves: the selected pods in declared order,
    /// or the listed endpoints.
    pub endpoints: Vec<ServiceEndpoint>,
    /// Where the Service is declared.
    pub location: Location,
}

impl ServicePlan {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
        })
    }
}

/// One endpoint address of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The pod behind the address, when it is a pod's.
    pub pod: Option<String>,
    pub ip: Ipv4Addr,
    /// The node it runs on (`nodeName`), when known.
    pub node: Option<String>,
    pub ready: bool,
}

/// One port of a Service, with the endpoints that serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortPlan {
    /// Empty for the unnamed port of a single-port Service.
    pub name: String,
    pub protocol: Proto,
    pub port: u16,
    pub target_port: TargetPort,
    /// Given or allocated, for NodePort Services.
    pub node_port: Option<u16>,
    /// The endpoints serving this port, each with its resolved target port. A selected pod
    /// without the named target port is not one (as in Kubernetes).
    pub endpoints: Vec<PortEndpoint>,
}

impl ServicePortPlan {
    /// `80/TCP` or `http 80/TCP`.
    pub fn label(&self) -> String {
        let proto = proto_upper(self.protocol);
        if self.name.is_empty() {
            format!("{}/{proto}", self.port)
        } else {
            format!("{} {}/{proto}", self.name, self.port)
        }
    }
}

/// `targetPort`: a number, or the name of a pod's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

impl fmt::Display for TargetPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetPort::Number(n) => write!(f, "{n}"),
            TargetPort::Name(name) => f.write_str(name),
        }
    }
}

/// An endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEndpoint {
    pub pod: Option<String>,
    pub ip: Ipv4Addr,
    /// The resolved target port.
    pub port: u16,
    pub node: Option<String>,
    pub ready: bool,
}

pub(super) fn proto_upper(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
    }
}

/// A written `nodePort` and where it is written.
type FixedNodePort = Option<(u16, YamlLocation)>;

/// A Service being planned; `complete` is false when something it needs was invalid (already
/// reported), so flows skip the checks that depend on it.
pub(super) struct ServiceDraft {
    pub(super) plan: ServicePlan,
    pub(super) complete: bool,
    /// Where `clusterIP` is written, or the entry.
    ip_at: YamlLocation,
    fixed_ip: Option<Ipv4Addr>,
    headless: bool,
    /// Per port of `plan.ports`: the written `nodePort` and its location.
    fixed_node_ports: Vec<FixedNodePort>,
    at: YamlLocation,
}

impl Planner {
    /// Validates and resolves every Service: allocation first (ClusterIPs, then NodePorts, in
    /// declared order), then endpoints.
    pub(super) fn services(
        &mut self,
        specs: &[Spanned<ServiceSpec>],
        cluster: &ClusterParams,
        nodes: &[NodeDraft],
        pods: &[PodDraft],
    ) -> Vec<ServiceDraft> {
        let mut drafts = Vec::with_capacity(specs.len());
        let mut ids: HashMap<(String, String), YamlLocation> = HashMap::new();
        for entry in specs {
            drafts.push(self.service(entry, cluster, &mut ids));
        }
        self.allocate_cluster_ips(&mut drafts, cluster);
        self.allocate_node_ports(&mut drafts);
        for (draft, entry) in drafts.iter_mut().zip(specs) {
            self.endpoints(draft, &entry.value, nodes, pods);
        }
        drafts
    }

    fn service(
        &mut self,
        entry: &Spanned<ServiceSpec>,
        cluster: &ClusterParams,
        ids: &mut HashMap<(String, String), YamlLocation>,
    ) -> ServiceDraft {
        let spec = &entry.value;
        let mut complete = true;

        let namespace = match &spec.namespace {
            None => "default".to_owned(),
            Some(ns) => {
                if let Some(problem) = dns_label_problem(&ns.value, super::MAX_NAME) {
                    self.error(
                        ns.referenced,
                        format!("namespace {} {problem}", quoted(&ns.value)),
                    );
                    complete = false;
                }
                ns.value.clone()
            }
        };
        let name = match &spec.name {
            None => {
                self.error(entry.referenced, "Service has no `name`");
                complete = false;
                String::new()
            }
            Some(name) => {
                let text = &name.value;
                if let Some(problem) = dns1035_label_problem(text) {
                    self.error(
                        name.referenced,
                        format!("Service name {} {problem}", quoted(text)),
                    );
                    complete = false;
                }
                let key = (namespace.clone(), text.clone());
                if let Some(first) = ids.get(&key) {
                    self.error(
                        name.referenced,
                        format!(
                            "duplicate Service {}/{text}, first declared at {}",
                            namespace,
                            at_text(*first)
                        ),
                    );
                    complete = false;
                } else {
                    ids.insert(key, name.referenced);
                }
                text.clone()
            }
        };

        let service_type = match &spec.service_type {
            None => ServiceType::ClusterIp,
            Some(v) => match v.value.as_str() {
                "ClusterIP" => ServiceType::ClusterIp,
                "NodePort" => ServiceType::NodePort,
                other => {
                    let hint = match other {
                        "LoadBalancer" | "ExternalName" => " (not supported by podpath)",
                        _ => "",
                    };
                    self.error(
                        v.referenced,
                        format!(
                            "unknown Service type {}{hint}: expected ClusterIP or NodePort",
                            quoted(other)
                        ),
                    );
                    complete = false;
                    ServiceType::ClusterIp
                }
            },
        };

        let (headless, fixed_ip, ip_at) = match &spec.cluster_ip {
            None => (false, None, entry.referenced),
            Some(v) if v.value == "None" => {
                if service_type == ServiceType::NodePort {
                    self.error(
                        v.referenced,
                        "clusterIP may not be None for a NodePort Service: a headless Service has no address to forward node ports to",
                    );
                    complete = false;
                }
                (true, None, v.referenced)
            }
            Some(v) => {
                let ip = self.cluster_ip(v, cluster);
                complete &= ip.is_some();
                (false, ip, v.referenced)
            }
        };

        let selector = match &spec.selector {
            None => None,
            Some(s) if s.value.is_empty() => {
                self.error(
                    s.referenced,
                    "`selector` is empty: in Kubernetes that selects no pods at all (the Service gets no endpoints from pods); leave it out, and list `endpoints` if it needs some",
                );
                complete = false;
                None
            }
            Some(s) => {
                if let Some(endpoints) = &spec.endpoints {
                    self.error(
                        endpoints.referenced,
                        "`endpoints` is for Services without a `selector`: a selector's endpoints are the pods it selects",
                    );
                    complete = false;
                }
                Some(s.value.clone())
            }
        };

        let (ports, fixed_node_ports, ports_ok) =
            self.service_ports(spec, entry.referenced, service_type, headless);
        complete &= ports_ok;

        let session_affinity = match &spec.session_affinity {
            None => None,
            Some(v) => match v.value.as_str() {
                "None" => None,
                "ClientIP" => Some(DEFAULT_AFFINITY_TIMEOUT),
                other => {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown sessionAffinity {}: expected None or ClientIP",
                            quoted(other)
                        ),
                    );
                    complete = false;
                    None
                }
            },
        };
        let session_affinity = match &spec.session_affinity_timeout {
            None => session_affinity,
            Some(v) if session_affinity.is_none() => {
                if spec
                    .session_affinity
                    .as_ref()
                    .is_none_or(|a| a.value == "None")
                {
                    self.error(
                        v.referenced,
                        "`sessionAffinityTimeout` goes with `sessionAffinity: ClientIP`",
                    );
                }
                complete = false;
                None
            }
            Some(v) => match self.number("sessionAffinityTimeout", v) {
                Some(n @ 1..) if n <= u64::from(MAX_AFFINITY_TIMEOUT) => Some(n as u32),
                Some(n) => {
                    self.error(
                        v.referenced,
                        format!(
                            "sessionAffinityTimeout {n} is out of range 1..={MAX_AFFINITY_TIMEOUT} (seconds)"
                        ),
                    );
                    complete = false;
                    None
                }
                None => {
                    complete = false;
                    None
                }
            },
        };

        let external_traffic_policy = match &spec.external_traffic_policy {
            None => TrafficPolicy::Cluster,
            Some(v) => {
                let policy = self.traffic_policy("externalTrafficPolicy", v);
                if service_type != ServiceType::NodePort && policy.is_some() {
                    self.error(
                        v.referenced,
                        "externalTrafficPolicy may only be set for externally-accessible Services (type NodePort)",
                    );
                    complete = false;
                }
                complete &= policy.is_some();
                policy.unwrap_or_default()
            }
        };
        let internal_traffic_policy = match &spec.internal_traffic_policy {
            None => TrafficPolicy::Cluster,
            Some(v) => {
                let policy = self.traffic_policy("internalTrafficPolicy", v);
                complete &= policy.is_some();
                policy.unwrap_or_default()
            }
        };

        ServiceDraft {
            plan: ServicePlan {
                namespace,
                name,
                service_type,
                cluster_ip: fixed_ip,
                selector,
                ports,
                session_affinity,
                external_traffic_policy,
                internal_traffic_policy,
                endpoints: Vec::new(),
                location: Location::from_yaml(entry.referenced)
                    .unwrap_or(Location { line: 0, column: 0 }),
            },
            complete,
            ip_at,
            fixed_ip,
            headless,
            fixed_node_ports,
            at: entry.referenced,
        }
    }

    /// A written ClusterIP: inside the service CIDR, not its network or broadcast address.
    fn cluster_ip(&mut self, value: &Spanned<String>, cluster: &ClusterParams) -> Option<Ipv4Addr> {
        let text = value.value.as_str();
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            self.error(
                value.referenced,
                format!(
                    "clusterIP {} is not an IPv4 address or None (headless)",
                    quoted(text)
                ),
            );
            return None;
        };
        let cidr = cluster.service_cidr?;
        let problem = if !cidr.contains(&ip) {
            "is outside"
        } else if ip == cidr.network() {
            "is the network address of"
        } else if ip == cidr.broadcast() {
            "is the broadcast address of"
        } else {
            return Some(ip);
        };
        self.error(
            value.referenced,
            format!("clusterIP {ip} {problem} serviceCIDR {cidr}"),
        );
        None
    }

    fn traffic_policy(&mut self, what: &str, value: &Spanned<String>) -> Option<TrafficPolicy> {
        match value.value.as_str() {
            "Cluster" => Some(TrafficPolicy::Cluster),
            "Local" => Some(TrafficPolicy::Local),
            other => {
                self.error(
                    value.referenced,
                    format!(
                        "unknown {what} {}: expected Cluster or Local",
                        quoted(other)
                    ),
                );
                None
            }
        }
    }

    /// The ports as written, each checked alone and against the others of the Service.
    fn service_ports(
        &mut self,
        spec: &ServiceSpec,
        at: YamlLocation,
        service_type: ServiceType,
        headless: bool,
    ) -> (Vec<ServicePortPlan>, Vec<FixedNodePort>, bool) {
        let entries: &[Spanned<ServicePortSpec>] =
            spec.ports.as_ref().map_or(&[], |p| p.value.as_slice());
        let mut complete = true;
        if entries.is_empty() && !headless {
            let at = spec.ports.as_ref().map_or(at, |p| p.referenced);
            self.error(
                at,
                "a Service needs at least one port in `ports` (only a headless one, clusterIP: None, may have none)",
            );
            complete = false;
        }
        let several = entries.len() > 1;
        let mut ports = Vec::with_capacity(entries.len());
        let mut fixed_node_ports = Vec::with_capacity(entries.len());
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        let mut numbers: HashMap<(u16, Proto), YamlLocation> = HashMap::new();
        let mut node_ports: HashMap<(u16, Proto), YamlLocation> = HashMap::new();
        for entry in entries {
            let p = &entry.value;
            let mut ok = true;

            let name = match &p.name {
                None if several => {
                    self.error(
                        entry.referenced,
                        "port has no `name`: every port of a Service with several ports needs one",
                    );
                    ok = false;
                    String::new()
                }
                None => String::new(),
                Some(v) => {
                    if let Some(problem) = dns_label_problem(&v.value, super::MAX_NAME) {
                        self.error(
                            v.referenced,
                            format!("port name {} {problem}", quoted(&v.value)),
                        );
                        ok = false;
                    } else if let Some(first) = names.get(&v.value) {
                        self.error(
                            v.referenced,
                            format!(
                                "duplicate port name {}, first declared at {}",
                                quoted(&v.value),
                                at_text(*first)
                            ),
                        );
                        ok = false;
                    } else {
                        names.insert(v.value.clone(), v.referenced);
                    }
                    v.value.clone()
                }
            };

            let protocol = match &p.protocol {
                None => Some(Proto::Tcp),
                Some(v) => match v.value.as_str() {
                    "TCP" => Some(Proto::Tcp),
                    "UDP" => Some(Proto::Udp),
                    other => {
                        let hint = if matches!(other, "tcp" | "udp") {
                            " (Kubernetes spells protocols in capitals)"
                        } else {
                            ""
                        };
                        self.error(
                            v.referenced,
                            format!(
                                "unknown protocol {}: expected TCP or UDP{hint}",
                                quoted(other)
                            ),
                        );
                        None
                    }
                },
            };

            let port = match &p.port {
                None => {
                    self.error(entry.referenced, "port has no `port`");
                    None
                }
                Some(v) => self.port_number("port", v),
            };
            if let (Some(port), Some(proto), Some(v)) = (port, protocol, &p.port) {
                if let Some(first) = numbers.get(&(port, proto)) {
                    self.error(
                        v.referenced,
                        format!(
                            "duplicate port {port}/{}, first declared at {}",
                            proto_upper(proto),
                            at_text(*first)
                        ),
                    );
                    ok = false;
                } else {
                    numbers.insert((port, proto), v.referenced);
                }
            }

            let target_port = match &p.target_port {
                None => port.map(TargetPort::Number),
                Some(v) => self.target_port(v),
            };

            let node_port = match &p.node_port {
                None => None,
                Some(v) if service_type != ServiceType::NodePort => {
                    self.error(
                        v.referenced,
                        format!(
                            "nodePort is only for type NodePort (this Service is {service_type})"
                        ),
                    );
                    ok = false;
                    None
                }
                Some(v) => match self.number("nodePort", v) {
                    Some(n)
                        if (u64::from(*NODE_PORT_RANGE.start())
                            ..=u64::from(*NODE_PORT_RANGE.end()))
                            .contains(&n) =>
                    {
                        let n = n as u16;
                        match protocol
                            .and_then(|proto| node_ports.get(&(n, proto)).map(|a| (proto, a)))
                        {
                            Some((proto, first)) => {
                                self.error(
                                    v.referenced,
                                    format!(
                                        "duplicate nodePort {n}/{}, first declared at {}",
                                        proto_upper(proto),
                                        at_text(*first)
                                    ),
                                );
                                ok = false;
                                None
                            }
                            None => {
                                if let Some(proto) = protocol {
                                    node_ports.insert((n, proto), v.referenced);
                                }
                                Some((n, v.referenced))
                            }
                        }
                    }
                    Some(n) => {
                        self.error(
                            v.referenced,
                            format!(
                                "nodePort {n} is out of range {}-{}",
                                NODE_PORT_RANGE.start(),
                                NODE_PORT_RANGE.end()
                            ),
                        );
                        ok = false;
                        None
                    }
                    None => {
                        ok = false;
                        None
                    }
                },
            };

            match (port, protocol, target_port) {
                (Some(port), Some(protocol), Some(target_port)) if ok => {
                    ports.push(ServicePortPlan {
                        name,
                        protocol,
                        port,
                        target_port,
                        node_port: None,
                        endpoints: Vec::new(),
                    });
                    fixed_node_ports.push(node_port);
                }
                _ => complete = false,
            }
        }
        (ports, fixed_node_ports, complete)
    }

    fn port_number(&mut self, what: &str, value: &Spanned<String>) -> Option<u16> {
        match parse_port(&value.value) {
            Ok(port) => Some(port),
            Err(problem) => {
                self.error(
                    value.referenced,
                    format!("{what} {} {problem}", quoted(&value.value)),
                );
                None
            }
        }
    }

    /// `targetPort`: a port number, or a listener name (an IANA service name).
    fn target_port(&mut self, value: &Spanned<String>) -> Option<TargetPort> {
        let text = value.value.as_str();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return self
                .port_number("targetPort", value)
                .map(TargetPort::Number);
        }
        match iana_svc_name_problem(text) {
            None => Some(TargetPort::Name(text.to_owned())),
            Some(problem) => {
                self.error(
                    value.referenced,
                    format!(
                        "targetPort {} is not a port number, and {problem}",
                        quoted(text)
                    ),
                );
                None
            }
        }
    }

    /// Fixed ClusterIPs are checked for duplicates; the others get the lowest free host of the
    /// service CIDR from .2 up, skipping .10 and every fixed address, in declared order.
    fn allocate_cluster_ips(&mut self, drafts: &mut [ServiceDraft], cluster: &ClusterParams) {
        let mut taken: HashMap<Ipv4Addr, String> = HashMap::new();
        for draft in drafts.iter_mut() {
            if let Some(ip) = draft.fixed_ip {
                if let Some(other) = taken.get(&ip) {
                    self.error(
                        draft.ip_at,
                        format!("duplicate clusterIP {ip}: Service {other} has it too"),
                    );
                    draft.complete = false;
                } else {
                    taken.insert(ip, draft.plan.id());
                }
            }
        }
        let Some(cidr) = cluster.service_cidr else {
            for draft in drafts.iter_mut() {
                draft.complete = false;
            }
            return;
        };
        let network = u32::from(cidr.network());
        let last = u32::from(cidr.broadcast());
        let mut next = network.saturating_add(1);
        for draft in drafts.iter_mut() {
            if draft.headless || draft.fixed_ip.is_some() {
                continue;
            }
            let mut found = None;
            while next < last {
                let candidate = next;
                next += 1;
                let reserved = RESERVED_SERVICE_HOSTS.contains(&(candidate - network));
                if !reserved && !taken.contains_key(&Ipv4Addr::from(candidate)) {
                    found = Some(Ipv4Addr::from(candidate));
                    break;
                }
            }
            match found {
                Some(ip) => draft.plan.cluster_ip = Some(ip),
                None => {
                    self.error(
                        draft.at,
                        format!(
                            "serviceCIDR {cidr} has no address left for Service {} (.1 and .10 are reserved); give it a clusterIP or widen serviceCIDR",
                            draft.plan.id()
                        ),
                    );
                    draft.complete = false;
                    // Later Services cannot get one either; one message is enough.
                    return;
                }
            }
        }
    }

    /// Fixed NodePorts are checked against other Services'; then, in declared order, every
    /// NodePort Service port without one gets one: the one of a port of the same Service with
    /// the same number (kube-apiserver shares a node port between, say, 53/TCP and 53/UDP), or
    /// the lowest free port from 30000 up, skipping every fixed one.
    fn allocate_node_ports(&mut self, drafts: &mut [ServiceDraft]) {
        let ids: Vec<String> = drafts.iter().map(|d| d.plan.id()).collect();
        let mut owner: HashMap<u16, usize> = HashMap::new();
        for (index, draft) in drafts.iter_mut().enumerate() {
            for fixed in draft.fixed_node_ports.iter().flatten() {
                let (n, at) = *fixed;
                match owner.get(&n) {
                    Some(&other) if other != index => {
                        self.error(
                            at,
                            format!(
                                "nodePort {n} is already allocated to Service {}",
                                ids[other]
                            ),
                        );
                        draft.complete = false;
                    }
                    Some(_) => {}
                    None => {
                        owner.insert(n, index);
                    }
                }
            }
        }
        let mut next = *NODE_PORT_RANGE.start();
        for (index, draft) in drafts.iter_mut().enumerate() {
            if draft.plan.service_type != ServiceType::NodePort {
                continue;
            }
            let mut by_number: HashMap<u16, u16> = HashMap::new();
            // Written node ports are shared by ports of the same number first.
            for (port, fixed) in draft.plan.ports.iter().zip(&draft.fixed_node_ports) {
                if let Some((n, _)) = fixed {
                    by_number.entry(port.port).or_insert(*n);
                }
            }
            for (port, fixed) in draft.plan.ports.iter_mut().zip(&draft.fixed_node_ports) {
                if let Some((n, _)) = fixed {
                    port.node_port = Some(*n);
                    continue;
                }
                if let Some(&n) = by_number.get(&port.port) {
                    port.node_port = Some(n);
                    continue;
                }
                while next <= *NODE_PORT_RANGE.end() && owner.contains_key(&next) {
                    next += 1;
                }
                if next > *NODE_PORT_RANGE.end() {
                    self.error(
                        draft.at,
                        format!(
                            "no NodePort left for Service {} in {}-{}",
                            draft.plan.id(),
                            NODE_PORT_RANGE.start(),
                            NODE_PORT_RANGE.end()
                        ),
                    );
                    draft.complete = false;
                    return;
                }
                owner.insert(next, index);
                by_number.insert(port.port, next);
                port.node_port = Some(next);
                next += 1;
            }
        }
    }

    /// The Service's endpoints: the pods its selector picks (same namespace, every label
    /// matching), or the listed ones; then, per port, those that have its target port.
    fn endpoints(
        &mut self,
        draft: &mut ServiceDraft,
        spec: &ServiceSpec,
        nodes: &[NodeDraft],
        pods: &[PodDraft],
    ) {
        // (endpoint, its pod's index, its explicit port and where that is written)
        let mut found: Vec<(ServiceEndpoint, Option<usize>, Option<u16>)> = Vec::new();
        let mut entry_at: Vec<YamlLocation> = Vec::new();
        let written_ports = spec.ports.as_ref().map_or(0, |p| p.value.len());
        if let Some(selector) = &draft.plan.selector {
            for (index, pod) in pods.iter().enumerate() {
                let selected = pod.namespace == draft.plan.namespace
                    && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v));
                if !selected {
                    continue;
                }
                let (Some(name), Some(ip)) = (&pod.name, pod.ip) else {
                    draft.complete = false;
                    continue;
                };
                found.push((
                    ServiceEndpoint {
                        pod: Some(name.clone()),
                        ip,
                        node: pod.node.and_then(|n| nodes.get(n)?.name.clone()),
                        ready: pod.ready,
                    },
                    Some(index),
                    None,
                ));
                entry_at.push(draft.at);
            }
        } else if let Some(entries) = &spec.endpoints {
            let mut ips: HashMap<Ipv4Addr, YamlLocation> = HashMap::new();
            for entry in &entries.value {
                let Some((endpoint, pod, port)) =
                    self.listed_endpoint(entry, written_ports, nodes, pods)
                else {
                    draft.complete = false;
                    continue;
                };
                if let Some(first) = ips.get(&endpoint.ip) {
                    self.error(
                        entry.referenced,
                        format!(
                            "duplicate endpoint {}, first listed at {}",
                            endpoint.ip,
                            at_text(*first)
                        ),
                    );
                    draft.complete = false;
                    continue;
                }
                ips.insert(endpoint.ip, entry.referenced);
                found.push((endpoint, pod, port));
                entry_at.push(entry.referenced);
            }
        }

        let mut reported: HashSet<usize> = HashSet::new();
        for port in draft.plan.ports.iter_mut() {
            for (index, ((endpoint, pod, explicit), at)) in found.iter().zip(&entry_at).enumerate()
            {
                let target = match (explicit, &port.target_port) {
                    (Some(n), _) => Some(*n),
                    (None, TargetPort::Number(n)) => Some(*n),
                    (None, TargetPort::Name(name)) => match pod {
                        // As in Kubernetes: a pod without the named port (of the port's
                        // protocol) is not an endpoint of that port.
                        Some(p) => pods[*p]
                            .port_names
                            .iter()
                            .find(|(n, l)| n == name && l.proto == port.protocol)
                            .map(|(_, l)| l.port),
                        None => {
                            if reported.insert(index) {
                                self.error(
                                    *at,
                                    format!(
                                        "endpoint {} needs a `port`: the targetPort of port {} is the name {}, and only pods have named ports",
                                        endpoint.ip,
                                        port.label(),
                                        quoted(name)
                                    ),
                                );
                            }
                            draft.complete = false;
                            None
                        }
                    },
                };
                if let Some(target) = target {
                    port.endpoints.push(PortEndpoint {
                        pod: endpoint.pod.clone(),
                        ip: endpoint.ip,
                        port: target,
                        node: endpoint.node.clone(),
                        ready: endpoint.ready,
                    });
                }
            }
        }
        draft.plan.endpoints = found.into_iter().map(|(e, _, _)| e).collect();
    }

    /// One entry of `endpoints`: a pod name, or `{ ip, port, node }`.
    fn listed_endpoint(
        &mut self,
        entry: &Spanned<EndpointEntry>,
        written_ports: usize,
        nodes: &[NodeDraft],
        pods: &[PodDraft],
    ) -> Option<(ServiceEndpoint, Option<usize>, Option<u16>)> {
        let pod_named = |name: &str| pods.iter().position(|p| p.name.as_deref() == Some(name));
        let node_name = |pod: &PodDraft| pod.node.and_then(|n| nodes.get(n)?.name.clone());
        if let Some(name) = EndpointEntry::pod(entry) {
            let Some(p) = pod_named(&name.value) else {
                let known = known_names(pods.iter().filter_map(|p| p.name.as_deref()));
                self.error(
                    name.referenced,
                    format!(
                        "unknown pod {} in `endpoints` (pods: {known}); an endpoint is a pod name or {{ ip, port, node }}",
                        quoted(&name.value)
                    ),
                );
                return None;
            };
            let pod = &pods[p];
            return Some((
                ServiceEndpoint {
                    pod: Some(name.value.clone()),
                    ip: pod.ip?,
                    node: node_name(pod),
                    ready: pod.ready,
                },
                Some(p),
                None,
            ));
        }
        let EndpointEntry::Spec(spec) = &entry.value else {
            return None;
        };
        let EndpointSpec { ip, port, node } = spec.as_ref();
        let ip = match ip {
            None => {
                self.error(
                    entry.referenced,
                    "endpoint has no `ip` (write a pod name, or { ip, port, node })",
                );
                None
            }
            Some(v) => self.endpoint_ip(v),
        };
        let port = match port {
            None => None,
            Some(v) if written_ports > 1 => {
                self.error(
                    v.referenced,
                    "an endpoint `port` is only for a Service with one port: with several, each port's targetPort is used",
                );
                return None;
            }
            Some(v) => Some(self.port_number("endpoint port", v)?),
        };
        let pod = ip.and_then(|ip| pods.iter().position(|p| p.ip == Some(ip)));
        let node = match node {
            None => pod.and_then(|p| node_name(&pods[p])),
            Some(v) => {
                if !nodes
                    .iter()
                    .any(|n| n.name.as_deref() == Some(v.value.as_str()))
                {
                    let known = known_names(nodes.iter().filter_map(|n| n.name.as_deref()));
                    self.error(
                        v.referenced,
                        format!("unknown node {} (nodes: {known})", quoted(&v.value)),
                    );
                    return None;
                }
                if let Some(p) = pod
                    && let Some(actual) = node_name(&pods[p])
                    && actual != v.value
                {
                    self.error(
                        v.referenced,
                        format!(
                            "endpoint {} is pod {}'s address, and it runs on {actual}, not {}",
                            ip?,
                            pods[p].name.as_deref().unwrap_or_default(),
                            v.value
                        ),
                    );
                    return None;
                }
                Some(v.value.clone())
            }
        };
        Some((
            ServiceEndpoint {
                pod: pod.and_then(|p| pods[p].name.clone()),
                ip: ip?,
                node,
                ready: pod.is_none_or(|p| pods[p].ready),
            },
            pod,
            port,
        ))
    }

    /// An endpoint address: not one Kubernetes rejects in an EndpointSlice.
    fn endpoint_ip(&mut self, value: &Spanned<String>) -> Option<Ipv4Addr> {
        let ip = self.address("endpoint ip", value)?;
        let problem = if ip.is_unspecified() {
            "is unspecified"
        } else if ip.is_loopback() {
            "is in the loopback range"
        } else if ip.is_link_local() {
            "is in the link-local range"
        } else if ip.is_multicast() {
            "is a multicast address"
        } else if ip.is_broadcast() {
            "is the broadcast address"
        } else {
            return Some(ip);
        };
        self.error(
            value.referenced,
            format!(
                "endpoint ip {ip} {problem}: Kubernetes does not accept it in an EndpointSlice"
            ),
        );
        None
    }
}

/// Why `name` is not a DNS-1035 label (what Kubernetes requires of Service names), if it is
/// not: a DNS-1123 label of at most 63 characters that starts with a letter.
fn dns1035_label_problem(name: &str) -> Option<String> {
    if let Some(problem) = dns_label_problem(name, super::MAX_NAME) {
        return Some(problem);
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("is not a DNS-1035 label: a Service name starts with a letter".to_owned());
    }
    None
}

/// What the service proxy of every node knows: one [`ServiceTable`] per node, in node order.
/// Headless Services get no ServicePorts; every other Service one per port, in declared order.
pub fn proxy_tables(
    topology: &Topology,
    cluster_cidr: Ipv4Net,
    service_cidr: Ipv4Net,
    services: &[ServicePlan],
) -> Vec<ServiceTable> {
    let ports: Vec<ServicePort> = services
        .iter()
        .filter(|s| s.cluster_ip.is_some())
        .flat_map(|s| {
            s.ports.iter().map(move |p| ServicePort {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                port_name: p.name.clone(),
                protocol: p.protocol,
                cluster_ip: s.cluster_ip,
                port: p.port,
                node_port: p.node_port,
                affinity_timeout: s.session_affinity,
                external_traffic_policy: s.external_traffic_policy,
                internal_traffic_policy: s.internal_traffic_policy,
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| Endpoint {
                        ip: e.ip,
                        port: e.port,
                        node_name: e.node.clone(),
                        ready: e.ready,
                        serving: e.ready,
                        terminating: false,
                    })
                    .collect(),
            })
        })
        .collect();
    topology
        .nodes
        .iter()
        .map(|node| ServiceTable {
            node_name: node.name.clone(),
            node_ips: vec![node.eth0.addr.addr()],
            cluster_cidr,
            service_cidr,
            services: ports.clone(),
        })
        .collect()
}

/// Pods a flow to this Service port could be answered by (ready endpoints that are pods), for
/// messages.
pub(super) fn ready_pods(port: &ServicePortPlan) -> Vec<&str> {
    let mut seen = HashSet::new();
    port.endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| e.pod.as_deref())
        .filter(|p| seen.insert(*p))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::plan::testing::{assert_edits_stay_located, assert_one_error, ip, plan};
    use crate::plan::{Expect, FlowService, Plan, ServiceVia, Target, load_str};

    const FILE: &str = "cases/s.yaml";

    /// Two nodes; b (node2) and c (node1, not ready) carry `app: web`.
    const PODS: &str = "nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, labels: { app: web }, listen: [8080, { port: 53, protocol: udp, name: dns }] }
  - { name: c, node: node1, labels: { app: web }, ready: false, listen: [8080] }
";

    fn cluster_ips(plan: &Plan) -> Vec<(String, Option<Ipv4Addr>)> {
        plan.services
            .iter()
            .map(|s| (s.name.clone(), s.cluster_ip))
            .collect()
    }

    fn port_endpoints(
        plan: &Plan,
        service: usize,
        port: usize,
    ) -> Vec<(Option<&str>, String, bool)> {
        plan.services[service].ports[port]
            .endpoints
            .iter()
            .map(|e| (e.pod.as_deref(), format!("{}:{}", e.ip, e.port), e.ready))
            .collect()
    }

    // --- allocation ----------------------------------------------------------------------

    #[test]
    fn cluster_ips_skip_the_first_host_dot_ten_and_fixed_ones() {
        let services: String = (1..=10)
            .map(|i| match i {
                3 => "  - { name: s3, clusterIP: 10.96.0.3, ports: [{ port: 80 }] }\n".to_owned(),
                5 => "  - { name: s5, clusterIP: None }\n".to_owned(),
                7 => "  - { name: s7, clusterIP: 10.96.0.10, ports: [{ port: 53 }] }\n".to_owned(),
                _ => format!("  - {{ name: s{i}, ports: [{{ port: 80 }}] }}\n"),
            })
            .collect();
        let plan = plan(FILE, &format!("nodes: [node1]\nservices:\n{services}"));
        let got: Vec<String> = cluster_ips(&plan)
            .into_iter()
            .map(|(name, ip)| {
                format!(
                    "{name}={}",
                    ip.map_or("None".to_owned(), |ip| ip.to_string())
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "s1=10.96.0.2",
                "s2=10.96.0.4",
                "s3=10.96.0.3",
                "s4=10.96.0.5",
                "s5=None",
                "s6=10.96.0.6",
                "s7=10.96.0.10",
                "s8=10.96.0.7",
                "s9=10.96.0.8",
                "s10=10.96.0.9",
            ]
        );
        assert_eq!(plan.service_cidr, "10.96.0.0/12".parse().unwrap());
    }

    #[test]
    fn cluster_ips_go_past_dot_ten_and_follow_the_service_cidr() {
        let services: String = (1..=10)
            .map(|i| format!("  - {{ name: s{i}, ports: [{{ port: 80 }}] }}\n"))
            .collect();
        let plan = plan(
            FILE,
            &format!(
                "cluster: {{ serviceCIDR: 10.32.0.0/24 }}\nnodes: [node1]\nservices:\n{services}"
            ),
        );
        let ips: Vec<Ipv4Addr> = plan.services.iter().filter_map(|s| s.cluster_ip).collect();
        assert_eq!(ips[0], ip("10.32.0.2"));
        assert_eq!(ips[7], ip("10.32.0.9"));
        assert_eq!(ips[8], ip("10.32.0.11"));
        assert_eq!(ips[9], ip("10.32.0.12"));
        assert_eq!(plan.proxy[0].service_cidr, "10.32.0.0/24".parse().unwrap());
    }

    #[test]
    fn the_smallest_service_cidr_holds_one_service() {
        let plan = plan(
            FILE,
            "cluster: { serviceCIDR: 10.96.0.0/30 }\nnodes: [node1]\nservices: [{ name: s, ports: [{ port: 80 }] }]\n",
        );
        assert_eq!(plan.services[0].cluster_ip, Some(ip("10.96.0.2")));
    }

    #[test]
    fn node_ports_count_from_30000_skip_fixed_ones_and_are_shared_by_port_number() {
        let plan = plan(
            FILE,
            "nodes: [node1]
services:
  - { name: a, type: NodePort, ports: [{ port: 80 }] }
  - { name: b, type: NodePort, ports: [{ port: 80, nodePort: 30001 }] }
  - name: dns
    type: NodePort
    ports:
      - { name: udp, port: 53, protocol: UDP }
      - { name: tcp, port: 53, protocol: TCP, nodePort: 30002 }
      - { name: metrics, port: 9153 }
  - { name: c, ports: [{ port: 80 }] }
  - { name: d, type: NodePort, ports: [{ name: x, port: 80 }, { name: y, port: 80, protocol: UDP }] }
",
        );
        let node_ports: Vec<(String, Option<u16>)> = plan
            .services
            .iter()
            .flat_map(|s| {
                s.ports
                    .iter()
                    .map(move |p| (format!("{}/{}", s.name, p.label()), p.node_port))
            })
            .collect();
        let expected: Vec<(String, Option<u16>)> = [
            ("a/80/TCP", Some(30000)),
            ("b/80/TCP", Some(30001)),
            ("dns/udp 53/UDP", Some(30002)),
            ("dns/tcp 53/TCP", Some(30002)),
            ("dns/metrics 9153/TCP", Some(30003)),
            ("c/80/TCP", None),
            ("d/x 80/TCP", Some(30004)),
            ("d/y 80/UDP", Some(30004)),
        ]
        .into_iter()
        .map(|(name, port)| (name.to_owned(), port))
        .collect();
        assert_eq!(node_ports, expected);
    }

    // --- endpoints -----------------------------------------------------------------------

    #[test]
    fn selectors_pick_ready_and_not_ready_pods_of_their_namespace_with_every_label() {
        let plan = plan(
            FILE,
            "nodes: [node1, node2]
pods:
  - { name: a, node: node1, labels: { app: web, tier: front } }
  - { name: b, node: node2, labels: { app: web } }
  - { name: c, node: node1, labels: { app: web, tier: front }, ready: false }
  - { name: d, node: node2, namespace: shop, labels: { app: web, tier: front } }
  - { name: e, node: node2, labels: { app: api, tier: front } }
services:
  - { name: web, selector: { app: web, tier: front }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: web, namespace: shop, selector: { app: web }, ports: [{ port: 80 }] }
  - { name: all, selector: { app: web }, ports: [{ port: 80 }] }
",
        );
        assert_eq!(
            port_endpoints(&plan, 0, 0),
            [
                (Some("a"), "10.244.1.2:8080".to_owned(), true),
                (Some("c"), "10.244.1.3:8080".to_owned(), false),
            ]
        );
        assert_eq!(
            port_endpoints(&plan, 1, 0),
            [(Some("d"), "10.244.2.3:80".to_owned(), true)]
        );
        let all: Vec<&str> = plan.services[2]
            .endpoints
            .iter()
            .filter_map(|e| e.pod.as_deref())
            .collect();
        assert_eq!(all, ["a", "b", "c"]);
        assert_eq!(
            plan.services[0].endpoints[1],
            ServiceEndpoint {
                pod: Some("c".into()),
                ip: ip("10.244.1.3"),
                node: Some("node1".into()),
                ready: false,
            }
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol_and_skip_pods_without_them() {
        let plan = plan(
            FILE,
            "nodes: [node1]
pods:
  - { name: a, node: node1, labels: { app: web }, listen: [{ port: 8080, name: http }, { port: 53, protocol: udp, name: dns }] }
  - { name: b, node: node1, labels: { app: web }, listen: [{ port: 9090, protocol: tcp, name: http }, 8080] }
  - { name: c, node: node1, labels: { app: web }, listen: [8080, { port: 53, protocol: tcp, name: dns }] }
services:
  - name: web
    selector: { app: web }
    ports:
      - { name: http, port: 80, targetPort: http }
      - { name: dns, port: 53, protocol: UDP, targetPort: dns }
      - { name: plain, port: 81, targetPort: 8080 }
",
        );
        assert_eq!(
            port_endpoints(&plan, 0, 0),
            [
                (Some("a"), "10.244.1.2:8080".to_owned(), true),
                (Some("b"), "10.244.1.3:9090".to_owned(), true),
            ]
        );
        // c names 53/tcp `dns`, but the Service port is UDP.
        assert_eq!(
            port_endpoints(&plan, 0, 1),
            [(Some("a"), "10.244.1.2:53".to_owned(), true)]
        );
        assert_eq!(port_endpoints(&plan, 0, 2).len(), 3);
        assert_eq!(plan.services[0].endpoints.len(), 3);
        assert_eq!(
            plan.services[0].ports[0].target_port,
            TargetPort::Name("http".into())
        );
    }

    #[test]
    fn services_without_selector_use_the_listed_endpoints() {
        let plan = plan(FILE, &format!(
            "{PODS}services:
  - {{ name: ext, endpoints: [b, c, {{ ip: 192.0.2.10, node: node1 }}], ports: [{{ port: 80, targetPort: 8080 }}] }}
  - {{ name: one, endpoints: [{{ ip: 192.0.2.10, port: 9000 }}], ports: [{{ port: 80 }}] }}
  - {{ name: named, endpoints: [b, c], ports: [{{ port: 53, protocol: UDP, targetPort: dns }}] }}
  - {{ name: none, ports: [{{ port: 80 }}] }}
"
        ));
        let ext = &plan.services[0];
        assert_eq!(ext.selector, None);
        assert_eq!(
            ext.endpoints[2],
            ServiceEndpoint {
                pod: None,
                ip: ip("192.0.2.10"),
                node: Some("node1".into()),
                ready: true,
            }
        );
        assert_eq!(ext.endpoints.len(), 3);
        assert_eq!(
            port_endpoints(&plan, 0, 0),
            [
                (Some("b"), "10.244.2.2:8080".to_owned(), true),
                (Some("c"), "10.244.1.3:8080".to_owned(), false),
                (None, "192.0.2.10:8080".to_owned(), true),
            ]
        );
        assert_eq!(
            port_endpoints(&plan, 1, 0),
            [(None, "192.0.2.10:9000".to_owned(), true)]
        );
        assert_eq!(
            port_endpoints(&plan, 2, 0),
            [(Some("b"), "10.244.2.2:53".to_owned(), true)]
        );
        assert!(plan.services[3].ports[0].endpoints.is_empty());
    }

    #[test]
    fn an_address_endpoint_of_a_pod_is_that_pod() {
        let plan = plan(
            FILE,
            &format!(
                "{PODS}services: [{{ name: ext, endpoints: [{{ ip: 10.244.1.3 }}], ports: [{{ port: 80 }}] }}]\n"
            ),
        );
        assert_eq!(
            plan.services[0].endpoints[0],
            ServiceEndpoint {
                pod: Some("c".into()),
                ip: ip("10.244.1.3"),
                node: Some("node1".into()),
                ready: false,
            }
        );
    }

    #[test]
    fn service_settings_are_kept() {
        let plan = plan(FILE, &format!(
            "{PODS}services:
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    externalTrafficPolicy: Local
    internalTrafficPolicy: Local
    ports: [{{ port: 80, targetPort: 8080, nodePort: 31000 }}]
  - {{ name: short, sessionAffinity: ClientIP, sessionAffinityTimeout: 60, ports: [{{ port: 80 }}] }}
  - {{ name: plain, sessionAffinity: None, internalTrafficPolicy: Cluster, ports: [{{ port: 80 }}] }}
"
        ));
        let web = &plan.services[0];
        assert_eq!(web.service_type, ServiceType::NodePort);
        assert_eq!(web.session_affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(web.external_traffic_policy, TrafficPolicy::Local);
        assert_eq!(web.internal_traffic_policy, TrafficPolicy::Local);
        assert_eq!(web.ports[0].node_port, Some(31000));
        assert_eq!(web.location, Location { line: 7, column: 5 });
        assert_eq!(plan.services[1].session_affinity, Some(60));
        assert_eq!(plan.services[2].session_affinity, None);
        assert_eq!(plan.services[2].service_type, ServiceType::ClusterIp);
        assert_eq!(
            plan.services[2].internal_traffic_policy,
            TrafficPolicy::Cluster
        );
    }

    // --- service tables ------------------------------------------------------------------

    #[test]
    fn every_node_gets_a_service_table_with_one_service_port_per_port() {
        let plan = plan(
            FILE,
            &format!(
                "{PODS}services:
  - {{ name: hl, clusterIP: None, selector: {{ app: web }}, ports: [{{ port: 80 }}] }}
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    internalTrafficPolicy: Local
    ports:
      - {{ name: http, port: 80, targetPort: 8080 }}
      - {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}
"
            ),
        );
        assert_eq!(plan.proxy.len(), 2);
        let ep = |ip: &str, port: u16, node: &str, ready: bool| Endpoint {
            ip: ip.parse().unwrap(),
            port,
            node_name: Some(node.to_owned()),
            ready,
            serving: ready,
            terminating: false,
        };
        let http = ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Proto::Tcp,
            cluster_ip: Some(ip("10.96.0.2")),
            port: 80,
            node_port: Some(30000),
            affinity_timeout: Some(10800),
            external_traffic_policy: TrafficPolicy::Cluster,
            internal_traffic_policy: TrafficPolicy::Local,
            endpoints: vec![
                ep("10.244.2.2", 8080, "node2", true),
                ep("10.244.1.3", 8080, "node1", false),
            ],
        };
        let dns = ServicePort {
            port_name: "dns".into(),
            protocol: Proto::Udp,
            port: 53,
            node_port: Some(30001),
            endpoints: vec![ep("10.244.2.2", 53, "node2", true)],
            ..http.clone()
        };
        assert_eq!(
            plan.proxy[0],
            ServiceTable {
                node_name: "node1".into(),
                node_ips: vec![ip("172.18.0.2")],
                cluster_cidr: "10.244.0.0/16".parse().unwrap(),
                service_cidr: "10.96.0.0/12".parse().unwrap(),
                services: vec![http.clone(), dns.clone()],
            }
        );
        assert_eq!(plan.proxy[1].node_name, "node2");
        assert_eq!(plan.proxy[1].node_ips, [ip("172.18.0.3")]);
        assert_eq!(plan.proxy[1].services, [http.clone(), dns]);
        assert_eq!(http.port_name_string(), "default/web:http");
    }

    #[test]
    fn an_unnamed_port_has_an_empty_port_name_and_a_case_without_services_empty_tables() {
        let plan = plan(
            FILE,
            &format!(
                "{PODS}services: [{{ name: web, selector: {{ app: web }}, ports: [{{ port: 80 }}] }}]\n"
            ),
        );
        assert_eq!(plan.proxy[0].services[0].port_name, "");
        // kube-proxy's ServicePortName of an unnamed port has no colon.
        assert_eq!(plan.proxy[0].services[0].port_name_string(), "default/web");
        let plan = super::super::load_str(Path::new(FILE), PODS).unwrap();
        assert_eq!(plan.proxy.len(), 2);
        assert!(plan.proxy.iter().all(|t| t.services.is_empty()));
        assert!(plan.services.is_empty());
    }

    // --- flows ---------------------------------------------------------------------------

    #[test]
    fn flows_to_services_resolve_to_cluster_ips_and_node_ports() {
        let plan = plan(FILE, &format!(
            "{PODS}  - {{ name: d, node: node2, namespace: shop, labels: {{ app: web }}, listen: [8080] }}
services:
  - name: web
    type: NodePort
    selector: {{ app: web }}
    sessionAffinity: ClientIP
    ports:
      - {{ name: http, port: 80, targetPort: 8080 }}
      - {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}
  - {{ name: web, namespace: shop, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}
flows:
  - {{ name: by-name, from: a, to: svc/web:80, expect: {{ reach: b }} }}
  - {{ name: other-ns, from: a, to: svc/shop/web:80, expect: {{ reach: d, seenSource: a }} }}
  - {{ name: in-own-ns, from: d, to: svc/web:80, expect: {{ reach: d }} }}
  - {{ name: by-ip, from: a, to: 10.96.0.2:53, attempts: 3, expect: {{ reach: b, sticky: true }} }}
  - {{ name: node-port, from: a, to: node2:30000, attempts: 2, expect: {{ reach: [b], seenSource: node1 }} }}
  - {{ name: node-port-udp, from: a, to: 172.18.0.2:30001, expect: {{ reach: b }} }}
  - {{ name: other-port, from: a, to: 10.96.0.2:81, expect: {{ fail: timeout }} }}
  - {{ name: ping, from: a, to: node2, expect: {{ fail: timeout }} }}
"
        ));
        let flows = &plan.flows;
        let svc = |service: usize, port: usize, ns: &str, via: ServiceVia| {
            Some(FlowService {
                service,
                port,
                namespace: ns.into(),
                name: "web".into(),
                via,
            })
        };
        let node2 = ServiceVia::NodePort {
            node: "node2".into(),
        };
        assert_eq!(
            flows[0].target,
            Target::Tcp("10.96.0.2:80".parse().unwrap())
        );
        assert_eq!(flows[0].target_label, "svc/web:80");
        assert_eq!(
            flows[0].service,
            svc(0, 0, "default", ServiceVia::ClusterIp)
        );
        assert_eq!((flows[0].attempts, flows[0].sticky), (1, false));
        assert_eq!(
            flows[1].target,
            Target::Tcp("10.96.0.3:80".parse().unwrap())
        );
        assert_eq!(flows[1].service, svc(1, 0, "shop", ServiceVia::ClusterIp));
        // `svc/web` is looked up in the namespace of `from`.
        assert_eq!(flows[2].service, svc(1, 0, "shop", ServiceVia::ClusterIp));
        // A UDP-only Service port makes the flow udp.
        assert_eq!(
            flows[3].target,
            Target::Udp("10.96.0.2:53".parse().unwrap())
        );
        assert_eq!(
            flows[3].service,
            svc(0, 1, "default", ServiceVia::ClusterIp)
        );
        assert_eq!((flows[3].attempts, flows[3].sticky), (3, true));
        assert!(!flows[3].each_reach_pod_answers());
        assert_eq!(
            flows[4].target,
            Target::Tcp("172.18.0.3:30000".parse().unwrap())
        );
        assert_eq!(flows[4].service, svc(0, 0, "default", node2));
        assert!(flows[4].each_reach_pod_answers());
        assert_eq!(
            flows[5].service,
            svc(
                0,
                1,
                "default",
                ServiceVia::NodePort {
                    node: "node1".into()
                }
            )
        );
        assert_eq!(
            flows[5].target,
            Target::Udp("172.18.0.2:30001".parse().unwrap())
        );
        assert_eq!(flows[6].service, None);
        assert_eq!(
            flows[6].target,
            Target::Tcp("10.96.0.2:81".parse().unwrap())
        );
        assert_eq!(flows[7].target, Target::Icmp(ip("172.18.0.3")));
        assert_eq!(flows[7].service, None);
        assert_eq!(
            flows[7].expect,
            Expect::Fail(crate::plan::FailKind::Timeout)
        );
    }

    #[test]
    fn the_plan_renders_services_and_flows_to_them() {
        let plan = plan(FILE, &format!(
            "{PODS}services:
  - {{ name: web, type: NodePort, selector: {{ app: web }}, sessionAffinity: ClientIP, ports: [{{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }}, {{ name: dns, port: 53, protocol: UDP, targetPort: dns }}] }}
  - {{ name: ext, internalTrafficPolicy: Local, endpoints: [{{ ip: 192.0.2.1, port: 9000 }}], ports: [{{ port: 80 }}] }}
  - {{ name: hl, clusterIP: None, selector: {{ app: web }} }}
  - {{ name: empty, selector: {{ app: none }}, ports: [{{ port: 80 }}] }}
flows:
  - {{ name: f, from: a, to: svc/web:80, attempts: 4, expect: {{ reach: b }} }}
  - {{ name: g, from: a, to: node1:30080, attempts: 3, expect: {{ reach: b, sticky: true }} }}
"
        ));
        let text = plan.to_string();
        let services = &text[text.find("service default/web").unwrap()..];
        assert_eq!(
            services,
            "service default/web NodePort 10.96.0.2 (line 7)
  selector   app=web
  affinity   ClientIP 10800s
  policy     external Cluster, internal Cluster
  port       http 80/TCP nodePort 30080 -> targetPort 8080
    endpoint 10.244.2.2:8080 b on node2
    endpoint 10.244.1.3:8080 c on node1 (not ready)
  port       dns 53/UDP nodePort 30000 -> targetPort dns
    endpoint 10.244.2.2:53 b on node2
service default/ext ClusterIP 10.96.0.3 (line 8)
  selector   none (endpoints listed)
  policy     internal Local
  port       80/TCP -> targetPort 80
    endpoint 192.0.2.1:9000
service default/hl ClusterIP None (headless) (line 9)
  selector   app=web
  endpoint   10.244.2.2 b on node2
  endpoint   10.244.1.3 c on node1 (not ready)
service default/empty ClusterIP 10.96.0.4 (line 10)
  selector   app=none
  port       80/TCP -> targetPort 80
    no endpoints
flow f (line 12): a -> tcp 10.96.0.2:80 (Service default/web port http 80/TCP), timeout 2s, 4 attempts
  expect reach b, each of them at least once
flow g (line 13): a -> tcp 172.18.0.2:30080 (node1's NodePort to Service default/web port http 80/TCP), timeout 2s, 3 attempts
  expect reach b, every attempt answered by the same pod
"
        );
    }

    /// Deterministic mutations of a valid case with Services must never panic, and whatever
    /// they break must be reported with a location.
    #[test]
    fn mutated_service_cases_never_panic() {
        let valid = "cluster: { serviceCIDR: 10.96.0.0/24 }
nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, labels: { app: web }, listen: [{ port: 8080, name: http }, { port: 53, protocol: udp, name: dns }] }
  - { name: c, node: node1, labels: { app: web }, ready: false, listen: [{ port: 8080, name: http }] }
services:
  - name: web
    type: NodePort
    selector: { app: web }
    sessionAffinity: ClientIP
    sessionAffinityTimeout: 30
    externalTrafficPolicy: Local
    ports: [{ name: http, port: 80, targetPort: http, nodePort: 30080 }, { name: dns, port: 53, protocol: UDP, targetPort: dns }]
  - { name: ext, clusterIP: 10.96.0.50, endpoints: [b, { ip: 192.0.2.1, port: 8080, node: node1 }], ports: [{ port: 80 }] }
  - { name: hl, clusterIP: None, selector: { app: web } }
flows:
  - { name: f, from: a, to: svc/web:80, attempts: 3, expect: { reach: c } }
  - { name: g, from: a, to: node2:30080, attempts: 2, expect: { reach: b, sticky: true } }
  - { name: h, from: a, to: svc/default/ext:80, protocol: tcp, expect: { fail: refused } }
";
        // c is not ready: the first flow is an error, the rest plans.
        assert!(load_str(Path::new(FILE), valid).is_err());
        let valid = valid.replace("reach: c", "reach: [b]");
        plan(FILE, &valid);
        let pieces = [
            ":", "{", "}", "[", "]", "-", ",", "\n", " ", "0", "99999", "a", "~", "/", ".", "svc/",
            "None", "NodePort", "UDP", "b", "node1", "30080", "http",
        ];
        assert_edits_stay_located(&valid, &pieces, 0x05e4_1ce5, 3000);
    }

    #[test]
    fn the_example_of_the_case_format_plans() {
        let doc = include_str!("../../../docs/case-format.md");
        let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let plan = plan(FILE, &doc[start..end]);
        assert_eq!(plan.services.len(), 2);
        assert_eq!(plan.services[1].ports[0].node_port, Some(30000));
        assert_eq!(plan.services[1].ports[0].endpoints[0].port, 8443);
        let node_port = plan.flows.iter().find(|f| f.name == "node-port").unwrap();
        assert_eq!(
            node_port.target,
            Target::Tcp("172.18.0.20:30000".parse().unwrap())
        );
        let from_outside = plan
            .flows
            .iter()
            .find(|f| f.name == "from-outside")
            .unwrap();
        assert_eq!(from_outside.from, "external");
        assert_eq!(from_outside.service, node_port.service);
        let to_outside = plan.flows.iter().find(|f| f.name == "to-outside").unwrap();
        assert_eq!(
            to_outside.target,
            Target::Tcp("172.18.0.1:8080".parse().unwrap())
        );
    }

    #[test]
    fn every_service_error_of_a_file_is_reported_in_file_order() {
        let yaml = format!(
            "{PODS}services:
  - {{ name: web, type: NodePort, clusterIP: 10.200.0.1, ports: [{{ port: 80, protocol: tcp, nodePort: 99 }}] }}
  - {{ name: Api, selector: {{}}, ports: [{{ port: 0 }}] }}
flows:
  - {{ name: f, from: a, to: svc/nope:80, attempts: 0, expect: {{ reach: b, sticky: true }} }}
"
        );
        let err = load_str(Path::new(FILE), &yaml).unwrap_err();
        let got: Vec<String> = err
            .diagnostics()
            .iter()
            .map(|d| {
                let at = d.location.unwrap();
                format!("{}:{}", at.line, at.column)
            })
            .collect();
        assert_eq!(
            got,
            [
                "7:45", "7:87", "7:102", "8:13", "8:28", "8:48", "10:29", "10:52"
            ],
            "{err}"
        );
    }

    // --- validation ----------------------------------------------------------------------

    /// One mistake, one diagnostic, at the offending value. `cluster` (when given) goes in
    /// `cluster: { .. }` on line 1, followed by [`PODS`] and `rest` from line 7; without it,
    /// `rest` is the whole case.
    #[rstest]
    #[case::service_cidr_syntax(
        Some("serviceCIDR: 10.96.0.0/33"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        25,
        "serviceCIDR `10.96.0.0/33` is not an IPv4 CIDR"
    )]
    #[case::service_cidr_too_large(
        Some("serviceCIDR: 10.0.0.0/8"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        25,
        "serviceCIDR 10.0.0.0/8 is too large: Kubernetes accepts at most a /12"
    )]
    #[case::service_cidr_too_small(
        Some("serviceCIDR: 10.96.0.0/31"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        25,
        "serviceCIDR 10.96.0.0/31 is too small"
    )]
    #[case::service_cidr_overlaps_pod_cidr(
        Some("serviceCIDR: 10.244.0.0/20"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        25,
        "serviceCIDR 10.244.0.0/20 overlaps podCIDR 10.244.0.0/16"
    )]
    #[case::service_cidr_overlaps_node_cidr(
        Some("serviceCIDR: 172.18.0.0/24"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        25,
        "serviceCIDR 172.18.0.0/24 overlaps nodeCIDR 172.18.0.0/16"
    )]
    #[case::default_service_cidr_overlaps_pod_cidr(
        Some("podCIDR: 10.100.0.0/16"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n",
        1,
        21,
        "the default serviceCIDR 10.96.0.0/12 overlaps podCIDR 10.100.0.0/16: set serviceCIDR"
    )]
    #[case::service_name_invalid(
        Some(""),
        "services:\n  - { name: Web, selector: { app: web }, ports: [{ port: 80 }] }\n",
        8,
        13,
        "Service name `Web` is not a DNS-1123 label"
    )]
    #[case::service_name_starts_with_digit(
        Some(""),
        "services:\n  - { name: 1web, selector: { app: web }, ports: [{ port: 80 }] }\n",
        8,
        13,
        "Service name `1web` is not a DNS-1035 label"
    )]
    #[case::service_without_name(
        Some(""),
        "services:\n  - { selector: { app: web }, ports: [{ port: 80 }] }\n",
        8,
        5,
        "Service has no `name`"
    )]
    #[case::service_duplicate(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n  - { name: web, ports: [{ port: 81 }] }\n",
        9,
        13,
        "duplicate Service default/web, first declared at 8:13"
    )]
    #[case::service_namespace_invalid(
        Some(""),
        "services:\n  - { name: web, namespace: Shop, ports: [{ port: 80 }] }\n",
        8,
        29,
        "namespace `Shop` is not a DNS-1123 label"
    )]
    #[case::service_type_unknown(
        Some(""),
        "services:\n  - { name: web, type: LoadBalancer, ports: [{ port: 80 }] }\n",
        8,
        24,
        "unknown Service type `LoadBalancer` (not supported by podpath): expected ClusterIP or NodePort"
    )]
    #[case::cluster_ip_not_an_address(
        Some(""),
        "services:\n  - { name: web, clusterIP: none, ports: [{ port: 80 }] }\n",
        8,
        29,
        "clusterIP `none` is not an IPv4 address or None"
    )]
    #[case::cluster_ip_outside(
        Some(""),
        "services:\n  - { name: web, clusterIP: 10.200.0.5, ports: [{ port: 80 }] }\n",
        8,
        29,
        "clusterIP 10.200.0.5 is outside serviceCIDR 10.96.0.0/12"
    )]
    #[case::cluster_ip_network(
        Some(""),
        "services:\n  - { name: web, clusterIP: 10.96.0.0, ports: [{ port: 80 }] }\n",
        8,
        29,
        "clusterIP 10.96.0.0 is the network address of serviceCIDR 10.96.0.0/12"
    )]
    #[case::cluster_ip_broadcast(
        Some(""),
        "services:\n  - { name: web, clusterIP: 10.111.255.255, ports: [{ port: 80 }] }\n",
        8,
        29,
        "clusterIP 10.111.255.255 is the broadcast address of serviceCIDR"
    )]
    #[case::cluster_ip_duplicate(
        Some(""),
        "services:\n  - { name: web, clusterIP: 10.96.0.20, ports: [{ port: 80 }] }\n  - { name: api, clusterIP: 10.96.0.20, ports: [{ port: 80 }] }\n",
        9,
        29,
        "duplicate clusterIP 10.96.0.20: Service default/web has it too"
    )]
    #[case::cluster_ips_exhausted(
        Some("serviceCIDR: 10.96.0.0/30"),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\n  - { name: api, ports: [{ port: 80 }] }\n",
        9,
        5,
        "serviceCIDR 10.96.0.0/30 has no address left for Service default/api"
    )]
    #[case::headless_node_port(
        Some(""),
        "services:\n  - { name: web, type: NodePort, clusterIP: None, ports: [{ port: 80 }] }\n",
        8,
        45,
        "clusterIP may not be None for a NodePort Service"
    )]
    #[case::headless_with_node_port(
        Some(""),
        "services:\n  - { name: web, clusterIP: None, ports: [{ port: 80, nodePort: 30080 }] }\n",
        8,
        65,
        "nodePort is only for type NodePort (this Service is ClusterIP)"
    )]
    #[case::selector_empty(
        Some(""),
        "services:\n  - { name: web, selector: {}, ports: [{ port: 80 }] }\n",
        8,
        28,
        "`selector` is empty"
    )]
    #[case::selector_and_endpoints(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, endpoints: [b], ports: [{ port: 80 }] }\n",
        8,
        53,
        "`endpoints` is for Services without a `selector`"
    )]
    #[case::ports_missing(
        Some(""),
        "services:\n  - { name: web, selector: { app: web } }\n",
        8,
        5,
        "a Service needs at least one port in `ports`"
    )]
    #[case::ports_empty(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [] }\n",
        8,
        49,
        "a Service needs at least one port in `ports`"
    )]
    #[case::port_name_missing(
        Some(""),
        "services:\n  - { name: web, ports: [{ name: http, port: 80 }, { port: 81 }] }\n",
        8,
        52,
        "port has no `name`: every port of a Service with several ports needs one"
    )]
    #[case::port_name_duplicate(
        Some(""),
        "services:\n  - { name: web, ports: [{ name: http, port: 80 }, { name: http, port: 81 }] }\n",
        8,
        60,
        "duplicate port name `http`, first declared at 8:34"
    )]
    #[case::port_name_invalid(
        Some(""),
        "services:\n  - { name: web, ports: [{ name: Http, port: 80 }] }\n",
        8,
        34,
        "port name `Http` is not a DNS-1123 label"
    )]
    #[case::port_protocol_lowercase(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 80, protocol: tcp }] }\n",
        8,
        48,
        "unknown protocol `tcp`: expected TCP or UDP (Kubernetes spells protocols in capitals)"
    )]
    #[case::port_protocol_unknown(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 80, protocol: SCTP }] }\n",
        8,
        48,
        "unknown protocol `SCTP`: expected TCP or UDP"
    )]
    #[case::port_missing(
        Some(""),
        "services:\n  - { name: web, ports: [{ targetPort: 8080 }] }\n",
        8,
        26,
        "port has no `port`"
    )]
    #[case::port_out_of_range(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 65536 }] }\n",
        8,
        34,
        "port `65536` is out of range 1..=65535"
    )]
    #[case::port_duplicate(
        Some(""),
        "services:\n  - { name: web, ports: [{ name: a, port: 80 }, { name: b, port: 80, protocol: TCP }] }\n",
        8,
        66,
        "duplicate port 80/TCP, first declared at 8:43"
    )]
    #[case::target_port_invalid_name(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 80, targetPort: web_http }] }\n",
        8,
        50,
        "targetPort `web_http` is not a port number, and is not a port name"
    )]
    #[case::target_port_zero(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 80, targetPort: 0 }] }\n",
        8,
        50,
        "targetPort `0` is out of range 1..=65535"
    )]
    #[case::node_port_on_cluster_ip(
        Some(""),
        "services:\n  - { name: web, ports: [{ port: 80, nodePort: 30080 }] }\n",
        8,
        48,
        "nodePort is only for type NodePort (this Service is ClusterIP)"
    )]
    #[case::node_port_out_of_range(
        Some(""),
        "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: 8080 }] }\n",
        8,
        64,
        "nodePort 8080 is out of range 30000-32767"
    )]
    #[case::node_port_not_a_number(
        Some(""),
        "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: high }] }\n",
        8,
        64,
        "nodePort `high` is not a whole number"
    )]
    #[case::node_port_duplicate_in_service(
        Some(""),
        "services:\n  - { name: web, type: NodePort, ports: [{ name: a, port: 80, nodePort: 30080 }, { name: b, port: 81, nodePort: 30080 }] }\n",
        8,
        113,
        "duplicate nodePort 30080/TCP, first declared at 8:73"
    )]
    #[case::node_port_taken(
        Some(""),
        "services:\n  - { name: web, type: NodePort, ports: [{ port: 80, nodePort: 30080 }] }\n  - { name: api, type: NodePort, ports: [{ port: 80, nodePort: 30080 }] }\n",
        9,
        64,
        "nodePort 30080 is already allocated to Service default/web"
    )]
    #[case::session_affinity_unknown(
        Some(""),
        "services:\n  - { name: web, sessionAffinity: Cookie, ports: [{ port: 80 }] }\n",
        8,
        35,
        "unknown sessionAffinity `Cookie`: expected None or ClientIP"
    )]
    #[case::session_affinity_timeout_without_client_ip(
        Some(""),
        "services:\n  - { name: web, sessionAffinityTimeout: 60, ports: [{ port: 80 }] }\n",
        8,
        42,
        "`sessionAffinityTimeout` goes with `sessionAffinity: ClientIP`"
    )]
    #[case::session_affinity_timeout_zero(
        Some(""),
        "services:\n  - { name: web, sessionAffinity: ClientIP, sessionAffinityTimeout: 0, ports: [{ port: 80 }] }\n",
        8,
        69,
        "sessionAffinityTimeout 0 is out of range 1..=86400"
    )]
    #[case::session_affinity_timeout_too_long(
        Some(""),
        "services:\n  - { name: web, sessionAffinity: ClientIP, sessionAffinityTimeout: 86401, ports: [{ port: 80 }] }\n",
        8,
        69,
        "sessionAffinityTimeout 86401 is out of range 1..=86400"
    )]
    #[case::external_policy_on_cluster_ip(
        Some(""),
        "services:\n  - { name: web, externalTrafficPolicy: Local, ports: [{ port: 80 }] }\n",
        8,
        41,
        "externalTrafficPolicy may only be set for externally-accessible Services"
    )]
    #[case::external_policy_unknown(
        Some(""),
        "services:\n  - { name: web, type: NodePort, externalTrafficPolicy: Global, ports: [{ port: 80 }] }\n",
        8,
        57,
        "unknown externalTrafficPolicy `Global`: expected Cluster or Local"
    )]
    #[case::internal_policy_unknown(
        Some(""),
        "services:\n  - { name: web, internalTrafficPolicy: local, ports: [{ port: 80 }] }\n",
        8,
        41,
        "unknown internalTrafficPolicy `local`: expected Cluster or Local"
    )]
    #[case::endpoint_unknown_pod(
        Some(""),
        "services:\n  - { name: web, endpoints: [b, zz], ports: [{ port: 80 }] }\n",
        8,
        33,
        "unknown pod `zz` in `endpoints` (pods: a, b, c)"
    )]
    #[case::endpoint_without_ip(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ port: 80 }], ports: [{ port: 80 }] }\n",
        8,
        30,
        "endpoint has no `ip`"
    )]
    #[case::endpoint_ip_syntax(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.300 }], ports: [{ port: 80 }] }\n",
        8,
        36,
        "endpoint ip `192.0.2.300` is not an IPv4 address"
    )]
    #[case::endpoint_ip_loopback(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 127.0.0.1 }], ports: [{ port: 80 }] }\n",
        8,
        36,
        "endpoint ip 127.0.0.1 is in the loopback range"
    )]
    #[case::endpoint_ip_link_local(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 169.254.1.1 }], ports: [{ port: 80 }] }\n",
        8,
        36,
        "endpoint ip 169.254.1.1 is in the link-local range"
    )]
    #[case::endpoint_unknown_node(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, node: node9 }], ports: [{ port: 80 }] }\n",
        8,
        53,
        "unknown node `node9` (nodes: node1, node2)"
    )]
    #[case::endpoint_node_is_not_the_pods(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 10.244.2.2, node: node1 }], ports: [{ port: 80 }] }\n",
        8,
        54,
        "endpoint 10.244.2.2 is pod b's address, and it runs on node2, not node1"
    )]
    #[case::endpoint_port_with_several_ports(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, port: 8080 }], ports: [{ name: a, port: 80 }, { name: b, port: 81 }] }\n",
        8,
        53,
        "an endpoint `port` is only for a Service with one port"
    )]
    #[case::endpoint_port_out_of_range(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1, port: 0 }], ports: [{ port: 80 }] }\n",
        8,
        53,
        "endpoint port `0` is out of range 1..=65535"
    )]
    #[case::endpoint_duplicate(
        Some(""),
        "services:\n  - { name: web, endpoints: [b, { ip: 10.244.2.2 }], ports: [{ port: 80 }] }\n",
        8,
        33,
        "duplicate endpoint 10.244.2.2, first listed at 8:30"
    )]
    #[case::endpoint_needs_port_for_named_target(
        Some(""),
        "services:\n  - { name: web, endpoints: [{ ip: 192.0.2.1 }], ports: [{ port: 80, targetPort: http }] }\n",
        8,
        30,
        "endpoint 192.0.2.1 needs a `port`: the targetPort of port 80/TCP is the name `http`, and only pods have named ports"
    )]
    #[case::flow_unknown_service(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/api:80, expect: { reach: b } }\n",
        10,
        29,
        "unknown Service `default/api` in `to` (Services: default/web)"
    )]
    #[case::flow_unknown_service_namespace(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/shop/web:80, expect: { reach: b } }\n",
        10,
        29,
        "unknown Service `shop/web` in `to`"
    )]
    #[case::flow_service_without_port(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web, expect: { fail: timeout } }\n",
        10,
        29,
        "a flow to a Service needs a port: write svc/default/web:PORT"
    )]
    #[case::flow_service_unknown_port(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:81, expect: { fail: timeout } }\n",
        10,
        29,
        "Service default/web has no port 81/TCP (ports: 80/TCP); to send to a port it does not have, target its ClusterIP 10.96.0.2:81"
    )]
    #[case::flow_service_wrong_protocol(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, protocol: udp, expect: { fail: timeout } }\n",
        10,
        29,
        "Service default/web has no port 80/UDP"
    )]
    #[case::flow_headless_service(
        Some(""),
        "services:\n  - { name: web, clusterIP: None, selector: { app: web } }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
        10,
        29,
        "Service default/web is headless (clusterIP: None)"
    )]
    #[case::flow_reach_not_an_endpoint(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: [b, a] } }\n",
        10,
        62,
        "`reach` names a, which is not an endpoint of Service default/web port 80/TCP (ready endpoints: b)"
    )]
    #[case::flow_reach_not_ready(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: [b, c] } }\n",
        10,
        62,
        "`reach` names c, an endpoint of Service default/web port 80/TCP that is not ready: it gets no traffic"
    )]
    #[case::flow_reach_named_port_missing(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 53, protocol: UDP, targetPort: dns }] }\nflows:\n  - { name: f, from: a, to: 10.96.0.2:53, expect: { reach: c } }\n",
        10,
        60,
        "`reach` names c, which is not an endpoint of Service default/web port 53/UDP (ready endpoints: b)"
    )]
    #[case::flow_reach_internal_policy_local(
        Some(""),
        "services:\n  - { name: web, internalTrafficPolicy: Local, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
        10,
        58,
        "`reach` names b, which runs on node2, but default/web has internalTrafficPolicy Local: only its endpoints on node1 (the node of `from`) answer"
    )]
    #[case::flow_reach_not_listening_on_target_port(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 9090 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b } }\n",
        10,
        58,
        "b does not listen on 9090/tcp, its target port for Service default/web port 80/TCP, so it could never answer"
    )]
    #[case::flow_node_port_reach_not_an_endpoint(
        Some(""),
        "services:\n  - { name: web, type: NodePort, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: node2:30000, expect: { reach: a } }\n",
        10,
        59,
        "`reach` names a, which is not an endpoint of Service default/web port 80/TCP"
    )]
    #[case::flow_attempts_zero(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: 0, expect: { reach: b } }\n",
        10,
        51,
        "attempts 0 is out of range 1..=100"
    )]
    #[case::flow_attempts_too_many(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: 101, expect: { reach: b } }\n",
        10,
        51,
        "attempts 101 is out of range 1..=100"
    )]
    #[case::flow_attempts_not_a_number(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, attempts: many, expect: { reach: b } }\n",
        10,
        51,
        "attempts `many` is not a whole number"
    )]
    #[case::flow_sticky_with_one_attempt(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: svc/web:80, expect: { reach: b, sticky: true } }\n",
        10,
        69,
        "`sticky` needs `attempts` of 2 or more"
    )]
    #[case::flow_sticky_with_fail(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: 10.96.0.2:81, attempts: 3, expect: { fail: timeout, sticky: true } }\n",
        10,
        89,
        "`sticky` goes with `reach`"
    )]
    #[case::flow_attempts_fewer_than_reach(
        Some(""),
        "services:\n  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }\nflows:\n  - { name: f, from: a, to: 192.0.2.1:80, attempts: 2, expect: { reach: [a, b, c] } }\n",
        10,
        53,
        "attempts 2 is fewer than the 3 pods of `reach`, each of which must answer at least once"
    )]
    #[case::listener_without_port(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ name: http }] }\n",
        3,
        38,
        "listener has no `port`"
    )]
    #[case::listener_port_invalid(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: http }] }\n",
        3,
        46,
        "listener port `http` is not a port number"
    )]
    #[case::listener_protocol_invalid(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, protocol: TCP }] }\n",
        3,
        60,
        "listener protocol `TCP` is not tcp or udp"
    )]
    #[case::listener_name_invalid(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: my_http }] }\n",
        3,
        56,
        "listener name `my_http` is not a port name"
    )]
    #[case::listener_name_too_long(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: a-very-long-port-name }] }\n",
        3,
        56,
        "listener name `a-very-long-port-name` is 21 characters long, more than 15"
    )]
    #[case::listener_name_duplicate(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [{ port: 80, name: http }, { port: 81, name: http }] }\n",
        3,
        82,
        "duplicate listener name `http` in this pod"
    )]
    #[case::listener_duplicate_mapping(
        None,
        "nodes: [node1]\npods:\n  - { name: a, node: node1, listen: [80, { port: 80, name: http }] }\n",
        3,
        42,
        "duplicate listener 80/tcp"
    )]
    #[case::flow_from_unknown_skips_service_lookup(
        None,
        "nodes: [node1]\nservices: [{ name: web, ports: [{ port: 80 }] }]\nflows: [{ name: f, from: zz, to: svc/web:80, expect: { fail: timeout } }]\n",
        3,
        26,
        "unknown pod `zz` in `from`"
    )]
    fn service_errors_are_located(
        #[case] cluster: Option<&str>,
        #[case] rest: &str,
        #[case] line: u64,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        let yaml = match cluster {
            Some(cluster) => format!("cluster: {{ {cluster} }}\n{PODS}{rest}"),
            None => rest.to_owned(),
        };
        assert_one_error(FILE, &yaml, line, column, message);
    }
}
