//! The suite's snapshots: each node's normalised rule tables, routes, neighbours and FDB entries,
//! kept as `<suite>/snapshots/<case>[__<mode>]__<node>.snap` in insta's file format, so that
//! `cargo insta review` and `cargo insta accept` work on them (the suite directory `cases/` is a
//! workspace package, `podpath-cases`, which is where cargo-insta looks for pending snapshots).
//!
//! The `cases` test target and `podpath run` check them the same way, through [`Snapshots`]:
//!
//! - a snapshot that matches passes;
//! - with `CI` set (to anything but `false` or `0`) nothing is ever written: a missing snapshot
//!   fails saying how to make it, a different one fails with the diff;
//! - otherwise, a missing or different snapshot fails and its new contents go to
//!   `<name>.snap.new` beside it, for `cargo insta review` (or `podpath run
//!   --update-snapshots`, which writes the `.snap` itself and passes);
//! - insta's own variables are honoured as cargo-insta sets them: `INSTA_UPDATE` (`always`/`1`
//!   writes `.snap` files, `unseen` writes missing ones, `new` pending ones, `no` nothing,
//!   `force` rewrites even matching ones) and `INSTA_FORCE_PASS=1` (a snapshot that differs
//!   passes once its pending file is written), so `cargo insta test --accept` works.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What is written when a snapshot is missing or differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Nothing (CI, `INSTA_UPDATE=no`).
    No,
    /// A pending `.snap.new` beside the snapshot (the local default, `INSTA_UPDATE=new`).
    New,
    /// A missing snapshot's `.snap` itself; a different one gets a `.snap.new`.
    Unseen,
    /// The `.snap` itself (`--update-snapshots`, `INSTA_UPDATE=always`).
    Always,
    /// The `.snap` itself, even when it matches (`INSTA_UPDATE=force`).
    Force,
}

/// Whether the environment says this is CI: `CI` set to anything but empty, `false` or `0`.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

impl Update {
    /// The behaviour the environment asks for; `accept` is `--update-snapshots`. In CI
    /// nothing is written, whatever else says so.
    pub fn from_env(accept: bool) -> Result<Update, String> {
        if is_ci() {
            return Ok(Update::No);
        }
        if accept {
            return Ok(Update::Always);
        }
        match std::env::var("INSTA_UPDATE").as_deref() {
            Err(_) | Ok("") | Ok("auto") | Ok("new") => Ok(Update::New),
            Ok("always") | Ok("1") => Ok(Update::Always),
            Ok("unseen") => Ok(Update::Unseen),
            Ok("no") => Ok(Update::No),
            Ok("force") => Ok(Update::Force),
            Ok(other) => Err(format!(
                "INSTA_UPDATE={other:?}: expected auto, always, new, unseen, no or force"
            )),
        }
    }
}

/// A suite's snapshot directory and how its snapshots are checked.
pub struct Snapshots {
    /// Where the files are reached (may be `/proc/self/fd/N`, a directory opened before the
    /// sandbox covered the host's `/run` and `/etc`).
    dir: PathBuf,
    /// The directory as the user knows it, for messages.
    shown: PathBuf,
    /// Keeps `dir` open when it is a descriptor's path.
    _fd: Option<fs::File>,
    update: Update,
    force_pass: bool,
    /// The builtin suite's snapshots, embedded in podpath: read, never written.
    builtin: bool,
}

/// How one snapshot check ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The snapshot matches (and, with `INSTA_UPDATE=force`, was rewritten).
    Matched,
    /// The snapshot was written (created or replaced): `--update-snapshots`.
    Written(PathBuf),
    /// Missing or different, and passing anyway (`INSTA_FORCE_PASS`) once its pending file
    /// is written: said, not failed.
    Pending(String),
}

impl Snapshots {
    /// The snapshots in `dir` (which may not exist yet). The directory is opened now when it
    /// exists, so that it stays the host's after the sandbox is entered.
    pub fn open(dir: &Path, update: Update) -> Snapshots {
        let fd = fs::File::open(dir).ok();
        let reach = match &fd {
            Some(f) => PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(f)
            )),
            None => dir.to_path_buf(),
        };
        let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let shown = crate::suite_root::normalise(&shown);
        Snapshots {
            dir: reach,
            shown,
            _fd: fd,
            update,
            force_pass: std::env::var("INSTA_FORCE_PASS").is_ok_and(|v| v == "1"),
            builtin: false,
        }
    }

    /// The snapshots of the builtin suite ([`crate::builtin_suite`]): checked like any, but
    /// nothing is written; a difference says how to export the suite to accept it there.
    pub fn builtin() -> Snapshots {
        Snapshots {
            dir: PathBuf::from(crate::builtin_suite::ROOT).join("snapshots"),
            shown: PathBuf::from(crate::builtin_suite::ROOT).join("snapshots"),
            _fd: None,
            update: Update::No,
            force_pass: false,
            builtin: true,
        }
    }

    /// The same, with `INSTA_FORCE_PASS` as given (for tests).
    pub fn with_force_pass(mut self, force_pass: bool) -> Snapshots {
        self.force_pass = force_pass;
        self
    }

    /// The directory, as the user knows it.
    pub fn shown_dir(&self) -> &Path {
        &self.shown
    }

    /// Checks `text` against snapshot `name` (`<case>[__<mode>]__<node>`, without `.snap`) of
    /// the case in `input_file` (named in the snapshot's header). `Err` is the failure
    /// message: what is missing or the diff, and how to accept it.
    pub fn check(&self, name: &str, input_file: &str, text: &str) -> Result<Checked, String> {
        let file = format!("{name}.snap");
        let path = self.dir.join(&file);
        let shown = self.shown.join(&file);
        let old = if self.builtin {
            crate::builtin_suite::snapshot(&file).map(parse)
        } else {
            match fs::read_to_string(&path) {
                Ok(old) => Some(parse(&old)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("reading snapshot {}: {e}", shown.display())),
            }
        };
        let new = normalise(text);
        let source = old
            .as_ref()
            .and_then(|(meta, _)| header_value(meta, "source"))
            .unwrap_or("podpath")
            .to_string();
        let contents = render(&source, input_file, &new);
        let write = |target: &Path| -> Result<(), String> {
            fs::create_dir_all(&self.dir)
                .and_then(|()| write_atomic(target, &contents))
                .map_err(|e| {
                    format!(
                        "writing {}: {e}",
                        self.shown
                            .join(target.file_name().unwrap_or_default())
                            .display()
                    )
                })
        };
        let pending_path = self.dir.join(format!("{file}.new"));
        let pending_shown = self.shown.join(format!("{file}.new"));
        match old {
            Some((_, old)) if old == new => {
                // A pending file of an earlier run is stale now.
                let _ = fs::remove_file(&pending_path);
                if self.update == Update::Force {
                    write(&path)?;
                }
                Ok(Checked::Matched)
            }
            old => {
                let what = match &old {
                    None => format!("no snapshot {} yet", shown.display()),
                    Some((_, old)) => format!(
                        "snapshot {} differs (- snapshot, + this run):\n{}",
                        shown.display(),
                        diff(old, &new)
                    ),
                };
                let accept_directly = matches!(self.update, Update::Always | Update::Force)
                    || (self.update == Update::Unseen && old.is_none());
                if accept_directly {
                    write(&path)?;
                    let _ = fs::remove_file(&pending_path);
                    return Ok(Checked::Written(shown));
                }
                let how = match self.update {
                    _ if self.builtin => "the builtin suite's snapshots are part of podpath: \
                         `podpath suite export DIR` writes the suite out, snapshots included, \
                         to run and accept them there"
                        .to_string(),
                    Update::No if is_ci() => {
                        "CI is set, so nothing was written: run the suite locally and accept it \
                         with `podpath run --update-snapshots` or `cargo insta review`, then \
                         commit the snapshot"
                            .to_string()
                    }
                    Update::No => "nothing was written (INSTA_UPDATE=no)".to_string(),
                    _ => {
                        write(&pending_path)?;
                        format!(
                            "this run's version is in {}: accept it with `cargo insta review` \
                             (or `cargo insta accept`), or run `podpath run --update-snapshots`",
                            pending_shown.display()
                        )
                    }
                };
                let message = match &old {
                    None => format!("{what}: {how}"),
                    Some(_) => format!("{what}\n{how}"),
                };
                if self.force_pass && self.update != Update::No {
                    Ok(Checked::Pending(message))
                } else {
                    Err(message)
                }
            }
        }
    }
}

/// Checks node `node`'s snapshot of `run` (`<snapshot_base>__<node>`): its tables must be
/// whole (no jump to a chain that does not exist), then match [`Snapshots::check`].
pub fn check_node(
    run: &crate::suite::CaseRun,
    snapshots: &Snapshots,
    snapshot_base: &str,
    node: &str,
    input_file: &str,
) -> Result<Checked, String> {
    let text = run.node_snapshot(node).map_err(|e| e.to_string())?;
    let missing = netns_runtime::proxy::normalise::missing_jump_targets(&text);
    if !missing.is_empty() {
        return Err(format!(
            "the ruleset of {node} jumps to chains that do not exist: {}",
            missing.join(", ")
        ));
    }
    snapshots.check(&format!("{snapshot_base}__{node}"), input_file, &text)
}

/// A snapshot file's header block and contents.
fn parse(file: &str) -> (String, String) {
    let file = file.replace("\r\n", "\n");
    if let Some(rest) = file.strip_prefix("---\n")
        && let Some(end) = rest.find("\n---\n")
    {
        let meta = rest[..end].to_string();
        let body = &rest[end + 5..];
        return (meta, normalise(body));
    }
    (String::new(), normalise(&file))
}

fn header_value<'a>(meta: &'a str, key: &str) -> Option<&'a str> {
    meta.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// As insta compares text snapshots: line endings unified, trailing whitespace at the end cut.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_string()
}

fn render(source: &str, input_file: &str, contents: &str) -> String {
    format!("---\nsource: {source}\ninput_file: {input_file}\n---\n{contents}\n")
}

fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}

/// A unified diff of the snapshot and this run, with 3 lines of context.
pub fn diff(old: &str, new: &str) -> String {
    let (old, new) = (format!("{old}\n"), format!("{new}\n"));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("snapshot", "this run")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("podpath-snap-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn snapshots(d: &Path, update: Update) -> Snapshots {
        Snapshots {
            dir: d.to_path_buf(),
            shown: d.to_path_buf(),
            _fd: None,
            update,
            force_pass: false,
            builtin: false,
        }
    }

    #[test]
    fn a_missing_snapshot_says_so_and_how_to_accept_it() {
        let d = dir("missing");
        let err = snapshots(&d, Update::New)
            .check("c__node1", "cases/c.yaml", "a\n")
            .unwrap_err();
        assert!(err.starts_with("no snapshot "), "{err}");
        assert!(err.contains("cargo insta review"), "{err}");
        assert!(err.contains("podpath run --update-snapshots"), "{err}");
        let pending = fs::read_to_string(d.join("c__node1.snap.new")).unwrap();
        assert_eq!(
            pending,
            "---\nsource: podpath\ninput_file: cases/c.yaml\n---\na\n"
        );
        assert!(!d.join("c__node1.snap").exists());
    }

    #[test]
    fn in_ci_nothing_is_written_and_a_difference_fails_with_the_diff() {
        let d = dir("ci");
        fs::write(
            d.join("c__node1.snap"),
            "---\nsource: harness/tests/cases.rs\ninput_file: cases/c.yaml\n---\na\nb\n",
        )
        .unwrap();
        let s = snapshots(&d, Update::No);
        assert_eq!(
            s.check("c__node1", "cases/c.yaml", "a\nb\n\n"),
            Ok(Checked::Matched)
        );
        let err = s.check("c__node1", "cases/c.yaml", "a\nc\n").unwrap_err();
        assert!(err.contains("-b\n+c\n"), "{err}");
        assert!(s.check("c__node2", "cases/c.yaml", "a").is_err());
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c__node1.snap")]);
    }

    #[test]
    fn accepting_writes_the_snapshot_keeping_its_source_and_removes_the_pending_file() {
        let d = dir("accept");
        fs::write(
            d.join("c__node1.snap"),
            "---\nsource: harness/tests/cases.rs\ninput_file: cases/c.yaml\n---\nold\n",
        )
        .unwrap();
        assert!(
            snapshots(&d, Update::New)
                .check("c__node1", "cases/c.yaml", "new")
                .is_err()
        );
        assert!(d.join("c__node1.snap.new").exists());
        let done = snapshots(&d, Update::Always)
            .check("c__node1", "cases/c.yaml", "new")
            .unwrap();
        assert!(matches!(done, Checked::Written(_)));
        assert_eq!(
            fs::read_to_string(d.join("c__node1.snap")).unwrap(),
            "---\nsource: harness/tests/cases.rs\ninput_file: cases/c.yaml\n---\nnew\n"
        );
        assert!(!d.join("c__node1.snap.new").exists());
    }

    #[test]
    fn force_pass_passes_a_difference_once_it_is_pending() {
        let d = dir("force-pass");
        let checked = snapshots(&d, Update::New)
            .with_force_pass(true)
            .check("c__node1", "cases/c.yaml", "x")
            .unwrap();
        assert!(matches!(checked, Checked::Pending(_)));
        assert!(d.join("c__node1.snap.new").exists());
    }
}
