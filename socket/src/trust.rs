//! Trust on connect: the other end of a Unix socket must belong to a trusted owner.
//!
//! `/tmp` (and the abstract namespace) can be used by every user, so a path or name may have
//! been bound first by someone else, to read what we send or to feed us what we receive.
//! A connect checks the listener's credentials as the kernel recorded them at its `listen`
//! (`SO_PEERCRED`, on the connected descriptor, before anything is sent); a datagram sent to
//! a path checks the socket file's owner first. The owners trusted are ipcraft-core's
//! [`TrustedOwners`]: by default our effective uid and root.

use crate::addr::SocketAddr;
use crate::cred::peer_credentials;
#[allow(unused_imports)] // Doc links.
use crate::datagram::UnixDatagram;
use crate::error::{Error, Result};
#[allow(unused_imports)] // Doc links.
use crate::seqpacket::SeqpacketConn;
#[allow(unused_imports)] // Doc links.
use crate::stream::UnixStream;
use ipcraft_core::{Deadline, TrustedOwners};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How to connect to a Unix socket: whose listeners to trust, and how long to wait for a
/// full backlog. Every plain `connect` trusts our effective uid and root; these options widen
/// that on purpose, for a service another user runs. Used as `bind_with` is:
/// [`UnixStream::connect_with`], [`SeqpacketConn::connect_with`],
/// [`UnixDatagram::connect_with`].
///
/// # Examples
///
/// ```no_run
/// use ipcraft_core::TrustedOwners;
/// use ipcraft_socket::{ConnectOptions, SocketAddr};
/// use std::time::Duration;
///
/// // A daemon running as uid 110 listens here; trust it explicitly.
/// let addr = SocketAddr::from_path("/run/mydaemon.sock")?;
/// let options = ConnectOptions::new()
///     .trust(TrustedOwners::new().also_uid(110))
///     .timeout(Duration::from_secs(2));
/// let stream = ipcraft_socket::UnixStream::connect_with(&options, &addr)?;
/// # Ok::<(), ipcraft_socket::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use = "options do nothing until a connect is made with them"]
pub struct ConnectOptions {
    trusted: TrustedOwners,
    timeout: Option<Duration>,
}

impl ConnectOptions {
    /// Trust our effective uid and root; wait as long as the backlog is full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whose listeners (and datagram destinations) to trust.
    pub fn trust(mut self, trusted: TrustedOwners) -> Self {
        self.trusted = trusted;
        self
    }

    /// Wait at most `timeout` while the listener's backlog is full.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub(crate) fn deadline_of(&self) -> Deadline {
        Deadline::from_timeout(self.timeout)
    }

    pub(crate) fn trusted(&self) -> &TrustedOwners {
        &self.trusted
    }
}

/// What the trust errors call the other end.
const LISTENER: &str = "Unix socket listener";
const DESTINATION: &str = "Unix datagram socket";

/// After a connect to `addr`: the listener's credentials must name a trusted uid.
pub(crate) fn check_listener(
    fd: impl AsFd,
    addr: &SocketAddr,
    trusted: &TrustedOwners,
) -> Result<()> {
    let peer = peer_credentials(fd)?;
    if trusted.trusts(peer.uid) {
        return Ok(());
    }
    Err(untrusted(LISTENER, addr, peer.uid, 0, trusted))
}

/// Before a datagram is sent to `addr`: a path's socket file must belong to a trusted owner.
/// An abstract name has no owner to check (nothing is refused); an unreadable path is left
/// to the send, which reports it.
pub(crate) fn check_destination(addr: &SocketAddr, trusted: &TrustedOwners) -> Result<()> {
    let Some(path) = addr.as_path() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if trusted.trusts(meta.uid()) {
        return Ok(());
    }
    Err(untrusted(
        DESTINATION,
        addr,
        meta.uid(),
        meta.mode(),
        trusted,
    ))
}

fn untrusted(
    kind: &'static str,
    addr: &SocketAddr,
    owner: u32,
    mode: u32,
    trusted: &TrustedOwners,
) -> Error {
    match trusted.check_owner(owner, mode, kind, &addr.to_string(), None) {
        Err(e) => Error::Untrusted(e),
        // Not reached: the callers found the owner untrusted.
        Ok(()) => Error::sys("connect")(nix::errno::Errno::EPERM),
    }
}
