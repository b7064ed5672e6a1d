//! An errno together with the operation that failed and, where there is one, what it was
//! applied to.
//!
//! Each mechanism crate has its own `Error` enum; the variant for a failed system call carries
//! a [`SysError`] so that every crate reports failures the same way:
//! `shm_open("/jobs") failed: EACCES: Permission denied`.

use nix::errno::Errno;
use std::fmt;
use std::io;

/// A failed system call: which one, on what, and the errno it returned.
///
/// Converts into [`std::io::Error`] with the [`io::ErrorKind`] of the errno and this value
/// as the payload, so the context survives `?` into `io::Result`.
///
/// # Examples
///
/// ```
/// use ipcraft_core::{ErrnoContext, SysError};
/// let err: SysError = nix::unistd::close(-1).context("close").unwrap_err();
/// assert_eq!(err.errno(), nix::errno::Errno::EBADF);
/// assert_eq!(err.to_string(), "close failed: EBADF: Bad file number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    op: &'static str,
    subject: Option<String>,
    errno: Errno,
}

impl SysError {
    /// `op` (a system call or library function name, such as `"shm_open"`) failed with `errno`.
    pub fn new(op: &'static str, errno: Errno) -> Self {
        Self {
            op,
            subject: None,
            errno,
        }
    }

    /// `op` failed with the OS error inside `e` (`EIO` if `e` carries none), for calls made
    /// through `std` (file reads, memmap2) rather than `nix`.
    pub fn from_io(op: &'static str, e: &io::Error) -> Self {
        let raw = e.raw_os_error().unwrap_or(Errno::EIO as i32);
        Self::new(op, Errno::from_raw(raw))
    }

    /// The same error, naming what the call was applied to (a path, a queue name).
    #[must_use]
    pub fn on(mut self, subject: impl fmt::Display) -> Self {
        self.subject = Some(subject.to_string());
        self
    }

    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// What the operation was applied to, if recorded.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The errno the operation returned.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The [`io::ErrorKind`] that corresponds to the errno.
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from(self.errno).kind()
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Some(s) => write!(f, "{}({s:?}) failed: {}", self.op, self.errno),
            None => write!(f, "{} failed: {}", self.op, self.errno),
        }
    }
}

impl std::error::Error for SysError {}

impl From<SysError> for io::Error {
    fn from(e: SysError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// Attach the failed operation's name to a `nix` result.
pub trait ErrnoContext<T> {
    /// Turn `Err(errno)` into a [`SysError`] for `op`.
    ///
    /// # Errors
    ///
    /// The [`SysError`] naming `op` and the errno, when `self` is an error.
    fn context(self, op: &'static str) -> Result<T, SysError>;
}

impl<T> ErrnoContext<T> for nix::Result<T> {
    fn context(self, op: &'static str) -> Result<T, SysError> {
        self.map_err(|e| SysError::new(op, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_subject_and_errno() {
        let e = SysError::new("mkfifo", Errno::EEXIST).on("/tmp/x");
        assert_eq!(
            e.to_string(),
            "mkfifo(\"/tmp/x\") failed: EEXIST: File exists"
        );
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let io: io::Error = e.clone().into();
        assert_eq!(io.kind(), io::ErrorKind::AlreadyExists);
        let inner = io.get_ref().and_then(|i| i.downcast_ref::<SysError>());
        assert_eq!(inner, Some(&e));
    }
}
