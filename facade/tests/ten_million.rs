//! Ten million messages of random sizes through the channel, between real processes, each
//! carrying its sequence number and a checksum: none lost, duplicated, reordered or
//! corrupted. Once with one sender (SPSC), once with three sender processes (MPSC), and an
//! MPSC run in which one sender is SIGKILLed mid-stream.
//!
//! Half of the messages go through the copying calls (`send`, `recv_into_deadline`), half
//! through the zero-copy ones (`reserve` + `io::Write` + `commit`, `recv_slot` +
//! `read_at` + `release`).
//!
//! The full ten million runs in release builds (`cargo test --release -p ipcraft --test
//! ten_million`, which `cargo xtask ci` runs); a debug build runs 300 000 and says so.
#![cfg(all(feature = "shm", feature = "sync"))]

use ipcraft::channel::{ChannelError, Receiver, Sender};
use ipcraft_core::Deadline;
use ipcraft_testkit::{Roles, finish, kill, wait_for};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A child's role, and how many messages it sends.
const ROLES: Roles = Roles::new("IPCRAFT_TEN_MILLION_ROLE", "IPCRAFT_TEN_MILLION_COUNT");
/// Ring bytes per sender: the largest message is 16 376 bytes.
const CAPACITY: usize = 1 << 14;
const MAX: usize = CAPACITY - 8;
/// Generous: a run that stalls fails instead of hanging the suite.
const STALL: Duration = Duration::from_secs(60);

fn total() -> u64 {
    if cfg!(debug_assertions) {
        eprintln!(
            "ten_million: DEBUG build, so 300 000 messages instead of 10 000 000; the full \
             run is `cargo test --release -p ipcraft --test ten_million` (cargo xtask ci)"
        );
        300_000
    } else {
        10_000_000
    }
}

/// A 64-bit mix (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The length of message `seq` of sender `slot`: mostly small, some up to 1 KiB, one in a
/// hundred up to the largest the ring takes, and now and then exactly the largest.
fn length(slot: usize, seq: u64) -> usize {
    let r = mix(seq ^ ((slot as u64) << 56));
    if seq % 100_003 == 7 {
        return MAX;
    }
    match r % 100 {
        0..90 => (r >> 8) as usize % 65,
        90..99 => (r >> 8) as usize % 1025,
        _ => (r >> 8) as usize % (MAX + 1),
    }
}

/// Byte `i` of the pattern of message `seq` of sender `slot`.
fn pattern_word(slot: usize, seq: u64, word: usize) -> [u8; 8] {
    mix(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((slot as u64) << 48) ^ word as u64).to_le_bytes()
}

/// The checksum of a payload (FNV-1a over 64-bit words, the last word zero-padded).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Message `seq` of sender `slot` into `buf`: with 16 bytes or more, its sequence number
/// and the checksum of the rest, then the pattern; shorter ones are the pattern alone
/// (the receiver knows their length and bytes from the sender's slot and its count).
fn message(slot: usize, seq: u64, buf: &mut Vec<u8>) {
    let len = length(slot, seq);
    buf.clear();
    let body = len.saturating_sub(16);
    let start = len - body;
    buf.resize(len, 0);
    for (w, chunk) in buf[start..].chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&pattern_word(slot, seq, w)[..chunk.len()]);
    }
    if len >= 16 {
        let sum = checksum(&buf[16..]);
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..16].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Check a received message against what sender `slot` sent as its `seq`th.
fn verify(slot: usize, seq: u64, got: &[u8], want: &mut Vec<u8>) {
    assert_eq!(
        got.len(),
        length(slot, seq),
        "sender {slot} message {seq}: wrong length (lost, duplicated or reordered)"
    );
    if got.len() >= 16 {
        let s = u64::from_le_bytes(got[..8].try_into().unwrap());
        assert_eq!(
            s, seq,
            "sender {slot}: message {s} arrived where {seq} was due"
        );
        let sum = u64::from_le_bytes(got[8..16].try_into().unwrap());
        assert_eq!(
            checksum(&got[16..]),
            sum,
            "sender {slot} message {seq}: checksum"
        );
    }
    message(slot, seq, want);
    assert!(
        got == &want[..],
        "sender {slot} message {seq}: bytes differ"
    );
}

/// Send `count` messages: even ones copied, odd ones written in place.
fn produce(tx: &mut Sender, count: u64) {
    let slot = tx.slot();
    let mut buf = Vec::with_capacity(MAX);
    let deadline = || Deadline::after(STALL);
    for seq in 0..count {
        message(slot, seq, &mut buf);
        if seq.is_multiple_of(2) {
            tx.send_deadline(&buf, deadline()).unwrap();
        } else {
            let mut room = tx.reserve_deadline(buf.len(), deadline()).unwrap();
            for chunk in buf.chunks(256) {
                room.write_all(chunk).unwrap();
            }
            assert_eq!(room.written(), buf.len());
            room.commit();
        }
    }
}

/// Receive until every sender is gone; returns how many messages each sender's slot
/// delivered (all verified, in order per sender).
fn consume(rx: &mut Receiver) -> Vec<u64> {
    let mut next = vec![0u64; rx.max_senders()];
    let mut buf = vec![0u8; MAX];
    let mut want = Vec::with_capacity(MAX);
    let mut n: u64 = 0;
    loop {
        n += 1;
        let deadline = Deadline::after(STALL);
        if n.is_multiple_of(2) {
            match rx.recv_slot_deadline(deadline) {
                Ok(msg) => {
                    let slot = msg.sender();
                    let len = msg.len();
                    let mut at = 0;
                    while at < len {
                        at += msg.read_at(at, &mut buf[at..(at + 256).min(len)]);
                    }
                    msg.release();
                    verify(slot, next[slot], &buf[..len], &mut want);
                    next[slot] += 1;
                }
                Err(ChannelError::Disconnected) => return next,
                Err(e) => panic!("after {next:?}: {e}"),
            }
        } else {
            // The copying call does not say which sender: only one can be due (SPSC), or
            // use the zero-copy call for MPSC.
            if next.len() > 1 {
                continue;
            }
            match rx.recv_into_deadline(&mut buf, deadline) {
                Ok(len) => {
                    verify(0, next[0], &buf[..len], &mut want);
                    next[0] += 1;
                }
                Err(ChannelError::Disconnected) => return next,
                Err(e) => panic!("after {next:?}: {e}"),
            }
        }
    }
}

fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

/// A sender child: `role`, sending `count` messages into the channel `fd` (its stdin).
fn spawn(role: &str, count: u64, fd: OwnedFd) -> Child {
    ROLES.spawn(role, &count.to_string(), Stdio::from(fd))
}

#[test]
fn child_role() {
    let Some((role, count)) = ROLES.current() else {
        return;
    };
    let count: u64 = count.parse().unwrap();
    let mut tx = Sender::from_fd(stdin_fd()).unwrap();
    match role.as_str() {
        "produce" => {
            produce(&mut tx, count);
            println!("SENT {count}");
        }
        "produce-forever" => {
            println!("STARTED");
            produce(&mut tx, u64::MAX);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn ten_million_messages_arrive_once_in_order_intact() {
    let total = total();
    let (mut rx, fd) = Receiver::anonymous(CAPACITY).unwrap();
    let start = Instant::now();
    let child = spawn("produce", total, fd);
    let got = consume(&mut rx);
    finish(child, "producer");
    println!("SPSC: {total} messages in {:?}", start.elapsed());
    assert_eq!(got, vec![total]);
}

#[test]
fn ten_million_messages_from_three_sender_processes() {
    let total = total();
    let (mut rx, fd) = Receiver::anonymous_mpsc(3, CAPACITY).unwrap();
    let start = Instant::now();
    let per = total / 3;
    let counts = [per, per, total - 2 * per];
    let children: Vec<Child> = counts
        .iter()
        .map(|&c| spawn("produce", c, fd.try_clone().unwrap()))
        .collect();
    drop(fd);
    let mut got = consume(&mut rx);
    for c in children {
        finish(c, "producer");
    }
    println!(
        "MPSC: {total} messages from 3 senders in {:?}",
        start.elapsed()
    );
    // Slots are claimed in spawn order or not: compare as multisets.
    got.sort_unstable();
    let mut want = counts.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn an_mpsc_sender_killed_mid_stream_stops_no_one_else() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(3, CAPACITY).unwrap();
    let mut victim = spawn("produce-forever", 0, fd.try_clone().unwrap());
    wait_for(&mut victim, "STARTED");
    let others: Vec<Child> = (0..2)
        .map(|_| spawn("produce", 50_000, fd.try_clone().unwrap()))
        .collect();
    drop(fd);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        kill(&mut victim);
    });
    let start = Instant::now();
    let got = consume(&mut rx);
    killer.join().unwrap();
    for c in others {
        finish(c, "producer");
    }
    // Every message the killed sender committed arrived intact and in order (verified by
    // consume), then its slot counted as gone; the other two delivered everything.
    let mut finished: Vec<u64> = got.iter().copied().filter(|&n| n == 50_000).collect();
    finished.truncate(2);
    assert_eq!(finished, vec![50_000, 50_000], "{got:?}");
    assert!(
        got.iter().sum::<u64>() > 100_000,
        "the victim sent some: {got:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}
