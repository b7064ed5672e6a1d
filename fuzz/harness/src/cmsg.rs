//! The `SCM_RIGHTS` control-message walk of `ipcraft-socket`'s `recvmsg` on an arbitrary
//! control buffer, through the hidden `ipcraft_socket::__fuzz::control_fds` (the walk
//! cannot be reached with arbitrary bytes otherwise: the kernel writes them). The walk only
//! reports descriptor numbers here; nothing is adopted or closed.
//!
//! Input: the control bytes, as `recvmsg` would leave them (`msg_controllen` = their length).
//!
//! Oracle: a reference walk written from `cmsg(3)`'s layout (a header of `cmsg_len`,
//! `cmsg_level`, `cmsg_type`, the data, the next header at the aligned end) must find the
//! same numbers; no 4-byte slot may be reported twice (so the walk ends).

use ipcraft_socket::__fuzz::control_fds;
use std::os::fd::RawFd;

/// `sizeof(struct cmsghdr)` on 64-bit Linux: `size_t cmsg_len; int cmsg_level, cmsg_type;`.
const HDR: usize = 16;
const SCM_PIDFD: i32 = 4;

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().unwrap_or([0; N])
}

/// The walk as `cmsg(3)` describes it, with every sum checked.
fn reference(control: &[u8]) -> Vec<(bool, RawFd)> {
    let mut out = Vec::new();
    let filled = control.len();
    let mut at = 0usize;
    while at.checked_add(HDR).is_some_and(|e| e <= filled) {
        let len = u64::from_ne_bytes(field(control, at)) as usize;
        let level = i32::from_ne_bytes(field(control, at + 8));
        let kind = i32::from_ne_bytes(field(control, at + 12));
        let is_rights = level == libc_sol_socket() && kind == 1; // SCM_RIGHTS
        let is_pidfd = level == libc_sol_socket() && kind == SCM_PIDFD;
        if is_rights || is_pidfd {
            let data = at + HDR;
            let count = len.saturating_sub(HDR).min(filled - data) / 4;
            for i in 0..count {
                let raw = i32::from_ne_bytes(field(control, data + 4 * i));
                if raw >= 0 {
                    out.push((is_rights, raw));
                }
            }
        }
        if len < HDR {
            break;
        }
        match len
            .checked_add(7)
            .map(|l| l & !7)
            .and_then(|l| at.checked_add(l))
        {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

/// `SOL_SOCKET` on Linux.
const fn libc_sol_socket() -> i32 {
    1
}

/// The target.
pub fn run(data: &[u8]) {
    let got = control_fds(data);
    assert!(
        got.len() <= data.len() / 4,
        "{} descriptors from {} control bytes: a slot was read twice",
        got.len(),
        data.len()
    );
    assert_eq!(
        got,
        reference(data),
        "the walk differs from cmsg(3)'s layout"
    );
}
