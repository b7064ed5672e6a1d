//! Segments left on the machine: [`list`] and [`remove_stale`].

use crate::error::{Error, Result};
use crate::header::{Found, HEADER_SIZE};
use crate::segment::{SegmentOptions, creator_alive};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

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
        // Check again right before removing: a creator may have appeared since.
        if inspect(&info.name, info.size).is_some_and(|s| !s.creator_alive && !s.persisted)
            && crate::unlink(&info.name).is_ok()
        {
            removed.push(info.name);
        }
    }
    Ok(removed)
}

/// Open `name` read-only and read its header and creator lock, if it is an ipcraft segment.
fn inspect(name: &str, size: u64) -> Option<IpcraftState> {
    if size < HEADER_SIZE as u64 {
        return None;
    }
    // Raw: map the bytes as they are, then read the header ourselves (an open as ipcraft
    // would wait for segments still initializing).
    let seg = SegmentOptions::new()
        .raw(true)
        .read_only(true)
        .timeout(Duration::ZERO)
        .open(name)
        .ok()?;
    let alive = creator_alive(&seg).ok()?;
    let header = crate::segment::header_of_segment(&seg).ok()?;
    match header.inspect(size, name) {
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
