//! Async POSIX message queues (`async-mqueue`): the queues of [`super::mqueue`] (one down,
//! one up, created by the parent with the same attributes, opened by name in the child), in
//! the async loops of [`crate::proto_async`] on a `current_thread` runtime per process.
//!
//! - `raw`: tokio has no message queue type, so the baseline is the non-blocking queue
//!   descriptor in `tokio::io::unix::AsyncFd`, with `nix::mqueue`'s `mq_send`/`mq_receive`
//!   inside `async_io` (what a user wraps by hand today).
//! - `ipcraft`: `ipcraft_mqueue::tokio::MessageQueue::create`/`open`, then `send`/`recv`.
//!
//! No watcher thread: each side runs under a `tokio::time::timeout`.

use std::io;
use std::process::Stdio;

use ipcraft_mqueue::Access;
use ipcraft_mqueue::tokio::MessageQueue;
use nix::mqueue::{MQ_OFlag, mq_receive, mq_send};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::async_io::on_runtime;
use super::mqueue::{RawQueue, attributes, tests};
use crate::harness::{Case, Env, Impl, Placement, Plan, Sample, Test};
use crate::proto::check_len;
use crate::proto_async::{AsyncReceiver, AsyncSender, side};

/// An async message queue case.
#[derive(Debug)]
pub struct AsyncMqueueCase {
    imp: Impl,
}

impl AsyncMqueueCase {
    /// `imp` is [`Impl::Raw`] or [`Impl::Ipcraft`].
    pub fn new(imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "an mqueue case is raw or ipcraft");
        Self { imp }
    }

    fn names(&self, pid: u32) -> (String, String) {
        let base = format!("/ipcraft-bench-{pid}-async-{}", self.imp.as_str());
        (format!("{base}-down"), format!("{base}-up"))
    }
}

fn registered(q: RawQueue) -> io::Result<AsyncFd<RawQueue>> {
    // `new` is deprecated in favour of `unsafe fn register`, whose contract (the descriptor
    // stays open and the same while registered) `RawQueue` keeps: it closes its descriptor
    // only when dropped.
    #[allow(deprecated)]
    AsyncFd::new(q)
}

struct RawOut<'a>(&'a AsyncFd<RawQueue>);

impl AsyncSender for RawOut<'_> {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0
            .async_io(Interest::WRITABLE, |q| Ok(mq_send(q.mqd(), msg, 0)?))
            .await
    }
}

struct RawIn<'a> {
    q: &'a AsyncFd<RawQueue>,
    buf: Vec<u8>,
}

impl AsyncReceiver for RawIn<'_> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        let buf = &mut self.buf;
        let n = self
            .q
            .async_io(Interest::READABLE, |q| {
                let mut priority = 0;
                Ok(mq_receive(q.mqd(), buf, &mut priority)?)
            })
            .await?;
        check_len(&self.buf[..n], len)
    }
}

struct IpcraftOut<'a>(&'a MessageQueue);

impl AsyncSender for IpcraftOut<'_> {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send(msg, 0).await.map_err(io::Error::from)
    }
}

struct IpcraftIn<'a> {
    q: &'a MessageQueue,
    buf: Vec<u8>,
}

impl AsyncReceiver for IpcraftIn<'_> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        let (n, _) = self.q.recv(&mut self.buf).await.map_err(io::Error::from)?;
        check_len(&self.buf[..n], len)
    }
}

/// One side's queues: the way out and the way in.
enum Queues {
    Raw(RawQueue, RawQueue),
    Ipcraft(ipcraft_mqueue::MessageQueue, ipcraft_mqueue::MessageQueue),
}

impl AsyncMqueueCase {
    /// The parent's queues (created, so they exist before the child opens them), or the
    /// child's (opened by name).
    fn queues(&self, test: &Test, parent: bool, out: &str, inn: &str) -> io::Result<Queues> {
        let attrs = attributes(test.size);
        let nb = MQ_OFlag::O_NONBLOCK;
        Ok(match (self.imp, parent) {
            (Impl::Raw, true) => Queues::Raw(
                RawQueue::create_with(out, attrs, nb)?,
                RawQueue::create_with(inn, attrs, nb)?,
            ),
            (Impl::Raw, false) => Queues::Raw(
                RawQueue::open(out, MQ_OFlag::O_WRONLY | nb)?,
                RawQueue::open(inn, MQ_OFlag::O_RDONLY | nb)?,
            ),
            (_, true) => Queues::Ipcraft(
                ipcraft_mqueue::MessageQueue::create(out, attrs).map_err(io::Error::from)?,
                ipcraft_mqueue::MessageQueue::create(inn, attrs).map_err(io::Error::from)?,
            ),
            (_, false) => Queues::Ipcraft(
                ipcraft_mqueue::MessageQueue::open(out, Access::WriteOnly)
                    .map_err(io::Error::from)?,
                ipcraft_mqueue::MessageQueue::open(inn, Access::ReadOnly)
                    .map_err(io::Error::from)?,
            ),
        })
    }

    fn run(test: &Test, parent: bool, queues: Queues) -> io::Result<Option<Sample>> {
        match queues {
            Queues::Raw(tx, rx) => on_runtime(async || {
                let size = rx.attributes()?.max_message_size;
                let tx = registered(tx)?;
                let rx = registered(rx)?;
                let mut rx = RawIn {
                    q: &rx,
                    buf: vec![0; size],
                };
                side(test, parent, &mut RawOut(&tx), &mut rx).await
            }),
            Queues::Ipcraft(tx, rx) => on_runtime(async || {
                let tx = MessageQueue::from_std(tx).map_err(io::Error::from)?;
                let rx = MessageQueue::from_std(rx).map_err(io::Error::from)?;
                let mut rx = IpcraftIn {
                    q: &rx,
                    buf: vec![0; rx.attributes().max_message_size],
                };
                side(test, parent, &mut IpcraftOut(&tx), &mut rx).await
            }),
        }
    }
}

impl Case for AsyncMqueueCase {
    fn mechanism(&self) -> &'static str {
        "async-mqueue"
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        tests(plan)
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let (down, up) = self.names(std::process::id());
        let queues = self.queues(test, true, &down, &up)?;
        env.two_processes(self, placement, test, Stdio::null(), Stdio::null(), |_| {
            Self::run(test, true, queues)?
                .ok_or_else(|| io::Error::other("the parent side measured nothing"))
        })
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (down, up) = self.names(nix::unistd::getppid().as_raw() as u32);
        let queues = self.queues(test, false, &up, &down)?;
        Self::run(test, false, queues).map(drop)
    }
}
