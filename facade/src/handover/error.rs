//! Why a hand-over failed.

use std::error::Error;
use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// Why handing descriptors to a child, or taking one in the child, failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandoverError {
    /// Parent: a name the protocol cannot carry.
    BadName {
        /// The name given.
        name: String,
    },
    /// Parent: the name was given to another descriptor of the same hand-over.
    DuplicateName {
        /// The name given twice.
        name: String,
    },
    /// Parent: more descriptors than one hand-over takes ([`MAX_FDS`](super::MAX_FDS)).
    TooMany,
    /// Child: `LISTEN_FDS` is not set: this process was not started with descriptors.
    NotHanded,
    /// Child: `LISTEN_PID` names another process: the variables were inherited from a parent
    /// they were meant for, and the descriptors are not ours.
    NotForUs {
        /// The value of `LISTEN_PID`.
        listen_pid: u32,
        /// This process's id.
        pid: u32,
    },
    /// Child: a variable of the protocol does not parse.
    BadVariable {
        /// The variable.
        var: &'static str,
        /// Its value (lossy UTF-8).
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// Child: no descriptor of this name was handed to this process.
    Missing {
        /// The name asked for.
        name: String,
        /// The names that were handed, in order.
        handed: Vec<String>,
    },
    /// Child: every descriptor of this name was taken already (each is taken once).
    AlreadyTaken {
        /// The name.
        name: String,
    },
    /// Child: the number `LISTEN_FDS` gives this name holds no usable inherited descriptor.
    Unusable {
        /// The name.
        name: String,
        /// The descriptor number.
        fd: RawFd,
        /// Why: nothing is open there, or it is close-on-exec (opened or claimed in this
        /// process, not inherited).
        why: &'static str,
    },
    /// Child: the descriptor is not what it was asked for (a socket where a channel's memfd
    /// was expected, say), or its type refused it; it was not taken.
    WrongType {
        /// The name.
        name: String,
        /// The descriptor number.
        fd: RawFd,
        /// The type asked for.
        wanted: &'static str,
        /// The type's own error.
        source: Box<dyn Error + Send + Sync>,
    },
    /// A system call failed.
    Sys {
        /// The operation.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl HandoverError {
    /// A copy of an error found reading the environment (kept for every later call).
    pub(crate) fn replay(&self) -> Self {
        match self {
            Self::NotHanded => Self::NotHanded,
            Self::NotForUs { listen_pid, pid } => Self::NotForUs {
                listen_pid: *listen_pid,
                pid: *pid,
            },
            Self::BadVariable {
                var,
                value,
                expected,
            } => Self::BadVariable {
                var,
                value: value.clone(),
                expected,
            },
            other => Self::Sys {
                op: "reading the hand-over",
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName { name } => write!(
                f,
                "descriptor name {name:?} is invalid: a name is 1 to 255 printable ASCII \
                 characters other than ':' (systemd's rule for LISTEN_FDNAMES)"
            ),
            Self::DuplicateName { name } => write!(
                f,
                "descriptor name {name:?} is used twice in one hand-over: give each descriptor \
                 its own name"
            ),
            Self::TooMany => write!(
                f,
                "too many descriptors for one hand-over: at most {}",
                super::MAX_FDS
            ),
            Self::NotHanded => f.write_str(
                "no descriptors were handed to this process (LISTEN_FDS is not set): start it \
                 with ipcraft::handover::Handover, or under systemd socket activation",
            ),
            Self::NotForUs { listen_pid, pid } => write!(
                f,
                "the handed descriptors are for process {listen_pid}, not this one ({pid}): \
                 LISTEN_PID was inherited through a process that did not clear it; start this \
                 process with Handover::command (or directly, not through a wrapper that forks)"
            ),
            Self::BadVariable {
                var,
                value,
                expected,
            } => write!(f, "{var}={value:?} is invalid: expected {expected}"),
            Self::Missing { name, handed } => {
                write!(f, "no descriptor named {name:?} was handed to this process")?;
                if handed.is_empty() {
                    f.write_str(" (none were)")
                } else {
                    write!(f, "; handed: {}", handed.join(", "))
                }
            }
            Self::AlreadyTaken { name } => write!(
                f,
                "the descriptor named {name:?} was taken already: each is taken once; keep \
                 the handle (or `try_clone` it) instead of taking it again"
            ),
            Self::Unusable { name, fd, why } => write!(
                f,
                "the descriptor named {name:?} (fd {fd}) cannot be used: {why}"
            ),
            Self::WrongType {
                name,
                fd,
                wanted,
                source,
            } => write!(
                f,
                "the descriptor named {name:?} (fd {fd}) is not a usable {wanted}: {source}; it \
                 was not taken: take it as the type the parent handed"
            ),
            Self::Sys { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl Error for HandoverError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::WrongType { source, .. } => Some(source.as_ref()),
            Self::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<HandoverError> for io::Error {
    fn from(e: HandoverError) -> Self {
        let kind = match &e {
            HandoverError::BadName { .. }
            | HandoverError::DuplicateName { .. }
            | HandoverError::TooMany => io::ErrorKind::InvalidInput,
            HandoverError::NotHanded | HandoverError::Missing { .. } => io::ErrorKind::NotFound,
            HandoverError::AlreadyTaken { .. } => io::ErrorKind::AlreadyExists,
            HandoverError::NotForUs { .. } | HandoverError::BadVariable { .. } => {
                io::ErrorKind::InvalidData
            }
            HandoverError::Sys { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
