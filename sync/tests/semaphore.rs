//! Semaphores across real processes: named and in a shared segment, timeouts, Python's
//! `posix_ipc` as a peer no one here wrote, and bad input.
//!
//! Children are this test binary re-run with `--exact child_role` and a role in the
//! environment; they report on stdout with marker lines. Every name is unique (pid plus a
//! counter) and removed by a guard, so a failing test leaves nothing in `/dev/shm`.

mod common;
use common::{Name, ROLES, spawn_role};
use ipcraft_core::Deadline;
use ipcraft_core::name::NameErrorKind;
use ipcraft_shm::Segment;
use ipcraft_sync::{Error, Mutex, SEM_VALUE_MAX, SEMAPHORE_FOOTPRINT, Semaphore, unlink_semaphore};
use ipcraft_testkit::{finish, python_has_posix_ipc, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: u32 = 2000;
/// Generous: the machine is shared and has 2 cores. Only "never hangs" rides on it.
const LONG: Duration = Duration::from_secs(30);

fn pong(ping: &Semaphore<'_>, pong: &Semaphore<'_>, rounds: u32) {
    for _ in 0..rounds {
        ping.wait_timeout(LONG).unwrap();
        pong.post().unwrap();
    }
}

fn ping(ping: &Semaphore<'_>, pong: &Semaphore<'_>, rounds: u32) {
    for _ in 0..rounds {
        ping.post().unwrap();
        pong.wait_timeout(LONG).unwrap();
    }
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "named-pong" => {
            let (a, b) = arg.split_once(',').unwrap();
            let (a, b) = (Semaphore::open(a).unwrap(), Semaphore::open(b).unwrap());
            assert!(!a.owns_name());
            pong(&a, &b, ROUNDS);
        }
        "segment-pong" => {
            let seg = Segment::open(&arg).unwrap();
            let a = Semaphore::in_segment(&seg, 0, 0).unwrap();
            let b = Semaphore::in_segment(&seg, 64, 0).unwrap();
            pong(&a, &b, ROUNDS);
        }
        "place-and-post" => {
            let seg = Segment::open(&arg).unwrap();
            let s = Semaphore::in_segment(&seg, 0, 5).unwrap();
            s.post().unwrap();
        }
        "post-later" => {
            let s = Semaphore::open(&arg).unwrap();
            println!("OPENED");
            std::thread::sleep(Duration::from_millis(300));
            s.post().unwrap();
        }
        "timed-wait" => {
            let s = Semaphore::open(&arg).unwrap();
            println!("WAITING");
            let start = Instant::now();
            let r = s.wait_timeout(Duration::from_millis(1500));
            println!("RESULT {r:?} {}", start.elapsed().as_millis());
        }
        "create-persist" => {
            let mut s = Semaphore::create(&arg, 1).unwrap();
            s.persist();
            println!("CREATED");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn named_ping_pong_between_two_processes() {
    let (a, b) = (Name::new("ping"), Name::new("pong"));
    let sa = Semaphore::create(&a, 0).unwrap();
    let sb = Semaphore::create(&b, 0).unwrap();
    assert!(sa.owns_name());
    let child = spawn_role("named-pong", &format!("{},{}", &*a, &*b));
    ping(&sa, &sb, ROUNDS);
    finish(child, "named-pong");
    assert_eq!((sa.value().unwrap(), sb.value().unwrap()), (0, 0));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn unnamed_in_a_segment_ping_pong_between_two_processes() {
    let name = Name::new("seg-pong");
    let seg = Segment::create(&name, 4096).unwrap();
    let a = Semaphore::in_segment(&seg, 0, 0).unwrap();
    let b = Semaphore::in_segment(&seg, 64, 0).unwrap();
    assert_eq!(a.name(), None);
    let child = spawn_role("segment-pong", &name);
    ping(&a, &b, ROUNDS);
    finish(child, "segment-pong");
    assert_eq!((a.value().unwrap(), b.value().unwrap()), (0, 0));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn placed_by_racing_processes_it_is_initialized_once() {
    let name = Name::new("race");
    let seg = Segment::create(&name, 4096).unwrap();
    // Each child places it with 5 and posts once; a second initialization would reset
    // the count to 5 and lose posts.
    let children: Vec<Child> = (0..6)
        .map(|_| spawn_role("place-and-post", &name))
        .collect();
    for c in children {
        finish(c, "place-and-post");
    }
    let s = Semaphore::in_segment(&seg, 0, 99).unwrap();
    assert_eq!(s.value().unwrap(), 5 + 6, "one initialization, every post");
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn wait_timeout_returns_after_the_timeout_and_not_before() {
    let seg = Segment::anonymous(4096).unwrap();
    let s = Semaphore::in_segment(&seg, 0, 0).unwrap();
    for ms in [1, 50, 200] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        assert!(matches!(s.wait_timeout(timeout), Err(Error::TimedOut)));
        let took = start.elapsed();
        assert!(
            took >= timeout,
            "returned after {took:?}, before {timeout:?}"
        );
        assert!(took < timeout + LONG, "hung for {took:?}");

        let deadline = Deadline::after(timeout);
        assert!(matches!(s.wait_deadline(deadline), Err(Error::TimedOut)));
        assert!(deadline.has_passed(), "returned before the deadline");
    }
    // A passed deadline: times out at once when zero, takes a unit that is there.
    let past = Deadline::at(Instant::now());
    assert!(matches!(s.wait_deadline(past), Err(Error::TimedOut)));
    assert!(matches!(s.try_wait(), Err(Error::WouldBlock)));
    s.post().unwrap();
    s.wait_deadline(past).unwrap();
    s.post().unwrap();
    s.try_wait().unwrap();
    s.post().unwrap();
    s.wait_deadline(Deadline::never()).unwrap();
    assert_eq!(s.value().unwrap(), 0);
    let e: std::io::Error = Error::WouldBlock.into();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    let e: std::io::Error = Error::TimedOut.into();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_timed_wait_wakes_on_a_post_from_another_process() {
    let name = Name::new("wake");
    let s = Semaphore::create(&name, 0).unwrap();
    let mut child = spawn_role("post-later", &name);
    wait_for(&mut child, "OPENED");
    let start = Instant::now();
    s.wait_timeout(LONG).unwrap();
    assert!(start.elapsed() < LONG);
    finish(child, "post-later");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_waiter_stopped_and_continued_keeps_its_timeout() {
    let name = Name::new("stop");
    let _s = Semaphore::create(&name, 0).unwrap();
    let mut child = spawn_role("timed-wait", &name);
    wait_for(&mut child, "WAITING");
    let pid = child.id().to_string();
    for sig in ["-STOP", "-CONT", "-STOP", "-CONT"] {
        std::thread::sleep(Duration::from_millis(100));
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    }
    let out = finish(child, "timed-wait");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result: {out}"));
    let (result, ms) = line.rsplit_once(' ').unwrap();
    assert_eq!(result, "Err(TimedOut)", "{out}");
    assert!(ms.parse::<u64>().unwrap() >= 1500, "returned early: {out}");
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn the_creator_removes_the_name_an_opener_never_and_persist_keeps_it() {
    let name = Name::new("raii");
    let creator = Semaphore::create(&name, 0).unwrap();
    let opener = Semaphore::open(&name).unwrap();
    assert!(creator.owns_name() && !opener.owns_name());
    assert_eq!(opener.name(), Some(&*name.0));
    drop(opener);
    drop(Semaphore::open(&name).unwrap());
    drop(creator);
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(!std::path::Path::new(&name.file()).exists());

    let mut kept = Semaphore::create(&name, 3).unwrap();
    kept.persist();
    assert!(!kept.owns_name());
    drop(kept);
    assert_eq!(Semaphore::open(&name).unwrap().value().unwrap(), 3);
    unlink_semaphore(&name).unwrap();
    assert!(matches!(
        unlink_semaphore(&name),
        Err(Error::NotFound { .. })
    ));

    // A creator whose name was removed and made again by someone else leaves the new one.
    let old = Semaphore::create(&name, 0).unwrap();
    unlink_semaphore(&name).unwrap();
    let new = Semaphore::create(&name, 7).unwrap();
    drop(old);
    assert_eq!(Semaphore::open(&name).unwrap().value().unwrap(), 7);
    drop(new);
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn named_semaphores_are_mode_0600_whatever_the_umask() {
    for umask in ["277", "000", "077"] {
        let name = Name::new("mode");
        // This test binary as a `create-persist` child, started under the umask by a shell.
        let script = format!("umask {umask} && exec \"$@\"");
        let child = ROLES
            .command_via("sh", &["-c", &script, "sh"], "create-persist", &name)
            .spawn()
            .unwrap();
        let out = finish(child, "create-persist");
        assert!(out.contains("CREATED"), "{out}");
        let mode = std::fs::metadata(name.file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "umask {umask}");
        // Usable by its owner (under umask 277 sem_open alone would have made it 0400).
        let s = Semaphore::open(&name).unwrap();
        s.try_wait().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Python's posix_ipc as the peer.

fn python(script: &str, args: &[&str]) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn python_posix_ipc_interop_both_ways() {
    if !python_has_posix_ipc() {
        return;
    }
    // Python posts (while we wait); we wait.
    let name = Name::new("py-posts");
    let s = Semaphore::create(&name, 0).unwrap();
    let py = python(
        "import posix_ipc, sys, time\n\
         s = posix_ipc.Semaphore(sys.argv[1])\n\
         print(posix_ipc.SEMAPHORE_VALUE_MAX, flush=True)\n\
         time.sleep(0.2)\n\
         s.release()\n\
         s.release()\n\
         s.close()\n",
        &[&name],
    );
    s.wait_timeout(LONG).unwrap();
    s.wait_timeout(LONG).unwrap();
    let out = finish(py, "python");
    assert_eq!(out.trim(), SEM_VALUE_MAX.to_string(), "the same limit");
    assert_eq!(s.value().unwrap(), 0);

    // Python waits with a timeout; we post.
    let name = Name::new("py-waits");
    let s = Semaphore::create(&name, 0).unwrap();
    let mut py = python(
        "import posix_ipc, sys\n\
         s = posix_ipc.Semaphore(sys.argv[1])\n\
         try:\n\
         \x20   s.acquire(0.05)\n\
         \x20   sys.exit('acquired a semaphore that is zero')\n\
         except posix_ipc.BusyError:\n\
         \x20   pass\n\
         print('WAITING', flush=True)\n\
         s.acquire(30)\n\
         print('ACQUIRED', s.value)\n\
         s.close()\n",
        &[&name],
    );
    wait_for(&mut py, "WAITING");
    std::thread::sleep(Duration::from_millis(100));
    s.post().unwrap();
    assert_eq!(finish(py, "python").trim(), "ACQUIRED 0");
    assert_eq!(s.value().unwrap(), 0);

    // Python creates (posix_ipc: mode 0600); we open, wait and post; Python sees it.
    let name = Name::new("py-creates");
    let py = python(
        "import posix_ipc, sys\n\
         posix_ipc.Semaphore(sys.argv[1], posix_ipc.O_CREX, initial_value=3).close()\n",
        &[&name],
    );
    finish(py, "python");
    let s = Semaphore::open(&name).unwrap();
    assert!(!s.owns_name());
    assert_eq!(s.value().unwrap(), 3);
    s.wait().unwrap();
    s.post().unwrap();
    s.post().unwrap();
    let py = python(
        "import posix_ipc, sys\n\
         s = posix_ipc.Semaphore(sys.argv[1])\n\
         print(s.value)\n\
         s.unlink()\n",
        &[&name],
    );
    let out = finish(py, "python");
    assert_eq!(out.trim(), "4");
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Bad input.

fn name_kind(r: Result<Semaphore<'static>, Error>) -> NameErrorKind {
    match r {
        Err(Error::Name(e)) => {
            assert_eq!(e.max(), 251);
            e.kind()
        }
        other => panic!("expected a name error, got {other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn bad_input_gets_typed_errors() {
    // The limit is the system's.
    let out = Command::new("getconf")
        .arg("SEM_VALUE_MAX")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        SEM_VALUE_MAX.to_string()
    );

    // A value over SEM_VALUE_MAX, at creation: typed, says the limit, creates nothing.
    let name = Name::new("too-large");
    match Semaphore::create(&name, SEM_VALUE_MAX + 1) {
        Err(e @ Error::ValueTooLarge { value, max }) => {
            assert_eq!((value, max), (1 << 31, SEM_VALUE_MAX));
            assert!(e.to_string().contains("SEM_VALUE_MAX = 2147483647"), "{e}");
            let io: std::io::Error = e.into();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::NotFound { .. })
    ));
    // ... and by a post (EOVERFLOW), leaving the value at the limit.
    let full = Semaphore::create(&name, SEM_VALUE_MAX).unwrap();
    assert!(matches!(
        full.post(),
        Err(Error::ValueTooLarge { value, max: SEM_VALUE_MAX }) if value == 1 << 31
    ));
    assert_eq!(full.value().unwrap(), SEM_VALUE_MAX);
    full.try_wait().unwrap();
    full.post().unwrap();

    // Exists already / does not exist, saying it is a semaphore and what to do.
    let exists = Semaphore::create(&name, 0).unwrap_err();
    assert!(matches!(&exists, Error::AlreadyExists { name: n } if n == &*name));
    let text = exists.to_string();
    assert!(
        text.contains("a semaphore named") && text.contains("Semaphore::open"),
        "{text}"
    );
    drop(full);
    let missing = Semaphore::open(&name).unwrap_err();
    assert!(matches!(&missing, Error::NotFound { name: n } if n == &*name));
    let text = missing.to_string();
    assert!(
        text.contains("no semaphore named") && text.contains("Semaphore::create"),
        "{text}"
    );
    assert!(matches!(
        unlink_semaphore(&name),
        Err(Error::NotFound { .. })
    ));
    let e: std::io::Error = Semaphore::open(&name).unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);

    // Names: each rule its error, with the semaphore limit of 251 bytes.
    assert_eq!(
        name_kind(Semaphore::create("no-slash", 0)),
        NameErrorKind::NoLeadingSlash
    );
    assert_eq!(
        name_kind(Semaphore::open("/a/b")),
        NameErrorKind::InnerSlash { position: 2 }
    );
    assert_eq!(name_kind(Semaphore::create("", 0)), NameErrorKind::Empty);
    assert_eq!(name_kind(Semaphore::open("/")), NameErrorKind::Empty);
    assert_eq!(name_kind(Semaphore::open("/..")), NameErrorKind::Dots);
    let too_long = Name::with_len(252);
    assert_eq!(
        name_kind(Semaphore::create(&too_long, 0)),
        NameErrorKind::TooLong { len: 252 }
    );
    assert!(matches!(unlink_semaphore("nope"), Err(Error::Name(_))));
    let longest = Name::with_len(251);
    let s = Semaphore::create(&longest, 1).unwrap();
    assert_eq!(s.value().unwrap(), 1);

    // Placement in a segment: misaligned, out of bounds, over the limit, read-only, taken.
    let seg = Segment::anonymous(128).unwrap();
    assert!(matches!(
        Semaphore::in_segment(&seg, 32, 0),
        Err(Error::Misaligned { offset: 32 })
    ));
    assert!(matches!(
        Semaphore::in_segment(&seg, 128, 0),
        Err(Error::Shm(ipcraft_shm::Error::OutOfBounds {
            offset: 128,
            len: SEMAPHORE_FOOTPRINT,
            size: 128
        }))
    ));
    assert!(matches!(
        Semaphore::in_segment(&seg, usize::MAX - 63, 0),
        Err(Error::Shm(ipcraft_shm::Error::OutOfBounds { .. }))
    ));
    assert!(matches!(
        Semaphore::in_segment(&seg, 0, SEM_VALUE_MAX + 1),
        Err(Error::ValueTooLarge { .. })
    ));
    let _m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    assert!(matches!(
        Semaphore::in_segment(&seg, 0, 0),
        Err(Error::WrongLayout { .. })
    ));
    let _s = Semaphore::in_segment(&seg, 64, 0).unwrap();
    assert!(matches!(
        Mutex::in_segment(&seg, 64, 0u64),
        Err(Error::WrongLayout { .. })
    ));

    let seg_name = Name::new("read-only");
    let _seg = Segment::create(&seg_name, 4096).unwrap();
    let ro = Segment::open_read_only(&seg_name).unwrap();
    assert!(matches!(
        Semaphore::in_segment(&ro, 0, 0),
        Err(Error::Shm(ipcraft_shm::Error::ReadOnly))
    ));
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn a_placement_left_half_done_is_not_ready_and_garbage_is_wrong_layout() {
    // A process that died placing it left the state word "initializing": attachers give up
    // after the init timeout with a typed error instead of waiting forever.
    let seg = Segment::anonymous(4096).unwrap();
    seg.write(0, &1u32).unwrap();
    let start = Instant::now();
    assert!(matches!(
        Semaphore::in_segment(&seg, 0, 0),
        Err(Error::NotReady)
    ));
    let took = start.elapsed();
    assert!(
        took >= ipcraft_sync::DEFAULT_INIT_TIMEOUT && took < LONG,
        "{took:?}"
    );
    // A state word that is no state at all.
    seg.write(64, &7u32).unwrap();
    assert!(matches!(
        Semaphore::in_segment(&seg, 64, 0),
        Err(Error::WrongLayout { found: 7, .. })
    ));
}
