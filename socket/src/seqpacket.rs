//! [`SeqpacketListener`] / [`SeqpacketConn`]: Unix seqpacket sockets (`SOCK_SEQPACKET`:
//! message boundaries on a connection; the shared message machinery is in `message.rs`).

use crate::addr::SocketAddr;
use crate::cred::{PeerCredentials, PeerPolicy, peer_credentials};
use crate::error::{Error, Result};
use crate::listener::UnixListener;
use crate::message::{Msg, message_methods};
use crate::options::{BindOptions, connect_unix};
use crate::stream::UnixStream;
use crate::wait::{Wait, set_fd_nonblocking};
use ipcraft_core::{Deadline, TrustedOwners};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, getpeername, getsockname, socketpair,
};
use std::fmt;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// A listening Unix seqpacket socket (`SOCK_SEQPACKET`): connections that keep message
/// boundaries. Binding, the file's mode and ownership, accept deadlines and the peer policy
/// are those of [`UnixListener`].
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{SeqpacketConn, SeqpacketListener, SocketAddr};
/// use std::time::Duration;
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-seq-{}.sock", std::process::id()));
/// let listener = SeqpacketListener::bind(&path)?;
/// let client = SeqpacketConn::connect_addr(&SocketAddr::from_path(&path)?)?;
/// let server = listener.accept_timeout(Duration::from_secs(10))?.0;
/// client.send(b"first")?;
/// client.send(b"second")?;
/// let mut buf = [0u8; 64];
/// assert_eq!(server.recv(&mut buf)?, 5); // one message per receive
/// assert_eq!(server.recv(&mut buf)?, 6);
/// # Ok::<(), ipcraft_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketListener {
    inner: UnixListener,
}

impl SeqpacketListener {
    /// Bind to a path with the default options (mode 0600) and listen.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`], and the address errors of [`SocketAddr::from_path`].
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), &SocketAddr::from_path(path)?)
    }

    /// Bind to a path or abstract name with the default options and listen.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`].
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), addr)
    }

    /// Bind to a path or abstract name with `options` (mode, backlog, blocking mode, peer
    /// policy) and listen; see [`UnixListener::bind_with`].
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`].
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Ok(Self {
            inner: options.bind_typed(addr, SockType::SeqPacket)?,
        })
    }

    /// Bind to a path, taking over a stale socket file but never a live one (see
    /// [`UnixListener::bind_reclaiming_stale`], which serializes starters with the same
    /// lock file).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_reclaiming_stale`].
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            inner: options.reclaim_typed(path.as_ref(), SockType::SeqPacket)?,
        })
    }

    fn conn((stream, addr): (UnixStream, SocketAddr)) -> (SeqpacketConn, SocketAddr) {
        (
            SeqpacketConn {
                m: Msg::new(OwnedFd::from(stream)),
            },
            addr,
        )
    }

    /// Accept a connection and the peer's address (see [`UnixListener::accept`]).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept`].
    #[doc(alias = "accept4")]
    pub fn accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept().map(Self::conn)
    }

    /// Accept, waiting at most until `deadline` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept_deadline`].
    pub fn accept_deadline(&self, deadline: Deadline) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept_deadline(deadline).map(Self::conn)
    }

    /// Accept, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept_timeout`].
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept_timeout(timeout).map(Self::conn)
    }

    /// Accept if a connection is waiting.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::try_accept`].
    pub fn try_accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.try_accept().map(Self::conn)
    }

    /// The connections as they come, without their addresses (see
    /// [`UnixListener::incoming`]).
    pub fn incoming(&self) -> SeqpacketIncoming<'_> {
        SeqpacketIncoming { listener: self }
    }

    /// Refuse peers the policy does not allow (see [`UnixListener::set_peer_policy`]).
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.inner.set_peer_policy(policy);
    }

    /// Switch non-blocking mode for `accept` (see [`UnixListener::set_nonblocking`]).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::set_nonblocking`].
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        self.inner.set_nonblocking(yes)
    }

    /// Whether `accept` is in non-blocking mode.
    pub fn is_nonblocking(&self) -> bool {
        self.inner.is_nonblocking()
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Leave the socket file in place on drop (see [`UnixListener::persist`]).
    pub fn persist(&mut self) {
        self.inner.persist();
    }

    /// A second handle to the same listening socket (see [`UnixListener::try_clone`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            inner: self.inner.try_clone()?,
        })
    }
}

/// The connections of a [`SeqpacketListener`], from [`SeqpacketListener::incoming`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct SeqpacketIncoming<'a> {
    listener: &'a SeqpacketListener,
}

impl Iterator for SeqpacketIncoming<'_> {
    type Item = Result<SeqpacketConn>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(c, _)| c))
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// Gives up the listening descriptor (in the blocking mode last set); the socket file stays
/// (see [`UnixListener`]'s conversion).
impl From<SeqpacketListener> for OwnedFd {
    fn from(l: SeqpacketListener) -> OwnedFd {
        OwnedFd::from(l.inner)
    }
}

/// A connected seqpacket socket: each send is one message, each receive returns one. Closed
/// on drop; end of stream is a receive of 0 bytes (which is why empty messages are refused).
pub struct SeqpacketConn {
    m: Msg,
}

message_methods!(SeqpacketConn);

impl SeqpacketConn {
    /// Connect to the seqpacket listener at `path`.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Connect to a seqpacket listener at a path or an abstract name.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when the listener belongs to another user (`SO_PEERCRED`,
    /// checked before returning); [`Error::Sys`] from `connect` (`ENOENT`, `ECONNREFUSED`,
    /// `EACCES`).
    pub fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::never())
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), with the same settings.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            m: self.m.try_clone()?,
        })
    }

    /// Connect, waiting at most until `deadline` while the listener's backlog is full (see
    /// [`UnixStream::connect_deadline`](crate::UnixStream::connect_deadline)).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`connect`](Self::connect).
    pub fn connect_deadline(addr: &SocketAddr, deadline: Deadline) -> Result<Self> {
        Self::connect_trusting(addr, deadline, &TrustedOwners::new())
    }

    /// Connect with [`ConnectOptions`](crate::ConnectOptions): a listener another user runs,
    /// trusted on purpose, and a bound on the wait for a full backlog.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`connect_deadline`](Self::connect_deadline).
    pub fn connect_with(options: &crate::ConnectOptions, addr: &SocketAddr) -> Result<Self> {
        Self::connect_trusting(addr, options.deadline_of(), options.trusted())
    }

    pub(crate) fn connect_trusting(
        addr: &SocketAddr,
        deadline: Deadline,
        trusted: &TrustedOwners,
    ) -> Result<Self> {
        Ok(Self::from_fd(connect_unix(
            addr,
            SockType::SeqPacket,
            deadline,
            trusted,
        )?))
    }

    /// Wrap a descriptor known to be a connected seqpacket socket.
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Self { m: Msg::new(fd) }
    }

    /// [`connect_deadline`](Self::connect_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`connect_deadline`](Self::connect_deadline).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::after(timeout))
    }

    /// Two connected seqpacket sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair`.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((Self { m: Msg::new(a) }, Self { m: Msg::new(b) }))
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a Unix seqpacket socket that is not listening (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for SeqpacketConn {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::SEQPACKET_CONN)?;
        Ok(Self { m: Msg::new(fd) })
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a listening Unix seqpacket socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for SeqpacketListener {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::SEQPACKET_LISTENER)?;
        Ok(Self {
            inner: UnixListener::adopt(fd),
        })
    }
}

impl From<SeqpacketConn> for OwnedFd {
    fn from(c: SeqpacketConn) -> OwnedFd {
        c.m.fd
    }
}
