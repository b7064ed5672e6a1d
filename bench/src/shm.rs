//! Memory shared between the parent and the child by hand (mmap of a memfd): one cache line
//! for the `cacheline` limit rows ([`SharedLine`]), and the whole segment of the raw
//! `shm-spin`/`shm-futex` baselines and of the raw sync rows ([`SharedMap`]).
//!
//! The parent creates an anonymous memory file (`memfd_create(2)`, close-on-exec), sizes it,
//! maps it, and hands the descriptor to the child as its stdin; the child maps it too.
//! There is no name, so nothing can leak into `/dev/shm`, whatever happens.
//!
//! # Invariants this file upholds
//!
//! - A [`SharedLine`] or [`SharedMap`] owns its mapping: `base` is the start of a live
//!   `MAP_SHARED` mapping of `len` bytes ([`MAP_LEN`] for a line) from `mmap` until `Drop`
//!   unmaps it, and nothing else unmaps it. The file is at least `len` bytes long when mapped
//!   (checked by [`SharedMap::map`]); it is not sealed, so only our own child, which never
//!   truncates it, may hold it (a shrunk file would SIGBUS us, not corrupt memory).
//! - [`SharedMap::bytes_at`] hands out checked addresses, never references: the raw sync rows'
//!   `pthread_mutex_t` is reached only by pthread calls in `crate::raw`, under that file's
//!   invariants.
//! - The only references ever formed into a mapping are `&AtomicU64` (a line's first 8 bytes)
//!   and `&AtomicU32` (a map's words, bounds- and alignment-checked), borrowed from `&self`, so
//!   they cannot outlive the mapping. The peer writes those bytes concurrently, which is sound
//!   only because every access, ours and its, is atomic.
//! - No `&`/`&mut` to plain bytes of a mapping exists: payload moves only by
//!   `ptr::copy_nonoverlapping` between the mapping and a slice of our own, after a bounds
//!   check. Bytes the peer writes meanwhile may tear the copy, never our memory.
//! - Mappings are page-aligned and any bit pattern is a valid integer, so the references are
//!   aligned, in bounds and valid even if the peer writes garbage.
#![allow(unsafe_code)]
// The limit row measures the hardware, not an algorithm that loom could check: this file is the
// bench's one place that names an atomic (clippy.toml routes atomics through loom shims).
#![allow(clippy::disallowed_types)]

use std::ffi::c_void;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Bytes mapped: one page (the line is its first 64 bytes; nothing else is used).
const MAP_LEN: usize = 4096;

/// A new anonymous memory file of one zeroed page, close-on-exec.
///
/// # Errors
///
/// `memfd_create(2)` or `ftruncate(2)` failed.
pub fn create() -> io::Result<OwnedFd> {
    create_len("ipcraft-bench-cacheline", MAP_LEN)
}

/// A new anonymous memory file of `len` zeroed bytes, close-on-exec, named `name` (for
/// `/proc/PID/fd` only).
///
/// # Errors
///
/// `memfd_create(2)` or `ftruncate(2)` failed, or `len` does not fit an `off_t`.
pub fn create_len(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("memfd too large"))?;
    nix::unistd::ftruncate(&fd, len)?;
    Ok(fd)
}

/// A mapping of the memory file's first page, of which the first cache line is used.
#[derive(Debug)]
pub struct SharedLine {
    base: NonNull<c_void>,
}

impl SharedLine {
    /// Map the page of `fd` (made by [`create`], possibly in the other process).
    ///
    /// # Errors
    ///
    /// `mmap(2)` failed (for example, `fd` is not a memory file of at least a page).
    pub fn map(fd: impl AsFd) -> io::Result<Self> {
        let len = NonZeroUsize::new(MAP_LEN).expect("MAP_LEN is not zero");
        // SAFETY:
        // - No existing Rust object is affected: `addr` is `None`, so the kernel picks a range
        //   that nothing in this process uses, and it is not `MAP_FIXED`.
        // - `fd` stays open for the call (borrowed); the mapping keeps the file alive after.
        // - The result is only used through the invariants at the top of this file.
        let base = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }?;
        Ok(Self { base })
    }

    /// The shared word, at the start of the (64-byte aligned) line.
    pub fn word(&self) -> &AtomicU64 {
        // SAFETY:
        // - In bounds and alive: `base` starts a live mapping of MAP_LEN >= 8 bytes, owned by
        //   `self`; the reference borrows `self`, so it cannot outlive the mapping.
        // - Aligned: mmap returns a page-aligned address, and 4096 >= align_of::<AtomicU64>().
        // - Valid: any 8 bytes are a valid AtomicU64 (the file starts zeroed; the peer may
        //   write anything).
        // - No `&mut` or non-atomic access to these bytes exists, here or in the peer: both only
        //   use this AtomicU64.
        unsafe { self.base.cast::<AtomicU64>().as_ref() }
    }
}

impl Drop for SharedLine {
    fn drop(&mut self) {
        // SAFETY:
        // - `base` and MAP_LEN are exactly the range `mmap` returned in `map`, unmapped only
        //   here, once.
        // - No reference into it is alive: `word()` borrows `self`, and we have `&mut self`.
        let _ = unsafe { munmap(self.base, MAP_LEN) };
    }
}

/// A read-write shared mapping of a whole memory file (made by [`create_len`], possibly in the
/// other process): atomic words by reference, payload by copy.
#[derive(Debug)]
pub struct SharedMap {
    base: NonNull<c_void>,
    len: usize,
}

impl SharedMap {
    /// Map the first `len` bytes of `fd`.
    ///
    /// # Errors
    ///
    /// The file is shorter than `len` (or `len` is 0), or `fstat(2)`/`mmap(2)` failed.
    pub fn map(fd: impl AsFd, len: usize) -> io::Result<Self> {
        let size = nix::sys::stat::fstat(fd.as_fd())?.st_size;
        if u64::try_from(size).unwrap_or(0) < len as u64 {
            return Err(io::Error::other(format!(
                "the memory file holds {size} bytes, {len} are needed"
            )));
        }
        let nz = NonZeroUsize::new(len).ok_or_else(|| io::Error::other("empty mapping"))?;
        // SAFETY:
        // - No existing Rust object is affected: `addr` is `None`, so the kernel picks a range
        //   that nothing in this process uses, and it is not `MAP_FIXED`.
        // - `fd` stays open for the call (borrowed); the mapping keeps the file alive after.
        // - The file holds at least `len` bytes (checked above), so every mapped page is backed.
        // - The result is only used through the invariants at the top of this file.
        let base = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }?;
        Ok(Self { base, len })
    }

    /// Whether `n` bytes at `offset` lie inside the mapping.
    fn check(&self, offset: usize, n: usize) -> io::Result<()> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{n} bytes at {offset} overrun the {}-byte mapping",
                    self.len
                ),
            )),
        }
    }

    /// The address `offset` bytes in (for an `offset` already checked).
    fn at(&self, offset: usize) -> *mut u8 {
        self.base.as_ptr().cast::<u8>().wrapping_add(offset)
    }

    /// The address of `len` bytes at `offset`, checked to lie inside the mapping and to be
    /// aligned to `align` (a power of two), for an object that only library calls touch (the
    /// raw sync rows' `pthread_mutex_t`, [`crate::raw::PthreadMutex`]). Getting it is safe;
    /// using it is the caller's business, while it borrows `self`.
    ///
    /// # Errors
    ///
    /// Out of bounds or misaligned.
    pub fn bytes_at(&self, offset: usize, len: usize, align: usize) -> io::Result<NonNull<u8>> {
        self.check(offset, len)?;
        let at = self.at(offset);
        if !(at as usize).is_multiple_of(align) {
            return Err(io::Error::other(format!("misaligned object at {offset}")));
        }
        NonNull::new(at).ok_or_else(|| io::Error::other("null mapping"))
    }

    /// The 32-bit atomic word at `offset` (a multiple of 4).
    ///
    /// # Errors
    ///
    /// `offset` is out of bounds or misaligned.
    pub fn word(&self, offset: usize) -> io::Result<&AtomicU32> {
        self.check(offset, 4)?;
        if !offset.is_multiple_of(align_of::<AtomicU32>()) {
            return Err(io::Error::other(format!("misaligned word at {offset}")));
        }
        let ptr = self.at(offset).cast::<AtomicU32>();
        // SAFETY:
        // - In bounds and alive: the 4 bytes at `offset` were checked to lie inside the live
        //   mapping owned by `self`; the reference borrows `self`, so it cannot outlive it.
        // - Aligned: the mapping is page-aligned and `offset` is a multiple of 4 (checked).
        // - Valid: any 4 bytes are a valid AtomicU32 (the peer may write anything).
        // - No `&mut` or non-atomic access to these bytes exists, here or in the peer: the
        //   protocol (cases::shm) reaches its words only through atomics.
        Ok(unsafe { &*ptr })
    }

    /// Copy `src` into the mapping at `offset`.
    ///
    /// # Errors
    ///
    /// The range is out of bounds.
    pub fn copy_in(&self, offset: usize, src: &[u8]) -> io::Result<()> {
        self.check(offset, src.len())?;
        // SAFETY:
        // - The destination is valid for writes of `src.len()` bytes: bounds-checked above,
        //   inside the live read-write mapping owned by `self`.
        // - `src` is valid for reads of its length: a slice we were lent.
        // - No overlap: `src` is memory of this process that is not in the mapping (no slice
        //   over the mapping is ever formed). Alignment 1 (u8).
        // - No Rust reference covers the destination bytes: only copies and atomics do.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.at(offset), src.len()) };
        Ok(())
    }

    /// Copy `dst.len()` bytes at `offset` out of the mapping.
    ///
    /// # Errors
    ///
    /// The range is out of bounds.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> io::Result<()> {
        self.check(offset, dst.len())?;
        // SAFETY:
        // - The source is valid for reads of `dst.len()` bytes: bounds-checked above, inside
        //   the live mapping owned by `self`.
        // - `dst` is valid for writes of its length and ours alone: an exclusive borrow.
        // - No overlap: `dst` is memory of this process that is not in the mapping. Alignment 1.
        unsafe { ptr::copy_nonoverlapping(self.at(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY:
        // - `base` and `len` are exactly the range `mmap` returned in `map`, unmapped only
        //   here, once.
        // - No reference into it is alive: `word()` borrows `self`, and we have `&mut self`.
        let _ = unsafe { munmap(self.base, self.len) };
    }
}
