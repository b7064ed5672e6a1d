//! The shared-memory channel between real processes.
#![cfg(all(feature = "shm", feature = "sync"))]

use ipcraft::channel::{ChannelError, Receiver, Sender};
use ipcraft_testkit::{Roles, finish, kill, unique_name, wait_for};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROLES: Roles = Roles::new("IPCRAFT_CHANNEL_TEST_ROLE", "IPCRAFT_CHANNEL_TEST_ARG");
const MESSAGES: u64 = 200_000;
const CAPACITY: usize = 1 << 16;

/// Message `seq`: its number, then bytes derived from it, of a length derived from it
/// (0 to ~3 KiB, and now and then the largest the ring takes).
fn message(seq: u64, max: usize) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seq >> 7);
    x ^= x >> 29;
    let len = if seq % 1000 == 999 {
        max
    } else {
        8 + (x as usize % 3000)
    };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((8..len).map(|i| (x as usize).wrapping_add(i * 31) as u8));
    m
}

fn stdin_fd() -> std::os::fd::OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "receive-all" => {
            let mut rx = Receiver::from_fd(stdin_fd()).unwrap();
            let mut n = 0;
            loop {
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(m) => {
                        assert_eq!(
                            m,
                            message(n, CAPACITY - 8),
                            "message {n} intact and in order"
                        );
                        n += 1;
                    }
                    Err(ChannelError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("RECEIVED {n}");
        }
        "send-forever" => {
            let mut tx = Sender::from_fd(stdin_fd()).unwrap();
            println!("STARTED");
            for seq in 0.. {
                tx.send(&message(seq, CAPACITY - 8)).unwrap();
            }
        }
        "receive-then-hang" => {
            let mut rx = Receiver::from_fd(stdin_fd()).unwrap();
            rx.recv().unwrap();
            println!("GOT-ONE");
            std::thread::sleep(Duration::from_secs(120));
        }
        "receive-named" => {
            let mut rx = Receiver::open(&arg).unwrap();
            // This end never spins: it sleeps whenever the channel is empty.
            rx.set_wait(ipcraft::channel::Wait::Sleep);
            let mut n = 0;
            while let Ok(m) = rx.recv_timeout(Duration::from_secs(30)) {
                assert_eq!(m, message(n, 4096 - 8));
                n += 1;
            }
            println!("RECEIVED {n}");
        }
        "scribble" => {
            // A hostile peer: map the channel's memfd and write random words anywhere in it.
            let seg = ipcraft_shm::Segment::from_fd(stdin_fd(), 256 + 16).unwrap();
            println!("STARTED");
            let words = seg.len() / 8;
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            loop {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize % words) * 8;
                let value = if x.is_multiple_of(3) { x >> 40 } else { x };
                let _ = seg.write(at, &value);
            }
        }
        #[cfg(feature = "socket")]
        "receive-over-socket" => {
            // The channel's memfd arrives over the Unix socket that is our stdin.
            let sock = ipcraft::socket::UnixStream::try_from(stdin_fd()).unwrap();
            let mut buf = [0u8; 16];
            let (n, mut fds) = sock.recv_with_fds(&mut buf, 1).unwrap();
            assert_eq!(&buf[..n], b"channel");
            let mut rx = Receiver::from_fd(fds.pop().unwrap()).unwrap();
            let mut count = 0u64;
            while let Ok(m) = rx.recv_timeout(Duration::from_secs(30)) {
                assert_eq!(m, message(count, 4096 - 8));
                count += 1;
            }
            println!("RECEIVED {count}");
        }
        "attach-write-sealed" => {
            // A peer handed us a channel memfd sealed against writing: it maps read-only,
            // so attaching must be an error, not a SIGSEGV on the first atomic store.
            let r = if arg == "sender" {
                Sender::from_fd(stdin_fd()).map(drop)
            } else {
                Receiver::from_fd(stdin_fd()).map(drop)
            };
            match r {
                Ok(()) => println!("ATTACHED"),
                Err(e) => println!("REFUSED {e}"),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn every_message_arrives_once_in_order_intact() {
    let (mut tx, fd) = Sender::anonymous(CAPACITY).unwrap();
    let child = ROLES.spawn("receive-all", "", Stdio::from(fd));
    let max = tx.max_message_len();
    assert_eq!(max, CAPACITY - 8);
    for seq in 0..MESSAGES {
        tx.send_timeout(&message(seq, max), Duration::from_secs(30))
            .unwrap();
    }
    drop(tx);
    let out = finish(child, "receive-all");
    let want = format!("RECEIVED {MESSAGES}");
    assert!(out.lines().any(|l| l == want), "{out}");
}

#[test]
fn a_producer_killed_mid_stream_leaves_every_committed_message_then_disconnected() {
    let (mut rx, fd) = Receiver::anonymous(CAPACITY).unwrap();
    let mut child = ROLES.spawn("send-forever", "", Stdio::from(fd));
    wait_for(&mut child, "STARTED");
    let mut n = 0u64;
    while n < 5000 {
        assert_eq!(rx.recv().unwrap(), message(n, CAPACITY - 8));
        n += 1;
    }
    kill(&mut child);
    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(m) => {
                assert_eq!(
                    m,
                    message(n, CAPACITY - 8),
                    "committed messages, whole, in order"
                );
                n += 1;
            }
            Err(ChannelError::Disconnected) => break,
            Err(e) => panic!("after {n}: {e}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "dead producer detected in bounded time"
    );
}

#[test]
fn a_consumer_killed_gives_the_producer_disconnected_not_a_hang() {
    let (mut tx, fd) = Sender::anonymous(CAPACITY).unwrap();
    let mut child = ROLES.spawn("receive-then-hang", "", Stdio::from(fd));
    tx.send(b"first").unwrap();
    wait_for(&mut child, "GOT-ONE");
    kill(&mut child);
    let start = Instant::now();
    let mut seq = 0;
    let err = loop {
        match tx.send_timeout(&message(seq, CAPACITY - 8), Duration::from_secs(30)) {
            Ok(()) => seq += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ChannelError::Disconnected), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_hostile_peer_scribbling_over_the_ring_causes_errors_not_crashes_or_hangs() {
    let (mut rx, fd) = Receiver::anonymous(4096).unwrap();
    let mut child = ROLES.spawn("scribble", "", Stdio::from(fd));
    wait_for(&mut child, "STARTED");
    let start = Instant::now();
    let (mut ok, mut corrupted, mut other) = (0, 0, 0);
    let mut buf = vec![0u8; 4096];
    while start.elapsed() < Duration::from_secs(2) {
        let call = Instant::now();
        match rx.recv_into_deadline(
            &mut buf,
            ipcraft_core::Deadline::after(Duration::from_millis(20)),
        ) {
            Ok(_) => ok += 1,
            Err(ChannelError::Corrupted(_)) => corrupted += 1,
            Err(_) => other += 1,
        }
        assert!(
            call.elapsed() < Duration::from_secs(5),
            "a receive never hangs"
        );
    }
    kill(&mut child);
    println!("hostile peer: {ok} garbage messages, {corrupted} Corrupted, {other} other errors");
    assert!(corrupted + ok + other > 0);
}

fn channel_name(tag: &str) -> String {
    unique_name("/ipcraft-chan-test", tag)
}

#[test]
fn a_named_channel_between_unrelated_processes() {
    let name = channel_name("named");
    let mut tx = Sender::create(&name, 4096).unwrap();
    tx.set_wait(ipcraft::channel::Wait::Sleep);
    let child = ROLES.spawn("receive-named", &name, Stdio::null());
    for seq in 0..20_000 {
        tx.send_timeout(&message(seq, 4096 - 8), Duration::from_secs(30))
            .unwrap();
    }
    drop(tx); // closes the channel and removes the name
    let out = finish(child, "receive-named");
    assert!(out.lines().any(|l| l == "RECEIVED 20000"), "{out}");
    assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
}

#[test]
fn opening_a_named_channel_of_another_kind_or_version_is_a_typed_error() {
    let name = channel_name("version");
    let tx = Sender::create(&name, 4096).unwrap();
    // Another layout version: rewrite the version word behind the creator's back.
    let seg = ipcraft_shm::SegmentOptions::new()
        .tag(u64::from_le_bytes(*b"IPCRCHN1"))
        .open(&name)
        .unwrap();
    seg.write(8, &99u32).unwrap();
    assert!(matches!(
        Receiver::open(&name),
        Err(ChannelError::IncompatibleVersion {
            found: 99,
            expected: 3
        })
    ));
    drop(tx);
    // A segment that is not a channel.
    let other = channel_name("other");
    let _seg = ipcraft_shm::Segment::create(&other, 8192).unwrap();
    assert!(matches!(Receiver::open(&other), Err(ChannelError::Shm(_))));
    assert!(matches!(
        Receiver::open(&channel_name("missing")),
        Err(ChannelError::Shm(_))
    ));
}

#[test]
fn a_named_channel_others_may_write_or_another_user_owns_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let name = channel_name("strict");
    let path = format!("/dev/shm{name}");
    let mut tx = Sender::create(&name, 4096).unwrap();
    let insecure = |r: Result<Receiver, ChannelError>| {
        matches!(r, Err(ChannelError::Shm(ipcraft_shm::Error::Untrusted(_))))
    };
    // Writable by everyone, as a segment pre-created by someone else with mode 0666 is.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(insecure(Receiver::open(&name)));
    assert!(matches!(
        Sender::open(&name),
        Err(ChannelError::Shm(ipcraft_shm::Error::Untrusted(_)))
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert!(insecure(Receiver::open(&name)), "group-writable");
    // Owned by another user (only possible to arrange as root; real cross-user tests run
    // two users).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert!(insecure(Receiver::open(&name)), "owned by another user");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    }
    // Ours and 0600: accepted.
    let mut rx = Receiver::open(&name).unwrap();
    tx.send(b"trusted").unwrap();
    assert_eq!(rx.recv().unwrap(), b"trusted");
}

#[test]
fn bad_capacity_and_oversized_messages_are_typed_errors() {
    assert!(matches!(
        Sender::anonymous(0),
        Err(ChannelError::BadCapacity(0))
    ));
    assert!(matches!(
        Sender::anonymous(1000),
        Err(ChannelError::BadCapacity(1000))
    ));
    let (mut tx, _fd) = Sender::anonymous(64).unwrap();
    assert!(matches!(
        tx.send(&[0; 57]),
        Err(ChannelError::TooLarge { len: 57, max: 56 })
    ));
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    assert!(matches!(
        Receiver::from_fd(file.into()),
        Err(ChannelError::Shm(_))
    ));
}

#[test]
fn a_named_mpsc_channel_takes_its_senders_and_one_receiver() {
    let name = channel_name("mpsc");
    let mut rx = Receiver::create_mpsc(&name, 2, 4096).unwrap();
    assert_eq!(rx.max_senders(), 2);
    let mut a = Sender::open(&name).unwrap();
    let mut b = Sender::open(&name).unwrap();
    assert_ne!(a.slot(), b.slot());
    assert!(matches!(
        Sender::open(&name),
        Err(ChannelError::SendersFull { max: 2 })
    ));
    assert!(matches!(
        Receiver::open(&name),
        Err(ChannelError::ReceiverTaken)
    ));
    a.send(b"from a").unwrap();
    b.send(b"from b").unwrap();
    a.send(b"a again").unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let slot = rx.recv_slot().unwrap();
        got.push((slot.sender(), slot.to_vec()));
        slot.release();
    }
    // Per sender, in order; across senders, round robin.
    let of = |s: usize| -> Vec<Vec<u8>> {
        got.iter()
            .filter(|g| g.0 == s)
            .map(|g| g.1.clone())
            .collect()
    };
    assert_eq!(of(a.slot()), vec![b"from a".to_vec(), b"a again".to_vec()]);
    assert_eq!(of(b.slot()), vec![b"from b".to_vec()]);
    assert!(matches!(rx.try_recv(), Err(ChannelError::Empty)));
    drop(a);
    assert!(
        matches!(rx.try_recv(), Err(ChannelError::Empty)),
        "b is still there"
    );
    drop(b);
    assert!(matches!(rx.try_recv(), Err(ChannelError::Disconnected)));
    assert!(matches!(
        Receiver::create_mpsc(&channel_name("zero"), 0, 4096),
        Err(ChannelError::BadProducers(0))
    ));
    assert!(matches!(
        Receiver::anonymous_mpsc(65, 4096),
        Err(ChannelError::BadProducers(65))
    ));
}

#[test]
fn try_send_and_try_recv_report_full_and_empty() {
    let (mut tx, fd) = Sender::anonymous(64).unwrap();
    let mut rx = Receiver::from_fd(fd).unwrap();
    assert!(matches!(rx.try_recv(), Err(ChannelError::Empty)));
    tx.try_send(&[1; 56]).unwrap();
    assert!(matches!(tx.try_send(&[2; 8]), Err(ChannelError::Full)));
    assert_eq!(rx.try_recv().unwrap(), vec![1; 56]);
    tx.try_send(&[2; 8]).unwrap();
    let e: std::io::Error = tx.try_send(&[3; 56]).unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    drop(rx);
    assert!(matches!(
        tx.try_send(&[4; 8]),
        Err(ChannelError::Disconnected)
    ));
}

#[test]
fn recv_into_a_short_buffer_keeps_the_message() {
    let (mut tx, fd) = Sender::anonymous(4096).unwrap();
    let mut rx = Receiver::from_fd(fd).unwrap();
    tx.send(&[7; 100]).unwrap();
    tx.send(b"next").unwrap();
    let mut small = [0u8; 99];
    assert!(matches!(
        rx.recv_into(&mut small),
        Err(ChannelError::BufferTooSmall { needed: 100 })
    ));
    assert!(matches!(
        rx.recv_into_timeout(&mut small, Duration::from_millis(10)),
        Err(ChannelError::BufferTooSmall { needed: 100 })
    ));
    let mut buf = [0u8; 100];
    assert_eq!(rx.recv_into(&mut buf).unwrap(), 100);
    assert_eq!(buf, [7; 100]);
    assert_eq!(rx.recv_into(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"next");
    assert!(matches!(
        rx.recv_into_timeout(&mut buf, Duration::from_millis(10)),
        Err(ChannelError::TimedOut)
    ));
}

#[test]
fn every_blocking_call_has_a_try_form_and_a_timeout() {
    let (mut tx, fd) = Sender::anonymous(64).unwrap();
    let mut rx = Receiver::from_fd(fd).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(
        rx.try_recv_into(&mut buf),
        Err(ChannelError::Empty)
    ));
    assert!(matches!(rx.try_recv_slot(), Err(ChannelError::Empty)));
    assert!(matches!(
        rx.recv_slot_timeout(Duration::from_millis(10)),
        Err(ChannelError::TimedOut)
    ));
    let mut slot = tx.try_reserve(56).unwrap();
    slot.write_at(0, &[5; 56]);
    slot.commit();
    assert!(matches!(tx.try_reserve(8), Err(ChannelError::Full)));
    assert!(matches!(
        tx.reserve_timeout(8, Duration::from_millis(10)),
        Err(ChannelError::TimedOut)
    ));
    let slot = rx.try_recv_slot().unwrap();
    assert_eq!(slot.to_vec(), vec![5; 56]);
    slot.release();
    rx.flush();
    let mut slot = tx.reserve_timeout(8, Duration::from_secs(20)).unwrap();
    slot.write_at(0, b"12345678");
    slot.commit();
    assert_eq!(rx.try_recv_into(&mut buf).unwrap(), 8);
    assert_eq!(&buf[..8], b"12345678");
    tx.send(b"x").unwrap();
    let slot = rx.recv_slot_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(slot.to_vec(), b"x");
    slot.release();
    drop(tx);
    assert!(matches!(
        rx.try_recv_into(&mut buf),
        Err(ChannelError::Disconnected)
    ));
}

/// With several senders, a message refused for a short buffer, or a slot dropped unread,
/// is still the next one received, though another sender's messages are waiting.
#[test]
fn a_message_left_in_an_mpsc_channel_is_the_next_one_received() {
    let (mut rx, fd) = Receiver::anonymous_mpsc(2, 4096).unwrap();
    let mut a = Sender::from_fd(fd.try_clone().unwrap()).unwrap();
    let mut b = Sender::from_fd(fd).unwrap();
    for i in 0..3u8 {
        a.send(&[i; 32]).unwrap();
        b.send(&[100 + i; 8]).unwrap();
    }
    // A slot dropped without release (here at the end of each statement) stays.
    let (who, msg) = rx.recv_slot().map(|s| (s.sender(), s.to_vec())).unwrap();
    let again = rx.recv_slot().map(|s| (s.sender(), s.to_vec())).unwrap();
    assert_eq!(again, (who, msg.clone()));
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.recv_into(&mut small),
        Err(ChannelError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        rx.try_recv_into(&mut small),
        Err(ChannelError::BufferTooSmall { .. })
    ));
    assert_eq!(rx.recv().unwrap(), msg);
    // Then the round robin moves on: every message arrives once, in order per sender.
    let mut got = vec![msg];
    while let Ok(m) = rx.try_recv() {
        got.push(m);
    }
    assert_eq!(got.len(), 6);
    let from = |len: usize| {
        got.iter()
            .filter(|m| m.len() == len)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(from(32), (0..3u8).map(|i| vec![i; 32]).collect::<Vec<_>>());
    assert_eq!(
        from(8),
        (0..3u8).map(|i| vec![100 + i; 8]).collect::<Vec<_>>()
    );
}

/// The anonymous channel's memfd handed over a Unix socket (`SCM_RIGHTS`) rather than at
/// spawn: nothing named, nothing to clean up.
#[cfg(feature = "socket")]
#[test]
fn an_anonymous_channel_handed_over_a_unix_socket() {
    use ipcraft::socket::UnixStream;
    use std::os::fd::{AsFd, OwnedFd};
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = ROLES.spawn(
        "receive-over-socket",
        "",
        Stdio::from(OwnedFd::from(theirs)),
    );
    let (mut tx, fd) = Sender::anonymous(4096).unwrap();
    ours.send_with_fds(b"channel", &[fd.as_fd()]).unwrap();
    drop(fd);
    for seq in 0..10_000 {
        tx.send_timeout(&message(seq, 4096 - 8), Duration::from_secs(30))
            .unwrap();
    }
    drop(tx);
    let out = finish(child, "receive-over-socket");
    assert!(out.lines().any(|l| l == "RECEIVED 10000"), "{out}");
}

/// A peer that seals the memfd against writes (`F_SEAL_FUTURE_WRITE`, allowed while the
/// creator keeps its writable mapping) makes `Segment::from_fd` map it read-only: the
/// channel must refuse it, not crash on its first store.
#[test]
fn a_channel_memfd_sealed_against_writing_is_refused_not_a_crash() {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    for role in ["receiver", "sender"] {
        let (_keep_tx, _keep_rx, fd) = if role == "receiver" {
            let (tx, fd) = Sender::anonymous(4096).unwrap();
            (Some(tx), None, fd)
        } else {
            let (rx, fd) = Receiver::anonymous(4096).unwrap();
            (None, Some(rx), fd)
        };
        fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_FUTURE_WRITE)).unwrap();
        let child = ROLES
            .command("attach-write-sealed", role)
            .stdin(Stdio::from(fd))
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("REFUSED"),
            "{role} attaching a write-sealed memfd: {:?}, stdout: {stdout}",
            out.status
        );
    }
}
