//! Changes to a running cluster: what a case's steps do (endpoint churn), as events.
//!
//! A case's flows may be interleaved with steps (a pod becomes not ready, a pod or a Service is
//! deleted, a Service is created). The planner turns the steps into revisions of the cluster
//! (each with its Services, per-node proxy tables and DNS records); when the runner moves the
//! built cluster from one revision to another it emits these changes, in order, to whatever
//! learns the cluster from events (a served Kubernetes API whose watchers are the
//! implementations under test), and reprograms the builtin proxy and DNS from the revision's
//! tables. Moving back to an earlier revision emits the inverse changes, last first
//! ([`ClusterChange::inverse`]).
//!
//! Pure data: names only. Whoever applies a change looks the objects up in its own store
//! (a re-created pod keeps its address, a created Service the ClusterIP the plan allocated).

use std::fmt;

/// One change to the cluster's API objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClusterChange {
    /// The pod's Ready condition became `ready`: its endpoints become ready (and serving) or
    /// not in every EndpointSlice that lists it.
    PodReady {
        namespace: String,
        name: String,
        ready: bool,
    },
    /// The pod was deleted from the API: it is no endpoint of any Service and has no DNS
    /// records. Its network namespace stays (the runtime does not tear down pods).
    PodDeleted { namespace: String, name: String },
    /// The pod is back in the API as it was declared (the inverse of [`PodDeleted`]).
    ///
    /// [`PodDeleted`]: ClusterChange::PodDeleted
    PodCreated { namespace: String, name: String },
    /// The Service (and its EndpointSlices) was deleted.
    ServiceDeleted { namespace: String, name: String },
    /// The Service was created, with the address and node ports the plan allocated for it.
    ServiceCreated { namespace: String, name: String },
}

impl ClusterChange {
    /// The change that undoes this one.
    pub fn inverse(&self) -> ClusterChange {
        match self.clone() {
            ClusterChange::PodReady {
                namespace,
                name,
                ready,
            } => ClusterChange::PodReady {
                namespace,
                name,
                ready: !ready,
            },
            ClusterChange::PodDeleted { namespace, name } => {
                ClusterChange::PodCreated { namespace, name }
            }
            ClusterChange::PodCreated { namespace, name } => {
                ClusterChange::PodDeleted { namespace, name }
            }
            ClusterChange::ServiceDeleted { namespace, name } => {
                ClusterChange::ServiceCreated { namespace, name }
            }
            ClusterChange::ServiceCreated { namespace, name } => {
                ClusterChange::ServiceDeleted { namespace, name }
            }
        }
    }

    /// `pod/NAMESPACE/NAME` or `svc/NAMESPACE/NAME`: the object it changes.
    pub fn object(&self) -> String {
        match self {
            ClusterChange::PodReady {
                namespace, name, ..
            }
            | ClusterChange::PodDeleted { namespace, name }
            | ClusterChange::PodCreated { namespace, name } => format!("pod/{namespace}/{name}"),
            ClusterChange::ServiceDeleted { namespace, name }
            | ClusterChange::ServiceCreated { namespace, name } => {
                format!("svc/{namespace}/{name}")
            }
        }
    }
}

impl fmt::Display for ClusterChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = self.object();
        match self {
            ClusterChange::PodReady { ready, .. } => write!(f, "{object} ready={ready}"),
            ClusterChange::PodDeleted { .. } | ClusterChange::ServiceDeleted { .. } => {
                write!(f, "delete {object}")
            }
            ClusterChange::PodCreated { .. } | ClusterChange::ServiceCreated { .. } => {
                write!(f, "create {object}")
            }
        }
    }
}

/// Whoever learns the cluster from events: a served API, a watch-driven implementation. The
/// runner calls it with every change, in order, before it reprograms the builtin proxy and DNS.
///
/// A served API turns each change into its objects' events (`PodReady`: the Pod's Ready
/// condition and every EndpointSlice listing it MODIFIED; `ServiceDeleted`: the Service and its
/// slices DELETED; ...); one that rebuilds its objects from the plan instead takes the plan's
/// revision `reached` gives.
pub trait ChangeSink: Send + Sync {
    /// One change, in order.
    fn apply(&self, change: &ClusterChange);
    /// After the changes of one move: the cluster is now at this revision of the plan.
    fn reached(&self, _revision: usize) {}
}

/// The changes that take a cluster at revision `from` to revision `to`, where `steps[i]` is
/// the change that leads from revision `i` to revision `i + 1`: forward the steps in between,
/// backward their inverses, last first.
pub fn between(steps: &[ClusterChange], from: usize, to: usize) -> Vec<ClusterChange> {
    if to >= from {
        steps
            .get(from..to.min(steps.len()))
            .unwrap_or_default()
            .to_vec()
    } else {
        steps
            .get(to..from.min(steps.len()))
            .unwrap_or_default()
            .iter()
            .rev()
            .map(ClusterChange::inverse)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(name: &str, ready: bool) -> ClusterChange {
        ClusterChange::PodReady {
            namespace: "default".into(),
            name: name.into(),
            ready,
        }
    }

    #[test]
    fn forward_takes_the_steps_backward_their_inverses_last_first() {
        let del = ClusterChange::ServiceDeleted {
            namespace: "default".into(),
            name: "web".into(),
        };
        let steps = vec![ready("a", false), del.clone()];
        assert_eq!(between(&steps, 0, 2), steps);
        assert_eq!(between(&steps, 1, 1), vec![]);
        assert_eq!(between(&steps, 2, 0), vec![del.inverse(), ready("a", true)]);
        assert_eq!(del.inverse().inverse(), del);
        assert_eq!(del.to_string(), "delete svc/default/web");
        assert_eq!(ready("a", false).to_string(), "pod/default/a ready=false");
        // Out of range revisions take what exists, never panic.
        assert_eq!(between(&steps, 0, 9), steps);
    }
}
