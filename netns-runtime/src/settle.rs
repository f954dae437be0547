//! Reading a set of sockets until they go quiet: what [`crate::capture::CaptureSet::settle`]
//! and [`crate::trace::nftrace::TraceSet::settle`] share.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Calls `drain` on `set` (which reads what is queued without waiting and says how many it
/// read) until nothing has arrived for `quiet`, or `max` has passed, waiting in between with
/// poll(2) on the sockets `fds` gives. Returns how many were read in all; a poll error other
/// than EINTR ends it early.
pub(crate) fn until_quiet<S>(
    set: &mut S,
    quiet: Duration,
    max: Duration,
    drain: impl Fn(&mut S) -> usize,
    fds: impl Fn(&S) -> Vec<BorrowedFd<'_>>,
) -> usize {
    let start = Instant::now();
    let mut last = start;
    let mut total = 0;
    loop {
        let n = drain(set);
        let now = Instant::now();
        if n > 0 {
            total += n;
            last = now;
        }
        let wait = (last + quiet)
            .saturating_duration_since(now)
            .min((start + max).saturating_duration_since(now));
        if wait.is_zero() {
            return total;
        }
        let mut fds: Vec<PollFd<'_>> = fds(set)
            .into_iter()
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        // Rounded up to whole milliseconds, the resolution of poll(2).
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        if let Err(e) = poll(&mut fds, timeout)
            && e != Errno::EINTR
        {
            return total;
        }
    }
}
