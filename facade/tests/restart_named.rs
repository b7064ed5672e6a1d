//! A named channel whose creator died, and whose receiver was restarted, keeps its name:
//! `ipcraft_shm::remove_stale` leaves it while an end lives, and removes it once all are
//! gone.
#![cfg(all(feature = "shm", feature = "sync"))]

use ipcraft::channel::{Receiver, Sender};
use ipcraft_testkit::{Roles, kill, unique_name, wait_for};
use std::process::Stdio;
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_RESTART_NAMED_ROLE", "IPCRAFT_RESTART_NAMED_ARG");

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    assert_eq!(role, "create-receiver-and-hang");
    let _rx = Receiver::create(&name, 4096).unwrap();
    println!("CREATED");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_restarted_channel_keeps_its_name_while_an_end_lives() {
    let name = unique_name("/ipcraft-restart-named", "ch");
    let mut creator = ROLES.spawn("create-receiver-and-hang", &name, Stdio::null());
    wait_for(&mut creator, "CREATED");
    let mut tx = Sender::open(&name).unwrap();
    tx.send(b"before").unwrap();
    kill(&mut creator);
    let mut rx = Receiver::open(&name).unwrap();
    assert!(rx.took_over());
    drop(tx);
    assert!(
        !ipcraft_shm::remove_stale().unwrap().contains(&name),
        "removed while its receiver lives"
    );
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), b"before");
    let listed = ipcraft_shm::list().unwrap();
    let info = listed
        .iter()
        .find(|i| i.name == name)
        .expect("the name is there");
    assert!(!info.is_stale());
    drop(rx);
    // Retried for a moment: a child another test's thread is spawning may hold a copy of
    // the receiver's descriptors (and with them its lock) until it execs.
    let start = std::time::Instant::now();
    while !ipcraft_shm::remove_stale().unwrap().contains(&name) {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = ipcraft_shm::unlink(&name);
            panic!("every end is gone, but remove_stale left it");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
