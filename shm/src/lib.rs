#![deny(unsafe_code)]
//! # ipcraft-shm
//!
//! POSIX shared memory (`shm_open`) and anonymous, sealed memfd segments for Linux, sound by
//! construction: memory another process can write is never exposed as `&[u8]`.
//!
//! - [`Segment::create`] / [`Segment::open`] / [`Segment::open_or_create`]: named segments,
//!   mode 0600 by default whatever the umask, `O_EXCL`, a race-free initialization protocol
//!   (exactly one process initializes; the others wait, and a creator that dies mid-way is
//!   reported, not waited for forever), removed by their creator on drop.
//! - Crash-only creation: a segment is built under a private temporary name and moved to its
//!   own with `renameat2(RENAME_NOREPLACE)` once sized and headed, so a name never leads to
//!   a half-made object, whenever its creator is killed; `open_or_create` takes back a name
//!   whose initializer died, and [`remove_stale`] removes a killed creator's temporary.
//! - [`Segment::anonymous`] / [`Segment::from_fd`]: memfd segments sealed against shrinking and
//!   growing, so no peer can SIGBUS us; checked seals and size when received.
//! - Access by copy ([`Segment::read_at`], [`Segment::write_at`], [`Segment::read`],
//!   [`Segment::write`], bounds-checked) and by shared reference only to atomics
//!   ([`Segment::get`], alignment- and bounds-checked).
//! - A 64-byte header on every ipcraft segment (magic, layout version, size, creator pid and
//!   start time, a user tag) so an opener refuses a foreign or incompatible segment.
//! - [`list`] and [`remove_stale`]: segments whose creator provably died (an OFD lock the
//!   kernel releases at death, not a pid that can be recycled), and the temporaries of
//!   creators killed while building one ([`Leftover`]).
//!
//! # Example: a counter shared with a child process
//!
//! ```
//! use ipcraft_shm::Segment;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::process::Command;
//!
//! let name = format!("/ipcraft-doc-{}", std::process::id());
//! let seg = Segment::create(&name, 4096)?;
//! let counter: &AtomicU64 = seg.get(0)?;
//! counter.store(41, Ordering::Release);
//! // Another process (here: Python's standard library) maps the same object and
//! // increments the counter that follows the 64-byte ipcraft header.
//! let script = "from multiprocessing import shared_memory as s, resource_tracker as r\n\
//!     import sys, struct\n\
//!     m = s.SharedMemory(name=sys.argv[1]); r.unregister(m._name, 'shared_memory')\n\
//!     v, = struct.unpack_from('<Q', m.buf, 64); struct.pack_into('<Q', m.buf, 64, v + 1)\n\
//!     m.close()";
//! let status = Command::new("python3").args(["-c", script, &name]).status();
//! if status.is_ok_and(|s| s.success()) {
//!     assert_eq!(counter.load(Ordering::Acquire), 42);
//! }
//! # Ok::<(), ipcraft_shm::Error>(())
//! ```
//!
//! # Layout, and peers in other languages
//!
//! A default segment starts with ipcraft's [`HEADER_SIZE`]-byte (64) header: offset 0 of
//! [`Segment::read_at`], [`Segment::write_at`] and [`Segment::get`] is byte 64 of the object
//! (64-byte aligned), where a C peer (`mmap` + 64) or Python's
//! `SharedMemory(name).buf[64:]` finds the data. For a plain POSIX segment with no header,
//! made by or for another program, [`SegmentOptions::raw`] maps the object's bytes as they
//! are (and gives up the header's checks). The README has an example of both.
//!
//! # Safety model
//!
//! Another process may write a segment at any moment, and a hostile or crashed one may
//! leave any bytes in it. So:
//! - no `&[u8]`/`&mut [u8]`/`&mut T` is ever formed over segment memory; bytes move by
//!   `copy_nonoverlapping` into or out of memory this process owns (concurrent writes by a
//!   peer may tear a copy, never corrupt ours);
//! - typed reads return `T: zerocopy::FromBytes` (valid for any bit pattern); typed writes
//!   take `T: IntoBytes + Immutable` (no padding, no interior mutability);
//! - shared references go only to [`AtomicData`] types (every byte inside an atomic);
//! - every offset and length, including those read from a header, is bounds-checked; a
//!   header that lies is an error.
//!
//! All `unsafe` lives in one file, `src/sys.rs`, which opts in with `#![allow(unsafe_code)]`
//! and states these invariants at its top; everywhere else the crate denies it.
//!
//! **Truncation.** A named segment cannot be sealed, so any process allowed to write it can
//! shrink it with `ftruncate`, and touching the lost pages then kills us with SIGBUS. Share
//! named segments only with processes you trust; give untrusted peers a sealed
//! [`Segment::anonymous`] segment instead.
//!
//! **Trust on open.** `/dev/shm` is writable by every user, so a name may have been made
//! first by someone else. Every open of a name checks the owner on the descriptor and joins
//! only segments of a trusted owner (default: our effective uid and root; see
//! [`SegmentOptions::trust`]), and `open_or_create` refuses an existing segment whose mode is
//! wider than it would have created: [`Error::Untrusted`] says who owns it and what to do.
//!
//! # Platform support
//!
//! Linux: memfd sealing, open-file-description locks for creator liveness, `/dev/shm` for
//! listing.

mod convert;
mod creator;
mod error;
mod header;
mod locks;
mod options;
mod owned_name;
mod segment;
mod stale;
mod sys;
mod temp;

pub use error::{Error, Result};
pub use header::{HEADER_SIZE, HeaderInfo, LAYOUT_VERSION, MAGIC};
pub use locks::ByteLocks;
pub use options::{DEFAULT_MODE, DEFAULT_OPEN_TIMEOUT, SegmentOptions};
pub use segment::{Segment, unlink};
pub use stale::{IpcraftState, Leftover, SegmentInfo, list, remove_stale};
pub use sys::AtomicData;

/// The README's examples, compiled and run as doctests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
