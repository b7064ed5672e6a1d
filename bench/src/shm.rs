//! One cache line shared between the parent and the child, for the `cacheline` limit rows.
//!
//! The parent creates an anonymous memory file (`memfd_create(2)`, close-on-exec), sizes it to
//! a page, maps it, and hands the descriptor to the child as its stdin; the child maps it too.
//! There is no name, so nothing can leak into `/dev/shm`, whatever happens.
//!
//! # Invariants this file upholds
//!
//! - A [`SharedLine`] owns its mapping: `base` is the start of a live `MAP_SHARED` mapping of
//!   [`MAP_LEN`] bytes from `mmap` until `Drop` unmaps it, and nothing else unmaps it.
//! - The only reference ever formed into the mapping is `&AtomicU64` to its first 8 bytes,
//!   borrowed from `&self`, so it cannot outlive the mapping. The peer writes those bytes
//!   concurrently, which is sound only because every access, ours and its, is atomic; no
//!   `&`/`&mut` to plain bytes of the mapping exists.
//! - The mapping is page-aligned and at least 8 bytes long, and any bit pattern is a valid
//!   `u64`, so the reference is aligned, in bounds and valid even if the peer writes garbage.
#![allow(unsafe_code)]
// The limit row measures the hardware, not an algorithm that loom could check: this file is the
// bench's one place that names an atomic (clippy.toml routes atomics through loom shims).
#![allow(clippy::disallowed_types)]

use std::ffi::c_void;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

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
    let fd = memfd_create("ipcraft-bench-cacheline", MFdFlags::MFD_CLOEXEC)?;
    nix::unistd::ftruncate(&fd, MAP_LEN as libc::off_t)?;
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
