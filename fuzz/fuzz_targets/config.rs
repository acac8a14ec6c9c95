#![no_main]
//! See `switchboard_fuzz::config` (fuzz/src/config.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::config::check(data));
