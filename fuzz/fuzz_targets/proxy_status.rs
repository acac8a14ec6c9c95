#![no_main]
//! See `switchboard_fuzz::proxy_status` (fuzz/src/proxy_status.rs) for the input format and the properties.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::proxy_status::check(data));
