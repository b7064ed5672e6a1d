//! The single-producer single-consumer ring: [`Producer`] and [`Consumer`] over any
//! [`RingMemory`], with zero-copy [`WriteSlot`]s and [`ReadSlot`]s.

use super::{COMMITTED, LEN_MASK, PAD_FLAG, RECORD_HEADER, commit_word_at_lap, record_size};
use std::{fmt, io};

/// Where a ring lives: two positions and a data area of 64-bit words. Implemented on the
/// heap by [`super::HeapRing`] and in shared memory by the channel.
pub trait RingMemory {
    /// Bytes of the data area: a power of two, at least 16.
    fn capacity(&self) -> usize;
    /// Load the producer's (`true`) or consumer's position, with acquire ordering.
    fn load_position(&self, producer: bool) -> u64;
    /// Store a position, with release ordering.
    fn store_position(&self, producer: bool, value: u64);
    /// Write the data word at byte `offset` (a multiple of 8, below the capacity), relaxed.
    fn write_word(&self, offset: usize, value: u64);
    /// Read the data word at byte `offset` (a multiple of 8, below the capacity), relaxed.
    fn read_word(&self, offset: usize) -> u64;
    /// Store a commit word at byte `offset`, with release ordering.
    fn commit_word(&self, offset: usize, value: u64);
    /// Load the word at byte `offset`, with acquire ordering.
    fn poll_word(&self, offset: usize) -> u64;

    /// Write `src` at byte `offset` (`offset + src.len()` is at most the capacity), in a
    /// window the protocol gives the writer alone. By default word by word; shared memory
    /// overrides it with one copy.
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let (mut at, mut rest) = (offset, src);
        while !rest.is_empty() {
            let word_at = at & !7;
            let skip = at - word_at;
            let n = (8 - skip).min(rest.len());
            let mut word = if n == 8 {
                [0; 8]
            } else {
                self.read_word(word_at).to_le_bytes()
            };
            word[skip..skip + n].copy_from_slice(&rest[..n]);
            self.write_word(word_at, u64::from_le_bytes(word));
            at += n;
            rest = &rest[n..];
        }
    }

    /// Read `dst.len()` bytes at byte `offset` (as for [`write_bytes`](Self::write_bytes)).
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let mut at = offset;
        let mut done = 0;
        while done < dst.len() {
            let word_at = at & !7;
            let skip = at - word_at;
            let n = (8 - skip).min(dst.len() - done);
            let word = self.read_word(word_at).to_le_bytes();
            dst[done..done + n].copy_from_slice(&word[skip..skip + n]);
            at += n;
            done += n;
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
    /// `commit_len` of more bytes than were reserved (nothing was published).
    BeyondReserved {
        /// The length asked for.
        len: usize,
        /// The bytes reserved.
        reserved: usize,
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
            Self::BeyondReserved { len, reserved } => write!(
                f,
                "cannot commit {len} bytes: only {reserved} were reserved"
            ),
            Self::Corrupted(what) => write!(f, "the ring is corrupted: {what}"),
        }
    }
}

impl std::error::Error for RingError {}

/// The largest message a ring of `capacity` bytes accepts: one record filling the ring.
pub const fn max_message_len(capacity: usize) -> usize {
    let max = capacity.saturating_sub(RECORD_HEADER);
    if max > LEN_MASK as usize {
        LEN_MASK as usize
    } else {
        max
    }
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
    fn commit_word(&self, offset: usize, value: u64) {
        (**self).commit_word(offset, value);
    }
    fn poll_word(&self, offset: usize) -> u64 {
        (**self).poll_word(offset)
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
    /// Bytes written so far, staged records included.
    pos: u64,
    /// The first staged record's offset and commit word, stored last by [`flush`](Self::flush).
    held: Option<(usize, u64)>,
    /// The consumer's position when last loaded.
    cached_consumer: u64,
    /// Set when the memory was found impossible at attach: every call reports it.
    broken: Option<&'static str>,
}

/// Positions stay far below `u64::MAX`: a ring would need exabytes to get there, and a
/// hostile start position cannot make `pos += n` overflow.
const MAX_POSITION: u64 = 1 << 62;

/// Whether a ring of `cap` bytes and a position read from it are possible.
fn check_attach(cap: usize, pos: u64) -> Option<&'static str> {
    if !cap.is_power_of_two() || cap < 16 {
        Some("capacity is not a power of two of at least 16")
    } else if !pos.is_multiple_of(8) || pos >= MAX_POSITION {
        Some("position not 8-aligned or out of range")
    } else {
        None
    }
}

impl<M: RingMemory> Producer<M> {
    /// The writing end of the ring in `mem`, carrying on from its published positions.
    ///
    /// Only one producer may write a ring at a time, and a new one may take over only
    /// from a producer that flushed and stopped (a producer that died between storing a
    /// commit word and its position leaves a position the consumer has passed: the new
    /// producer reports [`RingError::Corrupted`]). Impossible positions or capacity are
    /// reported as `Corrupted` by every call.
    pub fn attach(mem: M) -> Self {
        let cap = mem.capacity();
        let pos = mem.load_position(true);
        let cached_consumer = mem.load_position(false);
        let broken = check_attach(cap, pos)
            .or_else(|| check_attach(cap, cached_consumer))
            .or_else(|| {
                (cached_consumer > pos || pos - cached_consumer > cap as u64)
                    .then_some("consumer position not within a lap behind the producer's")
            });
        Self {
            mem,
            cap: if broken.is_some() { 16 } else { cap },
            pos: if broken.is_some() { 0 } else { pos },
            held: None,
            cached_consumer: if broken.is_some() { 0 } else { cached_consumer },
            broken,
        }
    }

    /// The ring memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// Append one message and publish it.
    ///
    /// A message that would wrap needs the consumer to pass the end of the lap first, so
    /// `Full` can be reported while only padding is queued; the consumer's next read
    /// (which then reports `Empty`) releases it.
    ///
    /// # Errors
    ///
    /// [`RingError::TooLarge`]; [`RingError::Full`] (nothing written); [`RingError::Corrupted`]
    /// when the consumer's position is impossible.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), RingError> {
        let mut slot = self.reserve(msg.len())?;
        slot.write_at(0, msg);
        slot.commit();
        Ok(())
    }

    /// Append as many of `msgs` as fit, publishing them with one store; returns how many.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), for the first message only: a later message that
    /// fails for any reason ends the batch (sending it alone reports why).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, RingError> {
        let mut sent = 0;
        for msg in msgs {
            match self.reserve(msg.len()) {
                Ok(mut slot) => {
                    slot.write_at(0, msg);
                    slot.stage();
                    sent += 1;
                }
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        self.flush();
        Ok(sent)
    }

    /// Reserve room for a message of `len` bytes, to be written in place and then
    /// committed ([`WriteSlot::commit`]) or staged. Dropping the slot abandons it.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn reserve(&mut self, len: usize) -> Result<WriteSlot<'_, M>, RingError> {
        let off = self.prepare(len)?;
        Ok(WriteSlot {
            producer: self,
            off,
            len,
            cursor: 0,
        })
    }

    /// Make room for a record of `len` payload bytes at the current position, padding the
    /// rest of the lap first if it would wrap; returns its offset. Calling it again before
    /// writing returns the same offset (the padding is not written twice).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn prepare(&mut self, len: usize) -> Result<usize, RingError> {
        if let Some(why) = self.broken {
            return Err(RingError::Corrupted(why));
        }
        let max = max_message_len(self.cap);
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        if !self.pos.is_multiple_of(8) {
            return Err(RingError::Corrupted("producer position not 8-aligned"));
        }
        let need = record_size(len);
        let off = self.offset();
        let to_end = self.cap - off;
        if need <= to_end {
            self.room_or_flush(need)?;
            return Ok(off);
        }
        // The record would wrap: pad to the end of the lap first, and publish the padding
        // if the record does not fit at the start yet (the consumer must pass it to free
        // that room).
        self.room_or_flush(to_end)?;
        let word = commit_word_at_lap(self.lap(), to_end - RECORD_HEADER, true);
        self.stage_word(off, word);
        self.pos += to_end as u64;
        self.room_or_flush(need)?;
        Ok(0)
    }

    /// [`room_for`](Self::room_for); when there is no room, publish whatever is staged
    /// (records or padding take room the consumer can only free once it sees them).
    fn room_or_flush(&mut self, bytes: usize) -> Result<(), RingError> {
        let r = self.room_for(bytes);
        if r.is_err() {
            self.flush();
        }
        r
    }

    /// Whether records are staged and not yet published.
    pub fn has_staged(&self) -> bool {
        self.held.is_some()
    }

    /// Publish every staged record with one release store (nothing when none is staged).
    pub fn flush(&mut self) {
        let Some((off, word)) = self.held.take() else {
            return;
        };
        // Clear the commit word where the next record will start, when that space is free,
        // so that bytes of an earlier lap there can never pass for a commit. (When it is
        // not free, it holds the commit word of the record one lap back: a different tag.)
        if self.pos - self.cached_consumer < self.cap as u64 {
            self.mem.write_word(self.offset(), 0);
        }
        self.mem.commit_word(off, word);
        self.mem.store_position(true, self.pos);
    }

    /// Write (or hold back, if it is the first of a batch) a staged record's commit word.
    fn stage_word(&mut self, off: usize, word: u64) {
        if self.held.is_none() {
            self.held = Some((off, word));
        } else {
            self.mem.write_word(off, word);
        }
    }

    fn stage_record(&mut self, off: usize, len: usize) {
        let word = commit_word_at_lap(self.lap(), len, false);
        self.stage_word(off, word);
        self.pos += record_size(len) as u64;
    }

    #[inline]
    fn offset(&self) -> usize {
        (self.pos & (self.cap as u64 - 1)) as usize
    }

    #[inline]
    fn lap(&self) -> u64 {
        self.pos >> self.cap.trailing_zeros()
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

/// Room for one message in the ring, owned by the producer until it commits (see
/// [`Producer::reserve`]). Write with [`write_at`](Self::write_at) or [`io::Write`] (from
/// the start); dropping the slot without committing abandons it (padding written to reach
/// it, when it wrapped, stays staged: published with the next commit or flush, or when
/// the producer next finds no room).
#[must_use = "a WriteSlot dropped without `commit` publishes nothing"]
pub struct WriteSlot<'a, M: RingMemory> {
    producer: &'a mut Producer<M>,
    /// Offset of the record (its commit word).
    off: usize,
    len: usize,
    /// Where [`io::Write`] writes next.
    cursor: usize,
}

impl<M: RingMemory> fmt::Debug for WriteSlot<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSlot")
            .field("len", &self.len)
            .field("written", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a, M: RingMemory> WriteSlot<'a, M> {
    /// Bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slot is for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes written through [`io::Write`] so far.
    pub fn written(&self) -> usize {
        self.cursor
    }

    /// Copy `src` into the slot at `offset`; returns how many bytes fit (fewer than
    /// `src.len()` only at the end of the slot).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> usize {
        let n = src.len().min(self.len.saturating_sub(offset));
        if n > 0 {
            let at = self.off + RECORD_HEADER + offset;
            self.producer.mem.write_bytes(at, &src[..n]);
        }
        n
    }

    /// Publish the message (all [`len`](Self::len) bytes, written or not: bytes not
    /// written are whatever the ring held there), and any staged before it.
    /// Returns the producer (to wake a consumer, or go on).
    pub fn commit(self) -> &'a mut Producer<M> {
        let len = self.len;
        self.finish(len, true)
    }

    /// Publish the first `len` bytes of the slot as the message (for a message whose size
    /// was only bounded when reserving).
    ///
    /// # Errors
    ///
    /// [`RingError::BeyondReserved`] when `len` is more than was reserved (nothing is
    /// published; the slot is abandoned).
    pub fn commit_len(self, len: usize) -> Result<&'a mut Producer<M>, RingError> {
        if len > self.len {
            return Err(RingError::BeyondReserved {
                len,
                reserved: self.len,
            });
        }
        Ok(self.finish(len, true))
    }

    /// Stage the message: written, not visible until [`Producer::flush`] or the next
    /// [`commit`](Self::commit).
    pub fn stage(self) -> &'a mut Producer<M> {
        let len = self.len;
        self.finish(len, false)
    }

    fn finish(self, len: usize, publish: bool) -> &'a mut Producer<M> {
        let producer = self.producer;
        producer.stage_record(self.off, len);
        if publish {
            producer.flush();
        }
        producer
    }
}

impl<M: RingMemory> io::Write for WriteSlot<'_, M> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.write_at(self.cursor, buf);
        self.cursor += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end. Only one may exist per ring.
#[derive(Debug)]
pub struct Consumer<M: RingMemory> {
    mem: M,
    cap: usize,
    /// Bytes consumed so far.
    pos: u64,
    /// The position last published (consumed records up to here are free for the producer).
    released: u64,
    /// Set when the memory was found impossible at attach: every call reports it.
    broken: Option<&'static str>,
    /// The record [`poll`](Self::poll) found at `pos` (position, offset, length, size), so
    /// that the [`read`](Self::read) after it does not validate it again.
    found: Option<(u64, usize, usize, usize)>,
}

impl<M: RingMemory> Consumer<M> {
    /// The reading end of the ring in `mem`, carrying on from its current positions.
    ///
    /// Impossible positions or capacity are reported as [`RingError::Corrupted`] by every
    /// call.
    pub fn attach(mem: M) -> Self {
        let cap = mem.capacity();
        let pos = mem.load_position(false);
        let broken = check_attach(cap, pos);
        let pos = if broken.is_some() { 0 } else { pos };
        Self {
            mem,
            cap: if broken.is_some() { 16 } else { cap },
            pos,
            released: pos,
            broken,
            found: None,
        }
    }

    /// Bytes consumed but not yet published (see [`flush`](Self::flush)).
    pub fn unreleased(&self) -> u64 {
        self.pos - self.released
    }

    /// The position last published.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// The ring memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The next message, in place: read it through the slot, then
    /// [`release`](ReadSlot::release) it (dropping the slot leaves it in the ring).
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::Corrupted`].
    pub fn read(&mut self) -> Result<ReadSlot<'_, M>, RingError> {
        let (off, len, need) = match self.found.take() {
            // Validated by `poll` at this very position. A committed record stays until
            // this consumer passes it; a hostile producer that rewrites it anyway gets its
            // garbage copied, never an access out of bounds (offset and size were checked).
            Some((pos, off, len, need)) if pos == self.pos => (off, len, need),
            _ => self.next_record()?,
        };
        Ok(ReadSlot {
            consumer: self,
            off: off + RECORD_HEADER,
            len,
            need,
            cursor: 0,
        })
    }

    /// Whether a message is ready (skipping padding).
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::Corrupted`].
    pub fn poll(&mut self) -> Result<(), RingError> {
        let (off, len, need) = self.next_record()?;
        self.found = Some((self.pos, off, len, need));
        Ok(())
    }

    /// Copy the next message into `buf` and release it; returns its length.
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::BufferTooSmall`] (the message stays);
    /// [`RingError::Corrupted`].
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let slot = self.read()?;
        let len = slot.len();
        let Some(dst) = buf.get_mut(..len) else {
            return Err(RingError::BufferTooSmall { needed: len });
        };
        slot.read_at(0, dst);
        slot.release();
        Ok(len)
    }

    /// The next message as a vector, released.
    ///
    /// # Errors
    ///
    /// [`RingError::Empty`]; [`RingError::Corrupted`].
    pub fn try_recv_vec(&mut self) -> Result<Vec<u8>, RingError> {
        let slot = self.read()?;
        let v = slot.to_vec();
        slot.release();
        Ok(v)
    }

    /// Publish the position of everything consumed, making its room free for the producer
    /// (a no-op when nothing is pending).
    pub fn flush(&mut self) {
        if self.pos != self.released {
            self.mem.store_position(false, self.pos);
            self.released = self.pos;
        }
    }

    /// Find the next record, skipping at most one padding record: `(offset, payload
    /// length, record size)`, every field validated.
    fn next_record(&mut self) -> Result<(usize, usize, usize), RingError> {
        if let Some(why) = self.broken {
            return Err(RingError::Corrupted(why));
        }
        for _ in 0..2 {
            let off = (self.pos & (self.cap as u64 - 1)) as usize;
            let to_end = self.cap - off;
            let word = self.mem.poll_word(off);
            // Committed, for this lap: anything else is an empty ring (or a peer that
            // has not kept to the protocol, which looks the same).
            let expected = commit_word_at_lap(self.pos >> self.cap.trailing_zeros(), 0, false);
            if word & !(LEN_MASK | PAD_FLAG) != expected {
                // Nothing to read: make what was consumed free now, for a waiting producer.
                self.flush();
                return Err(RingError::Empty);
            }
            debug_assert!(word & COMMITTED != 0);
            // Lengths in u64: a hostile 0xffff_ffff cannot overflow a 32-bit usize.
            let len = word & LEN_MASK;
            if word & PAD_FLAG != 0 {
                if off == 0 || len + RECORD_HEADER as u64 != to_end as u64 {
                    return Err(RingError::Corrupted("padding record does not end the lap"));
                }
                self.pos += to_end as u64;
                continue;
            }
            let need = RECORD_HEADER as u64 + len.div_ceil(8) * 8;
            if need > to_end as u64 {
                return Err(RingError::Corrupted("record length out of range"));
            }
            // Both fit in usize now: at most the capacity.
            return Ok((off, len as usize, need as usize));
        }
        Err(RingError::Corrupted("two padding records in a row"))
    }
}

/// The next message, in place in the ring (see [`Consumer::read`]). Read it with
/// [`read_at`](Self::read_at), [`io::Read`] or [`to_vec`](Self::to_vec): copies from the
/// ring into your memory (see the module docs for why there is no `&[u8]`).
#[must_use = "a ReadSlot dropped without `release` leaves the message in the ring"]
pub struct ReadSlot<'a, M: RingMemory> {
    consumer: &'a mut Consumer<M>,
    /// Offset of the payload.
    off: usize,
    len: usize,
    /// Bytes of the whole record.
    need: usize,
    /// Where [`io::Read`] reads next.
    cursor: usize,
}

impl<M: RingMemory> fmt::Debug for ReadSlot<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSlot")
            .field("len", &self.len)
            .field("read", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a, M: RingMemory> ReadSlot<'a, M> {
    /// The message's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy message bytes from `offset` into `dst`; returns how many (fewer than
    /// `dst.len()` only at the end of the message).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len.saturating_sub(offset));
        if n > 0 {
            self.consumer
                .mem
                .read_bytes(self.off + offset, &mut dst[..n]);
        }
        n
    }

    /// The whole message, copied into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.read_at(0, &mut v);
        v
    }

    /// Done with the message: free its room for the producer now. Returns the consumer (to
    /// wake a producer, or go on).
    pub fn release(self) -> &'a mut Consumer<M> {
        let consumer = self.consume();
        consumer.flush();
        consumer
    }

    /// Done with the message, but publish the position later ([`Consumer::flush`], the
    /// next [`release`](Self::release), or an empty ring): a burst costs one store.
    pub fn consume(self) -> &'a mut Consumer<M> {
        let consumer = self.consumer;
        consumer.pos += self.need as u64;
        consumer
    }
}

impl<M: RingMemory> io::Read for ReadSlot<'_, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.cursor, buf);
        self.cursor += n;
        Ok(n)
    }
}

// Plain tests run without loom: under `--cfg ipcraft_loom` the ring's atomics are loom's,
// usable only inside a loom model.
#[cfg(all(test, not(ipcraft_loom)))]
mod tests {
    use super::super::{HeapRing, commit_word};
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
        let word = |len: u64, pad: bool| commit_word(0, 64, 0, pad) | len;
        mem.scribble(0, word(1_000_000, false)); // record longer than the ring
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble(0, word(3, true)); // padding in the wrong place
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble(0, word(57, false)); // a record that would run past the end of the lap
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
        mem.scribble(0, 12345); // no commit for this lap: looks empty
        assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
        let (mut tx2, _) = split(&mem);
        mem.scribble_position(false, 12345);
        tx2.try_send(&[0; 40]).unwrap(); // fits by the cached position: no reload yet
        assert!(matches!(
            tx2.try_send(&[0; 40]),
            Err(RingError::Corrupted(_))
        ));
    }

    /// A payload full of words that would be valid commits one lap later cannot pass for
    /// messages: the producer clears the next record's word before each commit.
    #[test]
    fn stale_payload_never_passes_for_a_commit() {
        const CAP: usize = 128;
        let mem = HeapRing::new(CAP).unwrap();
        let (mut tx, mut rx) = split(&mem);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for i in 0..400usize {
            let len = (i * 24) % 72;
            // Where this record's payload will lie, and the forged words for the next lap.
            let p = mem.load_position(true);
            let off = (p % CAP as u64) as usize;
            let start = if record_size(len) > CAP - off {
                p + (CAP - off) as u64
            } else {
                p
            };
            let msg: Vec<u8> = (0..len / 8)
                .flat_map(|j| {
                    let at = start + 8 + 8 * j as u64;
                    commit_word(at + CAP as u64, CAP, 0, false).to_le_bytes()
                })
                .collect();
            match tx.try_send(&msg) {
                Ok(()) => model.push_back(msg),
                Err(RingError::Full) => {
                    while let Some(want) = model.pop_front() {
                        assert_eq!(rx.try_recv_vec().unwrap(), want);
                    }
                    assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
                }
                Err(e) => panic!("{e}"),
            }
        }
        while let Some(want) = model.pop_front() {
            assert_eq!(rx.try_recv_vec().unwrap(), want);
        }
        assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    }

    #[test]
    fn impossible_positions_at_attach_are_corruption_not_panics() {
        for (producer, consumer) in [(0, 8), (u64::MAX - 7, 0), (4, 0), (200, 0), (0, 3)] {
            let mem = HeapRing::new(64).unwrap();
            mem.scribble_position(true, producer);
            mem.scribble_position(false, consumer);
            let (mut tx, mut rx) = split(&mem);
            assert!(matches!(tx.try_send(b"x"), Err(RingError::Corrupted(_))));
            if consumer % 8 != 0 {
                assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
            }
        }
        let mem = HeapRing::new(64).unwrap();
        mem.scribble_position(false, u64::MAX - 7);
        let (_, mut rx) = split(&mem);
        assert!(matches!(rx.try_recv_vec(), Err(RingError::Corrupted(_))));
    }

    /// Staged records, or padding left by an abandoned slot, take room the consumer can
    /// only free once it sees them: a producer that finds no room publishes them.
    #[test]
    fn no_room_publishes_what_is_staged() {
        let mem = HeapRing::new(64).unwrap();
        let (mut tx, mut rx) = split(&mem);
        for _ in 0..3 {
            tx.reserve(8).unwrap().stage();
        }
        assert_eq!(tx.try_send(&[0; 20]), Err(RingError::Full));
        assert!(!tx.has_staged());
        for _ in 0..3 {
            assert_eq!(rx.try_recv_vec().unwrap().len(), 8);
        }
        tx.try_send(&[1; 20]).unwrap();
        assert_eq!(rx.try_recv_vec().unwrap(), vec![1; 20]);
        tx.try_send(&[3; 8]).unwrap();
        assert_eq!(rx.try_recv_vec().unwrap(), vec![3; 8]);
        // Both at 112 (offset 48): a 20-byte reservation pads the lap, and is abandoned.
        {
            let _abandoned = tx.reserve(20).unwrap();
        }
        assert!(tx.has_staged(), "the padding");
        assert_eq!(tx.try_send(&[2; 56]), Err(RingError::Full));
        assert_eq!(
            rx.try_recv_vec(),
            Err(RingError::Empty),
            "passes the padding"
        );
        tx.try_send(&[2; 56]).unwrap();
        assert_eq!(rx.try_recv_vec().unwrap(), vec![2; 56]);
    }

    #[test]
    fn zero_copy_slots_write_and_read_in_place() {
        use std::io::{Read, Write};
        let mem = HeapRing::new(256).unwrap();
        let (mut tx, mut rx) = split(&mem);
        // Reserve an upper bound, serialize in place, commit what was written.
        let mut slot = tx.reserve(100).unwrap();
        assert_eq!(slot.len(), 100);
        write!(slot, "seq={} payload={:?}", 7, [1, 2, 3]).unwrap();
        let n = slot.written();
        assert!(slot.commit_len(n).is_ok());
        // Odd offsets, and writes past the end are cut short, never out of bounds.
        let mut slot = tx.reserve(13).unwrap();
        assert_eq!(slot.write_at(3, b"abcdefghijklmnop"), 10);
        assert_eq!(slot.write_at(0, b"xyz"), 3);
        assert_eq!(slot.write_at(13, b"!"), 0);
        assert!(matches!(
            slot.commit_len(14),
            Err(RingError::BeyondReserved {
                len: 14,
                reserved: 13
            })
        ));
        // That slot was abandoned: the next reservation reuses its room.
        let mut slot = tx.reserve(13).unwrap();
        slot.write_at(0, b"xyzabcdefghij");
        slot.commit();

        let mut slot = rx.read().unwrap();
        let mut text = String::new();
        slot.read_to_string(&mut text).unwrap();
        assert_eq!(text, "seq=7 payload=[1, 2, 3]");
        slot.release();
        let slot = rx.read().unwrap();
        let mut part = [0u8; 4];
        assert_eq!(slot.read_at(9, &mut part), 4);
        assert_eq!(&part, b"ghij");
        assert_eq!(slot.read_at(11, &mut part), 2);
        assert_eq!(slot.read_at(99, &mut part), 0);
        let _ = slot; // not released: still there
        assert_eq!(rx.try_recv_vec().unwrap(), b"xyzabcdefghij");
        assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
    }

    #[test]
    fn staged_records_and_consumed_records_are_published_once() {
        let mem = HeapRing::new(128).unwrap();
        let (mut tx, mut rx) = split(&mem);
        for m in [&b"one"[..], b"two", b"three"] {
            let mut slot = tx.reserve(m.len()).unwrap();
            slot.write_at(0, m);
            slot.stage();
        }
        assert!(tx.has_staged());
        assert_eq!(
            rx.try_recv_vec(),
            Err(RingError::Empty),
            "staged: not visible"
        );
        assert_eq!(mem.load_position(true), 0);
        tx.flush();
        assert_eq!(mem.load_position(true), 48);
        rx.read().unwrap().consume();
        rx.read().unwrap().consume();
        assert_eq!(mem.load_position(false), 0, "consumed, not yet published");
        rx.flush();
        assert_eq!(mem.load_position(false), 32);
        assert_eq!(rx.try_recv_vec().unwrap(), b"three");
        assert_eq!(mem.load_position(false), 48);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The ring behaves like a bounded FIFO of messages (a VecDeque), whatever the
        /// sequence of sends, receives and polls (a poll remembers the record it found for
        /// the next receive: sends in between must not change what that receives).
        #[test]
        fn behaves_like_a_queue(ops in prop::collection::vec((0u8..3, 0usize..60), 1..200)) {
            let mem = HeapRing::new(128).unwrap();
            let (mut tx, mut rx) = split(&mem);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for (i, (op, len)) in ops.into_iter().enumerate() {
                if op == 2 {
                    match rx.poll() {
                        Ok(()) => prop_assert!(!model.is_empty()),
                        Err(RingError::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                } else if op == 0 {
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

        /// The same with the zero-copy and batch calls: staged messages become visible on
        /// flush (or the next commit), consumed ones free their room on flush.
        #[test]
        fn slots_and_batches_behave_like_a_queue(
            ops in prop::collection::vec((0u8..6, 0usize..60), 1..200)
        ) {
            let mem = HeapRing::new(128).unwrap();
            let (mut tx, mut rx) = split(&mem);
            let mut visible: VecDeque<Vec<u8>> = VecDeque::new();
            let mut staged: Vec<Vec<u8>> = Vec::new();
            for (i, (op, len)) in ops.into_iter().enumerate() {
                let msg: Vec<u8> = (0..len).map(|j| (i * 17 + j) as u8).collect();
                match op {
                    0 | 1 => {
                        // Op 0: reserve more than needed, commit what was written;
                        // op 1: reserve exactly, write through io::Write, commit.
                        let reserve = if op == 0 { len + 3 } else { len };
                        match tx.reserve(reserve) {
                            Ok(mut slot) => {
                                if op == 0 {
                                    prop_assert_eq!(slot.write_at(0, &msg), len);
                                    prop_assert!(slot.commit_len(len).is_ok());
                                } else {
                                    std::io::Write::write_all(&mut slot, &msg).unwrap();
                                    slot.commit();
                                }
                                visible.extend(staged.drain(..));
                                visible.push_back(msg);
                            }
                            Err(RingError::Full) => {
                                if !tx.has_staged() {
                                    visible.extend(staged.drain(..));
                                }
                            }
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    2 => match tx.reserve(len) {
                        Ok(mut slot) => {
                            slot.write_at(0, &msg);
                            slot.stage();
                            staged.push(msg);
                        }
                        Err(RingError::Full) => {
                            if !tx.has_staged() {
                                visible.extend(staged.drain(..));
                            }
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    },
                    3 => {
                        tx.flush();
                        visible.extend(staged.drain(..));
                    }
                    4 => match rx.read() {
                        Ok(slot) => {
                            prop_assert_eq!(Some(slot.to_vec()), visible.pop_front());
                            if len % 2 == 0 {
                                slot.consume();
                            } else {
                                slot.release();
                            }
                        }
                        Err(RingError::Empty) => prop_assert!(visible.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    },
                    _ => rx.flush(),
                }
            }
            tx.flush();
            visible.extend(staged.drain(..));
            while let Some(want) = visible.pop_front() {
                prop_assert_eq!(rx.try_recv_vec(), Ok(want));
            }
            prop_assert_eq!(rx.try_recv_vec(), Err(RingError::Empty));
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

    /// The first message fills the ring with words that would be valid (empty) commits at
    /// positions 40, 48 and 56 of the next lap; the producer's clearing of the next
    /// record's word, ordered before each commit, keeps them from passing for messages.
    #[test]
    fn stale_payload_never_passes_for_a_commit() {
        static FORGED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let forged = FORGED.get_or_init(|| {
            [40u64, 48, 56]
                .iter()
                .flat_map(|&p| super::super::commit_word(p, 32, 0, false).to_le_bytes())
                .collect()
        });
        static MSGS: std::sync::OnceLock<[&'static [u8]; 3]> = std::sync::OnceLock::new();
        let msgs = MSGS.get_or_init(|| [&forged[..], b"AAAAAAAA", b"BBBBBBBB"]);
        run(32, &msgs[..], false);
    }
}
