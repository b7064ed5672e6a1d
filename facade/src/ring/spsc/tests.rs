//! The ring's unit and property tests (heap memory).

use super::super::{HeapRing, commit_word, record_size};
use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

#[test]
fn messages_round_trip_across_the_wrap() {
    let mem = HeapRing::new(64).unwrap();
    let (mut tx, mut rx) = split(&mem);
    let mut buf = [0u8; 64];
    for i in 0..50u8 {
        let msg = vec![i; (i as usize * 7) % 40];
        if tx.try_send(&msg) == Err(RingError::Full) {
            // Only padding is queued: the consumer's next receive releases it.
            assert_eq!(rx.try_recv_into(&mut buf), Err(RingError::Empty));
            tx.try_send(&msg).unwrap();
        }
        let n = rx.try_recv_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], &msg[..]);
    }
    assert_eq!(rx.try_recv_into(&mut buf), Err(RingError::Empty));
}

#[test]
fn full_and_empty_edges_and_limits() {
    let mem = HeapRing::new(32).unwrap();
    let (mut tx, mut rx) = split(&mem);
    assert_eq!(max_message_len(32), 24);
    assert_eq!(
        tx.try_send(&[0; 25]),
        Err(RingError::TooLarge { len: 25, max: 24 })
    );
    tx.try_send(&[1; 24]).unwrap(); // fills the ring
    assert_eq!(tx.try_send(&[]), Err(RingError::Full));
    let mut small = [0u8; 4];
    assert_eq!(
        rx.try_recv_into(&mut small),
        Err(RingError::BufferTooSmall { needed: 24 })
    );
    assert_eq!(rx.try_recv_vec().unwrap(), vec![1; 24]);
    assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    tx.try_send(&[]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), Vec::<u8>::new());
}

#[test]
fn a_batch_is_published_with_one_store() {
    let mem = HeapRing::new(64).unwrap();
    let (mut tx, mut rx) = split(&mem);
    let sent = tx.try_send_batch(&[b"a", b"bb", b"ccc", &[9; 40]]).unwrap();
    assert_eq!(sent, 3, "the fourth does not fit and ends the batch");
    // Three 16-byte records, and the padding the fourth wrote before finding no room.
    assert_eq!(mem.load_position(true), 64);
    for want in [&b"a"[..], b"bb", b"ccc"] {
        assert_eq!(rx.try_recv_vec().unwrap(), want);
    }
}

#[test]
fn hostile_positions_and_records_are_corruption_not_crashes() {
    let mem = HeapRing::new(64).unwrap();
    let (mut tx, mut rx) = split(&mem);
    tx.try_send(b"hello").unwrap();
    let word = |len: u64, pad: bool| commit_word(0, 64, 0, pad) | len;
    mem.scribble(0, word(1_000_000, false)); // record longer than the ring
    assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
    mem.scribble(0, word(3, true)); // padding in the wrong place
    assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
    mem.scribble(0, word(57, false)); // a record that would run past the end of the lap
    assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
    mem.scribble(0, 12345); // no commit for this lap: looks empty
    assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    let (mut tx2, _) = split(&mem);
    mem.scribble_position(false, 12345);
    tx2.try_send(&[0; 40]).unwrap(); // fits by the cached position: no reload yet
    assert!(matches!(
        tx2.try_send(&[0; 40]),
        Err(RingError::Corrupted(_))
    ));
}

/// A payload full of words that would be valid commits one lap later cannot pass for
/// messages: the producer clears the next record's word before each commit.
#[test]
fn stale_payload_never_passes_for_a_commit() {
    const CAP: usize = 128;
    let mem = HeapRing::new(CAP).unwrap();
    let (mut tx, mut rx) = split(&mem);
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for i in 0..400usize {
        let len = (i * 24) % 72;
        // Where this record's payload will lie, and the forged words for the next lap.
        let p = mem.load_position(true);
        let off = (p % CAP as u64) as usize;
        let start = if record_size(len) > CAP - off {
            p + (CAP - off) as u64
        } else {
            p
        };
        let msg: Vec<u8> = (0..len / 8)
            .flat_map(|j| {
                let at = start + 8 + 8 * j as u64;
                commit_word(at + CAP as u64, CAP, 0, false).to_le_bytes()
            })
            .collect();
        match tx.try_send(&msg) {
            Ok(()) => model.push_back(msg),
            Err(RingError::Full) => {
                while let Some(want) = model.pop_front() {
                    assert_eq!(rx.try_recv_vec().unwrap(), want);
                }
                assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
            }
            Err(e) => panic!("{e}"),
        }
    }
    while let Some(want) = model.pop_front() {
        assert_eq!(rx.try_recv_vec().unwrap(), want);
    }
    assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
}

#[test]
fn impossible_positions_at_attach_are_corruption_not_panics() {
    for (producer, consumer) in [(0, 8), (u64::MAX - 7, 0), (4, 0), (200, 0), (0, 3)] {
        let mem = HeapRing::new(64).unwrap();
        mem.scribble_position(true, producer);
        mem.scribble_position(false, consumer);
        let (mut tx, mut rx) = split(&mem);
        assert!(matches!(tx.try_send(b"x"), Err(RingError::Corrupted(_))));
        if consumer % 8 != 0 {
            assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        }
    }
    let mem = HeapRing::new(64).unwrap();
    mem.scribble_position(false, u64::MAX - 7);
    let (_, mut rx) = split(&mem);
    assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
}

/// A consumer that takes over carries on from the position its predecessor consumed to
/// (not the one it published); a position behind the published one means the published
/// one; one more than a lap ahead, or misaligned, is corruption, never a panic.
#[test]
fn a_resumed_consumer_carries_on_from_the_position_given() {
    let mem = HeapRing::new(64).unwrap();
    let (mut tx, mut rx) = split(&mem);
    for i in 0..3u8 {
        tx.try_send(&[i; 8]).unwrap(); // 16-byte records
    }
    rx.read().unwrap().consume();
    rx.read().unwrap().consume();
    assert_eq!((rx.position(), rx.released()), (32, 0));
    // `rx` dies here without publishing; `next` takes over.
    let mut next = Consumer::resume(&mem, 32);
    assert_eq!(next.try_recv_vec().unwrap(), vec![2; 8]);
    assert_eq!(next.try_recv_vec(), Err(RingError::Empty));
    assert_eq!(
        mem.load_position(false),
        48,
        "published on finding it empty"
    );
    // Behind the published position: the published one.
    let mut behind = Consumer::resume(&mem, 16);
    assert_eq!(behind.position(), 48);
    assert_eq!(behind.try_recv_vec(), Err(RingError::Empty));
    for bad in [48 + 64 + 8, 52, u64::MAX - 7] {
        let mut broken = Consumer::resume(&mem, bad);
        assert!(
            matches!(broken.try_recv_vec(), Err(RingError::Corrupted(_))),
            "{bad}"
        );
    }
}

/// Staged records, or padding left by an abandoned slot, take room the consumer can
/// only free once it sees them: a producer that finds no room publishes them.
#[test]
fn no_room_publishes_what_is_staged() {
    let mem = HeapRing::new(64).unwrap();
    let (mut tx, mut rx) = split(&mem);
    for _ in 0..3 {
        tx.reserve(8).unwrap().stage();
    }
    assert_eq!(tx.try_send(&[0; 20]), Err(RingError::Full));
    assert!(!tx.has_staged());
    for _ in 0..3 {
        assert_eq!(rx.try_recv_vec().unwrap().len(), 8);
    }
    tx.try_send(&[1; 20]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), vec![1; 20]);
    tx.try_send(&[3; 8]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), vec![3; 8]);
    // Both at 112 (offset 48): a 20-byte reservation pads the lap, and is abandoned.
    {
        let _abandoned = tx.reserve(20).unwrap();
    }
    assert!(tx.has_staged(), "the padding");
    assert_eq!(tx.try_send(&[2; 56]), Err(RingError::Full));
    assert_eq!(
        rx.try_recv_vec(),
        Err(RingError::Empty),
        "passes the padding"
    );
    tx.try_send(&[2; 56]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), vec![2; 56]);
}

#[test]
fn zero_copy_slots_write_and_read_in_place() {
    use std::io::{Read, Write};
    let mem = HeapRing::new(256).unwrap();
    let (mut tx, mut rx) = split(&mem);
    // Reserve an upper bound, serialize in place, commit what was written.
    let mut slot = tx.reserve(100).unwrap();
    assert_eq!(slot.len(), 100);
    write!(slot, "seq={} payload={:?}", 7, [1, 2, 3]).unwrap();
    let n = slot.written();
    assert!(slot.commit_len(n).is_ok());
    // Odd offsets, and writes past the end are cut short, never out of bounds.
    let mut slot = tx.reserve(13).unwrap();
    assert_eq!(slot.write_at(3, b"abcdefghijklmnop"), 10);
    assert_eq!(slot.write_at(0, b"xyz"), 3);
    assert_eq!(slot.write_at(13, b"!"), 0);
    assert!(matches!(
        slot.commit_len(14),
        Err(RingError::BeyondReserved {
            len: 14,
            reserved: 13
        })
    ));
    // That slot was abandoned: the next reservation reuses its room.
    let mut slot = tx.reserve(13).unwrap();
    slot.write_at(0, b"xyzabcdefghij");
    slot.commit();

    let mut slot = rx.read().unwrap();
    let mut text = String::new();
    slot.read_to_string(&mut text).unwrap();
    assert_eq!(text, "seq=7 payload=[1, 2, 3]");
    slot.release();
    let slot = rx.read().unwrap();
    let mut part = [0u8; 4];
    assert_eq!(slot.read_at(9, &mut part), 4);
    assert_eq!(&part, b"ghij");
    assert_eq!(slot.read_at(11, &mut part), 2);
    assert_eq!(slot.read_at(99, &mut part), 0);
    let _ = slot; // not released: still there
    assert_eq!(rx.try_recv_vec().unwrap(), b"xyzabcdefghij");
    assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
}

#[test]
fn staged_records_and_consumed_records_are_published_once() {
    let mem = HeapRing::new(128).unwrap();
    let (mut tx, mut rx) = split(&mem);
    for m in [&b"one"[..], b"two", b"three"] {
        let mut slot = tx.reserve(m.len()).unwrap();
        slot.write_at(0, m);
        slot.stage();
    }
    assert!(tx.has_staged());
    assert_eq!(
        rx.try_recv_vec(),
        Err(RingError::Empty),
        "staged: not visible"
    );
    assert_eq!(mem.load_position(true), 0);
    tx.flush();
    assert_eq!(mem.load_position(true), 48);
    rx.read().unwrap().consume();
    rx.read().unwrap().consume();
    assert_eq!(mem.load_position(false), 0, "consumed, not yet published");
    rx.flush();
    assert_eq!(mem.load_position(false), 32);
    assert_eq!(rx.try_recv_vec().unwrap(), b"three");
    assert_eq!(mem.load_position(false), 48);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The ring behaves like a bounded FIFO of messages (a VecDeque), whatever the
    /// sequence of sends, receives and polls (a poll remembers the record it found for
    /// the next receive: sends in between must not change what that receives).
    #[test]
    fn behaves_like_a_queue(ops in prop::collection::vec((0u8..3, 0usize..60), 1..200)) {
        let mem = HeapRing::new(128).unwrap();
        let (mut tx, mut rx) = split(&mem);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for (i, (op, len)) in ops.into_iter().enumerate() {
            if op == 2 {
                match rx.poll() {
                    Ok(()) => prop_assert!(!model.is_empty()),
                    Err(RingError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            } else if op == 0 {
                let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                match tx.try_send(&msg) {
                    Ok(()) => model.push_back(msg),
                    Err(RingError::Full) if model.is_empty() => {
                        // Only padding is queued (the message would wrap): the next
                        // receive releases it and reports Empty.
                        prop_assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
                    }
                    Err(RingError::Full) => {}
                    Err(e) => prop_assert!(false, "{e}"),
                }
            } else {
                match rx.try_recv_vec() {
                    Ok(got) => prop_assert_eq!(Some(got), model.pop_front()),
                    Err(RingError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
        }
    }

    /// The same with the zero-copy and batch calls: staged messages become visible on
    /// flush (or the next commit), consumed ones free their room on flush.
    #[test]
    fn slots_and_batches_behave_like_a_queue(
        ops in prop::collection::vec((0u8..6, 0usize..60), 1..200)
    ) {
        let mem = HeapRing::new(128).unwrap();
        let (mut tx, mut rx) = split(&mem);
        let mut visible: VecDeque<Vec<u8>> = VecDeque::new();
        let mut staged: Vec<Vec<u8>> = Vec::new();
        for (i, (op, len)) in ops.into_iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|j| (i * 17 + j) as u8).collect();
            match op {
                0 | 1 => {
                    // Op 0: reserve more than needed, commit what was written;
                    // op 1: reserve exactly, write through io::Write, commit.
                    let reserve = if op == 0 { len + 3 } else { len };
                    match tx.reserve(reserve) {
                        Ok(mut slot) => {
                            if op == 0 {
                                prop_assert_eq!(slot.write_at(0, &msg), len);
                                prop_assert!(slot.commit_len(len).is_ok());
                            } else {
                                std::io::Write::write_all(&mut slot, &msg).unwrap();
                                slot.commit();
                            }
                            visible.extend(staged.drain(..));
                            visible.push_back(msg);
                        }
                        Err(RingError::Full) => {
                            if !tx.has_staged() {
                                visible.extend(staged.drain(..));
                            }
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                2 => match tx.reserve(len) {
                    Ok(mut slot) => {
                        slot.write_at(0, &msg);
                        slot.stage();
                        staged.push(msg);
                    }
                    Err(RingError::Full) => {
                        if !tx.has_staged() {
                            visible.extend(staged.drain(..));
                        }
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                },
                3 => {
                    tx.flush();
                    visible.extend(staged.drain(..));
                }
                4 => match rx.read() {
                    Ok(slot) => {
                        prop_assert_eq!(Some(slot.to_vec()), visible.pop_front());
                        if len % 2 == 0 {
                            slot.consume();
                        } else {
                            slot.release();
                        }
                    }
                    Err(RingError::Empty) => prop_assert!(visible.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                },
                _ => rx.flush(),
            }
        }
        tx.flush();
        visible.extend(staged.drain(..));
        while let Some(want) = visible.pop_front() {
            prop_assert_eq!(rx.try_recv_vec(), Ok(want));
        }
        prop_assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    }
}
