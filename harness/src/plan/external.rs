//! The `external:` section: the host on the underlay outside the cluster.

use super::context::{ClusterParams, ExternalDraft, Planner};
use super::topology::underlay_gateway;
use crate::case::ExternalSpec;

impl Planner {
    /// The external host: at the underlay gateway, with its listeners.
    pub(super) fn external(
        &mut self,
        spec: &ExternalSpec,
        cluster: &ClusterParams,
    ) -> ExternalDraft {
        let (listeners, _) = self.listeners(spec.listen.as_deref().unwrap_or_default());
        ExternalDraft {
            addr: cluster.node_cidr.map(underlay_gateway),
            listeners,
        }
    }
}
