//! The mechanisms: each file says what "acknowledged" means for it and what it promises
//! when a process dies.

pub mod channel;
pub mod mqueue;
pub mod pipe;
pub mod shm;
pub mod socket;
pub mod sync;

use crate::child::{Ctx, Out, Stop};
use crate::env::Run;
use crate::ledger::Promise;
use crate::round::Spec;

fn ipc(run: &Run, round: u64) -> String {
    run.ipc_name(round, "obj")
}

fn path(run: &Run, round: u64) -> String {
    run.path(round, "sock").to_string_lossy().into_owned()
}

/// The message mechanisms, in table order (the shm races, which are no messages, come
/// after them: `SHM`).
pub fn specs(run: &Run) -> Vec<Spec> {
    let restarts = run.channel_restarts;
    let base = Spec {
        name: "",
        promise: Promise::Connection,
        producers: 1,
        max_body: 0,
        fds: false,
        restart_consumer: true,
        restart_producer: true,
        consumer_waits_for_break: false,
        setup: socket::setup,
        name_of: path,
    };
    vec![
        Spec {
            name: "pipe-frames",
            max_body: pipe::MAX_BODY,
            consumer_waits_for_break: true,
            setup: pipe::setup,
            ..base
        },
        Spec {
            name: "unix-stream+fds",
            producers: 2,
            max_body: socket::STREAM_MAX_BODY,
            fds: true,
            ..base
        },
        Spec {
            name: "unix-datagram+fds",
            producers: 2,
            max_body: socket::MESSAGE_MAX_BODY,
            fds: true,
            ..base
        },
        Spec {
            name: "unix-seqpacket+fds",
            producers: 2,
            max_body: socket::MESSAGE_MAX_BODY,
            fds: true,
            ..base
        },
        Spec {
            name: "mqueue",
            promise: Promise::Held,
            max_body: mqueue::MAX_BODY,
            setup: mqueue::setup,
            name_of: ipc,
            ..base
        },
        Spec {
            name: "mutex+condvar",
            promise: Promise::Held,
            producers: 2,
            setup: sync::setup,
            name_of: ipc,
            ..base
        },
        Spec {
            name: "channel-spsc",
            promise: if restarts {
                Promise::Held
            } else {
                Promise::Connection
            },
            max_body: channel::MAX_BODY,
            restart_consumer: restarts,
            restart_producer: restarts,
            setup: channel::setup,
            name_of: ipc,
            ..base
        },
        Spec {
            name: "channel-mpsc",
            promise: if restarts {
                Promise::Held
            } else {
                Promise::Connection
            },
            producers: 3,
            max_body: channel::MAX_BODY,
            restart_consumer: restarts,
            restart_producer: restarts,
            setup: channel::setup,
            name_of: ipc,
            ..base
        },
    ]
}

/// The name of the shm race in the table.
pub const SHM: &str = "shm-open-or-create";

/// Run the child role `ctx` asks for.
pub fn child(ctx: &Ctx) -> Result<(), String> {
    let out = Out::new();
    let stop = Stop::watch();
    match (ctx.mech.as_str(), ctx.role.as_str()) {
        ("pipe-frames", "consumer") => pipe::consumer(ctx, &out, &stop),
        ("pipe-frames", "producer") => pipe::producer(ctx, &out),
        ("unix-stream+fds", "consumer") => socket::stream_consumer(ctx, &out, &stop),
        ("unix-stream+fds", "producer") => socket::stream_producer(ctx, &out),
        ("unix-datagram+fds", "consumer") => socket::datagram_consumer(ctx, &out, &stop),
        ("unix-datagram+fds", "producer") => socket::datagram_producer(ctx, &out),
        ("unix-seqpacket+fds", "consumer") => socket::seqpacket_consumer(ctx, &out, &stop),
        ("unix-seqpacket+fds", "producer") => socket::seqpacket_producer(ctx, &out),
        ("mqueue", "consumer") => mqueue::consumer(ctx, &out, &stop),
        ("mqueue", "producer") => mqueue::producer(ctx, &out),
        ("mutex+condvar", "consumer") => sync::consumer(ctx, &out, &stop),
        ("mutex+condvar", "producer") => sync::producer(ctx, &out),
        ("channel-spsc" | "channel-mpsc", "consumer") => channel::consumer(ctx, &out, &stop),
        ("channel-spsc" | "channel-mpsc", "producer") => channel::producer(ctx, &out),
        ("shm", "racer") => shm::racer(ctx, &out, &stop),
        (m, r) => return Err(format!("no role {r} for {m}")),
    }
    Ok(())
}
