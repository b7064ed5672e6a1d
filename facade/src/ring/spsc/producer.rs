//! The writing end of the ring: [`Producer`] and its zero-copy [`WriteSlot`].

use super::super::{RECORD_HEADER, commit_word_at_lap, record_size};
use super::{RingError, RingMemory, check_attach, max_message_len};
use std::{fmt, io};

/// The writing end. Only one may exist per ring.
#[derive(Debug)]
pub struct Producer<M: RingMemory> {
    pub(super) mem: M,
    pub(super) cap: usize,
    /// Bytes written so far, staged records included.
    pub(super) pos: u64,
    /// The first staged record's offset and commit word, stored last by [`flush`](Self::flush).
    pub(super) held: Option<(usize, u64)>,
    /// The consumer's position when last loaded.
    pub(super) cached_consumer: u64,
    /// Set when the memory was found impossible at attach: every call reports it.
    pub(super) broken: Option<&'static str>,
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
    pub(super) producer: &'a mut Producer<M>,
    /// Offset of the record (its commit word).
    pub(super) off: usize,
    pub(super) len: usize,
    /// Where [`io::Write`] writes next.
    pub(super) cursor: usize,
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
