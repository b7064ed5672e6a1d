//! [`SegmentOptions`]: how a [`Segment`] is opened, created, or made anonymous.

use crate::creator::creator_alive;
use crate::error::{Error, Result};
use crate::header::{Found, HEADER_SIZE};
use crate::segment::{
    Segment, check_tag, file_size, header_of, huge_pages_reserved, open_existing, to_off,
    total_size,
};
use crate::stale::reclaim_unfinished;
use crate::sys::Mapping;
use ipcraft_core::{Deadline, PosixName, TrustedOwners};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

mod create;

/// The mode of a named segment made by [`Segment::create`]: read and write for the owner.
pub const DEFAULT_MODE: u32 = 0o600;
/// How long [`Segment::open`] waits, by default, for a segment another process is still
/// initializing.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two looks at a segment that is not ready yet.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many times `open_or_create` looks again at a dead initializer's segment that another
/// caller is reclaiming.
const RECLAIM_RETRIES: u32 = 50;

/// Options for creating and opening a [`Segment`].
///
/// # Examples
///
/// ```
/// use ipcraft_shm::SegmentOptions;
/// use std::time::Duration;
///
/// let name = format!("/ipcraft-doc-opts-{}", std::process::id());
/// let seg = SegmentOptions::new().mode(0o640).populate(true).create(&name, 4096)?;
/// let reader = SegmentOptions::new()
///     .read_only(true)
///     .timeout(Duration::from_secs(1))
///     .open(&name)?;
/// assert!(reader.is_read_only());
/// # drop(seg);
/// # Ok::<(), ipcraft_shm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until a segment is created or opened with them"]
pub struct SegmentOptions {
    mode: u32,
    read_only: bool,
    raw: bool,
    trusted: TrustedOwners,
    populate: bool,
    lock: bool,
    huge_pages: bool,
    timeout: Duration,
    tag: u64,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE,
            read_only: false,
            raw: false,
            trusted: TrustedOwners::new(),
            populate: false,
            lock: false,
            huge_pages: false,
            timeout: DEFAULT_OPEN_TIMEOUT,
            tag: 0,
        }
    }
}

impl SegmentOptions {
    /// Defaults: mode 0600, read-write, with the ipcraft header, a 5 s open timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of a created named segment (at most `0o777`), applied exactly,
    /// whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Map read-only (opening only): no writes, no references for atomic updates; copies
    /// and [`Segment::read`] work.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// No ipcraft header: map the object's bytes as they are, for segments made by other
    /// programs (or for them). The creator-liveness and readiness checks need the header.
    pub fn raw(mut self, yes: bool) -> Self {
        self.raw = yes;
        self
    }

    /// Whose segments an open joins: by default our effective uid and root. Every open of
    /// a name checks the owner on the descriptor (`fstat`) and refuses others with
    /// [`Error::Untrusted`]; `open_or_create` also refuses an existing segment whose mode is
    /// wider than [`mode`](Self::mode). Widen it only for segments shared on purpose
    /// ([`TrustedOwners::also_uid`]).
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// Pre-fault the whole mapping (`MAP_POPULATE`).
    pub fn populate(mut self, yes: bool) -> Self {
        self.populate = yes;
        self
    }

    /// Lock the mapping in memory (`mlock(2)`), so it is never swapped out.
    pub fn lock(mut self, yes: bool) -> Self {
        self.lock = yes;
        self
    }

    /// Back an anonymous segment with huge pages (`MFD_HUGETLB`); its size is rounded up to
    /// 2 MiB. Needs reserved huge pages (`/proc/sys/vm/nr_hugepages`). Named segments live
    /// in `/dev/shm`, whose huge-page policy is the mount's.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }

    /// How long an open waits for a segment another process is still initializing.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A tag for what the data holds, written by the creator and checked by openers
    /// ([`Error::WrongTag`]); 0, the default, is not checked.
    pub fn tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    /// Create a named segment with `size` bytes of data, zero-filled: `shm_open(3)` of a
    /// private temporary name with `O_CREAT | O_EXCL` and the exact mode, the creator lock,
    /// `ftruncate`, a shared mapping and the header, then `renameat2(2)` with
    /// `RENAME_NOREPLACE` to `name` (or, where that is refused, `link(2)`, which never
    /// replaces a name either, and `unlink` of the temporary). So `name` only ever leads to a
    /// complete segment, whenever this process dies; a creator killed before the rename
    /// leaves only its temporary, which [`remove_stale`](crate::remove_stale) removes.
    ///
    /// # Errors
    ///
    /// [`Error::Name`]; [`Error::ZeroSize`]; [`Error::TooLarge`] when `/dev/shm` cannot hold
    /// it; [`Error::AlreadyExists`]; [`Error::Sys`].
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str, size: usize) -> Result<Segment> {
        self.create_with(name, size, |_| Ok(()))
    }

    /// Open a named segment; an ipcraft segment still being initialized by another process
    /// is waited for, up to the [timeout](Self::timeout).
    ///
    /// # Errors
    ///
    /// [`Error::Name`]; [`Error::NotFound`]; [`Error::NotIpcraft`],
    /// [`Error::IncompatibleVersion`], [`Error::WrongTag`], [`Error::TooSmall`] for a
    /// segment that is not what is expected ([`Error::NotIpcraft`] at once for one smaller
    /// than the 64-byte header); [`Error::NotReady`] after the timeout;
    /// [`Error::CreatorDied`] for a segment whose initializer died before publishing it (or,
    /// as an older version of this crate left one, before writing its header: an object whose
    /// first 64 bytes are zero and that no creator holds, which a foreign object starting
    /// with 64 zero bytes resembles); [`Error::Untrusted`] when its owner is not trusted
    /// ([`trust`](Self::trust)); [`Error::Sys`].
    #[doc(alias = "shm_open")]
    pub fn open(&self, name: &str) -> Result<Segment> {
        self.open_checked(name, None)
    }

    /// [`open`](Self::open), also refusing a mode wider than `requested` (for
    /// `open_or_create`: it joins only what it could have created).
    fn open_checked(&self, name: &str, requested: Option<u32>) -> Result<Segment> {
        let posix = PosixName::new(name)?;
        let flags = if self.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        let fd = open_existing(&posix, flags)?;
        self.trusted
            .check(&fd, "shared memory segment", name, requested)
            .map_err(Error::Untrusted)?;
        let deadline = Deadline::after(self.timeout);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let size = file_size(&fd)?;
            if self.raw {
                if size == 0 {
                    return Err(Error::TooSmall {
                        actual: 0,
                        expected: 1,
                    });
                }
                let map = self.map(&fd, size)?;
                return Ok(Segment::assemble(
                    map,
                    fd,
                    Some(posix),
                    false,
                    !self.read_only,
                    true,
                    None,
                ));
            }
            // An ipcraft creator takes its creator lock and then sizes the object to the
            // header and more in one ftruncate: a size between 1 and the header's is never
            // one of ours, whoever holds a lock on it.
            if size > 0 && size < HEADER_SIZE as u64 {
                return Err(Error::NotIpcraft {
                    name: name.to_owned(),
                });
            }
            if size >= HEADER_SIZE as u64 {
                let map = self.map(&fd, size)?;
                let found = header_of(&map)?.inspect(size, name)?;
                match found {
                    Found::Ready(info) => {
                        check_tag(info.tag, self.tag)?;
                        return Ok(Segment::assemble(
                            map,
                            fd,
                            Some(posix),
                            false,
                            !self.read_only,
                            false,
                            Some(info),
                        ));
                    }
                    Found::Initializing if !creator_alive(&fd)? => {
                        return Err(Error::CreatorDied {
                            name: name.to_owned(),
                        });
                    }
                    // Sized but no header, and nobody holds the creator lock. This crate
                    // never shows such an object under a user's name (it builds segments
                    // under a temporary one), but an older version left one when killed
                    // between ftruncate and the header; a foreign object whose first 64 bytes
                    // are zero looks the same. Neither is usable, and neither will change.
                    Found::Fresh if !creator_alive(&fd)? => {
                        return Err(Error::CreatorDied {
                            name: name.to_owned(),
                        });
                    }
                    Found::Initializing | Found::Fresh => {}
                }
            }
            // Size 0: an older version's creator between shm_open and ftruncate, or one that
            // died there (this one sizes its objects before they have the name); only the
            // deadline can tell.
            if deadline.has_passed() {
                return Err(Error::NotReady {
                    name: name.to_owned(),
                    waited: started.elapsed(),
                });
            }
            let left = deadline.remaining().unwrap_or(pause);
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL_INTERVAL);
        }
    }

    /// Open the named segment, or create it if it does not exist. Exactly one process
    /// creates it and runs `init` on it before publishing it as ready; the others wait (up to
    /// the [timeout](Self::timeout)) and see the initialized state. Returns the segment and
    /// whether this call created it.
    ///
    /// If the initializer dies before publishing (its creator lock is free, which proves
    /// it), the segment it left is never joined and never blocks the name: this call removes
    /// it and creates the segment again (running `init`; among several callers, one does,
    /// the others wait for it). So does it with an object an older version of this crate
    /// left when killed before writing the header: empty, or of exactly the size this call
    /// would create and holding nothing but zeros (see
    /// [`Leftover::Headerless`](crate::Leftover::Headerless) for what that proves).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open), and whatever `init` returns
    /// (the half-made segment is then removed). [`Error::CreatorDied`] only for a dead
    /// initializer's segment that cannot be reclaimed (a headerless one of another size, or
    /// one another caller kept reclaiming); [`Error::NotReady`] for an empty object that
    /// stayed empty for the whole timeout and could not be reclaimed.
    pub fn open_or_create(
        &self,
        name: &str,
        size: usize,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<(Segment, bool)> {
        let mut init = Some(init);
        let deadline = Deadline::after(self.timeout);
        let mut retries = 0;
        loop {
            match self.create_with(name, size, |s| init.take().map_or(Ok(()), |f| f(s))) {
                Ok(seg) => return Ok((seg, true)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.open_checked(name, Some(self.mode)) {
                Ok(seg) if seg.len() < size => {
                    return Err(Error::TooSmall {
                        actual: seg.len() as u64,
                        expected: size as u64,
                    });
                }
                Ok(seg) => return Ok((seg, false)),
                // Unlinked between our create and open attempts: try again.
                Err(Error::NotFound { .. }) if !deadline.has_passed() => {}
                // Left by an initializer that died: remove it and create it again. Another
                // caller may be doing the same (then it holds the creator byte, and our
                // reclaim fails): look again a few times, while it re-creates the name.
                Err(e @ (Error::CreatorDied { .. } | Error::NotReady { .. })) if !self.raw => {
                    let total = total_size(size, false)? as u64;
                    if reclaim_unfinished(name, total, &self.trusted, self.mode) {
                        continue;
                    }
                    retries += 1;
                    if matches!(e, Error::NotReady { .. }) || retries > RECLAIM_RETRIES {
                        return Err(e);
                    }
                    std::thread::sleep(MAX_POLL_INTERVAL);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An anonymous segment of `size` data bytes on `memfd_create(2)`, sealed against
    /// shrinking and growing (`F_SEAL_SHRINK | F_SEAL_GROW`), so no process it is passed to
    /// can truncate it under us. Nothing is named, so nothing can leak; hand its descriptor
    /// ([`AsFd`](std::os::fd::AsFd)) to a child at spawn or over a Unix socket, and map it there with
    /// [`from_fd`](Self::from_fd).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`]; [`Error::HugePagesUnavailable`]; [`Error::Sys`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self, size: usize) -> Result<Segment> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        let mut flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        let mut total = total_size(size, self.raw)?;
        if self.huge_pages {
            if !huge_pages_reserved() {
                return Err(Error::HugePagesUnavailable);
            }
            flags |= MFdFlags::MFD_HUGETLB;
            total = total.div_ceil(2 << 20) * (2 << 20);
        }
        let fd = memfd_create(c"ipcraft-shm", flags).map_err(Error::sys("memfd_create"))?;
        nix::unistd::ftruncate(&fd, to_off(total)?).map_err(Error::sys("ftruncate"))?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        )
        .map_err(Error::sys("fcntl(F_ADD_SEALS)"))?;
        let map = self.map_rw(&fd, total as u64)?;
        let info = if self.raw {
            None
        } else {
            let h = header_of(&map)?;
            h.begin(size as u64, std::process::id(), 0, self.tag);
            h.publish();
            Some(h.inspect(total as u64, "<memfd>")?)
        };
        let info = info.and_then(|f| match f {
            Found::Ready(i) => Some(i),
            _ => None,
        });
        Ok(Segment::assemble(map, fd, None, false, true, self.raw, info).with_memfd())
    }

    /// Map an anonymous segment received from another process (at spawn, or over a Unix
    /// socket), after checking that it is sealed against shrinking and growing, that it holds
    /// at least `min_len` data bytes, and (unless [raw](Self::raw)) its ipcraft header. A
    /// segment sealed against writing (`F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE`) is mapped
    /// read-only.
    ///
    /// # Errors
    ///
    /// [`Error::Unsealed`] for a descriptor that is not a memfd or lacks the seals;
    /// [`Error::TooSmall`]; the header errors of [`open`](Self::open); [`Error::Sys`].
    pub fn from_fd(&self, fd: OwnedFd, min_len: usize) -> Result<Segment> {
        let seals = match fcntl(&fd, FcntlArg::F_GET_SEALS) {
            Ok(bits) => SealFlag::from_bits_truncate(bits),
            // Not a memfd (or shmem file): it cannot be sealed at all.
            Err(Errno::EINVAL) => SealFlag::empty(),
            Err(e) => return Err(Error::sys("fcntl(F_GET_SEALS)")(e)),
        };
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(Error::Unsealed {
                missing: "F_SEAL_SHRINK",
            });
        }
        if !seals.contains(SealFlag::F_SEAL_GROW) {
            return Err(Error::Unsealed {
                missing: "F_SEAL_GROW",
            });
        }
        let read_only = self.read_only
            || seals.intersects(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_FUTURE_WRITE);
        let size = file_size(&fd)?;
        let needed = total_size(min_len, self.raw)? as u64;
        if size < needed {
            return Err(Error::TooSmall {
                actual: size,
                expected: needed,
            });
        }
        let opts = Self { read_only, ..*self };
        let map = opts.map(&fd, size)?;
        let info = if self.raw {
            None
        } else {
            match header_of(&map)?.inspect(size, "<memfd>")? {
                Found::Ready(info) if info.data_len >= min_len as u64 => {
                    check_tag(info.tag, self.tag)?;
                    Some(info)
                }
                Found::Ready(info) => {
                    return Err(Error::TooSmall {
                        actual: info.data_len,
                        expected: min_len as u64,
                    });
                }
                _ => {
                    return Err(Error::NotIpcraft {
                        name: "<memfd>".to_owned(),
                    });
                }
            }
        };
        Ok(Segment::assemble(map, fd, None, false, !read_only, self.raw, info).with_memfd())
    }

    pub(crate) fn map(&self, fd: &OwnedFd, size: u64) -> Result<Mapping> {
        if self.read_only {
            self.map_ro(fd, size)
        } else {
            self.map_rw(fd, size)
        }
    }

    fn mmap_options(&self, size: u64) -> Result<memmap2::MmapOptions> {
        let len = usize::try_from(size).map_err(|_| Error::TooLarge {
            requested: size,
            available: usize::MAX as u64,
        })?;
        let mut o = memmap2::MmapOptions::new();
        o.len(len);
        if self.populate {
            o.populate();
        }
        Ok(o)
    }

    pub(crate) fn map_rw(&self, fd: &OwnedFd, size: u64) -> Result<Mapping> {
        let raw = self
            .mmap_options(size)?
            .map_raw(fd)
            .map_err(|e| Error::from_io("mmap", &e))?;
        self.finish_map(raw)
    }

    fn map_ro(&self, fd: &OwnedFd, size: u64) -> Result<Mapping> {
        let raw = self
            .mmap_options(size)?
            .map_raw_read_only(fd)
            .map_err(|e| Error::from_io("mmap", &e))?;
        self.finish_map(raw)
    }

    fn finish_map(&self, raw: memmap2::MmapRaw) -> Result<Mapping> {
        if self.lock {
            raw.lock().map_err(|e| Error::from_io("mlock", &e))?;
        }
        Ok(Mapping::new(raw))
    }
}
