//! `podpath compare`: the builtin stack against a stack under test, case by case, on what the
//! stack swaps: each node's normalised rule tables where its service proxy is not the builtin
//! one, and the cluster DNS's answers to every question of the case's records
//! ([`netns_runtime::dns::zonefile::questions`]) where its DNS is not the builtin one. Each
//! case's run (per proxy mode) is built twice, once per stack, one after the other.

use std::sync::Arc;
use std::time::Duration;

use netns_runtime::dns::zonefile::questions;

use crate::stack::{DnsLayer, ProxyLayer, Stack};
use crate::suite::{self, CaseRun, LoadedCase, RunError};

/// How long one DNS question may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One thing compared, and the two sides when they differ.
pub struct Compared {
    /// `<case>[::<mode>] node1 rules`, `<case>[::<mode>] dns NAME TYPE`.
    pub what: String,
    /// `None` when both sides are the same.
    pub difference: Option<(String, String)>,
}

/// Why a difference is expected, when it is one `docs/dns.md` or `docs/services.md` documents:
/// what a static zone served by CoreDNS's `file` plugin cannot say as the `kubernetes` plugin
/// does.
pub fn documented(what: &str, builtin: &str, stack: &str) -> Option<&'static str> {
    if what.ends_with(" rules") {
        return documented_rules(builtin, stack);
    }
    let lines = |t: &str| -> Vec<String> { t.lines().map(str::to_string).collect() };
    let (a, b) = (lines(builtin), lines(stack));
    // The file plugin's positive answers carry the zone's NS RRset in the authority section.
    let without_ns: Vec<String> = {
        let mut v = b.clone();
        if let Some(i) = v.iter().position(|l| l == ";; AUTHORITY")
            && v.get(i + 1).is_some_and(|l| l.contains(" IN NS "))
            && v.get(i + 2).is_none_or(|l| l.starts_with(";;"))
        {
            v.drain(i..i + 2);
        }
        v
    };
    if without_ns == a {
        return Some("the file plugin adds the zone's NS to positive answers (docs/dns.md)");
    }
    let rcode = |v: &[String]| v.first().cloned().unwrap_or_default();
    if what.contains(".pod.")
        && rcode(&a).starts_with("NOERROR")
        && rcode(&b).starts_with("NXDOMAIN")
    {
        return Some(
            "`pods insecure` answers any address; a zone lists the case's pods only (docs/dns.md)",
        );
    }
    if what.contains(".svc.")
        && what.ends_with(" A")
        && rcode(&a).starts_with("NOERROR")
        && a.len() <= 3
        && rcode(&b).starts_with("NXDOMAIN")
    {
        return Some("a namespace without Services is no name in a zone (docs/dns.md)");
    }
    let lower = |v: &[String]| v.iter().map(|l| l.to_ascii_lowercase()).collect::<Vec<_>>();
    if lower(&a) == lower(&without_ns) {
        return Some(
            "the file plugin answers with the zone's owner names, not the question's case (docs/dns.md)",
        );
    }
    None
}

/// Rule tables that differ only as `docs/services.md` documents: kube-proxy's nfacct counters
/// (it adds them where the kernel has `nfnetlink_acct`; the builtin renders them only with
/// `Options::nfacct`, so snapshots do not depend on the kernel), and the order of Services in
/// `KUBE-SERVICES` and in nftables maps (kube-proxy iterates a map).
fn documented_rules(builtin: &str, stack: &str) -> Option<&'static str> {
    let normal = |t: &str| -> Vec<String> {
        let mut kept: Vec<String> = t
            .lines()
            .filter(|l| !l.contains("--nfacct-name  localhost_nps_accepted_pkts"))
            .map(|l| {
                let mut words: Vec<&str> = l.split(' ').collect();
                while let Some(i) = words.iter().position(|w| *w == "nfacct") {
                    // `-m nfacct --nfacct-name  NAME` (two spaces: an empty word).
                    let end = (i + 4).min(words.len());
                    words.drain(i.saturating_sub(1)..end);
                }
                words.join(" ")
            })
            .collect();
        // Services' rules in KUBE-SERVICES, and nftables map elements, in any order.
        let (mut services, rest): (Vec<String>, Vec<String>) = kept.drain(..).partition(|l| {
            l.starts_with("-A KUBE-SERVICES ") || l.trim_start().starts_with("elements = ")
        });
        services.sort();
        let mut out = rest;
        out.extend(services);
        out
    };
    (normal(builtin) == normal(stack)).then_some(
        "kube-proxy's nfacct counters and its Services' order, which the builtin leaves out and fixes (docs/services.md)",
    )
}

/// What a case's run gave on one stack.
struct Sides {
    rules: Vec<(String, String)>,
    dns: Vec<(String, String)>,
}

/// Compares every case of `cases` on the builtin stack and on `stack`. Runs the stack cannot
/// answer for (ignored on it) are skipped and said so in `skipped`.
pub fn compare(cases: &[LoadedCase], stack: &Arc<Stack>) -> (Vec<Compared>, Vec<String>) {
    let builtin = Arc::new(Stack::builtin());
    let proxy = !matches!(stack.proxy, ProxyLayer::Builtin(_));
    let dns = stack.dns != DnsLayer::Builtin;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for case in cases {
        let plan = match &case.plan {
            Ok(p) => p,
            Err(e) => {
                skipped.push(format!("{}: {e}", case.id));
                continue;
            }
        };
        let has_dns = plan.topology.dns.is_some();
        for kind in suite::runs_of(&case.id, plan, stack) {
            if let Some(reason) = &kind.ignored {
                skipped.push(format!("{}: {reason}", kind.name));
                continue;
            }
            let wants_rules = proxy && kind.proxy.is_some();
            let wants_dns = dns && has_dns;
            if !wants_rules && !wants_dns {
                continue;
            }
            let side = |on: &Arc<Stack>, prefix: &str| {
                let run = CaseRun::on_stack(
                    plan.clone(),
                    kind.proxy,
                    1,
                    format!("{prefix}{}", kind.netns_prefix),
                    on.clone(),
                )
                .for_case(&case.id);
                collect(&run, wants_rules, wants_dns)
            };
            let (ours, theirs) = match (side(&builtin, "b."), side(stack, "s.")) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) => {
                    skipped.push(format!("{} on the builtin stack: {e}", kind.name));
                    continue;
                }
                (_, Err(e)) => {
                    skipped.push(format!("{} on stack {}: {e}", kind.name, stack.name));
                    continue;
                }
            };
            for ((node, a), (_, b)) in ours.rules.iter().zip(&theirs.rules) {
                out.push(Compared {
                    what: format!("{} {node} rules", kind.name),
                    difference: (a != b).then(|| (a.clone(), b.clone())),
                });
            }
            for ((q, a), (_, b)) in ours.dns.iter().zip(&theirs.dns) {
                out.push(Compared {
                    what: format!("{} dns {q}", kind.name),
                    difference: (a != b).then(|| (a.clone(), b.clone())),
                });
            }
        }
    }
    (out, skipped)
}

fn collect(run: &CaseRun, rules: bool, dns: bool) -> Result<Sides, RunError> {
    let tables = run.rule_tables();
    run.with_cluster(|cluster| {
        let mut sides = Sides {
            rules: Vec::new(),
            dns: Vec::new(),
        };
        if rules {
            for node in &run.plan().topology.nodes {
                let text = cluster
                    .node_rules(&tables, &node.name)
                    .unwrap_or_else(|e| format!("(could not read: {e})\n"));
                sides.rules.push((node.name.clone(), text));
            }
        }
        if dns && let Some(d) = &run.plan().topology.dns {
            for (name, qtype) in questions(&d.records) {
                let answer = cluster
                    .ask_dns(&name, u16::from(qtype), ASK_TIMEOUT)
                    .map(|a| a.unwrap_or_else(|| "(no answer)".into()))
                    .unwrap_or_else(|e| format!("(could not ask: {e})"));
                sides.dns.push((format!("{name} {qtype}"), answer));
            }
        }
        sides
    })
}

/// The comparison for people: each difference as a diff (builtin `-`, the stack `+`), then a
/// summary line.
pub fn render(stack: &Stack, compared: &[Compared], skipped: &[String]) -> String {
    let mut out = String::new();
    for c in compared {
        if let Some((a, b)) = &c.difference {
            let why = documented(&c.what, a, b)
                .map_or_else(String::new, |w| format!(" (documented: {w})"));
            out.push_str(&format!("differs  {}{why}\n", c.what));
            // Both end with a newline, so a last line that only gained a successor is the same.
            let (a, b) = (format!("{}\n", a.trim_end()), format!("{}\n", b.trim_end()));
            let diff = similar::TextDiff::from_lines(a.as_str(), b.as_str());
            for change in diff.iter_all_changes() {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => continue,
                };
                out.push_str(&format!("  {sign} {}", change.value()));
                if !change.value().ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    for s in skipped {
        out.push_str(&format!("skipped  {s}\n"));
    }
    let differing = compared.iter().filter(|c| c.difference.is_some()).count();
    let undocumented = undocumented(compared);
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for c in compared {
        if let Some((a, b)) = &c.difference
            && let Some(why) = documented(&c.what, a, b)
        {
            match reasons.iter_mut().find(|(r, _)| *r == why) {
                Some((_, n)) => *n += 1,
                None => reasons.push((why, 1)),
            }
        }
    }
    for (why, n) in &reasons {
        out.push_str(&format!("documented  {n} x {why}\n"));
    }
    out.push_str(&format!(
        "\n{} compared, {} the same, {differing} different (- builtin, + stack {}): {} documented, {undocumented} undocumented; {} skipped\n",
        compared.len(),
        compared.len() - differing,
        stack.name,
        differing - undocumented,
        skipped.len()
    ));
    out
}

/// How many differences no document explains.
pub fn undocumented(compared: &[Compared]) -> usize {
    compared
        .iter()
        .filter(|c| {
            c.difference
                .as_ref()
                .is_some_and(|(a, b)| documented(&c.what, a, b).is_none())
        })
        .count()
}
