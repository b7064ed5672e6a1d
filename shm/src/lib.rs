#![forbid(unsafe_code)]
//! # ipcraft-shm
//!
//! **Not implemented yet**: this crate is a placeholder in the ipcraft workspace; its work is
//! tracked by issue 5. What will live here:
//!
//! - `Segment`: named (`shm_open`) and anonymous (sealed `memfd_create`) shared memory, with
//!   bounds-checked copies and typed placement of plain data, never a `&[u8]` over memory a
//!   peer can write;
//! - a race-free open-or-create, an ipcraft header (magic, layout version, creator), and
//!   detection and removal of segments whose creator died.
