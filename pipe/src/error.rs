//! The error type of `ipcraft-pipe`.

use ipcraft_core::SysError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong, with what was asked and what is allowed.
///
/// Converts into [`std::io::Error`] with a matching [`io::ErrorKind`] (`BrokenPipe`,
/// `TimedOut`, `WouldBlock`, `AlreadyExists`, `InvalidInput`, or the errno's kind).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; the [`SysError`] names it, what it was applied to, and the errno.
    Sys(SysError),
    /// A descriptor to adopt as a pipe end (`TryFrom<OwnedFd>`) is not a pipe or FIFO; it is
    /// handed back untouched.
    NotAPipe {
        /// The descriptor, still open.
        fd: std::os::fd::OwnedFd,
    },
    /// An open refused a FIFO whose owner is not trusted (it may have been made first by
    /// another user, in a directory everyone can write); the error names the owner and says
    /// what to do.
    Untrusted(ipcraft_core::TrustError),
    /// The read end of the pipe is closed: nobody will read what is written (`EPIPE`).
    BrokenPipe,
    /// The call did not complete before its timeout or deadline.
    TimedOut {
        /// What timed out.
        op: &'static str,
    },
    /// A `try_` call found the pipe not ready; nothing was transferred.
    WouldBlock {
        /// What would have blocked.
        op: &'static str,
    },
    /// An atomic write larger than `PIPE_BUF`, which the kernel cannot write atomically.
    AtomicWriteTooLarge {
        /// The length asked for.
        len: usize,
        /// `PIPE_BUF`.
        max: usize,
    },
    /// A pipe capacity above the system limit `/proc/sys/fs/pipe-max-size`.
    CapacityAboveLimit {
        /// The capacity asked for, in bytes.
        requested: usize,
        /// The system limit, in bytes.
        limit: usize,
    },
    /// Something already exists at the path where a FIFO was to be created.
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },
    /// The path exists but is not a FIFO, so it is neither opened as one nor replaced.
    NotAFifo {
        /// The path.
        path: PathBuf,
    },
    /// A path longer than the kernel accepts.
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// The length of the path, or of its longest component, in bytes.
        len: usize,
        /// The limit: 4095 bytes for a path, 255 for one component.
        max: usize,
        /// `"path"` or `"path component"`.
        what: &'static str,
    },
    /// A path the kernel cannot take: empty, or with a NUL byte.
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file mode with bits outside `0o7777`.
    InvalidMode {
        /// The mode asked for.
        mode: u32,
    },
    /// Nobody opened the other end of the FIFO before the timeout.
    NoPeer {
        /// The FIFO's path.
        path: PathBuf,
        /// `"writer"` when a reader waited, `"reader"` when a writer waited.
        missing: &'static str,
        /// How long the open waited.
        waited: Duration,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The [`io::ErrorKind`] that best describes this error.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::Sys(e) => e.kind(),
            Self::Untrusted(_) => io::ErrorKind::PermissionDenied,
            Self::BrokenPipe => io::ErrorKind::BrokenPipe,
            Self::TimedOut { .. } | Self::NoPeer { .. } => io::ErrorKind::TimedOut,
            Self::WouldBlock { .. } => io::ErrorKind::WouldBlock,
            Self::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Self::AtomicWriteTooLarge { .. }
            | Self::CapacityAboveLimit { .. }
            | Self::NotAFifo { .. }
            | Self::NotAPipe { .. }
            | Self::PathTooLong { .. }
            | Self::InvalidPath { .. }
            | Self::InvalidMode { .. } => io::ErrorKind::InvalidInput,
        }
    }

    pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno))
    }

    pub(crate) fn sys_on(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno).on(path.display()))
    }

    /// A std I/O error from a file or `/proc` read, kept with its errno.
    pub(crate) fn from_io(op: &'static str, e: &io::Error) -> Self {
        Self::Sys(SysError::from_io(op, e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::NotAPipe { fd } => write!(
                f,
                "descriptor {} is not a pipe or FIFO: only those can be adopted as a pipe end",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ),
            Self::Untrusted(e) => e.fmt(f),
            Self::BrokenPipe => {
                f.write_str("broken pipe: the read end is closed, so nothing written will be read")
            }
            Self::TimedOut { op } => write!(f, "{op} timed out"),
            Self::WouldBlock { op } => write!(f, "{op} would block"),
            Self::AtomicWriteTooLarge { len, max } => write!(
                f,
                "atomic write of {len} bytes is over PIPE_BUF ({max} bytes), the most a pipe \
                 writes atomically; split the message or use framing"
            ),
            Self::CapacityAboveLimit { requested, limit } => write!(
                f,
                "pipe capacity of {requested} bytes is above the system limit of {limit} bytes \
                 (/proc/sys/fs/pipe-max-size); ask for at most {limit}, or raise the limit with \
                 `sysctl fs.pipe-max-size=N` as root"
            ),
            Self::AlreadyExists { path } => write!(
                f,
                "{} already exists; remove it, or use Fifo::create_or_replace to replace a \
                 stale FIFO",
                path.display()
            ),
            Self::NotAFifo { path } => write!(
                f,
                "{} exists and is not a FIFO; it was left untouched",
                path.display()
            ),
            Self::PathTooLong {
                path,
                len,
                max,
                what,
            } => write!(
                f,
                "{what} of {len} bytes in {} is too long: the kernel accepts at most {max} bytes",
                path.display()
            ),
            Self::InvalidPath { path, reason } => {
                write!(f, "invalid path {:?}: {reason}", path)
            }
            Self::InvalidMode { mode } => write!(
                f,
                "invalid file mode {mode:#o}: only permission bits (0o7777) are allowed"
            ),
            Self::NoPeer {
                path,
                missing,
                waited,
            } => write!(
                f,
                "no {missing} opened FIFO {} within {waited:?}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sys(e) => Some(e),
            Self::Untrusted(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SysError> for Error {
    fn from(e: SysError) -> Self {
        Self::Sys(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Sys(e) => e.into(),
            other => io::Error::new(other.kind(), other),
        }
    }
}
