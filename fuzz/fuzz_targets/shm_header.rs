#![no_main]
//! See `ipcraft_fuzz_harness::shm_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipcraft_fuzz_harness::shm_header::run(data));
