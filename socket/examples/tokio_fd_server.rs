//! A tokio Unix-socket server that receives descriptors from its clients and checks who
//! they are.
//!
//! The server binds a socket file (mode 0600) with a peer policy that admits only its own
//! user, starts three clients (this example re-run with `--client PATH`), and serves each
//! connection in a task: it checks the peer's credentials (`SO_PEERCRED`: one of the
//! children it started), receives a frame carrying the read end of the client's pipe, and
//! reads from that descriptor what the client wrote into the pipe. Run with
//! `cargo run -p ipcraft-socket --features tokio --example tokio_fd_server`.

use ipcraft_socket::tokio::{UnixListener, UnixStream};
use ipcraft_socket::{BindOptions, PeerPolicy, SocketAddr};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--client" {
        return client(&args[2]).await;
    }
    let path = std::env::temp_dir().join(format!("ipcraft-tokio-fd-{}.sock", std::process::id()));
    let me = nix::unistd::geteuid().as_raw();
    let options = BindOptions::new().peer_policy(PeerPolicy::allow_uids([me]));
    // Removed again when `listener` drops.
    let listener = UnixListener::bind_with(&options, &SocketAddr::from_path(&path)?)?;
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(
            std::process::Command::new(std::env::current_exe()?)
                .arg("--client")
                .arg(&path)
                .spawn()?,
        );
    }
    let pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        // The policy was applied already: a peer of another user is `Error::PeerRefused`.
        let (mut conn, _) = tokio::time::timeout(TIMEOUT, listener.accept()).await??;
        let peer = conn.peer_credentials()?;
        if !pids.contains(&peer.pid) {
            eprintln!("server: pid {} is not one of our clients; closed", peer.pid);
            continue;
        }
        tasks.push(tokio::spawn(async move {
            let (greeting, fds) = conn
                .recv_frame_with_fds(4096, 1)
                .await?
                .ok_or("client closed early")?;
            let pipe = fds.into_iter().next().ok_or("no descriptor arrived")?;
            // The received read end, on the runtime too: read until the client closes.
            let mut text = String::new();
            tokio::net::unix::pipe::Receiver::from_owned_fd(pipe)?
                .read_to_string(&mut text)
                .await?;
            conn.send_frame_with_fds(b"thanks", &[]).await?;
            println!(
                "server: pid {} (uid {}) said {:?} and wrote {text:?} through its pipe",
                peer.pid,
                peer.uid,
                String::from_utf8_lossy(&greeting)
            );
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| e.to_string())?;
    }
    for mut c in children {
        // They have finished: each waited for its reply, which came last.
        c.wait()?;
    }
    Ok(())
}

async fn client(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = UnixStream::connect(path).await?;
    let (r, mut w) = std::io::pipe()?;
    conn.send_frame_with_fds(b"hello, here is a pipe", &[r.as_fd()])
        .await?;
    drop(r); // the server holds the only read end now
    writeln!(w, "greetings from pid {}", std::process::id())?;
    drop(w);
    let (reply, _) = tokio::time::timeout(TIMEOUT, conn.recv_frame_with_fds(64, 0))
        .await??
        .ok_or("server closed early")?;
    assert_eq!(reply, b"thanks");
    Ok(())
}
