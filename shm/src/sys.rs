#![allow(unsafe_code)]
//! The one file of `ipcraft-shm` with `unsafe` code: moving bytes in and out of a mapping, and
//! handing out references to atomics inside it.
//!
//! Invariants this file upholds, whatever its callers do:
//! - A [`Region`] is a pointer and a length such that the `len` bytes at `base` stay mapped
//!   (or allocated, in tests) for the region's lifetime `'a`: a region is only made from a
//!   borrow of the [`memmap2::MmapRaw`] (or heap buffer) that owns them.
//! - Every access is bounds-checked here against `len`, with overflow-checked arithmetic, and
//!   every reference is alignment-checked here: no caller can make this file read or write
//!   outside the region, or form a misaligned reference.
//! - No `&[u8]`, `&mut [u8]` or `&mut T` is ever formed over the region: another process may
//!   write it at any time. Bytes move with `ptr::copy_nonoverlapping` between the region and
//!   memory we own; shared references are formed only to [`AtomicData`] types, every byte of
//!   which lies inside an atomic, so concurrent writes by peers are atomic operations, not
//!   data races.
//! - Values read out are of `FromBytes` types, valid for any bit pattern, so whatever bytes a
//!   peer (or a crash) left behind, the value is valid.

use crate::error::{Error, Result};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Types that may be shared by reference between processes: valid for any bit pattern, and
/// every byte of which lies inside an atomic (so all shared mutation goes through atomics).
///
/// Implemented for the integer atomics of `std::sync::atomic` and arrays of `AtomicData`.
/// For a `#[repr(C)]` struct of atomics, derive `zerocopy::FromBytes` and implement this
/// trait.
///
/// # Safety
///
/// Implement only for a type that implements `FromBytes`, whose every byte is part of an
/// atomic integer (no padding, no plain fields, no `UnsafeCell` other than the atomics'),
/// and that has no `Drop` glue.
pub unsafe trait AtomicData: FromBytes + Sync {}

macro_rules! atomic_data {
    ($($t:ident),*) => {$(
        #[allow(clippy::disallowed_types)] // Named here to be shared, not used.
        // SAFETY:
        // - Every byte of an integer atomic is the atomic itself; any bit pattern is a valid
        //   integer; atomics have no Drop glue; zerocopy implements FromBytes for them.
        unsafe impl AtomicData for std::sync::atomic::$t {}
    )*};
}
atomic_data!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);

// SAFETY:
// - An array has no padding between its elements and no bytes of its own, so every byte of
//   `[T; N]` is a byte of some `T: AtomicData`, which is inside an atomic.
unsafe impl<T: AtomicData, const N: usize> AtomicData for [T; N] {}

// SAFETY:
// - `Header` is `#[repr(C)]` and made only of integer atomics laid out without padding (its
//   size is asserted to be the sum of its fields' sizes in header.rs); it derives FromBytes.
unsafe impl AtomicData for crate::header::Header {}

/// A mapping owned by a segment.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: memmap2::MmapRaw,
}

impl Mapping {
    pub(crate) fn new(raw: memmap2::MmapRaw) -> Self {
        Self { raw }
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    pub(crate) fn mmap(&self) -> &memmap2::MmapRaw {
        &self.raw
    }

    /// The whole mapping as a region, for as long as `self` is borrowed.
    #[inline]
    pub(crate) fn region(&self) -> Region<'_> {
        Region {
            base: NonNull::new(self.raw.as_mut_ptr()).unwrap_or(NonNull::dangling()),
            len: if self.raw.as_mut_ptr().is_null() {
                0
            } else {
                self.raw.len()
            },
            _life: PhantomData,
        }
    }
}

/// `len` bytes at `base`, live for `'a`, that other processes may write at any time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region<'a> {
    base: NonNull<u8>,
    len: usize,
    _life: PhantomData<&'a ()>,
}

impl<'a> Region<'a> {
    /// A region over heap memory we own exclusively, for tests (Miri among them).
    #[cfg(test)]
    pub(crate) fn from_words(words: &'a mut [u64]) -> Self {
        Region {
            base: NonNull::from(&mut *words).cast(),
            len: std::mem::size_of_val(words),
            _life: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The part of the region from `offset` on.
    #[inline]
    pub(crate) fn tail(&self, offset: usize) -> Result<Region<'a>> {
        self.check(offset, 0)?;
        Ok(Region {
            base: self.ptr_at(offset),
            len: self.len - offset,
            _life: PhantomData,
        })
    }

    /// The first `len` bytes of the region.
    #[inline]
    pub(crate) fn head(&self, len: usize) -> Result<Region<'a>> {
        self.check(0, len)?;
        Ok(Region { len, ..*self })
    }

    /// `offset..offset + len` lies within the region.
    #[inline]
    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// The address `offset` bytes in, for an `offset` already checked to be at most `len`.
    #[inline]
    fn ptr_at(&self, offset: usize) -> NonNull<u8> {
        // wrapping_add is safe to call; with offset <= len the result stays within (or one
        // past the end of) the mapping, so it is non-null and in bounds.
        NonNull::new(self.base.as_ptr().wrapping_add(offset)).unwrap_or(self.base)
    }

    /// Copy `dst.len()` bytes at `offset` out of the region. Bytes a peer writes at the same
    /// time may be torn; synchronize with atomics or a lock.
    #[inline]
    pub(crate) fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.check(offset, dst.len())?;
        let src = self.ptr_at(offset);
        // SAFETY:
        // - `src` is valid for reads of `dst.len()` bytes: the range was bounds-checked just
        //   above, and the region's memory stays mapped for 'a (module invariant).
        // - `dst` is valid for writes of `dst.len()` bytes: it is a `&mut [u8]` we were lent.
        // - They do not overlap: `dst` is memory of this process that no `Region` covers
        //   (regions are never turned into Rust slices).
        // - u8 has alignment 1.
        // - Not upheld here: that no other thread of this process writes these bytes at the
        //   same time (that would be a data race). Segment::read_at documents it as the
        //   caller's duty; writes by other processes are outside this process's model.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copy `src` into the region at `offset`. The caller checks the mapping is writable.
    #[inline]
    pub(crate) fn copy_in(&self, offset: usize, src: &[u8]) -> Result<()> {
        self.check(offset, src.len())?;
        let dst = self.ptr_at(offset);
        // SAFETY:
        // - `dst` is valid for writes of `src.len()` bytes: bounds-checked above, mapped for
        //   'a; the caller only calls this on a writable mapping (Segment checks ReadOnly).
        // - `src` is valid for reads: a `&[u8]` we were lent.
        // - No overlap: `src` is process memory no region covers. Alignment 1.
        // - No Rust reference covers the destination bytes (only copies and atomics do).
        // - Not upheld here: that no other thread of this process accesses these bytes at
        //   the same time (a data race); Segment::write_at documents it as the caller's duty.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), src.len()) };
        Ok(())
    }

    /// Copy a `T` out of the region at `offset` (any alignment).
    #[inline]
    pub(crate) fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        let size = std::mem::size_of::<T>();
        self.check(offset, size)?;
        let mut value = T::new_zeroed();
        let src = self.ptr_at(offset);
        // SAFETY:
        // - `src` is valid for reads of size_of::<T>() bytes: bounds-checked above, mapped
        //   for 'a.
        // - The destination is `value`, a local T we own, valid for writes of its size; it is
        //   written as bytes (alignment 1), so its own alignment does not matter.
        // - Any bytes make a valid T: `T: FromBytes`.
        // - No overlap: `value` is on our stack.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), (&raw mut value).cast::<u8>(), size) };
        Ok(value)
    }

    /// Copy `value` into the region at `offset` (any alignment). The caller checks the
    /// mapping is writable.
    #[inline]
    pub(crate) fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<()> {
        self.copy_in(offset, value.as_bytes())
    }

    /// A shared reference to the `T` at `offset`, for atomic access.
    pub(crate) fn get<T: AtomicData>(&self, offset: usize) -> Result<&'a T> {
        self.check(offset, std::mem::size_of::<T>())?;
        let ptr = self.ptr_at(offset);
        let align = std::mem::align_of::<T>();
        if !(ptr.as_ptr() as usize).is_multiple_of(align) {
            return Err(Error::Misaligned { offset, align });
        }
        // SAFETY:
        // - `ptr` is non-null, aligned for T (checked just above), and the size_of::<T>()
        //   bytes there are in bounds (checked above) and stay mapped for 'a.
        // - Whatever bytes are there form a valid T: `T: AtomicData` implies FromBytes.
        // - Shared access is sound although other processes write the bytes: every byte is
        //   inside an atomic (`AtomicData`), so all writes are atomic, and no `&mut` to these
        //   bytes exists in this process (this file never forms one).
        Ok(unsafe { ptr.cast::<T>().as_ref() })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // Std atomics in shared memory: what this crate serves.
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    #[test]
    fn copies_are_bounds_checked() {
        let mut words = [0u64; 4];
        let r = Region::from_words(&mut words);
        r.copy_in(30, b"xy").unwrap();
        let mut out = [0u8; 2];
        r.copy_out(30, &mut out).unwrap();
        assert_eq!(&out, b"xy");
        assert!(matches!(
            r.copy_in(31, b"xy"),
            Err(Error::OutOfBounds {
                offset: 31,
                len: 2,
                size: 32
            })
        ));
        assert!(matches!(
            r.copy_out(usize::MAX, &mut out),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(r.tail(33).is_err());
        assert_eq!(r.tail(32).unwrap().len(), 0);
    }

    #[test]
    fn typed_reads_writes_and_atomics() {
        let mut words = [0u64; 4];
        let r = Region::from_words(&mut words);
        r.write(3, &0xdead_beef_u32).unwrap();
        assert_eq!(r.read::<u32>(3).unwrap(), 0xdead_beef);
        let a: &AtomicU32 = r.get(8).unwrap();
        a.fetch_add(5, Ordering::Relaxed);
        assert_eq!(r.read::<u32>(8).unwrap(), 5);
        assert!(matches!(
            r.get::<AtomicU64>(4),
            Err(Error::Misaligned {
                offset: 4,
                align: 8
            })
        ));
        assert!(matches!(
            r.get::<AtomicU64>(32),
            Err(Error::OutOfBounds { .. })
        ));
        let arr: &[AtomicU32; 2] = r.tail(16).unwrap().get(0).unwrap();
        arr[1].store(7, Ordering::Relaxed);
        assert_eq!(r.read::<u32>(20).unwrap(), 7);
    }
}
