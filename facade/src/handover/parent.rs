//! The parent's side: named descriptors attached to a [`Command`].

use super::error::HandoverError;
use super::sys;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::Command;

/// The most descriptors one hand-over takes (the child's numbers run from 3 to 3 + 1023).
pub const MAX_FDS: usize = 1024;

/// The shell script that sets `LISTEN_PID` to the child's own pid: `$$` is the shell's pid,
/// which `exec` keeps for the program ("$0"), run with the rest of the arguments ("$@").
const TRAMPOLINE: &str = r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#;

/// Named descriptors to hand to a child process, following systemd's socket-activation
/// protocol (`sd_listen_fds(3)`): the child finds them at 3, 4, ... in the order they were
/// added, with `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` in its environment, and takes
/// them by name with [`take`](super::take) (or [`take_as`](super::take_as),
/// `Receiver::inherited`, ...). Every other descriptor is closed in the child.
///
/// Each [`fd`](Self::fd) duplicates the descriptor (close-on-exec), so the handle it came
/// from stays yours; the duplicates live in the [`Command`] until it is dropped. Drop the
/// command once the child is spawned: a pipe's write end held there keeps the reader from
/// seeing end-of-file.
///
/// ```no_run
/// use ipcraft::handover::Handover;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
/// let mut child = Handover::new()
///     .fd("control", &theirs)?
///     .command("/usr/local/bin/worker") // a std::process::Command: add args, stdio, env
///     .arg("--verbose")
///     .spawn()?;
/// drop(theirs); // (the command keeps its own copy until it is dropped)
/// # let _ = (ours, child.wait()?); Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Handover {
    entries: Vec<(String, OwnedFd)>,
}

impl Handover {
    /// An empty hand-over.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fd` under `name`: the child finds it at `3 + ` the number added before it.
    ///
    /// Any descriptor: a channel's memfd (from [`Sender::anonymous`] or
    /// [`Receiver::anonymous`]), a socket or listener, a pipe end, a segment, a message queue.
    /// It is duplicated (`fcntl(F_DUPFD_CLOEXEC)`, see `fcntl(2)`); the original stays yours.
    ///
    /// [`Sender::anonymous`]: crate::channel::Sender::anonymous
    /// [`Receiver::anonymous`]: crate::channel::Receiver::anonymous
    ///
    /// # Errors
    ///
    /// [`HandoverError::BadName`] unless `name` is 1 to 255 printable ASCII characters other
    /// than `:` (systemd's rule); [`HandoverError::DuplicateName`] for a name added before;
    /// [`HandoverError::TooMany`] beyond [`MAX_FDS`]; [`HandoverError::Sys`] when the
    /// duplicate cannot be made (`EMFILE`).
    pub fn fd(mut self, name: &str, fd: impl AsFd) -> Result<Self, HandoverError> {
        validate_name(name)?;
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(HandoverError::DuplicateName {
                name: name.to_owned(),
            });
        }
        if self.entries.len() >= MAX_FDS {
            return Err(HandoverError::TooMany);
        }
        let copy = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| HandoverError::Sys {
                op: "fcntl(F_DUPFD_CLOEXEC)",
                source,
            })?;
        self.entries.push((name.to_owned(), copy));
        Ok(self)
    }

    /// The names added, in order (the child's descriptors 3, 4, ...).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// How many descriptors were added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A [`Command`] that runs `program` with these descriptors and the whole protocol,
    /// `LISTEN_PID` included: add arguments, environment, stdio and `spawn` it as usual.
    ///
    /// `LISTEN_PID` must be the child's own pid, which nobody knows before the `fork`, and
    /// which the child side of `fork` cannot write into the environment `Command` passes to
    /// `exec` (that environment is built before the fork, and setting a variable there would
    /// allocate, which is not allowed after a fork). So the command runs `/bin/sh -c
    /// 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"' program args...`: the shell's pid
    /// is the program's, as `exec` keeps it. The cost is one extra `exec` of `/bin/sh`. Hence
    /// the command's [`get_program`](Command::get_program) is `/bin/sh`, a program that is not
    /// found is reported by the shell (exit status 127) rather than by `spawn`, and
    /// [`arg0`](std::os::unix::process::CommandExt::arg0) names the shell. Where that does not
    /// fit (no `/bin/sh`, or a child started through a wrapper that forks), use
    /// [`apply`](Self::apply). (An [`env_clear`](Command::env_clear) on the returned command
    /// removes `LISTEN_FDS` and `LISTEN_FDNAMES` too: set the variables you want instead.)
    #[doc(alias = "LISTEN_PID")]
    pub fn command(self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(TRAMPOLINE).arg(program);
        self.install(&mut cmd);
        cmd
    }

    /// Attaches these descriptors to a command you built: `LISTEN_FDS`, `LISTEN_FDNAMES` and
    /// the descriptors, but **no `LISTEN_PID`** (an inherited one is removed), as
    /// `systemfd --no-pid` does: the program's pid is not known before it runs (see
    /// [`command`](Self::command), which sets it).
    ///
    /// An ipcraft child accepts a missing `LISTEN_PID` (as the `listenfd` crate does), and so
    /// does a child started through wrappers that `exec` (`env`, `nice`, `timeout`, `cargo
    /// run`); `sd_listen_fds(3)` in C does not, and reports no descriptors.
    ///
    /// Set everything else on the command before or after, in any order, except
    /// [`env_clear`](Command::env_clear), which removes the variables too: call it before.
    /// Other `pre_exec` hooks run after this one's if added after it.
    pub fn apply(self, cmd: &mut Command) -> &mut Command {
        cmd.env_remove("LISTEN_PID");
        self.install(cmd);
        cmd
    }

    fn install(self, cmd: &mut Command) {
        let names: Vec<&str> = self.names().collect();
        cmd.env("LISTEN_FDS", self.entries.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
        let sources: Vec<OwnedFd> = self.entries.into_iter().map(|(_, fd)| fd).collect();
        let holds = hold_free_numbers(sources.first(), sources.len());
        sys::install(cmd, sources, holds);
    }
}

/// Duplicates of `fd` on every number of `3..3 + n` that is free now, so that the descriptors
/// `Command` makes at spawn (its close-on-exec error pipe, which the child still writes after
/// the `pre_exec` hook if `exec` fails) land above the range the child overwrites.
///
/// Best effort: a number in the range that another part of the program holds now and closes
/// before the spawn opens a window (`spawn` may then report success for an `exec` that failed
/// later: the child exits with status 127 instead). Each duplicate is the lowest free number
/// (`dup(2)`), so the loop fills the gaps in order and stops at the first number past them.
fn hold_free_numbers(fd: Option<&OwnedFd>, n: usize) -> Vec<OwnedFd> {
    let Some(fd) = fd else {
        return Vec::new();
    };
    // n <= MAX_FDS: no overflow.
    let end = sys::FIRST_FD + n as RawFd;
    let mut holds = Vec::new();
    while let Ok(copy) = fd.try_clone() {
        if copy.as_raw_fd() >= end {
            break;
        }
        holds.push(copy);
    }
    holds
}

/// Checks a descriptor name against systemd's rule (`fdname_is_valid`): 1 to 255 bytes of
/// printable ASCII, no `:` (the separator of `LISTEN_FDNAMES`).
pub(crate) fn validate_name(name: &str) -> Result<(), HandoverError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b':');
    if ok {
        Ok(())
    } else {
        Err(HandoverError::BadName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_systemds_rule() {
        for good in ["requests", "a", "log file", "x=1", &"n".repeat(255)] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a:b", "tab\there", "new\nline", "é", &"n".repeat(256)] {
            assert!(
                matches!(validate_name(bad), Err(HandoverError::BadName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_name_is_given_once() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let h = Handover::new().fd("x", &a).unwrap();
        assert!(matches!(
            h.fd("x", &a),
            Err(HandoverError::DuplicateName { .. })
        ));
    }
}
