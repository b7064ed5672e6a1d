//! The name a creator owns, and removes when its [`Segment`](crate::Segment) goes.

use crate::segment::SHM_DIR;
use ipcraft_core::PosixName;
use nix::sys::mman::shm_unlink;
use nix::sys::stat::fstat;
use std::os::fd::OwnedFd;

/// A creator's segment name, unlinked on drop if it still names the same object (a name can
/// be unlinked and reused by someone else meanwhile): same device and inode as the creator's
/// descriptor had.
#[derive(Debug)]
pub(crate) struct OwnedName {
    name: PosixName,
    /// `(st_dev, st_ino)` of the creator's object; `None` if `fstat` failed, and then the
    /// name is never removed (it cannot be shown to be ours).
    id: Option<(u64, u64)>,
    /// Set by `persist`: leave the name.
    keep: bool,
}

impl OwnedName {
    pub(crate) fn new(name: PosixName, fd: &OwnedFd) -> Self {
        let id = fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
        Self {
            name,
            id,
            keep: false,
        }
    }

    /// Leave the name in place on drop.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for OwnedName {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let path = format!("{SHM_DIR}{}", self.name.as_str());
        let now = nix::sys::stat::stat(path.as_str())
            .ok()
            .map(|st| (st.st_dev, st.st_ino));
        if now.is_some() && now == self.id {
            let _ = shm_unlink(self.name.as_c_str());
        }
    }
}
