//! A lock-free single-producer single-consumer ring of variable-length byte messages.
//!
//! The algorithm is generic over where its memory lives ([`RingMemory`]): on the heap
//! ([`HeapRing`]) for loom, Miri and the model-based proptest; in shared memory between
//! processes for [`crate::channel`].
//!
//! # Layout and protocol
//!
//! The data area is a power-of-two number of bytes. Two 64-bit positions count bytes
//! written and bytes released since the start (they never wrap; `position % capacity` is
//! the offset): the producer's and the consumer's, each written only by its side.
//!
//! A record is an 8-byte **commit word** then the payload, padded to 8 bytes. The commit
//! word holds the payload length, a padding flag, a committed bit and a *lap tag* (the low
//! 30 bits of `position / capacity`), so a word left from an earlier lap never reads as a
//! commit at the current one. The producer writes the payload, then stores the commit word
//! with release ordering; the consumer polls the word **at its own position** with acquire
//! ordering. The commit word shares a cache line with the start of the payload (all of a
//! small record, when it does not straddle a line), so a message crosses cores with the
//! line that carries it: the consumer never reads the producer's position, and the
//! producer reads the consumer's only when its cached copy says the ring is full.
//!
//! Before committing, the producer clears the word where the *next* record will start
//! (when that space is free), so that payload bytes of an earlier lap can never be taken
//! for a commit word. When that space is not free it holds the header of the record one
//! lap back, whose tag differs.
//!
//! Records never wrap: when one does not fit before the end of the data area, a padding
//! record fills the rest of the lap and the record starts at offset 0.
//!
//! **Batches**: records can be *staged* (written, not visible) and published together by
//! one [`Producer::flush`]: the first staged record's commit word is held back and stored
//! last, so the consumer sees the whole batch at once, for the cost of one release store.
//! The consumer can likewise [`consume`](ReadSlot::consume) several records and publish its
//! position once ([`Consumer::flush`]).
//!
//! # Zero copy, and what a hostile peer can do
//!
//! [`Producer::reserve`] hands out a [`WriteSlot`], a window of the ring the producer owns
//! until it commits; [`Consumer::read`] hands out a [`ReadSlot`], the next message in
//! place, until it is released. Neither hands out a `&[u8]` or `&mut [u8]`: the bytes live
//! in memory another process can write at any time, and a Rust reference to them would
//! promise the compiler that they do not change. Both move bytes with explicit copies
//! (`read_at`/`write_at`, [`std::io::Read`]/[`std::io::Write`]) straight between the ring
//! and the caller's own memory, with no intermediate buffer: serialize into the ring, parse
//! out of it. A peer that breaks the protocol can make these copies see torn or changing
//! bytes (garbage in, at worst), never undefined behaviour in this process. No call of
//! this module trusts the peer.
//!
//! # Untrusted peer
//!
//! Every position and length read from the ring is validated before use: positions at
//! attach (8-aligned, far from overflow, the consumer's at most a lap behind the
//! producer's), the consumer's position whenever the producer reloads it, every commit
//! word (a record must fit before the end of the lap; a padding record must end exactly
//! at the end of the lap). A violation is [`RingError::Corrupted`], never an out-of-bounds
//! access or a panic, and no call loops: each does a bounded amount of work. A commit word
//! that is not a commit for the current lap reads as an empty ring.

mod heap;
pub mod slots;
mod spsc;
pub mod wake;

pub use heap::HeapRing;
pub use spsc::{
    Consumer, Producer, ReadSlot, RingError, RingMemory, WriteSlot, max_message_len, split,
};

/// Bytes of a record's commit word.
pub const RECORD_HEADER: usize = 8;
/// Commit word: payload length in the low 32 bits.
const LEN_MASK: u64 = 0xffff_ffff;
/// Commit word: this record is padding to the end of the lap.
const PAD_FLAG: u64 = 1 << 32;
/// Commit word: the lap tag's shift and mask (30 bits).
const TAG_SHIFT: u32 = 33;
const TAG_MASK: u64 = (1 << 30) - 1;
/// Commit word: set in every committed record (a zeroed word is never a commit).
const COMMITTED: u64 = 1 << 63;

/// Bytes a record with `len` payload bytes takes.
const fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.div_ceil(8) * 8
}

/// The commit word of a record at `position` of a ring of `capacity` bytes.
#[cfg(test)]
const fn commit_word(position: u64, capacity: usize, len: usize, pad: bool) -> u64 {
    commit_word_at_lap(position / capacity as u64, len, pad)
}

/// The commit word of a record in lap `lap` (`position >> log2(capacity)`: the ring
/// never divides, a 64-bit division costs tens of cycles per message).
#[inline]
const fn commit_word_at_lap(lap: u64, len: usize, pad: bool) -> u64 {
    let flags = if pad { PAD_FLAG } else { 0 };
    COMMITTED | ((lap & TAG_MASK) << TAG_SHIFT) | flags | (len as u64 & LEN_MASK)
}

/// As the channel's errors convert: `Full` and `Empty` are `WouldBlock` (the `try_` forms'
/// "not now"), bad lengths `InvalidInput`, a short buffer and a corrupted ring `InvalidData`.
impl From<RingError> for std::io::Error {
    fn from(e: RingError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e {
            RingError::Full | RingError::Empty => K::WouldBlock,
            RingError::TooLarge { .. } | RingError::BeyondReserved { .. } => K::InvalidInput,
            RingError::BufferTooSmall { .. } | RingError::Corrupted(_) => K::InvalidData,
        };
        Self::new(kind, e)
    }
}
