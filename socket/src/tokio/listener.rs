//! [`UnixListener`]: an async listening Unix stream socket.

use super::stream::UnixStream;
use super::{Dir, await_io, poll_io, register};
use crate::error::Result;
use crate::{BindOptions, PeerPolicy, SocketAddr};
use ::tokio::io::unix::AsyncFd;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll};

/// An async listening Unix stream socket: [`crate::UnixListener`] on tokio. Closed on drop;
/// the socket file it created is removed then.
///
/// [`accept`](Self::accept) applies the listener's [`PeerPolicy`] exactly as the blocking
/// accept does: a refused peer's connection is closed and the call fails with
/// [`Error::PeerRefused`](crate::Error::PeerRefused).
///
/// # Examples
///
/// ```
/// use ipcraft_socket::tokio::{UnixListener, UnixStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ipcraft_socket::Error> {
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-alistener-{}.sock", std::process::id()));
/// let listener = UnixListener::bind(&path)?; // mode 0600, removed on drop
/// let client = UnixStream::connect(&path).await?;
/// let (conn, _addr) = listener.accept().await?;
/// assert_eq!(conn.peer_credentials()?.pid, std::process::id() as i32);
/// client.send(b"ping").await?;
/// let mut buf = [0u8; 4];
/// assert_eq!(conn.recv(&mut buf).await?, 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UnixListener {
    io: AsyncFd<crate::UnixListener>,
}

impl UnixListener {
    /// Bind to a filesystem path with the default options (mode 0600) and listen: see
    /// [`crate::UnixListener::bind`].
    ///
    /// # Errors
    ///
    /// As [`crate::UnixListener::bind`], and [`Error::Sys`](crate::Error::Sys) from the
    /// reactor.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::UnixListener::bind(path)?)
    }

    /// Bind to a path or abstract address with the default options and listen.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::UnixListener::bind_addr(addr)?)
    }

    /// Bind with `options` (mode, backlog, peer policy; the blocking mode does not matter
    /// here) and listen: see [`crate::UnixListener::bind_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::UnixListener::bind_with`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::UnixListener::bind_with(options, addr)?)
    }

    /// Bind to a path, taking over a stale socket file but never a live one: see
    /// [`crate::UnixListener::bind_reclaiming_stale`] (its lock is held only while this
    /// call runs, which blocks briefly on the lock file while another starter holds it).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixListener::bind_reclaiming_stale`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::UnixListener::bind_reclaiming_stale(options, path)?)
    }

    /// Take a blocking listener to the runtime (its descriptor is non-blocking already; its
    /// blocking mode, policy and socket file are kept).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(listener: crate::UnixListener) -> Result<Self> {
        Ok(Self {
            io: register(listener)?,
        })
    }

    /// The blocking listener, deregistered, with its mode, policy and socket file.
    pub fn into_std(self) -> crate::UnixListener {
        self.io.into_inner()
    }

    /// The blocking listener underneath.
    pub fn get_ref(&self) -> &crate::UnixListener {
        self.io.get_ref()
    }

    /// Accept a connection and the peer's address, waiting for one. The connection is
    /// registered with the runtime; the listener's peer policy is applied first, as by
    /// [`crate::UnixListener::accept`].
    ///
    /// Cancel-safe: when the future is dropped before it completes, no connection was
    /// taken from the queue.
    ///
    /// # Errors
    ///
    /// [`Error::PeerRefused`](crate::Error::PeerRefused) when the policy refuses the peer
    /// (its connection is closed; accept again for the next); [`Error::Sys`](crate::Error::Sys)
    /// (`EMFILE` at the descriptor limit, ...).
    #[doc(alias = "accept4")]
    pub async fn accept(&self) -> Result<(UnixStream, SocketAddr)> {
        let (s, addr) = await_io(&self.io, Dir::Read, |l| l.try_accept()).await?;
        Ok((UnixStream::from_std(s)?, addr))
    }

    /// [`accept`](Self::accept) as a poll function, for a hand-written `Stream` or future.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<(UnixStream, SocketAddr)>> {
        poll_io(&self.io, cx, Dir::Read, |l| l.try_accept())
            .map(|r| r.and_then(|(s, addr)| Ok((UnixStream::from_std(s)?, addr))))
    }

    /// Accept a connection if one is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`](crate::Error::WouldBlock) when none is waiting, and as
    /// [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.get_ref().try_accept()?;
        Ok((UnixStream::from_std(s)?, addr))
    }

    /// Refuse, from now on, peers that `policy` does not allow (see
    /// [`crate::UnixListener::set_peer_policy`]).
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.io.get_mut().set_peer_policy(policy);
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// The socket file this listener removes on drop, if any.
    pub fn owned_path(&self) -> Option<&Path> {
        self.get_ref().owned_path()
    }

    /// Leave the socket file in place on drop.
    pub fn persist(&mut self) {
        self.io.get_mut().persist();
    }

    /// A second handle to the same listening socket, with the same policy, registered on
    /// its own; it does not own the socket file.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_std(self.get_ref().try_clone()?)
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}
