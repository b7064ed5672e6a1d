//! Every committed corpus file (`fuzz/corpus/<target>/*`, crash inputs included) through its
//! target's function: the fuzz targets' regression tests, on stable, without cargo-fuzz.

use ipcraft_fuzz_harness::TARGETS;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    // Counts what ran: an empty corpus is a mistake, not a pass.
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
    eprintln!("{target}: replayed {} inputs", files.len());
}

#[test]
fn frame() {
    replay("frame", ipcraft_fuzz_harness::frame::run);
}

#[test]
fn channel() {
    replay("channel", ipcraft_fuzz_harness::channel::run);
}

#[test]
fn shm_header() {
    replay("shm_header", ipcraft_fuzz_harness::shm_header::run);
}

#[test]
fn names() {
    replay("names", ipcraft_fuzz_harness::names::run);
}

#[test]
fn cmsg() {
    replay("cmsg", ipcraft_fuzz_harness::cmsg::run);
}

/// Every target in the list has a test above, and a corpus.
#[test]
fn every_target_is_replayed() {
    let this = include_str!("replay.rs");
    for (name, _) in TARGETS {
        assert!(
            this.contains(&format!("fn {name}()")),
            "no replay test for target {name}"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../corpus")
            .join(name);
        assert!(dir.is_dir(), "no corpus for target {name}");
    }
}
