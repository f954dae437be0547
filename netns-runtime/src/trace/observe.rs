//! Observing a flow on a built cluster: captures on every interface, the netfilter trace of
//! every node, and the conntrack entries the nodes made or changed meanwhile.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::assembly::Observation;
use super::conntrack;
use super::nftrace::{self, RuleBook, RuleEvent, TraceSet};
use crate::Cluster;
use crate::capture::CaptureSet;
use crate::tool::ToolError;
use crate::topology::{EXTERNAL_HOST, UNDERLAY_NETNS};

/// How long captures must stay quiet after a flow before they stop: the tail of a flow (the
/// FIN exchange, a late retransmission) is then in them.
pub const SETTLE_QUIET: Duration = Duration::from_millis(2);
/// Longest wait for captures to go quiet.
pub const SETTLE_MAX: Duration = Duration::from_millis(200);

/// The nodes' rule books (rule handle -> rule text), read once per cluster when a journey first
/// needs its rules' texts: the rules do not change while flows run.
pub type RuleBooks = Vec<(String, RuleBook)>;

/// What can go wrong observing a flow. Clone, because the outcome of the once-per-cluster setup
/// (switching the trace on, reading the rules) is kept and told again to every later flow.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObserveError {
    #[error("no namespace for node {0}")]
    NoNode(String),
    #[error("enabling the netfilter trace in {node}: {source}")]
    EnableTrace {
        node: String,
        source: Arc<ToolError>,
    },
    #[error("enabling the trace panicked")]
    EnablePanicked,
    #[error("reading the rules of {node}: {source}")]
    ReadRules {
        node: String,
        source: Arc<ToolError>,
    },
    #[error("starting the trace: {0}")]
    StartTrace(Arc<io::Error>),
    #[error("listening to conntrack events: {0}")]
    StartConntrack(Arc<io::Error>),
    #[error("starting captures: {0}")]
    StartCaptures(Arc<io::Error>),
}

/// Observes the flows of one cluster: switches the netfilter trace on in its nodes on the first
/// observed flow, and keeps its nodes' rule texts once a journey has needed them. One observer
/// per cluster, owned by whoever observes it; the cluster itself holds no observation state.
#[derive(Debug, Default)]
pub struct Observer {
    /// Whether the netfilter trace is on in every node: switched on by the first observed flow.
    trace_enabled: OnceLock<Result<(), ObserveError>>,
    /// The nodes' rule texts, read when a journey first needs them.
    rule_books: OnceLock<Result<RuleBooks, ObserveError>>,
}

impl Cluster {
    /// Every interface of the cluster, as (namespace as cases name it, namespace, interface):
    /// pods' `eth0`; nodes' `eth0`, `cni0`, pod veths and `flannel.1`; the underlay bridge and
    /// its ports; the external host's `eth0`.
    pub fn capture_points(&self) -> Vec<(String, BorrowedFd<'_>, String)> {
        let topo = self.topology();
        let mut points = Vec::new();
        for (pod, a) in topo.pods.iter().zip(self.attachments()) {
            if let (Some(ns), Some(a)) = (self.pod_netns(&pod.name), a) {
                points.push((pod.name.clone(), ns.as_fd(), a.iface.clone()));
            }
        }
        for (i, node) in topo.nodes.iter().enumerate() {
            let Some(ns) = self.node_netns(&node.name) else {
                continue;
            };
            let mut add = |iface: &str| points.push((node.name.clone(), ns.as_fd(), iface.into()));
            add(&node.eth0.name);
            let declared = self.node_interfaces(i).cloned().unwrap_or_default();
            // The attach's node interfaces (cni0), the pods' host sides, then the node
            // network's (flannel.1): the order the builtin stack makes them in.
            for iface in &declared.attach {
                add(iface);
            }
            for (pod, a) in topo.pods.iter().zip(self.attachments()) {
                if pod.node == i
                    && let Some(host) = a.as_ref().and_then(|a| a.host_iface.as_ref())
                {
                    add(host);
                }
            }
            for iface in &declared.network {
                add(iface);
            }
        }
        if let Some(ns) = self.underlay_netns() {
            points.push((
                UNDERLAY_NETNS.into(),
                ns.as_fd(),
                topo.underlay.bridge.clone(),
            ));
            for node in &topo.nodes {
                points.push((
                    UNDERLAY_NETNS.into(),
                    ns.as_fd(),
                    node.underlay_port.clone(),
                ));
            }
            if let Some(ext) = &topo.external {
                points.push((UNDERLAY_NETNS.into(), ns.as_fd(), ext.underlay_port.clone()));
            }
        }
        if let (Some(ext), Some(ns)) = (&topo.external, self.external_netns()) {
            points.push((EXTERNAL_HOST.into(), ns.as_fd(), ext.eth0.name.clone()));
        }
        points
    }

    /// Where the netfilter trace and conntrack events are read: every node, as (name, namespace).
    pub fn trace_points(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.topology()
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), self.node_netns(&n.name)?.as_fd())))
            .collect()
    }
}

impl Observer {
    /// An observer for a cluster none has observed yet.
    pub fn new() -> Observer {
        Observer::default()
    }

    /// Switches the netfilter trace on in every node, once.
    fn enable_trace(&self, cluster: &Cluster) -> Result<(), ObserveError> {
        self.trace_enabled
            .get_or_init(|| {
                // One `nft` per node, side by side: each loads the node's whole ruleset first.
                std::thread::scope(|scope| {
                    let runs: Vec<_> = cluster
                        .topology()
                        .nodes
                        .iter()
                        .map(|node| {
                            let ns = cluster.node_netns(&node.name);
                            scope.spawn(move || {
                                let ns =
                                    ns.ok_or_else(|| ObserveError::NoNode(node.name.clone()))?;
                                nftrace::enable(ns.as_fd()).map_err(|e| ObserveError::EnableTrace {
                                    node: node.name.clone(),
                                    source: Arc::new(e),
                                })
                            })
                        })
                        .collect();
                    runs.into_iter()
                        .try_for_each(|run| run.join().unwrap_or(Err(ObserveError::EnablePanicked)))
                })
            })
            .clone()
    }

    /// Fills in the text of every rule `events` met (`RuleEvent::rule`), from the nodes'
    /// rulesets, read on the first call.
    pub fn annotate_rules<'e>(
        &self,
        cluster: &Cluster,
        events: impl IntoIterator<Item = &'e mut RuleEvent>,
    ) -> Result<(), ObserveError> {
        let books = self
            .rule_books
            .get_or_init(|| {
                let mut books = Vec::new();
                for node in &cluster.topology().nodes {
                    let ns = cluster
                        .node_netns(&node.name)
                        .ok_or_else(|| ObserveError::NoNode(node.name.clone()))?;
                    let book = RuleBook::read(ns.as_fd()).map_err(|e| ObserveError::ReadRules {
                        node: node.name.clone(),
                        source: Arc::new(e),
                    })?;
                    books.push((node.name.clone(), book));
                }
                Ok(books)
            })
            .as_ref()
            .map_err(Clone::clone)?;
        for e in events {
            if let Some((_, book)) = books.iter().find(|(node, _)| *node == e.netns) {
                book.annotate(std::slice::from_mut(e));
            }
        }
        Ok(())
    }

    /// Runs `f` (which sends a flow) while capturing on every interface and tracing netfilter in
    /// every node; then waits for the captures to go quiet and reads every node's conntrack
    /// table. Returns what `f` returned and what was seen.
    pub fn observe<R>(
        &self,
        cluster: &Cluster,
        f: impl FnOnce() -> R,
    ) -> Result<(R, Observation), ObserveError> {
        self.enable_trace(cluster)?;
        let points = cluster.capture_points();
        let capture_args: Vec<(&str, BorrowedFd<'_>, &str)> = points
            .iter()
            .map(|(name, fd, iface)| (name.as_str(), *fd, iface.as_str()))
            .collect();
        let nodes = cluster.trace_points();
        let trace_args: Vec<(&str, BorrowedFd<'_>)> =
            nodes.iter().map(|(n, fd)| (n.as_str(), *fd)).collect();
        let mut traces =
            TraceSet::start(&trace_args).map_err(|e| ObserveError::StartTrace(Arc::new(e)))?;
        let events = conntrack::EventSet::start(&trace_args)
            .map_err(|e| ObserveError::StartConntrack(Arc::new(e)))?;
        let mut captures = CaptureSet::start(&capture_args)
            .map_err(|e| ObserveError::StartCaptures(Arc::new(e)))?;
        let result = f();
        let started = Instant::now();
        captures.settle(SETTLE_QUIET, SETTLE_MAX);
        traces.settle(Duration::ZERO, SETTLE_MAX.saturating_sub(started.elapsed()));
        let points = captures.points();
        let (captured, stats) = captures.stop_with_stats();
        let (mut rules, trace_stats) = traces.stop_with_stats();
        let mut problems: Vec<String> = trace_stats
            .iter()
            .filter(|s| !s.complete())
            .map(|s| {
                format!(
                    "netfilter trace of {}: {} overruns, {} malformed{}",
                    s.netns,
                    s.overruns,
                    s.malformed,
                    s.error
                        .as_deref()
                        .map(|e| format!(", {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        for s in &stats {
            if s.dropped > 0 {
                problems.push(format!(
                    "{}: the kernel dropped {} frames",
                    s.point, s.dropped
                ));
            }
            if let Some(e) = &s.error {
                problems.push(format!("{}: {e}", s.point));
            }
        }
        // podpath's own trace table is not part of the path.
        rules.retain(|e| e.table != nftrace::TRACE_TABLE);
        let (tables, conntrack_problems) = events.stop();
        problems.extend(conntrack_problems);
        Ok((
            result,
            Observation {
                captures: captured,
                points,
                rules,
                conntrack: tables,
                problems,
                nodes: nodes.into_iter().map(|(n, _)| n).collect(),
            },
        ))
    }
}
