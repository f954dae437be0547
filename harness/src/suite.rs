//! The suite: finding cases, and running their flows over one shared cluster per case.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use netns_runtime::{Cluster, ProbeTarget};

use crate::diag::CaseError;
use crate::plan::{self, FlowPlan, Plan, Target};
use crate::verdict::{Verdict, judge};

/// A case file and what loading it gave.
pub struct LoadedCase {
    /// The case's name in trial names: its path below the suite root, without extension.
    pub id: String,
    pub path: PathBuf,
    pub plan: Result<Plan, CaseError>,
}

/// Loads every case under each of `paths` (a directory, searched recursively, or a file).
pub fn load(paths: &[PathBuf]) -> io::Result<Vec<LoadedCase>> {
    let mut cases = Vec::new();
    for root in paths {
        let files = if root.is_dir() {
            plan::discover(root)?
        } else {
            vec![root.clone()]
        };
        for path in files {
            let base = if root.is_dir() {
                root.as_path()
            } else {
                root.parent().unwrap_or(Path::new(""))
            };
            let id = case_id(base, &path);
            let plan = plan::load(&path);
            cases.push(LoadedCase { id, path, plan });
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
    let rel = path.strip_prefix(base).unwrap_or(path);
    let rel = rel.with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The probe a flow sends.
pub fn probe_target(flow: &FlowPlan) -> ProbeTarget {
    match flow.target {
        Target::Tcp(a) => ProbeTarget::Tcp(a),
        Target::Udp(a) => ProbeTarget::Udp(a),
        Target::Icmp(a) => ProbeTarget::Icmp(a),
    }
}

enum ClusterState {
    NotBuilt,
    Built(Box<Cluster>),
    Failed(String),
    Released,
}

/// One case's run: its cluster is built when the first flow needs it, shared by its flows (one at
/// a time, so observations never mix), and taken down after the last expected flow.
pub struct CaseRun {
    pub plan: Plan,
    netns_prefix: String,
    state: Mutex<(ClusterState, usize)>,
}

impl CaseRun {
    /// `pending` is how many of the case's flows will run; the cluster goes down after them.
    /// `netns_prefix` starts every namespace name of the case's cluster, so that cases run side
    /// by side in one sandbox (empty when cases run one at a time).
    pub fn new(plan: Plan, pending: usize, netns_prefix: String) -> CaseRun {
        CaseRun {
            plan,
            netns_prefix,
            state: Mutex::new((ClusterState::NotBuilt, pending)),
        }
    }

    /// Runs flow `index`, building the cluster first if no flow has yet.
    pub fn run_flow(&self, index: usize) -> Result<Verdict, String> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, pending) = &mut *guard;
        if matches!(state, ClusterState::NotBuilt) {
            *state = match Cluster::build_prefixed(&self.plan.topology, &self.netns_prefix) {
                Ok(c) => ClusterState::Built(Box::new(c)),
                Err(e) => ClusterState::Failed(format!(
                    "building the cluster of {} failed: {e}",
                    self.plan.file.display()
                )),
            };
        }
        let result = match state {
            ClusterState::Built(cluster) => {
                let flow = &self.plan.flows[index];
                let outcome = cluster.probe(&flow.from, probe_target(flow), flow.timeout);
                Ok(judge(flow, cluster.topology(), &outcome))
            }
            ClusterState::Failed(e) => Err(e.clone()),
            ClusterState::Released => Err("the cluster was already taken down".into()),
            ClusterState::NotBuilt => unreachable!("built above"),
        };
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            let old = std::mem::replace(state, ClusterState::Released);
            if let ClusterState::Built(cluster) = old
                && let Err(errors) = cluster.teardown()
            {
                for e in errors {
                    eprintln!("podpath: teardown of {}: {e}", self.plan.name);
                }
            }
        }
        result
    }
}
