//! The receiving end, [`Receiver`], and its in-place slot, [`RecvSlot`].
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use super::*;

/// The receiving end of a cross-process channel: one per channel, so no `try_clone`;
/// `TryFrom<OwnedFd>` is [`Receiver::from_fd`] (and, as for [`Sender`], no conversion back
/// into an `OwnedFd`).
#[derive(Debug)]
pub struct Receiver {
    pub(super) rx: Vec<Consumer<SlotRing>>,
    /// Rings a sender corrupted: reported once, then skipped.
    pub(super) poisoned: Vec<bool>,
    /// Where the round robin starts next.
    pub(super) next: usize,
    pub(super) region: Arc<SharedRegion>,
    pub(super) lock: OwnedFd,
    pub(super) wait: Wait,
    /// Past it, slots no sender claimed no longer keep the channel connected.
    pub(super) claim_deadline: Deadline,
    /// Messages received, counted in MPSC channels only: every [`RECLAIM_EVERY`] a busy
    /// receiver looks for slots to free (an idle one does when it waits).
    pub(super) received: u32,
    /// When the senders' liveness locks were last probed (see [`Receiver::tidy`]).
    pub(super) last_probe: Instant,
    /// The process that made this end: a process forked from it that drops its copy
    /// must not close the channel under the owner.
    pub(super) owner: u32,
    /// Whether this receiver took over from one that closed or died.
    pub(super) took_over: bool,
    /// Offset of the journal word of ring 0 (see [`Layout::journal`]).
    pub(super) journal: usize,
}

impl Receiver {
    /// A new anonymous channel of `capacity` bytes: the receiver, and the memfd to hand to
    /// the sending process ([`Sender::from_fd`]).
    ///
    /// # Errors
    ///
    /// As [`Sender::anonymous`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        Self::anonymous_mpsc(1, capacity)
    }

    /// A new anonymous MPSC channel: up to `producers` senders, each with a ring of
    /// `capacity` bytes. Hand a duplicate of the memfd to each sending process; each
    /// [`Sender::from_fd`] claims a slot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadProducers`], and as [`Sender::anonymous`].
    pub fn anonymous_mpsc(
        producers: usize,
        capacity: usize,
    ) -> Result<(Self, OwnedFd), ChannelError> {
        let (made, fd) = new_anonymous(producers, capacity, &[])?;
        Ok((Self::with(made)?, fd))
    }

    /// The receiving end of a channel whose memfd was received.
    ///
    /// # Errors
    ///
    /// As [`Sender::from_fd`], and [`ChannelError::ReceiverTaken`] while another receiver
    /// lives (one that closed or died is taken over: see
    /// [`took_over`](Self::took_over)).
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::with(attach_fd(fd)?)
    }

    /// Create a named channel and be its receiver; see [`Sender::create`].
    ///
    /// # Errors
    ///
    /// As [`Sender::create`].
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        Self::create_mpsc(name, 1, capacity)
    }

    /// Create a named MPSC channel for up to `producers` senders ([`Sender::open`]), each
    /// with a ring of `capacity` bytes, and be its receiver.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadProducers`], and as [`Sender::create`].
    pub fn create_mpsc(
        name: &str,
        producers: usize,
        capacity: usize,
    ) -> Result<Self, ChannelError> {
        NamedOptions::new().create_receiver(name, producers, capacity)
    }

    /// Open the receiving end of a named channel another process created.
    ///
    /// # Errors
    ///
    /// As [`Sender::open`], and [`ChannelError::ReceiverTaken`] while another receiver
    /// lives (one that closed or died is taken over: see
    /// [`took_over`](Self::took_over)).
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        NamedOptions::new().open_receiver(name)
    }

    pub(super) fn with(made: Made) -> Result<Self, ChannelError> {
        restart::receiver(made)
    }

    /// Whether this receiver took over the channel from a receiver that closed or died
    /// (see the module docs, "Restarting an end"): it receives every message the previous
    /// one had not released, then what the senders send next.
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    /// From `deadline` on, sender slots that no sender has claimed yet no longer keep the
    /// channel connected: once every sender that did claim one closed or died (and all
    /// they sent was received), receives report [`ChannelError::Disconnected`] instead of
    /// waiting for senders that never came. `Deadline::after(Duration::ZERO)` says so
    /// at once. A sender that claims a slot later is still received from.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::channel::{ChannelError, Receiver, Sender};
    /// use ipcraft::ipcraft_core::Deadline;
    /// use std::time::Duration;
    ///
    /// // Room for four senders; only one ever comes.
    /// let (mut rx, fd) = Receiver::anonymous_mpsc(4, 4096)?;
    /// let mut tx = Sender::from_fd(fd)?;
    /// tx.send(b"only")?;
    /// drop(tx);
    /// rx.set_claim_deadline(Deadline::after(Duration::ZERO));
    /// assert_eq!(rx.recv()?, b"only");
    /// assert!(matches!(rx.recv(), Err(ChannelError::Disconnected)));
    /// # Ok::<(), ChannelError>(())
    /// ```
    pub fn set_claim_deadline(&mut self, deadline: Deadline) {
        self.claim_deadline = deadline;
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        self.rx
            .first()
            .map_or(0, |c| max_message_len(c.memory().capacity()))
    }

    /// How many senders the channel takes (1 unless made for MPSC).
    pub fn max_senders(&self) -> usize {
        self.rx.len()
    }

    /// How this end waits while the channel is empty (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Receive the next message, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Disconnected`] once every sender closed or died and every message
    /// committed has been received; [`ChannelError::Corrupted`].
    pub fn recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.recv_deadline(Deadline::never())
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::TimedOut`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, ChannelError> {
        self.recv_deadline(Deadline::after(timeout))
    }

    /// [`recv`](Self::recv), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>, ChannelError> {
        let slot = self.recv_slot_deadline(deadline)?;
        let v = slot.slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Receive the next message into `buf` (no allocation), waiting while the channel is
    /// empty; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::BufferTooSmall`] with the length
    /// needed (the message stays in the channel: call again with a larger buffer).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::channel::{ChannelError, Receiver, Sender};
    ///
    /// let (mut tx, fd) = Sender::anonymous(4096)?;
    /// let mut rx = Receiver::from_fd(fd)?;
    /// tx.send(b"hello")?;
    /// let mut small = [0u8; 2];
    /// assert!(matches!(rx.recv_into(&mut small), Err(ChannelError::BufferTooSmall { needed: 5 })));
    /// let mut buf = [0u8; 64];
    /// let n = rx.recv_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<(), ChannelError>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        self.recv_into_deadline(buf, Deadline::never())
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`ChannelError::TimedOut`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, ChannelError> {
        self.recv_into_deadline(buf, Deadline::after(timeout))
    }

    /// Receive the next message into `buf` (no allocation), waiting at most until
    /// `deadline`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout), and [`ChannelError::BufferTooSmall`] (the
    /// message stays in the channel, the next one received).
    pub fn recv_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize, ChannelError> {
        copy_into(self.recv_slot_deadline(deadline)?, buf)
    }

    /// Receive the next message if there is one now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`]; [`ChannelError::Disconnected`]; [`ChannelError::Corrupted`].
    pub fn try_recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        let slot = self.try_recv_slot()?;
        let v = slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Receive the next message into `buf` if there is one now; returns its length.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), and [`ChannelError::BufferTooSmall`] (the message
    /// stays, the next one received).
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        copy_into(self.try_recv_slot()?, buf)
    }

    /// The next message in place, if there is one now (see [`recv_slot`](Self::recv_slot)).
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        let i = match self.ready() {
            Ok(i) => i,
            Err(RingError::Empty) if self.tidy_then_gone() => {
                // Look once more: a sender may have committed just before closing.
                match self.ready() {
                    Ok(i) => i,
                    Err(RingError::Empty) => return Err(ChannelError::Disconnected),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(RingError::Empty) => return Err(ChannelError::Empty),
            Err(e) => return Err(e.into()),
        };
        self.slot_at(i)
    }

    /// The next message in place, waiting while the channel is empty: read it through
    /// the [`RecvSlot`], then [`release`](RecvSlot::release) it.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        self.recv_slot_deadline(Deadline::never())
    }

    /// [`recv_slot`](Self::recv_slot), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_slot_timeout(&mut self, timeout: Duration) -> Result<RecvSlot<'_>, ChannelError> {
        self.recv_slot_deadline(Deadline::after(timeout))
    }

    /// [`recv_slot`](Self::recv_slot), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_slot_deadline(&mut self, deadline: Deadline) -> Result<RecvSlot<'_>, ChannelError> {
        let i = wait_loop(self, Self::ready, deadline)?;
        self.slot_at(i)
    }

    /// The message `ready` found in ring `i`.
    pub(super) fn slot_at(&mut self, i: usize) -> Result<RecvSlot<'_>, ChannelError> {
        if self.rx.len() > 1 {
            self.received = self.received.wrapping_add(1);
            if self.received.is_multiple_of(RECLAIM_EVERY) {
                self.tidy();
            }
        }
        let journal = self.journal(i);
        // The next scan starts here until the message is released or consumed: a slot
        // dropped unread (or a buffer too small) leaves this message the next one received.
        self.next = i;
        let after = if i + 1 == self.rx.len() { 0 } else { i + 1 };
        let unreleased_max = self.rx[i].memory().cap as u64 / 4;
        let ctl = self.rx[i].memory().ctl;
        let (rx, poisoned, region, next) = (
            &mut self.rx,
            &mut self.poisoned,
            &self.region,
            &mut self.next,
        );
        match rx[i].read() {
            Ok(slot) => Ok(RecvSlot {
                slot,
                sender: i,
                journal,
                unreleased_max,
                next,
                after,
            }),
            Err(e) => {
                // It was ready a moment ago: only a sender breaking the protocol takes a
                // commit back.
                poisoned[i] = true;
                set_flag(region, ctl + S_POISONED, 1);
                bump(region, ctl + S_SPACE_SEQ);
                Err(match e {
                    RingError::Empty => {
                        ChannelError::Corrupted("a sender took back a committed message")
                    }
                    e => e.into(),
                })
            }
        }
    }

    /// Publish the position of every message [`consume`](RecvSlot::consume)d, freeing its
    /// room, and wake senders waiting for room.
    pub fn flush(&mut self) {
        for rx in &mut self.rx {
            rx.flush();
        }
        self.wake_peers();
    }

    /// The first sender ring (round robin) with a message ready.
    #[inline]
    pub(super) fn ready(&mut self) -> Result<usize, RingError> {
        let wake = |ring: &SlotRing| notify(&ring.producer_bell());
        match crate::ring::slots::ready(&mut self.rx, &self.poisoned, self.next, wake) {
            Ok(i) => Ok(i),
            Err((_, RingError::Empty)) => Err(RingError::Empty),
            Err((i, e)) => {
                self.poison(i);
                Err(e)
            }
        }
    }

    /// Free the slots of senders that are gone, then tell whether all are.
    fn tidy_then_gone(&mut self) -> bool {
        self.tidy();
        let gone = self.peer_gone(true);
        if gone {
            // About to report `Disconnected`: free every slot that can be freed now, so
            // that a sender restarted on that news finds its slot.
            self.reclaim(true);
        }
        gone
    }

    /// Stop reading sender `i`'s ring (reported once by the caller), and tell its sender.
    pub(super) fn poison(&mut self, i: usize) {
        self.poisoned[i] = true;
        let ctl = self.rx[i].memory().ctl;
        set_flag(&self.region, ctl + S_POISONED, 1);
        bump(&self.region, ctl + S_SPACE_SEQ);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            // A copy in a process forked from the receiver's: the receiver lives on.
            return;
        }
        set_flag(&self.region, RECEIVER_CLOSED, 1);
        for rx in &self.rx {
            bump(&self.region, rx.memory().ctl + S_SPACE_SEQ);
        }
    }
}

/// The next message, in place in the channel (see [`Receiver::recv_slot`]): read it with
/// [`read_at`](Self::read_at), [`io::Read`] or [`to_vec`](Self::to_vec) (copies into your
/// memory, so a misbehaving sender cannot cause undefined behaviour here), then
/// [`release`](Self::release) it. Dropping it leaves the message in the channel, the next
/// one received.
#[derive(Debug)]
#[must_use = "a RecvSlot dropped without `release` or `consume` leaves the message in the channel"]
pub struct RecvSlot<'a> {
    pub(super) slot: ReadSlot<'a, SlotRing>,
    pub(super) sender: usize,
    /// Offset of the journal word of the sender's ring (see [`Layout::journal`]).
    pub(super) journal: usize,
    /// Publish the consumer's position once this many bytes are consumed (a quarter of
    /// the ring), or when the ring is found empty.
    pub(super) unreleased_max: u64,
    /// The receiver's round-robin start, and where it moves once this message is done.
    pub(super) next: &'a mut usize,
    pub(super) after: usize,
}

impl RecvSlot<'_> {
    /// The slot of the sender that sent it ([`Sender::slot`]; 0 in a single-sender
    /// channel). Order is kept per sender.
    pub fn sender(&self) -> usize {
        self.sender
    }
    /// The message's length.
    pub fn len(&self) -> usize {
        self.slot.len()
    }
    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }
    /// Copy message bytes from `offset` into `dst`; returns how many.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        self.slot.read_at(offset, dst)
    }
    /// The whole message, copied into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slot.to_vec()
    }
    /// Done with the message. Its room is published (and a sender waiting for room
    /// woken) once a quarter of the ring has been consumed, or when the receiver next finds
    /// the ring empty: so that a receive costs no store to a shared line and no fence
    /// unless a sender may need the room. [`Receiver::flush`] publishes at once.
    pub fn release(self) {
        let journal = self.journal;
        *self.next = self.after;
        crate::ring::slots::release(
            self.slot,
            self.unreleased_max,
            |ring: &SlotRing, pos| record_at(ring, journal, pos),
            |ring: &SlotRing| notify(&ring.producer_bell()),
        );
    }
    /// Done, but free the room only at [`Receiver::flush`] or when the receiver finds
    /// the channel empty.
    pub fn consume(self) {
        *self.next = self.after;
        let journal = self.journal;
        record(self.slot.consume(), journal);
    }
}

impl io::Read for RecvSlot<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.slot.read(buf)
    }
}

/// Copy `slot`'s message into `buf` and release it; a buffer too small leaves it (and
/// the round robin) where it was.
///
/// Always inlined: called out of line, the cross-core 64 B round trip of `recv_into` grew
/// from 160 to 210 ns (cache line 100 ns), and from 541 to 661 ns (cache line 400 ns)
/// when the host placed the vCPUs far apart (`ipcraft-bench --filter cacheline/,channel/`).
#[inline(always)]
pub(super) fn copy_into(slot: RecvSlot<'_>, buf: &mut [u8]) -> Result<usize, ChannelError> {
    let len = slot.len();
    let Some(dst) = buf.get_mut(..len) else {
        return Err(ChannelError::BufferTooSmall { needed: len });
    };
    slot.read_at(0, dst);
    slot.release();
    Ok(len)
}

/// [`Receiver::from_fd`]: the receiving end of an anonymous channel whose descriptor was
/// received.
///
/// # Errors
///
/// As [`Receiver::from_fd`].
impl TryFrom<OwnedFd> for Receiver {
    type Error = ChannelError;

    fn try_from(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::from_fd(fd)
    }
}
