//! The error types of `ipcraft-sync`.

use ipcraft_core::{NameError, SysError};
use std::fmt;
use std::io;

/// What went wrong creating, opening or placing a synchronization object.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The shared memory underneath failed (bad name, not found, too small, foreign...).
    Shm(ipcraft_shm::Error),
    /// A pthread call failed.
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
    /// A named object of that name already exists.
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// No named object of that name exists.
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
                 asked for (another type, or another version)"
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
            Self::AlreadyExists { name } => write!(f, "{name:?} already exists"),
            Self::NotFound { name } => write!(f, "{name:?} does not exist"),
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
            _ => None,
        }
    }
}

impl From<ipcraft_shm::Error> for Error {
    fn from(e: ipcraft_shm::Error) -> Self {
        Self::Shm(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Shm(e) => e.into(),
            Error::Sys(e) => e.into(),
            Error::Name(e) => e.into(),
            e @ Error::AlreadyExists { .. } => io::Error::new(io::ErrorKind::AlreadyExists, e),
            e @ Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
            e @ Error::ValueTooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            e @ Error::WouldBlock => io::Error::new(io::ErrorKind::WouldBlock, e),
            e @ Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
