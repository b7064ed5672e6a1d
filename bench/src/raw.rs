//! The raw libc baselines: what a C programmer writes by hand, to compare ipcraft against.
//!
//! Every message moves with `read(2)`, `write(2)` or `writev(2)` (pipes), or `send(2)` and
//! `recv(2)` (sockets) called directly on the descriptor, in loops that do the same work as ipcraft's types (see each type for what it
//! mirrors), so that a row's `ipcraft/raw` ratio measures ipcraft's overhead and nothing else.
//!
//! # Invariants this file upholds
//!
//! - Every descriptor passed to libc is borrowed from a live `OwnedFd` for the duration of
//!   the call (`BorrowedFd` ties the call to the owner's lifetime), so it is open and ours.
//! - Every pointer/length pair passed to libc comes from one Rust slice, so the kernel reads
//!   or writes only memory that slice covers, and `&mut` slices are exclusively ours.
//! - A return value is trusted only as far as the kernel's contract: `n >= 0` is at most the
//!   length asked for (except `recv` with `MSG_TRUNC` on a message socket, which returns the
//!   message's length: it is compared with the buffer's before any slicing); any negative
//!   value is an error read from `errno` at once.
//!
//! - `futex(2)` ([`futex_wait`], [`futex_wake`], [`futex_wake_all`]) is only called on a
//!   word borrowed as `&AtomicU32` for the duration of the call, so its address is live,
//!   aligned and only ever accessed atomically; the kernel reads it atomically and never
//!   writes it.
//! - A [`PthreadMutex`] points to `size_of::<pthread_mutex_t>()` bytes, bounds- and
//!   alignment-checked by [`SharedMap::bytes_at`], in a mapping it borrows (so it cannot
//!   outlive it). Those bytes are initialized once by [`create_mutex_map`] before the memory
//!   file is handed to anyone, and are then touched only by `pthread_mutex_*` calls, here and
//!   in the peer (the sync rows' layout keeps every other word off them). As with
//!   `ipcraft-sync`, glibc keeps robust-list pointers in the mutex: the peer is our own child,
//!   trusted not to scribble over it.
//!
//! The unsafe code is limited to the system and library calls (three at the top, `send` and
//! `recv` after the frame loops, the futex pair and the pthread mutex calls at the bottom);
//! the loops are safe.
#![allow(unsafe_code)]
// The futex words live in shared memory and are checked across real processes, not by loom.
#![allow(clippy::disallowed_types)]

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::proto::{Receiver, Sender};
use crate::shm::SharedMap;

/// `read(2)`: at most `buf.len()` bytes into `buf`.
fn sys_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY:
    // - `fd` is open for the whole call: `BorrowedFd` borrows a live `OwnedFd`.
    // - `buf.as_mut_ptr()` is valid for writes of `buf.len()` bytes and nothing else
    //   aliases it: it comes from the exclusive borrow `buf`.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    // A negative return is -1 with errno set; otherwise 0 <= n <= buf.len().
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `write(2)`: at most `buf.len()` bytes from `buf`.
fn sys_write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY:
    // - `fd` is open for the whole call: `BorrowedFd` borrows a live `OwnedFd`.
    // - `buf.as_ptr()` is valid for reads of `buf.len()` bytes: it comes from the slice `buf`.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `writev(2)` of two buffers, `a` then `b`.
fn sys_writev2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr().cast_mut().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        },
    ];
    // SAFETY:
    // - `fd` is open for the whole call: `BorrowedFd` borrows a live `OwnedFd`.
    // - `iov` points to 2 initialized `iovec`s (the count passed), alive until the call returns.
    // - Each `iovec` describes one of the slices `a`, `b`, valid for reads of its length;
    //   writev only reads through them (the `*mut` is the C signature, not a write).
    let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn is_eintr(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// Raw bytes in: `read(2)` until exactly one message of the asked length has arrived.
///
/// Mirrors `std::io::Read::read_exact` on `PipeReader`: a loop of `read` calls that retries
/// `EINTR` and fails on an early end of stream.
#[derive(Debug)]
pub struct RawBytesIn {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl RawBytesIn {
    /// Reads from `fd` into a buffer allocated now for messages of up to `max` bytes.
    pub fn new(fd: OwnedFd, max: usize) -> Self {
        Self {
            fd,
            buf: vec![0; max.max(1)],
        }
    }
}

impl Receiver for RawBytesIn {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let mut got = 0;
        while got < len {
            match sys_read(self.fd.as_fd(), &mut self.buf[got..len]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[..len])
    }
}

/// Raw bytes out: `write(2)` until the whole message went out.
///
/// Mirrors `std::io::Write::write_all` on `PipeWriter`: a loop of `write` calls that retries
/// `EINTR` and fails when the stream accepts nothing.
#[derive(Debug)]
pub struct RawBytesOut {
    fd: OwnedFd,
}

impl RawBytesOut {
    /// Writes to `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

impl Sender for RawBytesOut {
    fn send(&mut self, mut msg: &[u8]) -> io::Result<()> {
        while !msg.is_empty() {
            match sys_write(self.fd.as_fd(), msg) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => msg = &msg[n..],
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The length prefix, as `ipcraft_core::frame` writes it: 4 bytes, little-endian.
const HEADER_LEN: usize = 4;
/// `ipcraft_core::frame::DEFAULT_MAX_FRAME`, checked the same way on both sides.
const MAX_FRAME: u32 = 16 * 1024 * 1024;
/// `ipcraft_core::frame`'s first read buffer (`INITIAL_READ_BUFFER`).
const INITIAL_READ_BUFFER: usize = 8 * 1024;

/// Raw frames out: one `writev(2)` of the 4-byte little-endian length and the payload.
///
/// Mirrors `ipcraft_core::FrameWriter::send` (core/src/frame.rs): check the length against
/// the maximum, then `writev` prefix + payload, continuing after a short write and retrying
/// `EINTR`. It leaves out the writer's pending-tail bookkeeping, which only matters on
/// non-blocking streams (on a blocking pipe FrameWriter's cost there is one `is_empty` test).
#[derive(Debug)]
pub struct RawFrameOut {
    fd: OwnedFd,
}

impl RawFrameOut {
    /// Writes frames to `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

impl Sender for RawFrameOut {
    fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = match u32::try_from(payload.len()) {
            Ok(n) if n <= MAX_FRAME => n,
            _ => return Err(io::ErrorKind::InvalidInput.into()),
        };
        let header = len.to_le_bytes();
        let total = HEADER_LEN + payload.len();
        let mut written = 0;
        while written < total {
            let r = if written < HEADER_LEN {
                sys_writev2(self.fd.as_fd(), &header[written..], payload)
            } else {
                sys_write(self.fd.as_fd(), &payload[written - HEADER_LEN..])
            };
            match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Raw frames in: read ahead into a buffer and parse frames out of it.
///
/// Mirrors `ipcraft_core::FrameReader::next_frame` and its `make_room` (core/src/frame.rs,
/// as of the commit this was written against) step for step: the buffer starts empty, is
/// grown to `max(start + need, 8 KiB)` (so to the largest frame seen) and reused; each
/// `read(2)` asks for all the room after the valid bytes; consumed bytes are moved to the
/// front only when the room after `start` is smaller than `max(need, 8 KiB)`; the indexes
/// reset to 0 whenever the buffer is drained.
#[derive(Debug)]
pub struct RawFrameIn {
    fd: OwnedFd,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RawFrameIn {
    /// Reads frames from `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    fn make_room(&mut self, need: usize) {
        if self.start > 0 && self.buf.len() - self.start < need.max(INITIAL_READ_BUFFER) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = (self.start + need).max(INITIAL_READ_BUFFER);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }
}

impl Receiver for RawFrameIn {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        let frame = loop {
            let avail = self.end - self.start;
            let need = if avail >= HEADER_LEN {
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
                let n = u32::from_le_bytes(h);
                if n > MAX_FRAME {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                let n = n as usize;
                if avail >= HEADER_LEN + n {
                    let at = self.start + HEADER_LEN;
                    break at..at + n;
                }
                HEADER_LEN + n
            } else {
                HEADER_LEN
            };
            self.make_room(need);
            match sys_read(self.fd.as_fd(), &mut self.buf[self.end..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        };
        self.start = frame.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        crate::proto::check_len(&self.buf[frame], len)
    }
}

/// `send(2)` of `buf` with `flags`: how many bytes went out.
fn sys_send(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY:
    // - `fd` is open for the whole call: `BorrowedFd` borrows a live `OwnedFd`.
    // - `buf.as_ptr()` is valid for reads of `buf.len()` bytes: it comes from the slice `buf`.
    // - `flags` are plain `MSG_*` bits; none of them makes the kernel touch other memory.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `recv(2)` into `buf` with `flags`. The kernel writes at most `buf.len()` bytes; with
/// `MSG_TRUNC` on a message socket the value returned is the message's whole length, which
/// may be larger: callers compare it with `buf.len()` before slicing.
fn sys_recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY:
    // - `fd` is open for the whole call: `BorrowedFd` borrows a live `OwnedFd`.
    // - `buf.as_mut_ptr()` is valid for writes of `buf.len()` bytes and nothing else
    //   aliases it: it comes from the exclusive borrow `buf`. `MSG_TRUNC` changes only the
    //   return value, never how much is written.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Raw bytes out on a stream socket (Unix stream, TCP): `send(2)` with `MSG_NOSIGNAL` until
/// the whole message went out.
///
/// Mirrors `Write::write_all` on `ipcraft_socket::UnixStream` / `TcpStream` (no timeout set):
/// each `write` is one `send(fd, buf, MSG_NOSIGNAL)`, `EINTR` retried, a zero-length write an
/// error.
#[derive(Debug)]
pub struct RawStreamOut<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> RawStreamOut<'a> {
    /// Sends on `fd`.
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        Self { fd }
    }
}

impl Sender for RawStreamOut<'_> {
    fn send(&mut self, mut msg: &[u8]) -> io::Result<()> {
        while !msg.is_empty() {
            match sys_send(self.fd, msg, libc::MSG_NOSIGNAL) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => msg = &msg[n..],
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Raw bytes in on a stream socket: `recv(2)` (no flags) until exactly one message of the
/// asked length has arrived.
///
/// Mirrors `Read::read_exact` on `ipcraft_socket::UnixStream` / `TcpStream`: each `read` is
/// one `recv(fd, buf, 0)`, `EINTR` retried, an early end of stream an error.
#[derive(Debug)]
pub struct RawStreamIn<'a> {
    fd: BorrowedFd<'a>,
    buf: Vec<u8>,
}

impl<'a> RawStreamIn<'a> {
    /// Receives from `fd` into a buffer allocated now for messages of up to `max` bytes.
    pub fn new(fd: BorrowedFd<'a>, max: usize) -> Self {
        Self {
            fd,
            buf: vec![0; max.max(1)],
        }
    }
}

impl Receiver for RawStreamIn<'_> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let mut got = 0;
        while got < len {
            match sys_recv(self.fd, &mut self.buf[got..len], 0) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[..len])
    }
}

/// Raw messages out on a connected message socket (Unix datagram or seqpacket): one
/// `send(2)` with `MSG_NOSIGNAL` per message, `EINTR` retried.
///
/// The same contract as `ipcraft_socket::UnixDatagram::send` / `SeqpacketConn::send` (the
/// whole message or an error, no `SIGPIPE`), written as a C programmer would: ipcraft makes
/// the same call as `sendmsg(2)` with one `iovec` and no control data (its code path for
/// messages with and without descriptors is one), which the ratio includes.
#[derive(Debug)]
pub struct RawMsgOut<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> RawMsgOut<'a> {
    /// Sends messages on `fd`.
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        Self { fd }
    }
}

impl Sender for RawMsgOut<'_> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        loop {
            match sys_send(self.fd, msg, libc::MSG_NOSIGNAL) {
                Ok(n) if n == msg.len() => return Ok(()),
                Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Raw messages in on a connected message socket: one `recv(2)` with `MSG_TRUNC` per message
/// (so a message larger than the buffer is detected, not silently cut), `EINTR` retried.
///
/// The same contract as `ipcraft_socket::UnixDatagram::recv` / `SeqpacketConn::recv` (a
/// message larger than the buffer is an error), written as a C programmer would: ipcraft makes
/// the call as `recvmsg(2)` with room for the sender's address and `MSG_CMSG_CLOEXEC` (its
/// path for messages with and without descriptors is one), which the ratio includes. A
/// zero-length read (end of stream on a seqpacket connection) is `UnexpectedEof`, as the
/// ipcraft side treats it.
#[derive(Debug)]
pub struct RawMsgIn<'a> {
    fd: BorrowedFd<'a>,
    buf: Vec<u8>,
}

impl<'a> RawMsgIn<'a> {
    /// Receives from `fd` into a buffer allocated now for messages of up to `max` bytes.
    pub fn new(fd: BorrowedFd<'a>, max: usize) -> Self {
        Self {
            fd,
            buf: vec![0; max.max(1)],
        }
    }
}

impl Receiver for RawMsgIn<'_> {
    fn recv(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let n = loop {
            match sys_recv(self.fd, &mut self.buf, libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if is_eintr(&e) => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if n > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message of {n} bytes was truncated to {}", self.buf.len()),
            ));
        }
        crate::proto::check_len(&self.buf[..n], len)
    }
}

/// `FUTEX_WAIT` on `word` while it holds `expected`, for at most `timeout`.
///
/// A shared futex (no `FUTEX_PRIVATE_FLAG`): the kernel keys it by the backing file and
/// offset, so it works between processes that map the same memory file at any address.
/// Returns `Ok` when woken, when the word did not hold `expected` (`EAGAIN`), on timeout
/// and on `EINTR`: the caller re-checks the word (and its deadline) in every case.
///
/// # Errors
///
/// Any other `futex(2)` error (`EFAULT`, `EINVAL`, `ENOSYS`).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits every c_long.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY:
    // - `uaddr` = `word.as_ptr()` is a live, 4-byte aligned u32 for the whole call: it comes
    //   from the `&AtomicU32` borrowed for the call; the kernel only reads it, atomically.
    // - `timeout` points to `ts`, an initialized `timespec` on our stack that outlives the call
    //   (a relative timeout, as FUTEX_WAIT takes it).
    // - `uaddr2` (null) and `val3` (0) are ignored by FUTEX_WAIT; the argument count and
    //   types are those of the raw syscall (`long syscall(SYS_futex, u32*, int, u32,
    //   const timespec*, u32*, u32)`).
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const ts,
            ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR) => Ok(()),
        _ => Err(e),
    }
}

/// `FUTEX_WAKE` of one waiter on `word` (shared futex, see [`futex_wait`]); returns how many
/// were woken.
///
/// # Errors
///
/// `futex(2)` failed (`EFAULT`, `EINVAL`, `ENOSYS`).
pub fn futex_wake(word: &AtomicU32) -> io::Result<usize> {
    futex_wake_n(word, 1)
}

/// `FUTEX_WAKE` of every waiter on `word` (`INT_MAX` of them, as `ipcraft-sync`'s
/// `Condvar::notify_all` asks for); returns how many were woken.
///
/// # Errors
///
/// As [`futex_wake`].
pub fn futex_wake_all(word: &AtomicU32) -> io::Result<usize> {
    futex_wake_n(word, i32::MAX.unsigned_abs())
}

/// `FUTEX_WAKE` of at most `n` waiters on `word`.
fn futex_wake_n(word: &AtomicU32, n: u32) -> io::Result<usize> {
    // SAFETY:
    // - `uaddr` = `word.as_ptr()` is a live, 4-byte aligned u32 for the whole call (the
    //   `&AtomicU32` is borrowed for it); FUTEX_WAKE only uses the address as a key, it
    //   neither reads nor writes the word.
    // - `val` = `n` wakes at most that many waiters (the kernel reads it as an int; callers
    //   pass 1 or INT_MAX); `timeout`/`val2` (null), `uaddr2` (null) and `val3` (0) are
    //   ignored by FUTEX_WAKE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// `0` as `Ok`, any other return of a pthread function (an errno value) as the error: the
/// `if (rc != 0)` of C, inlined, with the error built out of line.
#[inline]
fn pthread_result(what: &'static str, rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(pthread_error(what, rc))
    }
}

#[cold]
#[inline(never)]
fn pthread_error(what: &'static str, rc: libc::c_int) -> io::Error {
    let e = io::Error::from_raw_os_error(rc);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A `pthread_mutex_t` inside a [`SharedMap`], locked and unlocked with direct
/// `pthread_mutex_lock(3)` / `pthread_mutex_unlock(3)` calls: the raw baseline of
/// `ipcraft_sync::Mutex` (the `mutex-*` and `condvar-*` rows).
///
/// Made process-shared and robust by [`create_mutex_map`], the attributes `ipcraft-sync`
/// gives its own (no priority inheritance). It borrows the map, so the mapping outlives it.
#[derive(Debug)]
pub struct PthreadMutex<'a> {
    ptr: NonNull<libc::pthread_mutex_t>,
    _map: PhantomData<&'a SharedMap>,
}

/// A new memory file of `len` zeroed bytes, mapped, with a process-shared, robust
/// `pthread_mutex_t` initialized at `offset` (checked against the mapping): the raw sync
/// rows' memory. Nobody else can know the file yet (it was just made here), so the
/// initialization races with nothing; hand the descriptor to the child afterwards.
///
/// # Errors
///
/// The memory file could not be made or mapped, the mutex does not fit at `offset`, or a
/// `pthread_mutexattr_*`/`pthread_mutex_init` call failed.
pub fn create_mutex_map(name: &str, len: usize, offset: usize) -> io::Result<(OwnedFd, SharedMap)> {
    let fd = crate::shm::create_len(name, len)?;
    let map = SharedMap::map(&fd, len)?;
    // `mutex` borrows `map`: done with it before `map` is returned.
    {
        let mutex = PthreadMutex::at(&map, offset)?;
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY:
        // - `attr.as_mut_ptr()` points to a local, writable, suitably aligned
        //   `pthread_mutexattr_t`, which `pthread_mutexattr_init` initializes whole.
        pthread_result("pthread_mutexattr_init", unsafe {
            libc::pthread_mutexattr_init(attr.as_mut_ptr())
        })?;
        let attr = attr.as_mut_ptr();
        let init = (|| {
            // SAFETY:
            // - `attr` was initialized by `pthread_mutexattr_init` above and is not destroyed yet.
            pthread_result("pthread_mutexattr_setpshared", unsafe {
                libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY:
            // - As above: `attr` is initialized and alive.
            pthread_result("pthread_mutexattr_setrobust", unsafe {
                libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST)
            })?;
            // SAFETY:
            // - `mutex.ptr` points to `size_of::<pthread_mutex_t>()` writable bytes, aligned for
            //   it, inside the live mapping `map` (checked by `PthreadMutex::at`; `mutex` borrows
            //   `map`).
            // - Nothing else uses those bytes yet: the memory file was created above and its
            //   descriptor has not been handed to anyone; `mutex` is the only handle on them.
            // - `attr` is initialized and alive.
            pthread_result("pthread_mutex_init", unsafe {
                libc::pthread_mutex_init(mutex.ptr.as_ptr(), attr)
            })
        })();
        // SAFETY:
        // - `attr` is initialized and is not used after this call (`pthread_mutex_init` copied
        //   what it needed into the mutex).
        unsafe { libc::pthread_mutexattr_destroy(attr) };
        init?;
    }
    Ok((fd, map))
}

impl<'a> PthreadMutex<'a> {
    /// The mutex at `offset` of `map`, which [`create_mutex_map`] initialized (in this
    /// process, or in the parent that handed the memory file over).
    ///
    /// # Errors
    ///
    /// `size_of::<pthread_mutex_t>()` bytes at `offset` are out of bounds or misaligned.
    pub fn at(map: &'a SharedMap, offset: usize) -> io::Result<Self> {
        let ptr = map.bytes_at(
            offset,
            size_of::<libc::pthread_mutex_t>(),
            align_of::<libc::pthread_mutex_t>(),
        )?;
        Ok(Self {
            ptr: ptr.cast(),
            _map: PhantomData,
        })
    }

    /// `pthread_mutex_lock(3)`.
    ///
    /// # Errors
    ///
    /// Any non-zero return, `EOWNERDEAD` included (no process dies in a benchmark).
    #[inline]
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY:
        // - `self.ptr` points to a `pthread_mutex_t` inside a mapping that stays mapped while
        //   `self` lives (`self` borrows the `SharedMap` that owns it; bounds and alignment
        //   checked in `at`).
        // - It was initialized (process-shared, robust) by `create_mutex_map` before any
        //   process could reach it, and its bytes are only ever touched by pthread calls, here
        //   and in the peer (the layout in `cases::sync` keeps every other word off them).
        pthread_result("pthread_mutex_lock", unsafe {
            libc::pthread_mutex_lock(self.ptr.as_ptr())
        })
    }

    /// `pthread_mutex_unlock(3)`, of a mutex this thread locked.
    ///
    /// # Errors
    ///
    /// Any non-zero return (`EPERM`: not locked by this thread).
    #[inline]
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY:
        // - As in `lock`: an initialized process-shared mutex in a live mapping, touched only
        //   by pthread calls. Unlocking a mutex we do not own is reported (`EPERM`, the mutex
        //   is robust, hence error-checking), not undefined.
        pthread_result("pthread_mutex_unlock", unsafe {
            libc::pthread_mutex_unlock(self.ptr.as_ptr())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcraft_core::{FrameReader, FrameWriter};
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::fs::File;

    fn pipe() -> (OwnedFd, OwnedFd) {
        pipe2(OFlag::O_CLOEXEC).unwrap()
    }

    // Small data only: everything fits in the pipe buffer, so one thread can do both sides.

    #[test]
    #[cfg_attr(miri, ignore)]
    fn raw_frames_are_ipcraft_frames_both_ways() {
        let big = vec![7u8; 20_000];
        let frames: [&[u8]; 4] = [b"hello", b"", &big, b"x"];

        let (r, w) = pipe();
        let mut tx = RawFrameOut::new(w);
        for f in frames {
            tx.send(f).unwrap();
        }
        drop(tx);
        let mut rx = FrameReader::new(File::from(r));
        for f in frames {
            assert_eq!(rx.next_frame().unwrap(), Some(f));
        }
        assert_eq!(rx.next_frame().unwrap(), None);

        let (r, w) = pipe();
        let mut tx = FrameWriter::new(File::from(w));
        for f in frames {
            tx.send(f).unwrap();
        }
        drop(tx);
        let mut rx = RawFrameIn::new(r);
        for f in frames {
            assert_eq!(rx.recv(f.len()).unwrap(), f);
        }
        let eof = rx.recv(0).unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_frame_of_another_length_is_invalid_data() {
        let (r, w) = pipe();
        RawFrameOut::new(w).send(b"four").unwrap();
        let e = RawFrameIn::new(r).recv(5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn raw_messages_cross_with_ipcraft_sockets_and_truncation_is_an_error() {
        use ipcraft_socket::{SeqpacketConn, UnixDatagram};
        let (a, b) = SeqpacketConn::pair().unwrap();
        let b = OwnedFd::from(b);
        RawMsgOut::new(b.as_fd()).send(b"from raw").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(a.recv(&mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], b"from raw");
        a.send(b"from ipcraft").unwrap();
        let mut rx = RawMsgIn::new(b.as_fd(), 4);
        // The buffer grows to the length asked for; a message of another length is an error.
        assert_eq!(rx.recv(12).unwrap(), b"from ipcraft");
        a.send(b"abc").unwrap();
        assert_eq!(rx.recv(4).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Larger than the buffer: detected (MSG_TRUNC), not cut silently.
        a.send(&[1u8; 100]).unwrap();
        assert_eq!(rx.recv(12).unwrap_err().kind(), io::ErrorKind::InvalidData);
        drop(a);
        assert_eq!(rx.recv(1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);

        let (d, e) = UnixDatagram::pair().unwrap();
        let e = OwnedFd::from(e);
        RawMsgOut::new(e.as_fd()).send(&[9u8; 65536]).unwrap();
        let mut big = vec![0u8; 65536];
        assert_eq!(d.recv(&mut big).unwrap(), 65536);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn raw_stream_bytes_cross_with_ipcraft_streams() {
        use ipcraft_socket::UnixStream;
        use std::io::{Read, Write};
        let (mut a, b) = UnixStream::pair().unwrap();
        let b = OwnedFd::from(b);
        RawStreamOut::new(b.as_fd()).send(b"abcdef").unwrap();
        let mut buf = [0u8; 6];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abcdef");
        a.write_all(b"ghij").unwrap();
        let mut rx = RawStreamIn::new(b.as_fd(), 2);
        assert_eq!(rx.recv(4).unwrap(), b"ghij");
        a.write_all(b"k").unwrap();
        drop(a);
        assert_eq!(rx.recv(2).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        // The peer is gone: an error, not SIGPIPE (MSG_NOSIGNAL), so this test survives.
        assert!(RawStreamOut::new(b.as_fd()).send(b"x").is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn raw_bytes_round_trip_and_early_eof() {
        let (r, w) = pipe();
        let mut tx = RawBytesOut::new(w);
        tx.send(b"abcdef").unwrap();
        tx.send(b"gh").unwrap();
        drop(tx);
        let mut rx = RawBytesIn::new(r, 4);
        assert_eq!(rx.recv(4).unwrap(), b"abcd");
        // Grows past the size it was made for, then only 4 of the 5 bytes arrive.
        let e = rx.recv(5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
