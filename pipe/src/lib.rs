#![forbid(unsafe_code)]
//! # ipcraft-pipe
//!
//! Anonymous pipes and FIFOs (named pipes) as safe RAII types, for Linux.
//!
//! - [`pipe`] / [`PipeOptions`]: a [`PipeReader`] and a [`PipeWriter`], close-on-exec,
//!   optionally non-blocking or in packet mode (`O_DIRECT`).
//! - Timeouts on the monotonic clock ([`PipeReader::set_read_timeout`],
//!   [`PipeReader::read_deadline`], [`PipeWriter::write_deadline`]) and `try_` forms that
//!   report [`Error::WouldBlock`].
//! - Capacity: [`PipeWriter::capacity`], [`PipeWriter::set_capacity`] with an error naming
//!   the system limit ([`max_capacity`]).
//! - Atomic writes up to [`PIPE_BUF`] ([`PipeWriter::write_atomic`]) and a typed error above.
//! - Framed messages over any pipe or other byte stream: [`FrameWriter`] and [`FrameReader`]
//!   (the one codec of `ipcraft-core`, shared with `ipcraft-socket`).
//! - FIFOs: [`Fifo`] creates one with an exact mode (0600 by default, not subject to the
//!   umask) and removes it on drop; [`Fifo::open_reader`] / [`Fifo::open_writer`] open one
//!   with a timeout.
//! - Zero-copy moves: [`splice`] and [`tee`].
//! - Async (feature `tokio`, off by default): the module `tokio` has the ends as
//!   `AsyncRead`/`AsyncWrite`, FIFO opens that await the peer, and frames through
//!   `tokio_util`'s `Framed` with the same codec (see the README's "Async (tokio)").
//!
//! Compared with [`std::io::pipe`], this crate adds the timeouts, capacity, packet mode,
//! atomic writes, framing, FIFOs and splicing; the types convert both ways.
//!
//! # Example: framed messages to a child process and back
//!
//! The child here is `cat`, which echoes bytes; frames survive the round trip whole.
//!
//! ```
//! use ipcraft_pipe::{FrameReader, FrameWriter, pipe};
//! use std::process::Command;
//!
//! let (to_child, to_child_w) = pipe()?;
//! let (from_child, from_child_w) = pipe()?;
//! // The pipe ends given to the child are moved into the (temporary) Command and closed
//! // here once it has spawned, so the parent holds only its own ends.
//! let mut child = Command::new("cat").stdin(to_child).stdout(from_child_w).spawn()?;
//!
//! let mut tx = FrameWriter::new(to_child_w);
//! let mut rx = FrameReader::new(from_child);
//! for msg in [&b"first"[..], b"", b"third"] {
//!     tx.send(msg)?;
//!     assert_eq!(rx.next_frame()?, Some(msg));
//! }
//! drop(tx); // end of stream for cat, which exits and closes its stdout
//! assert_eq!(rx.next_frame()?, None);
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Broken pipes and SIGPIPE
//!
//! Writing to a pipe whose read end is closed fails with `EPIPE`, reported as
//! [`Error::BrokenPipe`] (or [`std::io::ErrorKind::BrokenPipe`] through [`std::io::Write`]).
//! The kernel also sends the writing thread `SIGPIPE`, whose default action kills the
//! process. Rust binaries ignore `SIGPIPE` at start-up, so they see only the error; a Rust
//! library loaded by a C program, or a binary built to keep the default, does not. A library
//! cannot change the process-wide disposition behind its host's back, so ipcraft offers:
//! - [`PipeWriter::set_suppress_sigpipe`]: block `SIGPIPE` on the calling thread during each
//!   write and consume the signal a failed write raised (two extra `pthread_sigmask` calls
//!   per write);
//! - or, for the host program, ignoring `SIGPIPE` once at start-up (`signal(SIGPIPE,
//!   SIG_IGN)`), as Rust's runtime does.
//!
//! Unix sockets need none of this: `ipcraft-socket` sends with `MSG_NOSIGNAL`.
//!
//! # Safety model
//!
//! No `unsafe` code (`#![forbid(unsafe_code)]`): every system call goes through `nix`'s safe
//! wrappers, and descriptors are owned by [`std::os::fd::OwnedFd`], closed exactly once.
//! Every descriptor this crate creates is close-on-exec (`O_CLOEXEC`,
//! `F_DUPFD_CLOEXEC`), so a child process inherits only what it is explicitly handed (as
//! stdin/stdout/stderr through [`std::process::Stdio`]).
//!
//! # Platform support
//!
//! Linux only: packet mode, `F_GETPIPE_SZ`/`F_SETPIPE_SZ`, `splice`/`tee` and the FIFO
//! open-with-timeout (which probes for a writer with `tee(2)`) are Linux features.

mod error;
mod fifo;
mod pipe;
mod splice;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use error::{Error, Result};
pub use fifo::{DEFAULT_MODE, Fifo, FifoOptions};
pub use ipcraft_core::Deadline;
pub use ipcraft_core::frame::{self, DEFAULT_MAX_FRAME, FrameError, FrameReader, FrameWriter};
pub use pipe::{PIPE_BUF, PipeOptions, PipeReader, PipeWriter, max_capacity, pipe};
pub use splice::{SpliceFlags, splice, tee};

/// The README's examples, compiled and run as doctests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
