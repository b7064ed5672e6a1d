//! # ipcraft-mqueue
//!
//! POSIX message queues (`mq_overview(7)`) as a safe RAII type, for Linux: whole messages with
//! priorities between any processes that know the queue's name, with timeouts on the
//! monotonic clock and errors that say which kernel limit was hit.
//!
//! - [`MessageQueue`]: [`create`](MessageQueue::create) (`O_EXCL`, mode 0600 whatever the
//!   umask), [`open`](MessageQueue::open) read-only, write-only or both,
//!   [`open_or_create`](MessageQueue::open_or_create); closed on drop, and the creator
//!   unlinks the name on drop unless it calls [`persist`](MessageQueue::persist).
//!   [`unlink`] removes a queue by name. `TryFrom<OwnedFd>` adopts an inherited or received
//!   queue descriptor (checked to be one), and `From<MessageQueue> for OwnedFd` hands one
//!   over.
//! - [`send`](MessageQueue::send) / [`recv`](MessageQueue::recv) (or
//!   [`recv_vec`](MessageQueue::recv_vec), sized from the queue's attributes); `try_`
//!   forms that return [`Error::Full`] / [`Error::Empty`]; timeout and [`Deadline`] forms.
//! - [`status`](MessageQueue::status): attributes and the current message count. The
//!   descriptor is pollable ([`AsFd`](std::os::fd::AsFd)) for epoll or mio loops.
//! - Limits: [`Limits::read`] reads `/proc/sys/fs/mqueue/*` and `RLIMIT_MSGQUEUE`; when the
//!   kernel refuses to create a queue with a bare `EINVAL`, `EMFILE` or `ENOSPC`, the error is
//!   [`Error::LimitExceeded`], naming the [`Limit`], its value and how to raise it.
//! - Async (feature `tokio`, off by default): the module `tokio` has the same queue with
//!   `send(..).await` and `recv(..).await` on the descriptor's readiness, cancel-safe, with
//!   the same errors (see the README's "Async (tokio)").
//! - Validation before any system call, with typed errors: names by the rules of
//!   [`ipcraft_core::PosixName`] (the same as `ipcraft-shm`), messages larger than
//!   `max_message_size`, priorities at or above [`MQ_PRIO_MAX`], receive buffers smaller than
//!   `max_message_size`.
//!
//! # Example
//!
//! Two handles on one queue. They are in one process here because a doctest cannot start a
//! peer of its own; `examples/mq_worker.rs` runs the same exchange with a child process
//! (`cargo run -p ipcraft-mqueue --example mq_worker`), and any process that knows the name
//! (in any language: Python's `posix_ipc`, C's `mq_open`) can take either side.
//!
//! ```
//! use ipcraft_mqueue::{Access, Attributes, Error, MessageQueue};
//! use std::time::Duration;
//!
//! let name = format!("/ipcraft-doc-{}", std::process::id());
//! // The creator owns the name: dropping `jobs` unlinks the queue.
//! let jobs = MessageQueue::create(&name, Attributes::new(8, 256))?;
//!
//! // Elsewhere (usually another process): open by name, send only.
//! let producer = MessageQueue::open(&name, Access::WriteOnly)?;
//! producer.send(b"routine", 0)?;
//! producer.send(b"urgent", 10)?;
//! producer.send(b"routine, later", 0)?;
//!
//! // Highest priority first, then in order within a priority.
//! assert_eq!(jobs.recv_vec()?, (b"urgent".to_vec(), 10));
//! assert_eq!(jobs.recv_vec()?, (b"routine".to_vec(), 0));
//! let mut buf = vec![0; jobs.attributes().max_message_size];
//! let (len, prio) = jobs.recv_timeout(&mut buf, Duration::from_secs(1))?;
//! assert_eq!((&buf[..len], prio), (&b"routine, later"[..], 0));
//!
//! // Nothing left: the timeout is measured on the monotonic clock.
//! let err = jobs.recv_timeout(&mut buf, Duration::from_millis(10)).unwrap_err();
//! assert!(matches!(err, Error::TimedOut { .. }));
//! # Ok::<(), Error>(())
//! ```
//!
//! # Timeouts on the monotonic clock
//!
//! The kernel's `mq_timedsend`/`mq_timedreceive` take an absolute time on the *realtime*
//! clock, so a wait stretches or shrinks when the system time is set. ipcraft's timeout and
//! deadline forms instead `poll(2)` the queue descriptor (readable: a message is waiting;
//! writable: there is room) until an [`ipcraft_core::Deadline`] on the monotonic clock, then
//! make a non-blocking attempt, and repeat if another process was faster.
//!
//! The non-blocking attempts do not use `O_NONBLOCK`, which belongs to the open file
//! description and would have to be switched on and off around each call (racing with other
//! threads using the handle): they call `mq_timedsend`/`mq_timedreceive` with an absolute
//! timeout at the epoch, which has always passed, so the call succeeds at once or fails at
//! once. The descriptor stays blocking, and [`send`](MessageQueue::send) and
//! [`recv`](MessageQueue::recv) are the plain blocking `mq_send`/`mq_receive`, at the
//! cost of the raw calls.
//!
//! For the same reason there is no non-blocking mode to switch: the `try_` forms never block,
//! whatever the descriptor's mode, and report [`Error::Full`] / [`Error::Empty`]
//! ([`std::io::ErrorKind::WouldBlock`]), so an async runtime can drive a handle with the
//! descriptor's readiness (tokio's `AsyncFd`) and the `try_` forms.
//!
//! # Limits
//!
//! A queue's memory is charged to its creator's `RLIMIT_MSGQUEUE` (819200 bytes by default)
//! at creation, for all `max_messages * max_message_size` bytes plus bookkeeping
//! ([`Limits::queue_bytes`]); unprivileged processes are also bound by
//! `fs.mqueue.msg_max` (10 by default) and `fs.mqueue.msgsize_max` (8192), and everybody by
//! `fs.mqueue.queues_max` (256). The limits are read only after the kernel refused, so a
//! process the kernel lets past them (`CAP_SYS_RESOURCE`) is never refused by ipcraft.
//!
//! # Notification
//!
//! [`notify_signal`](MessageQueue::notify_signal) registers the process for `mq_notify(3)`'s
//! one-shot signal when a message arrives in an empty queue, and
//! [`cancel_notify`](MessageQueue::cancel_notify) removes it. `SIGEV_THREAD` (a C callback on
//! a thread the C library starts) is not offered. On Linux the queue descriptor itself is
//! pollable, which usually serves better: poll it, or register it with epoll or an async
//! runtime and use the `try_` forms.
//!
//! # Safety model
//!
//! Four `unsafe` blocks, all in `src/sys.rs`, with their invariants: `mq_timedsend` and
//! `mq_notify`, which `nix` does not wrap; the adoption of a descriptor as `nix`'s `MqdT`
//! (`TryFrom<OwnedFd>`), only after `fstatfs` and `fstat` say it is a regular file on the
//! mqueue file system; and the way back, `MqdT` into `OwnedFd` (`From<MessageQueue>`).
//! Everything else goes through `nix`'s safe wrappers. The queue descriptor (`nix`'s `MqdT`,
//! which does not close itself) is owned by [`MessageQueue`] and closed exactly once, on
//! drop. Every descriptor is opened `O_CLOEXEC`, so child processes do not inherit it unless
//! handed one explicitly (see `From<MessageQueue> for OwnedFd`). `send` and `recv` take
//! `&self`: one handle may be shared by several threads (the kernel orders their calls).
//!
//! # Platform support
//!
//! Linux only: the queue descriptor is a file descriptor (pollable, `fchmod`-able) on Linux
//! alone. Queues live in the IPC namespace; `mount -t mqueue none /dev/mqueue` shows them as
//! files.

mod error;
mod limits;
mod options;
mod queue;
mod sys;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use error::{Error, Result};
pub use ipcraft_core::Deadline;
pub use limits::{HARD_MSG_MAX, HARD_MSGSIZE_MAX, Limit, Limits};
/// The signal [`MessageQueue::notify_signal`] sends (`nix`'s type).
pub use nix::sys::signal::Signal;
pub use queue::{
    Access, Attributes, DEFAULT_MODE, MQ_PRIO_MAX, MessageQueue, QueueOptions, Status, unlink,
};

/// The README's examples (including the `posixmq` migration table's), compiled and run as
/// doctests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
