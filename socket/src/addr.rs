//! Unix socket addresses: a filesystem path or a Linux abstract name, checked before any
//! system call.

use crate::error::{Error, Result};
use nix::sys::socket::UnixAddr;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The most bytes of a filesystem socket path: `sun_path` holds 108 bytes and the kernel
/// needs one for the terminator (given 108 bytes without one, Linux silently accepts a name
/// that other tools cannot reproduce). See `unix(7)`.
pub const MAX_PATH_LEN: usize = 107;

/// The most bytes of an abstract name: the 108 bytes of `sun_path` minus its leading NUL.
pub const MAX_ABSTRACT_LEN: usize = 107;

/// Where a Unix domain socket lives: a path in the file system or a Linux abstract name.
///
/// - **Path**: a socket file, subject to the file's permissions (connecting needs write
///   permission on it) and to those of its directories. At most [`MAX_PATH_LEN`] bytes, no
///   NUL byte.
/// - **Abstract** (Linux): a name in the network namespace, with no file and **no permission
///   check at all**: any process of any uid in the same network namespace can connect. Guard
///   an abstract listener with a peer policy
///   ([`UnixListener::set_peer_policy`](crate::UnixListener::set_peer_policy)). At most [`MAX_ABSTRACT_LEN`] bytes, any bytes
///   (NUL included); the name disappears when the last socket bound to it closes.
///
/// Both are checked when the address is made, before any system call.
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{Error, SocketAddr};
///
/// let a = SocketAddr::from_path("/run/user/1000/app.sock")?;
/// assert_eq!(a.as_path().unwrap().to_str(), Some("/run/user/1000/app.sock"));
/// let b = SocketAddr::from_abstract_name(b"app-control")?;
/// assert_eq!(b.as_abstract_name(), Some(&b"app-control"[..]));
/// assert!(matches!(
///     SocketAddr::from_path("/tmp/".to_string() + &"x".repeat(103)),
///     Err(Error::PathTooLong { len: 108, max: 107, .. })
/// ));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SocketAddr {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Kind {
    Path(PathBuf),
    Abstract(Vec<u8>),
    Unnamed,
}

impl SocketAddr {
    /// A filesystem path.
    ///
    /// # Errors
    ///
    /// [`Error::PathTooLong`] above [`MAX_PATH_LEN`] bytes; [`Error::InvalidAddress`] when
    /// empty or containing a NUL byte.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() {
            return Err(Error::InvalidAddress {
                address: String::new(),
                reason: "a socket path must not be empty",
            });
        }
        if bytes.contains(&0) {
            return Err(Error::InvalidAddress {
                address: path.to_string_lossy().into_owned(),
                reason: "a socket path must not contain a NUL byte",
            });
        }
        if bytes.len() > MAX_PATH_LEN {
            return Err(Error::PathTooLong {
                path: path.to_string_lossy().into_owned(),
                len: bytes.len(),
                max: MAX_PATH_LEN,
            });
        }
        Ok(Self {
            kind: Kind::Path(path.to_path_buf()),
        })
    }

    /// A Linux abstract name (without the leading NUL byte, which is added here).
    ///
    /// # Errors
    ///
    /// [`Error::AbstractNameTooLong`] above [`MAX_ABSTRACT_LEN`] bytes;
    /// [`Error::InvalidAddress`] when empty (to the kernel, an empty abstract name means
    /// "pick one for me", which this crate does not offer yet).
    pub fn from_abstract_name(name: impl AsRef<[u8]>) -> Result<Self> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(Error::InvalidAddress {
                address: String::new(),
                reason: "an abstract socket name must not be empty",
            });
        }
        if name.len() > MAX_ABSTRACT_LEN {
            return Err(Error::AbstractNameTooLong {
                len: name.len(),
                max: MAX_ABSTRACT_LEN,
            });
        }
        Ok(Self {
            kind: Kind::Abstract(name.to_vec()),
        })
    }

    /// The path, if this is a filesystem address.
    pub fn as_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The abstract name (without its leading NUL), if this is one.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Abstract(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the socket has no address (one end of a `socketpair`, or an unbound client).
    pub fn is_unnamed(&self) -> bool {
        matches!(self.kind, Kind::Unnamed)
    }

    pub(crate) fn to_unix_addr(&self) -> Result<UnixAddr> {
        match &self.kind {
            Kind::Path(p) => UnixAddr::new(p.as_path()).map_err(Error::sys_on("sockaddr_un", self)),
            Kind::Abstract(n) => {
                UnixAddr::new_abstract(n).map_err(Error::sys_on("sockaddr_un", self))
            }
            Kind::Unnamed => Err(Error::InvalidAddress {
                address: String::new(),
                reason: "an unnamed address cannot be bound or connected to",
            }),
        }
    }

    /// The address in the `sun_path` bytes the kernel returned (as many as it said).
    pub(crate) fn from_sun_path(bytes: &[u8]) -> Self {
        let kind = match bytes.split_first() {
            None => Kind::Unnamed,
            Some((0, name)) => Kind::Abstract(name.to_vec()),
            Some(_) => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                Kind::Path(PathBuf::from(OsStr::from_bytes(&bytes[..end])))
            }
        };
        Self { kind }
    }

    pub(crate) fn from_unix_addr(addr: &UnixAddr) -> Self {
        let kind = if let Some(p) = addr.path() {
            Kind::Path(p.to_path_buf())
        } else if let Some(n) = addr.as_abstract() {
            Kind::Abstract(n.to_vec())
        } else {
            Kind::Unnamed
        };
        Self { kind }
    }
}

impl fmt::Debug for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A path as itself, an abstract name as `@name` (the `ss`/`netstat` notation, non-printable
/// bytes escaped), an unnamed socket as `(unnamed)`.
impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Path(p) => write!(f, "{}", p.display()),
            Kind::Abstract(n) => write!(f, "@{}", n.escape_ascii()),
            Kind::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

impl TryFrom<&Path> for SocketAddr {
    type Error = Error;
    fn try_from(p: &Path) -> Result<Self> {
        Self::from_path(p)
    }
}

impl TryFrom<&str> for SocketAddr {
    type Error = Error;
    fn try_from(p: &str) -> Result<Self> {
        Self::from_path(p)
    }
}

impl TryFrom<&OsStr> for SocketAddr {
    type Error = Error;
    fn try_from(p: &OsStr) -> Result<Self> {
        Self::from_path(p)
    }
}

impl TryFrom<&SocketAddr> for std::os::unix::net::SocketAddr {
    type Error = Error;
    /// A `std` address, for `std::os::unix::net::UnixListener::bind_addr` and friends.
    fn try_from(a: &SocketAddr) -> Result<Self> {
        use std::os::linux::net::SocketAddrExt;
        let r = match &a.kind {
            Kind::Path(p) => Self::from_pathname(p),
            Kind::Abstract(n) => Self::from_abstract_name(n),
            Kind::Unnamed => {
                return Err(Error::InvalidAddress {
                    address: String::new(),
                    reason: "std cannot represent an unnamed address",
                });
            }
        };
        r.map_err(|e| Error::Sys(ipcraft_core::SysError::from_io("sockaddr_un", &e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 512 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn path_rule(bytes in prop::collection::vec(any::<u8>(), 0..140)) {
            let path = Path::new(OsStr::from_bytes(&bytes));
            let allowed = !bytes.is_empty() && !bytes.contains(&0) && bytes.len() <= MAX_PATH_LEN;
            match SocketAddr::from_path(path) {
                Ok(a) => {
                    prop_assert!(allowed);
                    prop_assert_eq!(a.as_path(), Some(path));
                    // What the kernel would hand back parses to the same address.
                    prop_assert_eq!(SocketAddr::from_sun_path(&bytes), a);
                }
                Err(Error::PathTooLong { len, max, .. }) => {
                    prop_assert!(!allowed && len == bytes.len() && max == MAX_PATH_LEN);
                }
                Err(Error::InvalidAddress { .. }) => {
                    prop_assert!(bytes.is_empty() || bytes.contains(&0));
                }
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
            }
        }

        #[test]
        fn abstract_rule(name in prop::collection::vec(any::<u8>(), 0..140)) {
            match SocketAddr::from_abstract_name(&name) {
                Ok(a) => {
                    prop_assert!(!name.is_empty() && name.len() <= MAX_ABSTRACT_LEN);
                    let mut sun_path = vec![0u8];
                    sun_path.extend_from_slice(&name);
                    prop_assert_eq!(SocketAddr::from_sun_path(&sun_path), a);
                }
                Err(_) => prop_assert!(name.is_empty() || name.len() > MAX_ABSTRACT_LEN),
            }
        }
    }

    #[test]
    fn path_limits() {
        let ok = "/".to_string() + &"p".repeat(MAX_PATH_LEN - 1);
        assert!(SocketAddr::from_path(&ok).is_ok());
        let long = ok.clone() + "p";
        let e = SocketAddr::from_path(&long).unwrap_err();
        assert!(matches!(
            e,
            Error::PathTooLong {
                len: 108,
                max: 107,
                ..
            }
        ));
        assert!(e.to_string().contains("at most 107 bytes"), "{e}");
        assert!(matches!(
            SocketAddr::from_path("a\0b"),
            Err(Error::InvalidAddress { .. })
        ));
        assert!(matches!(
            SocketAddr::from_path(""),
            Err(Error::InvalidAddress { .. })
        ));
    }

    #[test]
    fn sun_path_parsing() {
        assert!(SocketAddr::from_sun_path(b"").is_unnamed());
        assert_eq!(
            SocketAddr::from_sun_path(b"\0name").as_abstract_name(),
            Some(&b"name"[..])
        );
        assert_eq!(
            SocketAddr::from_sun_path(b"/tmp/s\0\0").as_path(),
            Some(Path::new("/tmp/s"))
        );
    }

    #[test]
    fn abstract_limits() {
        assert!(SocketAddr::from_abstract_name([0u8; MAX_ABSTRACT_LEN]).is_ok());
        let e = SocketAddr::from_abstract_name([b'a'; 108]).unwrap_err();
        assert!(matches!(
            e,
            Error::AbstractNameTooLong { len: 108, max: 107 }
        ));
        assert!(e.to_string().contains("at most 107 bytes"));
        assert!(SocketAddr::from_abstract_name(b"").is_err());
        let a = SocketAddr::from_abstract_name(b"x\0y").unwrap();
        assert_eq!(a.to_string(), "@x\\x00y");
    }
}
