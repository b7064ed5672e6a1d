//! Message sockets: [`UnixDatagram`] (`SOCK_DGRAM`) and [`SeqpacketListener`] /
//! [`SeqpacketConn`] (`SOCK_SEQPACKET`: message boundaries on a connection).
//!
//! A message is sent whole or not at all, and received whole: a receive buffer too small for
//! the next message is [`Error::MessageTruncated`] (the message is consumed), never a short
//! read. An empty message is refused ([`Error::EmptyMessage`]): on a seqpacket connection the
//! receiver cannot tell it from end of stream.

use crate::addr::SocketAddr;
use crate::cred::{PeerCredentials, PeerPolicy, peer_credentials};
use crate::error::{Error, Result};
use crate::listener::UnixListener;
use crate::options::{BindOptions, OwnedFile, SCM_MAX_FD, bind_unix, connect_unix};
use crate::stream::UnixStream;
use crate::sys;
use crate::wait::{Wait, fd_is_nonblocking, io_wait, set_fd_nonblocking};
use ipcraft_core::{Deadline, FlagSetting, Interest, SysError, TimeoutSetting, TrustedOwners};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, getpeername,
    getsockname, sendmsg, socket, socketpair,
};
use std::fmt;
use std::io::IoSlice;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// The state every message socket has: the descriptor, its mode and its timeouts.
struct Msg {
    fd: OwnedFd,
    nonblocking: FlagSetting,
    read_timeout: TimeoutSetting,
    write_timeout: TimeoutSetting,
}

impl Msg {
    fn new(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        Self {
            fd,
            nonblocking: FlagSetting::new(nonblocking),
            read_timeout: TimeoutSetting::new(None),
            write_timeout: TimeoutSetting::new(None),
        }
    }

    /// A second handle to the same socket, with the same settings.
    fn try_clone(&self) -> Result<Self> {
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

    fn read_wait(&self) -> Wait {
        self.read_timeout
            .get()
            .map_or(Wait::Blocking, |t| Wait::Until(Deadline::after(t)))
    }

    fn write_wait(&self) -> Wait {
        self.write_timeout
            .get()
            .map_or(Wait::Blocking, |t| Wait::Until(Deadline::after(t)))
    }

    fn send(
        &self,
        buf: &[u8],
        fds: &[BorrowedFd<'_>],
        to: Option<&SocketAddr>,
        wait: Wait,
    ) -> Result<usize> {
        if buf.is_empty() {
            return Err(Error::EmptyMessage);
        }
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        if fds.is_empty() && to.is_none() {
            // The common case: plain send(2), as a C loop would do (sendmsg costs more in
            // the kernel, and the descriptor list below allocates).
            return io_wait(self.fd.as_fd(), Interest::Writable, wait, "send", |f| {
                nix::sys::socket::send(self.fd.as_raw_fd(), buf, f | MsgFlags::MSG_NOSIGNAL)
            });
        }
        let to = to.map(SocketAddr::to_unix_addr).transpose()?;
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let storage = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &storage };
        let iov = [IoSlice::new(buf)];
        io_wait(self.fd.as_fd(), Interest::Writable, wait, "sendmsg", |f| {
            sendmsg(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                f | MsgFlags::MSG_NOSIGNAL,
                to.as_ref(),
            )
        })
    }

    /// One whole message, with plain recv(2) (no address, no control data: descriptors a
    /// peer attached are discarded by the kernel, never installed); `MSG_TRUNC` is an error.
    fn recv_only(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        let cap = buf.len();
        let len = io_wait(self.fd.as_fd(), Interest::Readable, wait, "recv", |f| {
            nix::sys::socket::recv(self.fd.as_raw_fd(), buf, f | MsgFlags::MSG_TRUNC)
        })?;
        if len > cap {
            // With MSG_TRUNC, the length is the message's, not what fit.
            return Err(Error::MessageTruncated { capacity: cap });
        }
        Ok(len)
    }

    /// One whole message and the address it came from; `MSG_TRUNC` is an error.
    fn recv_from(&self, buf: &mut [u8], wait: Wait) -> Result<(usize, SocketAddr)> {
        let cap = buf.len();
        let got = io_wait(self.fd.as_fd(), Interest::Readable, wait, "recvmsg", |f| {
            sys::recv_with_fds(self.fd.as_fd(), buf, 0, (f | MsgFlags::MSG_TRUNC).bits())
        })?;
        if got.len > cap {
            // With MSG_TRUNC, the length is the message's, not what fit.
            return Err(Error::MessageTruncated { capacity: cap });
        }
        Ok((got.len, SocketAddr::from_sun_path(&got.name)))
    }

    fn recv_with_fds(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        wait: Wait,
    ) -> Result<(usize, Vec<OwnedFd>)> {
        let max_fds = max_fds.min(SCM_MAX_FD);
        let cap = buf.len();
        let got = io_wait(self.fd.as_fd(), Interest::Readable, wait, "recvmsg", |f| {
            sys::recv_with_fds(
                self.fd.as_fd(),
                buf,
                max_fds,
                (f | MsgFlags::MSG_TRUNC).bits(),
            )
        })?;
        if got.truncated || got.fds.len() > max_fds {
            return Err(Error::FdsTruncated {
                received: got.len.min(cap),
                max_fds,
            });
        }
        if got.len > cap {
            // With MSG_TRUNC, the length is the message's, not what fit.
            return Err(Error::MessageTruncated { capacity: cap });
        }
        Ok((got.len, got.fds))
    }
}

/// The methods both message socket types share.
macro_rules! message_methods {
    ($ty:ident) => {
        impl $ty {
            /// Send one message on the connection (or to the connected address), with
            /// `MSG_NOSIGNAL`. Waits at most the write timeout for room.
            ///
            /// # Errors
            ///
            /// [`Error::EmptyMessage`]; [`Error::PeerClosed`], [`Error::ConnectionReset`],
            /// [`Error::TimedOut`], [`Error::WouldBlock`]; [`Error::Sys`] (`EMSGSIZE` above the
            /// socket's send buffer, `ENOTCONN`, `ECONNREFUSED` when the peer is gone).
            pub fn send(&self, msg: &[u8]) -> Result<usize> {
                self.m.send(msg, &[], None, self.m.write_wait())
            }

            /// [`send`](Self::send), waiting at most until `deadline`.
            ///
            /// # Errors
            ///
            /// As [`send`](Self::send).
            pub fn send_deadline(&self, msg: &[u8], deadline: Deadline) -> Result<usize> {
                self.m.send(msg, &[], None, Wait::Until(deadline))
            }

            /// [`send`](Self::send) without waiting (`MSG_DONTWAIT`).
            ///
            /// # Errors
            ///
            /// As [`send`](Self::send).
            pub fn try_send(&self, msg: &[u8]) -> Result<usize> {
                self.m.send(msg, &[], None, Wait::Try)
            }

            /// Send one message carrying descriptors (`SCM_RIGHTS`, at most [`SCM_MAX_FD`]).
            ///
            /// # Errors
            ///
            /// [`Error::TooManyFds`], and as [`send`](Self::send).
            #[doc(alias = "SCM_RIGHTS")]
            pub fn send_with_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
                self.m.send(msg, fds, None, self.m.write_wait())
            }

            /// [`send_with_fds`](Self::send_with_fds), waiting at most until `deadline`.
            ///
            /// # Errors
            ///
            /// As [`send_with_fds`](Self::send_with_fds).
            pub fn send_with_fds_deadline(
                &self,
                msg: &[u8],
                fds: &[BorrowedFd<'_>],
                deadline: Deadline,
            ) -> Result<usize> {
                self.m.send(msg, fds, None, Wait::Until(deadline))
            }

            /// [`send_with_fds`](Self::send_with_fds) without waiting.
            ///
            /// # Errors
            ///
            /// As [`send_with_fds`](Self::send_with_fds), with [`Error::WouldBlock`].
            pub fn try_send_with_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
                self.m.send(msg, fds, None, Wait::Try)
            }

            /// Receive one whole message. Waits at most the read timeout.
            ///
            /// # Errors
            ///
            /// [`Error::MessageTruncated`] when `buf` is smaller than the message (which is
            /// consumed); [`Error::TimedOut`], [`Error::WouldBlock`], [`Error::Sys`].
            pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
                self.m.recv_only(buf, self.m.read_wait())
            }

            /// [`recv`](Self::recv), waiting at most until `deadline`.
            ///
            /// # Errors
            ///
            /// As [`recv`](Self::recv).
            pub fn recv_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
                self.m.recv_only(buf, Wait::Until(deadline))
            }

            /// [`recv`](Self::recv) without waiting.
            ///
            /// # Errors
            ///
            /// As [`recv`](Self::recv).
            pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
                self.m.recv_only(buf, Wait::Try)
            }

            /// Receive one whole message and the descriptors it carries (at most `max_fds`,
            /// close-on-exec).
            ///
            /// # Errors
            ///
            /// [`Error::FdsTruncated`] (every descriptor that arrived is closed),
            /// [`Error::MessageTruncated`], and as [`recv`](Self::recv).
            pub fn recv_with_fds(
                &self,
                buf: &mut [u8],
                max_fds: usize,
            ) -> Result<(usize, Vec<OwnedFd>)> {
                self.m.recv_with_fds(buf, max_fds, self.m.read_wait())
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
                self.m.recv_with_fds(buf, max_fds, Wait::Until(deadline))
            }

            /// [`recv_with_fds`](Self::recv_with_fds) without waiting.
            ///
            /// # Errors
            ///
            /// As [`recv_with_fds`](Self::recv_with_fds), with [`Error::WouldBlock`].
            pub fn try_recv_with_fds(
                &self,
                buf: &mut [u8],
                max_fds: usize,
            ) -> Result<(usize, Vec<OwnedFd>)> {
                self.m.recv_with_fds(buf, max_fds, Wait::Try)
            }

            /// Make receives wait at most `timeout` per call (`None`: forever).
            pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
                self.m.read_timeout.set(timeout);
                Ok(())
            }

            /// Make sends wait at most `timeout` per call (`None`: forever).
            pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
                self.m.write_timeout.set(timeout);
                Ok(())
            }

            /// Switch `O_NONBLOCK` (shared with every duplicate of the descriptor).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `fcntl`.
            pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
                set_fd_nonblocking(self.m.fd.as_fd(), yes)?;
                self.m.nonblocking.set(yes);
                Ok(())
            }

            /// Whether this socket was last set (or found) non-blocking.
            pub fn is_nonblocking(&self) -> bool {
                self.m.nonblocking.get()
            }

            /// The peer's credentials, captured when the connection was made (see
            /// [`PeerCredentials`]).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `getsockopt` (`ENOTCONN` for an unconnected datagram
            /// socket).
            pub fn peer_credentials(&self) -> Result<PeerCredentials> {
                peer_credentials(&self.m.fd)
            }

            /// This socket's address (unnamed unless bound).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `getsockname`.
            pub fn local_addr(&self) -> Result<SocketAddr> {
                let a: UnixAddr =
                    getsockname(self.m.fd.as_raw_fd()).map_err(Error::sys("getsockname"))?;
                Ok(SocketAddr::from_unix_addr(&a))
            }

            /// The peer's address (the one connected to).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `getpeername` (`ENOTCONN` when not connected).
            pub fn peer_addr(&self) -> Result<SocketAddr> {
                let a: UnixAddr =
                    getpeername(self.m.fd.as_raw_fd()).map_err(Error::sys("getpeername"))?;
                Ok(SocketAddr::from_unix_addr(&a))
            }

            /// Shut down reading, writing or both (`shutdown(2)`): the peer's receives see end
            /// of stream after a write shutdown, and this side's receives return 0 after a
            /// read shutdown.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`] from `shutdown` (`ENOTCONN` when not connected).
            pub fn shutdown(&self, how: Shutdown) -> Result<()> {
                use nix::sys::socket::Shutdown as S;
                let how = match how {
                    Shutdown::Read => S::Read,
                    Shutdown::Write => S::Write,
                    Shutdown::Both => S::Both,
                };
                nix::sys::socket::shutdown(self.m.fd.as_raw_fd(), how)
                    .map_err(Error::sys("shutdown"))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.m.fd.as_raw_fd())
                    .field("nonblocking", &self.m.nonblocking.get())
                    .finish_non_exhaustive()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.m.fd.as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.m.fd.as_raw_fd()
            }
        }
    };
}

/// A Unix datagram socket (`SOCK_DGRAM`): bound or not, connected or not. Closed on drop;
/// a socket file it bound is removed then.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{SocketAddr, UnixDatagram};
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-dgram-{}.sock", std::process::id()));
/// let server = UnixDatagram::bind(&path)?; // mode 0600
/// let client = UnixDatagram::unbound()?;
/// client.send_to(b"one message", &SocketAddr::from_path(&path)?)?;
/// let mut buf = [0u8; 64];
/// let (n, from) = server.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"one message");
/// assert!(from.is_unnamed()); // the client never bound
/// # Ok::<(), ipcraft_socket::Error>(())
/// ```
pub struct UnixDatagram {
    m: Msg,
    #[allow(dead_code)] // held for its Drop: removes the socket file
    owned: Option<OwnedFile>,
}

message_methods!(UnixDatagram);

impl UnixDatagram {
    /// Bind to a filesystem path, the file's mode exactly [`DEFAULT_MODE`](crate::DEFAULT_MODE) (0600, whatever the
    /// umask; senders need write permission). The socket owns the file and removes it on drop.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as [`bind_with`](Self::bind_with).
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), &SocketAddr::from_path(path)?)
    }

    /// Bind to a path or an abstract name with the default options.
    ///
    /// # Errors
    ///
    /// As [`bind_with`](Self::bind_with).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), addr)
    }

    /// Bind to a path (file mode exactly the options' mode, applied before the file exists,
    /// see [`UnixListener::bind_with`]) or an abstract name (no file, no mode), starting in
    /// the options' blocking mode. The backlog and peer policy are for listeners and are not
    /// used here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMode`]; [`Error::Sys`] from `socket`, `bind` (`EADDRINUSE`, `ENOENT`
    /// for a missing directory) or `chmod`.
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        let (fd, owned) = bind_unix(addr, SockType::Datagram, options.mode_bits(), false)?;
        let socket = Self {
            m: Msg::new(fd),
            owned,
        };
        if options.is_nonblocking() {
            socket.set_nonblocking(true)?;
        }
        Ok(socket)
    }

    /// An unbound datagram socket, to send from (replies cannot reach it).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socket`.
    pub fn unbound() -> Result<Self> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(Error::sys("socket"))?;
        Ok(Self {
            m: Msg::new(fd),
            owned: None,
        })
    }

    /// Two connected datagram sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair`.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((
            Self {
                m: Msg::new(a),
                owned: None,
            },
            Self {
                m: Msg::new(b),
                owned: None,
            },
        ))
    }

    /// Set the default destination (and the only source accepted) to the socket bound at
    /// `path`: `connect(2)`, as std's `UnixDatagram::connect`.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<()> {
        self.connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Set the default destination (and the only source accepted) to `addr`, a path or an
    /// abstract name.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when `addr` is a socket file another user owns
    /// ([`connect_with`](Self::connect_with) trusts one on purpose);
    /// [`Error::Sys`] from `connect` (`ENOENT`, `ECONNREFUSED`: nobody bound there).
    pub fn connect_addr(&self, addr: &SocketAddr) -> Result<()> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.connect_unchecked(addr)
    }

    /// Set the default destination with [`ConnectOptions`](crate::ConnectOptions): a path
    /// another user's socket is bound to, trusted on purpose (its owner is checked first).
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`connect_addr`](Self::connect_addr).
    pub fn connect_with(&self, options: &crate::ConnectOptions, addr: &SocketAddr) -> Result<()> {
        crate::trust::check_destination(addr, options.trusted())?;
        self.connect_unchecked(addr)
    }

    pub(crate) fn connect_unchecked(&self, addr: &SocketAddr) -> Result<()> {
        connect(self.m.fd.as_raw_fd(), &addr.to_unix_addr()?)
            .map_err(Error::sys_on("connect", addr))
    }

    /// A second handle to the same socket (`F_DUPFD_CLOEXEC`), with the same settings. The
    /// clone does not own the socket file: only the original removes it.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            m: self.m.try_clone()?,
            owned: None,
        })
    }

    /// Send one message to `addr`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) (`ECONNREFUSED`/`ENOENT` as [`Error::Sys`] when nobody is
    /// bound there, `EAGAIN` as [`Error::WouldBlock`] when the receiver's queue is full);
    /// [`Error::Untrusted`] when `addr` is a socket file another user owns (checked with
    /// `lstat` before the send: `/tmp` is sticky, so only its owner could swap it).
    pub fn send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, &[], Some(addr), self.m.write_wait())
    }

    /// [`send_to`](Self::send_to) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to).
    pub fn try_send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, &[], Some(addr), Wait::Try)
    }

    /// Send one message carrying descriptors to `addr`.
    ///
    /// # Errors
    ///
    /// As [`send_with_fds`](Self::send_with_fds).
    pub fn send_to_with_fds(
        &self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        addr: &SocketAddr,
    ) -> Result<usize> {
        crate::trust::check_destination(addr, &TrustedOwners::new())?;
        self.m.send(msg, fds, Some(addr), self.m.write_wait())
    }

    /// Receive one whole message and its sender's address (unnamed if it never bound).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, self.m.read_wait())
    }

    /// [`recv_from`](Self::recv_from), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_from_deadline(
        &self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, Wait::Until(deadline))
    }

    /// [`recv_from`](Self::recv_from) without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.m.recv_from(buf, Wait::Try)
    }
}

/// Takes ownership of a datagram socket; it owns no socket file.
/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a Unix datagram socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for UnixDatagram {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::UNIX_DATAGRAM)?;
        Ok(Self {
            m: Msg::new(fd),
            owned: None,
        })
    }
}

/// The descriptor; a socket file it bound is left in place.
impl From<UnixDatagram> for OwnedFd {
    fn from(d: UnixDatagram) -> OwnedFd {
        if let Some(mut o) = d.owned {
            o.keep();
        }
        d.m.fd
    }
}

impl From<std::os::unix::net::UnixDatagram> for UnixDatagram {
    fn from(d: std::os::unix::net::UnixDatagram) -> Self {
        Self {
            m: Msg::new(OwnedFd::from(d)),
            owned: None,
        }
    }
}

/// A socket file it bound is left in place.
impl From<UnixDatagram> for std::os::unix::net::UnixDatagram {
    fn from(d: UnixDatagram) -> Self {
        Self::from(OwnedFd::from(d))
    }
}

/// A listening Unix seqpacket socket (`SOCK_SEQPACKET`): connections that keep message
/// boundaries. Binding, the file's mode and ownership, accept deadlines and the peer policy
/// are those of [`UnixListener`].
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{SeqpacketConn, SeqpacketListener, SocketAddr};
/// use std::time::Duration;
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-seq-{}.sock", std::process::id()));
/// let listener = SeqpacketListener::bind(&path)?;
/// let client = SeqpacketConn::connect_addr(&SocketAddr::from_path(&path)?)?;
/// let server = listener.accept_timeout(Duration::from_secs(10))?.0;
/// client.send(b"first")?;
/// client.send(b"second")?;
/// let mut buf = [0u8; 64];
/// assert_eq!(server.recv(&mut buf)?, 5); // one message per receive
/// assert_eq!(server.recv(&mut buf)?, 6);
/// # Ok::<(), ipcraft_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketListener {
    inner: UnixListener,
}

impl SeqpacketListener {
    /// Bind to a path with the default options (mode 0600) and listen.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`], and the address errors of [`SocketAddr::from_path`].
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), &SocketAddr::from_path(path)?)
    }

    /// Bind to a path or abstract name with the default options and listen.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`].
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::bind_with(&BindOptions::new(), addr)
    }

    /// Bind to a path or abstract name with `options` (mode, backlog, blocking mode, peer
    /// policy) and listen; see [`UnixListener::bind_with`].
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_with`].
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Ok(Self {
            inner: options.bind_typed(addr, SockType::SeqPacket)?,
        })
    }

    /// Bind to a path, taking over a stale socket file but never a live one (see
    /// [`UnixListener::bind_reclaiming_stale`], which serializes starters with the same
    /// lock file).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::bind_reclaiming_stale`].
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            inner: options.reclaim_typed(path.as_ref(), SockType::SeqPacket)?,
        })
    }

    fn conn((stream, addr): (UnixStream, SocketAddr)) -> (SeqpacketConn, SocketAddr) {
        (
            SeqpacketConn {
                m: Msg::new(OwnedFd::from(stream)),
            },
            addr,
        )
    }

    /// Accept a connection and the peer's address (see [`UnixListener::accept`]).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept`].
    #[doc(alias = "accept4")]
    pub fn accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept().map(Self::conn)
    }

    /// Accept, waiting at most until `deadline` (monotonic clock).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept_deadline`].
    pub fn accept_deadline(&self, deadline: Deadline) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept_deadline(deadline).map(Self::conn)
    }

    /// Accept, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::accept_timeout`].
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.accept_timeout(timeout).map(Self::conn)
    }

    /// Accept if a connection is waiting.
    ///
    /// # Errors
    ///
    /// As [`UnixListener::try_accept`].
    pub fn try_accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        self.inner.try_accept().map(Self::conn)
    }

    /// The connections as they come, without their addresses (see
    /// [`UnixListener::incoming`]).
    pub fn incoming(&self) -> SeqpacketIncoming<'_> {
        SeqpacketIncoming { listener: self }
    }

    /// Refuse peers the policy does not allow (see [`UnixListener::set_peer_policy`]).
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.inner.set_peer_policy(policy);
    }

    /// Switch non-blocking mode for `accept` (see [`UnixListener::set_nonblocking`]).
    ///
    /// # Errors
    ///
    /// As [`UnixListener::set_nonblocking`].
    pub fn set_nonblocking(&self, yes: bool) -> Result<()> {
        self.inner.set_nonblocking(yes)
    }

    /// Whether `accept` is in non-blocking mode.
    pub fn is_nonblocking(&self) -> bool {
        self.inner.is_nonblocking()
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Leave the socket file in place on drop (see [`UnixListener::persist`]).
    pub fn persist(&mut self) {
        self.inner.persist();
    }

    /// A second handle to the same listening socket (see [`UnixListener::try_clone`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            inner: self.inner.try_clone()?,
        })
    }
}

/// The connections of a [`SeqpacketListener`], from [`SeqpacketListener::incoming`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct SeqpacketIncoming<'a> {
    listener: &'a SeqpacketListener,
}

impl Iterator for SeqpacketIncoming<'_> {
    type Item = Result<SeqpacketConn>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(c, _)| c))
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// Gives up the listening descriptor (in the blocking mode last set); the socket file stays
/// (see [`UnixListener`]'s conversion).
impl From<SeqpacketListener> for OwnedFd {
    fn from(l: SeqpacketListener) -> OwnedFd {
        OwnedFd::from(l.inner)
    }
}

/// A connected seqpacket socket: each send is one message, each receive returns one. Closed
/// on drop; end of stream is a receive of 0 bytes (which is why empty messages are refused).
pub struct SeqpacketConn {
    m: Msg,
}

message_methods!(SeqpacketConn);

impl SeqpacketConn {
    /// Connect to the seqpacket listener at `path`.
    ///
    /// # Errors
    ///
    /// The address errors of [`SocketAddr::from_path`], and as
    /// [`connect_addr`](Self::connect_addr).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?)
    }

    /// Connect to a seqpacket listener at a path or an abstract name.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when the listener belongs to another user (`SO_PEERCRED`,
    /// checked before returning); [`Error::Sys`] from `connect` (`ENOENT`, `ECONNREFUSED`,
    /// `EACCES`).
    pub fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(Error::sys("socket"))?;
        loop {
            match connect(fd.as_raw_fd(), &addr.to_unix_addr()?) {
                Ok(()) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys_on("connect", addr)(e)),
            }
        }
        crate::trust::check_listener(&fd, addr, &TrustedOwners::new())?;
        Ok(Self { m: Msg::new(fd) })
    }

    /// A second handle to the same connection (`F_DUPFD_CLOEXEC`), with the same settings.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            m: self.m.try_clone()?,
        })
    }

    /// Connect, waiting at most until `deadline` while the listener's backlog is full (see
    /// [`UnixStream::connect_deadline`](crate::UnixStream::connect_deadline)).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`], and as [`connect`](Self::connect).
    pub fn connect_deadline(addr: &SocketAddr, deadline: Deadline) -> Result<Self> {
        Self::connect_trusting(addr, deadline, &TrustedOwners::new())
    }

    /// Connect with [`ConnectOptions`](crate::ConnectOptions): a listener another user runs,
    /// trusted on purpose, and a bound on the wait for a full backlog.
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
        let fd = connect_unix(addr, SockType::SeqPacket, deadline)?;
        crate::trust::check_listener(&fd, addr, trusted)?;
        Ok(Self { m: Msg::new(fd) })
    }

    /// [`connect_deadline`](Self::connect_deadline) with a timeout from now.
    ///
    /// # Errors
    ///
    /// As [`connect_deadline`](Self::connect_deadline).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Self> {
        Self::connect_deadline(addr, Deadline::after(timeout))
    }

    /// Two connected seqpacket sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `socketpair`.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair"))?;
        Ok((Self { m: Msg::new(a) }, Self { m: Msg::new(b) }))
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a Unix seqpacket socket that is not listening (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for SeqpacketConn {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::SEQPACKET_CONN)?;
        Ok(Self { m: Msg::new(fd) })
    }
}

/// Adopts a descriptor (inherited, or received over a Unix socket) after checking that it is
/// a listening Unix seqpacket socket (`getsockname`, `SO_TYPE`, `SO_ACCEPTCONN`).
///
/// # Errors
///
/// [`Error::WrongDescriptor`](crate::Error::WrongDescriptor) with the descriptor handed back.
impl TryFrom<OwnedFd> for SeqpacketListener {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        let fd = crate::adopt::check(fd, crate::adopt::SEQPACKET_LISTENER)?;
        Ok(Self {
            inner: UnixListener::adopt(fd),
        })
    }
}

impl From<SeqpacketConn> for OwnedFd {
    fn from(c: SeqpacketConn) -> OwnedFd {
        c.m.fd
    }
}
