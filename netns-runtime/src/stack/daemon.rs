//! A user's long-running command (a service proxy, a DNS server): started inside a namespace of
//! the cluster in a process group of its own, its output kept (bounded), stopped with SIGTERM
//! and, after a grace period, SIGKILL to the whole group.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::command_in;
use crate::stack::ExecSpec;
use crate::stack::exec::expand;

/// How much of the start of a command's output is kept, and how much of its end.
pub const LOG_HEAD: usize = 16 << 10;
pub const LOG_TAIL: usize = 48 << 10;

/// How long a stopped command has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A command's standard output and error, interleaved as they came: the first [`LOG_HEAD`]
/// bytes and the last [`LOG_TAIL`], with a note of what was cut between them.
#[derive(Debug, Default)]
pub struct BoundedLog {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    cut: u64,
}

impl BoundedLog {
    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = LOG_HEAD.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..room]);
        bytes = &bytes[room..];
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(LOG_TAIL);
        if over > 0 {
            self.tail.drain(..over);
            self.cut += over as u64;
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.cut > 0 {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!(
                "[podpath: {} bytes of output cut here]\n",
                self.cut
            ));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

/// A running command.
pub struct Daemon {
    /// The program as written (for messages).
    pub program: String,
    child: Child,
    log: Arc<Mutex<BoundedLog>>,
    /// How it ended, once it has.
    ended: Option<String>,
}

impl Daemon {
    /// Starts `spec` (placeholders `values` expanded) inside `ns` with `env` on top of the
    /// stack's; its standard input is empty, its output goes to the bounded log.
    pub fn start(
        spec: &ExecSpec,
        ns: &impl AsFd,
        env: &BTreeMap<String, String>,
        values: &BTreeMap<&str, String>,
    ) -> Result<Daemon, String> {
        let argv = expand(&spec.argv, values);
        let Some((program, args)) = argv.split_first() else {
            return Err("the command is empty".into());
        };
        let resolved: PathBuf = if program.contains('/') && !program.starts_with('/') {
            spec.dir.join(program)
        } else {
            program.into()
        };
        let mut command = command_in(ns, &resolved);
        command
            .current_dir(&spec.dir)
            .envs(spec.env.iter())
            .envs(env.iter())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: stopping it stops whatever it started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not start: {e}"))?;
        let log = Arc::new(Mutex::new(BoundedLog::default()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 8192];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => log
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            });
        }
        Ok(Daemon {
            program: program.clone(),
            child,
            log,
            ended: None,
        })
    }

    /// How it ended, if it has (`exit code 1`, `killed by signal 9`).
    pub fn exited(&mut self) -> Option<String> {
        if self.ended.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.ended = Some(crate::sandbox::describe_status(status));
        }
        self.ended.clone()
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).text()
    }

    /// Its output for an error message: after a newline, or that it wrote nothing.
    pub fn quoted_output(&self) -> String {
        // Give the readers a moment to drain what a process that just ended wrote.
        std::thread::sleep(Duration::from_millis(50));
        let text = self.output();
        let text = text.trim_end();
        if text.is_empty() {
            "; it wrote nothing".into()
        } else {
            format!("; its output:\n{text}")
        }
    }

    /// Stops it: SIGTERM to its process group, SIGKILL after `grace` if it is still there.
    /// Returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> String {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if let Some(ended) = self.exited() {
            // Whatever it left running in its group goes too.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            return ended;
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(ended) = self.exited() {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                return ended;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let status = self.child.wait().map(crate::sandbox::describe_status);
        let ended = format!(
            "{} (SIGKILL after {grace:?}: it did not stop on SIGTERM)",
            status.unwrap_or_else(|e| e.to_string())
        );
        self.ended = Some(ended.clone());
        ended
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.stop(Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_its_head_and_tail() {
        let mut log = BoundedLog::default();
        log.push(b"start\n");
        for _ in 0..20_000 {
            log.push(b"0123456789\n");
        }
        log.push(b"the end\n");
        let text = log.text();
        assert!(text.starts_with("start\n"));
        assert!(text.ends_with("the end\n"));
        assert!(text.contains("bytes of output cut here]"));
        assert!(text.len() < LOG_HEAD + LOG_TAIL + 100);
    }

    #[test]
    fn a_short_log_is_whole() {
        let mut log = BoundedLog::default();
        log.push(b"a\nb\n");
        assert_eq!(log.text(), "a\nb\n");
    }
}
