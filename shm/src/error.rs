//! The error type of `ipcraft-shm`.

use ipcraft_core::{NameError, SysError};
use std::fmt;
use std::io;
use std::time::Duration;

/// What went wrong, with what was asked and what is allowed.
///
/// Converts into [`std::io::Error`] with a matching [`io::ErrorKind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; the [`SysError`] names it, what it was applied to, and the errno.
    Sys(SysError),
    /// The segment name breaks the POSIX IPC name rules; the error says which.
    Name(NameError),
    /// A segment of zero bytes was asked for.
    ZeroSize,
    /// More bytes than the file system behind `/dev/shm` has free (a larger segment would be
    /// created sparse and kill the process with SIGBUS when touched).
    TooLarge {
        /// Bytes asked for (data plus the ipcraft header).
        requested: u64,
        /// Bytes free in `/dev/shm`.
        available: u64,
    },
    /// A segment of that name already exists.
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// No segment of that name exists.
    NotFound {
        /// The name.
        name: String,
    },
    /// The segment is not an ipcraft segment: no ipcraft header at its start (or its creator
    /// died before writing one).
    NotIpcraft {
        /// The name, or `"<fd>"` for a descriptor.
        name: String,
    },
    /// An ipcraft segment of another layout version.
    IncompatibleVersion {
        /// The version found in the header.
        found: u32,
        /// The version this crate reads.
        expected: u32,
    },
    /// The segment holds another kind of object than the one expected (the header's tag).
    WrongTag {
        /// The tag found in the header.
        found: u64,
        /// The tag expected.
        expected: u64,
    },
    /// The segment is smaller than it must be: than its header says, or than claimed.
    TooSmall {
        /// Its size in bytes.
        actual: u64,
        /// The size it must have at least.
        expected: u64,
    },
    /// The segment was not published as ready before the timeout.
    NotReady {
        /// The name.
        name: String,
        /// How long the open waited.
        waited: Duration,
    },
    /// The process that was initializing the segment died before publishing it.
    CreatorDied {
        /// The name.
        name: String,
    },
    /// A descriptor to adopt as [`ByteLocks`](crate::ByteLocks) (`TryFrom<OwnedFd>`) is not a
    /// regular file open for reading and writing; it is handed back untouched.
    NotLockable {
        /// The descriptor, still open.
        fd: std::os::fd::OwnedFd,
    },
    /// A received memfd lacks seals that make it safe to map.
    Unsealed {
        /// The seals that are missing, such as `"F_SEAL_SHRINK"`.
        missing: &'static str,
    },
    /// An access outside the segment's data area.
    OutOfBounds {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the data area.
        size: usize,
    },
    /// A typed access at an offset not aligned for the type.
    Misaligned {
        /// Offset of the access (from the start of the data area, which is 64-byte aligned).
        offset: usize,
        /// The alignment the type needs.
        align: usize,
    },
    /// A write, or a shared reference for atomic updates, on a read-only mapping.
    ReadOnly,
    /// An open refused to join an existing segment: another user owns it, or (for
    /// `open_or_create`) its mode is wider than the one asked for. The error names the owner
    /// and mode, and says what to do.
    Untrusted(ipcraft_core::TrustError),
    /// A mode with bits outside `0o777`.
    BadMode {
        /// The mode asked for.
        mode: u32,
    },
    /// Only the creator of a named, unsealed segment can grow it.
    CannotGrow {
        /// Why.
        reason: &'static str,
    },
    /// Huge pages were asked for but the system has none reserved.
    HugePagesUnavailable,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The [`io::ErrorKind`] that best describes this error.
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Self::Sys(e) => e.kind(),
            Self::AlreadyExists { .. } => K::AlreadyExists,
            Self::NotFound { .. } => K::NotFound,
            Self::NotReady { .. } => K::TimedOut,
            Self::ReadOnly | Self::Untrusted(_) => K::PermissionDenied,
            Self::TooLarge { .. } | Self::HugePagesUnavailable => K::OutOfMemory,
            Self::NotIpcraft { .. }
            | Self::IncompatibleVersion { .. }
            | Self::WrongTag { .. }
            | Self::TooSmall { .. }
            | Self::CreatorDied { .. }
            | Self::Unsealed { .. } => K::InvalidData,
            Self::NotLockable { .. } => K::InvalidInput,
            Self::Name(_)
            | Self::ZeroSize
            | Self::OutOfBounds { .. }
            | Self::Misaligned { .. }
            | Self::CannotGrow { .. }
            | Self::BadMode { .. } => K::InvalidInput,
        }
    }

    pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno))
    }

    pub(crate) fn sys_on(op: &'static str, what: &str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno).on(what))
    }

    pub(crate) fn from_io(op: &'static str, e: &io::Error) -> Self {
        Self::Sys(SysError::from_io(op, e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::Name(e) => e.fmt(f),
            Self::ZeroSize => f.write_str("a segment must hold at least one byte"),
            Self::TooLarge {
                requested,
                available,
            } => write!(
                f,
                "a segment of {requested} bytes does not fit in /dev/shm, which has {available} \
                 bytes free; ask for less, or remount it larger (mount -o remount,size=N /dev/shm)"
            ),
            Self::AlreadyExists { name } => write!(
                f,
                "shared memory segment {name} already exists; open it, use open_or_create, or \
                 remove a stale one with ipcraft_shm::unlink or remove_stale"
            ),
            Self::NotFound { name } => write!(f, "no shared memory segment named {name}"),
            Self::NotIpcraft { name } => write!(
                f,
                "{name} is not an ipcraft segment (no ipcraft header; or its creator died before \
                 writing one); open it with SegmentOptions::raw(true) to map its bytes as they are"
            ),
            Self::IncompatibleVersion { found, expected } => write!(
                f,
                "segment has ipcraft layout version {found}; this version of ipcraft-shm reads \
                 version {expected}"
            ),
            Self::WrongTag { found, expected } => write!(
                f,
                "segment holds an object tagged {found:#x}, not the expected {expected:#x}"
            ),
            Self::TooSmall { actual, expected } => write!(
                f,
                "segment has {actual} bytes, fewer than the {expected} it must have"
            ),
            Self::NotReady { name, waited } => write!(
                f,
                "segment {name} was not published as ready within {waited:?}"
            ),
            Self::CreatorDied { name } => write!(
                f,
                "the process initializing segment {name} died before publishing it; remove it \
                 with remove_stale or unlink and create it again"
            ),
            Self::NotLockable { fd } => write!(
                f,
                "descriptor {} is not a regular file open for reading and writing: byte locks \
                 need one (ByteLocks::new opens one from a segment)",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ),
            Self::Unsealed { missing } => write!(
                f,
                "received memfd is not sealed with {missing}: a peer could shrink or grow it and \
                 crash us with SIGBUS"
            ),
            Self::OutOfBounds { offset, len, size } => write!(
                f,
                "access of {len} bytes at offset {offset} is outside the {size}-byte data area"
            ),
            Self::Misaligned { offset, align } => write!(
                f,
                "offset {offset} is not a multiple of {align}, the alignment the type needs"
            ),
            Self::ReadOnly => f.write_str(
                "the segment is mapped read-only: no writes and no references for atomic updates",
            ),
            Self::Untrusted(e) => e.fmt(f),
            Self::BadMode { mode } => write!(
                f,
                "mode {mode:#o} has bits outside 0o777: give permission bits only"
            ),
            Self::CannotGrow { reason } => write!(f, "cannot grow this segment: {reason}"),
            Self::HugePagesUnavailable => f.write_str(
                "huge pages were asked for, but none are reserved \
                 (/proc/sys/vm/nr_hugepages is 0); reserve some as root or do without",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sys(e) => Some(e),
            Self::Name(e) => Some(e),
            Self::Untrusted(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NameError> for Error {
    fn from(e: NameError) -> Self {
        Self::Name(e)
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
