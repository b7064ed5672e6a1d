//! The async types (feature `tokio`) under stress, between real processes: receives
//! cancelled thousands of times while a peer sends (nothing lost, nothing torn), one
//! listener serving 1000 concurrent connections from four processes (no descriptor leaked),
//! a peer SIGKILLed mid-frame (the same typed error as the blocking API, never a hang),
//! descriptors that cannot be delivered (closed, never leaked), and sends to a closed peer
//! with SIGPIPE's default action restored (typed errors, never the signal).
//!
//! Children are this test binary re-run with `--exact child_role` (see `ROLES`). Timeouts are
//! generous bounds on hangs; nothing here asserts a speed.
#![cfg(feature = "tokio")]
#![allow(unsafe_code)] // One call, in `sigpipe_default_role`, with its SAFETY note.

mod common;
use common::{TempPath, open_fd_count};
use futures_core::Stream;
use ipcraft_socket::tokio as aio;
use ipcraft_socket::{BindOptions, Error, FrameError, FrameWriter, SocketAddr};
use ipcraft_testkit::{Roles, finish, kill, wait_for_prefix};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SOCKET_TSTRESS_ROLE", "IPCRAFT_SOCKET_TSTRESS_ARG");
const LONG: Duration = Duration::from_secs(120);

/// Messages in the seqpacket cancellation test, frames in the stream one.
const MESSAGES: u32 = 5000;
const FRAMES: u32 = 2000;
/// The load test: client processes, and connections each.
const CLIENTS: u32 = 4;
const PER_CLIENT: u32 = 250;

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "seq-sender" => seq_sender_role(&arg),
        "frame-sender" => frame_sender_role(),
        "load-server" => load_server_role(),
        "load-client" => load_client_role(&arg),
        "partial-writer" => partial_writer_role(&arg),
        "seq-hang" => seq_hang_role(&arg),
        "truncation" => truncation_role(),
        "sigpipe-default" => runtime(arg == "multi-thread").block_on(sigpipe_default_role()),
        other => panic!("unknown role {other}"),
    }
}

fn marker(line: &str) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap()
}

/// Message or frame `i`: its number, then bytes that depend on `i` and their position, so a
/// torn, duplicated or misplaced piece cannot pass for another.
fn numbered(i: u32) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..(i * 37) % 300).map(|k| (k ^ i) as u8));
    v
}

// ---- cancellation ----

/// Send every message, pausing now and then so the receiver often finds nothing (and its
/// pending receive is cancelled).
fn seq_sender_role(path: &str) {
    let c = ipcraft_socket::SeqpacketConn::connect(path).unwrap();
    for i in 0..MESSAGES {
        c.send(&numbered(i)).unwrap();
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Our stdin is a stream: send every frame in small pieces (1 to 7 bytes), a pipe end on
/// the first piece of every tenth frame, pausing now and then: the receiver's cancelled
/// receives often hold part of a frame.
fn frame_sender_role() {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    let s = ipcraft_socket::UnixStream::try_from(fd).unwrap();
    let (_r, w) = std::io::pipe().unwrap();
    let mut piece = 1;
    for i in 0..FRAMES {
        let mut wire = FrameWriter::new(Vec::new());
        wire.send(&numbered(i)).unwrap();
        let wire = wire.into_parts().0;
        let mut at = 0;
        while at < wire.len() {
            let end = (at + piece).min(wire.len());
            let n = if at == 0 && i % 10 == 0 {
                s.send_with_fds(&wire[at..end], &[w.as_fd()]).unwrap()
            } else {
                s.send(&wire[at..end]).unwrap()
            };
            at += n;
            piece = piece % 7 + 1;
        }
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `select!` a receive against a yield, so the receive is dropped whenever it has to wait;
/// count the drops.
#[test]
fn a_cancelled_message_receive_loses_nothing() {
    let p = TempPath::new("acancel-seq");
    runtime(true).block_on(async {
        let listener = aio::SeqpacketListener::bind(&p.0).unwrap();
        let child = ROLES.spawn("seq-sender", p.0.to_str().unwrap(), Stdio::null());
        let (conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let (mut next, mut cancels) = (0u32, 0u64);
        let deadline = tokio::time::sleep(LONG);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = conn.recv(&mut buf) => {
                    let n = r.unwrap();
                    if n == 0 {
                        break;
                    }
                    assert_eq!(&buf[..n], &numbered(next)[..], "message {next}");
                    next += 1;
                }
                () = tokio::task::yield_now() => cancels += 1,
                () = &mut deadline => panic!("hung after {next} messages"),
            }
        }
        assert_eq!(next, MESSAGES, "every message exactly once");
        assert!(cancels >= 1000, "only {cancels} receives were cancelled");
        finish(child, "sender");
    });
}

#[test]
fn a_cancelled_frame_receive_loses_no_part_of_a_frame() {
    runtime(false).block_on(async {
        let (ours, theirs) = ipcraft_socket::UnixStream::pair().unwrap();
        let child = ROLES.spawn("frame-sender", "", Stdio::from(OwnedFd::from(theirs)));
        let mut conn = aio::UnixStream::from_std(ours).unwrap();
        let (mut next, mut cancels) = (0u32, 0u64);
        let deadline = tokio::time::sleep(LONG);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = conn.recv_frame_with_fds(1024, 2) => {
                    let Some((frame, fds)) = r.unwrap() else { break };
                    assert_eq!(frame, numbered(next), "frame {next}");
                    assert_eq!(fds.len(), usize::from(next % 10 == 0), "frame {next}'s descriptors");
                    next += 1;
                }
                () = tokio::task::yield_now() => cancels += 1,
                () = &mut deadline => panic!("hung after {next} frames"),
            }
        }
        assert_eq!(next, FRAMES, "every frame exactly once");
        assert!(cancels >= 1000, "only {cancels} receives were cancelled");
        finish(child, "sender");
    });
}

// ---- load: 1000 concurrent connections, each passing a descriptor and a frame ----

/// Room for a few thousand descriptors (1000 connections plus what they carry).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= 4096,
        "RLIMIT_NOFILE hard limit {hard} is too low for this test"
    );
}

/// A process of its own, so that its descriptor count is not disturbed by the other tests
/// of this binary. Prints `SERVED <n> FDS <before> <after>`.
fn load_server_role() {
    raise_fd_limit();
    let p = TempPath::new("aload");
    let path = p.0.to_str().unwrap().to_owned();
    let total = CLIENTS * PER_CLIENT;
    let rt = runtime(true);
    let (served, before, after) = rt.block_on(async {
        let options = BindOptions::new().backlog(1024);
        let listener =
            aio::UnixListener::bind_with(&options, &SocketAddr::from_path(&path).unwrap()).unwrap();
        let before = open_fd_count();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| ROLES.spawn("load-client", &path, Stdio::null()))
            .collect();
        let pids: Vec<i32> = clients.iter().map(|c| c.id() as i32).collect();
        // Every connection waits here before its reply: all 1000 are open at once.
        let all_in = Arc::new(tokio::sync::Barrier::new(total as usize));
        let mut tasks = Vec::new();
        for _ in 0..total {
            let (mut conn, _) = tokio::time::timeout(LONG, listener.accept())
                .await
                .unwrap()
                .unwrap();
            let peer = conn.peer_credentials().unwrap();
            assert!(pids.contains(&peer.pid), "an unknown peer {peer:?}");
            let all_in = all_in.clone();
            tasks.push(tokio::spawn(async move {
                let (frame, fds) = conn.recv_frame_with_fds(256, 2).await.unwrap().unwrap();
                assert_eq!(fds.len(), 1);
                let mut w = std::io::PipeWriter::from(fds.into_iter().next().unwrap());
                w.write_all(&frame).unwrap();
                drop(w);
                all_in.wait().await;
                conn.send_frame_with_fds(b"served", &[]).await.unwrap();
                // The client closes when all its connections are served.
                assert!(conn.recv_frame_with_fds(256, 2).await.unwrap().is_none());
            }));
        }
        let mut served = 0;
        for t in tasks {
            tokio::time::timeout(LONG, t).await.unwrap().unwrap();
            served += 1;
        }
        for c in clients {
            finish(c, "load client");
        }
        (served, before, open_fd_count())
    });
    marker(&format!("SERVED {served} FDS {before} {after}"));
}

fn load_client_role(path: &str) {
    raise_fd_limit();
    runtime(false).block_on(async {
        let mut tasks = Vec::new();
        for k in 0..PER_CLIENT {
            let path = path.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut conn = aio::UnixStream::connect(&path).await.unwrap();
                let (r, w) = std::io::pipe().unwrap();
                let text = format!("client {} connection {k}", std::process::id());
                conn.send_frame_with_fds(text.as_bytes(), &[w.as_fd()])
                    .await
                    .unwrap();
                drop(w);
                let (reply, _) = conn.recv_frame_with_fds(256, 0).await.unwrap().unwrap();
                assert_eq!(reply, b"served");
                let mut got = String::new();
                let mut r = r;
                r.read_to_string(&mut got).unwrap();
                assert_eq!(got, text, "the server wrote our frame into our pipe");
                conn
            }));
        }
        let mut conns = Vec::new();
        for t in tasks {
            conns.push(tokio::time::timeout(LONG, t).await.unwrap().unwrap());
        }
    });
}

#[test]
fn one_listener_serves_1000_concurrent_connections_from_four_processes() {
    let mut server = ROLES.spawn("load-server", "", Stdio::null());
    let line = wait_for_prefix(&mut server, "SERVED");
    finish(server, "load server");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[1], (CLIENTS * PER_CLIENT).to_string(), "{line}");
    assert_eq!(parts[3], parts[4], "descriptors before and after: {line}");
}

// ---- descriptors that cannot be delivered are closed, never leaked ----

/// On a current-thread runtime in a process of its own, so the descriptor count is ours.
fn truncation_role() {
    runtime(false).block_on(async {
        let pipes: Vec<_> = (0..5).map(|_| std::io::pipe().unwrap()).collect();
        let fds: Vec<_> = pipes.iter().map(|(r, _)| r.as_fd()).collect();
        let mut buf = [0u8; 16];
        // Message sockets and a plain stream receive.
        let (a, b) = aio::SeqpacketConn::pair().unwrap();
        let (c, d) = aio::UnixStream::pair().unwrap();
        for max_fds in [0usize, 2, 4] {
            a.send_with_fds(b"five", &fds).await.unwrap();
            c.send_with_fds(b"five", &fds).await.unwrap();
            let before = open_fd_count();
            let e = b.recv_with_fds(&mut buf, max_fds).await.unwrap_err();
            assert!(
                matches!(e, Error::FdsTruncated { max_fds: m, .. } if m == max_fds),
                "{e}"
            );
            let e = d.recv_with_fds(&mut buf, max_fds).await.unwrap_err();
            assert!(matches!(e, Error::FdsTruncated { received: 4, .. }), "{e}");
            assert_eq!(
                open_fd_count(),
                before,
                "max_fds {max_fds}: a descriptor leaked"
            );
        }
        // A frame: too many descriptors, then one too long; each kept part-way, then closed.
        for (max_frame, max_fds) in [(64, 3), (3, 8)] {
            let (e, mut f) = aio::UnixStream::pair().unwrap();
            let before = open_fd_count();
            e.send_frame_with_fds(b"frame", &fds).await.unwrap();
            let err = f.recv_frame_with_fds(max_frame, max_fds).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::FdsTruncated { .. } | Error::Frame(FrameError::IncomingOversized { .. })
                ),
                "{err}"
            );
            drop((e, f));
            assert_eq!(
                open_fd_count(),
                before - 2,
                "frame {max_frame}/{max_fds}: a descriptor leaked"
            );
        }
    });
    marker("NO-LEAK");
}

#[test]
fn undeliverable_descriptors_are_closed_by_the_async_receives() {
    let mut child = ROLES.spawn("truncation", "", Stdio::null());
    wait_for_prefix(&mut child, "NO-LEAK");
    finish(child, "truncation");
}

// ---- a peer killed mid-frame or mid-stream ----

/// One whole frame, then 14 bytes of a frame announcing 100, then wait to be killed.
fn partial_writer_role(path: &str) {
    let s = ipcraft_socket::UnixStream::connect(path).unwrap();
    FrameWriter::new(&s).send(b"one whole frame").unwrap();
    let mut raw = &s;
    raw.write_all(&100u32.to_le_bytes()).unwrap();
    raw.write_all(&[9u8; 10]).unwrap();
    marker("PARTIAL-WRITTEN");
    std::thread::sleep(Duration::from_secs(120));
}

fn seq_hang_role(path: &str) {
    let c = ipcraft_socket::SeqpacketConn::connect(path).unwrap();
    c.send(b"one message").unwrap();
    marker("HANGING");
    std::thread::sleep(Duration::from_secs(120));
}

/// The blocking API's error for a peer gone inside a frame of 100 bytes after 14.
fn is_truncated_104_14(e: &FrameError) -> bool {
    matches!(
        e,
        FrameError::Truncated {
            expected: 104,
            received: 14
        }
    )
}

#[test]
fn a_peer_killed_mid_frame_ends_the_frame_receive_with_truncated() {
    let p = TempPath::new("akill-frame");
    runtime(true).block_on(async {
        let listener = aio::UnixListener::bind(&p.0).unwrap();
        let mut child = ROLES.spawn("partial-writer", p.0.to_str().unwrap(), Stdio::null());
        let (mut conn, _) = listener.accept().await.unwrap();
        let (first, _) = conn.recv_frame_with_fds(1024, 0).await.unwrap().unwrap();
        assert_eq!(first, b"one whole frame");
        // Pending on a worker thread while the writer is killed.
        let pending = tokio::spawn(async move { conn.recv_frame_with_fds(1024, 0).await });
        wait_for_prefix(&mut child, "PARTIAL-WRITTEN");
        kill(&mut child);
        let e = tokio::time::timeout(LONG, pending)
            .await
            .expect("never hangs")
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Frame(f) if is_truncated_104_14(f)),
            "{e:?}"
        );
    });
}

#[test]
fn a_peer_killed_mid_frame_ends_framed_with_the_codec_in_truncated() {
    let p = TempPath::new("akill-codec");
    runtime(true).block_on(async {
        let listener = aio::UnixListener::bind(&p.0).unwrap();
        let mut child = ROLES.spawn("partial-writer", p.0.to_str().unwrap(), Stdio::null());
        let (conn, _) = listener.accept().await.unwrap();
        let mut framed = tokio_util::codec::Framed::new(conn, aio::FrameCodec::new());
        let pending = tokio::spawn(async move {
            let first = next(&mut framed).await.unwrap().unwrap();
            assert_eq!(&first[..], b"one whole frame");
            next(&mut framed).await
        });
        wait_for_prefix(&mut child, "PARTIAL-WRITTEN");
        kill(&mut child);
        let outcome = tokio::time::timeout(LONG, pending)
            .await
            .expect("never hangs")
            .unwrap();
        assert!(
            matches!(&outcome, Some(Err(f)) if is_truncated_104_14(f)),
            "{outcome:?}"
        );
    });
}

#[test]
fn a_seqpacket_peer_killed_between_messages_is_end_of_stream() {
    let p = TempPath::new("akill-seq");
    runtime(true).block_on(async {
        let listener = aio::SeqpacketListener::bind(&p.0).unwrap();
        let mut child = ROLES.spawn("seq-hang", p.0.to_str().unwrap(), Stdio::null());
        let (conn, _) = listener.accept().await.unwrap();
        let pending = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let first = conn.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..first], b"one message");
            conn.recv(&mut buf).await
        });
        wait_for_prefix(&mut child, "HANGING");
        kill(&mut child);
        let outcome = tokio::time::timeout(LONG, pending)
            .await
            .expect("never hangs")
            .unwrap();
        // As the blocking receive: messages are never cut, the connection just ends.
        assert!(matches!(outcome, Ok(0)), "{outcome:?}");
    });
}

/// `StreamExt::next`, without futures-util.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

// ---- no SIGPIPE, even with the default disposition ----

/// With SIGPIPE's default action (terminate) restored, every async send to a closed peer is
/// a typed error: had any of them raised the signal, this child would die.
async fn sigpipe_default_role() {
    // SAFETY:
    // - SIG_DFL installs no handler, so no code of ours can run in signal context; the
    //   default action for SIGPIPE terminates the process, which is what this role tests.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    }
    .unwrap();
    let closed = |e: &Error| matches!(e, Error::PeerClosed { .. } | Error::ConnectionReset { .. });
    let (r, _w) = std::io::pipe().unwrap();
    let (mut a, b) = aio::UnixStream::pair().unwrap();
    drop(b);
    assert!(closed(&a.send(b"x").await.unwrap_err()));
    assert!(closed(
        &a.send_with_fds(b"x", &[r.as_fd()]).await.unwrap_err()
    ));
    assert!(closed(
        &a.send_frame_with_fds(b"x", &[r.as_fd()]).await.unwrap_err()
    ));
    let e = tokio::io::AsyncWriteExt::write(&mut a, b"x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    let (a, b) = aio::SeqpacketConn::pair().unwrap();
    drop(b);
    assert!(closed(
        &a.send_with_fds(b"x", &[r.as_fd()]).await.unwrap_err()
    ));
    let listener = aio::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = aio::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    drop(listener.accept().await.unwrap());
    let e = loop {
        match client.send(&[0u8; 4096]).await {
            Ok(_) => tokio::task::yield_now().await,
            Err(e) => break e,
        }
    };
    assert!(closed(&e), "{e}");
    println!("PEER-CLOSED-REPORTED");
}

#[test]
fn no_sigpipe_from_async_sends_even_with_the_default_disposition() {
    for flavor in ["current-thread", "multi-thread"] {
        let child = ROLES.spawn("sigpipe-default", flavor, Stdio::null());
        let out = finish(child, "sigpipe-default");
        assert!(out.contains("PEER-CLOSED-REPORTED"), "{out}");
    }
}
