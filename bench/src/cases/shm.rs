//! Shared memory with a flag word per message: `shm-spin` (the waiting side spins) and
//! `shm-futex` (the waiting side spins briefly, then sleeps on a futex).
//!
//! One segment of [`SEG_LEN`] bytes holds a control line and two one-slot channels, parent to
//! child and child to parent. Offsets are from the start of the data area, which follows
//! ipcraft's 64-byte header in the ipcraft segment; the raw memfd leaves its first
//! [`RAW_SKIP`] bytes unused, so every word and payload sits at the same place in its page
//! in both (copies are sensitive to that):
//!
//! | offset | what |
//! |---|---|
//! | 0 | control: `yields` (u32, written by the parent before the child starts), `closed` (u32) |
//! | 64 + d * [`SLOT_LEN`] | slot `d`: `published` (u32), `len` (u32) |
//! | + 64 | `consumed` (u32, its own cache line: the receiver writes it) |
//! | + 128 | payload, [`CAP`] bytes |
//!
//! Each message through a slot: the sender waits until `consumed` equals its last sequence
//! number (the slot is free), copies the payload in, stores `len`, then publishes the next
//! sequence number in `published` (Release). The receiver waits until `published` holds that
//! number (Acquire), checks `len` against [`CAP`] (a peer may write anything), copies the
//! payload out and stores the number in `consumed` (Release). The loops around (ping-pong,
//! stream, ready and ack) are [`crate::proto`]'s, so every row does the same work as the others.
//!
//! Waiting:
//! - `shm-spin`, `cross`: spin (`spin_loop`) on the word. `same`: `sched_yield(2)` between
//!   checks, as the `cacheline-yield` limit row does (a pure spinner on one core only burns its
//!   time slice while its peer waits for the CPU); the parent tells the child through `yields`.
//! - `shm-futex`: [`SPIN_BEFORE_SLEEP`] checks with `spin_loop` (`cross`; none on `same`,
//!   where the peer cannot run while we spin), then `FUTEX_WAIT` (shared futex) on the word. The publisher wakes only a waiter that announced itself: the waiter
//!   sets the word's top bit ([`WAITER`]) by compare-exchange before it sleeps on the value with
//!   that bit, and the publisher swaps the new number in and calls `FUTEX_WAKE` only when the
//!   old value had the bit. Both are read-modify-writes of the one word, so either the swap
//!   sees the bit, or the compare-exchange fails, or `FUTEX_WAIT` finds the word changed: no
//!   lost wake-up. Sequence numbers are 31 bits (wrapping).
//!
//! Every wait gives up at the deadline or when the peer has set `closed` (each side sets it
//! when it is done, whatever happened), checked every few thousand spins, every few yields,
//! and after every futex wait (at most [`FUTEX_TIMEOUT`] each).
//!
//! - `raw`: a memfd mapped by hand ([`crate::shm::SharedMap`]): words as `&AtomicU32` from a
//!   raw pointer, payload by `ptr::copy_nonoverlapping`.
//! - `ipcraft`: `ipcraft_shm::Segment::anonymous` in the parent, `Segment::from_fd` in the
//!   child (the descriptor is its stdin), words by `Segment::get::<AtomicU32>`, payload by
//!   `write_at`/`read_at`. The futex calls are [`crate::raw`]'s for both.
// Atomics in shared memory between two real processes: nothing loom could check.
#![allow(clippy::disallowed_types)]

use std::hint::spin_loop;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcraft_shm::Segment;
use nix::sched::sched_yield;

use crate::harness::{CHILD_TIMEOUT, Case, Env, Impl, Placement, Sample, Test};
use crate::proto::{self, Receiver, Sender};
use crate::raw::{futex_wait, futex_wake};
use crate::shm::SharedMap;

/// Payload bytes of a slot: the largest message of the standard tests.
pub const CAP: usize = 64 << 10;
/// Bytes of a slot: two cache lines of words, then the payload.
pub const SLOT_LEN: usize = 128 + CAP;
/// Bytes of the data area: the control line and two slots.
pub const SEG_LEN: usize = 64 + 2 * SLOT_LEN;
/// Bytes the raw memfd leaves unused before its data area: ipcraft's header size.
pub const RAW_SKIP: usize = ipcraft_shm::HEADER_SIZE;
/// Offset of the `yields` word (1: the peers share a core: `shm-spin` yields while waiting,
/// `shm-futex` sleeps without spinning first).
const YIELDS: usize = 0;
/// Offset of the `closed` word (non-zero: a side is done; its peer stops waiting).
const CLOSED: usize = 4;
/// The slot the parent sends through.
const TO_CHILD: usize = 0;
/// The slot the child sends through.
const TO_PARENT: usize = 1;
/// A waiter sleeps on this word: its publisher must `FUTEX_WAKE` it.
pub const WAITER: u32 = 1 << 31;
/// The sequence-number bits of a word.
pub const SEQ: u32 = !WAITER;
/// `shm-futex`: checks with `spin_loop` before a waiter announces itself and sleeps.
pub const SPIN_BEFORE_SLEEP: u32 = 100;
/// The longest single `FUTEX_WAIT`: then the deadline and `closed` are checked again.
pub const FUTEX_TIMEOUT: Duration = Duration::from_millis(100);

/// Offset of slot `d`.
const fn slot(d: usize) -> usize {
    64 + d * SLOT_LEN
}

/// The sequence number after `seq`.
pub fn next(seq: u32) -> u32 {
    seq.wrapping_add(1) & SEQ
}

/// What both implementations provide: 32-bit atomic words by reference, payload by copy.
pub trait SharedMem {
    /// The atomic word at `offset`.
    ///
    /// # Errors
    ///
    /// Out of bounds or misaligned.
    fn word(&self, offset: usize) -> io::Result<&AtomicU32>;
    /// Copy `src` in at `offset`.
    ///
    /// # Errors
    ///
    /// Out of bounds (or read-only).
    fn put(&self, offset: usize, src: &[u8]) -> io::Result<()>;
    /// Copy `dst.len()` bytes out at `offset`.
    ///
    /// # Errors
    ///
    /// Out of bounds.
    fn take(&self, offset: usize, dst: &mut [u8]) -> io::Result<()>;
}

/// The raw baseline's memory: a [`SharedMap`] of `RAW_SKIP + SEG_LEN` bytes whose data area
/// starts at [`RAW_SKIP`].
impl SharedMem for SharedMap {
    fn word(&self, offset: usize) -> io::Result<&AtomicU32> {
        SharedMap::word(self, RAW_SKIP + offset)
    }

    #[inline]
    fn put(&self, offset: usize, src: &[u8]) -> io::Result<()> {
        self.copy_in(RAW_SKIP + offset, src)
    }

    #[inline]
    fn take(&self, offset: usize, dst: &mut [u8]) -> io::Result<()> {
        self.copy_out(RAW_SKIP + offset, dst)
    }
}

impl SharedMem for Segment {
    fn word(&self, offset: usize) -> io::Result<&AtomicU32> {
        Ok(self.get::<AtomicU32>(offset)?)
    }

    #[inline]
    fn put(&self, offset: usize, src: &[u8]) -> io::Result<()> {
        Ok(self.write_at(offset, src)?)
    }

    #[inline]
    fn take(&self, offset: usize, dst: &mut [u8]) -> io::Result<()> {
        Ok(self.read_at(offset, dst)?)
    }
}

/// How a side waits for a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `spin_loop` between checks.
    Spin,
    /// `sched_yield` between checks.
    Yield,
    /// A short spin, then `FUTEX_WAIT`; the publisher wakes announced waiters.
    Futex,
}

/// One side's way of waiting and publishing, and when to give up.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The wait strategy.
    pub wait: Wait,
    /// `Wait::Futex`: how many checks to spin before sleeping.
    pub spins: u32,
    /// The `closed` word: the peer is done.
    pub closed: &'a AtomicU32,
    /// When to give up.
    pub deadline: Instant,
}

impl Side<'_> {
    /// Wait until the sequence bits of `word` equal `target`.
    #[inline]
    fn wait_for(&self, word: &AtomicU32, target: u32) -> io::Result<()> {
        let mut n: u32 = 0;
        loop {
            let v = word.load(Ordering::Acquire);
            if v & SEQ == target {
                return Ok(());
            }
            n = n.wrapping_add(1);
            let check = match self.wait {
                Wait::Spin => {
                    spin_loop();
                    n.is_multiple_of(4096)
                }
                Wait::Yield => {
                    let _ = sched_yield();
                    n.is_multiple_of(64)
                }
                Wait::Futex if n <= self.spins => {
                    spin_loop();
                    false
                }
                Wait::Futex => {
                    if v & WAITER == 0
                        && word
                            .compare_exchange(v, v | WAITER, Ordering::Relaxed, Ordering::Relaxed)
                            .is_err()
                    {
                        // The publisher got there first: look again.
                        continue;
                    }
                    futex_wait(word, v | WAITER, FUTEX_TIMEOUT)?;
                    true
                }
            };
            if check {
                if let Err(e) = self.alive() {
                    // The peer publishes before it closes: a last look tells "done" from "gone".
                    if word.load(Ordering::Acquire) & SEQ == target {
                        return Ok(());
                    }
                    return Err(e);
                }
            }
        }
    }

    /// An error when the peer closed or the deadline passed.
    fn alive(&self) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) != 0 {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the shared-memory channel",
            ))
        } else if Instant::now() >= self.deadline {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped answering through shared memory",
            ))
        } else {
            Ok(())
        }
    }

    /// Store `seq` in `word` (Release), waking an announced futex waiter.
    #[inline]
    fn publish(&self, word: &AtomicU32, seq: u32) -> io::Result<()> {
        if self.wait == Wait::Futex {
            if word.swap(seq, Ordering::Release) & WAITER != 0 {
                futex_wake(word)?;
            }
        } else {
            word.store(seq, Ordering::Release);
        }
        Ok(())
    }
}

/// The words of one slot, and where its payload starts.
#[derive(Debug, Clone, Copy)]
struct Slot<'a> {
    published: &'a AtomicU32,
    len: &'a AtomicU32,
    consumed: &'a AtomicU32,
    payload: usize,
}

impl<'a> Slot<'a> {
    fn of(mem: &'a impl SharedMem, d: usize) -> io::Result<Self> {
        let at = slot(d);
        Ok(Self {
            published: mem.word(at)?,
            len: mem.word(at + 4)?,
            consumed: mem.word(at + 64)?,
            payload: at + 128,
        })
    }
}

/// Sends through one slot.
#[derive(Debug)]
pub struct ShmOut<'a, M> {
    mem: &'a M,
    slot: Slot<'a>,
    side: Side<'a>,
    seq: u32,
}

impl<'a, M: SharedMem> ShmOut<'a, M> {
    /// The sender of slot `d` of `mem`.
    ///
    /// # Errors
    ///
    /// The slot's words are out of bounds.
    pub fn new(mem: &'a M, d: usize, side: Side<'a>) -> io::Result<Self> {
        Ok(Self {
            mem,
            slot: Slot::of(mem, d)?,
            side,
            seq: 0,
        })
    }
}

impl<M: SharedMem> Sender for ShmOut<'_, M> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if msg.len() > CAP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message larger than the slot",
            ));
        }
        // The receiver has taken the previous message: the slot is ours.
        self.side.wait_for(self.slot.consumed, self.seq)?;
        self.mem.put(self.slot.payload, msg)?;
        // msg.len() <= CAP < 2^32.
        self.slot.len.store(msg.len() as u32, Ordering::Relaxed);
        self.seq = next(self.seq);
        self.side.publish(self.slot.published, self.seq)
    }
}

/// Receives through one slot into a buffer of its own.
#[derive(Debug)]
pub struct ShmIn<'a, M> {
    mem: &'a M,
    slot: Slot<'a>,
    side: Side<'a>,
    seq: u32,
    buf: Vec<u8>,
}

impl<'a, M: SharedMem> ShmIn<'a, M> {
    /// The receiver of slot `d` of `mem`, with a buffer for messages of up to `max` bytes.
    ///
    /// # Errors
    ///
    /// The slot's words are out of bounds.
    pub fn new(mem: &'a M, d: usize, side: Side<'a>, max: usize) -> io::Result<Self> {
        Ok(Self {
            mem,
            slot: Slot::of(mem, d)?,
            side,
            seq: 0,
            buf: vec![0; max.clamp(1, CAP)],
        })
    }
}

impl<M: SharedMem> Receiver for ShmIn<'_, M> {
    #[inline]
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        let seq = next(self.seq);
        self.side.wait_for(self.slot.published, seq)?;
        // Written by the peer: validate before use.
        let n = self.slot.len.load(Ordering::Relaxed) as usize;
        if n > CAP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the peer announced {n} bytes in a {CAP}-byte slot"),
            ));
        }
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.mem.take(self.slot.payload, &mut self.buf[..n])?;
        self.seq = seq;
        self.side.publish(self.slot.consumed, seq)?;
        proto::check_len(&self.buf[..n], len)
    }
}

/// A shared-memory case: spinning or futex, raw or ipcraft.
#[derive(Debug)]
pub struct ShmCase {
    futex: bool,
    imp: Impl,
}

impl ShmCase {
    /// `futex` selects `shm-futex`; `imp` is [`Impl::Raw`] or [`Impl::Ipcraft`].
    pub fn new(futex: bool, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "a shared-memory case is raw or ipcraft");
        Self { futex, imp }
    }

    /// Run one side of `test` over `mem`, then set `closed` whatever happened.
    fn run<M: SharedMem>(
        &self,
        mem: &M,
        test: &Test,
        parent: bool,
        deadline: Instant,
    ) -> io::Result<Option<Sample>> {
        let closed = mem.word(CLOSED)?;
        let same_core = mem.word(YIELDS)?.load(Ordering::Relaxed) != 0;
        let wait = match (self.futex, same_core) {
            (true, _) => Wait::Futex,
            (false, true) => Wait::Yield,
            (false, false) => Wait::Spin,
        };
        let side = Side {
            wait,
            spins: if same_core { 0 } else { SPIN_BEFORE_SLEEP },
            closed,
            deadline,
        };
        let (out, inn) = if parent {
            (TO_CHILD, TO_PARENT)
        } else {
            (TO_PARENT, TO_CHILD)
        };
        let mut tx = ShmOut::new(mem, out, side)?;
        let mut rx = ShmIn::new(mem, inn, side, test.size)?;
        let result = if parent {
            proto::parent(test, &mut tx, &mut rx).map(Some)
        } else {
            proto::child(test, &mut tx, &mut rx).map(|()| None)
        };
        closed.store(1, Ordering::Release);
        result
    }

    /// The parent's side over `mem`, whose memory file `fd` becomes the child's stdin.
    fn parent<M: SharedMem>(
        &self,
        env: &Env,
        placement: Placement,
        test: &Test,
        mem: &M,
        fd: OwnedFd,
    ) -> io::Result<Sample> {
        // Before the child exists, so it sees the value when it maps the file.
        mem.word(YIELDS)?
            .store(u32::from(placement == Placement::Same), Ordering::Relaxed);
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(fd),
            Stdio::null(),
            |deadline| {
                self.run(mem, test, true, deadline)?
                    .ok_or_else(|| io::Error::other("the parent side measured nothing"))
            },
        )
    }
}

impl Case for ShmCase {
    fn mechanism(&self) -> &'static str {
        if self.futex { "shm-futex" } else { "shm-spin" }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        match self.imp {
            Impl::Raw => {
                let fd = crate::shm::create_len("ipcraft-bench-shm", RAW_SKIP + SEG_LEN)?;
                let map = SharedMap::map(&fd, RAW_SKIP + SEG_LEN)?;
                self.parent(env, placement, test, &map, fd)
            }
            _ => {
                let seg = Segment::anonymous(SEG_LEN)?;
                let fd = seg.as_fd().try_clone_to_owned()?;
                self.parent(env, placement, test, &seg, fd)
            }
        }
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let stdin = io::stdin().as_fd().try_clone_to_owned()?;
        // Never outlive the parent by long, even if it died without setting `closed`.
        let deadline = Instant::now() + CHILD_TIMEOUT + Duration::from_secs(5);
        match self.imp {
            Impl::Raw => {
                let map = SharedMap::map(&stdin, RAW_SKIP + SEG_LEN)?;
                self.run(&map, test, false, deadline).map(drop)
            }
            _ => {
                let seg = Segment::from_fd(stdin, SEG_LEN)?;
                self.run(&seg, test, false, deadline).map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_map() -> SharedMap {
        let fd = crate::shm::create_len("ipcraft-bench-shm-test", RAW_SKIP + SEG_LEN).unwrap();
        SharedMap::map(&fd, RAW_SKIP + SEG_LEN).unwrap()
    }

    fn side(mem: &impl SharedMem, wait: Wait) -> Side<'_> {
        Side {
            wait,
            spins: SPIN_BEFORE_SLEEP,
            closed: mem.word(CLOSED).unwrap(),
            deadline: Instant::now() + Duration::from_secs(10),
        }
    }

    /// One slot, one thread: send, then receive, alternately (the slot holds one message).
    fn alternate(mem: &impl SharedMem, wait: Wait) {
        let s = side(mem, wait);
        let mut tx = ShmOut::new(mem, TO_CHILD, s).unwrap();
        let mut rx = ShmIn::new(mem, TO_CHILD, s, 1).unwrap();
        for size in [1, 64, 4096, CAP, 0, 7] {
            let msg: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            tx.send(&msg).unwrap();
            assert_eq!(rx.recv(size).unwrap(), &msg[..]);
        }
        assert_eq!(
            tx.send(&vec![0; CAP + 1]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        tx.send(b"four").unwrap();
        assert_eq!(rx.recv(5).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn messages_go_through_a_slot_raw_and_ipcraft() {
        for wait in [Wait::Spin, Wait::Yield, Wait::Futex] {
            alternate(&raw_map(), wait);
            alternate(&Segment::anonymous(SEG_LEN).unwrap(), wait);
        }
    }

    #[test]
    fn sequence_numbers_wrap_below_the_waiter_bit() {
        assert_eq!(next(0), 1);
        assert_eq!(next(SEQ), 0);
        assert_eq!(next(SEQ - 1), SEQ);
        assert_eq!(next(SEQ) & WAITER, 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_hostile_length_is_invalid_data() {
        let mem = raw_map();
        let s = side(&mem, Wait::Spin);
        let slot = Slot::of(&mem, TO_CHILD).unwrap();
        slot.len.store(u32::MAX, Ordering::Relaxed);
        slot.published.store(1, Ordering::Release);
        let mut rx = ShmIn::new(&mem, TO_CHILD, s, 64).unwrap();
        assert_eq!(rx.recv(64).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_sleeping_futex_waiter_is_woken_and_a_closed_peer_ends_a_wait() {
        let seg = Segment::anonymous(SEG_LEN).unwrap();
        std::thread::scope(|sc| {
            let got = sc.spawn(|| {
                let mut rx = ShmIn::new(&seg, TO_CHILD, side(&seg, Wait::Futex), 8).unwrap();
                let first = rx.recv(3).unwrap().to_vec();
                (first, rx.recv(3).unwrap_err().kind())
            });
            // Long enough for the receiver to announce itself and sleep.
            std::thread::sleep(Duration::from_millis(50));
            let mut tx = ShmOut::new(&seg, TO_CHILD, side(&seg, Wait::Futex)).unwrap();
            tx.send(b"abc").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            seg.word(CLOSED).unwrap().store(1, Ordering::Release);
            let (first, second) = got.join().unwrap();
            assert_eq!(first, b"abc");
            assert_eq!(second, io::ErrorKind::UnexpectedEof);
        });
    }
}
