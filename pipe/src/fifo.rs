//! Named pipes: [`Fifo`] creates one (and removes it on drop); [`Fifo::open_reader`] and
//! [`Fifo::open_writer`] open one, with a timeout.

use crate::error::{Error, Result};
use crate::pipe::{PipeReader, PipeWriter, set_nonblocking};
use ipcraft_core::{Deadline, TrustedOwners};
use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, open, tee};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, lstat};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The mode of a FIFO made by [`Fifo::create`]: read and write for the owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// Longest path the kernel accepts (`PATH_MAX` 4096, including the terminating NUL).
const MAX_PATH: usize = 4095;
/// Longest path component (`NAME_MAX`).
const MAX_COMPONENT: usize = 255;
/// Longest pause between two checks for the other end while an open waits with a timeout.
pub(crate) const MAX_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A FIFO (named pipe) this process created; the path is removed when it is dropped, unless
/// [`persist`](Self::persist)ed.
///
/// Creation uses `mkfifo(3)` and then sets the mode exactly, whatever the umask (the file is
/// never more permissive than asked, even for an instant). Opening is separate
/// ([`Fifo::open_reader`], [`Fifo::open_writer`]), so any process that knows the path can
/// open either end.
///
/// Drop removes the path only if it still names a FIFO with the device and inode of the one
/// created here, so a file someone else put in its place is left alone.
///
/// # Examples
///
/// ```
/// use ipcraft_pipe::Fifo;
/// use std::io::{Read, Write};
/// use std::time::Duration;
///
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-{}", std::process::id()));
/// let fifo = Fifo::create(&path)?;
/// // A writer in another process (here: a shell).
/// let mut sh = std::process::Command::new("sh")
///     .arg("-c").arg("printf hello > \"$0\"").arg(fifo.path())
///     .spawn()?;
/// let mut r = Fifo::open_reader(fifo.path(), Some(Duration::from_secs(10)))?;
/// let mut got = String::new();
/// r.read_to_string(&mut got)?;
/// assert_eq!(got, "hello");
/// sh.wait()?;
/// drop(fifo); // removes the path
/// assert!(!path.exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "mkfifo")]
pub struct Fifo {
    path: PathBuf,
    dev: u64,
    ino: u64,
    persist: bool,
}

/// Options for creating a [`Fifo`] (its mode) and for opening one (whose FIFOs to trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until a FIFO is created with them"]
pub struct FifoOptions {
    mode: u32,
    trusted: TrustedOwners,
}

impl Default for FifoOptions {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE,
            trusted: TrustedOwners::new(),
        }
    }
}

impl FifoOptions {
    /// Mode [`DEFAULT_MODE`] (0600).
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits of the FIFO (at most `0o7777`), applied exactly, regardless of the
    /// process umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Create a FIFO at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] when anything exists at `path` (a stale FIFO included: see
    /// [`create_or_replace`](Self::create_or_replace)); [`Error::InvalidMode`];
    /// [`Error::PathTooLong`] / [`Error::InvalidPath`]; [`Error::Sys`] (`ENOENT`: a missing
    /// directory, `EACCES`).
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        let path = path.as_ref();
        check_path(path)?;
        let mode = self.checked_mode()?;
        match nix::unistd::mkfifo(path, mode) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                return Err(Error::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(Error::sys_on("mkfifo", path)(e)),
        }
        // From here on the FIFO is ours: remove it again if setting it up fails.
        let mut fifo = Fifo {
            path: path.to_owned(),
            dev: 0,
            ino: 0,
            persist: true,
        };
        let st = fix_mode(path, mode)?;
        fifo.dev = st.st_dev;
        fifo.ino = st.st_ino;
        fifo.persist = false;
        Ok(fifo)
    }

    /// Create a FIFO at `path`, first removing a FIFO already there (a stale one left by a
    /// process that died). Anything else at `path` is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::NotAFifo`] when `path` exists and is not a FIFO; otherwise as
    /// [`create`](Self::create).
    pub fn create_or_replace(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        let path = path.as_ref();
        check_path(path)?;
        self.checked_mode()?;
        match lstat(path) {
            Ok(st) if is_fifo(&st) => match nix::unistd::unlink(path) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(Error::sys_on("unlink", path)(e)),
            },
            Ok(_) => {
                return Err(Error::NotAFifo {
                    path: path.to_owned(),
                });
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys_on("lstat", path)(e)),
        }
        self.create(path)
    }

    /// Whose FIFOs [`open_reader`](Self::open_reader) and [`open_writer`](Self::open_writer)
    /// join: by default our effective uid and root. A FIFO in a directory others can write
    /// (`/tmp`) may have been made by someone else to read what we write or to feed us; its
    /// owner is checked on a descriptor before the open that waits for a peer.
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// [`Fifo::open_reader`], trusting these owners.
    ///
    /// # Errors
    ///
    /// As [`Fifo::open_reader`].
    pub fn open_reader(
        &self,
        path: impl AsRef<Path>,
        timeout: Option<Duration>,
    ) -> Result<PipeReader> {
        open_reader(path.as_ref(), timeout, &self.trusted)
    }

    /// [`Fifo::open_writer`], trusting these owners.
    ///
    /// # Errors
    ///
    /// As [`Fifo::open_writer`].
    pub fn open_writer(
        &self,
        path: impl AsRef<Path>,
        timeout: Option<Duration>,
    ) -> Result<PipeWriter> {
        open_writer(path.as_ref(), timeout, &self.trusted)
    }

    /// The owners an open trusts (for the async opens in `crate::tokio`).
    #[cfg(feature = "tokio")]
    pub(crate) fn trusted(&self) -> &TrustedOwners {
        &self.trusted
    }

    fn checked_mode(&self) -> Result<Mode> {
        if self.mode & !0o7777 != 0 {
            return Err(Error::InvalidMode { mode: self.mode });
        }
        Ok(Mode::from_bits_truncate(self.mode))
    }
}

impl Fifo {
    /// Create a FIFO at `path` with mode 0600; see [`FifoOptions::create`].
    ///
    /// # Errors
    ///
    /// As [`FifoOptions::create`].
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        FifoOptions::new().create(path)
    }

    /// Create a FIFO at `path` with mode 0600, replacing a stale FIFO; see
    /// [`FifoOptions::create_or_replace`].
    ///
    /// # Errors
    ///
    /// As [`FifoOptions::create_or_replace`].
    pub fn create_or_replace(path: impl AsRef<Path>) -> Result<Self> {
        FifoOptions::new().create_or_replace(path)
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the FIFO after this handle is dropped; returns its path.
    pub fn persist(mut self) -> PathBuf {
        self.persist = true;
        std::mem::take(&mut self.path)
    }

    /// Open the FIFO at `path` for reading. Opening a FIFO waits until a writer opens it
    /// too: with `timeout` `None` this waits as long as it takes; with `Some`, it returns
    /// [`Error::NoPeer`] when no writer came in time (checking every few milliseconds).
    /// The reader is blocking and close-on-exec.
    ///
    /// A writer that came, wrote and left before the check counts as having come: the
    /// reader gets its data, then end of stream.
    ///
    /// # Errors
    ///
    /// [`Error::NoPeer`]; [`Error::NotAFifo`] when `path` is something else;
    /// [`Error::PathTooLong`] / [`Error::InvalidPath`]; [`Error::Sys`] (`ENOENT`, `EACCES`).
    pub fn open_reader(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<PipeReader> {
        open_reader(path.as_ref(), timeout, &TrustedOwners::new())
    }

    /// Open the FIFO at `path` for writing. Opening a FIFO waits until a reader opens it too:
    /// with `timeout` `None` this waits as long as it takes; with `Some`, it returns
    /// [`Error::NoPeer`] when no reader came in time (checking every few milliseconds). The
    /// writer is blocking and close-on-exec.
    ///
    /// # Errors
    ///
    /// As [`open_reader`](Self::open_reader).
    pub fn open_writer(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<PipeWriter> {
        open_writer(path.as_ref(), timeout, &TrustedOwners::new())
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if self.persist {
            return;
        }
        // Only remove what is still the FIFO created here. Inode numbers are reused at once
        // on tmpfs, so the type is checked too.
        if let Ok(st) = lstat(&self.path) {
            if is_fifo(&st) && st.st_dev == self.dev && st.st_ino == self.ino {
                let _ = nix::unistd::unlink(&self.path);
            }
        }
    }
}

impl fmt::Debug for Fifo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fifo")
            .field("path", &self.path)
            .field("persist", &self.persist)
            .finish()
    }
}

fn is_fifo(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO
}

/// Reject paths the kernel would refuse, with an error that says the limit.
pub(crate) fn check_path(path: &Path) -> Result<()> {
    let bytes = path.as_os_str().as_bytes();
    let invalid = |reason| {
        Err(Error::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if bytes.is_empty() {
        return invalid("it is empty");
    }
    if bytes.contains(&0) {
        return invalid("it contains a NUL byte");
    }
    if bytes.len() > MAX_PATH {
        return Err(Error::PathTooLong {
            path: path.to_owned(),
            len: bytes.len(),
            max: MAX_PATH,
            what: "path",
        });
    }
    if let Some(longest) = bytes.split(|&b| b == b'/').map(<[u8]>::len).max() {
        if longest > MAX_COMPONENT {
            return Err(Error::PathTooLong {
                path: path.to_owned(),
                len: longest,
                max: MAX_COMPONENT,
                what: "path component",
            });
        }
    }
    Ok(())
}

/// Set a new FIFO's mode exactly (mkfifo applied the umask), through a descriptor so that
/// the file changed is the one checked; returns its metadata. On failure the FIFO is removed.
fn fix_mode(path: &Path, mode: Mode) -> Result<FileStat> {
    let result = (|| {
        // O_NONBLOCK: opening a FIFO for reading then does not wait for a writer.
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = open(path, flags, Mode::empty()).map_err(Error::sys_on("open", path))?;
        let st = fstat(&fd).map_err(Error::sys_on("fstat", path))?;
        if !is_fifo(&st) {
            return Err(Error::NotAFifo {
                path: path.to_owned(),
            });
        }
        fchmod(&fd, mode).map_err(Error::sys_on("fchmod", path))?;
        Ok(st)
    })();
    if result.is_err() {
        let _ = nix::unistd::unlink(path);
    }
    result
}

/// [`Fifo::open_reader`] with `trusted` owners.
fn open_reader(
    path: &Path,
    timeout: Option<Duration>,
    trusted: &TrustedOwners,
) -> Result<PipeReader> {
    check_path(path)?;
    let Some(timeout) = timeout else {
        return Ok(PipeReader::from_fd(open_fifo(
            path,
            OFlag::O_RDONLY,
            trusted,
        )?));
    };
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    // A non-blocking open for reading succeeds at once; then wait for a writer.
    let fd = open_fifo(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, trusted)?;
    let probe =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(Error::sys("pipe2"))?;
    let mut pause = Duration::from_millis(1);
    while !writer_present(&fd, &probe.1)? {
        if deadline.has_passed() {
            return Err(Error::NoPeer {
                path: path.to_owned(),
                missing: "writer",
                waited: started.elapsed(),
            });
        }
        pause = nap(pause, deadline);
    }
    set_nonblocking(fd.as_fd(), false)?;
    Ok(PipeReader::from_fd(fd))
}

/// [`Fifo::open_writer`] with `trusted` owners.
fn open_writer(
    path: &Path,
    timeout: Option<Duration>,
    trusted: &TrustedOwners,
) -> Result<PipeWriter> {
    check_path(path)?;
    let Some(timeout) = timeout else {
        return Ok(PipeWriter::from_fd(open_fifo(
            path,
            OFlag::O_WRONLY,
            trusted,
        )?));
    };
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    let mut pause = Duration::from_millis(1);
    // A non-blocking open for writing fails with ENXIO while there is no reader.
    let fd = loop {
        match open_fifo(path, OFlag::O_WRONLY | OFlag::O_NONBLOCK, trusted) {
            Ok(fd) => break fd,
            Err(Error::Sys(e)) if e.errno() == Errno::ENXIO => {}
            Err(e) => return Err(e),
        }
        if deadline.has_passed() {
            return Err(Error::NoPeer {
                path: path.to_owned(),
                missing: "reader",
                waited: started.elapsed(),
            });
        }
        pause = nap(pause, deadline);
    };
    set_nonblocking(fd.as_fd(), false)?;
    Ok(PipeWriter::from_fd(fd))
}

/// Open the FIFO at `path` with `flags` (plus close-on-exec), retrying on EINTR, after
/// checking on a descriptor that it is a FIFO with a trusted owner.
///
/// The check comes before any open that could wait for a peer: `path` is first opened with
/// `O_PATH` (which never blocks and does not open the FIFO for I/O), that descriptor is
/// `fstat`ed, and the FIFO is then opened through `/proc/self/fd/N`, which reaches the very
/// inode checked, whatever happens to `path` meanwhile.
pub(crate) fn open_fifo(path: &Path, flags: OFlag, trusted: &TrustedOwners) -> Result<OwnedFd> {
    let anchor = retry_eintr(|| open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()))
        .map_err(Error::sys_on("open", path))?;
    let st = fstat(&anchor).map_err(Error::sys_on("fstat", path))?;
    if !is_fifo(&st) {
        return Err(Error::NotAFifo {
            path: path.to_owned(),
        });
    }
    trusted
        .check_stat(&st, "FIFO", &path.display().to_string(), None)
        .map_err(Error::Untrusted)?;
    let reopen = format!("/proc/self/fd/{}", anchor.as_raw_fd());
    retry_eintr(|| open(reopen.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty()))
        .map_err(Error::sys_on("open", path))
}

fn retry_eintr<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => {}
            other => return other,
        }
    }
}

/// Whether the FIFO read through `fifo` has a writer (or data a writer left), without
/// consuming anything: `tee(2)` with `SPLICE_F_NONBLOCK` duplicates at most one byte into
/// the scratch pipe `probe`; it returns 0 when the FIFO is empty and has no writer, and
/// `EAGAIN` when it is empty but a writer has it open.
pub(crate) fn writer_present(fifo: &OwnedFd, probe: &OwnedFd) -> Result<bool> {
    loop {
        match tee(fifo, probe, 1, SpliceFFlags::SPLICE_F_NONBLOCK) {
            Ok(0) => return Ok(false),
            Ok(_) | Err(Errno::EAGAIN) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("tee")(e)),
        }
    }
}

/// Sleep for `pause` (at most until `deadline`); return the next, longer pause.
fn nap(pause: Duration, deadline: Deadline) -> Duration {
    let left = deadline.remaining().unwrap_or(pause);
    std::thread::sleep(pause.min(left));
    (pause * 2).min(MAX_POLL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks_say_the_limit() {
        let long = PathBuf::from(format!("/tmp/{}", "a".repeat(256)));
        match check_path(&long) {
            Err(Error::PathTooLong {
                len: 256,
                max: 255,
                what: "path component",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let very_long = PathBuf::from("/a".repeat(2100));
        match check_path(&very_long) {
            Err(Error::PathTooLong {
                len: 4200,
                max: 4095,
                what: "path",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_path(Path::new("")),
            Err(Error::InvalidPath { .. })
        ));
        assert!(check_path(Path::new("relative/ok")).is_ok());
    }
}
