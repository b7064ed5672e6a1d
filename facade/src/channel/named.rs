//! [`NamedOptions`]: the mode a named channel is created with, and whose channels an open
//! joins, for a channel shared between users on purpose.

use super::*;
use ipcraft_core::TrustedOwners;

/// How to create or open a named channel when it is shared between users on purpose.
///
/// By default a named channel is created mode 0600 and opened only if it belongs to this
/// user or root and is open to nobody else: whoever can write the segment can shrink it,
/// and the other side dies of SIGBUS. To share one with another user, the creator widens
/// the mode (a group mode is the careful choice) and the opener accepts that mode and trusts
/// the creator's uid, both explicitly.
///
/// # Examples
///
/// ```
/// use ipcraft::channel::NamedOptions;
/// use ipcraft::ipcraft_core::TrustedOwners;
///
/// let name = format!("/ipcraft-doc-shared-channel-{}", std::process::id());
/// // The creator, sharing with its group:
/// let mut rx = NamedOptions::new().mode(0o660).create_receiver(&name, 1, 4096)?;
/// // A user of that group (here: us again), trusting the creator and accepting the mode:
/// let creator = nix::unistd::geteuid().as_raw();
/// let mut tx = NamedOptions::new()
///     .mode(0o660)
///     .trust(TrustedOwners::new().also_uid(creator))
///     .open_sender(&name)?;
/// tx.send(b"hello")?;
/// assert_eq!(rx.recv()?, b"hello");
/// # Ok::<(), ipcraft::channel::ChannelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until a channel is created or opened with them"]
pub struct NamedOptions {
    pub(super) mode: u32,
    pub(super) trusted: TrustedOwners,
}

impl Default for NamedOptions {
    fn default() -> Self {
        Self {
            mode: 0o600,
            trusted: TrustedOwners::new(),
        }
    }
}

impl NamedOptions {
    /// Mode 0600; trust our own uid and root.
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits a new channel gets, exactly (0600 by default), and the widest an
    /// open accepts. A wider mode lets the group (or others) that may open it also shrink it.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whose channels an open joins (default: our effective uid and root).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// [`Sender::create`] with this mode.
    ///
    /// # Errors
    ///
    /// As [`Sender::create`].
    pub fn create_sender(&self, name: &str, capacity: usize) -> Result<Sender, ChannelError> {
        Sender::with(new_named(name, 1, capacity, self.mode, &[])?)
    }

    /// [`Receiver::create_mpsc`] with this mode (`producers` 1: [`Receiver::create`]).
    ///
    /// # Errors
    ///
    /// As [`Receiver::create_mpsc`].
    pub fn create_receiver(
        &self,
        name: &str,
        producers: usize,
        capacity: usize,
    ) -> Result<Receiver, ChannelError> {
        Receiver::with(new_named(name, producers, capacity, self.mode, &[])?)
    }

    /// [`Sender::open`], trusting these owners and accepting this mode: the channel's owner
    /// must be trusted and its mode no wider than [`mode`](Self::mode).
    ///
    /// # Errors
    ///
    /// As [`Sender::open`].
    pub fn open_sender(&self, name: &str) -> Result<Sender, ChannelError> {
        Sender::with(open_named(name, self.mode, self.trusted)?)
    }

    /// [`Receiver::open`], trusting these owners and accepting this mode.
    ///
    /// # Errors
    ///
    /// As [`Receiver::open`].
    pub fn open_receiver(&self, name: &str) -> Result<Receiver, ChannelError> {
        Receiver::with(open_named(name, self.mode, self.trusted)?)
    }
}
