//! The error type of `ipcraft-socket`.

use crate::cred::PeerCredentials;
use ipcraft_core::{FrameError, SysError};
use std::fmt;
use std::io;

/// What went wrong, with what was asked and what is allowed.
///
/// Converts into [`std::io::Error`] with a matching [`io::ErrorKind`] (`BrokenPipe`,
/// `ConnectionReset`, `TimedOut`, `WouldBlock`, `InvalidInput`, `PermissionDenied`, or the
/// errno's kind).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; the [`SysError`] names it, what it was applied to, and the errno.
    Sys(SysError),
    /// The other end belongs to an owner this process does not trust: a listener whose
    /// credentials (`SO_PEERCRED`) name another user, or a datagram socket file another user
    /// owns (the name may have been taken first, to read what we send). Nothing was sent;
    /// the error names the owner and says what to do ([`ConnectOptions`](crate::ConnectOptions)
    /// trusts a user on purpose).
    Untrusted(ipcraft_core::TrustError),
    /// The peer closed its end: nothing sent will be read (`EPIPE`; no `SIGPIPE` is raised,
    /// every send uses `MSG_NOSIGNAL`).
    PeerClosed {
        /// What failed.
        op: &'static str,
    },
    /// The peer closed its end with data of ours unread, or died (`ECONNRESET`).
    ConnectionReset {
        /// What failed.
        op: &'static str,
    },
    /// The call did not complete before its timeout or deadline.
    TimedOut {
        /// What timed out.
        op: &'static str,
    },
    /// A `try_` call, or a call on a non-blocking socket, found the socket not ready; nothing
    /// was transferred.
    WouldBlock {
        /// What would have blocked.
        op: &'static str,
    },
    /// A filesystem socket path the kernel cannot take whole: `sun_path` holds 108 bytes,
    /// terminator included, so a path has at most 107 bytes.
    PathTooLong {
        /// The path, lossily decoded.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The limit: 107 bytes.
        max: usize,
    },
    /// An abstract socket name longer than the 107 bytes after the leading NUL of `sun_path`.
    AbstractNameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit: 107 bytes.
        max: usize,
    },
    /// A path or abstract name the kernel cannot take: empty, or a path with a NUL byte.
    InvalidAddress {
        /// The address, lossily decoded.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file mode with bits outside `0o777`.
    InvalidMode {
        /// The mode asked for.
        mode: u32,
    },
    /// More descriptors in one message than the kernel passes (`SCM_MAX_FD`); nothing was
    /// sent.
    TooManyFds {
        /// How many were given.
        count: usize,
        /// `SCM_MAX_FD`: 253.
        max: usize,
    },
    /// An empty message on a datagram or seqpacket socket: refused, since a seqpacket
    /// receiver cannot tell it from end of stream; nothing was sent.
    EmptyMessage,
    /// A message larger than the receive buffer: it was consumed, and the rest of it is lost.
    MessageTruncated {
        /// The buffer's size in bytes.
        capacity: usize,
    },
    /// Descriptors sent with no data byte to carry them: a stream socket drops them.
    FdsWithoutData,
    /// A message arrived with more descriptors than the receiver made room for
    /// (`MSG_CTRUNC`): every descriptor that did arrive was closed. The data bytes were
    /// received into the caller's buffer.
    FdsTruncated {
        /// Data bytes received into the buffer.
        received: usize,
        /// The most descriptors this receive accepted.
        max_fds: usize,
    },
    /// A frame with descriptors could not be sent or received (oversized, truncated); see
    /// [`UnixStream::recv_frame_with_fds`](crate::UnixStream::recv_frame_with_fds).
    Frame(FrameError),
    /// [`UnixListener::bind_reclaiming_stale`](crate::UnixListener::bind_reclaiming_stale)
    /// found the path in use: a live listener answers there, or it is not a socket.
    AddressInUse {
        /// The address.
        address: String,
        /// Why it was not taken over.
        reason: &'static str,
    },
    /// The listener's peer policy refused the connecting process; its connection was closed.
    PeerRefused {
        /// Who connected.
        peer: PeerCredentials,
    },
    /// A descriptor to adopt (`TryFrom<OwnedFd>`) is not the socket the type wraps (another
    /// family or type, listening or not, or no socket at all); it is handed back untouched.
    WrongDescriptor {
        /// What the type wraps.
        expected: &'static str,
        /// The descriptor, still open.
        fd: std::os::fd::OwnedFd,
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
            Self::PeerClosed { .. } => io::ErrorKind::BrokenPipe,
            Self::ConnectionReset { .. } => io::ErrorKind::ConnectionReset,
            Self::TimedOut { .. } => io::ErrorKind::TimedOut,
            Self::WouldBlock { .. } => io::ErrorKind::WouldBlock,
            Self::PathTooLong { .. }
            | Self::AbstractNameTooLong { .. }
            | Self::InvalidAddress { .. }
            | Self::InvalidMode { .. }
            | Self::TooManyFds { .. }
            | Self::FdsWithoutData
            | Self::EmptyMessage
            | Self::WrongDescriptor { .. } => io::ErrorKind::InvalidInput,
            Self::MessageTruncated { .. } => io::ErrorKind::InvalidData,
            Self::FdsTruncated { .. } => io::ErrorKind::InvalidData,
            Self::PeerRefused { .. } => io::ErrorKind::PermissionDenied,
            Self::Frame(e) => e.kind(),
            Self::AddressInUse { .. } => io::ErrorKind::AddrInUse,
        }
    }

    pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno))
    }

    pub(crate) fn sys_on(
        op: &'static str,
        subject: impl fmt::Display,
    ) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Sys(SysError::new(op, errno).on(subject))
    }

    /// The errno of an I/O call on a connected socket: a closed or reset peer, a would-block,
    /// or anything else as [`Error::Sys`].
    pub(crate) fn io(op: &'static str, errno: nix::errno::Errno) -> Self {
        use nix::errno::Errno;
        match errno {
            Errno::EPIPE => Self::PeerClosed { op },
            Errno::ECONNRESET => Self::ConnectionReset { op },
            Errno::EAGAIN => Self::WouldBlock { op },
            e => Self::Sys(SysError::new(op, e)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::WrongDescriptor { expected, fd } => write!(
                f,
                "descriptor {} is not {expected}, the only kind this type adopts",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ),
            Self::Untrusted(e) => e.fmt(f),
            Self::PeerClosed { op } => write!(
                f,
                "{op} failed: the peer closed its end, so nothing sent will be read"
            ),
            Self::ConnectionReset { op } => write!(
                f,
                "{op} failed: the connection was reset (the peer closed with data unread, or died)"
            ),
            Self::TimedOut { op } => write!(f, "{op} timed out"),
            Self::WouldBlock { op } => write!(f, "{op} would block"),
            Self::PathTooLong { path, len, max } => write!(
                f,
                "socket path {path:?} is {len} bytes: a Unix socket path has at most {max} bytes \
                 (sun_path holds 108, terminator included); use a shorter path, or bind in a \
                 directory with a short name"
            ),
            Self::AbstractNameTooLong { len, max } => write!(
                f,
                "abstract socket name of {len} bytes is too long: at most {max} bytes"
            ),
            Self::InvalidAddress { address, reason } => {
                write!(f, "invalid socket address {address:?}: {reason}")
            }
            Self::InvalidMode { mode } => write!(
                f,
                "invalid socket file mode {mode:#o}: only permission bits (0o777) are allowed"
            ),
            Self::TooManyFds { count, max } => write!(
                f,
                "{count} descriptors in one message: the kernel passes at most {max} \
                 (SCM_MAX_FD); nothing was sent"
            ),
            Self::EmptyMessage => f.write_str(
                "empty message refused: a message needs at least 1 byte (a seqpacket receiver \
                 cannot tell an empty one from end of stream); nothing was sent",
            ),
            Self::MessageTruncated { capacity } => write!(
                f,
                "message larger than the receive buffer of {capacity} bytes: it was consumed \
                 and its tail lost; receive with a larger buffer"
            ),
            Self::FdsWithoutData => f.write_str(
                "descriptors must travel with at least one data byte on a stream socket; \
                 nothing was sent",
            ),
            Self::FdsTruncated { received, max_fds } => write!(
                f,
                "a message carried more descriptors than the {max_fds} this receive accepts \
                 (MSG_CTRUNC, also what a receiver at its descriptor limit gets): every \
                 descriptor that arrived was closed; {received} data bytes were received"
            ),
            Self::Frame(e) => e.fmt(f),
            Self::AddressInUse { address, reason } => {
                write!(f, "socket address {address} is in use: {reason}")
            }
            Self::PeerRefused { peer } => write!(
                f,
                "the listener's policy refused a peer (pid {}, uid {}, gid {}); its connection \
                 was closed",
                peer.pid, peer.uid, peer.gid
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sys(e) => Some(e),
            Self::Untrusted(e) => Some(e),
            Self::Frame(e) => Some(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_say_what_is_allowed() {
        let e = Error::PathTooLong {
            path: "x".repeat(108),
            len: 108,
            max: 107,
        };
        assert!(e.to_string().contains("at most 107 bytes"));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidInput);
        let e = Error::TooManyFds {
            count: 254,
            max: 253,
        };
        assert!(e.to_string().contains("at most 253"));
        let e = Error::io("send", nix::errno::Errno::EPIPE);
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::BrokenPipe);
    }
}
