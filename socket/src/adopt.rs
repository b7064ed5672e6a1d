//! Adopting a descriptor (`TryFrom<OwnedFd>`): check that it is the socket the type wraps
//! before wrapping it, as `TryFrom` promises, so that a wrong descriptor fails here, with
//! the descriptor handed back, and not at its first use.

use crate::error::{Error, Result};
use nix::sys::socket::{AddressFamily, SockType, SockaddrLike, SockaddrStorage, sockopt};
use std::os::fd::{AsRawFd, OwnedFd};

/// What a handle type wraps.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    /// For the error: "a Unix stream listener", ...
    pub(crate) name: &'static str,
    pub(crate) families: &'static [AddressFamily],
    pub(crate) ty: SockType,
    /// `Some(true)`: listening (`SO_ACCEPTCONN`); `Some(false)`: not listening; `None`:
    /// either (datagram sockets never listen).
    pub(crate) listening: Option<bool>,
}

pub(crate) const UNIX_LISTENER: Kind = Kind {
    name: "a listening Unix stream socket",
    families: &[AddressFamily::Unix],
    ty: SockType::Stream,
    listening: Some(true),
};
pub(crate) const UNIX_STREAM: Kind = Kind {
    name: "a Unix stream socket that is not listening",
    families: &[AddressFamily::Unix],
    ty: SockType::Stream,
    listening: Some(false),
};
pub(crate) const UNIX_DATAGRAM: Kind = Kind {
    name: "a Unix datagram socket",
    families: &[AddressFamily::Unix],
    ty: SockType::Datagram,
    listening: None,
};
pub(crate) const SEQPACKET_LISTENER: Kind = Kind {
    name: "a listening Unix seqpacket socket",
    families: &[AddressFamily::Unix],
    ty: SockType::SeqPacket,
    listening: Some(true),
};
pub(crate) const SEQPACKET_CONN: Kind = Kind {
    name: "a Unix seqpacket socket that is not listening",
    families: &[AddressFamily::Unix],
    ty: SockType::SeqPacket,
    listening: Some(false),
};
pub(crate) const TCP_LISTENER: Kind = Kind {
    name: "a listening TCP socket",
    families: &[AddressFamily::Inet, AddressFamily::Inet6],
    ty: SockType::Stream,
    listening: Some(true),
};
pub(crate) const TCP_STREAM: Kind = Kind {
    name: "a TCP socket that is not listening",
    families: &[AddressFamily::Inet, AddressFamily::Inet6],
    ty: SockType::Stream,
    listening: Some(false),
};

/// `fd` back if it is a socket of `kind` (family from `getsockname`, `SO_TYPE`,
/// `SO_ACCEPTCONN`); [`Error::WrongDescriptor`] with `fd` otherwise (not a socket included).
pub(crate) fn check(fd: OwnedFd, kind: Kind) -> Result<OwnedFd> {
    let family = nix::sys::socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|a| a.family());
    let ty = nix::sys::socket::getsockopt(&fd, sockopt::SockType).ok();
    let listening = nix::sys::socket::getsockopt(&fd, sockopt::AcceptConn).ok();
    let fits = family.is_some_and(|f| kind.families.contains(&f))
        && ty == Some(kind.ty)
        && kind.listening.is_none_or(|l| listening == Some(l));
    if fits {
        Ok(fd)
    } else {
        Err(Error::WrongDescriptor {
            expected: kind.name,
            fd,
        })
    }
}
