//! POSIX IPC names, as `shm_open(3)`, `mq_open(3)` and `sem_open(3)` take them, validated by
//! ipcraft before any system call.
//!
//! glibc answers malformed names inconsistently between these calls (`shm_open("/..")` opens
//! the `/dev` directory; `mq_open("/a/b")` is `EACCES`), so every ipcraft crate checks names
//! with the one rule set below and reports a [`NameError`] that says what is allowed:
//!
//! - exactly one `/`, at the start;
//! - 1 to [`NAME_MAX`] bytes after it (fewer for named semaphores, see [`PosixName::with_max`]);
//! - no NUL byte;
//! - not `/.` or `/..`.

use std::ffi::{CStr, CString};
use std::fmt;

/// The longest name component (the part after the `/`) that `shm_open` and `mq_open` accept
/// on Linux.
pub const NAME_MAX: usize = 255;

/// A validated POSIX IPC name, ready to hand to the C library.
///
/// # Examples
///
/// ```
/// use ipcraft_core::PosixName;
///
/// let name = PosixName::new("/jobs")?;
/// assert_eq!(name.as_str(), "/jobs");
/// assert_eq!(name.as_c_str().to_bytes_with_nul(), b"/jobs\0");
///
/// let err = PosixName::new("jobs").unwrap_err();
/// assert!(err.to_string().contains("must start with '/'"));
/// # Ok::<(), ipcraft_core::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosixName {
    c: CString,
}

impl PosixName {
    /// Validate `name` by the rules for shared memory and message queues: at most
    /// [`NAME_MAX`] bytes after the `/`.
    ///
    /// # Errors
    ///
    /// A [`NameError`] saying which rule `name` breaks.
    pub fn new(name: &str) -> Result<Self, NameError> {
        Self::with_max(name, NAME_MAX)
    }

    /// Validate `name`, allowing at most `max` bytes after the `/` (named semaphores allow
    /// 251: glibc prefixes `sem.` to the file it creates).
    ///
    /// # Errors
    ///
    /// A [`NameError`] saying which rule `name` breaks.
    pub fn with_max(name: &str, max: usize) -> Result<Self, NameError> {
        let fail = |kind| {
            Err(NameError {
                name: name.to_owned(),
                max,
                kind,
            })
        };
        let Some(rest) = name.strip_prefix('/') else {
            return fail(if name.is_empty() {
                NameErrorKind::Empty
            } else {
                NameErrorKind::NoLeadingSlash
            });
        };
        if rest.is_empty() {
            return fail(NameErrorKind::Empty);
        }
        if let Some(i) = name.bytes().position(|b| b == 0) {
            return fail(NameErrorKind::Nul { position: i });
        }
        if let Some(i) = rest.find('/') {
            return fail(NameErrorKind::InnerSlash { position: i + 1 });
        }
        if rest.len() > max {
            return fail(NameErrorKind::TooLong { len: rest.len() });
        }
        if rest == "." || rest == ".." {
            return fail(NameErrorKind::Dots);
        }
        match CString::new(name) {
            Ok(c) => Ok(Self { c }),
            Err(e) => fail(NameErrorKind::Nul {
                position: e.nul_position(),
            }),
        }
    }

    /// The name, with its leading `/`.
    pub fn as_str(&self) -> &str {
        // The CString was made from a &str, so it is UTF-8.
        self.c.to_str().unwrap_or_default()
    }

    /// The name as a NUL-terminated C string.
    pub fn as_c_str(&self) -> &CStr {
        &self.c
    }
}

impl fmt::Display for PosixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<CStr> for PosixName {
    fn as_ref(&self) -> &CStr {
        &self.c
    }
}

impl std::str::FromStr for PosixName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

/// A name that is not a valid POSIX IPC name; says which rule it breaks and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    name: String,
    max: usize,
    kind: NameErrorKind,
}

/// Which rule a [`NameError`]'s name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameErrorKind {
    /// The name is empty, or is `/` alone.
    Empty,
    /// The name does not start with `/`.
    NoLeadingSlash,
    /// A `/` other than the leading one, at this byte offset.
    InnerSlash {
        /// Byte offset of the offending `/`.
        position: usize,
    },
    /// A NUL byte at this byte offset.
    Nul {
        /// Byte offset of the NUL.
        position: usize,
    },
    /// More bytes after the `/` than allowed.
    TooLong {
        /// Bytes after the `/`.
        len: usize,
    },
    /// `/.` or `/..`, which name directories.
    Dots,
}

impl NameError {
    /// The rejected name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which rule it breaks.
    pub fn kind(&self) -> NameErrorKind {
        self.kind
    }

    /// The most bytes allowed after the `/` by the rules it was checked against.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid POSIX IPC name {:?}: ", self.name)?;
        match self.kind {
            NameErrorKind::Empty => f.write_str("it is empty")?,
            NameErrorKind::NoLeadingSlash => f.write_str("it does not start with '/'")?,
            NameErrorKind::InnerSlash { position } => {
                write!(f, "it has a '/' at byte {position}")?;
            }
            NameErrorKind::Nul { position } => write!(f, "it has a NUL byte at byte {position}")?,
            NameErrorKind::TooLong { len } => write!(f, "it has {len} bytes after the '/'")?,
            NameErrorKind::Dots => f.write_str("\"/.\" and \"/..\" name directories")?,
        }
        write!(
            f,
            "; a name must start with '/', contain no other '/' and no NUL, have 1 to {} bytes \
             after the '/', and not be \"/.\" or \"/..\"",
            self.max
        )
    }
}

impl std::error::Error for NameError {}

impl From<NameError> for std::io::Error {
    fn from(e: NameError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(name: &str) -> NameErrorKind {
        PosixName::new(name).unwrap_err().kind()
    }

    #[test]
    fn each_rule_has_its_error() {
        assert_eq!(kind(""), NameErrorKind::Empty);
        assert_eq!(kind("/"), NameErrorKind::Empty);
        assert_eq!(kind("name"), NameErrorKind::NoLeadingSlash);
        assert_eq!(kind("//x"), NameErrorKind::InnerSlash { position: 1 });
        assert_eq!(kind("/a/b"), NameErrorKind::InnerSlash { position: 2 });
        assert_eq!(kind("/a\0b"), NameErrorKind::Nul { position: 2 });
        assert_eq!(kind("/."), NameErrorKind::Dots);
        assert_eq!(kind("/.."), NameErrorKind::Dots);
        assert_eq!(
            kind(&format!("/{}", "x".repeat(256))),
            NameErrorKind::TooLong { len: 256 }
        );
        assert!(PosixName::new(&format!("/{}", "x".repeat(255))).is_ok());
        assert!(PosixName::new("/...").is_ok());
        assert!(PosixName::new("/.hidden").is_ok());
        assert_eq!(
            PosixName::with_max(&format!("/{}", "x".repeat(252)), 251)
                .unwrap_err()
                .kind(),
            NameErrorKind::TooLong { len: 252 }
        );
    }

    #[test]
    fn message_says_what_is_wrong_and_what_is_allowed() {
        let msg = PosixName::new("/a/b").unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid POSIX IPC name \"/a/b\": it has a '/' at byte 2; a name must start with \
             '/', contain no other '/' and no NUL, have 1 to 255 bytes after the '/', and not \
             be \"/.\" or \"/..\""
        );
    }

    proptest! {
        #[test]
        // Regex strategies are far too slow under Miri; the unit tests above cover the rules.
        #[cfg_attr(miri, ignore = "too slow under Miri")]
        fn accepted_names_follow_every_rule(s in "\\PC{0,300}") {
            if let Ok(n) = PosixName::new(&s) {
                let rest = &n.as_str()[1..];
                prop_assert!(n.as_str().starts_with('/'));
                prop_assert!(!rest.is_empty() && rest.len() <= NAME_MAX);
                prop_assert!(!rest.contains('/') && !rest.contains('\0'));
                prop_assert!(rest != "." && rest != "..");
            }
        }

        #[test]
        #[cfg_attr(miri, ignore = "too slow under Miri")]
        fn simple_names_are_accepted(s in "[a-zA-Z0-9_.-]{1,255}") {
            prop_assume!(s != "." && s != "..");
            let name = format!("/{s}");
            let parsed = PosixName::new(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }
    }
}
