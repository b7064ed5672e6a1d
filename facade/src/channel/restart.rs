//! Restarting an end: a receiver that takes over from one that closed or died, and sender
//! slots that a new sender claims once the receiver drained what the old one sent.
//!
//! Who may take a role is decided by the role's lock byte (an open-file-description lock
//! the kernel drops when its holder dies): whoever holds it is the only live holder of the
//! role, so taking over never races with a live end. What the new end carries on from is
//! in the segment:
//!
//! - **Receiver**: every ring's journal word ([`Layout::journal`]), the position up to which
//!   the previous receiver consumed that ring. It is stored at every release, on a line
//!   no sender reads, so it costs one store and no cache traffic; the published consumer
//!   position (deferred to a quarter of the ring, see [`RecvSlot::release`]) lags behind
//!   it. The new receiver carries on from the journal: a message released is never
//!   received again, one committed and not released (being read when the receiver died,
//!   or not reached) is received exactly once.
//! - **Sender slot**: its state word goes free -> claimed -> vacant -> claimed, by the
//!   protocol in [`crate::ring::slots`] (which loom checks): the receiver vacates a slot
//!   only after seeing its sender closed or dead *and then* its ring empty, and a new
//!   sender holding the slot's lock byte claims it and carries on from the receiver's
//!   position.
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use super::*;
use crate::ring::slots::{claim_held, vacate_if_drained};

/// A busy MPSC receiver (one that never finds the channel empty, so never waits) looks
/// for slots to free every this many messages.
pub(super) const RECLAIM_EVERY: u32 = 4096;

/// Become the channel's receiver: the first one, or the successor of one that closed or
/// died.
pub(super) fn receiver((region, layout): Made) -> Result<Receiver, ChannelError> {
    let lock = own_description(region.segment())?;
    // Holding the lock byte, we are the only live receiver: any other closed or died.
    if !lock_byte(&lock, RECEIVER_LOCK)? {
        return Err(ChannelError::ReceiverTaken);
    }
    let took_over = !claim(&region, RECEIVER_TAKEN);
    if took_over {
        // The previous receiver's flags: its close (senders may send again) and its
        // doorbell (left announced, every commit would ring it).
        set_flag(&region, RECEIVER_CLOSED, 0);
        set_flag(&region, CONSUMER_SLEEPING, 0);
    }
    publish_cpu(&region, RECEIVER_CPU);
    let journal = layout.journal(0);
    let rx: Vec<_> = (0..layout.producers)
        .map(|i| {
            let from = region
                .u64(layout.journal(i))
                .map_or(0, |w| w.load(Ordering::Relaxed));
            Consumer::resume(layout.ring(&region, i), from)
        })
        .collect();
    let poisoned = rx
        .iter()
        .map(|c| flag(&region, c.memory().ctl + S_POISONED))
        .collect();
    let mut receiver = Receiver {
        rx,
        poisoned,
        next: 0,
        region,
        lock,
        wait: Wait::default(),
        claim_deadline: Deadline::never(),
        received: 0,
        took_over,
        journal,
    };
    if took_over {
        // Free the room of what the previous receiver consumed, for senders waiting on it.
        receiver.flush();
    }
    Ok(receiver)
}

/// Store how far `consumer` has consumed its ring in its journal word, at `journal`.
#[inline]
pub(super) fn record(consumer: &Consumer<SlotRing>, journal: usize) {
    record_at(consumer.memory(), journal, consumer.position());
}

/// Store `position` in the journal word at `journal`.
#[inline]
pub(super) fn record_at(ring: &SlotRing, journal: usize, position: u64) {
    if let Some(w) = ring.region.u64(journal) {
        w.store(position, Ordering::Relaxed);
    }
}

impl Receiver {
    /// Offset of ring `i`'s journal word.
    #[inline]
    pub(super) fn journal(&self, i: usize) -> usize {
        self.journal + i * 8
    }

    /// Make vacant every slot whose sender closed (or, with `probe`, died: one system
    /// call per claimed slot) and whose ring is empty, for a new sender to claim.
    pub(super) fn reclaim(&mut self, probe: bool) {
        for i in 0..self.rx.len() {
            if self.poisoned[i] {
                continue;
            }
            let ctl = self.rx[i].memory().ctl;
            let slot = SlotCtl {
                region: &self.region,
                ctl,
            };
            let lock = &self.lock;
            let alive = || !probe || peer_alive(lock, slot_lock(i));
            if vacate_if_drained(&slot, &mut self.rx[i], alive) {
                bump(&self.region, ctl + S_SPACE_SEQ);
            }
        }
    }

    /// Whether sender slot `i` can send nothing more: poisoned, vacant, claimed by a
    /// sender that closed (or, with `probe`, died), or never claimed and past the claim
    /// deadline.
    pub(super) fn slot_gone(&self, i: usize, probe: bool) -> bool {
        if self.poisoned[i] {
            return true;
        }
        let r = &*self.region;
        let ctl = self.rx[i].memory().ctl;
        match state(r, ctl + S_CLAIMED) {
            SLOT_CLAIMED => {
                flag(r, ctl + S_CLOSED) || (probe && !peer_alive(&self.lock, slot_lock(i)))
            }
            SLOT_FREE => !self.claim_deadline.is_never() && self.claim_deadline.has_passed(),
            // Vacant, or a word no sender writes (a hostile one): nobody sends there.
            _ => true,
        }
    }
}

/// Claim a sender slot: a free one, or a vacant one (whose previous sender's ring the
/// receiver drained). Returns the slot, its lock byte held; `None` when every slot is
/// taken by a live sender or still being drained.
pub(super) fn claim_slot(
    region: &Arc<SharedRegion>,
    layout: Layout,
    lock: &OwnedFd,
) -> Result<Option<usize>, ChannelError> {
    for i in 0..layout.producers {
        let slot = SlotCtl {
            region,
            ctl: layout.slot(i),
        };
        // Skip without a system call what cannot be ours: a claimed slot (its sender
        // lives, or the receiver has not drained it yet), a poisoned ring.
        if slot.state() == SLOT_CLAIMED || flag(region, slot.ctl + S_POISONED) {
            continue;
        }
        if !lock_byte(lock, slot_lock(i))? {
            continue;
        }
        // We hold the lock byte: no other sender of this slot lives, and no other
        // claimant can be here.
        if claim_held(&slot, &layout.ring(region, i)) {
            return Ok(Some(i));
        }
        unlock_byte(lock, slot_lock(i));
    }
    Ok(None)
}
