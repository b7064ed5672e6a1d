//! [`Serde`]: any serde type, encoded with postcard (feature `serde`).
//!
//! Why postcard: its wire format is specified and kept stable across its 1.x releases (a
//! peer built with another version reads the same bytes), it is compact (varint integers,
//! no field names or tags), it is fast, and it needs neither `std` nor an allocator to
//! encode. Its one limit: sequences and maps must know their length before they start
//! (every std collection does).
//!
//! Sending writes straight into the transport's room: a first pass measures the value's
//! exact encoded length (postcard's `Size` flavor: no bytes written), the transport reserves
//! that much (or refuses a message that is too large before anything is written), and a
//! second pass serializes into the reserved room through a 128-byte staging buffer. No
//! `Vec` per message. Receiving copies the message out once into the receiver's reusable
//! buffer (never a `&[u8]` over memory a peer can write) and deserializes from there.

use super::codec::sealed::{Sealed, Sink, Source};
use super::{Codec, Encoding, Message, TypedError};
use postcard::{de_flavors, ser_flavors};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Serde types, encoded with postcard (feature `serde`): any `T: Serialize +
/// DeserializeOwned` that implements [`Message`]. Pin the format with
/// [`Message::SCHEMA`]: postcard's bytes carry no field names, so a peer whose struct
/// changed would otherwise decode garbage or fail.
#[derive(Debug)]
pub enum Serde {}

impl<T: Message + Serialize + DeserializeOwned> Codec<T> for Serde {
    const ENCODING: Encoding = Encoding::Postcard;
}

impl<T: Message + Serialize + DeserializeOwned> Sealed<T> for Serde {
    fn layout() -> (usize, usize) {
        (0, 0)
    }

    fn encoded_len(value: &T) -> Result<usize, TypedError> {
        postcard::experimental::serialized_size(value).map_err(encode_error::<T>)
    }

    fn encode<S: Sink>(value: &T, out: &mut S) -> Result<usize, TypedError> {
        let flavor = Staged {
            out,
            at: 0,
            buf: [0; STAGE],
            used: 0,
        };
        postcard::serialize_with_flavor(value, flavor).map_err(encode_error::<T>)
    }

    fn decode<S: Source>(src: &S, scratch: &mut Vec<u8>) -> Result<T, TypedError> {
        let len = src.size();
        // Grown once to the largest message, never zeroed again: every byte decoded from is
        // copied in first.
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        let buf = &mut scratch[..len];
        src.get(0, buf);
        let mut de = postcard::Deserializer::from_flavor(Counted { buf, at: 0 });
        let value = T::deserialize(&mut de);
        let at = de.finalize().unwrap_or(len);
        let reason = match value {
            Ok(v) if at == len => return Ok(v),
            Ok(_) => format!("{} bytes left over after the value", len - at),
            Err(e) => e.to_string(),
        };
        Err(TypedError::Decode {
            type_name: T::NAME,
            offset: at,
            len,
            reason,
        })
    }
}

fn encode_error<T: Message>(e: postcard::Error) -> TypedError {
    TypedError::Encode {
        type_name: T::NAME,
        reason: e.to_string(),
    }
}

const STAGE: usize = 128;

/// A postcard output that stages small writes (postcard pushes a byte or a varint at a
/// time) and copies them into the sink in chunks; larger writes (strings, byte arrays) go
/// straight through.
struct Staged<'a, S: Sink> {
    out: &'a mut S,
    /// Bytes already in the sink.
    at: usize,
    buf: [u8; STAGE],
    used: usize,
}

impl<S: Sink> Staged<'_, S> {
    fn put(&mut self, b: &[u8]) -> postcard::Result<()> {
        if self.out.put(self.at, b) != b.len() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.at += b.len();
        Ok(())
    }

    fn drain(&mut self) -> postcard::Result<()> {
        let used = std::mem::take(&mut self.used);
        let buf = self.buf;
        self.put(&buf[..used])
    }
}

impl<S: Sink> ser_flavors::Flavor for Staged<'_, S> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        if self.used == STAGE {
            self.drain()?;
        }
        self.buf[self.used] = b;
        self.used += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if let Some(room) = self.buf.get_mut(self.used..self.used + data.len()) {
            room.copy_from_slice(data);
            self.used += data.len();
            return Ok(());
        }
        self.drain()?;
        if data.len() >= STAGE {
            return self.put(data);
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.used = data.len();
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<usize> {
        self.drain()?;
        if self.at > self.out.room() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(self.at)
    }
}

/// A postcard input over a copied-out message that remembers how far it got, so that a
/// decode error can say where.
struct Counted<'de> {
    buf: &'de [u8],
    at: usize,
}

impl<'de> de_flavors::Flavor<'de> for Counted<'de> {
    type Remainder = usize;
    type Source = &'de [u8];

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.at += 1;
        Ok(b)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.buf.len() - self.at)
    }

    #[inline]
    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        let end = self
            .at
            .checked_add(ct)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        let s = self
            .buf
            .get(self.at..end)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.at = end;
        Ok(s)
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::tests::Buf;
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Event {
        Start {
            name: String,
            tags: BTreeMap<String, u32>,
        },
        Data(Vec<u8>),
        Stop,
    }

    impl Message for Event {
        const NAME: &'static str = "test::Event";
        const SCHEMA: u64 = 1;
    }

    fn round_trip(e: &Event) -> Event {
        let len = <Serde as Sealed<Event>>::encoded_len(e).unwrap();
        let mut buf = Buf(vec![0; len]);
        assert_eq!(<Serde as Sealed<Event>>::encode(e, &mut buf).unwrap(), len);
        assert_eq!(
            buf.0,
            postcard::to_stdvec(e).unwrap(),
            "postcard's own bytes"
        );
        <Serde as Sealed<Event>>::decode(&buf, &mut Vec::new()).unwrap()
    }

    #[test]
    fn values_round_trip_through_the_staged_output() {
        let mut tags = BTreeMap::new();
        tags.insert("k".repeat(300), 7);
        let e = Event::Start {
            name: "n".repeat(1000),
            tags,
        };
        assert_eq!(round_trip(&e), e);
        assert_eq!(
            round_trip(&Event::Data((0..=255).collect())),
            Event::Data((0..=255).collect())
        );
        assert_eq!(round_trip(&Event::Stop), Event::Stop);
    }

    #[test]
    fn too_little_room_is_an_encode_error_and_garbage_a_decode_error() {
        let e = Event::Data(vec![1; 500]);
        let mut small = Buf(vec![0; 100]);
        assert!(matches!(
            <Serde as Sealed<Event>>::encode(&e, &mut small),
            Err(TypedError::Encode { .. })
        ));
        let garbage = Buf(vec![9, 0xff, 0xff]);
        let err = <Serde as Sealed<Event>>::decode(&garbage, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                TypedError::Decode {
                    offset: 1,
                    len: 3,
                    ..
                }
            ),
            "{err}"
        );
        let trailing = Buf(vec![2, 0]);
        let err = <Serde as Sealed<Event>>::decode(&trailing, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                TypedError::Decode {
                    offset: 1,
                    len: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}
