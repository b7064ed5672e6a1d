//! Shared memory between real processes, and every bad input.
//!
//! Children are this test binary re-run with `--exact child_role` and a role in the
//! environment; they report on stdout with marker lines (the harness's own lines are ignored).
#![allow(clippy::disallowed_types)] // Std atomics in shared memory: what this crate serves.

mod common;

use common::Name;
use ipcraft_shm::{Error, Segment, SegmentOptions, list, remove_stale, unlink};
use ipcraft_testkit::{Roles, finish, kill, wait_for};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROLES: Roles = Roles::new("IPCRAFT_SHM_TEST_ROLE", "IPCRAFT_SHM_TEST_ARG");
const INCREMENTS: u64 = 200_000;

/// A unique segment name of this file's tests (see [`common::Name`]).
fn seg_name(tag: &str) -> Name {
    Name::new("/ipcraft-shm-test", tag)
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "increment-named" => {
            let seg = Segment::open(&arg).unwrap();
            increment(&seg);
        }
        "increment-memfd" => {
            let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
            let seg = Segment::from_fd(fd, 64).unwrap();
            increment(&seg);
        }
        "truncate-memfd" => {
            let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
            match nix::unistd::ftruncate(&fd, 0) {
                Err(nix::errno::Errno::EPERM) => println!("TRUNCATE-REFUSED"),
                other => println!("TRUNCATE-RESULT {other:?}"),
            }
            match nix::unistd::ftruncate(&fd, 1 << 20) {
                Err(nix::errno::Errno::EPERM) => println!("GROW-REFUSED"),
                other => println!("GROW-RESULT {other:?}"),
            }
        }
        "race" => {
            let (seg, created) = Segment::open_or_create(&arg, 4096, |s| {
                let inits: &AtomicU64 = s.get(0)?;
                inits.fetch_add(1, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(100));
                s.write(8, &0xC0FFEE_u64)
            })
            .unwrap();
            let inits = seg.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire);
            let value: u64 = seg.read(8).unwrap();
            if created {
                // Keep the name alive until the parent has seen every opener.
                let mut seg = seg;
                seg.persist();
            }
            println!("RACE created={created} inits={inits} value={value:#x}");
        }
        "init-and-hang" => {
            let _ = Segment::open_or_create(&arg, 4096, |_| {
                println!("IN-INIT");
                std::thread::sleep(Duration::from_secs(120));
                Ok(())
            });
        }
        "open-wait" => {
            let start = Instant::now();
            let r = SegmentOptions::new()
                .timeout(Duration::from_secs(20))
                .open(&arg);
            let kind = match r {
                Ok(_) => "ok".to_owned(),
                Err(Error::CreatorDied { .. }) => "CreatorDied".to_owned(),
                Err(e) => format!("{e:?}"),
            };
            println!("OPENED {kind} after_ms={}", start.elapsed().as_millis());
        }
        "create-and-hang" => {
            let _seg = Segment::create(&arg, 4096).unwrap();
            println!("CREATED");
            std::thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown role {other}"),
    }
}

fn increment(seg: &Segment) {
    let counter: &AtomicU64 = seg.get(0).unwrap();
    for _ in 0..INCREMENTS {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    println!("DONE");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn counters_incremented_by_two_processes_add_up_named_and_anonymous() {
    let name = seg_name("count");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let child = ROLES.spawn("increment-named", &name.0, Stdio::null());
    increment_here(&seg);
    finish(child, "increment-named");
    assert_eq!(
        seg.get::<AtomicU64>(0).unwrap().load(Ordering::SeqCst),
        2 * INCREMENTS
    );

    let anon = Segment::anonymous(4096).unwrap();
    let fd: OwnedFd = anon.as_fd().try_clone_to_owned().unwrap();
    let child = ROLES.spawn("increment-memfd", "", Stdio::from(fd));
    increment_here(&anon);
    finish(child, "increment-memfd");
    assert_eq!(
        anon.get::<AtomicU64>(0).unwrap().load(Ordering::SeqCst),
        2 * INCREMENTS
    );
}

fn increment_here(seg: &Segment) {
    let counter: &AtomicU64 = seg.get(0).unwrap();
    for _ in 0..INCREMENTS {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn writer_and_reader_processes_share_bytes() {
    let name = seg_name("bytes");
    let seg = Segment::create(&name.0, 8192).unwrap();
    seg.write_at(5000, b"from the creator").unwrap();
    // A read-only opener in another process would do exactly this.
    let reader = Segment::open_read_only(&name.0).unwrap();
    let mut buf = [0u8; 16];
    reader.read_at(5000, &mut buf).unwrap();
    assert_eq!(&buf, b"from the creator");
    assert!(matches!(reader.write_at(0, b"x"), Err(Error::ReadOnly)));
    assert!(matches!(reader.get::<AtomicU64>(0), Err(Error::ReadOnly)));
    // Readers still follow atomics the writer updates.
    seg.get::<AtomicU64>(64)
        .unwrap()
        .store(7, Ordering::Release);
    assert_eq!(reader.load_u64(64, Ordering::Acquire).unwrap(), 7);
    assert_eq!(reader.load_u32(64, Ordering::Acquire).unwrap(), 7);
    assert!(matches!(
        reader.load_u64(60, Ordering::Relaxed),
        Err(Error::Misaligned { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn open_or_create_raced_by_eight_processes_initializes_once() {
    let name = seg_name("race");
    let children: Vec<Child> = (0..8)
        .map(|_| ROLES.spawn("race", &name.0, Stdio::null()))
        .collect();
    let mut created = 0;
    for c in children {
        let out = finish(c, "race");
        let line = out
            .lines()
            .find(|l| l.starts_with("RACE"))
            .expect("a RACE line");
        assert!(
            line.contains("inits=1 "),
            "initialized exactly once, seen by all: {line}"
        );
        assert!(
            line.ends_with("value=0xc0ffee"),
            "initialized state visible: {line}"
        );
        if line.contains("created=true") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one process created it");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn an_initializer_killed_mid_way_is_reported_within_the_timeout() {
    let name = seg_name("initkill");
    let mut init = ROLES.spawn("init-and-hang", &name.0, Stdio::null());
    wait_for(&mut init, "IN-INIT");
    let openers: Vec<Child> = (0..2)
        .map(|_| ROLES.spawn("open-wait", &name.0, Stdio::null()))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    kill(&mut init);
    for o in openers {
        let out = finish(o, "open-wait");
        let line = out.lines().find(|l| l.starts_with("OPENED")).unwrap();
        assert!(line.contains("OPENED CreatorDied"), "{line}");
        let ms: u64 = line.rsplit("after_ms=").next().unwrap().parse().unwrap();
        assert!(ms < 20_000, "returned within its timeout: {line}");
    }
    // The dead creator's segment is stale, and a new open says so at once.
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::CreatorDied { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_sealed_memfd_cannot_be_truncated_by_the_peer() {
    let seg = Segment::anonymous(1 << 16).unwrap();
    seg.write_at((1 << 16) - 4, b"tail").unwrap();
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    let child = ROLES.spawn("truncate-memfd", "", Stdio::from(fd));
    let out = finish(child, "truncate-memfd");
    assert!(out.lines().any(|l| l == "TRUNCATE-REFUSED"), "{out}");
    assert!(out.lines().any(|l| l == "GROW-REFUSED"), "{out}");
    // Still mapped whole: no SIGBUS on the last page.
    let mut buf = [0u8; 4];
    seg.read_at((1 << 16) - 4, &mut buf).unwrap();
    assert_eq!(&buf, b"tail");
}

#[test]
#[cfg_attr(miri, ignore = "memfd")]
fn from_fd_refuses_unsealed_or_short_descriptors() {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let plain = memfd_create(c"unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&plain, 4096).unwrap();
    assert!(matches!(
        Segment::from_fd(plain, 64),
        Err(Error::Unsealed {
            missing: "F_SEAL_SHRINK"
        })
    ));

    let seg = Segment::anonymous(4096).unwrap();
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Segment::from_fd(fd, 8192),
        Err(Error::TooSmall { .. })
    ));
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    assert_eq!(Segment::from_fd(fd, 4096).unwrap().len(), 4096);

    // A regular file cannot be sealed at all.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    assert!(matches!(
        Segment::from_fd(file.into(), 1),
        Err(Error::Unsealed { .. })
    ));

    // Sealed against future writes: received read-only.
    seg.seal_future_writes().unwrap();
    seg.write_at(0, b"still writable here").unwrap();
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    let ro = Segment::from_fd(fd, 64).unwrap();
    assert!(ro.is_read_only());
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_killed_creators_segment_is_stale_and_only_it_is_removed() {
    let dead = seg_name("dead");
    let live = seg_name("live");
    let mine = Segment::create(&live.0, 4096).unwrap();
    let mut child = ROLES.spawn("create-and-hang", &dead.0, Stdio::null());
    wait_for(&mut child, "CREATED");

    let find = |n: &str| list().unwrap().into_iter().find(|s| s.name == n).unwrap();
    assert!(
        find(&dead.0).ipcraft.unwrap().creator_alive,
        "creator running"
    );
    assert!(
        !remove_stale().unwrap().contains(&dead.0),
        "a live creator's segment stays"
    );

    kill(&mut child);
    let info = find(&dead.0);
    assert!(info.is_stale(), "{info:?}");
    assert_eq!(info.size, 4096 + 64);
    assert!(find(&live.0).ipcraft.unwrap().creator_alive);
    let removed = remove_stale().unwrap();
    assert!(removed.contains(&dead.0), "{removed:?}");
    assert!(!removed.contains(&live.0));
    assert!(!std::path::Path::new(&format!("/dev/shm{}", dead.0)).exists());
    drop(mine);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn python_shared_memory_interoperates_both_ways() {
    if Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .status()
        .map_or(true, |s| !s.success())
    {
        println!("SKIPPED: python3 with multiprocessing.shared_memory is not available");
        return;
    }
    // Python creates; we open it raw, and refuse it as an ipcraft segment.
    let name = seg_name("py");
    let script = "from multiprocessing import shared_memory as s, resource_tracker as r\n\
        import sys\n\
        m = s.SharedMemory(name=sys.argv[1], create=True, size=4096)\n\
        r.unregister(m._name, 'shared_memory')\n\
        m.buf[:11] = b'from python'\n\
        m.close()";
    let ok = Command::new("python3")
        .args(["-c", script, &name.0])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(matches!(
        SegmentOptions::new()
            .timeout(Duration::from_millis(100))
            .open(&name.0),
        Err(Error::NotIpcraft { .. })
    ));
    let seg = SegmentOptions::new().raw(true).open(&name.0).unwrap();
    let mut buf = [0u8; 11];
    seg.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");
    drop(seg);
    unlink(&name.0).unwrap();

    // We create (raw); Python reads.
    let name = seg_name("py2");
    let seg = SegmentOptions::new()
        .raw(true)
        .create(&name.0, 4096)
        .unwrap();
    seg.write_at(0, b"from rust").unwrap();
    let script = "from multiprocessing import shared_memory as s, resource_tracker as r\n\
        import sys\n\
        m = s.SharedMemory(name=sys.argv[1])\n\
        r.unregister(m._name, 'shared_memory')\n\
        print(bytes(m.buf[:9]).decode())\n\
        m.close()";
    let out = Command::new("python3")
        .args(["-c", script, &name.0])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from rust");
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn bad_input_gets_typed_errors() {
    for bad in ["", "noslash", "/a/b", "/", "/..", "/."] {
        assert!(
            matches!(Segment::create(bad, 64), Err(Error::Name(_))),
            "{bad:?}"
        );
    }
    let long = format!("/{}", "x".repeat(256));
    match Segment::create(&long, 64) {
        Err(Error::Name(e)) => assert!(e.to_string().contains("1 to 255 bytes")),
        other => panic!("{other:?}"),
    }
    let name = seg_name("bad");
    assert!(matches!(Segment::create(&name.0, 0), Err(Error::ZeroSize)));
    match Segment::create(&name.0, usize::MAX / 4) {
        Err(e @ Error::TooLarge { .. }) => assert!(e.to_string().contains("/dev/shm")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::NotFound { .. })
    ));
    let seg = Segment::create(&name.0, 64).unwrap();
    assert!(matches!(
        Segment::create(&name.0, 64),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        seg.get::<AtomicU64>(3),
        Err(Error::Misaligned {
            offset: 3,
            align: 8
        })
    ));
    assert!(matches!(
        seg.get::<AtomicU64>(64),
        Err(Error::OutOfBounds {
            offset: 64,
            len: 8,
            size: 64
        })
    ));
    assert!(matches!(
        seg.write_at(60, b"12345"),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        seg.read::<u64>(usize::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    // Tags: a segment holding one kind of object is not opened as another.
    let tagged = seg_name("tag");
    let _t = SegmentOptions::new().tag(7).create(&tagged.0, 64).unwrap();
    assert!(matches!(
        SegmentOptions::new().tag(8).open(&tagged.0),
        Err(Error::WrongTag {
            found: 7,
            expected: 8
        })
    ));
    assert!(SegmentOptions::new().tag(7).open(&tagged.0).is_ok());
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn mode_is_exact_and_open_or_create_refuses_a_wider_one() {
    use std::os::unix::fs::PermissionsExt;
    let name = seg_name("mode");
    let seg = Segment::create(&name.0, 64).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm{}", name.0))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(SegmentOptions::new().open(&name.0).is_ok());
    drop(seg);
    let seg = SegmentOptions::new()
        .mode(0o666)
        .create(&name.0, 64)
        .unwrap();
    let mode = std::fs::metadata(format!("/dev/shm{}", name.0))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "not reduced by the umask");
    // Ours: open joins it; open_or_create asked for 0600 would not have made it so.
    assert!(SegmentOptions::new().open(&name.0).is_ok());
    match SegmentOptions::new().open_or_create(&name.0, 64, |_| Ok(())) {
        Err(Error::Untrusted(e @ ipcraft_core::TrustError::TooOpen { .. })) => {
            assert!(e.to_string().contains("mode 666"), "{e}");
        }
        other => panic!("expected TooOpen, got {other:?}"),
    }
    let (_, created) = SegmentOptions::new()
        .mode(0o666)
        .open_or_create(&name.0, 64, |_| Ok(()))
        .unwrap();
    assert!(!created);
    assert!(matches!(
        SegmentOptions::new().mode(0o1777).create(&name.0, 64),
        Err(Error::BadMode { mode: 0o1777 })
    ));
    drop(seg);
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn persist_keeps_the_name_and_grow_remaps() {
    let name = seg_name("persist");
    let mut seg = Segment::create(&name.0, 4096).unwrap();
    seg.grow(16384).unwrap();
    seg.write_at(16000, b"far").unwrap();
    let other = Segment::open(&name.0).unwrap();
    assert_eq!(other.len(), 16384);
    let mut buf = [0u8; 3];
    other.read_at(16000, &mut buf).unwrap();
    assert_eq!(&buf, b"far");
    assert!(matches!(
        Segment::open(&name.0).unwrap().grow(1 << 20),
        Err(Error::CannotGrow { .. })
    ));
    seg.persist();
    drop(seg);
    drop(other);
    let again = Segment::open(&name.0).unwrap();
    assert!(again.header().unwrap().persisted);
    let info = list()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name.0)
        .unwrap();
    assert!(!info.is_stale(), "persisted segments are not stale");
    unlink(&name.0).unwrap();
    assert!(matches!(unlink(&name.0), Err(Error::NotFound { .. })));
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn populate_lock_and_huge_page_options() {
    let name = seg_name("opts");
    let seg = SegmentOptions::new()
        .populate(true)
        .lock(true)
        .create(&name.0, 1 << 20)
        .unwrap();
    seg.write_at((1 << 20) - 1, &[1]).unwrap();
    let anon = SegmentOptions::new()
        .populate(true)
        .anonymous(1 << 16)
        .unwrap();
    assert_eq!(anon.len(), 1 << 16);
    let reserved = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    match SegmentOptions::new().huge_pages(true).anonymous(4096) {
        Err(e @ Error::HugePagesUnavailable) => {
            assert_eq!(
                reserved, 0,
                "refused although {reserved} huge pages are reserved"
            );
            assert!(e.to_string().contains("nr_hugepages"));
        }
        Ok(seg) => {
            assert!(reserved > 0);
            seg.write_at(0, b"huge").unwrap();
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_fifo_in_dev_shm_is_refused_at_once_not_waited_on() {
    // Anyone may put a FIFO in /dev/shm; opening one must not block.
    let name = seg_name("fifo");
    nix::unistd::mkfifo(
        format!("/dev/shm{}", name.0).as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let start = Instant::now();
    assert!(matches!(
        Segment::open_read_only(&name.0),
        Err(Error::NotIpcraft { .. })
    ));
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::NotIpcraft { .. })
    ));
    assert!(
        list().unwrap().iter().all(|s| s.name != name.0),
        "not a regular file: not listed"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn open_or_create_refuses_an_existing_segment_that_is_too_small() {
    let name = seg_name("small");
    let _small = Segment::create(&name.0, 64).unwrap();
    assert!(matches!(
        Segment::open_or_create(&name.0, 4096, |_| Ok(())),
        Err(Error::TooSmall {
            actual: 64,
            expected: 4096
        })
    ));
    // An opener's persist() does not mark the creator's segment as persisted.
    let mut opener = Segment::open(&name.0).unwrap();
    opener.persist();
    assert!(!Segment::open(&name.0).unwrap().header().unwrap().persisted);
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_foreign_segment_smaller_than_the_header_is_not_ipcraft_at_once() {
    // A plain POSIX segment of 10 bytes, as a C or Python peer could make: it can never be
    // an ipcraft segment being initialized, so the open must not wait out its timeout.
    let name = seg_name("tiny");
    let fd = nix::sys::mman::shm_open(
        name.0.as_str(),
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::unistd::ftruncate(&fd, 10).unwrap();
    let start = Instant::now();
    let opened = SegmentOptions::new()
        .timeout(Duration::from_secs(30))
        .open(&name.0);
    assert!(
        matches!(opened, Err(Error::NotIpcraft { .. })),
        "{opened:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited {:?} for a segment that can never become ready",
        start.elapsed()
    );
    // The raw view opens it as it is.
    let raw = SegmentOptions::new().raw(true).open(&name.0).unwrap();
    assert_eq!(raw.len(), 10);
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_segment_gives_up_its_descriptor_and_takes_one_back() {
    // Anonymous: the memfd goes out and comes back as the same segment.
    let seg = Segment::anonymous(64).unwrap();
    seg.write(0, &42u64).unwrap();
    let fd = OwnedFd::from(seg);
    let back = Segment::try_from(fd).unwrap();
    assert_eq!(back.read::<u64>(0).unwrap(), 42);
    // A plain file is not a sealed segment.
    let file: OwnedFd = std::fs::File::open("/proc/self/stat").unwrap().into();
    assert!(matches!(
        Segment::try_from(file),
        Err(Error::Unsealed { .. })
    ));
    // Named: the creator's conversion removes its name, as its drop would; after persist it
    // stays.
    let name = seg_name("into-fd");
    let seg = Segment::create(&name.0, 64).unwrap();
    drop(OwnedFd::from(seg));
    assert!(matches!(
        Segment::open(&name.0),
        Err(Error::NotFound { .. })
    ));
    let mut seg = Segment::create(&name.0, 64).unwrap();
    seg.persist();
    drop(OwnedFd::from(seg));
    assert!(Segment::open(&name.0).is_ok(), "persisted: the name stays");
    unlink(&name.0).unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "memfd_create")]
fn byte_locks_give_up_and_take_back_their_description_with_its_locks() {
    use ipcraft_shm::ByteLocks;
    let seg = Segment::anonymous(64).unwrap();
    let mine = ByteLocks::new(&seg).unwrap();
    let other = ByteLocks::new(&seg).unwrap();
    assert!(mine.try_lock(7).unwrap());
    // The lock travels with the description.
    let fd = OwnedFd::from(mine);
    assert!(other.is_locked_by_other(7).unwrap());
    let mine = ByteLocks::try_from(fd).unwrap();
    assert!(mine.try_lock(7).unwrap(), "still ours");
    drop(mine);
    // Released once the last descriptor of the description is closed: a child another test
    // forks meanwhile holds a copy until its exec closes it (close-on-exec), so wait a little.
    let until = Instant::now() + Duration::from_secs(10);
    while other.is_locked_by_other(7).unwrap() {
        assert!(Instant::now() < until, "the lock outlived its description");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Not a regular read-write file: refused, handed back.
    let (r, _w) = std::io::pipe().unwrap();
    assert!(matches!(
        ByteLocks::try_from(OwnedFd::from(r)),
        Err(Error::NotLockable { .. })
    ));
    let ro: OwnedFd = std::fs::File::open("/proc/self/stat").unwrap().into();
    assert!(matches!(
        ByteLocks::try_from(ro),
        Err(Error::NotLockable { .. })
    ));
}
