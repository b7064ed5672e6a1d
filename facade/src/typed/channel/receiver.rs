//! The typed receiving end.

use super::{check, tag, take, take_into, take_vec};
use crate::channel::{self, NamedOptions, Unclaimed, Wait};
use crate::typed::{Codec, Message, Plain, PlainData, TypeInfo, TypedError};
use ipcraft_core::Deadline;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The receiving end of a typed channel: values of `T`, encoded with `C` ([`Plain`] by
/// default; `Serde` with the `serde` feature).
///
/// Wraps a [`channel::Receiver`]; see there for waiting, MPSC, disconnection and
/// restarts, which are the same. Each receive copies the message out of shared memory once
/// (into the value for plain data; into a buffer this end keeps and reuses for serde) and
/// releases it, decoded or not.
pub struct Receiver<T, C = Plain> {
    inner: channel::Receiver,
    /// Where serde messages are copied out to be decoded (reused: no allocation per
    /// message once it has grown to the largest message).
    scratch: Vec<u8>,
    _type: PhantomData<fn() -> (T, C)>,
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
    fn new(inner: channel::Receiver) -> Self {
        Self::from_parts(inner, Vec::new())
    }

    /// A typed end over an untyped one whose channel was checked (or made) for `T`.
    pub(super) fn from_parts(inner: channel::Receiver, scratch: Vec<u8>) -> Self {
        Self {
            inner,
            scratch,
            _type: PhantomData,
        }
    }

    /// The untyped end and the decode buffer.
    #[cfg(feature = "tokio")]
    pub(super) fn into_parts(self) -> (channel::Receiver, Vec<u8>) {
        (self.inner, self.scratch)
    }

    fn attach(channel: Unclaimed) -> Result<Self, TypedError> {
        check::<T, C>(&channel)?;
        Ok(Self::new(channel.into_receiver()?))
    }

    /// A new anonymous typed channel of `capacity` bytes: the receiver, and the memfd for
    /// the sending process's [`Sender::from_fd`](super::Sender::from_fd).
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::anonymous`], as [`TypedError::Channel`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), TypedError> {
        Self::anonymous_mpsc(1, capacity)
    }

    /// A new anonymous typed MPSC channel: up to `producers` senders, each with a ring of
    /// `capacity` bytes; each [`Sender::from_fd`](super::Sender::from_fd) checks the type
    /// and claims a slot.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::anonymous_mpsc`].
    pub fn anonymous_mpsc(
        producers: usize,
        capacity: usize,
    ) -> Result<(Self, OwnedFd), TypedError> {
        let (channel, fd) = Unclaimed::anonymous(producers, capacity, &tag::<T, C>())?;
        Ok((Self::new(channel.into_receiver()?), fd))
    }

    /// The receiving end of a typed channel whose memfd was received, after checking its
    /// type (taking over from a receiver that closed or died, as the untyped end does).
    ///
    /// # Errors
    ///
    /// [`TypedError::TypeMismatch`], [`TypedError::Untyped`] (nothing in the channel
    /// changed); as [`channel::Receiver::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TypedError> {
        Self::attach(Unclaimed::from_fd(fd)?)
    }

    /// Create a named typed channel for one sender and be its receiver.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::create`].
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, TypedError> {
        Self::create_with(name, 1, capacity, &NamedOptions::new())
    }

    /// Create a named typed MPSC channel for up to `producers` senders.
    ///
    /// # Errors
    ///
    /// As [`channel::Receiver::create_mpsc`].
    pub fn create_mpsc(name: &str, producers: usize, capacity: usize) -> Result<Self, TypedError> {
        Self::create_with(name, producers, capacity, &NamedOptions::new())
    }

    /// [`create_mpsc`](Self::create_mpsc) with `options`' mode.
    ///
    /// # Errors
    ///
    /// As [`create_mpsc`](Self::create_mpsc).
    pub fn create_with(
        name: &str,
        producers: usize,
        capacity: usize,
        options: &NamedOptions,
    ) -> Result<Self, TypedError> {
        let channel = Unclaimed::create(name, producers, capacity, &tag::<T, C>(), options)?;
        Ok(Self::new(channel.into_receiver()?))
    }

    /// Open the receiving end of a named typed channel, after checking its type.
    ///
    /// # Errors
    ///
    /// As [`from_fd`](Self::from_fd), and as [`channel::Receiver::open`].
    pub fn open(name: &str) -> Result<Self, TypedError> {
        Self::open_with(name, &NamedOptions::new())
    }

    /// [`open`](Self::open), trusting `options`' owners and accepting its mode.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(name: &str, options: &NamedOptions) -> Result<Self, TypedError> {
        Self::attach(Unclaimed::open(name, options)?)
    }

    /// The message type this end speaks.
    pub fn type_info(&self) -> TypeInfo {
        TypeInfo::of::<T, C>()
    }

    /// How this end waits while the channel is empty (see [`channel::Receiver::set_wait`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.inner.set_wait(wait);
    }

    /// The untyped end underneath.
    pub fn get_ref(&self) -> &channel::Receiver {
        &self.inner
    }

    /// The untyped end underneath, mutably ([`set_claim_deadline`](channel::Receiver::set_claim_deadline), ...).
    pub fn get_mut(&mut self) -> &mut channel::Receiver {
        &mut self.inner
    }

    /// The untyped end.
    pub fn into_untyped(self) -> channel::Receiver {
        self.inner
    }

    /// Receive the next value, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`TypedError::Decode`] for a message that is not a `T` (consumed: the next call
    /// receives the next one); the channel's: [`ChannelError::Disconnected`](crate::channel::ChannelError::Disconnected) once every
    /// sender closed or died and everything they sent was received.
    pub fn recv(&mut self) -> Result<T, TypedError> {
        self.recv_deadline(Deadline::never())
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`ChannelError::TimedOut`](crate::channel::ChannelError::TimedOut).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, TypedError> {
        self.recv_deadline(Deadline::after(timeout))
    }

    /// [`recv`](Self::recv), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<T, TypedError> {
        let slot = self.inner.recv_slot_deadline(deadline)?;
        take::<T, C>(slot, &mut self.scratch)
    }

    /// Receive the next value if there is one now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`](crate::channel::ChannelError::Empty), and as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<T, TypedError> {
        let slot = self.inner.try_recv_slot()?;
        take::<T, C>(slot, &mut self.scratch)
    }

    /// Receive the next value and the sender slot it came from ([`channel::RecvSlot::sender`];
    /// 0 in a single-sender channel: order is kept per sender), waiting while the channel
    /// is empty.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from(&mut self) -> Result<(usize, T), TypedError> {
        self.recv_from_deadline(Deadline::never())
    }

    /// [`recv_from`](Self::recv_from), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_from_timeout(&mut self, timeout: Duration) -> Result<(usize, T), TypedError> {
        self.recv_from_deadline(Deadline::after(timeout))
    }

    /// [`recv_from`](Self::recv_from), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline).
    pub fn recv_from_deadline(&mut self, deadline: Deadline) -> Result<(usize, T), TypedError> {
        let slot = self.inner.recv_slot_deadline(deadline)?;
        let sender = slot.sender();
        take::<T, C>(slot, &mut self.scratch).map(|v| (sender, v))
    }

    /// [`recv_from`](Self::recv_from) if there is a message now.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_from(&mut self) -> Result<(usize, T), TypedError> {
        let slot = self.inner.try_recv_slot()?;
        let sender = slot.sender();
        take::<T, C>(slot, &mut self.scratch).map(|v| (sender, v))
    }
}

impl<T: PlainData> Receiver<T, Plain> {
    /// Receive the next slice message ([`Sender::send_slice`](super::Sender::send_slice))
    /// into a new vector, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// [`TypedError::Decode`] for a message that is not a whole number of `T` (consumed),
    /// [`TypedError::ZeroSizedSlice`], and as [`recv`](Self::recv).
    pub fn recv_vec(&mut self) -> Result<Vec<T>, TypedError> {
        self.recv_vec_deadline(Deadline::never())
    }

    /// [`recv_vec`](Self::recv_vec), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_vec`](Self::recv_vec), and [`ChannelError::TimedOut`](crate::channel::ChannelError::TimedOut).
    pub fn recv_vec_timeout(&mut self, timeout: Duration) -> Result<Vec<T>, TypedError> {
        self.recv_vec_deadline(Deadline::after(timeout))
    }

    /// [`recv_vec`](Self::recv_vec), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_vec_timeout`](Self::recv_vec_timeout).
    pub fn recv_vec_deadline(&mut self, deadline: Deadline) -> Result<Vec<T>, TypedError> {
        take_vec(self.inner.recv_slot_deadline(deadline)?)
    }

    /// Receive the next slice message if there is one now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`](crate::channel::ChannelError::Empty), and as [`recv_vec`](Self::recv_vec).
    pub fn try_recv_vec(&mut self) -> Result<Vec<T>, TypedError> {
        take_vec(self.inner.try_recv_slot()?)
    }

    /// Receive the next slice message into `buf` (no allocation), waiting while the channel
    /// is empty; returns how many elements it had.
    ///
    /// # Errors
    ///
    /// [`ChannelError::BufferTooSmall`](crate::channel::ChannelError::BufferTooSmall) with the bytes needed (the message stays in the
    /// channel: call again with a larger buffer), and as [`recv_vec`](Self::recv_vec).
    pub fn recv_into_slice(&mut self, buf: &mut [T]) -> Result<usize, TypedError> {
        self.recv_into_slice_deadline(buf, Deadline::never())
    }

    /// [`recv_into_slice`](Self::recv_into_slice), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into_slice`](Self::recv_into_slice), and [`ChannelError::TimedOut`](crate::channel::ChannelError::TimedOut).
    pub fn recv_into_slice_timeout(
        &mut self,
        buf: &mut [T],
        timeout: Duration,
    ) -> Result<usize, TypedError> {
        self.recv_into_slice_deadline(buf, Deadline::after(timeout))
    }

    /// [`recv_into_slice`](Self::recv_into_slice), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_into_slice_timeout`](Self::recv_into_slice_timeout).
    pub fn recv_into_slice_deadline(
        &mut self,
        buf: &mut [T],
        deadline: Deadline,
    ) -> Result<usize, TypedError> {
        take_into(self.inner.recv_slot_deadline(deadline)?, buf)
    }

    /// Receive the next slice message into `buf` if there is one now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`](crate::channel::ChannelError::Empty), and as [`recv_into_slice`](Self::recv_into_slice).
    pub fn try_recv_into_slice(&mut self, buf: &mut [T]) -> Result<usize, TypedError> {
        take_into(self.inner.try_recv_slot()?, buf)
    }
}

/// [`Receiver::from_fd`].
impl<T: Message, C: Codec<T>> TryFrom<OwnedFd> for Receiver<T, C> {
    type Error = TypedError;

    /// [`Receiver::from_fd`].
    fn try_from(fd: OwnedFd) -> Result<Self, TypedError> {
        Self::from_fd(fd)
    }
}
