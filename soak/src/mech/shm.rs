//! Shared memory `open_or_create` races: three racers (processes) call
//! `SegmentOptions::open_or_create` on one name at random moments; the one that creates it
//! runs a deliberately slow `init` (it writes a pattern in two halves with a pause between),
//! the others must see the whole pattern. A random racer is SIGKILLed at a random moment (often
//! mid-`init`) and a replacement racer joins the race at once.
//!
//! Each racer's outcome is one "message": `O created`, `O opened` (then the pattern is
//! checked), `O died` (`CreatorDied`), or `O refused <error>`. Rules: exactly one creator per
//! name (a second is counted as duplicated); `CreatorDied` only when a killed racer may have
//! been the creator (it was killed before reporting an outcome), any refusal or a
//! `CreatorDied` without such a kill is counted lost; a pattern that differs is corrupted.
//! After the round, every racer is gone: the creator removed the name, or, if it was killed,
//! the documented cleanup (`remove_stale`: its creator is provably dead) must remove it; a
//! name left after that is leaked (a headerless object a creator killed between `ftruncate`
//! and its header leaves is not "stale": issue 14 section 1).

use crate::child::{Ctx, Out, Stop};
use crate::env::{Run, open_fds};
use crate::kid::Kid;
use crate::ledger::{Counts, tally_common};
use crate::rng::{Rng, mix};
use crate::round::finish_round;
use ipcraft::shm::{Error, SegmentOptions};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const SIZE: usize = 4096;
const PATTERN: usize = 256;

fn pattern(name: &str) -> Vec<u8> {
    let seed = crate::msg::checksum(name.as_bytes());
    (0..PATTERN as u64).map(|i| mix(seed ^ i) as u8).collect()
}

/// One racer.
pub fn racer(ctx: &Ctx, out: &Out, stop: &Stop) {
    std::thread::sleep(Duration::from_micros(ctx.n("delay_us")));
    let fault = ctx.s("fault").to_owned();
    let want = pattern(ctx.name());
    let init_pause = Duration::from_micros(ctx.n("init_us"));
    let result = SegmentOptions::new()
        .timeout(Duration::from_secs(5))
        .open_or_create(ctx.name(), SIZE, |seg| {
            let mut bytes = want.clone();
            if fault == "flip" {
                bytes[PATTERN / 2 + 3] ^= 0x20;
            }
            seg.write_at(0, &bytes[..PATTERN / 2])?;
            std::thread::sleep(init_pause);
            seg.write_at(PATTERN / 2, &bytes[PATTERN / 2..])
        });
    match result {
        Ok((seg, created)) => {
            let claimed = created || fault == "dup";
            out.line(if claimed { "O created" } else { "O opened" });
            if fault == "drop" {
                out.line("O refused (self-test: an outcome the rules do not allow)");
            }
            let mut got = vec![0u8; PATTERN];
            match seg.read_at(0, &mut got) {
                Ok(()) if got == want => {}
                Ok(()) => out.line("X the segment's content differs from what init wrote"),
                Err(e) => out.error(format_args!("read_at: {e}")),
            }
            while !stop.requested() || fault == "withhold" {
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(seg);
        }
        Err(Error::CreatorDied { .. }) => out.line("O died"),
        Err(e) => out.line(format_args!(
            "O refused {}",
            e.to_string().replace('\n', " ")
        )),
    }
    out.line("DONE");
}

/// One round of the race.
pub fn round(run: &Run, round: u64, rng: &mut Rng) -> (Counts, String) {
    let mut c = Counts {
        rounds: 1,
        ..Counts::default()
    };
    let mut notes = String::new();
    let fds_before = open_fds();
    let name = run.ipc_name(round, "shm");
    let faults = ["flip", "dup", "drop", "withhold"];
    let racers = if run.self_test { faults.len() } else { 3 };
    let spawn = |i: usize, delay: u64, init: u64, fault: &str| {
        let args = [
            format!("name={name}"),
            format!("delay_us={delay}"),
            format!("init_us={init}"),
            format!("fault={fault}"),
        ];
        Kid::spawn("shm", "racer", &args, false, format!("shm racer #{i}"))
    };
    let mut kids = Vec::new();
    let mut logs = Vec::new();
    let result = (|| -> Result<(), String> {
        for i in 0..racers {
            let kid = if run.self_test {
                // Racer 0 creates (the others start late), and flips a byte of its pattern.
                spawn(
                    i,
                    if i == 0 { 0 } else { 30_000 },
                    0,
                    faults.get(i).copied().unwrap_or(""),
                )?
            } else {
                spawn(i, rng.range(0, 1500), rng.range(0, 3000), "")?
            };
            kids.push(kid);
        }
        if !run.self_test && rng.range(0, 3) > 0 {
            let v = rng.range(0, racers as u64 - 1) as usize;
            std::thread::sleep(Duration::from_micros(rng.range(500, 5000)));
            kids[v].kill();
            c.kills += 1;
            kids.push(spawn(racers, 0, rng.range(0, 3000), "")?);
        }
        let end = Instant::now() + Duration::from_secs(20);
        for k in &mut kids {
            let left = end.saturating_duration_since(Instant::now());
            k.wait_line(left, |l| l.starts_with("O "));
        }
        Ok(())
    })();
    if let Err(e) = result {
        c.errors += 1;
        let _ = writeln!(notes, "error: shm round {round}: {e}");
    }
    let limit = Instant::now()
        + if run.self_test {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(20)
        };
    for k in &mut kids {
        k.stop();
    }
    for k in kids {
        logs.push(k.finish(limit));
    }
    let outcome = |l: &&String| l.starts_with("O ");
    let killed_before_outcome = logs
        .iter()
        .any(|k| k.killed && !k.lines.iter().any(|l| outcome(&l)));
    let mut creators = 0;
    for k in &logs {
        for line in k.lines.iter().filter(outcome) {
            c.messages += 1;
            match line.as_str() {
                "O created" => creators += 1,
                "O opened" => {}
                "O died" if killed_before_outcome => c.recovered += 1,
                "O died" => {
                    c.lost += 1;
                    let _ = writeln!(
                        notes,
                        "lost ({}): CreatorDied, but no creator was killed",
                        k.label
                    );
                }
                other => {
                    c.lost += 1;
                    let _ = writeln!(notes, "lost ({}): {other}", k.label);
                }
            }
        }
    }
    if creators > 1 {
        c.duplicated += creators - 1;
        let _ = writeln!(notes, "duplicated: {creators} racers created {name}");
    }
    tally_common(&logs, &mut c, &mut notes);
    finish_round(run, round, &fds_before, &mut c, &mut notes);
    (c, notes)
}
