//! The typed shared-memory channel: [`Sender<T, C>`] and [`Receiver<T, C>`] over
//! [`crate::channel`], SPSC and MPSC, anonymous and named, blocking and (feature `tokio`)
//! async (the `tokio` module).
//!
//! ```
//! use ipcraft::typed::channel::{Receiver, Sender};
//! use ipcraft::typed::TypedError;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The receiver makes an MPSC channel of `u64` for two senders; the memfd goes to each
//! // sending process (here: duplicates, in this process).
//! let (mut rx, fd) = Receiver::<u64>::anonymous_mpsc(2, 4096)?;
//! let mut a = Sender::<u64>::from_fd(fd.try_clone()?)?;
//! // A peer built for another type is refused before it takes a slot.
//! let wrong = Sender::<u32>::from_fd(fd.try_clone()?);
//! assert!(matches!(wrong, Err(TypedError::TypeMismatch { .. })));
//! let mut b = Sender::<u64>::from_fd(fd)?;
//! a.send(&1)?;
//! b.send(&2)?;
//! let mut got = [rx.recv()?, rx.recv()?];
//! got.sort();
//! assert_eq!(got, [1, 2]);
//! # Ok(()) }
//! ```
//!
//! Two processes: `examples/typed.rs`; the tests (`tests/typed.rs`) run every kind of
//! channel across processes.
//!
//! # Making one
//!
//! The constructors mirror [`crate::channel`]'s: [`Sender::anonymous`] /
//! [`Receiver::anonymous`] / [`Receiver::anonymous_mpsc`] (a memfd for the peer's
//! [`from_fd`](Receiver::from_fd)), [`Sender::create`] / [`Receiver::create`] /
//! [`Receiver::create_mpsc`] (a name for the peer's [`open`](Receiver::open)), and `_with`
//! forms taking [`NamedOptions`](crate::channel::NamedOptions) for a channel shared between
//! users.
//!
//! # Where the type is announced
//!
//! The end that makes the channel writes its message type ([`TypeInfo`]: the fingerprint,
//! then the name, encoding, size, alignment and schema) into the channel's tag, after the
//! ring layout, before anyone can attach. An end that attaches (`from_fd`, `open`) reads it
//! before it claims a sender slot or takes the receiver's place, and refuses a channel of
//! another type with [`TypedError::TypeMismatch`] (or [`TypedError::Untyped`] for a channel
//! an untyped end made), leaving the channel as it found it. The same holds for SPSC and
//! MPSC, anonymous and named channels: the tag is part of the segment, whoever made it.
//!
//! An untyped end ([`crate::channel`]) can still attach to a typed channel (it ignores the
//! tag): its messages are decoded like any other, and bytes that are not a `T` are a
//! [`TypedError::Decode`] at the receiver, after which the next message arrives normally.
//!
//! # Errors
//!
//! Channel errors (`Disconnected`, `TimedOut`, `Full`, `Empty`, ...) come as
//! [`TypedError::Channel`]; matching on them reads
//! `Err(TypedError::Channel(ChannelError::Disconnected))`.

mod receiver;
mod sender;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use receiver::Receiver;
pub use sender::Sender;

use super::codec::sealed::{Sink, Source};
use super::{Codec, Message, TypeInfo, TypedError};
use crate::channel::{ChannelError, RecvSlot, SendSlot, Unclaimed};

impl Sink for SendSlot<'_> {
    #[inline]
    fn room(&self) -> usize {
        self.len()
    }
    #[inline]
    fn put(&mut self, offset: usize, src: &[u8]) -> usize {
        self.write_at(offset, src)
    }
}

impl Source for RecvSlot<'_> {
    #[inline]
    fn size(&self) -> usize {
        self.len()
    }
    #[inline]
    fn get(&self, offset: usize, dst: &mut [u8]) -> usize {
        self.read_at(offset, dst)
    }
}

/// The tag a channel of `T` encoded with `C` carries.
fn tag<T: Message, C: Codec<T>>() -> Vec<u8> {
    TypeInfo::of::<T, C>().to_record()
}

/// Check an attached channel's announced type against `T` with `C`, before taking a role.
fn check<T: Message, C: Codec<T>>(channel: &Unclaimed) -> Result<(), TypedError> {
    let expected = TypeInfo::of::<T, C>();
    match channel.tag().as_deref().and_then(TypeInfo::from_record) {
        Some((_, fingerprint)) if fingerprint == expected.fingerprint() => Ok(()),
        Some((found, _)) => Err(TypedError::TypeMismatch {
            expected: Box::new(expected),
            found: Box::new(found),
        }),
        None => Err(TypedError::Untyped {
            expected: Box::new(expected),
        }),
    }
}

/// The encoded length of a message, refused before anything is written when the channel
/// cannot take it.
fn checked_len<T: Message>(len: usize, max: usize) -> Result<usize, TypedError> {
    if len > max {
        return Err(TypedError::TooLarge {
            type_name: T::NAME,
            len,
            max,
        });
    }
    Ok(len)
}

/// Encode `value` into `slot` (reserved for its encoded length) and send it; a failure
/// drops the slot, which sends nothing.
#[inline]
fn fill<T: Message, C: Codec<T>>(value: &T, mut slot: SendSlot<'_>) -> Result<(), TypedError> {
    let n = C::encode(value, &mut slot)?;
    slot.commit_len(n)?;
    Ok(())
}

/// Decode the message in `slot`, then release it, decoded or not: a message that is not a
/// `T` is consumed, and the next one is received normally.
#[inline]
fn take<T: Message, C: Codec<T>>(
    slot: RecvSlot<'_>,
    scratch: &mut Vec<u8>,
) -> Result<T, TypedError> {
    let value = C::decode(&slot, scratch);
    slot.release();
    value
}

/// A slice message into `dst`: released when decoded or not a slice of `T`, left in the
/// channel when `dst` is too short.
fn take_into<T: super::PlainData>(slot: RecvSlot<'_>, dst: &mut [T]) -> Result<usize, TypedError> {
    match super::codec::decode_into(&slot, dst) {
        Ok(n) => {
            slot.release();
            Ok(n)
        }
        Err(Err(e)) => {
            slot.release();
            Err(e)
        }
        Err(Ok(_)) => Err(ChannelError::BufferTooSmall { needed: slot.len() }.into()),
    }
}

/// A slice message into a new vector, released either way.
fn take_vec<T: super::PlainData>(slot: RecvSlot<'_>) -> Result<Vec<T>, TypedError> {
    let v = super::codec::decode_vec(&slot);
    slot.release();
    v
}
