//! The results: rows with the median and spread of every metric, printed as a text table,
//! a Markdown table, or JSON lines.

use std::fmt::Write as _;

use crate::harness::{Impl, Kind, Placement, Sample};
use crate::stats::Spread;

/// One row of the table: one (mechanism, impl, placement, test) over every run.
#[derive(Debug, Clone)]
pub struct Row {
    /// The mechanism.
    pub mechanism: &'static str,
    /// Whose code.
    pub imp: Impl,
    /// Where the processes ran.
    pub placement: Placement,
    /// Latency or throughput.
    pub kind: Kind,
    /// Message size in bytes.
    pub size: usize,
    /// One entry per run, in run order; `None` for a run that failed.
    pub samples: Vec<Option<Sample>>,
}

/// The four metrics, each as median and spread over the runs where it applies.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Round-trip p50, ns.
    pub p50_ns: Option<Spread>,
    /// Round-trip p99, ns.
    pub p99_ns: Option<Spread>,
    /// MB/s (10^6 bytes per second).
    pub mb_s: Option<Spread>,
    /// Messages per second.
    pub msgs_s: Option<Spread>,
}

impl Row {
    /// The samples of the runs that succeeded.
    fn ok(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().flatten()
    }

    /// Number of runs that succeeded.
    pub fn runs_ok(&self) -> usize {
        self.ok().count()
    }

    /// Median and spread of each metric.
    pub fn metrics(&self) -> Metrics {
        let of = |f: fn(&Sample) -> Option<f64>| {
            Spread::of(&self.ok().filter_map(f).collect::<Vec<_>>())
        };
        Metrics {
            p50_ns: of(Sample::p50_ns),
            p99_ns: of(Sample::p99_ns),
            mb_s: of(Sample::mb_per_s),
            msgs_s: of(Sample::msgs_per_s),
        }
    }

    /// Whether `other` is the same measurement by another implementation.
    fn same_test(&self, other: &Row) -> bool {
        self.mechanism == other.mechanism
            && self.placement == other.placement
            && self.kind == other.kind
            && self.size == other.size
    }

    /// The metric the ratio compares: p50 for latency, messages/s for throughput.
    fn ratio_metric(&self, s: &Sample) -> Option<f64> {
        match self.kind {
            Kind::Latency => s.p50_ns(),
            Kind::Throughput => s.msgs_per_s(),
        }
    }

    /// For an ipcraft row, ipcraft / raw per run (runs pair up: they ran interleaved), as
    /// median and spread; `None` for other rows or when no run has both.
    pub fn ratio(&self, rows: &[Row]) -> Option<Spread> {
        if self.imp != Impl::Ipcraft {
            return None;
        }
        let raw = rows
            .iter()
            .find(|r| r.imp == Impl::Raw && r.same_test(self))?;
        let ratios: Vec<f64> = self
            .samples
            .iter()
            .zip(&raw.samples)
            .filter_map(|(a, b)| {
                let (a, b) = (
                    self.ratio_metric(a.as_ref()?)?,
                    raw.ratio_metric(b.as_ref()?)?,
                );
                (b > 0.0).then(|| a / b)
            })
            .collect();
        Spread::of(&ratios)
    }
}

/// Sort rows for display: by mechanism (in `order`), then latency before throughput, then
/// placement, size, and impl (limit, raw, ipcraft: so each ipcraft row follows its raw row).
pub fn sort(rows: &mut [Row], order: &[&str]) {
    let pos = |m: &str| order.iter().position(|o| *o == m).unwrap_or(usize::MAX);
    rows.sort_by_key(|r| (pos(r.mechanism), r.kind, r.placement, r.size, r.imp));
}

/// `64 B`, `4 KiB`, `64 KiB`, ...; `-` for 0 (no message: the sync rows).
pub fn fmt_size(n: usize) -> String {
    if n == 0 {
        "-".into()
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// `x` with three significant digits (no exponent; large numbers keep all their digits).
fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// `median unit [min-max]`, all divided by `div`; without the bracket when min == max.
fn fmt_spread(s: Spread, div: f64, unit: &str) -> String {
    let mut out = sig3(s.median / div);
    if !unit.is_empty() {
        out.push(' ');
        out.push_str(unit);
    }
    if s.min != s.max {
        let _ = write!(out, " [{}-{}]", sig3(s.min / div), sig3(s.max / div));
    }
    out
}

/// A time in ns, in ns, us or ms by the size of its median.
fn fmt_time(s: Spread) -> String {
    match s.median {
        m if m < 1e3 => fmt_spread(s, 1.0, "ns"),
        m if m < 1e6 => fmt_spread(s, 1e3, "us"),
        _ => fmt_spread(s, 1e6, "ms"),
    }
}

/// A rate, scaled to k or M by the size of its median.
fn fmt_rate(s: Spread) -> String {
    match s.median {
        m if m >= 1e6 => fmt_spread(s, 1e6, "M"),
        m if m >= 1e3 => fmt_spread(s, 1e3, "k"),
        _ => fmt_spread(s, 1.0, ""),
    }
}

/// The column headers.
const HEADERS: [&str; 9] = [
    "mechanism",
    "impl",
    "placement",
    "size",
    "p50",
    "p99",
    "MB/s",
    "msgs/s",
    "ipcraft/raw",
];

/// The cells of `row` (in `rows`, for its ratio).
fn cells(row: &Row, rows: &[Row]) -> [String; 9] {
    let m = row.metrics();
    let opt = |s: Option<Spread>, f: fn(Spread) -> String| s.map_or_else(|| "-".into(), f);
    let failed = row.runs_ok() == 0;
    [
        row.mechanism.into(),
        row.imp.as_str().into(),
        row.placement.as_str().into(),
        fmt_size(row.size),
        if failed {
            "FAILED".into()
        } else {
            opt(m.p50_ns, fmt_time)
        },
        opt(m.p99_ns, fmt_time),
        opt(m.mb_s, |s| fmt_spread(s, 1.0, "")),
        opt(m.msgs_s, fmt_rate),
        opt(row.ratio(rows), |s| fmt_spread(s, 1.0, "")),
    ]
}

/// The plain-text table, columns aligned (text left, numbers right).
pub fn text_table(rows: &[Row]) -> String {
    let body: Vec<[String; 9]> = rows.iter().map(|r| cells(r, rows)).collect();
    let mut width = HEADERS.map(str::len);
    for line in &body {
        for (w, c) in width.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut emit = |line: &[String]| {
        let mut text = String::new();
        for (i, (c, w)) in line.iter().zip(width).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i < 4 {
                let _ = write!(text, "{c:<w$}");
            } else {
                let _ = write!(text, "{c:>w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    emit(&HEADERS.map(String::from));
    emit(&width.map(|w| "-".repeat(w)));
    for line in &body {
        emit(line);
    }
    out
}

/// The Markdown table.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(out, "| {} |", cells(r, rows).join(" | "));
    }
    out
}

/// A JSON number, or `null`.
fn json_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "null".into(),
    }
}

/// `"key":value` pairs of the four metrics, picking median, min or max with `pick`.
fn json_metrics(m: &Metrics, pick: fn(Spread) -> f64) -> String {
    format!(
        "\"latency_p50_ns\":{},\"latency_p99_ns\":{},\"throughput_mb_s\":{},\"msgs_per_s\":{}",
        json_num(m.p50_ns.map(pick), 0),
        json_num(m.p99_ns.map(pick), 0),
        json_num(m.mb_s.map(pick), 1),
        json_num(m.msgs_s.map(pick), 0),
    )
}

/// A JSON string literal (escapes quotes, backslashes and control characters).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON object for `row`, on one line: `mechanism`, `impl`, `placement`, `size` and the
/// four metrics (medians; `null` where a metric does not apply or every run failed), then
/// `runs` (runs that succeeded) and `min`/`max` objects with the same four metrics.
pub fn json_line(row: &Row) -> String {
    let m = row.metrics();
    format!(
        "{{\"mechanism\":{},\"impl\":{},\"placement\":{},\"size\":{},{},\"runs\":{},\"min\":{{{}}},\"max\":{{{}}}}}",
        json_str(row.mechanism),
        json_str(row.imp.as_str()),
        json_str(row.placement.as_str()),
        row.size,
        json_metrics(&m, |s| s.median),
        row.runs_ok(),
        json_metrics(&m, |s| s.min),
        json_metrics(&m, |s| s.max),
    )
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (proleptic Gregorian, UTC).
pub fn civil_date(days_since_epoch: i64) -> String {
    // Howard Hinnant's days_from_civil, inverted.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: u64, p99: u64) -> Option<Sample> {
        Some(Sample::Latency {
            p50_ns: p50,
            p99_ns: p99,
        })
    }

    fn thr(msgs: u64, secs: f64) -> Option<Sample> {
        Some(Sample::Throughput {
            bytes: msgs * 64,
            msgs,
            secs,
        })
    }

    fn row(imp: Impl, kind: Kind, samples: Vec<Option<Sample>>) -> Row {
        Row {
            mechanism: "pipe",
            imp,
            placement: Placement::Same,
            kind,
            size: 64,
            samples,
        }
    }

    #[test]
    fn json_line_has_exactly_the_keys_in_order() {
        let r = row(
            Impl::Raw,
            Kind::Latency,
            vec![lat(1000, 3000), lat(2000, 5000), lat(1500, 4000)],
        );
        assert_eq!(
            json_line(&r),
            "{\"mechanism\":\"pipe\",\"impl\":\"raw\",\"placement\":\"same\",\"size\":64,\
             \"latency_p50_ns\":1500,\"latency_p99_ns\":4000,\"throughput_mb_s\":null,\"msgs_per_s\":null,\
             \"runs\":3,\
             \"min\":{\"latency_p50_ns\":1000,\"latency_p99_ns\":3000,\"throughput_mb_s\":null,\"msgs_per_s\":null},\
             \"max\":{\"latency_p50_ns\":2000,\"latency_p99_ns\":5000,\"throughput_mb_s\":null,\"msgs_per_s\":null}}"
        );
    }

    #[test]
    fn json_line_of_a_throughput_row_and_of_a_failed_row() {
        let r = row(Impl::Ipcraft, Kind::Throughput, vec![thr(1_000_000, 0.5)]);
        let line = json_line(&r);
        assert!(line.starts_with(
            "{\"mechanism\":\"pipe\",\"impl\":\"ipcraft\",\"placement\":\"same\",\"size\":64,\
             \"latency_p50_ns\":null,\"latency_p99_ns\":null,\"throughput_mb_s\":128.0,\"msgs_per_s\":2000000,\
             \"runs\":1,"
        ), "{line}");
        let failed = row(Impl::Raw, Kind::Throughput, vec![None, None]);
        assert!(json_line(&failed).contains(
            "\"latency_p50_ns\":null,\"latency_p99_ns\":null,\"throughput_mb_s\":null,\"msgs_per_s\":null,\"runs\":0"
        ));
        assert!(!json_line(&failed).contains('\n'));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn ratio_pairs_runs_and_uses_p50_or_msgs() {
        let raw = row(
            Impl::Raw,
            Kind::Latency,
            vec![lat(100, 0), lat(200, 0), lat(100, 0)],
        );
        let ipc = row(
            Impl::Ipcraft,
            Kind::Latency,
            vec![lat(110, 0), None, lat(120, 0)],
        );
        let rows = [raw.clone(), ipc.clone()];
        let r = ipc.ratio(&rows).unwrap();
        assert!(
            (r.min - 1.1).abs() < 1e-9 && (r.max - 1.2).abs() < 1e-9,
            "{r:?}"
        );
        assert_eq!(raw.ratio(&rows), None);

        let raw = row(Impl::Raw, Kind::Throughput, vec![thr(1000, 1.0)]);
        let ipc = row(Impl::Ipcraft, Kind::Throughput, vec![thr(900, 1.0)]);
        let r = ipc.ratio(&[raw, ipc.clone()]).unwrap();
        assert!((r.median - 0.9).abs() < 1e-9);
    }

    #[test]
    fn sorting_puts_raw_before_ipcraft() {
        let mut rows = vec![
            row(Impl::Ipcraft, Kind::Throughput, vec![]),
            row(Impl::Raw, Kind::Throughput, vec![]),
            row(Impl::Ipcraft, Kind::Latency, vec![]),
            row(Impl::Raw, Kind::Latency, vec![]),
        ];
        sort(&mut rows, &["pipe"]);
        let order: Vec<_> = rows.iter().map(|r| (r.kind, r.imp)).collect();
        assert_eq!(
            order,
            [
                (Kind::Latency, Impl::Raw),
                (Kind::Latency, Impl::Ipcraft),
                (Kind::Throughput, Impl::Raw),
                (Kind::Throughput, Impl::Ipcraft)
            ]
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_size(64), "64 B");
        assert_eq!(fmt_size(4096), "4 KiB");
        assert_eq!(fmt_size(65536), "64 KiB");
        let s = Spread::of(&[45_200.0, 44_000.0, 51_000.0]).unwrap();
        assert_eq!(fmt_time(s), "45.2 us [44.0-51.0]");
        let s = Spread::of(&[812.0]).unwrap();
        assert_eq!(fmt_time(s), "812 ns");
        let s = Spread::of(&[1_234_567.0, 1_000_000.0]).unwrap();
        assert_eq!(fmt_rate(s), "1.12 M [1.00-1.23]");
    }

    #[test]
    fn tables_have_a_line_per_row() {
        let rows = vec![
            row(Impl::Raw, Kind::Latency, vec![lat(100, 200)]),
            row(Impl::Ipcraft, Kind::Latency, vec![lat(105, 210)]),
        ];
        let text = text_table(&rows);
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().nth(3).unwrap().ends_with("1.05"), "{text}");
        let md = markdown_table(&rows);
        assert_eq!(md.lines().count(), 4);
        assert!(md.lines().all(|l| l.starts_with('|') && l.ends_with('|')));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(19_723), "2024-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
    }
}
