//! The two things this crate needs that `nix` has no safe call for:
//!
//! - [`accept`]: `accept4(2)` returns a raw descriptor in `nix`; it is made an [`OwnedFd`]
//!   here, the moment it exists.
//! - [`recv_with_fds`]: `recvmsg(2)` with room for `SCM_RIGHTS` descriptors. `nix`'s
//!   `recvmsg` refuses to walk the control messages when the kernel set `MSG_CTRUNC`, which
//!   would leak every descriptor that did arrive; here every control message is walked,
//!   truncated or not, and every descriptor in it becomes an [`OwnedFd`] (so it is closed
//!   unless handed to the caller).
//!
//! # Invariants this file upholds
//!
//! - A raw descriptor becomes an [`OwnedFd`] only when the kernel has just installed it in
//!   this process for us (returned by `accept4`, or written into our control buffer by
//!   `recvmsg`), and only once: nothing else in this process knows its number yet.
//! - The `msghdr` given to `recvmsg` points to one `iovec` built from the caller's `&mut [u8]`,
//!   to a control buffer and to a `sockaddr_un` owned by this function; all outlive the call,
//!   and the kernel writes at most their lengths. (The sender's address is parsed here, in
//!   safe code, because `nix`'s `UnixAddr` panics on the zero-length address of an unnamed
//!   or connected sender.)
//! - Control messages are read only through `CMSG_FIRSTHDR`/`CMSG_NXTHDR` (which stay within
//!   `msg_controllen`, as set by the kernel and at most the buffer's length), and a
//!   message's data only up to the smaller of its `cmsg_len` and the end of the buffer, with
//!   unaligned reads. The walk ([`walk_control`]) is pure memory over a buffer it borrows and
//!   is total on any bytes; only its caller turns the numbers into descriptors.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::sys::socket::{SockFlag, accept4};
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `SCM_PIDFD` (Linux 6.5): a pidfd the kernel attaches when `SO_PASSPIDFD` is on. We never
/// turn it on, but a descriptor in one is closed like any other we did not ask for.
const SCM_PIDFD: libc::c_int = 0x04;

/// `accept4(2)` with `SOCK_CLOEXEC` (and `SOCK_NONBLOCK` when asked): the new connection.
pub(crate) fn accept(listener: BorrowedFd<'_>, nonblocking: bool) -> nix::Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    let raw = accept4(listener.as_raw_fd(), flags)?;
    // SAFETY:
    // - `raw` is a descriptor `accept4` just returned successfully: open, and owned by no one
    //   else in this process; this is the only `OwnedFd` made from it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// What [`recv_with_fds`] got.
#[derive(Debug)]
pub(crate) struct Received {
    /// Data bytes written to the buffer.
    pub len: usize,
    /// Descriptors from `SCM_RIGHTS` messages, in order, close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The kernel set `MSG_CTRUNC`: descriptors (or other control data) did not fit.
    pub truncated: bool,
    /// The sender's `sun_path` bytes (as long as the kernel said; empty for an unnamed or
    /// connected sender).
    pub name: Vec<u8>,
}

/// Bytes of control buffer for `max_fds` descriptors (`CMSG_SPACE`), 0 for none.
pub(crate) fn control_space(max_fds: usize) -> usize {
    if max_fds == 0 {
        return 0;
    }
    let bytes = u32::try_from(max_fds * size_of::<RawFd>()).unwrap_or(u32::MAX);
    // SAFETY:
    // - `CMSG_SPACE` is arithmetic on its argument; it dereferences nothing.
    (unsafe { libc::CMSG_SPACE(bytes) }) as usize
}

/// `recvmsg(2)` into `buf` with room for `max_fds` descriptors, always with
/// `MSG_CMSG_CLOEXEC`, plus `flags` (`MSG_DONTWAIT`). Every control message is walked: the
/// descriptors of `SCM_RIGHTS` are returned, those of any other kind are closed.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    flags: libc::c_int,
) -> Result<Received, Errno> {
    // u64 elements: the buffer is aligned for `cmsghdr` (whose alignment is that of size_t).
    let mut control = vec![0u64; control_space(max_fds).div_ceil(size_of::<u64>())];
    let control_len = control.len() * size_of::<u64>();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY:
    // - `msghdr` is plain data (pointers and integers, and on some targets private padding
    //   integers): all zeroes is a valid value, the null/empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    let mut name = libc::sockaddr_un {
        sun_family: 0,
        sun_path: [0; 108],
    };
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if control_len > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
    }
    let flags = flags | libc::MSG_CMSG_CLOEXEC;
    let n = loop {
        // SAFETY:
        // - `sock` is a live descriptor borrowed for the whole call.
        // - `msg.msg_iov` points to `iov`, one iovec describing the caller's `buf` (valid
        //   for writes of `buf.len()` bytes, exclusively borrowed for this call);
        //   `msg.msg_control` points to `control`, valid for writes of `control_len` bytes.
        //   `iov`, `buf` and `control` all outlive the call.
        // - `msg.msg_name` points to `name`, a `sockaddr_un` on this stack frame, valid for
        //   writes of `msg_namelen` (its size) bytes, alive until the call returns.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        match Errno::result(r) {
            Ok(n) => break n as usize,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    };
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    let path_offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let name_len = (msg.msg_namelen as usize)
        .saturating_sub(path_offset)
        .min(name.sun_path.len());
    let name: Vec<u8> = name.sun_path[..name_len].iter().map(|&c| c as u8).collect();
    let mut fds = Vec::new();
    if control_len == 0 {
        return Ok(Received {
            len: n,
            fds,
            truncated,
            name,
        });
    }
    // The kernel's count of control bytes, never past our buffer: fds are read only within
    // what the kernel wrote, not from the zero fill after it.
    let filled = (msg.msg_controllen as usize).min(control_len);
    walk_control(&control, filled, |is_rights, raw| {
        // SAFETY:
        // - `raw` is non-negative and lies within the control bytes the kernel wrote
        //   (`walk_control` reads only `control[..filled]`, bounded by `msg_controllen`), in a
        //   SCM_RIGHTS or SCM_PIDFD message: the kernel installed it in this process for this
        //   message, and nothing else knows its number yet, so this is its only owner.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if is_rights {
            fds.push(fd);
        } // else: a descriptor we did not ask for, closed here.
    });
    Ok(Received {
        len: n,
        fds,
        truncated,
        name,
    })
}

/// Walk the control messages in the first `filled` bytes of `control` (as `recvmsg` left
/// them) and call `each(is_rights, raw)` for every non-negative descriptor number in a
/// `SCM_RIGHTS` (`is_rights`) or `SCM_PIDFD` message, in order. Adopting the numbers is the
/// caller's business; this reads only `control[..filled]`, whatever the bytes say.
fn walk_control(control: &[u64], filled: usize, mut each: impl FnMut(bool, RawFd)) {
    let filled = filled.min(std::mem::size_of_val(control));
    // SAFETY:
    // - `msghdr` is plain data (pointers and integers, and on some targets private padding
    //   integers): all zeroes is a valid value, the null/empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // Only read through (the CMSG_* functions take `*const msghdr` and write nothing).
    msg.msg_control = control.as_ptr().cast_mut().cast();
    msg.msg_controllen = filled as _;
    let end = control.as_ptr().cast::<u8>().wrapping_add(filled);
    // SAFETY:
    // - `msg` is a live header whose `msg_control` points to `control`, valid for reads of
    //   `filled` bytes (at most its size), which is `msg_controllen`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY:
        // - `cmsg` is non-null and was returned by CMSG_FIRSTHDR/CMSG_NXTHDR for `msg`, which
        //   only return headers lying whole within `msg_control[..msg_controllen]`, inside
        //   `control`, which is alive; the read is unaligned-tolerant.
        let hdr = unsafe { cmsg.read_unaligned() };
        let is_rights = hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS;
        let is_pidfd = hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == SCM_PIDFD;
        if is_rights || is_pidfd {
            // SAFETY:
            // - `cmsg` is a valid header within `control` (as above); CMSG_DATA only adds
            //   the header's aligned size to it.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast_const();
            // SAFETY:
            // - `CMSG_LEN` is arithmetic on its argument; it dereferences nothing.
            let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
            let claimed = (hdr.cmsg_len as usize).saturating_sub(header_len);
            let in_buffer = (end as usize).saturating_sub(data as usize);
            let count = claimed.min(in_buffer) / size_of::<RawFd>();
            for i in 0..count {
                let at = data.cast::<RawFd>().wrapping_add(i);
                // SAFETY:
                // - `at + 4 <= end`: `count` is bounded by the bytes left in `control` after
                //   `data`, so the read is within the live buffer; an unaligned read of a
                //   plain integer.
                let raw = unsafe { at.read_unaligned() };
                if raw < 0 {
                    // SCM_PIDFD carries a negative errno when the kernel could not make the
                    // pidfd (the receiver at its fd limit, a sender gone): no descriptor.
                    continue;
                }
                each(is_rights, raw);
            }
        }
        // A header claiming more than the rest of the buffer is the last one. Never ask
        // CMSG_NXTHDR to step over it: it rounds `cmsg_len` up, which overflows for a length
        // within 7 of usize::MAX (a panic with overflow checks; without, a step of 0 back to
        // this same header, for ever, adopting its descriptors again and again).
        if hdr.cmsg_len as usize > (end as usize).saturating_sub(cmsg as usize) {
            break;
        }
        // SAFETY:
        // - `msg` is the header above and `cmsg` a header within its control data;
        //   CMSG_NXTHDR returns the next header inside `msg_controllen`, or null.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
}

/// The descriptor numbers [`walk_control`] finds in `control` taken as the kernel's control
/// bytes (copied into an aligned buffer, as `recv_with_fds` has), with whether each is from
/// `SCM_RIGHTS`. Nothing is adopted or closed: for tests and the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn control_fds(control: &[u8]) -> Vec<(bool, RawFd)> {
    let mut words = vec![0u64; control.len().div_ceil(size_of::<u64>())];
    for (w, chunk) in words.iter_mut().zip(control.chunks(size_of::<u64>())) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    let mut fds = Vec::new();
    walk_control(&words, control.len(), |is_rights, raw| {
        fds.push((is_rights, raw))
    });
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control message of `level`/`kind` with `cmsg_len` as given, then `fds`.
    fn cmsg(cmsg_len: u64, level: i32, kind: i32, fds: &[i32]) -> Vec<u8> {
        let mut b = cmsg_len.to_ne_bytes().to_vec();
        b.extend_from_slice(&level.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        for fd in fds {
            b.extend_from_slice(&fd.to_ne_bytes());
        }
        b.resize(b.len().next_multiple_of(8), 0);
        b
    }

    #[test]
    fn walk_finds_rights_and_pidfds_in_order() {
        let mut control = cmsg(24, libc::SOL_SOCKET, libc::SCM_RIGHTS, &[7, 8]);
        control.extend(cmsg(20, libc::SOL_SOCKET, SCM_PIDFD, &[-24]));
        control.extend(cmsg(20, libc::SOL_SOCKET, SCM_PIDFD, &[9]));
        assert_eq!(control_fds(&control), [(true, 7), (true, 8), (false, 9)]);
    }

    /// Found by the `cmsg` fuzz target (fuzz/corpus/cmsg/crash-cmsg-len-near-usize-max): a
    /// `cmsg_len` within 7 of usize::MAX made CMSG_NXTHDR overflow (in release: step back
    /// to the same header for ever).
    #[test]
    fn a_huge_cmsg_len_ends_the_walk() {
        for len in [u64::MAX, u64::MAX - 6, u64::MAX - 7, 1 << 63] {
            let mut control = cmsg(20, libc::SOL_SOCKET, SCM_PIDFD, &[-24]);
            control.extend(cmsg(len, libc::SOL_SOCKET, libc::SCM_RIGHTS, &[5, 6]));
            assert_eq!(
                control_fds(&control),
                [(true, 5), (true, 6)],
                "cmsg_len {len:#x}"
            );
        }
    }

    /// A descriptor number [`walk_control`] found: the number, and whether it is from
    /// `SCM_RIGHTS` (otherwise `SCM_PIDFD`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Carried {
        raw: RawFd,
        rights: bool,
    }

    /// Everything the walk finds in the first `filled` bytes of `control`.
    fn carried_fds(control: &[u64], filled: usize) -> Vec<Carried> {
        let mut out = Vec::new();
        walk_control(control, filled, |rights, raw| {
            out.push(Carried { raw, rights })
        });
        out
    }

    /// Appends one control message, as the kernel lays it out on 64-bit little-endian Linux
    /// (`cmsg_len: size_t`, `cmsg_level: int`, `cmsg_type: int`, then the data, padded to
    /// 8 bytes); `len` overrides the `cmsg_len` it would have.
    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn push_cmsg(words: &mut Vec<u64>, ty: libc::c_int, fds: &[RawFd], len: Option<u64>) {
        words.push(len.unwrap_or(16 + 4 * fds.len() as u64));
        words.push(u64::from(libc::SOL_SOCKET as u32) | (u64::from(ty as u32) << 32));
        for pair in fds.chunks(2) {
            let hi = pair.get(1).map_or(0, |&b| u64::from(b as u32));
            words.push(u64::from(pair[0] as u32) | (hi << 32));
        }
    }

    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn rights(raw: RawFd) -> Carried {
        Carried { raw, rights: true }
    }

    #[test]
    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn the_walk_finds_rights_and_pidfds_and_skips_the_rest() {
        let mut c = Vec::new();
        push_cmsg(&mut c, libc::SCM_RIGHTS, &[3, 4, 5], None);
        push_cmsg(&mut c, libc::SCM_CREDENTIALS, &[100, 1000, 1000], None);
        push_cmsg(&mut c, SCM_PIDFD, &[9], None);
        push_cmsg(&mut c, SCM_PIDFD, &[-libc::ESRCH], None); // no pidfd: skipped
        push_cmsg(&mut c, libc::SCM_RIGHTS, &[6], None);
        let all = size_of_val(c.as_slice());
        let pidfd = Carried {
            raw: 9,
            rights: false,
        };
        let expected = [rights(3), rights(4), rights(5), pidfd, rights(6)];
        assert_eq!(carried_fds(&c, all), expected);
        // Never past `filled`, nor past the buffer whatever `filled` says.
        assert_eq!(carried_fds(&c, all + 4096), expected);
        assert_eq!(carried_fds(&c, 0), []);
        assert_eq!(carried_fds(&c, 15), []);
        assert_eq!(carried_fds(&[], 64), []);
    }

    #[test]
    #[cfg(all(target_pointer_width = "64", target_endian = "little"))]
    fn a_truncated_or_lying_message_is_read_only_within_the_buffer() {
        // The kernel cut the control data after two of four descriptors (MSG_CTRUNC).
        let mut c = Vec::new();
        push_cmsg(&mut c, libc::SCM_RIGHTS, &[10, 11, 12, 13], None);
        assert_eq!(carried_fds(&c, 16 + 8), [rights(10), rights(11)]);
        assert_eq!(carried_fds(&c, 16 + 7), [rights(10)]);
        // A length that claims far more than the buffer, or wraps the address space.
        for len in [1 << 20, u64::MAX, u64::MAX - 7] {
            let mut c = Vec::new();
            push_cmsg(&mut c, libc::SCM_RIGHTS, &[20, 21], Some(len));
            push_cmsg(&mut c, libc::SCM_RIGHTS, &[22], None);
            let found = carried_fds(&c, size_of_val(c.as_slice()));
            // The first message's data runs to the end of the buffer (its bytes, read as
            // descriptor numbers: the second header's words too); never beyond.
            assert!(
                found.len() <= (size_of_val(c.as_slice()) - 16) / 4,
                "{found:?}"
            );
            assert_eq!(found[..2], [rights(20), rights(21)]);
        }
        // A length shorter than a header: no data, and the walk stops.
        let mut c = Vec::new();
        push_cmsg(&mut c, libc::SCM_RIGHTS, &[30], Some(3));
        push_cmsg(&mut c, libc::SCM_RIGHTS, &[31], None);
        assert_eq!(carried_fds(&c, size_of_val(c.as_slice())), []);
    }

    #[test]
    fn control_space_fits_the_descriptors() {
        assert_eq!(control_space(0), 0);
        assert!(control_space(1) >= size_of::<libc::cmsghdr>() + 4);
        assert!(control_space(253) >= size_of::<libc::cmsghdr>() + 253 * 4);
    }
}
