#![allow(unsafe_code)]
//! [`Semaphore`]: a POSIX counting semaphore, named (`sem_open`, shared with any program that
//! uses the same name) or unnamed inside a caller's shared memory segment (`sem_init` with
//! `pshared = 1`).
//!
//! The `sem_*` calls are thin and made here, each in its own `unsafe` block. Invariants this
//! file upholds, and who upholds them:
//! - `Semaphore::sem` points to a live, initialized `sem_t` for as long as the `Semaphore`
//!   exists. Named: it is what `sem_open` returned; glibc keeps that mapping until
//!   `sem_close`, which only `Drop` calls, once. In a segment: it points
//!   `SEM_OFFSET` bytes into a placement whose bounds and alignment `locate` checked against
//!   the `Segment`; the `Semaphore<'a>` borrows that `Segment` for `'a`, so the mapping
//!   cannot be unmapped (or re-mapped by `grow`, which needs `&mut Segment`) meanwhile; and
//!   `sem_init` ran exactly once before any other `sem_*` call on it (the state word
//!   protocol of `crate::once`, checked by loom: only the process whose CAS claims the word
//!   initializes; everyone else waits until it is published ready, with release/acquire).
//! - The `sem_t` bytes are only ever touched by glibc's `sem_*` functions (atomic operations
//!   and futex calls); no Rust reference to them is formed. The placement's two header
//!   words are atomics, reached through `Segment::get`.
//! - A peer that scribbles over the `sem_t` can only make counts wrong: glibc's `sem_t`
//!   (a 64-bit value word and a `private` flag) holds no pointers, so garbage in it never
//!   makes glibc touch memory outside those bytes. A peer with write access to a named
//!   semaphore's file could truncate it (SIGBUS on the next access, as for any shared
//!   mapping); named semaphores are therefore created mode 0600 (see [`Semaphore::create`]).

#![allow(clippy::disallowed_types)] // The state word lives in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use crate::mutex::DEFAULT_INIT_TIMEOUT;
use crate::once::{OnceError, Outcome, init_once};
use ipcraft_core::{Deadline, PosixName, SysError};
use ipcraft_shm::Segment;
use nix::errno::Errno;
use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// SAFETY:
// - The declaration matches glibc's (2.30+) `int sem_clockwait(sem_t *, clockid_t,
//   const struct timespec *)` from <semaphore.h>; the libc crate lacks it.
unsafe extern "C" {
    /// glibc 2.30+: like `sem_timedwait`, on the given clock.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// The largest value a semaphore can hold: glibc's `SEM_VALUE_MAX` on Linux (`INT_MAX`), as
/// `getconf SEM_VALUE_MAX` prints it.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// Bytes a semaphore takes in a segment (place it at a multiple of 64): a state word, a
/// layout word, then the `sem_t`.
pub const SEMAPHORE_FOOTPRINT: usize = SEM_OFFSET + std::mem::size_of::<libc::sem_t>();

/// The longest name after the `/` a named semaphore can have: glibc prefixes `sem.` to the
/// file it creates, which may have at most 255 bytes.
const SEM_NAME_MAX: usize = 251;
/// Where glibc keeps named semaphores, as `sem.<name without the slash>`.
const SEM_DIR: &str = "/dev/shm/sem.";
/// Named semaphores are created with exactly this mode, whatever the umask.
const SEM_MODE: u32 = 0o600;

const LAYOUT_OFFSET: usize = 4;
const SEM_OFFSET: usize = 8;
const PLACEMENT_ALIGN: usize = 64;
/// The layout word of a semaphore placement ("5E4A", version 1): differs from every
/// `Mutex` and `Condvar` layout word, so one is never taken for another.
const SEM_LAYOUT: u32 = 0x5e4a_0001;

const _: () = {
    // A borrowed `&Segment` may be sent between and shared across threads (see the Send and
    // Sync impls below).
    const fn sync<T: Sync>() {}
    sync::<Segment>();
    assert!(SEM_OFFSET.is_multiple_of(std::mem::align_of::<libc::sem_t>()));
};

/// A POSIX counting semaphore shared between processes: named, or inside a shared memory
/// segment.
///
/// - Named ([`create`](Self::create) / [`open`](Self::open)): `sem_open`, so any program
///   opening the same name shares it (C's `sem_open`, Python's `posix_ipc.Semaphore`). The
///   creator owns the name and removes it on drop unless it calls
///   [`persist`](Self::persist); an opener never does. These are `Semaphore<'static>`.
/// - In a segment ([`in_segment`](Self::in_segment)): an unnamed, process-shared `sem_t` at
///   an offset in an [`ipcraft_shm::Segment`], initialized exactly once even when processes
///   race to place it. A `Semaphore<'a>` borrows the segment, so the mapping cannot go away
///   while it is used.
///
/// Every wait is available blocking ([`wait`](Self::wait)), non-blocking
/// ([`try_wait`](Self::try_wait), [`Error::WouldBlock`]) and timed on the monotonic clock
/// ([`wait_timeout`](Self::wait_timeout), [`wait_deadline`](Self::wait_deadline),
/// [`Error::TimedOut`]); waits interrupted by a signal are resumed.
///
/// See `sem_overview(7)`.
///
/// # Examples
///
/// ```
/// use ipcraft_sync::Semaphore;
/// use std::time::Duration;
///
/// let name = format!("/ipcraft-doc-sem-{}", std::process::id());
/// let jobs = Semaphore::create(&name, 0)?;
/// // Another process (or `python3 -c "import posix_ipc; posix_ipc.Semaphore(NAME).release()"`):
/// let producer = Semaphore::open(&name)?;
/// producer.post()?;
/// jobs.wait_timeout(Duration::from_secs(5))?;
/// assert_eq!(jobs.value()?, 0);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[doc(alias = "sem_t")]
#[doc(alias = "sem_open")]
#[doc(alias = "sem_init")]
pub struct Semaphore<'a> {
    sem: NonNull<libc::sem_t>,
    place: Place<'a>,
}

enum Place<'a> {
    Named {
        name: PosixName,
        /// Whether this handle created the name and removes it on drop.
        owner: bool,
        /// Device and inode of the file the creator made, to unlink only that file.
        file: Option<(u64, u64)>,
    },
    InSegment {
        seg: &'a Segment,
        offset: usize,
    },
}

// SAFETY:
// - A semaphore is designed to be operated on from any thread (or process): every `sem_*`
//   call is thread-safe and keeps no thread-local state.
// - The pointer stays valid wherever the value moves: named, the glibc mapping lives until
//   `Drop` closes it; in a segment, it is backed by the `&'a Segment`, which is `Sync`
//   (asserted above), so the borrow may move to another thread.
unsafe impl Send for Semaphore<'_> {}
// SAFETY:
// - As above: every method takes `&self` and is a thread-safe `sem_*` call, or reads
//   immutable fields.
unsafe impl Sync for Semaphore<'_> {}

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

fn sem_name(name: &str) -> Result<PosixName> {
    PosixName::with_max(name, SEM_NAME_MAX).map_err(Error::Name)
}

/// The file glibc keeps a named semaphore in.
fn sem_path(name: &PosixName) -> String {
    format!("{SEM_DIR}{}", &name.as_str()[1..])
}

/// Device and inode of the file at `path`, if it exists.
fn file_id(path: &str) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Give the semaphore file the mode [`SEM_MODE`], whatever the umask was; return its identity.
///
/// There is no `fchmod` for a `sem_t`, and setting the umask around `sem_open` would race
/// with every other thread of the process. So open the file glibc made (`O_NOFOLLOW`) and
/// `fchmod` it. In between, its mode is `0600 & !umask`: never wider than 0600. No one else
/// can replace the file in between: `/dev/shm` is sticky, so only we (or root) may unlink it.
fn fix_mode(name: &PosixName) -> Result<(u64, u64)> {
    let path = sem_path(name);
    let io = |op: &'static str| {
        let path = path.clone();
        move |e: std::io::Error| Error::Sys(SysError::from_io(op, &e).on(path))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(io("open"))?;
    let meta = file.metadata().map_err(io("fstat"))?;
    if !meta.is_file() {
        return Err(Error::Sys(SysError::new("open", Errno::EINVAL).on(path)));
    }
    file.set_permissions(std::fs::Permissions::from_mode(SEM_MODE))
        .map_err(io("fchmod"))?;
    Ok((meta.dev(), meta.ino()))
}

/// Sleep a little (doubling up to 10 ms) unless `deadline` has passed; `false` to give up.
fn backoff(pause: &mut Duration, deadline: Deadline) -> bool {
    if deadline.has_passed() {
        return false;
    }
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(10));
    true
}

/// `deadline` as an absolute `CLOCK_MONOTONIC` time (the clock `Instant` reads on Linux).
fn monotonic_abstime(deadline: Instant) -> Result<libc::timespec> {
    let left = deadline.saturating_duration_since(Instant::now());
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(|e| Error::Sys(SysError::new("clock_gettime", e)))?;
    let nanos = now.tv_nsec() + i64::from(left.subsec_nanos());
    let secs = now
        .tv_sec()
        .saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX / 2))
        .saturating_add(nanos / 1_000_000_000);
    Ok(libc::timespec {
        tv_sec: secs,
        tv_nsec: nanos % 1_000_000_000,
    })
}

impl Semaphore<'static> {
    /// Create a named semaphore holding `initial`, mode 0600 whatever the umask; this
    /// handle owns the name and removes it on drop (unless [`persist`](Self::persist)ed).
    ///
    /// `sem_open` honours the umask and semaphores have no `fchmod`, so the mode is set
    /// afterwards on the file glibc made, `/dev/shm/sem.<name without the slash>`; until then
    /// it is `0600 & !umask`, never wider.
    ///
    /// See `sem_open(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Name`] (a name must start with `/`, have no other `/`, and 1 to 251 bytes
    /// after it); [`Error::ValueTooLarge`] when `initial` is over [`SEM_VALUE_MAX`];
    /// [`Error::AlreadyExists`]; [`Error::Sys`] (`EACCES`, `EMFILE`, ...). On an error
    /// after the semaphore was made, it is removed again.
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
        let posix = sem_name(name)?;
        check_value(u64::from(initial))?;
        // SAFETY:
        // - `posix` is a NUL-terminated C string that outlives the call.
        // - With O_CREAT, sem_open reads two variadic arguments: a mode_t (unsigned int on
        //   Linux) and an unsigned int value; exactly those are passed, and `initial` is at
        //   most SEM_VALUE_MAX (checked above).
        let sem = unsafe {
            libc::sem_open(
                posix.as_c_str().as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                SEM_MODE as libc::c_uint,
                initial as libc::c_uint,
            )
        };
        let Some(sem) = NonNull::new(sem) else {
            return Err(match Errno::last() {
                Errno::EEXIST => Error::AlreadyExists {
                    name: name.to_owned(),
                },
                e => Error::Sys(SysError::new("sem_open", e).on(name)),
            });
        };
        let mut made = Self {
            sem,
            place: Place::Named {
                name: posix,
                owner: true,
                file: None,
            },
        };
        // On an error, dropping `made` closes and unlinks the semaphore we just made.
        if let Place::Named { name, file, .. } = &mut made.place {
            *file = Some(fix_mode(name)?);
        }
        Ok(made)
    }

    /// Open the named semaphore another process (or program) created. This handle never
    /// removes the name.
    ///
    /// See `sem_open(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Name`]; [`Error::NotFound`]; [`Error::Sys`] (`EACCES`, ...).
    #[doc(alias = "sem_open")]
    pub fn open(name: &str) -> Result<Self> {
        let posix = sem_name(name)?;
        // SAFETY:
        // - `posix` is a NUL-terminated C string that outlives the call.
        // - Without O_CREAT, sem_open reads no variadic argument.
        let sem = unsafe { libc::sem_open(posix.as_c_str().as_ptr(), 0) };
        let Some(sem) = NonNull::new(sem) else {
            return Err(match Errno::last() {
                Errno::ENOENT => Error::NotFound {
                    name: name.to_owned(),
                },
                e => Error::Sys(SysError::new("sem_open", e).on(name)),
            });
        };
        Ok(Self {
            sem,
            place: Place::Named {
                name: posix,
                owner: false,
                file: None,
            },
        })
    }
}

impl<'a> Semaphore<'a> {
    /// Place a semaphore holding `initial` at `offset` in `seg` (a multiple of 64, with
    /// [`SEMAPHORE_FOOTPRINT`] bytes), or attach to the one already there: initialized
    /// exactly once even when processes race (the first one's `initial` counts; the others
    /// wait up to [`DEFAULT_INIT_TIMEOUT`] for it to finish). Dropping it leaves the
    /// semaphore in the segment for the other processes.
    ///
    /// See `sem_init(3)` (with `pshared = 1`).
    ///
    /// # Errors
    ///
    /// [`Error::ValueTooLarge`]; [`Error::Misaligned`]; [`Error::Shm`] (`OutOfBounds`,
    /// `ReadOnly`); [`Error::WrongLayout`] when something else is placed there;
    /// [`Error::NotReady`] when another process started placing it and did not finish in
    /// time (it may have died mid-way); [`Error::Sys`] from `sem_init`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_shm::Segment;
    /// use ipcraft_sync::Semaphore;
    ///
    /// let seg = Segment::anonymous(4096)?; // or a named one, opened by other processes
    /// let slots = Semaphore::in_segment(&seg, 64, 3)?;
    /// slots.try_wait()?;
    /// // Another process placing it at the same offset attaches; its `initial` is ignored.
    /// let same = Semaphore::in_segment(&seg, 64, 99)?;
    /// assert_eq!(same.value()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "sem_init")]
    pub fn in_segment(seg: &'a Segment, offset: usize, initial: u32) -> Result<Self> {
        check_value(u64::from(initial))?;
        let (state, layout, sem) = Self::locate(seg, offset)?;
        let made = Self {
            sem,
            place: Place::InSegment { seg, offset },
        };
        let deadline = Deadline::after(DEFAULT_INIT_TIMEOUT);
        let mut pause = Duration::from_micros(100);
        let outcome = init_once(
            state,
            || {
                // SAFETY:
                // - `sem` points to size_of::<sem_t>() writable bytes aligned for sem_t in
                //   `seg`'s live mapping (checked in `locate`; the mapping is borrowed for 'a).
                // - No other process uses those bytes yet: `init_once` runs this only in
                //   the one process whose CAS claimed the state word (fresh ->
                //   initializing), and everyone else waits for ready before any sem_* call.
                if unsafe { libc::sem_init(sem.as_ptr(), 1, initial) } != 0 {
                    return Err(Error::Sys(SysError::new("sem_init", Errno::last())));
                }
                layout.store(SEM_LAYOUT, Ordering::Relaxed);
                Ok(())
            },
            || backoff(&mut pause, deadline),
        );
        let found = match outcome {
            Ok(Outcome::Initialized) => return Ok(made),
            // Ready (acquire): the initializer's layout word is visible.
            Ok(Outcome::Attached) => layout.load(Ordering::Relaxed),
            Err(OnceError::Init(e)) => return Err(e),
            Err(OnceError::NotReady) => return Err(Error::NotReady),
            Err(OnceError::Foreign(found)) => found,
        };
        if found == SEM_LAYOUT {
            Ok(made)
        } else {
            Err(Error::WrongLayout {
                found,
                expected: SEM_LAYOUT,
            })
        }
    }

    /// Check that the placement fits in `seg`, is aligned and writable; return its state and
    /// layout words and where its `sem_t` is.
    fn locate(
        seg: &'a Segment,
        offset: usize,
    ) -> Result<(&'a AtomicU32, &'a AtomicU32, NonNull<libc::sem_t>)> {
        if !offset.is_multiple_of(PLACEMENT_ALIGN) {
            return Err(Error::Misaligned { offset });
        }
        let end = offset.checked_add(SEMAPHORE_FOOTPRINT);
        if end.is_none_or(|end| end > seg.len()) {
            return Err(Error::Shm(ipcraft_shm::Error::OutOfBounds {
                offset,
                len: SEMAPHORE_FOOTPRINT,
                size: seg.len(),
            }));
        }
        // Writable (get refuses read-only mappings), in bounds, aligned.
        let state: &AtomicU32 = seg.get(offset)?;
        let layout: &AtomicU32 = seg.get(offset + LAYOUT_OFFSET)?;
        let at = seg.as_ptr().wrapping_add(offset + SEM_OFFSET);
        let sem = NonNull::new(at.cast::<libc::sem_t>()).ok_or(Error::Misaligned { offset })?;
        if !sem.as_ptr().is_aligned() {
            return Err(Error::Misaligned { offset });
        }
        Ok((state, layout, sem))
    }

    fn sys(&self, op: &'static str, e: Errno) -> Error {
        let err = SysError::new(op, e);
        Error::Sys(match &self.place {
            Place::Named { name, .. } => err.on(name),
            Place::InSegment { .. } => err,
        })
    }

    /// Decrement the semaphore, waiting as long as it takes for it to be above zero.
    ///
    /// See `sem_wait(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] (`EINVAL` if the `sem_t` bytes were overwritten with garbage).
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        loop {
            // SAFETY:
            // - `self.sem` is a live, initialized sem_t (module invariants: `create`/`open`
            //   or `in_segment`, and the mapping outlives `self`).
            if unsafe { libc::sem_wait(self.sem.as_ptr()) } == 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => {}
                e => return Err(self.sys("sem_wait", e)),
            }
        }
    }

    /// Decrement the semaphore if it is above zero now, without waiting.
    ///
    /// See `sem_trywait(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when it is zero; [`Error::Sys`].
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
        loop {
            // SAFETY:
            // - `self.sem` is a live, initialized sem_t (module invariants).
            if unsafe { libc::sem_trywait(self.sem.as_ptr()) } == 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::EAGAIN => return Err(Error::WouldBlock),
                e => return Err(self.sys("sem_trywait", e)),
            }
        }
    }

    /// Decrement the semaphore, waiting at most `timeout` (on the monotonic clock) for it
    /// to be above zero. Returns after the timeout, never before.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`]; otherwise as [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_shm::Segment;
    /// use ipcraft_sync::{Error, Semaphore};
    /// use std::time::Duration;
    ///
    /// let seg = Segment::anonymous(64)?;
    /// let sem = Semaphore::in_segment(&seg, 0, 0)?;
    /// assert!(matches!(sem.wait_timeout(Duration::from_millis(10)), Err(Error::TimedOut)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "sem_timedwait")]
    #[doc(alias = "sem_clockwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_deadline(Deadline::after(timeout))
    }

    /// Decrement the semaphore, waiting at most until `deadline` (`sem_clockwait` on
    /// `CLOCK_MONOTONIC`, so setting the system clock does not shorten or stretch it). A
    /// deadline already passed still takes a unit that is there. [`Deadline::never`] is
    /// [`wait`](Self::wait).
    ///
    /// See `sem_clockwait(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`]; otherwise as [`wait`](Self::wait).
    #[doc(alias = "sem_clockwait")]
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<()> {
        let Some(at) = deadline.instant() else {
            return self.wait();
        };
        let abstime = monotonic_abstime(at)?;
        loop {
            // SAFETY:
            // - `self.sem` is a live, initialized sem_t (module invariants).
            // - `abstime` is a valid, normalized timespec on our stack, alive for the call.
            let rc = unsafe { sem_clockwait(self.sem.as_ptr(), libc::CLOCK_MONOTONIC, &abstime) };
            if rc == 0 {
                return Ok(());
            }
            match Errno::last() {
                // The deadline is absolute: resuming with it never waits longer in total.
                Errno::EINTR => {}
                Errno::ETIMEDOUT => return Err(Error::TimedOut),
                e => return Err(self.sys("sem_clockwait", e)),
            }
        }
    }

    /// Increment the semaphore, waking one waiter if any.
    ///
    /// See `sem_post(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::ValueTooLarge`] when the semaphore is already at [`SEM_VALUE_MAX`]
    /// (`EOVERFLOW`; the value is unchanged); [`Error::Sys`].
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        // SAFETY:
        // - `self.sem` is a live, initialized sem_t (module invariants).
        if unsafe { libc::sem_post(self.sem.as_ptr()) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EOVERFLOW => Err(Error::ValueTooLarge {
                value: u64::from(SEM_VALUE_MAX) + 1,
                max: SEM_VALUE_MAX,
            }),
            e => Err(self.sys("sem_post", e)),
        }
    }

    /// The semaphore's current value (which other processes may change at any moment).
    ///
    /// See `sem_getvalue(3)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`].
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<u32> {
        let mut value: libc::c_int = 0;
        // SAFETY:
        // - `self.sem` is a live, initialized sem_t (module invariants).
        // - `value` is a writable c_int on our stack.
        if unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) } != 0 {
            return Err(self.sys("sem_getvalue", Errno::last()));
        }
        // glibc reports 0, never a negative count of waiters.
        Ok(u32::try_from(value).unwrap_or(0))
    }

    /// The name of a named semaphore; `None` for one in a segment.
    pub fn name(&self) -> Option<&str> {
        match &self.place {
            Place::Named { name, .. } => Some(name.as_str()),
            Place::InSegment { .. } => None,
        }
    }

    /// Whether this handle removes the name on drop: it created the name and did not
    /// [`persist`](Self::persist) it.
    pub fn owns_name(&self) -> bool {
        matches!(self.place, Place::Named { owner: true, .. })
    }

    /// Keep the name of a semaphore this handle created after the handle is dropped (remove
    /// it later with [`unlink_semaphore`]). Does nothing for an opener, or for a semaphore
    /// in a segment, which lives as long as its segment.
    pub fn persist(&mut self) {
        if let Place::Named { owner, .. } = &mut self.place {
            *owner = false;
        }
    }
}

impl Drop for Semaphore<'_> {
    fn drop(&mut self) {
        let Place::Named { name, owner, file } = &self.place else {
            // Unnamed: the sem_t stays in the segment for the other processes. sem_destroy
            // is not called: others may still use it (and on Linux it does nothing).
            return;
        };
        // SAFETY:
        // - `self.sem` was returned by sem_open and is closed exactly once, here; `self` is
        //   not used after.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
        if *owner {
            // Remove the name only if it still names the file we made (a name can be
            // unlinked and made again by someone else meanwhile).
            let path = sem_path(name);
            if file.is_none() || file_id(&path) == *file {
                // SAFETY:
                // - `name` is a NUL-terminated C string that outlives the call.
                unsafe { libc::sem_unlink(name.as_c_str().as_ptr()) };
            }
        }
    }
}

impl fmt::Debug for Semaphore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Semaphore");
        match &self.place {
            Place::Named { name, owner, .. } => {
                d.field("name", &name.as_str()).field("owner", owner);
            }
            Place::InSegment { seg, offset } => {
                d.field("segment", &seg.name()).field("offset", offset);
            }
        }
        d.field("value", &self.value().ok()).finish()
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
    // SAFETY:
    // - `posix` is a NUL-terminated C string that outlives the call.
    if unsafe { libc::sem_unlink(posix.as_c_str().as_ptr()) } == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::ENOENT => Err(Error::NotFound {
            name: name.to_owned(),
        }),
        e => Err(Error::Sys(SysError::new("sem_unlink", e).on(name))),
    }
}
