//! The frame format as a [`tokio_util::codec`] [`Encoder`]/[`Decoder`] (feature `tokio`), so
//! that `tokio_util::codec::Framed` carries ipcraft frames over any async byte stream: pipes,
//! Unix streams and TCP alike, and talks to a blocking [`FrameWriter`](crate::FrameWriter) or
//! [`FrameReader`](crate::FrameReader) on the other side (the wire format is the same: see
//! [`crate::frame`]).
//!
//! ```
//! use bytes::BytesMut;
//! use ipcraft_core::codec::FrameCodec;
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = FrameCodec::new();
//! let mut wire = BytesMut::new();
//! codec.encode(&b"hello"[..], &mut wire)?;
//! assert_eq!(&wire[..], b"\x05\x00\x00\x00hello");
//! // Frames come out whole, however the bytes arrive.
//! let mut half = wire.split_to(6);
//! assert!(codec.decode(&mut half)?.is_none());
//! half.unsplit(wire);
//! assert_eq!(codec.decode(&mut half)?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), ipcraft_core::FrameError>(())
//! ```
//!
//! # Cancel safety
//!
//! `Framed` keeps partial frames in its own buffers, so dropping a `next()` or `send()` future
//! (a losing `select!` branch) loses no part of a frame: the next call carries on.
//!
//! # Limits
//!
//! As the blocking codec: a payload above the maximum is refused before anything is written
//! ([`FrameError::Oversized`]); a length prefix above it is refused before anything is
//! allocated for it ([`FrameError::IncomingOversized`]; the stream cannot be resynchronized);
//! end of stream inside a frame is [`FrameError::Truncated`].

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{DEFAULT_MAX_FRAME, FrameError, HEADER_LEN, decode_header, encode_header};

/// The length-prefixed frame format as a codec: 4-byte little-endian length, then payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max: u32,
}

impl FrameCodec {
    /// A codec with the default maximum frame size ([`DEFAULT_MAX_FRAME`]).
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A codec that refuses payloads (both ways) above `max` bytes.
    pub fn with_max_frame(max: u32) -> Self {
        Self { max }
    }

    /// The maximum payload size.
    pub fn max_frame(&self) -> u32 {
        self.max
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&src[..HEADER_LEN]);
        let len = decode_header(h, self.max)?;
        if src.len() < HEADER_LEN + len {
            // Room for the rest of this frame, so the next read can take it in one go.
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let expected = if src.len() < HEADER_LEN {
                    HEADER_LEN
                } else {
                    let mut h = [0u8; HEADER_LEN];
                    h.copy_from_slice(&src[..HEADER_LEN]);
                    HEADER_LEN + decode_header(h, self.max)?
                };
                let received = src.len();
                src.clear(); // reported once: the stream ends here
                Err(FrameError::Truncated { expected, received })
            }
        }
    }
}

impl<B: AsRef<[u8]>> Encoder<B> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: B, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = item.as_ref();
        let header = encode_header(payload.len(), self.max)?;
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&header);
        dst.put_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameReader, FrameWriter};
    use proptest::prelude::*;

    #[test]
    fn oversized_is_refused_both_ways_and_nothing_is_written() {
        let mut codec = FrameCodec::with_max_frame(4);
        let mut dst = BytesMut::new();
        assert!(matches!(
            codec.encode(&[0u8; 5][..], &mut dst),
            Err(FrameError::Oversized { len: 5, max: 4 })
        ));
        assert!(dst.is_empty());
        let mut src = BytesMut::from(&[9u8, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::IncomingOversized { len: 9, max: 4 })
        ));
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_truncated_once() {
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::from(&[5u8, 0, 0, 0, b'h', b'i'][..]);
        assert!(matches!(
            codec.decode_eof(&mut src),
            Err(FrameError::Truncated {
                expected: 9,
                received: 6
            })
        ));
        assert!(codec.decode_eof(&mut src).unwrap().is_none());
        let mut src = BytesMut::from(&[5u8, 0][..]);
        assert!(matches!(
            codec.decode_eof(&mut src),
            Err(FrameError::Truncated {
                expected: 4,
                received: 2
            })
        ));
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    proptest! {
        /// What the blocking writer writes, the codec decodes, fed in any chunks; what the
        /// codec encodes, the blocking reader reads.
        #[test]
        fn same_wire_as_the_blocking_codec(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            chunk in 1usize..50,
        ) {
            let mut w = FrameWriter::new(Vec::new());
            for f in &frames {
                w.send(f).unwrap();
            }
            let wire = w.into_parts().0;
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    got.push(f.to_vec());
                }
            }
            prop_assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            prop_assert_eq!(&got, &frames);

            let mut out = BytesMut::new();
            for f in &frames {
                codec.encode(f, &mut out).unwrap();
            }
            prop_assert_eq!(&out[..], &wire[..]);
            let mut r = FrameReader::new(&out[..]);
            let mut back = Vec::new();
            while let Some(f) = r.recv().unwrap() {
                back.push(f);
            }
            prop_assert_eq!(back, frames);
        }
    }
}
