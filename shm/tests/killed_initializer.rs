//! A creator killed (SIGKILL) at each step of creating a named segment never blocks the name.
//!
//! Debug builds of `ipcraft-shm` read `IPCRAFT_SHM_TEST_STOP_AT`: a creator stops at that step
//! (printing `IPCRAFT-SHM-STOPPED-AT <step>`), and the test kills it there. After each kill:
//! `open` answers `NotFound` or `CreatorDied` (never `NotIpcraft` for our own leftovers),
//! `open_or_create` creates the segment again, `remove_stale` removes what the dead creator
//! left, and nothing stays in `/dev/shm`. Release builds compile the hook out: the test then
//! says so and checks nothing.
#![allow(clippy::disallowed_types)] // Std atomics in shared memory: what this crate serves.

mod common;

use common::Name;
use ipcraft_shm::{Error, Leftover, Segment, SegmentOptions, list, remove_stale, unlink};
use ipcraft_testkit::{Roles, finish, kill, wait_for_line};
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SHM_KILL_TEST_ROLE", "IPCRAFT_SHM_KILL_TEST_ARG");
const STOP_AT: &str = "IPCRAFT_SHM_TEST_STOP_AT";
const LINK_FALLBACK: &str = "IPCRAFT_SHM_TEST_LINK_FALLBACK";
const STOPPED: &str = "IPCRAFT-SHM-STOPPED-AT ";
const SIZE: usize = 4096;
const INIT_VALUE: u64 = 0xC0FFEE;
/// Every step of creation the hook can stop at, in order (`linked`: only with the `link(2)`
/// fallback, between the link and the removal of the temporary).
const STEPS: &[&str] = &[
    "opened",
    "locked",
    "truncated",
    "mapped",
    "header",
    "renamed",
];

/// The tests here run one at a time: one's `remove_stale` would take another's temporary
/// that a stopped creator has not locked yet.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A unique segment name of this file's tests (see [`common::Name`]).
fn seg_name(tag: &str) -> Name {
    Name::new("/ipcraft-shm-kill", tag)
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "open-or-create" => {
            let (seg, created) = Segment::open_or_create(&arg, SIZE, init).unwrap();
            let value: u64 = seg.read(8).unwrap();
            println!("DONE created={created} value={value:#x}");
        }
        "race" => {
            let (seg, created) = Segment::open_or_create(&arg, SIZE, |s| {
                let inits: &AtomicU64 = s.get(0)?;
                inits.fetch_add(1, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(100));
                s.write(8, &INIT_VALUE)
            })
            .unwrap();
            let inits = seg.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire);
            let value: u64 = seg.read(8).unwrap();
            if created {
                // Keep the name until the parent has seen every racer.
                let mut seg = seg;
                seg.persist();
            }
            println!("RACE created={created} inits={inits} value={value:#x}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn init(seg: &Segment) -> ipcraft_shm::Result<()> {
    seg.write(8, &INIT_VALUE)
}

/// Starts a creator that stops at `step`; returns it once it stopped there, or `None` when
/// this build has no hook (the creator then finished).
fn creator_stopped_at(name: &str, step: &str, link_fallback: bool) -> Option<Stopped> {
    let mut cmd = ROLES.command("open-or-create", name);
    cmd.env(STOP_AT, step);
    if link_fallback {
        cmd.env(LINK_FALLBACK, "1");
    }
    let mut child = cmd.spawn().expect("start a creator");
    let line = wait_for_line(&mut child, "the stop or the end", |l| {
        l.starts_with(STOPPED) || l.starts_with("DONE")
    });
    if line.starts_with("DONE") {
        finish(child, "creator");
        let _ = unlink(name);
        if cfg!(debug_assertions) {
            panic!("a debug build must stop at {step}: {line}");
        }
        return None;
    }
    let child = Stopped(child);
    assert_eq!(line, format!("{STOPPED}{step}"));
    Some(child)
}

/// A creator stopped at a step; killed (SIGKILL) on drop if the test has not killed it.
struct Stopped(Child);

impl Stopped {
    fn kill(&mut self) {
        kill(&mut self.0);
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill(&mut self.0);
        }
    }
}

fn temp_prefix(pid: u32) -> String {
    format!("/.ipcraft-tmp-{pid}-")
}

/// The names in /dev/shm that are `name` or a temporary of process `pid`.
fn left_by(name: &str, pid: u32) -> Vec<ipcraft_shm::SegmentInfo> {
    let prefix = temp_prefix(pid);
    list()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == name || s.name.starts_with(&prefix))
        .collect()
}

fn renamed(step: &str) -> bool {
    matches!(step, "renamed" | "linked")
}

/// What any caller sees of `name` once its creator was killed at `step`.
fn check_open_after_kill(name: &str, step: &str) {
    let opened = SegmentOptions::new()
        .timeout(Duration::from_millis(200))
        .open(name);
    if renamed(step) {
        assert!(
            matches!(opened, Err(Error::CreatorDied { .. })),
            "{step}: {opened:?}"
        );
    } else {
        assert!(
            matches!(opened, Err(Error::NotFound { .. })),
            "{step}: {opened:?}"
        );
    }
}

/// While the creator is stopped at `step` (alive): its temporary is listed as one, with a
/// live creator (once locked), `remove_stale` leaves it, and the name is not there before
/// the rename.
fn check_while_alive(name: &str, step: &str, pid: u32) {
    let left = left_by(name, pid);
    let temps: Vec<_> = left
        .iter()
        .filter(|s| s.leftover == Some(Leftover::Temporary))
        .collect();
    if step == "renamed" {
        assert!(temps.is_empty(), "{step}: {left:?}");
    } else {
        assert_eq!(temps.len(), 1, "{step}: {left:?}");
    }
    assert_eq!(
        left.iter().any(|s| s.name == name),
        renamed(step),
        "{step}: {left:?}"
    );
    if step == "opened" {
        // Not locked yet: it looks dead; a cleaner would remove it (and the creator would
        // start again under a new name, as `a_cleaner_racing_a_creator_never_breaks_it` tests).
        return;
    }
    for s in &left {
        let state = s.ipcraft.unwrap_or_else(|| panic!("{step}: {s:?}"));
        assert!(state.creator_alive, "{step}: {s:?}");
        assert!(!s.is_stale(), "{step}: {s:?}");
    }
    let removed = remove_stale().unwrap();
    assert!(
        removed.iter().all(|r| !left.iter().any(|s| s.name == *r)),
        "{step}: a live creator's objects stay: {removed:?}"
    );
    if renamed(step) {
        // Initializing, its creator alive: an open waits, then says so.
        let opened = SegmentOptions::new()
            .timeout(Duration::from_millis(100))
            .open(name);
        assert!(
            matches!(opened, Err(Error::NotReady { .. })),
            "{step}: {opened:?}"
        );
    }
}

fn kill_at_every_step(link_fallback: bool, reclaim_first: bool) {
    let mut steps = STEPS.to_vec();
    if link_fallback {
        steps.insert(5, "linked");
    }
    let mut ran = 0;
    for step in steps {
        let name = seg_name(step);
        let Some(mut child) = creator_stopped_at(&name.0, step, link_fallback) else {
            eprintln!("SKIPPED: ipcraft-shm built without debug assertions has no stop hook");
            return;
        };
        let pid = child.0.id();
        check_while_alive(&name.0, step, pid);
        child.kill();
        check_open_after_kill(&name.0, step);
        let left = left_by(&name.0, pid);
        for s in &left {
            assert!(s.is_stale(), "{step}: the dead creator's {s:?} is stale");
            if s.name != name.0 {
                assert_eq!(s.leftover, Some(Leftover::Temporary), "{step}: {s:?}");
            }
        }
        if reclaim_first {
            // open_or_create takes the name back (a temporary does not block it at all).
            let (seg, created) = Segment::open_or_create(&name.0, SIZE, init).unwrap();
            assert!(created, "{step}: created again");
            assert_eq!(seg.read::<u64>(8).unwrap(), INIT_VALUE, "{step}");
            assert!(seg.header().is_some());
            drop(seg);
        }
        let removed = remove_stale().unwrap();
        for s in &left {
            if reclaim_first && s.name == name.0 {
                continue; // Reclaimed and re-created by open_or_create, removed by its drop.
            }
            assert!(
                removed.contains(&s.name),
                "{step}: {s:?} removed: {removed:?}"
            );
        }
        assert!(
            left_by(&name.0, pid).is_empty(),
            "{step}: nothing left: {:?}",
            left_by(&name.0, pid)
        );
        if !reclaim_first {
            let (seg, created) = Segment::open_or_create(&name.0, SIZE, init).unwrap();
            assert!(created, "{step}");
            assert_eq!(seg.read::<u64>(8).unwrap(), INIT_VALUE, "{step}");
        }
        ran += 1;
    }
    assert_eq!(ran, STEPS.len() + usize::from(link_fallback));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_creator_killed_at_any_step_never_blocks_the_name_reclaim_first() {
    let _serial = serial();
    kill_at_every_step(false, true);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_creator_killed_at_any_step_leaves_only_what_remove_stale_removes() {
    let _serial = serial();
    kill_at_every_step(false, false);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn the_link_fallback_is_as_safe_at_every_step() {
    let _serial = serial();
    kill_at_every_step(true, true);
    kill_at_every_step(true, false);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn racers_reclaim_a_dead_initializers_segment_exactly_once() {
    let _serial = serial();
    let name = seg_name("racers");
    let Some(mut child) = creator_stopped_at(&name.0, "renamed", false) else {
        eprintln!("SKIPPED: ipcraft-shm built without debug assertions has no stop hook");
        return;
    };
    child.kill();
    let racers: Vec<Child> = (0..4)
        .map(|_| ROLES.spawn("race", &name.0, Stdio::null()))
        .collect();
    let mut created = 0;
    for r in racers {
        let out = finish(r, "racer");
        let line = out.lines().find(|l| l.starts_with("RACE")).unwrap();
        assert!(line.ends_with("inits=1 value=0xc0ffee"), "{line}");
        created += usize::from(line.contains("created=true"));
    }
    assert_eq!(created, 1, "exactly one racer created it again");
}

/// An object as an older ipcraft left it when killed between `ftruncate` and the header:
/// mode 0600, `size` bytes, zero-filled, no lock.
fn old_leftover(name: &str, size: usize) -> OwnedFd {
    let fd = nix::sys::mman::shm_open(
        name,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::unistd::ftruncate(&fd, size as i64).unwrap();
    fd
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn an_older_versions_headerless_leftover_is_classified_and_reclaimed() {
    let _serial = serial();
    let name = seg_name("old");
    let fd = old_leftover(&name.0, 64 + SIZE);
    let opened = SegmentOptions::new()
        .timeout(Duration::from_secs(30))
        .open(&name.0);
    assert!(
        matches!(opened, Err(Error::CreatorDied { .. })),
        "{opened:?}"
    );
    let info = list()
        .unwrap()
        .into_iter()
        .find(|s| s.name == name.0)
        .unwrap();
    assert_eq!(info.leftover, Some(Leftover::Headerless), "{info:?}");
    assert!(
        !info.is_stale(),
        "not provably ours: remove_stale leaves it"
    );
    assert!(!remove_stale().unwrap().contains(&name.0));

    // Another size than the caller's: not provably what it would have made; left alone.
    let other = Segment::open_or_create(&name.0, 2 * SIZE, init);
    assert!(matches!(other, Err(Error::CreatorDied { .. })), "{other:?}");
    // Some byte of data not zero: not a leftover; left alone.
    nix::sys::uio::pwrite(&fd, b"x", 64 + 100).unwrap();
    let data = Segment::open_or_create(&name.0, SIZE, init);
    assert!(matches!(data, Err(Error::CreatorDied { .. })), "{data:?}");
    nix::sys::uio::pwrite(&fd, b"\0", 64 + 100).unwrap();
    // All zeros again (a page of data, now): reclaimed.
    let (seg, created) = Segment::open_or_create(&name.0, SIZE, init).unwrap();
    assert!(created);
    assert_eq!(seg.read::<u64>(8).unwrap(), INIT_VALUE);
    drop(seg);

    // Empty (killed before ftruncate): waited for, then reclaimed.
    let empty = old_leftover(&name.0, 0);
    let (seg, created) = SegmentOptions::new()
        .timeout(Duration::from_millis(200))
        .open_or_create(&name.0, SIZE, init)
        .unwrap();
    assert!(created);
    drop((seg, empty, fd));
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_cleaner_racing_creators_never_breaks_one() {
    let _serial = serial();
    // remove_stale in a loop while creators come and go: a temporary seen before its lock
    // may be removed, and its creator must then start again, never fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cleaner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut removed = 0;
            while !stop.load(Ordering::Relaxed) {
                removed += remove_stale().unwrap().len();
            }
            removed
        })
    };
    for i in 0..300 {
        let name = seg_name(&format!("clean{i}"));
        let seg = Segment::create(&name.0, SIZE).unwrap();
        assert!(seg.header().is_some());
        drop(seg);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = cleaner.join().unwrap();
    let prefix = temp_prefix(std::process::id());
    assert!(
        list().unwrap().iter().all(|s| !s.name.starts_with(&prefix)),
        "no temporary of ours left"
    );
}
