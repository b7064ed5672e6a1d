//! [`Codec`]: how a typed end turns a value into a message and back, and [`Plain`], the
//! zero-copy encoding of plain data.
#![cfg_attr(
    not(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom)))),
    allow(
        dead_code,
        reason = "what a transport needs beyond `Codec`; the channel is the only transport yet"
    )
)]

use super::{Encoding, Message, TypedError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// An encoding of `T` (sealed: [`Plain`], and `Serde` with the `serde`
/// feature). A typed end's second type parameter.
pub trait Codec<T>: sealed::Sealed<T> {
    /// What a typed end announces as its encoding.
    const ENCODING: Encoding;
}

pub(crate) mod sealed {
    use super::TypedError;

    /// Room to encode into, written at offsets (a channel's reserved slot); never a `&mut
    /// [u8]` over memory a peer can write.
    pub trait Sink {
        /// Bytes of room.
        fn room(&self) -> usize;
        /// Copy `src` in at `offset`; how many bytes fit.
        fn put(&mut self, offset: usize, src: &[u8]) -> usize;
    }

    /// A received message, read at offsets (a channel's slot): copied out, never borrowed.
    pub trait Source {
        /// The message's length.
        fn size(&self) -> usize;
        /// Copy bytes from `offset` into `dst`; how many.
        fn get(&self, offset: usize, dst: &mut [u8]) -> usize;
    }

    /// What a codec does (hidden: the set of codecs is ipcraft's to extend).
    pub trait Sealed<T> {
        /// `(size_of, align_of)` for plain data; `(0, 0)` where the layout is not the format.
        fn layout() -> (usize, usize);
        /// The exact length of `value` encoded (a pre-pass: nothing is written).
        fn encoded_len(value: &T) -> Result<usize, TypedError>;
        /// Encode `value` into `out` (which has room for [`encoded_len`](Self::encoded_len)
        /// bytes); the bytes written.
        fn encode<S: Sink>(value: &T, out: &mut S) -> Result<usize, TypedError>;
        /// Decode the message in `src`; `scratch` is the caller's reusable buffer for codecs
        /// that must copy the message out whole first.
        fn decode<S: Source>(src: &S, scratch: &mut Vec<u8>) -> Result<T, TypedError>;
    }
}

use sealed::{Sink, Source};

/// Plain data, zero copy: the value's bytes as they are in memory. A send copies the value
/// straight into the transport's buffer (a channel's ring slot); a receive copies the
/// message once into a new value. Any bytes are a valid value (`FromBytes`), so a message
/// decodes unless its length is wrong.
///
/// For `T` that derives zerocopy's [`IntoBytes`], [`FromBytes`], [`Immutable`] and
/// [`KnownLayout`] (re-exported as [`typed::zerocopy`](super::zerocopy)) and implements
/// [`Message`]: see [`PlainData`]. Both ends must have the same layout, which the
/// fingerprint checks (size and alignment; `#[repr(C)]` makes the field order yours).
#[derive(Debug)]
pub enum Plain {}

/// What [`Plain`] encodes: a [`Message`] that zerocopy can view as bytes both ways.
///
/// Implemented for every such type; derive the zerocopy traits, with `#[repr(C)]` and no
/// padding (zerocopy refuses padding: its bytes would leak this process's memory).
pub trait PlainData: Message + IntoBytes + FromBytes + Immutable + KnownLayout {}

impl<T: Message + IntoBytes + FromBytes + Immutable + KnownLayout> PlainData for T {}

impl<T: PlainData> Codec<T> for Plain {
    const ENCODING: Encoding = Encoding::Plain;
}

impl<T: PlainData> sealed::Sealed<T> for Plain {
    fn layout() -> (usize, usize) {
        (size_of::<T>(), align_of::<T>())
    }

    fn encoded_len(_: &T) -> Result<usize, TypedError> {
        Ok(size_of::<T>())
    }

    fn encode<S: Sink>(value: &T, out: &mut S) -> Result<usize, TypedError> {
        Ok(out.put(0, value.as_bytes()))
    }

    fn decode<S: Source>(src: &S, _: &mut Vec<u8>) -> Result<T, TypedError> {
        let len = src.size();
        check_len::<T>(len, size_of::<T>())?;
        let mut value = T::new_zeroed();
        src.get(0, value.as_mut_bytes());
        Ok(value)
    }
}

fn check_len<T: Message>(len: usize, want: usize) -> Result<(), TypedError> {
    if len == want {
        return Ok(());
    }
    Err(TypedError::Decode {
        type_name: T::NAME,
        offset: len.min(want),
        len,
        reason: format!("a plain-data message has exactly {want} bytes"),
    })
}

/// The encoded length of a slice of plain data.
pub(crate) fn slice_len<T: PlainData>(values: &[T]) -> Result<usize, TypedError> {
    if size_of::<T>() == 0 {
        return Err(TypedError::ZeroSizedSlice { type_name: T::NAME });
    }
    Ok(size_of_val(values))
}

/// Encode a slice of plain data (its elements' bytes, one after the other).
pub(crate) fn encode_slice<T: PlainData, S: Sink>(values: &[T], out: &mut S) -> usize {
    out.put(0, values.as_bytes())
}

/// How many `T` the message in `src` holds.
fn count<T: PlainData>(len: usize) -> Result<usize, TypedError> {
    let size = size_of::<T>();
    if size == 0 {
        return Err(TypedError::ZeroSizedSlice { type_name: T::NAME });
    }
    if !len.is_multiple_of(size) {
        return Err(TypedError::Decode {
            type_name: T::NAME,
            offset: len - len % size,
            len,
            reason: format!("a slice message is a whole number of {size}-byte elements"),
        });
    }
    Ok(len / size)
}

/// Decode a slice message into a new vector.
pub(crate) fn decode_vec<T: PlainData, S: Source>(src: &S) -> Result<Vec<T>, TypedError> {
    let len = src.size();
    let n = count::<T>(len)?;
    let mut v = T::new_vec_zeroed(n).map_err(|_| TypedError::Decode {
        type_name: T::NAME,
        offset: 0,
        len,
        reason: "no memory for its elements".into(),
    })?;
    src.get(0, v.as_mut_bytes());
    Ok(v)
}

/// Decode a slice message into `dst`; `Err(Ok(needed))` when `dst` is too short (for
/// `needed` elements: the caller leaves the message where it is).
pub(crate) fn decode_into<T: PlainData, S: Source>(
    src: &S,
    dst: &mut [T],
) -> Result<usize, Result<usize, TypedError>> {
    let n = count::<T>(src.size()).map_err(Err)?;
    let Some(dst) = dst.get_mut(..n) else {
        return Err(Ok(n));
    };
    src.get(0, dst.as_mut_bytes());
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A heap buffer as a sink and a source.
    #[derive(Debug, Default)]
    pub(crate) struct Buf(pub(crate) Vec<u8>);

    impl Sink for Buf {
        fn room(&self) -> usize {
            self.0.len()
        }
        fn put(&mut self, offset: usize, src: &[u8]) -> usize {
            let Some(dst) = self.0.get_mut(offset..) else {
                return 0;
            };
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            n
        }
    }

    impl Source for Buf {
        fn size(&self) -> usize {
            self.0.len()
        }
        fn get(&self, offset: usize, dst: &mut [u8]) -> usize {
            let Some(src) = self.0.get(offset..) else {
                return 0;
            };
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            n
        }
    }

    #[derive(Debug, PartialEq, IntoBytes, FromBytes, Immutable, KnownLayout)]
    #[repr(C)]
    struct Point {
        x: u32,
        y: u32,
    }

    impl Message for Point {
        const NAME: &'static str = "test::Point";
    }

    #[test]
    fn plain_data_round_trips_and_a_wrong_length_is_a_decode_error() {
        let p = Point { x: 1, y: 2 };
        let mut buf = Buf(vec![0; 8]);
        assert_eq!(
            <Plain as sealed::Sealed<Point>>::encode(&p, &mut buf).unwrap(),
            8
        );
        let back: Point = <Plain as sealed::Sealed<Point>>::decode(&buf, &mut Vec::new()).unwrap();
        assert_eq!(back, p);
        buf.0.push(0);
        let e = <Plain as sealed::Sealed<Point>>::decode(&buf, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                e,
                TypedError::Decode {
                    offset: 8,
                    len: 9,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn slices_round_trip_and_ragged_ones_are_decode_errors() {
        let v = [Point { x: 1, y: 2 }, Point { x: 3, y: 4 }];
        let mut buf = Buf(vec![0; 16]);
        assert_eq!(encode_slice(&v, &mut buf), 16);
        assert_eq!(decode_vec::<Point, _>(&buf).unwrap(), v);
        let mut small = [Point { x: 0, y: 0 }];
        assert!(matches!(decode_into(&buf, &mut small), Err(Ok(2))));
        buf.0.truncate(12);
        assert!(matches!(
            decode_vec::<Point, _>(&buf),
            Err(TypedError::Decode { offset: 8, .. })
        ));
        assert!(matches!(
            slice_len(&[(), ()]),
            Err(TypedError::ZeroSizedSlice { .. })
        ));
    }
}
