//! Trust on open for named channels, across real users: an attacker (another uid) creates a
//! named channel's receiver first and opens its segment to everyone (chmod 666); our process,
//! as root or as a third user, opens a sender as the docs show. The open must be refused
//! (the segment's owner is not trusted) and the attacker must receive nothing.
//!
//! These tests need root to start children as other users; without it they say `SKIPPED`
//! loudly and check nothing else.

#![cfg(all(feature = "shm", feature = "sync"))]

use ipcraft::channel::{ChannelError, NamedOptions, Receiver, Sender};
use ipcraft_core::TrustError;
use ipcraft_core::TrustedOwners;
use ipcraft_testkit::{
    ATTACKER_UID, Roles, VICTIM_UID, can_switch_users, finish, unique_name, wait_for,
};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_CHANNEL_TRUST_ROLE", "IPCRAFT_CHANNEL_TRUST_ARG");

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // The attacker: the receiver of a named channel, its segment opened to everyone.
        "attacker" | "owner" => {
            let mut rx = if role == "attacker" {
                let rx = Receiver::create(&name, 4096).unwrap();
                std::fs::set_permissions(
                    format!("/dev/shm{name}"),
                    std::fs::Permissions::from_mode(0o666),
                )
                .unwrap();
                rx
            } else {
                // Shared on purpose, as NamedOptions documents.
                NamedOptions::new()
                    .mode(0o666)
                    .create_receiver(&name, 1, 4096)
                    .unwrap()
            };
            println!("MADE");
            match rx.recv_timeout(Duration::from_millis(800)) {
                Ok(msg) => println!("GOT [{}]", String::from_utf8_lossy(&msg)),
                Err(_) => println!("GOT []"),
            }
        }
        "victim" => match Sender::open(&name) {
            Ok(mut tx) => {
                let _ = tx.send(b"secret");
                println!("JOINED");
            }
            Err(ChannelError::Shm(ipcraft_shm::Error::Untrusted(TrustError::Untrusted {
                found,
                ..
            }))) => println!("REFUSED {}", found.owner),
            Err(e) => println!("OTHER {e}"),
        },
        other => panic!("unknown role {other}"),
    }
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_named_channel_made_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let name = unique_name("/ipcraft-chan-trust", "squat");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker", &name);
    wait_for(&mut attacker, "MADE");
    match Sender::open(&name) {
        Err(ChannelError::Shm(ipcraft_shm::Error::Untrusted(e))) => {
            let text = e.to_string();
            assert!(text.contains(&format!("uid {ATTACKER_UID}")), "{text}");
        }
        Err(e) => panic!("expected Untrusted, got {e}"),
        Ok(_) => panic!("joined the attacker's channel"),
    }
    let out = finish(ROLES.spawn_as(VICTIM_UID, "victim", &name), "victim");
    assert!(out.contains(&format!("REFUSED {ATTACKER_UID}")), "{out}");
    let out = finish(attacker, "attacker");
    assert!(out.contains("GOT []"), "the attacker received: {out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_channel_shared_on_purpose_opens_with_its_owner_trusted_and_its_mode_accepted() {
    if !can_switch_users() {
        return;
    }
    let name = unique_name("/ipcraft-chan-trust", "shared");
    let mut owner = ROLES.spawn_as(ATTACKER_UID, "owner", &name);
    wait_for(&mut owner, "MADE");
    // Trusting the owner is not enough: the mode must be accepted too, and the reverse.
    let trusted = TrustedOwners::new().also_uid(ATTACKER_UID);
    assert!(
        NamedOptions::new()
            .trust(trusted)
            .open_sender(&name)
            .is_err()
    );
    assert!(NamedOptions::new().mode(0o666).open_sender(&name).is_err());
    let mut tx = NamedOptions::new()
        .mode(0o666)
        .trust(trusted)
        .open_sender(&name)
        .unwrap();
    tx.send(b"on purpose").unwrap();
    let out = finish(owner, "owner");
    assert!(out.contains("GOT [on purpose]"), "{out}");
}
