//! A FIFO "mailbox": this process creates a FIFO with mode 0600 and reads frames from any
//! process that opens it for writing, until the writers are gone. A shell acts as the client.
//!
//! Run with `cargo run -p ipcraft-pipe --example fifo_server`. The FIFO is removed when the
//! example ends (the creator owns the path).

use ipcraft_pipe::{Fifo, FrameReader};
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("ipcraft-mailbox-{}", std::process::id()));
    let fifo = Fifo::create(&path)?;
    println!("mailbox at {}", fifo.path().display());

    // The client: a shell writes one frame (4-byte little-endian length, then the payload).
    let mut client = Command::new("sh")
        .arg("-c")
        .arg(r#"printf '\005\000\000\000hello' > "$0""#)
        .arg(fifo.path())
        .spawn()?;

    // Wait at most 10 s for a writer to show up.
    let reader = Fifo::open_reader(fifo.path(), Some(Duration::from_secs(10)))?;
    let mut rx = FrameReader::with_max_frame(reader, 64 * 1024);
    while let Some(msg) = rx.next_frame()? {
        println!("got {:?}", String::from_utf8_lossy(msg));
    }
    client.wait()?;
    Ok(())
}
