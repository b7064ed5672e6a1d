//! Typed messages on the shared-memory channel between real processes: round trips of
//! property-generated values (plain data and serde, SPSC and MPSC, blocking and async).
//! Refusals, garbage and oversized messages: `typed_checks.rs`.
#![cfg(all(feature = "shm", feature = "sync"))]

mod typed_common;

use ipcraft::typed::Message;
use ipcraft::typed::channel::{Receiver, Sender};
use ipcraft::typed::zerocopy::FromZeros;
use ipcraft_testkit::{Roles, finish, unique_name, wait_for_prefix};
use proptest::prelude::*;
use std::cell::RefCell;
use std::process::Stdio;
use std::time::Duration;
use typed_common::*;

const ROLES: Roles = Roles::new("IPCRAFT_TYPED_TEST_ROLE", "IPCRAFT_TYPED_TEST_ARG");

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
        other => panic!("unknown role {other}"),
    }
}

/// The parent's side of an echo test: a channel to an echo child (`role`) and one back;
/// `check` sends values and compares what comes back.
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

/// The async receiver as a `Stream`: values, a message that does not decode as an item (the
/// stream goes on), then the end at `Disconnected`; a receive cancelled by a timeout takes
/// nothing.
#[cfg(feature = "tokio")]
#[test]
fn the_async_stream_yields_values_and_errors_then_ends() {
    use futures_core::Stream;
    use ipcraft::typed::channel::tokio as typed_async;
    use std::pin::Pin;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut rx, fd) = typed_async::Receiver::<u32>::anonymous(4096).unwrap();
        let mut tx = Sender::<u32>::from_fd(fd).unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await;
        assert!(cancelled.is_err(), "nothing was sent yet");
        tx.send(&1).unwrap();
        tx.get_mut().send(b"not a u32").unwrap();
        tx.send(&2).unwrap();
        drop(tx);
        let mut items = Vec::new();
        while let Some(item) = std::future::poll_fn(|cx| Pin::new(&mut rx).poll_next(cx)).await {
            items.push(item);
        }
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap(), &1);
        assert!(matches!(
            items[1],
            Err(ipcraft::typed::TypedError::Decode {
                type_name: "u32",
                len: 9,
                ..
            })
        ));
        assert_eq!(items[2].as_ref().unwrap(), &2);
    });
}

/// An async receiver of an MPSC channel, blocking senders in two children: every value of
/// both, through the `Stream`, which ends once both are gone.
#[cfg(feature = "tokio")]
#[test]
fn mpsc_plain_senders_reach_an_async_receiver() {
    use futures_core::Stream;
    use ipcraft::typed::channel::tokio as typed_async;
    use ipcraft::typed::zerocopy::IntoBytes;
    use std::pin::Pin;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut rx, fd) = typed_async::Receiver::<Reading>::anonymous_mpsc(2, CAPACITY).unwrap();
        let children: Vec<_> = (0..2)
            .map(|_| ROLES.spawn("send-plain", "", Stdio::from(fd.try_clone().unwrap())))
            .collect();
        drop(fd);
        let mut got = Vec::new();
        while got.len() < 2 * SEQUENCE {
            let next = std::future::poll_fn(|cx| Pin::new(&mut rx).poll_next(cx));
            got.push(
                tokio::time::timeout(LIMIT, next)
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap(),
            );
        }
        for c in children {
            finish(c, "send-plain");
        }
        // Both children done: a slot one of them freed and the other never claimed must not
        // keep the stream waiting.
        rx.get_mut()
            .get_mut()
            .set_claim_deadline(ipcraft::ipcraft_core::Deadline::after(Duration::ZERO));
        let end = std::future::poll_fn(|cx| Pin::new(&mut rx).poll_next(cx));
        assert!(tokio::time::timeout(LIMIT, end).await.unwrap().is_none());
        let key = |r: &Reading| r.as_bytes().to_vec();
        let mut want: Vec<_> = sequence(reading(), SEQUENCE)
            .iter()
            .flat_map(|r| [key(r), key(r)])
            .collect();
        let mut got: Vec<_> = got.iter().map(key).collect();
        want.sort();
        got.sort();
        assert!(got == want, "every value of both senders, once each");
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
        let (from, v) = rx.recv_from_timeout(LIMIT).unwrap();
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
        let (from, v) = rx.recv_from_timeout(LIMIT).unwrap();
        let at = next[from] % SEQUENCE;
        assert_eq!(v, want[at], "sender slot {from}, value {at}");
        next[from] += 1;
    }
    assert!(next.iter().all(|n| n % SEQUENCE == 0), "{next:?}");
    for c in children {
        finish(c, "send-serde-named");
    }
}
