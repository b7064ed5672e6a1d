//! Helpers shared by this crate's integration tests: children that are the test binary
//! re-run with a role, unique names that clean up after themselves, marker lines.
#![allow(dead_code)] // Each test file uses a different subset.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// The role a child runs (empty in the parent's own run).
pub const ROLE_ENV: &str = "IPCRAFT_SYNC_TEST_ROLE";
/// The role's argument.
pub const ARG_ENV: &str = "IPCRAFT_SYNC_TEST_ARG";

/// Re-run this test binary as a child running `child_role` with `role` and `arg`; its
/// stdout is piped for marker lines.
pub fn spawn_role(role: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_role",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_ENV, role)
        .env(ARG_ENV, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The role this process was started for, if it is a child.
pub fn role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    Some((role, std::env::var(ARG_ENV).unwrap_or_default()))
}

fn next_id() -> usize {
    static N: Mutex<usize> = Mutex::new(0);
    let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    *n
}

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    format!(
        "/ipcraft-sync-test-{}-{}-{tag}",
        std::process::id(),
        next_id()
    )
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

/// Read the child's stdout until the line `marker`.
pub fn wait_for(child: &mut Child, marker: &str) {
    let mut reader = BufReader::new(child.stdout.as_mut().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "child ended before {marker}"
        );
        if line.trim_end() == marker {
            return;
        }
    }
}
