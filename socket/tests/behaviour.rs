//! Behaviour within one process: addresses, bind lifecycle, bad input, timeouts and `try_`
//! forms, descriptor passing, peer policy, std interop. Cross-process behaviour, and anything
//! that counts this process's descriptors or changes its umask, is in `cross_process.rs`.

mod common;
use common::{TempPath, abstract_name};
use ipcraft_socket::{
    BindOptions, Deadline, Error, FrameError, FrameReader, FrameWriter, PeerPolicy, SCM_MAX_FD,
    SocketAddr, TcpListener, TcpStream, UnixListener, UnixStream,
};
use nix::errno::Errno;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn bind_owns_its_file_and_removes_it_on_drop() {
    let p = TempPath::new("own");
    let l = UnixListener::bind(&p.0).unwrap();
    assert!(
        std::fs::symlink_metadata(&p.0)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(mode_of(&p.0), 0o600);
    assert_eq!(l.owned_path(), Some(p.0.as_path()));
    assert_eq!(l.local_addr().unwrap().as_path(), Some(p.0.as_path()));
    drop(l);
    assert!(!p.0.exists());

    // persist(): the file stays.
    let mut l = UnixListener::bind(&p.0).unwrap();
    l.persist();
    drop(l);
    assert!(p.0.exists());
    std::fs::remove_file(&p.0).unwrap();

    // A file that replaced ours is not ours: left alone.
    let l = UnixListener::bind(&p.0).unwrap();
    std::fs::remove_file(&p.0).unwrap();
    std::fs::write(&p.0, b"someone else's").unwrap();
    drop(l);
    assert_eq!(std::fs::read(&p.0).unwrap(), b"someone else's");
}

#[test]
fn mode_is_exact_and_checked() {
    let p = TempPath::new("mode");
    let l = UnixListener::bind_with(
        &BindOptions::new().mode(0o666),
        &SocketAddr::from_path(&p.0).unwrap(),
    )
    .unwrap();
    assert_eq!(mode_of(&p.0), 0o666);
    drop(l);
    let e = UnixListener::bind_with(
        &BindOptions::new().mode(0o4600),
        &SocketAddr::from_path(&p.0).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidMode { mode: 0o4600 }), "{e}");
    assert!(!p.0.exists(), "nothing created for a refused mode");
}

#[test]
fn bad_addresses_are_refused_before_any_syscall() {
    let long = format!("/tmp/{}", "x".repeat(103)); // 108 bytes
    for e in [
        UnixListener::bind(&long).unwrap_err(),
        UnixStream::connect(&long).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                Error::PathTooLong {
                    len: 108,
                    max: 107,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("at most 107 bytes"));
    }
    assert!(!std::path::Path::new(&long).exists());
    let e = SocketAddr::from_abstract_name(vec![b'a'; 108]).unwrap_err();
    assert!(matches!(
        e,
        Error::AbstractNameTooLong { len: 108, max: 107 }
    ));
    assert!(matches!(
        UnixListener::bind("/tmp/a\0b").unwrap_err(),
        Error::InvalidAddress { .. }
    ));
    assert_eq!(
        std::io::Error::from(UnixListener::bind("").unwrap_err()).kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn bind_and_connect_failures_are_typed() {
    // A missing directory.
    let e = UnixListener::bind("/tmp/ipcraft-no-such-dir-here/x.sock").unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ENOENT && s.op() == "bind"),
        "{e}"
    );
    assert!(e.to_string().contains("ipcraft-no-such-dir-here"), "{e}");
    // Connect to nothing: no file.
    let p = TempPath::new("nothing");
    let e = UnixStream::connect(&p.0).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ENOENT && s.op() == "connect"),
        "{e}"
    );
    // Connect to a socket file nobody listens on: refused.
    let _l = UnixListener::bind(&p.0).unwrap();
    let q = TempPath::new("stale");
    let mut stale = UnixListener::bind(&q.0).unwrap();
    stale.persist();
    drop(stale); // the file stays, nobody listens: a stale socket file
    let e = UnixStream::connect(&q.0).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ECONNREFUSED),
        "{e}"
    );
    // Bind over an existing file (stale socket included): never replaced.
    let e = UnixListener::bind(&q.0).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::EADDRINUSE),
        "{e}"
    );
    let e = UnixStream::connect_timeout(&SocketAddr::from_path(&q.0).unwrap(), LONG).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ECONNREFUSED),
        "{e}"
    );
}

#[test]
fn abstract_addresses_connect_and_vanish_with_the_listener() {
    let name = abstract_name("abs");
    let addr = SocketAddr::from_abstract_name(&name).unwrap();
    let l = UnixListener::bind_addr(&addr).unwrap();
    assert_eq!(l.owned_path(), None);
    assert_eq!(l.local_addr().unwrap(), addr);
    let c = UnixStream::connect_addr(&addr).unwrap();
    let s = l.accept_timeout(LONG).unwrap().0;
    assert_eq!(c.peer_addr().unwrap(), addr);
    (&c).write_all(b"abs").unwrap();
    let mut buf = [0u8; 3];
    (&s).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abs");
    drop(l);
    let e = UnixStream::connect_addr(&addr).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ECONNREFUSED),
        "{e}"
    );
}

#[test]
fn timeouts_never_return_early_and_try_forms_would_block() {
    let p = TempPath::new("timeouts");
    let l = UnixListener::bind(&p.0).unwrap();
    let t = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(
        l.accept_timeout(t),
        Err(Error::TimedOut { op: "accept" })
    ));
    assert!(start.elapsed() >= t);
    assert!(matches!(l.try_accept(), Err(Error::WouldBlock { .. })));

    let c = UnixStream::connect(&p.0).unwrap();
    let s = l.accept_timeout(LONG).unwrap().0;
    let mut buf = [0u8; 8];
    let start = Instant::now();
    assert!(matches!(
        s.recv_deadline(&mut buf, Deadline::after(t)),
        Err(Error::TimedOut { .. })
    ));
    assert!(start.elapsed() >= t);
    assert!(matches!(
        s.try_recv(&mut buf),
        Err(Error::WouldBlock { .. })
    ));
    s.set_read_timeout(Some(t)).unwrap();
    let e = (&s).read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    s.set_read_timeout(None).unwrap();
    s.set_nonblocking(true).unwrap();
    assert!(matches!(s.recv(&mut buf), Err(Error::WouldBlock { .. })));
    s.set_nonblocking(false).unwrap();

    // Fill the connection until a send with a deadline times out.
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let start = Instant::now();
    loop {
        match c.send_deadline(&chunk, Deadline::after(t)) {
            Ok(n) => sent += n,
            Err(Error::TimedOut { op: "send" }) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < LONG, "the socket never filled up");
    }
    assert!(sent > 0);
    assert!(matches!(c.try_send(&chunk), Err(Error::WouldBlock { .. })));
    // Drain, and the data is all there.
    drop(c);
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), sent);
}

#[test]
fn nonblocking_listener_and_conversions_keep_the_mode() {
    let p = TempPath::new("nb");
    let l = UnixListener::bind_with(
        &BindOptions::new().nonblocking(true),
        &SocketAddr::from_path(&p.0).unwrap(),
    )
    .unwrap();
    assert!(matches!(l.accept(), Err(Error::WouldBlock { .. })));
    let _c = UnixStream::connect(&p.0).unwrap();
    let s = l.accept().unwrap().0;
    assert!(!s.is_nonblocking(), "accepted connections are blocking");
    // Into std: the file stays (std does not own it), blocking mode as set.
    let l = l;
    l.set_nonblocking(false).unwrap();
    let std_l = std::os::unix::net::UnixListener::from(l);
    assert!(p.0.exists());
    let c2 = std::os::unix::net::UnixStream::connect(&p.0).unwrap();
    let (s2, _) = std_l.accept().unwrap(); // blocking again, and works
    let ours = UnixStream::from(s2);
    let theirs = UnixStream::from(c2);
    (&theirs).write_all(b"std").unwrap();
    let mut buf = [0u8; 3];
    (&ours).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"std");
    let back: std::os::unix::net::UnixStream = ours.into();
    assert_eq!(back.peer_addr().unwrap().as_pathname(), None);
}

#[test]
fn a_closed_peer_is_a_typed_error_not_a_signal() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let e = a.send(b"x").unwrap_err();
    assert!(matches!(e, Error::PeerClosed { op: "send" }), "{e}");
    let e = a.send_with_fds(b"x", &[]).unwrap_err();
    assert!(matches!(e, Error::PeerClosed { .. }), "{e}");
    let e = (&a).write(b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
}

#[test]
fn pair_credentials_are_our_own() {
    let (a, _b) = UnixStream::pair().unwrap();
    let c = a.peer_credentials().unwrap();
    assert_eq!(c.pid, std::process::id() as i32);
    assert_eq!(c.uid, nix::unistd::getuid().as_raw());
    assert_eq!(c.gid, nix::unistd::getgid().as_raw());
}

#[test]
fn peer_policy_refuses_before_handing_out_the_connection() {
    let me = nix::unistd::getuid().as_raw();
    let addr = SocketAddr::from_abstract_name(abstract_name("policy")).unwrap();
    let mut l = UnixListener::bind_with(
        &BindOptions::new().peer_policy(PeerPolicy::allow_uids([me.wrapping_add(1)])),
        &addr,
    )
    .unwrap();
    let c = UnixStream::connect_addr(&addr).unwrap();
    let e = l.accept_timeout(LONG).unwrap_err();
    match &e {
        Error::PeerRefused { peer } => {
            assert_eq!(peer.uid, me);
            assert_eq!(peer.pid, std::process::id() as i32);
        }
        other => panic!("expected PeerRefused, got {other}"),
    }
    assert_eq!(
        std::io::Error::from(e).kind(),
        std::io::ErrorKind::PermissionDenied
    );
    // The refused client sees the connection closed.
    let mut buf = [0u8; 1];
    assert_eq!(c.recv_deadline(&mut buf, Deadline::after(LONG)).unwrap(), 0);
    // A policy that allows us.
    l.set_peer_policy(Some(PeerPolicy::allow_uids([me])));
    let _c = UnixStream::connect_addr(&addr).unwrap();
    assert!(l.accept_timeout(LONG).is_ok());
}

fn pipe_fds(n: usize) -> Vec<(std::io::PipeReader, std::io::PipeWriter)> {
    (0..n).map(|_| std::io::pipe().unwrap()).collect()
}

#[test]
fn fd_passing_in_process() {
    let (a, b) = UnixStream::pair().unwrap();
    let pipes = pipe_fds(3);
    let fds: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    assert_eq!(a.send_with_fds(b"three", &fds).unwrap(), 5);
    let mut buf = [0u8; 16];
    let (n, got) = b.recv_with_fds(&mut buf, 8).unwrap();
    assert_eq!(&buf[..n], b"three");
    assert_eq!(got.len(), 3);
    for (fd, (r, _)) in got.into_iter().zip(&pipes) {
        // Close-on-exec, every one.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(
            nix::fcntl::FdFlag::from_bits_retain(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
        let mut w = std::io::PipeWriter::from(fd);
        w.write_all(b"!").unwrap();
        let mut one = [0u8; 1];
        (&*r).read_exact(&mut one).unwrap();
    }
    // Plain bytes with recv_with_fds: no descriptors.
    a.send(b"plain").unwrap();
    let (n, got) = b.recv_with_fds(&mut buf, 8).unwrap();
    assert_eq!((&buf[..n], got.len()), (&b"plain"[..], 0));
}

#[test]
fn fd_passing_bad_input_sends_nothing() {
    let (a, b) = UnixStream::pair().unwrap();
    let (r, _w) = std::io::pipe().unwrap();
    let too_many = vec![r.as_fd(); SCM_MAX_FD + 1];
    let e = a.send_with_fds(b"x", &too_many).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooManyFds {
                count: 254,
                max: 253
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("at most 253"));
    let e = a.send_with_fds(b"", &[r.as_fd()]).unwrap_err();
    assert!(matches!(e, Error::FdsWithoutData), "{e}");
    // Exactly SCM_MAX_FD is fine.
    let max = vec![r.as_fd(); SCM_MAX_FD];
    a.send_with_fds(b"m", &max).unwrap();
    let mut buf = [0u8; 4];
    let (n, got) = b.try_recv_with_fds(&mut buf, SCM_MAX_FD).unwrap();
    assert_eq!((n, got.len()), (1, SCM_MAX_FD));
    // Nothing else was sent.
    assert!(matches!(
        b.try_recv(&mut buf),
        Err(Error::WouldBlock { .. })
    ));
}

#[test]
fn frames_over_a_unix_stream_and_the_maximum() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut tx = FrameWriter::with_max_frame(&a, 1000);
    let e = tx.send(&[0u8; 1001]).unwrap_err();
    assert!(matches!(
        e,
        FrameError::Oversized {
            len: 1001,
            max: 1000
        }
    ));
    tx.send(&[1u8; 1000]).unwrap();
    let mut big = FrameWriter::new(&a);
    big.send(&[2u8; 5000]).unwrap();
    let mut rx = FrameReader::with_max_frame(&b, 1000);
    assert_eq!(rx.next_frame().unwrap().unwrap(), &[1u8; 1000][..]);
    let e = rx.next_frame().unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::IncomingOversized {
                len: 5000,
                max: 1000
            }
        ),
        "{e}"
    );
}

#[test]
fn raw_fd_and_owned_fd_round_trip() {
    let (a, b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let fd = std::os::fd::OwnedFd::from(a);
    assert_eq!(fd.as_raw_fd(), raw);
    let a = UnixStream::try_from(fd).unwrap();
    a.send(b"k").unwrap();
    let mut buf = [0u8; 1];
    b.recv(&mut buf).unwrap();
    let c = a.try_clone().unwrap();
    assert_ne!(c.as_raw_fd(), a.as_raw_fd());
}

#[test]
fn tcp_loopback_frames_timeouts_and_typed_errors() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(
        l.accept_timeout(t),
        Err(Error::TimedOut { op: "accept" })
    ));
    assert!(start.elapsed() >= t);
    assert!(matches!(l.try_accept(), Err(Error::WouldBlock { .. })));

    let c = TcpStream::connect_timeout(&addr, LONG).unwrap();
    let s = l.accept_timeout(LONG).unwrap().0;
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    let mut buf = [0u8; 4];
    assert!(matches!(
        s.recv_deadline(&mut buf, Deadline::after(t)),
        Err(Error::TimedOut { .. })
    ));
    assert!(matches!(
        s.try_recv(&mut buf),
        Err(Error::WouldBlock { .. })
    ));
    let mut tx = FrameWriter::with_max_frame(&c, 100);
    assert!(matches!(
        tx.send(&[0u8; 101]),
        Err(FrameError::Oversized { len: 101, max: 100 })
    ));
    tx.send(b"tcp frame").unwrap();
    assert_eq!(
        FrameReader::new(&s).next_frame().unwrap(),
        Some(&b"tcp frame"[..])
    );

    // A closed peer: the sends that follow fail with a typed error, never SIGPIPE.
    drop(s);
    let start = Instant::now();
    let e = loop {
        match c.send(b"after close") {
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break e,
        }
        assert!(start.elapsed() < LONG);
    };
    assert!(
        matches!(e, Error::PeerClosed { .. } | Error::ConnectionReset { .. }),
        "{e}"
    );

    // Connect to nothing: a port that was just freed.
    drop(l);
    let e = TcpStream::connect_timeout(&addr, LONG).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ECONNREFUSED),
        "{e}"
    );
}

#[test]
fn frames_with_descriptors() {
    let (a, b) = UnixStream::pair().unwrap();
    let (r, mut w) = std::io::pipe().unwrap();
    let big = vec![5u8; 300_000]; // larger than the socket buffer: sent in pieces
    let sender = std::thread::spawn(move || {
        a.send_frame_with_fds(&big, &[r.as_fd()]).unwrap();
        a.send_frame_with_fds(b"small", &[]).unwrap();
        a.send_frame_with_fds(&[1u8; 2000], &[]).unwrap(); // over the receiver's maximum
        a
    });
    let (msg, fds) = b.recv_frame_with_fds(1 << 20, 4).unwrap().unwrap();
    assert_eq!(msg.len(), 300_000);
    assert!(msg.iter().all(|&x| x == 5));
    assert_eq!(fds.len(), 1);
    w.write_all(b"via frame").unwrap();
    drop(w);
    let mut s = String::new();
    std::io::PipeReader::from(fds.into_iter().next().unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "via frame");
    let (msg, fds) = b.recv_frame_with_fds(1000, 4).unwrap().unwrap();
    assert_eq!((&msg[..], fds.len()), (&b"small"[..], 0));
    let e = b.recv_frame_with_fds(1000, 4).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Frame(FrameError::IncomingOversized {
                len: 2000,
                max: 1000
            })
        ),
        "{e}"
    );
    let a = sender.join().unwrap();

    // Too many descriptors: nothing sent. Truncation mid-frame: a typed error.
    let (r, _w) = std::io::pipe().unwrap();
    let e = a
        .send_frame_with_fds(b"x", &vec![r.as_fd(); SCM_MAX_FD + 1])
        .unwrap_err();
    assert!(matches!(e, Error::TooManyFds { .. }), "{e}");
    let (c, d) = UnixStream::pair().unwrap();
    c.send(&[10u8, 0, 0, 0, 1, 2]).unwrap();
    drop(c);
    let e = d.recv_frame_with_fds(1000, 4).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Frame(FrameError::Truncated {
                expected: 14,
                received: 6
            })
        ),
        "{e}"
    );
    // A clean end at a frame boundary.
    let (c, d) = UnixStream::pair().unwrap();
    drop(c);
    assert!(d.recv_frame_with_fds(1000, 4).unwrap().is_none());
}

#[test]
fn datagrams_whole_or_typed_errors() {
    use ipcraft_socket::UnixDatagram;
    let p = TempPath::new("dgram");
    let server = UnixDatagram::bind(&p.0).unwrap();
    assert_eq!(mode_of(&p.0), 0o600);
    let addr = SocketAddr::from_path(&p.0).unwrap();
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(b"first", &addr).unwrap();
    client.send_to(&[7u8; 100], &addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first");
    assert!(from.is_unnamed());
    let e = server.recv(&mut buf).unwrap_err();
    assert!(matches!(e, Error::MessageTruncated { capacity: 64 }), "{e}");
    assert!(matches!(
        client.send_to(b"", &addr),
        Err(Error::EmptyMessage)
    ));
    assert!(matches!(
        server.try_recv(&mut buf),
        Err(Error::WouldBlock { .. })
    ));
    let t = Duration::from_millis(30);
    let start = Instant::now();
    assert!(matches!(
        server.recv_deadline(&mut buf, Deadline::after(t)),
        Err(Error::TimedOut { .. })
    ));
    assert!(start.elapsed() >= t);
    // Descriptors on datagrams.
    let (r, mut w) = std::io::pipe().unwrap();
    client.send_to_with_fds(b"fd", &[r.as_fd()], &addr).unwrap();
    let (n, fds) = server.recv_with_fds(&mut buf, 2).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"fd"[..], 1));
    w.write_all(b"z").unwrap();
    let mut z = [0u8; 1];
    std::io::PipeReader::from(fds.into_iter().next().unwrap())
        .read_exact(&mut z)
        .unwrap();
    // Nobody there: typed errors.
    drop(server);
    assert!(!p.0.exists(), "the binder removed its file");
    let e = client.send_to(b"x", &addr).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == Errno::ENOENT),
        "{e}"
    );
    // A named sender's address comes back, path or abstract.
    let q = TempPath::new("dgram-client");
    let named = UnixDatagram::bind(&q.0).unwrap();
    let abs = SocketAddr::from_abstract_name(abstract_name("dgram")).unwrap();
    let abs_server = UnixDatagram::bind_with(&BindOptions::new().mode(0o600), &abs).unwrap();
    named.send_to(b"hi", &abs).unwrap();
    let (_, from) = abs_server.recv_from(&mut buf).unwrap();
    assert_eq!(from.as_path(), Some(q.0.as_path()));
    abs_server.send_to(b"back", &from).unwrap();
    assert_eq!(named.recv(&mut buf).unwrap(), 4);
    // A connected pair.
    let (a, b) = ipcraft_socket::UnixDatagram::pair().unwrap();
    a.send(b"paired").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 6);
    assert_eq!(a.peer_credentials().unwrap().pid, std::process::id() as i32);
}

#[test]
fn seqpacket_keeps_boundaries_and_reports_end_of_stream() {
    use ipcraft_socket::{SeqpacketConn, SeqpacketListener};
    let addr = SocketAddr::from_abstract_name(abstract_name("seq")).unwrap();
    let l = SeqpacketListener::bind_with(&BindOptions::new(), &addr).unwrap();
    let c = SeqpacketConn::connect_addr(&addr).unwrap();
    let s = l.accept_timeout(LONG).unwrap().0;
    for m in [&b"a"[..], b"bb", &[3u8; 5000]] {
        c.send(m).unwrap();
    }
    let mut buf = vec![0u8; 8192];
    assert_eq!(s.recv(&mut buf).unwrap(), 1);
    assert_eq!(s.recv(&mut buf).unwrap(), 2);
    let mut small = [0u8; 100];
    assert!(matches!(
        s.recv(&mut small),
        Err(Error::MessageTruncated { capacity: 100 })
    ));
    assert!(matches!(c.send(b""), Err(Error::EmptyMessage)));
    let (r, _w) = std::io::pipe().unwrap();
    c.send_with_fds(b"with fds", &[r.as_fd(), r.as_fd()])
        .unwrap();
    let e = s.recv_with_fds(&mut buf, 1).unwrap_err();
    assert!(matches!(e, Error::FdsTruncated { max_fds: 1, .. }), "{e}");
    assert_eq!(s.peer_credentials().unwrap().pid, std::process::id() as i32);
    drop(c);
    assert_eq!(s.recv(&mut buf).unwrap(), 0, "end of stream");
    assert!(matches!(
        s.send(b"x"),
        Err(Error::PeerClosed { .. } | Error::ConnectionReset { .. })
    ));
}

#[test]
fn unnamed_addresses_do_not_panic() {
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(a.local_addr().unwrap().is_unnamed());
    assert!(a.peer_addr().unwrap().is_unnamed());
    let p = TempPath::new("unnamed");
    let l = UnixListener::bind(&p.0).unwrap();
    let c = UnixStream::connect(&p.0).unwrap();
    let s = l.accept_timeout(LONG).unwrap().0;
    assert!(c.local_addr().unwrap().is_unnamed());
    assert!(s.peer_addr().unwrap().is_unnamed());
    assert_eq!(c.peer_addr().unwrap().as_path(), Some(p.0.as_path()));
}

#[test]
fn connect_timeout_when_the_backlog_stays_full() {
    use ipcraft_socket::{SeqpacketConn, SeqpacketListener};
    let p = TempPath::new("backlog");
    let _l = UnixListener::bind_with(
        &BindOptions::new().backlog(0),
        &SocketAddr::from_path(&p.0).unwrap(),
    )
    .unwrap();
    let addr = SocketAddr::from_path(&p.0).unwrap();
    let t = Duration::from_millis(50);
    let mut queued = Vec::new();
    let e = loop {
        let start = Instant::now();
        match UnixStream::connect_timeout(&addr, t) {
            Ok(c) => queued.push(c),
            Err(e) => {
                assert!(start.elapsed() >= t, "returned early");
                break e;
            }
        }
        assert!(queued.len() < 100, "the backlog never filled");
    };
    assert!(matches!(e, Error::TimedOut { op: "connect" }), "{e}");
    // The same for seqpacket.
    let q = TempPath::new("seq-backlog");
    let _l = SeqpacketListener::bind_with(
        &BindOptions::new().backlog(0),
        &SocketAddr::from_path(&q.0).unwrap(),
    )
    .unwrap();
    let qa = SocketAddr::from_path(&q.0).unwrap();
    let mut queued = Vec::new();
    let e = loop {
        match SeqpacketConn::connect_timeout(&qa, t) {
            Ok(c) => queued.push(c),
            Err(e) => break e,
        }
        assert!(queued.len() < 100, "the backlog never filled");
    };
    assert!(matches!(e, Error::TimedOut { op: "connect" }), "{e}");
}

#[test]
fn seqpacket_reclaims_a_stale_path_and_never_a_live_one() {
    use ipcraft_socket::SeqpacketListener;
    let p = TempPath::new("seq-stale");
    let mut lock = p.0.as_os_str().to_owned();
    lock.push(".lock");
    let _lock = TempPath(lock.into());
    // A stale socket file: a datagram socket's, left behind when it closed.
    let d = ipcraft_socket::UnixDatagram::bind(&p.0).unwrap();
    drop(std::os::fd::OwnedFd::from(d)); // keeps the file
    let opts = BindOptions::new();
    let live = SeqpacketListener::bind_reclaiming_stale(&opts, &p.0).unwrap();
    let e = SeqpacketListener::bind_reclaiming_stale(&opts, &p.0).unwrap_err();
    assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
    // And a stream starter does not take a live seqpacket path either.
    let e = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap_err();
    assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
    drop(live);
}

#[test]
fn fd_passing_has_deadline_and_try_forms_on_message_sockets() {
    use ipcraft_socket::{Error, SeqpacketConn, UnixDatagram};
    use std::os::fd::AsFd;
    let (a, b) = UnixDatagram::pair().unwrap();
    let (r, _w) = std::io::pipe().unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(
        b.try_recv_with_fds(&mut buf, 1),
        Err(Error::WouldBlock { .. })
    ));
    a.try_send_with_fds(b"x", &[r.as_fd()]).unwrap();
    let (n, fds) = b.try_recv_with_fds(&mut buf, 1).unwrap();
    assert_eq!((n, fds.len()), (1, 1));
    let deadline = ipcraft_core::Deadline::after(std::time::Duration::from_secs(5));
    a.send_with_fds_deadline(b"y", &[r.as_fd()], deadline)
        .unwrap();
    assert_eq!(b.recv_with_fds(&mut buf, 1).unwrap().1.len(), 1);

    let (c, d) = SeqpacketConn::pair().unwrap();
    c.try_send_with_fds(b"z", &[r.as_fd()]).unwrap();
    assert_eq!(d.try_recv_with_fds(&mut buf, 2).unwrap().1.len(), 1);
}

#[test]
fn a_plain_receive_discards_descriptors_a_peer_attached() {
    use ipcraft_socket::UnixDatagram;
    use std::os::fd::{AsFd, AsRawFd};
    let (a, b) = UnixDatagram::pair().unwrap();
    let (r, w) = std::io::pipe().unwrap();
    let target = std::fs::read_link(format!("/proc/self/fd/{}", r.as_raw_fd())).unwrap();
    // Descriptors of this pipe in this process (other tests run in parallel, so count only
    // this pipe's, not all descriptors).
    let count = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| *t == target)
            .count()
    };
    assert_eq!(count(), 2);
    a.send_with_fds(b"with fds", &[r.as_fd(), w.as_fd()])
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(&mut buf).unwrap(), 8);
    assert_eq!(count(), 2, "nothing installed, nothing leaked");
}

#[test]
fn settings_change_through_a_shared_reference_as_in_std() {
    // As std's: set_nonblocking and the timeout setters take &self, so a handle shared
    // between threads (here through an Arc) can be reconfigured by any of them.
    let (a, _b) = UnixStream::pair().unwrap();
    let a = std::sync::Arc::new(a);
    let other = std::sync::Arc::clone(&a);
    std::thread::spawn(move || {
        other
            .set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        other.set_nonblocking(false).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(a.read_timeout(), Some(Duration::from_millis(30)));
    let start = Instant::now();
    let e = (&*a).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(30));
    a.set_read_timeout(None).unwrap();
    a.set_nonblocking(true).unwrap();
    assert!(a.is_nonblocking());
    assert!(matches!(
        a.recv(&mut [0u8; 8]),
        Err(Error::WouldBlock { .. })
    ));

    let (d, _e) = ipcraft_socket::UnixDatagram::pair().unwrap();
    let d = &d;
    d.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert!(matches!(d.recv(&mut [0u8; 8]), Err(Error::TimedOut { .. })));
    let p = TempPath::new("settings");
    let l = UnixListener::bind(&p.0).unwrap();
    let l = &l;
    l.set_nonblocking(true).unwrap();
    assert!(matches!(l.accept(), Err(Error::WouldBlock { .. })));
}

#[test]
fn accept_returns_the_peer_address_and_incoming_serves_connections_as_std() {
    let p = TempPath::new("std-accept");
    let l = UnixListener::bind(&p.0).unwrap();
    let c = UnixStream::connect(&p.0).unwrap();
    let (s, addr) = l.accept_timeout(LONG).unwrap();
    assert!(addr.is_unnamed(), "the client never bound: {addr}");
    assert_eq!(s.peer_addr().unwrap().is_unnamed(), addr.is_unnamed());
    assert_eq!(c.peer_addr().unwrap().as_path(), Some(p.0.as_path()));
    let _c2 = UnixStream::connect(&p.0).unwrap();
    let _c3 = UnixStream::connect(&p.0).unwrap();
    let served: Vec<UnixStream> = l.incoming().take(2).map(|r| r.unwrap()).collect();
    assert_eq!(served.len(), 2);

    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let (server, from) = tcp.accept_timeout(LONG).unwrap();
    assert_eq!(from, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), from);
    let _c = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    assert!(tcp.incoming().next().unwrap().is_ok());
}

#[test]
fn every_socket_type_has_try_clone() {
    use ipcraft_socket::{SeqpacketConn, SeqpacketListener, UnixDatagram};
    let mut buf = [0u8; 16];
    // Connections and datagram sockets: the clone sends, the original receives.
    let (a, b) = UnixStream::pair().unwrap();
    a.try_clone().unwrap().send(b"s").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 1);
    let (a, b) = UnixDatagram::pair().unwrap();
    a.try_clone().unwrap().send(b"d").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 1);
    let (a, b) = SeqpacketConn::pair().unwrap();
    a.try_clone().unwrap().send(b"q").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 1);
    let tl = TcpListener::bind("127.0.0.1:0").unwrap();
    let tc = TcpStream::connect(tl.local_addr().unwrap()).unwrap();
    // Listeners: the clone accepts what connects to the original's address.
    let (ts, _) = tl.try_clone().unwrap().accept_timeout(LONG).unwrap();
    tc.try_clone().unwrap().send(b"t").unwrap();
    assert_eq!(ts.recv(&mut buf).unwrap(), 1);
    let p = TempPath::new("clone");
    let l = UnixListener::bind(&p.0).unwrap();
    let l2 = l.try_clone().unwrap();
    let _c = UnixStream::connect(&p.0).unwrap();
    assert!(l2.accept_timeout(LONG).is_ok());
    drop(l2);
    assert!(
        p.0.exists(),
        "a clone does not own (nor remove) the socket file"
    );
    drop(l);
    assert!(!p.0.exists());
    let q = TempPath::new("clone-seq");
    let sl = SeqpacketListener::bind(&q.0).unwrap();
    let _sc = SeqpacketConn::connect(&q.0).unwrap();
    assert!(sl.try_clone().unwrap().accept_timeout(LONG).is_ok());
}

#[test]
fn datagram_and_seqpacket_sockets_have_addresses_and_shutdown() {
    use ipcraft_socket::{BindOptions, SeqpacketConn, SeqpacketListener, UnixDatagram};
    use std::net::Shutdown;
    let mut buf = [0u8; 16];
    let p = TempPath::new("dg-addr");
    let server = UnixDatagram::bind(&p.0).unwrap();
    let client = UnixDatagram::unbound().unwrap();
    client.connect(&p.0).unwrap();
    assert_eq!(server.local_addr().unwrap().as_path(), Some(p.0.as_path()));
    assert_eq!(client.peer_addr().unwrap().as_path(), Some(p.0.as_path()));
    assert!(client.local_addr().unwrap().is_unnamed());
    assert!(server.peer_addr().is_err(), "not connected");
    client.shutdown(Shutdown::Write).unwrap();
    assert!(client.send(b"x").is_err(), "writing was shut down");

    // The same options type binds every kind; an abstract datagram name takes no mode.
    let abs = SocketAddr::from_abstract_name(abstract_name("dg-opts")).unwrap();
    let d = UnixDatagram::bind_with(&BindOptions::new().nonblocking(true), &abs).unwrap();
    assert!(d.is_nonblocking());
    assert!(matches!(d.recv(&mut buf), Err(Error::WouldBlock { .. })));
    assert_eq!(d.local_addr().unwrap(), abs);

    let q = TempPath::new("seq-addr");
    let l = SeqpacketListener::bind(&q.0).unwrap();
    assert_eq!(l.local_addr().unwrap().as_path(), Some(q.0.as_path()));
    let c = SeqpacketConn::connect(&q.0).unwrap();
    let (s, from) = l.accept_deadline(Deadline::after(LONG)).unwrap();
    assert!(from.is_unnamed());
    assert_eq!(c.peer_addr().unwrap().as_path(), Some(q.0.as_path()));
    assert_eq!(s.local_addr().unwrap().as_path(), Some(q.0.as_path()));
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        s.recv(&mut buf).unwrap(),
        0,
        "end of stream after the peer's shutdown"
    );
    l.set_nonblocking(true).unwrap();
    assert!(matches!(l.accept(), Err(Error::WouldBlock { .. })));
    // The listener gives its descriptor up like every handle.
    assert_eq!(l.as_raw_fd(), l.as_fd().as_raw_fd());
    let fd = std::os::fd::OwnedFd::from(l);
    assert!(fd.as_raw_fd() >= 0);
}

#[test]
fn adopting_a_descriptor_checks_its_socket_kind() {
    use ipcraft_socket::{SeqpacketConn, SeqpacketListener, UnixDatagram};
    use std::os::fd::OwnedFd;
    let wrong = |r: Result<(), Error>| match r {
        Err(Error::WrongDescriptor { fd, .. }) => {
            // Handed back open.
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        }
        other => panic!("{other:?}"),
    };
    let (s, _t) = UnixStream::pair().unwrap();
    let s = OwnedFd::from(s);
    let s = OwnedFd::from(UnixStream::try_from(s).unwrap()); // the right kind
    wrong(UnixDatagram::try_from(s.try_clone().unwrap()).map(drop));
    wrong(UnixListener::try_from(s.try_clone().unwrap()).map(drop));
    wrong(SeqpacketConn::try_from(s.try_clone().unwrap()).map(drop));
    wrong(TcpStream::try_from(s).map(drop));
    let p = TempPath::new("adopt");
    let l = OwnedFd::from(UnixListener::bind(&p.0).unwrap());
    wrong(UnixStream::try_from(l.try_clone().unwrap()).map(drop));
    wrong(SeqpacketListener::try_from(l.try_clone().unwrap()).map(drop));
    assert!(UnixListener::try_from(l).is_ok());
    let q = TempPath::new("adopt-seq");
    let sl = OwnedFd::from(SeqpacketListener::bind(&q.0).unwrap());
    assert!(SeqpacketListener::try_from(sl).is_ok());
    let (d, _e) = UnixDatagram::pair().unwrap();
    assert!(UnixDatagram::try_from(OwnedFd::from(d)).is_ok());
    let tl = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tl.local_addr().unwrap();
    let tl = OwnedFd::from(tl);
    wrong(TcpStream::try_from(tl.try_clone().unwrap()).map(drop));
    let tl = TcpListener::try_from(tl).unwrap();
    let c = OwnedFd::from(TcpStream::connect(addr).unwrap());
    wrong(TcpListener::try_from(c.try_clone().unwrap()).map(drop));
    assert!(TcpStream::try_from(c).is_ok());
    drop(tl);
    // Not a socket at all.
    let file: OwnedFd = std::fs::File::open("/proc/self/stat").unwrap().into();
    wrong(UnixStream::try_from(file).map(drop));
}
