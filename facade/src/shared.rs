#![allow(unsafe_code)]
//! The one file of the facade with `unsafe` code: fast access to the channel's shared
//! segment, checked once instead of on every word.
//!
//! Invariants this file upholds, and who upholds the rest:
//! - A [`SharedRegion`] owns an `ipcraft_shm::Segment` (in tests, heap atomics standing
//!   in for one, for Miri) and caches the pointer to and length of its data area (64-byte
//!   aligned; 8 on the heap). It never grows or re-maps the segment (it hands out
//!   only `&Segment`, and `grow` needs `&mut`), so the pointer stays valid for the region's
//!   whole life.
//! - The mapping is writable (a read-only one is refused in `new`): atomic stores and
//!   read-modify-writes through the references handed out here would fault otherwise.
//! - Every access is bounds-checked here; references are formed only to atomics (aligned,
//!   checked here), never to bytes another process can write; payload moves with
//!   `ptr::copy_nonoverlapping` into or out of memory this process owns, inside the window
//!   the ring protocol gives one side alone (a hostile peer can tear the bytes, never make us
//!   read or write out of bounds).

#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use ipcraft_shm::Segment;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// A segment's data area, for atomics by reference and payload by copy.
#[derive(Debug)]
pub(crate) struct SharedRegion {
    base: NonNull<u8>,
    len: usize,
    /// Owns the memory `base` points into; never grown or re-mapped.
    backing: Backing,
}

/// What owns a region's memory.
#[derive(Debug)]
enum Backing {
    /// A mapped segment (every region outside tests).
    Segment(Segment),
    /// Heap words standing in for a mapping, so that Miri can run the channel's code paths
    /// (it cannot map a memfd).
    #[cfg(test)]
    // A `Vec`, not a `Box`: moving a `Box` asserts unique access to what it points to, which
    // would invalidate `base` (Miri's Stacked Borrows says so).
    Heap(#[allow(dead_code, reason = "owns the memory `base` points into")] Vec<AtomicU64>),
}

// SAFETY:
// - The region only hands out shared references to atomics and copies bytes; nothing in it
//   is tied to a thread.
unsafe impl Send for SharedRegion {}
// SAFETY:
// - As above: every access through `&SharedRegion` is an atomic operation or a copy.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// The data area of `seg`, which the region keeps.
    /// `None` for a read-only mapping: the atomics this region hands out are stored to.
    pub(crate) fn new(seg: Segment) -> Option<Self> {
        if seg.is_read_only() {
            return None;
        }
        Some(Self {
            base: NonNull::new(seg.as_ptr())?,
            len: seg.len(),
            backing: Backing::Segment(seg),
        })
    }

    /// A region of `len` bytes (rounded up to 8) of zeroed heap memory, 8-byte aligned.
    #[cfg(test)]
    pub(crate) fn heap(len: usize) -> Self {
        let words: Vec<AtomicU64> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        Self {
            // Atomics are `UnsafeCell`s: the bytes may be written through this pointer.
            base: NonNull::from(words.as_slice()).cast::<u8>(),
            len: words.len() * 8,
            backing: Backing::Heap(words),
        }
    }

    /// The segment (shared access only: it must not be grown while the region lives).
    ///
    /// # Panics
    ///
    /// For a heap region (tests only).
    pub(crate) fn segment(&self) -> &Segment {
        match &self.backing {
            Backing::Segment(seg) => seg,
            #[cfg(test)]
            Backing::Heap(_) => panic!("a heap region has no segment"),
        }
    }

    fn at(&self, offset: usize, size: usize, align: usize) -> Option<NonNull<u8>> {
        let end = offset.checked_add(size)?;
        if end > self.len || !offset.is_multiple_of(align) {
            return None;
        }
        // wrapping_add is safe; in bounds by the check above. The base is 64-byte aligned,
        // so an aligned offset gives an aligned address.
        NonNull::new(self.base.as_ptr().wrapping_add(offset))
    }

    /// The 64-bit atomic at `offset`, if in bounds and 8-aligned.
    pub(crate) fn u64(&self, offset: usize) -> Option<&AtomicU64> {
        let p = self.at(offset, 8, 8)?;
        // SAFETY:
        // - In bounds and aligned (checked in `at`), inside the memory `self.backing` keeps
        //   alive (and never re-maps) for as long as `self`, to which the reference is tied; any bits are a valid u64; other processes access these
        //   bytes only atomically (the channel protocol), and no `&mut` exists here.
        Some(unsafe { p.cast::<AtomicU64>().as_ref() })
    }

    /// The 32-bit atomic at `offset`, if in bounds and 4-aligned.
    pub(crate) fn u32(&self, offset: usize) -> Option<&AtomicU32> {
        let p = self.at(offset, 4, 4)?;
        // SAFETY:
        // - As in `u64`, for 4 bytes, 4-aligned.
        Some(unsafe { p.cast::<AtomicU32>().as_ref() })
    }

    /// Copy `src` to `offset`; `false` (and nothing copied) when out of bounds.
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) -> bool {
        let Some(dst) = self.at(offset, src.len(), 1) else {
            return false;
        };
        // SAFETY:
        // - `dst` is valid for `src.len()` bytes (bounds-checked in `at`, inside the mapping
        //   `self.backing` keeps alive); `src` is our own slice; they cannot overlap (no Rust slice ever covers
        //   the region); u8 needs no alignment. The ring protocol gives this window to the
        //   writer alone until it publishes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), src.len()) };
        true
    }

    /// Copy `dst.len()` bytes at `offset` into `dst`; `false` when out of bounds.
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) -> bool {
        let Some(src) = self.at(offset, dst.len(), 1) else {
            return false;
        };
        // SAFETY:
        // - As in `copy_in`, the other way; the window is the reader's alone until it
        //   releases it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        true
    }
}
