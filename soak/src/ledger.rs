//! The parent's ledger: what the children reported, checked against what each mechanism
//! promises, into the counters of the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a mechanism promises about messages in flight when their consumer dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// The messages are held by the kernel or the shared memory, not by the consumer (a
    /// message queue, the mutex mailbox, the channel with receiver takeover): a killed
    /// consumer takes at most the one message in its hands (taken, not yet recorded) with it.
    /// Every other acknowledged message arrives.
    Held,
    /// The messages are held by the connection's reader (a pipe, a socket, a channel whose
    /// receiver cannot be replaced): when the reader of a connection is killed, what it had
    /// not recorded is gone with it; what it recorded must still be an unbroken, ordered
    /// prefix. On a connection whose reader lives, every acknowledged message arrives.
    Connection,
}

/// One row of the table (or its part from one round).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rounds run.
    pub rounds: u64,
    /// Processes SIGKILLed on purpose.
    pub kills: u64,
    /// Messages acknowledged (for the shm races: opens; for the mutex: hand-offs).
    pub messages: u64,
    /// Acknowledged and never received, and not excused by the mechanism's promise.
    pub lost: u64,
    /// Acknowledged, never received, and excused by the promise (gone with a killed reader).
    pub excused: u64,
    /// Deaths the survivors saw and recovered from: `OwnerDied` repairs (mutex),
    /// `CreatorDied` outcomes (shm), broken connections re-made (`B` lines).
    pub recovered: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received out of the promised order.
    pub reordered: u64,
    /// Received damaged (checksum, body, length, or the descriptor's content).
    pub corrupted: u64,
    /// A child that waited past its deadline, or had to be killed by the watchdog.
    pub hung: u64,
    /// Descriptors or named objects left behind.
    pub leaked: u64,
    /// Unexpected errors (each printed).
    pub errors: u64,
}

impl Counts {
    /// Add `other` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.rounds += o.rounds;
        self.kills += o.kills;
        self.messages += o.messages;
        self.lost += o.lost;
        self.excused += o.excused;
        self.recovered += o.recovered;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.corrupted += o.corrupted;
        self.hung += o.hung;
        self.leaked += o.leaked;
        self.errors += o.errors;
    }

    /// Whether every failure counter is zero.
    pub fn clean(&self) -> bool {
        self.lost
            + self.duplicated
            + self.reordered
            + self.corrupted
            + self.hung
            + self.leaked
            + self.errors
            == 0
    }
}

/// What one child process reported, and how it ended.
#[derive(Debug, Clone, Default)]
pub struct KidLog {
    /// A consumer (else a producer or racer).
    pub consumer: bool,
    /// SIGKILLed by the plan.
    pub killed: bool,
    /// Killed by the watchdog after it would not finish.
    pub watchdog: bool,
    /// Its stdout, line by line.
    pub lines: Vec<String>,
    /// What the child is, for messages.
    pub label: String,
}

fn nums(rest: &str) -> Vec<u64> {
    rest.split_whitespace()
        .map_while(|w| w.parse().ok())
        .collect()
}

/// Tally the lines every child wrote that are not about messages (`X`, `H`, `L`, `E`,
/// watchdog kills); unexpected errors are appended to `notes`.
pub fn tally_common(kids: &[KidLog], c: &mut Counts, notes: &mut String) {
    for k in kids {
        if k.watchdog {
            c.hung += 1;
            let _ = writeln!(notes, "hung: {} did not finish; killed", k.label);
        }
        for line in &k.lines {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "X" => {
                    c.corrupted += 1;
                    let _ = writeln!(notes, "corrupted ({}): {rest}", k.label);
                }
                "H" => {
                    c.hung += 1;
                    let _ = writeln!(notes, "hung ({}): {rest}", k.label);
                }
                "L" => {
                    let n = nums(rest).first().copied().unwrap_or(1);
                    c.leaked += n;
                    let _ = writeln!(notes, "leaked ({}): {n} descriptors", k.label);
                }
                "B" | "RECOVERED" | "TOOK_OVER" => c.recovered += 1,
                "E" => {
                    c.errors += 1;
                    let _ = writeln!(notes, "error ({}): {rest}", k.label);
                }
                _ => {}
            }
        }
    }
}

/// Check the message lines (`A`, `R`, `C`) of one round against `promise`.
pub fn tally_messages(kids: &[KidLog], promise: Promise, c: &mut Counts, notes: &mut String) {
    // stream -> seq -> conn, for acknowledged messages.
    let mut acked: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    // (stream, seq) -> times received.
    let mut got: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    // (stream, conn) -> the highest seq received on it.
    let mut conn_max: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    // (stream, conn) -> whether the consumer that greeted it was killed.
    let mut greeted: BTreeMap<(u64, u64), bool> = BTreeMap::new();
    // stream -> last seq received, across consumers in incarnation order.
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let mut consumer_kills = 0u64;
    for k in kids {
        if k.consumer && k.killed {
            consumer_kills += 1;
        }
        for line in &k.lines {
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            let v = nums(rest);
            match (tag, v.as_slice()) {
                ("A", [s, conn, q, ..]) => {
                    acked.entry(*s).or_default().insert(*q, *conn);
                }
                ("C", [s, conn, ..]) => {
                    greeted.insert((*s, *conn), k.killed);
                }
                ("R", [s, conn, q, ..]) => {
                    *got.entry((*s, *q)).or_default() += 1;
                    let m = conn_max.entry((*s, *conn)).or_default();
                    *m = (*m).max(*q);
                    if let Some(prev) = last.insert(*s, *q)
                        && *q < prev
                    {
                        c.reordered += 1;
                        let _ = writeln!(notes, "reordered: stream {s} seq {q} after {prev}");
                    }
                }
                _ => {}
            }
        }
    }
    for (&(s, q), &n) in &got {
        if n > 1 {
            c.duplicated += n - 1;
            let _ = writeln!(notes, "duplicated: stream {s} seq {q} received {n} times");
        }
    }
    let mut gap_starts = Vec::new();
    for (&s, seqs) in &acked {
        c.messages += seqs.len() as u64;
        for (&q, &conn) in seqs {
            if got.contains_key(&(s, q)) {
                continue;
            }
            let excused = match promise {
                Promise::Held => {
                    let starts_gap = q == 0 || got.contains_key(&(s, q - 1));
                    if starts_gap {
                        gap_starts.push((s, q));
                        continue;
                    }
                    false
                }
                Promise::Connection => {
                    let reader_died = greeted
                        .get(&(s, conn))
                        .copied()
                        .unwrap_or(consumer_kills > 0);
                    let hole = conn_max.get(&(s, conn)).is_some_and(|&m| m > q);
                    reader_died && !hole
                }
            };
            if excused {
                c.excused += 1;
            } else {
                c.lost += 1;
                let _ = writeln!(notes, "lost: stream {s} conn {conn} seq {q}");
            }
        }
    }
    // Held: each killed consumer may have had one message in its hands, the start of a gap.
    let excusable = consumer_kills as usize;
    c.excused += gap_starts.len().min(excusable) as u64;
    for &(s, q) in gap_starts.iter().skip(excusable) {
        c.lost += 1;
        let _ = writeln!(
            notes,
            "lost: stream {s} seq {q} (more gaps than killed consumers)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(consumer: bool, killed: bool, lines: &[&str]) -> KidLog {
        KidLog {
            consumer,
            killed,
            lines: lines.iter().map(|s| (*s).to_owned()).collect(),
            ..KidLog::default()
        }
    }

    fn run(kids: &[KidLog], p: Promise) -> Counts {
        let mut c = Counts::default();
        let mut notes = String::new();
        tally_messages(kids, p, &mut c, &mut notes);
        tally_common(kids, &mut c, &mut notes);
        c
    }

    #[test]
    fn every_counter_counts() {
        let prod = kid(
            false,
            false,
            &["A 1 0 0", "A 1 0 1", "A 1 0 2", "A 1 0 3", "A 1 0 4"],
        );
        let cons = kid(
            true,
            false,
            &[
                "R 1 0 0", "R 1 0 2", "R 1 0 2", "R 1 0 1", "X bad", "H x", "L 2",
            ],
        );
        let c = run(&[prod, cons], Promise::Held);
        assert_eq!((c.messages, c.duplicated, c.reordered), (5, 1, 1));
        assert_eq!((c.lost, c.corrupted, c.hung, c.leaked), (2, 1, 1, 2));
    }

    #[test]
    fn held_excuses_one_message_per_killed_consumer() {
        let prod = kid(false, false, &["A 1 0 0", "A 1 0 1", "A 1 0 2", "A 1 0 3"]);
        let dead = kid(true, true, &["R 1 0 0"]);
        let next = kid(true, false, &["R 1 0 2", "R 1 0 3"]);
        assert!(run(&[prod.clone(), dead, next.clone()], Promise::Held).clean());
        // Without a killed consumer, the same gap is a loss.
        let alive = kid(true, false, &["R 1 0 0"]);
        assert_eq!(run(&[prod, alive, next], Promise::Held).lost, 1);
    }

    #[test]
    fn connection_excuses_a_dead_readers_tail_but_never_a_hole() {
        let prod = kid(
            false,
            false,
            &["A 1 0 0", "A 1 0 1", "A 1 0 2", "A 1 1 3", "A 1 1 4"],
        );
        let dead = kid(true, true, &["C 1 0", "R 1 0 0"]);
        let next = kid(true, false, &["C 1 1", "R 1 1 3", "R 1 1 4"]);
        assert!(run(&[prod.clone(), dead, next], Promise::Connection).clean());
        let holey = kid(true, true, &["C 1 0", "R 1 0 0", "R 1 0 2"]);
        let next = kid(true, false, &["C 1 1", "R 1 1 3", "R 1 1 4"]);
        assert_eq!(
            run(&[prod.clone(), holey, next], Promise::Connection).lost,
            1
        );
        // A live reader excuses nothing.
        let live = kid(
            true,
            false,
            &["C 1 0", "R 1 0 0", "C 1 1", "R 1 1 3", "R 1 1 4"],
        );
        assert_eq!(run(&[prod, live], Promise::Connection).lost, 2);
    }
}
