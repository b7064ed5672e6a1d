//! The shared-memory channel of the `ipcraft` facade (`ipcraft::channel`): a lock-free ring
//! in a sealed memfd per direction, spinning briefly and then sleeping on a futex.
//!
//! Two channels per measurement: parent to child (its memfd is the child's stdin) and child
//! to parent (the child's stdout). There is no raw row: compare with the `cacheline` limit
//! and the `shm-spin`/`shm-futex` rows, which move the same bytes through one slot with
//! hand-written raw code.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use ipcraft::channel::{Receiver as ChannelRx, Sender as ChannelTx, Wait};
use ipcraft_core::Deadline;

use crate::harness::{CHILD_TIMEOUT, Case, Env, Impl, Kind, Placement, Sample, Test, child_stdio};
use crate::proto;

/// Ring bytes per direction for throughput: room for the largest message (64 KiB) many
/// times over.
const CAPACITY: usize = 1 << 20;
/// Ring bytes per direction for latency: a ring that stays in the caches (with 1 MiB
/// rings the round trip here was 160 ns with a p99 of 4 us, with 64 KiB rings 151 ns and
/// 230 ns: fresh lines come from further away).
const LATENCY_CAPACITY: usize = 1 << 16;

fn capacity(test: &Test) -> usize {
    match test.kind {
        Kind::Latency => LATENCY_CAPACITY,
        _ => CAPACITY,
    }
}

/// The channel case: `channel` waits adaptively (spins when the peer runs on another
/// CPU), `channel-sleep` sleeps on the futex at once ([`Wait::Sleep`]).
#[derive(Debug)]
pub struct ChannelCase {
    /// [`Wait::Sleep`] on both ends of both channels.
    pub sleep: bool,
}

/// The sending end, with one deadline for the whole measurement (a `Deadline::after` per
/// message would add a clock read to every message, which the raw rows do not pay).
struct Out(ChannelTx, Deadline);

impl proto::Sender for Out {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send_deadline(msg, self.1).map_err(io::Error::other)
    }
}

struct In {
    rx: ChannelRx,
    buf: Vec<u8>,
    deadline: Deadline,
}

impl proto::Receiver for In {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let n = self
            .rx
            .recv_into_deadline(&mut self.buf, self.deadline)
            .map_err(io::Error::other)?;
        proto::check_len(&self.buf[..n], len)
    }
}

impl ChannelCase {
    fn side(test: &Test, tx: Out, rx: In, parent: bool) -> io::Result<Option<Sample>> {
        let (mut tx, mut rx) = (tx, rx);
        if parent {
            proto::parent(test, &mut tx, &mut rx).map(Some)
        } else {
            proto::child(test, &mut tx, &mut rx).map(|()| None)
        }
    }
}

impl ChannelCase {
    fn wait(&self) -> Wait {
        if self.sleep {
            Wait::Sleep
        } else {
            Wait::Adaptive
        }
    }
}

fn chan(e: ipcraft::channel::ChannelError) -> io::Error {
    io::Error::other(e)
}

impl Case for ChannelCase {
    fn mechanism(&self) -> &'static str {
        if self.sleep {
            "channel-sleep"
        } else {
            "channel"
        }
    }

    fn implementation(&self) -> Impl {
        Impl::Ipcraft
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let (mut to_child, child_in): (ChannelTx, OwnedFd) =
            ChannelTx::anonymous(capacity(test)).map_err(chan)?;
        let (mut from_child, child_out): (ChannelRx, OwnedFd) =
            ChannelRx::anonymous(capacity(test)).map_err(chan)?;
        to_child.set_wait(self.wait());
        from_child.set_wait(self.wait());
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(child_in),
            Stdio::from(child_out),
            |_deadline| {
                let deadline = Deadline::after(CHILD_TIMEOUT);
                let rx = In {
                    rx: from_child,
                    buf: Vec::new(),
                    deadline,
                };
                Self::side(test, Out(to_child, deadline), rx, true)?
                    .ok_or_else(|| io::Error::other("the parent side measured nothing"))
            },
        )
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (stdin, stdout) = child_stdio()?;
        let deadline = Deadline::after(CHILD_TIMEOUT);
        let mut rx = ChannelRx::from_fd(stdin).map_err(chan)?;
        rx.set_wait(self.wait());
        let rx = In {
            rx,
            buf: Vec::new(),
            deadline,
        };
        let mut tx = ChannelTx::from_fd(stdout).map_err(chan)?;
        tx.set_wait(self.wait());
        let tx = Out(tx, deadline);
        Self::side(test, tx, rx, false).map(drop)
    }
}
