//! Named semaphores: glibc's `sem_open` objects, their files in `/dev/shm`, the mode they are
//! created with and the owners an open trusts ([`SemaphoreOptions`]).

use super::{Place, SEM_VALUE_MAX, Semaphore};
use crate::error::{Error, Result};
use crate::sys::{NamedSem, sem_unlink};
use ipcraft_core::{PosixName, SysError, TrustedOwners};
use nix::errno::Errno;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

/// The longest name after the `/` a named semaphore can have: glibc prefixes `sem.` to the
/// file it creates, which may have at most 255 bytes.
const SEM_NAME_MAX: usize = 251;
/// Where glibc keeps named semaphores, as `sem.<name without the slash>`.
const SEM_DIR: &str = "/dev/shm/sem.";
/// The mode named semaphores are created with by default, whatever the umask.
pub const DEFAULT_SEM_MODE: u32 = 0o600;
/// What the trust errors call a named semaphore.
const KIND: &str = "named semaphore";

fn check_value(value: u64) -> Result<()> {
    if value > u64::from(SEM_VALUE_MAX) {
        Err(Error::ValueTooLarge {
            value,
            max: SEM_VALUE_MAX,
        })
    } else {
        Ok(())
    }
}

pub(super) fn check_initial(initial: u32) -> Result<()> {
    check_value(u64::from(initial))
}

fn sem_name(name: &str) -> Result<PosixName> {
    PosixName::with_max(name, SEM_NAME_MAX).map_err(Error::Name)
}

/// The file glibc keeps a named semaphore in.
pub(super) fn sem_path(name: &PosixName) -> String {
    format!("{SEM_DIR}{}", &name.as_str()[1..])
}

/// Device and inode of the file at `path`, if it exists.
pub(super) fn file_id(path: &str) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Open the semaphore's file itself (`O_NOFOLLOW`, never a FIFO's wait), to check or fix it
/// on the descriptor.
fn open_file(name: &PosixName) -> Result<std::fs::File> {
    let path = sem_path(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                name: name.as_str().to_owned(),
            },
            _ => Error::Sys(SysError::from_io("open", &e).on(&path)),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Sys(SysError::from_io("fstat", &e).on(&path)))?;
    if !meta.is_file() {
        return Err(Error::Sys(SysError::new("open", Errno::EINVAL).on(path)));
    }
    Ok(file)
}

/// Give the semaphore file exactly `mode`, whatever the umask was; return its identity.
///
/// There is no `fchmod` for a `sem_t`, and setting the umask around `sem_open` would race
/// with every other thread of the process. So open the file glibc made (`O_NOFOLLOW`) and
/// `fchmod` it. In between, its mode is `mode & !umask`: never wider. No one else can
/// replace the file in between: `/dev/shm` is sticky, so only we (or root) may unlink it.
fn fix_mode(name: &PosixName, mode: u32) -> Result<(u64, u64)> {
    let file = open_file(name)?;
    let io = |op: &'static str| {
        let path = sem_path(name);
        move |e: std::io::Error| Error::Sys(SysError::from_io(op, &e).on(path))
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("fchmod"))?;
    let meta = file.metadata().map_err(io("fstat"))?;
    Ok((meta.dev(), meta.ino()))
}

/// Check the existing semaphore's file against `trusted` (and, for `open_or_create`, its
/// mode against `requested`), on a descriptor of the file.
///
/// `sem_open` gives no descriptor, so the check is made on one we open just before
/// `sem_open` opens the name again. Only a trusted owner (or root) can swap the file in
/// between: `/dev/shm` is sticky, so nobody else may unlink or rename a file that is not
/// theirs, and `fs.protected_hardlinks` keeps them from linking one of ours under a name
/// they own.
fn check_trust(name: &PosixName, trusted: &TrustedOwners, requested: Option<u32>) -> Result<()> {
    let file = open_file(name)?;
    trusted
        .check(&file, KIND, name.as_str(), requested)
        .map_err(Error::Untrusted)
}

/// How to create or open a named semaphore: the mode it is created with, and whose
/// semaphores an open joins.
///
/// # Examples
///
/// Sharing with another user on purpose: the creator makes it readable and writable by its
/// group; the other user opens it trusting the creator's uid.
///
/// ```
/// use ipcraft_core::TrustedOwners;
/// use ipcraft_sync::SemaphoreOptions;
///
/// let name = format!("/ipcraft-doc-sem-shared-{}", std::process::id());
/// let jobs = SemaphoreOptions::new().mode(0o660).create(&name, 0)?;
/// // The other user (here: us again), trusting the creator explicitly:
/// let creator = nix::unistd::geteuid().as_raw();
/// let peer = SemaphoreOptions::new()
///     .trust(TrustedOwners::new().also_uid(creator))
///     .open(&name)?;
/// peer.post()?;
/// jobs.try_wait()?;
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until create, open or open_or_create is called"]
pub struct SemaphoreOptions {
    mode: u32,
    trusted: TrustedOwners,
}

impl Default for SemaphoreOptions {
    fn default() -> Self {
        Self {
            mode: DEFAULT_SEM_MODE,
            trusted: TrustedOwners::new(),
        }
    }
}

impl SemaphoreOptions {
    /// Mode 0600; trust our own uid and root.
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits a new semaphore gets, exactly (the umask does not apply):
    /// [`DEFAULT_SEM_MODE`] (0600) by default. `open_or_create` also refuses an existing one
    /// whose mode is wider than this.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whose semaphores an open joins (default: our effective uid and root).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// Create a named semaphore holding `initial`, with this mode whatever the umask; the
    /// handle owns the name and removes it on drop (unless
    /// [`persist`](Semaphore::persist)ed).
    ///
    /// `sem_open` honours the umask and semaphores have no `fchmod`, so the mode is set
    /// afterwards on the file glibc made, `/dev/shm/sem.<name without the slash>`; until then
    /// it is `mode & !umask`, never wider.
    ///
    /// See `sem_open(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Name`] (a name must start with `/`, have no other `/`, and 1 to 251 bytes
    /// after it); [`Error::ValueTooLarge`] when `initial` is over [`SEM_VALUE_MAX`];
    /// [`Error::AlreadyExists`]; [`Error::Sys`] (`EACCES`, `EMFILE`, ...). On an error
    /// after the semaphore was made, it is removed again.
    #[doc(alias = "sem_open")]
    pub fn create(&self, name: &str, initial: u32) -> Result<Semaphore<'static>> {
        let posix = sem_name(name)?;
        check_value(u64::from(initial))?;
        let sem = NamedSem::create(posix.as_c_str(), self.mode, initial).map_err(|e| match e {
            Errno::EEXIST => Error::AlreadyExists {
                name: name.to_owned(),
            },
            e => Error::Sys(SysError::new("sem_open", e).on(name)),
        })?;
        let mut made = Semaphore {
            place: Place::Named {
                sem,
                name: posix,
                owner: true,
                file: None,
            },
        };
        // On an error, dropping `made` closes and unlinks the semaphore we just made.
        if let Place::Named { name, file, .. } = &mut made.place {
            *file = Some(fix_mode(name, self.mode)?);
        }
        Ok(made)
    }

    /// Open the named semaphore another process (or program) created, if its owner is
    /// trusted (checked on a descriptor of its file). The handle never removes the name.
    ///
    /// See `sem_open(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Name`]; [`Error::NotFound`]; [`Error::Untrusted`] when another user owns
    /// it; [`Error::Sys`] (`EACCES`, ...).
    #[doc(alias = "sem_open")]
    pub fn open(&self, name: &str) -> Result<Semaphore<'static>> {
        self.open_checked(name, None)
    }

    fn open_checked(&self, name: &str, requested: Option<u32>) -> Result<Semaphore<'static>> {
        let posix = sem_name(name)?;
        check_trust(&posix, &self.trusted, requested)?;
        let sem = NamedSem::open(posix.as_c_str()).map_err(|e| match e {
            Errno::ENOENT => Error::NotFound {
                name: name.to_owned(),
            },
            e => Error::Sys(SysError::new("sem_open", e).on(name)),
        })?;
        Ok(Semaphore {
            place: Place::Named {
                sem,
                name: posix,
                owner: false,
                file: None,
            },
        })
    }

    /// Open the named semaphore, or create it holding `initial` if it does not exist;
    /// returns it and whether this call created it (and so owns the name). An existing one
    /// is joined only if it could have been made by this call: a trusted owner, and a mode
    /// no wider than [`mode`](Self::mode).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open); [`Error::Untrusted`] with
    /// [`TrustError::TooOpen`](ipcraft_core::TrustError::TooOpen) for an existing semaphore with a wider mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_sync::SemaphoreOptions;
    ///
    /// let name = format!("/ipcraft-doc-sem-ooc-{}", std::process::id());
    /// let (first, created) = SemaphoreOptions::new().open_or_create(&name, 1)?;
    /// assert!(created);
    /// let (second, created) = SemaphoreOptions::new().open_or_create(&name, 99)?;
    /// assert!(!created);
    /// second.try_wait()?; // the first one's initial value counts
    /// # drop(first);
    /// # Ok::<(), ipcraft_sync::Error>(())
    /// ```
    pub fn open_or_create(&self, name: &str, initial: u32) -> Result<(Semaphore<'static>, bool)> {
        // A name removed between a failed create and the open is created again; a few
        // rounds settle any race with removers.
        let mut last = None;
        for _ in 0..8 {
            match self.create(name, initial) {
                Ok(sem) => return Ok((sem, true)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.open_checked(name, Some(self.mode)) {
                Ok(sem) => return Ok((sem, false)),
                Err(e @ Error::NotFound { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::NotFound {
            name: name.to_owned(),
        }))
    }
}

impl Semaphore<'static> {
    /// Create a named semaphore holding `initial`, mode 0600 whatever the umask; this
    /// handle owns the name and removes it on drop (unless [`persist`](Self::persist)ed).
    /// [`SemaphoreOptions`] chooses another mode.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreOptions::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_sync::{Error, Semaphore};
    ///
    /// let name = format!("/ipcraft-doc-sem-create-{}", std::process::id());
    /// let sem = Semaphore::create(&name, 2)?;
    /// assert_eq!(sem.value()?, 2);
    /// assert!(matches!(Semaphore::create(&name, 0), Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), ipcraft_sync::Error>(())
    /// ```
    #[doc(alias = "sem_open")]
    pub fn create(name: &str, initial: u32) -> Result<Self> {
        SemaphoreOptions::new().create(name, initial)
    }

    /// Open the named semaphore another process (or program) created, if it is owned by
    /// this user or root. This handle never removes the name.
    ///
    /// # Errors
    ///
    /// As [`SemaphoreOptions::open`].
    #[doc(alias = "sem_open")]
    pub fn open(name: &str) -> Result<Self> {
        SemaphoreOptions::new().open(name)
    }
}

/// Remove the named semaphore `name` (`sem_unlink`). Processes that have it open keep using
/// it; the name can be created again at once.
///
/// See `sem_unlink(3)`.
///
/// # Errors
///
/// [`Error::Name`]; [`Error::NotFound`]; [`Error::Sys`] (`EACCES`).
///
/// # Examples
///
/// ```
/// use ipcraft_sync::{Error, Semaphore, unlink_semaphore};
///
/// let name = format!("/ipcraft-doc-sem-unlink-{}", std::process::id());
/// let mut sem = Semaphore::create(&name, 0)?;
/// sem.persist();
/// drop(sem);
/// unlink_semaphore(&name)?;
/// assert!(matches!(Semaphore::open(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[doc(alias = "sem_unlink")]
#[doc(alias = "unlink")]
pub fn unlink_semaphore(name: &str) -> Result<()> {
    let posix = sem_name(name)?;
    sem_unlink(posix.as_c_str()).map_err(|e| match e {
        Errno::ENOENT => Error::NotFound {
            name: name.to_owned(),
        },
        e => Error::Sys(SysError::new("sem_unlink", e).on(name)),
    })
}
