//! [`UnixStream`]: an async connected Unix stream socket.

use super::{Dir, await_bytes, await_io, poll_io, poll_read_stream, poll_write_stream, register};

use crate::error::{Error, Result};
use crate::options::SCM_MAX_FD;
use crate::wait::Wait;
use crate::{ConnectOptions, PeerCredentials, SocketAddr};
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ipcraft_core::frame::{DEFAULT_MAX_FRAME, HEADER_LEN, decode_header, encode_header};
use ipcraft_core::{Deadline, FrameError, TrustedOwners};
use nix::sys::socket::SockType;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An async connected Unix stream socket: [`crate::UnixStream`] on tokio. Closed on drop.
///
/// Implements [`AsyncRead`] and [`AsyncWrite`] (so `tokio_util::codec::Framed` works on it
/// with [`FrameCodec`](super::FrameCodec)); every send uses `MSG_NOSIGNAL`, so a closed peer
/// is [`Error::PeerClosed`] (`BrokenPipe`), never a `SIGPIPE`.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::tokio::UnixStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"hi").await?;
/// let mut buf = [0u8; 2];
/// b.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hi");
/// drop(b);
/// // No SIGPIPE: a typed error.
/// assert!(matches!(a.send(b"x").await, Err(ipcraft_socket::Error::PeerClosed { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UnixStream {
    pub(super) io: AsyncFd<crate::UnixStream>,
    /// The blocking mode the stream had before [`from_std`](Self::from_std), given back by
    /// [`into_std`](Self::into_std).
    was_nonblocking: bool,
    /// The frame [`recv_frame_with_fds`](Self::recv_frame_with_fds) is receiving: kept here,
    /// not in its future, so that a dropped call loses no part of it.
    frame_in: FrameIn,
}

/// A partly received frame.
#[derive(Debug, Default)]
struct FrameIn {
    header: [u8; HEADER_LEN],
    /// Bytes of the header, then (once `payload` is `Some`) of the payload, received.
    got: usize,
    payload: Option<Vec<u8>>,
    fds: Vec<OwnedFd>,
}

/// Connect a new Unix socket of type `ty` as the blocking connect does, pausing on the
/// runtime's timer while the backlog is full. Cancel-safe: a dropped connect closes its
/// socket.
pub(super) async fn connect_unix(
    addr: &SocketAddr,
    ty: SockType,
    deadline: Deadline,
    trusted: &TrustedOwners,
) -> Result<OwnedFd> {
    let mut pending = crate::options::PendingConnect::new(addr, ty)?;
    while !pending.attempt()? {
        ::tokio::time::sleep(pending.pause(deadline)?).await;
    }
    pending.finish(trusted)
}

impl UnixStream {
    /// Connect to the listener at a filesystem path.
    ///
    /// Cancel-safe (a dropped call closes its socket; the listener may see a connection
    /// that ends at once).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::connect`].
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?).await
    }

    /// Connect to a path or abstract address, waiting (on the runtime's timer, 1 to 10 ms
    /// at a time) while the listener's backlog is full; the listener's credentials are
    /// checked before this returns. Bound the wait with `tokio::time::timeout`, or with
    /// [`connect_with`](Self::connect_with).
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::connect_addr`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled; when the backlog is full, without the
    /// runtime's timer.
    pub async fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::Stream,
            Deadline::never(),
            &TrustedOwners::new(),
        )
        .await?;
        Self::from_std(crate::UnixStream::from_fd(fd))
    }

    /// Connect with [`ConnectOptions`]: a listener another user runs, trusted on purpose,
    /// and a bound on the wait for a full backlog ([`Error::TimedOut`]).
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::connect_with`].
    pub async fn connect_with(options: &ConnectOptions, addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::Stream,
            options.deadline_of(),
            options.trusted(),
        )
        .await?;
        Self::from_std(crate::UnixStream::from_fd(fd))
    }

    /// Two connected streams (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::pair`], and [`Error::Sys`] when the reactor refuses them.
    #[doc(alias = "socketpair")]
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = crate::UnixStream::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }

    /// Take a blocking stream to the runtime: its descriptor is made non-blocking
    /// (`O_NONBLOCK`, shared with every duplicate) and registered with the reactor.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl` or `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(stream: crate::UnixStream) -> Result<Self> {
        let was_nonblocking = stream.is_nonblocking();
        stream.set_nonblocking(true)?;
        Ok(Self {
            io: register(stream)?,
            was_nonblocking,
            frame_in: FrameIn::default(),
        })
    }

    /// The blocking stream, deregistered and in the blocking mode it had before
    /// [`from_std`](Self::from_std) (blocking, if this one was connected or paired here).
    /// A frame partly received by [`recv_frame_with_fds`](Self::recv_frame_with_fds) is
    /// lost (and its descriptors closed).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn into_std(self) -> Result<crate::UnixStream> {
        let stream = self.io.into_inner();
        stream.set_nonblocking(self.was_nonblocking)?;
        Ok(stream)
    }

    /// The blocking stream underneath (non-blocking while here: its `try_` forms work, its
    /// waiting forms fail with [`Error::WouldBlock`]).
    pub fn get_ref(&self) -> &crate::UnixStream {
        self.io.get_ref()
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), registered on its own. A
    /// partly received frame stays with this handle.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        let mut clone = Self::from_std(self.get_ref().try_clone()?)?;
        clone.was_nonblocking = self.was_nonblocking;
        Ok(clone)
    }

    /// The peer's credentials, captured at connect time (see
    /// [`crate::UnixStream::peer_credentials`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt`.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        self.get_ref().peer_credentials()
    }

    /// A pidfd for the peer process (see [`crate::UnixStream::peer_pidfd`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt` (`ENOPROTOOPT` before Linux 6.5).
    #[doc(alias = "SO_PEERPIDFD")]
    pub fn peer_pidfd(&self) -> Result<OwnedFd> {
        self.get_ref().peer_pidfd()
    }

    /// This end's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getpeername`.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.get_ref().peer_addr()
    }

    /// Shut down reading, writing or both (`shutdown(2)`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.get_ref().shutdown(how)
    }

    /// Send some of `buf` (`MSG_NOSIGNAL`), waiting for room; returns how much was sent.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was sent.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::send`]: [`Error::PeerClosed`], [`Error::ConnectionReset`],
    /// [`Error::Sys`].
    pub async fn send(&self, buf: &[u8]) -> Result<usize> {
        await_bytes(&self.io, Dir::Write, buf.len(), |s| s.try_send(buf)).await
    }

    /// Send what fits now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is no room, and as [`send`](Self::send).
    pub fn try_send(&self, buf: &[u8]) -> Result<usize> {
        self.get_ref().try_send(buf)
    }

    /// Receive what is available into `buf`, waiting for something; `Ok(0)` is end of
    /// stream.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was received.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::recv`].
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len();
        await_bytes(&self.io, Dir::Read, len, |s| s.try_recv(buf)).await
    }

    /// Receive what is available now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when nothing is there, and as [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.get_ref().try_recv(buf)
    }

    /// Send some of `buf` with descriptors (`SCM_RIGHTS`, `MSG_NOSIGNAL`): see
    /// [`crate::UnixStream::send_with_fds`]. The descriptors travel with the first byte sent.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was sent.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::send_with_fds`] ([`Error::TooManyFds`],
    /// [`Error::FdsWithoutData`]: nothing is sent).
    #[doc(alias = "SCM_RIGHTS")]
    pub async fn send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        await_io(&self.io, Dir::Write, |s| s.try_send_with_fds(buf, fds)).await
    }

    /// [`send_with_fds`](Self::send_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds), and [`Error::WouldBlock`].
    pub fn try_send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.get_ref().try_send_with_fds(buf, fds)
    }

    /// Receive bytes and the descriptors sent with them (at most `max_fds`, close-on-exec):
    /// see [`crate::UnixStream::recv_with_fds`]. `Ok((0, _))` is end of stream.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was received
    /// and no descriptor was installed.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::recv_with_fds`] ([`Error::FdsTruncated`]: every descriptor
    /// that arrived is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::tokio::UnixStream;
    /// use std::os::fd::AsFd;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ipcraft_socket::Error> {
    /// let (a, b) = UnixStream::pair()?;
    /// let (r, _w) = std::io::pipe().unwrap();
    /// a.send_with_fds(b"r", &[r.as_fd()]).await?;
    /// let mut buf = [0u8; 1];
    /// let (n, fds) = b.recv_with_fds(&mut buf, 4).await?;
    /// assert_eq!((n, fds.len()), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    #[doc(alias = "recvmsg")]
    pub async fn recv_with_fds(
        &self,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        await_io(&self.io, Dir::Read, |s| s.try_recv_with_fds(buf, max_fds)).await
    }

    /// [`recv_with_fds`](Self::recv_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv_with_fds`](Self::recv_with_fds), and [`Error::WouldBlock`].
    pub fn try_recv_with_fds(
        &self,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        self.get_ref().try_recv_with_fds(buf, max_fds)
    }

    /// Send one frame (the format of [`FrameWriter`](crate::FrameWriter)) with descriptors
    /// attached to its first bytes, as [`crate::UnixStream::send_frame_with_fds`]; receive
    /// it with [`recv_frame_with_fds`](Self::recv_frame_with_fds) (or the blocking one).
    ///
    /// **Not cancel-safe**: dropped part-way, the stream carries half a frame and cannot be
    /// used for frames any more (as `write_all`). Drop it only with the connection.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::send_frame_with_fds`]: [`Error::Frame`] with
    /// [`FrameError::Oversized`] and [`Error::TooManyFds`] before anything is sent.
    pub async fn send_frame_with_fds(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let header = encode_header(payload.len(), DEFAULT_MAX_FRAME).map_err(Error::Frame)?;
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        let total = header.len() + payload.len();
        let mut sent = 0;
        while sent < total {
            // The descriptors go with the first bytes; the rest without.
            let fds = if sent == 0 { fds } else { &[] };
            let (h, p) = if sent < header.len() {
                (&header[sent..], payload)
            } else {
                (&[][..], &payload[sent - header.len()..])
            };
            let iov = [IoSlice::new(h), IoSlice::new(p)];
            sent += await_io(&self.io, Dir::Write, |s| {
                s.send_iov_fds_wait(&iov, fds, Wait::Try)
            })
            .await?;
        }
        Ok(())
    }

    /// Receive one frame and the descriptors that came with it (at most `max_fds`,
    /// close-on-exec), as [`crate::UnixStream::recv_frame_with_fds`]. `Ok(None)` is a clean
    /// end of stream at a frame boundary.
    ///
    /// Cancel-safe: the part of a frame received so far, and its descriptors, are kept in
    /// the stream (not in the future), and the next call carries on where a dropped one
    /// stopped; no byte of a frame is lost. Do not mix with plain receives while a frame is
    /// partly in.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixStream::recv_frame_with_fds`]: [`Error::Frame`] with
    /// [`FrameError::IncomingOversized`] or [`FrameError::Truncated`] (the peer closed, or
    /// died, inside a frame), [`Error::FdsTruncated`]: the descriptors of the frame are
    /// closed, and the stream cannot be used for frames any more.
    pub async fn recv_frame_with_fds(
        &mut self,
        max_frame: u32,
        max_fds: usize,
    ) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let result = self.recv_frame_inner(max_frame, max_fds).await;
        if result.is_err() {
            // Closes the descriptors of the broken frame; a later call starts afresh.
            self.frame_in = FrameIn::default();
        }
        result
    }

    async fn recv_frame_inner(
        &mut self,
        max_frame: u32,
        max_fds: usize,
    ) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let Self {
            io: fd, frame_in, ..
        } = self;
        loop {
            // As the blocking receive: room for what is left of `max_fds` (the receive caps
            // it at SCM_MAX_FD), and errors name `max_fds` as given.
            let room = max_fds.saturating_sub(frame_in.fds.len());
            let FrameIn {
                header,
                got,
                payload,
                fds,
            } = &mut *frame_in;
            let buf: &mut [u8] = match payload {
                None => &mut header[*got..],
                Some(p) if *got == p.len() => {
                    let p = payload.take().unwrap_or_default();
                    let fds = std::mem::take(fds);
                    *got = 0;
                    return Ok(Some((p, fds)));
                }
                Some(p) => &mut p[*got..],
            };
            // The one await: after it, the bytes and descriptors go into `frame_in` before
            // anything else can happen, so a dropped call loses none of them.
            let (n, more) = match await_io(fd, Dir::Read, |s| s.try_recv_with_fds(buf, room)).await
            {
                Ok(v) => v,
                Err(Error::FdsTruncated { received, .. }) => {
                    return Err(Error::FdsTruncated { received, max_fds });
                }
                Err(e) => return Err(e),
            };
            fds.extend(more);
            if n == 0 {
                return match payload {
                    None if *got == 0 => Ok(None),
                    None => Err(Error::Frame(FrameError::Truncated {
                        expected: HEADER_LEN,
                        received: *got,
                    })),
                    Some(p) => Err(Error::Frame(FrameError::Truncated {
                        expected: HEADER_LEN + p.len(),
                        received: HEADER_LEN + *got,
                    })),
                };
            }
            *got += n;
            if payload.is_none() && *got == HEADER_LEN {
                let len = decode_header(*header, max_frame).map_err(Error::Frame)?;
                *payload = Some(vec![0u8; len]);
                *got = 0;
            }
        }
    }
}

impl AsyncRead for UnixStream {
    /// Cancel-safe, as [`recv`](UnixStream::recv).
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_stream(&self.io, cx, buf, crate::UnixStream::try_recv)
    }
}

impl AsyncWrite for UnixStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write_stream(&self.io, cx, buf, crate::UnixStream::try_send)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_io(&self.io, cx, Dir::Write, |s| {
            s.send_iov_fds_wait(bufs, &[], Wait::Try)
        })
        .map_err(io::Error::from)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down writing: the peer sees end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write).map_err(io::Error::from))
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}
