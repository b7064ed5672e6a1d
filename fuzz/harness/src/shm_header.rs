//! `ipcraft-shm`'s header parser: opening a segment whose every byte (header included) is
//! arbitrary, through the public API: [`SegmentOptions::from_fd`] on a sealed memfd, and
//! [`SegmentOptions::open`] on a uniquely named object in `/dev/shm` (with a zero timeout,
//! so that a segment that looks half-made is an error at once, not a wait).
//!
//! Input: `[flags] [min_len: u16] [tag: u8] [offset: u32] [segment bytes...]`.
//!
//! Oracle: a segment that opens never claims more data than the object holds; its data is
//! the object's bytes after the header (raw: all of them); every access past its end is an
//! error; the header it reports obeys the tag asked for.

// The atomics only read words of the segment through `Segment::get`, as a user would; no
// protocol here for loom to check.
#![allow(clippy::disallowed_types)]

use crate::Input;
use ipcraft_shm::{HEADER_SIZE, Segment, SegmentOptions};
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const SEAL_WRITE: u8 = 1;
const SKIP_A_SEAL: u8 = 2;
const READ_ONLY: u8 = 4;
const RAW: u8 = 8;
const NAMED: u8 = 16;

fn options(flags: u8, tag: u8) -> SegmentOptions {
    SegmentOptions::new()
        .read_only(flags & READ_ONLY != 0)
        .raw(flags & RAW != 0)
        .tag(u64::from(tag))
        .timeout(Duration::ZERO)
}

/// What any segment that opened must satisfy, for an object holding `file`.
fn check(seg: &Segment, file: &[u8], flags: u8, tag: u8, offset: usize) {
    let raw = flags & RAW != 0;
    let start = if raw { 0 } else { HEADER_SIZE };
    let len = seg.len();
    assert!(
        start + len <= file.len(),
        "{len} data bytes claimed in an object of {}",
        file.len()
    );
    match seg.header() {
        None => assert!(raw, "an ipcraft segment without its header"),
        Some(info) => {
            assert!(!raw);
            assert_eq!(len as u64, info.data_len);
            assert!(
                tag == 0 || info.tag == u64::from(tag),
                "tag {} accepted",
                info.tag
            );
        }
    }
    // The data is the object's bytes, and nothing past it is reachable.
    let mut all = vec![0u8; len];
    seg.read_at(0, &mut all).expect("read the whole data area");
    assert_eq!(all, file[start..start + len]);
    assert!(seg.read_at(len, &mut [0u8]).is_err());
    assert!(seg.read_at(usize::MAX, &mut [0u8]).is_err());
    assert!(
        seg.read_at(offset, &mut [0u8; 16]).is_ok()
            == (offset.checked_add(16).is_some_and(|e| e <= len))
    );
    assert!(seg.read::<u64>(len.wrapping_sub(7)).is_err());
    if seg.is_read_only() {
        assert!(seg.write_at(0, &[1]).is_err());
    } else if len > 0 {
        seg.write_at(len - 1, &[0xa5])
            .expect("write the last data byte");
        assert!(seg.write_at(len, &[0]).is_err());
    }
    let _ = seg
        .get::<AtomicU64>(offset)
        .map(|w| w.load(Ordering::Relaxed));
    let _ = seg
        .get::<AtomicU32>(offset)
        .map(|w| w.load(Ordering::Relaxed));
    let _ = seg.load_u64(offset, Ordering::Acquire);
}

fn memfd(bytes: &[u8], flags: u8) -> OwnedFd {
    let fd = memfd_create(
        c"ipcraft-fuzz",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .expect("memfd_create");
    let mut file = File::from(fd);
    file.write_all(bytes).expect("fill the memfd");
    let mut seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW;
    if flags & SKIP_A_SEAL != 0 {
        seals = if bytes.len().is_multiple_of(2) {
            SealFlag::F_SEAL_SHRINK
        } else {
            SealFlag::F_SEAL_GROW
        };
    }
    if flags & SEAL_WRITE != 0 {
        seals |= SealFlag::F_SEAL_WRITE;
    }
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).expect("seal the memfd");
    file.into()
}

/// A named object holding `bytes`, removed when dropped.
struct Named(String);

impl Named {
    fn new(bytes: &[u8]) -> Self {
        let name = format!("/ipcraft-fuzz-shm-{}", std::process::id());
        let _ = nix::sys::mman::shm_unlink(name.as_str());
        let fd = nix::sys::mman::shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .expect("shm_open");
        let named = Self(name);
        File::from(fd).write_all(bytes).expect("fill the object");
        named
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = nix::sys::mman::shm_unlink(self.0.as_str());
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let min_len = usize::from(input.u16());
    let tag = input.u8();
    let offset = input.u32() as usize;
    let bytes = input.rest();

    if let Ok(seg) = options(flags, tag).from_fd(memfd(bytes, flags), min_len) {
        assert!(flags & SKIP_A_SEAL == 0, "an unsealed memfd was accepted");
        assert!(seg.len() >= min_len, "fewer data bytes than asked for");
        assert!(flags & SEAL_WRITE == 0 || seg.is_read_only());
        check(&seg, bytes, flags, tag, offset);
    }

    if flags & NAMED != 0 {
        let named = Named::new(bytes);
        if let Ok(seg) = options(flags, tag).open(&named.0) {
            assert_eq!(seg.name(), Some(named.0.as_str()));
            check(&seg, bytes, flags, tag, offset);
        }
    }
}
