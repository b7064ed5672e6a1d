//! An async channel consumer in a `select!` loop with a shutdown signal: the parent (a tokio
//! program) receives from a child process (this program re-run with `producer`, a plain
//! blocking sender) until the producer is gone, Ctrl-C is pressed, or a deadline passes.
//! Receiving is cancel-safe: when the shutdown branch wins, the pending `recv` is dropped and
//! no message is lost (the next `recv` would get it).
//!
//! ```sh
//! cargo run --release -p ipcraft --features tokio --example async_consumer
//! ```

use ipcraft::channel::{self, ChannelError};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

const MESSAGES: u32 = 100_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("producer") {
        return producer();
    }
    let (mut rx, fd) = channel::tokio::Receiver::anonymous(1 << 16)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("producer")
        .stdin(Stdio::from(fd))
        .spawn()?;

    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    let (mut received, mut sum) = (0u32, 0u64);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(m) => {
                    let n = u32::from_le_bytes(m.as_slice().try_into()?);
                    received += 1;
                    sum += u64::from(n);
                }
                // The producer closed (or died) and everything it sent was received.
                Err(ChannelError::Disconnected) => break,
                Err(e) => return Err(e.into()),
            },
            _ = &mut shutdown => {
                println!("consumer: Ctrl-C, stopping");
                break;
            }
            () = &mut deadline => {
                println!("consumer: deadline, stopping");
                break;
            }
        }
    }
    println!("consumer: {received} messages, sum {sum}");
    child.wait()?;
    Ok(())
}

/// The child: a blocking sender on the memfd that is its standard input.
fn producer() -> Result<(), Box<dyn std::error::Error>> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut tx = channel::Sender::from_fd(fd)?;
    for i in 0..MESSAGES {
        tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(10))?;
    }
    Ok(())
}
