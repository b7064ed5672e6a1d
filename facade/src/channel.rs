//! A cross-process channel on the lock-free ring in shared memory: one [`Sender`] process,
//! one [`Receiver`] process.
//!
//! Two ways to make one: **anonymous** ([`Sender::anonymous`]: a sealed memfd handed to the
//! peer at spawn or over a Unix socket; nothing is named, so nothing can leak) and **named**
//! ([`Sender::create`] / [`Receiver::open`] for unrelated processes; the creator removes the
//! name when dropped). **Status:** MPSC and the zero-copy API are still to come (issue 7).
//!
//! # Waiting without losing speed
//!
//! A side that finds the ring full (or empty) spins briefly, then announces that it sleeps
//! (a flag word), re-checks, and sleeps on a shared futex word; the other side, after
//! publishing, wakes it only if the flag is set, so the fast path makes no system call.
//! The protocol is [`crate::ring::wake`], checked by loom for lost wake-ups.
//! Sleeps are sliced (100 ms) to notice a peer that died without closing: each side holds an
//! open-file-description lock on the memfd, which the kernel releases when the process dies.
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use crate::ring::wake::{Doorbell, announce, notify, withdraw};
use crate::ring::{Consumer, Producer, RingError, RingMemory, max_message_len};
use crate::shared::SharedRegion;
use ipcraft_core::{Deadline, SysError};
use ipcraft_shm::{Segment, SegmentOptions};
use ipcraft_sync::futex;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// `b"IPCRING1"` little-endian, at the start of the channel's segment data.
const MAGIC: u64 = u64::from_le_bytes(*b"IPCRING1");
const VERSION: u32 = 1;
const PRODUCER_POS: usize = 64;
const PRODUCER_SLEEPING: usize = 72;
const SPACE_SEQ: usize = 76;
const CONSUMER_POS: usize = 128;
const CONSUMER_SLEEPING: usize = 136;
const DATA_SEQ: usize = 140;
const SENDER_CLOSED: usize = 192;
const RECEIVER_CLOSED: usize = 196;
/// Set by each side once it holds its liveness lock: a peer that has not attached yet is
/// not dead.
const SENDER_ATTACHED: usize = 200;
const RECEIVER_ATTACHED: usize = 204;
const DATA: usize = 256;
/// Lock bytes for liveness (open-file-description locks on the memfd).
const SENDER_LOCK: i64 = 1;
const RECEIVER_LOCK: i64 = 2;
/// Busy-wait this many checks before yielding the CPU (the peer may be on another core).
const SPIN: u32 = 32;
/// Then yield this many times (the peer may be waiting for this core) before sleeping.
const SPINS: u32 = SPIN + 64;
const SLICE: Duration = Duration::from_millis(100);

/// Why a channel operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChannelError {
    /// The other side closed or died; everything it committed was received first.
    Disconnected,
    /// The timeout passed.
    TimedOut,
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
    /// A channel of another layout version.
    IncompatibleVersion {
        /// The version found.
        found: u32,
        /// The version this crate speaks.
        expected: u32,
    },
    /// The capacity is not a power of two of at least 16 bytes (and at most 2^31).
    BadCapacity(usize),
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
            Self::TooLarge { len, max } => {
                write!(f, "a message of {len} bytes can never fit: at most {max}")
            }
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "the next message has {needed} bytes, more than the buffer holds"
                )
            }
            Self::IncompatibleVersion { found, expected } => write!(
                f,
                "the channel has layout version {found}; this version of ipcraft speaks {expected}"
            ),
            Self::BadCapacity(c) => write!(
                f,
                "capacity {c} is not a power of two between 16 bytes and 2 GiB"
            ),
            Self::Corrupted(w) => write!(f, "the channel is corrupted: {w}"),
            Self::Shm(e) => e.fmt(f),
            Self::Sys(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChannelError {}

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
            // Full, Empty and BufferTooSmall are handled by the caller.
            _ => Self::Corrupted("unexpected ring state"),
        }
    }
}

/// The ring in a shared segment.
#[derive(Debug)]
pub struct ShmRing {
    region: SharedRegion,
    cap: usize,
}

impl ShmRing {
    fn new(seg: Segment, cap: usize) -> Result<Self, ChannelError> {
        let region = SharedRegion::new(seg).ok_or(ChannelError::Corrupted("empty segment"))?;
        Ok(Self { region, cap })
    }

    fn word64(&self, off: usize) -> Option<&AtomicU64> {
        self.region.u64(off)
    }

    fn word32(&self, off: usize) -> Option<&AtomicU32> {
        self.region.u32(off)
    }

    fn flag(&self, off: usize) -> bool {
        self.word32(off)
            .is_some_and(|w| w.load(Ordering::Acquire) != 0)
    }

    fn set_flag(&self, off: usize, v: u32) {
        if let Some(w) = self.word32(off) {
            w.store(v, Ordering::SeqCst);
        }
    }

    /// The doorbell of the producer (`true`) or the consumer.
    fn bell(&self, producer: bool) -> ShmBell<'_> {
        let (sleeping, seq) = if producer {
            (PRODUCER_SLEEPING, SPACE_SEQ)
        } else {
            (CONSUMER_SLEEPING, DATA_SEQ)
        };
        ShmBell {
            ring: self,
            sleeping,
            seq,
        }
    }
}

/// A side's doorbell in the shared segment (see [`crate::ring::wake`]).
struct ShmBell<'a> {
    ring: &'a ShmRing,
    sleeping: usize,
    seq: usize,
}

impl Doorbell for ShmBell<'_> {
    fn load_seq(&self) -> u32 {
        self.ring
            .word32(self.seq)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
    fn set_sleeping(&self, on: bool) {
        self.ring.set_flag(self.sleeping, u32::from(on));
    }
    fn is_sleeping(&self) -> bool {
        self.ring.flag(self.sleeping)
    }
    fn ring(&self) {
        if let Some(w) = self.ring.word32(self.seq) {
            w.fetch_add(1, Ordering::Release);
            futex::wake(w, i32::MAX);
        }
    }
    /// One slice at most, so that a dead peer is noticed (see the module docs).
    fn wait(&self, seen: u32, deadline: Deadline) {
        if let Some(w) = self.ring.word32(self.seq) {
            let slice = deadline.remaining().map_or(SLICE, |r| r.min(SLICE));
            futex::wait(w, seen, Some(slice));
        }
    }
}

impl RingMemory for ShmRing {
    fn capacity(&self) -> usize {
        self.cap
    }
    fn load_position(&self, producer: bool) -> u64 {
        let off = if producer { PRODUCER_POS } else { CONSUMER_POS };
        self.word64(off)
            .map_or(u64::MAX, |w| w.load(Ordering::Acquire))
    }
    fn store_position(&self, producer: bool, value: u64) {
        let off = if producer { PRODUCER_POS } else { CONSUMER_POS };
        if let Some(w) = self.word64(off) {
            w.store(value, Ordering::Release);
        }
    }
    fn write_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.word64(DATA + offset) {
            w.store(value, Ordering::Relaxed);
        }
    }
    fn read_word(&self, offset: usize) -> u64 {
        self.word64(DATA + offset)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.region.copy_in(DATA + offset, src);
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        if !self.region.copy_out(DATA + offset, dst) {
            dst.fill(0);
        }
    }
}

/// Make a channel segment of `capacity` data bytes.
/// The shm header tag of a named channel segment.
const TAG: u64 = u64::from_le_bytes(*b"IPCRCHN1");

fn check_capacity(capacity: usize) -> Result<(), ChannelError> {
    if !capacity.is_power_of_two() || !(16..=1 << 31).contains(&capacity) {
        return Err(ChannelError::BadCapacity(capacity));
    }
    Ok(())
}

/// Write the channel header into a fresh segment.
fn init_ring(seg: Segment, capacity: usize) -> Result<ShmRing, ChannelError> {
    seg.write(0, &MAGIC)?;
    seg.write(8, &VERSION)?;
    seg.write(12, &(capacity as u32))?;
    ShmRing::new(seg, capacity)
}

/// Make an anonymous channel segment of `capacity` data bytes, and a descriptor for the peer.
fn new_ring(capacity: usize) -> Result<(ShmRing, OwnedFd), ChannelError> {
    check_capacity(capacity)?;
    let seg = SegmentOptions::new().anonymous(DATA + capacity)?;
    let fd = seg
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| ChannelError::Sys(SysError::from_io("dup", &e)))?;
    Ok((init_ring(seg, capacity)?, fd))
}

/// Make a named channel segment (mode 0600, `O_EXCL`; removed when its creator drops).
fn create_named(name: &str, capacity: usize) -> Result<ShmRing, ChannelError> {
    check_capacity(capacity)?;
    let seg = SegmentOptions::new()
        .tag(TAG)
        .create(name, DATA + capacity)?;
    init_ring(seg, capacity)
}

/// Validate a channel segment someone else made.
fn attach_ring(seg: Segment) -> Result<ShmRing, ChannelError> {
    if seg.len() < DATA + 16 {
        return Err(ChannelError::Corrupted("segment too small for a channel"));
    }
    let magic: u64 = seg.read(0)?;
    let version: u32 = seg.read(8)?;
    let cap = seg.read::<u32>(12)? as usize;
    if magic != MAGIC {
        return Err(ChannelError::Corrupted("not a channel segment"));
    }
    if version != VERSION {
        return Err(ChannelError::IncompatibleVersion {
            found: version,
            expected: VERSION,
        });
    }
    if !cap.is_power_of_two() || cap < 16 || DATA + cap > seg.len() {
        return Err(ChannelError::Corrupted(
            "capacity does not match the segment",
        ));
    }
    ShmRing::new(seg, cap)
}

fn attach_fd(fd: OwnedFd) -> Result<ShmRing, ChannelError> {
    attach_ring(Segment::from_fd(fd, DATA + 16)?)
}

fn open_named(name: &str) -> Result<ShmRing, ChannelError> {
    attach_ring(SegmentOptions::new().tag(TAG).open(name)?)
}

/// Lock `byte` of the segment through a fresh open file description (an inherited or
/// duplicated descriptor shares its description with the peer's, so it cannot tell them
/// apart); the kernel drops the lock when this process dies.
fn liveness_lock(seg: &Segment, byte: i64) -> Result<OwnedFd, ChannelError> {
    let path = format!("/proc/self/fd/{}", seg.as_raw_fd());
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ChannelError::Sys(SysError::new("open", e).on(path)))?;
    let lock = flock(nix::libc::F_RDLCK as i16, byte);
    fcntl(&fd, FcntlArg::F_OFD_SETLK(&lock))
        .map_err(|e| ChannelError::Sys(SysError::new("fcntl(F_OFD_SETLK)", e)))?;
    Ok(fd)
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

/// The sending end of a cross-process channel.
#[derive(Debug)]
pub struct Sender {
    tx: Producer<ShmRing>,
    lock: OwnedFd,
}

/// The receiving end of a cross-process channel.
#[derive(Debug)]
pub struct Receiver {
    rx: Consumer<ShmRing>,
    lock: OwnedFd,
}

impl Sender {
    /// A new anonymous channel of `capacity` bytes (a power of two): the sender, and the
    /// memfd to hand to the receiving process ([`Receiver::from_fd`]) at spawn or over a
    /// Unix socket.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadCapacity`]; [`ChannelError::Shm`]; [`ChannelError::Sys`].
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (ring, fd) = new_ring(capacity)?;
        Ok((Self::with(ring)?, fd))
    }

    /// The sending end of a channel whose memfd was received.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] or [`ChannelError::Corrupted`] for a descriptor that is not a
    /// sealed channel segment.
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
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        Self::with(create_named(name, capacity)?)
    }

    /// Open the sending end of a named channel another process created.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] (`NotFound`, `WrongTag` for a segment that is not a channel);
    /// [`ChannelError::IncompatibleVersion`]; [`ChannelError::Corrupted`].
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        Self::with(open_named(name)?)
    }

    fn with(ring: ShmRing) -> Result<Self, ChannelError> {
        let lock = liveness_lock(ring.region.segment(), SENDER_LOCK)?;
        ring.set_flag(SENDER_ATTACHED, 1);
        Ok(Self {
            tx: Producer::attach(ring),
            lock,
        })
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        max_message_len(self.tx.memory().capacity())
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
        wait_loop(
            &mut self.tx,
            Producer::memory,
            |tx| tx.try_send(msg),
            &self.lock,
            &SENDER_SIDE,
            deadline,
        )
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let ring = self.tx.memory();
        ring.set_flag(SENDER_CLOSED, 1);
        if let Some(w) = ring.word32(DATA_SEQ) {
            w.fetch_add(1, Ordering::Release);
            futex::wake(w, i32::MAX);
        }
    }
}

impl Receiver {
    /// A new anonymous channel of `capacity` bytes: the receiver, and the memfd to hand to
    /// the sending process ([`Sender::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`Sender::anonymous`].
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (ring, fd) = new_ring(capacity)?;
        Ok((Self::with(ring)?, fd))
    }

    /// The receiving end of a channel whose memfd was received.
    ///
    /// # Errors
    ///
    /// As [`Sender::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::with(attach_fd(fd)?)
    }

    /// Create a named channel and be its receiver; see [`Sender::create`].
    ///
    /// # Errors
    ///
    /// As [`Sender::create`].
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        Self::with(create_named(name, capacity)?)
    }

    /// Open the receiving end of a named channel another process created.
    ///
    /// # Errors
    ///
    /// As [`Sender::open`].
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        Self::with(open_named(name)?)
    }

    fn with(ring: ShmRing) -> Result<Self, ChannelError> {
        let lock = liveness_lock(ring.region.segment(), RECEIVER_LOCK)?;
        ring.set_flag(RECEIVER_ATTACHED, 1);
        Ok(Self {
            rx: Consumer::attach(ring),
            lock,
        })
    }

    /// Receive the next message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Disconnected`] once the sender closed or died and every message it
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
        self.recv_with(deadline, Consumer::try_recv_vec)
    }

    /// Receive the next message into `buf` (no allocation), waiting at most until
    /// `deadline`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout), and [`ChannelError::BufferTooSmall`] (the
    /// message stays in the channel).
    pub fn recv_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize, ChannelError> {
        self.recv_with(deadline, |rx| rx.try_recv_into(buf))
    }

    fn recv_with<T>(
        &mut self,
        deadline: Deadline,
        attempt: impl FnMut(&mut Consumer<ShmRing>) -> Result<T, RingError>,
    ) -> Result<T, ChannelError> {
        wait_loop(
            &mut self.rx,
            Consumer::memory,
            attempt,
            &self.lock,
            &RECEIVER_SIDE,
            deadline,
        )
    }
}

/// What differs between the two ends' waiting.
struct Side {
    /// This end is the producer (its doorbell is the producer's).
    producer: bool,
    /// The ring error that means "wait": `Full` for the sender, `Empty` for the receiver.
    would_wait: RingError,
    /// The peer's closed flag, attached flag and liveness-lock byte.
    peer_closed: usize,
    peer_attached: usize,
    peer_lock: i64,
    /// Whether to look once more after seeing the peer gone (a receiver drains what was
    /// committed before reporting `Disconnected`).
    drain: bool,
}

const SENDER_SIDE: Side = Side {
    producer: true,
    would_wait: RingError::Full,
    peer_closed: RECEIVER_CLOSED,
    peer_attached: RECEIVER_ATTACHED,
    peer_lock: RECEIVER_LOCK,
    drain: false,
};

const RECEIVER_SIDE: Side = Side {
    producer: false,
    would_wait: RingError::Empty,
    peer_closed: SENDER_CLOSED,
    peer_attached: SENDER_ATTACHED,
    peer_lock: SENDER_LOCK,
    drain: true,
};

/// Try `attempt` until it succeeds; while the ring is full (or empty): spin, yield, then
/// sleep on this end's doorbell (announce, re-check, wait a slice), waking the peer after
/// every success and before every sleep (a published padding record, or released room,
/// may be what it waits for). Ends with `Disconnected` once the peer closed or died,
/// `TimedOut` at the deadline.
fn wait_loop<X, T>(
    end: &mut X,
    memory: impl Fn(&X) -> &ShmRing,
    mut attempt: impl FnMut(&mut X) -> Result<T, RingError>,
    lock: &OwnedFd,
    side: &Side,
    deadline: Deadline,
) -> Result<T, ChannelError> {
    let mut spins = 0;
    loop {
        match attempt(end) {
            Ok(v) => {
                notify(&memory(end).bell(!side.producer));
                return Ok(v);
            }
            Err(e) if e == side.would_wait => {}
            Err(e) => return Err(e.into()),
        }
        let ring = memory(end);
        notify(&ring.bell(!side.producer));
        let died =
            spins >= SPINS && ring.flag(side.peer_attached) && !peer_alive(lock, side.peer_lock);
        if ring.flag(side.peer_closed) || died {
            if side.drain {
                return match attempt(end) {
                    Ok(v) => Ok(v),
                    Err(e) if e == side.would_wait => Err(ChannelError::Disconnected),
                    Err(e) => Err(e.into()),
                };
            }
            return Err(ChannelError::Disconnected);
        }
        if deadline.has_passed() {
            return Err(ChannelError::TimedOut);
        }
        if spins < SPINS {
            spins += 1;
            if spins <= SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        let seen = announce(&ring.bell(side.producer));
        let again = attempt(end);
        let ring = memory(end);
        match again {
            Ok(v) => {
                withdraw(&ring.bell(side.producer));
                notify(&ring.bell(!side.producer));
                return Ok(v);
            }
            Err(e) if e == side.would_wait => {}
            Err(e) => return Err(e.into()),
        }
        ring.bell(side.producer).wait(seen, deadline);
        withdraw(&ring.bell(side.producer));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let ring = self.rx.memory();
        ring.set_flag(RECEIVER_CLOSED, 1);
        if let Some(w) = ring.word32(SPACE_SEQ) {
            w.fetch_add(1, Ordering::Release);
            futex::wake(w, i32::MAX);
        }
    }
}
