//! Channel ends taken straight from the hand-over.

use super::HandoverError;
use crate::channel::{Receiver, Sender};

impl Receiver {
    /// The receiving end of the anonymous channel whose memfd the parent handed under `name`
    /// ([`Handover::fd`](super::Handover::fd) with the descriptor [`Sender::anonymous`]
    /// returned): [`take_as`](super::take_as)`::<Receiver>(name)`.
    ///
    /// # Errors
    ///
    /// As [`take_as`](super::take_as); [`HandoverError::WrongType`] wraps
    /// [`Receiver::from_fd`]'s error (a descriptor that is not a channel's memfd, or a
    /// channel whose receiver lives).
    pub fn inherited(name: &str) -> Result<Self, HandoverError> {
        super::take_as(name)
    }
}

impl Sender {
    /// The sending end of the anonymous channel whose memfd the parent handed under `name`
    /// ([`Handover::fd`](super::Handover::fd) with the descriptor [`Receiver::anonymous`]
    /// returned): [`take_as`](super::take_as)`::<Sender>(name)`.
    ///
    /// # Errors
    ///
    /// As [`take_as`](super::take_as); [`HandoverError::WrongType`] wraps
    /// [`Sender::from_fd`]'s error.
    pub fn inherited(name: &str) -> Result<Self, HandoverError> {
        super::take_as(name)
    }
}
