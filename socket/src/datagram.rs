//! [`UnixDatagram`]: a Unix datagram socket (`SOCK_DGRAM`), one whole message per send and
//! receive (the shared message machinery is in `message.rs`).

use crate::addr::SocketAddr;
use crate::cred::{PeerCredentials, peer_credentials};
use crate::error::{Error, Result};
use crate::message::{Msg, message_methods};
use crate::options::{BindOptions, OwnedFile, bind_unix};
use crate::wait::{Wait, set_fd_nonblocking};
use ipcraft_core::{Deadline, TrustedOwners};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, getpeername, getsockname, socket,
    socketpair,
};
use std::fmt;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// A Unix datagram socket (`SOCK_DGRAM`): bound or not, connected or not. Closed on drop;
/// a socket file it bound is removed then.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{SocketAddr, UnixDatagram};
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-dgram-{}.sock", std::process::id()));
/// let server = UnixDatagram::bind(&path)?; // mode 0600
/// let client = UnixDatagram::unbound()?;
/// client.send_to(b"one message", &SocketAddr::from_path(&path)?)?;
/// let mut buf = [0u8; 64];
/// let (n, from) = server.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"one message");
/// assert!(from.is_unnamed()); // the client never bound
/// # Ok::<(), ipcraft_socket::Error>(())
/// ```
pub struct UnixDatagram {
    m: Msg,
    #[allow(dead_code)] // held for its Drop: removes the socket file
    owned: Option<OwnedFile>,
}

message_methods!(UnixDatagram);

impl UnixDatagram {
    /// Bind to a filesystem path, the file's mode exactly [`DEFAULT_MODE`](crate::DEFAULT_MODE) (0600, whatever the
    /// umask; senders need write permission). The socket owns the file and removes it on drop.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as [`bind_with`](Self::bind_with).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), &SocketAddr::from_path(path)?)
    }

    /// Bind to a path or an abstract name with the default options.
    ///
    /// # Errors
    ///
    /// As [`bind_with`](Self::bind_with).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), addr)
    }

    /// Bind to a path (file mode exactly the options' mode, applied before the file exists,
    /// see [`UnixListener::bind_with`](crate::UnixListener::bind_with)) or an abstract name (no file, no mode), starting in
    /// the options' blocking mode. The backlog and peer policy are for listeners and are not
    /// used here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMode`]; [`Error::Sys`] from `socket`, `bind` (`EADDRINUSE`, `ENOENT`
    /// for a missing directory) or `chmod`.
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        let (fd, owned) = bind_unix(addr, SockType::Datagram, options.mode_bits(), false)?;
        let socket = Self {
            m: Msg::new(fd),
            owned,
        };
        if options.is_nonblocking() {
            socket.set_nonblocking(true)?;
        }
        Ok(socket)
    }

    /// Bind to `path`, taking over a socket file left there by a receiver that died (its
    /// path stays behind it: a restarted receiver would get `EADDRINUSE`), but never one a
    /// live socket is bound to. As [`UnixListener::bind_reclaiming_stale`](crate::UnixListener::bind_reclaiming_stale):
    /// starters are serialized by a lock file (`PATH.lock`, removed when done), and a file
    /// that is not a socket is left untouched.
    ///
    /// # Errors
    ///
    /// [`Error::AddressInUse`] when a live socket is bound there, or the path is not a
    /// socket; and as [`bind_with`](Self::bind_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::{BindOptions, Error, UnixDatagram};
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-dgram-{}.sock", std::process::id()));
    /// let first = UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), &path)?;
    /// // A live receiver is never taken over.
    /// assert!(matches!(
    ///     UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), &path),
    ///     Err(Error::AddressInUse { .. })
    /// ));
    /// drop(first);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        options.reclaim_with(path.as_ref(), |addr| Self::bind_with(options, addr))
    }

    /// An unbound datagram socket, to send from (replies cannot reach it).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socket`.
    pub fn unbound() -> Result<Self> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(Error::sys("socket"))?;
        Ok(Self {
            m: Msg::new(fd),
            owned: None,
        })
    }

    /// Two connected datagram sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair`.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((
            Self {
                m: Msg::new(a),
                owned: None,
            },
            Self {
                m: Msg::new(b),
                owned: None,
            },
        ))
    }

    /// Set the default destination (and the only source accepted) to the socket bound at
    /// `path`: `connect(2)`, as std's `UnixDatagram::connect`.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<()> {
        self.connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Set the default destination (and the only source accepted) to `addr`, a path or an
    /// abstract name.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when `addr` is a socket file another user owns
    /// ([`connect_with`](Self::connect_with) trusts one on purpose);
    /// [`Error::Sys`] from `connect` (`ENOENT`, `ECONNREFUSED`: nobody bound there).
    pub fn connect_addr(&self, addr: &SocketAddr) -> Result<()> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.connect_unchecked(addr)
    }

    /// Set the default destination with [`ConnectOptions`](crate::ConnectOptions): a path
    /// another user's socket is bound to, trusted on purpose (its owner is checked first).
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`connect_addr`](Self::connect_addr).
    pub fn connect_with(&self, options: &crate::ConnectOptions, addr: &SocketAddr) -> Result<()> {
        crate::trust::check_destination(addr, options.trusted())?;
        self.connect_unchecked(addr)
    }

    pub(crate) fn connect_unchecked(&self, addr: &SocketAddr) -> Result<()> {
        connect(self.m.fd.as_raw_fd(), &addr.to_unix_addr()?)
            .map_err(Error::sys_on("connect", addr))
    }

    /// A second handle to the same socket (`F_DUPFD_CLOEXEC`), with the same settings. The
    /// clone does not own the socket file: only the original removes it.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            m: self.m.try_clone()?,
            owned: None,
        })
    }

    /// Send one message to `addr`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) (`ECONNREFUSED`/`ENOENT` as [`Error::Sys`] when nobody is
    /// bound there, `EAGAIN` as [`Error::WouldBlock`] when the receiver's queue is full);
    /// [`Error::Untrusted`] when `addr` is a socket file another user owns (checked with
    /// `lstat` before the send: `/tmp` is sticky, so only its owner could swap it).
    pub fn send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, &[], Some(addr), self.m.write_wait())
    }

    /// [`send_to`](Self::send_to) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to).
    pub fn try_send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, &[], Some(addr), Wait::Try)
    }

    /// Send one message carrying descriptors to `addr`.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds).
    pub fn send_to_with_fds(
        &self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        addr: &SocketAddr,
    ) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, fds, Some(addr), self.m.write_wait())
    }

    /// [`send_to_with_fds`](Self::send_to_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_to_with_fds`](Self::send_to_with_fds), with [`Error::WouldBlock`].
    pub fn try_send_to_with_fds(
        &self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        addr: &SocketAddr,
    ) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, fds, Some(addr), Wait::Try)
    }

    /// Receive one whole message and its sender's address (unnamed if it never bound).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, self.m.read_wait())
    }

    /// [`recv_from`](Self::recv_from), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from_deadline(
        &self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, Wait::Until(deadline))
    }

    /// [`recv_from`](Self::recv_from) without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, Wait::Try)
    }
}

/// Takes ownership of a datagram socket; it owns no socket file.
/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a Unix datagram socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for UnixDatagram {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::UNIX_DATAGRAM)?;
        Ok(Self {
            m: Msg::new(fd),
            owned: None,
        })
    }
}

/// The descriptor; a socket file it bound is left in place.
impl From<UnixDatagram> for OwnedFd {
    fn from(d: UnixDatagram) -> OwnedFd {
        if let Some(mut o) = d.owned {
            o.keep();
        }
        d.m.fd
    }
}

impl From<std::os::unix::net::UnixDatagram> for UnixDatagram {
    fn from(d: std::os::unix::net::UnixDatagram) -> Self {
        Self {
            m: Msg::new(OwnedFd::from(d)),
            owned: None,
        }
    }
}

/// A socket file it bound is left in place.
impl From<UnixDatagram> for std::os::unix::net::UnixDatagram {
    fn from(d: UnixDatagram) -> Self {
        Self::from(OwnedFd::from(d))
    }
}
