//! The one place that names the atomics the lock-free ring uses (clippy.toml bans them
//! elsewhere): loom's under `--cfg ipcraft_loom` tests (`cargo xtask loom`), std's otherwise.
//! Aliases, not re-exports, so that the ban does not see through them.
#![allow(clippy::disallowed_types)]

#[cfg(all(test, ipcraft_loom))]
pub(crate) use loom::thread;
#[cfg(not(all(test, ipcraft_loom)))]
#[allow(unused_imports)]
pub(crate) use std::thread;

/// Atomic types of the active backend.
pub(crate) mod atomic {
    #[cfg(all(test, ipcraft_loom))]
    pub(crate) use loom::sync::atomic::{Ordering, fence};
    #[cfg(not(all(test, ipcraft_loom)))]
    pub(crate) use std::sync::atomic::{Ordering, fence};

    /// `AtomicU32` of the active backend.
    #[cfg(all(test, ipcraft_loom))]
    pub(crate) type AtomicU32 = loom::sync::atomic::AtomicU32;
    /// `AtomicU32` of the active backend.
    #[cfg(not(all(test, ipcraft_loom)))]
    #[allow(dead_code)]
    pub(crate) type AtomicU32 = std::sync::atomic::AtomicU32;

    /// `AtomicU64` of the active backend.
    #[cfg(all(test, ipcraft_loom))]
    pub(crate) type AtomicU64 = loom::sync::atomic::AtomicU64;
    /// `AtomicU64` of the active backend.
    #[cfg(not(all(test, ipcraft_loom)))]
    pub(crate) type AtomicU64 = std::sync::atomic::AtomicU64;
}
