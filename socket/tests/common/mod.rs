//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;

fn next() -> usize {
    static N: Mutex<usize> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    *n
}

/// A unique socket path in /tmp (pid and a counter; short, well under 107 bytes), removed on
/// drop whatever is there, so parallel runs never collide and nothing is left behind.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> Self {
        let n = next();
        Self(PathBuf::from(format!(
            "/tmp/ipcraft-sock-{}-{n}-{tag}",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A unique abstract name.
pub fn abstract_name(tag: &str) -> Vec<u8> {
    let n = next();
    format!("ipcraft-test-{}-{n}-{tag}", std::process::id()).into_bytes()
}

/// How many descriptors this process has open.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
