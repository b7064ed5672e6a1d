//! Anonymous pipes: raw bytes (`pipe`) and length-prefixed frames (`pipe-framed`).
//!
//! Two pipes per measurement: parent to child (the child's stdin) and child to parent (the
//! child's stdout).
//! - `raw`: `pipe2(O_CLOEXEC)`, then [`crate::raw`]'s `read`/`write`/`writev` loops.
//! - `ipcraft`: `ipcraft_pipe::pipe()`, then `PipeReader`/`PipeWriter` through `Read::read_exact`
//!   and `Write::write_all` (`pipe`), or `FrameWriter::send`/`FrameReader::next_frame`
//!   (`pipe-framed`).

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use ipcraft_core::{FrameReader, FrameWriter};
use ipcraft_pipe::{PipeReader, PipeWriter};
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::harness::{Case, Env, Impl, Placement, Sample, Test, child_stdio};
use crate::proto::{self, BytesIn, BytesOut};
use crate::raw::{RawBytesIn, RawBytesOut, RawFrameIn, RawFrameOut};

/// A pipe case: raw bytes or frames, raw libc or ipcraft.
#[derive(Debug)]
pub struct PipeCase {
    framed: bool,
    imp: Impl,
}

impl PipeCase {
    /// `framed` selects `pipe-framed`; `imp` is [`Impl::Raw`] or [`Impl::Ipcraft`].
    pub fn new(framed: bool, imp: Impl) -> Self {
        assert!(imp != Impl::Limit, "a pipe case is raw or ipcraft");
        Self { framed, imp }
    }

    /// Run one side of `test`. The parent passes its ends (write to the child, read from
    /// the child); the child passes its own (stdout, stdin).
    fn side(
        &self,
        test: &Test,
        to_peer: OwnedFd,
        from_peer: OwnedFd,
        parent: bool,
    ) -> io::Result<Option<Sample>> {
        /// Run the parent's or the child's side with this sender and receiver.
        fn run(
            test: &Test,
            parent: bool,
            mut tx: impl proto::Sender,
            mut rx: impl proto::Receiver,
        ) -> io::Result<Option<Sample>> {
            if parent {
                proto::parent(test, &mut tx, &mut rx).map(Some)
            } else {
                proto::child(test, &mut tx, &mut rx).map(|()| None)
            }
        }
        match (self.imp, self.framed) {
            (Impl::Raw, false) => run(
                test,
                parent,
                RawBytesOut::new(to_peer),
                RawBytesIn::new(from_peer, test.size),
            ),
            (Impl::Raw, true) => run(
                test,
                parent,
                RawFrameOut::new(to_peer),
                RawFrameIn::new(from_peer),
            ),
            (_, false) => run(
                test,
                parent,
                BytesOut(PipeWriter::try_from(to_peer).map_err(io::Error::from)?),
                BytesIn::new(
                    PipeReader::try_from(from_peer).map_err(io::Error::from)?,
                    test.size,
                ),
            ),
            (_, true) => run(
                test,
                parent,
                FrameWriter::new(PipeWriter::try_from(to_peer).map_err(io::Error::from)?),
                FrameReader::new(PipeReader::try_from(from_peer).map_err(io::Error::from)?),
            ),
        }
    }

    /// Two pipes `(child's stdin read end, parent's write end)` and `(parent's read end,
    /// child's stdout write end)`, made the way this implementation makes pipes.
    fn pipes(&self) -> io::Result<[OwnedFd; 4]> {
        let pair = || -> io::Result<(OwnedFd, OwnedFd)> {
            match self.imp {
                Impl::Ipcraft => {
                    let (r, w) = ipcraft_pipe::pipe().map_err(io::Error::from)?;
                    Ok((r.into(), w.into()))
                }
                _ => Ok(pipe2(OFlag::O_CLOEXEC)?),
            }
        };
        let (child_in, to_child) = pair()?;
        let (from_child, child_out) = pair()?;
        Ok([child_in, to_child, from_child, child_out])
    }
}

impl Case for PipeCase {
    fn mechanism(&self) -> &'static str {
        if self.framed { "pipe-framed" } else { "pipe" }
    }

    fn implementation(&self) -> Impl {
        self.imp
    }

    fn measure(&self, env: &Env, placement: Placement, test: &Test) -> io::Result<Sample> {
        let [child_in, to_child, from_child, child_out] = self.pipes()?;
        env.two_processes(
            self,
            placement,
            test,
            Stdio::from(child_in),
            Stdio::from(child_out),
            |_deadline| {
                // Blocking reads end when the watchdog kills the child: no deadline needed.
                self.side(test, to_child, from_child, true)?
                    .ok_or_else(|| io::Error::other("the parent side measured nothing"))
            },
        )
    }

    fn child(&self, test: &Test) -> io::Result<()> {
        let (stdin, stdout) = child_stdio()?;
        self.side(test, stdout, stdin, false).map(drop)
    }
}
