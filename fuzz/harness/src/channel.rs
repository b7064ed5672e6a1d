//! The channel's receiver (the ring consumer) against a segment whose every byte a hostile
//! peer may write between receives: the shm header, the channel header, positions, commit
//! words, payloads. All through the public API: an anonymous MPSC channel
//! (`Receiver::anonymous_mpsc`), real senders on the same memfd (`Sender::from_fd`), and a
//! second, raw mapping of the memfd (`SegmentOptions::raw`) for the scribbling.
//!
//! Input: `[setup]`, then operations, one byte each and their arguments: claim a sender,
//! send, reserve and commit part, receive (`try_recv`, `try_recv_into`, `try_recv_slot`, a
//! short `recv_timeout`), release, flush, drop a sender, drop and re-attach the receiver,
//! write bytes or a word (zero, all ones, a nudged position, a flipped bit...) anywhere.
//!
//! Oracle: never a panic, a crash or an out-of-bounds access (ASan); a deadline kept within
//! a generous margin; a message never longer than the channel's maximum; and, while no byte
//! has been scribbled, exactly the messages sent, each once, in order per sender.

use crate::Input;
use ipcraft::channel::{ChannelError, Receiver, Sender, Wait};
use ipcraft_shm::{HEADER_SIZE, Segment, SegmentOptions};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// The channel layout's offsets (facade/src/channel/mod.rs, layout version 2), in the data
/// area, to aim the scribbles; the target works (less well) if they change.
const SLOTS: usize = 256;
const SLOT_STRIDE: usize = 256;
/// Operations per input, so that one input cannot run for long.
const MAX_OPS: usize = 512;
/// How late past its deadline a receive may return on a loaded 2-core machine.
const DEADLINE_SLACK: Duration = Duration::from_secs(2);

struct Channel {
    fd: OwnedFd,
    raw: Segment,
    rx: Option<Receiver>,
    senders: Vec<Sender>,
    producers: usize,
    capacity: usize,
    /// Messages sent and not yet received, per sender slot.
    model: Vec<VecDeque<Vec<u8>>>,
    /// Some byte was written behind the channel's back: only safety is checked from now.
    scribbled: bool,
    /// Messages may have been lost legitimately (a receiver replaced).
    loose: bool,
    counter: u32,
}

impl Channel {
    fn dup(&self) -> OwnedFd {
        self.fd.try_clone().expect("dup the memfd")
    }

    /// A payload that says who sent it and when (so that a message is never confused with
    /// another), `len` bytes long.
    fn payload(&mut self, slot: usize, len: usize) -> Vec<u8> {
        self.counter += 1;
        let stamp = [
            slot as u8,
            self.counter as u8,
            (self.counter >> 8) as u8,
            0x5a,
        ];
        (0..len).map(|i| stamp[i % 4] ^ (i / 4) as u8).collect()
    }

    /// A received message: check it against the model.
    fn received(&mut self, msg: &[u8], sender: Option<usize>, max: usize) {
        assert!(msg.len() <= max, "a message of {} > max {max}", msg.len());
        if self.scribbled || self.loose {
            return;
        }
        let slot = sender
            .or_else(|| {
                self.model
                    .iter()
                    .position(|q| q.front().is_some_and(|m| m == msg))
            })
            .unwrap_or_else(|| panic!("received a message nobody sent: {msg:?}"));
        let want = self.model[slot].pop_front();
        assert_eq!(
            want.as_deref(),
            Some(msg),
            "sender {slot}: not the next message sent"
        );
    }

    fn check_error(&self, e: &ChannelError) {
        if self.scribbled {
            return;
        }
        match e {
            ChannelError::Empty
            | ChannelError::TimedOut
            | ChannelError::Disconnected
            | ChannelError::BufferTooSmall { .. } => {}
            other => panic!("an untouched channel failed: {other}"),
        }
    }

    /// A file offset to scribble at, aimed by `sel` at a part of the segment.
    fn aim(&self, sel: u8, at: u16, align: usize) -> usize {
        let file = self.raw.len();
        let data_area = SLOTS + self.producers * SLOT_STRIDE;
        let (start, len) = match sel % 4 {
            0 => (0, HEADER_SIZE + SLOTS),
            1 => (HEADER_SIZE + SLOTS, self.producers * SLOT_STRIDE),
            2 => (HEADER_SIZE + data_area, self.producers * self.capacity),
            _ => (0, file),
        };
        let off = start + usize::from(at) % len.max(1);
        (off - off % align).min(file.saturating_sub(align))
    }

    fn op(&mut self, input: &mut Input<'_>) {
        match input.u8() % 14 {
            0 => {
                if let Ok(tx) = Sender::from_fd(self.dup()) {
                    self.senders.push(tx);
                }
            }
            1 | 2 => {
                let Some(i) = self.pick_sender(input) else {
                    return;
                };
                let slot = self.senders[i].slot();
                let len = self.len_for(slot, input.u16());
                let msg = self.payload(slot, len);
                match self.senders[i].try_send(&msg) {
                    Ok(()) => self.model[slot].push_back(msg),
                    Err(e) => self.check_send_error(&e),
                }
            }
            3 => {
                let Some(i) = self.pick_sender(input) else {
                    return;
                };
                let slot = self.senders[i].slot();
                let len = self.len_for(slot, input.u16());
                let keep = usize::from(input.u16()) % (len + 2);
                let keep = if slot == 0 { keep } else { keep.max(1) };
                let msg = self.payload(slot, len);
                match self.senders[i].try_reserve(len) {
                    Ok(mut s) => {
                        assert_eq!(s.write_at(0, &msg), len.min(s.len()));
                        match s.commit_len(keep) {
                            Ok(()) => self.model[slot].push_back(msg[..keep].to_vec()),
                            Err(ChannelError::BeyondReserved { .. }) => assert!(keep > len),
                            Err(e) => self.check_send_error(&e),
                        }
                    }
                    Err(e) => self.check_send_error(&e),
                }
            }
            4 | 5 => {
                let Some(rx) = self.rx.as_mut() else { return };
                let max = rx.max_message_len();
                match rx.try_recv() {
                    Ok(m) => self.received(&m, None, max),
                    Err(e) => self.check_error(&e),
                }
            }
            6 => {
                let size = usize::from(input.u16()) % (self.capacity + 16);
                let Some(rx) = self.rx.as_mut() else { return };
                let max = rx.max_message_len();
                let mut buf = vec![0u8; size];
                match rx.try_recv_into(&mut buf) {
                    Ok(n) => {
                        assert!(n <= size);
                        self.received(&buf[..n], None, max);
                    }
                    Err(ChannelError::BufferTooSmall { needed }) => {
                        assert!(needed > size && needed <= max);
                    }
                    Err(e) => self.check_error(&e),
                }
            }
            7 | 8 => {
                let how = input.u8();
                let offset = usize::from(input.u16());
                let Some(rx) = self.rx.as_mut() else { return };
                let max = rx.max_message_len();
                let got = match rx.try_recv_slot() {
                    Ok(slot) => {
                        let mut part = [0u8; 32];
                        let n = slot.read_at(offset, &mut part);
                        assert!(n <= 32 && (n == 0 || offset < slot.len()));
                        let all = slot.to_vec();
                        assert_eq!(all.len(), slot.len());
                        let sender = slot.sender();
                        match how % 3 {
                            0 => slot.release(),
                            1 => slot.consume(),
                            _ => return drop(slot), // dropped unreleased: received again
                        }
                        Ok((all, sender))
                    }
                    Err(e) => Err(e),
                };
                match got {
                    Ok((m, sender)) => self.received(&m, Some(sender), max),
                    Err(e) => self.check_error(&e),
                }
            }
            9 => {
                let micros = u64::from(input.u8() % 8) * 50;
                let sleep = input.u8() & 1 == 1;
                let Some(rx) = self.rx.as_mut() else { return };
                rx.set_wait(if sleep { Wait::Sleep } else { Wait::Adaptive });
                let max = rx.max_message_len();
                let timeout = Duration::from_micros(micros);
                let started = Instant::now();
                let r = rx.recv_timeout(timeout);
                let took = started.elapsed();
                assert!(
                    took < timeout + DEADLINE_SLACK,
                    "recv_timeout({timeout:?}) took {took:?}"
                );
                match r {
                    Ok(m) => self.received(&m, None, max),
                    Err(e) => self.check_error(&e),
                }
            }
            10 => {
                if let Some(rx) = self.rx.as_mut() {
                    rx.flush();
                }
                if let Some(i) = self.pick_sender(input) {
                    self.senders[i].flush();
                }
            }
            11 => {
                if let Some(i) = self.pick_sender(input) {
                    self.senders.swap_remove(i);
                }
            }
            12 => {
                self.rx = None;
                if let Ok(rx) = Receiver::from_fd(self.dup()) {
                    // Only a scribble (the taken flag cleared) lets a second receiver in
                    // today; a takeover may hand over fewer messages than the model holds.
                    self.loose = true;
                    self.rx = Some(rx);
                }
            }
            _ => self.scribble(input),
        }
    }

    /// A message length for sender `slot`. Only slot 0 sends empty messages: the others'
    /// messages all differ from each other (each starts with its slot), so a message
    /// received without its sender (`try_recv`) is attributed without ambiguity.
    fn len_for(&self, slot: usize, raw: u16) -> usize {
        let len = usize::from(raw) % (self.capacity + 16);
        if slot == 0 { len } else { len.max(1) }
    }

    fn pick_sender(&self, input: &mut Input<'_>) -> Option<usize> {
        let i = usize::from(input.u8());
        (!self.senders.is_empty()).then(|| i % self.senders.len())
    }

    fn check_send_error(&self, e: &ChannelError) {
        if self.scribbled {
            return;
        }
        match e {
            ChannelError::Full | ChannelError::Disconnected | ChannelError::TooLarge { .. } => {}
            other => panic!("an untouched channel failed a send: {other}"),
        }
    }

    fn scribble(&mut self, input: &mut Input<'_>) {
        let kind = input.u8();
        let sel = input.u8();
        let at = input.u16();
        self.scribbled = true;
        if kind & 0x80 != 0 {
            let n = usize::from(kind & 0x3f) + 1;
            let off = self.aim(sel, at, 1);
            let bytes = input.bytes(n);
            let n = bytes.len().min(self.raw.len() - off);
            self.raw.write_at(off, &bytes[..n]).expect("scribble bytes");
            return;
        }
        let wide = kind & 0x40 != 0;
        let off = self.aim(sel, at, if wide { 8 } else { 4 });
        let cur = if wide {
            self.raw.read::<u64>(off).expect("read a word")
        } else {
            u64::from(self.raw.read::<u32>(off).expect("read a word"))
        };
        let arg = input.u8();
        let value = match kind % 10 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::from(u32::MAX),
            4 => cur.wrapping_add(arg as i8 as u64),
            5 => cur ^ (1 << (arg % 64)),
            6 => self.capacity as u64 + u64::from(arg % 8) - 4,
            7 => cur.wrapping_add(self.capacity as u64),
            8 => 1 << (arg % 64),
            _ => input.u64(),
        };
        if wide {
            self.raw.write(off, &value).expect("scribble a word");
        } else {
            self.raw
                .write(off, &(value as u32))
                .expect("scribble a word");
        }
    }

    /// Untouched: every message sent arrives, in order per sender.
    fn drain(&mut self) {
        if self.scribbled || self.loose {
            return;
        }
        let Some(rx) = self.rx.as_mut() else { return };
        let max = rx.max_message_len();
        let mut got = Vec::new();
        loop {
            match rx.try_recv_slot() {
                Ok(slot) => {
                    got.push((slot.to_vec(), slot.sender()));
                    slot.release();
                }
                Err(e) => {
                    self.check_error(&e);
                    break;
                }
            }
        }
        for (m, sender) in got {
            self.received(&m, Some(sender), max);
        }
        for (slot, q) in self.model.iter().enumerate() {
            assert!(
                q.is_empty(),
                "sender {slot}: {} messages never arrived",
                q.len()
            );
        }
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.u8();
    let producers = 1 + usize::from(setup & 3);
    let capacity = 16 << ((setup >> 2) & 7);
    let (rx, fd) = Receiver::anonymous_mpsc(producers, capacity).expect("a new channel");
    let raw = SegmentOptions::new()
        .raw(true)
        .from_fd(fd.try_clone().expect("dup"), 0)
        .expect("a second, raw mapping");
    let mut ch = Channel {
        fd,
        raw,
        rx: Some(rx),
        senders: Vec::new(),
        producers,
        capacity,
        model: vec![VecDeque::new(); producers],
        scribbled: false,
        loose: false,
        counter: 0,
    };
    if setup & 0x20 == 0 {
        if let Ok(tx) = Sender::from_fd(ch.dup()) {
            ch.senders.push(tx);
        }
    }
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        ch.op(&mut input);
    }
    ch.drain();
}
