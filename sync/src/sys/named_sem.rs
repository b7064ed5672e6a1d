#![allow(unsafe_code)]
//! Thin calls into glibc's named POSIX semaphores (`sem_open` and friends), behind
//! [`NamedSem`], which owns what `sem_open` returned.
//!
//! Invariants: `NamedSem::sem` is what a successful `sem_open` returned; glibc keeps that
//! mapping until `sem_close`, which only `Drop` calls, once. The `sem_t` bytes are touched
//! only by glibc's `sem_*` functions; no Rust reference to them is formed.
//!
//! Trust: glibc builds the futex operation of `sem_post` and `sem_clockwait` from the
//! `private` word inside the `sem_t`. Any process that can write the semaphore's file
//! (`/dev/shm/sem.NAME`) can set it so that our `sem_post` calls `__libc_fatal` (abort) or a
//! timed wait turns into a busy loop. Named semaphores are therefore created mode 0600 and
//! shared only with processes that may open the name, which are trusted not to scribble.

use nix::errno::Errno;
use std::ffi::CStr;
use std::ptr::NonNull;

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

/// A named semaphore opened with `sem_open`, closed on drop.
#[derive(Debug)]
pub(crate) struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

// SAFETY:
// - A sem_t is designed to be operated on from any thread (or process): every `sem_*` call
//   is thread-safe and keeps no thread-local state; the glibc mapping behind the pointer
//   lives until `Drop`, wherever the value moves.
unsafe impl Send for NamedSem {}
// SAFETY:
// - As above: every method takes `&self` and is a thread-safe `sem_*` call.
unsafe impl Sync for NamedSem {}

fn zero_or_errno(rc: libc::c_int) -> Result<(), Errno> {
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

impl NamedSem {
    /// `sem_open(name, O_CREAT | O_EXCL, mode, initial)`.
    pub(crate) fn create(name: &CStr, mode: u32, initial: u32) -> Result<Self, Errno> {
        // SAFETY:
        // - `name` is a NUL-terminated C string that outlives the call.
        // - With O_CREAT, sem_open reads two variadic arguments: a mode_t (unsigned int on
        //   Linux) and an unsigned int value; exactly those are passed (the caller checked
        //   `initial <= SEM_VALUE_MAX`; glibc refuses larger values with EINVAL anyway).
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                mode as libc::c_uint,
                initial as libc::c_uint,
            )
        };
        NonNull::new(sem)
            .map(|sem| Self { sem })
            .ok_or_else(Errno::last)
    }

    /// `sem_open(name, 0)`: an existing semaphore.
    pub(crate) fn open(name: &CStr) -> Result<Self, Errno> {
        // SAFETY:
        // - `name` is a NUL-terminated C string that outlives the call.
        // - Without O_CREAT, sem_open reads no variadic argument.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        NonNull::new(sem)
            .map(|sem| Self { sem })
            .ok_or_else(Errno::last)
    }

    /// `sem_wait` (one attempt: `EINTR` is returned to the caller).
    pub(crate) fn wait(&self) -> Result<(), Errno> {
        // SAFETY:
        // - `self.sem` is a live sem_t returned by sem_open (module invariants).
        zero_or_errno(unsafe { libc::sem_wait(self.sem.as_ptr()) })
    }

    /// `sem_trywait`.
    pub(crate) fn try_wait(&self) -> Result<(), Errno> {
        // SAFETY:
        // - `self.sem` is a live sem_t (module invariants).
        zero_or_errno(unsafe { libc::sem_trywait(self.sem.as_ptr()) })
    }

    /// `sem_clockwait` on `CLOCK_MONOTONIC` until `abstime`.
    pub(crate) fn wait_until(&self, abstime: &libc::timespec) -> Result<(), Errno> {
        // SAFETY:
        // - `self.sem` is a live sem_t (module invariants).
        // - `abstime` is a valid timespec borrowed for the whole call.
        zero_or_errno(unsafe { sem_clockwait(self.sem.as_ptr(), libc::CLOCK_MONOTONIC, abstime) })
    }

    /// `sem_post`.
    pub(crate) fn post(&self) -> Result<(), Errno> {
        // SAFETY:
        // - `self.sem` is a live sem_t (module invariants).
        zero_or_errno(unsafe { libc::sem_post(self.sem.as_ptr()) })
    }

    /// `sem_getvalue`.
    pub(crate) fn value(&self) -> Result<libc::c_int, Errno> {
        let mut value: libc::c_int = 0;
        // SAFETY:
        // - `self.sem` is a live sem_t (module invariants).
        // - `value` is a writable c_int on our stack.
        zero_or_errno(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) })?;
        Ok(value)
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY:
        // - `self.sem` was returned by sem_open and is closed exactly once, here; it is not
        //   used after.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// `sem_unlink(name)`.
pub(crate) fn unlink(name: &CStr) -> Result<(), Errno> {
    // SAFETY:
    // - `name` is a NUL-terminated C string that outlives the call.
    zero_or_errno(unsafe { libc::sem_unlink(name.as_ptr()) })
}
