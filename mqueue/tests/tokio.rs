//! The async message queue (feature `tokio`) between real processes, on both runtime
//! flavours, with an async or a blocking peer: priorities, backpressure, cancellation, a
//! sender killed mid-stream, and the typed errors.
//!
//! Children are this test binary re-run with `--exact child_role` and the role in the
//! environment; the role's argument starts with the peer to be: `blocking`, or async on a
//! `ct` (current-thread) or `mt` (multi-thread) runtime. Children report on stdout in marker
//! lines. Every child is killed and reaped on drop ([`Reaper`]) and every queue name is
//! unique and unlinked on drop ([`QName`]), so a failing test leaves nothing behind.
#![cfg(feature = "tokio")]

use ipcraft_mqueue::tokio::MessageQueue;
use ipcraft_mqueue::{Access, Attributes, Error, MQ_PRIO_MAX, unlink};
use ipcraft_testkit::{Roles, finish, kill, unique_name, wait_for};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::Duration;
use tokio::time::timeout;

const ROLES: Roles = Roles::new("IPCRAFT_MQ_TOKIO_TEST_ROLE", "IPCRAFT_MQ_TOKIO_TEST_ARG");
/// Generous: the machine is shared and has 2 cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Small queues, so that senders often find them full (within the default `msg_max` of 10).
const ATTRS: Attributes = Attributes::new(4, 64);

/// A runtime of the flavour `ct` (current thread) or `mt` (multi-thread, two workers).
fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "ct" => tokio::runtime::Builder::new_current_thread(),
        "mt" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        other => panic!("unknown runtime flavour {other}"),
    }
    .enable_all()
    .build()
    .unwrap()
}

/// A unique queue name, unlinked on drop whatever is there.
struct QName(String);

impl QName {
    fn new(tag: &str) -> Self {
        Self(unique_name("/ipcraft-tokio-test", tag))
    }
}

impl Drop for QName {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

/// Kills and reaps the child on drop unless it was finished.
struct Reaper(Option<Child>);

impl Reaper {
    fn spawn(role: &str, arg: &str) -> Self {
        Self(Some(ROLES.spawn(role, arg, Stdio::null())))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn finish(mut self, what: &str) -> String {
        finish(self.0.take().unwrap(), what)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Message `seq` at `priority`: both numbers, then a pattern of a length that varies with
/// `seq`, so a torn or mixed-up message shows.
fn message(seq: u32, priority: u32) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend_from_slice(&priority.to_le_bytes());
    m.extend((0..seq as usize % 57).map(|j| (seq as usize ^ j) as u8));
    m
}

/// The sequence number and priority of a message, checked to be whole.
fn parse(msg: &[u8], priority: u32) -> u32 {
    let seq = u32::from_le_bytes(msg[..4].try_into().unwrap());
    assert_eq!(
        msg,
        message(seq, priority),
        "message {seq} whole, at its priority"
    );
    seq
}

/// Either kind of handle, to run a child's part blocking or async.
enum Peer {
    Blocking,
    Async(tokio::runtime::Runtime),
}

impl Peer {
    fn new(peer: &str) -> Self {
        match peer {
            "blocking" => Self::Blocking,
            flavor => Self::Async(runtime(flavor)),
        }
    }

    fn send(&self, name: &str, msgs: impl IntoIterator<Item = (Vec<u8>, u32)>) {
        match self {
            Self::Blocking => {
                let q = ipcraft_mqueue::MessageQueue::open(name, Access::WriteOnly).unwrap();
                msgs.into_iter().for_each(|(m, p)| q.send(&m, p).unwrap());
            }
            Self::Async(rt) => rt.block_on(async {
                let q = MessageQueue::open(name, Access::WriteOnly).unwrap();
                for (m, p) in msgs {
                    q.send(&m, p).await.unwrap();
                }
            }),
        }
    }
}

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    let args: Vec<&str> = arg.split(' ').collect();
    match (role.as_str(), &args[..]) {
        // A batch at mixed priorities, then every message from `to` back to `from`.
        ("peer", [peer, to, from]) => {
            let peer = Peer::new(peer);
            let batch = [(b"low".to_vec(), 1), (b"high".to_vec(), 9)];
            peer.send(
                from,
                batch
                    .into_iter()
                    .chain([(b"mid".to_vec(), 5), (b"low, later".to_vec(), 1)]),
            );
            println!("SENT");
            match &peer {
                Peer::Blocking => {
                    let rx = ipcraft_mqueue::MessageQueue::open(to, Access::ReadOnly).unwrap();
                    let tx = ipcraft_mqueue::MessageQueue::open(from, Access::WriteOnly).unwrap();
                    loop {
                        let (m, p) = rx.recv_vec().unwrap();
                        if m == b"END" {
                            break;
                        }
                        tx.send(&m, p).unwrap();
                    }
                }
                Peer::Async(rt) => rt.block_on(async {
                    let rx = MessageQueue::open(to, Access::ReadOnly).unwrap();
                    let tx = MessageQueue::open(from, Access::WriteOnly).unwrap();
                    loop {
                        let (m, p) = rx.recv_vec().await.unwrap();
                        if m == b"END" {
                            break;
                        }
                        tx.send(&m, p).await.unwrap();
                    }
                }),
            }
        }
        // Each of the first `n` messages after a word on `go`; then `n` more at full speed.
        ("paced", ["blocking", data, go, n]) => {
            let n: u32 = n.parse().unwrap();
            let go = ipcraft_mqueue::MessageQueue::open(go, Access::ReadOnly).unwrap();
            let tx = ipcraft_mqueue::MessageQueue::open(data, Access::WriteOnly).unwrap();
            for seq in 0..n {
                go.recv_vec().unwrap();
                tx.send(&message(seq, seq % 3), seq % 3).unwrap();
            }
            for seq in n..2 * n {
                tx.send(&message(seq, seq % 3), seq % 3).unwrap();
            }
        }
        // Messages at one priority, as fast as the queue takes them, until killed.
        ("flood", ["blocking", data]) => {
            let tx = ipcraft_mqueue::MessageQueue::open(data, Access::WriteOnly).unwrap();
            for seq in 0.. {
                tx.send(&message(seq, 2), 2).unwrap();
                if seq == 100 {
                    println!("FLOODING");
                }
            }
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Four tests of `$body(flavor, peer)`: each runtime flavour, with a blocking and an async
/// peer process.
macro_rules! both_flavours_both_peers {
    ($body:ident) => {
        mod $body {
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn current_thread_with_blocking_peer() {
                super::$body("ct", "blocking");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn current_thread_with_async_peer() {
                super::$body("ct", "ct");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn multi_thread_with_blocking_peer() {
                super::$body("mt", "blocking");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn multi_thread_with_async_peer() {
                super::$body("mt", "mt");
            }
        }
    };
}

both_flavours_both_peers!(priorities_and_backpressure_with_a_child);

/// The child sends a batch at mixed priorities, which we receive highest first; then we send
/// 600 messages at four priorities through a queue of 4 (so both sides often find it full
/// or empty) and the child sends each back: every one arrives once, and in order within its
/// priority.
fn priorities_and_backpressure_with_a_child(flavor: &str, peer: &str) {
    const N: u32 = 600;
    let (to, from) = (QName::new("to"), QName::new("from"));
    runtime(flavor).block_on(async {
        let tx = MessageQueue::create(&to.0, ATTRS).unwrap();
        let rx = MessageQueue::create(&from.0, ATTRS).unwrap();
        let mut child = Reaper::spawn("peer", &format!("{peer} {} {}", to.0, from.0));
        wait_for(child.child(), "SENT");
        for (msg, prio) in [
            (&b"high"[..], 9),
            (b"mid", 5),
            (b"low", 1),
            (b"low, later", 1),
        ] {
            let got = timeout(PEER_TIMEOUT, rx.recv_vec()).await.unwrap().unwrap();
            assert_eq!(got, (msg.to_vec(), prio));
        }
        let send = async {
            for seq in 0..N {
                tx.send(&message(seq, seq % 4), seq % 4).await.unwrap();
            }
            // Lowest priority and last: the child takes it after everything above.
            tx.send(b"END", 0).await.unwrap();
        };
        let recv = async {
            let mut last = [None::<u32>; 4];
            let mut buf = vec![0; ATTRS.max_message_size];
            for _ in 0..N {
                let (len, prio) = rx.recv(&mut buf).await.unwrap();
                let seq = parse(&buf[..len], prio);
                assert_eq!(seq % 4, prio);
                let last = &mut last[prio as usize];
                assert!(
                    last.is_none_or(|l| l < seq),
                    "{seq} after {last:?}: once, in order"
                );
                *last = Some(seq);
            }
            // Every priority ended on its last message, so none was lost.
            assert_eq!(last, [N - 4, N - 3, N - 2, N - 1].map(Some));
        };
        timeout(PEER_TIMEOUT, async { tokio::join!(send, recv) })
            .await
            .expect("the exchange never hangs");
        child.finish("peer");
    });
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn recv_cancelled_thousands_of_times_loses_no_message_current_thread() {
    recv_cancelled_thousands_of_times("ct");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn recv_cancelled_thousands_of_times_loses_no_message_multi_thread() {
    recv_cancelled_thousands_of_times("mt");
}

/// A `select!` loop drops a pending `recv` each time another branch wins. The child sends
/// each of the first `PACED` messages only after a word we give from the losing branch, so
/// a `recv` is pending and dropped before each of them arrives (deterministically, without
/// timing); then it sends as many again at full speed, at three priorities, into a queue of
/// 4, while we keep cancelling. Every message arrives exactly once, in order within its
/// priority.
fn recv_cancelled_thousands_of_times(flavor: &str) {
    const PACED: u32 = 2000;
    let (data, go) = (QName::new("data"), QName::new("go"));
    runtime(flavor).block_on(async {
        let rx = MessageQueue::create(&data.0, ATTRS).unwrap();
        let go_tx = MessageQueue::create(&go.0, ATTRS).unwrap();
        let child = Reaper::spawn("paced", &format!("blocking {} {} {PACED}", data.0, go.0));
        let (mut received, mut go_given, mut cancels) = (0u32, 0u32, 0u64);
        let mut last = [None::<u32>; 3];
        let mut buf = vec![0; ATTRS.max_message_size];
        let exchange = async {
            while received < 2 * PACED {
                tokio::select! {
                    biased;
                    got = rx.recv(&mut buf) => {
                        let (len, prio) = got.unwrap();
                        let seq = parse(&buf[..len], prio);
                        let last = &mut last[prio as usize];
                        assert!(last.is_none_or(|l| l < seq), "{seq} after {last:?}");
                        *last = Some(seq);
                        received += 1;
                    }
                    () = tokio::task::yield_now() => {
                        cancels += 1;
                        if go_given == received && received < PACED {
                            go_tx.send(b"", 0).await.unwrap();
                            go_given += 1;
                        }
                    }
                }
            }
        };
        timeout(PEER_TIMEOUT * 2, exchange)
            .await
            .expect("the exchange never hangs");
        // Each priority ended on its last message, so none was lost.
        let last_of = |p: u32| (0..2 * PACED).rev().find(|s| s % 3 == p);
        assert_eq!(last, [last_of(0), last_of(1), last_of(2)]);
        assert!(cancels >= u64::from(PACED), "{cancels} cancellations");
        assert!(
            matches!(rx.try_recv(&mut buf), Err(Error::Empty)),
            "nothing more"
        );
        println!("{cancels} receives cancelled");
        child.finish("paced sender");
    });
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn sender_killed_mid_stream_leaves_whole_messages_and_the_receiver_times_out() {
    for flavor in ["ct", "mt"] {
        let data = QName::new("flood");
        runtime(flavor).block_on(async {
            let rx = MessageQueue::create(&data.0, ATTRS).unwrap();
            let mut child = Reaper::spawn("flood", &format!("blocking {}", data.0));
            let mut buf = vec![0; ATTRS.max_message_size];
            let mut next = 0;
            let mut expect_next = |len: usize, prio: u32, buf: &[u8]| {
                assert_eq!(parse(&buf[..len], prio), next, "whole, in order, none lost");
                next += 1;
            };
            // Receive while the child is killed, most likely blocked in mq_send on a full
            // queue.
            let mut killer = tokio::task::spawn_blocking(move || {
                wait_for(child.child(), "FLOODING");
                assert_eq!(kill(child.child()).signal(), Some(9));
            });
            let receive = async {
                loop {
                    tokio::select! {
                        got = rx.recv(&mut buf) => {
                            let (len, prio) = got.unwrap();
                            expect_next(len, prio, &buf);
                        }
                        killed = &mut killer => {
                            killed.unwrap();
                            break;
                        }
                    }
                }
                // What the child sent before it died is there, whole.
                loop {
                    match rx.try_recv(&mut buf) {
                        Ok((len, prio)) => expect_next(len, prio, &buf),
                        Err(Error::Empty) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                // Then an awaiting receive waits, as the blocking one does: bounded by a
                // timeout, it gives up (the blocking `recv_timeout` says TimedOut).
                let wait = Duration::from_millis(100);
                assert!(timeout(wait, rx.recv(&mut buf)).await.is_err());
                assert!(matches!(
                    rx.get_ref().recv_timeout(&mut buf, wait),
                    Err(Error::TimedOut { op: "recv" })
                ));
            };
            timeout(PEER_TIMEOUT, receive).await.expect("never a hang");
            assert!(next > 100, "received {next}");
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn errors_are_the_blocking_ones_and_conversions_round_trip() {
    let name = QName::new("errors");
    runtime("ct").block_on(async {
        let q = MessageQueue::create(&name.0, ATTRS).unwrap();
        let nonblocking = |fd: &MessageQueue| {
            let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap());
            flags.contains(OFlag::O_NONBLOCK)
        };
        assert!(nonblocking(&q) && q.owns_name() && q.name() == Some(&*name.0));
        assert!(matches!(
            q.send(&[0; 65], 0).await,
            Err(Error::MessageTooLarge { len: 65, max: 64 })
        ));
        assert!(matches!(
            q.send(b"x", MQ_PRIO_MAX).await,
            Err(Error::PriorityTooHigh { .. })
        ));
        assert!(matches!(
            q.recv(&mut [0; 10]).await,
            Err(Error::BufferTooSmall {
                len: 10,
                needed: 64
            })
        ));
        assert!(matches!(q.try_recv(&mut [0; 64]), Err(Error::Empty)));
        assert!(matches!(
            MessageQueue::create("no-slash", ATTRS),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            MessageQueue::create(&name.0, Attributes::new(0, 64)),
            Err(Error::InvalidAttributes {
                field: "max_messages",
                value: 0
            })
        ));
        assert!(matches!(
            MessageQueue::create(&name.0, ATTRS),
            Err(Error::AlreadyExists { .. })
        ));
        for i in 0..4 {
            q.try_send(b"fill", i).unwrap();
        }
        assert!(matches!(q.try_send(b"more", 0), Err(Error::Full)));
        let short = Duration::from_millis(50);
        assert!(
            timeout(short, q.send(b"more", 0)).await.is_err(),
            "awaits room"
        );
        assert_eq!(
            q.status().unwrap().current_messages,
            4,
            "the dropped send sent nothing"
        );

        // A handle opened for the other direction fails at once, as the blocking one does,
        // even on a full queue (for sending) or an empty one (for receiving).
        let reader = MessageQueue::open(&name.0, Access::ReadOnly).unwrap();
        let err = timeout(PEER_TIMEOUT, reader.send(b"x", 0))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::errno::Errno::EBADF), "{err}");
        let writer = MessageQueue::open(&name.0, Access::WriteOnly).unwrap();
        while q.try_recv(&mut [0; 64]).is_ok() {}
        let err = timeout(PEER_TIMEOUT, writer.recv_vec())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.errno(), Some(nix::errno::Errno::EBADF), "{err}");

        // Back to a blocking handle, and in again.
        let blocking = q.into_std().unwrap();
        assert!(blocking.owns_name());
        let q = MessageQueue::from_std(blocking).unwrap();
        writer.send(b"again", 3).await.unwrap();
        assert_eq!(q.recv_vec().await.unwrap(), (b"again".to_vec(), 3));
        let blocking = q.into_std().unwrap();
        let flags = OFlag::from_bits_retain(fcntl(&blocking, FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK), "blocking again");
    });
}
