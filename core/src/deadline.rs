//! Monotonic deadlines and waiting for a descriptor with a timeout.
//!
//! Every blocking call in ipcraft has a timeout or deadline form. They are all measured on the
//! monotonic clock ([`std::time::Instant`], `CLOCK_MONOTONIC`), never on the realtime clock,
//! which jumps when the system time is set.
//!
//! A [`Deadline`] is a point in time, so a call that waits several times (a frame read in
//! pieces, a `poll` interrupted by a signal) never waits longer in total than it was asked to.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A point on the monotonic clock after which a blocking call gives up, or never.
///
/// # Examples
///
/// ```
/// use ipcraft_core::Deadline;
/// use std::time::Duration;
///
/// let d = Deadline::after(Duration::from_millis(50));
/// assert!(!d.has_passed());
/// assert!(d.remaining().unwrap() <= Duration::from_millis(50));
/// assert_eq!(Deadline::never().remaining(), None);
/// // A timeout too large to represent is no deadline at all.
/// assert!(Deadline::after(Duration::MAX).is_never());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline: wait as long as it takes.
    pub const fn never() -> Self {
        Self { at: None }
    }

    /// `timeout` from now. A timeout past the clock's range means [`Deadline::never`].
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now().checked_add(timeout),
        }
    }

    /// At the given instant.
    pub const fn at(instant: Instant) -> Self {
        Self { at: Some(instant) }
    }

    /// `Some(timeout)` is [`Deadline::after`], `None` is [`Deadline::never`].
    pub fn from_timeout(timeout: Option<Duration>) -> Self {
        timeout.map_or(Self::never(), Self::after)
    }

    /// The instant, or `None` for no deadline.
    pub const fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// Whether this is [`Deadline::never`].
    pub const fn is_never(&self) -> bool {
        self.at.is_none()
    }

    /// Time left (zero once passed), or `None` for no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn has_passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }
}

impl From<Option<Duration>> for Deadline {
    fn from(timeout: Option<Duration>) -> Self {
        Self::from_timeout(timeout)
    }
}

impl From<Duration> for Deadline {
    fn from(timeout: Duration) -> Self {
        Self::after(timeout)
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Self {
        Self::at(at)
    }
}

/// What [`wait_fd`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Data to read, or end of stream (`POLLIN`).
    Readable,
    /// Room to write, or a closed peer (`POLLOUT`).
    Writable,
}

/// Wait until `fd` is ready for `interest` or `deadline` passes; `poll(2)` on the monotonic
/// clock.
///
/// Returns `Ok(true)` when the descriptor is ready, which includes error and hang-up
/// conditions (`POLLERR`, `POLLHUP`): the next I/O call then reports them. Returns
/// `Ok(false)` once the deadline has passed, never before it: `poll`'s millisecond timeout is
/// rounded up, and a wait cut short by a signal (`EINTR`) or an early wake-up resumes with
/// the time that is left.
///
/// See `poll(2)`.
///
/// # Errors
///
/// The error of `poll` itself (`EINVAL` for a descriptor `poll` refuses, `ENOMEM`).
///
/// # Examples
///
/// ```
/// use ipcraft_core::{Deadline, Interest, wait_fd};
/// use std::time::Duration;
///
/// let (r, w) = std::io::pipe()?;
/// // Nothing written yet: the wait times out.
/// assert!(!wait_fd(&r, Interest::Readable, Deadline::after(Duration::from_millis(10)))?);
/// // An empty pipe has room.
/// assert!(wait_fd(&w, Interest::Writable, Deadline::never())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_fd(fd: impl AsFd, interest: Interest, deadline: Deadline) -> io::Result<bool> {
    let events = match interest {
        Interest::Readable => PollFlags::POLLIN,
        Interest::Writable => PollFlags::POLLOUT,
    };
    loop {
        let timeout = match deadline.remaining() {
            None => PollTimeout::NONE,
            Some(left) => poll_timeout_ceil(left),
        };
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if deadline.has_passed() {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `left` in whole milliseconds, rounded up (so `poll` never returns before the deadline),
/// capped at the largest timeout `poll` accepts (the caller loops for longer waits).
fn poll_timeout_ceil(left: Duration) -> PollTimeout {
    let millis = left.as_nanos().div_ceil(1_000_000);
    let capped = millis.min(i32::MAX as u128);
    PollTimeout::try_from(capped).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_never_shortens_the_wait() {
        assert_eq!(
            poll_timeout_ceil(Duration::from_nanos(1)).as_millis(),
            Some(1)
        );
        assert_eq!(
            poll_timeout_ceil(Duration::from_micros(1500)).as_millis(),
            Some(2)
        );
        assert_eq!(poll_timeout_ceil(Duration::ZERO).as_millis(), Some(0));
        assert_eq!(
            poll_timeout_ceil(Duration::from_secs(u64::MAX)).as_millis(),
            Some(i32::MAX as u32)
        );
    }

    #[test]
    fn deadline_arithmetic() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.has_passed());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
        assert!(!Deadline::never().has_passed());
        assert_eq!(Deadline::from(None::<Duration>), Deadline::never());
    }

    #[test]
    #[cfg_attr(miri, ignore = "poll(2)")]
    fn wait_returns_after_the_deadline_not_before() {
        let (r, _w) = std::io::pipe().unwrap();
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        assert!(!wait_fd(&r, Interest::Readable, Deadline::after(timeout)).unwrap());
        assert!(start.elapsed() >= timeout);
    }

    #[test]
    #[cfg_attr(miri, ignore = "poll(2)")]
    fn hangup_counts_as_ready() {
        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        assert!(wait_fd(&r, Interest::Readable, Deadline::never()).unwrap());
    }
}
