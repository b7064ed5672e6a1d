//! [`MessageQueue`]: a POSIX message queue descriptor that closes on drop, and whose creator
//! unlinks the name on drop.

use crate::error::{Error, Result};
pub use crate::options::QueueOptions;
use crate::sys;
use ipcraft_core::{Deadline, Interest, PosixName, SysError, wait_fd};
use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_attr_member_t, mq_getattr, mq_open, mq_receive, mq_send,
    mq_timedreceive, mq_unlink,
};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fstat};
use nix::sys::time::TimeSpec;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

/// Priorities go from 0 to `MQ_PRIO_MAX - 1`; higher priorities are received first (Linux:
/// 32768, `sysconf(_SC_MQ_PRIO_MAX)`).
pub const MQ_PRIO_MAX: u32 = 32_768;

/// The mode of a queue created without one: read and write for the owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// How many times [`QueueOptions::open_or_create`] retries when the queue disappears between
/// its failed create and its open (another process unlinked it).
pub(crate) const OPEN_OR_CREATE_ATTEMPTS: usize = 16;

/// The size of a queue, fixed when it is created (`struct mq_attr`'s `mq_maxmsg` and
/// `mq_msgsize`).
///
/// # Examples
///
/// ```
/// use ipcraft_mqueue::Attributes;
/// let attrs = Attributes { max_messages: 8, max_message_size: 1024 };
/// assert_eq!(attrs, Attributes::new(8, 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// The most messages the queue holds; a send to a full queue blocks.
    pub max_messages: usize,
    /// The largest message, in bytes; a receive buffer must be at least this long.
    pub max_message_size: usize,
}

impl Attributes {
    /// `max_messages` messages of up to `max_message_size` bytes.
    pub const fn new(max_messages: usize, max_message_size: usize) -> Self {
        Self {
            max_messages,
            max_message_size,
        }
    }

    pub(crate) fn to_mq_attr(self) -> Result<MqAttr> {
        let member = |field, value: usize| match mq_attr_member_t::try_from(value) {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(Error::InvalidAttributes { field, value }),
        };
        let n = member("max_messages", self.max_messages)?;
        let size = member("max_message_size", self.max_message_size)?;
        Ok(MqAttr::new(0, n, size, 0))
    }

    pub(crate) fn from_mq_attr(a: &MqAttr) -> Self {
        Self {
            max_messages: usize::try_from(a.maxmsg()).unwrap_or(0),
            max_message_size: usize::try_from(a.msgsize()).unwrap_or(0),
        }
    }
}

/// Which directions a handle is open for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive only (`O_RDONLY`).
    #[doc(alias = "O_RDONLY")]
    ReadOnly,
    /// Send only (`O_WRONLY`).
    #[doc(alias = "O_WRONLY")]
    WriteOnly,
    /// Send and receive (`O_RDWR`).
    #[doc(alias = "O_RDWR")]
    ReadWrite,
}

impl Access {
    pub(crate) fn flags(self) -> MQ_OFlag {
        match self {
            Self::ReadOnly => MQ_OFlag::O_RDONLY,
            Self::WriteOnly => MQ_OFlag::O_WRONLY,
            Self::ReadWrite => MQ_OFlag::O_RDWR,
        }
    }
}

/// A queue's attributes and how many messages it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Status {
    /// The queue's size.
    pub attributes: Attributes,
    /// Messages in the queue at the time of the call.
    pub current_messages: usize,
}

pub(crate) const CLOEXEC: MQ_OFlag = MQ_OFlag::O_CLOEXEC;

/// A POSIX message queue: messages with priorities, received highest priority first and in
/// order within a priority, between any processes that know the name.
///
/// The descriptor is close-on-exec and closed on drop. The handle that created the queue owns
/// its name and unlinks it on drop, unless [`persist`](Self::persist) was called; a handle
/// that opened an existing queue never unlinks it, and the owner unlinks only its own queue:
/// if the name was unlinked and made again by another process meanwhile, the newcomer is
/// left alone (the drop compares the queue's identity, device and inode, with what the name
/// opens now).
///
/// Blocking calls ([`send`](Self::send), [`recv`](Self::recv)) are the plain
/// `mq_send`/`mq_receive`. The `try_` forms never block and report [`Error::Full`] /
/// [`Error::Empty`]; the timeout and deadline forms wait with `poll(2)` on the monotonic clock
/// (see the [crate docs](crate#timeouts-on-the-monotonic-clock)).
///
/// The descriptor is pollable ([`AsFd`]): readable when a message is waiting, writable when
/// there is room, so it can sit in an epoll or mio loop next to sockets.
///
/// # Examples
///
/// ```
/// use ipcraft_mqueue::{Access, Attributes, MessageQueue};
///
/// let name = format!("/ipcraft-doc-queue-{}", std::process::id());
/// let q = MessageQueue::create(&name, Attributes::new(4, 64))?;
/// let tx = MessageQueue::open(&name, Access::WriteOnly)?; // could be another process
/// tx.send(b"low", 1)?;
/// tx.send(b"high", 9)?;
/// assert_eq!(q.recv_vec()?, (b"high".to_vec(), 9));
/// assert_eq!(q.recv_vec()?, (b"low".to_vec(), 1));
/// assert!(matches!(q.try_recv(&mut [0; 64]), Err(ipcraft_mqueue::Error::Empty)));
/// # Ok::<(), ipcraft_mqueue::Error>(())
/// ```
///
/// # Cloning
///
/// There is no `try_clone`: every call takes `&self` and the kernel orders concurrent calls,
/// so threads share one handle (`&MessageQueue` or an `Arc`); another process opens the queue
/// by name or adopts a descriptor (`OwnedFd::from(q)`, then `TryFrom<OwnedFd>`).
#[doc(alias = "mqd_t", alias = "mq_close")]
pub struct MessageQueue {
    /// `Some` for the handle's whole life; taken only by `Drop` and by the conversion into an
    /// `OwnedFd`, which consume the handle.
    pub(crate) mqd: Option<MqdT>,
    /// `None` for a queue adopted from a descriptor (`TryFrom<OwnedFd>`).
    pub(crate) name: Option<PosixName>,
    pub(crate) attrs: Attributes,
    pub(crate) access: Access,
    pub(crate) owns_name: bool,
}

impl MessageQueue {
    /// A creator's drop: unlink the name if it still names this queue; at most once.
    fn release_name(&mut self) {
        if let (true, Some(name), Some(mqd)) = (self.owns_name, &self.name, &self.mqd) {
            if names_this_queue(name, mqd) {
                let _ = mq_unlink(name.as_c_str());
            }
        }
        self.owns_name = false;
    }

    /// The queue descriptor, present for the handle's whole life.
    pub(crate) fn mqd(&self) -> &MqdT {
        self.mqd
            .as_ref()
            .expect("taken only by Drop and into OwnedFd, which consume the handle")
    }

    /// Create the queue `name` with mode 0600 for sending and receiving; see
    /// [`QueueOptions::create`].
    ///
    /// # Errors
    ///
    /// As [`QueueOptions::create`].
    #[doc(alias = "mq_open")]
    pub fn create(name: &str, attrs: Attributes) -> Result<Self> {
        QueueOptions::new().create(name, attrs)
    }

    /// Create the queue `name` with exactly `mode` (at most `0o777`, whatever the umask) for
    /// sending and receiving; see [`QueueOptions::create`].
    ///
    /// # Errors
    ///
    /// As [`QueueOptions::create`].
    pub fn create_with_mode(name: &str, attrs: Attributes, mode: u32) -> Result<Self> {
        QueueOptions::new().mode(mode).create(name, attrs)
    }

    /// Open the existing queue `name` for `access`; see [`QueueOptions::open`].
    ///
    /// # Errors
    ///
    /// As [`QueueOptions::open`].
    #[doc(alias = "mq_open")]
    pub fn open(name: &str, access: Access) -> Result<Self> {
        QueueOptions::new().access(access).open(name)
    }

    /// Open the queue `name` for `access`, creating it (mode 0600) with `attrs` if it does not
    /// exist; see [`QueueOptions::open_or_create`].
    ///
    /// # Errors
    ///
    /// As [`QueueOptions::open_or_create`].
    pub fn open_or_create(name: &str, access: Access, attrs: Attributes) -> Result<Self> {
        QueueOptions::new()
            .access(access)
            .open_or_create(name, attrs)
    }

    /// The queue's name; `None` for a queue adopted from a descriptor
    /// ([`TryFrom<OwnedFd>`](#impl-TryFrom%3COwnedFd%3E-for-MessageQueue)), which knows none.
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(PosixName::as_str)
    }

    /// The queue's attributes (fixed at creation, so read once when the handle was made).
    pub fn attributes(&self) -> Attributes {
        self.attrs
    }

    /// The directions this handle is open for.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether dropping this handle unlinks the queue's name.
    pub fn owns_name(&self) -> bool {
        self.owns_name
    }

    /// Keep the queue after this handle is dropped: it stays until [`unlink`]ed (or the
    /// system restarts).
    pub fn persist(&mut self) {
        self.owns_name = false;
    }

    /// The attributes and the number of messages in the queue now.
    ///
    /// See `mq_getattr(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when `mq_getattr` fails.
    #[doc(alias = "mq_getattr")]
    pub fn status(&self) -> Result<Status> {
        let a = mq_getattr(self.mqd()).map_err(|e| self.sys("mq_getattr", e))?;
        Ok(Status {
            attributes: Attributes::from_mq_attr(&a),
            current_messages: usize::try_from(a.curmsgs()).unwrap_or(0),
        })
    }

    /// Send `msg` with `priority` (0 to [`MQ_PRIO_MAX`]` - 1`, higher is received first),
    /// waiting as long as the queue is full.
    ///
    /// See `mq_send(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`], [`Error::PriorityTooHigh`]; [`Error::Sys`] (`EBADF` on a
    /// handle not open for writing).
    #[doc(alias = "mq_send")]
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.check_send(msg, priority)?;
        loop {
            match mq_send(self.mqd(), msg, priority) {
                Ok(()) => return Ok(()),
                Err(Errno::EINTR) => {}
                // Only if someone made the descriptor non-blocking behind our back.
                Err(Errno::EAGAIN) => {
                    self.wait(Interest::Writable, Deadline::never())?;
                }
                Err(e) => return Err(self.sys("mq_send", e)),
            }
        }
    }

    /// Send `msg` with `priority` if the queue has room now, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when the queue is full (nothing was sent; `msg` is still the
    /// caller's); otherwise as [`send`](Self::send).
    #[doc(alias = "mq_timedsend")]
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.check_send(msg, priority)?;
        self.send_once(msg, priority)
    }

    /// Send `msg` with `priority`, waiting at most `timeout` (on the monotonic clock) for
    /// room in the queue.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when the queue stayed full; otherwise as [`send`](Self::send).
    #[doc(alias = "mq_timedsend")]
    pub fn send_timeout(&self, msg: &[u8], priority: u32, timeout: Duration) -> Result<()> {
        self.send_deadline(msg, priority, Deadline::after(timeout))
    }

    /// Send `msg` with `priority`, waiting until `deadline` (on the monotonic clock) for room
    /// in the queue.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when the queue stayed full; otherwise as [`send`](Self::send).
    pub fn send_deadline(
        &self,
        msg: &[u8],
        priority: u32,
        deadline: impl Into<Deadline>,
    ) -> Result<()> {
        let deadline = deadline.into();
        self.check_send(msg, priority)?;
        loop {
            match self.send_once(msg, priority) {
                Err(Error::Full) => {}
                other => return other,
            }
            if !self.wait(Interest::Writable, deadline)? {
                return Err(Error::TimedOut { op: "send" });
            }
        }
    }

    /// Receive the highest-priority (then oldest) message into `buf`, waiting as long as the
    /// queue is empty. Returns the message's length and priority.
    ///
    /// See `mq_receive(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] when `buf` is shorter than the queue's
    /// [`max_message_size`](Attributes::max_message_size); [`Error::Sys`] (`EBADF` on a
    /// handle not open for reading).
    #[doc(alias = "mq_receive")]
    pub fn recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.check_buffer(buf)?;
        let mut priority = 0;
        loop {
            match mq_receive(self.mqd(), buf, &mut priority) {
                Ok(n) => return Ok((n, priority)),
                Err(Errno::EINTR) => {}
                // Only if someone made the descriptor non-blocking behind our back.
                Err(Errno::EAGAIN) => {
                    self.wait(Interest::Readable, Deadline::never())?;
                }
                Err(e) => return Err(self.sys("mq_receive", e)),
            }
        }
    }

    /// Receive the next message into a new buffer sized from the queue's attributes; see
    /// [`recv`](Self::recv). Returns the message and its priority.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_vec(&self) -> Result<(Vec<u8>, u32)> {
        let mut buf = vec![0; self.attrs.max_message_size];
        let (n, priority) = self.recv(&mut buf)?;
        buf.truncate(n);
        Ok((buf, priority))
    }

    /// Receive a message into `buf` if one is waiting, without waiting; see
    /// [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when the queue is empty; otherwise as [`recv`](Self::recv).
    #[doc(alias = "mq_timedreceive")]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.check_buffer(buf)?;
        self.recv_once(buf)
    }

    /// Receive a message into `buf`, waiting at most `timeout` (on the monotonic clock); see
    /// [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when no message came; otherwise as [`recv`](Self::recv).
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.recv_deadline(buf, Deadline::after(timeout))
    }

    /// Receive a message into `buf`, waiting until `deadline` (on the monotonic clock); see
    /// [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`] when no message came; otherwise as [`recv`](Self::recv).
    pub fn recv_deadline(
        &self,
        buf: &mut [u8],
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, u32)> {
        let deadline = deadline.into();
        self.check_buffer(buf)?;
        loop {
            match self.recv_once(buf) {
                Err(Error::Empty) => {}
                other => return other,
            }
            if !self.wait(Interest::Readable, deadline)? {
                return Err(Error::TimedOut { op: "recv" });
            }
        }
    }

    /// Renamed [`recv`](Self::recv): one verb, as in std and every ipcraft crate.
    #[deprecated(since = "0.2.0", note = "renamed `recv`")]
    #[doc(hidden)]
    pub fn receive(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv(buf)
    }

    /// Renamed [`recv_vec`](Self::recv_vec).
    #[deprecated(since = "0.2.0", note = "renamed `recv_vec`")]
    #[doc(hidden)]
    pub fn receive_vec(&self) -> Result<(Vec<u8>, u32)> {
        self.recv_vec()
    }

    /// Renamed [`try_recv`](Self::try_recv).
    #[deprecated(since = "0.2.0", note = "renamed `try_recv`")]
    #[doc(hidden)]
    pub fn try_receive(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.try_recv(buf)
    }

    /// Renamed [`recv_timeout`](Self::recv_timeout).
    #[deprecated(since = "0.2.0", note = "renamed `recv_timeout`")]
    #[doc(hidden)]
    pub fn receive_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.recv_timeout(buf, timeout)
    }

    /// Renamed [`recv_deadline`](Self::recv_deadline).
    #[deprecated(since = "0.2.0", note = "renamed `recv_deadline`")]
    #[doc(hidden)]
    pub fn receive_deadline(
        &self,
        buf: &mut [u8],
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, u32)> {
        self.recv_deadline(buf, deadline)
    }

    /// Ask the kernel to send `signal` to this process, once, when a message arrives while
    /// the queue is empty and no process is blocked receiving from it. The registration ends
    /// when the signal is sent, on [`cancel_notify`](Self::cancel_notify), or when this
    /// handle is dropped. One process at a time may be registered per queue.
    ///
    /// The signal is sent to the process, so any of its threads that does not block it may
    /// take it; its default action usually ends the process. Install a handler (or block it
    /// everywhere and read it with `signalfd(2)` or `sigwait`) before registering. Polling
    /// the descriptor ([`AsFd`]) is usually simpler.
    ///
    /// See `mq_notify(3)` (with `SIGEV_SIGNAL`; `SIGEV_THREAD` is not offered).
    ///
    /// # Errors
    ///
    /// [`Error::NotifyBusy`] when another process is registered; [`Error::Sys`] otherwise.
    #[doc(alias = "mq_notify")]
    pub fn notify_signal(&self, signal: Signal) -> Result<()> {
        self.notify(Some(signal))
    }

    /// Remove this process's notification registration, if it has one on this queue.
    ///
    /// Removing another process's registration is not possible; then this does nothing.
    ///
    /// See `mq_notify(3)` (with a null `sevp`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when `mq_notify` fails.
    #[doc(alias = "mq_notify")]
    pub fn cancel_notify(&self) -> Result<()> {
        self.notify(None)
    }

    fn notify(&self, signal: Option<Signal>) -> Result<()> {
        match sys::notify(self.mqd(), signal) {
            Ok(()) => Ok(()),
            Err(Errno::EBUSY) => Err(Error::NotifyBusy { name: self.label() }),
            Err(e) => Err(self.sys("mq_notify", e)),
        }
    }

    #[inline]
    fn check_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        if msg.len() > self.attrs.max_message_size {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.attrs.max_message_size,
            });
        }
        if priority >= MQ_PRIO_MAX {
            return Err(Error::PriorityTooHigh {
                priority,
                max: MQ_PRIO_MAX,
            });
        }
        Ok(())
    }

    #[inline]
    fn check_buffer(&self, buf: &[u8]) -> Result<()> {
        if buf.len() < self.attrs.max_message_size {
            return Err(Error::BufferTooSmall {
                len: buf.len(),
                needed: self.attrs.max_message_size,
            });
        }
        Ok(())
    }

    /// One send attempt that never blocks (see `sys`).
    fn send_once(&self, msg: &[u8], priority: u32) -> Result<()> {
        loop {
            match sys::send_now(self.mqd(), msg, priority) {
                Ok(()) => return Ok(()),
                Err(Errno::ETIMEDOUT | Errno::EAGAIN) => return Err(Error::Full),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(self.sys("mq_timedsend", e)),
            }
        }
    }

    /// One receive attempt that never blocks: `mq_timedreceive` with a timeout that has
    /// always passed (the epoch), as in `sys::send_now`.
    fn recv_once(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        let epoch = TimeSpec::new(0, 0);
        let mut priority = 0;
        loop {
            match mq_timedreceive(self.mqd(), buf, &mut priority, &epoch) {
                Ok(n) => return Ok((n, priority)),
                Err(Errno::ETIMEDOUT | Errno::EAGAIN) => return Err(Error::Empty),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(self.sys("mq_timedreceive", e)),
            }
        }
    }

    /// `poll(2)` the descriptor until ready or `deadline`; `Ok(false)` once it has passed.
    fn wait(&self, interest: Interest, deadline: Deadline) -> Result<bool> {
        wait_fd(self.mqd(), interest, deadline)
            .map_err(|e| Error::Sys(SysError::from_io("poll", &e).on(self.label())))
    }

    pub(crate) fn sys(&self, op: &'static str, errno: Errno) -> Error {
        Error::sys(op, &self.label(), errno)
    }

    /// The name, or `fd N` for a queue without one, for messages.
    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(name) => name.as_str().to_owned(),
            None => format!("fd {}", self.mqd().as_raw_fd()),
        }
    }
}

/// Remove the queue `name`. Processes that have it open keep using it; it is freed when the
/// last one closes it. A new queue of the same name can be created at once.
///
/// See `mq_unlink(3)`.
///
/// # Errors
///
/// [`Error::InvalidName`]; [`Error::NotFound`] when no queue has that name; [`Error::Sys`]
/// otherwise (`EACCES`).
///
/// # Examples
///
/// ```
/// use ipcraft_mqueue::{Attributes, Error, MessageQueue, unlink};
/// let name = format!("/ipcraft-doc-unlink-{}", std::process::id());
/// let mut q = MessageQueue::create(&name, Attributes::new(1, 16))?;
/// q.persist();
/// drop(q);
/// unlink(&name)?;
/// assert!(matches!(unlink(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), Error>(())
/// ```
#[doc(alias = "mq_unlink")]
pub fn unlink(name: &str) -> Result<()> {
    let name = PosixName::new(name)?;
    match mq_unlink(name.as_c_str()) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT) => Err(Error::NotFound {
            name: name.as_str().to_owned(),
        }),
        Err(e) => Err(Error::sys("mq_unlink", &name, e)),
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        self.release_name();
        // `MqdT` has no `Drop`; this handle owns the descriptor and closes it exactly once
        // (unless the conversion into an `OwnedFd` took it).
        if let Some(mqd) = self.mqd.take() {
            let _ = nix::unistd::close(mqd.as_raw_fd());
        }
    }
}

/// Whether `name` still opens the queue behind `mqd` (same device and inode): the name was
/// not unlinked and made again by someone else. A queue the name opens but we may not read,
/// or one that is gone, is not ours.
fn names_this_queue(name: &PosixName, mqd: &MqdT) -> bool {
    let Ok(ours) = fstat(mqd.as_fd()) else {
        return false;
    };
    let flags = MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | CLOEXEC;
    let Ok(now) = mq_open(name.as_c_str(), flags, Mode::empty(), None) else {
        return false;
    };
    let same =
        fstat(now.as_fd()).is_ok_and(|st| st.st_dev == ours.st_dev && st.st_ino == ours.st_ino);
    let _ = nix::unistd::close(now);
    same
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name())
            .field("fd", &self.mqd().as_raw_fd())
            .field("attributes", &self.attrs)
            .field("access", &self.access)
            .field("owns_name", &self.owns_name)
            .finish()
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.mqd().as_fd()
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.mqd().as_raw_fd()
    }
}

/// The descriptor as an [`OwnedFd`] (to hand to a child process, for example). The handle is
/// dropped as usual: if it owns the name, the name is unlinked (call
/// [`persist`](MessageQueue::persist) first to keep it); the returned descriptor keeps the
/// queue alive either way.
impl From<MessageQueue> for OwnedFd {
    fn from(mut q: MessageQueue) -> Self {
        q.release_name(); // while the descriptor is there to check the name against
        let mqd = q.mqd.take();
        drop(q); // unlinks an owned name, closes nothing (the descriptor was taken)
        sys::into_owned_fd(mqd.expect("a live MessageQueue holds its descriptor"))
    }
}

/// Adopt a message queue descriptor (inherited from a parent, received over a Unix socket, or
/// from [`From<MessageQueue> for OwnedFd`](#impl-From%3CMessageQueue%3E-for-OwnedFd)).
/// The descriptor is checked to be a queue (a regular file on the mqueue file system, so not
/// the mount's root directory) before it is used; the handle has no name ([`MessageQueue::name`] is `None`) and never unlinks
/// one. Its access is read from the descriptor's flags.
///
/// # Errors
///
/// [`Error::NotAQueue`] (with the descriptor handed back) when `fd` is not a message queue
/// descriptor; [`Error::Sys`] when `fstatfs`, `fcntl` or `mq_getattr` fails.
impl TryFrom<OwnedFd> for MessageQueue {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let access = match nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL) {
            Ok(flags) => {
                match nix::fcntl::OFlag::from_bits_truncate(flags) & nix::fcntl::OFlag::O_ACCMODE {
                    nix::fcntl::OFlag::O_RDONLY => Access::ReadOnly,
                    nix::fcntl::OFlag::O_WRONLY => Access::WriteOnly,
                    _ => Access::ReadWrite,
                }
            }
            Err(e) => return Err(Error::Sys(SysError::new("fcntl(F_GETFL)", e))),
        };
        let mqd = sys::adopt(fd).map_err(|r| match r {
            Ok(fd) => Error::NotAQueue { fd },
            Err(e) => Error::Sys(SysError::new("fstatfs/fstat", e)),
        })?;
        let attrs = match mq_getattr(&mqd) {
            Ok(a) => Attributes::from_mq_attr(&a),
            Err(e) => {
                let _ = nix::unistd::close(mqd);
                return Err(Error::Sys(SysError::new("mq_getattr", e)));
            }
        };
        Ok(Self {
            mqd: Some(mqd),
            name: None,
            attrs,
            access,
            owns_name: false,
        })
    }
}
