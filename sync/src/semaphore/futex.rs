//! The in-segment semaphore's protocol on its 64-bit word (the crate docs of
//! [`Semaphore`](super::Semaphore) and the module docs of `semaphore` give it in words).

#![allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.

use super::{SEM_VALUE_MAX, WAITER};
use crate::error::{Error, Result};
use crate::sys::{futex_wait_low, futex_wake_low};
use ipcraft_core::Deadline;
use nix::errno::Errno;
use std::sync::atomic::{AtomicU64, Ordering};

/// Take one unit if the value is above zero.
#[inline]
pub(super) fn try_take(word: &AtomicU64) -> bool {
    let mut d = word.load(Ordering::Relaxed);
    loop {
        if d as u32 == 0 {
            return false;
        }
        // The low half is non-zero: no borrow from the waiter count.
        match word.compare_exchange_weak(d, d - 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => d = now,
        }
    }
}

/// Wait for a unit until `deadline` (the module docs give the protocol).
pub(super) fn futex_sem_wait(word: &AtomicU64, deadline: Deadline) -> Result<()> {
    if try_take(word) {
        return Ok(());
    }
    word.fetch_add(WAITER, Ordering::Relaxed);
    let result = loop {
        if try_take(word) {
            break Ok(());
        }
        let left = deadline.remaining();
        if left.is_some_and(|left| left.is_zero()) {
            break Err(Error::TimedOut);
        }
        futex_wait_low(word, 0, left);
    };
    // Wrapping: a peer may have zeroed the count meanwhile; that only costs wake-ups.
    word.fetch_sub(WAITER, Ordering::Relaxed);
    result
}

/// Add a unit; wake one sleeper if anyone waits. `EOVERFLOW` at [`SEM_VALUE_MAX`].
#[inline]
pub(super) fn futex_sem_post(word: &AtomicU64) -> std::result::Result<(), Errno> {
    let mut d = word.load(Ordering::Relaxed);
    loop {
        if d as u32 >= SEM_VALUE_MAX {
            return Err(Errno::EOVERFLOW);
        }
        // The low half is below u32::MAX: no carry into the waiter count.
        match word.compare_exchange_weak(d, d + 1, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => d = now,
        }
    }
    if d >= WAITER {
        futex_wake_low(word, 1);
    }
    Ok(())
}
