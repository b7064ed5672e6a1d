//! The async channel ends between real processes: every mix of async and blocking ends,
//! both tokio runtime flavours, cancellation in `select!`, MPSC, and peers killed mid-stream.
#![cfg(all(feature = "shm", feature = "sync", feature = "tokio"))]

use ipcraft::channel::{self, ChannelError, Wait};
use ipcraft_testkit::{Roles, finish, kill, wait_for, wait_for_prefix};
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::process::{Child, Stdio};
use std::time::Duration;

const ROLES: Roles = Roles::new("IPCRAFT_TOKIO_CHANNEL_ROLE", "IPCRAFT_TOKIO_CHANNEL_ARG");
const CAPACITY: usize = 1 << 14;
/// Long enough that the ring fills and empties many times (16 KiB ring, messages up to
/// ~600 bytes).
const MESSAGES: u64 = 20_000;
/// Every wait in these tests ends by this (a hang is a failure, not a stuck CI run).
const LIMIT: Duration = Duration::from_secs(60);

/// Message `seq` of sender `who`: its number, then bytes derived from both, of a length
/// derived from them (8 to ~600 bytes).
fn message(who: u8, seq: u64) -> Vec<u8> {
    let x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(who);
    let len = 9 + (x >> 7) as usize % 600;
    let mut m = Vec::with_capacity(len);
    m.push(who);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((9..len).map(|i| (x as usize).wrapping_add(i * 31) as u8));
    m
}

/// The sender and sequence number of a message, after checking its bytes.
fn check(m: &[u8]) -> (u8, u64) {
    assert!(m.len() >= 9, "a message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[1..9].try_into().unwrap());
    assert_eq!(
        m,
        message(m[0], seq),
        "message {seq} of sender {} intact",
        m[0]
    );
    (m[0], seq)
}

fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

fn runtime(flavour: &str) -> tokio::runtime::Runtime {
    match flavour {
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        other => panic!("no runtime flavour {other}"),
    }
    .unwrap()
}

/// Run `f` on a runtime of `flavour`, bounded by [`LIMIT`].
fn run<T>(flavour: &str, f: impl Future<Output = T>) -> T {
    runtime(flavour).block_on(async {
        tokio::time::timeout(LIMIT, f)
            .await
            .expect("the test ended within its limit")
    })
}

/// Receive until `Disconnected`, checking that each sender's messages come in order and
/// whole; returns how many came from each of `senders`.
async fn receive_all(rx: &mut channel::tokio::Receiver, senders: usize) -> Vec<u64> {
    let mut next = vec![0u64; senders];
    loop {
        match rx.recv().await {
            Ok(m) => {
                let (who, seq) = check(&m);
                assert_eq!(seq, next[who as usize], "sender {who}: in order, once");
                next[who as usize] += 1;
            }
            Err(ChannelError::Disconnected) => return next,
            Err(e) => panic!("{e}"),
        }
    }
}

fn receive_all_blocking(rx: &mut channel::Receiver) -> u64 {
    let mut n = 0;
    loop {
        match rx.recv_timeout(LIMIT) {
            Ok(m) => {
                assert_eq!(check(&m), (0, n));
                n += 1;
            }
            Err(ChannelError::Disconnected) => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Arguments: `flavour,who,count[,sleep|paced]`.
fn args(arg: &str) -> (String, u8, u64, Option<&str>) {
    let parts: Vec<&str> = arg.split(',').collect();
    (
        parts[0].to_owned(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts.get(3).copied(),
    )
}

#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    let (flavour, who, count, how) = args(&arg);
    let wait = if how == Some("sleep") {
        Wait::Sleep
    } else {
        Wait::Adaptive
    };
    match role.as_str() {
        "async-send" => run(&flavour, async {
            let mut tx = channel::tokio::Sender::from_fd(stdin_fd()).unwrap();
            tx.get_mut().set_wait(wait);
            println!("STARTED");
            for seq in 0..count {
                tx.send(&message(who, seq)).await.unwrap();
            }
        }),
        "blocking-send" => {
            let mut tx = channel::Sender::from_fd(stdin_fd()).unwrap();
            tx.set_wait(wait);
            println!("STARTED");
            for seq in 0..count {
                tx.send_timeout(&message(who, seq), LIMIT).unwrap();
                if how == Some("paced") && seq % 8 == 7 {
                    // Bursts: the receiver finds the ring empty often, and now and then
                    // long enough to go to sleep on the doorbell.
                    let pause = if seq % 512 == 511 { 3000 } else { 50 };
                    std::thread::sleep(Duration::from_micros(pause));
                }
            }
        }
        "async-receive" => {
            let n = run(&flavour, async {
                let mut rx = channel::tokio::Receiver::from_fd(stdin_fd()).unwrap();
                rx.get_mut().set_wait(wait);
                receive_all(&mut rx, 1).await[0]
            });
            println!("RECEIVED {n}");
        }
        "blocking-receive" => {
            let mut rx = channel::Receiver::from_fd(stdin_fd()).unwrap();
            rx.set_wait(wait);
            println!("RECEIVED {}", receive_all_blocking(&mut rx));
        }
        "send-until-killed" => {
            let mut tx = channel::Sender::from_fd(stdin_fd()).unwrap();
            println!("STARTED");
            for seq in 0.. {
                tx.send(&message(0, seq)).unwrap();
            }
        }
        "receive-one-then-hang" => {
            let mut rx = channel::Receiver::from_fd(stdin_fd()).unwrap();
            rx.recv().unwrap();
            println!("GOT-ONE");
            std::thread::sleep(Duration::from_secs(120));
        }
        "scribble" => {
            // A hostile peer: a live sender (so that the receiver waits for it rather than
            // report it gone) that maps the channel's memfd and writes random words anywhere
            // in it, the doorbell words and sleeping flags included.
            let mut tx = channel::Sender::from_fd(stdin_fd()).unwrap();
            tx.send(&message(0, 0)).unwrap();
            let seg = ipcraft_shm::Segment::from_fd(stdin_fd(), 256 + 16).unwrap();
            println!("STARTED");
            // Where (the layout table in `ipcraft::channel`'s docs): the receiver's doorbell
            // (sleeping flag at 64, sequence word at 68), the sender's published position
            // (256) and the ring's records (from 512); never the closed flags and slot
            // states, which would only make the receiver report `Disconnected` at once.
            let data = 512;
            let records = (seg.len() - data) / 8;
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            loop {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = match x % 8 {
                    0 => 64,
                    1 | 2 => 68,
                    3 => 256,
                    _ => data + (x as usize >> 8) % records * 8,
                };
                let value = if x.is_multiple_of(3) { x >> 40 } else { x };
                std::hint::black_box(&value);
                let _ = seg.write(at, &value);
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, arg: &str, fd: OwnedFd) -> Child {
    ROLES.spawn(role, arg, Stdio::from(fd))
}

/// The parent's end async, the child's `child` ("async" or "blocking"), messages one way
/// (`parent_receives`), on a runtime of `flavour` in the parent and in an async child.
fn mix(flavour: &str, child: &str, parent_receives: bool, sleep: bool) {
    let tail = if sleep { ",sleep" } else { "" };
    let arg = format!("{flavour},0,{MESSAGES}{tail}");
    let wait = if sleep { Wait::Sleep } else { Wait::Adaptive };
    if parent_receives {
        let (mut rx, fd) = channel::tokio::Receiver::anonymous(CAPACITY).unwrap();
        rx.get_mut().set_wait(wait);
        let c = spawn(&format!("{child}-send"), &arg, fd);
        let got = run(flavour, receive_all(&mut rx, 1));
        assert_eq!(got, [MESSAGES]);
        finish(c, "the sender");
    } else {
        let (mut tx, fd) = channel::tokio::Sender::anonymous(CAPACITY).unwrap();
        tx.get_mut().set_wait(wait);
        let mut c = spawn(&format!("{child}-receive"), &arg, fd);
        run(flavour, async {
            for seq in 0..MESSAGES {
                tx.send(&message(0, seq)).await.unwrap();
            }
        });
        drop(tx);
        assert_eq!(
            wait_for_prefix(&mut c, "RECEIVED "),
            format!("RECEIVED {MESSAGES}")
        );
        finish(c, "the receiver");
    }
}

macro_rules! mixes {
    ($($name:ident: $flavour:literal, $child:literal, $parent_receives:literal, $sleep:literal;)*) => {$(
        #[test]
        fn $name() {
            mix($flavour, $child, $parent_receives, $sleep);
        }
    )*};
}

mixes! {
    async_receiver_blocking_sender_current_thread: "current", "blocking", true, false;
    async_receiver_blocking_sender_multi_thread: "multi", "blocking", true, false;
    async_receiver_async_sender_current_thread: "current", "async", true, false;
    async_receiver_async_sender_multi_thread: "multi", "async", true, false;
    async_sender_blocking_receiver_current_thread: "current", "blocking", false, false;
    async_sender_blocking_receiver_multi_thread: "multi", "blocking", false, false;
    async_sender_async_receiver_current_thread: "current", "async", false, false;
    async_sender_async_receiver_multi_thread: "multi", "async", false, false;
    // Ends that sleep whenever they wait: every wait goes through the doorbell thread.
    sleeping_async_receiver_sleeping_blocking_sender: "current", "blocking", true, true;
    sleeping_async_sender_sleeping_async_receiver: "multi", "async", false, true;
}

/// A `select!` loop cancels the pending `recv` thousands of times (against a task yield,
/// which cancels it while it spins or yields, and a timer, which cancels it while it sleeps
/// on the doorbell) while a peer process sends in bursts: every message arrives exactly
/// once, in order, whole.
#[test]
fn cancelled_receives_lose_and_repeat_nothing() {
    for flavour in ["current", "multi"] {
        let (mut rx, fd) = channel::tokio::Receiver::anonymous(CAPACITY).unwrap();
        let c = spawn(
            "blocking-send",
            &format!("{flavour},0,{MESSAGES},paced"),
            fd,
        );
        let (by_yield, by_timer) = run(flavour, async {
            let mut next = 0u64;
            let (mut by_yield, mut by_timer) = (0u64, 0u64);
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            loop {
                // Which rival, at random (a fixed rotation locks into the sender's bursts,
                // and the empty ring then always meets the same rival).
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // A timer (1 ms, tokio's resolution) cancels a receive that went to sleep
                // on the doorbell; a yield cancels one that spins or yields.
                let timer = x.is_multiple_of(4);
                let rival: Pin<Box<dyn Future<Output = ()>>> = if timer {
                    Box::pin(tokio::time::sleep(Duration::from_millis(1)))
                } else {
                    Box::pin(tokio::task::yield_now())
                };
                tokio::select! {
                    biased;
                    r = rx.recv() => match r {
                        Ok(m) => {
                            assert_eq!(check(&m), (0, next), "once, in order");
                            next += 1;
                        }
                        Err(ChannelError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    },
                    () = rival => if timer { by_timer += 1 } else { by_yield += 1 },
                }
            }
            assert_eq!(next, MESSAGES, "every message arrived");
            (by_yield, by_timer)
        });
        finish(c, "the sender");
        assert!(
            by_yield >= 1000 && by_timer >= 20,
            "{flavour}: only {by_yield} receives cancelled by a yield, {by_timer} by a timer"
        );
        println!(
            "{flavour}: {by_yield} receives cancelled by a yield, {by_timer} by a timer; \
             {MESSAGES} messages whole"
        );
    }
}

/// An MPSC channel with async and blocking senders in three processes, received as a
/// `Stream`: each sender's messages in order, none lost, and the stream ends once all are
/// gone.
#[test]
fn mpsc_stream_from_async_and_blocking_senders() {
    let (mut rx, fd) = channel::tokio::Receiver::anonymous_mpsc(3, CAPACITY).unwrap();
    let children: Vec<Child> = [("async-send", 0), ("blocking-send", 1), ("async-send", 2)]
        .into_iter()
        .map(|(role, who)| {
            spawn(
                role,
                &format!("multi,{who},{}", MESSAGES / 2),
                fd.try_clone().unwrap(),
            )
        })
        .collect();
    drop(fd);
    let counts = run("multi", async {
        let mut next = [0u64; 3];
        while let Some(m) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut rx), cx)).await
        {
            let (who, seq) = check(&m.unwrap());
            assert_eq!(seq, next[who as usize], "sender {who}: in order, once");
            next[who as usize] += 1;
        }
        next
    });
    assert_eq!(counts, [MESSAGES / 2; 3]);
    for c in children {
        finish(c, "a sender");
    }
}

/// A sender killed (SIGKILL) mid-stream: the async receiver gets every message it
/// committed, whole and in order, then `Disconnected` within about a slice, never a hang.
#[test]
fn a_killed_sender_ends_an_async_receive_with_disconnected() {
    for flavour in ["current", "multi"] {
        let (mut rx, fd) = channel::tokio::Receiver::anonymous(CAPACITY).unwrap();
        let mut c = spawn("send-until-killed", "current,0,0", fd);
        wait_for(&mut c, "STARTED");
        run(flavour, async {
            // Let it fill the ring a few times, then kill it while it sends.
            for _ in 0..2000 {
                check(&rx.recv().await.unwrap());
            }
        });
        kill(&mut c);
        let mut more = 0;
        run(flavour, async {
            loop {
                match rx.recv().await {
                    Ok(m) => {
                        check(&m);
                        more += 1;
                    }
                    Err(ChannelError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert!(more < CAPACITY, "at most a ringful after the kill: {more}");
    }
}

/// A receiver killed (SIGKILL) while the async sender waits for room: `Disconnected`,
/// never a hang.
#[test]
fn a_killed_receiver_ends_an_async_send_with_disconnected() {
    for flavour in ["current", "multi"] {
        let (mut tx, fd) = channel::tokio::Sender::anonymous(CAPACITY).unwrap();
        let mut c = spawn("receive-one-then-hang", "current,0,0", fd);
        let r = run(flavour, async {
            tx.send(&message(0, 0)).await.unwrap();
            wait_for(&mut c, "GOT-ONE");
            // Fill the ring; the receiver never reads again.
            let mut seq = 1;
            while tx.get_mut().try_send(&message(0, seq)).is_ok() {
                seq += 1;
            }
            kill(&mut c);
            tx.send(&message(0, seq)).await
        });
        assert!(
            matches!(r, Err(ChannelError::Disconnected)),
            "{flavour}: {r:?}"
        );
    }
}

/// A hostile peer scribbles over the whole segment (rings, positions, doorbell words,
/// sleeping flags) while async receives, each bounded by a timeout, run in a loop: errors or
/// garbage, never a crash, a panic (here or in the doorbell thread), or a wait past the
/// timeout. Sleeping ends (`Wait::Sleep`) put the doorbell thread in the enemy's way.
#[test]
fn a_hostile_peer_causes_errors_not_crashes_or_hangs_in_async_ends() {
    for wait in [Wait::Adaptive, Wait::Sleep] {
        let (mut rx, fd) = channel::tokio::Receiver::anonymous(4096).unwrap();
        rx.get_mut().set_wait(wait);
        let mut child = spawn("scribble", "current,0,0", fd);
        wait_for(&mut child, "STARTED");
        let (ok, corrupted, other, timeouts) = run("multi", async {
            let (mut ok, mut corrupted, mut other, mut timeouts) = (0, 0, 0, 0);
            let mut first_other = None;
            let start = std::time::Instant::now();
            let mut buf = vec![0u8; 4096];
            while start.elapsed() < Duration::from_secs(2) {
                let call = std::time::Instant::now();
                match tokio::time::timeout(Duration::from_millis(20), rx.recv_into(&mut buf)).await
                {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(ChannelError::Corrupted(_))) => corrupted += 1,
                    Ok(Err(e)) => {
                        other += 1;
                        first_other.get_or_insert(e);
                    }
                    Err(_) => timeouts += 1,
                }
                assert!(
                    call.elapsed() < Duration::from_secs(5),
                    "a receive never hangs"
                );
            }
            println!("first other error: {first_other:?}");
            (ok, corrupted, other, timeouts)
        });
        kill(&mut child);
        println!(
            "{wait:?}: {ok} garbage messages, {corrupted} Corrupted, {other} other errors, \
             {timeouts} timeouts"
        );
        assert!(ok + corrupted + other + timeouts > 0);
    }
}
