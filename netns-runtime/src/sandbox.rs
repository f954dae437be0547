//! The private sandbox every podpath run lives in.
//!
//! At start-up, before any thread exists, the process unshares its mount, network and PID
//! namespaces (and a user namespace when it is not root), then forks. The child is PID 1 of the
//! new PID namespace and runs the program; the parent only waits and passes the exit status on.
//! The child dies with the parent (`PR_SET_PDEATHSIG`), and every process of the PID namespace
//! dies with the child, so when podpath dies for any reason, SIGKILL included, the mount
//! namespace holding the netns bind mounts and every network namespace built in it go away with
//! it. The host's own network namespace is never entered, let alone changed.
//!
//! Network namespace names live on a private tmpfs over `/run/netns`, so `ip netns exec node1 ...`
//! works inside the sandbox and nothing shows up in the host's `ip netns list`.
//!
//! A process started inside the sandbox (a test binary run from `podpath shell`) reuses it
//! instead of making its own. Whether a process is inside is checked, never taken from the
//! environment: the sandbox's PID 1 writes [`MARKER`] on its private `/run`, naming its PID
//! namespace and the host's mount and network namespaces, and a process is inside only when it
//! sees that file, is in that PID namespace, and in neither of those host namespaces (see
//! [`already_inside`]).

use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, Signal, kill, raise, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};

/// Where netns names live inside the sandbox (the path `ip netns` uses).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Written by the sandbox's PID 1 on its private `/run` (so no host process can see it): the
/// identities of the sandbox's PID namespace and of the host's mount and network namespaces,
/// and the [`SandboxMode`].
pub const MARKER: &str = "/run/podpath/sandbox";

/// How the sandbox got its privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Running as root: private mount, network and PID namespaces.
    Root,
    /// Not root: the same inside a new user namespace where the caller is mapped to root.
    UserNamespace,
}

impl SandboxMode {
    fn parse(value: &str) -> Option<SandboxMode> {
        match value {
            "userns" => Some(SandboxMode::UserNamespace),
            "root" => Some(SandboxMode::Root),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Root => "root",
            SandboxMode::UserNamespace => "userns",
        }
    }
}

/// Proof that the process runs inside its private sandbox.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox {
    pub mode: SandboxMode,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Neither root nor a user namespace is available: nothing can be built here.
    #[error(
        "cannot create a private sandbox: not root ({root}) and no user namespace ({userns}); \
         run as root or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    )]
    Unavailable { root: String, userns: String },
    #[error("setting up the sandbox failed: {what}: {source}")]
    Setup { what: String, source: io::Error },
}

fn setup_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let what = what.into();
    move |e| SandboxError::Setup {
        what,
        source: io::Error::from(e),
    }
}

/// Enters the sandbox. Must be called first thing in `main`, before any thread is spawned.
///
/// Returns in the sandboxed child (PID 1 of the new PID namespace). The parent never returns: it
/// waits for the child and exits with its status.
pub fn enter() -> Result<Sandbox, SandboxError> {
    if let Some(mode) = already_inside() {
        install_interrupt_handlers();
        // Nested (a test binary run from `podpath shell`): is /etc still the overlay?
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let _ = ETC_WRITABLE.set(
            mounts
                .lines()
                .any(|l| l.split(' ').nth(4) == Some("/etc") && l.contains(" podpath-etc ")),
        );
        return Ok(Sandbox { mode });
    }
    // The host's namespaces, for the marker: a process in either of them is not sandboxed.
    let host_mnt = ns_id("mnt");
    let host_net = ns_id("net");
    let mode = unshare_namespaces()?;
    // The parent is invisible from the child's PID namespace (getppid() is 0 there), so the
    // child learns whether it is still alive from this pipe: the parent holds the write end.
    let (alive_r, alive_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(setup_err("pipe"))?;
    // SAFETY: called before any other thread exists (documented contract of `enter`), so the
    // child is a faithful single-threaded copy.
    match unsafe { fork() }.map_err(setup_err("fork"))? {
        ForkResult::Parent { child } => {
            CHILD.store(child.as_raw(), Ordering::SeqCst);
            drop(alive_r);
            let _keep_open = alive_w;
            wait_and_exit(child)
        }
        ForkResult::Child => {
            drop(alive_w);
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(setup_err("PR_SET_PDEATHSIG"))?;
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&alive_r),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0 {
                // The parent died before the death signal was armed.
                std::process::exit(1);
            }
            drop(alive_r);
            // PID 1 ignores every signal it has no handler for: give the terminal's signals
            // their usual meaning, and the program a chance to say what they interrupted.
            install_interrupt_handlers();
            prepare_mounts()?;
            let marker = Marker {
                pid_ns: ns_id("pid").map_err(|source| SandboxError::Setup {
                    what: "stat /proc/self/ns/pid".into(),
                    source,
                })?,
                host_mnt: host_mnt.ok(),
                host_net: host_net.ok(),
                mode,
            };
            fs::write(MARKER, marker.to_string()).map_err(|source| SandboxError::Setup {
                what: format!("write {MARKER}"),
                source,
            })?;
            Ok(Sandbox { mode })
        }
    }
}

/// A namespace's identity: the device and inode of `/proc/self/ns/<kind>`.
type NsId = (u64, u64);

fn ns_id(kind: &str) -> io::Result<NsId> {
    use std::os::unix::fs::MetadataExt as _;
    let m = fs::metadata(format!("/proc/self/ns/{kind}"))?;
    Ok((m.dev(), m.ino()))
}

/// What the sandbox's PID 1 writes to [`MARKER`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    pid_ns: NsId,
    host_mnt: Option<NsId>,
    host_net: Option<NsId>,
    mode: SandboxMode,
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = |n: Option<NsId>| n.map_or("-".to_string(), |(d, i)| format!("{d}:{i}"));
        writeln!(f, "pid-ns {}", id(Some(self.pid_ns)))?;
        writeln!(f, "host-mnt {}", id(self.host_mnt))?;
        writeln!(f, "host-net {}", id(self.host_net))?;
        writeln!(f, "mode {}", self.mode.as_str())
    }
}

impl Marker {
    fn parse(text: &str) -> Option<Marker> {
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            fields.insert(k, v);
        }
        let id = |k: &str| -> Option<Option<NsId>> {
            let v = *fields.get(k)?;
            if v == "-" {
                return Some(None);
            }
            let (d, i) = v.split_once(':')?;
            Some(Some((d.parse().ok()?, i.parse().ok()?)))
        };
        Some(Marker {
            pid_ns: id("pid-ns")??,
            host_mnt: id("host-mnt")?,
            host_net: id("host-net")?,
            mode: SandboxMode::parse(fields.get("mode")?)?,
        })
    }

    /// Whether a process in these namespaces is inside the sandbox this marker describes: in
    /// its PID namespace, and in neither the host's mount nor its network namespace.
    fn admits(&self, pid_ns: NsId, mnt: NsId, net: NsId) -> bool {
        pid_ns == self.pid_ns && self.host_mnt != Some(mnt) && self.host_net != Some(net)
    }
}

/// The mode of the sandbox this process already is in, if it is in one: the sandbox's private
/// `/run` holds [`MARKER`] (no host process sees that file), and the process is in the PID
/// namespace the marker names (it cannot be unless the sandbox's PID 1 is its ancestor, or it
/// was moved there with `setns`) and in neither of the host's mount and network namespaces the
/// marker names. Nothing a user's environment carries can make this true.
pub fn already_inside() -> Option<SandboxMode> {
    let marker = Marker::parse(&fs::read_to_string(MARKER).ok()?)?;
    let inside = marker.admits(ns_id("pid").ok()?, ns_id("mnt").ok()?, ns_id("net").ok()?);
    inside.then_some(marker.mode)
}

fn unshare_namespaces() -> Result<SandboxMode, SandboxError> {
    let base = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID;
    let root_err = if Uid::effective().is_root() {
        match unshare(base) {
            Ok(()) => return Ok(SandboxMode::Root),
            Err(e) => e.to_string(),
        }
    } else {
        "effective uid is not 0".to_string()
    };
    let uid = Uid::effective();
    let gid = Gid::effective();
    match unshare(base | CloneFlags::CLONE_NEWUSER) {
        Ok(()) => {
            let map = |file: &str, content: String| {
                fs::write(file, content).map_err(|source| SandboxError::Setup {
                    what: format!("write {file}"),
                    source,
                })
            };
            map("/proc/self/setgroups", "deny".into())?;
            map("/proc/self/uid_map", format!("0 {uid} 1"))?;
            map("/proc/self/gid_map", format!("0 {gid} 1"))?;
            Ok(SandboxMode::UserNamespace)
        }
        Err(e) => Err(SandboxError::Unavailable {
            root: root_err,
            userns: e.to_string(),
        }),
    }
}

/// The signals that stop a run: the parent passes them on to the sandbox's PID 1, which stops
/// (see [`on_interrupt`]).
const STOP_SIGNALS: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The sandbox's PID 1 as the parent sees it (0 until forked).
static CHILD: AtomicI32 = AtomicI32::new(0);

/// The parent's handler: the signal is the child's to act on. A terminal's Ctrl-C reaches both
/// processes, so the child may get it twice; it acts on the first one only.
extern "C" fn forward_to_child(sig: nix::libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: `kill` is async-signal-safe.
        unsafe { nix::libc::kill(child, sig) };
    }
}

/// The parent: wait for the sandboxed child and leave with its status.
fn wait_and_exit(child: Pid) -> ! {
    // The parent must outlive the child to pass its status on: a stop signal sent to podpath's
    // own PID (the one its caller knows) goes to the child, which stops, tears down and exits
    // 128 + the signal's number.
    for sig in STOP_SIGNALS {
        // SAFETY: the handler only calls the async-signal-safe `kill`.
        let _ = unsafe { signal(sig, SigHandler::Handler(forward_to_child)) };
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                // SAFETY: restoring the default action so the re-raise terminates us like it did the child.
                let _ = unsafe { signal(sig, SigHandler::SigDfl) };
                let _ = raise(sig);
                std::process::exit(128 + sig as i32);
            }
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => {
                let _ = kill(child, Signal::SIGKILL);
                std::process::exit(1);
            }
        }
    }
}

/// The first stop signal received (0: none yet).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
/// The write end of the pipe [`on_interrupt`]'s thread waits on (-1: nobody waits).
static INTERRUPT_PIPE: AtomicI32 = AtomicI32::new(-1);

/// How long the program has, after a stop signal, to say what it interrupted before the
/// sandbox exits anyway.
pub const INTERRUPT_GRACE_SECS: u32 = 10;

fn install_interrupt_handlers() {
    for sig in STOP_SIGNALS {
        // SAFETY: the handler only calls async-signal-safe functions (`write`, `alarm`, `_exit`).
        let _ = unsafe { signal(sig, SigHandler::Handler(on_stop_signal)) };
    }
    // SAFETY: as above.
    let _ = unsafe { signal(Signal::SIGALRM, SigHandler::Handler(on_grace_over)) };
}

extern "C" fn on_stop_signal(sig: nix::libc::c_int) {
    if INTERRUPTED
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return; // Already stopping (a terminal's Ctrl-C comes directly and forwarded).
    }
    let fd = INTERRUPT_PIPE.load(Ordering::SeqCst);
    // SAFETY: `_exit`, `alarm` and `write` are async-signal-safe.
    unsafe {
        if fd < 0 {
            nix::libc::_exit(128 + sig);
        }
        nix::libc::alarm(INTERRUPT_GRACE_SECS);
        let byte = sig as u8;
        if nix::libc::write(fd, (&byte as *const u8).cast(), 1) != 1 {
            nix::libc::_exit(128 + sig);
        }
    }
}

extern "C" fn on_grace_over(_: nix::libc::c_int) {
    let sig = INTERRUPTED.load(Ordering::SeqCst);
    // SAFETY: `_exit` is async-signal-safe.
    unsafe { nix::libc::_exit(if sig > 0 { 128 + sig } else { 1 }) }
}

/// What to do when a stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) reaches the sandbox, sent
/// to podpath's own PID (the parent outside passes it on) or to the sandbox's PID 1.
///
/// `then` runs once, on a thread of its own, while the program's other threads go on: it says
/// what was interrupted and writes what must be written. Then the process exits with 128 + the
/// signal's number (130 for SIGINT, 143 for SIGTERM); as the sandbox's PID 1, that takes every
/// process, namespace, link and rule of the sandbox down with it. If `then` takes longer than
/// [`INTERRUPT_GRACE_SECS`], the process exits without waiting for it; further signals while
/// it runs are ignored. Before this is called, a stop signal only exits.
pub fn on_interrupt(then: impl FnOnce(Signal) + Send + 'static) -> io::Result<()> {
    use std::os::fd::IntoRawFd as _;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    std::thread::Builder::new()
        .name("podpath-interrupt".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let mut file = fs::File::from(r);
            if io::Read::read_exact(&mut file, &mut byte).is_err() {
                return;
            }
            let sig = Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGTERM);
            then(sig);
            let _ = io::Write::flush(&mut io::stdout());
            let _ = io::Write::flush(&mut io::stderr());
            // SAFETY: `_exit` ends the process without running other threads' destructors,
            // which may be in the middle of anything.
            unsafe { nix::libc::_exit(128 + sig as i32) }
        })?;
    let fd = w.into_raw_fd();
    if INTERRUPT_PIPE.swap(fd, Ordering::SeqCst) >= 0 {
        return Err(io::Error::other("on_interrupt called twice"));
    }
    Ok(())
}

/// Private mount propagation, a private `/run` (netns names, iptables' lock, the overlay's
/// upper layer), `/etc` as an overlay whose `/etc/netns/<name>/` podpath may write (so that
/// `ip netns exec POD` shows the pod's resolv.conf and hosts), and a `/proc` of the new PID
/// namespace.
fn prepare_mounts() -> Result<(), SandboxError> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(setup_err("make / private"))?;
    // Nothing the sandbox runs needs the host's /run; covering it also gives iptables a
    // private /run/xtables.lock, so the host's iptables never waits for podpath, nor it for them.
    mount(
        Some("podpath"),
        "/run",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755,size=64m"),
    )
    .map_err(setup_err("mount tmpfs on /run"))?;
    for dir in [NETNS_RUN_DIR, ETC_UPPER, ETC_WORK] {
        fs::create_dir_all(dir).map_err(|source| SandboxError::Setup {
            what: format!("create {dir}"),
            source,
        })?;
    }
    let options = format!("lowerdir=/etc,upperdir={ETC_UPPER},workdir={ETC_WORK}");
    let overlay = mount(
        Some("podpath-etc"),
        "/etc",
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    );
    let _ = ETC_WRITABLE.set(overlay.is_ok());
    // A /proc that shows the sandbox's PID namespace. Where the kernel refuses (an outer /proc
    // with masked entries), the host's view stays: only PID listings are affected.
    let _ = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    );
    Ok(())
}

const ETC_UPPER: &str = "/run/podpath/etc/upper";
const ETC_WORK: &str = "/run/podpath/etc/work";
static ETC_WRITABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether `/etc` inside the sandbox is a private overlay podpath may write to (the kernel may
/// refuse overlayfs, for instance on an old kernel in a user namespace).
pub fn etc_is_private() -> bool {
    ETC_WRITABLE.get().copied().unwrap_or(false)
}

/// Whether a child's exit status was a signal, for callers that spawn tools.
pub fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_admits_only_its_own_pid_namespace() {
        let m = Marker {
            pid_ns: (4, 4026532000),
            host_mnt: Some((4, 4026531841)),
            host_net: None,
            mode: SandboxMode::UserNamespace,
        };
        assert_eq!(Marker::parse(&m.to_string()), Some(m.clone()));
        assert!(m.admits((4, 4026532000), (4, 1), (4, 2)));
        // Another PID namespace (the host's): not inside, whatever else matches.
        assert!(!m.admits((4, 4026531836), (4, 1), (4, 2)));
        // The host's mount namespace: not inside.
        assert!(!m.admits((4, 4026532000), (4, 4026531841), (4, 2)));
        assert_eq!(Marker::parse("pid-ns 1:2\nmode root\n"), None);
        assert_eq!(Marker::parse(""), None);
    }

    #[test]
    fn the_environment_does_not_make_a_process_sandboxed() {
        // This test process is not in a sandbox (cargo test runs it on the host): whatever the
        // environment says, it is not inside.
        if std::path::Path::new(MARKER).exists() {
            return; // Run from inside `podpath shell`.
        }
        assert_eq!(already_inside(), None);
    }
}
