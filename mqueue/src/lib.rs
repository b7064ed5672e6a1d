#![forbid(unsafe_code)]
//! # ipcraft-mqueue
//!
//! **Not implemented yet**: this crate is a placeholder in the ipcraft workspace; its work is
//! tracked by issue 4. What will live here:
//!
//! - `MessageQueue`: create (`O_EXCL`, mode 0600), open, open-or-create, unlink on drop by the
//!   creator; send and receive with priorities, `try_` forms, monotonic timeouts;
//! - a preflight of the kernel limits (`/proc/sys/fs/mqueue`, `RLIMIT_MSGQUEUE`) that turns
//!   bare `EINVAL`/`EMFILE` into errors naming the limit.
