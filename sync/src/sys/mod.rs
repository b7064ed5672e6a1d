#![allow(unsafe_code)]
#![allow(clippy::disallowed_types)] // Futex words live in shared memory, where loom's atomics cannot.
//! The `unsafe` of `ipcraft-sync`: thin calls into the kernel (`futex(2)`) and glibc (the
//! robust pthread mutex, named `sem_t`), each behind a safe function or type.
//!
//! Invariants upheld here, and by whom:
//! - Futex calls take a reference to an atomic word, so the word is live and aligned for the
//!   whole call; the kernel reads it atomically and never writes it. Any value a peer puts
//!   in the word is harmless to the kernel: at worst a wait returns at once or sleeps until
//!   its timeout.
//! - [`pthread::RawMutex`] points into a shared mapping that its user keeps mapped (its
//!   constructor is `unsafe`; `mutex.rs` checks bounds and alignment against the `Segment`
//!   and keeps the `Segment` beside it). Trust: glibc keeps robust-list pointers inside a
//!   locked pthread mutex and writes through them at unlock, so a peer that scribbles over
//!   the mutex bytes can make this process write through its pointers. This kind is for
//!   peers you trust; the futex kind (`futex_lock.rs`) follows no pointer.
//! - [`MappedWord`] points to an atomic word in a shared mapping that its user keeps mapped
//!   (its constructor is `unsafe`; `mutex.rs` makes it from a bounds-checked `&AtomicU32` of
//!   the `Segment` it keeps beside it).
//! - [`named_sem::NamedSem`] owns what `sem_open` returned and closes it once, on drop.
//!   Trust: glibc builds its futex operation from the `private` word inside `sem_t`, so a
//!   process that can write the semaphore's file can make `sem_post` abort this process.

mod named_sem;
mod pthread;

pub(crate) use named_sem::{NamedSem, unlink as sem_unlink};
pub(crate) use pthread::{Acquired, MUTEX_ALIGN, MUTEX_SIZE, RawMutex};

use nix::errno::Errno;
use std::ptr::NonNull;
#[allow(clippy::disallowed_types)]
// Futex words live in shared memory, where loom's atomics cannot.
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

/// A 32-bit atomic word in a shared mapping, reached without a bounds check per use (the
/// futex kind's lock word, on the path of every lock and unlock).
#[derive(Debug)]
pub(crate) struct MappedWord {
    ptr: NonNull<AtomicU32>,
}

// SAFETY:
// - A MappedWord is a pointer to an atomic (which is Sync) in a shared mapping; it holds no
//   thread-local state, and every access through it is atomic.
unsafe impl Send for MappedWord {}
// SAFETY:
// - As above: `get` hands out `&AtomicU32`, which may be shared between threads.
unsafe impl Sync for MappedWord {}

impl MappedWord {
    /// # Safety
    ///
    /// The mapping `word` lies in must stay mapped for as long as the returned value is used
    /// (the borrow of `word` ends here; the caller keeps the mapping's owner beside it), and
    /// no `&mut` to those bytes may ever be formed.
    pub(crate) unsafe fn new(word: &AtomicU32) -> Self {
        Self {
            ptr: NonNull::from(word),
        }
    }

    /// The word.
    #[inline]
    pub(crate) fn get(&self) -> &AtomicU32 {
        // SAFETY:
        // - `ptr` came from a reference to a live, aligned AtomicU32 (`new`), whose mapping
        //   stays mapped while `self` is used (the contract of `new`), and the returned
        //   reference borrows `self`.
        // - Shared access is sound although other processes write the word: every access is
        //   atomic, and no `&mut` to it exists (contract of `new`).
        unsafe { self.ptr.as_ref() }
    }
}

/// The word at `offset` of `seg` as a [`MappedWord`], for unit tests whose `seg` outlives
/// every use.
#[cfg(test)]
pub(crate) fn mapped_for_test(seg: &ipcraft_shm::Segment, offset: usize) -> MappedWord {
    let word: &AtomicU32 = seg.get(offset).expect("an aligned word in bounds");
    // SAFETY:
    // - The tests keep `seg` alive until every FutexLock made from the word is dropped.
    unsafe { MappedWord::new(word) }
}

/// How many times this process is a child of `fork` (counted by a `pthread_atfork` handler):
/// a futex-mutex handle remembers it at attach, and refuses to lock or unlock in a child
/// that inherited it (it shares the parent's slot and file lock, so neither process's death
/// would be seen, and a guard copied over the fork would unlock the parent's lock).
static FORKS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_fork_in_child() {
    // Async-signal-safe: one atomic add.
    FORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The fork count now; the first call registers the handler that counts.
pub(crate) fn fork_generation() -> u32 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY:
        // - `count_fork_in_child` is an `extern "C" fn()` that lives for the whole program
        //   and is async-signal-safe (an atomic add), as a fork child handler must be.
        // - The result is ignored: it fails only with ENOMEM, and then forks go uncounted,
        //   which leaves inherited handles as unchecked as before (documented).
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The fork count, without registering (for the check on every lock and unlock).
#[inline]
pub(crate) fn forks() -> u32 {
    FORKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `deadline` as an absolute `CLOCK_MONOTONIC` time (the clock `Instant` reads on Linux),
/// for the glibc calls that take one (`pthread_mutex_clocklock`, `sem_clockwait`).
///
/// No clock is read per call: an `Instant` and the `CLOCK_MONOTONIC` time read once, together,
/// anchor the conversion (both are the same clock, so their offset is fixed; the two reads
/// are apart by well under a microsecond, which is all a deadline can be off by).
pub(crate) fn monotonic_abstime(deadline: Instant) -> Result<libc::timespec, Errno> {
    static ANCHOR: std::sync::OnceLock<Option<(Instant, i128)>> = std::sync::OnceLock::new();
    let anchor = ANCHOR.get_or_init(|| {
        let at = Instant::now();
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
        Some((
            at,
            i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec()),
        ))
    });
    let Some((at, at_ns)) = *anchor else {
        return Err(Errno::EINVAL);
    };
    let offset = match deadline.checked_duration_since(at) {
        Some(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX / 4),
        None => -i128::try_from(at.duration_since(deadline).as_nanos()).unwrap_or(i128::MAX / 4),
    };
    let abs = (at_ns + offset).max(0);
    Ok(libc::timespec {
        tv_sec: libc::time_t::try_from(abs / 1_000_000_000).unwrap_or(libc::time_t::MAX),
        tv_nsec: (abs % 1_000_000_000) as libc::c_long,
    })
}

fn relative(timeout: Option<Duration>) -> Option<libc::timespec> {
    timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    })
}

/// `FUTEX_WAIT` (shared: keyed by the physical page, so waiters in other processes meet) on
/// the 32-bit word at `addr`, which the caller keeps live and aligned for the call. Whether
/// it ended by its timeout (`ETIMEDOUT`).
fn wait_on(addr: *const u32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = relative(timeout);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY:
    // - `addr` points to a live, 4-byte aligned atomic word for the duration of the call
    //   (both callers derive it from a reference to an atomic); the kernel only reads it,
    //   atomically.
    // - `ts_ptr` is null or points to a valid timespec on our stack for the whole call.
    // - Every outcome (woken, EAGAIN for a changed word, EINTR, ETIMEDOUT) leads the caller
    //   to re-check its condition; only ETIMEDOUT is told apart.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    rc == -1 && Errno::last() == Errno::ETIMEDOUT
}

/// `FUTEX_WAKE` for up to `count` waiters on the word at `addr`.
fn wake_on(addr: *const u32, count: i32) {
    // SAFETY:
    // - FUTEX_WAKE does not access the word; it uses the address as the key only. Both
    //   callers derive it from a live reference. Errors (none expected) change nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// Sleep while `word` holds `expected` (shared futex: the word may be in memory other
/// processes map), at most `timeout` (`FUTEX_WAIT`'s relative timeout runs on
/// `CLOCK_MONOTONIC`). Returns on a wake-up, a changed word, a signal, or the timeout; the
/// caller re-checks its condition either way.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let _ = wait_on(word.as_ptr(), expected, timeout);
}

/// [`futex_wait`], telling whether the sleep ended by its timeout.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub(crate) fn futex_wait_timed(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    wait_on(word.as_ptr(), expected, timeout)
}

/// Wake up to `count` waiters sleeping on `word` (shared futex).
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub fn futex_wake(word: &AtomicU32, count: i32) {
    wake_on(word.as_ptr(), count);
}

/// The most words one [`futex_wait_many`] call sleeps on (the kernel's `FUTEX_WAITV_MAX`).
pub const WAIT_MANY_MAX: usize = 128;

/// One entry of `futex_waitv(2)`'s array (`struct futex_waitv` in `<linux/futex.h>`).
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit word, shared (no `FUTEX2_PRIVATE`), so that it meets
/// `FUTEX_WAKE` calls made on the same word by other processes.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleep until one of `words` is woken or no longer holds its expected value, or
/// `deadline` passes (`futex_waitv(2)`, Linux 5.16; shared futexes, so wake-ups from other
/// processes' `FUTEX_WAKE` on the same words arrive). At most [`WAIT_MANY_MAX`] words.
///
/// Returns `Ok(Some(i))` when word `i` was woken, `Ok(None)` when the call returned for any
/// other reason (a word already differs, a signal, the deadline): the caller re-checks every
/// word either way.
///
/// # Errors
///
/// `ENOSYS` on kernels without `futex_waitv`; `EINVAL` for more than [`WAIT_MANY_MAX`] words.
#[allow(clippy::disallowed_types)] // The words live in shared memory, where loom's atomics cannot.
pub fn futex_wait_many(
    words: &[(&AtomicU32, u32)],
    deadline: Option<Instant>,
) -> Result<Option<usize>, Errno> {
    if words.is_empty() || words.len() > WAIT_MANY_MAX {
        return Err(Errno::EINVAL);
    }
    let waiters: Vec<FutexWaitv> = words
        .iter()
        .map(|(w, val)| FutexWaitv {
            val: u64::from(*val),
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    let ts = deadline.map(monotonic_abstime).transpose()?;
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY:
    // - `waiters` is an array of `words.len()` (1..=128) `struct futex_waitv` entries
    //   (`#[repr(C)]`, the kernel's layout) that lives on our heap for the whole call; the
    //   kernel only reads it.
    // - Each `uaddr` comes from a reference to a live, 4-byte aligned atomic (`words`
    //   borrows them for the whole call); the kernel reads the words atomically and never
    //   writes them.
    // - `ts_ptr` is null or points to an absolute CLOCK_MONOTONIC time on our stack, as
    //   the `clockid` argument says.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if rc >= 0 {
        return Ok(usize::try_from(rc).ok());
    }
    match Errno::last() {
        Errno::EAGAIN | Errno::EINTR | Errno::ETIMEDOUT => Ok(None),
        e => Err(e),
    }
}

/// The address of the low 32 bits of a 64-bit word (the futex a counter in the low half
/// sleeps on, as glibc's 64-bit `sem_t` does).
/// 4-byte aligned (the 64-bit word is 8-aligned) and live as long as `word`.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
fn low_half(word: &AtomicU64) -> *const u32 {
    let at = word.as_ptr().cast::<u32>().cast_const();
    if cfg!(target_endian = "little") {
        at
    } else {
        at.wrapping_add(1)
    }
}

/// [`futex_wait`] on the low 32 bits of `word`, while they hold `expected`.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub(crate) fn futex_wait_low(word: &AtomicU64, expected: u32, timeout: Option<Duration>) {
    let _ = wait_on(low_half(word), expected, timeout);
}

/// [`futex_wake`] on the low 32 bits of `word`.
#[allow(clippy::disallowed_types)] // The word lives in shared memory, where loom's atomics cannot.
#[inline]
pub(crate) fn futex_wake_low(word: &AtomicU64, count: i32) {
    wake_on(low_half(word), count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(miri, ignore = "clock_gettime")]
    #[test]
    fn an_instant_converts_to_the_monotonic_clock_it_reads() {
        let ns = |t: libc::timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
        for ahead in [0i128, 1_000_000_000, -500_000_000] {
            let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
            let instant = Instant::now();
            let deadline = if ahead >= 0 {
                instant + Duration::from_nanos(ahead as u64)
            } else {
                instant - Duration::from_nanos((-ahead) as u64)
            };
            let abs = monotonic_abstime(deadline).unwrap();
            let want = i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec()) + ahead;
            assert!(
                (ns(abs) - want).abs() < 5_000_000,
                "{ahead}: off by {}",
                ns(abs) - want
            );
            assert!((0..1_000_000_000).contains(&abs.tv_nsec));
        }
    }

    #[cfg_attr(miri, ignore = "futex_waitv(2)")]
    #[test]
    fn wait_many_returns_for_a_changed_word_a_wake_and_the_deadline() {
        let words: Vec<AtomicU32> = (0..3).map(AtomicU32::new).collect();
        let refs: Vec<(&AtomicU32, u32)> = words
            .iter()
            .map(|w| (w, w.load(std::sync::atomic::Ordering::Relaxed)))
            .collect();
        // The deadline: nothing changes.
        let t = Instant::now();
        assert_eq!(
            futex_wait_many(&refs, Some(t + Duration::from_millis(20))),
            Ok(None)
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        // A word that no longer holds its value: at once.
        let stale = [(&words[0], 7u32), (&words[1], 1)];
        assert_eq!(futex_wait_many(&stale, None), Ok(None));
        // A wake on the second word from another thread: its index.
        std::thread::scope(|s| {
            let w = &words[2];
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                w.store(9, std::sync::atomic::Ordering::Release);
                futex_wake(w, 1);
            });
            let r = futex_wait_many(&refs, Some(Instant::now() + Duration::from_secs(20)));
            assert!(matches!(r, Ok(Some(2)) | Ok(None)), "{r:?}");
            assert_eq!(words[2].load(std::sync::atomic::Ordering::Acquire), 9);
        });
        assert_eq!(futex_wait_many(&[], None), Err(Errno::EINVAL));
    }
}
