//! [`Segment`]: a mapped shared memory object, named (`shm_open`) or anonymous (`memfd`).

use crate::creator::{creator_alive, self_start_time, take_creator_lock};
use crate::error::{Error, Result};
use crate::header::{Found, HEADER_SIZE, Header, HeaderInfo};
use crate::owned_name::OwnedName;
use crate::sys::{AtomicData, Mapping, Region};
use ipcraft_core::{Deadline, PosixName, TrustedOwners};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{Mode, fchmod, fstat};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The mode of a named segment made by [`Segment::create`]: read and write for the owner.
pub const DEFAULT_MODE: u32 = 0o600;
/// How long [`Segment::open`] waits, by default, for a segment another process is still
/// initializing.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Longest pause between two looks at a segment that is not ready yet.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(10);

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

    /// Create a named segment with `size` bytes of data, zero-filled: `shm_open(3)` with
    /// `O_CREAT | O_EXCL`, the exact mode, `ftruncate`, then a shared mapping.
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
    /// [`Error::CreatorDied`]; [`Error::Untrusted`] when its owner is not trusted
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
                    // Truncated but no header written, and nobody holds the creator lock:
                    // a foreign zero-filled segment, or a creator that died before writing.
                    Found::Fresh if !creator_alive(&fd)? => {
                        return Err(Error::NotIpcraft {
                            name: name.to_owned(),
                        });
                    }
                    Found::Initializing | Found::Fresh => {}
                }
            }
            // Size 0: a creator between shm_open and ftruncate, or one that died there; only
            // the deadline can tell.
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
    /// the [timeout](Self::timeout)) and see the initialized state. If the initializer dies
    /// before publishing, the others get [`Error::CreatorDied`] instead of waiting forever.
    /// Returns the segment and whether this call created it.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open), and whatever `init` returns
    /// (the half-made segment is then removed).
    pub fn open_or_create(
        &self,
        name: &str,
        size: usize,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<(Segment, bool)> {
        let mut init = Some(init);
        let deadline = Deadline::after(self.timeout);
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
                Err(e) => return Err(e),
            }
        }
    }

    /// An anonymous segment of `size` data bytes on `memfd_create(2)`, sealed against
    /// shrinking and growing (`F_SEAL_SHRINK | F_SEAL_GROW`), so no process it is passed to
    /// can truncate it under us. Nothing is named, so nothing can leak; hand its descriptor
    /// ([`AsFd`]) to a child at spawn or over a Unix socket, and map it there with
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

    fn create_with(
        &self,
        name: &str,
        size: usize,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let posix = PosixName::new(name)?;
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if self.mode & !0o777 != 0 {
            return Err(Error::BadMode { mode: self.mode });
        }
        let total = total_size(size, self.raw)?;
        let available = shm_available()?;
        if total as u64 > available {
            return Err(Error::TooLarge {
                requested: total as u64,
                available,
            });
        }
        let mode = Mode::from_bits_truncate(self.mode);
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = match shm_open(posix.as_c_str(), flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => {
                return Err(Error::AlreadyExists {
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(Error::sys_on("shm_open", name)(e)),
        };
        // The name is ours from here. Until the Segment exists, remove it by name if a step
        // fails (nobody else can have unlinked and re-created it: only its creator removes a
        // name, and that is us); after that, the Segment's Drop removes it, checking first
        // that the name still leads to this object.
        let map = match self.prepare_created(&fd, name, size, total) {
            Ok(map) => map,
            Err(e) => {
                let _ = shm_unlink(posix.as_c_str());
                return Err(e);
            }
        };
        let mut seg = Segment::assemble(map, fd, Some(posix), true, true, self.raw, None);
        init(&seg)?;
        if !self.raw {
            let h = header_of(&seg.map)?;
            h.publish();
            if let Found::Ready(info) = h.inspect(total as u64, name)? {
                seg.info = Some(info);
            }
        }
        Ok(seg)
    }

    /// Set up a freshly created object: exact mode, creator lock, size, mapping, header.
    fn prepare_created(
        &self,
        fd: &OwnedFd,
        name: &str,
        size: usize,
        total: usize,
    ) -> Result<Mapping> {
        fchmod(fd, Mode::from_bits_truncate(self.mode)).map_err(Error::sys_on("fchmod", name))?;
        if !self.raw {
            // Held for as long as the descriptor is open: the kernel drops it when this
            // process dies, which is how others tell a live creator from a dead one.
            take_creator_lock(fd)?;
        }
        nix::unistd::ftruncate(fd, to_off(total)?).map_err(Error::sys_on("ftruncate", name))?;
        let map = self.map_rw(fd, total as u64)?;
        if !self.raw {
            header_of(&map)?.begin(size as u64, std::process::id(), self_start_time(), self.tag);
        }
        Ok(map)
    }

    fn map(&self, fd: &OwnedFd, size: u64) -> Result<Mapping> {
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

    fn map_rw(&self, fd: &OwnedFd, size: u64) -> Result<Mapping> {
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
    map: Mapping,
    fd: OwnedFd,
    name: Option<PosixName>,
    owner: bool,
    persisted: bool,
    writable: bool,
    memfd: bool,
    raw: bool,
    data_len: usize,
    info: Option<HeaderInfo>,
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
    fn assemble(
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

    fn with_memfd(mut self) -> Self {
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

fn check_tag(found: u64, expected: u64) -> Result<()> {
    if expected != 0 && found != expected {
        return Err(Error::WrongTag { found, expected });
    }
    Ok(())
}

fn total_size(data: usize, raw: bool) -> Result<usize> {
    let header = if raw { 0 } else { HEADER_SIZE };
    data.checked_add(header).ok_or(Error::TooLarge {
        requested: u64::MAX,
        available: 0,
    })
}

fn to_off(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::TooLarge {
        requested: n as u64,
        available: i64::MAX as u64,
    })
}

fn file_size(fd: &OwnedFd) -> Result<u64> {
    let st = fstat(fd).map_err(Error::sys("fstat"))?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// Bytes free in the file system behind `/dev/shm`.
fn shm_available() -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(SHM_DIR).map_err(Error::sys_on("statvfs", SHM_DIR))?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

fn huge_pages_reserved() -> bool {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}
