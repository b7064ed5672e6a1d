//! Sockets: Unix stream (`unix-stream`), datagram (`unix-dgram`) and seqpacket
//! (`unix-seqpacket`) socket pairs, and TCP over loopback (`tcp-loopback`).
//!
//! One socket per measurement, both directions on it: the parent makes a connected pair and
//! hands the child its end as its stdin (stdout is unused).
//! - Unix: `socketpair(2)` of the type (`SOCK_CLOEXEC`, blocking).
//! - TCP: the parent listens on 127.0.0.1 port 0, connects to it and accepts; the child gets
//!   the accepted end. `TCP_NODELAY` is set on both ends for both implementations, so every
//!   message is a segment of its own and the rows do not depend on Nagle's timing.
//!
//! - `raw`: the pair made by `nix`/`std::net` (not measured), then [`crate::raw`]'s loops:
//!   streams `send(MSG_NOSIGNAL)` until the message is out and `recv(0)` until it is in;
//!   message sockets one `send(MSG_NOSIGNAL)` and one `recv(MSG_TRUNC)` per message.
//! - `ipcraft`: `ipcraft_socket`'s `UnixStream::pair`, `UnixDatagram::pair`,
//!   `SeqpacketConn::pair`, `TcpListener`/`TcpStream`; streams through `Write::write_all` /
//!   `Read::read_exact` on `&UnixStream` / `&TcpStream`, message sockets through `send` /
//!   `recv` (one message each).
//!
//! The largest message is 64 KiB for every type: a Unix datagram (and seqpacket) message may
//! be up to the send buffer less a few bytes, and the default `SO_SNDBUF`
//! (`net.core.wmem_default`) is 212992 bytes on a stock kernel.
//!
//! A datagram socket whose peer dies does not see end of stream (only stream and seqpacket
//! sockets get the peer's shutdown), so a parent blocked in `recv` would outlive the child the
//! harness kills at its deadline. For every type, a watcher thread of the parent shuts its
//! socket down (`shutdown(2)`, through a duplicate made before the measurement) if the
//! measurement is not over by the deadline: the blocked call then returns.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ipcraft_socket::{SeqpacketConn, TcpListener, TcpStream, UnixDatagram, UnixStream};
use nix::sys::socket::{AddressFamily, Shutdown, SockFlag, SockType, shutdown, socketpair};

use crate::harness::{Case, Env, Impl, Placement, Sample, Test};
use crate::proto::{self, BytesIn, BytesOut, Receiver, Sender, check_len};
use crate::raw::{RawMsgIn, RawMsgOut, RawStreamIn, RawStreamOut};

/// How long the parent waits for its own loopback connection to be accepted.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `AF_UNIX`, `SOCK_STREAM`.
    UnixStream,
    /// `AF_UNIX`, `SOCK_DGRAM`, connected (a socket pair).
    UnixDgram,
    /// `AF_UNIX`, `SOCK_SEQPACKET`.
    UnixSeqpacket,
    /// TCP over 127.0.0.1.
    Tcp,
}

/// A socket case: one kind of socket, raw libc or ipcraft.
#[derive(Debug)]
pub struct SocketCase {
    kind: Kind,
    imp: Impl,
}

impl SocketCase {
    /// `imp` is [`Impl::Raw`] or [`Impl::Ipcraft`].
    pub fn new(kind: Kind, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "a socket case is raw or ipcraft");
        Self { kind, imp }
    }

    /// A connected pair `(parent's end, child's end)`, made the way this implementation
    /// makes them.
    fn pair(&self) -> io::Result<(OwnedFd, OwnedFd)> {
        let unix = |ty: SockType| -> io::Result<(OwnedFd, OwnedFd)> {
            Ok(socketpair(
                AddressFamily::Unix,
                ty,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?)
        };
        match (self.imp, self.kind) {
            (Impl::Raw, Kind::UnixStream) => unix(SockType::Stream),
            (Impl::Raw, Kind::UnixDgram) => unix(SockType::Datagram),
            (Impl::Raw, Kind::UnixSeqpacket) => unix(SockType::SeqPacket),
            (Impl::Raw, Kind::Tcp) => {
                let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                let ours = std::net::TcpStream::connect(listener.local_addr()?)?;
                let (theirs, _) = listener.accept()?;
                ours.set_nodelay(true)?;
                theirs.set_nodelay(true)?;
                Ok((ours.into(), theirs.into()))
            }
            (_, Kind::UnixStream) => {
                let (a, b) = UnixStream::pair().map_err(io::Error::from)?;
                Ok((a.into(), b.into()))
            }
            (_, Kind::UnixDgram) => {
                let (a, b) = UnixDatagram::pair().map_err(io::Error::from)?;
                Ok((a.into(), b.into()))
            }
            (_, Kind::UnixSeqpacket) => {
                let (a, b) = SeqpacketConn::pair().map_err(io::Error::from)?;
                Ok((a.into(), b.into()))
            }
            (_, Kind::Tcp) => {
                let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .map_err(io::Error::from)?;
                let addr = listener.local_addr().map_err(io::Error::from)?;
                let ours = TcpStream::connect(addr).map_err(io::Error::from)?;
                let (theirs, _) = listener
                    .accept_timeout(ACCEPT_TIMEOUT)
                    .map_err(io::Error::from)?;
                ours.set_nodelay(true).map_err(io::Error::from)?;
                theirs.set_nodelay(true).map_err(io::Error::from)?;
                Ok((ours.into(), theirs.into()))
            }
        }
    }

    /// Run one side of `test` on `sock` (the parent's end, or the child's stdin).
    fn side(&self, test: &Test, sock: OwnedFd, parent: bool) -> io::Result<Option<Sample>> {
        /// Run the parent's or the child's side with this sender and receiver.
        fn run(
            test: &Test,
            parent: bool,
            mut tx: impl Sender,
            mut rx: impl Receiver,
        ) -> io::Result<Option<Sample>> {
            if parent {
                proto::parent(test, &mut tx, &mut rx).map(Some)
            } else {
                proto::child(test, &mut tx, &mut rx).map(|()| None)
            }
        }
        let size = test.size;
        match (self.imp, self.kind) {
            (Impl::Raw, Kind::UnixStream | Kind::Tcp) => run(
                test,
                parent,
                RawStreamOut::new(sock.as_fd()),
                RawStreamIn::new(sock.as_fd(), size),
            ),
            (Impl::Raw, Kind::UnixDgram | Kind::UnixSeqpacket) => run(
                test,
                parent,
                RawMsgOut::new(sock.as_fd()),
                RawMsgIn::new(sock.as_fd(), size),
            ),
            (_, Kind::UnixStream) => {
                let s = UnixStream::try_from(sock).map_err(io::Error::from)?;
                run(test, parent, BytesOut(&s), BytesIn::new(&s, size))
            }
            (_, Kind::Tcp) => {
                let s = TcpStream::try_from(sock).map_err(io::Error::from)?;
                run(test, parent, BytesOut(&s), BytesIn::new(&s, size))
            }
            (_, Kind::UnixDgram) => {
                let s = UnixDatagram::try_from(sock).map_err(io::Error::from)?;
                run(test, parent, MsgOut(&s), MsgIn::new(&s, size))
            }
            (_, Kind::UnixSeqpacket) => {
                let s = SeqpacketConn::try_from(sock).map_err(io::Error::from)?;
                run(test, parent, MsgOut(&s), MsgIn::new(&s, size))
            }
        }
    }
}

impl Case for SocketCase {
    fn mechanism(&self) -> &'static str {
        match self.kind {
            Kind::UnixStream => "unix-stream",
            Kind::UnixDgram => "unix-dgram",
            Kind::UnixSeqpacket => "unix-seqpacket",
            Kind::Tcp => "tcp-loopback",
        }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let (ours, theirs) = self.pair()?;
        let watched = ours.try_clone()?;
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(theirs),
            Stdio::null(),
            |deadline| {
                shut_down_at(deadline, watched, || {
                    self.side(test, ours, true)?
                        .ok_or_else(|| io::Error::other("the parent side measured nothing"))
                })
            },
        )
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let sock = io::stdin().as_fd().try_clone_to_owned()?;
        self.side(test, sock, false).map(drop)
    }
}

/// Run `f`; if it has not returned by `deadline`, shut `sock` (a duplicate of the socket `f`
/// uses) down for reading and writing, so that a call blocked on it returns.
fn shut_down_at<T>(
    deadline: Instant,
    sock: OwnedFd,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let (done, wait_done) = mpsc::channel::<()>();
    thread::scope(|s| {
        s.spawn(move || {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait_done.recv_timeout(left) {
                let _ = shutdown(sock.as_raw_fd(), Shutdown::Both);
            }
        });
        let result = f();
        drop(done);
        result
    })
}

/// The calls both ipcraft message socket types share.
trait MessageSocket {
    fn send_msg(&self, msg: &[u8]) -> ipcraft_socket::Result<usize>;
    fn recv_msg(&self, buf: &mut [u8]) -> ipcraft_socket::Result<usize>;
}

impl MessageSocket for UnixDatagram {
    #[inline]
    fn send_msg(&self, msg: &[u8]) -> ipcraft_socket::Result<usize> {
        self.send(msg)
    }

    #[inline]
    fn recv_msg(&self, buf: &mut [u8]) -> ipcraft_socket::Result<usize> {
        self.recv(buf)
    }
}

impl MessageSocket for SeqpacketConn {
    #[inline]
    fn send_msg(&self, msg: &[u8]) -> ipcraft_socket::Result<usize> {
        self.send(msg)
    }

    #[inline]
    fn recv_msg(&self, buf: &mut [u8]) -> ipcraft_socket::Result<usize> {
        self.recv(buf)
    }
}

/// ipcraft messages out: one `send` per message (whole, or an error).
#[derive(Debug)]
struct MsgOut<'a, S>(&'a S);

impl<S: MessageSocket> Sender for MsgOut<'_, S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self.0.send_msg(msg) {
            Ok(n) if n == msg.len() => Ok(()),
            Ok(_) => Err(io::ErrorKind::WriteZero.into()),
            Err(e) => Err(e.into()),
        }
    }
}

/// ipcraft messages in: one `recv` per message into a buffer allocated up front; a message
/// larger than the buffer is ipcraft's `MessageTruncated` error, an empty read end of stream.
#[derive(Debug)]
struct MsgIn<'a, S> {
    sock: &'a S,
    buf: Vec<u8>,
}

impl<'a, S> MsgIn<'a, S> {
    fn new(sock: &'a S, max: usize) -> Self {
        Self {
            sock,
            buf: vec![0; max.max(1)],
        }
    }
}

impl<S: MessageSocket> Receiver for MsgIn<'_, S> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        match self.sock.recv_msg(&mut self.buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => check_len(&self.buf[..n], len),
            Err(e) => Err(e.into()),
        }
    }
}
