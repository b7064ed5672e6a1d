//! [`ByteLocks`]: open-file-description locks on single bytes of a segment's file, the
//! kernel-backed liveness signal for objects that live in shared memory.

use crate::error::{Error, Result};
use crate::segment::Segment;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Open-file-description (OFD) locks on single bytes of a segment's file, held through a
/// description of their own.
///
/// The kernel drops an OFD lock when the last descriptor of its open file description is
/// closed, which includes the process dying by any signal: a byte that is locked means a
/// live holder, at every instant, with no heartbeat to miss. Objects in shared memory use
/// this to claim a role (a byte per role or per participant) and to tell whether the
/// process behind a claim still lives, without trusting anything a peer wrote into the
/// segment.
///
/// Each `ByteLocks` opens a **new** open file description of the segment
/// (`/proc/self/fd/N`), so two `ByteLocks` in one process conflict with each other exactly
/// as two processes would; a descriptor inherited over `fork` (or duplicated) shares its
/// description and its locks. Locked bytes need not lie inside the file: any offset up to
/// `i64::MAX` can be locked, so protocols can keep their lock bytes out of the data.
///
/// See `fcntl(2)`, "Open file description locks".
///
/// # Examples
///
/// ```
/// use ipcraft_shm::{ByteLocks, Segment};
///
/// let seg = Segment::anonymous(4096)?;
/// let mine = ByteLocks::new(&seg)?;
/// let theirs = ByteLocks::new(&seg)?; // in real use: another process
/// assert!(mine.try_lock(1 << 40)?);
/// assert!(theirs.is_locked_by_other(1 << 40)?);
/// assert!(!theirs.try_lock(1 << 40)?);
/// drop(mine); // or the process dies
/// assert!(!theirs.is_locked_by_other(1 << 40)?);
/// # Ok::<(), ipcraft_shm::Error>(())
/// ```
pub struct ByteLocks {
    fd: OwnedFd,
}

fn flock(kind: i32, byte: u64) -> Result<nix::libc::flock> {
    let start = i64::try_from(byte).map_err(|_| Error::sys("fcntl")(Errno::EINVAL))?;
    Ok(nix::libc::flock {
        l_type: kind as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: start,
        l_len: 1,
        l_pid: 0,
    })
}

impl ByteLocks {
    /// Open a new description of `seg`'s file, read-write, close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `open` (for example `EACCES` on a segment this process may only
    /// read: write locks need a writable description).
    pub fn new(seg: &Segment) -> Result<Self> {
        let path = format!("/proc/self/fd/{}", seg.as_raw_fd());
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(Error::sys_on("open", &path))?;
        Ok(Self { fd })
    }

    /// Take the write lock on `byte` without waiting: `true` if this description holds it
    /// now (again, if it already did), `false` if another description holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl(F_OFD_SETLK)` (`EINVAL` for `byte > i64::MAX`, `ENOLCK`).
    #[doc(alias = "F_OFD_SETLK")]
    pub fn try_lock(&self, byte: u64) -> Result<bool> {
        let lock = flock(nix::libc::F_WRLCK, byte)?;
        match fcntl(&self.fd, FcntlArg::F_OFD_SETLK(&lock)) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(e) => Err(Error::sys("fcntl(F_OFD_SETLK)")(e)),
        }
    }

    /// Release this description's lock on `byte` (nothing happens if it holds none).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl(F_OFD_SETLK)`.
    pub fn unlock(&self, byte: u64) -> Result<()> {
        let lock = flock(nix::libc::F_UNLCK, byte)?;
        fcntl(&self.fd, FcntlArg::F_OFD_SETLK(&lock)).map_err(Error::sys("fcntl(F_OFD_SETLK)"))?;
        Ok(())
    }

    /// Whether another open file description (another process, or another `ByteLocks`)
    /// holds a lock on `byte` now. Locks of this description do not count.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl(F_OFD_GETLK)`.
    #[doc(alias = "F_OFD_GETLK")]
    pub fn is_locked_by_other(&self, byte: u64) -> Result<bool> {
        let mut probe = flock(nix::libc::F_WRLCK, byte)?;
        fcntl(&self.fd, FcntlArg::F_OFD_GETLK(&mut probe))
            .map_err(Error::sys("fcntl(F_OFD_GETLK)"))?;
        Ok(probe.l_type != nix::libc::F_UNLCK as i16)
    }
}

impl AsFd for ByteLocks {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for ByteLocks {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Give up the description, with the locks it holds: they stay held while the descriptor (or
/// a process it is handed to) keeps it open.
impl From<ByteLocks> for OwnedFd {
    fn from(locks: ByteLocks) -> Self {
        locks.fd
    }
}

/// Adopt a description (received from the process that made it with [`ByteLocks::new`], with
/// the locks it holds), checked to be a regular file open for reading and writing (`fstat`,
/// `F_GETFL`), which write locks need.
///
/// # Errors
///
/// [`Error::NotLockable`] with the descriptor handed back; [`Error::Sys`] from `fstat` or
/// `fcntl`.
impl TryFrom<OwnedFd> for ByteLocks {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let st = nix::sys::stat::fstat(&fd).map_err(Error::sys("fstat"))?;
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(Error::sys("fcntl(F_GETFL)"))?;
        let rw = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_RDWR;
        if st.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG || !rw {
            return Err(Error::NotLockable { fd });
        }
        Ok(Self { fd })
    }
}

impl fmt::Debug for ByteLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteLocks")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}
