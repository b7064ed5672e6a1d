//! The kernel's message queue limits, read from `/proc/sys/fs/mqueue` and
//! `getrlimit(RLIMIT_MSGQUEUE)`, and the diagnosis that turns the kernel's bare `EINVAL`,
//! `EMFILE` and `ENOSPC` into [`Error::LimitExceeded`].
//!
//! See `mq_overview(7)`.

use crate::error::{Error, Result};
use crate::queue::Attributes;
use ipcraft_core::{PosixName, SysError};
use nix::errno::Errno;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use std::fmt;

/// Where the sysctl files live.
const PROC_DIR: &str = "/proc/sys/fs/mqueue";

/// The kernel's own ceiling on `max_messages`, even with `CAP_SYS_RESOURCE` (`HARD_MSGMAX`).
pub const HARD_MSG_MAX: u64 = 65_536;
/// The kernel's own ceiling on `max_message_size`, even with `CAP_SYS_RESOURCE`
/// (`HARD_MSGSIZEMAX`, 16 MiB).
pub const HARD_MSGSIZE_MAX: u64 = 16 * 1024 * 1024;

/// One of the limits that can stop a queue from being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// `fs.mqueue.msg_max`: the most messages a queue may hold (unprivileged).
    MsgMax,
    /// `fs.mqueue.msgsize_max`: the largest message a queue may take (unprivileged).
    MsgsizeMax,
    /// `fs.mqueue.queues_max`: the most queues in the system (IPC namespace).
    QueuesMax,
    /// `RLIMIT_MSGQUEUE`: the bytes all queues of one user may take.
    RlimitMsgqueue,
}

impl Limit {
    /// The limit's name as the system spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MsgMax => "fs.mqueue.msg_max",
            Self::MsgsizeMax => "fs.mqueue.msgsize_max",
            Self::QueuesMax => "fs.mqueue.queues_max",
            Self::RlimitMsgqueue => "RLIMIT_MSGQUEUE",
        }
    }

    /// The unit of the limit's value.
    pub fn unit(self) -> &'static str {
        match self {
            Self::MsgMax => "messages",
            Self::MsgsizeMax | Self::RlimitMsgqueue => "bytes",
            Self::QueuesMax => "queues",
        }
    }

    /// What the limit bounds, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::MsgMax => "the most messages one queue may hold",
            Self::MsgsizeMax => "the largest message one queue may take",
            Self::QueuesMax => "the most message queues on the system, all users together",
            Self::RlimitMsgqueue => {
                "the bytes all message queues of this user may take, counted for each queue as \
                 max_messages * (max_message_size + about 100 bytes of bookkeeping)"
            }
        }
    }

    /// How to raise it.
    pub fn how_to_raise(self) -> &'static str {
        match self {
            Self::MsgMax => {
                "ask for fewer messages, or raise the limit as root with `sysctl -w \
                 fs.mqueue.msg_max=N` (up to 65536; a process with CAP_SYS_RESOURCE is not bound \
                 by it)"
            }
            Self::MsgsizeMax => {
                "ask for smaller messages, or raise the limit as root with `sysctl -w \
                 fs.mqueue.msgsize_max=N` (up to 16 MiB; a process with CAP_SYS_RESOURCE is not \
                 bound by it)"
            }
            Self::QueuesMax => {
                "remove unused queues (they persist until unlinked: see /dev/mqueue when \
                 mounted), or raise the limit as root with `sysctl -w fs.mqueue.queues_max=N`"
            }
            Self::RlimitMsgqueue => {
                "make the queue smaller, remove this user's unused queues, or raise the limit \
                 (`ulimit -q N` in the shell that starts the program, `msgqueue` in \
                 /etc/security/limits.conf, LimitMSGQUEUE= in a systemd unit, or \
                 setrlimit(RLIMIT_MSGQUEUE))"
            }
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The message queue limits in force for this process.
///
/// # Examples
///
/// ```
/// let limits = ipcraft_mqueue::Limits::read()?;
/// println!(
///     "up to {} messages of up to {} bytes per queue",
///     limits.msg_max, limits.msgsize_max
/// );
/// # Ok::<(), ipcraft_mqueue::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// `fs.mqueue.msg_max`: the most messages one queue may hold.
    pub msg_max: u64,
    /// `fs.mqueue.msgsize_max`: the largest message one queue may take, in bytes.
    pub msgsize_max: u64,
    /// `fs.mqueue.queues_max`: the most queues on the system.
    pub queues_max: u64,
    /// `fs.mqueue.msg_default`: `max_messages` of a queue created without attributes.
    pub msg_default: u64,
    /// `fs.mqueue.msgsize_default`: `max_message_size` of a queue created without attributes.
    pub msgsize_default: u64,
    /// The soft `RLIMIT_MSGQUEUE` in bytes; `None` when unlimited.
    pub rlimit_msgqueue: Option<u64>,
}

impl Limits {
    /// Read the limits from `/proc/sys/fs/mqueue` and `getrlimit(2)`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] when a file cannot be read or parsed (`EINVAL`), or `getrlimit` fails.
    pub fn read() -> Result<Self> {
        let (soft, _hard) = getrlimit(Resource::RLIMIT_MSGQUEUE)
            .map_err(|e| Error::Sys(SysError::new("getrlimit", e).on("RLIMIT_MSGQUEUE")))?;
        Ok(Self {
            msg_max: read_proc("msg_max")?,
            msgsize_max: read_proc("msgsize_max")?,
            queues_max: read_proc("queues_max")?,
            msg_default: read_proc("msg_default")?,
            msgsize_default: read_proc("msgsize_default")?,
            rlimit_msgqueue: (soft != RLIM_INFINITY).then_some(soft),
        })
    }

    /// About how many bytes of [`RLIMIT_MSGQUEUE`](Limit::RlimitMsgqueue) a queue with
    /// `attrs` takes: its messages plus the kernel's bookkeeping (`struct msg_msg` and a
    /// priority tree node per message, 48 bytes each on 64-bit Linux; see `mqueue_get_inode`
    /// in `ipc/mqueue.c`). Exact on x86-64 Linux 3.5 and later.
    pub fn queue_bytes(attrs: &Attributes) -> u64 {
        const MSG_MSG: u64 = 48;
        const TREE_NODE: u64 = 48;
        let n = attrs.max_messages as u64;
        let size = attrs.max_message_size as u64;
        n.saturating_mul(MSG_MSG)
            .saturating_add(n.min(u64::from(crate::MQ_PRIO_MAX)) * TREE_NODE)
            .saturating_add(n.saturating_mul(size))
    }
}

fn read_proc(file: &'static str) -> Result<u64> {
    let path = format!("{PROC_DIR}/{file}");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Sys(SysError::from_io("read", &e).on(&path)))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Sys(SysError::new("parse", Errno::EINVAL).on(&path)))
}

/// Explain why `mq_open(O_CREAT)` of `name` with `attrs` failed with `errno`: a limit when
/// one explains it, else the bare system error. Runs only after a failure, so a process that
/// the kernel lets past a limit (`CAP_SYS_RESOURCE`) is never refused by us.
pub(crate) fn diagnose_create(name: &PosixName, attrs: &Attributes, errno: Errno) -> Error {
    let bare = Error::sys("mq_open", name, errno);
    let Ok(limits) = Limits::read() else {
        return bare;
    };
    let exceeded = |limit, value, requested| Error::LimitExceeded {
        name: name.as_str().to_owned(),
        limit,
        value,
        requested,
    };
    let n = attrs.max_messages as u64;
    let size = attrs.max_message_size as u64;
    match errno {
        Errno::EINVAL if n > limits.msg_max || n > HARD_MSG_MAX => {
            exceeded(Limit::MsgMax, limits.msg_max.min(HARD_MSG_MAX), Some(n))
        }
        Errno::EINVAL if size > limits.msgsize_max || size > HARD_MSGSIZE_MAX => exceeded(
            Limit::MsgsizeMax,
            limits.msgsize_max.min(HARD_MSGSIZE_MAX),
            Some(size),
        ),
        Errno::ENOSPC => exceeded(Limit::QueuesMax, limits.queues_max, None),
        // EMFILE is also "this process has too many descriptors open": tell them apart by
        // asking for one more descriptor.
        Errno::EMFILE if process_has_a_free_fd() => match limits.rlimit_msgqueue {
            Some(value) => {
                let needed = Limits::queue_bytes(attrs);
                exceeded(
                    Limit::RlimitMsgqueue,
                    value,
                    (needed > value).then_some(needed),
                )
            }
            None => bare,
        },
        _ => bare,
    }
}

fn process_has_a_free_fd() -> bool {
    // O_CLOEXEC is std's default; the descriptor is closed again at once.
    std::fs::File::open("/").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bytes_follows_the_kernel_formula() {
        // Checked against the kernel: `ulimit -q 82880` lets a 10 x 8192 queue be created,
        // `ulimit -q 82879` does not (x86-64, Linux 6).
        assert_eq!(Limits::queue_bytes(&Attributes::new(10, 8192)), 82_880);
        assert_eq!(Limits::queue_bytes(&Attributes::new(1, 1)), 97);
        // Priority tree nodes are capped at MQ_PRIO_MAX.
        assert_eq!(
            Limits::queue_bytes(&Attributes::new(40_000, 0)),
            40_000 * 48 + 32_768 * 48
        );
        assert_eq!(
            Limits::queue_bytes(&Attributes::new(usize::MAX, usize::MAX)),
            u64::MAX
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn limits_can_be_read() {
        let l = Limits::read().unwrap();
        assert!(l.msg_max >= 1 && l.msgsize_max >= 128 && l.queues_max >= 1);
    }
}
