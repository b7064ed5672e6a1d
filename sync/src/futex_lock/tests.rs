//! Unit tests of the futex lock: the word's states, every word a peer may write (pure,
//! Miri runs them), and handles in one process.

use super::*;
use crate::sys::mapped_for_test as mapped;

#[test]
fn states_fit_in_the_slot_field() {
    const {
        assert!(MAX_HANDLES < ORPHANED && ORPHANED < NOT_RECOVERABLE);
        assert!(NOT_RECOVERABLE == SLOT_MASK);
        assert!(INCONSISTENT & SLOT_MASK == 0 && WAITERS & SLOT_MASK == 0);
        assert!(GEN_MASK & (SLOT_MASK | INCONSISTENT | WAITERS) == 0);
        assert!(GEN_MASK | SLOT_MASK | INCONSISTENT | WAITERS == u32::MAX);
        // A placement 2^40 bytes into a segment still has its bytes below i64::MAX.
        let last = LOCK_BYTES + (1u64 << 40) / 64 * BYTES_PER_PLACEMENT + 1023;
        assert!(last < i64::MAX as u64);
    }
}

/// Whatever a peer writes into the word, a lock with a passed deadline returns at once
/// with a typed outcome, and an unlock never takes a word that is not ours. Pure memory
/// (Miri runs it): the owner's liveness is a closure here.
#[test]
fn any_word_a_peer_writes_gives_typed_outcomes_at_once() {
    let passed = Deadline::after(Duration::ZERO);
    let me = 5;
    for start in [
        0,
        WAITERS,
        INCONSISTENT,
        me,
        me | WAITERS | INCONSISTENT,
        7,
        7 | WAITERS,
        ORPHANED,
        ORPHANED | WAITERS,
        NOT_RECOVERABLE,
        NOT_RECOVERABLE | WAITERS,
        MAX_HANDLES + 1,
        0x3ff0_0000,
        u32::MAX,
    ] {
        for alive in [true, false] {
            let word = AtomicU32::new(start);
            let owner = start & SLOT_MASK;
            let r = lock(&word, me, passed, |_| alive);
            let expected = match owner {
                0 => Ok(Acquired::Clean),
                NOT_RECOVERABLE => Err(NotTaken::NotRecoverable),
                ORPHANED => Ok(Acquired::OwnerDied),
                o if o == me => Err(NotTaken::Held),
                _ if alive => Err(NotTaken::Held),
                _ => Ok(Acquired::OwnerDied),
            };
            assert_eq!(r, expected, "word {start:#x}, alive {alive}");
            let now = word.load(Ordering::Relaxed);
            if r.is_ok() {
                assert_eq!(now & SLOT_MASK, me);
                assert_eq!(unlock(&word, me, true), Ok(()));
                assert_eq!(word.load(Ordering::Relaxed) & SLOT_MASK, 0);
            } else if owner != me {
                assert_eq!(unlock(&word, me, true), Err(now), "not ours: left alone");
            }
        }
    }
}

#[cfg_attr(miri, ignore = "opens /proc/self/fd and calls fcntl")]
#[test]
fn two_handles_exclude_each_other_and_a_dropped_owner_is_owner_died() {
    let seg = Segment::anonymous(4096).unwrap();
    let a = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    let b = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    assert_ne!(a.slot(), b.slot());
    assert_eq!(a.lock(Deadline::never()), Ok(Acquired::Clean));
    let start = Instant::now();
    assert_eq!(
        b.lock(Deadline::after(Duration::from_millis(30))),
        Err(NotTaken::Held)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    // `a` goes away holding the lock: its slot byte is free, so `b` takes it, dirty.
    drop(a);
    assert_eq!(
        b.lock(Deadline::after(Duration::ZERO)),
        Ok(Acquired::OwnerDied)
    );
    // Dropping the recovery unrepaired: not recoverable for everyone.
    assert_eq!(b.unlock(false), Ok(()));
    assert_eq!(b.lock(Deadline::never()), Err(NotTaken::NotRecoverable));
}

#[cfg_attr(miri, ignore = "opens /proc/self/fd and calls fcntl")]
#[test]
fn a_new_handle_in_a_gone_owners_slot_orphans_its_lock() {
    let seg = Segment::anonymous(4096).unwrap();
    let word: &AtomicU32 = seg.get(8).unwrap();
    let a = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    assert_eq!(a.lock(Deadline::never()), Ok(Acquired::Clean));
    let slot = a.slot();
    drop(a);
    // The next handle gets the same slot, and must not be taken for the dead owner.
    let c = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    assert_eq!(c.slot(), slot);
    assert_eq!(word.load(Ordering::Relaxed) & SLOT_MASK, ORPHANED);
    assert_eq!(c.lock(Deadline::never()), Ok(Acquired::OwnerDied));
    assert_eq!(c.make_consistent(), Ok(()));
    assert_eq!(c.unlock(true), Ok(()));
    assert_eq!(c.lock(Deadline::never()), Ok(Acquired::Clean));
}

#[cfg_attr(miri, ignore = "opens /proc/self/fd and calls fcntl")]
#[test]
fn an_unlock_of_a_word_a_peer_overwrote_is_reported_and_leaves_it() {
    let seg = Segment::anonymous(4096).unwrap();
    let word: &AtomicU32 = seg.get(8).unwrap();
    let a = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    assert_eq!(a.lock(Deadline::never()), Ok(Acquired::Clean));
    word.store(5 | WAITERS, Ordering::Relaxed);
    assert_eq!(a.unlock(true), Err(5 | WAITERS));
    assert_eq!(word.load(Ordering::Relaxed), 5 | WAITERS);
    assert_eq!(a.make_consistent(), Err(5 | WAITERS));
}

#[cfg_attr(miri, ignore = "opens /proc/self/fd and calls fcntl")]
#[test]
fn when_every_slot_is_claimed_attach_says_so() {
    let seg = Segment::anonymous(4096).unwrap();
    // One other description holding every slot byte stands for MAX_HANDLES handles.
    let others = ByteLocks::new(&seg).unwrap();
    for slot in 1..=MAX_HANDLES {
        assert!(others.try_lock(LOCK_BYTES + u64::from(slot)).unwrap());
    }
    match FutexLock::attach(&seg, 0, mapped(&seg, 8)) {
        Err(crate::Error::TooManyHandles { max }) => assert_eq!(max, MAX_HANDLES),
        other => panic!("{other:?}"),
    }
    others.unlock(LOCK_BYTES + 7).unwrap();
    assert_eq!(
        FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap().slot(),
        7
    );
}

#[cfg_attr(miri, ignore = "opens /proc/self/fd and calls fcntl")]
#[test]
fn placements_at_different_offsets_use_different_lock_bytes() {
    let seg = Segment::anonymous(4096).unwrap();
    let a = FutexLock::attach(&seg, 0, mapped(&seg, 8)).unwrap();
    let b = FutexLock::attach(&seg, 64, mapped(&seg, 64 + 8)).unwrap();
    assert_eq!(a.slot(), 1);
    assert_eq!(b.slot(), 1, "slot 1 of another placement is another byte");
}
