//! The wake-up path of async ends: background threads that sleep on many doorbell words at
//! once (`futex_waitv(2)`) and wake the tasks that wait on them.
//!
//! A task that goes to sleep [`register`]s the doorbell word it announced on, the value it
//! saw, and its waker. A thread ("ipcraft-doorbell", up to [`PER_THREAD`] words each, more
//! threads only when more tasks sleep at once) waits on every registered word plus a
//! control word of its own; when a peer bumps a doorbell (the same `FUTEX_WAKE` it makes for
//! a blocking end), the thread wakes that task. It also wakes every task after one slice
//! ([`SLICE`]) of sleep, so that the task probes whether its peer died (as a blocking end's
//! sliced sleep does). A registration ends when the task is woken or its [`Ticket`] drops
//! (a cancelled future).
//!
//! The thread holds a clone of each registered region's `Arc` while it waits on the region's
//! word, so a segment is never unmapped under the kernel's wait.
#![allow(clippy::disallowed_types)] // The doorbell words live in shared memory; the control word is futexed too.

use super::super::SLICE;
use crate::shared::SharedRegion;
use ipcraft_sync::futex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Doorbell words one thread waits on (the kernel's limit, less the control word).
pub(super) const PER_THREAD: usize = futex::WAIT_MANY_MAX - 1;

/// One sleeping task.
struct Entry {
    id: u64,
    region: Arc<SharedRegion>,
    /// Offset of the doorbell's sequence word in `region`.
    seq: usize,
    /// The value the task saw before it announced sleep.
    seen: u32,
    /// When it registered: it is woken one slice later at the latest.
    since: Instant,
    waker: Waker,
}

/// One waiting thread and the tasks it serves.
struct Shard {
    /// The process whose thread serves it: a child forked from it has none (threads do not
    /// survive `fork`), so the child starts its own.
    pid: u32,
    entries: Mutex<Vec<Entry>>,
    /// Bumped (and woken) when the set of entries changes, so that the thread re-reads it.
    control: AtomicU32,
}

/// A registration: dropping it (the task was woken, or its future dropped) removes it.
pub(super) struct Ticket {
    shard: Arc<Shard>,
    id: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("id", &self.id).finish()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // The thread may still wait on the word: it finds the entry gone at its next look
        // (no need to wake it for a removal; it holds its own clone of the region).
        lock(&self.shard.entries).retain(|e| e.id != self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock (none is expected: the sections push, retain and
    // collect) leaves a consistent Vec: carry on with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn shards() -> &'static Mutex<Vec<Arc<Shard>>> {
    static SHARDS: OnceLock<Mutex<Vec<Arc<Shard>>>> = OnceLock::new();
    SHARDS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Wake `waker` once the word at `seq` in `region` no longer holds `seen` (or is woken), or
/// one slice from now.
///
/// # Errors
///
/// The thread could not be started (`std::thread::Builder::spawn`).
pub(super) fn register(
    region: Arc<SharedRegion>,
    seq: usize,
    seen: u32,
    waker: Waker,
) -> std::io::Result<Ticket> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let shard = {
        let mut all = lock(shards());
        let pid = std::process::id();
        all.retain(|s| s.pid == pid);
        match all.iter().find(|s| lock(&s.entries).len() < PER_THREAD) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Shard {
                    pid,
                    entries: Mutex::new(Vec::new()),
                    control: AtomicU32::new(0),
                });
                let for_thread = s.clone();
                std::thread::Builder::new()
                    .name("ipcraft-doorbell".into())
                    .spawn(move || serve(&for_thread))?;
                all.push(s.clone());
                s
            }
        }
    };
    lock(&shard.entries).push(Entry {
        id,
        region,
        seq,
        seen,
        since: Instant::now(),
        waker,
    });
    shard.control.fetch_add(1, Ordering::Release);
    futex::wake(&shard.control, 1);
    Ok(Ticket { shard, id })
}

/// The thread: wait on every registered word, wake the tasks whose word moved or whose
/// slice ended, forever (threads are few and idle ones sleep without a timeout).
fn serve(shard: &Shard) {
    let mut watched: Vec<(Arc<SharedRegion>, usize, u32)> = Vec::new();
    let mut due: Vec<Waker> = Vec::new();
    loop {
        // What to wait on, read under the lock; the control word's value first, so that a
        // registration made after the snapshot changes it and the wait returns at once.
        let control = shard.control.load(Ordering::Acquire);
        let deadline = {
            let entries = lock(&shard.entries);
            watched.clear();
            watched.extend(entries.iter().map(|e| (e.region.clone(), e.seq, e.seen)));
            entries.iter().map(|e| e.since + SLICE).min()
        };
        let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(watched.len() + 1);
        words.push((&shard.control, control));
        words.extend(
            watched
                .iter()
                .filter_map(|(region, seq, seen)| region.u32(*seq).map(|w| (w, *seen))),
        );
        if futex::wait_many(&words, deadline).is_err() {
            // No futex_waitv (Linux before 5.16): look again after a short sleep, so that
            // wake-ups still arrive, late by at most this much.
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(words);
        // Whom to wake: a moved word, an ended slice, or a word out of the region's bounds
        // (a task must never sleep on nothing).
        let now = Instant::now();
        lock(&shard.entries).retain(|e| {
            let moved = e
                .region
                .u32(e.seq)
                .is_none_or(|w| w.load(Ordering::Acquire) != e.seen);
            if moved || now >= e.since + SLICE {
                due.push(e.waker.clone());
                false
            } else {
                true
            }
        });
        watched.clear(); // no region kept mapped longer than needed
        for w in due.drain(..) {
            w.wake();
        }
    }
}
