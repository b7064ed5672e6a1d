//! The single-producer single-consumer ring: [`Producer`] and [`Consumer`] over any
//! [`RingMemory`].

use super::{PAD_FLAG, RECORD_HEADER, record_size};
use std::fmt;

/// Where a ring lives: two positions and a data area of 64-bit words. Implemented on the
/// heap by [`super::HeapRing`]; shared memory comes next.
pub trait RingMemory {
    /// Bytes of the data area: a power of two, at least 16.
    fn capacity(&self) -> usize;
    /// Load the producer's (`true`) or consumer's position, with acquire ordering.
    fn load_position(&self, producer: bool) -> u64;
    /// Store a position, with release ordering.
    fn store_position(&self, producer: bool, value: u64);
    /// Write the data word at byte `offset` (a multiple of 8, below the capacity).
    fn write_word(&self, offset: usize, value: u64);
    /// Read the data word at byte `offset` (a multiple of 8, below the capacity).
    fn read_word(&self, offset: usize) -> u64;

    /// Write `src` at byte `offset` (a multiple of 8; `offset + src.len()` rounded up to 8
    /// is at most the capacity), in a window the protocol gives the writer alone. By default
    /// word by word; shared memory overrides it with one copy.
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let mut at = offset;
        for chunk in src.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_word(at, u64::from_le_bytes(word));
            at += 8;
        }
    }

    /// Read `dst.len()` bytes at byte `offset` (as for [`write_bytes`](Self::write_bytes)).
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let mut at = offset;
        for chunk in dst.chunks_mut(8) {
            let word = self.read_word(at).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
            at += 8;
        }
    }
}

/// Why a ring operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// No room now; nothing was written (the caller still has the message).
    Full,
    /// Nothing to read now.
    Empty,
    /// A message larger than the ring can ever hold.
    TooLarge {
        /// Its length.
        len: usize,
        /// The largest message this ring accepts ([`max_message_len`]).
        max: usize,
    },
    /// The receive buffer is smaller than the next message, which stays in the ring.
    BufferTooSmall {
        /// The next message's length.
        needed: usize,
    },
    /// The ring's positions or records break the protocol (a buggy or hostile peer); the
    /// ring cannot be used any further.
    Corrupted(&'static str),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("the ring is full"),
            Self::Empty => f.write_str("the ring is empty"),
            Self::TooLarge { len, max } => write!(
                f,
                "a message of {len} bytes can never fit: this ring takes at most {max} bytes"
            ),
            Self::BufferTooSmall { needed } => {
                write!(
                    f,
                    "the next message has {needed} bytes, more than the buffer holds"
                )
            }
            Self::Corrupted(what) => write!(f, "the ring is corrupted: {what}"),
        }
    }
}

impl std::error::Error for RingError {}

/// The largest message a ring of `capacity` bytes accepts: one record filling the ring.
pub const fn max_message_len(capacity: usize) -> usize {
    capacity.saturating_sub(RECORD_HEADER)
}

impl<M: RingMemory + ?Sized> RingMemory for &M {
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn load_position(&self, producer: bool) -> u64 {
        (**self).load_position(producer)
    }
    fn store_position(&self, producer: bool, value: u64) {
        (**self).store_position(producer, value);
    }
    fn write_word(&self, offset: usize, value: u64) {
        (**self).write_word(offset, value);
    }
    fn read_word(&self, offset: usize) -> u64 {
        (**self).read_word(offset)
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        (**self).write_bytes(offset, src);
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        (**self).read_bytes(offset, dst);
    }
}

/// The two ends of a ring, in one process (for tests and threads).
pub fn split<M: RingMemory>(memory: &M) -> (Producer<&M>, Consumer<&M>) {
    (Producer::attach(memory), Consumer::attach(memory))
}

/// The writing end. Only one may exist per ring.
#[derive(Debug)]
pub struct Producer<M: RingMemory> {
    mem: M,
    cap: usize,
    /// Bytes written and published so far.
    pos: u64,
    /// The consumer's position when last loaded.
    cached_consumer: u64,
}

impl<M: RingMemory> Producer<M> {
    /// The writing end of the ring in `mem`, carrying on from its current positions.
    pub fn attach(mem: M) -> Self {
        let cap = mem.capacity();
        let pos = mem.load_position(true);
        let cached_consumer = mem.load_position(false);
        Self {
            mem,
            cap,
            pos,
            cached_consumer,
        }
    }

    /// The ring memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Append one message and publish it.
    ///
    /// A message that would wrap needs the consumer to pass the end of the lap first, so
    /// `Full` can be reported while only padding is queued; the consumer's next receive
    /// (which then reports `Empty`) releases it.
    ///
    /// # Errors
    ///
    /// [`RingError::TooLarge`]; [`RingError::Full`] (nothing written); [`RingError::Corrupted`]
    /// when the consumer's position is impossible.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), RingError> {
        self.write(msg)?;
        self.mem.store_position(true, self.pos);
        Ok(())
    }

    /// Append as many of `msgs` as fit, publishing them with one store; returns how many.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), for the first message only (later ones that do not
    /// fit end the batch).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, RingError> {
        let mut sent = 0;
        for msg in msgs {
            match self.write(msg) {
                Ok(()) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        self.mem.store_position(true, self.pos);
        Ok(sent)
    }

    /// Write one record after the published position (not yet published).
    fn write(&mut self, msg: &[u8]) -> Result<(), RingError> {
        let max = max_message_len(self.cap);
        if msg.len() > max || u32::try_from(msg.len()).is_err() {
            return Err(RingError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let need = record_size(msg.len());
        if !self.pos.is_multiple_of(8) {
            return Err(RingError::Corrupted("producer position not 8-aligned"));
        }
        let mut off = self.offset();
        let to_end = self.cap - off;
        if need > to_end {
            // The record would wrap: pad to the end of the lap first (and publish the pad, so
            // the consumer can release it and make room at the start).
            self.room_for(to_end)?;
            self.mem
                .write_word(off, PAD_FLAG | (to_end - RECORD_HEADER) as u64);
            self.pos += to_end as u64;
            self.mem.store_position(true, self.pos);
            off = 0;
        }
        self.room_for(need)?;
        self.mem.write_bytes(off + RECORD_HEADER, msg);
        self.mem.write_word(off, msg.len() as u64);
        self.pos += need as u64;
        Ok(())
    }

    fn offset(&self) -> usize {
        (self.pos % self.cap as u64) as usize
    }

    /// Whether `bytes` fit after the current position, reloading the consumer's position
    /// only when the cached one says they do not.
    fn room_for(&mut self, bytes: usize) -> Result<(), RingError> {
        let free = |cons: u64, pos: u64, cap: usize| cap as u64 - (pos - cons);
        if free(self.cached_consumer, self.pos, self.cap) >= bytes as u64 {
            return Ok(());
        }
        let cons = self.mem.load_position(false);
        if cons > self.pos || self.pos - cons > self.cap as u64 || !cons.is_multiple_of(8) {
            return Err(RingError::Corrupted("consumer position out of range"));
        }
        self.cached_consumer = cons;
        if free(cons, self.pos, self.cap) >= bytes as u64 {
            Ok(())
        } else {
            Err(RingError::Full)
        }
    }
}

/// The reading end. Only one may exist per ring.
#[derive(Debug)]
pub struct Consumer<M: RingMemory> {
    mem: M,
    cap: usize,
    /// Bytes consumed and released so far.
    pos: u64,
    /// The producer's position when last loaded.
    cached_producer: u64,
}

impl<M: RingMemory> Consumer<M> {
    /// The reading end of the ring in `mem`, carrying on from its current positions.
    pub fn attach(mem: M) -> Self {
        let cap = mem.capacity();
        let pos = mem.load_position(false);
        let cached_producer = pos;
        Self {
            mem,
            cap,
            pos,
            cached_producer,
        }
    }

    /// The ring memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Copy the next message into `buf` and release it; returns its length.
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::BufferTooSmall`] (the message stays);
    /// [`RingError::Corrupted`].
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let (off, len, need) = self.next_record()?;
        if buf.len() < len {
            return Err(RingError::BufferTooSmall { needed: len });
        }
        self.copy_out(off, &mut buf[..len]);
        self.pos += need as u64;
        self.mem.store_position(false, self.pos);
        Ok(len)
    }

    /// The next message as a vector, released.
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::Corrupted`].
    pub fn try_recv_vec(&mut self) -> Result<Vec<u8>, RingError> {
        let (off, len, need) = self.next_record()?;
        let mut v = vec![0; len];
        self.copy_out(off, &mut v);
        self.pos += need as u64;
        self.mem.store_position(false, self.pos);
        Ok(v)
    }

    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.mem.read_bytes(off + RECORD_HEADER, dst);
    }

    /// Find the next record, skipping (and releasing) at most one padding record:
    /// `(offset, payload length, record size)`, every field validated.
    fn next_record(&mut self) -> Result<(usize, usize, usize), RingError> {
        for _ in 0..2 {
            if self.pos == self.cached_producer {
                let prod = self.mem.load_position(true);
                if prod < self.pos || prod - self.pos > self.cap as u64 || !prod.is_multiple_of(8) {
                    return Err(RingError::Corrupted("producer position out of range"));
                }
                self.cached_producer = prod;
                if prod == self.pos {
                    return Err(RingError::Empty);
                }
            }
            let off = (self.pos % self.cap as u64) as usize;
            let to_end = self.cap - off;
            let available = self.cached_producer - self.pos;
            let header = self.mem.read_word(off);
            if header & PAD_FLAG != 0 {
                let pad = (header & 0xffff_ffff) as usize;
                if header >> 33 != 0 || pad + RECORD_HEADER != to_end || off == 0 {
                    return Err(RingError::Corrupted("padding record does not end the lap"));
                }
                if to_end as u64 > available {
                    return Err(RingError::Corrupted("padding past the producer's position"));
                }
                self.pos += to_end as u64;
                self.mem.store_position(false, self.pos);
                continue;
            }
            if header >> 32 != 0 {
                return Err(RingError::Corrupted("unknown record flags"));
            }
            let len = header as usize;
            let need = record_size(len);
            if need > to_end || need as u64 > available {
                return Err(RingError::Corrupted("record length out of range"));
            }
            return Ok((off, len, need));
        }
        Err(RingError::Corrupted("two padding records in a row"))
    }
}

// Plain tests run without loom: under `--cfg ipcraft_loom` the ring's atomics are loom's,
// usable only inside a loom model.
#[cfg(all(test, not(ipcraft_loom)))]
mod tests {
    use super::super::HeapRing;
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn messages_round_trip_across_the_wrap() {
        let mem = HeapRing::new(64).unwrap();
        let (mut tx, mut rx) = split(&mem);
        let mut buf = [0u8; 64];
        for i in 0..50u8 {
            let msg = vec![i; (i as usize * 7) % 40];
            if tx.try_send(&msg) == Err(RingError::Full) {
                // Only padding is queued: the consumer's next receive releases it.
                assert_eq!(rx.try_recv_into(&mut buf), Err(RingError::Empty));
                tx.try_send(&msg).unwrap();
            }
            let n = rx.try_recv_into(&mut buf).unwrap();
            assert_eq!(&buf[..n], &msg[..]);
        }
        assert_eq!(rx.try_recv_into(&mut buf), Err(RingError::Empty));
    }

    #[test]
    fn full_and_empty_edges_and_limits() {
        let mem = HeapRing::new(32).unwrap();
        let (mut tx, mut rx) = split(&mem);
        assert_eq!(max_message_len(32), 24);
        assert_eq!(
            tx.try_send(&[0; 25]),
            Err(RingError::TooLarge { len: 25, max: 24 })
        );
        tx.try_send(&[1; 24]).unwrap(); // fills the ring
        assert_eq!(tx.try_send(&[]), Err(RingError::Full));
        let mut small = [0u8; 4];
        assert_eq!(
            rx.try_recv_into(&mut small),
            Err(RingError::BufferTooSmall { needed: 24 })
        );
        assert_eq!(rx.try_recv_vec().unwrap(), vec![1; 24]);
        assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
        tx.try_send(&[]).unwrap();
        assert_eq!(rx.try_recv_vec().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_batch_is_published_with_one_store() {
        let mem = HeapRing::new(64).unwrap();
        let (mut tx, mut rx) = split(&mem);
        let sent = tx.try_send_batch(&[b"a", b"bb", b"ccc", &[9; 40]]).unwrap();
        assert_eq!(sent, 3, "the fourth does not fit and ends the batch");
        // Three 16-byte records, and the padding the fourth wrote before finding no room.
        assert_eq!(mem.load_position(true), 64);
        for want in [&b"a"[..], b"bb", b"ccc"] {
            assert_eq!(rx.try_recv_vec().unwrap(), want);
        }
    }

    #[test]
    fn hostile_positions_and_records_are_corruption_not_crashes() {
        let mem = HeapRing::new(64).unwrap();
        let (mut tx, mut rx) = split(&mem);
        tx.try_send(b"hello").unwrap();
        mem.scribble(0, 1_000_000); // record longer than the ring
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble(0, PAD_FLAG | 3); // padding in the wrong place
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble(0, 1 << 40); // unknown flags
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        let (mut tx2, mut rx2) = split(&mem);
        mem.scribble_position(true, u64::MAX);
        assert!(matches!(rx2.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble_position(false, 12345);
        tx2.try_send(&[0; 40]).unwrap(); // fits by the cached position: no reload yet
        assert!(matches!(
            tx2.try_send(&[0; 40]),
            Err(RingError::Corrupted(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The ring behaves like a bounded FIFO of messages (a VecDeque), whatever the
        /// sequence of sends and receives.
        #[test]
        fn behaves_like_a_queue(ops in prop::collection::vec((any::<bool>(), 0usize..60), 1..200)) {
            let mem = HeapRing::new(128).unwrap();
            let (mut tx, mut rx) = split(&mem);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for (i, (send, len)) in ops.into_iter().enumerate() {
                if send {
                    let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                    match tx.try_send(&msg) {
                        Ok(()) => model.push_back(msg),
                        Err(RingError::Full) if model.is_empty() => {
                            // Only padding is queued (the message would wrap): the next
                            // receive releases it and reports Empty.
                            prop_assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
                        }
                        Err(RingError::Full) => {}
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                } else {
                    match rx.try_recv_vec() {
                        Ok(got) => prop_assert_eq!(Some(got), model.pop_front()),
                        Err(RingError::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }
        }
    }
}

#[cfg(all(test, ipcraft_loom))]
mod loom_tests {
    use super::super::HeapRing;
    use super::*;
    use crate::loom::thread;
    use loom::sync::Arc;

    fn run(capacity: usize, msgs: &'static [&'static [u8]], batch: bool) {
        loom::model(move || {
            let mem = Arc::new(HeapRing::new(capacity).unwrap());
            let producer_mem = mem.clone();
            let t = thread::spawn(move || {
                let (mut tx, _) = split(&*producer_mem);
                let mut i = 0;
                while i < msgs.len() {
                    let r = if batch {
                        tx.try_send_batch(&msgs[i..])
                    } else {
                        tx.try_send(msgs[i]).map(|()| 1)
                    };
                    match r {
                        Ok(n) => i += n,
                        Err(RingError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            let (_, mut rx) = split(&*mem);
            let mut got = 0;
            while got < msgs.len() {
                match rx.try_recv_vec() {
                    Ok(v) => {
                        assert_eq!(v, msgs[got]);
                        got += 1;
                    }
                    Err(RingError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            t.join().unwrap();
        });
    }

    #[test]
    fn publish_and_consume_with_wrap_around() {
        // 32-byte ring: the third record wraps (padding), and the ring fills up.
        run(32, &[b"abcdefghi", b"12345", b"xyz"], false);
    }

    #[test]
    fn batched_commit() {
        run(32, &[b"a", b"bcdefghij", b"k"], true);
    }
}
