//! The typed sending end.

use super::{check, checked_len, fill, tag};
use crate::channel::{self, NamedOptions, Unclaimed, Wait};
use crate::typed::codec::{encode_slice, slice_len};
use crate::typed::{Codec, Message, Plain, PlainData, TypeInfo, TypedError};
use ipcraft_core::Deadline;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The sending end of a typed channel: values of `T`, encoded with `C` ([`Plain`] by
/// default; `Serde` with the `serde` feature).
///
/// Wraps a [`channel::Sender`]; see there for waiting, disconnection and restarts, which
/// are the same.
pub struct Sender<T, C = Plain> {
    inner: channel::Sender,
    _type: PhantomData<fn(&T) -> C>,
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
    /// A typed end over an untyped one whose channel was checked (or made) for `T`.
    pub(super) fn from_checked(inner: channel::Sender) -> Self {
        Self {
            inner,
            _type: PhantomData,
        }
    }

    fn attach(channel: Unclaimed) -> Result<Self, TypedError> {
        check::<T, C>(&channel)?;
        Ok(Self::from_checked(channel.into_sender()?))
    }

    /// A new anonymous typed channel of `capacity` bytes (a power of two): the sender, and
    /// the memfd for the receiving process's [`Receiver::from_fd`](super::Receiver::from_fd).
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::anonymous`], as [`TypedError::Channel`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(capacity: usize) -> Result<(Self, OwnedFd), TypedError> {
        let (channel, fd) = Unclaimed::anonymous(1, capacity, &tag::<T, C>())?;
        Ok((Self::from_checked(channel.into_sender()?), fd))
    }

    /// The sending end of a typed channel whose memfd was received; in an MPSC channel,
    /// claims a free sender slot. The channel's type is checked first.
    ///
    /// # Errors
    ///
    /// [`TypedError::TypeMismatch`] for a channel of another type, [`TypedError::Untyped`]
    /// for one an untyped end made (in both cases, nothing in the channel changed); as
    /// [`channel::Sender::from_fd`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TypedError> {
        Self::attach(Unclaimed::from_fd(fd)?)
    }

    /// Create a named typed channel (`/name`, mode 0600) of `capacity` bytes and be its
    /// sender; the creator removes the name when dropped.
    ///
    /// # Errors
    ///
    /// As [`channel::Sender::create`].
    #[doc(alias = "shm_open")]
    pub fn create(name: &str, capacity: usize) -> Result<Self, TypedError> {
        Self::create_with(name, capacity, &NamedOptions::new())
    }

    /// [`create`](Self::create) with `options`' mode.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_with(
        name: &str,
        capacity: usize,
        options: &NamedOptions,
    ) -> Result<Self, TypedError> {
        let channel = Unclaimed::create(name, 1, capacity, &tag::<T, C>(), options)?;
        Ok(Self::from_checked(channel.into_sender()?))
    }

    /// Open the sending end of a named typed channel another process created, after
    /// checking its type.
    ///
    /// # Errors
    ///
    /// As [`from_fd`](Self::from_fd), and as [`channel::Sender::open`].
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

    /// The largest encoded message the channel takes.
    pub fn max_message_len(&self) -> usize {
        self.inner.max_message_len()
    }

    /// How this end waits while the channel is full (see [`channel::Sender::set_wait`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.inner.set_wait(wait);
    }

    /// The untyped end underneath.
    pub fn get_ref(&self) -> &channel::Sender {
        &self.inner
    }

    /// The untyped end underneath, mutably (bytes sent through it reach a typed receiver
    /// as messages to decode like any other).
    pub fn get_mut(&mut self) -> &mut channel::Sender {
        &mut self.inner
    }

    /// The untyped end.
    pub fn into_untyped(self) -> channel::Sender {
        self.inner
    }

    /// Send `value`, waiting while the channel is full: encoded straight into the ring.
    ///
    /// # Errors
    ///
    /// [`TypedError::TooLarge`] (nothing written), [`TypedError::Encode`] (nothing sent),
    /// and the channel's: [`ChannelError::Disconnected`](crate::channel::ChannelError::Disconnected) when the receiver closed or died.
    pub fn send(&mut self, value: &T) -> Result<(), TypedError> {
        self.send_deadline(value, Deadline::never())
    }

    /// [`send`](Self::send), waiting at most `timeout` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`ChannelError::TimedOut`](crate::channel::ChannelError::TimedOut).
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<(), TypedError> {
        self.send_deadline(value, Deadline::after(timeout))
    }

    /// [`send`](Self::send), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(&mut self, value: &T, deadline: Deadline) -> Result<(), TypedError> {
        let len = checked_len::<T>(C::encoded_len(value)?, self.max_message_len())?;
        fill::<T, C>(value, self.inner.reserve_deadline(len, deadline)?)
    }

    /// Send `value` if there is room now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Full`](crate::channel::ChannelError::Full) (nothing was sent), and as [`send`](Self::send).
    pub fn try_send(&mut self, value: &T) -> Result<(), TypedError> {
        let len = checked_len::<T>(C::encoded_len(value)?, self.max_message_len())?;
        fill::<T, C>(value, self.inner.try_reserve(len)?)
    }
}

impl<T: PlainData> Sender<T, Plain> {
    /// Send a slice of plain data as one message (the receiver's
    /// [`recv_vec`](super::Receiver::recv_vec)), copied straight into the ring.
    ///
    /// # Errors
    ///
    /// [`TypedError::ZeroSizedSlice`], and as [`send`](Self::send).
    pub fn send_slice(&mut self, values: &[T]) -> Result<(), TypedError> {
        self.send_slice_deadline(values, Deadline::never())
    }

    /// [`send_slice`](Self::send_slice), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`send_slice`](Self::send_slice), and [`ChannelError::TimedOut`](crate::channel::ChannelError::TimedOut).
    pub fn send_slice_timeout(
        &mut self,
        values: &[T],
        timeout: Duration,
    ) -> Result<(), TypedError> {
        self.send_slice_deadline(values, Deadline::after(timeout))
    }

    /// [`send_slice`](Self::send_slice), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_slice_timeout`](Self::send_slice_timeout).
    pub fn send_slice_deadline(
        &mut self,
        values: &[T],
        deadline: Deadline,
    ) -> Result<(), TypedError> {
        let len = checked_len::<T>(slice_len(values)?, self.max_message_len())?;
        let mut slot = self.inner.reserve_deadline(len, deadline)?;
        encode_slice(values, &mut slot);
        slot.commit();
        Ok(())
    }

    /// Send a slice if there is room now.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Full`](crate::channel::ChannelError::Full) (nothing was sent), and as [`send_slice`](Self::send_slice).
    pub fn try_send_slice(&mut self, values: &[T]) -> Result<(), TypedError> {
        let len = checked_len::<T>(slice_len(values)?, self.max_message_len())?;
        let mut slot = self.inner.try_reserve(len)?;
        encode_slice(values, &mut slot);
        slot.commit();
        Ok(())
    }
}

/// [`Sender::from_fd`].
impl<T: Message, C: Codec<T>> TryFrom<OwnedFd> for Sender<T, C> {
    type Error = TypedError;

    /// [`Sender::from_fd`].
    fn try_from(fd: OwnedFd) -> Result<Self, TypedError> {
        Self::from_fd(fd)
    }
}
