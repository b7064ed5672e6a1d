//! [`UnixListener`]: a listening Unix stream socket.

use crate::addr::SocketAddr;
use crate::cred::PeerPolicy;
use crate::error::{Error, Result};
use crate::options::{BindOptions, OwnedFile};
use crate::stream::UnixStream;
use crate::sys;
use crate::wait::{Wait, fd_is_nonblocking, io_wait, set_fd_nonblocking};
use ipcraft_core::FlagSetting;
use ipcraft_core::{Deadline, Interest, SysError};
use nix::errno::Errno;
use nix::sys::socket::{UnixAddr, getsockname};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use std::path::Path;
use std::time::Duration;

/// A listening Unix stream socket (`SOCK_STREAM`). Closed on drop; the socket file it
/// created is removed then.
///
/// # Examples
///
/// A server in this process, a client in a child (`socat` or `nc -U` would do the same):
///
/// ```
/// use ipcraft_socket::{UnixListener, UnixStream};
/// use std::io::{Read, Write};
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-listener-{}.sock", std::process::id()));
/// let listener = UnixListener::bind(&path)?;
/// let client = std::thread::spawn({
///     let path = path.clone();
///     move || -> std::io::Result<String> {
///         let mut s = UnixStream::connect(&path)?;
///         s.write_all(b"ping")?;
///         let mut reply = String::new();
///         s.read_to_string(&mut reply)?;
///         Ok(reply)
///     }
/// });
/// let mut conn = listener.accept()?.0;
/// let mut buf = [0u8; 4];
/// conn.read_exact(&mut buf)?;
/// conn.write_all(b"pong")?;
/// drop(conn);
/// assert_eq!(client.join().unwrap()?, "pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UnixListener {
    pub(crate) fd: OwnedFd,
    pub(crate) owned: Option<OwnedFile>,
    pub(crate) nonblocking: FlagSetting,
    pub(crate) policy: Option<PeerPolicy>,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.fd.as_raw_fd())
            .field("path", &self.owned.as_ref().map(|o| &o.path))
            .field("nonblocking", &self.nonblocking.get())
            .field("policy", &self.policy)
            .finish()
    }
}

impl UnixListener {
    /// Bind to a filesystem path with the default options (mode 0600, independent of the
    /// umask): see [`bind_with`](Self::bind_with).
    ///
    /// # Errors
    ///
    /// As [`bind_with`](Self::bind_with), and the address errors of
    /// [`SocketAddr::from_path`] ([`Error::PathTooLong`], [`Error::InvalidAddress`]).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), &SocketAddr::from_path(path)?)
    }

    /// Bind to a path or abstract address with the default options.
    ///
    /// # Errors
    ///
    /// As [`bind_with`](Self::bind_with).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), addr)
    }

    /// Create the socket, bind it to `addr` with `options`, set the file's mode, and listen.
    ///
    /// The mode is set before anyone can connect: `fchmod` on the socket before `bind(2)`
    /// (Linux creates the file with the socket's mode minus the umask, so it is never more
    /// open than asked), `chmod` of the file after `bind` (which can only widen it to exactly
    /// the mode, whatever the umask), and only then `listen(2)`: until then a connection
    /// attempt is refused (`ECONNREFUSED`).
    /// The listener owns the file and removes it on drop (unless
    /// [`persist`](UnixListener::persist)ed), and only if it is still the file it created
    /// (same device and inode).
    ///
    /// An existing file at the path, a stale socket included, is never replaced:
    /// `bind` fails with `EADDRINUSE`.
    ///
    /// See `bind(2)`, `listen(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidMode`] for a mode outside `0o777`;
    /// - [`Error::Sys`] from `socket`, `fchmod`, `bind` (`EADDRINUSE`: something exists at
    ///   the path or the abstract name is taken; `ENOENT`: a directory of the path is missing;
    ///   `EACCES`), `chmod` or `listen`; nothing is left behind.
    #[doc(alias = "bind")]
    #[doc(alias = "listen")]
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        options.bind_addr(addr)
    }

    /// Bind to a filesystem path, taking over a **stale** socket file left there by a
    /// listener that died (nobody accepts: `connect` is refused), never a live one.
    ///
    /// Starters are serialized by an exclusive `flock(2)` on a lock file beside the socket
    /// (`PATH.lock`, mode 0600, created if missing, never through a symbolic link), held until
    /// the new socket listens. So two starters racing for the same stale path cannot both win,
    /// and neither can unlink the other's live socket: the loser finds it live. Every process
    /// that binds this path must use this call for the guarantee to hold (a plain
    /// [`bind`](Self::bind) does not take the lock).
    ///
    /// The lock file does not stay: the starter that holds it removes it before unlocking,
    /// whether it won or lost. A starter that was waiting on it then holds a file that lost
    /// its name, while a newcomer may have made a new one; so after locking, every starter
    /// checks that `PATH.lock` still names the file it locked, and otherwise starts again
    /// with the one there now. A starter killed while holding the lock leaves `PATH.lock`
    /// behind (unlocked: the kernel drops the lock), and the next starter removes it.
    ///
    /// Under the lock: `bind`; on `EADDRINUSE`, the existing file must be a socket (anything
    /// else is left alone) and a probe `connect` must be refused (`ECONNREFUSED`); only then
    /// is it unlinked and the bind retried once. A live listener sees the probe as a
    /// connection that closes at once.
    ///
    /// # Errors
    ///
    /// - [`Error::AddressInUse`] when a live listener answers at the path, or the path is not
    ///   a socket;
    /// - [`Error::Sys`] from opening or locking the lock file, and as
    ///   [`bind_with`](Self::bind_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::{Error, BindOptions, UnixListener};
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-stale-{}.sock", std::process::id()));
    /// let mut dead = UnixListener::bind(&path)?;
    /// dead.persist();
    /// drop(dead); // the file stays and nobody listens: stale
    /// let live = UnixListener::bind_reclaiming_stale(&BindOptions::new(), &path)?;
    /// // A live listener's path is never taken over.
    /// assert!(matches!(
    ///     UnixListener::bind_reclaiming_stale(&BindOptions::new(), &path),
    ///     Err(Error::AddressInUse { .. })
    /// ));
    /// drop(live);
    /// assert!(!path.with_extension("sock.lock").exists()); // no lock file left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        options.bind_reclaiming_stale(path)
    }

    /// Refuse, from now on, connecting peers that `policy` does not allow: each accepted
    /// connection's [`PeerCredentials`](crate::PeerCredentials) are checked before `accept` returns it, and a refused
    /// one is closed at once with [`Error::PeerRefused`]. This matters most on abstract
    /// addresses, which have no file permissions.
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.policy = policy;
    }

    /// Accept a connection, waiting for one (or, in non-blocking mode, failing with
    /// [`Error::WouldBlock`]). Returns the connection, close-on-exec and blocking, and the
    /// peer's address (as std's `accept`: usually unnamed, since clients seldom bind).
    ///
    /// See `accept4(2)`.
    ///
    /// # Errors
    ///
    /// [`Error::PeerRefused`] when the peer policy refuses the peer (the connection is
    /// closed; accept again for the next); [`Error::WouldBlock`]; [`Error::Sys`].
    #[doc(alias = "accept4")]
    pub fn accept(&self) -> Result<(UnixStream, SocketAddr)> {
        if self.nonblocking.get() {
            self.accept_wait(Wait::Try)
        } else {
            self.accept_wait(Wait::Until(Deadline::never()))
        }
    }

    /// Accept a connection, waiting at most until `deadline` (monotonic clock).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`accept`](Self::accept).
    pub fn accept_deadline(&self, deadline: Deadline) -> Result<(UnixStream, SocketAddr)> {
        self.accept_wait(Wait::Until(deadline))
    }

    /// [`accept_deadline`](Self::accept_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`accept_deadline`](Self::accept_deadline).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(UnixStream, SocketAddr)> {
        self.accept_deadline(Deadline::after(timeout))
    }

    /// Accept a connection if one is waiting, without waiting, whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when none is waiting, and as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<(UnixStream, SocketAddr)> {
        self.accept_wait(Wait::Try)
    }

    pub(crate) fn accept_wait(&self, wait: Wait) -> Result<(UnixStream, SocketAddr)> {
        let fd = io_wait(
            self.fd.as_fd(),
            Interest::Readable,
            wait,
            "accept",
            |_| match sys::accept(self.fd.as_fd(), false) {
                // A connection that died in the queue: try the next one.
                Err(Errno::ECONNABORTED) => Err(Errno::EINTR),
                other => other,
            },
        )?;
        let stream = UnixStream::from_fd(fd);
        if let Some(policy) = &self.policy {
            let peer = stream.peer_credentials()?;
            if !policy.allows(&peer) {
                return Err(Error::PeerRefused { peer });
            }
        }
        let addr = stream.peer_addr()?;
        Ok((stream, addr))
    }

    /// The connections as they come: [`accept`](Self::accept) in a loop, without the
    /// addresses, as std's `incoming`. Never ends; in non-blocking mode it yields
    /// [`Error::WouldBlock`] when none is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-incoming-{}.sock", std::process::id()));
    /// let listener = UnixListener::bind(&path)?;
    /// let _a = UnixStream::connect(&path)?;
    /// let _b = UnixStream::connect(&path)?;
    /// let served = listener.incoming().take(2).filter(|c| c.is_ok()).count();
    /// assert_eq!(served, 2);
    /// # Ok::<(), ipcraft_socket::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A second handle to the same listening socket (`F_DUPFD_CLOEXEC`), with the same
    /// blocking mode and peer policy, to accept from another thread. The clone does not own
    /// the socket file: only the original removes it.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::Sys(SysError::from_io("fcntl(F_DUPFD_CLOEXEC)", &e)))?;
        Ok(Self {
            fd,
            owned: None,
            nonblocking: self.nonblocking.clone(),
            policy: self.policy.clone(),
        })
    }

    /// Switch non-blocking mode (for [`accept`](Self::accept)). The descriptor itself is
    /// always `O_NONBLOCK` while owned by this type (accept waits with `poll`); it gets
    /// this mode back when converted into an [`OwnedFd`] or a `std` listener.
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        self.nonblocking.set(yes);
        Ok(())
    }

    /// Whether [`accept`](Self::accept) is non-blocking.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.get()
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let a: UnixAddr = getsockname(self.fd.as_raw_fd()).map_err(Error::sys("getsockname"))?;
        Ok(SocketAddr::from_unix_addr(&a))
    }

    /// The socket file this listener removes on drop, if any.
    pub fn owned_path(&self) -> Option<&Path> {
        self.owned
            .as_ref()
            .filter(|o| !o.keep)
            .map(|o| o.path.as_path())
    }

    /// Leave the socket file in place on drop (for a process that hands the listener on).
    pub fn persist(&mut self) {
        if let Some(o) = &mut self.owned {
            o.keep = true;
        }
    }

    fn into_fd(self) -> OwnedFd {
        let Self {
            fd,
            owned,
            nonblocking,
            ..
        } = self;
        if let Some(mut o) = owned {
            o.keep = true;
        }
        let _ = set_fd_nonblocking(fd.as_fd(), nonblocking.get());
        fd
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Adopts a listening socket (inherited, or from systemd). It owns no socket file; the
/// descriptor is made `O_NONBLOCK` (see [`UnixListener::set_nonblocking`]), which affects
/// every duplicate of it.
/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a listening Unix stream socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for UnixListener {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::UNIX_LISTENER)?;
        Ok(Self::adopt(fd))
    }
}

impl UnixListener {
    /// Wrap a descriptor known to be a listening Unix stream socket.
    pub(crate) fn adopt(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        let _ = set_fd_nonblocking(fd.as_fd(), true);
        Self {
            fd,
            owned: None,
            nonblocking: FlagSetting::new(nonblocking),
            policy: None,
        }
    }
}

/// The descriptor, in the listener's blocking mode. The socket file is left in place.
impl From<UnixListener> for OwnedFd {
    fn from(l: UnixListener) -> OwnedFd {
        l.into_fd()
    }
}

impl From<std::os::unix::net::UnixListener> for UnixListener {
    fn from(l: std::os::unix::net::UnixListener) -> Self {
        Self::adopt(OwnedFd::from(l))
    }
}

/// The socket file is left in place (std does not remove it).
impl From<UnixListener> for std::os::unix::net::UnixListener {
    fn from(l: UnixListener) -> Self {
        Self::from(l.into_fd())
    }
}

/// The connections of a [`UnixListener`], from [`UnixListener::incoming`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = Result<UnixStream>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}
