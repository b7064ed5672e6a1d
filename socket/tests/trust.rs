//! Trust on connect across real users: an attacker (another uid) binds a listener (or a
//! datagram socket) first in `/tmp`, mode 0666; our process, as root or as a third user,
//! connects (or sends) as the docs show. The connect must be refused with `Error::Untrusted`
//! naming the owner before anything is sent, and the attacker must receive nothing.
//! Deliberate sharing (`ConnectOptions` trusting the owner) works.
//!
//! These tests need root to start children as other users; without it they say `SKIPPED`
//! loudly and check nothing else.

use ipcraft_core::{TrustError, TrustedOwners};
use ipcraft_socket::{
    BindOptions, ConnectOptions, Error, SeqpacketConn, SeqpacketListener, SocketAddr, UnixDatagram,
    UnixListener, UnixStream,
};
use ipcraft_testkit::{
    ATTACKER_UID, Roles, VICTIM_UID, can_switch_users, finish, unique_name, wait_for,
};
use std::io::{Read, Write};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SOCKET_TRUST_ROLE", "IPCRAFT_SOCKET_TRUST_ARG");

fn path(tag: &str) -> String {
    unique_name("/tmp/ipcraft-socket-trust", tag)
}

fn addr(path: &str) -> SocketAddr {
    SocketAddr::from_path(path).unwrap()
}

#[test]
fn child_role() {
    let Some((role, p)) = ROLES.current() else {
        return;
    };
    let open = BindOptions::new().mode(0o666);
    match role.as_str() {
        // The attacker: a stream listener first at the path, world-connectable; it reports
        // what a client sent, if one got through.
        "attacker-stream" => {
            let l = UnixListener::bind_with(&open, &SocketAddr::from_path(&p).unwrap()).unwrap();
            l.set_nonblocking(true).unwrap();
            println!("MADE");
            let until = std::time::Instant::now() + Duration::from_millis(1500);
            let mut got = String::new();
            while std::time::Instant::now() < until {
                if let Ok((mut s, _)) = l.accept() {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).unwrap_or(0);
                    got.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("GOT [{got}]");
        }
        "attacker-seqpacket" => {
            let _l = SeqpacketListener::bind_with(&open, &addr(&p)).unwrap();
            println!("MADE");
            std::thread::sleep(Duration::from_millis(800));
        }
        "attacker-dgram" => {
            let d = UnixDatagram::bind_with(&BindOptions::new().mode(0o666), &addr(&p)).unwrap();
            println!("MADE");
            let mut buf = [0u8; 64];
            d.set_read_timeout(Some(Duration::from_millis(800)))
                .unwrap();
            match d.recv(&mut buf) {
                Ok(n) => println!("GOT [{}]", String::from_utf8_lossy(&buf[..n])),
                Err(_) => println!("GOT []"),
            }
        }
        "victim" => match UnixStream::connect(&p) {
            Ok(mut s) => {
                let _ = s.write_all(b"secret");
                println!("JOINED");
            }
            Err(Error::Untrusted(TrustError::Untrusted { found, .. })) => {
                println!("REFUSED {}", found.owner);
            }
            Err(e) => println!("OTHER {e}"),
        },
        other => panic!("unknown role {other}"),
    }
}

fn assert_refused<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::Untrusted(e @ TrustError::Untrusted { .. })) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("uid {ATTACKER_UID}")),
                "{what}: {text}"
            );
        }
        other => panic!("{what}: expected Untrusted, got {other:?}"),
    }
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_stream_listener_bound_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let p = path("stream");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker-stream", &p);
    wait_for(&mut attacker, "MADE");
    assert_refused(UnixStream::connect(&p), "connect");
    assert_refused(
        UnixStream::connect_timeout(&addr(&p), Duration::from_secs(1)),
        "connect_timeout",
    );
    let out = finish(ROLES.spawn_as(VICTIM_UID, "victim", &p), "victim");
    assert!(out.contains(&format!("REFUSED {ATTACKER_UID}")), "{out}");
    let out = finish(attacker, "attacker");
    assert!(out.contains("GOT []"), "the attacker received: {out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn a_seqpacket_listener_or_datagram_socket_bound_first_by_another_user_is_refused() {
    if !can_switch_users() {
        return;
    }
    let p = path("seqpacket");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker-seqpacket", &p);
    wait_for(&mut attacker, "MADE");
    assert_refused(SeqpacketConn::connect_addr(&addr(&p)), "seqpacket connect");
    drop(attacker.kill());
    let _ = attacker.wait();

    let p = path("dgram");
    let mut attacker = ROLES.spawn_as(ATTACKER_UID, "attacker-dgram", &p);
    wait_for(&mut attacker, "MADE");
    let me = UnixDatagram::unbound().unwrap();
    assert_refused(me.send_to(b"secret", &addr(&p)), "send_to");
    assert_refused(me.connect_addr(&addr(&p)), "datagram connect");
    let out = finish(attacker, "attacker");
    assert!(out.contains("GOT []"), "the attacker received: {out}");
}

#[cfg_attr(miri, ignore = "processes")]
#[test]
fn trusting_the_owner_explicitly_connects() {
    if !can_switch_users() {
        return;
    }
    let p = path("shared");
    let mut owner = ROLES.spawn_as(ATTACKER_UID, "attacker-stream", &p);
    wait_for(&mut owner, "MADE");
    let options = ConnectOptions::new()
        .trust(TrustedOwners::new().also_uid(ATTACKER_UID))
        .timeout(Duration::from_secs(2));
    let mut s = UnixStream::connect_with(&options, &addr(&p)).unwrap();
    s.write_all(b"on purpose").unwrap();
    drop(s);
    let out = finish(owner, "owner");
    assert!(out.contains("GOT [on purpose]"), "{out}");
}
