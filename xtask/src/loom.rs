//! `cargo xtask loom`: the loom model-checking tests of every crate that has them.

use crate::ci::Outcome;
use crate::cmd::Cmd;
use crate::workspace::{self, Crate};
use crate::{Error, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The default bound on the whole loom run (all crates together).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Whether a manifest has a target table gated on the loom cfg, such as
/// `[target.'cfg(ipcraft_loom)'.dev-dependencies]`: that is how a crate says it has loom tests.
fn has_loom_tests(manifest: &str) -> bool {
    manifest.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.contains("target.") && line.contains("ipcraft_loom") && line.contains("dependencies")
    })
}

/// Runs `cargo test --release -p <crate> --lib` with `--cfg ipcraft_loom` for each crate with loom
/// tests, in `target/loom`, all within `timeout`.
pub fn run(root: &Path, timeout: Duration) -> Result<Outcome> {
    let crates: Vec<Crate> = workspace::crates(root)?
        .into_iter()
        .filter(|c| has_loom_tests(&c.manifest))
        .collect();
    if crates.is_empty() {
        println!("loom: no crate has loom tests yet (nothing to run)");
        return Ok(Outcome::Note("no crate has loom tests yet".to_owned()));
    }
    let names: Vec<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    println!(
        "loom: {} (bounded to {}s in all)",
        names.join(", "),
        timeout.as_secs()
    );
    let deadline = Instant::now() + timeout;
    let rustflags = workspace::extend_flags("RUSTFLAGS", "--cfg ipcraft_loom");
    for name in &names {
        Cmd::cargo()
            .args(["test", "--release", "-p", name, "--lib"])
            .env("RUSTFLAGS", &rustflags)
            .env("LOOM_MAX_PREEMPTIONS", "2")
            .env("CARGO_TARGET_DIR", workspace::target_dir(root, "loom"))
            // It would take precedence over RUSTFLAGS.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .run(root, Some(deadline))
            .map_err(|e| Error::with_code(format!("loom: {e}"), e.code))?;
    }
    Ok(Outcome::Note(format!("{} crates", names.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_loom_table() {
        let with = "[package]\nname = \"ipcraft\"\n\n[target.'cfg(ipcraft_loom)'.dev-dependencies]\nloom.workspace = true\n";
        assert!(has_loom_tests(with));
        let quoted = "[target.\"cfg(ipcraft_loom)\".dependencies]\nloom = \"0.7\"\n";
        assert!(has_loom_tests(quoted));
        let commented = "[dev-dependencies]\n# [target.'cfg(ipcraft_loom)'.dev-dependencies]\n";
        assert!(!has_loom_tests(commented));
        let lints = "[lints.rust]\nunexpected_cfgs = { check-cfg = [\"cfg(ipcraft_loom)\"] }\n";
        assert!(!has_loom_tests(lints));
    }
}
