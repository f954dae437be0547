//! The cluster DNS of a case (`dns:`): the `coredns` pod and the `kube-dns` Service the planner
//! adds, the records the DNS server serves ([`ClusterDns`]), each pod's `/etc/resolv.conf` and
//! `/etc/hosts` as the kubelet writes them, how a pod's resolver turns a name into addresses
//! (search list and `ndots`, as glibc does); what flows expect of it, and flows that run a
//! command (`exec`), are in `flow_dns`. Pure, like the rest of the planner; the rules are in
//! `docs/case-format.md` ("Cluster DNS").

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use netns_runtime::dns::{self, ClusterDns, RData, RecordTable, RecordType};
use netns_runtime::resolver::ResolvConf;
use netns_runtime::topology::{Listener, Proto};
use serde_saphyr::Spanned;

use super::context::{ClusterParams, NodeDraft, Planner, PodDraft, YamlLocation};
use super::parse::{MAX_NAME, dns_label_problem, known_names, quoted};
use super::services::ServiceDraft;
use crate::case::{Case, DnsSpec, ServicePortSpec, ServiceSpec};

/// Name of the cluster DNS pod (kubeadm's CoreDNS Deployment's pods are `coredns-...`).
pub const DNS_POD: &str = "coredns";
/// Namespace of the cluster DNS pod and Service.
pub const DNS_NAMESPACE: &str = "kube-system";
/// Name of the cluster DNS Service.
pub const DNS_SERVICE: &str = "kube-dns";
/// The label the DNS pod carries and the kube-dns Service selects (`k8s-app: kube-dns`).
pub const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// The port the DNS server serves, on UDP and TCP.
pub const DNS_PORT: u16 = 53;
/// The kube-dns ClusterIP when none is given: this host of the service CIDR (10.96.0.10).
pub const DNS_SERVICE_HOST: u32 = 10;
/// The kubelet's `options ndots:5`.
pub const NDOTS: usize = 5;
/// Default time an `exec` flow's command is given.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(5);
/// The response codes `expect.dns` may name, as `dig` prints them.
pub const RCODES: [&str; 6] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
];

/// What a pod's resolver makes of a name, according to the planned records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameResolution {
    /// The response code the application sees, as `dig` prints it: NOERROR when a name of
    /// the search order has addresses; otherwise NOERROR when one of the names asked exists
    /// without addresses (NODATA), else the code of the last name asked (glibc's rule, and
    /// `netns_runtime::resolver::Resolution::rcode`).
    pub rcode: String,
    /// The addresses, in the order the server answers them; empty when none.
    pub addrs: Vec<Ipv4Addr>,
    /// The fully qualified name that answered with addresses, with the trailing dot.
    pub fqdn: Option<String>,
    /// Every name asked, in order, fully qualified.
    pub asked: Vec<String>,
}

/// Resolves `name` against the record table as the pod's resolver does with `search` and
/// [`NDOTS`] (`netns_runtime::resolver::resolve`, glibc's `res_nsearch`): the candidates of
/// [`ResolvConf::candidates`] in order, until one is answered with addresses or with a code
/// other than NXDOMAIN and NOERROR.
pub fn resolve_in(table: &RecordTable, name: &str, search: &[String]) -> NameResolution {
    let conf = ResolvConf {
        nameservers: Vec::new(),
        search: search.to_vec(),
        ndots: NDOTS,
    };
    let mut asked = Vec::new();
    let mut nodata = false;
    let mut last = None;
    for candidate in conf.candidates(name) {
        let answer = table.lookup(&candidate, RecordType::A);
        let addrs: Vec<Ipv4Addr> = answer
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(ip) => Some(ip),
                _ => None,
            })
            .collect();
        asked.push(candidate.clone());
        let rcode = answer.rcode.to_string();
        if !addrs.is_empty() {
            return NameResolution {
                rcode,
                addrs,
                fqdn: Some(candidate),
                asked,
            };
        }
        nodata |= rcode == "NOERROR";
        let stop = rcode != "NOERROR" && rcode != "NXDOMAIN";
        last = Some(rcode);
        if stop {
            break;
        }
    }
    NameResolution {
        rcode: if nodata {
            "NOERROR".to_owned()
        } else {
            last.unwrap_or_else(|| "NOERROR".to_owned())
        },
        addrs: Vec::new(),
        fqdn: None,
        asked,
    }
}

/// The search domains the kubelet writes for a pod of `namespace` (`dnsPolicy: ClusterFirst`).
pub fn search_domains(namespace: &str, zone: &str) -> Vec<String> {
    vec![
        format!("{namespace}.svc.{zone}"),
        format!("svc.{zone}"),
        zone.to_owned(),
    ]
}

/// A pod's `/etc/resolv.conf` as the kubelet writes it for `dnsPolicy: ClusterFirst`.
pub fn resolv_conf(nameserver: Ipv4Addr, namespace: &str, zone: &str) -> String {
    format!(
        "nameserver {nameserver}\nsearch {}\noptions ndots:{NDOTS}\n",
        search_domains(namespace, zone).join(" ")
    )
}

/// A pod's `/etc/hosts` as the kubelet writes it (`managedHostsFileContent`): the fixed
/// header and loopback entries, then the pod's address with its hostname (`hostname`, else the
/// pod's name), fully qualified first when it has a `subdomain`.
pub fn hosts_file(
    ip: Ipv4Addr,
    name: &str,
    hostname: Option<&str>,
    subdomain: Option<&str>,
    namespace: &str,
    zone: &str,
) -> String {
    let host = hostname.unwrap_or(name);
    let entry = match subdomain {
        Some(subdomain) => format!("{ip}\t{host}.{subdomain}.{namespace}.svc.{zone}\t{host}\n"),
        None => format!("{ip}\t{host}\n"),
    };
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {entry}"
    )
}

/// Why `name` cannot be a DNS name in `to`, if it cannot: labels of letters, digits, `-` and
/// `_`, 1 to 63 characters each, 253 in all, an optional trailing dot.
pub(super) fn dns_name_problem(name: &str) -> Option<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Some("is empty".to_owned());
    }
    if bare.len() > 253 {
        return Some(format!(
            "is {} characters long, more than a DNS name's 253",
            bare.len()
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a leading dot)".to_owned());
        }
        if label.len() > 63 {
            return Some(format!(
                "has a label of {} characters, more than 63",
                label.len()
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Some(
                "is not a DNS name: use letters, digits, '-' and '.' (and '_' for SRV-style labels)"
                    .to_owned(),
            );
        }
    }
    None
}

/// The cluster DNS as declared, then as planned.
#[derive(Clone)]
pub(super) struct DnsDraft {
    /// Where `dns:` is written.
    pub(super) at: YamlLocation,
    /// The node of the DNS pod; `None` when unknown (reported).
    pub(super) node: Option<usize>,
    /// The cluster domain, `cluster.local`; `None` when invalid (reported).
    pub(super) zone: Option<String>,
    /// `clusterIP` as written (an address, checked with the Services), or the default one.
    pub(super) cluster_ip: Option<Spanned<String>>,
    /// Whether nothing it needs is invalid; false keeps the planner from checking names
    /// against records it could not complete.
    pub(super) complete: bool,
    /// Whether no node, pod or Service takes a name the cluster DNS needs: then its pod and
    /// Service are added.
    pub(super) names_ok: bool,
    /// Index of the DNS pod among the pod drafts, once added.
    pub(super) pod: Option<usize>,
    /// Index of the kube-dns Service among the Service drafts, once added.
    pub(super) service: Option<usize>,
    /// What the DNS server serves, when everything it needs is planned.
    pub(super) records: Option<ClusterDns>,
    pub(super) table: Option<RecordTable>,
    /// The kube-dns ClusterIP, once allocated: every pod's nameserver.
    pub(super) nameserver: Option<Ipv4Addr>,
}

impl DnsDraft {
    /// The zone, for messages and search lists, even when invalid.
    pub(super) fn zone(&self) -> &str {
        self.zone.as_deref().unwrap_or(dns::records::DEFAULT_ZONE)
    }
}

impl Planner {
    /// `dns:`: its node, domain and kube-dns address, and the names it reserves.
    pub(super) fn dns(
        &mut self,
        spec: &Spanned<DnsSpec>,
        case: &Case,
        cluster: &ClusterParams,
        nodes: &[NodeDraft],
    ) -> DnsDraft {
        let at = spec.referenced;
        let spec = &spec.value;
        let mut complete = true;
        let node = match &spec.node {
            None => {
                self.error(
                    at,
                    "`dns` has no `node`: name the node the cluster DNS pod (coredns) runs on",
                );
                complete = false;
                None
            }
            Some(node) => {
                let index = nodes
                    .iter()
                    .position(|n| n.name.as_deref() == Some(node.value.as_str()));
                if index.is_none() && nodes.is_empty() {
                    // The missing or empty `nodes` is the one error.
                    complete = false;
                } else if index.is_none() {
                    let known = known_names(nodes.iter().filter_map(|n| n.name.as_deref()));
                    self.error(
                        node.referenced,
                        format!("unknown node {} (nodes: {known})", quoted(&node.value)),
                    );
                    complete = false;
                }
                index
            }
        };
        let zone = match &spec.domain {
            None => Some(dns::records::DEFAULT_ZONE.to_owned()),
            Some(domain) => match domain_problem(&domain.value) {
                Some(problem) => {
                    self.error(
                        domain.referenced,
                        format!("dns domain {} {problem}", quoted(&domain.value)),
                    );
                    complete = false;
                    None
                }
                None => Some(domain.value.clone()),
            },
        };
        let cluster_ip = match &spec.cluster_ip {
            Some(v) if v.value == "None" => {
                self.error(
                    v.referenced,
                    "dns clusterIP may not be None: every pod's resolv.conf names the kube-dns Service's address",
                );
                complete = false;
                None
            }
            Some(v) => Some(v.clone()),
            None => match cluster.service_cidr {
                None => {
                    complete = false;
                    None
                }
                Some(cidr) => {
                    let host = u64::from(u32::from(cidr.network())) + u64::from(DNS_SERVICE_HOST);
                    if host >= u64::from(u32::from(cidr.broadcast())) {
                        self.error(
                            at,
                            format!("serviceCIDR {cidr} has no 10th address for the kube-dns Service: set dns clusterIP, or widen serviceCIDR"),
                        );
                        complete = false;
                        None
                    } else {
                        let ip = Ipv4Addr::from(host as u32);
                        Some(Spanned::new(ip.to_string(), at, at))
                    }
                }
            },
        };
        if cluster.proxy_modes.is_empty() {
            let at = cluster_proxy_at(case).unwrap_or(at);
            self.error(
                at,
                "the cluster DNS is reached through the kube-dns Service, which needs a service proxy: drop `proxy: none`",
            );
            complete = false;
        }
        let names_ok = self.dns_reserved_names(case);
        DnsDraft {
            at,
            node,
            zone,
            cluster_ip,
            complete: complete && names_ok,
            names_ok,
            pod: None,
            service: None,
            records: None,
            table: None,
            nameserver: None,
        }
    }

    /// With `dns:`, no node or pod may be named `coredns` and no Service be kube-system's
    /// `kube-dns`. `false` when one is (reported at its name).
    fn dns_reserved_names(&mut self, case: &Case) -> bool {
        let mut ok = true;
        if let Some(nodes) = &case.nodes {
            for entry in &nodes.value {
                let spec = crate::case::NodeEntry::spec(entry);
                if let Some(name) = spec.name.filter(|n| n.value == DNS_POD) {
                    self.error(
                        name.referenced,
                        format!("node name `{DNS_POD}` is the cluster DNS pod's (`dns:`): both name network namespaces, so they must differ"),
                    );
                    ok = false;
                }
            }
        }
        for pod in case.pods.as_deref().unwrap_or_default() {
            if let Some(name) = pod.value.name.as_ref().filter(|n| n.value == DNS_POD) {
                self.error(
                    name.referenced,
                    format!("pod name `{DNS_POD}` is reserved for the cluster DNS pod, which the case declares with `dns:`"),
                );
                ok = false;
            }
        }
        for service in case.services.as_deref().unwrap_or_default() {
            let spec = &service.value;
            let namespace = spec
                .namespace
                .as_ref()
                .map_or("default", |n| n.value.as_str());
            if let Some(name) = spec.name.as_ref().filter(|n| n.value == DNS_SERVICE)
                && namespace == DNS_NAMESPACE
            {
                self.error(
                    name.referenced,
                    format!("Service {DNS_NAMESPACE}/{DNS_SERVICE} is reserved for the cluster DNS, which the case declares with `dns:`"),
                );
                ok = false;
            }
        }
        ok
    }

    /// Once pods and Services are planned: the nameserver (kube-dns's ClusterIP) and, when
    /// everything is complete, the records and their table.
    pub(super) fn plan_records(
        &mut self,
        dns: &mut DnsDraft,
        pods: &[PodDraft],
        services: &[ServiceDraft],
    ) {
        let service = dns.service.and_then(|s| services.get(s));
        dns.nameserver = service.and_then(|s| s.plan.cluster_ip);
        let server_ip = dns.pod.and_then(|p| pods.get(p)?.ip);
        if !dns.complete || service.is_none_or(|s| !s.complete) {
            dns.complete = false;
            return;
        }
        let (Some(zone), Some(server_ip)) = (dns.zone.clone(), server_ip) else {
            dns.complete = false;
            return;
        };
        dns.records = cluster_dns(&zone, pods, services, server_ip);
        dns.table = dns.records.as_ref().map(RecordTable::new);
        dns.complete = dns.records.is_some();
    }
}

/// The addresses a headless Service's name answers: its ready endpoints', each once, in
/// endpoint order.
pub(super) fn headless_addresses(draft: &ServiceDraft) -> Vec<Ipv4Addr> {
    let mut seen = BTreeSet::new();
    draft
        .plan
        .endpoints
        .iter()
        .filter(|e| e.ready && seen.insert(e.ip))
        .map(|e| e.ip)
        .collect()
}

/// Why a cluster domain is not one: DNS-1123 labels separated by dots.
fn domain_problem(domain: &str) -> Option<String> {
    if domain.is_empty() {
        return Some("is empty".to_owned());
    }
    if domain.len() > 253 {
        return Some(format!(
            "is {} characters long, more than 253",
            domain.len()
        ));
    }
    domain.split('.').find_map(|label| {
        dns_label_problem(label, MAX_NAME).map(|problem| {
            format!(
                "has a label {} that {problem} (a domain is DNS-1123 labels separated by dots, like cluster.local)",
                quoted(label)
            )
        })
    })
}

/// Where `cluster.proxy` is written, if it is.
fn cluster_proxy_at(case: &Case) -> Option<YamlLocation> {
    let cluster = case.cluster.as_ref()?;
    Some(cluster.value.proxy.as_ref()?.referenced)
}

/// The cluster DNS pod: in kube-system on the `dns` node, labelled `k8s-app: kube-dns`, ready,
/// with no echo server; it answers on 53/udp and 53/tcp (the DNS server, run by the runtime).
pub(super) fn dns_pod(node: usize, at: YamlLocation) -> PodDraft {
    let serves = vec![
        Listener {
            port: DNS_PORT,
            proto: Proto::Tcp,
        },
        Listener {
            port: DNS_PORT,
            proto: Proto::Udp,
        },
    ];
    PodDraft {
        learned: None,
        requested_ip: None,
        requested_mac: None,
        name: Some(DNS_POD.to_owned()),
        at,
        namespace: DNS_NAMESPACE.to_owned(),
        labels: BTreeMap::from([(DNS_LABEL.0.to_owned(), DNS_LABEL.1.to_owned())]),
        ready: true,
        port_names: vec![
            ("dns".to_owned(), serves[1]),
            ("dns-tcp".to_owned(), serves[0]),
        ],
        node: Some(node),
        fixed_ip: None,
        ip: None,
        host_veth: String::new(),
        listeners: Vec::new(),
        host_ports: Vec::new(),
        serves,
        hostname: None,
        subdomain: None,
    }
}

/// The kube-dns Service as kubeadm declares it (without its metrics port): kube-system,
/// selector `k8s-app: kube-dns`, ports `dns` 53/UDP and `dns-tcp` 53/TCP to target port 53,
/// at `cluster_ip`. Every value is located at `dns:` (the address at its own value).
pub(super) fn dns_service(cluster_ip: &Spanned<String>, at: YamlLocation) -> Spanned<ServiceSpec> {
    let text = |s: &str| Some(Spanned::new(s.to_owned(), at, at));
    let port = |name: &str, protocol: &str| {
        Spanned::new(
            ServicePortSpec {
                name: text(name),
                protocol: text(protocol),
                port: text("53"),
                target_port: text("53"),
                node_port: None,
            },
            at,
            at,
        )
    };
    let selector = BTreeMap::from([(DNS_LABEL.0.to_owned(), DNS_LABEL.1.to_owned())]);
    Spanned::new(
        ServiceSpec {
            name: text(DNS_SERVICE),
            namespace: text(DNS_NAMESPACE),
            service_type: None,
            cluster_ip: Some(cluster_ip.clone()),
            selector: Some(Spanned::new(selector, at, at)),
            ports: Some(Spanned::new(
                vec![port("dns", "UDP"), port("dns-tcp", "TCP")],
                at,
                at,
            )),
            session_affinity: None,
            session_affinity_timeout: None,
            external_traffic_policy: None,
            internal_traffic_policy: None,
            endpoints: None,
            initially: None,
        },
        at,
        at,
    )
}

/// What the DNS server serves, from the planned pods and Services; `None` when one of them
/// is incomplete (reported).
pub(super) fn cluster_dns(
    zone: &str,
    pods: &[PodDraft],
    services: &[ServiceDraft],
    server_ip: Ipv4Addr,
) -> Option<ClusterDns> {
    let mut namespaces: Vec<String> = dns::records::DEFAULT_NAMESPACES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let used: BTreeSet<&str> = pods
        .iter()
        .map(|p| p.namespace.as_str())
        .chain(services.iter().map(|s| s.plan.namespace.as_str()))
        .collect();
    for ns in used {
        if !namespaces.iter().any(|n| n == ns) {
            namespaces.push(ns.to_owned());
        }
    }
    let dns_pods = pods
        .iter()
        .map(|p| {
            Some(dns::Pod {
                namespace: p.namespace.clone(),
                name: p.name.clone()?,
                ip: p.ip?,
                hostname: p.hostname.clone(),
                subdomain: p.subdomain.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let mut dns_services = Vec::with_capacity(services.len());
    for draft in services {
        if !draft.complete {
            return None;
        }
        let plan = &draft.plan;
        let endpoints = plan
            .endpoints
            .iter()
            .map(|e| {
                let pod = e
                    .pod
                    .as_deref()
                    .and_then(|name| pods.iter().find(|p| p.name.as_deref() == Some(name)));
                // The EndpointSlice controller's ShouldSetHostname: the pod's hostname when its
                // subdomain is the Service's name, in the Service's namespace.
                let hostname = pod.and_then(|p| {
                    (p.subdomain.as_deref() == Some(plan.name.as_str())
                        && p.namespace == plan.namespace)
                        .then(|| p.hostname.clone())
                        .flatten()
                });
                dns::Endpoint {
                    ip: e.ip,
                    hostname,
                    pod: e.pod.clone(),
                    ready: e.ready,
                    ports: plan
                        .ports
                        .iter()
                        .filter_map(|port| {
                            let target = port.endpoints.iter().find(|pe| pe.ip == e.ip)?;
                            Some(dns::Port {
                                name: port.name.clone(),
                                protocol: port.protocol,
                                port: target.port,
                            })
                        })
                        .collect(),
                }
            })
            .collect();
        dns_services.push(dns::Service {
            namespace: plan.namespace.clone(),
            name: plan.name.clone(),
            cluster_ip: plan.cluster_ip,
            ports: plan
                .ports
                .iter()
                .map(|p| dns::Port {
                    name: p.name.clone(),
                    protocol: p.protocol,
                    port: p.port,
                })
                .collect(),
            endpoints,
        });
    }
    Some(ClusterDns {
        zone: zone.to_owned(),
        ttl: dns::records::DEFAULT_TTL,
        serial: dns::records::DEFAULT_SERIAL,
        namespaces,
        services: dns_services,
        pods: dns_pods,
        server_ips: vec![server_ip],
    })
}

/// A resolution as it reads in messages and plans.
pub(super) fn describe_resolution(resolution: &NameResolution) -> String {
    match &resolution.fqdn {
        Some(fqdn) => {
            let addrs: Vec<String> = resolution.addrs.iter().map(Ipv4Addr::to_string).collect();
            format!("{fqdn} {}", addrs.join(" "))
        }
        None if resolution.rcode == "NOERROR" => "NOERROR without addresses".to_owned(),
        None => resolution.rcode.clone(),
    }
}

#[cfg(test)]
mod tests;
