//! [`SeqpacketListener`] and [`SeqpacketConn`]: async Unix seqpacket sockets, which tokio
//! does not have.

use super::message::async_message_methods;
use super::stream::connect_unix;
use super::{Dir, await_io, register};
use crate::error::Result;
use crate::{BindOptions, ConnectOptions, PeerCredentials, PeerPolicy, SocketAddr};
use ::tokio::io::unix::AsyncFd;
use ipcraft_core::{Deadline, TrustedOwners};
use nix::sys::socket::SockType;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

/// An async connected seqpacket socket (`SOCK_SEQPACKET`), which tokio does not have:
/// [`crate::SeqpacketConn`] on tokio. Each send is one message, each receive returns one;
/// end of stream is a receive of 0 bytes. Closed on drop.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::tokio::{SeqpacketConn, SeqpacketListener};
/// use std::os::fd::AsFd;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ipcraft_socket::Error> {
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-aseq-{}.sock", std::process::id()));
/// let listener = SeqpacketListener::bind(&path)?;
/// let client = SeqpacketConn::connect(&path).await?;
/// let (server, _) = listener.accept().await?;
/// let (r, _w) = std::io::pipe().unwrap();
/// client.send_with_fds(b"first", &[r.as_fd()]).await?;
/// client.send(b"second").await?;
/// let mut buf = [0u8; 64];
/// let (n, fds) = server.recv_with_fds(&mut buf, 1).await?; // one message per receive
/// assert_eq!((&buf[..n], fds.len()), (&b"first"[..], 1));
/// assert_eq!(server.recv(&mut buf).await?, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SeqpacketConn {
    io: AsyncFd<crate::SeqpacketConn>,
    was_nonblocking: bool,
}

async_message_methods!(SeqpacketConn);

impl SeqpacketConn {
    /// Connect to the seqpacket listener at `path`.
    ///
    /// Cancel-safe (a dropped call closes its socket).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled; when the backlog is full, without the
    /// runtime's timer.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?).await
    }

    /// Connect to a path or abstract name, waiting (on the runtime's timer) while the
    /// backlog is full; the listener's credentials are checked before this returns.
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect_addr`].
    ///
    /// # Panics
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::SeqPacket,
            Deadline::never(),
            &TrustedOwners::new(),
        )
        .await?;
        Self::from_std(crate::SeqpacketConn::from_fd(fd))
    }

    /// Connect with [`ConnectOptions`] (a trusted other user, a bound on the wait).
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect_with`].
    ///
    /// # Panics
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: &ConnectOptions, addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::SeqPacket,
            options.deadline_of(),
            options.trusted(),
        )
        .await?;
        Self::from_std(crate::SeqpacketConn::from_fd(fd))
    }

    /// Two connected seqpacket sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::pair`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = crate::SeqpacketConn::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }
}

/// An async listening seqpacket socket: [`crate::SeqpacketListener`] on tokio. Binding, the
/// file's mode and ownership, and the peer policy are those of
/// [`UnixListener`](super::UnixListener). See [`SeqpacketConn`] for an example.
#[derive(Debug)]
pub struct SeqpacketListener {
    io: AsyncFd<crate::SeqpacketListener>,
}

impl SeqpacketListener {
    /// Bind to a path (mode 0600) and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind(path)?)
    }

    /// Bind to a path or abstract name and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_addr`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_addr(addr)?)
    }

    /// Bind with `options` (mode, backlog, peer policy) and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_with`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_with(options, addr)?)
    }

    /// Bind to a path, taking over a stale socket file but never a live one.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_reclaiming_stale`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_reclaiming_stale(
            options, path,
        )?)
    }

    /// Take a blocking listener to the runtime (its descriptor is non-blocking already).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(listener: crate::SeqpacketListener) -> Result<Self> {
        Ok(Self {
            io: register(listener)?,
        })
    }

    /// The blocking listener, deregistered.
    pub fn into_std(self) -> crate::SeqpacketListener {
        self.io.into_inner()
    }

    /// The blocking listener underneath.
    pub fn get_ref(&self) -> &crate::SeqpacketListener {
        self.io.get_ref()
    }

    /// Accept a connection and the peer's address, waiting for one; the peer policy is
    /// applied first, as by [`crate::SeqpacketListener::accept`].
    ///
    /// Cancel-safe: when the future is dropped before it completes, no connection was
    /// taken from the queue.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::accept`]
    /// ([`Error::PeerRefused`](crate::Error::PeerRefused)).
    #[doc(alias = "accept4")]
    pub async fn accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        let (c, addr) = await_io(&self.io, Dir::Read, |l| l.try_accept()).await?;
        Ok((SeqpacketConn::from_std(c)?, addr))
    }

    /// Accept if a connection is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept), and [`Error::WouldBlock`](crate::Error::WouldBlock).
    pub fn try_accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        let (c, addr) = self.get_ref().try_accept()?;
        Ok((SeqpacketConn::from_std(c)?, addr))
    }

    /// Refuse, from now on, peers the policy does not allow.
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

    /// Leave the socket file in place on drop.
    pub fn persist(&mut self) {
        self.io.get_mut().persist();
    }

    /// A second handle to the same listening socket, registered on its own.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_std(self.get_ref().try_clone()?)
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}
