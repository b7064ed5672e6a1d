//! Trust on open: whose named objects an open may join, checked on the descriptor.
//!
//! `/dev/shm`, `/dev/mqueue` and `/tmp` are writable by every user, so a name may have been
//! made first by someone else, with a mode that lets them read what we send. Every ipcraft
//! open of a named object (and every connect to a path) applies the one rule here right
//! after the open, to what the descriptor refers to (`fstat`, never the path again): the
//! object's owner must be a [trusted owner](TrustedOwners) (by default: our effective uid
//! and root, as OpenSSH's `StrictModes` and PostgreSQL's data directory check do).
//! `open_or_create` also refuses an existing object whose mode grants more than the mode it
//! was asked to create with: it joins only what it could have created.

use nix::sys::stat::{FileStat, fstat};
use std::fmt;
use std::io;
use std::os::fd::AsFd;

/// The owners whose named objects an open may join.
///
/// The default ([`TrustedOwners::new`]) is this process's effective uid and root. Widening
/// it is explicit: [`also_uid`](Self::also_uid) names one more user to trust, and
/// [`any_owner_unchecked`](Self::any_owner_unchecked) gives the check up altogether.
///
/// # Examples
///
/// ```
/// use ipcraft_core::TrustedOwners;
///
/// let me = nix::unistd::geteuid().as_raw();
/// let trusted = TrustedOwners::new();
/// assert!(trusted.trusts(me) && trusted.trusts(0));
/// assert!(!trusted.trusts(65534) || me == 65534);
/// assert!(trusted.also_uid(65534).trusts(65534));
/// assert!(TrustedOwners::any_owner_unchecked().trusts(12345));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct TrustedOwners {
    /// Any owner: the check is given up.
    any: bool,
    /// More uids than our euid and root: the first `count` entries.
    also: [u32; MAX_ALSO],
    count: u8,
}

/// How many uids [`TrustedOwners::also_uid`] can add (kept inline, so options stay `Copy`).
pub const MAX_ALSO: usize = 8;

impl Default for TrustedOwners {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustedOwners {
    /// Our effective uid and root.
    pub const fn new() -> Self {
        Self {
            any: false,
            also: [0; MAX_ALSO],
            count: 0,
        }
    }

    /// Also trust objects owned by `uid`: a user with whom objects are shared on purpose
    /// (who created them with a group or world mode). At most [`MAX_ALSO`] uids can be
    /// added; more are not trusted (the check then refuses their objects, and its error
    /// lists the uids that were trusted).
    pub fn also_uid(mut self, uid: u32) -> Self {
        let n = usize::from(self.count);
        if !self.also[..n].contains(&uid) && n < MAX_ALSO {
            self.also[n] = uid;
            self.count += 1;
        }
        self
    }

    /// Trust **any** owner: an open joins whatever object has the name, even one another
    /// user made first to read what this process sends or to feed it what it receives. Only
    /// for objects in a directory no other user can write.
    pub const fn any_owner_unchecked() -> Self {
        Self {
            any: true,
            also: [0; MAX_ALSO],
            count: 0,
        }
    }

    /// Whether an object owned by `uid` may be joined.
    pub fn trusts(&self, uid: u32) -> bool {
        self.any
            || uid == 0
            || uid == nix::unistd::geteuid().as_raw()
            || self.also[..usize::from(self.count)].contains(&uid)
    }

    /// The trusted uids, for messages (`None`: any).
    fn uids(&self) -> Option<Vec<u32>> {
        if self.any {
            return None;
        }
        let mut uids = vec![nix::unistd::geteuid().as_raw(), 0];
        uids.extend(self.also[..usize::from(self.count)].iter().copied());
        uids.dedup();
        Some(uids)
    }

    /// Check the object behind `fd` (a `kind` such as `"shared memory segment"`, named
    /// `name`): its owner must be trusted, and, when `requested` is given (the mode an
    /// `open_or_create` would have created it with), its permission bits must grant nothing
    /// beyond those.
    ///
    /// # Errors
    ///
    /// [`TrustError::Untrusted`] or [`TrustError::TooOpen`], which say what to do;
    /// [`TrustError::Stat`] when `fstat` fails.
    pub fn check(
        &self,
        fd: impl AsFd,
        kind: &'static str,
        name: &str,
        requested: Option<u32>,
    ) -> Result<(), TrustError> {
        let st = fstat(fd.as_fd()).map_err(|e| TrustError::Stat {
            name: name.to_owned(),
            errno: e,
        })?;
        self.check_stat(&st, kind, name, requested)
    }

    /// [`check`](Self::check) on a `stat` already made of the descriptor.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn check_stat(
        &self,
        st: &FileStat,
        kind: &'static str,
        name: &str,
        requested: Option<u32>,
    ) -> Result<(), TrustError> {
        self.check_owner(st.st_uid, st.st_mode, kind, name, requested)
    }

    /// [`check`](Self::check) on an owner and mode learnt otherwise (a socket peer's
    /// credentials, for one: `SO_PEERCRED`).
    ///
    /// # Errors
    ///
    /// [`TrustError::Untrusted`] or [`TrustError::TooOpen`].
    pub fn check_owner(
        &self,
        owner: u32,
        mode: u32,
        kind: &'static str,
        name: &str,
        requested: Option<u32>,
    ) -> Result<(), TrustError> {
        let found = Found {
            kind,
            name: name.to_owned(),
            owner,
            mode: mode & 0o7777,
        };
        if !self.trusts(found.owner) {
            return Err(TrustError::Untrusted {
                found,
                trusted: self.uids().unwrap_or_default(),
            });
        }
        if let Some(requested) = requested {
            if found.mode & 0o777 & !requested != 0 {
                return Err(TrustError::TooOpen { found, requested });
            }
        }
        Ok(())
    }
}

/// The object an open refused: what it is, its name, owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// What kind of object (`"message queue"`, `"shared memory segment"`, ...).
    pub kind: &'static str,
    /// Its name or path.
    pub name: String,
    /// Its owner's uid.
    pub owner: u32,
    /// Its permission bits.
    pub mode: u32,
}

/// Why an open refused to join an existing named object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustError {
    /// Its owner is not among the trusted owners.
    Untrusted {
        /// The object.
        found: Found,
        /// The uids that were trusted.
        trusted: Vec<u32>,
    },
    /// `open_or_create` found it existing with a mode wider than the one it would have
    /// created it with.
    TooOpen {
        /// The object.
        found: Found,
        /// The mode asked for.
        requested: u32,
    },
    /// `fstat` of the descriptor failed.
    Stat {
        /// The name.
        name: String,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untrusted { found, trusted } => write!(
                f,
                "refusing to join {} {:?}: it is owned by uid {} (mode {:03o}), and only uids \
                 {trusted:?} are trusted. Someone else may have made the name first to read \
                 or feed what this process exchanges. If uid {} shares it on purpose, trust it \
                 explicitly (TrustedOwners::new().also_uid({})); otherwise remove it (see its \
                 owner with `ls -ln`, its users with `fuser`)",
                found.kind, found.name, found.owner, found.mode, found.owner, found.owner
            ),
            Self::TooOpen { found, requested } => write!(
                f,
                "refusing to join {} {:?}: it exists with mode {:03o} (owner uid {}), wider \
                 than the {requested:03o} it would have been created with, so others may use \
                 it too. Remove it (see its users with `fuser`), or ask for that mode",
                found.kind, found.name, found.mode, found.owner
            ),
            Self::Stat { name, errno } => write!(f, "fstat({name:?}) failed: {errno}"),
        }
    }
}

impl std::error::Error for TrustError {}

impl From<TrustError> for io::Error {
    fn from(e: TrustError) -> Self {
        let kind = match &e {
            TrustError::Stat { errno, .. } => io::Error::from(*errno).kind(),
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(mode: u32) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "ipcraft-core-trust-{}-{mode:o}",
            std::process::id()
        ));
        let f = std::fs::File::create(&path).unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[cfg_attr(miri, ignore = "fstat")]
    #[test]
    fn our_own_object_is_trusted_and_a_wider_mode_is_refused_when_asked() {
        let f = file(0o644);
        let t = TrustedOwners::new();
        t.check(&f, "file", "/x", None).unwrap();
        t.check(&f, "file", "/x", Some(0o644)).unwrap();
        match t.check(&f, "file", "/x", Some(0o600)) {
            Err(e @ TrustError::TooOpen { .. }) => {
                let text = e.to_string();
                assert!(text.contains("mode 644") && text.contains("600"), "{text}");
                assert_eq!(io::Error::from(e).kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("{other:?}"),
        }
    }

    #[cfg_attr(miri, ignore = "fstat")]
    #[test]
    fn other_owners_are_refused_unless_trusted() {
        let me = nix::unistd::geteuid().as_raw();
        let stranger = if me == 4242 { 4243 } else { 4242 };
        let mut st: FileStat = a_stat();
        st.st_uid = stranger;
        st.st_mode = 0o100666;
        let t = TrustedOwners::new();
        match t.check_stat(&st, "message queue", "/jobs", None) {
            Err(e @ TrustError::Untrusted { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&format!("uid {stranger}")), "{text}");
                assert!(text.contains("also_uid"), "{text}");
                assert!(text.contains("message queue \"/jobs\""), "{text}");
            }
            other => panic!("{other:?}"),
        }
        t.also_uid(stranger)
            .check_stat(&st, "message queue", "/jobs", None)
            .unwrap();
        TrustedOwners::any_owner_unchecked()
            .check_stat(&st, "message queue", "/jobs", None)
            .unwrap();
        // Past MAX_ALSO more uids, the extra ones are not trusted (the safe side).
        let mut many = TrustedOwners::new();
        for uid in 5000..5000 + MAX_ALSO as u32 {
            many = many.also_uid(uid);
        }
        assert!(many.trusts(5000) && many.trusts(5000 + MAX_ALSO as u32 - 1));
        assert!(!many.also_uid(6000).trusts(6000));
        st.st_uid = 0;
        t.check_stat(&st, "message queue", "/jobs", None).unwrap();
    }

    /// A `stat` to edit (FileStat has private padding on some targets: take a real one).
    fn a_stat() -> FileStat {
        let f = file(0o600);
        fstat(f.as_fd()).unwrap()
    }
}
