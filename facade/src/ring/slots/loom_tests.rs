//! Loom models of the channel protocol on heap atomics: the receiver's round robin and
//! deferred release over several rings with one doorbell, slot reuse after a sender dies,
//! a receiver taking over from its journal, and the close flags' wake-ups.
//!
//! The functions of [`super`] (and the ring, the doorbell protocol and
//! [`Consumer::resume`]) are the ones the channel runs; the waiting loops here follow the
//! channel's `wait_loop` (announce, look again, wake the peers, check the close flags, then
//! sleep) with sleeps that have no timeout, so a lost wake-up hangs the model and loom
//! reports it. A process's death is a thread that stops and lets go of its lock.

use super::*;
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::loom::thread;
use crate::ring::wake::loom_bell::Bell;
use crate::ring::wake::{Doorbell, announce, notify, notify_each, withdraw};
use crate::ring::{HeapRing, Producer};
use loom::sync::Arc;

/// One sender slot: its ring, its doorbell, its control words, its liveness lock.
#[derive(Default)]
struct Slot {
    ring: Option<HeapRing>,
    bell: Bell,
    state: AtomicU32,
    closed: AtomicU32,
    /// The liveness lock (the channel's lock byte): held while a sender lives.
    lock: AtomicU32,
}

impl Slot {
    fn new(capacity: usize) -> Self {
        Self {
            ring: HeapRing::new(capacity),
            ..Self::default()
        }
    }
    fn ring(&self) -> &HeapRing {
        self.ring.as_ref().unwrap()
    }
    fn try_lock(&self) -> bool {
        self.lock
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    fn alive(&self) -> bool {
        self.lock.load(Ordering::Acquire) != 0
    }
    /// Death: the kernel drops the lock; nothing else happens.
    fn die(&self) {
        self.lock.store(0, Ordering::Release);
    }
}

impl SlotWords for Slot {
    fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }
    fn swap_state(&self, from: u32, to: u32) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    fn sender_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) != 0
    }
    fn clear_sender_flags(&self) {
        self.closed.store(0, Ordering::SeqCst);
        self.bell.set_sleeping(false);
    }
}

impl RingMemory for Slot {
    fn capacity(&self) -> usize {
        self.ring().capacity()
    }
    fn load_position(&self, producer: bool) -> u64 {
        self.ring().load_position(producer)
    }
    fn store_position(&self, producer: bool, value: u64) {
        self.ring().store_position(producer, value);
    }
    fn write_word(&self, offset: usize, value: u64) {
        self.ring().write_word(offset, value);
    }
    fn read_word(&self, offset: usize) -> u64 {
        self.ring().read_word(offset)
    }
    fn commit_word(&self, offset: usize, value: u64) {
        self.ring().commit_word(offset, value);
    }
    fn poll_word(&self, offset: usize) -> u64 {
        self.ring().poll_word(offset)
    }
}

/// Send `msg` as the channel's sender does: on a full ring, wake the receiver (padding
/// may need passing), announce, try again, wake the receiver, check the close flag, sleep.
/// `false` when the receiver closed.
fn send(
    tx: &mut Producer<&Slot>,
    receiver: &Bell,
    receiver_closed: &AtomicU32,
    msg: &[u8],
) -> bool {
    let own = &tx.memory().bell;
    loop {
        if receiver_closed.load(Ordering::Acquire) != 0 {
            return false;
        }
        match tx.try_send(msg) {
            Ok(()) => {
                notify(receiver);
                return true;
            }
            Err(RingError::Full) => {}
            Err(e) => panic!("{e}"),
        }
        notify(receiver);
        let seen = announce(own);
        match tx.try_send(msg) {
            Ok(()) => {
                withdraw(own);
                notify(receiver);
                return true;
            }
            Err(RingError::Full) => {}
            Err(e) => panic!("{e}"),
        }
        notify(receiver);
        if receiver_closed.load(Ordering::Acquire) != 0 {
            withdraw(own);
            continue;
        }
        own.wait(seen, None);
        withdraw(own);
    }
}

/// Receive as the channel's receiver does (round robin, deferred release of `max` bytes,
/// sleeping on `bell` when every ring is empty) until `want` messages arrived or every
/// sender closed; returns `(sender, first byte)` of each message.
fn receive(slots: &[&Slot], bell: &Bell, max: u64, want: usize) -> Vec<(usize, u8)> {
    let mut rx: Vec<Consumer<&Slot>> = slots.iter().map(|s| Consumer::attach(*s)).collect();
    let poisoned = vec![false; slots.len()];
    let wake = |s: &&Slot| notify(&s.bell);
    let mut next = 0;
    let mut got = Vec::new();
    while got.len() < want {
        let i = match ready(&mut rx, &poisoned, next, wake) {
            Ok(i) => i,
            Err((_, RingError::Empty)) => {
                let gone = || slots.iter().all(|s| s.sender_closed());
                if gone() {
                    // Drain what was committed before the close, then stop.
                    if ready(&mut rx, &poisoned, next, wake).is_err() {
                        return got;
                    }
                    continue;
                }
                let seen = announce(bell);
                if ready(&mut rx, &poisoned, next, wake).is_ok() {
                    withdraw(bell);
                    continue;
                }
                notify_each(slots.iter().map(|s| &s.bell));
                if gone() {
                    withdraw(bell);
                    continue;
                }
                bell.wait(seen, None);
                withdraw(bell);
                continue;
            }
            Err((_, e)) => panic!("{e}"),
        };
        let n = rx.len();
        let slot = rx[i].read().unwrap();
        let mut first = [0u8];
        slot.read_at(0, &mut first);
        got.push((i, first[0]));
        next = (i + 1) % n;
        release(slot, max, |_, _| {}, |s: &&Slot| notify(&s.bell));
    }
    got
}

/// The next message, yielding while there is none.
fn wait_read<'a, 's>(rx: &'a mut Consumer<&'s Slot>) -> ReadSlot<'a, &'s Slot> {
    loop {
        match rx.poll() {
            Ok(()) => return rx.read().unwrap(),
            Err(RingError::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two senders, one doorbell, round robin; the receiver publishes room only when a ring is
/// found empty (the deferred release at its extreme), so a sender waiting for room is
/// woken only from there. Every message arrives, in order per sender.
#[test]
fn mpsc_round_robin_with_deferred_release_loses_no_wakeup() {
    loom::model(|| {
        let slots = Arc::new([Slot::new(16), Slot::new(16)]);
        let bell = Arc::new(Bell::default());
        let closed = Arc::new(AtomicU32::new(0));
        let senders: Vec<_> = [(0usize, &[1u8, 2][..]), (1, &[9][..])]
            .into_iter()
            .map(|(i, msgs)| {
                let (slots, bell, closed) = (slots.clone(), bell.clone(), closed.clone());
                thread::spawn(move || {
                    let mut tx = Producer::attach(&slots[i]);
                    for &m in msgs {
                        assert!(send(&mut tx, &bell, &closed, &[m; 8]));
                    }
                })
            })
            .collect();
        let got = receive(&[&slots[0], &slots[1]], &bell, u64::MAX, 3);
        for s in senders {
            s.join().unwrap();
        }
        let of = |i: usize| -> Vec<u8> { got.iter().filter(|g| g.0 == i).map(|g| g.1).collect() };
        assert_eq!(of(0), [1, 2]);
        assert_eq!(of(1), [9]);
    });
}

/// A sender dies after committing one message (before storing its position) and staging
/// another, while a new sender
/// tries (once, at any moment) to claim its slot: it gets it only once the receiver has
/// received the committed message, and carries on from there; the receiver gets the dead
/// sender's message, then the new one's, and never the staged one.
#[test]
fn a_dead_senders_slot_is_reused_only_after_the_drain() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(64));
        let drained = Arc::new(AtomicU32::new(0));
        assert!(slot.try_lock() && claim_held(&*slot, &*slot));
        let old = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut tx = Producer::attach(&*slot);
                tx.try_send(&[1; 8]).unwrap();
                tx.reserve(8).unwrap().stage();
                // Killed between storing the commit word and its position: the position
                // it leaves lags behind what it committed.
                slot.ring().scribble_position(true, 0);
                slot.die();
            })
        };
        let new = {
            let (slot, drained) = (slot.clone(), drained.clone());
            thread::spawn(move || {
                if !slot.try_lock() {
                    return false;
                }
                if !claim_held(&*slot, &*slot) {
                    slot.die();
                    return false;
                }
                assert_eq!(
                    drained.load(Ordering::Acquire),
                    1,
                    "claimed before the drain"
                );
                Producer::attach(&*slot).try_send(&[2; 8]).unwrap();
                true
            })
        };
        let mut rx = Consumer::attach(&*slot);
        // A look at any moment: the old sender may be dead, its message not yet received.
        vacate_if_drained(&*slot, &mut rx, || slot.alive());
        let first = wait_read(&mut rx);
        assert_eq!(first.to_vec(), [1; 8]);
        first.release();
        drained.store(1, Ordering::Release);
        // Vacate once the old sender is dead (or the new one has the slot already).
        while slot.state() == SLOT_CLAIMED && !vacate_if_drained(&*slot, &mut rx, || slot.alive()) {
            thread::yield_now();
        }
        old.join().unwrap();
        if !new.join().unwrap() {
            assert!(slot.try_lock() && claim_held(&*slot, &*slot));
            Producer::attach(&*slot).try_send(&[2; 8]).unwrap();
        }
        assert_eq!(rx.try_recv_vec().unwrap(), [2; 8]);
        assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    });
}

/// A receiver dies having released one message (room not published: deferred) and
/// consumed another, while the sender goes on; the next receiver resumes from the journal
/// and gets exactly the rest.
#[test]
fn a_new_receiver_resumes_from_the_journal() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(64));
        let journal = Arc::new(AtomicU64::new(0));
        let sender = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut tx = Producer::attach(&*slot);
                for m in 1..=3u8 {
                    tx.try_send(&[m; 8]).unwrap();
                }
            })
        };
        let record = |_: &&Slot, pos: u64| journal.store(pos, Ordering::Relaxed);
        {
            let mut dying = Consumer::attach(&*slot);
            let first = wait_read(&mut dying);
            release(first, 64, record, |_| {});
            let second = wait_read(&mut dying);
            let c = second.consume();
            journal.store(c.position(), Ordering::Relaxed);
            // Reading the third when it dies: not released.
            let _ = dying.read();
        }
        let mut next = Consumer::resume(&*slot, journal.load(Ordering::Relaxed));
        let third = loop {
            match next.try_recv_vec() {
                Ok(m) => break m,
                Err(RingError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        sender.join().unwrap();
        assert_eq!(third, [3; 8]);
        assert_eq!(next.try_recv_vec(), Err(RingError::Empty));
    });
}

/// A sender asleep on a full ring when the receiver closes (its drop: the closed flag,
/// then a bump of every sender's doorbell) returns instead of sleeping forever.
#[test]
fn a_receiver_closing_wakes_a_sender_waiting_for_room() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(16));
        let bell = Arc::new(Bell::default());
        let closed = Arc::new(AtomicU32::new(0));
        let sender = {
            let (slot, bell, closed) = (slot.clone(), bell.clone(), closed.clone());
            thread::spawn(move || {
                let mut tx = Producer::attach(&*slot);
                tx.try_send(&[1; 8]).unwrap();
                // The ring is full: this one waits until the receiver closes.
                assert!(!send(&mut tx, &bell, &closed, &[2; 8]));
            })
        };
        closed.store(1, Ordering::SeqCst);
        slot.bell.ring();
        sender.join().unwrap();
    });
}

/// The receiver asleep on an empty channel when its sender closes (flush, the closed flag,
/// then a bump of the receiver's doorbell) receives what was committed, then stops.
#[test]
fn a_sender_closing_wakes_the_receiver() {
    loom::model(|| {
        let slot = Arc::new(Slot::new(32));
        let bell = Arc::new(Bell::default());
        let sender = {
            let (slot, bell) = (slot.clone(), bell.clone());
            thread::spawn(move || {
                let mut tx = Producer::attach(&*slot);
                tx.reserve(8).unwrap().stage();
                tx.flush();
                slot.closed.store(1, Ordering::SeqCst);
                bell.ring();
            })
        };
        let got = receive(&[&slot], &bell, 32, 2);
        sender.join().unwrap();
        assert_eq!(got.len(), 1);
    });
}
