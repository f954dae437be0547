//! Validation and planning: a parsed case becomes a [`Plan`], pure data naming every address,
//! MAC, route, neighbour and FDB entry of the cluster, and every flow with its resolved target.
//!
//! Planning is deterministic (the same file always gives the same plan) and needs no
//! privileges. Validation reports every problem of a file, each at the value it is about. The
//! rules are written down in `docs/case-format.md`; keep the two in step.
//!
//! The planner is split by section of a case: each module adds its part to `Planner` (an
//! `impl Planner` block of its own) and uses only the modules listed before it.
//!
//! 1. `context`: the planner and its diagnostics, the cluster parameters, and the node, pod and
//!    external-host drafts; `parse`: name checks and value parsing;
//! 2. `services` (`services:`) and `dns` (`dns:`, its records and the files pods get);
//! 3. `topology`: how the cluster is wired (the CNI bridge, flannel's VXLAN device, interface
//!    names and MACs) and the `Topology` built from the drafts; the sections check against it;
//! 4. `cluster`, `nodes`, `pods` and `external` (`cluster:`, `nodes:`, `pods:`, `external:`);
//! 5. `refs` (what flows refer to), `hops` (`expect.hops`), `model` (the public result types),
//!    `flow_dns` (`expect.dns` and exec flows) and `flows` (`flows:`);
//! 6. `display`: the plan as `podpath plan` prints it.
//!
//! This module declares them, runs the sections in order (`Planner::plan`) and re-exports the
//! public API.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netns_runtime::stack::Attachment;

use serde_saphyr::Spanned;

use crate::case::{self, Case, FlowSpec};
use crate::diag::{CaseError, Diagnostic, Location};

pub mod api;
mod cluster;
mod context;
mod datapath;
mod display;
mod dns;
mod external;
mod flow_dns;
mod flows;
pub mod hops;
pub mod manifests;
mod model;
mod nodes;
mod parse;
mod pods;
mod refs;
mod services;
mod steps;
mod topology;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use api::{API_SERVICE, ApiPlan};
pub use cluster::{
    DEFAULT_MTU, DEFAULT_NODE_CIDR, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_SUBNET_LEN,
    MTU_RANGE,
};
pub use datapath::Datapath;
pub use dns::{
    DEFAULT_EXEC_TIMEOUT, DNS_LABEL, DNS_NAMESPACE, DNS_POD, DNS_PORT, DNS_SERVICE,
    DNS_SERVICE_HOST, NDOTS, NameResolution, RCODES, hosts_file, resolv_conf, resolve_in,
    search_domains,
};
pub use flows::{DEFAULT_TIMEOUT, MAX_ATTEMPTS};
pub use model::{
    DnsAnswer, DnsExpect, ExecPlan, Expect, FailKind, FlowPlan, FlowService, Plan, SeenSource,
    ServiceVia, Target,
};
pub use netns_runtime::proxy::driver::ProxyMode;
pub use netns_runtime::proxy::{ServiceTable, TrafficPolicy};
pub use nodes::MAX_NODE_NAME;
pub use parse::{MAX_NAME, MAX_TIMEOUT};
pub use services::{
    DEFAULT_AFFINITY_TIMEOUT, MAX_AFFINITY_TIMEOUT, NODE_PORT_RANGE, PortEndpoint,
    RESERVED_SERVICE_HOSTS, ServiceEndpoint, ServicePlan, ServicePortPlan, ServiceType, TargetPort,
    proxy_tables,
};
pub use steps::{Revision, StepPlan};
pub use topology::{
    ETH0, POD_BRIDGE, VXLAN_DEV, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI, underlay_gateway,
};

use context::Planner;
use refs::Refs;
use topology::build_topology;

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
    Planner::new(path).plan(&case, Arc::from(text))
}

/// Like [`load`], for a stack whose drivers declare `datapath`.
pub fn load_for(path: &Path, datapath: Datapath) -> Result<Plan, CaseError> {
    let mut plan = load(path)?;
    if datapath != plan.datapath {
        plan = replan(&plan, datapath, &[])?;
    }
    Ok(plan)
}

/// Plans the case of `plan` again, bound to what the stack's pod attach decided for its pods
/// (`learned`, by pod name): their addresses, MACs and host-side interfaces are taken as the
/// implementation gave them, and every Service endpoint, proxy table, DNS record and flow
/// target is computed from them. The case was valid, so an error here is the implementation's:
/// an address outside its node's pod subnet, or one two pods were given.
pub fn bind(plan: &Plan, learned: &[Attachment]) -> Result<Plan, CaseError> {
    let case = case::parse(&plan.source).map_err(|(location, message)| {
        CaseError::Invalid(vec![Diagnostic {
            file: plan.file.clone(),
            location,
            message,
        }])
    })?;
    let mut planner = Planner::new(&plan.file);
    planner.datapath = plan.datapath;
    planner.learned = learned.iter().map(|a| (a.pod.clone(), a.clone())).collect();
    planner.plan(&case, plan.source.clone())
}

/// The case of `plan` planned again for another datapath, bound to `learned`.
fn replan(plan: &Plan, datapath: Datapath, learned: &[Attachment]) -> Result<Plan, CaseError> {
    let mut base = plan.clone();
    base.datapath = datapath;
    bind(&base, learned)
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

impl Planner {
    fn plan(mut self, case: &Spanned<Case>, source: Arc<str>) -> Result<Plan, CaseError> {
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
        // The API Service last, with its fixed address: no case Service's address shifts.
        if has_services
            && let (Some(node_cidr), Some(service_cidr)) = (cluster.node_cidr, cluster.service_cidr)
            && let Some(address) = api::api_address(node_cidr, &nodes)
        {
            let cluster_ip = std::net::Ipv4Addr::from(u32::from(service_cidr.network()) + 1);
            if self.api_service_free(&service_specs, cluster_ip) {
                service_specs.push(api::api_service(cluster_ip, address, root));
            }
        }
        self.allocate(&mut pods, &nodes);
        let api = Planner::api_plan(&cluster, &nodes, &pods);
        let services = self.services(&service_specs, &cluster, &nodes, &pods);
        if let Some(dns) = dns.as_mut() {
            self.plan_records(dns, &pods, &services);
        }
        let pod_index: HashMap<&str, usize> = pods
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.name.as_deref()?, i)))
            .collect();
        // The steps among the flows, and the revisions of the cluster they make: every flow is
        // planned against the revision the steps before it leave.
        let mut state = steps::ClusterState::declared(&pods, &services);
        let mut states = vec![state.clone()];
        let mut step_plans = Vec::new();
        let mut flow_entries: Vec<(&Spanned<FlowSpec>, usize)> = Vec::new();
        for entry in case.flows.as_deref().unwrap_or_default() {
            match &entry.value.step {
                Some(step) => {
                    if let Some(change) = self.step(entry, step, &mut state, &pods, &services) {
                        step_plans.push(StepPlan {
                            change,
                            location: Location::from_yaml(step.referenced)
                                .unwrap_or(Location { line: 0, column: 0 }),
                            revision: states.len(),
                        });
                        states.push(state.clone());
                    }
                }
                None => flow_entries.push((entry, states.len() - 1)),
            }
        }
        let revision_services: Vec<Vec<services::ServiceDraft>> = states
            .iter()
            .map(|state| state.services(&services, &pod_index))
            .collect();
        let revision_dns: Vec<Option<dns::DnsDraft>> = states
            .iter()
            .zip(&revision_services)
            .map(|(state, services)| dns.as_ref().map(|d| state.dns(d, &pods, services)))
            .collect();
        // Built before the flows are checked, so their hops are checked against the real
        // interfaces and addresses; `None` when something it needs is invalid (reported).
        let topology = build_topology(
            &cluster,
            &nodes,
            &pods,
            external.as_ref(),
            revision_dns[0].as_ref(),
        );
        let refs: Vec<Refs<'_>> = revision_services
            .iter()
            .zip(&revision_dns)
            .map(|(services, dns)| Refs {
                pod_index: &pod_index,
                nodes: &nodes,
                pods: &pods,
                services,
                external: external.as_ref(),
                datapath: self.datapath,
                overlay: cluster.overlay,
                dns: dns.as_ref(),
                topology: topology.as_ref(),
                proxy_modes: &cluster.proxy_modes,
            })
            .collect();
        let flows = self.flows(&flow_entries, &refs);

        if !self.found.is_empty() {
            return Err(CaseError::Invalid(self.found.into_sorted()));
        }
        let built = topology.and_then(|topology| {
            let (pod_cidr, service_cidr) = (cluster.pod_cidr?, cluster.service_cidr?);
            let revisions: Vec<Revision> = revision_services
                .iter()
                .zip(&revision_dns)
                .map(|(drafts, dns)| {
                    let services: Vec<ServicePlan> = drafts
                        .iter()
                        .filter(|s| s.absent.is_none())
                        .map(|s| s.plan.clone())
                        .collect();
                    let proxy = proxy_tables(&topology, pod_cidr, service_cidr, &services);
                    let dns = dns.as_ref().and_then(|d| d.records.clone());
                    Revision {
                        services,
                        proxy,
                        dns,
                    }
                })
                .collect();
            let proxy = revisions.first()?.proxy.clone();
            let services: Vec<ServicePlan> = services.into_iter().map(|s| s.plan).collect();
            Some((topology, service_cidr, services, proxy, revisions))
        });
        match built {
            Some((topology, service_cidr, services, proxy, revisions)) => Ok(Plan {
                name,
                file: self.file,
                stem,
                topology,
                flows,
                service_cidr,
                services,
                proxy,
                proxy_modes: cluster.proxy_modes.clone(),
                source,
                datapath: self.datapath,
                steps: step_plans,
                revisions,
                api,
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
}
