//! The in-segment semaphore's protocol on its 64-bit word (the crate docs of
//! [`Semaphore`](super::Semaphore) and the module docs of `semaphore` give it in words).

#![allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.

use super::{SEM_VALUE_MAX, WAITER};
use crate::error::{Error, Result};
use crate::sys::{futex_wait_low, futex_wake_low};
use ipcraft_core::Deadline;
use nix::errno::Errno;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest single sleep of a wait.
const SLICE: Duration = Duration::from_millis(100);

/// The semaphore's 64-bit word and the futex calls on its low half: the shared word in a
/// mapping for the crate, a loom atomic with an emulated futex for the model checker.
pub(super) trait SemWord {
    fn load(&self, order: Ordering) -> u64;
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> std::result::Result<u64, u64>;
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    fn fetch_sub(&self, value: u64, order: Ordering) -> u64;
    /// Sleep while the low half holds `expected`, at most `timeout`.
    fn wait_low(&self, expected: u32, timeout: Option<Duration>);
    /// Wake up to `count` sleepers on the low half.
    fn wake_low(&self, count: i32);
}

impl SemWord for AtomicU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline]
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> std::result::Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, current, new, success, failure)
    }
    #[inline]
    fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_add(self, value, order)
    }
    #[inline]
    fn fetch_sub(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_sub(self, value, order)
    }
    fn wait_low(&self, expected: u32, timeout: Option<Duration>) {
        futex_wait_low(self, expected, timeout);
    }
    fn wake_low(&self, count: i32) {
        futex_wake_low(self, count);
    }
}

/// Take one unit if the value is above zero.
#[inline]
pub(super) fn try_take(word: &impl SemWord) -> bool {
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
pub(super) fn futex_sem_wait(word: &impl SemWord, deadline: Deadline) -> Result<()> {
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
        // In slices even without a deadline: a waiter killed after a post woke it leaves
        // the unit unclaimed and nobody woken for it; the next slice finds it.
        word.wait_low(0, Some(left.map_or(SLICE, |left| left.min(SLICE))));
    };
    // Wrapping: a peer may have zeroed the count meanwhile; that only costs wake-ups.
    word.fetch_sub(WAITER, Ordering::Relaxed);
    result
}

/// Add a unit; wake one sleeper if anyone waits. `EOVERFLOW` at [`SEM_VALUE_MAX`].
#[inline]
pub(super) fn futex_sem_post(word: &impl SemWord) -> std::result::Result<(), Errno> {
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
        word.wake_low(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whatever a peer writes into the word: no panic, no overflow into the other half,
    /// typed outcomes. Pure memory (Miri runs it), no sleep: every wait's deadline has passed.
    #[test]
    fn any_word_a_peer_writes_gives_typed_outcomes() {
        let passed = Deadline::after(Duration::ZERO);
        for start in [
            0,
            1,
            u64::from(u32::MAX),
            u64::from(SEM_VALUE_MAX),
            u64::from(SEM_VALUE_MAX) + 1,
            WAITER,
            u64::MAX,
            u64::MAX - u64::from(u32::MAX),
            0x1234_5678_9abc_def0,
        ] {
            let word = AtomicU64::new(start);
            let low = start as u32;
            match futex_sem_post(&word) {
                Ok(()) => assert_eq!(word.load(Ordering::Relaxed), start + 1, "{start:#x}"),
                Err(e) => {
                    assert_eq!(e, Errno::EOVERFLOW);
                    assert!(low >= SEM_VALUE_MAX, "{start:#x}");
                    assert_eq!(word.load(Ordering::Relaxed), start);
                }
            }
            let before = word.load(Ordering::Relaxed);
            let taken = try_take(&word);
            assert_eq!(taken, before as u32 != 0, "{start:#x}");
            let after = word.load(Ordering::Relaxed);
            assert_eq!(after >> 32, before >> 32, "the waiter half is untouched");
            // A wait whose deadline passed takes a unit that is there, else times out, and
            // leaves the waiter half as it found it.
            let r = futex_sem_wait(&word, passed);
            assert_eq!(r.is_ok(), after as u32 != 0, "{start:#x}");
            assert!(r.is_ok() || matches!(r, Err(Error::TimedOut)));
            assert_eq!(word.load(Ordering::Relaxed) >> 32, after >> 32);
        }
    }
}

#[cfg(all(test, ipcraft_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicU64 as LoomU64;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    /// The word with the kernel's futex emulated as in `futex_lock`'s model: check and
    /// sleep under the bucket's lock; timeouts ignored, so a lost wake-up is a deadlock.
    #[derive(Default)]
    struct Futex {
        word: LoomU64,
        bucket: Mutex<()>,
        sleepers: Condvar,
    }

    impl SemWord for Futex {
        fn load(&self, order: Ordering) -> u64 {
            self.word.load(order)
        }
        fn compare_exchange_weak(
            &self,
            current: u64,
            new: u64,
            success: Ordering,
            failure: Ordering,
        ) -> std::result::Result<u64, u64> {
            self.word
                .compare_exchange_weak(current, new, success, failure)
        }
        fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
            self.word.fetch_add(value, order)
        }
        fn fetch_sub(&self, value: u64, order: Ordering) -> u64 {
            self.word.fetch_sub(value, order)
        }
        fn wait_low(&self, expected: u32, _timeout: Option<Duration>) {
            let bucket = self.bucket.lock().unwrap();
            if self.word.load(Ordering::SeqCst) as u32 == expected {
                drop(self.sleepers.wait(bucket).unwrap());
            }
        }
        fn wake_low(&self, count: i32) {
            let _bucket = self.bucket.lock().unwrap();
            if count == 1 {
                self.sleepers.notify_one();
            } else {
                self.sleepers.notify_all();
            }
        }
    }

    /// Two waiters and two posts: both waits end (no post is slept through), and nothing
    /// is left over, waiters included.
    #[test]
    fn every_post_reaches_a_waiter() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let word = Arc::new(Futex::default());
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let word = word.clone();
                    thread::spawn(move || futex_sem_wait(&*word, Deadline::never()).is_ok())
                })
                .collect();
            futex_sem_post(&*word).unwrap();
            futex_sem_post(&*word).unwrap();
            for w in waiters {
                assert!(w.join().unwrap());
            }
            assert_eq!(
                word.load(Ordering::Relaxed),
                0,
                "value and waiter count back to 0"
            );
        });
    }
}
