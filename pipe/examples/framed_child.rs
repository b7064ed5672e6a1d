//! Framed request/response with a child process over two anonymous pipes.
//!
//! The parent re-runs this example as a child (with `--child`), hands it one pipe end as its
//! stdin and another as its stdout, and sends it frames; the child answers each with the frame
//! upper-cased. Run with `cargo run -p ipcraft-pipe --example framed_child`.

use ipcraft_pipe::{FrameReader, FrameWriter, PipeReader, PipeWriter, pipe};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--child") {
        return child();
    }
    let (child_in, to_child) = pipe()?;
    let (from_child, child_out) = pipe()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .stdin(child_in)
        .stdout(child_out)
        .spawn()?;

    let mut tx = FrameWriter::new(to_child);
    let reader = from_child;
    // Never wait forever for a child that died.
    reader.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut rx = FrameReader::new(reader);
    for msg in ["hello", "", "framed world"] {
        tx.send(msg.as_bytes())?;
        let reply = rx.next_frame()?.ok_or("child closed early")?;
        println!("{msg:?} -> {:?}", String::from_utf8_lossy(reply));
    }
    drop(tx); // end of stream: the child's loop ends
    child.wait()?;
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    let stdin = PipeReader::try_from(std::io::stdin().as_fd().try_clone_to_owned()?)?;
    let stdout = PipeWriter::try_from(std::io::stdout().as_fd().try_clone_to_owned()?)?;
    let mut rx = FrameReader::new(stdin);
    let mut tx = FrameWriter::new(stdout);
    while let Some(frame) = rx.next_frame()? {
        tx.send(&frame.to_ascii_uppercase())?;
    }
    Ok(())
}
