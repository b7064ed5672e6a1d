//! Restarting a channel end, across real processes: a receiver that takes over from one
//! that was killed (or closed), and sender slots that a new sender claims once the
//! receiver drained what the old one sent.
#![cfg(all(feature = "shm", feature = "sync"))]
#![allow(unsafe_code)] // One role forks: a sender inherited over fork is what it is about.

use ipcraft::channel::{ChannelError, Receiver, Sender};
use ipcraft_core::Deadline;
use ipcraft_testkit::{Roles, kill, wait_for, wait_for_prefix};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROLES: Roles = Roles::new("IPCRAFT_RESTART_TEST_ROLE", "IPCRAFT_RESTART_TEST_ARG");
const LONG: Duration = Duration::from_secs(30);

/// Message `seq` of sender `who`: 24 bytes (a 32-byte record), checkable.
fn message(who: u8, seq: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(24);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend(std::iter::repeat_n(who ^ seq as u8, 16));
    m
}

fn seq_of(who: u8, m: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(m, message(who, seq), "message {seq} of sender {who} intact");
    seq
}

fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().unwrap()
}

fn hang() -> ! {
    std::thread::sleep(Duration::from_secs(120));
    panic!("not killed in 120 s");
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // Receive 10 messages (released, or consumed and never flushed), then hold the
        // 11th unreleased, and wait to be killed.
        "receive-ten-then-hold" => {
            let mut rx = Receiver::from_fd(stdin_fd()).unwrap();
            for want in 0..10 {
                if arg == "consume" {
                    let slot = rx.recv_slot_timeout(LONG).unwrap();
                    assert_eq!(seq_of(0, &slot.to_vec()), want);
                    slot.consume();
                } else {
                    assert_eq!(seq_of(0, &rx.recv_timeout(LONG).unwrap()), want);
                }
            }
            let slot = rx.recv_slot_timeout(LONG).unwrap();
            assert_eq!(seq_of(0, &slot.to_vec()), 10);
            println!("HOLDING");
            hang();
        }
        // Receive and print every sequence number once received (released).
        "receive-and-print" => {
            let mut rx = Receiver::from_fd(stdin_fd()).unwrap();
            let mut out = std::io::stdout().lock();
            loop {
                let m = rx.recv_timeout(LONG).unwrap();
                let seq = seq_of(0, &m);
                writeln!(out, "R {seq}").unwrap();
                if seq.is_multiple_of(64) {
                    // Let the sender fill the ring: a receiver that finds it empty
                    // publishes its position, which would hide what the test looks for.
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        }
        // Send `arg` messages as sender 1, then leave traces a dead sender can leave: a
        // reserved slot written and never committed, a message staged and never flushed.
        "send-then-die-dirty" => {
            let n: u64 = arg.parse().unwrap();
            let mut tx = Sender::from_fd(stdin_fd()).unwrap();
            for seq in 0..n {
                tx.send_timeout(&message(1, seq), LONG).unwrap();
            }
            let mut slot = tx.reserve_timeout(24, LONG).unwrap();
            slot.write_at(0, &message(1, 999_999));
            drop(slot); // never committed
            println!("SLOT {}", tx.slot());
            hang();
        }
        "send-staged-then-die" => {
            let mut tx = Sender::from_fd(stdin_fd()).unwrap();
            tx.send_timeout(&message(1, 0), LONG).unwrap();
            for seq in 1..4 {
                let mut slot = tx.reserve_timeout(24, LONG).unwrap();
                slot.write_at(0, &message(1, seq));
                slot.stage();
            }
            println!("SLOT {}", tx.slot());
            hang();
        }
        // Fork a process (no exec) that drops its copy of the sender and exits, as a
        // forked worker closing what it does not need does; then send 10 messages.
        "fork-drop-then-send" => {
            let mut tx = Sender::from_fd(stdin_fd()).unwrap();
            // SAFETY: the child only drops the sender (atomic stores, close) and `_exit`s:
            // nothing that could wait for a lock another thread of the harness holds.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    drop(tx);
                    // SAFETY: ends the forked process at once, running nothing of ours.
                    unsafe { nix::libc::_exit(0) };
                }
                nix::unistd::ForkResult::Parent { child } => {
                    nix::sys::wait::waitpid(child, None).unwrap();
                }
            }
            println!("DROPPED-IN-FORK");
            for seq in 0..10 {
                tx.send_timeout(&message(1, seq), LONG).unwrap();
            }
            println!("SENT-TEN");
            hang();
        }
        // Write garbage over its own ring's first commit word, so that the receiver finds
        // it corrupted, then wait to be killed.
        "corrupt-own-ring" => {
            let mut tx = Sender::from_fd(stdin_fd()).unwrap();
            tx.send_timeout(&message(1, 0), LONG).unwrap();
            let seg = ipcraft_shm::Segment::from_fd(stdin_fd(), 512).unwrap();
            // The data of ring 0 starts after the 256-byte header and one 256-byte slot: a
            // commit word for lap 0 with a length longer than the ring.
            seg.write(512, &(1u64 << 63 | 0xffff_fff0)).unwrap();
            println!("CORRUPTED");
            hang();
        }
        "hold-a-slot" => {
            let tx = Sender::from_fd(stdin_fd()).unwrap();
            println!("SLOT {}", tx.slot());
            hang();
        }
        other => panic!("unknown role {other}"),
    }
}

/// The receiver dies holding message 10, having released (or consumed) 0 to 9, whose
/// room it had not yet published (a quarter of the ring): the next receiver gets exactly
/// 10 onwards, nothing twice.
fn a_killed_receiver_is_replaced(how: &str) {
    let (mut tx, fd) = Sender::anonymous(4096).unwrap();
    let spare = dup(&fd);
    for seq in 0..40 {
        tx.send(&message(0, seq)).unwrap();
    }
    let mut child = ROLES.spawn("receive-ten-then-hold", how, Stdio::from(fd));
    wait_for(&mut child, "HOLDING");
    assert!(
        matches!(
            Receiver::from_fd(dup(&spare)),
            Err(ChannelError::ReceiverTaken)
        ),
        "a live receiver is never taken over"
    );
    kill(&mut child);
    let mut rx = Receiver::from_fd(spare).unwrap();
    assert!(rx.took_over());
    for want in 10..40 {
        assert_eq!(seq_of(0, &rx.recv_timeout(LONG).unwrap()), want);
    }
    assert!(matches!(rx.try_recv(), Err(ChannelError::Empty)));
    // The channel goes on: the room the dead receiver used is free again.
    for seq in 40..400 {
        tx.send_timeout(&message(0, seq), LONG).unwrap();
        assert_eq!(seq_of(0, &rx.recv_timeout(LONG).unwrap()), seq);
    }
    drop(tx);
    assert!(matches!(
        rx.recv_timeout(LONG),
        Err(ChannelError::Disconnected)
    ));
}

#[test]
fn a_killed_receiver_is_replaced_and_gets_every_unreleased_message_once() {
    a_killed_receiver_is_replaced("release");
}

#[test]
fn a_killed_receiver_that_consumed_without_flushing_is_replaced_too() {
    a_killed_receiver_is_replaced("consume");
}

/// Killed at a random moment of a stream: every message is received by the dead receiver
/// (which printed it) or by the next, never by both, in order; at most one (released by
/// the dead one, killed before it printed) by neither.
#[test]
fn a_receiver_killed_mid_stream_loses_and_repeats_nothing() {
    const TOTAL: u64 = 50_000;
    let (mut tx, fd) = Sender::anonymous(1 << 12).unwrap();
    let spare = dup(&fd);
    let mut child = ROLES.spawn("receive-and-print", "", Stdio::from(fd));
    let stdout = child.stdout.take().unwrap();
    let sender = std::thread::spawn(move || {
        let mut seq = 0;
        let start = Instant::now();
        while seq < TOTAL {
            match tx.send_timeout(&message(0, seq), Duration::from_millis(200)) {
                Ok(()) => seq += 1,
                // The receiver is dead (noticed once the ring is full) or being replaced.
                Err(ChannelError::Disconnected | ChannelError::TimedOut) => {
                    assert!(start.elapsed() < Duration::from_secs(60), "stuck at {seq}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut printed = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    let read = |printed: &mut Vec<u64>, line: std::io::Result<String>| {
        // (The test harness of the child prints lines of its own.)
        if let Some(seq) = line.unwrap().strip_prefix("R ") {
            printed.push(seq.parse::<u64>().unwrap());
        }
    };
    while printed.len() < 5000 {
        let line = lines.next().expect("the receiver printed 5000 messages");
        read(&mut printed, line);
    }
    kill(&mut child);
    // What it printed before it died.
    for line in lines {
        read(&mut printed, line);
    }
    assert!(printed.len() >= 5000);
    assert!(printed.iter().copied().eq(0..printed.len() as u64));
    let last = *printed.last().unwrap();
    let mut rx = Receiver::from_fd(spare).unwrap();
    assert!(rx.took_over());
    let first = seq_of(0, &rx.recv_timeout(LONG).unwrap());
    assert!(
        first == last + 1 || first == last + 2,
        "the dead receiver printed up to {last}; the next one starts at {first}"
    );
    for want in first + 1..TOTAL {
        assert_eq!(seq_of(0, &rx.recv_timeout(LONG).unwrap()), want);
    }
    sender.join().unwrap();
    assert!(matches!(
        rx.recv_timeout(LONG),
        Err(ChannelError::Disconnected)
    ));
}

#[test]
fn a_receiver_that_closed_is_replaced_and_its_senders_go_on() {
    let name = ipcraft_testkit::unique_name("/ipcraft-restart-test", "closed");
    let mut tx = Sender::create(&name, 4096).unwrap();
    let mut rx = Receiver::open(&name).unwrap();
    assert!(!rx.took_over());
    for seq in 0..5 {
        tx.send(&message(0, seq)).unwrap();
    }
    assert_eq!(seq_of(0, &rx.recv().unwrap()), 0);
    let slot = rx.recv_slot().unwrap();
    drop(slot); // left in the channel
    drop(rx);
    assert!(matches!(
        tx.send(&message(0, 5)),
        Err(ChannelError::Disconnected)
    ));
    let mut rx = retry_while_spawning(|| Receiver::open(&name));
    assert!(rx.took_over());
    tx.send(&message(0, 5)).unwrap();
    for want in 1..6 {
        assert_eq!(seq_of(0, &rx.recv_timeout(LONG).unwrap()), want);
    }
}

/// `open`, retried while it reports the end taken. An end dropped in this process may look
/// alive for a moment: a child that another test's thread is spawning holds a copy of every
/// descriptor between its fork and its exec (the channel's are close-on-exec), and with it
/// the end's liveness lock (see the channel docs on fork).
fn retry_while_spawning<T>(open: impl Fn() -> Result<T, ChannelError>) -> T {
    let start = Instant::now();
    loop {
        match open() {
            Ok(end) => return end,
            Err(ChannelError::ReceiverTaken | ChannelError::SendersFull { .. })
                if start.elapsed() < LONG =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Look (`try_recv`, which must find nothing) and claim a sender slot until one is free
/// (a dead sender's slot frees once a probe is due; a closed one's once no spawning child
/// holds a copy of its lock: see [`retry_while_spawning`]).
fn claim_within(rx: &mut Receiver, fd: &OwnedFd, limit: Duration) -> Sender {
    let start = Instant::now();
    loop {
        assert!(matches!(
            rx.try_recv(),
            Err(ChannelError::Empty | ChannelError::Disconnected)
        ));
        match Sender::from_fd(dup(fd)) {
            Ok(tx) => return tx,
            Err(ChannelError::SendersFull { .. }) if start.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no slot after {:?}: {e}", start.elapsed()),
        }
    }
}

fn slot_of(line: &str) -> usize {
    line.strip_prefix("SLOT ").unwrap().parse().unwrap()
}

/// A killed sender's slot is claimed by a new sender once the receiver has received
/// everything the dead one committed (and nothing it did not): before that, the channel
/// is full of senders.
#[test]
fn a_killed_senders_slot_is_reused_once_drained() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(2, 4096).unwrap();
    let mut dead = ROLES.spawn("send-then-die-dirty", "20", Stdio::from(dup(&fd)));
    let dead_slot = slot_of(&wait_for_prefix(&mut dead, "SLOT "));
    let mut live = ROLES.spawn("hold-a-slot", "", Stdio::from(dup(&fd)));
    let live_slot = slot_of(&wait_for_prefix(&mut live, "SLOT "));
    assert_ne!(dead_slot, live_slot);
    kill(&mut dead);
    assert!(
        matches!(
            Sender::from_fd(dup(&fd)),
            Err(ChannelError::SendersFull { max: 2 })
        ),
        "the dead sender's messages are not received yet"
    );
    for want in 0..20 {
        let slot = rx.recv_slot_timeout(LONG).unwrap();
        assert_eq!(slot.sender(), dead_slot);
        assert_eq!(seq_of(1, &slot.to_vec()), want);
        slot.release();
    }
    // Empty now (the reserved slot was never committed): a look frees the slot once a
    // liveness probe is due (one slice, 100 ms, after the last).
    let mut tx = claim_within(&mut rx, &fd, Duration::from_secs(5));
    assert_eq!(tx.slot(), dead_slot);
    for seq in 0..300 {
        tx.send_timeout(&message(2, seq), LONG).unwrap();
        let slot = rx.recv_slot_timeout(LONG).unwrap();
        assert_eq!(slot.sender(), dead_slot);
        assert_eq!(
            seq_of(2, &slot.to_vec()),
            seq,
            "in order, nothing of the dead one"
        );
        slot.release();
    }
    kill(&mut live);
    drop(tx);
    assert!(matches!(
        rx.recv_timeout(LONG),
        Err(ChannelError::Disconnected)
    ));
}

/// Records a dead sender staged and never published are not received, and do not confuse
/// the new sender's.
#[test]
fn a_dead_senders_staged_messages_are_not_received_nor_in_the_way() {
    let (mut rx, fd) = Receiver::anonymous(1024).unwrap();
    let mut dead = ROLES.spawn("send-staged-then-die", "", Stdio::from(dup(&fd)));
    wait_for_prefix(&mut dead, "SLOT ");
    kill(&mut dead);
    assert_eq!(seq_of(1, &rx.recv_timeout(LONG).unwrap()), 0);
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(ChannelError::Disconnected)
    ));
    let mut tx = Sender::from_fd(fd).unwrap();
    // Messages of other sizes than the dead one's, around the ring several times.
    for seq in 0..2000u64 {
        let m = vec![seq as u8; (seq % 50) as usize];
        tx.send_timeout(&m, LONG).unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), m, "message {seq}");
    }
}

/// A receiver that never finds the channel empty (so never waits) still frees a dead
/// sender's slot, every few thousand messages.
#[test]
fn a_busy_receiver_frees_dead_senders_slots_too() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(2, 4096).unwrap();
    let mut dead = ROLES.spawn("send-then-die-dirty", "3", Stdio::from(dup(&fd)));
    wait_for_prefix(&mut dead, "SLOT ");
    kill(&mut dead);
    let mut busy = Sender::from_fd(dup(&fd)).unwrap();
    busy.send(&message(0, 0)).unwrap();
    let mut reused = None;
    for seq in 1..20_000 {
        busy.send(&message(0, seq)).unwrap();
        // Always a message ready: the receive never waits.
        rx.recv().unwrap();
        if let Ok(tx) = Sender::from_fd(dup(&fd)) {
            reused = Some((seq, tx));
            break;
        }
    }
    let (at, _tx) = reused.expect("the dead sender's slot was never freed");
    assert!(at > 3, "freed only after its messages were received");
}

/// A closed sender's slot serves the next sender too (an SPSC channel: its only slot).
#[test]
fn a_closed_senders_slot_serves_the_next_sender() {
    let (mut rx, fd) = Receiver::anonymous(1024).unwrap();
    for round in 0..5u8 {
        let mut tx = claim_within(&mut rx, &fd, LONG);
        for seq in 0..10 {
            tx.send(&message(round, seq)).unwrap();
        }
        drop(tx);
        for want in 0..10 {
            assert_eq!(seq_of(round, &rx.recv_timeout(LONG).unwrap()), want);
        }
        assert!(matches!(
            rx.recv_timeout(LONG),
            Err(ChannelError::Disconnected)
        ));
    }
}

/// Without a claim deadline the receiver waits for slots no sender claimed; with one, it
/// reports `Disconnected` once the senders that came are gone, and still receives from a
/// sender that comes later.
#[test]
fn the_claim_deadline_ends_the_wait_for_senders_that_never_came() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(3, 1024).unwrap();
    let mut tx = Sender::from_fd(dup(&fd)).unwrap();
    tx.send(b"one").unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"one");
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(ChannelError::TimedOut)
    ));
    rx.set_claim_deadline(Deadline::after(Duration::from_millis(200)));
    let start = Instant::now();
    assert!(matches!(
        rx.recv_timeout(LONG),
        Err(ChannelError::Disconnected)
    ));
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut late = Sender::from_fd(fd).unwrap();
    late.send(b"late").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"late");
}

/// A receiver that only ever polls with a zero timeout still frees a killed sender's
/// slot (its probes are paced by the clock, not by how long each wait lasted).
#[test]
fn a_receiver_polling_with_zero_timeouts_frees_a_killed_senders_slot() {
    let (mut rx, fd) = Receiver::anonymous(4096).unwrap();
    let mut dead = ROLES.spawn("send-then-die-dirty", "3", Stdio::from(dup(&fd)));
    wait_for_prefix(&mut dead, "SLOT ");
    kill(&mut dead);
    let start = Instant::now();
    let mut received = 0;
    let tx = loop {
        match rx.recv_timeout(Duration::ZERO) {
            Ok(_) => received += 1,
            // (`Disconnected` once all it sent is received: its sender is dead.)
            Err(ChannelError::TimedOut | ChannelError::Disconnected) => {}
            Err(e) => panic!("{e}"),
        }
        if received == 3 {
            if let Ok(tx) = Sender::from_fd(dup(&fd)) {
                break tx;
            }
        }
        assert!(start.elapsed() < LONG, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(tx.slot(), 0);
}

/// A receiver woken by a live sender every 10 ms (so every wait ends early) still frees a
/// killed sender's slot within a few slices.
#[test]
fn a_receiver_served_by_a_slow_live_sender_frees_a_killed_senders_slot() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(2, 4096).unwrap();
    let mut dead = ROLES.spawn("send-then-die-dirty", "3", Stdio::from(dup(&fd)));
    wait_for_prefix(&mut dead, "SLOT ");
    kill(&mut dead);
    let mut live = Sender::from_fd(dup(&fd)).unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let ticker = {
        std::thread::spawn(move || {
            for seq in 0.. {
                if stopped.try_recv().is_ok() {
                    break;
                }
                live.send_timeout(&message(0, seq), LONG).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let start = Instant::now();
    let mut n = 0;
    let freed = loop {
        rx.recv_timeout(LONG).unwrap();
        n += 1;
        if n > 3 && Sender::from_fd(dup(&fd)).is_ok() {
            break start.elapsed();
        }
        assert!(start.elapsed() < LONG, "never freed ({n} messages)");
    };
    stop.send(()).unwrap();
    ticker.join().unwrap();
    assert!(freed < Duration::from_secs(5), "freed only after {freed:?}");
}

/// A process forked from a sender drops its copy: the sender lives on, so the channel is
/// not disconnected, its slot is not freed, and nothing it sends is lost, even when it is
/// killed and a new sender takes its place.
#[test]
fn a_forked_copy_of_a_sender_dropped_closes_nothing() {
    let (mut rx, fd) = Receiver::anonymous(4096).unwrap();
    let mut child = ROLES.spawn("fork-drop-then-send", "", Stdio::from(dup(&fd)));
    wait_for(&mut child, "DROPPED-IN-FORK");
    match rx.try_recv_slot() {
        // Left in the channel (not released).
        Ok(slot) => drop(slot),
        Err(ChannelError::Empty) => {}
        Err(e) => panic!("{e}, while the sender lives"),
    }
    wait_for(&mut child, "SENT-TEN");
    kill(&mut child);
    assert!(
        matches!(
            Sender::from_fd(dup(&fd)),
            Err(ChannelError::SendersFull { .. })
        ),
        "its messages are not received yet"
    );
    for want in 0..10 {
        assert_eq!(seq_of(1, &rx.recv_timeout(LONG).unwrap()), want);
    }
    let mut tx = claim_within(&mut rx, &fd, LONG);
    tx.send(&message(2, 0)).unwrap();
    assert_eq!(seq_of(2, &rx.recv_timeout(LONG).unwrap()), 0);
}

/// A sender whose ring the receiver found corrupted is skipped while it lives; once it is
/// gone, its ring is cleared and its slot serves a new sender.
#[test]
fn a_corrupted_senders_slot_is_reset_once_it_is_gone() {
    let (mut rx, fd) = Receiver::anonymous(4096).unwrap();
    let mut bad = ROLES.spawn("corrupt-own-ring", "", Stdio::from(dup(&fd)));
    wait_for(&mut bad, "CORRUPTED");
    assert!(matches!(rx.try_recv(), Err(ChannelError::Corrupted(_))));
    assert!(
        matches!(rx.try_recv(), Err(ChannelError::Disconnected)),
        "skipped"
    );
    kill(&mut bad);
    let start = Instant::now();
    let mut tx = loop {
        let _ = rx.try_recv();
        if let Ok(tx) = Sender::from_fd(dup(&fd)) {
            break tx;
        }
        assert!(start.elapsed() < LONG, "the corrupted slot was never reset");
        std::thread::sleep(Duration::from_millis(10));
    };
    for seq in 0..300 {
        tx.send_timeout(&message(2, seq), LONG).unwrap();
        assert_eq!(seq_of(2, &rx.recv_timeout(LONG).unwrap()), seq);
    }
}
