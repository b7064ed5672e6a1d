//! Stream sockets: [`UnixListener`], [`ListenerOptions`] and [`UnixStream`].

use crate::addr::SocketAddr;
use crate::cred::{PeerCredentials, PeerPolicy, peer_credentials};
use crate::error::{Error, Result};
use crate::sys;
use crate::wait::{Wait, fd_is_nonblocking, io_wait, set_fd_nonblocking};
use ipcraft_core::FrameError;
use ipcraft_core::{Deadline, Interest, SysError};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, bind, connect,
    getpeername, getsockname, listen, recv, send, sendmsg, socket, socketpair,
};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most descriptors one message carries (`SCM_MAX_FD` in the kernel, see `unix(7)`).
pub const SCM_MAX_FD: usize = 253;

/// The default mode of a listener's socket file: owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

/// The default `listen(2)` backlog.
pub const DEFAULT_BACKLOG: i32 = 128;

/// Options for binding a [`UnixListener`]: the socket file's mode and the backlog.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::ListenerOptions;
/// use std::os::unix::fs::PermissionsExt;
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-opts-{}.sock", std::process::id()));
/// let listener = ListenerOptions::new().mode(0o660).bind(&path)?;
/// let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
/// assert_eq!(mode, 0o660);
/// drop(listener);
/// assert!(!path.exists()); // the binder removes its socket file
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until a socket is bound with them"]
pub struct ListenerOptions {
    mode: u32,
    backlog: i32,
    nonblocking: bool,
    policy: Option<PeerPolicy>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ListenerOptions {
    /// Mode [`DEFAULT_MODE`] (0600), backlog [`DEFAULT_BACKLOG`], blocking, no peer policy.
    pub fn new() -> Self {
        Self {
            mode: DEFAULT_MODE,
            backlog: DEFAULT_BACKLOG,
            nonblocking: false,
            policy: None,
        }
    }

    /// The socket file's permission bits (connecting needs write permission), applied
    /// exactly, whatever the umask. Ignored for abstract addresses, which have no file.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// The `listen(2)` backlog (capped by `/proc/sys/net/core/somaxconn`).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Start in non-blocking mode: [`UnixListener::accept`] fails with
    /// [`Error::WouldBlock`] when no connection is waiting.
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Refuse peers this policy does not allow (see [`UnixListener::set_peer_policy`]).
    pub fn peer_policy(mut self, policy: PeerPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Bind to a filesystem path (see [`bind_addr`](Self::bind_addr)).
    ///
    /// # Errors
    ///
    /// As [`bind_addr`](Self::bind_addr), and the address errors of
    /// [`SocketAddr::from_path`].
    pub fn bind(&self, path: impl AsRef<Path>) -> Result<UnixListener> {
        self.bind_addr(&SocketAddr::from_path(path)?)
    }

    /// Create the socket, bind it to `addr`, set the file's mode, and listen.
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
    pub fn bind_addr(&self, addr: &SocketAddr) -> Result<UnixListener> {
        self.bind_typed(addr, SockType::Stream)
    }

    pub(crate) fn bind_typed(&self, addr: &SocketAddr, ty: SockType) -> Result<UnixListener> {
        // Always non-blocking underneath: accept waits with poll, so a connection another
        // process takes first never leaves a deadline-bound accept blocked.
        let (fd, owned) = bind_unix(addr, ty, self.mode, true)?;
        listen(&fd, Backlog::new(self.backlog).unwrap_or(Backlog::MAXCONN))
            .map_err(Error::sys_on("listen", addr))?;
        Ok(UnixListener {
            fd,
            owned,
            nonblocking: self.nonblocking,
            policy: self.policy.clone(),
        })
    }
}

/// A new Unix socket of type `ty` (close-on-exec, and non-blocking if asked) bound to `addr`;
/// for a path, the socket file gets exactly `mode`, and is owned (removed on drop).
///
/// The mode is applied twice: `fchmod` on the socket before `bind` (Linux creates the file
/// with the socket inode's mode minus the umask, so the file is never more open than `mode`),
/// then `chmod` on the file after `bind`, which can only widen it to exactly `mode`.
pub(crate) fn bind_unix(
    addr: &SocketAddr,
    ty: SockType,
    mode: u32,
    nonblocking: bool,
) -> Result<(OwnedFd, Option<OwnedFile>)> {
    if mode & !0o777 != 0 {
        return Err(Error::InvalidMode { mode });
    }
    let unix_addr = addr.to_unix_addr()?;
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    let fd = socket(AddressFamily::Unix, ty, flags, None).map_err(Error::sys("socket"))?;
    if addr.as_path().is_some() {
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(Error::sys("fchmod"))?;
    }
    bind(fd.as_raw_fd(), &unix_addr).map_err(Error::sys_on("bind", addr))?;
    let owned = match addr.as_path() {
        Some(path) => {
            let created = OwnedFile::after_bind(path);
            let perms = std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(path, perms)
                .map_err(|e| Error::Sys(SysError::from_io("chmod", &e).on(path.display())))?;
            Some(created)
        }
        None => None,
    };
    Ok((fd, owned))
}

impl ListenerOptions {
    /// Bind to a filesystem path, taking over a **stale** socket file left there by a
    /// listener that died (nobody accepts: `connect` is refused), never a live one.
    ///
    /// Starters are serialized by an exclusive `flock(2)` on a lock file beside the socket
    /// (`PATH.lock`, mode 0600, created if missing and left in place), held until the new
    /// socket listens. So two starters racing for the same stale path cannot both win, and
    /// neither can unlink the other's live socket: the loser finds it live. Every process that
    /// binds this path must use this call for the guarantee to hold (a plain
    /// [`bind`](Self::bind) does not take the lock).
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
    ///   [`bind_addr`](Self::bind_addr).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::{Error, ListenerOptions, UnixListener};
    ///
    /// let path = std::env::temp_dir().join(format!("ipcraft-doc-stale-{}.sock", std::process::id()));
    /// let mut dead = UnixListener::bind(&path)?;
    /// dead.persist();
    /// drop(dead); // the file stays and nobody listens: stale
    /// let live = ListenerOptions::new().bind_reclaiming_stale(&path)?;
    /// // A live listener's path is never taken over.
    /// assert!(matches!(
    ///     ListenerOptions::new().bind_reclaiming_stale(&path),
    ///     Err(Error::AddressInUse { .. })
    /// ));
    /// drop(live);
    /// # let _ = std::fs::remove_file(path.with_extension("sock.lock"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_reclaiming_stale(&self, path: impl AsRef<Path>) -> Result<UnixListener> {
        self.reclaim_typed(path.as_ref(), SockType::Stream)
    }

    pub(crate) fn reclaim_typed(&self, path: &Path, ty: SockType) -> Result<UnixListener> {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let addr = SocketAddr::from_path(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(|e| {
                Error::Sys(SysError::from_io("open", &e).on(Path::new(&lock_path).display()))
            })?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::Sys(SysError::new("flock", e).on(Path::new(&lock_path).display()))
        })?;
        match self.bind_typed(&addr, ty) {
            Err(Error::Sys(e)) if e.errno() == Errno::EADDRINUSE => {}
            other => return other,
        }
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if !is_socket {
            return Err(Error::AddressInUse {
                address: addr.to_string(),
                reason: "the path exists and is not a socket; it was left untouched",
            });
        }
        let probe = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(Error::sys("socket"))?;
        // A stream probe: a stale file of any type refuses it (ECONNREFUSED); a live listener
        // of another type answers EPROTOTYPE, which counts as live like any other answer.
        match connect(probe.as_raw_fd(), &addr.to_unix_addr()?) {
            Err(Errno::ECONNREFUSED) => {}
            Err(Errno::ENOENT) => {} // removed meanwhile by a plain owner: bind again
            _ => {
                return Err(Error::AddressInUse {
                    address: addr.to_string(),
                    reason: "a live listener answers there",
                });
            }
        }
        drop(probe);
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Sys(
                    SysError::from_io("unlink", &e).on(path.display()),
                ));
            }
        }
        self.bind_typed(&addr, ty)
        // `_lock` is released here, after the new socket listens.
    }
}

/// The socket file a listener created, removed on drop if it is still the same file.
pub(crate) struct OwnedFile {
    path: PathBuf,
    id: Option<(u64, u64)>,
    keep: bool,
}

impl OwnedFile {
    fn after_bind(path: &Path) -> Self {
        let id = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Self {
            path: path.to_path_buf(),
            id,
            keep: false,
        }
    }
}

impl OwnedFile {
    /// Leave the file in place on drop.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for OwnedFile {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let same = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if same.is_some() && same == self.id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

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
/// let mut conn = listener.accept()?;
/// let mut buf = [0u8; 4];
/// conn.read_exact(&mut buf)?;
/// conn.write_all(b"pong")?;
/// drop(conn);
/// assert_eq!(client.join().unwrap()?, "pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UnixListener {
    fd: OwnedFd,
    owned: Option<OwnedFile>,
    nonblocking: bool,
    policy: Option<PeerPolicy>,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.fd.as_raw_fd())
            .field("path", &self.owned.as_ref().map(|o| &o.path))
            .field("nonblocking", &self.nonblocking)
            .field("policy", &self.policy)
            .finish()
    }
}

impl UnixListener {
    /// Bind to a filesystem path with the default options (mode 0600, independent of the
    /// umask): see [`ListenerOptions::bind_addr`].
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind_addr`], and the address errors of
    /// [`SocketAddr::from_path`] ([`Error::PathTooLong`], [`Error::InvalidAddress`]).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        ListenerOptions::new().bind(path)
    }

    /// Bind to a path or abstract address with the default options.
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind_addr`].
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        ListenerOptions::new().bind_addr(addr)
    }

    /// Refuse, from now on, connecting peers that `policy` does not allow: each accepted
    /// connection's [`PeerCredentials`] are checked before `accept` returns it, and a refused
    /// one is closed at once with [`Error::PeerRefused`]. This matters most on abstract
    /// addresses, which have no file permissions.
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.policy = policy;
    }

    /// Accept a connection, waiting for one (or, in non-blocking mode, failing with
    /// [`Error::WouldBlock`]). The connection is close-on-exec and blocking.
    ///
    /// See `accept4(2)`.
    ///
    /// # Errors
    ///
    /// [`Error::PeerRefused`] when the peer policy refuses the peer (the connection is
    /// closed; accept again for the next); [`Error::WouldBlock`]; [`Error::Sys`].
    #[doc(alias = "accept4")]
    pub fn accept(&self) -> Result<UnixStream> {
        if self.nonblocking {
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
    pub fn accept_deadline(&self, deadline: Deadline) -> Result<UnixStream> {
        self.accept_wait(Wait::Until(deadline))
    }

    /// [`accept_deadline`](Self::accept_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`accept_deadline`](Self::accept_deadline).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<UnixStream> {
        self.accept_deadline(Deadline::after(timeout))
    }

    /// Accept a connection if one is waiting, without waiting, whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when none is waiting, and as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<UnixStream> {
        self.accept_wait(Wait::Try)
    }

    fn accept_wait(&self, wait: Wait) -> Result<UnixStream> {
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
        Ok(stream)
    }

    /// Switch non-blocking mode (for [`accept`](Self::accept)). The descriptor itself is
    /// always `O_NONBLOCK` while owned by this type (accept waits with `poll`); it gets
    /// this mode back when converted into an [`OwnedFd`] or a `std` listener.
    pub fn set_nonblocking(&mut self, yes: bool) {
        self.nonblocking = yes;
    }

    /// Whether [`accept`](Self::accept) is non-blocking.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking
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
        let _ = set_fd_nonblocking(fd.as_fd(), nonblocking);
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
impl From<OwnedFd> for UnixListener {
    fn from(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        let _ = set_fd_nonblocking(fd.as_fd(), true);
        Self {
            fd,
            owned: None,
            nonblocking,
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
        Self::from(OwnedFd::from(l))
    }
}

/// The socket file is left in place (std does not remove it).
impl From<UnixListener> for std::os::unix::net::UnixListener {
    fn from(l: UnixListener) -> Self {
        Self::from(l.into_fd())
    }
}

/// A connected Unix stream socket. Closed on drop.
///
/// Implements [`Read`] and [`Write`] (also for `&UnixStream`), honouring the read and write
/// timeouts; every send uses `MSG_NOSIGNAL`, so a closed peer is [`Error::PeerClosed`]
/// (`BrokenPipe`), never a `SIGPIPE`.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::UnixStream;
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"hi")?;
/// let mut buf = [0u8; 2];
/// b.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// drop(b);
/// // No SIGPIPE: a typed error.
/// assert!(matches!(a.send(b"x"), Err(ipcraft_socket::Error::PeerClosed { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UnixStream {
    fd: OwnedFd,
    nonblocking: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.fd.as_raw_fd())
            .field("nonblocking", &self.nonblocking)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .finish()
    }
}

impl UnixStream {
    fn from_fd(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        Self {
            fd,
            nonblocking,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Connect to the listener at a filesystem path.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Connect to a path or abstract address, waiting while the listener's backlog is full.
    ///
    /// See `connect(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `connect`: `ENOENT` (no such file), `ECONNREFUSED` (nobody
    /// listening: a stale socket file, or a bound socket not yet listening), `EACCES` (no
    /// write permission on the socket file).
    pub fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        let unix_addr = addr.to_unix_addr()?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(Error::sys("socket"))?;
        loop {
            match connect(fd.as_raw_fd(), &unix_addr) {
                Ok(()) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys_on("connect", addr)(e)),
            }
        }
        Ok(Self::from_fd(fd))
    }

    /// Connect, waiting at most until `deadline` (monotonic clock) while the listener's
    /// backlog is full. A Unix socket connect does not queue when the backlog is full
    /// (`EAGAIN` in non-blocking mode), so this retries with a short back-off (1 to 10 ms).
    /// The stream is blocking.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`connect_addr`](Self::connect_addr).
    pub fn connect_deadline(addr: &SocketAddr, deadline: Deadline) -> Result<Self> {
        Ok(Self::from_fd(connect_unix(
            addr,
            SockType::Stream,
            deadline,
        )?))
    }

    /// [`connect_deadline`](Self::connect_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`connect_deadline`](Self::connect_deadline).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::after(timeout))
    }

    /// Two connected streams (`socketpair(2)`), close-on-exec, blocking; hand one to a
    /// child process.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair` (`EMFILE`/`ENFILE`).
    #[doc(alias = "socketpair")]
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((Self::from_fd(a), Self::from_fd(b)))
    }

    /// The peer's process id, user id and group id, as the kernel captured them at connect
    /// time (see [`PeerCredentials`]).
    ///
    /// See `SO_PEERCRED` in `unix(7)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt`.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        peer_credentials(&self.fd)
    }

    /// A pidfd for the peer process (`SO_PEERPIDFD`, Linux 6.5+), close-on-exec: unlike
    /// [`PeerCredentials::pid`], it cannot come to mean another process when the peer exits
    /// and its pid is reused. Like the credentials, it names the process that connected (or
    /// listened), captured at connect time. Use it with `pidfd_send_signal(2)`, `poll(2)`
    /// (readable when the process exits) or `/proc/self/fdinfo`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt`: `ENOPROTOOPT` on kernels before 6.5.
    #[doc(alias = "SO_PEERPIDFD")]
    pub fn peer_pidfd(&self) -> Result<OwnedFd> {
        nix::sys::socket::getsockopt(&self.fd, nix::sys::socket::sockopt::PeerPidfd)
            .map_err(Error::sys("getsockopt(SO_PEERPIDFD)"))
    }

    /// This end's address (usually unnamed for a client).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let a: UnixAddr = getsockname(self.fd.as_raw_fd()).map_err(Error::sys("getsockname"))?;
        Ok(SocketAddr::from_unix_addr(&a))
    }

    /// The peer's address (the listener's, seen from a client).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getpeername` (`ENOTCONN`).
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        let a: UnixAddr = getpeername(self.fd.as_raw_fd()).map_err(Error::sys("getpeername"))?;
        Ok(SocketAddr::from_unix_addr(&a))
    }

    /// Switch `O_NONBLOCK` on or off. It belongs to the open file description, so it also
    /// changes for every duplicate of this descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn set_nonblocking(&mut self, yes: bool) -> Result<()> {
        set_fd_nonblocking(self.fd.as_fd(), yes)?;
        self.nonblocking = yes;
        Ok(())
    }

    /// Whether this stream was last set (or found) non-blocking.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking
    }

    /// Make [`Read`] and [`recv`](Self::recv) wait at most `timeout` per call (`None`:
    /// forever, the default), on the monotonic clock.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Make [`Write`] and [`send`](Self::send) wait at most `timeout` per call.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn read_wait(&self) -> Wait {
        match self.read_timeout {
            Some(t) => Wait::Until(Deadline::after(t)),
            None => Wait::Blocking,
        }
    }

    fn write_wait(&self) -> Wait {
        match self.write_timeout {
            Some(t) => Wait::Until(Deadline::after(t)),
            None => Wait::Blocking,
        }
    }

    fn send_wait(&self, buf: &[u8], wait: Wait) -> Result<usize> {
        io_wait(self.fd.as_fd(), Interest::Writable, wait, "send", |f| {
            send(self.fd.as_raw_fd(), buf, f | MsgFlags::MSG_NOSIGNAL)
        })
    }

    fn recv_wait(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        io_wait(self.fd.as_fd(), Interest::Readable, wait, "recv", |f| {
            recv(self.fd.as_raw_fd(), buf, f)
        })
    }

    /// Send some of `buf` (`send(2)` with `MSG_NOSIGNAL`); returns how much was sent. Waits
    /// at most the write timeout, if set.
    ///
    /// # Errors
    ///
    /// [`Error::PeerClosed`], [`Error::ConnectionReset`], [`Error::TimedOut`],
    /// [`Error::WouldBlock`] (non-blocking mode), [`Error::Sys`].
    pub fn send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, self.write_wait())
    }

    /// Send some of `buf`, waiting at most until `deadline` for room.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        self.send_wait(buf, Wait::Until(deadline))
    }

    /// Send what fits now, without waiting (`MSG_DONTWAIT`), whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is no room, and as [`send`](Self::send).
    pub fn try_send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, Wait::Try)
    }

    /// Receive what is available into `buf`; `Ok(0)` is end of stream. Waits at most the
    /// read timeout, if set.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionReset`], [`Error::TimedOut`], [`Error::WouldBlock`]
    /// (non-blocking mode), [`Error::Sys`].
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, self.read_wait())
    }

    /// Receive, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_wait(buf, Wait::Until(deadline))
    }

    /// Receive what is available now, without waiting (`MSG_DONTWAIT`), whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when nothing is there, and as [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, Wait::Try)
    }

    fn send_fds_wait(&self, buf: &[u8], fds: &[BorrowedFd<'_>], wait: Wait) -> Result<usize> {
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        if !fds.is_empty() && buf.is_empty() {
            return Err(Error::FdsWithoutData);
        }
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let iov = [IoSlice::new(buf)];
        let cmsgs_storage = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs_storage };
        io_wait(self.fd.as_fd(), Interest::Writable, wait, "sendmsg", |f| {
            sendmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                f | MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })
    }

    /// Send some of `buf` together with descriptors (`SCM_RIGHTS`, `MSG_NOSIGNAL`); returns
    /// how many bytes were sent. The descriptors travel with the first byte sent; the
    /// receiver gets duplicates (the caller keeps its own). Waits at most the write timeout.
    ///
    /// See `sendmsg(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// - [`Error::TooManyFds`] above [`SCM_MAX_FD`], [`Error::FdsWithoutData`] for
    ///   descriptors with an empty `buf`: nothing is sent;
    /// - as [`send`](Self::send) (`ETOOMANYREFS` as [`Error::Sys`] when descriptors in
    ///   flight nest too deep).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::UnixStream;
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let (r, mut w) = std::io::pipe()?;
    /// a.send_with_fds(b"r", &[r.as_fd()])?;
    /// let mut buf = [0u8; 1];
    /// let (n, fds) = b.recv_with_fds(&mut buf, 4)?;
    /// assert_eq!((n, fds.len()), (1, 1));
    /// w.write_all(b"through a passed pipe")?;
    /// drop(w);
    /// let mut text = String::new();
    /// std::io::PipeReader::from(fds.into_iter().next().unwrap()).read_to_string(&mut text)?;
    /// assert_eq!(text, "through a passed pipe");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "SCM_RIGHTS")]
    #[doc(alias = "sendmsg")]
    pub fn send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.send_fds_wait(buf, fds, self.write_wait())
    }

    /// [`send_with_fds`](Self::send_with_fds), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds), and [`Error::TimedOut`].
    pub fn send_with_fds_deadline(
        &self,
        buf: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<usize> {
        self.send_fds_wait(buf, fds, Wait::Until(deadline))
    }

    /// [`send_with_fds`](Self::send_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds), and [`Error::WouldBlock`].
    pub fn try_send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.send_fds_wait(buf, fds, Wait::Try)
    }

    fn recv_fds_wait(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        wait: Wait,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        let max_fds = max_fds.min(SCM_MAX_FD);
        let got = io_wait(self.fd.as_fd(), Interest::Readable, wait, "recvmsg", |f| {
            sys::recv_with_fds(self.fd.as_fd(), buf, max_fds, f.bits())
        })?;
        if got.truncated || got.fds.len() > max_fds {
            // Dropping `got.fds` closes every descriptor that arrived.
            return Err(Error::FdsTruncated {
                received: got.len,
                max_fds,
            });
        }
        Ok((got.len, got.fds))
    }

    /// Receive bytes into `buf` and the descriptors sent with them (at most `max_fds`, capped
    /// at [`SCM_MAX_FD`]); `Ok((0, _))` is end of stream. Every descriptor received is
    /// close-on-exec (`MSG_CMSG_CLOEXEC`) and owned by the caller. Waits at most the read
    /// timeout.
    ///
    /// On a stream socket one call returns the descriptors of at most one `sendmsg`, and
    /// never reads past the bytes that carried them; descriptors sent while this side reads
    /// with plain [`recv`](Self::recv) or [`Read`] are closed by the kernel.
    ///
    /// See `recvmsg(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// - [`Error::FdsTruncated`] when more descriptors arrived than `max_fds` (or the process
    ///   is at its descriptor limit, `RLIMIT_NOFILE`): every one that did arrive is closed,
    ///   none leaks; the bytes were received into `buf`;
    /// - as [`recv`](Self::recv).
    #[doc(alias = "recvmsg")]
    #[doc(alias = "MSG_CMSG_CLOEXEC")]
    pub fn recv_with_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        self.recv_fds_wait(buf, max_fds, self.read_wait())
    }

    /// [`recv_with_fds`](Self::recv_with_fds), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_with_fds`](Self::recv_with_fds), and [`Error::TimedOut`].
    pub fn recv_with_fds_deadline(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        deadline: Deadline,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        self.recv_fds_wait(buf, max_fds, Wait::Until(deadline))
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
        self.recv_fds_wait(buf, max_fds, Wait::Try)
    }

    /// Send one frame (the length-prefixed format of [`FrameWriter`](crate::FrameWriter),
    /// from `ipcraft-core`'s codec) with descriptors attached to its first bytes; receive it
    /// with [`recv_frame_with_fds`](Self::recv_frame_with_fds). Waits while the socket is
    /// full, at most the write timeout for the whole frame.
    ///
    /// Do not mix with a [`FrameReader`](crate::FrameReader) on the receiving side: it reads
    /// ahead with plain reads, and the kernel closes descriptors that arrive on a plain read.
    ///
    /// # Errors
    ///
    /// - [`Error::Frame`] with [`FrameError::Oversized`](crate::FrameError::Oversized) above
    ///   [`DEFAULT_MAX_FRAME`](crate::DEFAULT_MAX_FRAME), [`Error::TooManyFds`]: nothing is
    ///   sent;
    /// - [`Error::TimedOut`] or another error part-way through the frame: the stream then
    ///   carries half a frame and cannot be used for frames any more;
    /// - as [`send_with_fds`](Self::send_with_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::UnixStream;
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let (r, _w) = std::io::pipe()?;
    /// a.send_frame_with_fds(b"a pipe for you", &[r.as_fd()])?;
    /// a.send_frame_with_fds(b"", &[])?;
    /// let (msg, fds) = b.recv_frame_with_fds(1024, 4)?.unwrap();
    /// assert_eq!((&msg[..], fds.len()), (&b"a pipe for you"[..], 1));
    /// let (msg, fds) = b.recv_frame_with_fds(1024, 4)?.unwrap();
    /// assert_eq!((msg.len(), fds.len()), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_frame_with_fds(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let header = ipcraft_core::frame::encode_header(payload.len(), crate::DEFAULT_MAX_FRAME)
            .map_err(Error::Frame)?;
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        let wait = Wait::Until(Deadline::from_timeout(self.write_timeout));
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsgs_storage = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs_storage };
        let iov = [IoSlice::new(&header), IoSlice::new(payload)];
        let total = header.len() + payload.len();
        let mut sent = io_wait(self.fd.as_fd(), Interest::Writable, wait, "sendmsg", |f| {
            sendmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                f | MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })?;
        while sent < total {
            let rest = if sent < header.len() {
                let mut v = header[sent..].to_vec();
                v.extend_from_slice(payload);
                v
            } else {
                payload[sent - header.len()..].to_vec()
            };
            sent += self.send_wait(&rest, wait)?;
        }
        Ok(())
    }

    /// Receive one frame sent with [`send_frame_with_fds`](Self::send_frame_with_fds) (or
    /// by any writer of the same format), with the descriptors that came with it (at most
    /// `max_fds`, close-on-exec). `Ok(None)` is a clean end of stream at a frame boundary.
    /// Waits at most the read timeout for the whole frame.
    ///
    /// # Errors
    ///
    /// - [`Error::Frame`] with [`FrameError::IncomingOversized`](crate::FrameError) when the
    ///   frame announces more than `max_frame` bytes, or
    ///   [`FrameError::Truncated`](crate::FrameError) when the stream ends inside a frame;
    ///   descriptors that came with it are closed;
    /// - [`Error::FdsTruncated`] when more than `max_fds` descriptors came: all are closed;
    /// - [`Error::TimedOut`] and the errors of [`recv_with_fds`](Self::recv_with_fds). After
    ///   any error the stream cannot be used for frames any more.
    pub fn recv_frame_with_fds(
        &self,
        max_frame: u32,
        max_fds: usize,
    ) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let wait = Wait::Until(Deadline::from_timeout(self.read_timeout));
        let mut fds = Vec::new();
        let mut header = [0u8; ipcraft_core::frame::HEADER_LEN];
        let mut got = 0;
        while got < header.len() {
            let n = self.recv_piece(&mut header[got..], max_fds, &mut fds, wait)?;
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(Error::Frame(FrameError::Truncated {
                    expected: header.len(),
                    received: got,
                }));
            }
            got += n;
        }
        let len = ipcraft_core::frame::decode_header(header, max_frame).map_err(Error::Frame)?;
        let mut payload = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = self.recv_piece(&mut payload[got..], max_fds, &mut fds, wait)?;
            if n == 0 {
                return Err(Error::Frame(FrameError::Truncated {
                    expected: header.len() + len,
                    received: header.len() + got,
                }));
            }
            got += n;
        }
        Ok(Some((payload, fds)))
    }

    fn recv_piece(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        fds: &mut Vec<OwnedFd>,
        wait: Wait,
    ) -> Result<usize> {
        let room = max_fds.saturating_sub(fds.len());
        match self.recv_fds_wait(buf, room, wait) {
            Ok((n, more)) => {
                fds.extend(more);
                Ok(n)
            }
            Err(Error::FdsTruncated { received, .. }) => {
                Err(Error::FdsTruncated { received, max_fds })
            }
            Err(e) => Err(e),
        }
    }

    /// Shut down reading, writing or both (`shutdown(2)`): the peer sees end of stream.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        use nix::sys::socket::Shutdown as S;
        let how = match how {
            Shutdown::Read => S::Read,
            Shutdown::Write => S::Write,
            Shutdown::Both => S::Both,
        };
        nix::sys::socket::shutdown(self.fd.as_raw_fd(), how).map_err(Error::sys("shutdown"))
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), with the same settings.
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
            nonblocking: self.nonblocking,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
        })
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.recv(buf)?)
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.send(buf)?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = io_wait(
            self.fd.as_fd(),
            Interest::Writable,
            self.write_wait(),
            "sendmsg",
            |f| {
                sendmsg::<UnixAddr>(
                    self.fd.as_raw_fd(),
                    bufs,
                    &[],
                    f | MsgFlags::MSG_NOSIGNAL,
                    None,
                )
            },
        )?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Takes ownership of a connected stream socket (its `O_NONBLOCK` flag is read once, here).
/// The descriptor is not checked: calls on another kind of file fail with [`Error::Sys`].
impl From<OwnedFd> for UnixStream {
    fn from(fd: OwnedFd) -> Self {
        Self::from_fd(fd)
    }
}

impl From<UnixStream> for OwnedFd {
    fn from(s: UnixStream) -> OwnedFd {
        s.fd
    }
}

impl From<std::os::unix::net::UnixStream> for UnixStream {
    fn from(s: std::os::unix::net::UnixStream) -> Self {
        Self::from_fd(OwnedFd::from(s))
    }
}

impl From<UnixStream> for std::os::unix::net::UnixStream {
    fn from(s: UnixStream) -> Self {
        Self::from(s.fd)
    }
}

/// Connect a new Unix socket of type `ty` to `addr`, retrying while the listener's backlog
/// is full until `deadline`; the socket is blocking and close-on-exec.
pub(crate) fn connect_unix(addr: &SocketAddr, ty: SockType, deadline: Deadline) -> Result<OwnedFd> {
    let unix_addr = addr.to_unix_addr()?;
    let fd = socket(
        AddressFamily::Unix,
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(Error::sys("socket"))?;
    let mut backoff = Duration::from_millis(1);
    loop {
        match connect(fd.as_raw_fd(), &unix_addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let Some(left) = deadline.remaining() else {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(10));
                    continue;
                };
                if left.is_zero() {
                    return Err(Error::TimedOut { op: "connect" });
                }
                std::thread::sleep(backoff.min(left));
                backoff = (backoff * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::sys_on("connect", addr)(e)),
        }
    }
    set_fd_nonblocking(fd.as_fd(), false)?;
    Ok(fd)
}
