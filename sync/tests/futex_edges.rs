//! Edge cases of the futex kind of `Mutex` (and the in-segment semaphore) found by a hostile
//! review: each test failed before its fix. Children are this test binary re-run with
//! `--exact child_role`; two tests fork, and their children only make a compare-exchange and
//! `_exit`.
#![allow(clippy::disallowed_types)] // Std atomics in shared memory: reading the lock word.
#![allow(unsafe_code)] // One test forks: a handle inherited over fork is what it is about.

mod common;
use common::{Name, ROLES};
use ipcraft_shm::Segment;
use ipcraft_sync::{LockError, Mutex, MutexKind, MutexOptions};
use ipcraft_testkit::wait_for;
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where the futex kind's lock word sits in a placement (after the state and layout words).
const LOCK_WORD: usize = 8;
/// The futex kind's "someone may sleep on the word; the unlocker must wake" bit.
const WAITERS: u32 = 1 << 31;

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    let seg = Segment::open(&name).unwrap();
    match role.as_str() {
        // Lock (waiting as long as it takes), say so, hold until told on stdin, unlock.
        "wait-hold" => {
            let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
            println!("READY");
            let g = m.lock().unwrap();
            println!("GOT");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).unwrap();
            drop(g);
            println!("RELEASED");
        }
        // Attach (asking for the futex kind, the default) to what is placed at offset 0.
        "victim" => match Mutex::in_segment(&seg, 0, 0u64) {
            Ok(m) => {
                println!("KIND {:?}", m.kind());
                let g = m.lock().unwrap();
                println!("LOCKED");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).unwrap();
                drop(g);
                println!("UNLOCKED");
            }
            Err(e) => println!("REFUSED {e}"),
        },
        // Take `arg`-many units from the semaphore at offset 0 with `wait()` (no deadline):
        // a lost wake-up hangs here.
        "sem-take" => {
            let sem = ipcraft_sync::Semaphore::in_segment(&seg, 0, 0).unwrap();
            println!("READY");
            for _ in 0..SEM_ROUNDS {
                sem.wait().unwrap();
            }
            println!("DONE");
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_piped(role: &str, name: &str) -> Child {
    ROLES.spawn(role, name, Stdio::piped())
}

fn tell(child: &mut Child) {
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Lost wake-up: when the unlocker wakes one of two sleepers, the woken one takes the lock
/// without the WAITERS bit (it found the word 0, which unlock left), although the other
/// still sleeps. Its unlock then takes the fast path and wakes nobody: the other sleeper
/// stays asleep on a free lock until its 100 ms slice ends (with `lock()`, every time).
///
/// Checked on the protocol's own invariant (module docs of `futex_lock.rs`): while a sleeper
/// is in `FUTEX_WAIT` on the word, the word's WAITERS bit is set.
#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn a_woken_waiter_keeps_the_waiters_bit_for_the_sleepers_left() {
    for round in 0..3 {
        let name = Name::new("lost-wake");
        let seg = Segment::create(&name, 4096).unwrap();
        let m = MutexOptions::new()
            .kind(MutexKind::Futex)
            .in_segment(&seg, 0, 0u64)
            .unwrap();
        let word: &AtomicU32 = seg.get(LOCK_WORD).unwrap();
        let g = m.lock().unwrap();
        let mut kids: Vec<Child> = (0..2).map(|_| spawn_piped("wait-hold", &name)).collect();
        for k in &mut kids {
            wait_for(k, "READY");
        }
        // Both announce themselves and sleep (they spin 100 polls first); give them several
        // slices so that both are in FUTEX_WAIT.
        let until = Instant::now() + Duration::from_secs(10);
        while word.load(Ordering::Relaxed) & WAITERS == 0 {
            assert!(Instant::now() < until, "the children never slept");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(350));
        // Read both children's stdout on threads, to learn which one got the lock.
        let (tx, rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        for (i, mut k) in kids.into_iter().enumerate() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                wait_for(&mut k, "GOT");
                tx.send((i, Instant::now())).unwrap();
                k
            }));
        }
        drop(g);
        let (first, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let w = word.load(Ordering::Relaxed);
        // Let the holder go, and time how long the other, still sleeping, takes to notice.
        let mut holder = readers.remove(first).join().unwrap();
        let released = Instant::now();
        tell(&mut holder);
        let (_, got) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut other = readers.pop().unwrap().join().unwrap();
        tell(&mut other);
        for mut k in [holder, other] {
            assert!(k.wait().unwrap().success());
        }
        assert!(
            w & WAITERS != 0,
            "round {round}: the lock went to a woken sleeper as {w:#x}, without WAITERS, while \
             another process slept on it; that process got the lock {:?} after it was released",
            got.saturating_duration_since(released)
        );
    }
}

/// A handle inherited over `fork` shares its slot (and its open file description) with the
/// parent: had the child locked through it and died, its slot's byte would have stayed
/// locked by the parent's description, and the death would never be seen (`lock()` forever).
/// An inherited handle refuses to lock instead; the child attaches a handle of its own.
#[cfg_attr(miri, ignore = "forks")]
#[test]
fn a_handle_inherited_over_fork_refuses_to_lock_in_the_child() {
    let name = Name::new("fork-lock");
    let seg = Segment::create(&name, 4096).unwrap();
    let m = MutexOptions::new()
        .kind(MutexKind::Futex)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    // SAFETY: the child makes one try_lock (an atomic load and a check of the fork count,
    // no allocation, no lock) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let refused = m.try_lock().is_err();
        // SAFETY: async-signal-safe; skips destructors and atexit handlers.
        unsafe { libc::_exit(if refused { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: our own child; `status` is a writable int.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child locked through the handle it inherited (status {status:#x})"
    );
    // The parent's handle is untouched.
    drop(m.try_lock().unwrap());
}

/// The kind is read from the layout word, which any peer can write: a peer that rewrites a
/// futex placement's layout word to the pthread kind (and its lock bytes to a robust pthread
/// mutex) makes every later attacher use glibc's mutex on peer-written bytes, and then make
/// glibc write through the peer's pointers. The futex kind promises that a peer writing its
/// bytes cannot crash this process.
#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn a_peer_cannot_turn_a_futex_mutex_into_a_pthread_one_and_crash_its_attachers() {
    let name = Name::new("downgrade");
    let seg = Segment::create(&name, 4096).unwrap();
    drop(
        MutexOptions::new()
            .kind(MutexKind::Futex)
            .in_segment(&seg, 0, 0u64)
            .unwrap(),
    );
    // The peer: layout word of the pthread kind for u64 (version 1, align 2^3, size 8) ...
    let layout: &AtomicU32 = seg.get(4).unwrap();
    layout.store((1 << 28) | (3 << 24) | 8, Ordering::SeqCst);
    // ... and a fresh robust, process-shared glibc mutex in the lock bytes: all zero but
    // __kind (offset 16 of pthread_mutex_t) = PTHREAD_MUTEX_ROBUST_NORMAL_NP | PSHARED bit.
    for at in (LOCK_WORD..LOCK_WORD + 40).step_by(4) {
        seg.get::<AtomicU32>(at).unwrap().store(0, Ordering::SeqCst);
    }
    seg.get::<AtomicU32>(LOCK_WORD + 16)
        .unwrap()
        .store(16 | 128, Ordering::SeqCst);
    let mut victim = spawn_piped("victim", &name);
    let line = ipcraft_testkit::wait_for_line(&mut victim, "KIND or REFUSED", |l| {
        l.starts_with("KIND") || l.starts_with("REFUSED")
    });
    let lines = vec![line.clone()];
    if line.starts_with("REFUSED") {
        // Asked for the futex kind, it refuses a placement that says another.
        assert!(line.contains("another"), "{line}");
        assert!(victim.wait().unwrap().success());
        return;
    }
    assert!(line.starts_with("KIND"), "{line}");
    wait_for(&mut victim, "LOCKED");
    // The peer overwrites glibc's robust-list links (__list.__prev at 24, __next at 32).
    for at in [
        LOCK_WORD + 24,
        LOCK_WORD + 28,
        LOCK_WORD + 32,
        LOCK_WORD + 36,
    ] {
        seg.get::<AtomicU32>(at)
            .unwrap()
            .store(0x40, Ordering::SeqCst);
    }
    tell(&mut victim);
    let status = victim.wait().unwrap();
    assert!(
        status.signal().is_none(),
        "the attacher of a futex-kind mutex ({lines:?}) died of signal {:?} after a peer \
         wrote into the placement",
        status.signal()
    );
}

/// Whether `T` is `Sync`, decided at compile time for a concrete type (an inherent method
/// with a `Sync` bound wins over the trait's fallback when the bound holds).
struct SyncProbe<T>(std::marker::PhantomData<T>);
#[allow(dead_code)] // Used exactly when T is not Sync.
trait NotSyncFallback {
    fn is_sync(&self) -> bool {
        false
    }
}
impl<T> NotSyncFallback for SyncProbe<T> {}
impl<T: Sync> SyncProbe<T> {
    #[allow(dead_code)] // Used exactly when T is Sync.
    fn is_sync(&self) -> bool {
        true
    }
}

/// `MutexGuard::set` (and `update`, and `Recovery::set`) write the protected bytes through
/// `&self` with a plain `copy_nonoverlapping`, and the guard is `Sync`: two threads sharing
/// `&guard` (`std::thread::scope`) write the same bytes at once, a data race (undefined
/// behaviour) from safe code, which ipcraft-shm's `Segment::write` leaves to its caller to
/// exclude. (Two threads calling `g.set(&[1; 256])` and `g.set(&[2; 256])` through one
/// `&g` while a third reads `g.get()` under the same lock saw torn values.) std's guard may
/// be `Sync` because `&guard` only gives `&T`; this one gives a write.
#[test]
fn a_guard_that_writes_through_a_shared_reference_is_not_sync() {
    let guard = SyncProbe::<ipcraft_sync::MutexGuard<'static, u64>>(std::marker::PhantomData);
    let recovery = SyncProbe::<ipcraft_sync::Recovery<'static, u64>>(std::marker::PhantomData);
    assert!(
        !guard.is_sync() && !recovery.is_sync(),
        "MutexGuard/Recovery are Sync: safe code can race two writes of the protected data"
    );
}

/// The other face of a handle inherited over `fork`: the child's copy of a guard taken before
/// the fork unlocks the parent's lock, since the futex kind's unlock checks only the slot,
/// which parent and child share. (The pthread kind's unlock checks the owner's thread id and
/// refuses with `EPERM`.) Mutual exclusion is gone: the parent still holds its guard.
#[cfg_attr(miri, ignore = "forks")]
#[test]
fn a_forked_child_cannot_unlock_its_parents_lock() {
    let name = Name::new("fork-unlock");
    let seg = Segment::create(&name, 4096).unwrap();
    let m = MutexOptions::new()
        .kind(MutexKind::Futex)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    let g = m.lock().unwrap();
    // SAFETY: the child only unlocks its copy of the guard (a check of the fork count and an
    // atomic load, no allocation) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // An explicit unlock: the refusal is returned, not printed (no stderr lock taken).
        let refused = g.unlock().is_err();
        // SAFETY: async-signal-safe; skips destructors and atexit handlers.
        unsafe { libc::_exit(if refused { 0 } else { 1 }) };
    }
    // SAFETY: our own child; a null status pointer is allowed.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let other = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let stolen = match other.try_lock() {
        Ok(g2) => {
            drop(g2);
            true
        }
        Err(_) => false,
    };
    drop(g);
    assert!(
        !stolen,
        "another handle locked the mutex while this process held its guard: the forked \
         child's copy of the guard unlocked it"
    );
}

/// `Semaphore::open` trusts whatever file is at `/dev/shm/sem.NAME`, although `/dev/shm` is
/// writable by every user, so the name may have been made first by someone else (the house
/// rule "trust on open"; `Segment::open` refuses such a file in strict mode). The docs say a
/// named semaphore trusts "every process that can open the name ... only our own user (and
/// root)": not so when another user made the name, and glibc lets whoever can write the
/// file abort our `sem_post`. Needs root, to make a file another user owns.
#[test]
fn opening_a_named_semaphore_refuses_a_file_another_user_may_write() {
    if !ipcraft_testkit::can_switch_users() {
        return;
    }
    let name = Name::new("sem-squat");
    let mut sem = ipcraft_sync::Semaphore::create(&name, 0).unwrap();
    sem.persist();
    drop(sem);
    // As if user `nobody` had made it first, writable by all.
    std::os::unix::fs::chown(name.file(), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(
        name.file(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let opened = ipcraft_sync::Semaphore::open(&name);
    assert!(
        opened.is_err(),
        "opened a named semaphore owned by another user and writable by all: {opened:?}"
    );
}

const SEM_ROUNDS: u32 = 2000;

/// Checked and found sound: the in-segment semaphore loses no wake-up. Three processes take
/// 2000 units each with `wait()` (no deadline, no slice: a lost wake-up would hang), while
/// the parent posts them in bursts; then the word is back to zero value and zero waiters,
/// and a post at `SEM_VALUE_MAX` is refused without changing the value.
#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn the_semaphore_loses_no_wake_up_and_stops_at_its_maximum() {
    let name = Name::new("sem-storm");
    let seg = Segment::create(&name, 4096).unwrap();
    let sem = ipcraft_sync::Semaphore::in_segment(&seg, 0, 0).unwrap();
    let mut kids: Vec<Child> = (0..3)
        .map(|_| ROLES.spawn("sem-take", &name, Stdio::null()))
        .collect();
    for k in &mut kids {
        wait_for(k, "READY");
    }
    let mut n = 0u32;
    while n < 3 * SEM_ROUNDS {
        for _ in 0..(n % 7 + 1).min(3 * SEM_ROUNDS - n) {
            sem.post().unwrap();
            n += 1;
        }
        if n.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    for mut k in kids {
        loop {
            if let Some(status) = k.try_wait().unwrap() {
                assert!(status.success(), "a taker failed: {status:?}");
                break;
            }
            if Instant::now() > give_up {
                let _ = k.kill();
                panic!("a taker hung with units posted: value {:?}", sem.value());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let word: &std::sync::atomic::AtomicU64 = seg.get(8).unwrap();
    assert_eq!(
        word.load(Ordering::Relaxed),
        0,
        "value and waiter count back to zero"
    );
    let full = ipcraft_sync::Semaphore::in_segment(&seg, 64, ipcraft_sync::SEM_VALUE_MAX).unwrap();
    assert!(matches!(
        full.post(),
        Err(ipcraft_sync::Error::ValueTooLarge { .. })
    ));
    assert_eq!(full.value().unwrap(), ipcraft_sync::SEM_VALUE_MAX);
    full.try_wait().unwrap();
    full.post().unwrap();
    assert_eq!(full.value().unwrap(), ipcraft_sync::SEM_VALUE_MAX);
}

/// ABA on a reused slot: `try_lock` (and a waiter after a slice, or at its deadline) reads
/// the word naming slot `s`, probes `s`'s byte, and takes the lock with a compare-exchange
/// against the word it read. Between the read and the probe the holder may unlock and drop
/// its handle (the byte is free: "dead"); between the probe and the compare-exchange a new
/// handle may claim slot `s` again and lock (the word is `s` again): the compare-exchange
/// succeeds and steals a live holder's lock, as `OwnerDied`. Here no handle ever dies or
/// drops a held lock, so any `OwnerDied` is a false one, and a second holder.
/// (Several handles in one process behave as processes: each has its own description.)
#[cfg_attr(miri, ignore = "opens /proc/self/fd")]
#[test]
fn a_slot_claimed_again_is_not_taken_for_a_dead_owner() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let seg = Segment::anonymous(4096).unwrap();
    let prober = Mutex::in_segment(&seg, 0, 0u64).unwrap();
    let stop = AtomicBool::new(false);
    let holding = AtomicBool::new(false);
    let (cycles, tries) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut false_deaths = Vec::new();
    std::thread::scope(|s| {
        // Attach, lock, unlock, drop, again: always the same free slot, never dying.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let h = Mutex::in_segment(&seg, 0, 0u64).unwrap();
                if let Ok(g) = h.lock() {
                    holding.store(true, Ordering::SeqCst);
                    holding.store(false, Ordering::SeqCst);
                    drop(g);
                }
                drop(h);
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        });
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && false_deaths.len() < 3 {
            tries.fetch_add(1, Ordering::Relaxed);
            match prober.try_lock() {
                Ok(g) => drop(g),
                Err(LockError::OwnerDied(r)) => {
                    false_deaths.push(holding.load(Ordering::SeqCst));
                    drop(r.make_consistent());
                }
                Err(_) => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        false_deaths.is_empty(),
        "try_lock took a live handle's lock as OwnerDied {} times in {} tries ({} attach/lock \
         cycles); the other handle was seen inside its critical section at that moment: \
         {false_deaths:?}",
        false_deaths.len(),
        tries.load(Ordering::Relaxed),
        cycles.load(Ordering::Relaxed)
    );
}
