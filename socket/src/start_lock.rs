//! The lock file that serializes the starters of
//! [`bind_reclaiming_stale`](crate::UnixListener::bind_reclaiming_stale), removed when a
//! starter is done.
//!
//! `PATH.lock` is created if missing, locked (`flock(2)`, exclusive), and removed by the
//! holder before it unlocks. A starter that waited on the lock may so wake up holding a file
//! that no longer has the name (the classic unlink-while-someone-waits race); a newcomer
//! meanwhile creates a fresh `PATH.lock` and locks that. Two starters would then both hold
//! "the" lock. So after locking, a starter checks that `PATH.lock` still names the very file
//! it locked (same device and inode) and otherwise starts again with the file there now.
//!
//! Why that excludes: the name changes only when a holder of the named file removes it
//! (while it holds the lock) or when a starter creates it (when it is missing). A starter
//! that proceeds has seen the name lead to the file it holds; until it removes that name,
//! any other starter that locks a file either locks that same file (and waits for us) or
//! locks a file the name no longer leads to (and starts again).
//!
//! A starter killed while holding the lock leaves `PATH.lock` behind (the kernel drops the
//! `flock`): the next starter locks it, finds it still named, and removes it when done.

use crate::error::{Error, Result};
use ipcraft_core::SysError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many times a starter starts again after locking a file that lost its name; each
/// time means another starter finished meanwhile, so this is never reached in practice.
const ATTEMPTS: u32 = 1000;

/// The held start lock: `PATH.lock` locked by us, and still named so. Removed, then
/// unlocked, on drop.
pub(crate) struct StartLock {
    lock: Flock<File>,
    path: PathBuf,
}

impl StartLock {
    /// Lock `path` (creating it, mode 0600, if missing), waiting for the starter holding it.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        let on = |op: &'static str, errno: Errno| {
            Error::Sys(SysError::new(op, errno).on(path.display()))
        };
        for _ in 0..ATTEMPTS {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                // Never follow a symbolic link planted at the name (it may be in /tmp).
                .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| Error::Sys(SysError::from_io("open", &e).on(path.display())))?;
            let lock =
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| on("flock", e))?;
            if names(path, &lock) {
                hook::reached("start-locked");
                return Ok(Self {
                    lock,
                    path: path.to_path_buf(),
                });
            }
            // The starter before us removed it (and another may have made a new one):
            // unlock it and take the one named now.
        }
        Err(on("flock", Errno::EAGAIN))
    }
}

/// Whether `path` names the file open as `file` (not a link: `symlink_metadata`).
fn names(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

impl Drop for StartLock {
    fn drop(&mut self) {
        // Still locked (the Flock field is dropped after this): only the holder removes the
        // name, and it still leads to our file unless someone outside the protocol changed it.
        if names(&self.path, &self.lock) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A test-only hook: with `IPCRAFT_SOCKET_TEST_STOP_AT=start-locked` in a debug build, a
/// starter stops while it holds the start lock (printing `IPCRAFT-SOCKET-STOPPED-AT
/// start-locked`), so that a test can kill it there. Release builds compile it to nothing.
/// Not an API.
mod hook {
    pub(super) fn reached(step: &str) {
        ipcraft_core::test_hook::stop_if(
            "IPCRAFT_SOCKET_TEST_STOP_AT",
            "IPCRAFT-SOCKET-STOPPED-AT",
            step,
        );
    }
}
