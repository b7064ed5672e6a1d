//! The shm channel, SPSC and MPSC (named): the consumer creates the channel as its
//! receiver, producers open it as senders.
//!
//! Acknowledged: `send_deadline` returned (the message is committed in the ring). The
//! consumer takes each message with `recv_slot`, copies it, `release`s it and `flush`es at
//! once (so that "released" means published), then records it.
//!
//! Without restarts (the default until receiver takeover and sender slot reuse exist), the
//! promise is Connection: the ring is readable only by its one receiver, so a killed receiver
//! takes the committed messages it had not released (senders then get `Disconnected` once
//! the ring is full, and stop), and nothing is replaced; a killed sender's committed messages
//! must all arrive.
//!
//! With `--channel-restarts` (receiver takeover and sender slot reuse, issue 14 section 2),
//! a killed receiver is replaced by `Receiver::open` (takeover) and a killed sender by
//! `Sender::open` (its slot reused once drained). The promise is then Held: the takeover
//! delivers every committed message the dead receiver had not released, once; the only
//! message a killed receiver may take with it is the one it released and had not recorded.

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
            tx.send_deadline(bytes, Deadline::after(WAIT))
                .map_err(|e| match e {
                    ChannelError::Disconnected if restarts => Fail::Broken(e.to_string()),
                    ChannelError::Disconnected => Fail::Gone(e.to_string()),
                    ChannelError::TimedOut => Fail::Hung("the channel stayed full".into()),
                    e => Fail::Fatal(format!("send: {e}")),
                })
        },
    );
}
