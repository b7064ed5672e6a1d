//! Async typed ends (feature `tokio`): [`Sender::send`] and [`Receiver::recv`] as futures,
//! and the receiver as a [`Stream`](futures_core::Stream) of values, over
//! [`crate::channel::tokio`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ipcraft::typed::TypedError> {
//! use ipcraft::typed::channel::tokio::{Receiver, Sender};
//!
//! let (mut rx, fd) = Receiver::<u64>::anonymous(1 << 16)?;
//! // In the other process (blocking or async): `Sender::<u64>::from_fd(fd)?`
//! # let mut tx = Sender::<u64>::from_fd(fd)?;
//! tx.send(&42).await?;
//! assert_eq!(rx.recv().await?, 42);
//! # Ok(()) }
//! ```
//!
//! Blocking and async typed ends mix freely across processes, as untyped ones do.
//!
//! # Cancel safety
//!
//! Every method is cancel-safe. A send encodes into the ring only in the poll in which room
//! was found, with no await between reserving, encoding and committing: dropped before
//! then, it sent nothing. A receive decodes and releases the message in the poll that takes
//! it: dropped before then, the message stays for the next receive.

use super::{checked_len, fill, take, take_vec};
use crate::channel::ChannelError;
use crate::channel::tokio as untyped;
use crate::typed::codec::{encode_slice, slice_len};
use crate::typed::{Codec, Message, Plain, PlainData, TypeInfo, TypedError};
use std::fmt;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The async sending end of a typed channel: [`send`](Self::send) waits for room without
/// blocking the executor. Wraps a blocking typed [`Sender`](super::Sender)
/// ([`from_std`](Self::from_std), [`into_std`](Self::into_std)).
pub struct Sender<T, C = Plain> {
    inner: untyped::Sender,
    _type: std::marker::PhantomData<fn(&T) -> C>,
}

impl<T: Message, C> fmt::Debug for Sender<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("type", &T::NAME)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Message, C: Codec<T>> Sender<T, C> {
    /// Make a blocking typed sender awaitable.
    pub fn from_std(tx: super::Sender<T, C>) -> Self {
        Self {
            inner: untyped::Sender::from_std(tx.into_untyped()),
            _type: std::marker::PhantomData,
        }
    }

    /// The blocking typed end again.
    pub fn into_std(self) -> super::Sender<T, C> {
        super::Sender::from_checked(self.inner.into_std())
    }

    /// A new anonymous typed channel (see [`Sender::anonymous`](super::Sender::anonymous)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), TypedError> {
        let (tx, fd) = super::Sender::anonymous(capacity)?;
        Ok((Self::from_std(tx), fd))
    }

    /// The sending end of a typed channel whose memfd was received, after checking its
    /// type (see [`Sender::from_fd`](super::Sender::from_fd)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TypedError> {
        super::Sender::from_fd(fd).map(Self::from_std)
    }

    /// Create a named typed channel and be its sender.
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn create(name: &str, capacity: usize) -> Result<Self, TypedError> {
        super::Sender::create(name, capacity).map(Self::from_std)
    }

    /// Open the sending end of a named typed channel, after checking its type.
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn open(name: &str) -> Result<Self, TypedError> {
        super::Sender::open(name).map(Self::from_std)
    }

    /// The message type this end speaks.
    pub fn type_info(&self) -> TypeInfo {
        TypeInfo::of::<T, C>()
    }

    /// The untyped async end underneath.
    pub fn get_mut(&mut self) -> &mut untyped::Sender {
        &mut self.inner
    }

    /// Send `value`, waiting while the channel is full: encoded straight into the ring.
    ///
    /// Cancel-safe: dropped before it is ready, it sent nothing.
    ///
    /// # Errors
    ///
    /// As [`Sender::send`](super::Sender::send).
    pub async fn send(&mut self, value: &T) -> Result<(), TypedError> {
        let max = self.inner.get_ref().max_message_len();
        let len = checked_len::<T>(C::encoded_len(value)?, max)?;
        fill::<T, C>(value, self.inner.reserve(len).await?)
    }

    /// Send `value` if there is room now (never waits).
    ///
    /// # Errors
    ///
    /// As [`Sender::try_send`](super::Sender::try_send).
    pub fn try_send(&mut self, value: &T) -> Result<(), TypedError> {
        let max = self.inner.get_ref().max_message_len();
        let len = checked_len::<T>(C::encoded_len(value)?, max)?;
        fill::<T, C>(value, self.inner.try_reserve(len)?)
    }
}

impl<T: PlainData> Sender<T, Plain> {
    /// Send a slice of plain data as one message, waiting while the channel is full.
    ///
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`Sender::send_slice`](super::Sender::send_slice).
    pub async fn send_slice(&mut self, values: &[T]) -> Result<(), TypedError> {
        let max = self.inner.get_ref().max_message_len();
        let len = checked_len::<T>(slice_len(values)?, max)?;
        let mut slot = self.inner.reserve(len).await?;
        encode_slice(values, &mut slot);
        slot.commit();
        Ok(())
    }
}

/// The async receiving end of a typed channel: [`recv`](Self::recv), and a
/// [`Stream`](futures_core::Stream) of values. Wraps a blocking typed
/// [`Receiver`](super::Receiver) ([`from_std`](Self::from_std), [`into_std`](Self::into_std)).
pub struct Receiver<T, C = Plain> {
    inner: untyped::Receiver,
    scratch: Vec<u8>,
    _type: std::marker::PhantomData<fn() -> (T, C)>,
}

impl<T: Message, C> fmt::Debug for Receiver<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("type", &T::NAME)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<T: Message, C: Codec<T>> Receiver<T, C> {
    /// Make a blocking typed receiver awaitable.
    pub fn from_std(rx: super::Receiver<T, C>) -> Self {
        let (inner, scratch) = rx.into_parts();
        Self {
            inner: untyped::Receiver::from_std(inner),
            scratch,
            _type: std::marker::PhantomData,
        }
    }

    /// The blocking typed end again.
    pub fn into_std(self) -> super::Receiver<T, C> {
        super::Receiver::from_parts(self.inner.into_std(), self.scratch)
    }

    /// A new anonymous typed channel (see [`Receiver::anonymous`](super::Receiver::anonymous)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), TypedError> {
        let (rx, fd) = super::Receiver::anonymous(capacity)?;
        Ok((Self::from_std(rx), fd))
    }

    /// A new anonymous typed MPSC channel (see
    /// [`Receiver::anonymous_mpsc`](super::Receiver::anonymous_mpsc)).
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn anonymous_mpsc(
        producers: usize,
        capacity: usize,
    ) -> Result<(Self, OwnedFd), TypedError> {
        let (rx, fd) = super::Receiver::anonymous_mpsc(producers, capacity)?;
        Ok((Self::from_std(rx), fd))
    }

    /// The receiving end of a typed channel whose memfd was received, after checking its
    /// type.
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TypedError> {
        super::Receiver::from_fd(fd).map(Self::from_std)
    }

    /// Create a named typed channel and be its receiver.
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn create(name: &str, capacity: usize) -> Result<Self, TypedError> {
        super::Receiver::create(name, capacity).map(Self::from_std)
    }

    /// Open the receiving end of a named typed channel, after checking its type.
    ///
    /// # Errors
    ///
    /// As the blocking call.
    pub fn open(name: &str) -> Result<Self, TypedError> {
        super::Receiver::open(name).map(Self::from_std)
    }

    /// The message type this end speaks.
    pub fn type_info(&self) -> TypeInfo {
        TypeInfo::of::<T, C>()
    }

    /// The untyped async end underneath.
    pub fn get_mut(&mut self) -> &mut untyped::Receiver {
        &mut self.inner
    }

    /// Receive the next value, waiting while the channel is empty.
    ///
    /// Cancel-safe: dropped before it is ready, it took nothing.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`](super::Receiver::recv).
    pub async fn recv(&mut self) -> Result<T, TypedError> {
        let slot = self.inner.recv_slot().await?;
        take::<T, C>(slot, &mut self.scratch)
    }

    /// Receive the next value if there is one now (never waits).
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv`](super::Receiver::try_recv).
    pub fn try_recv(&mut self) -> Result<T, TypedError> {
        let slot = self.inner.try_recv_slot()?;
        take::<T, C>(slot, &mut self.scratch)
    }

    /// Poll for the next value (what the `Stream` implementation calls).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, TypedError>> {
        match self.inner.poll_recv_slot(cx) {
            Poll::Ready(Ok(slot)) => Poll::Ready(take::<T, C>(slot, &mut self.scratch)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: PlainData> Receiver<T, Plain> {
    /// Receive the next slice message into a new vector, waiting while the channel is empty.
    ///
    /// Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_vec`](super::Receiver::recv_vec).
    pub async fn recv_vec(&mut self) -> Result<Vec<T>, TypedError> {
        take_vec(self.inner.recv_slot().await?)
    }
}

/// Values until every sender is gone: `Ok(value)`, then the stream ends at `Disconnected`;
/// other errors (a message that does not decode, a corrupted ring) are items, after which
/// the stream goes on.
impl<T: Message, C: Codec<T>> futures_core::Stream for Receiver<T, C> {
    type Item = Result<T, TypedError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Err(TypedError::Channel(ChannelError::Disconnected))) => Poll::Ready(None),
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Pending,
        }
    }
}
