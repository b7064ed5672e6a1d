//! How a named segment is created, so that its name only ever leads to a complete object.
//!
//! 1. `shm_open` a private temporary name ([`crate::temp`]) with `O_CREAT | O_EXCL` and the
//!    exact mode;
//! 2. take the creator lock (an OFD lock: it belongs to the open file description, so it
//!    stays with the object through the rename, and the kernel drops it when we die);
//! 3. `ftruncate`, map, write the header (state: initializing);
//! 4. move the object to the user's name with `renameat2(RENAME_NOREPLACE)`: `EEXIST` means
//!    the name is taken (as `O_EXCL` said before); where `renameat2` is refused (`EINVAL`,
//!    `ENOSYS`: an old kernel, a file system without it), `link(2)` then `unlink(2)` of the
//!    temporary, equally atomic (a link never replaces a name);
//! 5. run `init` and publish the header as ready.
//!
//! A creator killed before step 4 leaves only its temporary (its lock free: `remove_stale`
//! removes it); killed after it, an initializing header whose lock is free: `CreatorDied` to
//! `open`, reclaimed by `open_or_create`, removed by `remove_stale`.
//!
//! A cleaner (`remove_stale`) may remove a temporary in the instant between its `shm_open`
//! and its lock, when it looks dead: then our lock fails (the cleaner holds its byte) or the
//! rename finds no temporary (`ENOENT`), and creation starts again under a new name.

use crate::creator::{release_creator_lock, self_start_time, take_creator_lock};
use crate::error::{Error, Result};
use crate::header::Found;
use crate::options::SegmentOptions;
use crate::owned_name::OwnedName;
use crate::segment::{SHM_DIR, Segment, header_of, shm_available, to_off, total_size};
use crate::sys::Mapping;
use crate::temp::temp_name;
use ipcraft_core::PosixName;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::{Mode, fchmod};
use std::os::fd::OwnedFd;

/// How many times creation starts again under a new temporary name (a name someone took, or
/// a temporary a cleaner removed) before it gives up with the last error.
const ATTEMPTS: u32 = 16;

/// Why one attempt did not place the object.
enum Attempt {
    /// Start again under a new temporary name; the error if that was the last attempt.
    Again(Error),
    /// Give up with this error.
    Fail(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Self::Fail(e)
    }
}

impl SegmentOptions {
    pub(crate) fn create_with(
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
        // A cheap early answer when the name is taken (the rename below is what decides).
        if path_exists(&posix) {
            return Err(already_exists(name));
        }
        let mut attempt = 1;
        let (fd, map) = loop {
            match self.build_and_place(&posix, size, total) {
                Ok(built) => break built,
                Err(Attempt::Again(_)) if attempt < ATTEMPTS => attempt += 1,
                Err(Attempt::Again(e) | Attempt::Fail(e)) => return Err(e),
            }
        };
        // The name is ours from here: the Segment's Drop removes it, checking first that the
        // name still leads to this object.
        let mut seg = Segment::assemble(map, fd, Some(posix), true, true, self.raw, None);
        if self.raw {
            // A raw segment is a plain POSIX object: peers may lock its bytes as they like.
            release_creator_lock(&seg)?;
        }
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

    /// One attempt: build the object under a new temporary name and move it to `posix`.
    fn build_and_place(
        &self,
        posix: &PosixName,
        size: usize,
        total: usize,
    ) -> std::result::Result<(OwnedFd, Mapping), Attempt> {
        let temp = temp_name()?;
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = match shm_open(temp.as_c_str(), flags, Mode::from_bits_truncate(self.mode)) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => {
                return Err(Attempt::Again(Error::sys_on("shm_open", temp.as_str())(
                    Errno::EEXIST,
                )));
            }
            Err(e) => return Err(Error::sys_on("shm_open", temp.as_str())(e).into()),
        };
        // Removed on every way out of here while it still leads to our object: after a
        // failure, and after the link(2) fallback (a rename leaves no temporary to remove).
        let temp_name = OwnedName::new(temp.clone(), &fd);
        hook::reached("opened");
        fchmod(&fd, Mode::from_bits_truncate(self.mode))
            .map_err(Error::sys_on("fchmod", temp.as_str()))?;
        // Held for as long as the descriptor is open: the kernel drops it when this process
        // dies, which is how others tell a live creator from a dead one. It fails only while
        // a cleaner holds the byte: it found our temporary before we locked it, and removes it.
        if let Err(e) = take_creator_lock(&fd) {
            return Err(Attempt::Again(e));
        }
        hook::reached("locked");
        nix::unistd::ftruncate(&fd, to_off(total)?)
            .map_err(Error::sys_on("ftruncate", temp.as_str()))?;
        hook::reached("truncated");
        let map = self.map_rw(&fd, total as u64)?;
        hook::reached("mapped");
        if !self.raw {
            header_of(&map)?.begin(size as u64, std::process::id(), self_start_time(), self.tag);
        }
        // The last step before the rename.
        hook::reached("header");
        match place(&temp, posix) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(already_exists(posix.as_str()).into()),
            // A cleaner removed our temporary before we locked it.
            Err(Errno::ENOENT) => {
                return Err(Attempt::Again(Error::sys_on("rename", temp.as_str())(
                    Errno::ENOENT,
                )));
            }
            Err(e) => return Err(Error::sys_on("rename", posix.as_str())(e).into()),
        }
        drop(temp_name);
        hook::reached("renamed");
        Ok((fd, map))
    }
}

fn already_exists(name: &str) -> Error {
    Error::AlreadyExists {
        name: name.to_owned(),
    }
}

fn shm_path(name: &PosixName) -> String {
    format!("{SHM_DIR}{}", name.as_str())
}

fn path_exists(name: &PosixName) -> bool {
    nix::sys::stat::lstat(shm_path(name).as_str()).is_ok()
}

/// Give the object at `temp` the name `target`, never replacing an existing `target`.
fn place(temp: &PosixName, target: &PosixName) -> nix::Result<()> {
    let (from, to) = (shm_path(temp), shm_path(target));
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !hook::forced_link_fallback() {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(
            AT_FDCWD,
            from.as_str(),
            AT_FDCWD,
            to.as_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            // Not supported here: fall back to link(2).
            Err(Errno::EINVAL | Errno::ENOSYS) => {}
            other => return other,
        }
    }
    // A second name for the object, never replacing one; the caller's OwnedName of the
    // temporary then removes the first.
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        from.as_str(),
        nix::fcntl::AT_FDCWD,
        to.as_str(),
        nix::fcntl::AtFlags::empty(),
    )?;
    hook::reached("linked");
    Ok(())
}

/// A test-only hook that stops a creator at a given step of creation, so that a test can
/// kill it there. It reads `IPCRAFT_SHM_TEST_STOP_AT` (a step name as passed to
/// [`reached`](hook::reached)) in debug builds only; release builds compile it to nothing.
/// Not an API: names and behaviour may change with any release.
mod hook {
    pub(super) fn reached(step: &str) {
        ipcraft_core::test_hook::stop_if(
            "IPCRAFT_SHM_TEST_STOP_AT",
            "IPCRAFT-SHM-STOPPED-AT",
            step,
        );
    }

    /// `IPCRAFT_SHM_TEST_LINK_FALLBACK` set (debug builds): skip `renameat2`, to test the
    /// `link(2)` fallback where `renameat2` works.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub(super) fn forced_link_fallback() -> bool {
        cfg!(debug_assertions) && std::env::var_os("IPCRAFT_SHM_TEST_LINK_FALLBACK").is_some()
    }
}
