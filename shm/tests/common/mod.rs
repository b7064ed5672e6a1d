//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use ipcraft_shm::unlink;
use ipcraft_testkit::unique_name;

/// A unique segment name (`prefix-pid-n-tag`), unlinked on drop; the drop also checks that
/// nothing is left in `/dev/shm`.
pub struct Name(pub String);

impl Name {
    pub fn new(prefix: &str, tag: &str) -> Self {
        Self(unique_name(prefix, tag))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
        let path = format!("/dev/shm{}", self.0);
        if !std::thread::panicking() {
            assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
        }
    }
}
