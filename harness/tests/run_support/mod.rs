//! What the test targets that run the real `podpath` binary against stack files share
//! (`stacks`, `cni`): running it from the workspace root, reading what it printed, scratch
//! directories, and the host state that must not change.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Completion, Failed, Trial};

pub type Outcome = Result<(), Failed>;

pub fn workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_path_buf()
}

/// `podpath` run from the workspace root, so stack files and cases are named as in the docs.
pub fn podpath() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podpath"));
    c.current_dir(workspace());
    c
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { Err(what().into()) }
}

/// This process's scratch directory `name` below `podpath-<target>-<pid>` in the temp dir.
pub fn scratch(target: &str, name: &str) -> PathBuf {
    let dir = scratch_root(target).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The directory every scratch directory of this process is in.
pub fn scratch_root(target: &str) -> PathBuf {
    std::env::temp_dir().join(format!("podpath-{target}-{}", std::process::id()))
}

pub fn write(dir: &Path, name: &str, text: &str, executable: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    if executable {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// `podpath run --stack STACK CASES... --reports REPORTS` from the workspace root.
pub fn run(stack: &Path, cases: &[&str], reports: &Path) -> Output {
    podpath()
        .arg("run")
        .arg("--stack")
        .arg(stack)
        .args(cases)
        .arg("--reports")
        .arg(reports)
        .output()
        .unwrap()
}

/// Exit status 2 and no CI: no sandbox can be made here.
pub fn no_sandbox(out: &Output) -> bool {
    out.status.code() == Some(2) && std::env::var_os("CI").is_none()
}

/// What these shell commands print on the host: what podpath must never change.
pub fn host_state(commands: &[&str]) -> String {
    let mut state = String::new();
    for cmd in commands {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        state.push_str(&format!(
            "$ {cmd}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    state
}

/// The summary line's numbers: passed, failed, ignored.
pub fn summary(stdout: &str) -> Option<(usize, usize, usize)> {
    // `N passed, N failed, N ignored`, maybe followed by ` in <time>`.
    let line = stdout
        .lines()
        .rev()
        .map(|l| l.split(" in ").next().unwrap_or(l))
        .find(|l| l.ends_with(" ignored"))?;
    let n: Vec<usize> = line
        .split(", ")
        .map(|part| part.split(' ').next().and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()?;
    (n.len() == 3).then(|| (n[0], n[1], n[2]))
}

/// Processes whose environment carries `PODPATH_TEST_MARKER=marker`: what a test's commands
/// left running.
pub fn processes_with(marker: &str) -> Vec<String> {
    let want = format!("PODPATH_TEST_MARKER={marker}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
        {
            found.push(name);
        }
    }
    found
}

/// What a test of a failing driver checks once podpath has ended: its `failure` (the part of
/// `stdout` about the failing trial) says each of `want`, no process carrying `marker` outlived
/// the run, and the host state is as it was `before`.
pub fn failed_cleanly(
    failure: &str,
    stdout: &str,
    want: &[&str],
    marker: &str,
    before: &str,
    after: &str,
) -> Outcome {
    for w in want {
        check(failure.contains(w), || {
            format!("missing {w:?} in the failure:\n{stdout}")
        })?;
    }
    check(processes_with(marker).is_empty(), || {
        "the driver's command outlived podpath".into()
    })?;
    check(after == before, || "the host changed".into())
}

/// `trials` reported ignored with `reason`, under their own names: what a target whose trials
/// all need podpath's sandbox runs where it cannot be made.
pub fn all_ignored(trials: Vec<Trial>, reason: &str) -> Vec<Trial> {
    trials
        .into_iter()
        .map(|t| {
            let reason = reason.to_string();
            Trial::ignorable_test(t.name().to_string(), move || {
                Ok(Completion::ignored_with(reason))
            })
            .with_ignored_flag(true)
        })
        .collect()
}
