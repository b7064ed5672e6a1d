//! # ipcraft-sync
//!
//! Robust, process-shared synchronization in shared memory, for Linux.
//!
//! [`Mutex<T>`](Mutex): a pthread mutex that is process-shared and **robust**: when a process
//! dies holding it, the kernel hands it to the next locker with
//! [`LockError::OwnerDied`], whose [`Recovery`] guard must either
//! [`make_consistent`](Recovery::make_consistent) after repairing the data, or be dropped,
//! after which every locker gets [`LockError::NotRecoverable`] instead of a deadlock.
//! Timeouts use the monotonic clock (`pthread_mutex_clocklock`). Placed standalone
//! ([`Mutex::create`] / [`Mutex::open`], a named segment of its own, its type and layout
//! checked through the segment's header) or inside your segment ([`Mutex::in_segment`],
//! initialized exactly once even when processes race).
//!
//! [`Condvar`]: a process-shared condition variable on a futex sequence word of its own,
//! because glibc's process-shared `pthread_cond_t` is not robust (a waiter killed at the
//! wrong moment can block every other user: glibc bug 21422). It keeps no per-waiter state,
//! so the death of any waiter or notifier never blocks the others.
//!
//! [`Semaphore`]: named (`sem_open`, interoperable with any program using the name, unlinked
//! by its creator on drop) or unnamed in a segment (`sem_init`), with `try_wait` and
//! monotonic-clock timeouts (`sem_clockwait`).
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
//! [`MutexGuard::set`]); no reference into shared memory is handed out. The guard borrows the
//! mutex, which owns or borrows the mapping, so the memory cannot be unmapped while the lock
//! is held. `unsafe` is confined to `src/sys.rs`, thin calls into glibc on the mutex bytes.
//! Trust: glibc keeps robust-list pointers inside the mutex, so share a mutex only with
//! processes you trust not to scribble over it.
//!
//! # Platform support
//!
//! Linux with glibc 2.30 or later (`pthread_mutex_clocklock`).

mod condvar;
mod error;
mod futex_lock;
mod guard;
mod loom;
mod mutex;
mod once;
mod semaphore;
mod sys;

pub use condvar::{CONDVAR_FOOTPRINT, Condvar};

/// Shared futex wait and wake on a 32-bit atomic that may live in memory other processes
/// map (`futex(2)` without `FUTEX_PRIVATE_FLAG`): the building block under [`Condvar`],
/// for lock-free protocols of your own (the `ipcraft` channel's sleep and wake-up).
pub mod futex {
    pub use crate::sys::{futex_wait as wait, futex_wake as wake};
}
pub use error::{Error, Result};
pub use futex_lock::MAX_HANDLES;
pub use guard::{LockError, MutexGuard, Recovery};
pub use mutex::{DEFAULT_INIT_TIMEOUT, Mutex, MutexKind, MutexOptions, Plain, footprint};
pub use semaphore::{SEM_VALUE_MAX, SEMAPHORE_FOOTPRINT, Semaphore, unlink_semaphore};
