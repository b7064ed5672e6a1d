//! The shm channel, SPSC and MPSC (named): the consumer creates the channel as its
//! receiver, producers open it as senders.
//!
//! Acknowledged: `send_deadline` returned (the message is committed in the ring). The
//! consumer takes each message with `recv_slot`, copies it, `release`s it and `flush`es at
//! once (so that "released" means published), then records it.
//!
//! With restarts (the default; `--no-channel-restarts` turns them off), a killed receiver
//! is replaced by `Receiver::open` (takeover: `took_over()` is reported) and a killed sender
//! by `Sender::open` (its slot is reused once the receiver drained it; `SendersFull` until
//! then: retry); a sender told `Disconnected` while no receiver is there sends again once
//! the new one took over. The promise is then Held: the takeover delivers every committed
//! message the dead receiver had not released, once, in order per sender; the only message
//! a killed receiver may take with it is the one it released and had not recorded.
//!
//! Without restarts the promise is Connection: the ring is readable only by its one
//! receiver, so a killed receiver takes the committed messages it had not received (senders
//! get `Disconnected` once the ring is full, and stop); a killed sender's committed
//! messages must all arrive.

use crate::child::{Ctx, Fail, FdWatch, Out, Recorder, Stop, WAIT, produce};
use ipcraft::channel::{ChannelError, Receiver, Sender};
use ipcraft::ipcraft_core::Deadline;
use std::any::Any;
use std::time::{Duration, Instant};

/// Ring bytes per sender.
const CAPACITY: usize = 1 << 14;
/// The largest body.
pub const MAX_BODY: usize = 1024;

/// The parent makes nothing: the consumer creates the channel.
pub fn setup(_: &str) -> Result<Box<dyn Any>, String> {
    Ok(Box::new(()))
}

fn open_receiver(ctx: &Ctx) -> Result<Receiver, String> {
    let producers = ctx.n("producers").max(1) as usize;
    if ctx.n("restart") == 0 {
        return if producers == 1 {
            Receiver::create(ctx.name(), CAPACITY)
        } else {
            Receiver::create_mpsc(ctx.name(), producers, CAPACITY)
        }
        .map_err(|e| format!("create: {e}"));
    }
    // Takeover of a channel whose receiver was killed.
    let deadline = Instant::now() + WAIT;
    loop {
        match Receiver::open(ctx.name()) {
            Ok(rx) => return Ok(rx),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("takeover (Receiver::open): {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Receive until told to stop and nothing is left.
pub fn consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    match open_receiver(ctx) {
        Ok(mut rx) => {
            if rx.took_over() {
                out.line("TOOK_OVER");
            }
            out.line("READY");
            loop {
                let got = match rx.recv_slot_deadline(Deadline::after(Duration::from_millis(100))) {
                    Ok(slot) => {
                        let bytes = slot.to_vec();
                        slot.release();
                        Ok(bytes)
                    }
                    Err(e) => Err(e),
                };
                match got {
                    Ok(bytes) => {
                        rx.flush();
                        rec.record(&bytes, Vec::new());
                    }
                    Err(ChannelError::TimedOut | ChannelError::Empty) => {
                        if stop.requested() {
                            break;
                        }
                    }
                    Err(ChannelError::Disconnected) => {
                        if stop.requested() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        out.error(format_args!("recv_slot: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => out.error(e),
    }
    watch.finish(out);
    out.line("DONE");
}

/// Send `count` messages.
pub fn producer(ctx: &Ctx, out: &Out) {
    let name = ctx.name().to_owned();
    let restarts = ctx.n("restarts") == 1;
    produce(
        ctx,
        out,
        false,
        |_| {
            Sender::open(&name).map_err(|e| match e {
                // A slot frees once its dead sender's messages are drained: try again.
                ChannelError::SendersFull { .. } if restarts => Fail::Broken(e.to_string()),
                e => Fail::Fatal(format!("Sender::open: {e}")),
            })
        },
        |tx, bytes, _| {
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                return match tx.send_deadline(bytes, Deadline::after(left)) {
                    Ok(()) => Ok(()),
                    // The receiver is gone now; with restarts a new one takes over, and this
                    // sender can send again (nothing was committed).
                    Err(ChannelError::Disconnected) if restarts && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Err(ChannelError::Disconnected) if restarts => {
                        Err(Fail::Hung("no receiver took over".into()))
                    }
                    Err(ChannelError::Disconnected) => Err(Fail::Gone("receiver gone".into())),
                    Err(ChannelError::TimedOut) => {
                        Err(Fail::Hung("the channel stayed full".into()))
                    }
                    Err(e) => Err(Fail::Fatal(format!("send: {e}"))),
                };
            }
        },
    );
}
