//! `cargo xtask unsafe-report`: where the unsafe code is, and whether each site says why it is
//! sound.
//!
//! The scanner is a small lexer, not a parser: it splits every line into its code (with the
//! contents of string and char literals blanked) and its comment text, then finds the `unsafe`
//! keyword in the code. That is enough to ignore `unsafe` in comments, doc comments and strings,
//! and to find the comment block right above a site.

use crate::cmd::Cmd;
use crate::workspace;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// How far up from a site the scanner looks for its note, in lines.
const MAX_LOOKBACK: usize = 25;

/// What an `unsafe` keyword introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `unsafe { .. }`: needs a `// SAFETY:` comment.
    Block,
    /// `unsafe fn` (also `unsafe extern "C" fn`): needs a `# Safety` doc section.
    Fn,
    /// `unsafe impl`: needs a `// SAFETY:` comment.
    Impl,
    /// `unsafe extern { .. }`: needs a `// SAFETY:` comment.
    Extern,
    /// `unsafe trait`: needs a `# Safety` doc section.
    Trait,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Block => "unsafe block",
            Kind::Fn => "unsafe function",
            Kind::Impl => "unsafe trait implementation",
            Kind::Extern => "unsafe `extern` block",
            Kind::Trait => "unsafe trait",
        }
    }

    /// Whether the note is a `# Safety` doc section (the caller's contract) rather than a
    /// `// SAFETY:` comment (why this use is sound).
    fn needs_doc_section(self) -> bool {
        matches!(self, Kind::Fn | Kind::Trait)
    }
}

/// One `unsafe` site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// What it is.
    pub kind: Kind,
    /// 1-based line of the `unsafe` keyword.
    pub line: usize,
    /// Whether its note is there.
    pub documented: bool,
}

/// What the scanner found in one file.
#[derive(Debug, Default)]
pub struct FileScan {
    /// `#![allow(unsafe_code)]` (or `expect`) among its inner attributes.
    pub allows_unsafe: bool,
    /// `#![forbid(unsafe_code)]` among its inner attributes.
    pub forbids_unsafe: bool,
    /// Every unsafe site, in order.
    pub sites: Vec<Site>,
}

/// One source line split by the lexer.
#[derive(Debug, Default, Clone)]
struct Line {
    /// The code, with comments removed and literal contents blanked (`"..."` becomes `""`).
    code: String,
    /// The comment text on this line, markers included (`// SAFETY: ..`, `/// # Safety`).
    comment: String,
    /// Whether that comment is a doc comment (`///`, `/** */`, `//!`, `/*! */`).
    doc: bool,
}

impl Line {
    fn is_comment_only(&self) -> bool {
        self.code.trim().is_empty() && !self.comment.trim().is_empty()
    }

    fn is_attribute(&self) -> bool {
        let code = self.code.trim_start();
        code.starts_with("#[") || code.starts_with("#![")
    }

    fn has_safety_comment(&self) -> bool {
        self.comment.contains("SAFETY:")
    }

    fn has_safety_section(&self) -> bool {
        self.doc
            && self
                .comment
                .trim_start_matches(|c: char| c == '/' || c == '*' || c == '!' || c.is_whitespace())
                .starts_with("# Safety")
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits `source` into lines of code and comment text.
fn lex(source: &str) -> Vec<Line> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        LineComment,
        /// Nesting depth of `/* */`.
        BlockComment(usize),
        /// Inside `"..."`.
        Str,
        /// Inside `r##"..."##`, with its number of hashes.
        RawStr(usize),
    }
    let chars: Vec<char> = source.chars().collect();
    let mut lines = vec![Line::default()];
    let mut state = State::Code;
    // Whether the block comment being read is a doc comment (carried to its next lines).
    let mut block_doc = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let line = lines.last_mut().expect("never empty");
        if c == '\n' {
            if state == State::LineComment {
                state = State::Code;
            }
            let doc = matches!(state, State::BlockComment(_)) && block_doc;
            lines.push(Line {
                doc,
                ..Line::default()
            });
            i += 1;
            continue;
        }
        match state {
            State::Code => {
                if c == '/' && next == Some('/') {
                    state = State::LineComment;
                    let third = chars.get(i + 2).copied();
                    let fourth = chars.get(i + 3).copied();
                    line.doc = (third == Some('/') && fourth != Some('/')) || third == Some('!');
                    line.comment.push_str("//");
                    i += 2;
                } else if c == '/' && next == Some('*') {
                    state = State::BlockComment(1);
                    let third = chars.get(i + 2).copied();
                    let fourth = chars.get(i + 3).copied();
                    block_doc = (third == Some('*') && fourth != Some('*') && fourth != Some('/'))
                        || third == Some('!');
                    line.doc |= block_doc;
                    line.comment.push_str("/*");
                    i += 2;
                } else if c == '"' {
                    state = State::Str;
                    line.code.push('"');
                    i += 1;
                } else if let Some(hashes) = raw_string_start(&chars, i) {
                    // `r"`, `r#"`, `br"`, `cr"`: the prefix letters are already in the code.
                    state = State::RawStr(hashes);
                    line.code.push('"');
                    i += 1 + hashes + 1;
                } else if c == '\'' {
                    i += skip_char_literal(&chars, i, &mut line.code);
                } else {
                    line.code.push(c);
                    i += 1;
                }
            }
            State::LineComment => {
                line.comment.push(c);
                i += 1;
            }
            State::BlockComment(depth) => {
                if c == '*' && next == Some('/') {
                    line.comment.push_str("*/");
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::BlockComment(depth - 1)
                    };
                    i += 2;
                } else if c == '/' && next == Some('*') {
                    line.comment.push_str("/*");
                    state = State::BlockComment(depth + 1);
                    i += 2;
                } else {
                    line.comment.push(c);
                    i += 1;
                }
            }
            State::Str => {
                if c == '\\' {
                    i += 2; // the escaped character, even `\"` or `\\`
                } else {
                    if c == '"' {
                        line.code.push('"');
                        state = State::Code;
                    }
                    i += 1;
                }
            }
            State::RawStr(hashes) => {
                let closes = c == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#'));
                if closes {
                    line.code.push('"');
                    state = State::Code;
                    i += 1 + hashes;
                } else {
                    i += 1;
                }
            }
        }
    }
    lines
}

/// If a raw string starts at `i` (`r"`, `r#"` .. with the `r` at `i`, not inside an identifier
/// other than the `b`/`c` prefixes), the number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != 'r' {
        return None;
    }
    let before = |k: usize| i.checked_sub(k).map(|j| chars[j]);
    let starts_token = match before(1) {
        None => true,
        Some('b' | 'c') => !before(2).is_some_and(is_ident_char),
        Some(p) => !is_ident_char(p),
    };
    if !starts_token {
        return None;
    }
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(j - i - 1)
}

/// At a `'`: a char literal (`'a'`, `'\n'`, `'\u{1F600}'`, `'"'`) is copied as `''`; a
/// lifetime or label keeps its `'`. Returns how many chars were consumed.
fn skip_char_literal(chars: &[char], i: usize, code: &mut String) -> usize {
    let at = |k: usize| chars.get(i + k).copied();
    if at(1) == Some('\\') {
        // Escaped: runs to the next `'` (on this line).
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' && chars[j] != '\n' {
            j += 1;
        }
        if chars.get(j) == Some(&'\'') {
            code.push_str("''");
            return j + 1 - i;
        }
    } else if at(2) == Some('\'') && at(1).is_some_and(|c| c != '\n') {
        code.push_str("''");
        return 3;
    }
    code.push('\'');
    1
}

/// The code of all lines joined with `\n`, and the offset (in chars) where each line starts.
fn joined_code(lines: &[Line]) -> (Vec<char>, Vec<usize>) {
    let mut code = Vec::new();
    let mut starts = Vec::with_capacity(lines.len());
    for line in lines {
        starts.push(code.len());
        code.extend(line.code.chars());
        code.push('\n');
    }
    (code, starts)
}

fn skip_whitespace(code: &[char], mut i: usize) -> usize {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The identifier starting at `i` (empty if none).
fn word_at(code: &[char], i: usize) -> String {
    code[i.min(code.len())..]
        .iter()
        .take_while(|c| is_ident_char(**c))
        .collect()
}

/// What the `unsafe` keyword ending just before `i` introduces; `None` for what is not a site
/// (`unsafe fn(..)` pointer types, `#[unsafe(no_mangle)]`).
fn classify(code: &[char], i: usize) -> Option<Kind> {
    let i = skip_whitespace(code, i);
    match code.get(i)? {
        '{' => return Some(Kind::Block),
        '(' => return None,
        _ => {}
    }
    let word = word_at(code, i);
    let after = skip_whitespace(code, i + word.chars().count());
    match word.as_str() {
        "impl" => Some(Kind::Impl),
        "trait" => Some(Kind::Trait),
        "fn" => (code.get(after) != Some(&'(')).then_some(Kind::Fn),
        "extern" => {
            // Skip the ABI string, blanked to `""` by the lexer.
            let mut j = after;
            if code.get(j) == Some(&'"') {
                j = skip_whitespace(code, j + 2);
            }
            match code.get(j)? {
                '{' => Some(Kind::Extern),
                _ if word_at(code, j) == "fn" => {
                    let k = skip_whitespace(code, j + 2);
                    (code.get(k) != Some(&'(')).then_some(Kind::Fn)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether an inner attribute `#![<level>(..)]` in the code names the lint `unsafe_code`.
fn has_inner_lint(code: &[char], levels: &[&str]) -> bool {
    let text: String = code.iter().collect();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#!") {
        rest = &rest[at + 2..];
        let attr = rest.trim_start();
        let Some(attr) = attr.strip_prefix('[') else {
            continue;
        };
        let attr = attr.trim_start();
        let level = attr
            .chars()
            .take_while(|c| is_ident_char(*c))
            .collect::<String>();
        if !levels.contains(&level.as_str()) {
            continue;
        }
        let body = &attr[level.len()..];
        let body = &body[..body.find(']').unwrap_or(body.len())];
        if body
            .split(|c: char| !is_ident_char(c))
            .any(|w| w == "unsafe_code")
        {
            return true;
        }
    }
    false
}

/// Whether the site on line `index` (0-based) has its note on its own line or in the comment
/// block right above it. Above a site, the scan goes through comments, attributes, and the
/// opening lines of the statement that contains the site (ending in `(`, `[`, `=` or `,`); it
/// stops at a blank line or any other code.
fn documented(lines: &[Line], index: usize, kind: Kind) -> bool {
    let found = |line: &Line| {
        if kind.needs_doc_section() {
            line.has_safety_section()
        } else {
            line.has_safety_comment()
        }
    };
    if found(&lines[index]) {
        return true;
    }
    for line in lines[..index].iter().rev().take(MAX_LOOKBACK) {
        let code = line.code.trim_end();
        let opens_statement = !kind.needs_doc_section()
            && (code.ends_with('(')
                || code.ends_with('[')
                || code.ends_with('=')
                || code.ends_with(','));
        if !(line.is_comment_only() || line.is_attribute() || opens_statement) {
            // A blank line or other code ends the block: a note further up is someone else's.
            return false;
        }
        if found(line) {
            return true;
        }
    }
    false
}

/// Scans one file's source.
pub fn scan(source: &str) -> FileScan {
    let lines = lex(source);
    let (code, starts) = joined_code(&lines);
    let mut sites = Vec::new();
    let keyword: Vec<char> = "unsafe".chars().collect();
    let mut i = 0;
    while i + keyword.len() <= code.len() {
        let is_keyword = code[i..i + keyword.len()] == keyword[..]
            && (i == 0 || !is_ident_char(code[i - 1]))
            && !code
                .get(i + keyword.len())
                .is_some_and(|c| is_ident_char(*c));
        if is_keyword {
            if let Some(kind) = classify(&code, i + keyword.len()) {
                // The line whose start is the last one at or before `i`.
                let index = starts.partition_point(|&s| s <= i) - 1;
                sites.push(Site {
                    kind,
                    line: index + 1,
                    documented: documented(&lines, index, kind),
                });
            }
            i += keyword.len();
        } else {
            i += 1;
        }
    }
    FileScan {
        allows_unsafe: has_inner_lint(&code, &["allow", "expect"]),
        forbids_unsafe: has_inner_lint(&code, &["forbid"]),
        sites,
    }
}

/// One crate's line in the report.
#[derive(Debug, Default)]
struct CrateRow {
    /// Package name (folder name if it has no manifest).
    name: String,
    /// Root files (`src/lib.rs`, `src/main.rs`) and whether each forbids unsafe code.
    roots: Vec<(String, bool)>,
    /// Files with `#![allow(unsafe_code)]`, relative to the crate folder.
    allow_files: Vec<String>,
    /// Site counts by kind.
    counts: BTreeMap<Kind, usize>,
}

impl CrateRow {
    fn forbid(&self) -> String {
        let forbidding: Vec<&str> = self
            .roots
            .iter()
            .filter(|(_, f)| *f)
            .map(|(p, _)| p.trim_start_matches("src/"))
            .collect();
        if self.roots.is_empty() {
            "-".to_owned()
        } else if forbidding.len() == self.roots.len() {
            "yes".to_owned()
        } else if forbidding.is_empty() {
            "no".to_owned()
        } else {
            format!("{} only", forbidding.join(", "))
        }
    }

    fn count(&self, kind: Kind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    fn cells(&self) -> Vec<String> {
        let allow = if self.allow_files.is_empty() {
            "-".to_owned()
        } else {
            self.allow_files.join(", ")
        };
        let mut cells = vec![self.name.clone(), self.forbid(), allow];
        cells.extend(KINDS.iter().map(|&k| self.count(k).to_string()));
        cells
    }
}

const KINDS: [Kind; 5] = [Kind::Block, Kind::Fn, Kind::Impl, Kind::Extern, Kind::Trait];
const HEADERS: [&str; 8] = [
    "crate",
    "forbid(unsafe_code)",
    "files with allow(unsafe_code)",
    "unsafe blocks",
    "unsafe fns",
    "unsafe impls",
    "extern blocks",
    "unsafe traits",
];

/// The whole report: the table and every problem found.
#[derive(Debug, Default)]
struct Report {
    rows: Vec<CrateRow>,
    problems: Vec<String>,
    files: usize,
}

fn build(root: &Path, files: &[String]) -> Result<Report> {
    let names: BTreeMap<String, String> = workspace::crates(root)?
        .into_iter()
        .map(|c| (c.dir, c.name))
        .collect();
    let mut rows: BTreeMap<String, CrateRow> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        let source = fs::read_to_string(root.join(file))
            .map_err(|e| Error::new(format!("cannot read {file}: {e}")))?;
        let scan = scan(&source);
        let (dir, in_crate) = file.split_once('/').unwrap_or((".", file.as_str()));
        let row = rows.entry(dir.to_owned()).or_insert_with(|| CrateRow {
            name: names.get(dir).cloned().unwrap_or_else(|| dir.to_owned()),
            ..CrateRow::default()
        });
        if in_crate == "src/lib.rs" || in_crate == "src/main.rs" {
            row.roots.push((in_crate.to_owned(), scan.forbids_unsafe));
        }
        if scan.allows_unsafe {
            row.allow_files.push(in_crate.to_owned());
        }
        for site in &scan.sites {
            *row.counts.entry(site.kind).or_default() += 1;
            if !site.documented {
                let note = if site.kind.needs_doc_section() {
                    "a `# Safety` section in its doc comment"
                } else {
                    "a `// SAFETY:` comment right above it or on its line"
                };
                problems.push(format!(
                    "{file}:{}: {} without {note}",
                    site.line,
                    site.kind.describe()
                ));
            }
        }
        if !scan.sites.is_empty() && !scan.allows_unsafe {
            problems.push(format!(
                "{file}:{}: has unsafe code ({} sites) but no `#![allow(unsafe_code)]` at its top \
                 (the workspace denies unsafe_code, so the compiler refuses it too)",
                scan.sites[0].line,
                scan.sites.len()
            ));
        }
    }
    Ok(Report {
        rows: rows.into_values().collect(),
        problems,
        files: files.len(),
    })
}

fn plain_table(rows: &[CrateRow]) -> String {
    let body: Vec<Vec<String>> = rows.iter().map(CrateRow::cells).collect();
    let headers = [
        "crate",
        "forbid",
        "allow(unsafe_code) in",
        "blocks",
        "fns",
        "impls",
        "extern",
        "traits",
    ];
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            body.iter()
                .map(|r| r[c].len())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&headers.map(str::to_owned));
    for row in &body {
        line(row);
    }
    out
}

fn markdown_table(rows: &[CrateRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        [
            "---|", ":---:|", "---|", "---:|", "---:|", "---:|", "---:|", "---:|"
        ]
        .concat()
    );
    for row in rows {
        let mut cells = row.cells();
        cells[0] = format!("`{}`", cells[0]);
        if !row.allow_files.is_empty() {
            cells[2] = row
                .allow_files
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// `cargo xtask unsafe-report [--markdown]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut markdown = false;
    for arg in args {
        match arg.as_str() {
            "--markdown" => markdown = true,
            other => return Err(Error::usage(format!("unknown option `{other}`"))),
        }
    }
    report(root, markdown)
}

/// Prints the report; fails if any site lacks its note.
pub fn report(root: &Path, markdown: bool) -> Result<()> {
    let listing = Cmd::new("git")
        .args(["ls-files", "-z", "--", "*.rs"])
        .probe(root, Duration::from_secs(60));
    let files: Vec<String> = match listing {
        (true, out) => out
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        (false, out) => {
            return Err(Error::new(format!(
                "unsafe-report: `git ls-files` failed: {}",
                out.trim()
            )));
        }
    };
    if files.is_empty() {
        return Err(Error::new("unsafe-report: git tracks no .rs file"));
    }
    let report = build(root, &files)?;
    if markdown {
        print!("{}", markdown_table(&report.rows));
    } else {
        println!("unsafe report ({} tracked .rs files):", report.files);
        print!("{}", plain_table(&report.rows));
    }
    let total: usize = report
        .rows
        .iter()
        .map(|r| r.counts.values().sum::<usize>())
        .sum();
    if report.problems.is_empty() {
        eprintln!("unsafe-report: {total} unsafe sites, every one documented");
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    Err(Error::new(format!(
        "unsafe-report: {} problems in {total} unsafe sites (listed above)",
        report.problems.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test sources spell the keyword `UNSAFE` so that no scanner (ours or the independent
    /// `unsafe-audit`) mistakes this file's string literals for real sites.
    fn scan_src(src: &str) -> FileScan {
        scan(&src.replace("UNSAFE", "unsafe"))
    }

    fn kinds(src: &str) -> Vec<(Kind, usize, bool)> {
        scan_src(src)
            .sites
            .into_iter()
            .map(|s| (s.kind, s.line, s.documented))
            .collect()
    }

    #[test]
    fn ignores_comments_strings_and_identifiers() {
        let src = r####"
// an UNSAFE { in a comment
/// docs: UNSAFE fn f() and UNSAFE impl
/* block UNSAFE { /* nested UNSAFE { */ still UNSAFE { */
let s = "UNSAFE { \" UNSAFE fn";
let r = r#"UNSAFE { "quoted" UNSAFE impl"#;
let b = br"UNSAFE {";
let c = '"'; let d = '\''; let e: &'static str = "UNSAFE {";
let multi = "line one
UNSAFE { inside a multi-line string";
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
fn not_unsafe_fn() {}
#[UNSAFE(no_mangle)]
type F = UNSAFE fn(u8);
type G = UNSAFE extern "C" fn(u8);
"####;
        assert_eq!(kinds(src), vec![]);
        let scan = scan_src(src);
        assert!(scan.forbids_unsafe);
        assert!(!scan.allows_unsafe);
    }

    #[test]
    fn finds_every_kind() {
        let src = r#"#![allow(unsafe_code)]
// SAFETY: fine
let a = UNSAFE { f() };
/// Does things.
///
/// # Safety
/// The caller keeps `p` alive.
pub UNSAFE fn g(p: *const u8) {}
// SAFETY: Foo holds no thread-bound state.
UNSAFE impl Send for Foo {}
// SAFETY: the signatures match libc's.
UNSAFE extern "C" {
    /// # Safety
    /// As in C.
    pub UNSAFE fn h();
}
/// # Safety
/// Implementors promise.
pub UNSAFE trait T {}
/// # Safety
/// C ABI.
pub UNSAFE extern "C" fn k() {}
"#;
        assert_eq!(
            kinds(src),
            vec![
                (Kind::Block, 3, true),
                (Kind::Fn, 8, true),
                (Kind::Impl, 10, true),
                (Kind::Extern, 12, true),
                (Kind::Fn, 15, true),
                (Kind::Trait, 19, true),
                (Kind::Fn, 22, true),
            ]
        );
        assert!(scan_src(src).allows_unsafe);
    }

    #[test]
    fn flags_missing_notes() {
        let src = "
let a = UNSAFE { f() };
/// Docs without the section.
UNSAFE fn g() {}
// A comment that does not say why.
UNSAFE impl Sync for Foo {}
// SAFETY: for the statement above, not this one.
let x = 1;
let y = UNSAFE { g() };
// SAFETY: separated by a blank line.

let z = UNSAFE { g() };
// SAFETY: a `// SAFETY:` comment is not a `# Safety` section.
UNSAFE fn h() {}
let v = UNSAFE { f() }; // SAFETY: for this line only.
let w = UNSAFE { f() };
";
        assert_eq!(
            kinds(src),
            vec![
                (Kind::Block, 2, false),
                (Kind::Fn, 4, false),
                (Kind::Impl, 6, false),
                (Kind::Block, 9, false),
                (Kind::Block, 12, false),
                (Kind::Fn, 14, false),
                (Kind::Block, 15, true),
                (Kind::Block, 16, false),
            ]
        );
    }

    #[test]
    fn accepts_notes_above_the_statement_and_on_the_line() {
        let src = "
let a = UNSAFE { f() }; // SAFETY: on the same line.
// SAFETY:
// - one bullet per precondition,
// - each naming who upholds it.
#[allow(clippy::multiple_unsafe_ops_per_block)]
let b = UNSAFE { f() };
// SAFETY: above the statement that holds the block.
let c = call(
    x,
    UNSAFE { f() },
);
// SAFETY: above an assignment split over lines.
let d =
    UNSAFE { f() };
/* SAFETY: in a block comment. */
let e = UNSAFE { f() };
/// Docs.
///
/// # Safety
///
/// Rules.
#[inline]
#[must_use]
UNSAFE fn g() {}
";
        let found = kinds(src);
        assert_eq!(found.len(), 6);
        assert!(found.iter().all(|s| s.2), "{found:?}");
    }

    #[test]
    fn a_block_in_a_documented_function_needs_its_own_note() {
        let src = "
// SAFETY: about the function, not its body.
fn f() {
    UNSAFE { g() }
}
";
        assert_eq!(kinds(src), vec![(Kind::Block, 4, false)]);
    }

    #[test]
    fn finds_keywords_split_over_lines_and_several_per_line() {
        let src = "// SAFETY: both.\nlet a = (UNSAFE { f() }, UNSAFE { g() });\nlet b = UNSAFE\n{ f() };\n";
        assert_eq!(
            kinds(src),
            vec![
                (Kind::Block, 2, true),
                (Kind::Block, 2, true),
                (Kind::Block, 3, false)
            ]
        );
    }

    #[test]
    fn lints_in_lists_and_expect() {
        assert!(scan("#![allow(missing_docs, unsafe_code)]\n").allows_unsafe);
        assert!(scan("#![expect(unsafe_code)]\n").allows_unsafe);
        assert!(scan("#![forbid(unsafe_code, missing_docs)]").forbids_unsafe);
        assert!(!scan("// #![allow(unsafe_code)]\n").allows_unsafe);
        assert!(!scan("#![allow(unsafe_op_in_unsafe_fn)]\n").allows_unsafe);
        assert!(!scan("#[allow(unsafe_code)]\nmod sys;\n").allows_unsafe);
    }

    #[test]
    fn lifetimes_and_chars_do_not_open_literals() {
        // If `'a` opened a char literal, the rest of the line would be swallowed.
        let src = "fn f<'a>(x: &'a u8) -> char { let _ = UNSAFE { g() }; 'x' }\n";
        assert_eq!(kinds(src), vec![(Kind::Block, 1, false)]);
        let src = "let q = '\\u{1F600}'; let r = UNSAFE { g() };\n";
        assert_eq!(kinds(src), vec![(Kind::Block, 1, false)]);
        let src = "'outer: loop { break 'outer; } UNSAFE { g() }\n";
        assert_eq!(kinds(src), vec![(Kind::Block, 1, false)]);
    }

    #[test]
    fn lexes_doc_comments() {
        let lines = lex(
            "/// doc\n//// not doc\n// plain\n//! inner doc\n/** block\n * # Safety\n */\n/* plain */",
        );
        let docs: Vec<bool> = lines.iter().map(|l| l.doc).collect();
        assert_eq!(
            docs,
            vec![true, false, false, true, true, true, true, false]
        );
        assert!(lines[5].has_safety_section());
    }

    #[test]
    fn tables() {
        let mut counts = BTreeMap::new();
        counts.insert(Kind::Block, 3);
        counts.insert(Kind::Impl, 1);
        let rows = vec![
            CrateRow {
                name: "ipcraft-core".into(),
                roots: vec![("src/lib.rs".into(), true)],
                ..CrateRow::default()
            },
            CrateRow {
                name: "ipcraft-bench".into(),
                roots: vec![("src/lib.rs".into(), true), ("src/main.rs".into(), false)],
                allow_files: vec!["src/sys.rs".into()],
                counts,
            },
        ];
        let md = markdown_table(&rows);
        assert!(
            md.contains("| `ipcraft-core` | yes | - | 0 | 0 | 0 | 0 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| `ipcraft-bench` | lib.rs only | `src/sys.rs` | 3 | 0 | 1 | 0 | 0 |"),
            "{md}"
        );
        let plain = plain_table(&rows);
        assert!(
            plain
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("ipcraft-bench  lib.rs only"),
            "{plain}"
        );
    }
}
