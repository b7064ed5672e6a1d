//! Binding: [`BindOptions`], the socket file a binder owns, and the shared bind and
//! connect steps of every Unix socket type.

use crate::addr::SocketAddr;
use crate::cred::PeerPolicy;
use crate::error::{Error, Result};
use crate::listener::UnixListener;
use crate::start_lock::StartLock;
use crate::wait::set_fd_nonblocking;
use ipcraft_core::{Deadline, SysError};
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, bind, connect, listen, socket};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most descriptors one message carries (`SCM_MAX_FD` in the kernel, see `unix(7)`).
pub const SCM_MAX_FD: usize = 253;

/// The default mode of a listener's socket file: owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

/// The default `listen(2)` backlog.
pub const DEFAULT_BACKLOG: i32 = 128;

/// Options for binding any Unix socket: the socket file's mode, and for listeners the
/// backlog, the initial blocking mode and a peer policy. One type for all three kinds, used
/// the same way: [`UnixListener::bind_with`], [`SeqpacketListener::bind_with`](crate::SeqpacketListener::bind_with) and
/// [`UnixDatagram::bind_with`](crate::UnixDatagram::bind_with) (and `bind_reclaiming_stale` on both listeners); `bind(path)`
/// and `bind_addr(&addr)` on each use [`BindOptions::new`].
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{BindOptions, SocketAddr, UnixListener};
/// use std::os::unix::fs::PermissionsExt;
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-opts-{}.sock", std::process::id()));
/// let options = BindOptions::new().mode(0o660);
/// let listener = UnixListener::bind_with(&options, &SocketAddr::from_path(&path)?)?;
/// let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
/// assert_eq!(mode, 0o660);
/// drop(listener);
/// assert!(!path.exists()); // the binder removes its socket file
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until a socket is bound with them"]
pub struct BindOptions {
    mode: u32,
    backlog: i32,
    nonblocking: bool,
    policy: Option<PeerPolicy>,
}

impl Default for BindOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl BindOptions {
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

    /// The `listen(2)` backlog (capped by `/proc/sys/net/core/somaxconn`); listeners only.
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Start in non-blocking mode: a listener's `accept` fails with [`Error::WouldBlock`]
    /// when no connection is waiting; a datagram socket's receives and sends do when they
    /// would wait.
    pub fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Refuse peers this policy does not allow (see [`UnixListener::set_peer_policy`]);
    /// listeners only.
    pub fn peer_policy(mut self, policy: PeerPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    pub(crate) fn mode_bits(&self) -> u32 {
        self.mode
    }

    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking
    }

    /// A listening stream socket (see [`UnixListener::bind_with`]).
    pub(crate) fn bind_addr(&self, addr: &SocketAddr) -> Result<UnixListener> {
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
            nonblocking: ipcraft_core::FlagSetting::new(self.nonblocking),
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

impl BindOptions {
    /// See [`UnixListener::bind_reclaiming_stale`].
    pub(crate) fn bind_reclaiming_stale(&self, path: impl AsRef<Path>) -> Result<UnixListener> {
        self.reclaim_typed(path.as_ref(), SockType::Stream)
    }

    pub(crate) fn reclaim_typed(&self, path: &Path, ty: SockType) -> Result<UnixListener> {
        self.reclaim_with(path, |addr| self.bind_typed(addr, ty))
    }

    /// Bind with `bind` at `path`, taking over a stale socket file there (see
    /// [`UnixListener::bind_reclaiming_stale`]); `bind` makes the socket of whatever type.
    pub(crate) fn reclaim_with<T>(
        &self,
        path: &Path,
        bind: impl Fn(&SocketAddr) -> Result<T>,
    ) -> Result<T> {
        use std::os::unix::fs::FileTypeExt;
        let addr = SocketAddr::from_path(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        // Held until the new socket listens (or we give up), then removed and released.
        let _lock = StartLock::acquire(Path::new(&lock_path))?;
        match bind(&addr) {
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
        // A stream probe: a stale file of any type refuses it (ECONNREFUSED); a live socket
        // of another type (a listener, or a bound datagram socket) answers EPROTOTYPE, which
        // counts as live like any other answer.
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
        bind(&addr)
        // `_lock` is removed and released here, after the new socket is bound.
    }
}

/// The socket file a listener created, removed on drop if it is still the same file.
pub(crate) struct OwnedFile {
    pub(crate) path: PathBuf,
    id: Option<(u64, u64)>,
    pub(crate) keep: bool,
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

/// Connect a new Unix socket of type `ty` to `addr`, retrying while the listener's backlog
/// is full until `deadline`, then check that the listener belongs to a `trusted` owner
/// (`SO_PEERCRED`) before anything is sent; the socket is blocking and close-on-exec. The one
/// connect of every connection-oriented Unix socket type (the async connect of the `tokio`
/// feature takes the same steps, [`PendingConnect`], sleeping on the runtime's timer instead).
pub(crate) fn connect_unix(
    addr: &SocketAddr,
    ty: SockType,
    deadline: Deadline,
    trusted: &ipcraft_core::TrustedOwners,
) -> Result<OwnedFd> {
    let mut pending = PendingConnect::new(addr, ty)?;
    loop {
        if pending.attempt()? {
            break;
        }
        std::thread::sleep(pending.pause(deadline)?);
    }
    pending.finish(trusted)
}

/// A non-blocking Unix socket on its way to `addr`: [`attempt`](Self::attempt) the connect
/// until it succeeds, pausing as [`pause`](Self::pause) says while the backlog is full (a
/// Unix connect does not queue then: `EAGAIN`), then [`finish`](Self::finish).
pub(crate) struct PendingConnect<'a> {
    fd: OwnedFd,
    addr: &'a SocketAddr,
    unix_addr: nix::sys::socket::UnixAddr,
    backoff: Duration,
}

impl<'a> PendingConnect<'a> {
    pub(crate) fn new(addr: &'a SocketAddr, ty: SockType) -> Result<Self> {
        let unix_addr = addr.to_unix_addr()?;
        let fd = socket(
            AddressFamily::Unix,
            ty,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(Error::sys("socket"))?;
        Ok(Self {
            fd,
            addr,
            unix_addr,
            backoff: Duration::from_millis(1),
        })
    }

    /// One `connect(2)` (retried at once on `EINTR`): `Ok(true)` connected, `Ok(false)`
    /// the backlog is full (try again after [`pause`](Self::pause)).
    pub(crate) fn attempt(&mut self) -> Result<bool> {
        loop {
            match connect(self.fd.as_raw_fd(), &self.unix_addr) {
                Ok(()) => return Ok(true),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(Error::sys_on("connect", self.addr)(e)),
            }
        }
    }

    /// How long to wait before the next attempt: 1 ms, doubling up to 10 ms, never past
    /// `deadline`.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] once `deadline` has passed.
    pub(crate) fn pause(&mut self, deadline: Deadline) -> Result<Duration> {
        let pause = match deadline.remaining() {
            None => self.backoff,
            Some(left) if left.is_zero() => return Err(Error::TimedOut { op: "connect" }),
            Some(left) => self.backoff.min(left),
        };
        self.backoff = (self.backoff * 2).min(Duration::from_millis(10));
        Ok(pause)
    }

    /// The connected socket, blocking, once its listener's owner is found trusted.
    pub(crate) fn finish(self, trusted: &ipcraft_core::TrustedOwners) -> Result<OwnedFd> {
        set_fd_nonblocking(self.fd.as_fd(), false)?;
        crate::trust::check_listener(&self.fd, self.addr, trusted)?;
        Ok(self.fd)
    }
}

/// The old name of [`BindOptions`], from when only listeners took options.
#[deprecated(
    since = "0.2.0",
    note = "renamed `BindOptions`: one options type binds every socket"
)]
pub type ListenerOptions = BindOptions;
