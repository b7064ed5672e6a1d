//! [`Condvar`]: a process-shared condition variable on a futex sequence word of its own.
//!
//! glibc's process-shared `pthread_cond_t` is not robust: it keeps per-waiter state in the
//! shared object, and since glibc 2.25 a waiter killed at the wrong moment can leave it in a
//! state that blocks every other user (glibc bug 21422). This condvar keeps no per-waiter
//! state at all: a 32-bit sequence number that each notify increments, and a shared futex
//! to sleep on it. A waiter reads the sequence while holding the mutex, unlocks, and sleeps
//! only while the sequence is unchanged; a notifier increments it and wakes sleepers. A
//! process killed anywhere in this leaves nothing behind: at worst a notify it did not
//! finish is lost, and waiters return by their timeout, as they may spuriously anyway.

#![allow(clippy::disallowed_types)] // The words live in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use crate::guard::{LockError, MutexGuard};
use crate::mutex::Plain;
use crate::sys::{futex_wait, futex_wake};
use ipcraft_core::{Deadline, TrustedOwners};
use ipcraft_shm::{Segment, SegmentOptions};
use std::borrow::Borrow;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const STATE_READY: u32 = 2;
const LAYOUT: u32 = 0xc0d0_0001;
const SEQ_OFFSET: usize = 8;
/// Bytes a condvar takes in a segment (place it at a multiple of 64).
pub const CONDVAR_FOOTPRINT: usize = 16;
const TAG: u64 = (0x1bc5_3a7e_u64 << 32) | LAYOUT as u64;

/// A condition variable shared between processes, used with a [`Mutex`](crate::Mutex).
///
/// Waits use the monotonic clock. The death of any waiter or notifier, at any point, never
/// blocks the others (see the module docs); spurious wake-ups are possible, so wait in a loop
/// or with [`wait_while`](Self::wait_while).
///
/// # Examples
///
/// ```
/// use ipcraft_shm::Segment;
/// use ipcraft_sync::{Condvar, Mutex};
/// use std::time::Duration;
///
/// let seg = Segment::anonymous(256)?; // hand its descriptor to a child process
/// let ready = Mutex::in_segment(&seg, 0, 0u32)?;
/// let cv = Condvar::in_segment(&seg, 128)?;
/// // Another process: ready.lock()?.set(&1); cv.notify_all();
/// ready.lock().unwrap().set(&1);
/// cv.notify_all();
/// let (guard, timed_out) = cv
///     .wait_while_timeout(ready.lock().unwrap(), Duration::from_secs(1), |v| *v == 0)
///     .unwrap();
/// assert!(!timed_out && guard.get() == 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "pthread_cond_t")]
pub struct Condvar<S: Borrow<Segment> = Segment> {
    seg: S,
    offset: usize,
}

/// How to create or open a named [`Condvar`]: the mode of its segment, and whose condvars an
/// open joins.
///
/// # Examples
///
/// ```
/// use ipcraft_sync::CondvarOptions;
///
/// let name = format!("/ipcraft-doc-cv-{}", std::process::id());
/// let cv = CondvarOptions::new().mode(0o600).create(&name)?;
/// let other = CondvarOptions::new().open(&name)?; // another process, as the same user
/// other.notify_all();
/// # drop(cv);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until create or open is called"]
pub struct CondvarOptions {
    mode: u32,
    trusted: TrustedOwners,
}

impl Default for CondvarOptions {
    fn default() -> Self {
        Self {
            mode: ipcraft_shm::DEFAULT_MODE,
            trusted: TrustedOwners::new(),
        }
    }
}

impl CondvarOptions {
    /// Mode 0600; trust our own uid and root.
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits of a named condvar's segment, exactly (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whose named condvars [`open`](Self::open) joins (default: our effective uid and
    /// root).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// [`Condvar::create`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Condvar::create`].
    pub fn create(&self, name: &str) -> Result<Condvar> {
        let seg = SegmentOptions::new()
            .mode(self.mode)
            .tag(TAG)
            .create(name, CONDVAR_FOOTPRINT)?;
        Condvar::place(seg, 0)
    }

    /// [`Condvar::open`], trusting these owners.
    ///
    /// # Errors
    ///
    /// As [`Condvar::open`].
    pub fn open(&self, name: &str) -> Result<Condvar> {
        let seg = SegmentOptions::new()
            .trust(self.trusted)
            .tag(TAG)
            .open(name)?;
        Condvar::place(seg, 0)
    }
}

impl Condvar {
    /// Create a named segment holding a condvar, mode 0600 ([`CondvarOptions`] for others).
    ///
    /// # Errors
    ///
    /// [`Error::Shm`].
    pub fn create(name: &str) -> Result<Self> {
        CondvarOptions::new().create(name)
    }

    /// Open a named condvar another process created, if its owner is this user or root
    /// (checked on the descriptor; [`CondvarOptions::trust`] widens it).
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; [`Error::Shm`] (`WrongTag` when the name holds something else).
    pub fn open(name: &str) -> Result<Self> {
        CondvarOptions::new().open(name)
    }
}

impl<'a> Condvar<&'a Segment> {
    /// Place a condvar at `offset` in `seg` (a multiple of 64, [`CONDVAR_FOOTPRINT`] bytes),
    /// or attach to the one there. Needs no initialization race: all-zero is a valid condvar.
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`]; [`Error::Shm`] (`OutOfBounds`, `ReadOnly`);
    /// [`Error::WrongLayout`] when something else is there.
    pub fn in_segment(seg: &'a Segment, offset: usize) -> Result<Self> {
        Self::place(seg, offset)
    }
}

impl<S: Borrow<Segment>> Condvar<S> {
    fn place(seg: S, offset: usize) -> Result<Self> {
        if !offset.is_multiple_of(64) {
            return Err(Error::Misaligned { offset });
        }
        let s = seg.borrow();
        let state: &AtomicU32 = s.get(offset)?;
        let layout: &AtomicU32 = s.get(offset + 4)?;
        s.get::<AtomicU32>(offset + SEQ_OFFSET)?;
        // Zero is a valid sequence, so "initializing" is only stamping the layout word.
        match layout.compare_exchange(0, LAYOUT, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => state.store(STATE_READY, Ordering::Release),
            Err(LAYOUT) => {}
            Err(found) => {
                return Err(Error::WrongLayout {
                    found,
                    expected: LAYOUT,
                });
            }
        }
        Ok(Self { seg, offset })
    }

    fn seq(&self) -> &AtomicU32 {
        // Checked in `place`: in bounds, aligned, writable.
        match self.seg.borrow().get(self.offset + SEQ_OFFSET) {
            Ok(seq) => seq,
            Err(_) => unreachable_seq(),
        }
    }

    /// Wake one waiter.
    #[doc(alias = "pthread_cond_signal")]
    pub fn notify_one(&self) {
        let seq = self.seq();
        seq.fetch_add(1, Ordering::Release);
        futex_wake(seq, 1);
    }

    /// Wake every waiter.
    #[doc(alias = "pthread_cond_broadcast")]
    pub fn notify_all(&self) {
        let seq = self.seq();
        seq.fetch_add(1, Ordering::Release);
        futex_wake(seq, i32::MAX);
    }

    /// Unlock `guard`'s mutex, sleep until notified (or spuriously), lock again.
    ///
    /// # Errors
    ///
    /// As [`Mutex::lock`](crate::Mutex::lock) when re-locking: [`LockError::OwnerDied`] if
    /// another process died holding the mutex meanwhile, [`LockError::NotRecoverable`].
    #[doc(alias = "pthread_cond_wait")]
    pub fn wait<'a, T: Plain>(
        &self,
        guard: MutexGuard<'a, T>,
    ) -> std::result::Result<MutexGuard<'a, T>, LockError<'a, T>> {
        self.wait_deadline(guard, Deadline::never()).map(|(g, _)| g)
    }

    /// [`wait`](Self::wait), for at most `timeout`; also returns whether the timeout passed.
    ///
    /// The whole call, re-locking included, ends by the timeout: when the wait ends and the
    /// mutex cannot be locked again before the deadline (a peer holds it), the result is
    /// [`LockError::TimedOut`] and the lock is not held.
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`] as above; otherwise as [`wait`](Self::wait).
    #[doc(alias = "pthread_cond_clockwait")]
    pub fn wait_timeout<'a, T: Plain>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        self.wait_deadline(guard, Deadline::after(timeout))
    }

    /// [`wait`](Self::wait), until `deadline` at the latest; also returns whether it passed.
    /// Re-locking the mutex keeps to the same deadline, as in
    /// [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`] when the mutex could not be locked again by the deadline;
    /// otherwise as [`wait`](Self::wait).
    pub fn wait_deadline<'a, T: Plain>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Deadline,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        let seq = self.seq();
        // Read under the mutex: a notify after this (by a process that changed the state
        // under the mutex) changes the word, and the futex wait below returns at once.
        let seen = seq.load(Ordering::Acquire);
        let (relocked, ()) = guard.unlocked(deadline, || {
            if !deadline.has_passed() {
                futex_wait(seq, seen, deadline.remaining());
            }
        })?;
        Ok((relocked, deadline.has_passed()))
    }

    /// Wait while `condition` holds for the protected value.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_while<'a, T: Plain>(
        &self,
        guard: MutexGuard<'a, T>,
        condition: impl FnMut(&T) -> bool,
    ) -> std::result::Result<MutexGuard<'a, T>, LockError<'a, T>> {
        self.wait_while_deadline(guard, Deadline::never(), condition)
            .map(|(g, _)| g)
    }

    /// Wait while `condition` holds, for at most `timeout`; also returns whether the timeout
    /// passed with the condition still holding.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_while_timeout<'a, T: Plain>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&T) -> bool,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        self.wait_while_deadline(guard, Deadline::after(timeout), condition)
    }

    fn wait_while_deadline<'a, T: Plain>(
        &self,
        mut guard: MutexGuard<'a, T>,
        deadline: Deadline,
        mut condition: impl FnMut(&T) -> bool,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        loop {
            if !condition(&guard.get()) {
                return Ok((guard, false));
            }
            if deadline.has_passed() {
                return Ok((guard, true));
            }
            guard = self.wait_deadline(guard, deadline)?.0;
        }
    }
}

/// `seq()` cannot fail after `place` checked the same access; never reached.
#[cold]
fn unreachable_seq() -> &'static AtomicU32 {
    static FALLBACK: AtomicU32 = AtomicU32::new(0);
    &FALLBACK
}

impl<S: Borrow<Segment>> fmt::Debug for Condvar<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("segment", &self.seg.borrow().name())
            .field("offset", &self.offset)
            .finish()
    }
}
