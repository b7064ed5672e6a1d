//! [`HeapRing`]: ring memory on the heap, in 64-bit atomic words, so that loom and Miri can
//! check the ring algorithm (loom's atomics cannot live in shared memory).

use super::spsc::RingMemory;
use crate::loom::atomic::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// Ring memory on the heap: positions (each on its own cache line) and data as atomic
/// words.
#[derive(Debug)]
pub struct HeapRing {
    producer: CachePadded<AtomicU64>,
    consumer: CachePadded<AtomicU64>,
    words: Vec<AtomicU64>,
}

impl HeapRing {
    /// A ring of `capacity` data bytes (a power of two, at least 16), or `None`.
    pub fn new(capacity: usize) -> Option<Self> {
        if !capacity.is_power_of_two() || capacity < 16 {
            return None;
        }
        Some(Self {
            producer: CachePadded::new(AtomicU64::new(0)),
            consumer: CachePadded::new(AtomicU64::new(0)),
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Overwrite a word of the data area (for tests of a hostile peer).
    #[doc(hidden)]
    pub fn scribble(&self, word: usize, value: u64) {
        if let Some(w) = self.words.get(word) {
            w.store(value, Ordering::Relaxed);
        }
    }

    /// Overwrite the producer's or consumer's position (for tests of a hostile peer).
    #[doc(hidden)]
    pub fn scribble_position(&self, producer: bool, value: u64) {
        let p = if producer {
            &self.producer
        } else {
            &self.consumer
        };
        p.store(value, Ordering::Release);
    }
}

impl RingMemory for HeapRing {
    fn capacity(&self) -> usize {
        self.words.len() * 8
    }

    fn load_position(&self, producer: bool) -> u64 {
        let p = if producer {
            &self.producer
        } else {
            &self.consumer
        };
        p.load(Ordering::Acquire)
    }

    fn store_position(&self, producer: bool, value: u64) {
        let p = if producer {
            &self.producer
        } else {
            &self.consumer
        };
        p.store(value, Ordering::Release);
    }

    fn write_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.words.get(offset / 8) {
            w.store(value, Ordering::Relaxed);
        }
    }

    fn read_word(&self, offset: usize) -> u64 {
        self.words
            .get(offset / 8)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    fn commit_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.words.get(offset / 8) {
            w.store(value, Ordering::Release);
        }
    }

    fn poll_word(&self, offset: usize) -> u64 {
        self.words
            .get(offset / 8)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
}
