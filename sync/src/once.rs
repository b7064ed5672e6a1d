//! Exactly-once initialization of an object placed in shared memory by whichever process
//! gets there first: a state word goes fresh -> initializing -> ready.
//!
//! The initializer claims the word (compare-exchange fresh -> initializing), initializes,
//! and publishes (store ready, release); everyone else waits until they see ready (acquire),
//! which makes the initializer's writes visible to them. An initializer whose `init` fails
//! puts the word back to fresh, so another may claim it. One killed mid-way leaves the word
//! initializing: waiters give up at their deadline (the caller turns that into a typed
//! error) instead of waiting forever.
//!
//! Checked by loom (`cargo xtask loom`) on heap atomics; see the tests below.

#![allow(clippy::disallowed_types)] // Implemented for std's atomics, which live in shared memory.

pub(crate) const FRESH: u32 = 0;
pub(crate) const INITIALIZING: u32 = 1;
pub(crate) const READY: u32 = 2;

/// A 32-bit atomic state word, wherever it lives.
pub(crate) trait StateWord {
    /// Compare-exchange `current` -> `new` (acquire-release); `Err` holds the value found.
    fn cas(&self, current: u32, new: u32) -> Result<u32, u32>;
    /// Load with acquire ordering.
    fn load_acquire(&self) -> u32;
    /// Store with release ordering.
    fn store_release(&self, value: u32);
}

macro_rules! state_word {
    ($t:ty, $ord:path) => {
        impl StateWord for $t {
            fn cas(&self, current: u32, new: u32) -> Result<u32, u32> {
                use $ord as O;
                self.compare_exchange(current, new, O::AcqRel, O::Acquire)
            }
            fn load_acquire(&self) -> u32 {
                use $ord as O;
                self.load(O::Acquire)
            }
            fn store_release(&self, value: u32) {
                use $ord as O;
                self.store(value, O::Release)
            }
        }
    };
}
state_word!(std::sync::atomic::AtomicU32, std::sync::atomic::Ordering);
#[cfg(all(test, ipcraft_loom))]
state_word!(loom::sync::atomic::AtomicU32, loom::sync::atomic::Ordering);

/// How [`init_once`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This call initialized the object.
    Initialized,
    /// Another did; it is ready.
    Attached,
}

/// Why [`init_once`] failed.
#[derive(Debug)]
pub(crate) enum OnceError<E> {
    /// Our `init` failed (the word is fresh again).
    Init(E),
    /// `wait` gave up while another was initializing.
    NotReady,
    /// The word holds something that is not a state.
    Foreign(u32),
}

/// Initialize through `state` exactly once: run `init` if this call claims the word, else
/// wait (calling `wait`, which returns `false` to give up) until it is ready.
pub(crate) fn init_once<W: StateWord, E>(
    state: &W,
    mut init: impl FnMut() -> Result<(), E>,
    mut wait: impl FnMut() -> bool,
) -> Result<Outcome, OnceError<E>> {
    loop {
        match state.cas(FRESH, INITIALIZING) {
            Ok(_) => {
                return match init() {
                    Ok(()) => {
                        state.store_release(READY);
                        Ok(Outcome::Initialized)
                    }
                    Err(e) => {
                        state.store_release(FRESH);
                        Err(OnceError::Init(e))
                    }
                };
            }
            Err(READY) => return Ok(Outcome::Attached),
            Err(INITIALIZING) => {
                if !wait() {
                    return Err(OnceError::NotReady);
                }
            }
            Err(other) => return Err(OnceError::Foreign(other)),
        }
    }
}

/// Wait until `state` is ready, without ever initializing (for openers of an object that
/// must already exist).
pub(crate) fn wait_ready<W: StateWord>(
    state: &W,
    mut wait: impl FnMut() -> bool,
) -> Result<(), OnceError<()>> {
    loop {
        match state.load_acquire() {
            READY => return Ok(()),
            FRESH | INITIALIZING => {
                if !wait() {
                    return Err(OnceError::NotReady);
                }
            }
            other => return Err(OnceError::Foreign(other)),
        }
    }
}

/// The protocol on plain heap atomics, one step at a time and with real threads: pure
/// memory, so Miri runs it (`cargo xtask miri`) and checks its orderings for data races.
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn every_word_a_peer_may_write_gives_a_typed_outcome() {
        for word in [FRESH, INITIALIZING, READY, 3, 0x8000_0000, u32::MAX] {
            let state = AtomicU32::new(word);
            let mut inits = 0;
            let r = init_once(
                &state,
                || -> Result<(), ()> {
                    inits += 1;
                    Ok(())
                },
                || false, // never wait
            );
            match (word, r) {
                (FRESH, Ok(Outcome::Initialized)) => assert_eq!(inits, 1),
                (READY, Ok(Outcome::Attached)) | (INITIALIZING, Err(OnceError::NotReady)) => {
                    assert_eq!(inits, 0)
                }
                (w, Err(OnceError::Foreign(found))) if w > READY => assert_eq!(found, w),
                (w, r) => panic!("word {w:#x}: {r:?}"),
            }
            let waited = wait_ready(&state, || false);
            match (state.load(Ordering::Relaxed), waited) {
                (READY, Ok(())) | (FRESH | INITIALIZING, Err(OnceError::NotReady)) => {}
                (w, Err(OnceError::Foreign(found))) if w > READY => assert_eq!(found, w),
                (w, r) => panic!("word {w:#x}: {r:?}"),
            }
        }
    }

    #[test]
    fn a_failed_init_puts_the_word_back_and_a_waiter_can_take_over() {
        let state = AtomicU32::new(FRESH);
        let r = init_once(&state, || Err("no"), || true);
        assert!(matches!(r, Err(OnceError::Init("no"))));
        assert_eq!(state.load(Ordering::Relaxed), FRESH);
        // A waiter that sees the word go back to fresh claims it.
        state.store(INITIALIZING, Ordering::Relaxed);
        let mut waits = 0;
        let r = init_once(
            &state,
            || Ok::<(), ()>(()),
            || {
                waits += 1;
                state.store(FRESH, Ordering::Release); // the initializer gave up
                true
            },
        );
        assert!(matches!(r, Ok(Outcome::Initialized)), "{r:?}");
        assert_eq!((waits, state.load(Ordering::Relaxed)), (1, READY));
    }

    #[test]
    fn threads_racing_initialize_once_and_see_the_writes() {
        let state = AtomicU32::new(FRESH);
        let data = AtomicU32::new(0);
        let outcomes: Vec<Outcome> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let r = init_once(
                            &state,
                            || {
                                data.store(42, Ordering::Relaxed);
                                Ok::<(), ()>(())
                            },
                            || {
                                std::thread::yield_now();
                                true
                            },
                        );
                        // Relaxed on purpose: only the protocol's acquire makes 42 visible.
                        assert_eq!(data.load(Ordering::Relaxed), 42);
                        r.unwrap()
                    })
                })
                .collect();
            racers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let inits = outcomes
            .iter()
            .filter(|o| **o == Outcome::Initialized)
            .count();
        assert_eq!(inits, 1, "{outcomes:?}");
        assert!(wait_ready(&state, || false).is_ok());
    }
}

#[cfg(all(test, ipcraft_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::atomic::{AtomicU32, Ordering};
    use crate::loom::thread;
    use loom::sync::Arc;

    /// The state word and the "object" it guards. The object is a relaxed atomic: if the
    /// ready state were published without release/acquire, loom would find an execution in
    /// which an attacher sees ready but reads 0.
    struct Placed {
        state: AtomicU32,
        data: AtomicU32,
    }

    fn race(fail_first: bool) {
        let p = Arc::new(Placed {
            state: AtomicU32::new(FRESH),
            data: AtomicU32::new(0),
        });
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let p = p.clone();
                thread::spawn(move || {
                    let mut tries = 0;
                    let r = init_once(
                        &p.state,
                        || {
                            tries += 1;
                            if fail_first && i == 0 && tries == 1 {
                                return Err(());
                            }
                            p.data.store(42, Ordering::Relaxed);
                            Ok(())
                        },
                        || {
                            thread::yield_now();
                            true
                        },
                    );
                    match r {
                        Ok(outcome) => {
                            assert_eq!(p.data.load(Ordering::Relaxed), 42, "{outcome:?}");
                            Some(outcome)
                        }
                        Err(OnceError::Init(())) => None,
                        Err(e) => panic!("{e:?}"),
                    }
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let inits = outcomes
            .iter()
            .filter(|o| **o == Some(Outcome::Initialized))
            .count();
        assert_eq!(inits, 1, "exactly one initializer: {outcomes:?}");
    }

    #[test]
    fn exactly_one_initializes_and_everyone_sees_its_writes() {
        loom::model(|| race(false));
    }

    #[test]
    fn a_failed_init_lets_another_initialize() {
        loom::model(|| race(true));
    }
}
