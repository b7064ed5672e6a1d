//! The run's names and its checks for what a round left behind: descriptors of the parent
//! (`/proc/self/fd`), and named objects carrying the run's prefix in `/dev/shm`,
//! `/dev/mqueue` and the run's directory (sockets, FIFOs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where a run's names live.
#[derive(Debug)]
pub struct Run {
    /// `ipcraft-soak-<pid>`: every name of the run starts with it.
    pub prefix: String,
    /// `/tmp/ipcraft-soak-<pid>`: the run's sockets and FIFOs.
    pub dir: PathBuf,
    /// The channel scenarios replace a killed receiver (takeover) or sender (slot reuse);
    /// off with `--no-channel-restarts`.
    pub channel_restarts: bool,
    /// The self-test: faults on purpose, every counter must count.
    pub self_test: bool,
}

impl Run {
    /// A run of this process; makes its directory.
    pub fn new(channel_restarts: bool, self_test: bool) -> Result<Self, String> {
        let prefix = format!("ipcraft-soak-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(Self {
            prefix,
            dir,
            channel_restarts,
            self_test,
        })
    }

    /// The POSIX IPC name of round `round`'s object `tag`.
    pub fn ipc_name(&self, round: u64, tag: &str) -> String {
        format!("/{}-{round}-{tag}", self.prefix)
    }

    /// The path of round `round`'s file `tag` in the run's directory.
    pub fn path(&self, round: u64, tag: &str) -> PathBuf {
        self.dir.join(format!("{round}-{tag}"))
    }

    /// What carries the run's prefix now: `/dev/shm/...`, `/dev/mqueue/...`, files in the
    /// run's directory.
    pub fn named_objects(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in ["/dev/shm", "/dev/mqueue"] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                        found.push(e.path());
                    }
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            found.extend(rd.flatten().map(|e| e.path()));
        }
        found.sort();
        found
    }

    /// The documented cleanup, once every process of a round is gone: shared memory
    /// objects of the run whose ipcraft creator is provably dead (what
    /// `ipcraft::shm::remove_stale` removes, limited to the run's names), and the `PATH.lock`
    /// files `bind_reclaiming_stale` documents that it leaves beside a socket.
    pub fn cleanup(&self) {
        if let Ok(list) = ipcraft::shm::list() {
            for info in list {
                if info.name[1..].starts_with(&self.prefix) && info.is_stale() {
                    let _ = ipcraft::shm::unlink(&info.name);
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "lock") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Count (and note) what is left after cleanup, then remove it by hand so the next
    /// round starts clean.
    pub fn leftovers(&self, notes: &mut String) -> u64 {
        let left = self.named_objects();
        for p in &left {
            let _ = writeln!(notes, "leaked: {} left after cleanup", p.display());
            remove_any(p);
        }
        left.len() as u64
    }

    /// Remove the run's directory (at the end).
    pub fn remove_dir(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn remove_any(p: &Path) {
    let _ = std::fs::remove_file(p);
}

/// The descriptors this process has open: number and what it leads to (without the
/// descriptor that reads the list).
pub fn open_fds() -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut v: Vec<(u32, String)> = rd
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            Some((fd, target))
        })
        .filter(|(_, t)| !(t.starts_with("/proc/") && t.ends_with("/fd")))
        .collect();
    v.sort();
    v
}

/// Compare the parent's descriptors with `before`; note the new ones.
pub fn fds_leaked(before: &[(u32, String)], notes: &mut String) -> u64 {
    let new: Vec<(u32, String)> = open_fds()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    for (fd, target) in &new {
        let _ = writeln!(notes, "leaked: parent descriptor {fd} ({target})");
    }
    new.len() as u64
}
