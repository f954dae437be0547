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

use super::context::{ClusterParams, NodeDraft, Planner, PodDraft, YamlLocation};
use super::parse::{
    MAX_NAME, at_text, dns_label_problem, iana_svc_name_problem, known_names, parse_port, quoted,
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
#[derive(Clone)]
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
    /// `initially: absent`: created by a step, not there at revision 0.
    pub(super) initially_absent: bool,
    /// In a revision where the Service does not exist: why (`deleted by the step at 30:5`).
    pub(super) absent: Option<String>,
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
                if let Some(problem) = dns_label_problem(&ns.value, MAX_NAME) {
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

        let initially_absent = match &spec.initially {
            None => false,
            Some(v) => match v.value.as_str() {
                "present" => false,
                "absent" => true,
                other => {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown `initially` {}: expected present or absent (created by a later `- step: {{ create: svc/NAME }}`)",
                            quoted(other)
                        ),
                    );
                    complete = false;
                    false
                }
            },
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
            initially_absent,
            absent: None,
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
                    if let Some(problem) = dns_label_problem(&v.value, MAX_NAME) {
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
                    // Without any node, the missing or empty `nodes` is the one error.
                    if !nodes.is_empty() {
                        let known = known_names(nodes.iter().filter_map(|n| n.name.as_deref()));
                        self.error(
                            v.referenced,
                            format!("unknown node {} (nodes: {known})", quoted(&v.value)),
                        );
                    }
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
    if let Some(problem) = dns_label_problem(name, MAX_NAME) {
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
mod tests;
