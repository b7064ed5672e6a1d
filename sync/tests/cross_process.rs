//! The robust mutex across real processes, killed at the worst moments.
//!
//! Children are this test binary re-run with `--exact child_role` and a role in the
//! environment; they report on stdout with marker lines.

mod common;
use common::{Name, ROLES, spawn_role};
use ipcraft_shm::Segment;
use ipcraft_sync::{Error, LockError, Mutex, MutexKind, MutexOptions};
use ipcraft_testkit::{finish, kill, wait_for};
use std::process::Child;
use std::time::{Duration, Instant};

const PER_PROCESS: u64 = 500_000;
/// Every test runs on both kinds of mutex; children open whichever kind was created.
const KINDS: [MutexKind; 2] = [MutexKind::Futex, MutexKind::Pthread];

fn create(kind: MutexKind, name: &str, value: u64) -> Mutex<u64> {
    MutexOptions::new().kind(kind).create(name, value).unwrap()
}

/// A child's argument: the name, and the kind unless it is the default.
fn arg(kind: MutexKind, name: &str) -> String {
    match kind {
        MutexKind::Pthread => format!("{name}:pthread"),
        _ => format!("{name}:futex"),
    }
}

/// Open the named mutex the argument names, of the kind it names.
fn open(arg: &str) -> Mutex<u64> {
    let (name, kind) = kind_from(arg);
    MutexOptions::new().kind(kind).open(name).unwrap()
}

fn kind_from(arg: &str) -> (&str, MutexKind) {
    match arg.rsplit_once(':') {
        Some((name, "pthread")) => (name, MutexKind::Pthread),
        Some((name, _)) => (name, MutexKind::Futex),
        None => (arg, MutexKind::Futex),
    }
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "increment" => {
            let m = open(&arg);
            increment(&m, PER_PROCESS);
        }
        "hold" => {
            let m = open(&arg);
            let g = m.lock().unwrap();
            g.set(&999); // a half-done update
            println!("HOLDING");
            std::thread::sleep(Duration::from_secs(120));
        }
        "hammer" => {
            let m = open(&arg);
            println!("STARTED");
            loop {
                match m.lock() {
                    Ok(g) => g.update(|n| *n += 1),
                    Err(LockError::OwnerDied(r)) => {
                        drop(r.make_consistent().unwrap());
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        "place" => {
            let (name, kind) = kind_from(&arg);
            let seg = Segment::open(name).unwrap();
            let m = MutexOptions::new()
                .kind(kind)
                .in_segment(&seg, 64, 7u64)
                .unwrap();
            assert_eq!(m.kind(), kind);
            increment(&m, 1000);
        }
        other => panic!("unknown role {other}"),
    }
}

fn increment<S: std::borrow::Borrow<Segment>>(m: &Mutex<u64, S>, times: u64) {
    for _ in 0..times {
        m.lock().unwrap().update(|n| *n += 1);
    }
}

#[test]
fn two_processes_increment_a_million_times_exactly() {
    for kind in KINDS {
        let name = Name::new("million");
        let m = create(kind, &name.0, 0);
        let child = spawn_role("increment", &arg(kind, &name.0));
        increment(&m, PER_PROCESS);
        finish(child, "increment");
        assert_eq!(m.lock().unwrap().get(), 2 * PER_PROCESS, "{kind:?}");
    }
}

#[test]
fn owner_killed_holding_the_lock_is_owner_died_then_recovered() {
    for kind in KINDS {
        owner_killed(kind);
    }
}

fn owner_killed(kind: MutexKind) {
    let name = Name::new("died");
    let m = create(kind, &name.0, 1);
    let mut child = spawn_role("hold", &arg(kind, &name.0));
    wait_for(&mut child, "HOLDING");
    // Held by a live process: a timed lock times out, not before its timeout.
    let start = Instant::now();
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(100)),
        Err(LockError::TimedOut)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(matches!(m.try_lock(), Err(LockError::WouldBlock)));
    kill(&mut child);
    match m.lock() {
        Err(LockError::OwnerDied(recovery)) => {
            assert_eq!(recovery.get(), 999, "sees the half-done update");
            recovery.set(&1);
            let g = recovery.make_consistent().unwrap();
            g.update(|n| *n += 1);
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(m.lock().unwrap().get(), 2, "usable again after recovery");
}

#[test]
fn a_recovery_dropped_without_repair_makes_the_mutex_not_recoverable_never_hung() {
    for kind in KINDS {
        recovery_dropped(kind);
    }
}

fn recovery_dropped(kind: MutexKind) {
    let name = Name::new("unrecoverable");
    let m = create(kind, &name.0, 0);
    let mut child = spawn_role("hold", &arg(kind, &name.0));
    wait_for(&mut child, "HOLDING");
    kill(&mut child);
    // try_lock sees the dead owner at once, for both kinds.
    match m.try_lock() {
        Err(LockError::OwnerDied(recovery)) => drop(recovery),
        other => panic!("{kind:?}: expected OwnerDied, got {other:?}"),
    }
    assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
    for _ in 0..3 {
        assert!(matches!(m.try_lock(), Err(LockError::NotRecoverable)));
    }
    let start = Instant::now();
    let r = m.lock_timeout(Duration::from_secs(10));
    assert!(
        matches!(r, Err(LockError::NotRecoverable)),
        "{r:?} after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "reported, not waited out"
    );
    // Other processes see the same.
    let other = open(&arg(kind, &name.0));
    assert!(matches!(other.lock(), Err(LockError::NotRecoverable)));
}

#[test]
fn killed_at_random_points_hundreds_of_times_the_survivor_never_hangs() {
    for kind in KINDS {
        killed_at_random(kind);
    }
}

fn killed_at_random(kind: MutexKind) {
    let name = Name::new("random");
    let m = create(kind, &name.0, 0);
    let mut state = 0x9e37_79b9_u32;
    let (mut died, mut clean) = (0, 0);
    for _ in 0..200 {
        let mut child = spawn_role("hammer", &arg(kind, &name.0));
        wait_for(&mut child, "STARTED");
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        std::thread::sleep(Duration::from_micros(u64::from(state % 3000)));
        kill(&mut child);
        match m.lock_timeout(Duration::from_secs(10)) {
            Ok(_) => clean += 1,
            Err(LockError::OwnerDied(r)) => {
                died += 1;
                drop(r.make_consistent().unwrap());
            }
            Err(e) => panic!("after a kill: {e}"),
        }
    }
    println!(
        "{kind:?}: 200 kills: {died} left the lock held (OwnerDied, recovered), {clean} did not"
    );
    assert_eq!(died + clean, 200);
    assert!(m.lock().unwrap().get() > 0);
}

#[test]
fn placed_in_a_segment_by_eight_racing_processes_it_is_initialized_once() {
    for kind in KINDS {
        placed_by_eight(kind);
    }
}

fn placed_by_eight(kind: MutexKind) {
    let name = Name::new("place");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let arg = arg(kind, &name.0);
    let children: Vec<Child> = (0..8).map(|_| spawn_role("place", &arg)).collect();
    for c in children {
        finish(c, "place");
    }
    let m = MutexOptions::new()
        .kind(kind)
        .in_segment(&seg, 64, 0u64)
        .unwrap();
    assert_eq!(
        m.lock().unwrap().get(),
        7 + 8 * 1000,
        "one initialization, every increment"
    );
}

#[test]
fn bad_input_gets_typed_errors() {
    let name = Name::new("bad");
    let _m = Mutex::create(&name.0, 0u32).unwrap();
    match Mutex::<u64>::open(&name.0) {
        Err(Error::Shm(ipcraft_shm::Error::WrongTag { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Mutex::create(&name.0, 0u32),
        Err(Error::Shm(ipcraft_shm::Error::AlreadyExists { .. }))
    ));
    assert!(matches!(
        Mutex::<u32>::open("no-slash"),
        Err(Error::Shm(ipcraft_shm::Error::Name(_)))
    ));

    let seg = Segment::anonymous(128).unwrap();
    assert!(matches!(
        Mutex::in_segment(&seg, 32, 0u64),
        Err(Error::Misaligned { offset: 32 })
    ));
    assert!(matches!(
        Mutex::in_segment(&seg, 128, 0u64),
        Err(Error::Shm(ipcraft_shm::Error::OutOfBounds { .. }))
    ));
    let _a = Mutex::in_segment(&seg, 0, 5u64).unwrap();
    match Mutex::in_segment(&seg, 0, [0u8; 16]) {
        Err(e @ Error::WrongLayout { .. }) => assert!(e.to_string().contains("another type")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_priority_inheriting_mutex_works_across_processes() {
    let seg = Segment::anonymous(4096).unwrap();
    let m = ipcraft_sync::MutexOptions::new()
        .priority_inheritance(true)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    // Attaching asks for a kind: the pthread one attaches, the default (futex) is refused.
    assert!(matches!(
        Mutex::in_segment(&seg, 0, 0u64),
        Err(Error::WrongLayout { .. })
    ));
    let again = MutexOptions::new()
        .kind(MutexKind::Pthread)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    assert_eq!(again.kind(), MutexKind::Pthread);
    m.lock().unwrap().update(|n| *n += 1);
    assert!(m.try_lock().is_ok());
    let held = m.lock().unwrap();
    let start = Instant::now();
    assert!(matches!(
        again.lock_timeout(Duration::from_millis(50)),
        Err(LockError::TimedOut)
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(held);
    assert_eq!(again.lock().unwrap().get(), 1);
}

#[test]
fn lock_errors_become_owned_errors_for_question_mark() {
    fn locked(m: &Mutex<u64, &Segment>) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
        let g = m.try_lock().map_err(Error::from)?;
        Ok(g.get())
    }
    let seg = Segment::anonymous(4096).unwrap();
    let m = Mutex::in_segment(&seg, 0, 7u64).unwrap();
    assert_eq!(locked(&m).unwrap(), 7);
    let held = m.lock().unwrap();
    let e = locked(&m).unwrap_err();
    assert!(
        matches!(e.downcast_ref::<Error>(), Some(Error::WouldBlock)),
        "{e}"
    );
    drop(held);
    let timed_out: std::io::Error = {
        let other = Mutex::in_segment(&seg, 0, 0u64).unwrap();
        let _held = m.lock().unwrap();
        other
            .lock_timeout(Duration::from_millis(1))
            .unwrap_err()
            .into()
    };
    assert_eq!(timed_out.kind(), std::io::ErrorKind::TimedOut);
}
