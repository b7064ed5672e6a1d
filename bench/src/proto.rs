//! The two protocols every message-passing row runs, written once, generic over how one side
//! sends and receives a message.
//!
//! A mechanism's raw and ipcraft implementations differ only in their [`Sender`] and
//! [`Receiver`]; the loops here are monomorphized for each, so both do exactly the same work
//! around the calls being compared.
//!
//! - Latency (ping-pong): the parent sends a message, the child receives it and sends it back,
//!   the parent receives the echo. Every round trip is timed.
//! - Throughput (one-way stream): the parent sends `count` messages back to back, the child
//!   receives them all and answers with a one-byte ack; the parent times from its first send
//!   to the ack.
//!
//! Both start with a one-byte "ready" message from the child (after it has pinned itself and
//! set up), then a warm-up that is not timed.

use std::hint::black_box;
use std::io;
use std::time::Instant;

use crate::harness::{Kind, Sample, Test};
use crate::stats::Histogram;

/// The child's first message: it is pinned and ready.
const READY: u8 = b'R';
/// The child's answer once it has received every message of a stream.
const ACK: u8 = b'A';

/// One side's way of sending a message.
pub trait Sender {
    /// Send one whole message.
    ///
    /// # Errors
    ///
    /// The mechanism's error, as an [`io::Error`].
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
}

/// One side's way of receiving a message.
pub trait Receiver {
    /// Receive the next message, which must be `len` bytes long; it is borrowed until the next
    /// call.
    ///
    /// # Errors
    ///
    /// The mechanism's error; `UnexpectedEof` when the peer is gone; `InvalidData` when a
    /// message of another length arrived.
    fn recv(&mut self, len: usize) -> io::Result<&[u8]>;
}

/// `msg` when it is `len` bytes long, else an `InvalidData` error.
pub fn check_len(msg: &[u8], len: usize) -> io::Result<&[u8]> {
    if msg.len() == len {
        Ok(msg)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected a message of {len} bytes, got {}", msg.len()),
        ))
    }
}

/// The payload the parent sends: `size` bytes of a recognizable pattern.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The parent's side of `test`.
///
/// # Errors
///
/// Any send or receive error, or a wrong echo.
pub fn parent(test: &Test, tx: &mut impl Sender, rx: &mut impl Receiver) -> io::Result<Sample> {
    rx.recv(1).and_then(|m| expect_byte(m, READY, "ready"))?;
    match test.kind {
        Kind::Latency => parent_latency(test, tx, rx),
        Kind::Throughput => parent_throughput(test, tx, rx),
    }
}

/// The child's side of `test`.
///
/// # Errors
///
/// Any send or receive error, including the parent going away before the end.
pub fn child(test: &Test, tx: &mut impl Sender, rx: &mut impl Receiver) -> io::Result<()> {
    tx.send(&[READY])?;
    match test.kind {
        Kind::Latency => {
            for _ in 0..test.warmup + test.count {
                let m = rx.recv(test.size)?;
                tx.send(m)?;
            }
        }
        Kind::Throughput => {
            for n in [test.warmup, test.count] {
                for _ in 0..n {
                    black_box(rx.recv(test.size)?);
                }
                tx.send(&[ACK])?;
            }
        }
    }
    Ok(())
}

fn expect_byte(m: &[u8], want: u8, what: &str) -> io::Result<()> {
    if m == [want] {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected the child's {what} byte, got {m:?}"),
        ))
    }
}

fn parent_latency(test: &Test, tx: &mut impl Sender, rx: &mut impl Receiver) -> io::Result<Sample> {
    let msg = payload(test.size);
    for _ in 0..test.warmup {
        tx.send(&msg)?;
        if rx.recv(test.size)? != msg {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the echo differs from the message",
            ));
        }
    }
    let mut hist = Histogram::with_capacity(test.count);
    let mut last = Instant::now();
    for _ in 0..test.count {
        tx.send(&msg)?;
        black_box(rx.recv(test.size)?);
        let now = Instant::now();
        hist.record(duration_ns(now - last));
        last = now;
    }
    Ok(Sample::from_histogram(&mut hist))
}

fn parent_throughput(
    test: &Test,
    tx: &mut impl Sender,
    rx: &mut impl Receiver,
) -> io::Result<Sample> {
    let msg = payload(test.size);
    for _ in 0..test.warmup {
        tx.send(&msg)?;
    }
    rx.recv(1).and_then(|m| expect_byte(m, ACK, "ack"))?;
    let start = Instant::now();
    for _ in 0..test.count {
        tx.send(&msg)?;
    }
    rx.recv(1).and_then(|m| expect_byte(m, ACK, "ack"))?;
    Ok(Sample::throughput(test, start.elapsed()))
}

/// Nanoseconds of `d`, saturating (a round trip never lasts 584 years).
pub fn duration_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Raw bytes in through any [`io::Read`]: `read_exact` of one message.
#[derive(Debug)]
pub struct BytesIn<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: io::Read> BytesIn<R> {
    /// Reads from `inner` into a buffer allocated now for messages of up to `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: vec![0; max.max(1)],
        }
    }
}

impl<R: io::Read> Receiver for BytesIn<R> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.inner.read_exact(&mut self.buf[..len])?;
        Ok(&self.buf[..len])
    }
}

/// Raw bytes out through any [`io::Write`]: `write_all` of one message.
#[derive(Debug)]
pub struct BytesOut<W>(pub W);

impl<W: io::Write> Sender for BytesOut<W> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.write_all(msg)
    }
}

impl<W: io::Write> Sender for ipcraft_core::FrameWriter<W> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        ipcraft_core::FrameWriter::send(self, msg).map_err(io::Error::from)
    }
}

impl<R: io::Read> Receiver for ipcraft_core::FrameReader<R> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        match self.next_frame() {
            Ok(Some(m)) => check_len(m, len),
            Ok(None) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(e) => Err(e.into()),
        }
    }
}
