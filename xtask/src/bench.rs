//! `cargo xtask bench`: builds the benchmark harness (crate `ipcraft-bench`) in release mode and
//! runs it, optionally putting its full table into `BENCHMARKS.md` and a summary of the same
//! run (each mechanism's best figures beside raw's and the limits) into `README.md`.

use crate::cmd::Cmd;
use crate::{Error, Result};
use std::fs;
use std::path::Path;
use std::time::Instant;

/// The `BENCHMARKS.md` line after which the full benchmark table goes.
pub const START: &str = "<!-- bench:start -->";
/// The `BENCHMARKS.md` line before which the full benchmark table ends.
pub const END: &str = "<!-- bench:end -->";
/// The `README.md` line after which the summary goes.
pub const SUMMARY_START: &str = "<!-- bench-summary:start -->";
/// The `README.md` line before which the summary ends.
pub const SUMMARY_END: &str = "<!-- bench-summary:end -->";
/// The file that holds the full table.
pub const FULL_FILE: &str = "BENCHMARKS.md";

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

/// `cargo xtask bench [--update-readme [--no-run]] [<args>...]`: every other argument goes to
/// the bench binary unchanged. `--update-readme` writes the full table into `BENCHMARKS.md`
/// and its summary into `README.md`; with `--no-run` it re-derives both from the table already
/// in `BENCHMARKS.md` (after a change to the summary's rules) instead of running the bench.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let update = args.iter().any(|a| a == "--update-readme");
    let no_run = args.iter().any(|a| a == "--no-run");
    let mut pass: Vec<String> = args
        .iter()
        .filter(|a| *a != "--update-readme" && *a != "--no-run")
        .cloned()
        .collect();
    if no_run && !update {
        return Err(Error::new("--no-run only goes with --update-readme"));
    }
    if !update {
        return bench_cmd(&pass).run(root, None);
    }
    let full_path = root.join(FULL_FILE);
    let readme_path = root.join("README.md");
    // Check the markers before a long run, not after.
    let full = read(&full_path)?;
    let current = between_markers(&full, START, END, FULL_FILE)?.to_owned();
    replace_between(
        &read(&readme_path)?,
        SUMMARY_START,
        SUMMARY_END,
        "README.md",
        "",
    )?;
    let table = if no_run {
        current
    } else {
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
                "the bench printed no table on stdout; BENCHMARKS.md and README.md left unchanged",
            ));
        }
        print!("{table}");
        table
    };
    let summary = summarize(&table)?;
    // Read again: the files may have been edited during the run.
    let full = replace_between(&read(&full_path)?, START, END, FULL_FILE, &table)?;
    write(&full_path, &full)?;
    let readme = replace_between(
        &read(&readme_path)?,
        SUMMARY_START,
        SUMMARY_END,
        "README.md",
        &summary,
    )?;
    write(&readme_path, &readme)?;
    eprintln!(
        "{FULL_FILE}: full table updated between {START} and {END}; README.md: summary updated \
         between {SUMMARY_START} and {SUMMARY_END}"
    );
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

fn markers_missing(file: &str, start: &str, end: &str) -> Error {
    Error::new(format!(
        "{file} has no {start} ... {end} markers: add a line `{start}` and, below it, a line \
         `{end}` where the generated text goes"
    ))
}

/// The text between the `start` and `end` markers of `text` (without the newlines next to
/// them).
fn between_markers<'a>(text: &'a str, start: &str, end: &str, file: &str) -> Result<&'a str> {
    let from = text
        .find(start)
        .ok_or_else(|| markers_missing(file, start, end))?
        + start.len();
    let to = from
        + text[from..]
            .find(end)
            .ok_or_else(|| markers_missing(file, start, end))?;
    Ok(text[from..to].trim_matches('\n'))
}

/// `text` with everything between the `start` and `end` markers replaced by `body`.
fn replace_between(text: &str, start: &str, end: &str, file: &str, body: &str) -> Result<String> {
    let from = text
        .find(start)
        .ok_or_else(|| markers_missing(file, start, end))?
        + start.len();
    let to = from
        + text[from..]
            .find(end)
            .ok_or_else(|| markers_missing(file, start, end))?;
    let body = body.trim_matches('\n');
    let body = if body.is_empty() {
        "\n".to_owned()
    } else {
        format!("\n{body}\n")
    };
    Ok(format!("{}{body}{}", &text[..from], &text[to..]))
}

/// One row of the bench's markdown table.
#[derive(Debug, Clone)]
struct Row {
    mechanism: String,
    imp: String,
    placement: String,
    size: String,
    p50: String,
    mbps: String,
    msgs: String,
}

/// The rows of the bench's table (header, separator and notes skipped).
fn rows(table: &str) -> Vec<Row> {
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            if cells.len() != 9 || cells[0] == "mechanism" || cells[0].starts_with("---") {
                return None;
            }
            Some(Row {
                mechanism: cells[0].to_owned(),
                imp: cells[1].to_owned(),
                placement: cells[2].to_owned(),
                size: cells[3].to_owned(),
                p50: cells[4].to_owned(),
                mbps: cells[6].to_owned(),
                msgs: cells[7].to_owned(),
            })
        })
        .collect()
}

/// The median of a cell (`2.75 us [2.70-2.79]` is `2.75 us`); `None` for `-`.
fn median(cell: &str) -> Option<&str> {
    let m = cell.split(" [").next()?.trim();
    (m != "-" && !m.is_empty()).then_some(m)
}

/// A duration cell's median in nanoseconds.
fn nanos(cell: &str) -> Option<f64> {
    let m = median(cell)?;
    let (num, unit) = m.split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "ns" => n,
        "us" => n * 1e3,
        "ms" => n * 1e6,
        "s" => n * 1e9,
        _ => return None,
    })
}

/// A rate cell's median as a number (`31.7 M` is 31.7e6, `3005` is 3005).
fn rate(cell: &str) -> Option<f64> {
    let m = median(cell)?;
    let (num, scale) = match m.split_once(' ') {
        Some((n, "k")) => (n, 1e3),
        Some((n, "M")) => (n, 1e6),
        Some((n, "G")) => (n, 1e9),
        Some(_) => return None,
        None => (m, 1.0),
    };
    Some(num.parse::<f64>().ok()? * scale)
}

/// The summary: per mechanism, in the table's order, its best 64 B round trip (lowest p50)
/// and its best throughput (highest MB/s, or msgs/s where there is no MB/s), each beside the
/// raw baseline's figure for the same size and placement; the limits last, as measured.
fn summarize(table: &str) -> Result<String> {
    let all = rows(table);
    if all.is_empty() {
        return Err(Error::new(
            "no rows in the benchmark table: nothing to summarize",
        ));
    }
    let mut order: Vec<&str> = Vec::new();
    for r in &all {
        if !order.contains(&r.mechanism.as_str()) {
            order.push(&r.mechanism);
        }
    }
    let raw_of = |r: &Row, pick: fn(&Row) -> &str| -> String {
        all.iter()
            .find(|o| {
                o.imp == "raw"
                    && o.mechanism == r.mechanism
                    && o.placement == r.placement
                    && o.size == r.size
                    && !pick(o).is_empty()
                    && median(pick(o)).is_some()
            })
            .and_then(|o| median(pick(o)))
            .unwrap_or("-")
            .to_owned()
    };
    let mut out = String::from(
        "| mechanism | best 64 B round trip (p50) | raw | best throughput | raw |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut limits = String::new();
    for mech in order {
        let mine: Vec<&Row> = all
            .iter()
            .filter(|r| r.mechanism == mech && r.imp != "raw")
            .collect();
        let latency = mine
            .iter()
            .filter(|r| nanos(&r.p50).is_some())
            .min_by(|a, b| {
                nanos(&a.p50)
                    .partial_cmp(&nanos(&b.p50))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let by_mb = mine
            .iter()
            .filter(|r| rate(&r.mbps).is_some())
            .max_by(|a, b| {
                rate(&a.mbps)
                    .partial_cmp(&rate(&b.mbps))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let by_msgs = mine
            .iter()
            .filter(|r| rate(&r.msgs).is_some())
            .max_by(|a, b| {
                rate(&a.msgs)
                    .partial_cmp(&rate(&b.msgs))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let (lat, lat_raw) = match latency {
            Some(r) => (
                format!("{} ({})", median(&r.p50).unwrap_or("-"), r.placement),
                raw_of(r, |o| &o.p50),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let (thr, thr_raw) = match (by_mb, by_msgs) {
            (Some(r), _) => (
                format!(
                    "{} MB/s ({}, {})",
                    median(&r.mbps).unwrap_or("-"),
                    r.size,
                    r.placement
                ),
                raw_of(r, |o| &o.mbps),
            ),
            (None, Some(r)) => (
                format!("{} ops/s ({})", median(&r.msgs).unwrap_or("-"), r.placement),
                raw_of(r, |o| &o.msgs),
            ),
            (None, None) => ("-".to_owned(), "-".to_owned()),
        };
        let is_limit = mine.iter().all(|r| r.imp == "limit");
        let thr_raw = if thr_raw == "-" || is_limit {
            thr_raw
        } else if by_mb.is_some() {
            format!("{thr_raw} MB/s")
        } else {
            format!("{thr_raw} ops/s")
        };
        let line = if is_limit {
            format!("| limit: {mech} | {lat} | | {thr} | |\n")
        } else {
            format!("| {mech} | {lat} | {lat_raw} | {thr} | {thr_raw} |\n")
        };
        if is_limit {
            limits.push_str(&line);
        } else {
            out.push_str(&line);
        }
    }
    out.push_str(&limits);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_between_the_markers() {
        let readme = format!("# ipcraft\n\n{START}\nold table\n{END}\n\nmore\n");
        let new = replace_between(&readme, START, END, "f", "| a | b |\n|---|---|\n").unwrap();
        assert_eq!(
            new,
            format!("# ipcraft\n\n{START}\n| a | b |\n|---|---|\n{END}\n\nmore\n")
        );
        // Idempotent.
        assert_eq!(
            replace_between(&new, START, END, "f", "| a | b |\n|---|---|").unwrap(),
            new
        );
        assert_eq!(
            between_markers(&new, START, END, "f").unwrap(),
            "| a | b |\n|---|---|"
        );
        let empty = format!("{START}{END}");
        assert_eq!(
            replace_between(&empty, START, END, "f", "t").unwrap(),
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
            let err = replace_between(&text, START, END, "BENCHMARKS.md", "t").unwrap_err();
            assert!(err.message.contains("marker"), "{}", err.message);
            assert!(err.message.contains("BENCHMARKS.md"), "{}", err.message);
        }
    }

    const TABLE: &str = "\
Measured on 2 CPUs.

| mechanism | impl | placement | size | p50 | p99 | MB/s | msgs/s | ipcraft/raw |
|---|---|---|---:|---:|---:|---:|---:|---:|
| cacheline | limit | cross | 64 B | 100 ns [90.0-410] | 130 ns [121-631] | - | - | - |
| memcpy | limit | same | 4 KiB | - | - | 103370 [100582-126916] | 25.2 M [24.6-31.0] | - |
| pipe | raw | cross | 64 B | 44.8 us [42.7-56.6] | 55.8 us [53.7-69.4] | - | - | - |
| pipe | ipcraft | cross | 64 B | 44.4 us [43.1-56.1] | 55.0 us [52.2-70.1] | - | - | 1.00 [0.98-1.02] |
| pipe | raw | same | 64 B | 4.08 us [3.97-4.27] | 4.62 us [4.46-5.61] | - | - | - |
| pipe | ipcraft | same | 64 B | 4.15 us [4.04-4.20] | 4.73 us [4.61-5.77] | - | - | 1.02 [0.98-1.02] |
| pipe | raw | cross | 4 KiB | - | - | 10745 [2763-11307] | 2.62 M [0.67-2.76] | - |
| pipe | ipcraft | cross | 4 KiB | - | - | 10137 [2802-11022] | 2.47 M [0.68-2.69] | 1.01 [0.90-1.03] |
| pipe | ipcraft | same | 64 KiB | - | - | 4913 [4860-5088] | 75.0 k [74.2-77.6] | 1.00 [0.99-1.00] |
| mutex-uncontended | raw | same | - | - | - | - | 73.6 M [72.3-74.6] | - |
| mutex-uncontended | ipcraft | same | - | - | - | - | 73.7 M [72.0-74.4] | 1.00 [1.00-1.01] |
| channel | ipcraft | cross | 64 B | 150 ns [150-151] | 220 ns [210-220] | - | - | - |

- a note | with a bar
";

    #[test]
    fn the_summary_takes_each_mechanisms_best_figures_beside_raw_and_the_limits_last() {
        let s = summarize(TABLE).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[2],
            "| pipe | 4.15 us (same) | 4.08 us | 10137 MB/s (4 KiB, cross) | 10745 MB/s |"
        );
        assert_eq!(
            lines[3],
            "| mutex-uncontended | - | - | 73.7 M ops/s (same) | 73.6 M ops/s |"
        );
        assert_eq!(lines[4], "| channel | 150 ns (cross) | - | - | - |");
        assert_eq!(lines[5], "| limit: cacheline | 100 ns (cross) | | - | |");
        assert_eq!(
            lines[6],
            "| limit: memcpy | - | | 103370 MB/s (4 KiB, same) | |"
        );
        assert_eq!(lines.len(), 7);
        assert!(summarize("no table").is_err());
    }
}
