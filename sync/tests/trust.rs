//! Trust on open across real users: an attacker (another uid) makes a name first,
//! world-accessible; our process, as root or as a third user, runs the code the docs show.
//! Every named kind must refuse with `Error::Untrusted` naming the owner, and the attacker
//! must receive nothing. Deliberate sharing (an owner trusted explicitly, root's object
//! opened by a user) keeps working.
//!
//! These tests need root to start children as other users; without it they say `SKIPPED`
//! loudly and check nothing else.

mod common;
use common::{Name, ROLES};
use ipcraft_core::{TrustError, TrustedOwners};
use ipcraft_sync::{
    Condvar, CondvarOptions, Error, Mutex, MutexOptions, Semaphore, SemaphoreOptions,
};
use ipcraft_testkit::{ATTACKER_UID, VICTIM_UID, can_switch_users, finish, kill, wait_for};
use std::time::Duration;

#[test]
fn child_role() {
    let Some((role, name)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        // The attacker: makes the name first, mode 0666, then reports what it received.
        "attacker-sem" => {
            let sem = SemaphoreOptions::new()
                .mode(0o666)
                .create(&name, 0)
                .unwrap();
            println!("MADE");
            std::thread::sleep(Duration::from_millis(500));
            println!("VALUE {}", sem.value().unwrap());
        }
        "attacker-mutex" => {
            let m = MutexOptions::new().mode(0o666).create(&name, 0u64).unwrap();
            println!("MADE");
            std::thread::sleep(Duration::from_millis(500));
            println!("VALUE {}", m.lock().unwrap().get());
        }
        "attacker-condvar" => {
            let _cv = CondvarOptions::new().mode(0o666).create(&name).unwrap();
            println!("MADE");
            std::thread::sleep(Duration::from_millis(500));
        }
        // A victim that is not root: the same calls, reporting how they ended.
        "victim" => {
            let sem = Semaphore::open(&name);
            println!("SEM {}", outcome(sem.map(drop)));
            let ooc = SemaphoreOptions::new().open_or_create(&name, 0);
            println!("OOC {}", outcome(ooc.map(drop)));
        }
        // A user opening root's shared object: trusted by default (root is).
        "user-opens-roots" => {
            let sem = Semaphore::open(&name).unwrap();
            sem.post().unwrap();
            println!("POSTED");
        }
        other => panic!("unknown role {other}"),
    }
}

/// How an open ended, as a word the parent checks.
fn outcome(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "JOINED".to_owned(),
        Err(Error::Untrusted(TrustError::Untrusted { found, .. })) => {
            format!("REFUSED-OWNER {}", found.owner)
        }
        Err(Error::Untrusted(TrustError::TooOpen { found, .. })) => {
            format!("REFUSED-MODE {:o}", found.mode)
        }
        Err(e) => format!("OTHER {e}"),
    }
}

/// The attacker's object, made and still held by a child running as [`ATTACKER_UID`].
fn attacker(role: &str, name: &Name) -> std::process::Child {
    let mut child = ROLES.spawn_as(ATTACKER_UID, role, name);
    wait_for(&mut child, "MADE");
    child
}

fn assert_refused_owner(r: Result<(), Error>, what: &str) {
    match r {
        Err(Error::Untrusted(e @ TrustError::Untrusted { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("uid {ATTACKER_UID}")),
                "{what}: {text}"
            );
            assert!(text.contains("also_uid"), "{what}: says what to do: {text}");
        }
        other => panic!("{what}: expected Untrusted, got {other:?}"),
    }
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_named_semaphore_made_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let name = Name::new("trust-sem");
    let child = attacker("attacker-sem", &name);
    // As root (the privilege case): open and open_or_create both refuse.
    assert_refused_owner(Semaphore::open(&name).map(drop), "open");
    assert_refused_owner(
        SemaphoreOptions::new().open_or_create(&name, 0).map(drop),
        "open_or_create",
    );
    // As another unprivileged user.
    let victim = ROLES.spawn_as(VICTIM_UID, "victim", &name);
    let out = finish(victim, "victim");
    assert!(
        out.contains(&format!("SEM REFUSED-OWNER {ATTACKER_UID}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("OOC REFUSED-OWNER {ATTACKER_UID}")),
        "{out}"
    );
    // The attacker received nothing.
    let out = finish(child, "attacker");
    assert!(out.contains("VALUE 0"), "{out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_named_mutex_or_condvar_made_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let name = Name::new("trust-mutex");
    let child = attacker("attacker-mutex", &name);
    assert_refused_owner(Mutex::<u64>::open(&name).map(drop), "Mutex::open");
    // Trusting that owner explicitly is deliberate sharing: it works, and the owner sees it.
    let shared = MutexOptions::new()
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .open::<u64>(&name)
        .unwrap();
    shared.lock().unwrap().set(&7);
    let out = finish(child, "attacker");
    assert!(out.contains("VALUE 7"), "{out}");

    let name = Name::new("trust-cv");
    let mut child = attacker("attacker-condvar", &name);
    assert_refused_owner(Condvar::open(&name).map(drop), "Condvar::open");
    CondvarOptions::new()
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .open(&name)
        .unwrap();
    kill(&mut child);
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn roots_shared_semaphore_is_trusted_by_a_user() {
    if !can_switch_users() {
        return;
    }
    let name = Name::new("trust-root");
    let sem = SemaphoreOptions::new()
        .mode(0o666)
        .create(&name, 0)
        .unwrap();
    let user = ROLES.spawn_as(VICTIM_UID, "user-opens-roots", &name);
    finish(user, "user");
    sem.wait_timeout(Duration::from_secs(5)).unwrap();
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn open_or_create_joins_only_what_it_could_have_created() {
    // Our own semaphore, but with a mode wider than asked for: refused, saying so.
    let name = Name::new("trust-mode");
    let _wide = SemaphoreOptions::new()
        .mode(0o666)
        .create(&name, 0)
        .unwrap();
    match SemaphoreOptions::new().open_or_create(&name, 0) {
        Err(Error::Untrusted(e @ TrustError::TooOpen { .. })) => {
            let text = e.to_string();
            assert!(text.contains("mode 666") && text.contains("600"), "{text}");
        }
        other => panic!("expected TooOpen, got {other:?}"),
    }
    // Asking for that mode joins it.
    let (_joined, created) = SemaphoreOptions::new()
        .mode(0o666)
        .open_or_create(&name, 0)
        .unwrap();
    assert!(!created);
}
