//! Typed messages: send Rust values, not byte slices, checked end to end.
//!
//! ```
//! use ipcraft::typed::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//! use ipcraft::typed::Message;
//!
//! #[derive(Debug, PartialEq, IntoBytes, FromBytes, Immutable, KnownLayout)]
//! #[zerocopy(crate = "ipcraft::typed::zerocopy")]
//! #[repr(C)]
//! struct Reading {
//!     sensor: u32,
//!     celsius: f32,
//! }
//!
//! impl Message for Reading {
//!     const NAME: &'static str = "weather::Reading";
//! }
//!
//! # #[cfg(all(feature = "shm", feature = "sync"))]
//! # fn main() -> Result<(), ipcraft::typed::TypedError> {
//! use ipcraft::typed::channel::{Receiver, Sender};
//!
//! // The creating process: a typed channel of 64 KiB; the memfd goes to the peer.
//! let (mut tx, fd) = Sender::<Reading>::anonymous(1 << 16)?;
//! // In the peer: `Receiver::<Reading>::from_fd(fd)?` checks that it speaks `Reading`.
//! let mut rx = Receiver::<Reading>::from_fd(fd)?;
//! tx.send(&Reading { sensor: 7, celsius: 21.5 })?;
//! assert_eq!(rx.recv()?, Reading { sensor: 7, celsius: 21.5 });
//! # Ok(()) }
//! # #[cfg(not(all(feature = "shm", feature = "sync")))]
//! # fn main() {}
//! ```
//!
//! # Two encodings
//!
//! A typed end is `Sender<T, C>` / `Receiver<T, C>`, where the codec `C` says how `T`
//! travels:
//!
//! - [`Plain`] (the default): plain data, zero copy. `T` derives zerocopy's `IntoBytes`,
//!   `FromBytes`, `Immutable` and `KnownLayout` ([`PlainData`]); a send copies the value's
//!   bytes straight into the channel's ring slot, a receive copies them out once into a new
//!   `T` (never a `&T` over shared memory, which the peer could change under it). Slices
//!   too: `send_slice`, `recv_vec`.
//! - `Serde` (feature `serde`): any `Serialize + DeserializeOwned` type, encoded with
//!   postcard, serialized straight into the reserved ring slot (no `Vec` per message).
//!
//! # Checked end to end
//!
//! Every message type implements [`Message`]: a stable [`NAME`](Message::NAME) and a
//! [`SCHEMA`](Message::SCHEMA) number you pin. A typed end announces its type when it makes
//! a channel, and a typed end that attaches checks it before it takes a role:
//! [`TypedError::TypeMismatch`], with both types in words, instead of garbage at the first
//! receive. What is compared is a 64-bit [`fingerprint`] of the name, the encoding, for
//! plain data the size and alignment, and the schema ([`TypeInfo`]).
//!
//! Why a name you write, not [`std::any::type_name`]: `type_name` is documented as a
//! diagnostic that may change between compiler versions, it includes the crate's path (a
//! type moved between modules or crates would stop matching), and it says nothing about
//! versions: two builds of `app::Reading` with different fields have the same `type_name`.
//! `NAME` is yours to keep stable, and `SCHEMA` is yours to bump when the format changes
//! (for plain data, size and alignment catch most changes by themselves; postcard's bytes
//! carry no field names, so for serde types `SCHEMA` is the only guard: bump it, or set it
//! to a hash of your schema, whenever a field changes).
//!
//! A message that fails to decode (a peer that is not what it announced, or an untyped
//! end writing bytes) is [`TypedError::Decode`], naming the type and where decoding
//! failed; the bad message is consumed and the next one is received normally. A message
//! larger than the channel takes is refused ([`TypedError::TooLarge`]) before anything is
//! written.

mod codec;
mod error;
mod info;
#[cfg(feature = "serde")]
mod serde_codec;

#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
pub mod channel;

pub use codec::{Codec, Plain, PlainData};
pub use error::TypedError;
pub use info::{Encoding, MAX_NAME, TypeInfo, fingerprint};
#[cfg(feature = "serde")]
pub use serde_codec::Serde;

/// zerocopy, whose derives make a type [`PlainData`]. Derive through this re-export with
/// `#[zerocopy(crate = "ipcraft::typed::zerocopy")]`, or depend on `zerocopy` 0.8 yourself.
pub use zerocopy;

/// serde (feature `serde`). Derive through this re-export with
/// `#[serde(crate = "ipcraft::typed::serde")]`, or depend on `serde` yourself.
#[cfg(feature = "serde")]
pub use serde;

/// A message type: how a typed end names it to its peers.
///
/// Implement it by hand (three lines, no derive), or with [`message!`](crate::message):
///
/// ```
/// # struct Order { id: u64 }
/// impl ipcraft::typed::Message for Order {
///     const NAME: &'static str = "shop::Order";
///     const SCHEMA: u64 = 2; // bumped when a field changed
/// }
/// ```
///
/// Implemented for the primitive types (`u8` to `u128`, `i8` to `i128`, `f32`, `f64`,
/// `()`, and with serde `bool`, `char`, `String` and `Vec<u8>`), under their Rust names.
pub trait Message {
    /// The type's name, the same in every program that speaks it: stable across crate
    /// versions and refactorings (`"app::Reading"`, not `std::any::type_name`, which
    /// changes with the path and the compiler). At most [`MAX_NAME`] bytes are shown to a
    /// peer; all of it counts in the fingerprint.
    const NAME: &'static str;
    /// The version of the type's format, which you bump (or set to a hash of a schema)
    /// whenever it changes incompatibly: a peer with another schema is refused at attach.
    const SCHEMA: u64 = 0;
}

/// Implement [`Message`](crate::typed::Message) for types: `message!(Type = "name");` or
/// `message!(Type = "name", schema 3);`, several separated by `;`.
///
/// ```
/// struct Ping;
/// struct Pong { seq: u64 }
/// ipcraft::message!(Ping = "demo::Ping"; Pong = "demo::Pong", schema 2);
/// assert_eq!(<Pong as ipcraft::typed::Message>::SCHEMA, 2);
/// ```
#[macro_export]
macro_rules! message {
    ($($ty:ty = $name:literal $(, schema $schema:expr)?);+ $(;)?) => {
        $(
            impl $crate::typed::Message for $ty {
                const NAME: &'static str = $name;
                $(const SCHEMA: u64 = $schema;)?
            }
        )+
    };
}

macro_rules! primitive_messages {
    ($($ty:ty),*) => {
        $(impl Message for $ty {
            const NAME: &'static str = stringify!($ty);
        })*
    };
}

primitive_messages!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, bool, char, String
);

impl Message for () {
    const NAME: &'static str = "()";
}

impl Message for Vec<u8> {
    const NAME: &'static str = "Vec<u8>";
}
