//! The two calls of this crate that `nix` does not wrap, and the adoption and release of a
//! descriptor:
//!
//! - `mq_timedsend(3)`, used with a timeout that has always passed, as the non-blocking send
//!   behind [`MessageQueue::try_send`](crate::MessageQueue::try_send);
//! - `mq_notify(3)`, behind [`MessageQueue::notify_signal`](crate::MessageQueue::notify_signal)
//!   and [`MessageQueue::cancel_notify`](crate::MessageQueue::cancel_notify), only ever with
//!   `SIGEV_SIGNAL` or a null pointer;
//! - [`adopt`]: an [`OwnedFd`] made into `nix`'s [`MqdT`] (which only `unsafe` can make from
//!   a descriptor), after checking that it is a message queue descriptor;
//! - [`into_owned_fd`]: the way back, an `MqdT` given up by its one owner as an [`OwnedFd`].
//!
//! Why not `O_NONBLOCK`: the flag belongs to the open file description, so switching it for
//! one `try_send` would make a blocking `send` on the same handle in another thread fail (or
//! a `try_send` block), and leaving it on would cost the blocking path an extra `poll(2)` per
//! wait. A send whose absolute timeout is the epoch (1970-01-01 00:00:00) sends at once when
//! there is room, and otherwise fails at once with `ETIMEDOUT`, whatever the flag and
//! whatever the realtime clock says (no clock is ever set before 1970).
//!
//! # Invariants this file upholds
//!
//! - The descriptor passed to libc is borrowed from a live [`MqdT`] for the whole call, and
//!   an `MqdT` is only ever made by `mq_open` or by [`adopt`] from an open regular file on the
//!   mqueue file system (so it is an open message queue descriptor, which on Linux is the
//!   `mqd_t` itself).
//! - An `MqdT` has one owner; [`into_owned_fd`] consumes it, so the descriptor is closed once,
//!   by the `OwnedFd`.
//! - The pointer/length pair passed to libc comes from one Rust slice.
//! - The timeout points to a local, initialized `timespec` that outlives the call.
//! - The `sigevent` passed to `mq_notify` is null or a local, initialized copy made by
//!   `nix`'s `SigEvent::new(SigevNotify::SigevSignal { .. })`, which outlives the call. It is
//!   never `SIGEV_THREAD`, the one kind for which glibc reads the function and attribute
//!   pointers in it (and starts a thread).
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::mqueue::MqdT;
use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::statfs::{FsType, fstatfs};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

/// `MQUEUE_MAGIC` from `<linux/magic.h>`: the `f_type` of the mqueue file system.
const MQUEUE_MAGIC: FsType = FsType(0x1980_0202);

/// The epoch: an absolute `CLOCK_REALTIME` timeout that has always passed.
const ALREADY_PASSED: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// `mq_timedsend(3)` of `msg` at `priority`, without blocking: `Err(ETIMEDOUT)` when the
/// queue is full (or `EAGAIN` when the descriptor is non-blocking).
pub(crate) fn send_now(mqd: &MqdT, msg: &[u8], priority: u32) -> nix::Result<()> {
    let timeout = ALREADY_PASSED;
    // SAFETY:
    // - `mqd.as_raw_fd()` is an open message queue descriptor for the whole call: `MqdT` is
    //   made only by `mq_open`, and the borrow `mqd` keeps its owner (which closes it only in
    //   `Drop`) alive until the call returns.
    // - `msg.as_ptr()` is valid for reads of `msg.len()` bytes: both come from the slice `msg`;
    //   the kernel only reads through it.
    // - `&timeout` points to an initialized `timespec` on this stack frame, alive until the
    //   call returns; the kernel only reads it.
    let r = unsafe {
        libc::mq_timedsend(
            mqd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            priority,
            &timeout,
        )
    };
    Errno::result(r).map(drop)
}

/// `mq_notify(3)`: register this process to receive `signal` (`Some`), or remove its
/// registration (`None`).
pub(crate) fn notify(mqd: &MqdT, signal: Option<Signal>) -> nix::Result<()> {
    let event = signal.map(|signal| {
        SigEvent::new(SigevNotify::SigevSignal {
            signal,
            si_value: 0,
        })
        .sigevent()
    });
    let ptr = event
        .as_ref()
        .map_or(std::ptr::null(), |e| e as *const libc::sigevent);
    // SAFETY:
    // - `mqd.as_raw_fd()` is an open message queue descriptor for the whole call, as in
    //   `send_now`.
    // - `ptr` is null (remove the registration, which `mq_notify` allows) or points to
    //   `event`, an initialized `sigevent` on this stack frame, alive until the call returns;
    //   the kernel copies it and keeps no pointer.
    // - `event` is `SIGEV_SIGNAL` (built just above), so glibc passes it to the kernel as is
    //   and reads no function or attribute pointer in it (only `SIGEV_THREAD` does).
    let r = unsafe { libc::mq_notify(mqd.as_raw_fd(), ptr) };
    Errno::result(r).map(drop)
}

/// `fd` as an [`MqdT`] if it is a message queue descriptor; `Err(Ok(fd))` (the descriptor
/// handed back) if it is not, `Err(Err(errno))` if `fstatfs(2)` or `fstat(2)` failed (`fd` is
/// closed).
pub(crate) fn adopt(fd: OwnedFd) -> Result<MqdT, Result<OwnedFd, Errno>> {
    match fstatfs(&fd) {
        Ok(st) if st.filesystem_type() == MQUEUE_MAGIC => {}
        Ok(_) => return Err(Ok(fd)),
        Err(e) => return Err(Err(e)),
    }
    // The mount's root directory is on that file system too: only its regular files are
    // queues.
    match nix::sys::stat::fstat(&fd) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
        Ok(_) => return Err(Ok(fd)),
        Err(e) => return Err(Err(e)),
    }
    let raw = fd.into_raw_fd();
    // SAFETY: `MqdT::from_raw_fd` requires a valid, open message queue descriptor:
    // - open and owned: `raw` comes from `into_raw_fd` of an `OwnedFd`, so nothing else
    //   owns or closes it; the `MqdT` takes over that ownership (the caller closes it once).
    // - a message queue: it is a regular file on the mqueue file system (both checked just
    //   above, on this very descriptor), and on Linux the regular files of that file system
    //   are queues (`mq_open` returns exactly such files; the only other inode there is the
    //   mount's root directory).
    Ok(unsafe { MqdT::from_raw_fd(raw) })
}

/// Give up `mqd` as an [`OwnedFd`] (on Linux a queue descriptor is a file descriptor).
pub(crate) fn into_owned_fd(mqd: MqdT) -> OwnedFd {
    let raw = mqd.into_raw_fd();
    // SAFETY: `OwnedFd::from_raw_fd` requires an open descriptor that nothing else owns:
    // - open: `raw` comes from `into_raw_fd` of a live `MqdT`, which never closes itself;
    // - owned by nothing else: `into_raw_fd` consumed the `MqdT`, the one owner (the
    //   `MessageQueue` gave it up with `Option::take`, so its `Drop` will not close it).
    unsafe { OwnedFd::from_raw_fd(raw) }
}
