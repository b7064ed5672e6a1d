//! The sending end, [`Sender`], and its in-place slot, [`SendSlot`].
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use super::*;

/// The sending end of a cross-process channel.
///
/// # Cloning, adopting, giving up
///
/// There is no `try_clone`: a sender is one slot of the channel (the only one in an SPSC
/// channel), whose ring has exactly one producer. Another producer opens a slot of its own
/// ([`Sender::open`], [`Sender::from_fd`] on an MPSC channel). `TryFrom<OwnedFd>` is
/// [`Sender::from_fd`]. There is no `From<Sender> for OwnedFd`: an end's descriptor holds the
/// lock that tells the peer this end is alive, so handing it out would keep a closed end
/// looking alive; hand the peer the descriptor [`Sender::anonymous`] returned, or the name.
#[derive(Debug)]
pub struct Sender {
    pub(super) tx: Producer<SlotRing>,
    pub(super) lock: OwnedFd,
    /// This sender's slot.
    pub(super) slot: usize,
    /// Sends since the CPU was last published.
    pub(super) sends: u32,
    pub(super) wait: Wait,
    /// The process that made this end (see [`Receiver`]'s field of the same name).
    pub(super) owner: u32,
}

impl Sender {
    /// A new anonymous channel of `capacity` bytes (a power of two): the sender, and the
    /// memfd to hand to the receiving process ([`Receiver::from_fd`]) at spawn or over a
    /// Unix socket.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadCapacity`]; [`ChannelError::Shm`]; [`ChannelError::Sys`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (made, fd) = new_anonymous(1, capacity, &[])?;
        Ok((Self::with(made)?, fd))
    }

    /// The sending end of a channel whose memfd was received; in an MPSC channel, claims
    /// the next free sender slot.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] or [`ChannelError::Corrupted`] for a descriptor that is not a
    /// sealed channel segment; [`ChannelError::IncompatibleVersion`];
    /// [`ChannelError::SendersFull`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::with(attach_fd(fd)?)
    }

    /// Create a named channel (`/name`, mode 0600) of `capacity` bytes and be its sender;
    /// an unrelated process opens the other end with [`Receiver::open`]. The creator owns
    /// the name and removes it when dropped.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BadCapacity`]; [`ChannelError::Shm`] (bad name, `AlreadyExists`).
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        NamedOptions::new().create_sender(name, capacity)
    }

    /// Open the sending end of a named channel another process created (claiming a free
    /// sender slot). The segment must belong to this user (or root) and be open to nobody
    /// else (mode 0600): whoever can write it can shrink it under us.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Shm`] (`NotFound`, `WrongTag` for a segment that is not a channel,
    /// `Untrusted` for one an untrusted user owns or that its group or others may access);
    /// [`ChannelError::IncompatibleVersion`]; [`ChannelError::SendersFull`];
    /// [`ChannelError::Corrupted`].
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        NamedOptions::new().open_sender(name)
    }

    pub(super) fn with((region, layout): Made) -> Result<Self, ChannelError> {
        let lock = own_description(region.segment())?;
        let slot = claim_slot(&region, layout, &lock)?.ok_or(ChannelError::SendersFull {
            max: layout.producers,
        })?;
        let ctl = layout.slot(slot);
        publish_cpu(&region, ctl + S_CPU);
        Ok(Self {
            tx: Producer::attach(layout.ring(&region, slot)),
            lock,
            slot,
            sends: 0,
            wait: Wait::default(),
            owner: std::process::id(),
        })
    }

    /// The largest message this channel takes.
    pub fn max_message_len(&self) -> usize {
        max_message_len(self.tx.memory().capacity())
    }

    /// Which sender slot this sender has (0 in a single-sender channel).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// How this end waits while the channel is full (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    pub(super) fn region(&self) -> &SharedRegion {
        &self.tx.memory().region
    }

    /// `Disconnected` once the receiver closed (a flag on a line written once: no
    /// syscall). A receiver that died is noticed when the channel is full (see the module
    /// docs): until then, sends into free room succeed.
    #[inline]
    pub(super) fn check_open(&self) -> Result<(), ChannelError> {
        let r = self.region();
        if flag(r, self.tx.memory().ctl + S_POISONED) {
            Err(ChannelError::Corrupted(
                "the receiver found this sender's ring corrupted and stopped reading it",
            ))
        } else if flag(r, RECEIVER_CLOSED) {
            Err(ChannelError::Disconnected)
        } else {
            Ok(())
        }
    }

    /// Wake the receiver if it announced sleep.
    #[inline]
    pub(super) fn notify_receiver(&mut self) {
        self.sends = self.sends.wrapping_add(1);
        if self.sends.is_multiple_of(1024) {
            // Keep the CPU the receiver compares with (to decide whether to spin) current.
            let ctl = self.tx.memory().ctl;
            publish_cpu(self.region(), ctl + S_CPU);
        }
        notify(&consumer_bell(self.region()));
    }

    /// Send `msg`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Disconnected`] when the receiver closed or died;
    /// [`ChannelError::TooLarge`]; [`ChannelError::Corrupted`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.send_deadline(msg, Deadline::never())
    }

    /// [`send`](Self::send), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`ChannelError::TimedOut`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), ChannelError> {
        self.send_deadline(msg, Deadline::after(timeout))
    }

    /// [`send`](Self::send), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), ChannelError> {
        self.check_open()?;
        wait_loop(
            self,
            |s| {
                s.tx.try_send(msg)?;
                s.notify_receiver();
                Ok(())
            },
            deadline,
        )
    }

    /// Send `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Full`] (nothing was sent), and as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.check_open()?;
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.notify_receiver();
                Ok(())
            }
            Err(RingError::Full) => Err(self.full_now()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reserve room for a message of up to `len` bytes if there is room now (see
    /// [`reserve`](Self::reserve)).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.check_open()?;
        match self.tx.prepare(len) {
            Ok(_) => {}
            Err(RingError::Full) => return Err(self.full_now()),
            Err(e) => return Err(e.into()),
        }
        let slot = self.tx.reserve(len)?;
        Ok(SendSlot { slot })
    }

    /// A `try_` call found no room: `Full`, or why the receiver will never make room.
    pub(super) fn full_now(&mut self) -> ChannelError {
        // Padding may have been published: the receiver must pass it.
        self.wake_peers();
        if self.peer_gone(true) {
            self.gone_error()
        } else {
            ChannelError::Full
        }
    }

    /// Reserve room for a message of up to `len` bytes, waiting while the channel is full;
    /// write it in place through the [`SendSlot`], then commit it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.reserve_deadline(len, Deadline::never())
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<SendSlot<'_>, ChannelError> {
        self.reserve_deadline(len, Deadline::after(timeout))
    }

    /// [`reserve`](Self::reserve), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<SendSlot<'_>, ChannelError> {
        self.check_open()?;
        wait_loop(self, |s| s.tx.prepare(len).map(drop), deadline)?;
        let slot = self.tx.reserve(len)?;
        Ok(SendSlot { slot })
    }

    /// Publish every staged message ([`SendSlot::stage`]) with one store, and wake the
    /// receiver.
    pub fn flush(&mut self) {
        if self.tx.has_staged() {
            self.tx.flush();
            self.notify_receiver();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            // A copy in a process forked from the sender's: the sender lives on (and what
            // this copy staged is the owner's to publish).
            return;
        }
        self.tx.flush();
        let ctl = self.tx.memory().ctl;
        set_flag(self.region(), ctl + S_CLOSED, 1);
        bump(self.region(), DATA_SEQ);
    }
}

/// Room for one message in the channel (see [`Sender::reserve`]): write with
/// [`write_at`](Self::write_at) or [`io::Write`], then [`commit`](Self::commit). Dropping
/// it without committing sends nothing.
///
/// So the compiler warns about a slot left unused (`#[must_use]`):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # fn main() -> Result<(), ipcraft::channel::ChannelError> {
/// let (mut tx, _fd) = ipcraft::channel::Sender::anonymous(4096)?;
/// tx.reserve(8)?; // error: unused `SendSlot`: nothing would be sent
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a SendSlot dropped without `commit`, `commit_len` or `stage` sends nothing"]
pub struct SendSlot<'a> {
    pub(super) slot: WriteSlot<'a, SlotRing>,
}

impl SendSlot<'_> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.slot.len()
    }
    /// Whether the slot is for an empty message.
    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }
    /// Bytes written through [`io::Write`] so far.
    pub fn written(&self) -> usize {
        self.slot.written()
    }
    /// Copy `src` into the slot at `offset`; returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> usize {
        self.slot.write_at(offset, src)
    }
    /// Send the message (all [`len`](Self::len) bytes) and wake the receiver.
    pub fn commit(self) {
        let producer = self.slot.commit();
        notify(&consumer_bell(&producer.memory().region));
    }
    /// Send the first `len` bytes as the message.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BeyondReserved`] when `len` is more than was reserved (nothing is
    /// sent).
    pub fn commit_len(self, len: usize) -> Result<(), ChannelError> {
        let producer = self.slot.commit_len(len)?;
        notify(&consumer_bell(&producer.memory().region));
        Ok(())
    }
    /// Write the message but publish it later, with the next commit or
    /// [`Sender::flush`]: a burst of messages costs one publication.
    pub fn stage(self) {
        self.slot.stage();
    }
}

impl io::Write for SendSlot<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.slot.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`Sender::from_fd`]: the sending end of an anonymous channel whose descriptor was received.
///
/// # Errors
///
/// As [`Sender::from_fd`].
impl TryFrom<OwnedFd> for Sender {
    type Error = ChannelError;

    fn try_from(fd: OwnedFd) -> Result<Self, ChannelError> {
        Self::from_fd(fd)
    }
}
