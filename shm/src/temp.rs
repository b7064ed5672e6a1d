//! The private names under which a named segment is built before it is moved into place.
//!
//! `/.ipcraft-tmp-PID-RANDOM`: a creator makes its object there with `O_EXCL`, takes the
//! creator lock, sizes and maps it and writes the header, and only then moves it to the
//! user's name with `renameat2(RENAME_NOREPLACE)` (or `link(2)`, which never replaces a name
//! either). So a user's name only ever leads to a complete object, and what a creator killed
//! mid-way leaves is a temporary that [`list`](crate::list) recognizes by this prefix and
//! [`remove_stale`](crate::remove_stale) removes once its creator lock is free.
//!
//! The prefix is reserved: a user's segment should not start with it (it would be listed as a
//! temporary, and removed as one once its creator is gone).

use crate::error::Result;
use ipcraft_core::PosixName;
use std::hash::{BuildHasher, Hasher};

/// Names that start with this are ipcraft's temporaries (the leading `.` also keeps them out
/// of a plain `ls /dev/shm`).
pub(crate) const TEMP_PREFIX: &str = "/.ipcraft-tmp-";

/// A fresh temporary name: this process's pid and 64 unpredictable bits. Unpredictable so that
/// nobody can take a creator's next name first; a name taken anyway (`EEXIST`) is skipped.
pub(crate) fn temp_name() -> Result<PosixName> {
    // RandomState's keys come from the OS once per thread and change for every instance:
    // the hash of anything under them is unpredictable and differs from call to call.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let name = format!("{TEMP_PREFIX}{}-{:016x}", std::process::id(), h.finish());
    // 14 + 10 + 1 + 16 bytes, one '/': always a valid POSIX name.
    Ok(PosixName::new(&name)?)
}

/// Whether `name` (with its leading `/`) is one of ipcraft's temporaries.
pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// The pid recorded in a temporary's name (informative only: pids are recycled).
pub(crate) fn temp_creator_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_recognized_and_distinct() {
        let a = temp_name().unwrap();
        let b = temp_name().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert!(is_temp(a.as_str()));
        assert_eq!(temp_creator_pid(a.as_str()), Some(std::process::id()));
        assert!(!is_temp("/ipcraft-tmp-1-2"));
        assert!(!is_temp("/my-segment"));
        assert_eq!(temp_creator_pid("/.ipcraft-tmp-x-1"), None);
    }
}
