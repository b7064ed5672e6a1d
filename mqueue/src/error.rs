//! The error type of `ipcraft-mqueue`.

use crate::limits::Limit;
use ipcraft_core::{NameError, SysError};
use nix::errno::Errno;
use std::fmt;
use std::io;

/// What went wrong, with what was asked and what is allowed.
///
/// Converts into [`std::io::Error`] with a matching [`io::ErrorKind`] (`WouldBlock` for
/// [`Full`](Error::Full) and [`Empty`](Error::Empty), `TimedOut`, `AlreadyExists`,
/// `NotFound`, `InvalidInput`, `QuotaExceeded` for the limits, or the errno's kind).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; the [`SysError`] names it, the queue, and the errno.
    Sys(SysError),
    /// An open refused to join an existing queue: another user owns it, or (for
    /// `open_or_create`) its mode is wider than the one asked for. The error names the owner
    /// and mode, and says what to do.
    Untrusted(ipcraft_core::TrustError),
    /// The name breaks the POSIX IPC name rules (checked before any system call).
    InvalidName(NameError),
    /// A queue of this name exists already (`EEXIST` from `mq_open(O_CREAT | O_EXCL)`).
    AlreadyExists {
        /// The queue's name.
        name: String,
    },
    /// No queue of this name exists (`ENOENT`).
    NotFound {
        /// The queue's name.
        name: String,
    },
    /// Another process is registered for notification on this queue (`EBUSY` from
    /// `mq_notify`); only one may be at a time.
    NotifyBusy {
        /// The queue's name.
        name: String,
    },
    /// A descriptor to adopt as a queue (`TryFrom<OwnedFd>`) is not a message queue
    /// descriptor; it is handed back.
    NotAQueue {
        /// The descriptor, unchanged.
        fd: std::os::fd::OwnedFd,
    },
    /// A `try_` send found the queue full; nothing was sent and the caller still has the
    /// message.
    Full,
    /// A `try_` receive found the queue empty; nothing was received.
    Empty,
    /// A send or receive did not complete before its timeout or deadline.
    TimedOut {
        /// `"send"` or `"recv"`.
        op: &'static str,
    },
    /// A message longer than the queue's `max_message_size`.
    MessageTooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The queue's `max_message_size`.
        max: usize,
    },
    /// A priority at or above `MQ_PRIO_MAX`.
    PriorityTooHigh {
        /// The priority asked for.
        priority: u32,
        /// [`MQ_PRIO_MAX`](crate::MQ_PRIO_MAX): priorities go from 0 to this minus one.
        max: u32,
    },
    /// A receive buffer shorter than the queue's `max_message_size` (the kernel refuses those
    /// even when the next message would fit).
    BufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The queue's `max_message_size`.
        needed: usize,
    },
    /// Attributes the kernel never accepts: zero, or too large to represent.
    InvalidAttributes {
        /// `"max_messages"` or `"max_message_size"`.
        field: &'static str,
        /// The value asked for.
        value: usize,
    },
    /// A mode with bits outside the permission bits `0o777`.
    InvalidMode {
        /// The mode asked for.
        mode: u32,
    },
    /// Creating the queue hit a system or per-user limit; says which, its value, and how to
    /// raise it.
    LimitExceeded {
        /// The queue's name.
        name: String,
        /// Which limit.
        limit: Limit,
        /// The limit's current value (messages, bytes or queues, see [`Limit::unit`]).
        value: u64,
        /// What this queue asked for in the same unit, when the limit is per queue
        /// (`msg_max`, `msgsize_max`) or when it alone is over the limit (`RLIMIT_MSGQUEUE`).
        requested: Option<u64>,
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
            Self::Full | Self::Empty => io::ErrorKind::WouldBlock,
            Self::NotifyBusy { .. } => io::ErrorKind::ResourceBusy,
            Self::TimedOut { .. } => io::ErrorKind::TimedOut,
            Self::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Self::NotFound { .. } => io::ErrorKind::NotFound,
            Self::LimitExceeded { .. } => io::ErrorKind::QuotaExceeded,
            Self::InvalidName(_)
            | Self::MessageTooLarge { .. }
            | Self::PriorityTooHigh { .. }
            | Self::BufferTooSmall { .. }
            | Self::InvalidAttributes { .. }
            | Self::InvalidMode { .. }
            | Self::NotAQueue { .. } => io::ErrorKind::InvalidInput,
        }
    }

    /// The errno of a failed system call ([`Error::Sys`]), if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Sys(e) => Some(e.errno()),
            _ => None,
        }
    }

    pub(crate) fn sys(op: &'static str, name: &impl fmt::Display, errno: Errno) -> Self {
        Self::Sys(SysError::new(op, errno).on(name))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untrusted(e) => e.fmt(f),
            Self::Sys(e) => e.fmt(f),
            Self::InvalidName(e) => e.fmt(f),
            Self::AlreadyExists { name } => write!(
                f,
                "message queue {name:?} already exists; open it with MessageQueue::open or \
                 open_or_create, or remove it with ipcraft_mqueue::unlink"
            ),
            Self::NotFound { name } => write!(f, "message queue {name:?} does not exist"),
            Self::NotifyBusy { name } => write!(
                f,
                "another process is registered for notification on message queue {name:?}; \
                 only one may be at a time"
            ),
            Self::NotAQueue { fd } => write!(
                f,
                "descriptor {} is not a message queue (its file is not on the mqueue file \
                 system)",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ),
            Self::Full => f.write_str("the message queue is full; nothing was sent"),
            Self::Empty => f.write_str("the message queue is empty"),
            Self::TimedOut { op } => write!(f, "message queue {op} timed out"),
            Self::MessageTooLarge { len, max } => write!(
                f,
                "message of {len} bytes is larger than the queue's max_message_size of {max} \
                 bytes"
            ),
            Self::PriorityTooHigh { priority, max } => write!(
                f,
                "message priority {priority} is too high: priorities go from 0 to {} \
                 (MQ_PRIO_MAX - 1)",
                max - 1
            ),
            Self::BufferTooSmall { len, needed } => write!(
                f,
                "receive buffer of {len} bytes is smaller than the queue's max_message_size of \
                 {needed} bytes, which the kernel requires; use recv_vec, or a buffer of \
                 attributes().max_message_size bytes"
            ),
            Self::InvalidAttributes { field, value } => write!(
                f,
                "invalid message queue attribute {field} = {value}: it must be at least 1 and \
                 fit in a C long"
            ),
            Self::InvalidMode { mode } => write!(
                f,
                "invalid message queue mode {mode:#o}: only permission bits (0o777) are allowed"
            ),
            Self::LimitExceeded {
                name,
                limit,
                value,
                requested,
            } => {
                write!(f, "cannot create message queue {name:?}: ")?;
                let unit = limit.unit();
                match requested {
                    Some(r) => write!(
                        f,
                        "it asks for {r} {unit}, above the limit {} = {value} {unit}",
                        limit.name()
                    )?,
                    None => write!(f, "the limit {} = {value} {unit} is reached", limit.name())?,
                }
                write!(f, " ({}); {}", limit.meaning(), limit.how_to_raise())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sys(e) => Some(e),
            Self::InvalidName(e) => Some(e),
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

impl From<NameError> for Error {
    fn from(e: NameError) -> Self {
        Self::InvalidName(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_errors_say_which_limit_its_value_and_how_to_raise_it() {
        let e = Error::LimitExceeded {
            name: "/jobs".into(),
            limit: Limit::MsgMax,
            value: 10,
            requested: Some(64),
        };
        assert_eq!(
            e.to_string(),
            "cannot create message queue \"/jobs\": it asks for 64 messages, above the limit \
             fs.mqueue.msg_max = 10 messages (the most messages one queue may hold); ask for \
             fewer messages, or raise the limit as root with `sysctl -w fs.mqueue.msg_max=N` \
             (up to 65536; a process with CAP_SYS_RESOURCE is not bound by it)"
        );
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::QuotaExceeded);

        let e = Error::LimitExceeded {
            name: "/jobs".into(),
            limit: Limit::RlimitMsgqueue,
            value: 819_200,
            requested: None,
        };
        let text = e.to_string();
        assert!(
            text.contains("the limit RLIMIT_MSGQUEUE = 819200 bytes is reached"),
            "{text}"
        );
        assert!(text.contains("ulimit -q"), "{text}");
        let text = Error::LimitExceeded {
            name: "/q".into(),
            limit: Limit::QueuesMax,
            value: 256,
            requested: None,
        }
        .to_string();
        assert!(text.contains("fs.mqueue.queues_max = 256 queues"), "{text}");
    }

    #[test]
    fn bad_input_says_what_is_allowed() {
        assert_eq!(
            Error::PriorityTooHigh {
                priority: 40_000,
                max: 32_768
            }
            .to_string(),
            "message priority 40000 is too high: priorities go from 0 to 32767 (MQ_PRIO_MAX - 1)"
        );
        let e = Error::BufferTooSmall {
            len: 100,
            needed: 8192,
        };
        assert!(e.to_string().contains("use recv_vec"));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(Error::Full.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(Error::Empty.kind(), io::ErrorKind::WouldBlock);
        let sys = Error::sys("mq_open", &"/jobs", Errno::EACCES);
        assert_eq!(sys.errno(), Some(Errno::EACCES));
        assert_eq!(
            sys.to_string(),
            "mq_open(\"/jobs\") failed: EACCES: Permission denied"
        );
        assert_eq!(io::Error::from(sys).kind(), io::ErrorKind::PermissionDenied);
    }
}
