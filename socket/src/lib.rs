//! # ipcraft-socket
//!
//! Unix domain sockets done right, for Linux, and the same framing over TCP: addresses
//! checked before any system call, a listener that owns its socket file (exact mode, removed
//! on drop), timeouts on the monotonic clock, descriptor passing that never leaks, peer
//! credentials and a peer policy, and no `SIGPIPE`.
//!
//! - [`SocketAddr`]: a filesystem path (at most [`MAX_PATH_LEN`] = 107 bytes, no NUL) or a
//!   Linux abstract name (at most [`MAX_ABSTRACT_LEN`] bytes; **no permission check at
//!   all**, see below).
//! - [`UnixListener`], [`SeqpacketListener`] and [`UnixDatagram`] bind the same way:
//!   `bind(path)`, `bind_addr(&addr)` and `bind_with(&options, &addr)` with one
//!   [`BindOptions`] type: the file's mode set exactly (0600 by default, whatever the umask)
//!   before anyone can connect; the binder removes the file on drop. Listeners accept as
//!   std's do (`(connection, address)`, [`incoming`](UnixListener::incoming)), with a
//!   deadline, non-blocking or `try_`, and an optional [`PeerPolicy`];
//!   [`UnixListener::bind_reclaiming_stale`] (and [`UnixDatagram::bind_reclaiming_stale`],
//!   for a restarted receiver) takes over a stale socket file, never a live one, serialized
//!   by a lock file that exists only while a starter starts.
//! - [`UnixStream`] and [`SeqpacketConn`] connect the same way: `connect(path)`,
//!   `connect_addr(&addr)`, `connect_deadline` and `connect_timeout`; [`UnixStream::pair`], [`Read`](std::io::Read)
//!   and [`Write`](std::io::Write), `send`/`recv` with deadlines and `try_` forms, `AsFd`,
//!   conversions to and from `OwnedFd` (adopting one is `TryFrom`, checked to be the right kind of socket) and `std::os::unix::net`.
//! - Descriptor passing: [`UnixStream::send_with_fds`] takes `&[BorrowedFd]` (at most
//!   [`SCM_MAX_FD`]), [`UnixStream::recv_with_fds`] returns `OwnedFd`s, close-on-exec;
//!   frames that carry descriptors: [`UnixStream::send_frame_with_fds`] and
//!   [`UnixStream::recv_frame_with_fds`].
//! - Message sockets: [`UnixDatagram`] and [`SeqpacketListener`] / [`SeqpacketConn`]: each
//!   message whole ([`Error::MessageTruncated`] for a short buffer, [`Error::EmptyMessage`]
//!   refused), with descriptors, deadlines and `try_` forms.
//! - As std: every type has `try_clone`; every connection and datagram socket has
//!   `local_addr`, `peer_addr` and `shutdown`; `set_nonblocking` and the timeout setters take
//!   `&self`.
//! - Peer identity: [`UnixStream::peer_credentials`] (`SO_PEERCRED`) and
//!   [`UnixStream::peer_pidfd`] (`SO_PEERPIDFD`).
//! - Framing: [`FrameWriter`] and [`FrameReader`] (the one codec of `ipcraft-core`, the same
//!   as over pipes) work over a `UnixStream` or `&UnixStream`, and over TCP.
//! - TCP, to reach another machine: [`TcpListener`] / [`TcpStream`] with the same deadlines,
//!   `try_` forms, typed errors (`MSG_NOSIGNAL` too) and framing.
//!
//! - Async, on tokio (feature `tokio`, off by default): the module `tokio` has the same
//!   types, name for name, with `async` methods, descriptor passing on every kind, the
//!   listener's peer policy at accept, cancel-safe receives, and `FrameCodec` for
//!   `tokio_util::codec::Framed`.
//!
//! Every descriptor this crate creates is close-on-exec (`SOCK_CLOEXEC`,
//! `MSG_CMSG_CLOEXEC`, `F_DUPFD_CLOEXEC`); every send uses `MSG_NOSIGNAL`, so a closed peer is
//! [`Error::PeerClosed`] and never a signal.
//!
//! # Example: framed messages with a child process
//!
//! The parent makes a connected pair and hands one end to a child `cat` as its stdin and
//! stdout; `cat` echoes the bytes back, and the frames survive the round trip whole.
//!
//! ```
//! use ipcraft_socket::{FrameReader, FrameWriter, UnixStream};
//! use std::os::fd::OwnedFd;
//! use std::process::Command;
//!
//! let (ours, theirs) = UnixStream::pair()?;
//! let theirs = OwnedFd::from(theirs);
//! let mut child = Command::new("cat")
//!     .stdin(theirs.try_clone()?)
//!     .stdout(theirs)
//!     .spawn()?;
//! let mut tx = FrameWriter::new(&ours);
//! let mut rx = FrameReader::new(&ours);
//! for msg in [&b"hello"[..], b"", b"over a socket"] {
//!     tx.send(msg)?;
//!     assert_eq!(rx.next_frame()?, Some(msg));
//! }
//! ours.shutdown(std::net::Shutdown::Write)?; // end of stream for cat
//! assert_eq!(rx.next_frame()?, None);
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Abstract names have no permission check
//!
//! A filesystem socket is guarded by its file's mode and its directories; an abstract name
//! (Linux) has no file, so **any process of any user** in the same network namespace can
//! connect to it. Guard an abstract listener with [`UnixListener::set_peer_policy`] or check
//! [`UnixStream::peer_credentials`] yourself.
//!
//! # The socket file's mode
//!
//! `bind(2)` creates the socket file with the process umask applied, and `fchmod` of a bound
//! socket does not change that file. The mode is therefore applied twice, before anyone can
//! connect: `fchmod` on the socket before `bind` (Linux creates the file with the socket's
//! mode minus the umask, so it is never more open than asked), then `chmod` of the file
//! (which can only widen it, to exactly the mode asked), and only then `listen(2)`: until
//! `listen`, a connection attempt is refused.
//!
//! # Safety model
//!
//! `nix`'s safe wrappers do everything but two things, which live in one file, `src/sys.rs`
//! (`#![allow(unsafe_code)]`, with its invariants and a `SAFETY` note on every block):
//! adopting the descriptor `accept4` returns, and `recvmsg` with `SCM_RIGHTS`, which is
//! written against libc because `nix` will not walk a truncated (`MSG_CTRUNC`) control
//! message and would leak the descriptors that did arrive.
//!
//! # Platform support
//!
//! Linux only (abstract names, `SO_PEERCRED`, `MSG_CMSG_CLOEXEC`, `accept4`).

mod addr;
mod adopt;
mod cred;
mod datagram;
mod error;
mod listener;
mod message;
mod options;
mod seqpacket;
mod start_lock;
mod stream;
mod sys;
mod tcp;
#[cfg(feature = "tokio")]
pub mod tokio;
mod trust;
mod wait;

pub use addr::{MAX_ABSTRACT_LEN, MAX_PATH_LEN, SocketAddr};
pub use cred::{PeerCredentials, PeerPolicy};
pub use datagram::UnixDatagram;
pub use error::{Error, Result};
pub use ipcraft_core::Deadline;
pub use ipcraft_core::frame::{self, DEFAULT_MAX_FRAME, FrameError, FrameReader, FrameWriter};
pub use listener::{Incoming, UnixListener};
#[allow(deprecated)]
pub use options::ListenerOptions;
pub use options::{BindOptions, DEFAULT_BACKLOG, DEFAULT_MODE, SCM_MAX_FD};
pub use seqpacket::{SeqpacketConn, SeqpacketIncoming, SeqpacketListener};
pub use stream::UnixStream;
pub use tcp::{TcpIncoming, TcpListener, TcpStream};
pub use trust::ConnectOptions;

/// Entry points for ipcraft's fuzz targets (`fuzz/` in the repository), compiled only with
/// the `fuzzing` feature, which nothing but the fuzz harness enables: not part of the API,
/// no stability promise. Each reaches one piece of parsing that no public call reaches with
/// arbitrary bytes (the kernel writes them).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use crate::SocketAddr;
    use std::os::fd::RawFd;

    /// The descriptor numbers `recv_with_fds`'s walk of the `SCM_RIGHTS` control messages
    /// would adopt if the kernel had written `control` (in order; `true`: `SCM_RIGHTS`, kept;
    /// `false`: `SCM_PIDFD`, closed). Nothing is adopted or closed.
    pub fn control_fds(control: &[u8]) -> Vec<(bool, RawFd)> {
        crate::sys::control_fds(control)
    }

    /// The address `recvmsg`/`getsockname` report for these `sun_path` bytes.
    pub fn from_sun_path(bytes: &[u8]) -> SocketAddr {
        SocketAddr::from_sun_path(bytes)
    }

    /// Whether `addr` becomes a `sockaddr_un`, as bind and connect make it.
    pub fn to_sockaddr_un(addr: &SocketAddr) -> bool {
        addr.to_unix_addr().is_ok()
    }
}

/// The README's examples, compiled and run as doctests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
