//! Async pipe ends and FIFO opens on tokio (feature `tokio`, off by default).
//!
//! - [`pipe`]: a non-blocking pipe whose ends are registered with the runtime's reactor;
//!   [`PipeReader`] implements [`AsyncRead`] and [`PipeWriter`] implements [`AsyncWrite`],
//!   and both have the blocking ends' methods under the same names
//!   ([`read`](PipeReader::read), [`write`](PipeWriter::write),
//!   [`write_atomic`](PipeWriter::write_atomic), the `try_` forms, capacity).
//! - [`PipeReader::from_std`] / [`PipeWriter::from_std`] take any blocking end (a FIFO, a
//!   child's stdout, an inherited descriptor) and [`into_std`](PipeReader::into_std) gives it
//!   back, so a child process can be handed one end of an async pipe.
//! - [`Fifo::open_reader`] and [`Fifo::open_writer`] open a FIFO, awaiting the peer; bound
//!   the wait with [`tokio::time::timeout`].
//! - Frames: [`ipcraft_core::codec::FrameCodec`] with `tokio_util::codec`'s `FramedRead`,
//!   `FramedWrite` or `Framed` carries the same frames as the blocking
//!   [`FrameReader`](crate::FrameReader)/[`FrameWriter`](crate::FrameWriter), so either side
//!   may be blocking.
//!
//! There are no `_timeout` or `_deadline` forms: wrap any future in
//! [`tokio::time::timeout`]. The `try_` forms stay, and never wait.
//!
//! # Example: frames to a child process and back
//!
//! Our ends are async; the child (`cat`, which echoes bytes) gets blocking ones.
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use ipcraft_core::codec::FrameCodec;
//! use ipcraft_pipe::tokio::pipe;
//! use std::process::Command;
//! use tokio_util::codec::{FramedRead, FramedWrite};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (to_cat, to_cat_w) = pipe()?;
//! let (from_cat, from_cat_w) = pipe()?;
//! // The child's ends go back to blocking mode, as a program expects its stdio.
//! let mut cat = Command::new("cat")
//!     .stdin(to_cat.into_std()?)
//!     .stdout(from_cat_w.into_std()?)
//!     .spawn()?;
//! let mut tx = FramedWrite::new(to_cat_w, FrameCodec::new());
//! let mut rx = FramedRead::new(from_cat, FrameCodec::new());
//! for msg in [&b"first"[..], b"", &[7u8; 100_000]] {
//!     tx.send(msg).await?;
//!     assert_eq!(rx.next().await.transpose()?.as_deref(), Some(msg));
//! }
//! drop(tx); // end of stream for cat, which exits
//! assert!(rx.next().await.is_none());
//! cat.wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! One `Framed` can carry both directions, over tokio's `join` of a reader and a writer (here
//! the two ends of one pipe, so what we send comes back):
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use ipcraft_core::codec::FrameCodec;
//! use tokio_util::codec::Framed;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (r, w) = ipcraft_pipe::tokio::pipe()?;
//! let mut framed = Framed::new(tokio::io::join(r, w), FrameCodec::new());
//! framed.send(&b"ping"[..]).await?;
//! assert_eq!(framed.next().await.transpose()?.as_deref(), Some(&b"ping"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//!
//! Every `async fn` here says whether it is cancel-safe (tokio's convention: dropping the
//! future before it completes, as a losing `tokio::select!` branch does, loses nothing).
//! [`PipeReader::read`], [`PipeWriter::write`] and [`PipeWriter::write_atomic`] are: a
//! transfer happens in one system call inside one poll, so a dropped future has transferred
//! nothing. With `tokio_util`'s `FramedRead`/`Framed`, `next()` is cancel-safe: partial
//! frames stay in the codec's buffer. `SinkExt::send` is not, in tokio's sense: a dropped
//! `send` may have queued the frame in the sink's buffer, which the next `send` or `flush`
//! writes.
//!
//! # End of stream and a peer that dies
//!
//! A read returns 0 bytes (and `FramedRead` ends, or fails with
//! [`FrameError::Truncated`](crate::FrameError::Truncated) inside a frame) once every writer
//! is closed, including by a killed process; a write fails with `BrokenPipe` once every
//! reader is closed. Neither waits for anything else, so a dead peer never hangs the other
//! side. [`AsyncWrite::poll_shutdown`] does nothing (as for tokio's own pipes): drop the
//! writer to end the stream.
//!
//! # Several writers on one pipe
//!
//! `FramedWrite` may write a frame in several `write(2)` calls, so frames from several
//! writers can interleave. Where writers share a pipe, encode each frame (at most
//! [`PIPE_BUF`] bytes with its prefix) and send it with
//! [`PipeWriter::write_atomic`], which the kernel writes whole or not at all.
//!
//! # Runtime
//!
//! Each end is one [`AsyncFd`] around its descriptor, in non-blocking mode: no thread per
//! object. Making one needs a tokio runtime with I/O enabled; the FIFO opens also need its
//! timer (`enable_all`, or `#[tokio::main]`).

use crate::error::{Error, Result};
use crate::pipe::PIPE_BUF;
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use nix::errno::Errno;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

mod fifo;
pub use fifo::{Fifo, FifoOptions};

/// Create an anonymous pipe whose ends are registered with the current tokio runtime.
///
/// Both ends are non-blocking and close-on-exec. See [`crate::pipe`] for the blocking form
/// and [`PipeReader::from_std`] for other options (packet mode).
///
/// # Errors
///
/// [`Error::Sys`] from `pipe2` or from the registration with the reactor.
///
/// # Panics
///
/// Outside a tokio runtime with I/O enabled.
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = crate::PipeOptions::new().nonblocking(true).create()?;
    Ok((PipeReader::from_std(r)?, PipeWriter::from_std(w)?))
}

/// The read end of a pipe or FIFO, for tokio: [`AsyncRead`], and [`read`](Self::read) /
/// [`try_read`](Self::try_read) as on the blocking [`crate::PipeReader`]. Closed on drop.
#[derive(Debug)]
pub struct PipeReader {
    inner: AsyncFd<crate::PipeReader>,
}

/// The write end of a pipe or FIFO, for tokio: [`AsyncWrite`], and [`write`](Self::write),
/// [`write_atomic`](Self::write_atomic) and their `try_` forms as on the blocking
/// [`crate::PipeWriter`]. Closed on drop.
#[derive(Debug)]
pub struct PipeWriter {
    inner: AsyncFd<crate::PipeWriter>,
}

/// Register `end` with the current runtime's reactor.
///
/// tokio 1.51.6/1.53.3 deprecated the safe `AsyncFd::with_interest` in favour of an `unsafe`
/// `register_with_interest` (tokio PR 8587): a `T` whose `as_raw_fd` could change, or whose
/// descriptor could be closed while registered, would make the reactor watch or deregister
/// another file. Both ends here own their descriptor in an `OwnedFd` that no method replaces
/// or closes before the `AsyncFd` drops or gives it back (`into_inner`), so the call is sound
/// for them; it stays the safe form so that this crate keeps `forbid(unsafe_code)` and the
/// workspace's minimum tokio (1.40). Moving to `register_with_interest` needs both changed.
fn registered<T: AsRawFd>(end: T, interest: Interest) -> Result<AsyncFd<T>> {
    #[allow(deprecated)]
    AsyncFd::with_interest(end, interest).map_err(|e| Error::from_io("epoll_ctl", &e))
}

fn reactor_error(e: &io::Error) -> Error {
    Error::from_io("epoll_wait", e)
}

impl PipeReader {
    /// Take a blocking read end (of a pipe or FIFO): switch it to non-blocking mode, clear its
    /// read timeout (the reactor does the waiting), and register it with the current runtime.
    ///
    /// `O_NONBLOCK` belongs to the open file description: a duplicate of this descriptor in
    /// this or another process becomes non-blocking too.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl` or from the registration (the handle is then dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(reader: crate::PipeReader) -> Result<Self> {
        reader.set_nonblocking(true)?;
        reader.set_read_timeout(None)?;
        Ok(Self {
            inner: registered(reader, Interest::READABLE)?,
        })
    }

    /// Deregister and return the blocking end, back in blocking mode (for a child process's
    /// stdin, say).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn into_std(self) -> Result<crate::PipeReader> {
        let reader = self.inner.into_inner();
        reader.set_nonblocking(false)?;
        Ok(reader)
    }

    /// The blocking handle inside (in non-blocking mode), to look at. Switching it back to
    /// blocking mode would make this end's reads block the runtime's thread, and reading
    /// through it bypasses the reactor; use the methods here.
    pub fn get_ref(&self) -> &crate::PipeReader {
        self.inner.get_ref()
    }

    /// Read what is available, waiting until something is; `Ok(0)` means end of stream
    /// (every writer closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the data is taken in one `read(2)` in the poll that completes the future,
    /// so a dropped future has read nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `read` or the reactor.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len();
        loop {
            let mut guard = self.inner.readable().await.map_err(|e| reactor_error(&e))?;
            if let Ok(done) = guard.try_io(|fd| read_now(fd.get_ref(), buf)) {
                if drained(&done, len) {
                    guard.clear_ready();
                }
                return done.map_err(|e| Error::from_io("read", &e));
            }
        }
    }

    /// Read what is available now, without waiting; see [`crate::PipeReader::try_read`].
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the pipe is empty and a writer is still open;
    /// [`Error::Sys`].
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        self.inner.get_ref().try_read(buf)
    }

    /// The pipe's capacity in bytes; see [`crate::PipeReader::capacity`].
    ///
    /// # Errors
    ///
    /// As [`crate::PipeReader::capacity`].
    pub fn capacity(&self) -> Result<usize> {
        self.inner.get_ref().capacity()
    }

    /// Set the pipe's capacity; see [`crate::PipeReader::set_capacity`].
    ///
    /// # Errors
    ///
    /// As [`crate::PipeReader::set_capacity`].
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        self.inner.get_ref().set_capacity(bytes)
    }
}

/// One `read(2)` on the non-blocking descriptor, as the blocking end's `Read` makes without a
/// read timeout (called directly, so that a timeout set through [`PipeReader::get_ref`]
/// cannot make it wait): `WouldBlock` when the pipe is empty.
/// Whether a read (or write) of `len` bytes that moved `done` shows that the pipe was drained
/// (or filled): a transfer shorter than asked, but not empty. The readiness is then cleared
/// at once, as tokio's own pipes do, so the next call waits for the reactor's next edge
/// instead of paying a system call that would say `EAGAIN`.
fn drained<E>(done: &std::result::Result<usize, E>, len: usize) -> bool {
    matches!(done, Ok(n) if *n > 0 && *n < len)
}

/// One `write(2)` of `buf` on the non-blocking writer (`EAGAIN` as `WouldBlock`, `EPIPE` as
/// [`Error::BrokenPipe`]), with SIGPIPE blocked around it if the writer asks for that: what
/// the blocking `try_write` does, without its deadline (no clock read per write).
fn write_now(writer: &crate::PipeWriter, buf: &[u8]) -> io::Result<usize> {
    let write = || loop {
        match nix::unistd::write(writer.as_fd(), buf) {
            Err(Errno::EINTR) => {}
            Err(Errno::EPIPE) => return Err(Error::BrokenPipe),
            Err(Errno::EAGAIN) => return Err(Error::WouldBlock { op: "pipe write" }),
            Err(e) => return Err(Error::sys("write")(e)),
            Ok(n) => return Ok(n),
        }
    };
    if writer.suppresses_sigpipe() {
        writer.guarded(write)
    } else {
        write()
    }
    .map_err(io::Error::from)
}

fn read_now(reader: &crate::PipeReader, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(reader.as_fd(), buf) {
            Err(Errno::EINTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

impl PipeWriter {
    /// Take a blocking write end (of a pipe or FIFO): switch it to non-blocking mode, clear
    /// its write timeout (the reactor does the waiting), and register it with the current
    /// runtime. SIGPIPE suppression ([`set_suppress_sigpipe`](Self::set_suppress_sigpipe))
    /// carries over.
    ///
    /// `O_NONBLOCK` belongs to the open file description: a duplicate of this descriptor in
    /// this or another process becomes non-blocking too.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl` or from the registration (the handle is then dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(writer: crate::PipeWriter) -> Result<Self> {
        writer.set_nonblocking(true)?;
        writer.set_write_timeout(None)?;
        Ok(Self {
            inner: registered(writer, Interest::WRITABLE)?,
        })
    }

    /// Deregister and return the blocking end, back in blocking mode (for a child process's
    /// stdout, say).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn into_std(self) -> Result<crate::PipeWriter> {
        let writer = self.inner.into_inner();
        writer.set_nonblocking(false)?;
        Ok(writer)
    }

    /// The blocking handle inside (in non-blocking mode), to look at. Its waiting writes
    /// would block the runtime's thread, and writing through it bypasses the reactor; use the
    /// methods here.
    pub fn get_ref(&self) -> &crate::PipeWriter {
        self.inner.get_ref()
    }

    /// Block `SIGPIPE` around each write; see [`crate::PipeWriter::set_suppress_sigpipe`].
    pub fn set_suppress_sigpipe(&mut self, yes: bool) {
        self.inner.get_mut().set_suppress_sigpipe(yes);
    }

    /// Write some of `buf`, waiting until there is room; returns how much was written.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the data goes out in one `write(2)` in the poll that completes the
    /// future, so a dropped future has written nothing.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenPipe`] when the read end is closed; [`Error::Sys`].
    pub async fn write(&self, buf: &[u8]) -> Result<usize> {
        self.when_writable(|w| w.try_write(buf)).await
    }

    /// Write what fits now, without waiting; see [`crate::PipeWriter::try_write`].
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the pipe is full; [`Error::BrokenPipe`]; [`Error::Sys`].
    pub fn try_write(&self, buf: &[u8]) -> Result<usize> {
        self.inner.get_ref().try_write(buf)
    }

    /// Write all of `buf` as one atomic unit, waiting until there is room for all of it:
    /// readers see it whole, never interleaved with another writer's data.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: `buf` goes out whole in one `write(2)`, or not at all.
    ///
    /// # Errors
    ///
    /// [`Error::AtomicWriteTooLarge`] when `buf` is longer than [`PIPE_BUF`] (checked before
    /// waiting); [`Error::BrokenPipe`]; [`Error::Sys`].
    pub async fn write_atomic(&self, buf: &[u8]) -> Result<()> {
        if buf.len() > PIPE_BUF {
            return Err(Error::AtomicWriteTooLarge {
                len: buf.len(),
                max: PIPE_BUF,
            });
        }
        self.when_writable(|w| w.try_write_atomic(buf)).await
    }

    /// [`write_atomic`](Self::write_atomic) without waiting; see
    /// [`crate::PipeWriter::try_write_atomic`].
    ///
    /// # Errors
    ///
    /// As [`write_atomic`](Self::write_atomic), and [`Error::WouldBlock`] when there is no
    /// room now.
    pub fn try_write_atomic(&self, buf: &[u8]) -> Result<()> {
        self.inner.get_ref().try_write_atomic(buf)
    }

    /// The pipe's capacity in bytes; see [`crate::PipeWriter::capacity`].
    ///
    /// # Errors
    ///
    /// As [`crate::PipeWriter::capacity`].
    pub fn capacity(&self) -> Result<usize> {
        self.inner.get_ref().capacity()
    }

    /// Set the pipe's capacity; see [`crate::PipeWriter::set_capacity`].
    ///
    /// # Errors
    ///
    /// As [`crate::PipeWriter::set_capacity`].
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        self.inner.get_ref().set_capacity(bytes)
    }

    /// Run the `try_` call `attempt` each time the reactor reports room, until it does not
    /// report `WouldBlock`.
    async fn when_writable<R>(
        &self,
        mut attempt: impl FnMut(&crate::PipeWriter) -> Result<R>,
    ) -> Result<R> {
        loop {
            let mut guard = self.inner.writable().await.map_err(|e| reactor_error(&e))?;
            let outcome = guard.try_io(|fd| match attempt(fd.get_ref()) {
                Err(Error::WouldBlock { .. }) => Err(io::ErrorKind::WouldBlock.into()),
                done => Ok(done),
            });
            if let Ok(done) = outcome {
                return done.unwrap_or_else(|e| Err(reactor_error(&e)));
            }
        }
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let len = unfilled.len();
            match guard.try_io(|fd| read_now(fd.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    if n > 0 && n < len {
                        // Drained (see `drained`).
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.inner.poll_write_ready(cx))?;
            match guard.try_io(|fd| write_now(fd.get_ref(), buf)) {
                Ok(done) => {
                    if drained(&done, buf.len()) {
                        guard.clear_ready();
                    }
                    return Poll::Ready(done);
                }
                Err(_would_block) => {}
            }
        }
    }

    /// Nothing to flush: a pipe has no user-space buffer.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Does nothing (as for tokio's own pipes): drop the writer to end the stream.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

macro_rules! fd_traits {
    ($ty:ident) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.get_ref().as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }
    };
}

fd_traits!(PipeReader);
fd_traits!(PipeWriter);
