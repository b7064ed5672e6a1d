#![no_main]
//! See `ipcraft_fuzz_harness::channel`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipcraft_fuzz_harness::channel::run(data));
