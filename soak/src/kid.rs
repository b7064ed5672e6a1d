//! The parent side of a child process: spawn this binary in a role, collect its report
//! lines on a thread, kill it, stop it, and kill it anyway when it will not finish (the
//! watchdog: that child counts as hung).

use crate::ledger::KidLog;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child and what it reported so far.
#[derive(Debug)]
pub struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    log: KidLog,
    reaped: bool,
}

impl Kid {
    /// Start `ipcraft-soak child <mech> <role> args...`.
    pub fn spawn(
        mech: &str,
        role: &str,
        args: &[String],
        consumer: bool,
        label: String,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .arg("child")
            .arg(mech)
            .arg(role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {label}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            reader: Some(reader),
            log: KidLog {
                consumer,
                label,
                ..KidLog::default()
            },
            reaped: false,
        })
    }

    /// How many lines so far satisfy `f`.
    pub fn count(&self, f: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| f(l))
            .count()
    }

    /// Whether the child has ended (reaping it if so).
    pub fn exited(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            self.reaped = true;
        }
        self.reaped
    }

    /// Wait until a line satisfies `f`, the child ends, or `timeout` passes; returns
    /// whether the line came.
    pub fn wait_line(&mut self, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.count(&f) > 0 {
                return true;
            }
            if self.exited() {
                // The reader may still be taking the last lines.
                std::thread::sleep(Duration::from_millis(5));
                return self.count(&f) > 0;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    /// SIGKILL it now (the plan's kill) and reap it.
    pub fn kill(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.log.killed = true;
        }
        self.reaped = true;
    }

    /// Tell it to finish (a `STOP` line, then end of file on its stdin).
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"STOP\n");
        }
    }

    /// Wait for it to end by `deadline`; if it does not, kill it (the watchdog: hung).
    /// Returns its report.
    pub fn finish(mut self, deadline: Instant) -> KidLog {
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
            self.log.watchdog = true;
        }
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut log = std::mem::take(&mut self.log);
        log.lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        log
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stdin.take();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
