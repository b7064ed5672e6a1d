//! [`Segment`]: a mapped shared memory object, named (`shm_open`) or anonymous (`memfd`).

use crate::error::{Error, Result};
use crate::header::{HEADER_SIZE, Header, HeaderInfo};
use crate::options::SegmentOptions;
use crate::owned_name::OwnedName;
use crate::sys::{AtomicData, Mapping, Region};
use ipcraft_core::PosixName;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{Mode, fstat};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Where named segments live: `shm_open(3)` makes `NAME` the file `/dev/shm/NAME`.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// A mapped shared memory object: named (`shm_open`) or anonymous (`memfd_create`).
///
/// Data is reached through copies ([`read_at`](Self::read_at), [`write_at`](Self::write_at),
/// [`read`](Self::read), [`write`](Self::write)) and, for atomics, shared references
/// ([`get`](Self::get)); never as a `&[u8]`, which would be unsound over memory another
/// process writes. Offsets count from the start of the data area, which follows the 64-byte
/// ipcraft header and is 64-byte aligned.
///
/// The creator of a named segment owns its name and removes it on drop, unless
/// [`persist`](Self::persist)ed; openers never remove it. A mapping stays valid after the
/// name is gone. No `try_clone` (a clone would share the name's ownership): map the object
/// again with [`open`](Self::open) (named) or [`from_fd`](Self::from_fd) of a duplicated
/// descriptor (anonymous); a `&Segment` is `Send + Sync` for threads.
pub struct Segment {
    pub(crate) map: Mapping,
    fd: OwnedFd,
    name: Option<PosixName>,
    owner: bool,
    persisted: bool,
    writable: bool,
    memfd: bool,
    raw: bool,
    data_len: usize,
    pub(crate) info: Option<HeaderInfo>,
    /// The creator's name, removed when this is dropped (`None` for an opener, an anonymous
    /// segment). A field rather than a `Drop` of
    /// `Segment`, so that the conversion into an `OwnedFd` can move the descriptor out.
    unlink: Option<OwnedName>,
}

impl Segment {
    /// Create a named segment with `size` data bytes, mode 0600; see
    /// [`SegmentOptions::create`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_shm::Segment;
    /// let name = format!("/ipcraft-doc-create-{}", std::process::id());
    /// let seg = Segment::create(&name, 4096)?;
    /// seg.write_at(0, b"hello")?;
    /// let peer = Segment::open(&name)?; // another process would do this
    /// let mut buf = [0u8; 5];
    /// peer.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"hello");
    /// # Ok::<(), ipcraft_shm::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Self> {
        SegmentOptions::new().create(name, size)
    }

    /// Open a named segment read-write; see [`SegmentOptions::open`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        SegmentOptions::new().open(name)
    }

    /// Open a named segment read-only (a read-only mapping); see [`SegmentOptions::open`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::open`].
    pub fn open_read_only(name: &str) -> Result<Self> {
        SegmentOptions::new().read_only(true).open(name)
    }

    /// Open or create a named segment, initialized exactly once; see
    /// [`SegmentOptions::open_or_create`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::open_or_create`].
    pub fn open_or_create(
        name: &str,
        size: usize,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<(Self, bool)> {
        SegmentOptions::new().open_or_create(name, size, init)
    }

    /// A sealed anonymous segment; see [`SegmentOptions::anonymous`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::anonymous`].
    pub fn anonymous(size: usize) -> Result<Self> {
        SegmentOptions::new().anonymous(size)
    }

    /// Map a received anonymous segment; see [`SegmentOptions::from_fd`].
    ///
    /// # Errors
    ///
    /// As [`SegmentOptions::from_fd`].
    pub fn from_fd(fd: OwnedFd, min_len: usize) -> Result<Self> {
        SegmentOptions::new().from_fd(fd, min_len)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        map: Mapping,
        fd: OwnedFd,
        name: Option<PosixName>,
        owner: bool,
        writable: bool,
        raw: bool,
        info: Option<HeaderInfo>,
    ) -> Self {
        let data_len = match info {
            Some(i) => usize::try_from(i.data_len).unwrap_or(0),
            None if raw => map.len(),
            None => map.len().saturating_sub(HEADER_SIZE),
        };
        let unlink = match (&name, owner) {
            (Some(n), true) => Some(OwnedName::new(n.clone(), &fd)),
            _ => None,
        };
        Self {
            map,
            fd,
            name,
            owner,
            unlink,
            persisted: false,
            writable,
            memfd: false,
            raw,
            data_len,
            info,
        }
    }

    /// The descriptor, the rest dropped (mapping unmapped, an owned name removed).
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub(crate) fn with_memfd(mut self) -> Self {
        self.memfd = true;
        self
    }

    /// The data area: after the header, `data_len` bytes.
    #[inline]
    fn data(&self) -> Region<'_> {
        let all = self.map.region();
        let start = if self.raw { 0 } else { HEADER_SIZE };
        all.tail(start)
            .and_then(|r| r.head(self.data_len.min(r.len())))
            .unwrap_or(all.head(0).unwrap_or(all))
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.data_len
    }

    /// Whether the data area is empty (never, for a segment made by this crate).
    pub fn is_empty(&self) -> bool {
        self.data_len == 0
    }

    /// The name of a named segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(PosixName::as_str)
    }

    /// Whether the mapping is read-only.
    pub fn is_read_only(&self) -> bool {
        !self.writable
    }

    /// What the ipcraft header said when the segment was opened (`None` for raw segments).
    pub fn header(&self) -> Option<HeaderInfo> {
        self.info
    }

    /// Copy `buf.len()` bytes at `offset` out of the segment. Bytes another process writes at
    /// the same time may be torn: synchronize with atomics or `ipcraft-sync`'s mutex.
    ///
    /// Known limitation: copies are plain (`memcpy`) accesses, so within one process, a copy
    /// that runs at the same time as a write to the same bytes from another thread (through
    /// this handle, another handle to the same object, or an atomic from [`get`](Self::get))
    /// is a data race in Rust's memory model. Order such accesses with a lock or an atomic
    /// flag, as any cross-process protocol must anyway.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`].
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.data().copy_out(offset, buf)
    }

    /// Copy `buf` into the segment at `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`]; [`Error::OutOfBounds`].
    pub fn write_at(&self, offset: usize, buf: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.data().copy_in(offset, buf)
    }

    /// Copy a `T` (plain data, valid for any bit pattern) out of the segment at `offset`,
    /// at any alignment.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`].
    #[inline]
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        self.data().read(offset)
    }

    /// Copy `value` (plain data without padding) into the segment at `offset`, at any
    /// alignment.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`]; [`Error::OutOfBounds`].
    #[inline]
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<()> {
        self.check_writable()?;
        self.data().write(offset, value)
    }

    /// A shared reference to the atomics at `offset`, for lock-free updates shared with
    /// other processes. The data area starts 64-byte aligned, so `offset` must be a multiple
    /// of `T`'s alignment. Use one atomic width per location: Rust's memory model does not
    /// allow atomics of different sizes to race over the same bytes.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`] (atomic updates would fault on a read-only mapping);
    /// [`Error::Misaligned`]; [`Error::OutOfBounds`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_shm::Segment;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let seg = Segment::anonymous(64)?;
    /// let counter: &AtomicU64 = seg.get(8)?;
    /// counter.fetch_add(1, Ordering::AcqRel);
    /// assert!(seg.get::<AtomicU64>(4).is_err()); // misaligned
    /// # Ok::<(), ipcraft_shm::Error>(())
    /// ```
    #[inline]
    pub fn get<T: AtomicData>(&self, offset: usize) -> Result<&T> {
        self.check_writable()?;
        self.data().get(offset)
    }

    /// Atomically load the `u64` at `offset` (8-aligned), also on a read-only mapping: how
    /// a reader follows a flag or sequence number the writers update with atomics. (Rust
    /// allows atomic loads of at most 8 bytes from read-only memory.)
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`]; [`Error::OutOfBounds`].
    #[allow(clippy::disallowed_types)] // Std atomics in shared memory: what this crate serves.
    pub fn load_u64(&self, offset: usize, order: std::sync::atomic::Ordering) -> Result<u64> {
        Ok(self
            .data()
            .get::<std::sync::atomic::AtomicU64>(offset)?
            .load(order))
    }

    /// Atomically load the `u32` at `offset` (4-aligned), also on a read-only mapping.
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`]; [`Error::OutOfBounds`].
    #[allow(clippy::disallowed_types)] // Std atomics in shared memory: what this crate serves.
    pub fn load_u32(&self, offset: usize, order: std::sync::atomic::Ordering) -> Result<u32> {
        Ok(self
            .data()
            .get::<std::sync::atomic::AtomicU32>(offset)?
            .load(order))
    }

    /// The first byte of the data area, for those who go `unsafe` themselves: the memory is
    /// shared with other processes, so never form `&[u8]`/`&mut [u8]` over it unless the
    /// protocol guarantees no one else writes it meanwhile. Valid while `self` lives (and is
    /// not [grown](Self::grow)).
    pub fn as_ptr(&self) -> *mut u8 {
        self.data().as_ptr()
    }

    /// Count this handle as a live user of a named segment, as its creator is: while this
    /// handle lives, [`list`](crate::list) reports the segment's creator alive and
    /// [`remove_stale`](crate::remove_stale) leaves it, even once the process that created
    /// it died. For a service whose processes restart: the next user keeps the name alive,
    /// and once every user is gone the segment is stale again. It takes a shared lock on
    /// the creator's liveness byte through this handle's own open file description, which
    /// the kernel drops when the handle closes or the process dies (a no-op for a creator,
    /// which holds it already).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when the lock cannot be taken (`fcntl(2)`, `F_OFD_SETLK`): for
    /// example, [`remove_stale`](crate::remove_stale) is removing the segment right now.
    pub fn mark_in_use(&self) -> Result<()> {
        crate::creator::take_creator_lock(&self.fd)
    }

    /// Keep the name after this handle is dropped, and mark the segment persisted in its
    /// header, so [`remove_stale`](crate::remove_stale) leaves it alone once this process
    /// is gone. Only the creator's call marks the header; an opener's does nothing.
    pub fn persist(&mut self) {
        let was_owner = std::mem::replace(&mut self.owner, false);
        self.persisted = true;
        if let Some(name) = &mut self.unlink {
            name.keep();
        }
        if was_owner && !self.raw && self.writable {
            if let Ok(h) = header_of(&self.map) {
                h.set_persisted();
            }
        }
    }

    /// Grow the data area to `new_len` bytes (re-mapping it). Only the creator of a named
    /// segment can grow it; other processes keep their current size until they re-open.
    ///
    /// # Errors
    ///
    /// [`Error::CannotGrow`]; [`Error::TooLarge`]; [`Error::Sys`].
    pub fn grow(&mut self, new_len: usize) -> Result<()> {
        if !self.owner || self.memfd {
            return Err(Error::CannotGrow {
                reason: "only the creator of a named segment can grow it (anonymous segments are sealed)",
            });
        }
        if new_len <= self.data_len {
            return Err(Error::CannotGrow {
                reason: "the new size must be larger than the current one",
            });
        }
        let total = total_size(new_len, self.raw)?;
        let extra = (total - self.map.len()) as u64;
        let available = shm_available()?;
        if extra > available {
            return Err(Error::TooLarge {
                requested: total as u64,
                available,
            });
        }
        nix::unistd::ftruncate(&self.fd, to_off(total)?).map_err(Error::sys("ftruncate"))?;
        let raw = memmap2::MmapOptions::new()
            .len(total)
            .map_raw(&self.fd)
            .map_err(|e| Error::from_io("mmap", &e))?;
        self.map = Mapping::new(raw);
        if !self.raw {
            header_of(&self.map)?.set_data_len(new_len as u64);
        }
        self.data_len = new_len;
        if let Some(info) = &mut self.info {
            info.data_len = new_len as u64;
        }
        Ok(())
    }

    /// Seal an anonymous segment against writes through any mapping made from now on
    /// (`F_SEAL_FUTURE_WRITE`): peers it is passed to can only map it read-only, while this
    /// handle keeps writing.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] (`EPERM` for a named segment, which cannot be sealed).
    pub fn seal_future_writes(&self) -> Result<()> {
        fcntl(
            &self.fd,
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_FUTURE_WRITE),
        )
        .map_err(Error::sys("fcntl(F_ADD_SEALS)"))?;
        Ok(())
    }

    /// Flush the mapping (`msync(2)`); shared memory needs no flush to be seen by other
    /// processes, only to reach a file's storage.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`].
    pub fn flush(&self) -> Result<()> {
        self.map
            .mmap()
            .flush()
            .map_err(|e| Error::from_io("msync", &e))
    }

    #[inline]
    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly)
        }
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Segment {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name())
            .field("fd", &self.fd.as_raw_fd())
            .field("len", &self.data_len)
            .field("owner", &self.owner)
            .field("writable", &self.writable)
            .field("memfd", &self.memfd)
            .field("raw", &self.raw)
            .finish()
    }
}

/// Remove the named segment `name` (`shm_unlink(3)`). Processes that have it mapped keep
/// their mappings.
///
/// # Errors
///
/// [`Error::Name`]; [`Error::NotFound`]; [`Error::Sys`].
#[doc(alias = "shm_unlink")]
pub fn unlink(name: &str) -> Result<()> {
    let posix = PosixName::new(name)?;
    match shm_unlink(posix.as_c_str()) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT) => Err(Error::NotFound {
            name: name.to_owned(),
        }),
        Err(e) => Err(Error::sys_on("shm_unlink", name)(e)),
    }
}

/// Open an existing named object. `O_NONBLOCK` so that a FIFO someone put in `/dev/shm`
/// (anyone may) cannot block the open; then anything but a regular file is refused.
pub(crate) fn open_existing(posix: &PosixName, flags: OFlag) -> Result<OwnedFd> {
    let name = posix.as_str();
    let fd = match shm_open(posix.as_c_str(), flags | OFlag::O_NONBLOCK, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            return Err(Error::NotFound {
                name: name.to_owned(),
            });
        }
        Err(e) => return Err(Error::sys_on("shm_open", name)(e)),
    };
    let st = fstat(&fd).map_err(Error::sys_on("fstat", name))?;
    if st.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
        return Err(Error::NotIpcraft {
            name: name.to_owned(),
        });
    }
    Ok(fd)
}

/// The header at the start of an ipcraft mapping (every caller maps at least
/// [`HEADER_SIZE`] bytes first; a shorter mapping is an error, not a panic).
pub(crate) fn header_of(map: &Mapping) -> Result<&Header> {
    map.region().get::<Header>(0)
}

pub(crate) fn check_tag(found: u64, expected: u64) -> Result<()> {
    if expected != 0 && found != expected {
        return Err(Error::WrongTag { found, expected });
    }
    Ok(())
}

pub(crate) fn total_size(data: usize, raw: bool) -> Result<usize> {
    let header = if raw { 0 } else { HEADER_SIZE };
    data.checked_add(header).ok_or(Error::TooLarge {
        requested: u64::MAX,
        available: 0,
    })
}

pub(crate) fn to_off(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::TooLarge {
        requested: n as u64,
        available: i64::MAX as u64,
    })
}

pub(crate) fn file_size(fd: &OwnedFd) -> Result<u64> {
    let st = fstat(fd).map_err(Error::sys("fstat"))?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Bytes free in the file system behind `/dev/shm`.
pub(crate) fn shm_available() -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(SHM_DIR).map_err(Error::sys_on("statvfs", SHM_DIR))?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

pub(crate) fn huge_pages_reserved() -> bool {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}
