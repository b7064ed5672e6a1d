//! Kill points for crash tests. Not an API: hidden, and names and behaviour may change with
//! any release.
//!
//! A crate marks the steps of a protocol a process may die between (`stop_if(VAR, MARKER,
//! "locked")`); a test starts a child with `VAR=<step>`, waits for the line
//! `MARKER <step>` on its stdout, and kills it there. Only debug builds read the variable:
//! release builds compile every call to nothing.

/// In a debug build with `var` set to `step`: print `marker step` on stdout and stop here
/// for good (until killed). Otherwise nothing.
#[cfg(debug_assertions)]
pub fn stop_if(var: &str, marker: &str, step: &str) {
    if std::env::var_os(var).is_some_and(|s| s == step) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{marker} {step}");
        let _ = out.flush();
        drop(out);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn stop_if(_var: &str, _marker: &str, _step: &str) {}
