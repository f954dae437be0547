//! What the benchmark targets share: starting (the sandbox, the command line), a watchdog that
//! bounds every step, and machine facts for their reports. Each target uses part of it.
#![allow(dead_code)]

use std::fs;
use std::os::fd::AsFd as _;

use netns_runtime::netlink::Netlink;
use netns_runtime::netns::Netns;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);
static STEP_SECS: AtomicU64 = AtomicU64::new(u64::MAX);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Gives the next step the time [`start_watchdog`] was given.
pub fn arm_watchdog() {
    let step = STEP_SECS.load(Ordering::Relaxed);
    DEADLINE.store(now_secs().saturating_add(step), Ordering::Relaxed);
}

/// Every step is bounded by `step`: past the deadline the process (PID 1 of the sandbox)
/// exits, and everything it started dies with it. `name` says which benchmark gave up.
pub fn start_watchdog(name: &'static str, step: Duration) {
    STEP_SECS.store(step.as_secs(), Ordering::Relaxed);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            if now_secs() > DEADLINE.load(Ordering::Relaxed) {
                eprintln!(
                    "{name} benchmark: a step took longer than {}s; giving up",
                    step.as_secs()
                );
                std::process::exit(1);
            }
        }
    });
}

pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What a command prints (a version line), or `?`.
pub fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// Waits until the kernel has finished destroying every namespace removed so far.
///
/// Namespaces are destroyed asynchronously, by one ordered kernel worker (`cleanup_net`)
/// that takes every namespace whose last reference is gone in one batch; a batch's devices
/// (veth pairs included, in both namespaces) are deleted during it. So: make a probe
/// namespace holding one end of a veth whose other end (the canary) is in the sandbox,
/// drop the probe, and wait for the canary to disappear. The probe was released after
/// every namespace of the round, so its batch is the last one or a later one. Its canary
/// going means that batch reached device teardown; a second probe, released after that,
/// can only be taken in a later batch, which starts when the first one has ended. After
/// the second canary is gone, nothing of the round is left in the kernel's hands.
///
/// Cheaper signals are not enough: a removed name or a closed fd only means the last
/// reference is gone, and counting links in the dying namespaces is impossible (they can
/// no longer be entered).
pub fn settle(home: &mut Netlink) -> Result<(), String> {
    for _ in 0..2 {
        let probe = std::thread::spawn(|| Netns::create_and_enter("podpath-bench-probe"))
            .join()
            .map_err(|_| "the probe thread panicked".to_string())?
            .map_err(|e| format!("probe namespace: {e}"))?;
        home.add_veth("pp-canary", None, "canary", None, Some(probe.as_fd()), 1500)
            .map_err(|e| format!("canary: {e}"))?;
        probe
            .remove()
            .map_err(|e| format!("remove probe namespace: {e}"))?;
        loop {
            match home.link_index("pp-canary") {
                Ok(_) => std::thread::sleep(Duration::from_micros(500)),
                Err(e) if e.errno() == Some(nix::libc::ENODEV) => break,
                Err(e) => return Err(format!("canary: {e}")),
            }
        }
    }
    Ok(())
}

/// What a benchmark's command line and environment ask for.
pub struct BenchArgs {
    /// The words given (not flags): each must name a part of what is measured.
    pub filters: Vec<String>,
    /// Run by `cargo bench` (`--bench`); otherwise as a test (`cargo test --benches`), small.
    pub benching: bool,
    /// `PODPATH_BENCH_REPS`, when set to a positive number.
    pub reps: Option<usize>,
}

/// Enters podpath's sandbox (first, before any thread exists) and reads the command line.
/// `None` when there is nothing to do: a test runner asking for the list of tests (there are
/// none), or no sandbox possible (said on stdout, as a skipped benchmark).
pub fn bench_start(name: &str) -> Option<(netns_runtime::Sandbox, BenchArgs)> {
    if std::env::args().any(|a| a == "--list") {
        return None;
    }
    let sandbox = match netns_runtime::sandbox::enter() {
        Ok(s) => s,
        Err(e) => {
            println!("{name} benchmark skipped: {e}");
            return None;
        }
    };
    let filters = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let reps = std::env::var("PODPATH_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let benching = std::env::args().any(|a| a == "--bench");
    Some((
        sandbox,
        BenchArgs {
            filters,
            benching,
            reps,
        },
    ))
}
