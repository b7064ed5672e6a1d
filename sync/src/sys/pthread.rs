#![allow(unsafe_code)]
//! Thin calls into glibc's robust, process-shared pthread mutex, on a `pthread_mutex_t` that
//! lives in a shared mapping (the pthread kind of `Mutex`).
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
        let abstime = super::monotonic_abstime(deadline)?;
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
