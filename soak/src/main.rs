//! `ipcraft-soak`: the kill -9 soak of every ipcraft mechanism (`cargo xtask soak`).
//!
//! ```text
//! ipcraft-soak [--minutes M] [--seed S] [--only a,b] [--no-channel-restarts]
//! ipcraft-soak --self-test [--seed S] [--only a,b]
//! ```
//!
//! For each mechanism, round after round until the time is up: producers and consumers run
//! as separate processes (this binary, re-run as `ipcraft-soak child <mechanism> <role>`);
//! a random one is SIGKILLed at a random moment (after a random number of acknowledged
//! messages, plus a random delay), a replacement is started, and at the end of the round the
//! parent checks, from what the children reported line by line:
//!
//! - every *acknowledged* message arrived exactly once, intact, in order, unless the
//!   mechanism's promise excuses it (each mechanism's file says what "acknowledged" means
//!   and what it promises when a process dies; see [`ledger::Promise`]);
//! - no child waited past its deadline (`hung`), and every child finished when told;
//! - no descriptor leaked: the parent's `/proc/self/fd` before and after the round, and each
//!   consumer's own count (received descriptors are closed);
//! - no named object is left (in `/dev/shm`, `/dev/mqueue`, the run's directory under `/tmp`)
//!   once the owners are gone and the documented cleanup ran.
//!
//! It prints one table (mechanism, rounds, kills, messages, lost, duplicated, reordered,
//! corrupted, hung, leaked, errors) and exits non-zero unless every failure count is zero.
//! `--self-test` instead runs one round per mechanism with faults on purpose (a message
//! dropped, duplicated, bit-flipped, reordered, withheld by a producer that never finishes,
//! a descriptor and a name leaked by the parent) and fails unless every counter counted.
//! Plans follow from `--seed` (a SplitMix64 of our own); process timing does not.
#![forbid(unsafe_code)]

mod child;
mod env;
mod kid;
mod ledger;
mod mech;
mod msg;
mod rng;
mod round;

use ledger::Counts;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: ipcraft-soak [--minutes M] [--seed S] [--only a,b] [--no-channel-restarts] [--self-test]";

#[derive(Debug)]
struct Options {
    minutes: f64,
    seed: u64,
    only: Vec<String>,
    channel_restarts: bool,
    self_test: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        minutes: 2.0,
        seed: 1,
        only: Vec::new(),
        channel_restarts: true,
        self_test: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--minutes" => {
                let v = value("--minutes")?;
                o.minutes = v
                    .parse()
                    .map_err(|_| format!("--minutes: `{v}` is not a number"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                o.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: `{v}` is not a number"))?;
            }
            "--only" => o.only = value("--only")?.split(',').map(str::to_owned).collect(),
            "--channel-restarts" => o.channel_restarts = true,
            "--no-channel-restarts" => o.channel_restarts = false,
            "--self-test" => o.self_test = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

const COLUMNS: [&str; 13] = [
    "mechanism",
    "rounds",
    "kills",
    "messages",
    "lost",
    "duplicated",
    "reordered",
    "corrupted",
    "hung",
    "leaked",
    "errors",
    "excused",
    "recovered",
];

fn cells(name: &str, c: &Counts) -> [String; 13] {
    [
        name.to_owned(),
        c.rounds.to_string(),
        c.kills.to_string(),
        c.messages.to_string(),
        c.lost.to_string(),
        c.duplicated.to_string(),
        c.reordered.to_string(),
        c.corrupted.to_string(),
        c.hung.to_string(),
        c.leaked.to_string(),
        c.errors.to_string(),
        c.excused.to_string(),
        c.recovered.to_string(),
    ]
}

/// The table, as Markdown (readable as text too).
fn table(rows: &[(String, Counts)], extra: Option<&[String]>) -> String {
    let mut lines: Vec<Vec<String>> = vec![COLUMNS.iter().map(|s| (*s).to_owned()).collect()];
    if extra.is_some() {
        lines[0].push("self-test".to_owned());
    }
    let mut total = Counts::default();
    for (i, (name, c)) in rows.iter().enumerate() {
        total.add(c);
        let mut row = cells(name, c).to_vec();
        if let Some(e) = extra {
            row.push(e[i].clone());
        }
        lines.push(row);
    }
    if extra.is_none() {
        lines.push(cells("total", &total).to_vec());
    }
    let n = lines[0].len();
    let widths: Vec<usize> = (0..n)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (j, l) in lines.iter().enumerate() {
        let cols: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 || i >= COLUMNS.len() {
                    format!("{s:<w$}", w = widths[i])
                } else {
                    format!("{s:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", cols.join(" | ")));
        if j == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        }
    }
    out
}

fn one_round(
    run: &env::Run,
    name: &str,
    round: u64,
    rng: &mut rng::Rng,
    streams: &mut round::Streams,
) -> (Counts, String) {
    if name == mech::SHM {
        return mech::shm::round(run, round, rng);
    }
    let specs = mech::specs(run);
    let spec = specs
        .iter()
        .find(|s| s.name == name)
        .expect("a known mechanism");
    round::run(spec, run, round, rng, streams)
}

fn soak(o: &Options) -> Result<bool, String> {
    let run = env::Run::new(o.channel_restarts, o.self_test)?;
    let mut names: Vec<&str> = mech::specs(&run).iter().map(|s| s.name).collect();
    names.insert(4, mech::SHM);
    if !o.only.is_empty() {
        for w in &o.only {
            if !names.contains(&w.as_str()) {
                return Err(format!(
                    "--only: no mechanism `{w}`; there are: {}",
                    names.join(", ")
                ));
            }
        }
        names.retain(|n| o.only.iter().any(|w| w == n));
    }
    let mut rows: Vec<(String, Counts)> = names
        .iter()
        .map(|n| ((*n).to_owned(), Counts::default()))
        .collect();
    let mut rng = rng::Rng::new(o.seed);
    let mut streams = round::Streams::default();
    let budget = Duration::from_secs_f64(o.minutes * 60.0);
    let started = Instant::now();
    let mut round = 0u64;
    eprintln!(
        "ipcraft-soak: seed {}, {}, channel restarts {}",
        o.seed,
        if o.self_test {
            "self-test".to_owned()
        } else {
            format!("{} minutes", o.minutes)
        },
        if o.channel_restarts {
            "on"
        } else {
            "off (--no-channel-restarts)"
        }
    );
    loop {
        for (name, total) in &mut rows {
            round += 1;
            let mut r = rng.fork();
            let (c, notes) = one_round(&run, name, round, &mut r, &mut streams);
            if !notes.is_empty() && (!o.self_test || c.errors > 0) {
                eprint!("{name} round {round}:\n{notes}");
            }
            total.add(&c);
        }
        if o.self_test || started.elapsed() >= budget {
            break;
        }
    }
    run.remove_dir();
    eprintln!(
        "ipcraft-soak: {round} rounds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if o.self_test {
        let verdicts: Vec<String> = rows.iter().map(|(n, c)| self_test_verdict(n, c)).collect();
        print!("{}", table(&rows, Some(&verdicts)));
        let ok = verdicts.iter().all(|v| v == "every counter counted");
        println!(
            "ipcraft-soak self-test: {}",
            if ok {
                "every counter counted"
            } else {
                "FAILED: a counter did not count"
            }
        );
        return Ok(ok);
    }
    print!("{}", table(&rows, None));
    let clean = rows.iter().all(|(_, c)| c.clean());
    println!(
        "ipcraft-soak: {}",
        if clean { "all zero" } else { "FAILED" }
    );
    Ok(clean)
}

/// Which counters the faults of the self-test must have moved, and whether they did.
fn self_test_verdict(name: &str, c: &Counts) -> String {
    let mut want = vec![
        ("lost", c.lost),
        ("duplicated", c.duplicated),
        ("corrupted", c.corrupted),
        ("hung", c.hung),
        ("leaked", c.leaked),
    ];
    if name != mech::SHM {
        want.push(("reordered", c.reordered));
    }
    let dead: Vec<&str> = want
        .iter()
        .filter(|(_, v)| *v == 0)
        .map(|(n, _)| *n)
        .collect();
    if dead.is_empty() {
        "every counter counted".to_owned()
    } else {
        format!("did not count: {}", dead.join(", "))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "child") {
        return match child::Ctx::parse(&args[1..]).and_then(|ctx| mech::child(&ctx)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipcraft-soak child: {e}");
                ExitCode::from(2)
            }
        };
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match soak(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ipcraft-soak: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_that_did_not_count_fails_the_self_test() {
        let all = Counts {
            lost: 1,
            duplicated: 1,
            reordered: 1,
            corrupted: 1,
            hung: 1,
            leaked: 1,
            ..Counts::default()
        };
        assert_eq!(self_test_verdict("mqueue", &all), "every counter counted");
        let no_hang = Counts { hung: 0, ..all };
        assert_eq!(self_test_verdict("mqueue", &no_hang), "did not count: hung");
        let no_order = Counts {
            reordered: 0,
            ..all
        };
        assert_eq!(
            self_test_verdict(mech::SHM, &no_order),
            "every counter counted"
        );
        assert!(!all.clean());
        assert!(
            Counts {
                excused: 3,
                recovered: 2,
                ..Counts::default()
            }
            .clean()
        );
    }

    #[test]
    fn options() {
        let a = |v: &[&str]| parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let o = a(&["--minutes", "0.5", "--seed", "9", "--no-channel-restarts"]).unwrap();
        assert_eq!((o.minutes, o.seed, o.channel_restarts), (0.5, 9, false));
        assert!(a(&["--minutes"]).is_err());
        assert!(a(&["--fast"]).is_err());
    }
}
