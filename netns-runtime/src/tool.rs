//! Running an external tool (`iptables-restore`, `nft`, a user's proxy command) inside a
//! namespace, always with a timeout, feeding it standard input and keeping what it said.

use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::netns::command_in;

/// The default limit for one tool call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of each of standard output and standard error is kept from a user's command (an
/// `exec` flow, a proxy or network driver command): what is past it is read and discarded, so
/// a command printing gigabytes costs time, bounded by its timeout, but not memory.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// The same bound for podpath's own tools (`iptables-save`, `nft list ruleset`, `ip`), whose
/// output grows with the rulesets: large enough for tens of thousands of Services.
pub const TOOL_OUTPUT_LIMIT: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program}: could not start: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{program}: killed after {timeout:?} without finishing")]
    Timeout { program: String, timeout: Duration },
    #[error("{program}: {status}\n{stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("{program}: {source}")]
    Io { program: String, source: io::Error },
}

/// What a command said and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args...` inside `ns`, writes `stdin` to it, and returns its standard output.
/// A non-zero exit is an error carrying its standard error.
pub fn run(
    ns: &impl AsFd,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, ToolError> {
    let done = run_to_end(
        command_in(ns, program),
        program,
        args,
        stdin,
        timeout,
        TOOL_OUTPUT_LIMIT,
    )?;
    if done.code == Some(0) {
        Ok(done.stdout)
    } else {
        Err(ToolError::Failed {
            program: program.to_string(),
            status: done.status,
            stderr: done.stderr.trim_end().to_string(),
        })
    }
}

/// Runs `program args...` (in the caller's namespaces) and returns how it ended, whatever
/// the exit code; only a failure to start or the timeout is an error.
pub fn run_here(program: &str, args: &[&str], timeout: Duration) -> Result<Finished, ToolError> {
    run_to_end(
        std::process::Command::new(program),
        program,
        args,
        None,
        timeout,
        TOOL_OUTPUT_LIMIT,
    )
}

/// Runs a prepared `command` (its environment, working directory or namespace already set) with
/// `args`, feeding it `stdin`, and returns how it ended, whatever the exit code; only a failure
/// to start or the timeout is an error. At most [`OUTPUT_LIMIT`] of each stream is kept.
pub fn run_command(
    command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, ToolError> {
    run_to_end(command, program, args, stdin, timeout, OUTPUT_LIMIT)
}

/// Reads `pipe` to its end, keeping its first `limit` bytes (as text, invalid UTF-8 replaced)
/// and discarding the rest, which a note at the end counts.
fn read_capped(mut pipe: impl io::Read, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[podpath: output cut after {} bytes; {dropped} more bytes discarded]\n",
            kept.len()
        ));
    }
    text
}

fn run_to_end(
    mut command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
    limit: usize,
) -> Result<Finished, ToolError> {
    // Its own process group, so the timeout kills whatever it started too (a script's
    // `sleep` would otherwise keep the pipes open, and the caller waiting, past the timeout).
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let io_err = |source| ToolError::Io {
        program: program.to_string(),
        source,
    };
    // Readers on their own threads, so a tool that fills a pipe never blocks the writer.
    let out_pipe = child.stdout.take().expect("piped");
    let err_pipe = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || read_capped(out_pipe, limit));
    let err_reader = std::thread::spawn(move || read_capped(err_pipe, limit));
    // The input is written on its own thread too: a tool that reads as it works (or stops
    // reading) must not hold the caller past the timeout.
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || match pipe.write_all(&input) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
                _ => Ok(()),
            }))
        }
        _ => None,
    };
    let status = wait_with_timeout(&mut child, timeout).map_err(io_err)?;
    if let Some(writer) = writer
        && let Ok(Err(e)) = writer.join()
        && status.is_some_and(|s| s.success())
    {
        return Err(io_err(e));
    }
    match status {
        // The readers are left to end when the pipes close: a process that left the group
        // may still hold them, and nothing it wrote is reported for a timeout anyway.
        None => Err(ToolError::Timeout {
            program: program.to_string(),
            timeout,
        }),
        Some(s) => {
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            Ok(Finished {
                code: s.code(),
                status: crate::sandbox::describe_status(s),
                stdout,
                stderr,
            })
        }
    }
}

/// Waits for `child`; kills it and returns `None` when `timeout` passes first.
fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The whole group: the child leads it (see `run_to_end`).
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            if nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command printing far more than the limit on both streams: the run finishes, keeps
    /// the first [`OUTPUT_LIMIT`] bytes of each, and says what it cut.
    #[test]
    fn output_is_capped_and_says_so() {
        let mut command = std::process::Command::new("sh");
        command.arg("-c");
        let done = run_command(
            command,
            "sh",
            &["yes | head -c 50000000; yes e | head -c 50000000 >&2"],
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(done.code, Some(0));
        for stream in [&done.stdout, &done.stderr] {
            assert!(
                stream.len() < OUTPUT_LIMIT + 200,
                "{} bytes kept",
                stream.len()
            );
            assert!(
                stream.ends_with(&format!(
                    "[podpath: output cut after {OUTPUT_LIMIT} bytes; {} more bytes discarded]\n",
                    50_000_000 - OUTPUT_LIMIT
                )),
                "{}",
                &stream[stream.len() - 200..]
            );
        }
    }

    #[test]
    fn small_and_non_utf8_output_is_kept_whole() {
        let mut command = std::process::Command::new("sh");
        command.arg("-c");
        let done = run_command(
            command,
            "sh",
            &["printf 'ok\\377\\n'"],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.stdout, "ok\u{fffd}\n");
    }
}
