//! [`QueueOptions`]: the mode of a queue to create, the access of the handle, and the owners
//! an open trusts; creating and opening with them.

use crate::error::{Error, Result};
use crate::limits;
use crate::queue::{
    Access, Attributes, CLOEXEC, DEFAULT_MODE, MessageQueue, OPEN_OR_CREATE_ATTEMPTS,
};
use ipcraft_core::{PosixName, TrustedOwners};
use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, mq_getattr, mq_open};
use nix::sys::stat::{Mode, fchmod};

/// Options for creating or opening a [`MessageQueue`]: its mode (for a queue this creates)
/// and the access of the handle.
///
/// # Examples
///
/// ```
/// use ipcraft_mqueue::{Access, Attributes, QueueOptions};
/// let name = format!("/ipcraft-doc-options-{}", std::process::id());
/// let q = QueueOptions::new()
///     .mode(0o640)
///     .access(Access::ReadWrite)
///     .create(&name, Attributes::new(4, 128))?;
/// assert!(q.owns_name());
/// # Ok::<(), ipcraft_mqueue::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until a queue is opened or created with them"]
pub struct QueueOptions {
    mode: u32,
    access: Access,
    trusted: TrustedOwners,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE,
            access: Access::ReadWrite,
            trusted: TrustedOwners::new(),
        }
    }
}

impl QueueOptions {
    /// Mode [`DEFAULT_MODE`] (0600), [`Access::ReadWrite`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits (at most `0o777`) of a queue these options create, applied
    /// exactly, whatever the process umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// The directions the handle is open for.
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Whose queues an open joins: by default our effective uid and root. Queue names are
    /// shared by every user, so a name may have been made first by someone else, to read
    /// what we send or feed us what we receive: every open checks the owner on the
    /// descriptor and refuses others with [`Error::Untrusted`]; `open_or_create` also
    /// refuses an existing queue whose mode is wider than [`mode`](Self::mode). Widen it
    /// only for queues shared on purpose ([`TrustedOwners::also_uid`]).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// Create the queue `name` (`O_CREAT | O_EXCL`), which must not exist yet. The handle
    /// owns the name: dropping it unlinks the queue unless
    /// [`persist`](MessageQueue::persist) was called.
    ///
    /// See `mq_open(3)`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`], [`Error::InvalidAttributes`], [`Error::InvalidMode`]: bad
    ///   input, checked before any system call.
    /// - [`Error::AlreadyExists`] when a queue of that name exists.
    /// - [`Error::LimitExceeded`] when `attrs` are above `fs.mqueue.msg_max` or
    ///   `msgsize_max`, the system has `queues_max` queues, or this user's queues would take
    ///   more than `RLIMIT_MSGQUEUE` bytes.
    /// - [`Error::Sys`] otherwise (`EACCES`, `EMFILE` for too many open descriptors, ...).
    #[doc(alias = "mq_open")]
    pub fn create(&self, name: &str, attrs: Attributes) -> Result<MessageQueue> {
        let name = PosixName::new(name)?;
        let (mode, mq_attr) = self.checked(&attrs)?;
        match self.try_create(&name, attrs, mode, &mq_attr) {
            Ok(q) => q,
            Err(Errno::EEXIST) => Err(Error::AlreadyExists {
                name: name.as_str().to_owned(),
            }),
            Err(e) => Err(limits::diagnose_create(&name, &attrs, e)),
        }
    }

    /// Open the existing queue `name`. The handle does not own the name.
    ///
    /// See `mq_open(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`]; [`Error::NotFound`] when no queue has that name;
    /// [`Error::Untrusted`] when its owner is not trusted ([`trust`](Self::trust));
    /// [`Error::Sys`] otherwise (`EACCES` when the mode does not allow the access).
    #[doc(alias = "mq_open")]
    pub fn open(&self, name: &str) -> Result<MessageQueue> {
        let name = PosixName::new(name)?;
        match self.try_open(&name, None) {
            Ok(q) => q,
            Err(Errno::ENOENT) => Err(Error::NotFound {
                name: name.as_str().to_owned(),
            }),
            Err(e) => Err(Error::sys("mq_open", &name, e)),
        }
    }

    /// Open the queue `name`, creating it with `attrs` if it does not exist. The handle owns
    /// the name only if it created the queue ([`MessageQueue::owns_name`]); an existing
    /// queue keeps its own attributes ([`MessageQueue::attributes`] tells them).
    ///
    /// See `mq_open(3)`.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open), except
    /// [`Error::AlreadyExists`] and [`Error::NotFound`]; [`Error::Untrusted`] also for an
    /// existing queue whose mode is wider than [`mode`](Self::mode) (it joins only what it
    /// could have created).
    #[doc(alias = "mq_open")]
    pub fn open_or_create(&self, name: &str, attrs: Attributes) -> Result<MessageQueue> {
        let name = PosixName::new(name)?;
        let (mode, mq_attr) = self.checked(&attrs)?;
        let mut last = Errno::ENOENT;
        for _ in 0..OPEN_OR_CREATE_ATTEMPTS {
            match self.try_create(&name, attrs, mode, &mq_attr) {
                Ok(q) => return q,
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(limits::diagnose_create(&name, &attrs, e)),
            }
            match self.try_open(&name, Some(self.mode)) {
                Ok(q) => return q,
                // Unlinked between our create and our open: try to create it again.
                Err(Errno::ENOENT) => last = Errno::ENOENT,
                Err(e) => return Err(Error::sys("mq_open", &name, e)),
            }
        }
        Err(Error::sys("mq_open", &name, last))
    }

    fn checked(&self, attrs: &Attributes) -> Result<(Mode, MqAttr)> {
        if self.mode & !0o777 != 0 {
            return Err(Error::InvalidMode { mode: self.mode });
        }
        Ok((Mode::from_bits_truncate(self.mode), attrs.to_mq_attr()?))
    }

    /// `Err(errno)` only for `mq_open` itself; later failures are in the `Ok`.
    fn try_create(
        &self,
        name: &PosixName,
        attrs: Attributes,
        mode: Mode,
        mq_attr: &MqAttr,
    ) -> nix::Result<Result<MessageQueue>> {
        let flags = self.access.flags() | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | CLOEXEC;
        let mqd = mq_open(name.as_c_str(), flags, mode, Some(mq_attr))?;
        // The queue is ours from here on: dropping `q` unlinks it if the mode cannot be set.
        let q = MessageQueue {
            mqd: Some(mqd),
            name: Some(name.clone()),
            attrs,
            access: self.access,
            owns_name: true,
        };
        // mq_open applied the umask (so the queue was never more open than asked); now set
        // the mode exactly. A queue descriptor is a file of the mqueue filesystem.
        Ok(match fchmod(q.mqd(), mode) {
            Ok(()) => Ok(q),
            Err(e) => Err(Error::sys("fchmod", name, e)),
        })
    }

    /// `Err(errno)` only for `mq_open` itself; the trust check (against `requested`, the
    /// mode `open_or_create` would have made, if given) and later failures are in the `Ok`.
    fn try_open(
        &self,
        name: &PosixName,
        requested: Option<u32>,
    ) -> nix::Result<Result<MessageQueue>> {
        let mqd = mq_open(
            name.as_c_str(),
            self.access.flags() | CLOEXEC,
            Mode::empty(),
            None,
        )?;
        if let Err(e) = self
            .trusted
            .check(&mqd, "message queue", name.as_str(), requested)
        {
            let _ = nix::unistd::close(mqd);
            return Ok(Err(Error::Untrusted(e)));
        }
        Ok(match mq_getattr(&mqd) {
            Ok(a) => Ok(MessageQueue {
                mqd: Some(mqd),
                name: Some(name.clone()),
                attrs: Attributes::from_mq_attr(&a),
                access: self.access,
                owns_name: false,
            }),
            Err(e) => {
                let _ = nix::unistd::close(mqd);
                Err(Error::sys("mq_getattr", name, e))
            }
        })
    }
}
