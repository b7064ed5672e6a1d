//! std's traits for the pipe ends: [`Read`], [`Write`] (also on `&`, as std's pipes and
//! files have), [`Debug`](fmt::Debug), and the conversions from and to std's pipe and child
//! stdio types.

use super::*;

impl Read for PipeReader {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &PipeReader {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_timeout.get() {
            None => Ok(nix::unistd::read(&self.fd, buf)?),
            Some(t) => Ok(read_until(self.fd.as_fd(), buf, Deadline::after(t), false)?),
        }
    }
}

impl Write for PipeWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    #[inline]
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &PipeWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_timeout.get().is_none() && !self.suppress_sigpipe {
            return nix::unistd::write(&self.fd, buf).map_err(write_errno);
        }
        let deadline = Deadline::from_timeout(self.write_timeout.get());
        Ok(self.write_deadline(buf, deadline)?)
    }

    /// One `writev(2)` (without a write timeout): on a pipe, a vectored write of at most
    /// [`PIPE_BUF`] bytes in total is atomic, which is how a small frame stays whole.
    #[inline]
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.write_timeout.get().is_none() && !self.suppress_sigpipe {
            return nix::sys::uio::writev(&self.fd, bufs).map_err(write_errno);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.write(first)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_errno(e: Errno) -> io::Error {
    if e == Errno::EPIPE {
        Error::BrokenPipe.into()
    } else {
        e.into()
    }
}

impl fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeReader")
            .field("fd", &self.fd.as_raw_fd())
            .field("nonblocking", &self.nonblocking)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeWriter")
            .field("fd", &self.fd.as_raw_fd())
            .field("nonblocking", &self.nonblocking)
            .field("write_timeout", &self.write_timeout)
            .field("suppress_sigpipe", &self.suppress_sigpipe)
            .finish()
    }
}

impl From<ChildStdout> for PipeReader {
    fn from(c: ChildStdout) -> Self {
        Self::from_fd(c.into())
    }
}

impl From<ChildStderr> for PipeReader {
    fn from(c: ChildStderr) -> Self {
        Self::from_fd(c.into())
    }
}

impl From<ChildStdin> for PipeWriter {
    fn from(c: ChildStdin) -> Self {
        Self::from_fd(c.into())
    }
}

impl From<io::PipeReader> for PipeReader {
    fn from(r: io::PipeReader) -> Self {
        Self::from_fd(r.into())
    }
}

impl From<io::PipeWriter> for PipeWriter {
    fn from(w: io::PipeWriter) -> Self {
        Self::from_fd(w.into())
    }
}

impl From<PipeReader> for io::PipeReader {
    fn from(r: PipeReader) -> Self {
        r.fd.into()
    }
}

impl From<PipeWriter> for io::PipeWriter {
    fn from(w: PipeWriter) -> Self {
        w.fd.into()
    }
}
