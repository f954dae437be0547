//! Steps (`- step: {...}` among the flows): changes to the cluster between flows, and the
//! revisions of the cluster they make. Revision 0 is the cluster as declared; each valid step
//! makes the next one. Every flow is planned against the revision its position gives it, so a
//! trial is independent of the order the flows run in: the runner brings the cluster to a
//! flow's revision before it runs.

use std::collections::HashMap;

use netns_runtime::change::ClusterChange;
use netns_runtime::dns::{ClusterDns, RecordTable};
use netns_runtime::proxy::ServiceTable;
use serde_saphyr::Spanned;

use super::context::{Planner, PodDraft};
use super::dns::{DnsDraft, cluster_dns};
use super::parse::{at_text, known_names, quoted};
use super::services::{ServiceDraft, ServicePlan};
use crate::case::{FlowSpec, StepSpec};
use crate::diag::Location;

/// A step, resolved: the change it makes and the revision it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub change: ClusterChange,
    /// Where the step is declared.
    pub location: Location,
    /// The revision the cluster is in after it (its index in [`super::Plan::revisions`]).
    pub revision: usize,
}

/// The cluster as the steps before a flow leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The Services that exist in it, in declared order, each with its endpoints as they are
    /// in it (deleted pods are no endpoints; readiness as the steps set it).
    pub services: Vec<ServicePlan>,
    /// What each node's service proxy programs in it, in node order.
    pub proxy: Vec<ServiceTable>,
    /// What the cluster DNS serves in it, with `dns:`.
    pub dns: Option<ClusterDns>,
}

/// What the steps so far did: per pod draft its readiness and whether (and where) it was
/// deleted; per Service draft why it does not exist, if it does not.
#[derive(Clone)]
pub(super) struct ClusterState {
    ready: Vec<bool>,
    deleted: Vec<Option<String>>,
    absent: Vec<Option<String>>,
}

impl ClusterState {
    /// Revision 0: every pod as declared, every Service but those `initially: absent`.
    pub(super) fn declared(pods: &[PodDraft], services: &[ServiceDraft]) -> ClusterState {
        ClusterState {
            ready: pods.iter().map(|p| p.ready).collect(),
            deleted: vec![None; pods.len()],
            absent: services
                .iter()
                .map(|s| {
                    s.initially_absent
                        .then(|| "it is `initially: absent` and not created yet".to_owned())
                })
                .collect(),
        }
    }

    /// The Service drafts as they are in this state: absent ones marked, deleted pods taken
    /// out of every endpoint list, readiness as the steps set it.
    pub(super) fn services(
        &self,
        base: &[ServiceDraft],
        pod_index: &HashMap<&str, usize>,
    ) -> Vec<ServiceDraft> {
        let live = |pod: &Option<String>| {
            pod.as_deref()
                .and_then(|p| pod_index.get(p))
                .is_none_or(|&i| self.deleted.get(i).is_none_or(Option::is_none))
        };
        let ready_of = |pod: &Option<String>, ready: bool| {
            pod.as_deref()
                .and_then(|p| pod_index.get(p))
                .and_then(|&i| self.ready.get(i).copied())
                .unwrap_or(ready)
        };
        base.iter()
            .enumerate()
            .map(|(i, draft)| {
                let mut draft = draft.clone();
                draft.absent = self.absent.get(i).cloned().flatten();
                let plan = &mut draft.plan;
                plan.endpoints.retain(|e| live(&e.pod));
                for e in &mut plan.endpoints {
                    e.ready = ready_of(&e.pod, e.ready);
                }
                for port in &mut plan.ports {
                    port.endpoints.retain(|e| live(&e.pod));
                    for e in &mut port.endpoints {
                        e.ready = ready_of(&e.pod, e.ready);
                    }
                }
                draft
            })
            .collect()
    }

    /// The cluster DNS as it is in this state, over `services` (from [`Self::services`]):
    /// records without the deleted pods and the absent Services.
    pub(super) fn dns(
        &self,
        dns: &DnsDraft,
        pods: &[PodDraft],
        services: &[ServiceDraft],
    ) -> DnsDraft {
        let mut dns = dns.clone();
        if !dns.complete {
            return dns;
        }
        let server_ip = dns.pod.and_then(|p| pods.get(p)?.ip);
        let (Some(zone), Some(server_ip)) = (dns.zone.clone(), server_ip) else {
            return dns;
        };
        let pods: Vec<PodDraft> = pods
            .iter()
            .zip(&self.deleted)
            .filter(|(_, deleted)| deleted.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let services: Vec<ServiceDraft> = services
            .iter()
            .filter(|s| s.absent.is_none())
            .cloned()
            .collect();
        dns.records = cluster_dns(&zone, &pods, &services, server_ip);
        dns.table = dns.records.as_ref().map(RecordTable::new);
        dns
    }
}

impl Planner {
    /// A step of the flows: checks it against `state` (what the steps before it did) and, when
    /// it is valid, applies it and returns its change.
    pub(super) fn step(
        &mut self,
        entry: &Spanned<FlowSpec>,
        step: &Spanned<StepSpec>,
        state: &mut ClusterState,
        pods: &[PodDraft],
        services: &[ServiceDraft],
    ) -> Option<ClusterChange> {
        let spec = &entry.value;
        let others = [
            spec.name.as_ref().map(|v| ("name", v.referenced)),
            spec.from.as_ref().map(|v| ("from", v.referenced)),
            spec.to.as_ref().map(|v| ("to", v.referenced)),
            spec.exec.as_ref().map(|v| ("exec", v.referenced)),
            spec.protocol.as_ref().map(|v| ("protocol", v.referenced)),
            spec.timeout.as_ref().map(|v| ("timeout", v.referenced)),
            spec.attempts.as_ref().map(|v| ("attempts", v.referenced)),
            spec.expect.as_ref().map(|v| ("expect", v.referenced)),
        ];
        let mut ok = true;
        for (key, at) in others.into_iter().flatten() {
            self.error(
                at,
                format!(
                    "`{key}` beside `step`: a step is an entry of its own (`- step: {{ ... }}`), not part of a flow"
                ),
            );
            ok = false;
        }
        let at = step.referenced;
        let step = &step.value;
        let written: Vec<&str> = [
            step.pod.as_ref().map(|_| "pod"),
            step.delete.as_ref().map(|_| "delete"),
            step.create.as_ref().map(|_| "create"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if written.len() != 1 {
            let what = if written.is_empty() {
                "none".to_owned()
            } else {
                written.join(" and ")
            };
            self.error(
                at,
                format!(
                    "a step takes exactly one of `pod` (with `ready`), `delete` and `create`; this one has {what}"
                ),
            );
            return None;
        }
        if step.pod.is_none()
            && let Some(ready) = &step.ready
        {
            self.error(
                ready.referenced,
                "`ready` goes with `pod`: `- step: { pod: NAME, ready: false }`",
            );
            return None;
        }
        let change = if let Some(pod) = &step.pod {
            let Some(ready) = &step.ready else {
                self.error(
                    pod.referenced,
                    "a `pod` step needs `ready: true` or `ready: false`",
                );
                return None;
            };
            let p = self.step_pod(pod, &pod.value, state, pods)?;
            if state.ready[p] == ready.value {
                let now = if ready.value { "ready" } else { "not ready" };
                self.error(
                    ready.referenced,
                    format!(
                        "pod {} is already {now} at this point: a step must change something",
                        pod.value
                    ),
                );
                return None;
            }
            ok.then(|| {
                state.ready[p] = ready.value;
                ClusterChange::PodReady {
                    namespace: pods[p].namespace.clone(),
                    name: pod.value.clone(),
                    ready: ready.value,
                }
            })?
        } else {
            let (value, creates) = match (&step.delete, &step.create) {
                (Some(v), _) => (v, false),
                (None, Some(v)) => (v, true),
                (None, None) => return None,
            };
            let step_at = at_text(at);
            if let Some(name) = value.value.strip_prefix("pod/") {
                let name = match name.split_once('/') {
                    Some((namespace, name)) => {
                        let p = self.step_pod(value, name, state, pods)?;
                        if pods[p].namespace != namespace {
                            self.error(
                                value.referenced,
                                format!(
                                    "pod {name} is in namespace {}, not {namespace}",
                                    pods[p].namespace
                                ),
                            );
                            return None;
                        }
                        name
                    }
                    None => name,
                };
                let p = if creates {
                    let Some(&p) = pod_position(pods, name).as_ref() else {
                        self.unknown_pod(value, name, pods);
                        return None;
                    };
                    if state.deleted[p].is_none() {
                        self.error(
                            value.referenced,
                            format!(
                                "pod {name} exists at this point: `create: pod/...` brings back a pod an earlier step deleted"
                            ),
                        );
                        return None;
                    }
                    p
                } else {
                    self.step_pod(value, name, state, pods)?
                };
                let (namespace, name) = (pods[p].namespace.clone(), name.to_owned());
                ok.then(|| {
                    if creates {
                        state.deleted[p] = None;
                        ClusterChange::PodCreated { namespace, name }
                    } else {
                        state.deleted[p] = Some(format!("deleted by the step at {step_at}"));
                        ClusterChange::PodDeleted { namespace, name }
                    }
                })?
            } else if let Some(service) = value.value.strip_prefix("svc/") {
                let (namespace, name) = service.split_once('/').unwrap_or(("default", service));
                let Some(s) = services
                    .iter()
                    .position(|s| s.plan.namespace == namespace && s.plan.name == name)
                else {
                    let ids: Vec<String> = services.iter().map(|s| s.plan.id()).collect();
                    self.error(
                        value.referenced,
                        format!(
                            "unknown Service {} (Services: {}); write svc/NAME for one in namespace default, or svc/NAMESPACE/NAME",
                            quoted(&format!("{namespace}/{name}")),
                            known_names(ids.iter().map(String::as_str))
                        ),
                    );
                    return None;
                };
                if !services[s].complete {
                    // What it needs is invalid (reported): nothing to check against.
                    return None;
                }
                let id = services[s].plan.id();
                match (&state.absent[s], creates) {
                    (Some(why), false) => {
                        self.error(
                            value.referenced,
                            format!("Service {id} does not exist at this point: {why}"),
                        );
                        return None;
                    }
                    (None, true) => {
                        self.error(
                            value.referenced,
                            format!(
                                "Service {id} exists at this point: declare it with `initially: absent` for a step to create it"
                            ),
                        );
                        return None;
                    }
                    _ => {}
                }
                let (namespace, name) = (namespace.to_owned(), name.to_owned());
                ok.then(|| {
                    if creates {
                        state.absent[s] = None;
                        ClusterChange::ServiceCreated { namespace, name }
                    } else {
                        state.absent[s] = Some(format!("deleted by the step at {step_at}"));
                        ClusterChange::ServiceDeleted { namespace, name }
                    }
                })?
            } else {
                let verb = if creates { "create" } else { "delete" };
                self.error(
                    value.referenced,
                    format!(
                        "`{verb}` names {}: write pod/NAME, svc/NAME or svc/NAMESPACE/NAME",
                        quoted(&value.value)
                    ),
                );
                return None;
            }
        };
        Some(change)
    }

    /// A pod a step changes: known, and not deleted by an earlier step.
    fn step_pod(
        &mut self,
        value: &Spanned<String>,
        name: &str,
        state: &ClusterState,
        pods: &[PodDraft],
    ) -> Option<usize> {
        let Some(p) = pod_position(pods, name) else {
            self.unknown_pod(value, name, pods);
            return None;
        };
        if let Some(why) = &state.deleted[p] {
            self.error(
                value.referenced,
                format!("pod {name} does not exist at this point: {why}"),
            );
            return None;
        }
        Some(p)
    }

    fn unknown_pod(&mut self, value: &Spanned<String>, name: &str, pods: &[PodDraft]) {
        let names = known_names(pods.iter().filter_map(|p| p.name.as_deref()));
        self.error(
            value.referenced,
            format!("unknown pod {} (pods: {names})", quoted(name)),
        );
    }
}

fn pod_position(pods: &[PodDraft], name: &str) -> Option<usize> {
    pods.iter().position(|p| p.name.as_deref() == Some(name))
}

#[cfg(test)]
mod tests;
