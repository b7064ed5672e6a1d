//! The child side: what every producer, consumer or racer process shares. A child reads
//! its orders from its arguments (`key=value`), reports on stdout one line per event (the
//! parent's ledger), and learns on stdin when to finish (a line `STOP`, or end of file).
//!
//! Lines: `A stream conn seq` acknowledged by a producer; `R stream conn seq` received intact;
//! `C stream conn` a connection's greeting received; `B stream conn` a producer's connection
//! broke (its reader is gone); `X what` a corrupted message; `H what` a wait that passed its
//! deadline; `L n` descriptors leaked in the child; `E what` an unexpected error; `READY`;
//! `DONE`.

use crate::msg::{self, HELLO, Id};
use nix::sys::memfd::{MFdFlags, memfd_create};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait of a child may take before it counts as hung.
pub const WAIT: Duration = Duration::from_secs(10);

/// A self-test fault a producer applies at one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Acknowledge the message without sending it (the ledger must count it lost).
    Drop,
    /// Send it twice, acknowledge it once (duplicated).
    Dup,
    /// Flip a bit after the checksum was computed (corrupted).
    Flip,
    /// Send it after the next one (reordered).
    Swap,
    /// Acknowledge it, never send it, and never finish (hung, and lost).
    Withhold,
}

/// A child's orders.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The mechanism.
    pub mech: String,
    /// The role in it.
    pub role: String,
    args: BTreeMap<String, String>,
    /// Faults by sequence number (self-test only).
    pub faults: BTreeMap<u64, Fault>,
}

impl Ctx {
    /// Parse `child <mech> <role> key=value...`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let [mech, role, rest @ ..] = args else {
            return Err("child: expected <mech> <role> key=value...".into());
        };
        let mut map = BTreeMap::new();
        for a in rest {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("child: bad argument {a}"))?;
            map.insert(k.to_owned(), v.to_owned());
        }
        let mut faults = BTreeMap::new();
        if let Some(list) = map.get("faults") {
            for item in list.split(',').filter(|s| !s.is_empty()) {
                let (kind, at) = item.split_once(':').ok_or("bad fault")?;
                let at: u64 = at.parse().map_err(|_| "bad fault seq")?;
                let fault = match kind {
                    "drop" => Fault::Drop,
                    "dup" => Fault::Dup,
                    "flip" => Fault::Flip,
                    "swap" => Fault::Swap,
                    "withhold" => Fault::Withhold,
                    other => return Err(format!("unknown fault {other}")),
                };
                faults.insert(at, fault);
            }
        }
        Ok(Self {
            mech: mech.clone(),
            role: role.clone(),
            args: map,
            faults,
        })
    }

    /// A string argument (empty if absent).
    pub fn s(&self, key: &str) -> &str {
        self.args.get(key).map_or("", String::as_str)
    }

    /// A number argument (0 if absent).
    pub fn n(&self, key: &str) -> u64 {
        self.args.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The object's name or path.
    pub fn name(&self) -> &str {
        self.s("name")
    }
}

/// The report: one line per event on stdout, flushed at once (the process may be killed
/// at any moment; a line written is a line the parent reads).
#[derive(Debug)]
pub struct Out(std::io::Stdout);

impl Out {
    /// The report on this process's stdout.
    pub fn new() -> Self {
        Self(std::io::stdout())
    }

    /// One line. A parent that went away ends this child.
    pub fn line(&self, text: impl std::fmt::Display) {
        let mut lock = self.0.lock();
        if writeln!(lock, "{text}")
            .and_then(|()| lock.flush())
            .is_err()
        {
            std::process::exit(3);
        }
    }

    /// `A stream conn seq`.
    pub fn ack(&self, id: Id) {
        self.line(format_args!("A {} {} {}", id.stream, id.conn, id.seq));
    }

    /// `H what`.
    pub fn hung(&self, what: impl std::fmt::Display) {
        self.line(format_args!("H {what}"));
    }

    /// `E what`.
    pub fn error(&self, what: impl std::fmt::Display) {
        self.line(format_args!("E {}", what.to_string().replace('\n', " ")));
    }
}

/// Whether the parent asked this child to finish (stdin said `STOP` or closed).
#[derive(Debug, Clone)]
pub struct Stop(Arc<Mutex<bool>>);

impl Stop {
    /// Watch stdin on a thread of its own.
    pub fn watch() -> Self {
        let flag = Arc::new(Mutex::new(false));
        let set = Arc::clone(&flag);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            while stdin.lock().read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.trim() == "STOP" {
                    break;
                }
                line.clear();
            }
            *set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        });
        Self(flag)
    }

    /// Whether to finish.
    pub fn requested(&self) -> bool {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Whether message `seq` carries a descriptor (on mechanisms that pass them).
pub fn carries_fd(seq: u64) -> bool {
    seq != HELLO && seq.is_multiple_of(3)
}

/// The descriptor message `id` carries: a memfd holding its stream and sequence number.
pub fn fd_for(id: Id) -> Result<OwnedFd, String> {
    let fd = memfd_create("ipcraft-soak", MFdFlags::MFD_CLOEXEC).map_err(|e| e.to_string())?;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&id.stream.to_le_bytes());
    bytes[8..].copy_from_slice(&id.seq.to_le_bytes());
    nix::sys::uio::pwrite(&fd, &bytes, 0).map_err(|e| e.to_string())?;
    Ok(fd)
}

/// Why a producer's send failed.
#[derive(Debug)]
pub enum Fail {
    /// The reader is gone: reconnect (a new connection) and go on.
    Broken(String),
    /// The reader is gone and cannot come back: stop producing.
    Gone(String),
    /// A wait passed its deadline.
    Hung(String),
    /// Anything else.
    Fatal(String),
}

/// The producer loop every message mechanism shares: message after message, acknowledged
/// once `send` returned; on a broken connection, a new one (`connect(conn)`), greeted with a
/// `HELLO` message when `greet`; self-test faults applied as ordered.
pub fn produce<L>(
    ctx: &Ctx,
    out: &Out,
    greet: bool,
    mut connect: impl FnMut(u64) -> Result<L, Fail>,
    mut send: impl FnMut(&mut L, &[u8], Id) -> Result<(), Fail>,
) {
    let stream = ctx.n("stream");
    let count = ctx.n("count");
    let max_body = ctx.n("max_body") as usize;
    let mut conn = 0u64;
    let mut buf = Vec::new();
    let mut pending: Option<u64> = None;
    let mut link = match open(&mut connect, &mut send, greet, stream, conn, &mut buf) {
        Ok(l) => Some(l),
        Err(f) => return report_fail(out, stream, conn, f),
    };
    let mut seq = 0u64;
    while seq < count {
        let id = Id { stream, conn, seq };
        let fault = ctx.faults.get(&seq).copied();
        msg::encode(id, max_body, &mut buf);
        let Some(l) = link.as_mut() else { break };
        let result = match fault {
            Some(Fault::Drop) => Ok(()),
            Some(Fault::Withhold) => {
                out.ack(id);
                out.line("WITHHOLDING");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Some(Fault::Flip) => {
                let last = buf.len() - 1;
                buf[last.min(msg::HEADER + 1)] ^= 0x10;
                send(l, &buf, id)
            }
            Some(Fault::Dup) => send(l, &buf, id).and_then(|()| send(l, &buf, id)),
            Some(Fault::Swap) if seq + 1 < count && pending.is_none() => {
                let next = Id { seq: seq + 1, ..id };
                let mut b2 = Vec::new();
                msg::encode(next, max_body, &mut b2);
                pending = Some(seq);
                send(l, &b2, next).and_then(|()| send(l, &buf, id))
            }
            _ => send(l, &buf, id),
        };
        match result {
            Ok(()) => {
                out.ack(id);
                if pending.take().is_some() {
                    out.ack(Id { seq: seq + 1, ..id });
                    seq += 1;
                }
                seq += 1;
            }
            Err(Fail::Broken(why)) => {
                pending = None;
                out.line(format_args!("B {stream} {conn} {why}"));
                conn += 1;
                // The old connection goes first: its slot or descriptor may be needed.
                drop(link.take());
                link = match open(&mut connect, &mut send, greet, stream, conn, &mut buf) {
                    Ok(l) => Some(l),
                    Err(f) => return report_fail(out, stream, conn, f),
                };
            }
            Err(f) => return report_fail(out, stream, conn, f),
        }
    }
    drop(link);
    out.line("DONE");
}

/// Connect (and greet) until it works, or until [`WAIT`] passes.
fn open<L>(
    connect: &mut impl FnMut(u64) -> Result<L, Fail>,
    send: &mut impl FnMut(&mut L, &[u8], Id) -> Result<(), Fail>,
    greet: bool,
    stream: u64,
    conn: u64,
    buf: &mut Vec<u8>,
) -> Result<L, Fail> {
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = connect(conn).and_then(|mut link| {
            if greet {
                let hello = Id {
                    stream,
                    conn,
                    seq: HELLO,
                };
                msg::encode(hello, 0, buf);
                send(&mut link, buf, hello)?;
            }
            Ok(link)
        });
        match attempt {
            Err(Fail::Broken(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(Fail::Broken(why)) => return Err(Fail::Hung(format!("reconnect: {why}"))),
            other => return other,
        }
    }
}

fn report_fail(out: &Out, stream: u64, conn: u64, f: Fail) {
    match f {
        Fail::Gone(why) | Fail::Broken(why) => {
            out.line(format_args!("B {stream} {conn} {why}"));
            out.line("DONE");
        }
        Fail::Hung(why) => out.hung(why),
        Fail::Fatal(why) => out.error(why),
    }
}

/// What a consumer does with each message it takes: verify it (and the descriptor it
/// carries, if any), report it, close the descriptors.
#[derive(Debug)]
pub struct Recorder<'a> {
    out: &'a Out,
    max_body: usize,
    fds: bool,
}

impl<'a> Recorder<'a> {
    /// A recorder for `ctx`'s mechanism (`max_body`, and `fds=1` when descriptors travel).
    pub fn new(ctx: &Ctx, out: &'a Out) -> Self {
        Self {
            out,
            max_body: ctx.n("max_body") as usize,
            fds: ctx.n("fds") == 1,
        }
    }

    /// Check and report one message; returns its id when it was intact.
    pub fn record(&self, bytes: &[u8], fds: Vec<OwnedFd>) -> Option<Id> {
        let id = match msg::verify(bytes, self.max_body) {
            Ok(id) => id,
            Err(why) => {
                self.out.line(format_args!("X {why}"));
                return None;
            }
        };
        if self.fds {
            let want = usize::from(carries_fd(id.seq));
            if fds.len() != want {
                self.out.line(format_args!(
                    "X {id:?}: {} descriptors, {want} expected",
                    fds.len()
                ));
                return None;
            }
            if let Some(fd) = fds.first() {
                let mut got = [0u8; 16];
                let n = nix::sys::uio::pread(fd.as_fd(), &mut got, 0).unwrap_or(0);
                let mut want = [0u8; 16];
                want[..8].copy_from_slice(&id.stream.to_le_bytes());
                want[8..].copy_from_slice(&id.seq.to_le_bytes());
                if n != 16 || got != want {
                    self.out
                        .line(format_args!("X {id:?}: its descriptor holds other bytes"));
                    return None;
                }
            }
        } else if !fds.is_empty() {
            self.out
                .line(format_args!("X {id:?}: unexpected descriptors"));
            return None;
        }
        drop(fds);
        if id.seq == HELLO {
            self.out.line(format_args!("C {} {}", id.stream, id.conn));
        } else {
            self.out
                .line(format_args!("R {} {} {}", id.stream, id.conn, id.seq));
        }
        Some(id)
    }
}

/// Reports descriptors a consumer kept open past its end (compared with its start).
#[derive(Debug)]
pub struct FdWatch(usize);

impl FdWatch {
    /// Count now.
    pub fn start() -> Self {
        Self(open_fds())
    }

    /// Count again (after everything the role opened was dropped) and report growth.
    pub fn finish(self, out: &Out) {
        let now = open_fds();
        if now > self.0 {
            out.line(format_args!("L {}", now - self.0));
        }
    }
}
