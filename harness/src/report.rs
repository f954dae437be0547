//! What a run leaves under `reports/`: a directory of its own, `runs/<UTC time>-<pid>/`, with
//! JUnit XML for the whole run (`junit.xml`), and for a failing flow (every flow with
//! `--artifacts all`) a directory `flows/<trial>/` with its pcapng, its journey in Markdown with
//! a mermaid sequence diagram, the nodes' rule tables and conntrack entries; `latest` and a
//! top-level `junit.xml` for the latest run. A run that has not finished, or was interrupted,
//! says so in its report. The layout is described for users in `docs/reports.md`.
//!
//! [`junit_xml`] and [`artifact_dir_name`] are pure; [`ReportSink`] is the thin I/O edge the
//! test target and the CLI share: trials [`record`](ReportSink::record) their outcome as they
//! end, the flow observation hands over its artifacts, and [`finish`](ReportSink::finish)
//! writes the report once the run is over.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use netns_runtime::capture::Captured;
use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite, XmlString,
};

/// How one trial ended, for the JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialRecord {
    /// The trial's name: `<case>[::<mode>]::<flow>` or `...::snapshot::<node>`.
    pub name: String,
    /// The case file it comes from, as given to the run.
    pub file: String,
    pub duration: Duration,
    pub outcome: TrialOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    Passed,
    /// The failure as the trial reported it.
    Failed(String),
    /// Not run, and why.
    Ignored(String),
    /// Did not end: the run was interrupted while it ran (a JUnit `<error>`).
    Error(String),
}

/// How a run ended, as its report says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every trial the run meant to run ended.
    Finished,
    /// Stopped by a signal (`SIGINT`, `SIGTERM`...) before it was over.
    Interrupted(String),
    /// Not over yet: what a run's report says until it is (and after, if it was killed).
    Unfinished,
}

/// The name of the `<testsuite>` and `<testcase>` that say an interrupted run was interrupted.
pub const INTERRUPTED: &str = "interrupted";

/// Everything observed of one flow that goes into its artifact directory.
#[derive(Debug, Clone, Default)]
pub struct FlowArtifacts {
    /// Every frame captured, ordered by kernel timestamp (one pcapng interface per capture
    /// point, named `netns/iface`).
    pub captures: Vec<Captured>,
    /// The capture points, including those that saw nothing.
    pub points: Vec<netns_runtime::capture::CapturePoint>,
    /// The journey walked step by step, with its mermaid `sequenceDiagram` (`journey.md`).
    pub journey_markdown: String,
    /// Each node's rule tables, normalised, as (node, text).
    pub rules: Vec<(String, String)>,
    /// Each node's conntrack entries after the flow, as (node, text).
    pub conntrack: Vec<(String, String)>,
    /// What the stack's commands that run for the whole case wrote (an `exec` service proxy
    /// per node, an `exec` cluster DNS), bounded, as (name, text): `logs/<name>.log`.
    pub logs: Vec<(String, String)>,
}

// ---- JUnit XML ------------------------------------------------------------------------------

/// The run as a JUnit XML document, as GitHub, GitLab and Jenkins read it.
///
/// One `<testsuite>` per case (the part of a trial's name before its first `::`), in the order
/// the cases first appear in `records`; in it one `<testcase>` per record, in the order given,
/// named by the rest of the trial's name (the whole name when it has no `::`, as for an invalid
/// case), with the case as `classname` and the case file as `file`. A failure carries its cause
/// line ([`crate::cause::cause_line`]) as `message` and its full text as content; an ignored trial is `<skipped>` with its
/// reason. Times are in seconds with millisecond precision. Written with `quick-junit`
/// (nextest's JUnit crate), which escapes and serialises; podpath only decides the layout.
pub fn junit_xml(suite_name: &str, records: &[TrialRecord]) -> String {
    junit_xml_of(suite_name, records, &RunEnd::Finished)
}

/// [`junit_xml`] of a run that ended as `end`. An interrupted run's report says so, and never
/// looks like a pass: every `<testsuite>` has the property `interrupted` (the signal), and a
/// first `<testsuite name="interrupted">` holds one `<testcase name="interrupted">` with an
/// `<error>` saying by what and how many trials did not end. `records` then holds the trials
/// that were running as errors and those that never started as skipped.
pub fn junit_xml_of(suite_name: &str, records: &[TrialRecord], end: &RunEnd) -> String {
    let mut owned = Vec::new();
    if *end == RunEnd::Unfinished {
        owned.push(TrialRecord {
            name: INTERRUPTED.into(),
            file: String::new(),
            duration: Duration::ZERO,
            outcome: TrialOutcome::Error(
                "the run has not finished: it is still running, or was killed before it could \
                 write its report"
                    .into(),
            ),
        });
    }
    if let RunEnd::Interrupted(signal) = end {
        let unfinished = records
            .iter()
            .filter(|r| matches!(r.outcome, TrialOutcome::Error(_) | TrialOutcome::Ignored(_)))
            .count();
        owned.push(TrialRecord {
            name: INTERRUPTED.into(),
            file: String::new(),
            duration: Duration::ZERO,
            outcome: TrialOutcome::Error(format!(
                "the run was interrupted by {signal}: {unfinished} of its {} trials did not end",
                records.len()
            )),
        });
    }
    owned.extend(records.iter().cloned());
    let property = match end {
        RunEnd::Finished => None,
        RunEnd::Unfinished => Some(Property::new(INTERRUPTED, "unfinished")),
        RunEnd::Interrupted(signal) => Some(Property::new(INTERRUPTED, text(signal))),
    };
    let mut cases: Vec<(&str, Vec<&TrialRecord>)> = Vec::new();
    for record in &owned {
        let case = split_name(&record.name).0;
        match cases.iter_mut().find(|(c, _)| *c == case) {
            Some((_, group)) => group.push(record),
            None => cases.push((case, vec![record])),
        }
    }
    let mut report = Report::new(text(suite_name));
    report.set_time(owned.iter().map(|r| millis(r.duration)).sum());
    for (case, group) in &cases {
        let mut suite = TestSuite::new(text(case));
        suite.set_time(group.iter().map(|r| millis(r.duration)).sum());
        if let Some(property) = &property {
            suite.add_property(property.clone());
        }
        suite.add_test_cases(group.iter().map(|record| test_case(case, record)));
        report.add_test_suite(suite);
    }
    // quick-junit only fails to serialise when its writer fails, and a String's cannot.
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit report could not be written: {e} -->\n"))
}

/// One trial as a `<testcase>` of its case's `<testsuite>`.
fn test_case(case: &str, record: &TrialRecord) -> TestCase {
    let (_, test) = split_name(&record.name);
    let status = match &record.outcome {
        TrialOutcome::Passed => TestCaseStatus::success(),
        TrialOutcome::Failed(full) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            // The line a reader needs first: the cause, not the `flow:` line.
            status
                .set_message(text(crate::cause::cause_line(full)))
                .set_description(text(full));
            status
        }
        TrialOutcome::Ignored(reason) => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(text(reason));
            status
        }
        TrialOutcome::Error(full) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status
                .set_message(text(full.lines().next().unwrap_or("")))
                .set_description(text(full));
            status
        }
    };
    let mut testcase = TestCase::new(text(test), status);
    testcase
        .set_classname(text(case))
        .set_time(millis(record.duration));
    testcase
        .extra
        .insert(XmlString::new("file"), text(&record.file));
    testcase
}

/// `(case, test)`: split at the first `::`; a name without one is both.
fn split_name(name: &str) -> (&str, &str) {
    name.split_once("::").unwrap_or((name, name))
}

/// `d` to the millisecond, as the report shows it (so totals are sums of what is shown).
fn millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// `s` as text XML 1.0 can carry. quick-junit's [`XmlString`] escapes the specials and drops
/// ANSI escape sequences and C0 controls; the two non-characters U+FFFE and U+FFFF, which it
/// keeps and XML 1.0 cannot carry, are dropped here. quick-xml writes a `\r` as is, so a
/// reader's line-end normalisation turns `\r\n` in a command's output into one line break.
fn text(s: &str) -> XmlString {
    XmlString::new(s.replace(['\u{fffe}', '\u{ffff}'], ""))
}

// ---- per-flow artifact directories ----------------------------------------------------------

/// The directory name of a trial's artifacts: `::` and `/` become `__`, every other character
/// outside `[A-Za-z0-9._-]` becomes `_`, so
/// `services/clusterip::iptables::cross-node` gives `services__clusterip__iptables__cross-node`.
/// Never empty, `.` or `..`.
pub fn artifact_dir_name(trial: &str) -> String {
    let mut out = String::with_capacity(trial.len());
    let mut rest = trial;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            out.push_str("__");
            rest = after;
            continue;
        }
        match c {
            '/' => out.push_str("__"),
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => out.push(c),
            _ => out.push('_'),
        }
        rest = &rest[c.len_utf8()..];
    }
    if out.chars().all(|c| c == '.') {
        // Empty, `.` or `..` would name the parent directory itself.
        out = out.replace('.', "_");
        out.insert(0, '_');
    }
    out
}

/// Writes one flow's artifacts to `<dir>/<artifact_dir_name(trial_name)>/` and returns that
/// directory. A directory of the same name (an earlier run's) is removed first, so nothing stale
/// stays next to the new files:
///
/// - `capture.pcapng`: every frame, one interface per capture point named `netns/iface`;
/// - `journey.md`: `a.journey_markdown` as is;
/// - `rules/<node>.txt`: each node's rule tables;
/// - `conntrack.txt`: each node's entries under a `## <node>` heading;
/// - `logs/<name>.log`: what the stack's long-running commands wrote (an `exec` proxy's, per
///   node, `service-proxy-<node>`; an `exec` cluster DNS's, `cluster-dns`), when there are any.
pub fn write_flow_artifacts(
    dir: &Path,
    trial_name: &str,
    a: &FlowArtifacts,
) -> io::Result<PathBuf> {
    let out = dir.join(artifact_dir_name(trial_name));
    match fs::remove_dir_all(&out) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let rules = out.join("rules");
    fs::create_dir_all(&rules)?;
    netns_runtime::capture::pcapng::write_file(out.join("capture.pcapng"), &a.points, &a.captures)?;
    fs::write(out.join("journey.md"), &a.journey_markdown)?;
    for (node, text) in &a.rules {
        fs::write(rules.join(format!("{}.txt", artifact_dir_name(node))), text)?;
    }
    fs::write(out.join("conntrack.txt"), conntrack_text(&a.conntrack))?;
    if !a.logs.is_empty() {
        let logs = out.join("logs");
        fs::create_dir_all(&logs)?;
        for (name, text) in &a.logs {
            fs::write(logs.join(format!("{}.log", artifact_dir_name(name))), text)?;
        }
    }
    Ok(out)
}

/// `conntrack.txt`: one `## <node>` section per node, in the order given.
fn conntrack_text(nodes: &[(String, String)]) -> String {
    let mut out = String::new();
    for (node, text) in nodes {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "## {node}\n");
        if text.trim().is_empty() {
            out.push_str("(no entries)\n");
        } else {
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

// ---- the sink a run reports into ------------------------------------------------------------

/// Which flows get an artifact directory (`PODPATH_ARTIFACTS`, `podpath run --artifacts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArtifactPolicy {
    /// Only flows that failed (the default).
    #[default]
    Failing,
    /// Every flow.
    All,
    /// None: only `junit.xml` is written.
    None,
}

/// The JUnit report's file name in the reports directory.
pub const JUNIT_FILE: &str = "junit.xml";

/// The subdirectory of the reports directory that holds the flows' artifact directories.
pub const FLOWS_DIR: &str = "flows";

/// The environment variable that selects the [`ArtifactPolicy`] of the test target.
pub const ARTIFACTS_ENV: &str = "PODPATH_ARTIFACTS";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown artifact policy {0:?}: expected failing, all or none")]
pub struct UnknownPolicy(pub String);

impl FromStr for ArtifactPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "failing" => Ok(ArtifactPolicy::Failing),
            "all" => Ok(ArtifactPolicy::All),
            "none" => Ok(ArtifactPolicy::None),
            other => Err(UnknownPolicy(other.to_string())),
        }
    }
}

impl ArtifactPolicy {
    /// From `PODPATH_ARTIFACTS`; unset or empty is the default, [`ArtifactPolicy::Failing`].
    pub fn from_env() -> Result<Self, UnknownPolicy> {
        Self::from_env_value(std::env::var(ARTIFACTS_ENV).ok().as_deref())
    }

    fn from_env_value(value: Option<&str>) -> Result<Self, UnknownPolicy> {
        match value {
            None => Ok(ArtifactPolicy::default()),
            Some(v) if v.trim().is_empty() => Ok(ArtifactPolicy::default()),
            Some(v) => v.parse(),
        }
    }
}

/// The subdirectory of the reports directory that holds one directory per run.
pub const RUNS_DIR: &str = "runs";

/// The symbolic link in the reports directory to the run that started last.
pub const LATEST_LINK: &str = "latest";

/// How many runs' directories [`ReportSink::finish`] keeps at least; older ones go once they
/// are more than [`KEEP_RUNS_AGE`] old.
pub const KEEP_RUNS: usize = 10;
const KEEP_RUNS_AGE: Duration = Duration::from_secs(3600);

/// Where a run's reports go, and what it has recorded so far. Shared by every trial of a run
/// (it is `Sync`); nothing is written before [`finish`](Self::finish) except artifact
/// directories, which are written as flows end (and, for a sink [`open`](Self::open)ed on a
/// reports directory, a report saying the run has not finished).
#[derive(Debug)]
pub struct ReportSink {
    /// Where this run's files are written (through the reports directory's descriptor when
    /// [`open`](Self::open)ed).
    write_dir: PathBuf,
    /// The same directory as the user names it.
    dir: PathBuf,
    /// The reports directory, when the run has a directory of its own in it.
    root: Option<RunRoot>,
    artifacts: ArtifactPolicy,
    records: Mutex<Vec<TrialRecord>>,
    /// The trials the run means to run, as (name, file), in the order announced.
    expected: Mutex<Vec<(String, String)>>,
    /// The trials that started and have not ended.
    running: Mutex<BTreeSet<String>>,
    /// The artifact directories written by this run (names below `flows/`).
    written: Mutex<BTreeSet<String>>,
}

impl ReportSink {
    /// A sink that writes `junit.xml` and `flows/` directly into `dir`, replacing what earlier
    /// runs left there (for a directory of the caller's own; runs of the suite [`open`](Self::open)).
    pub fn new(dir: impl Into<PathBuf>, artifacts: ArtifactPolicy) -> ReportSink {
        let dir = dir.into();
        ReportSink {
            write_dir: dir.clone(),
            dir,
            root: None,
            artifacts,
            records: Mutex::new(Vec::new()),
            expected: Mutex::new(Vec::new()),
            running: Mutex::new(BTreeSet::new()),
            written: Mutex::new(BTreeSet::new()),
        }
    }

    /// A run's sink on the reports directory `dir`: once [`begin`](Self::begin) has been
    /// called, the run has a directory of its own, `<dir>/runs/<UTC time>-<pid>/`, that no
    /// other run writes to or removes, and is the latest run (`<dir>/latest` points at it).
    /// Until [`finish`](Self::finish), its `junit.xml` (and `<dir>/junit.xml`, the latest
    /// run's) say that the run has not finished, which is what stays if it is killed.
    ///
    /// Call it before entering the sandbox: `dir` is created and opened here, and everything
    /// after goes through that descriptor, so `dir` means the host's directory even under the
    /// sandbox's private `/run` and `/etc`.
    pub fn open(dir: &Path, artifacts: ArtifactPolicy) -> io::Result<ReportSink> {
        use std::os::fd::AsRawFd as _;
        fs::create_dir_all(dir)?;
        let shown_root = fs::canonicalize(dir)?;
        let fd = std::os::fd::OwnedFd::from(fs::File::open(&shown_root)?);
        let access = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        // The host's PID, for names no concurrent run uses (inside, every run is PID 1).
        let _ = unique();
        Ok(ReportSink {
            write_dir: access.clone(),
            dir: shown_root.clone(),
            root: Some(RunRoot {
                _fd: fd,
                access,
                shown: shown_root,
                run: std::sync::OnceLock::new(),
                dirs: std::sync::OnceLock::new(),
            }),
            ..ReportSink::new(PathBuf::new(), artifacts)
        })
    }

    /// The run starts: its own directory is made, with a `junit.xml` that says it has not
    /// finished, and it becomes the latest run. A no-op for [`new`](Self::new).
    pub fn begin(&self) -> io::Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        if root.run.get().is_some() {
            return Ok(());
        }
        let runs = root.access.join(RUNS_DIR);
        fs::create_dir_all(&runs)?;
        let stamp = utc_stamp(std::time::SystemTime::now());
        let pid = unique().split('.').next().unwrap_or_default().to_string();
        let mut n = 0;
        let id = loop {
            let id = match n {
                0 => format!("{stamp}-{pid}"),
                n => format!("{stamp}-{pid}-{n}"),
            };
            match fs::create_dir(runs.join(&id)) {
                Ok(()) => break id,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        };
        let run = format!("{RUNS_DIR}/{id}");
        let _ = root
            .dirs
            .set((root.access.join(&run), root.shown.join(&run)));
        let _ = root.run.set(run);
        let text = junit_xml_of("podpath", &[], &RunEnd::Unfinished);
        self.write_junit(&text)?;
        self.publish(&text, true)?;
        Ok(())
    }

    /// This run's reports directory, as the user names it.
    pub fn dir(&self) -> &Path {
        match self.root.as_ref().and_then(|r| r.dirs.get()) {
            Some((_, shown)) => shown,
            None => &self.dir,
        }
    }

    /// Where this run's files are written.
    fn write_dir(&self) -> &Path {
        match self.root.as_ref().and_then(|r| r.dirs.get()) {
            Some((access, _)) => access,
            None => &self.write_dir,
        }
    }

    /// Makes `text` the reports directory's `junit.xml` if this run is the latest (with
    /// `claim`, makes it the latest first). Whether it was. A no-op for [`new`](Self::new).
    fn publish(&self, text: &str, claim: bool) -> io::Result<bool> {
        let Some((root, run)) = self.root.as_ref().and_then(|r| Some((r, r.run.get()?))) else {
            return Ok(false);
        };
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.access.join(".lock"))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io::Error::from(e))?;
        let latest = root.access.join(LATEST_LINK);
        if claim {
            let aside = root.access.join(format!(".{LATEST_LINK}.{}", unique()));
            std::os::unix::fs::symlink(run, &aside)?;
            fs::rename(&aside, &latest)?;
        } else if fs::read_link(&latest).ok().as_deref() != Some(Path::new(run)) {
            return Ok(false);
        }
        write_atomically(&root.access, JUNIT_FILE, text)?;
        Ok(true)
    }

    /// Removes the directories of runs beyond the newest [`KEEP_RUNS`] that are more than
    /// [`KEEP_RUNS_AGE`] old (a run in progress is younger, and is never this old's).
    fn prune_old_runs(&self) -> io::Result<()> {
        let Some((root, run)) = self.root.as_ref().and_then(|r| Some((r, r.run.get()?))) else {
            return Ok(());
        };
        let runs = root.access.join(RUNS_DIR);
        let mut names: Vec<String> = fs::read_dir(&runs)?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() > 16 && n.as_bytes()[8] == b'T')
            .collect();
        names.sort();
        let old = names.len().saturating_sub(KEEP_RUNS);
        for name in &names[..old] {
            let path = runs.join(name);
            let age = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a > KEEP_RUNS_AGE) && !run.ends_with(name.as_str()) {
                fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    pub fn artifacts(&self) -> ArtifactPolicy {
        self.artifacts
    }

    /// Adds one trial's outcome to the report (it is no longer running).
    pub fn record(&self, rec: TrialRecord) {
        let mut records = lock(&self.records);
        lock(&self.running).remove(&rec.name);
        records.push(rec);
    }

    /// Announces a trial the run means to run, so that a report of an interrupted run lists it
    /// as not run if it never ends.
    pub fn expect(&self, name: &str, file: &str) {
        lock(&self.expected).push((name.to_string(), file.to_string()));
    }

    /// A trial starts: until it is [recorded](Self::record), it is running.
    pub fn start(&self, name: &str) {
        lock(&self.running).insert(name.to_string());
    }

    /// The trials running now, by name.
    pub fn running(&self) -> Vec<String> {
        lock(&self.running).iter().cloned().collect()
    }

    /// The records of a run interrupted by `signal` now: those of the trials that ended, the
    /// running ones as errors, the announced ones that never started as skipped.
    fn interrupted_records(&self, signal: &str) -> Vec<TrialRecord> {
        let records = lock(&self.records);
        let running = lock(&self.running);
        let mut out = records.clone();
        let ended: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (name, file) in lock(&self.expected).iter() {
            if ended.contains(name.as_str()) || !seen.insert(name.clone()) {
                continue;
            }
            let outcome = if running.contains(name) {
                TrialOutcome::Error(format!("interrupted by {signal} while this trial ran"))
            } else {
                TrialOutcome::Ignored(format!("not run: the run was interrupted by {signal}"))
            };
            out.push(TrialRecord {
                name: name.clone(),
                file: file.clone(),
                duration: Duration::ZERO,
                outcome,
            });
        }
        for name in running.iter() {
            if !seen.contains(name) && !ended.contains(name.as_str()) {
                out.push(TrialRecord {
                    name: name.clone(),
                    file: String::new(),
                    duration: Duration::ZERO,
                    outcome: TrialOutcome::Error(format!(
                        "interrupted by {signal} while this trial ran"
                    )),
                });
            }
        }
        out
    }

    /// What a run does when `signal` interrupts it: says on stderr which trials were running,
    /// writes the interrupted report ([`finish_interrupted`](Self::finish_interrupted)) and
    /// says where it is.
    pub fn interrupted(&self, suite: &str, signal: &str) {
        let running = self.running();
        let what = if running.is_empty() {
            "between trials".to_string()
        } else {
            format!("while running {}", running.join(", "))
        };
        eprintln!("podpath: interrupted by {signal} {what}; taking everything down");
        match self.finish_interrupted(suite, signal) {
            Ok(path) => eprintln!(
                "podpath: JUnit report (interrupted run) in {}",
                path.display()
            ),
            Err(e) => eprintln!(
                "podpath: warning: no JUnit report in {}: {e}",
                self.dir().display()
            ),
        }
    }

    /// Writes the report of a run interrupted by `signal` (see [`junit_xml_of`]) and returns
    /// its path. The artifact directories of earlier runs are left alone.
    pub fn finish_interrupted(&self, suite: &str, signal: &str) -> io::Result<PathBuf> {
        let mut records = self.interrupted_records(signal);
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let text = junit_xml_of(suite, &records, &RunEnd::Interrupted(signal.to_string()));
        self.begin()?;
        let path = self.write_junit(&text)?;
        self.publish(&text, false)?;
        Ok(path)
    }

    /// Whether a flow that `failed` (or not) should get an artifact directory.
    pub fn wants_artifacts(&self, failed: bool) -> bool {
        match self.artifacts {
            ArtifactPolicy::Failing => failed,
            ArtifactPolicy::All => true,
            ArtifactPolicy::None => false,
        }
    }

    /// Writes a flow's artifacts to `<dir>/flows/<trial>/` (see [`write_flow_artifacts`]) and
    /// returns that directory. The caller asks [`wants_artifacts`](Self::wants_artifacts)
    /// first; this writes whatever it is given.
    pub fn flow_artifacts(&self, trial: &str, a: &FlowArtifacts) -> io::Result<PathBuf> {
        write_flow_artifacts(&self.write_dir().join(FLOWS_DIR), trial, a)?;
        lock(&self.written).insert(artifact_dir_name(trial));
        Ok(self.dir().join(FLOWS_DIR).join(artifact_dir_name(trial)))
    }

    /// Writes the run's `junit.xml` with every record so far, sorted by trial name (trials end
    /// in any order when they run in parallel), and returns its path. For an
    /// [`open`](Self::open)ed sink, the reports directory's `junit.xml` becomes a copy of it if
    /// this run is still the latest, and the directories of old runs are pruned; for a
    /// [`new`](Self::new) one, the artifact directories of earlier runs that this run did not
    /// write (a flow that failed then and passes now) are removed.
    pub fn finish(&self, suite: &str) -> io::Result<PathBuf> {
        let mut records = lock(&self.records).clone();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let text = junit_xml(suite, &records);
        let path = self.write_junit(&text)?;
        if self.root.is_some() {
            // A run that never began (nothing ran) begins and ends here.
            self.begin()?;
            self.publish(&text, false)?;
            self.prune_old_runs()?;
        } else {
            self.prune_stale_artifacts()?;
        }
        Ok(path)
    }

    /// The run's `junit.xml`, written aside and renamed, so a reader never sees half a report;
    /// its path as the user names it.
    fn write_junit(&self, text: &str) -> io::Result<PathBuf> {
        fs::create_dir_all(self.write_dir())?;
        write_atomically(self.write_dir(), JUNIT_FILE, text)?;
        Ok(self.dir().join(JUNIT_FILE))
    }

    fn prune_stale_artifacts(&self) -> io::Result<()> {
        let flows = self.write_dir().join(FLOWS_DIR);
        let entries = match fs::read_dir(&flows) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let written = lock(&self.written);
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only what looks like an artifact directory: a mistyped `--reports` must not cost
            // anyone a directory of their own.
            let ours = entry.file_type()?.is_dir() && entry.path().join("journey.md").is_file();
            if ours && !written.contains(&name) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

/// The reports directory of a run that has a directory of its own in it.
#[derive(Debug)]
struct RunRoot {
    /// Keeps `access` valid.
    _fd: std::os::fd::OwnedFd,
    /// The reports directory through its descriptor (`/proc/self/fd/<n>`): the host's, even
    /// inside the sandbox's private mounts.
    access: PathBuf,
    /// The same as the user names it (absolute).
    shown: PathBuf,
    /// The run's directory relative to it: `runs/<id>` (empty before [`ReportSink::begin`]).
    run: std::sync::OnceLock<String>,
    /// The run's directory once begun: as written to, as the user names it.
    dirs: std::sync::OnceLock<(PathBuf, PathBuf)>,
}

/// `dir/name` replaced by `text` at once: written aside and renamed.
fn write_atomically(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let partial = dir.join(format!(".{name}.{}.partial", unique()));
    fs::write(&partial, text)?;
    fs::rename(&partial, dir.join(name))
}

/// A name part no other writer uses at the same time: the host PID (taken before the sandbox,
/// where every run is PID 1, would hide it) and the time in nanoseconds.
fn unique() -> String {
    static HOST_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = HOST_PID.get_or_init(std::process::id);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{pid}.{nanos}")
}

/// `t` as `YYYYMMDDTHHMMSS.mmmZ` (UTC), which sorts as time does.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// A poisoned lock only means a trial panicked while holding it; the data is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use netns_runtime::capture::decode::build::captured_udp;
    use netns_runtime::capture::{CapturePoint, pcapng};

    use super::*;

    fn record(name: &str, ms: u64, outcome: TrialOutcome) -> TrialRecord {
        TrialRecord {
            name: name.into(),
            file: format!("cases/{}.yaml", name.split("::").next().unwrap()),
            duration: Duration::from_millis(ms),
            outcome,
        }
    }

    fn records() -> Vec<TrialRecord> {
        vec![
            record(
                "services/clusterip::iptables::cross-node",
                12,
                TrialOutcome::Passed,
            ),
            record(
                "services/clusterip::iptables::same-node",
                1_500,
                TrialOutcome::Failed("expected pod-b, got <nothing>\n  \"tcp\" & 'udp'".into()),
            ),
            record(
                "same-node::tcp",
                3,
                TrialOutcome::Ignored("no sandbox: not root".into()),
            ),
            record(
                "bad",
                0,
                TrialOutcome::Failed("cases/bad.yaml:4:26: x".into()),
            ),
            // Not next to its case's other trials: still grouped with them.
            record(
                "services/clusterip::nftables::snapshot::node1",
                7,
                TrialOutcome::Passed,
            ),
        ]
    }

    #[test]
    fn escapes_the_specials_and_drops_what_xml_cannot_carry() {
        let text = junit_xml(
            "podpath",
            &[record(
                "c::t",
                1,
                TrialOutcome::Failed(
                    "a<b>&\"c\" 'd'\u{1b}[31m red\u{1b}[0m\u{0}\u{7}\u{fffe}\u{ffff} ok\u{fffd} héllo ✓ 🦀"
                        .into(),
                ),
            )],
        );
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        let expected = "a<b>&\"c\" 'd' red ok\u{fffd} héllo ✓ 🦀";
        assert_eq!(failure.text(), Some(expected));
        assert_eq!(failure.attribute("message"), Some(expected));
    }

    #[test]
    fn one_testsuite_per_case_in_order_of_first_appearance() {
        let text = junit_xml("podpath", &records());
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let attrs = |n: roxmltree::Node, names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|a| n.attribute(*a).unwrap_or("-").to_string())
                .collect()
        };
        let totals = ["name", "tests", "failures", "errors", "skipped", "time"];
        assert_eq!(
            attrs(root, &totals),
            ["podpath", "5", "2", "0", "1", "1.522"]
        );
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        let summary: Vec<Vec<String>> = suites.iter().map(|s| attrs(*s, &totals)).collect();
        assert_eq!(
            summary,
            [
                ["services/clusterip", "3", "1", "0", "0", "1.519"],
                ["same-node", "1", "0", "0", "1", "0.003"],
                ["bad", "1", "1", "0", "0", "0.000"],
            ]
        );
        let cases: Vec<Vec<String>> = suites[0]
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|c| attrs(c, &["name", "classname", "file", "time"]))
            .collect();
        assert_eq!(
            cases,
            [
                [
                    "iptables::cross-node",
                    "services/clusterip",
                    "cases/services/clusterip.yaml",
                    "0.012"
                ],
                [
                    "iptables::same-node",
                    "services/clusterip",
                    "cases/services/clusterip.yaml",
                    "1.500"
                ],
                [
                    "nftables::snapshot::node1",
                    "services/clusterip",
                    "cases/services/clusterip.yaml",
                    "0.007"
                ],
            ]
        );
    }

    #[test]
    fn failures_and_skips_carry_their_text() {
        let text = junit_xml("podpath", &records());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let testcase = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
                .unwrap_or_else(|| panic!("no testcase {name} in {text}"))
        };
        let children = |n: roxmltree::Node| n.children().filter(|c| c.is_element()).count();
        assert_eq!(
            children(testcase("iptables::cross-node")),
            0,
            "a pass is bare"
        );

        let failure = testcase("iptables::same-node")
            .first_element_child()
            .unwrap();
        assert_eq!(failure.tag_name().name(), "failure");
        assert_eq!(
            failure.attribute("message"),
            Some("expected pod-b, got <nothing>")
        );
        assert_eq!(
            failure.text(),
            Some("expected pod-b, got <nothing>\n  \"tcp\" & 'udp'")
        );

        let skipped = testcase("tcp").first_element_child().unwrap();
        assert_eq!(skipped.tag_name().name(), "skipped");
        assert_eq!(skipped.attribute("message"), Some("no sandbox: not root"));

        // An invalid case has no `::`: it is both the suite and the test.
        let bad = testcase("bad");
        assert_eq!(bad.attribute("classname"), Some("bad"));
        assert_eq!(
            bad.first_element_child().unwrap().attribute("message"),
            Some("cases/bad.yaml:4:26: x")
        );
    }

    #[test]
    fn a_failed_flows_message_is_its_cause_line() {
        let text = "flow:     pod-a -> 10.244.2.3:8080/tcp\nexpected: answered by pod-b\n\
                    observed: no answer\ncause:    dropped at node1/cni0\n";
        let xml = junit_xml(
            "podpath",
            &[record(
                "same-node::tcp",
                5,
                TrialOutcome::Failed(text.into()),
            )],
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(failure.attribute("message"), Some("dropped at node1/cni0"));
        assert_eq!(failure.text(), Some(text));
    }

    #[test]
    fn control_characters_from_command_output_still_parse() {
        let out = "\u{1b}[1mdig\u{1b}[0m: couldn't get address\u{0}\r\nline 2 \u{8}";
        let text = junit_xml(
            "podpath",
            &[record("dns::srv", 5, TrialOutcome::Failed(out.into()))],
        );
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failure.attribute("message"),
            Some("dig: couldn't get address")
        );
        // quick-xml writes `\r` as is: a reader's line-end normalisation makes `\r\n` one `\n`.
        assert_eq!(failure.text(), Some("dig: couldn't get address\nline 2 "));
    }

    #[test]
    fn an_empty_run_is_a_valid_report() {
        let text = junit_xml("podpath", &[]);
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert_eq!(doc.root_element().attribute("tests"), Some("0"));
        assert_eq!(
            doc.root_element()
                .children()
                .filter(|n| n.is_element())
                .count(),
            0
        );
    }

    #[test]
    fn artifact_dir_names() {
        for (trial, dir) in [
            (
                "services/clusterip::iptables::cross-node",
                "services__clusterip__iptables__cross-node",
            ),
            ("same-node::tcp", "same-node__tcp"),
            (
                "dns/names::nftables::by name",
                "dns__names__nftables__by_name",
            ),
            ("a:b::c:::d", "a_b__c___d"),
            ("../../etc", "..__..__etc"),
            ("héllo", "h_llo"),
            ("v1.2_x-y", "v1.2_x-y"),
            ("", "_"),
            (".", "__"),
            ("..", "___"),
        ] {
            assert_eq!(artifact_dir_name(trial), dir, "{trial:?}");
        }
    }

    #[test]
    fn artifact_policy_from_text_and_env() {
        assert_eq!("failing".parse(), Ok(ArtifactPolicy::Failing));
        assert_eq!("all".parse(), Ok(ArtifactPolicy::All));
        assert_eq!(" none\n".parse(), Ok(ArtifactPolicy::None));
        assert_eq!(
            "everything".parse::<ArtifactPolicy>(),
            Err(UnknownPolicy("everything".into()))
        );
        assert_eq!(
            UnknownPolicy("x".into()).to_string(),
            "unknown artifact policy \"x\": expected failing, all or none"
        );
        assert_eq!(
            ArtifactPolicy::from_env_value(None),
            Ok(ArtifactPolicy::Failing)
        );
        assert_eq!(
            ArtifactPolicy::from_env_value(Some("")),
            Ok(ArtifactPolicy::Failing)
        );
        assert_eq!(
            ArtifactPolicy::from_env_value(Some("all")),
            Ok(ArtifactPolicy::All)
        );
        assert!(ArtifactPolicy::from_env_value(Some("ALL")).is_err());
    }

    #[test]
    fn which_flows_get_artifacts() {
        let wants = |policy| {
            let sink = ReportSink::new("unused", policy);
            (sink.wants_artifacts(true), sink.wants_artifacts(false))
        };
        assert_eq!(wants(ArtifactPolicy::Failing), (true, false));
        assert_eq!(wants(ArtifactPolicy::All), (true, true));
        assert_eq!(wants(ArtifactPolicy::None), (false, false));
    }

    /// A directory of its own under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(what: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "podpath-report-{what}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn artifacts() -> FlowArtifacts {
        let point = |netns: &str, iface: &str| CapturePoint {
            netns: netns.into(),
            iface: iface.into(),
        };
        FlowArtifacts {
            logs: Vec::new(),
            captures: vec![
                captured_udp("pod-a", "eth0", 1_000, true),
                captured_udp("node1", "cni0", 2_000, false),
            ],
            points: vec![point("pod-a", "eth0"), point("node1", "cni0")],
            journey_markdown: "# pod-a -> pod-b\n\n```mermaid\nsequenceDiagram\n```\n".into(),
            rules: vec![
                ("node1".into(), "*filter\nCOMMIT\n".into()),
                ("node2".into(), "table ip kube-proxy {\n}\n".into()),
            ],
            conntrack: vec![
                (
                    "node1".into(),
                    "udp 17 src=10.244.1.2 dst=10.244.2.2 sport=40001 dport=5353".into(),
                ),
                ("node2".into(), String::new()),
            ],
        }
    }

    /// The `if_name` option of every Interface Description Block of a pcapng file.
    fn interface_names(pcapng_bytes: &[u8]) -> Vec<String> {
        const IDB: u32 = 1;
        const IF_NAME: u16 = 2;
        pcapng::blocks(pcapng_bytes)
            .expect("well-formed pcapng")
            .iter()
            .filter(|b| b.ty == IDB)
            .map(|b| {
                // Link type, reserved and snap length come before the options.
                let options = pcapng::options(b.body, 8).unwrap();
                let name = options.iter().find(|(code, _)| *code == IF_NAME).unwrap();
                String::from_utf8(name.1.to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn writes_a_flow_directory_and_replaces_a_stale_one() {
        let tmp = TempDir::new("flow");
        let trial = "services/clusterip::iptables::cross-node";
        // An earlier run's directory with a file this run does not write.
        let stale = tmp.0.join("services__clusterip__iptables__cross-node");
        fs::create_dir_all(stale.join("rules")).unwrap();
        fs::write(stale.join("rules/node9.txt"), "old").unwrap();
        fs::write(stale.join("old.txt"), "old").unwrap();

        let dir = write_flow_artifacts(&tmp.0, trial, &artifacts()).unwrap();
        assert_eq!(dir, stale);
        let mut files: Vec<String> = walk(&dir);
        files.sort();
        assert_eq!(
            files,
            [
                "capture.pcapng",
                "conntrack.txt",
                "journey.md",
                "rules/node1.txt",
                "rules/node2.txt"
            ]
        );

        let pcap = fs::read(dir.join("capture.pcapng")).unwrap();
        assert_eq!(interface_names(&pcap), ["pod-a/eth0", "node1/cni0"]);
        let packets = pcapng::blocks(&pcap)
            .unwrap()
            .iter()
            .filter(|b| b.ty == 6)
            .count();
        assert_eq!(packets, 2, "one Enhanced Packet Block per frame");

        let read = |p: &str| fs::read_to_string(dir.join(p)).unwrap();
        assert_eq!(read("journey.md"), artifacts().journey_markdown);
        assert_eq!(read("rules/node1.txt"), "*filter\nCOMMIT\n");
        assert_eq!(read("rules/node2.txt"), "table ip kube-proxy {\n}\n");
        assert_eq!(
            read("conntrack.txt"),
            "## node1\n\nudp 17 src=10.244.1.2 dst=10.244.2.2 sport=40001 dport=5353\n\n\
             ## node2\n\n(no entries)\n"
        );
    }

    /// Every file below `dir`, as paths relative to it.
    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.extend(walk(&path).into_iter().map(|f| format!("{name}/{f}")));
            } else {
                out.push(name);
            }
        }
        out
    }

    #[test]
    fn sink_writes_sorted_junit_and_prunes_stale_flows() {
        let tmp = TempDir::new("sink");
        let reports = tmp.0.join("reports");
        // An earlier run left the artifacts of a flow that passes now, and a directory of
        // someone else's that must stay.
        let old = reports.join("flows/same-node__udp");
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("journey.md"), "old").unwrap();
        let foreign = reports.join("flows/notes");
        fs::create_dir_all(&foreign).unwrap();

        let sink = ReportSink::new(&reports, ArtifactPolicy::All);
        for r in records().into_iter().rev() {
            sink.record(r);
        }
        let flow = sink.flow_artifacts("same-node::tcp", &artifacts()).unwrap();
        assert_eq!(flow, reports.join("flows/same-node__tcp"));

        let path = sink.finish("podpath").unwrap();
        assert_eq!(path, reports.join("junit.xml"));
        let text = fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let names: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|n| {
                format!(
                    "{}::{}",
                    n.attribute("classname").unwrap(),
                    n.attribute("name").unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "bad::bad",
                "same-node::tcp",
                "services/clusterip::iptables::cross-node",
                "services/clusterip::iptables::same-node",
                "services/clusterip::nftables::snapshot::node1",
            ],
            "sorted by trial name"
        );
        assert!(
            flow.join("journey.md").is_file(),
            "this run's artifacts stay"
        );
        assert!(!old.exists(), "an earlier run's artifacts go");
        assert!(foreign.is_dir(), "what is not an artifact directory stays");
        let leftovers: Vec<_> = fs::read_dir(&reports)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "junit.xml and flows/: {leftovers:?}");
    }

    #[test]
    fn utc_stamps_sort_as_time_does() {
        let at = |secs: u64, ms: u64| {
            utc_stamp(std::time::UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms))
        };
        assert_eq!(at(0, 0), "19700101T000000.000Z");
        assert_eq!(at(951_782_400, 5), "20000229T000000.005Z");
        assert_eq!(at(1_796_304_900, 123), "20261203T133500.123Z");
        assert!(at(1_796_304_900, 123) < at(1_796_304_901, 0));
    }

    #[test]
    fn an_interrupted_run_reports_what_ran_what_was_running_and_what_did_not() {
        let sink = ReportSink::new("unused", ArtifactPolicy::None);
        for name in ["c::a", "c::b", "c::c"] {
            sink.expect(name, "cases/c.yaml");
        }
        sink.start("c::a");
        sink.record(record("c::a", 4, TrialOutcome::Passed));
        sink.start("c::b");
        assert_eq!(sink.running(), ["c::b"]);
        let mut records = sink.interrupted_records("SIGTERM");
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let text = junit_xml_of("podpath", &records, &RunEnd::Interrupted("SIGTERM".into()));
        let doc = roxmltree::Document::parse(&text).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("tests"), Some("4"), "{text}");
        assert_eq!(root.attribute("errors"), Some("2"), "{text}");
        assert_eq!(root.attribute("skipped"), Some("1"), "{text}");
        let outcome = |name: &str| {
            let tc = doc
                .descendants()
                .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
                .unwrap();
            tc.first_element_child()
                .map(|c| c.tag_name().name().to_string())
        };
        assert_eq!(outcome("a"), None);
        assert_eq!(outcome("b").as_deref(), Some("error"));
        assert_eq!(outcome("c").as_deref(), Some("skipped"));
        assert_eq!(outcome(INTERRUPTED).as_deref(), Some("error"));
        let interrupted = doc
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .all(|p| p.attribute("value") == Some("SIGTERM"));
        assert!(interrupted, "{text}");
    }

    #[test]
    fn runs_into_one_directory_keep_their_own_and_the_latest_is_published() {
        let tmp = TempDir::new("runs");
        let reports = tmp.0.join("reports");
        let first = ReportSink::open(&reports, ArtifactPolicy::All).unwrap();
        first.begin().unwrap();
        // Until it finishes, its report says so, and it is the latest.
        let unfinished = fs::read_to_string(reports.join("junit.xml")).unwrap();
        assert!(unfinished.contains("value=\"unfinished\""), "{unfinished}");
        let flow = first
            .flow_artifacts("same-node::tcp", &artifacts())
            .unwrap();
        assert!(flow.starts_with(fs::canonicalize(&reports).unwrap().join(RUNS_DIR)));
        let second = ReportSink::open(&reports, ArtifactPolicy::All).unwrap();
        second.begin().unwrap();
        assert_ne!(first.dir(), second.dir());
        second.record(record("same-node::udp", 1, TrialOutcome::Passed));
        let second_junit = second.finish("podpath").unwrap();
        // The first run finishes after the second started: its own report and artifacts are
        // whole, and the top-level report stays the latest run's.
        first.record(record(
            "same-node::tcp",
            1,
            TrialOutcome::Failed("x".into()),
        ));
        let first_junit = first.finish("podpath").unwrap();
        assert!(flow.join("journey.md").is_file());
        assert!(
            fs::read_to_string(&first_junit)
                .unwrap()
                .contains("failures=\"1\"")
        );
        assert_eq!(
            fs::read_to_string(reports.join("junit.xml")).unwrap(),
            fs::read_to_string(&second_junit).unwrap()
        );
        assert_eq!(
            fs::canonicalize(reports.join(LATEST_LINK)).unwrap(),
            second.dir()
        );
    }
}
