//! `cargo xtask soak`: builds the kill -9 soak driver (crate `ipcraft-soak`) in release mode
//! and runs it; `cargo xtask ci` runs its self-test and a bounded run.

use crate::Result;
use crate::cmd::Cmd;
use std::path::Path;
use std::time::Instant;

/// The length of the bounded run in `cargo xtask ci`, in minutes (with the self-test and
/// the build, about two minutes on the project's 2-core machine).
pub const CI_MINUTES: &str = "1.5";

/// `cargo run --release --quiet -p ipcraft-soak -- <args>`.
fn soak_cmd<S: AsRef<str>>(args: &[S]) -> Cmd {
    Cmd::cargo()
        .args(["run", "--release", "--quiet", "-p", "ipcraft-soak", "--"])
        .args(args.iter().map(|a| a.as_ref().to_owned()))
}

/// What `cargo xtask ci` runs: the self-test (every counter must count), then a bounded
/// soak of every mechanism (every count must be zero).
pub fn bounded(root: &Path, deadline: Option<Instant>) -> Result<()> {
    soak_cmd(&["--self-test"]).run(root, deadline)?;
    soak_cmd(&["--minutes", CI_MINUTES]).run(root, deadline)
}

/// `cargo xtask soak [<args>...]`: every argument goes to the driver unchanged
/// (`--minutes M`, `--seed S`, `--only a,b`, `--no-channel-restarts`, `--self-test`).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    soak_cmd(args).run(root, None)
}
