#![allow(unsafe_code)]
//! The one file of `ipcraft-sync` with `unsafe` code: thin calls into glibc's robust,
//! process-shared pthread mutex, on a `pthread_mutex_t` that lives in a shared mapping.
//!
//! Invariants this file relies on, and who upholds them:
//! - A [`RawMutex`] points to `size_of::<pthread_mutex_t>()` bytes, aligned for it, inside a
//!   mapping that stays mapped while the `RawMutex` lives: [`RawMutex::new`] is `unsafe` and
//!   its caller (`mutex.rs`) checks bounds and alignment against the `Segment` and ties the
//!   `RawMutex`'s use to a borrow of that `Segment`.
//! - The mutex bytes are only ever touched by the pthread functions (which use atomic
//!   operations on them) after [`RawMutex::init`]; no Rust reference to them is formed.
//! - Trust: glibc keeps robust-list pointers inside the mutex, so a peer that scribbles over
//!   the mutex bytes can corrupt the locking thread's robust list. Share a mutex only with
//!   processes you trust not to write garbage into it (see the crate docs).

use nix::errno::Errno;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
#[allow(clippy::disallowed_types)]
// Futex words live in shared memory, where loom's atomics cannot.
use std::sync::atomic::AtomicU32;
use std::time::Duration;
use std::time::Instant;

// SAFETY:
// - The declaration matches glibc's (2.30+) `int pthread_mutex_clocklock(pthread_mutex_t *,
//   clockid_t, const struct timespec *)` from <pthread.h>; the libc crate lacks it.
unsafe extern "C" {
    /// glibc 2.30+: like `pthread_mutex_timedlock`, on the given clock.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Normally.
    Clean,
    /// The previous owner died holding it (`EOWNERDEAD`): we own it, the data may be
    /// inconsistent, and unless made consistent it becomes unrecoverable at unlock.
    OwnerDied,
}

/// A robust process-shared pthread mutex in shared memory.
#[derive(Debug)]
pub(crate) struct RawMutex {
    ptr: NonNull<libc::pthread_mutex_t>,
}

// SAFETY:
// - A RawMutex is a pointer to a process-shared mutex, designed to be operated on from any
//   thread (or process); it holds no thread-local state.
unsafe impl Send for RawMutex {}
// SAFETY:
// - As above: every operation is a pthread call that is thread-safe by specification.
unsafe impl Sync for RawMutex {}

/// Bytes a mutex takes.
pub(crate) const MUTEX_SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();
/// Alignment a mutex needs.
pub(crate) const MUTEX_ALIGN: usize = std::mem::align_of::<libc::pthread_mutex_t>();

#[inline]
fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(rc))
    }
}

#[inline]
fn acquired(rc: libc::c_int) -> Result<Acquired, Errno> {
    match rc {
        0 => Ok(Acquired::Clean),
        libc::EOWNERDEAD => Ok(Acquired::OwnerDied),
        e => Err(Errno::from_raw(e)),
    }
}

impl RawMutex {
    /// # Safety
    ///
    /// `ptr` must point to `MUTEX_SIZE` bytes aligned to `MUTEX_ALIGN`, inside a shared
    /// mapping that stays mapped for as long as the returned value is used, and those bytes
    /// must not be accessed other than through `RawMutex` methods.
    pub(crate) unsafe fn new(ptr: NonNull<u8>) -> Self {
        Self { ptr: ptr.cast() }
    }

    /// Initialize the mutex bytes: process-shared, robust, optionally priority-inheriting.
    /// Must run exactly once, before any other process uses the mutex.
    pub(crate) fn init(&self, priority_inheritance: bool) -> Result<(), Errno> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY:
        // - `attr` is a local, writable pthread_mutexattr_t; init writes it whole.
        check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let attr = attr.as_mut_ptr();
        let result = (|| {
            // SAFETY:
            // - `attr` was initialized by pthread_mutexattr_init just above.
            check(unsafe {
                libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY:
            // - `attr` is initialized (above).
            check(unsafe { libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST) })?;
            if priority_inheritance {
                // SAFETY:
                // - `attr` is initialized (above).
                check(unsafe {
                    libc::pthread_mutexattr_setprotocol(attr, libc::PTHREAD_PRIO_INHERIT)
                })?;
            }
            // SAFETY:
            // - `self.ptr` points to MUTEX_SIZE writable, aligned bytes in a live mapping
            //   (contract of `new`); no other process uses them yet (contract of `init`).
            // - `attr` is initialized.
            check(unsafe { libc::pthread_mutex_init(self.ptr.as_ptr(), attr) })
        })();
        // SAFETY:
        // - `attr` is initialized and no longer used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr) };
        result
    }

    /// Block until acquired.
    #[inline]
    pub(crate) fn lock(&self) -> Result<Acquired, Errno> {
        // SAFETY:
        // - `self.ptr` is an initialized process-shared mutex in a live mapping (contracts
        //   of `new` and `init`).
        acquired(unsafe { libc::pthread_mutex_lock(self.ptr.as_ptr()) })
    }

    /// Block until acquired or `deadline` passes (`ETIMEDOUT`), on `CLOCK_MONOTONIC`.
    #[inline]
    pub(crate) fn lock_until(&self, deadline: Instant) -> Result<Acquired, Errno> {
        let left = deadline.saturating_duration_since(Instant::now());
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
        let nanos = now.tv_nsec() + i64::from(left.subsec_nanos());
        let secs = now
            .tv_sec()
            .saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX / 2))
            .saturating_add(nanos / 1_000_000_000);
        let abstime = libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos % 1_000_000_000,
        };
        // SAFETY:
        // - As in `lock`; `abstime` is a valid, normalized timespec on our stack.
        acquired(unsafe {
            pthread_mutex_clocklock(self.ptr.as_ptr(), libc::CLOCK_MONOTONIC, &abstime)
        })
    }

    /// Mark the state protected by a mutex acquired with `OwnerDied` as consistent again.
    pub(crate) fn make_consistent(&self) -> Result<(), Errno> {
        // SAFETY:
        // - As in `lock`; the calling thread owns the mutex (the guard that calls this
        //   exists only while it does).
        check(unsafe { libc::pthread_mutex_consistent(self.ptr.as_ptr()) })
    }

    /// Release a mutex this thread owns.
    #[inline]
    pub(crate) fn unlock(&self) -> Result<(), Errno> {
        // SAFETY:
        // - As in `lock`; the calling thread owns the mutex (called from a guard's drop).
        check(unsafe { libc::pthread_mutex_unlock(self.ptr.as_ptr()) })
    }
}

/// Sleep while `word` holds `expected` (shared futex: the word may be in memory other
/// processes map), at most `timeout` (`FUTEX_WAIT`'s relative timeout runs on
/// `CLOCK_MONOTONIC`). Returns on a wake-up, a changed word, a signal, or the timeout; the
/// caller re-checks its condition either way.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY:
    // - `word` is a live, aligned AtomicU32 for the duration of the call (a reference), and
    //   futex only reads it atomically; FUTEX_WAIT without FUTEX_PRIVATE_FLAG keys it by the
    //   physical page, so waiters in other processes meet on it.
    // - `ts_ptr` is null or points to a valid timespec on our stack for the whole call.
    // - The result is ignored on purpose: every outcome (woken, EAGAIN for a changed word,
    //   EINTR, ETIMEDOUT) leads the caller to re-check its condition.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// Wake up to `count` waiters sleeping on `word` (shared futex).
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY:
    // - `word` is a live, aligned AtomicU32 (a reference); FUTEX_WAKE does not access it,
    //   it only uses its address as the key. Errors (none expected) change nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}
