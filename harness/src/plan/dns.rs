//! The cluster DNS of a case (`dns:`): the `coredns` pod and the `kube-dns` Service the planner
//! adds, the records the DNS server serves ([`ClusterDns`]), each pod's `/etc/resolv.conf` and
//! `/etc/hosts` as the kubelet writes them, how a pod's resolver turns a name into addresses
//! (search list and `ndots`, as glibc does), and flows that run a command (`exec`). Pure, like
//! the rest of the planner; the rules are in `docs/case-format.md` ("Cluster DNS").

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use netns_runtime::dns::{self, ClusterDns, RData, RecordTable, RecordType};
use netns_runtime::resolver::ResolvConf;
use netns_runtime::topology::{Listener, Proto};
use serde_saphyr::Spanned;

use super::services::ServiceDraft;
use super::{
    ClusterParams, DnsAnswer, DnsExpect, ExecPlan, Expect, FlowPlan, NameTarget, NodeDraft,
    Planner, PodDraft, Refs, Target, YamlLocation, dns_label_problem, known_names, parse_timeout,
    quoted,
};
use crate::case::{
    Case, DnsExpectSpec, DnsSpec, ExpectSpec, FlowSpec, ServicePortSpec, ServiceSpec,
};
use crate::diag::Location;

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
/// Largest exit status a process can report.
const MAX_EXIT: u64 = 255;
/// Size limit of a compiled `outputMatches` pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

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
                if index.is_none() {
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

    /// `hostname` or `subdomain` of a pod: a DNS-1123 label.
    pub(super) fn pod_dns_label(&mut self, what: &str, value: &Spanned<String>) -> Option<String> {
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

    /// `expect.dns` of a flow to a name: the rcode and the answers, each resolved to addresses
    /// (a Service: its ClusterIP, or its ready endpoints' addresses when headless; a pod: its
    /// address; an address: itself).
    pub(super) fn dns_expect(
        &mut self,
        value: &Spanned<DnsExpectSpec>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<DnsExpect> {
        let (answers, rcode) = DnsExpectSpec::parts(value);
        let mut complete = true;
        let rcode = match &rcode {
            None => "NOERROR".to_owned(),
            Some(v) => {
                let upper = v.value.to_ascii_uppercase();
                if !RCODES.contains(&upper.as_str()) {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown rcode {}: expected {}",
                            quoted(&v.value),
                            RCODES.join(", ")
                        ),
                    );
                    return None;
                }
                upper
            }
        };
        let answers = answers.unwrap_or_default();
        if rcode != "NOERROR"
            && let Some(first) = answers.first()
        {
            self.error(
                first.referenced,
                format!("`answers` go with rcode NOERROR: a {rcode} answer has no addresses"),
            );
            return None;
        }
        let mut resolved: Vec<DnsAnswer> = Vec::with_capacity(answers.len());
        for answer in &answers {
            if resolved.iter().any(|a| a.label == answer.value) {
                self.error(
                    answer.referenced,
                    format!("{} is named twice in `dns`", quoted(&answer.value)),
                );
                complete = false;
                continue;
            }
            match self.dns_answer(answer, from_ns, refs) {
                Some(addrs) => resolved.push(DnsAnswer {
                    label: answer.value.clone(),
                    addrs,
                }),
                None => complete = false,
            }
        }
        complete.then_some(DnsExpect {
            rcode,
            answers: resolved,
        })
    }

    fn dns_answer(
        &mut self,
        value: &Spanned<String>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<Vec<Ipv4Addr>> {
        let text = value.value.as_str();
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(vec![ip]);
        }
        if let Some(service) = text.strip_prefix("svc/") {
            let (namespace, name) = match service.split_once('/') {
                Some((namespace, name)) => (namespace, name),
                None => (from_ns?, service),
            };
            let Some(draft) = refs
                .services
                .iter()
                .find(|s| s.plan.namespace == namespace && s.plan.name == name)
            else {
                let ids: Vec<String> = refs
                    .services
                    .iter()
                    .filter(|s| !s.plan.name.is_empty())
                    .map(|s| s.plan.id())
                    .collect();
                self.error(
                    value.referenced,
                    format!(
                        "unknown Service {} in `dns` (Services: {})",
                        quoted(&format!("{namespace}/{name}")),
                        known_names(ids.iter().map(String::as_str))
                    ),
                );
                return None;
            };
            if !draft.complete {
                return None;
            }
            return Some(match draft.plan.cluster_ip {
                Some(ip) => vec![ip],
                None => headless_addresses(draft),
            });
        }
        if let Some(&p) = refs.pod_index.get(text) {
            return refs.pods[p].ip.map(|ip| vec![ip]);
        }
        let known = known_names(refs.pods.iter().filter_map(|p| p.name.as_deref()));
        self.error(
            value.referenced,
            format!(
                "unknown pod {} in `dns` (pods: {known}); an answer is svc/NAME, svc/NAMESPACE/NAME, a pod or an IPv4 address",
                quoted(text)
            ),
        );
        None
    }

    /// `expect.dns` of a flow, checked against what the name resolves to. `None` when invalid
    /// (reported), `Some(None)` when not written.
    pub(super) fn flow_dns_expect(
        &mut self,
        spec: &FlowSpec,
        target: Option<&NameTarget>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<Option<DnsExpect>> {
        let Some(value) = spec.expect.as_ref().and_then(|e| e.value.dns.as_ref()) else {
            return Some(None);
        };
        let Some(target) = target else {
            if spec.to.is_some() {
                self.error(
                    value.referenced,
                    "`dns` is for flows whose `to` is a DNS name (myapp:80, myapp.other:80, with `dns:` declared): it checks what the name resolves to",
                );
            }
            return None;
        };
        let expect = self.dns_expect(value, from_ns, refs)?;
        if let Some(resolution) = &target.resolution {
            let mut want = expect.addrs();
            want.sort();
            let mut got = resolution.addrs.clone();
            got.sort();
            got.dedup();
            // Without answers, only the rcode is checked.
            let addrs_differ = !expect.answers.is_empty() && want != got;
            if expect.rcode != resolution.rcode || addrs_differ {
                self.error(
                    value.referenced,
                    format!(
                        "`dns` expects {}, but the cluster DNS answers {} with {} (asked {})",
                        describe_expect(&expect),
                        quoted(&target.name),
                        describe_resolution(resolution),
                        resolution.asked.join(" ")
                    ),
                );
                return None;
            }
        }
        Some(Some(expect))
    }

    /// A flow that runs a command (`exec`) in the pod (or host) of `from`.
    pub(super) fn exec_flow(
        &mut self,
        entry: &Spanned<FlowSpec>,
        exec: &Spanned<Vec<Spanned<String>>>,
        name: Option<String>,
        from: Option<String>,
    ) -> Option<FlowPlan> {
        let spec = &entry.value;
        let mut complete = true;
        if let Some(to) = &spec.to {
            self.error(
                to.referenced,
                "a flow has `to` or `exec`, not both: `to` sends traffic, `exec` runs a command",
            );
            complete = false;
        }
        for (key, at) in [
            ("protocol", spec.protocol.as_ref().map(|v| v.referenced)),
            ("attempts", spec.attempts.as_ref().map(|v| v.referenced)),
        ] {
            if let Some(at) = at {
                self.error(
                    at,
                    format!("`{key}` is for flows with `to`: an exec flow runs its command once"),
                );
                complete = false;
            }
        }
        let argv: Vec<String> = exec.value.iter().map(|a| a.value.clone()).collect();
        match exec.value.first() {
            None => {
                self.error(
                    exec.referenced,
                    "`exec` is empty: give the command and its arguments, like [dig, +short, myapp.default.svc.cluster.local]",
                );
                complete = false;
            }
            Some(command) if command.value.trim().is_empty() => {
                self.error(command.referenced, "the command of `exec` is empty");
                complete = false;
            }
            Some(_) => {}
        }
        if let Some(arg) = exec.value.iter().find(|a| a.value.contains('\0')) {
            self.error(
                arg.referenced,
                "an argument of `exec` may not hold a NUL character",
            );
            complete = false;
        }
        let timeout = match &spec.timeout {
            None => Some(DEFAULT_EXEC_TIMEOUT),
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
        let label = argv.join(" ");
        let plan = self.exec_expect(argv, spec.expect.as_ref());
        if !complete {
            return None;
        }
        Some(FlowPlan {
            name: name?,
            from: from?,
            target: Target::Icmp(Ipv4Addr::UNSPECIFIED),
            timeout: timeout?,
            expect: Expect::Reach {
                pods: Vec::new(),
                seen_source: None,
            },
            location: Location::from_yaml(entry.referenced)
                .unwrap_or(Location { line: 0, column: 0 }),
            target_label: label,
            service: None,
            attempts: 1,
            sticky: false,
            dns_name: None,
            resolution: None,
            expect_dns: None,
            exec: Some(plan?),
            hops: Default::default(),
        })
    }

    /// An `exec` flow's `expect`: `exit`, `output` and `outputMatches`; nothing else.
    pub(super) fn exec_expect(
        &mut self,
        argv: Vec<String>,
        expect: Option<&Spanned<ExpectSpec>>,
    ) -> Option<ExecPlan> {
        let mut plan = ExecPlan {
            argv,
            exit: 0,
            output: Vec::new(),
            output_matches: Vec::new(),
        };
        let Some(expect) = expect else {
            return Some(plan);
        };
        let spec = &expect.value;
        let mut complete = true;
        let misplaced = [
            ("reach", spec.reach.as_ref().map(|v| v.referenced)),
            ("fail", spec.fail.as_ref().map(|v| v.referenced)),
            (
                "seenSource",
                spec.seen_source.as_ref().map(|v| v.referenced),
            ),
            ("sticky", spec.sticky.as_ref().map(|v| v.referenced)),
            ("dns", spec.dns.as_ref().map(|v| v.referenced)),
            ("hops", spec.hops.as_ref().map(|v| v.referenced)),
            ("reply", spec.reply.as_ref().map(|v| v.referenced)),
            ("avoid", spec.avoid.as_ref().map(|v| v.referenced)),
        ];
        for (key, at) in misplaced {
            if let Some(at) = at {
                self.error(
                    at,
                    format!("`{key}` is for flows with `to`: an exec flow expects `exit`, `output` and `outputMatches`"),
                );
                complete = false;
            }
        }
        if let Some(v) = &spec.exit {
            match self.number("exit", v) {
                Some(n) if n <= MAX_EXIT => plan.exit = n as i32,
                Some(n) => {
                    self.error(
                        v.referenced,
                        format!("exit {n} is out of range 0..={MAX_EXIT} (an exit status)"),
                    );
                    complete = false;
                }
                None => complete = false,
            }
        }
        if let Some(lines) = &spec.output {
            plan.output = lines.value.iter().map(|l| l.value.clone()).collect();
            if let Some(line) = lines.value.iter().find(|l| l.value.contains('\n')) {
                self.error(
                    line.referenced,
                    "an `output` entry is one line: it may not hold a line break",
                );
                complete = false;
            }
        }
        if let Some(patterns) = &spec.output_matches {
            for pattern in &patterns.value {
                let compiled = regex::RegexBuilder::new(&pattern.value)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build();
                match compiled {
                    Ok(_) => plan.output_matches.push(pattern.value.clone()),
                    Err(err) => {
                        let why = err.to_string();
                        let why = why.lines().last().unwrap_or_default().trim().to_owned();
                        self.error(
                            pattern.referenced,
                            format!(
                                "outputMatches {} is not a regular expression: {}",
                                quoted(&pattern.value),
                                why.trim_start_matches("error: ")
                            ),
                        );
                        complete = false;
                    }
                }
            }
        }
        complete.then_some(plan)
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
        dns_label_problem(label, super::MAX_NAME).map(|problem| {
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

/// The expectation as it reads in messages: `NOERROR 10.96.0.2 (svc/myapp)`.
pub(super) fn describe_expect(expect: &DnsExpect) -> String {
    if expect.answers.is_empty() {
        return expect.rcode.clone();
    }
    let answers: Vec<String> = expect
        .answers
        .iter()
        .map(|a| {
            let addrs: Vec<String> = a.addrs.iter().map(Ipv4Addr::to_string).collect();
            if addrs.len() == 1 && addrs[0] == a.label {
                a.label.clone()
            } else if addrs.is_empty() {
                format!("{} (no address)", a.label)
            } else {
                format!("{} ({})", a.label, addrs.join(" "))
            }
        })
        .collect();
    format!("{} {}", expect.rcode, answers.join(", "))
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
mod tests {
    use std::net::SocketAddrV4;

    use rstest::rstest;

    use super::*;
    use crate::diag::Diagnostic;
    use crate::plan::testing::{
        assert_edits_stay_located, assert_one_at, assert_one_saying, diagnostics, ip, plan,
    };
    use crate::plan::{ProxyMode, ServiceVia};

    const FILE: &str = "cases/d.yaml";

    /// node1 runs the DNS pod; a client, a ClusterIP Service `web` (web-1), a headless `db`
    /// (db-0 and db-1 with hostnames, db-2 not ready) and `web` again in namespace `other`.
    const CLUSTER: &str = "dns: { node: node1 }
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
  - { name: web-1, node: node2, labels: { app: web }, listen: [8080] }
  - { name: db-0, node: node1, hostname: db-0, subdomain: db, labels: { app: db }, listen: [5432] }
  - { name: db-1, node: node2, hostname: db-1, subdomain: db, labels: { app: db }, listen: [5432] }
  - { name: db-2, node: node2, hostname: db-2, subdomain: db, labels: { app: db }, ready: false, listen: [5432] }
  - { name: o, node: node2, namespace: other, labels: { app: web }, listen: [8080] }
services:
  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: web, namespace: other, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: db, clusterIP: None, selector: { app: db }, ports: [{ name: pg, port: 5432 }] }
";

    fn with_flows(flows: &str) -> String {
        format!("{CLUSTER}flows:\n{flows}")
    }

    // --- the DNS pod and Service -----------------------------------------------------------

    #[test]
    fn the_dns_pod_comes_after_the_case_pods_and_kube_dns_at_the_tenth_address() {
        let plan = plan(FILE, CLUSTER);
        let topo = &plan.topology;
        let names: Vec<&str> = topo.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["client", "web-1", "db-0", "db-1", "db-2", "o", "coredns"]
        );
        let coredns = topo.pod("coredns").unwrap();
        assert_eq!(coredns.namespace, "kube-system");
        assert_eq!(topo.nodes[coredns.node].name, "node1");
        // client .2 and db-0 .3 keep theirs: the DNS pod takes the next one on node1.
        assert_eq!(coredns.eth0.addr.addr(), ip("10.244.1.4"));
        assert!(coredns.listeners.is_empty(), "no echo server on 53");
        assert_eq!(
            topo.pod("client").unwrap().eth0.addr.addr(),
            ip("10.244.1.2")
        );

        let kube_dns = plan.services.last().unwrap();
        assert_eq!(kube_dns.id(), "kube-system/kube-dns");
        assert_eq!(kube_dns.cluster_ip, Some(ip("10.96.0.10")));
        assert_eq!(
            kube_dns.selector,
            Some(BTreeMap::from([("k8s-app".into(), "kube-dns".into())]))
        );
        let ports: Vec<(String, Proto, u16, String)> = kube_dns
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.protocol,
                    p.port,
                    p.target_port.to_string(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".into(), Proto::Udp, 53, "53".into()),
                ("dns-tcp".into(), Proto::Tcp, 53, "53".into())
            ]
        );
        for port in &kube_dns.ports {
            let endpoints: Vec<(Option<&str>, Ipv4Addr, u16, bool)> = port
                .endpoints
                .iter()
                .map(|e| (e.pod.as_deref(), e.ip, e.port, e.ready))
                .collect();
            assert_eq!(endpoints, [(Some("coredns"), ip("10.244.1.4"), 53, true)]);
        }
        // The case's Services are allocated as without DNS (.2, .3; .10 is skipped anyway).
        assert_eq!(plan.services[0].cluster_ip, Some(ip("10.96.0.2")));
        assert_eq!(plan.services[1].cluster_ip, Some(ip("10.96.0.3")));
        // kube-proxy gets the kube-dns Service like any other.
        let dns_ports: Vec<u16> = plan.proxy[0]
            .services
            .iter()
            .filter(|p| p.name == "kube-dns")
            .map(|p| p.port)
            .collect();
        assert_eq!(dns_ports, [53, 53]);
        assert_eq!(topo.dns.as_ref().unwrap().pod, "coredns");
    }

    #[rstest]
    #[case::default_cidr("dns: { node: n1 }\n", "10.96.0.10")]
    #[case::other_cidr(
        "cluster: { serviceCIDR: 10.100.0.0/24 }\ndns: { node: n1 }\n",
        "10.100.0.10"
    )]
    #[case::fixed("dns: { node: n1, clusterIP: 10.96.0.53 }\n", "10.96.0.53")]
    fn the_kube_dns_address_is_the_tenth_host_unless_fixed(
        #[case] head: &str,
        #[case] expected: &str,
    ) {
        let plan = plan(
            FILE,
            &format!(
                "{head}nodes: [n1]\npods: [{{ name: a, node: n1 }}]\nservices: [{{ name: s, selector: {{ x: y }}, ports: [{{ port: 1 }}] }}]\n"
            ),
        );
        let dns = plan.services.iter().find(|s| s.name == "kube-dns").unwrap();
        assert_eq!(dns.cluster_ip, Some(ip(expected)));
        let resolv = plan.topology.pods[0].resolv_conf.as_deref().unwrap();
        assert!(
            resolv.starts_with(&format!("nameserver {expected}\n")),
            "{resolv}"
        );
        // A fixed kube-dns address is never allocated to another Service.
        assert_ne!(plan.services[0].cluster_ip, Some(ip(expected)));
    }

    #[test]
    fn without_dns_nothing_changes() {
        let plan = plan(
            FILE,
            "nodes: [n1]\npods: [{ name: a, node: n1, hostname: h, subdomain: s }]\n",
        );
        assert_eq!(plan.topology.dns, None);
        assert_eq!(plan.topology.pods.len(), 1);
        assert_eq!(plan.topology.pods[0].resolv_conf, None);
        assert_eq!(plan.topology.pods[0].hosts, None);
        assert!(plan.services.is_empty());
        assert!(plan.proxy_modes.is_empty());
    }

    #[test]
    fn dns_brings_the_service_proxy_and_works_without_overlay_changes() {
        let with = plan(
            FILE,
            "cluster: { overlay: host-gw }\ndns: { node: n2 }\nnodes: [n1, n2]\n",
        );
        assert_eq!(with.proxy_modes, ProxyMode::ALL.to_vec());
        assert_eq!(
            with.topology.pod("coredns").unwrap().eth0.addr.addr(),
            ip("10.244.2.2")
        );
        // flannel is untouched: the same routes as without DNS.
        let without = plan(FILE, "cluster: { overlay: host-gw }\nnodes: [n1, n2]\n");
        assert_eq!(
            with.topology.nodes[0].routes,
            without.topology.nodes[0].routes
        );
    }

    // --- resolv.conf and hosts -----------------------------------------------------------

    #[test]
    fn every_pod_gets_the_kubelet_resolv_conf_and_hosts_file() {
        let plan = plan(FILE, CLUSTER);
        let topo = &plan.topology;
        let client = topo.pod("client").unwrap();
        assert_eq!(
            client.resolv_conf.as_deref(),
            Some(
                "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
            )
        );
        assert_eq!(
            client.hosts.as_deref(),
            Some(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.1.2\tclient\n"
            )
        );
        let db0 = topo.pod("db-0").unwrap();
        assert!(db0.hosts.as_deref().unwrap().ends_with(
            "fe00::2\tip6-allrouters\n10.244.1.3\tdb-0.db.default.svc.cluster.local\tdb-0\n"
        ));
        let other = topo.pod("o").unwrap();
        assert_eq!(
            other.resolv_conf.as_deref(),
            Some(
                "nameserver 10.96.0.10\nsearch other.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
            )
        );
        // The DNS pod has dnsPolicy Default (kubeadm's manifest): the node's resolv.conf.
        let coredns = topo.pod("coredns").unwrap();
        assert_eq!(coredns.resolv_conf, None);
        assert!(
            coredns
                .hosts
                .as_deref()
                .unwrap()
                .ends_with("\n10.244.1.4\tcoredns\n")
        );
    }

    #[rstest]
    #[case::name(None, None, "10.0.0.1\tp\n")]
    #[case::hostname(Some("h"), None, "10.0.0.1\th\n")]
    #[case::subdomain(None, Some("s"), "10.0.0.1\tp.s.ns.svc.example.org\tp\n")]
    #[case::both(Some("h"), Some("s"), "10.0.0.1\th.s.ns.svc.example.org\th\n")]
    fn the_hosts_entry_follows_the_kubelet(
        #[case] hostname: Option<&str>,
        #[case] subdomain: Option<&str>,
        #[case] last: &str,
    ) {
        let text = hosts_file(
            ip("10.0.0.1"),
            "p",
            hostname,
            subdomain,
            "ns",
            "example.org",
        );
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            text.ends_with(&format!("fe00::2\tip6-allrouters\n{last}")),
            "{text}"
        );
    }

    #[test]
    fn a_custom_domain_is_in_search_lists_hosts_and_records() {
        let plan = plan(
            FILE,
            "dns: { node: n1, domain: corp.example }\nnodes: [n1]\npods: [{ name: a, node: n1, hostname: h, subdomain: s }]\n",
        );
        let a = plan.topology.pod("a").unwrap();
        assert_eq!(
            a.resolv_conf.as_deref(),
            Some(
                "nameserver 10.96.0.10\nsearch default.svc.corp.example svc.corp.example corp.example\noptions ndots:5\n"
            )
        );
        assert!(
            a.hosts
                .as_deref()
                .unwrap()
                .ends_with("\th.s.default.svc.corp.example\th\n")
        );
        assert_eq!(
            plan.topology.dns.as_ref().unwrap().records.zone,
            "corp.example"
        );
    }

    // --- the records ---------------------------------------------------------------------

    #[test]
    fn the_records_hold_every_service_endpoint_and_pod() {
        let plan = plan(FILE, CLUSTER);
        let records = &plan.topology.dns.as_ref().unwrap().records;
        assert_eq!(records.zone, "cluster.local");
        assert_eq!((records.ttl, records.serial), (30, 1));
        assert_eq!(
            records.namespaces,
            [
                "default",
                "kube-node-lease",
                "kube-public",
                "kube-system",
                "other"
            ]
        );
        assert_eq!(records.server_ips, [ip("10.244.1.4")]);
        let ids: Vec<(String, Option<Ipv4Addr>)> = records
            .services
            .iter()
            .map(|s| (format!("{}/{}", s.namespace, s.name), s.cluster_ip))
            .collect();
        assert_eq!(
            ids,
            [
                ("default/web".into(), Some(ip("10.96.0.2"))),
                ("other/web".into(), Some(ip("10.96.0.3"))),
                ("default/db".into(), None),
                ("kube-system/kube-dns".into(), Some(ip("10.96.0.10"))),
            ]
        );
        let web = &records.services[0];
        assert_eq!(
            web.ports,
            [dns::Port {
                name: String::new(),
                protocol: Proto::Tcp,
                port: 80
            }]
        );
        assert_eq!(
            web.endpoints,
            [dns::Endpoint {
                ip: ip("10.244.2.2"),
                hostname: None,
                pod: Some("web-1".into()),
                ready: true,
                ports: vec![dns::Port {
                    name: String::new(),
                    protocol: Proto::Tcp,
                    port: 8080
                }],
            }]
        );
        // Headless: every selected pod, hostnames from the pods whose subdomain is `db`, the
        // not-ready one kept (CoreDNS drops it itself).
        let db = &records.services[2];
        let endpoints: Vec<(Ipv4Addr, Option<&str>, Option<&str>, bool)> = db
            .endpoints
            .iter()
            .map(|e| (e.ip, e.hostname.as_deref(), e.pod.as_deref(), e.ready))
            .collect();
        assert_eq!(
            endpoints,
            [
                (ip("10.244.1.3"), Some("db-0"), Some("db-0"), true),
                (ip("10.244.2.3"), Some("db-1"), Some("db-1"), true),
                (ip("10.244.2.4"), Some("db-2"), Some("db-2"), false),
            ]
        );
        assert_eq!(
            db.endpoints[0].ports,
            [dns::Port {
                name: "pg".into(),
                protocol: Proto::Tcp,
                port: 5432
            }]
        );
        let kube_dns = &records.services[3];
        assert_eq!(kube_dns.endpoints.len(), 1);
        assert_eq!(
            kube_dns.endpoints[0].ports,
            [
                dns::Port {
                    name: "dns".into(),
                    protocol: Proto::Udp,
                    port: 53
                },
                dns::Port {
                    name: "dns-tcp".into(),
                    protocol: Proto::Tcp,
                    port: 53
                }
            ]
        );
        assert_eq!(records.pods.len(), 7);
        assert_eq!(
            records.pods[2],
            dns::Pod {
                namespace: "default".into(),
                name: "db-0".into(),
                ip: ip("10.244.1.3"),
                hostname: Some("db-0".into()),
                subdomain: Some("db".into()),
            }
        );
        assert_eq!(
            (records.pods[6].name.as_str(), records.pods[6].ip),
            ("coredns", ip("10.244.1.4"))
        );
    }

    #[test]
    fn a_hostname_names_an_endpoint_only_under_the_service_of_its_subdomain() {
        let plan = plan(
            FILE,
            "dns: { node: n1 }
nodes: [n1]
pods:
  - { name: a, node: n1, hostname: ha, subdomain: other, labels: { app: x } }
  - { name: b, node: n1, hostname: hb, labels: { app: x } }
  - { name: c, node: n1, subdomain: x, labels: { app: x } }
services:
  - { name: x, clusterIP: None, selector: { app: x } }
",
        );
        let records = &plan.topology.dns.as_ref().unwrap().records;
        let hostnames: Vec<Option<&str>> = records.services[0]
            .endpoints
            .iter()
            .map(|e| e.hostname.as_deref())
            .collect();
        assert_eq!(hostnames, [None, None, None]);
        assert!(records.services[0].ports.is_empty());
    }

    // --- names in flows --------------------------------------------------------------------

    #[rstest]
    #[case::bare(
        "client",
        "web:80",
        Some("web.default.svc.cluster.local."),
        "10.96.0.2"
    )]
    #[case::other_namespace(
        "client",
        "web.other:80",
        Some("web.other.svc.cluster.local."),
        "10.96.0.3"
    )]
    #[case::bare_from_other_namespace(
        "o",
        "web:80",
        Some("web.other.svc.cluster.local."),
        "10.96.0.3"
    )]
    #[case::fqdn(
        "client",
        "web.default.svc.cluster.local:80",
        Some("web.default.svc.cluster.local."),
        "10.96.0.2"
    )]
    #[case::fqdn_with_dot(
        "client",
        "web.default.svc.cluster.local.:80",
        Some("web.default.svc.cluster.local."),
        "10.96.0.2"
    )]
    #[case::endpoint_hostname(
        "client",
        "db-1.db:5432",
        Some("db-1.db.default.svc.cluster.local."),
        "10.244.2.3"
    )]
    #[case::pod_record(
        "client",
        "10-244-2-2.default.pod:8080",
        Some("10-244-2-2.default.pod.cluster.local."),
        "10.244.2.2"
    )]
    #[case::kube_dns(
        "client",
        "kube-dns.kube-system:53",
        Some("kube-dns.kube-system.svc.cluster.local."),
        "10.96.0.10"
    )]
    #[case::headless_with_several(
        "client",
        "db:5432",
        Some("db.default.svc.cluster.local."),
        "0.0.0.0"
    )]
    #[case::nothing("client", "nosuch:80", None, "0.0.0.0")]
    fn names_resolve_with_the_search_list_of_from(
        #[case] from: &str,
        #[case] to: &str,
        #[case] fqdn: Option<&str>,
        #[case] addr: &str,
    ) {
        let expect = if fqdn.is_some() {
            "dns: { rcode: NOERROR }"
        } else {
            "dns: { rcode: REFUSED }"
        };
        let plan = plan(
            FILE,
            &with_flows(&format!(
                "  - {{ name: f, from: {from}, to: '{to}', protocol: {}, expect: {{ {expect} }} }}\n",
                if to.ends_with(":53") { "udp" } else { "tcp" }
            )),
        );
        let flow = &plan.flows[0];
        let (host, port) = to.rsplit_once(':').unwrap();
        assert_eq!(flow.dns_name.as_deref(), Some(host));
        let resolution = flow.resolution.as_ref().unwrap();
        assert_eq!(resolution.fqdn.as_deref(), fqdn);
        assert_eq!(flow.target.ip(), ip(addr));
        assert_eq!(
            flow.target.to_string().rsplit_once(':').unwrap().1,
            port,
            "the port is kept"
        );
        assert!(!flow.sends_traffic(), "dns alone");
    }

    #[test]
    fn the_search_order_is_the_resolvers() {
        let plan = plan(FILE, &with_flows(
            "  - { name: a, from: client, to: 'web.other:80', expect: { reach: o } }
  - { name: b, from: client, to: 'nosuch:80', expect: { dns: { rcode: REFUSED } } }
  - { name: c, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NXDOMAIN } } }
  - { name: d, from: client, to: 'a.b.c.d.e.f:80', expect: { dns: { rcode: REFUSED } } }
  - { name: e, from: client, to: 'default.svc.cluster.local.:80', expect: { dns: { rcode: NOERROR } } }
",
        ));
        let asked = |i: usize| plan.flows[i].resolution.as_ref().unwrap().asked.clone();
        assert_eq!(
            asked(0),
            [
                "web.other.default.svc.cluster.local.",
                "web.other.svc.cluster.local."
            ]
        );
        assert_eq!(
            asked(1),
            [
                "nosuch.default.svc.cluster.local.",
                "nosuch.svc.cluster.local.",
                "nosuch.cluster.local.",
                "nosuch."
            ]
        );
        // NXDOMAIN throughout, the name itself last.
        assert_eq!(asked(2).len(), 4);
        assert_eq!(plan.flows[2].resolution.as_ref().unwrap().rcode, "NXDOMAIN");
        // Five dots or more: the name as is first; it is outside the zone, and REFUSED ends
        // the search.
        assert_eq!(asked(3), ["a.b.c.d.e.f."]);
        // A namespace exists without addresses: NOERROR, NODATA.
        let nodata = plan.flows[4].resolution.as_ref().unwrap();
        assert_eq!((nodata.rcode.as_str(), nodata.addrs.len()), ("NOERROR", 0));
    }

    #[test]
    fn a_name_of_a_service_is_a_flow_to_its_service_port() {
        let plan = plan(FILE, &with_flows(
            "  - { name: f, from: client, to: 'web:80', attempts: 2, expect: { reach: web-1, seenSource: client, dns: [svc/web] } }
  - { name: g, from: client, to: 'kube-dns.kube-system:53', protocol: udp, expect: { fail: timeout } }
  - { name: h, from: client, to: 'db:5432', expect: { reach: [db-0, db-1], dns: [svc/db] } }
  - { name: i, from: client, to: 'db-0.db:5432', expect: { reach: db-0, dns: [db-0] } }
",
        ));
        let f = &plan.flows[0];
        assert_eq!(
            f.target,
            Target::Tcp(SocketAddrV4::new(ip("10.96.0.2"), 80))
        );
        let service = f.service.as_ref().unwrap();
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            ("default", "web")
        );
        assert_eq!(service.via, ServiceVia::ClusterIp);
        assert_eq!(f.target_label, "web:80");
        assert_eq!(
            f.expect_dns,
            Some(DnsExpect {
                rcode: "NOERROR".into(),
                answers: vec![DnsAnswer {
                    label: "svc/web".into(),
                    addrs: vec![ip("10.96.0.2")],
                }],
            })
        );
        assert!(f.each_reach_pod_answers());
        let g = &plan.flows[1];
        assert_eq!(
            g.target,
            Target::Udp(SocketAddrV4::new(ip("10.96.0.10"), 53))
        );
        assert_eq!(g.service.as_ref().unwrap().port, 0, "the dns port, UDP");
        let h = &plan.flows[2];
        assert_eq!(h.target.ip(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(h.service, None);
        assert_eq!(
            h.expect_dns.as_ref().unwrap().addrs(),
            [ip("10.244.1.3"), ip("10.244.2.3")]
        );
        assert_eq!(plan.flows[3].target.ip(), ip("10.244.1.3"));
    }

    #[test]
    fn a_flow_that_only_resolves_needs_no_service_port_or_listener() {
        let plan = plan(
            FILE,
            &with_flows(
                "  - { name: f, from: client, to: web, expect: { dns: svc/web } }
  - { name: g, from: client, to: 'web:9999', expect: { dns: svc/web } }
  - { name: h, from: client, to: 'db-0.db:1', expect: { dns: db-0 } }
",
            ),
        );
        assert_eq!(plan.flows[0].target, Target::Icmp(ip("10.96.0.2")));
        assert_eq!(plan.flows[1].service, None);
        assert_eq!(plan.flows[2].target.ip(), ip("10.244.1.3"));
        assert!(plan.flows.iter().all(|f| !f.sends_traffic()));
    }

    // --- exec ------------------------------------------------------------------------------

    #[test]
    fn exec_flows_run_a_command_with_their_expectations() {
        let plan = plan(
            FILE,
            &with_flows(
                "  - name: dig
    from: client
    exec: [dig, +short, web.default.svc.cluster.local, 53]
    expect: { exit: 0, output: [10.96.0.2], outputMatches: ['^10\\.96\\.', 'x|y'] }
  - { name: plain, from: client, exec: ['true'] }
  - { name: fails, from: external, exec: [sh, -c, exit 3], timeout: 30s, expect: { exit: 3 } }
external: {}
",
            ),
        );
        let dig = &plan.flows[0];
        assert_eq!(
            dig.exec,
            Some(ExecPlan {
                argv: vec![
                    "dig".into(),
                    "+short".into(),
                    "web.default.svc.cluster.local".into(),
                    "53".into()
                ],
                exit: 0,
                output: vec!["10.96.0.2".into()],
                output_matches: vec!["^10\\.96\\.".into(), "x|y".into()],
            })
        );
        assert_eq!(dig.timeout, DEFAULT_EXEC_TIMEOUT);
        assert_eq!(dig.target, Target::Icmp(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            dig.expect,
            Expect::Reach {
                pods: vec![],
                seen_source: None
            }
        );
        assert_eq!(
            dig.target_label,
            "dig +short web.default.svc.cluster.local 53"
        );
        assert!(!dig.sends_traffic());
        assert!(!dig.each_reach_pod_answers());
        assert_eq!((dig.dns_name.clone(), dig.expect_dns.clone()), (None, None));
        let plain = plan.flows[1].exec.as_ref().unwrap();
        assert_eq!((plain.exit, plain.output.len()), (0, 0));
        let fails = &plan.flows[2];
        assert_eq!(fails.from, "external");
        assert_eq!(fails.exec.as_ref().unwrap().exit, 3);
        assert_eq!(fails.timeout, Duration::from_secs(30));
    }

    #[test]
    fn exec_needs_no_dns() {
        let plan = plan(
            FILE,
            "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, exec: [ip, route] }]\n",
        );
        assert_eq!(plan.flows[0].exec.as_ref().unwrap().argv, ["ip", "route"]);
    }

    // --- rendering -----------------------------------------------------------------------

    #[test]
    fn the_plan_shows_the_dns_server_resolv_conf_names_and_commands() {
        let plan = plan(FILE, &with_flows(
            "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, dns: [svc/web] } }
  - { name: g, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NXDOMAIN } } }
  - { name: h, from: client, to: 'db:5432', expect: { reach: db-1 } }
  - { name: i, from: client, exec: [dig, +short, db.default.svc.cluster.local], expect: { output: [10.244.1.3] } }
",
        ));
        let text = plan.to_string();
        assert!(
            text.contains("  hosts      10.244.1.3 db-0.db.default.svc.cluster.local db-0\n"),
            "{text}"
        );
        let dns = &text[text.find("\ndns ").unwrap() + 1..text.find("flow f").unwrap()];
        assert_eq!(
            dns,
            "dns coredns (namespace kube-system) on node1 at 10.244.1.4: zone cluster.local, ttl 30, 4 Services, 7 pods
  resolv     namespace default: nameserver 10.96.0.10; search default.svc.cluster.local svc.cluster.local cluster.local; options ndots:5
  resolv     namespace other: nameserver 10.96.0.10; search other.svc.cluster.local svc.cluster.local cluster.local; options ndots:5
"
        );
        let flows = &text[text.find("flow f").unwrap()..];
        assert_eq!(
            flows,
            "flow f (line 15): client -> web:80 (tcp) = tcp 10.96.0.2:80 (Service default/web port 80/TCP), resolved as web.default.svc.cluster.local., timeout 2s
  asks       web.default.svc.cluster.local.
  expect dns NOERROR svc/web (10.96.0.2)
  expect reach web-1
flow g (line 16): client -> nosuch.default.svc.cluster.local:80 (tcp), which resolves to no address, timeout 2s
  asks       nosuch.default.svc.cluster.local.default.svc.cluster.local. nosuch.default.svc.cluster.local.svc.cluster.local. nosuch.default.svc.cluster.local.cluster.local. nosuch.default.svc.cluster.local.
  expect dns NXDOMAIN
flow h (line 17): client -> db:5432 (tcp), resolved as db.default.svc.cluster.local. 10.244.1.3 10.244.2.3, timeout 2s
  asks       db.default.svc.cluster.local.
  expect reach db-1
flow i (line 18): client runs dig +short db.default.svc.cluster.local, timeout 5s
  expect exit 0, line \"10.244.1.3\"
"
        );
    }

    #[test]
    fn the_examples_of_the_case_format_plan() {
        let doc = include_str!("../../../docs/case-format.md");
        let section = &doc[doc.find("## Cluster DNS").unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + section[start..].find("```").unwrap();
        let example = plan(FILE, &section[start..end]);
        assert_eq!(example.flows[0].target.ip(), ip("10.96.0.2"));
        assert_eq!(example.flows[1].target.ip(), ip("10.244.2.3"));
        assert_eq!(
            example.flows[2].expect_dns.as_ref().unwrap().rcode,
            "NXDOMAIN"
        );
        assert_eq!(
            example.flows[3].exec.as_ref().unwrap().output,
            ["10.96.0.2"]
        );

        let exec = &doc[doc.find("## `exec`").unwrap()..];
        let start = exec.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + exec[start..].find("```").unwrap();
        let flow: String = exec[start..end]
            .lines()
            .map(|line| format!("  {line}\n"))
            .collect();
        let with_exec = plan(FILE, &with_flows(&flow));
        let exec = with_exec.flows[0].exec.as_ref().unwrap();
        assert_eq!(exec.output_matches, ["^10\\.96\\."]);
    }

    // --- errors --------------------------------------------------------------------------

    #[rstest]
    #[case::no_node("dns: {}\nnodes: [n1]\n", 1, 6, "`dns` has no `node`")]
    #[case::unknown_node(
        "dns: { node: n9 }\nnodes: [n1]\n",
        1,
        14,
        "unknown node `n9` (nodes: n1)"
    )]
    #[case::bad_domain(
        "dns: { node: n1, domain: Cluster.Local }\nnodes: [n1]\n",
        1,
        26,
        "dns domain `Cluster.Local` has a label `Cluster`"
    )]
    #[case::empty_domain_label(
        "dns: { node: n1, domain: 'a..b' }\nnodes: [n1]\n",
        1,
        26,
        "has a label `` that is empty"
    )]
    #[case::headless_dns(
        "dns: { node: n1, clusterIP: None }\nnodes: [n1]\n",
        1,
        29,
        "dns clusterIP may not be None"
    )]
    #[case::dns_ip_syntax(
        "dns: { node: n1, clusterIP: 10.96.0 }\nnodes: [n1]\n",
        1,
        29,
        "clusterIP `10.96.0` is not an IPv4 address"
    )]
    #[case::dns_ip_outside(
        "dns: { node: n1, clusterIP: 10.0.0.10 }\nnodes: [n1]\n",
        1,
        29,
        "clusterIP 10.0.0.10 is outside serviceCIDR 10.96.0.0/12"
    )]
    #[case::dns_ip_taken(
        "dns: { node: n1 }\nnodes: [n1]\nservices: [{ name: s, clusterIP: 10.96.0.10, selector: { a: b }, ports: [{ port: 1 }] }]\n",
        1,
        6,
        "duplicate clusterIP 10.96.0.10: Service default/s has it too"
    )]
    #[case::no_tenth_address(
        "cluster: { serviceCIDR: 10.96.0.0/29 }\ndns: { node: n1 }\nnodes: [n1]\n",
        2,
        6,
        "serviceCIDR 10.96.0.0/29 has no 10th address"
    )]
    #[case::proxy_none(
        "cluster: { proxy: none }\ndns: { node: n1 }\nnodes: [n1]\n",
        1,
        19,
        "the cluster DNS is reached through the kube-dns Service, which needs a service proxy"
    )]
    #[case::pod_named_coredns(
        "dns: { node: n1 }\nnodes: [n1]\npods: [{ name: coredns, node: n1 }]\n",
        3,
        16,
        "pod name `coredns` is reserved for the cluster DNS pod"
    )]
    #[case::node_named_coredns(
        "dns: { node: n1 }\nnodes: [n1, coredns]\n",
        2,
        13,
        "node name `coredns` is the cluster DNS pod's"
    )]
    #[case::kube_dns_service(
        "dns: { node: n1 }\nnodes: [n1]\nservices: [{ name: kube-dns, namespace: kube-system, clusterIP: None }]\n",
        3,
        20,
        "Service kube-system/kube-dns is reserved for the cluster DNS"
    )]
    #[case::hostname(
        "nodes: [n1]\npods: [{ name: a, node: n1, hostname: A_1 }]\n",
        2,
        39,
        "hostname `A_1` is not a DNS-1123 label"
    )]
    #[case::subdomain(
        "nodes: [n1]\npods: [{ name: a, node: n1, subdomain: -x }]\n",
        2,
        40,
        "subdomain `-x` is not a DNS-1123 label"
    )]
    #[case::name_without_dns(
        "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, to: 'web.default:80', expect: { fail: timeout } }]\n",
        3,
        33,
        "names are resolved by the cluster DNS, which this case does not declare (add dns: { node: ... })"
    )]
    #[case::bare_name_without_dns(
        "nodes: [n1]\npods: [{ name: a, node: n1 }]\nflows: [{ name: f, from: a, to: 'web:80', expect: { fail: timeout } }]\n",
        3,
        33,
        "unknown pod `web` in `to` (pods: a; nodes: n1): it is not a pod; names are resolved by the cluster DNS"
    )]
    fn dns_errors_are_located(
        #[case] yaml: &str,
        #[case] line: u64,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        assert_one_saying(&diagnostics(FILE, yaml), line, column, message);
    }

    #[rstest]
    #[case::from_external(
        "  - { name: f, from: external, to: 'web:80', expect: { fail: timeout } }\nexternal: {}\n",
        "names are resolved by a pod's resolver"
    )]
    #[case::bad_name(
        "  - { name: f, from: client, to: 'we b.x:80', expect: { fail: timeout } }\n",
        "as a DNS name it is not a DNS name"
    )]
    #[case::empty_label(
        "  - { name: f, from: client, to: 'web..x:80', expect: { fail: timeout } }\n",
        "has an empty label"
    )]
    #[case::dns_on_a_pod_flow(
        "  - { name: f, from: client, to: 'web-1:8080', expect: { reach: web-1, dns: [web-1] } }\n",
        "`dns` is for flows whose `to` is a DNS name"
    )]
    #[case::unknown_rcode(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: { rcode: NOTFOUND } } }\n",
        "unknown rcode `NOTFOUND`: expected NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED"
    )]
    #[case::answers_with_nxdomain(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: { rcode: NXDOMAIN, answers: [svc/web] } } }\n",
        "`answers` go with rcode NOERROR"
    )]
    #[case::unknown_service_answer(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/nope] } }\n",
        "unknown Service `default/nope` in `dns`"
    )]
    #[case::unknown_pod_answer(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [nope] } }\n",
        "unknown pod `nope` in `dns`"
    )]
    #[case::twice(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web, svc/web] } }\n",
        "`svc/web` is named twice in `dns`"
    )]
    #[case::wrong_answer(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/other/web] } }\n",
        "`dns` expects NOERROR svc/other/web (10.96.0.3), but the cluster DNS answers `web` with web.default.svc.cluster.local. 10.96.0.2"
    )]
    #[case::wrong_rcode(
        "  - { name: f, from: client, to: 'nosuch.default.svc.cluster.local:80', expect: { dns: { rcode: NOERROR } } }\n",
        "but the cluster DNS answers `nosuch.default.svc.cluster.local` with NXDOMAIN"
    )]
    #[case::reach_nowhere(
        "  - { name: f, from: client, to: 'nosuch:80', expect: { reach: web-1 } }\n",
        "`nosuch` resolves to no address (REFUSED, asked nosuch.default.svc.cluster.local."
    )]
    #[case::fail_nowhere(
        "  - { name: f, from: client, to: 'nosuch:80', expect: { fail: timeout, dns: { rcode: REFUSED } } }\n",
        "so there is nothing to send to: drop `fail`"
    )]
    #[case::reach_not_behind_the_name(
        "  - { name: f, from: client, to: 'db:5432', expect: { reach: [db-0, web-1] } }\n",
        "`reach` names web-1, but `db` resolves to 10.244.1.3 (db-0), 10.244.2.3 (db-1): only those can answer"
    )]
    #[case::not_an_endpoint(
        "  - { name: f, from: client, to: 'web:80', expect: { reach: o } }\n",
        "`reach` names o, which is not an endpoint of Service default/web port 80/TCP"
    )]
    #[case::not_listening(
        "  - { name: f, from: client, to: 'db:5433', expect: { reach: db-0 } }\n",
        "db-0 does not listen on 5433/tcp"
    )]
    #[case::a_service_name_needs_a_port(
        "  - { name: f, from: client, to: web, expect: { fail: timeout } }\n",
        "a flow to a Service needs a port: write web:PORT"
    )]
    #[case::reach_coredns(
        "  - { name: f, from: client, to: 'kube-dns.kube-system:53', protocol: udp, expect: { reach: coredns } }\n",
        "`reach` names coredns, the cluster DNS pod"
    )]
    #[case::dns_only_with_seen_source(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web], seenSource: client } }\n",
        "`seenSource` goes with `reach`: with `dns` alone"
    )]
    #[case::exit_on_a_to_flow(
        "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, exit: 0 } }\n",
        "`exit` is for flows that run a command (`exec`)"
    )]
    #[case::exec_and_to(
        "  - { name: f, from: client, to: 'web:80', exec: [true] }\n",
        "a flow has `to` or `exec`, not both"
    )]
    #[case::exec_protocol(
        "  - { name: f, from: client, protocol: udp, exec: [true] }\n",
        "`protocol` is for flows with `to`"
    )]
    #[case::exec_attempts(
        "  - { name: f, from: client, attempts: 2, exec: [true] }\n",
        "`attempts` is for flows with `to`"
    )]
    #[case::exec_empty("  - { name: f, from: client, exec: [] }\n", "`exec` is empty")]
    #[case::exec_empty_command(
        "  - { name: f, from: client, exec: ['', x] }\n",
        "the command of `exec` is empty"
    )]
    #[case::exec_reach(
        "  - { name: f, from: client, exec: [true], expect: { reach: web-1 } }\n",
        "`reach` is for flows with `to`: an exec flow expects `exit`, `output` and `outputMatches`"
    )]
    #[case::exec_dns(
        "  - { name: f, from: client, exec: [true], expect: { dns: [svc/web] } }\n",
        "`dns` is for flows with `to`"
    )]
    #[case::exit_range(
        "  - { name: f, from: client, exec: [true], expect: { exit: 256 } }\n",
        "exit 256 is out of range 0..=255"
    )]
    #[case::exit_not_a_number(
        "  - { name: f, from: client, exec: [true], expect: { exit: -1 } }\n",
        "exit `-1` is not a whole number"
    )]
    #[case::bad_regex(
        "  - { name: f, from: client, exec: [true], expect: { outputMatches: ['a(b'] } }\n",
        "outputMatches `a(b` is not a regular expression: unclosed group"
    )]
    #[case::exec_timeout(
        "  - { name: f, from: client, exec: [true], timeout: 61s }\n",
        "timeout `61s` is longer than the maximum, 60s"
    )]
    #[case::exec_from_unknown(
        "  - { name: f, from: nobody, exec: [true] }\n",
        "unknown pod `nobody` in `from`"
    )]
    fn flow_dns_and_exec_errors(#[case] flows: &str, #[case] message: &str) {
        let found = diagnostics(FILE, &with_flows(flows));
        let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
        assert_eq!(found.len(), 1, "{all:#?}");
        assert!(found[0].message.contains(message), "{all:#?}");
        assert!(found[0].location.is_some_and(|l| l.line >= 15), "{all:#?}");
    }

    /// Where the errors of flows point: at the value that is wrong.
    #[rstest]
    #[case::name(
        "  - { name: f, from: client, to: 'nosuch:80', expect: { reach: web-1 } }\n",
        15,
        64
    )]
    #[case::dns(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/db] } }\n",
        15,
        59
    )]
    #[case::regex(
        "  - { name: f, from: client, exec: [x], expect: { outputMatches: [ok, '['] } }\n",
        15,
        71
    )]
    #[case::exec_value("  - { name: f, from: client, exec: [] }\n", 15, 36)]
    #[case::answer(
        "  - { name: f, from: client, to: 'web:80', expect: { dns: [svc/web, nope] } }\n",
        15,
        69
    )]
    fn flow_errors_point_at_the_value(#[case] flows: &str, #[case] line: u64, #[case] column: u64) {
        assert_one_at(&diagnostics(FILE, &with_flows(flows)), line, column);
    }

    /// Deterministic mutations of a valid DNS case never panic, and whatever they break is
    /// reported with a location.
    #[test]
    fn mutated_dns_cases_never_panic() {
        let valid = with_flows(
            "  - { name: f, from: client, to: 'web:80', expect: { reach: web-1, dns: [svc/web] } }
  - { name: g, from: client, to: 'nosuch.x:80', expect: { dns: { rcode: REFUSED, answers: [] } } }
  - { name: h, from: client, exec: [dig, +short, db], timeout: 3s, expect: { exit: 0, output: [a], outputMatches: ['^1'] } }
",
        );
        plan(FILE, &valid);
        let pieces = [
            ":",
            "{",
            "}",
            "[",
            "]",
            ",",
            "'",
            ".",
            "\n",
            " ",
            "0",
            "svc/",
            "dns",
            "None",
            "(",
            "coredns",
            "kube-dns",
            "kube-system",
        ];
        assert_edits_stay_located(&valid, &pieces, 0xd115, 1500);
    }
}
