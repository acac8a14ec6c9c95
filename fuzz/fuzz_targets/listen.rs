#![no_main]
//! See `switchboard_fuzz::listen` (fuzz/src/listen.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::listen::check(data));
