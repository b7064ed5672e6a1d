//! Helpers shared by this crate's integration tests.

use ipcraft_testkit::unique_name;
use std::path::PathBuf;

/// A unique path in the temporary directory (pid and a counter), removed on drop whatever
/// is there, so parallel runs never collide and nothing is left behind.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> Self {
        Self(std::env::temp_dir().join(unique_name("ipcraft-pipe", tag)))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
