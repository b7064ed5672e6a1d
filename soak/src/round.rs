//! One round of a message mechanism: a consumer and producers as processes, a victim
//! SIGKILLed at a random moment (after a random number of acknowledged messages, plus a
//! random delay), a replacement started, everyone finished, and the ledger checked.

use crate::env::{Run, fds_leaked, open_fds};
use crate::kid::Kid;
use crate::ledger::{Counts, KidLog, Promise, tally_common, tally_messages};
use crate::rng::Rng;
use std::any::Any;
use std::time::{Duration, Instant};

/// A message mechanism, as the generic round drives it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Its name in the table and on the command line.
    pub name: &'static str,
    /// What it promises when a consumer dies.
    pub promise: Promise,
    /// Producer processes at a time.
    pub producers: usize,
    /// The largest message body.
    pub max_body: usize,
    /// Whether messages carry descriptors.
    pub fds: bool,
    /// Whether a killed consumer is replaced (else the round goes on without one).
    pub restart_consumer: bool,
    /// Whether a killed producer is replaced.
    pub restart_producer: bool,
    /// A replacement consumer starts only once every live producer saw its connection
    /// break (or finished): a FIFO keeps a dead reader's unread bytes while a writer holds
    /// it open, and a new reader must not join a stream in the middle of a frame.
    pub consumer_waits_for_break: bool,
    /// What the parent makes (and owns) for the round, given the object's name.
    pub setup: fn(&str) -> Result<Box<dyn Any>, String>,
    /// The object's name for round `n`: a POSIX name or a path.
    pub name_of: fn(&Run, u64) -> String,
}

/// Whom the plan kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Nobody,
    Consumer,
    Producer(usize),
}

/// Faults for a self-test round, by sequence number.
pub fn self_test_faults(count: u64) -> String {
    let q = count / 8;
    format!(
        "drop:{},dup:{},flip:{},swap:{},withhold:{}",
        q,
        2 * q,
        3 * q,
        4 * q,
        count - 1
    )
}

/// Stream ids unique in the run.
#[derive(Debug, Default)]
pub struct Streams(u64);

impl Streams {
    /// The next id.
    pub fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Run one round of `spec`; returns its counts and notes.
pub fn run(
    spec: &Spec,
    run: &Run,
    round: u64,
    rng: &mut Rng,
    streams: &mut Streams,
) -> (Counts, String) {
    let mut c = Counts {
        rounds: 1,
        ..Counts::default()
    };
    let mut notes = String::new();
    let fds_before = open_fds();
    let name = (spec.name_of)(run, round);
    let result = (|| -> Result<Vec<KidLog>, String> {
        let guard = (spec.setup)(&name)?;
        let logs = drive(spec, run, &name, rng, streams, &mut c)?;
        drop(guard);
        Ok(logs)
    })();
    match result {
        Ok(logs) => {
            tally_messages(&logs, spec.promise, &mut c, &mut notes);
            tally_common(&logs, &mut c, &mut notes);
        }
        Err(e) => {
            c.errors += 1;
            notes.push_str(&format!("error: round {round}: {e}\n"));
        }
    }
    finish_round(run, round, &fds_before, &mut c, &mut notes);
    (c, notes)
}

fn args(spec: &Spec, name: &str, extra: &[(&str, String)]) -> Vec<String> {
    let mut v = vec![
        format!("name={name}"),
        format!("max_body={}", spec.max_body),
        format!("fds={}", u8::from(spec.fds)),
    ];
    v.extend(extra.iter().map(|(k, val)| format!("{k}={val}")));
    v
}

fn start_consumer(
    spec: &Spec,
    run: &Run,
    name: &str,
    inc: usize,
    restarted: bool,
) -> Result<Kid, String> {
    let restart = format!("restart={}", u8::from(restarted));
    let mut a = args(spec, name, &[]);
    a.push(restart);
    a.push(format!("restarts={}", u8::from(run.channel_restarts)));
    a.push(format!("producers={}", spec.producers));
    let mut kid = Kid::spawn(
        spec.name,
        "consumer",
        &a,
        true,
        format!("{} consumer #{inc}", spec.name),
    )?;
    if !kid.wait_line(Duration::from_secs(10), |l| l == "READY") {
        let log = kid.finish(Instant::now());
        return Err(format!("consumer #{inc} never got ready: {:?}", log.lines));
    }
    Ok(kid)
}

fn start_producer(
    spec: &Spec,
    run: &Run,
    name: &str,
    slot: usize,
    stream: u64,
    count: u64,
) -> Result<Kid, String> {
    let mut extra = vec![
        ("stream", stream.to_string()),
        ("count", count.to_string()),
        ("slot", slot.to_string()),
        ("restarts", u8::from(run.channel_restarts).to_string()),
    ];
    if run.self_test && slot == 0 {
        extra.push(("faults", self_test_faults(count)));
    }
    Kid::spawn(
        spec.name,
        "producer",
        &args(spec, name, &extra),
        false,
        format!("{} producer stream {stream}", spec.name),
    )
}

fn acks(kid: &Kid) -> usize {
    kid.count(|l| l.starts_with("A "))
}

fn drive(
    spec: &Spec,
    run: &Run,
    name: &str,
    rng: &mut Rng,
    streams: &mut Streams,
    c: &mut Counts,
) -> Result<Vec<KidLog>, String> {
    let count = if run.self_test {
        64
    } else {
        rng.range(100, 1200)
    };
    let victim = if run.self_test {
        Victim::Nobody
    } else {
        match rng.range(0, 5) {
            0 => Victim::Nobody,
            1 | 2 => Victim::Consumer,
            _ => Victim::Producer(rng.range(0, spec.producers as u64 - 1) as usize),
        }
    };
    // A replacement FIFO reader waits for the writer's EPIPE, which only a connected writer
    // sees: kill the reader only once the writer acknowledged a frame.
    let first = u64::from(spec.consumer_waits_for_break);
    let kill_after = rng.range(first, count * 3 / 4) as usize;
    let delay = Duration::from_micros(rng.range(0, 2000));
    let mut logs = Vec::new();
    let mut consumer = Some(start_consumer(spec, run, name, 0, false)?);
    let mut producers = Vec::new();
    for slot in 0..spec.producers {
        producers.push(start_producer(
            spec,
            run,
            name,
            slot,
            streams.next(),
            count,
        )?);
    }
    let watch = Duration::from_secs(20);
    match victim {
        Victim::Nobody => {}
        Victim::Consumer => {
            let end = Instant::now() + watch;
            while producers.iter().map(acks).sum::<usize>() < kill_after
                && producers.iter_mut().any(|p| !p.exited())
                && Instant::now() < end
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(delay);
            if let Some(mut dead) = consumer.take() {
                dead.kill();
                c.kills += 1;
                logs.push(dead.finish(Instant::now()));
            }
            if spec.restart_consumer {
                if spec.consumer_waits_for_break {
                    for p in &mut producers {
                        p.wait_line(watch, |l| l.starts_with("B ") || l == "DONE");
                    }
                }
                consumer = Some(start_consumer(spec, run, name, 1, true)?);
            }
        }
        Victim::Producer(i) => {
            let p = &mut producers[i];
            let end = Instant::now() + watch;
            while acks(p) < kill_after && !p.exited() && Instant::now() < end {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(delay);
            p.kill();
            c.kills += 1;
            if spec.restart_producer {
                let fresh = start_producer(spec, run, name, i, streams.next(), count / 2 + 1)?;
                logs.push(std::mem::replace(&mut producers[i], fresh).finish(Instant::now()));
            }
        }
    }
    let limit = if run.self_test {
        Duration::from_millis(1500)
    } else {
        watch
    };
    let end = Instant::now() + limit;
    for p in producers {
        logs.push(p.finish(end));
    }
    // Consumers stay in incarnation order in `logs`: the ledger checks order across them.
    if let Some(mut last) = consumer {
        last.stop();
        logs.push(last.finish(Instant::now() + limit));
    }
    Ok(logs)
}

/// The end of every round: the documented cleanup, then what is left (named objects of
/// the run, parent descriptors opened since `fds_before`). The self-test leaves one of each
/// on purpose first: both must be counted.
pub fn finish_round(
    run: &Run,
    round: u64,
    fds_before: &[(u32, String)],
    c: &mut Counts,
    notes: &mut String,
) {
    run.cleanup();
    let mut planted = None;
    if run.self_test {
        let _ = std::fs::write(
            format!("/dev/shm/{}-{round}-selftest-leak", run.prefix),
            b"x",
        );
        planted = std::fs::File::open("/dev/null").ok();
    }
    c.leaked += run.leftovers(notes);
    c.leaked += fds_leaked(fds_before, notes);
    drop(planted);
}
