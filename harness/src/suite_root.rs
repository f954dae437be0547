//! Which suite a case belongs to. A suite is a directory of cases with their snapshots in
//! `snapshots/`; a case is named (in trial names, snapshot names and reports) by its path below
//! its suite's root, so `podpath run cases`, `podpath run cases/services` and `podpath run
//! cases/services/clusterip.yaml` all call it `services/clusterip`.

use std::path::{Path, PathBuf};

/// The root of the suite `path` (a case file or a directory of cases) belongs to: the nearest
/// directory, from `path` (or the file's directory) up, that holds a `snapshots/` directory,
/// not looking above a repository's top (a directory with `.git`). Without one, `path` itself
/// for a directory and the file's directory for a file: a new suite, whose snapshots will go
/// in its `snapshots/`.
pub fn of(path: &Path) -> PathBuf {
    let start = if path.is_dir() {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let absolute = normalise(&std::path::absolute(&start).unwrap_or_else(|_| start.clone()));
    for (up, dir) in absolute.ancestors().enumerate() {
        if dir.join("snapshots").is_dir() {
            // The path as given when it is the root, else the root as an absolute path.
            return if up == 0 { start } else { dir.to_path_buf() };
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    start
}

/// The case in `file` as a snapshot's header names it: the suite directory's name and the
/// case's path below it (`cases/services/clusterip.yaml`), whatever the current directory.
pub fn input_file(root: &Path, file: &Path) -> String {
    let name = std::path::absolute(root)
        .ok()
        .and_then(|p| {
            normalise(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let rel = relative(root, file);
    if name.is_empty() {
        rel
    } else {
        format!("{name}/{rel}")
    }
}

/// `file`'s path below `root`, with `/` between components.
pub fn relative(root: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .or_else(|_| {
            let (r, f) = (
                normalise(&std::path::absolute(root).unwrap_or_default()),
                normalise(&std::path::absolute(file).unwrap_or_default()),
            );
            f.strip_prefix(&r).map(Path::to_path_buf)
        })
        .unwrap_or_else(|_| file.to_path_buf());
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A path from the environment of a test target (`PODPATH_CASES`, `PODPATH_REPORTS`), which
/// cargo runs in its package's directory (`harness/`), not where it was invoked. A relative
/// path is taken from where cargo was invoked: cargo passes the test no variable for that, but
/// the shell's `PWD`, which cargo leaves as it found it, names it; it is used when it is an
/// absolute directory inside the workspace. Otherwise (no `PWD`, or one outside the workspace)
/// the path is taken from the workspace root.
pub fn resolve_invoked(path: &Path, pwd: Option<&Path>, workspace: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let workspace = normalise(&std::path::absolute(workspace).unwrap_or_default());
    let base = pwd
        .filter(|p| p.is_absolute() && p.is_dir())
        .map(normalise)
        .filter(|p| p.starts_with(&workspace))
        .unwrap_or(workspace);
    base.join(path)
}

/// `..` and `.` resolved lexically.
pub fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_taken_from_where_cargo_was_invoked_inside_the_workspace() {
        let ws = std::env::temp_dir().join(format!("podpath-ws-{}", std::process::id()));
        std::fs::create_dir_all(ws.join("harness")).unwrap();
        let rel = Path::new("my-cases/");
        assert_eq!(resolve_invoked(rel, Some(&ws), &ws), ws.join("my-cases/"));
        assert_eq!(
            resolve_invoked(rel, Some(&ws.join("harness")), &ws),
            ws.join("harness/my-cases/")
        );
        // Outside the workspace, or no PWD: the workspace root.
        assert_eq!(
            resolve_invoked(rel, Some(Path::new("/")), &ws),
            ws.join("my-cases/")
        );
        assert_eq!(resolve_invoked(rel, None, &ws), ws.join("my-cases/"));
        assert_eq!(
            resolve_invoked(Path::new("/abs"), Some(&ws), &ws),
            PathBuf::from("/abs")
        );
    }

    #[test]
    fn a_case_is_named_below_the_directory_holding_snapshots() {
        let d = std::env::temp_dir().join(format!("podpath-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("suite/snapshots")).unwrap();
        std::fs::create_dir_all(d.join("suite/services")).unwrap();
        let file = d.join("suite/services/clusterip.yaml");
        std::fs::write(&file, "").unwrap();
        for given in [d.join("suite"), d.join("suite/services"), file.clone()] {
            let root = of(&given);
            assert_eq!(
                normalise(&std::path::absolute(&root).unwrap()),
                d.join("suite"),
                "{}",
                given.display()
            );
            assert_eq!(relative(&root, &file), "services/clusterip.yaml");
            assert_eq!(input_file(&root, &file), "suite/services/clusterip.yaml");
        }
        // No snapshots anywhere up to the repository: the directory given is the root.
        std::fs::create_dir_all(d.join("new/.git")).unwrap();
        std::fs::write(d.join("new/a.yaml"), "").unwrap();
        assert_eq!(of(&d.join("new/a.yaml")), d.join("new"));
    }
}
