//! The async types (feature `tokio`) between real processes: each kind (stream, datagram,
//! seqpacket) with descriptors travelling both ways, against an async and a blocking peer
//! process, on both runtime flavours; TCP through `Framed` and `FrameCodec`; the peer policy
//! at accept.
//!
//! Children are this test binary re-run with `--exact child_role` and a role in the
//! environment (`ROLES`, from `ipcraft-testkit`). The cancellation, load and kill tests are
//! in `tokio_stress.rs`.
#![cfg(feature = "tokio")]

mod common;
use common::TempPath;
use futures_core::Stream;
use futures_sink::Sink;
use ipcraft_socket::tokio as aio;
use ipcraft_socket::{Error, FrameReader, FrameWriter, PeerPolicy};
use ipcraft_testkit::{Roles, finish};
use std::future::poll_fn;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::Duration;
use tokio_util::codec::Framed;

const ROLES: Roles = Roles::new("IPCRAFT_SOCKET_TOKIO_ROLE", "IPCRAFT_SOCKET_TOKIO_ARG");
/// Generous: the machine is shared and has 2 cores. Bounds every wait; asserts no speed.
const LONG: Duration = Duration::from_secs(60);
/// Messages (or frames) each child exchanges.
const ROUNDS: u32 = 24;

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    let mut parts = arg.split('|');
    let how = parts.next().unwrap().to_owned();
    let rest = parts.next().unwrap_or("").to_owned();
    let blocking = how == "blocking";
    match role.as_str() {
        "stream" if blocking => stream_child_blocking(&rest),
        "stream" => runtime(&how).block_on(stream_child_async(&rest)),
        "seqpacket" if blocking => msg_child_blocking(Blocking::Seq(
            ipcraft_socket::SeqpacketConn::connect(&rest).unwrap(),
        )),
        "seqpacket" => runtime(&how).block_on(async {
            msg_child_async(Async::Seq(
                aio::SeqpacketConn::connect(&rest).await.unwrap(),
            ))
            .await
        }),
        "datagram" if blocking => msg_child_blocking(Blocking::Dgram(stdin_dgram())),
        "datagram" => runtime(&how).block_on(async {
            msg_child_async(Async::Dgram(
                aio::UnixDatagram::from_std(stdin_dgram()).unwrap(),
            ))
            .await
        }),
        "tcp" => tcp_child(&rest),
        other => panic!("unknown role {other}"),
    }
}

/// A runtime of the flavour named: `ct` current-thread, `mt` multi-thread (2 workers).
fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "ct" => tokio::runtime::Builder::new_current_thread(),
        "mt" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        other => panic!("unknown flavour {other}"),
    }
    .enable_all()
    .build()
    .unwrap()
}

/// Message `i`: never empty, its bytes a function of `i` and position, up to ~60 KB (some
/// above a socket buffer's worth for the stream, so sends and receives come in pieces).
fn payload(i: u32, scale: u32) -> Vec<u8> {
    let len = 1 + ((i * 7919 + 13) % 97) as usize * scale as usize;
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(31)) as u8)
        .collect()
}

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

/// What the parent writes into the pipe of round `i`.
fn pipe_text(i: u32) -> String {
    format!("round {i} through a passed pipe")
}

fn read_pipe(r: std::io::PipeReader) -> String {
    let mut r = r;
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

/// Write round `i`'s text into a received pipe end, and give the end back: it goes home
/// with the reply, so descriptors travel both ways in every mix.
fn answer_pipe(fds: Vec<OwnedFd>, i: u32) -> OwnedFd {
    assert_eq!(fds.len(), 1, "round {i}: one descriptor");
    let mut w = std::io::PipeWriter::from(fds.into_iter().next().unwrap());
    w.write_all(pipe_text(i).as_bytes()).unwrap();
    w.into()
}

/// The child's end of round `i`: its pipe end came back with the reply; write to it, close
/// it, and read the pipe to its end.
fn check_round(r: std::io::PipeReader, fds: Vec<OwnedFd>, i: u32) {
    assert_eq!(fds.len(), 1, "round {i}: the pipe end comes back");
    let mut w = std::io::PipeWriter::from(fds.into_iter().next().unwrap());
    w.write_all(b" and back").unwrap();
    drop(w);
    assert_eq!(read_pipe(r), format!("{} and back", pipe_text(i)));
}

// ---- stream: frames carrying a pipe end each way round ----

fn stream_child_blocking(path: &str) {
    let s = ipcraft_socket::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    for i in 0..ROUNDS {
        let (r, w) = std::io::pipe().unwrap();
        let msg = payload(i, 2000);
        s.send_frame_with_fds(&msg, &[w.as_fd()]).unwrap();
        drop(w);
        let (reply, fds) = s.recv_frame_with_fds(1 << 20, 4).unwrap().unwrap();
        assert_eq!(reply, reversed(&msg), "round {i}");
        check_round(r, fds, i);
    }
}

async fn stream_child_async(path: &str) {
    let mut s = aio::UnixStream::connect(path).await.unwrap();
    for i in 0..ROUNDS {
        let (r, w) = std::io::pipe().unwrap();
        let msg = payload(i, 2000);
        s.send_frame_with_fds(&msg, &[w.as_fd()]).await.unwrap();
        drop(w);
        let (reply, fds) = s.recv_frame_with_fds(1 << 20, 4).await.unwrap().unwrap();
        assert_eq!(reply, reversed(&msg), "round {i}");
        check_round(r, fds, i);
    }
}

/// Serve one stream child: each frame's pipe gets its text, the frame goes back reversed.
async fn serve_stream(mut conn: aio::UnixStream) -> u32 {
    let mut n = 0;
    while let Some((msg, fds)) = conn.recv_frame_with_fds(1 << 20, 4).await.unwrap() {
        let w = answer_pipe(fds, n);
        conn.send_frame_with_fds(&reversed(&msg), &[w.as_fd()])
            .await
            .unwrap();
        n += 1;
    }
    n
}

/// One async listener, an async child (of the other flavour) and a blocking child.
fn stream_kind(flavor: &str, other: &str) {
    let p = TempPath::new("astream");
    let path = p.0.to_str().unwrap().to_owned();
    runtime(flavor).block_on(async {
        let listener = aio::UnixListener::bind(&path).unwrap();
        let children = [
            ROLES.spawn("stream", &format!("{other}|{path}"), Stdio::null()),
            ROLES.spawn("stream", &format!("blocking|{path}"), Stdio::null()),
        ];
        let pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (conn, _) = tokio::time::timeout(LONG, listener.accept())
                .await
                .unwrap()
                .unwrap();
            assert!(pids.contains(&conn.peer_credentials().unwrap().pid));
            tasks.push(tokio::spawn(serve_stream(conn)));
        }
        for t in tasks {
            let served = tokio::time::timeout(LONG, t).await.unwrap().unwrap();
            assert_eq!(served, ROUNDS);
        }
        finish_all(children);
    });
}

fn finish_all(children: impl IntoIterator<Item = Child>) {
    for c in children {
        finish(c, "child");
    }
}

#[test]
fn stream_with_fds_across_processes_current_thread() {
    stream_kind("ct", "mt");
}

#[test]
fn stream_with_fds_across_processes_multi_thread() {
    stream_kind("mt", "ct");
}

// ---- message sockets: datagram (a pair, one end the child's stdin) and seqpacket ----

enum Blocking {
    Seq(ipcraft_socket::SeqpacketConn),
    Dgram(ipcraft_socket::UnixDatagram),
}

enum Async {
    Seq(aio::SeqpacketConn),
    Dgram(aio::UnixDatagram),
}

fn stdin_dgram() -> ipcraft_socket::UnixDatagram {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    ipcraft_socket::UnixDatagram::try_from(fd).unwrap()
}

/// The end of the exchange on a datagram socket (which has no end of stream).
const END: &[u8] = b"END";

fn msg_child_blocking(sock: Blocking) {
    let mut buf = vec![0u8; 70_000];
    for i in 0..ROUNDS {
        let (r, w) = std::io::pipe().unwrap();
        let msg = payload(i, 600);
        let got = match &sock {
            Blocking::Seq(s) => {
                s.set_read_timeout(Some(LONG)).unwrap();
                s.send_with_fds(&msg, &[w.as_fd()]).unwrap();
                drop(w);
                s.recv_with_fds(&mut buf, 2).unwrap()
            }
            Blocking::Dgram(s) => {
                s.set_read_timeout(Some(LONG)).unwrap();
                s.send_with_fds(&msg, &[w.as_fd()]).unwrap();
                drop(w);
                s.recv_with_fds(&mut buf, 2).unwrap()
            }
        };
        assert_eq!(&buf[..got.0], &reversed(&msg)[..], "round {i}");
        check_round(r, got.1, i);
    }
    if let Blocking::Dgram(s) = &sock {
        s.send(END).unwrap();
    }
}

async fn msg_child_async(sock: Async) {
    let mut buf = vec![0u8; 70_000];
    for i in 0..ROUNDS {
        let (r, w) = std::io::pipe().unwrap();
        let msg = payload(i, 600);
        let got = match &sock {
            Async::Seq(s) => {
                s.send_with_fds(&msg, &[w.as_fd()]).await.unwrap();
                drop(w);
                s.recv_with_fds(&mut buf, 2).await.unwrap()
            }
            Async::Dgram(s) => {
                s.send_with_fds(&msg, &[w.as_fd()]).await.unwrap();
                drop(w);
                s.recv_with_fds(&mut buf, 2).await.unwrap()
            }
        };
        assert_eq!(&buf[..got.0], &reversed(&msg)[..], "round {i}");
        check_round(r, got.1, i);
    }
    if let Async::Dgram(s) = &sock {
        s.send(END).await.unwrap();
    }
}

/// Serve one message child: each message's pipe gets its text, the message goes back
/// reversed; until end of stream (seqpacket) or `END` (datagram).
async fn serve_messages(sock: Async) -> u32 {
    let mut buf = vec![0u8; 70_000];
    let mut n = 0;
    loop {
        let (len, fds) = match &sock {
            Async::Seq(s) => s.recv_with_fds(&mut buf, 4).await.unwrap(),
            Async::Dgram(s) => s.recv_with_fds(&mut buf, 4).await.unwrap(),
        };
        if len == 0 || &buf[..len] == END {
            return n;
        }
        let w = answer_pipe(fds, n);
        let rev = reversed(&buf[..len]);
        match &sock {
            Async::Seq(s) => s.send_with_fds(&rev, &[w.as_fd()]).await.unwrap(),
            Async::Dgram(s) => s.send_with_fds(&rev, &[w.as_fd()]).await.unwrap(),
        };
        n += 1;
    }
}

fn seqpacket_kind(flavor: &str, other: &str) {
    let p = TempPath::new("aseq");
    let path = p.0.to_str().unwrap().to_owned();
    runtime(flavor).block_on(async {
        let listener = aio::SeqpacketListener::bind(&path).unwrap();
        let children = [
            ROLES.spawn("seqpacket", &format!("{other}|{path}"), Stdio::null()),
            ROLES.spawn("seqpacket", &format!("blocking|{path}"), Stdio::null()),
        ];
        let pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (conn, _) = tokio::time::timeout(LONG, listener.accept())
                .await
                .unwrap()
                .unwrap();
            assert!(pids.contains(&conn.peer_credentials().unwrap().pid));
            tasks.push(tokio::spawn(serve_messages(Async::Seq(conn))));
        }
        for t in tasks {
            let served = tokio::time::timeout(LONG, t).await.unwrap().unwrap();
            assert_eq!(served, ROUNDS);
        }
        finish_all(children);
    });
}

#[test]
fn seqpacket_with_fds_across_processes_current_thread() {
    seqpacket_kind("ct", "mt");
}

#[test]
fn seqpacket_with_fds_across_processes_multi_thread() {
    seqpacket_kind("mt", "ct");
}

fn datagram_kind(flavor: &str, other: &str) {
    runtime(flavor).block_on(async {
        let mut tasks = Vec::new();
        let mut children = Vec::new();
        for how in [other, "blocking"] {
            let (ours, theirs) = ipcraft_socket::UnixDatagram::pair().unwrap();
            let child = ROLES.spawn(
                "datagram",
                &format!("{how}|"),
                Stdio::from(OwnedFd::from(theirs)),
            );
            let ours = aio::UnixDatagram::from_std(ours).unwrap();
            assert_eq!(
                ours.peer_credentials().unwrap().pid,
                std::process::id() as i32
            );
            tasks.push(tokio::spawn(serve_messages(Async::Dgram(ours))));
            children.push(child);
        }
        for t in tasks {
            let served = tokio::time::timeout(LONG, t).await.unwrap().unwrap();
            assert_eq!(served, ROUNDS);
        }
        finish_all(children);
    });
}

#[test]
fn datagram_with_fds_across_processes_current_thread() {
    datagram_kind("ct", "mt");
}

#[test]
fn datagram_with_fds_across_processes_multi_thread() {
    datagram_kind("mt", "ct");
}

/// A bound async datagram receiver: a blocking sender in another process reaches it by
/// path with `send_to_with_fds`, and `recv_from` names the sender.
#[test]
fn datagram_send_to_a_bound_async_receiver() {
    let p = TempPath::new("adgram-bound");
    runtime("ct").block_on(async {
        let server = aio::UnixDatagram::bind(&p.0).unwrap();
        let client = ipcraft_socket::UnixDatagram::unbound().unwrap();
        let to = ipcraft_socket::SocketAddr::from_path(&p.0).unwrap();
        let (r, w) = std::io::pipe().unwrap();
        client
            .send_to_with_fds(b"with a pipe", &[w.as_fd()], &to)
            .unwrap();
        client.send_to(b"plain", &to).unwrap();
        let mut buf = [0u8; 32];
        let (n, fds) = server.recv_with_fds(&mut buf, 2).await.unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"with a pipe"[..], 1));
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"plain"[..], true));
        drop((w, fds));
        assert_eq!(read_pipe(r), "");
        // A short buffer: the same typed error as the blocking receive.
        client.send_to(b"too long for four", &to).unwrap();
        let e = server.recv(&mut buf[..4]).await.unwrap_err();
        assert!(matches!(e, Error::MessageTruncated { capacity: 4 }), "{e}");
    });
}

/// An unconnected sender whose receiver's queue another socket filled: `poll` finds the
/// sender writable all along (its own buffer has room), and only recent kernels wake it when
/// the receiver drains, so `send_to` must not rely on readiness alone.
#[test]
fn send_to_a_full_receiver_completes_once_it_drains() {
    let p = TempPath::new("adgram-full");
    runtime("mt").block_on(async {
        let receiver = ipcraft_socket::UnixDatagram::bind(&p.0).unwrap();
        let to = ipcraft_socket::SocketAddr::from_path(&p.0).unwrap();
        // Another socket fills the queue: draining it frees none of the sender's buffer.
        let filler = ipcraft_socket::UnixDatagram::unbound().unwrap();
        let sender = aio::UnixDatagram::unbound().unwrap();
        let mut queued = 0u32;
        loop {
            match filler.try_send_to(&queued.to_le_bytes(), &to) {
                Ok(_) => queued += 1,
                Err(Error::WouldBlock { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let pending = tokio::spawn(async move { sender.send_to(b"last", &to).await });
        tokio::time::sleep(Duration::from_millis(50)).await; // most likely pending by now
        let mut buf = [0u8; 8];
        for i in 0..queued {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes(), "message {i}");
        }
        let sent = tokio::time::timeout(LONG, pending)
            .await
            .expect("never hangs");
        assert_eq!(sent.unwrap().unwrap(), 4);
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last");
    });
}

// ---- TCP through Framed and FrameCodec, against a blocking FrameWriter/FrameReader ----

fn tcp_child(addr: &str) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let s = ipcraft_socket::TcpStream::connect_timeout(&addr, LONG).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    let mut tx = FrameWriter::new(&s);
    let mut rx = FrameReader::new(&s);
    for i in 0..ROUNDS {
        let msg = payload(i, 3000);
        tx.send(&msg).unwrap();
        assert_eq!(rx.recv().unwrap().unwrap(), reversed(&msg), "round {i}");
    }
}

/// Serve the `tcp` child through `Framed` over `conn`: every frame back reversed.
async fn serve_framed<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(conn: T) -> u32 {
    let mut framed = Framed::new(conn, aio::FrameCodec::new());
    let mut n = 0;
    while let Some(frame) = tokio::time::timeout(LONG, next(&mut framed)).await.unwrap() {
        send(&mut framed, reversed(&frame.unwrap())).await.unwrap();
        n += 1;
    }
    n
}

#[test]
fn tcp_framed_with_the_codec_on_tokio_streams_against_a_blocking_peer() {
    runtime("mt").block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let child = ROLES.spawn("tcp", &format!("x|{addr}"), Stdio::null());
        let (conn, _) = tokio::time::timeout(LONG, listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(serve_framed(conn).await, ROUNDS);
        finish(child, "tcp child");
    });
}

#[test]
fn tcp_framed_with_the_codec_on_ipcraft_streams_against_a_blocking_peer() {
    runtime("ct").block_on(async {
        let listener = aio::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let child = ROLES.spawn("tcp", &format!("x|{addr}"), Stdio::null());
        let (conn, _) = tokio::time::timeout(LONG, listener.accept())
            .await
            .unwrap()
            .unwrap();
        conn.set_nodelay(true).unwrap();
        assert_eq!(serve_framed(conn).await, ROUNDS);
        finish(child, "tcp child");
        // And an async client: a peer gone is a typed error, never a SIGPIPE.
        let client = aio::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(server);
        let e = loop {
            match client.send(&[0u8; 4096]).await {
                Ok(_) => tokio::task::yield_now().await,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(e, Error::PeerClosed { .. } | Error::ConnectionReset { .. }),
            "{e}"
        );
    });
}

/// The same codec over an ipcraft async Unix stream (`AsyncRead`/`AsyncWrite`), against the
/// blocking framing on the other end of the pair.
#[test]
fn unix_framed_with_the_codec_against_blocking_framing() {
    runtime("ct").block_on(async {
        let (ours, theirs) = ipcraft_socket::UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut tx = FrameWriter::new(&theirs);
            let mut rx = FrameReader::new(&theirs);
            for i in 0..ROUNDS {
                tx.send(&payload(i, 3000)).unwrap();
                assert_eq!(rx.recv().unwrap().unwrap(), reversed(&payload(i, 3000)));
            }
        });
        let ours = aio::UnixStream::from_std(ours).unwrap();
        assert_eq!(serve_framed(ours).await, ROUNDS);
        peer.join().unwrap();
    });
}

/// `StreamExt::next` and `SinkExt::send`, without futures-util.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// `SinkExt::send`: ready, start, flush.
async fn send<S: Sink<I> + Unpin, I>(s: &mut S, item: I) -> Result<(), S::Error> {
    poll_fn(|cx| Pin::new(&mut *s).poll_ready(cx)).await?;
    Pin::new(&mut *s).start_send(item)?;
    poll_fn(|cx| Pin::new(&mut *s).poll_flush(cx)).await
}

// ---- the listener's peer policy, at the async accept ----

#[test]
fn the_async_accept_applies_the_peer_policy() {
    let p = TempPath::new("apolicy");
    runtime("ct").block_on(async {
        let mut listener = aio::UnixListener::bind(&p.0).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        listener.set_peer_policy(Some(PeerPolicy::allow_uids([me + 1])));
        let _refused = aio::UnixStream::connect(&p.0).await.unwrap();
        let e = listener.accept().await.unwrap_err();
        match e {
            Error::PeerRefused { peer } => assert_eq!(peer.uid, me),
            other => panic!("expected PeerRefused, got {other:?}"),
        }
        listener.set_peer_policy(Some(PeerPolicy::allow_uids([me])));
        let client = aio::UnixStream::connect(&p.0).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        client.send(b"in").await.unwrap();
        let mut buf = [0u8; 2];
        assert_eq!(conn.recv(&mut buf).await.unwrap(), 2);
        // Back to the blocking types, in blocking mode, and still connected.
        let conn = conn.into_std().unwrap();
        assert!(!conn.is_nonblocking());
        client.send(b"on").await.unwrap();
        assert_eq!(conn.recv(&mut buf).unwrap(), 2);
    });
}
