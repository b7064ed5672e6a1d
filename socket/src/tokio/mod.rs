//! Async Unix sockets on tokio (feature `tokio`, off by default): the blocking types of this
//! crate, name for name, awaitable.
//!
//! - [`UnixStream`] ([`AsyncRead`](::tokio::io::AsyncRead) and
//!   [`AsyncWrite`](::tokio::io::AsyncWrite)) and [`UnixListener`], whose `accept` applies
//!   the listener's [`PeerPolicy`](crate::PeerPolicy) exactly as the blocking one does;
//! - [`UnixDatagram`], and [`SeqpacketListener`] / [`SeqpacketConn`], which tokio does not
//!   have;
//! - descriptor passing on all three kinds (`send_with_fds` / `recv_with_fds`: `SCM_RIGHTS`,
//!   `MSG_CMSG_CLOEXEC`, at most [`SCM_MAX_FD`](crate::SCM_MAX_FD), none leaked on error),
//!   which tokio does not have either; frames carrying descriptors on the stream
//!   ([`UnixStream::send_frame_with_fds`], [`UnixStream::recv_frame_with_fds`]);
//! - peer credentials (`SO_PEERCRED`) on every connection;
//! - [`TcpListener`] / [`TcpStream`], with the blocking ones' typed errors and
//!   `MSG_NOSIGNAL`;
//! - [`FrameCodec`] (from `ipcraft-core`), so that `tokio_util::codec::Framed` carries the
//!   frames of [`FrameWriter`](crate::FrameWriter) over these streams, tokio's, and TCP.
//!
//! The methods are those of the blocking types: `recv`, `send`, `accept`, `recv_with_fds`,
//! ... are `async`; their `_deadline` and `_timeout` forms are left out (wrap the future in
//! `tokio::time::timeout` where you want one); the `try_` forms stay, and never wait. The
//! errors are the crate's [`Error`], the same variants as the blocking calls
//! (`PeerClosed` rather than a `SIGPIPE`: every send uses `MSG_NOSIGNAL`).
//!
//! # One readiness path
//!
//! Each type is a `tokio::io::unix::AsyncFd` around the blocking type, whose descriptor is
//! put in non-blocking mode. An async call waits for readiness, then calls the blocking
//! type's `try_` form (`MSG_DONTWAIT`); `WouldBlock` clears the readiness and waits again.
//! No thread per object, and no `unsafe` here.
//!
//! # Cancel safety
//!
//! Every method says whether it is cancel-safe (tokio's convention: dropping its future,
//! for instance in a losing `select!` branch, loses nothing). Receives are: a message, or
//! bytes, are taken from the socket only in the same poll that returns them. The framed
//! receive of a stream keeps a partial frame in the stream, not in the future.
//!
//! # Panics
//!
//! Making one of these types (`bind`, `connect`, `pair`, `from_std`, ...) outside a tokio
//! runtime with I/O enabled panics, as tokio's own types do; an async connect that finds the
//! listener's backlog full also needs the runtime's timer (`enable_all` or `enable_time`)
//! for its back-off.
//!
//! # Examples
//!
//! ```
//! use ipcraft_socket::tokio::UnixStream;
//! use std::os::fd::AsFd;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ipcraft_socket::Error> {
//! let (a, b) = UnixStream::pair()?;
//! let (r, _w) = std::io::pipe().unwrap();
//! a.send_frame_with_fds(b"a pipe for you", &[r.as_fd()]).await?;
//! let mut b = b;
//! let (msg, fds) = b.recv_frame_with_fds(1024, 4).await?.unwrap();
//! assert_eq!((&msg[..], fds.len()), (&b"a pipe for you"[..], 1));
//! # Ok(())
//! # }
//! ```

mod datagram;
mod listener;
mod message;
mod seqpacket;
mod split;
mod stream;
mod tcp;

pub use datagram::UnixDatagram;
pub use ipcraft_core::codec::FrameCodec;
pub use listener::UnixListener;
pub use seqpacket::{SeqpacketConn, SeqpacketListener};
pub use split::{ReadHalf, WriteHalf};
pub use stream::UnixStream;
pub use tcp::{TcpListener, TcpStream};

use crate::error::{Error, Result};
use ::tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use ipcraft_core::SysError;
use std::io;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

/// The blocking types of this crate that an `AsyncFd` may wrap: each owns its descriptor
/// (an `OwnedFd`, or a `std::net` socket, set when it is made and never replaced, closed only when it drops),
/// so `as_raw_fd` returns the same open descriptor, of the same open file description, for
/// as long as it lives.
trait OwnsItsFd: AsRawFd {}
impl OwnsItsFd for crate::UnixStream {}
impl OwnsItsFd for crate::UnixListener {}
impl OwnsItsFd for crate::UnixDatagram {}
impl OwnsItsFd for crate::SeqpacketConn {}
impl OwnsItsFd for crate::SeqpacketListener {}
impl OwnsItsFd for crate::TcpStream {}
impl OwnsItsFd for crate::TcpListener {}

/// Register `inner` (already non-blocking) with the current runtime's reactor.
///
/// Tokio 1.54 deprecated the safe `AsyncFd::new` for the `unsafe fn AsyncFd::register`,
/// whose precondition is that `inner.as_raw_fd()` stays the same open descriptor, referring
/// to the same file description, until the `AsyncFd` drops or gives `inner` back. The
/// workspace allows tokio from 1.40, which has only `new`; so `new` is called here, for the
/// types that uphold that precondition ([`OwnsItsFd`]), and nowhere else. (When the
/// workspace requires tokio 1.54, this becomes `unsafe { AsyncFd::register(inner) }` in
/// `sys.rs`, with the same argument as its SAFETY note.)
#[allow(deprecated)]
fn register<T: OwnsItsFd>(inner: T) -> Result<AsyncFd<T>> {
    AsyncFd::new(inner).map_err(|e| reactor_error(&e))
}

fn reactor_error(e: &io::Error) -> Error {
    Error::Sys(SysError::from_io("epoll_ctl", e))
}

/// A `try_` call's result as `AsyncFd::try_io` wants it: `WouldBlock` as the io error that
/// clears readiness, everything else (success or a typed error) passed through.
fn would_block<R>(r: Result<R>) -> io::Result<Result<R>> {
    match r {
        Err(Error::WouldBlock { .. }) => Err(io::ErrorKind::WouldBlock.into()),
        other => Ok(other),
    }
}

/// Which readiness to wait for.
#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

/// Wait until `fd` is ready for `dir`, run `op` (a non-blocking `try_` call) and return its
/// result; on `WouldBlock`, clear the readiness and wait again. Cancel-safe when `op` is:
/// nothing happens between the wake-up and `op`, and `op`'s result is returned at once.
async fn await_io<T: AsRawFd, R>(
    fd: &AsyncFd<T>,
    dir: Dir,
    op: impl FnMut(&T) -> Result<R>,
) -> Result<R> {
    await_io_with(fd, dir, op, |_| false).await
}

/// [`await_io`] for a byte stream's `send`/`recv` of `len` bytes: a transfer shorter than
/// asked (but not empty) shows that the socket buffer was drained (or filled), so the
/// readiness is cleared at once, as tokio's own streams do; the next call then waits for
/// the reactor's next edge instead of paying a system call that would say `EAGAIN`.
async fn await_bytes<T: AsRawFd>(
    fd: &AsyncFd<T>,
    dir: Dir,
    len: usize,
    op: impl FnMut(&T) -> Result<usize>,
) -> Result<usize> {
    await_io_with(fd, dir, op, |r| matches!(r, Ok(n) if *n > 0 && *n < len)).await
}

async fn await_io_with<T: AsRawFd, R>(
    fd: &AsyncFd<T>,
    dir: Dir,
    mut op: impl FnMut(&T) -> Result<R>,
    drained: impl Fn(&Result<R>) -> bool,
) -> Result<R> {
    loop {
        let mut guard = match dir {
            Dir::Read => fd.readable().await,
            Dir::Write => fd.writable().await,
        }
        .map_err(|e| reactor_error(&e))?;
        match guard.try_io(|inner| would_block(op(inner.get_ref()))) {
            Ok(Ok(result)) => {
                if drained(&result) {
                    guard.clear_ready();
                }
                return result;
            }
            Ok(Err(e)) => return Err(reactor_error(&e)),
            Err(_would_block) => continue,
        }
    }
}

/// The poll form of [`await_io`], for `AsyncRead`/`AsyncWrite` and `poll_` methods.
fn poll_io<T: AsRawFd, R>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    dir: Dir,
    op: impl FnMut(&T) -> Result<R>,
) -> Poll<Result<R>> {
    poll_io_with(fd, cx, dir, op, |_| false)
}

/// The poll form of [`await_bytes`].
fn poll_bytes<T: AsRawFd>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    dir: Dir,
    len: usize,
    op: impl FnMut(&T) -> Result<usize>,
) -> Poll<Result<usize>> {
    poll_io_with(
        fd,
        cx,
        dir,
        op,
        |r| matches!(r, Ok(n) if *n > 0 && *n < len),
    )
}

fn poll_io_with<T: AsRawFd, R>(
    fd: &AsyncFd<T>,
    cx: &mut Context<'_>,
    dir: Dir,
    mut op: impl FnMut(&T) -> Result<R>,
    drained: impl Fn(&Result<R>) -> bool,
) -> Poll<Result<R>> {
    loop {
        let ready: Poll<io::Result<AsyncFdReadyGuard<'_, T>>> = match dir {
            Dir::Read => fd.poll_read_ready(cx),
            Dir::Write => fd.poll_write_ready(cx),
        };
        let mut guard = match ready {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(reactor_error(&e))),
            Poll::Ready(Ok(guard)) => guard,
        };
        match guard.try_io(|inner| would_block(op(inner.get_ref()))) {
            Ok(Ok(result)) => {
                if drained(&result) {
                    guard.clear_ready();
                }
                return Poll::Ready(result);
            }
            Ok(Err(e)) => return Poll::Ready(Err(reactor_error(&e))),
            Err(_would_block) => continue,
        }
    }
}

/// `AsyncRead::poll_read` of a byte stream whose non-blocking receive is `recv` (the
/// streams and their read halves share it).
fn poll_read_stream<T: AsRawFd>(
    io: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &mut ::tokio::io::ReadBuf<'_>,
    mut recv: impl FnMut(&T, &mut [u8]) -> Result<usize>,
) -> Poll<io::Result<()>> {
    let unfilled = buf.initialize_unfilled();
    let len = unfilled.len();
    match poll_bytes(io, cx, Dir::Read, len, |s| recv(s, unfilled)) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Ok(n)) => {
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
    }
}

/// `AsyncWrite::poll_write` of a byte stream whose non-blocking send is `send`.
fn poll_write_stream<T: AsRawFd>(
    io: &AsyncFd<T>,
    cx: &mut Context<'_>,
    buf: &[u8],
    mut send: impl FnMut(&T, &[u8]) -> Result<usize>,
) -> Poll<io::Result<usize>> {
    poll_bytes(io, cx, Dir::Write, buf.len(), |s| send(s, buf)).map_err(io::Error::from)
}
