//! A process dies holding a robust mutex; the next locker is told, repairs, and goes on.
//!
//! The parent creates `/ipcraft-example-mutex-<pid>` holding a balance, re-runs this example
//! as a child that locks it, writes half of an update and aborts (dying with the lock held).
//! The parent's next `lock()` returns `OwnerDied`; it repairs the value and marks it
//! consistent. Run with `cargo run -p ipcraft-sync --example owner_died`.

use ipcraft_sync::{LockError, Mutex};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        let m = Mutex::<u64>::open(&name)?;
        let guard = m.lock().map_err(|e| e.to_string())?;
        guard.set(&u64::MAX); // half of an update...
        std::process::abort(); // ...and the process dies holding the lock
    }
    let name = format!("/ipcraft-example-mutex-{}", std::process::id());
    let balance = Mutex::create(&name, 100u64)?;
    let status = Command::new(std::env::current_exe()?).arg(&name).status()?;
    println!("child ended: {status}");
    match balance.lock() {
        Ok(g) => println!("no owner died; balance {}", g.get()),
        Err(LockError::OwnerDied(recovery)) => {
            println!("owner died mid-update, balance reads {}", recovery.get());
            recovery.set(&100); // repair from what we know
            let guard = recovery.make_consistent()?;
            println!("repaired, balance {}", guard.get());
        }
        Err(e) => return Err(e.to_string().into()),
    }
    Ok(())
}
