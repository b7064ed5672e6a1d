//! Typed channels refuse what is not their type: a peer of another type at attach (across
//! processes, every kind of channel), garbage from an untyped peer (a decode error, then the
//! next message), any bytes at all (no panic), messages too large (refused before anything
//! is written).
#![cfg(all(feature = "shm", feature = "sync"))]

mod typed_common;

use ipcraft::channel::{self as untyped, ChannelError};
use ipcraft::typed::channel::{Receiver, Sender};
use ipcraft::typed::zerocopy::{FromZeros, IntoBytes};
use ipcraft::typed::{Encoding, Message, TypedError};
use ipcraft_testkit::{Roles, finish, unique_name};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::process::Stdio;
use typed_common::*;

const ROLES: Roles = Roles::new("IPCRAFT_TYPED_CHECKS_ROLE", "IPCRAFT_TYPED_CHECKS_ARG");

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
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
