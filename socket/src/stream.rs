//! [`UnixStream`]: a connected Unix stream socket.

use crate::addr::SocketAddr;
use crate::cred::{PeerCredentials, peer_credentials};
use crate::error::{Error, Result};
use crate::options::{SCM_MAX_FD, connect_unix};
use crate::sys;
use crate::wait::{Wait, fd_is_nonblocking, io_wait, set_fd_nonblocking};
use ipcraft_core::FrameError;
use ipcraft_core::TrustedOwners;
use ipcraft_core::{Deadline, Interest, SysError};
use ipcraft_core::{FlagSetting, TimeoutSetting};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, getpeername,
    getsockname, recv, send, sendmsg, socketpair,
};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

mod frame;
mod std_io;

/// A connected Unix stream socket. Closed on drop.
///
/// Implements [`Read`] and [`Write`] (also for `&UnixStream`), honouring the read and write
/// timeouts; every send uses `MSG_NOSIGNAL`, so a closed peer is [`Error::PeerClosed`]
/// (`BrokenPipe`), never a `SIGPIPE`.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::UnixStream;
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"hi")?;
/// let mut buf = [0u8; 2];
/// b.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// drop(b);
/// // No SIGPIPE: a typed error.
/// assert!(matches!(a.send(b"x"), Err(ipcraft_socket::Error::PeerClosed { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UnixStream {
    pub(crate) fd: OwnedFd,
    pub(crate) nonblocking: FlagSetting,
    pub(crate) read_timeout: TimeoutSetting,
    pub(crate) write_timeout: TimeoutSetting,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.fd.as_raw_fd())
            .field("nonblocking", &self.nonblocking.get())
            .field("read_timeout", &self.read_timeout.get())
            .field("write_timeout", &self.write_timeout.get())
            .finish()
    }
}

impl UnixStream {
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        Self {
            fd,
            nonblocking: FlagSetting::new(nonblocking),
            read_timeout: TimeoutSetting::new(None),
            write_timeout: TimeoutSetting::new(None),
        }
    }

    /// Connect to the listener at a filesystem path.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Connect to a path or abstract address, waiting while the listener's backlog is full.
    ///
    /// See `connect(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when the listener belongs to another user (its credentials,
    /// `SO_PEERCRED`, checked before returning; [`ConnectOptions`](crate::ConnectOptions)
    /// trusts one on purpose); [`Error::Sys`] from `connect`: `ENOENT` (no such file),
    /// `ECONNREFUSED` (nobody listening: a stale socket file, or a bound socket not yet
    /// listening), `EACCES` (no write permission on the socket file).
    pub fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::never())
    }

    /// Connect, waiting at most until `deadline` (monotonic clock) while the listener's
    /// backlog is full. A Unix socket connect does not queue when the backlog is full
    /// (`EAGAIN` in non-blocking mode), so this retries with a short back-off (1 to 10 ms).
    /// The stream is blocking.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`connect_addr`](Self::connect_addr).
    pub fn connect_deadline(addr: &SocketAddr, deadline: Deadline) -> Result<Self> {
        Self::connect_trusting(addr, deadline, &TrustedOwners::new())
    }

    /// Connect with [`ConnectOptions`](crate::ConnectOptions): a listener another user runs,
    /// trusted on purpose, and a bound on the wait for a full backlog. The listener's owner
    /// (`SO_PEERCRED`) is checked before this returns.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`connect_deadline`](Self::connect_deadline).
    pub fn connect_with(options: &crate::ConnectOptions, addr: &SocketAddr) -> Result<Self> {
        Self::connect_trusting(addr, options.deadline_of(), options.trusted())
    }

    pub(crate) fn connect_trusting(
        addr: &SocketAddr,
        deadline: Deadline,
        trusted: &TrustedOwners,
    ) -> Result<Self> {
        Ok(Self::from_fd(connect_unix(
            addr,
            SockType::Stream,
            deadline,
            trusted,
        )?))
    }

    /// [`connect_deadline`](Self::connect_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`connect_deadline`](Self::connect_deadline).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::after(timeout))
    }

    /// Two connected streams (`socketpair(2)`), close-on-exec, blocking; hand one to a
    /// child process.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair` (`EMFILE`/`ENFILE`).
    #[doc(alias = "socketpair")]
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((Self::from_fd(a), Self::from_fd(b)))
    }

    /// The peer's process id, user id and group id, as the kernel captured them at connect
    /// time (see [`PeerCredentials`]).
    ///
    /// See `SO_PEERCRED` in `unix(7)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt`.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        peer_credentials(&self.fd)
    }

    /// A pidfd for the peer process (`SO_PEERPIDFD`, Linux 6.5+), close-on-exec: unlike
    /// [`PeerCredentials::pid`], it cannot come to mean another process when the peer exits
    /// and its pid is reused. Like the credentials, it names the process that connected (or
    /// listened), captured at connect time. Use it with `pidfd_send_signal(2)`, `poll(2)`
    /// (readable when the process exits) or `/proc/self/fdinfo`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockopt`: `ENOPROTOOPT` on kernels before 6.5.
    #[doc(alias = "SO_PEERPIDFD")]
    pub fn peer_pidfd(&self) -> Result<OwnedFd> {
        nix::sys::socket::getsockopt(&self.fd, nix::sys::socket::sockopt::PeerPidfd)
            .map_err(Error::sys("getsockopt(SO_PEERPIDFD)"))
    }

    /// This end's address (usually unnamed for a client).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let a: UnixAddr = getsockname(self.fd.as_raw_fd()).map_err(Error::sys("getsockname"))?;
        Ok(SocketAddr::from_unix_addr(&a))
    }

    /// The peer's address (the listener's, seen from a client).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getpeername` (`ENOTCONN`).
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        let a: UnixAddr = getpeername(self.fd.as_raw_fd()).map_err(Error::sys("getpeername"))?;
        Ok(SocketAddr::from_unix_addr(&a))
    }

    /// Switch `O_NONBLOCK` on or off. It belongs to the open file description, so it also
    /// changes for every duplicate of this descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        set_fd_nonblocking(self.fd.as_fd(), yes)?;
        self.nonblocking.set(yes);
        Ok(())
    }

    /// Whether this stream was last set (or found) non-blocking.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.get()
    }

    /// Make [`Read`] and [`recv`](Self::recv) wait at most `timeout` per call (`None`:
    /// forever, the default), on the monotonic clock.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Make [`Write`] and [`send`](Self::send) wait at most `timeout` per call.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    fn read_wait(&self) -> Wait {
        match self.read_timeout.get() {
            Some(t) => Wait::Until(Deadline::after(t)),
            None => Wait::Blocking,
        }
    }

    fn write_wait(&self) -> Wait {
        match self.write_timeout.get() {
            Some(t) => Wait::Until(Deadline::after(t)),
            None => Wait::Blocking,
        }
    }

    fn send_wait(&self, buf: &[u8], wait: Wait) -> Result<usize> {
        io_wait(self.fd.as_fd(), Interest::Writable, wait, "send", |f| {
            send(self.fd.as_raw_fd(), buf, f | MsgFlags::MSG_NOSIGNAL)
        })
    }

    fn recv_wait(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        io_wait(self.fd.as_fd(), Interest::Readable, wait, "recv", |f| {
            recv(self.fd.as_raw_fd(), buf, f)
        })
    }

    /// Send some of `buf` (`send(2)` with `MSG_NOSIGNAL`); returns how much was sent. Waits
    /// at most the write timeout, if set.
    ///
    /// # Errors
    ///
    /// [`Error::PeerClosed`], [`Error::ConnectionReset`], [`Error::TimedOut`],
    /// [`Error::WouldBlock`] (non-blocking mode), [`Error::Sys`].
    pub fn send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, self.write_wait())
    }

    /// Send some of `buf`, waiting at most until `deadline` for room.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        self.send_wait(buf, Wait::Until(deadline))
    }

    /// Send what fits now, without waiting (`MSG_DONTWAIT`), whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when there is no room, and as [`send`](Self::send).
    pub fn try_send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, Wait::Try)
    }

    /// Receive what is available into `buf`; `Ok(0)` is end of stream. Waits at most the
    /// read timeout, if set.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionReset`], [`Error::TimedOut`], [`Error::WouldBlock`]
    /// (non-blocking mode), [`Error::Sys`].
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, self.read_wait())
    }

    /// Receive, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_wait(buf, Wait::Until(deadline))
    }

    /// Receive what is available now, without waiting (`MSG_DONTWAIT`), whatever the mode.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when nothing is there, and as [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, Wait::Try)
    }

    fn send_fds_wait(&self, buf: &[u8], fds: &[BorrowedFd<'_>], wait: Wait) -> Result<usize> {
        self.send_iov_fds_wait(&[IoSlice::new(buf)], fds, wait)
    }

    /// `sendmsg(2)` of the bytes of `iov` with descriptors, as
    /// [`send_with_fds`](Self::send_with_fds) (the async frame send uses it with `Wait::Try`).
    pub(crate) fn send_iov_fds_wait(
        &self,
        iov: &[IoSlice<'_>],
        fds: &[BorrowedFd<'_>],
        wait: Wait,
    ) -> Result<usize> {
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        if !fds.is_empty() && iov.iter().all(|b| b.is_empty()) {
            return Err(Error::FdsWithoutData);
        }
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsgs_storage = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs_storage };
        io_wait(self.fd.as_fd(), Interest::Writable, wait, "sendmsg", |f| {
            sendmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                iov,
                cmsgs,
                f | MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })
    }

    /// Send some of `buf` together with descriptors (`SCM_RIGHTS`, `MSG_NOSIGNAL`); returns
    /// how many bytes were sent. The descriptors travel with the first byte sent; the
    /// receiver gets duplicates (the caller keeps its own). Waits at most the write timeout.
    ///
    /// See `sendmsg(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// - [`Error::TooManyFds`] above [`SCM_MAX_FD`], [`Error::FdsWithoutData`] for
    ///   descriptors with an empty `buf`: nothing is sent;
    /// - as [`send`](Self::send) (`ETOOMANYREFS` as [`Error::Sys`] when descriptors in
    ///   flight nest too deep).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::UnixStream;
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let (r, mut w) = std::io::pipe()?;
    /// a.send_with_fds(b"r", &[r.as_fd()])?;
    /// let mut buf = [0u8; 1];
    /// let (n, fds) = b.recv_with_fds(&mut buf, 4)?;
    /// assert_eq!((n, fds.len()), (1, 1));
    /// w.write_all(b"through a passed pipe")?;
    /// drop(w);
    /// let mut text = String::new();
    /// std::io::PipeReader::from(fds.into_iter().next().unwrap()).read_to_string(&mut text)?;
    /// assert_eq!(text, "through a passed pipe");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "SCM_RIGHTS")]
    #[doc(alias = "sendmsg")]
    pub fn send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.send_fds_wait(buf, fds, self.write_wait())
    }

    /// [`send_with_fds`](Self::send_with_fds), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds), and [`Error::TimedOut`].
    pub fn send_with_fds_deadline(
        &self,
        buf: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<usize> {
        self.send_fds_wait(buf, fds, Wait::Until(deadline))
    }

    /// [`send_with_fds`](Self::send_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds), and [`Error::WouldBlock`].
    pub fn try_send_with_fds(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        self.send_fds_wait(buf, fds, Wait::Try)
    }

    fn recv_fds_wait(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        wait: Wait,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        let max_fds = max_fds.min(SCM_MAX_FD);
        let got = io_wait(self.fd.as_fd(), Interest::Readable, wait, "recvmsg", |f| {
            sys::recv_with_fds(self.fd.as_fd(), buf, max_fds, f.bits())
        })?;
        if got.truncated || got.fds.len() > max_fds {
            // Dropping `got.fds` closes every descriptor that arrived.
            return Err(Error::FdsTruncated {
                received: got.len,
                max_fds,
            });
        }
        Ok((got.len, got.fds))
    }

    /// Receive bytes into `buf` and the descriptors sent with them (at most `max_fds`, capped
    /// at [`SCM_MAX_FD`]); `Ok((0, _))` is end of stream. Every descriptor received is
    /// close-on-exec (`MSG_CMSG_CLOEXEC`) and owned by the caller. Waits at most the read
    /// timeout.
    ///
    /// On a stream socket one call returns the descriptors of at most one `sendmsg`, and
    /// never reads past the bytes that carried them; descriptors sent while this side reads
    /// with plain [`recv`](Self::recv) or [`Read`] are closed by the kernel.
    ///
    /// See `recvmsg(2)`, `unix(7)`.
    ///
    /// # Errors
    ///
    /// - [`Error::FdsTruncated`] when more descriptors arrived than `max_fds` (or the process
    ///   is at its descriptor limit, `RLIMIT_NOFILE`): every one that did arrive is closed,
    ///   none leaks; the bytes were received into `buf`;
    /// - as [`recv`](Self::recv).
    #[doc(alias = "recvmsg")]
    #[doc(alias = "MSG_CMSG_CLOEXEC")]
    pub fn recv_with_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        self.recv_fds_wait(buf, max_fds, self.read_wait())
    }

    /// [`recv_with_fds`](Self::recv_with_fds), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_with_fds`](Self::recv_with_fds), and [`Error::TimedOut`].
    pub fn recv_with_fds_deadline(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        deadline: Deadline,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        self.recv_fds_wait(buf, max_fds, Wait::Until(deadline))
    }

    /// [`recv_with_fds`](Self::recv_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv_with_fds`](Self::recv_with_fds), and [`Error::WouldBlock`].
    pub fn try_recv_with_fds(
        &self,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        self.recv_fds_wait(buf, max_fds, Wait::Try)
    }

    /// Shut down reading, writing or both (`shutdown(2)`): the peer sees end of stream.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        use nix::sys::socket::Shutdown as S;
        let how = match how {
            Shutdown::Read => S::Read,
            Shutdown::Write => S::Write,
            Shutdown::Both => S::Both,
        };
        nix::sys::socket::shutdown(self.fd.as_raw_fd(), how).map_err(Error::sys("shutdown"))
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), with the same settings.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::Sys(SysError::from_io("fcntl(F_DUPFD_CLOEXEC)", &e)))?;
        Ok(Self {
            fd,
            nonblocking: self.nonblocking.clone(),
            read_timeout: self.read_timeout.clone(),
            write_timeout: self.write_timeout.clone(),
        })
    }
}
