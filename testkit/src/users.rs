//! Children that run as other users, for the trust-on-open tests: an attacker who makes a
//! name first, world-accessible, and a victim who then runs the code the docs show.

use crate::Roles;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

/// The uid (and gid) the attacker plays: no real user, not root.
pub const ATTACKER_UID: u32 = 4242;
/// The uid (and gid) a non-root victim plays.
pub const VICTIM_UID: u32 = 4243;

/// Whether this process can start children as other users (it runs as root). If not, says
/// `SKIPPED: ...` on stdout and stderr: the cross-user tests then check nothing, and say so.
pub fn can_switch_users() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!(
            "SKIPPED: not running as root, so no child can play another user; the cross-user \
             trust tests need root (CI runs them as root)"
        );
        eprintln!("SKIPPED: cross-user trust tests need root");
    }
    root
}

impl Roles {
    /// Starts a child for `role` with `arg` as user and group `uid` (supplementary groups
    /// dropped, then the gid, then the uid, before exec), stdout piped for markers.
    ///
    /// # Panics
    ///
    /// If the child cannot be started (this process is not root, or the test binary is not
    /// executable by that user).
    pub fn spawn_as(&self, uid: u32, role: &str, arg: &str) -> Child {
        self.command(role, arg)
            .stdin(Stdio::null())
            .gid(uid)
            .uid(uid)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a `{role}` child as uid {uid}: {e}"))
    }
}
