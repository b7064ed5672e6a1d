//! The channel's shared-memory code paths on heap memory standing in for the mapping, so
//! that Miri checks them (it cannot map a memfd): the region's bounds-checked atomics and
//! copies, a sender's ring with the receiver's journal across the wrap, and the restart
//! protocol on the segment's words.

use super::*;
use crate::ring::slots::{SLOT_VACANT, claim_held, release, vacate_if_drained};

fn region(layout: Layout) -> Arc<SharedRegion> {
    Arc::new(SharedRegion::heap(layout.size().unwrap()))
}

#[test]
fn copies_and_atomics_stay_in_bounds() {
    let r = SharedRegion::heap(64);
    assert!(r.copy_in(60, &[1, 2, 3, 4]));
    assert!(!r.copy_in(61, &[1, 2, 3, 4]), "one byte past the end");
    assert!(
        !r.copy_in(usize::MAX - 1, &[1, 2, 3, 4]),
        "overflowing offset"
    );
    assert!(r.copy_in(64, &[]));
    let mut out = [0u8; 4];
    assert!(r.copy_out(60, &mut out));
    assert_eq!(out, [1, 2, 3, 4]);
    assert!(!r.copy_out(usize::MAX - 1, &mut out));
    assert!(r.u64(56).is_some());
    assert!(r.u64(57).is_none(), "misaligned");
    assert!(r.u64(64).is_none(), "past the end");
    assert!(r.u32(60).is_some());
    assert!(r.u32(62).is_none());
    // The copies and the atomics see the same bytes.
    assert_eq!(
        r.u32(60).unwrap().load(Ordering::Relaxed),
        u32::from_le_bytes([1, 2, 3, 4])
    );
}

/// Messages of every size up to the ring's largest, through a sender ring in the region,
/// copied in and out (`write_bytes`/`read_bytes` over `copy_in`/`copy_out`), released as
/// the receiver does: the journal always says how far the receiver consumed.
#[test]
fn a_sender_ring_carries_messages_across_the_wrap_and_the_journal_follows() {
    let layout = Layout::new(2, 64).unwrap();
    let region = region(layout);
    let mut tx = Producer::attach(layout.ring(&region, 1));
    let mut rx = Consumer::attach(layout.ring(&region, 1));
    let journal = layout.journal(1);
    let cases = if cfg!(miri) { 60 } else { 600 };
    for i in 0..cases {
        let msg: Vec<u8> = (0..i % 57).map(|b| (b * 7 + i) as u8).collect();
        if tx.try_send(&msg) == Err(RingError::Full) {
            // Only padding is queued: the receiver's next look passes it.
            assert_eq!(rx.poll(), Err(RingError::Empty));
            tx.try_send(&msg).unwrap();
        }
        let slot = rx.read().unwrap();
        let mut got = vec![0; slot.len()];
        assert_eq!(slot.read_at(0, &mut got), msg.len());
        assert_eq!(got, msg);
        release(
            slot,
            16,
            |ring: &SlotRing, pos| record_at(ring, journal, pos),
            |_| {},
        );
        assert_eq!(
            region.u64(journal).unwrap().load(Ordering::Relaxed),
            rx.position()
        );
        // An empty look publishes the rest (and passes padding).
        assert_eq!(rx.poll(), Err(RingError::Empty));
    }
    // The journal of the other ring, and the rings' neighbours, were never touched.
    assert_eq!(
        region
            .u64(layout.journal(0))
            .unwrap()
            .load(Ordering::Relaxed),
        0
    );
    assert_eq!(
        Consumer::attach(layout.ring(&region, 0)).poll(),
        Err(RingError::Empty)
    );
}

/// A sender slot's life on the segment's words: claimed, its sender gone with messages
/// left, vacated only once they are received, claimed again from the receiver's position;
/// and a receiver that resumes from the journal.
#[test]
fn the_restart_protocol_on_the_segment_words() {
    let layout = Layout::new(1, 64).unwrap();
    let region = region(layout);
    let slot = SlotCtl {
        region: &region,
        ctl: layout.slot(0),
    };
    let ring = layout.ring(&region, 0);
    assert!(claim_held(&slot, &ring));
    assert!(!claim_held(&slot, &ring), "claimed once");
    let mut tx = Producer::attach(layout.ring(&region, 0));
    tx.try_send(b"one").unwrap();
    tx.try_send(b"two").unwrap();
    set_flag(&region, slot.ctl + S_CLOSED, 1);
    let mut rx = Consumer::attach(layout.ring(&region, 0));
    assert!(
        !vacate_if_drained(&slot, &mut rx, || false),
        "messages left"
    );
    let journal = layout.journal(0);
    let one = rx.read().unwrap();
    release(one, 64, |r: &SlotRing, p| record_at(r, journal, p), |_| {});
    // A receiver that died here: the next resumes from the journal.
    let from = region.u64(journal).unwrap().load(Ordering::Relaxed);
    let mut rx = Consumer::resume(layout.ring(&region, 0), from);
    assert_eq!(rx.try_recv_vec().unwrap(), b"two");
    assert!(vacate_if_drained(&slot, &mut rx, || false));
    assert_eq!(state(&region, slot.ctl + S_CLAIMED), SLOT_VACANT);
    assert!(claim_held(&slot, &ring));
    assert!(
        !flag(&region, slot.ctl + S_CLOSED),
        "the old sender's flag is cleared"
    );
    let mut next = Producer::attach(layout.ring(&region, 0));
    next.try_send(b"three").unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"three");
}
