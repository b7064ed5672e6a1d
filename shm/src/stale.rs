//! Segments left on the machine: [`list`] and [`remove_stale`].

use crate::creator::{creator_alive, lock_out_creators};
use crate::error::{Error, Result};
use crate::header::{Fields, Found, HEADER_SIZE};
use crate::segment::open_existing;
use ipcraft_core::PosixName;
use nix::fcntl::OFlag;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

/// A shared memory object found in `/dev/shm`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Its name, with the leading `/`.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The owner's uid.
    pub uid: u32,
    /// For an ipcraft segment, what its header and creator lock say.
    pub ipcraft: Option<IpcraftState>,
}

/// What is known of an ipcraft segment found by [`list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpcraftState {
    /// The creator's pid, as recorded (informative only: pids are recycled).
    pub creator_pid: u32,
    /// Whether the creator still holds the segment's creator lock. The kernel drops the lock
    /// when the creator's descriptor closes, including when the process dies, so `false`
    /// proves the creator is gone (or dropped the segment after persisting it).
    pub creator_alive: bool,
    /// Whether the creator persisted it on purpose.
    pub persisted: bool,
    /// Whether it was published as ready.
    pub ready: bool,
}

impl SegmentInfo {
    /// An ipcraft segment whose creator is provably dead, that was not persisted: what
    /// [`remove_stale`] removes.
    pub fn is_stale(&self) -> bool {
        self.ipcraft
            .is_some_and(|s| !s.creator_alive && !s.persisted)
    }
}

/// Every shared memory object in `/dev/shm` this process can see, with size, owner and, for
/// ipcraft segments, whether their creator is alive. Objects that vanish while being
/// listed are skipped; named semaphores (`sem.*`) are listed as non-ipcraft objects.
///
/// # Errors
///
/// [`Error::Sys`] when `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<SegmentInfo>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| Error::from_io("opendir", &e))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = format!("/{}", entry.file_name().to_string_lossy());
        out.push(SegmentInfo {
            ipcraft: inspect(&name, meta.len()),
            name,
            size: meta.len(),
            uid: meta.uid(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove the ipcraft segments whose creator is provably dead and that were not persisted;
/// returns their names. Never removes a segment whose creator is alive, a persisted one, or
/// anything that is not an ipcraft segment.
///
/// # Errors
///
/// [`Error::Sys`] when `/dev/shm` cannot be read. Segments that cannot be removed (another
/// user's) are skipped.
pub fn remove_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for info in list()? {
        if !info.is_stale() {
            continue;
        }
        if remove_if_stale(&info.name) {
            removed.push(info.name);
        }
    }
    Ok(removed)
}

/// Open `name` read-only and read its header (with `pread`: mapping a stranger's object
/// would expose us to SIGBUS if it shrinks meanwhile) and creator lock.
fn inspect(name: &str, size: u64) -> Option<IpcraftState> {
    if size < HEADER_SIZE as u64 {
        return None;
    }
    let posix = PosixName::new(name).ok()?;
    let fd = open_existing(&posix, OFlag::O_RDONLY).ok()?;
    state_of(&fd, name)
}

fn state_of(fd: &OwnedFd, name: &str) -> Option<IpcraftState> {
    let mut bytes = [0u8; HEADER_SIZE];
    if nix::sys::uio::pread(fd, &mut bytes, 0).ok()? != HEADER_SIZE {
        return None;
    }
    let size = u64::try_from(nix::sys::stat::fstat(fd).ok()?.st_size).ok()?;
    let alive = creator_alive(fd).ok()?;
    match Fields::from_bytes(&bytes).classify(size, name) {
        Ok(Found::Ready(h)) => Some(IpcraftState {
            creator_pid: h.creator_pid,
            creator_alive: alive,
            persisted: h.persisted,
            ready: true,
        }),
        Ok(Found::Initializing) => Some(IpcraftState {
            creator_pid: 0,
            creator_alive: alive,
            persisted: false,
            ready: false,
        }),
        _ => None,
    }
}

/// Remove `name` if it is still stale, without ever removing a live creator's object: take
/// the creator lock's byte for writing (which fails while any creator holds its read lock,
/// and keeps a new one from taking it), re-check, and unlink only if the name still leads to
/// the very object checked.
fn remove_if_stale(name: &str) -> bool {
    let Ok(posix) = PosixName::new(name) else {
        return false;
    };
    let Ok(fd) = open_existing(&posix, OFlag::O_RDWR) else {
        return false;
    };
    if !lock_out_creators(&fd) {
        return false;
    }
    if state_of(&fd, name).is_none_or(|s| s.persisted) {
        return false;
    }
    let path = format!("/dev/shm{name}");
    let same = match (
        nix::sys::stat::fstat(&fd),
        nix::sys::stat::stat(path.as_str()),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    same && crate::unlink(name).is_ok()
}
