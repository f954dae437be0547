//! The suite: finding cases, and running their flows over one shared cluster per case.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use netns_runtime::change::{self, ChangeSink, ClusterChange};

use netns_runtime::proxy::driver::{ProxyError, ProxyMode};
use netns_runtime::stack::{Attachment, RuleTable};
use netns_runtime::trace::observe::ObserveError;
use netns_runtime::{BuildError, Cluster, ClusterError, ProbeTarget};

use netns_runtime::trace::assembly::{FlowHints, Journey, Observation, StepKind, Way, assemble};

use crate::diag::CaseError;
use crate::hop_match;
use crate::plan::Expect;
use crate::plan::{self, FlowPlan, Plan, Target};
use crate::report::{ArtifactPolicy, FlowArtifacts, ReportSink};
use crate::stack::{Stack, applies};
use crate::verdict::{Verdict, dns_fault, judge, judge_exec};
use netns_runtime::resolver::Resolution;
use netns_runtime::trace::conntrack;
use netns_runtime::trace::observe::Observer;

/// Why a case's run could not give a flow its verdict or a node its snapshot. A flow that ran
/// and failed is not an error: its [`Verdict`] says so.
///
/// Cloned because a cluster that failed to build fails every later trial of its run with the
/// same error; the sources are shared for that.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("building the cluster of {} on stack {stack} failed: {source}", file.display())]
    Build {
        file: PathBuf,
        stack: String,
        source: Arc<BuildError>,
    },
    #[error("programming Services of {} failed: {source}", file.display())]
    Services {
        file: PathBuf,
        source: Arc<ProxyError>,
    },
    /// What the stack's pod attach decided does not fit the case (an address outside its
    /// node's pod subnet, one address for two pods).
    #[error("what stack {stack}'s pod attach decided does not fit {}:\n{source}", file.display())]
    Bind {
        file: PathBuf,
        stack: String,
        source: Arc<CaseError>,
    },
    /// A trial came after the last one the run expected, and the cluster was gone.
    #[error("the cluster was already taken down")]
    TakenDown,
    /// Observing a flow that expects hops failed (without hops it runs unobserved instead).
    #[error("observing the flow failed: {0}")]
    Observe(#[from] ObserveError),
    /// A query of the built cluster failed: a name's resolution, a node's rule tables or state.
    #[error(transparent)]
    Cluster(Arc<ClusterError>),
}

impl From<ClusterError> for RunError {
    fn from(e: ClusterError) -> RunError {
        RunError::Cluster(Arc::new(e))
    }
}

/// A case file and what loading it gave.
pub struct LoadedCase {
    /// The case's name in trial names: its path below the suite root, without extension.
    pub id: String,
    pub path: PathBuf,
    /// The root of its suite ([`crate::suite_root::of`]), where `snapshots/` is.
    pub root: PathBuf,
    pub plan: Result<Plan, CaseError>,
}

/// Loads every case under each of `paths` (a directory, searched recursively, or a file). A
/// path that does not exist is an error (a usage error, not a failing case).
pub fn load(paths: &[PathBuf]) -> io::Result<Vec<LoadedCase>> {
    load_on(paths, &Stack::builtin())
}

/// Like [`load`], each case planned for what `stack`'s drivers declare the datapath does.
pub fn load_on(paths: &[PathBuf], stack: &Stack) -> io::Result<Vec<LoadedCase>> {
    let datapath = stack.datapath();
    let mut cases = Vec::new();
    for root in paths {
        if let Err(e) = std::fs::metadata(root) {
            return Err(io::Error::new(e.kind(), format!("{}: {e}", root.display())));
        }
        let files = if root.is_dir() {
            plan::discover(root)?
        } else {
            vec![root.clone()]
        };
        // Named below the suite the path belongs to, however the path was given.
        let base = crate::suite_root::of(root);
        for path in files {
            let id = case_id(&base, &path);
            let plan = plan::load_for(&path, datapath);
            cases.push(LoadedCase {
                id,
                path,
                root: base.clone(),
                plan,
            });
        }
    }
    Ok(cases)
}

/// A prefix for a case's namespace names that keeps concurrently running cases apart:
/// `services/clusterip` gives `services.clusterip.` (so `services.clusterip.node1`).
pub fn netns_prefix(case_id: &str) -> String {
    format!("{}.", case_id.replace('/', "."))
}

fn case_id(base: &Path, path: &Path) -> String {
    crate::suite_root::relative(base, &path.with_extension(""))
}

/// Whether flows without hop expectations are observed too (for their journeys and
/// artifacts): yes unless `PODPATH_OBSERVE` is `off` or `0`. Flows with hops always are.
pub fn observe_from_env() -> bool {
    std::env::var("PODPATH_OBSERVE").map_or(true, |v| v != "off" && v != "0")
}

/// One way a case runs: with no proxy, or in one proxy mode, on the run's stack.
pub struct RunKind {
    /// Starts every trial name of this run: `<case>` or `<case>::<mode>`.
    pub name: String,
    /// Names its snapshots: `<case>__<mode>` with `/` as `__`.
    pub snapshot_base: String,
    /// Namespace-name prefix that keeps this run's cluster apart from the others.
    pub netns_prefix: String,
    pub proxy: Option<ProxyMode>,
    /// Why none of this run's trials can run on the stack (they are reported ignored).
    pub ignored: Option<String>,
    /// Why its snapshot trials cannot run (snapshots record the builtin stack).
    pub snapshots_ignored: Option<String>,
}

impl RunKind {
    /// A flow's trial name in this run: `<case>::<flow>` or `<case>::<mode>::<flow>`.
    pub fn flow_name(&self, flow: &FlowPlan) -> String {
        format!("{}::{}", self.name, flow.name)
    }
}

/// The runs of a case on `stack`: one per proxy mode, or a single one without a proxy.
pub fn runs_of(case_id: &str, plan: &Plan, stack: &Stack) -> Vec<RunKind> {
    let mut flat = case_id.replace('/', "__");
    let case_ignored = applies::run_ignored(plan, stack);
    // The builtin stack's snapshots are `<case>[__<mode>]__<node>`; a builtin Calico stack
    // keeps its own for the Calico cases, `<case>__<stack>[__<mode>]__<node>`.
    let own = stack
        .snapshot_name()
        .filter(|_| applies::is_calico_case(plan));
    if let Some(name) = own {
        flat = format!("{flat}__{name}");
    }
    let snapshots_ignored = (!stack.is_builtin() && own.is_none()).then(|| {
        format!(
            "snapshots record the builtin stack's tables (and a builtin Calico stack's, for the Calico cases), and stack {} is not the builtin one",
            stack.name
        )
    });
    if plan.proxy_modes.is_empty() {
        return vec![RunKind {
            name: case_id.to_string(),
            snapshot_base: flat,
            netns_prefix: netns_prefix(case_id),
            proxy: None,
            ignored: case_ignored,
            snapshots_ignored,
        }];
    }
    stack
        .proxy_runs(&plan.proxy_modes)
        .into_iter()
        .map(|run| {
            let (mode, ignored) = match run {
                Ok(mode) => (mode, case_ignored.clone()),
                Err((mode, reason)) => (mode, Some(reason)),
            };
            RunKind {
                name: format!("{case_id}::{mode}"),
                snapshot_base: format!("{flat}__{mode}"),
                netns_prefix: format!("{}{mode}.", netns_prefix(case_id)),
                proxy: Some(mode),
                ignored,
                snapshots_ignored: snapshots_ignored.clone(),
            }
        })
        .collect()
}

/// The same probe to another address (a name's resolved one).
fn retarget(target: ProbeTarget, ip: std::net::Ipv4Addr) -> ProbeTarget {
    match target {
        ProbeTarget::Tcp(a) => ProbeTarget::Tcp(std::net::SocketAddrV4::new(ip, a.port())),
        ProbeTarget::Udp(a) => ProbeTarget::Udp(std::net::SocketAddrV4::new(ip, a.port())),
        ProbeTarget::Icmp(_) => ProbeTarget::Icmp(ip),
    }
}

/// Adds `more` to a verdict's reason, after what it already says.
fn add_reason(verdict: &mut Verdict, more: String) {
    verdict.reason = Some(match verdict.reason.take() {
        Some(other) => format!("{other}\n{more}"),
        None => more,
    });
}

/// Why a failed flow could not have passed: it goes between nodes (to a pod, a Service
/// endpoint or, to resolve a name, the DNS pod, on another node than its client) and the stack
/// has no node network.
fn no_node_network(plan: &Plan, flow: &FlowPlan, stack: &Stack) -> Option<String> {
    if stack.network != crate::stack::NetworkLayer::None {
        return None;
    }
    let pods = &plan.topology.pods;
    let node_of = |name: &str| pods.iter().find(|p| p.name == name).map(|p| p.node);
    let client = pods.iter().find(|p| p.name == flow.from)?;
    let mut servers: Vec<&str> = pods
        .iter()
        .filter(|p| p.eth0.addr.addr() == flow.target.ip())
        .map(|p| p.name.as_str())
        .collect();
    if let Expect::Reach { pods, .. } = &flow.expect {
        servers.extend(pods.iter().map(String::as_str));
    }
    if let Some(dns) = &plan.topology.dns
        && (flow.dns_name.is_some() || flow.exec.is_some())
    {
        servers.push(&dns.pod);
    }
    let far = servers
        .into_iter()
        .find(|&s| node_of(s).is_some_and(|n| n != client.node))?;
    let node_name = |i: usize| plan.topology.nodes[i].name.as_str();
    Some(format!(
        "stack:         stack {} has no node network (nodeNetwork: none): nothing connects the nodes' pod subnets ({} is on {}, {far} on {})",
        stack.name,
        client.name,
        node_name(client.node),
        node_name(node_of(far)?),
    ))
}

/// The verdict of a flow that only resolves its name (or whose name did not resolve).
fn dns_only_verdict(
    name: &str,
    resolution: &Resolution,
    fault: Option<String>,
    only_dns: bool,
) -> Verdict {
    let observed = match resolution.exchanges.last() {
        Some(_) => format!(
            "{name} -> {} {}",
            resolution.rcode(),
            resolution
                .addresses()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => format!("{name}: no question was asked"),
    };
    let reason = fault.or_else(|| {
        (!only_dns).then(|| format!("{name} did not resolve, so there was nothing to connect to"))
    });
    Verdict {
        passed: reason.is_none(),
        expected: format!("{name} resolves as the case says"),
        observed,
        reason,
    }
}

/// The probe a flow sends.
pub fn probe_target(flow: &FlowPlan) -> ProbeTarget {
    match flow.target {
        Target::Tcp(a) => ProbeTarget::Tcp(a),
        Target::Udp(a) => ProbeTarget::Udp(a),
        Target::Icmp(a) => ProbeTarget::Icmp(a),
    }
}

/// How flows are run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Observe flows without hop expectations too (see [`observe_from_env`]).
    pub observe: bool,
    /// Which flows get their artifacts made.
    pub artifacts: ArtifactPolicy,
    /// Show the text of every rule a journey met, even when the flow passes (`podpath trace`);
    /// otherwise they are read only for failing flows and artifacts.
    pub rule_texts: bool,
}

/// The cluster moved to another revision before a flow ran (a case's steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionChange {
    pub from: usize,
    pub to: usize,
    /// What changed, in order, as the change sink got it.
    pub changes: Vec<ClusterChange>,
    /// The time to the datapath: from the first change handed to the change sink to the last
    /// node's rules loaded (the builtin proxy's full sync returns once the kernel has the new
    /// ruleset, so the next packet meets it) and the DNS server's records swapped.
    pub programmed: Duration,
}

impl RevisionChange {
    /// `revision 1 -> 2 (pod/default/b ready=false), programmed in 12.3ms`.
    pub fn summary(&self) -> String {
        let changes: Vec<String> = self.changes.iter().map(ToString::to_string).collect();
        format!(
            "revision {} -> {} ({}), programmed in {}",
            self.from,
            self.to,
            changes.join(", "),
            crate::run_output::human_duration(self.programmed)
        )
    }
}

/// A flow's run: its verdict, and what was observed of it.
pub struct FlowRun {
    /// When the cluster had to change for this flow: how, and how long the datapath took.
    pub change: Option<RevisionChange>,
    pub verdict: Verdict,
    pub observation: Option<Observation>,
    pub journey: Option<Journey>,
    /// Made when the run's [`ArtifactPolicy`] asks for this flow's.
    pub artifacts: Option<FlowArtifacts>,
}

/// A flow's failure for people (`None` when it passed), after writing its artifacts to the
/// sink, if it has any: the failure then ends with where they are.
pub fn flow_failure(
    run: &FlowRun,
    flow: &FlowPlan,
    trial: &str,
    sink: &ReportSink,
) -> Option<String> {
    let mut failure = (!run.verdict.passed).then(|| run.verdict.render(flow));
    if let Some(a) = &run.artifacts {
        match sink.flow_artifacts(trial, a) {
            Ok(dir) => {
                if let Some(f) = &mut failure {
                    *f += &format!("artifacts: {}\n", dir.display());
                }
            }
            Err(e) => eprintln!("podpath: warning: artifacts of {trial}: {e}"),
        }
    }
    failure
}

/// How a flow's observed part ended.
enum Head {
    /// Nothing more to send: an `exec` flow, or a name that did not resolve to connect to.
    Done(Verdict),
    /// The first attempt went to `target`.
    Sent {
        target: ProbeTarget,
        first: netns_runtime::Outcome,
        dns_part: Option<(Resolution, Option<String>)>,
    },
}

enum ClusterState {
    NotBuilt,
    Built(Box<Cluster>),
    Failed(RunError),
    Released,
}

/// One case's run in one proxy mode: its cluster is built when the first trial needs it,
/// shared by its trials (one at a time, so observations never mix), and taken down after the
/// last expected trial.
pub struct CaseRun {
    /// What the case decides, planned before anything is built.
    pub planned: Plan,
    /// The plan bound to what the stack's implementation decided (pod addresses, host-side
    /// interfaces), once the cluster is built and that differs from the planned one.
    bound: OnceLock<Plan>,
    /// The service proxy programmed on every node; `None` when the case has no proxy.
    pub proxy: Option<ProxyMode>,
    /// The implementation under test.
    pub stack: Arc<Stack>,
    /// The case's name in trial names (a `restore` proxy's `{case}`).
    case_id: String,
    netns_prefix: String,
    state: Mutex<(ClusterState, usize)>,
    /// The revision the built cluster is in (read and written under `state`'s lock);
    /// `usize::MAX` when a move failed halfway.
    revision: AtomicUsize,
    /// Who gets the changes when the cluster moves between revisions (a served API).
    change_sink: Option<Arc<dyn ChangeSink>>,
    /// Observes the cluster's flows (its trace switched on, its rule texts read, once).
    observer: Observer,
}

impl CaseRun {
    /// `pending` is how many trials of this run will happen; the cluster goes down after them.
    /// `netns_prefix` starts every namespace name of the case's cluster, so that cases run side
    /// by side in one sandbox (empty when cases run one at a time).
    pub fn new(
        plan: Plan,
        proxy: Option<ProxyMode>,
        pending: usize,
        netns_prefix: String,
    ) -> CaseRun {
        CaseRun::on_stack(
            plan,
            proxy,
            pending,
            netns_prefix,
            Arc::new(Stack::builtin()),
        )
    }

    /// Like [`CaseRun::new`], on `stack` instead of the builtin one.
    pub fn on_stack(
        plan: Plan,
        proxy: Option<ProxyMode>,
        pending: usize,
        netns_prefix: String,
        stack: Arc<Stack>,
    ) -> CaseRun {
        let case_id = plan
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        CaseRun {
            planned: plan,
            bound: OnceLock::new(),
            proxy,
            stack,
            case_id,
            netns_prefix,
            state: Mutex::new((ClusterState::NotBuilt, pending)),
            revision: AtomicUsize::new(0),
            change_sink: None,
            observer: Observer::new(),
        }
    }

    /// The same run, its case named `id` (its path below the suite root, as in trial names).
    pub fn for_case(self, id: &str) -> CaseRun {
        CaseRun {
            case_id: id.to_string(),
            ..self
        }
    }

    /// The same run, handing every change between revisions to `sink` before the builtin
    /// proxy and DNS are reprogrammed.
    pub fn with_change_sink(self, sink: Arc<dyn ChangeSink>) -> CaseRun {
        CaseRun {
            change_sink: Some(sink),
            ..self
        }
    }

    /// Brings the built cluster to revision `to` of the plan, if it is not there: the changes
    /// between (forward, or backward as inverses) go to the change sink, then every node's
    /// service proxy gets the revision's tables (a full sync) and the DNS server its records.
    fn move_to(&self, cluster: &Cluster, to: usize) -> Result<Option<RevisionChange>, RunError> {
        let from = self.revision.load(Ordering::SeqCst);
        let plan = self.plan();
        let Some(revision) = plan.revisions.get(to) else {
            return Ok(None);
        };
        if from == to {
            return Ok(None);
        }
        let changes = change::between(&plan.changes(), from, to);
        self.revision.store(usize::MAX, Ordering::SeqCst);
        let start = Instant::now();
        if let Some(sink) = &self.change_sink {
            changes.iter().for_each(|c| sink.apply(c));
            sink.reached(to);
        }
        // The served API first, so watch-driven implementations get the events while the
        // builtin proxy and DNS are reprogrammed.
        if let Some(api) = cluster.api()
            && let Err(e) = crate::api_objects::sync(api, plan, to)
        {
            eprintln!(
                "podpath: {}: the served API could not follow revision {to}: {e}",
                plan.name
            );
        }
        // Only the builtin proxy is re-rendered here; a restored ruleset stays as captured,
        // and a proxy command learns changes from the API.
        if let Some(mode) = self.proxy
            && matches!(self.stack.proxy, crate::stack::ProxyLayer::Builtin(_))
        {
            cluster
                .apply_proxy(mode.builtin().as_ref(), &revision.proxy)
                .map_err(|e| RunError::Services {
                    file: plan.file.clone(),
                    source: Arc::new(e),
                })?;
        }
        if let Some(records) = &revision.dns {
            cluster.serve_dns(records);
        }
        let programmed = start.elapsed();
        self.revision.store(to, Ordering::SeqCst);
        Ok(Some(RevisionChange {
            from,
            to,
            changes,
            programmed,
        }))
    }

    fn build(&self) -> Result<Cluster, RunError> {
        // A cluster is built as declared.
        self.revision.store(0, Ordering::SeqCst);
        let planned = &self.planned;
        let file = &planned.file;
        let drivers = self.stack.drivers();
        let build_error = |e: BuildError| RunError::Build {
            file: file.clone(),
            stack: self.stack.name.clone(),
            source: Arc::new(e),
        };
        let mut cluster = Cluster::build_with(&planned.topology, &self.netns_prefix, &drivers)
            .map_err(build_error)?;
        // Bind: what the implementation decided is read back, and everything that depends on
        // pod addresses (endpoints, proxy tables, DNS records, flow targets) planned from it.
        let decided = planned
            .topology
            .pods
            .iter()
            .zip(cluster.attachments())
            .any(|(pod, a)| a.as_ref().is_some_and(|a| *a != Attachment::planned(pod)));
        if decided {
            let learned: Vec<Attachment> =
                cluster.attachments().iter().flatten().cloned().collect();
            let bound = plan::bind(planned, &learned).map_err(|e| RunError::Bind {
                file: file.clone(),
                stack: self.stack.name.clone(),
                source: Arc::new(e),
            })?;
            cluster.bind(bound.topology.clone()).map_err(build_error)?;
            let _ = self.bound.set(bound);
        }
        // The served API, from the bound plan: the same Services and endpoints the builtin
        // proxy programs below, and what a proxy or DNS command of the stack reads.
        if let Some(api) = &self.plan().api {
            let objects = crate::api_objects::objects(self.plan());
            cluster
                .serve_api(api.address, api.cluster_ip, objects)
                .map_err(build_error)?;
        }
        // A DNS command that reads the API starts once it is served.
        cluster.start_dns().map_err(build_error)?;
        if let Some(mode) = self.proxy
            && let Some(proxy) = self.stack.proxy_driver(
                mode,
                &self.case_id,
                &self.netns_prefix,
                cluster.kubeconfigs(),
            )
        {
            cluster
                .run_proxy(proxy, &self.plan().proxy)
                .map_err(|e| RunError::Services {
                    file: file.clone(),
                    source: Arc::new(e),
                })?;
        }
        Ok(cluster)
    }

    /// The plan flows run against: bound to what the implementation decided once the cluster
    /// is built, the planned one before (and with the builtin attach, always).
    pub fn plan(&self) -> &Plan {
        self.bound.get().unwrap_or(&self.planned)
    }

    /// The same run, expecting `pending` trials.
    pub fn with_pending(self, pending: usize) -> CaseRun {
        let state = Mutex::new((ClusterState::NotBuilt, pending));
        CaseRun {
            state,
            revision: AtomicUsize::new(0),
            ..self
        }
    }

    /// The rule tables the stack's drivers declared, which snapshots and reports dump.
    pub fn rule_tables(&self) -> Vec<RuleTable> {
        let drivers = self.stack.drivers();
        let mut tables = drivers.network.rule_tables();
        if let Some(mode) = self.proxy
            && let Some(proxy) =
                self.stack
                    .proxy_driver(mode, &self.case_id, "", Default::default())
        {
            tables.extend(proxy.rule_tables());
        }
        tables
    }

    /// Why flow `index` cannot run on this run's stack, if it cannot.
    pub fn flow_ignored(&self, index: usize) -> Option<String> {
        applies::flow_ignored(self.plan(), &self.plan().flows[index], &self.stack)
    }

    /// Runs `f` on the case's cluster, building it first if no trial has yet, and taking it down
    /// when this was the last pending trial.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&Cluster) -> R) -> Result<R, RunError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, pending) = &mut *guard;
        if matches!(state, ClusterState::NotBuilt) {
            *state = match self.build() {
                Ok(c) => ClusterState::Built(Box::new(c)),
                Err(e) => ClusterState::Failed(e),
            };
        }
        let result = match state {
            ClusterState::Built(cluster) => Ok(f(cluster)),
            ClusterState::Failed(e) => Err(e.clone()),
            ClusterState::Released => Err(RunError::TakenDown),
            ClusterState::NotBuilt => unreachable!("built above"),
        };
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            let old = std::mem::replace(state, ClusterState::Released);
            if let ClusterState::Built(cluster) = old
                && let Err(errors) = cluster.teardown()
            {
                for e in errors {
                    eprintln!("podpath: teardown of {}: {e}", self.plan().name);
                }
            }
        }
        result
    }

    /// Runs flow `index`: a command in the pod (`exec`), or the name's resolution (a flow to
    /// a DNS name) and then every attempt, and the verdict. With `observe`, the resolution and
    /// the first attempt run under observation (captures on every interface, the nodes'
    /// netfilter trace and conntrack tables), the journey is assembled and the flow's hops are
    /// checked against it; a flow that expects hops is always observed.
    pub fn run_flow(&self, index: usize, options: &RunOptions) -> Result<FlowRun, RunError> {
        self.with_cluster(|cluster| {
            // The plan as bound once the cluster is built: its flow targets are the addresses
            // the implementation gave.
            let flow = &self.plan().flows[index];
            // Trials run in any order: the cluster is brought to the flow's revision first.
            let change = self.move_to(cluster, flow.revision)?;
            let observe = options.observe || !flow.hops.is_empty();
            let (head, observation) = if observe {
                match self
                    .observer
                    .observe(cluster, || self.first_attempt(cluster, flow))
                {
                    Ok((head, obs)) => (head, Some(obs)),
                    Err(e) if flow.hops.is_empty() => {
                        eprintln!("podpath: {}: not observed: {e}", flow.name);
                        (self.first_attempt(cluster, flow), None)
                    }
                    Err(e) => return Err(RunError::Observe(e)),
                }
            } else {
                (self.first_attempt(cluster, flow), None)
            };
            let mut verdict = match head? {
                Head::Done(verdict) => verdict,
                Head::Sent {
                    target,
                    first,
                    dns_part,
                } => {
                    let mut outcomes = vec![first];
                    outcomes.extend(
                        (1..flow.attempts.max(1))
                            .map(|_| cluster.probe(&flow.from, target, flow.timeout)),
                    );
                    let mut verdict = judge(flow, cluster.topology(), &outcomes);
                    if let Some((resolution, fault)) = dns_part {
                        let answered = resolution
                            .answered()
                            .map_or_else(|| "no answer".to_string(), ToString::to_string);
                        verdict.observed = format!("resolved {answered}; {}", verdict.observed);
                        if let Some(fault) = fault {
                            verdict.passed = false;
                            verdict.reason = Some(fault);
                        }
                    }
                    verdict
                }
            };
            let mut observation = observation;
            let mut journey = observation
                .as_ref()
                .map(|obs| assemble(obs, &self.hints(flow)));
            let mut hop_fault = journey
                .as_ref()
                .and_then(|j| hop_match::check(&flow.hops, self.proxy, j));
            let failed = !verdict.passed || hop_fault.is_some();
            // Rule texts are read (once per cluster) only when someone will read them.
            if (failed || options.rule_texts || options.artifacts == ArtifactPolicy::All)
                && let (Some(obs), Some(j)) = (observation.as_mut(), journey.as_mut())
            {
                let steps = j.steps.iter_mut().filter_map(|s| match &mut s.kind {
                    StepKind::Rule(e) => Some(e),
                    _ => None,
                });
                if let Err(e) = self
                    .observer
                    .annotate_rules(cluster, obs.rules.iter_mut().chain(steps))
                {
                    obs.problems.push(e.to_string());
                }
                hop_fault = hop_match::check(&flow.hops, self.proxy, j);
            }
            if let Some(journey) = &journey {
                match hop_fault {
                    Some(fault) => {
                        verdict.passed = false;
                        add_reason(&mut verdict, fault);
                    }
                    // A flow that failed otherwise: where its packet got to.
                    None if !verdict.passed && flow.exec.is_none() => {
                        add_reason(&mut verdict, hop_match::last_seen(journey, Way::Forward));
                    }
                    None => {}
                }
            }
            if !verdict.passed
                && let Some(why) = no_node_network(self.plan(), flow, &self.stack)
            {
                add_reason(&mut verdict, why);
            }
            let wanted = options.artifacts != ArtifactPolicy::None
                && (options.artifacts == ArtifactPolicy::All || !verdict.passed);
            let artifacts = match (&observation, &journey) {
                (Some(obs), Some(journey)) if wanted => {
                    Some(self.artifacts(cluster, flow, obs, journey, &verdict))
                }
                _ => None,
            };
            Ok(FlowRun {
                change,
                verdict,
                observation,
                journey,
                artifacts,
            })
        })?
    }

    /// What goes into a flow's artifact directory.
    fn artifacts(
        &self,
        cluster: &Cluster,
        flow: &FlowPlan,
        obs: &Observation,
        journey: &Journey,
        verdict: &Verdict,
    ) -> FlowArtifacts {
        let mode = self.proxy.map(ProxyMode::name);
        let tables = self.rule_tables();
        let rules = self
            .plan()
            .topology
            .nodes
            .iter()
            .map(|n| {
                let text = cluster
                    .node_rules(&tables, &n.name)
                    .and_then(|mut t| {
                        t.push_str(&cluster.node_state(&n.name)?);
                        Ok(t)
                    })
                    .unwrap_or_else(|e| format!("(could not read: {e})\n"));
                (n.name.clone(), text)
            })
            .collect();
        let conntrack = obs
            .conntrack
            .iter()
            .map(|(node, entries)| (node.clone(), conntrack::render(entries)))
            .collect();
        let mut logs: Vec<(String, String)> = cluster
            .proxy_logs()
            .into_iter()
            .map(|(node, text)| (format!("service-proxy-{node}"), text))
            .collect();
        logs.extend(cluster.dns_log().map(|t| ("cluster-dns".to_string(), t)));
        FlowArtifacts {
            logs,
            captures: obs.captures.clone(),
            points: obs.points.clone(),
            journey_markdown: crate::journey_render::markdown(
                self.plan(),
                flow,
                mode,
                journey,
                obs,
                Some(&verdict.render(flow)),
            ),
            rules,
            conntrack,
        }
    }

    /// What the journey assembly needs to know of a flow: who sends it, and which DNS server
    /// its resolver asks.
    pub fn hints(&self, flow: &FlowPlan) -> FlowHints {
        let dns_server = self
            .plan()
            .topology
            .pods
            .iter()
            .find(|p| p.name == flow.from)
            .and_then(|p| p.resolv_conf.as_deref())
            .and_then(|conf| {
                netns_runtime::resolver::ResolvConf::parse(conf)
                    .nameservers
                    .first()
                    .copied()
            });
        FlowHints {
            client: flow.from.clone(),
            dns_server,
        }
    }

    /// The part of a flow that is observed: the command of an `exec` flow, or the name's
    /// resolution and the first attempt.
    fn first_attempt(&self, cluster: &Cluster, flow: &FlowPlan) -> Result<Head, RunError> {
        if let Some(exec) = &flow.exec {
            return Ok(Head::Done(
                match cluster.exec(&flow.from, &exec.argv, flow.timeout) {
                    Ok(done) => judge_exec(exec, &done),
                    Err(e) => Verdict {
                        passed: false,
                        expected: format!("`{}` succeeds", exec.argv.join(" ")),
                        observed: e.to_string(),
                        reason: Some(e.to_string()),
                    },
                },
            ));
        }
        let mut target = probe_target(flow);
        let mut dns_part = None;
        if let Some(name) = &flow.dns_name {
            let resolution = cluster.resolve(&flow.from, name, flow.timeout)?;
            let want = flow.expect_dns.as_ref().map(|d| {
                let answers: Vec<(String, Vec<std::net::Ipv4Addr>)> = d
                    .answers
                    .iter()
                    .map(|a| (a.label.clone(), a.addrs.clone()))
                    .collect();
                (d.rcode.clone(), answers)
            });
            let fault = want
                .as_ref()
                .and_then(|(rcode, answers)| dns_fault(rcode, answers, &resolution));
            let address = resolution.addresses().first().copied();
            let only_dns = matches!(&flow.expect, Expect::Reach { pods, .. } if pods.is_empty());
            match address {
                Some(ip) if !only_dns => {
                    target = retarget(target, ip);
                    dns_part = Some((resolution, fault));
                }
                _ => {
                    return Ok(Head::Done(dns_only_verdict(
                        name,
                        &resolution,
                        fault,
                        only_dns,
                    )));
                }
            }
        }
        let first = cluster.probe(&flow.from, target, flow.timeout);
        Ok(Head::Sent {
            target,
            first,
            dns_part,
        })
    }

    /// What a snapshot keeps of `node`: its rule tables as the proxy shows them, then the
    /// routes, neighbours and FDB entries the overlay programmed; at revision 0 (the cluster
    /// as declared) whatever revision the flows left it in.
    pub fn node_snapshot(&self, node: &str) -> Result<String, RunError> {
        let tables = self.rule_tables();
        // Snapshots are of the cluster as declared.
        self.with_cluster(|cluster| {
            self.move_to(cluster, 0)?;
            let mut out = cluster.node_rules(&tables, node)?;
            out.push_str(&cluster.node_state(node)?);
            Ok(out)
        })?
    }
}
