//! The single-producer single-consumer ring: [`Producer`] and [`Consumer`] over any
//! [`RingMemory`], with zero-copy [`WriteSlot`]s and [`ReadSlot`]s.

use super::{LEN_MASK, RECORD_HEADER};
use std::fmt;

mod consumer;
mod producer;

pub use consumer::{Consumer, ReadSlot};
pub use producer::{Producer, WriteSlot};

/// Where a ring lives: two positions and a data area of 64-bit words. Implemented on the
/// heap by [`super::HeapRing`] and in shared memory by the channel.
pub trait RingMemory {
    /// Bytes of the data area: a power of two, at least 16.
    fn capacity(&self) -> usize;
    /// Load the producer's (`true`) or consumer's position, with acquire ordering.
    fn load_position(&self, producer: bool) -> u64;
    /// Store a position, with release ordering.
    fn store_position(&self, producer: bool, value: u64);
    /// Write the data word at byte `offset` (a multiple of 8, below the capacity), relaxed.
    fn write_word(&self, offset: usize, value: u64);
    /// Read the data word at byte `offset` (a multiple of 8, below the capacity), relaxed.
    fn read_word(&self, offset: usize) -> u64;
    /// Store a commit word at byte `offset`, with release ordering.
    fn commit_word(&self, offset: usize, value: u64);
    /// Load the word at byte `offset`, with acquire ordering.
    fn poll_word(&self, offset: usize) -> u64;

    /// Write `src` at byte `offset` (`offset + src.len()` is at most the capacity), in a
    /// window the protocol gives the writer alone. By default word by word; shared memory
    /// overrides it with one copy.
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let (mut at, mut rest) = (offset, src);
        while !rest.is_empty() {
            let word_at = at & !7;
            let skip = at - word_at;
            let n = (8 - skip).min(rest.len());
            let mut word = if n == 8 {
                [0; 8]
            } else {
                self.read_word(word_at).to_le_bytes()
            };
            word[skip..skip + n].copy_from_slice(&rest[..n]);
            self.write_word(word_at, u64::from_le_bytes(word));
            at += n;
            rest = &rest[n..];
        }
    }

    /// Read `dst.len()` bytes at byte `offset` (as for [`write_bytes`](Self::write_bytes)).
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let mut at = offset;
        let mut done = 0;
        while done < dst.len() {
            let word_at = at & !7;
            let skip = at - word_at;
            let n = (8 - skip).min(dst.len() - done);
            let word = self.read_word(word_at).to_le_bytes();
            dst[done..done + n].copy_from_slice(&word[skip..skip + n]);
            at += n;
            done += n;
        }
    }
}

/// Why a ring operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// No room now; nothing was written (the caller still has the message).
    Full,
    /// Nothing to read now.
    Empty,
    /// A message larger than the ring can ever hold.
    TooLarge {
        /// Its length.
        len: usize,
        /// The largest message this ring accepts ([`max_message_len`]).
        max: usize,
    },
    /// `commit_len` of more bytes than were reserved (nothing was published).
    BeyondReserved {
        /// The length asked for.
        len: usize,
        /// The bytes reserved.
        reserved: usize,
    },
    /// The receive buffer is smaller than the next message, which stays in the ring.
    BufferTooSmall {
        /// The next message's length.
        needed: usize,
    },
    /// The ring's positions or records break the protocol (a buggy or hostile peer); the
    /// ring cannot be used any further.
    Corrupted(&'static str),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("the ring is full"),
            Self::Empty => f.write_str("the ring is empty"),
            Self::TooLarge { len, max } => write!(
                f,
                "a message of {len} bytes can never fit: this ring takes at most {max} bytes"
            ),
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "the next message has {needed} bytes, more than the buffer holds"
                )
            }
            Self::BeyondReserved { len, reserved } => write!(
                f,
                "cannot commit {len} bytes: only {reserved} were reserved"
            ),
            Self::Corrupted(what) => write!(f, "the ring is corrupted: {what}"),
        }
    }
}

impl std::error::Error for RingError {}

/// The largest message a ring of `capacity` bytes accepts: one record filling the ring.
pub const fn max_message_len(capacity: usize) -> usize {
    let max = capacity.saturating_sub(RECORD_HEADER);
    if max > LEN_MASK as usize {
        LEN_MASK as usize
    } else {
        max
    }
}

impl<M: RingMemory + ?Sized> RingMemory for &M {
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn load_position(&self, producer: bool) -> u64 {
        (**self).load_position(producer)
    }
    fn store_position(&self, producer: bool, value: u64) {
        (**self).store_position(producer, value);
    }
    fn write_word(&self, offset: usize, value: u64) {
        (**self).write_word(offset, value);
    }
    fn read_word(&self, offset: usize) -> u64 {
        (**self).read_word(offset)
    }
    fn commit_word(&self, offset: usize, value: u64) {
        (**self).commit_word(offset, value);
    }
    fn poll_word(&self, offset: usize) -> u64 {
        (**self).poll_word(offset)
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) {
        (**self).write_bytes(offset, src);
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        (**self).read_bytes(offset, dst);
    }
}

/// The two ends of a ring, in one process (for tests and threads).
pub fn split<M: RingMemory>(memory: &M) -> (Producer<&M>, Consumer<&M>) {
    (Producer::attach(memory), Consumer::attach(memory))
}

/// Positions stay far below `u64::MAX`: a ring would need exabytes to get there, and a
/// hostile start position cannot make `pos += n` overflow.
const MAX_POSITION: u64 = 1 << 62;

/// Whether a ring of `cap` bytes and a position read from it are possible.
pub(super) fn check_attach(cap: usize, pos: u64) -> Option<&'static str> {
    if !cap.is_power_of_two() || cap < 16 {
        Some("capacity is not a power of two of at least 16")
    } else if !pos.is_multiple_of(8) || pos >= MAX_POSITION {
        Some("position not 8-aligned or out of range")
    } else {
        None
    }
}

// Plain tests run without loom: under `--cfg ipcraft_loom` the ring's atomics are loom's,
// usable only inside a loom model.
#[cfg(all(test, not(ipcraft_loom)))]
mod tests;

#[cfg(all(test, ipcraft_loom))]
mod loom_tests;
