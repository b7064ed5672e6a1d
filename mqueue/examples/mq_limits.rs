//! Print the message queue limits in force, and what ipcraft says when a queue is above one.
//!
//! ```text
//! cargo run -p ipcraft-mqueue --example mq_limits
//! ```
//!
//! The kernel answers a queue above `fs.mqueue.msg_max` with a bare `EINVAL`, and one that
//! does not fit in the user's `RLIMIT_MSGQUEUE` with `EMFILE` ("too many open files");
//! ipcraft names the limit, its value and how to raise it.

use ipcraft_mqueue::{Attributes, Error, Limits, MessageQueue};

fn main() -> Result<(), Error> {
    let limits = Limits::read()?;
    println!(
        "fs.mqueue.msg_max       = {} messages per queue",
        limits.msg_max
    );
    println!(
        "fs.mqueue.msgsize_max   = {} bytes per message",
        limits.msgsize_max
    );
    println!("fs.mqueue.queues_max    = {} queues", limits.queues_max);
    match limits.rlimit_msgqueue {
        Some(bytes) => {
            println!("RLIMIT_MSGQUEUE         = {bytes} bytes for all of this user's queues")
        }
        None => println!("RLIMIT_MSGQUEUE         = unlimited"),
    }
    let default = Attributes::new(limits.msg_default as usize, limits.msgsize_default as usize);
    println!(
        "a queue of {} x {} bytes takes {} bytes of RLIMIT_MSGQUEUE",
        default.max_messages,
        default.max_message_size,
        Limits::queue_bytes(&default)
    );

    let name = format!("/ipcraft-example-limits-{}", std::process::id());
    let too_deep = Attributes::new(limits.msg_max as usize + 1, 64);
    match MessageQueue::create(&name, too_deep) {
        Ok(_) => println!("\nthis process may go past fs.mqueue.msg_max (CAP_SYS_RESOURCE)"),
        Err(e) => println!(
            "\ncreating {} messages of 64 bytes:\n  {e}",
            too_deep.max_messages
        ),
    }
    Ok(())
}
