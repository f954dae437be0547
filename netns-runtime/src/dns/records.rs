//! The cluster DNS record table: what CoreDNS's `kubernetes` plugin answers, as pure data.
//!
//! The input, [`ClusterDns`], is what CoreDNS watches (Services, their EndpointSlices,
//! Namespaces, Pods) plus its configuration. [`RecordTable::lookup`] answers one question the way
//! CoreDNS does with kubeadm's Corefile stanza
//!
//! ```text
//! kubernetes cluster.local in-addr.arpa ip6.arpa {
//!    pods insecure
//!    fallthrough in-addr.arpa ip6.arpa
//!    ttl 30
//! }
//! ```
//!
//! following the plugin's own structure (`parseRequest`, `Records`, `findServices`, `findPods`,
//! `Reverse`, `nsAddrs`, and `plugin.A`/`SRV`/`PTR`/`NS`/`SOA`/`BackendError`), so that its
//! corner cases come out the same: which names are NXDOMAIN and which are NODATA, SRV weights,
//! the case of the zone in targets, the TTL of the schema TXT record. Every place where podpath
//! chose a behaviour is listed in `docs/dns.md`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::topology::Proto;

/// The cluster domain when none is given (kubelet's `--cluster-domain` default).
pub const DEFAULT_ZONE: &str = "cluster.local";
/// TTL of every record: kubeadm's Corefile says `ttl 30` (the plugin's own default is 5).
pub const DEFAULT_TTL: u32 = 30;
/// The SOA serial when none is given. CoreDNS uses the Unix time of the last change it saw;
/// podpath's is deterministic: the caller bumps it when it swaps in a changed table.
pub const DEFAULT_SERIAL: u32 = 1;
/// The namespaces every cluster has.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-node-lease", "kube-public", "kube-system"];
/// The Kubernetes DNS schema version, served as `dns-version.<zone>. TXT`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS serves the schema TXT record with this TTL, whatever `ttl` says.
pub const SCHEMA_TTL: u32 = 28800;

const SOA_REFRESH: u32 = 7200;
const SOA_RETRY: u32 = 1800;
const SOA_EXPIRE: u32 = 86400;
/// CoreDNS caps the SOA record's own TTL at 300 s (its minimum field is the `ttl` option).
const SOA_MAX_TTL: u32 = 300;
const REVERSE_V4: &str = "in-addr.arpa.";
const REVERSE_V6: &str = "ip6.arpa.";
/// The name CoreDNS gives itself when no Service points at it: `ns.dns.<zone>`.
const DEFAULT_NS_LABELS: &str = "ns.dns.";

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/// What the cluster DNS server knows: its configuration and the objects it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster domain, `cluster.local`; a trailing dot and upper case are accepted.
    pub zone: String,
    /// TTL of every answer record and the SOA minimum (kubeadm: 30).
    pub ttl: u32,
    /// The SOA serial.
    pub serial: u32,
    /// Namespaces that exist besides those holding a pod or a Service (the defaults:
    /// [`DEFAULT_NAMESPACES`]). A name in a namespace that does not exist is NXDOMAIN.
    pub namespaces: Vec<String>,
    pub services: Vec<Service>,
    pub pods: Vec<Pod>,
    /// The DNS server's own addresses (CoreDNS's "local IPs"): a Service with a ready endpoint
    /// at one of them is the zone's name server (`NS`, `ns.dns.<zone>`).
    pub server_ips: Vec<Ipv4Addr>,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            zone: DEFAULT_ZONE.to_string(),
            ttl: DEFAULT_TTL,
            serial: DEFAULT_SERIAL,
            namespaces: DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect(),
            services: Vec::new(),
            pods: Vec::new(),
            server_ips: Vec::new(),
        }
    }
}

/// A Service with its EndpointSlice endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// The ClusterIP; `None` for a headless Service (`clusterIP: None`).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service's ports (`spec.ports`).
    pub ports: Vec<Port>,
    /// Its endpoints, ready or not.
    pub endpoints: Vec<Endpoint>,
}

/// A port: of a Service (`spec.ports`: its `port`) or of an EndpointSlice (the resolved target
/// port, under the Service port's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The port's name; empty for an unnamed port (no SRV record by name).
    pub name: String,
    pub protocol: Proto,
    pub port: u16,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    /// The endpoint's `hostname`. When `None` and [`Endpoint::pod`] names a pod whose `hostname`
    /// is set and whose `subdomain` is this Service's name, the pod's hostname is used, as the
    /// EndpointSlice controller does (`ShouldSetHostname`).
    pub hostname: Option<String>,
    /// The pod behind the endpoint (`targetRef`), in the Service's namespace.
    pub pod: Option<String>,
    /// The `ready` condition. With `publishNotReadyAddresses` the controller reports every
    /// endpoint ready; the caller does the same.
    pub ready: bool,
    /// The slice's ports: the Service port names with the target port numbers.
    pub ports: Vec<Port>,
}

/// A pod, as the DNS server may know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// A DNS response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
}

impl Rcode {
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
        }
    }
}

impl fmt::Display for Rcode {
    /// As `dig` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
        })
    }
}

/// A question's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Ns,
    Cname,
    Soa,
    Ptr,
    Mx,
    Txt,
    Aaaa,
    Srv,
    Ixfr,
    Axfr,
    Any,
    /// Any other type, by number.
    Other(u16),
}

impl From<u16> for RecordType {
    fn from(code: u16) -> Self {
        match code {
            1 => RecordType::A,
            2 => RecordType::Ns,
            5 => RecordType::Cname,
            6 => RecordType::Soa,
            12 => RecordType::Ptr,
            15 => RecordType::Mx,
            16 => RecordType::Txt,
            28 => RecordType::Aaaa,
            33 => RecordType::Srv,
            251 => RecordType::Ixfr,
            252 => RecordType::Axfr,
            255 => RecordType::Any,
            other => RecordType::Other(other),
        }
    }
}

impl From<RecordType> for u16 {
    fn from(t: RecordType) -> u16 {
        match t {
            RecordType::A => 1,
            RecordType::Ns => 2,
            RecordType::Cname => 5,
            RecordType::Soa => 6,
            RecordType::Ptr => 12,
            RecordType::Mx => 15,
            RecordType::Txt => 16,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
            RecordType::Ixfr => 251,
            RecordType::Axfr => 252,
            RecordType::Any => 255,
            RecordType::Other(code) => code,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordType::A => f.write_str("A"),
            RecordType::Ns => f.write_str("NS"),
            RecordType::Cname => f.write_str("CNAME"),
            RecordType::Soa => f.write_str("SOA"),
            RecordType::Ptr => f.write_str("PTR"),
            RecordType::Mx => f.write_str("MX"),
            RecordType::Txt => f.write_str("TXT"),
            RecordType::Aaaa => f.write_str("AAAA"),
            RecordType::Srv => f.write_str("SRV"),
            RecordType::Ixfr => f.write_str("IXFR"),
            RecordType::Axfr => f.write_str("AXFR"),
            RecordType::Any => f.write_str("ANY"),
            RecordType::Other(code) => write!(f, "TYPE{code}"),
        }
    }
}

/// Parses `A`, `srv`, `TYPE13`, ... (case-insensitive).
impl FromStr for RecordType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        let known = [
            RecordType::A,
            RecordType::Ns,
            RecordType::Cname,
            RecordType::Soa,
            RecordType::Ptr,
            RecordType::Mx,
            RecordType::Txt,
            RecordType::Aaaa,
            RecordType::Srv,
            RecordType::Ixfr,
            RecordType::Axfr,
            RecordType::Any,
        ];
        if let Some(t) = known.into_iter().find(|t| t.to_string() == upper) {
            return Ok(t);
        }
        upper
            .strip_prefix("TYPE")
            .and_then(|n| n.parse::<u16>().ok())
            .map(RecordType::from)
            .ok_or_else(|| format!("unknown record type {s:?}"))
    }
}

/// A resource record. Names are fully qualified, with the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RData,
}

/// The data of a record podpath's DNS serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
    Ns(String),
    Txt(String),
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
}

impl RData {
    pub fn record_type(&self) -> RecordType {
        match self {
            RData::A(_) => RecordType::A,
            RData::Aaaa(_) => RecordType::Aaaa,
            RData::Srv { .. } => RecordType::Srv,
            RData::Ptr(_) => RecordType::Ptr,
            RData::Ns(_) => RecordType::Ns,
            RData::Txt(_) => RecordType::Txt,
            RData::Soa { .. } => RecordType::Soa,
        }
    }
}

impl fmt::Display for RData {
    /// The presentation format, as `dig` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(ip) => write!(f, "{ip}"),
            RData::Aaaa(ip) => write!(f, "{ip}"),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Ptr(target) | RData::Ns(target) => f.write_str(target),
            RData::Txt(text) => write!(f, "\"{text}\""),
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => write!(
                f,
                "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
            ),
        }
    }
}

impl fmt::Display for Record {
    /// `name ttl IN TYPE data`, as `dig +noall +answer` prints it (with single spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} IN {} {}",
            self.name,
            self.ttl,
            self.data.record_type(),
            self.data
        )
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    /// The AA flag: set on every answer from the zones the server serves, not on REFUSED.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    /// The zone's SOA on NXDOMAIN and NODATA answers.
    pub authority: Vec<Record>,
    /// A/AAAA records of SRV targets, and of NS targets.
    pub additional: Vec<Record>,
}

impl Answer {
    fn refused() -> Answer {
        Answer {
            rcode: Rcode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// NOERROR with no answer records: the name exists, not with that type.
    pub fn is_nodata(&self) -> bool {
        self.rcode == Rcode::NoError && self.answers.is_empty()
    }
}

impl fmt::Display for Answer {
    /// The rcode and every section, one record a line, as `dig` groups them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rcode)?;
        if self.authoritative {
            f.write_str(" aa")?;
        }
        for (title, records) in [
            ("ANSWER", &self.answers),
            ("AUTHORITY", &self.authority),
            ("ADDITIONAL", &self.additional),
        ] {
            if !records.is_empty() {
                write!(f, "\n;; {title}")?;
                for r in records {
                    write!(f, "\n{r}")?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// The records of one cluster, ready to answer questions. Built once from a [`ClusterDns`];
/// immutable (the server swaps whole tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTable {
    /// The cluster zone, lower case, with the trailing dot: `cluster.local.`.
    zone: String,
    ttl: u32,
    serial: u32,
    namespaces: BTreeSet<String>,
    services: Vec<ServiceEntry>,
    server_ips: Vec<Ipv4Addr>,
}

/// A Service as CoreDNS indexes it: only ready endpoints, with their DNS hostnames resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEntry {
    namespace: String,
    name: String,
    cluster_ip: Option<Ipv4Addr>,
    ports: Vec<PortEntry>,
    endpoints: Vec<EndpointEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EndpointEntry {
    ip: Ipv4Addr,
    /// CoreDNS's `endpointHostname`: the hostname, else the IP with dashes.
    hostname: String,
    ports: Vec<PortEntry>,
}

/// A port with CoreDNS's sentinel: an object without ports gets one port numbered -1, which
/// answers A queries but never makes an SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortEntry {
    name: String,
    protocol: String,
    port: i32,
}

impl PortEntry {
    fn list(ports: &[Port]) -> Vec<PortEntry> {
        if ports.is_empty() {
            return vec![PortEntry {
                name: String::new(),
                protocol: String::new(),
                port: -1,
            }];
        }
        ports
            .iter()
            .map(|p| PortEntry {
                name: p.name.clone(),
                protocol: p.protocol.to_string().to_ascii_uppercase(),
                port: i32::from(p.port),
            })
            .collect()
    }
}

/// What the plugin's backend returns for a name (CoreDNS's `msg.Service`): an address or a
/// text, the port for SRV, and the name SRV and NS records point at (`msg.Domain(Key)`).
#[derive(Debug, Clone)]
struct Item {
    host: Host,
    port: i32,
    ttl: u32,
    target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    Text(String),
}

/// The name does not exist (CoreDNS's `errNoItems`, `errNsNotExposed`, `errInvalidRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameError;

/// One question, as the plugin's handler sees it.
struct Question<'a> {
    /// The name as asked, fully qualified (the case of answers' owner names).
    qname: &'a str,
    /// The name in lower case.
    name: String,
    /// The zone, with the case it has in the question.
    zone: &'a str,
}

/// The labels of a name under a Service or pod zone (`parseRequest`'s `recordRequest`); empty
/// strings are "not given".
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    port: String,
    protocol: String,
    endpoint: String,
    service: String,
    namespace: String,
    pod_or_svc: String,
}

const SVC: &str = "svc";
const POD: &str = "pod";

impl RecordTable {
    pub fn new(dns: &ClusterDns) -> RecordTable {
        let mut zone = dns.zone.trim_end_matches('.').to_ascii_lowercase();
        zone.push('.');
        let namespaces: BTreeSet<String> = (dns.namespaces.iter())
            .chain(dns.pods.iter().map(|p| &p.namespace))
            .chain(dns.services.iter().map(|s| &s.namespace))
            .map(|ns| ns.to_ascii_lowercase())
            .collect();
        let services = dns
            .services
            .iter()
            .map(|svc| ServiceEntry {
                namespace: svc.namespace.clone(),
                name: svc.name.clone(),
                cluster_ip: svc.cluster_ip,
                ports: PortEntry::list(&svc.ports),
                endpoints: svc
                    .endpoints
                    .iter()
                    .filter(|ep| ep.ready)
                    .map(|ep| EndpointEntry {
                        ip: ep.ip,
                        hostname: endpoint_hostname(svc, ep, &dns.pods),
                        ports: PortEntry::list(&ep.ports),
                    })
                    .collect(),
            })
            .collect();
        RecordTable {
            zone,
            ttl: dns.ttl,
            serial: dns.serial,
            namespaces,
            services,
            server_ips: dns.server_ips.clone(),
        }
    }

    /// The cluster zone, lower case, fully qualified (`cluster.local.`).
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Answers one question of class IN. `name` may omit the trailing dot.
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Answer {
        let qname = fully_qualified(name);
        let lower = qname.to_ascii_lowercase();
        // Names outside the zones the server serves: podpath forwards nowhere (see docs/dns.md).
        let Some(zone_len) = self.matching_zone(&lower) else {
            return Answer::refused();
        };
        let q = Question {
            qname: &qname,
            zone: &qname[qname.len() - zone_len..],
            name: lower,
        };

        let result = match qtype {
            RecordType::A => self.a(&q).map(|rrs| (rrs, Vec::new())),
            RecordType::Aaaa => self.aaaa(&q).map(|rrs| (rrs, Vec::new())),
            RecordType::Txt => self.txt(&q).map(|rrs| (rrs, Vec::new())),
            RecordType::Srv => self.srv(&q),
            RecordType::Ptr => self.ptr(&q).map(|rrs| (rrs, Vec::new())),
            // CNAME and MX records only come from ExternalName Services and etcd-style mail
            // entries, neither of which exists here: the name is checked, nothing answered.
            RecordType::Cname | RecordType::Mx => {
                self.services(&q, qtype).map(|_| (Vec::new(), Vec::new()))
            }
            RecordType::Soa if q.qname == q.zone => Ok((vec![self.soa(q.zone)], Vec::new())),
            RecordType::Soa => Ok((Vec::new(), Vec::new())),
            // No zone transfers: kubeadm's Corefile has no `transfer` plugin.
            RecordType::Axfr | RecordType::Ixfr => return Answer::refused(),
            RecordType::Ns if q.name.eq_ignore_ascii_case(q.zone) => self.ns(&q),
            // Any other type: an A lookup tells NODATA from NXDOMAIN.
            _ => self.a(&q).map(|_| (Vec::new(), Vec::new())),
        };

        match result {
            Err(NameError) => Answer {
                rcode: Rcode::NxDomain,
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa(q.zone)],
                additional: Vec::new(),
            },
            Ok((answers, additional)) if answers.is_empty() => Answer {
                rcode: Rcode::NoError,
                authoritative: true,
                answers: Vec::new(),
                authority: vec![self.soa(q.zone)],
                additional,
            },
            Ok((answers, additional)) => Answer {
                rcode: Rcode::NoError,
                authoritative: true,
                answers,
                authority: Vec::new(),
                additional,
            },
        }
    }

    /// The PTR targets of an address: the Service whose ClusterIP it is, else one name per
    /// ready endpoint with that address (`<hostname>.<service>.<ns>.svc.<zone>.`).
    pub fn reverse(&self, ip: IpAddr) -> Vec<String> {
        let ip = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return Vec::new(),
            },
        };
        if let Some(svc) = self.services.iter().find(|s| s.cluster_ip == Some(ip)) {
            return vec![service_name(svc, &self.zone)];
        }
        let mut names = Vec::new();
        for svc in &self.services {
            for ep in svc.endpoints.iter().filter(|ep| ep.ip == ip) {
                let name = format!("{}.{}", ep.hostname, service_name(svc, &self.zone));
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The cluster zone as CoreDNS's zone transfer lists it (`xfr.go`): the SOA, the name
    /// servers and their addresses, every Service's A and SRV records (Services by name), the
    /// SOA again. A listing for plans and snapshots; the server itself refuses AXFR.
    pub fn zone_transfer(&self) -> Vec<Record> {
        let zone = self.zone.as_str();
        let soa = self.soa(zone);
        let mut out = vec![soa.clone()];
        let ns_addrs = self.ns_addrs(zone);
        let mut seen = HashSet::new();
        for (name, _) in &ns_addrs {
            if seen.insert(name.clone()) {
                out.push(self.record(zone, RData::Ns(name.clone())));
            }
        }
        out.extend(
            ns_addrs
                .into_iter()
                .map(|(name, ip)| self.record(&name, RData::A(ip))),
        );
        let mut services: Vec<&ServiceEntry> = self.services.iter().collect();
        services.sort_by(|a, b| (&a.name, &a.namespace).cmp(&(&b.name, &b.namespace)));
        for svc in services {
            let base = service_name(svc, zone);
            let srv_name = |p: &PortEntry| {
                format!(
                    "_{}._{}.{base}",
                    p.name.to_ascii_lowercase(),
                    p.protocol.to_ascii_lowercase()
                )
            };
            let srv = |target: &str, weight: u16, port: i32| RData::Srv {
                priority: 0,
                weight,
                port: port as u16,
                target: target.to_string(),
            };
            if let Some(ip) = svc.cluster_ip {
                out.push(self.record(&base, RData::A(ip)));
                for p in svc.ports.iter().filter(|p| p.port >= 0) {
                    // CoreDNS lists an SRV record at the Service name for every port, for
                    // peer-finder, and one at `_port._proto` for named ports.
                    out.push(self.record(&base, srv(&base, 100, p.port)));
                    if !p.name.is_empty() {
                        out.push(self.record(&srv_name(p), srv(&base, 100, p.port)));
                    }
                }
                continue;
            }
            let weight = srv_weight(svc.endpoints.len());
            for ep in &svc.endpoints {
                let host = format!("{}.{base}", ep.hostname);
                out.push(self.record(&base, RData::A(ep.ip)));
                out.push(self.record(&host, RData::A(ep.ip)));
                for p in ep.ports.iter().filter(|p| !p.name.is_empty()) {
                    out.push(self.record(&srv_name(p), srv(&host, weight, p.port)));
                }
            }
        }
        out.push(soa);
        out
    }

    // --- the handler's record functions (CoreDNS plugin/backend_lookup.go) ---------------------

    /// `plugin.A`: one A record per distinct IPv4 host.
    fn a(&self, q: &Question<'_>) -> Result<Vec<Record>, NameError> {
        let items = self.services(q, RecordType::A)?;
        let mut seen = HashSet::new();
        Ok(items
            .into_iter()
            .filter_map(|item| match item.host {
                Host::Ip(IpAddr::V4(ip)) if seen.insert(ip) => Some(Record {
                    name: q.qname.to_string(),
                    ttl: item.ttl,
                    data: RData::A(ip),
                }),
                _ => None,
            })
            .collect())
    }

    /// `plugin.AAAA`.
    fn aaaa(&self, q: &Question<'_>) -> Result<Vec<Record>, NameError> {
        let items = self.services(q, RecordType::Aaaa)?;
        let mut seen = HashSet::new();
        Ok(items
            .into_iter()
            .filter_map(|item| match item.host {
                Host::Ip(IpAddr::V6(ip)) if seen.insert(ip) => Some(Record {
                    name: q.qname.to_string(),
                    ttl: item.ttl,
                    data: RData::Aaaa(ip),
                }),
                _ => None,
            })
            .collect())
    }

    /// `plugin.TXT`.
    fn txt(&self, q: &Question<'_>) -> Result<Vec<Record>, NameError> {
        let items = self.services(q, RecordType::Txt)?;
        let mut seen = HashSet::new();
        Ok(items
            .into_iter()
            .filter_map(|item| match item.host {
                Host::Text(text) if seen.insert(text.clone()) => Some(Record {
                    name: q.qname.to_string(),
                    ttl: item.ttl,
                    data: RData::Txt(text),
                }),
                _ => None,
            })
            .collect())
    }

    /// `plugin.SRV`: one SRV per distinct (target, port), weight 100 shared between all the
    /// items found (`floor(100 * 100 / (100 * n))`, at least 1), and the targets' addresses in
    /// the additional section.
    fn srv(&self, q: &Question<'_>) -> Result<(Vec<Record>, Vec<Record>), NameError> {
        let items = self.services(q, RecordType::Srv)?;
        let weight = srv_weight(items.len());
        let mut srv_seen = HashSet::new();
        let mut addr_seen = HashSet::new();
        let (mut answers, mut additional) = (Vec::new(), Vec::new());
        for item in items {
            if item.port == -1 {
                continue;
            }
            let Host::Ip(ip) = item.host else { continue };
            let port = item.port as u16;
            if srv_seen.insert((item.target.clone(), port)) {
                answers.push(Record {
                    name: q.qname.to_string(),
                    ttl: item.ttl,
                    data: RData::Srv {
                        priority: 0,
                        weight,
                        port,
                        target: item.target.clone(),
                    },
                });
            }
            if addr_seen.insert((item.target.clone(), ip)) {
                additional.push(Record {
                    name: item.target,
                    ttl: item.ttl,
                    data: match ip {
                        IpAddr::V4(v4) => RData::A(v4),
                        IpAddr::V6(v6) => RData::Aaaa(v6),
                    },
                });
            }
        }
        Ok((answers, additional))
    }

    /// `plugin.PTR` over the plugin's `Reverse`.
    fn ptr(&self, q: &Question<'_>) -> Result<Vec<Record>, NameError> {
        let Some(ip) = address_from_reverse(&q.name) else {
            // Not an address: whether the name exists decides NODATA or NXDOMAIN.
            self.records(q)?;
            return Ok(Vec::new());
        };
        let targets = self.reverse(ip);
        if targets.is_empty() {
            return Err(NameError);
        }
        Ok(targets
            .into_iter()
            .map(|target| Record {
                name: q.qname.to_string(),
                ttl: self.ttl,
                data: RData::Ptr(target),
            })
            .collect())
    }

    /// `plugin.NS` at the zone apex: the name servers, their addresses in additional.
    fn ns(&self, q: &Question<'_>) -> Result<(Vec<Record>, Vec<Record>), NameError> {
        let mut seen = HashSet::new();
        let (mut answers, mut additional) = (Vec::new(), Vec::new());
        for (name, ip) in self.ns_addrs(q.zone) {
            additional.push(self.record(&name, RData::A(ip)));
            if seen.insert(name.clone()) {
                answers.push(self.record(q.qname, RData::Ns(name)));
            }
        }
        Ok((answers, additional))
    }

    /// `plugin.SOA`: `<zone> IN SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400
    /// <ttl>`, in the zone's case as asked.
    fn soa(&self, zone: &str) -> Record {
        Record {
            name: zone.to_string(),
            ttl: self.ttl.min(SOA_MAX_TTL),
            data: RData::Soa {
                mname: format!("{DEFAULT_NS_LABELS}{zone}"),
                rname: format!("hostmaster.{zone}"),
                serial: self.serial,
                refresh: SOA_REFRESH,
                retry: SOA_RETRY,
                expire: SOA_EXPIRE,
                minimum: self.ttl,
            },
        }
    }

    fn record(&self, name: &str, data: RData) -> Record {
        Record {
            name: name.to_string(),
            ttl: self.ttl,
            data,
        }
    }

    // --- the plugin's backend (CoreDNS plugin/kubernetes) --------------------------------------

    /// `Kubernetes.Services`: the items for a name and type, or NXDOMAIN.
    fn services(&self, q: &Question<'_>, qtype: RecordType) -> Result<Vec<Item>, NameError> {
        if qtype == RecordType::Txt {
            let labels = split_labels(trim_zone(&q.name, q.zone));
            if labels == ["dns-version"] {
                return Ok(vec![Item {
                    host: Host::Text(SCHEMA_VERSION.to_string()),
                    port: 0,
                    ttl: SCHEMA_TTL,
                    target: q.qname.to_string(),
                }]);
            }
            // Another type at this name makes it NODATA; anything else, even an existing
            // empty name (a namespace), is NXDOMAIN, as in CoreDNS.
            return match self.records(q) {
                Ok(items) if !items.is_empty() => Ok(Vec::new()),
                _ => Err(NameError),
            };
        }
        if is_default_ns(&q.name, q.zone) {
            return Ok(self
                .ns_addrs(q.zone)
                .into_iter()
                .filter(|_| qtype == RecordType::A)
                .map(|(_, ip)| Item {
                    host: Host::Ip(IpAddr::V4(ip)),
                    port: 0,
                    ttl: self.ttl,
                    target: q.qname.to_string(),
                })
                .collect());
        }
        self.records(q)
    }

    /// `Kubernetes.Records`.
    fn records(&self, q: &Question<'_>) -> Result<Vec<Item>, NameError> {
        let r = parse_request(&q.name, q.zone)?;
        if r.pod_or_svc.is_empty() {
            return Ok(Vec::new());
        }
        if is_reverse(&q.name) {
            return Err(NameError);
        }
        if !self.namespaces.contains(&r.namespace) {
            return Err(NameError);
        }
        if r.pod_or_svc == POD {
            self.find_pods(&r, q.zone)
        } else {
            self.find_services(&r, q.zone)
        }
    }

    /// `findPods` with `pods insecure`: any well-formed dashed address in an existing namespace.
    fn find_pods(&self, r: &Request, zone: &str) -> Result<Vec<Item>, NameError> {
        let podname = &r.service;
        if podname.is_empty() {
            return Ok(Vec::new());
        }
        let ip = if podname.matches('-').count() == 3 && !podname.contains("--") {
            podname
                .replace('-', ".")
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
        } else {
            podname
                .replace('-', ":")
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
        };
        let ip = ip.map_err(|_| NameError)?;
        Ok(vec![Item {
            host: Host::Ip(canonical(ip)),
            port: 0,
            ttl: self.ttl,
            target: format!("{podname}.{}.{POD}.{zone}", r.namespace),
        }])
    }

    /// `findServices`: a Service's ClusterIP per matching port, or, for a headless Service or
    /// an endpoint name, one item per ready endpoint and matching port.
    fn find_services(&self, r: &Request, zone: &str) -> Result<Vec<Item>, NameError> {
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = false;
        let mut items = Vec::new();
        for svc in self.services.iter().filter(|s| {
            s.namespace.eq_ignore_ascii_case(&r.namespace)
                && s.name.eq_ignore_ascii_case(&r.service)
        }) {
            let base = service_name(svc, zone);
            match svc.cluster_ip {
                Some(ip) if r.endpoint.is_empty() => {
                    for p in svc.ports.iter().filter(|p| port_matches(r, p)) {
                        found = true;
                        items.push(Item {
                            host: Host::Ip(IpAddr::V4(ip)),
                            port: p.port,
                            ttl: self.ttl,
                            target: base.clone(),
                        });
                    }
                }
                _ => {
                    for ep in &svc.endpoints {
                        if !r.endpoint.is_empty() && !r.endpoint.eq_ignore_ascii_case(&ep.hostname)
                        {
                            continue;
                        }
                        for p in ep.ports.iter().filter(|p| port_matches(r, p)) {
                            found = true;
                            items.push(Item {
                                host: Host::Ip(IpAddr::V4(ep.ip)),
                                port: p.port,
                                ttl: self.ttl,
                                target: format!("{}.{base}", ep.hostname),
                            });
                        }
                    }
                }
            }
        }
        if found { Ok(items) } else { Err(NameError) }
    }

    /// `nsAddrs`: the Services with a ready endpoint at one of the server's addresses (their
    /// ClusterIP, or for a headless one every endpoint), else `ns.dns.<zone>` at the server's
    /// own addresses.
    fn ns_addrs(&self, zone: &str) -> Vec<(String, Ipv4Addr)> {
        let mut out = Vec::new();
        let mut found = false;
        for local in &self.server_ips {
            for svc in &self.services {
                if !svc.endpoints.iter().any(|ep| ep.ip == *local) {
                    continue;
                }
                found = true;
                let base = service_name(svc, zone);
                match svc.cluster_ip {
                    Some(ip) => out.push((base, ip)),
                    None => out.extend(
                        svc.endpoints
                            .iter()
                            .map(|ep| (format!("{}.{base}", ep.hostname), ep.ip)),
                    ),
                }
            }
        }
        if !found {
            out = self
                .server_ips
                .iter()
                .map(|ip| (format!("{DEFAULT_NS_LABELS}{zone}"), *ip))
                .collect();
        }
        out
    }

    /// The longest served zone the (lower-case) name is in: its length.
    fn matching_zone(&self, name: &str) -> Option<usize> {
        [self.zone.as_str(), REVERSE_V4, REVERSE_V6]
            .into_iter()
            .filter(|zone| name == *zone || name.ends_with(&format!(".{zone}")))
            .map(str::len)
            .max()
    }
}

/// `<service>.<namespace>.svc.<zone>`.
fn service_name(svc: &ServiceEntry, zone: &str) -> String {
    format!("{}.{}.{SVC}.{zone}", svc.name, svc.namespace)
}

/// CoreDNS's `endpointHostname` (without `endpoint_pod_names`, which kubeadm does not set),
/// after the EndpointSlice controller's `ShouldSetHostname`.
fn endpoint_hostname(svc: &Service, ep: &Endpoint, pods: &[Pod]) -> String {
    if let Some(hostname) = ep.hostname.as_ref().filter(|h| !h.is_empty()) {
        return hostname.clone();
    }
    let from_pod = ep.pod.as_ref().and_then(|pod| {
        pods.iter()
            .find(|p| &p.name == pod && p.namespace == svc.namespace)
            .filter(|p| p.subdomain.as_deref() == Some(svc.name.as_str()))
            .and_then(|p| p.hostname.clone())
            .filter(|h| !h.is_empty())
    });
    from_pod.unwrap_or_else(|| ep.ip.to_string().replace('.', "-"))
}

/// `matchPortAndProtocol`: an empty request field matches anything.
fn port_matches(r: &Request, p: &PortEntry) -> bool {
    (r.port.is_empty() || r.port.eq_ignore_ascii_case(&p.name))
        && (r.protocol.is_empty() || r.protocol.eq_ignore_ascii_case(&p.protocol))
}

/// The SRV weight CoreDNS gives each of `n` records of one priority, all of weight 100:
/// `floor(100 / (100 * n) * 100)`, at least 1.
fn srv_weight(n: usize) -> u16 {
    if n == 0 {
        return 100;
    }
    let total = 100.0 * n as f64;
    let weight = ((100.0 / total) * 100.0).floor() as u16;
    weight.max(1)
}

/// `parseRequest`: `[_port._proto. | endpoint.]service.namespace.(svc|pod).<zone>`.
fn parse_request(name: &str, zone: &str) -> Result<Request, NameError> {
    let mut r = Request::default();
    let base = trim_zone(name, zone);
    if base.is_empty() || base == SVC || base == POD {
        return Ok(r);
    }
    let segs = split_labels(base);
    let mut rest = segs.as_slice();
    let Some((last, before)) = rest.split_last() else {
        return Ok(r);
    };
    if *last != POD && *last != SVC {
        return Err(NameError);
    }
    r.pod_or_svc = last.to_string();
    rest = before;
    let Some((namespace, before)) = rest.split_last() else {
        return Ok(r);
    };
    r.namespace = namespace.to_string();
    rest = before;
    let Some((service, before)) = rest.split_last() else {
        return Ok(r);
    };
    r.service = service.to_string();
    rest = before;
    match rest {
        [] => {}
        [endpoint] => r.endpoint = endpoint.to_string(),
        [port, protocol] => {
            r.port = strip_underscore(port).to_string();
            r.protocol = strip_underscore(protocol).to_string();
        }
        // Longer names are "too long": CoreDNS answers NXDOMAIN (zonal names are off).
        _ => return Err(NameError),
    }
    Ok(r)
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

/// The part of `name` left of `zone`, without the joining dot (case-insensitive).
fn trim_zone<'a>(name: &'a str, zone: &str) -> &'a str {
    if name.len() < zone.len() {
        return name;
    }
    let (left, right) = name.split_at(name.len() - zone.len());
    if !right.eq_ignore_ascii_case(zone) {
        return name;
    }
    left.strip_suffix('.').unwrap_or(left)
}

/// Splits a presentation-format name into labels at unescaped dots.
fn split_labels(name: &str) -> Vec<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Vec::new();
    }
    let bytes = name.as_bytes();
    let (mut labels, mut start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'.' => {
                labels.push(&name[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    labels.push(&name[start.min(name.len())..]);
    labels
}

/// CoreDNS's `isDefaultNS`: `ns.dns.<zone>` (compared without case; see docs/dns.md).
fn is_default_ns(name: &str, zone: &str) -> bool {
    name.strip_prefix(DEFAULT_NS_LABELS)
        .is_some_and(|rest| rest.eq_ignore_ascii_case(zone))
}

fn is_reverse(name: &str) -> bool {
    name.ends_with(&format!(".{REVERSE_V4}")) || name.ends_with(&format!(".{REVERSE_V6}"))
}

/// `dnsutil.ExtractAddressFromReverse`: `4.3.2.1.in-addr.arpa.` is 1.2.3.4; ip6.arpa names
/// join their nibbles four by four. `None` when the labels do not make an address.
fn address_from_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(&format!(".{REVERSE_V4}")) {
        let mut labels: Vec<&str> = rest.split('.').collect();
        labels.reverse();
        return labels.join(".").parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    let rest = name.strip_suffix(&format!(".{REVERSE_V6}"))?;
    let mut labels: Vec<&str> = rest.split('.').collect();
    labels.reverse();
    let groups: Vec<String> = labels.chunks_exact(4).map(|c| c.concat()).collect();
    groups
        .join(":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(|v6| canonical(IpAddr::V6(v6)))
}

/// Go's `net.IP.To4`: an IPv4-mapped IPv6 address is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

#[cfg(test)]
mod tests;
