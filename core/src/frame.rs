//! The length-prefixed frame codec that ipcraft uses over every byte stream (pipes, Unix and
//! TCP stream sockets).
//!
//! # Wire format
//!
//! A frame is a 4-byte little-endian unsigned length `n` followed by `n` payload bytes.
//! Zero-length frames are allowed. There is no other header, padding or trailer, so any
//! language can speak it.
//!
//! # Limits and errors
//!
//! Both sides have a maximum frame size (default [`DEFAULT_MAX_FRAME`]):
//! - the writer refuses a larger payload *before writing anything* ([`FrameError::Oversized`]);
//! - the reader refuses a length prefix above its maximum without allocating for it
//!   ([`FrameError::IncomingOversized`]); the stream cannot be resynchronized after that;
//! - end of stream in the middle of a frame is [`FrameError::Truncated`], never a short
//!   message; end of stream at a frame boundary is `Ok(None)`.
//!
//! # Non-blocking streams and timeouts
//!
//! Both halves are resumable. When the underlying stream returns an error part-way through a
//! frame (`WouldBlock` from a non-blocking descriptor, `TimedOut` from a read timeout, or any
//! other), the codec keeps what it has and the next call carries on from there:
//! - [`FrameWriter`] keeps the unwritten tail of the frame and writes it first on the next
//!   [`send`](FrameWriter::send) or [`flush`](FrameWriter::flush), so the stream never carries
//!   half a frame followed by the start of another;
//! - [`FrameReader`] keeps the bytes it has read and returns the frame once the rest arrives.
//!
//! A frame that fails before any of its bytes were written is not kept: the caller still has
//! the payload.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The default maximum payload size of a frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// The first buffer a [`FrameReader`] allocates; it grows to fit the largest frame seen.
const INITIAL_READ_BUFFER: usize = 8 * 1024;

/// The length prefix for a payload of `len` bytes, or [`FrameError::Oversized`] when `len` is
/// above `max`.
///
/// # Errors
///
/// [`FrameError::Oversized`] when `len > max`.
///
/// # Examples
///
/// ```
/// use ipcraft_core::frame::encode_header;
/// assert_eq!(encode_header(5, 100)?, [5, 0, 0, 0]);
/// assert!(encode_header(101, 100).is_err());
/// # Ok::<(), ipcraft_core::FrameError>(())
/// ```
pub fn encode_header(len: usize, max: u32) -> Result<[u8; HEADER_LEN], FrameError> {
    match u32::try_from(len) {
        Ok(n) if n <= max => Ok(n.to_le_bytes()),
        _ => Err(FrameError::Oversized { len, max }),
    }
}

/// The payload length announced by a length prefix, or [`FrameError::IncomingOversized`]
/// when it is above `max`.
///
/// # Errors
///
/// [`FrameError::IncomingOversized`] when the announced length is above `max`.
pub fn decode_header(header: [u8; HEADER_LEN], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len > max {
        return Err(FrameError::IncomingOversized { len, max });
    }
    // u32 -> usize is lossless on every platform ipcraft supports (Linux, >= 32-bit).
    Ok(len as usize)
}

/// What went wrong while framing.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// A payload larger than the writer's maximum; nothing was written.
    Oversized {
        /// The payload's length.
        len: usize,
        /// The writer's maximum.
        max: u32,
    },
    /// The stream announced a frame larger than the reader's maximum. Nothing was allocated
    /// for it; the stream cannot be resynchronized.
    IncomingOversized {
        /// The announced length.
        len: u32,
        /// The reader's maximum.
        max: u32,
    },
    /// The stream ended in the middle of a frame.
    Truncated {
        /// Bytes the frame needed (length prefix included), as far as known: 4 while the
        /// prefix itself was incomplete.
        expected: usize,
        /// Bytes of the frame that arrived.
        received: usize,
    },
    /// The underlying stream failed. Frames stay whole: see the module docs.
    Io(io::Error),
}

impl FrameError {
    /// The [`io::ErrorKind`] that best describes this error.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::Oversized { .. } => io::ErrorKind::InvalidInput,
            Self::IncomingOversized { .. } => io::ErrorKind::InvalidData,
            Self::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Self::Io(e) => e.kind(),
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversized { len, max } => write!(
                f,
                "frame payload of {len} bytes is over the maximum of {max} bytes; nothing was \
                 written (raise the limit with with_max_frame, up to {} bytes)",
                u32::MAX
            ),
            Self::IncomingOversized { len, max } => write!(
                f,
                "incoming frame announces {len} bytes, over this reader's maximum of {max} \
                 bytes; the stream cannot be resynchronized"
            ),
            Self::Truncated { expected, received } => write!(
                f,
                "stream ended in the middle of a frame: {received} of {expected} bytes arrived"
            ),
            Self::Io(e) => write!(f, "frame I/O failed: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            other => io::Error::new(other.kind(), other),
        }
    }
}

/// Writes length-prefixed frames to a byte stream.
///
/// Each frame goes out with one vectored write (`writev(2)`) of prefix and payload where the
/// stream takes it whole. On a pipe that makes a frame of at most `PIPE_BUF` bytes (prefix
/// included) atomic, even with several writers.
///
/// # Examples
///
/// ```
/// use ipcraft_core::{FrameReader, FrameWriter};
///
/// let mut w = FrameWriter::new(Vec::new());
/// w.send(b"ping")?;
/// assert_eq!(w.get_ref(), &[4, 0, 0, 0, b'p', b'i', b'n', b'g']);
///
/// let mut r = FrameReader::new(&w.get_ref()[..]);
/// assert_eq!(r.next_frame()?, Some(&b"ping"[..]));
/// assert_eq!(r.next_frame()?, None);
/// # Ok::<(), ipcraft_core::FrameError>(())
/// ```
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    max: u32,
    /// The unwritten tail of a frame whose write failed part-way; written before anything else.
    pending: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer with the default maximum frame size ([`DEFAULT_MAX_FRAME`]).
    pub fn new(inner: W) -> Self {
        Self::with_max_frame(inner, DEFAULT_MAX_FRAME)
    }

    /// A writer that refuses payloads over `max` bytes.
    pub fn with_max_frame(inner: W, max: u32) -> Self {
        Self {
            inner,
            max,
            pending: Vec::new(),
        }
    }

    /// The maximum payload size.
    pub fn max_frame(&self) -> u32 {
        self.max
    }

    /// Write one frame.
    ///
    /// # Errors
    ///
    /// - [`FrameError::Oversized`] when `payload` is over the maximum; nothing is written.
    /// - [`FrameError::Io`] when the stream fails (including `WouldBlock` and `TimedOut`
    ///   before any byte of this frame went out, and an unwritten tail of an earlier frame that
    ///   still cannot be written): the frame was not accepted, and the caller still has it.
    ///
    /// `Ok(())` means the frame was accepted: written whole, or, when the stream returned
    /// `WouldBlock` or `TimedOut` part-way, written in part with the rest kept to go out first
    /// on the next `send` or [`flush`](Self::flush) ([`has_pending`](Self::has_pending) is
    /// then true). Any other error part-way is returned, with the rest kept the same way.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        let header = encode_header(payload.len(), self.max)?;
        self.write_pending()?;
        let total = HEADER_LEN + payload.len();
        let mut bufs = [IoSlice::new(&header), IoSlice::new(payload)];
        let mut slices = &mut bufs[..];
        let mut written = 0;
        while written < total {
            match self.inner.write_vectored(slices) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "stream accepted no bytes");
                    return self.keep_tail(&header, payload, written, e);
                }
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.keep_tail(&header, payload, written, e),
            }
        }
        Ok(())
    }

    /// Whether part of a frame is waiting to be written (after an error part-way through).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Write any pending frame tail, then flush the stream.
    ///
    /// # Errors
    ///
    /// The stream's error; what was not written stays pending.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.inner.flush()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream, mutably. Writing to it directly while a frame tail is pending
    /// corrupts the stream.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying stream and the unwritten tail of a frame, if any.
    pub fn into_parts(self) -> (W, Vec<u8>) {
        (self.inner, self.pending)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            match self.inner.write(&self.pending) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "stream accepted no bytes",
                    ));
                }
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn keep_tail(
        &mut self,
        header: &[u8; HEADER_LEN],
        payload: &[u8],
        written: usize,
        e: io::Error,
    ) -> Result<(), FrameError> {
        if written == 0 {
            return Err(FrameError::Io(e));
        }
        if written < HEADER_LEN {
            self.pending.extend_from_slice(&header[written..]);
            self.pending.extend_from_slice(payload);
        } else {
            self.pending
                .extend_from_slice(&payload[written - HEADER_LEN..]);
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(()),
            _ => Err(FrameError::Io(e)),
        }
    }
}

/// Reads length-prefixed frames from a byte stream.
///
/// Reads ahead into a buffer of its own (like [`std::io::BufReader`]), so a stream of small
/// frames costs about one `read(2)` per buffer-full rather than two per frame; use
/// [`into_parts`](Self::into_parts) to recover bytes read ahead. The buffer grows to the
/// largest frame seen and is reused, so [`next_frame`](Self::next_frame) allocates nothing
/// in the steady state.
///
/// # Examples
///
/// ```
/// use ipcraft_core::{FrameError, FrameReader};
///
/// // A frame that announces 5 bytes, of which 2 arrived before the end of the stream.
/// let mut r = FrameReader::new(&[5u8, 0, 0, 0, b'h', b'i'][..]);
/// assert!(matches!(
///     r.recv(),
///     Err(FrameError::Truncated { expected: 9, received: 6 })
/// ));
/// ```
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max: u32,
    buf: Vec<u8>,
    /// Valid, unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: Read> FrameReader<R> {
    /// A reader with the default maximum frame size ([`DEFAULT_MAX_FRAME`]).
    pub fn new(inner: R) -> Self {
        Self::with_max_frame(inner, DEFAULT_MAX_FRAME)
    }

    /// A reader that refuses frames announcing more than `max` payload bytes.
    pub fn with_max_frame(inner: R, max: u32) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The maximum payload size.
    pub fn max_frame(&self) -> u32 {
        self.max
    }

    /// The next frame's payload, borrowed from the reader's buffer until the next call, or
    /// `None` at a clean end of stream.
    ///
    /// # Errors
    ///
    /// - [`FrameError::Truncated`] when the stream ends inside a frame.
    /// - [`FrameError::IncomingOversized`] when a length prefix is over the maximum.
    /// - [`FrameError::Io`] when the stream fails; bytes already read are kept, so calling
    ///   again after `WouldBlock` or `TimedOut` continues the same frame.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let frame = loop {
            let avail = self.end - self.start;
            let need = if avail >= HEADER_LEN {
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
                let len = decode_header(h, self.max)?;
                if avail >= HEADER_LEN + len {
                    let at = self.start + HEADER_LEN;
                    break at..at + len;
                }
                HEADER_LEN + len
            } else {
                HEADER_LEN
            };
            self.make_room(need);
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) if avail == 0 => return Ok(None),
                Ok(0) => {
                    return Err(FrameError::Truncated {
                        expected: need,
                        received: avail,
                    });
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        };
        self.start = frame.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[frame]))
    }

    /// The next frame as an owned vector, or `None` at a clean end of stream.
    ///
    /// # Errors
    ///
    /// As [`next_frame`](Self::next_frame).
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        Ok(self.next_frame()?.map(<[u8]>::to_vec))
    }

    /// Whether part of a frame (or a whole one) has been read ahead and not yet returned.
    pub fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream, mutably. Reading from it directly loses the frame boundary.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream and the bytes read ahead but not yet returned as frames.
    pub fn into_parts(mut self) -> (R, Vec<u8>) {
        self.buf.truncate(self.end);
        self.buf.drain(..self.start);
        (self.inner, self.buf)
    }

    /// Make `buf[start..]` hold at least `need` bytes, with room to read at least one more.
    fn make_room(&mut self, need: usize) {
        if self.start > 0 && self.buf.len() - self.start < need.max(INITIAL_READ_BUFFER) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = (self.start + need).max(INITIAL_READ_BUFFER);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stream that hands out at most `chunk` bytes per call and fails with `WouldBlock`
    /// every `fail_every` calls, like a non-blocking pipe.
    struct Choppy {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        calls: usize,
        fail_every: usize,
    }

    impl Choppy {
        fn tick(&mut self) -> io::Result<()> {
            self.calls += 1;
            if self.fail_every > 0 && self.calls.is_multiple_of(self.fail_every) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        }
    }

    impl Read for Choppy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tick()?;
            let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Choppy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tick()?;
            let n = buf.len().min(self.chunk);
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn choppy(data: Vec<u8>, chunk: usize, fail_every: usize) -> Choppy {
        Choppy {
            data,
            pos: 0,
            chunk,
            calls: 0,
            fail_every,
        }
    }

    fn retry<T>(mut f: impl FnMut() -> Result<T, FrameError>) -> Result<T, FrameError> {
        loop {
            match f() {
                Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
        }
    }

    #[test]
    fn oversized_payload_is_refused_before_writing() {
        let mut w = FrameWriter::with_max_frame(Vec::new(), 3);
        let e = w.send(b"four").unwrap_err();
        assert!(matches!(e, FrameError::Oversized { len: 4, max: 3 }));
        assert!(w.get_ref().is_empty());
        assert!(e.to_string().contains("over the maximum of 3 bytes"));
        w.send(b"ok").unwrap();
        assert_eq!(w.get_ref(), &[2, 0, 0, 0, b'o', b'k']);
    }

    #[test]
    fn incoming_oversized_is_refused_without_allocating() {
        let mut r = FrameReader::with_max_frame(&[0xff, 0xff, 0xff, 0x7f][..], 1024);
        let e = r.next_frame().unwrap_err();
        assert!(matches!(
            e,
            FrameError::IncomingOversized {
                len: 0x7fff_ffff,
                max: 1024
            }
        ));
        assert!(r.buf.len() <= INITIAL_READ_BUFFER);
    }

    #[test]
    fn truncated_header_and_body() {
        let mut r = FrameReader::new(&[1u8, 0][..]);
        assert!(matches!(
            r.next_frame(),
            Err(FrameError::Truncated {
                expected: 4,
                received: 2
            })
        ));
        let mut r = FrameReader::new(&[3u8, 0, 0, 0, 1][..]);
        let e = r.next_frame().unwrap_err();
        assert!(matches!(
            e,
            FrameError::Truncated {
                expected: 7,
                received: 5
            }
        ));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn partial_write_keeps_the_tail_and_finishes_it_first() {
        // Accepts 3 bytes, then blocks: the frame is accepted with its tail pending.
        let mut w = FrameWriter::new(choppy(Vec::new(), 3, 2));
        w.send(b"abcdef").unwrap();
        assert!(w.has_pending());
        // The tail cannot go out yet (the stream blocks): the next frame is not accepted.
        let e = w.send(b"x").unwrap_err();
        assert!(matches!(e, FrameError::Io(ref e) if e.kind() == io::ErrorKind::WouldBlock));
        retry(|| w.flush().map_err(FrameError::Io)).unwrap();
        retry(|| w.send(b"g")).unwrap();
        retry(|| w.flush().map_err(FrameError::Io)).unwrap();
        let mut r = FrameReader::new(&w.get_ref().data[..]);
        assert_eq!(r.recv().unwrap().unwrap(), b"abcdef");
        assert_eq!(r.recv().unwrap().unwrap(), b"g");
        assert_eq!(r.recv().unwrap(), None);
    }

    #[test]
    fn into_parts_returns_read_ahead_bytes() {
        let mut r = FrameReader::new(&[1u8, 0, 0, 0, b'a', 9, 9][..]);
        assert_eq!(r.next_frame().unwrap(), Some(&b"a"[..]));
        assert!(r.has_buffered());
        let (_, rest) = r.into_parts();
        assert_eq!(rest, [9, 9]);
    }

    proptest! {
        // Under Miri: few cases, and no failure file (Miri isolates the file system).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn round_trip_through_a_choppy_stream(
            frames in prop::collection::vec(
                prop::collection::vec(any::<u8>(), 0..if cfg!(miri) { 600 } else { 20_000 }),
                0..12,
            ),
            chunk in 1usize..5000,
            fail_every in prop_oneof![Just(0usize), 2usize..5],
        ) {
            let mut w = FrameWriter::new(choppy(Vec::new(), chunk, fail_every));
            for f in &frames {
                // Err means "not accepted": send the same frame again.
                retry(|| w.send(f)).unwrap();
            }
            retry(|| w.flush().map_err(FrameError::Io)).unwrap();
            prop_assert!(!w.has_pending());
            let bytes = w.into_parts().0.data;
            let mut r = FrameReader::new(choppy(bytes, chunk, fail_every));
            for f in &frames {
                let got = retry(|| r.recv()).unwrap();
                prop_assert_eq!(got.as_deref(), Some(&f[..]));
            }
            prop_assert_eq!(retry(|| r.recv()).unwrap(), None);
        }

        #[test]
        fn cutting_a_stream_anywhere_inside_a_frame_is_truncation(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut w = FrameWriter::new(Vec::new());
            for f in &frames { w.send(f).unwrap(); }
            let bytes = w.into_parts().0;
            let cut = cut.index(bytes.len() + 1);
            let mut r = FrameReader::new(&bytes[..cut]);
            let mut boundary = 0;
            for f in &frames {
                let end = boundary + HEADER_LEN + f.len();
                if end <= cut {
                    let got = r.recv().unwrap();
                    prop_assert_eq!(got.as_deref(), Some(&f[..]));
                    boundary = end;
                } else {
                    break;
                }
            }
            match r.recv() {
                Ok(None) => prop_assert_eq!(boundary, cut),
                Err(FrameError::Truncated { received, .. }) => {
                    prop_assert_eq!(received, cut - boundary);
                    prop_assert!(received > 0);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
