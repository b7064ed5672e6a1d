//! Helpers shared by this crate's integration tests.

use std::path::PathBuf;
use std::sync::Mutex;

/// A unique path in the temporary directory (pid and a counter), removed on drop whatever
/// is there, so parallel runs never collide and nothing is left behind.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> Self {
        static N: Mutex<usize> = Mutex::new(0);
        let n = {
            let mut n = N.lock().unwrap();
            *n += 1;
            *n
        };
        Self(std::env::temp_dir().join(format!("ipcraft-pipe-{}-{n}-{tag}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
