//! Waiting while the ring is full or empty, as a future: the blocking wait loop's steps
//! (`channel/wait.rs`), with "sleep" meaning "register with a doorbell thread and return
//! `Pending`" and "yield" meaning "let the executor run other tasks".

use super::super::*;
use super::bell::{self, Ticket};
use std::task::{Context, Poll};

/// A wait in progress (one per pending call, or the stream's). Dropping it withdraws the
/// announcement and the registration, so a cancelled future leaves no trace.
#[derive(Debug, Default)]
pub(super) struct AsyncWait {
    /// Rounds of yielding so far (to the executor, and the CPU when the peer shares it).
    round: u32,
    /// Whether the spin of the first round is done.
    spun: bool,
    /// The announcement made before sleeping: the region and the offset of the flag.
    announced: Option<(Arc<SharedRegion>, usize)>,
    /// The registration with a doorbell thread.
    ticket: Option<Ticket>,
    /// When this wait first slept: once a slice has passed, the peer's liveness is probed.
    slept_since: Option<Instant>,
}

impl Drop for AsyncWait {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl AsyncWait {
    fn withdraw(&mut self) {
        self.ticket = None;
        if let Some((region, sleeping)) = self.announced.take() {
            set_flag(&region, sleeping, 0);
        }
    }

    /// Start over for the next call (the stream reuses one wait).
    pub(super) fn reset(&mut self) {
        self.withdraw();
        self.round = 0;
        self.spun = false;
        self.slept_since = None;
    }

    /// One poll of [`wait_loop`](super::super::wait::wait_loop)'s loop: `Ready` with what
    /// `attempt` gave, or with `Disconnected` (the peer closed or died) or an error;
    /// `Pending` with the task's waker registered (with the executor for a yield, with a
    /// doorbell thread for a sleep).
    pub(super) fn poll<E: End, T>(
        &mut self,
        end: &mut E,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut(&mut E) -> Result<T, RingError>,
    ) -> Poll<Result<T, ChannelError>> {
        let out = self.step(end, cx, &mut attempt);
        if out.is_ready() {
            self.reset();
        }
        out
    }

    fn step<E: End, T>(
        &mut self,
        end: &mut E,
        cx: &mut Context<'_>,
        attempt: &mut impl FnMut(&mut E) -> Result<T, RingError>,
    ) -> Poll<Result<T, ChannelError>> {
        macro_rules! try_once {
            () => {
                match attempt(end) {
                    Ok(v) => return Poll::Ready(Ok(v)),
                    Err(e) if e == E::WOULD_WAIT => {}
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
            };
        }
        // Back from a sleep (or a yield): the announcement, if any, is withdrawn first, as
        // the blocking loop does after its futex wait.
        self.withdraw();
        try_once!();
        let adaptive = end.wait() == Wait::Adaptive;
        if adaptive && !self.spun {
            self.spun = true;
            // Published padding or released room may be what the peer waits for.
            end.wake_peers();
            // Spin (only when the peer runs on another CPU): a message that is on its way
            // is seen within one pause, with no system call and no trip through the
            // executor.
            for _ in 0..end.spin_budget() {
                std::hint::spin_loop();
                try_once!();
            }
        }
        loop {
            // Liveness probes cost a system call: only after a slice of sleep without news.
            let probe = self.slept_since.is_some_and(|t| t.elapsed() >= SLICE);
            end.tidy();
            if end.peer_gone(probe) {
                end.tidy_gone();
                if E::DRAIN {
                    return match attempt(end) {
                        Ok(v) => Poll::Ready(Ok(v)),
                        Err(e) if e == E::WOULD_WAIT => {
                            Poll::Ready(Err(ChannelError::Disconnected))
                        }
                        Err(e) => Poll::Ready(Err(e.into())),
                    };
                }
                return Poll::Ready(Err(end.gone_error()));
            }
            if probe {
                self.slept_since = Some(Instant::now());
            }
            if adaptive && self.round < YIELDS {
                self.round += 1;
                if end.spin_budget() == 0 {
                    // The peer last ran on this CPU: give it the CPU (as the blocking loop
                    // does) before the executor polls us again.
                    std::thread::yield_now();
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Sleep: announce, look once more, then register with a doorbell thread.
            let bell = end.own_bell();
            let (sleeping, seq) = (bell.sleeping, bell.seq);
            let seen = announce(&bell);
            self.announced = Some((end.shared().clone(), sleeping));
            match attempt(end) {
                Ok(v) => return Poll::Ready(Ok(v)),
                Err(e) if e == E::WOULD_WAIT => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            end.wake_peers();
            if end.peer_gone(false) {
                self.withdraw();
                continue;
            }
            self.slept_since.get_or_insert_with(Instant::now);
            match bell::register(end.shared().clone(), seq, seen, cx.waker().clone()) {
                Ok(ticket) => self.ticket = Some(ticket),
                Err(e) => {
                    return Poll::Ready(Err(ChannelError::Sys(SysError::new(
                        "spawn the doorbell thread",
                        nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc_eagain())),
                    ))));
                }
            }
            return Poll::Pending;
        }
    }
}

/// `EAGAIN`, what `pthread_create` reports when no thread can be made.
fn libc_eagain() -> i32 {
    nix::errno::Errno::EAGAIN as i32
}
