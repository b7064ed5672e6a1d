//! The async receiving end.

use super::super::receiver::copy_into;
use super::super::*;
use super::wait::AsyncWait;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The receiving end of a channel, awaitable: [`recv`](Self::recv),
/// [`recv_into`](Self::recv_into), [`recv_slot`](Self::recv_slot), and a
/// [`Stream`](futures_core::Stream) of messages. Wraps a blocking
/// [`channel::Receiver`](super::super::Receiver) ([`from_std`](Self::from_std),
/// [`into_std`](Self::into_std)); the other end may be blocking or async, in any process.
///
/// # Cancel safety
///
/// Every method is cancel-safe: a message is taken from the ring only in the poll that
/// returns it, so dropping a pending `recv` (a losing `select!` branch) loses nothing, and
/// the next call receives the message the dropped one would have.
#[derive(Debug)]
pub struct Receiver {
    inner: super::super::Receiver,
    /// The wait of the [`Stream`](futures_core::Stream) implementation.
    stream: AsyncWait,
}

impl Receiver {
    /// Make `rx` awaitable (its [`Wait`] mode still chooses between spinning and sleeping
    /// at once).
    pub fn from_std(rx: super::super::Receiver) -> Self {
        Self {
            inner: rx,
            stream: AsyncWait::default(),
        }
    }

    /// The blocking end again.
    pub fn into_std(self) -> super::super::Receiver {
        self.inner
    }

    /// The blocking end, for its settings and `try_` calls.
    pub fn get_ref(&self) -> &super::super::Receiver {
        &self.inner
    }

    /// The blocking end, mutably ([`set_wait`](super::super::Receiver::set_wait),
    /// [`set_claim_deadline`](super::super::Receiver::set_claim_deadline), `try_` calls).
    pub fn get_mut(&mut self) -> &mut super::super::Receiver {
        &mut self.inner
    }

    /// A new anonymous channel (see [`channel::Receiver::anonymous`](super::super::Receiver::anonymous)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), ChannelError> {
        let (rx, fd) = super::super::Receiver::anonymous(capacity)?;
        Ok((Self::from_std(rx), fd))
    }

    /// A new anonymous MPSC channel (see
    /// [`channel::Receiver::anonymous_mpsc`](super::super::Receiver::anonymous_mpsc)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous_mpsc(
        producers: usize,
        capacity: usize,
    ) -> Result<(Self, OwnedFd), ChannelError> {
        let (rx, fd) = super::super::Receiver::anonymous_mpsc(producers, capacity)?;
        Ok((Self::from_std(rx), fd))
    }

    /// The receiving end of a channel whose memfd was received (see
    /// [`channel::Receiver::from_fd`](super::super::Receiver::from_fd)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        super::super::Receiver::from_fd(fd).map(Self::from_std)
    }

    /// Create a named channel and be its receiver (see
    /// [`channel::Receiver::create`](super::super::Receiver::create)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn create(name: &str, capacity: usize) -> Result<Self, ChannelError> {
        super::super::Receiver::create(name, capacity).map(Self::from_std)
    }

    /// Open the receiving end of a named channel (see
    /// [`channel::Receiver::open`](super::super::Receiver::open)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn open(name: &str) -> Result<Self, ChannelError> {
        super::super::Receiver::open(name).map(Self::from_std)
    }

    /// Receive the next message, waiting while the channel is empty.
    ///
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::recv`](super::super::Receiver::recv): `Disconnected` once
    /// every sender closed or died and everything they committed was received.
    pub async fn recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        let slot = self.recv_slot().await?;
        let v = slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Receive the next message into `buf` (no allocation); returns its length.
    ///
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::BufferTooSmall`] (the message stays in
    /// the channel).
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        copy_into(self.recv_slot().await?, buf)
    }

    /// The next message in place: read it through the [`RecvSlot`], then
    /// [`release`](RecvSlot::release) it (a slot dropped unreleased stays in the channel).
    ///
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub async fn recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        let mut wait = AsyncWait::default();
        let inner = &mut self.inner;
        let i = poll_fn(|cx| wait.poll(inner, cx, super::super::Receiver::ready)).await?;
        self.inner.slot_at(i)
    }

    /// Receive the next message if there is one now (never waits).
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::try_recv`](super::super::Receiver::try_recv).
    pub fn try_recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.inner.try_recv()
    }

    /// Receive the next message into `buf` if there is one now.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::try_recv_into`](super::super::Receiver::try_recv_into).
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        self.inner.try_recv_into(buf)
    }

    /// The next message in place, if there is one now.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::try_recv_slot`](super::super::Receiver::try_recv_slot).
    pub fn try_recv_slot(&mut self) -> Result<RecvSlot<'_>, ChannelError> {
        self.inner.try_recv_slot()
    }

    /// Poll for the next message (what the `Stream` implementation calls).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>, ChannelError>> {
        self.poll_recv_slot(cx).map_ok(|slot| {
            let v = slot.to_vec();
            slot.release();
            v
        })
    }

    /// Poll for the next message in place (the typed stream's way in: it decodes from the
    /// slot, with no `Vec` per message).
    pub(crate) fn poll_recv_slot(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvSlot<'_>, ChannelError>> {
        match self
            .stream
            .poll(&mut self.inner, cx, super::super::Receiver::ready)
        {
            Poll::Ready(Ok(i)) => Poll::Ready(self.inner.slot_at(i)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl From<super::super::Receiver> for Receiver {
    fn from(rx: super::super::Receiver) -> Self {
        Self::from_std(rx)
    }
}

/// Messages until every sender is gone: `Ok(message)`, then the stream ends at
/// `Disconnected`; other errors (`Corrupted`) are items, after which the stream goes on
/// (an MPSC receiver skips a corrupted ring and serves the others).
impl futures_core::Stream for Receiver {
    type Item = Result<Vec<u8>, ChannelError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Err(ChannelError::Disconnected)) => Poll::Ready(None),
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Pending,
        }
    }
}
