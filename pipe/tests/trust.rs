//! Trust on open across real users: an attacker (another uid) makes a FIFO first in a sticky
//! directory everyone can write (`/tmp`), mode 0666, and waits to read; our process, as root
//! or as a third user, opens it to write as the docs show. The open must be refused with
//! `Error::Untrusted` before it waits for a reader, and the attacker must read nothing.
//! Deliberate sharing (the owner trusted explicitly, root's FIFO opened by a user) works.
//!
//! These tests need root to start children as other users; without it they say `SKIPPED`
//! loudly and check nothing else.

use ipcraft_core::{TrustError, TrustedOwners};
use ipcraft_pipe::{Error, Fifo, FifoOptions};
use ipcraft_testkit::{
    ATTACKER_UID, Roles, VICTIM_UID, can_switch_users, finish, unique_name, wait_for,
};
use std::io::{Read, Write};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_PIPE_TRUST_ROLE", "IPCRAFT_PIPE_TRUST_ARG");

#[test]
fn child_role() {
    let Some((role, path)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // The attacker: makes the FIFO first, world-writable, and reads what comes.
        "attacker" => {
            let _fifo = FifoOptions::new().mode(0o666).create(&path).unwrap();
            println!("MADE");
            match Fifo::open_reader(&path, Some(Duration::from_millis(1500))) {
                Ok(mut r) => {
                    let mut got = String::new();
                    r.read_to_string(&mut got).unwrap();
                    println!("GOT {got}");
                }
                Err(Error::NoPeer { .. }) => println!("GOT NOTHING"),
                Err(e) => panic!("{e}"),
            }
        }
        "victim" => match Fifo::open_writer(&path, Some(Duration::from_secs(1))) {
            Ok(_) => println!("JOINED"),
            Err(Error::Untrusted(TrustError::Untrusted { found, .. })) => {
                println!("REFUSED {}", found.owner);
            }
            Err(e) => println!("OTHER {e}"),
        },
        "user-writes-to-roots" => {
            let mut w = Fifo::open_writer(&path, Some(Duration::from_secs(5))).unwrap();
            w.write_all(b"hello").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn path(tag: &str) -> String {
    unique_name("/tmp/ipcraft-pipe-trust", tag)
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_fifo_made_first_by_another_user_is_refused_before_waiting() {
    if !can_switch_users() {
        return;
    }
    let p = path("squat");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker", &p);
    wait_for(&mut attacker, "MADE");
    // As root: refused at once (a reader is waiting, so an open would not even block).
    match Fifo::open_writer(&p, None) {
        Err(Error::Untrusted(e @ TrustError::Untrusted { .. })) => {
            let text = e.to_string();
            assert!(text.contains(&format!("uid {ATTACKER_UID}")), "{text}");
            assert!(text.contains("FIFO"), "{text}");
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
    let out = finish(ROLES.spawn_as(VICTIM_UID, "victim", &p), "victim");
    assert!(out.contains(&format!("REFUSED {ATTACKER_UID}")), "{out}");
    let out = finish(attacker, "attacker");
    assert!(out.contains("GOT NOTHING"), "{out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn trusted_owners_still_work() {
    if !can_switch_users() {
        return;
    }
    // Another user's FIFO, trusted explicitly.
    let p = path("shared");
    let mut owner = ROLES.spawn_as(ATTACKER_UID, "attacker", &p);
    wait_for(&mut owner, "MADE");
    let mut w = FifoOptions::new()
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .open_writer(&p, Some(Duration::from_secs(5)))
        .unwrap();
    w.write_all(b"on purpose").unwrap();
    drop(w);
    let out = finish(owner, "owner");
    assert!(out.contains("GOT on purpose"), "{out}");
    // Root's FIFO, opened by a user: root is trusted.
    let p = path("roots");
    let _fifo = FifoOptions::new().mode(0o666).create(&p).unwrap();
    let user = ROLES.spawn_as(VICTIM_UID, "user-writes-to-roots", &p);
    let mut r = Fifo::open_reader(&p, Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    finish(user, "user");
    assert_eq!(got, "hello");
}
