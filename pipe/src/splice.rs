//! Zero-copy moves between descriptors: [`splice`] and [`tee`].

use crate::error::{Error, Result};
use crate::pipe::{PipeReader, PipeWriter};
use nix::errno::Errno;
use nix::fcntl::SpliceFFlags;
use std::ops::BitOr;
use std::os::fd::AsFd;

/// Flags for [`splice`] and [`tee`] (see `splice(2)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SpliceFlags(u32);

impl SpliceFlags {
    /// No flags: block until data can move.
    pub const NONE: Self = Self(0);
    /// `SPLICE_F_NONBLOCK`: do not block on the pipe(s); [`Error::WouldBlock`] instead.
    pub const NONBLOCK: Self = Self(1);
    /// `SPLICE_F_MORE`: more data will follow (a hint for sockets).
    pub const MORE: Self = Self(2);
    /// `SPLICE_F_MOVE`: a hint to move pages rather than copy.
    pub const MOVE: Self = Self(4);

    fn to_nix(self) -> SpliceFFlags {
        let mut f = SpliceFFlags::empty();
        f.set(
            SpliceFFlags::SPLICE_F_NONBLOCK,
            self.0 & Self::NONBLOCK.0 != 0,
        );
        f.set(SpliceFFlags::SPLICE_F_MORE, self.0 & Self::MORE.0 != 0);
        f.set(SpliceFFlags::SPLICE_F_MOVE, self.0 & Self::MOVE.0 != 0);
        f
    }
}

impl BitOr for SpliceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Move up to `len` bytes from `from` to `to` without copying through user space; one of the
/// two must be a pipe. Returns the bytes moved; 0 means end of input. See `splice(2)`.
///
/// # Errors
///
/// [`Error::WouldBlock`] with [`SpliceFlags::NONBLOCK`] when nothing can move now;
/// [`Error::BrokenPipe`] when `to` is a pipe whose reader is gone; [`Error::Sys`] (`EINVAL`
/// when neither descriptor is a pipe, or one does not support splicing).
///
/// # Examples
///
/// ```
/// use ipcraft_pipe::{SpliceFlags, pipe, splice};
/// use std::io::{Read, Write};
///
/// let (a_r, mut a_w) = pipe()?;
/// let (mut b_r, b_w) = pipe()?;
/// a_w.write_all(b"moved")?;
/// assert_eq!(splice(&a_r, &b_w, 64, SpliceFlags::NONE)?, 5);
/// let mut buf = [0u8; 5];
/// b_r.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"moved");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn splice(from: impl AsFd, to: impl AsFd, len: usize, flags: SpliceFlags) -> Result<usize> {
    loop {
        match nix::fcntl::splice(from.as_fd(), None, to.as_fd(), None, len, flags.to_nix()) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(map_errno("splice", e)),
        }
    }
}

/// Copy up to `len` bytes from one pipe to another without consuming them from `from`, and
/// without copying through user space. See `tee(2)`.
///
/// # Errors
///
/// As [`splice`].
pub fn tee(from: &PipeReader, to: &PipeWriter, len: usize, flags: SpliceFlags) -> Result<usize> {
    loop {
        match nix::fcntl::tee(from, to, len, flags.to_nix()) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(map_errno("tee", e)),
        }
    }
}

fn map_errno(op: &'static str, e: Errno) -> Error {
    match e {
        Errno::EAGAIN => Error::WouldBlock { op },
        Errno::EPIPE => Error::BrokenPipe,
        e => Error::sys(op)(e),
    }
}
