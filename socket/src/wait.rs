//! How an I/O call waits: blocking, `try_`, or until a deadline (poll on the monotonic clock).

use crate::error::{Error, Result};
use ipcraft_core::{Deadline, Interest, SysError, wait_fd};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::MsgFlags;
use std::io;
use std::os::fd::BorrowedFd;

fn poll_err(e: &io::Error) -> Error {
    Error::Sys(SysError::from_io("poll", e))
}

pub(crate) fn set_fd_nonblocking(fd: BorrowedFd<'_>, yes: bool) -> Result<()> {
    let fl = fcntl(fd, FcntlArg::F_GETFL).map_err(Error::sys("fcntl(F_GETFL)"))?;
    let mut fl = OFlag::from_bits_retain(fl);
    fl.set(OFlag::O_NONBLOCK, yes);
    fcntl(fd, FcntlArg::F_SETFL(fl)).map_err(Error::sys("fcntl(F_SETFL)"))?;
    Ok(())
}

pub(crate) fn fd_is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    fcntl(fd, FcntlArg::F_GETFL)
        .is_ok_and(|fl| OFlag::from_bits_retain(fl).contains(OFlag::O_NONBLOCK))
}

/// How an I/O call waits.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Block (or, on a non-blocking socket, fail with `WouldBlock`).
    Blocking,
    /// Never wait (`MSG_DONTWAIT`), whatever the socket's mode.
    Try,
    /// Wait with `poll(2)` until the deadline.
    Until(Deadline),
}

/// Run `f` (one `send`/`recv`-like call taking extra flags) as `wait` says, retrying on
/// `EINTR`.
pub(crate) fn io_wait<T>(
    fd: BorrowedFd<'_>,
    interest: Interest,
    wait: Wait,
    op: &'static str,
    mut f: impl FnMut(MsgFlags) -> nix::Result<T>,
) -> Result<T> {
    loop {
        let flags = match wait {
            Wait::Blocking => MsgFlags::empty(),
            Wait::Try | Wait::Until(_) => MsgFlags::MSG_DONTWAIT,
        };
        match f(flags) {
            Ok(v) => return Ok(v),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => match wait {
                Wait::Until(d) => {
                    if !wait_fd(fd, interest, d).map_err(|e| poll_err(&e))? {
                        return Err(Error::TimedOut { op });
                    }
                }
                _ => return Err(Error::WouldBlock { op }),
            },
            Err(e) => return Err(Error::io(op, e)),
        }
    }
}
