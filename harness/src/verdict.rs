//! Judging what was observed against what a flow expects. Pure: no I/O.

use std::fmt::Write as _;
use std::net::SocketAddrV4;

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

/// Who answered an attempt and the source address it saw (none for ICMP).
fn answer_of(topology: &Topology, outcome: &Outcome) -> Option<(String, Option<SocketAddrV4>)> {
    match outcome {
        Outcome::Answered { echo: Some(e), .. } => Some((e.pod.clone(), Some(e.peer))),
        Outcome::Answered {
            echo: None, from, ..
        } => Some((
            topology
                .owner_of(*from.ip())
                .map(str::to_string)
                .unwrap_or_else(|| from.ip().to_string()),
            None,
        )),
        _ => None,
    }
}

/// Why one attempt does not meet the expectation, if it does not.
fn attempt_fault(flow: &FlowPlan, topology: &Topology, outcome: &Outcome) -> Option<String> {
    match (&flow.expect, outcome) {
        (Expect::Reach { pods, seen_source }, Outcome::Answered { .. }) => {
            let (answered_by, seen) = answer_of(topology, outcome)?;
            if !pods.contains(&answered_by) {
                return Some(format!(
                    "{answered_by} answered, but the flow expects {}",
                    pods.join(" or ")
                ));
            }
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
    }
}

/// Judges a flow's outcomes, one per attempt.
///
/// Every attempt must meet the expectation. With several attempts and several expected pods,
/// each of those pods must have answered at least once (the Service spreads); with `sticky`,
/// every attempt must have been answered by the same pod (session affinity).
pub fn judge(flow: &FlowPlan, topology: &Topology, outcomes: &[Outcome]) -> Verdict {
    let mut expected = expected_text(&flow.expect);
    if flow.attempts > 1 {
        expected = format!("{} attempts, each {expected}", flow.attempts);
        if let Expect::Reach { pods, .. } = &flow.expect
            && pods.len() > 1
            && flow.each_reach_pod_answers()
        {
            expected.push_str(", every one of them at least once");
        }
    }
    if flow.sticky {
        expected.push_str(", all by the same pod");
    }
    let observed = describe_all(topology, outcomes);
    let mut reason = outcomes.iter().enumerate().find_map(|(i, o)| {
        attempt_fault(flow, topology, o).map(|why| {
            if outcomes.len() > 1 {
                format!("attempt {} of {}: {why}", i + 1, outcomes.len())
            } else {
                why
            }
        })
    });
    if outcomes.is_empty() {
        reason = Some("no attempt was made".into());
    }
    if reason.is_none()
        && let Expect::Reach { pods, .. } = &flow.expect
    {
        let answered: Vec<String> = outcomes
            .iter()
            .filter_map(|o| answer_of(topology, o).map(|a| a.0))
            .collect();
        if flow.each_reach_pod_answers() && pods.len() > 1 {
            let silent: Vec<&str> = pods
                .iter()
                .filter(|p| !answered.contains(p))
                .map(String::as_str)
                .collect();
            if !silent.is_empty() {
                reason = Some(format!(
                    "{} never answered in {} attempts",
                    silent.join(" and "),
                    outcomes.len()
                ));
            }
        }
        if flow.sticky && answered.windows(2).any(|w| w[0] != w[1]) {
            reason = Some("the attempts were answered by different pods".into());
        }
    }
    Verdict {
        passed: reason.is_none(),
        expected,
        observed,
        reason,
    }
}

/// The outcomes of all attempts in words: one attempt as [`describe`] says it, several as a
/// tally (`20 attempts: pod-b 12, pod-c 8`).
pub fn describe_all(topology: &Topology, outcomes: &[Outcome]) -> String {
    match outcomes {
        [one] => describe(topology, one),
        many => {
            let mut tally: Vec<(String, usize)> = Vec::new();
            for o in many {
                let key = match answer_of(topology, o) {
                    Some((pod, _)) => pod,
                    None => describe(topology, o)
                        .split(" in ")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                };
                match tally.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => tally.push((key, 1)),
                }
            }
            let parts: Vec<String> = tally.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("{} attempts: {}", many.len(), parts.join(", "))
        }
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
