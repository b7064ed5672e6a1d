//! Loom models of the futex lock's protocol (`cargo xtask loom`).

use super::*;
use loom::sync::atomic::{AtomicBool, AtomicU32 as LoomU32};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A lock word with the kernel's futex emulated: a sleeper checks the word and goes to
/// sleep under one mutex (the futex hash bucket's lock), and a waker takes it to wake,
/// so a wake after the word changed always reaches a sleeper that saw the old value.
/// Timeouts are ignored: a lost wake-up leaves a thread asleep forever, a deadlock that
/// loom reports.
#[derive(Default)]
struct Futex {
    word: LoomU32,
    bucket: Mutex<()>,
    sleepers: Condvar,
}

impl LockWord for Futex {
    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.word.compare_exchange(current, new, success, failure)
    }
    fn wait(&self, expected: u32, _timeout: Duration) -> bool {
        let bucket = self.bucket.lock().unwrap();
        if self.word.load(Ordering::SeqCst) == expected {
            drop(self.sleepers.wait(bucket).unwrap());
        }
        false
    }
    fn wake(&self, count: i32) {
        let _bucket = self.bucket.lock().unwrap();
        if count == 1 {
            self.sleepers.notify_one();
        } else {
            self.sleepers.notify_all();
        }
    }
}

/// `threads` handles (slots 1..) each take the lock `rounds` times; inside, a flag shows
/// that nobody else is.
fn contend(threads: u32, rounds: u32) {
    let word = Arc::new(Futex::default());
    let inside = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (1..=threads)
        .map(|slot| {
            let (word, inside) = (word.clone(), inside.clone());
            thread::spawn(move || {
                for _ in 0..rounds {
                    let taken = lock(&*word, slot, Deadline::never(), |_| true);
                    assert_eq!(taken, Ok(Acquired::Clean));
                    assert!(!inside.swap(true, Ordering::Relaxed), "two holders");
                    inside.store(false, Ordering::Relaxed);
                    assert_eq!(unlock(&*word, slot, true), Ok(()));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(word.load(Ordering::Relaxed) & SLOT_MASK, 0, "left locked");
}

#[test]
fn two_handles_exclude_each_other_and_never_sleep_through_an_unlock() {
    loom::model(|| contend(2, 2));
}

/// Two sleepers and one wake per unlock: the woken one must pass the wake on.
#[test]
fn three_handles_pass_every_wake_up_on() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| contend(3, 1));
}

/// A recovery given up: the mutex becomes not recoverable and every sleeper hears it.
#[test]
fn not_recoverable_wakes_every_sleeper() {
    loom::model(|| {
        let word = Arc::new(Futex::default());
        assert_eq!(
            lock(&*word, 1, Deadline::never(), |_| true),
            Ok(Acquired::Clean)
        );
        let waiters: Vec<_> = (2..=3)
            .map(|slot| {
                let word = word.clone();
                thread::spawn(move || lock(&*word, slot, Deadline::never(), |_| true))
            })
            .collect();
        assert_eq!(unlock(&*word, 1, false), Ok(()));
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(NotTaken::NotRecoverable));
        }
    });
}
