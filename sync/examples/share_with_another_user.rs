//! Sharing a named mutex and semaphore with another user, on purpose.
//!
//! By default an open joins only objects owned by this user or root (anyone can make a name
//! in `/dev/shm` first). To share with another user, the creator gives the objects a group
//! or world mode, and the other user opens them trusting the creator's uid explicitly.
//!
//! ```text
//! cargo run -p ipcraft-sync --example share_with_another_user
//! ```
//!
//! Run as root, the opener really runs as another user (uid 65534, `nobody`); otherwise both
//! sides run in this one process, which shows the same calls.

use ipcraft_core::TrustedOwners;
use ipcraft_sync::{MutexOptions, SemaphoreOptions};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--opener") {
        let name = args.next().ok_or("--opener NAME CREATOR_UID")?;
        let creator: u32 = args.next().ok_or("--opener NAME CREATOR_UID")?.parse()?;
        return opener(&name, creator);
    }

    // The creator: mode 0666 here so that any user may join (0660 and a shared group would
    // be the careful choice).
    let name = format!("/ipcraft-example-shared-{}", std::process::id());
    let me = nix::unistd::geteuid().as_raw();
    let counter = MutexOptions::new().mode(0o666).create(&name, 0u64)?;
    let done = SemaphoreOptions::new()
        .mode(0o666)
        .create(&format!("{name}-done"), 0)?;

    if nix::unistd::geteuid().is_root() {
        let status = Command::new(std::env::current_exe()?)
            .args(["--opener", &name, &me.to_string()])
            .gid(65534)
            .uid(65534)
            .status()?;
        if !status.success() {
            return Err(format!("the opener failed: {status}").into());
        }
    } else {
        opener(&name, me)?;
    }
    done.wait_timeout(Duration::from_secs(5))?;
    let value = counter.lock().map_err(ipcraft_sync::Error::from)?.get();
    println!("the other user added to the counter: {value}");
    Ok(())
}

/// The other user: joins the creator's objects, trusting the creator's uid explicitly.
fn opener(name: &str, creator: u32) -> Result<(), Box<dyn std::error::Error>> {
    let trusted = TrustedOwners::new().also_uid(creator);
    let counter = MutexOptions::new().trust(trusted).open::<u64>(name)?;
    counter
        .lock()
        .map_err(ipcraft_sync::Error::from)?
        .update(|n| *n += 41);
    let done = SemaphoreOptions::new()
        .trust(trusted)
        .open(&format!("{name}-done"))?;
    done.post()?;
    println!(
        "uid {} joined uid {creator}'s objects",
        nix::unistd::geteuid()
    );
    Ok(())
}
