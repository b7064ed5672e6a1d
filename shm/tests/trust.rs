//! Trust on open across real users: an attacker (another uid) makes a segment name first,
//! mode 0666; our process, as root or as a third user, runs the code the docs show and must
//! be refused with `Error::Untrusted` naming the owner, the attacker reading nothing of ours.
//! Deliberate sharing (the owner trusted explicitly, root's segment opened by a user) works.
//!
//! These tests need root to start children as other users; without it they say `SKIPPED`
//! loudly and check nothing else.

use ipcraft_core::{TrustError, TrustedOwners};
use ipcraft_shm::{Error, Segment, SegmentOptions, unlink};
use ipcraft_testkit::{
    ATTACKER_UID, Roles, VICTIM_UID, can_switch_users, finish, unique_name, wait_for,
};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SHM_TRUST_ROLE", "IPCRAFT_SHM_TRUST_ARG");

/// A unique name, unlinked on drop.
struct Name(String);

impl Drop for Name {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // The attacker: makes the name first, world-writable, then reports what it holds.
        "attacker" => {
            let seg = SegmentOptions::new().mode(0o666).create(&name, 64).unwrap();
            println!("MADE");
            std::thread::sleep(Duration::from_millis(500));
            let mut b = [0u8; 6];
            seg.read_at(0, &mut b).unwrap();
            println!(
                "HOLDS {}",
                String::from_utf8_lossy(&b).trim_end_matches('\0')
            );
        }
        // A victim that is not root: the documented calls, and how they ended.
        "victim" => {
            for (what, r) in [
                ("OPEN", Segment::open(&name).map(drop)),
                (
                    "OOC",
                    SegmentOptions::new()
                        .open_or_create(&name, 64, |_| Ok(()))
                        .map(drop),
                ),
            ] {
                let outcome = match r {
                    Ok(()) => "JOINED".to_owned(),
                    Err(Error::Untrusted(TrustError::Untrusted { found, .. })) => {
                        format!("REFUSED {}", found.owner)
                    }
                    Err(e) => format!("OTHER {e}"),
                };
                println!("{what} {outcome}");
            }
        }
        "user-opens-roots" => {
            let seg = Segment::open(&name).unwrap();
            seg.write_at(0, b"hello").unwrap();
            println!("WROTE");
        }
        other => panic!("unknown role {other}"),
    }
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_segment_made_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let name = Name(unique_name("/ipcraft-shm-trust", "squat"));
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker", &name.0);
    wait_for(&mut attacker, "MADE");
    // As root: open and open_or_create refuse, naming the owner and what to do.
    for r in [
        Segment::open(&name.0).map(drop),
        SegmentOptions::new()
            .open_or_create(&name.0, 64, |s| s.write_at(0, b"secret"))
            .map(drop),
    ] {
        match r {
            Err(Error::Untrusted(e @ TrustError::Untrusted { .. })) => {
                let text = e.to_string();
                assert!(text.contains(&format!("uid {ATTACKER_UID}")), "{text}");
                assert!(text.contains("also_uid"), "{text}");
            }
            other => panic!("expected Untrusted, got {other:?}"),
        }
    }
    // As another unprivileged user.
    let out = finish(ROLES.spawn_as(VICTIM_UID, "victim", &name.0), "victim");
    assert!(
        out.contains(&format!("OPEN REFUSED {ATTACKER_UID}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("OOC REFUSED {ATTACKER_UID}")),
        "{out}"
    );
    // The attacker holds nothing of ours.
    let out = finish(attacker, "attacker");
    assert!(
        out.contains("HOLDS \n") || out.lines().any(|l| l == "HOLDS"),
        "{out}"
    );
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn trusted_owners_still_work() {
    if !can_switch_users() {
        return;
    }
    // Another user's segment, trusted explicitly: deliberate sharing.
    let name = Name(unique_name("/ipcraft-shm-trust", "shared"));
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker", &name.0);
    wait_for(&mut attacker, "MADE");
    let seg = SegmentOptions::new()
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .open(&name.0)
        .unwrap();
    seg.write_at(0, b"shared").unwrap();
    let out = finish(attacker, "owner");
    assert!(out.contains("HOLDS shared"), "{out}");
    // Root's segment, opened by a user: root is trusted.
    let name = Name(unique_name("/ipcraft-shm-trust", "roots"));
    let seg = SegmentOptions::new()
        .mode(0o666)
        .create(&name.0, 64)
        .unwrap();
    finish(
        ROLES.spawn_as(VICTIM_UID, "user-opens-roots", &name.0),
        "user",
    );
    let mut b = [0u8; 5];
    seg.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"hello");
}

/// The creator's drop removes its own segment only: one made again under the same name by
/// someone else (after the first was unlinked) survives, bytes and all.
#[cfg_attr(miri, ignore = "shm_open")]
#[test]
fn dropping_the_creator_leaves_a_newcomer_of_the_same_name() {
    let name = Name(unique_name("/ipcraft-shm-trust", "newcomer"));
    let first = Segment::create(&name.0, 64).unwrap();
    unlink(&name.0).unwrap();
    let newcomer = Segment::create(&name.0, 64).unwrap();
    newcomer.write_at(0, b"keep").unwrap();
    drop(first);
    let again = Segment::open(&name.0).expect("the newcomer survives");
    let mut b = [0u8; 4];
    again.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"keep");
    drop(newcomer);
}
