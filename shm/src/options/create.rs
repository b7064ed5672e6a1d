//! How a named segment is created: `shm_open` with `O_EXCL`, the creator lock, size, mapping,
//! header, then `init` and publication.

use crate::creator::{self_start_time, take_creator_lock};
use crate::error::{Error, Result};
use crate::header::Found;
use crate::options::SegmentOptions;
use crate::segment::{Segment, header_of, shm_available, to_off, total_size};
use crate::sys::Mapping;
use ipcraft_core::PosixName;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{Mode, fchmod};
use std::os::fd::OwnedFd;

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
}
