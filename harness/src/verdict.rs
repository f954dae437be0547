//! Judging what was observed against what a flow expects. Pure: no I/O.

use std::fmt::Write as _;

use netns_runtime::Outcome;
use netns_runtime::topology::Topology;

use crate::plan::{Expect, FailKind, FlowPlan, Target};

/// The judgement of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// What the case asked for, in words.
    pub expected: String,
    /// What happened, in words.
    pub observed: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

impl Verdict {
    /// A report for people: the cause last, where the eye lands.
    pub fn render(&self, flow: &FlowPlan) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "flow:     {} -> {}",
            flow.from,
            target_text(&flow.target)
        );
        let _ = writeln!(out, "expected: {}", self.expected);
        let _ = writeln!(out, "observed: {}", self.observed);
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "cause:    {reason}");
        }
        out
    }
}

pub fn target_text(target: &Target) -> String {
    match target {
        Target::Tcp(a) => format!("{a}/tcp"),
        Target::Udp(a) => format!("{a}/udp"),
        Target::Icmp(a) => format!("{a} (icmp echo)"),
    }
}

fn expected_text(expect: &Expect) -> String {
    match expect {
        Expect::Reach { pods, seen_source } => {
            let mut s = format!("answered by {}", pods.join(" or "));
            if let Some(src) = seen_source {
                if src.name == src.addr.to_string() {
                    let _ = write!(s, ", which sees source {}", src.addr);
                } else {
                    let _ = write!(s, ", which sees source {} ({})", src.name, src.addr);
                }
            }
            s
        }
        Expect::Fail(kind) => format!("{kind}"),
    }
}

fn observed_kind(outcome: &Outcome) -> Option<FailKind> {
    match outcome {
        Outcome::Refused { .. } => Some(FailKind::Refused),
        Outcome::Timeout { .. } => Some(FailKind::Timeout),
        Outcome::Unreachable { .. } => Some(FailKind::Unreachable),
        Outcome::Answered { .. } | Outcome::Error { .. } => None,
    }
}

/// Judges one flow's outcome.
pub fn judge(flow: &FlowPlan, topology: &Topology, outcome: &Outcome) -> Verdict {
    let expected = expected_text(&flow.expect);
    let observed = describe(topology, outcome);
    let reason = match (&flow.expect, outcome) {
        (Expect::Reach { pods, seen_source }, Outcome::Answered { echo, from, .. }) => {
            let (answered_by, seen) = match echo {
                Some(e) => (e.pod.clone(), Some(e.peer)),
                None => (
                    topology
                        .owner_of(*from.ip())
                        .map(str::to_string)
                        .unwrap_or_else(|| from.ip().to_string()),
                    None,
                ),
            };
            if !pods.contains(&answered_by) {
                Some(format!(
                    "{answered_by} answered, but the flow expects {}",
                    pods.join(" or ")
                ))
            } else {
                match (seen_source, seen) {
                    (Some(want), Some(saw)) if *saw.ip() != want.addr => Some(format!(
                        "{answered_by} saw source {} ({}), not {} ({})",
                        saw.ip(),
                        who(topology, *saw.ip()),
                        want.addr,
                        want.name
                    )),
                    _ => None,
                }
            }
        }
        (Expect::Reach { .. }, other) => Some(match other {
            Outcome::Error { detail } => format!("the probe failed: {detail}"),
            _ => "no answer came back".to_string(),
        }),
        (Expect::Fail(want), other) => match observed_kind(other) {
            Some(got) if got == *want => None,
            Some(got) => Some(format!("the flow failed as {got}, not as {want}")),
            None => match other {
                Outcome::Error { detail } => Some(format!("the probe failed: {detail}")),
                _ => Some(format!(
                    "the flow was expected to fail ({want}) but got through"
                )),
            },
        },
    };
    Verdict {
        passed: reason.is_none(),
        expected,
        observed,
        reason,
    }
}

fn who(topology: &Topology, ip: std::net::Ipv4Addr) -> String {
    topology
        .owner_of(ip)
        .map(str::to_string)
        .unwrap_or_else(|| "not a pod or node address".into())
}

/// The outcome in words, with addresses named after their owners.
pub fn describe(topology: &Topology, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered {
            echo: Some(e),
            elapsed,
            ..
        } => format!(
            "answered by {} in {elapsed:.1?}, which saw source {} ({})",
            e.pod,
            e.peer,
            who(topology, *e.peer.ip())
        ),
        Outcome::Answered {
            echo: None,
            from,
            elapsed,
        } => format!(
            "echo reply from {} ({}) in {elapsed:.1?}",
            from.ip(),
            who(topology, *from.ip())
        ),
        other => other.to_string(),
    }
}
