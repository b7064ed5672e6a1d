#![no_main]
//! See `ipcraft_fuzz_harness::cmsg`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipcraft_fuzz_harness::cmsg::run(data));
