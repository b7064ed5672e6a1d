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
use crate::error::{Error, Result};
use crate::message::{SeqpacketConn, UnixDatagram};
use crate::stream::UnixStream;
use ipcraft_core::{Deadline, TrustedOwners};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How to connect to a Unix socket: whose listeners to trust, and how long to wait for a
/// full backlog. Every plain `connect` trusts our effective uid and root; these options widen
/// that on purpose, for a service another user runs.
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
/// let stream = ConnectOptions::new()
///     .trust(TrustedOwners::new().also_uid(110))
///     .timeout(Duration::from_secs(2))
///     .stream(&addr)?;
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

    fn deadline(&self) -> Deadline {
        Deadline::from_timeout(self.timeout)
    }

    /// Connect a stream to `addr`, checking the listener's owner (`SO_PEERCRED`) before
    /// returning.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`UnixStream::connect_deadline`].
    pub fn stream(&self, addr: &SocketAddr) -> Result<UnixStream> {
        UnixStream::connect_trusting(addr, self.deadline(), &self.trusted)
    }

    /// Connect a seqpacket socket to `addr`, checking the listener's owner.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`SeqpacketConn::connect_deadline`].
    pub fn seqpacket(&self, addr: &SocketAddr) -> Result<SeqpacketConn> {
        SeqpacketConn::connect_trusting(addr, self.deadline(), &self.trusted)
    }

    /// Set `sock`'s default destination to `addr` (`connect(2)`), checking the owner of a
    /// path's socket file first; later `send`s go there unchecked.
    ///
    /// # Errors
    ///
    /// [`Error::Untrusted`]; as [`UnixDatagram::connect`].
    pub fn datagram(&self, sock: &UnixDatagram, addr: &SocketAddr) -> Result<()> {
        check_destination(addr, &self.trusted)?;
        sock.connect_unchecked(addr)
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
