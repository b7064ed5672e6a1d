//! A job queue between two processes: this program creates a job queue and a reply queue,
//! starts itself again as a worker, sends it jobs with priorities, and prints the replies.
//!
//! ```text
//! cargo run -p ipcraft-mqueue --example mq_worker
//! ```
//!
//! The worker opens both queues by name (any process could, in any language). Jobs queued
//! before the worker starts come out highest priority first; an empty message tells it to
//! stop. The creator owns both names: they are unlinked when it exits.

use ipcraft_mqueue::{Access, Attributes, MessageQueue};
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, jobs, replies] = &args[..] {
        if role == "worker" {
            return worker(jobs, replies);
        }
    }

    let pid = std::process::id();
    let jobs_name = format!("/ipcraft-example-jobs-{pid}");
    let replies_name = format!("/ipcraft-example-replies-{pid}");
    let _jobs = MessageQueue::create(&jobs_name, Attributes::new(8, 128))?;
    let replies = MessageQueue::create(&replies_name, Attributes::new(8, 128))?;

    let sender = MessageQueue::open(&jobs_name, Access::WriteOnly)?;
    for (job, priority) in [("tidy up", 0), ("fix the outage", 9), ("write docs", 1)] {
        sender.send(job.as_bytes(), priority)?;
    }
    sender.send(b"", 0)?; // stop, after the rest (lowest priority, sent last)

    let mut worker = Command::new(std::env::current_exe()?)
        .args(["worker", &jobs_name, &replies_name])
        .spawn()?;
    let mut buf = vec![0; replies.attributes().max_message_size];
    for _ in 0..3 {
        let (n, _priority) = replies.recv_timeout(&mut buf, Duration::from_secs(10))?;
        println!("worker replied: {}", String::from_utf8_lossy(&buf[..n]));
    }
    let status = worker.wait()?;
    assert!(status.success(), "worker failed: {status}");
    Ok(())
}

fn worker(jobs: &str, replies: &str) -> Result<(), Box<dyn std::error::Error>> {
    let jobs = MessageQueue::open(jobs, Access::ReadOnly)?;
    let replies = MessageQueue::open(replies, Access::WriteOnly)?;
    loop {
        let (job, priority) = jobs.recv_vec()?;
        if job.is_empty() {
            return Ok(());
        }
        let reply = format!(
            "done (priority {priority}): {}",
            String::from_utf8_lossy(&job)
        );
        replies.send_timeout(reply.as_bytes(), 0, Duration::from_secs(10))?;
    }
}
