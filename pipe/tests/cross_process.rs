//! Pipes and FIFOs between real processes.
//!
//! Children are this test binary re-run with `--exact child_role` and the role in the
//! environment (see [`spawn_role`]), never a bare `fork()` of the multi-threaded harness.
//! A child's data channels are its stdin and its **stderr**: the test harness prints its own
//! lines on stdout, which a child uses only for line-based markers.
#![allow(unsafe_code)] // One call, in `sigpipe_default_role`, with its SAFETY note.

mod common;
use common::TempPath;
use ipcraft_pipe::{
    Error, Fifo, FrameError, FrameReader, FrameWriter, PIPE_BUF, PipeReader, PipeWriter, pipe,
};
use ipcraft_testkit::{Roles, finish, kill, wait_for};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_PIPE_TEST_ROLE", "IPCRAFT_PIPE_TEST_ARG");
/// Generous: the machine is shared and has 2 cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// A child playing `role` with `arg`, with the given stdio: its data channels are stdin
/// and stderr.
fn spawn_role(role: &str, arg: &str, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Child {
    ROLES
        .command(role, arg)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "echo-reversed" => echo_reversed_role(),
        "partial-frame" => partial_frame_role(),
        "fifo-writer" => fifo_writer_role(&arg),
        "fifo-reader" => fifo_reader_role(&arg),
        "atomic-writer" => atomic_writer_role(&arg),
        "list-fds" => list_fds_role(),
        "sigpipe-default" => sigpipe_default_role(&arg),
        other => panic!("unknown role {other}"),
    }
}

/// Our stdin and stderr as pipe ends (duplicates, close-on-exec).
fn stdin_reader() -> PipeReader {
    PipeReader::try_from(std::io::stdin().as_fd().try_clone_to_owned().unwrap()).unwrap()
}

fn stderr_writer() -> PipeWriter {
    PipeWriter::try_from(std::io::stderr().as_fd().try_clone_to_owned().unwrap()).unwrap()
}

fn echo_reversed_role() {
    let mut rx = FrameReader::new(stdin_reader());
    let mut tx = FrameWriter::new(stderr_writer());
    while let Some(frame) = rx.next_frame().unwrap() {
        let reply: Vec<u8> = frame.iter().rev().copied().collect();
        tx.send(&reply).unwrap();
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

fn fifo_writer_role(path: &str) {
    let w = Fifo::open_writer(path, Some(PEER_TIMEOUT)).unwrap();
    let mut tx = FrameWriter::new(w);
    for i in 0..100u32 {
        let mut msg = i.to_le_bytes().to_vec();
        msg.resize(4 + (i as usize * 97) % 3000, i as u8);
        tx.send(&msg).unwrap();
    }
}

fn fifo_reader_role(path: &str) {
    let r = Fifo::open_reader(path, Some(PEER_TIMEOUT)).unwrap();
    let mut rx = FrameReader::new(r);
    let mut count = 0u32;
    while let Some(msg) = rx.next_frame().unwrap() {
        let seq = u32::from_le_bytes(msg[..4].try_into().unwrap());
        assert_eq!(seq, count, "frames arrive in order");
        assert_eq!(msg.len(), 4 + (seq as usize * 97) % 3000);
        assert!(msg[4..].iter().all(|&b| b == seq as u8));
        count += 1;
    }
    println!("COUNT={count}");
}

fn atomic_writer_role(id: &str) {
    let id: u8 = id.parse().unwrap();
    let w = stderr_writer();
    for seq in 0..200u32 {
        let mut record = vec![id; PIPE_BUF];
        record[1..5].copy_from_slice(&seq.to_le_bytes());
        w.write_atomic(&record).unwrap();
    }
}

fn list_fds_role() {
    // Straight to fd 2: a duplicate would show up in the listing.
    let mut out = std::io::stderr().lock();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        if let Ok(target) = std::fs::read_link(entry.path()) {
            writeln!(
                out,
                "{} {}",
                entry.file_name().to_string_lossy(),
                target.display()
            )
            .unwrap();
        }
    }
}

fn sigpipe_default_role(suppress: &str) {
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
    let (r, mut w) = pipe().unwrap();
    drop(r);
    w.set_suppress_sigpipe(suppress == "suppress");
    match w.write_atomic(b"nobody reads this") {
        Err(Error::BrokenPipe) => println!("BROKEN-PIPE-REPORTED"),
        other => panic!("expected BrokenPipe, got {other:?}"),
    }
}

/// Lines the child printed on stdout (the harness's own lines included).
fn stdout_lines(child: &mut Child) -> Vec<String> {
    let out = child.stdout.take().unwrap();
    BufReader::new(out).lines().map(Result::unwrap).collect()
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn framed_messages_both_ways_with_a_child() {
    let (to_child_r, to_child_w) = pipe().unwrap();
    let (from_child_r, from_child_w) = pipe().unwrap();
    let child = spawn_role(
        "echo-reversed",
        "",
        to_child_r.into(),
        Stdio::null(),
        from_child_w.into(),
    );
    let mut tx = FrameWriter::new(to_child_w);
    let mut rx = FrameReader::new(from_child_r);
    let mut state = 0x1234_5678u32;
    for i in 0..300usize {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        // Sizes from 0 to past the pipe's 64 KiB capacity.
        let len = if i % 50 == 0 {
            0
        } else {
            state as usize % 70_000
        };
        let msg: Vec<u8> = (0..len).map(|j| (j as u32 ^ state) as u8).collect();
        tx.send(&msg).unwrap();
        let reply = rx.next_frame().unwrap().expect("a reply");
        assert!(
            reply.iter().eq(msg.iter().rev()),
            "reply {i} is the message reversed"
        );
    }
    drop(tx);
    assert_eq!(
        rx.next_frame().unwrap(),
        None,
        "child closes after our end of stream"
    );
    finish(child, "echo child");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn child_killed_mid_frame_leaves_earlier_frames_and_a_truncation_error() {
    let (r, w) = pipe().unwrap();
    let mut child = spawn_role("partial-frame", "", Stdio::null(), Stdio::piped(), w.into());
    let mut rx = FrameReader::new(r);
    for i in 0..3u8 {
        assert_eq!(
            rx.next_frame().unwrap(),
            Some(&[i; 1000][..]),
            "frame {i} intact"
        );
    }
    // Wait until the child says the partial frame is in the pipe, then kill it.
    wait_for(&mut child, "PARTIAL-WRITTEN");
    let status = kill(&mut child);
    assert_eq!(status.signal(), Some(9));
    match rx.next_frame() {
        Err(FrameError::Truncated {
            expected: 104,
            received: 14,
        }) => {}
        other => panic!("expected a truncation error, got {other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn fifo_between_two_unrelated_processes() {
    let path = TempPath::new("fifo2");
    let fifo = Fifo::create(&path.0).unwrap();
    let arg = fifo.path().to_str().unwrap();
    let mut reader = spawn_role(
        "fifo-reader",
        arg,
        Stdio::null(),
        Stdio::piped(),
        Stdio::inherit(),
    );
    let writer = spawn_role(
        "fifo-writer",
        arg,
        Stdio::null(),
        Stdio::null(),
        Stdio::inherit(),
    );
    let lines = stdout_lines(&mut reader);
    finish(writer, "fifo writer");
    finish(reader, "fifo reader");
    assert!(
        lines.iter().any(|l| l == "COUNT=100"),
        "reader saw {lines:?}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn shell_writes_to_our_fifo_and_cat_reads_from_it() {
    let path = TempPath::new("fifo-sh");
    let fifo = Fifo::create(&path.0).unwrap();
    // A shell writes; we read.
    let sh = Command::new("sh")
        .arg("-c")
        .arg("printf 'from the shell\\n' > \"$0\"")
        .arg(fifo.path())
        .spawn()
        .unwrap();
    let mut r = Fifo::open_reader(fifo.path(), Some(PEER_TIMEOUT)).unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "from the shell\n");
    finish(sh, "sh");
    // Our reader would count as the reader the writer below waits for.
    drop(r);

    // We write frames; cat reads them and copies them to its stdout, which we parse.
    let mut cat = Command::new("cat")
        .arg(fifo.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let w = Fifo::open_writer(fifo.path(), Some(PEER_TIMEOUT)).unwrap();
    let mut tx = FrameWriter::new(w);
    tx.send(b"alpha").unwrap();
    tx.send(&[0u8; 5000]).unwrap();
    drop(tx);
    let mut rx = FrameReader::new(cat.stdout.take().unwrap());
    assert_eq!(rx.next_frame().unwrap(), Some(&b"alpha"[..]));
    assert_eq!(rx.next_frame().unwrap(), Some(&[0u8; 5000][..]));
    assert_eq!(rx.next_frame().unwrap(), None);
    finish(cat, "cat");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn atomic_writes_from_several_processes_never_interleave() {
    let (mut r, w) = pipe().unwrap();
    let children: Vec<Child> = (1..=4u8)
        .map(|id| {
            let end = w.try_clone().unwrap();
            spawn_role(
                "atomic-writer",
                &id.to_string(),
                Stdio::null(),
                Stdio::null(),
                end.into(),
            )
        })
        .collect();
    drop(w);
    let mut next_seq = [0u32; 5];
    let mut record = vec![0u8; PIPE_BUF];
    let mut total = 0;
    loop {
        match r.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("{e}"),
        }
        let id = record[0];
        assert!((1..=4).contains(&id), "record starts with a writer id");
        let seq = u32::from_le_bytes(record[1..5].try_into().unwrap());
        assert_eq!(
            seq, next_seq[id as usize],
            "writer {id}'s records arrive in order"
        );
        next_seq[id as usize] += 1;
        assert!(
            record[5..].iter().all(|&b| b == id),
            "record {seq} of writer {id} is whole"
        );
        total += 1;
    }
    for c in children {
        finish(c, "atomic writer");
    }
    assert_eq!(total, 800);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_child_inherits_only_the_descriptors_it_was_handed() {
    let (kept_r, kept_w) = pipe().unwrap();
    let (handed_r, handed_w) = pipe().unwrap();
    let target = |fd: &dyn AsFd| {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
            .unwrap()
            .display()
            .to_string()
    };
    let kept = [target(&kept_r), target(&kept_w)];
    let handed = target(&handed_r);
    let (report_r, report_w) = pipe().unwrap();
    let child = spawn_role(
        "list-fds",
        "",
        handed_r.into(),
        Stdio::null(),
        report_w.into(),
    );
    let mut listing = String::new();
    let mut report_r = report_r;
    report_r.read_to_string(&mut listing).unwrap();
    finish(child, "list-fds child");
    drop(handed_w);
    let fds: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once(' ')).collect();
    assert!(
        fds.contains(&("0", handed.as_str())),
        "stdin is the pipe handed over: {fds:?}"
    );
    for k in &kept {
        assert!(
            !fds.iter().any(|(_, t)| t == k),
            "{k} leaked into the child: {fds:?}"
        );
    }
    // No pipe at all beyond stdio, but those this process itself inherited without
    // close-on-exec (a build tool's jobserver): every pipe this process (and its other tests,
    // running in parallel) creates is close-on-exec.
    let inheritable = inheritable_fd_targets();
    for (fd, t) in &fds {
        let n: i32 = fd.parse().unwrap();
        assert!(
            n <= 2 || !t.starts_with("pipe:") || inheritable.contains(&t.to_string()),
            "inherited pipe at fd {n} -> {t}"
        );
    }
}

/// Targets of this process's descriptors above 2 that lack close-on-exec (from
/// `/proc/self/fdinfo`), which any child inherits whatever this crate does.
fn inheritable_fd_targets() -> Vec<String> {
    const O_CLOEXEC: u32 = 0o2000000;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap() {
        let entry = entry.unwrap();
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        let fd = entry.file_name().to_string_lossy().into_owned();
        if flags & O_CLOEXEC == 0 {
            if let Ok(t) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                out.push(t.display().to_string());
            }
        }
    }
    out
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn sigpipe_suppression_turns_a_deadly_signal_into_an_error() {
    // Control: with SIGPIPE at its default action, an unprotected write kills the process.
    let mut plain = spawn_role(
        "sigpipe-default",
        "plain",
        Stdio::null(),
        Stdio::piped(),
        Stdio::null(),
    );
    let lines = stdout_lines(&mut plain);
    let status = plain.wait().unwrap();
    assert_eq!(status.signal(), Some(13), "killed by SIGPIPE: {status:?}");
    assert!(!lines.iter().any(|l| l == "BROKEN-PIPE-REPORTED"));

    let mut guarded = spawn_role(
        "sigpipe-default",
        "suppress",
        Stdio::null(),
        Stdio::piped(),
        Stdio::inherit(),
    );
    let lines = stdout_lines(&mut guarded);
    let status = guarded.wait().unwrap();
    assert!(status.success(), "survived: {status:?}");
    assert!(lines.iter().any(|l| l == "BROKEN-PIPE-REPORTED"));
}
