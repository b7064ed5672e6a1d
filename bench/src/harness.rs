//! The harness: what a benchmark case is, how the parent runs a child process for it (pinned,
//! watched by a timeout), and how runs are repeated and interleaved.
//!
//! # Adding a mechanism
//!
//! Implement [`Case`] (usually one value per implementation: `raw` and `ipcraft`) and add it to
//! [`crate::cases::all`]. A message-passing case makes its channel in [`Case::measure`], hands
//! the child's ends over as the child's stdin/stdout through [`Env::two_processes`], and runs
//! [`crate::proto::parent`] / [`crate::proto::child`] with its own [`crate::proto::Sender`] and
//! [`crate::proto::Receiver`]; the loops, timing, warm-up and statistics are shared.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::stats::Histogram;

/// How long the parent waits for a child to finish one measurement before it kills it.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Round-trip latency of a ping-pong (p50, p99).
    Latency,
    /// One-way throughput of a stream (MB/s, messages/s).
    Throughput,
}

impl Kind {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Throughput => "throughput",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Latency, Self::Throughput]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One measurement's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Test {
    /// Latency or throughput.
    pub kind: Kind,
    /// Message size in bytes (0: no message, as in the sync rows).
    pub size: usize,
    /// Timed iterations: round trips (latency), messages (throughput), copies (memcpy).
    pub count: usize,
    /// Untimed iterations before the timed ones.
    pub warmup: usize,
}

impl Test {
    /// A latency test.
    pub fn latency(size: usize, count: usize, warmup: usize) -> Self {
        Self {
            kind: Kind::Latency,
            size,
            count,
            warmup,
        }
    }

    /// A throughput test.
    pub fn throughput(size: usize, count: usize, warmup: usize) -> Self {
        Self {
            kind: Kind::Throughput,
            size,
            count,
            warmup,
        }
    }

    /// The arguments that describe this test to a child.
    fn to_args(self) -> [String; 8] {
        [
            "--kind".into(),
            self.kind.as_str().into(),
            "--size".into(),
            self.size.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
        ]
    }
}

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placement {
    /// Parent and child on two different CPUs.
    Cross,
    /// Parent and child on the same CPU.
    Same,
}

impl Placement {
    /// `cross` or `same`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cross => "cross",
            Self::Same => "same",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Cross, Self::Same]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Whose code moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    /// A physical limit (no mechanism): cache-line ping-pong, memcpy.
    Limit,
    /// The raw libc baseline (`crate::raw`).
    Raw,
    /// ipcraft's API.
    Ipcraft,
}

impl Impl {
    /// `limit`, `raw` or `ipcraft`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Raw => "raw",
            Self::Ipcraft => "ipcraft",
        }
    }
}

/// The result of one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// Round-trip percentiles.
    Latency {
        /// Median round trip, ns.
        p50_ns: u64,
        /// 99th percentile round trip, ns.
        p99_ns: u64,
    },
    /// A timed stream.
    Throughput {
        /// Bytes moved.
        bytes: u64,
        /// Messages moved.
        msgs: u64,
        /// Seconds it took.
        secs: f64,
    },
}

impl Sample {
    /// p50 and p99 of `hist` (zeros when it is empty).
    pub fn from_histogram(hist: &mut Histogram) -> Self {
        Self::Latency {
            p50_ns: hist.percentile(50.0).unwrap_or(0),
            p99_ns: hist.percentile(99.0).unwrap_or(0),
        }
    }

    /// `test.count` messages of `test.size` bytes in `elapsed`.
    pub fn throughput(test: &Test, elapsed: Duration) -> Self {
        Self::Throughput {
            bytes: (test.count * test.size) as u64,
            msgs: test.count as u64,
            secs: elapsed.as_secs_f64(),
        }
    }

    /// Median round trip in ns, for latency samples.
    pub fn p50_ns(&self) -> Option<f64> {
        match *self {
            Self::Latency { p50_ns, .. } => Some(p50_ns as f64),
            Self::Throughput { .. } => None,
        }
    }

    /// 99th percentile round trip in ns, for latency samples.
    pub fn p99_ns(&self) -> Option<f64> {
        match *self {
            Self::Latency { p99_ns, .. } => Some(p99_ns as f64),
            Self::Throughput { .. } => None,
        }
    }

    /// Megabytes (10^6 bytes) per second, for throughput samples that moved bytes (not for
    /// the sync rows, whose operations move no message: size 0).
    pub fn mb_per_s(&self) -> Option<f64> {
        match *self {
            Self::Throughput { bytes, secs, .. } if secs > 0.0 && bytes > 0 => {
                Some(bytes as f64 / secs / 1e6)
            }
            _ => None,
        }
    }

    /// Messages per second, for throughput samples.
    pub fn msgs_per_s(&self) -> Option<f64> {
        match *self {
            Self::Throughput { msgs, secs, .. } if secs > 0.0 => Some(msgs as f64 / secs),
            _ => None,
        }
    }
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Repetitions of every measurement.
    pub runs: usize,
    /// CI mode: about 20 times fewer iterations.
    pub quick: bool,
}

impl Plan {
    /// `n` iterations, or a twentieth of them (at least 10) in quick mode.
    pub fn scaled(&self, n: usize) -> usize {
        if self.quick { (n / 20).max(10) } else { n }
    }

    /// The standard tests of a message-passing mechanism: 64-byte round trips, then streams of
    /// 64 B, 4 KiB and 64 KiB messages.
    pub fn standard(&self) -> Vec<Test> {
        vec![
            Test::latency(64, self.scaled(20_000), self.scaled(2_000)),
            Test::throughput(64, self.scaled(200_000), self.scaled(10_000)),
            Test::throughput(4 << 10, self.scaled(100_000), self.scaled(5_000)),
            Test::throughput(64 << 10, self.scaled(8_000), self.scaled(400)),
        ]
    }
}

/// One benchmark case: a mechanism as one implementation moves messages.
pub trait Case: Sync {
    /// The mechanism (`pipe`, `pipe-framed`, `cacheline`, ...).
    fn mechanism(&self) -> &'static str;

    /// Whose code it runs.
    fn implementation(&self) -> Impl;

    /// The name a child is started with: `mechanism/impl`.
    fn id(&self) -> String {
        format!("{}/{}", self.mechanism(), self.implementation().as_str())
    }

    /// The placements this case is meaningful for.
    fn placements(&self) -> &'static [Placement] {
        &[Placement::Cross, Placement::Same]
    }

    /// What to measure.
    fn tests(&self, plan: &Plan) -> Vec<Test> {
        plan.standard()
    }

    /// In the parent: measure `test` once (usually through [`Env::two_processes`]).
    ///
    /// # Errors
    ///
    /// Anything that went wrong, in the parent or the child.
    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample>;

    /// In the child (started by [`Env::two_processes`] with `--child <id>`): the child's side
    /// of `test`. The child's ends of the channel are its stdin and stdout.
    ///
    /// # Errors
    ///
    /// Anything that went wrong; the child then exits with status 1.
    fn child(&self, test: &Test) -> io::Result<()>;
}

/// The CPUs this process may run on, in order.
///
/// # Errors
///
/// `sched_getaffinity(2)` failed.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// Pin the calling process (all its threads created afterwards too) to `cpu`.
///
/// # Errors
///
/// `sched_setaffinity(2)` failed (for example, `cpu` is not allowed).
pub fn pin_to(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// The parent's environment: its executable and CPUs.
#[derive(Debug)]
pub struct Env {
    /// This program, re-executed as the child.
    pub exe: PathBuf,
    /// The parent's CPU (the child's too, for `same`).
    pub parent_cpu: usize,
    /// The child's CPU for `cross`, if there is a second CPU.
    pub other_cpu: Option<usize>,
    /// How many CPUs this process was allowed before it pinned itself (what `nproc` says).
    pub nproc: usize,
}

impl Env {
    /// Find this program and two CPUs, and pin the calling process to the first.
    ///
    /// # Errors
    ///
    /// The executable cannot be found, or affinity cannot be read or set.
    pub fn setup() -> io::Result<Self> {
        let exe = std::env::current_exe()?;
        let cpus = allowed_cpus()?;
        let parent_cpu = *cpus
            .first()
            .ok_or_else(|| io::Error::other("this process may run on no CPU"))?;
        pin_to(parent_cpu)?;
        Ok(Self {
            exe,
            parent_cpu,
            other_cpu: cpus.get(1).copied(),
            nproc: cpus.len(),
        })
    }

    /// The child's CPU for `placement`, `None` when there is no second CPU for `cross`.
    pub fn child_cpu(&self, placement: Placement) -> Option<usize> {
        match placement {
            Placement::Cross => self.other_cpu,
            Placement::Same => Some(self.parent_cpu),
        }
    }

    /// Run one measurement across two processes.
    ///
    /// Starts this program again as `--child <case id>` pinned for `placement`, with `stdin`
    /// and `stdout` as its standard input and output (the child's ends of the channel; they are
    /// closed in the parent as soon as the child has started), then runs `parent` here, which
    /// gets the deadline by which it must be done. When `parent` has not returned by then, the
    /// child is killed (SIGKILL), so a parent blocked on the child sees end of stream; a parent
    /// that spins must check the deadline itself. `parent` must drop its ends before it
    /// returns so that the child sees end of stream and exits; a child that does not exit in
    /// time is killed.
    ///
    /// # Errors
    ///
    /// The child could not start, `parent` failed, the timeout was hit, or the child failed.
    pub fn two_processes(
        &self,
        case: &dyn Case,
        placement: Placement,
        test: &Test,
        stdin: Stdio,
        stdout: Stdio,
        parent: impl FnOnce(Instant) -> io::Result<Sample>,
    ) -> io::Result<Sample> {
        let cpu = self
            .child_cpu(placement)
            .ok_or_else(|| io::Error::other("no second CPU for a cross-core placement"))?;
        let mut child = {
            // The Command owns `stdin` and `stdout` until it is dropped: drop it at once so
            // that the parent holds no copy of the child's ends (else it would never see EOF).
            let mut cmd = Command::new(&self.exe);
            cmd.arg("--child")
                .arg(case.id())
                .arg("--cpu")
                .arg(cpu.to_string())
                .args(test.to_args())
                .stdin(stdin)
                .stdout(stdout)
                .stderr(Stdio::inherit());
            cmd.spawn()?
        };
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let (done, wait_done) = mpsc::channel::<()>();
        let (result, killed) = thread::scope(|s| {
            let watched = &mut child;
            let watchdog = s.spawn(move || {
                match wait_done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let _ = watched.kill();
                        true
                    }
                    _ => false,
                }
            });
            let result = parent(deadline);
            drop(done);
            (result, watchdog.join().unwrap_or(true))
        });
        let status = reap(
            &mut child,
            deadline.max(Instant::now()) + Duration::from_secs(5),
        );
        if killed {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "child `{}` did not finish within {CHILD_TIMEOUT:?}; killed it",
                    case.id()
                ),
            ));
        }
        let status = status?;
        match result {
            Err(e) if !status.success() => Err(io::Error::new(
                e.kind(),
                format!("{e} (child `{}` exited with {status})", case.id()),
            )),
            Err(e) => Err(e),
            Ok(_) if !status.success() => Err(io::Error::other(format!(
                "child `{}` exited with {status}",
                case.id()
            ))),
            Ok(sample) => Ok(sample),
        }
    }
}

/// Wait for `child` to exit; kill it if it has not by `deadline`.
fn reap(child: &mut Child, deadline: Instant) -> io::Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "child did not exit after the measurement; killed it",
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Our own standard input and output as owned descriptors (duplicates), for a child's side.
///
/// # Errors
///
/// `dup(2)` failed.
pub fn child_stdio() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok((
        io::stdin().as_fd().try_clone_to_owned()?,
        io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

/// A child's command line, parsed: `--child ID --cpu N --kind K --size S --count N --warmup W`.
#[derive(Debug, PartialEq, Eq)]
pub struct ChildArgs {
    /// The case id.
    pub id: String,
    /// The CPU to pin to.
    pub cpu: usize,
    /// The test.
    pub test: Test,
}

impl ChildArgs {
    /// Parse the arguments after `--child`.
    ///
    /// # Errors
    ///
    /// A message naming the missing or bad argument.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let id = args.first().ok_or("--child needs a case id")?.clone();
        let mut cpu = None;
        let (mut kind, mut size, mut count, mut warmup) = (None, None, None, None);
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--cpu" => cpu = Some(number()?),
                "--kind" => kind = Some(Kind::parse(value).ok_or("--kind: latency|throughput")?),
                "--size" => size = Some(number()?),
                "--count" => count = Some(number()?),
                "--warmup" => warmup = Some(number()?),
                "--placement" => {
                    Placement::parse(value).ok_or("--placement: cross|same")?;
                }
                _ => return Err(format!("unknown child argument {flag}")),
            }
        }
        Ok(Self {
            id,
            cpu: cpu.ok_or("--cpu is required")?,
            test: Test {
                kind: kind.ok_or("--kind is required")?,
                size: size.ok_or("--size is required")?,
                count: count.ok_or("--count is required")?,
                warmup: warmup.ok_or("--warmup is required")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_args_round_trip() {
        let test = Test::throughput(4096, 100, 10);
        let mut args = vec!["pipe/raw".to_string(), "--cpu".into(), "1".into()];
        args.extend(test.to_args());
        let parsed = ChildArgs::parse(&args).unwrap();
        assert_eq!(
            parsed,
            ChildArgs {
                id: "pipe/raw".into(),
                cpu: 1,
                test
            }
        );
        assert!(ChildArgs::parse(&args[..3]).is_err());
        assert!(ChildArgs::parse(&["x".into(), "--cpu".into()]).is_err());
    }

    #[test]
    fn throughput_and_latency_numbers() {
        let t = Test::throughput(1000, 2000, 0);
        let s = Sample::throughput(&t, Duration::from_millis(500));
        assert_eq!(s.mb_per_s(), Some(4.0));
        assert_eq!(s.msgs_per_s(), Some(4000.0));
        assert_eq!(s.p50_ns(), None);
        let mut h = Histogram::with_capacity(4);
        for v in [10, 20, 30, 40] {
            h.record(v);
        }
        let s = Sample::from_histogram(&mut h);
        assert_eq!((s.p50_ns(), s.p99_ns()), (Some(20.0), Some(40.0)));
        assert_eq!(s.mb_per_s(), None);
    }
}
