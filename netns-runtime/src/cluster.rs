//! Turns a [`Topology`] into kernel objects, runs probes in it, and takes it down.
//!
//! The build runs on a thread of its own, the only thread that ever changes namespace during a
//! build: it creates each namespace by `unshare`, configures it from inside (sysctls, `lo`,
//! a netlink socket, listener sockets), and returns to the sandbox's namespace. Links are then
//! programmed over the per-namespace netlink sockets, one acknowledged request at a time.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::{API_PORT, ApiServer, Object};
use crate::dns::{DnsServer, RecordTable, SharedTable};
use crate::echo::EchoServers;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns::{self, Netns};
use crate::probe::{self, Outcome, ProbeTarget};
use crate::proxy::ServiceTable;
use crate::proxy::driver::{ProxyError, ServiceProxy};
use crate::resolver::{self, Resolution, ResolvConf};
use crate::stack::dns_exec::RunningDns;
use crate::stack::{
    Attachment, Detach, DnsDriver, DriverError, Drivers, ExecDns, NodeContext, PodContext,
    RuleTable,
};
use crate::tool::Finished;
use crate::topology::{Listener, Mac, Node, Proto, Topology};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("namespace {netns}: {source}")]
    Netns { netns: String, source: io::Error },
    #[error("namespace {netns}: {source}")]
    Netlink { netns: String, source: NetlinkError },
    #[error("namespace {netns}: listener {listener}: {source}")]
    Listener {
        netns: String,
        listener: Listener,
        source: io::Error,
    },
    #[error("namespace {netns}: {what} names unknown device {dev}")]
    UnknownDevice {
        netns: String,
        what: String,
        dev: String,
    },
    #[error("echo servers: {0}")]
    Echo(io::Error),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("the build thread failed: {0}")]
    Thread(String),
    #[error("serving the API at {address}: {source}")]
    Api {
        address: Ipv4Addr,
        source: crate::apiserver::ApiError,
    },
}

/// What can go wrong reading or using a built cluster (rules, state, resolution, commands).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no node {0} in this cluster")]
    NoNode(String),
    #[error("no pod {0} in this cluster")]
    NoPod(String),
    #[error("pod {0} has no resolv.conf: the case declares no cluster DNS")]
    NoResolvConf(String),
    #[error("entering {netns}: {source}")]
    Enter { netns: String, source: io::Error },
    #[error("reading the state of {node}: {source}")]
    State { node: String, source: NetlinkError },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Tool(#[from] crate::tool::ToolError),
}

/// Sysctls written in every namespace podpath builds, before any interface exists.
///
/// The clusters are IPv4-only; with IPv6 off, no router solicitation, MLD report or DAD probe
/// appears in captures, so what is observed on an interface is the flow and nothing else.
pub(crate) const IPV6_OFF: [(&str, &str); 2] = [
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/ipv6/conf/default/disable_ipv6", "1"),
];

/// The underlay bridge's MAC, fixed so that it does not follow its ports'.
pub const UNDERLAY_BRIDGE_MAC: Mac = Mac([0x02, 0x50, 0x50, 0, 0, 1]);

/// A built cluster. Dropping it removes every namespace it made.
pub struct Cluster {
    topology: Topology,
    /// The served Kubernetes API, stopped first at teardown.
    api: Option<ApiServer>,
    /// Where the API's client files are (kubeconfigs, pods' service account files).
    api_dir: Option<std::path::PathBuf>,
    api_cluster_ip: Ipv4Addr,
    // Dropped first: closes every listener socket before the namespaces go.
    echo: Option<EchoServers>,
    dns: Option<DnsServer>,
    /// `/etc/netns/<name>` directories written for the pods (resolv.conf, hosts).
    etc_dirs: Vec<std::path::PathBuf>,
    underlay: Option<Netns>,
    nodes: Vec<Netns>,
    pods: Vec<Netns>,
    external: Option<Netns>,
    pod_index: HashMap<String, usize>,
    prefix: String,
    /// What the pod attach made of each pod (in pod order); `None`: the pod has no interface.
    attachments: Vec<Option<Attachment>>,
    /// Per node, the interfaces its drivers said they make, which observation captures.
    node_interfaces: Vec<NodeInterfaces>,
    /// What undoes the pod attach's work before the namespaces go (a CNI DEL).
    detacher: Option<Arc<dyn Detach>>,
    /// The stack's DNS command, when its cluster DNS is `exec`, and how to start it again.
    dns_exec: Option<(ExecDns, RunningDns)>,
    /// The service proxy [`Cluster::run_proxy`] programmed, stopped at teardown.
    proxy: Option<Box<dyn ServiceProxy>>,
    /// The stack's DNS command, when it waits for the served API.
    pending_dns: Option<ExecDns>,
}

/// The interfaces a node's drivers declared they make on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInterfaces {
    /// The pod attach's (`cni0`), besides the pods' host sides.
    pub attach: Vec<String>,
    /// The node network's (`flannel.1`).
    pub network: Vec<String>,
}

/// Kernel objects made so far, so a failed build is taken down like a finished one.
struct Parts {
    underlay: Option<Netns>,
    nodes: Vec<Netns>,
    pods: Vec<Netns>,
    external: Option<Netns>,
    listeners: Vec<(Arc<str>, ListenerSocket)>,
    attachments: Vec<Option<Attachment>>,
}

enum ListenerSocket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    DnsTcp(std::net::TcpListener),
    DnsUdp(std::net::UdpSocket),
}

impl Cluster {
    /// Builds `topology` in the sandbox, each namespace named as in the topology (`node1`,
    /// `pod-a`, `underlay`), so `ip netns exec node1 ...` works. On error, whatever was built is
    /// removed again.
    pub fn build(topology: &Topology) -> Result<Cluster, BuildError> {
        Cluster::build_prefixed(topology, "")
    }

    /// Like [`Cluster::build`], with every namespace name prefixed (`case.node1`), so that
    /// several clusters can live side by side in one sandbox.
    pub fn build_prefixed(topology: &Topology, prefix: &str) -> Result<Cluster, BuildError> {
        Cluster::build_with(topology, prefix, &Drivers::builtin())
    }

    /// Builds `topology` with the stack's `drivers`: podpath makes the namespaces, the underlay
    /// and each node's `eth0`; the pod attach and the node network do the rest, and what the
    /// attach decided for each pod is kept ([`Cluster::attachments`]).
    pub fn build_with(
        topology: &Topology,
        prefix: &str,
        drivers: &Drivers,
    ) -> Result<Cluster, BuildError> {
        let topo = topology.clone();
        let prefix = prefix.to_string();
        let (parts, result) = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("podpath-build".into())
                .spawn_scoped(scope, || {
                    let mut parts = Parts {
                        underlay: None,
                        nodes: Vec::new(),
                        pods: Vec::new(),
                        external: None,
                        listeners: Vec::new(),
                        attachments: Vec::new(),
                    };
                    let result = build_on_this_thread(&topo, &prefix, drivers, &mut parts);
                    (parts, result)
                })
                .map_err(|e| BuildError::Thread(e.to_string()))?
                .join()
                .map_err(|_| BuildError::Thread("the build thread panicked".into()))
        })?;
        let node_interfaces = topo
            .nodes
            .iter()
            .map(|n| NodeInterfaces {
                attach: drivers.attach.node_interfaces(n),
                network: drivers.network.interfaces(n),
            })
            .collect();
        let mut cluster = Cluster {
            api: None,
            api_dir: None,
            api_cluster_ip: Ipv4Addr::UNSPECIFIED,
            dns: None,
            etc_dirs: Vec::new(),
            pod_index: topo
                .pods
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.clone(), i))
                .collect(),
            topology: topo,
            echo: None,
            underlay: parts.underlay,
            nodes: parts.nodes,
            pods: parts.pods,
            external: parts.external,
            prefix,
            attachments: parts.attachments,
            node_interfaces,
            detacher: drivers.attach.detacher(),
            dns_exec: None,
            proxy: None,
            pending_dns: None,
        };
        result?;
        let echo = EchoServers::new().map_err(BuildError::Echo)?;
        let dns = match (&cluster.topology.dns, &drivers.dns) {
            (Some(d), DnsDriver::Builtin) => Some(
                DnsServer::new(SharedTable::new(RecordTable::new(&d.records)))
                    .map_err(BuildError::Echo)?,
            ),
            _ => None,
        };
        for (pod, socket) in parts.listeners {
            match (socket, &dns) {
                (ListenerSocket::Tcp(l), _) => echo.serve_tcp(pod, l),
                (ListenerSocket::Udp(s), _) => echo.serve_udp(pod, s),
                (ListenerSocket::DnsTcp(l), Some(d)) => d.serve_tcp(l),
                (ListenerSocket::DnsUdp(s), Some(d)) => d.serve_udp(s),
                (ListenerSocket::DnsTcp(_) | ListenerSocket::DnsUdp(_), None) => Ok(()),
            }
            .map_err(BuildError::Echo)?;
        }
        cluster.echo = Some(echo);
        cluster.dns = dns;
        cluster.write_pod_files()?;
        if let DnsDriver::Exec(exec) = &drivers.dns {
            // One that reads the API starts once it is served ([`Cluster::start_dns`]).
            if exec.wants_kubeconfig() {
                cluster.pending_dns = Some(exec.clone());
            } else {
                cluster.start_dns_exec(exec.clone())?;
            }
        }
        Ok(cluster)
    }

    /// Whether the stack's DNS command waits for the served API ([`Cluster::serve_api`],
    /// then [`Cluster::start_dns`]).
    pub fn dns_needs_api(&self) -> bool {
        self.pending_dns.is_some()
    }

    /// Starts the stack's DNS command that waited for the served API, with its kubeconfig.
    pub fn start_dns(&mut self) -> Result<(), BuildError> {
        let Some(mut exec) = self.pending_dns.take() else {
            return Ok(());
        };
        if let Some(d) = &self.topology.dns {
            exec.kubeconfig = self.kubeconfigs().get(&d.pod).cloned();
        }
        self.start_dns_exec(exec)
    }

    /// Starts the stack's DNS command in the DNS pod, once it answers (none without DNS).
    fn start_dns_exec(&mut self, exec: ExecDns) -> Result<(), BuildError> {
        let Some(d) = &self.topology.dns else {
            return Ok(());
        };
        let ns = self
            .pod_netns(&d.pod)
            .ok_or_else(|| BuildError::UnknownDevice {
                netns: d.pod.clone(),
                what: "cluster DNS".into(),
                dev: "its pod".into(),
            })?;
        let running = RunningDns::start(&exec, ns, &self.topology, &self.prefix)?;
        if std::env::var_os("PODPATH_TIMINGS").is_some() {
            let ready = running.ready_after().map_or_else(
                || "never".to_string(),
                |d| format!("{:.3}s", d.as_secs_f64()),
            );
            eprintln!(
                "podpath: timing: {}{}: cluster DNS `{}` ready after {ready}",
                self.prefix,
                d.pod,
                exec.spec.argv.first().map_or("", String::as_str)
            );
        }
        self.dns_exec = Some((exec, running));
        Ok(())
    }

    /// What the stack's DNS command wrote, when it has one.
    pub fn dns_log(&self) -> Option<String> {
        self.dns_exec.as_ref().map(|(_, r)| r.log())
    }

    /// Programs every node's Services with `proxy` and keeps it until teardown: what it
    /// starts (an `exec` proxy's commands) is waited for until ready, and stopped after the
    /// last flow. On failure everything it started is stopped again.
    pub fn run_proxy(
        &mut self,
        proxy: Box<dyn ServiceProxy>,
        tables: &[ServiceTable],
    ) -> Result<(), ProxyError> {
        let result = self
            .apply_proxy(proxy.as_ref(), tables)
            .and_then(|()| proxy.wait_ready());
        if result.is_err() {
            proxy.stop();
        }
        // For docs/performance.md: from the cluster built to each node's proxy ready.
        if std::env::var_os("PODPATH_TIMINGS").is_some() {
            for (node, ready) in proxy.ready_times() {
                let ready = ready.map_or_else(
                    || "never".to_string(),
                    |d| format!("{:.3}s", d.as_secs_f64()),
                );
                eprintln!(
                    "podpath: timing: {}{node}: service proxy `{}` ready after {ready}",
                    self.prefix,
                    proxy.name()
                );
            }
        }
        self.proxy = Some(proxy);
        result
    }

    /// The service proxy's commands' output, per node (empty for loaders).
    pub fn proxy_logs(&self) -> Vec<(String, String)> {
        self.proxy.as_ref().map(|p| p.logs()).unwrap_or_default()
    }

    /// Each node's kubeconfig for the Kubernetes API the cluster serves
    /// ([`Cluster::serve_api`]), and the DNS pod's (its node's), which `exec` proxies and DNS
    /// servers are given as `{kubeconfig}`. Empty until it is served.
    pub fn kubeconfigs(&self) -> std::collections::BTreeMap<String, std::path::PathBuf> {
        let mut out: std::collections::BTreeMap<String, std::path::PathBuf> = self
            .topology
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), self.kubeconfig(&n.name)?)))
            .collect();
        if let Some(d) = &self.topology.dns
            && let Some(pod) = self.topology.pod(&d.pod)
            && let Some(k) = out.get(&self.topology.nodes[pod.node].name).cloned()
        {
            out.insert(d.pod.clone(), k);
        }
        out
    }

    /// The service proxy [`Cluster::run_proxy`] keeps.
    pub fn proxy(&self) -> Option<&dyn ServiceProxy> {
        self.proxy.as_deref()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// What the pod attach made of each pod, in the topology's pod order (`None`: the pod got
    /// no interface).
    pub fn attachments(&self) -> &[Option<Attachment>] {
        &self.attachments
    }

    /// What the pod attach made of `pod`.
    pub fn attachment(&self, pod: &str) -> Option<&Attachment> {
        self.attachments.get(*self.pod_index.get(pod)?)?.as_ref()
    }

    /// The interfaces the drivers made on node `index` (besides `eth0` and the pods' host
    /// sides), as they declared them.
    pub fn node_interfaces(&self, index: usize) -> Option<&NodeInterfaces> {
        self.node_interfaces.get(index)
    }

    /// Takes the bound topology: the plan once what the implementation decided (pod
    /// addresses, host-side interfaces) is known; the same nodes and pods, by name. The cluster
    /// DNS serves the bound records from now on, and the pods' hosts files name their bound
    /// addresses.
    pub fn bind(&mut self, topology: Topology) -> Result<(), BuildError> {
        self.topology = topology;
        // A DNS command serves files written from the records: it starts again from new ones.
        if let Some((exec, mut running)) = self.dns_exec.take() {
            running.stop();
            self.start_dns_exec(exec)?;
        }
        if let (Some(server), Some(d)) = (&self.dns, &self.topology.dns) {
            server.table().store(RecordTable::new(&d.records));
        }
        for dir in self.etc_dirs.drain(..) {
            std::fs::remove_dir_all(&dir).map_err(|source| BuildError::Netns {
                netns: dir.display().to_string(),
                source,
            })?;
        }
        self.write_pod_files()
    }

    /// The cluster DNS serves `records` from now on (a case step changed the cluster): the
    /// table is swapped at once, as [`Cluster::bind`] does. Nothing without a DNS server.
    pub fn serve_dns(&self, records: &crate::dns::ClusterDns) {
        if let Some(server) = &self.dns {
            server.table().store(RecordTable::new(records));
        }
    }

    /// A pod's network namespace.
    pub fn pod_netns(&self, pod: &str) -> Option<&Netns> {
        self.pod_index.get(pod).map(|&i| &self.pods[i])
    }

    /// A node's network namespace.
    pub fn node_netns(&self, node: &str) -> Option<&Netns> {
        let i = self.topology.nodes.iter().position(|n| n.name == node)?;
        self.nodes.get(i)
    }

    /// The underlay's network namespace.
    pub fn underlay_netns(&self) -> Option<&Netns> {
        self.underlay.as_ref()
    }

    /// The external host's network namespace, when the cluster has one.
    pub fn external_netns(&self) -> Option<&Netns> {
        self.external.as_ref()
    }

    /// The external host's namespace, if the cluster has one by that name.
    fn external_named(&self, name: &str) -> Option<&Netns> {
        self.external.as_ref().filter(|_| {
            self.topology
                .external
                .as_ref()
                .is_some_and(|e| e.name == name)
        })
    }

    /// Any namespace of the cluster by name.
    pub fn netns(&self, name: &str) -> Option<&Netns> {
        self.pod_netns(name)
            .or_else(|| self.node_netns(name))
            .or_else(|| self.external_named(name))
            .or_else(|| {
                self.underlay
                    .as_ref()
                    .filter(|_| self.topology.underlay.netns == name)
            })
    }

    /// What every namespace name of this cluster starts with (empty unless built prefixed).
    pub fn netns_prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends one probe from inside `pod` (or the external host) and reports what came of it.
    pub fn probe(&self, pod: &str, target: ProbeTarget, timeout: Duration) -> Outcome {
        let Some(ns) = self.pod_netns(pod).or_else(|| self.external_named(pod)) else {
            return Outcome::Error {
                detail: format!("no pod {pod} in this cluster"),
            };
        };
        netns::run_in(ns.as_fd(), || probe::probe(target, timeout)).unwrap_or_else(|e| {
            Outcome::Error {
                detail: format!("entering pod {pod}: {e}"),
            }
        })
    }

    /// Programs every node's Services with `proxy` (one table per node, by `node_name`).
    pub fn apply_proxy(
        &self,
        proxy: &dyn ServiceProxy,
        tables: &[ServiceTable],
    ) -> Result<(), ProxyError> {
        for table in tables {
            let Some(ns) = self.node_netns(&table.node_name) else {
                continue;
            };
            proxy.apply(ns, table)?;
        }
        Ok(())
    }

    /// A node's rule tables, normalised for snapshots: its whole `iptables-save` (flanneld's
    /// rules, kube-proxy's in iptables mode, anything an implementation put there), then every
    /// nftables table in `tables` (what the stack's drivers declared, nftables mode's `table ip
    /// kube-proxy`).
    pub fn node_rules(&self, tables: &[RuleTable], node: &str) -> Result<String, ClusterError> {
        let ns = self.node_ns(node)?;
        let mut out = String::new();
        let save = crate::proxy::driver::iptables_rules(ns, node)?;
        if !save.is_empty() {
            out.push_str("# iptables-save\n");
            out.push_str(&save);
        }
        for table in tables {
            if let RuleTable::Nft {
                family,
                name,
                heading,
            } = table
            {
                out.push_str(&format!("# {heading}\n"));
                out.push_str(&crate::proxy::driver::nft_table(ns, node, family, name)?);
            }
        }
        Ok(out)
    }

    /// A node's routes, permanent neighbours and FDB entries of its VXLAN devices, in `ip`'s
    /// words and a stable order: the parts of a node's state an overlay programs.
    pub fn node_state(&self, node: &str) -> Result<String, ClusterError> {
        let ns = self.node_ns(node)?;
        netns::run_in(ns.as_fd(), || -> Result<String, NetlinkError> {
            let mut nl = Netlink::open()?;
            let links = nl.links()?;
            let name = |i: u32| {
                links
                    .iter()
                    .find(|l| l.index == i)
                    .map(|l| l.name.clone())
                    .unwrap_or_else(|| format!("if{i}"))
            };
            let mut routes: Vec<String> = nl
                .routes()?
                .iter()
                .map(|r| {
                    // RTN_BLACKHOLE (6): Calico's routes for a node's own blocks.
                    let mut line = match r.kind {
                        6 => format!("blackhole {}", r.dst),
                        _ => r.dst.to_string(),
                    };
                    if let Some(gw) = r.gateway {
                        line.push_str(&format!(" via {gw}"));
                    }
                    if let Some(oif) = r.oif {
                        line.push_str(&format!(" dev {}", name(oif)));
                    }
                    if r.onlink() {
                        line.push_str(" onlink");
                    }
                    if let Some(src) = r.prefsrc {
                        line.push_str(&format!(" src {src}"));
                    }
                    line
                })
                .collect();
            routes.sort();
            let mut neigh: Vec<String> = nl
                .neighbours()?
                .iter()
                .filter(|n| n.permanent())
                .map(|n| {
                    let mac = n.mac.map(|m| m.to_string()).unwrap_or_default();
                    format!("{} dev {} lladdr {mac} PERMANENT", n.ip, name(n.ifindex))
                })
                .collect();
            neigh.sort();
            let mut fdb = Vec::new();
            for l in links.iter().filter(|l| l.vxlan.is_some()) {
                for f in nl.fdb(l.index)?.iter().filter(|f| f.permanent()) {
                    let dst = f.dst.map(|d| format!(" dst {d}")).unwrap_or_default();
                    fdb.push(format!("{} dev {}{dst} self permanent", f.mac, l.name));
                }
            }
            fdb.sort();
            let mut out = String::from("# routes\n");
            for section in [(&routes, ""), (&neigh, "# neighbours\n"), (&fdb, "# fdb\n")] {
                out.push_str(section.1);
                for line in section.0 {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Ok(out)
        })
        .map_err(|source| ClusterError::Enter {
            netns: node.to_string(),
            source,
        })?
        .map_err(|source| ClusterError::State {
            node: node.to_string(),
            source,
        })
    }

    /// A node's namespace, or the error that names the missing node.
    fn node_ns(&self, node: &str) -> Result<&Netns, ClusterError> {
        self.node_netns(node)
            .ok_or_else(|| ClusterError::NoNode(node.to_string()))
    }

    /// Resolves `name` from inside `pod` with its resolv.conf, as glibc would: the queries go to
    /// the kube-dns ClusterIP through the node's service proxy.
    pub fn resolve(
        &self,
        pod: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Resolution, ClusterError> {
        let ns = self
            .pod_netns(pod)
            .ok_or_else(|| ClusterError::NoPod(pod.to_string()))?;
        let conf = self
            .topology
            .pod(pod)
            .and_then(|p| p.resolv_conf.as_deref())
            .ok_or_else(|| ClusterError::NoResolvConf(pod.to_string()))?;
        let conf = ResolvConf::parse(conf);
        netns::run_in(ns.as_fd(), || resolver::resolve(&conf, name, timeout)).map_err(|source| {
            ClusterError::Enter {
                netns: format!("pod {pod}"),
                source,
            }
        })
    }

    /// Asks the cluster DNS server one question from inside its own pod, of its address on
    /// port 53 (no service proxy on the way), and gives the whole answer as text
    /// ([`resolver::ask_all`]); `None` when nothing answered in `timeout`.
    pub fn ask_dns(
        &self,
        name: &str,
        qtype: u16,
        timeout: Duration,
    ) -> Result<Option<String>, ClusterError> {
        let pod = self
            .topology
            .dns
            .as_ref()
            .map(|d| d.pod.clone())
            .ok_or_else(|| ClusterError::NoPod("(the case declares no cluster DNS)".into()))?;
        let ip = self
            .topology
            .pod(&pod)
            .map(|p| p.eth0.addr.addr())
            .ok_or_else(|| ClusterError::NoPod(pod.clone()))?;
        let ns = self
            .pod_netns(&pod)
            .ok_or_else(|| ClusterError::NoPod(pod.clone()))?;
        let server = SocketAddrV4::new(ip, 53);
        netns::run_in(ns.as_fd(), || {
            resolver::ask_all(server, name, qtype, timeout)
        })
        .map_err(|source| ClusterError::Enter {
            netns: format!("pod {pod}"),
            source,
        })
    }

    /// Runs a command inside `pod` the way `kubectl exec` would see it: its network namespace,
    /// its resolv.conf and hosts (`ip netns exec` bind-mounts them), with a timeout. With the
    /// API served, as in a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` set and the service account
    /// files at `/var/run/secrets/kubernetes.io/serviceaccount` (a bind mount in a mount
    /// namespace of the command's own).
    pub fn exec(
        &self,
        pod: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Finished, ClusterError> {
        if self.netns(pod).is_none() {
            return Err(ClusterError::NoPod(pod.to_string()));
        }
        let netns = format!("{}{pod}", self.prefix);
        let mut args: Vec<&str> = vec!["netns", "exec", &netns];
        args.extend(argv.iter().map(String::as_str));
        let secrets = self.service_account_dir(pod).filter(|d| d.is_dir());
        match (&self.api, secrets) {
            (Some(_), Some(dir)) if self.topology.pod(pod).is_some() => {
                let mut command = std::process::Command::new("ip");
                command.env(
                    "KUBERNETES_SERVICE_HOST",
                    self.kubernetes_service_ip().to_string(),
                );
                command.env("KUBERNETES_SERVICE_PORT", "443");
                command.env("KUBERNETES_SERVICE_PORT_HTTPS", "443");
                mount_service_account(&mut command, &dir)?;
                Ok(crate::tool::run_command(
                    command, "ip", &args, None, timeout,
                )?)
            }
            _ => Ok(crate::tool::run_here("ip", &args, timeout)?),
        }
    }

    /// The `default/kubernetes` ClusterIP: the first host of the service CIDR the API was
    /// served with (0.0.0.0 without one).
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.api_cluster_ip
    }

    /// Serves the cluster's Kubernetes API from the underlay: `address` is put on the
    /// underlay bridge (a host on the segment, as kind's control plane), routes to every
    /// node's pod subnet via the node, and the server listens on `address:6443`. Writes a
    /// kubeconfig per node ([`Cluster::kubeconfig`]) and each pod's service account files.
    pub fn serve_api(
        &mut self,
        address: ipnet::Ipv4Net,
        cluster_ip: Ipv4Addr,
        objects: Vec<Object>,
    ) -> Result<&ApiServer, BuildError> {
        let ip = address.addr();
        let api_err = |source: crate::apiserver::ApiError| BuildError::Api {
            address: ip,
            source,
        };
        let io_err = |e: io::Error| api_err(e.into());
        let underlay = self
            .underlay
            .as_ref()
            .ok_or_else(|| io_err(io::Error::other("no underlay")))?;
        let bridge = self.topology.underlay.bridge.clone();
        let routes: Vec<(ipnet::Ipv4Net, Ipv4Addr)> = self
            .topology
            .nodes
            .iter()
            .map(|n| (n.pod_cidr, n.eth0.addr.addr()))
            .collect();
        let listener = netns::run_in(
            underlay.as_fd(),
            || -> Result<std::net::TcpListener, BuildError> {
                let nl_err = |source| BuildError::Netlink {
                    netns: "underlay".into(),
                    source,
                };
                let mut nl = Netlink::open().map_err(nl_err)?;
                let br = nl.link_index(&bridge).map_err(nl_err)?;
                nl.add_addr(br, address).map_err(nl_err)?;
                for (subnet, via) in routes {
                    // Replies to pods whose node network does not masquerade them.
                    let _ = nl.add_route(subnet, Some(via), br, false);
                }
                std::net::TcpListener::bind(SocketAddrV4::new(ip, API_PORT))
                    .map_err(|e| api_err(e.into()))
            },
        )
        .map_err(io_err)??;
        let api = ApiServer::start(
            listener,
            SocketAddrV4::new(ip, API_PORT),
            cluster_ip,
            objects,
        )
        .map_err(api_err)?;
        let dir = std::path::Path::new(API_FILES).join(if self.prefix.is_empty() {
            "cluster".to_string()
        } else {
            self.prefix.trim_end_matches('.').to_string()
        });
        self.api_dir = Some(dir.clone());
        self.api_cluster_ip = cluster_ip;
        let write = |path: std::path::PathBuf, content: &str| -> Result<(), BuildError> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err)?;
            }
            std::fs::write(&path, content).map_err(io_err)
        };
        for node in &self.topology.nodes {
            write(
                dir.join("nodes").join(&node.name).join("kubeconfig"),
                &api.kubeconfig(&node.name),
            )?;
        }
        for pod in &self.topology.pods {
            let sa = dir.join("pods").join(&pod.name);
            write(sa.join("token"), api.token())?;
            write(sa.join("ca.crt"), api.ca_pem())?;
            write(sa.join("namespace"), &pod.namespace)?;
        }
        // The mount point pods' files are bound to, on the sandbox's private /run.
        std::fs::create_dir_all(SERVICE_ACCOUNT_MOUNT).map_err(io_err)?;
        Ok(self.api.insert(api))
    }

    /// The served API, once [`Cluster::serve_api`] has run.
    pub fn api(&self) -> Option<&ApiServer> {
        self.api.as_ref()
    }

    /// The kubeconfig written for `node` (the API's address, CA and token), on the sandbox's
    /// private `/run`; `None` without a served API or such a node.
    pub fn kubeconfig(&self, node: &str) -> Option<std::path::PathBuf> {
        self.topology.node(node)?;
        Some(
            self.api_dir
                .as_ref()?
                .join("nodes")
                .join(node)
                .join("kubeconfig"),
        )
    }

    /// The directory holding `pod`'s service account files (`token`, `ca.crt`, `namespace`).
    pub fn service_account_dir(&self, pod: &str) -> Option<std::path::PathBuf> {
        self.topology.pod(pod)?;
        Some(self.api_dir.as_ref()?.join("pods").join(pod))
    }

    /// Takes the cluster down, reporting every name that could not be removed.
    pub fn teardown(mut self) -> Result<(), Vec<io::Error>> {
        self.take_down()
    }

    /// Each pod's resolv.conf and hosts under `/etc/netns/<netns>/`, where `ip netns exec`
    /// bind-mounts them over `/etc`: only on the sandbox's private `/etc` overlay.
    fn write_pod_files(&mut self) -> Result<(), BuildError> {
        if !crate::sandbox::etc_is_private() {
            return Ok(());
        }
        for pod in &self.topology.pods {
            let files = [("resolv.conf", &pod.resolv_conf), ("hosts", &pod.hosts)];
            if files.iter().all(|(_, c)| c.is_none()) {
                continue;
            }
            let dir =
                std::path::Path::new("/etc/netns").join(format!("{}{}", self.prefix, pod.name));
            let io_err = |source| BuildError::Netns {
                netns: pod.name.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io_err)?;
            self.etc_dirs.push(dir.clone());
            for (file, content) in files {
                if let Some(content) = content {
                    std::fs::write(dir.join(file), content).map_err(io_err)?;
                }
            }
        }
        Ok(())
    }

    fn take_down(&mut self) -> Result<(), Vec<io::Error>> {
        let mut errors = Vec::new();
        // Programs under test first, while their namespaces and the API are still there.
        if let Some(proxy) = self.proxy.take() {
            errors.extend(proxy.stop().into_iter().map(io::Error::other));
        }
        if let Some((_, mut running)) = self.dns_exec.take() {
            running.stop();
        }
        drop(self.api.take());
        drop(self.echo.take());
        drop(self.dns.take());
        if let Some(d) = self.detacher.take() {
            errors.extend(d.detach_all().into_iter().map(io::Error::other));
        }
        for dir in self.etc_dirs.drain(..).chain(self.api_dir.take()) {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                errors.push(e);
            }
        }
        let mut all: Vec<Netns> = self
            .pods
            .drain(..)
            .chain(self.external.take())
            .chain(self.nodes.drain(..))
            .chain(self.underlay.take())
            .collect();
        // Every name first, then every namespace at once: the kernel destroys namespaces on a
        // worker of its own, and one started while names are still being unmounted slows each
        // unmount down (it waits for an RCU grace period) and is split into more batches.
        for ns in &mut all {
            if let Err(e) = ns.remove_name() {
                errors.push(e);
            }
        }
        drop(all);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A cluster dropped without `teardown` (a failed build): the attach's undoing (CNI
        // DEL) is still reported.
        if let Some(d) = self.detacher.take() {
            for e in d.detach_all() {
                eprintln!("podpath: teardown: {e}");
            }
        }
        let _ = self.take_down();
    }
}

/// Where the API's client files live: the sandbox's private `/run`.
const API_FILES: &str = "/run/podpath/api";
/// [`crate::apiserver::SERVICE_ACCOUNT_DIR`] as the sandbox sees it (`/var/run` is `/run`).
const SERVICE_ACCOUNT_MOUNT: &str = "/run/secrets/kubernetes.io/serviceaccount";

/// Makes `command` start in a mount namespace of its own where `dir` is bound over the
/// service account directory (the sandbox's mount namespace is left as it is).
fn mount_service_account(
    command: &mut std::process::Command,
    dir: &std::path::Path,
) -> Result<(), ClusterError> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::process::CommandExt as _;
    let enter = |e: std::ffi::NulError| ClusterError::Enter {
        netns: dir.display().to_string(),
        source: io::Error::other(e),
    };
    let source = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(enter)?;
    let target = std::ffi::CString::new(SERVICE_ACCOUNT_MOUNT).map_err(enter)?;
    let root = std::ffi::CString::new("/").map_err(enter)?;
    // SAFETY: only async-signal-safe system calls on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            use nix::libc;
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Creates a namespace, configures it from inside, and returns to `home`, whatever happened.
fn create_netns(
    name: &str,
    home: BorrowedFd<'_>,
    sysctls: &[(String, String)],
    listeners: &[Listener],
) -> Result<(Netns, Netlink, Vec<ListenerSocket>), BuildError> {
    create_netns_with(name, home, sysctls, listeners, false)
}

fn create_netns_with(
    name: &str,
    home: BorrowedFd<'_>,
    sysctls: &[(String, String)],
    listeners: &[Listener],
    dns: bool,
) -> Result<(Netns, Netlink, Vec<ListenerSocket>), BuildError> {
    let ns = Netns::create_and_enter(name).map_err(|source| BuildError::Netns {
        netns: name.into(),
        source,
    })?;
    let inside = configure_inside(name, sysctls, listeners).and_then(|(nl, mut sockets)| {
        if dns {
            let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53);
            let bind_err = |proto, source| BuildError::Listener {
                netns: name.into(),
                listener: Listener { port: 53, proto },
                source,
            };
            sockets.push(ListenerSocket::DnsUdp(
                std::net::UdpSocket::bind(addr).map_err(|e| bind_err(Proto::Udp, e))?,
            ));
            sockets.push(ListenerSocket::DnsTcp(
                std::net::TcpListener::bind(addr).map_err(|e| bind_err(Proto::Tcp, e))?,
            ));
        }
        Ok((nl, sockets))
    });
    netns::enter(home).map_err(|source| BuildError::Netns {
        netns: name.into(),
        source,
    })?;
    let (nl, sockets) = inside?;
    Ok((ns, nl, sockets))
}

fn configure_inside(
    name: &str,
    sysctls: &[(String, String)],
    listeners: &[Listener],
) -> Result<(Netlink, Vec<ListenerSocket>), BuildError> {
    let ns_err = |source| BuildError::Netns {
        netns: name.into(),
        source,
    };
    for (key, value) in IPV6_OFF {
        match netns::write_sysctl(key, value) {
            // A kernel booted without IPv6 has nothing to turn off.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other.map_err(ns_err)?,
        }
    }
    for (key, value) in sysctls {
        netns::write_sysctl(key, value).map_err(ns_err)?;
    }
    let mut nl = Netlink::open().map_err(|source| BuildError::Netlink {
        netns: name.into(),
        source,
    })?;
    // `lo` is always ifindex 1 in a new namespace.
    nl.set_up(1).map_err(|source| BuildError::Netlink {
        netns: name.into(),
        source,
    })?;
    let mut sockets = Vec::with_capacity(listeners.len());
    for &listener in listeners {
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, listener.port);
        let socket = match listener.proto {
            Proto::Tcp => std::net::TcpListener::bind(addr).map(ListenerSocket::Tcp),
            Proto::Udp => std::net::UdpSocket::bind(addr).map(ListenerSocket::Udp),
        }
        .map_err(|source| BuildError::Listener {
            netns: name.into(),
            listener,
            source,
        })?;
        sockets.push(socket);
    }
    Ok((nl, sockets))
}

fn nl_err(netns: &str) -> impl Fn(NetlinkError) -> BuildError + '_ {
    move |source| BuildError::Netlink {
        netns: netns.to_string(),
        source,
    }
}

fn build_on_this_thread(
    topo: &Topology,
    prefix: &str,
    drivers: &Drivers,
    parts: &mut Parts,
) -> Result<(), BuildError> {
    let named = |name: &str| format!("{prefix}{name}");
    let home: OwnedFd = netns::current().map_err(|source| BuildError::Netns {
        netns: "sandbox".into(),
        source,
    })?;
    let u = &topo.underlay;
    let (underlay, mut nl_u, _) = create_netns(&named(&u.netns), home.as_fd(), &[], &[])?;
    parts.underlay = Some(underlay);
    let bridge = nl_u
        .add_bridge(&u.bridge, UNDERLAY_BRIDGE_MAC, u.mtu)
        .map_err(nl_err(&u.netns))?;
    nl_u.set_up(bridge).map_err(nl_err(&u.netns))?;

    let mut node_links = Vec::with_capacity(topo.nodes.len());
    let mut pod_links = Vec::with_capacity(topo.pods.len());
    for node in &topo.nodes {
        let (ns, mut nl, _) = create_netns(&named(&node.name), home.as_fd(), &node.sysctls, &[])?;
        let port = nl_u
            .add_veth(
                &node.underlay_port,
                None,
                &node.eth0.name,
                Some(node.eth0.mac),
                Some(ns.as_fd()),
                node.eth0.mtu,
            )
            .map_err(nl_err(&u.netns))?;
        parts.nodes.push(ns);
        nl_u.set_master(port, bridge).map_err(nl_err(&u.netns))?;
        nl_u.set_up(port).map_err(nl_err(&u.netns))?;
        let ns = parts.nodes.last().expect("pushed above");
        program_node(topo, node, ns, &mut nl, drivers, prefix)?;
        node_links.push(nl);
    }

    if let Some(ext) = &topo.external {
        let (ns, mut nl, sockets) =
            create_netns(&named(&ext.name), home.as_fd(), &[], &ext.listeners)?;
        let name: Arc<str> = Arc::from(ext.name.as_str());
        parts
            .listeners
            .extend(sockets.into_iter().map(|s| (name.clone(), s)));
        let port = nl_u
            .add_veth(
                &ext.underlay_port,
                None,
                &ext.eth0.name,
                Some(ext.eth0.mac),
                Some(ns.as_fd()),
                ext.eth0.mtu,
            )
            .map_err(nl_err(&u.netns))?;
        parts.external = Some(ns);
        nl_u.set_master(port, bridge).map_err(nl_err(&u.netns))?;
        nl_u.set_up(port).map_err(nl_err(&u.netns))?;
        let err = nl_err(&ext.name);
        let eth0 = nl.link_index(&ext.eth0.name).map_err(&err)?;
        nl.add_addr(eth0, ext.eth0.addr).map_err(&err)?;
        nl.set_up(eth0).map_err(&err)?;
    }

    for pod in &topo.pods {
        let runs_dns = drivers.dns == DnsDriver::Builtin
            && topo.dns.as_ref().is_some_and(|d| d.pod == pod.name);
        let (ns, mut nl, sockets) = create_netns_with(
            &named(&pod.name),
            home.as_fd(),
            &[],
            &pod.listeners,
            runs_dns,
        )?;
        let name: Arc<str> = Arc::from(pod.name.as_str());
        parts
            .listeners
            .extend(sockets.into_iter().map(|s| (name.clone(), s)));
        parts.pods.push(ns);
        let node = &topo.nodes[pod.node];
        let mut ctx = PodContext {
            topology: topo,
            pod,
            node,
            node_netns: &parts.nodes[pod.node],
            node_netlink: &mut node_links[pod.node],
            pod_netns: parts.pods.last().expect("pushed above"),
            pod_netlink: &mut nl,
            prefix,
        };
        let attachment = drivers.attach.attach(&mut ctx)?;
        parts.attachments.push(attachment);
        pod_links.push(nl);
    }
    wait_for_veths(node_links.iter_mut().chain(&mut pod_links), LINKS_UP_WAIT);
    Ok(())
}

/// Longest wait for the veths of a new cluster to be operationally up.
const LINKS_UP_WAIT: Duration = Duration::from_secs(2);

/// Waits until every veth that is up in these namespaces is operationally up too. A new veth
/// sends into a no-op queue until the kernel's link watcher (a work queue) has seen its
/// carrier: on a loaded machine that can take long enough for a flow's first packets to be
/// dropped. Gives up quietly after `limit` (flows then say what they saw).
fn wait_for_veths<'a>(sockets: impl Iterator<Item = &'a mut Netlink>, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    for nl in sockets {
        loop {
            let pending = match nl.links() {
                Ok(links) => links
                    .iter()
                    .any(|l| l.up && !l.oper_up && l.kind.as_deref() == Some("veth")),
                Err(_) => false,
            };
            if !pending || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The node's `eth0`, then its pod attach's and node network's objects, then podpath's own
/// routes (the default route via the underlay gateway).
fn program_node(
    topo: &Topology,
    node: &Node,
    ns: &Netns,
    nl: &mut Netlink,
    drivers: &Drivers,
    prefix: &str,
) -> Result<(), BuildError> {
    let err = nl_err(&node.name);
    let eth0 = nl.link_index(&node.eth0.name).map_err(&err)?;
    nl.add_addr(eth0, node.eth0.addr).map_err(&err)?;
    nl.set_up(eth0).map_err(&err)?;
    let mut ctx = NodeContext {
        topology: topo,
        node,
        netns: ns,
        netlink: nl,
        prefix,
    };
    drivers.attach.prepare_node(&mut ctx)?;
    drivers.network.setup(&mut ctx)?;
    for r in &node.routes {
        let ifindex = nl
            .link_index(&r.dev)
            .map_err(|_| BuildError::UnknownDevice {
                netns: node.name.clone(),
                what: format!("route {}", r.dst),
                dev: r.dev.clone(),
            })?;
        nl.add_route(r.dst, r.via, ifindex, r.onlink)
            .map_err(&err)?;
    }
    Ok(())
}
