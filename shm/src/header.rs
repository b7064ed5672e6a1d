//! The header at the start of every segment ipcraft creates.
//!
//! 64 bytes, all atomics (other processes read and write it):
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `magic` | `b"IPCRAFT\x01"` read as little-endian `u64` |
//! | 8 | `version` | layout version, [`LAYOUT_VERSION`] |
//! | 12 | `state` | 0 fresh (all zero), 1 initializing, 2 ready |
//! | 16 | `data_len` | bytes of data after the header |
//! | 24 | `creator_pid` | pid of the creator |
//! | 28 | `flags` | bit 0: persisted (not stale when its creator is gone) |
//! | 32 | `creator_start` | the creator's start time (clock ticks after boot, `/proc/PID/stat`) |
//! | 40 | `tag` | what the data holds, chosen by the user (0: unspecified) |
//! | 48 | reserved | zero |
//!
//! The creator fills every field, stores `state = initializing` with release ordering, runs
//! any initialization, then stores `state = ready` with release ordering; an opener loads
//! `state` with acquire ordering and reads the other fields only once it is ready.

#![allow(clippy::disallowed_types)] // The header lives in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use zerocopy::{FromBytes, KnownLayout};

/// `b"IPCRAFT\x01"`, little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCRAFT\x01");
/// The layout version this crate writes and reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the header; the data area starts right after it, 64-byte aligned.
pub const HEADER_SIZE: usize = 64;

pub(crate) const STATE_FRESH: u32 = 0;
pub(crate) const STATE_INITIALIZING: u32 = 1;
pub(crate) const STATE_READY: u32 = 2;
pub(crate) const FLAG_PERSISTED: u32 = 1;

#[derive(Debug, FromBytes, KnownLayout)]
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    data_len: AtomicU64,
    creator_pid: AtomicU32,
    flags: AtomicU32,
    creator_start: AtomicU64,
    tag: AtomicU64,
    reserved: [AtomicU64; 2],
}

// No padding: the size is the sum of the fields (sys.rs relies on it for AtomicData).
const _: () = assert!(std::mem::size_of::<Header>() == 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 16);
const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// What an ipcraft header says, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Bytes of data after the header.
    pub data_len: u64,
    /// Pid of the creator (informative: pids are recycled).
    pub creator_pid: u32,
    /// The creator's start time in clock ticks after boot (0 if unknown).
    pub creator_start: u64,
    /// The user's tag for what the data holds.
    pub tag: u64,
    /// Whether the creator persisted the segment.
    pub persisted: bool,
}

/// What an opener finds in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// All zero: a creator has not written it yet, or it is not an ipcraft segment.
    Fresh,
    /// A creator is initializing it.
    Initializing,
    /// Ready, and valid.
    Ready(HeaderInfo),
}

impl Header {
    /// Fill every field and mark the header as initializing.
    pub(crate) fn begin(&self, data_len: u64, pid: u32, start: u64, tag: u64) {
        self.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.data_len.store(data_len, Ordering::Relaxed);
        self.creator_pid.store(pid, Ordering::Relaxed);
        self.creator_start.store(start, Ordering::Relaxed);
        self.tag.store(tag, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.state.store(STATE_INITIALIZING, Ordering::Release);
    }

    /// Publish the segment as ready: everything written before is visible to an opener that
    /// sees the ready state.
    pub(crate) fn publish(&self) {
        self.state.store(STATE_READY, Ordering::Release);
    }

    pub(crate) fn set_persisted(&self) {
        self.flags.fetch_or(FLAG_PERSISTED, Ordering::Release);
    }

    pub(crate) fn set_data_len(&self, data_len: u64) {
        self.data_len.store(data_len, Ordering::Release);
    }

    /// Validate the header of a segment of `mapped` bytes. Never trusts a field: a foreign or
    /// hostile segment gets an error, not an out-of-bounds length.
    pub(crate) fn inspect(&self, mapped: u64, name: &str) -> Result<Found> {
        // State first, with acquire: once it reads ready, the other fields are visible.
        let state = self.state.load(Ordering::Acquire);
        Fields {
            state,
            magic: self.magic.load(Ordering::Relaxed),
            version: self.version.load(Ordering::Relaxed),
            data_len: self.data_len.load(Ordering::Acquire),
            creator_pid: self.creator_pid.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Acquire),
            creator_start: self.creator_start.load(Ordering::Relaxed),
            tag: self.tag.load(Ordering::Relaxed),
        }
        .classify(mapped, name)
    }
}

/// The header's fields as plain values: loaded from a mapping, or decoded from bytes read
/// with `pread` (which, unlike touching a mapping, cannot raise SIGBUS if the object shrinks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    magic: u64,
    version: u32,
    state: u32,
    data_len: u64,
    creator_pid: u32,
    flags: u32,
    creator_start: u64,
    tag: u64,
}

impl Fields {
    /// Decode the little-endian header bytes.
    pub(crate) fn from_bytes(b: &[u8; HEADER_SIZE]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Self {
            magic: u64_at(0),
            version: u32_at(8),
            state: u32_at(12),
            data_len: u64_at(16),
            creator_pid: u32_at(24),
            flags: u32_at(28),
            creator_start: u64_at(32),
            tag: u64_at(40),
        }
    }

    pub(crate) fn classify(self, mapped: u64, name: &str) -> Result<Found> {
        if self.magic == 0 && self.state == STATE_FRESH {
            return Ok(Found::Fresh);
        }
        let foreign = || Error::NotIpcraft {
            name: name.to_owned(),
        };
        if self.magic != MAGIC {
            return Err(foreign());
        }
        match self.state {
            STATE_INITIALIZING => return Ok(Found::Initializing),
            STATE_READY => {}
            _ => return Err(foreign()),
        }
        if self.version != LAYOUT_VERSION {
            return Err(Error::IncompatibleVersion {
                found: self.version,
                expected: LAYOUT_VERSION,
            });
        }
        let needed = self.data_len.saturating_add(HEADER_SIZE as u64);
        if needed > mapped {
            return Err(Error::TooSmall {
                actual: mapped,
                expected: needed,
            });
        }
        Ok(Found::Ready(HeaderInfo {
            data_len: self.data_len,
            creator_pid: self.creator_pid,
            creator_start: self.creator_start,
            tag: self.tag,
            persisted: self.flags & FLAG_PERSISTED != 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Region;

    fn with_header(f: impl FnOnce(&Header, Region<'_>)) {
        let mut words = [0u64; 8];
        let r = Region::from_words(&mut words);
        f(r.get::<Header>(0).unwrap(), r);
    }

    #[test]
    fn lifecycle_fresh_initializing_ready() {
        with_header(|h, _| {
            assert_eq!(h.inspect(64, "/x").unwrap(), Found::Fresh);
            h.begin(0, 42, 7, 9);
            assert_eq!(h.inspect(64, "/x").unwrap(), Found::Initializing);
            h.publish();
            let Found::Ready(info) = h.inspect(64, "/x").unwrap() else {
                panic!()
            };
            assert_eq!((info.creator_pid, info.creator_start, info.tag), (42, 7, 9));
            assert!(!info.persisted);
            h.set_persisted();
            assert!(matches!(
                h.inspect(64, "/x"),
                Ok(Found::Ready(HeaderInfo {
                    persisted: true,
                    ..
                }))
            ));
        });
    }

    #[test]
    fn bytes_decode_like_the_atomics() {
        with_header(|h, r| {
            h.begin(100, 42, 7, 9);
            h.publish();
            let mut bytes = [0u8; HEADER_SIZE];
            r.copy_out(0, &mut bytes).unwrap();
            let from_bytes = Fields::from_bytes(&bytes).classify(4096, "/x").unwrap();
            assert_eq!(from_bytes, h.inspect(4096, "/x").unwrap());
        });
    }

    #[test]
    fn hostile_headers_are_errors_not_lengths() {
        with_header(|h, r| {
            h.begin(1 << 40, 1, 1, 0);
            h.publish();
            assert!(matches!(
                h.inspect(4096, "/x"),
                Err(Error::TooSmall { actual: 4096, .. })
            ));
            h.set_data_len(u64::MAX);
            assert!(matches!(h.inspect(4096, "/x"), Err(Error::TooSmall { .. })));
            r.write(12, &77u32).unwrap(); // state: garbage
            assert!(matches!(
                h.inspect(4096, "/x"),
                Err(Error::NotIpcraft { .. })
            ));
            r.write(12, &STATE_READY).unwrap();
            r.write(8, &99u32).unwrap(); // version
            h.set_data_len(0);
            assert!(matches!(
                h.inspect(4096, "/x"),
                Err(Error::IncompatibleVersion {
                    found: 99,
                    expected: 1
                })
            ));
            r.write(0, &0x1234u64).unwrap(); // magic
            assert!(matches!(
                h.inspect(4096, "/x"),
                Err(Error::NotIpcraft { .. })
            ));
        });
    }
}
