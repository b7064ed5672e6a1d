//! What the message sockets share: [`UnixDatagram`](crate::UnixDatagram) (`SOCK_DGRAM`, in
//! `datagram.rs`) and [`SeqpacketListener`](crate::SeqpacketListener) /
//! [`SeqpacketConn`](crate::SeqpacketConn) (`SOCK_SEQPACKET`, in `seqpacket.rs`): the socket
//! state and its send and receive paths, and the methods both types have.
//!
//! A message is sent whole or not at all, and received whole: a receive buffer too small for
//! the next message is [`Error::MessageTruncated`] (the message is consumed), never a short
//! read. An empty message is refused ([`Error::EmptyMessage`]): on a seqpacket connection the
//! receiver cannot tell it from end of stream.

use crate::addr::SocketAddr;
use crate::error::{Error, Result};
use crate::options::SCM_MAX_FD;
use crate::sys;
use crate::wait::{Wait, fd_is_nonblocking, io_wait};
use ipcraft_core::{Deadline, FlagSetting, Interest, SysError, TimeoutSetting};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The state every message socket has: the descriptor, its mode and its timeouts.
pub(crate) struct Msg {
    pub(crate) fd: OwnedFd,
    pub(crate) nonblocking: FlagSetting,
    pub(crate) read_timeout: TimeoutSetting,
    pub(crate) write_timeout: TimeoutSetting,
}

impl Msg {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        let nonblocking = fd_is_nonblocking(fd.as_fd());
        Self {
            fd,
            nonblocking: FlagSetting::new(nonblocking),
            read_timeout: TimeoutSetting::new(None),
            write_timeout: TimeoutSetting::new(None),
        }
    }

    /// A second handle to the same socket, with the same settings.
    pub(crate) fn try_clone(&self) -> Result<Self> {
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

    pub(crate) fn read_wait(&self) -> Wait {
        self.read_timeout
            .get()
            .map_or(Wait::Blocking, |t| Wait::Until(Deadline::after(t)))
    }

    pub(crate) fn write_wait(&self) -> Wait {
        self.write_timeout
            .get()
            .map_or(Wait::Blocking, |t| Wait::Until(Deadline::after(t)))
    }

    pub(crate) fn send(
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
    pub(crate) fn recv_only(&self, buf: &mut [u8], wait: Wait) -> Result<usize> {
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
    pub(crate) fn recv_from(&self, buf: &mut [u8], wait: Wait) -> Result<(usize, SocketAddr)> {
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

    pub(crate) fn recv_with_fds(
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

            /// Send one message carrying descriptors (`SCM_RIGHTS`, at most [`SCM_MAX_FD`](crate::SCM_MAX_FD)).
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

pub(crate) use message_methods;
