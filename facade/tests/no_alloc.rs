//! Sending and receiving allocate nothing per message: a counting global allocator watches
//! a loop over the ring and over the channel (both ends in this process).
#![cfg(all(feature = "shm", feature = "sync"))]
// The counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use ipcraft::channel::{Receiver, Sender};
use ipcraft::ring::{HeapRing, split};
use ipcraft_core::Deadline;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY:
// - Every method forwards to `System` with the caller's arguments unchanged, so `System`'s
//   guarantees are ours; counting touches only a thread-local `Cell` (no allocation).
unsafe impl GlobalAlloc for Counting {
    /// Counts, then allocates with `System`.
    ///
    /// # Safety
    ///
    /// The caller upholds `GlobalAlloc::alloc`'s contract, passed through unchanged.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours, passed through unchanged.
        unsafe { System.alloc(layout) }
    }
    /// Frees with `System`.
    ///
    /// # Safety
    ///
    /// The caller upholds `GlobalAlloc::dealloc`'s contract, passed through unchanged.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn the_ring_allocates_nothing_per_message() {
    let mem = HeapRing::new(4096).unwrap();
    let (mut tx, mut rx) = split(&mem);
    let msg = [7u8; 100];
    let mut buf = [0u8; 128];
    let n = allocations_in(|| {
        for _ in 0..10_000 {
            tx.try_send(&msg).unwrap();
            assert_eq!(rx.try_recv_into(&mut buf).unwrap(), 100);
        }
    });
    assert_eq!(n, 0, "allocations in 10 000 round trips");
}

#[test]
fn the_channel_allocates_nothing_per_message() {
    let (mut tx, fd) = Sender::anonymous(1 << 16).unwrap();
    let mut rx = Receiver::from_fd(fd).unwrap();
    let msg = [3u8; 1000];
    let mut buf = vec![0u8; 1024];
    let deadline = Deadline::after(Duration::from_secs(30));
    let n = allocations_in(|| {
        for _ in 0..10_000 {
            tx.send_deadline(&msg, deadline).unwrap();
            assert_eq!(rx.recv_into_deadline(&mut buf, deadline).unwrap(), 1000);
        }
    });
    assert_eq!(n, 0, "allocations in 10 000 round trips");
}

#[test]
fn the_zero_copy_path_allocates_nothing_per_message() {
    let (mut tx, fd) = Sender::anonymous(1 << 16).unwrap();
    let mut rx = Receiver::from_fd(fd).unwrap();
    let msg = [5u8; 1000];
    let mut buf = [0u8; 1000];
    let n = allocations_in(|| {
        for i in 0..10_000usize {
            let mut slot = tx.reserve(1000).unwrap();
            assert_eq!(slot.write_at(0, &msg), 1000);
            slot.commit();
            let slot = rx.recv_slot().unwrap();
            assert_eq!(slot.read_at(0, &mut buf), 1000);
            slot.release();
            // And batches: three staged, one flush; three consumed, one flush.
            if i % 100 == 0 {
                for _ in 0..3 {
                    let mut slot = tx.reserve(8).unwrap();
                    slot.write_at(0, &i.to_le_bytes());
                    slot.stage();
                }
                tx.flush();
                for _ in 0..3 {
                    rx.recv_slot().unwrap().consume();
                }
                rx.flush();
            }
        }
    });
    assert_eq!(n, 0, "allocations in 10 000 zero-copy round trips");
}
