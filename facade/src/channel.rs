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
//! A channel made for `producers` senders serves that many over its life: a slot is
//! claimed by a lock byte the kernel drops when the sender dies, and is never reused. The
//! receiver reports `Disconnected` once every slot was claimed and every sender closed or
//! died; with fewer senders than slots it keeps waiting for the rest (use timeouts, or
//! size the channel to the senders you will start).
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
//! The locks belong to the open file description, which a `fork` shares: while a child
//! forked (without exec) from a peer runs, the peer does not look dead. The channel's
//! descriptors are close-on-exec, so an exec'd child holds nothing.
//!
//! # Untrusted peers
//!
//! Every position and length read from the segment is validated (see [`crate::ring`]): a
//! peer that scribbles over the segment causes [`ChannelError::Corrupted`], garbage
//! payloads or, at worst, waits that end at their deadline; never an out-of-bounds access
//! or a panic in this process. In an MPSC channel, a ring found corrupted is reported once
//! and then skipped (its sender is told: [`ChannelError::Corrupted`]), so a broken sender
//! cannot stop the receiver from serving the others. But all senders map the same
//! segment: a hostile sender can corrupt another sender's ring, so MPSC senders must trust
//! each other as far as delivery goes (never as far as memory safety).
//!
//! What validation cannot stop: a named channel's file can be shrunk by any process
//! allowed to write it (its owner: mode `0600`), after which touching the lost pages raises
//! `SIGBUS`, as with any shared mapping. Anonymous channels are sealed against shrinking
//! and growing; a segment sealed against writing is refused with
//! [`ipcraft_shm::Error::ReadOnly`] (a read-only mapping cannot hold the channel's
//! atomics). Between processes that do not trust each other, use an anonymous channel.
//!
//! # Layout (version 2)
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
//! | 256 + 256 i | slot i: producer position (line +0), consumer position (+64), sender's doorbell (+128), sender's state: claimed, closed, CPU, poisoned (+192) | as named |
//! | 256 + 256 n + i c | ring i's data: records (commit word, payload) | sender i, then receiver |
//!
//! Liveness locks: byte 1 of the file for the receiver, byte 2 + i for sender i (byte 0
//! is `ipcraft-shm`'s creator lock).
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

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
use std::time::Duration;

/// `b"IPCRING1"` little-endian, at the start of the channel's segment data.
const MAGIC: u64 = u64::from_le_bytes(*b"IPCRING1");
/// Layout version 2: commit words in records, sender slots (version 1 polled positions).
const VERSION: u32 = 2;
const H_CAPACITY: usize = 12;
const H_PRODUCERS: usize = 16;
/// The receiver's doorbell (its own cache line: read by every sender after each commit,
/// written only when the receiver goes to sleep or wakes).
const CONSUMER_SLEEPING: usize = 64;
const DATA_SEQ: usize = 68;
/// The receiver's state (a line written rarely).
const RECEIVER_CLOSED: usize = 128;
const RECEIVER_CPU: usize = 136;
/// Set by the receiver once it holds its lock byte: from then on, a free lock byte means
/// the receiver died.
const RECEIVER_TAKEN: usize = 140;
/// Sender slots: control lines, one block of [`SLOT_STRIDE`] bytes each.
const SLOTS: usize = 256;
const SLOT_STRIDE: usize = 256;
/// Within a slot: the producer's position (its own line, written per publish).
const S_PRODUCER_POS: usize = 0;
/// The consumer's position (its own line, written per release, read by the producer only
/// when the ring looks full).
const S_CONSUMER_POS: usize = 64;
/// The sender's doorbell.
const S_PRODUCER_SLEEPING: usize = 128;
const S_SPACE_SEQ: usize = 132;
/// The sender's state (a line written rarely). Claimed: set by the sender once it holds
/// the slot's lock byte (slots are never reused).
const S_CLAIMED: usize = 192;
const S_CLOSED: usize = 200;
const S_CPU: usize = 204;
/// Set by the receiver when it found this slot's ring corrupted and stopped reading it.
const S_POISONED: usize = 208;
/// The most senders an MPSC channel takes.
pub const MAX_PRODUCERS: usize = 64;
/// Lock bytes for liveness (open-file-description locks on the segment): the receiver's,
/// then one per sender slot. (Byte 0 is the shm crate's creator-liveness lock.)
const RECEIVER_LOCK: i64 = 1;
/// Busy-wait this many checks (when the peer runs on another CPU) before yielding.
const SPIN: u32 = 64;
/// Then yield this many times (the peer may be waiting for this core) before sleeping.
const YIELDS: u32 = 64;
const SLICE: Duration = Duration::from_millis(100);
/// The shm header tag of a named channel segment.
const TAG: u64 = u64::from_le_bytes(*b"IPCRCHN1");

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
    /// Every sender slot of the channel is taken.
    SendersFull {
        /// How many senders the channel takes.
        max: usize,
    },
    /// The channel already has its receiver.
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
                write!(f, "all {max} sender slots of the channel are taken")
            }
            Self::ReceiverTaken => f.write_str("the channel already has a receiver"),
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

/// Where things are in a channel segment.
#[derive(Debug, Clone, Copy)]
struct Layout {
    capacity: usize,
    producers: usize,
}

impl Layout {
    fn new(producers: usize, capacity: usize) -> Result<Self, ChannelError> {
        if !capacity.is_power_of_two() || !(16..=1 << 31).contains(&capacity) {
            return Err(ChannelError::BadCapacity(capacity));
        }
        if !(1..=MAX_PRODUCERS).contains(&producers) {
            return Err(ChannelError::BadProducers(producers));
        }
        Ok(Self {
            capacity,
            producers,
        })
    }
    /// Offset of the first ring's data (64-byte aligned).
    fn data(&self) -> usize {
        SLOTS + self.producers * SLOT_STRIDE
    }
    fn slot(&self, i: usize) -> usize {
        SLOTS + i * SLOT_STRIDE
    }
    /// Bytes of the whole segment (`None` on overflow).
    fn size(&self) -> Option<usize> {
        self.producers
            .checked_mul(self.capacity)?
            .checked_add(self.data())
    }
    fn ring(&self, region: &Arc<SharedRegion>, i: usize) -> SlotRing {
        SlotRing {
            region: region.clone(),
            ctl: self.slot(i),
            data: self.data() + i * self.capacity,
            cap: self.capacity,
        }
    }
}

/// One sender's ring in the shared segment.
#[derive(Debug)]
pub struct SlotRing {
    region: Arc<SharedRegion>,
    /// Offset of the slot's control lines.
    ctl: usize,
    /// Offset of its data area.
    data: usize,
    cap: usize,
}

impl SlotRing {
    fn producer_bell(&self) -> ShmBell<'_> {
        ShmBell {
            region: &self.region,
            sleeping: self.ctl + S_PRODUCER_SLEEPING,
            seq: self.ctl + S_SPACE_SEQ,
        }
    }
}

fn consumer_bell(region: &SharedRegion) -> ShmBell<'_> {
    ShmBell {
        region,
        sleeping: CONSUMER_SLEEPING,
        seq: DATA_SEQ,
    }
}

impl RingMemory for SlotRing {
    #[inline]
    fn capacity(&self) -> usize {
        self.cap
    }
    #[inline]
    fn load_position(&self, producer: bool) -> u64 {
        let off = if producer {
            S_PRODUCER_POS
        } else {
            S_CONSUMER_POS
        };
        self.region
            .u64(self.ctl + off)
            .map_or(u64::MAX, |w| w.load(Ordering::Acquire))
    }
    #[inline]
    fn store_position(&self, producer: bool, value: u64) {
        let off = if producer {
            S_PRODUCER_POS
        } else {
            S_CONSUMER_POS
        };
        if let Some(w) = self.region.u64(self.ctl + off) {
            w.store(value, Ordering::Release);
        }
    }
    #[inline]
    fn write_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.region.u64(self.data + offset) {
            w.store(value, Ordering::Relaxed);
        }
    }
    #[inline]
    fn read_word(&self, offset: usize) -> u64 {
        self.region
            .u64(self.data + offset)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
    #[inline]
    fn commit_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.region.u64(self.data + offset) {
            w.store(value, Ordering::Release);
        }
    }
    #[inline]
    fn poll_word(&self, offset: usize) -> u64 {
        self.region
            .u64(self.data + offset)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
    #[inline]
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.region.copy_in(self.data + offset, src);
    }
    #[inline]
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        if !self.region.copy_out(self.data + offset, dst) {
            dst.fill(0);
        }
    }
}

/// A side's doorbell in the shared segment (see [`crate::ring::wake`]).
struct ShmBell<'a> {
    region: &'a SharedRegion,
    sleeping: usize,
    seq: usize,
}

impl Doorbell for ShmBell<'_> {
    fn load_seq(&self) -> u32 {
        self.region
            .u32(self.seq)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
    /// Relaxed, as in the loom model: [`announce`] orders it with a fence.
    fn set_sleeping(&self, on: bool) {
        if let Some(w) = word32(self.region, self.sleeping) {
            w.store(u32::from(on), Ordering::Relaxed);
        }
    }
    #[inline]
    fn is_sleeping(&self) -> bool {
        flag(self.region, self.sleeping)
    }
    fn ring(&self) {
        bump(self.region, self.seq);
    }
    /// One slice at most, so that a dead peer is noticed (see the module docs).
    fn wait(&self, seen: u32, timeout: Option<Duration>) {
        if let Some(w) = self.region.u32(self.seq) {
            let slice = timeout.map_or(SLICE, |r| r.min(SLICE));
            futex::wait(w, seen, Some(slice));
        }
    }
}

fn word32(region: &SharedRegion, off: usize) -> Option<&AtomicU32> {
    region.u32(off)
}

#[inline]
fn flag(region: &SharedRegion, off: usize) -> bool {
    word32(region, off).is_some_and(|w| w.load(Ordering::Acquire) != 0)
}

fn set_flag(region: &SharedRegion, off: usize, v: u32) {
    if let Some(w) = word32(region, off) {
        w.store(v, Ordering::SeqCst);
    }
}

/// Claim a word that starts at 0 (true: this process got it).
fn claim(region: &SharedRegion, off: usize) -> bool {
    word32(region, off).is_some_and(|w| {
        w.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

/// Bump a futex sequence word and wake everyone sleeping on it.
fn bump(region: &SharedRegion, off: usize) {
    if let Some(w) = word32(region, off) {
        w.fetch_add(1, Ordering::Release);
        futex::wake(w, i32::MAX);
    }
}

/// The CPU this thread runs on (`u32::MAX` when unknown), published at `off` if it changed.
fn publish_cpu(region: &SharedRegion, off: usize) -> u32 {
    let cpu = nix::sched::sched_getcpu().map_or(u32::MAX, |c| c as u32);
    if let Some(w) = word32(region, off) {
        if w.load(Ordering::Relaxed) != cpu {
            w.store(cpu, Ordering::Relaxed);
        }
    }
    cpu
}

fn cpu_of(region: &SharedRegion, off: usize) -> u32 {
    word32(region, off).map_or(u32::MAX, |w| w.load(Ordering::Relaxed))
}

/// Write the channel header into a fresh segment.
fn init(seg: Segment, layout: Layout) -> Result<(Arc<SharedRegion>, Layout), ChannelError> {
    seg.write(0, &MAGIC)?;
    seg.write(8, &VERSION)?;
    seg.write(H_CAPACITY, &(layout.capacity as u32))?;
    seg.write(H_PRODUCERS, &(layout.producers as u32))?;
    let region = SharedRegion::new(seg).ok_or(ChannelError::Corrupted("empty segment"))?;
    Ok((Arc::new(region), layout))
}

type Made = (Arc<SharedRegion>, Layout);

/// Make an anonymous channel segment, and a descriptor for the peer.
fn new_anonymous(producers: usize, capacity: usize) -> Result<(Made, OwnedFd), ChannelError> {
    let layout = Layout::new(producers, capacity)?;
    let size = layout.size().ok_or(ChannelError::BadCapacity(capacity))?;
    let seg = SegmentOptions::new().anonymous(size)?;
    let fd = seg
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| ChannelError::Sys(SysError::from_io("dup", &e)))?;
    Ok((init(seg, layout)?, fd))
}

/// Make a named channel segment (mode 0600, `O_EXCL`; removed when its creator drops).
fn new_named(name: &str, producers: usize, capacity: usize) -> Result<Made, ChannelError> {
    let layout = Layout::new(producers, capacity)?;
    let size = layout.size().ok_or(ChannelError::BadCapacity(capacity))?;
    let seg = SegmentOptions::new().tag(TAG).create(name, size)?;
    init(seg, layout)
}

/// Validate a channel segment someone else made.
fn attach(seg: Segment) -> Result<Made, ChannelError> {
    // A memfd its sender sealed against writing (`F_SEAL_WRITE`/`F_SEAL_FUTURE_WRITE`) is
    // mapped read-only: the first atomic store would kill this process with SIGSEGV.
    if seg.is_read_only() {
        return Err(ChannelError::Shm(ipcraft_shm::Error::ReadOnly));
    }
    if seg.len() < SLOTS + SLOT_STRIDE + 16 {
        return Err(ChannelError::Corrupted("segment too small for a channel"));
    }
    let magic: u64 = seg.read(0)?;
    let version: u32 = seg.read(8)?;
    if magic != MAGIC {
        return Err(ChannelError::Corrupted("not a channel segment"));
    }
    if version != VERSION {
        return Err(ChannelError::IncompatibleVersion {
            found: version,
            expected: VERSION,
        });
    }
    let cap = seg.read::<u32>(H_CAPACITY)? as usize;
    let producers = seg.read::<u32>(H_PRODUCERS)? as usize;
    let layout = Layout::new(producers, cap)
        .map_err(|_| ChannelError::Corrupted("bad capacity or sender count in the header"))?;
    if layout.size().is_none_or(|size| size > seg.len()) {
        return Err(ChannelError::Corrupted(
            "capacity does not match the segment",
        ));
    }
    let region = SharedRegion::new(seg).ok_or(ChannelError::Corrupted("empty segment"))?;
    Ok((Arc::new(region), layout))
}

fn attach_fd(fd: OwnedFd) -> Result<Made, ChannelError> {
    attach(Segment::from_fd(fd, SLOTS + SLOT_STRIDE + 16)?)
}

fn open_named(name: &str) -> Result<Made, ChannelError> {
    attach(SegmentOptions::new().tag(TAG).open(name)?)
}

/// A fresh open file description of the segment (an inherited or duplicated descriptor
/// shares its description with the peer's, so its locks could not tell them apart).
fn own_description(seg: &Segment) -> Result<OwnedFd, ChannelError> {
    let path = format!("/proc/self/fd/{}", seg.as_raw_fd());
    nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ChannelError::Sys(SysError::new("open", e).on(path)))
}

/// Take the write lock on `byte` (`false`: another end holds it). The lock is the role's
/// claim and its liveness signal at once: the kernel drops it when the process dies, so
/// there is no moment at which a live end looks dead.
fn lock_byte(fd: &OwnedFd, byte: i64) -> Result<bool, ChannelError> {
    let lock = flock(nix::libc::F_WRLCK as i16, byte);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(ChannelError::Sys(SysError::new("fcntl(F_OFD_SETLK)", e))),
    }
}

/// Unlock `byte` (a claim given back).
fn unlock_byte(fd: &OwnedFd, byte: i64) {
    let lock = flock(nix::libc::F_UNLCK as i16, byte);
    let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&lock));
}

fn peer_alive(own: &OwnedFd, byte: i64) -> bool {
    let mut probe = flock(nix::libc::F_WRLCK as i16, byte);
    match fcntl(own, FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => probe.l_type != nix::libc::F_UNLCK as i16,
        Err(_) => true,
    }
}

fn flock(kind: i16, byte: i64) -> nix::libc::flock {
    nix::libc::flock {
        l_type: kind,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    }
}

fn slot_lock(i: usize) -> i64 {
    RECEIVER_LOCK + 1 + i as i64
}

/// The sending end of a cross-process channel.
#[derive(Debug)]
pub struct Sender {
    tx: Producer<SlotRing>,
    lock: OwnedFd,
    /// This sender's slot.
    slot: usize,
    /// Sends since the CPU was last published.
    sends: u32,
    wait: Wait,
}

/// The receiving end of a cross-process channel.
#[derive(Debug)]
pub struct Receiver {
    rx: Vec<Consumer<SlotRing>>,
    /// Rings a sender corrupted: reported once, then skipped.
    poisoned: Vec<bool>,
    /// Where the round robin starts next.
    next: usize,
    region: Arc<SharedRegion>,
    lock: OwnedFd,
    wait: Wait,
}

impl Sender {
    /// A new anonymous channel of `capacity` bytes (a power of two): the sender, and the
    /// memfd to hand to the receiving process ([`Receiver::from_fd`]) at spawn or over a
    /// Unix socket.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadCapacity`]; [`ChannelError::Shm`]; [`ChannelError::Sys`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (made, fd) = new_anonymous(1, capacity)?;
        Ok((Self::with(made)?, fd))
    }

    /// The sending end of a channel whose memfd was received; in an MPSC channel, claims
    /// the next free sender slot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] or [`ChannelError::Corrupted`] for a descriptor that is not a
    /// sealed channel segment; [`ChannelError::IncompatibleVersion`];
    /// [`ChannelError::SendersFull`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::with(attach_fd(fd)?)
    }

    /// Create a named channel (`/name`, mode 0600) of `capacity` bytes and be its sender;
    /// an unrelated process opens the other end with [`Receiver::open`]. The creator owns
    /// the name and removes it when dropped.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadCapacity`]; [`ChannelError::Shm`] (bad name, `AlreadyExists`).
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        Self::with(new_named(name, 1, capacity)?)
    }

    /// Open the sending end of a named channel another process created (claiming a free
    /// sender slot).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] (`NotFound`, `WrongTag` for a segment that is not a channel);
    /// [`ChannelError::IncompatibleVersion`]; [`ChannelError::SendersFull`];
    /// [`ChannelError::Corrupted`].
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        Self::with(open_named(name)?)
    }

    fn with((region, layout): Made) -> Result<Self, ChannelError> {
        let lock = own_description(region.segment())?;
        // A slot is ours once we hold its lock byte and then flip its claimed word (a
        // slot whose sender died stays claimed: slots are never reused).
        let mut found = None;
        for i in 0..layout.producers {
            let claimed = layout.slot(i) + S_CLAIMED;
            if flag(&region, claimed) || !lock_byte(&lock, slot_lock(i))? {
                continue;
            }
            if claim(&region, claimed) {
                found = Some(i);
                break;
            }
            unlock_byte(&lock, slot_lock(i));
        }
        let slot = found.ok_or(ChannelError::SendersFull {
            max: layout.producers,
        })?;
        let ctl = layout.slot(slot);
        publish_cpu(&region, ctl + S_CPU);
        Ok(Self {
            tx: Producer::attach(layout.ring(&region, slot)),
            lock,
            slot,
            sends: 0,
            wait: Wait::default(),
        })
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        max_message_len(self.tx.memory().capacity())
    }

    /// Which sender slot this sender has (0 in a single-sender channel).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// How this end waits while the channel is full (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    fn region(&self) -> &SharedRegion {
        &self.tx.memory().region
    }

    /// `Disconnected` once the receiver closed (a flag on a line written once: no
    /// syscall). A receiver that died is noticed when the channel is full (see the module
    /// docs): until then, sends into free room succeed.
    #[inline]
    fn check_open(&self) -> Result<(), ChannelError> {
        let r = self.region();
        if flag(r, self.tx.memory().ctl + S_POISONED) {
            Err(ChannelError::Corrupted(
                "the receiver found this sender's ring corrupted and stopped reading it",
            ))
        } else if flag(r, RECEIVER_CLOSED) {
            Err(ChannelError::Disconnected)
        } else {
            Ok(())
        }
    }

    /// Wake the receiver if it announced sleep.
    #[inline]
    fn notify_receiver(&mut self) {
        self.sends = self.sends.wrapping_add(1);
        if self.sends.is_multiple_of(1024) {
            // Keep the CPU the receiver compares with (to decide whether to spin) current.
            let ctl = self.tx.memory().ctl;
            publish_cpu(self.region(), ctl + S_CPU);
        }
        notify(&consumer_bell(self.region()));
    }

    /// Send `msg`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Disconnected`] when the receiver closed or died;
    /// [`ChannelError::TooLarge`]; [`ChannelError::Corrupted`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.send_deadline(msg, Deadline::never())
    }

    /// [`send`](Self::send), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`ChannelError::TimedOut`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), ChannelError> {
        self.send_deadline(msg, Deadline::after(timeout))
    }

    /// [`send`](Self::send), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), ChannelError> {
        self.check_open()?;
        wait_loop(
            self,
            |s| {
                s.tx.try_send(msg)?;
                s.notify_receiver();
                Ok(())
            },
            deadline,
        )
    }

    /// Send `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Full`] (nothing was sent), and as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.check_open()?;
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.notify_receiver();
                Ok(())
            }
            Err(RingError::Full) => Err(self.full_now()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reserve room for a message of up to `len` bytes if there is room now (see
    /// [`reserve`](Self::reserve)).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.check_open()?;
        match self.tx.prepare(len) {
            Ok(_) => {}
            Err(RingError::Full) => return Err(self.full_now()),
            Err(e) => return Err(e.into()),
        }
        let slot = self.tx.reserve(len)?;
        Ok(SendSlot { slot })
    }

    /// A `try_` call found no room: `Full`, or why the receiver will never make room.
    fn full_now(&mut self) -> ChannelError {
        // Padding may have been published: the receiver must pass it.
        self.wake_peers();
        if self.peer_gone(true) {
            self.gone_error()
        } else {
            ChannelError::Full
        }
    }

    /// Reserve room for a message of up to `len` bytes, waiting while the channel is full;
    /// write it in place through the [`SendSlot`], then commit it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.reserve_deadline(len, Deadline::never())
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<SendSlot<'_>, ChannelError> {
        self.reserve_deadline(len, Deadline::after(timeout))
    }

    /// [`reserve`](Self::reserve), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<SendSlot<'_>, ChannelError> {
        self.check_open()?;
        wait_loop(self, |s| s.tx.prepare(len).map(drop), deadline)?;
        let slot = self.tx.reserve(len)?;
        Ok(SendSlot { slot })
    }

    /// Publish every staged message ([`SendSlot::stage`]) with one store, and wake the
    /// receiver.
    pub fn flush(&mut self) {
        if self.tx.has_staged() {
            self.tx.flush();
            self.notify_receiver();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.tx.flush();
        let ctl = self.tx.memory().ctl;
        set_flag(self.region(), ctl + S_CLOSED, 1);
        bump(self.region(), DATA_SEQ);
    }
}

/// Room for one message in the channel (see [`Sender::reserve`]): write with
/// [`write_at`](Self::write_at) or [`io::Write`], then [`commit`](Self::commit). Dropping
/// it without committing sends nothing.
#[derive(Debug)]
pub struct SendSlot<'a> {
    slot: WriteSlot<'a, SlotRing>,
}

impl SendSlot<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.slot.len()
    }
    /// Whether the slot is for an empty message.
    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }
    /// Bytes written through [`io::Write`] so far.
    pub fn written(&self) -> usize {
        self.slot.written()
    }
    /// Copy `src` into the slot at `offset`; returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> usize {
        self.slot.write_at(offset, src)
    }
    /// Send the message (all [`len`](Self::len) bytes) and wake the receiver.
    pub fn commit(self) {
        let producer = self.slot.commit();
        notify(&consumer_bell(&producer.memory().region));
    }
    /// Send the first `len` bytes as the message.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BeyondReserved`] when `len` is more than was reserved (nothing is
    /// sent).
    pub fn commit_len(self, len: usize) -> Result<(), ChannelError> {
        let producer = self.slot.commit_len(len)?;
        notify(&consumer_bell(&producer.memory().region));
        Ok(())
    }
    /// Write the message but publish it later, with the next commit or
    /// [`Sender::flush`]: a burst of messages costs one publication.
    pub fn stage(self) {
        self.slot.stage();
    }
}

impl io::Write for SendSlot<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.slot.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Receiver {
    /// A new anonymous channel of `capacity` bytes: the receiver, and the memfd to hand to
    /// the sending process ([`Sender::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`Sender::anonymous`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        Self::anonymous_mpsc(1, capacity)
    }

    /// A new anonymous MPSC channel: up to `producers` senders, each with a ring of
    /// `capacity` bytes. Hand a duplicate of the memfd to each sending process; each
    /// [`Sender::from_fd`] claims a slot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadProducers`], and as [`Sender::anonymous`].
    pub fn anonymous_mpsc(
        producers: usize,
        capacity: usize,
    ) -> Result<(Self, OwnedFd), ChannelError> {
        let (made, fd) = new_anonymous(producers, capacity)?;
        Ok((Self::with(made)?, fd))
    }

    /// The receiving end of a channel whose memfd was received.
    ///
    /// # Errors
    ///
    /// As [`Sender::from_fd`], and [`ChannelError::ReceiverTaken`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::with(attach_fd(fd)?)
    }

    /// Create a named channel and be its receiver; see [`Sender::create`].
    ///
    /// # Errors
    ///
    /// As [`Sender::create`].
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        Self::create_mpsc(name, 1, capacity)
    }

    /// Create a named MPSC channel for up to `producers` senders ([`Sender::open`]), each
    /// with a ring of `capacity` bytes, and be its receiver.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadProducers`], and as [`Sender::create`].
    pub fn create_mpsc(
        name: &str,
        producers: usize,
        capacity: usize,
    ) -> Result<Self, ChannelError> {
        Self::with(new_named(name, producers, capacity)?)
    }

    /// Open the receiving end of a named channel another process created.
    ///
    /// # Errors
    ///
    /// As [`Sender::open`], and [`ChannelError::ReceiverTaken`].
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        Self::with(open_named(name)?)
    }

    fn with((region, layout): Made) -> Result<Self, ChannelError> {
        let lock = own_description(region.segment())?;
        if flag(&region, RECEIVER_TAKEN)
            || !lock_byte(&lock, RECEIVER_LOCK)?
            || !claim(&region, RECEIVER_TAKEN)
        {
            return Err(ChannelError::ReceiverTaken);
        }
        publish_cpu(&region, RECEIVER_CPU);
        Ok(Self {
            rx: (0..layout.producers)
                .map(|i| Consumer::attach(layout.ring(&region, i)))
                .collect(),
            poisoned: vec![false; layout.producers],
            next: 0,
            region,
            lock,
            wait: Wait::default(),
        })
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        self.rx
            .first()
            .map_or(0, |c| max_message_len(c.memory().capacity()))
    }

    /// How many senders the channel takes (1 unless made for MPSC).
    pub fn max_senders(&self) -> usize {
        self.rx.len()
    }

    /// How this end waits while the channel is empty (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Receive the next message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Disconnected`] once every sender closed or died and every message
    /// committed has been received; [`ChannelError::Corrupted`].
    pub fn recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.recv_deadline(Deadline::never())
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::TimedOut`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, ChannelError> {
        self.recv_deadline(Deadline::after(timeout))
    }

    /// [`recv`](Self::recv), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>, ChannelError> {
        let slot = self.recv_slot_deadline(deadline)?;
        let v = slot.slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Receive the next message into `buf` (no allocation), waiting while the channel is
    /// empty; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::BufferTooSmall`] with the length
    /// needed (the message stays in the channel: call again with a larger buffer).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::channel::{ChannelError, Receiver, Sender};
    ///
    /// let (mut tx, fd) = Sender::anonymous(4096)?;
    /// let mut rx = Receiver::from_fd(fd)?;
    /// tx.send(b"hello")?;
    /// let mut small = [0u8; 2];
    /// assert!(matches!(rx.recv_into(&mut small), Err(ChannelError::BufferTooSmall { needed: 5 })));
    /// let mut buf = [0u8; 64];
    /// let n = rx.recv_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<(), ChannelError>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        self.recv_into_deadline(buf, Deadline::never())
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`ChannelError::TimedOut`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, ChannelError> {
        self.recv_into_deadline(buf, Deadline::after(timeout))
    }

    /// Receive the next message into `buf` (no allocation), waiting at most until
    /// `deadline`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout), and [`ChannelError::BufferTooSmall`] (the
    /// message stays in the channel, the next one received).
    pub fn recv_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize, ChannelError> {
        copy_into(self.recv_slot_deadline(deadline)?, buf)
    }

    /// Receive the next message if there is one now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`]; [`ChannelError::Disconnected`]; [`ChannelError::Corrupted`].
    pub fn try_recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        let slot = self.try_recv_slot()?;
        let v = slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Receive the next message into `buf` if there is one now; returns its length.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), and [`ChannelError::BufferTooSmall`] (the message
    /// stays, the next one received).
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        copy_into(self.try_recv_slot()?, buf)
    }

    /// The next message in place, if there is one now (see [`recv_slot`](Self::recv_slot)).
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        let i = match self.ready() {
            Ok(i) => i,
            Err(RingError::Empty) if self.peer_gone(true) => {
                // Look once more: a sender may have committed just before closing.
                match self.ready() {
                    Ok(i) => i,
                    Err(RingError::Empty) => return Err(ChannelError::Disconnected),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(RingError::Empty) => return Err(ChannelError::Empty),
            Err(e) => return Err(e.into()),
        };
        self.slot_at(i)
    }

    /// The next message in place, waiting while the channel is empty: read it through
    /// the [`RecvSlot`], then [`release`](RecvSlot::release) it.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        self.recv_slot_deadline(Deadline::never())
    }

    /// [`recv_slot`](Self::recv_slot), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_slot_timeout(&mut self, timeout: Duration) -> Result<RecvSlot<'_>, ChannelError> {
        self.recv_slot_deadline(Deadline::after(timeout))
    }

    /// [`recv_slot`](Self::recv_slot), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_slot_deadline(&mut self, deadline: Deadline) -> Result<RecvSlot<'_>, ChannelError> {
        let i = wait_loop(self, Self::ready, deadline)?;
        self.slot_at(i)
    }

    /// The message `ready` found in ring `i`.
    fn slot_at(&mut self, i: usize) -> Result<RecvSlot<'_>, ChannelError> {
        // The next scan starts here until the message is released or consumed: a slot
        // dropped unread (or a buffer too small) leaves this message the next one received.
        self.next = i;
        let after = if i + 1 == self.rx.len() { 0 } else { i + 1 };
        let unreleased_max = self.rx[i].memory().cap as u64 / 4;
        let ctl = self.rx[i].memory().ctl;
        let (rx, poisoned, region, next) = (
            &mut self.rx,
            &mut self.poisoned,
            &self.region,
            &mut self.next,
        );
        match rx[i].read() {
            Ok(slot) => Ok(RecvSlot {
                slot,
                sender: i,
                unreleased_max,
                next,
                after,
            }),
            Err(e) => {
                // It was ready a moment ago: only a sender breaking the protocol takes a
                // commit back.
                poisoned[i] = true;
                set_flag(region, ctl + S_POISONED, 1);
                bump(region, ctl + S_SPACE_SEQ);
                Err(match e {
                    RingError::Empty => {
                        ChannelError::Corrupted("a sender took back a committed message")
                    }
                    e => e.into(),
                })
            }
        }
    }

    /// Publish the position of every message [`consume`](RecvSlot::consume)d, freeing its
    /// room, and wake senders waiting for room.
    pub fn flush(&mut self) {
        for rx in &mut self.rx {
            rx.flush();
        }
        self.wake_peers();
    }

    /// The first sender ring (round robin) with a message ready.
    #[inline]
    fn ready(&mut self) -> Result<usize, RingError> {
        let n = self.rx.len();
        let mut i = self.next;
        for _ in 0..n {
            if !self.poisoned[i] {
                let released = self.rx[i].released();
                match self.rx[i].poll() {
                    Ok(()) => return Ok(i),
                    Err(RingError::Empty) => {
                        // An empty ring publishes what was consumed (and padding passed):
                        // its sender may be waiting for exactly that room.
                        if self.rx[i].released() != released {
                            notify(&self.rx[i].memory().producer_bell());
                        }
                    }
                    Err(e) => {
                        self.poison(i);
                        return Err(e);
                    }
                }
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        Err(RingError::Empty)
    }

    /// Stop reading sender `i`'s ring (reported once by the caller), and tell its sender.
    fn poison(&mut self, i: usize) {
        self.poisoned[i] = true;
        let ctl = self.rx[i].memory().ctl;
        set_flag(&self.region, ctl + S_POISONED, 1);
        bump(&self.region, ctl + S_SPACE_SEQ);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        set_flag(&self.region, RECEIVER_CLOSED, 1);
        for rx in &self.rx {
            bump(&self.region, rx.memory().ctl + S_SPACE_SEQ);
        }
    }
}

/// The next message, in place in the channel (see [`Receiver::recv_slot`]): read it with
/// [`read_at`](Self::read_at), [`io::Read`] or [`to_vec`](Self::to_vec) (copies into your
/// memory, so a misbehaving sender cannot cause undefined behaviour here), then
/// [`release`](Self::release) it. Dropping it leaves the message in the channel, the next
/// one received.
#[derive(Debug)]
pub struct RecvSlot<'a> {
    slot: ReadSlot<'a, SlotRing>,
    sender: usize,
    /// Publish the consumer's position once this many bytes are consumed (a quarter of
    /// the ring), or when the ring is found empty.
    unreleased_max: u64,
    /// The receiver's round-robin start, and where it moves once this message is done.
    next: &'a mut usize,
    after: usize,
}

impl RecvSlot<'_> {
    /// The slot of the sender that sent it ([`Sender::slot`]; 0 in a single-sender
    /// channel). Order is kept per sender.
    pub fn sender(&self) -> usize {
        self.sender
    }
    /// The message's length.
    pub fn len(&self) -> usize {
        self.slot.len()
    }
    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }
    /// Copy message bytes from `offset` into `dst`; returns how many.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        self.slot.read_at(offset, dst)
    }
    /// The whole message, copied into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slot.to_vec()
    }
    /// Done with the message. Its room is published (and a sender waiting for room
    /// woken) once a quarter of the ring has been consumed, or when the receiver next finds
    /// the ring empty: so that a receive costs no store to a shared line and no fence
    /// unless a sender may need the room. [`Receiver::flush`] publishes at once.
    pub fn release(self) {
        let max = self.unreleased_max;
        *self.next = self.after;
        let consumer = self.slot.consume();
        if consumer.unreleased() >= max {
            consumer.flush();
            notify(&consumer.memory().producer_bell());
        }
    }
    /// Done, but free the room only at [`Receiver::flush`] or when the receiver finds
    /// the channel empty.
    pub fn consume(self) {
        *self.next = self.after;
        self.slot.consume();
    }
}

impl io::Read for RecvSlot<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.slot.read(buf)
    }
}

/// Copy `slot`'s message into `buf` and release it; a buffer too small leaves it (and
/// the round robin) where it was.
///
/// Always inlined: called out of line, the cross-core 64 B round trip of `recv_into` grew
/// from 160 to 210 ns (cache line 100 ns), and from 541 to 661 ns (cache line 400 ns)
/// when the host placed the vCPUs far apart (`ipcraft-bench --filter cacheline/,channel/`).
#[inline(always)]
fn copy_into(slot: RecvSlot<'_>, buf: &mut [u8]) -> Result<usize, ChannelError> {
    let len = slot.len();
    let Some(dst) = buf.get_mut(..len) else {
        return Err(ChannelError::BufferTooSmall { needed: len });
    };
    slot.read_at(0, dst);
    slot.release();
    Ok(len)
}

/// What the waiting loop needs from either end.
trait End {
    /// The ring error that means "wait": `Full` for a sender, `Empty` for the receiver.
    const WOULD_WAIT: RingError;
    /// Whether to look once more after seeing the peer gone (the receiver drains what was
    /// committed before reporting `Disconnected`).
    const DRAIN: bool;
    /// This end's doorbell.
    fn own_bell(&self) -> ShmBell<'_>;
    /// Wake the peer(s) if they sleep (released room or published padding may be what
    /// they wait for).
    fn wake_peers(&self);
    /// Whether the peer closed (flags), or, with `probe`, died (liveness locks: syscalls).
    fn peer_gone(&self, probe: bool) -> bool;
    /// What to report once [`peer_gone`](Self::peer_gone) said so.
    fn gone_error(&self) -> ChannelError {
        ChannelError::Disconnected
    }
    /// How many checks to spin before yielding: none when the peer last ran on this CPU.
    fn spin_budget(&self) -> u32;
    /// This end's waiting strategy.
    fn wait(&self) -> Wait;
}

impl End for Sender {
    const WOULD_WAIT: RingError = RingError::Full;
    const DRAIN: bool = false;
    fn own_bell(&self) -> ShmBell<'_> {
        self.tx.memory().producer_bell()
    }
    fn wake_peers(&self) {
        notify(&consumer_bell(self.region()));
    }
    fn peer_gone(&self, probe: bool) -> bool {
        let r = self.region();
        flag(r, RECEIVER_CLOSED)
            || flag(r, self.tx.memory().ctl + S_POISONED)
            || (probe && flag(r, RECEIVER_TAKEN) && !peer_alive(&self.lock, RECEIVER_LOCK))
    }
    /// `Corrupted` when the receiver poisoned this sender's ring (it is alive and serves the
    /// others), else `Disconnected`.
    fn gone_error(&self) -> ChannelError {
        self.check_open()
            .err()
            .unwrap_or(ChannelError::Disconnected)
    }
    fn wait(&self) -> Wait {
        self.wait
    }
    fn spin_budget(&self) -> u32 {
        let r = self.region();
        let cpu = publish_cpu(r, self.tx.memory().ctl + S_CPU);
        if cpu != u32::MAX && cpu_of(r, RECEIVER_CPU) == cpu {
            0
        } else {
            SPIN
        }
    }
}

impl End for Receiver {
    const WOULD_WAIT: RingError = RingError::Empty;
    const DRAIN: bool = true;
    fn own_bell(&self) -> ShmBell<'_> {
        consumer_bell(&self.region)
    }
    fn wake_peers(&self) {
        notify_each(self.rx.iter().map(|rx| rx.memory().producer_bell()));
    }
    /// Every sender slot was claimed, and every sender closed or died.
    fn peer_gone(&self, probe: bool) -> bool {
        let r = &*self.region;
        self.rx.iter().enumerate().all(|(i, rx)| {
            let ctl = rx.memory().ctl;
            self.poisoned[i]
                || (flag(r, ctl + S_CLAIMED)
                    && (flag(r, ctl + S_CLOSED)
                        || (probe && !peer_alive(&self.lock, slot_lock(i)))))
        })
    }
    fn wait(&self) -> Wait {
        self.wait
    }
    fn spin_budget(&self) -> u32 {
        let r = &*self.region;
        let cpu = publish_cpu(r, RECEIVER_CPU);
        let all_here = self.rx.iter().all(|rx| {
            let ctl = rx.memory().ctl;
            !flag(r, ctl + S_CLAIMED) || cpu_of(r, ctl + S_CPU) == cpu
        });
        if cpu != u32::MAX && all_here { 0 } else { SPIN }
    }
}

/// Try `attempt` until it succeeds; while the ring is full (or empty): spin (unless the
/// peer shares this CPU), yield, then sleep on this end's doorbell (announce, re-check,
/// wait a slice). Ends with `Disconnected` once the peer closed or died, `TimedOut` at
/// the deadline. The attempt wakes the peer on success.
fn wait_loop<E: End, T>(
    end: &mut E,
    mut attempt: impl FnMut(&mut E) -> Result<T, RingError>,
    deadline: Deadline,
) -> Result<T, ChannelError> {
    match attempt(end) {
        Ok(v) => return Ok(v),
        Err(e) if e == E::WOULD_WAIT => {}
        Err(e) => return Err(e.into()),
    }
    let adaptive = end.wait() == Wait::Adaptive;
    if adaptive {
        // Published padding or released room may be what the peer waits for: wake it
        // before spinning (a sleeper does so after announcing, below).
        end.wake_peers();
    }
    // Spin: only the commit word (or the consumer's position) is checked, so that a
    // message is seen within one pause of its arrival; no clock, no flags (bounded).
    let spin = if adaptive { end.spin_budget() } else { 0 };
    if spin > 0 && deadline.has_passed() && !end.peer_gone(false) {
        return Err(ChannelError::TimedOut);
    }
    for _ in 0..spin {
        std::hint::spin_loop();
        match attempt(end) {
            Ok(v) => return Ok(v),
            Err(e) if e == E::WOULD_WAIT => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut round: u32 = if adaptive { 0 } else { YIELDS };
    loop {
        let sleeping = round >= YIELDS;
        // Probing the peer's liveness costs a system call: only once a sleep slice has
        // passed without news (a peer that closed sets a flag, checked every time).
        if end.peer_gone(round > YIELDS) {
            if E::DRAIN {
                return match attempt(end) {
                    Ok(v) => Ok(v),
                    Err(e) if e == E::WOULD_WAIT => Err(ChannelError::Disconnected),
                    Err(e) => Err(e.into()),
                };
            }
            return Err(end.gone_error());
        }
        // One clock read per round (none without a deadline).
        let left = deadline.remaining();
        if left == Some(Duration::ZERO) {
            // The last attempt may have published padding or staged records (a sender that
            // found no room) since the peers were last woken (Sleep mode wakes them only
            // after announcing, below): wake them now, or a sleeping peer waits a slice.
            end.wake_peers();
            return Err(ChannelError::TimedOut);
        }
        if !sleeping {
            std::thread::yield_now();
        } else {
            let seen = announce(&end.own_bell());
            match attempt(end) {
                Ok(v) => {
                    withdraw(&end.own_bell());
                    return Ok(v);
                }
                Err(e) if e == E::WOULD_WAIT => {}
                Err(e) => {
                    withdraw(&end.own_bell());
                    return Err(e.into());
                }
            }
            end.wake_peers();
            // A peer that closed after the check at the top of this round bumped the
            // sequence after setting its flag: if `seen` is that bumped value, the flag is
            // visible now (acquire on the sequence); if not, the wait returns at once.
            if end.peer_gone(false) {
                withdraw(&end.own_bell());
                continue;
            }
            end.own_bell().wait(seen, left);
            withdraw(&end.own_bell());
        }
        round = round.saturating_add(1);
        match attempt(end) {
            Ok(v) => return Ok(v),
            Err(e) if e == E::WOULD_WAIT => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    /// A `Wait::Sleep` sender whose deadline has passed still published padding (the
    /// receiver must pass it to free the room the message waits for): a receiver that
    /// announced sleep must be rung, as after any publication.
    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2), futex(2)")]
    fn a_sleep_mode_send_that_times_out_after_publishing_padding_wakes_the_receiver() {
        let (mut tx, fd) = Sender::anonymous(64).unwrap();
        let mut rx = Receiver::from_fd(fd).unwrap();
        tx.send(&[1; 24]).unwrap(); // a 32-byte record
        assert_eq!(rx.recv().unwrap(), vec![1; 24]); // released (a quarter of the ring)
        tx.set_wait(Wait::Sleep);
        // The receiver has announced that it sleeps (as `wait_loop` does).
        let region = rx.region.clone();
        let seen = announce(&consumer_bell(&region));
        // 40 bytes (a 48-byte record) do not fit in the 32 left before the end of the lap:
        // padding is published, and the record waits for the receiver to pass it.
        assert!(matches!(
            tx.send_timeout(&[2; 40], Duration::ZERO),
            Err(ChannelError::TimedOut)
        ));
        assert_eq!(tx.tx.memory().load_position(true), 64, "padding published");
        assert_ne!(
            consumer_bell(&region).load_seq(),
            seen,
            "the sleeping receiver was not woken: it sleeps a whole slice"
        );
    }

    /// The module docs: a ring found corrupted is skipped and "its sender is told:
    /// `Corrupted`". A sender already waiting for room when its ring is poisoned must be
    /// told so too, not `Disconnected` (its receiver is alive and serving the others).
    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2), futex(2)")]
    fn a_sender_waiting_when_its_ring_is_poisoned_is_told_corrupted() {
        let (mut rx, fd) = Receiver::anonymous_mpsc(2, 64).unwrap();
        let mut tx = Sender::from_fd(fd.try_clone().unwrap()).unwrap();
        tx.try_send(&[1; 56]).unwrap(); // full
        let waiter = std::thread::spawn(move || tx.send_timeout(&[2; 8], Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(300)); // it waits for room by now
        rx.poison(0);
        let r = waiter.join().unwrap();
        assert!(matches!(r, Err(ChannelError::Corrupted(_))), "{r:?}");
    }
}
