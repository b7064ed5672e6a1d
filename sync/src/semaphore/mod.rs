//! [`Semaphore`]: a counting semaphore shared between processes, named (glibc's `sem_open`,
//! shared with any program that uses the same name) or inside a caller's shared memory
//! segment (on a futex word of our own).
//!
//! No `unsafe` here: the named kind calls glibc through `sys::NamedSem`; the in-segment
//! kind is atomics and futex calls on one 64-bit word.
//!
//! # The in-segment semaphore
//!
//! One 64-bit word, as glibc's 64-bit `sem_t` keeps it: the value in the low 32 bits (the
//! futex waiters sleep on) and the number of waiters in the high 32 bits. `post` increments
//! the value with a compare-exchange (refusing to pass [`SEM_VALUE_MAX`]) and wakes one
//! sleeper if the waiter count it replaced was non-zero. A waiter first tries to decrement;
//! otherwise it adds itself to the waiter count, tries again, and sleeps while the value is
//! zero, at most until its deadline; it removes itself from the count when it leaves. All
//! of it happens on one location, so a post either sees the waiter or the waiter sees the
//! post.
//!
//! Why not glibc's `sem_init` in the segment: glibc builds its futex operation from the
//! `private` word inside `sem_t`, so a peer that writes that word can make our `sem_post`
//! abort the process (`__libc_fatal`) or a timed wait spin past its deadline. Here, any
//! value a peer writes into the word makes counts wrong (or `post` report
//! [`Error::ValueTooLarge`]), nothing more: every arithmetic step is checked or wrapping,
//! and every sleep is bounded by the caller's deadline.
//!
//! # The named semaphore
//!
//! glibc's, for interoperability with C and Python (`posix_ipc`). The same `private` word
//! lives in its file, `/dev/shm/sem.NAME`: every process that can open the name is trusted
//! not to scribble on it. That is why named semaphores are created mode 0600 (only our user
//! can open them), and why the in-segment kind exists.

#![allow(clippy::disallowed_types)] // The words live in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use crate::mutex::DEFAULT_INIT_TIMEOUT;
use crate::once::{OnceError, Outcome, init_once};
use crate::sys::{NamedSem, monotonic_abstime, sem_unlink};
use futex::{futex_sem_post, futex_sem_wait, try_take};
use ipcraft_core::{Deadline, PosixName, SysError};
use ipcraft_shm::Segment;
use named::{check_initial, file_id, sem_path};
use nix::errno::Errno;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

mod futex;
mod named;

pub use named::{DEFAULT_SEM_MODE, SemaphoreOptions, unlink_semaphore};

/// The largest value a semaphore can hold: glibc's `SEM_VALUE_MAX` on Linux (`INT_MAX`), as
/// `getconf SEM_VALUE_MAX` prints it.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// Bytes a semaphore takes in a segment (place it at a multiple of 64): a state word, a
/// layout word, then the 64-bit value-and-waiters word.
pub const SEMAPHORE_FOOTPRINT: usize = WORD_OFFSET + 8;

const LAYOUT_OFFSET: usize = 4;
const WORD_OFFSET: usize = 8;
const PLACEMENT_ALIGN: usize = 64;
/// The layout word of a semaphore placement ("5E4A", version 2: the futex word; version 1
/// held a glibc `sem_t`): differs from every `Mutex` and `Condvar` layout word, so one is
/// never taken for another.
const SEM_LAYOUT: u32 = 0x5e4a_0002;
/// One waiter, in the high half of the word.
const WAITER: u64 = 1 << 32;

/// A POSIX counting semaphore shared between processes: named, or inside a shared memory
/// segment.
///
/// - Named ([`create`](Self::create) / [`open`](Self::open)): `sem_open`, so any program
///   opening the same name shares it (C's `sem_open`, Python's `posix_ipc.Semaphore`). The
///   creator owns the name and removes it on drop unless it calls
///   [`persist`](Self::persist); an opener never does. These are `Semaphore<'static>`.
/// - In a segment ([`in_segment`](Self::in_segment)): a futex-based semaphore of our own at
///   an offset in an [`ipcraft_shm::Segment`], initialized exactly once even when processes
///   race to place it. A `Semaphore<'a>` borrows the segment, so the mapping cannot go away
///   while it is used.
///
/// # Trust
///
/// - In a segment: one 64-bit word (the value in the low half, which waiters sleep on with
///   `FUTEX_WAIT`, the number of waiters in the high half). A peer writing into it can make
///   counts wrong, or `post` report [`Error::ValueTooLarge`]; it cannot crash this process or
///   hold a wait past its deadline. It is not glibc's `sem_t` because of the next point.
/// - Named: glibc's `sem_t`, in the file `/dev/shm/sem.NAME`. glibc builds the futex
///   operation of `sem_post` and of a timed wait from a `private` word inside it, so a
///   process that can write that file can make our `sem_post` abort the process
///   (`__libc_fatal`) or a timed wait spin past its deadline. **Every process that can open
///   the name is trusted** not to scribble on it: named semaphores are created mode 0600, so
///   that is only our own user (and root). Use the in-segment kind where that is too much.
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
    place: Place<'a>,
}

enum Place<'a> {
    Named {
        sem: NamedSem,
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

/// Sleep a little (doubling up to 10 ms) unless `deadline` has passed; `false` to give up.
fn backoff(pause: &mut Duration, deadline: Deadline) -> bool {
    if deadline.has_passed() {
        return false;
    }
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(10));
    true
}

impl<'a> Semaphore<'a> {
    /// Place a semaphore holding `initial` at `offset` in `seg` (a multiple of 64, with
    /// [`SEMAPHORE_FOOTPRINT`] bytes), or attach to the one already there: initialized
    /// exactly once even when processes race (the first one's `initial` counts; the others
    /// wait up to [`DEFAULT_INIT_TIMEOUT`] for it to finish). Dropping it leaves the
    /// semaphore in the segment for the other processes.
    ///
    /// Not glibc's `sem_t` (a peer could abort us through it): a futex word of our own with
    /// the same semantics as `sem_init(3)` with `pshared = 1` (see the module docs).
    ///
    /// # Errors
    ///
    /// [`Error::ValueTooLarge`]; [`Error::Misaligned`]; [`Error::Shm`] (`OutOfBounds`,
    /// `ReadOnly`); [`Error::WrongLayout`] when something else is placed there;
    /// [`Error::NotReady`] when another process started placing it and did not finish in
    /// time (it may have died mid-way).
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
        check_initial(initial)?;
        let (state, layout, word) = Self::locate(seg, offset)?;
        let deadline = Deadline::after(DEFAULT_INIT_TIMEOUT);
        let mut pause = Duration::from_micros(100);
        let outcome = init_once(
            state,
            || {
                // No waiters yet: nobody uses the word before it is published ready.
                word.store(u64::from(initial), Ordering::Relaxed);
                layout.store(SEM_LAYOUT, Ordering::Relaxed);
                Ok::<(), Error>(())
            },
            || backoff(&mut pause, deadline),
        );
        let found = match outcome {
            Ok(Outcome::Initialized) => SEM_LAYOUT,
            // Ready (acquire): the initializer's layout word is visible.
            Ok(Outcome::Attached) => layout.load(Ordering::Relaxed),
            Err(OnceError::Init(e)) => return Err(e),
            Err(OnceError::NotReady) => return Err(Error::NotReady),
            Err(OnceError::Foreign(found)) => found,
        };
        if found != SEM_LAYOUT {
            return Err(Error::WrongLayout {
                found,
                expected: SEM_LAYOUT,
            });
        }
        Ok(Self {
            place: Place::InSegment { seg, offset },
        })
    }

    /// Check that the placement fits in `seg`, is aligned and writable; return its state,
    /// layout and value words.
    fn locate(
        seg: &'a Segment,
        offset: usize,
    ) -> Result<(&'a AtomicU32, &'a AtomicU32, &'a AtomicU64)> {
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
        Ok((
            seg.get(offset)?,
            seg.get(offset + LAYOUT_OFFSET)?,
            seg.get(offset + WORD_OFFSET)?,
        ))
    }

    /// The in-segment word (checked in `locate`), or the named semaphore.
    fn kind(&self) -> Result<Kind<'_>> {
        match &self.place {
            Place::Named { sem, .. } => Ok(Kind::Named(sem)),
            Place::InSegment { seg, offset } => Ok(Kind::Futex(seg.get(offset + WORD_OFFSET)?)),
        }
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
    /// [`Error::Sys`] (named: `EINVAL` if the `sem_t` bytes were overwritten with garbage).
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        match self.kind()? {
            Kind::Futex(word) => futex_sem_wait(word, Deadline::never()),
            Kind::Named(sem) => loop {
                match sem.wait() {
                    Ok(()) => return Ok(()),
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(self.sys("sem_wait", e)),
                }
            },
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
        match self.kind()? {
            Kind::Futex(word) if try_take(word) => Ok(()),
            Kind::Futex(_) => Err(Error::WouldBlock),
            Kind::Named(sem) => loop {
                match sem.try_wait() {
                    Ok(()) => return Ok(()),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => return Err(Error::WouldBlock),
                    Err(e) => return Err(self.sys("sem_trywait", e)),
                }
            },
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

    /// Decrement the semaphore, waiting at most until `deadline` (on `CLOCK_MONOTONIC`, so
    /// setting the system clock does not shorten or stretch it). A deadline already passed
    /// still takes a unit that is there. [`Deadline::never`] is [`wait`](Self::wait).
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
        let sem = match self.kind()? {
            Kind::Futex(word) => return futex_sem_wait(word, deadline),
            Kind::Named(sem) => sem,
        };
        let abstime = monotonic_abstime(at).map_err(|e| self.sys("clock_gettime", e))?;
        loop {
            match sem.wait_until(&abstime) {
                Ok(()) => return Ok(()),
                // The deadline is absolute: resuming with it never waits longer in total.
                Err(Errno::EINTR) => {}
                Err(Errno::ETIMEDOUT) => return Err(Error::TimedOut),
                Err(e) => return Err(self.sys("sem_clockwait", e)),
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
        let result = match self.kind()? {
            Kind::Futex(word) => futex_sem_post(word),
            Kind::Named(sem) => sem.post(),
        };
        match result {
            Ok(()) => Ok(()),
            Err(Errno::EOVERFLOW) => Err(Error::ValueTooLarge {
                value: u64::from(SEM_VALUE_MAX) + 1,
                max: SEM_VALUE_MAX,
            }),
            Err(e) => Err(self.sys("sem_post", e)),
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
        match self.kind()? {
            Kind::Futex(word) => Ok(word.load(Ordering::Relaxed) as u32),
            // glibc reports 0, never a negative count of waiters.
            Kind::Named(sem) => sem
                .value()
                .map(|v| u32::try_from(v).unwrap_or(0))
                .map_err(|e| self.sys("sem_getvalue", e)),
        }
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

/// Which implementation a semaphore is.
enum Kind<'s> {
    Futex(&'s AtomicU64),
    Named(&'s NamedSem),
}

impl Drop for Semaphore<'_> {
    fn drop(&mut self) {
        // Unnamed: the word stays in the segment for the other processes.
        let Place::Named {
            name, owner, file, ..
        } = &self.place
        else {
            return;
        };
        if *owner {
            // Remove the name only if it still names the file we made (a name can be
            // unlinked and made again by someone else meanwhile). The NamedSem closes
            // itself when the place is dropped, after this.
            let path = sem_path(name);
            if file.is_none() || file_id(&path) == *file {
                let _ = sem_unlink(name.as_c_str());
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
