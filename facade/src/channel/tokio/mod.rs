//! Async channel ends (feature `tokio`): [`Sender::send`], [`Receiver::recv`] and the rest
//! as futures, and the receiver as a [`Stream`](futures_core::Stream).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ipcraft::channel::ChannelError> {
//! use ipcraft::channel::tokio::{Receiver, Sender};
//!
//! let (mut rx, fd) = Receiver::anonymous(1 << 16)?;
//! // In the other process (blocking or async): `Sender::from_fd(fd)?`
//! # let mut tx = Sender::from_fd(fd)?;
//! tx.send(b"hello").await?;
//! assert_eq!(rx.recv().await?, b"hello");
//! # Ok(()) }
//! ```
//!
//! The async ends speak the same protocol as the blocking ones, so any mix works across
//! processes: a blocking sender and an async receiver, or the reverse. They work on any
//! executor (nothing here needs tokio's reactor); the feature is named after the runtime
//! every other ipcraft crate's async support is for.
//!
//! # Waiting: the fast path makes no system call
//!
//! A future that finds the ring empty (or full) does what a blocking end does, with the
//! executor in place of the kernel's scheduler:
//!
//! 1. spins, polling the commit word (or the consumer's position), while the peer last ran
//!    on another CPU (a few hundred nanoseconds at most);
//! 2. then returns `Pending` with its waker woken at once, up to 64 times, so that other
//!    tasks run and the message is found on the next poll, still without a system call
//!    (when the peer shares this CPU, it also gives the CPU away, `sched_yield`, as the
//!    blocking end does);
//! 3. then sleeps: it announces that it sleeps (the same flag a blocking end sets), looks
//!    once more, and registers the doorbell word with a **doorbell thread**. The peer, which
//!    wakes a sleeping end with `FUTEX_WAKE` whether that end is blocking or async, wakes
//!    the thread, which wakes the task.
//!
//! While messages flow, steps 1 and 2 find them: no kernel object is touched. Only a side
//! that goes to sleep costs a wake-up.
//!
//! # The doorbell, and the options not taken
//!
//! A doorbell thread waits on up to 127 doorbell words at once with `futex_waitv(2)`
//! (Linux 5.16) plus a control word of its own; a process has one such thread per 127
//! tasks asleep at the same time (one, for most programs), started at the first sleep. It
//! wakes each sleeping task at least once per 100 ms slice, so that the task probes whether
//! its peer died (as a blocking end does: a peer killed with SIGKILL is reported as
//! `Disconnected` within a slice, never a hang). On a kernel without `futex_waitv` it polls
//! every millisecond instead.
//!
//! Measured on the project's 2-vCPU VM (`cargo xtask bench`, 5 interleaved runs, medians;
//! rows `async-channel`, `async-channel-sleep`, `channel` and the raw `async-unix-stream`,
//! tokio's `UnixStream`, all from one run), 64 B round trips:
//!
//! | path | same core | across cores |
//! |---|---|---|
//! | async channel, messages flowing (spin, then executor yields) | 2.46 us | 477 ns |
//! | blocking channel (for comparison) | 1.68 us | 489 ns |
//! | async channel, every wait sleeps (doorbell thread) | 11.7 us | 75.6 us |
//! | blocking channel, every wait sleeps (futex) | 2.31 us | 69.5 us |
//! | tokio `UnixStream` (an fd the reactor waits on) | 7.36 us | 71.5 us |
//!
//! Across cores, where this VM's idle CPU halts, every sleeping path costs the same wake-up
//! (~70 us) and the thread is invisible. On one core, a sleeping async end pays two hops
//! (peer, doorbell thread, runtime thread) where an fd doorbell would pay one: the tokio
//! `UnixStream` row is what that path costs with its socket work, 7.4 us against 11.7 us.
//! That is the price of the choice; it is paid only by an end that went to sleep, which an
//! end whose peer keeps it busy does not (the first row).
//!
//! Rejected:
//! - **An eventfd or socketpair travelling with the memfd** (anonymous channels), **a Unix
//!   datagram doorbell** (named ones), as iceoryx2's events: the runtime could wait on
//!   them directly (one hop less on a wake-up), but every wake-up by a *blocking* peer
//!   would become a `write(2)` to a descriptor it must also hold, an anonymous channel
//!   would become two descriptors to hand over, a named one a socket path with its own
//!   trust and cleanup rules, and the segment layout would change. The futex words that
//!   blocking ends already use need none of that, and keep blocking and async ends
//!   interchangeable.
//! - **A thread (or `spawn_blocking`) per sleeping future**: one `FUTEX_WAIT` each, simple,
//!   but a thread per waiting object is what the house rules forbid.
//! - **Polling the ring on a timer**: latency of the timer's period, and CPU for nothing
//!   while idle.
//!
//! # Cancel safety
//!
//! Every async method is cancel-safe: a message is taken from (or written to) the ring only
//! in the poll that returns `Ready`. A dropped future withdraws its announcement and its
//! registration; the next call carries on, and no message is lost or duplicated.

mod bell;
mod receiver;
mod sender;
mod wait;

pub use receiver::Receiver;
pub use sender::Sender;

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::time::Duration;

    /// A receive dropped while it sleeps on the doorbell (a `select!` branch that lost)
    /// withdraws its announcement, so senders stop paying a wake-up per message for a
    /// sleeper that is gone; the next receive gets what was sent meanwhile.
    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2), futex(2)")]
    fn a_dropped_sleeping_receive_withdraws_its_announcement() {
        let rt = ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut rx, fd) = super::Receiver::anonymous(4096).unwrap();
            rx.get_mut().set_wait(Wait::Sleep);
            let region = rx.get_ref().region.clone();
            let mut tx = Sender::from_fd(fd).unwrap();
            let pending = ::tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
            assert!(
                pending.is_err(),
                "nothing was sent: the receive still waited"
            );
            assert!(
                !consumer_bell(&region).is_sleeping(),
                "the dropped receive left its announcement"
            );
            // And one that is woken by a send gets the message.
            let (got, ()) = ::tokio::join!(rx.recv(), async {
                ::tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(b"after").unwrap();
            });
            assert_eq!(got.unwrap(), b"after");
        });
    }
}
