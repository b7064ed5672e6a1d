//! Waiting while the ring is full or empty: spin, yield, then sleep on a doorbell.
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use super::*;

/// What the waiting loop needs from either end.
pub(super) trait End {
    /// The ring error that means "wait": `Full` for a sender, `Empty` for the receiver.
    const WOULD_WAIT: RingError;
    /// Whether to look once more after seeing the peer gone (the receiver drains what was
    /// committed before reporting `Disconnected`).
    const DRAIN: bool;
    /// This end's doorbell.
    fn own_bell(&self) -> ShmBell<'_>;
    /// The segment this end maps (an async wait keeps it mapped while it sleeps).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn shared(&self) -> &Arc<SharedRegion>;
    /// Wake the peer(s) if they sleep (released room or published padding may be what
    /// they wait for).
    fn wake_peers(&self);
    /// Whether the peer closed (flags), or, with `probe`, died (liveness locks: syscalls).
    fn peer_gone(&self, probe: bool) -> bool;
    /// Housekeeping while waiting, before [`peer_gone`](Self::peer_gone) and before a
    /// timeout is reported: the receiver frees the slots of senders that are gone.
    fn tidy(&mut self) {}
    /// Housekeeping once the peer is gone, before `Disconnected` is reported (the receiver
    /// frees every slot it can, so that a sender restarted on that news finds its slot).
    fn tidy_gone(&mut self) {}
    /// What to report once [`peer_gone`](Self::peer_gone) said so.
    fn gone_error(&self) -> ChannelError {
        ChannelError::Disconnected
    }
    /// How many checks to spin before yielding: none when the peer last ran on this CPU.
    fn spin_budget(&self) -> u32;
    /// This end's waiting strategy.
    fn wait(&self) -> Wait;
}

impl End for Sender {
    const WOULD_WAIT: RingError = RingError::Full;
    const DRAIN: bool = false;
    fn own_bell(&self) -> ShmBell<'_> {
        self.tx.memory().producer_bell()
    }
    fn shared(&self) -> &Arc<SharedRegion> {
        &self.tx.memory().region
    }
    fn wake_peers(&self) {
        notify(&consumer_bell(self.region()));
    }
    fn peer_gone(&self, probe: bool) -> bool {
        let r = self.region();
        flag(r, RECEIVER_CLOSED)
            || flag(r, self.tx.memory().ctl + S_POISONED)
            || (probe && flag(r, RECEIVER_TAKEN) && !peer_alive(&self.lock, RECEIVER_LOCK))
    }
    /// `Corrupted` when the receiver poisoned this sender's ring (it is alive and serves the
    /// others), else `Disconnected`.
    fn gone_error(&self) -> ChannelError {
        self.check_open()
            .err()
            .unwrap_or(ChannelError::Disconnected)
    }
    fn wait(&self) -> Wait {
        self.wait
    }
    fn spin_budget(&self) -> u32 {
        let r = self.region();
        let cpu = publish_cpu(r, self.tx.memory().ctl + S_CPU);
        if cpu != u32::MAX && cpu_of(r, RECEIVER_CPU) == cpu {
            0
        } else {
            SPIN
        }
    }
}

impl End for Receiver {
    const WOULD_WAIT: RingError = RingError::Empty;
    const DRAIN: bool = true;
    fn own_bell(&self) -> ShmBell<'_> {
        consumer_bell(&self.region)
    }
    fn shared(&self) -> &Arc<SharedRegion> {
        &self.region
    }
    fn wake_peers(&self) {
        notify_each(self.rx.iter().map(|rx| rx.memory().producer_bell()));
    }
    /// Every sender slot was claimed (or is past the claim deadline), and every sender
    /// closed or died.
    fn peer_gone(&self, probe: bool) -> bool {
        (0..self.rx.len()).all(|i| self.slot_gone(i, probe))
    }
    fn tidy(&mut self) {
        Receiver::tidy(self);
    }
    fn tidy_gone(&mut self) {
        self.reclaim(true);
    }
    fn wait(&self) -> Wait {
        self.wait
    }
    fn spin_budget(&self) -> u32 {
        let r = &*self.region;
        let cpu = publish_cpu(r, RECEIVER_CPU);
        let all_here = self.rx.iter().all(|rx| {
            let ctl = rx.memory().ctl;
            state(r, ctl + S_CLAIMED) != SLOT_CLAIMED || cpu_of(r, ctl + S_CPU) == cpu
        });
        if cpu != u32::MAX && all_here { 0 } else { SPIN }
    }
}

/// Try `attempt` until it succeeds; while the ring is full (or empty): spin (unless the
/// peer shares this CPU), yield, then sleep on this end's doorbell (announce, re-check,
/// wait a slice). Ends with `Disconnected` once the peer closed or died, `TimedOut` at
/// the deadline. The attempt wakes the peer on success.
pub(super) fn wait_loop<E: End, T>(
    end: &mut E,
    mut attempt: impl FnMut(&mut E) -> Result<T, RingError>,
    deadline: Deadline,
) -> Result<T, ChannelError> {
    match attempt(end) {
        Ok(v) => return Ok(v),
        Err(e) if e == E::WOULD_WAIT => {}
        Err(e) => return Err(e.into()),
    }
    let adaptive = end.wait() == Wait::Adaptive;
    if adaptive {
        // Published padding or released room may be what the peer waits for: wake it
        // before spinning (a sleeper does so after announcing, below).
        end.wake_peers();
    }
    // Spin: only the commit word (or the consumer's position) is checked, so that a
    // message is seen within one pause of its arrival; no clock, no flags (bounded).
    let spin = if adaptive { end.spin_budget() } else { 0 };
    if spin > 0 && deadline.has_passed() && !end.peer_gone(false) {
        end.tidy();
        return Err(ChannelError::TimedOut);
    }
    for _ in 0..spin {
        std::hint::spin_loop();
        match attempt(end) {
            Ok(v) => return Ok(v),
            Err(e) if e == E::WOULD_WAIT => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut round: u32 = if adaptive { 0 } else { YIELDS };
    loop {
        let sleeping = round >= YIELDS;
        // Probing the peer's liveness costs a system call: only once a sleep slice has
        // passed without news (a peer that closed sets a flag, checked every time).
        let probe = round > YIELDS;
        end.tidy();
        if end.peer_gone(probe) {
            end.tidy_gone();
            if E::DRAIN {
                return match attempt(end) {
                    Ok(v) => Ok(v),
                    Err(e) if e == E::WOULD_WAIT => Err(ChannelError::Disconnected),
                    Err(e) => Err(e.into()),
                };
            }
            return Err(end.gone_error());
        }
        // One clock read per round (none without a deadline).
        let left = deadline.remaining();
        if left == Some(Duration::ZERO) {
            // The last attempt may have published padding or staged records (a sender that
            // found no room) since the peers were last woken (Sleep mode wakes them only
            // after announcing, below): wake them now, or a sleeping peer waits a slice.
            end.wake_peers();
            return Err(ChannelError::TimedOut);
        }
        if !sleeping {
            std::thread::yield_now();
        } else {
            let seen = announce(&end.own_bell());
            match attempt(end) {
                Ok(v) => {
                    withdraw(&end.own_bell());
                    return Ok(v);
                }
                Err(e) if e == E::WOULD_WAIT => {}
                Err(e) => {
                    withdraw(&end.own_bell());
                    return Err(e.into());
                }
            }
            end.wake_peers();
            // A peer that closed after the check at the top of this round bumped the
            // sequence after setting its flag: if `seen` is that bumped value, the flag is
            // visible now (acquire on the sequence); if not, the wait returns at once.
            if end.peer_gone(false) {
                withdraw(&end.own_bell());
                continue;
            }
            end.own_bell().wait(seen, left);
            withdraw(&end.own_bell());
        }
        round = round.saturating_add(1);
        match attempt(end) {
            Ok(v) => return Ok(v),
            Err(e) if e == E::WOULD_WAIT => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    /// A `Wait::Sleep` sender whose deadline has passed still published padding (the
    /// receiver must pass it to free the room the message waits for): a receiver that
    /// announced sleep must be rung, as after any publication.
    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2), futex(2)")]
    fn a_sleep_mode_send_that_times_out_after_publishing_padding_wakes_the_receiver() {
        let (mut tx, fd) = Sender::anonymous(64).unwrap();
        let mut rx = Receiver::from_fd(fd).unwrap();
        tx.send(&[1; 24]).unwrap(); // a 32-byte record
        assert_eq!(rx.recv().unwrap(), vec![1; 24]); // released (a quarter of the ring)
        tx.set_wait(Wait::Sleep);
        // The receiver has announced that it sleeps (as `wait_loop` does).
        let region = rx.region.clone();
        let seen = announce(&consumer_bell(&region));
        // 40 bytes (a 48-byte record) do not fit in the 32 left before the end of the lap:
        // padding is published, and the record waits for the receiver to pass it.
        assert!(matches!(
            tx.send_timeout(&[2; 40], Duration::ZERO),
            Err(ChannelError::TimedOut)
        ));
        assert_eq!(tx.tx.memory().load_position(true), 64, "padding published");
        assert_ne!(
            consumer_bell(&region).load_seq(),
            seen,
            "the sleeping receiver was not woken: it sleeps a whole slice"
        );
    }

    /// The module docs: a ring found corrupted is skipped and "its sender is told:
    /// `Corrupted`". A sender already waiting for room when its ring is poisoned must be
    /// told so too, not `Disconnected` (its receiver is alive and serving the others).
    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2), futex(2)")]
    fn a_sender_waiting_when_its_ring_is_poisoned_is_told_corrupted() {
        let (mut rx, fd) = Receiver::anonymous_mpsc(2, 64).unwrap();
        let mut tx = Sender::from_fd(fd.try_clone().unwrap()).unwrap();
        tx.try_send(&[1; 56]).unwrap(); // full
        let waiter = std::thread::spawn(move || tx.send_timeout(&[2; 8], Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(300)); // it waits for room by now
        rx.poison(0);
        let r = waiter.join().unwrap();
        assert!(matches!(r, Err(ChannelError::Corrupted(_))), "{r:?}");
    }
}
