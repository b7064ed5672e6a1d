//! Two processes and a shared-memory channel: the parent sends, a child process (this
//! program re-run with `child`) receives. Nothing is named: the sealed memfd reaches the
//! child as its standard input.
//!
//! ```sh
//! cargo run --release -p ipcraft --example channel
//! ```

use ipcraft::channel::{ChannelError, Receiver, Sender};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGES: u32 = 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("child") {
        return child();
    }
    // 64 KiB of ring; the descriptor for the other end goes to the child at spawn.
    let (mut tx, fd) = Sender::anonymous(1 << 16)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .stdin(Stdio::from(fd))
        .spawn()?;
    let start = Instant::now();
    for i in 0..MESSAGES {
        tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(10))?;
    }
    // Zero copy: format straight into the ring, commit what was written.
    let mut slot = tx.reserve(64)?;
    write!(slot, "that was {MESSAGES} messages")?;
    let len = slot.written();
    slot.commit_len(len)?;
    drop(tx); // the child sees Disconnected after draining
    let status = child.wait()?;
    println!(
        "parent: sent {MESSAGES} messages in {:?}; child {status}",
        start.elapsed()
    );
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut rx = Receiver::from_fd(fd)?;
    let mut sum: u64 = 0;
    for _ in 0..MESSAGES {
        let msg = rx.recv_timeout(Duration::from_secs(10))?;
        sum += u64::from(u32::from_le_bytes(msg[..4].try_into()?));
    }
    // Read the last one in place.
    let mut slot = rx.recv_slot()?;
    let mut text = String::new();
    slot.read_to_string(&mut text)?;
    slot.release();
    assert!(matches!(rx.recv(), Err(ChannelError::Disconnected)));
    let want = u64::from(MESSAGES) * u64::from(MESSAGES - 1) / 2;
    println!("child: sum {sum} (expected {want}); last message: {text:?}");
    if sum == want {
        Ok(())
    } else {
        Err("wrong sum".into())
    }
}
