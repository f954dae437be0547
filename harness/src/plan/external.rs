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
        let (listeners, _, published) = self.listeners(spec.listen.as_deref().unwrap_or_default());
        for (_, at) in published {
            self.error(
                at,
                "`hostPort` publishes a pod's container port on its node; the external host is no pod",
            );
        }
        ExternalDraft {
            addr: cluster.node_cidr.map(underlay_gateway),
            listeners,
        }
    }
}
