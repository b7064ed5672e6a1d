#![allow(unsafe_code)]
//! The one file of the handover with `unsafe` code: the child's side of `fork` (moving the
//! handed descriptors to 3, 4, ... before `exec`), adopting inherited descriptor numbers, and
//! removing the protocol's variables from the environment.
//!
//! Invariants this file upholds, and who upholds the rest:
//! - [`install`]'s `pre_exec` closure runs in the forked child of a possibly multi-threaded
//!   parent, where another thread may have held any lock (the allocator's included) at the
//!   fork. It calls only async-signal-safe system calls (`fcntl`, `dup2`, `close_range`),
//!   allocates nothing (its buffers were allocated in the parent) and takes no lock.
//! - It overwrites descriptor numbers `3..3 + n` of the *child* only. Whatever they held there
//!   is a copy of a parent descriptor that the child never uses again: the child execs next,
//!   or `_exit`s without running destructors, so no owner closes a number twice. The one
//!   descriptor `std` still needs after the closure (its close-on-exec error pipe) is kept out
//!   of that range by the parent, which holds every free number in it (see `parent.rs`).
//! - [`adopt_inherited`] turns the numbers `3..3 + n` into `OwnedFd`s at most once per
//!   process (a process-wide flag here), and only numbers that are open and whose
//!   close-on-exec flag is clear: a descriptor opened in this process by `std` or by ipcraft
//!   has the flag set, and so has one that `sd_listen_fds(3)` already claimed, so the
//!   descriptors adopted are the ones that survived `exec`. That nothing else in this process
//!   took the same numbers as its own without setting the flag (another reader of
//!   `LISTEN_FDS` such as the `listenfd` crate, or code that closes inherited descriptors and
//!   reuses the numbers) is the protocol's rule, documented in the module's safety model.
//! - The environment is changed only when this process has one thread (read from
//!   `/proc/self/status` just before), or under the caller's promise ([`clear_env`]).

use nix::libc;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

/// The first descriptor number of the protocol (`SD_LISTEN_FDS_START`).
pub(crate) const FIRST_FD: RawFd = 3;

/// The protocol's environment variables.
pub(crate) const VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Arranges for `sources` to appear at `3, 4, ...` in the child, in order, with close-on-exec
/// clear, and for every other descriptor from `3 + n` up to be closed at `exec`. `holds` are
/// kept alive with the command (they keep `std`'s own descriptors out of `3..3 + n`).
pub(crate) fn install(cmd: &mut Command, sources: Vec<OwnedFd>, holds: Vec<OwnedFd>) {
    let mut temps: Vec<RawFd> = vec![-1; sources.len()];
    let closure = move || {
        let _keep = &holds;
        remap(&sources, &mut temps)
    };
    // SAFETY:
    // - `pre_exec` wants a closure that is sound between `fork` and `exec`: `remap` calls
    //   only async-signal-safe system calls, allocates nothing (`temps` was allocated here, in
    //   the parent; `io::Error::last_os_error` does not allocate) and takes no lock.
    // - Descriptors it overwrites in the child are never used or closed by their owners
    //   there (the module docs: exec or `_exit` follows); `std`'s error pipe is above the
    //   range, held so by the caller's `holds` (best effort: see `parent.rs`).
    unsafe { cmd.pre_exec(closure) };
}

/// The child's side: duplicate every source above the target range first (so that a source
/// already sitting at a target number is never overwritten before it is copied), then `dup2`
/// each onto its number (the copy `dup2` makes has close-on-exec clear), then mark everything
/// above the range close-on-exec.
fn remap(sources: &[OwnedFd], temps: &mut [RawFd]) -> io::Result<()> {
    // At most `MAX_FDS` sources (checked by the parent), so this cannot overflow.
    let end = FIRST_FD + sources.len() as RawFd;
    for (src, tmp) in sources.iter().zip(temps.iter_mut()) {
        // SAFETY:
        // - `fcntl(F_DUPFD_CLOEXEC)` on a descriptor the closure owns (`sources` lives as long
        //   as the closure); no pointer arguments; async-signal-safe.
        let fd = unsafe { libc::fcntl(src.as_raw_fd(), libc::F_DUPFD_CLOEXEC, end) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        *tmp = fd;
    }
    for (target, &tmp) in (FIRST_FD..).zip(temps.iter()) {
        loop {
            // SAFETY:
            // - `tmp` is the duplicate made above; `target` is below `end`, so no duplicate
            //   is overwritten. What `target` held is a child copy nobody uses (module docs).
            //   No pointer arguments; async-signal-safe.
            if unsafe { libc::dup2(tmp, target) } >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    // The temporaries are close-on-exec; so, from here, is everything else the child holds
    // above the range (a descriptor some code opened without `O_CLOEXEC`). Linux 5.11 and
    // later; on an older kernel this fails and the rest stays as it was (everything ipcraft
    // and `std` open is close-on-exec anyway).
    // SAFETY:
    // - `close_range(2)` with `CLOSE_RANGE_CLOEXEC` closes nothing now: it only sets the
    //   close-on-exec flag of this (the child's) descriptor table. Integer arguments only; a
    //   plain system call, async-signal-safe.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            end as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

/// Why an inherited descriptor number could not be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Nothing is open at that number.
    Closed,
    /// Its close-on-exec flag is set: it was opened or claimed in this process, not inherited.
    Claimed,
}

/// Whether [`adopt_inherited`] ran in this process.
static ADOPTED: Mutex<bool> = Mutex::new(false);

/// The descriptors `3..3 + count`, adopted and made close-on-exec, each or why not; `None`
/// when this process adopted them before (it happens at most once).
pub(crate) fn adopt_inherited(count: usize) -> Option<Vec<Result<OwnedFd, Unusable>>> {
    let mut adopted = ADOPTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *adopted {
        return None;
    }
    *adopted = true;
    let numbers = (FIRST_FD..).take(count);
    Some(numbers.map(adopt).collect())
}

fn adopt(fd: RawFd) -> Result<OwnedFd, Unusable> {
    // SAFETY:
    // - `fcntl(F_GETFD)` only reads the flags of a number (`EBADF` if nothing is open
    //   there); no pointer arguments; it does not use or close the descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(Unusable::Closed);
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Err(Unusable::Claimed);
    }
    // SAFETY:
    // - `OwnedFd::from_raw_fd` wants an open descriptor that nothing else owns: it is open
    //   (checked above); it survived `exec` (close-on-exec clear) and `LISTEN_FDS` names it
    //   for this process, and the protocol gives such descriptors to the one reader of the
    //   environment, this module; this function runs at most once per number per process
    //   (`ADOPTED`).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Claimed now: no child of ours inherits it, and a second reader sees the flag.
    let _ = nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Ok(owned)
}

/// Whether this process has exactly one thread (`Threads:` in `/proc/self/status`); `false`
/// when it cannot tell.
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .map(|n| n.trim() == "1")
        })
        .unwrap_or(false)
}

/// Removes the protocol's variables from the environment if this process has one thread;
/// says whether it did.
pub(crate) fn remove_vars_if_alone() -> bool {
    if !single_threaded() {
        return false;
    }
    for var in VARS {
        // SAFETY:
        // - `remove_var` wants no other thread reading or writing the environment meanwhile:
        //   this process has one thread, this one (checked just above), and only this thread
        //   could start another, which it does not do before this loop ends.
        unsafe { std::env::remove_var(var) };
    }
    true
}

/// Reads the handed descriptors (as the first call of [`take`](super::take) would), then
/// removes `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from this process's environment,
/// so that its children do not inherit them.
///
/// The first call into this module removes them by itself when the process has one thread
/// at that moment; call this one in a program that already started threads, or use
/// [`scrub`](super::scrub) on each [`Command`] it spawns instead (no `unsafe` needed).
///
/// # Safety
///
/// As [`std::env::remove_var`]: no other thread may read or write the environment while this
/// runs, through `std::env` or otherwise (`getenv(3)` in C code, `getaddrinfo(3)`, time zone
/// lookups by `localtime(3)`). Call it before starting threads, or while they cannot touch the
/// environment.
#[doc(alias = "unsetenv")]
pub unsafe fn clear_env() {
    let _ = super::init();
    for var in VARS {
        // SAFETY:
        // - `remove_var`'s precondition is this function's own, upheld by its caller (the
        //   `# Safety` section above).
        unsafe { std::env::remove_var(var) };
    }
}
