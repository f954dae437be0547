//! The `restore` service proxy: a captured ruleset (an `iptables-save` dump, or an `nft`
//! ruleset) loaded into a node as it is, so users replay what their proxy wrote in production
//! and run the flows against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::Netns;
use crate::proxy::ServiceTable;
use crate::proxy::driver::{ProxyError, ProxyMode, ServiceProxy};
use crate::stack::RuleTable;
use crate::stack::exec::expand;
use crate::tool::{self, ToolError};

/// How long loading one ruleset may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads a node's ruleset file with `iptables-restore` (which replaces every table the dump
/// names, as on a node) or `nft -f`.
pub struct RestoreProxy {
    /// Which kind of rules the files hold, and so how they are loaded and dumped.
    pub mode: ProxyMode,
    /// The file, absolute; `{node}` and `{case}` in it are replaced (one file per node, or
    /// one for all).
    pub ruleset: PathBuf,
    /// The case's name in trial names (`services/clusterip`), for `{case}`.
    pub case: String,
}

impl RestoreProxy {
    /// The file a node's ruleset is read from.
    pub fn file_for(&self, node: &str) -> PathBuf {
        let values = BTreeMap::from([("node", node.to_string()), ("case", self.case.clone())]);
        let template = self.ruleset.to_string_lossy().into_owned();
        PathBuf::from(expand(&[template], &values).remove(0))
    }
}

/// What `iptables-restore` or `nft` said, located in `file` where it names a line.
pub fn located(file: &Path, said: &str) -> String {
    // Its usage hint is no help here.
    let kept: Vec<&str> = said
        .trim()
        .lines()
        .filter(|l| !l.starts_with("Try `"))
        .collect();
    let said = kept.join("\n");
    let said = said.as_str();
    let shown = file.display().to_string();
    // nft names the file itself (`FILE:3:1-5: Error: ...`).
    if said.contains(&shown) {
        return said.to_string();
    }
    // iptables-restore: `line 3 failed`, or `Error occurred at line: 42`.
    let line = said.split("line").skip(1).find_map(|rest| {
        let rest = rest.trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    match line {
        Some(n) => format!("{shown}:{n}: {said}"),
        None => format!("{shown}: {said}"),
    }
}

impl ServiceProxy for RestoreProxy {
    fn name(&self) -> &str {
        match self.mode {
            ProxyMode::Iptables => "restore (iptables)",
            ProxyMode::Nftables => "restore (nftables)",
        }
    }

    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError> {
        let file = self.file_for(&table.node_name);
        let fail = |problem: String| ProxyError::Ruleset {
            node: table.node_name.clone(),
            file: file.clone(),
            problem,
        };
        let text = std::fs::read(&file).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let path = file.to_string_lossy().into_owned();
        let run = match self.mode {
            // From standard input: iptables-restore then names lines, not the file.
            ProxyMode::Iptables => tool::run(
                node,
                "iptables-restore",
                &["-w", "5"],
                Some(&text),
                LOAD_TIMEOUT,
            ),
            ProxyMode::Nftables => tool::run(node, "nft", &["-f", &path], None, LOAD_TIMEOUT),
        };
        let program = match self.mode {
            ProxyMode::Iptables => "iptables-restore",
            ProxyMode::Nftables => "nft",
        };
        match run {
            Ok(_) => Ok(()),
            Err(ToolError::Failed { status, stderr, .. }) => Err(fail(format!(
                "{program} refused it ({status}):\n{}",
                located(&file, &stderr)
            ))),
            Err(other) => Err(fail(other.to_string())),
        }
    }

    fn rule_tables(&self) -> Vec<RuleTable> {
        self.mode.builtin().rule_tables()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_restore_errors_get_the_file_and_line() {
        let f = Path::new("/d/node1.rules");
        assert_eq!(
            located(f, "iptables-restore: line 4 failed\n"),
            "/d/node1.rules:4: iptables-restore: line 4 failed"
        );
        assert_eq!(
            located(f, "/d/node1.rules:2:1-3: Error: syntax error"),
            "/d/node1.rules:2:1-3: Error: syntax error"
        );
        assert_eq!(located(f, "odd"), "/d/node1.rules: odd");
        assert_eq!(
            located(
                f,
                "iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\nError occurred at line: 42\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n"
            ),
            "/d/node1.rules:42: iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\nError occurred at line: 42"
        );
    }

    #[test]
    fn node_and_case_are_replaced_in_the_file_name() {
        let p = RestoreProxy {
            mode: ProxyMode::Iptables,
            ruleset: "/dumps/{case}/{node}.rules".into(),
            case: "services/clusterip".into(),
        };
        assert_eq!(
            p.file_for("node2"),
            Path::new("/dumps/services/clusterip/node2.rules")
        );
    }
}
