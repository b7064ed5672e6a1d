//! Typed messages on the shared-memory channel between real processes: round trips of
//! property-generated values (plain data and serde, SPSC and MPSC, blocking and async),
//! types checked at attach, garbage from an untyped peer, oversized messages.
#![cfg(all(feature = "shm", feature = "sync"))]

use ipcraft::channel::{self as untyped, ChannelError};
use ipcraft::typed::channel::{Receiver, Sender};
use ipcraft::typed::zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};
use ipcraft::typed::{Encoding, Message, TypedError};
use ipcraft_testkit::{Roles, finish, unique_name, wait_for_prefix};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_TYPED_TEST_ROLE", "IPCRAFT_TYPED_TEST_ARG");
const CAPACITY: usize = 1 << 14;
/// Every wait ends by this: a hang is a failure, not a stuck run.
const LIMIT: Duration = Duration::from_secs(60);
/// Values each sender of the MPSC tests sends.
const SEQUENCE: usize = 300;

/// Plain data: integers and arrays, no padding.
#[derive(Debug, Clone, PartialEq, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
struct Reading {
    stamp: u64,
    sensor: u32,
    kind: u16,
    level: i16,
    samples: [i32; 6],
}
ipcraft::message!(Reading = "test::Reading", schema 1);

/// What an older build called `test::Reading`: another layout under the same name.
#[derive(Debug, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
struct OldReading {
    stamp: u64,
    sensor: u32,
    kind: u32,
}
ipcraft::message!(OldReading = "test::Reading", schema 1);

/// A plain type larger than the test channels take.
#[derive(Debug, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
struct Huge([u64; 4096]);
ipcraft::message!(Huge = "test::Huge");

fn reading() -> impl Strategy<Value = Reading> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u16>(),
        any::<i16>(),
        any::<[i32; 6]>(),
    )
        .prop_map(|(stamp, sensor, kind, level, samples)| Reading {
            stamp,
            sensor,
            kind,
            level,
            samples,
        })
}

/// The first `n` values of `strategy` from proptest's deterministic generator: the same in
/// every process, so a child and its parent agree on what is sent without sending it twice.
fn sequence<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

fn is_disconnected(e: &TypedError) -> bool {
    matches!(e, TypedError::Channel(ChannelError::Disconnected))
}

#[cfg(feature = "serde")]
mod serde_types {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A zero-sized type.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Marker;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Inner {
        A,
        B(u8),
        C { x: i128, y: [u16; 3], unit: () },
    }

    /// Nested enums, strings, vectors, maps, zero-sized types.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Event {
        Empty,
        Zst(Marker),
        Text { name: String, tags: Vec<String> },
        Map(BTreeMap<String, Vec<Inner>>),
        Pair(i64, Option<Inner>, Vec<Marker>),
        Bytes(Vec<u8>),
    }
    ipcraft::message!(Event = "test::Event", schema 7);

    /// A type whose postcard bytes an untyped peer writes by hand: id (varint), text
    /// (length varint, bytes).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Note {
        pub id: u32,
        pub text: String,
    }
    ipcraft::message!(Note = "test::Note");

    pub fn inner() -> impl Strategy<Value = Inner> {
        prop_oneof![
            Just(Inner::A),
            any::<u8>().prop_map(Inner::B),
            (any::<i128>(), any::<[u16; 3]>()).prop_map(|(x, y)| Inner::C { x, y, unit: () }),
        ]
    }

    pub fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Empty),
            Just(Event::Zst(Marker)),
            (".{0,40}", prop::collection::vec(".{0,12}", 0..6))
                .prop_map(|(name, tags)| Event::Text { name, tags }),
            prop::collection::btree_map(".{0,8}", prop::collection::vec(inner(), 0..4), 0..5)
                .prop_map(Event::Map),
            (
                any::<i64>(),
                prop::option::of(inner()),
                prop::collection::vec(Just(Marker), 0..10)
            )
                .prop_map(|(a, b, c)| Event::Pair(a, b, c)),
            prop::collection::vec(any::<u8>(), 0..2000).prop_map(Event::Bytes),
        ]
    }
}
#[cfg(feature = "serde")]
use ipcraft::typed::Serde;
#[cfg(feature = "serde")]
use serde_types::*;

/// Receive `T`s on stdin's channel and send each back on the named channel `back`, until
/// the parent closes its sender.
fn echo<T: Message, C: ipcraft::typed::Codec<T>>(back: &str) {
    let mut rx = Receiver::<T, C>::from_fd(stdin_fd()).unwrap();
    let mut tx = Sender::<T, C>::open(back).unwrap();
    println!("READY");
    loop {
        match rx.recv_timeout(LIMIT) {
            Ok(v) => tx.send_timeout(&v, LIMIT).unwrap(),
            Err(e) if is_disconnected(&e) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "echo-plain" => echo::<Reading, ipcraft::typed::Plain>(&arg),
        "echo-slices" => {
            let mut rx = Receiver::<Reading>::from_fd(stdin_fd()).unwrap();
            let mut tx = Sender::<Reading>::open(&arg).unwrap();
            println!("READY");
            loop {
                match rx.recv_vec_timeout(LIMIT) {
                    Ok(v) => tx.send_slice_timeout(&v, LIMIT).unwrap(),
                    Err(e) if is_disconnected(&e) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        #[cfg(feature = "serde")]
        "echo-serde" => echo::<Event, Serde>(&arg),
        #[cfg(all(feature = "serde", feature = "tokio"))]
        "echo-serde-async" => {
            use ipcraft::typed::channel::tokio as typed_async;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut rx = typed_async::Receiver::<Event, Serde>::from_fd(stdin_fd()).unwrap();
                let mut tx = typed_async::Sender::<Event, Serde>::open(&arg).unwrap();
                println!("READY");
                loop {
                    match tokio::time::timeout(LIMIT, rx.recv()).await.unwrap() {
                        Ok(v) => tx.send(&v).await.unwrap(),
                        Err(e) if is_disconnected(&e) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        "send-plain" => {
            let mut tx = Sender::<Reading>::from_fd(stdin_fd()).unwrap();
            for v in sequence(reading(), SEQUENCE) {
                tx.send_timeout(&v, LIMIT).unwrap();
            }
            println!("SENT");
        }
        #[cfg(feature = "serde")]
        "send-serde-named" => {
            let mut tx = Sender::<Event, Serde>::open(&arg).unwrap();
            for v in sequence(event(), SEQUENCE) {
                tx.send_timeout(&v, LIMIT).unwrap();
            }
            println!("SENT");
        }
        "attach-wrong" => {
            // The parent made a channel of `Reading`; this build's `test::Reading` is
            // another layout.
            let r = match arg.as_str() {
                "receiver" => Receiver::<OldReading>::from_fd(stdin_fd()).map(drop),
                "sender" => Sender::<OldReading>::from_fd(stdin_fd()).map(drop),
                _ => Receiver::<OldReading>::open(&arg).map(drop),
            };
            match r {
                Ok(()) => println!("ATTACHED"),
                Err(TypedError::TypeMismatch { expected, found }) => {
                    println!("REFUSED expected {expected} found {found}")
                }
                Err(e) => println!("OTHER {e}"),
            }
        }
        "garbage" => {
            // An untyped peer: bytes that are not the type, then one message that is.
            let mut tx = untyped::Sender::from_fd(stdin_fd()).unwrap();
            let good: Vec<u8> = match arg.as_str() {
                // A `Note { id: 5, text: "ok" }` in postcard, by hand.
                "serde" => vec![5, 2, b'o', b'k'],
                _ => sequence(reading(), 1)[0].as_bytes().to_vec(),
            };
            for bad in garbage() {
                tx.send_timeout(&bad, LIMIT).unwrap();
                tx.send_timeout(&good, LIMIT).unwrap();
            }
            println!("SENT");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Messages that are neither a `Reading` (wrong length) nor a `Note`.
fn garbage() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0xff; 3],
        vec![0x80; 10],
        vec![5, 200, b'o', b'k'],
        vec![5, 2, 0xff, 0xfe],
        vec![5, 2, b'o', b'k', 0],
        vec![0xab; 41],
    ]
}

/// The parent's side of an echo test: send each value of `values` to an echo child and
/// check that the same value comes back.
fn with_echo<T, C, R>(
    role: &str,
    check: impl FnOnce(&RefCell<Sender<T, C>>, &RefCell<Receiver<T, C>>) -> R,
) -> R
where
    T: Message,
    C: ipcraft::typed::Codec<T>,
{
    let back = unique_name("/ipcraft-typed-test", "back");
    let rx = Receiver::<T, C>::create(&back, CAPACITY).unwrap();
    let (tx, fd) = Sender::<T, C>::anonymous(CAPACITY).unwrap();
    let mut child = ROLES.spawn(role, &back, Stdio::from(fd));
    wait_for_prefix(&mut child, "READY");
    let (tx, rx) = (RefCell::new(tx), RefCell::new(rx));
    let r = check(&tx, &rx);
    drop(tx);
    finish(child, role);
    r
}

#[test]
fn plain_values_round_trip_across_processes() {
    with_echo::<Reading, ipcraft::typed::Plain, _>("echo-plain", |tx, rx| {
        runner(256)
            .run(&reading(), |v| {
                tx.borrow_mut().send_timeout(&v, LIMIT).unwrap();
                prop_assert_eq!(rx.borrow_mut().recv_timeout(LIMIT).unwrap(), v);
                Ok(())
            })
            .unwrap();
    });
}

#[test]
fn plain_slices_round_trip_across_processes() {
    let back = unique_name("/ipcraft-typed-test", "slices");
    let mut rx = Receiver::<Reading>::create(&back, CAPACITY).unwrap();
    let (mut tx, fd) = Sender::<Reading>::anonymous(CAPACITY).unwrap();
    let mut child = ROLES.spawn("echo-slices", &back, Stdio::from(fd));
    wait_for_prefix(&mut child, "READY");
    let max = tx.max_message_len() / size_of::<Reading>();
    let (tx_cell, rx_cell) = (RefCell::new(&mut tx), RefCell::new(&mut rx));
    runner(128)
        .run(&prop::collection::vec(reading(), 0..=max), |v| {
            tx_cell.borrow_mut().send_slice_timeout(&v, LIMIT).unwrap();
            let mut buf = vec![Reading::new_zeroed(); max];
            let n = rx_cell
                .borrow_mut()
                .recv_into_slice_timeout(&mut buf, LIMIT)
                .unwrap();
            prop_assert_eq!(&buf[..n], &v[..]);
            Ok(())
        })
        .unwrap();
    drop(tx);
    finish(child, "echo-slices");
}

#[cfg(feature = "serde")]
#[test]
fn serde_values_round_trip_across_processes() {
    with_echo::<Event, Serde, _>("echo-serde", |tx, rx| {
        runner(256)
            .run(&event(), |v| {
                tx.borrow_mut().send_timeout(&v, LIMIT).unwrap();
                prop_assert_eq!(rx.borrow_mut().recv_timeout(LIMIT).unwrap(), v);
                Ok(())
            })
            .unwrap();
    });
}

#[cfg(all(feature = "serde", feature = "tokio"))]
#[test]
fn serde_values_round_trip_through_an_async_child() {
    with_echo::<Event, Serde, _>("echo-serde-async", |tx, rx| {
        runner(128)
            .run(&event(), |v| {
                tx.borrow_mut().send_timeout(&v, LIMIT).unwrap();
                prop_assert_eq!(rx.borrow_mut().recv_timeout(LIMIT).unwrap(), v);
                Ok(())
            })
            .unwrap();
    });
}

/// The parent async (both runtime flavours' worth: a current-thread runtime), the child
/// blocking.
#[cfg(feature = "tokio")]
#[test]
fn plain_values_round_trip_from_an_async_parent() {
    use ipcraft::typed::channel::tokio as typed_async;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let values = sequence(reading(), 2000);
    rt.block_on(async {
        let back = unique_name("/ipcraft-typed-test", "async");
        let mut rx = typed_async::Receiver::<Reading>::create(&back, CAPACITY).unwrap();
        let (mut tx, fd) = typed_async::Sender::<Reading>::anonymous(CAPACITY).unwrap();
        let mut child = ROLES.spawn("echo-plain", &back, Stdio::from(fd));
        wait_for_prefix(&mut child, "READY");
        // Several in flight at once: sends and receives interleave in one task.
        let mut got = Vec::new();
        for chunk in values.chunks(50) {
            for v in chunk {
                tx.send(v).await.unwrap();
            }
            for _ in chunk {
                got.push(
                    tokio::time::timeout(LIMIT, rx.recv())
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
        }
        assert_eq!(got, values);
        drop(tx);
        finish(child, "echo-plain");
    });
}

#[test]
fn mpsc_plain_senders_each_arrive_in_order() {
    let (mut rx, fd) = Receiver::<Reading>::anonymous_mpsc(3, CAPACITY).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let fd = fd.try_clone().unwrap();
            ROLES.spawn("send-plain", "", Stdio::from(fd))
        })
        .collect();
    drop(fd);
    let want = sequence(reading(), SEQUENCE);
    // Per slot: a child that finished and was received in full frees its slot, which a
    // child started later may claim; its values then follow the first one's.
    let mut next = [0usize; 3];
    for _ in 0..3 * SEQUENCE {
        let (from, v) = rx
            .recv_from_deadline(ipcraft::ipcraft_core::Deadline::after(LIMIT))
            .unwrap();
        let at = next[from] % SEQUENCE;
        assert_eq!(v, want[at], "sender slot {from}, value {at}");
        next[from] += 1;
    }
    assert!(next.iter().all(|n| n % SEQUENCE == 0), "{next:?}");
    for c in children {
        finish(c, "send-plain");
    }
    // A reused slot leaves another never claimed: no more senders are coming.
    rx.get_mut()
        .set_claim_deadline(ipcraft::ipcraft_core::Deadline::after(Duration::ZERO));
    let e = rx.recv_timeout(LIMIT).unwrap_err();
    assert!(is_disconnected(&e), "{e}");
}

#[cfg(feature = "serde")]
#[test]
fn mpsc_serde_senders_of_a_named_channel_each_arrive_in_order() {
    let name = unique_name("/ipcraft-typed-test", "mpsc");
    let mut rx = Receiver::<Event, Serde>::create_mpsc(&name, 2, CAPACITY).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| ROLES.spawn("send-serde-named", &name, Stdio::null()))
        .collect();
    let want = sequence(event(), SEQUENCE);
    let mut next = [0usize; 2];
    for _ in 0..2 * SEQUENCE {
        let (from, v) = rx
            .recv_from_deadline(ipcraft::ipcraft_core::Deadline::after(LIMIT))
            .unwrap();
        let at = next[from] % SEQUENCE;
        assert_eq!(v, want[at], "sender slot {from}, value {at}");
        next[from] += 1;
    }
    assert!(next.iter().all(|n| n % SEQUENCE == 0), "{next:?}");
    for c in children {
        finish(c, "send-serde-named");
    }
}

#[test]
fn a_peer_of_another_type_is_refused_at_attach_across_processes() {
    for who in ["receiver", "sender"] {
        // A receiver-made channel for the sender case, a sender-made one for the receiver.
        let (fd, mut keep_tx, mut keep_rx) = if who == "receiver" {
            let (tx, fd) = Sender::<Reading>::anonymous(CAPACITY).unwrap();
            (fd, Some(tx), None)
        } else {
            let (rx, fd) = Receiver::<Reading>::anonymous(CAPACITY).unwrap();
            (fd, None, Some(rx))
        };
        let peer_fd = fd.try_clone().unwrap();
        let child = ROLES.spawn("attach-wrong", who, Stdio::from(peer_fd));
        let out = finish(child, "attach-wrong");
        let line = out
            .lines()
            .find(|l| l.starts_with("REFUSED"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.contains("`test::Reading` (plain data, 16 bytes"),
            "{line}"
        );
        assert!(
            line.contains("`test::Reading` (plain data, 40 bytes"),
            "{line}"
        );
        // The refused end left no trace: the right type still attaches, and messages flow.
        if let Some(tx) = keep_tx.as_mut() {
            let mut rx = Receiver::<Reading>::from_fd(fd).unwrap();
            assert!(
                !rx.get_ref().took_over(),
                "the refused receiver never took the role"
            );
            let v = sequence(reading(), 1).remove(0);
            tx.send(&v).unwrap();
            assert_eq!(rx.recv_timeout(LIMIT).unwrap(), v);
        } else if let Some(rx) = keep_rx.as_mut() {
            let mut tx = Sender::<Reading>::from_fd(fd).unwrap();
            let v = sequence(reading(), 1).remove(0);
            tx.send(&v).unwrap();
            assert_eq!(rx.recv_timeout(LIMIT).unwrap(), v);
        }
    }
}

#[test]
fn a_named_channel_of_another_type_is_refused_across_processes() {
    let name = unique_name("/ipcraft-typed-test", "wrong");
    let _tx = Sender::<Reading>::create(&name, CAPACITY).unwrap();
    let child = ROLES.spawn("attach-wrong", &name, Stdio::null());
    let out = finish(child, "attach-wrong");
    assert!(out.lines().any(|l| l.starts_with("REFUSED")), "{out}");
}

fn mismatch<T>(r: Result<T, TypedError>) -> (ipcraft::typed::TypeInfo, ipcraft::typed::TypeInfo) {
    match r {
        Err(TypedError::TypeMismatch { expected, found }) => (*expected, *found),
        Err(e) => panic!("not a mismatch: {e}"),
        Ok(_) => panic!("attached"),
    }
}

#[test]
fn every_kind_of_channel_refuses_another_type_at_attach() {
    // Anonymous SPSC, both directions.
    let (_tx, fd) = Sender::<Reading>::anonymous(CAPACITY).unwrap();
    let (expected, found) = mismatch(Receiver::<u64>::from_fd(fd));
    assert_eq!(
        (expected.name.as_str(), found.name.as_str()),
        ("u64", "test::Reading")
    );
    assert_eq!((found.size, found.align, found.schema), (40, 8, 1));
    // Anonymous MPSC: every sender is checked.
    let (_rx, fd) = Receiver::<Reading>::anonymous_mpsc(4, CAPACITY).unwrap();
    mismatch(Sender::<OldReading>::from_fd(fd.try_clone().unwrap()));
    mismatch(Sender::<u32>::from_fd(fd.try_clone().unwrap()));
    Sender::<Reading>::from_fd(fd).unwrap();
    // Named, both directions and MPSC.
    let name = unique_name("/ipcraft-typed-test", "kinds");
    let _rx = Receiver::<Reading>::create_mpsc(&name, 2, CAPACITY).unwrap();
    mismatch(Sender::<i64>::open(&name));
    let _ok = Sender::<Reading>::open(&name).unwrap();
    let name = unique_name("/ipcraft-typed-test", "kinds");
    let _tx = Sender::<Reading>::create(&name, CAPACITY).unwrap();
    mismatch(Receiver::<OldReading>::open(&name));
    let _ok = Receiver::<Reading>::open(&name).unwrap();
    // An untyped channel: a typed end is told, not given garbage.
    let (_rx, fd) = untyped::Receiver::anonymous(CAPACITY).unwrap();
    match Sender::<Reading>::from_fd(fd) {
        Err(TypedError::Untyped { expected }) => assert_eq!(expected.name, "test::Reading"),
        r => panic!("{r:?}"),
    }
}

#[cfg(feature = "serde")]
#[test]
fn encoding_and_schema_are_part_of_the_type() {
    // The same name, plain against serde.
    let (_tx, fd) = Sender::<u64>::anonymous(CAPACITY).unwrap();
    let (expected, found) = mismatch(Receiver::<u64, Serde>::from_fd(fd));
    assert_eq!(
        (expected.encoding, found.encoding),
        (Encoding::Postcard, Encoding::Plain)
    );
    // The same name and encoding, another schema (a peer built before a field changed).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct EventV6;
    ipcraft::message!(EventV6 = "test::Event", schema 6);
    let (_rx, fd) = Receiver::<Event, Serde>::anonymous(CAPACITY).unwrap();
    let (expected, found) = mismatch(Sender::<EventV6, Serde>::from_fd(fd));
    assert_eq!((expected.schema, found.schema), (6, 7));
    let text = TypedError::TypeMismatch {
        expected: Box::new(expected),
        found: Box::new(found),
    }
    .to_string();
    assert!(
        text.contains("`test::Event` (serde/postcard, schema 7)"),
        "{text}"
    );
}

#[cfg(not(feature = "serde"))]
#[test]
fn encoding_is_part_of_the_type() {
    let (_tx, fd) = Sender::<u64>::anonymous(CAPACITY).unwrap();
    let rx = Receiver::<u64>::from_fd(fd).unwrap();
    assert_eq!(rx.type_info().encoding, Encoding::Plain);
}

/// Receive from an untyped `garbage` child: every bad message is a decode error naming the
/// type, and every good one after it arrives.
fn garbage_then_good<T: Message + PartialEq + std::fmt::Debug, C: ipcraft::typed::Codec<T>>(
    arg: &str,
    good: T,
) {
    let (mut rx, fd) = Receiver::<T, C>::anonymous(CAPACITY).unwrap();
    let child = ROLES.spawn("garbage", arg, Stdio::from(fd));
    for bad in garbage() {
        match rx.recv_timeout(LIMIT) {
            Err(TypedError::Decode { type_name, len, .. }) => {
                assert_eq!(type_name, T::NAME);
                assert_eq!(len, bad.len());
            }
            r => panic!("{bad:?} gave {r:?}"),
        }
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), good);
    }
    finish(child, "garbage");
    assert!(is_disconnected(&rx.recv_timeout(LIMIT).unwrap_err()));
}

#[test]
fn garbage_from_an_untyped_peer_is_a_decode_error_and_the_next_message_arrives() {
    garbage_then_good::<Reading, ipcraft::typed::Plain>("plain", sequence(reading(), 1).remove(0));
}

#[cfg(feature = "serde")]
#[test]
fn serde_garbage_from_an_untyped_peer_is_a_decode_error_and_the_next_message_arrives() {
    garbage_then_good::<Note, Serde>(
        "serde",
        Note {
            id: 5,
            text: "ok".into(),
        },
    );
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// Any bytes at all: a value or a decode error, never a panic, and the channel goes on.
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (mut rx, fd) = Receiver::<Reading>::anonymous(4096).unwrap();
        let mut tx = untyped::Sender::from_fd(fd).unwrap();
        tx.send(&bytes).unwrap();
        tx.send(&[7; 40]).unwrap();
        let r = rx.recv_timeout(LIMIT);
        prop_assert_eq!(r.is_ok(), bytes.len() == 40);
        prop_assert_eq!(rx.recv_timeout(LIMIT).unwrap().stamp, u64::from_le_bytes([7; 8]));
        #[cfg(feature = "serde")]
        {
            let (mut rx, fd) = Receiver::<Event, Serde>::anonymous(4096).unwrap();
            let mut tx = untyped::Sender::from_fd(fd).unwrap();
            tx.send(&bytes).unwrap();
            tx.send(&[0]).unwrap();
            match rx.recv_timeout(LIMIT) {
                Ok(_) | Err(TypedError::Decode { .. }) => {}
                Err(e) => prop_assert!(false, "{}", e),
            }
            prop_assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Event::Empty);
        }
    }
}

#[test]
fn an_oversized_message_is_refused_before_anything_is_written() {
    let (mut tx, fd) = Sender::<Huge>::anonymous(4096).unwrap();
    let mut rx = untyped::Receiver::from_fd(fd).unwrap();
    let huge = Huge::new_zeroed();
    match tx.send(&huge) {
        Err(TypedError::TooLarge {
            type_name,
            len,
            max,
        }) => {
            assert_eq!(
                (type_name, len, max),
                ("test::Huge", 32768, tx.max_message_len())
            );
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        tx.try_send(&huge),
        Err(TypedError::TooLarge { .. })
    ));
    assert!(
        matches!(rx.try_recv(), Err(ChannelError::Empty)),
        "nothing was written"
    );

    let (mut tx, fd) = Sender::<u64>::anonymous(4096).unwrap();
    let mut rx = Receiver::<u64>::from_fd(fd).unwrap();
    let too_many = vec![1u64; tx.max_message_len() / 8 + 1];
    assert!(matches!(
        tx.send_slice(&too_many),
        Err(TypedError::TooLarge { .. })
    ));
    tx.send_slice(&too_many[1..]).unwrap();
    assert_eq!(
        rx.recv_vec().unwrap(),
        &too_many[1..],
        "the largest that fits"
    );
    assert!(matches!(
        rx.try_recv(),
        Err(TypedError::Channel(ChannelError::Empty))
    ));
}

#[cfg(feature = "serde")]
#[test]
fn an_oversized_serde_message_is_refused_before_anything_is_written() {
    let (mut tx, fd) = Sender::<Event, Serde>::anonymous(4096).unwrap();
    let mut rx = Receiver::<Event, Serde>::from_fd(fd).unwrap();
    let max = tx.max_message_len();
    // Variant index (1 byte) and length (2 bytes) before the bytes.
    let fits = Event::Bytes(vec![1; max - 3]);
    let big = Event::Bytes(vec![1; max - 2]);
    assert!(matches!(tx.send(&big), Err(TypedError::TooLarge { len, .. }) if len == max + 1));
    assert!(matches!(
        rx.try_recv(),
        Err(TypedError::Channel(ChannelError::Empty))
    ));
    tx.send(&fits).unwrap();
    assert_eq!(rx.recv().unwrap(), fits);
}

#[test]
fn zero_sized_values_travel_and_their_slices_are_refused() {
    let (mut tx, fd) = Sender::<()>::anonymous(4096).unwrap();
    let mut rx = Receiver::<()>::from_fd(fd).unwrap();
    tx.send(&()).unwrap();
    rx.recv().unwrap();
    assert!(matches!(
        tx.send_slice(&[(), ()]),
        Err(TypedError::ZeroSizedSlice { .. })
    ));
    assert!(matches!(
        rx.try_recv(),
        Err(TypedError::Channel(ChannelError::Empty))
    ));
}
