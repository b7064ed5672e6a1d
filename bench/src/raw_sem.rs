//! The raw baseline of the semaphore rows: glibc's unnamed, process-shared `sem_t` in a
//! memory file mapped by hand, posted and waited with direct `sem_post(3)` and
//! `sem_clockwait(3)` calls, as a C programmer writes it.
//!
//! # Invariants this file upholds
//!
//! - A [`RawSem`] points to `size_of::<sem_t>()` bytes, bounds- and alignment-checked by
//!   [`SharedMap::bytes_at`], in a mapping it borrows (so it cannot outlive it).
//! - Those bytes are initialized once by [`RawSem::init`] in the parent before the memory
//!   file is handed to the child, and are then touched only by `sem_*` calls, here and in the
//!   peer (the semaphore rows' layout keeps every other word off them). glibc's `sem_t`
//!   trusts whoever can write it (see `ipcraft-sync`'s docs); the peer is our own child.
#![allow(unsafe_code)]

use crate::shm::SharedMap;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Instant;

// SAFETY:
// - The declaration matches glibc's (2.30+) `int sem_clockwait(sem_t *, clockid_t,
//   const struct timespec *)` from <semaphore.h>; the libc crate lacks it.
unsafe extern "C" {
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A process-shared `sem_t` inside a [`SharedMap`].
#[derive(Debug)]
pub struct RawSem<'a> {
    ptr: NonNull<libc::sem_t>,
    _map: PhantomData<&'a SharedMap>,
}

/// How a timed wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// A unit was taken.
    Taken,
    /// The deadline passed first.
    TimedOut,
}

impl<'a> RawSem<'a> {
    /// The `sem_t` at `offset` of `map` (initialized by [`RawSem::init`], here or in the
    /// parent that handed the memory file over).
    ///
    /// # Errors
    ///
    /// Out of bounds or misaligned.
    pub fn at(map: &'a SharedMap, offset: usize) -> io::Result<Self> {
        let ptr = map.bytes_at(offset, size_of::<libc::sem_t>(), align_of::<libc::sem_t>())?;
        Ok(Self {
            ptr: ptr.cast(),
            _map: PhantomData,
        })
    }

    /// `sem_init(3)` with `pshared = 1` and value 0. Call once, before the memory file is
    /// handed to anyone.
    ///
    /// # Errors
    ///
    /// `sem_init` failed.
    pub fn init(&self) -> io::Result<()> {
        // SAFETY:
        // - `self.ptr` points to size_of::<sem_t>() writable, aligned bytes in a live mapping
        //   (checked in `at`; `self` borrows the map).
        // - Nobody uses them yet: the caller initializes before handing the file over.
        if unsafe { libc::sem_init(self.ptr.as_ptr(), 1, 0) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sem_post(3)`.
    ///
    /// # Errors
    ///
    /// `sem_post` failed.
    #[inline]
    pub fn post(&self) -> io::Result<()> {
        // SAFETY:
        // - `self.ptr` is a live, initialized sem_t (module invariants).
        if unsafe { libc::sem_post(self.ptr.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sem_clockwait(3)` on `CLOCK_MONOTONIC` until `deadline` (resumed after `EINTR`).
    ///
    /// # Errors
    ///
    /// Any error but `ETIMEDOUT` and `EINTR`.
    #[inline]
    pub fn wait_until(&self, deadline: Instant) -> io::Result<Waited> {
        let left = deadline.saturating_duration_since(Instant::now());
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
        let nanos = now.tv_nsec() + i64::from(left.subsec_nanos());
        let abstime = libc::timespec {
            tv_sec: now.tv_sec() + left.as_secs() as i64 + nanos / 1_000_000_000,
            tv_nsec: nanos % 1_000_000_000,
        };
        loop {
            // SAFETY:
            // - `self.ptr` is a live, initialized sem_t (module invariants).
            // - `abstime` is a valid timespec on our stack, alive for the call.
            let rc = unsafe { sem_clockwait(self.ptr.as_ptr(), libc::CLOCK_MONOTONIC, &abstime) };
            if rc == 0 {
                return Ok(Waited::Taken);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::ETIMEDOUT) => return Ok(Waited::TimedOut),
                _ => return Err(e),
            }
        }
    }
}
