//! The reading end of the ring: [`Consumer`] and its zero-copy [`ReadSlot`].

use super::super::{COMMITTED, LEN_MASK, PAD_FLAG, RECORD_HEADER, commit_word_at_lap};
use super::{RingError, RingMemory, check_attach};
use std::{fmt, io};

/// The reading end. Only one may exist per ring.
#[derive(Debug)]
pub struct Consumer<M: RingMemory> {
    pub(super) mem: M,
    pub(super) cap: usize,
    /// Bytes consumed so far.
    pub(super) pos: u64,
    /// The position last published (consumed records up to here are free for the producer).
    pub(super) released: u64,
    /// Set when the memory was found impossible at attach: every call reports it.
    pub(super) broken: Option<&'static str>,
    /// The record [`poll`](Self::poll) found at `pos` (position, offset, length, size), so
    /// that the [`read`](Self::read) after it does not validate it again.
    pub(super) found: Option<(u64, usize, usize, usize)>,
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

    /// The reading end of the ring in `mem`, carrying on from `from`, a position the
    /// previous consumer reached (consumed) but may not have published: to take over from
    /// a consumer that died, without reading again what it consumed.
    ///
    /// `from` is trusted no further than the published position: below it, the published
    /// position is used (everything before it was released); more than a lap ahead of it,
    /// or misaligned, makes the ring [`RingError::Corrupted`] for every call. Records
    /// between the published position and `from` are freed at the next
    /// [`flush`](Self::flush).
    pub fn resume(mem: M, from: u64) -> Self {
        let mut consumer = Self::attach(mem);
        if consumer.broken.is_some() || from <= consumer.pos {
            return consumer;
        }
        if check_attach(consumer.cap, from).is_some() || from - consumer.pos > consumer.cap as u64 {
            consumer.broken = Some("resume position not within a lap after the consumer's");
            consumer.cap = 16;
            consumer.pos = 0;
            consumer.released = 0;
        } else {
            consumer.pos = from;
        }
        consumer
    }

    /// Bytes consumed so far (published or not): where the next record starts, or the
    /// padding before it.
    pub fn position(&self) -> u64 {
        self.pos
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
    pub(super) consumer: &'a mut Consumer<M>,
    /// Offset of the payload.
    pub(super) off: usize,
    pub(super) len: usize,
    /// Bytes of the whole record.
    pub(super) need: usize,
    /// Where [`io::Read`] reads next.
    pub(super) cursor: usize,
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
