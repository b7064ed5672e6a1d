//! Message queues between real processes: producers and consumers, a consumer killed
//! mid-stream, full queues and timeouts, the kernel limits (one lowered in a child), and
//! Python's `posix_ipc` as a peer no one here wrote.
//!
//! Children are this test binary re-run with `--exact child_role` and the role in the
//! environment (see [`Reaper::spawn`]), never a bare `fork()` of the multi-threaded harness. A
//! child reports on stdout in lines with a marker prefix (the harness prints its own lines
//! there too) and takes commands on stdin.
//!
//! Every queue name is unique (`/ipcraft-test-<pid>-<n>-<tag>`) and held by a [`QName`]
//! guard that unlinks it even when the test fails; `zz_suite_leaves_no_queue_behind` re-runs
//! the whole suite in a child and checks that none of the names it made is left.

use ipcraft_mqueue::{Access, Attributes, Error, Limit, Limits, MQ_PRIO_MAX, MessageQueue, unlink};
use ipcraft_testkit::{Roles, kill, python_has_posix_ipc, unique_name};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "IPCRAFT_MQ_TEST_ROLE";
const ROLES: Roles = Roles::new(ROLE_ENV, "IPCRAFT_MQ_TEST_ARG");
/// Set by `zz_suite_leaves_no_queue_behind` for the suite it runs: a file that collects every
/// queue name the suite makes.
const NAME_LOG_ENV: &str = "IPCRAFT_MQ_TEST_NAME_LOG";
/// Generous: the machine is shared and has 2 cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// `zz_suite_leaves_no_queue_behind` takes this exclusively while the suite it starts runs;
/// every other test holds it shared. So the two runs never overlap, and the timing tests of
/// one never compete with the other for the 2 CPUs.
static EXCLUSIVE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner())
}

/// A unique queue name, unlinked on drop whatever is there (a queue a test left, or nothing).
struct QName(String);

impl QName {
    fn new(tag: &str) -> Self {
        let name = unique_name("/ipcraft-test", tag);
        if let Ok(log) = std::env::var(NAME_LOG_ENV) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(log)
                .unwrap();
            // One write(2) per line with O_APPEND: lines from parallel tests never interleave.
            f.write_all(format!("{name}\n").as_bytes()).unwrap();
        }
        Self(name)
    }
}

impl std::ops::Deref for QName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for QName {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

/// Kills the child on drop unless it was waited for: a failing test leaves no process.
struct Reaper(Child);

impl Reaper {
    /// A child playing `role` with `arg`; its stdin takes commands ([`tell`](Self::tell)).
    fn spawn(role: &str, arg: &str) -> Self {
        Self(ROLES.spawn(role, arg, Stdio::piped()))
    }

    fn stdout(&mut self) -> BufReader<ChildStdout> {
        BufReader::new(self.0.stdout.take().unwrap())
    }

    fn tell(&mut self, line: &str) {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_ok(mut self, what: &str) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{what} failed: {status:?}");
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The next line starting with `prefix`, without it; `None` at end of output.
fn next_marked(out: &mut impl BufRead, prefix: &str) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        if let Some(rest) = line.trim_end().strip_prefix(prefix) {
            return Some(rest.to_owned());
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn read_command() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// The largest queue depth an unprivileged process may ask for, at most `cap`.
fn depth(cap: usize) -> usize {
    (Limits::read().unwrap().msg_max as usize).min(cap)
}

/// A message: producer id, sequence number, priority.
fn encode(producer: u32, seq: u32, priority: u32) -> [u8; 12] {
    let mut m = [0; 12];
    m[..4].copy_from_slice(&producer.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    m[8..].copy_from_slice(&priority.to_le_bytes());
    m
}

fn decode(m: &[u8]) -> (u32, u32, u32) {
    assert_eq!(m.len(), 12, "message of {} bytes", m.len());
    let word = |i: usize| u32::from_le_bytes(m[i..i + 4].try_into().unwrap());
    (word(0), word(4), word(8))
}

const END: u32 = u32::MAX;

// ---------------------------------------------------------------------------------------
// Children.

/// The entry point of every child process; a no-op in the parent's own test run.
#[test]
fn child_role() {
    let Some((role, arg)) = ROLES.current() else {
        return;
    };
    match role.as_str() {
        "batch-producer" => batch_producer_role(&arg),
        "stream-producer" => stream_producer_role(&arg),
        "consume-then-hang" => consume_role(&arg, Some(50)),
        "consume-all" => consume_role(&arg, None),
        "receive-one-later" => receive_one_later_role(&arg),
        "send-one-later" => send_one_later_role(&arg),
        "rlimit" => rlimit_role(&arg),
        "umask" => umask_role(&arg),
        "notify" => notify_role(&arg),
        "adopt-stdin" => adopt_stdin_role(),
        "adopt-mount-root" => adopt_mount_root_role(&arg),
        "queues-max" => queues_max_role(),
        other => panic!("unknown role {other}"),
    }
}

/// Batches that fill the queue: wait for `GO`, send one batch, say `SENT`; `BATCHES` batches.
fn batch_producer_role(arg: &str) {
    let (name, depth) = arg.split_once(' ').unwrap();
    let depth: u32 = depth.parse().unwrap();
    let q = MessageQueue::open(name, Access::WriteOnly).unwrap();
    let mut seq = 0;
    while read_command() == "GO" {
        for _ in 0..depth {
            let priority = (seq * 7 + seq / 3) % 5;
            q.send_timeout(&encode(1, seq, priority), priority, PEER_TIMEOUT)
                .unwrap();
            seq += 1;
        }
        say("SENT");
    }
}

/// `COUNT` messages with priorities 0 to 2, then an `END` message at priority 0.
fn stream_producer_role(arg: &str) {
    let (name, id) = arg.split_once(' ').unwrap();
    let id: u32 = id.parse().unwrap();
    let q = MessageQueue::open(name, Access::WriteOnly).unwrap();
    for seq in 0..STREAM_COUNT {
        let priority = (seq + id) % 3;
        q.send_timeout(&encode(id, seq, priority), priority, PEER_TIMEOUT)
            .unwrap();
    }
    q.send_timeout(&encode(id, END, 0), 0, PEER_TIMEOUT)
        .unwrap();
}

/// Receive and say `GOT <seq>` for each message; with a limit, say `HANG` after that many and
/// sleep until killed; without, stop at the `END` message.
fn consume_role(name: &str, limit: Option<usize>) {
    let q = MessageQueue::open(name, Access::ReadOnly).unwrap();
    let mut buf = vec![0; q.attributes().max_message_size];
    let mut got = 0;
    loop {
        if limit == Some(got) {
            say("HANG");
            std::thread::sleep(Duration::from_secs(120));
            panic!("not killed");
        }
        let (n, _) = q.recv_timeout(&mut buf, PEER_TIMEOUT).unwrap();
        let (_, seq, _) = decode(&buf[..n]);
        if seq == END {
            say("END");
            return;
        }
        say(&format!("GOT {seq}"));
        got += 1;
    }
}

fn receive_one_later_role(name: &str) {
    let q = MessageQueue::open(name, Access::ReadOnly).unwrap();
    assert_eq!(read_command(), "GO");
    std::thread::sleep(Duration::from_millis(200));
    let (msg, priority) = q.recv_vec().unwrap();
    say(&format!(
        "RECEIVED {} {priority}",
        String::from_utf8(msg).unwrap()
    ));
}

fn send_one_later_role(name: &str) {
    let q = MessageQueue::open(name, Access::WriteOnly).unwrap();
    assert_eq!(read_command(), "GO");
    std::thread::sleep(Duration::from_millis(200));
    q.send(b"late", 3).unwrap();
}

/// Lower `RLIMIT_MSGQUEUE` (in this child only), then create queues `<name>-0`, `-1`, ...
/// until one fails, and report the error; then one queue alone above the limit.
fn rlimit_role(arg: &str) {
    let (limit, names) = arg.split_once(' ').unwrap();
    let limit: u64 = limit.parse().unwrap();
    let names: Vec<&str> = names.split(' ').collect();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE, limit, limit)
        .unwrap();
    assert_eq!(Limits::read().unwrap().rlimit_msgqueue, Some(limit));
    let small = Attributes::new(4, 1024);
    let mut held = Vec::new();
    let mut error = None;
    for name in &names[..names.len() - 1] {
        match MessageQueue::create(name, small) {
            Ok(q) => held.push(q),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    report_limit_error("FILLED", error.expect("the lowered limit was never hit"));
    drop(held);
    // Alone above the limit: the error also says how much the queue asks for.
    let big = Attributes::new(4, 8192);
    assert!(Limits::queue_bytes(&big) > limit);
    let e = MessageQueue::create(names[names.len() - 1], big).unwrap_err();
    report_limit_error("ALONE", e);
}

fn report_limit_error(marker: &str, e: Error) {
    let text = e.to_string();
    match e {
        Error::LimitExceeded {
            limit,
            value,
            requested,
            ..
        } => say(&format!(
            "{marker} {} {value} {} {text}",
            limit.name(),
            requested.map_or("-".to_owned(), |r| r.to_string())
        )),
        other => panic!("{marker}: expected LimitExceeded, got {other:?}: {other}"),
    }
}

/// Create with umask 0777 and mode 0640, and with umask 0 and the default mode; report the
/// modes the queues have.
fn umask_role(arg: &str) {
    use nix::sys::stat::{Mode, fstat, umask};
    let (a, b) = arg.split_once(' ').unwrap();
    umask(Mode::from_bits_truncate(0o777));
    let q1 = MessageQueue::create_with_mode(a, Attributes::new(1, 8), 0o640).unwrap();
    umask(Mode::empty());
    let q2 = MessageQueue::create(b, Attributes::new(1, 8)).unwrap();
    let mode = |q: &MessageQueue| fstat(q.as_fd()).unwrap().st_mode & 0o7777;
    say(&format!("MODES {:o} {:o}", mode(&q1), mode(&q2)));
}

/// Register for SIGUSR1 (whose default action ends the process), say `REGISTERED`; on `CANCEL`
/// cancel and say `CANCELLED`; then wait to be killed by the signal, or for `EXIT`.
fn notify_role(name: &str) {
    let q = MessageQueue::open(name, Access::ReadOnly).unwrap();
    q.notify_signal(ipcraft_mqueue::Signal::SIGUSR1).unwrap();
    say("REGISTERED");
    loop {
        match read_command().as_str() {
            "CANCEL" => {
                q.cancel_notify().unwrap();
                say("CANCELLED");
            }
            "EXIT" => return,
            "" => std::thread::sleep(Duration::from_secs(60)), // stdin closed: wait for the signal
            other => panic!("unknown command {other}"),
        }
    }
}

/// In a new IPC namespace (a private queue table, gone when this process exits): create tiny
/// queues until the kernel refuses, and report the error's limit and value.
fn queues_max_role() {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC) {
        say(&format!(
            "QUEUES-MAX SKIPPED unshare(CLONE_NEWIPC) failed ({e}); filling the system's \
             queue table would starve every other user of message queues"
        ));
        return;
    }
    // /proc/sys/fs/mqueue now shows this namespace's limits.
    let limits = Limits::read().unwrap();
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .0;
    if limits.queues_max + 64 > nofile {
        say(&format!(
            "QUEUES-MAX SKIPPED queues_max ({}) is too close to RLIMIT_NOFILE ({nofile})",
            limits.queues_max
        ));
        return;
    }
    let mut held = Vec::new();
    for i in 0..=limits.queues_max {
        match MessageQueue::create(&format!("/ipcraft-test-many-{i}"), Attributes::new(1, 1)) {
            Ok(q) => held.push(q),
            Err(Error::LimitExceeded {
                limit,
                value,
                requested,
                ..
            }) => {
                assert_eq!(
                    (limit, value, requested),
                    (Limit::QueuesMax, limits.queues_max, None)
                );
                assert_eq!(
                    held.len() as u64,
                    limits.queues_max,
                    "a fresh namespace is empty"
                );
                say(&format!("QUEUES-MAX {} {value}", limit.name()));
                return;
            }
            Err(e) => panic!("after {} queues: {e:?}", held.len()),
        }
    }
    say(&format!(
        "QUEUES-MAX NOTE created more than queues_max ({}) queues (CAP_SYS_RESOURCE); not \
         checked",
        limits.queues_max
    ));
}

/// Adopt stdin as a queue (no name), receive two messages and report them with the access.
/// Adopt the root directory of an mqueue mount (`arg`, or `$IPCRAFT_MQ_ROOT` set by the
/// launcher) as a queue: must be `NotAQueue`, with the descriptor handed back.
fn adopt_mount_root_role(arg: &str) {
    let dir = if arg.is_empty() {
        std::env::var("IPCRAFT_MQ_ROOT").unwrap()
    } else {
        arg.to_owned()
    };
    say(&format!("ROOT {}", adopt_mount_root(&dir)));
}

/// What adopting the directory `dir` as a queue says, after checking it is on mqueue.
fn adopt_mount_root(dir: &str) -> String {
    let fd: std::os::fd::OwnedFd = std::fs::File::open(dir).unwrap().into();
    let fs = nix::sys::statfs::fstatfs(&fd).unwrap().filesystem_type();
    assert_eq!(
        fs,
        nix::sys::statfs::FsType(0x1980_0202),
        "{dir} is not an mqueue mount"
    );
    match MessageQueue::try_from(fd) {
        Err(Error::NotAQueue { fd }) => {
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            "NotAQueue".to_owned()
        }
        other => format!("{other:?}"),
    }
}

fn adopt_stdin_role() {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    let q = MessageQueue::try_from(fd).unwrap();
    assert_eq!(q.name(), None);
    assert!(!q.owns_name());
    for _ in 0..2 {
        let (msg, priority) = q.recv_vec().unwrap();
        say(&format!(
            "ADOPTED {:?} {} {priority}",
            q.access(),
            String::from_utf8(msg).unwrap()
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn batches_arrive_highest_priority_first_fifo_within_a_priority() {
    let _g = shared();
    let name = QName::new("batch");
    let depth = depth(10);
    let q = MessageQueue::create(&name, Attributes::new(depth, 12)).unwrap();
    let mut producer = Reaper::spawn("batch-producer", &format!("{} {depth}", &*name));
    let mut out = producer.stdout();
    let mut buf = [0; 12];
    let mut seen = BTreeSet::new();
    for _batch in 0..20 {
        producer.tell("GO");
        assert_eq!(next_marked(&mut out, "SENT").as_deref(), Some(""));
        // The whole batch is in the queue: it must come out sorted by priority (descending),
        // and by sequence number within a priority.
        assert_eq!(q.status().unwrap().current_messages, depth);
        let mut batch = Vec::new();
        for _ in 0..depth {
            let (n, priority) = q.try_recv(&mut buf).unwrap();
            let (_, seq, sent_priority) = decode(&buf[..n]);
            assert_eq!(priority, sent_priority);
            assert!(seen.insert(seq), "message {seq} received twice");
            batch.push((priority, seq));
        }
        let mut sorted = batch.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(batch, sorted);
        assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    }
    producer.tell("STOP");
    producer.wait_ok("producer");
    assert_eq!(seen, (0..20 * depth as u32).collect());
}

const STREAM_COUNT: u32 = 500;

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn two_producers_one_consumer_every_message_exactly_once() {
    let _g = shared();
    let name = QName::new("stream");
    let q = MessageQueue::create(&name, Attributes::new(depth(10), 12)).unwrap();
    let producers: Vec<Reaper> = (1..=2)
        .map(|id| Reaper::spawn("stream-producer", &format!("{} {id}", &*name)))
        .collect();
    let mut buf = [0; 12];
    // Per producer: the sequence numbers seen, and the last one per priority.
    let mut seen: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut last: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let mut ended = 0;
    while ended < 2 {
        let (n, priority) = q.recv_timeout(&mut buf, PEER_TIMEOUT).unwrap();
        let (producer, seq, sent_priority) = decode(&buf[..n]);
        assert_eq!(priority, sent_priority);
        if seq == END {
            ended += 1;
            continue;
        }
        assert!(
            seen.entry(producer).or_default().insert(seq),
            "{producer}/{seq} twice"
        );
        if let Some(prev) = last.insert((producer, priority), seq) {
            assert!(
                prev < seq,
                "FIFO within priority {priority}: {seq} after {prev}"
            );
        }
    }
    for p in producers {
        p.wait_ok("producer");
    }
    for id in 1..=2 {
        assert_eq!(seen[&id], (0..STREAM_COUNT).collect(), "producer {id}");
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_consumer_killed_mid_stream_loses_nothing() {
    let _g = shared();
    let name = QName::new("killed");
    let depth = depth(10);
    let q = MessageQueue::create(&name, Attributes::new(depth, 12)).unwrap();
    let total: u32 = 200;
    std::thread::scope(|s| {
        // The producer keeps sending while the consumer is killed, blocking on a full queue.
        let producer = s.spawn(|| {
            for seq in 0..total {
                q.send_timeout(&encode(0, seq, 0), 0, PEER_TIMEOUT).unwrap();
            }
            q.send_timeout(&encode(0, END, 0), 0, PEER_TIMEOUT).unwrap();
        });
        let mut first = Reaper::spawn("consume-then-hang", &name);
        let mut out = first.stdout();
        let mut got = Vec::new();
        loop {
            let line = next_marked(&mut out, "").expect("consumer ended early");
            if line == "HANG" {
                break;
            }
            if let Some(seq) = line.strip_prefix("GOT ") {
                got.push(seq.parse::<u32>().unwrap());
            }
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        let status = kill(&mut first.0);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        // Everything not received is still there (the producer refills the queue).
        let deadline = Instant::now() + PEER_TIMEOUT;
        while q.status().unwrap().current_messages < depth {
            assert!(Instant::now() < deadline, "the queue never filled again");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut second = Reaper::spawn("consume-all", &name);
        let mut out = second.stdout();
        while let Some(line) = next_marked(&mut out, "") {
            if let Some(seq) = line.strip_prefix("GOT ") {
                got.push(seq.parse().unwrap());
            }
        }
        second.wait_ok("second consumer");
        producer.join().unwrap();
        assert_eq!(got, (0..total).collect::<Vec<_>>());
    });
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn a_full_queue_try_send_is_full_and_timeouts_wait_long_enough() {
    let _g = shared();
    let name = QName::new("full");
    let q = MessageQueue::create(&name, Attributes::new(2, 16)).unwrap();
    q.try_send(b"one", 0).unwrap();
    q.try_send(b"two", 0).unwrap();
    let third = b"three".to_vec();
    assert!(matches!(q.try_send(&third, 5), Err(Error::Full)));
    assert_eq!(q.status().unwrap().current_messages, 2);

    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let e = q.send_timeout(&third, 5, timeout).unwrap_err();
    assert!(matches!(e, Error::TimedOut { op: "send" }), "{e:?}");
    assert!(start.elapsed() >= timeout, "returned before the timeout");
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);

    // The message was not lost: the caller still has it, and it goes once there is room.
    assert_eq!(q.recv_vec().unwrap(), (b"one".to_vec(), 0));
    q.try_send(&third, 5).unwrap();
    assert_eq!(q.recv_vec().unwrap(), (third, 5));
    assert_eq!(q.recv_vec().unwrap(), (b"two".to_vec(), 0));

    let mut buf = [0; 16];
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    let start = Instant::now();
    let e = q.recv_timeout(&mut buf, timeout).unwrap_err();
    assert!(matches!(e, Error::TimedOut { op: "recv" }), "{e:?}");
    assert!(start.elapsed() >= timeout, "returned before the timeout");
    // A deadline that has passed still tries once.
    q.send(b"x", 0).unwrap();
    assert_eq!(q.recv_deadline(&mut buf, Instant::now()).unwrap(), (1, 0));
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_waiting_send_or_receive_wakes_when_another_process_acts() {
    let _g = shared();
    let name = QName::new("wake");
    let q = MessageQueue::create(&name, Attributes::new(1, 16)).unwrap();
    q.send(b"first", 1).unwrap();
    let mut child = Reaper::spawn("receive-one-later", &name);
    let mut out = child.stdout();
    child.tell("GO");
    q.send_timeout(b"second", 2, PEER_TIMEOUT).unwrap();
    assert_eq!(
        next_marked(&mut out, "RECEIVED ").as_deref(),
        Some("first 1")
    );
    child.wait_ok("receiver");
    assert_eq!(q.recv_vec().unwrap(), (b"second".to_vec(), 2));

    let mut child = Reaper::spawn("send-one-later", &name);
    child.tell("GO");
    let mut buf = [0; 16];
    let (n, priority) = q.recv_timeout(&mut buf, PEER_TIMEOUT).unwrap();
    assert_eq!((&buf[..n], priority), (&b"late"[..], 3));
    child.wait_ok("sender");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn exhausting_rlimit_msgqueue_names_the_limit_and_its_value() {
    let _g = shared();
    let names: Vec<QName> = (0..6).map(|i| QName::new(&format!("rlimit{i}"))).collect();
    let small = Limits::queue_bytes(&Attributes::new(4, 1024));
    // Room for two small queues of ours, if this user has no other queue open now.
    let limit = small * 5 / 2;
    let arg = names.iter().fold(limit.to_string(), |mut s, n| {
        s.push(' ');
        s.push_str(n);
        s
    });
    let mut child = Reaper::spawn("rlimit", &arg);
    let mut out = child.stdout();
    for (marker, requested) in [("FILLED ", None), ("ALONE ", Some(()))] {
        let line = next_marked(&mut out, marker).expect("no report");
        let mut words = line.splitn(4, ' ');
        assert_eq!(words.next(), Some("RLIMIT_MSGQUEUE"), "{line}");
        assert_eq!(words.next(), Some(limit.to_string().as_str()), "{line}");
        let req = words.next().unwrap();
        match requested {
            None => {}
            Some(()) => assert_eq!(
                req,
                Limits::queue_bytes(&Attributes::new(4, 8192)).to_string()
            ),
        }
        let text = words.next().unwrap();
        assert!(
            text.contains(&format!("RLIMIT_MSGQUEUE = {limit} bytes")),
            "{text}"
        );
        assert!(text.contains("ulimit -q"), "{text}");
    }
    child.wait_ok("rlimit child");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn the_mode_is_exact_whatever_the_umask() {
    let _g = shared();
    let (a, b) = (QName::new("mode-a"), QName::new("mode-b"));
    let mut child = Reaper::spawn("umask", &format!("{} {}", &*a, &*b));
    let mut out = child.stdout();
    assert_eq!(next_marked(&mut out, "MODES ").as_deref(), Some("640 600"));
    child.wait_ok("umask child");
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn each_limit_and_bad_input_has_its_typed_error() {
    use ipcraft_core::name::NameErrorKind;
    let _g = shared();
    let limits = Limits::read().unwrap();
    let attrs = Attributes::new(2, 32);

    let name_kind = |n: &str| match MessageQueue::create(n, attrs) {
        Err(Error::InvalidName(e)) => e.kind(),
        other => panic!("{n:?}: {other:?}"),
    };
    assert_eq!(name_kind(""), NameErrorKind::Empty);
    assert_eq!(name_kind("no-slash"), NameErrorKind::NoLeadingSlash);
    assert_eq!(name_kind("/a/b"), NameErrorKind::InnerSlash { position: 2 });
    assert_eq!(name_kind("/."), NameErrorKind::Dots);
    assert_eq!(name_kind("/.."), NameErrorKind::Dots);
    assert_eq!(name_kind("/a\0b"), NameErrorKind::Nul { position: 2 });
    assert_eq!(
        name_kind(&format!("/{}", "x".repeat(256))),
        NameErrorKind::TooLong { len: 256 }
    );
    assert!(matches!(
        MessageQueue::open("nope", Access::ReadOnly),
        Err(Error::InvalidName(_))
    ));

    let name = QName::new("inputs");
    for (bad, field) in [
        (Attributes::new(0, 32), "max_messages"),
        (Attributes::new(2, 0), "max_message_size"),
        (Attributes::new(usize::MAX, 32), "max_messages"),
    ] {
        match MessageQueue::create(&name, bad) {
            Err(Error::InvalidAttributes { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(matches!(
        MessageQueue::create_with_mode(&name, attrs, 0o1600),
        Err(Error::InvalidMode { mode: 0o1600 })
    ));

    // Per-queue system limits (a process with CAP_SYS_RESOURCE is let past them).
    let over = |a: Attributes, limit: Limit, value: u64, requested: u64| match MessageQueue::create(
        &name, a,
    ) {
        Err(Error::LimitExceeded {
            limit: l,
            value: v,
            requested: r,
            ref name,
        }) => {
            assert_eq!((l, v, r), (limit, value, Some(requested)));
            assert!(name.starts_with("/ipcraft-test-"));
            let text = MessageQueue::create(name, a).unwrap_err().to_string();
            assert!(
                text.contains(&format!("{} = {value}", limit.name())),
                "{text}"
            );
            assert!(text.contains("sysctl -w"), "{text}");
        }
        Ok(_) => println!(
            "NOTE: this process may exceed {} (CAP_SYS_RESOURCE); not checked",
            limit.name()
        ),
        Err(e) => panic!("{limit}: {e:?}"),
    };
    let n = limits.msg_max + 1;
    over(
        Attributes::new(n as usize, 32),
        Limit::MsgMax,
        limits.msg_max,
        n,
    );
    let size = limits.msgsize_max + 1;
    over(
        Attributes::new(1, size as usize),
        Limit::MsgsizeMax,
        limits.msgsize_max,
        size,
    );

    // Exists / does not exist.
    assert!(matches!(
        MessageQueue::open(&name, Access::ReadWrite),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(unlink(&name), Err(Error::NotFound { .. })));
    let q = MessageQueue::create(&name, attrs).unwrap();
    let e = MessageQueue::create(&name, attrs).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert_eq!(
        std::io::Error::from(e).kind(),
        std::io::ErrorKind::AlreadyExists
    );

    // Messages, priorities, buffers.
    match q.send(&[0; 33], 0) {
        Err(Error::MessageTooLarge { len: 33, max: 32 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        q.try_send(&[0; 33], 0),
        Err(Error::MessageTooLarge { .. })
    ));
    match q.send(b"x", MQ_PRIO_MAX) {
        Err(Error::PriorityTooHigh { priority, max }) => {
            assert_eq!((priority, max), (MQ_PRIO_MAX, MQ_PRIO_MAX));
        }
        other => panic!("{other:?}"),
    }
    q.send(b"top", MQ_PRIO_MAX - 1).unwrap();
    q.send(b"", 0).unwrap();
    match q.recv(&mut [0; 31]) {
        Err(Error::BufferTooSmall {
            len: 31,
            needed: 32,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        q.try_recv(&mut [0; 8]),
        Err(Error::BufferTooSmall { .. })
    ));
    assert_eq!(q.recv_vec().unwrap(), (b"top".to_vec(), MQ_PRIO_MAX - 1));
    assert_eq!(q.recv_vec().unwrap(), (Vec::new(), 0));

    // The wrong direction is the kernel's EBADF, with the operation and the queue named.
    let reader = MessageQueue::open(&name, Access::ReadOnly).unwrap();
    let e = reader.send(b"x", 0).unwrap_err();
    assert_eq!(e.errno(), Some(nix::errno::Errno::EBADF));
    assert!(e.to_string().starts_with("mq_send(\"/ipcraft-test-"), "{e}");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn too_many_queues_names_queues_max() {
    // The queue table is system-wide: it is filled in a child with an IPC namespace of its
    // own, so that no other test, and no other program on the machine, runs short of queues.
    let _g = shared();
    let mut child = Reaper::spawn("queues-max", "");
    let mut out = child.stdout();
    let report = next_marked(&mut out, "QUEUES-MAX ").expect("no report");
    child.wait_ok("queues-max child");
    match report.split_once(' ') {
        Some(("SKIPPED", why)) => {
            println!("SKIPPED: queues_max not checked: {why}");
            eprintln!("SKIPPED: queues_max not checked: {why}");
        }
        Some(("NOTE", why)) => println!("NOTE: {why}"),
        _ => {
            let (limit, value) = report.split_once(' ').unwrap();
            assert_eq!(limit, "fs.mqueue.queues_max");
            assert!(value.parse::<u64>().unwrap() >= 1, "{report}");
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn the_creator_owns_the_name_an_opener_never_unlinks() {
    let _g = shared();
    let attrs = Attributes::new(2, 8);
    let name = QName::new("owner");
    let q = MessageQueue::create(&name, attrs).unwrap();
    assert!(q.owns_name());
    let opener = MessageQueue::open(&name, Access::ReadWrite).unwrap();
    assert!(!opener.owns_name());
    assert_eq!(opener.attributes(), attrs);
    drop(opener);
    MessageQueue::open(&name, Access::ReadOnly).unwrap();
    drop(q);
    assert!(matches!(
        MessageQueue::open(&name, Access::ReadOnly),
        Err(Error::NotFound { .. })
    ));

    // persist keeps it; open_or_create opens it without owning it, or creates and owns.
    let mut q = MessageQueue::create(&name, attrs).unwrap();
    q.persist();
    drop(q);
    let other =
        MessageQueue::open_or_create(&name, Access::ReadWrite, Attributes::new(1, 1)).unwrap();
    assert!(!other.owns_name());
    assert_eq!(other.attributes(), attrs, "the existing queue's attributes");
    drop(other);
    unlink(&name).unwrap();
    let created =
        MessageQueue::open_or_create(&name, Access::ReadWrite, Attributes::new(1, 1)).unwrap();
    assert!(created.owns_name());
    assert_eq!(created.attributes(), Attributes::new(1, 1));

    // Close-on-exec, and a descriptor that outlives the handle and its name.
    let flags = nix::fcntl::fcntl(created.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc_fd_cloexec(), 0, "FD_CLOEXEC is set");
    created.send(b"k", 1).unwrap();
    let fd = std::os::fd::OwnedFd::from(created);
    assert!(matches!(
        MessageQueue::open(&name, Access::ReadOnly),
        Err(Error::NotFound { .. })
    ));
    let flags = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(
        flags & libc_fd_cloexec(),
        0,
        "the duplicate is FD_CLOEXEC too"
    );
    assert!(
        format!("{:?}", MessageQueue::create(&name, attrs).unwrap()).contains("owns_name: true")
    );
}

fn libc_fd_cloexec() -> i32 {
    nix::fcntl::FdFlag::FD_CLOEXEC.bits()
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn mq_notify_signals_the_registered_process_once() {
    use ipcraft_mqueue::Signal;
    use std::os::unix::process::ExitStatusExt;
    let _g = shared();
    let name = QName::new("notify");
    // Never registered here while the queue is empty: the signal would end the test process.
    let q = MessageQueue::create(&name, Attributes::new(2, 8)).unwrap();

    // A registered child: nobody else may register; a message on the empty queue signals it.
    let mut child = Reaper::spawn("notify", &name);
    let mut out = child.stdout();
    assert_eq!(next_marked(&mut out, "REGISTERED").as_deref(), Some(""));
    let e = q.notify_signal(Signal::SIGUSR1).unwrap_err();
    assert!(matches!(e, Error::NotifyBusy { .. }), "{e:?}");
    assert!(e.to_string().contains("only one may be at a time"), "{e}");
    q.cancel_notify().unwrap(); // not ours to cancel: does nothing
    q.send(b"ping", 0).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGUSR1 as i32), "{status:?}");
    assert_eq!(q.status().unwrap().current_messages, 1, "the message stays");

    // A child that cancels: the queue is free for another registration at once.
    let mut child = Reaper::spawn("notify", &name);
    let mut out = child.stdout();
    assert_eq!(next_marked(&mut out, "REGISTERED").as_deref(), Some(""));
    child.tell("CANCEL");
    assert_eq!(next_marked(&mut out, "CANCELLED").as_deref(), Some(""));
    // The queue is not empty, so registering here cannot raise the signal; cancel at once.
    q.notify_signal(Signal::SIGUSR1).unwrap();
    q.cancel_notify().unwrap();
    child.tell("EXIT");
    child.wait_ok("cancelling child");
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn a_queue_descriptor_passed_to_a_child_is_adopted_without_a_name() {
    use std::os::fd::OwnedFd;
    let _g = shared();
    let name = QName::new("adopt");
    let q = MessageQueue::create(&name, Attributes::new(4, 16)).unwrap();
    let reader = MessageQueue::open(&name, Access::ReadOnly).unwrap();
    // Both queued before the child starts, so that it must take them by priority.
    q.send(b"low", 1).unwrap();
    q.send(b"high", 2).unwrap();
    let mut child = Reaper(ROLES.spawn("adopt-stdin", "", Stdio::from(OwnedFd::from(reader))));
    let mut out = child.stdout();
    assert_eq!(
        next_marked(&mut out, "ADOPTED ").as_deref(),
        Some("ReadOnly high 2")
    );
    assert_eq!(
        next_marked(&mut out, "ADOPTED ").as_deref(),
        Some("ReadOnly low 1")
    );
    child.wait_ok("adopting child");

    // Anything else is refused and handed back untouched.
    let (r, _w) = std::io::pipe().unwrap();
    match MessageQueue::try_from(OwnedFd::from(r)) {
        Err(Error::NotAQueue { fd }) => {
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn the_mqueue_mounts_root_directory_is_not_a_queue() {
    let _g = shared();
    // It passes the file-system check (it is on mqueue) but is no queue: `NotAQueue`, not a
    // failed mq_getattr later.
    let is_mqueue = |d: &str| {
        nix::sys::statfs::statfs(d)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FsType(0x1980_0202))
    };
    if is_mqueue("/dev/mqueue") {
        assert_eq!(adopt_mount_root("/dev/mqueue"), "NotAQueue");
        return;
    }
    // No mount here: make one in a child's private mount namespace (root and unshare(1)
    // needed), so that the machine's mounts are never touched.
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let unshare = Command::new("unshare")
        .arg("--help")
        .stdout(Stdio::null())
        .status();
    if !root || !unshare.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: no /dev/mqueue mount, and cannot make one (needs root and unshare)");
        return;
    }
    // An empty directory of our own to mount on (not a tmpfs over /tmp: the test binary
    // itself may live under /tmp, as in a CI clone there, and would vanish from the child).
    let dir = std::env::temp_dir().join(format!("ipcraft-mq-root-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let mut command = ROLES.command_via(
        "unshare",
        &[
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t mqueue none \"$IPCRAFT_MQ_ROOT\" && exec \"$@\"",
            "sh",
        ],
        "adopt-mount-root",
        "",
    );
    command.env("IPCRAFT_MQ_ROOT", &dir);
    let mut child = Reaper(command.stdout(Stdio::piped()).spawn().unwrap());
    let mut out = child.stdout();
    let root = next_marked(&mut out, "ROOT ");
    child.wait_ok("child adopting the mount's root");
    // The mount went with the namespace: only the empty directory is left.
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(root.as_deref(), Some("NotAQueue"));
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn the_descriptor_is_pollable() {
    use ipcraft_core::{Deadline, Interest, wait_fd};
    let _g = shared();
    let name = QName::new("poll");
    let q = MessageQueue::create(&name, Attributes::new(1, 8)).unwrap();
    let soon = || Deadline::after(Duration::from_millis(20));
    assert!(!wait_fd(&q, Interest::Readable, soon()).unwrap(), "empty");
    assert!(wait_fd(&q, Interest::Writable, soon()).unwrap(), "room");
    q.send(b"x", 0).unwrap();
    assert!(
        wait_fd(&q, Interest::Readable, soon()).unwrap(),
        "a message"
    );
    assert!(!wait_fd(&q, Interest::Writable, soon()).unwrap(), "full");
}

// ---------------------------------------------------------------------------------------
// Python's posix_ipc as the peer.

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn python_posix_ipc_interop_both_ways() {
    let _g = shared();
    if !python_has_posix_ipc() {
        return;
    }
    // Python sends with priorities; we receive, highest first.
    let name = QName::new("py-to-rust");
    let q = MessageQueue::create(&name, Attributes::new(depth(8), 64)).unwrap();
    python(
        "import posix_ipc, sys\n\
         q = posix_ipc.MessageQueue(sys.argv[1])\n\
         for text, prio in [('low', 1), ('high', 30000), ('mid', 7), ('low2', 1)]:\n\
         \x20   q.send(text.encode(), priority=prio)\n\
         q.close()\n",
        &[&name],
    );
    let got: Vec<(Vec<u8>, u32)> = (0..4).map(|_| q.try_recv_vec()).collect();
    assert_eq!(
        got,
        [
            (b"high".to_vec(), 30000),
            (b"mid".to_vec(), 7),
            (b"low".to_vec(), 1),
            (b"low2".to_vec(), 1)
        ]
    );

    // We send; Python receives and reports what it got, in order.
    let name = QName::new("rust-to-py");
    let q = MessageQueue::create(&name, Attributes::new(depth(8), 64)).unwrap();
    q.send(b"alpha", 2).unwrap();
    q.send(b"omega", 0).unwrap();
    q.send(b"top", 9).unwrap();
    q.send(b"beta", 2).unwrap();
    let out = python(
        "import posix_ipc, sys\n\
         q = posix_ipc.MessageQueue(sys.argv[1])\n\
         print(q.max_messages, q.max_message_size)\n\
         for _ in range(4):\n\
         \x20   msg, prio = q.receive(10)\n\
         \x20   print(msg.decode(), prio)\n\
         q.close()\n",
        &[&name],
    );
    let depth = depth(8);
    assert_eq!(
        out,
        format!("{depth} 64\ntop 9\nalpha 2\nbeta 2\nomega 0\n")
    );

    // Python creates (posix_ipc's defaults: mode 0600, its own sizes); we open it.
    let name = QName::new("py-created");
    python(
        "import posix_ipc, sys\n\
         q = posix_ipc.MessageQueue(sys.argv[1], posix_ipc.O_CREX, max_messages=3, \
         max_message_size=100)\n\
         q.send(b'from python', priority=4)\n\
         q.close()\n",
        &[&name],
    );
    let q = MessageQueue::open(&name, Access::ReadWrite).unwrap();
    assert!(!q.owns_name());
    assert_eq!(q.attributes(), Attributes::new(3, 100));
    assert_eq!(q.recv_vec().unwrap(), (b"from python".to_vec(), 4));
}

trait TryRecvVec {
    fn try_recv_vec(&self) -> (Vec<u8>, u32);
}

impl TryRecvVec for MessageQueue {
    fn try_recv_vec(&self) -> (Vec<u8>, u32) {
        let mut buf = vec![0; self.attributes().max_message_size];
        let (n, p) = self.try_recv(&mut buf).unwrap();
        buf.truncate(n);
        (buf, p)
    }
}

// ---------------------------------------------------------------------------------------
// Nothing left behind.

#[test]
#[cfg_attr(miri, ignore = "processes")]
fn zz_suite_leaves_no_queue_behind() {
    if std::env::var_os(NAME_LOG_ENV).is_some() || std::env::var_os(ROLE_ENV).is_some() {
        return; // Inside the suite this test runs: no recursion.
    }
    // The suite runs while no other test of this process does (see EXCLUSIVE).
    let _g = EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner());
    let log = std::env::temp_dir().join(format!("ipcraft-mq-names-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--skip", "zz_suite_leaves_no_queue_behind", "-q"])
        .env(NAME_LOG_ENV, &log)
        .env_remove(ROLE_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("ipcraft-test-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    let names = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        out.status.success(),
        "the suite failed when run for the leftover check:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Count what actually ran, not a number of names fixed in advance (tests skip parts, e.g.
    // the Python peer when `posix_ipc` is absent): every test the suite lists but this one
    // must have passed, and logging must have worked (at least one name, every name the
    // suite's own).
    let listed = suite_tests().len();
    let summary = String::from_utf8_lossy(&out.stdout);
    let passed = passed_count(&summary)
        .unwrap_or_else(|| panic!("no `test result` line in the suite's output:\n{summary}"));
    assert_eq!(
        passed,
        listed - 1,
        "the suite ran {passed} of its {listed} tests (all but this one expected)"
    );
    let names: Vec<&str> = names.lines().collect();
    assert!(!names.is_empty(), "the suite logged no queue name");
    assert!(
        names.iter().all(|n| n.starts_with(&format!("/{prefix}"))),
        "names not made by the suite: {names:?}"
    );
    let left: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| {
            !matches!(
                MessageQueue::open(n, Access::ReadOnly),
                Err(Error::NotFound { .. })
            )
        })
        .collect();
    assert!(left.is_empty(), "queues left behind: {left:?}");
    // Where the mqueue filesystem is mounted, look for anything else with the suite's prefix.
    if let Ok(dir) = std::fs::read_dir("/dev/mqueue") {
        let stray: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert!(stray.is_empty(), "queues left in /dev/mqueue: {stray:?}");
    }
}

/// The tests of this binary, from `--list`.
fn suite_tests() -> Vec<String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .env_remove(ROLE_ENV)
        .env_remove(NAME_LOG_ENV)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// `N` of the harness's `test result: ok. N passed; ...` line.
fn passed_count(output: &str) -> Option<usize> {
    let line = output.lines().find(|l| l.starts_with("test result:"))?;
    let before = line.split(" passed").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

#[test]
#[cfg_attr(miri, ignore = "syscalls")]
fn a_queue_gives_up_its_descriptor_and_takes_one_back() {
    use std::os::fd::OwnedFd;
    let _g = shared();
    let name = QName::new("into-fd");
    let q = MessageQueue::create(&name, Attributes::new(2, 8)).unwrap();
    let mut reader = MessageQueue::open(&name, Access::ReadOnly).unwrap();
    reader.persist(); // an opener owns no name: nothing changes
    q.send(b"kept", 3).unwrap();
    // Infallible, as for every handle: the descriptor itself, no dup.
    let fd: OwnedFd = reader.into();
    let back = MessageQueue::try_from(fd).unwrap();
    assert_eq!(back.access(), Access::ReadOnly);
    assert_eq!(back.recv_vec().unwrap(), (b"kept".to_vec(), 3));
    // The creator's conversion unlinks its name (as its drop would); the queue lives on in
    // the descriptor.
    let fd = OwnedFd::from(q);
    assert!(matches!(
        MessageQueue::open(&name, Access::ReadOnly),
        Err(Error::NotFound { .. })
    ));
    let q = MessageQueue::try_from(fd).unwrap();
    q.send(b"x", 0).unwrap();
    assert_eq!(back.recv_vec().unwrap(), (b"x".to_vec(), 0));
}
