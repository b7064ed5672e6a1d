//! The binary end to end: real parent and child processes, `--quick`, checking the output's
//! shape (never a timing).

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_ipcraft-bench");

/// The value of `"key":` in a JSON line as written by the bench (flat, no nested quotes).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

#[test]
#[cfg_attr(miri, ignore)]
fn quick_json_has_one_line_per_row_with_every_key() {
    let out = Command::new(EXE)
        .args([
            "--quick",
            "--runs",
            "1",
            "--json",
            "--filter",
            "pipe-framed/",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let placements = if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
        2
    } else {
        1
    };
    // pipe-framed/raw and pipe-framed/ipcraft: 1 latency + 3 throughput rows per placement.
    assert_eq!(lines.len(), 2 * 4 * placements, "{stdout}");
    let keys = [
        "mechanism",
        "impl",
        "placement",
        "size",
        "latency_p50_ns",
        "latency_p99_ns",
        "throughput_mb_s",
        "msgs_per_s",
    ];
    for line in &lines {
        assert!(
            line.starts_with("{\"mechanism\":") && line.ends_with('}'),
            "{line}"
        );
        for k in keys {
            assert!(field(line, k).is_some(), "{k} missing in {line}");
        }
        assert_eq!(field(line, "mechanism"), Some("pipe-framed"));
        assert!(matches!(field(line, "impl"), Some("raw" | "ipcraft")));
        assert!(matches!(field(line, "placement"), Some("cross" | "same")));
        assert_eq!(field(line, "runs"), Some("1"), "{line}");
        let latency = field(line, "latency_p50_ns") != Some("null");
        let throughput = field(line, "msgs_per_s") != Some("null");
        assert!(latency != throughput, "exactly one kind of metric: {line}");
    }
    // Progress went to stderr, one line per measurement.
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("[run 1/1]"))
            .count(),
        lines.len()
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn quick_table_lists_the_limit_rows_and_notes() {
    let out = Command::new(EXE)
        .args(["--quick", "--runs", "1", "--filter", "/limit"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("mechanism"), "{stdout}");
    assert!(stdout.contains("cacheline-yield  limit"), "{stdout}");
    assert!(stdout.matches("memcpy").count() >= 3, "{stdout}");
    assert!(stdout.contains("- ipcraft/raw:"), "{stdout}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn quick_sync_rows_pair_raw_with_ipcraft() {
    let out = Command::new(EXE)
        .args(["--quick", "--runs", "1", "--json", "--filter", "mutex-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let placements = if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
        2
    } else {
        1
    };
    // Uncontended: one process, `same` only; handoff: every placement; raw and ipcraft each;
    // for both kinds of ipcraft mutex (pthread: `mutex-*`, futex: `mutex-futex-*`).
    assert_eq!(lines.len(), 2 * 2 * (1 + placements), "{stdout}");
    for line in &lines {
        assert_eq!(field(line, "size"), Some("0"), "{line}");
        assert_eq!(field(line, "throughput_mb_s"), Some("null"), "{line}");
        let uncontended = field(line, "mechanism").is_some_and(|m| m.ends_with("-uncontended"));
        assert_eq!(
            field(line, "msgs_per_s") != Some("null"),
            uncontended,
            "{line}"
        );
        assert_eq!(
            field(line, "latency_p50_ns") != Some("null"),
            !uncontended,
            "{line}"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn bad_arguments_are_refused() {
    let out = Command::new(EXE).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = Command::new(EXE)
        .args(["--child", "nope/raw", "--cpu", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
