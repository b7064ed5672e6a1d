//! Two processes take turns through a robust mutex and a futex condvar placed in one
//! anonymous segment, handed to the child at spawn (as its stdin).
//!
//! Run with `cargo run -p ipcraft-sync --example condvar_turns`.

use ipcraft_shm::Segment;
use ipcraft_sync::{Condvar, Mutex};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROUNDS: u32 = 5;

fn play(seg: &Segment, me: u32) -> Result<(), Box<dyn std::error::Error>> {
    let turn = Mutex::in_segment(seg, 0, 0u32)?;
    let cv = Condvar::in_segment(seg, 128)?;
    for round in 0..ROUNDS {
        let mine = 2 * round + me;
        let guard = turn.lock().map_err(|e| e.to_string())?;
        let (guard, timed_out) = cv
            .wait_while_timeout(guard, Duration::from_secs(10), |t| *t != mine)
            .map_err(|e| e.to_string())?;
        if timed_out {
            return Err("the other player is gone".into());
        }
        println!(
            "{} plays turn {mine}",
            if me == 0 { "parent" } else { "child" }
        );
        guard.set(&(mine + 1));
        drop(guard);
        cv.notify_all();
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--child") {
        let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
        return play(&Segment::from_fd(fd, 256)?, 1);
    }
    let seg = Segment::anonymous(256)?;
    // Place both objects before the child attaches.
    Mutex::in_segment(&seg, 0, 0u32)?;
    Condvar::in_segment(&seg, 128)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .stdin(Stdio::from(seg.as_fd().try_clone_to_owned()?))
        .spawn()?;
    play(&seg, 0)?;
    assert!(child.wait()?.success());
    Ok(())
}
