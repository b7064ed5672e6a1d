#![no_main]
//! See `ipcraft_fuzz_harness::names`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipcraft_fuzz_harness::names::run(data));
