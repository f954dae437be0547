//! Rule tables as snapshots keep them: what a proxy programmed, without what changes from run to
//! run (counters, generated-by lines, timestamps, expiry clocks), in a stable order.
//!
//! `iptables-save`: tables in name order; per table, chain declarations without counters,
//! sorted; then the rules grouped by chain in the same order, each chain's rules in their own
//! order (which is semantics). `nft list ruleset`: the text as listed (nft lists in a stable
//! order), with counters and set-element expiry clocks removed.

use std::collections::BTreeMap;

use crate::ruleset::{self, Block};

/// Normalises `iptables-save` output.
pub fn iptables_save(text: &str) -> String {
    #[derive(Default)]
    struct Table<'a> {
        chains: BTreeMap<&'a str, &'a str>,
        rules: BTreeMap<&'a str, Vec<&'a str>>,
    }
    let save = ruleset::parse_save(text);
    let mut tables: BTreeMap<&str, Table<'_>> = BTreeMap::new();
    for t in &save.tables {
        let table = tables.entry(&t.name).or_default();
        for (chain, policy) in &t.chains {
            table.chains.insert(chain, policy);
        }
        for (chain, line) in &t.rules {
            table.rules.entry(chain).or_default().push(line);
        }
    }
    let mut out = String::new();
    for (name, table) in &tables {
        out.push_str(&format!("*{name}\n"));
        for (chain, policy) in &table.chains {
            out.push_str(&format!(":{chain} {policy}\n"));
        }
        for rules in table.rules.values() {
            for r in rules {
                out.push_str(r);
                out.push('\n');
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Normalises `nft list ruleset` (or `nft list table ...`) output. The elements of dynamic
/// sets (session affinity) are dropped: traffic, not the proxy, put them there.
pub fn nft_ruleset(text: &str) -> String {
    let mut out = String::new();
    // Whether the set or map being listed has said `flags dynamic`.
    let mut dynamic = false;
    for l in ruleset::nft_lines(text) {
        let in_set = matches!(l.block, Some(Block::Set(_) | Block::Map(_)));
        if l.depth < 2 {
            dynamic = false;
        }
        if in_set && l.depth == 2 && l.code.starts_with("flags ") && l.code.contains("dynamic") {
            dynamic = true;
        }
        let elements = l.depth > 2 || (l.depth == 2 && l.code.starts_with("elements = "));
        if (in_set && dynamic && elements) || l.code.is_empty() && l.comment.is_none() {
            continue;
        }
        let mut line = ruleset::without_counter_values(l.line);
        line = remove_clock(&line, " expires ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Removes `<marker><duration>` (a duration like `2h59m58s123ms`) wherever it appears.
fn remove_clock(line: &str, marker: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(marker) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + marker.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric()))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Targets of `-j`/`-g` in normalised `iptables-save` text that are neither a chain declared
/// in the same table nor a builtin target: a ruleset that jumps nowhere.
pub fn missing_jump_targets(save: &str) -> Vec<String> {
    const BUILTIN: &[&str] = &[
        "ACCEPT",
        "DROP",
        "RETURN",
        "REJECT",
        "DNAT",
        "SNAT",
        "MASQUERADE",
        "MARK",
        "LOG",
        "CONNMARK",
        "NFLOG",
        "NOTRACK",
        "CT",
        "TRACE",
        "REDIRECT",
        "NFQUEUE",
        "TCPMSS",
    ];
    let mut missing = Vec::new();
    let mut declared: Vec<String> = Vec::new();
    let mut jumps: Vec<String> = Vec::new();
    let mut flush = |declared: &mut Vec<String>, jumps: &mut Vec<String>| {
        for j in jumps.drain(..) {
            if !declared.contains(&j) && !BUILTIN.contains(&j.as_str()) && !missing.contains(&j) {
                missing.push(j);
            }
        }
        declared.clear();
    };
    for line in save.lines() {
        if line.starts_with('*') {
            flush(&mut declared, &mut jumps);
        } else if let Some(decl) = line.strip_prefix(':') {
            declared.push(
                decl.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        } else if line.starts_with("-A ") || line.starts_with("-I ") {
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words.windows(2) {
                if w[0] == "-j" || w[0] == "-g" {
                    jumps.push(w[1].to_string());
                }
            }
        }
    }
    flush(&mut declared, &mut jumps);
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_set_elements_stay_multi_line_dynamic_ones_go() {
        let listed = "\
table ip kube-proxy {
\tset cluster-ips {
\t\ttype ipv4_addr
\t\telements = { 10.96.0.2,
\t\t\t     10.96.0.3 }
\t}
\tset affinity-X {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\telements = { 10.244.1.2 timeout 3h expires 1h,
\t\t\t     10.244.1.3 timeout 3h expires 2h }
\t}
}
";
        assert_eq!(
            nft_ruleset(listed),
            "\
table ip kube-proxy {
\tset cluster-ips {
\t\ttype ipv4_addr
\t\telements = { 10.96.0.2,
\t\t\t     10.96.0.3 }
\t}
\tset affinity-X {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t}
}
"
        );
    }

    #[test]
    fn jumps_to_undeclared_chains_are_found() {
        let save = "*nat\n:KUBE-SERVICES -\n:KUBE-SVC-A -\n-A KUBE-SERVICES -j KUBE-SVC-A\n-A KUBE-SERVICES -j KUBE-SVC-GONE\n-A KUBE-SVC-A -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n*filter\n:X -\n-A X -j KUBE-SVC-A\nCOMMIT\n";
        assert_eq!(
            missing_jump_targets(save),
            vec!["KUBE-SVC-GONE", "KUBE-SVC-A"]
        );
    }

    #[test]
    fn iptables_save_drops_noise_and_sorts_chains_keeping_rule_order() {
        let save = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Thu Nov 26 15:00:00 2026
*nat
:PREROUTING ACCEPT [12:720]
:KUBE-SVC-B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SVC-B -j second-b
-A KUBE-SVC-A -j first-a
-A KUBE-SVC-B -j third-b
COMMIT
# Completed on Thu Nov 26 15:00:00 2026
*filter
:INPUT ACCEPT [5:300]
COMMIT
";
        assert_eq!(
            iptables_save(save),
            "\
*filter
:INPUT ACCEPT
COMMIT
*nat
:KUBE-SERVICES -
:KUBE-SVC-A -
:KUBE-SVC-B -
:PREROUTING ACCEPT
-A KUBE-SVC-A -j first-a
-A KUBE-SVC-B -j second-b
-A KUBE-SVC-B -j third-b
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
COMMIT
"
        );
    }

    #[test]
    fn iptables_save_with_rule_counters() {
        let save = "*nat\n:X - [0:0]\n[3:180] -A X -j RETURN\nCOMMIT\n";
        assert_eq!(iptables_save(save), "*nat\n:X -\n-A X -j RETURN\nCOMMIT\n");
    }

    #[test]
    fn nft_counters_and_dynamic_elements_are_removed() {
        let listed = "\
table ip kube-proxy {
\tset affinity-X {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\ttimeout 3h
\t\telements = { 10.244.1.2 timeout 3h expires 2h59m58s120ms }
\t}

\tchain masquerading {
\t\tmeta mark & 0x00004000 == 0x00000000 return
\t\tcounter packets 12 bytes 720 masquerade fully-random
\t}
}
";
        assert_eq!(
            nft_ruleset(listed),
            "\
table ip kube-proxy {
\tset affinity-X {
\t\ttype ipv4_addr
\t\tflags dynamic,timeout
\t\ttimeout 3h
\t}
\tchain masquerading {
\t\tmeta mark & 0x00004000 == 0x00000000 return
\t\tcounter masquerade fully-random
\t}
}
"
        );
    }
}
