//! A cross-process channel on the lock-free ring in shared memory: [`Sender`] processes
//! (one, or several: MPSC) and one [`Receiver`] process.
//!
//! ```
//! use ipcraft::channel::{Receiver, Sender};
//! use std::process::{Command, Stdio};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The creating process: a channel of 64 KiB, nothing named. The memfd goes to the
//! // peer at spawn (here: as its stdin), or over a Unix socket (ipcraft::socket).
//! let (mut tx, fd) = Sender::anonymous(1 << 16)?;
//! # let (mut tx, fd) = (tx, fd); // (this example plays both processes)
//! # let mut rx = Receiver::from_fd(fd)?;
//! // In the child: `let mut rx = Receiver::from_fd(stdin_as_owned_fd)?;`
//! tx.send(b"hello")?;
//! assert_eq!(rx.recv()?, b"hello");
//!
//! // Zero copy: serialize straight into the ring, parse straight out of it.
//! use std::io::{Read, Write};
//! let mut slot = tx.reserve(64)?;
//! write!(slot, "{}:{}", "temperature", 21.5)?;
//! let n = slot.written();
//! slot.commit_len(n)?;
//! let mut slot = rx.recv_slot()?;
//! let mut text = String::new();
//! slot.read_to_string(&mut text)?;
//! slot.release();
//! assert_eq!(text, "temperature:21.5");
//! # Ok(()) }
//! ```
//!
//! # Making one
//!
//! - **Anonymous**: [`Sender::anonymous`] / [`Receiver::anonymous`] make a sealed memfd
//!   segment and return the descriptor for the peer ([`Receiver::from_fd`] /
//!   [`Sender::from_fd`]), handed over at spawn or with `SCM_RIGHTS`. Nothing is named, so
//!   nothing can leak.
//! - **Named**, for unrelated processes: [`Sender::create`] or [`Receiver::create`]
//!   (`/name`, mode 0600, `O_EXCL`; the creator removes the name when dropped), and
//!   [`Receiver::open`] / [`Sender::open`] on the other side.
//! - **MPSC**: [`Receiver::anonymous_mpsc`] / [`Receiver::create_mpsc`] make room for up to
//!   `producers` senders; each [`Sender::from_fd`] / [`Sender::open`] claims one.
//!
//! # Sending and receiving
//!
//! - Copying: [`Sender::send`], [`Receiver::recv`] (a new `Vec`), [`Receiver::recv_into`]
//!   (your buffer, no allocation).
//! - In place: [`Sender::reserve`] gives a [`SendSlot`] to write (`write_at`, `io::Write`),
//!   then `commit` (or `stage` several and [`Sender::flush`] them with one store);
//!   [`Receiver::recv_slot`] gives a [`RecvSlot`] to read (`read_at`, `io::Read`), then
//!   `release` (or `consume` several and [`Receiver::flush`]).
//! - Every call that can wait has a `_timeout` and a `_deadline` form (monotonic clock)
//!   and a `try_` form that reports [`ChannelError::Full`] or [`ChannelError::Empty`]
//!   (`io::ErrorKind::WouldBlock` once converted) instead of waiting.
//!
//! # MPSC: one SPSC ring per producer
//!
//! The MPSC channel is one single-producer ring per sender in one segment, with one shared
//! doorbell for the receiver, rather than one ring that producers claim space in with
//! compare-and-swap. Why: each producer keeps the SPSC ring's fast path (no atomic
//! read-modify-write, no cache line shared with other producers) and the algorithm loom
//! checks; and a producer killed between claiming space and committing it cannot block the
//! others (in a shared ring the consumer would wait at its hole forever, or need a recovery
//! protocol). The cost: `producers` x `capacity` bytes, and a receiver that polls up to
//! `producers` commit words (round robin, so no sender starves the others). Order is kept
//! per sender, not across senders ([`RecvSlot::sender`] says whose a message is).
//!
//! A channel made for `producers` senders serves that many *at a time*: a slot is claimed
//! by a lock byte the kernel drops when the sender dies, and once its sender closed or died
//! and the receiver received everything it committed, the slot is free for the next
//! sender (see "Restarting an end"). The receiver reports `Disconnected` once every slot
//! was claimed and every sender closed or died; with fewer senders than slots it keeps
//! waiting for the rest, unless told not to ([`Receiver::set_claim_deadline`]).
//!
//! # Choosing a capacity
//!
//! For latency, a ring that stays in the caches: on the project's machine a 64 B round
//! trip took 151 ns (p99 ~230 ns) with 64 KiB rings and 160 ns (p99 4 us) with 1 MiB
//! rings, whose fresh lines come from further away. For throughput, room for many
//! messages: 1 MiB moved 4 KiB messages at ~8 M/s and 64 KiB ones at ~60 GB/s.
//!
//! # Waiting without losing speed
//!
//! A side that finds the ring empty (or full) spins, polling the commit word at its
//! position (or reloading the receiver's position), only when the peer last ran on
//! another CPU (on the same CPU, spinning only delays the peer); then it yields, then
//! announces that it sleeps (a flag word), re-checks, and sleeps on a shared futex word;
//! the other side, after publishing, wakes it only if the flag is set, so the fast path
//! makes no system call. The protocol is [`crate::ring::wake`], checked by loom for lost
//! wake-ups. `crossbeam_utils::Backoff` is not used: its exponential pauses (up to 64 per
//! check) would add their length to the latency of a message that arrives mid-pause; a
//! check per `spin_loop` keeps the reaction time at one pause.
//!
//! # When the peer dies
//!
//! Sleeps are sliced (100 ms) to notice a peer that died without closing: each side holds
//! an open-file-description lock on a byte of the segment, which the kernel releases when
//! the process dies. The receiver gets everything committed, then
//! [`ChannelError::Disconnected`] once every sender slot was claimed and every sender
//! closed or died; a sender gets `Disconnected` at its next send once the receiver closed,
//! and, if the receiver died without closing, once the channel is full (a send into free
//! room does not probe the peer: that would cost a system call per message).
//!
//! `Disconnected` says that no peer is there *now*: a restarted peer can take the dead
//! one's place (next section), and the channel then carries on.
//!
//! # Restarting an end
//!
//! A crash-only service restarts the process that died, and the new process rejoins the
//! channel with the same calls ([`Receiver::open`] / [`Receiver::from_fd`],
//! [`Sender::open`] / [`Sender::from_fd`]):
//!
//! - **Receiver**: a new receiver takes over from one that died or closed (never from
//!   one that lives: [`ChannelError::ReceiverTaken`]; [`Receiver::took_over`] says which
//!   happened). It receives every committed message the previous receiver had not
//!   released, exactly once, in order. A message the previous receiver released
//!   ([`RecvSlot::release`], [`RecvSlot::consume`], or any `recv` that returned it) is gone
//!   with it, even if it died before acting on it: acknowledge a message only once its
//!   work is done, or design for at-most-once at the receiver. A message it was reading
//!   (a [`RecvSlot`] not yet released) is received again by the new receiver. Senders
//!   told `Disconnected` meanwhile can send again once the new receiver is there.
//! - **Sender**: a new sender claims the slot of one that died or closed once the
//!   receiver has received everything that sender committed (what it reserved or staged
//!   but never published is dropped); until then its slot counts as taken
//!   ([`ChannelError::SendersFull`]: retry). The receiver frees such slots when it looks
//!   for messages (a wait, a `try_` call, and every 256 messages while it is busy), at most
//!   one slice (100 ms) after the sender died, once the slot's liveness lock says so (a
//!   closed flag alone never frees a slot). Order is kept per
//!   slot: the old sender's messages all come before the new one's.
//! - **Senders that never came**: a receiver waits for every slot to be claimed before
//!   it reports `Disconnected`; [`Receiver::set_claim_deadline`] ends that wait.
//! - **The name**: a named channel's creator removes the name when it drops. One whose
//!   creator died keeps it: every end that opened it counts as a user
//!   ([`ipcraft_shm::Segment::mark_in_use`]), so [`ipcraft_shm::remove_stale`] leaves it
//!   while any end lives, and removes it once all are gone.
//!
//! How the new end knows where to carry on from, and why a restart never races with a
//! live end, is in the source (`channel/restart.rs`).
//!
//! The locks belong to the open file description, which a `fork` shares: while a child
//! forked (without exec) from a peer runs, the peer does not look dead. The channel's
//! descriptors are close-on-exec, so an exec'd child holds nothing; but a child that another
//! thread is spawning holds them between its fork and its exec, so an end that just closed
//! may look alive for that moment (a takeover or a slot claim right after it may report
//! `ReceiverTaken` or `SendersFull`: retry). A forked process that drops its copy of an end
//! closes nothing: only the process that made the end says it closed.
//!
//! # Untrusted peers
//!
//! Every position and length read from the segment is validated (see [`crate::ring`]): a
//! peer that scribbles over the segment causes [`ChannelError::Corrupted`], garbage
//! payloads or, at worst, waits that end at their deadline; never an out-of-bounds access
//! or a panic in this process. In an MPSC channel, a ring found corrupted is reported once
//! and then skipped (its sender is told: [`ChannelError::Corrupted`]), so a broken sender
//! cannot stop the receiver from serving the others; once that sender is gone, its ring is
//! cleared and its slot serves a new sender. But all senders map the same
//! segment: a hostile sender can corrupt another sender's ring, so MPSC senders must trust
//! each other as far as delivery goes (never as far as memory safety).
//!
//! What validation cannot stop: a named channel's file can be shrunk by any process
//! allowed to write it (its owner: mode `0600`), after which touching the lost pages raises
//! `SIGBUS`, as with any shared mapping. Anonymous channels are sealed against shrinking
//! and growing; a segment sealed against writing is refused with
//! [`ipcraft_shm::Error::ReadOnly`] (a read-only mapping cannot hold the channel's
//! atomics).
//! Between processes that do not trust each other, use an anonymous channel.
//!
//! The one assumption under all of this: payload bytes move with plain copies
//! (`ptr::copy_nonoverlapping`, which compiles to `memcpy`) between the segment and this
//! process's own buffers, while a hostile peer may write the same segment bytes at the
//! same time. Rust's memory model calls that a data race; what keeps it from becoming
//! undefined behaviour *in this process*: the segment is memory the compiler knows
//! nothing about (a foreign mapping reached only through a raw pointer, never through a
//! `&`/`&mut` to its bytes, so no reference promises the bytes do not change); no value is
//! read from it twice (every length and position is loaded once through an atomic,
//! validated, and then used from a local, so a change between two reads cannot break a
//! check); and on the hardware Linux runs on, a copy racing with writes yields some
//! mixture of old and new bytes, never a trap. The worst a peer gets is garbage in the
//! copied payload, which is why payloads reach you only as copies
//! ([`RecvSlot::read_at`], [`io::Read`]) and never as a reference into the segment.
//!
//! # Layout (version 3)
//!
//! The segment's data area, in bytes; each group of words has a 64-byte cache line of its
//! own (the role of `crossbeam_utils::CachePadded` in [`crate::ring::HeapRing`]), so that
//! no line is written by both sides on the fast path:
//!
//! | offset | what | written by |
//! |---|---|---|
//! | 0 | magic `IPCRING1`, version, capacity per ring, number of sender slots | creator, once |
//! | 64 | receiver's doorbell: sleeping flag, futex sequence | receiver (sleep/wake), senders (wake) |
//! | 128 | receiver's state: closed, CPU, taken | receiver, rarely |
//! | 256 + 256 i | slot i: producer position (line +0), consumer position (+64), sender's doorbell (+128), sender's state: state (free, claimed, vacant), closed, CPU, poisoned (+192) | as named |
//! | 256 + 256 n + i c | ring i's data: records (commit word, payload) | sender i, then receiver |
//! | 256 + 256 n + n c + 8 i | ring i's journal: how far the receiver consumed it (lines of their own) | receiver, at every release |
//!
//! | after the journals, at a 64-byte boundary (optional) | the channel's tag: magic `IPCTAG01`, length, bytes (a typed channel's message type, see [`crate::typed`]) | creator, once, before the header |
//!
//! Liveness locks: byte 1 of the file for the receiver, byte 2 + i for sender i (byte 0
//! is `ipcraft-shm`'s creator lock).
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

#[cfg(test)]
mod heap_tests;
mod layout;
mod named;
mod receiver;
mod restart;
mod sender;
mod tag;
#[cfg(feature = "tokio")]
pub mod tokio;
mod wait;

use crate::ring::slots::{SLOT_CLAIMED, SLOT_FREE, SlotWords};
use crate::ring::wake::{Doorbell, announce, notify, notify_each, withdraw};
use crate::ring::{
    Consumer, Producer, ReadSlot, RingError, RingMemory, WriteSlot, max_message_len,
};
use crate::shared::SharedRegion;
use ipcraft_core::{Deadline, SysError};
use ipcraft_shm::{Segment, SegmentOptions};
use ipcraft_sync::futex;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use layout::*;
pub use layout::{MAX_PRODUCERS, SlotRing};
pub use named::NamedOptions;
pub use receiver::{Receiver, RecvSlot};
use restart::*;
pub use sender::{SendSlot, Sender};
pub(crate) use tag::Unclaimed;
use wait::*;

/// How an end waits while the channel is full (sender) or empty (receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Wait {
    /// Spin (only when the peer last ran on another CPU), then yield, then sleep on the
    /// futex: the lowest latency, for a CPU that is busy while it waits.
    #[default]
    Adaptive,
    /// Sleep on the futex as soon as the channel is found full or empty (after one more
    /// look): no CPU spent waiting; each wait costs a futex wake-up (on a VM whose idle
    /// CPU halts, tens of microseconds across cores).
    Sleep,
}

/// Why a channel operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChannelError {
    /// The other side closed or died; everything it committed was received first.
    Disconnected,
    /// The timeout passed.
    TimedOut,
    /// `try_send`: no room now (nothing was sent).
    Full,
    /// `try_recv`: no message now.
    Empty,
    /// A message larger than the ring can ever hold.
    TooLarge {
        /// Its length.
        len: usize,
        /// The largest message this channel takes.
        max: usize,
    },
    /// The receive buffer is smaller than the next message, which stays in the channel.
    BufferTooSmall {
        /// The next message's length.
        needed: usize,
    },
    /// `commit_len` of more bytes than were reserved (nothing was sent).
    BeyondReserved {
        /// The length asked for.
        len: usize,
        /// The bytes reserved.
        reserved: usize,
    },
    /// A channel of another layout version.
    IncompatibleVersion {
        /// The version found.
        found: u32,
        /// The version this crate speaks.
        expected: u32,
    },
    /// The capacity is not a power of two of at least 16 bytes (and at most 2^31).
    BadCapacity(usize),
    /// The number of senders is not between 1 and [`MAX_PRODUCERS`].
    BadProducers(usize),
    /// Every sender slot of the channel is taken: by a live sender, or by one that closed
    /// or died whose messages the receiver has not all received yet (retry later).
    SendersFull {
        /// How many senders the channel takes.
        max: usize,
    },
    /// The channel's receiver lives (one that closed or died is taken over).
    ReceiverTaken,
    /// The shared ring breaks the protocol (a buggy or hostile peer).
    Corrupted(&'static str),
    /// The shared memory failed or is not a channel.
    Shm(ipcraft_shm::Error),
    /// A system call failed.
    Sys(SysError),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected => f.write_str("the other side of the channel is gone"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Full => f.write_str("the channel is full"),
            Self::Empty => f.write_str("the channel is empty"),
            Self::TooLarge { len, max } => {
                write!(f, "a message of {len} bytes can never fit: at most {max}")
            }
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "the next message has {needed} bytes, more than the buffer holds"
                )
            }
            Self::BeyondReserved { len, reserved } => {
                write!(f, "cannot send {len} bytes: only {reserved} were reserved")
            }
            Self::IncompatibleVersion { found, expected } => write!(
                f,
                "the channel has layout version {found}; this version of ipcraft speaks {expected}"
            ),
            Self::BadCapacity(c) => write!(
                f,
                "capacity {c} is not a power of two between 16 bytes and 2 GiB"
            ),
            Self::BadProducers(n) => write!(
                f,
                "{n} senders: a channel takes between 1 and {MAX_PRODUCERS}"
            ),
            Self::SendersFull { max } => {
                write!(
                    f,
                    "all {max} sender slots of the channel are taken (a slot whose sender \
                     closed or died frees up once the receiver has received its messages)"
                )
            }
            Self::ReceiverTaken => f.write_str("the channel already has a live receiver"),
            Self::Corrupted(w) => write!(f, "the channel is corrupted: {w}"),
            Self::Shm(e) => e.fmt(f),
            Self::Sys(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Shm(e) => Some(e),
            Self::Sys(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ipcraft_shm::Error> for ChannelError {
    fn from(e: ipcraft_shm::Error) -> Self {
        Self::Shm(e)
    }
}

impl From<RingError> for ChannelError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::TooLarge { len, max } => Self::TooLarge { len, max },
            RingError::Corrupted(w) => Self::Corrupted(w),
            RingError::BufferTooSmall { needed } => Self::BufferTooSmall { needed },
            RingError::BeyondReserved { len, reserved } => Self::BeyondReserved { len, reserved },
            // Full and Empty are handled by the callers.
            _ => Self::Corrupted("unexpected ring state"),
        }
    }
}

impl From<ChannelError> for io::Error {
    fn from(e: ChannelError) -> Self {
        let kind = match &e {
            ChannelError::Disconnected => io::ErrorKind::BrokenPipe,
            ChannelError::TimedOut => io::ErrorKind::TimedOut,
            ChannelError::Full | ChannelError::Empty => io::ErrorKind::WouldBlock,
            ChannelError::TooLarge { .. }
            | ChannelError::BeyondReserved { .. }
            | ChannelError::BadCapacity(_)
            | ChannelError::BadProducers(_) => io::ErrorKind::InvalidInput,
            ChannelError::BufferTooSmall { .. } | ChannelError::Corrupted(_) => {
                io::ErrorKind::InvalidData
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
