//! The futex kind of [`Mutex`](crate::Mutex): a robust lock whose shared state is one plain
//! 32-bit word, with owner death detected by the kernel, following no pointer a peer wrote.
//!
//! # The word
//!
//! | bits | meaning |
//! |---|---|
//! | 0-9 | the owner's slot: 0 free, 1..=[`MAX_HANDLES`] a handle, [`ORPHANED`] an owner that is gone, [`NOT_RECOVERABLE`] |
//! | 10-29 | a generation, advanced by every acquisition and kept by unlock |
//! | 30 | `INCONSISTENT`: the holder took the lock from a dead owner and has not repaired yet |
//! | 31 | `WAITERS`: someone may sleep on the word; the unlocker must wake |
//!
//! # Slots and liveness
//!
//! Every handle (every `Mutex` value) claims a slot when it attaches: the first `s` whose
//! byte `base + s` of the segment's file it can lock with an open-file-description lock
//! ([`ByteLocks`], a description of its own). The kernel drops that lock when the handle is
//! dropped or its process dies, so "slot `s` is locked by another description" means "the
//! owner lives", at every instant. The bytes lie far past any data (`base` is 2^50 plus
//! 1024 bytes per 64-byte placement offset), so they never collide with another object's.
//!
//! A waiter that finds the word naming a slot whose byte nobody holds knows the owner is
//! dead, and takes the lock with a compare-exchange, marked `INCONSISTENT`: it gets
//! `OwnerDied`, as a robust pthread mutex reports `EOWNERDEAD`. A slot freed by a dead owner
//! may be claimed again by a new handle before any waiter noticed; so a handle, right after
//! claiming its slot, replaces a word that still names that slot with [`ORPHANED`] (and
//! wakes everyone), which lockers treat as a dead owner too. After that claim, only the
//! claimer can write its slot into the word.
//!
//! A slot freed by a handle that unlocked and went away cleanly may be claimed again, and
//! locked, between a waiter's reading of the word and its probe (the byte was free) or its
//! compare-exchange: the word names the same slot again, now a live owner's. The generation
//! makes that compare-exchange fail (it would take 2^20 acquisitions in between to repeat
//! the word exactly), so a live owner's lock is not taken for a dead one's.
//!
//! Waiting sleeps on the word in slices of [`SLICE`]; the owner's byte is probed after a
//! slice that brought no change, on `try_lock`, and when the deadline passes, never on the
//! path where the lock changes hands normally (no system call but the futex ones).
//!
//! # Against a hostile peer
//!
//! Every value of the word is a state above, or garbage in bits this code ignores. A peer
//! that writes it can break mutual exclusion or make lockers report `OwnerDied` or
//! `NotRecoverable`; it cannot make this process follow a pointer, index out of bounds,
//! panic, or wait past a deadline (every sleep is bounded by the deadline, and the word is
//! re-read after every sleep).

#![allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.

use crate::sys::{Acquired, MappedWord, fork_generation, forks, futex_wait_timed, futex_wake};
use ipcraft_core::Deadline;
use ipcraft_shm::{ByteLocks, Segment};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
#[cfg(test)]
use std::time::Instant;

const SLOT_MASK: u32 = 0x3ff;
/// The slot value of an owner that is known to be gone (its slot was claimed again).
pub(crate) const ORPHANED: u32 = 0x3fe;
/// The slot value of a mutex that is not recoverable.
pub(crate) const NOT_RECOVERABLE: u32 = 0x3ff;
/// How many handles (in all processes together) can be attached to one futex-kind mutex.
pub const MAX_HANDLES: u32 = 0x3fd;
/// The generation bits, and one step of it.
const GEN_MASK: u32 = 0x3fff_fc00;
const GEN_ONE: u32 = 1 << 10;
const INCONSISTENT: u32 = 1 << 30;
const WAITERS: u32 = 1 << 31;
/// The longest single sleep; then the owner's liveness is probed.
pub(crate) const SLICE: Duration = Duration::from_millis(100);
/// How many times a contended lock polls the word before it sleeps (once under loom, whose
/// every load is a branch point).
const SPINS: u32 = if cfg!(all(test, ipcraft_loom)) {
    1
} else {
    100
};
/// Lock bytes start here, far past any segment's data.
const LOCK_BYTES: u64 = 1 << 50;
/// Lock bytes per 64-byte placement offset (slots 0..=1023).
const BYTES_PER_PLACEMENT: u64 = 1024;

/// Why a lock was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// Held by a live owner and the deadline passed (`try_lock`: at once).
    Held,
    /// The mutex is marked not recoverable.
    NotRecoverable,
    /// This handle was inherited over `fork`: attach again in the child.
    Inherited,
}

/// A 32-bit lock word and the futex calls on it: the shared word in a mapping for the crate,
/// a loom atomic with an emulated futex for the model checker (`cargo xtask loom`).
pub(crate) trait LockWord {
    fn load(&self, order: Ordering) -> u32;
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Sleep while the word holds `expected`, at most `timeout`; whether it timed out.
    fn wait(&self, expected: u32, timeout: Duration) -> bool;
    /// Wake up to `count` sleepers.
    fn wake(&self, count: i32);
}

impl LockWord for AtomicU32 {
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }
    fn wait(&self, expected: u32, timeout: Duration) -> bool {
        futex_wait_timed(self, expected, Some(timeout))
    }
    fn wake(&self, count: i32) {
        futex_wake(self, count);
    }
}

/// This handle's claim: its slot, held by an OFD lock on a byte of the segment's file.
#[derive(Debug)]
pub(crate) struct FutexLock {
    word: MappedWord,
    locks: ByteLocks,
    slot: u32,
    base: u64,
    /// The process's fork count at attach: a child that inherited the handle has another.
    forks: u32,
}

impl FutexLock {
    /// Claim a slot for a new handle of the mutex whose placement is at `offset` in `seg`,
    /// with its lock word `word`, and orphan any lock still held in that slot's name by a
    /// gone handle.
    pub(crate) fn attach(
        seg: &Segment,
        offset: usize,
        word: MappedWord,
    ) -> Result<Self, crate::Error> {
        let forks = fork_generation();
        let locks = ByteLocks::new(seg)?;
        let base = LOCK_BYTES + (offset as u64 / 64) * BYTES_PER_PLACEMENT;
        for slot in 1..=MAX_HANDLES {
            if locks.try_lock(base + u64::from(slot))? {
                let me = Self {
                    word,
                    locks,
                    slot,
                    base,
                    forks,
                };
                me.orphan_previous(me.word());
                return Ok(me);
            }
        }
        Err(crate::Error::TooManyHandles { max: MAX_HANDLES })
    }

    /// The lock word.
    #[inline]
    pub(crate) fn word(&self) -> &AtomicU32 {
        self.word.get()
    }

    /// A word naming our freshly claimed slot was left by a handle that is gone: mark it
    /// orphaned so the next locker takes it with `OwnerDied`.
    fn orphan_previous(&self, word: &AtomicU32) {
        orphan(word, self.slot);
    }

    /// This handle's slot.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// Whether the owner in `slot` may be alive: ours (another thread of this handle), or a
    /// slot whose byte another description holds. An error probing counts as alive (the
    /// caller then waits until its deadline rather than stealing a live owner's lock).
    fn owner_alive(&self, slot: u32) -> bool {
        if slot == self.slot {
            return true;
        }
        if slot == 0 || slot > MAX_HANDLES {
            return false;
        }
        self.locks
            .is_locked_by_other(self.base + u64::from(slot))
            .unwrap_or(true)
    }

    /// Take the lock, waiting until `deadline` at the latest (a passed deadline: one try,
    /// which probes a held lock's owner once).
    #[inline]
    pub(crate) fn lock(&self, deadline: Deadline) -> Result<Acquired, NotTaken> {
        if forks() != self.forks {
            return Err(NotTaken::Inherited);
        }
        lock(self.word(), self.slot, deadline, |owner| {
            self.owner_alive(owner)
        })
    }

    /// Release a lock this handle holds; `repaired` is false when dropping a recovery that
    /// was not made consistent (the mutex becomes not recoverable). `Err` when the word no
    /// longer names this handle: a peer overwrote it, and it is left as it is.
    #[inline]
    pub(crate) fn unlock(&self, repaired: bool) -> Result<(), u32> {
        if forks() != self.forks {
            // A guard copied over fork: the lock is the parent's.
            return Err(self.word().load(Ordering::Relaxed));
        }
        unlock(self.word(), self.slot, repaired)
    }

    /// Clear `INCONSISTENT` on a lock this handle holds. `Err` with the word found when it
    /// does not name this handle.
    pub(crate) fn make_consistent(&self) -> Result<(), u32> {
        if forks() != self.forks {
            return Err(self.word().load(Ordering::Relaxed));
        }
        make_consistent(self.word(), self.slot)
    }
}

/// Replace a word naming `slot` (a gone handle's, just claimed again) with [`ORPHANED`].
fn orphan<W: LockWord>(word: &W, slot: u32) {
    let mut w = word.load(Ordering::Acquire);
    while w & SLOT_MASK == slot {
        let orphaned = (w & !SLOT_MASK) | ORPHANED | WAITERS;
        match word.compare_exchange(w, orphaned, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                word.wake(i32::MAX);
                return;
            }
            Err(now) => w = now,
        }
    }
}

/// Lock `word` for the handle in `slot`, waiting until `deadline`; `alive` probes an owner's
/// slot (only on the contended path).
#[inline]
fn lock<W: LockWord>(
    word: &W,
    slot: u32,
    deadline: Deadline,
    alive: impl Fn(u32) -> bool,
) -> Result<Acquired, NotTaken> {
    let w = word.load(Ordering::Relaxed);
    if w & !GEN_MASK == 0
        && word
            .compare_exchange(w, next_gen(w) | slot, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    {
        return Ok(Acquired::Clean);
    }
    lock_slow(word, slot, deadline, alive)
}

/// The generation of the acquisition that replaces `w`.
#[inline]
fn next_gen(w: u32) -> u32 {
    (w & GEN_MASK).wrapping_add(GEN_ONE) & GEN_MASK
}

/// Unlock `word`, which the handle in `slot` holds (`repaired`: see [`FutexLock::unlock`]).
#[inline]
fn unlock<W: LockWord>(word: &W, slot: u32, repaired: bool) -> Result<(), u32> {
    let w = word.load(Ordering::Relaxed);
    if repaired
        && w & !GEN_MASK == slot
        && word
            .compare_exchange(w, w & GEN_MASK, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    {
        return Ok(());
    }
    unlock_slow(word, slot, repaired)
}

/// The contended path of a lock by the handle in `slot`; `alive` probes an owner's slot.
#[cold]
fn lock_slow<W: LockWord>(
    word: &W,
    slot: u32,
    deadline: Deadline,
    alive: impl Fn(u32) -> bool,
) -> Result<Acquired, NotTaken> {
    // Probe the owner's liveness before the first sleep only when the deadline has
    // already passed (try_lock); otherwise after each slice without news.
    let mut probe = deadline.has_passed();
    // A holder on another CPU releases within a few hundred ns: poll a little before
    // announcing a sleeper, which would make the unlock pay a FUTEX_WAKE and us a sleep.
    // (try_lock does not spin.)
    let mut spins = if probe { 0 } else { SPINS };
    while spins > 0 && word.load(Ordering::Relaxed) & SLOT_MASK != 0 {
        std::hint::spin_loop();
        spins -= 1;
    }
    // Once this call has slept, it may have been woken for a sleeper that is still asleep
    // beside it: it then takes the lock with WAITERS set, so its unlock wakes the next one.
    let mut slept = false;
    loop {
        let w = word.load(Ordering::Acquire);
        let owner = w & SLOT_MASK;
        let waiters = if slept { WAITERS } else { w & WAITERS };
        if owner == 0 {
            // Free (perhaps with waiters): take it.
            let taken = next_gen(w) | slot | waiters;
            if word
                .compare_exchange(w, taken, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Acquired::Clean);
            }
            continue;
        }
        if owner == NOT_RECOVERABLE {
            return Err(NotTaken::NotRecoverable);
        }
        if owner == ORPHANED || (probe && owner != slot && !alive(owner)) {
            let taken = next_gen(w) | slot | INCONSISTENT | waiters;
            if word
                .compare_exchange(w, taken, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Acquired::OwnerDied);
            }
            continue;
        }
        let Some(left) = remaining(deadline) else {
            // Passed: the owner was probed on this round (probe is set below).
            if probe {
                if slept {
                    // A wake-up this call took may have been meant for another sleeper,
                    // and the holder may have taken the lock without WAITERS: pass it on.
                    word.wake(1);
                }
                return Err(NotTaken::Held);
            }
            probe = true;
            continue;
        };
        // Announce a sleeper, then sleep while the word still says what we announced.
        let expected = w | WAITERS;
        if w & WAITERS == 0
            && word
                .compare_exchange(w, expected, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let nap = left.map_or(SLICE, |left| left.min(SLICE));
        // A full slice without news: time to ask whether the owner lives. (A shorter nap
        // ends at the deadline, where the owner is probed anyway.)
        probe = word.wait(expected, nap) && nap == SLICE;
        slept = true;
    }
}

/// The unlock of a word that is not simply `slot` (waiters, a recovery, or not ours).
#[cold]
fn unlock_slow<W: LockWord>(word: &W, slot: u32, repaired: bool) -> Result<(), u32> {
    let mut w = word.load(Ordering::Relaxed);
    loop {
        if w & SLOT_MASK != slot {
            return Err(w);
        }
        // The generation stays: a word read before this unlock never matches again.
        let next = (w & GEN_MASK) | if repaired { 0 } else { NOT_RECOVERABLE };
        match word.compare_exchange(w, next, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => w = now,
        }
    }
    if !repaired {
        word.wake(i32::MAX);
    } else if w & WAITERS != 0 {
        word.wake(1);
    }
    Ok(())
}

/// Clear `INCONSISTENT` on a lock `slot` holds.
fn make_consistent<W: LockWord>(word: &W, slot: u32) -> Result<(), u32> {
    let mut w = word.load(Ordering::Relaxed);
    loop {
        if w & SLOT_MASK != slot {
            return Err(w);
        }
        match word.compare_exchange(w, w & !INCONSISTENT, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => w = now,
        }
    }
}

/// `None` once the deadline passed; `Some(None)` for no deadline; else the time left.
fn remaining(deadline: Deadline) -> Option<Option<Duration>> {
    match deadline.remaining() {
        None => Some(None),
        Some(left) if left.is_zero() => None,
        Some(left) => Some(Some(left)),
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, ipcraft_loom))]
mod loom_tests;
