//! A lock-free single-producer single-consumer ring of variable-length byte messages.
//!
//! **Status:** the algorithm, checked by loom, Miri and a model-based proptest, on heap
//! memory ([`HeapRing`]). Placing it in shared memory between processes, blocking with a
//! futex, and the channel built on it are the next steps (issue 7).
//!
//! # Layout and protocol
//!
//! The ring is a power-of-two number of bytes. Two 64-bit positions count bytes written and
//! bytes released since the start (they never wrap; `position % capacity` is the offset):
//! the producer's, written only by the producer, and the consumer's, written only by the
//! consumer. Each side caches the other's position and reloads it only when the cache says
//! the ring is full (or empty), so the common case touches no shared cache line but the data.
//!
//! A record is an 8-byte header (payload length and flags, one little-endian `u64`) then the
//! payload, padded to 8 bytes. Records never wrap: when one does not fit before the end of
//! the data area, a padding record fills the rest of the lap and the record starts at
//! offset 0. The producer writes payload and header, then publishes its position with
//! release ordering; the consumer loads it with acquire ordering before reading. A batch of
//! records is published with one store.
//!
//! # Untrusted peer
//!
//! Every position and length read from the ring is validated before use: positions must be
//! ordered and at most a capacity apart, a record must fit before the end of the data area
//! and before the producer's position, a padding record must end exactly at the end of the
//! data area. A violation is [`RingError::Corrupted`], never an out-of-bounds access or a
//! panic, and no call loops: each does a bounded amount of work.

mod heap;
mod spsc;
pub mod wake;

pub use heap::HeapRing;
pub use spsc::{Consumer, Producer, RingError, RingMemory, max_message_len, split};

/// Bytes of a record's header.
pub const RECORD_HEADER: usize = 8;
/// The padding flag in a record header's high half.
const PAD_FLAG: u64 = 1 << 32;

/// Bytes a record with `len` payload bytes takes.
const fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.div_ceil(8) * 8
}
