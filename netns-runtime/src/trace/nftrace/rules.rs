//! The text of the rules trace events name by handle.
//!
//! A trace event names its rule by `(family, table, chain, handle)`. `nft -a list ruleset` shows
//! every rule with its handle. For the tables iptables-nft made (`ip filter`, `nat`, `mangle`,
//! `raw`, `security`) the form people know is `iptables-save`'s, which has no handles; but both
//! list a chain's rules in the same order, so the k-th rule of chain C in the nft listing is the
//! k-th `-A C` line of that table in `iptables-save`. When the counts differ (a rule
//! `iptables-save` cannot show, or the ruleset changed between the two listings) the chain keeps
//! the nft text and [`RuleBook::notes`] says so.

use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;

use super::RuleEvent;
use crate::ruleset::{self, Block, NftLine};
use crate::tool::{self, ToolError};

/// The tables of family `ip` that iptables-nft makes and `iptables-save` shows.
const XTABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

/// `(family, table, chain, handle)`.
type RuleKey = (String, String, String, u64);

/// The rules of one namespace's ruleset, by family, table, chain and handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleBook {
    rules: HashMap<RuleKey, String>,
    /// Why some rules have their nft text although `iptables-save` shows their table (or why
    /// `iptables-save` could not be used at all).
    pub notes: Vec<String>,
}

/// One rule of an `nft -a list ruleset` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// The rule as listed, counters shown as a bare `counter`.
    pub text: String,
}

/// The `-A` lines of an `iptables-save` output, by table and chain, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IptablesSave {
    pub tables: HashMap<String, HashMap<String, Vec<String>>>,
    /// The header said `(legacy)`: these tables are not nf_tables tables and nft does not
    /// see them.
    pub legacy: bool,
}

impl RuleBook {
    /// Reads the ruleset of `netns`: `nft -a list ruleset`, and `iptables-save` when it is
    /// installed (without it, every rule keeps its nft text).
    pub fn read(netns: BorrowedFd<'_>) -> Result<RuleBook, ToolError> {
        let nft = tool::run(
            &netns,
            "nft",
            &["-a", "list", "ruleset"],
            None,
            tool::DEFAULT_TIMEOUT,
        )?;
        let save = tool::run(&netns, "iptables-save", &[], None, tool::DEFAULT_TIMEOUT);
        let mut notes = Vec::new();
        let save = match save {
            Ok(text) => Some(text),
            Err(ToolError::Spawn { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                None
            }
            Err(e) => {
                notes.push(format!("nft text for every rule: {e}"));
                None
            }
        };
        let mut book = RuleBook::from_listings(&nft, save.as_deref());
        book.notes.splice(0..0, notes);
        Ok(book)
    }

    /// The book of an `nft -a list ruleset` listing and, if given, an `iptables-save` output of
    /// the same namespace.
    pub fn from_listings(nft: &str, iptables_save: Option<&str>) -> RuleBook {
        let listed = parse_nft_listing(nft);
        let save = iptables_save.map(parse_iptables_save);
        let save = save.as_ref().filter(|s| !s.legacy);
        let mut book = RuleBook::default();
        // Rules of each chain in listing order, to pair with iptables-save lines.
        let mut chains: Vec<((String, String, String), Vec<NftRule>)> = Vec::new();
        let mut at: HashMap<(String, String, String), usize> = HashMap::new();
        for rule in listed {
            let key = (rule.family.clone(), rule.table.clone(), rule.chain.clone());
            let i = *at.entry(key.clone()).or_insert_with(|| {
                chains.push((key, Vec::new()));
                chains.len() - 1
            });
            chains[i].1.push(rule);
        }
        for ((family, table, chain), rules) in chains {
            let saved = save
                .filter(|_| family == "ip" && XTABLES.contains(&table.as_str()))
                .and_then(|s| s.tables.get(&table))
                .map(|t| t.get(&chain).map(Vec::as_slice).unwrap_or_default());
            let texts: Vec<String> = match saved {
                Some(lines) if lines.len() == rules.len() => lines.to_vec(),
                Some(lines) => {
                    book.notes.push(format!(
                        "ip {table} {chain}: nft lists {} rules, iptables-save {}; nft text kept",
                        rules.len(),
                        lines.len()
                    ));
                    rules.iter().map(|r| r.text.clone()).collect()
                }
                None => rules.iter().map(|r| r.text.clone()).collect(),
            };
            for (rule, text) in rules.into_iter().zip(texts) {
                book.rules
                    .insert((rule.family, rule.table, rule.chain, rule.handle), text);
            }
        }
        book
    }

    /// The text of a rule.
    pub fn rule(&self, family: &str, table: &str, chain: &str, handle: u64) -> Option<&str> {
        self.rules
            .get(&(family.into(), table.into(), chain.into(), handle))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Fills in [`RuleEvent::rule`] of every event with a handle this book knows. All events
    /// are taken to come from the namespace the book was read in: for a mix of namespaces, see
    /// [`RuleBook::annotate_in`].
    pub fn annotate(&self, events: &mut [RuleEvent]) {
        for e in events {
            if let Some(h) = e.handle
                && let Some(text) = self.rule(&e.family, &e.table, &e.chain, h)
            {
                e.rule = Some(text.to_string());
            }
        }
    }

    /// [`RuleBook::annotate`] for the events of namespace `netns` (by the name given to the
    /// tracer), leaving the others alone.
    pub fn annotate_in(&self, netns: &str, events: &mut [RuleEvent]) {
        for e in events.iter_mut().filter(|e| e.netns == netns) {
            self.annotate(std::slice::from_mut(e));
        }
    }
}

/// The rules of an `nft -a list ruleset` (or `nft -a list table`) listing, in order: the lines
/// of a chain with a `# handle N` comment ([`ruleset::nft_lines`]). Other blocks of a table
/// (sets, maps, flowtables, named objects) are skipped, whatever they hold.
pub fn parse_nft_listing(text: &str) -> Vec<NftRule> {
    ruleset::nft_lines(text)
        .into_iter()
        .filter(NftLine::is_rule)
        .filter_map(|l| {
            let ((family, table), Some(Block::Chain(chain))) = (l.table?, l.block) else {
                return None;
            };
            Some(NftRule {
                family: family.to_string(),
                table: table.to_string(),
                chain: chain.to_string(),
                handle: l.handle()?,
                text: bare_counters(l.code),
            })
        })
        .collect()
}

/// The `-A` lines of an `iptables-save` output ([`ruleset::parse_save`]), by table and chain.
pub fn parse_iptables_save(text: &str) -> IptablesSave {
    let parsed = ruleset::parse_save(text);
    let mut save = IptablesSave {
        legacy: parsed.legacy,
        ..IptablesSave::default()
    };
    for table in parsed.tables {
        let chains = save.tables.entry(table.name).or_default();
        for (chain, line) in table.rules {
            chains.entry(chain).or_default().push(line);
        }
    }
    save
}

/// The rule with `counter packets N bytes M` shown as `counter` (the numbers change with
/// every packet) and runs of spaces as one.
fn bare_counters(code: &str) -> String {
    ruleset::without_counter_values(code)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -a list ruleset` (nftables 1.0.6) of a namespace loaded with
    /// `iptables-restore < SAVE_SAMPLE` and an nft file with the tables `ip t` and `inet other`.
    const NFT_SAMPLE: &str = include_str!("testdata/nft-list-ruleset.txt");
    /// `iptables-save` (iptables 1.8.9, nf_tables) of the same namespace.
    const SAVE_SAMPLE: &str = include_str!("testdata/iptables-save.txt");

    #[test]
    fn nft_listing_rules_with_handles() {
        let rules = parse_nft_listing(NFT_SAMPLE);
        let find = |family: &str, table: &str, chain: &str| -> Vec<(u64, &str)> {
            rules
                .iter()
                .filter(|r| r.family == family && r.table == table && r.chain == chain)
                .map(|r| (r.handle, r.text.as_str()))
                .collect()
        };
        assert_eq!(
            find("ip", "nat", "KUBE-SVC-XPGD46QRK7WJZT7O"),
            vec![
                (
                    11,
                    "meta random & 2147483647 < 1073741824 counter jump KUBE-SEP-A"
                ),
                (12, "counter jump KUBE-SEP-B"),
            ]
        );
        assert_eq!(
            find("ip", "t", "pre"),
            vec![(2, "ip daddr 10.96.0.1 tcp dport 80 dnat to 10.0.2.2:8080")]
        );
        assert_eq!(
            find("inet", "other", "c"),
            vec![
                (3, "ip saddr @s counter drop"),
                (
                    4,
                    "ct state established,related accept comment \"est # { not a brace\""
                ),
                (6, "tcp dport { 22, 80 } accept"),
            ]
        );
        // Nothing from set blocks, and the base chain's `type ...` line is no rule.
        assert!(
            rules
                .iter()
                .all(|r| r.chain != "s" && !r.text.starts_with("type "))
        );
        assert_eq!(rules.len(), 8 + 1 + 1 + 3, "{rules:#?}");
    }

    #[test]
    fn iptables_save_lines_by_table_and_chain() {
        let save = parse_iptables_save(SAVE_SAMPLE);
        assert!(!save.legacy);
        assert_eq!(
            save.tables["filter"]["FORWARD"],
            vec!["-A FORWARD -m comment --comment x -j ACCEPT"]
        );
        assert_eq!(save.tables["nat"]["KUBE-SVC-XPGD46QRK7WJZT7O"].len(), 2);
        assert!(!save.tables["nat"].contains_key("POSTROUTING"));
    }

    #[test]
    fn xtables_rules_take_the_iptables_save_text_by_position() {
        let book = RuleBook::from_listings(NFT_SAMPLE, Some(SAVE_SAMPLE));
        assert_eq!(book.notes, Vec::<String>::new());
        assert_eq!(
            book.rule("ip", "nat", "KUBE-SVC-XPGD46QRK7WJZT7O", 11),
            Some(
                "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"default/web:http -> \
                 10.244.1.2:8080\" -m statistic --mode random --probability 0.50000000000 \
                 -j KUBE-SEP-A"
            )
        );
        assert_eq!(
            book.rule("ip", "nat", "KUBE-SVC-XPGD46QRK7WJZT7O", 12),
            Some(
                "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"default/web:http -> \
                 10.244.2.2:8080\" -j KUBE-SEP-B"
            )
        );
        assert_eq!(
            book.rule("ip", "filter", "FORWARD", 4),
            Some("-A FORWARD -m comment --comment x -j ACCEPT")
        );
        // Not an xtables table: nft text.
        assert_eq!(
            book.rule("ip", "t", "pre", 2),
            Some("ip daddr 10.96.0.1 tcp dport 80 dnat to 10.0.2.2:8080")
        );
        assert_eq!(
            book.rule("ip", "nat", "KUBE-SVC-XPGD46QRK7WJZT7O", 13),
            None
        );
        assert_eq!(book.len(), 13);
    }

    #[test]
    fn without_iptables_save_or_with_legacy_tables_the_nft_text_stays() {
        for save in [None, Some(SAVE_SAMPLE.replace("(nf_tables)", "(legacy)"))] {
            let book = RuleBook::from_listings(NFT_SAMPLE, save.as_deref());
            assert_eq!(
                book.rule("ip", "filter", "FORWARD", 4),
                Some("counter accept")
            );
        }
    }

    #[test]
    fn a_chain_whose_counts_differ_keeps_the_nft_text_and_says_so() {
        let save = SAVE_SAMPLE.replace(
            "-A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:8080\n",
            "",
        );
        let book = RuleBook::from_listings(NFT_SAMPLE, Some(&save));
        assert_eq!(
            book.rule("ip", "nat", "KUBE-SEP-B", 15),
            Some("meta l4proto tcp counter dnat to 10.244.2.2:8080")
        );
        assert_eq!(
            book.notes,
            vec!["ip nat KUBE-SEP-B: nft lists 1 rules, iptables-save 0; nft text kept"]
        );
        // The other chains still pair up.
        assert!(
            book.rule("ip", "nat", "KUBE-SEP-A", 14)
                .unwrap()
                .starts_with("-A ")
        );
    }

    #[test]
    fn annotate_fills_in_rules_by_handle() {
        let book = RuleBook::from_listings(NFT_SAMPLE, Some(SAVE_SAMPLE));
        let event = |netns: &str, chain: &str, handle: Option<u64>| RuleEvent {
            netns: netns.into(),
            seq: 0,
            id: 1,
            family: "ip".into(),
            table: "filter".into(),
            chain: chain.into(),
            handle,
            kind: super::super::TraceKind::Rule,
            verdict: Some("accept".into()),
            iif: None,
            oif: None,
            mark: None,
            packet: None,
            ip_id: None,
            rule: None,
        };
        let mut events = vec![
            event("r", "FORWARD", Some(4)),
            event("r", "FORWARD", None),
            event("r", "FORWARD", Some(99)),
            event("other", "FORWARD", Some(4)),
        ];
        book.annotate_in("r", &mut events);
        let rules: Vec<Option<&str>> = events.iter().map(|e| e.rule.as_deref()).collect();
        assert_eq!(
            rules,
            vec![
                Some("-A FORWARD -m comment --comment x -j ACCEPT"),
                None,
                None,
                None
            ]
        );
        book.annotate(&mut events);
        assert!(events[3].rule.is_some());
    }

    #[test]
    fn odd_listing_lines_do_not_confuse_the_parser() {
        let text = "table ip \"weird-name\" { # handle 9\n\
                    \tmap m { # handle 3\n\
                    \t\ttype ipv4_addr : verdict\n\
                    \t\telements = { 10.0.0.1 : accept,\n\
                    \t\t\t     10.0.0.2 : drop }\n\
                    \t}\n\
                    \tchain c { # handle 1\n\
                    \t\tip daddr vmap @m # handle 4\n\
                    \t\tcounter packets 12 bytes 3456 # handle 5\n\
                    \t\t# handle 6\n\
                    \t}\n\
                    }\n\
                    # handle 7\n";
        let rules = parse_nft_listing(text);
        assert_eq!(
            rules,
            vec![
                NftRule {
                    family: "ip".into(),
                    table: "weird-name".into(),
                    chain: "c".into(),
                    handle: 4,
                    text: "ip daddr vmap @m".into(),
                },
                NftRule {
                    family: "ip".into(),
                    table: "weird-name".into(),
                    chain: "c".into(),
                    handle: 5,
                    text: "counter".into(),
                },
            ]
        );
    }
}
