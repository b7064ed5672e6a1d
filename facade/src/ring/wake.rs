//! The sleep/wake-up protocol between the two sides of a ring: a sleeping flag and a futex
//! sequence word per side (a "doorbell"), so that the fast path makes no system call.
//!
//! A side about to sleep [`announce`]s it (reads the doorbell's sequence, sets its flag, then
//! a sequentially consistent fence), checks the ring once more, and only then sleeps until
//! the sequence changes. The other side, after publishing, [`notify`]s: a sequentially
//! consistent fence, then, only if the flag is set, bumps the sequence and wakes. The two
//! fences order "flag set, then ring checked" against "ring published, then flag checked",
//! so either the sleeper sees the publication or the publisher sees the flag: no lost
//! wake-up. Checked by loom (see the tests) with a wait that has no timeout, so a lost
//! wake-up would hang the model.

use crate::loom::atomic::{Ordering, fence};
use std::time::Duration;

/// One side's doorbell: its sleeping flag and the sequence word it sleeps on.
pub trait Doorbell {
    /// The sequence word's value (acquire).
    fn load_seq(&self) -> u32;
    /// Set or clear the sleeping flag.
    fn set_sleeping(&self, on: bool);
    /// Whether the flag is set.
    fn is_sleeping(&self) -> bool;
    /// Bump the sequence word and wake its sleepers.
    fn ring(&self);
    /// Sleep while the sequence word is `seen`, at most `timeout` (`None`: no limit but
    /// the implementation's own; spurious returns are fine).
    fn wait(&self, seen: u32, timeout: Option<Duration>);
}

impl<D: Doorbell + ?Sized> Doorbell for &D {
    fn load_seq(&self) -> u32 {
        (**self).load_seq()
    }
    fn set_sleeping(&self, on: bool) {
        (**self).set_sleeping(on);
    }
    fn is_sleeping(&self) -> bool {
        (**self).is_sleeping()
    }
    fn ring(&self) {
        (**self).ring();
    }
    fn wait(&self, seen: u32, timeout: Option<Duration>) {
        (**self).wait(seen, timeout);
    }
}

/// After publishing (or releasing) on the ring: wake the other side if it announced sleep.
pub fn notify<D: Doorbell + ?Sized>(other: &D) {
    fence(Ordering::SeqCst);
    if other.is_sleeping() {
        other.ring();
    }
}

/// [`notify`] for several sleepers (an MPSC receiver's senders): one fence for them all.
pub fn notify_each<D: Doorbell>(others: impl IntoIterator<Item = D>) {
    fence(Ordering::SeqCst);
    for other in others {
        if other.is_sleeping() {
            other.ring();
        }
    }
}

/// Announce that this side is about to sleep; returns the sequence to sleep on. Check the
/// ring once more after this, then [`wait`](Doorbell::wait) or [`withdraw`].
pub fn announce<D: Doorbell + ?Sized>(own: &D) -> u32 {
    let seen = own.load_seq();
    own.set_sleeping(true);
    fence(Ordering::SeqCst);
    seen
}

/// Clear this side's announcement.
pub fn withdraw<D: Doorbell + ?Sized>(own: &D) {
    own.set_sleeping(false);
}

/// A doorbell on heap atomics for the loom models.
#[cfg(all(test, ipcraft_loom))]
pub(crate) mod loom_bell {
    use super::*;
    use crate::loom::atomic::AtomicU32;
    use crate::loom::thread;

    /// A sequence word and a sleeping flag.
    #[derive(Default)]
    pub(crate) struct Bell {
        seq: AtomicU32,
        sleeping: AtomicU32,
    }

    impl Doorbell for Bell {
        fn load_seq(&self) -> u32 {
            self.seq.load(Ordering::Acquire)
        }
        fn set_sleeping(&self, on: bool) {
            self.sleeping.store(u32::from(on), Ordering::Relaxed);
        }
        fn is_sleeping(&self) -> bool {
            self.sleeping.load(Ordering::Relaxed) != 0
        }
        fn ring(&self) {
            self.seq.fetch_add(1, Ordering::Release);
        }
        /// No timeout: a lost wake-up would spin here forever, and loom would report it.
        fn wait(&self, seen: u32, _timeout: Option<Duration>) {
            while self.seq.load(Ordering::Acquire) == seen {
                thread::yield_now();
            }
        }
    }
}

#[cfg(all(test, ipcraft_loom))]
mod loom_tests {
    use super::loom_bell::Bell;
    use super::*;
    use crate::loom::thread;
    use crate::ring::{Consumer, HeapRing, Producer, RingError};
    use loom::sync::Arc;

    struct Shared {
        ring: HeapRing,
        producer_bell: Bell,
        consumer_bell: Bell,
    }

    /// The consumer sleeps whenever the ring is empty (no spinning), the producer whenever
    /// it is full: every message must still arrive, in order.
    #[test]
    fn no_lost_wakeup() {
        sleepers(16, &[b"one", b"two"]);
    }

    /// The second message does not fit before the end of the lap: the producer publishes
    /// padding and sleeps until the consumer has passed it, which the consumer learns only
    /// from an empty read (that released the padding); it must wake the producer then.
    #[test]
    fn no_lost_wakeup_when_only_padding_frees_room() {
        sleepers(32, &[b"abcdefgh", b"0123456789abcdefghijklmn"]);
    }

    fn sleepers(capacity: usize, msgs: &'static [&'static [u8]]) {
        loom::model(move || {
            let s = Arc::new(Shared {
                ring: HeapRing::new(capacity).unwrap(),
                producer_bell: Bell::default(),
                consumer_bell: Bell::default(),
            });
            let p = s.clone();
            let producer = thread::spawn(move || {
                let mut tx = Producer::attach(&p.ring);
                for &msg in msgs {
                    loop {
                        match tx.try_send(msg) {
                            Ok(()) => {
                                notify(&p.consumer_bell);
                                break;
                            }
                            Err(RingError::Full) => {
                                // Padding may have just been published: the consumer must
                                // pass it (as the channel's sender does, it wakes it).
                                notify(&p.consumer_bell);
                                let seen = announce(&p.producer_bell);
                                match tx.try_send(msg) {
                                    Ok(()) => {
                                        withdraw(&p.producer_bell);
                                        notify(&p.consumer_bell);
                                        break;
                                    }
                                    Err(RingError::Full) => {
                                        p.producer_bell.wait(seen, None);
                                        withdraw(&p.producer_bell);
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
            let mut rx = Consumer::attach(&s.ring);
            for &want in msgs {
                let got = loop {
                    let released = rx.released();
                    match rx.try_recv_vec() {
                        Ok(v) => {
                            notify(&s.producer_bell);
                            break v;
                        }
                        Err(RingError::Empty) => {
                            // An empty read that released padding frees room: say so (as
                            // the channel's receiver does).
                            if rx.released() != released {
                                notify(&s.producer_bell);
                            }
                            let seen = announce(&s.consumer_bell);
                            let released = rx.released();
                            match rx.try_recv_vec() {
                                Ok(v) => {
                                    withdraw(&s.consumer_bell);
                                    notify(&s.producer_bell);
                                    break v;
                                }
                                Err(RingError::Empty) => {
                                    if rx.released() != released {
                                        notify(&s.producer_bell);
                                    }
                                    s.consumer_bell.wait(seen, None);
                                    withdraw(&s.consumer_bell);
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                assert_eq!(got, want);
            }
            producer.join().unwrap();
        });
    }
}
