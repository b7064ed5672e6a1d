//! What the async message sockets share ([`UnixDatagram`](super::UnixDatagram) in
//! `datagram.rs`, [`SeqpacketConn`](super::SeqpacketConn) in `seqpacket.rs`): their methods,
//! as `message_methods!` gives the blocking ones theirs. A message is sent whole or not at all
//! and received whole, as in the blocking types; every receive is cancel-safe.

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

pub(super) use async_message_methods;
