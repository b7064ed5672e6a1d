//! Handing descriptors to a child process, safely: systemd's socket-activation protocol.
//!
//! The parent attaches named descriptors to a [`std::process::Command`] with [`Handover`];
//! the child finds them at 3, 4, ... and takes each by name, once, as an `OwnedFd`
//! ([`take`]), as any type that converts from one ([`take_as`]: pipe ends, sockets,
//! listeners, segments, message queues) or as a channel end (`Receiver::inherited`,
//! `Sender::inherited`). No `unsafe`, no `fcntl`, no `from_raw_fd` on either side.
//!
//! ```standalone_crate
//! # #[cfg(all(feature = "shm", feature = "sync"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipcraft::channel::{Receiver, Sender};
//! use ipcraft::handover::{self, Handover};
//!
//! if std::env::var_os("IPCRAFT_HANDOVER_DOC_WORKER").is_some() {
//!     handover::init()?; // first thing: reads (and clears) the environment
//!     let mut requests = Receiver::inherited("requests")?;
//!     let mut replies = Sender::inherited("replies")?;
//!     let request = requests.recv_timeout(std::time::Duration::from_secs(10))?;
//!     replies.send(&request.to_ascii_uppercase())?;
//!     return Ok(());
//! }
//! let (mut requests, requests_fd) = Sender::anonymous(1 << 16)?;
//! let (mut replies, replies_fd) = Receiver::anonymous(1 << 16)?;
//! let mut child = Handover::new()
//!     .fd("requests", &requests_fd)?
//!     .fd("replies", &replies_fd)?
//!     .command(std::env::current_exe()?) // this program again, as the worker
//!     .env("IPCRAFT_HANDOVER_DOC_WORKER", "1")
//!     .spawn()?;
//! requests.send(b"hello")?;
//! // (a timeout, so that a worker that failed cannot leave us waiting)
//! let reply = replies.recv_timeout(std::time::Duration::from_secs(10))?;
//! assert_eq!(reply, b"HELLO");
//! assert!(child.wait()?.success());
//! # Ok(()) }
//! # #[cfg(not(all(feature = "shm", feature = "sync")))] fn main() {}
//! ```
//!
//! (This example runs as a doctest: it starts itself as the worker. `examples/handover.rs`
//! in the repository is the same program.)
//!
//! # The protocol
//!
//! The child's environment holds `LISTEN_FDS=n`, `LISTEN_PID=<its pid>` and
//! `LISTEN_FDNAMES=name1:name2:...`, and descriptors `3..3 + n` are the ones handed, in
//! order, with close-on-exec clear; every other descriptor above 2 is closed at `exec`
//! (`close_range(2)` with `CLOSE_RANGE_CLOEXEC`, Linux 5.11 and later; before it, those that
//! are not close-on-exec stay open, and everything ipcraft and `std` open is). This is
//! `sd_listen_fds(3)`'s protocol, so a child written with this module also runs under systemd
//! (a `.socket` unit, `FileDescriptorName=`), `systemd-socket-activate` or `systemfd`, and a
//! parent written with it starts programs written for those.
//!
//! - **`LISTEN_PID`.** It must be the child's own pid, unknown before the `fork`; and the
//!   child side of `fork` in a threaded parent may not allocate, so it cannot edit the
//!   environment `Command` passes to `exec` (built before the fork). [`Handover::command`]
//!   therefore starts the program through `/bin/sh -c 'LISTEN_PID=$$; export LISTEN_PID;
//!   exec "$0" "$@"'` (the shell's pid is the program's: `exec` keeps it), one extra `exec`.
//!   [`Handover::apply`] attaches the descriptors to a command of yours without `LISTEN_PID`,
//!   for wrappers that exec (`env`, `timeout`, `cargo run`) and places without a shell; this
//!   module's child side accepts a missing `LISTEN_PID`, `sd_listen_fds(3)` does not.
//! - **Numbers.** In the child, every handed descriptor is first duplicated above `3 + n`
//!   (`F_DUPFD_CLOEXEC`), then moved onto its number with `dup2`, so a source that already
//!   sits at a target number is never overwritten before it is copied. The parent holds every
//!   free number below `3 + n` while the command lives, so that `Command`'s own error pipe,
//!   made at spawn, lands above the range.
//! - **Clearing the environment.** The variables are meant for one process. The child side
//!   reads them once, at the first call of any function here ([`init`]), and removes them
//!   from the environment right away if the process has one thread then: removing a variable
//!   while another thread may read the environment is undefined behaviour (hence
//!   `std::env::remove_var` is `unsafe`), so a program with threads keeps them, and either
//!   calls [`init`] before it starts threads, or calls the `unsafe` [`clear_env`] when it
//!   knows no thread touches the environment, or passes each [`Command`] it spawns through
//!   [`scrub`]. A grandchild that inherits them anyway finds a `LISTEN_PID` that is not its
//!   own and ignores them ([`HandoverError::NotForUs`]), and the descriptors themselves were
//!   made close-on-exec at the first call, so it inherits none.
//!
//! [`Command`]: std::process::Command
//!
//! # Safety model
//!
//! The `unsafe` code is in one file (`handover/sys.rs`, `#![allow(unsafe_code)]`):
//!
//! - Parent: the `pre_exec` hook that moves the descriptors runs between `fork` and `exec`,
//!   where only async-signal-safe calls are allowed: it calls `fcntl`, `dup2` and
//!   `close_range`, allocates nothing and takes no lock.
//! - Child: the descriptors named by `LISTEN_FDS` become `OwnedFd`s once per process, and
//!   only those open with close-on-exec clear (a descriptor this process opened through `std`
//!   or ipcraft, or one `sd_listen_fds(3)` already claimed, has it set). What the module
//!   cannot check, and relies on as the protocol does: nothing else in the process takes the
//!   same numbers as its own: do not read `LISTEN_FDS` with another library (the `listenfd`
//!   crate) in the same process, nor close descriptors 3 and up at startup.
//! - Each descriptor is taken once: [`take`] moves it out of the process-wide registry; a
//!   second take is [`HandoverError::AlreadyTaken`]. A [`take_as`] whose conversion fails
//!   ([`HandoverError::WrongType`]) converts a duplicate, so the descriptor stays, to be
//!   taken as what it is.

mod child;
mod error;
mod parent;
mod sys;

#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
mod channel;

pub use child::{init, names, scrub, take, take_as};
pub use error::HandoverError;
pub use parent::{Handover, MAX_FDS};
pub use sys::clear_env;
