//! What every kernel-facing test target shares: leaving the host's network namespace, running
//! each trial on a thread of its own in a fresh network namespace, running a tool (`ip`,
//! `nft`, `dig`, ...) from that thread with a timeout, namespaces held by their fds ([`Ns`]) for
//! trials that connect several, and a ping between them.
//!
//! Each target includes this with `mod support;` and uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::resume_unwind;
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netns_runtime::netlink::Netlink;
use netns_runtime::netns;
use netns_runtime::probe::echo_request;
use netns_runtime::tool::{self, Finished, ToolError, run_here};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getegid, geteuid};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub type TestResult = Result<(), Failed>;
pub type Test = fn() -> TestResult;

/// The whole `main` of a target whose trials all take no arguments: leaves the host's network
/// namespace (before anything else, and before any thread exists), then runs `prepare` once
/// (a check that a tool is usable, a warm-up) and, when both worked, every trial in a fresh
/// network namespace; otherwise every trial is ignored with the reason.
pub fn run_trials(tests: Vec<(&'static str, Test)>, prepare: impl FnOnce() -> Result<(), String>) {
    let isolation = isolate().and_then(|()| prepare());
    let args = Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|(name, test)| match &isolation {
            Ok(()) => Trial::test(name, move || in_new_netns(test)),
            Err(reason) => ignored(name, reason.clone()),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// A trial that is ignored, saying why.
pub fn ignored(name: impl Into<String>, reason: String) -> Trial {
    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
}

/// Moves the process into a private network namespace, or says why it cannot.
pub fn isolate() -> Result<(), String> {
    let mut tried = Vec::new();
    if geteuid().is_root() {
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("unshare(CLONE_NEWNET) as root: {e}")),
        }
    }
    let (uid, gid) = (geteuid(), getegid());
    match unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET) {
        Ok(()) => {
            let maps = fs::write("/proc/self/setgroups", "deny")
                .and_then(|()| fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
                .and_then(|()| fs::write("/proc/self/gid_map", format!("0 {gid} 1")));
            match maps {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(format!("writing user namespace maps: {e}")),
            }
        }
        Err(e) => tried.push(format!("unshare(CLONE_NEWUSER|CLONE_NEWNET): {e}")),
    }
    Err(format!(
        "cannot get a private network namespace ({})",
        tried.join("; ")
    ))
}

/// Runs `test` on a new thread inside a fresh network namespace; the thread ends with it.
pub fn in_new_netns(test: impl FnOnce() -> TestResult + Send) -> TestResult {
    thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare netns: {e}"))?;
            test()
        })
        .join()
        .unwrap_or_else(|p| resume_unwind(p))
    })
}

/// Runs `argv` in the calling thread's network namespace, killed after `timeout`, and returns
/// how it ended whatever its exit code; only a failure to start or the timeout is an error.
pub fn run(argv: &[&str], timeout: Duration) -> Result<Finished, Failed> {
    let shown = argv.join(" ");
    run_here(argv[0], &argv[1..], timeout).map_err(|e| match e {
        ToolError::Timeout { .. } => format!("`{shown}` timed out").into(),
        ToolError::Spawn { source, .. } | ToolError::Io { source, .. } => {
            format!("{shown}: {source}").into()
        }
        other => other.to_string().into(),
    })
}

/// Like [`run`], and a non-zero exit is an error with the command, its status and what it
/// wrote to standard error; returns its standard output.
pub fn tool(argv: &[&str], timeout: Duration) -> Result<String, Failed> {
    let done = run(argv, timeout)?;
    if done.code != Some(0) {
        return Err(failed(argv, &done, &done.stderr));
    }
    Ok(done.stdout)
}

/// The error for `argv` ending as `done`, with `said` (what it wrote) after it.
pub fn failed(argv: &[&str], done: &Finished, said: &str) -> Failed {
    format!("`{}` failed ({}): {said}", argv.join(" "), done.status).into()
}

/// How long a tool run inside an [`Ns`] (`nft`, `conntrack`, `iptables-restore`, ...) may take
/// before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// A network namespace held by its fd, made by a thread that ended right after.
pub struct Ns {
    pub name: &'static str,
    pub fd: OwnedFd,
}

impl Ns {
    /// A fresh namespace with IPv6 off (no router solicitations or MLD reports in captures or
    /// traces) and `lo` up.
    pub fn new(name: &'static str) -> Result<Ns, Failed> {
        let fd = thread::spawn(|| -> Result<OwnedFd, String> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare netns: {e}"))?;
            for key in [
                "net/ipv6/conf/all/disable_ipv6",
                "net/ipv6/conf/default/disable_ipv6",
            ] {
                let _ = netns::write_sysctl(key, "1");
            }
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            nl.set_up(1).map_err(|e| e.to_string())?;
            netns::current().map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|p| resume_unwind(p))?;
        Ok(Ns { name, fd })
    }

    /// Runs `f` on a thread inside the namespace (sockets it makes stay there).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        netns::run_in(self.fd.as_fd(), f).expect("setns into a test namespace")
    }

    /// A netlink socket inside the namespace.
    pub fn netlink(&self) -> Result<Netlink, Failed> {
        Ok(self.run(Netlink::open)?)
    }

    /// Runs a tool inside the namespace, killed after [`TOOL_TIMEOUT`]; a non-zero exit is an
    /// error with what it said.
    pub fn tool(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, Failed> {
        tool::run(
            &self.fd,
            program,
            args,
            stdin.map(str::as_bytes),
            TOOL_TIMEOUT,
        )
        .map_err(|e| format!("{}: {e}", self.name).into())
    }

    /// Waits until `iface` is up with its qdisc attached: the kernel's link watch does that
    /// asynchronously after a link comes up, and until then frames are dropped (`qdisc noop`).
    pub fn wait_ready(&self, iface: &str) -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let out = netns::command_in(&self.fd, "ip")
                .args(["-o", "link", "show", "dev", iface])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !text.contains("qdisc noop") && text.contains("state UP") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{}/{iface} not ready: {text}", self.name).into());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Sends an ICMP echo request from the calling thread's namespace and waits for the reply
/// (the echo reply with the same `id` and `seq`).
pub fn ping(dst: Ipv4Addr, id: u16, seq: u16) -> Result<(), String> {
    let s =
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).map_err(|e| e.to_string())?;
    s.send_to(
        &echo_request(id, seq, b"podpath"),
        &SockAddr::from(SocketAddrV4::new(dst, 0)),
    )
    .map_err(|e| format!("send echo request: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let (n, _) = s
            .recv_from(&mut buf)
            .map_err(|e| format!("no echo reply: {e}"))?;
        // SAFETY: recv_from initialised the first n bytes.
        let p: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if p.get(ihl) == Some(&0)
            && p.get(ihl + 4..ihl + 8)
                == Some(&[(id >> 8) as u8, id as u8, (seq >> 8) as u8, seq as u8][..])
        {
            return Ok(());
        }
    }
}
