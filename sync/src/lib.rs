//! # ipcraft-sync
//!
//! Robust, process-shared synchronization in shared memory, for Linux, that a hostile or
//! careless peer cannot crash or wedge.
//!
//! [`Mutex<T>`](Mutex): a process-shared, **robust** mutex around plain data `T`: when a
//! process dies holding it, the next locker gets [`LockError::OwnerDied`], whose
//! [`Recovery`] guard must either [`make_consistent`](Recovery::make_consistent) after
//! repairing the data, or be dropped, after which every locker gets
//! [`LockError::NotRecoverable`] instead of a deadlock. Timeouts use the monotonic clock.
//! Placed standalone ([`Mutex::create`] / [`Mutex::open`], a named segment of its own, its
//! type, layout and kind checked through the segment's header) or inside your segment
//! ([`Mutex::in_segment`], initialized exactly once even when processes race). Two
//! [kinds](MutexKind):
//! - [`MutexKind::Futex`] (the default): one plain lock word of our own; each handle holds
//!   an open-file-description lock on a byte of the segment's file, which the kernel drops
//!   when its process dies, so owner death is read from the kernel, never from anything a
//!   peer wrote. Trusts no peer.
//! - [`MutexKind::Pthread`]: glibc's robust pthread mutex, for priority inheritance and C
//!   peers. glibc keeps robust-list pointers inside it and writes through them at unlock,
//!   so it trusts every process that can write it.
//!
//! [`Condvar`]: a process-shared condition variable on a futex sequence word of its own,
//! because glibc's process-shared `pthread_cond_t` is not robust (a waiter killed at the
//! wrong moment can block every other user: glibc bug 21422). It keeps no per-waiter state,
//! so the death of any waiter or notifier never blocks the others. Timed waits keep their
//! deadline, re-locking included.
//!
//! [`Semaphore`]: in your segment (a futex word of our own: trusts no peer) or named
//! (glibc's `sem_open`, interoperable with any program using the name, e.g. Python's
//! `posix_ipc`; it trusts every process that can open the name), with `try_wait` and
//! monotonic-clock timeouts.
//!
//! # Example
//!
//! ```
//! use ipcraft_sync::{LockError, Mutex};
//!
//! let name = format!("/ipcraft-doc-sync-{}", std::process::id());
//! let counter = Mutex::create(&name, 0u64)?;
//! // In another process: let counter = Mutex::<u64>::open(&name)?;
//! match counter.lock() {
//!     Ok(guard) => guard.update(|n| *n += 1),
//!     Err(LockError::OwnerDied(recovery)) => {
//!         // A process died mid-update: repair, then mark consistent.
//!         recovery.set(&0);
//!         recovery.make_consistent()?.update(|n| *n += 1);
//!     }
//!     Err(e) => panic!("{e}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Across processes: `examples/owner_died.rs` runs a child that dies holding the mutex and
//! a parent that recovers (`cargo run -p ipcraft-sync --example owner_died`), and
//! `examples/condvar_turns.rs` two processes taking turns through a mutex and condvar in a
//! memfd handed over at spawn. A doctest cannot start a peer of its own, so the example above
//! plays both sides in one process.
//!
//! # Safety model
//!
//! The protected value is read and written by copy under the lock ([`MutexGuard::get`],
//! [`MutexGuard::set`]); no reference into shared memory is handed out, except to atomic
//! words. Guards are not `Send` (as std's): a lock is released by the thread that took it; nor
//! `Sync` (unlike std's): `set` writes the shared bytes through `&self`.
//! The guard borrows the mutex, which owns or borrows the mapping, so the memory cannot be
//! unmapped while the lock is held.
//!
//! `unsafe` lives in `src/sys/` (the futex calls, glibc's pthread mutex and named
//! semaphores, each behind a safe type) and in two blocks of `src/mutex.rs` that make the
//! handles on a placement's lock after checking bounds and alignment against its segment;
//! `cargo xtask unsafe-report` lists them. The exactly-once placement protocol
//! (`src/once.rs`) is checked by loom (`cargo xtask loom`).
//!
//! # Against a hostile peer
//!
//! Every byte of a segment may be written by a peer. What that can do, per object:
//!
//! | object | what a peer writing its bytes can do |
//! |---|---|
//! | futex [`Mutex`], [`Condvar`], in-segment [`Semaphore`] | make results wrong (two holders, `OwnerDied`, `NotRecoverable`, spurious wake-ups, wrong counts, `ValueTooLarge`); never crash this process, make it follow a pointer, panic, or return later than a deadline |
//! | pthread [`Mutex`] | make glibc write through pointers it chose (a crash) |
//! | named [`Semaphore`] | make `sem_post` abort this process (glibc builds its futex call from the `sem_t`'s `private` word) |
//!
//! `tests/hostile.rs` checks the first row across real processes, and that the second
//! really can crash. What a peer with write access can also do, to any object: shrink a named
//! segment's file (this process then dies of SIGBUS on the lost pages, as with any shared
//! mapping: see `ipcraft-shm`), and, for the futex mutex, hold the file locks that stand for
//! handles (a dead owner then looks alive: `lock()` waits, every deadline is still kept; or
//! every slot is taken: [`Error::TooManyHandles`]). Share named objects only with trusted
//! owners (the default), and give untrusted peers sealed anonymous segments.
//!
//! # Fork
//!
//! A futex-kind handle is one participant: its slot and its file lock are shared by a child
//! that inherits it over `fork`, so neither process's death could be told from the other's.
//! An inherited handle therefore refuses to lock, unlock or repair in the child
//! ([`LockError::Sys`] with `EPERM`); the child attaches a handle of its own. The child's copy
//! of the descriptor still holds the parent's file lock until the child drops the handle or
//! execs (descriptors are close-on-exec): while it does, a parent that dies holding the lock
//! looks alive to waiters. Drop inherited handles in a child that does not exec. (The pthread
//! kind is per thread, as glibc makes it.) Attaching a futex-kind handle reopens the segment
//! through `/proc/self/fd`, so `/proc` must be mounted.
//!
//! # Platform support
//!
//! Linux with glibc 2.30 or later (`pthread_mutex_clocklock`, `sem_clockwait`).

/// The README's examples, compiled and run as doctests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod condvar;
mod error;
mod futex_lock;
mod guard;
mod loom;
mod mutex;
mod once;
mod semaphore;
mod sys;

pub use condvar::{CONDVAR_FOOTPRINT, Condvar, CondvarOptions};

/// Shared futex wait and wake on a 32-bit atomic that may live in memory other processes
/// map (`futex(2)` without `FUTEX_PRIVATE_FLAG`): the building block under [`Condvar`],
/// for lock-free protocols of your own (the `ipcraft` channel's sleep and wake-up).
pub mod futex {
    pub use crate::sys::{
        WAIT_MANY_MAX, futex_wait as wait, futex_wait_many as wait_many, futex_wake as wake,
    };
}
pub use error::{Error, Result};
pub use futex_lock::MAX_HANDLES;
pub use guard::{LockError, MutexGuard, Recovery};
pub use mutex::{DEFAULT_INIT_TIMEOUT, Mutex, MutexKind, MutexOptions, Plain, footprint};
pub use semaphore::{
    DEFAULT_SEM_MODE, SEM_VALUE_MAX, SEMAPHORE_FOOTPRINT, Semaphore, SemaphoreOptions,
    unlink_semaphore,
};
