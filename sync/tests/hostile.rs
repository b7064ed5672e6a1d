//! Every in-segment object against a hostile peer: a thread of the parent writes random and
//! adversarial words into the object's bytes while two child processes lock, wait and post
//! with timeouts. The promise checked: no panic, no crash, and no call returns later than
//! its deadline plus 100 ms. Wrong results (`OwnerDied`, `NotRecoverable`, a wrong count)
//! are allowed: a peer that can write the bytes can always make those.
//!
//! The pthread kind of `Mutex` is exempt from the crash part: glibc keeps robust-list
//! pointers inside a locked `pthread_mutex_t` and writes through them at unlock, so a peer
//! that overwrites them can make the locking process write anywhere (that kind trusts its
//! peers, as its docs say). Its test still runs and reports how its workers ended.
#![allow(clippy::disallowed_types)] // Std atomics in shared memory: the scribbler's writes.

mod common;
use common::{Name, ROLES, spawn_role};
use ipcraft_shm::Segment;
use ipcraft_sync::{
    Condvar, Error, LockError, Mutex, MutexKind, MutexOptions, SEMAPHORE_FOOTPRINT, Semaphore,
};
use ipcraft_testkit::wait_for;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the workers run and the scribbler writes.
const RUN: Duration = Duration::from_secs(2);
/// The longest timeout a worker asks for.
const MAX_TIMEOUT_MS: u64 = 30;
/// How late a call may return after its deadline.
const LATE: Duration = Duration::from_millis(100);
/// Where the condvar sits after the mutex it is used with.
const CONDVAR_AT: usize = 128;

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a worker counts: calls made, calls that returned late, the worst lateness.
#[derive(Default)]
struct Tally {
    calls: u64,
    late: u64,
    worst: Duration,
}

impl Tally {
    /// Time `call`, which was given `timeout`.
    fn timed<R>(&mut self, timeout: Duration, call: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = call();
        let took = start.elapsed();
        self.calls += 1;
        if took > timeout + LATE {
            self.late += 1;
            self.worst = self.worst.max(took - timeout);
        }
        r
    }

    fn report(&self) {
        println!(
            "DONE calls={} late={} worst_late_us={}",
            self.calls,
            self.late,
            self.worst.as_micros()
        );
    }
}

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    let seg = Segment::open(&name).unwrap();
    let mut rng = Rng::new(u64::from(std::process::id()));
    let mut tally = Tally::default();
    let until = Instant::now() + RUN;
    match role.as_str() {
        "mutex" | "mutex-pthread" => {
            let kind = if role == "mutex" {
                MutexKind::Futex
            } else {
                MutexKind::Pthread
            };
            let m = MutexOptions::new()
                .kind(kind)
                .in_segment(&seg, 0, 0u64)
                .unwrap();
            println!("READY");
            while Instant::now() < until {
                let timeout = Duration::from_millis(rng.below(MAX_TIMEOUT_MS + 1));
                let hold = Duration::from_micros(rng.below(2000));
                match tally.timed(timeout, || m.lock_timeout(timeout)) {
                    Ok(g) => {
                        g.update(|n| *n = n.wrapping_add(1));
                        std::thread::sleep(hold);
                        // A peer may have taken the word from us: an error, not a panic.
                        let _ = g.unlock();
                    }
                    Err(LockError::OwnerDied(r)) => {
                        if rng.below(2) == 0 {
                            if let Ok(g) = r.make_consistent() {
                                let _ = g.unlock();
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
                if rng.below(8) == 0 {
                    let _ = tally.timed(Duration::ZERO, || m.try_lock().map(|_| ()));
                }
            }
        }
        "condvar" => {
            let m = Mutex::in_segment(&seg, 0, 0u64).unwrap();
            let cv = Condvar::in_segment(&seg, CONDVAR_AT).unwrap();
            println!("READY");
            while Instant::now() < until {
                let timeout = Duration::from_millis(rng.below(MAX_TIMEOUT_MS + 1));
                let Ok(g) = m.lock_timeout(Duration::from_secs(1)) else {
                    continue;
                };
                g.update(|n| *n = n.wrapping_add(1));
                if rng.below(2) == 0 {
                    cv.notify_all();
                } else {
                    cv.notify_one();
                }
                let r = tally.timed(timeout, || cv.wait_timeout(g, timeout).map(|(g, _)| g));
                drop(r);
            }
        }
        "semaphore" => {
            let sem = Semaphore::in_segment(&seg, 0, 0).unwrap();
            println!("READY");
            while Instant::now() < until {
                let timeout = Duration::from_millis(rng.below(MAX_TIMEOUT_MS + 1));
                match rng.below(3) {
                    0 => {
                        // Full (a peer wrote a huge value): a typed error.
                        match sem.post() {
                            Ok(()) | Err(Error::ValueTooLarge { .. }) => {}
                            Err(e) => panic!("post: {e}"),
                        }
                    }
                    1 => match tally.timed(timeout, || sem.wait_timeout(timeout)) {
                        Ok(()) | Err(Error::TimedOut) => {}
                        Err(e) => panic!("wait_timeout: {e}"),
                    },
                    _ => match tally.timed(Duration::ZERO, || sem.try_wait()) {
                        Ok(()) | Err(Error::WouldBlock) => {}
                        Err(e) => panic!("try_wait: {e}"),
                    },
                }
                let _ = sem.value();
            }
        }
        other => panic!("unknown role {other}"),
    }
    tally.report();
}

/// Words a hostile peer would try: edges, flags, the futex kind's special slots, live and
/// dead slot numbers with and without the waiter and inconsistent bits, and garbage.
fn adversarial(rng: &mut Rng) -> u32 {
    const EDGES: [u32; 14] = [
        0,
        1,
        2,
        u32::MAX,
        0x7fff_ffff,
        0x8000_0000,
        0x4000_0000,
        0xc000_0000,
        0x3fe,
        0x3ff,
        0x8000_03fe,
        0x4000_03ff,
        0x10,
        3,
    ];
    match rng.below(4) {
        0 => EDGES[rng.below(EDGES.len() as u64) as usize],
        1 => (rng.below(4) as u32 + 1) | ((rng.below(4) as u32) << 30),
        2 => 0,
        _ => rng.next() as u32,
    }
}

/// Start two workers of `role` on the segment `name`, scribble over the 4-byte words in
/// `bytes` (offsets into the segment's data) until they are done, and return how each
/// ended: its exit status and its report line.
fn run(role: &str, name: &Name, seg: &Segment, bytes: std::ops::Range<usize>) -> Vec<Ended> {
    let mut workers: Vec<Child> = (0..2).map(|_| spawn_role(role, name)).collect();
    for w in &mut workers {
        wait_for(w, "READY");
    }
    let stop = AtomicBool::new(false);
    let writes = std::thread::scope(|s| {
        let scribbler = s.spawn(|| {
            let mut rng = Rng::new(0x5eed_1234);
            let mut writes = 0u64;
            let words: Vec<&AtomicU32> = bytes
                .clone()
                .step_by(4)
                .map(|at| seg.get::<AtomicU32>(at).unwrap())
                .collect();
            while !stop.load(Ordering::Relaxed) {
                let word = words[rng.below(words.len() as u64) as usize];
                word.store(adversarial(&mut rng), Ordering::Relaxed);
                writes += 1;
                // Mostly short pauses, sometimes long enough for the workers to make progress.
                let pause = if rng.below(16) == 0 { 20_000 } else { 300 };
                std::thread::sleep(Duration::from_micros(rng.below(pause)));
            }
            writes
        });
        let ended: Vec<Ended> = workers.into_iter().map(ended).collect();
        stop.store(true, Ordering::Relaxed);
        (scribbler.join().unwrap(), ended)
    });
    println!(
        "{role}: {} hostile writes; workers: {:?}",
        writes.0, writes.1
    );
    writes.1
}

/// How a worker ended.
#[derive(Debug)]
struct Ended {
    /// Its exit code, or `None` if a signal ended it (the signal in `signal`).
    code: Option<i32>,
    signal: Option<i32>,
    /// Its `DONE ...` line, if it got that far.
    report: Option<String>,
    /// Whether it had to be killed for not ending in time (a hang).
    hung: bool,
}

impl Ended {
    fn field(&self, key: &str) -> Option<u64> {
        let report = self.report.as_ref()?;
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }
}

/// Wait for a worker, killing it if it runs well past its time (a hang).
fn ended(mut child: Child) -> Ended {
    let give_up = Instant::now() + RUN + Duration::from_secs(10);
    let mut hung = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > give_up {
            hung = true;
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    Ended {
        code: status.code(),
        signal: status.signal(),
        report: out
            .lines()
            .find(|l| l.starts_with("DONE"))
            .map(str::to_owned),
        hung,
    }
}

/// The full promise: every worker exited cleanly, made calls, and none returned late.
fn assert_kept(what: &str, ended: &[Ended]) {
    for e in ended {
        assert!(!e.hung, "{what}: a worker hung: {e:?}");
        assert_eq!(
            e.code,
            Some(0),
            "{what}: a worker crashed or panicked: {e:?}"
        );
        assert!(e.field("calls").unwrap() > 10, "{what}: no progress: {e:?}");
        assert_eq!(
            e.field("late"),
            Some(0),
            "{what}: a call returned late: {e:?}"
        );
    }
}

/// One scenario at a time: each runs two busy workers and a scribbler, which is all two
/// cores can run without descheduling a worker for longer than the lateness allowed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment(tag: &str) -> (Name, Segment) {
    let name = Name::new(tag);
    let seg = Segment::create(&name, 4096).unwrap();
    (name, seg)
}

#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn the_futex_mutex_survives_a_peer_scribbling_over_it() {
    let _serial = serial();
    let (name, seg) = segment("hostile-futex");
    let m = MutexOptions::new()
        .kind(MutexKind::Futex)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    drop(m);
    // The state, layout and lock words and the data.
    let ended = run("mutex", &name, &seg, 0..ipcraft_sync::footprint::<u64>());
    assert_kept("futex mutex", &ended);
}

#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn the_condvar_survives_a_peer_scribbling_over_it() {
    let _serial = serial();
    let (name, seg) = segment("hostile-condvar");
    drop(Mutex::in_segment(&seg, 0, 0u64).unwrap());
    Condvar::in_segment(&seg, CONDVAR_AT).unwrap();
    let ended = run(
        "condvar",
        &name,
        &seg,
        CONDVAR_AT..CONDVAR_AT + ipcraft_sync::CONDVAR_FOOTPRINT,
    );
    assert_kept("condvar", &ended);
}

#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn the_semaphore_survives_a_peer_scribbling_over_it() {
    let _serial = serial();
    let (name, seg) = segment("hostile-sem");
    drop(Semaphore::in_segment(&seg, 0, 0).unwrap());
    // The placement and the 16 bytes after it, where glibc's `sem_t` kept its `private`
    // word (writing 0x10 there made sem_post abort when the semaphore was a glibc sem_t).
    let ended = run("semaphore", &name, &seg, 0..SEMAPHORE_FOOTPRINT + 16);
    assert_kept("semaphore", &ended);
}

/// The pthread kind trusts its peers (module docs): a worker may crash when its robust-list
/// pointers are overwritten. What is checked: nobody hangs, and every worker that did not
/// die of a signal kept every deadline.
#[cfg_attr(miri, ignore = "spawns processes")]
#[test]
fn the_pthread_mutex_trusts_its_peers_but_keeps_its_deadlines_while_it_lives() {
    let _serial = serial();
    let (name, seg) = segment("hostile-pthread");
    let m = MutexOptions::new()
        .kind(MutexKind::Pthread)
        .in_segment(&seg, 0, 0u64)
        .unwrap();
    drop(m);
    let ended = run(
        "mutex-pthread",
        &name,
        &seg,
        0..ipcraft_sync::footprint::<u64>(),
    );
    for e in &ended {
        assert!(!e.hung, "pthread mutex: a worker hung: {e:?}");
        if e.signal.is_some() {
            println!(
                "pthread mutex: a worker died of signal {:?} (exempt)",
                e.signal
            );
            continue;
        }
        assert_eq!(e.code, Some(0), "pthread mutex: a worker panicked: {e:?}");
        assert_eq!(
            e.field("late"),
            Some(0),
            "pthread mutex: a late call: {e:?}"
        );
    }
}
