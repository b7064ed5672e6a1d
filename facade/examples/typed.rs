//! Typed messages between two processes: the parent receives `Reading`s (plain data, zero
//! copy), a child process (this program re-run with `child`) sends them. The channel
//! announces its type: a child built with another `Reading` would be refused when it
//! attaches, before any message.
//!
//! ```sh
//! cargo run --release -p ipcraft --example typed
//! ```

use ipcraft::channel::ChannelError;
use ipcraft::typed::channel::{Receiver, Sender};
use ipcraft::typed::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use ipcraft::typed::{Message, TypedError};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One sensor reading: `#[repr(C)]`, no padding, so its bytes are the message.
#[derive(Debug, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
#[zerocopy(crate = "ipcraft::typed::zerocopy")]
#[repr(C)]
struct Reading {
    at_ms: u64,
    sensor: u32,
    celsius: f32,
}

impl Message for Reading {
    const NAME: &'static str = "example::Reading";
    const SCHEMA: u64 = 1;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("child") {
        return child();
    }
    // The receiver makes the channel; the memfd becomes the child's stdin.
    let (mut rx, fd) = Receiver::<Reading>::anonymous(1 << 16)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .stdin(Stdio::from(fd))
        .spawn()?;
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => println!(
                "parent: sensor {} read {:.1} °C at {} ms",
                r.sensor, r.celsius, r.at_ms
            ),
            Err(TypedError::Channel(ChannelError::Disconnected)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("parent: the child is done ({})", child.wait()?);
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    // Checks the channel's type first: `TypedError::TypeMismatch` if it is not `Reading`.
    let mut tx = Sender::<Reading>::from_fd(fd)?;
    for i in 0..5u16 {
        tx.send(&Reading {
            at_ms: u64::from(i) * 250,
            sensor: 7,
            celsius: 20.0 + f32::from(i) / 2.0,
        })?;
    }
    Ok(())
}
