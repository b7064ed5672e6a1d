//! `cargo xtask bench`: builds the benchmark harness (crate `ipcraft-bench`) in release mode and
//! runs it, optionally putting its table into the README.

use crate::cmd::Cmd;
use crate::{Error, Result};
use std::fs;
use std::path::Path;
use std::time::Instant;

/// The README line after which the benchmark table goes.
pub const START: &str = "<!-- bench:start -->";
/// The README line before which the benchmark table ends.
pub const END: &str = "<!-- bench:end -->";

/// `cargo run --release --quiet -p ipcraft-bench -- <args>`.
fn bench_cmd(args: &[String]) -> Cmd {
    Cmd::cargo()
        .args(["run", "--release", "--quiet", "-p", "ipcraft-bench", "--"])
        .args(args)
}

/// The quick run that `cargo xtask ci` does, so the README's first command is exercised.
pub fn quick(root: &Path, deadline: Option<Instant>) -> Result<()> {
    bench_cmd(&["--quick".to_owned()]).run(root, deadline)
}

/// `cargo xtask bench [--update-readme] [<args>...]`: every argument but `--update-readme`
/// goes to the bench binary unchanged.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let update = args.iter().any(|a| a == "--update-readme");
    let mut pass: Vec<String> = args
        .iter()
        .filter(|a| *a != "--update-readme")
        .cloned()
        .collect();
    if !update {
        return bench_cmd(&pass).run(root, None);
    }
    let readme_path = root.join("README.md");
    let readme = fs::read_to_string(&readme_path)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", readme_path.display())))?;
    // Check the markers before a long run, not after.
    replace_between_markers(&readme, "")?;
    if !pass.iter().any(|a| a == "--markdown") {
        pass.push("--markdown".to_owned());
    }
    let shown = std::iter::once("cargo xtask bench --update-readme".to_owned())
        .chain(pass.iter().filter(|a| *a != "--markdown").cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let table = bench_cmd(&pass)
        .env("IPCRAFT_BENCH_COMMAND", shown)
        .stdout(root, None)?;
    if table.trim().is_empty() {
        return Err(Error::new(
            "the bench printed no table on stdout; README.md left unchanged",
        ));
    }
    print!("{table}");
    // Read again: the file may have been edited during the run.
    let readme = fs::read_to_string(&readme_path)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", readme_path.display())))?;
    let updated = replace_between_markers(&readme, &table)?;
    fs::write(&readme_path, updated)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", readme_path.display())))?;
    eprintln!("README.md: benchmark table updated between {START} and {END}");
    Ok(())
}

/// `text` with everything between the [`START`] and [`END`] markers replaced by `table`.
fn replace_between_markers(text: &str, table: &str) -> Result<String> {
    let missing = |what: &str| {
        Error::new(format!(
            "README.md has no {what} marker: add a line `{START}` and, below it, a line `{END}` \
             where the benchmark table goes"
        ))
    };
    let start = text.find(START).ok_or_else(|| missing(START))? + START.len();
    let end = start + text[start..].find(END).ok_or_else(|| missing(END))?;
    let table = table.trim_matches('\n');
    let body = if table.is_empty() {
        "\n".to_owned()
    } else {
        format!("\n{table}\n")
    };
    Ok(format!("{}{body}{}", &text[..start], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_between_the_markers() {
        let readme = format!("# ipcraft\n\n{START}\nold table\n{END}\n\nmore\n");
        let new = replace_between_markers(&readme, "| a | b |\n|---|---|\n").unwrap();
        assert_eq!(
            new,
            format!("# ipcraft\n\n{START}\n| a | b |\n|---|---|\n{END}\n\nmore\n")
        );
        // Idempotent.
        assert_eq!(
            replace_between_markers(&new, "| a | b |\n|---|---|").unwrap(),
            new
        );
        let empty = format!("{START}{END}");
        assert_eq!(
            replace_between_markers(&empty, "t").unwrap(),
            format!("{START}\nt\n{END}")
        );
    }

    #[test]
    fn missing_or_misordered_markers_are_errors() {
        for text in [
            String::from("no markers"),
            format!("{START} only"),
            format!("{END} then {START}"),
        ] {
            let err = replace_between_markers(&text, "t").unwrap_err();
            assert!(err.message.contains("marker"), "{}", err.message);
        }
    }
}
