//! `cargo xtask miri`: the pure-memory tests under Miri, with strict provenance.

use crate::ci::Outcome;
use crate::cmd::Cmd;
use crate::workspace;
use crate::{Error, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The test suites Miri runs: (package, arguments after `cargo miri test -p <package>`).
///
/// A crate adds itself here once the tests it selects touch only memory: tests that make
/// system calls are `#[cfg_attr(miri, ignore)]`, and proptests use few cases under `cfg(miri)`.
pub const SUITES: &[(&str, &[&str])] = &[
    ("ipcraft-core", &["--lib"]),
    // Bounds checks, typed copies, atomics and header validation, on heap memory.
    ("ipcraft-shm", &["--lib"]),
    // The ring, its proptest against a VecDeque model and hostile-peer tests, on heap memory
    // (the channel's heap tests run below, in STRONG_MEMORY_SUITES).
    ("ipcraft", &["--lib", "--", "--skip", "channel::heap_tests"]),
    // Error texts and the RLIMIT_MSGQUEUE arithmetic (the /proc read is ignored under Miri).
    ("ipcraft-mqueue", &["--lib"]),
    // The futex mutex's and the semaphore's word protocols against every word a peer may
    // write (liveness as a closure, deadlines already passed: no system call), layouts.
    ("ipcraft-sync", &["--lib"]),
];

/// Suites Miri runs without its weak-memory emulation (`-Zmiri-disable-weak-memory-emulation`):
/// single-threaded tests of code that writes a location with a plain copy (`memcpy`) after
/// atomic accesses to it, as the channel does legitimately (a ring word is a commit word in
/// one lap and payload in the next). Miri's store-buffer emulation panics on that (an
/// internal error, "cannot have empty store buffer when previous write was atomic"), and
/// adds nothing to a single-threaded test.
pub const STRONG_MEMORY_SUITES: &[(&str, &[&str])] = &[
    // The channel's SharedRegion copies and atomics, a sender ring with the journal and the
    // restart protocol, on heap memory standing in for the mapping.
    ("ipcraft", &["--lib", "channel::heap_tests"]),
];

/// The default bound on the whole Miri run (setup and every suite): the pure-memory suites
/// should take a few minutes; this keeps a runaway one inside CI's 20-minute budget.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The bound on installing Miri when it is missing.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// `cargo +nightly`: through rustup's proxy, so not `$CARGO` (that is the stable cargo running
/// xtask), and without the variables that would pin the nested tools to that toolchain.
fn nightly_cargo() -> Cmd {
    Cmd::new("cargo")
        .arg("+nightly")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
}

/// Miri's version line, installing it first if needed; the reason it is unavailable otherwise.
fn ensure_miri(root: &Path) -> Result<String, String> {
    let version = || {
        nightly_cargo()
            .args(["miri", "--version"])
            .probe(root, Duration::from_secs(120))
    };
    let (ok, out) = version();
    if ok {
        return Ok(out.trim().to_owned());
    }
    let first = first_line(&out);
    eprintln!("miri: `cargo +nightly miri --version` failed ({first}); trying to install it");
    let install = Cmd::new("rustup")
        .args([
            "component",
            "add",
            "--toolchain",
            "nightly",
            "miri",
            "rust-src",
        ])
        .run(root, Some(Instant::now() + INSTALL_TIMEOUT));
    if let Err(e) = install {
        return Err(format!("{first}; and {e}"));
    }
    match version() {
        (true, out) => Ok(out.trim().to_owned()),
        (false, out) => Err(first_line(&out)),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    line.unwrap_or("no output").to_owned()
}

/// Runs `cargo +nightly miri setup`, then every suite in [`SUITES`], in `target/miri`, all within
/// `timeout`. If Miri is unavailable, prints `SKIPPED: miri unavailable (<reason>)` and succeeds.
pub fn run(root: &Path, timeout: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let version = match ensure_miri(root) {
        Ok(version) => version,
        Err(reason) => {
            println!("SKIPPED: miri unavailable ({reason})");
            return Ok(Outcome::Skipped(format!("miri unavailable: {reason}")));
        }
    };
    println!("miri: {version} (bounded to {}s in all)", timeout.as_secs());
    let target = workspace::target_dir(root, "miri");
    let fail = |e: Error| Error::with_code(format!("miri: {e}"), e.code);
    nightly_cargo()
        .args(["miri", "setup"])
        .env("CARGO_TARGET_DIR", &target)
        .run(root, Some(deadline))
        .map_err(fail)?;
    let miriflags = workspace::extend_flags("MIRIFLAGS", "-Zmiri-strict-provenance");
    let strong = format!("{miriflags} -Zmiri-disable-weak-memory-emulation");
    let runs = SUITES
        .iter()
        .map(|suite| (suite, &miriflags))
        .chain(STRONG_MEMORY_SUITES.iter().map(|suite| (suite, &strong)));
    for ((package, args), flags) in runs {
        nightly_cargo()
            .args(["miri", "test", "-p", package])
            .args(*args)
            .env("MIRIFLAGS", flags)
            .env("CARGO_TARGET_DIR", &target)
            .run(root, Some(deadline))
            .map_err(fail)?;
    }
    let suites = SUITES.len() + STRONG_MEMORY_SUITES.len();
    Ok(Outcome::Note(format!("{suites} suites")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_names_a_workspace_crate() {
        let root = workspace::root().unwrap();
        let crates = workspace::crates(&root).unwrap();
        for (package, _) in SUITES.iter().chain(STRONG_MEMORY_SUITES) {
            assert!(
                crates.iter().any(|c| c.name == *package),
                "miri::SUITES names `{package}`, which is no crate of the workspace"
            );
        }
    }

    #[test]
    fn first_line_skips_blank_lines() {
        assert_eq!(first_line("\n  error: no miri\nmore"), "error: no miri");
        assert_eq!(first_line(""), "no output");
    }
}
