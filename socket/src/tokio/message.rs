//! The async message sockets: [`UnixDatagram`], [`SeqpacketListener`] and
//! [`SeqpacketConn`]. A message is sent whole or not at all and received whole, as in the
//! blocking types; every receive is cancel-safe.

use super::stream::connect_unix;
use super::{Dir, await_io, register};
use crate::error::Result;
use crate::{BindOptions, ConnectOptions, PeerCredentials, PeerPolicy, SocketAddr};
use ::tokio::io::unix::AsyncFd;
use ipcraft_core::{Deadline, TrustedOwners};
use nix::sys::socket::SockType;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

/// What both async message socket types have, mirroring `message_methods!` of the blocking
/// ones.
macro_rules! async_message_methods {
    ($ty:ident) => {
        impl $ty {
            /// Take a blocking socket to the runtime: its descriptor is made non-blocking
            /// (`O_NONBLOCK`, shared with every duplicate) and registered with the reactor.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `fcntl` or `epoll_ctl`.
            ///
            /// # Panics
            ///
            /// Outside a tokio runtime with I/O enabled.
            pub fn from_std(socket: crate::$ty) -> Result<Self> {
                let was_nonblocking = socket.is_nonblocking();
                socket.set_nonblocking(true)?;
                Ok(Self {
                    io: register(socket)?,
                    was_nonblocking,
                })
            }

            /// The blocking socket, deregistered and in the blocking mode it had before
            /// [`from_std`](Self::from_std) (blocking, if it was made here).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `fcntl`.
            pub fn into_std(self) -> Result<crate::$ty> {
                let socket = self.io.into_inner();
                socket.set_nonblocking(self.was_nonblocking)?;
                Ok(socket)
            }

            /// The blocking socket underneath (non-blocking while here: its `try_` forms
            /// work, its waiting forms fail with [`Error::WouldBlock`](crate::Error::WouldBlock)).
            pub fn get_ref(&self) -> &crate::$ty {
                self.io.get_ref()
            }

            /// A second handle to the same socket (`F_DUPFD_CLOEXEC`), registered on its
            /// own.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) when no descriptor is free.
            pub fn try_clone(&self) -> Result<Self> {
                let mut clone = Self::from_std(self.get_ref().try_clone()?)?;
                clone.was_nonblocking = self.was_nonblocking;
                Ok(clone)
            }

            /// Send one message (`MSG_NOSIGNAL`), waiting for room.
            ///
            /// Cancel-safe: when the future is dropped before it completes, nothing was
            /// sent.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`crate::", stringify!($ty), "::send`].")]
            pub async fn send(&self, msg: &[u8]) -> Result<usize> {
                await_io(&self.io, Dir::Write, |s| s.try_send(msg)).await
            }

            /// [`send`](Self::send) without waiting.
            ///
            /// # Errors
            ///
            /// As [`send`](Self::send), and [`Error::WouldBlock`](crate::Error::WouldBlock).
            pub fn try_send(&self, msg: &[u8]) -> Result<usize> {
                self.get_ref().try_send(msg)
            }

            /// Send one message carrying descriptors (`SCM_RIGHTS`, at most
            /// [`SCM_MAX_FD`](crate::SCM_MAX_FD)), waiting for room.
            ///
            /// Cancel-safe: when the future is dropped before it completes, nothing was
            /// sent.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`crate::", stringify!($ty), "::send_with_fds`].")]
            #[doc(alias = "SCM_RIGHTS")]
            pub async fn send_with_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
                await_io(&self.io, Dir::Write, |s| s.try_send_with_fds(msg, fds)).await
            }

            /// [`send_with_fds`](Self::send_with_fds) without waiting.
            ///
            /// # Errors
            ///
            /// As [`send_with_fds`](Self::send_with_fds), and
            /// [`Error::WouldBlock`](crate::Error::WouldBlock).
            pub fn try_send_with_fds(&self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
                self.get_ref().try_send_with_fds(msg, fds)
            }

            /// Receive one whole message, waiting for one.
            ///
            /// Cancel-safe: a message is taken from the socket only in the poll that
            /// returns it, so a dropped call (a losing `select!` branch) loses none.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`crate::", stringify!($ty), "::recv`] ([`Error::MessageTruncated`](crate::Error::MessageTruncated) for a short buffer).")]
            pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
                await_io(&self.io, Dir::Read, |s| s.try_recv(buf)).await
            }

            /// [`recv`](Self::recv) without waiting.
            ///
            /// # Errors
            ///
            /// As [`recv`](Self::recv), and [`Error::WouldBlock`](crate::Error::WouldBlock).
            pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
                self.get_ref().try_recv(buf)
            }

            /// Receive one whole message and the descriptors it carries (at most `max_fds`,
            /// close-on-exec), waiting for one.
            ///
            /// Cancel-safe: when the future is dropped before it completes, nothing was
            /// received and no descriptor installed.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`crate::", stringify!($ty), "::recv_with_fds`] ([`Error::FdsTruncated`](crate::Error::FdsTruncated): every descriptor that arrived is closed).")]
            pub async fn recv_with_fds(
                &self,
                buf: &mut [u8],
                max_fds: usize,
            ) -> Result<(usize, Vec<OwnedFd>)> {
                await_io(&self.io, Dir::Read, |s| s.try_recv_with_fds(buf, max_fds)).await
            }

            /// [`recv_with_fds`](Self::recv_with_fds) without waiting.
            ///
            /// # Errors
            ///
            /// As [`recv_with_fds`](Self::recv_with_fds), and
            /// [`Error::WouldBlock`](crate::Error::WouldBlock).
            pub fn try_recv_with_fds(
                &self,
                buf: &mut [u8],
                max_fds: usize,
            ) -> Result<(usize, Vec<OwnedFd>)> {
                self.get_ref().try_recv_with_fds(buf, max_fds)
            }

            /// The peer's credentials, captured when the connection was made.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `getsockopt` (`ENOTCONN` for an
            /// unconnected datagram socket).
            #[doc(alias = "SO_PEERCRED")]
            pub fn peer_credentials(&self) -> Result<PeerCredentials> {
                self.get_ref().peer_credentials()
            }

            /// This socket's address.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `getsockname`.
            pub fn local_addr(&self) -> Result<SocketAddr> {
                self.get_ref().local_addr()
            }

            /// The peer's address.
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `getpeername`.
            pub fn peer_addr(&self) -> Result<SocketAddr> {
                self.get_ref().peer_addr()
            }

            /// Shut down reading, writing or both (`shutdown(2)`).
            ///
            /// # Errors
            ///
            /// [`Error::Sys`](crate::Error::Sys) from `shutdown`.
            pub fn shutdown(&self, how: Shutdown) -> Result<()> {
                self.get_ref().shutdown(how)
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.get_ref().as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.get_ref().as_raw_fd()
            }
        }
    };
}

/// An async Unix datagram socket (`SOCK_DGRAM`): [`crate::UnixDatagram`] on tokio, bound or
/// not, connected or not, with descriptor passing. Closed on drop; a socket file it bound is
/// removed then.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::SocketAddr;
/// use ipcraft_socket::tokio::UnixDatagram;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ipcraft_socket::Error> {
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-adgram-{}.sock", std::process::id()));
/// let server = UnixDatagram::bind(&path)?; // mode 0600
/// let client = UnixDatagram::unbound()?;
/// client.send_to(b"one message", &SocketAddr::from_path(&path)?).await?;
/// let mut buf = [0u8; 64];
/// let (n, from) = server.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"one message");
/// assert!(from.is_unnamed());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    io: AsyncFd<crate::UnixDatagram>,
    was_nonblocking: bool,
}

async_message_methods!(UnixDatagram);

impl UnixDatagram {
    /// Bind to a filesystem path (mode 0600): see [`crate::UnixDatagram::bind`].
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::bind`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::UnixDatagram::bind(path)?)
    }

    /// Bind to a path or an abstract name with the default options.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::bind_addr`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::UnixDatagram::bind_addr(addr)?)
    }

    /// Bind with `options` (the mode; the blocking mode does not matter here).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::bind_with`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::UnixDatagram::bind_with(options, addr)?)
    }

    /// Bind to `path`, taking over a dead receiver's socket file but never a live one's:
    /// see [`crate::UnixDatagram::bind_reclaiming_stale`].
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::bind_reclaiming_stale`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::UnixDatagram::bind_reclaiming_stale(options, path)?)
    }

    /// An unbound datagram socket, to send from.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::unbound`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn unbound() -> Result<Self> {
        Self::from_std(crate::UnixDatagram::unbound()?)
    }

    /// Two connected datagram sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::pair`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = crate::UnixDatagram::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }

    /// Set the default destination to the socket bound at `path` (never waits: a datagram
    /// connect does not block).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::connect`] ([`Error::Untrusted`](crate::Error::Untrusted)
    /// for a socket file another user owns).
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<()> {
        self.get_ref().connect(path)
    }

    /// Set the default destination to `addr`.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::connect_addr`].
    pub fn connect_addr(&self, addr: &SocketAddr) -> Result<()> {
        self.get_ref().connect_addr(addr)
    }

    /// Set the default destination with [`ConnectOptions`] (another user's socket, trusted
    /// on purpose).
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::connect_with`].
    pub fn connect_with(&self, options: &ConnectOptions, addr: &SocketAddr) -> Result<()> {
        self.get_ref().connect_with(options, addr)
    }

    /// Send one message to `addr` (whose socket file's owner is checked first, as by
    /// [`crate::UnixDatagram::send_to`]), waiting while the receiver's queue is full.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was sent.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::send_to`].
    ///
    /// # Panics
    ///
    /// When the receiver's queue is full, without the runtime's timer (`enable_time`): the
    /// wait for it to drain is bounded by a back-off, since the kernel does not always
    /// wake an unconnected sender.
    pub async fn send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        self.send_to_waiting(|s| s.try_send_to(msg, addr)).await
    }

    /// Run `send` (a `try_` send to an address) until it does not find the receiver full.
    ///
    /// A full receiver is not a readiness the kernel always reports to an *unconnected*
    /// sender: `poll` finds it writable whenever its own buffer has room, and only a
    /// connected sender is woken when the receiver drains (recent kernels do wake it; older
    /// ones may not). So the wait for readiness is bounded by a back-off (1 to 10 ms, on the
    /// runtime's timer), after which the send is simply tried again. The timer is touched
    /// only after a send found the receiver full.
    async fn send_to_waiting(
        &self,
        mut send: impl FnMut(&crate::UnixDatagram) -> Result<usize>,
    ) -> Result<usize> {
        let mut backoff = std::time::Duration::from_millis(1);
        loop {
            match send(self.get_ref()) {
                Err(crate::Error::WouldBlock { .. }) => {}
                done => return done,
            }
            let ready = await_io(&self.io, Dir::Write, &mut send);
            if let Ok(done) = ::tokio::time::timeout(backoff, ready).await {
                return done;
            }
            backoff = (backoff * 2).min(std::time::Duration::from_millis(10));
        }
    }

    /// [`send_to`](Self::send_to) without waiting.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to), and [`Error::WouldBlock`](crate::Error::WouldBlock).
    pub fn try_send_to(&self, msg: &[u8], addr: &SocketAddr) -> Result<usize> {
        self.get_ref().try_send_to(msg, addr)
    }

    /// Send one message carrying descriptors to `addr`.
    ///
    /// Cancel-safe: when the future is dropped before it completes, nothing was sent.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::send_to_with_fds`].
    ///
    /// # Panics
    ///
    /// As [`send_to`](Self::send_to).
    pub async fn send_to_with_fds(
        &self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        addr: &SocketAddr,
    ) -> Result<usize> {
        self.send_to_waiting(|s| s.try_send_to_with_fds(msg, fds, addr))
            .await
    }

    /// [`send_to_with_fds`](Self::send_to_with_fds) without waiting.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::try_send_to_with_fds`].
    pub fn try_send_to_with_fds(
        &self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        addr: &SocketAddr,
    ) -> Result<usize> {
        self.get_ref().try_send_to_with_fds(msg, fds, addr)
    }

    /// Receive one whole message and its sender's address, waiting for one.
    ///
    /// Cancel-safe: a message is taken only in the poll that returns it.
    ///
    /// # Errors
    ///
    /// As [`crate::UnixDatagram::recv_from`].
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        await_io(&self.io, Dir::Read, |s| s.try_recv_from(buf)).await
    }

    /// [`recv_from`](Self::recv_from) without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](Self::recv_from), and [`Error::WouldBlock`](crate::Error::WouldBlock).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.get_ref().try_recv_from(buf)
    }
}

/// An async connected seqpacket socket (`SOCK_SEQPACKET`), which tokio does not have:
/// [`crate::SeqpacketConn`] on tokio. Each send is one message, each receive returns one;
/// end of stream is a receive of 0 bytes. Closed on drop.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::tokio::{SeqpacketConn, SeqpacketListener};
/// use std::os::fd::AsFd;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ipcraft_socket::Error> {
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-aseq-{}.sock", std::process::id()));
/// let listener = SeqpacketListener::bind(&path)?;
/// let client = SeqpacketConn::connect(&path).await?;
/// let (server, _) = listener.accept().await?;
/// let (r, _w) = std::io::pipe().unwrap();
/// client.send_with_fds(b"first", &[r.as_fd()]).await?;
/// client.send(b"second").await?;
/// let mut buf = [0u8; 64];
/// let (n, fds) = server.recv_with_fds(&mut buf, 1).await?; // one message per receive
/// assert_eq!((&buf[..n], fds.len()), (&b"first"[..], 1));
/// assert_eq!(server.recv(&mut buf).await?, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SeqpacketConn {
    io: AsyncFd<crate::SeqpacketConn>,
    was_nonblocking: bool,
}

async_message_methods!(SeqpacketConn);

impl SeqpacketConn {
    /// Connect to the seqpacket listener at `path`.
    ///
    /// Cancel-safe (a dropped call closes its socket).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled; when the backlog is full, without the
    /// runtime's timer.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_addr(&SocketAddr::from_path(path)?).await
    }

    /// Connect to a path or abstract name, waiting (on the runtime's timer) while the
    /// backlog is full; the listener's credentials are checked before this returns.
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect_addr`].
    ///
    /// # Panics
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_addr(addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::SeqPacket,
            Deadline::never(),
            &TrustedOwners::new(),
        )
        .await?;
        Self::from_std(crate::SeqpacketConn::from_fd(fd))
    }

    /// Connect with [`ConnectOptions`] (a trusted other user, a bound on the wait).
    ///
    /// Cancel-safe, as [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::connect_with`].
    ///
    /// # Panics
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: &ConnectOptions, addr: &SocketAddr) -> Result<Self> {
        let fd = connect_unix(
            addr,
            SockType::SeqPacket,
            options.deadline_of(),
            options.trusted(),
        )
        .await?;
        Self::from_std(crate::SeqpacketConn::from_fd(fd))
    }

    /// Two connected seqpacket sockets (`socketpair(2)`), close-on-exec.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketConn::pair`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn pair() -> Result<(Self, Self)> {
        let (a, b) = crate::SeqpacketConn::pair()?;
        Ok((Self::from_std(a)?, Self::from_std(b)?))
    }
}

/// An async listening seqpacket socket: [`crate::SeqpacketListener`] on tokio. Binding, the
/// file's mode and ownership, and the peer policy are those of
/// [`UnixListener`](super::UnixListener). See [`SeqpacketConn`] for an example.
#[derive(Debug)]
pub struct SeqpacketListener {
    io: AsyncFd<crate::SeqpacketListener>,
}

impl SeqpacketListener {
    /// Bind to a path (mode 0600) and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind(path)?)
    }

    /// Bind to a path or abstract name and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_addr`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_addr(addr)?)
    }

    /// Bind with `options` (mode, backlog, peer policy) and listen.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_with`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_with(options: &BindOptions, addr: &SocketAddr) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_with(options, addr)?)
    }

    /// Bind to a path, taking over a stale socket file but never a live one.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::bind_reclaiming_stale`].
    ///
    /// # Panics
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reclaiming_stale(options: &BindOptions, path: impl AsRef<Path>) -> Result<Self> {
        Self::from_std(crate::SeqpacketListener::bind_reclaiming_stale(
            options, path,
        )?)
    }

    /// Take a blocking listener to the runtime (its descriptor is non-blocking already).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `epoll_ctl`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    pub fn from_std(listener: crate::SeqpacketListener) -> Result<Self> {
        Ok(Self {
            io: register(listener)?,
        })
    }

    /// The blocking listener, deregistered.
    pub fn into_std(self) -> crate::SeqpacketListener {
        self.io.into_inner()
    }

    /// The blocking listener underneath.
    pub fn get_ref(&self) -> &crate::SeqpacketListener {
        self.io.get_ref()
    }

    /// Accept a connection and the peer's address, waiting for one; the peer policy is
    /// applied first, as by [`crate::SeqpacketListener::accept`].
    ///
    /// Cancel-safe: when the future is dropped before it completes, no connection was
    /// taken from the queue.
    ///
    /// # Errors
    ///
    /// As [`crate::SeqpacketListener::accept`]
    /// ([`Error::PeerRefused`](crate::Error::PeerRefused)).
    #[doc(alias = "accept4")]
    pub async fn accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        let (c, addr) = await_io(&self.io, Dir::Read, |l| l.try_accept()).await?;
        Ok((SeqpacketConn::from_std(c)?, addr))
    }

    /// Accept if a connection is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept), and [`Error::WouldBlock`](crate::Error::WouldBlock).
    pub fn try_accept(&self) -> Result<(SeqpacketConn, SocketAddr)> {
        let (c, addr) = self.get_ref().try_accept()?;
        Ok((SeqpacketConn::from_std(c)?, addr))
    }

    /// Refuse, from now on, peers the policy does not allow.
    pub fn set_peer_policy(&mut self, policy: Option<PeerPolicy>) {
        self.io.get_mut().set_peer_policy(policy);
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `getsockname`.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// Leave the socket file in place on drop.
    pub fn persist(&mut self) {
        self.io.get_mut().persist();
    }

    /// A second handle to the same listening socket, registered on its own.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) when no descriptor is free.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_std(self.get_ref().try_clone()?)
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for SeqpacketListener {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}
