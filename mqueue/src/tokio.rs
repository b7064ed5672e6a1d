//! Async send and receive on tokio (feature `tokio`, off by default).
//!
//! [`MessageQueue`] here is the blocking [`crate::MessageQueue`] registered with the
//! runtime's reactor: on Linux a queue descriptor is pollable (readable while a message is
//! waiting, writable while there is room), so one [`AsyncFd`] around it is all it takes; no
//! thread, no `mq_notify`. [`send`](MessageQueue::send) and [`recv`](MessageQueue::recv)
//! await readiness and then make the blocking handle's non-blocking attempts
//! ([`try_send`](crate::MessageQueue::try_send), [`try_recv`](crate::MessageQueue::try_recv)),
//! so they check the same things and fail with the same typed errors
//! ([`Error::MessageTooLarge`], [`Error::PriorityTooHigh`], [`Error::BufferTooSmall`],
//! [`Error::Sys`]); the `try_` forms stay, with [`Error::Full`] and [`Error::Empty`].
//!
//! There are no `_timeout` or `_deadline` forms: wrap any future in
//! [`tokio::time::timeout`].
//!
//! # Example
//!
//! Two handles on one queue, one async and one blocking (usually in two processes: any
//! process that knows the name can take either side, async or not, in any language).
//!
//! ```
//! use ipcraft_mqueue::{Access, Attributes};
//! use ipcraft_mqueue::tokio::MessageQueue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ipcraft_mqueue::Error> {
//! let name = format!("/ipcraft-doc-async-{}", std::process::id());
//! let jobs = MessageQueue::create(&name, Attributes::new(8, 256))?; // unlinked on drop
//! let producer = ipcraft_mqueue::MessageQueue::open(&name, Access::WriteOnly)?;
//! producer.send(b"routine", 0)?;
//! producer.send(b"urgent", 10)?;
//! assert_eq!(jobs.recv_vec().await?, (b"urgent".to_vec(), 10)); // highest priority first
//! let mut buf = vec![0; jobs.attributes().max_message_size];
//! let (len, prio) = jobs.recv(&mut buf).await?;
//! assert_eq!((&buf[..len], prio), (&b"routine"[..], 0));
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//!
//! [`send`](MessageQueue::send), [`recv`](MessageQueue::recv) and
//! [`recv_vec`](MessageQueue::recv_vec) are cancel-safe: a message moves in one system call,
//! whole or not at all, in the poll that completes the future. A `recv` dropped in a
//! `tokio::select!` has taken no message; a dropped `send` has sent nothing.
//!
//! # Non-blocking mode
//!
//! [`MessageQueue::from_std`] sets `O_NONBLOCK` on the descriptor (`mq_setattr(3)`), so an
//! attempt that cannot proceed fails at once with `EAGAIN` rather than through the blocking
//! handle's timeout at the epoch; [`MessageQueue::into_std`] clears it again. The flag belongs
//! to the open file description: a duplicate of the descriptor (inherited, or passed over a
//! socket) shares it, while another `mq_open` of the same name does not. The blocking
//! handle's calls work either way.
//!
//! # A peer that dies
//!
//! A message queue has no connection: a sender killed before or during `mq_send` has sent its
//! message whole or not at all, and the queue keeps what was sent. A receiver awaiting a
//! message that will not come waits, as the blocking `recv` does; bound the wait with
//! [`tokio::time::timeout`], the async form of `recv_timeout`
//! ([`Error::TimedOut`]).
//!
//! # Runtime
//!
//! Making a handle needs a tokio runtime with I/O enabled.

use crate::error::{Error, Result};
use crate::queue::{Access, Attributes, Status};
use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;
use ipcraft_core::SysError;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// A POSIX message queue for tokio: [`send`](Self::send) and [`recv`](Self::recv) await room
/// or a message; everything else as on the blocking [`crate::MessageQueue`], which it wraps
/// (closed on drop; a creator unlinks the name on drop unless [`persist`](Self::persist)ed).
///
/// Every call takes `&self`: tasks share one handle (`&` or an `Arc`), and the kernel orders
/// their calls.
#[derive(Debug)]
#[doc(alias = "mqd_t")]
pub struct MessageQueue {
    inner: AsyncFd<crate::MessageQueue>,
}

impl MessageQueue {
    /// Create the queue `name` (mode 0600, send and receive) and register it; see
    /// [`crate::MessageQueue::create`].
    ///
    /// # Errors
    ///
    /// As [`crate::MessageQueue::create`], and as [`from_std`](Self::from_std).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    #[doc(alias = "mq_open")]
    pub fn create(name: &str, attrs: Attributes) -> Result<Self> {
        Self::from_std(crate::MessageQueue::create(name, attrs)?)
    }

    /// Open the existing queue `name` for `access` and register it; see
    /// [`crate::MessageQueue::open`].
    ///
    /// # Errors
    ///
    /// As [`crate::MessageQueue::open`], and as [`from_std`](Self::from_std).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    #[doc(alias = "mq_open")]
    pub fn open(name: &str, access: Access) -> Result<Self> {
        Self::from_std(crate::MessageQueue::open(name, access)?)
    }

    /// Open the queue `name`, creating it with `attrs` if it does not exist, and register it;
    /// see [`crate::MessageQueue::open_or_create`].
    ///
    /// # Errors
    ///
    /// As [`crate::MessageQueue::open_or_create`], and as [`from_std`](Self::from_std).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn open_or_create(name: &str, access: Access, attrs: Attributes) -> Result<Self> {
        Self::from_std(crate::MessageQueue::open_or_create(name, access, attrs)?)
    }

    /// Take a blocking handle (made with any [`QueueOptions`](crate::QueueOptions), or
    /// adopted from a descriptor): set `O_NONBLOCK` on its descriptor (`mq_setattr(3)`; see
    /// the [module docs](self#non-blocking-mode)) and register it with the current runtime,
    /// for the directions its [`access`](crate::MessageQueue::access) allows.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `mq_setattr` or from the registration; the handle is then dropped
    /// (a creator's drop unlinks the name).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    #[doc(alias = "mq_setattr")]
    pub fn from_std(queue: crate::MessageQueue) -> Result<Self> {
        nix::mqueue::mq_set_nonblock(queue.mqd()).map_err(|e| queue.sys("mq_setattr", e))?;
        let interest = match queue.access() {
            Access::ReadOnly => Interest::READABLE,
            Access::WriteOnly => Interest::WRITABLE,
            Access::ReadWrite => Interest::READABLE | Interest::WRITABLE,
        };
        let label = queue.label();
        // tokio 1.51.6/1.53.3 deprecated the safe `with_interest` for an `unsafe`
        // `register_with_interest` (tokio PR 8587): a `T` whose `as_raw_fd` could change, or
        // whose descriptor could close while registered, would make the reactor watch another
        // file. `crate::MessageQueue` holds its descriptor for its whole life (taken only by
        // its `Drop` and by the conversion into `OwnedFd`, both consuming it), so the call is
        // sound here; it stays the safe form to keep the workspace's minimum tokio (1.40) and
        // the unsafe code to `sys.rs`'s four blocks.
        #[allow(deprecated)]
        let inner = AsyncFd::with_interest(queue, interest)
            .map_err(|e| Error::Sys(SysError::from_io("epoll_ctl", &e).on(label)))?;
        Ok(Self { inner })
    }

    /// Deregister and return the blocking handle, with `O_NONBLOCK` cleared again.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `mq_setattr` (the blocking calls would still work: they wait on
    /// `EAGAIN`).
    pub fn into_std(self) -> Result<crate::MessageQueue> {
        let queue = self.inner.into_inner();
        nix::mqueue::mq_remove_nonblock(queue.mqd()).map_err(|e| queue.sys("mq_setattr", e))?;
        Ok(queue)
    }

    /// The blocking handle inside (its descriptor is non-blocking): for
    /// [`notify_signal`](crate::MessageQueue::notify_signal) and the like. Its `try_` forms
    /// are those here; its waiting forms would block the thread.
    pub fn get_ref(&self) -> &crate::MessageQueue {
        self.inner.get_ref()
    }

    /// The queue's name; see [`crate::MessageQueue::name`].
    pub fn name(&self) -> Option<&str> {
        self.inner.get_ref().name()
    }

    /// The queue's attributes; see [`crate::MessageQueue::attributes`].
    pub fn attributes(&self) -> Attributes {
        self.inner.get_ref().attributes()
    }

    /// The directions this handle is open for.
    pub fn access(&self) -> Access {
        self.inner.get_ref().access()
    }

    /// Whether dropping this handle unlinks the queue's name.
    pub fn owns_name(&self) -> bool {
        self.inner.get_ref().owns_name()
    }

    /// Keep the queue after this handle is dropped; see [`crate::MessageQueue::persist`].
    pub fn persist(&mut self) {
        self.inner.get_mut().persist();
    }

    /// The attributes and the number of messages in the queue now; see
    /// [`crate::MessageQueue::status`].
    ///
    /// # Errors
    ///
    /// As [`crate::MessageQueue::status`].
    #[doc(alias = "mq_getattr")]
    pub fn status(&self) -> Result<Status> {
        self.inner.get_ref().status()
    }

    /// Send `msg` with `priority` (0 to [`MQ_PRIO_MAX`](crate::MQ_PRIO_MAX)` - 1`, higher is
    /// received first), awaiting room in the queue.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the message goes into the queue whole, in one system call, in the poll
    /// that completes the future; a dropped future has sent nothing.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`], [`Error::PriorityTooHigh`] (before any system call);
    /// [`Error::Sys`] (`EBADF` at once on a handle not open for writing).
    #[doc(alias = "mq_send", alias = "mq_timedsend")]
    pub async fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.when_ready(Interest::WRITABLE, |q| q.try_send(msg, priority))
            .await
    }

    /// Send `msg` with `priority` if the queue has room now; see
    /// [`crate::MessageQueue::try_send`].
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the queue is full; otherwise as [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.inner.get_ref().try_send(msg, priority)
    }

    /// Receive the highest-priority (then oldest) message into `buf`, awaiting one. Returns
    /// the message's length and priority.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the message is taken from the queue in one system call, in the poll that
    /// completes the future; a dropped future has taken nothing, so in a
    /// `tokio::select!` loop no message is lost.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] when `buf` is shorter than the queue's
    /// [`max_message_size`](Attributes::max_message_size) (before any system call);
    /// [`Error::Sys`] (`EBADF` at once on a handle not open for reading).
    #[doc(alias = "mq_receive", alias = "mq_timedreceive")]
    pub async fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.when_ready(Interest::READABLE, |q| q.try_recv(buf))
            .await
    }

    /// Receive the next message into a new buffer sized from the queue's attributes; see
    /// [`recv`](Self::recv). Returns the message and its priority.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub async fn recv_vec(&self) -> Result<(Vec<u8>, u32)> {
        let mut buf = vec![0; self.attributes().max_message_size];
        let (n, priority) = self.recv(&mut buf).await?;
        buf.truncate(n);
        Ok((buf, priority))
    }

    /// Receive a message into `buf` if one is waiting; see
    /// [`crate::MessageQueue::try_recv`].
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when the queue is empty; otherwise as [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.inner.get_ref().try_recv(buf)
    }

    /// Make the non-blocking `attempt` now and, while it reports [`Error::Full`] or
    /// [`Error::Empty`], each time the reactor reports the descriptor ready for `interest`.
    ///
    /// The first attempt is made before any wait: while messages flow it succeeds with one
    /// system call, and a handle opened for the other direction gets its `EBADF` at once
    /// instead of awaiting a readiness that was never registered.
    async fn when_ready<R>(
        &self,
        interest: Interest,
        mut attempt: impl FnMut(&crate::MessageQueue) -> Result<R>,
    ) -> Result<R> {
        match attempt(self.inner.get_ref()) {
            Err(Error::Full | Error::Empty) => {}
            done => return done,
        }
        loop {
            let mut guard = self
                .inner
                .ready(interest)
                .await
                .map_err(|e| self.reactor_error(&e))?;
            let outcome = guard.try_io(|fd| match attempt(fd.get_ref()) {
                Err(Error::Full | Error::Empty) => Err(io::ErrorKind::WouldBlock.into()),
                done => Ok(done),
            });
            if let Ok(done) = outcome {
                return done.unwrap_or_else(|e| Err(self.reactor_error(&e)));
            }
        }
    }

    fn reactor_error(&self, e: &io::Error) -> Error {
        Error::Sys(SysError::from_io("epoll_wait", e).on(self.inner.get_ref().label()))
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
