//! [`TcpListener`] and [`TcpStream`] on tokio: the blocking TCP types of this crate, with
//! their typed errors and `MSG_NOSIGNAL` on every send, awaitable.

use super::{Dir, await_bytes, await_io, poll_io, poll_read_stream, poll_write_stream, register};
use crate::error::{Error, Result};
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ipcraft_core::SysError;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An async listening TCP socket: [`crate::TcpListener`] on tokio. Closed on drop.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::tokio::{FrameCodec, TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"over tcp").await?;
/// let mut buf = [0u8; 8];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"over tcp");
/// // `tokio_util::codec::Framed::new(server, FrameCodec::new())` carries frames.
/// # let _ = FrameCodec::new();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: AsyncFd<crate::TcpListener>,
}

impl TcpListener {
    /// Bind and listen, as [`crate::TcpListener::bind`]. A host name is resolved here,
    /// blocking: give an address in async code.
    ///
    /// # Errors
    ///
    /// As [`crate::TcpListener::bind`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<Self> {
        Self::from_std(crate::TcpListener::bind(addr)?)
    }

    /// Take a blocking listener to the runtime (its descriptor is non-blocking already).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(listener: crate::TcpListener) -> Result<Self> {
        Ok(Self {
            io: register(listener)?,
        })
    }

    /// The blocking listener, deregistered, in its blocking mode.
    pub fn into_std(self) -> crate::TcpListener {
        self.io.into_inner()
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Accept a connection and the peer's address, waiting for one.
    ///
    /// Cancel-safe: when the future is dropped before it completes, no connection was
    /// taken from the queue.
    ///
    /// # Errors
    ///
    /// As [`crate::TcpListener::accept`].
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let (s, addr) = await_io(&self.io, Dir::Read, |l| l.try_accept()).await?;
        Ok((TcpStream::from_std(s)?, addr))
    }

    /// [`accept`](Self::accept) as a poll function.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<(TcpStream, SocketAddr)>> {
        poll_io(&self.io, cx, Dir::Read, |l| l.try_accept())
            .map(|r| r.and_then(|(s, addr)| Ok((TcpStream::from_std(s)?, addr))))
    }

    /// Accept if a connection is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`], and as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.io.get_ref().try_accept()?;
        Ok((TcpStream::from_std(s)?, addr))
    }

    /// A second handle to the same listening socket, registered on its own.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_std(self.io.get_ref().try_clone()?)
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

/// An async connected TCP stream: [`crate::TcpStream`] on tokio, with [`AsyncRead`] and
/// [`AsyncWrite`] (so `tokio_util::codec::Framed` with [`FrameCodec`](super::FrameCodec)
/// carries frames over it). Every send uses `MSG_NOSIGNAL`: a closed peer is
/// [`Error::PeerClosed`] or [`Error::ConnectionReset`], never a `SIGPIPE`. Closed on drop.
#[derive(Debug)]
pub struct TcpStream {
    pub(super) io: AsyncFd<crate::TcpStream>,
}

impl TcpStream {
    /// Connect, waiting for the handshake (through tokio's connect).
    ///
    /// Cancel-safe: a dropped call closes its socket.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `connect` (`ECONNREFUSED`, `ENETUNREACH`, ...).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let sys = |e: &io::Error| Error::Sys(SysError::from_io("connect", e));
        let s = ::tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| sys(&e))?;
        let s = s.into_std().map_err(|e| sys(&e))?;
        Self::from_std(crate::TcpStream::from(s))
    }

    /// Take a blocking stream to the runtime: its descriptor is made non-blocking
    /// (`O_NONBLOCK`) and registered with the reactor.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl` or `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(stream: crate::TcpStream) -> Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            io: register(stream)?,
        })
    }

    /// The blocking stream, deregistered, in blocking mode.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn into_std(self) -> Result<crate::TcpStream> {
        let stream = self.io.into_inner();
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getpeername`.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Disable Nagle's algorithm (`TCP_NODELAY`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `setsockopt`.
    pub fn set_nodelay(&self, yes: bool) -> Result<()> {
        self.io.get_ref().set_nodelay(yes)
    }

    /// Send some of `buf` (`MSG_NOSIGNAL`), waiting for room.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was sent.
    ///
    /// # Errors
    ///
    /// As [`crate::TcpStream::send`].
    pub async fn send(&self, buf: &[u8]) -> Result<usize> {
        await_bytes(&self.io, Dir::Write, buf.len(), |s| s.try_send(buf)).await
    }

    /// Send what fits now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`], and as [`send`](Self::send).
    pub fn try_send(&self, buf: &[u8]) -> Result<usize> {
        self.io.get_ref().try_send(buf)
    }

    /// Receive what is available, waiting for something; `Ok(0)` is end of stream.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was received.
    ///
    /// # Errors
    ///
    /// As [`crate::TcpStream::recv`].
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len();
        await_bytes(&self.io, Dir::Read, len, |s| s.try_recv(buf)).await
    }

    /// Receive what is available now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`], and as [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.io.get_ref().try_recv(buf)
    }

    /// Shut down reading, writing or both.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same connection, registered on its own.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_std(self.io.get_ref().try_clone()?)
    }
}

impl AsyncRead for TcpStream {
    /// Cancel-safe, as [`recv`](TcpStream::recv).
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_stream(&self.io, cx, buf, crate::TcpStream::try_recv)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write_stream(&self.io, cx, buf, crate::TcpStream::try_send)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down writing: the peer sees end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write).map_err(io::Error::from))
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}
