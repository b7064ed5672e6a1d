//! Where things are in a channel segment: the layout's offsets, the rings over it, the
//! doorbells and the liveness locks.
#![allow(clippy::disallowed_types)] // These atomics live in shared memory, where loom's cannot.

use super::*;

/// `b"IPCRING1"` little-endian, at the start of the channel's segment data.
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"IPCRING1");
/// Layout version 3: the receiver's journal after the rings, and sender slots that are
/// reused (version 2 had neither; version 1 polled positions).
pub(super) const VERSION: u32 = 3;
pub(super) const H_CAPACITY: usize = 12;
pub(super) const H_PRODUCERS: usize = 16;
/// The receiver's doorbell (its own cache line: read by every sender after each commit,
/// written only when the receiver goes to sleep or wakes).
pub(super) const CONSUMER_SLEEPING: usize = 64;
pub(super) const DATA_SEQ: usize = 68;
/// The receiver's state (a line written rarely).
pub(super) const RECEIVER_CLOSED: usize = 128;
pub(super) const RECEIVER_CPU: usize = 136;
/// Set by the first receiver once it holds its lock byte: from then on, a free lock byte
/// means the receiver closed or died, and the next receiver takes over.
pub(super) const RECEIVER_TAKEN: usize = 140;
/// Sender slots: control lines, one block of [`SLOT_STRIDE`] bytes each.
pub(super) const SLOTS: usize = 256;
pub(super) const SLOT_STRIDE: usize = 256;
/// Within a slot: the producer's position (its own line, written per publish).
pub(super) const S_PRODUCER_POS: usize = 0;
/// The consumer's position (its own line, written per release, read by the producer only
/// when the ring looks full).
pub(super) const S_CONSUMER_POS: usize = 64;
/// The sender's doorbell.
pub(super) const S_PRODUCER_SLEEPING: usize = 128;
pub(super) const S_SPACE_SEQ: usize = 132;
/// The sender's state (a line written rarely). The slot's state (see
/// [`crate::ring::slots`]): claimed by a sender that holds the slot's lock byte, made vacant
/// by the receiver once that sender closed or died and its ring is drained.
pub(super) const S_CLAIMED: usize = 192;
pub(super) const S_CLOSED: usize = 200;
pub(super) const S_CPU: usize = 204;
/// Set by the receiver when it found this slot's ring corrupted and stopped reading it.
pub(super) const S_POISONED: usize = 208;
/// The most senders an MPSC channel takes.
pub const MAX_PRODUCERS: usize = 64;
/// Lock bytes for liveness (open-file-description locks on the segment): the receiver's,
/// then one per sender slot. (Byte 0 is the shm crate's creator-liveness lock.)
pub(super) const RECEIVER_LOCK: i64 = 1;
/// Busy-wait this many checks (when the peer runs on another CPU) before yielding.
pub(super) const SPIN: u32 = 64;
/// Then yield this many times (the peer may be waiting for this core) before sleeping.
pub(super) const YIELDS: u32 = 64;
pub(super) const SLICE: Duration = Duration::from_millis(100);
/// The shm header tag of a named channel segment.
pub(super) const TAG: u64 = u64::from_le_bytes(*b"IPCRCHN1");

/// Where things are in a channel segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) capacity: usize,
    pub(super) producers: usize,
}

impl Layout {
    pub(super) fn new(producers: usize, capacity: usize) -> Result<Self, ChannelError> {
        if !capacity.is_power_of_two() || !(16..=1 << 31).contains(&capacity) {
            return Err(ChannelError::BadCapacity(capacity));
        }
        if !(1..=MAX_PRODUCERS).contains(&producers) {
            return Err(ChannelError::BadProducers(producers));
        }
        Ok(Self {
            capacity,
            producers,
        })
    }
    /// Offset of the first ring's data (64-byte aligned).
    pub(super) fn data(&self) -> usize {
        SLOTS + self.producers * SLOT_STRIDE
    }
    pub(super) fn slot(&self, i: usize) -> usize {
        SLOTS + i * SLOT_STRIDE
    }
    /// Offset of the receiver's journal word for ring `i`: the position up to which the
    /// receiver consumed it (published or not), stored at every release, read only by a
    /// receiver that takes over (a line of its own, after the rings: no other side reads
    /// it, so the store costs no cache traffic).
    pub(super) fn journal(&self, i: usize) -> usize {
        // `size()` checked that this does not overflow before any segment was made.
        self.data() + self.producers * self.capacity + i * 8
    }
    /// Bytes of the whole segment (`None` on overflow).
    pub(super) fn size(&self) -> Option<usize> {
        self.producers
            .checked_mul(self.capacity)?
            .checked_add(self.data())?
            .checked_add((self.producers * 8).next_multiple_of(64))
    }
    pub(super) fn ring(&self, region: &Arc<SharedRegion>, i: usize) -> SlotRing {
        SlotRing {
            region: region.clone(),
            ctl: self.slot(i),
            data: self.data() + i * self.capacity,
            cap: self.capacity,
        }
    }
}

/// A sender slot's control words in the shared segment.
pub(super) struct SlotCtl<'a> {
    pub(super) region: &'a SharedRegion,
    /// Offset of the slot's control lines.
    pub(super) ctl: usize,
}

impl SlotWords for SlotCtl<'_> {
    fn state(&self) -> u32 {
        state(self.region, self.ctl + S_CLAIMED)
    }
    fn swap_state(&self, from: u32, to: u32) -> bool {
        swap_state(self.region, self.ctl + S_CLAIMED, from, to)
    }
    fn sender_closed(&self) -> bool {
        flag(self.region, self.ctl + S_CLOSED)
    }
    fn clear_sender_flags(&self) {
        set_flag(self.region, self.ctl + S_CLOSED, 0);
        set_flag(self.region, self.ctl + S_PRODUCER_SLEEPING, 0);
    }
}

/// One sender's ring in the shared segment.
#[derive(Debug)]
pub struct SlotRing {
    pub(super) region: Arc<SharedRegion>,
    /// Offset of the slot's control lines.
    pub(super) ctl: usize,
    /// Offset of its data area.
    pub(super) data: usize,
    pub(super) cap: usize,
}

impl SlotRing {
    pub(super) fn producer_bell(&self) -> ShmBell<'_> {
        ShmBell {
            region: &self.region,
            sleeping: self.ctl + S_PRODUCER_SLEEPING,
            seq: self.ctl + S_SPACE_SEQ,
        }
    }
}

pub(super) fn consumer_bell(region: &SharedRegion) -> ShmBell<'_> {
    ShmBell {
        region,
        sleeping: CONSUMER_SLEEPING,
        seq: DATA_SEQ,
    }
}

impl RingMemory for SlotRing {
    #[inline]
    fn capacity(&self) -> usize {
        self.cap
    }
    #[inline]
    fn load_position(&self, producer: bool) -> u64 {
        let off = if producer {
            S_PRODUCER_POS
        } else {
            S_CONSUMER_POS
        };
        self.region
            .u64(self.ctl + off)
            .map_or(u64::MAX, |w| w.load(Ordering::Acquire))
    }
    #[inline]
    fn store_position(&self, producer: bool, value: u64) {
        let off = if producer {
            S_PRODUCER_POS
        } else {
            S_CONSUMER_POS
        };
        if let Some(w) = self.region.u64(self.ctl + off) {
            w.store(value, Ordering::Release);
        }
    }
    #[inline]
    fn write_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.region.u64(self.data + offset) {
            w.store(value, Ordering::Relaxed);
        }
    }
    #[inline]
    fn read_word(&self, offset: usize) -> u64 {
        self.region
            .u64(self.data + offset)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
    #[inline]
    fn commit_word(&self, offset: usize, value: u64) {
        if let Some(w) = self.region.u64(self.data + offset) {
            w.store(value, Ordering::Release);
        }
    }
    #[inline]
    fn poll_word(&self, offset: usize) -> u64 {
        self.region
            .u64(self.data + offset)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
    #[inline]
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.region.copy_in(self.data + offset, src);
    }
    #[inline]
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        if !self.region.copy_out(self.data + offset, dst) {
            dst.fill(0);
        }
    }
}

/// A side's doorbell in the shared segment (see [`crate::ring::wake`]).
pub(super) struct ShmBell<'a> {
    pub(super) region: &'a SharedRegion,
    pub(super) sleeping: usize,
    pub(super) seq: usize,
}

impl Doorbell for ShmBell<'_> {
    fn load_seq(&self) -> u32 {
        self.region
            .u32(self.seq)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
    /// Relaxed, as in the loom model: [`announce`] orders it with a fence.
    fn set_sleeping(&self, on: bool) {
        if let Some(w) = word32(self.region, self.sleeping) {
            w.store(u32::from(on), Ordering::Relaxed);
        }
    }
    #[inline]
    fn is_sleeping(&self) -> bool {
        flag(self.region, self.sleeping)
    }
    fn ring(&self) {
        bump(self.region, self.seq);
    }
    /// One slice at most, so that a dead peer is noticed (see the module docs).
    fn wait(&self, seen: u32, timeout: Option<Duration>) {
        if let Some(w) = self.region.u32(self.seq) {
            let slice = timeout.map_or(SLICE, |r| r.min(SLICE));
            futex::wait(w, seen, Some(slice));
        }
    }
}

pub(super) fn word32(region: &SharedRegion, off: usize) -> Option<&AtomicU32> {
    region.u32(off)
}

#[inline]
pub(super) fn flag(region: &SharedRegion, off: usize) -> bool {
    word32(region, off).is_some_and(|w| w.load(Ordering::Acquire) != 0)
}

pub(super) fn set_flag(region: &SharedRegion, off: usize, v: u32) {
    if let Some(w) = word32(region, off) {
        w.store(v, Ordering::SeqCst);
    }
}

/// Claim a word that starts at 0 (true: this process got it).
pub(super) fn claim(region: &SharedRegion, off: usize) -> bool {
    swap_state(region, off, 0, 1)
}

/// Move the 32-bit state word at `off` from `from` to `to` (true: this process did).
pub(super) fn swap_state(region: &SharedRegion, off: usize, from: u32, to: u32) -> bool {
    word32(region, off).is_some_and(|w| {
        w.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

/// The 32-bit state word at `off` (acquire; `u32::MAX`, no state, when out of range).
pub(super) fn state(region: &SharedRegion, off: usize) -> u32 {
    word32(region, off).map_or(u32::MAX, |w| w.load(Ordering::Acquire))
}

/// Bump a futex sequence word and wake everyone sleeping on it.
pub(super) fn bump(region: &SharedRegion, off: usize) {
    if let Some(w) = word32(region, off) {
        w.fetch_add(1, Ordering::Release);
        futex::wake(w, i32::MAX);
    }
}

/// The CPU this thread runs on (`u32::MAX` when unknown), published at `off` if it changed.
pub(super) fn publish_cpu(region: &SharedRegion, off: usize) -> u32 {
    let cpu = nix::sched::sched_getcpu().map_or(u32::MAX, |c| c as u32);
    if let Some(w) = word32(region, off) {
        if w.load(Ordering::Relaxed) != cpu {
            w.store(cpu, Ordering::Relaxed);
        }
    }
    cpu
}

pub(super) fn cpu_of(region: &SharedRegion, off: usize) -> u32 {
    word32(region, off).map_or(u32::MAX, |w| w.load(Ordering::Relaxed))
}

/// Write the channel header into a fresh segment.
pub(super) fn init(
    seg: Segment,
    layout: Layout,
) -> Result<(Arc<SharedRegion>, Layout), ChannelError> {
    seg.write(0, &MAGIC)?;
    seg.write(8, &VERSION)?;
    seg.write(H_CAPACITY, &(layout.capacity as u32))?;
    seg.write(H_PRODUCERS, &(layout.producers as u32))?;
    let region = SharedRegion::new(seg).ok_or(ChannelError::Corrupted("empty segment"))?;
    Ok((Arc::new(region), layout))
}

pub(super) type Made = (Arc<SharedRegion>, Layout);

/// Make an anonymous channel segment, and a descriptor for the peer; `tag` (empty: none)
/// goes after the layout (see [`super::tag`]).
pub(super) fn new_anonymous(
    producers: usize,
    capacity: usize,
    tag: &[u8],
) -> Result<(Made, OwnedFd), ChannelError> {
    let layout = Layout::new(producers, capacity)?;
    let size = tag::segment_size(layout, tag).ok_or(ChannelError::BadCapacity(capacity))?;
    let seg = SegmentOptions::new().anonymous(size)?;
    let fd = seg
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| ChannelError::Sys(SysError::from_io("dup", &e)))?;
    tag::write(&seg, layout, tag)?;
    Ok((init(seg, layout)?, fd))
}

/// Make a named channel segment (`O_EXCL`, exactly `mode`: 0600 unless shared on purpose;
/// removed when its creator drops); `tag` (empty: none) goes after the layout.
pub(super) fn new_named(
    name: &str,
    producers: usize,
    capacity: usize,
    mode: u32,
    tag: &[u8],
) -> Result<Made, ChannelError> {
    let layout = Layout::new(producers, capacity)?;
    let size = tag::segment_size(layout, tag).ok_or(ChannelError::BadCapacity(capacity))?;
    let seg = SegmentOptions::new()
        .mode(mode)
        .tag(TAG)
        .create(name, size)?;
    // Before the header: an end that sees the magic finds the tag in place.
    tag::write(&seg, layout, tag)?;
    init(seg, layout)
}

/// Validate a channel segment someone else made.
pub(super) fn attach(seg: Segment) -> Result<Made, ChannelError> {
    // A memfd its sender sealed against writing (`F_SEAL_WRITE`/`F_SEAL_FUTURE_WRITE`) is
    // mapped read-only: the first atomic store would kill this process with SIGSEGV.
    if seg.is_read_only() {
        return Err(ChannelError::Shm(ipcraft_shm::Error::ReadOnly));
    }
    if seg.len() < SLOTS + SLOT_STRIDE + 16 {
        return Err(ChannelError::Corrupted("segment too small for a channel"));
    }
    let magic: u64 = seg.read(0)?;
    let version: u32 = seg.read(8)?;
    if magic != MAGIC {
        return Err(ChannelError::Corrupted("not a channel segment"));
    }
    if version != VERSION {
        return Err(ChannelError::IncompatibleVersion {
            found: version,
            expected: VERSION,
        });
    }
    let cap = seg.read::<u32>(H_CAPACITY)? as usize;
    let producers = seg.read::<u32>(H_PRODUCERS)? as usize;
    let layout = Layout::new(producers, cap)
        .map_err(|_| ChannelError::Corrupted("bad capacity or sender count in the header"))?;
    if layout.size().is_none_or(|size| size > seg.len()) {
        return Err(ChannelError::Corrupted(
            "capacity does not match the segment",
        ));
    }
    let region = SharedRegion::new(seg).ok_or(ChannelError::Corrupted("empty segment"))?;
    Ok((Arc::new(region), layout))
}

pub(super) fn attach_fd(fd: OwnedFd) -> Result<Made, ChannelError> {
    attach(Segment::from_fd(fd, SLOTS + SLOT_STRIDE + 16)?)
}

/// Open a named channel with the strict owner and mode check: the safety of a named channel
/// rests on nobody but its owner being able to shrink it (mode 0600, see the module docs),
/// so a segment an untrusted owner owns, or that grants more than `mode` (0600 unless
/// shared on purpose), is refused.
pub(super) fn open_named(
    name: &str,
    mode: u32,
    trusted: ipcraft_core::TrustedOwners,
) -> Result<Made, ChannelError> {
    let seg = SegmentOptions::new().trust(trusted).tag(TAG).open(name)?;
    trusted
        .check(seg.as_fd(), "channel", name, Some(mode))
        .map_err(ipcraft_shm::Error::Untrusted)?;
    // Every end keeps the name alive for `ipcraft_shm::list`/`remove_stale`, so that a
    // channel whose creator died and whose ends were restarted is not removed under them.
    seg.mark_in_use()?;
    attach(seg)
}

/// A fresh open file description of the segment (an inherited or duplicated descriptor
/// shares its description with the peer's, so its locks could not tell them apart).
pub(super) fn own_description(seg: &Segment) -> Result<OwnedFd, ChannelError> {
    let path = format!("/proc/self/fd/{}", seg.as_raw_fd());
    nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ChannelError::Sys(SysError::new("open", e).on(path)))
}

/// Take the write lock on `byte` (`false`: another end holds it). The lock is the role's
/// claim and its liveness signal at once: the kernel drops it when the process dies, so
/// there is no moment at which a live end looks dead.
pub(super) fn lock_byte(fd: &OwnedFd, byte: i64) -> Result<bool, ChannelError> {
    let lock = flock(nix::libc::F_WRLCK as i16, byte);
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(ChannelError::Sys(SysError::new("fcntl(F_OFD_SETLK)", e))),
    }
}

/// Unlock `byte` (a claim given back).
pub(super) fn unlock_byte(fd: &OwnedFd, byte: i64) {
    let lock = flock(nix::libc::F_UNLCK as i16, byte);
    let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&lock));
}

pub(super) fn peer_alive(own: &OwnedFd, byte: i64) -> bool {
    let mut probe = flock(nix::libc::F_WRLCK as i16, byte);
    match fcntl(own, FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => probe.l_type != nix::libc::F_UNLCK as i16,
        Err(_) => true,
    }
}

pub(super) fn flock(kind: i16, byte: i64) -> nix::libc::flock {
    nix::libc::flock {
        l_type: kind,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    }
}

pub(super) fn slot_lock(i: usize) -> i64 {
    RECEIVER_LOCK + 1 + i as i64
}
