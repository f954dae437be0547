//! Named network namespaces and the one safe way to work inside them.
//!
//! A network namespace is held as an [`OwnedFd`]; its name is a bind mount under
//! [`crate::sandbox::NETNS_RUN_DIR`] so that `ip netns exec` finds it. Namespace membership is
//! per thread, sockets keep the namespace they were created in, and children inherit their
//! creator's: so podpath only ever calls `setns` on threads it created for that purpose
//! ([`run_in`], the cluster builder's thread) and in forked children before `exec`
//! ([`command_in`]), never on a test-runner or async-runtime worker.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::sandbox::NETNS_RUN_DIR;

/// A named network namespace owned by podpath.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: OwnedFd,
    path: PathBuf,
    removed: bool,
}

impl Netns {
    /// Creates a network namespace named `name` and leaves the calling thread inside it.
    ///
    /// The caller must own the thread and move it back (with [`enter`]) or let it end: this is
    /// how the builder configures a new namespace (sysctls, sockets) without a second `setns`.
    pub fn create_and_enter(name: &str) -> io::Result<Netns> {
        let path = Path::new(NETNS_RUN_DIR).join(name);
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| with_context(e, format!("create {}", path.display())))?;
        let created = (|| {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| with_context(e.into(), "unshare(CLONE_NEWNET)".into()))?;
            let fd: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| with_context(e.into(), format!("bind mount {}", path.display())))?;
            Ok(fd)
        })();
        match created {
            Ok(fd) => Ok(Netns {
                name: name.to_string(),
                fd,
                path,
                removed: false,
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted path, as `ip netns` and CNI's `CNI_NETNS` know it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the name. The namespace itself goes away once nothing holds it (no fd, no
    /// socket, no process).
    pub fn remove(mut self) -> io::Result<()> {
        self.remove_name()
    }

    /// Removes the name but keeps the namespace (this value's fd holds it) until the value is
    /// dropped. Idempotent.
    pub fn remove_name(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        umount2(&self.path, MntFlags::MNT_DETACH)
            .map_err(|e| with_context(e.into(), format!("umount {}", self.path.display())))?;
        fs::remove_file(&self.path)
            .map_err(|e| with_context(e, format!("remove {}", self.path.display())))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.remove_name();
    }
}

/// Moves the calling thread into `ns`. Only for threads podpath owns.
pub fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| with_context(e.into(), "setns".into()))
}

/// The calling thread's current network namespace.
pub fn current() -> io::Result<OwnedFd> {
    Ok(File::open("/proc/thread-self/ns/net")?.into())
}

/// Runs `f` on a new thread inside `ns`. The thread ends with `f`, so no thread podpath does not
/// own ever changes namespace. Sockets created by `f` stay in `ns` wherever they are used later.
pub fn run_in<R: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("thread inside a netns panicked")))
    })
}

/// Writes a sysctl of the calling thread's network namespace (`net/ipv4/ip_forward`).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key);
    fs::write(&path, value).map_err(|e| with_context(e, format!("write {}", path.display())))
}

/// A command that runs inside `ns`: the forked child enters the namespace before `exec`.
pub fn command_in(ns: &impl AsFd, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let raw = ns.as_fd().as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: `setns` is async-signal-safe; the fd stays open while the caller holds `ns`, which
    // outlives `spawn` (it is borrowed for the call that builds the command and the caller keeps
    // it); the child only touches its own namespace membership.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::setns(raw, nix::libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
