//! `cargo xtask ci`: every check, in order; the first failure stops the run.

use crate::cmd::Cmd;
use crate::{Error, Result, bench, loom, miri, soak, unsafe_report, workspace};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a step that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// It passed, with something to say (`no crate has loom tests yet`).
    Note(String),
    /// It did not run, for the reason given; counted neither as passed nor as failed.
    Skipped(String),
}

/// One step of the gate.
struct Step {
    name: &'static str,
    /// A generous bound, so that a hung test cannot eat CI's whole budget.
    timeout: Duration,
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// The published library crates, which the `features` step builds alone.
const LIBRARIES: &[&str] = &[
    "ipcraft-core",
    "ipcraft-pipe",
    "ipcraft-socket",
    "ipcraft-mqueue",
    "ipcraft-shm",
    "ipcraft-sync",
];

/// The steps, in the order they run.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        timeout: minutes(5),
    },
    Step {
        name: "clippy",
        timeout: minutes(30),
    },
    Step {
        name: "test",
        timeout: minutes(30),
    },
    Step {
        name: "features",
        timeout: minutes(30),
    },
    Step {
        name: "soak",
        timeout: minutes(20),
    },
    Step {
        name: "examples",
        timeout: minutes(30),
    },
    Step {
        name: "doc",
        timeout: minutes(30),
    },
    Step {
        name: "loom",
        timeout: loom::DEFAULT_TIMEOUT,
    },
    Step {
        name: "miri",
        timeout: miri::DEFAULT_TIMEOUT,
    },
    Step {
        name: "unsafe-report",
        // In-process; only its `git ls-files` is bounded (60 s).
        timeout: minutes(1),
    },
    Step {
        name: "bench",
        timeout: minutes(10),
    },
];

fn run_step(root: &Path, step: &Step) -> Result<Outcome> {
    let deadline = Some(Instant::now() + step.timeout);
    let cargo = |args: &[&str]| Cmd::cargo().args(args);
    match step.name {
        "fmt" => cargo(&["fmt", "--all", "--check"]).run(root, deadline)?,
        "clippy" => cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .run(root, deadline)?,
        "test" => cargo(&["test", "--workspace", "--all-features"]).run(root, deadline)?,
        // `test` built every crate with every feature (and a workspace build unifies
        // features: the bench turns on the facade's `tokio`). Here the library crates are
        // built alone, so that a feature cannot hide a break without it: no features (the
        // mechanism crates' default), the facade's defaults (every mechanism, no async),
        // and the facade with none.
        "features" => {
            let leaves = LIBRARIES.iter().flat_map(|c| ["-p", c]);
            let mut clippy: Vec<&str> = vec!["clippy", "--all-targets"];
            clippy.extend(leaves.clone());
            clippy.extend(["--", "-D", "warnings"]);
            cargo(&clippy).run(root, deadline)?;
            let mut test: Vec<&str> = vec!["test"];
            test.extend(leaves);
            cargo(&test).run(root, deadline)?;
            cargo(&["test", "-p", "ipcraft"]).run(root, deadline)?;
            cargo(&[
                "clippy",
                "-p",
                "ipcraft",
                "--all-targets",
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ])
            .run(root, deadline)?;
        }
        // The channel's ten-million-message runs (SPSC, 3-sender MPSC) need a release
        // build; `test` ran them with fewer messages (debug). Then the kill -9 soak: its
        // self-test, and a bounded run of every mechanism.
        "soak" => {
            cargo(&[
                "test",
                "--release",
                "-p",
                "ipcraft",
                "--test",
                "ten_million",
            ])
            .run(root, deadline)?;
            soak::bounded(root, deadline)?;
        }
        "examples" => {
            cargo(&["build", "--workspace", "--examples", "--all-features"]).run(root, deadline)?
        }
        "doc" => cargo(&["doc", "--workspace", "--no-deps", "--all-features"])
            .env(
                "RUSTDOCFLAGS",
                workspace::extend_flags("RUSTDOCFLAGS", "-D warnings"),
            )
            .run(root, deadline)?,
        "loom" => return loom::run(root, step.timeout),
        "miri" => return miri::run(root, step.timeout),
        "unsafe-report" => unsafe_report::report(root, false)?,
        "bench" => bench::quick(root, deadline)?,
        other => unreachable!("no step named {other}"),
    }
    Ok(Outcome::Passed)
}

/// What `--skip` asked for, checked against the step names.
fn parse_skips(args: &[String]) -> Result<Vec<String>> {
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let name = match arg.as_str() {
            "--skip" => it
                .next()
                .ok_or_else(|| Error::usage("--skip needs a step name"))?
                .clone(),
            a if a.starts_with("--skip=") => a["--skip=".len()..].to_owned(),
            other => return Err(Error::usage(format!("ci: unknown option `{other}`"))),
        };
        if !STEPS.iter().any(|s| s.name == name) {
            let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
            return Err(Error::usage(format!(
                "ci: no step named `{name}`; the steps are: {}",
                names.join(", ")
            )));
        }
        skips.push(name);
    }
    Ok(skips)
}

/// A step's line in the summary.
struct Row {
    name: &'static str,
    result: String,
    time: Option<Duration>,
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn summary(rows: &[Row], total: Duration) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::from("\nxtask ci summary:\n");
    for row in rows {
        let time = row.time.map(seconds).unwrap_or_default();
        let _ = writeln!(out, "  {:<width$}  {:>8}  {}", row.name, time, row.result);
    }
    let _ = writeln!(out, "  {:<width$}  {:>8}", "total", seconds(total));
    out
}

/// `cargo xtask ci [--skip <step>]...`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let skips = parse_skips(args)?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let (mut passed, mut failure) = (0, None);
    for step in STEPS {
        if skips.iter().any(|s| s == step.name) {
            if failure.is_none() {
                println!("SKIPPED: {} (--skip)", step.name);
            }
            rows.push(Row {
                name: step.name,
                result: "SKIPPED (--skip)".to_owned(),
                time: None,
            });
            continue;
        }
        if failure.is_some() {
            rows.push(Row {
                name: step.name,
                result: "not run".to_owned(),
                time: None,
            });
            continue;
        }
        println!("==> {}", step.name);
        let step_started = Instant::now();
        let outcome = run_step(root, step);
        let time = step_started.elapsed();
        let result = match outcome {
            Ok(Outcome::Passed) => {
                passed += 1;
                "ok".to_owned()
            }
            Ok(Outcome::Note(note)) => {
                passed += 1;
                format!("ok ({note})")
            }
            Ok(Outcome::Skipped(reason)) => format!("SKIPPED ({reason})"),
            Err(err) => {
                eprintln!("{err}");
                let result = format!("FAILED (exit {})", err.code);
                failure = Some((step.name, err.code));
                result
            }
        };
        println!("{}: {result} ({})", step.name, seconds(time));
        rows.push(Row {
            name: step.name,
            result,
            time: Some(time),
        });
    }
    print!("{}", summary(&rows, started.elapsed()));
    let skipped: Vec<&str> = rows
        .iter()
        .filter(|r| r.result.starts_with("SKIPPED"))
        .map(|r| r.name)
        .collect();
    if !skipped.is_empty() {
        println!("xtask ci: SKIPPED steps: {}", skipped.join(", "));
    }
    match failure {
        None => {
            println!("xtask ci: {passed} passed, 0 failed");
            Ok(())
        }
        Some((name, code)) => {
            eprintln!("xtask ci: step {name} failed (exit {code})");
            println!("xtask ci: {passed} passed, 1 failed");
            Err(Error::silent(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn skips_are_checked() {
        let skips = parse_skips(&strings(&["--skip", "miri", "--skip=bench"])).unwrap();
        assert_eq!(skips, ["miri", "bench"]);
        assert!(parse_skips(&strings(&["--skip", "nope"])).is_err());
        assert!(parse_skips(&strings(&["--skip"])).is_err());
        assert!(parse_skips(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn summary_lists_every_step() {
        let rows = [
            Row {
                name: "fmt",
                result: "ok".into(),
                time: Some(Duration::from_millis(1234)),
            },
            Row {
                name: "unsafe-report",
                result: "not run".into(),
                time: None,
            },
        ];
        let text = summary(&rows, Duration::from_secs(2));
        assert!(text.contains("\n  fmt                1.2s  ok\n"), "{text}");
        assert!(
            text.contains("  unsafe-report            not run\n"),
            "{text}"
        );
        assert!(text.contains("\n  total              2.0s\n"), "{text}");
    }
}
