#![no_main]
//! See `ipcraft_fuzz_harness::frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipcraft_fuzz_harness::frame::run(data));
