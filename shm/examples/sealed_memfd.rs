//! An anonymous, sealed segment handed to a child at spawn (as its stdin): nothing is
//! named, so nothing can leak, and the child cannot shrink it under us.
//!
//! Run with `cargo run -p ipcraft-shm --example sealed_memfd`.

use ipcraft_shm::Segment;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--child") {
        let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
        // Checks the seals, the size and the ipcraft header before mapping.
        let seg = Segment::from_fd(fd, 4096)?;
        let mut greeting = [0u8; 13];
        seg.read_at(0, &mut greeting)?;
        seg.write_at(100, b"hello, parent")?;
        println!("child read {:?}", String::from_utf8_lossy(&greeting));
        // ftruncate on the received descriptor would fail with EPERM (F_SEAL_SHRINK).
        return Ok(());
    }
    let seg = Segment::anonymous(4096)?;
    seg.write_at(0, b"hello, child!")?;
    let fd = seg.as_fd().try_clone_to_owned()?;
    let status = Command::new(std::env::current_exe()?)
        .arg("--child")
        .stdin(Stdio::from(fd))
        .status()?;
    assert!(status.success());
    let mut reply = [0u8; 13];
    seg.read_at(100, &mut reply)?;
    println!("parent read {:?}", String::from_utf8_lossy(&reply));
    Ok(())
}
