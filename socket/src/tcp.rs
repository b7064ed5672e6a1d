//! TCP: [`TcpListener`] and [`TcpStream`], with the same deadlines, `try_` forms, typed errors
//! and framing as the Unix stream types. This is how ipcraft reaches another machine.
//!
//! Sockets are made by `std::net` (close-on-exec, `accept4` with `SOCK_CLOEXEC`); sends and
//! receives go through this crate, with `MSG_NOSIGNAL` on every send.

use crate::error::{Error, Result};
use crate::wait::{Wait, io_wait};
use ipcraft_core::{Deadline, Interest, SysError};
use ipcraft_core::{FlagSetting, TimeoutSetting};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

fn from_std(op: &'static str, e: &io::Error) -> Error {
    match e.raw_os_error() {
        Some(_) => Error::Sys(SysError::from_io(op, e)),
        None if e.kind() == io::ErrorKind::TimedOut => Error::TimedOut { op },
        None => Error::Sys(SysError::from_io(op, e)),
    }
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32))
}

/// A listening TCP socket. Closed on drop.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{FrameReader, FrameWriter, TcpListener, TcpStream};
/// use std::time::Duration;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
/// let server = listener.accept_timeout(Duration::from_secs(10))?.0;
/// FrameWriter::new(&client).send(b"over tcp")?;
/// assert_eq!(FrameReader::new(&server).next_frame()?, Some(&b"over tcp"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    /// Always `O_NONBLOCK` underneath: accept waits with poll.
    inner: std::net::TcpListener,
    nonblocking: FlagSetting,
}

impl TcpListener {
    /// Bind and listen (`std::net::TcpListener::bind`: `SO_REUSEADDR`, close-on-exec).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `bind` (`EADDRINUSE`, `EACCES`) or address resolution.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<Self> {
        let inner = std::net::TcpListener::bind(addr).map_err(|e| from_std("bind", &e))?;
        inner
            .set_nonblocking(true)
            .map_err(|e| from_std("fcntl(F_SETFL)", &e))?;
        Ok(Self {
            inner,
            nonblocking: FlagSetting::new(false),
        })
    }

    /// The bound address (with the port the kernel chose for port 0).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner
            .local_addr()
            .map_err(|e| from_std("getsockname", &e))
    }

    fn accept_wait(&self, wait: Wait) -> Result<(TcpStream, SocketAddr)> {
        let (s, addr) = io_wait(
            self.inner.as_fd(),
            Interest::Readable,
            wait,
            "accept",
            |_| match self.inner.accept() {
                Ok(v) => Ok(v),
                Err(e) if errno_of(&e) == Errno::ECONNABORTED => Err(Errno::EINTR),
                Err(e) => Err(errno_of(&e)),
            },
        )?;
        // Accepted sockets do not inherit O_NONBLOCK on Linux: blocking.
        Ok((TcpStream::from_std(s), addr))
    }

    /// Accept a connection and the peer's address, waiting for one (or failing with
    /// [`Error::WouldBlock`] in non-blocking mode), as std's `accept`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`]; [`Error::Sys`] from `accept4`.
    pub fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        if self.nonblocking.get() {
            self.accept_wait(Wait::Try)
        } else {
            self.accept_wait(Wait::Until(Deadline::never()))
        }
    }

    /// Accept, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`accept`](Self::accept).
    pub fn accept_deadline(&self, deadline: Deadline) -> Result<(TcpStream, SocketAddr)> {
        self.accept_wait(Wait::Until(deadline))
    }

    /// [`accept_deadline`](Self::accept_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`accept_deadline`](Self::accept_deadline).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
        self.accept_deadline(Deadline::after(timeout))
    }

    /// Accept if a connection is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`], and as [`accept`](Self::accept).
    pub fn try_accept(&self) -> Result<(TcpStream, SocketAddr)> {
        self.accept_wait(Wait::Try)
    }

    /// Switch non-blocking mode for [`accept`](Self::accept) (the descriptor is always
    /// `O_NONBLOCK` while owned by this type).
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        self.nonblocking.set(yes);
        Ok(())
    }

    /// Whether [`accept`](Self::accept) is in non-blocking mode.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.get()
    }

    /// The connections as they come, without their addresses, as std's `incoming`.
    pub fn incoming(&self) -> TcpIncoming<'_> {
        TcpIncoming { listener: self }
    }

    /// A second handle to the same listening socket (`F_DUPFD_CLOEXEC`), in the same
    /// blocking mode.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            inner: self
                .inner
                .try_clone()
                .map_err(|e| from_std("fcntl(F_DUPFD_CLOEXEC)", &e))?,
            nonblocking: self.nonblocking.clone(),
        })
    }
}

/// The connections of a [`TcpListener`], from [`TcpListener::incoming`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TcpIncoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for TcpIncoming<'_> {
    type Item = Result<TcpStream>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl From<std::net::TcpListener> for TcpListener {
    fn from(inner: std::net::TcpListener) -> Self {
        let nonblocking = crate::wait::fd_is_nonblocking(inner.as_fd());
        let _ = inner.set_nonblocking(true);
        Self {
            inner,
            nonblocking: FlagSetting::new(nonblocking),
        }
    }
}

/// The descriptor, in the listener's blocking mode.
impl From<TcpListener> for std::net::TcpListener {
    fn from(l: TcpListener) -> Self {
        let _ = l.inner.set_nonblocking(l.nonblocking.get());
        l.inner
    }
}

impl From<TcpListener> for OwnedFd {
    fn from(l: TcpListener) -> OwnedFd {
        std::net::TcpListener::from(l).into()
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a listening TCP socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for TcpListener {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::TCP_LISTENER)?;
        Ok(Self::from(std::net::TcpListener::from(fd)))
    }
}

/// A connected TCP stream. Closed on drop.
///
/// [`Read`] and [`Write`] (also for `&TcpStream`) honour the read and write timeouts; every
/// send uses `MSG_NOSIGNAL`, so a closed peer is [`Error::PeerClosed`] or
/// [`Error::ConnectionReset`], never a `SIGPIPE`.
#[derive(Debug)]
pub struct TcpStream {
    inner: std::net::TcpStream,
    read_timeout: TimeoutSetting,
    write_timeout: TimeoutSetting,
}

impl TcpStream {
    fn from_std(inner: std::net::TcpStream) -> Self {
        Self {
            inner,
            read_timeout: TimeoutSetting::new(None),
            write_timeout: TimeoutSetting::new(None),
        }
    }

    /// Connect, blocking until the handshake completes or fails.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `connect` (`ECONNREFUSED`, `ENETUNREACH`, ...).
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Self> {
        let s = std::net::TcpStream::connect(addr).map_err(|e| from_std("connect", &e))?;
        Ok(Self::from_std(s))
    }

    /// Connect, waiting at most `timeout` for the handshake (`poll(2)` on the monotonic
    /// clock, through `std::net::TcpStream::connect_timeout`).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`]; [`Error::Sys`] from `connect`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Self> {
        let s = std::net::TcpStream::connect_timeout(addr, timeout)
            .map_err(|e| from_std("connect", &e))?;
        Ok(Self::from_std(s))
    }

    /// [`connect_timeout`](Self::connect_timeout) with the time left until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`connect_timeout`](Self::connect_timeout).
    pub fn connect_deadline(addr: &SocketAddr, deadline: Deadline) -> Result<Self> {
        match deadline.remaining() {
            None => Self::connect(addr),
            Some(left) if left.is_zero() => Err(Error::TimedOut { op: "connect" }),
            Some(left) => Self::connect_timeout(addr, left),
        }
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getpeername`.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.inner
            .peer_addr()
            .map_err(|e| from_std("getpeername", &e))
    }

    /// This end's address.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner
            .local_addr()
            .map_err(|e| from_std("getsockname", &e))
    }

    /// Disable Nagle's algorithm (`TCP_NODELAY`): small frames go out at once.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `setsockopt`.
    pub fn set_nodelay(&self, yes: bool) -> Result<()> {
        self.inner
            .set_nodelay(yes)
            .map_err(|e| from_std("setsockopt(TCP_NODELAY)", &e))
    }

    /// Switch `O_NONBLOCK` (shared with every duplicate of the descriptor).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `fcntl`.
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        self.inner
            .set_nonblocking(yes)
            .map_err(|e| from_std("fcntl(F_SETFL)", &e))
    }

    /// Make [`Read`] and [`recv`](Self::recv) wait at most `timeout` per call.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Make [`Write`] and [`send`](Self::send) wait at most `timeout` per call.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }

    fn wait_for(timeout: Option<Duration>) -> Wait {
        timeout.map_or(Wait::Blocking, |t| Wait::Until(Deadline::after(t)))
    }

    fn send_wait(&self, buf: &[u8], wait: Wait) -> Result<usize> {
        let fd = self.inner.as_fd();
        io_wait(fd, Interest::Writable, wait, "send", |f| {
            send(fd.as_raw_fd(), buf, f | MsgFlags::MSG_NOSIGNAL)
        })
    }

    fn recv_wait(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        let fd = self.inner.as_fd();
        io_wait(fd, Interest::Readable, wait, "recv", |f| {
            recv(fd.as_raw_fd(), buf, f)
        })
    }

    /// Send some of `buf` (`MSG_NOSIGNAL`), waiting at most the write timeout.
    ///
    /// # Errors
    ///
    /// [`Error::PeerClosed`], [`Error::ConnectionReset`], [`Error::TimedOut`],
    /// [`Error::WouldBlock`], [`Error::Sys`].
    pub fn send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, Self::wait_for(self.write_timeout.get()))
    }

    /// Send some of `buf`, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        self.send_wait(buf, Wait::Until(deadline))
    }

    /// Send what fits now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn try_send(&self, buf: &[u8]) -> Result<usize> {
        self.send_wait(buf, Wait::Try)
    }

    /// Receive what is available; `Ok(0)` is end of stream. Waits at most the read timeout.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionReset`], [`Error::TimedOut`], [`Error::WouldBlock`],
    /// [`Error::Sys`].
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, Self::wait_for(self.read_timeout.get()))
    }

    /// Receive, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_wait(buf, Wait::Until(deadline))
    }

    /// Receive what is available now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_wait(buf, Wait::Try)
    }

    /// Shut down reading, writing or both.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.inner
            .shutdown(how)
            .map_err(|e| from_std("shutdown", &e))
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), with the same timeouts.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            inner: self
                .inner
                .try_clone()
                .map_err(|e| from_std("fcntl(F_DUPFD_CLOEXEC)", &e))?,
            read_timeout: self.read_timeout.clone(),
            write_timeout: self.write_timeout.clone(),
        })
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.recv(buf)?)
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.send(buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl From<std::net::TcpStream> for TcpStream {
    fn from(s: std::net::TcpStream) -> Self {
        Self::from_std(s)
    }
}

impl From<TcpStream> for std::net::TcpStream {
    fn from(s: TcpStream) -> Self {
        s.inner
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a TCP socket that is not listening (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for TcpStream {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::TCP_STREAM)?;
        Ok(Self::from_std(std::net::TcpStream::from(fd)))
    }
}

impl From<TcpStream> for OwnedFd {
    fn from(s: TcpStream) -> OwnedFd {
        s.inner.into()
    }
}
