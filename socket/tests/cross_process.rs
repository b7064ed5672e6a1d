//! Unix sockets between real processes.
//!
//! Children are this test binary re-run with `--exact child_role` and the role in the
//! environment (see `ROLES`, from `ipcraft-testkit`), never a bare `fork()` of the
//! multi-threaded harness. A child prints line markers on stdout (the harness prints its own
//! lines there too).
#![allow(unsafe_code)] // Two calls, in `sigpipe_default_role` and `pidfd_at_fd_limit_role`, with SAFETY notes.

mod common;
use common::{TempPath, open_fd_count};
use ipcraft_socket::{
    BindOptions, Deadline, Error, FrameError, FrameReader, FrameWriter, PeerPolicy, SeqpacketConn,
    SeqpacketListener, SocketAddr, TcpListener, TcpStream, UnixDatagram, UnixListener, UnixStream,
};
use ipcraft_testkit::{Roles, finish, kill, wait_for_prefix};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SOCKET_TEST_ROLE", "IPCRAFT_SOCKET_TEST_ARG");
/// Generous: the machine is shared and has 2 cores.
const LONG: Duration = Duration::from_secs(20);

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "framed-client" => framed_client_role(&arg),
        "partial-client" => partial_client_role(&arg),
        "tcp-framed-client" => tcp_framed_client_role(&arg),
        "tcp-partial-client" => tcp_partial_client_role(&arg),
        "connect-and-wait" => connect_and_wait_role(&arg),
        "fd-receiver" => fd_receiver_role(),
        "truncation" => truncation_role(),
        "fd-limit" => fd_limit_role(),
        "pidfd-at-fd-limit" => pidfd_at_fd_limit_role(),
        "umask-bind" => umask_bind_role(&arg),
        "sigpipe-default" => sigpipe_default_role(),
        "listen-forever" => listen_forever_role(&arg),
        "dgram-client" => dgram_client_role(&arg),
        "seq-client" => seq_client_role(&arg),
        "reclaim-race" => reclaim_race_role(&arg),
        other => panic!("unknown role {other}"),
    }
}

fn marker(line: &str) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
}

fn payload(id: u32, i: u32) -> Vec<u8> {
    let len = ((id * 7919 + i * 104_729) % 20_000) as usize;
    (0..len).map(|k| (k as u32 ^ id ^ i) as u8).collect()
}

fn framed_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let path = parts.next().unwrap();
    let id: u32 = parts.next().unwrap().parse().unwrap();
    let frames: u32 = parts.next().unwrap().parse().unwrap();
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    framed_client(&s, id, frames);
}

fn tcp_framed_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let addr: std::net::SocketAddr = parts.next().unwrap().parse().unwrap();
    let id: u32 = parts.next().unwrap().parse().unwrap();
    let frames: u32 = parts.next().unwrap().parse().unwrap();
    let s = TcpStream::connect_timeout(&addr, LONG).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    framed_client(&s, id, frames);
}

fn framed_client<S>(s: &S, id: u32, frames: u32)
where
    for<'a> &'a S: Read + Write,
{
    let mut tx = FrameWriter::new(s);
    let mut rx = FrameReader::new(s);
    tx.send(&id.to_le_bytes()).unwrap();
    for i in 0..frames {
        let msg = payload(id, i);
        tx.send(&msg).unwrap();
        let reply = rx.next_frame().unwrap().expect("server closed early");
        let expect: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(reply, &expect[..]);
    }
}

fn partial_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let path = parts.next().unwrap();
    let id: u32 = parts.next().unwrap().parse().unwrap();
    partial_client(&UnixStream::connect(path).unwrap(), id);
}

fn tcp_partial_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let addr: std::net::SocketAddr = parts.next().unwrap().parse().unwrap();
    let id: u32 = parts.next().unwrap().parse().unwrap();
    partial_client(&TcpStream::connect_timeout(&addr, LONG).unwrap(), id);
}

fn partial_client<S>(s: &S, id: u32)
where
    for<'a> &'a S: Read + Write,
{
    let mut tx = FrameWriter::new(s);
    let mut rx = FrameReader::new(s);
    tx.send(&id.to_le_bytes()).unwrap();
    tx.send(b"one whole frame").unwrap();
    assert!(rx.next_frame().unwrap().is_some());
    // A frame that announces 100 bytes, of which 10 are sent before we are killed.
    let mut raw = s;
    raw.write_all(&100u32.to_le_bytes()).unwrap();
    raw.write_all(&[9u8; 10]).unwrap();
    marker("PARTIAL-WRITTEN");
    std::thread::sleep(Duration::from_secs(120));
}

fn connect_and_wait_role(path: &str) {
    let s = UnixStream::connect(path).unwrap();
    marker("CONNECTED");
    let mut buf = [0u8; 16];
    let n = s.recv_deadline(&mut buf, Deadline::after(LONG)).unwrap();
    marker(&format!("READ {n}"));
}

/// Our stdin is one end of a socket pair: receive a pipe end and a file, use both.
fn fd_receiver_role() {
    let s = UnixStream::try_from(std::io::stdin().as_fd().try_clone_to_owned().unwrap()).unwrap();
    let mut buf = [0u8; 64];
    let (n, fds) = s
        .recv_with_fds_deadline(&mut buf, 4, Deadline::after(LONG))
        .unwrap();
    assert_eq!(&buf[..n], b"pipe+file+memfd");
    assert_eq!(fds.len(), 3);
    let mut fds = fds.into_iter();
    let pipe_w = fds.next().unwrap();
    let file = fds.next().unwrap();
    let memfd = fds.next().unwrap();
    // Close-on-exec, proven by exec: a shell sees none of the descriptors.
    for fd in [&pipe_w, &file, &memfd] {
        use std::os::fd::AsRawFd;
        let n = fd.as_raw_fd();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("test -e /proc/self/fd/{n}"))
            .status()
            .unwrap();
        assert!(!status.success(), "fd {n} leaked into an exec'd child");
    }
    let mut w = std::io::PipeWriter::from(pipe_w);
    writeln!(w, "hello from child {}", std::process::id()).unwrap();
    drop(w);
    let mut f = std::fs::File::from(file);
    f.seek(std::io::SeekFrom::End(0)).unwrap();
    f.write_all(b" and the file").unwrap();
    drop(f);
    let mut m = std::fs::File::from(memfd);
    m.seek(std::io::SeekFrom::End(0)).unwrap();
    m.write_all(b" and the memfd").unwrap();
    drop(m);
    s.send(b"done").unwrap();
}

/// Single-threaded, so the descriptor count is ours alone.
fn truncation_role() {
    let (a, b) = UnixStream::pair().unwrap();
    let pipes: Vec<_> = (0..5).map(|_| std::io::pipe().unwrap()).collect();
    let fds: Vec<_> = pipes.iter().map(|(r, _)| r.as_fd()).collect();
    let mut buf = [0u8; 16];
    for max_fds in [0usize, 1, 2, 4] {
        a.send_with_fds(b"five", &fds).unwrap();
        let before = open_fd_count();
        let e = b.recv_with_fds(&mut buf, max_fds).unwrap_err();
        let after = open_fd_count();
        match e {
            Error::FdsTruncated {
                received: 4,
                max_fds: m,
            } if m == max_fds => {}
            other => panic!("max_fds {max_fds}: expected FdsTruncated, got {other:?}"),
        }
        assert_eq!(&buf[..4], b"five");
        assert_eq!(before, after, "max_fds {max_fds}: a descriptor leaked");
    }
    // And the connection still works.
    a.send_with_fds(b"ok", &fds[..1]).unwrap();
    let (n, got) = b.recv_with_fds(&mut buf, 1).unwrap();
    assert_eq!((n, got.len()), (2, 1));
    marker("NO-LEAK");
}

/// A receiver at its descriptor limit gets `MSG_CTRUNC`: a typed error, nothing leaked.
/// Single-threaded, so the descriptor table is ours alone.
/// With `SO_PASSPIDFD` set and no descriptor free, the kernel writes a negative errno as the
/// `SCM_PIDFD` data; receiving must neither adopt it as a descriptor (an abort in debug
/// builds) nor fail.
fn pidfd_at_fd_limit_role() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::fd::AsRawFd;
    const SO_PASSPIDFD: libc::c_int = 76;
    let (a, b) = UnixDatagram::pair().unwrap();
    let on: libc::c_int = 1;
    // SAFETY:
    // - `b` is a live socket for the call; `on` is a c_int on this stack frame, valid for
    //   reads of the size passed, for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            b.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PASSPIDFD,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        println!("SKIPPED: SO_PASSPIDFD unsupported by this kernel");
        println!("PIDFD-OK");
        return;
    }
    a.send(b"x").unwrap();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, 64, hard).unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    let mut buf = [0u8; 8];
    let r = b.recv_with_fds(&mut buf, 1);
    drop(fillers);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let (n, fds) = r.unwrap();
    assert_eq!((n, fds.len()), (1, 0));
    println!("PIDFD-OK");
}

fn fd_limit_role() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (a, b) = UnixStream::pair().unwrap();
    let pipes: Vec<_> = (0..20).map(|_| std::io::pipe().unwrap()).collect();
    let fds: Vec<_> = pipes.iter().map(|(r, _)| r.as_fd()).collect();
    a.send_with_fds(b"twenty", &fds).unwrap();
    let highest: u64 = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .max()
        .unwrap();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // Room for at least two more descriptors; fill every free slot, then free exactly two:
    // two of the twenty descriptors can arrive, the other eighteen cannot.
    setrlimit(Resource::RLIMIT_NOFILE, highest + 3, hard).unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    assert!(fillers.len() >= 2);
    fillers.truncate(fillers.len() - 2);
    let before = open_fd_count_no_alloc_fd(&mut fillers);
    let mut buf = [0u8; 16];
    let e = b.recv_with_fds(&mut buf, 64).unwrap_err();
    let after = open_fd_count_no_alloc_fd(&mut fillers);
    drop(fillers);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    assert!(
        matches!(e, Error::FdsTruncated { received: 6, .. }),
        "{e:?}"
    );
    assert_eq!(after, before, "a descriptor leaked");
    marker("FD-LIMIT-OK");
}

/// Count open descriptors while the table is full: listing /proc/self/fd needs a descriptor,
/// so one filler is closed for the listing and reopened after.
fn open_fd_count_no_alloc_fd(fillers: &mut Vec<std::fs::File>) -> usize {
    let spare = fillers.pop().unwrap();
    drop(spare);
    let n = open_fd_count() - 1; // minus read_dir's own descriptor
    fillers.push(std::fs::File::open("/dev/null").unwrap());
    n + 1 // plus the filler that was closed for the listing
}

fn umask_bind_role(dir: &str) {
    use nix::sys::stat::{Mode, umask};
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    umask(Mode::from_bits_truncate(0o077));
    let p1 = std::path::Path::new(dir).join("strict-umask.sock");
    let l1 = UnixListener::bind_with(
        &BindOptions::new().mode(0o660),
        &SocketAddr::from_path(&p1).unwrap(),
    )
    .unwrap();
    umask(Mode::empty());
    let p2 = std::path::Path::new(dir).join("open-umask.sock");
    let l2 = UnixListener::bind(&p2).unwrap();
    marker(&format!("MODES {:o} {:o}", mode_of(&p1), mode_of(&p2)));
    drop((l1, l2));
}

fn sigpipe_default_role() {
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
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    assert!(matches!(a.send(b"x"), Err(Error::PeerClosed { .. })));
    let (r, _w) = std::io::pipe().unwrap();
    assert!(matches!(
        a.send_with_fds(b"x", &[r.as_fd()]),
        Err(Error::PeerClosed { .. })
    ));
    assert_eq!(
        (&a).write(b"x").unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    marker("PEER-CLOSED-REPORTED");
}

/// Serve four framed clients and one that is SIGKILLed mid-frame, a thread per connection:
/// the killed one's connection ends in `Truncated`, every other one completes.
fn serve_clients_one_killed<S: Send + 'static>(
    accept: impl Fn() -> S,
    set_timeout: impl Fn(&mut S),
    spawn_client: impl Fn(u32) -> Child,
    spawn_partial: impl FnOnce() -> Child,
) where
    for<'a> &'a S: Read + Write,
{
    let clients: Vec<Child> = (1..=4).map(&spawn_client).collect();
    let mut partial = spawn_partial();
    let (tx, rx) = mpsc::channel();
    let mut servers = Vec::new();
    for _ in 0..5 {
        let mut conn = accept();
        set_timeout(&mut conn);
        let tx = tx.clone();
        servers.push(std::thread::spawn(move || {
            let mut r = FrameReader::new(&conn);
            let mut w = FrameWriter::new(&conn);
            let id = u32::from_le_bytes(r.recv().unwrap().unwrap().try_into().unwrap());
            let mut count = 0u32;
            let outcome = loop {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        let rev: Vec<u8> = f.iter().rev().copied().collect();
                        w.send(&rev).unwrap();
                        count += 1;
                    }
                    Ok(None) => break Ok(count),
                    Err(e) => break Err(e),
                }
            };
            tx.send((id, outcome)).unwrap();
        }));
    }
    drop(tx);
    wait_for_prefix(&mut partial, "PARTIAL-WRITTEN");
    kill(&mut partial);
    for (i, c) in clients.into_iter().enumerate() {
        finish(c, &format!("client {}", i + 1));
    }
    let mut results: Vec<_> = rx.iter().collect();
    results.sort_by_key(|(id, _)| *id);
    assert_eq!(results.len(), 5);
    for (id, outcome) in &results[..4] {
        assert!(
            matches!(outcome, Ok(60)),
            "client {id}: expected 60 frames and a clean end, got {outcome:?}"
        );
    }
    let (id, outcome) = &results[4];
    assert_eq!(*id, 99);
    assert!(
        matches!(
            outcome,
            Err(FrameError::Truncated {
                expected: 104,
                received: 14
            })
        ),
        "the killed client's connection: {outcome:?}"
    );
    for s in servers {
        s.join().unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn server_with_several_clients_and_one_killed_mid_frame() {
    let p = TempPath::new("srv");
    let listener = UnixListener::bind(&p.0).unwrap();
    let path = p.0.to_str().unwrap().to_string();
    serve_clients_one_killed(
        || listener.accept_timeout(LONG).unwrap().0,
        |c: &mut UnixStream| c.set_read_timeout(Some(LONG * 3)).unwrap(),
        |id| ROLES.spawn("framed-client", &format!("{path}|{id}|60"), Stdio::null()),
        || ROLES.spawn("partial-client", &format!("{path}|99"), Stdio::null()),
    );
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn tcp_loopback_server_with_several_clients_and_one_killed_mid_frame() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    serve_clients_one_killed(
        || listener.accept_timeout(LONG).unwrap().0,
        |c: &mut TcpStream| {
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(LONG * 3)).unwrap();
        },
        |id| {
            ROLES.spawn(
                "tcp-framed-client",
                &format!("{addr}|{id}|60"),
                Stdio::null(),
            )
        },
        || ROLES.spawn("tcp-partial-client", &format!("{addr}|99"), Stdio::null()),
    );
}

/// Bind our own datagram socket, send `n` requests to the server, check each echo.
fn dgram_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let server = SocketAddr::from_path(parts.next().unwrap()).unwrap();
    let own = parts.next().unwrap();
    let n: u32 = parts.next().unwrap().parse().unwrap();
    let me = UnixDatagram::bind(own).unwrap();
    me.set_read_timeout(Some(LONG)).unwrap();
    let mut buf = vec![0u8; 70_000];
    for i in 0..n {
        let msg = payload(std::process::id(), i);
        let msg = if msg.is_empty() { vec![1] } else { msg };
        me.send_to(&msg, &server).unwrap();
        let got = me.recv(&mut buf).unwrap();
        let rev: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(&buf[..got], &rev[..]);
    }
}

/// Connect to the seqpacket server, exchange `n` messages; with "hang", then wait to be
/// killed.
fn seq_client_role(arg: &str) {
    let mut parts = arg.split('|');
    let server = SocketAddr::from_path(parts.next().unwrap()).unwrap();
    let n: u32 = parts.next().unwrap().parse().unwrap();
    let hang = parts.next() == Some("hang");
    let c = SeqpacketConn::connect_addr(&server).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut buf = vec![0u8; 70_000];
    for i in 0..n {
        let msg = payload(std::process::id(), i);
        let msg = if msg.is_empty() { vec![1] } else { msg };
        c.send(&msg).unwrap();
        let got = c.recv(&mut buf).unwrap();
        let rev: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(&buf[..got], &rev[..]);
    }
    if hang {
        marker("HANGING");
        std::thread::sleep(Duration::from_secs(120));
    }
}

fn listen_forever_role(path: &str) {
    let _l = UnixListener::bind(path).unwrap();
    marker("LISTENING");
    std::thread::sleep(Duration::from_secs(120));
}

fn reclaim_race_role(path: &str) {
    match UnixListener::bind_reclaiming_stale(&BindOptions::new(), path) {
        Ok(l) => {
            marker("WON");
            // Keep listening until the parent closes our stdin; accept its probe meanwhile.
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            drop(l);
        }
        Err(Error::AddressInUse { reason, .. }) => marker(&format!("LOST {reason}")),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn stale_socket_files_are_reclaimed_once_and_live_ones_never() {
    let p = TempPath::new("stale");
    let mut lock_path = p.0.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = TempPath(lock_path.into());
    let path = p.0.to_str().unwrap();

    // A listener SIGKILLed leaves its file behind.
    let mut dead = ROLES.spawn("listen-forever", path, Stdio::null());
    wait_for_prefix(&mut dead, "LISTENING");
    kill(&mut dead);
    assert!(p.0.exists());
    let e = UnixListener::bind(&p.0).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == nix::errno::Errno::EADDRINUSE),
        "{e}"
    );

    // Three starters race for the stale path: exactly one wins.
    let mut racers: Vec<Child> = (0..3)
        .map(|_| ROLES.spawn("reclaim-race", path, Stdio::piped()))
        .collect();
    let outcomes = common::race_outcomes(&mut racers);
    let won = outcomes.iter().filter(|o| o.as_str() == "WON").count();
    assert_eq!(won, 1, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            o == "WON" || o == "LOST a live listener answers there",
            "{outcomes:?}"
        );
    }
    // The winner's socket is live.
    let c = UnixStream::connect(&p.0).unwrap();
    drop(c);
    for mut r in racers {
        drop(r.stdin.take());
        finish(r, "racer");
    }
    assert!(!p.0.exists(), "the winner removed its file on exit");

    // A live listener in this process: a starter never takes it over.
    let ours = UnixListener::bind_reclaiming_stale(&BindOptions::new(), &p.0).unwrap();
    let mut racer = ROLES.spawn("reclaim-race", path, Stdio::piped());
    let line = wait_for_prefix(&mut racer, "LOST");
    assert_eq!(line, "LOST a live listener answers there");
    finish(racer, "live-path racer");
    let c = UnixStream::connect(&p.0).unwrap();
    let probe = ours.accept_timeout(LONG).unwrap().0; // the racer's probe
    drop(probe);
    let conn = ours.accept_timeout(LONG).unwrap().0;
    c.send(b"still ours").unwrap();
    let mut buf = [0u8; 10];
    (&conn).read_exact(&mut buf).unwrap();
    drop(ours);

    // Not a socket: left untouched.
    std::fs::write(&p.0, b"data").unwrap();
    let e = UnixListener::bind_reclaiming_stale(&BindOptions::new(), &p.0).unwrap_err();
    assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
    assert_eq!(std::fs::read(&p.0).unwrap(), b"data");
    drop(lock);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn datagram_server_with_several_client_processes() {
    let p = TempPath::new("dsrv");
    let server = UnixDatagram::bind(&p.0).unwrap();
    let path = p.0.to_str().unwrap().to_string();
    let own: Vec<TempPath> = (0..3).map(|i| TempPath::new(&format!("dc{i}"))).collect();
    let clients: Vec<Child> = own
        .iter()
        .map(|o| {
            let arg = format!("{path}|{}|40", o.0.display());
            ROLES.spawn("dgram-client", &arg, Stdio::null())
        })
        .collect();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..3 * 40 {
        let (n, from) = server
            .recv_from_deadline(&mut buf, Deadline::after(LONG))
            .unwrap();
        assert!(from.as_path().is_some(), "clients bind: {from}");
        let rev: Vec<u8> = buf[..n].iter().rev().copied().collect();
        server.send_to(&rev, &from).unwrap();
    }
    for c in clients {
        finish(c, "datagram client");
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn seqpacket_server_with_several_clients_and_one_killed() {
    let p = TempPath::new("ssrv");
    let listener = SeqpacketListener::bind(&p.0).unwrap();
    let path = p.0.to_str().unwrap().to_string();
    let clients: Vec<Child> = (0..3)
        .map(|_| ROLES.spawn("seq-client", &format!("{path}|40"), Stdio::null()))
        .collect();
    let mut hanging = ROLES.spawn("seq-client", &format!("{path}|2|hang"), Stdio::null());
    let hanging_pid = hanging.id() as i32;
    let (tx, rx) = mpsc::channel();
    let mut servers = Vec::new();
    for _ in 0..4 {
        let conn = listener.accept_timeout(LONG).unwrap().0;
        conn.set_read_timeout(Some(LONG * 3)).unwrap();
        let pid = conn.peer_credentials().unwrap().pid;
        let tx = tx.clone();
        servers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            let mut count = 0u32;
            let outcome = loop {
                match conn.recv(&mut buf) {
                    Ok(0) => break Ok(count),
                    Ok(n) => {
                        let rev: Vec<u8> = buf[..n].iter().rev().copied().collect();
                        conn.send(&rev).unwrap();
                        count += 1;
                    }
                    Err(e) => break Err(e),
                }
            };
            tx.send((pid, outcome)).unwrap();
        }));
    }
    drop(tx);
    wait_for_prefix(&mut hanging, "HANGING");
    kill(&mut hanging);
    for c in clients {
        finish(c, "seqpacket client");
    }
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 4);
    for (pid, outcome) in results {
        if pid == hanging_pid {
            // Killed between messages: its connection ends; messages are never cut.
            assert!(matches!(outcome, Ok(2)), "killed client: {outcome:?}");
        } else {
            assert!(matches!(outcome, Ok(40)), "client {pid}: {outcome:?}");
        }
    }
    for s in servers {
        s.join().unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_child_receives_and_uses_a_pipe_end_a_file_and_a_memfd() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = ROLES.spawn("fd-receiver", "", Stdio::from(OwnedFd::from(theirs)));
    let (mut pipe_r, pipe_w) = std::io::pipe().unwrap();
    let file_path = TempPath::new("file");
    let file = std::fs::File::create_new(&file_path.0).unwrap();
    (&file).write_all(b"parent wrote").unwrap();
    let memfd = std::fs::File::from(
        nix::sys::memfd::memfd_create("ipcraft-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .unwrap(),
    );
    (&memfd).write_all(b"parent wrote").unwrap();
    ours.send_with_fds(
        b"pipe+file+memfd",
        &[pipe_w.as_fd(), file.as_fd(), memfd.as_fd()],
    )
    .unwrap();
    drop(pipe_w); // the child's duplicate is now the only writer
    let mut text = String::new();
    pipe_r.read_to_string(&mut text).unwrap();
    assert_eq!(text, format!("hello from child {}\n", child.id()));
    let mut buf = [0u8; 4];
    let n = ours.recv_deadline(&mut buf, Deadline::after(LONG)).unwrap();
    assert_eq!(&buf[..n], b"done");
    finish(child, "fd-receiver");
    assert_eq!(
        std::fs::read(&file_path.0).unwrap(),
        b"parent wrote and the file"
    );
    // The memfd is shared: the child's write is in ours.
    let mut memfd = memfd;
    memfd.seek(std::io::SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    memfd.read_to_string(&mut text).unwrap();
    assert_eq!(text, "parent wrote and the memfd");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn truncated_descriptors_are_all_closed() {
    let mut child = ROLES.spawn("truncation", "", Stdio::null());
    wait_for_prefix(&mut child, "NO-LEAK");
    finish(child, "truncation");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_receiver_at_its_descriptor_limit_gets_the_truncation_error() {
    let mut child = ROLES.spawn("fd-limit", "", Stdio::null());
    wait_for_prefix(&mut child, "FD-LIMIT-OK");
    finish(child, "fd-limit");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_failed_pidfd_at_the_descriptor_limit_is_not_adopted_as_a_descriptor() {
    let mut child = ROLES.spawn("pidfd-at-fd-limit", "", Stdio::null());
    wait_for_prefix(&mut child, "PIDFD-OK");
    finish(child, "pidfd-at-fd-limit");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn the_mode_is_exact_whatever_the_umask() {
    let dir = TempPath::new("umaskdir");
    std::fs::create_dir(&dir.0).unwrap();
    let mut child = ROLES.spawn("umask-bind", dir.0.to_str().unwrap(), Stdio::null());
    let line = wait_for_prefix(&mut child, "MODES");
    finish(child, "umask-bind");
    let _ = std::fs::remove_dir(&dir.0);
    assert_eq!(line, "MODES 660 600");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn no_sigpipe_even_with_the_default_disposition() {
    let mut child = ROLES.spawn("sigpipe-default", "", Stdio::null());
    wait_for_prefix(&mut child, "PEER-CLOSED-REPORTED");
    finish(child, "sigpipe-default");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn peer_credentials_name_the_child_and_the_policy_refuses() {
    let me = nix::unistd::getuid().as_raw();
    let p = TempPath::new("cred");
    let mut listener = UnixListener::bind(&p.0).unwrap();
    let path = p.0.to_str().unwrap();

    let mut child = ROLES.spawn("connect-and-wait", path, Stdio::null());
    let conn = listener.accept_timeout(LONG).unwrap().0;
    let c = conn.peer_credentials().unwrap();
    assert_eq!(c.pid, child.id() as i32);
    assert_eq!(c.uid, me);
    assert_eq!(c.gid, nix::unistd::getgid().as_raw());
    // The pidfd names the child too, and is close-on-exec.
    let pidfd = conn.peer_pidfd().unwrap();
    let flags = nix::fcntl::fcntl(&pidfd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert!(nix::fcntl::FdFlag::from_bits_retain(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC));
    let fdinfo = |fd: &OwnedFd| {
        use std::os::fd::AsRawFd;
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap()
    };
    assert!(
        fdinfo(&pidfd).contains(&format!("Pid:\t{}\n", child.id())),
        "{}",
        fdinfo(&pidfd)
    );
    wait_for_prefix(&mut child, "CONNECTED");
    conn.send(b"hi").unwrap();
    assert_eq!(wait_for_prefix(&mut child, "READ"), "READ 2");
    finish(child, "connect-and-wait");
    // Once the child is reaped, the pidfd says so (Pid: -1) instead of naming a stranger.
    assert!(fdinfo(&pidfd).contains("Pid:\t-1\n"), "{}", fdinfo(&pidfd));

    // A policy that admits only another uid refuses the child before handing out the
    // connection; the child sees end of stream.
    listener.set_peer_policy(Some(PeerPolicy::allow_uids([me.wrapping_add(1)])));
    let mut child = ROLES.spawn("connect-and-wait", path, Stdio::null());
    match listener.accept_timeout(LONG) {
        Err(Error::PeerRefused { peer }) => assert_eq!(peer.pid, child.id() as i32),
        other => panic!("expected PeerRefused, got {other:?}"),
    }
    assert_eq!(wait_for_prefix(&mut child, "READ"), "READ 0");
    finish(child, "refused connect-and-wait");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn python_passes_a_descriptor_to_our_receiver() {
    if Command::new("python3")
        .args(["-c", "import socket; socket.send_fds"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        let why = "SKIPPED: python3 with socket.send_fds (3.9+) not available";
        println!("{why}");
        let _ = writeln!(std::io::stderr(), "\n!!! {why}\n");
        return;
    }
    let p = TempPath::new("py");
    let listener = UnixListener::bind(&p.0).unwrap();
    let script = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
r, w = os.pipe()
os.write(w, b"written by python")
os.close(w)
socket.send_fds(s, [b"fd"], [r])
s.close()
"#;
    let mut py = Command::new("python3")
        .args(["-c", script, p.0.to_str().unwrap()])
        .spawn()
        .unwrap();
    let conn = listener.accept_timeout(LONG).unwrap().0;
    let mut buf = [0u8; 8];
    let (n, fds) = conn
        .recv_with_fds_deadline(&mut buf, 2, Deadline::after(LONG))
        .unwrap();
    assert_eq!(&buf[..n], b"fd");
    assert_eq!(fds.len(), 1);
    let mut text = String::new();
    std::io::PipeReader::from(fds.into_iter().next().unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "written by python");
    assert!(py.wait().unwrap().success());
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn socat_talks_to_our_listener() {
    if Command::new("sh")
        .args(["-c", "command -v socat"])
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        let why = "SKIPPED: socat not installed (CI: add `apt_install socat` to .ci/run)";
        println!("{why}");
        // Straight to fd 2, past the harness's output capture, so the skip is seen.
        let _ = writeln!(std::io::stderr(), "\n!!! {why}\n");
        return;
    }
    let p = TempPath::new("socat");
    let listener = UnixListener::bind(&p.0).unwrap();
    let mut socat = Command::new("socat")
        .args(["-t", "5", "-", &format!("UNIX-CONNECT:{}", p.0.display())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let conn = listener.accept_timeout(LONG).unwrap().0;
    let mut stdin = socat.stdin.take().unwrap();
    stdin.write_all(b"hello from socat\n").unwrap();
    drop(stdin);
    let mut got = Vec::new();
    let c = conn;
    c.set_read_timeout(Some(LONG)).unwrap();
    (&c).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello from socat\n");
    (&c).write_all(b"and back\n").unwrap();
    drop(c);
    let out = socat.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"and back\n");
}
