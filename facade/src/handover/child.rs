//! The child's side: the descriptors this process was handed, taken by name, once.

use super::error::HandoverError;
use super::sys::{self, FIRST_FD, Unusable};
use std::ffi::OsString;
use std::os::fd::{OwnedFd, RawFd};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// More than this in `LISTEN_FDS` is not a real hand-over (the kernel's default ceiling for
/// descriptors per process, `fs.nr_open`), and would make the first call loop that long.
const MAX_LISTEN_FDS: usize = 1 << 20;

/// What this process was handed: read from the environment once, at the first call.
static HANDED: OnceLock<Result<Mutex<Registry>, HandoverError>> = OnceLock::new();

#[derive(Debug)]
struct Registry {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    fd: RawFd,
    slot: Slot,
}

#[derive(Debug)]
enum Slot {
    Ready(OwnedFd),
    Taken,
    Unusable(Unusable),
}

/// Reads the hand-over now: parses `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`, adopts
/// the descriptors (and makes them close-on-exec, so that no child of this process inherits
/// them), and removes the three variables from the environment if this process has one
/// thread at this moment. Every other function of this module does this at its first call;
/// call this one first thing in `main`, before starting threads (an async runtime's
/// included), so that the variables are removed.
///
/// # Errors
///
/// [`HandoverError::NotHanded`] when `LISTEN_FDS` is not set, [`HandoverError::NotForUs`]
/// when `LISTEN_PID` is another process's, [`HandoverError::BadVariable`]; the same error
/// at every later call.
#[doc(alias = "sd_listen_fds")]
pub fn init() -> Result<(), HandoverError> {
    registry().map(drop)
}

/// Takes the descriptor handed under `name`, once; it is close-on-exec.
///
/// systemd may hand several descriptors under one name (`FileDescriptorName=`): each call
/// takes the next of them.
///
/// # Errors
///
/// As [`init`], and [`HandoverError::Missing`] (with the names that were handed),
/// [`HandoverError::AlreadyTaken`], [`HandoverError::Unusable`].
#[doc(alias = "sd_listen_fds_with_names")]
pub fn take(name: &str) -> Result<OwnedFd, HandoverError> {
    let mut registry = registry()?;
    let entry = find(&mut registry, name)?;
    match std::mem::replace(&mut entry.slot, Slot::Taken) {
        Slot::Ready(fd) => Ok(fd),
        _ => unreachable!("`find` returns ready entries"),
    }
}

/// Takes the descriptor handed under `name` as a `T`: a pipe end, a socket, a listener, a
/// segment, a message queue, a channel end (each checks the descriptor in its
/// `TryFrom<OwnedFd>`).
///
/// ```no_run
/// # #[cfg(feature = "socket")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ipcraft::socket::UnixListener;
/// let listener: UnixListener = ipcraft::handover::take_as("listener")?;
/// # Ok(()) }
/// # #[cfg(not(feature = "socket"))] fn main() {}
/// ```
///
/// # Errors
///
/// As [`take`], and [`HandoverError::WrongType`] with `T`'s own error when the conversion
/// fails: the descriptor then stays, to be taken as what it is.
pub fn take_as<T>(name: &str) -> Result<T, HandoverError>
where
    T: TryFrom<OwnedFd>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let mut registry = registry()?;
    let entry = find(&mut registry, name)?;
    let Slot::Ready(fd) = &entry.slot else {
        unreachable!("`find` returns ready entries");
    };
    // Convert a duplicate, so that a refusal leaves the original in place (the types hand a
    // refused descriptor back inside their errors, but not in a way generic code can reach).
    let copy = fd.try_clone().map_err(|source| HandoverError::Sys {
        op: "fcntl(F_DUPFD_CLOEXEC)",
        source,
    })?;
    match T::try_from(copy) {
        Ok(value) => {
            entry.slot = Slot::Taken;
            Ok(value)
        }
        Err(e) => Err(HandoverError::WrongType {
            name: name.to_owned(),
            fd: entry.fd,
            wanted: std::any::type_name::<T>(),
            source: Box::new(e),
        }),
    }
}

/// The names of the descriptors handed to this process and not taken yet, in order.
///
/// # Errors
///
/// As [`init`].
pub fn names() -> Result<Vec<String>, HandoverError> {
    let registry = registry()?;
    Ok(registry
        .entries
        .iter()
        .filter(|e| matches!(e.slot, Slot::Ready(_)))
        .map(|e| e.name.clone())
        .collect())
}

/// Removes `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from `cmd`'s environment, so that
/// the child it starts does not see this process's hand-over: for a program with threads,
/// where they stay in the environment (see [`init`]). Needs no `unsafe`, unlike
/// [`clear_env`](super::clear_env).
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for var in sys::VARS {
        cmd.env_remove(var);
    }
    cmd
}

fn registry() -> Result<MutexGuard<'static, Registry>, HandoverError> {
    match HANDED.get_or_init(read) {
        Ok(registry) => Ok(registry.lock().unwrap_or_else(PoisonError::into_inner)),
        Err(e) => Err(e.replay()),
    }
}

/// The first ready entry named `name`, or why there is none.
fn find<'r>(registry: &'r mut Registry, name: &str) -> Result<&'r mut Entry, HandoverError> {
    let mut named = registry
        .entries
        .iter()
        .filter(|e| e.name == name)
        .peekable();
    if named.peek().is_none() {
        return Err(HandoverError::Missing {
            name: name.to_owned(),
            handed: registry.entries.iter().map(|e| e.name.clone()).collect(),
        });
    }
    let unusable = named.find_map(|e| match e.slot {
        Slot::Unusable(why) => Some((e.fd, why)),
        _ => None,
    });
    if let Some(entry) = registry
        .entries
        .iter_mut()
        .find(|e| e.name == name && matches!(e.slot, Slot::Ready(_)))
    {
        return Ok(entry);
    }
    Err(match unusable {
        Some((fd, why)) => HandoverError::Unusable {
            name: name.to_owned(),
            fd,
            why: match why {
                Unusable::Closed => "nothing is open at that number",
                Unusable::Claimed => {
                    "it is close-on-exec, so it was opened or claimed in this process (by \
                     another reader of LISTEN_FDS?), not inherited"
                }
            },
        },
        None => HandoverError::AlreadyTaken {
            name: name.to_owned(),
        },
    })
}

/// Reads the environment, adopts the descriptors, removes the variables (if alone).
fn read() -> Result<Mutex<Registry>, HandoverError> {
    let fds = std::env::var_os("LISTEN_FDS");
    let pid = std::env::var_os("LISTEN_PID");
    let names = std::env::var_os("LISTEN_FDNAMES");
    let parsed = parse(fds.as_ref(), pid.as_ref(), names.as_ref());
    if fds.is_some() || pid.is_some() || names.is_some() {
        sys::remove_vars_if_alone();
    }
    let names = parsed?;
    let fds = sys::adopt_inherited(names.len()).ok_or_else(|| HandoverError::Sys {
        op: "adopting the handed descriptors",
        source: std::io::Error::other("they were adopted before in this process"),
    })?;
    let entries = names
        .into_iter()
        .zip(fds)
        .zip(FIRST_FD..)
        .map(|((name, fd), number)| Entry {
            name,
            fd: number,
            slot: match fd {
                Ok(fd) => Slot::Ready(fd),
                Err(why) => Slot::Unusable(why),
            },
        })
        .collect();
    Ok(Mutex::new(Registry { entries }))
}

/// The names of `LISTEN_FDS` descriptors, checked against `LISTEN_PID`.
fn parse(
    fds: Option<&OsString>,
    pid: Option<&OsString>,
    names: Option<&OsString>,
) -> Result<Vec<String>, HandoverError> {
    let bad = |var, value: &OsString, expected| HandoverError::BadVariable {
        var,
        value: value.to_string_lossy().into_owned(),
        expected,
    };
    let fds = fds.ok_or(HandoverError::NotHanded)?;
    let count: usize = fds
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n <= MAX_LISTEN_FDS)
        .ok_or_else(|| bad("LISTEN_FDS", fds, "a count of descriptors"))?;
    // A missing LISTEN_PID is accepted (as the `listenfd` crate does): `Handover::apply`
    // and `systemfd --no-pid` leave it out for wrappers that exec.
    if let Some(value) = pid {
        let listen_pid: u32 = value
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("LISTEN_PID", value, "a process id"))?;
        let ours = std::process::id();
        if listen_pid != ours {
            return Err(HandoverError::NotForUs {
                listen_pid,
                pid: ours,
            });
        }
    }
    match names {
        // systemd's default when there are no names.
        None => Ok(vec!["unknown".to_owned(); count]),
        Some(value) => {
            let text = value
                .to_str()
                .ok_or_else(|| bad("LISTEN_FDNAMES", value, "names separated by ':'"))?;
            let split: Vec<String> = if count == 0 && text.is_empty() {
                Vec::new()
            } else {
                text.split(':').map(str::to_owned).collect()
            };
            if split.len() != count {
                return Err(bad(
                    "LISTEN_FDNAMES",
                    value,
                    "as many names, separated by ':', as LISTEN_FDS counts",
                ));
            }
            Ok(split)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        s.into()
    }

    #[test]
    fn parses_the_protocol() {
        let me = std::process::id().to_string();
        let names = parse(Some(&os("2")), Some(&os(&me)), Some(&os("a:b"))).unwrap();
        assert_eq!(names, ["a", "b"]);
        let names = parse(Some(&os("2")), None, None).unwrap();
        assert_eq!(names, ["unknown", "unknown"]);
        assert_eq!(parse(Some(&os("0")), None, Some(&os(""))).unwrap().len(), 0);
    }

    #[test]
    fn refuses_what_is_not_ours_or_malformed() {
        assert!(matches!(
            parse(None, None, None),
            Err(HandoverError::NotHanded)
        ));
        let other = (std::process::id() + 1).to_string();
        assert!(matches!(
            parse(Some(&os("1")), Some(&os(&other)), None),
            Err(HandoverError::NotForUs { .. })
        ));
        for (fds, pid, names) in [
            ("x", None, None),
            ("2", Some("pid"), None),
            ("2", None, Some("a")),
        ] {
            let r = parse(Some(&os(fds)), pid.map(os).as_ref(), names.map(os).as_ref());
            assert!(matches!(r, Err(HandoverError::BadVariable { .. })), "{r:?}");
        }
    }
}
