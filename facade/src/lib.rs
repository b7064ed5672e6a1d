//! # ipcraft
//!
//! Safe, fast and auditable Linux inter-process communication: one small crate per OS
//! mechanism, each wrapping its primitive in safe RAII types, re-exported here as modules.
//!
//! | module | crate | mechanism | status |
//! |---|---|---|---|
//! | [`pipe`] | `ipcraft-pipe` | anonymous pipes and FIFOs | available |
//! | [`socket`] | `ipcraft-socket` | Unix domain sockets, fd passing, peer credentials, TCP framing | available |
//! | [`mqueue`] | `ipcraft-mqueue` | POSIX message queues | available |
//! | [`shm`] | `ipcraft-shm` | POSIX shared memory and sealed memfd segments | available |
//! | [`sync`] | `ipcraft-sync` | robust process-shared mutex, futex condvar, semaphores | available |
//! | [`core`] | `ipcraft-core` | frame codec, deadlines, POSIX names | available |
//!
//! Each module is behind a default-on cargo feature of the same name, so a user who needs
//! one mechanism can depend on its crate alone, or on this crate with
//! `default-features = false, features = ["pipe"]`.
//!
//! [`ring`] holds the lock-free ring (checked by loom) that the shared-memory channel will
//! be built on.

pub use ipcraft_core as core;
#[cfg(feature = "mqueue")]
#[doc(inline)]
pub use ipcraft_mqueue as mqueue;
#[cfg(feature = "pipe")]
#[doc(inline)]
pub use ipcraft_pipe as pipe;
#[cfg(feature = "shm")]
#[doc(inline)]
pub use ipcraft_shm as shm;
#[cfg(feature = "socket")]
#[doc(inline)]
pub use ipcraft_socket as socket;
#[cfg(feature = "sync")]
#[doc(inline)]
pub use ipcraft_sync as sync;

#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
pub mod channel;
mod loom;
pub mod ring;
#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
mod shared;
