//! Peer identity: [`PeerCredentials`] (`SO_PEERCRED`) and the listener-side [`PeerPolicy`].

use crate::error::{Error, Result};
use nix::sys::socket::{getsockopt, sockopt};
use std::fmt;
use std::os::fd::AsFd;
use std::sync::Arc;

/// Who is at the other end of a connected Unix socket: process id, user id and group id, as
/// the kernel recorded them (`SO_PEERCRED`, see `unix(7)`).
///
/// The kernel captures them **when the connection is made** (`connect(2)` or `socketpair(2)`;
/// for the connecting side, when `listen(2)` was called): a peer that later changes uid or
/// drops privileges still reports the old ids, and the pid may by now belong to another
/// process if the peer has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id (0 when the peer is in a pid namespace this process cannot see).
    pub pid: i32,
    /// The peer's effective user id at connect time.
    pub uid: u32,
    /// The peer's effective group id at connect time.
    pub gid: u32,
}

pub(crate) fn peer_credentials(fd: impl AsFd) -> Result<PeerCredentials> {
    let c =
        getsockopt(&fd, sockopt::PeerCredentials).map_err(Error::sys("getsockopt(SO_PEERCRED)"))?;
    Ok(PeerCredentials {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

/// Which peers a [`UnixListener`](crate::UnixListener) hands out: checked on each accepted
/// connection, before `accept` returns it. A refused connection is closed at once and
/// `accept` fails with [`Error::PeerRefused`] naming the peer.
///
/// Built from allowed uids and gids (a peer passes if its uid **or** its gid is listed), or
/// from any function of the [`PeerCredentials`].
///
/// # Examples
///
/// ```
/// use ipcraft_socket::{PeerCredentials, PeerPolicy};
///
/// let me = 1000;
/// let only_me = PeerPolicy::allow_uids([me]);
/// assert!(only_me.allows(&PeerCredentials { pid: 1, uid: me, gid: 12345 }));
/// assert!(!only_me.allows(&PeerCredentials { pid: 1, uid: me + 1, gid: 12345 }));
/// let staff = PeerPolicy::allow_uids([0]).or_gids([50]);
/// assert!(staff.allows(&PeerCredentials { pid: 1, uid: 1000, gid: 50 }));
/// let even = PeerPolicy::custom(|c| c.pid % 2 == 0);
/// assert!(even.allows(&PeerCredentials { pid: 2, uid: 1000, gid: 50 }));
/// ```
#[derive(Clone)]
#[must_use = "a policy does nothing until a listener or connection is given it"]
pub struct PeerPolicy {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Ids { uids: Vec<u32>, gids: Vec<u32> },
    Custom(Arc<dyn Fn(&PeerCredentials) -> bool + Send + Sync>),
}

impl PeerPolicy {
    /// Allow peers whose uid is in `uids`.
    pub fn allow_uids(uids: impl IntoIterator<Item = u32>) -> Self {
        Self {
            rule: Rule::Ids {
                uids: uids.into_iter().collect(),
                gids: Vec::new(),
            },
        }
    }

    /// Allow peers whose gid is in `gids`.
    pub fn allow_gids(gids: impl IntoIterator<Item = u32>) -> Self {
        Self {
            rule: Rule::Ids {
                uids: Vec::new(),
                gids: gids.into_iter().collect(),
            },
        }
    }

    /// Also allow peers whose gid is in `gids`: the result allows a peer that `self` allows
    /// **or** whose gid is listed.
    pub fn or_gids(self, gids: impl IntoIterator<Item = u32>) -> Self {
        match self.rule {
            Rule::Ids { uids, gids: mut g } => {
                g.extend(gids);
                Self {
                    rule: Rule::Ids { uids, gids: g },
                }
            }
            Rule::Custom(f) => {
                let gids: Vec<u32> = gids.into_iter().collect();
                Self::custom(move |c| f(c) || gids.contains(&c.gid))
            }
        }
    }

    /// Allow the peers for which `allow` returns true.
    pub fn custom(allow: impl Fn(&PeerCredentials) -> bool + Send + Sync + 'static) -> Self {
        Self {
            rule: Rule::Custom(Arc::new(allow)),
        }
    }

    /// Whether this policy lets `peer` in.
    pub fn allows(&self, peer: &PeerCredentials) -> bool {
        match &self.rule {
            Rule::Ids { uids, gids } => uids.contains(&peer.uid) || gids.contains(&peer.gid),
            Rule::Custom(f) => f(peer),
        }
    }
}

impl fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Ids { uids, gids } => f
                .debug_struct("PeerPolicy")
                .field("uids", uids)
                .field("gids", gids)
                .finish(),
            Rule::Custom(_) => f.write_str("PeerPolicy(custom)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> PeerCredentials {
        PeerCredentials { pid: 1, uid, gid }
    }

    #[test]
    fn policies_allow_exactly_what_they_list() {
        let uids = PeerPolicy::allow_uids([1000, 1001]);
        assert!(uids.allows(&peer(1000, 5)));
        assert!(
            !uids.allows(&peer(1002, 1000)),
            "a uid list says nothing of gids"
        );
        let either = PeerPolicy::allow_uids([1000]).or_gids([50]);
        assert!(either.allows(&peer(7, 50)));
        assert!(either.allows(&peer(1000, 7)));
        assert!(!either.allows(&peer(7, 7)));
        let gids = PeerPolicy::allow_gids([]);
        assert!(
            !gids.allows(&peer(0, 0)),
            "an empty list allows nobody, not even root"
        );
        let custom = PeerPolicy::custom(|c| c.pid > 0 && c.uid == c.gid).or_gids([9]);
        assert!(custom.allows(&peer(4, 4)));
        assert!(custom.allows(&peer(4, 9)));
        assert!(!custom.allows(&peer(4, 5)));
        assert!(format!("{custom:?}").contains("PeerPolicy"));
    }
}
