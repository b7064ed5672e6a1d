//! What locking a [`Mutex`](crate::Mutex) gives: [`MutexGuard`], [`Recovery`] and
//! [`LockError`].

use crate::mutex::{Lock, Plain, data_offset};
use crate::sys::Acquired;
use ipcraft_core::{Deadline, SysError};
use ipcraft_shm::Segment;
use std::fmt;
use std::marker::PhantomData;

/// Makes a guard `!Send` and `!Sync`. Not `Send`, as std's guard: a pthread mutex must be
/// unlocked by the thread that locked it (glibc refuses others with `EPERM`, which would
/// leave it locked for every process), and both kinds keep that rule. Not `Sync`, unlike
/// std's: `set` and `update` write the shared bytes through `&self` (a plain copy), so two
/// threads sharing `&guard` would race two writes.
type NotSend = PhantomData<*const ()>;

/// Why a lock was not (cleanly) acquired.
///
/// It borrows the mutex (`OwnerDied` holds the lock through a [`Recovery`]), like std's
/// `TryLockError`, so it is not `'static`. To propagate it with `?`, let it convert into
/// this crate's [`Error`](crate::Error) or into `io::Error` (both `From` it, and are
/// `Send + Sync + 'static`, so `Box<dyn Error + Send + Sync>` takes them): but handle
/// `OwnerDied` first if you can repair, since converting drops the recovery, which makes the
/// mutex not recoverable.
///
/// ```
/// use ipcraft_shm::Segment;
/// use ipcraft_sync::Mutex;
///
/// fn bump(m: &Mutex<u64, &Segment>) -> std::io::Result<u64> {
///     let guard = m.lock()?; // LockError -> io::Error
///     guard.update(|n| *n += 1);
///     Ok(guard.get())
/// }
/// let seg = Segment::anonymous(4096)?;
/// let m = Mutex::in_segment(&seg, 0, 0u64)?;
/// assert_eq!(bump(&m)?, 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
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
    /// The timeout passed (for a condvar wait: the wait ended, and the mutex could not be
    /// locked again before the deadline; the guard is gone, the lock is not held).
    TimedOut,
    /// A system call failed; for an unlock, `EPERM` means the lock no longer named this
    /// holder (a peer overwrote it), and it was left as it was.
    Sys(SysError),
}

/// The outcome of a lock attempt without the guard (it is made by the caller).
#[derive(Debug)]
pub(crate) enum Fail {
    NotRecoverable,
    TimedOut,
    Sys(SysError),
}

impl<T: Plain> From<Fail> for LockError<'_, T> {
    fn from(f: Fail) -> Self {
        match f {
            Fail::NotRecoverable => Self::NotRecoverable,
            Fail::TimedOut => Self::TimedOut,
            Fail::Sys(e) => Self::Sys(e),
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
///
/// Not `Send`, as std's guard: unlock happens on the thread that locked. Not `Sync`
/// either ([`set`](Self::set) writes through `&self`). This does not compile:
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let seg = ipcraft_shm::Segment::anonymous(4096).unwrap();
/// let m = ipcraft_sync::Mutex::in_segment(&seg, 0, 0u64).unwrap();
/// send(m.lock().unwrap()); // error: `MutexGuard` cannot be sent between threads
/// ```
///
/// Nor does moving a [`Recovery`]:
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// let seg = ipcraft_shm::Segment::anonymous(4096).unwrap();
/// let m = ipcraft_sync::Mutex::in_segment(&seg, 0, 0u64).unwrap();
/// if let Err(ipcraft_sync::LockError::OwnerDied(r)) = m.lock() {
///     send(r); // error: `Recovery` cannot be sent between threads
/// }
/// ```
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: Plain> {
    held: Held<'a, T>,
}

/// What both guards hold: where the lock and the value are.
struct Held<'a, T: Plain> {
    lock: &'a Lock,
    seg: &'a Segment,
    offset: usize,
    _data: PhantomData<fn() -> T>,
    _not_send: NotSend,
}

impl<T: Plain> Clone for Held<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Plain> Copy for Held<'_, T> {}

impl<T: Plain> Held<'_, T> {
    fn get(&self) -> T {
        // In bounds: checked when the mutex was located.
        self.seg
            .read(self.offset + data_offset::<T>())
            .unwrap_or_else(|_| T::new_zeroed())
    }

    fn set(&self, value: &T) {
        // In bounds and writable: checked when the mutex was located.
        let _ = self.seg.write(self.offset + data_offset::<T>(), value);
    }

    /// Unlock; `repaired` is false for a recovery given up (the mutex becomes not
    /// recoverable).
    fn unlock(&self, repaired: bool) -> Result<(), SysError> {
        self.lock.unlock(repaired)
    }
}

impl<'a, T: Plain> MutexGuard<'a, T> {
    pub(crate) fn new(lock: &'a Lock, seg: &'a Segment, offset: usize) -> Self {
        Self {
            held: Held {
                lock,
                seg,
                offset,
                _data: PhantomData,
                _not_send: PhantomData,
            },
        }
    }

    /// The guard for a lock acquired `how`.
    pub(crate) fn acquired(self, how: Acquired) -> Result<Self, LockError<'a, T>> {
        match how {
            Acquired::Clean => Ok(self),
            Acquired::OwnerDied => Err(LockError::OwnerDied(Recovery {
                held: self.into_held(),
            })),
        }
    }

    /// Give up the guard without unlocking.
    fn into_held(self) -> Held<'a, T> {
        let held = self.held;
        std::mem::forget(self);
        held
    }

    /// A copy of the protected value.
    pub fn get(&self) -> T {
        self.held.get()
    }

    /// Replace the protected value.
    pub fn set(&self, value: &T) {
        self.held.set(value);
    }

    /// Copy the value out, change it with `f`, copy it back; returns what `f` returns.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = self.get();
        let r = f(&mut v);
        self.set(&v);
        r
    }

    /// Unlock now, and say whether it worked (dropping the guard unlocks too, and reports
    /// a failure on standard error).
    ///
    /// # Errors
    ///
    /// [`SysError`] with `EPERM` when the lock no longer names this holder: a peer wrote
    /// over the mutex (for the pthread kind, over glibc's owner field). The lock is then
    /// left as the peer made it.
    pub fn unlock(self) -> Result<(), SysError> {
        self.into_held().unlock(true)
    }

    /// Unlock, run `wait`, lock again until `deadline` (what a condition variable does).
    /// Owner death while unlocked is reported as on any lock; an unlock that fails is
    /// reported before anything waits.
    pub(crate) fn unlocked<R>(
        self,
        deadline: Deadline,
        wait: impl FnOnce() -> R,
    ) -> Result<(Self, R), LockError<'a, T>> {
        let held = self.into_held();
        held.unlock(true).map_err(LockError::Sys)?;
        let r = wait();
        let how = held.lock.lock(deadline).map_err(LockError::from)?;
        Ok((MutexGuard { held }.acquired(how)?, r))
    }
}

impl<T: Plain> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if let Err(e) = self.held.unlock(true) {
            report_unlock_failure(self.held.seg, self.held.offset, &e);
        }
    }
}

/// A failed unlock in `Drop` cannot be returned: say it on standard error rather than drop
/// it silently ([`MutexGuard::unlock`] returns it instead).
#[cold]
fn report_unlock_failure(seg: &Segment, offset: usize, e: &SysError) {
    eprintln!(
        "ipcraft-sync: unlocking the mutex at offset {offset} of {} failed ({e}): another \
         process wrote over it; it stays as that process left it",
        seg.name().unwrap_or("an anonymous segment"),
    );
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
///
/// Neither `Send` nor `Sync`, like [`MutexGuard`].
#[must_use = "dropping the recovery without make_consistent makes the mutex not recoverable"]
pub struct Recovery<'a, T: Plain> {
    held: Held<'a, T>,
}

impl<'a, T: Plain> Recovery<'a, T> {
    /// A copy of the (possibly inconsistent) value.
    pub fn get(&self) -> T {
        self.held.get()
    }

    /// Replace the value (the repair).
    pub fn set(&self, value: &T) {
        self.held.set(value);
    }

    /// Mark the data consistent again (`pthread_mutex_consistent` for the pthread kind);
    /// returns the ordinary guard, still holding the lock.
    ///
    /// # Errors
    ///
    /// The system error (`EPERM`: a peer overwrote the lock), with the recovery dropped
    /// (the mutex becomes unrecoverable).
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn make_consistent(self) -> Result<MutexGuard<'a, T>, SysError> {
        let held = self.held;
        held.lock.make_consistent()?;
        std::mem::forget(self);
        Ok(MutexGuard { held })
    }
}

impl<T: Plain> Drop for Recovery<'_, T> {
    fn drop(&mut self) {
        if let Err(e) = self.held.unlock(false) {
            report_unlock_failure(self.held.seg, self.held.offset, &e);
        }
    }
}

impl<T: Plain> fmt::Debug for Recovery<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recovery(..)")
    }
}
