//! Async rows: each mechanism's tokio API (`async-*`), against a raw tokio baseline doing the
//! same work (`tokio::net::UnixStream`, `UnixDatagram`, `unix::pipe`), in the same
//! [`crate::proto_async`] loops, one `current_thread` runtime per process.
//!
//! - `async-unix-stream`: a socket pair (child's end as its stdin); raw is
//!   `tokio::net::UnixStream` (`write_all`/`read_exact` on its halves).
//! - `async-unix-dgram`: a datagram pair; raw is `tokio::net::UnixDatagram` (`send`/`recv`).
//! - `async-unix-seqpacket`: a seqpacket pair; tokio has no seqpacket type, so raw is the
//!   descriptor in `tokio::io::unix::AsyncFd` with `send(MSG_NOSIGNAL)`/`recv(MSG_TRUNC)`.
//! - ipcraft rows use `ipcraft_socket::tokio`: the stream's `split` halves with
//!   `write_all`/`read_exact` (as the raw row does on tokio's halves), the message sockets'
//!   `send`/`recv`.
//! - `async-pipe`: two pipes (the child's stdin and stdout); raw is `tokio::net::unix::pipe`,
//!   ipcraft is `ipcraft_pipe::tokio` (`write_all`/`read_exact` on both).
//! - `async-channel` / `async-channel-sleep`: `ipcraft::channel::tokio` ends on two anonymous
//!   channels (no raw row: compare with `async-unix-stream`'s raw row, the blocking
//!   `channel` rows and the `cacheline` limit). `-sleep` goes to sleep on the doorbell thread
//!   whenever it waits (`Wait::Sleep`), the path every wake-up of an idle async receiver
//!   takes.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram as StdDatagram, UnixStream as StdStream};
use std::process::Stdio;

use std::os::fd::AsRawFd;

use ipcraft::channel::{Wait, tokio as chan};
use ipcraft_socket::tokio as sock;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, socketpair};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

use crate::harness::{CHILD_TIMEOUT, Case, Env, Impl, Kind, Placement, Sample, Test, child_stdio};
use crate::proto::check_len;
use crate::proto_async::{self, AsyncReceiver, AsyncSender, side};

/// Which mechanism an async row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// Unix stream socket pair.
    UnixStream,
    /// Unix datagram socket pair.
    UnixDgram,
    /// Unix seqpacket socket pair.
    UnixSeqpacket,
    /// Two anonymous pipes.
    Pipe,
    /// Two anonymous channels; `sleep`: `Wait::Sleep`.
    Channel {
        /// Sleep whenever waiting.
        sleep: bool,
    },
}

/// An async case.
#[derive(Debug)]
pub struct AsyncCase {
    mech: Mech,
    imp: Impl,
}

impl AsyncCase {
    /// `imp` is [`Impl::Raw`] (the tokio baseline) or [`Impl::Ipcraft`].
    pub fn new(mech: Mech, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "an async case is raw or ipcraft");
        assert!(
            !(matches!(mech, Mech::Channel { .. }) && imp == Impl::Raw),
            "the channel has no raw row"
        );
        Self { mech, imp }
    }
}

fn timed_out(_: tokio::time::error::Elapsed) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the async side did not finish in time",
    )
}

/// Run `f` (the parent's or child's side) on a fresh `current_thread` runtime, bounded by
/// [`CHILD_TIMEOUT`].
pub(super) fn on_runtime<T>(f: impl AsyncFnOnce() -> io::Result<T>) -> io::Result<T> {
    proto_async::runtime()?.block_on(async {
        tokio::time::timeout(CHILD_TIMEOUT, f())
            .await
            .map_err(timed_out)?
    })
}

/// Bytes out through any `AsyncWrite`.
struct WriteAll<W>(W);

impl<W: tokio::io::AsyncWrite + Unpin> AsyncSender for WriteAll<W> {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.write_all(msg).await
    }
}

/// Bytes in through any `AsyncRead`, `read_exact` of one message.
struct ReadExact<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R> ReadExact<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> AsyncReceiver for ReadExact<R> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.inner.read_exact(&mut self.buf[..len]).await?;
        Ok(&self.buf[..len])
    }
}

/// One message per `send`/`recv` on a tokio datagram socket.
struct Dgram<'a> {
    sock: &'a tokio::net::UnixDatagram,
    buf: Vec<u8>,
}

impl AsyncSender for &tokio::net::UnixDatagram {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let n = tokio::net::UnixDatagram::send(self, msg).await?;
        if n == msg.len() {
            Ok(())
        } else {
            Err(io::Error::other("a datagram went out short"))
        }
    }
}

impl AsyncReceiver for Dgram<'_> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len + 1 {
            self.buf.resize(len + 1, 0);
        }
        let n = self.sock.recv(&mut self.buf).await?;
        check_len(&self.buf[..n], len)
    }
}

/// One message per `send`/`recv` on ipcraft's async message sockets.
trait MsgSocket {
    async fn send_msg(&self, msg: &[u8]) -> io::Result<usize>;
    async fn recv_msg(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl MsgSocket for sock::UnixDatagram {
    async fn send_msg(&self, msg: &[u8]) -> io::Result<usize> {
        self.send(msg).await.map_err(io::Error::from)
    }
    async fn recv_msg(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf).await.map_err(io::Error::from)
    }
}

impl MsgSocket for sock::SeqpacketConn {
    async fn send_msg(&self, msg: &[u8]) -> io::Result<usize> {
        self.send(msg).await.map_err(io::Error::from)
    }
    async fn recv_msg(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf).await.map_err(io::Error::from)
    }
}

struct MsgOut<'a, S>(&'a S);

impl<S: MsgSocket> AsyncSender for MsgOut<'_, S> {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let n = self.0.send_msg(msg).await?;
        if n == msg.len() {
            Ok(())
        } else {
            Err(io::Error::other("a message went out short"))
        }
    }
}

struct MsgIn<'a, S> {
    sock: &'a S,
    buf: Vec<u8>,
}

impl<'a, S> MsgIn<'a, S> {
    fn new(sock: &'a S) -> Self {
        Self {
            sock,
            buf: Vec::new(),
        }
    }
}

impl<S: MsgSocket> AsyncReceiver for MsgIn<'_, S> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len + 1 {
            self.buf.resize(len + 1, 0);
        }
        let n = self.sock.recv_msg(&mut self.buf).await?;
        check_len(&self.buf[..n], len)
    }
}

/// The raw seqpacket baseline (tokio has no seqpacket type): the descriptor in tokio's
/// `AsyncFd`, `send(MSG_NOSIGNAL)` and `recv` through nix inside `try_io`.
fn raw_async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    // `new` is deprecated in favour of `unsafe fn register`, whose contract (the descriptor
    // stays open and the same while registered) an `OwnedFd` keeps by construction.
    #[allow(deprecated)]
    AsyncFd::new(fd)
}

struct RawSeqOut<'a>(&'a AsyncFd<OwnedFd>);

impl AsyncSender for RawSeqOut<'_> {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let n = self
            .0
            .async_io(Interest::WRITABLE, |fd| {
                Ok(nix::sys::socket::send(
                    fd.as_raw_fd(),
                    msg,
                    MsgFlags::MSG_NOSIGNAL,
                )?)
            })
            .await?;
        if n == msg.len() {
            Ok(())
        } else {
            Err(io::Error::other("a message went out short"))
        }
    }
}

struct RawSeqIn<'a> {
    fd: &'a AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl<'a> RawSeqIn<'a> {
    fn new(fd: &'a AsyncFd<OwnedFd>) -> Self {
        Self {
            fd,
            buf: Vec::new(),
        }
    }
}

impl AsyncReceiver for RawSeqIn<'_> {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len + 1 {
            self.buf.resize(len + 1, 0);
        }
        let buf = &mut self.buf;
        let n = self
            .fd
            .async_io(Interest::READABLE, |fd| {
                Ok(nix::sys::socket::recv(
                    fd.as_raw_fd(),
                    buf,
                    MsgFlags::MSG_TRUNC,
                )?)
            })
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        check_len(&self.buf[..n.min(self.buf.len())], len)
    }
}

struct ChanOut(chan::Sender);

impl AsyncSender for ChanOut {
    async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send(msg).await.map_err(io::Error::other)
    }
}

struct ChanIn {
    rx: chan::Receiver,
    buf: Vec<u8>,
}

impl AsyncReceiver for ChanIn {
    async fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let n = self
            .rx
            .recv_into(&mut self.buf)
            .await
            .map_err(io::Error::other)?;
        check_len(&self.buf[..n], len)
    }
}

/// Channel ring bytes per direction, as the blocking channel rows use.
fn channel_capacity(test: &Test) -> usize {
    match test.kind {
        Kind::Latency => 1 << 16,
        _ => 1 << 20,
    }
}

impl AsyncCase {
    fn wait(&self) -> Wait {
        match self.mech {
            Mech::Channel { sleep: true } => Wait::Sleep,
            _ => Wait::Adaptive,
        }
    }

    /// One side on `ends`.
    fn run_side(&self, test: &Test, parent: bool, ends: Ends) -> io::Result<Option<Sample>> {
        let (a, b) = match ends {
            Ends::Fds(a, b) => (a, b),
            Ends::Channel(ends) => {
                let (tx, rx) = *ends;
                return self.run_channel(test, parent, tx, rx);
            }
        };
        let b = || b.ok_or_else(|| io::Error::other("no descriptor for the way in"));
        match (self.mech, self.imp) {
            (Mech::UnixStream, Impl::Ipcraft) => {
                let s = ipcraft_socket::UnixStream::try_from(a).map_err(io::Error::from)?;
                on_runtime(async || {
                    let mut s = sock::UnixStream::from_std(s).map_err(io::Error::from)?;
                    let (r, w) = s.split();
                    side(test, parent, &mut WriteAll(w), &mut ReadExact::new(r)).await
                })
            }
            (Mech::UnixDgram, Impl::Ipcraft) => {
                let s = ipcraft_socket::UnixDatagram::try_from(a).map_err(io::Error::from)?;
                on_runtime(async || {
                    let s = sock::UnixDatagram::from_std(s).map_err(io::Error::from)?;
                    side(test, parent, &mut MsgOut(&s), &mut MsgIn::new(&s)).await
                })
            }
            (Mech::UnixSeqpacket, Impl::Ipcraft) => {
                let s = ipcraft_socket::SeqpacketConn::try_from(a).map_err(io::Error::from)?;
                on_runtime(async || {
                    let s = sock::SeqpacketConn::from_std(s).map_err(io::Error::from)?;
                    side(test, parent, &mut MsgOut(&s), &mut MsgIn::new(&s)).await
                })
            }
            (Mech::UnixSeqpacket, _) => on_runtime(async || {
                let fd = raw_async_fd(a)?;
                side(test, parent, &mut RawSeqOut(&fd), &mut RawSeqIn::new(&fd)).await
            }),
            (Mech::UnixStream, _) => {
                let std = StdStream::from(a);
                std.set_nonblocking(true)?;
                on_runtime(async || {
                    let mut s = tokio::net::UnixStream::from_std(std)?;
                    let (r, w) = s.split();
                    side(test, parent, &mut WriteAll(w), &mut ReadExact::new(r)).await
                })
            }
            (Mech::UnixDgram, _) => {
                let std = StdDatagram::from(a);
                std.set_nonblocking(true)?;
                on_runtime(async || {
                    let s = tokio::net::UnixDatagram::from_std(std)?;
                    let mut rx = Dgram {
                        sock: &s,
                        buf: Vec::new(),
                    };
                    side(test, parent, &mut &s, &mut rx).await
                })
            }
            (Mech::Pipe, Impl::Ipcraft) => {
                let tx = ipcraft_pipe::PipeWriter::try_from(a).map_err(io::Error::from)?;
                let rx = ipcraft_pipe::PipeReader::try_from(b()?).map_err(io::Error::from)?;
                on_runtime(async || {
                    let tx =
                        ipcraft_pipe::tokio::PipeWriter::from_std(tx).map_err(io::Error::from)?;
                    let rx =
                        ipcraft_pipe::tokio::PipeReader::from_std(rx).map_err(io::Error::from)?;
                    side(test, parent, &mut WriteAll(tx), &mut ReadExact::new(rx)).await
                })
            }
            (Mech::Pipe, _) => {
                let b = b()?;
                on_runtime(async || {
                    let tx = tokio::net::unix::pipe::Sender::from_owned_fd(a)?;
                    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(b)?;
                    side(test, parent, &mut WriteAll(tx), &mut ReadExact::new(rx)).await
                })
            }
            (Mech::Channel { .. }, _) => {
                let tx = ipcraft::channel::Sender::from_fd(a).map_err(io::Error::other)?;
                let rx = ipcraft::channel::Receiver::from_fd(b()?).map_err(io::Error::other)?;
                self.run_channel(test, parent, tx, rx)
            }
        }
    }

    fn run_channel(
        &self,
        test: &Test,
        parent: bool,
        mut tx: ipcraft::channel::Sender,
        mut rx: ipcraft::channel::Receiver,
    ) -> io::Result<Option<Sample>> {
        tx.set_wait(self.wait());
        rx.set_wait(self.wait());
        let mut tx = ChanOut(chan::Sender::from_std(tx));
        let mut rx = ChanIn {
            rx: chan::Receiver::from_std(rx),
            buf: Vec::new(),
        };
        on_runtime(async || side(test, parent, &mut tx, &mut rx).await)
    }
}

/// What a side runs on: descriptors (a socket; or the way out and the way in), or the
/// parent's channel ends (made with the channels).
enum Ends {
    Fds(OwnedFd, Option<OwnedFd>),
    Channel(Box<(ipcraft::channel::Sender, ipcraft::channel::Receiver)>),
}

fn unix_pair(ty: SockType) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        ty,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((r, w))
}

impl Case for AsyncCase {
    fn mechanism(&self) -> &'static str {
        match self.mech {
            Mech::UnixStream => "async-unix-stream",
            Mech::UnixDgram => "async-unix-dgram",
            Mech::UnixSeqpacket => "async-unix-seqpacket",
            Mech::Pipe => "async-pipe",
            Mech::Channel { sleep: false } => "async-channel",
            Mech::Channel { sleep: true } => "async-channel-sleep",
        }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let (ends, stdin, stdout) = match self.mech {
            Mech::UnixStream | Mech::UnixDgram | Mech::UnixSeqpacket => {
                let ty = match self.mech {
                    Mech::UnixStream => SockType::Stream,
                    Mech::UnixDgram => SockType::Datagram,
                    _ => SockType::SeqPacket,
                };
                let (ours, theirs) = unix_pair(ty)?;
                (Ends::Fds(ours, None), Stdio::from(theirs), Stdio::null())
            }
            Mech::Pipe => {
                let (child_reads, parent_writes) = pipe()?;
                let (parent_reads, child_writes) = pipe()?;
                (
                    Ends::Fds(parent_writes, Some(parent_reads)),
                    Stdio::from(child_reads),
                    Stdio::from(child_writes),
                )
            }
            Mech::Channel { .. } => {
                let cap = channel_capacity(test);
                let (to_child, child_in) =
                    ipcraft::channel::Sender::anonymous(cap).map_err(io::Error::other)?;
                let (from_child, child_out) =
                    ipcraft::channel::Receiver::anonymous(cap).map_err(io::Error::other)?;
                (
                    Ends::Channel(Box::new((to_child, from_child))),
                    Stdio::from(child_in),
                    Stdio::from(child_out),
                )
            }
        };
        env.two_processes(self, placement, test, stdin, stdout, |_deadline| {
            self.run_side(test, true, ends)?
                .ok_or_else(|| io::Error::other("the parent side measured nothing"))
        })
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (stdin, stdout) = child_stdio()?;
        match self.mech {
            Mech::UnixStream | Mech::UnixDgram | Mech::UnixSeqpacket => {
                self.run_side(test, false, Ends::Fds(stdin, None))
            }
            // The child writes to its stdout and reads its stdin.
            _ => self.run_side(test, false, Ends::Fds(stdout, Some(stdin))),
        }
        .map(drop)
    }
}
