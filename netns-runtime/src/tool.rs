//! Running an external tool (`iptables-restore`, `nft`, a user's proxy command) inside a
//! namespace, always with a timeout, feeding it standard input and keeping what it said.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsFd;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::netns::command_in;

/// The default limit for one tool call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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
    let done = run_to_end(command_in(ns, program), program, args, stdin, timeout)?;
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
    )
}

/// Runs a prepared `command` (its environment, working directory or namespace already set) with
/// `args`, feeding it `stdin`, and returns how it ended, whatever the exit code; only a failure
/// to start or the timeout is an error.
pub fn run_command(
    command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, ToolError> {
    run_to_end(command, program, args, stdin, timeout)
}

fn run_to_end(
    mut command: std::process::Command,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
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
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
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
