//! The bodies of ipcraft's fuzz targets, one module per target, so that each runs in two
//! places:
//!
//! - under libFuzzer, on nightly: `fuzz/fuzz_targets/<target>.rs` calls `<target>::run`
//!   (`cargo +nightly fuzz run <target>` in `fuzz/`);
//! - as an ordinary test, on stable: `tests/replay.rs` runs every file of
//!   `fuzz/corpus/<target>/` through the same function, so `cargo test --workspace` (and so
//!   `cargo xtask ci`) replays the committed corpora without cargo-fuzz.
//!
//! Each target treats its input as what a hostile peer controls, and checks more than "no
//! panic" where a cheap oracle exists (a reference decoder, a model of the channel's
//! messages, the rules written out again). A failed check panics, which libFuzzer reports
//! as a crash and the replay as a failed test.
//!
//! | target | what the enemy controls | entry point |
//! |---|---|---|
//! | [`frame`] | a byte stream, and how it is chunked | `FrameReader`, `FrameWriter` (public) |
//! | [`channel`] | every byte of a channel segment, written between receives | `Receiver`, `Sender` on a memfd (public) |
//! | [`shm_header`] | every byte of a segment before it is opened | `SegmentOptions::from_fd`, `open` (public) |
//! | [`names`] | POSIX names, socket paths and abstract names | `PosixName`, `SocketAddr` (public), `sun_path` parsing (hidden) |
//! | [`cmsg`] | a `recvmsg` control buffer | the `SCM_RIGHTS` walk (hidden: `ipcraft_socket::__fuzz`) |
#![forbid(unsafe_code)]

pub mod channel;
pub mod cmsg;
pub mod frame;
pub mod names;
pub mod shm_header;

/// A target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as in `fuzz/Cargo.toml` and `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame::run),
    ("channel", channel::run),
    ("shm_header", shm_header::run),
    ("names", names::run),
    ("cmsg", cmsg::run),
];

/// Reads an input front to back; past its end, every read yields zeroes (so that any prefix
/// of an input is an input too, which keeps libFuzzer's mutations cheap to interpret).
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Read `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}
