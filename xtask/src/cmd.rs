//! Running a program: echo it, bound it with a deadline, and turn every way it can fail
//! into an [`Error`] that says which command failed and how.

use crate::{Error, Result};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Exit code reported for a command killed at its deadline (as `timeout(1)` does).
pub const TIMEOUT_CODE: i32 = 124;
/// Exit code reported for a program that could not be started (as a shell does).
pub const NOT_FOUND_CODE: i32 = 127;

/// How often a running child is checked against its deadline.
const POLL: Duration = Duration::from_millis(100);

/// A command line to run, with the environment changes it gets.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    /// `Some(v)` sets the variable, `None` removes it.
    envs: Vec<(String, Option<OsString>)>,
    /// What is printed for the program (`cargo` rather than the full path in `$CARGO`).
    shown_program: String,
}

impl Cmd {
    /// `program` with no arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        let program = program.into();
        let shown_program = program.to_string_lossy().into_owned();
        Self {
            program,
            args: Vec::new(),
            envs: Vec::new(),
            shown_program,
        }
    }

    /// The cargo that runs this xtask (`$CARGO`, which cargo sets for `cargo run`), so every
    /// step uses the same toolchain; plain `cargo` from `PATH` otherwise.
    pub fn cargo() -> Self {
        let mut cmd = Self::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.shown_program = "cargo".to_owned();
        cmd
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.envs.push((key.to_owned(), Some(value.into())));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.envs.push((key.to_owned(), None));
        self
    }

    /// The command line as a shell would read it, with the variables it sets in front.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .envs
            .iter()
            .filter_map(|(k, v)| {
                v.as_ref()
                    .map(|v| format!("{k}={}", shell_quote(&v.to_string_lossy())))
            })
            .collect();
        parts.push(self.shown_program.clone());
        parts.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        parts.join(" ")
    }

    fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(dir)
            .stdin(Stdio::null());
        for (key, value) in &self.envs {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        command
    }

    fn spawn(&self, command: &mut Command) -> Result<Child> {
        command.spawn().map_err(|e| {
            Error::with_code(
                format!("cannot start `{}`: {e}", self.display()),
                NOT_FOUND_CODE,
            )
        })
    }

    /// Runs in `dir` with inherited stdout and stderr (after echoing `$ <command>`), killing it
    /// and everything it started if it is still running at `deadline`.
    pub fn run(&self, dir: &Path, deadline: Option<Instant>) -> Result<()> {
        eprintln!("$ {}", self.display());
        let mut child = self.spawn(&mut self.command(dir))?;
        let status = wait(&mut child, deadline).map_err(|waited| self.timed_out(waited))?;
        self.check(status)
    }

    /// Runs in `dir` with stdout captured (stderr inherited, so progress still shows) and
    /// returns stdout; same deadline and errors as [`Cmd::run`].
    pub fn stdout(&self, dir: &Path, deadline: Option<Instant>) -> Result<String> {
        eprintln!("$ {}", self.display());
        let mut child = self.spawn(self.command(dir).stdout(Stdio::piped()))?;
        let reader = read_in_background(child.stdout.take());
        let status = wait(&mut child, deadline);
        let stdout = reader.join().unwrap_or_default();
        self.check(status.map_err(|waited| self.timed_out(waited))?)?;
        Ok(stdout)
    }

    /// Runs quietly to ask something (a version, whether a tool exists): returns whether it
    /// succeeded and its stdout and stderr together. Never fails: a program that cannot be
    /// started or times out is an unsuccessful probe, with the reason as its output.
    pub fn probe(&self, dir: &Path, timeout: Duration) -> (bool, String) {
        let mut command = self.command(dir);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return (false, format!("cannot start `{}`: {e}", self.display())),
        };
        let out = read_in_background(child.stdout.take());
        let err = read_in_background(child.stderr.take());
        let status = wait(&mut child, Some(Instant::now() + timeout));
        let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
        match status {
            Ok(status) => (status.success(), text),
            Err(waited) => (false, format!("timed out after {}s", waited.as_secs())),
        }
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        let (code, how) = match (status.code(), status.signal()) {
            (Some(code), _) => (code, format!("exit {code}")),
            (None, Some(sig)) => (128 + sig, format!("killed by signal {sig}")),
            (None, None) => (1, "failed".to_owned()),
        };
        Err(Error::with_code(
            format!("`{}` failed ({how})", self.display()),
            code,
        ))
    }

    fn timed_out(&self, waited: Duration) -> Error {
        Error::with_code(
            format!(
                "`{}` timed out after {}s: killed it and every process it started",
                self.display(),
                waited.as_secs()
            ),
            TIMEOUT_CODE,
        )
    }
}

/// Quotes a word for display if a shell would need it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error (the child was killed) leaves what was read so far.
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child`; at `deadline`, kills it and all its descendants and returns how long it
/// ran as the error.
fn wait(child: &mut Child, deadline: Option<Instant>) -> Result<ExitStatus, Duration> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            // try_wait fails only if the child was already reaped; fall back to a blocking wait.
            Err(_) => return child.wait().map_err(|_| started.elapsed()),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_tree(child);
            return Err(started.elapsed());
        }
        thread::sleep(POLL);
    }
}

/// SIGKILLs `child` and every process below it: cargo does not pass a kill on to the rustc or
/// test binary it runs, and a runaway test left behind would hold a core of this shared machine.
/// The children stay in our process group (so Ctrl-C still reaches them all); their pids come
/// from /proc.
fn kill_tree(child: &mut Child) {
    // Parents first, in one `kill`: a parent killed before its children cannot react to their
    // deaths (a shell printing "Killed") or start new ones.
    let mut pids = vec![child.id()];
    pids.extend(descendants(child.id(), &parent_pids()));
    // `kill` from procps/util-linux: std has no safe way to signal an arbitrary pid.
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // In case `kill` is missing: the direct child at least.
    let _ = child.kill();
    let _ = child.wait();
}

/// pid -> parent pid of every process in /proc.
fn parent_pids() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| parent_from_stat(&stat))
        {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`, where comm may hold
/// spaces and parentheses, so the fields are counted from the last `)`.
fn parent_from_stat(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root` in the pid -> parent map, parents before children.
fn descendants(root: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let mut children: Vec<u32> = parents
            .iter()
            .filter(|&(_, &pp)| pp == parent)
            .map(|(&pid, _)| pid)
            .collect();
        children.sort_unstable();
        found.extend(children);
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parent_from_stat() {
        assert_eq!(
            parent_from_stat("1234 (cargo) S 99 1234 1234 0 -1"),
            Some(99)
        );
        assert_eq!(parent_from_stat("77 (a) b (c)) R 12 77 77 0 -1"), Some(12));
        assert_eq!(parent_from_stat("garbage"), None);
    }

    #[test]
    fn finds_descendants_parents_first() {
        let parents = HashMap::from([(2, 1), (3, 2), (4, 2), (5, 3), (6, 99), (1, 0)]);
        assert_eq!(descendants(1, &parents), vec![2, 3, 4, 5]);
        assert_eq!(descendants(6, &parents), Vec::<u32>::new());
    }

    #[test]
    fn displays_env_and_quotes() {
        let cmd = Cmd::new("cargo")
            .args(["test", "--release"])
            .env("RUSTFLAGS", "--cfg ipcraft_loom")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        assert_eq!(
            cmd.display(),
            "RUSTFLAGS='--cfg ipcraft_loom' cargo test --release"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn reports_exit_codes_and_timeouts() {
        let dir = Path::new("/");
        assert!(Cmd::new("true").run(dir, None).is_ok());
        let err = Cmd::new("sh")
            .args(["-c", "exit 3"])
            .run(dir, None)
            .unwrap_err();
        assert_eq!(err.code, 3);
        assert!(err.message.contains("exit 3"), "{}", err.message);
        let err = Cmd::new("/nonexistent/program").run(dir, None).unwrap_err();
        assert_eq!(err.code, NOT_FOUND_CODE);
        // The shell's child `sleep` must die too, or the pipe would stay open and `stdout`
        // would wait for it.
        let started = Instant::now();
        let err = Cmd::new("sh")
            .args(["-c", "sleep 30; echo late"])
            .stdout(dir, Some(Instant::now() + Duration::from_millis(300)))
            .unwrap_err();
        assert_eq!(err.code, TIMEOUT_CODE);
        assert!(started.elapsed() < Duration::from_secs(20));
        let out = Cmd::new("sh")
            .args(["-c", "echo hi"])
            .stdout(dir, None)
            .unwrap();
        assert_eq!(out, "hi\n");
        let (ok, text) = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 1"])
            .probe(dir, Duration::from_secs(20));
        assert!(!ok);
        assert!(text.contains("out") && text.contains("err"), "{text}");
    }
}
