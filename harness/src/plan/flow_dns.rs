//! A flow's DNS side: `expect.dns` of a flow to a name, and flows that run a command
//! (`exec`) with what they expect.

use std::net::Ipv4Addr;

use serde_saphyr::Spanned;

use super::context::Planner;
use super::dns::{DEFAULT_EXEC_TIMEOUT, RCODES, describe_resolution, headless_addresses};
use super::model::{DnsAnswer, DnsExpect, ExecPlan, Expect, FlowPlan, Target};
use super::parse::{known_names, parse_timeout, quoted};
use super::refs::{NameTarget, Refs};
use crate::case::{DnsExpectSpec, ExpectSpec, FlowSpec};
use crate::diag::Location;

/// Largest exit status a process can report.
const MAX_EXIT: u64 = 255;
/// Size limit of a compiled `outputMatches` pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Planner {
    /// `expect.dns` of a flow to a name: the rcode and the answers, each resolved to addresses
    /// (a Service: its ClusterIP, or its ready endpoints' addresses when headless; a pod: its
    /// address; an address: itself).
    fn dns_expect(
        &mut self,
        value: &Spanned<DnsExpectSpec>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<DnsExpect> {
        let (answers, rcode) = DnsExpectSpec::parts(value);
        let mut complete = true;
        let rcode = match &rcode {
            None => "NOERROR".to_owned(),
            Some(v) => {
                let upper = v.value.to_ascii_uppercase();
                if !RCODES.contains(&upper.as_str()) {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown rcode {}: expected {}",
                            quoted(&v.value),
                            RCODES.join(", ")
                        ),
                    );
                    return None;
                }
                upper
            }
        };
        let answers = answers.unwrap_or_default();
        if rcode != "NOERROR"
            && let Some(first) = answers.first()
        {
            self.error(
                first.referenced,
                format!("`answers` go with rcode NOERROR: a {rcode} answer has no addresses"),
            );
            return None;
        }
        let mut resolved: Vec<DnsAnswer> = Vec::with_capacity(answers.len());
        for answer in &answers {
            if resolved.iter().any(|a| a.label == answer.value) {
                self.error(
                    answer.referenced,
                    format!("{} is named twice in `dns`", quoted(&answer.value)),
                );
                complete = false;
                continue;
            }
            match self.dns_answer(answer, from_ns, refs) {
                Some(addrs) => resolved.push(DnsAnswer {
                    label: answer.value.clone(),
                    addrs,
                }),
                None => complete = false,
            }
        }
        complete.then_some(DnsExpect {
            rcode,
            answers: resolved,
        })
    }

    fn dns_answer(
        &mut self,
        value: &Spanned<String>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<Vec<Ipv4Addr>> {
        let text = value.value.as_str();
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(vec![ip]);
        }
        if let Some(service) = text.strip_prefix("svc/") {
            let (namespace, name) = match service.split_once('/') {
                Some((namespace, name)) => (namespace, name),
                None => (from_ns?, service),
            };
            let Some(draft) = refs
                .services
                .iter()
                .find(|s| s.plan.namespace == namespace && s.plan.name == name)
            else {
                let ids: Vec<String> = refs
                    .services
                    .iter()
                    .filter(|s| !s.plan.name.is_empty())
                    .map(|s| s.plan.id())
                    .collect();
                self.error(
                    value.referenced,
                    format!(
                        "unknown Service {} in `dns` (Services: {})",
                        quoted(&format!("{namespace}/{name}")),
                        known_names(ids.iter().map(String::as_str))
                    ),
                );
                return None;
            };
            if !draft.complete {
                return None;
            }
            return Some(match draft.plan.cluster_ip {
                Some(ip) => vec![ip],
                None => headless_addresses(draft),
            });
        }
        if let Some(&p) = refs.pod_index.get(text) {
            return refs.pods[p].ip.map(|ip| vec![ip]);
        }
        let known = known_names(refs.pods.iter().filter_map(|p| p.name.as_deref()));
        self.error(
            value.referenced,
            format!(
                "unknown pod {} in `dns` (pods: {known}); an answer is svc/NAME, svc/NAMESPACE/NAME, a pod or an IPv4 address",
                quoted(text)
            ),
        );
        None
    }

    /// `expect.dns` of a flow, checked against what the name resolves to. `None` when invalid
    /// (reported), `Some(None)` when not written.
    pub(super) fn flow_dns_expect(
        &mut self,
        spec: &FlowSpec,
        target: Option<&NameTarget>,
        from_ns: Option<&str>,
        refs: &Refs<'_>,
    ) -> Option<Option<DnsExpect>> {
        let Some(value) = spec.expect.as_ref().and_then(|e| e.value.dns.as_ref()) else {
            return Some(None);
        };
        let Some(target) = target else {
            if spec.to.is_some() {
                self.error(
                    value.referenced,
                    "`dns` is for flows whose `to` is a DNS name (myapp:80, myapp.other:80, with `dns:` declared): it checks what the name resolves to",
                );
            }
            return None;
        };
        let expect = self.dns_expect(value, from_ns, refs)?;
        if let Some(resolution) = &target.resolution {
            let mut want = expect.addrs();
            want.sort();
            let mut got = resolution.addrs.clone();
            got.sort();
            got.dedup();
            // Without answers, only the rcode is checked.
            let addrs_differ = !expect.answers.is_empty() && want != got;
            if expect.rcode != resolution.rcode || addrs_differ {
                self.error(
                    value.referenced,
                    format!(
                        "`dns` expects {}, but the cluster DNS answers {} with {} (asked {})",
                        describe_expect(&expect),
                        quoted(&target.name),
                        describe_resolution(resolution),
                        resolution.asked.join(" ")
                    ),
                );
                return None;
            }
        }
        Some(Some(expect))
    }

    /// A flow that runs a command (`exec`) in the pod (or host) of `from`.
    pub(super) fn exec_flow(
        &mut self,
        entry: &Spanned<FlowSpec>,
        exec: &Spanned<Vec<Spanned<String>>>,
        name: Option<String>,
        from: Option<String>,
    ) -> Option<FlowPlan> {
        let spec = &entry.value;
        let mut complete = true;
        if let Some(to) = &spec.to {
            self.error(
                to.referenced,
                "a flow has `to` or `exec`, not both: `to` sends traffic, `exec` runs a command",
            );
            complete = false;
        }
        for (key, at) in [
            ("protocol", spec.protocol.as_ref().map(|v| v.referenced)),
            ("attempts", spec.attempts.as_ref().map(|v| v.referenced)),
        ] {
            if let Some(at) = at {
                self.error(
                    at,
                    format!("`{key}` is for flows with `to`: an exec flow runs its command once"),
                );
                complete = false;
            }
        }
        let argv: Vec<String> = exec.value.iter().map(|a| a.value.clone()).collect();
        match exec.value.first() {
            None => {
                self.error(
                    exec.referenced,
                    "`exec` is empty: give the command and its arguments, like [dig, +short, myapp.default.svc.cluster.local]",
                );
                complete = false;
            }
            Some(command) if command.value.trim().is_empty() => {
                self.error(command.referenced, "the command of `exec` is empty");
                complete = false;
            }
            Some(_) => {}
        }
        if let Some(arg) = exec.value.iter().find(|a| a.value.contains('\0')) {
            self.error(
                arg.referenced,
                "an argument of `exec` may not hold a NUL character",
            );
            complete = false;
        }
        let timeout = match &spec.timeout {
            None => Some(DEFAULT_EXEC_TIMEOUT),
            Some(v) => match parse_timeout(&v.value) {
                Ok(timeout) => Some(timeout),
                Err(problem) => {
                    self.error(
                        v.referenced,
                        format!("timeout {} {problem}", quoted(&v.value)),
                    );
                    None
                }
            },
        };
        let label = argv.join(" ");
        let plan = self.exec_expect(argv, spec.expect.as_ref());
        if !complete {
            return None;
        }
        Some(FlowPlan {
            name: name?,
            from: from?,
            target: Target::Icmp(Ipv4Addr::UNSPECIFIED),
            timeout: timeout?,
            expect: Expect::Reach {
                pods: Vec::new(),
                seen_source: None,
            },
            location: Location::from_yaml(entry.referenced)
                .unwrap_or(Location { line: 0, column: 0 }),
            target_label: label,
            service: None,
            attempts: 1,
            sticky: false,
            dns_name: None,
            resolution: None,
            expect_dns: None,
            exec: Some(plan?),
            hops: Default::default(),
            revision: 0,
        })
    }

    /// An `exec` flow's `expect`: `exit`, `output` and `outputMatches`; nothing else.
    fn exec_expect(
        &mut self,
        argv: Vec<String>,
        expect: Option<&Spanned<ExpectSpec>>,
    ) -> Option<ExecPlan> {
        let mut plan = ExecPlan {
            argv,
            exit: 0,
            output: Vec::new(),
            output_matches: Vec::new(),
        };
        let Some(expect) = expect else {
            return Some(plan);
        };
        let spec = &expect.value;
        let mut complete = true;
        let misplaced = [
            ("reach", spec.reach.as_ref().map(|v| v.referenced)),
            ("fail", spec.fail.as_ref().map(|v| v.referenced)),
            (
                "seenSource",
                spec.seen_source.as_ref().map(|v| v.referenced),
            ),
            ("sticky", spec.sticky.as_ref().map(|v| v.referenced)),
            ("dns", spec.dns.as_ref().map(|v| v.referenced)),
            ("hops", spec.hops.as_ref().map(|v| v.referenced)),
            ("reply", spec.reply.as_ref().map(|v| v.referenced)),
            ("avoid", spec.avoid.as_ref().map(|v| v.referenced)),
        ];
        for (key, at) in misplaced {
            if let Some(at) = at {
                self.error(
                    at,
                    format!("`{key}` is for flows with `to`: an exec flow expects `exit`, `output` and `outputMatches`"),
                );
                complete = false;
            }
        }
        if let Some(v) = &spec.exit {
            match self.number("exit", v) {
                Some(n) if n <= MAX_EXIT => plan.exit = n as i32,
                Some(n) => {
                    self.error(
                        v.referenced,
                        format!("exit {n} is out of range 0..={MAX_EXIT} (an exit status)"),
                    );
                    complete = false;
                }
                None => complete = false,
            }
        }
        if let Some(lines) = &spec.output {
            plan.output = lines.value.iter().map(|l| l.value.clone()).collect();
            if let Some(line) = lines.value.iter().find(|l| l.value.contains('\n')) {
                self.error(
                    line.referenced,
                    "an `output` entry is one line: it may not hold a line break",
                );
                complete = false;
            }
        }
        if let Some(patterns) = &spec.output_matches {
            for pattern in &patterns.value {
                let compiled = regex::RegexBuilder::new(&pattern.value)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build();
                match compiled {
                    Ok(_) => plan.output_matches.push(pattern.value.clone()),
                    Err(err) => {
                        let why = err.to_string();
                        let why = why.lines().last().unwrap_or_default().trim().to_owned();
                        self.error(
                            pattern.referenced,
                            format!(
                                "outputMatches {} is not a regular expression: {}",
                                quoted(&pattern.value),
                                why.trim_start_matches("error: ")
                            ),
                        );
                        complete = false;
                    }
                }
            }
        }
        complete.then_some(plan)
    }
}

/// The expectation as it reads in messages: `NOERROR 10.96.0.2 (svc/myapp)`.
pub(super) fn describe_expect(expect: &DnsExpect) -> String {
    if expect.answers.is_empty() {
        return expect.rcode.clone();
    }
    let answers: Vec<String> = expect
        .answers
        .iter()
        .map(|a| {
            let addrs: Vec<String> = a.addrs.iter().map(Ipv4Addr::to_string).collect();
            if addrs.len() == 1 && addrs[0] == a.label {
                a.label.clone()
            } else if addrs.is_empty() {
                format!("{} (no address)", a.label)
            } else {
                format!("{} ({})", a.label, addrs.join(" "))
            }
        })
        .collect();
    format!("{} {}", expect.rcode, answers.join(", "))
}
