//! Process-shared synchronization (`ipcraft-sync`): `mutex-uncontended`, `mutex-handoff` and
//! `condvar-pingpong`, each as the raw pthread baseline and as ipcraft (pthread kind), and
//! `mutex-futex-uncontended` and `mutex-futex-handoff`: ipcraft's futex kind against the
//! same raw pthread baseline.
//!
//! One small segment of [`LEN`] bytes holds the same layout in both implementations. Offsets
//! are from the start of the data area, which follows ipcraft's 64-byte header in the
//! ipcraft segment; the raw memfd leaves its first [`RAW_SKIP`] bytes unused, so every word
//! sits at the same place in its page in both:
//!
//! | offset | what |
//! |---|---|
//! | 0 | `Mutex<u64>` placement: state, layout, `pthread_mutex_t` at 8, the turn at 48 |
//! | 128 | `Condvar` placement: state, layout, the futex sequence word at 136 |
//! | 192 | control: `closed` (u32: a side is done), `yields` (u32: the peers share a core) |
//!
//! ([`PTHREAD`], [`TURN`] and [`SEQ`]: where ipcraft-sync puts them, checked by a test.)
//!
//! The raw baseline writes no state or layout words: it initializes the `pthread_mutex_t` in
//! the parent before the child exists ([`crate::raw::create_mutex_map`], with the attributes
//! ipcraft uses: process-shared, robust), calls `pthread_mutex_lock`/`unlock` directly, and
//! reads and writes the turn by copy under the lock, as `MutexGuard::get`/`set` do.
//!
//! The rows (the loops are written once, generic over [`Turns`], so raw and ipcraft do the
//! same work around the calls compared):
//! - `mutex-uncontended`: one process (no child), `count` lock+unlock pairs back to back on
//!   the mutex in shared memory; reported as pairs per second in the `msgs/s` column.
//! - `mutex-handoff`: two processes take turns strictly: the parent's turns are the even
//!   values of the turn, the child's the odd ones. Each waits for its turn by polling
//!   (lock, read the turn, unlock: [`Turns::try_turn`]), with `spin_loop` between polls
//!   across cores and `sched_yield` on one core, then writes the next value under the same
//!   lock. A round trip is both taking a turn; the parent times batches of
//!   [`HANDOFF_BATCH`] round trips and records their mean (see there why).
//! - `condvar-pingpong`: the same turns, but each side waits with the condvar
//!   ([`Turns::cv_turn`]): lock, `wait_while` the turn is not its own, write the next value,
//!   unlock, `notify_all`, as `sync/tests/condvar.rs` does. The parent times every round
//!   trip.
//!
//! The condvar's raw baseline is **not** glibc's `pthread_cond_t`, which ipcraft deliberately
//! does not use (it is not robust, glibc bug 21422): it is the same algorithm as
//! `sync/src/condvar.rs`, written with raw atomics and [`crate::raw`]'s futex calls. A
//! notify increments the sequence word (Release) and calls `FUTEX_WAKE` for every waiter,
//! whether anyone sleeps or not; a waiter reads the sequence under the mutex, unlocks, sleeps
//! in `FUTEX_WAIT` while the word still holds what it read (at most until its deadline), and
//! locks again. Both wait in slices of [`SLICE`] and check `closed` and the deadline between
//! them, so a dead peer is noticed.
// Atomics in shared memory between two real processes: nothing loom could check.
#![allow(clippy::disallowed_types)]

use std::hint::spin_loop;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcraft_shm::Segment;
use ipcraft_sync::{Condvar, LockError, Mutex, MutexKind, MutexOptions, Plain};
use nix::sched::sched_yield;

use crate::harness::{CHILD_TIMEOUT, Case, Env, Impl, Kind, Placement, Plan, Sample, Test};
use crate::proto::duration_ns;
use crate::raw::{PthreadMutex, futex_wait, futex_wake_all};
use crate::shm::SharedMap;
use crate::stats::Histogram;

/// Bytes of the data area: the mutex, the condvar and the control words, a line each.
pub const LEN: usize = 256;
/// Bytes the raw memfd leaves unused before its data area: ipcraft's header size.
pub const RAW_SKIP: usize = ipcraft_shm::HEADER_SIZE;
/// Offset of the `Mutex<u64>` placement.
const MUTEX: usize = 0;
/// Offset of the `pthread_mutex_t` in it (ipcraft-sync puts it after its state and layout
/// words; `the_layout_is_ipcraft_syncs` checks).
pub const PTHREAD: usize = MUTEX + 8;
/// Offset of the protected turn: where ipcraft-sync puts a `u64` after the mutex.
pub const TURN: usize = MUTEX + ipcraft_sync::footprint::<u64>() - size_of::<u64>();
/// Offset of the `Condvar` placement.
const CONDVAR: usize = 128;
/// Offset of the condvar's sequence word (after its state and layout words; checked too).
pub const SEQ: usize = CONDVAR + 8;
/// Offset of the `closed` word (non-zero: a side is done; its peer stops waiting).
const CLOSED: usize = 192;
/// Offset of the `yields` word (1: the peers share a core, pollers `sched_yield`).
const YIELDS: usize = 196;
/// `mutex-handoff` times batches of this many round trips and records their mean: across
/// cores a single handoff is shorter than the clock reads around it (the peer, polling,
/// often takes its turn while the parent reads the clock, so the next round trip is only the
/// parent's own lock+unlock), which makes per-round-trip times bimodal and their median
/// meaningless.
pub const HANDOFF_BATCH: u64 = 100;
/// The longest single condvar wait: then `closed` and the deadline are checked again.
pub const SLICE: Duration = Duration::from_millis(100);

/// What both implementations provide: the three operations the rows are made of, and the
/// control words.
pub trait Turns {
    /// Lock and unlock once.
    ///
    /// # Errors
    ///
    /// A lock or unlock error.
    fn lock_unlock(&self) -> io::Result<()>;

    /// Lock; if the turn is `want`, set it to `want + 1`; unlock. Whether it was `want`.
    ///
    /// # Errors
    ///
    /// A lock or unlock error.
    fn try_turn(&self, want: u64) -> io::Result<bool>;

    /// Lock; wait on the condvar while the turn is not `want`, at most `timeout`; if it is
    /// `want`, set it to `want + 1`, unlock and notify all; else unlock. Whether the turn was
    /// taken.
    ///
    /// # Errors
    ///
    /// A lock or unlock error (or a futex error, raw).
    fn cv_turn(&self, want: u64, timeout: Duration) -> io::Result<bool>;

    /// The control word at `offset`.
    ///
    /// # Errors
    ///
    /// Out of bounds.
    fn word(&self, offset: usize) -> io::Result<&AtomicU32>;
}

/// ipcraft: `Mutex<u64>` and `Condvar` placed in a `Segment`.
#[derive(Debug)]
pub struct Ipcraft<'a> {
    seg: &'a Segment,
    mutex: Mutex<u64, &'a Segment>,
    cv: Condvar<&'a Segment>,
}

impl<'a> Ipcraft<'a> {
    /// Place (parent) or attach to (child: `kind` is then the placed one's) the mutex of
    /// `kind` and the condvar in `seg`.
    ///
    /// # Errors
    ///
    /// `ipcraft-sync`'s placement errors.
    pub fn new(seg: &'a Segment, kind: MutexKind) -> io::Result<Self> {
        Ok(Self {
            seg,
            mutex: MutexOptions::new()
                .kind(kind)
                .in_segment(seg, MUTEX, 0u64)
                .map_err(io::Error::other)?,
            cv: Condvar::in_segment(seg, CONDVAR).map_err(io::Error::other)?,
        })
    }
}

/// A lock error as an I/O error (its text; it borrows the mutex).
fn lock_error<T: Plain>(e: LockError<'_, T>) -> io::Error {
    io::Error::other(e.to_string())
}

impl Turns for Ipcraft<'_> {
    #[inline]
    fn lock_unlock(&self) -> io::Result<()> {
        drop(self.mutex.lock().map_err(lock_error)?);
        Ok(())
    }

    #[inline]
    fn try_turn(&self, want: u64) -> io::Result<bool> {
        let guard = self.mutex.lock().map_err(lock_error)?;
        let mine = guard.get() == want;
        if mine {
            guard.set(&(want + 1));
        }
        Ok(mine)
    }

    #[inline]
    fn cv_turn(&self, want: u64, timeout: Duration) -> io::Result<bool> {
        let guard = self.mutex.lock().map_err(lock_error)?;
        let (guard, timed_out) = self
            .cv
            .wait_while_timeout(guard, timeout, |t| *t != want)
            .map_err(lock_error)?;
        if timed_out {
            return Ok(false);
        }
        guard.set(&(want + 1));
        drop(guard);
        self.cv.notify_all();
        Ok(true)
    }

    fn word(&self, offset: usize) -> io::Result<&AtomicU32> {
        Ok(self.seg.get::<AtomicU32>(offset)?)
    }
}

/// The raw baseline: a [`PthreadMutex`] and a futex sequence word in a memfd mapped by hand.
#[derive(Debug)]
pub struct Raw<'a> {
    map: &'a SharedMap,
    mutex: PthreadMutex<'a>,
    seq: &'a AtomicU32,
}

impl<'a> Raw<'a> {
    /// The mutex (initialized by [`crate::raw::create_mutex_map`]) and the sequence word of
    /// `map`, a mapping of `RAW_SKIP + LEN` bytes.
    ///
    /// # Errors
    ///
    /// Out of bounds or misaligned.
    pub fn new(map: &'a SharedMap) -> io::Result<Self> {
        // The turn is read and written below with its errors ignored, as ipcraft's
        // `MutexGuard::get`/`set` do: check its bounds once, here.
        map.bytes_at(RAW_SKIP + TURN, size_of::<u64>(), align_of::<u64>())?;
        Ok(Self {
            map,
            mutex: PthreadMutex::at(map, RAW_SKIP + PTHREAD)?,
            seq: map.word(RAW_SKIP + SEQ)?,
        })
    }

    /// The turn, by copy (call with the mutex held).
    #[inline]
    fn get(&self) -> u64 {
        let mut b = [0u8; 8];
        let _ = self.map.copy_out(RAW_SKIP + TURN, &mut b);
        u64::from_ne_bytes(b)
    }

    /// Store the turn, by copy (call with the mutex held).
    #[inline]
    fn set(&self, t: u64) {
        let _ = self.map.copy_in(RAW_SKIP + TURN, &t.to_ne_bytes());
    }

    /// With the mutex held: wait (as `Condvar::wait_while_timeout`) while the turn is not
    /// `want` and `deadline` has not passed; returns with the mutex held again, and whether
    /// the turn is `want`.
    #[inline]
    fn wait_for(&self, want: u64, deadline: Instant) -> io::Result<bool> {
        loop {
            if self.get() == want {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            // Read under the mutex: a notify after this changes the word, and the futex wait
            // returns at once.
            let seen = self.seq.load(Ordering::Acquire);
            self.mutex.unlock()?;
            let left = deadline.saturating_duration_since(Instant::now());
            let waited = if left.is_zero() {
                Ok(())
            } else {
                futex_wait(self.seq, seen, left)
            };
            self.mutex.lock()?;
            waited?;
        }
    }
}

impl Turns for Raw<'_> {
    #[inline]
    fn lock_unlock(&self) -> io::Result<()> {
        self.mutex.lock()?;
        self.mutex.unlock()
    }

    #[inline]
    fn try_turn(&self, want: u64) -> io::Result<bool> {
        self.mutex.lock()?;
        let mine = self.get() == want;
        if mine {
            self.set(want + 1);
        }
        self.mutex.unlock()?;
        Ok(mine)
    }

    #[inline]
    fn cv_turn(&self, want: u64, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        self.mutex.lock()?;
        let mine = self.wait_for(want, deadline);
        if let Ok(true) = mine {
            self.set(want + 1);
        }
        self.mutex.unlock()?;
        if mine? {
            // notify_all: bump the sequence, wake every sleeper.
            self.seq.fetch_add(1, Ordering::Release);
            futex_wake_all(self.seq)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn word(&self, offset: usize) -> io::Result<&AtomicU32> {
        self.map.word(RAW_SKIP + offset)
    }
}

/// The three rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// `mutex-uncontended`: lock+unlock pairs in one process.
    Uncontended,
    /// `mutex-handoff`: strict turns by lock/check/unlock polling.
    Handoff,
    /// `condvar-pingpong`: strict turns by condvar waits.
    PingPong,
}

/// One side's way of waiting for its turn, and when to give up.
#[derive(Debug, Clone, Copy)]
struct Side<'a> {
    row: Row,
    yields: bool,
    closed: &'a AtomicU32,
    deadline: Instant,
}

impl Side<'_> {
    /// Wait for the turn `want`, then take it (set `want + 1`).
    #[inline]
    fn take(&self, t: &impl Turns, want: u64) -> io::Result<()> {
        let mut n: u32 = 0;
        loop {
            let taken = match self.row {
                Row::PingPong => t.cv_turn(want, SLICE)?,
                _ => t.try_turn(want)?,
            };
            if taken {
                return Ok(());
            }
            n = n.wrapping_add(1);
            let check = match self.row {
                Row::PingPong => true,
                _ if self.yields => {
                    let _ = sched_yield();
                    n.is_multiple_of(64)
                }
                _ => {
                    spin_loop();
                    n.is_multiple_of(4096)
                }
            };
            if check {
                self.alive()?;
            }
        }
    }

    /// An error when the peer closed or the deadline passed.
    fn alive(&self) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) != 0 {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer left before its turn",
            ))
        } else if Instant::now() >= self.deadline {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped taking its turns",
            ))
        } else {
            Ok(())
        }
    }
}

/// A sync case: one of the three rows, raw or ipcraft, with ipcraft's mutex of a kind.
///
/// The pthread kind's rows (`mutex-uncontended`, `mutex-handoff`, `condvar-pingpong`)
/// measure ipcraft's wrapper against the same glibc calls. The futex kind's rows
/// (`mutex-futex-uncontended`, `mutex-futex-handoff`) put ipcraft's own lock against the same
/// raw pthread baseline, run again under their own name so each pairs with its raw run.
#[derive(Debug)]
pub struct SyncCase {
    row: Row,
    kind: MutexKind,
    imp: Impl,
}

impl SyncCase {
    /// `row` as `imp` ([`Impl::Raw`] or [`Impl::Ipcraft`]), ipcraft's mutex being of `kind`
    /// (the condvar row uses the pthread kind only).
    pub fn new(row: Row, kind: MutexKind, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "a sync case is raw or ipcraft");
        assert!(
            row != Row::PingPong || kind == MutexKind::Pthread,
            "the condvar row runs on the pthread kind"
        );
        Self { row, kind, imp }
    }

    /// Round trips per timed sample: [`HANDOFF_BATCH`] for `mutex-handoff`, else 1.
    fn batch(&self) -> u64 {
        if self.row == Row::Handoff {
            HANDOFF_BATCH
        } else {
            1
        }
    }

    /// `mutex-uncontended`: `test.count` timed pairs after `test.warmup` untimed ones.
    fn uncontended(t: &impl Turns, test: &Test) -> io::Result<Sample> {
        for _ in 0..test.warmup {
            t.lock_unlock()?;
        }
        let start = Instant::now();
        for _ in 0..test.count {
            t.lock_unlock()?;
        }
        Ok(Sample::throughput(test, start.elapsed()))
    }

    /// One side of a two-process row over `t`, then set `closed` whatever happened. The
    /// parent takes the even turns `0, 2, ..., 2 * (warmup + count)` and times each round
    /// trip after the warm-up; the child takes the odd turns in between.
    fn run(
        &self,
        t: &impl Turns,
        test: &Test,
        parent: bool,
        deadline: Instant,
    ) -> io::Result<Option<Sample>> {
        let closed = t.word(CLOSED)?;
        let side = Side {
            row: self.row,
            yields: t.word(YIELDS)?.load(Ordering::Relaxed) != 0,
            closed,
            deadline,
        };
        let rounds = (test.warmup + test.count) as u64;
        let result = if parent {
            (|| {
                for i in 0..=test.warmup as u64 {
                    side.take(t, 2 * i)?;
                }
                let batch = self.batch();
                let mut hist = Histogram::with_capacity(test.count / batch as usize);
                let mut last = Instant::now();
                let mut i = test.warmup as u64 + 1;
                while i + batch - 1 <= rounds {
                    for _ in 0..batch {
                        side.take(t, 2 * i)?;
                        i += 1;
                    }
                    let now = Instant::now();
                    hist.record(duration_ns(now - last) / batch);
                    last = now;
                }
                // The rounds a last partial batch would have timed (none with the standard
                // counts) still run, untimed, so that the child finishes its turns.
                while i <= rounds {
                    side.take(t, 2 * i)?;
                    i += 1;
                }
                Ok(Some(Sample::from_histogram(&mut hist)))
            })()
        } else {
            (0..rounds)
                .try_for_each(|i| side.take(t, 2 * i + 1))
                .map(|()| None)
        };
        closed.store(1, Ordering::Release);
        result
    }

    /// The parent's side over `t`, whose memory file `fd` becomes the child's stdin (or no
    /// child at all for `mutex-uncontended`).
    fn parent(
        &self,
        env: &Env,
        placement: Placement,
        test: &Test,
        t: &impl Turns,
        fd: OwnedFd,
    ) -> io::Result<Sample> {
        if self.row == Row::Uncontended {
            return Self::uncontended(t, test);
        }
        // Before the child exists, so it sees the value when it maps the file.
        t.word(YIELDS)?
            .store(u32::from(placement == Placement::Same), Ordering::Relaxed);
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(fd),
            Stdio::null(),
            |deadline| {
                self.run(t, test, true, deadline)?
                    .ok_or_else(|| io::Error::other("the parent side measured nothing"))
            },
        )
    }
}

impl Case for SyncCase {
    fn mechanism(&self) -> &'static str {
        match (self.row, self.kind) {
            (Row::Uncontended, MutexKind::Pthread) => "mutex-uncontended",
            (Row::Handoff, MutexKind::Pthread) => "mutex-handoff",
            (Row::Uncontended, _) => "mutex-futex-uncontended",
            (Row::Handoff, _) => "mutex-futex-handoff",
            (Row::PingPong, _) => "condvar-pingpong",
        }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn placements(&self) -> &'static [Placement] {
        match self.row {
            // One process, on the parent's CPU.
            Row::Uncontended => &[Placement::Same],
            _ => &[Placement::Cross, Placement::Same],
        }
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        // Size 0: no message moves, only the protected u64.
        match self.row {
            Row::Uncontended => vec![Test::throughput(
                0,
                plan.scaled(10_000_000),
                plan.scaled(500_000),
            )],
            Row::Handoff => vec![Test::latency(0, plan.scaled(200_000), plan.scaled(20_000))],
            Row::PingPong => vec![Test::latency(0, plan.scaled(20_000), plan.scaled(2_000))],
        }
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let want = match self.row {
            Row::Uncontended => Kind::Throughput,
            _ => Kind::Latency,
        };
        if test.kind != want {
            return Err(io::Error::other(format!(
                "{} measures {} only",
                self.mechanism(),
                want.as_str()
            )));
        }
        match self.imp {
            Impl::Raw => {
                let (fd, map) = crate::raw::create_mutex_map(
                    "ipcraft-bench-sync",
                    RAW_SKIP + LEN,
                    RAW_SKIP + PTHREAD,
                )?;
                self.parent(env, placement, test, &Raw::new(&map)?, fd)
            }
            _ => {
                let seg = Segment::anonymous(LEN)?;
                let fd = seg.as_fd().try_clone_to_owned()?;
                self.parent(
                    env,
                    placement,
                    test,
                    &Ipcraft::new(&seg, MutexKind::Pthread)?,
                    fd,
                )
            }
        }
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        if self.row == Row::Uncontended {
            return Err(io::Error::other(
                "mutex-uncontended runs in one process; it has no child",
            ));
        }
        let stdin = io::stdin().as_fd().try_clone_to_owned()?;
        // Never outlive the parent by long, even if it died without setting `closed`.
        let deadline = Instant::now() + CHILD_TIMEOUT + Duration::from_secs(5);
        match self.imp {
            Impl::Raw => {
                let map = SharedMap::map(&stdin, RAW_SKIP + LEN)?;
                self.run(&Raw::new(&map)?, test, false, deadline).map(drop)
            }
            _ => {
                let seg = Segment::from_fd(stdin, LEN)?;
                self.run(
                    &Ipcraft::new(&seg, MutexKind::Pthread)?,
                    test,
                    false,
                    deadline,
                )
                .map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_map() -> SharedMap {
        crate::raw::create_mutex_map(
            "ipcraft-bench-sync-test",
            RAW_SKIP + LEN,
            RAW_SKIP + PTHREAD,
        )
        .unwrap()
        .1
    }

    fn side(t: &impl Turns, row: Row) -> Side<'_> {
        Side {
            row,
            yields: false,
            closed: t.word(CLOSED).unwrap(),
            deadline: Instant::now() + Duration::from_secs(10),
        }
    }

    /// One thread taking every turn: each operation sees and moves the turn.
    fn turns(t: &impl Turns) {
        t.lock_unlock().unwrap();
        assert!(!t.try_turn(1).unwrap());
        assert!(t.try_turn(0).unwrap());
        assert!(t.try_turn(1).unwrap());
        // Not our turn: the wait times out.
        assert!(!t.cv_turn(7, Duration::from_millis(5)).unwrap());
        assert!(t.cv_turn(2, Duration::from_millis(5)).unwrap());
        for (row, from) in [(Row::Handoff, 3), (Row::PingPong, 10)] {
            let s = side(t, row);
            for want in from..from + 7 {
                s.take(t, want).unwrap();
            }
        }
        assert!(t.try_turn(17).unwrap());
        // A closed peer ends a wait.
        t.word(CLOSED).unwrap().store(1, Ordering::Release);
        for row in [Row::Handoff, Row::PingPong] {
            let e = side(t, row).take(t, 100).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn turns_move_raw_and_ipcraft() {
        let map = raw_map();
        turns(&Raw::new(&map).unwrap());
        for kind in [MutexKind::Pthread, MutexKind::Futex] {
            let seg = Segment::anonymous(LEN).unwrap();
            turns(&Ipcraft::new(&seg, kind).unwrap());
        }
    }

    /// The raw layout is ipcraft-sync's: its pthread mutex word and its condvar sequence
    /// word are where the raw rows put theirs.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn the_layout_is_ipcraft_syncs() {
        let seg = Segment::anonymous(LEN).unwrap();
        let t = Ipcraft::new(&seg, MutexKind::Pthread).unwrap();
        let lock_word = seg.get::<AtomicU32>(PTHREAD).unwrap();
        assert_eq!(lock_word.load(Ordering::Relaxed), 0);
        {
            let guard = t.mutex.lock().unwrap();
            // A robust mutex's lock word holds its owner's thread id.
            let tid = nix::unistd::gettid().as_raw() as u32;
            assert_eq!(lock_word.load(Ordering::Relaxed) & 0x3fff_ffff, tid);
            guard.set(&0x0123_4567_89ab_cdef);
        }
        assert_eq!(lock_word.load(Ordering::Relaxed), 0);
        let mut b = [0u8; 8];
        seg.read_at(TURN, &mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 0x0123_4567_89ab_cdef);
        let seq = seg.get::<AtomicU32>(SEQ).unwrap();
        let before = seq.load(Ordering::Relaxed);
        t.cv.notify_all();
        assert_eq!(seq.load(Ordering::Relaxed), before.wrapping_add(1));
    }
}
