//! std's traits and conversions for [`UnixStream`]: `Read`, `Write` (also on
//! `&UnixStream`), the descriptor traits, and `OwnedFd`/std conversions.

use super::*;

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.recv(buf)?)
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.send(buf)?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = io_wait(
            self.fd.as_fd(),
            Interest::Writable,
            self.write_wait(),
            "sendmsg",
            |f| {
                sendmsg::<UnixAddr>(
                    self.fd.as_raw_fd(),
                    bufs,
                    &[],
                    f | MsgFlags::MSG_NOSIGNAL,
                    None,
                )
            },
        )?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Takes ownership of a connected stream socket (its `O_NONBLOCK` flag is read once, here).
/// The descriptor is not checked: calls on another kind of file fail with [`Error::Sys`].
/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a Unix stream socket that is not listening (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for UnixStream {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::UNIX_STREAM)?;
        Ok(Self::from_fd(fd))
    }
}

impl From<UnixStream> for OwnedFd {
    fn from(s: UnixStream) -> OwnedFd {
        s.fd
    }
}

impl From<std::os::unix::net::UnixStream> for UnixStream {
    fn from(s: std::os::unix::net::UnixStream) -> Self {
        Self::from_fd(OwnedFd::from(s))
    }
}

impl From<UnixStream> for std::os::unix::net::UnixStream {
    fn from(s: UnixStream) -> Self {
        Self::from(s.fd)
    }
}
