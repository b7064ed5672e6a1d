//! Trust on open across real users, and removing only what is ours.
//!
//! An attacker (another uid) makes a queue name first, mode 0666, and waits to receive; our
//! process, as root or as a third user, runs the code the docs show (`open_or_create`,
//! `open`) and must be refused with `Error::Untrusted` naming the owner, the attacker
//! receiving nothing. Deliberate sharing (the owner trusted explicitly, root's queue opened
//! by a user) works. The cross-user tests need root to start children as other users;
//! without it they say `SKIPPED` loudly and check nothing else.

use ipcraft_core::{TrustError, TrustedOwners};
use ipcraft_mqueue::{Access, Attributes, Error, MessageQueue, QueueOptions, unlink};
use ipcraft_testkit::{
    ATTACKER_UID, Roles, VICTIM_UID, can_switch_users, finish, unique_name, wait_for,
};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_MQ_TRUST_ROLE", "IPCRAFT_MQ_TRUST_ARG");

/// A unique queue name, unlinked on drop.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Self {
        Self(unique_name("/ipcraft-mq-trust", tag))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

fn attrs() -> Attributes {
    Attributes::new(4, 64)
}

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // The attacker: makes the queue first, world-accessible, and reports what it got.
        "attacker" => {
            let q = QueueOptions::new()
                .mode(0o666)
                .create(&name, attrs())
                .unwrap();
            println!("MADE");
            let mut buf = [0u8; 64];
            match q.recv_timeout(&mut buf, Duration::from_millis(800)) {
                Ok((n, _)) => println!("GOT {}", String::from_utf8_lossy(&buf[..n])),
                Err(_) => println!("GOT NOTHING"),
            }
        }
        "victim" => {
            for (what, r) in [
                ("OOC", QueueOptions::new().open_or_create(&name, attrs())),
                ("OPEN", MessageQueue::open(&name, Access::WriteOnly)),
            ] {
                let outcome = match r {
                    Ok(q) => {
                        let _ = q.try_send(b"victim's secret", 1);
                        "JOINED".to_owned()
                    }
                    Err(Error::Untrusted(TrustError::Untrusted { found, .. })) => {
                        format!("REFUSED {}", found.owner)
                    }
                    Err(e) => format!("OTHER {e}"),
                };
                println!("{what} {outcome}");
            }
        }
        "user-sends-to-roots" => {
            let q = MessageQueue::open(&name, Access::WriteOnly).unwrap();
            q.send(b"hello", 1).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_queue_made_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let name = Name::new("squat");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker", &name.0);
    wait_for(&mut attacker, "MADE");
    // As root: the call the docs show for "mine or join it" refuses, naming the owner.
    match QueueOptions::new().open_or_create(&name.0, attrs()) {
        Err(Error::Untrusted(e @ TrustError::Untrusted { .. })) => {
            let text = e.to_string();
            assert!(text.contains(&format!("uid {ATTACKER_UID}")), "{text}");
            assert!(text.contains("message queue"), "{text}");
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
    assert!(matches!(
        MessageQueue::open(&name.0, Access::WriteOnly),
        Err(Error::Untrusted(_))
    ));
    let out = finish(ROLES.spawn_as(VICTIM_UID, "victim", &name.0), "victim");
    assert!(
        out.contains(&format!("OOC REFUSED {ATTACKER_UID}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("OPEN REFUSED {ATTACKER_UID}")),
        "{out}"
    );
    let out = finish(attacker, "attacker");
    assert!(out.contains("GOT NOTHING"), "{out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn trusted_owners_still_work() {
    if !can_switch_users() {
        return;
    }
    let name = Name::new("shared");
    let mut owner = ROLES.spawn_as(ATTACKER_UID, "attacker", &name.0);
    wait_for(&mut owner, "MADE");
    let q = QueueOptions::new()
        .access(Access::WriteOnly)
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .open(&name.0)
        .unwrap();
    q.send(b"on purpose", 1).unwrap();
    let out = finish(owner, "owner");
    assert!(out.contains("GOT on purpose"), "{out}");

    let name = Name::new("roots");
    let q = QueueOptions::new()
        .mode(0o666)
        .create(&name.0, attrs())
        .unwrap();
    finish(
        ROLES.spawn_as(VICTIM_UID, "user-sends-to-roots", &name.0),
        "user",
    );
    assert_eq!(q.recv_vec().unwrap(), (b"hello".to_vec(), 1));
}

#[cfg_attr(miri, ignore = "mq_open")]
#[test]
fn open_or_create_joins_only_what_it_could_have_created() {
    let name = Name::new("wide");
    let _wide = QueueOptions::new()
        .mode(0o666)
        .create(&name.0, attrs())
        .unwrap();
    match QueueOptions::new().open_or_create(&name.0, attrs()) {
        Err(Error::Untrusted(e @ TrustError::TooOpen { .. })) => {
            assert!(e.to_string().contains("mode 666"), "{e}");
        }
        other => panic!("expected TooOpen, got {other:?}"),
    }
    let joined = QueueOptions::new()
        .mode(0o666)
        .open_or_create(&name.0, attrs())
        .unwrap();
    assert!(!joined.owns_name());
}

/// The creator's drop removes its own queue only: a queue made again under the same name by
/// someone else (after the first was unlinked) survives, messages and all.
#[cfg_attr(miri, ignore = "mq_open")]
#[test]
fn dropping_the_creator_leaves_a_newcomer_of_the_same_name() {
    let name = Name::new("newcomer");
    let first = MessageQueue::create(&name.0, attrs()).unwrap();
    assert!(first.owns_name());
    unlink(&name.0).unwrap();
    let newcomer = MessageQueue::create(&name.0, attrs()).unwrap();
    newcomer.send(b"keep me", 3).unwrap();
    drop(first);
    let again = MessageQueue::open(&name.0, Access::ReadOnly).expect("the newcomer survives");
    assert_eq!(again.recv_vec().unwrap(), (b"keep me".to_vec(), 3));
    drop(newcomer);
}
