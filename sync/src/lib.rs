#![forbid(unsafe_code)]
//! # ipcraft-sync
//!
//! **Not implemented yet**: this crate is a placeholder in the ipcraft workspace; its work is
//! tracked by issue 6. What will live here:
//!
//! - robust process-shared `Mutex<T>` (owner death reported as `OwnerDied`, recovery explicit);
//! - a `Condvar` on a futex sequence word of its own (glibc's process-shared condvar is not
//!   robust), on the monotonic clock;
//! - named and unnamed `Semaphore`s.
