//! The plan's public data: what the build, the suite, the verdicts and the report read.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use netns_runtime::proxy::ServiceTable;
use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::topology::Topology;

use super::dns::NameResolution;
use super::hops::{self};
use super::services::ServicePlan;
use crate::diag::Location;

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
    /// Every Service declared, in declared order, with its address, ports and endpoints as
    /// declared (revision 0), those declared `initially: absent` too; what exists after each
    /// step is in [`Plan::revisions`].
    pub services: Vec<ServicePlan>,
    /// What the service proxy (kube-proxy) of each node knows at revision 0, one table per
    /// node in node order: what the proxy renderers turn into rules.
    pub proxy: Vec<ServiceTable>,
    /// The service proxy modes the case runs in (each its own cluster and trials); empty when
    /// the case has no proxy.
    pub proxy_modes: Vec<ProxyMode>,
    /// The case file's text, so the plan can be bound to what an implementation decided
    /// ([`crate::plan::bind`]).
    pub source: std::sync::Arc<str>,
    /// What the stack declared the datapath does, which the plan's validation reasoned from.
    pub datapath: super::Datapath,
    /// The steps among the flows, in file order; step `i` leads from revision `i` to `i + 1`.
    pub steps: Vec<super::StepPlan>,
    /// The revisions of the cluster: 0 as declared (the same as `proxy` and `topology.dns`),
    /// then one after each step. Never empty.
    pub revisions: Vec<super::Revision>,
    /// Where the Kubernetes API is served and what its objects need beyond the topology;
    /// `None` when nodeCIDR leaves no address for it.
    pub api: Option<super::ApiPlan>,
}

impl Plan {
    /// The changes of the steps, in order: `changes()[i]` leads from revision `i` to `i + 1`.
    pub fn changes(&self) -> Vec<netns_runtime::change::ClusterChange> {
        self.steps.iter().map(|s| s.change.clone()).collect()
    }
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
    /// The revision of the cluster the flow runs against (index into [`Plan::revisions`]):
    /// how the steps before it leave the cluster.
    pub revision: usize,
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
