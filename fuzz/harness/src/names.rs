//! POSIX IPC name validation (`ipcraft_core::PosixName`) and Unix socket address validation
//! (`ipcraft_socket::SocketAddr`: paths, abstract names, and the `sun_path` bytes the kernel
//! reports, through the hidden `ipcraft_socket::__fuzz`).
//!
//! Input: `[limit byte] [name bytes...]`; the same bytes are tried as a POSIX name (UTF-8,
//! lossily), a socket path, an abstract name and a reported `sun_path`.
//!
//! Oracle: the rules, written out again from the docs, must accept exactly what the
//! validators accept; an accepted name must come back unchanged and be accepted by what
//! consumes it next (`std`'s `SocketAddr`, a `sockaddr_un`); every error must say something.

use crate::Input;
use ipcraft_core::PosixName;
use ipcraft_core::name::{NAME_MAX, NameErrorKind};
use ipcraft_socket::__fuzz::{from_sun_path, to_sockaddr_un};
use ipcraft_socket::{MAX_ABSTRACT_LEN, MAX_PATH_LEN, SocketAddr};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// "exactly one `/`, at the start; 1 to `max` bytes after it; no NUL; not `/.` or `/..`".
fn posix_rule(name: &str, max: usize) -> bool {
    let Some(rest) = name.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= max
        && !rest.contains('/')
        && !rest.contains('\0')
        && rest != "."
        && rest != ".."
}

fn posix(name: &str, max: usize) {
    let got = PosixName::with_max(name, max);
    assert_eq!(got.is_ok(), posix_rule(name, max), "{name:?} (max {max})");
    match got {
        Ok(n) => {
            assert_eq!(n.as_str(), name);
            assert_eq!(n.as_c_str().to_bytes(), name.as_bytes());
            assert_eq!(n.to_string(), name);
        }
        Err(e) => {
            assert_eq!(e.name(), name);
            assert_eq!(e.max(), max);
            let position = match e.kind() {
                NameErrorKind::Nul { position } => Some((position, b'\0')),
                NameErrorKind::InnerSlash { position } => Some((position, b'/')),
                _ => None,
            };
            if let Some((at, byte)) = position {
                assert_eq!(name.as_bytes().get(at), Some(&byte), "{e:?}");
            }
            assert!(!e.to_string().is_empty());
        }
    }
    if max == NAME_MAX {
        assert_eq!(
            PosixName::new(name).ok(),
            name.parse::<PosixName>().ok(),
            "FromStr and new disagree"
        );
    }
}

fn consumers_accept(addr: &SocketAddr) {
    assert!(
        to_sockaddr_un(addr),
        "{addr} passed validation but is no sockaddr_un"
    );
    assert!(
        std::os::unix::net::SocketAddr::try_from(addr).is_ok(),
        "{addr} passed validation but std refuses it"
    );
    assert!(!addr.to_string().is_empty());
}

fn socket_path(bytes: &[u8]) {
    let valid = !bytes.is_empty() && !bytes.contains(&0) && bytes.len() <= MAX_PATH_LEN;
    match SocketAddr::from_path(OsStr::from_bytes(bytes)) {
        Ok(a) => {
            assert!(valid, "path {bytes:?} accepted");
            assert_eq!(a.as_path().map(|p| p.as_os_str().as_bytes()), Some(bytes));
            assert!(a.as_abstract_name().is_none() && !a.is_unnamed());
            consumers_accept(&a);
            // What the kernel reports for it reads back as the same address.
            assert_eq!(from_sun_path(bytes), a);
            let mut terminated = bytes.to_vec();
            terminated.push(0);
            assert_eq!(from_sun_path(&terminated), a);
        }
        Err(e) => {
            assert!(!valid, "path {bytes:?} refused: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

fn abstract_name(bytes: &[u8]) {
    let valid = !bytes.is_empty() && bytes.len() <= MAX_ABSTRACT_LEN;
    match SocketAddr::from_abstract_name(bytes) {
        Ok(a) => {
            assert!(valid, "abstract name {bytes:?} accepted");
            assert_eq!(a.as_abstract_name(), Some(bytes));
            assert!(a.as_path().is_none() && !a.is_unnamed());
            consumers_accept(&a);
            assert!(a.to_string().starts_with('@'));
            let mut sun_path = vec![0u8];
            sun_path.extend_from_slice(bytes);
            assert_eq!(from_sun_path(&sun_path), a);
        }
        Err(e) => {
            assert!(!valid, "abstract name {bytes:?} refused: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

fn reported(bytes: &[u8]) {
    // The kernel reports at most the 108 bytes of sun_path.
    let bytes = &bytes[..bytes.len().min(108)];
    let a = from_sun_path(bytes);
    match bytes.first() {
        None => assert!(a.is_unnamed()),
        Some(0) => assert_eq!(a.as_abstract_name(), Some(&bytes[1..])),
        Some(_) => {
            let p = a.as_path().expect("a path").as_os_str().as_bytes();
            assert!(!p.is_empty() && !p.contains(&0) && bytes.starts_with(p));
        }
    }
    let _ = a.to_string();
}

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let limit = input.u8();
    let bytes = input.rest();
    let name = String::from_utf8_lossy(bytes);
    // 251: named semaphores' limit; small limits make `TooLong` reachable with short inputs.
    let max = match limit {
        0 => NAME_MAX,
        1 => 251,
        n => usize::from(n) - 2,
    };
    posix(&name, max);
    posix(&name, NAME_MAX);
    socket_path(bytes);
    abstract_name(bytes);
    reported(bytes);
}
