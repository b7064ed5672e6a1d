//! Unix sockets: stream (frames), seqpacket and datagram, every third message carrying a
//! descriptor (a memfd holding the message's stream and sequence number, checked on arrival
//! and closed; the consumer's descriptor count must end where it started).
//!
//! The consumer binds the socket (stream and seqpacket with `bind_reclaiming_stale`, so
//! that its replacement takes over the path a killed one left; datagram with `bind`, after
//! removing the socket file a killed predecessor left). Producers connect (datagram: a
//! connected socket), greet with a `HELLO` message, and reconnect when the connection breaks.
//!
//! Acknowledged: the send returned (the message is in the receiving socket's queue).
//! Promise (Connection): a socket's queue belongs to the receiving socket and dies with its
//! process. While the reader lives, every acknowledged message arrives once, in order
//! (per connection; a stream frame cut by a killed writer is reported as a truncated frame,
//! never delivered short), with its descriptor. A killed reader takes its queue.

use crate::child::{Ctx, Fail, FdWatch, Out, Recorder, Stop, WAIT, carries_fd, fd_for, produce};
use ipcraft::ipcraft_core::Deadline;
use ipcraft::socket::{
    BindOptions, Error, FrameError, SeqpacketConn, SeqpacketListener, UnixDatagram, UnixListener,
    UnixStream,
};
use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The largest body of a stream frame.
pub const STREAM_MAX_BODY: usize = 8192;
/// The largest body of a seqpacket or datagram message.
pub const MESSAGE_MAX_BODY: usize = 2048;

/// The parent makes nothing: the consumer binds the socket.
pub fn setup(_: &str) -> Result<Box<dyn Any>, String> {
    Ok(Box::new(()))
}

fn broken(what: &str, e: Error) -> Fail {
    match e {
        Error::TimedOut { .. } => Fail::Hung(format!("{what}: {e}")),
        Error::Frame(FrameError::Oversized { .. })
        | Error::TooManyFds { .. }
        | Error::EmptyMessage => Fail::Fatal(format!("{what}: {e}")),
        e => Fail::Broken(format!("{what}: {e}")),
    }
}

/// The descriptor message `id` carries, if any.
fn attachment(id: crate::msg::Id) -> Result<Option<OwnedFd>, Fail> {
    if carries_fd(id.seq) {
        fd_for(id).map(Some).map_err(Fail::Fatal)
    } else {
        Ok(None)
    }
}

fn borrowed(fd: &Option<OwnedFd>) -> Vec<BorrowedFd<'_>> {
    fd.iter().map(AsFd::as_fd).collect()
}

/// Accept connections until STOP (and none is pending), each read on a thread of its own.
fn serve<C: Send>(
    out: &Out,
    stop: &Stop,
    mut accept: impl FnMut() -> Result<Option<C>, Error>,
    read: impl Fn(C) + Sync,
) {
    std::thread::scope(|s| {
        loop {
            match accept() {
                Ok(Some(conn)) => {
                    let read = &read;
                    s.spawn(move || read(conn));
                }
                Ok(None) if stop.requested() => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => {
                    out.error(format_args!("accept: {e}"));
                    break;
                }
            }
        }
    });
}

fn pending<C>(r: Result<(C, ipcraft::socket::SocketAddr), Error>) -> Result<Option<C>, Error> {
    match r {
        Ok((c, _)) => Ok(Some(c)),
        Err(Error::WouldBlock { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stream consumer: frames with descriptors.
pub fn stream_consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    match UnixListener::bind_reclaiming_stale(&BindOptions::new().nonblocking(true), ctx.name()) {
        Ok(listener) => {
            out.line("READY");
            serve(
                out,
                stop,
                || pending(listener.try_accept()),
                |conn: UnixStream| {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(WAIT));
                    loop {
                        match conn.recv_frame_with_fds(1 << 20, 4) {
                            Ok(Some((payload, fds))) => {
                                rec.record(&payload, fds);
                            }
                            Ok(None) | Err(Error::ConnectionReset { .. }) => break,
                            // A writer killed mid-frame: the frame is refused, not delivered short.
                            Err(Error::Frame(FrameError::Truncated { .. })) => break,
                            Err(Error::TimedOut { .. }) => {
                                out.hung("a stream connection stayed silent");
                                break;
                            }
                            Err(e) => {
                                out.error(format_args!("recv_frame_with_fds: {e}"));
                                break;
                            }
                        }
                    }
                },
            );
        }
        Err(e) => out.error(format_args!("bind_reclaiming_stale: {e}")),
    }
    watch.finish(out);
    out.line("DONE");
}

/// Stream producer.
pub fn stream_producer(ctx: &Ctx, out: &Out) {
    let path = ctx.name().to_owned();
    produce(
        ctx,
        out,
        true,
        |_| {
            let s =
                UnixStream::connect(&path).map_err(|e| Fail::Broken(format!("connect: {e}")))?;
            s.set_write_timeout(Some(WAIT))
                .map_err(|e| Fail::Fatal(e.to_string()))?;
            Ok(s)
        },
        |s, bytes, id| {
            let fd = attachment(id)?;
            s.send_frame_with_fds(bytes, &borrowed(&fd))
                .map_err(|e| broken("send_frame_with_fds", e))
        },
    );
}

/// Seqpacket consumer.
pub fn seqpacket_consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    match SeqpacketListener::bind_reclaiming_stale(
        &BindOptions::new().nonblocking(true),
        ctx.name(),
    ) {
        Ok(listener) => {
            out.line("READY");
            serve(
                out,
                stop,
                || pending(listener.try_accept()),
                |conn: SeqpacketConn| {
                    let _ = conn.set_nonblocking(false);
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        match conn.recv_with_fds_deadline(&mut buf, 4, Deadline::after(WAIT)) {
                            Ok((0, _))
                            | Err(Error::PeerClosed { .. } | Error::ConnectionReset { .. }) => {
                                break;
                            }
                            Ok((n, fds)) => {
                                rec.record(&buf[..n], fds);
                            }
                            Err(Error::TimedOut { .. }) => {
                                out.hung("a seqpacket connection stayed silent");
                                break;
                            }
                            Err(e) => {
                                out.error(format_args!("seqpacket recv_with_fds: {e}"));
                                break;
                            }
                        }
                    }
                },
            );
        }
        Err(e) => out.error(format_args!("bind_reclaiming_stale: {e}")),
    }
    watch.finish(out);
    out.line("DONE");
}

/// Seqpacket producer.
pub fn seqpacket_producer(ctx: &Ctx, out: &Out) {
    let path = ctx.name().to_owned();
    produce(
        ctx,
        out,
        true,
        |_| SeqpacketConn::connect(&path).map_err(|e| Fail::Broken(format!("connect: {e}"))),
        |s, bytes, id| {
            let fd = attachment(id)?;
            s.send_with_fds_deadline(bytes, &borrowed(&fd), Deadline::after(WAIT))
                .map(drop)
                .map_err(|e| broken("seqpacket send_with_fds", e))
        },
    );
}

/// Datagram consumer: one bound socket, every producer connected to it.
pub fn datagram_consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    // A killed predecessor leaves its socket file: take it over (never a live one's).
    match UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), ctx.name()) {
        Ok(sock) => {
            out.line("READY");
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match sock.recv_with_fds_deadline(
                    &mut buf,
                    4,
                    Deadline::after(Duration::from_millis(100)),
                ) {
                    Ok((n, fds)) => {
                        rec.record(&buf[..n], fds);
                    }
                    Err(Error::TimedOut { .. } | Error::WouldBlock { .. }) => {
                        if stop.requested() {
                            break;
                        }
                    }
                    Err(e) => {
                        out.error(format_args!("datagram recv_with_fds: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => out.error(format_args!("datagram bind: {e}")),
    }
    watch.finish(out);
    out.line("DONE");
}

/// Datagram producer: a connected socket, so that a dead receiver is an error
/// (`ECONNREFUSED`), not silence.
pub fn datagram_producer(ctx: &Ctx, out: &Out) {
    let path = ctx.name().to_owned();
    produce(
        ctx,
        out,
        true,
        |_| {
            let s = UnixDatagram::unbound().map_err(|e| Fail::Fatal(e.to_string()))?;
            s.connect(&path)
                .map_err(|e| Fail::Broken(format!("connect: {e}")))?;
            Ok(s)
        },
        |s, bytes, id| {
            let fd = attachment(id)?;
            s.send_with_fds_deadline(bytes, &borrowed(&fd), Deadline::after(WAIT))
                .map(drop)
                .map_err(|e| broken("datagram send_with_fds", e))
        },
    );
}
