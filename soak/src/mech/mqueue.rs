//! POSIX message queue: the parent creates the queue (and removes it); producers send, a
//! consumer receives, either may be killed and replaced.
//!
//! Acknowledged: `mq_send` returned (the kernel holds the message). Promise (Held): the
//! queue outlives both ends, so a killed producer's acknowledged messages and everything a
//! killed consumer had not taken are delivered to the next consumer, once, in order (one
//! priority: FIFO). A killed consumer loses only the one message it had taken and not yet
//! recorded.

use crate::child::{Ctx, Fail, FdWatch, Out, Recorder, Stop, WAIT, produce};
use ipcraft::mqueue::{Access, Attributes, Error, MessageQueue};
use std::any::Any;
use std::time::Duration;

/// Bytes per message the queue takes.
const MSG_SIZE: usize = 1024;
/// The largest body.
pub const MAX_BODY: usize = MSG_SIZE - crate::msg::HEADER;

/// The parent's part: the queue (8 messages; its creator removes the name on drop).
pub fn setup(name: &str) -> Result<Box<dyn Any>, String> {
    let q = MessageQueue::create(name, Attributes::new(8, MSG_SIZE)).map_err(|e| e.to_string())?;
    Ok(Box::new(q))
}

/// Receive until told to stop and the queue is empty.
pub fn consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let watch = FdWatch::start();
    let rec = Recorder::new(ctx, out);
    match MessageQueue::open(ctx.name(), Access::ReadOnly) {
        Ok(q) => {
            out.line("READY");
            let mut buf = vec![0u8; MSG_SIZE];
            loop {
                match q.recv_timeout(&mut buf, Duration::from_millis(100)) {
                    Ok((n, _)) => {
                        rec.record(&buf[..n], Vec::new());
                    }
                    Err(Error::TimedOut { .. }) => {
                        if stop.requested() {
                            break;
                        }
                    }
                    Err(e) => {
                        out.error(format_args!("mq recv: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => out.error(format_args!("mq open: {e}")),
    }
    watch.finish(out);
    out.line("DONE");
}

/// Send `count` messages.
pub fn producer(ctx: &Ctx, out: &Out) {
    let name = ctx.name().to_owned();
    produce(
        ctx,
        out,
        false,
        |_| {
            MessageQueue::open(&name, Access::WriteOnly)
                .map_err(|e| Fail::Fatal(format!("mq open: {e}")))
        },
        |q, bytes, _| {
            q.send_timeout(bytes, 0, WAIT).map_err(|e| match e {
                Error::TimedOut { .. } => Fail::Hung("the queue stayed full".into()),
                e => Fail::Fatal(format!("mq send: {e}")),
            })
        },
    );
}
