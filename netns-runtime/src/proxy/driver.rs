//! Service proxies: the seam where kube-proxy (builtin, in either mode) or an implementation
//! under test programs a node's Services.

use std::fmt;
use std::time::Duration;

use crate::netns::Netns;
use crate::proxy::{ServiceTable, cleanup, iptables, nftables, normalise};
use crate::stack::RuleTable;
use crate::tool::{self, ToolError};

/// How long one rule-table dump may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long loading a node's rules may take: loads grow with the table (10,000 Services take
/// minutes in either mode on a small machine, see docs/performance.md), so the limit does too.
fn load_timeout(table: &ServiceTable) -> Duration {
    TOOL_TIMEOUT + Duration::from_millis(100) * table.services.len() as u32
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("node {node}: {proxy} proxy: {source}")]
    Tool {
        node: String,
        proxy: String,
        source: ToolError,
    },
    /// A `restore` proxy's ruleset could not be read or loaded.
    #[error("node {node}: service proxy restore: ruleset {}: {problem}", file.display())]
    Ruleset {
        node: String,
        file: std::path::PathBuf,
        problem: String,
    },
    /// An `exec` proxy's command did not start, ended, or was not ready in time.
    #[error("node {node}: service proxy `{program}`: {problem}")]
    Exec {
        node: String,
        program: String,
        problem: String,
    },
}

/// The builtin proxy modes a case can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyMode {
    /// kube-proxy `--proxy-mode=iptables`, loaded with `iptables-restore --noflush`.
    Iptables,
    /// kube-proxy `--proxy-mode=nftables`, loaded with `nft -f`.
    Nftables,
}

impl ProxyMode {
    pub const ALL: [ProxyMode; 2] = [ProxyMode::Iptables, ProxyMode::Nftables];

    pub fn name(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyMode> {
        ProxyMode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The builtin proxy for this mode.
    pub fn builtin(self) -> Box<dyn ServiceProxy> {
        match self {
            ProxyMode::Iptables => Box::new(IptablesProxy),
            ProxyMode::Nftables => Box::new(NftablesProxy),
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Programs Services into a node, and shows what it programmed.
pub trait ServiceProxy: Send + Sync {
    /// Short name for trial names and reports.
    fn name(&self) -> &str;
    /// Programs `table` into the node namespace `node`: the first time after the build, and
    /// again each time the cluster changes (a case's steps), so it must be a full sync that
    /// leaves the node exactly as `table` says whatever it programmed before.
    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError>;
    /// The rule tables it programs, which snapshots and flow reports dump.
    fn rule_tables(&self) -> Vec<RuleTable>;
    /// Whether this is one of podpath's builtin proxies (kube-proxy's rules rendered by
    /// podpath), whose rules cases may name per mode (`proxy: iptables` on a hop).
    fn is_builtin(&self) -> bool {
        false
    }
    /// Waits until what [`ServiceProxy::apply`] started on every node has programmed the
    /// node's Services (an `exec` proxy's command); bounded. Loaders are ready when they return.
    fn wait_ready(&self) -> Result<(), ProxyError> {
        Ok(())
    }
    /// Stops whatever it started (SIGTERM, then SIGKILL after a grace period). Idempotent.
    fn stop(&self) -> Vec<ProxyError> {
        Vec::new()
    }
    /// What the commands it started wrote, per node (bounded), for flow reports.
    fn logs(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// How long each node took from its command's start to ready (`None`: never), for what it
    /// started; empty for loaders.
    fn ready_times(&self) -> Vec<(String, Option<Duration>)> {
        Vec::new()
    }
}

/// One nftables table of a node, normalised: `nft list table FAMILY NAME`.
pub fn nft_table(
    node: &Netns,
    node_name: &str,
    family: &str,
    name: &str,
) -> Result<String, ProxyError> {
    tool::run(
        node,
        "nft",
        &["list", "table", family, name],
        None,
        TOOL_TIMEOUT,
    )
    .map(|s| normalise::nft_ruleset(&s))
    .map_err(tool_err(node_name, "nftables"))
}

/// A node's `iptables-save`, normalised: kube-proxy's iptables mode and flanneld's rules.
pub fn iptables_rules(node: &Netns, node_name: &str) -> Result<String, ProxyError> {
    tool::run(node, "iptables-save", &[], None, TOOL_TIMEOUT)
        .map(|s| normalise::iptables_save(&s))
        .map_err(tool_err(node_name, "iptables"))
}

fn tool_err<'a>(node: &'a str, proxy: &'a str) -> impl FnOnce(ToolError) -> ProxyError + 'a {
    move |source| ProxyError::Tool {
        node: node.to_string(),
        proxy: proxy.to_string(),
        source,
    }
}

/// kube-proxy in iptables mode.
pub struct IptablesProxy;

impl ServiceProxy for IptablesProxy {
    fn name(&self) -> &str {
        "iptables"
    }

    /// A full sync, as kube-proxy's: on a fresh node the whole ruleset with kube-proxy's jump
    /// rules; on a node that has them (a re-apply, when the cluster changed), the sync alone,
    /// with the Service and endpoint chains no longer used deleted. Then the conntrack cleanup.
    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError> {
        let save = tool::run(node, "iptables-save", &["-t", "nat"], None, TOOL_TIMEOUT)
            .map_err(tool_err(&table.node_name, self.name()))?;
        let existing = iptables::declared_chains(&save);
        let rules = if existing.iter().any(|c| c == "KUBE-SERVICES") {
            iptables::render_resync(table, &existing)
        } else {
            iptables::render(table)
        };
        tool::run(
            node,
            "iptables-restore",
            &["-w", "5", "--noflush"],
            Some(rules.as_bytes()),
            load_timeout(table),
        )
        .map_err(tool_err(&table.node_name, self.name()))?;
        cleanup::flush_stale_udp(node, table)
            .map(drop)
            .map_err(tool_err(&table.node_name, self.name()))
    }

    fn rule_tables(&self) -> Vec<RuleTable> {
        vec![RuleTable::IptablesSave]
    }

    fn is_builtin(&self) -> bool {
        true
    }
}

/// kube-proxy in nftables mode.
pub struct NftablesProxy;

impl ServiceProxy for NftablesProxy {
    fn name(&self) -> &str {
        "nftables"
    }

    /// A full sync: the rendered file replaces the whole table in one transaction, so it is
    /// the same on a fresh node and on a re-apply. Then the conntrack cleanup.
    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError> {
        let rules = nftables::render(table);
        tool::run(
            node,
            "nft",
            &["-f", "-"],
            Some(rules.as_bytes()),
            TOOL_TIMEOUT,
        )
        .map_err(tool_err(&table.node_name, self.name()))?;
        cleanup::flush_stale_udp(node, table)
            .map(drop)
            .map_err(tool_err(&table.node_name, self.name()))
    }

    fn rule_tables(&self) -> Vec<RuleTable> {
        vec![RuleTable::Nft {
            family: "ip".into(),
            name: "kube-proxy".into(),
            heading: "nftables proxy".into(),
        }]
    }

    fn is_builtin(&self) -> bool {
        true
    }
}

/// No service proxy: Services exist in the plan but nothing programs them.
pub struct NoProxy;

impl ServiceProxy for NoProxy {
    fn name(&self) -> &str {
        "none"
    }

    fn apply(&self, _node: &Netns, _table: &ServiceTable) -> Result<(), ProxyError> {
        Ok(())
    }

    fn rule_tables(&self) -> Vec<RuleTable> {
        Vec::new()
    }
}
