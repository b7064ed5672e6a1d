//! Creator liveness: the open-file-description lock a creator holds on byte 0 of its segment
//! for as long as it lives, and its start time, written into the header.

use crate::error::{Error, Result};
use nix::fcntl::{FcntlArg, fcntl};
use std::os::fd::{AsFd, OwnedFd};

/// The creator lock: an open-file-description read lock on the first byte. The kernel
/// releases it when the last descriptor of that open file description closes, which
/// includes the creator process dying: so a segment whose lock is free has no live creator.
fn creator_flock(kind: i16) -> nix::libc::flock {
    nix::libc::flock {
        l_type: kind,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    }
}

pub(crate) fn take_creator_lock(fd: &OwnedFd) -> Result<()> {
    let lock = creator_flock(nix::libc::F_RDLCK as i16);
    fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)).map_err(Error::sys("fcntl(F_OFD_SETLK)"))?;
    Ok(())
}

/// Drop the creator lock taken through `fd` (a raw segment, once in place, holds none).
pub(crate) fn release_creator_lock(fd: &impl AsFd) -> Result<()> {
    let lock = creator_flock(nix::libc::F_UNLCK as i16);
    fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)).map_err(Error::sys("fcntl(F_OFD_SETLK)"))?;
    Ok(())
}

/// Take the creator lock's byte for writing through `fd`: succeeds only if no creator holds
/// it, and then keeps any new creator on this object from taking it.
pub(crate) fn lock_out_creators(fd: &OwnedFd) -> bool {
    let lock = creator_flock(nix::libc::F_WRLCK as i16);
    fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)).is_ok()
}

/// Whether some open file description (other than `fd`'s) holds the creator lock.
pub(crate) fn creator_alive(fd: &impl AsFd) -> Result<bool> {
    let mut probe = creator_flock(nix::libc::F_WRLCK as i16);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(Error::sys("fcntl(F_OFD_GETLK)"))?;
    Ok(probe.l_type != nix::libc::F_UNLCK as i16)
}

/// This process's start time, in clock ticks after boot (field 22 of `/proc/self/stat`).
pub(crate) fn self_start_time() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| start_time_from_stat(&s))
        .unwrap_or(0)
}

/// Field 22 of a `/proc/PID/stat` line; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after the last `)`.
pub(crate) fn start_time_from_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parses_after_the_command_name() {
        let line = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99";
        assert_eq!(start_time_from_stat(line), Some(424242));
        assert_eq!(start_time_from_stat("garbage"), None);
    }
}
