//! What flows and their hops refer to: pods, nodes, Services, the external host and the
//! cluster DNS, and the checks that a name refers to one of them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::topology::{EXTERNAL_HOST, Listener, Topology};
use serde_saphyr::Spanned;

use super::context::{ExternalDraft, NodeDraft, Overlay, Planner, PodDraft};
use super::datapath::Datapath;
use super::dns::{self, NameResolution};
use super::parse::{known_names, quoted};
use super::services::{self};

/// What a flow's `to` names.
pub(super) enum Destination {
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
pub(super) struct NameTarget {
    pub(super) name: String,
    /// `None` when the records could not be planned (reported).
    pub(super) resolution: Option<NameResolution>,
}

/// Who can answer a flow: a pod (index into the drafts) or the external host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answerer {
    Pod(usize),
    External,
}

/// Where a flow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin<'a> {
    /// A pod, on this node (`None` when its node is unknown, reported).
    Pod(Option<&'a str>),
    External,
}

/// What flows may refer to.
pub(super) struct Refs<'a> {
    pub(super) pod_index: &'a HashMap<&'a str, usize>,
    pub(super) nodes: &'a [NodeDraft],
    pub(super) pods: &'a [PodDraft],
    pub(super) services: &'a [services::ServiceDraft],
    pub(super) external: Option<&'a ExternalDraft>,
    /// What the datapath does, as the stack declares it.
    pub(super) datapath: Datapath,
    /// The overlay the case chose for the builtin node network.
    pub(super) overlay: Option<Overlay>,
    /// The cluster DNS, when the case declares one.
    pub(super) dns: Option<&'a dns::DnsDraft>,
    /// The cluster, for hops; `None` when something it needs is invalid (reported).
    pub(super) topology: Option<&'a Topology>,
    /// The proxy modes the case runs in (empty: none).
    pub(super) proxy_modes: &'a [ProxyMode],
}

impl Refs<'_> {
    /// What a pod or the external host listens on.
    pub(super) fn listeners(&self, answerer: Answerer) -> &[Listener] {
        match answerer {
            Answerer::Pod(p) => &self.pods[p].serves,
            Answerer::External => self.external.map_or(&[], |e| &e.listeners),
        }
    }

    /// The name of a pod or of the external host.
    pub(super) fn name(&self, answerer: Answerer) -> &str {
        match answerer {
            Answerer::Pod(p) => self.pods[p].name.as_deref().unwrap_or_default(),
            Answerer::External => EXTERNAL_HOST,
        }
    }
}

impl Planner {
    /// A pod or the external host named by a flow (`from`, `reach`); `None` (reported) when
    /// there is no such pod, or the case declares no external host.
    pub(super) fn answerer_ref(
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
    pub(super) fn external_ref<'r>(
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

    /// `name` or `namespace/name` after `svc/`, in `field` (`to`, or a hop's address).
    pub(super) fn service_ref(
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
}
