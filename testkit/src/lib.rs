#![forbid(unsafe_code)]
//! Helpers for ipcraft's cross-process tests (dev-only, never published).
//!
//! A cross-process test here starts its children by re-running its own test binary with
//! `--exact child_role` and a *role* (and one argument) in the environment, never by a bare
//! `fork()` of the multi-threaded harness. The child's `child_role` test reads the role and
//! runs it; in the parent's own run it finds no role and does nothing. Children report
//! progress on stdout in marker lines (the harness prints its own lines there too).
//!
//! ```no_run
//! use ipcraft_testkit::{Roles, finish, wait_for};
//! use std::process::Stdio;
//!
//! const ROLES: Roles = Roles::new("IPCRAFT_EXAMPLE_TEST_ROLE", "IPCRAFT_EXAMPLE_TEST_ARG");
//! # fn main() {}
//!
//! /// The entry point of every child process; a no-op in the parent's own test run.
//! #[test]
//! fn child_role() {
//!     let Some((role, arg)) = ROLES.current() else {
//!         return;
//!     };
//!     match role.as_str() {
//!         "greet" => println!("HELLO {arg}"),
//!         other => panic!("unknown role {other}"),
//!     }
//! }
//!
//! #[test]
//! fn a_child_greets() {
//!     let mut child = ROLES.spawn("greet", "world", Stdio::null());
//!     wait_for(&mut child, "HELLO world");
//!     finish(child, "greeter");
//! }
//! ```

mod users;
pub use users::{ATTACKER_UID, VICTIM_UID, can_switch_users};

use std::io::{ErrorKind, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// The arguments that make a test binary run only its `child_role` test, on one thread,
/// with the test's own output shown (`--nocapture`) and the harness's kept short (`-q`).
pub const CHILD_ARGS: [&str; 5] = [
    "--exact",
    "child_role",
    "--nocapture",
    "--test-threads=1",
    "-q",
];

/// The environment variables through which a test binary tells a re-run of itself which
/// role to play, and with what argument.
///
/// Each test file names its own pair (`IPCRAFT_SHM_TEST_ROLE`, `IPCRAFT_SHM_TEST_ARG`), so
/// that a child of one suite is never mistaken for a child of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    role_env: &'static str,
    arg_env: &'static str,
}

impl Roles {
    /// Roles passed in the environment variables `role_env` and `arg_env`.
    pub const fn new(role_env: &'static str, arg_env: &'static str) -> Self {
        Self { role_env, arg_env }
    }

    /// The variable that carries the role.
    pub const fn role_env(&self) -> &'static str {
        self.role_env
    }

    /// The variable that carries the role's argument.
    pub const fn arg_env(&self) -> &'static str {
        self.arg_env
    }

    /// The role this process was started for and its argument (empty if unset), or `None`
    /// in the parent's own run.
    pub fn current(&self) -> Option<(String, String)> {
        let role = std::env::var(self.role_env).ok()?;
        Some((role, std::env::var(self.arg_env).unwrap_or_default()))
    }

    /// The command that re-runs this test binary as a child playing `role` with `arg`:
    /// stdin null, stdout piped (for marker lines), stderr inherited. Change any of them
    /// before spawning.
    ///
    /// # Panics
    ///
    /// If the path of the running test binary is unknown (`std::env::current_exe`).
    pub fn command(&self, role: &str, arg: &str) -> Command {
        let mut command = Command::new(current_exe());
        command.args(CHILD_ARGS);
        self.configure(&mut command, role, arg);
        command
    }

    /// Like [`command`](Self::command), but started through `launcher` with
    /// `launcher_args`, then this test binary and its arguments: for a launcher that sets
    /// something up and then execs the rest of its command line
    /// (`sh -c 'umask 277 && exec "$@"' sh`).
    ///
    /// # Panics
    ///
    /// If the path of the running test binary is unknown (`std::env::current_exe`).
    pub fn command_via(
        &self,
        launcher: &str,
        launcher_args: &[&str],
        role: &str,
        arg: &str,
    ) -> Command {
        let mut command = Command::new(launcher);
        command
            .args(launcher_args)
            .arg(current_exe())
            .args(CHILD_ARGS);
        self.configure(&mut command, role, arg);
        command
    }

    /// Starts [`command`](Self::command)`(role, arg)` with `stdin`.
    ///
    /// # Panics
    ///
    /// If the child cannot be started.
    pub fn spawn(&self, role: &str, arg: &str, stdin: Stdio) -> Child {
        self.command(role, arg)
            .stdin(stdin)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a `{role}` child: {e}"))
    }

    fn configure(&self, command: &mut Command, role: &str, arg: &str) {
        command
            .env(self.role_env, role)
            .env(self.arg_env, arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
    }
}

fn current_exe() -> std::path::PathBuf {
    std::env::current_exe().expect("the path of the running test binary")
}

/// Reads the child's stdout up to and including the line `marker` (trailing whitespace
/// ignored); returns every line read, the marker last.
///
/// Reads one byte at a time, so nothing after the marker is taken: a later `wait_for`, or a
/// read of the rest of stdout ([`finish`]), sees it.
///
/// # Panics
///
/// If the child's stdout is not piped, cannot be read, or ends before the marker.
pub fn wait_for(child: &mut Child, marker: &str) -> Vec<String> {
    read_until(child, marker, |line| line == marker)
}

/// Reads the child's stdout up to the first line that starts with `prefix`; returns that
/// line (trailing whitespace removed). Reads as [`wait_for`] does.
///
/// # Panics
///
/// If the child's stdout is not piped, cannot be read, or ends before such a line.
pub fn wait_for_prefix(child: &mut Child, prefix: &str) -> String {
    let mut lines = read_until(child, prefix, |line| line.starts_with(prefix));
    lines.pop().expect("the matching line")
}

/// Reads the child's stdout up to the first line for which `is_it` is true (trailing
/// whitespace removed); returns that line. `what` names it in the panic message. Reads as
/// [`wait_for`] does.
///
/// # Panics
///
/// If the child's stdout is not piped, cannot be read, or ends before such a line.
pub fn wait_for_line(child: &mut Child, what: &str, is_it: impl FnMut(&str) -> bool) -> String {
    let mut lines = read_until(child, what, is_it);
    lines.pop().expect("the matching line")
}

fn read_until(child: &mut Child, what: &str, mut is_it: impl FnMut(&str) -> bool) -> Vec<String> {
    let out = child.stdout.as_mut().expect("the child's stdout is piped");
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match out.read(&mut byte) {
            Ok(0) => panic!("child ended before {what}: {lines:?}"),
            Ok(_) if byte[0] == b'\n' => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                line.clear();
                let done = is_it(&text);
                lines.push(text);
                if done {
                    return lines;
                }
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("cannot read the child's stdout, waiting for {what}: {e}"),
        }
    }
}

/// Reads the rest of the child's stdout (if it is piped and not taken), waits for the child
/// and checks that it succeeded; returns what it printed. `what` names the child in the
/// panic message.
///
/// Reading to the end first means a child never blocks on a full stdout pipe, nor fails in
/// the harness's own printing on a closed one.
///
/// # Panics
///
/// If stdout cannot be read or is not UTF-8, the child cannot be waited for, or it failed.
pub fn finish(mut child: Child, what: &str) -> String {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("cannot read {what}'s stdout: {e}"));
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("cannot wait for {what}: {e}"));
    assert!(status.success(), "{what} failed: {status:?}; stdout: {out}");
    out
}

/// Kills the child (SIGKILL) and reaps it; returns how it ended.
///
/// # Panics
///
/// If it cannot be killed (it was already reaped) or waited for.
pub fn kill(child: &mut Child) -> ExitStatus {
    child.kill().expect("kill the child");
    child.wait().expect("reap the killed child")
}

/// `{prefix}-{pid}-{n}-{tag}`: a name no other process, and no other call in this one,
/// gets (`n` counts calls in this process). With `prefix` `/ipcraft-shm-test` it is a POSIX
/// IPC name; with `/tmp/ipcraft-sock` a path.
pub fn unique_name(prefix: &str, tag: &str) -> String {
    static N: Mutex<usize> = Mutex::new(0);
    let n = {
        let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    };
    format!("{prefix}-{}-{n}-{tag}", std::process::id())
}

/// Whether `python3` can `import posix_ipc`, for the interop tests that use it as a peer. If
/// not, says `SKIPPED: ...` on stdout and stderr, with how to install it.
pub fn python_has_posix_ipc() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import posix_ipc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!(
            "SKIPPED: posix_ipc not installed (python3 -c 'import posix_ipc' failed); \
             `pip install posix_ipc` to run the interop test"
        );
        eprintln!("SKIPPED: posix_ipc not installed");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "processes")]
    fn waiting_for_a_marker_leaves_what_follows_it() {
        let mut child = sh("printf 'one\\nMARK  \\nREADY 7\\nlast\\nrest'");
        assert_eq!(wait_for(&mut child, "MARK"), ["one", "MARK"]);
        assert_eq!(wait_for_prefix(&mut child, "READY"), "READY 7");
        assert_eq!(wait_for_line(&mut child, "last", |l| l == "last"), "last");
        assert_eq!(finish(child, "sh"), "rest");
    }

    #[test]
    #[cfg_attr(miri, ignore = "processes")]
    #[should_panic(expected = "child ended before NEVER: [\"one\"]")]
    fn a_child_that_ends_before_the_marker_is_a_failure() {
        let mut child = sh("echo one");
        wait_for(&mut child, "NEVER");
    }

    #[test]
    #[cfg_attr(miri, ignore = "processes")]
    #[should_panic(expected = "sh failed")]
    fn finish_checks_the_exit_status() {
        finish(sh("exit 3"), "sh");
    }

    #[test]
    #[cfg_attr(miri, ignore = "processes")]
    fn a_killed_child_is_reaped() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = sh("sleep 60");
        assert_eq!(kill(&mut child).signal(), Some(9));
    }

    #[test]
    fn unique_names_differ_and_carry_the_pid() {
        let (a, b) = (unique_name("/p", "t"), unique_name("/p", "t"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("/p-{}-", std::process::id())), "{a}");
        assert!(a.ends_with("-t"), "{a}");
    }

    #[test]
    fn no_role_in_the_parents_own_run() {
        let roles = Roles::new(
            "IPCRAFT_TESTKIT_NO_SUCH_ROLE",
            "IPCRAFT_TESTKIT_NO_SUCH_ARG",
        );
        assert_eq!(roles.current(), None);
        let command = roles.command("r", "a");
        let envs: Vec<_> = command.get_envs().collect();
        assert!(envs.contains(&("IPCRAFT_TESTKIT_NO_SUCH_ROLE".as_ref(), Some("r".as_ref()))));
        assert_eq!(command.get_args().collect::<Vec<_>>(), CHILD_ARGS);
    }
}
