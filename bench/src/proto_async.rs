//! [`crate::proto`]'s two protocols, as async loops: the same messages, ready byte, warm-up
//! and acks, run inside one `current_thread` tokio runtime per process (each process is
//! pinned to one CPU, so a runtime with one thread is what a service there would use).
//!
//! A mechanism's raw tokio baseline and its ipcraft async implementation differ only in their
//! [`AsyncSender`] and [`AsyncReceiver`].
#![allow(async_fn_in_trait)] // Used with static dispatch only, inside this crate.

use std::hint::black_box;
use std::io;
use std::time::Instant;

use crate::harness::{Kind, Sample, Test};
use crate::proto::duration_ns;
use crate::stats::Histogram;

const READY: u8 = b'R';
const ACK: u8 = b'A';

/// One side's way of sending a message, awaiting room.
pub trait AsyncSender {
    /// Send one whole message.
    ///
    /// # Errors
    ///
    /// The mechanism's error, as an [`io::Error`].
    async fn send(&mut self, msg: &[u8]) -> io::Result<()>;
}

/// One side's way of receiving a message, awaiting it.
pub trait AsyncReceiver {
    /// Receive the next message, which must be `len` bytes long; borrowed until the next call.
    ///
    /// # Errors
    ///
    /// The mechanism's error; `UnexpectedEof` when the peer is gone; `InvalidData` for a
    /// message of another length.
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]>;
}

/// A `current_thread` runtime with I/O and time.
///
/// # Errors
///
/// The runtime could not be built.
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
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

/// The parent's side of `test`.
///
/// # Errors
///
/// Any send or receive error, or a wrong echo.
pub async fn parent(
    test: &Test,
    tx: &mut impl AsyncSender,
    rx: &mut impl AsyncReceiver,
) -> io::Result<Sample> {
    expect_byte(rx.recv(1).await?, READY, "ready")?;
    let msg = payload(test.size);
    match test.kind {
        Kind::Latency => {
            for _ in 0..test.warmup {
                tx.send(&msg).await?;
                if rx.recv(test.size).await? != msg {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the echo differs from the message",
                    ));
                }
            }
            let mut hist = Histogram::with_capacity(test.count);
            let mut last = Instant::now();
            for _ in 0..test.count {
                tx.send(&msg).await?;
                black_box(rx.recv(test.size).await?);
                let now = Instant::now();
                hist.record(duration_ns(now - last));
                last = now;
            }
            Ok(Sample::from_histogram(&mut hist))
        }
        Kind::Throughput => {
            for _ in 0..test.warmup {
                tx.send(&msg).await?;
            }
            expect_byte(rx.recv(1).await?, ACK, "ack")?;
            let start = Instant::now();
            for _ in 0..test.count {
                tx.send(&msg).await?;
            }
            expect_byte(rx.recv(1).await?, ACK, "ack")?;
            Ok(Sample::throughput(test, start.elapsed()))
        }
    }
}

/// The child's side of `test`.
///
/// # Errors
///
/// Any send or receive error, including the parent going away before the end.
pub async fn child(
    test: &Test,
    tx: &mut impl AsyncSender,
    rx: &mut impl AsyncReceiver,
) -> io::Result<()> {
    tx.send(&[READY]).await?;
    match test.kind {
        Kind::Latency => {
            for _ in 0..test.warmup + test.count {
                let m = rx.recv(test.size).await?;
                tx.send(m).await?;
            }
        }
        Kind::Throughput => {
            for n in [test.warmup, test.count] {
                for _ in 0..n {
                    black_box(rx.recv(test.size).await?);
                }
                tx.send(&[ACK]).await?;
            }
        }
    }
    Ok(())
}

/// The parent's side (`Some(sample)`) or the child's (`None`) of `test`.
///
/// # Errors
///
/// As [`parent`] and [`child`].
pub async fn side(
    test: &Test,
    parent: bool,
    tx: &mut impl AsyncSender,
    rx: &mut impl AsyncReceiver,
) -> io::Result<Option<Sample>> {
    if parent {
        self::parent(test, tx, rx).await.map(Some)
    } else {
        self::child(test, tx, rx).await.map(|()| None)
    }
}
