//! The robust mutex and condvar: a one-message mailbox `[full, stream, seq, checksum]` in a
//! named `Mutex<[u64; 4]>`, with a named `Condvar` for "it changed". Two producers put
//! messages, a consumer takes them; any of them may be killed, holding the lock or not.
//!
//! A producer writes the mailbox in two steps on purpose (`full, stream, seq` with a wrong
//! checksum, a pause, then the checksum), so that a kill can land mid-update. Whoever locks
//! next gets `OwnerDied` and repairs: a half-written message (full, checksum wrong) was never
//! acknowledged, and is discarded. A wrong checksum found on a normal lock is corruption.
//!
//! Acknowledged: the producer unlocked after writing the whole message. Promise (Held): the
//! mailbox outlives every process; a killed producer's acknowledged message stays for the
//! consumer; a killed consumer takes only the message it had taken (cleared, unlocked) and
//! not yet recorded. A lock that times out instead of reporting a dead owner is a hang.

use crate::child::{Ctx, Fail, Out, Stop, WAIT, produce};
use crate::msg;
use ipcraft::ipcraft_core::Deadline;
use ipcraft::sync::{Condvar, LockError, Mutex, MutexGuard, Recovery};
use std::any::Any;
use std::time::{Duration, Instant};

type State = [u64; 4];

/// The condvar's name beside the mutex's.
fn cv_name(name: &str) -> String {
    format!("{name}-cv")
}

fn sum(stream: u64, seq: u64) -> u64 {
    crate::rng::mix(stream ^ seq.rotate_left(32)) | 1
}

/// The parent's part: the mutex (empty mailbox) and the condvar; their creator removes
/// the names on drop.
pub fn setup(name: &str) -> Result<Box<dyn Any>, String> {
    let m = Mutex::create(name, [0u64; 4]).map_err(|e| format!("Mutex::create: {e}"))?;
    let cv = Condvar::create(&cv_name(name)).map_err(|e| format!("Condvar::create: {e}"))?;
    Ok(Box::new((m, cv)))
}

/// After `OwnerDied`: discard a half-written message, mark consistent.
fn repair<'a>(r: Recovery<'a, State>, out: &Out) -> Result<MutexGuard<'a, State>, Fail> {
    let s = r.get();
    if s[0] == 1 && s[3] != sum(s[1], s[2]) {
        r.set(&[0; 4]);
        out.line("RECOVERED half-written");
    } else {
        out.line("RECOVERED");
    }
    r.make_consistent()
        .map_err(|e| Fail::Fatal(format!("make_consistent: {e}")))
}

fn lock<'a>(
    m: &'a Mutex<State>,
    deadline: Instant,
    out: &Out,
) -> Result<MutexGuard<'a, State>, Fail> {
    let left = deadline.saturating_duration_since(Instant::now());
    match m.lock_deadline(Deadline::after(left)) {
        Ok(g) => Ok(g),
        Err(LockError::OwnerDied(r)) => repair(r, out),
        Err(LockError::TimedOut) => Err(Fail::Hung(
            "lock: timed out (a dead owner must be reported, never wait)".into(),
        )),
        Err(e) => Err(Fail::Fatal(format!("lock: {e}"))),
    }
}

/// Wait on the condvar for a slice, then lock again (repairing if needed).
fn wait<'a>(
    m: &'a Mutex<State>,
    cv: &Condvar,
    g: MutexGuard<'a, State>,
    deadline: Instant,
    out: &Out,
) -> Result<MutexGuard<'a, State>, Fail> {
    match cv.wait_timeout(g, Duration::from_millis(50)) {
        Ok((g, _)) => Ok(g),
        Err(LockError::OwnerDied(r)) => repair(r, out),
        Err(LockError::TimedOut) => lock(m, deadline, out),
        Err(e) => Err(Fail::Fatal(format!("condvar wait: {e}"))),
    }
}

fn open(name: &str) -> Result<(Mutex<State>, Condvar), String> {
    let m = Mutex::<State>::open(name).map_err(|e| format!("Mutex::open: {e}"))?;
    let cv = Condvar::open(&cv_name(name)).map_err(|e| format!("Condvar::open: {e}"))?;
    Ok((m, cv))
}

/// Put `count` messages into the mailbox, one at a time.
pub fn producer(ctx: &Ctx, out: &Out) {
    let name = ctx.name().to_owned();
    produce(
        ctx,
        out,
        false,
        |_| open(&name).map_err(Fail::Fatal),
        |(m, cv), bytes, id| {
            let deadline = Instant::now() + WAIT;
            let mut g = lock(m, deadline, out)?;
            while g.get()[0] == 1 {
                if Instant::now() >= deadline {
                    return Err(Fail::Hung("the mailbox stayed full".into()));
                }
                g = wait(m, cv, g, deadline, out)?;
            }
            // A flipped message (self-test) goes in with a wrong checksum.
            let good = msg::verify(bytes, 0).is_ok();
            let s = sum(id.stream, id.seq) ^ u64::from(!good) << 7;
            g.set(&[1, id.stream, id.seq, 0]);
            // The mid-update window, 20 to 300 us, so that kills land in it now and then.
            let pause = Instant::now() + Duration::from_micros(20 + id.seq * 37 % 280);
            while Instant::now() < pause {
                std::hint::spin_loop();
            }
            g.set(&[1, id.stream, id.seq, s]);
            drop(g);
            cv.notify_all();
            Ok(())
        },
    );
}

/// Take messages until told to stop with the mailbox empty.
pub fn consumer(ctx: &Ctx, out: &Out, stop: &Stop) {
    let (m, cv) = match open(ctx.name()) {
        Ok(x) => x,
        Err(e) => {
            out.error(e);
            out.line("DONE");
            return;
        }
    };
    out.line("READY");
    let result = (|| -> Result<(), Fail> {
        loop {
            let deadline = Instant::now() + WAIT;
            let mut g = lock(&m, deadline, out)?;
            while g.get()[0] == 0 {
                if stop.requested() {
                    return Ok(());
                }
                g = wait(&m, &cv, g, deadline, out)?;
            }
            let s = g.get();
            g.set(&[0; 4]);
            drop(g);
            cv.notify_all();
            if s[3] == sum(s[1], s[2]) {
                out.line(format_args!("R {} 0 {}", s[1], s[2]));
            } else {
                out.line(format_args!(
                    "X mailbox: stream {} seq {}: checksum wrong",
                    s[1], s[2]
                ));
            }
        }
    })();
    match result {
        Ok(()) => {}
        Err(Fail::Hung(why)) => out.hung(why),
        Err(Fail::Fatal(why) | Fail::Broken(why) | Fail::Gone(why)) => out.error(why),
    }
    out.line("DONE");
}
