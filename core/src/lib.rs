#![forbid(unsafe_code)]
//! # ipcraft-core
//!
//! The little that several [ipcraft](https://docs.rs/ipcraft) mechanism crates share, kept in
//! one place so that no crate carries a second copy:
//!
//! | module | what | used by |
//! |---|---|---|
//! | [`frame`] | the length-prefixed frame codec ([`FrameWriter`], [`FrameReader`]) | pipe, socket |
//! | `codec` | the same frames as a `tokio_util` codec (`FrameCodec`, feature `tokio`) | pipe, socket |
//! | [`deadline`] | monotonic [`Deadline`]s and [`wait_fd`], poll with a timeout | pipe, socket, mqueue |
//! | [`name`] | POSIX IPC name rules ([`PosixName`]) | shm, mqueue, semaphores |
//! | [`sys_error`] | an errno with the operation that failed ([`SysError`]) | all |
//! | [`setting`] | per-handle settings changed through `&self` ([`FlagSetting`], [`TimeoutSetting`]) | pipe, socket |
//!
//! It is small on purpose: mechanism logic stays in the mechanism's crate.
//!
//! # Example
//!
//! Frames over any byte stream; here a pipe between this process and a child `cat`,
//! which echoes every byte back:
//!
//! ```
//! use ipcraft_core::{FrameReader, FrameWriter};
//! use std::process::{Command, Stdio};
//!
//! let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
//! let mut tx = FrameWriter::new(cat.stdin.take().unwrap());
//! let mut rx = FrameReader::new(cat.stdout.take().unwrap());
//! tx.send(b"hello")?;
//! tx.send(b"")?; // an empty frame is a frame too
//! drop(tx); // end of stream: cat exits
//! assert_eq!(rx.recv()?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(rx.recv()?.as_deref(), Some(&b""[..]));
//! assert_eq!(rx.recv()?, None); // clean end of stream, at a frame boundary
//! cat.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety model
//!
//! This crate contains no `unsafe` code (`#![forbid(unsafe_code)]`); system calls go through
//! [`nix`]'s safe wrappers.
//!
//! # Platform support
//!
//! Linux. The frame codec and name rules are portable; [`wait_fd`] uses `poll(2)`.

#[cfg(feature = "tokio")]
pub mod codec;
pub mod deadline;
pub mod frame;
pub mod name;
pub mod setting;
pub mod sys_error;
#[doc(hidden)]
pub mod test_hook;
pub mod trust;

pub use deadline::{Deadline, Interest, wait_fd};
pub use frame::{FrameError, FrameReader, FrameWriter};
pub use name::{NameError, PosixName};
pub use setting::{FlagSetting, TimeoutSetting};
pub use sys_error::{ErrnoContext, SysError};
pub use trust::{Found, MAX_ALSO, TrustError, TrustedOwners};

/// The README's examples, compiled and run as doctests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
