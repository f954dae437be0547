//! Validation and planning: a parsed case becomes a [`Plan`], pure data naming every address,
//! MAC, route, neighbour and FDB entry of the cluster, and every flow with its resolved target.
//!
//! Planning is deterministic (the same file always gives the same plan) and needs no
//! privileges. Validation reports every problem of a file, each at the value it is about. The
//! rules are written down in `docs/case-format.md`; keep the two in step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use netns_runtime::topology::{
    ClusterDnsServer, EXTERNAL_HOST, External, FdbEntry, Iface, Listener, Mac, Neighbour,
    NetworkLayout, Node, Pod, Proto, Route, Topology, UNDERLAY_BRIDGE, UNDERLAY_NETNS, Underlay,
    Vxlan,
};
use serde_saphyr::Spanned;

use crate::case::{
    self, Case, ClusterSpec, ExpectSpec, ExternalSpec, FlowSpec, ListenEntry, ListenSpec,
    NodeEntry, PodNames, PodSpec,
};
use crate::diag::{CaseError, Diagnostic, Diagnostics, Location};

mod dns;
pub mod hops;
mod services;

pub use dns::{
    DEFAULT_EXEC_TIMEOUT, DNS_LABEL, DNS_NAMESPACE, DNS_POD, DNS_PORT, DNS_SERVICE,
    DNS_SERVICE_HOST, NDOTS, NameResolution, RCODES, hosts_file, resolv_conf, resolve_in,
    search_domains,
};

pub use netns_runtime::proxy::driver::ProxyMode;
pub use netns_runtime::proxy::{ServiceTable, TrafficPolicy};
pub use services::{
    DEFAULT_AFFINITY_TIMEOUT, MAX_AFFINITY_TIMEOUT, NODE_PORT_RANGE, PortEndpoint,
    RESERVED_SERVICE_HOSTS, ServiceEndpoint, ServicePlan, ServicePortPlan, ServiceType, TargetPort,
    proxy_tables,
};

/// Default cluster pod network (kind's and flannel's).
pub const DEFAULT_POD_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16);
/// Default per-node pod subnet prefix length (flannel's `SubnetLen`).
pub const DEFAULT_SUBNET_LEN: u8 = 24;
/// Default Service network (kubeadm's and kind's `--service-cluster-ip-range`).
pub const DEFAULT_SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12);
/// Default underlay network (kind's docker network).
pub const DEFAULT_NODE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 18, 0, 0), 16);
/// Default underlay MTU.
pub const DEFAULT_MTU: u32 = 1500;
/// Default time a flow is given before it counts as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Most attempts a flow may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Longest timeout a flow may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Smallest and largest underlay MTU accepted (IPv4's minimum datagram size; jumbo frames).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9000;
/// What flannel's VXLAN encapsulation costs (outer IPv4, UDP, VXLAN and Ethernet headers).
pub const VXLAN_OVERHEAD: u32 = 50;
/// Longest node name: it also names the node's port on the underlay bridge (IFNAMSIZ - 1).
pub const MAX_NODE_NAME: usize = 15;
/// Longest pod, namespace and flow name (a DNS-1123 label).
pub const MAX_NAME: usize = 63;

/// Name of a node's and a pod's primary interface.
pub const ETH0: &str = "eth0";
/// Name of the bridge pods attach to in every node.
pub const POD_BRIDGE: &str = "cni0";
/// Name of flannel's VXLAN device.
pub const VXLAN_DEV: &str = "flannel.1";
/// flannel's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// flannel's VXLAN UDP port (the Linux default, not IANA's 4789).
pub const VXLAN_PORT: u16 = 8472;

/// MAC prefixes: Docker's for node interfaces (and the external host's, kind's docker host),
/// the CNI bridge plugin's for pods and gateways, and a locally administered one for VTEPs.
const NODE_MAC: [u8; 2] = [0x02, 0x42];
const POD_MAC: [u8; 2] = [0x0a, 0x58];
const VTEP_MAC: [u8; 2] = [0x0e, 0x2a];

/// A validated case: the cluster to build and the flows to run on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The case's `name`, or the file stem.
    pub name: String,
    pub file: PathBuf,
    /// The file stem, used in trial names.
    pub stem: String,
    pub topology: Topology,
    pub flows: Vec<FlowPlan>,
    /// The cluster's Service network (`serviceCIDR`).
    pub service_cidr: Ipv4Net,
    /// Every Service, in declared order, with its address, ports and endpoints.
    pub services: Vec<ServicePlan>,
    /// What the service proxy (kube-proxy) of each node knows, one table per node in node
    /// order: what the proxy renderers turn into rules.
    pub proxy: Vec<ServiceTable>,
    /// The service proxy modes the case runs in (each its own cluster and trials); empty when
    /// the case has no proxy.
    pub proxy_modes: Vec<ProxyMode>,
}

/// One flow, resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPlan {
    pub name: String,
    /// Name of the pod the flow starts in, or [`EXTERNAL_HOST`] for the external host.
    pub from: String,
    pub target: Target,
    pub timeout: Duration,
    pub expect: Expect,
    /// Where the flow is declared.
    pub location: Location,
    /// `to` as written (`svc/myapp:80`, `node2:30080`, `pod-b:8080`, `10.96.0.2:80`), so
    /// reports can name the target the way the case does.
    pub target_label: String,
    /// The Service port the flow goes to: when `to` names a Service, its ClusterIP and one of
    /// its ports, or a node and one of its NodePorts. `target` then holds the ClusterIP or the
    /// node's address.
    pub service: Option<FlowService>,
    /// How many times the flow is sent (`attempts`, default 1); each attempt is a new
    /// connection (tcp) or a new socket (udp), so each is balanced anew.
    pub attempts: u32,
    /// `expect.sticky`: every attempt must be answered by the same pod.
    pub sticky: bool,
    /// When `to` is a DNS name: the name to resolve, as written (`myapp`, `myapp.other`,
    /// `myapp.default.svc.cluster.local`), without the port. The pod of `from` resolves it with
    /// its resolv.conf; `target` holds the address the plan expects it to resolve to, or
    /// 0.0.0.0 when it cannot tell (several addresses) or the name resolves to none.
    pub dns_name: Option<String>,
    /// When `to` is a DNS name: what the cluster DNS answers it with, as the pod's resolver
    /// asks (search list and ndots), according to the planned records.
    pub resolution: Option<NameResolution>,
    /// `expect.dns`: the answer the name must get.
    pub expect_dns: Option<DnsExpect>,
    /// An `exec` flow: a command run in the pod of `from` instead of traffic to `to`. `target`
    /// is then `Target::Icmp(0.0.0.0)` and `expect` an empty `Reach`, both to be ignored.
    pub exec: Option<ExecPlan>,
    /// `expect.hops`, `expect.reply` and `expect.avoid`: the path the flow must take.
    pub hops: hops::HopsExpect,
}

impl FlowPlan {
    /// Whether every pod of `expect.reach` must answer at least once: with several attempts
    /// and without `sticky`, on a flow that sends traffic. Otherwise each answer must come
    /// from one of them (and, when `sticky`, all from the same one).
    pub fn each_reach_pod_answers(&self) -> bool {
        self.attempts > 1 && !self.sticky && self.sends_traffic()
    }

    /// Whether the flow sends traffic to `target`: not for an `exec` flow, nor for a flow to a
    /// name whose `expect` only has `dns` (its `expect` is a `Reach` naming no pod).
    pub fn sends_traffic(&self) -> bool {
        self.exec.is_none()
            && !matches!(&self.expect, Expect::Reach { pods, .. } if pods.is_empty())
    }
}

/// `expect.dns`: the answer a flow's name must get when the pod of `from` resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsExpect {
    /// The response code, as `dig` prints it: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...
    pub rcode: String,
    /// The answers as written, each with its addresses; the name must resolve to exactly the
    /// addresses of all of them (in any order). Empty with NOERROR: no address at all.
    pub answers: Vec<DnsAnswer>,
}

impl DnsExpect {
    /// Every address the answers stand for, each once, in the order written.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        for addr in self.answers.iter().flat_map(|a| &a.addrs) {
            if !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
        addrs
    }
}

/// One answer of `expect.dns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// As written: `svc/myapp`, `svc/other/myapp`, a pod name or an address.
    pub label: String,
    /// What it stands for: a Service's ClusterIP (a headless Service's ready endpoints'
    /// addresses), a pod's address, or the address itself.
    pub addrs: Vec<Ipv4Addr>,
}

/// An `exec` flow's command and what it must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlan {
    /// The command and its arguments, run in the network namespace of `from` (no shell).
    pub argv: Vec<String>,
    /// The exit status it must end with (`expect.exit`, default 0).
    pub exit: i32,
    /// Lines that must be whole lines of its stdout, in this order (others may come between).
    pub output: Vec<String>,
    /// Regular expressions (`regex` crate syntax) each of which must match a line of stdout.
    pub output_matches: Vec<String>,
}

/// The Service port a flow goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowService {
    /// Index into [`Plan::services`].
    pub service: usize,
    /// Index into that Service's [`ServicePlan::ports`].
    pub port: usize,
    pub namespace: String,
    pub name: String,
    pub via: ServiceVia,
}

/// How a flow enters a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceVia {
    /// Its ClusterIP and port.
    ClusterIp,
    /// A NodePort on this node's address.
    NodePort { node: String },
}

/// Where a flow goes and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddrV4),
    Udp(SocketAddrV4),
    Icmp(Ipv4Addr),
}

impl Target {
    pub fn ip(&self) -> Ipv4Addr {
        match self {
            Target::Tcp(addr) | Target::Udp(addr) => *addr.ip(),
            Target::Icmp(ip) => *ip,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "tcp {addr}"),
            Target::Udp(addr) => write!(f, "udp {addr}"),
            Target::Icmp(ip) => write!(f, "icmp {ip}"),
        }
    }
}

/// What must happen to a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The flow is answered, by one of `pods` (pod names, or [`EXTERNAL_HOST`]).
    Reach {
        pods: Vec<String>,
        seen_source: Option<SeenSource>,
    },
    /// The flow fails this way.
    Fail(FailKind),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Reach { pods, seen_source } => {
                write!(f, "reach {}", pods.join(" or "))?;
                if let Some(source) = seen_source {
                    write!(f, ", seen source {source}")?;
                }
                Ok(())
            }
            Expect::Fail(kind) => write!(f, "fail: {kind}"),
        }
    }
}

/// The source address the answering server must have seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSource {
    /// As written: a pod, a node, `external` or an address.
    pub name: String,
    /// Resolved: a pod's, a node's or the external host's `eth0` address, or the address
    /// itself.
    pub addr: Ipv4Addr,
}

impl fmt::Display for SeenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.addr.to_string() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} ({})", self.name, self.addr)
        }
    }
}

/// How a flow fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// The target answers with a TCP reset or an ICMP port unreachable.
    Refused,
    /// Nothing comes back before the flow's timeout.
    Timeout,
    /// An ICMP host or network unreachable (or a local routing failure) comes back.
    Unreachable,
}

impl fmt::Display for FailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailKind::Refused => "refused",
            FailKind::Timeout => "timeout",
            FailKind::Unreachable => "unreachable",
        })
    }
}

/// Reads, validates and plans the case in `path`.
pub fn load(path: &Path) -> Result<Plan, CaseError> {
    let bytes = fs::read(path).map_err(|source| CaseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => load_str(path, text),
        Err(err) => Err(CaseError::Invalid(vec![Diagnostic {
            file: path.to_path_buf(),
            location: Some(Location::of_byte(&bytes, err.valid_up_to())),
            message: "the file is not valid UTF-8".into(),
        }])),
    }
}

/// Validates and plans a case given as text; `path` names it in diagnostics and the plan.
pub fn load_str(path: &Path, text: &str) -> Result<Plan, CaseError> {
    let case = case::parse(text).map_err(|(location, message)| {
        CaseError::Invalid(vec![Diagnostic {
            file: path.to_path_buf(),
            location,
            message,
        }])
    })?;
    Planner::new(path).plan(&case)
}

/// Every `*.yaml` and `*.yml` file under `root`, recursively, sorted; `root` itself when it is
/// a file. Hidden entries (`.name`) are skipped and symbolic links to directories not followed.
pub fn discover(root: &Path) -> io::Result<Vec<PathBuf>> {
    if fs::metadata(root)?.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    walk(root, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if is_case_file(&path) && (kind.is_file() || path.is_file()) {
            found.push(path);
        }
    }
    Ok(())
}

fn is_case_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
}

// ---------------------------------------------------------------------------------------------
// Validation and planning.

type YamlLocation = serde_saphyr::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlay {
    Vxlan,
    HostGw,
    None,
}

/// Cluster settings; `None` where the written value is invalid (already reported), so that
/// checks depending on it are skipped instead of piling up consequences of one mistake.
struct ClusterParams {
    pod_cidr: Option<Ipv4Net>,
    service_cidr: Option<Ipv4Net>,
    subnet_len: Option<u8>,
    node_cidr: Option<Ipv4Net>,
    overlay: Option<Overlay>,
    mtu: Option<u32>,
    /// The proxy modes the case runs in; empty: no service proxy.
    proxy_modes: Vec<ProxyMode>,
}

struct NodeDraft {
    name: Option<String>,
    at: YamlLocation,
    subnet: Option<Ipv4Net>,
    /// The written `podCIDR`, or the node entry when it was allocated.
    subnet_at: YamlLocation,
    subnet_fixed: bool,
    address: Option<Ipv4Addr>,
    address_at: YamlLocation,
    address_fixed: bool,
}

struct PodDraft {
    name: Option<String>,
    at: YamlLocation,
    namespace: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    /// Listener (container port) names, for Services' named `targetPort`.
    port_names: Vec<(String, Listener)>,
    node: Option<usize>,
    fixed_ip: Option<Ipv4Addr>,
    ip: Option<Ipv4Addr>,
    host_veth: String,
    listeners: Vec<Listener>,
    /// What the pod answers on, for validation: its listeners, and 53/udp and 53/tcp for the
    /// cluster DNS pod (whose DNS server the runtime runs).
    serves: Vec<Listener>,
    /// `hostname` and `subdomain`, when valid.
    hostname: Option<String>,
    subdomain: Option<String>,
}

/// The external host as declared.
struct ExternalDraft {
    /// The underlay gateway; `None` when `nodeCIDR` is invalid (reported).
    addr: Option<Ipv4Addr>,
    listeners: Vec<Listener>,
}

/// What a flow's `to` names.
enum Destination {
    Pod(usize),
    Addr(Ipv4Addr),
    Node(usize),
    Service(usize),
    External,
    /// A DNS name that resolves to several addresses: only pods with one of them answer, and
    /// the plan cannot tell which address the resolver picks.
    Addrs(Vec<Ipv4Addr>),
    /// A DNS name that resolves to no address (or that the planner could not resolve, because
    /// what the records need is invalid: reported).
    Nowhere,
}

/// A flow's `to` when it is a DNS name.
struct NameTarget {
    name: String,
    /// `None` when the records could not be planned (reported).
    resolution: Option<NameResolution>,
}

/// Who can answer a flow: a pod (index into the drafts) or the external host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answerer {
    Pod(usize),
    External,
}

/// Where a flow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin<'a> {
    /// A pod, on this node (`None` when its node is unknown, reported).
    Pod(Option<&'a str>),
    External,
}

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

struct Planner {
    found: Diagnostics,
    file: PathBuf,
}

impl Planner {
    fn new(file: &Path) -> Planner {
        Planner {
            found: Diagnostics::new(file),
            file: file.to_path_buf(),
        }
    }

    fn error(&mut self, at: YamlLocation, message: impl Into<String>) {
        self.found.error(at, message);
    }

    fn plan(mut self, case: &Spanned<Case>) -> Result<Plan, CaseError> {
        let root = case.referenced;
        let case = &case.value;
        let stem = self
            .file
            .file_stem()
            .map_or_else(|| "case".to_owned(), |s| s.to_string_lossy().into_owned());
        let name = match &case.name {
            Some(name) if name.value.trim().is_empty() => {
                self.error(
                    name.referenced,
                    "`name` is empty; leave it out to use the file stem",
                );
                stem.clone()
            }
            Some(name) => name.value.clone(),
            None => stem.clone(),
        };

        let spec = case
            .cluster
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default();
        // The cluster DNS brings the kube-dns Service along.
        let has_services =
            case.services.as_ref().is_some_and(|s| !s.is_empty()) || case.dns.is_some();
        let cluster = self.cluster(&spec, root, has_services);
        let external = case
            .external_host()
            .map(|spec| self.external(&spec.value, &cluster));
        let nodes = self.nodes(case, &cluster, root);
        let mut pods = self.pods(case.pods.as_deref().unwrap_or_default(), &nodes);
        let mut dns = case
            .dns
            .as_ref()
            .map(|spec| self.dns(spec, case, &cluster, &nodes));
        let mut service_specs = case.services.clone().unwrap_or_default();
        if let Some(dns) = dns.as_mut() {
            // After the case's own pods and Services, so their addresses do not shift.
            if let Some(node) = dns.node
                && dns.names_ok
            {
                dns.pod = Some(pods.len());
                pods.push(dns::dns_pod(node, dns.at));
            }
            if let Some(cluster_ip) = &dns.cluster_ip
                && dns.names_ok
            {
                dns.service = Some(service_specs.len());
                service_specs.push(dns::dns_service(cluster_ip, dns.at));
            }
        }
        self.allocate(&mut pods, &nodes);
        let services = self.services(&service_specs, &cluster, &nodes, &pods);
        if let Some(dns) = dns.as_mut() {
            self.plan_records(dns, &pods, &services);
        }
        let pod_index: HashMap<&str, usize> = pods
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.name.as_deref()?, i)))
            .collect();
        // Built before the flows are checked, so their hops are checked against the real
        // interfaces and addresses; `None` when something it needs is invalid (reported).
        let topology = build_topology(&cluster, &nodes, &pods, external.as_ref(), dns.as_ref());
        let refs = Refs {
            pod_index: &pod_index,
            nodes: &nodes,
            pods: &pods,
            services: &services,
            external: external.as_ref(),
            ip_masq: matches!(cluster.overlay, Some(Overlay::Vxlan | Overlay::HostGw)),
            dns: dns.as_ref(),
            topology: topology.as_ref(),
            proxy_modes: &cluster.proxy_modes,
        };
        let flows = self.flows(case.flows.as_deref().unwrap_or_default(), &refs);

        if !self.found.is_empty() {
            return Err(CaseError::Invalid(self.found.into_sorted()));
        }
        let built = topology.and_then(|topology| {
            let (pod_cidr, service_cidr) = (cluster.pod_cidr?, cluster.service_cidr?);
            let services: Vec<ServicePlan> = services.into_iter().map(|s| s.plan).collect();
            let proxy = proxy_tables(&topology, pod_cidr, service_cidr, &services);
            Some((topology, service_cidr, services, proxy))
        });
        match built {
            Some((topology, service_cidr, services, proxy)) => Ok(Plan {
                name,
                file: self.file,
                stem,
                topology,
                flows,
                service_cidr,
                services,
                proxy,
                proxy_modes: cluster.proxy_modes.clone(),
            }),
            None => {
                // Unreachable when validation is complete; reported rather than panicking.
                self.error(
                    root,
                    "internal error: the case passed validation but could not be planned",
                );
                Err(CaseError::Invalid(self.found.into_sorted()))
            }
        }
    }

    // --- cluster ---------------------------------------------------------------------------

    fn cluster(
        &mut self,
        spec: &ClusterSpec,
        root: YamlLocation,
        has_services: bool,
    ) -> ClusterParams {
        let pod_cidr = match &spec.pod_cidr {
            Some(v) => self.cidr("podCIDR", v),
            None => Some(DEFAULT_POD_CIDR),
        };
        let node_cidr = match &spec.node_cidr {
            Some(v) => self.cidr("nodeCIDR", v).filter(|cidr| {
                let ok = cidr.prefix_len() <= 30;
                if !ok {
                    self.error(
                        v.referenced,
                        format!("nodeCIDR {cidr} is too small: a node needs an address that is neither the network nor the broadcast address (use /30 or shorter)"),
                    );
                }
                ok
            }),
            None => Some(DEFAULT_NODE_CIDR),
        };

        let subnet_len = match &spec.subnet_len {
            Some(v) => self.number("subnetLen", v).and_then(|n| {
                if n > 30 {
                    self.error(
                        v.referenced,
                        format!("subnetLen {n} is too long: at most 30, so a node subnet holds its gateway and a pod"),
                    );
                    None
                } else {
                    u8::try_from(n).ok()
                }
            }),
            None => Some(DEFAULT_SUBNET_LEN),
        };
        let subnet_len = match (pod_cidr, subnet_len) {
            (Some(pods), Some(len)) if len <= pods.prefix_len() => {
                let at = spec
                    .subnet_len
                    .as_ref()
                    .or(spec.pod_cidr.as_ref())
                    .map_or(root, |v| v.referenced);
                self.error(
                    at,
                    format!("subnetLen {len} must be longer than the podCIDR prefix /{} (podCIDR {pods} is split into one subnet per node)", pods.prefix_len()),
                );
                None
            }
            (_, len) => len,
        };

        if let (Some(pods), Some(nodes)) = (pod_cidr, node_cidr)
            && (pods.contains(&nodes.network()) || nodes.contains(&pods.network()))
        {
            let at = spec
                .pod_cidr
                .as_ref()
                .or(spec.node_cidr.as_ref())
                .map_or(root, |v| v.referenced);
            self.error(at, format!("podCIDR {pods} overlaps nodeCIDR {nodes}"));
        }

        let overlay = match &spec.overlay {
            Some(v) => match v.value.as_str() {
                "vxlan" => Some(Overlay::Vxlan),
                "host-gw" => Some(Overlay::HostGw),
                "none" => Some(Overlay::None),
                other => {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown overlay {}: expected vxlan, host-gw or none",
                            quoted(other)
                        ),
                    );
                    None
                }
            },
            None => Some(Overlay::Vxlan),
        };

        let mtu = match &spec.mtu {
            Some(v) => self.number("mtu", v).and_then(|n| {
                let mtu = u32::try_from(n).ok().filter(|m| MTU_RANGE.contains(m));
                match mtu {
                    None => {
                        self.error(
                            v.referenced,
                            format!("mtu {n} is out of range {}..={}", MTU_RANGE.start(), MTU_RANGE.end()),
                        );
                        None
                    }
                    Some(m) if overlay == Some(Overlay::Vxlan) && m - VXLAN_OVERHEAD < *MTU_RANGE.start() => {
                        self.error(
                            v.referenced,
                            format!(
                                "mtu {m} is too small for vxlan: pods would get {m} - {VXLAN_OVERHEAD} = {}, below {}; use at least {}",
                                m - VXLAN_OVERHEAD,
                                MTU_RANGE.start(),
                                MTU_RANGE.start() + VXLAN_OVERHEAD
                            ),
                        );
                        None
                    }
                    Some(m) => Some(m),
                }
            }),
            None => Some(DEFAULT_MTU),
        };

        let service_cidr = self.service_cidr(spec, root, pod_cidr, node_cidr, has_services);
        let proxy_modes = self.proxy_modes(spec, has_services);

        ClusterParams {
            pod_cidr,
            service_cidr,
            subnet_len,
            node_cidr,
            overlay,
            mtu,
            proxy_modes,
        }
    }

    /// `proxy`: one mode or a list; `none` alone means no proxy. Without it, a case with
    /// Services runs in both kube-proxy modes and a case without runs with no proxy.
    fn proxy_modes(&mut self, spec: &ClusterSpec, has_services: bool) -> Vec<ProxyMode> {
        let Some(written) = &spec.proxy else {
            return if has_services {
                ProxyMode::ALL.to_vec()
            } else {
                Vec::new()
            };
        };
        let names = PodNames::names(written);
        let mut modes = Vec::new();
        for name in &names {
            match name.value.as_str() {
                "none" if names.len() == 1 => {}
                "none" => self.error(
                    name.referenced,
                    "proxy `none` cannot be listed with other modes",
                ),
                other => match ProxyMode::parse(other) {
                    Some(m) if modes.contains(&m) => self.error(
                        name.referenced,
                        format!("proxy mode {} is listed twice", quoted(other)),
                    ),
                    Some(m) => modes.push(m),
                    None => self.error(
                        name.referenced,
                        format!(
                            "unknown proxy mode {}: expected iptables, nftables or none",
                            quoted(other)
                        ),
                    ),
                },
            }
        }
        if names.is_empty() {
            self.error(
                written.referenced,
                "`proxy` lists no mode: write none for no proxy",
            );
        }
        modes
    }

    /// The Service network: at most a /12 (as kube-apiserver requires), not overlapping the
    /// pod or node networks. The default one is only checked for overlaps when the case has
    /// Services, so that a case without any may use, say, podCIDR 10.100.0.0/16.
    fn service_cidr(
        &mut self,
        spec: &ClusterSpec,
        root: YamlLocation,
        pod_cidr: Option<Ipv4Net>,
        node_cidr: Option<Ipv4Net>,
        has_services: bool,
    ) -> Option<Ipv4Net> {
        let cidr = match &spec.service_cidr {
            None => DEFAULT_SERVICE_CIDR,
            Some(v) => {
                let cidr = self.cidr("serviceCIDR", v)?;
                if cidr.prefix_len() < 12 {
                    self.error(
                        v.referenced,
                        format!(
                            "serviceCIDR {cidr} is too large: Kubernetes accepts at most a /12"
                        ),
                    );
                    return None;
                }
                if cidr.prefix_len() > 30 {
                    self.error(
                        v.referenced,
                        format!("serviceCIDR {cidr} is too small: use /30 or shorter, so a Service can get an address (the first host is never allocated)"),
                    );
                    return None;
                }
                cidr
            }
        };
        if spec.service_cidr.is_none() && !has_services {
            return Some(cidr);
        }
        let overlaps =
            |other: Ipv4Net| cidr.contains(&other.network()) || other.contains(&cidr.network());
        let mut ok = true;
        for (what, other, other_at) in [
            ("podCIDR", pod_cidr, &spec.pod_cidr),
            ("nodeCIDR", node_cidr, &spec.node_cidr),
        ] {
            if let Some(other) = other
                && overlaps(other)
            {
                let at = spec
                    .service_cidr
                    .as_ref()
                    .or(other_at.as_ref())
                    .map_or(root, |v| v.referenced);
                let message = if spec.service_cidr.is_some() {
                    format!("serviceCIDR {cidr} overlaps {what} {other}")
                } else {
                    format!(
                        "the default serviceCIDR {cidr} overlaps {what} {other}: set serviceCIDR"
                    )
                };
                self.error(at, message);
                ok = false;
            }
        }
        ok.then_some(cidr)
    }

    // --- the external host -----------------------------------------------------------------

    /// The external host: at the underlay gateway, with its listeners.
    fn external(&mut self, spec: &ExternalSpec, cluster: &ClusterParams) -> ExternalDraft {
        let (listeners, _) = self.listeners(spec.listen.as_deref().unwrap_or_default());
        ExternalDraft {
            addr: cluster.node_cidr.map(underlay_gateway),
            listeners,
        }
    }

    // --- nodes -----------------------------------------------------------------------------

    fn nodes(
        &mut self,
        case: &Case,
        cluster: &ClusterParams,
        root: YamlLocation,
    ) -> Vec<NodeDraft> {
        let entries = match &case.nodes {
            None => {
                self.error(root, "`nodes` is missing: a case needs at least one node");
                return Vec::new();
            }
            Some(entries) if entries.value.is_empty() => {
                self.error(
                    entries.referenced,
                    "`nodes` is empty: a case needs at least one node",
                );
                return Vec::new();
            }
            Some(entries) => &entries.value,
        };

        let mut drafts = Vec::with_capacity(entries.len());
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            // Node i (1-based) takes the i-th subnet and host i+1 of the underlay.
            let ordinal = index as u64 + 1;
            let spec = NodeEntry::spec(entry);
            let name = match &spec.name {
                None => {
                    self.error(entry.referenced, "node has no `name`");
                    None
                }
                Some(name) => {
                    self.node_name(name, &mut names);
                    Some(name.value.clone())
                }
            };
            let label = name.clone().unwrap_or_else(|| format!("node {ordinal}"));

            let (subnet, subnet_at, subnet_fixed) = match &spec.pod_cidr {
                Some(v) => (self.node_subnet(v, cluster), v.referenced, true),
                None => (
                    self.nth_subnet(ordinal, &label, cluster, entry.referenced),
                    entry.referenced,
                    false,
                ),
            };
            let (address, address_at, address_fixed) = match &spec.address {
                Some(v) => (self.node_address(v, cluster), v.referenced, true),
                None => (
                    self.nth_address(ordinal, &label, cluster, entry.referenced),
                    entry.referenced,
                    false,
                ),
            };
            drafts.push(NodeDraft {
                name,
                at: entry.referenced,
                subnet,
                subnet_at,
                subnet_fixed,
                address,
                address_at,
                address_fixed,
            });
        }

        self.node_collisions(&drafts);
        drafts
    }

    fn node_name(&mut self, name: &Spanned<String>, seen: &mut HashMap<String, YamlLocation>) {
        let text = &name.value;
        if let Some(problem) = dns_label_problem(text, MAX_NODE_NAME) {
            self.error(
                name.referenced,
                format!("node name {} {problem} (a node name also names its port on the underlay bridge)", quoted(text)),
            );
        } else if text == UNDERLAY_NETNS {
            self.error(
                name.referenced,
                format!(
                    "node name {} is reserved for the underlay network namespace",
                    quoted(text)
                ),
            );
        } else if text == EXTERNAL_HOST {
            self.error(
                name.referenced,
                format!(
                    "node name {} is reserved for the external host (`external:`), whether the case declares it or not",
                    quoted(text)
                ),
            );
        }
        if let Some(first) = seen.get(text) {
            self.error(
                name.referenced,
                format!(
                    "duplicate node name {}, first declared at {}",
                    quoted(text),
                    at_text(*first)
                ),
            );
        } else {
            seen.insert(text.clone(), name.referenced);
        }
    }

    fn node_subnet(&mut self, value: &Spanned<String>, cluster: &ClusterParams) -> Option<Ipv4Net> {
        let subnet = self.cidr("node podCIDR", value)?;
        if let Some(pods) = cluster.pod_cidr
            && !(pods.contains(&subnet.network()) && subnet.prefix_len() >= pods.prefix_len())
        {
            self.error(
                value.referenced,
                format!("node podCIDR {subnet} is outside the cluster podCIDR {pods}"),
            );
            return None;
        }
        if let Some(len) = cluster.subnet_len
            && subnet.prefix_len() != len
        {
            self.error(
                value.referenced,
                format!(
                    "node podCIDR {subnet} is a /{}, but subnetLen is {len}",
                    subnet.prefix_len()
                ),
            );
            return None;
        }
        Some(subnet)
    }

    fn nth_subnet(
        &mut self,
        ordinal: u64,
        label: &str,
        cluster: &ClusterParams,
        at: YamlLocation,
    ) -> Option<Ipv4Net> {
        let (pods, len) = (cluster.pod_cidr?, cluster.subnet_len?);
        let count = 1u64 << (len - pods.prefix_len());
        let size = 1u64 << (32 - len);
        if ordinal >= count {
            self.error(
                at,
                format!(
                    "podCIDR {pods} has no /{len} subnet left for {label}: it holds {count}, the first is never allocated, and node i takes the i-th; give the node a podCIDR or widen the cluster podCIDR"
                ),
            );
            return None;
        }
        let network = u64::from(u32::from(pods.network())) + ordinal * size;
        let network = Ipv4Addr::from(u32::try_from(network).ok()?);
        Ipv4Net::new(network, len).ok()
    }

    fn node_address(
        &mut self,
        value: &Spanned<String>,
        cluster: &ClusterParams,
    ) -> Option<Ipv4Addr> {
        let addr = self.address("node address", value)?;
        let nodes = cluster.node_cidr?;
        let problem = if !nodes.contains(&addr) {
            "is outside"
        } else if addr == nodes.network() {
            "is the network address of"
        } else if addr == nodes.broadcast() {
            "is the broadcast address of"
        } else if addr == underlay_gateway(nodes) {
            "is the underlay gateway (the nodes' default route) of"
        } else {
            return Some(addr);
        };
        self.error(
            value.referenced,
            format!("node address {addr} {problem} nodeCIDR {nodes}"),
        );
        None
    }

    fn nth_address(
        &mut self,
        ordinal: u64,
        label: &str,
        cluster: &ClusterParams,
        at: YamlLocation,
    ) -> Option<Ipv4Addr> {
        let nodes = cluster.node_cidr?;
        let addr = u64::from(u32::from(nodes.network())) + ordinal + 1;
        if addr >= u64::from(u32::from(nodes.broadcast())) {
            self.error(
                at,
                format!("nodeCIDR {nodes} has no address left for {label} (node i gets host i+1); give the node an address or widen nodeCIDR"),
            );
            return None;
        }
        Some(Ipv4Addr::from(u32::try_from(addr).ok()?))
    }

    /// Two nodes with one subnet or one address. Reported at the value that was written when
    /// only one of the two was, since that is the one to change; otherwise at the later node.
    fn node_collisions(&mut self, drafts: &[NodeDraft]) {
        let mut subnets: HashMap<Ipv4Net, usize> = HashMap::new();
        let mut addresses: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (index, node) in drafts.iter().enumerate() {
            if let Some(subnet) = node.subnet {
                // All subnets have subnetLen's prefix by now, so overlapping means equal.
                match subnets.get(&subnet) {
                    Some(&first) => {
                        let earlier = &drafts[first];
                        let (at, other) = if earlier.subnet_fixed && !node.subnet_fixed {
                            (earlier.subnet_at, node)
                        } else {
                            (node.subnet_at, earlier)
                        };
                        self.error(
                            at,
                            format!(
                                "pod subnet {subnet} is also {}'s (node i gets the i-th subnet of podCIDR unless it sets podCIDR)",
                                node_label(other)
                            ),
                        );
                    }
                    None => {
                        subnets.insert(subnet, index);
                    }
                }
            }
            if let Some(address) = node.address {
                match addresses.get(&address) {
                    Some(&first) => {
                        let earlier = &drafts[first];
                        let (at, other) = if earlier.address_fixed && !node.address_fixed {
                            (earlier.address_at, node)
                        } else {
                            (node.address_at, earlier)
                        };
                        self.error(
                            at,
                            format!(
                                "duplicate node address {address}: {} has it too (node i gets host i+1 of nodeCIDR unless it sets address)",
                                node_label(other)
                            ),
                        );
                    }
                    None => {
                        addresses.insert(address, index);
                    }
                }
            }
        }
    }

    // --- pods ------------------------------------------------------------------------------

    fn pods(&mut self, specs: &[Spanned<PodSpec>], nodes: &[NodeDraft]) -> Vec<PodDraft> {
        let node_index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.name.as_deref()?, i)))
            .collect();
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, String> = HashMap::new();
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
                        self.error(
                            ns.referenced,
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

            let (listeners, port_names) =
                self.listeners(spec.listen.as_deref().unwrap_or_default());
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
                ip: None,
                host_veth: String::new(),
                serves: listeners.clone(),
                listeners,
                hostname,
                subdomain,
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
            self.error(name.referenced, format!("pod name {shown} {problem}"));
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
    fn listeners(
        &mut self,
        entries: &[Spanned<ListenEntry>],
    ) -> (Vec<Listener>, Vec<(String, Listener)>) {
        let mut listeners: Vec<Listener> = Vec::with_capacity(entries.len());
        let mut names: Vec<(String, Listener)> = Vec::new();
        for entry in entries {
            let (listener, name) = match &entry.value {
                ListenEntry::Text(text) => (
                    self.listener(&Spanned::new(text.clone(), entry.referenced, entry.defined)),
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
        (listeners, names)
    }

    /// `{ port: 8080, protocol: tcp, name: http }`; the name is checked here and returned
    /// only when valid.
    fn listener_spec(
        &mut self,
        spec: &ListenSpec,
        at: YamlLocation,
    ) -> (Option<Listener>, Option<Spanned<String>>) {
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
        let listener = match (port, proto) {
            (Some(port), Some(proto)) => Some(Listener { port, proto }),
            _ => None,
        };
        (listener, name)
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
    fn allocate(&mut self, pods: &mut [PodDraft], nodes: &[NodeDraft]) {
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
            }

            let Some(subnet) = node.subnet else {
                continue;
            };
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

    // --- flows -----------------------------------------------------------------------------

    fn flows(&mut self, specs: &[Spanned<FlowSpec>], refs: &Refs<'_>) -> Vec<FlowPlan> {
        let mut names: HashMap<String, YamlLocation> = HashMap::new();
        let mut plans = Vec::with_capacity(specs.len());
        for entry in specs {
            if let Some(plan) = self.flow(entry, refs, &mut names) {
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
            service: service.map(|hit| {
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

    /// A pod or the external host named by a flow (`from`, `reach`); `None` (reported) when
    /// there is no such pod, or the case declares no external host.
    fn answerer_ref(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        refs: &Refs<'_>,
    ) -> Option<Answerer> {
        if value.value == EXTERNAL_HOST {
            return self
                .external_ref(value, field, refs)
                .map(|_| Answerer::External);
        }
        if let Some(&p) = refs.pod_index.get(value.value.as_str()) {
            return Some(Answerer::Pod(p));
        }
        let known = known_names(refs.pods.iter().filter_map(|p| p.name.as_deref()));
        let or_external = if refs.external.is_some() {
            "; or external, the external host"
        } else {
            ""
        };
        self.error(
            value.referenced,
            format!(
                "unknown pod {} in `{field}` (pods: {known}{or_external})",
                quoted(&value.value)
            ),
        );
        None
    }

    /// `external` in a flow: the external host, or an error (located at `value`) when the case
    /// declares none.
    fn external_ref<'r>(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        refs: &Refs<'r>,
    ) -> Option<&'r ExternalDraft> {
        if refs.external.is_none() {
            self.error(
                value.referenced,
                format!(
                    "`{field}` names the external host, but the case declares no external host: add `external: {{}}` at the top level (with `listen` for the ports it serves)"
                ),
            );
        }
        refs.external
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

    /// `name` or `namespace/name` after `svc/`, in `field` (`to`, or a hop's address).
    fn service_ref(
        &mut self,
        to: &Spanned<String>,
        field: &str,
        text: &str,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<Destination> {
        let (namespace, name) = match text.split_once('/') {
            Some((namespace, name)) => (namespace, name),
            // In the namespace of `from`, as a bare Service name resolves in DNS.
            None => (from_ns?, text),
        };
        if let Some(s) = refs
            .services
            .iter()
            .position(|s| s.plan.namespace == namespace && s.plan.name == name)
        {
            return Some(Destination::Service(s));
        }
        let ids: Vec<String> = refs
            .services
            .iter()
            .filter(|s| !s.plan.name.is_empty())
            .map(|s| s.plan.id())
            .collect();
        let known = known_names(ids.iter().map(String::as_str));
        self.error(
            to.referenced,
            format!(
                "unknown Service {} in `{field}` (Services: {known}); write svc/NAME:PORT for a Service in the namespace of `from`, or svc/NAMESPACE/NAME:PORT",
                quoted(&format!("{namespace}/{name}"))
            ),
        );
        None
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
    ///   a pod on another node when flannel masquerades pod traffic leaving the pod network
    ///   (its `--ip-masq`, with the vxlan and host-gw overlays): it then arrives from that
    ///   node's address. A pod's traffic to its own node's NodePort is pod traffic, which
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
                    && refs.ip_masq
                    && from_node != node =>
            {
                (
                    node.as_str(),
                    format!(
                        "{} has externalTrafficPolicy Local, and traffic from {from_node} (the node of `from`) to {node}'s NodePort comes from outside the cluster (flannel masquerades it to {from_node}'s address): only its endpoints on {node} answer",
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

    // --- scalars ---------------------------------------------------------------------------

    fn cidr(&mut self, what: &str, value: &Spanned<String>) -> Option<Ipv4Net> {
        let text = value.value.as_str();
        match text.parse::<Ipv4Net>() {
            Ok(cidr) if cidr.addr() != cidr.network() => {
                self.error(
                    value.referenced,
                    format!(
                        "{what} {text} has host bits set: did you mean {}?",
                        cidr.trunc()
                    ),
                );
                None
            }
            Ok(cidr) => Some(cidr),
            Err(_) => {
                self.error(
                    value.referenced,
                    format!(
                        "{what} {} is not an IPv4 CIDR (like 10.244.0.0/16)",
                        quoted(text)
                    ),
                );
                None
            }
        }
    }

    fn address(&mut self, what: &str, value: &Spanned<String>) -> Option<Ipv4Addr> {
        let text = value.value.as_str();
        match text.parse::<Ipv4Addr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let hint = if text.contains('/') {
                    " (an address, without a prefix length)"
                } else {
                    " (like 10.244.1.5)"
                };
                self.error(
                    value.referenced,
                    format!("{what} {} is not an IPv4 address{hint}", quoted(text)),
                );
                None
            }
        }
    }

    fn number(&mut self, what: &str, value: &Spanned<String>) -> Option<u64> {
        let text = value.value.as_str();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // All digits but too big for u64: out of every range we have.
            return Some(text.parse().unwrap_or(u64::MAX));
        }
        self.error(
            value.referenced,
            format!("{what} {} is not a whole number", quoted(text)),
        );
        None
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

/// What flows may refer to.
struct Refs<'a> {
    pod_index: &'a HashMap<&'a str, usize>,
    nodes: &'a [NodeDraft],
    pods: &'a [PodDraft],
    services: &'a [services::ServiceDraft],
    external: Option<&'a ExternalDraft>,
    /// Whether flannel masquerades pod traffic leaving the pod network (vxlan and host-gw).
    ip_masq: bool,
    /// The cluster DNS, when the case declares one.
    dns: Option<&'a dns::DnsDraft>,
    /// The cluster, for hops; `None` when something it needs is invalid (reported).
    topology: Option<&'a Topology>,
    /// The proxy modes the case runs in (empty: none).
    proxy_modes: &'a [ProxyMode],
}

impl Refs<'_> {
    /// What a pod or the external host listens on.
    fn listeners(&self, answerer: Answerer) -> &[Listener] {
        match answerer {
            Answerer::Pod(p) => &self.pods[p].serves,
            Answerer::External => self.external.map_or(&[], |e| &e.listeners),
        }
    }

    /// The name of a pod or of the external host.
    fn name(&self, answerer: Answerer) -> &str {
        match answerer {
            Answerer::Pod(p) => self.pods[p].name.as_deref().unwrap_or_default(),
            Answerer::External => EXTERNAL_HOST,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building the topology from validated drafts.

/// The underlay's gateway, the first host of nodeCIDR (kind's docker network gateway): every
/// node's default route points at it.
pub fn underlay_gateway(node_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(node_cidr.network()).saturating_add(1))
}

/// What a node's kernel is set to: forwarding on; with a service proxy, bridged traffic through
/// netfilter too (`br_netfilter`, a kubeadm prerequisite), so the proxy's rules see traffic
/// between pods of one node.
fn node_sysctls(cluster: &ClusterParams) -> Vec<(String, String)> {
    let mut sysctls = vec![("net/ipv4/ip_forward".to_owned(), "1".to_owned())];
    if !cluster.proxy_modes.is_empty() {
        sysctls.push((
            "net/bridge/bridge-nf-call-iptables".to_owned(),
            "1".to_owned(),
        ));
    }
    sysctls
}

fn build_topology(
    cluster: &ClusterParams,
    nodes: &[NodeDraft],
    pods: &[PodDraft],
    external: Option<&ExternalDraft>,
    dns: Option<&dns::DnsDraft>,
) -> Option<Topology> {
    let node_cidr = cluster.node_cidr?;
    let subnet_len = cluster.subnet_len?;
    let overlay = cluster.overlay?;
    let mtu = cluster.mtu?;
    let pod_mtu = match overlay {
        Overlay::Vxlan => mtu - VXLAN_OVERHEAD,
        Overlay::HostGw | Overlay::None => mtu,
    };

    // (name, subnet, address) of every node, all known after validation.
    let resolved: Vec<(String, Ipv4Net, Ipv4Addr)> = nodes
        .iter()
        .map(|n| Some((n.name.clone()?, n.subnet?, n.address?)))
        .collect::<Option<_>>()?;

    let mut topo_nodes = Vec::with_capacity(resolved.len());
    for (index, (name, subnet, address)) in resolved.iter().enumerate() {
        let gw = gateway(*subnet);
        let peers = resolved
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, peer)| peer);
        let mut routes = Vec::new();
        let mut neighbours = Vec::new();
        let mut fdb = Vec::new();
        let vxlan = match overlay {
            Overlay::Vxlan => {
                for (_, peer_subnet, peer_address) in peers {
                    let peer_vtep = Mac::from_ip(VTEP_MAC, *peer_address);
                    neighbours.push(Neighbour {
                        dev: VXLAN_DEV.to_owned(),
                        ip: peer_subnet.network(),
                        mac: peer_vtep,
                    });
                    fdb.push(FdbEntry {
                        dev: VXLAN_DEV.to_owned(),
                        mac: peer_vtep,
                        dst: *peer_address,
                    });
                    routes.push(Route {
                        dst: *peer_subnet,
                        via: Some(peer_subnet.network()),
                        dev: VXLAN_DEV.to_owned(),
                        onlink: true,
                    });
                }
                Some(Vxlan {
                    name: VXLAN_DEV.to_owned(),
                    vni: VXLAN_VNI,
                    port: VXLAN_PORT,
                    mac: Mac::from_ip(VTEP_MAC, *address),
                    addr: Ipv4Net::new(subnet.network(), 32).ok()?,
                    mtu: mtu - VXLAN_OVERHEAD,
                    local: *address,
                    underlay_dev: ETH0.to_owned(),
                    learning: false,
                })
            }
            Overlay::HostGw => {
                for (_, peer_subnet, peer_address) in peers {
                    routes.push(Route {
                        dst: *peer_subnet,
                        via: Some(*peer_address),
                        dev: ETH0.to_owned(),
                        onlink: false,
                    });
                }
                None
            }
            Overlay::None => None,
        };
        // Every node has a default route, as a real one does: pod traffic nothing else claims
        // (a Service port no rule matches, a peer subnet without an overlay) leaves by it.
        let default_route = Route {
            dst: Ipv4Net::default(),
            via: Some(underlay_gateway(node_cidr)),
            dev: ETH0.to_owned(),
            onlink: false,
        };
        topo_nodes.push(Node {
            name: name.clone(),
            eth0: Iface {
                name: ETH0.to_owned(),
                mac: Mac::from_ip(NODE_MAC, *address),
                addr: Ipv4Net::new(*address, node_cidr.prefix_len()).ok()?,
                mtu,
            },
            underlay_port: name.clone(),
            pod_cidr: *subnet,
            bridge: Iface {
                name: POD_BRIDGE.to_owned(),
                mac: Mac::from_ip(POD_MAC, gw),
                addr: Ipv4Net::new(gw, subnet.prefix_len()).ok()?,
                mtu: pod_mtu,
            },
            network: NetworkLayout {
                vxlan,
                routes,
                neighbours,
                fdb,
                // flannel's backends run with --ip-masq (its default manifest); no overlay, no
                // flannel.
                masquerade: match overlay {
                    Overlay::Vxlan | Overlay::HostGw => Some(cluster.pod_cidr?),
                    Overlay::None => None,
                },
            },
            routes: vec![default_route],
            sysctls: node_sysctls(cluster),
        });
    }

    // With a cluster DNS, its records, every pod's nameserver and the cluster domain.
    let dns = match dns {
        Some(dns) => Some((
            dns,
            dns.records.clone()?,
            dns.nameserver?,
            dns.zone.clone()?,
        )),
        None => None,
    };
    let mut topo_pods = Vec::with_capacity(pods.len());
    for (index, pod) in pods.iter().enumerate() {
        let node = pod.node?;
        let ip = pod.ip?;
        let name = pod.name.clone()?;
        let (_, subnet, _) = resolved.get(node)?;
        // The kubelet writes both files; the DNS pod itself has `dnsPolicy: Default` (kubeadm's
        // CoreDNS manifest): the node's resolv.conf, which podpath leaves alone.
        let (resolv_conf, hosts) = match &dns {
            Some((draft, _, nameserver, zone)) => (
                (draft.pod != Some(index)).then(|| resolv_conf(*nameserver, &pod.namespace, zone)),
                Some(hosts_file(
                    ip,
                    &name,
                    pod.hostname.as_deref(),
                    pod.subdomain.as_deref(),
                    &pod.namespace,
                    zone,
                )),
            ),
            None => (None, None),
        };
        topo_pods.push(Pod {
            name,
            namespace: pod.namespace.clone(),
            node,
            eth0: Iface {
                name: ETH0.to_owned(),
                mac: Mac::from_ip(POD_MAC, ip),
                addr: Ipv4Net::new(ip, subnet_len).ok()?,
                mtu: pod_mtu,
            },
            host_veth: pod.host_veth.clone(),
            routes: vec![Route {
                dst: Ipv4Net::default(),
                via: Some(gateway(*subnet)),
                dev: ETH0.to_owned(),
                onlink: false,
            }],
            listeners: pod.listeners.clone(),
            resolv_conf,
            hosts,
        });
    }

    Some(Topology {
        cluster_cidr: cluster.pod_cidr?,
        underlay: Underlay {
            netns: UNDERLAY_NETNS.to_owned(),
            bridge: UNDERLAY_BRIDGE.to_owned(),
            cidr: node_cidr,
            mtu,
        },
        nodes: topo_nodes,
        pods: topo_pods,
        external: match external {
            Some(e) => Some(external_host(e, node_cidr, mtu)?),
            None => None,
        },
        dns: dns.map(|(draft, records, _, _)| ClusterDnsServer {
            pod: draft
                .pod
                .and_then(|p| pods.get(p)?.name.clone())
                .unwrap_or_else(|| DNS_POD.to_owned()),
            records,
        }),
    })
}

/// The external host: on the underlay at its gateway (kind's docker host), with a
/// Docker-style MAC like the nodes'.
fn external_host(draft: &ExternalDraft, node_cidr: Ipv4Net, mtu: u32) -> Option<External> {
    let addr = draft.addr?;
    Some(External {
        name: EXTERNAL_HOST.to_owned(),
        eth0: Iface {
            name: ETH0.to_owned(),
            mac: Mac::from_ip(NODE_MAC, addr),
            addr: Ipv4Net::new(addr, node_cidr.prefix_len()).ok()?,
            mtu,
        },
        underlay_port: EXTERNAL_HOST.to_owned(),
        listeners: draft.listeners.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Small pure helpers.

/// The first host of a subnet: the node's `cni0` address, the pods' gateway.
fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// FNV-1a, 32 bits: small, stable across releases and platforms (unlike `DefaultHasher`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `veth` and 8 hex digits of the hash of `namespace/name`; on a clash with a name already
/// taken in the node, of `namespace/name#1`, `#2`, and so on.
fn host_veth_name(key: &str, taken: &HashSet<String>) -> String {
    let mut name = format!("veth{:08x}", fnv1a32(key.as_bytes()));
    let mut counter = 0u32;
    while taken.contains(&name) {
        counter += 1;
        name = format!("veth{:08x}", fnv1a32(format!("{key}#{counter}").as_bytes()));
    }
    name
}

/// Why `name` is not a DNS-1123 label of at most `max` characters, if it is not.
fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > max {
        return Some(format!("is {length} characters long, more than {max}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("is not a DNS-1123 label: use lowercase letters, digits and '-'".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(
            "is not a DNS-1123 label: it must start and end with a letter or digit".to_owned(),
        );
    }
    None
}

/// Why `name` is not an IANA service name (what Kubernetes requires of container port names
/// and of a `targetPort` given by name), if it is not: at most 15 lowercase letters, digits and
/// '-', at least one letter, no '-' at either end or twice in a row.
fn iana_svc_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > 15 {
        return Some(format!(
            "is {length} characters long, more than 15 (a port name is an IANA service name)"
        ));
    }
    let rule = "is not a port name: use lowercase letters, digits and '-' (at least one letter, no '-' at either end or twice in a row)";
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || !name.bytes().any(|b| b.is_ascii_lowercase())
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Some(rule.to_owned());
    }
    None
}

/// Flow names end up in test names and report file names: keep them plain.
fn flow_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > MAX_NAME {
        return Some(format!("is {length} characters long, more than {MAX_NAME}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("may only hold letters, digits, '-', '_' and '.'".to_owned());
    }
    None
}

/// A port number `1..=65535`.
fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a port number".to_owned());
    }
    match text.parse::<u64>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err("is out of range 1..=65535".to_owned()),
    }
}

/// `500ms` or `2s`: more than zero, at most [`MAX_TIMEOUT`].
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (digits, millis_per_unit) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else {
        return Err("is not a duration: write milliseconds (500ms) or seconds (2s)".to_owned());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a duration: write milliseconds (500ms) or seconds (2s)".to_owned());
    }
    let millis = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit));
    match millis {
        Some(0) => Err("must be more than zero".to_owned()),
        Some(ms) if Duration::from_millis(ms) <= MAX_TIMEOUT => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "is longer than the maximum, {}s",
            MAX_TIMEOUT.as_secs()
        )),
    }
}

/// A value from the file, quoted for a message: escaped, and cut when very long.
fn quoted(text: &str) -> String {
    const LIMIT: usize = 64;
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > LIMIT {
        format!("`{}...`", escaped.chars().take(LIMIT).collect::<String>())
    } else {
        format!("`{escaped}`")
    }
}

/// A list of known names for "unknown ..." messages; long lists are cut.
fn known_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    const LIMIT: usize = 10;
    let mut names: Vec<&str> = names.collect();
    // Keep the first of duplicates (already reported), in declared order.
    let mut seen = HashSet::new();
    names.retain(|name| seen.insert(*name));
    if names.is_empty() {
        return "none".to_owned();
    }
    let mut shown = names
        .iter()
        .take(LIMIT)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIMIT {
        shown.push_str(&format!(" and {} more", names.len() - LIMIT));
    }
    shown
}

fn node_label(node: &NodeDraft) -> String {
    node.name
        .clone()
        .unwrap_or_else(|| format!("the node at {}", at_text(node.at)))
}

fn at_text(at: YamlLocation) -> String {
    format!("{}:{}", at.line(), at.column())
}

// ---------------------------------------------------------------------------------------------
// The human-readable plan, as `podpath plan CASE` prints it.

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topo = &self.topology;
        writeln!(f, "case {} ({})", self.name, self.file.display())?;
        let u = &topo.underlay;
        writeln!(
            f,
            "underlay netns {} bridge {} {} mtu {}",
            u.netns, u.bridge, u.cidr, u.mtu
        )?;
        for node in &topo.nodes {
            writeln!(f, "node {} (pod subnet {})", node.name, node.pod_cidr)?;
            write_iface(f, &node.eth0)?;
            writeln!(f, " (underlay port {})", node.underlay_port)?;
            write_iface(f, &node.bridge)?;
            writeln!(f)?;
            if let Some(v) = &node.network.vxlan {
                writeln!(
                    f,
                    "  {:<10} {} {} mtu {} vni {} port {} local {} dev {} learning {}",
                    v.name,
                    v.addr,
                    v.mac,
                    v.mtu,
                    v.vni,
                    v.port,
                    v.local,
                    v.underlay_dev,
                    if v.learning { "on" } else { "off" }
                )?;
            }
            for route in node.network.routes.iter().chain(&node.routes) {
                write_route(f, route)?;
            }
            for n in &node.network.neighbours {
                writeln!(
                    f,
                    "  {:<10} {} lladdr {} dev {}",
                    "neigh", n.ip, n.mac, n.dev
                )?;
            }
            for e in &node.network.fdb {
                writeln!(f, "  {:<10} {} dst {} dev {}", "fdb", e.mac, e.dst, e.dev)?;
            }
            for (key, value) in &node.sysctls {
                writeln!(f, "  {:<10} {key}={value}", "sysctl")?;
            }
        }
        if let Some(external) = &topo.external {
            writeln!(
                f,
                "{} (a host outside the cluster, at the underlay gateway)",
                external.name
            )?;
            write_iface(f, &external.eth0)?;
            writeln!(f, " (underlay port {})", external.underlay_port)?;
            write_listeners(f, &external.listeners)?;
        }
        for pod in &topo.pods {
            let node = topo.nodes.get(pod.node).map_or("?", |n| n.name.as_str());
            writeln!(
                f,
                "pod {} (namespace {}) on {node}",
                pod.name, pod.namespace
            )?;
            write_iface(f, &pod.eth0)?;
            writeln!(f)?;
            writeln!(
                f,
                "  {:<10} {} (port of {node}'s {POD_BRIDGE})",
                "host veth", pod.host_veth
            )?;
            for route in &pod.routes {
                write_route(f, route)?;
            }
            write_listeners(f, &pod.listeners)?;
            if let Some(entry) = pod.hosts.as_deref().and_then(|h| h.lines().last()) {
                writeln!(f, "  {:<10} {}", "hosts", entry.replace('\t', " "))?;
            }
        }
        for service in &self.services {
            write_service(f, service)?;
        }
        if let Some(dns) = &topo.dns {
            write_dns(f, topo, dns)?;
        }
        for flow in &self.flows {
            if let Some(exec) = &flow.exec {
                write_exec_flow(f, flow, exec)?;
                continue;
            }
            let owner = match &flow.service {
                Some(svc) => {
                    let port = self
                        .services
                        .get(svc.service)
                        .and_then(|s| s.ports.get(svc.port))
                        .map_or_else(String::new, |p| format!(" port {}", p.label()));
                    match &svc.via {
                        ServiceVia::ClusterIp => {
                            format!(" (Service {}/{}{port})", svc.namespace, svc.name)
                        }
                        ServiceVia::NodePort { node } => format!(
                            " ({node}'s NodePort to Service {}/{}{port})",
                            svc.namespace, svc.name
                        ),
                    }
                }
                None => topo
                    .owner_of(flow.target.ip())
                    .map_or_else(String::new, |name| format!(" ({name})")),
            };
            let target = match (&flow.dns_name, &flow.resolution) {
                (Some(name), Some(resolution)) => {
                    let port = match flow.target {
                        Target::Tcp(addr) => format!(":{} (tcp)", addr.port()),
                        Target::Udp(addr) => format!(":{} (udp)", addr.port()),
                        Target::Icmp(_) => " (icmp)".to_owned(),
                    };
                    match resolution.addrs.as_slice() {
                        [] => format!("{name}{port}, which resolves to no address"),
                        [_] => format!(
                            "{name}{port} = {}{owner}, resolved as {}",
                            flow.target,
                            resolution.fqdn.as_deref().unwrap_or("?")
                        ),
                        _ => format!(
                            "{name}{port}, resolved as {}",
                            dns::describe_resolution(resolution)
                        ),
                    }
                }
                _ => format!("{}{owner}", flow.target),
            };
            write!(
                f,
                "flow {} (line {}): {} -> {target}, timeout {}",
                flow.name,
                flow.location.line,
                flow.from,
                DisplayDuration(flow.timeout)
            )?;
            if flow.attempts > 1 {
                write!(f, ", {} attempts", flow.attempts)?;
            }
            writeln!(f)?;
            if let Some(resolution) = &flow.resolution {
                writeln!(f, "  {:<10} {}", "asks", resolution.asked.join(" "))?;
            }
            if let Some(expect) = &flow.expect_dns {
                writeln!(f, "  expect dns {}", dns::describe_expect(expect))?;
            }
            if flow.sends_traffic() {
                write!(f, "  expect {}", flow.expect)?;
                if flow.sticky {
                    write!(f, ", every attempt answered by the same pod")?;
                } else if flow.each_reach_pod_answers()
                    && matches!(flow.expect, Expect::Reach { .. })
                {
                    write!(f, ", each of them at least once")?;
                }
                writeln!(f)?;
            }
            hops::write_hops(f, &flow.hops)?;
        }
        Ok(())
    }
}

/// The DNS server, and the resolv.conf of each namespace's pods (the same for all of them).
fn write_dns(f: &mut fmt::Formatter<'_>, topo: &Topology, dns: &ClusterDnsServer) -> fmt::Result {
    let records = &dns.records;
    let server = topo.pod(&dns.pod);
    let node = server
        .and_then(|p| topo.nodes.get(p.node))
        .map_or("?", |n| n.name.as_str());
    let ips: Vec<String> = records.server_ips.iter().map(Ipv4Addr::to_string).collect();
    writeln!(
        f,
        "dns {} (namespace {}) on {node} at {}: zone {}, ttl {}, {} Services, {} pods",
        dns.pod,
        server.map_or("?", |p| p.namespace.as_str()),
        ips.join(" "),
        records.zone,
        records.ttl,
        records.services.len(),
        records.pods.len()
    )?;
    let mut shown: Vec<&str> = Vec::new();
    for pod in &topo.pods {
        let Some(resolv) = &pod.resolv_conf else {
            continue;
        };
        if shown.contains(&pod.namespace.as_str()) {
            continue;
        }
        shown.push(&pod.namespace);
        let lines: Vec<&str> = resolv.lines().collect();
        writeln!(
            f,
            "  {:<10} namespace {}: {}",
            "resolv",
            pod.namespace,
            lines.join("; ")
        )?;
    }
    Ok(())
}

/// An `exec` flow: the command and what it must do.
fn write_exec_flow(f: &mut fmt::Formatter<'_>, flow: &FlowPlan, exec: &ExecPlan) -> fmt::Result {
    let argv: Vec<String> = exec
        .argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect();
    writeln!(
        f,
        "flow {} (line {}): {} runs {}, timeout {}",
        flow.name,
        flow.location.line,
        flow.from,
        argv.join(" "),
        DisplayDuration(flow.timeout)
    )?;
    write!(f, "  expect exit {}", exec.exit)?;
    for line in &exec.output {
        write!(f, ", line {line:?}")?;
    }
    for pattern in &exec.output_matches {
        write!(f, ", a line matching {pattern:?}")?;
    }
    writeln!(f)
}

fn write_service(f: &mut fmt::Formatter<'_>, service: &ServicePlan) -> fmt::Result {
    write!(f, "service {} {}", service.id(), service.service_type)?;
    match service.cluster_ip {
        Some(ip) => write!(f, " {ip}")?,
        None => write!(f, " None (headless)")?,
    }
    writeln!(f, " (line {})", service.location.line)?;
    match &service.selector {
        Some(selector) => {
            let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  {:<10} {}", "selector", labels.join(","))?;
        }
        None => writeln!(f, "  {:<10} none (endpoints listed)", "selector")?,
    }
    if let Some(timeout) = service.session_affinity {
        writeln!(f, "  {:<10} ClientIP {timeout}s", "affinity")?;
    }
    if service.service_type == ServiceType::NodePort {
        writeln!(
            f,
            "  {:<10} external {:?}, internal {:?}",
            "policy", service.external_traffic_policy, service.internal_traffic_policy
        )?;
    } else if service.internal_traffic_policy != TrafficPolicy::Cluster {
        writeln!(
            f,
            "  {:<10} internal {:?}",
            "policy", service.internal_traffic_policy
        )?;
    }
    for port in &service.ports {
        write!(f, "  {:<10} {}", "port", port.label())?;
        if let Some(node_port) = port.node_port {
            write!(f, " nodePort {node_port}")?;
        }
        writeln!(f, " -> targetPort {}", port.target_port)?;
        for e in &port.endpoints {
            write!(f, "    endpoint {}:{}", e.ip, e.port)?;
            if let Some(pod) = &e.pod {
                write!(f, " {pod}")?;
            }
            if let Some(node) = &e.node {
                write!(f, " on {node}")?;
            }
            writeln!(f, "{}", if e.ready { "" } else { " (not ready)" })?;
        }
        if port.endpoints.is_empty() {
            writeln!(f, "    no endpoints")?;
        }
    }
    if service.ports.is_empty() {
        for e in &service.endpoints {
            write!(f, "  {:<10} {}", "endpoint", e.ip)?;
            if let Some(pod) = &e.pod {
                write!(f, " {pod}")?;
            }
            if let Some(node) = &e.node {
                write!(f, " on {node}")?;
            }
            writeln!(f, "{}", if e.ready { "" } else { " (not ready)" })?;
        }
    }
    Ok(())
}

fn write_listeners(f: &mut fmt::Formatter<'_>, listeners: &[Listener]) -> fmt::Result {
    if listeners.is_empty() {
        return Ok(());
    }
    let listen: Vec<String> = listeners.iter().map(Listener::to_string).collect();
    writeln!(f, "  {:<10} {}", "listen", listen.join(" "))
}

fn write_iface(f: &mut fmt::Formatter<'_>, iface: &Iface) -> fmt::Result {
    write!(
        f,
        "  {:<10} {} {} mtu {}",
        iface.name, iface.addr, iface.mac, iface.mtu
    )
}

fn write_route(f: &mut fmt::Formatter<'_>, route: &Route) -> fmt::Result {
    let dst = if route.dst.prefix_len() == 0 {
        "default".to_owned()
    } else {
        route.dst.to_string()
    };
    write!(f, "  {:<10} {dst}", "route")?;
    if let Some(via) = route.via {
        write!(f, " via {via}")?;
    }
    write!(f, " dev {}", route.dev)?;
    if route.onlink {
        write!(f, " onlink")?;
    }
    writeln!(f)
}

struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis % 1000 == 0 {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

/// Test helpers shared by the tests of this module and of its submodules (`dns`, `hops`,
/// `services`); each of those reads its cases as a file of its own (`file`).
#[cfg(test)]
pub(crate) mod testing {
    use std::net::Ipv4Addr;
    use std::path::Path;

    use super::{Plan, load_str};
    use crate::diag::{Diagnostic, Location};

    /// The plan of `yaml` read as `file`; panics with the errors if there are any.
    pub(crate) fn plan(file: &str, yaml: &str) -> Plan {
        match load_str(Path::new(file), yaml) {
            Ok(plan) => plan,
            Err(err) => panic!("unexpected errors:\n{err}"),
        }
    }

    /// The errors of `yaml` read as `file`; panics if it plans.
    pub(crate) fn diagnostics(file: &str, yaml: &str) -> Vec<Diagnostic> {
        match load_str(Path::new(file), yaml) {
            Ok(plan) => panic!("expected errors, got a plan:\n{plan}"),
            Err(err) => err.diagnostics().to_vec(),
        }
    }

    pub(crate) fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    /// Where each of `found` is, as (line, column); panics on one without a location.
    pub(crate) fn locations(found: &[Diagnostic]) -> Vec<(u64, u64)> {
        found
            .iter()
            .map(|d| d.location.map(|l| (l.line, l.column)).unwrap())
            .collect()
    }

    /// Asserts that `found` is one diagnostic, at `line`:`column`; returns them shown.
    pub(crate) fn assert_one_at(found: &[Diagnostic], line: u64, column: u64) -> Vec<String> {
        let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
        assert_eq!(found.len(), 1, "{all:#?}");
        assert_eq!(
            found[0].location,
            Some(Location { line, column }),
            "{all:#?}"
        );
        all
    }

    /// [`assert_one_at`], and the diagnostic's message contains `message`.
    pub(crate) fn assert_one_saying(
        found: &[Diagnostic],
        line: u64,
        column: u64,
        message: &str,
    ) -> Vec<String> {
        let all = assert_one_at(found, line, column);
        assert!(found[0].message.contains(message), "{all:#?}");
        all
    }

    /// [`assert_one_saying`] for the errors of `yaml` read as `file`, and the diagnostic is
    /// shown as `file:line:column: ...`.
    pub(crate) fn assert_one_error(file: &str, yaml: &str, line: u64, column: u64, message: &str) {
        let all = assert_one_saying(&diagnostics(file, yaml), line, column, message);
        assert!(
            all[0].starts_with(&format!("{file}:{line}:{column}: ")),
            "{all:#?}"
        );
    }

    /// Deterministic random edits of a valid case (cut, insert one of `pieces`, duplicate),
    /// `rounds` times from `seed` (xorshift64, so a failure reproduces): none may panic, and
    /// every error they cause must be reported with a location.
    pub(crate) fn assert_edits_stay_located(
        valid: &str,
        pieces: &[&str],
        seed: u64,
        rounds: usize,
    ) {
        let chars: Vec<char> = valid.chars().collect();
        let mut seed = seed;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for round in 0..rounds {
            let mut text = chars.clone();
            for _ in 0..=next(3) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 => {
                        let end = (at + next(8)).min(text.len());
                        text.drain(at..end);
                    }
                    1 => {
                        let piece = pieces[next(pieces.len())];
                        text.splice(at..at, piece.chars());
                    }
                    _ => {
                        let end = (at + next(40)).min(text.len());
                        let copy: Vec<char> = text[at..end].to_vec();
                        text.splice(at..at, copy);
                    }
                }
            }
            let text: String = text.into_iter().collect();
            if let Err(err) = load_str(Path::new("cases/mutated.yaml"), &text) {
                for d in err.diagnostics() {
                    assert!(d.location.is_some(), "round {round}: unlocated {d}\n{text}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{
        assert_edits_stay_located, assert_one_error, assert_one_saying, diagnostics, ip, locations,
        plan,
    };
    use super::*;
    use rstest::rstest;

    const FILE: &str = "cases/t.yaml";

    fn cidr(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn pod_ips(plan: &Plan) -> Vec<(String, Ipv4Net)> {
        plan.topology
            .pods
            .iter()
            .map(|p| (p.name.clone(), p.eth0.addr))
            .collect()
    }

    fn named(pairs: &[(&str, &str)]) -> Vec<(String, Ipv4Net)> {
        pairs
            .iter()
            .map(|(name, net)| (name.to_string(), cidr(net)))
            .collect()
    }

    // --- allocation ----------------------------------------------------------------------

    #[test]
    fn nodes_get_positional_subnets_and_addresses_unless_set() {
        let plan = plan(
            FILE,
            "nodes: [node1, node2, { name: node3, podCIDR: 10.244.7.0/24, address: 172.18.0.20 }]\n",
        );
        let nodes = &plan.topology.nodes;
        let subnets: Vec<Ipv4Net> = nodes.iter().map(|n| n.pod_cidr).collect();
        assert_eq!(
            subnets,
            [
                cidr("10.244.1.0/24"),
                cidr("10.244.2.0/24"),
                cidr("10.244.7.0/24")
            ]
        );
        let eth0: Vec<Ipv4Net> = nodes.iter().map(|n| n.eth0.addr).collect();
        assert_eq!(
            eth0,
            [
                cidr("172.18.0.2/16"),
                cidr("172.18.0.3/16"),
                cidr("172.18.0.20/16")
            ]
        );
        assert_eq!(plan.name, "t");
        assert_eq!(plan.stem, "t");
        assert_eq!(plan.file, Path::new(FILE));
    }

    #[test]
    fn cluster_settings_change_subnets_and_addresses() {
        let plan = plan(
            FILE,
            "cluster: { podCIDR: 10.100.0.0/16, subnetLen: 26, nodeCIDR: 192.168.50.0/24 }\n\
             nodes: [node1, node2]\n\
             pods: [{ name: a, node: node2 }]\n",
        );
        let nodes = &plan.topology.nodes;
        assert_eq!(nodes[0].pod_cidr, cidr("10.100.0.64/26"));
        assert_eq!(nodes[1].pod_cidr, cidr("10.100.0.128/26"));
        assert_eq!(nodes[1].bridge.addr, cidr("10.100.0.129/26"));
        assert_eq!(nodes[1].eth0.addr, cidr("192.168.50.3/24"));
        assert_eq!(pod_ips(&plan), named(&[("a", "10.100.0.130/26")]));
        assert_eq!(plan.topology.underlay.cidr, cidr("192.168.50.0/24"));
    }

    #[test]
    fn pods_get_the_next_free_address_per_node_in_declared_order() {
        let plan = plan(
            FILE,
            "nodes: [node1, node2]\n\
             pods:\n\
             - { name: a, node: node1 }\n\
             - { name: b, node: node2 }\n\
             - { name: c, node: node1 }\n",
        );
        assert_eq!(
            pod_ips(&plan),
            named(&[
                ("a", "10.244.1.2/24"),
                ("b", "10.244.2.2/24"),
                ("c", "10.244.1.3/24")
            ])
        );
        assert_eq!(plan.topology.pods[1].node, 1);
    }

    #[test]
    fn fixed_pod_addresses_are_kept_and_skipped() {
        let plan = plan(
            FILE,
            "nodes: [node1]\n\
             pods:\n\
             - { name: a, node: node1 }\n\
             - { name: b, node: node1, ip: 10.244.1.2 }\n\
             - { name: c, node: node1 }\n\
             - { name: d, node: node1, ip: 10.244.1.4 }\n\
             - { name: e, node: node1 }\n",
        );
        assert_eq!(
            pod_ips(&plan),
            named(&[
                ("a", "10.244.1.3/24"),
                ("b", "10.244.1.2/24"),
                ("c", "10.244.1.5/24"),
                ("d", "10.244.1.4/24"),
                ("e", "10.244.1.6/24")
            ])
        );
    }

    #[test]
    fn a_full_subnet_takes_exactly_its_capacity() {
        // A /29 holds .2 to .6: five pods.
        let pods: String = (1..=5)
            .map(|i| format!("  - {{ name: p{i}, node: node1 }}\n"))
            .collect();
        let plan = plan(
            FILE,
            &format!("cluster: {{ subnetLen: 29 }}\nnodes: [node1]\npods:\n{pods}"),
        );
        assert_eq!(plan.topology.pods[4].eth0.addr, cidr("10.244.0.14/29"));
    }

    // --- interfaces ----------------------------------------------------------------------

    #[test]
    fn node_interfaces_follow_kind_cni_and_flannel() {
        let plan = plan(FILE, "nodes: [node1, node2]\n");
        let topo = &plan.topology;
        assert_eq!(
            topo.underlay,
            Underlay {
                netns: "underlay".into(),
                bridge: "br0".into(),
                cidr: cidr("172.18.0.0/16"),
                mtu: 1500,
            }
        );
        let node = &topo.nodes[0];
        assert_eq!(node.name, "node1");
        assert_eq!(node.underlay_port, "node1");
        assert_eq!(
            node.eth0,
            Iface {
                name: "eth0".into(),
                mac: Mac([0x02, 0x42, 172, 18, 0, 2]),
                addr: cidr("172.18.0.2/16"),
                mtu: 1500,
            }
        );
        assert_eq!(
            node.bridge,
            Iface {
                name: "cni0".into(),
                mac: Mac([0x0a, 0x58, 10, 244, 1, 1]),
                addr: cidr("10.244.1.1/24"),
                mtu: 1450,
            }
        );
        assert_eq!(
            node.network.vxlan,
            Some(Vxlan {
                name: "flannel.1".into(),
                vni: 1,
                port: 8472,
                mac: Mac([0x0e, 0x2a, 172, 18, 0, 2]),
                addr: cidr("10.244.1.0/32"),
                mtu: 1450,
                local: ip("172.18.0.2"),
                underlay_dev: "eth0".into(),
                learning: false,
            })
        );
        assert_eq!(
            node.sysctls,
            [("net/ipv4/ip_forward".to_owned(), "1".to_owned())]
        );
    }

    #[test]
    fn pod_interfaces_routes_and_listeners() {
        let plan = plan(
            FILE,
            "nodes: [node1]\n\
             pods: [{ name: a, node: node1, namespace: shop, listen: [9000, 5353/udp, 8080/tcp, 53/udp] }]\n",
        );
        let pod = &plan.topology.pods[0];
        assert_eq!(pod.namespace, "shop");
        assert_eq!(
            pod.eth0,
            Iface {
                name: "eth0".into(),
                mac: Mac([0x0a, 0x58, 10, 244, 1, 2]),
                addr: cidr("10.244.1.2/24"),
                mtu: 1450,
            }
        );
        assert_eq!(
            pod.routes,
            [Route {
                dst: cidr("0.0.0.0/0"),
                via: Some(ip("10.244.1.1")),
                dev: "eth0".into(),
                onlink: false,
            }]
        );
        let listeners: Vec<String> = pod.listeners.iter().map(Listener::to_string).collect();
        assert_eq!(listeners, ["53/udp", "5353/udp", "8080/tcp", "9000/tcp"]);
        assert_eq!(pod.host_veth, format!("veth{:08x}", fnv1a32(b"shop/a")));
    }

    #[test]
    fn fnv1a32_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn host_veth_names_rehash_on_a_clash() {
        let first = host_veth_name("default/a", &HashSet::new());
        assert_eq!(first, format!("veth{:08x}", fnv1a32(b"default/a")));
        let taken: HashSet<String> = [first.clone()].into();
        let second = host_veth_name("default/a", &taken);
        assert_eq!(second, format!("veth{:08x}", fnv1a32(b"default/a#1")));
        let taken: HashSet<String> = [first, second.clone()].into();
        assert_eq!(
            host_veth_name("default/a", &taken),
            format!("veth{:08x}", fnv1a32(b"default/a#2"))
        );
    }

    #[test]
    fn host_veth_names_are_unique_within_a_node() {
        let pods: String = (0..300)
            .map(|i| format!("  - {{ name: p{i}, node: node1 }}\n"))
            .collect();
        let plan = plan(
            FILE,
            &format!("cluster: {{ subnetLen: 22 }}\nnodes: [node1]\npods:\n{pods}"),
        );
        let veths: HashSet<&str> = plan
            .topology
            .pods
            .iter()
            .map(|p| p.host_veth.as_str())
            .collect();
        assert_eq!(veths.len(), 300);
        assert!(veths.iter().all(|v| v.len() == 12 && v.starts_with("veth")));
    }

    // --- overlays ------------------------------------------------------------------------

    #[test]
    fn flannel_programs_one_neighbour_fdb_entry_and_route_per_peer() {
        let plan = plan(FILE, "nodes: [node1, node2, node3]\n");
        let nodes = &plan.topology.nodes;
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node.network.neighbours.len(), 2, "{}", node.name);
            assert_eq!(node.network.fdb.len(), 2, "{}", node.name);
            // One route per peer from flannel; podpath's own default route via the underlay
            // gateway.
            assert_eq!(node.network.routes.len(), 2, "{}", node.name);
            assert_eq!(node.routes, [default_route()], "{}", node.name);
            for (j, peer) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
                let peer_ip = peer.eth0.addr.addr();
                let peer_vtep = Mac::from_ip([0x0e, 0x2a], peer_ip);
                assert_eq!(peer.network.vxlan.as_ref().unwrap().mac, peer_vtep);
                let neigh = Neighbour {
                    dev: "flannel.1".into(),
                    ip: peer.pod_cidr.network(),
                    mac: peer_vtep,
                };
                let fdb = FdbEntry {
                    dev: "flannel.1".into(),
                    mac: peer_vtep,
                    dst: peer_ip,
                };
                let route = Route {
                    dst: peer.pod_cidr,
                    via: Some(peer.pod_cidr.network()),
                    dev: "flannel.1".into(),
                    onlink: true,
                };
                assert_eq!(
                    node.network
                        .neighbours
                        .iter()
                        .filter(|n| **n == neigh)
                        .count(),
                    1
                );
                assert_eq!(node.network.fdb.iter().filter(|e| **e == fdb).count(), 1);
                assert_eq!(
                    node.network.routes.iter().filter(|r| **r == route).count(),
                    1
                );
                assert_eq!(peer.pod_cidr, cidr(&format!("10.244.{}.0/24", j + 1)));
            }
        }
        // Spelled out once, for node1.
        assert_eq!(
            nodes[0].network.routes[1],
            Route {
                dst: cidr("10.244.3.0/24"),
                via: Some(ip("10.244.3.0")),
                dev: "flannel.1".into(),
                onlink: true,
            }
        );
        assert_eq!(
            nodes[0].network.fdb[1],
            FdbEntry {
                dev: "flannel.1".into(),
                mac: Mac([0x0e, 0x2a, 172, 18, 0, 4]),
                dst: ip("172.18.0.4"),
            }
        );
        assert_eq!(nodes[0].network.neighbours[1].ip, ip("10.244.3.0"));
    }

    #[test]
    fn host_gw_routes_each_peer_subnet_via_the_peer_address() {
        let plan = plan(
            FILE,
            "cluster: { overlay: host-gw }\nnodes: [node1, node2, node3]\n",
        );
        let node = &plan.topology.nodes[1];
        assert_eq!(node.network.vxlan, None);
        assert!(node.network.neighbours.is_empty() && node.network.fdb.is_empty());
        assert_eq!(node.routes, [default_route()]);
        assert_eq!(
            node.network.routes,
            [
                Route {
                    dst: cidr("10.244.1.0/24"),
                    via: Some(ip("172.18.0.2")),
                    dev: "eth0".into(),
                    onlink: false,
                },
                Route {
                    dst: cidr("10.244.3.0/24"),
                    via: Some(ip("172.18.0.4")),
                    dev: "eth0".into(),
                    onlink: false,
                },
            ]
        );
    }

    fn default_route() -> Route {
        Route {
            dst: cidr("0.0.0.0/0"),
            via: Some(ip("172.18.0.1")),
            dev: "eth0".into(),
            onlink: false,
        }
    }

    #[test]
    fn overlay_none_programs_nothing() {
        let plan = plan(FILE, "cluster: { overlay: none }\nnodes: [node1, node2]\n");
        for node in &plan.topology.nodes {
            assert_eq!(node.network.vxlan, None);
            assert_eq!(node.routes, [default_route()]);
            assert!(node.network.neighbours.is_empty() && node.network.fdb.is_empty());
        }
    }

    #[rstest]
    #[case::vxlan_default("", 1500, 1450, Some(1450))]
    #[case::vxlan_jumbo("overlay: vxlan, mtu: 9000", 9000, 8950, Some(8950))]
    #[case::vxlan_smallest("mtu: 626", 626, 576, Some(576))]
    #[case::host_gw("overlay: host-gw", 1500, 1500, None)]
    #[case::none_small("overlay: none, mtu: 600", 600, 600, None)]
    fn mtus(
        #[case] cluster: &str,
        #[case] eth0: u32,
        #[case] pods: u32,
        #[case] vxlan: Option<u32>,
    ) {
        let plan = plan(
            FILE,
            &format!(
                "cluster: {{ {cluster} }}\nnodes: [node1]\npods: [{{ name: a, node: node1 }}]\n"
            ),
        );
        let node = &plan.topology.nodes[0];
        assert_eq!(plan.topology.underlay.mtu, eth0);
        assert_eq!(node.eth0.mtu, eth0);
        assert_eq!(node.bridge.mtu, pods);
        assert_eq!(node.network.vxlan.as_ref().map(|v| v.mtu), vxlan);
        assert_eq!(plan.topology.pods[0].eth0.mtu, pods);
    }

    // --- flows ---------------------------------------------------------------------------

    #[test]
    fn flows_resolve_targets_and_expectations() {
        let plan = plan(
            FILE,
            "nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, listen: [8080/tcp, 5353/udp, 9000] }
flows:
  - name: tcp
    from: a
    to: b:8080
    expect: { reach: b, seenSource: a }
  - { name: udp, from: a, to: b:5353, protocol: udp, timeout: 500ms, expect: { reach: [b], seenSource: node1 } }
  - { name: ping, from: a, to: b, expect: { reach: b } }
  - { name: closed, from: a, to: b:9999, expect: { fail: refused } }
  - { name: outside, from: a, to: 192.0.2.1:80, timeout: 1s, expect: { fail: timeout } }
  - { name: by-ip, from: a, to: 10.244.2.2:9000, expect: { reach: b, seenSource: 10.244.1.2 } }
  - { name: no-route, from: a, to: 10.244.9.9, protocol: icmp, expect: { fail: unreachable } }
",
        );
        let flows = &plan.flows;
        let reach_b = |seen: Option<(&str, &str)>| Expect::Reach {
            pods: vec!["b".into()],
            seen_source: seen.map(|(name, addr)| SeenSource {
                name: name.into(),
                addr: ip(addr),
            }),
        };
        assert_eq!(
            flows[0],
            FlowPlan {
                name: "tcp".into(),
                from: "a".into(),
                target: Target::Tcp("10.244.2.2:8080".parse().unwrap()),
                timeout: Duration::from_secs(2),
                expect: reach_b(Some(("a", "10.244.1.2"))),
                location: Location { line: 6, column: 5 },
                target_label: "b:8080".into(),
                service: None,
                attempts: 1,
                sticky: false,
                dns_name: None,
                resolution: None,
                expect_dns: None,
                exec: None,
                hops: Default::default(),
            }
        );
        assert_eq!(
            flows[1].target,
            Target::Udp("10.244.2.2:5353".parse().unwrap())
        );
        assert_eq!(flows[1].timeout, Duration::from_millis(500));
        assert_eq!(flows[1].expect, reach_b(Some(("node1", "172.18.0.2"))));
        assert_eq!(
            flows[1].location,
            Location {
                line: 10,
                column: 5
            }
        );
        assert_eq!(flows[2].target, Target::Icmp(ip("10.244.2.2")));
        assert_eq!(flows[2].expect, reach_b(None));
        assert_eq!(
            flows[3].target,
            Target::Tcp("10.244.2.2:9999".parse().unwrap())
        );
        assert_eq!(flows[3].expect, Expect::Fail(FailKind::Refused));
        assert_eq!(
            flows[4].target,
            Target::Tcp("192.0.2.1:80".parse().unwrap())
        );
        assert_eq!(flows[4].timeout, Duration::from_secs(1));
        assert_eq!(flows[4].expect, Expect::Fail(FailKind::Timeout));
        assert_eq!(
            flows[5].target,
            Target::Tcp("10.244.2.2:9000".parse().unwrap())
        );
        assert_eq!(flows[5].expect, reach_b(Some(("10.244.1.2", "10.244.1.2"))));
        assert_eq!(flows[6].target, Target::Icmp(ip("10.244.9.9")));
        assert_eq!(flows[6].expect, Expect::Fail(FailKind::Unreachable));
    }

    #[test]
    fn an_address_target_may_expect_any_listening_pods() {
        // A Service-like address: the planner cannot know who answers, so any pods may be named.
        let plan = plan(
            FILE,
            "nodes: [node1]\n\
             pods: [{ name: a, node: node1, listen: [80] }, { name: b, node: node1, listen: [80] }]\n\
             flows: [{ name: f, from: a, to: 10.96.0.10:80, expect: { reach: [a, b] } }]\n",
        );
        assert_eq!(
            plan.flows[0].expect,
            Expect::Reach {
                pods: vec!["a".into(), "b".into()],
                seen_source: None
            }
        );
    }

    #[rstest]
    #[case("500ms", Ok(Duration::from_millis(500)))]
    #[case("2s", Ok(Duration::from_secs(2)))]
    #[case("60s", Ok(Duration::from_secs(60)))]
    #[case("60000ms", Ok(Duration::from_secs(60)))]
    #[case("60001ms", Err("longer than the maximum"))]
    #[case("0s", Err("more than zero"))]
    #[case("s", Err("not a duration"))]
    #[case("1.5s", Err("not a duration"))]
    #[case("-1s", Err("not a duration"))]
    #[case("2", Err("not a duration"))]
    #[case("99999999999999999999999s", Err("longer than the maximum"))]
    #[case("18446744073709551615s", Err("longer than the maximum"))]
    fn timeouts(#[case] text: &str, #[case] expected: Result<Duration, &str>) {
        match (parse_timeout(text), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    // --- the external host ---------------------------------------------------------------

    #[rstest]
    #[case::absent("nodes: [node1]\n", None)]
    #[case::empty(
        "external: {}\nnodes: [node1]\n",
        Some(("172.18.0.1/16", "02:42:ac:12:00:01", 1500, ""))
    )]
    #[case::null(
        "nodes: [node1]\nexternal:\n",
        Some(("172.18.0.1/16", "02:42:ac:12:00:01", 1500, ""))
    )]
    #[case::listeners_sorted_and_other_underlay(
        "cluster: { nodeCIDR: 192.168.10.0/24, mtu: 9000 }\nexternal: { listen: [8080/tcp, 53/udp, { port: 443, name: https }] }\nnodes: [node1]\n",
        Some(("192.168.10.1/24", "02:42:c0:a8:0a:01", 9000, "53/udp 443/tcp 8080/tcp"))
    )]
    fn the_external_host_sits_at_the_underlay_gateway(
        #[case] yaml: &str,
        #[case] expected: Option<(&str, &str, u32, &str)>,
    ) {
        let plan = plan(FILE, yaml);
        let mac = expected.map(|(_, mac, _, _)| mac);
        let expected = expected.map(|(addr, _, mtu, listen)| External {
            name: "external".into(),
            eth0: Iface {
                name: "eth0".into(),
                mac: Mac::from_ip([0x02, 0x42], cidr(addr).addr()),
                addr: addr.parse().unwrap(),
                mtu,
            },
            underlay_port: "external".into(),
            listeners: listen
                .split_whitespace()
                .map(|l| {
                    let (port, proto) = l.split_once('/').unwrap();
                    Listener {
                        port: port.parse().unwrap(),
                        proto: if proto == "udp" {
                            Proto::Udp
                        } else {
                            Proto::Tcp
                        },
                    }
                })
                .collect(),
        });
        assert_eq!(plan.topology.external, expected);
        if let Some(external) = &plan.topology.external {
            assert_eq!(Some(external.eth0.mac.to_string().as_str()), mac);
            // The nodes' default route points at it.
            let default = plan.topology.nodes[0].routes.last().unwrap();
            assert_eq!(default.via, Some(external.eth0.addr.addr()));
        }
    }

    #[test]
    fn flows_go_from_and_to_the_external_host() {
        let plan = plan(
            FILE,
            "external: { listen: [8080/tcp, 53/udp] }
nodes: [node1, node2]
pods:
  - { name: a, node: node1, namespace: shop }
  - { name: web, node: node2, labels: { app: web }, listen: [8080] }
services:
  - { name: web, type: NodePort, selector: { app: web }, ports: [{ port: 80, targetPort: 8080, nodePort: 30100 }] }
  - { name: local, type: NodePort, externalTrafficPolicy: Local, selector: { app: web }, ports: [{ port: 80, targetPort: 8080, nodePort: 30200 }] }
  - { name: outside, endpoints: [{ ip: 172.18.0.1, port: 8080 }], ports: [{ port: 80 }] }
flows:
  - { name: node-port, from: external, to: node2:30100, expect: { reach: web, seenSource: 10.244.2.1 } }
  - { name: local, from: external, to: node2:30200, expect: { reach: web, seenSource: external } }
  - { name: by-svc, from: external, to: svc/web:80, expect: { fail: unreachable } }
  - { name: out, from: a, to: external:8080, expect: { reach: external, seenSource: node1 } }
  - { name: out-udp, from: a, to: external:53, protocol: udp, expect: { reach: [external] } }
  - { name: ping, from: a, to: external, expect: { reach: external } }
  - { name: by-address, from: a, to: 172.18.0.1:8080, expect: { reach: external } }
  - { name: closed, from: a, to: external:9090, expect: { fail: refused } }
  - { name: via-service, from: a, to: svc/default/outside:80, expect: { reach: external, seenSource: node1 } }
  - { name: pod-local, from: a, to: node2:30200, expect: { reach: web, seenSource: node1 } }
  - { name: to-itself, from: external, to: external:8080, expect: { reach: external } }
",
        );
        let flows = &plan.flows;
        let reach = |who: &str, seen: Option<(&str, &str)>| Expect::Reach {
            pods: vec![who.into()],
            seen_source: seen.map(|(name, addr)| SeenSource {
                name: name.into(),
                addr: ip(addr),
            }),
        };
        let node_port = |service: usize, name: &str| {
            Some(FlowService {
                service,
                port: 0,
                namespace: "default".into(),
                name: name.into(),
                via: ServiceVia::NodePort {
                    node: "node2".into(),
                },
            })
        };
        assert_eq!(flows[0].from, "external");
        assert_eq!(
            flows[0].target,
            Target::Tcp("172.18.0.3:30100".parse().unwrap())
        );
        assert_eq!(flows[0].service, node_port(0, "web"));
        assert_eq!(
            flows[0].expect,
            reach("web", Some(("10.244.2.1", "10.244.2.1")))
        );
        assert_eq!(flows[1].service, node_port(1, "local"));
        assert_eq!(
            flows[1].expect,
            reach("web", Some(("external", "172.18.0.1")))
        );
        // From the external host, `svc/web` is looked up in `default`.
        assert_eq!(
            flows[2].target,
            Target::Tcp("10.96.0.2:80".parse().unwrap())
        );
        assert_eq!(flows[2].service.as_ref().unwrap().namespace, "default");
        assert_eq!(
            flows[3].target,
            Target::Tcp("172.18.0.1:8080".parse().unwrap())
        );
        assert_eq!(flows[3].service, None);
        assert_eq!(
            flows[3].expect,
            reach("external", Some(("node1", "172.18.0.2")))
        );
        assert_eq!(flows[3].target_label, "external:8080");
        assert_eq!(
            flows[4].target,
            Target::Udp("172.18.0.1:53".parse().unwrap())
        );
        assert_eq!(flows[4].expect, reach("external", None));
        assert_eq!(flows[5].target, Target::Icmp(ip("172.18.0.1")));
        assert_eq!(
            flows[6].target,
            Target::Tcp("172.18.0.1:8080".parse().unwrap())
        );
        assert_eq!(flows[7].expect, Expect::Fail(FailKind::Refused));
        assert_eq!(
            flows[8].target,
            Target::Tcp("10.96.0.4:80".parse().unwrap())
        );
        assert_eq!(
            flows[8].expect,
            reach("external", Some(("node1", "172.18.0.2")))
        );
        assert_eq!(flows[9].expect, reach("web", Some(("node1", "172.18.0.2"))));
        assert_eq!(flows[10].from, "external");
        assert_eq!(flows.len(), 11);
    }

    #[test]
    fn external_traffic_policy_local_narrows_flows_from_outside_the_cluster_only() {
        // web runs on node1: a NodePort of node2 with externalTrafficPolicy Local cannot send
        // outside traffic to it, but a pod's traffic to its own node's NodePort goes anywhere;
        // without an overlay flannel does not masquerade, so a pod's traffic stays pod traffic.
        let case = |overlay: &str| {
            format!(
                "cluster: {{ overlay: {overlay} }}
external: {{}}
nodes: [node1, node2]
pods:
  - {{ name: a, node: node2 }}
  - {{ name: b, node: node1 }}
  - {{ name: web, node: node1, labels: {{ app: web }}, listen: [8080] }}
services:
  - {{ name: local, type: NodePort, externalTrafficPolicy: Local, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}
flows:
  - {{ name: own-node, from: a, to: node2:30000, expect: {{ reach: web }} }}
  - {{ name: from-outside-local, from: external, to: node1:30000, expect: {{ reach: web }} }}
  - {{ name: other-node-local, from: a, to: node1:30000, expect: {{ reach: web }} }}
  - {{ name: from-outside, from: external, to: node2:30000, expect: {{ fail: timeout }} }}
  - {{ name: other-node, from: b, to: 172.18.0.3:30000, expect: {{ fail: timeout }} }}
"
            )
        };
        assert_eq!(plan(FILE, &case("vxlan")).flows.len(), 5);
        let reach_web = |text: String, flow: &str| {
            let old = format!("{flow}, expect: {{ fail: timeout }}");
            text.replace(&old, &format!("{flow}, expect: {{ reach: web }}"))
        };
        let from_b = "from: b, to: 172.18.0.3:30000";
        assert_eq!(plan(FILE, &reach_web(case("none"), from_b)).flows.len(), 5);
        let found = diagnostics(
            FILE,
            &reach_web(
                reach_web(case("vxlan"), from_b),
                "from: external, to: node2:30000",
            ),
        );
        let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
        assert_eq!(
            all,
            [
                "cases/t.yaml:14:77: `reach` names web, which runs on node1, but default/local has externalTrafficPolicy Local: traffic from outside the cluster to node2's NodePort only goes to its endpoints on node2",
                "cases/t.yaml:15:73: `reach` names web, which runs on node1, but default/local has externalTrafficPolicy Local, and traffic from node1 (the node of `from`) to node2's NodePort comes from outside the cluster (flannel masquerades it to node1's address): only its endpoints on node2 answer",
            ]
        );
    }

    /// Each mistake about the external host: one diagnostic, at the offending value.
    #[rstest]
    #[case::node_named_external(
        "nodes: [node1, external]\n",
        1,
        16,
        "node name `external` is reserved for the external host"
    )]
    #[case::node_named_external_when_declared(
        "external: {}\nnodes: [external]\n",
        2,
        9,
        "node name `external` is reserved for the external host"
    )]
    #[case::pod_named_external(
        "nodes: [node1]\npods: [{ name: external, node: node1 }]\n",
        2,
        16,
        "pod name `external` is reserved for the external host"
    )]
    #[case::from_external_undeclared(
        "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: external, to: a, expect: { fail: timeout } }]\n",
        3,
        26,
        "`from` names the external host, but the case declares no external host"
    )]
    #[case::to_external_undeclared(
        "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:8080, expect: { fail: timeout } }]\n",
        3,
        33,
        "`to` names the external host, but the case declares no external host"
    )]
    #[case::ping_external_undeclared(
        "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external, expect: { fail: timeout } }]\n",
        3,
        33,
        "the case declares no external host"
    )]
    #[case::reach_external_undeclared(
        "nodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 192.0.2.1:80, expect: { reach: external } }]\n",
        3,
        64,
        "`reach` names the external host, but the case declares no external host"
    )]
    #[case::seen_source_external_undeclared(
        "nodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: a, to: a:80, expect: { reach: a, seenSource: external } }]\n",
        3,
        71,
        "`seenSource` names the external host, but the case declares no external host"
    )]
    #[case::external_not_listening(
        "external: { listen: [8080] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:9090, expect: { reach: external } }]\n",
        4,
        33,
        "external does not listen on 9090/tcp, so it could never answer"
    )]
    #[case::external_not_listening_udp(
        "external: { listen: [8080] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:8080, protocol: udp, expect: { reach: external } }]\n",
        4,
        33,
        "external does not listen on 8080/udp"
    )]
    #[case::external_address_not_listening(
        "external: {}\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 172.18.0.1:80, expect: { reach: external } }]\n",
        4,
        33,
        "external does not listen on 80/tcp"
    )]
    #[case::reach_pod_for_external_target(
        "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: a, to: external:80, expect: { reach: a } }]\n",
        4,
        63,
        "`reach` names a, but the flow goes straight to external: only external can answer"
    )]
    #[case::reach_external_for_pod_target(
        "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, listen: [80] }]\nflows: [{ name: f, from: external, to: a:80, expect: { reach: external } }]\n",
        4,
        63,
        "`reach` names external, but the flow goes straight to a: only a can answer"
    )]
    #[case::external_listener_duplicate(
        "external: { listen: [80, 80/tcp] }\nnodes: [node1]\n",
        1,
        26,
        "duplicate listener 80/tcp"
    )]
    #[case::external_listener_bad(
        "external:\n  listen: [http]\nnodes: [node1]\n",
        2,
        12,
        "listener `http` is not a port number"
    )]
    #[case::unknown_reach_mentions_external(
        "external: {}\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: 192.0.2.1:80, expect: { reach: extern } }]\n",
        4,
        64,
        "unknown pod `extern` in `reach` (pods: a; or external, the external host)"
    )]
    #[case::external_not_an_endpoint(
        "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1, labels: { app: a }, listen: [80] }]\nservices: [{ name: s, selector: { app: a }, ports: [{ port: 80 }] }]\nflows: [{ name: f, from: a, to: svc/s:80, expect: { reach: external } }]\n",
        5,
        60,
        "`reach` names external, which is not an endpoint of Service default/s port 80/TCP (ready endpoints: a)"
    )]
    #[case::external_endpoint_not_listening(
        "external: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nservices: [{ name: s, endpoints: [{ ip: 172.18.0.1, port: 8080 }], ports: [{ port: 80 }] }]\nflows: [{ name: f, from: a, to: svc/s:80, expect: { reach: external } }]\n",
        5,
        60,
        "external does not listen on 8080/tcp, its target port for Service default/s port 80/TCP"
    )]
    #[case::external_with_a_bad_node_cidr(
        "cluster: { nodeCIDR: 172.18.0.1/16 }\nexternal: { listen: [80] }\nnodes: [node1]\npods: [{ name: a, node: node1 }]\nflows: [{ name: f, from: a, to: external:80, expect: { reach: external, seenSource: a } }]\n",
        1,
        22,
        "nodeCIDR 172.18.0.1/16 has host bits set"
    )]

    fn external_host_errors_are_located(
        #[case] yaml: &str,
        #[case] line: u64,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        assert_one_saying(&diagnostics(FILE, yaml), line, column, message);
    }

    // --- validation ----------------------------------------------------------------------

    /// One mistake, one diagnostic, at the offending value.
    #[rstest]
    #[case::syntax("nodes: [node1\n", 1, 8, "unclosed bracket")]
    #[case::top_level_list("- node1\n", 1, 1, "expected a mapping")]
    #[case::wrong_type(
        "nodes: [node1, node2]\ncluster: { mtu: [1] }\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        2,
        17,
        "expected a single value"
    )]
    #[case::unknown_key(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b }, via: x }\n",
        6,
        57,
        "unknown field `via`"
    )]
    #[case::missing_nodes("pods: []\n", 1, 1, "`nodes` is missing")]
    #[case::empty_nodes("nodes: []\n", 1, 8, "`nodes` is empty")]
    #[case::node_name_invalid(
        "nodes: [node1, Node_2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: Node_2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        16,
        "node name `Node_2` is not a DNS-1123 label"
    )]
    #[case::node_name_too_long(
        "nodes: [node1, averyveryverylongname]\n",
        1,
        16,
        "is 21 characters long, more than 15"
    )]
    #[case::node_name_reserved("nodes: [underlay]\n", 1, 9, "reserved for the underlay")]
    #[case::node_name_duplicate(
        "nodes: [node1, node1]\n",
        1,
        16,
        "duplicate node name `node1`, first declared at 1:9"
    )]
    #[case::node_without_name("nodes:\n  - { address: 172.18.0.9 }\n", 2, 5, "node has no `name`")]
    #[case::pod_name_invalid(
        "nodes: [node1, node2]\npods:\n  - { name: A_1, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: A_1, to: b:80, expect: { reach: b } }\n",
        3,
        13,
        "pod name `A_1` is not a DNS-1123 label"
    )]
    #[case::pod_name_is_node_name(
        "nodes: [node1]\npods:\n  - { name: node1, node: node1 }\n",
        3,
        13,
        "is also a node name"
    )]
    #[case::pod_name_reserved(
        "nodes: [node1]\npods:\n  - { name: underlay, node: node1 }\n",
        3,
        13,
        "reserved for the underlay"
    )]
    #[case::pod_name_duplicate(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: a, node: node2 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        13,
        "duplicate pod name `a`, first declared at 3:13"
    )]
    #[case::pod_unknown_node(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node9, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        22,
        "unknown node `node9` (nodes: node1, node2)"
    )]
    #[case::pod_without_node("nodes: [node1]\npods:\n  - { name: a }\n", 3, 5, "pod has no `node`")]
    #[case::namespace_invalid(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, namespace: Default }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        40,
        "namespace `Default` is not a DNS-1123 label"
    )]
    #[case::flow_name_duplicate(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        7,
        13,
        "duplicate flow name `f`, first declared at 6:13"
    )]
    #[case::flow_name_invalid(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: \"a b\", from: a, to: b:80, expect: { reach: b } }\n",
        6,
        13,
        "flow name `a b` may only hold"
    )]
    #[case::from_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: x, to: b:80, expect: { reach: b } }\n",
        6,
        22,
        "unknown pod `x` in `from` (pods: a, b)"
    )]
    #[case::to_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: zz:80, expect: { reach: b } }\n",
        6,
        29,
        "unknown pod `zz` in `to`"
    )]
    #[case::to_port_zero(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:0, expect: { fail: refused } }\n",
        6,
        29,
        "port `0` in `to` is out of range 1..=65535"
    )]
    #[case::reach_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: 10.96.0.1:80, expect: { reach: [b, zz] } }\n",
        6,
        64,
        "unknown pod `zz` in `reach`"
    )]
    #[case::reach_other_pod(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [b, a] } }\n",
        6,
        56,
        "`reach` names a, but the flow goes straight to b: only b can answer"
    )]
    #[case::reach_empty(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [] } }\n",
        6,
        52,
        "`reach` names no pod"
    )]
    #[case::reach_twice(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: [b, b] } }\n",
        6,
        56,
        "`b` is named twice"
    )]
    #[case::seen_source_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b, seenSource: nobody } }\n",
        6,
        67,
        "unknown pod or node `nobody` in `seenSource`"
    )]
    #[case::seen_source_with_fail(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:81, expect: { fail: refused, seenSource: a } }\n",
        6,
        72,
        "`seenSource` goes with `reach`"
    )]
    #[case::seen_source_with_icmp(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, expect: { reach: b, seenSource: a } }\n",
        6,
        64,
        "`seenSource` is for tcp and udp flows"
    )]
    #[case::not_listening_tcp(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:8080, expect: { reach: b } }\n",
        6,
        29,
        "b does not listen on 8080/tcp, so it could never answer"
    )]
    #[case::not_listening_udp(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: udp, expect: { reach: b } }\n",
        6,
        29,
        "b does not listen on 80/udp, so it could never answer"
    )]
    #[case::not_listening_by_address(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: 10.244.2.2:8080, expect: { reach: b } }\n",
        6,
        29,
        "b does not listen on 8080/tcp"
    )]
    #[case::icmp_with_port(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: icmp, expect: { reach: b } }\n",
        6,
        29,
        "an icmp flow has no port, but `to` names port 80"
    )]
    #[case::tcp_without_port(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, protocol: tcp, expect: { reach: b } }\n",
        6,
        29,
        "a tcp flow needs a port: write `b`:PORT"
    )]
    #[case::protocol_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, protocol: sctp, expect: { reach: b } }\n",
        6,
        45,
        "unknown protocol `sctp`: expected tcp, udp or icmp"
    )]
    #[case::expect_both(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b, fail: refused } }\n",
        6,
        43,
        "`expect` has both `reach` and `fail`"
    )]
    #[case::expect_neither(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: {} }\n",
        6,
        43,
        "`expect` needs `reach: POD` or `fail:"
    )]
    #[case::expect_missing(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80 }\n",
        6,
        5,
        "flow has no `expect`"
    )]
    #[case::fail_unknown(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:81, expect: { fail: dropped } }\n",
        6,
        51,
        "unknown failure `dropped`: expected refused, timeout or unreachable"
    )]
    #[case::icmp_refused(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b, expect: { fail: refused } }\n",
        6,
        48,
        "an icmp flow cannot be refused"
    )]
    #[case::timeout_unparsable(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 2m, expect: { reach: b } }\n",
        6,
        44,
        "timeout `2m` is not a duration"
    )]
    #[case::timeout_zero(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 0ms, expect: { reach: b } }\n",
        6,
        44,
        "timeout `0ms` must be more than zero"
    )]
    #[case::timeout_too_long(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, timeout: 61s, expect: { reach: b } }\n",
        6,
        44,
        "timeout `61s` is longer than the maximum, 60s"
    )]
    #[case::cidr_syntax(
        "cluster: { podCIDR: 10.244.0.0/33 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        21,
        "podCIDR `10.244.0.0/33` is not an IPv4 CIDR"
    )]
    #[case::cidr_host_bits(
        "cluster: { nodeCIDR: 172.18.0.1/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        22,
        "nodeCIDR 172.18.0.1/16 has host bits set: did you mean 172.18.0.0/16?"
    )]
    #[case::pod_cidr_overlaps_node_cidr(
        "cluster: { podCIDR: 172.18.0.0/16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        21,
        "podCIDR 172.18.0.0/16 overlaps nodeCIDR 172.18.0.0/16"
    )]
    #[case::node_cidr_overlaps_pod_cidr(
        "cluster: { nodeCIDR: 10.0.0.0/8 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        22,
        "podCIDR 10.244.0.0/16 overlaps nodeCIDR 10.0.0.0/8"
    )]
    #[case::subnet_len_not_longer(
        "cluster: { subnetLen: 16 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        23,
        "subnetLen 16 must be longer than the podCIDR prefix /16"
    )]
    #[case::subnet_len_too_long(
        "cluster: { subnetLen: 31 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        23,
        "subnetLen 31 is too long: at most 30"
    )]
    #[case::overlay_unknown(
        "cluster: { overlay: calico }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        21,
        "unknown overlay `calico`: expected vxlan, host-gw or none"
    )]
    #[case::mtu_not_a_number(
        "cluster: { mtu: abc }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        17,
        "mtu `abc` is not a whole number"
    )]
    #[case::mtu_too_small(
        "cluster: { mtu: 500 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        17,
        "mtu 500 is out of range 576..=9000"
    )]
    #[case::mtu_too_big(
        "cluster: { mtu: 99999999999999999999999 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        17,
        "is out of range 576..=9000"
    )]
    #[case::mtu_too_small_for_vxlan(
        "cluster: { mtu: 600 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        17,
        "mtu 600 is too small for vxlan: pods would get 600 - 50 = 550"
    )]
    #[case::node_pod_cidr_outside(
        "nodes: [node1, { name: node2, podCIDR: 10.245.2.0/24 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node podCIDR 10.245.2.0/24 is outside the cluster podCIDR 10.244.0.0/16"
    )]
    #[case::node_pod_cidr_prefix(
        "nodes: [node1, { name: node2, podCIDR: 10.244.2.0/25 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node podCIDR 10.244.2.0/25 is a /25, but subnetLen is 24"
    )]
    #[case::node_pod_cidr_overlap(
        "nodes: [node1, { name: node2, podCIDR: 10.244.1.0/24 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "pod subnet 10.244.1.0/24 is also node1's"
    )]
    #[case::node_subnets_exhausted(
        "cluster: { podCIDR: 10.244.0.0/23 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        2,
        16,
        "podCIDR 10.244.0.0/23 has no /24 subnet left for node2"
    )]
    #[case::node_address_syntax(
        "nodes: [node1, { name: node2, address: 172.18.0.300 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node address `172.18.0.300` is not an IPv4 address"
    )]
    #[case::node_address_outside(
        "nodes: [node1, { name: node2, address: 10.0.0.1 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node address 10.0.0.1 is outside nodeCIDR 172.18.0.0/16"
    )]
    #[case::node_address_network(
        "nodes: [node1, { name: node2, address: 172.18.0.0 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node address 172.18.0.0 is the network address of nodeCIDR"
    )]
    #[case::node_address_broadcast(
        "nodes: [node1, { name: node2, address: 172.18.255.255 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node address 172.18.255.255 is the broadcast address of nodeCIDR"
    )]
    #[case::node_address_gateway(
        "nodes: [node1, { name: node2, address: 172.18.0.1 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "node address 172.18.0.1 is the underlay gateway (the nodes' default route) of nodeCIDR"
    )]
    #[case::node_address_duplicate(
        "nodes: [node1, { name: node2, address: 172.18.0.2 }]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        40,
        "duplicate node address 172.18.0.2: node1 has it too"
    )]
    #[case::node_addresses_exhausted(
        "cluster: { nodeCIDR: 172.18.0.0/30 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        2,
        16,
        "nodeCIDR 172.18.0.0/30 has no address left for node2"
    )]
    #[case::pod_ip_syntax(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.5/24 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        33,
        "pod ip `10.244.1.5/24` is not an IPv4 address (an address, without a prefix length)"
    )]
    #[case::pod_ip_outside(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.2.5 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        33,
        "pod ip 10.244.2.5 is outside node1's pod subnet 10.244.1.0/24"
    )]
    #[case::pod_ip_network(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.0 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        33,
        "pod ip 10.244.1.0 is the network address of node1's pod subnet"
    )]
    #[case::pod_ip_gateway(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        33,
        "pod ip 10.244.1.1 is node1's gateway"
    )]
    #[case::pod_ip_broadcast(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.255 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        3,
        33,
        "pod ip 10.244.1.255 is the broadcast address of node1's pod subnet"
    )]
    #[case::pod_ip_duplicate(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1, ip: 10.244.1.5 }\n  - { name: c, node: node1, ip: 10.244.1.5 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        33,
        "duplicate pod ip 10.244.1.5: a has it too"
    )]
    #[case::pod_subnet_full(
        "cluster: { subnetLen: 30 }\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: c, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        5,
        5,
        "node1's pod subnet 10.244.0.4/30 has no free address left for c: it holds 1 pod addresses"
    )]
    #[case::listener_port_zero(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 0] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        42,
        "listener `0` is out of range 1..=65535"
    )]
    #[case::listener_port_too_big(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 70000/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        42,
        "listener `70000/udp` is out of range 1..=65535"
    )]
    #[case::listener_not_a_port(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, http] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        42,
        "listener `http` is not a port number"
    )]
    #[case::listener_protocol(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/sctp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        42,
        "listener protocol `sctp` is not tcp or udp"
    )]
    #[case::listener_duplicate(
        "nodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 80/tcp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        4,
        42,
        "duplicate listener 80/tcp"
    )]
    #[case::name_empty(
        "name: \"\"\nnodes: [node1, node2]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node2, listen: [80, 53/udp] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        1,
        7,
        "`name` is empty"
    )]
    fn validation_errors_are_located(
        #[case] yaml: &str,
        #[case] line: u64,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        assert_one_error(FILE, yaml, line, column, message);
    }

    #[test]
    fn every_error_of_a_file_is_reported_in_file_order() {
        let found = diagnostics(
            FILE,
            "cluster: { mtu: 100 }
nodes: [node1, Bad]
pods:
  - { name: a, node: node9, listen: [0] }
flows:
  - { name: f, from: zz, to: a:80, timeout: 1h, expect: { fail: sometimes } }
",
        );
        assert_eq!(
            locations(&found),
            [
                (1, 17),
                (2, 16),
                (4, 22),
                (4, 38),
                (6, 22),
                (6, 45),
                (6, 65)
            ],
            "{found:#?}"
        );
    }

    #[rstest]
    #[case::empty("")]
    #[case::blank("\n\n")]
    #[case::comment("# nothing\n")]
    #[case::null("~\n")]
    #[case::scalar("42\n")]
    #[case::word("nodes\n")]
    #[case::list("[]\n")]
    #[case::list_of_names("- node1\n- node2\n")]
    #[case::nodes_scalar("nodes: 7\n")]
    #[case::nodes_nested("nodes: [[]]\n")]
    #[case::nodes_empty_mapping("nodes: [{}]\n")]
    #[case::nodes_null_entry("nodes: [~]\n")]
    #[case::pods_mapping("nodes: [node1]\npods: { a: 1 }\n")]
    #[case::pod_scalar("nodes: [node1]\npods: [7]\n")]
    #[case::flow_scalar("nodes: [node1]\nflows: [x]\n")]
    #[case::cluster_list("cluster: []\nnodes: [node1]\n")]
    #[case::huge_mtu("cluster: { mtu: 18446744073709551616 }\nnodes: [node1]\n")]
    #[case::huge_subnet_len("cluster: { subnetLen: 99999999999999999999 }\nnodes: [node1]\n")]
    #[case::negative_mtu("cluster: { mtu: -1500 }\nnodes: [node1]\n")]
    #[case::float_mtu("cluster: { mtu: 1.5e3 }\nnodes: [node1]\n")]
    #[case::odd_listeners(
        "nodes: [node1]\npods: [{ name: a, node: node1, listen: [99999999999999999999999, -1, 1e99, .nan, true, 0x50, '', /, 80/] }]\n"
    )]
    #[case::labels_list("nodes: [node1]\npods: [{ name: a, node: node1, labels: [1] }]\n")]
    #[case::ready_string("nodes: [node1]\npods: [{ name: a, node: node1, ready: maybe }]\n")]
    #[case::all_ones_ip("nodes: [node1]\npods: [{ name: a, node: node1, ip: 255.255.255.255 }]\n")]
    #[case::top_subnet(
        "cluster: { podCIDR: 255.255.255.0/24, subnetLen: 30, nodeCIDR: 10.0.0.0/30 }\nnodes: [node1, node2, { name: node3, podCIDR: 255.255.255.252/30 }]\npods: [{ name: a, node: node3 }, { name: b, node: node3 }]\n"
    )]
    #[case::empty_values(
        "nodes: [node1]\nflows: [{ name: , from: , to: , protocol: , timeout: , expect: { reach: , fail: , seenSource: } }]\n"
    )]
    #[case::empty_strings(
        "nodes: ['']\npods: [{ name: '', node: '', namespace: '', ip: '' }]\nflows: [{ name: '', from: '', to: '', protocol: '', timeout: '', expect: { reach: '', seenSource: '' } }]\n"
    )]
    #[case::colons(
        "nodes: [node1]\nflows: [{ name: f, from: a, to: ':::', expect: { reach: a } }]\n"
    )]
    #[case::binary_garbage("\0\u{1}\u{7f}\u{fffd}\u{202e}garbage")]
    #[case::control_characters("name: \"\\u0007\\n\\u001b[31m\"\nnodes: [\"\\n\"]\n")]
    #[case::tab_indent("nodes:\n\t- node1\n")]
    #[case::unknown_anchor("nodes: *missing\n")]
    #[case::recursive_alias("a: &a [*a]\n")]
    #[case::two_documents("nodes: [node1]\n---\nnodes: [node2]\n")]
    #[case::binary_tag("nodes: !!binary AAAA\n")]
    #[case::unterminated("{ nodes: [node1\n")]
    #[case::bom_only("\u{feff}")]
    fn malformed_inputs_are_located_errors(#[case] yaml: &str) {
        let err = load_str(Path::new(FILE), yaml).expect_err("a malformed case must not plan");
        let found = err.diagnostics();
        assert!(!found.is_empty(), "{err}");
        for d in found {
            assert!(d.location.is_some(), "unlocated: {d}");
            assert!(!d.message.contains('\n'), "multi-line message: {d:?}");
        }
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_errors() {
        let deep = format!("nodes: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n\
                      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n\
                      nodes: [*g]\n";
        for yaml in [deep.as_str(), laughs] {
            let err = load_str(Path::new(FILE), yaml).unwrap_err();
            assert!(
                err.diagnostics().iter().all(|d| d.location.is_some()),
                "{err}"
            );
        }
    }

    /// Deterministic mutations of a valid case (cut, insert, duplicate) must never panic, and
    /// whatever they break must be reported with a location.
    #[test]
    fn mutated_cases_never_panic() {
        let valid = "name: sample
cluster: { podCIDR: 10.244.0.0/16, subnetLen: 24, nodeCIDR: 172.18.0.0/16, overlay: vxlan, mtu: 1500 }
nodes:
  - node1
  - { name: node2, podCIDR: 10.244.7.0/24, address: 172.18.0.20 }
pods:
  - { name: a, node: node1, ip: 10.244.1.9, labels: { app: x }, ready: true }
  - name: b
    node: node2
    namespace: default
    listen: [8080/tcp, 5353/udp, 9000]
external: { listen: [80, { port: 53, protocol: udp }] }
flows:
  - { name: f, from: a, to: b:8080, protocol: tcp, timeout: 2s, expect: { reach: b, seenSource: a } }
  - { name: g, from: a, to: b:9999, expect: { fail: refused } }
  - { name: h, from: external, to: node2:30000, expect: { fail: timeout } }
  - { name: i, from: b, to: external:80, expect: { reach: external, seenSource: node2 } }
";
        plan(FILE, valid);
        let pieces = [
            ":",
            "{",
            "}",
            "[",
            "]",
            "-",
            ",",
            "&x",
            "*x",
            "!",
            "|",
            ">",
            "'",
            "\"",
            "#",
            "\n",
            " ",
            "\t",
            "0",
            "9999999999999999999999",
            "a",
            "~",
            "/",
            ".",
            "node1",
            "b:",
            "  - ",
        ];
        assert_edits_stay_located(valid, &pieces, 0x5eed, 3000);
    }

    // --- files ---------------------------------------------------------------------------

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podpath-plan-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = scratch_dir("load");
        let path = dir.join("cross-node.yaml");
        fs::write(&path, "name: across\nnodes: [node1]\n").unwrap();
        let plan = load(&path).unwrap();
        assert_eq!(plan.name, "across");
        assert_eq!(plan.stem, "cross-node");
        assert_eq!(plan.file, path);

        let missing = dir.join("missing.yaml");
        let err = load(&missing).unwrap_err();
        assert!(matches!(err, CaseError::Io { .. }));
        assert!(err.to_string().starts_with(&missing.display().to_string()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_utf8_is_a_located_error() {
        let dir = scratch_dir("utf8");
        let path = dir.join("bad.yaml");
        fs::write(&path, b"nodes: [node1]\nname: ab\xff\xfe\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:2:9: the file is not valid UTF-8", path.display())
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn discover_finds_yaml_files_recursively_in_order() {
        let dir = scratch_dir("discover");
        for file in [
            "b.yaml",
            "a.yml",
            "sub/c.yaml",
            "sub/deeper/d.yaml",
            "notes.md",
            ".hidden.yaml",
            "a.yaml.snap",
        ] {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "nodes: [node1]\n").unwrap();
        }
        fs::create_dir_all(dir.join(".git")).unwrap();
        fs::write(dir.join(".git/x.yaml"), "").unwrap();
        let found = discover(&dir).unwrap();
        let relative: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            relative,
            ["a.yml", "b.yaml", "sub/c.yaml", "sub/deeper/d.yaml"]
        );
        assert_eq!(discover(&dir.join("b.yaml")).unwrap(), [dir.join("b.yaml")]);
        assert!(discover(&dir.join("nowhere")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    // --- rendering -----------------------------------------------------------------------

    #[test]
    fn the_plan_renders_every_kernel_object_and_flow() {
        let plan = plan(
            FILE,
            "name: demo
nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, listen: [8080, 53/udp] }
flows:
  - { name: f, from: a, to: b:8080, expect: { reach: b, seenSource: a } }
  - { name: g, from: a, to: b:53, protocol: udp, timeout: 500ms, expect: { fail: timeout } }
",
        );
        let veth_a = &plan.topology.pods[0].host_veth;
        let veth_b = &plan.topology.pods[1].host_veth;
        let expected = format!(
            "case demo (cases/t.yaml)
underlay netns underlay bridge br0 172.18.0.0/16 mtu 1500
node node1 (pod subnet 10.244.1.0/24)
  eth0       172.18.0.2/16 02:42:ac:12:00:02 mtu 1500 (underlay port node1)
  cni0       10.244.1.1/24 0a:58:0a:f4:01:01 mtu 1450
  flannel.1  10.244.1.0/32 0e:2a:ac:12:00:02 mtu 1450 vni 1 port 8472 local 172.18.0.2 dev eth0 learning off
  route      10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
  route      default via 172.18.0.1 dev eth0
  neigh      10.244.2.0 lladdr 0e:2a:ac:12:00:03 dev flannel.1
  fdb        0e:2a:ac:12:00:03 dst 172.18.0.3 dev flannel.1
  sysctl     net/ipv4/ip_forward=1
node node2 (pod subnet 10.244.2.0/24)
  eth0       172.18.0.3/16 02:42:ac:12:00:03 mtu 1500 (underlay port node2)
  cni0       10.244.2.1/24 0a:58:0a:f4:02:01 mtu 1450
  flannel.1  10.244.2.0/32 0e:2a:ac:12:00:03 mtu 1450 vni 1 port 8472 local 172.18.0.3 dev eth0 learning off
  route      10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
  route      default via 172.18.0.1 dev eth0
  neigh      10.244.1.0 lladdr 0e:2a:ac:12:00:02 dev flannel.1
  fdb        0e:2a:ac:12:00:02 dst 172.18.0.2 dev flannel.1
  sysctl     net/ipv4/ip_forward=1
pod a (namespace default) on node1
  eth0       10.244.1.2/24 0a:58:0a:f4:01:02 mtu 1450
  host veth  {veth_a} (port of node1's cni0)
  route      default via 10.244.1.1 dev eth0
pod b (namespace default) on node2
  eth0       10.244.2.2/24 0a:58:0a:f4:02:02 mtu 1450
  host veth  {veth_b} (port of node2's cni0)
  route      default via 10.244.2.1 dev eth0
  listen     53/udp 8080/tcp
flow f (line 7): a -> tcp 10.244.2.2:8080 (b), timeout 2s
  expect reach b, seen source a (10.244.1.2)
flow g (line 8): a -> udp 10.244.2.2:53 (b), timeout 500ms
  expect fail: timeout
"
        );
        assert_eq!(plan.to_string(), expected);
    }

    #[test]
    fn the_plan_renders_the_external_host_and_flows_from_it() {
        let plan = plan(
            FILE,
            "external: { listen: [8080, 53/udp] }
nodes: [node1]
pods:
  - { name: a, node: node1, listen: [80] }
flows:
  - { name: in, from: external, to: node1:30000, expect: { fail: refused } }
  - { name: out, from: a, to: external:8080, expect: { reach: external, seenSource: node1 } }
",
        );
        let text = plan.to_string();
        let external = &text[text.find("external (").unwrap()..text.find("pod a").unwrap()];
        assert_eq!(
            external,
            "external (a host outside the cluster, at the underlay gateway)
  eth0       172.18.0.1/16 02:42:ac:12:00:01 mtu 1500 (underlay port external)
  listen     53/udp 8080/tcp
"
        );
        let flows = &text[text.find("flow in").unwrap()..];
        assert_eq!(
            flows,
            "flow in (line 6): external -> tcp 172.18.0.2:30000 (node1), timeout 2s
  expect fail: refused
flow out (line 7): a -> tcp 172.18.0.1:8080 (external), timeout 2s
  expect reach external, seen source node1 (172.18.0.2)
"
        );
    }
}
