//! `cargo xtask`: ipcraft's automation, in plain Rust so that it runs wherever cargo does.
//!
//! `cargo xtask ci` is the one gate (green locally means green in CI); `cargo xtask bench` runs the
//! two-process benchmarks. See [`USAGE`] for every subcommand and what it runs.
#![forbid(unsafe_code)]

mod bench;
mod ci;
mod cmd;
mod loom;
mod miri;
mod soak;
mod unsafe_report;
mod workspace;

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

/// The text of `cargo xtask help`.
const USAGE: &str = "\
cargo xtask <command> [options]: ipcraft's automation

Commands:
  ci [--skip <step>]...   the one gate, in order (the first failure stops it):
                            fmt            cargo fmt --all --check
                            clippy         cargo clippy --workspace --all-targets --all-features
                                           -- -D warnings
                            test           cargo test --workspace --all-features (unit,
                                           integration, doc tests)
                            features       the library crates alone without features (clippy,
                                           tests), the facade with its defaults (tests) and
                                           with none (clippy): a feature cannot hide a break
                            soak           cargo test --release -p ipcraft --test ten_million
                                           (10M messages through the channel, SPSC and MPSC),
                                           then cargo xtask soak --self-test and
                                           cargo xtask soak --minutes 1.5 (kill -9 soak)
                            examples       cargo build --workspace --examples --all-features
                            doc            cargo doc --workspace --no-deps --all-features
                                           (RUSTDOCFLAGS=-D warnings)
                            loom           cargo xtask loom
                            miri           cargo xtask miri
                            unsafe-report  cargo xtask unsafe-report
                            bench          cargo xtask bench --quick
                          --skip <step> leaves a step out (local use only; it is reported loudly).
                          Ends with a table of step times and `xtask ci: N passed, M failed`.
  loom [--timeout-secs N] the loom model-checking tests of every crate whose Cargo.toml has a
                          `[target.'cfg(ipcraft_loom)'...]` table: for each,
                          RUSTFLAGS=\"--cfg ipcraft_loom\" LOOM_MAX_PREEMPTIONS=2
                          cargo test --release -p <crate> --lib, in target/loom (default 900 s in all)
  miri [--timeout-secs N] the pure-memory tests under Miri: cargo +nightly miri test with
                          MIRIFLAGS=-Zmiri-strict-provenance, in target/miri (default 600 s in all).
                          Tries to install Miri if missing; prints `SKIPPED: miri unavailable` if it
                          cannot.
  unsafe-report [--markdown]
                          per crate: forbid(unsafe_code) or not, the files that opt in with
                          #![allow(unsafe_code)], counts of unsafe blocks/fns/impls. Fails if an
                          unsafe block or impl has no `// SAFETY:` comment, an unsafe fn no
                          `# Safety` doc section, or a file with unsafe code no #![allow(unsafe_code)].
  bench [--update-readme [--no-run]] [<args>...]
                          cargo run --release -p ipcraft-bench -- <args>: the two-process benchmarks
                          (its options: --quick, --json, --markdown, --runs N, --filter A,B). --update-readme runs
                          it with --markdown, puts the full table in BENCHMARKS.md between
                          <!-- bench:start --> and <!-- bench:end -->, and its summary in README.md between
                          <!-- bench-summary:start --> and <!-- bench-summary:end -->; with --no-run it
                          re-derives both from the table already in BENCHMARKS.md, without running.
  soak [--minutes M] [--seed S] [--only a,b] [--no-channel-restarts] [--self-test]
                          cargo run --release -p ipcraft-soak -- <args>: the kill -9 soak. For
                          each mechanism (pipe frames, Unix stream/datagram/seqpacket with fd
                          passing, mqueue, shm open_or_create races, mutex+condvar, channel SPSC
                          and MPSC), rounds of producer and consumer processes, a random one
                          SIGKILLed and replaced; prints one table (rounds, kills, messages, lost,
                          duplicated, reordered, corrupted, hung, leaked, errors) and fails
                          unless every failure count is zero (default 2 minutes; --minutes 10
                          before a release). --self-test injects faults and fails unless every
                          counter counts. A killed channel receiver is replaced by takeover and a
                          killed sender by slot reuse (--no-channel-restarts: not replaced).
  help                    this text
";

/// Why a command failed: a message for the user and the exit code to report.
#[derive(Debug)]
pub struct Error {
    /// What went wrong, in one or a few lines.
    pub message: String,
    /// The exit code: the failed child's, 124 for a timeout, 127 when a program could not be
    /// started, 2 for bad usage, otherwise 1.
    pub code: i32,
    /// Whether to print the usage text with it (bad command line).
    pub show_usage: bool,
}

impl Error {
    /// An error with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_code(message, 1)
    }

    /// An error with the given exit code.
    pub fn with_code(message: impl Into<String>, code: i32) -> Self {
        Self {
            message: message.into(),
            code,
            show_usage: false,
        }
    }

    /// Bad command-line usage (exit code 2): the usage text is printed with it.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            show_usage: true,
            ..Self::with_code(message, 2)
        }
    }

    /// A failure already reported on the terminal: only the exit code is left to give.
    pub fn silent(code: i32) -> Self {
        Self::with_code(String::new(), code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of every xtask operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses `--timeout-secs N` (the only option of `loom` and `miri`), or returns the default.
fn parse_timeout(args: &[String], default: Duration) -> Result<Duration> {
    let mut timeout = default;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = match arg.as_str() {
            "--timeout-secs" => it
                .next()
                .ok_or_else(|| Error::usage("--timeout-secs needs a number of seconds"))?
                .as_str(),
            a if a.starts_with("--timeout-secs=") => &a["--timeout-secs=".len()..],
            other => return Err(Error::usage(format!("unknown option `{other}`"))),
        };
        let secs: u64 = value.parse().map_err(|_| {
            Error::usage(format!(
                "--timeout-secs: `{value}` is not a number of seconds"
            ))
        })?;
        timeout = Duration::from_secs(secs);
    }
    Ok(timeout)
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    // `--help` anywhere (except after `bench`, whose arguments belong to the bench binary).
    if command != "bench" && command != "soak" && rest.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let root = workspace::root()?;
    match command.as_str() {
        "ci" => ci::run(&root, rest),
        "loom" => loom::run(&root, parse_timeout(rest, loom::DEFAULT_TIMEOUT)?).map(drop),
        "miri" => miri::run(&root, parse_timeout(rest, miri::DEFAULT_TIMEOUT)?).map(drop),
        "unsafe-report" => unsafe_report::run(&root, rest),
        "bench" => bench::run(&root, rest),
        "soak" => soak::run(&root, rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Error::usage(format!("unknown command `{other}`"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err.show_usage {
                eprintln!("{USAGE}");
            }
            if !err.message.is_empty() {
                eprintln!("xtask: {err}");
            }
            ExitCode::from(u8::try_from(err.code.clamp(1, 255)).unwrap_or(1))
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
    fn timeout_option() {
        let d = Duration::from_secs(7);
        assert_eq!(parse_timeout(&[], d).unwrap(), d);
        let args = strings(&["--timeout-secs", "30"]);
        assert_eq!(parse_timeout(&args, d).unwrap(), Duration::from_secs(30));
        let args = strings(&["--timeout-secs=5"]);
        assert_eq!(parse_timeout(&args, d).unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_timeout(&strings(&["--timeout-secs"]), d)
                .unwrap_err()
                .code,
            2
        );
        assert_eq!(
            parse_timeout(&strings(&["--timeout-secs", "x"]), d)
                .unwrap_err()
                .code,
            2
        );
        assert_eq!(parse_timeout(&strings(&["--fast"]), d).unwrap_err().code, 2);
    }
}
