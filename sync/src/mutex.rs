//! [`Mutex`]: a robust, process-shared mutex and the plain data it protects, in shared memory.
//!
//! One `unsafe` block here: making the [`RawMutex`] handle in `Mutex::locate`, after checking
//! bounds and alignment against the `Segment`; its note says why the mapping outlives it.

#![allow(unsafe_code)]
#![allow(clippy::disallowed_types)] // The state word lives in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use crate::once::{OnceError, Outcome, init_once, wait_ready};
use crate::sys::{Acquired, MUTEX_ALIGN, MUTEX_SIZE, RawMutex};
use ipcraft_core::{Deadline, SysError};
use ipcraft_shm::{Segment, SegmentOptions};
use nix::errno::Errno;
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Plain data a [`Mutex`] can protect: valid for any bit pattern (a crash or a peer can leave
/// any bytes), no padding, no pointers, no `Drop`. Derive zerocopy's `FromBytes`,
/// `IntoBytes` and `Immutable` on a `#[repr(C)]` struct of integers, and `Clone, Copy`.
pub trait Plain: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> Plain for T {}

/// Offsets inside a placement: state word, layout word, the pthread mutex, then the data.
const LAYOUT_OFFSET: usize = 4;
const MUTEX_OFFSET: usize = 8;
const PLACEMENT_ALIGN: usize = 64;
/// How long an in-place open waits for another process's initialization, by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sleep a little (doubling up to 10 ms) unless `deadline` has passed; `false` to give up.
fn backoff(pause: &mut Duration, deadline: Deadline) -> bool {
    if deadline.has_passed() {
        return false;
    }
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(10));
    true
}

/// Where the data of a `Mutex<T>` starts in its placement.
const fn data_offset<T>() -> usize {
    let after = MUTEX_OFFSET + MUTEX_SIZE;
    let align = std::mem::align_of::<T>();
    after.div_ceil(align) * align
}

/// Bytes a `Mutex<T>` takes in a segment (place it at a multiple of 64).
pub const fn footprint<T>() -> usize {
    data_offset::<T>() + std::mem::size_of::<T>()
}

/// A word naming the type's layout (size, alignment, version), checked when opening.
const fn layout_word<T>() -> u32 {
    let size = std::mem::size_of::<T>() as u32;
    let align = std::mem::align_of::<T>().trailing_zeros();
    // version 1 in the top bits, alignment as a power of two, size in the low 24 bits.
    (1 << 28) | (align << 24) | (size & 0x00ff_ffff)
}

const fn segment_tag<T>() -> u64 {
    // "ipcraft-sync mutex" marker in the high half, the layout word in the low half.
    (0x1bc5_3a7e_u64 << 32) | layout_word::<T>() as u64
}

/// A robust process-shared mutex and the plain data `T` it protects, in shared memory.
///
/// `S` is where the segment is held: owned (`Mutex<T>`, from [`Mutex::create`] /
/// [`Mutex::open`], a named segment of its own) or borrowed (`Mutex<T, &Segment>`, from
/// [`Mutex::in_segment`], placed inside a segment of yours).
///
/// Locking returns a [`MutexGuard`] that reads and writes `T` by copy ([`MutexGuard::get`],
/// [`MutexGuard::set`], [`MutexGuard::update`]): no reference into memory another process
/// can write is ever handed out. The guard borrows the mutex, which borrows or owns the
/// mapping, so the mapping cannot be unmapped while the lock is held (a robust mutex unmapped
/// by its owner stays locked forever).
///
/// When a process dies holding the lock, the next locker gets
/// [`LockError::OwnerDied`] with a [`Recovery`] guard: repair the data, then
/// [`Recovery::make_consistent`]; dropping the recovery instead leaves the mutex
/// permanently [`LockError::NotRecoverable`] for everyone, rather than deadlocked.
///
/// # Examples
///
/// ```
/// use ipcraft_sync::Mutex;
///
/// let name = format!("/ipcraft-doc-mutex-{}", std::process::id());
/// let m = Mutex::create(&name, 0u64)?;
/// // Another process: Mutex::<u64>::open(&name)
/// m.lock().unwrap().update(|n| *n += 1);
/// assert_eq!(m.lock().unwrap().get(), 1);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[doc(alias = "pthread_mutex_t")]
pub struct Mutex<T, S = Segment>
where
    S: Borrow<Segment>,
{
    seg: S,
    offset: usize,
    raw: RawMutex,
    _data: PhantomData<fn() -> T>,
}

/// Options for creating or placing a [`Mutex`]: priority inheritance, and how long to wait
/// for another process's initialization.
///
/// # Examples
///
/// ```
/// use ipcraft_shm::Segment;
/// use ipcraft_sync::MutexOptions;
///
/// let seg = Segment::anonymous(4096)?;
/// let m = MutexOptions::new().priority_inheritance(true).in_segment(&seg, 0, 0u32)?;
/// m.lock().unwrap().set(&1);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexOptions {
    priority_inheritance: bool,
    init_timeout: Duration,
}

impl Default for MutexOptions {
    fn default() -> Self {
        Self {
            priority_inheritance: false,
            init_timeout: DEFAULT_INIT_TIMEOUT,
        }
    }
}

impl MutexOptions {
    /// No priority inheritance; a [`DEFAULT_INIT_TIMEOUT`] wait for initialization.
    pub fn new() -> Self {
        Self::default()
    }

    /// Priority inheritance (`PTHREAD_PRIO_INHERIT`): a low-priority owner is boosted while a
    /// higher-priority process waits, bounding priority inversion for real-time users.
    pub fn priority_inheritance(mut self, yes: bool) -> Self {
        self.priority_inheritance = yes;
        self
    }

    /// How long placing or opening waits for another process still initializing it.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// [`Mutex::create`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Mutex::create`].
    pub fn create<T: Plain>(&self, name: &str, value: T) -> Result<Mutex<T>> {
        let seg = SegmentOptions::new()
            .tag(segment_tag::<T>())
            .create(name, footprint::<T>())?;
        Mutex::place(seg, 0, value, self.priority_inheritance, Deadline::never())
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
        Mutex::place(seg, offset, value, self.priority_inheritance, deadline)
    }
}

impl<T: Plain> Mutex<T> {
    /// Create a named segment holding a new mutex protecting `value` (mode 0600).
    ///
    /// # Errors
    ///
    /// [`Error::Shm`] (bad name, already exists, ...); [`Error::Sys`] from `pthread_mutex_init`.
    pub fn create(name: &str, value: T) -> Result<Self> {
        MutexOptions::new().create(name, value)
    }

    /// Open the named mutex another process created.
    ///
    /// # Errors
    ///
    /// [`Error::Shm`] with `WrongTag` when the segment holds another type or layout, or
    /// `NotFound`, `NotIpcraft`, ...
    pub fn open(name: &str) -> Result<Self> {
        let seg = SegmentOptions::new().tag(segment_tag::<T>()).open(name)?;
        Self::attach(seg, 0, Deadline::after(DEFAULT_INIT_TIMEOUT))
    }
}

impl<'a, T: Plain> Mutex<T, &'a Segment> {
    /// Place a mutex protecting `value` at `offset` in `seg` (a multiple of 64, with
    /// [`footprint::<T>()`](footprint) bytes), or attach to the one already there:
    /// initialized exactly once even when processes race, others waiting up to
    /// [`DEFAULT_INIT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`]; [`Error::Shm`] (`OutOfBounds`, `ReadOnly`);
    /// [`Error::WrongLayout`] when another type is there; [`Error::NotReady`].
    pub fn in_segment(seg: &'a Segment, offset: usize, value: T) -> Result<Self> {
        MutexOptions::new().in_segment(seg, offset, value)
    }
}

impl<T: Plain, S: Borrow<Segment>> Mutex<T, S> {
    /// Initialize at `offset` if nobody has, else attach (the protocol is in `once.rs`,
    /// checked by loom).
    fn place(seg: S, offset: usize, value: T, pi: bool, deadline: Deadline) -> Result<Self> {
        let m = Self::locate(seg, offset)?;
        let result = {
            let s = m.seg.borrow();
            let state: &AtomicU32 = s.get(offset)?;
            let layout: &AtomicU32 = s.get(offset + LAYOUT_OFFSET)?;
            let mut pause = Duration::from_micros(100);
            init_once(
                state,
                || {
                    m.raw
                        .init(pi)
                        .map_err(|e| Error::Sys(SysError::new("pthread_mutex_init", e)))?;
                    s.write(offset + data_offset::<T>(), &value)?;
                    layout.store(layout_word::<T>(), Ordering::Relaxed);
                    Ok(())
                },
                || backoff(&mut pause, deadline),
            )
        };
        match result {
            Ok(Outcome::Initialized) => Ok(m),
            Ok(Outcome::Attached) => m.check_layout(),
            Err(e) => Err(Self::once_error(e)),
        }
    }

    /// Attach to a mutex another process placed (waiting for its initialization).
    fn attach(seg: S, offset: usize, deadline: Deadline) -> Result<Self> {
        let m = Self::locate(seg, offset)?;
        let mut pause = Duration::from_micros(100);
        let ready = wait_ready(m.seg.borrow().get::<AtomicU32>(offset)?, || {
            backoff(&mut pause, deadline)
        });
        match ready {
            Ok(()) => m.check_layout(),
            Err(OnceError::Foreign(found)) => Err(Error::WrongLayout {
                found,
                expected: layout_word::<T>(),
            }),
            Err(_) => Err(Error::NotReady),
        }
    }

    fn once_error(e: OnceError<Error>) -> Error {
        match e {
            OnceError::Init(e) => e,
            OnceError::NotReady => Error::NotReady,
            OnceError::Foreign(found) => Error::WrongLayout {
                found,
                expected: layout_word::<T>(),
            },
        }
    }

    fn check_layout(self) -> Result<Self> {
        let found = self
            .seg
            .borrow()
            .get::<AtomicU32>(self.offset + LAYOUT_OFFSET)?
            .load(Ordering::Relaxed);
        if found != layout_word::<T>() {
            return Err(Error::WrongLayout {
                found,
                expected: layout_word::<T>(),
            });
        }
        Ok(self)
    }

    /// Check that the placement fits and is aligned; make the raw mutex handle.
    fn locate(seg: S, offset: usize) -> Result<Self> {
        if !offset.is_multiple_of(PLACEMENT_ALIGN) {
            return Err(Error::Misaligned { offset });
        }
        let end = offset.checked_add(footprint::<T>());
        if end.is_none_or(|end| end > seg.borrow().len()) {
            return Err(Error::Shm(ipcraft_shm::Error::OutOfBounds {
                offset,
                len: footprint::<T>(),
                size: seg.borrow().len(),
            }));
        }
        // Writable (get refuses read-only mappings); the state word is in bounds.
        seg.borrow().get::<AtomicU32>(offset)?;
        let at = seg.borrow().as_ptr().wrapping_add(offset + MUTEX_OFFSET);
        let ptr = NonNull::new(at).ok_or(Error::Misaligned { offset })?;
        if !(ptr.as_ptr() as usize).is_multiple_of(MUTEX_ALIGN) {
            return Err(Error::Misaligned { offset });
        }
        // SAFETY:
        // - `ptr` points MUTEX_OFFSET bytes into a placement of footprint::<T>() bytes that
        //   lies inside `seg`'s data area (checked above), so MUTEX_SIZE bytes are in bounds;
        //   it is aligned for pthread_mutex_t (checked above).
        // - The mapping stays mapped while the RawMutex is used: the RawMutex lives in the
        //   returned Mutex next to `seg`, which owns or borrows the Segment owning the mapping,
        //   and ipcraft-shm never unmaps a Segment it can still be reached through (`grow`
        //   needs `&mut Segment`, impossible while this borrow or ownership lasts).
        // - Those bytes are touched only through RawMutex: ipcraft-sync never copies over
        //   the mutex area (data starts at data_offset::<T>() >= MUTEX_OFFSET + MUTEX_SIZE).
        let raw = unsafe { RawMutex::new(ptr.cast()) };
        Ok(Self {
            seg,
            offset,
            raw,
            _data: PhantomData,
        })
    }

    fn data_at(&self) -> usize {
        self.offset + data_offset::<T>()
    }

    fn guard(&self, how: Acquired) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        let guard = MutexGuard {
            raw: &self.raw,
            seg: self.seg.borrow(),
            data: self.data_at(),
            _data: PhantomData,
        };
        match how {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied => Err(LockError::OwnerDied(Recovery { guard })),
        }
    }

    /// Block until the lock is acquired.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (the lock is then held, through a [`Recovery`]);
    /// [`LockError::NotRecoverable`]; [`LockError::Sys`].
    #[doc(alias = "pthread_mutex_lock")]
    pub fn lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        match self.raw.lock() {
            Ok(how) => self.guard(how),
            Err(e) => Err(LockError::from_errno("pthread_mutex_lock", e)),
        }
    }

    /// Acquire the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when it is held; otherwise as [`lock`](Self::lock).
    #[doc(alias = "pthread_mutex_trylock")]
    pub fn try_lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        // Not pthread_mutex_trylock: on a robust mutex that is not recoverable, glibc's
        // trylock reports ENOTRECOVERABLE but leaves the lock word claimed by this thread,
        // so every later lock from it waits (seen with glibc 2.36). clocklock with a deadline
        // already past tries once, reports the same states, and leaves the word alone.
        match self.raw.lock_until(std::time::Instant::now()) {
            Ok(how) => self.guard(how),
            Err(Errno::ETIMEDOUT) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::from_errno("pthread_mutex_clocklock", e)),
        }
    }

    /// Acquire the lock, waiting at most `timeout` (on the monotonic clock).
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`]; otherwise as [`lock`](Self::lock).
    #[doc(alias = "pthread_mutex_clocklock")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_deadline(Deadline::after(timeout))
    }

    /// Acquire the lock, waiting at most until `deadline` (`pthread_mutex_clocklock` on
    /// `CLOCK_MONOTONIC`).
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`]; otherwise as [`lock`](Self::lock).
    pub fn lock_deadline(
        &self,
        deadline: Deadline,
    ) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        let Some(at) = deadline.instant() else {
            return self.lock();
        };
        match self.raw.lock_until(at) {
            Ok(how) => self.guard(how),
            Err(Errno::ETIMEDOUT) => Err(LockError::TimedOut),
            Err(e) => Err(LockError::from_errno("pthread_mutex_clocklock", e)),
        }
    }

    /// The segment holding the mutex.
    pub fn segment(&self) -> &Segment {
        self.seg.borrow()
    }
}

impl<T, S: Borrow<Segment>> fmt::Debug for Mutex<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("segment", &self.seg.borrow().name())
            .field("offset", &self.offset)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

/// Why a lock was not (cleanly) acquired.
#[non_exhaustive]
pub enum LockError<'a, T: Plain> {
    /// The previous owner died holding the lock. The lock is now held, through this
    /// recovery guard: repair the data, then call [`Recovery::make_consistent`].
    OwnerDied(Recovery<'a, T>),
    /// An owner died and the next one did not make the state consistent: the mutex is
    /// permanently unusable (`ENOTRECOVERABLE`). Re-create it.
    NotRecoverable,
    /// `try_lock` found the lock held.
    WouldBlock,
    /// The timeout passed.
    TimedOut,
    /// The pthread call failed otherwise.
    Sys(SysError),
}

impl<T: Plain> LockError<'_, T> {
    fn from_errno(op: &'static str, e: Errno) -> Self {
        match e {
            Errno::ENOTRECOVERABLE => Self::NotRecoverable,
            e => Self::Sys(SysError::new(op, e)),
        }
    }
}

impl<T: Plain> fmt::Debug for LockError<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            Self::NotRecoverable => f.write_str("NotRecoverable"),
            Self::WouldBlock => f.write_str("WouldBlock"),
            Self::TimedOut => f.write_str("TimedOut"),
            Self::Sys(e) => write!(f, "Sys({e:?})"),
        }
    }
}

impl<T: Plain> fmt::Display for LockError<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerDied(_) => f.write_str(
                "the previous owner died holding the lock; repair the data and call \
                 make_consistent on the recovery guard",
            ),
            Self::NotRecoverable => f.write_str(
                "the mutex is not recoverable: an owner died and the next did not make it \
                 consistent; re-create it",
            ),
            Self::WouldBlock => f.write_str("the lock is held"),
            Self::TimedOut => f.write_str("timed out waiting for the lock"),
            Self::Sys(e) => e.fmt(f),
        }
    }
}

impl<T: Plain> std::error::Error for LockError<'_, T> {}

/// Holds the lock; reads and writes the protected `T` by copy. Unlocks on drop.
pub struct MutexGuard<'a, T: Plain> {
    raw: &'a RawMutex,
    seg: &'a Segment,
    data: usize,
    _data: PhantomData<fn() -> T>,
}

impl<T: Plain> MutexGuard<'_, T> {
    /// A copy of the protected value.
    pub fn get(&self) -> T {
        // In bounds: checked when the mutex was located.
        self.seg.read(self.data).unwrap_or_else(|_| T::new_zeroed())
    }

    /// Replace the protected value.
    pub fn set(&self, value: &T) {
        // In bounds and writable: checked when the mutex was located.
        let _ = self.seg.write(self.data, value);
    }

    /// Copy the value out, change it with `f`, copy it back; returns what `f` returns.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = self.get();
        let r = f(&mut v);
        self.set(&v);
        r
    }
}

impl<'a, T: Plain> MutexGuard<'a, T> {
    /// Unlock, run `wait`, lock again: what a condition variable does. Owner death while
    /// unlocked is reported as on any lock.
    pub(crate) fn unlocked<R>(
        self,
        wait: impl FnOnce() -> R,
    ) -> (std::result::Result<MutexGuard<'a, T>, LockError<'a, T>>, R) {
        let (raw, seg, data) = (self.raw, self.seg, self.data);
        drop(self); // unlocks
        let r = wait();
        let relocked = match raw.lock() {
            Ok(how) => {
                let guard = MutexGuard {
                    raw,
                    seg,
                    data,
                    _data: PhantomData,
                };
                match how {
                    Acquired::Clean => Ok(guard),
                    Acquired::OwnerDied => Err(LockError::OwnerDied(Recovery { guard })),
                }
            }
            Err(e) => Err(LockError::from_errno("pthread_mutex_lock", e)),
        };
        (relocked, r)
    }
}

impl<T: Plain> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let _ = self.raw.unlock();
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("value", &self.get())
            .finish()
    }
}

/// The lock, acquired from an owner that died holding it: the data may be half-updated.
/// Repair it, then [`make_consistent`](Self::make_consistent). Dropping this without doing
/// so unlocks the mutex and makes it permanently [`LockError::NotRecoverable`].
pub struct Recovery<'a, T: Plain> {
    guard: MutexGuard<'a, T>,
}

impl<'a, T: Plain> Recovery<'a, T> {
    /// A copy of the (possibly inconsistent) value.
    pub fn get(&self) -> T {
        self.guard.get()
    }

    /// Replace the value (the repair).
    pub fn set(&self, value: &T) {
        self.guard.set(value);
    }

    /// Mark the data consistent again (`pthread_mutex_consistent`); returns the ordinary
    /// guard, still holding the lock.
    ///
    /// # Errors
    ///
    /// The pthread error, with the recovery guard dropped (the mutex becomes unrecoverable).
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn make_consistent(self) -> std::result::Result<MutexGuard<'a, T>, SysError> {
        self.guard
            .raw
            .make_consistent()
            .map_err(|e| SysError::new("pthread_mutex_consistent", e))?;
        Ok(self.guard)
    }
}

impl<T: Plain> fmt::Debug for Recovery<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recovery(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_words_differ_by_type() {
        assert_ne!(layout_word::<u64>(), layout_word::<u32>());
        assert_ne!(layout_word::<[u8; 8]>(), layout_word::<u64>());
        assert_eq!(data_offset::<u64>(), 48);
        assert_eq!(footprint::<u64>(), 56);
    }
}
