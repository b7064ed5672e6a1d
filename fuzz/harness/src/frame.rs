//! The frame decoder ([`FrameReader`]) on an arbitrary byte stream, cut into arbitrary
//! chunks, with `WouldBlock` and `Interrupted` between them; then the frames it returned
//! through a [`FrameWriter`] on an equally choppy stream, and back.
//!
//! Input: `[max selector] [plan length] [plan bytes...] [stream bytes...]`. The plan says,
//! read by read, how many bytes the stream hands out (0: `WouldBlock`; 255: `Interrupted`).
//!
//! Oracle: a reference decoder written from the wire format alone must agree on every frame
//! and on how the stream ends (clean end, `Truncated` with the same counts, or
//! `IncomingOversized`).

use crate::Input;
use ipcraft_core::frame::{DEFAULT_MAX_FRAME, FrameError, FrameReader, FrameWriter, HEADER_LEN};
use std::io::{self, Read, Write};

/// A stream that hands out (or takes) bytes by a plan, like a non-blocking pipe.
struct Choppy<'a> {
    data: Vec<u8>,
    pos: usize,
    plan: &'a [u8],
    step: usize,
}

impl Choppy<'_> {
    /// The next step's byte count, `Err` for a step that fails.
    fn next_step(&mut self) -> io::Result<usize> {
        let s = if self.plan.is_empty() {
            64
        } else {
            self.plan[self.step % self.plan.len()]
        };
        self.step += 1;
        match s {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            255 => Err(io::ErrorKind::Interrupted.into()),
            n => Ok(usize::from(n)),
        }
    }
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .next_step()?
            .min(buf.len())
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Choppy<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.next_step()?.min(buf.len());
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a stream ends, by the reference decoder or by `FrameReader`.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    Truncated { expected: usize, received: usize },
    Oversized { len: u32 },
}

/// The wire format, decoded the obvious way.
fn reference(stream: &[u8], max: u32) -> (Vec<&[u8]>, End) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        if rest.is_empty() {
            return (frames, End::Clean);
        }
        if rest.len() < HEADER_LEN {
            return (
                frames,
                End::Truncated {
                    expected: HEADER_LEN,
                    received: rest.len(),
                },
            );
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len > max {
            return (frames, End::Oversized { len });
        }
        let total = HEADER_LEN + len as usize;
        if rest.len() < total {
            return (
                frames,
                End::Truncated {
                    expected: total,
                    received: rest.len(),
                },
            );
        }
        frames.push(&rest[HEADER_LEN..total]);
        at += total;
    }
}

/// Retry `f` while it fails with `WouldBlock` (the plan cannot block forever: it has
/// non-zero steps, or none, and a bounded stream).
fn retry<T>(mut f: impl FnMut() -> Result<T, FrameError>) -> Result<T, FrameError> {
    for _ in 0..1_000_000 {
        match f() {
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
    }
    panic!("a stream that makes progress kept returning WouldBlock");
}

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max = match input.u8() & 3 {
        0 => 0,
        1 => 64,
        2 => 4096,
        _ => DEFAULT_MAX_FRAME,
    };
    let plan_len = usize::from(input.u8() % 16);
    let mut plan = input.bytes(plan_len);
    if plan.iter().all(|&s| s == 0 || s == 255) {
        plan = &[]; // only failing steps: no progress, ever
    }
    let stream = input.rest();
    let (want, want_end) = reference(stream, max);

    let mut reader = FrameReader::with_max_frame(
        Choppy {
            data: stream.to_vec(),
            pos: 0,
            plan,
            step: 0,
        },
        max,
    );
    let mut got = Vec::new();
    let end = loop {
        match retry(|| reader.recv()) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= max as usize, "a frame over the maximum");
                got.push(frame);
            }
            Ok(None) => break End::Clean,
            Err(FrameError::Truncated { expected, received }) => {
                break End::Truncated { expected, received };
            }
            Err(FrameError::IncomingOversized { len, max: m }) => {
                assert_eq!(m, max);
                break End::Oversized { len };
            }
            Err(e) => panic!("unexpected error from an in-memory stream: {e}"),
        }
    };
    assert_eq!(got, want, "frames differ from the wire format's");
    assert_eq!(end, want_end, "the stream ends differently");
    if end == End::Clean {
        assert!(!reader.has_buffered());
        assert!(reader.into_parts().1.is_empty());
    }

    // Back through a writer on a stream of the same plan; read again.
    let mut writer = FrameWriter::with_max_frame(
        Choppy {
            data: Vec::new(),
            pos: 0,
            plan,
            step: 0,
        },
        max,
    );
    for f in &got {
        retry(|| writer.send(f)).expect("a frame the reader accepted is one the writer sends");
    }
    retry(|| writer.flush().map_err(FrameError::Io)).expect("flush");
    assert!(!writer.has_pending());
    let (written, pending) = writer.into_parts();
    assert!(pending.is_empty());
    let (again, again_end) = reference(&written.data, max);
    assert_eq!(again, want, "written frames read back differently");
    assert_eq!(again_end, End::Clean);
}
