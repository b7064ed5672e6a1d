//! FIFO opens that await the peer: [`Fifo`] and [`FifoOptions`].

use super::{PipeReader, PipeWriter};
use crate::error::{Error, Result};
use crate::fifo::{MAX_POLL_INTERVAL, check_path, open_fifo, writer_present};
use ipcraft_core::TrustedOwners;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::path::Path;
use std::time::Duration;

/// Opening FIFOs from async code: the counterparts of [`crate::Fifo::open_reader`] and
/// [`crate::Fifo::open_writer`], which await the peer instead of blocking a thread.
///
/// Creating a FIFO never waits, so it stays the blocking [`crate::Fifo::create`] (which also
/// removes it on drop); this type only opens, and has no values.
///
/// # How an open awaits its peer
///
/// The kernel gives no readiness for "a peer opened the FIFO", so both opens check every 1
/// to 10 ms (on the runtime's timer, never blocking a thread), as the blocking opens with a
/// timeout do:
/// - the reader opens with `O_NONBLOCK`, which succeeds at once and lets a writer's open
///   succeed, then waits until a writer is present (probed with `tee(2)`, which consumes
///   nothing). It must not return earlier: a read before any writer came would report end of
///   stream, and a writer arriving does not make the descriptor readable;
/// - the writer retries its `O_NONBLOCK` open, which fails with `ENXIO` while no reader has
///   the FIFO open. Opening the read side ourselves to get past `ENXIO` would not do: our own
///   reader would count as the peer, so the writer could neither tell that a real one came
///   nor get `BrokenPipe` when it left.
///
/// The owner of the FIFO is checked before the wait, as in the blocking opens (see
/// [`crate::FifoOptions::trust`]; [`FifoOptions`] here takes the same owners).
///
/// # Timeouts
///
/// Wrap the open in [`tokio::time::timeout`]; on
/// expiry the future is dropped, which closes whatever it had opened.
///
/// # Examples
///
/// ```
/// use ipcraft_pipe::Fifo;
/// use std::time::Duration;
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("ipcraft-doc-async-{}", std::process::id()));
/// let fifo = Fifo::create(&path)?; // removed on drop
/// // Nobody writes yet: the open waits, and the timeout gives up.
/// let open = ipcraft_pipe::tokio::Fifo::open_reader(fifo.path());
/// assert!(tokio::time::timeout(Duration::from_millis(50), open).await.is_err());
/// // A writer in another process (here: a shell).
/// let mut sh = std::process::Command::new("sh")
///     .arg("-c").arg("printf hello > \"$0\"").arg(fifo.path())
///     .spawn()?;
/// let open = ipcraft_pipe::tokio::Fifo::open_reader(fifo.path());
/// let mut r = tokio::time::timeout(Duration::from_secs(10), open).await??;
/// let mut got = String::new();
/// r.read_to_string(&mut got).await?;
/// assert_eq!(got, "hello");
/// sh.wait()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum Fifo {}

impl Fifo {
    /// Open the FIFO at `path` for reading, awaiting a writer; see the [type docs](Self).
    /// A writer that came, wrote and left before the check counts as having come: the reader
    /// gets its data, then end of stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped future closes what it opened; nothing is read.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; [`Error::NotAFifo`] when `path` is something else;
    /// [`Error::PathTooLong`] / [`Error::InvalidPath`]; [`Error::Sys`] (`ENOENT`, `EACCES`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    pub async fn open_reader(path: impl AsRef<Path>) -> Result<PipeReader> {
        open_reader(path.as_ref(), &TrustedOwners::new()).await
    }

    /// Open the FIFO at `path` for writing, awaiting a reader; see the [type docs](Self).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped future has opened nothing that stays open.
    ///
    /// # Errors
    ///
    /// As [`open_reader`](Self::open_reader).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    pub async fn open_writer(path: impl AsRef<Path>) -> Result<PipeWriter> {
        open_writer(path.as_ref(), &TrustedOwners::new()).await
    }
}

/// Whose FIFOs the async opens join: [`crate::FifoOptions`]'s opening half, for
/// [`Fifo`]'s opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use = "options do nothing until a FIFO is opened with them"]
pub struct FifoOptions {
    trusted: TrustedOwners,
}

impl FifoOptions {
    /// Trust our effective uid and root, as [`crate::FifoOptions::new`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Whose FIFOs to join; see [`crate::FifoOptions::trust`].
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// [`Fifo::open_reader`], trusting these owners.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Fifo::open_reader`].
    ///
    /// # Errors
    ///
    /// As [`Fifo::open_reader`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    pub async fn open_reader(&self, path: impl AsRef<Path>) -> Result<PipeReader> {
        open_reader(path.as_ref(), &self.trusted).await
    }

    /// [`Fifo::open_writer`], trusting these owners.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Fifo::open_writer`].
    ///
    /// # Errors
    ///
    /// As [`Fifo::open_reader`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    pub async fn open_writer(&self, path: impl AsRef<Path>) -> Result<PipeWriter> {
        open_writer(path.as_ref(), &self.trusted).await
    }
}

/// The owners the blocking options trust, for the async opens.
impl From<crate::FifoOptions> for FifoOptions {
    fn from(options: crate::FifoOptions) -> Self {
        Self::new().trust(*options.trusted())
    }
}

/// Sleep `pause` on the runtime's timer; return the next, longer pause.
async fn nap(pause: Duration) -> Duration {
    ::tokio::time::sleep(pause).await;
    (pause * 2).min(MAX_POLL_INTERVAL)
}

async fn open_reader(path: &Path, trusted: &TrustedOwners) -> Result<PipeReader> {
    check_path(path)?;
    let fd = open_fifo(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, trusted)?;
    let probe =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(Error::sys("pipe2"))?;
    let mut pause = Duration::from_millis(1);
    while !writer_present(&fd, &probe.1)? {
        pause = nap(pause).await;
    }
    PipeReader::from_std(crate::PipeReader::from_fd(fd))
}

async fn open_writer(path: &Path, trusted: &TrustedOwners) -> Result<PipeWriter> {
    check_path(path)?;
    let mut pause = Duration::from_millis(1);
    let fd = loop {
        match open_fifo(path, OFlag::O_WRONLY | OFlag::O_NONBLOCK, trusted) {
            Ok(fd) => break fd,
            Err(Error::Sys(e)) if e.errno() == Errno::ENXIO => {}
            Err(e) => return Err(e),
        }
        pause = nap(pause).await;
    };
    PipeWriter::from_std(crate::PipeWriter::from_fd(fd))
}
