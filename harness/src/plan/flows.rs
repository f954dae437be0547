//! The `flows:` section: each flow's origin, target, protocol, attempts, timeout and what it
//! expects, checked against the pods, Services and the external host they name.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use netns_runtime::proxy::TrafficPolicy;
use netns_runtime::topology::{EXTERNAL_HOST, Listener, Proto};
use serde_saphyr::Spanned;

use super::context::{Planner, YamlLocation};
use super::dns::{self, NameResolution, resolve_in};
use super::hops::{self};
use super::model::{Expect, FailKind, FlowPlan, FlowService, SeenSource, ServiceVia, Target};
use super::parse::{at_text, flow_name_problem, known_names, parse_port, parse_timeout, quoted};
use super::refs::{Answerer, Destination, NameTarget, Origin, Refs};
use super::services::{self, PortEndpoint};
use crate::case::{ExpectSpec, FlowSpec, PodNames};
use crate::diag::Location;

/// Default time a flow is given before it counts as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Most attempts a flow may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// The Service port a flow's target resolved to (indices into the drafts).
struct ServiceHit {
    service: usize,
    port: usize,
    via: ServiceVia,
}

/// The port part of a flow's `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPart {
    Absent,
    Port(u16),
    /// Written but not a port (already reported): checks that need the port are skipped.
    Invalid,
}

impl PortPart {
    fn port(self) -> Option<u16> {
        match self {
            PortPart::Port(port) => Some(port),
            PortPart::Absent | PortPart::Invalid => None,
        }
    }
}

/// A flow's protocol as written or defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}

fn transport(protocol: Protocol) -> Option<Proto> {
    match protocol {
        Protocol::Tcp => Some(Proto::Tcp),
        Protocol::Udp => Some(Proto::Udp),
        Protocol::Icmp => None,
    }
}

/// A flow's `to` that is a DNS name, for checking `expect`.
struct ToName<'a> {
    /// As written.
    name: &'a str,
    /// What it resolves to; `None` when the records could not be planned (reported).
    resolution: Option<&'a NameResolution>,
    /// The addresses, when it resolves to several: only pods with one of them can answer.
    addrs: Option<&'a [Ipv4Addr]>,
}

/// The Service port a flow goes to, for checking `reach`.
struct ToService<'a> {
    hit: Option<&'a ServiceHit>,
    /// Where the flow starts; `None` when `from` is unknown (reported).
    origin: Option<Origin<'a>>,
}

impl Planner {
    /// The flows, each with the revision it runs against; `refs[r]` is what revision `r`'s
    /// flows may refer to.
    pub(super) fn flows(
        &mut self,
        specs: &[(&Spanned<FlowSpec>, usize)],
        refs: &[Refs<'_>],
    ) -> Vec<FlowPlan> {
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        let mut plans = Vec::with_capacity(specs.len());
        for &(entry, revision) in specs {
            let Some(refs) = refs.get(revision) else {
                continue;
            };
            if let Some(mut plan) = self.flow(entry, refs, &mut names) {
                plan.revision = revision;
                plans.push(plan);
            }
        }
        plans
    }

    fn flow(
        &mut self,
        entry: &Spanned<FlowSpec>,
        refs: &Refs<'_>,
        names: &mut HashMap<String, YamlLocation>,
    ) -> Option<FlowPlan> {
        let spec = &entry.value;
        let name = match &spec.name {
            None => {
                self.error(entry.referenced, "flow has no `name`");
                None
            }
            Some(name) => {
                let text = &name.value;
                if let Some(problem) = flow_name_problem(text) {
                    self.error(
                        name.referenced,
                        format!("flow name {} {problem}", quoted(text)),
                    );
                }
                if let Some(first) = names.get(text) {
                    self.error(
                        name.referenced,
                        format!(
                            "duplicate flow name {}, first declared at {}",
                            quoted(text),
                            at_text(*first)
                        ),
                    );
                } else {
                    names.insert(text.clone(), name.referenced);
                }
                Some(text.clone())
            }
        };

        let from = match &spec.from {
            None => {
                self.error(
                    entry.referenced,
                    "flow has no `from`: name the pod it starts in, or external",
                );
                None
            }
            Some(from) => self
                .answerer_ref(from, "from", refs)
                .map(|a| (a, from.value.clone())),
        };
        if let Some(exec) = &spec.exec {
            return self.exec_flow(entry, exec, name, from.map(|(_, from)| from));
        }
        let origin = from.as_ref().map(|(a, _)| match a {
            Answerer::Pod(p) => Origin::Pod(
                refs.pods[*p]
                    .node
                    .and_then(|n| refs.nodes.get(n)?.name.as_deref()),
            ),
            Answerer::External => Origin::External,
        });
        // Where `svc/name` is looked up: the namespace of the pod `from`; the external host is
        // in none, and takes `default`.
        let from_ns = from.as_ref().map(|(a, _)| match a {
            Answerer::Pod(p) => refs.pods[*p].namespace.as_str(),
            Answerer::External => "default",
        });

        let (destination, port, name_target) = match &spec.to {
            None => {
                self.error(
                    entry.referenced,
                    "flow has no `to`: write pod:port, svc/name:port, node:port, external:port, a.b.c.d:port, pod, node, external or a.b.c.d (or a name, with `dns:`), or run a command with `exec`",
                );
                (None, PortPart::Invalid, None)
            }
            Some(to) => self.destination(to, from.as_ref().map(|(a, _)| *a), from_ns, refs),
        };
        let to_at = spec
            .to
            .as_ref()
            .map_or(entry.referenced, |to| to.referenced);
        // Direct target: `to` names a pod or the external host, or the address of one.
        let direct = match &destination {
            Some(Destination::Pod(p)) => Some(Answerer::Pod(*p)),
            Some(Destination::External) => Some(Answerer::External),
            Some(Destination::Addr(ip)) => refs
                .pods
                .iter()
                .position(|pod| pod.ip == Some(*ip))
                .map(Answerer::Pod)
                .or_else(|| {
                    refs.external
                        .filter(|e| e.addr == Some(*ip))
                        .map(|_| Answerer::External)
                }),
            Some(
                Destination::Node(_)
                | Destination::Service(_)
                | Destination::Addrs(_)
                | Destination::Nowhere,
            )
            | None => None,
        };

        let protocol = self.protocol(spec, port, to_at);
        // A flow to a name that only checks what it resolves to sends nothing: its port need
        // not be one of a Service's.
        let resolves_only = name_target.is_some()
            && spec.expect.as_ref().is_some_and(|e| {
                e.value.dns.is_some() && e.value.reach.is_none() && e.value.fail.is_none()
            });
        let (service, protocol) = if resolves_only {
            (None, protocol)
        } else {
            self.flow_service(spec, destination.as_ref(), port, protocol, to_at, refs)
        };
        let attempts = match &spec.attempts {
            None => Some(1),
            Some(v) => self.number("attempts", v).and_then(|n| {
                if (1..=u64::from(MAX_ATTEMPTS)).contains(&n) {
                    Some(n as u32)
                } else {
                    self.error(
                        v.referenced,
                        format!("attempts {n} is out of range 1..={MAX_ATTEMPTS}"),
                    );
                    None
                }
            }),
        };
        let timeout = match &spec.timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(v) => match parse_timeout(&v.value) {
                Ok(timeout) => Some(timeout),
                Err(problem) => {
                    self.error(
                        v.referenced,
                        format!("timeout {} {problem}", quoted(&v.value)),
                    );
                    None
                }
            },
        };

        let expect_dns = self.flow_dns_expect(spec, name_target.as_ref(), from_ns, refs);
        let hop_flow = hops::HopFlow {
            from_ns,
            to_name: name_target.is_some(),
            resolves_only,
        };
        let hops = self.flow_hops(spec.expect.as_ref(), &hop_flow, refs);
        let expect = match &spec.expect {
            None => {
                self.error(
                    entry.referenced,
                    "flow has no `expect`: say `reach: POD` or `fail: refused|timeout|unreachable`",
                );
                None
            }
            Some(expect) => {
                let to_service = ToService {
                    hit: service.as_ref(),
                    origin,
                };
                let to_name = name_target.as_ref().map(|target| ToName {
                    name: &target.name,
                    resolution: target.resolution.as_ref(),
                    addrs: match &destination {
                        Some(Destination::Addrs(addrs)) => Some(addrs.as_slice()),
                        _ => None,
                    },
                });
                self.expect(
                    expect,
                    protocol,
                    direct,
                    &to_service,
                    to_name.as_ref(),
                    refs,
                )
            }
        };
        let sticky = self.sticky(spec, &expect, attempts);

        // A pod (or the external host) that does not listen can only refuse: expecting it to
        // answer is a mistake in the case, not something to find out by running it. When a
        // name resolves to several addresses, this holds for each pod of `reach`.
        let answerers: Vec<Answerer> = match (&expect, &destination) {
            (Some(Expect::Reach { pods, .. }), _) if direct.is_some() && !pods.is_empty() => {
                direct.into_iter().collect()
            }
            (Some(Expect::Reach { pods, .. }), Some(Destination::Addrs(_))) => pods
                .iter()
                .filter_map(|p| refs.pod_index.get(p.as_str()).map(|&i| Answerer::Pod(i)))
                .collect(),
            _ => Vec::new(),
        };
        if let (Some(port), Some(proto)) = (port.port(), protocol.and_then(transport)) {
            let listener = Listener { port, proto };
            for answerer in answerers {
                if !refs.listeners(answerer).contains(&listener) {
                    let name = refs.name(answerer);
                    self.error(
                        to_at,
                        format!(
                            "{name} does not listen on {listener}, so it could never answer: add {listener} to its `listen`, or expect `fail: refused`"
                        ),
                    );
                }
            }
        }

        let ip = match destination? {
            Destination::Pod(p) => refs.pods[p].ip?,
            Destination::Addr(ip) => ip,
            Destination::Node(n) => refs.nodes[n].address?,
            Destination::Service(s) => refs.services[s].plan.cluster_ip?,
            Destination::External => refs.external?.addr?,
            Destination::Addrs(_) | Destination::Nowhere => Ipv4Addr::UNSPECIFIED,
        };
        let target = match (protocol?, port) {
            (Protocol::Tcp, PortPart::Port(port)) => Target::Tcp(SocketAddrV4::new(ip, port)),
            (Protocol::Udp, PortPart::Port(port)) => Target::Udp(SocketAddrV4::new(ip, port)),
            (Protocol::Icmp, PortPart::Absent) => Target::Icmp(ip),
            _ => return None,
        };
        let (name_to_resolve, resolution) = match name_target {
            Some(target) => (Some(target.name), Some(target.resolution?)),
            None => (None, None),
        };
        Some(FlowPlan {
            name: name?,
            from: from?.1,
            target,
            timeout: timeout?,
            expect: expect?,
            location: Location::from_yaml(entry.referenced)
                .unwrap_or(Location { line: 0, column: 0 }),
            target_label: spec.to.as_ref()?.value.clone(),
            // A Service that does not exist in the flow's revision is only an address.
            service: service
                .filter(|hit| refs.services[hit.service].absent.is_none())
                .map(|hit| {
                    let plan = &refs.services[hit.service].plan;
                    FlowService {
                        service: hit.service,
                        port: hit.port,
                        namespace: plan.namespace.clone(),
                        name: plan.name.clone(),
                        via: hit.via,
                    }
                }),
            attempts: attempts?,
            sticky: sticky?,
            dns_name: name_to_resolve,
            resolution,
            expect_dns: expect_dns?,
            exec: None,
            hops: hops?,
            revision: 0,
        })
    }

    /// `expect.sticky`, checked against `attempts` and `reach`; `attempts` is checked against
    /// the number of pods every one of which must answer.
    fn sticky(
        &mut self,
        spec: &FlowSpec,
        expect: &Option<Expect>,
        attempts: Option<u32>,
    ) -> Option<bool> {
        let expect_spec = spec.expect.as_ref().map(|e| &e.value);
        let sticky = expect_spec.and_then(|e| e.sticky.as_ref());
        match (sticky, expect) {
            (Some(v), _) if v.value && expect_spec.is_some_and(|e| e.fail.is_some()) => {
                self.error(
                    v.referenced,
                    "`sticky` goes with `reach`: it says every attempt is answered by the same pod",
                );
                None
            }
            (Some(v), Some(Expect::Reach { .. })) if v.value => {
                if attempts.is_some_and(|n| n < 2) {
                    self.error(
                        v.referenced,
                        "`sticky` needs `attempts` of 2 or more: a single attempt is always answered by one pod",
                    );
                    return None;
                }
                Some(true)
            }
            (_, Some(Expect::Reach { pods, .. })) => {
                if let (Some(n), Some(v)) = (attempts, &spec.attempts)
                    && n > 1
                    && (n as usize) < pods.len()
                {
                    self.error(
                        v.referenced,
                        format!(
                            "attempts {n} is fewer than the {} pods of `reach`, each of which must answer at least once",
                            pods.len()
                        ),
                    );
                    return None;
                }
                Some(false)
            }
            _ => Some(sticky.is_some_and(|v| v.value)),
        }
    }

    /// The Service port a flow's target is, if any, and the flow's protocol: a Service port
    /// that is UDP only makes a flow that does not say its protocol udp.
    fn flow_service(
        &mut self,
        spec: &FlowSpec,
        destination: Option<&Destination>,
        port: PortPart,
        protocol: Option<Protocol>,
        to_at: YamlLocation,
        refs: &Refs<'_>,
    ) -> (Option<ServiceHit>, Option<Protocol>) {
        let written = spec.protocol.is_some();
        // Candidate (service, port, via) for the destination and port number.
        let mut candidates: Vec<ServiceHit> = Vec::new();
        let number = port.port();
        match destination {
            None
            | Some(
                Destination::Pod(_)
                | Destination::External
                | Destination::Addrs(_)
                | Destination::Nowhere,
            ) => return (None, protocol),
            Some(Destination::Service(s)) => {
                let draft = &refs.services[*s];
                let id = draft.plan.id();
                if draft.plan.cluster_ip.is_none() {
                    if draft.complete {
                        self.error(
                            to_at,
                            format!("Service {id} is headless (clusterIP: None): it has no address to connect to; target one of its pods"),
                        );
                    }
                    return (None, None);
                }
                let Some(number) = number else {
                    if port == PortPart::Absent {
                        let to = spec.to.as_ref().map_or("", |t| t.value.as_str());
                        let write = if to.starts_with("svc/") {
                            format!("svc/{id}:PORT")
                        } else {
                            format!("{to}:PORT")
                        };
                        self.error(
                            to_at,
                            format!("a flow to a Service needs a port: write {write}"),
                        );
                    }
                    return (None, None);
                };
                for (i, p) in draft.plan.ports.iter().enumerate() {
                    if p.port == number {
                        candidates.push(ServiceHit {
                            service: *s,
                            port: i,
                            via: ServiceVia::ClusterIp,
                        });
                    }
                }
            }
            Some(Destination::Addr(_) | Destination::Node(_)) => {
                let ip = match destination {
                    Some(Destination::Addr(ip)) => Some(*ip),
                    Some(Destination::Node(n)) => refs.nodes[*n].address,
                    _ => None,
                };
                let (Some(ip), Some(number)) = (ip, number) else {
                    return (None, protocol);
                };
                let node = refs.nodes.iter().find(|n| n.address == Some(ip));
                for (s, draft) in refs.services.iter().enumerate() {
                    for (i, p) in draft.plan.ports.iter().enumerate() {
                        if draft.plan.cluster_ip == Some(ip) && p.port == number {
                            candidates.push(ServiceHit {
                                service: s,
                                port: i,
                                via: ServiceVia::ClusterIp,
                            });
                        }
                        if let Some(node) = node
                            && p.node_port == Some(number)
                        {
                            candidates.push(ServiceHit {
                                service: s,
                                port: i,
                                via: ServiceVia::NodePort {
                                    node: node.name.clone().unwrap_or_default(),
                                },
                            });
                        }
                    }
                }
            }
        }
        let proto_of = |hit: &ServiceHit| refs.services[hit.service].plan.ports[hit.port].protocol;
        let protocol = match protocol {
            Some(Protocol::Tcp)
                if !written
                    && !candidates.iter().any(|h| proto_of(h) == Proto::Tcp)
                    && candidates.iter().any(|h| proto_of(h) == Proto::Udp) =>
            {
                Some(Protocol::Udp)
            }
            other => other,
        };
        let wanted = protocol.and_then(transport);
        let hit = candidates.into_iter().find(|h| Some(proto_of(h)) == wanted);
        if hit.is_none()
            && let Some(Destination::Service(s)) = destination
            && let (Some(proto), Some(number)) = (wanted, number)
        {
            let draft = &refs.services[*s];
            if draft.complete {
                let ports: Vec<String> = draft.plan.ports.iter().map(|p| p.label()).collect();
                let clusterip = draft.plan.cluster_ip.map_or_else(String::new, |ip| {
                    format!(
                        "; to send to a port it does not have, target its ClusterIP {ip}:{number}"
                    )
                });
                self.error(
                    to_at,
                    format!(
                        "Service {} has no port {number}/{} (ports: {}){clusterip}",
                        draft.plan.id(),
                        services::proto_upper(proto),
                        ports.join(", ")
                    ),
                );
            }
            return (None, None);
        }
        (hit, protocol)
    }

    /// Parses `to`: `pod:port`, `svc/name:port`, `svc/namespace/name:port`, `node:port`,
    /// `external:port`, `a.b.c.d:port`, `pod`, `node`, `external` or `a.b.c.d`; any other
    /// host, or one with a dot, is a DNS name (with `dns:`). `from_ns` is the namespace where
    /// `svc/name` is looked up (that of `from`, `default` for the external host); `None` when
    /// `from` is unknown (reported already).
    fn destination(
        &mut self,
        to: &Spanned<String>,
        from: Option<Answerer>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> (Option<Destination>, PortPart, Option<NameTarget>) {
        let text = to.value.as_str();
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return (Some(Destination::Addr(ip)), PortPart::Absent, None);
        }
        let (host, port) = match text.rsplit_once(':') {
            None => (text, PortPart::Absent),
            Some((host, port)) => match parse_port(port) {
                Ok(port) => (host, PortPart::Port(port)),
                Err(problem) => {
                    self.error(
                        to.referenced,
                        format!("port {} in `to` {problem}", quoted(port)),
                    );
                    (host, PortPart::Invalid)
                }
            },
        };
        if let Some(service) = host.strip_prefix("svc/") {
            return (
                self.service_ref(to, "to", service, from_ns, refs),
                port,
                None,
            );
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return (Some(Destination::Addr(ip)), port, None);
        }
        if !host.contains('.') {
            if host == EXTERNAL_HOST {
                let external = self.external_ref(to, "to", refs);
                return (external.map(|_| Destination::External), port, None);
            }
            if let Some(&p) = refs.pod_index.get(host) {
                return (Some(Destination::Pod(p)), port, None);
            }
            if let Some(n) = refs
                .nodes
                .iter()
                .position(|n| n.name.as_deref() == Some(host))
            {
                return (Some(Destination::Node(n)), port, None);
            }
        }
        let Some(dns) = refs.dns else {
            let known = known_names(refs.pods.iter().filter_map(|p| p.name.as_deref()));
            let nodes = known_names(refs.nodes.iter().filter_map(|n| n.name.as_deref()));
            self.error(
                to.referenced,
                format!(
                    "unknown pod {} in `to` (pods: {known}; nodes: {nodes}): it is not a pod; names are resolved by the cluster DNS, which this case does not declare (add dns: {{ node: ... }}); `to` is pod:port, svc/name:port, node:port, external:port, a.b.c.d:port, pod, node, external or a.b.c.d",
                    quoted(host)
                ),
            );
            return (None, port, None);
        };
        if let Some(problem) = dns::dns_name_problem(host) {
            self.error(
                to.referenced,
                format!(
                    "{} in `to` is not a pod, a node or an address, and as a DNS name it {problem}",
                    quoted(host)
                ),
            );
            return (None, port, None);
        }
        let namespace = match from {
            None => return (None, port, None),
            Some(Answerer::External) => {
                self.error(
                    to.referenced,
                    format!(
                        "`to` is the name {}, but names are resolved by a pod's resolver (its resolv.conf points at the cluster DNS), and `from` is the external host: start the flow in a pod, or target an address",
                        quoted(host)
                    ),
                );
                return (None, port, None);
            }
            Some(Answerer::Pod(_)) => from_ns.unwrap_or("default"),
        };
        let Some(table) = &dns.table else {
            // What the records need is invalid (reported): nothing to check against.
            let target = NameTarget {
                name: host.to_owned(),
                resolution: None,
            };
            return (Some(Destination::Nowhere), port, Some(target));
        };
        let search = dns::search_domains(namespace, dns.zone());
        let resolution = resolve_in(table, host, &search);
        let destination = match resolution.addrs.as_slice() {
            [] => Destination::Nowhere,
            [ip] => match refs
                .services
                .iter()
                .position(|s| s.plan.cluster_ip == Some(*ip))
            {
                Some(s) => Destination::Service(s),
                None => Destination::Addr(*ip),
            },
            addrs => Destination::Addrs(addrs.to_vec()),
        };
        let target = NameTarget {
            name: host.to_owned(),
            resolution: Some(resolution),
        };
        (Some(destination), port, Some(target))
    }

    fn protocol(
        &mut self,
        spec: &FlowSpec,
        port: PortPart,
        to_at: YamlLocation,
    ) -> Option<Protocol> {
        let Some(value) = &spec.protocol else {
            // Without a port there is nothing for tcp or udp to connect to: a ping.
            return Some(match port {
                PortPart::Absent => Protocol::Icmp,
                PortPart::Port(_) | PortPart::Invalid => Protocol::Tcp,
            });
        };
        let protocol = match value.value.as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            other => {
                self.error(
                    value.referenced,
                    format!(
                        "unknown protocol {}: expected tcp, udp or icmp",
                        quoted(other)
                    ),
                );
                return None;
            }
        };
        let to = spec.to.as_ref().map_or("", |t| t.value.as_str());
        match (protocol, port) {
            (Protocol::Icmp, PortPart::Port(port)) => {
                self.error(
                    to_at,
                    format!("an icmp flow has no port, but `to` names port {port}: drop it, or set protocol tcp or udp"),
                );
                None
            }
            (Protocol::Tcp | Protocol::Udp, PortPart::Absent) => {
                self.error(
                    to_at,
                    format!("a {protocol} flow needs a port: write {}:PORT", quoted(to)),
                );
                None
            }
            _ => Some(protocol),
        }
    }

    fn expect(
        &mut self,
        expect: &Spanned<ExpectSpec>,
        protocol: Option<Protocol>,
        direct: Option<Answerer>,
        to_service: &ToService<'_>,
        to_name: Option<&ToName<'_>>,
        refs: &Refs<'_>,
    ) -> Option<Expect> {
        let spec = &expect.value;
        for (key, at) in [
            ("exit", spec.exit.as_ref().map(|v| v.referenced)),
            ("output", spec.output.as_ref().map(|v| v.referenced)),
            (
                "outputMatches",
                spec.output_matches.as_ref().map(|v| v.referenced),
            ),
        ] {
            if let Some(at) = at {
                self.error(
                    at,
                    format!(
                        "`{key}` is for flows that run a command (`exec`), not for flows with `to`"
                    ),
                );
            }
        }
        match (&spec.reach, &spec.fail) {
            (Some(_), Some(_)) => {
                self.error(
                    expect.referenced,
                    "`expect` has both `reach` and `fail`: a flow is either answered or fails",
                );
                return None;
            }
            // A flow to a name may only check what the name resolves to.
            (None, None) if to_name.is_some() && spec.dns.is_some() => {
                for (key, at) in [
                    (
                        "seenSource",
                        spec.seen_source.as_ref().map(|v| v.referenced),
                    ),
                    ("sticky", spec.sticky.as_ref().map(|v| v.referenced)),
                ] {
                    if let Some(at) = at {
                        self.error(
                            at,
                            format!("`{key}` goes with `reach`: with `dns` alone, the flow only resolves its name"),
                        );
                        return None;
                    }
                }
                return Some(Expect::Reach {
                    pods: Vec::new(),
                    seen_source: None,
                });
            }
            (None, None) => {
                let or_dns = if to_name.is_some() {
                    ", or `dns: ...` for what the name resolves to"
                } else {
                    ""
                };
                self.error(
                    expect.referenced,
                    format!(
                        "`expect` needs `reach: POD` or `fail: refused|timeout|unreachable`{or_dns}"
                    ),
                );
                return None;
            }
            _ => {}
        }
        // Nothing to send to when the name resolves to no address.
        if let Some(to_name) = to_name
            && let Some(resolution) = to_name.resolution
            && resolution.addrs.is_empty()
        {
            let at = spec
                .reach
                .as_ref()
                .map(|v| v.referenced)
                .or(spec.fail.as_ref().map(|v| v.referenced))
                .unwrap_or(expect.referenced);
            let key = if spec.reach.is_some() {
                "reach"
            } else {
                "fail"
            };
            self.error(
                at,
                format!(
                    "{} resolves to no address ({}, asked {}), so there is nothing to send to: drop `{key}`, and check the answer with `dns: {{ rcode: {} }}`",
                    quoted(to_name.name),
                    dns::describe_resolution(resolution),
                    resolution.asked.join(" "),
                    resolution.rcode
                ),
            );
            return None;
        }

        if let Some(fail) = &spec.fail {
            if let Some(source) = &spec.seen_source {
                self.error(
                    source.referenced,
                    "`seenSource` goes with `reach`: a flow that fails has no server to see its source",
                );
            }
            let kind = match fail.value.as_str() {
                "refused" => FailKind::Refused,
                "timeout" => FailKind::Timeout,
                "unreachable" => FailKind::Unreachable,
                other => {
                    self.error(
                        fail.referenced,
                        format!(
                            "unknown failure {}: expected refused, timeout or unreachable",
                            quoted(other)
                        ),
                    );
                    return None;
                }
            };
            if kind == FailKind::Refused && protocol == Some(Protocol::Icmp) {
                self.error(
                    fail.referenced,
                    "an icmp flow cannot be refused (it has no port): expect timeout or unreachable",
                );
                return None;
            }
            return (spec.seen_source.is_none()).then_some(Expect::Fail(kind));
        }

        let reach = spec.reach.as_ref()?;
        let names = PodNames::names(reach);
        if names.is_empty() {
            self.error(reach.referenced, "`reach` names no pod");
        }
        let mut pods: Vec<String> = Vec::with_capacity(names.len());
        let mut complete = !names.is_empty();
        for name in &names {
            let Some(answerer) = self.answerer_ref(name, "reach", refs) else {
                complete = false;
                continue;
            };
            if pods.contains(&name.value) {
                self.error(
                    name.referenced,
                    format!("{} is named twice in `reach`", quoted(&name.value)),
                );
                complete = false;
                continue;
            }
            if let Answerer::Pod(p) = answerer
                && refs.dns.is_some_and(|d| d.pod == Some(p))
            {
                self.error(
                    name.referenced,
                    format!(
                        "`reach` names {}, the cluster DNS pod: it runs the DNS server, not an echo server, so no flow can see it answer; check names with a flow to the name and `dns`, or with `exec: [dig, ...]`",
                        name.value
                    ),
                );
                complete = false;
                continue;
            }
            if let Some(addrs) = to_name.and_then(|n| n.addrs)
                && let Answerer::Pod(p) = answerer
                && !refs.pods[p].ip.is_some_and(|ip| addrs.contains(&ip))
            {
                let shown: Vec<String> = addrs
                    .iter()
                    .map(|ip| match refs.pods.iter().find(|p| p.ip == Some(*ip)) {
                        Some(pod) => format!("{ip} ({})", pod.name.as_deref().unwrap_or("?")),
                        None => ip.to_string(),
                    })
                    .collect();
                self.error(
                    name.referenced,
                    format!(
                        "`reach` names {}, but {} resolves to {}: only those can answer",
                        name.value,
                        quoted(to_name.map_or("", |n| n.name)),
                        shown.join(", ")
                    ),
                );
                complete = false;
            }
            if let Some(target) = direct
                && target != answerer
            {
                let target_name = refs.name(target);
                self.error(
                    name.referenced,
                    format!(
                        "`reach` names {}, but the flow goes straight to {target_name}: only {target_name} can answer",
                        name.value
                    ),
                );
                complete = false;
            }
            if let Some(hit) = to_service.hit
                && !self.reach_service(name, answerer, hit, to_service.origin, refs)
            {
                complete = false;
            }
            pods.push(name.value.clone());
        }

        let seen_source = match &spec.seen_source {
            None => None,
            Some(source) if protocol == Some(Protocol::Icmp) => {
                self.error(
                    source.referenced,
                    "`seenSource` is for tcp and udp flows (the echo server reports the source it saw); icmp has no server",
                );
                return None;
            }
            Some(source) => Some(self.seen_source(source, refs)?),
        };
        complete.then_some(Expect::Reach { pods, seen_source })
    }

    /// A pod (or the external host) of `reach` for a flow to a Service port: one of its ready
    /// endpoints (the external host is one when its address is), allowed by the Service's
    /// traffic policies, listening on its target port. `false` when reported.
    fn reach_service(
        &mut self,
        name: &Spanned<String>,
        answerer: Answerer,
        hit: &ServiceHit,
        origin: Option<Origin<'_>>,
        refs: &Refs<'_>,
    ) -> bool {
        let draft = &refs.services[hit.service];
        if !draft.complete {
            return true;
        }
        if let Some(why) = &draft.absent {
            self.error(
                name.referenced,
                format!(
                    "`reach` names {}, but Service {} does not exist at this point of the flows ({why}): nothing answers its ClusterIP; expect `fail: timeout`",
                    name.value,
                    draft.plan.id()
                ),
            );
            return false;
        }
        let plan = &draft.plan;
        let port = &plan.ports[hit.port];
        let label = format!("Service {} port {}", plan.id(), port.label());
        let external_addr = refs.external.and_then(|e| e.addr);
        let is_external = |e: &PortEndpoint| e.pod.is_none() && Some(e.ip) == external_addr;
        let endpoints: Vec<&PortEndpoint> = port
            .endpoints
            .iter()
            .filter(|e| match answerer {
                Answerer::Pod(_) => e.pod.as_deref() == Some(name.value.as_str()),
                Answerer::External => is_external(e),
            })
            .collect();
        let problem = if endpoints.is_empty() {
            let mut ready = services::ready_pods(port);
            if port.endpoints.iter().any(|e| e.ready && is_external(e)) {
                ready.push(EXTERNAL_HOST);
            }
            let ready = if ready.is_empty() {
                "none".to_owned()
            } else {
                ready.join(", ")
            };
            Some(format!(
                "`reach` names {}, which is not an endpoint of {label} (ready endpoints: {ready})",
                name.value
            ))
        } else if !endpoints.iter().any(|e| e.ready) {
            Some(format!(
                "`reach` names {}, an endpoint of {label} that is not ready: it gets no traffic",
                name.value
            ))
        } else if let Some(message) =
            self.traffic_policy_problem(name, &endpoints, hit, origin, refs)
        {
            Some(message)
        } else {
            let listeners = refs.listeners(answerer);
            endpoints
                .iter()
                .filter(|e| e.ready)
                .map(|e| Listener {
                    port: e.port,
                    proto: port.protocol,
                })
                .find(|l| !listeners.contains(l))
                .map(|l| {
                    format!(
                        "{} does not listen on {l}, its target port for {label}, so it could never answer: add {l} to its `listen`",
                        name.value
                    )
                })
        };
        match problem {
            Some(message) => {
                self.error(name.referenced, message);
                false
            }
            None => true,
        }
    }

    /// Why a traffic policy keeps `name`'s endpoints from answering, if it does:
    ///
    /// - `internalTrafficPolicy: Local` and a ClusterIP: only endpoints on the node of `from`;
    /// - `externalTrafficPolicy: Local` and a NodePort reached from outside the cluster: only
    ///   endpoints on the NodePort's node. From outside means from the external host, or from
    ///   a pod on another node when the node network masquerades pod traffic leaving the pod
    ///   network ([`super::Datapath`]; flannel's `--ip-masq`, with the vxlan and
    ///   host-gw overlays): it then arrives from that node's address. A pod's traffic to its own node's NodePort is pod traffic, which
    ///   kube-proxy sends to every endpoint.
    fn traffic_policy_problem(
        &self,
        name: &Spanned<String>,
        endpoints: &[&PortEndpoint],
        hit: &ServiceHit,
        origin: Option<Origin<'_>>,
        refs: &Refs<'_>,
    ) -> Option<String> {
        let plan = &refs.services[hit.service].plan;
        let (local_node, why) = match (&hit.via, origin?) {
            (ServiceVia::ClusterIp, Origin::Pod(Some(from_node)))
                if plan.internal_traffic_policy == TrafficPolicy::Local =>
            {
                (
                    from_node,
                    format!(
                        "{} has internalTrafficPolicy Local: only its endpoints on {from_node} (the node of `from`) answer",
                        plan.id()
                    ),
                )
            }
            (ServiceVia::NodePort { node }, Origin::External)
                if plan.external_traffic_policy == TrafficPolicy::Local =>
            {
                (
                    node.as_str(),
                    format!(
                        "{} has externalTrafficPolicy Local: traffic from outside the cluster to {node}'s NodePort only goes to its endpoints on {node}",
                        plan.id()
                    ),
                )
            }
            (ServiceVia::NodePort { node }, Origin::Pod(Some(from_node)))
                if plan.external_traffic_policy == TrafficPolicy::Local
                    && refs
                        .datapath
                        .arrives_from_outside(refs.overlay, from_node, node) =>
            {
                (
                    node.as_str(),
                    format!(
                        "{} has externalTrafficPolicy Local, and traffic from {from_node} (the node of `from`) to {node}'s NodePort comes from outside the cluster (the node network masquerades it to {from_node}'s address): only its endpoints on {node} answer",
                        plan.id()
                    ),
                )
            }
            _ => return None,
        };
        let elsewhere = endpoints
            .iter()
            .find(|e| e.ready && e.node.as_deref() != Some(local_node))?;
        let runs_on = match &elsewhere.node {
            Some(node) => format!("runs on {node}"),
            None => "is on no node".to_owned(),
        };
        Some(format!(
            "`reach` names {}, which {runs_on}, but {why}",
            name.value
        ))
    }

    fn seen_source(&mut self, value: &Spanned<String>, refs: &Refs<'_>) -> Option<SeenSource> {
        let name = value.value.as_str();
        let addr = if let Ok(ip) = name.parse::<Ipv4Addr>() {
            Some(ip)
        } else if name == EXTERNAL_HOST {
            self.external_ref(value, "seenSource", refs)?.addr
        } else if let Some(&p) = refs.pod_index.get(name) {
            refs.pods[p].ip
        } else if let Some(node) = refs.nodes.iter().find(|n| n.name.as_deref() == Some(name)) {
            node.address
        } else {
            let pods = refs.pods.iter().filter_map(|p| p.name.as_deref());
            let nodes = refs.nodes.iter().filter_map(|n| n.name.as_deref());
            let or_external = if refs.external.is_some() {
                ", external"
            } else {
                ""
            };
            self.error(
                value.referenced,
                format!(
                    "unknown pod or node {} in `seenSource` (pods: {}; nodes: {}); an IPv4 address{or_external} is also accepted",
                    quoted(name),
                    known_names(pods),
                    known_names(nodes)
                ),
            );
            None
        };
        Some(SeenSource {
            name: name.to_owned(),
            addr: addr?,
        })
    }
}
