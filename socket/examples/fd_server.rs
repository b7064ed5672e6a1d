//! A server that hands each client a pipe end: the client writes to it, the server reads.
//!
//! The server binds a socket file (mode 0600), starts three clients (this example re-run with
//! `--client PATH`), and for each connection checks the peer's credentials, sends it the write
//! end of a fresh pipe together with a framed greeting, and reads what the client wrote into
//! the pipe. Run with `cargo run -p ipcraft-socket --example fd_server`.

use ipcraft_socket::{Deadline, FrameReader, FrameWriter, UnixListener, UnixStream};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--client" {
        return client(&args[2]);
    }
    let path = std::env::temp_dir().join(format!("ipcraft-fd-server-{}.sock", std::process::id()));
    let listener = UnixListener::bind(&path)?; // removed again when `listener` drops
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(
            Command::new(std::env::current_exe()?)
                .arg("--client")
                .arg(&path)
                .spawn()?,
        );
    }
    for _ in 0..3 {
        let conn = listener.accept_timeout(TIMEOUT)?.0;
        let peer = conn.peer_credentials()?;
        let (mut pipe_r, pipe_w) = std::io::pipe()?;
        // One byte carries the descriptor; a framed greeting follows.
        conn.send_with_fds(b"P", &[pipe_w.as_fd()])?;
        FrameWriter::new(&conn).send(format!("hello pid {}", peer.pid).as_bytes())?;
        drop(pipe_w); // the client holds the only write end now
        let mut text = String::new();
        pipe_r.read_to_string(&mut text)?;
        println!("server: peer {peer:?} wrote through its pipe: {text:?}");
    }
    for mut c in children {
        c.wait()?;
    }
    Ok(())
}

fn client(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let conn = UnixStream::connect(path)?;
    let conn = conn;
    conn.set_read_timeout(Some(TIMEOUT))?;
    // The first byte brings the pipe end (recv_with_fds never reads past it); a frame follows.
    let mut first = [0u8; 1];
    let (_, fds) = conn.recv_with_fds_deadline(&mut first, 1, Deadline::after(TIMEOUT))?;
    let pipe_w = fds.into_iter().next().ok_or("no descriptor arrived")?;
    let greeting = FrameReader::new(&conn)
        .recv()?
        .ok_or("server closed early")?;
    let mut w = std::io::PipeWriter::from(pipe_w);
    write!(
        w,
        "client {} got {:?}",
        std::process::id(),
        String::from_utf8_lossy(&greeting)
    )?;
    Ok(())
}
