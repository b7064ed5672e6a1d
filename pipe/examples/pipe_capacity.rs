//! Pipe capacity and atomic writes: grow a pipe's buffer, see the system limit, and write
//! records that are never interleaved with other writers'.
//!
//! Run with `cargo run -p ipcraft-pipe --example pipe_capacity`.

use ipcraft_pipe::{Error, PIPE_BUF, max_capacity, pipe};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_reader, writer) = pipe()?;
    let limit = max_capacity()?;
    println!(
        "default capacity: {} bytes; system limit: {limit} bytes",
        writer.capacity()?
    );
    println!(
        "grown to: {} bytes",
        writer.set_capacity(limit.min(1 << 20))?
    );
    match writer.set_capacity(limit + 1) {
        Err(e @ Error::CapacityAboveLimit { .. }) => println!("refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    writer.write_atomic(&[b'x'; PIPE_BUF])?;
    println!("wrote one atomic record of PIPE_BUF = {PIPE_BUF} bytes");
    Ok(())
}
