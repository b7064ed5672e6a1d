//! The async sending end.

use super::super::*;
use super::wait::AsyncWait;
use std::future::poll_fn;

/// The sending end of a channel, awaitable: [`send`](Self::send) and
/// [`reserve`](Self::reserve) wait for room without blocking the executor. Wraps a blocking
/// [`channel::Sender`](super::super::Sender) ([`from_std`](Self::from_std),
/// [`into_std`](Self::into_std)); the receiver may be blocking or async, in any process.
///
/// # Cancel safety
///
/// Every method is cancel-safe: a message is written to the ring only in the poll that
/// returns `Ready`, so a dropped `send` sent nothing (the caller still has the message), and
/// a dropped `reserve` reserved nothing.
#[derive(Debug)]
pub struct Sender {
    inner: super::super::Sender,
}

impl Sender {
    /// Make `tx` awaitable (its [`Wait`] mode still chooses between spinning and sleeping
    /// at once).
    pub fn from_std(tx: super::super::Sender) -> Self {
        Self { inner: tx }
    }

    /// The blocking end again.
    pub fn into_std(self) -> super::super::Sender {
        self.inner
    }

    /// The blocking end, for its settings and `try_` calls.
    pub fn get_ref(&self) -> &super::super::Sender {
        &self.inner
    }

    /// The blocking end, mutably ([`set_wait`](super::super::Sender::set_wait), `try_`
    /// calls).
    pub fn get_mut(&mut self) -> &mut super::super::Sender {
        &mut self.inner
    }

    /// A new anonymous channel (see [`channel::Sender::anonymous`](super::super::Sender::anonymous)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (tx, fd) = super::super::Sender::anonymous(capacity)?;
        Ok((Self::from_std(tx), fd))
    }

    /// The sending end of a channel whose memfd was received (see
    /// [`channel::Sender::from_fd`](super::super::Sender::from_fd)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        super::super::Sender::from_fd(fd).map(Self::from_std)
    }

    /// Create a named channel and be its sender (see
    /// [`channel::Sender::create`](super::super::Sender::create)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        super::super::Sender::create(name, capacity).map(Self::from_std)
    }

    /// Open the sending end of a named channel (see
    /// [`channel::Sender::open`](super::super::Sender::open)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        super::super::Sender::open(name).map(Self::from_std)
    }

    /// Send `msg`, waiting while the channel is full.
    ///
    /// Cancel-safe: dropped before it is ready, it sent nothing.
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::send`](super::super::Sender::send).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.inner.check_open()?;
        let mut wait = AsyncWait::default();
        let inner = &mut self.inner;
        poll_fn(|cx| {
            wait.poll(inner, cx, |s| {
                s.tx.try_send(msg)?;
                s.notify_receiver();
                Ok(())
            })
        })
        .await
    }

    /// Room for a message of up to `len` bytes, waiting while the channel is full: write it
    /// in place through the [`SendSlot`], then commit it.
    ///
    /// Cancel-safe: dropped before it is ready, it reserved nothing.
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::reserve`](super::super::Sender::reserve).
    pub async fn reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.inner.check_open()?;
        let mut wait = AsyncWait::default();
        let inner = &mut self.inner;
        poll_fn(|cx| wait.poll(inner, cx, |s| s.tx.prepare(len).map(drop))).await?;
        let slot = self.inner.tx.reserve(len)?;
        Ok(SendSlot { slot })
    }

    /// Send `msg` if there is room now (never waits).
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::try_send`](super::super::Sender::try_send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.inner.try_send(msg)
    }

    /// Room for a message of up to `len` bytes if there is room now.
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::try_reserve`](super::super::Sender::try_reserve).
    pub fn try_reserve(&mut self, len: usize) -> Result<SendSlot<'_>, ChannelError> {
        self.inner.try_reserve(len)
    }

    /// Publish every staged message with one store, and wake the receiver.
    pub fn flush(&mut self) {
        self.inner.flush();
    }
}

impl From<super::super::Sender> for Sender {
    fn from(tx: super::super::Sender) -> Self {
        Self::from_std(tx)
    }
}
