//! [`MutexOptions`]: the kind, priority inheritance, mode, trusted owners and init timeout
//! of a [`Mutex`] to create, place, open or attach to.

use super::*;

/// Options for creating or placing a [`Mutex`]: its kind, priority inheritance, and how long
/// to wait for another process's initialization.
///
/// # Examples
///
/// ```
/// use ipcraft_shm::Segment;
/// use ipcraft_sync::{MutexKind, MutexOptions};
///
/// let seg = Segment::anonymous(4096)?;
/// let m = MutexOptions::new().priority_inheritance(true).in_segment(&seg, 0, 0u32)?;
/// assert_eq!(m.kind(), MutexKind::Pthread);
/// m.lock().unwrap().set(&1);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until create, open or in_segment is called"]
pub struct MutexOptions {
    pub(super) kind: MutexKind,
    pub(super) priority_inheritance: bool,
    pub(super) init_timeout: Duration,
    pub(super) mode: u32,
    pub(super) trusted: TrustedOwners,
}

impl Default for MutexOptions {
    fn default() -> Self {
        Self {
            kind: MutexKind::Futex,
            priority_inheritance: false,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            mode: ipcraft_shm::DEFAULT_MODE,
            trusted: TrustedOwners::new(),
        }
    }
}

impl MutexOptions {
    /// The futex kind, no priority inheritance, a [`DEFAULT_INIT_TIMEOUT`] wait for
    /// initialization.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kind of lock ([`MutexKind::Futex`] by default): the one a new mutex is built on,
    /// and the one an existing mutex must be of to be opened or attached to.
    pub fn kind(mut self, kind: MutexKind) -> Self {
        self.kind = kind;
        self
    }

    /// Priority inheritance (`PTHREAD_PRIO_INHERIT`): a low-priority owner is boosted while a
    /// higher-priority process waits, bounding priority inversion for real-time users.
    /// Only the pthread kind has it, so `true` also selects [`MutexKind::Pthread`].
    pub fn priority_inheritance(mut self, yes: bool) -> Self {
        self.priority_inheritance = yes;
        if yes {
            self.kind = MutexKind::Pthread;
        }
        self
    }

    /// How long placing or opening waits for another process still initializing it.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// The permission bits of a named mutex's segment, exactly (default 0600: only this
    /// user). A group or world mode shares it with other users, who must then trust this
    /// user ([`trust`](Self::trust)) to open it.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whose named mutexes [`open`](Self::open) joins (default: our effective uid and root).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// [`Mutex::create`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Mutex::create`].
    pub fn create<T: Plain>(&self, name: &str, value: T) -> Result<Mutex<T>> {
        let seg = SegmentOptions::new()
            .mode(self.mode)
            .tag(segment_tag::<T>(self.kind))
            .create(name, footprint::<T>())?;
        Mutex::place(seg, 0, value, self, Deadline::never())
    }

    /// [`Mutex::open`], trusting these owners.
    ///
    /// # Errors
    ///
    /// As [`Mutex::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_core::TrustedOwners;
    /// use ipcraft_sync::{Mutex, MutexOptions};
    ///
    /// let name = format!("/ipcraft-doc-mutex-shared-{}", std::process::id());
    /// // One user shares it with its group...
    /// let m = MutexOptions::new().mode(0o660).create(&name, 0u64)?;
    /// // ...and a user of that group opens it, trusting the creator's uid.
    /// let creator = nix::unistd::geteuid().as_raw();
    /// let peer = MutexOptions::new()
    ///     .trust(TrustedOwners::new().also_uid(creator))
    ///     .open::<u64>(&name)?;
    /// peer.lock().unwrap().set(&7);
    /// assert_eq!(m.lock().unwrap().get(), 7);
    /// # Ok::<(), ipcraft_sync::Error>(())
    /// ```
    pub fn open<T: Plain>(&self, name: &str) -> Result<Mutex<T>> {
        // The tag names the type and the kind: a mutex of another kind is refused (a peer
        // that could switch the kind could make us call glibc on bytes it wrote).
        let seg = SegmentOptions::new()
            .trust(self.trusted)
            .tag(segment_tag::<T>(self.kind))
            .open(name)?;
        Mutex::attach(seg, 0, Deadline::after(self.init_timeout), self.kind)
    }

    /// [`Mutex::in_segment`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Mutex::in_segment`].
    pub fn in_segment<'a, T: Plain>(
        &self,
        seg: &'a Segment,
        offset: usize,
        value: T,
    ) -> Result<Mutex<T, &'a Segment>> {
        let deadline = Deadline::after(self.init_timeout);
        Mutex::place(seg, offset, value, self, deadline)
    }
}
