//! What the typed channel tests share: message types (plain and serde), their proptest
//! strategies, the deterministic sequences children and parents agree on, garbage.
#![allow(dead_code, reason = "each test file uses part of it")]

use ipcraft::channel::ChannelError;
use ipcraft::typed::TypedError;
use ipcraft::typed::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

pub const CAPACITY: usize = 1 << 14;
/// Every wait ends by this: a hang is a failure, not a stuck run.
pub const LIMIT: Duration = Duration::from_secs(60);
/// Values each sender of the MPSC tests sends.
pub const SEQUENCE: usize = 300;

/// Plain data: integers and arrays, no padding.
#[derive(Debug, Clone, PartialEq, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
pub struct Reading {
    pub stamp: u64,
    pub sensor: u32,
    pub kind: u16,
    pub level: i16,
    pub samples: [i32; 6],
}
ipcraft::message!(Reading = "test::Reading", schema 1);

/// What an older build called `test::Reading`: another layout under the same name.
#[derive(Debug, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
pub struct OldReading {
    pub stamp: u64,
    pub sensor: u32,
    pub kind: u32,
}
ipcraft::message!(OldReading = "test::Reading", schema 1);

/// A plain type larger than the test channels take.
#[derive(Debug, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
pub struct Huge(pub [u64; 4096]);
ipcraft::message!(Huge = "test::Huge");

pub fn reading() -> impl Strategy<Value = Reading> {
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
pub fn sequence<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

pub fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

pub fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

pub fn is_disconnected(e: &TypedError) -> bool {
    matches!(e, TypedError::Channel(ChannelError::Disconnected))
}

#[cfg(feature = "serde")]
pub mod serde_types {
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

/// Messages that are neither a `Reading` (wrong length) nor a `Note`.
pub fn garbage() -> Vec<Vec<u8>> {
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

#[cfg(feature = "serde")]
pub use ipcraft::typed::Serde;
#[cfg(feature = "serde")]
pub use serde_types::*;
