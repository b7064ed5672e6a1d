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
//! | [`ipcraft_core`] | `ipcraft-core` | frame codec, deadlines, POSIX names | available |
//!
//! Each module is behind a default-on cargo feature of the same name, so a user who needs
//! one mechanism can depend on its crate alone, or on this crate with
//! `default-features = false, features = ["pipe"]`. Off by default: `tokio` (async types)
//! and `serde` (typed messages of any serde type, `typed::Serde`).
//!
//! # Which mechanism for what
//!
//! | need | use | why | 64 B round trip, same core / across cores* |
//! |---|---|---|---|
//! | talk to a child over stdin/stdout, stream bytes | [`pipe`] | simplest; frames with [`ipcraft_core::FrameWriter`] | 4.4 us / 48 us |
//! | message boundaries, fd passing, peer credentials, many clients | [`socket`] (Unix) | `SCM_RIGHTS`, `SO_PEERCRED`, seqpacket | ~8 us / ~45 us |
//! | another machine | [`socket`] (TCP) | same framed API | ~12 us (loopback) |
//! | priorities, messages that outlive both processes | [`mqueue`] | kernel-held queue | 5.4 us / 49 us |
//! | shared state, bulk data at memory speed | [`shm`] + [`sync`] | atomics, robust mutex | - |
//! | the fastest messages between two processes on one machine, one or several senders | [`channel`] | lock-free ring in shared memory, no syscall on the fast path, zero-copy slots | 2.8 us / 151 ns |
//!
//! \* Figures from `cargo xtask bench` on the project's 2-vCPU VM (`BENCHMARKS.md` in the repository); across
//! cores, every blocking mechanism pays the VM's ~25 us wake-up each way, which the
//! spinning channel avoids (a cache line takes ~100 ns there). Same-core rows compare the
//! mechanisms themselves. The channel moves 4 KiB messages at ~8 M/s and 64 KiB ones at
//! ~60 GB/s across cores; on one core it sleeps and yields (2.8 us, against 4.2 us for a
//! raw futex ping-pong in the same run).
//!
//! [`typed`] sends Rust values instead of bytes over the channel, checked end to end: plain
//! data zero copy, or any serde type with the `serde` feature (postcard).
//!
//! [`handover`] hands descriptors (channel ends, sockets, pipes, segments, queues) to a child
//! process by name, with systemd's socket-activation protocol, and no `unsafe` on either side.
//!
//! [`ring`] holds the lock-free ring (checked by loom) the channel is built on.

/// `ipcraft-core`, under its own crate name: not `core`, which `use ipcraft::*` would then
/// shadow (the glob wins over the extern prelude, and `core::mem` stops compiling). A user
/// who also depends on `ipcraft-core` directly gets the same crate under the same name.
#[doc(inline)]
pub use ipcraft_core;
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
pub mod handover;
mod loom;
pub mod ring;
#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
mod shared;
pub mod typed;

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "shm", feature = "sync"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The repository's front page (its program is compiled, not run: it re-executes itself as
/// the child), so that it cannot drift from the API.
#[cfg(all(doctest, feature = "shm", feature = "sync"))]
#[doc = include_str!("../../README.md")]
pub struct FrontPageDoctests;
