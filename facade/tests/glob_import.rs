//! `use ipcraft::*` must not shadow a crate of the extern prelude (`core`, `std`, `alloc`):
//! this file fails to compile if it does.
#![allow(unused_imports)]

use ipcraft::*;

#[test]
fn a_glob_import_leaves_core_and_std_alone() {
    assert_eq!(core::mem::size_of::<u8>(), 1);
    assert_eq!(std::mem::size_of::<u16>(), 2);
    // The shared crate is still there, under a name that cannot collide.
    let deadline = ipcraft_core::Deadline::after(std::time::Duration::from_secs(1));
    assert!(!deadline.has_passed());
}
