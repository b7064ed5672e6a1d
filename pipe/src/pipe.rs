//! Anonymous pipes: [`pipe`], [`PipeOptions`], [`PipeReader`], [`PipeWriter`].

use crate::error::{Error, Result};
use ipcraft_core::{Deadline, FlagSetting, Interest, TimeoutSetting, wait_fd};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

/// The most bytes a pipe writes atomically (`PIPE_BUF`, 4096 on Linux): a write of at most
/// this many bytes is never interleaved with other writers' data. See `pipe(7)`.
pub const PIPE_BUF: usize = nix::libc::PIPE_BUF;

mod std_io;

/// Where the system limit on pipe capacity is read from.
const PIPE_MAX_SIZE: &str = "/proc/sys/fs/pipe-max-size";

/// Create an anonymous pipe: a reader and a writer, both close-on-exec and blocking.
///
/// See `pipe(2)`; [`PipeOptions`] makes non-blocking or packet-mode pipes.
///
/// # Errors
///
/// [`Error::Sys`] from `pipe2` (`EMFILE`/`ENFILE`: too many open descriptors).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// let (mut r, mut w) = ipcraft_pipe::pipe()?;
/// w.write_all(b"hi")?;
/// drop(w);
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// assert_eq!(s, "hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    PipeOptions::new().create()
}

/// Options for [`PipeOptions::create`]: non-blocking mode and packet mode.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use ipcraft_pipe::PipeOptions;
///
/// // Packet mode: each write is read back as one message.
/// let (mut r, mut w) = PipeOptions::new().packet_mode(true).create()?;
/// w.write_all(b"one")?;
/// w.write_all(b"two")?;
/// let mut buf = [0u8; 64];
/// assert_eq!(r.read(&mut buf)?, 3);
/// assert_eq!(r.read(&mut buf)?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use = "options do nothing until a pipe is made with them"]
pub struct PipeOptions {
    nonblocking: bool,
    packet: bool,
}

impl PipeOptions {
    /// Blocking, byte-stream pipes (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Open both ends with `O_NONBLOCK`: reads and writes that cannot proceed return
    /// `WouldBlock` instead of waiting.
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Packet mode (`O_DIRECT`, see `pipe(2)`): each write of at most [`PIPE_BUF`] bytes is
    /// one packet, and each read returns at most one packet (the rest of a packet larger
    /// than the read buffer is discarded). Larger writes are split into packets of
    /// [`PIPE_BUF`] bytes.
    pub fn packet_mode(mut self, yes: bool) -> Self {
        self.packet = yes;
        self
    }

    /// Create the pipe.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `pipe2` (`EMFILE`/`ENFILE`: too many open descriptors).
    #[doc(alias = "pipe2")]
    pub fn create(self) -> Result<(PipeReader, PipeWriter)> {
        let mut flags = OFlag::O_CLOEXEC;
        if self.nonblocking {
            flags |= OFlag::O_NONBLOCK;
        }
        if self.packet {
            flags |= OFlag::O_DIRECT;
        }
        let (r, w) = nix::unistd::pipe2(flags).map_err(Error::sys("pipe2"))?;
        let reader = PipeReader::from_fd(r);
        let writer = PipeWriter::from_fd(w);
        reader.nonblocking.set(self.nonblocking);
        writer.nonblocking.set(self.nonblocking);
        Ok((reader, writer))
    }
}

/// The read end of a pipe or FIFO. Closed on drop.
///
/// Implements [`Read`] (also for `&PipeReader`): without a read timeout a read is one
/// `read(2)`; with one ([`set_read_timeout`](Self::set_read_timeout)) it waits with
/// `poll(2)` on the monotonic clock first and fails with `TimedOut`.
pub struct PipeReader {
    fd: OwnedFd,
    nonblocking: FlagSetting,
    read_timeout: TimeoutSetting,
}

/// The write end of a pipe or FIFO. Closed on drop.
///
/// Implements [`Write`] (also for `&PipeWriter`). Writing when the read end is closed fails
/// with `BrokenPipe` ([`Error::BrokenPipe`]); see the crate docs on SIGPIPE.
pub struct PipeWriter {
    fd: OwnedFd,
    nonblocking: FlagSetting,
    write_timeout: TimeoutSetting,
    suppress_sigpipe: bool,
}

/// Methods and conversions both ends share.
macro_rules! common {
    ($ty:ident, $timeout:ident $(, $field:ident : $init:expr)*) => {
        impl $ty {
            pub(crate) fn from_fd(fd: OwnedFd) -> Self {
                let nonblocking = fcntl(&fd, FcntlArg::F_GETFL)
                    .is_ok_and(|fl| OFlag::from_bits_retain(fl).contains(OFlag::O_NONBLOCK));
                Self {
                    fd,
                    nonblocking: FlagSetting::new(nonblocking),
                    $timeout: TimeoutSetting::new(None)
                    $(, $field: $init)*
                }
            }

            /// The pipe's capacity in bytes (`F_GETPIPE_SZ`, see `fcntl(2)`).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`]; `EBADF`/`EINVAL` when the descriptor is not a pipe.
            #[doc(alias = "F_GETPIPE_SZ")]
            pub fn capacity(&self) -> Result<usize> {
                capacity(self.fd.as_fd())
            }

            /// Set the pipe's capacity (`F_SETPIPE_SZ`, see `fcntl(2)`); returns the capacity
            /// the kernel chose (at least `bytes`, rounded up to a power-of-two number of
            /// pages).
            ///
            /// # Errors
            ///
            /// - [`Error::CapacityAboveLimit`] when `bytes` is above
            ///   `/proc/sys/fs/pipe-max-size` (checked first, even for root, whom the kernel
            ///   would let through);
            /// - [`Error::Sys`] with `EBUSY` when the pipe holds more data than `bytes`, or
            ///   `EPERM` when the user's pipe buffer quota (`pipe-user-pages-soft`) is used up.
            #[doc(alias = "F_SETPIPE_SZ")]
            pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
                set_capacity(self.fd.as_fd(), bytes)
            }

            /// Switch `O_NONBLOCK` on or off. The flag belongs to the open file description,
            /// so it also changes for every duplicate of this descriptor, in this process or
            /// another that inherited it.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `fcntl`.
            pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
                set_nonblocking(self.fd.as_fd(), yes)?;
                self.nonblocking.set(yes);
                Ok(())
            }

            /// Whether this handle was last set (or found) non-blocking.
            pub fn is_nonblocking(&self) -> bool {
                self.nonblocking.get()
            }

            /// A second handle to the same end (`F_DUPFD_CLOEXEC`), with the same settings.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] when no descriptor is free.
            pub fn try_clone(&self) -> Result<Self> {
                let fd = self
                    .fd
                    .try_clone()
                    .map_err(|e| Error::from_io("fcntl(F_DUPFD_CLOEXEC)", &e))?;
                #[allow(unused_mut)] // Only the writer has extra fields to copy.
                let mut clone = Self::from_fd(fd);
                clone.$timeout.set(self.$timeout.get());
                $(clone.$field = self.$field;)*
                Ok(clone)
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        /// Takes ownership of a pipe or FIFO descriptor (inherited, or received over a Unix
        /// socket), checked with `fstat(2)` to be one; its `O_NONBLOCK` flag is read once,
        /// here.
        ///
        /// # Errors
        ///
        /// [`Error::NotAPipe`] with the descriptor handed back; [`Error::Sys`] from `fstat`.
        impl TryFrom<OwnedFd> for $ty {
            type Error = Error;

            fn try_from(fd: OwnedFd) -> Result<Self> {
                let st = nix::sys::stat::fstat(&fd).map_err(Error::sys("fstat"))?;
                if st.st_mode & nix::libc::S_IFMT != nix::libc::S_IFIFO {
                    return Err(Error::NotAPipe { fd });
                }
                Ok(Self::from_fd(fd))
            }
        }

        impl From<$ty> for OwnedFd {
            fn from(end: $ty) -> OwnedFd {
                end.fd
            }
        }

        /// Hands this end to a child process (as its stdin, stdout or stderr).
        impl From<$ty> for Stdio {
            fn from(end: $ty) -> Stdio {
                Stdio::from(end.fd)
            }
        }
    };
}

common!(PipeReader, read_timeout);
common!(PipeWriter, write_timeout, suppress_sigpipe: false);

#[cfg(feature = "tokio")]
impl PipeWriter {
    /// Whether writes block SIGPIPE around them (see `set_suppress_sigpipe`).
    pub(crate) fn suppresses_sigpipe(&self) -> bool {
        self.suppress_sigpipe
    }
}

impl PipeReader {
    /// Make [`Read::read`] wait at most `timeout` (`None`: forever, the default). The wait is
    /// per call, on the monotonic clock; a timed-out read returns `TimedOut` and consumes
    /// nothing.
    ///
    /// # Errors
    ///
    /// None today: a `Result` as std's, so that a future check can be added without a break.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// The timeout [`Read::read`] uses.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    /// Read what is available, waiting at most until `deadline`; `Ok(0)` means end of stream
    /// (every writer closed).
    ///
    /// With several readers on one pipe, another may take the data this one was woken for;
    /// the call then waits again, within the same deadline.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when nothing arrived in time (nothing is consumed);
    /// [`Error::Sys`] from `poll` or `read`.
    pub fn read_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        read_until(self.fd.as_fd(), buf, deadline, false)
    }

    /// [`read_deadline`](Self::read_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`read_deadline`](Self::read_deadline).
    pub fn read_with_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.read_deadline(buf, Deadline::after(timeout))
    }

    /// Read what is available now, without waiting, whatever the blocking mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the pipe is empty and a writer is still open;
    /// [`Error::Sys`] from `poll` or `read`.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        read_until(self.fd.as_fd(), buf, Deadline::after(Duration::ZERO), true)
    }
}

impl PipeWriter {
    /// Make [`Write::write`] wait at most `timeout` (`None`: forever, the default). The wait
    /// is per call, on the monotonic clock. On a blocking pipe a timed write writes at most
    /// [`PIPE_BUF`] bytes per call (what `poll` guarantees fits); `write_all` loops.
    ///
    /// # Errors
    ///
    /// None today: a `Result` as std's, so that a future check can be added without a break.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The timeout [`Write::write`] uses.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// Block `SIGPIPE` on the calling thread around each write of this handle, and consume
    /// the `SIGPIPE` a write to a closed pipe raises, so the write fails with
    /// [`Error::BrokenPipe`] instead of killing a process whose `SIGPIPE` disposition is the
    /// default (a C host, or a binary built with `-Zon-broken-pipe=kill`). Costs two
    /// `pthread_sigmask(3)` calls per write; off by default, since Rust binaries ignore
    /// `SIGPIPE`.
    pub fn set_suppress_sigpipe(&mut self, yes: bool) {
        self.suppress_sigpipe = yes;
    }

    /// Write some of `buf`, waiting at most until `deadline` for room; returns how much was
    /// written (at most [`PIPE_BUF`] bytes on a blocking pipe).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when there was no room in time (nothing is written);
    /// [`Error::BrokenPipe`] when the read end is closed; [`Error::Sys`].
    pub fn write_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        self.guarded(|| {
            write_until(
                self.fd.as_fd(),
                buf,
                deadline,
                self.nonblocking.get(),
                false,
            )
        })
    }

    /// [`write_deadline`](Self::write_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`write_deadline`](Self::write_deadline).
    pub fn write_with_timeout(&self, buf: &[u8], timeout: Duration) -> Result<usize> {
        self.write_deadline(buf, Deadline::after(timeout))
    }

    /// Write what fits now, without waiting, whatever the blocking mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the pipe is full (nothing is written);
    /// [`Error::BrokenPipe`]; [`Error::Sys`].
    pub fn try_write(&self, buf: &[u8]) -> Result<usize> {
        let now = Deadline::after(Duration::ZERO);
        self.guarded(|| write_until(self.fd.as_fd(), buf, now, self.nonblocking.get(), true))
    }

    /// Write all of `buf` as one atomic unit: readers see it whole, never interleaved with
    /// another writer's data. Blocks until there is room, or, on a non-blocking pipe, fails
    /// at once with [`Error::WouldBlock`] having written nothing.
    ///
    /// # Errors
    ///
    /// [`Error::AtomicWriteTooLarge`] when `buf` is longer than [`PIPE_BUF`] (nothing is
    /// written); [`Error::BrokenPipe`]; [`Error::WouldBlock`]; [`Error::Sys`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_pipe::{Error, PIPE_BUF, pipe};
    /// let (_r, w) = pipe()?;
    /// w.write_atomic(&[7u8; PIPE_BUF])?;
    /// assert!(matches!(
    ///     w.write_atomic(&[7u8; PIPE_BUF + 1]),
    ///     Err(Error::AtomicWriteTooLarge { len: 4097, max: 4096 })
    /// ));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn write_atomic(&self, buf: &[u8]) -> Result<()> {
        if buf.len() > PIPE_BUF {
            return Err(Error::AtomicWriteTooLarge {
                len: buf.len(),
                max: PIPE_BUF,
            });
        }
        self.guarded(|| {
            loop {
                // One write(2) of at most PIPE_BUF bytes: the kernel performs it whole or not
                // at all (blocking until there is room, or EAGAIN when non-blocking).
                match nix::unistd::write(&self.fd, buf) {
                    Ok(n) => return Ok(n),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EPIPE) => return Err(Error::BrokenPipe),
                    Err(Errno::EAGAIN) => {
                        return Err(Error::WouldBlock {
                            op: "atomic pipe write",
                        });
                    }
                    Err(e) => return Err(Error::sys("write")(e)),
                }
            }
        })?;
        Ok(())
    }

    /// [`write_atomic`](Self::write_atomic), waiting at most until `deadline` for room.
    ///
    /// # Errors
    ///
    /// As [`write_atomic`](Self::write_atomic), and [`Error::TimedOut`] (nothing written).
    pub fn write_atomic_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<()> {
        if buf.len() > PIPE_BUF {
            return Err(Error::AtomicWriteTooLarge {
                len: buf.len(),
                max: PIPE_BUF,
            });
        }
        // At most PIPE_BUF bytes: write_until passes the whole buffer to one write(2), which
        // the kernel performs entirely or not at all.
        let n = self.guarded(|| {
            write_until(
                self.fd.as_fd(),
                buf,
                deadline,
                self.nonblocking.get(),
                false,
            )
        })?;
        debug_assert_eq!(n, buf.len());
        Ok(())
    }

    /// [`write_atomic`](Self::write_atomic) without waiting.
    ///
    /// # Errors
    ///
    /// As [`write_atomic`](Self::write_atomic), with [`Error::WouldBlock`] when there is no
    /// room now.
    pub fn try_write_atomic(&self, buf: &[u8]) -> Result<()> {
        if buf.len() > PIPE_BUF {
            return Err(Error::AtomicWriteTooLarge {
                len: buf.len(),
                max: PIPE_BUF,
            });
        }
        let now = Deadline::after(Duration::ZERO);
        self.guarded(|| write_until(self.fd.as_fd(), buf, now, self.nonblocking.get(), true))?;
        Ok(())
    }

    /// Run a write with SIGPIPE blocked if asked to, consuming the SIGPIPE it raised.
    pub(crate) fn guarded(&self, write: impl FnOnce() -> Result<usize>) -> Result<usize> {
        if !self.suppress_sigpipe {
            return write();
        }
        let pipe_only = SigSet::from(Signal::SIGPIPE);
        let mut old = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe_only), Some(&mut old))
            .map_err(Error::sys("pthread_sigmask"))?;
        let result = write();
        if matches!(result, Err(Error::BrokenPipe)) && !old.contains(Signal::SIGPIPE) {
            // The failed write raised SIGPIPE at this thread while it was blocked (a blocked
            // signal is queued even when ignored), so it is pending and sigwait returns at
            // once, consuming it before the mask is restored.
            let _ = pipe_only.wait();
        }
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
            .map_err(Error::sys("pthread_sigmask"))?;
        result
    }
}

/// The system limit on a pipe's capacity, from `/proc/sys/fs/pipe-max-size`.
///
/// # Errors
///
/// [`Error::Sys`] when the file cannot be read or parsed.
pub fn max_capacity() -> Result<usize> {
    let text = std::fs::read_to_string(PIPE_MAX_SIZE).map_err(|e| Error::from_io("read", &e))?;
    text.trim().parse().map_err(|_| {
        Error::Sys(ipcraft_core::SysError::new("parse", Errno::EINVAL).on(PIPE_MAX_SIZE))
    })
}

fn capacity(fd: BorrowedFd<'_>) -> Result<usize> {
    let n = fcntl(fd, FcntlArg::F_GETPIPE_SZ).map_err(Error::sys("fcntl(F_GETPIPE_SZ)"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

fn set_capacity(fd: BorrowedFd<'_>, bytes: usize) -> Result<usize> {
    let limit = max_capacity()?;
    let Ok(arg) = i32::try_from(bytes) else {
        return Err(Error::CapacityAboveLimit {
            requested: bytes,
            limit,
        });
    };
    if bytes > limit {
        return Err(Error::CapacityAboveLimit {
            requested: bytes,
            limit,
        });
    }
    let n = fcntl(fd, FcntlArg::F_SETPIPE_SZ(arg)).map_err(Error::sys("fcntl(F_SETPIPE_SZ)"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, yes: bool) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(Error::sys("fcntl(F_GETFL)"))?;
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_NONBLOCK, yes);
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(Error::sys("fcntl(F_SETFL)"))?;
    Ok(())
}

fn not_ready(op: &'static str, try_now: bool) -> Error {
    if try_now {
        Error::WouldBlock { op }
    } else {
        Error::TimedOut { op }
    }
}

/// Wait for data until `deadline`, then read. `try_now` reports an empty pipe as
/// `WouldBlock` rather than `TimedOut`.
fn read_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    try_now: bool,
) -> Result<usize> {
    loop {
        if !wait_fd(fd, Interest::Readable, deadline).map_err(|e| Error::from_io("poll", &e))? {
            return Err(not_ready("pipe read", try_now));
        }
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Ok(n),
            // Interrupted, or another reader took the data (or the end is non-blocking and
            // lost that race): wait again within the same deadline.
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(Error::sys("read")(e)),
        }
    }
}

/// Wait for room until `deadline`, then write. On a blocking descriptor `poll` promises room
/// for one `PIPE_BUF` chunk, so at most that much is passed to `write(2)`, which then cannot
/// block; a non-blocking descriptor takes what fits.
fn write_until(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    deadline: Deadline,
    nonblocking: bool,
    try_now: bool,
) -> Result<usize> {
    let chunk = if nonblocking {
        buf.len()
    } else {
        buf.len().min(PIPE_BUF)
    };
    loop {
        if !nonblocking
            && !wait_fd(fd, Interest::Writable, deadline).map_err(|e| Error::from_io("poll", &e))?
        {
            return Err(not_ready("pipe write", try_now));
        }
        match nix::unistd::write(fd, &buf[..chunk]) {
            Ok(n) => return Ok(n),
            Err(Errno::EPIPE) => return Err(Error::BrokenPipe),
            Err(Errno::EINTR) => {}
            // A `try_` call on a non-blocking pipe: EAGAIN is the answer (a poll with a
            // zero timeout would only say it again, one system call later).
            Err(Errno::EAGAIN) if nonblocking && try_now => {
                return Err(not_ready("pipe write", try_now));
            }
            Err(Errno::EAGAIN) => {
                if nonblocking
                    && !wait_fd(fd, Interest::Writable, deadline)
                        .map_err(|e| Error::from_io("poll", &e))?
                {
                    return Err(not_ready("pipe write", try_now));
                }
            }
            Err(e) => return Err(Error::sys("write")(e)),
        }
    }
}
