//! Segments left on the machine: [`list`] and [`remove_stale`]; and the reclaiming of a name
//! whose initializer died, for `open_or_create`.

use crate::creator::{creator_alive, lock_out_creators};
use crate::error::{Error, Result};
use crate::header::{Fields, Found, HEADER_SIZE};
use crate::segment::{SHM_DIR, open_existing};
use crate::temp::{is_temp, temp_creator_pid};
use ipcraft_core::{PosixName, TrustedOwners};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{Whence, lseek};
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
    /// For an ipcraft segment (or temporary), what its header and creator lock say.
    pub ipcraft: Option<IpcraftState>,
    /// Set for what an ipcraft creator left unfinished rather than a segment of its own.
    pub leftover: Option<Leftover>,
}

/// What is known of an ipcraft segment found by [`list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpcraftState {
    /// The creator's pid, as recorded (informative only: pids are recycled; 0 if unknown).
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

/// Something found by [`list`] that is not a user's segment, but what a creator left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leftover {
    /// A temporary (`/.ipcraft-tmp-PID-RANDOM`): a segment a creator is still building under
    /// a private name before moving it to its own, or, once its creator lock is free, what a
    /// creator killed while building it left. It was never visible under a user's name, so
    /// nothing can have used it: [`remove_stale`] removes it once its creator is gone.
    Temporary,
    /// An object with no header (its first 64 bytes zero) that no ipcraft creator holds: what
    /// an older ipcraft (before segments were built under a temporary name) left when its
    /// initializer was killed between sizing the
    /// object and writing the header, **or** a foreign object (made by another program, or
    /// a [raw](crate::SegmentOptions::raw) segment) that happens to start with 64 zero
    /// bytes. Nothing tells the two apart, so [`remove_stale`] leaves it: remove it with
    /// [`unlink`](crate::unlink) once you know it is yours, or let
    /// [`open_or_create`](crate::SegmentOptions::open_or_create) of its name reclaim it (it
    /// does when the object has exactly the size it would create and holds nothing but
    /// zeros).
    Headerless,
}

impl SegmentInfo {
    /// What [`remove_stale`] removes: an ipcraft segment whose creator is provably dead and
    /// that was not persisted, or a [temporary](Leftover::Temporary) whose creator is dead.
    pub fn is_stale(&self) -> bool {
        if self.leftover == Some(Leftover::Headerless) {
            return false;
        }
        self.ipcraft
            .is_some_and(|s| !s.creator_alive && !s.persisted)
    }
}

/// Every shared memory object in `/dev/shm` this process can see, with size, owner and, for
/// ipcraft segments, whether their creator is alive; ipcraft's temporaries and headerless
/// leftovers are marked as such ([`SegmentInfo::leftover`]). Objects that vanish while being
/// listed are skipped; named semaphores (`sem.*`) are listed as non-ipcraft objects.
///
/// # Errors
///
/// [`Error::Sys`] when `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<SegmentInfo>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::from_io("opendir", &e))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = format!("/{}", entry.file_name().to_string_lossy());
        let (ipcraft, leftover) = inspect(&name, meta.len());
        out.push(SegmentInfo {
            ipcraft,
            leftover,
            name,
            size: meta.len(),
            uid: meta.uid(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove the ipcraft segments whose creator is provably dead and that were not persisted,
/// and the temporaries of creators killed while building a segment; returns their names.
/// Never removes a segment or temporary whose creator is alive, a persisted segment, or
/// anything that is not provably ipcraft's (so not a [`Leftover::Headerless`] object).
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
fn inspect(name: &str, size: u64) -> (Option<IpcraftState>, Option<Leftover>) {
    let temp = is_temp(name);
    if size < HEADER_SIZE as u64 && !temp {
        return (None, None);
    }
    let Some(fd) = PosixName::new(name)
        .ok()
        .and_then(|posix| open_existing(&posix, OFlag::O_RDONLY).ok())
    else {
        return (None, None);
    };
    match state_of(&fd, name) {
        Some(Look::Segment(state)) if temp => (Some(state), Some(Leftover::Temporary)),
        Some(Look::Segment(state)) => (Some(state), None),
        Some(Look::Headerless { creator_alive }) if temp => (
            Some(IpcraftState {
                creator_pid: temp_creator_pid(name).unwrap_or(0),
                creator_alive,
                persisted: false,
                ready: false,
            }),
            Some(Leftover::Temporary),
        ),
        Some(Look::Headerless {
            creator_alive: false,
        }) if size > HEADER_SIZE as u64 => (None, Some(Leftover::Headerless)),
        _ => (None, None),
    }
}

/// What a look at an object's header and creator lock found.
enum Look {
    /// An ipcraft header (initializing or ready).
    Segment(IpcraftState),
    /// No header: fewer bytes than one, or 64 zero bytes.
    Headerless { creator_alive: bool },
}

fn state_of(fd: &OwnedFd, name: &str) -> Option<Look> {
    let alive = creator_alive(fd).ok()?;
    let size = u64::try_from(nix::sys::stat::fstat(fd).ok()?.st_size).ok()?;
    let mut bytes = [0u8; HEADER_SIZE];
    if size < HEADER_SIZE as u64 {
        return Some(Look::Headerless {
            creator_alive: alive,
        });
    }
    if nix::sys::uio::pread(fd, &mut bytes, 0).ok()? != HEADER_SIZE {
        return None;
    }
    let state = |creator_pid, persisted, ready| {
        Some(Look::Segment(IpcraftState {
            creator_pid,
            creator_alive: alive,
            persisted,
            ready,
        }))
    };
    match Fields::from_bytes(&bytes).classify(size, name) {
        Ok(Found::Ready(h)) => state(h.creator_pid, h.persisted, true),
        Ok(Found::Initializing) => state(temp_creator_pid(name).unwrap_or(0), false, false),
        Ok(Found::Fresh) => Some(Look::Headerless {
            creator_alive: alive,
        }),
        Err(_) => None,
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
    let stale = match state_of(&fd, name) {
        Some(Look::Segment(s)) => !s.persisted,
        // A temporary whose creator had not written its header: its lock is ours now.
        Some(Look::Headerless { .. }) => is_temp(name),
        None => false,
    };
    stale && unlink_if_same(&fd, &posix)
}

/// For `open_or_create`: remove `name` if it is what an initializer that died left, so that
/// the name can be created again. Provably so, with no creator lock held (we then hold its
/// byte, so no creator can start on it meanwhile), the owner trusted as an open requires, and
/// the name still leading to the object checked:
/// - an initializing header: only ipcraft writes one, and only its creator publishes it;
/// - an empty object (size 0, as an older ipcraft left one killed before `ftruncate`): it
///   holds nothing;
/// - an object of exactly `total` bytes (what this call would create) with no header that
///   holds nothing but zeros: what an older ipcraft left one killed between `ftruncate` and
///   the header. A foreign object would have to hold only zeros too, under a name the caller
///   keeps for an ipcraft segment of this size: removing it loses no data.
pub(crate) fn reclaim_unfinished(
    name: &str,
    total: u64,
    trusted: &TrustedOwners,
    mode: u32,
) -> bool {
    let Ok(posix) = PosixName::new(name) else {
        return false;
    };
    let Ok(fd) = open_existing(&posix, OFlag::O_RDWR) else {
        return false;
    };
    if trusted
        .check(&fd, "shared memory segment", name, Some(mode))
        .is_err()
    {
        return false;
    }
    if !lock_out_creators(&fd) {
        return false;
    }
    let Ok(st) = nix::sys::stat::fstat(&fd) else {
        return false;
    };
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let unfinished = match state_of(&fd, name) {
        Some(Look::Segment(s)) => !s.ready,
        Some(Look::Headerless { .. }) => size == 0 || (size == total && all_zero(&fd, size)),
        None => false,
    };
    unfinished && unlink_if_same(&fd, &posix)
}

/// Whether every byte of the object is zero: holes (never written) are skipped with
/// `SEEK_DATA`/`SEEK_HOLE`, and only data ranges are read.
fn all_zero(fd: &OwnedFd, size: u64) -> bool {
    let Ok(end) = i64::try_from(size) else {
        return false;
    };
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0i64;
    while pos < end {
        let data = match lseek(fd, pos, Whence::SeekData) {
            Ok(at) => at,
            Err(Errno::ENXIO) => return true, // only holes after `pos`
            Err(_) => pos,                    // no SEEK_DATA: read everything
        };
        let hole = lseek(fd, data, Whence::SeekHole).unwrap_or(end).min(end);
        let mut at = data;
        while at < hole {
            let want = usize::try_from(hole - at).map_or(buf.len(), |n| n.min(buf.len()));
            match nix::sys::uio::pread(fd, &mut buf[..want], at) {
                Ok(0) => return true, // shrank meanwhile: nothing more
                Ok(n) if buf[..n].iter().all(|&b| b == 0) => at += n as i64,
                _ => return false,
            }
        }
        pos = hole.max(data + 1);
    }
    true
}

/// Unlink `name` if it still leads to the object open as `fd` (same device and inode).
fn unlink_if_same(fd: &OwnedFd, name: &PosixName) -> bool {
    let path = format!("{SHM_DIR}{}", name.as_str());
    let same = match (
        nix::sys::stat::fstat(fd),
        nix::sys::stat::stat(path.as_str()),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    same && crate::unlink(name.as_str()).is_ok()
}
