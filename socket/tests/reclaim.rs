//! `bind_reclaiming_stale`'s lock file (`PATH.lock`): it serializes starters, and it does not
//! stay behind, even when a starter holding it is killed (SIGKILL) or when a starter waits on
//! a lock file that its holder removes meanwhile.
//!
//! Children are this test binary re-run with `--exact child_role` and a role in the
//! environment. Debug builds of `ipcraft-socket` read `IPCRAFT_SOCKET_TEST_STOP_AT`: with
//! `start-locked`, a starter stops while it holds the lock, and the test kills it there.

mod common;

use common::TempPath;
use ipcraft_socket::{BindOptions, Error, UnixDatagram, UnixListener, UnixStream};
use ipcraft_testkit::{Roles, finish, kill, wait_for_line, wait_for_prefix};
use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_SOCKET_RECLAIM_ROLE", "IPCRAFT_SOCKET_RECLAIM_ARG");
const STOP_AT: &str = "IPCRAFT_SOCKET_TEST_STOP_AT";
const LIVE: &str = "LOST a live listener answers there";

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "datagram-receive-forever" => {
            let _d = UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), &arg).unwrap();
            marker("BOUND");
            std::thread::sleep(Duration::from_secs(120));
        }
        "listen-forever" => {
            let _l = UnixListener::bind(&arg).unwrap();
            marker("LISTENING");
            std::thread::sleep(Duration::from_secs(120));
        }
        "reclaim-race" => match UnixListener::bind_reclaiming_stale(&BindOptions::new(), &arg) {
            Ok(l) => {
                marker("WON");
                // Keep listening until the parent closes our stdin.
                let mut rest = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut rest);
                drop(l);
            }
            Err(Error::AddressInUse { reason, .. }) => marker(&format!("LOST {reason}")),
            Err(e) => panic!("unexpected {e:?}"),
        },
        other => panic!("unknown role {other}"),
    }
}

fn marker(line: &str) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
}

fn lock_path(p: &Path) -> PathBuf {
    let mut lock = p.as_os_str().to_owned();
    lock.push(".lock");
    lock.into()
}

/// A socket file nobody listens on, as a listener killed with SIGKILL leaves it.
fn stale_socket(p: &Path) {
    let mut dead = UnixListener::bind(p).unwrap();
    dead.persist();
    drop(dead);
}

#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn no_start_leaves_its_lock_file() {
    let p = TempPath::new("nolock");
    let lock = TempPath(lock_path(&p.0));
    let opts = BindOptions::new();

    // A fresh path, then a stale one: won, and no lock file.
    let l = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap();
    assert!(!lock.0.exists());
    drop(l);
    stale_socket(&p.0);
    let l = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap();
    assert!(!lock.0.exists());

    // Lost to a live listener: no lock file either.
    let e = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap_err();
    assert!(matches!(e, Error::AddressInUse { .. }), "{e}");
    assert!(!lock.0.exists());
    drop(l);

    // A lock file a killed starter left is taken, then removed.
    std::fs::write(&lock.0, b"").unwrap();
    let l = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap();
    assert!(!lock.0.exists());
    drop(l);

    // A symbolic link at the lock's name is never followed.
    let target = TempPath::new("nolock-target");
    std::os::unix::fs::symlink(&target.0, &lock.0).unwrap();
    let e = UnixListener::bind_reclaiming_stale(&opts, &p.0).unwrap_err();
    assert!(
        matches!(&e, Error::Sys(s) if s.errno() == nix::errno::Errno::ELOOP),
        "{e}"
    );
    assert!(!target.0.exists(), "nothing created through the link");
}

#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn a_starter_that_locked_a_removed_lock_file_starts_again() {
    // The classic race, made deterministic: a starter waits on the lock file; its holder
    // removes it and a newcomer makes and locks a new one; then the holder unlocks. The
    // waiter now holds a file with no name: it must not go on while the newcomer holds
    // the lock of the file named PATH.lock.
    let p = TempPath::new("relock");
    let lock = TempPath(lock_path(&p.0));
    stale_socket(&p.0);
    let open = |path: &Path| {
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap();
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap()
    };
    let first = open(&lock.0);
    let starter = std::thread::spawn({
        let path = p.0.clone();
        move || UnixListener::bind_reclaiming_stale(&BindOptions::new(), &path)
    });
    std::thread::sleep(Duration::from_millis(300)); // the starter waits on `first`
    assert!(!starter.is_finished());
    std::fs::remove_file(&lock.0).unwrap();
    let newcomer = open(&lock.0);
    drop(first);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !starter.is_finished(),
        "a starter went on holding a lock file that had lost its name"
    );
    assert!(
        UnixStream::connect(&p.0).is_err(),
        "nobody reclaimed the path meanwhile"
    );
    drop(newcomer);
    let listener = starter.join().unwrap().unwrap();
    assert!(
        !lock.0.exists(),
        "the starter removed the lock file it held"
    );
    drop(listener);
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn racing_starters_with_one_killed_holding_the_lock_leave_one_winner_and_no_lock_file() {
    let p = TempPath::new("killrace");
    let lock = TempPath(lock_path(&p.0));
    let path = p.0.to_str().unwrap();

    // A listener killed with SIGKILL leaves its file behind.
    let mut dead = ROLES.spawn("listen-forever", path, Stdio::null());
    wait_for_prefix(&mut dead, "LISTENING");
    kill(&mut dead);
    assert!(p.0.exists());

    // A starter stops holding the lock; three more wait on it; it is killed there.
    let mut holder = ROLES.command("reclaim-race", path);
    holder.env(STOP_AT, "start-locked").stdin(Stdio::piped());
    let mut holder = holder.spawn().unwrap();
    let line = wait_for_line(&mut holder, "the stop or the end", |l| {
        l.starts_with("IPCRAFT-SOCKET-STOPPED-AT") || l.starts_with("WON") || l.starts_with("LOST")
    });
    if !line.starts_with("IPCRAFT-SOCKET-STOPPED-AT") {
        drop(holder.stdin.take());
        finish(holder, "holder");
        if cfg!(debug_assertions) {
            panic!("a debug build must stop: {line}");
        }
        eprintln!("SKIPPED: ipcraft-socket built without debug assertions has no stop hook");
        return;
    }
    assert!(lock.0.exists(), "the holder's lock file");
    let mut racers: Vec<Child> = (0..3)
        .map(|_| ROLES.spawn("reclaim-race", path, Stdio::piped()))
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // they wait on the holder's lock
    kill(&mut holder);

    let outcomes = common::race_outcomes(&mut racers);
    let won = outcomes.iter().filter(|o| o.as_str() == "WON").count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o == "WON" || o == LIVE),
        "{outcomes:?}"
    );
    assert!(!lock.0.exists(), "no lock file once every starter is done");
    let c = UnixStream::connect(&p.0).unwrap(); // the winner's socket is live
    drop(c);
    for mut r in racers {
        drop(r.stdin.take());
        finish(r, "racer");
    }
    assert!(!p.0.exists(), "the winner removed its file on exit");
    assert!(!lock.0.exists());
}

/// A datagram receiver killed (SIGKILL) leaves its socket file: a plain `bind` of the
/// restarted receiver fails (`EADDRINUSE`), `bind_reclaiming_stale` takes the file over,
/// receives, and leaves no lock file; a live receiver is never taken over.
#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn a_killed_datagram_receivers_path_is_reclaimed_never_a_live_ones() {
    let tmp = TempPath::new("dgram-reclaim");
    let path = tmp.0.as_path();
    let arg = path.to_str().unwrap();
    let mut live = ROLES.spawn("datagram-receive-forever", arg, Stdio::null());
    wait_for_line(&mut live, "BOUND", |l| l == "BOUND");
    assert!(
        matches!(
            UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), path),
            Err(Error::AddressInUse { .. })
        ),
        "a live receiver is taken over"
    );
    kill(&mut live);
    assert!(
        UnixDatagram::bind(path).is_err(),
        "the dead one's file is there"
    );
    let rx = UnixDatagram::bind_reclaiming_stale(&BindOptions::new(), path).unwrap();
    let tx = UnixDatagram::unbound().unwrap();
    tx.send_to(
        b"after a restart",
        &ipcraft_socket::SocketAddr::from_path(path).unwrap(),
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after a restart");
    assert!(!lock_path(path).exists(), "the lock file stayed");
}
