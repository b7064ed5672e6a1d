//! List the shared memory objects on this machine, and which ipcraft segments are stale
//! (their creator died). Pass `--remove-stale` to remove those.
//!
//! Run with `cargo run -p ipcraft-shm --example list_segments`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for s in ipcraft_shm::list()? {
        let kind = match s.ipcraft {
            Some(i) if s.is_stale() => {
                format!("ipcraft, STALE (creator {} is gone)", i.creator_pid)
            }
            Some(i) if i.persisted => "ipcraft, persisted".to_owned(),
            Some(i) => format!("ipcraft, creator {} alive", i.creator_pid),
            None => "not ipcraft".to_owned(),
        };
        println!(
            "{:40} {:>12} bytes  uid {:5}  {kind}",
            s.name, s.size, s.uid
        );
    }
    if std::env::args().any(|a| a == "--remove-stale") {
        for name in ipcraft_shm::remove_stale()? {
            println!("removed {name}");
        }
    }
    Ok(())
}
