//! The async pipe ends, FIFO opens and framing (feature `tokio`) between real processes, on
//! both runtime flavours, with an async or a blocking peer.
//!
//! Children are this test binary re-run with `--exact child_role` and the role in the
//! environment (see [`spawn_role`]); the role's argument says which peer to be: `blocking`,
//! or async on a `ct` (current-thread) or `mt` (multi-thread) runtime. A child's data channels
//! are its stdin and its **stderr**: the harness prints its own lines on stdout, which a child
//! uses only for markers. Every child is killed and reaped on drop ([`Reaper`]), so a failing
//! test leaves no process; FIFO paths are unique and removed on drop ([`TempPath`]).
#![cfg(feature = "tokio")]

mod common;
use common::TempPath;
use futures_util::{SinkExt, StreamExt};
use ipcraft_core::codec::FrameCodec;
use ipcraft_pipe::tokio::{Fifo as AsyncFifo, PipeReader, PipeWriter, pipe};
use ipcraft_pipe::{Error, Fifo, FrameError, FrameReader, FrameWriter};
use ipcraft_testkit::{Roles, finish, kill, wait_for};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

const ROLES: Roles = Roles::new(
    "IPCRAFT_PIPE_TOKIO_TEST_ROLE",
    "IPCRAFT_PIPE_TOKIO_TEST_ARG",
);
/// Generous: the machine is shared and has 2 cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// A runtime of the flavour `ct` (current thread) or `mt` (multi-thread, two workers).
fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    match flavor {
        "ct" => tokio::runtime::Builder::new_current_thread(),
        "mt" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        other => panic!("unknown runtime flavour {other}"),
    }
    .enable_all()
    .build()
    .unwrap()
}

/// Kills and reaps the child on drop unless it was finished.
struct Reaper(Option<Child>);

impl Reaper {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    fn finish(mut self, what: &str) -> String {
        finish(self.0.take().unwrap(), what)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child playing `role` with `arg`; its data channels are `stdin` and `stderr`.
fn spawn_role(role: &str, arg: &str, stdin: Stdio, stderr: Stdio) -> Reaper {
    let child = ROLES
        .command(role, arg)
        .stdin(stdin)
        .stderr(stderr)
        .spawn()
        .unwrap();
    Reaper(Some(child))
}

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    let (peer, rest) = arg.split_once(' ').unwrap_or((&arg, ""));
    match (role.as_str(), peer) {
        ("echo", "blocking") => {
            std::io::copy(&mut stdin_reader(), &mut stderr_writer()).unwrap();
        }
        ("echo", flavor) => runtime(flavor).block_on(async {
            let (mut r, mut w) = async_stdio();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
        }),
        ("frames-reversed", "blocking") => {
            let mut rx = FrameReader::new(stdin_reader());
            let mut tx = FrameWriter::new(stderr_writer());
            while let Some(frame) = rx.next_frame().unwrap() {
                tx.send(&frame.iter().rev().copied().collect::<Vec<u8>>())
                    .unwrap();
            }
        }
        // Framed over both directions at once (tokio's `join` of the two ends).
        ("frames-reversed", flavor) => runtime(flavor).block_on(async {
            let (r, w) = async_stdio();
            let mut framed = Framed::new(tokio::io::join(r, w), FrameCodec::new());
            while let Some(frame) = framed.next().await {
                let reply: Vec<u8> = frame.unwrap().iter().rev().copied().collect();
                framed.send(reply).await.unwrap();
            }
        }),
        ("fifo-writer", "blocking") => {
            let mut tx = FrameWriter::new(Fifo::open_writer(rest, Some(PEER_TIMEOUT)).unwrap());
            for i in 0..100 {
                tx.send(&numbered_frame(i)).unwrap();
            }
        }
        ("fifo-writer", flavor) => runtime(flavor).block_on(async {
            let w = timeout(PEER_TIMEOUT, AsyncFifo::open_writer(rest)).await;
            let mut tx = FramedWrite::new(w.unwrap().unwrap(), FrameCodec::new());
            for i in 0..100 {
                tx.send(numbered_frame(i)).await.unwrap();
            }
        }),
        ("fifo-reader", "blocking") => {
            let mut rx = FrameReader::new(Fifo::open_reader(rest, Some(PEER_TIMEOUT)).unwrap());
            let mut count = 0;
            while let Some(frame) = rx.next_frame().unwrap() {
                assert_eq!(
                    frame,
                    numbered_frame(count),
                    "frame {count} whole, in order"
                );
                count += 1;
            }
            println!("COUNT={count}");
        }
        ("fifo-reader", flavor) => runtime(flavor).block_on(async {
            let r = timeout(PEER_TIMEOUT, AsyncFifo::open_reader(rest)).await;
            let mut rx = FramedRead::new(r.unwrap().unwrap(), FrameCodec::new());
            let mut count = 0;
            while let Some(frame) = rx.next().await {
                assert_eq!(frame.unwrap(), numbered_frame(count), "frame {count}");
                count += 1;
            }
            println!("COUNT={count}");
        }),
        ("paced-frames", _) => paced_frames_role(rest),
        ("partial-frame", _) => partial_frame_role(),
        ("hold-stdin", _) => {
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// Our stdin and stderr as blocking pipe ends (duplicates, close-on-exec).
fn stdin_reader() -> ipcraft_pipe::PipeReader {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    ipcraft_pipe::PipeReader::try_from(fd).unwrap()
}

fn stderr_writer() -> ipcraft_pipe::PipeWriter {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
    ipcraft_pipe::PipeWriter::try_from(fd).unwrap()
}

/// Our stdin and stderr as async ends (in the current runtime).
fn async_stdio() -> (PipeReader, PipeWriter) {
    (
        PipeReader::from_std(stdin_reader()).unwrap(),
        PipeWriter::from_std(stderr_writer()).unwrap(),
    )
}

/// Frame `i`: its number, then a pattern of a length that varies with `i` (0 to 9 KiB, and
/// past the pipe's 64 KiB capacity every 500th frame).
fn numbered_frame(i: u32) -> Vec<u8> {
    let len = if i % 500 == 499 {
        150_000
    } else {
        (i as usize * 37) % 9000
    };
    let mut f = i.to_le_bytes().to_vec();
    f.extend((0..len).map(|j| (j as u32 ^ i) as u8));
    f
}

/// Frames that only arrive in pieces: for each of the first `arg` frames, the length prefix
/// and half the payload, then (after a byte on stdin says go) the rest; then as many frames
/// again at full speed.
fn paced_frames_role(arg: &str) {
    let paced: u32 = arg.parse().unwrap();
    let mut out = stderr_writer();
    let mut go = stdin_reader();
    for i in 0..paced {
        let frame = numbered_frame(i);
        let mut wire = (frame.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&frame);
        let half = 4 + frame.len() / 2;
        out.write_all(&wire[..half]).unwrap();
        go.read_exact(&mut [0u8]).unwrap();
        out.write_all(&wire[half..]).unwrap();
    }
    let mut tx = FrameWriter::new(out);
    for i in paced..2 * paced {
        tx.send(&numbered_frame(i)).unwrap();
    }
}

fn partial_frame_role() {
    let mut out = stderr_writer();
    let mut tx = FrameWriter::new(&mut out);
    for i in 0..3u8 {
        tx.send(&[i; 1000]).unwrap();
    }
    // A frame that announces 100 bytes, of which 10 are written before we are killed.
    out.write_all(&100u32.to_le_bytes()).unwrap();
    out.write_all(&[9u8; 10]).unwrap();
    println!("PARTIAL-WRITTEN");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

/// Four tests of `$body(flavor, peer)`: each runtime flavour, with a blocking and an async
/// peer process.
macro_rules! both_flavours_both_peers {
    ($body:ident) => {
        mod $body {
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn current_thread_with_blocking_peer() {
                super::$body("ct", "blocking");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn current_thread_with_async_peer() {
                super::$body("ct", "ct");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn multi_thread_with_blocking_peer() {
                super::$body("mt", "blocking");
            }
            #[test]
            #[cfg_attr(miri, ignore = "processes")]
            fn multi_thread_with_async_peer() {
                super::$body("mt", "mt");
            }
        }
    };
}

both_flavours_both_peers!(byte_stream_echoed_by_a_child);
both_flavours_both_peers!(framed_messages_echoed_by_a_child);
both_flavours_both_peers!(fifo_frames_both_ways);

/// 1 MiB in uneven writes through a child that copies its stdin to its stderr; what comes
/// back is what went out. Writing and reading run at once, on one task.
fn byte_stream_echoed_by_a_child(flavor: &str, peer: &str) {
    let data: Vec<u8> = (0..(1 << 20) + 3u32)
        .map(|i| ((i * 7) ^ (i >> 9)) as u8)
        .collect();
    let rt = runtime(flavor);
    let child = rt.block_on(async {
        let (to_child, mut tx) = pipe().unwrap();
        let (mut rx, from_child) = pipe().unwrap();
        let child = spawn_role(
            "echo",
            peer,
            to_child.into_std().unwrap().into(),
            from_child.into_std().unwrap().into(),
        );
        let send = async {
            let mut sizes = [1, 4096, 70_000, 13, 65_536, 333].iter().cycle();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                tx.write_all(&rest[..n]).await.unwrap();
                rest = &rest[n..];
            }
            drop(tx); // end of stream: the child's copy ends, and so does its stderr
        };
        let mut got = Vec::new();
        let recv = rx.read_to_end(&mut got);
        let ((), n) = timeout(PEER_TIMEOUT, async { tokio::join!(send, recv) })
            .await
            .expect("the echo never hangs");
        assert_eq!(n.unwrap(), data.len());
        assert!(got == data, "the bytes came back unchanged");
        child
    });
    child.finish("echo child");
}

/// Frames of 0 to 150 000 bytes (past the pipe's capacity) to a child that sends each back
/// reversed: `FramedWrite` and `FramedRead` here; `FrameReader`/`FrameWriter` or `Framed`
/// there.
fn framed_messages_echoed_by_a_child(flavor: &str, peer: &str) {
    const N: u32 = 600;
    let rt = runtime(flavor);
    let child = rt.block_on(async {
        let (to_child, tx) = pipe().unwrap();
        let (rx, from_child) = pipe().unwrap();
        let child = spawn_role(
            "frames-reversed",
            peer,
            to_child.into_std().unwrap().into(),
            from_child.into_std().unwrap().into(),
        );
        let mut tx = FramedWrite::new(tx, FrameCodec::new());
        let mut rx = FramedRead::new(rx, FrameCodec::new());
        let send = async {
            for i in 0..N {
                tx.send(numbered_frame(i)).await.unwrap();
            }
            drop(tx);
        };
        let recv = async {
            for i in 0..N {
                let reply = rx.next().await.expect("a reply").unwrap();
                assert!(
                    reply.iter().eq(numbered_frame(i).iter().rev()),
                    "reply {i} is frame {i} reversed"
                );
            }
            assert!(rx.next().await.is_none(), "end of stream after ours");
        };
        timeout(PEER_TIMEOUT, async { tokio::join!(send, recv) })
            .await
            .expect("the exchange never hangs");
        child
    });
    child.finish("frames child");
}

/// FIFOs both ways: our async reader awaits the child's writer, then (on a second FIFO) our
/// async writer awaits the child's reader; 100 frames each way.
fn fifo_frames_both_ways(flavor: &str, peer: &str) {
    let (path, path2) = (
        TempPath::new("tokio-fifo"),
        TempPath::new("tokio-fifo-back"),
    );
    let (fifo, fifo2) = (
        Fifo::create(&path.0).unwrap(),
        Fifo::create(&path2.0).unwrap(),
    );
    let arg = format!("{peer} {}", fifo.path().display());
    let arg2 = format!("{peer} {}", fifo2.path().display());
    runtime(flavor).block_on(async {
        let writer = spawn_role("fifo-writer", &arg, Stdio::null(), Stdio::inherit());
        let r = timeout(PEER_TIMEOUT, AsyncFifo::open_reader(fifo.path()))
            .await
            .expect("a writer came")
            .unwrap();
        let mut rx = FramedRead::new(r, FrameCodec::new());
        for i in 0..100 {
            let frame = timeout(PEER_TIMEOUT, rx.next()).await.unwrap();
            assert_eq!(frame.unwrap().unwrap(), numbered_frame(i));
        }
        assert!(rx.next().await.is_none());
        writer.finish("fifo writer");
        drop(rx);

        // A second FIFO for the other way: a child that another test is spawning holds a copy
        // of every descriptor of ours until it execs, so a reader we closed on this FIFO may
        // still count as the reader our writer's open waits for, and then vanish mid-stream
        // (BrokenPipe) before the real reader came.
        let mut reader = spawn_role("fifo-reader", &arg2, Stdio::null(), Stdio::inherit());
        let w = timeout(PEER_TIMEOUT, AsyncFifo::open_writer(fifo2.path()))
            .await
            .expect("a reader came")
            .unwrap();
        let mut tx = FramedWrite::new(w, FrameCodec::new());
        for i in 0..100 {
            tx.send(numbered_frame(i)).await.unwrap();
        }
        drop(tx);
        let lines = wait_for(reader.child(), "COUNT=100");
        assert_eq!(lines.last().map(String::as_str), Some("COUNT=100"));
        reader.finish("fifo reader");
    });
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn fifo_opens_wait_for_a_peer_and_a_timeout_gives_up_leaving_nothing_open() {
    let path = TempPath::new("tokio-fifo-nopeer");
    let fifo = Fifo::create(&path.0).unwrap();
    runtime("ct").block_on(async {
        let wait = Duration::from_millis(100);
        assert!(
            timeout(wait, AsyncFifo::open_writer(fifo.path()))
                .await
                .is_err()
        );
        assert!(
            timeout(wait, AsyncFifo::open_reader(fifo.path()))
                .await
                .is_err()
        );
    });
    // The dropped reader open closed its descriptor: a writer finds no reader (ENXIO). A
    // child that another test is spawning holds a copy of every descriptor of ours until it
    // execs, so the reader may linger that long: retry.
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let started = std::time::Instant::now();
    loop {
        match open(fifo.path(), flags, Mode::empty()) {
            Err(nix::errno::Errno::ENXIO) => break,
            Ok(_lingering) if started.elapsed() < PEER_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => panic!("a reader stayed open: {other:?}"),
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn framed_recv_cancelled_thousands_of_times_loses_no_frame_current_thread() {
    framed_recv_cancelled_thousands_of_times("ct");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn framed_recv_cancelled_thousands_of_times_loses_no_frame_multi_thread() {
    framed_recv_cancelled_thousands_of_times("mt");
}

/// A `select!` loop drops a pending `FramedRead::next()` each time another branch wins. The
/// child writes each of the first `PACED` frames in two pieces and waits for our word
/// between them, which we give only from the losing branch: so each of those frames is
/// pending (half read) across at least one cancellation. Then it sends as many again at full
/// speed while we keep cancelling. Every frame arrives once, whole and in order.
fn framed_recv_cancelled_thousands_of_times(flavor: &str) {
    const PACED: u32 = 2000;
    runtime(flavor).block_on(async {
        let (go_r, go) = pipe().unwrap();
        let (rx, from_child) = pipe().unwrap();
        let child = spawn_role(
            "paced-frames",
            &format!("blocking {PACED}"),
            go_r.into_std().unwrap().into(),
            from_child.into_std().unwrap().into(),
        );
        let mut rx = FramedRead::new(rx, FrameCodec::new());
        let (mut next, mut go_given, mut cancels) = (0u32, 0u32, 0u64);
        let exchange = async {
            loop {
                tokio::select! {
                    biased;
                    frame = rx.next() => match frame {
                        Some(frame) => {
                            assert_eq!(frame.unwrap(), numbered_frame(next), "frame {next}");
                            next += 1;
                        }
                        None => break,
                    },
                    () = tokio::task::yield_now() => {
                        cancels += 1;
                        if go_given == next && next < PACED {
                            assert_eq!(go.write(&[1]).await.unwrap(), 1);
                            go_given += 1;
                        }
                    }
                }
            }
        };
        timeout(PEER_TIMEOUT * 2, exchange)
            .await
            .expect("the exchange never hangs");
        assert_eq!(next, 2 * PACED, "every frame arrived");
        assert!(cancels >= u64::from(PACED), "{cancels} cancellations");
        println!("{cancels} receives cancelled");
        child.finish("paced writer");
    });
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn writer_killed_mid_frame_is_truncated_for_the_awaiting_reader_current_thread() {
    writer_killed_mid_frame("ct");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn writer_killed_mid_frame_is_truncated_for_the_awaiting_reader_multi_thread() {
    writer_killed_mid_frame("mt");
}

/// The child writes three frames and 14 bytes of a fourth, then is killed (SIGKILL) while we
/// await the rest: we get the three frames, then the blocking reader's `Truncated` error.
fn writer_killed_mid_frame(flavor: &str) {
    runtime(flavor).block_on(async {
        let (rx, w) = pipe().unwrap();
        let mut child = spawn_role(
            "partial-frame",
            "blocking",
            Stdio::null(),
            w.into_std().unwrap().into(),
        );
        let mut rx = FramedRead::new(rx, FrameCodec::new());
        for i in 0..3u8 {
            let frame = timeout(PEER_TIMEOUT, rx.next()).await.unwrap();
            assert_eq!(&frame.unwrap().unwrap()[..], &[i; 1000][..], "frame {i}");
        }
        let killer = tokio::task::spawn_blocking(move || {
            wait_for(child.child(), "PARTIAL-WRITTEN");
            assert_eq!(kill(child.child()).signal(), Some(9));
        });
        // Awaiting the fourth frame while the child dies.
        let (fourth, killed) = tokio::join!(timeout(PEER_TIMEOUT, rx.next()), killer);
        killed.unwrap();
        match fourth.expect("never a hang") {
            Some(Err(FrameError::Truncated {
                expected: 104,
                received: 14,
            })) => {}
            other => panic!("expected a truncation error, got {other:?}"),
        }
        assert!(
            rx.next().await.is_none(),
            "reported once, then end of stream"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn reader_killed_while_the_writer_awaits_room_is_a_broken_pipe() {
    for flavor in ["ct", "mt"] {
        runtime(flavor).block_on(async {
            let (r, w) = pipe().unwrap();
            let mut child = spawn_role(
                "hold-stdin",
                "blocking",
                r.into_std().unwrap().into(),
                Stdio::null(),
            );
            let write = async {
                let big = vec![5u8; 1 << 20]; // far past the pipe's capacity: awaits room
                let mut w = w;
                w.write_all(&big).await
            };
            let killer = tokio::task::spawn_blocking(move || {
                wait_for(child.child(), "HOLDING");
                kill(child.child());
            });
            let (written, killed) = tokio::join!(timeout(PEER_TIMEOUT, write), killer);
            killed.unwrap();
            let err = written.expect("never a hang").unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        });
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn ends_convert_to_and_from_the_blocking_ones() {
    runtime("ct").block_on(async {
        let (r, w) = pipe().unwrap();
        assert!(r.get_ref().is_nonblocking() && w.get_ref().is_nonblocking());
        assert!(w.capacity().unwrap() >= 4096);
        assert!(matches!(
            r.try_read(&mut [0; 8]),
            Err(Error::WouldBlock { .. })
        ));
        w.write_atomic(b"ping").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).await.unwrap(), 4);
        assert!(matches!(
            w.write_atomic(&[0; ipcraft_pipe::PIPE_BUF + 1]).await,
            Err(Error::AtomicWriteTooLarge { .. })
        ));
        let (r, w) = (r.into_std().unwrap(), w.into_std().unwrap());
        assert!(!r.is_nonblocking() && !w.is_nonblocking());
        let (r, w) = (
            PipeReader::from_std(r).unwrap(),
            PipeWriter::from_std(w).unwrap(),
        );
        assert_eq!(w.write(b"pong").await.unwrap(), 4);
        assert_eq!(r.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf[..4], b"pong");
        drop(w);
        assert_eq!(r.read(&mut buf).await.unwrap(), 0, "end of stream");
    });
}
