//! Helpers shared by this crate's integration tests: the roles its children play (started
//! and read with `ipcraft-testkit`), unique names that clean up after themselves.
#![allow(dead_code)] // Each test file uses a different subset.

use ipcraft_testkit::{Roles, unique_name};
use std::process::{Child, Stdio};

/// The role a child runs, and its argument (unset in the parent's own run).
pub const ROLES: Roles = Roles::new("IPCRAFT_SYNC_TEST_ROLE", "IPCRAFT_SYNC_TEST_ARG");

/// Re-run this test binary as a child running `child_role` with `role` and `arg`; its
/// stdout is piped for marker lines.
pub fn spawn_role(role: &str, arg: &str) -> Child {
    ROLES.spawn(role, arg, Stdio::null())
}

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    unique_name("/ipcraft-sync-test", tag)
}

/// A unique name, removed on drop (as a semaphore and as a segment), even when a test
/// fails half-way.
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Self {
        Self(unique(tag))
    }

    /// A unique name exactly `len` bytes after the '/'.
    pub fn with_len(len: usize) -> Self {
        let mut s = unique("long");
        assert!(s.len() <= len + 1);
        while s.len() < len + 1 {
            s.push('x');
        }
        Self(s)
    }

    /// The file glibc makes for a named semaphore of this name.
    pub fn file(&self) -> String {
        format!("/dev/shm/sem.{}", &self.0[1..])
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = ipcraft_sync::unlink_semaphore(&self.0);
        let _ = ipcraft_shm::unlink(&self.0);
    }
}
