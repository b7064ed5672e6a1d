//! The one place that names the atomics used by this crate's own concurrent logic, so that
//! loom checks that logic (`cargo xtask loom`). Loom's atomics cannot live in shared memory,
//! so the logic is generic over the word ([`crate::once::StateWord`]): loom runs it on the
//! heap, the crate runs it on words in a mapping.
#![allow(clippy::disallowed_types)]

#[cfg(all(test, ipcraft_loom))]
pub(crate) use loom::{sync::atomic, thread};
#[cfg(not(all(test, ipcraft_loom)))]
#[allow(unused_imports)]
pub(crate) use std::{sync::atomic, thread};
