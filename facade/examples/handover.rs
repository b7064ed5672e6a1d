//! Hands a request channel and a reply channel to a worker process (this program again),
//! by name, with no `unsafe` on either side: `cargo run -p ipcraft --example handover`.
//!
//! The worker calls `handover::init` first thing in `main`, while it has one thread, so the
//! `LISTEN_*` variables are removed from its environment and its own children never see them.

use ipcraft::channel::{Receiver, Sender};
use ipcraft::handover::{self, Handover};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("HANDOVER_EXAMPLE_WORKER").is_some() {
        return worker();
    }
    let (mut requests, requests_fd) = Sender::anonymous(1 << 16)?;
    let (mut replies, replies_fd) = Receiver::anonymous(1 << 16)?;
    let mut child = Handover::new()
        .fd("requests", &requests_fd)?
        .fd("replies", &replies_fd)?
        .command(std::env::current_exe()?)
        .env("HANDOVER_EXAMPLE_WORKER", "1")
        .spawn()?;
    requests.send(b"hello")?;
    // A timeout, so that a worker that failed cannot leave us waiting.
    let reply = replies.recv_timeout(Duration::from_secs(10))?;
    println!("parent: {}", String::from_utf8_lossy(&reply));
    assert!(child.wait()?.success());
    Ok(())
}

fn worker() -> Result<(), Box<dyn std::error::Error>> {
    handover::init()?;
    println!(
        "worker: environment cleared: {}",
        std::env::var_os("LISTEN_FDS").is_none()
    );
    let mut requests = Receiver::inherited("requests")?;
    let mut replies = Sender::inherited("replies")?;
    let request = requests.recv_timeout(Duration::from_secs(10))?;
    replies.send(&request.to_ascii_uppercase())?;
    Ok(())
}
