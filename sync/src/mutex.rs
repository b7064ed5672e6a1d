//! [`Mutex`]: a robust, process-shared mutex and the plain data it protects, in shared memory,
//! of one of two [kinds](MutexKind).
//!
//! Two `unsafe` blocks here: making the pthread kind's [`RawMutex`] handle in `raw_mutex`,
//! and the futex kind's [`MappedWord`] in `assemble`, each after checking bounds and
//! alignment against the `Segment`; their notes say why the mapping outlives them.

#![allow(unsafe_code)]
#![allow(clippy::disallowed_types)] // The state word lives in shared memory, where loom's atomics cannot.

use crate::error::{Error, Result};
use crate::futex_lock::{FutexLock, NotTaken};
use crate::guard::{Fail, LockError, MutexGuard};
use crate::once::{OnceError, Outcome, init_once, wait_ready};
use crate::sys::{Acquired, MUTEX_ALIGN, MUTEX_SIZE, MappedWord, RawMutex};
use ipcraft_core::{Deadline, SysError, TrustedOwners};
use ipcraft_shm::{Segment, SegmentOptions};
use nix::errno::Errno;
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use zerocopy::{FromBytes, Immutable, IntoBytes};

mod options;
pub use options::MutexOptions;

/// Plain data a [`Mutex`] can protect: valid for any bit pattern (a crash or a peer can leave
/// any bytes), no padding, no pointers, no `Drop`. Derive zerocopy's `FromBytes`,
/// `IntoBytes` and `Immutable` on a `#[repr(C)]` struct of integers, and `Clone, Copy`.
pub trait Plain: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> Plain for T {}

/// Offsets inside a placement: state word, layout word, the lock (a `pthread_mutex_t`, or the
/// futex kind's lock word), then the data.
const LAYOUT_OFFSET: usize = 4;
const MUTEX_OFFSET: usize = 8;
const PLACEMENT_ALIGN: usize = 64;
/// How long an in-place open waits for another process's initialization, by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which lock a [`Mutex`] is built on. Both report a dead owner as
/// [`LockError::OwnerDied`] and have the same API; they differ in what they trust.
///
/// | | [`Futex`](Self::Futex) (default) | [`Pthread`](Self::Pthread) |
/// |---|---|---|
/// | shared state | one plain 32-bit word | glibc's `pthread_mutex_t` |
/// | owner death | the kernel drops the owner's file lock; waiters see it within 100 ms | the kernel's robust list; at once |
/// | a peer scribbling over it | wrong results (`OwnerDied`, `NotRecoverable`, or two holders) but never a crash, a hang or a late return | can make glibc write through the peer's pointers (a crash) |
/// | priority inheritance | no | yes ([`MutexOptions::priority_inheritance`]) |
/// | C interop | no | a C program can lock the `pthread_mutex_t` |
/// | handles per mutex | [`MAX_HANDLES`](crate::MAX_HANDLES) in all processes | unlimited |
/// | a handle inherited over `fork` | refuses to lock in the child (attach again) | per thread, as glibc makes it |
///
/// Use the futex kind unless you need priority inheritance or a C peer, and share a
/// pthread-kind mutex only with processes you trust not to write into it.
///
/// Creating, placing, opening and attaching all take the kind from [`MutexOptions::kind`]
/// (the futex kind by default), never from the segment: a mutex of another kind is
/// [`Error::WrongLayout`] (in place) or a `WrongTag` segment error (named). A peer that could
/// make us take its bytes for a pthread mutex could make glibc write through its pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MutexKind {
    /// A lock word of our own and a file lock per handle: trusts no peer.
    #[default]
    Futex,
    /// glibc's robust, process-shared pthread mutex: trusts every peer that can write it.
    Pthread,
}

impl MutexKind {
    /// The version nibble of the layout word.
    const fn version(self) -> u32 {
        match self {
            Self::Pthread => 1,
            Self::Futex => 2,
        }
    }
}

/// Sleep a little (doubling up to 10 ms) unless `deadline` has passed; `false` to give up.
fn backoff(pause: &mut Duration, deadline: Deadline) -> bool {
    if deadline.has_passed() {
        return false;
    }
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(10));
    true
}

/// Where the data of a `Mutex<T>` starts in its placement.
pub(crate) const fn data_offset<T>() -> usize {
    let after = MUTEX_OFFSET + MUTEX_SIZE;
    let align = std::mem::align_of::<T>();
    after.div_ceil(align) * align
}

/// Bytes a `Mutex<T>` takes in a segment (place it at a multiple of 64), of either kind.
pub const fn footprint<T>() -> usize {
    data_offset::<T>() + std::mem::size_of::<T>()
}

/// A word naming the type's layout (size, alignment) and the kind, checked when opening.
const fn layout_word<T>(kind: MutexKind) -> u32 {
    let size = std::mem::size_of::<T>() as u32;
    let align = std::mem::align_of::<T>().trailing_zeros();
    // The kind in the top bits, alignment as a power of two, size in the low 24 bits.
    (kind.version() << 28) | (align << 24) | (size & 0x00ff_ffff)
}

/// "ipcraft-sync mutex" marker in the high half of a named mutex's segment tag.
const TAG_MARKER: u64 = 0x1bc5_3a7e_u64 << 32;

const fn segment_tag<T>(kind: MutexKind) -> u64 {
    TAG_MARKER | layout_word::<T>(kind) as u64
}

/// The lock under a [`Mutex`], of its kind.
#[derive(Debug)]
pub(crate) enum Lock {
    Pthread(RawMutex),
    Futex(FutexLock),
}

impl Lock {
    /// Lock until `deadline` (passed: one try).
    #[inline]
    pub(crate) fn lock(&self, deadline: Deadline) -> std::result::Result<Acquired, Fail> {
        match self {
            Self::Futex(f) => f.lock(deadline).map_err(|e| match e {
                NotTaken::NotRecoverable => Fail::NotRecoverable,
                NotTaken::Held => Fail::TimedOut,
                NotTaken::Inherited => Fail::Sys(SysError::new(
                    "lock (a futex-kind Mutex handle inherited over fork: attach again in the \
                     child)",
                    Errno::EPERM,
                )),
            }),
            Self::Pthread(raw) => {
                let (op, result) = match deadline.instant() {
                    None => ("pthread_mutex_lock", raw.lock()),
                    Some(at) => ("pthread_mutex_clocklock", raw.lock_until(at)),
                };
                result.map_err(|e| match e {
                    Errno::ETIMEDOUT => Fail::TimedOut,
                    Errno::ENOTRECOVERABLE => Fail::NotRecoverable,
                    e => Fail::Sys(SysError::new(op, e)),
                })
            }
        }
    }

    /// Unlock; `repaired` is false for a recovery given up.
    #[inline]
    pub(crate) fn unlock(&self, repaired: bool) -> std::result::Result<(), SysError> {
        match self {
            Self::Futex(f) => f.unlock(repaired).map_err(|_| not_owner("unlock")),
            // A robust pthread mutex unlocked with its state inconsistent becomes not
            // recoverable by itself.
            Self::Pthread(raw) => raw
                .unlock()
                .map_err(|e| SysError::new("pthread_mutex_unlock", e)),
        }
    }

    pub(crate) fn make_consistent(&self) -> std::result::Result<(), SysError> {
        match self {
            Self::Futex(f) => f
                .make_consistent()
                .map_err(|_| not_owner("make_consistent")),
            Self::Pthread(raw) => raw
                .make_consistent()
                .map_err(|e| SysError::new("pthread_mutex_consistent", e)),
        }
    }
}

/// The error for an unlock or repair that found the lock not naming this holder.
fn not_owner(op: &'static str) -> SysError {
    SysError::new(op, Errno::EPERM)
}

/// A robust process-shared mutex and the plain data `T` it protects, in shared memory.
///
/// `S` is where the segment is held: owned (`Mutex<T>`, from [`Mutex::create`] /
/// [`Mutex::open`], a named segment of its own) or borrowed (`Mutex<T, &Segment>`, from
/// [`Mutex::in_segment`], placed inside a segment of yours).
///
/// Locking returns a [`MutexGuard`] that reads and writes `T` by copy ([`MutexGuard::get`],
/// [`MutexGuard::set`], [`MutexGuard::update`]): no reference into memory another process
/// can write is ever handed out. The guard borrows the mutex, which borrows or owns the
/// mapping, so the mapping cannot be unmapped while the lock is held (a robust mutex unmapped
/// by its owner stays locked forever).
///
/// When a process dies holding the lock, the next locker gets
/// [`LockError::OwnerDied`] with a [`Recovery`](crate::Recovery) guard: repair the data, then
/// [`Recovery::make_consistent`](crate::Recovery::make_consistent); dropping the recovery
/// instead leaves the mutex permanently [`LockError::NotRecoverable`] for everyone, rather
/// than deadlocked.
///
/// Two [kinds](MutexKind): the futex kind (default) trusts no peer; the pthread kind offers
/// priority inheritance and C interop, and trusts every process that can write it.
///
/// # Examples
///
/// ```
/// use ipcraft_sync::Mutex;
///
/// let name = format!("/ipcraft-doc-mutex-{}", std::process::id());
/// let m = Mutex::create(&name, 0u64)?;
/// // Another process: Mutex::<u64>::open(&name)
/// m.lock().unwrap().update(|n| *n += 1);
/// assert_eq!(m.lock().unwrap().get(), 1);
/// # Ok::<(), ipcraft_sync::Error>(())
/// ```
#[doc(alias = "pthread_mutex_t")]
pub struct Mutex<T, S = Segment>
where
    S: Borrow<Segment>,
{
    seg: S,
    offset: usize,
    lock: Lock,
    _data: PhantomData<fn() -> T>,
}

impl<T: Plain> Mutex<T> {
    /// Create a named segment holding a new mutex of the default kind protecting `value`
    /// (mode 0600).
    ///
    /// # Errors
    ///
    /// [`Error::Shm`] (bad name, already exists, ...); [`Error::Sys`] from
    /// `pthread_mutex_init` or from claiming a slot (`open`, `fcntl`).
    pub fn create(name: &str, value: T) -> Result<Self> {
        MutexOptions::new().create(name, value)
    }

    /// Open the named mutex (of the futex kind) another process created, if its owner
    /// is this user or root (checked on the descriptor; [`MutexOptions::trust`] widens it).
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`] when another user owns it; [`Error::Shm`] with `WrongTag` when
    /// the segment holds another type or layout, or `NotFound`, `NotIpcraft`, ...;
    /// [`Error::TooManyHandles`].
    pub fn open(name: &str) -> Result<Self> {
        MutexOptions::new().open(name)
    }
}

impl<'a, T: Plain> Mutex<T, &'a Segment> {
    /// Place a mutex (of the default kind) protecting `value` at `offset` in `seg` (a
    /// multiple of 64, with [`footprint::<T>()`](footprint) bytes), or attach to the one
    /// already there (of the futex kind too): initialized exactly once even when processes race,
    /// others waiting up to [`DEFAULT_INIT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`]; [`Error::Shm`] (`OutOfBounds`, `ReadOnly`);
    /// [`Error::WrongLayout`] when another type is there; [`Error::NotReady`];
    /// [`Error::TooManyHandles`].
    pub fn in_segment(seg: &'a Segment, offset: usize, value: T) -> Result<Self> {
        MutexOptions::new().in_segment(seg, offset, value)
    }
}

/// Check that a placement of `T` at `offset` fits in `seg`, is aligned and writable.
fn check_placement<T>(seg: &Segment, offset: usize) -> Result<()> {
    if !offset.is_multiple_of(PLACEMENT_ALIGN) {
        return Err(Error::Misaligned { offset });
    }
    let end = offset.checked_add(footprint::<T>());
    if end.is_none_or(|end| end > seg.len()) {
        return Err(Error::Shm(ipcraft_shm::Error::OutOfBounds {
            offset,
            len: footprint::<T>(),
            size: seg.len(),
        }));
    }
    // Writable (get refuses read-only mappings); the words are in bounds and aligned.
    seg.get::<AtomicU32>(offset)?;
    seg.get::<AtomicU32>(offset + MUTEX_OFFSET)?;
    let at = seg.as_ptr().wrapping_add(offset + MUTEX_OFFSET);
    if !(at as usize).is_multiple_of(MUTEX_ALIGN) {
        return Err(Error::Misaligned { offset });
    }
    Ok(())
}

/// The pthread kind's handle on the `pthread_mutex_t` of the placement at `offset`, which
/// [`check_placement`] accepted.
fn raw_mutex<T>(seg: &Segment, offset: usize) -> Result<RawMutex> {
    check_placement::<T>(seg, offset)?;
    let at = seg.as_ptr().wrapping_add(offset + MUTEX_OFFSET);
    let ptr = NonNull::new(at).ok_or(Error::Misaligned { offset })?;
    // SAFETY:
    // - `ptr` points MUTEX_OFFSET bytes into a placement of footprint::<T>() bytes that lies
    //   inside `seg`'s data area, aligned for pthread_mutex_t (check_placement, just above),
    //   so MUTEX_SIZE bytes are in bounds.
    // - The mapping stays mapped while the RawMutex is used: it is used either within this
    //   borrow of `seg` (initialization in `place`), or kept in a `Mutex` next to the `S`
    //   that owns or borrows this very Segment, and ipcraft-shm never unmaps a Segment it can
    //   still be reached through (`grow` needs `&mut Segment`, impossible while that
    //   ownership or borrow lasts).
    // - Those bytes are touched only through RawMutex: ipcraft-sync never copies over the
    //   lock area (data starts at data_offset::<T>() >= MUTEX_OFFSET + MUTEX_SIZE), and a
    //   pthread placement is never used as a futex one (its layout word says its kind).
    Ok(unsafe { RawMutex::new(ptr.cast()) })
}

impl<T: Plain, S: Borrow<Segment>> Mutex<T, S> {
    /// Initialize at `offset` if nobody has, else attach (the protocol is in `once.rs`,
    /// checked by loom).
    fn place(
        seg: S,
        offset: usize,
        value: T,
        options: &MutexOptions,
        deadline: Deadline,
    ) -> Result<Self> {
        let result = {
            let s = seg.borrow();
            check_placement::<T>(s, offset)?;
            let state: &AtomicU32 = s.get(offset)?;
            let layout: &AtomicU32 = s.get(offset + LAYOUT_OFFSET)?;
            let mut pause = Duration::from_micros(100);
            init_once(
                state,
                || {
                    match options.kind {
                        MutexKind::Pthread => raw_mutex::<T>(s, offset)?
                            .init(options.priority_inheritance)
                            .map_err(|e| Error::Sys(SysError::new("pthread_mutex_init", e)))?,
                        MutexKind::Futex => s
                            .get::<AtomicU32>(offset + MUTEX_OFFSET)?
                            .store(0, Ordering::Relaxed),
                    }
                    s.write(offset + data_offset::<T>(), &value)?;
                    layout.store(layout_word::<T>(options.kind), Ordering::Relaxed);
                    Ok(())
                },
                || backoff(&mut pause, deadline),
            )
        };
        match result {
            Ok(Outcome::Initialized | Outcome::Attached) => {
                Self::assemble(seg, offset, options.kind)
            }
            Err(OnceError::Init(e)) => Err(e),
            Err(OnceError::NotReady) => Err(Error::NotReady),
            Err(OnceError::Foreign(found)) => Err(Self::wrong_layout(found, options.kind)),
        }
    }

    /// Attach to a mutex of `kind` another process placed (waiting for its initialization).
    fn attach(seg: S, offset: usize, deadline: Deadline, kind: MutexKind) -> Result<Self> {
        check_placement::<T>(seg.borrow(), offset)?;
        let mut pause = Duration::from_micros(100);
        let ready = wait_ready(seg.borrow().get::<AtomicU32>(offset)?, || {
            backoff(&mut pause, deadline)
        });
        match ready {
            Ok(()) => Self::assemble(seg, offset, kind),
            Err(OnceError::Foreign(found)) => Err(Self::wrong_layout(found, kind)),
            Err(_) => Err(Error::NotReady),
        }
    }

    fn wrong_layout(found: u32, kind: MutexKind) -> Error {
        Error::WrongLayout {
            found,
            expected: layout_word::<T>(kind),
        }
    }

    /// Check that a ready placement holds a `T` behind a lock of `kind` (its layout word),
    /// and make this handle's lock: the pthread handle, or a claimed futex slot.
    ///
    /// The kind is the one asked for, never the one the layout word names: a peer can write
    /// that word, and one that switched a futex mutex to the pthread kind could make us call
    /// glibc on a `pthread_mutex_t` it forged.
    fn assemble(seg: S, offset: usize, kind: MutexKind) -> Result<Self> {
        let s = seg.borrow();
        // Ready was seen with acquire: the initializer's layout word is visible.
        let found = s
            .get::<AtomicU32>(offset + LAYOUT_OFFSET)?
            .load(Ordering::Relaxed);
        if found != layout_word::<T>(kind) {
            return Err(Self::wrong_layout(found, kind));
        }
        let lock = match kind {
            MutexKind::Pthread => Lock::Pthread(raw_mutex::<T>(s, offset)?),
            MutexKind::Futex => {
                let word: &AtomicU32 = s.get(offset + MUTEX_OFFSET)?;
                // SAFETY:
                // - `word` is a bounds-checked, aligned word of `s`'s mapping. The
                //   MappedWord lives in the returned Mutex next to the `S` that owns or
                //   borrows this very Segment, which ipcraft-shm never unmaps while it can
                //   be reached (`grow` needs `&mut Segment`).
                // - No `&mut` to segment bytes is ever formed (ipcraft-shm hands out atomics
                //   by shared reference only).
                let word = unsafe { MappedWord::new(word) };
                Lock::Futex(FutexLock::attach(s, offset, word)?)
            }
        };
        Ok(Self {
            seg,
            offset,
            lock,
            _data: PhantomData,
        })
    }

    fn lock_until(
        &self,
        deadline: Deadline,
    ) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        let seg = self.seg.borrow();
        let how = self.lock.lock(deadline)?;
        MutexGuard::new(&self.lock, seg, self.offset).acquired(how)
    }

    /// Block until the lock is acquired.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (the lock is then held, through a
    /// [`Recovery`](crate::Recovery)); [`LockError::NotRecoverable`]; [`LockError::Sys`].
    #[doc(alias = "pthread_mutex_lock")]
    #[inline]
    pub fn lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_until(Deadline::never())
    }

    /// Acquire the lock if it is free now. A lock held by a dead owner is taken
    /// ([`LockError::OwnerDied`]), for both kinds.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when it is held; otherwise as [`lock`](Self::lock).
    #[doc(alias = "pthread_mutex_trylock")]
    pub fn try_lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        // The pthread kind does not use pthread_mutex_trylock: on a robust mutex that is
        // not recoverable, glibc's trylock reports ENOTRECOVERABLE but leaves the lock word
        // claimed by this thread, so every later lock from it waits (seen with glibc 2.36).
        // clocklock with a deadline already past tries once, reports the same states, and
        // leaves the word alone.
        match self.lock_until(Deadline::at(std::time::Instant::now())) {
            Err(LockError::TimedOut) => Err(LockError::WouldBlock),
            other => other,
        }
    }

    /// Acquire the lock, waiting at most `timeout` (on the monotonic clock).
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`]; otherwise as [`lock`](Self::lock).
    #[doc(alias = "pthread_mutex_clocklock")]
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_until(Deadline::after(timeout))
    }

    /// Acquire the lock, waiting at most until `deadline` (for the pthread kind,
    /// `pthread_mutex_clocklock` on `CLOCK_MONOTONIC`). Returns by the deadline whatever a
    /// peer writes into the futex kind's word.
    ///
    /// # Errors
    ///
    /// [`LockError::TimedOut`]; otherwise as [`lock`](Self::lock).
    pub fn lock_deadline(
        &self,
        deadline: Deadline,
    ) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_until(deadline)
    }

    /// Which kind of lock this is (chosen by whoever placed it).
    pub fn kind(&self) -> MutexKind {
        match self.lock {
            Lock::Pthread(_) => MutexKind::Pthread,
            Lock::Futex(_) => MutexKind::Futex,
        }
    }

    /// The segment holding the mutex.
    pub fn segment(&self) -> &Segment {
        self.seg.borrow()
    }
}

impl<T, S: Borrow<Segment>> fmt::Debug for Mutex<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.lock {
            Lock::Pthread(_) => "Pthread".to_owned(),
            Lock::Futex(f) => format!("Futex(slot {})", f.slot()),
        };
        f.debug_struct("Mutex")
            .field("segment", &self.seg.borrow().name())
            .field("offset", &self.offset)
            .field("kind", &kind)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_words_differ_by_type_and_kind() {
        let (f, p) = (MutexKind::Futex, MutexKind::Pthread);
        assert_ne!(layout_word::<u64>(f), layout_word::<u32>(f));
        assert_ne!(layout_word::<[u8; 8]>(f), layout_word::<u64>(f));
        assert_ne!(layout_word::<u64>(f), layout_word::<u64>(p));
        assert_eq!(
            layout_word::<u64>(f) & 0x0fff_ffff,
            layout_word::<u64>(p) & 0x0fff_ffff
        );
        assert_eq!(data_offset::<u64>(), 48);
        assert_eq!(footprint::<u64>(), 56);
    }
}
