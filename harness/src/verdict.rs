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
            // Something did come back: say what, not that nothing did.
            Outcome::Refused { .. } => "refused: a TCP reset or an ICMP port unreachable came back instead of an answer (nothing listening there, or a REJECT rule)".to_string(),
            Outcome::Unreachable { detail, .. } => format!("unreachable: {detail}"),
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

/// Why a name's resolution does not match the expected rcode and answers, side by side.
///
/// `want` lists each expected answer as written (`svc/myapp`) with the addresses it stands
/// for; the resolution must give exactly the union of them (order aside).
pub fn dns_fault(
    want_rcode: &str,
    want: &[(String, Vec<std::net::Ipv4Addr>)],
    got: &netns_runtime::resolver::Resolution,
) -> Option<String> {
    let got_rcode = got.rcode();
    let mut want_addrs: Vec<std::net::Ipv4Addr> =
        want.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    want_addrs.sort();
    want_addrs.dedup();
    let mut got_addrs = got.addresses().to_vec();
    got_addrs.sort();
    got_addrs.dedup();
    if got_rcode == want_rcode && (want.is_empty() || got_addrs == want_addrs) {
        return None;
    }
    let mut out = String::from("the DNS answer differs:\n");
    let expected: Vec<String> = want
        .iter()
        .map(|(label, addrs)| {
            let a: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            format!("{label} ({})", a.join(" "))
        })
        .collect();
    let observed: Vec<String> = got_addrs.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "          expected                      observed");
    let _ = writeln!(out, "  rcode   {want_rcode:<30}{got_rcode}");
    let rows = expected.len().max(observed.len()).max(1);
    for i in 0..rows {
        let e = expected.get(i).map_or("", String::as_str);
        let o = observed.get(i).map_or("", String::as_str);
        let label = if i == 0 { "  answer" } else { "        " };
        let _ = writeln!(out, "{label}  {e:<30}{o}");
    }
    let _ = write!(out, "  queries:");
    for ex in &got.exchanges {
        let _ = write!(out, "\n    {ex}");
    }
    Some(out)
}

/// Why a command's result does not match: exit code, expected lines (a subsequence of its
/// output's lines), patterns (each must match some line).
pub fn exec_fault(
    want_exit: i32,
    want_lines: &[String],
    want_matches: &[regex::Regex],
    done: &netns_runtime::tool::Finished,
) -> Option<String> {
    let lines: Vec<&str> = done.stdout.lines().collect();
    let shown = || {
        let mut s = format!("\n  stdout:\n    {}", lines.join("\n    "));
        if !done.stderr.trim().is_empty() {
            s.push_str(&format!(
                "\n  stderr:\n    {}",
                done.stderr.trim_end().replace('\n', "\n    ")
            ));
        }
        s
    };
    if done.code != Some(want_exit) {
        return Some(format!(
            "expected exit code {want_exit}, the command ended with {}{}",
            done.status,
            shown()
        ));
    }
    let mut rest = lines.iter();
    for want in want_lines {
        if !rest.any(|l| l.trim_end() == want) {
            return Some(format!(
                "expected the line {want:?} (after the ones before it) in the output{}",
                shown()
            ));
        }
    }
    for re in want_matches {
        if !lines.iter().any(|l| re.is_match(l)) {
            return Some(format!("no line of the output matches /{re}/{}", shown()));
        }
    }
    None
}

/// Judges an `exec` flow by how its command ended.
pub fn judge_exec(exec: &crate::plan::ExecPlan, done: &netns_runtime::tool::Finished) -> Verdict {
    let patterns: Vec<regex::Regex> = exec
        .output_matches
        .iter()
        .filter_map(|p| regex::Regex::new(p).ok())
        .collect();
    let reason = exec_fault(exec.exit, &exec.output, &patterns, done);
    let first = done.stdout.lines().next().unwrap_or("").trim();
    Verdict {
        passed: reason.is_none(),
        expected: format!("`{}` exits {}", exec.argv.join(" "), exec.exit),
        observed: format!(
            "{}{}",
            done.status,
            if first.is_empty() {
                String::new()
            } else {
                format!(", first line: {first}")
            }
        ),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netns_runtime::resolver::{Exchange, Resolution};
    use std::net::Ipv4Addr;

    fn answered(ips: &[[u8; 4]]) -> Resolution {
        Resolution {
            exchanges: vec![Exchange {
                name: "myapp.default.svc.cluster.local.".into(),
                server: "10.96.0.10:53".parse().unwrap(),
                rcode: "NOERROR".into(),
                answers: ips.iter().map(|o| Ipv4Addr::from(*o)).collect(),
                tcp: false,
            }],
        }
    }

    /// A refused flow's reason says what came back, never that nothing did.
    #[test]
    fn a_refused_flow_does_not_say_nothing_came_back() {
        let plan = crate::plan::load_str(
            std::path::Path::new("cases/refused.yaml"),
            "nodes: [node1]\npods:\n  - { name: a, node: node1 }\n  - { name: b, node: node1, listen: [80] }\nflows:\n  - { name: f, from: a, to: b:80, expect: { reach: b } }\n",
        )
        .unwrap();
        let refused = Outcome::Refused {
            elapsed: std::time::Duration::from_micros(63),
        };
        let verdict = judge(&plan.flows[0], &plan.topology, &[refused]);
        assert!(!verdict.passed);
        let reason = verdict.reason.unwrap();
        assert!(!reason.contains("no answer came back"), "{reason}");
        assert!(reason.starts_with("refused: a TCP reset"), "{reason}");
        let unreachable = Outcome::Unreachable {
            detail: "no route to host".into(),
            elapsed: std::time::Duration::from_micros(63),
        };
        let verdict = judge(&plan.flows[0], &plan.topology, &[unreachable]);
        assert_eq!(verdict.reason.unwrap(), "unreachable: no route to host");
    }

    #[test]
    fn a_different_dns_answer_is_shown_side_by_side() {
        let want = vec![("svc/myapp".to_string(), vec![Ipv4Addr::new(10, 96, 0, 5)])];
        let fault = dns_fault("NOERROR", &want, &answered(&[[10, 96, 0, 7]])).unwrap();
        assert!(fault.contains("expected"), "{fault}");
        let row = fault.lines().find(|l| l.contains("svc/myapp")).unwrap();
        assert!(
            row.contains("svc/myapp (10.96.0.5)") && row.contains("10.96.0.7"),
            "{fault}"
        );
        assert!(fault.contains("myapp.default.svc.cluster.local. A? -> NOERROR 10.96.0.7"));
    }

    #[test]
    fn the_same_answer_in_another_order_matches() {
        let want = vec![
            ("pod-a".to_string(), vec![Ipv4Addr::new(10, 244, 1, 2)]),
            ("pod-b".to_string(), vec![Ipv4Addr::new(10, 244, 2, 2)]),
        ];
        let got = answered(&[[10, 244, 2, 2], [10, 244, 1, 2]]);
        assert_eq!(dns_fault("NOERROR", &want, &got), None);
        assert!(dns_fault("NXDOMAIN", &want, &got).is_some());
    }

    #[test]
    fn exec_output_lines_are_a_subsequence_and_patterns_match_some_line() {
        let done = netns_runtime::tool::Finished {
            code: Some(0),
            status: "exit code 0".into(),
            stdout: "a\nb\nc\n".into(),
            stderr: String::new(),
        };
        let re = |p: &str| regex::Regex::new(p).unwrap();
        assert_eq!(
            exec_fault(0, &["a".into(), "c".into()], &[re("^b$")], &done),
            None
        );
        assert!(exec_fault(0, &["c".into(), "a".into()], &[], &done).is_some());
        assert!(exec_fault(0, &[], &[re("^d")], &done).is_some());
        assert!(
            exec_fault(1, &[], &[], &done)
                .unwrap()
                .contains("exit code 1")
        );
    }
}
