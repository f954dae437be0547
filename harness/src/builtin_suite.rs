//! The standard suite, embedded in podpath when it was built (the `podpath-cases` crate):
//! `podpath run` runs it where there is no `cases/` directory, `podpath suite list` shows it and
//! `podpath suite export DIR` writes it out, snapshots included, to be run or extended there.

use std::io;
use std::path::{Path, PathBuf};

use crate::plan;
use crate::suite::LoadedCase;

/// The root of the builtin suite in case paths and messages: `builtin:cases/icmp.yaml`.
pub const ROOT: &str = "builtin:cases";

/// Whether `root` is the builtin suite's.
pub fn is_builtin(root: &Path) -> bool {
    root == Path::new(ROOT)
}

/// Every case of the builtin suite, planned, named as in the repository's `cases/`.
pub fn load() -> Vec<LoadedCase> {
    podpath_cases::cases()
        .map(|(rel, text)| {
            let path = Path::new(ROOT).join(rel);
            let id = rel
                .strip_suffix(".yaml")
                .or_else(|| rel.strip_suffix(".yml"))
                .unwrap_or(rel)
                .to_string();
            LoadedCase {
                id,
                plan: plan::load_str(&path, text),
                path,
                root: PathBuf::from(ROOT),
            }
        })
        .collect()
}

/// A snapshot of the builtin suite by file name.
pub fn snapshot(name: &str) -> Option<&'static str> {
    podpath_cases::snapshot(name)
}

/// Writes the builtin suite, cases and snapshots, into `dir` (made if missing), refusing to
/// overwrite a file. Returns how many files were written.
pub fn export(dir: &Path) -> io::Result<usize> {
    for (rel, _) in podpath_cases::FILES {
        let target = dir.join(rel);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists: nothing was written", target.display()),
            ));
        }
    }
    for (rel, text) in podpath_cases::FILES {
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, text)?;
    }
    // A suite's root is the directory holding `snapshots/`, even before it has one.
    std::fs::create_dir_all(dir.join("snapshots"))?;
    Ok(podpath_cases::FILES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_suite_plans_and_is_named_as_in_the_repository() {
        let cases = load();
        assert!(cases.iter().any(|c| c.id == "services/clusterip"));
        assert!(
            cases.iter().all(|c| c.plan.is_ok()),
            "every builtin case plans"
        );
        assert!(snapshot("services__clusterip__iptables__node1.snap").is_some());
    }

    #[test]
    fn export_writes_the_suite_and_refuses_to_overwrite() {
        let d = std::env::temp_dir().join(format!("podpath-export-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let n = export(&d).unwrap();
        assert!(n > 10);
        assert!(d.join("services/clusterip.yaml").is_file());
        assert!(d.join("snapshots/icmp__node1.snap").is_file());
        assert_eq!(crate::suite_root::of(&d.join("services/clusterip.yaml")), d);
        assert!(export(&d).is_err());
    }
}
