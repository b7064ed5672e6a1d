//! Loom models of the ring protocol.

use super::super::HeapRing;
use super::*;
use crate::loom::thread;
use loom::sync::Arc;

fn run(capacity: usize, msgs: &'static [&'static [u8]], batch: bool) {
    loom::model(move || {
        let mem = Arc::new(HeapRing::new(capacity).unwrap());
        let producer_mem = mem.clone();
        let t = thread::spawn(move || {
            let (mut tx, _) = split(&*producer_mem);
            let mut i = 0;
            while i < msgs.len() {
                let r = if batch {
                    tx.try_send_batch(&msgs[i..])
                } else {
                    tx.try_send(msgs[i]).map(|()| 1)
                };
                match r {
                    Ok(n) => i += n,
                    Err(RingError::Full) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let (_, mut rx) = split(&*mem);
        let mut got = 0;
        while got < msgs.len() {
            match rx.try_recv_vec() {
                Ok(v) => {
                    assert_eq!(v, msgs[got]);
                    got += 1;
                }
                Err(RingError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn publish_and_consume_with_wrap_around() {
    // 32-byte ring: the third record wraps (padding), and the ring fills up.
    run(32, &[b"abcdefghi", b"12345", b"xyz"], false);
}

#[test]
fn batched_commit() {
    run(32, &[b"a", b"bcdefghij", b"k"], true);
}

/// The first message fills the ring with words that would be valid (empty) commits at
/// positions 40, 48 and 56 of the next lap; the producer's clearing of the next
/// record's word, ordered before each commit, keeps them from passing for messages.
#[test]
fn stale_payload_never_passes_for_a_commit() {
    static FORGED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let forged = FORGED.get_or_init(|| {
        [40u64, 48, 56]
            .iter()
            .flat_map(|&p| super::super::commit_word(p, 32, 0, false).to_le_bytes())
            .collect()
    });
    static MSGS: std::sync::OnceLock<[&'static [u8]; 3]> = std::sync::OnceLock::new();
    let msgs = MSGS.get_or_init(|| [&forged[..], b"AAAAAAAA", b"BBBBBBBB"]);
    run(32, &msgs[..], false);
}
