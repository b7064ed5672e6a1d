//! The physical limits: a cache line bounced between two processes, and memcpy.

use std::fs::File;
use std::hint::{black_box, spin_loop};
use std::io::{self, Read, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sched::sched_yield;
use nix::unistd::pipe2;

use crate::harness::{
    CHILD_TIMEOUT, Case, Env, Impl, Kind, Placement, Plan, Sample, Test, child_stdio,
};
use crate::proto::duration_ns;
use crate::shm::{self, SharedLine};
use crate::stats::Histogram;

/// The value that tells the child to stop (never a round-trip value: those stay small).
const STOP: u64 = u64::MAX;

/// Round trips of one cache line between the two processes through a shared atomic word: the
/// parent stores an odd counter value, the child spins until it sees it and stores value + 1,
/// the parent spins until it sees that. Nothing is cheaper across processes.
///
/// Spinning is only meaningful across cores: on one core a spinner only burns its time slice
/// while its peer waits for the CPU. So the `cacheline` case runs only `cross`, and the
/// `cacheline-yield` case runs only `same`, where each waiting side calls `sched_yield(2)`
/// between checks: it measures two context switches per round trip, the floor of any
/// same-core round trip.
#[derive(Debug)]
pub struct Cacheline {
    /// Whether a waiting side calls `sched_yield` (the `same` variant).
    pub yields: bool,
}

impl Cacheline {
    /// Wait until `done` accepts the word's value, then return it; fail after `deadline`.
    fn wait(
        &self,
        line: &SharedLine,
        done: impl Fn(u64) -> bool,
        deadline: Instant,
    ) -> io::Result<u64> {
        let word = line.word();
        let mut spins: u32 = 0;
        loop {
            let v = word.load(Ordering::Acquire);
            if done(v) {
                return Ok(v);
            }
            if self.yields {
                let _ = sched_yield();
            } else {
                spin_loop();
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer stopped answering on the shared cache line",
                ));
            }
        }
    }

    /// One round trip: store `2i + 1`, wait for `2i + 2`.
    fn round_trip(&self, line: &SharedLine, i: u64, deadline: Instant) -> io::Result<()> {
        let v = 2 * i + 1;
        line.word().store(v, Ordering::Release);
        self.wait(line, |w| w == v + 1, deadline).map(drop)
    }

    fn parent(&self, line: &SharedLine, test: &Test, deadline: Instant) -> io::Result<Sample> {
        let mut hist = Histogram::with_capacity(test.count);
        let warmup = test.warmup as u64;
        for i in 0..warmup {
            self.round_trip(line, i, deadline)?;
        }
        let mut last = Instant::now();
        for i in warmup..warmup + test.count as u64 {
            self.round_trip(line, i, deadline)?;
            let now = Instant::now();
            hist.record(duration_ns(now - last));
            last = now;
        }
        Ok(Sample::from_histogram(&mut hist))
    }
}

impl Case for Cacheline {
    fn mechanism(&self) -> &'static str {
        if self.yields {
            "cacheline-yield"
        } else {
            "cacheline"
        }
    }

    fn implementation(&self) -> Impl {
        Impl::Limit
    }

    fn placements(&self) -> &'static [Placement] {
        if self.yields {
            &[Placement::Same]
        } else {
            &[Placement::Cross]
        }
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        vec![Test::latency(64, plan.scaled(100_000), plan.scaled(10_000))]
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let memfd = shm::create()?;
        let line = SharedLine::map(&memfd)?;
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC)?;
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(memfd),
            Stdio::from(ready_w),
            |deadline| {
                let mut ready = [0u8; 1];
                File::from(ready_r).read_exact(&mut ready)?;
                let result = self.parent(&line, test, deadline);
                // Whatever happened, let the child go.
                line.word().store(STOP, Ordering::Release);
                result
            },
        )
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (stdin, stdout) = child_stdio()?;
        let line = SharedLine::map(&stdin)?;
        // Never outlive the parent by long, even if it died without storing STOP.
        let deadline = Instant::now() + CHILD_TIMEOUT + Duration::from_secs(5);
        File::from(stdout).write_all(b"R")?;
        let mut expect = 1u64;
        let mut answered = 0usize;
        loop {
            let v = self.wait(&line, |w| w == expect || w == STOP, deadline)?;
            if v == STOP {
                break;
            }
            line.word().store(expect + 1, Ordering::Release);
            expect += 2;
            answered += 1;
        }
        if answered == test.warmup + test.count {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "stopped after {answered} of {} round trips",
                test.warmup + test.count
            )))
        }
    }
}

/// Copies of a buffer within one process (on the parent's CPU): the cost of moving the bytes
/// once, which every mechanism pays at least once (pipes twice: in and out of the kernel).
/// Source and destination stay in cache at these sizes.
#[derive(Debug)]
pub struct Memcpy;

impl Case for Memcpy {
    fn mechanism(&self) -> &'static str {
        "memcpy"
    }

    fn implementation(&self) -> Impl {
        Impl::Limit
    }

    fn placements(&self) -> &'static [Placement] {
        &[Placement::Same]
    }

    fn tests(&self, plan: &Plan) -> Vec<Test> {
        vec![
            Test::throughput(64, plan.scaled(20_000_000), plan.scaled(1_000_000)),
            Test::throughput(4 << 10, plan.scaled(2_000_000), plan.scaled(100_000)),
            Test::throughput(64 << 10, plan.scaled(100_000), plan.scaled(5_000)),
        ]
    }

    fn measure(&self, _env: &Env, _placement: Placement, test: &Test) -> io::Result<Sample> {
        if test.kind != Kind::Throughput {
            return Err(io::Error::other("memcpy measures throughput only"));
        }
        let src: Vec<u8> = (0..test.size).map(|i| i as u8).collect();
        let mut dst = vec![0u8; test.size];
        for _ in 0..test.warmup {
            black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
        }
        let start = Instant::now();
        for _ in 0..test.count {
            black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
        }
        let elapsed = start.elapsed();
        black_box(&dst);
        Ok(Sample::throughput(test, elapsed))
    }

    fn child(&self, _test: &Test) -> io::Result<()> {
        Err(io::Error::other(
            "memcpy runs in one process; it has no child",
        ))
    }
}
