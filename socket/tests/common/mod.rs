//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use ipcraft_testkit::{unique_name, wait_for_line};
use std::path::PathBuf;
use std::process::Child;

/// A unique socket path in /tmp (pid and a counter; short, well under 107 bytes), removed on
/// drop whatever is there, so parallel runs never collide and nothing is left behind.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> Self {
        Self(PathBuf::from(unique_name("/tmp/ipcraft-sock", tag)))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A unique abstract name.
pub fn abstract_name(tag: &str) -> Vec<u8> {
    unique_name("ipcraft-test", tag).into_bytes()
}

/// How many descriptors this process has open.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each racing `bind_reclaiming_stale` starter printed: `WON`, or `LOST <reason>`.
pub fn race_outcomes(racers: &mut [Child]) -> Vec<String> {
    racers
        .iter_mut()
        .map(|c| {
            wait_for_line(c, "WON or LOST", |l| {
                l.starts_with("WON") || l.starts_with("LOST")
            })
        })
        .collect()
}
