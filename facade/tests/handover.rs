//! Handing descriptors to real child processes (`ipcraft::handover`), and taking them there.
#![cfg(all(
    feature = "pipe",
    feature = "socket",
    feature = "mqueue",
    feature = "shm",
    feature = "sync"
))]
#![allow(unsafe_code)] // One call, `clear_env` in the `clear` role, with its SAFETY note.

use ipcraft::channel::{Receiver, Sender};
use ipcraft::handover::{self, Handover, HandoverError};
use ipcraft::mqueue::{Attributes, MessageQueue};
use ipcraft::shm::Segment;
use ipcraft::socket::{UnixListener, UnixStream};
use ipcraft_testkit::{CHILD_ARGS, Roles, finish, unique_name, wait_for, wait_for_prefix};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLES: Roles = Roles::new("IPCRAFT_HANDOVER_TEST_ROLE", "IPCRAFT_HANDOVER_TEST_ARG");
const TIMEOUT: Duration = Duration::from_secs(20);

/// This test binary as a child playing `role`, started with `handover`'s descriptors and the
/// whole protocol (`Handover::command`).
fn child(handover: Handover, role: &str, arg: &str) -> Command {
    let mut cmd = handover.command(std::env::current_exe().unwrap());
    configure(&mut cmd, role, arg);
    cmd
}

fn configure(cmd: &mut Command, role: &str, arg: &str) {
    cmd.args(CHILD_ARGS)
        .env(ROLES.role_env(), role)
        .env(ROLES.arg_env(), arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
}

/// The descriptors this process holds, without the one that lists them.
fn open_fds() -> Vec<i32> {
    let me = format!("/proc/{}/fd", std::process::id());
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).ok();
            if target.as_deref() == Some(Path::new(&me)) {
                return None; // the directory being listed
            }
            e.file_name().to_str()?.parse().ok()
        })
        .collect();
    fds.sort_unstable();
    fds
}

fn listen_vars() -> String {
    ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]
        .map(|v| format!("{v}={:?}", std::env::var_os(v)))
        .join(" ")
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "five" => five_kinds_child(),
        "clear" => {
            handover::init().unwrap();
            // SAFETY:
            // - No other thread touches the environment now: this child's harness runs this
            //   one test (`--exact`, one test thread) and its main thread only waits for it.
            unsafe { handover::clear_env() };
            println!("CHILD {}", listen_vars());
            let _kept: OwnedFd = handover::take("kept").unwrap();
            // A grandchild started with a plain Command: it inherits neither the variables
            // nor the descriptor (made close-on-exec when it was read).
            let mut cmd = ROLES.command("print", "");
            cmd.stdout(Stdio::inherit());
            assert!(cmd.status().unwrap().success());
        }
        "print" => println!("GRANDCHILD {} FDS {:?}", listen_vars(), open_fds()),
        "errors" => errors_child(),
        "not-ours" => match handover::take("x") {
            Err(e @ HandoverError::NotForUs { .. }) => println!("NOT OURS: {e}"),
            other => panic!("expected NotForUs, got {other:?}"),
        },
        "not-handed" => match handover::take("x") {
            Err(e @ HandoverError::NotHanded) => println!("NOT HANDED: {e}"),
            other => panic!("expected NotHanded, got {other:?}"),
        },
        "relay" => relay_child(),
        "gap" => gap_child(),
        "tag" => {
            for name in arg.split(',') {
                let mut s: UnixStream = handover::take_as(name).unwrap();
                s.write_all(name.as_bytes()).unwrap();
            }
            println!("TAGGED");
        }
        "accept" => {
            let listener: UnixListener = handover::take_as(&arg).unwrap();
            let (mut conn, _) = listener.accept_timeout(TIMEOUT).unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(b"ACCEPTED ").unwrap();
            conn.write_all(&buf).unwrap();
            println!("ACCEPTED");
        }
        other => panic!("unknown role {other}"),
    }
}

// ---- five kinds of handles, both ways ---------------------------------------------------

fn five_kinds_child() {
    // First: nothing open but stdio and what was handed (and the harness's own, if any).
    println!("FDS {:?}", open_fds());
    let mut requests = Receiver::inherited("requests").unwrap();
    let mut replies = Sender::inherited("replies").unwrap();
    let mut socket: UnixStream = handover::take_as("socket").unwrap();
    let mut log: ipcraft::pipe::PipeWriter = handover::take_as("log").unwrap();
    let state: Segment = handover::take_as("state").unwrap();
    let queue: MessageQueue = handover::take_as("queue").unwrap();
    assert_eq!(handover::names().unwrap(), Vec::<String>::new());

    let request = requests.recv_timeout(TIMEOUT).unwrap();
    replies.send(&request.to_ascii_uppercase()).unwrap();

    let mut ping = [0u8; 4];
    socket.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
    socket.write_all(b"pong").unwrap();

    log.write_all(b"log line\n").unwrap();

    let mut from_parent = [0u8; 6];
    state.read_at(0, &mut from_parent).unwrap();
    assert_eq!(&from_parent, b"parent");
    state.write_at(64, b"child").unwrap();

    let mut buf = [0u8; 64];
    let (n, _) = queue.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!(&buf[..n], b"down");
    queue.send(b"up", 1).unwrap();
    println!("DONE");
}

#[test]
fn a_child_uses_five_kinds_of_handles_both_ways() {
    let (mut requests, requests_fd) = Sender::anonymous(1 << 16).unwrap();
    let (mut replies, replies_fd) = Receiver::anonymous(1 << 16).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let (mut log_reader, log_writer) = ipcraft::pipe::pipe().unwrap();
    let state = Segment::anonymous(4096).unwrap();
    let queue_name = unique_name("/ipcraft-handover-test", "q");
    let queue = MessageQueue::create(&queue_name, Attributes::new(4, 64)).unwrap();

    let handover = Handover::new()
        .fd("requests", &requests_fd)
        .unwrap()
        .fd("replies", &replies_fd)
        .unwrap()
        .fd("socket", &theirs)
        .unwrap()
        .fd("log", &log_writer)
        .unwrap()
        .fd("state", &state)
        .unwrap()
        .fd("queue", &queue)
        .unwrap();
    assert_eq!(
        handover.names().collect::<Vec<_>>(),
        ["requests", "replies", "socket", "log", "state", "queue"]
    );
    let mut child = child(handover, "five", "").spawn().unwrap();
    // Everything of ours the child needs is in it now: the command (dropped with the
    // statement above) and these copies would keep the pipe from reaching end-of-file.
    drop((requests_fd, replies_fd, theirs, log_writer));

    let fds = wait_for_prefix(&mut child, "FDS ");
    assert_eq!(
        fds, "FDS [0, 1, 2, 3, 4, 5, 6, 7, 8]",
        "the child's descriptors"
    );

    state.write_at(0, b"parent").unwrap();
    queue.send(b"down", 1).unwrap();
    requests.send(b"hello").unwrap();
    assert_eq!(replies.recv_timeout(TIMEOUT).unwrap(), b"HELLO");
    ours.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    ours.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong");

    wait_for(&mut child, "DONE");
    let mut log = String::new();
    log_reader.read_to_string(&mut log).unwrap();
    assert_eq!(
        log, "log line\n",
        "the pipe reaches end-of-file once the child exits"
    );
    let mut from_child = [0u8; 5];
    state.read_at(64, &mut from_child).unwrap();
    assert_eq!(&from_child, b"child");
    let mut buf = [0u8; 64];
    let (n, _) = queue.recv_timeout(&mut buf, TIMEOUT).unwrap();
    assert_eq!(&buf[..n], b"up");
    finish(child, "five-kinds child");
}

// ---- the environment ----------------------------------------------------------------------

#[test]
fn the_variables_and_descriptors_do_not_reach_a_grandchild() {
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let handover = Handover::new().fd("kept", &theirs).unwrap();
    let child = child(handover, "clear", "").spawn().unwrap();
    let out = finish(child, "clearing child");
    let none = "LISTEN_FDS=None LISTEN_PID=None LISTEN_FDNAMES=None";
    assert!(out.contains(&format!("CHILD {none}")), "{out}");
    assert!(
        out.contains(&format!("GRANDCHILD {none} FDS [0, 1, 2]")),
        "{out}"
    );
}

/// The runnable example, built by `cargo test` beside this binary: a single-threaded
/// `main`, where the first call removes the variables by itself.
#[test]
fn a_single_threaded_child_clears_the_environment_by_itself() {
    let exe = std::env::current_exe().unwrap();
    let example: PathBuf = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("handover"))
        .unwrap();
    if !example.exists() {
        println!(
            "SKIPPED: {} is not built (`cargo test -p ipcraft` builds the examples; \
             `--test handover` alone does not)",
            example.display()
        );
        eprintln!("SKIPPED: the handover example is not built");
        return;
    }
    let out = Command::new(&example).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("worker: environment cleared: true"), "{text}");
    assert!(text.contains("parent: HELLO"), "{text}");
}

// ---- errors ---------------------------------------------------------------------------------

fn errors_child() {
    match handover::take("nope") {
        Err(HandoverError::Missing { name, handed }) => {
            assert_eq!(name, "nope");
            assert_eq!(handed, ["memfd", "sock"]);
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    // A socket where a channel's memfd is expected: refused, and left in place.
    match Receiver::inherited("sock") {
        Err(e @ HandoverError::WrongType { .. }) => println!("WRONG TYPE: {e}"),
        other => panic!("expected WrongType, got {other:?}"),
    }
    let _sock: UnixStream = handover::take_as("sock").unwrap();
    // A memfd where a socket is expected.
    assert!(matches!(
        handover::take_as::<UnixStream>("memfd"),
        Err(HandoverError::WrongType { .. })
    ));
    let _memfd = handover::take("memfd").unwrap();
    match handover::take("memfd") {
        Err(e @ HandoverError::AlreadyTaken { .. }) => println!("TAKEN TWICE: {e}"),
        other => panic!("expected AlreadyTaken, got {other:?}"),
    }
    println!("ERRORS OK");
}

#[test]
fn a_missing_name_a_wrong_type_and_a_second_take_are_typed_errors() {
    let (_tx, memfd) = Sender::anonymous(4096).unwrap();
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let handover = Handover::new()
        .fd("memfd", &memfd)
        .unwrap()
        .fd("sock", &theirs)
        .unwrap();
    let out = finish(
        child(handover, "errors", "").spawn().unwrap(),
        "errors child",
    );
    assert!(out.contains("ERRORS OK"), "{out}");
}

#[test]
fn a_listen_pid_that_is_not_ours_is_refused() {
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    configure(&mut cmd, "not-ours", "");
    Handover::new()
        .fd("x", &theirs)
        .unwrap()
        .apply(&mut cmd)
        .env("LISTEN_PID", "1");
    let out = finish(cmd.spawn().unwrap(), "not-ours child");
    assert!(
        out.contains("NOT OURS: the handed descriptors are for process 1"),
        "{out}"
    );
}

#[test]
fn a_child_started_without_descriptors_says_so() {
    let mut cmd = ROLES.command("not-handed", "");
    handover::scrub(&mut cmd);
    let out = finish(cmd.spawn().unwrap(), "not-handed child");
    assert!(out.contains("NOT HANDED"), "{out}");
}

#[test]
fn bad_names_are_refused_in_the_parent() {
    let (a, _b) = UnixStream::pair().unwrap();
    for bad in ["", "a:b", &"n".repeat(256)] {
        assert!(matches!(
            Handover::new().fd(bad, &a),
            Err(HandoverError::BadName { .. })
        ));
    }
}

// ---- descriptor numbers -------------------------------------------------------------------

/// A child that was handed three sockets (at 3, 4, 5) hands two of them on, with one
/// source already sitting on the other's target number: `Q`'s source is at 3, `P`'s target.
fn relay_child() {
    let x0 = handover::take("x0").unwrap();
    let x1 = handover::take("x1").unwrap();
    let x2 = handover::take("x2").unwrap();
    let h = Handover::new().fd("P", &x2).unwrap(); // a duplicate above 5
    drop(x0); // frees 3
    let h = h.fd("Q", &x1).unwrap(); // its duplicate takes 3: P's target
    let mut cmd = h.command(std::env::current_exe().unwrap());
    configure(&mut cmd, "tag", "P,Q");
    cmd.stdout(Stdio::inherit());
    assert!(cmd.status().unwrap().success());
    drop((x1, x2));
}

#[test]
fn a_source_on_a_target_number_is_copied_before_it_is_overwritten() {
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..3).map(|_| UnixStream::pair().unwrap()).collect();
    let mut handover = Handover::new();
    for (i, (_, theirs)) in pairs.iter().enumerate() {
        handover = handover.fd(&format!("x{i}"), theirs).unwrap();
    }
    let out = finish(child(handover, "relay", "").spawn().unwrap(), "relay child");
    assert!(out.contains("TAGGED"), "{out}");
    let mut pairs = pairs.into_iter().map(|(ours, _)| ours);
    let (_x0, mut x1, mut x2) = (
        pairs.next().unwrap(),
        pairs.next().unwrap(),
        pairs.next().unwrap(),
    );
    let mut tag = [0u8; 1];
    x2.read_exact(&mut tag).unwrap();
    assert_eq!(&tag, b"P");
    x1.read_exact(&mut tag).unwrap();
    assert_eq!(&tag, b"Q");
}

/// A child with free numbers inside the target range at spawn (3 and 4, below its sources)
/// starts a program that does not exist: `spawn` must say so. `Command`'s error pipe, made at
/// spawn, would take the lowest free numbers; if it sat at a target number, the child's
/// `dup2` would close it (`spawn` then reports success) and the exec error would be written
/// into a handed socket.
fn gap_child() {
    let low = UnixStream::pair().unwrap(); // 3 and 4, freed below
    let (a, b) = UnixStream::pair().unwrap();
    let h = Handover::new()
        .fd("x", &a)
        .unwrap()
        .fd("y", &b)
        .unwrap()
        .fd("z", &a)
        .unwrap();
    drop(low);
    let mut cmd = Command::new("/nonexistent/ipcraft-handover-test");
    h.apply(&mut cmd);
    match cmd.spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("GAP OK"),
        other => panic!("expected NotFound from spawn, got {other:?}"),
    }
    for end in [&a, &b] {
        end.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        let read = (&*end).read(&mut buf);
        assert!(read.is_err(), "written into a handed socket: {read:?}");
    }
}

#[test]
fn an_exec_failure_is_reported_by_spawn_even_with_free_numbers_in_the_range() {
    let mut cmd = ROLES.command("gap", "");
    handover::scrub(&mut cmd);
    let out = finish(cmd.spawn().unwrap(), "gap child");
    assert!(out.contains("GAP OK"), "{out}");
}

/// `LISTEN_PID` is the child's own pid, as `sd_listen_fds(3)` demands: checked by a program
/// that is not ipcraft (the shell), which also finds descriptor 3 open.
#[test]
fn listen_pid_is_the_programs_own_pid() {
    let (_ours, theirs) = UnixStream::pair().unwrap();
    let out = Handover::new()
        .fd("x", &theirs)
        .unwrap()
        .command("/bin/sh")
        .arg("-c")
        .arg(
            r#"test "$LISTEN_PID" = "$$" && test "$LISTEN_FDS" = 1 && test "$LISTEN_FDNAMES" = x && test -e /proc/$$/fd/3 && echo PROTOCOL OK"#,
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PROTOCOL OK\n");
}

// ---- other launchers ----------------------------------------------------------------------

/// Connects to `path` (bound by the launcher, perhaps not yet), sends a greeting, and reads
/// the child's answer.
fn talk_to(path: &Path) -> String {
    let start = Instant::now();
    let mut conn = loop {
        match UnixStream::connect(path) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot connect to {}: {e}", path.display()),
        }
    };
    conn.write_all(b"hello").unwrap();
    let mut answer = [0u8; 14];
    conn.read_exact(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_child_under_systemd_socket_activate_accepts_on_its_listener() {
    if !found("systemd-socket-activate") {
        println!("SKIPPED: systemd-socket-activate not found (Debian package `systemd`)");
        eprintln!("SKIPPED: systemd-socket-activate not found (Debian package `systemd`)");
        return;
    }
    let path = PathBuf::from(unique_name("/tmp/ipcraft-handover", "sd.sock"));
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&path)
        .arg("--fdname=listener")
        .arg(format!("-E{}=accept", ROLES.role_env()))
        .arg(format!("-E{}=listener", ROLES.arg_env()))
        .arg(std::env::current_exe().unwrap())
        .args(CHILD_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let answer = talk_to(&path);
    let out = finish(child, "child under systemd-socket-activate");
    let _ = std::fs::remove_file(&path);
    assert_eq!(answer, "ACCEPTED hello");
    assert!(out.contains("ACCEPTED"), "{out}");
}

/// The same with a launcher of our own, in Python: binds, puts the listener at 3, sets the
/// three variables (`LISTEN_PID` to its own pid) and execs the child.
const PYTHON_LAUNCHER: &str = r#"
import os, socket, sys
path, name, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(8)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
    s.close()
else:
    os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=name)
os.execv(argv[0], argv)
"#;

#[test]
fn a_child_under_a_python_launcher_accepts_on_its_listener() {
    if !found("python3") {
        println!("SKIPPED: python3 not found: the launcher test needs it");
        eprintln!("SKIPPED: python3 not found: the launcher test needs it");
        return;
    }
    let path = PathBuf::from(unique_name("/tmp/ipcraft-handover", "py.sock"));
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PYTHON_LAUNCHER)
        .arg(&path)
        .arg("web")
        .arg(std::env::current_exe().unwrap());
    configure(&mut cmd, "accept", "web");
    let child = cmd.spawn().unwrap();
    let answer = talk_to(&path);
    let out = finish(child, "child under the Python launcher");
    let _ = std::fs::remove_file(&path);
    assert_eq!(answer, "ACCEPTED hello");
    assert!(out.contains("ACCEPTED"), "{out}");
}
