//! The protocol of a channel of several rings (one per sender slot) and one receiver,
//! generic over where its words live: the receiver's round robin and deferred release,
//! and the slot states that let a restarted sender reuse a slot. The shared-memory channel
//! ([`crate::channel`]) runs these functions on its segment; the loom models run the same
//! functions on heap atomics.
//!
//! # Slot states
//!
//! A slot's state word goes [`SLOT_FREE`] -> [`SLOT_CLAIMED`] (a sender that holds the
//! slot's liveness lock) -> [`SLOT_VACANT`] (the receiver saw the sender closed or dead,
//! *then* found its ring empty, so nothing it committed is left) -> [`SLOT_CLAIMED`] (a new
//! sender, which carries on from the receiver's position). Only the receiver moves a slot
//! out of claimed, and only a sender that holds the lock moves one out of vacant, after
//! clearing the old sender's flags: so the receiver never vacates a slot whose sender
//! lives, and never reads a new sender's slot with the old one's flags.

use super::{Consumer, ReadSlot, RingError, RingMemory};

/// Slot state: never claimed.
pub const SLOT_FREE: u32 = 0;
/// Slot state: claimed by a sender (alive while it holds the slot's liveness lock).
pub const SLOT_CLAIMED: u32 = 1;
/// Slot state: free again; its sender closed or died and the receiver received all it
/// committed.
pub const SLOT_VACANT: u32 = 2;

/// A sender slot's control words, besides its ring.
pub trait SlotWords {
    /// The state word (acquire).
    fn state(&self) -> u32;
    /// Move the state word from `from` to `to` (acquire-release); whether this call did.
    fn swap_state(&self, from: u32, to: u32) -> bool;
    /// Whether the slot's sender said it closed.
    fn sender_closed(&self) -> bool;
    /// Clear what a previous sender left: its closed flag and its doorbell's sleeping flag.
    fn clear_sender_flags(&self);
}

/// A sender that holds the slot's liveness lock (so no other sender of the slot lives, and
/// no other claimant is here) claims it if it is free or vacant. A vacant slot is first
/// cleared of the old sender's flags and its ring's producer position is moved to the
/// consumer's: the receiver drained the ring and published its position, and the old
/// producer's may lag behind it or point past records it staged and never published.
pub fn claim_held<S: SlotWords, M: RingMemory>(slot: &S, ring: &M) -> bool {
    match slot.state() {
        SLOT_FREE => slot.swap_state(SLOT_FREE, SLOT_CLAIMED),
        SLOT_VACANT => {
            slot.clear_sender_flags();
            ring.store_position(true, ring.load_position(false));
            slot.swap_state(SLOT_VACANT, SLOT_CLAIMED)
        }
        _ => false,
    }
}

/// The receiver makes a claimed slot vacant if its sender is gone (closed, or `alive`
/// says no) and its ring is empty, looked at only after seeing the sender gone (a message
/// it committed before closing is found now, and it can commit nothing more). Returns
/// whether it did.
pub fn vacate_if_drained<S: SlotWords, M: RingMemory>(
    slot: &S,
    rx: &mut Consumer<M>,
    alive: impl FnOnce() -> bool,
) -> bool {
    if slot.state() != SLOT_CLAIMED || (!slot.sender_closed() && alive()) {
        return false;
    }
    if rx.poll() != Err(RingError::Empty) {
        return false;
    }
    // `poll` published the position on finding the ring empty; the new sender starts there.
    rx.flush();
    slot.swap_state(SLOT_CLAIMED, SLOT_VACANT)
}

/// The first ring, from `next` round robin, with a message ready (skipping `poisoned`
/// ones). A ring found empty publishes what was consumed of it, and `wake` is called for it
/// when that freed room (its sender may be waiting for exactly that).
///
/// # Errors
///
/// `(n, RingError::Empty)` when no ring has a message (`n` = the number of rings);
/// `(i, error)` when ring `i` is corrupted (the caller stops reading it).
#[inline]
pub fn ready<M: RingMemory>(
    rx: &mut [Consumer<M>],
    poisoned: &[bool],
    next: usize,
    wake: impl Fn(&M),
) -> Result<usize, (usize, RingError)> {
    let n = rx.len();
    let mut i = next;
    for _ in 0..n {
        if !poisoned.get(i).copied().unwrap_or(true) {
            let released = rx[i].released();
            match rx[i].poll() {
                Ok(()) => return Ok(i),
                Err(RingError::Empty) => {
                    if rx[i].released() != released {
                        wake(rx[i].memory());
                    }
                }
                Err(e) => return Err((i, e)),
            }
        }
        i = if i + 1 == n { 0 } else { i + 1 };
    }
    Err((n, RingError::Empty))
}

/// Done with a message, as the channel's receiver is: consume it, `record` the position
/// consumed to (the receiver's journal), and publish the room (and `wake` the sender) only
/// once `max` bytes are unpublished: a receive costs no store to a line the sender reads
/// unless the sender may need the room. Publishing the rest is left to the next empty
/// [`ready`] (or an explicit flush).
#[inline]
pub fn release<M: RingMemory>(
    slot: ReadSlot<'_, M>,
    max: u64,
    record: impl FnOnce(&M, u64),
    wake: impl FnOnce(&M),
) {
    let consumer = slot.consume();
    record(consumer.memory(), consumer.position());
    if consumer.unreleased() >= max {
        consumer.flush();
        wake(consumer.memory());
    }
}

#[cfg(all(test, ipcraft_loom))]
mod loom_tests;
