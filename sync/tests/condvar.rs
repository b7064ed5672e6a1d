//! The futex condvar across real processes, with waiters and notifiers killed at random.
#![allow(clippy::disallowed_types)] // Std atomics in shared memory, for the test's own flags.

mod common;
use common::{Name, ROLES, spawn_role};
use ipcraft_shm::Segment;
use ipcraft_sync::{Condvar, LockError, Mutex, MutexGuard};
use ipcraft_testkit::{finish, kill, wait_for};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ROUNDS: u64 = 1000;
/// Every wait in the churn test uses this timeout; a wait that takes longer than it plus
/// this slack counts as a hang.
const WAIT: Duration = Duration::from_millis(20);
const SLACK: Duration = Duration::from_secs(2);

/// Lock, recovering from a dead owner (the counter stays meaningful: each update is whole).
fn lock<'a>(m: &'a Mutex<u64, &'a Segment>) -> MutexGuard<'a, u64> {
    match m.lock() {
        Ok(g) => g,
        Err(LockError::OwnerDied(r)) => r.make_consistent().unwrap(),
        Err(e) => panic!("{e}"),
    }
}

/// The guard after a timed wait; `None` when the mutex could not be locked again by the
/// deadline (the whole wait keeps to its timeout, re-locking included).
fn relock<'a>(
    r: Result<(MutexGuard<'a, u64>, bool), LockError<'a, u64>>,
) -> Option<(MutexGuard<'a, u64>, bool)> {
    match r {
        Ok(x) => Some(x),
        Err(LockError::OwnerDied(r)) => Some((r.make_consistent().unwrap(), false)),
        Err(LockError::TimedOut) => None,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    let seg = Segment::open(&name).unwrap();
    let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let cv = Condvar::in_segment(&seg, 128).unwrap();
    match role.as_str() {
        "pong" => {
            // Odd turns are ours.
            for round in 0..ROUNDS {
                let want = 2 * round + 1;
                let g = cv.wait_while(lock(&m), |v| *v != want).unwrap();
                g.set(&(want + 1));
                drop(g);
                cv.notify_all();
            }
        }
        "silent" => {
            println!("READY");
            std::thread::sleep(Duration::from_secs(120));
        }
        "churn" => {
            // Wait and notify forever; report a wait that overran its timeout.
            let stop: &AtomicU32 = seg.get(256).unwrap();
            let hangs: &AtomicU32 = seg.get(260).unwrap();
            println!("READY");
            while stop.load(Ordering::Acquire) == 0 {
                let g = lock(&m);
                g.update(|n| *n += 1);
                cv.notify_all();
                let start = Instant::now();
                let relocked = relock(cv.wait_timeout(g, WAIT));
                if start.elapsed() > WAIT + SLACK {
                    hangs.fetch_add(1, Ordering::AcqRel);
                }
                drop(relocked);
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn condvar_ping_pong_between_two_processes() {
    let name = Name::new("pingpong");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let cv = Condvar::in_segment(&seg, 128).unwrap();
    let child = spawn_role("pong", &name.0);
    for round in 0..ROUNDS {
        let want = 2 * round;
        let (g, timed_out) = cv
            .wait_while_timeout(lock(&m), Duration::from_secs(20), |v| *v != want)
            .unwrap();
        assert!(!timed_out, "round {round}: the partner answered");
        g.set(&(want + 1));
        drop(g);
        cv.notify_all();
    }
    finish(child, "pong");
    assert_eq!(lock(&m).get(), 2 * ROUNDS);
}

#[test]
fn a_waiter_whose_partner_died_returns_by_its_timeout_not_before() {
    let name = Name::new("partner");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let cv = Condvar::in_segment(&seg, 128).unwrap();
    let mut partner = spawn_role("silent", &name.0);
    wait_for(&mut partner, "READY");
    kill(&mut partner);
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    let (g, timed_out) = cv
        .wait_while_timeout(lock(&m), timeout, |v| *v == 0)
        .unwrap();
    assert!(timed_out);
    assert!(start.elapsed() >= timeout, "not before the timeout");
    assert!(start.elapsed() < timeout + SLACK, "returned by the timeout");
    drop(g);
}

#[test]
fn eight_processes_killed_at_random_two_thousand_times_never_block_the_survivors() {
    let name = Name::new("churn");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let _cv = Condvar::in_segment(&seg, 128).unwrap();
    let stop: &AtomicU32 = seg.get(256).unwrap();
    let hangs: &AtomicU32 = seg.get(260).unwrap();
    let start_child = || {
        let mut c = spawn_role("churn", &name.0);
        wait_for(&mut c, "READY");
        c
    };
    let mut children: Vec<Child> = (0..8).map(|_| start_child()).collect();
    let mut state = 0x2545_f491_u32;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let victim = (state % 8) as usize;
        std::thread::sleep(Duration::from_micros(u64::from(state % 500)));
        kill(&mut children[victim]);
        children[victim] = start_child();
    }
    // The survivors still make progress.
    let before = lock(&m).get();
    std::thread::sleep(Duration::from_millis(300));
    let after = lock(&m).get();
    stop.store(1, Ordering::Release);
    for c in children {
        finish(c, "a survivor");
    }
    assert!(
        after > before,
        "progress after the churn: {before} -> {after}"
    );
    assert_eq!(
        hangs.load(Ordering::Acquire),
        0,
        "a wait overran its timeout"
    );
}
