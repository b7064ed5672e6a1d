//! The error types of `ipcraft-sync`.

use ipcraft_core::{NameError, SysError};
use std::fmt;
use std::io;

/// What went wrong creating, opening or placing a synchronization object, waiting or
/// posting; also what a [`LockError`](crate::LockError) becomes when it must be owned
/// (`From<LockError>`: for `?` in a function returning this `Error`, `io::Error` or, through
/// one of those, `Box<dyn Error + Send + Sync>`).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The shared memory underneath failed (bad name, not found, too small, foreign...).
    Shm(ipcraft_shm::Error),
    /// A system or glibc call failed.
    Sys(SysError),
    /// The place holds another type or layout than the one asked for.
    WrongLayout {
        /// What the place says it holds.
        found: u32,
        /// What was asked for.
        expected: u32,
    },
    /// Another process is initializing the object in place and did not finish in time (it
    /// may have died mid-way).
    NotReady,
    /// An in-place object at an offset that is not a multiple of 64 (the cache line every
    /// ipcraft object starts on).
    Misaligned {
        /// The offset asked for.
        offset: usize,
    },
    /// A named semaphore's name breaks the POSIX IPC name rules (at most 251 bytes after the
    /// `/`: glibc prefixes `sem.` to the file it creates); the error says which.
    Name(NameError),
    /// An open refused to join an existing named object: another user owns it, or (for
    /// `open_or_create`) its mode is wider than the one asked for. The error says what to do.
    Untrusted(ipcraft_core::TrustError),
    /// A named semaphore of that name already exists.
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// No named semaphore of that name exists.
    NotFound {
        /// The name.
        name: String,
    },
    /// A semaphore value over the system's limit, `SEM_VALUE_MAX`: an initial value, or the
    /// value a `post` would reach (`EOVERFLOW`).
    ValueTooLarge {
        /// The value asked for, or the one the post would have made.
        value: u64,
        /// The largest value a semaphore can hold (`SEM_VALUE_MAX`).
        max: u32,
    },
    /// A `try_` call found that it would have to wait (a semaphore at zero).
    WouldBlock,
    /// The timeout passed before the wait succeeded.
    TimedOut,
    /// A lock found its previous owner dead, and the [`Recovery`](crate::Recovery) was
    /// dropped by turning the [`LockError`](crate::LockError) into this error: the mutex is
    /// now not recoverable for everyone. Handle `LockError::OwnerDied` before `?` to repair.
    OwnerDied,
    /// The mutex is not recoverable (an owner died and the next did not repair): re-create it.
    NotRecoverable,
    /// Every slot of a futex-kind mutex is claimed by a live handle: at most `max` handles,
    /// in all processes together, can be attached to one at a time.
    TooManyHandles {
        /// The limit, [`MAX_HANDLES`](crate::MAX_HANDLES).
        max: u32,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shm(e) => e.fmt(f),
            Self::Sys(e) => e.fmt(f),
            Self::WrongLayout { found, expected } => write!(
                f,
                "the place holds an object of layout {found:#010x}, not the {expected:#010x} \
                 asked for (another type, another mutex kind, or another version)"
            ),
            Self::NotReady => f.write_str(
                "the object was not initialized in time by the process placing it (it may have \
                 died mid-way)",
            ),
            Self::Misaligned { offset } => write!(
                f,
                "offset {offset} is not a multiple of 64: place objects on cache-line boundaries"
            ),
            Self::Name(e) => e.fmt(f),
            Self::Untrusted(e) => e.fmt(f),
            Self::AlreadyExists { name } => write!(
                f,
                "a semaphore named {name:?} already exists (file /dev/shm/sem.{}): open it \
                 with Semaphore::open, or remove it with unlink_semaphore if it is stale",
                name.trim_start_matches('/')
            ),
            Self::NotFound { name } => write!(
                f,
                "no semaphore named {name:?} exists (no file /dev/shm/sem.{}): create it \
                 first (Semaphore::create), or check the name",
                name.trim_start_matches('/')
            ),
            Self::OwnerDied => f.write_str(
                "the previous owner died holding the lock, and the recovery was dropped: the \
                 mutex is now not recoverable (handle LockError::OwnerDied to repair instead)",
            ),
            Self::NotRecoverable => f.write_str(
                "the mutex is not recoverable: an owner died and the next did not make it \
                 consistent; re-create it",
            ),
            Self::ValueTooLarge { value, max } => write!(
                f,
                "semaphore value {value} is over the limit SEM_VALUE_MAX = {max}"
            ),
            Self::WouldBlock => f.write_str("the operation would block (the semaphore is zero)"),
            Self::TimedOut => f.write_str("timed out"),
            Self::TooManyHandles { max } => write!(
                f,
                "all {max} handle slots of the mutex are in use by live handles: drop unused \
                 Mutex handles (one per process is enough: share it between threads)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Shm(e) => Some(e),
            Self::Sys(e) => Some(e),
            Self::Name(e) => Some(e),
            Self::Untrusted(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ipcraft_shm::Error> for Error {
    /// The segment's error, except a refused owner, which is this crate's
    /// [`Error::Untrusted`] as for every named object.
    fn from(e: ipcraft_shm::Error) -> Self {
        match e {
            ipcraft_shm::Error::Untrusted(e) => Self::Untrusted(e),
            e => Self::Shm(e),
        }
    }
}

impl<T: crate::Plain> From<crate::LockError<'_, T>> for Error {
    /// An owned error for a lock error. **An `OwnerDied` drops its recovery**, which makes
    /// the mutex not recoverable for everyone (as dropping it yourself would).
    fn from(e: crate::LockError<'_, T>) -> Self {
        match e {
            crate::LockError::OwnerDied(recovery) => {
                drop(recovery);
                Self::OwnerDied
            }
            crate::LockError::NotRecoverable => Self::NotRecoverable,
            crate::LockError::WouldBlock => Self::WouldBlock,
            crate::LockError::TimedOut => Self::TimedOut,
            crate::LockError::Sys(e) => Self::Sys(e),
        }
    }
}

impl<T: crate::Plain> From<crate::LockError<'_, T>> for io::Error {
    /// As `From<LockError> for Error`, then into `io::Error` (**an `OwnerDied` drops its
    /// recovery**).
    fn from(e: crate::LockError<'_, T>) -> Self {
        Error::from(e).into()
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Shm(e) => e.into(),
            Error::Sys(e) => e.into(),
            Error::Name(e) => e.into(),
            Error::Untrusted(e) => e.into(),
            e @ Error::AlreadyExists { .. } => io::Error::new(io::ErrorKind::AlreadyExists, e),
            e @ Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
            e @ Error::ValueTooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            e @ Error::WouldBlock => io::Error::new(io::ErrorKind::WouldBlock, e),
            e @ Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, e),
            e @ Error::TooManyHandles { .. } => io::Error::new(io::ErrorKind::QuotaExceeded, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
