#![forbid(unsafe_code)]
//! # ipcraft-socket
//!
//! **Not implemented yet**: this crate is a placeholder in the ipcraft workspace; its work is
//! tracked by issue 3. What will live here:
//!
//! - `UnixListener`/`UnixStream`, `UnixDatagram`, `SeqpacketListener`/`SeqpacketConn`, with
//!   filesystem and abstract addresses, a bind that owns (and removes) its socket file;
//! - fd passing on every socket type (`OwnedFd`s, always close-on-exec, never leaked);
//! - peer credentials (`SO_PEERCRED`, `SO_PEERPIDFD`) and a listener-side uid/gid policy;
//! - timeouts on the monotonic clock, `MSG_NOSIGNAL` on every send;
//! - the frame codec of `ipcraft-core` over Unix and TCP streams.
