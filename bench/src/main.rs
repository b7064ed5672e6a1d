//! `ipcraft-bench`: every ipcraft mechanism measured between two real processes, next to a raw
//! libc loop doing the same work, in the same run.
//!
//! ```text
//! cargo run --release -p ipcraft-bench -- [--quick] [--runs N] [--json | --markdown] [--filter TEXT]
//! ```
//! (`cargo xtask bench` runs this.) The parent pins itself to one CPU and, for each case,
//! re-executes this binary as the child (`--child <case> ...`) pinned to another CPU (`cross`)
//! or the same one (`same`), with the child's ends of the channel as its stdin and stdout.
//! Each measurement is repeated `--runs` times, interleaved, and reported as the median with
//! the min-max spread. Progress goes to stderr, the table to stdout.
//!
//! # Layout
//!
//! - [`harness`]: the [`harness::Case`] trait, spawning a pinned child under a timeout.
//! - [`proto`]: the ping-pong and stream protocols, generic over a sender and a receiver.
//! - [`cases`]: the registry; [`cases::limit`] (cache line, memcpy), [`cases::pipe`],
//!   [`cases::mqueue`], [`cases::socket`] (Unix stream, datagram, seqpacket; TCP loopback),
//!   [`cases::shm`], [`cases::sync`] (mutex and condvar rows).
//! - [`raw`]: the raw libc baselines (the crate's unsafe code, with [`shm`]).
//! - [`stats`], [`report`]: percentiles, medians, and the three output formats.

use std::io;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use harness::{Env, Placement, Sample, Test};
use report::Row;

mod cases;
mod harness;
mod proto;
mod proto_async;
mod raw;
mod raw_sem;
mod report;
mod shm;
mod stats;

const USAGE: &str = "\
usage: ipcraft-bench [--quick] [--runs N] [--json | --markdown] [--filter TEXT]

  --quick        few iterations, 2 runs (CI: well under a minute)
  --runs N       repeat every measurement N times, interleaved (default 5)
  --json         one JSON object per row per line instead of the table
  --markdown     the table as Markdown, with a header naming machine, date and command
  --filter TEXT  only cases whose id (mechanism/impl, e.g. pipe-framed/raw) contains TEXT
                 (or one of several, comma-separated: --filter channel,shm-futex)

Set IPCRAFT_BENCH_COMMAND to the command line to show in the Markdown header.";

/// How to print the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Markdown,
}

/// The parent's options.
#[derive(Debug)]
struct Options {
    plan: harness::Plan,
    format: Format,
    filter: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut quick = false;
    let mut runs = None;
    let mut format = Format::Text;
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--runs" => {
                let n = it.next().ok_or("--runs needs a number")?;
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("--runs: not a number: {n}"))?;
                if n == 0 {
                    return Err("--runs must be at least 1".into());
                }
                runs = Some(n);
            }
            "--json" | "--markdown" if format != Format::Text => {
                return Err("--json and --markdown exclude each other".into());
            }
            "--json" => format = Format::Json,
            "--markdown" => format = Format::Markdown,
            "--filter" => filter = Some(it.next().ok_or("--filter needs a text")?.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Options {
        plan: harness::Plan {
            runs: runs.unwrap_or(if quick { 2 } else { 5 }),
            quick,
        },
        format,
        filter,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child_main(&args[1..]);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse_options(&args) {
        Ok(opts) => match parent_main(&opts, &args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("ipcraft-bench: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ipcraft-bench: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The child: pin, find the case, run its side. Errors go to stderr and exit status 1.
fn child_main(args: &[String]) -> ExitCode {
    let run = || -> Result<(), String> {
        let a = harness::ChildArgs::parse(args)?;
        harness::pin_to(a.cpu).map_err(|e| format!("pinning to CPU {}: {e}", a.cpu))?;
        let case = cases::by_id(&a.id).ok_or_else(|| format!("no case {}", a.id))?;
        case.child(&a.test).map_err(|e| format!("{}: {e}", a.id))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipcraft-bench child: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One measurement to make in every run.
struct Job {
    case: usize,
    placement: Placement,
    test: Test,
    row: usize,
}

/// Whether `--filter` (absent: everything; else comma-separated texts) selects case `id`.
fn selects(filter: Option<&str>, id: &str) -> bool {
    filter.is_none_or(|f| {
        f.split(',')
            .any(|part| !part.is_empty() && id.contains(part))
    })
}

/// Run everything and print the results. `Ok(false)` when a measurement failed.
fn parent_main(opts: &Options, args: &[String]) -> io::Result<bool> {
    let env = Env::setup()?;
    let all = cases::all();
    let selected: Vec<usize> = (0..all.len())
        .filter(|&i| selects(opts.filter.as_deref(), &all[i].id()))
        .collect();
    if selected.is_empty() {
        return Err(io::Error::other("no case matches --filter"));
    }

    let mut notes = Vec::new();
    let mut jobs = Vec::new();
    let mut rows = Vec::new();
    for &ci in &selected {
        let case = &all[ci];
        for &placement in case.placements() {
            if env.child_cpu(placement).is_none() {
                let note = "only 1 CPU available: cross-core rows skipped";
                if !notes.iter().any(|n| n == note) {
                    eprintln!("ipcraft-bench: {note}");
                    notes.push(note.into());
                }
                continue;
            }
            for test in case.tests(&opts.plan) {
                jobs.push(Job {
                    case: ci,
                    placement,
                    test,
                    row: rows.len(),
                });
                rows.push(Row {
                    mechanism: case.mechanism(),
                    imp: case.implementation(),
                    placement,
                    kind: test.kind,
                    size: test.size,
                    samples: Vec::new(),
                });
            }
        }
    }

    let runs = opts.plan.runs;
    let started = Instant::now();
    eprintln!(
        "ipcraft-bench: {} measurements x {runs} runs; parent on CPU {}, child on CPU {} (cross) or {} (same)",
        jobs.len(),
        env.parent_cpu,
        env.other_cpu.map_or("-".into(), |c| c.to_string()),
        env.parent_cpu,
    );
    let mut failures = 0;
    for run in 1..=runs {
        // Every other run goes backwards, so that no case always runs right after the same
        // other one (raw always before ipcraft would bias the ratio by any order effect).
        let order: Box<dyn Iterator<Item = &Job>> = if run % 2 == 1 {
            Box::new(jobs.iter())
        } else {
            Box::new(jobs.iter().rev())
        };
        for job in order {
            let case = &all[job.case];
            let label = format!(
                "[run {run}/{runs}] {:<22} {:<5} {:<10} {:>6}",
                case.id(),
                job.placement.as_str(),
                job.test.kind.as_str(),
                report::fmt_size(job.test.size)
            );
            // The label first, so that a case that hangs is visible while it does.
            eprint!("{label}  ");
            let t0 = Instant::now();
            let result = case.measure(&env, job.placement, &job.test);
            let secs = t0.elapsed().as_secs_f64();
            match &result {
                Ok(s) => eprintln!("{}  ({secs:.2} s)", describe(s)),
                Err(e) => {
                    failures += 1;
                    eprintln!("FAILED: {e}");
                }
            }
            rows[job.row].samples.push(result.ok());
        }
    }
    eprintln!(
        "ipcraft-bench: done in {:.1} s{}",
        started.elapsed().as_secs_f64(),
        if failures > 0 {
            format!(", {failures} measurements FAILED")
        } else {
            String::new()
        }
    );

    let order: Vec<&str> = selected.iter().map(|&i| all[i].mechanism()).collect();
    report::sort(&mut rows, &order);
    notes.extend(standard_notes(&env, runs));
    match opts.format {
        Format::Json => {
            for r in &rows {
                println!("{}", report::json_line(r));
            }
        }
        Format::Text => {
            print!("{}", report::text_table(&rows));
            println!();
            for n in &notes {
                println!("- {n}");
            }
        }
        Format::Markdown => {
            println!("{}\n", markdown_header(&env, args));
            print!("{}", report::markdown_table(&rows));
            println!();
            for n in &notes {
                println!("- {n}");
            }
        }
    }
    Ok(failures == 0)
}

/// A sample in a few words, for the progress line.
fn describe(s: &Sample) -> String {
    match *s {
        Sample::Latency { p50_ns, p99_ns } => format!("p50 {p50_ns} ns, p99 {p99_ns} ns"),
        Sample::Throughput { .. } => match s.mb_per_s() {
            Some(mb) => format!("{mb:.0} MB/s, {:.0} msgs/s", s.msgs_per_s().unwrap_or(0.0)),
            None => format!("{:.0} msgs/s", s.msgs_per_s().unwrap_or(0.0)),
        },
    }
}

/// The notes printed under every table.
fn standard_notes(env: &Env, runs: usize) -> Vec<String> {
    let (a, b) = (
        env.parent_cpu,
        env.other_cpu.map_or("-".into(), |c| c.to_string()),
    );
    vec![
        if runs == 1 {
            "Each cell: a single run (use --runs N for the median and [min-max] of N runs).".into()
        } else {
            format!(
                "Each cell: the median of {runs} runs [min-max]; runs are interleaved (run 1 of every row, then run 2, ...; every other run in reverse order)."
            )
        },
        format!(
            "Placement: the parent runs on CPU {a}; the child (a second process: this binary re-executed) on CPU {b} (cross) or CPU {a} (same)."
        ),
        "p50/p99: round trip of a 64 B message, from a histogram of every round trip of a run. \
         MB/s: payload (frame prefixes not counted), 10^6 bytes per second; msgs/s: messages \
         per second (memcpy: copies per second). Throughput is one-way: N messages, then a \
         one-byte ack."
            .into(),
        "ipcraft/raw: ipcraft divided by the raw libc baseline of the same run, per run, \
         median [min-max]. Latency rows: ratio of p50 (above 1 = ipcraft slower); throughput \
         rows: ratio of msgs/s (below 1 = ipcraft slower)."
            .into(),
        "Limits: `cacheline` spins on one shared 64-byte line (cross only: spinning on one core \
         would only measure the scheduler); `cacheline-yield` is the same on one core with \
         sched_yield between checks, i.e. two context switches per round trip, the floor of \
         any same-core round trip; `memcpy` copies within one process on the parent's CPU, \
         in cache (placement `same` = one core)."
            .into(),
        "Shared memory: one 64 KiB slot per direction, a sequence-number flag per message \
         (payload copied in, flag published with Release; receiver copies out and publishes \
         `consumed`). `shm-spin` spins on the flag (same: sched_yield between checks, as \
         `cacheline-yield`); `shm-futex` spins 100 checks (none on same), then FUTEX_WAIT; the \
         publisher calls FUTEX_WAKE only when the waiter announced itself. Cross-core \
         `shm-futex` throughput is bistable (a receiver that falls asleep pays the VM wake-up \
         per message): read its spread, not its ratio."
            .into(),
        "Channel (`ipcraft::channel`, no raw row: compare with `cacheline` and the `shm-*` \
         rows): a lock-free ring per direction in a sealed memfd, 64 KiB for the latency \
         rows (it stays in the caches; 1 MiB rings cost ~10 ns and a 4 us p99 here), \
         1 MiB for throughput. `channel` waits \
         adaptively (spins only when the peer last ran on another CPU, then yields, then \
         sleeps on a futex); `channel-sleep` sleeps on the futex as soon as it finds the ring \
         empty or full (`Wait::Sleep`), the blocking mode to compare with `shm-futex` on one \
         core. One deadline per measurement, not per message."
            .into(),
        "Sockets: a connected pair per measurement (socketpair; TCP: the parent connects to \
         itself on 127.0.0.1 and hands the child the accepted end), both directions on it, \
         TCP_NODELAY on both TCP ends. Streams (`unix-stream`, `tcp-loopback`) move bytes \
         (send with MSG_NOSIGNAL until the message is out, recv until it is in); \
         `unix-dgram` and `unix-seqpacket` move one message per send and recv (64 KiB fits: \
         a Unix datagram may be up to the 212992-byte default SO_SNDBUF). The raw baseline \
         calls send(MSG_NOSIGNAL) and recv (MSG_TRUNC on message sockets); ipcraft sends \
         messages with sendmsg and receives them with recvmsg (sender address, \
         MSG_CMSG_CLOEXEC), which the ratio includes."
            .into(),
        "Sync rows (size `-`: no message, a u64 turn under the mutex; the raw baseline is a \
         robust process-shared pthread_mutex_t with the attributes ipcraft-sync uses, called \
         directly, and for the condvar the same futex sequence-word algorithm as \
         ipcraft-sync's, not glibc's pthread_cond_t, which ipcraft does not use): \
         `mutex-uncontended` is one process locking and unlocking back to back, reported as \
         lock+unlock pairs per second in msgs/s (ns per pair = 10^9 / msgs/s; ratio below 1 = \
         ipcraft slower). `mutex-handoff`: two processes take strict turns on a counter by \
         lock/check/unlock polling (cross: spin_loop between polls; same: sched_yield); its \
         p50/p99 are of the mean round trip of batches of 100 (one handoff across cores is \
         shorter than the clock reads around it). `condvar-pingpong`: the same turns, each \
         side in wait_while until its turn, then set, unlock, notify_all; every round trip \
         timed. A round trip = both sides took a turn. Cross-core `mutex-handoff` is \
         sensitive to the time spent under the lock: glibc's robust mutex does not spin, so a \
         poll that finds it held sleeps in FUTEX_WAIT and the unlock pays a FUTEX_WAKE; a few \
         ns more per lock show as tens of percent there. Read its spread with its ratio. \
         The `mutex-*` rows use ipcraft's pthread kind (the wrapper's cost over the same glibc \
         calls); `mutex-futex-*` rows use its futex kind (its own lock word, default) against \
         the same raw pthread baseline, run again under that name so that the ratio pairs \
         runs of one moment."
            .into(),
        "Semaphore rows (size `-`): two semaphores, ping and pong; a round trip is the parent \
         posting ping and waiting on pong while the child waits on ping and posts pong, every \
         wait timed (100 ms slices, checking a closed flag between). The raw baseline is \
         glibc's unnamed process-shared sem_t in a memory file (sem_post, sem_clockwait). \
         `sem-pingpong` is ipcraft's in-segment semaphore (a futex word of its own); \
         `sem-named-pingpong` is ipcraft's named semaphore (glibc's sem_open'ed sem_t)."
            .into(),
        "The project's machine is a 2-vCPU VM whose idle vCPU halts at once, so any blocking \
         wake-up across cores costs about 25 us one way: cross-core rows of blocking \
         mechanisms (pipes) mostly measure the hypervisor; same-core rows separate the \
         mechanisms. Spinning (cacheline) does not sleep and is not affected."
            .into(),
    ]
}

/// `Measured on ...`: CPUs, CPU model, date and the command line.
fn markdown_header(env: &Env, args: &[String]) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64);
    let command = std::env::var("IPCRAFT_BENCH_COMMAND").unwrap_or_else(|_| {
        let mut c = String::from("cargo run --release -p ipcraft-bench --");
        for a in args {
            c.push(' ');
            c.push_str(a);
        }
        c
    });
    format!(
        "Measured on {} CPUs ({model}), {} (UTC), with `{command}`.",
        env.nproc,
        report::civil_date(days)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::{Impl, Kind, Plan};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!(
            (o.plan.runs, o.plan.quick, o.format),
            (5, false, Format::Text)
        );
        let o = parse_options(&args("--quick --json")).unwrap();
        assert_eq!(
            (o.plan.runs, o.plan.quick, o.format),
            (2, true, Format::Json)
        );
        let o = parse_options(&args("--quick --runs 1 --markdown --filter pipe")).unwrap();
        assert_eq!((o.plan.runs, o.format), (1, Format::Markdown));
        assert_eq!(o.filter.as_deref(), Some("pipe"));
        assert!(parse_options(&args("--json --markdown")).is_err());
        assert!(parse_options(&args("--runs 0")).is_err());
        assert!(parse_options(&args("--runs")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
    }

    #[test]
    fn filter_selects_by_any_comma_separated_text() {
        assert!(selects(None, "pipe/raw"));
        assert!(selects(Some("pipe"), "pipe/raw"));
        assert!(!selects(Some("pipe"), "channel/ipcraft"));
        assert!(selects(Some("channel,shm-futex/raw"), "shm-futex/raw"));
        assert!(selects(
            Some("channel,shm-futex/raw"),
            "channel-sleep/ipcraft"
        ));
        assert!(!selects(Some("channel,shm-futex/raw"), "shm-futex/ipcraft"));
        // An empty part (a trailing comma) selects nothing by itself.
        assert!(!selects(Some("channel,"), "pipe/raw"));
    }

    #[test]
    fn every_case_has_tests_of_a_known_kind() {
        let plan = Plan {
            runs: 1,
            quick: true,
        };
        for c in cases::all() {
            let tests = c.tests(&plan);
            assert!(!tests.is_empty(), "{}", c.id());
            let sync = ["mutex-", "condvar-", "sem-"]
                .iter()
                .any(|p| c.mechanism().starts_with(p));
            if sync {
                // No message moves: the protected u64 only, or a semaphore's count.
                assert!(tests.iter().all(|t| t.size == 0), "{}", c.id());
            } else if c.implementation() != Impl::Limit {
                assert_eq!(tests[0].kind, Kind::Latency);
                assert_eq!(tests[0].size, 64);
            }
        }
    }
}
