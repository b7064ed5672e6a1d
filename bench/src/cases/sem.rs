//! Semaphores (`ipcraft-sync`): `sem-pingpong` (in a segment, on ipcraft's futex word) and
//! `sem-named-pingpong` (glibc's named `sem_t`, through `ipcraft_sync::Semaphore`), each
//! beside the raw baseline: glibc's unnamed process-shared `sem_t` in a memory file
//! ([`crate::raw_sem`]).
//!
//! Two semaphores, `ping` (parent to child) and `pong` (child to parent). A round trip: the
//! parent posts `ping` and waits on `pong`; the child waits on `ping` and posts `pong`. Every
//! wait is timed ([`SLICE`]), as a careful program's would be, and on a timeout checks the
//! `closed` word (a side is done) and its own deadline, so a dead peer is noticed. The parent
//! times every round trip.
//!
//! Layout of the memory (offsets in the data area; the raw memory file leaves
//! [`RAW_SKIP`] bytes first, so words sit at the same place in their page in both):
//!
//! | offset | what |
//! |---|---|
//! | 0 | `ping`: ipcraft's placement (state, layout, the 64-bit word at 8), or the raw `sem_t` at 8 |
//! | 64 | `pong`: the same |
//! | 192 | `closed` (u32: a side is done) |
//!
//! The named rows keep their two semaphores in `/dev/shm/sem.ipcraft-bench-sem-PID-{ping,pong}`
//! (PID: the parent's) and only `closed` in the memory file.
// Atomics in shared memory between two real processes: nothing loom could check.
#![allow(clippy::disallowed_types)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcraft_shm::Segment;
use ipcraft_sync::{Error, Semaphore};

use crate::harness::{CHILD_TIMEOUT, Case, Env, Impl, Kind, Placement, Plan, Sample, Test};
use crate::proto::duration_ns;
use crate::raw_sem::{RawSem, Waited};
use crate::shm::SharedMap;
use crate::stats::Histogram;

/// Bytes of the data area.
pub const LEN: usize = 256;
/// Bytes the raw memory file leaves unused before its data area: ipcraft's header size.
pub const RAW_SKIP: usize = ipcraft_shm::HEADER_SIZE;
const PING: usize = 0;
const PONG: usize = 64;
/// Where the raw `sem_t` sits in its line: where ipcraft's word is in its placement.
const RAW_SEM: usize = 8;
const CLOSED: usize = 192;
/// The longest single wait; then `closed` and the deadline are checked.
pub const SLICE: Duration = Duration::from_millis(100);

/// Which semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Ping,
    Pong,
}

/// What both implementations provide.
trait Sems {
    /// Post `which`.
    fn post(&self, which: Which) -> io::Result<()>;
    /// Wait on `which` at most [`SLICE`]; whether a unit was taken.
    fn wait(&self, which: Which) -> io::Result<bool>;
    /// The `closed` word.
    fn closed(&self) -> &AtomicU32;
}

/// ipcraft: two `Semaphore`s, in the segment or named.
struct Ipcraft<'a> {
    ping: Semaphore<'a>,
    pong: Semaphore<'a>,
    closed: &'a AtomicU32,
}

fn sem_io(e: Error) -> io::Error {
    e.into()
}

impl<'a> Ipcraft<'a> {
    /// Place (parent) or attach to (child) the two semaphores in `seg`, or create (parent)
    /// or open (child) the named ones of the parent `pid`.
    fn new(seg: &'a Segment, named: bool, parent: bool, pid: u32) -> io::Result<Self> {
        let name = |which: &str| format!("/ipcraft-bench-sem-{pid}-{which}");
        let (ping, pong) = match (named, parent) {
            (false, _) => (
                Semaphore::in_segment(seg, PING, 0).map_err(sem_io)?,
                Semaphore::in_segment(seg, PONG, 0).map_err(sem_io)?,
            ),
            (true, true) => (
                Semaphore::create(&name("ping"), 0).map_err(sem_io)?,
                Semaphore::create(&name("pong"), 0).map_err(sem_io)?,
            ),
            (true, false) => (
                Semaphore::open(&name("ping")).map_err(sem_io)?,
                Semaphore::open(&name("pong")).map_err(sem_io)?,
            ),
        };
        Ok(Self {
            ping,
            pong,
            closed: seg.get(CLOSED)?,
        })
    }

    fn sem(&self, which: Which) -> &Semaphore<'a> {
        match which {
            Which::Ping => &self.ping,
            Which::Pong => &self.pong,
        }
    }
}

impl Sems for Ipcraft<'_> {
    #[inline]
    fn post(&self, which: Which) -> io::Result<()> {
        self.sem(which).post().map_err(sem_io)
    }

    #[inline]
    fn wait(&self, which: Which) -> io::Result<bool> {
        match self.sem(which).wait_timeout(SLICE) {
            Ok(()) => Ok(true),
            Err(Error::TimedOut) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn closed(&self) -> &AtomicU32 {
        self.closed
    }
}

/// The raw baseline: two glibc `sem_t`s in a memory file mapped by hand.
struct Raw<'a> {
    ping: RawSem<'a>,
    pong: RawSem<'a>,
    closed: &'a AtomicU32,
}

impl<'a> Raw<'a> {
    fn new(map: &'a SharedMap) -> io::Result<Self> {
        Ok(Self {
            ping: RawSem::at(map, RAW_SKIP + PING + RAW_SEM)?,
            pong: RawSem::at(map, RAW_SKIP + PONG + RAW_SEM)?,
            closed: map.word(RAW_SKIP + CLOSED)?,
        })
    }

    fn sem(&self, which: Which) -> &RawSem<'a> {
        match which {
            Which::Ping => &self.ping,
            Which::Pong => &self.pong,
        }
    }
}

impl Sems for Raw<'_> {
    #[inline]
    fn post(&self, which: Which) -> io::Result<()> {
        self.sem(which).post()
    }

    #[inline]
    fn wait(&self, which: Which) -> io::Result<bool> {
        Ok(self.sem(which).wait_until(Instant::now() + SLICE)? == Waited::Taken)
    }

    fn closed(&self) -> &AtomicU32 {
        self.closed
    }
}

/// Wait on `which` until a unit is taken; an error when the peer closed or `deadline` passed.
#[inline]
fn take(s: &impl Sems, which: Which, deadline: Instant) -> io::Result<()> {
    while !s.wait(which)? {
        if s.closed().load(Ordering::Acquire) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer left before its turn",
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped answering",
            ));
        }
    }
    Ok(())
}

/// One side of the ping-pong, then set `closed` whatever happened.
fn run(s: &impl Sems, test: &Test, parent: bool, deadline: Instant) -> io::Result<Option<Sample>> {
    let rounds = test.warmup + test.count;
    let result = if parent {
        (|| {
            let mut hist = Histogram::with_capacity(test.count);
            for i in 0..rounds {
                let start = Instant::now();
                s.post(Which::Ping)?;
                take(s, Which::Pong, deadline)?;
                if i >= test.warmup {
                    hist.record(duration_ns(start.elapsed()));
                }
            }
            Ok(Some(Sample::from_histogram(&mut hist)))
        })()
    } else {
        (|| {
            for _ in 0..rounds {
                take(s, Which::Ping, deadline)?;
                s.post(Which::Pong)?;
            }
            Ok(None)
        })()
    };
    s.closed().store(1, Ordering::Release);
    result
}

/// A semaphore case: in a segment or named, raw or ipcraft.
#[derive(Debug)]
pub struct SemCase {
    named: bool,
    imp: Impl,
}

impl SemCase {
    /// `named` (glibc's named semaphore through ipcraft) or in a segment, as `imp`
    /// ([`Impl::Raw`] or [`Impl::Ipcraft`]).
    pub fn new(named: bool, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "a semaphore case is raw or ipcraft");
        Self { named, imp }
    }

    fn parent(
        &self,
        env: &Env,
        placement: Placement,
        test: &Test,
        s: &impl Sems,
        fd: OwnedFd,
    ) -> io::Result<Sample> {
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(fd),
            Stdio::null(),
            |deadline| {
                run(s, test, true, deadline)?
                    .ok_or_else(|| io::Error::other("the parent side measured nothing"))
            },
        )
    }
}

impl Case for SemCase {
    fn mechanism(&self) -> &'static str {
        if self.named {
            "sem-named-pingpong"
        } else {
            "sem-pingpong"
        }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn placements(&self) -> &'static [Placement] {
        &[Placement::Cross, Placement::Same]
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        vec![Test::latency(0, plan.scaled(20_000), plan.scaled(2_000))]
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        if test.kind != Kind::Latency {
            return Err(io::Error::other(format!(
                "{} measures latency only",
                self.mechanism()
            )));
        }
        match self.imp {
            Impl::Raw => {
                let fd = crate::shm::create_len("ipcraft-bench-sem", RAW_SKIP + LEN)?;
                let map = SharedMap::map(&fd, RAW_SKIP + LEN)?;
                let raw = Raw::new(&map)?;
                raw.ping.init()?;
                raw.pong.init()?;
                self.parent(env, placement, test, &raw, fd)
            }
            _ => {
                let seg = Segment::anonymous(LEN)?;
                let fd = seg.as_fd().try_clone_to_owned()?;
                let s = Ipcraft::new(&seg, self.named, true, std::process::id())?;
                self.parent(env, placement, test, &s, fd)
            }
        }
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let stdin = io::stdin().as_fd().try_clone_to_owned()?;
        // Never outlive the parent by long, even if it died without setting `closed`.
        let deadline = Instant::now() + CHILD_TIMEOUT + Duration::from_secs(5);
        match self.imp {
            Impl::Raw => {
                let map = SharedMap::map(&stdin, RAW_SKIP + LEN)?;
                run(&Raw::new(&map)?, test, false, deadline).map(drop)
            }
            _ => {
                let seg = Segment::from_fd(stdin, LEN)?;
                let parent = nix::unistd::getppid().as_raw() as u32;
                run(
                    &Ipcraft::new(&seg, self.named, false, parent)?,
                    test,
                    false,
                    deadline,
                )
                .map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One thread plays both sides: a post is taken by the matching wait, and an empty
    /// semaphore times out.
    fn both_sides(s: &impl Sems) {
        assert!(!s.wait(Which::Pong).unwrap());
        s.post(Which::Ping).unwrap();
        assert!(s.wait(Which::Ping).unwrap());
        s.post(Which::Pong).unwrap();
        take(s, Which::Pong, Instant::now() + Duration::from_secs(5)).unwrap();
        s.closed().store(1, Ordering::Release);
        let e = take(s, Which::Ping, Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn raw_and_ipcraft_semaphores_move() {
        let fd = crate::shm::create_len("ipcraft-bench-sem-test", RAW_SKIP + LEN).unwrap();
        let map = SharedMap::map(&fd, RAW_SKIP + LEN).unwrap();
        let raw = Raw::new(&map).unwrap();
        raw.ping.init().unwrap();
        raw.pong.init().unwrap();
        both_sides(&raw);
        let seg = Segment::anonymous(LEN).unwrap();
        both_sides(&Ipcraft::new(&seg, false, true, 0).unwrap());
        let seg = Segment::anonymous(LEN).unwrap();
        let pid = std::process::id();
        let parent = Ipcraft::new(&seg, true, true, pid).unwrap();
        let child = Ipcraft::new(&seg, true, false, pid).unwrap();
        parent.post(Which::Ping).unwrap();
        assert!(child.wait(Which::Ping).unwrap());
        both_sides(&parent);
    }
}
