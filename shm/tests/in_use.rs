//! A named segment whose creator died stays alive, for `list` and `remove_stale`, while a
//! process that opened it marks itself a user (`Segment::mark_in_use`): a restarted
//! service keeps its shared name; once every user is gone it is stale again.

use ipcraft_shm::{Segment, list, remove_stale, unlink};
use ipcraft_testkit::{Roles, kill, unique_name, wait_for};
use std::process::Stdio;

const ROLES: Roles = Roles::new("IPCRAFT_SHM_IN_USE_ROLE", "IPCRAFT_SHM_IN_USE_ARG");

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    assert_eq!(role, "create-and-hang");
    let _seg = Segment::create(&name, 4096).unwrap();
    println!("CREATED");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

fn stale(name: &str) -> Option<bool> {
    list()
        .unwrap()
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.is_stale())
}

#[test]
fn a_user_keeps_a_dead_creators_segment_alive_until_it_goes() {
    let name = unique_name("/ipcraft-shm-test", "in-use");
    let mut creator = ROLES.spawn("create-and-hang", &name, Stdio::null());
    wait_for(&mut creator, "CREATED");
    let user = Segment::open(&name).unwrap();
    let bystander = Segment::open(&name).unwrap();
    user.mark_in_use().unwrap();
    kill(&mut creator);
    assert_eq!(stale(&name), Some(false), "a user lives");
    assert!(!remove_stale().unwrap().contains(&name));
    assert!(Segment::open(&name).is_ok(), "the name is still there");
    drop(user);
    // The bystander opened it but never said it uses it: not counted.
    assert_eq!(stale(&name), Some(true), "every user is gone");
    let removed = remove_stale().unwrap();
    drop(bystander);
    if !removed.contains(&name) {
        let _ = unlink(&name);
        panic!("remove_stale left a stale segment: {removed:?}");
    }
}
