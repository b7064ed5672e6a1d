//! Pipe frames over a FIFO the parent makes (and removes). Producers open it for writing
//! and send frames (the core frame format: a 4-byte length, then the payload) of at most
//! `PIPE_BUF` bytes, each with one `write_atomic`: the kernel writes such a frame whole or
//! not at all, so a writer killed mid-send leaves no half frame behind, and a restarted
//! writer's frames follow whole ones.
//!
//! Acknowledged: `write_atomic` returned (the frame is in the pipe). Promise (Connection):
//! the pipe's content belongs to the pipe, which dies with its last reader; each writer's
//! open is a connection, greeted with a `HELLO` frame. While the reader lives, every
//! acknowledged frame arrives once, in order, whole. A killed reader takes the frames it had
//! not read; a replacement reader is started only once the writer saw `EPIPE` (or finished),
//! because a FIFO keeps a dead reader's unread bytes while a writer holds it, and a new
//! reader must not start in the middle of a frame the dead one half read.

use crate::child::{Ctx, Fail, FdWatch, Out, Recorder, Stop, WAIT, produce};
use ipcraft::ipcraft_core::Deadline;
use ipcraft::ipcraft_core::frame::{HEADER_LEN, decode_header, encode_header};
use ipcraft::pipe::{Error, Fifo, PIPE_BUF};
use std::any::Any;
use std::time::Duration;

/// The largest body: a frame fits in `PIPE_BUF`.
pub const MAX_BODY: usize = PIPE_BUF - HEADER_LEN - crate::msg::HEADER;

/// The parent's part: the FIFO (its creator removes it on drop).
pub fn setup(path: &str) -> Result<Box<dyn Any>, String> {
    Ok(Box::new(Fifo::create(path).map_err(|e| e.to_string())?))
}

/// Read frames until told to stop and no writer is left.
pub fn consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    out.line("READY");
    let reader = loop {
        match Fifo::open_reader(ctx.name(), Some(Duration::from_millis(50))) {
            Ok(r) => break Some(r),
            Err(Error::NoPeer { .. }) if !stop.requested() => {}
            Err(Error::NoPeer { .. }) => break None,
            Err(e) => {
                out.error(format_args!("open_reader: {e}"));
                break None;
            }
        }
    };
    if let Some(reader) = reader {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match reader.read_with_timeout(&mut chunk, Duration::from_millis(100)) {
                Ok(0) => {
                    // No writer now: one may come (a restarted producer), until STOP.
                    if stop.requested() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if !frames(&mut buf, &rec, out) {
                        break;
                    }
                }
                Err(Error::TimedOut { .. }) => {}
                Err(e) => {
                    out.error(format_args!("read: {e}"));
                    break;
                }
            }
        }
        if !buf.is_empty() {
            out.line(format_args!(
                "X {} bytes of a partial frame at the end",
                buf.len()
            ));
        }
    }
    watch.finish(out);
    out.line("DONE");
}

/// Record every whole frame at the start of `buf`; false when the stream is broken.
fn frames(buf: &mut Vec<u8>, rec: &Recorder<'_>, out: &Out) -> bool {
    let mut at = 0;
    while buf.len() - at >= HEADER_LEN {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&buf[at..at + HEADER_LEN]);
        let len = match decode_header(h, PIPE_BUF as u32) {
            Ok(len) => len,
            Err(e) => {
                out.line(format_args!("X frame header: {e}"));
                buf.clear();
                return false;
            }
        };
        if buf.len() - at - HEADER_LEN < len {
            break;
        }
        rec.record(&buf[at + HEADER_LEN..at + HEADER_LEN + len], Vec::new());
        at += HEADER_LEN + len;
    }
    buf.drain(..at);
    true
}

/// Send `count` frames, reopening the FIFO when its reader is gone.
pub fn producer(ctx: &Ctx, out: &Out) {
    let path = ctx.name().to_owned();
    let mut frame = Vec::with_capacity(PIPE_BUF);
    produce(
        ctx,
        out,
        true,
        |_| {
            Fifo::open_writer(&path, Some(Duration::from_millis(100))).map_err(|e| match e {
                Error::NoPeer { .. } => Fail::Broken(e.to_string()),
                e => Fail::Fatal(format!("open_writer: {e}")),
            })
        },
        |w, bytes, _| {
            frame.clear();
            let header = encode_header(bytes.len(), PIPE_BUF as u32)
                .map_err(|e| Fail::Fatal(e.to_string()))?;
            frame.extend_from_slice(&header);
            frame.extend_from_slice(bytes);
            w.write_atomic_deadline(&frame, Deadline::after(WAIT))
                .map_err(|e| match e {
                    Error::BrokenPipe => Fail::Broken("EPIPE".into()),
                    Error::TimedOut { .. } => {
                        Fail::Hung("a frame found no room in the pipe".into())
                    }
                    e => Fail::Fatal(format!("write_atomic: {e}")),
                })
        },
    );
}
