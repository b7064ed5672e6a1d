//! Two processes increment one counter in a named segment; the total is exact.
//!
//! The parent creates `/ipcraft-example-<pid>` (mode 0600, removed when the parent's handle
//! drops), re-runs this example as a child that opens it by name, and both add 100 000.
//! Run with `cargo run -p ipcraft-shm --example shared_counter`.
#![allow(clippy::disallowed_types)] // Std atomics in shared memory: what ipcraft-shm is for.

use ipcraft_shm::Segment;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

const N: u64 = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        // Child: open by name, add N.
        let seg = Segment::open(&name)?;
        let counter: &AtomicU64 = seg.get(0)?;
        for _ in 0..N {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(());
    }
    let name = format!("/ipcraft-example-{}", std::process::id());
    let seg = Segment::create(&name, 4096)?;
    let mut child = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    let counter: &AtomicU64 = seg.get(0)?;
    for _ in 0..N {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    assert!(child.wait()?.success());
    println!(
        "total: {} (expected {})",
        counter.load(Ordering::SeqCst),
        2 * N
    );
    Ok(())
}
