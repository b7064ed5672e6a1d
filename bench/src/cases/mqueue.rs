//! POSIX message queues (`mqueue`): one queue from the parent to the child ("down") and one
//! back ("up"), both created by the parent before the child starts and opened by name in the
//! child. The names are derived from the parent's pid (`/ipcraft-bench-<pid>-<impl>-down`),
//! which the child learns with `getppid`, so nothing but the case id crosses the command line;
//! the child's stdin and stdout are unused.
//!
//! - `raw`: `nix::mqueue`'s `mq_open`, `mq_send`, `mq_receive`, `mq_close`, `mq_unlink`. They
//!   are thin 1:1 wrappers (one libc call and the errno check, no allocation, no extra system
//!   call), so the baseline is what a C programmer writes, without any `unsafe` of ours.
//! - `ipcraft`: `MessageQueue::create` / `open`, then `send` / `recv`.
//!
//! Both create the queues with the same attributes: `fs.mqueue.msg_max` messages (at most
//! what `RLIMIT_MSGQUEUE` allows for two queues) of exactly the test's message size. The
//! largest size measured is 64 KiB or `fs.mqueue.msgsize_max`, whichever is smaller (8 KiB on
//! a default system).
//!
//! A queue has no end of stream: when the child dies, a parent blocked in a receive would
//! wait forever. So the parent starts a watcher thread that, if the measurement is not over by
//! the harness's deadline, sends an empty message to the "up" queue; both receivers treat an
//! empty message as the end of the stream. Measured messages are never empty.

use std::ffi::CString;
use std::io;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use ipcraft_mqueue::{Access, Attributes, Limits, MessageQueue};
use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_close, mq_getattr, mq_open, mq_receive, mq_send, mq_unlink,
};
use nix::sys::stat::Mode;

use crate::harness::{Case, Env, Impl, Placement, Plan, Sample, Test};
use crate::proto::{self, Receiver, Sender, check_len};

/// The largest message size measured, when the system allows it.
const MAX_SIZE: usize = 64 << 10;
/// The kernel's bookkeeping per message charged to `RLIMIT_MSGQUEUE` (about).
const PER_MESSAGE_OVERHEAD: u64 = 96;

/// A message queue case: raw libc (through nix) or ipcraft.
#[derive(Debug)]
pub struct MqueueCase {
    imp: Impl,
}

impl MqueueCase {
    /// `imp` is [`Impl::Raw`] or [`Impl::Ipcraft`].
    pub fn new(imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "an mqueue case is raw or ipcraft");
        Self { imp }
    }

    /// `(down, up)` queue names for the parent with pid `pid`.
    fn names(&self, pid: u32) -> (String, String) {
        let base = format!("/ipcraft-bench-{pid}-{}", self.imp.as_str());
        (format!("{base}-down"), format!("{base}-up"))
    }
}

/// The system's limits, or the defaults of a stock kernel when they cannot be read.
pub(super) fn limits() -> (usize, usize, Option<u64>) {
    match Limits::read() {
        Ok(l) => (
            l.msg_max as usize,
            l.msgsize_max as usize,
            l.rlimit_msgqueue,
        ),
        Err(_) => (10, 8192, Some(819_200)),
    }
}

/// The attributes of both queues for messages of `size` bytes.
pub(super) fn attributes(size: usize) -> Attributes {
    let (msg_max, _, rlimit) = limits();
    let size = size.max(1);
    let per_message = size as u64 + PER_MESSAGE_OVERHEAD;
    let fits = rlimit.map_or(u64::MAX, |r| r / 2 / per_message) as usize;
    Attributes::new(msg_max.min(fits).max(1), size)
}

impl Case for MqueueCase {
    fn mechanism(&self) -> &'static str {
        "mqueue"
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        tests(plan)
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let (down, up) = self.names(std::process::id());
        let attrs = attributes(test.size);
        match self.imp {
            Impl::Raw => {
                let tx = RawQueue::create(&down, attrs)?;
                let rx = RawQueue::create(&up, attrs)?;
                let run =
                    |_: Instant| proto::parent(test, &mut RawOut(&tx), &mut RawIn::new(&rx, attrs));
                env.two_processes(self, placement, test, Stdio::null(), Stdio::null(), |d| {
                    with_watcher(&up, d, run)
                })
            }
            _ => {
                let tx = MessageQueue::create(&down, attrs).map_err(io::Error::from)?;
                let rx = MessageQueue::create(&up, attrs).map_err(io::Error::from)?;
                let run = |_: Instant| {
                    proto::parent(test, &mut IpcraftOut(&tx), &mut IpcraftIn::new(&rx))
                };
                env.two_processes(self, placement, test, Stdio::null(), Stdio::null(), |d| {
                    with_watcher(&up, d, run)
                })
            }
        }
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (down, up) = self.names(nix::unistd::getppid().as_raw() as u32);
        match self.imp {
            Impl::Raw => {
                let rx = RawQueue::open(&down, MQ_OFlag::O_RDONLY)?;
                let tx = RawQueue::open(&up, MQ_OFlag::O_WRONLY)?;
                let attrs = rx.attributes()?;
                proto::child(test, &mut RawOut(&tx), &mut RawIn::new(&rx, attrs))
            }
            _ => {
                let rx = MessageQueue::open(&down, Access::ReadOnly).map_err(io::Error::from)?;
                let tx = MessageQueue::open(&up, Access::WriteOnly).map_err(io::Error::from)?;
                proto::child(test, &mut IpcraftOut(&tx), &mut IpcraftIn::new(&rx))
            }
        }
    }
}

/// The standard tests, with sizes capped at what the system's queues take.
pub(super) fn tests(plan: &Plan) -> Vec<Test> {
    let (_, msgsize_max, _) = limits();
    let largest = MAX_SIZE.min(msgsize_max);
    plan.standard()
        .into_iter()
        .map(|mut t| {
            t.size = t.size.min(largest);
            t
        })
        .collect()
}

/// Run `parent(deadline)`; if it has not returned by `deadline`, send an empty message (end
/// of stream) to the queue `up`, which the parent receives from, so that it cannot block for
/// ever on a child that died.
fn with_watcher(
    up: &str,
    deadline: Instant,
    parent: impl FnOnce(Instant) -> io::Result<Sample>,
) -> io::Result<Sample> {
    let (done, wait_done) = mpsc::channel::<()>();
    thread::scope(|s| {
        s.spawn(move || {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait_done.recv_timeout(left) {
                if let Ok(q) = RawQueue::open(up, MQ_OFlag::O_WRONLY | MQ_OFlag::O_NONBLOCK) {
                    let _ = mq_send(q.mqd(), b"", 1);
                }
            }
        });
        let result = parent(deadline);
        drop(done);
        result
    })
}

/// A raw queue descriptor, closed on drop (nix's `MqdT` is not), and unlinked by the creator.
#[derive(Debug)]
pub(super) struct RawQueue {
    mqd: Option<MqdT>,
    unlink: Option<CString>,
}

impl RawQueue {
    pub(super) fn create(name: &str, attrs: Attributes) -> io::Result<Self> {
        Self::create_with(name, attrs, MQ_OFlag::empty())
    }

    /// [`create`](Self::create) with `extra` flags (`O_NONBLOCK` for the async rows).
    pub(super) fn create_with(name: &str, attrs: Attributes, extra: MQ_OFlag) -> io::Result<Self> {
        let attr = MqAttr::new(0, attrs.max_messages as _, attrs.max_message_size as _, 0);
        let flags =
            MQ_OFlag::O_RDWR | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_CLOEXEC | extra;
        let mqd = mq_open(name, flags, Mode::from_bits_truncate(0o600), Some(&attr))?;
        Ok(Self {
            mqd: Some(mqd),
            unlink: Some(CString::new(name)?),
        })
    }

    pub(super) fn open(name: &str, access: MQ_OFlag) -> io::Result<Self> {
        let mqd = mq_open(name, access | MQ_OFlag::O_CLOEXEC, Mode::empty(), None)?;
        Ok(Self {
            mqd: Some(mqd),
            unlink: None,
        })
    }

    pub(super) fn mqd(&self) -> &MqdT {
        self.mqd.as_ref().expect("open until dropped")
    }

    pub(super) fn attributes(&self) -> io::Result<Attributes> {
        let a = mq_getattr(self.mqd())?;
        Ok(Attributes::new(a.maxmsg() as usize, a.msgsize() as usize))
    }
}

impl std::os::fd::AsRawFd for RawQueue {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.mqd().as_raw_fd()
    }
}

impl Drop for RawQueue {
    fn drop(&mut self) {
        if let Some(mqd) = self.mqd.take() {
            let _ = mq_close(mqd);
        }
        if let Some(name) = &self.unlink {
            let _ = mq_unlink(name.as_c_str());
        }
    }
}

/// Raw send: `mq_send(2)` at priority 0, retrying `EINTR`.
#[derive(Debug)]
struct RawOut<'a>(&'a RawQueue);

impl Sender for RawOut<'_> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match mq_send(self.0.mqd(), msg, 0) {
                Ok(()) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Raw receive: `mq_receive(2)` into a buffer of the queue's message size, retrying `EINTR`.
#[derive(Debug)]
struct RawIn<'a> {
    q: &'a RawQueue,
    buf: Vec<u8>,
}

impl<'a> RawIn<'a> {
    fn new(q: &'a RawQueue, attrs: Attributes) -> Self {
        Self {
            q,
            buf: vec![0; attrs.max_message_size],
        }
    }
}

impl Receiver for RawIn<'_> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        let mut priority = 0;
        loop {
            match mq_receive(self.q.mqd(), &mut self.buf, &mut priority) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => return check_len(&self.buf[..n], len),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// ipcraft send: `MessageQueue::send` at priority 0.
#[derive(Debug)]
struct IpcraftOut<'a>(&'a MessageQueue);

impl Sender for IpcraftOut<'_> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send(msg, 0).map_err(io::Error::from)
    }
}

/// ipcraft receive: `MessageQueue::recv` into a buffer of the queue's message size.
#[derive(Debug)]
struct IpcraftIn<'a> {
    q: &'a MessageQueue,
    buf: Vec<u8>,
}

impl<'a> IpcraftIn<'a> {
    fn new(q: &'a MessageQueue) -> Self {
        Self {
            q,
            buf: vec![0; q.attributes().max_message_size],
        }
    }
}

impl Receiver for IpcraftIn<'_> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        match self.q.recv(&mut self.buf) {
            Ok((0, _)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok((n, _)) => check_len(&self.buf[..n], len),
            Err(e) => Err(e.into()),
        }
    }
}
