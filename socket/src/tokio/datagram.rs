//! [`UnixDatagram`]: an async Unix datagram socket.

use super::message::async_message_methods;
use super::{Dir, await_io, register};
use crate::error::Result;
use crate::{BindOptions, ConnectOptions, PeerCredentials, SocketAddr};
use ::tokio::io::unix::AsyncFd;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

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
